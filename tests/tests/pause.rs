//! Workers paused by their controller (stopped by its user: Ctrl-Z,
//! `remex::pause_workers`): what they suspend, and how a pause still ends
//! when the controller's host is gone.
//!
//! A binary of its own, its tests one at a time: a pause holds every
//! gateway of the process.

use std::time::{Duration, Instant};

use remex::makegateway;
use remex_tests::testbed;

mod common;

const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");

/// One test at a time: a pause is the process's.
static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A process's state letter (R, S, T...), from /proc; `None` once gone.
fn state_of(pid: &str) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Runs `script` (its `{mark}` is where its process writes its pid) on a
/// fresh worker, pauses the workers once the process runs, checks that it
/// is suspended and stays so past its own end (1.5 s), resumes, and
/// returns what the script then sends.
async fn suspended_through_a_pause<R: serde::de::DeserializeOwned + Send + 'static>(
    script: &str,
) -> R {
    let _one = ONE.lock().await;
    let gw = makegateway(&common::spec("")).await.unwrap();
    let mark = std::env::temp_dir().join(format!(
        "remex-pause-{}-{}",
        std::process::id(),
        script.len()
    ));
    let _ = std::fs::remove_file(&mark);
    let ch = gw
        .remote_exec(script.replace("{mark}", &mark.display().to_string()))
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Some(p) = std::fs::read_to_string(&mark)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
        {
            break p;
        }
        assert!(Instant::now() < until, "the script's process did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let paused = remex::pause_workers().await;
    // The worker looks at the pause every 50 ms.
    let until = Instant::now() + Duration::from_secs(10);
    while state_of(&pid) != Some('T') {
        assert!(
            Instant::now() < until,
            "the script's process was not suspended: {:?}",
            state_of(&pid)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Paused past the process's own end (what is tested, not a wait).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(state_of(&pid), Some('T'), "still suspended");
    drop(paused);
    let got: R = tokio::time::timeout(Duration::from_secs(10), ch.receive())
        .await
        .expect("the script ends after the pause")
        .unwrap();
    let _ = std::fs::remove_file(&mark);
    gw.exit().await.unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripts_command_is_suspended_while_its_controller_is_paused() {
    // A task's command (the `run` task, `remex run`'s jobs) was suspended
    // at a pause; one a script started with `run(...)` ran on.
    let out: String = suspended_through_a_pause(
        r#"let r = run(["sh", "-c", "echo $$ > {mark}; sleep 1.5; echo done"]); channel.send(r.stdout)"#,
    )
    .await;
    assert_eq!(out, "done\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_a_script_reads_lines_from_is_suspended_while_its_controller_is_paused() {
    // run(...)'s command was suspended at a pause; one a script read with
    // lines(...) ran on.
    let got: Vec<String> = suspended_through_a_pause(
        r#"let got = []; for l in lines(["sh", "-c", "echo first; echo $$ > {mark}; sleep 1.5; echo done"]) { got.push(l); } channel.send(got)"#,
    )
    .await;
    assert_eq!(got, ["first", "done"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_ends_when_its_controllers_host_is_cut_off() {
    if !testbed::available() {
        return;
    }
    let _one = ONE.lock().await;
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
