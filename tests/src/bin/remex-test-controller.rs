//! Controller roles for the tests that SIGKILL a controller: each starts
//! its gateways, prints `PIDS pid...` on stdout, keeps its workers busy,
//! and runs until it is killed (60 s at most).
//!
//! ```text
//! remex-test-controller pinging WORKER    a ping-pong with a worker script that reads its input directly
//! remex-test-controller child WORKER      a worker with a child process (PIDS worker child)
//! remex-test-controller group SPEC...     a Group of these specs, busy in `sleep`
//! remex-test-controller clean-exit WORKER a busy worker (a script sending
//!                                         without end, a task sleeping),
//!                                         then a clean exit; prints EXITED
//! remex-test-controller run-and-end SPEC...
//!                                         a Group of these specs runs 10
//!                                         tasks and ends (terminate, 10 s);
//!                                         prints ENDED and DONE, then exits
//! remex-test-controller env-of VAR SPEC...
//!                                         a Group of these specs; prints
//!                                         ENV ID VALUE (VAR as each worker
//!                                         sees it, or unset), then DONE
//! remex-test-controller scale N TASKS WORKER
//!                                         a Group of N workers: an exec on
//!                                         each, TASKS tasks gathered, then
//!                                         terminate; prints PIDS, timings
//!                                         and DONE, or ERROR and the error
//! remex-test-controller slurm-steps SPEC  (run inside an allocation) a
//!                                         Group of SPEC: prints each
//!                                         worker's JOB job step task,
//!                                         squares on all, terminates,
//!                                         waits for the step to end,
//!                                         prints OUTER (the job's state)
//!                                         and DONE
//! ```

use std::time::{Duration, Instant};

use remex::{makegateway, Group};

/// Bounds every role: the test kills this process long before.
const LIFETIME: Duration = Duration::from_secs(60);
const T: Duration = Duration::from_secs(10);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = args.first().map(String::as_str).unwrap_or("");
    let spec = |worker: Option<&String>| {
        format!(
            "popen//worker={}",
            worker.expect("usage: remex-test-controller ROLE WORKER")
        )
    };
    match role {
        "pinging" => {
            let gw = makegateway(&spec(args.get(1))).await.unwrap();
            let ch = gw
                .remote_exec("for x in channel { channel.send(x) }")
                .unwrap();
            ch.send(&0).await.unwrap();
            ch.receive_timeout::<i64>(T).await.unwrap();
            println!("PIDS {}", gw.rinfo().pid);
            let t0 = Instant::now();
            let mut i = 0i64;
            while t0.elapsed() < LIFETIME {
                ch.send(&i).await.unwrap();
                ch.receive_timeout::<i64>(T).await.unwrap();
                i += 1;
            }
        }
        "child" => {
            let gw = makegateway(&spec(args.get(1))).await.unwrap();
            let child: u32 = gw
                .remote_call("spawn_sleeper", &())
                .unwrap()
                .receive()
                .await
                .unwrap();
            println!("PIDS {} {child}", gw.rinfo().pid);
            let _keep = gw.remote_call("sleep", &3600).unwrap();
            tokio::time::sleep(LIFETIME).await;
        }
        "slurm-steps" => {
            let group = Group::new(&args[1..]).await.unwrap();
            for g in group.gateways() {
                let c = g.rinfo().cluster.clone().expect("a Slurm task");
                println!("JOB {} {} {}", c.job_id, c.step_id, c.task);
            }
            let futures: Vec<_> = (0..100i64)
                .map(|i| group.submit::<i64>("square", &i))
                .collect::<remex::Result<_>>()
                .unwrap();
            let got = remex::gather(futures, remex::Errors::Raise).await.unwrap();
            assert_eq!(
                got.value.iter().sum::<i64>(),
                (0..100i64).map(|i| i * i).sum::<i64>()
            );
            let step = group.gateways()[0].rinfo().cluster.clone().unwrap();
            let step = format!("{}.{}", step.job_id, step.step_id);
            group.terminate(T).await;
            // The step ends; the allocation this process runs in does not
            // (squeue has no event: polled, bounded).
            let squeue = |args: &[&str]| {
                let out = std::process::Command::new("squeue")
                    .args(args)
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).to_string()
            };
            let t0 = Instant::now();
            while squeue(&["-h", "-s", "-o", "%i"])
                .lines()
                .any(|l| l.trim() == step)
            {
                assert!(t0.elapsed() < T, "step {step} still runs");
                std::thread::sleep(Duration::from_millis(100));
            }
            let job = std::env::var("SLURM_JOB_ID").unwrap();
            println!("OUTER {}", squeue(&["-h", "-j", &job, "-o", "%T"]).trim());
            println!("DONE");
        }
        "group" => {
            let group = Group::new(&args[1..]).await.unwrap();
            let pids: Vec<String> = group
                .gateways()
                .iter()
                .map(|g| g.rinfo().pid.to_string())
                .collect();
            let _busy = group.remote_call("sleep", &3600).unwrap();
            println!("PIDS {}", pids.join(" "));
            tokio::time::sleep(LIFETIME).await;
        }
        "clean-exit" => {
            let gw = makegateway(&spec(args.get(1))).await.unwrap();
            let flood = gw.remote_exec("loop { channel.send(1) }").unwrap();
            let _sleeping = gw.remote_call("sleep", &3600).unwrap();
            flood.receive_timeout::<i64>(T).await.unwrap();
            gw.exit().await.unwrap();
            println!("EXITED");
        }
        "run-and-end" => {
            // A group runs a few tasks and ends within TERMINATE; prints
            // the time the end took, then DONE, and exits at once.
            let group = Group::new(&args[1..]).await.unwrap();
            let futures: Vec<_> = (0..10i64)
                .map(|i| group.submit::<i64>("echo", &i))
                .collect::<remex::Result<_>>()
                .unwrap();
            remex::gather(futures, remex::Errors::Raise).await.unwrap();
            let t = Instant::now();
            group.terminate(Duration::from_secs(10)).await;
            println!("ENDED in {:?}", t.elapsed());
            println!("DONE");
        }
        "env-of" => {
            // [VAR, SPEC...]: a Group of the specs; prints, for each
            // gateway, `ENV ID VALUE` (or `unset`) as its worker sees VAR.
            let var = &args[1];
            let group = Group::new(&args[2..]).await.unwrap();
            for g in group.gateways() {
                let ch = g
                    .remote_exec_with(
                        "channel.send(env(name))",
                        &std::collections::HashMap::from([("name", var.as_str())]),
                    )
                    .unwrap();
                let v: Option<String> = ch.receive_timeout(T).await.unwrap();
                println!("ENV {} {}", g.id(), v.as_deref().unwrap_or("unset"));
            }
            group.terminate(T).await;
            println!("DONE");
        }
        "scale" => scale(&args[1..]).await,
        other => {
            eprintln!(
                "remex-test-controller: unknown role {other:?} (pinging, child, group, clean-exit, run-and-end, env-of, scale)"
            );
            std::process::exit(2)
        }
    }
}

