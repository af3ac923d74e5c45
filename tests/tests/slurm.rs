//! Workers on a real single-node Slurm (`.ci/slurm-up` starts it; `cargo
//! xtask test` runs that first), reached with `cmd=srun -u ...`: every way a
//! gateway ends leaves no job, step or worker (checked with squeue and the
//! process table), a pending job is reported with srun's own words and
//! cancelled, and `srun -n2` is named.

use std::process::Command;
use std::time::{Duration, Instant};

use remex::{makegateway, Group};
use remex_tests::wait_gone;

const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");
const T: Duration = Duration::from_secs(10);

/// Why the suite is skipped: set by `cargo xtask test` only where Slurm
/// cannot be installed.
fn skipped() -> bool {
    match std::env::var("REMEX_SLURM_SKIP") {
        Ok(why) => {
            eprintln!("the Slurm suite is skipped: {why}");
            true
        }
        Err(_) => false,
    }
}

/// A job name of this test run's own.
fn name(test: &str) -> String {
    format!("remex-{}-{test}", std::process::id())
}

fn spec(job: &str, extra: &str) -> String {
    format!("cmd=srun -u -N1 -n1 --job-name={job} {extra} {WORKER}")
}

/// The ids of the jobs named `job` that Slurm still has.
fn jobs(job: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-n", job, "-o", "%i"])
        .output()
        .expect("squeue runs (is Slurm up? .ci/slurm-up starts it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits (bounded) until Slurm has no job named `job`. Slurm's state has
/// no event to wait on: it is polled.
fn no_job_within(job: &str, bound: Duration) -> bool {
    let t0 = Instant::now();
    loop {
        if jobs(job).is_empty() {
            return true;
        }
        if t0.elapsed() > bound {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_over_srun_serves_and_each_end_leaves_no_job() {
    if skipped() {
        return;
    }
    for end in ["kill", "drop", "exit", "kill_nowait"] {
        let job = name(end);
        let gw = makegateway(&spec(&job, "")).await.unwrap();
        let r: i64 = gw
            .remote_call("square", &9)
            .unwrap()
            .receive()
            .await
            .unwrap();
        assert_eq!(r, 81);
        assert_eq!(jobs(&job).len(), 1, "the job runs while the gateway does");
        let worker = gw.rinfo().pid;
        match end {
            "kill" => gw.kill().await.unwrap(),
            "exit" => gw.exit().await.unwrap(),
            "kill_nowait" => gw.kill_nowait(),
            _ => drop(gw),
        }
        let gone = tokio::task::spawn_blocking(move || {
            (
                no_job_within(&job, Duration::from_secs(5)),
                wait_gone(worker, T),
            )
        })
        .await
        .unwrap();
        assert_eq!(gone, (true, true), "{end}: job gone, worker gone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_over_srun_runs_tasks_and_terminate_leaves_no_job() {
    if skipped() {
        return;
    }
    let job = name("group");
    let group = Group::new([format!("3*{}", spec(&job, ""))]).await.unwrap();
    let futures: Vec<_> = (0..60i64)
        .map(|i| group.submit::<i64>("square", &i))
        .collect::<remex::Result<_>>()
        .unwrap();
    let got = remex::gather(futures, remex::Errors::Raise).await.unwrap();
    assert_eq!(got.value, (0..60i64).map(|i| i * i).collect::<Vec<_>>());
    assert_eq!(jobs(&job).len(), 3);
    group.terminate(Duration::from_secs(5)).await;
    assert!(no_job_within(&job, Duration::from_secs(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_job_is_reported_in_srun_words_and_cancelled() {
    if skipped() {
        return;
    }
    // A job that takes the whole node keeps the next one pending.
    let blocker = name("blocker");
    let out = Command::new("sbatch")
        .args([
            "--exclusive",
            "--job-name",
            &blocker,
            "--wrap",
            "sleep 120",
            "-o",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t0 = Instant::now();
    while t0.elapsed() < T {
        let state = Command::new("squeue")
            .args(["-h", "-n", &blocker, "-o", "%T"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&state.stdout).trim() == "RUNNING" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let job = name("pending");
    let started = Instant::now();
    let e = makegateway(&format!("{}//start_timeout=3", spec(&job, "")))
        .await
        .unwrap_err()
        .to_string();
    let _ = Command::new("scancel").args(["-n", &blocker]).status();
    assert!(e.contains("queued and waiting for resources"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3) + T,
        "{:?}",
        started.elapsed()
    );
    assert!(
        no_job_within(&job, Duration::from_secs(5)),
        "the pending job was cancelled"
    );
    assert!(no_job_within(&blocker, T));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_in_one_step_are_named() {
    if skipped() {
        return;
    }
    let job = name("two");
    let e = remex_tests::first_failure(
        makegateway(&format!("cmd=srun -u -N1 -n2 --job-name={job} {WORKER}")).await,
        T,
    )
    .await;
    assert!(e.contains("two workers answer on one stream"), "{e}");
    assert!(no_job_within(&job, Duration::from_secs(5)));
}

#[test]
fn a_killed_controller_leaves_no_job() {
    if skipped() {
        return;
    }
    let job = name("sigkill");
    let (mut controller, pids) = remex_tests::start_controller(
        env!("CARGO_BIN_EXE_remex-test-controller"),
        &["group", &format!("2*{}", spec(&job, ""))],
    );
    assert_eq!(jobs(&job).len(), 2);
    controller.kill().unwrap();
    controller.wait().unwrap();
    assert!(
        no_job_within(&job, Duration::from_secs(5)),
        "jobs left: {:?}",
        jobs(&job)
    );
    for pid in pids {
        assert!(wait_gone(pid, T), "worker {pid} left");
    }
}
