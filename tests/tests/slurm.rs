//! Workers on a real single-node Slurm (`.ci/slurm-up` starts it; `cargo
//! xtask test` runs that first), reached with `cmd=srun -u ...`: every way a
//! gateway ends leaves no job, step or worker (checked with squeue and the
//! process table), a pending job is reported with srun's own words and
//! cancelled, and `srun -n2` is named.

use std::process::Command;
use std::time::{Duration, Instant};

use remex::{makegateway, Group};
use remex_tests::{ran, wait_gone};

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
    // (Is Slurm up? .ci/slurm-up starts it.)
    ran(Command::new("squeue").args(["-h", "-n", job, "-o", "%i"]))
        .ok()
        .lines()
        .into_iter()
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

/// Submits a job of this test run's (named after `test`) that takes the
/// whole node, so that the next one stays pending, and waits (bounded;
/// squeue has no event: polled) until it runs. Returns its name.
fn block_the_node(test: &str) -> String {
    let blocker = name(test);
    ran(Command::new("sbatch").args([
        "--exclusive",
        "--job-name",
        &blocker,
        "--wrap",
        "sleep 120",
        "-o",
        "/dev/null",
    ]))
    .ok();
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
    blocker
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
    let blocker = block_the_node("blocker");
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

// ---- slurm// specs: remex asks Slurm for the allocation and the step ----

/// A `slurm` spec for this test run: its own job name, workers dialing
/// back to loopback.
fn slurm(job: &str, extra: &str) -> String {
    format!("slurm//job_name={job}//listen=127.0.0.1//worker={WORKER}{extra}")
}

/// The pids of the workers of `group`.
fn pids(group: &Group) -> Vec<u32> {
    group.gateways().iter().map(|g| g.rinfo().pid).collect()
}

fn all_gone(job: String, pids: Vec<u32>) -> (bool, Vec<u32>) {
    let job_gone = no_job_within(&job, Duration::from_secs(5));
    let left = pids.into_iter().filter(|p| !wait_gone(*p, T)).collect();
    (job_gone, left)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_workers_dial_back_from_one_step_and_run_tasks() {
    if skipped() {
        return;
    }
    let job = name("dial8");
    let group = Group::new([slurm(&job, "//ntasks=8")]).await.unwrap();
    assert_eq!(group.len(), 8);
    assert_eq!(jobs(&job).len(), 1, "one allocation for the eight");
    // Each gateway is the task of its rank, all in one step of the job.
    let places: Vec<_> = group
        .gateways()
        .iter()
        .map(|g| g.rinfo().cluster.clone().expect("a Slurm task"))
        .collect();
    assert_eq!(
        places.iter().map(|c| c.task).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    assert!(places.iter().all(|c| c.job_id == jobs(&job)[0]
        && c.step_id == places[0].step_id
        && c.engine == "slurm"
        && !c.node.is_empty()));
    let futures: Vec<_> = (0..400i64)
        .map(|i| group.submit::<i64>("square", &i))
        .collect::<remex::Result<_>>()
        .unwrap();
    let got = remex::gather(futures, remex::Errors::Raise).await.unwrap();
    assert_eq!(got.value, (0..400i64).map(|i| i * i).collect::<Vec<_>>());
    // What a task writes to stderr is its own worker's last lines (srun
    // labels each line with its rank), not its neighbours'.
    let third = group.gateways()[3].clone();
    let noise = third.remote_call("stdout_noise", &()).unwrap();
    assert_eq!(noise.receive::<String>().await.unwrap(), "after noise");
    let t0 = std::time::Instant::now();
    while !third
        .stderr_tail()
        .iter()
        .any(|l| l.contains("noise on stderr"))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{:?}",
            third.stderr_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(group.gateways()[2]
        .stderr_tail()
        .iter()
        .all(|l| !l.contains("noise")));
    let workers = pids(&group);
    group.terminate(Duration::from_secs(5)).await;
    let gone = tokio::task::spawn_blocking(move || all_gone(job, workers))
        .await
        .unwrap();
    assert_eq!(gone, (true, vec![]), "job gone, no worker left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_end_of_a_slurm_group_leaves_no_job_nor_worker() {
    if skipped() {
        return;
    }
    for end in ["kill", "kill_nowait", "drop", "terminate", "stopped"] {
        let job = name(&format!("end-{end}"));
        let group = Group::new([slurm(&job, "//ntasks=3")]).await.unwrap();
        let r: i64 = group.gateways()[2]
            .remote_call("square", &7)
            .unwrap()
            .receive()
            .await
            .unwrap();
        assert_eq!(r, 49);
        let workers = pids(&group);
        match end {
            "kill" => {
                for g in group.gateways() {
                    g.kill().await.unwrap();
                }
            }
            "kill_nowait" => group.gateways().iter().for_each(|g| g.kill_nowait()),
            "drop" => drop(group),
            "terminate" => group.terminate(Duration::from_secs(5)).await,
            _ => {
                // A stopped worker answers nothing: terminate gives up on
                // it, and the allocation's end takes it.
                // SAFETY: signalling a worker this test started.
                assert_eq!(unsafe { libc::kill(workers[1] as i32, libc::SIGSTOP) }, 0);
                group.terminate(Duration::from_secs(1)).await;
            }
        }
        let gone = tokio::task::spawn_blocking(move || all_gone(job, workers))
            .await
            .unwrap();
        assert_eq!(gone, (true, vec![]), "{end}: job gone, no worker left");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_over_srun_stdio_run_tasks_and_end_with_their_job() {
    if skipped() {
        return;
    }
    let job = name("stdio");
    let group = Group::new([format!(
        "slurm//job_name={job}//ntasks=2//stdio//worker={WORKER}"
    )])
    .await
    .unwrap();
    assert_eq!(jobs(&job).len(), 1);
    let tasks: Vec<_> = group
        .gateways()
        .iter()
        .map(|g| g.rinfo().cluster.clone().expect("a Slurm task").task)
        .collect();
    // One srun each: task 0 of two steps.
    assert_eq!(tasks, vec![0, 0]);
    let futures: Vec<_> = (0..50i64)
        .map(|i| group.submit::<i64>("square", &i))
        .collect::<remex::Result<_>>()
        .unwrap();
    let got = remex::gather(futures, remex::Errors::Raise).await.unwrap();
    assert_eq!(
        got.value.iter().sum::<i64>(),
        (0..50i64).map(|i| i * i).sum::<i64>()
    );
    let workers = pids(&group);
    group.terminate(Duration::from_secs(5)).await;
    let gone = tokio::task::spawn_blocking(move || all_gone(job, workers))
        .await
        .unwrap();
    assert_eq!(gone, (true, vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_mid_gather_loses_no_result() {
    if skipped() {
        return;
    }
    let (a, b) = (name("cancelled"), name("survivor"));
    let group = Group::new([slurm(&a, "//ntasks=2"), slurm(&b, "//ntasks=2")])
        .await
        .unwrap();
    let futures: Vec<_> = (0..300i64)
        .map(|i| group.submit::<i64>("slow_echo", &(20u64, i)))
        .collect::<remex::Result<_>>()
        .unwrap();
    let mut first = futures;
    let rest = first.split_off(40);
    // Mid-run: the first 40 results are in.
    let got = remex::gather(first, remex::Errors::Raise).await.unwrap();
    assert_eq!(got.value, (0..40i64).collect::<Vec<_>>());
    let scancel = Command::new("scancel").args(["-n", &a]).status().unwrap();
    assert!(scancel.success());
    let got = remex::gather(rest, remex::Errors::Raise).await.unwrap();
    assert_eq!(got.value, (40..300i64).collect::<Vec<_>>());
    assert!(no_job_within(&a, Duration::from_secs(5)));
    assert_eq!(jobs(&b).len(), 1, "the other allocation runs on");
    group.terminate(Duration::from_secs(5)).await;
    assert!(no_job_within(&b, Duration::from_secs(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_or_impossible_allocation_says_why_in_slurms_words() {
    if skipped() {
        return;
    }
    let job = name("refused");
    let e = Group::new([slurm(&job, "//partition=nosuch")])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("salloc gave no allocation"), "{e}");
    assert!(e.contains("invalid partition"), "{e}");
    // More CPUs than the node has: Slurm keeps it pending, and says why.
    let job = name("toobig");
    let e = Group::new([slurm(&job, "//ntasks=999//alloc_timeout=3")])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("PartitionConfig"), "{e}");
    assert!(
        e.contains("Requested partition configuration not available"),
        "{e}"
    );
    assert!(no_job_within(&job, Duration::from_secs(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_allocation_is_reported_with_its_reason_and_cancelled() {
    if skipped() {
        return;
    }
    let blocker = block_the_node("slurm-blocker");
    let job = name("slurm-pending");
    let started = Instant::now();
    let e = Group::new([slurm(&job, "//ntasks=2//alloc_timeout=3")])
        .await
        .unwrap_err()
        .to_string();
    let _ = Command::new("scancel").args(["-n", &blocker]).status();
    assert!(e.contains("no Slurm allocation within 3s"), "{e}");
    assert!(
        e.contains("is still pending (PENDING (Resources))")
            || e.contains("is still pending (PENDING (Priority))"),
        "{e}"
    );
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

#[test]
fn a_killed_controller_leaves_no_slurm_allocation() {
    if skipped() {
        return;
    }
    let job = name("slurm-sigkill");
    let (mut controller, pids) = remex_tests::start_controller(
        env!("CARGO_BIN_EXE_remex-test-controller"),
        &["group", &slurm(&job, "//ntasks=3")],
    );
    assert_eq!(pids.len(), 3);
    assert_eq!(jobs(&job).len(), 1);
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

#[test]
fn the_taskserver_runs_over_slurm_workers() {
    if skipped() {
        return;
    }
    let job = name("taskserver");
    let text = ran(Command::new(remex_tests::example("taskserver"))
        .args(["--tasks", "2000", "--tx"])
        .arg(format!("slurm//ntasks=4//job_name={job}//listen=127.0.0.1")))
    .ok()
    .stdout;
    assert!(
        text.contains("results:  2000 (0 missing, 0 wrong,"),
        "{text}"
    );
    assert!(no_job_within(&job, Duration::from_secs(5)));
}

#[test]
fn inside_an_allocation_workers_run_as_its_steps_and_leave_it_running() {
    if skipped() {
        return;
    }
    let job = name("outer");
    // The controller runs inside an allocation of 4 tasks (as a batch
    // script or salloc shell would); its group of 2 is a step of it, and
    // its end ends the step, not the allocation.
    let out = ran(Command::new("salloc")
        .args(["-n", "4", "--job-name", &job])
        .arg(env!("CARGO_BIN_EXE_remex-test-controller"))
        .args(["slurm-steps", &slurm(&job, "//ntasks=2//time=5")]))
    .ok();
    let (text, err) = (&out.stdout, &out.stderr);
    assert!(text.contains("DONE"), "{text}\n{err}");
    assert!(
        text.contains("OUTER RUNNING"),
        "the allocation outlives the step: {text}"
    );
    let granted: String = err
        .split("Granted job allocation ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("salloc names its job")
        .to_string();
    let steps: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("JOB "))
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            (w[0].to_string(), w[1].to_string())
        })
        .collect();
    assert_eq!(steps.len(), 2, "{text}");
    assert!(
        steps.iter().all(|(j, s)| *j == granted && *s == steps[0].1),
        "both workers are one step of the outer job {granted}: {steps:?}"
    );
    // time= applies to a new allocation only: said, not used.
    assert!(err.contains("time apply to a new allocation"), "{err}");
    assert!(no_job_within(&job, Duration::from_secs(5)));
}

/// salloc 22.05 can be caught, after its allocation ended, in a loop on
/// `waitpid` that fails with ECHILD forever, at a full core, deaf to
/// SIGTERM (seen once after a CI run: 13 minutes at 78% of a core). A
/// stand-in that does exactly that once the real salloc is done (and
/// ignores SIGHUP too) is ended by the controller before it exits:
/// nothing is left running and nothing burns CPU.
#[test]
fn a_salloc_that_spins_deaf_to_sigterm_is_ended_before_the_controller_exits() {
    if skipped() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("remex-stuck-salloc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("salloc");
    let real = Command::new("sh")
        .args(["-c", "command -v salloc"])
        .output()
        .unwrap();
    let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
    std::fs::write(
        &fake,
        format!("#!/bin/sh\ntrap '' TERM HUP\n{real} \"$@\"\nwhile :; do :; done\n"),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let job = name("stuck-salloc");
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
    let t0 = Instant::now();
    let out = ran(Command::new(env!("CARGO_BIN_EXE_remex-test-controller"))
        .args([
            "run-and-end",
            &format!("slurm//ntasks=1//job_name={job}//worker={WORKER}"),
        ])
        .env("PATH", &path))
    .ok();
    let stdout = &out.stdout;
    assert!(stdout.contains("DONE"), "{stdout}\n{}", out.stderr);
    eprintln!(
        "{} (controller exited after {:?})",
        stdout.trim(),
        t0.elapsed()
    );
    // The controller is gone: nothing of the stand-in may be left.
    let left = remex_tests::testbed::controller_processes(&["sh", "salloc"])
        .into_iter()
        .filter(|p| p.cmdline.contains(&dir.display().to_string()) || p.cmdline.contains(&job))
        .collect::<Vec<_>>();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(no_job_within(&job, T), "the allocation is still there");
    let _ = std::fs::remove_dir_all(&dir);
}