/// The scale role: prints each step as it is done, so that the test can
/// report the timings.
async fn scale(args: &[String]) {
    let [n, tasks, worker] = args else {
        eprintln!("usage: remex-test-controller scale N TASKS WORKER");
        std::process::exit(2)
    };
    let n: usize = n.parse().unwrap();
    let tasks: i64 = tasks.parse().unwrap();
    let open_fds = || std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let fds_before = open_fds();
    let t0 = Instant::now();
    let group = match Group::new([format!("{n}*popen//worker={worker}")]).await {
        Ok(g) => g,
        Err(e) => {
            println!("ERROR {e}");
            std::process::exit(1)
        }
    };
    println!("STARTED {} in {:?}", group.len(), t0.elapsed());
    println!(
        "FDS {:.2} per gateway",
        (open_fds() - fds_before) as f64 / n as f64
    );
    let pids: Vec<String> = group
        .gateways()
        .iter()
        .map(|g| g.rinfo().pid.to_string())
        .collect();
    println!("PIDS {}", pids.join(" "));
    let t = Instant::now();
    let answers: Vec<i64> = group
        .remote_exec("channel.send(pid())")
        .unwrap()
        .receive_each()
        .await
        .unwrap();
    let distinct: std::collections::HashSet<_> = answers.iter().collect();
    println!("EXEC {} distinct in {:?}", distinct.len(), t.elapsed());
    let t = Instant::now();
    let futures: Vec<_> = (0..tasks)
        .map(|i| group.submit::<i64>("echo", &i))
        .collect::<remex::Result<_>>()
        .unwrap();
    let got = remex::gather(futures, remex::Errors::Raise).await.unwrap();
    let sum: i64 = got.value.iter().sum();
    println!(
        "GATHERED {} sum {sum} in {:?}",
        got.value.len(),
        t.elapsed()
    );
    let t = Instant::now();
    group.terminate(Duration::from_secs(30)).await;
    println!("TERMINATED in {:?}", t.elapsed());
    println!("DONE");
}
