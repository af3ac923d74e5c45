//! The taskserver example, run as a user runs it: every result arrives
//! exactly once, also when a worker is killed in the middle of the run.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn taskserver() -> PathBuf {
    // cargo builds examples next to the test binaries' parent directory.
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/taskserver");
    assert!(
        path.is_file(),
        "{} is missing: run the whole suite (cargo xtask test, or cargo test -p remex), which builds the examples",
        path.display()
    );
    path
}

fn summary_line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"))
}

#[test]
fn taskserver_returns_every_result() {
    let out = Command::new(taskserver())
        .args(["--tasks", "3000"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        summary_line(&text, "results:"),
        "results:  3000 (0 missing, 0 wrong, 0 re-run after a worker ended)"
    );
    let per_worker: u64 = text
        .lines()
        .filter(|l| l.starts_with("  gw") && !l.contains(" pid "))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(per_worker, 3000);
}

/// gw1 is killed at several moments: before the tasks are handed out,
/// between its answer and its next task, while it runs one. Each moment
/// once took its own path (a send to the dead worker ended the run).
#[test]
fn taskserver_loses_no_result_when_a_worker_is_killed() {
    for delay_ms in [0, 1, 3, 8, 20] {
        kill_gw1_after(Duration::from_millis(delay_ms));
    }
}

fn kill_gw1_after(delay: Duration) {
    let mut child = Command::new(taskserver())
        .args(["--tx", "3*popen", "--tasks", "60", "--sleep-ms", "20"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let mut text = String::new();
    let mut victim = None;
    for line in lines.by_ref() {
        text.push_str(&line);
        text.push('\n');
        if let Some(pid) = line.strip_prefix("  gw1 pid ") {
            victim = Some(pid.parse::<i32>().unwrap());
            break;
        }
    }
    let victim = victim.expect("the taskserver prints its workers' pids");
    // Not a synchronisation: the delay only moves the moment of the kill
    // within the run (60 tasks of up to 20 ms over 3 workers).
    std::thread::sleep(delay);
    // SAFETY: signalling a worker process of the child we started.
    unsafe {
        libc::kill(victim, libc::SIGKILL);
    }
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    assert!(
        child.wait().unwrap().success(),
        "killed gw1 {delay:?} after its pid was printed:\n{text}"
    );
    let results = summary_line(&text, "results:");
    assert!(
        results.starts_with("results:  60 (0 missing, 0 wrong,"),
        "{text}"
    );
    assert!(remex_tests_gone(victim as u32));
}

fn remex_tests_gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}
