//! A paused worker (its controller stopped by its user: Ctrl-Z,
//! `remex::pause_workers`) whose controller's host then dies or is cut
//! off. The liveness bound does not run during a pause, so such a worker
//! waited for ever, its commands suspended on the host. Over TCP (socket=,
//! dial-back) the worker asks the kernel to probe its silent controller
//! (`SO_KEEPALIVE`), which the controller's kernel answers even while it
//! is stopped: the session ends within about twice the bound.
//!
//! A binary of its own: a pause holds every gateway of the process.

use std::time::{Duration, Instant};

use remex::makegateway;
use remex_tests::testbed;

const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_ends_when_its_controllers_host_is_cut_off() {
    if !testbed::available() {
        return;
    }
    let hosts = testbed::take(&["rx2"]);
    let listener = testbed::RemoteListener::start("rx2", WORKER);
    let bound = Duration::from_secs(1);
    let gw = makegateway(&format!(
        "{}//liveness={}",
        listener.spec(),
        bound.as_secs_f64()
    ))
    .await
    .unwrap();
    let job = |p: &testbed::Proc| p.cmdline == "sleep 33.1";
    let _call = gw
        .remote_call(
            "run",
            &remex::worker::CommandRequest::new("exec sleep 33.1".to_string()),
        )
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !testbed::processes("rx2").iter().any(job) {
        assert!(Instant::now() < until, "the job did not start on rx2");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let paused = remex::pause_workers().await;
    // Longer than the bound, paused: the session stays (what a pause is).
    tokio::time::sleep(bound * 3).await;
    assert!(
        testbed::processes("rx2").iter().any(job),
        "the paused session kept its job past the liveness bound"
    );
    let t0 = Instant::now();
    let partition = testbed::partition("rx2");
    // Four probes a second apart after a second of silence: about 5 s; 20
    // s allowed. The job, suspended, is killed with its session.
    let until = t0 + Duration::from_secs(20);
    while testbed::processes("rx2").iter().any(job) {
        assert!(
            Instant::now() < until,
            "a paused worker cut off from its controller kept its job for 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the paused session on rx2 ended {:?} after the partition (bound {bound:?})",
        t0.elapsed()
    );
    partition.heal();
    drop(paused);
    gw.kill().await.ok();
    drop(listener);
    hosts.assert_clean(Duration::from_secs(10));
}
