//! Fault injection: a worker stopped with SIGSTOP is noticed within its
//! gateway's liveness bound; a busy worker is not mistaken for a dead one;
//! a controller killed with SIGKILL leaves no worker behind, over popen,
//! ssh and via a relay; an ended ssh worker leaves no job that ignored
//! SIGTERM behind.

mod common;

use std::time::{Duration, Instant};

use remex::sync::LifecycleState;
use remex::{MultiChannel, Value};
use remex_tests::{wait_gone, Sshd};

const T: Duration = Duration::from_secs(10);

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid this test started; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_is_noticed_within_the_liveness_bound() {
    let gw = remex::makegateway(&common::spec("//liveness=1"))
        .await
        .unwrap();
    let pid = gw.rinfo().pid;
    let ch = gw.remote_exec("channel.receive()").unwrap();
    let queue = MultiChannel::new(vec![ch.clone()])
        .make_receive_queue(Some(Value::from("end")))
        .unwrap();
    signal(pid, libc::SIGSTOP);
    let t0 = Instant::now();
    let (_, item) = queue.get_timeout(T).await.unwrap();
    let noticed = t0.elapsed();
    assert_eq!(item, Value::from("end"));
    assert!(
        noticed < Duration::from_millis(1500),
        "noticed after {noticed:?} with a 1 s bound"
    );
    let e = ch.waitclose(Some(T)).await.unwrap_err();
    assert!(e.to_string().contains("liveness bound"), "{e}");
    assert!(
        wait_gone(pid, Duration::from_secs(2)),
        "the stopped worker was killed"
    );
    let end = gw.lifecycle().join(Some(T)).await.unwrap();
    assert!(
        matches!(&end, LifecycleState::Fault(r) if r.contains("liveness")),
        "{end}"
    );
    eprintln!("a stopped worker was noticed after {noticed:?} (bound 1 s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_is_not_declared_dead() {
    let gw = remex::makegateway(&common::spec("//liveness=0.3"))
        .await
        .unwrap();
    // The task holds a worker thread for several bounds; the reader still
    // answers the probes.
    let ch = gw.remote_call("sleep", &1.5).unwrap();
    ch.waitclose(Some(T)).await.unwrap();
    assert_eq!(gw.lifecycle().state(), LifecycleState::On);
    let echo = gw.remote_call("echo", &1).unwrap();
    assert_eq!(echo.receive::<i64>().await.unwrap(), 1);
}

#[test]
fn a_liveness_bound_is_checked_when_parsed() {
    for bad in [
        "popen//liveness=0",
        "popen//liveness=abc",
        "popen//liveness=-1",
        "popen//liveness",
    ] {
        let e = remex::Spec::parse(bad).unwrap_err();
        assert!(e.to_string().contains("liveness"), "{bad}: {e}");
    }
}

/// Starts a controller process for `specs`, SIGKILLs it once its workers
/// run, and checks that every worker is gone within 1 s.
fn kill_controller_and_check(specs: &[String]) {
    let args: Vec<&str> = std::iter::once("group")
        .chain(specs.iter().map(String::as_str))
        .collect();
    let (mut controller, pids) =
        remex_tests::start_controller(env!("CARGO_BIN_EXE_remex-test-controller"), &args);
    assert_eq!(pids.len(), specs.len().max(pids.len()));
    controller.kill().unwrap();
    controller.wait().unwrap();
    let t0 = Instant::now();
    for pid in &pids {
        assert!(
            wait_gone(*pid, Duration::from_secs(1)),
            "worker {pid} outlived its SIGKILLed controller by 1 s ({specs:?})"
        );
    }
    eprintln!(
        "{} workers gone {:?} after the controller's SIGKILL",
        pids.len(),
        t0.elapsed()
    );
}

#[test]
fn a_killed_controller_leaves_no_ssh_worker() {
    let sshd = Sshd::start("127.0.0.2");
    let worker = format!("//worker={}", env!("CARGO_BIN_EXE_remex-test-worker"));
    kill_controller_and_check(&[sshd.spec(&worker), sshd.spec(&worker)]);
}

#[test]
fn a_killed_controller_leaves_no_worker_behind_a_relay() {
    let spec = common::spec("");
    kill_controller_and_check(&[
        format!("{spec}//id=relay"),
        format!("{spec}//via=relay"),
        format!("{spec}//via=relay"),
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_send_ends_its_stream_with_a_stated_error() {
    let gw = common::gateway().await;
    let pid = gw.rinfo().pid;
    // 1 GiB in 64 KiB chunks: far more than arrives before the kill.
    let ch = gw.remote_call("bulk", &(1u64 << 30, 65_536u64)).unwrap();
    let queue = MultiChannel::new(vec![ch.clone()])
        .make_receive_queue(Some(Value::from("end")))
        .unwrap();
    let mut chunks = 0u64;
    let mut killed = false;
    loop {
        let (_, item) = queue.get_timeout(T).await.unwrap();
        match item {
            Value::Bytes(b) => {
                assert_eq!(
                    b[..],
                    remex_tests::bulk_chunk(chunks, 65_536)[..],
                    "chunk {chunks}"
                );
                chunks += 1;
                if chunks == 50 && !killed {
                    signal(pid, libc::SIGKILL);
                    killed = true;
                }
            }
            v if v == Value::from("end") => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(killed && chunks >= 50, "{chunks} chunks");
    let e = ch.waitclose(Some(T)).await.unwrap_err();
    assert!(
        e.to_string().contains("SIGKILL") || e.to_string().contains("signal: 9"),
        "{e}"
    );
    assert!(wait_gone(pid, Duration::from_secs(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_receive_fails_the_senders_and_waiters() {
    let gw = common::gateway().await;
    let pid = gw.rinfo().pid;
    let ch = gw
        .remote_exec("let a = channel.receive(); let b = channel.receive(); channel.send(a + b);")
        .unwrap();
    ch.send(&1).await.unwrap();
    signal(pid, libc::SIGKILL);
    let e = ch.waitclose(Some(T)).await.unwrap_err();
    assert!(matches!(e, remex::Error::GatewayLost { .. }), "{e}");
    // The second half can no longer be sent: an error, not a silent drop.
    assert!(ch.send(&2).await.is_err());
    assert!(ch.receive_timeout::<i64>(T).await.is_err());
    assert!(wait_gone(pid, Duration::from_secs(2)));
    assert!(matches!(
        gw.lifecycle().join(Some(T)).await.unwrap(),
        LifecycleState::Fault(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_ignores_sigterm_does_not_outlive_its_ended_ssh_worker() {
    // An ended worker (`exit`, `Group::terminate`, Ctrl-C on `remex
    // run`) sends its process group SIGTERM. Over ssh the controller's
    // SIGKILL to the group reaches only the local ssh client, so a job
    // that ignored SIGTERM outlived its worker on the host. The worker
    // now gives the rest of its group 400 ms, then kills what is left.
    let sshd = Sshd::start("127.0.0.2");
    let worker = format!("//worker={}", env!("CARGO_BIN_EXE_remex-test-worker"));
    let gw = remex::makegateway(&sshd.spec(&worker)).await.unwrap();
    let marker = std::env::temp_dir().join(format!("remex-ignores-term-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let req = remex::worker::CommandRequest::new(format!(
        "trap '' TERM; echo > {}; exec sleep 32.3",
        marker.display()
    ));
    let _call = gw.remote_call("run", &req).unwrap();
    let until = Instant::now() + T;
    while !marker.exists() {
        assert!(Instant::now() < until, "the job did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.exit().await.unwrap();
    // Its end is the worker's last act before it exits: no event tells
    // this test, so /proc is looked at within a bound.
    let sleeping = || remex_tests::runs_command(&["sleep", "32.3"]);
    let until = Instant::now() + T;
    while sleeping() {
        assert!(
            Instant::now() < until,
            "a job that ignores SIGTERM outlived its ended ssh worker by 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::remove_file(&marker).unwrap();
}
