//! Scale: 512 workers from one controller whose soft limit on open files
//! is the common 1024 (remex raises it to the hard limit), an exec on each,
//! 5,000 tasks gathered, terminate, nothing left; and the error that names
//! the limit when the raise is turned off.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs the scale role under `ulimit -Sn 1024`; returns its output lines
/// and whether it succeeded.
fn run_scale(n: usize, tasks: usize, keep_limit: bool) -> (Vec<String>, bool) {
    let controller = env!("CARGO_BIN_EXE_remex-test-controller");
    let worker = env!("CARGO_BIN_EXE_remex-test-worker");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -Sn 1024 && exec {controller} scale {n} {tasks} {worker}"
        ))
        .stdout(Stdio::piped());
    if keep_limit {
        cmd.env(remex::core::transport::fds::KEEP_ENV, "1");
    } else {
        cmd.env_remove(remex::core::transport::fds::KEEP_ENV);
    }
    let mut child = cmd.spawn().unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    // The controller bounds itself (its terminate has a 30 s bound, its
    // steps their own); lines are read until it exits.
    let lines: Vec<String> = out.lines().map_while(Result::ok).collect();
    let ok = remex_tests::finished(child).status.success();
    (lines, ok)
}

fn line<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix} line in {lines:?}"))
}

#[test]
fn five_hundred_twelve_workers_under_a_soft_limit_of_1024_files() {
    let hard = remex::core::transport::fds::limits().unwrap().1;
    assert!(
        hard >= 8192,
        "the hard limit on open files ({hard}) is too low for this test"
    );
    let (lines, ok) = run_scale(512, 5000, false);
    for l in lines.iter().filter(|l| !l.starts_with("PIDS")) {
        eprintln!("{l}");
    }
    assert!(ok, "{lines:?}");
    assert!(line(&lines, "STARTED ").starts_with("512 "));
    // The pipes, the child handle and the direct reader's epoll set: no
    // eventfd, timer or duplicate per gateway while nothing waits on a
    // plain thread (one-time descriptors spread over the 512).
    let fds: f64 = line(&lines, "FDS ")
        .split(' ')
        .next()
        .and_then(|f| f.parse().ok())
        .unwrap();
    assert!(fds <= 5.5, "{fds} open files per gateway");
    assert!(line(&lines, "EXEC ").starts_with("512 distinct"));
    let gathered = line(&lines, "GATHERED ");
    assert!(
        gathered.starts_with(&format!("5000 sum {} ", (0..5000i64).sum::<i64>())),
        "{gathered}"
    );
    assert!(lines.iter().any(|l| l == "DONE"));
    let pids: Vec<u32> = line(&lines, "PIDS ")
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 512);
    for pid in pids {
        assert!(
            remex_tests::wait_gone(pid, Duration::from_secs(10)),
            "worker {pid} is left"
        );
    }
}

#[test]
fn without_the_raise_the_limit_is_named_with_its_remedy() {
    // 400 gateways need more than 1024 files with either input path (the
    // pipes and the child handle, plus the direct reader's epoll set).
    let (lines, ok) = run_scale(400, 10, true);
    assert!(!ok, "{lines:?}");
    let e = line(&lines, "ERROR ");
    assert!(e.contains("files open") && e.contains("ulimit -n"), "{e}");
    assert!(e.contains("gateway gw"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_via_tree_of_one_eight_and_sixty_four_workers() {
    let w = format!("popen//worker={}", env!("CARGO_BIN_EXE_remex-test-worker"));
    let mut specs = vec![format!("{w}//id=root"), format!("8*{w}//via=root")];
    for i in 0..8 {
        specs.push(format!("8*{w}//via=gw{i}"));
    }
    let started = std::time::Instant::now();
    let g = remex::Group::new(specs).await.unwrap();
    eprintln!("1 + 8 + 64 workers ready in {:?}", started.elapsed());
    assert_eq!(g.len(), 73);
    let pids: Vec<i64> = g
        .remote_exec("channel.send(pid())")
        .unwrap()
        .receive_each()
        .await
        .unwrap();
    let distinct: std::collections::HashSet<_> = pids.iter().collect();
    assert_eq!(distinct.len(), 73);
    // A leaf's worker is a child of its relay's worker, two levels down.
    let pid = |id: &str| g.by_id(id).unwrap().rinfo().pid;
    let ppid = |p: u32| -> u32 {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(ppid(pid("gw8")), pid("gw0"));
    assert_eq!(ppid(pid("gw0")), pid("root"));
    assert_eq!(ppid(pid("gw71")), pid("gw7"));
    g.terminate(Duration::from_secs(10)).await;
    for p in pids {
        assert!(
            remex_tests::wait_gone(p as u32, Duration::from_secs(10)),
            "worker {p} is left"
        );
    }
}
