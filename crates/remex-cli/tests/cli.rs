//! The `remex` command as a user runs it: real processes, a real sshd on
//! loopback, exit statuses and files checked from outside.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use remex_tests::{ran, Ran};

fn remex() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_remex"));
    // No worker from the environment: the program is its own.
    c.env_remove("REMEX_WORKER_PATH");
    c
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn run(args: &[&str]) -> Ran {
    ran(remex().args(args))
}

/// `c` started with its stdout and stderr piped to this test.
fn spawned(c: &mut Command, stdin: Stdio) -> std::process::Child {
    c.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// What is left to read of `r`, as text.
fn read_rest(mut r: impl std::io::Read) -> String {
    let mut text = String::new();
    r.read_to_string(&mut text).unwrap();
    text
}

/// The lines of `r`, read on a thread of their own as they come (a test
/// waits for each with a bound); the thread ends with `r`.
fn lines_of(
    r: impl std::io::Read + Send + 'static,
) -> (
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (rx, reader)
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("remex-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Pids of live processes whose command line is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

#[test]
fn run_makes_a_job_per_input_with_replacement_strings() {
    let o = run(&[
        "run", "--tx", "2*popen", "-k", "--", "echo", "{}", "{.}", "{/}", "{#}", ":::", "d/a.txt",
        "b.log", "it's",
    ]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    assert_eq!(
        o.stdout.as_str(),
        "d/a.txt d/a a.txt 1\nb.log b b.log 2\nit's it's it's 3\n"
    );
    // Two sources make their product; {N} takes one of them.
    let o = run(&[
        "run",
        "--tx",
        "3*popen",
        "-k",
        "--",
        "echo {2}{1}",
        ":::",
        "a",
        "b",
        ":::",
        "1",
        "2",
    ]);
    assert_eq!(
        o.stdout.as_str(),
        "1a\n2a\n1b\n2b\n",
        "{}",
        o.stderr.as_str()
    );
    // --dry-run prints the command lines and starts no worker.
    let o = run(&["run", "--dry-run", "--", "gzip", "-9", ":::", "x y", "z"]);
    assert_eq!(o.stdout.as_str(), "gzip -9 'x y'\ngzip -9 z\n");
}

#[test]
fn run_reads_stdin_and_tags_each_line() {
    let mut child = spawned(
        remex().args([
            "run",
            "--tx",
            "2*popen",
            "--tag",
            "-k",
            "--",
            "printf 'hi %s\\nbye\\n'",
        ]),
        Stdio::piped(),
    );
    child.stdin.take().unwrap().write_all(b"x\ny z\n").unwrap();
    let o = remex_tests::finished(child);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "x\thi x\nx\tbye\ny z\thi y z\ny z\tbye\n");
}

#[test]
fn failed_jobs_set_the_exit_status_and_the_job_log_resumes_them() {
    let d = scratch("resume");
    let log = d.join("jobs.tsv");
    let runs = d.join("runs");
    // Inputs other than 0 fail the first time they run.
    let cmd = format!(
        "echo {{}} >> {runs}; test {{}} = 0 || test -e {dir}/m{{}} || {{ touch {dir}/m{{}}; exit 3; }}",
        runs = runs.display(),
        dir = d.display()
    );
    let go = |extra: &[&str]| {
        let mut args = vec!["run", "--tx", "2*popen", "--joblog", log.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", &cmd, ":::", "0", "1", "0", "2"]);
        run(&args)
    };
    let o = go(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", o.stderr.as_str());
    assert!(
        o.stderr.as_str().contains("2 of 4 jobs failed"),
        "{}",
        o.stderr.as_str()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand"
    );
    let mut exits: Vec<(String, String)> = lines[1..]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            // This machine's workers are `:`, as in GNU parallel's log.
            assert_eq!(f[1], ":", "{l}");
            (f[0].to_string(), f[6].to_string())
        })
        .collect();
    exits.sort();
    assert_eq!(
        exits,
        [("1", "0"), ("2", "3"), ("3", "0"), ("4", "3")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // --resume-failed runs jobs 2 and 4 again (they succeed now) ...
    let o = go(&["--resume-failed"]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    let ran = std::fs::read_to_string(&runs).unwrap();
    assert_eq!(ran.lines().count(), 6, "{ran}");
    // ... and --resume runs nothing.
    let o = go(&["--resume"]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 6);
    std::fs::remove_dir_all(d).unwrap();
}

/// `--resume` with `--resume-failed` (or `--retry-failed`): the failed
/// jobs run again, as GNU parallel takes them (remex refused the two
/// together). With GNU parallel here, the same.
#[test]
fn resume_with_resume_failed_runs_the_failed_jobs_again() {
    let d = scratch("resume-both");
    let both = |make: &dyn Fn() -> Command, log: &Path| {
        let log = log.to_str().unwrap();
        let first = [
            "-k",
            "-j1",
            "--joblog",
            log,
            "echo {}; exit {}",
            ":::",
            "1",
            "0",
        ];
        let o = remex_tests::output_of(make().args(first));
        assert_eq!(o.status.code(), Some(1));
        for again in [
            &[
                "--resume",
                "--resume-failed",
                "echo {}; exit {}",
                ":::",
                "1",
                "0",
            ][..],
            &["--resume", "--retry-failed"][..],
        ] {
            let o = remex_tests::output_of(make().args(["-k", "-j1", "--joblog", log]).args(again));
            assert_eq!(
                (o.status.code(), out(&o)),
                (Some(1), "1\n".to_string()),
                "{again:?}: {}",
                err(&o)
            );
        }
    };
    let ours = || {
        let mut c = remex();
        c.args(["run", "--tx", "popen", "--no-bar"]);
        c
    };
    both(&ours, &d.join("ours"));
    if gnu_parallel().is_some() {
        both(&|| gnu_parallel().expect("installed"), &d.join("theirs"));
    }
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn retries_run_a_failing_job_again() {
    let d = scratch("retries");
    // Fails twice, then succeeds.
    let cmd = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); echo $((n+1)) > {c}; test $n -ge 2 && echo ok {{}}",
        c = d.join("count").display()
    );
    let o = run(&[
        "run",
        "--tx",
        "popen",
        "--retries",
        "3",
        "--",
        &cmd,
        ":::",
        "x",
    ]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    assert_eq!(o.stdout.as_str(), "ok x\n");
    assert_eq!(
        std::fs::read_to_string(d.join("count")).unwrap().trim(),
        "3"
    );
    // Two attempts are not enough for another such job.
    std::fs::remove_file(d.join("count")).unwrap();
    let o = run(&[
        "run",
        "--tx",
        "popen",
        "--retries",
        "2",
        "--",
        &cmd,
        ":::",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", o.stderr.as_str());
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn halt_now_kills_the_running_jobs_and_a_timeout_ends_a_job() {
    let started = Instant::now();
    let o = run(&[
        "run",
        "--tx",
        "2*popen",
        "--halt",
        "now,fail=1",
        "--",
        "test {} = fail && exit 1; sleep {}",
        ":::",
        "31.25",
        "fail",
        "31.25",
        "31.25",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(o.status.code().is_some_and(|c| c >= 1), "{:?}", o.status);
    assert!(
        o.stderr.as_str().contains("--halt now,fail=1 reached"),
        "{}",
        o.stderr.as_str()
    );
    assert!(
        o.stderr.as_str().contains("killed by --halt"),
        "{}",
        o.stderr.as_str()
    );
    // The sleeps were killed with their jobs (the workers are gone too).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_running(&["sleep", "31.25"]).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(processes_running(&["sleep", "31.25"]), Vec::<u32>::new());

    let started = Instant::now();
    let o = run(&[
        "run",
        "--tx",
        "popen",
        "--timeout",
        "0.5",
        "--",
        "sleep",
        ":::",
        "32.5",
    ]);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(o.status.code(), Some(1), "{}", o.stderr.as_str());
    assert!(
        o.stderr.as_str().contains("job 1 timed out: sleep 32.5"),
        "{}",
        o.stderr.as_str()
    );
}

/// A `--halt` share that is never reached: the run ends with the share
/// of the jobs run (retries counted) that failed, rounded up, as GNU
/// parallel's (remex ended with the number failed). With GNU parallel
/// here, its statuses too.
#[test]
fn a_halt_share_not_reached_ends_with_the_share_failed() {
    let cases: &[(&[&str], i32)] = &[
        (
            &[
                "--halt",
                "now,fail=50%",
                "exit {}",
                ":::",
                "0",
                "0",
                "0",
                "0",
                "2",
            ],
            20,
        ),
        (
            &["--halt", "soon,fail=50%", "exit {}", ":::", "0", "3", "0"],
            34,
        ),
        (
            &["--halt", "soon,success=50%", "exit {}", ":::", "1", "2"],
            100,
        ),
        // 3 of the 8 runs failed (two tries of each failing job).
        (
            &[
                "--halt",
                "soon,success=50%",
                "--retries",
                "2",
                "exit {}",
                ":::",
                "102",
                "0",
                "255",
                "200",
                "0",
            ],
            38,
        ),
        // A number: the number failed.
        (
            &["--halt", "soon,fail=3", "exit {}", ":::", "0", "1", "1"],
            2,
        ),
    ];
    for (args, want) in cases {
        let o = ran(remex()
            .args(["run", "--tx", "popen", "--no-bar", "-j1"])
            .args(*args));
        assert_eq!(o.status.code(), Some(*want), "{args:?}: {}", o.stderr);
        if let Some(g) = gnu_output(
            |p| {
                p.arg("-j1").args(*args);
            },
            None,
        ) {
            assert_eq!(g.status.code(), Some(*want), "parallel {args:?}");
        }
    }
}

/// `--retries N -j1`: a failed job's next try runs before the next job,
/// as GNU parallel's, so the output keeps the inputs' order (the next
/// job was already on its way to the worker and ran first).
#[test]
fn retries_with_one_slot_run_a_failed_job_again_before_the_next() {
    let args = [
        "-j1",
        "--retries",
        "2",
        "echo {}; exit {}",
        ":::",
        "200",
        "0",
        "200",
        "0",
        "0",
    ];
    let want = "200\n0\n200\n0\n0\n";
    for _ in 0..3 {
        let o = ran(remex()
            .args(["run", "--tx", "popen", "--no-bar"])
            .args(args));
        assert_eq!(o.status.code(), Some(2), "{}", o.stderr);
        assert_eq!(o.stdout, want);
    }
    if let Some(g) = gnu_output(
        |p| {
            p.args(args);
        },
        None,
    ) {
        assert_eq!(out(&g), want, "parallel");
    }
}

#[test]
fn a_job_whose_worker_dies_runs_on_another_worker() {
    let d = scratch("workerdies");
    let marker = d.join("killed");
    // The first attempt kills its own worker (sh's parent).
    let cmd = format!(
        "test -e {m} || {{ touch {m}; kill -9 $PPID; sleep 5; }}; echo ran {{}}",
        m = marker.display()
    );
    let o = run(&["run", "--tx", "2*popen", "--", &cmd, ":::", "once"]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    assert_eq!(o.stdout.as_str(), "ran once\n");
    assert!(marker.exists());
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn bad_input_gets_a_clear_error() {
    let o = run(&["run", "--", "cat", "::::", "/nonexistent/inputs"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        o.stderr
            .as_str()
            .contains("cannot read /nonexistent/inputs"),
        "{}",
        o.stderr.as_str()
    );
    let o = run(&["run", "--tx", "nosuch=x", "--", "true", ":::", "1"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        o.stderr.as_str().contains("nosuch"),
        "{}",
        o.stderr.as_str()
    );
    // A --plus pattern the regex crate does not read: named, before any
    // job (it stayed in the command as written).
    let o = run(&["run", "--plus", "echo", "{/#?/X}", ":::", "a"]);
    assert_eq!(o.status.code(), Some(255), "{}", o.stderr);
    assert!(o.stderr.contains("{/#?/X}"), "{}", o.stderr);
    assert_eq!(o.stdout, "");
    let o = run(&["run", "--halt", "sometimes", "--", "true", ":::", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        o.stderr.as_str().contains("--halt \"sometimes\""),
        "{}",
        o.stderr.as_str()
    );
    // GNU parallel's status for it: 255 (--results DIR would do too).
    let o = run(&["run", "--resume", "--", "true", ":::", "1"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        o.stderr.as_str().contains("--joblog"),
        "{}",
        o.stderr.as_str()
    );
    let o = run(&["--help"]);
    assert!(
        o.stdout
            .as_str()
            .contains("remex run --tx 4*popen --tx ssh=host1"),
        "{}",
        o.stdout.as_str()
    );
    let o = run(&["run", "--help"]);
    assert!(
        o.stdout.as_str().contains("--resume-failed"),
        "{}",
        o.stdout.as_str()
    );
}

#[test]
fn exec_runs_on_every_worker_tagged_or_merged() {
    let o = run(&[
        "exec",
        "--tx",
        "2*popen",
        "--tx",
        "popen//id=solo",
        "--",
        "echo",
        "hello",
    ]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    let mut lines: Vec<String> = o.stdout.as_str().lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["local#1: hello", "local#2: hello", "solo: hello"]);

    let o = run(&[
        "exec",
        "--tx",
        "2*popen",
        "--tx",
        "popen//id=other//env:X=2",
        "-b",
        "--",
        "echo ${X:-1}",
    ]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    assert_eq!(
        o.stdout.as_str(),
        "---------------\nlocal#1,local#2 (2)\n---------------\n1\n---------------\nother (1)\n---------------\n2\n"
    );

    let o = run(&[
        "exec",
        "--tx",
        "popen",
        "--",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(o.stdout.as_str(), "local: out\n");
    assert!(
        o.stderr.as_str().contains("local: err\n"),
        "{}",
        o.stderr.as_str()
    );
    assert!(
        o.stderr
            .as_str()
            .contains("remex: local: exited with code 3"),
        "{}",
        o.stderr.as_str()
    );
}

#[test]
fn run_and_exec_reach_an_ssh_host_that_has_nothing_installed() {
    let sshd = remex_tests::Sshd::start_for_new_user("127.0.0.5");
    let spec = sshd.spec("");
    let o = run(&[
        "run",
        "--tx",
        &spec,
        "--tx",
        "popen",
        "-k",
        "--tag",
        "--",
        "echo {} on $(id -un)",
        ":::",
        "a",
        "b",
        "c",
        "d",
    ]);
    assert!(o.status.success(), "{}\n{}", o.stderr.as_str(), sshd.log());
    let text = o.stdout.as_str();
    assert_eq!(text.lines().count(), 4, "{text}");
    for x in ["a", "b", "c", "d"] {
        assert!(text.contains(&format!("{x}\t{x} on ")), "{text}");
    }
    // The ssh worker was this remex binary, uploaded into the fresh home.
    assert!(Path::new(&sshd.home()).join(".cache/remex").is_dir());
    let o = run(&["exec", "--tx", &spec, "--", "echo $HOME"]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    assert!(
        o.stdout
            .as_str()
            .ends_with(&format!(": {}\n", sshd.home().display())),
        "{}",
        o.stdout.as_str()
    );
}

#[test]
fn a_job_made_from_a_line_of_stdin_runs_and_prints_before_the_next_line() {
    // `tail -f log | remex run ...`: stdin stays open and lines come
    // slowly; each line's job runs and is printed at once (the loop used
    // to wait, reading, until 4 lines had come or stdin ended).
    for keep in [false, true] {
        let mut c = remex();
        c.args(["run", "--tx", "2*popen"]);
        if keep {
            c.arg("-k");
        }
        let mut child = spawned(c.args(["--", "echo", "got"]), Stdio::piped());
        let mut stdin = child.stdin.take().unwrap();
        let (rx, _) = lines_of(child.stdout.take().unwrap());
        for word in ["a", "b", "c"] {
            writeln!(stdin, "{word}").unwrap();
            let line = rx.recv_timeout(Duration::from_secs(30));
            if line.is_err() {
                let _ = child.kill();
            }
            assert_eq!(
                line.as_deref(),
                Ok(format!("got {word}").as_str()),
                "-k {keep}: the job of {word:?}, stdin still open"
            );
        }
        drop(stdin);
        let o = remex_tests::finished(child);
        assert!(o.status.success(), "{}", err(&o));
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)).ok(), None);
    }
}

#[test]
fn sighup_starts_no_more_jobs_and_sigusr1_lists_the_running_ones() {
    // GNU parallel's signals: `kill -USR1` lists the running jobs on
    // stderr, `kill -HUP` starts no more and waits for the running ones
    // (both used to end remex at once).
    let d = scratch("hup");
    let cmd = format!(
        "touch {d}/started-{{}}; i=0; while [ ! -e {d}/go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; echo {{}}",
        d = d.display()
    );
    let inputs: Vec<String> = (1..=8).map(|i| i.to_string()).collect();
    let mut child = spawned(
        remex()
            .args(["run", "--tx", "2*popen", "--no-bar", "--", &cmd, ":::"])
            .args(&inputs),
        Stdio::null(),
    );
    let pid = child.id().to_string();
    let (rx, _) = lines_of(child.stderr.take().unwrap());
    let started = || {
        std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("started-"))
            .count()
    };
    let until = Instant::now() + Duration::from_secs(30);
    while started() < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(started(), 2, "two slots, two jobs running");
    let signal = |name: &str| {
        assert!(Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap()
            .success());
    };
    // A line of stderr holding `what`, within 30 s.
    let wait_for = |what: &str| {
        let until = Instant::now() + Duration::from_secs(30);
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no line of stderr holding {what:?}");
    };
    signal("-USR1");
    let listed = wait_for("started-");
    assert!(listed.starts_with("remex: touch "), "{listed}");
    signal("-HUP");
    wait_for("SIGHUP received: no new jobs will be started");
    std::fs::write(d.join("go"), "").unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("remex did not end after SIGHUP and the jobs' end");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let stdout = read_rest(child.stdout.take().unwrap());
    let ran = stdout.lines().count();
    // The running jobs and those already given to workers (one more per
    // slot) end; no other starts.
    assert!((2..=4).contains(&ran), "{ran} jobs ran: {stdout:?}");
    assert_eq!(started(), ran);
    std::fs::remove_dir_all(d).unwrap();
}

/// Whether the child `pid` stopped (rather than ended): waits for its
/// next change of state, as a job control shell does.
fn stops(pid: rustix::process::Pid) -> bool {
    rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::UNTRACED)
        .unwrap()
        .is_some_and(|(_, s)| s.stopped())
}

/// A process's state letter (R, S, T, ...), from /proc; `None` once it
/// is gone.
fn state_of(pid: impl std::fmt::Display) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Waits (at most 60 s) for `child` to end; kills it and fails if not.
fn ended_within(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("remex did not end: {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn inputs_read_from_a_terminal_are_announced() {
    // `remex run echo` with no `:::` reads its inputs from stdin: from a
    // terminal that looked like a hang (GNU parallel warns). `script`
    // gives remex a terminal and passes this test's lines to it.
    let command = format!("{} run --no-bar echo got", env!("CARGO_BIN_EXE_remex"));
    let mut child = spawned(
        Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env_remove("REMEX_WORKER_PATH"),
        Stdio::piped(),
    );
    child.stdin.take().unwrap().write_all(b"x\n").unwrap();
    let o = remex_tests::finished(child);
    let text = out(&o);
    assert!(o.status.success(), "{text}{}", err(&o));
    assert!(
        text.contains("remex: reading the inputs from the terminal"),
        "{text}"
    );
    assert!(text.contains("got x"), "{text}");
    // Piped in: no word.
    let mut child = spawned(
        remex().args(["run", "--no-bar", "echo", "got"]),
        Stdio::piped(),
    );
    child.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let o = remex_tests::finished(child);
    assert_eq!((out(&o).as_str(), err(&o).as_str()), ("got y\n", ""));
}

#[test]
fn output_into_a_closed_pipe_ends_the_run_as_gnu_parallel_does() {
    // `remex run ... | head -1`: once the reader is gone, remex ends
    // with 141 (a shell's status for a death by SIGPIPE, GNU parallel's)
    // and starts no more jobs. It used to run all of them for no reader
    // and exit 0.
    let d = scratch("epipe");
    std::fs::create_dir(d.join("started")).unwrap();
    let inputs: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    // Job 1 prints at once; the others wait for `go`, made once the
    // reader is gone, so that no job ends between the first line and
    // the close, however slow this test is.
    let cmd = format!(
        "touch {d}/started/{{}}; [ {{}} = 1 ] || while [ ! -e {d}/go ]; do sleep 0.02; done; echo {{}}",
        d = d.display()
    );
    let mut child = spawned(
        remex()
            .args(["run", "--no-bar", "--tx", "2*popen", "--", &cmd, ":::"])
            .args(&inputs),
        Stdio::null(),
    );
    let mut first = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    assert_eq!(first, "1\n");
    drop(out);
    std::fs::write(d.join("go"), "").unwrap();
    let status = ended_within(&mut child, "its stdout closed");
    let stderr = read_rest(child.stderr.take().unwrap());
    assert_eq!(status.code(), Some(141), "{stderr}");
    assert_eq!(
        stderr,
        "remex: the output's reader went away (a closed pipe): no more jobs started\n"
    );
    // Job 1, and the jobs given to the two workers then (at most two
    // each); the next line written ends the run.
    let started = std::fs::read_dir(d.join("started")).unwrap().count();
    assert!(started <= 6, "{started} of 40 jobs started");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn ctrl_z_for_longer_than_the_liveness_bound_loses_no_worker_and_no_job() {
    // Workers over a network end their session when their controller is
    // silent for the liveness bound (10 s by default): Ctrl-Z on `remex
    // run` for longer used to lose every job not yet finished ("no live
    // worker"). The command now tells its workers before it stops. Over
    // ssh (the ssh client, in a process group of its own, carries the
    // word while remex is stopped) and a local worker with a bound.
    // The other stops of job control (a background `remex` reading the
    // terminal: SIGTTIN) are served alike.
    use rustix::process::Signal;
    let sshd = remex_tests::Sshd::start_for_new_user("127.0.0.7");
    for (spec, stop) in [
        (sshd.spec("//liveness=1"), Signal::TSTP),
        ("popen//liveness=1".to_string(), Signal::TTIN),
    ] {
        stopped_for_three_bounds(&spec, stop);
    }
}

/// Six jobs over `spec` (a liveness bound of 1 s), with remex stopped by
/// `stop` after the first for three times the bound: every job's line
/// comes, and no word of the bound.
fn stopped_for_three_bounds(spec: &str, stop: rustix::process::Signal) {
    use std::os::unix::process::CommandExt;
    let inputs: Vec<String> = (1..=6).map(|i| i.to_string()).collect();
    let mut child = spawned(
        remex()
            .args(["run", "--no-bar", "-k", "--tx", spec, "--"])
            .args(["sleep 0.3; echo job", ":::"])
            .args(&inputs)
            // A job of its own, as a shell makes it: its parent (this test)
            // in another group of the session, so a terminal stop applies.
            .process_group(0),
        Stdio::null(),
    );
    let pid = rustix::process::Pid::from_child(&child);
    let (rx, _) = lines_of(child.stdout.take().unwrap());
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30)).unwrap(),
        "job 1",
        "the first job's line"
    );
    rustix::process::kill_process(pid, stop).unwrap();
    // The stop, as the shell sees it.
    assert!(stops(pid), "{stop:?} stops the command");
    // Stopped for three times the bound (what is tested, not a wait).
    std::thread::sleep(Duration::from_secs(3));
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    let status = ended_within(&mut child, "after SIGCONT");
    let stderr = read_rest(child.stderr.take().unwrap());
    assert!(status.success(), "{spec}: {status}: {stderr}");
    let rest: Vec<String> = rx.iter().collect();
    assert_eq!(
        rest.len(),
        5,
        "{spec}: every other job's line: {rest:?} {stderr}"
    );
    assert!(!stderr.contains("liveness"), "{spec}: {stderr}");
}

#[test]
fn ctrl_z_suspends_the_jobs_and_their_timeouts_until_the_command_continues() {
    // GNU parallel stops its jobs at Ctrl-Z and continues them at `fg`.
    // remex's jobs are in their workers' process groups, which a terminal
    // stop does not reach: they ran on while remex was stopped, and a
    // timeout counted the stop. Now the workers suspend them (SIGTSTP)
    // and move their timeouts on by the pause.
    use std::os::unix::process::CommandExt;
    let d = scratch("ctrl-z-jobs");
    let cmd = format!(
        "echo $$ > {}/{{}}.pid; sleep 1.5; echo done {{}}",
        d.display()
    );
    let mut child = spawned(
        remex()
            .args([
                "run",
                "--no-bar",
                "-k",
                "--timeout",
                "3",
                "--tx",
                "2*popen",
                "--",
            ])
            .args([&cmd, ":::", "a", "b"])
            .process_group(0),
        Stdio::null(),
    );
    let pid = rustix::process::Pid::from_child(&child);
    // Both jobs running: their shells' pids (waited for with a bound; no
    // event tells this test a job started).
    let until = Instant::now() + Duration::from_secs(30);
    let jobs: Vec<String> = loop {
        let read: Vec<String> = ["a", "b"]
            .iter()
            .filter_map(|x| std::fs::read_to_string(d.join(format!("{x}.pid"))).ok())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        if read.len() == 2 {
            break read;
        }
        assert!(Instant::now() < until, "the jobs did not start");
        std::thread::sleep(Duration::from_millis(10));
    };
    rustix::process::kill_process(pid, rustix::process::Signal::TSTP).unwrap();
    assert!(stops(pid), "SIGTSTP stops the command");
    // The jobs follow (their workers look every 50 ms).
    let until = Instant::now() + Duration::from_secs(10);
    while !jobs.iter().all(|j| state_of(j) == Some('T')) {
        assert!(
            Instant::now() < until,
            "the jobs were not suspended: {:?}",
            jobs.iter().map(state_of).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Stopped past the jobs' timeout (what is tested, not a wait).
    std::thread::sleep(Duration::from_secs(4));
    assert!(jobs.iter().all(|j| state_of(j) == Some('T')));
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    let status = ended_within(&mut child, "after SIGCONT");
    let stdout = read_rest(child.stdout.take().unwrap());
    let stderr = read_rest(child.stderr.take().unwrap());
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout, "done a\ndone b\n", "{stderr}");
    std::fs::remove_dir_all(d).unwrap();
}

/// A job's command line that writes `DIR/NAME.started`, runs until
/// SIGTERM, and then writes `DIR/NAME.clean` (its cleanup) and exits.
fn cleans_up_at_term(dir: &Path, name: &str) -> String {
    format!(
        "trap 'echo > {d}/{name}.clean; exit 0' TERM; echo > {d}/{name}.started; while :; do sleep 0.1; done",
        d = dir.display()
    )
}

#[test]
fn ctrl_c_gives_the_jobs_their_cleanup_and_remex_dies_of_it() {
    // GNU parallel sends its jobs SIGTERM at Ctrl-C (its --termseq);
    // remex died at once and its workers then killed the jobs (SIGKILL),
    // so a job's `trap ... TERM` never ran. Now the jobs get the kill
    // sequence (GNU's default: SIGTERM three times, then SIGKILL), a job
    // that ignores it is killed after, and remex dies of the SIGINT (a
    // shell loop around it stops).
    use std::os::unix::process::ExitStatusExt;
    let d = scratch("ctrl-c");
    let cleans = cleans_up_at_term(&d, "a");
    let ignores = format!(
        "trap '' TERM; echo > {d}/b.started; exec sleep 31.7",
        d = d.display()
    );
    let mut child = spawned(
        remex().args([
            "run", "--no-bar", "--tx", "2*popen", ":::", &cleans, &ignores,
        ]),
        Stdio::null(),
    );
    let until = Instant::now() + Duration::from_secs(30);
    while !(d.join("a.started").exists() && d.join("b.started").exists()) {
        assert!(Instant::now() < until, "the jobs did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = ended_within(&mut child, "after SIGINT");
    let stderr = read_rest(child.stderr.take().unwrap());
    assert_eq!(status.signal(), Some(2), "{status}: {stderr}");
    assert!(d.join("a.clean").exists(), "the cleanup ran: {stderr}");
    assert_eq!(stderr, "", "nothing said of the ended jobs");
    // The job that ignored SIGTERM is gone too (no event tells; /proc is
    // looked at within a bound).
    let sleeping = || remex_tests::runs_command(&["sleep", "31.7"]);
    let until = Instant::now() + Duration::from_secs(10);
    while sleeping() {
        assert!(
            Instant::now() < until,
            "a job that ignores SIGTERM was left"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn termseq_ends_the_jobs_at_halt_now_and_at_ctrl_c_as_in_gnu_parallel() {
    // GNU parallel ends a job with its --termseq (default
    // TERM,200,TERM,100,TERM,50,KILL,25) at a timeout, at `--halt now`
    // and at Ctrl-C. remex used it at a timeout only: `--halt now` killed
    // the running jobs with SIGKILL (no cleanup trap ran), and Ctrl-C
    // sent SIGTERM whatever --termseq said.
    use std::os::unix::process::ExitStatusExt;
    let d = scratch("termseq");
    let wait_for = |name: &str| {
        let until = Instant::now() + Duration::from_secs(30);
        while !d.join(name).exists() {
            assert!(Instant::now() < until, "{name} never came");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // --halt now: the other job fails once this one runs.
    let cleans = cleans_up_at_term(&d, "a");
    let fails = format!(
        "while [ ! -e {d}/a.started ]; do sleep 0.02; done; exit 1",
        d = d.display()
    );
    let out = remex_tests::output_of(
        remex()
            .args(["run", "--no-bar", "--tx", "2*popen", "--halt", "now,fail=1"])
            .args([":::", &cleans, &fails]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        d.join("a.clean").exists(),
        "the job killed by --halt now ran its cleanup: {stderr}"
    );
    // Ctrl-C with a sequence that starts with SIGINT, to a job that
    // ignores SIGTERM.
    let on_int = format!(
        "trap '' TERM; trap 'echo > {d}/b.clean; exit 0' INT; echo > {d}/b.started; while :; do sleep 0.1; done",
        d = d.display()
    );
    let mut child = spawned(
        remex()
            .args([
                "run",
                "--no-bar",
                "--tx",
                "popen",
                "--termseq",
                "INT,2000,KILL,25",
            ])
            .args([":::", &on_int]),
        Stdio::null(),
    );
    wait_for("b.started");
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = ended_within(&mut child, "after SIGINT");
    let stderr = read_rest(child.stderr.take().unwrap());
    assert_eq!(status.signal(), Some(2), "{status}: {stderr}");
    assert!(
        d.join("b.clean").exists(),
        "the job got --termseq's SIGINT: {stderr}"
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_terminal_stop_sent_to_an_orphaned_command_is_discarded() {
    // The kernel discards SIGTSTP sent to an orphaned process group (no
    // shell would ever continue it); the command, which catches SIGTSTP
    // to pause its workers, does the same rather than stop for ever.
    let mut child = spawned(
        Command::new("setsid")
            .arg(env!("CARGO_BIN_EXE_remex"))
            .env_remove("REMEX_WORKER_PATH")
            .args([
                "run",
                "--no-bar",
                "-u",
                "--",
                "echo {}; sleep 1",
                ":::",
                "a",
            ]),
        Stdio::null(),
    );
    // setsid execs remex (it is not a group leader here): once the job's
    // line comes, the pid is remex's, in a session of its own, with its
    // handler set.
    let pid = rustix::process::Pid::from_child(&child);
    let (rx, _) = lines_of(child.stdout.take().unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), "a");
    rustix::process::kill_process(pid, rustix::process::Signal::TSTP).unwrap();
    let status = ended_within(&mut child, "an orphaned command stopped by SIGTSTP");
    assert!(status.success(), "{status}");
    assert_eq!(rx.iter().count(), 0, "nothing more on stdout");
}

#[test]
fn a_terminal_stop_in_a_container_stops_remex_or_is_discarded_as_the_kernel_would() {
    // In a pid namespace (a container) a process's group leader may be
    // outside it: its id reads as 0, and the command's stop handler
    // panicked on it (CI, in a container, saw the jobs run on through a
    // Ctrl-Z). And the first process of a namespace (remex as a
    // container's command) cannot stop at all: the command paused its
    // workers and waited for a continue that never came.
    use std::os::unix::process::CommandExt;
    let unshare = |inner: &[&str]| {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--kill-child", "--"])
            .args(inner)
            .arg(env!("CARGO_BIN_EXE_remex"))
            .args(["run", "--no-bar", "-u", "-j1", "--tx", "popen", "--"])
            .args(["echo {}; sleep 0.5", ":::", "a", "b", "c"])
            // A job of the test's shell: the stop applies to the group.
            .process_group(0);
        spawned(&mut c, Stdio::null())
    };
    // remex inside, under a shell that is the namespace's first process:
    // remex's group is unshare's, outside. SIGTSTP stops it.
    let mut child = unshare(&["sh", "-c", "\"$0\" \"$@\" & wait"]);
    let (rx, _) = lines_of(child.stdout.take().unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), "a");
    let sh = remex_tests::children_of(child.id());
    let remex = remex_tests::children_of(sh[0])[0];
    let pid = rustix::process::Pid::from_raw(remex as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TSTP).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while state_of(remex) != Some('T') {
        assert!(
            Instant::now() < until,
            "SIGTSTP did not stop remex: {:?}",
            state_of(remex)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    let status = ended_within(&mut child, "continued in a namespace");
    let stderr = read_rest(child.stderr.take().unwrap());
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(rx.iter().collect::<Vec<_>>(), ["b", "c"], "{stderr}");
    // remex the namespace's first process: the stop is discarded, and
    // the run ends by itself.
    let mut child = unshare(&[]);
    let (rx, _) = lines_of(child.stdout.take().unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), "a");
    let remex = remex_tests::children_of(child.id())[0];
    let pid = rustix::process::Pid::from_raw(remex as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TSTP).unwrap();
    let status = ended_within(&mut child, "a stop of a namespace's first process");
    let stderr = read_rest(child.stderr.take().unwrap());
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(rx.iter().collect::<Vec<_>>(), ["b", "c"], "{stderr}");
}

#[test]
fn sshlogin_files_are_found_where_gnu_parallel_looks_for_them() {
    // `-S ..` and `--slf ..` read ~/.parallel/sshloginfile, `--slf NAME`
    // looks in ~/.parallel when NAME is not here, `-S -` reads stdin (as
    // GNU parallel does; `..` was taken for a host name).
    let home = scratch("slf-home");
    std::fs::create_dir_all(home.join(".parallel")).unwrap();
    std::fs::write(home.join(".parallel/sshloginfile"), "# this machine\n2/:\n").unwrap();
    std::fs::write(home.join(".parallel/mine"), ":\n").unwrap();
    for login in [&["-S", ".."][..], &["--slf", ".."], &["--slf", "mine"]] {
        let o = ran(remex()
            .env("HOME", &home)
            .current_dir(&home)
            .args(["run", "--no-bar", "-k"])
            .args(login)
            .args(["echo", ":::", "a", "b"]));
        assert!(o.status.success(), "{login:?}: {}", o.stderr.as_str());
        assert_eq!(o.stdout.as_str(), "a\nb\n", "{login:?}");
    }
    let (ok, got, e) = with_stdin(
        {
            let mut c = remex();
            c.args(["run", "--no-bar", "-k", "-S", "-", "echo", ":::", "c"]);
            c
        },
        Some(":\n"),
    );
    assert!(ok, "{e}");
    assert_eq!(got, "c\n");
    // Not there: named, with where it was looked for.
    let o = ran(remex()
        .env("HOME", home.join("none"))
        .args(["run", "--no-bar", "-S", "..", "echo", ":::", "a"]));
    assert_eq!(o.status.code(), Some(255));
    assert!(
        o.stderr
            .as_str()
            .contains("cannot read --sshloginfile .. (")
            && o.stderr.as_str().contains(".parallel/sshloginfile"),
        "{}",
        o.stderr.as_str()
    );
    std::fs::remove_dir_all(home).unwrap();
}

#[test]
fn a_slow_reader_of_the_output_loses_no_worker_and_no_line() {
    // `remex run ... | less`: while the output waits for its reader, the
    // workers' liveness probes still go (a worker hearing nothing for
    // its bound ends its session). With the command's loop and the
    // connections on one thread, a full stdout held the probes and the
    // jobs were lost ("no live worker").
    let child = remex()
        .args([
            "run",
            "--no-bar",
            "--tx",
            "popen//liveness=2",
            "seq 100000; :",
            ":::",
            "1",
            "2",
            "3",
            "4",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader is away for 2.5 liveness bounds (jobs 3 and 4 wait for
    // the first results to be taken), then reads it all.
    std::thread::sleep(Duration::from_secs(5));
    let o = remex_tests::finished(child);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o).lines().count(), 400_000, "{}", err(&o));
}

#[test]
fn exec_streams_each_line_as_the_command_writes_it() {
    use std::io::BufRead;
    let d = scratch("stream");
    let mark = d.join("go");
    let cmd = format!(
        "echo first; for i in $(seq 600); do [ -e {m} ] && break; sleep 0.05; done; echo second",
        m = mark.display()
    );
    let mut child = remex()
        .args(["exec", "--tx", "popen", "--", &cmd])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // The first line arrives while the command still waits for the mark.
    assert_eq!(lines.next().unwrap().unwrap(), "local: first");
    std::fs::write(&mark, "").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "local: second");
    assert!(remex_tests::finished(child).status.success());
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn rsync_sends_a_tree_to_every_worker_and_then_nothing() {
    let d = scratch("rsync");
    let src = d.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a"), "alpha").unwrap();
    std::fs::write(src.join("sub/b"), "beta").unwrap();
    std::fs::write(src.join("skip.tmp"), "tmp").unwrap();
    let (wa, wb) = (d.join("wa"), d.join("wb"));
    std::fs::create_dir_all(&wa).unwrap();
    std::fs::create_dir_all(&wb).unwrap();
    let txa = format!("popen//chdir={}", wa.display());
    let txb = format!("popen//chdir={}", wb.display());
    let go = |extra: &[&str]| {
        let mut args = vec!["rsync", "--tx", &txa, "--tx", &txb];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[src.to_str().unwrap(), "copy"]);
        run(&args)
    };
    let o = go(&["--exclude", "*.tmp"]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    assert_eq!(
        o.stdout.as_str().matches("2 files sent (9 B)").count(),
        2,
        "{}",
        o.stdout.as_str()
    );
    for w in [&wa, &wb] {
        assert_eq!(
            std::fs::read_to_string(w.join("copy/sub/b")).unwrap(),
            "beta"
        );
        assert!(!w.join("copy/skip.tmp").exists());
    }
    let o = go(&["--exclude", "*.tmp"]);
    assert_eq!(
        o.stdout.as_str().matches("0 files sent (0 B)").count(),
        2,
        "{}",
        o.stdout.as_str()
    );
    std::fs::remove_file(src.join("a")).unwrap();
    let o = go(&["--exclude", "*.tmp", "--delete"]);
    assert_eq!(
        o.stdout.as_str().matches("1 deleted").count(),
        2,
        "{}",
        o.stdout.as_str()
    );
    assert!(!wa.join("copy/a").exists() && !wb.join("copy/a").exists());
    let o = run(&["rsync", "--tx", "popen", "/nonexistent/tree", "x"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        o.stderr
            .as_str()
            .contains("/nonexistent/tree is not a directory"),
        "{}",
        o.stderr.as_str()
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn workers_come_from_a_txfile_and_a_terminal_gets_a_progress_bar() {
    let d = scratch("txfile");
    let txfile = d.join("hosts");
    std::fs::write(
        &txfile,
        "# two local workers\n2*popen  # with a comment\n\npopen//id=third\n",
    )
    .unwrap();
    let o = run(&[
        "exec",
        "--txfile",
        txfile.to_str().unwrap(),
        "--",
        "echo",
        "up",
    ]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    let mut lines: Vec<String> = o.stdout.as_str().lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["local#1: up", "local#2: up", "third: up"]);
    let o = run(&["exec", "--txfile", "/nonexistent/hosts", "--", "true"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        o.stderr
            .as_str()
            .contains("cannot read --txfile /nonexistent/hosts"),
        "{}",
        o.stderr.as_str()
    );

    // On a terminal (script(1) gives it one), `run` draws a bar with a
    // count and an ETA; with --no-bar, or off a terminal, it does not.
    let cmd = |extra: &str| {
        format!(
            "{} run --tx popen {extra} -- 'sleep 0.4; echo {{}}' ::: 1 2 3",
            env!("CARGO_BIN_EXE_remex")
        )
    };
    let o = remex_tests::output_of(
        Command::new("script")
            .args(["-qec", &cmd(""), "/dev/null"])
            .env_remove("REMEX_WORKER_PATH"),
    );
    let text = out(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("/3 jobs") && text.contains("ETA"), "{text:?}");
    let o = remex_tests::output_of(Command::new("script").args([
        "-qec",
        &cmd("--no-bar"),
        "/dev/null",
    ]));
    assert!(!out(&o).contains("ETA"), "{:?}", out(&o));
    let o = run(&[
        "run",
        "--tx",
        "popen",
        "--",
        "sleep 0.4; echo {}",
        ":::",
        "1",
        "2",
    ]);
    assert!(
        o.status.success() && !o.stderr.as_str().contains("ETA"),
        "{}",
        o.stderr.as_str()
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn run_and_exec_reach_slurm_workers() {
    if let Ok(why) = std::env::var("REMEX_SLURM_SKIP") {
        eprintln!("skipped: {why}");
        return;
    }
    let job = format!("remex-cli-{}", std::process::id());
    let tx = format!("slurm//ntasks=2//listen=127.0.0.1//job_name={job}");
    let o = run(&["exec", "--tx", &tx, "--", "echo task $SLURM_PROCID"]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    let text = o.stdout.as_str();
    let mut lines: Vec<&str> = text
        .lines()
        .map(|l| l.split_once(": ").map_or(l, |(_, line)| line))
        .collect();
    lines.sort();
    assert_eq!(lines, ["task 0", "task 1"], "{}", o.stdout.as_str());
    let o = run(&[
        "run", "--tx", &tx, "-k", "--", "echo", "{}", ":::", "a", "b", "c",
    ]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    assert_eq!(o.stdout.as_str(), "a\nb\nc\n");
    // The allocation ends with the command (squeue has no event: polled).
    let t0 = Instant::now();
    loop {
        let q = Command::new("squeue")
            .args(["-h", "-n", &job])
            .output()
            .unwrap();
        if q.stdout.is_empty() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "{}", out(&q));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_option_remex_does_not_know_never_becomes_the_command() {
    // GNU parallel's --tmux: a usage error naming it, nothing run.
    let o = run(&[
        "run", "--tx", "popen", "-k", "--tmux", "echo", ":::", "A", "B", "C",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", o.stderr.as_str());
    assert!(
        o.stderr.as_str().contains("GNU parallel's --tmux")
            && o.stderr.as_str().contains("docs/cli.md"),
        "{}",
        o.stderr.as_str()
    );
    assert_eq!(o.stdout.as_str(), "", "something ran");
    // An option nobody has: named.
    let o = run(&["run", "--tx", "popen", "--frobnicate", "echo", ":::", "a"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        o.stderr.as_str().contains("--frobnicate"),
        "{}",
        o.stderr.as_str()
    );
    // Options in any order, values attached or not.
    for args in [
        &["run", "--tx", "popen", "-k", "-j2", "echo", ":::", "a", "b"][..],
        &["run", "--tx", "popen", "-j2", "-k", "echo", ":::", "a", "b"],
    ] {
        let o = run(args);
        assert!(o.status.success(), "{args:?}: {}", o.stderr.as_str());
        assert_eq!(o.stdout.as_str(), "a\nb\n", "{args:?}");
    }
}

#[test]
fn without_a_command_each_input_is_one_and_replacements_keep_inputs_off_the_end() {
    // GNU parallel's `parallel ::: 'echo a' 'echo b | tr b B'`.
    let o = run(&[
        "run",
        "--tx",
        "popen",
        "-k",
        ":::",
        "echo a",
        "echo b | tr b B",
    ]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    assert_eq!(o.stdout.as_str(), "a\nB\n");
    // `parallel -k echo {#} ::: A B C` prints 1, 2, 3; {##} is the count.
    let o = run(&[
        "run", "--tx", "popen", "-k", "echo", "{#}/{##}", ":::", "A", "B", "C",
    ]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    assert_eq!(o.stdout.as_str(), "1/3\n2/3\n3/3\n");
}

#[test]
fn jobs_run_in_the_nearest_shell_above_remex_as_in_gnu_parallel() {
    // bash -> timeout (not a shell) -> remex, $SHELL unset: GNU parallel
    // walks up to the bash, so a function bash exported reaches the jobs.
    let script = format!(
        "f() {{ echo in f $1 $BASH_VERSION; }}; export -f f; \
         timeout 60 {} run --tx popen -k f ::: 1 2; echo status $?",
        env!("CARGO_BIN_EXE_remex")
    );
    let o = ran(Command::new("bash")
        .args(["-c", &script])
        .env_remove("SHELL")
        .env_remove("PARALLEL_SHELL")
        .env_remove("REMEX_WORKER_PATH"));
    let lines: Vec<&str> = o.stdout.as_str().lines().collect();
    assert_eq!(lines.len(), 3, "{}{}", o.stdout.as_str(), o.stderr.as_str());
    assert!(lines[0].starts_with("in f 1 5."), "{lines:?}");
    assert!(lines[1].starts_with("in f 2 5."), "{lines:?}");
    assert_eq!(lines[2], "status 0");
    // Under sh (dash) as the nearest shell, jobs run in sh, not in the
    // bash further up (whatever runs this test).
    let o = ran(Command::new("sh")
        .args([
            "-c",
            &format!(
                "timeout 60 {} run --tx popen -k 'echo [$BASH_VERSION]' ::: 1; echo status $?",
                env!("CARGO_BIN_EXE_remex")
            ),
        ])
        .env_remove("SHELL")
        .env_remove("PARALLEL_SHELL")
        .env_remove("REMEX_WORKER_PATH"));
    assert_eq!(
        o.stdout.as_str(),
        "[] 1\nstatus 0\n",
        "{}",
        o.stderr.as_str()
    );
}

/// Runs `program args` with `stdin`; (success, stdout).
fn with_stdin(mut c: Command, stdin: Option<&str>) -> (bool, String, String) {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let o = remex_tests::output_within(child, remex_tests::COMMAND_BOUND)
        .unwrap_or_else(|e| panic!("{c:?}: {e}"));
    (o.status.success(), out(&o), err(&o))
}

/// How long one run of GNU parallel gets here (each takes about a second).
const GNU_BOUND: Duration = Duration::from_secs(60);

/// What GNU parallel, when installed, prints when `set` gives it its
/// arguments and `stdin` is its input. GNU parallel 20221122 itself now
/// and then never ends (it waits in poll: 1 of 60 runs of the `--pipe
/// --bin 2` case below, and a CI run lost its whole time to one): each run
/// gets [`GNU_BOUND`], and one that hangs is killed and made again, at
/// most three times in all.
fn gnu_output(set: impl Fn(&mut Command), stdin: Option<&[u8]>) -> Option<Output> {
    let mut hangs = Vec::new();
    while hangs.len() < 3 {
        let mut c = gnu_parallel()?;
        set(&mut c);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("GNU parallel runs");
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(bytes).unwrap();
        }
        drop(input);
        match remex_tests::output_within(child, GNU_BOUND) {
            Ok(o) => return Some(o),
            Err(e) => {
                eprintln!("GNU parallel hung, run again: {c:?}: {e}");
                hangs.push(e);
            }
        }
    }
    panic!("GNU parallel hung three times: {hangs:?}")
}

/// GNU parallel, when installed (`.ci/run` installs it).
fn gnu_parallel() -> Option<Command> {
    let ok = Command::new("parallel")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new("parallel");
        c.arg("--will-cite");
        // In a session of its own, without a controlling terminal: its
        // --color asks the terminal for its codes (`tput sgr0 </dev/tty`:
        // `ESC(B ESC[m` in an xterm), and stops for tty output when run in
        // the background of one; without a terminal it writes the codes
        // remex writes.
        // SAFETY: setsid(2) is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                rustix::process::setsid()
                    .map(drop)
                    .map_err(std::io::Error::from)
            });
        }
        c
    })
}

#[test]
fn plus_choose_k_and_uniq_make_the_combinations_gnu_parallel_makes() {
    // parallel_examples' "All combinations in a list": the same list
    // repeated, and --plus's {choose_k} (arguments rising) or {uniq} (no
    // two the same) skip the other jobs; a skipped job keeps its number.
    let abcd = [":::", "A", "B", "C", "D"];
    let abc = [":::", "A", "B", "C"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            [&["-k", "--plus", "echo", "{choose_k}"][..], &abcd, &abcd].concat(),
            "A B\nA C\nA D\nB C\nB D\nC D\n",
        ),
        (
            [
                &["-k", "--plus", "echo", "2{2choose_k}", "1{1choose_k}"][..],
                &abcd,
                &abcd,
            ]
            .concat(),
            "2B 1A\n2C 1A\n2D 1A\n2C 1B\n2D 1B\n2D 1C\n",
        ),
        (
            [
                &["-k", "--plus", "echo", "{choose_k}"][..],
                &abcd,
                &abcd,
                &abcd,
            ]
            .concat(),
            "A B C\nA B D\nA C D\nB C D\n",
        ),
        (
            [&["-k", "--plus", "echo", "{uniq}"][..], &abc, &abc, &abc].concat(),
            "A B C\nA C B\nB A C\nB C A\nC A B\nC B A\n",
        ),
        (
            [
                &["-k", "--plus", "echo", "{#}", "{1uniq}+{2uniq}"][..],
                &abc,
                &abc,
            ]
            .concat(),
            "2 A+B\n3 A+C\n4 B+A\n6 B+C\n7 C+A\n8 C+B\n",
        ),
        // Compared as Perl compares strings: "10" before "9".
        (
            vec![
                "-k",
                "--plus",
                "echo",
                "{choose_k}",
                ":::",
                "10",
                "9",
                ":::",
                "10",
                "9",
            ],
            "10 9\n",
        ),
    ];
    for (args, want) in cases {
        let o = run(&[&["run", "--tx", "popen", "--no-bar"][..], &args].concat());
        // Skipped jobs did not fail (GNU parallel counts them in its exit
        // status).
        assert!(o.status.success(), "{args:?}: {}", o.stderr.as_str());
        assert_eq!(o.stdout.as_str(), want, "remex {args:?}");
        if let Some(g) = gnu_output(
            |p| {
                p.args(&args);
            },
            None,
        ) {
            assert_eq!(out(&g), want, "parallel {args:?}");
        }
    }
}

#[test]
fn jobs_see_their_sshlogin_as_in_gnu_parallel() {
    // GNU parallel gives each job $PARALLEL_SSHLOGIN and $PARALLEL_SSHHOST
    // (`:` on this machine), and `--plus`'s {sshlogin} and {host} stand
    // for them; remex's jobs had neither, and {host} was text.
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "-k",
                "echo",
                "$PARALLEL_SSHLOGIN",
                "$PARALLEL_SSHHOST",
                ":::",
                "a",
            ],
            ": : a\n",
        ),
        (
            &[
                "-k",
                "-S",
                ":",
                "--plus",
                "echo",
                "{sshlogin}-{host}",
                ":::",
                "a",
                "b",
            ],
            ":-:\n:-:\n",
        ),
        // As GNU parallel: the tag is rendered here, where no shell
        // expands the variable.
        (
            &["-k", "--plus", "--tagstring", "{host}", "echo", ":::", "a"],
            "${PARALLEL_SSHHOST}\ta\n",
        ),
    ];
    for (args, want) in cases {
        let mut c = remex();
        c.args(["run", "--no-bar"]).args(*args);
        let (ok, got, e) = with_stdin(c, None);
        assert!(ok, "{args:?}: {e}");
        assert_eq!(got, *want, "remex {args:?}");
        if let Some(g) = gnu_output(
            |p| {
                p.args(*args);
            },
            None,
        ) {
            assert_eq!(out(&g), *want, "GNU parallel {args:?}: {}", err(&g));
        }
    }
}

#[test]
fn gnu_parallels_input_options_give_its_output() {
    // (options and command, stdin, what GNU parallel prints): lines of
    // its tutorial and man page inside remex's model.
    let cases: &[(&[&str], Option<&str>, &str)] = &[
        (&["-k", "echo", ":::", "A", "B", "C"], None, "A\nB\nC\n"),
        (
            &["-k", "echo", ":::", "A", "B", ":::", "D", "E"],
            None,
            "A D\nA E\nB D\nB E\n",
        ),
        (
            &["-k", "echo", "{2}", "{1}", ":::", "A", "B", ":::", "D"],
            None,
            "D A\nD B\n",
        ),
        (
            &[
                "-k",
                "echo",
                "{.}",
                "{/}",
                "{//}",
                "{/.}",
                ":::",
                "dir/sub/file.ext",
            ],
            None,
            "dir/sub/file file.ext dir/sub file\n",
        ),
        (&["-k", "echo", "{#}", ":::", "A", "B"], None, "1\n2\n"),
        (
            &["-k", "--tag", "echo", "x", ":::", "A", "B"],
            None,
            "A\tx A\nB\tx B\n",
        ),
        (&["-k", ":::", "echo a", "echo b"], None, "a\nb\n"),
        (&["-k", "echo"], Some("A\nB\n"), "A\nB\n"),
        (
            &[
                "-k", "--link", "echo", ":::", "A", "B", "C", ":::", "D", "E", "F",
            ],
            None,
            "A D\nB E\nC F\n",
        ),
        (
            &["-k", "--link", "echo", ":::", "A", "B", "C", ":::", "D"],
            None,
            "A D\nB D\nC D\n",
        ),
        (
            &["-k", "echo", ":::", "A", "B", "C", ":::+", "D", "E"],
            None,
            "A D\nB E\n",
        ),
        (&["-k", "-0", "echo"], Some("a\0b c\0"), "a\nb c\n"),
        (&["-k", "-d", ",", "echo"], Some("x,y"), "x\ny\n"),
        (&["-k", "-E", "stop", "echo"], Some("a\nstop\nb\n"), "a\n"),
        (
            &["-k", "-E", "stop", "echo", ":::", "a", "stop", "b"],
            None,
            "a\n",
        ),
        (
            &["-k", "--trim", "lr", "echo", "x{}x"],
            Some("  a  \n"),
            "xax\n",
        ),
        (
            &["-k", "--colsep", ",", "echo", "{2}", "{1}"],
            Some("a,b\nc,d\n"),
            "b a\nd c\n",
        ),
        (
            &["-k", "--colsep", "\t", "echo", "1={1}", "2={2}"],
            Some("f1\tf2\n"),
            "1=f1 2=f2\n",
        ),
        (
            &[
                "-k", "--colsep", ",", "--header", ":", "echo", "{age}", "{name}",
            ],
            Some("name,age\nann,3\nbob,4\n"),
            "3 ann\n4 bob\n",
        ),
        (
            &["-k", "-N2", "echo", ":::", "a", "b", "c", "d", "e"],
            None,
            "a b\nc d\ne\n",
        ),
        (&["-k", "-N0", "echo", "x", ":::", "1", "2"], None, "x\nx\n"),
        (
            &["-k", "-I", ",,", "echo", ",,-,,", ":::", "a"],
            None,
            "a-a\n",
        ),
        (&["-k", "-q", "echo", "a;b", ":::", "c"], None, "a;b c\n"),
        (
            &["-k", "--tagstring", "{#}", "echo", ":::", "a", "b"],
            None,
            "1\ta\n2\tb\n",
        ),
        (&["-k", "--dryrun", "echo", ":::", "a"], None, "echo a\n"),
        (&["-k", "-a", "LIST", "echo"], None, "f1.txt\nf2.txt\n"),
        (
            &["-k", "echo", "::::", "LIST", ":::", "x"],
            None,
            "f1.txt x\nf2.txt x\n",
        ),
        // Every file after ::::+ is linked to the source before it.
        (
            &["-k", "echo", "::::+", "LIST", "LIST2"],
            None,
            "f1.txt a\nf2.txt b\n",
        ),
        (
            &["-k", "echo", ":::", "X", "Y", "::::+", "LIST", "LIST2"],
            None,
            "X f1.txt a\nY f2.txt b\n",
        ),
        (
            &["-k", "echo", "file_{}.txt", ":::", "a", "b"],
            None,
            "file_a.txt\nfile_b.txt\n",
        ),
        (
            &[
                "-k", "--tag", "echo", "{2}", ":::", "a", "b", ":::", "1", "2",
            ],
            None,
            "a 1\t1\na 2\t2\nb 1\t1\nb 2\t2\n",
        ),
        (
            &["-k", "--colsep", "\\s+", "echo", "{2}"],
            Some("a  b\nc d\n"),
            "b\nd\n",
        ),
        (
            &[
                "-k", "-N3", "echo", "{3}", ":::", "1", "2", "3", "4", "5", "6",
            ],
            None,
            "3\n6\n",
        ),
        (
            &["-k", "--trim", "l", "echo", "[{}]"],
            Some(" x\n"),
            "[x]\n",
        ),
        (
            &["-k", "echo", "{/.}", "{//}", ":::", "/a/b/c.d"],
            None,
            "c /a/b\n",
        ),
        (
            &["-k", "-j1", "echo", ":::", "3", "2", "1"],
            None,
            "3\n2\n1\n",
        ),
        (
            &["-k", "echo", "{1.}", "{2/}", ":::", "a.x", ":::", "d/e"],
            None,
            "a e\n",
        ),
        (&["-k", "echo {} | tr a-z A-Z", ":::", "ab"], None, "AB\n"),
        (
            &[
                "-k", "--link", "echo", "{1}{2}", ":::", "a", "b", ":::", "1", "2",
            ],
            None,
            "a1\nb2\n",
        ),
        (&["-k", "echo", ":::", "a b", "c"], None, "a b\nc\n"),
        (&["-k", "-q", "echo", "{}", ":::", "a  b"], None, "a  b\n"),
        (
            &["-k", "--dryrun", "gzip", "{}", ":::", "x.log"],
            None,
            "gzip x.log\n",
        ),
        (
            &["-k", "-I", "@@", "echo", "@@-@@", ":::", "z"],
            None,
            "z-z\n",
        ),
        (
            &["-k", "echo", "{#}-{}", ":::", "a", "b", "c"],
            None,
            "1-a\n2-b\n3-c\n",
        ),
        (
            &["-k", "--colsep", "\t", "--tagstring", "{2}", "echo", "{1}"],
            Some("a\tb\n"),
            "b\ta\n",
        ),
        (
            &["-k", "-j1", "-m", "echo", ":::", "1", "2", "3"],
            None,
            "1 2 3\n",
        ),
        (
            &["-k", "-j2", "-m", "echo", ":::", "1", "2", "3", "4", "5"],
            None,
            "1 2 3\n4 5\n",
        ),
        (
            &["-k", "-j1", "-m", "echo", "x{}y", ":::", "1", "2", "3"],
            None,
            "x1 2 3y\n",
        ),
        (
            &[
                "-k",
                "-j1",
                "-X",
                "echo",
                "pre-{}-post",
                ":::",
                "1",
                "2",
                "3",
            ],
            None,
            "pre-1-post pre-2-post pre-3-post\n",
        ),
        (
            &[
                "-k", "-j2", "-X", "echo", "a{}b", "{#}", ":::", "1", "2", "3", "4", "5",
            ],
            None,
            "a1b a2b a3b 1\na4b a5b 2\n",
        ),
        (
            &["-k", "-j1", "echo", "{%}", "{}", ":::", "a", "b"],
            None,
            "1 a\n1 b\n",
        ),
        (
            &["-k", "--delay", "0.01", "echo", ":::", "a", "b"],
            None,
            "a\nb\n",
        ),
        (
            &[
                "-k",
                "--plus",
                "echo",
                "[{+/}]",
                "[{+.}]",
                "[{+..}]",
                "[{+...}]",
                "[{..}]",
                "[{...}]",
                "[{/..}]",
                "[{/...}]",
                ":::",
                "a/b/c.tar.gz",
                "c.tar.gz",
                "/x/y.z",
                "noext",
                "dir/.hidden",
                "a.b/c",
            ],
            None,
            "[a/b] [gz] [tar.gz] [] [a/b/c] [a/b/c.tar.gz] [c] [c.tar.gz]\n\
             [] [gz] [tar.gz] [] [c] [c.tar.gz] [c] [c.tar.gz]\n\
             [/x] [z] [] [] [/x/y.z] [/x/y.z] [y.z] [y.z]\n\
             [] [] [] [] [noext] [noext] [noext] [noext]\n\
             [dir] [hidden] [] [] [dir/.hidden] [dir/.hidden] [.hidden] [.hidden]\n\
             [a.b] [b/c] [] [] [a.b/c] [a.b/c] [c] [c]\n",
        ),
        (
            &["-k", "--plus", "echo", "{..}", ":::", "x.tar.gz"],
            None,
            "x\n",
        ),
        (
            &[
                "-k", "--plus", "-j1", "echo", "{0#}", "{0%}", ":::", "a", "b", "c", "d", "e", "f",
                "g", "h", "i", "j", "k",
            ],
            None,
            "01 1\n02 1\n03 1\n04 1\n05 1\n06 1\n07 1\n08 1\n09 1\n10 1\n11 1\n",
        ),
        // -m/-X/--xargs with -n K: at most K inputs a job, and the rest
        // shared evenly once it fits in one job (parallel_examples'
        // "Parallel grep": -n 1000 -m).
        (
            &[
                "-k", "-j3", "-n", "4", "-m", "echo", ":::", "1", "2", "3", "4", "5", "6", "7",
                "8", "9", "10", "11",
            ],
            None,
            "1 2 3 4\n5 6 7 8\n9\n10\n11\n",
        ),
        (
            &[
                "-k", "-j3", "-n", "3", "-X", "echo", "x{}y", ":::", "1", "2", "3", "4", "5", "6",
                "7",
            ],
            None,
            "x1y x2y x3y\nx4y x5y x6y\nx7y\n",
        ),
        (
            &[
                "-k", "--xargs", "-n", "4", "echo", ":::", "1", "2", "3", "4", "5", "6",
            ],
            None,
            "1 2 3 4\n5 6\n",
        ),
        // -N0 with -m, -X, --xargs: their jobs, with no input given.
        (
            &[
                "-k", "-j3", "-N0", "-m", "echo", "x", ":::", "1", "2", "3", "4", "5", "6", "7",
            ],
            None,
            "x\nx\nx\n",
        ),
        (
            &["-k", "-N0", "--xargs", "echo", "x", ":::", "1", "2", "3"],
            None,
            "x\n",
        ),
        // --colsep trims each column at both ends unless --trim says
        // otherwise (parallel_examples' "Use a table as input").
        (
            &[
                "-k", "--colsep", "\t", "echo", "cmd", "-o", "{2}", "-i", "{1}",
            ],
            Some("foo\tbar\nbaz \t quux\n"),
            "cmd -o bar -i foo\ncmd -o quux -i baz\n",
        ),
        (
            &["-k", "--trim", "n", "--colsep", "\t", "echo", "[{2}]"],
            Some("baz \t quux\n"),
            "[ quux]\n",
        ),
        // --dryrun shares -m's inputs among the slots it would have.
        (
            &[
                "-k", "-j2", "--dryrun", "-m", "rm", "{}", "&&", "touch", "{}", ":::", "a", "b",
                "c", "d",
            ],
            None,
            "rm a b && touch a b\nrm c d && touch c d\n",
        ),
        // GNU parallel's escapes in --tagstring and -d.
        (
            &["-k", "--tagstring", "\\101\\t{#}", "echo", ":::", "a"],
            None,
            "A\t1\ta\n",
        ),
        (&["-k", "-d", "\\001", "echo"], Some("a\u{1}b"), "a\nb\n"),
        // The jobs' environment: GNU parallel's man page example, and the
        // slot by its variable and by --plus's {slot}.
        (
            &[
                "-k",
                "-N2",
                "echo",
                "seq:$PARALLEL_SEQ",
                "arg1:{1}",
                "arg2:{2}",
            ],
            Some("1\n2\n3\n4\n5\n"),
            "seq:1 arg1:1 arg2:2\nseq:2 arg1:3 arg2:4\nseq:3 arg1:5 arg2:\n",
        ),
        (
            &[
                "-k",
                "-j1",
                "--plus",
                "echo",
                "$PARALLEL_JOBSLOT",
                "{slot}",
                ":::",
                "a",
                "b",
            ],
            None,
            "1 1\n1 1\n",
        ),
        // GNU parallel's other spellings, its no-op options, and an
        // option given twice (the last counts).
        (
            &["-k", "-n", "2", "echo", ":::", "a", "b", "c", "d", "e"],
            None,
            "a b\nc d\ne\n",
        ),
        (
            &["-k", "-P", "3", "--will-cite", "echo", ":::", "a", "b", "c"],
            None,
            "a\nb\nc\n",
        ),
        (
            &[
                "-k",
                "--max-replace-args",
                "2",
                "echo",
                "{2}",
                "{1}",
                ":::",
                "a",
                "b",
                "c",
                "d",
            ],
            None,
            "b a\nd c\n",
        ),
        (
            &[
                "-k",
                "--col-sep",
                ",",
                "--tag-string",
                "T{1}",
                "echo",
                "{2}",
                ":::",
                "a,b",
                "c,d",
            ],
            None,
            "Ta\tb\nTc\td\n",
        ),
        (
            &[
                "-k",
                "-j3",
                "-j2",
                "--keeporder",
                "--silent",
                "--tmpdir",
                "/tmp",
                "echo",
                ":::",
                "a",
                "b",
            ],
            None,
            "a\nb\n",
        ),
        // Long options abbreviated, as GNU parallel's Getopt::Long takes
        // them (`--k` and `--j` are -k and -j).
        (
            &[
                "--keep-o", "--tag-s", "T{}", "--max-a", "1", "--wi", "--j", "2", "echo", ":::",
                "a", "b", "c",
            ],
            None,
            "Ta\ta\nTb\tb\nTc\tc\n",
        ),
        (
            &["--dry", "--k", "echo", ":::", "x", "y"],
            None,
            "echo x\necho y\n",
        ),
        // -j -1: one less than the CPUs (at least one).
        (&["-k", "-j", "-1", "echo", ":::", "a", "b"], None, "a\nb\n"),
        // Negative --delay and --retries: no wait, one run.
        (
            &["-k", "--delay", "-1", "echo", ":::", "a", "b"],
            None,
            "a\nb\n",
        ),
        (
            &["-k", "--retries", "-1", "echo", ":::", "a", "b"],
            None,
            "a\nb\n",
        ),
        // --colsep splits as Perl's split: '' between characters, and a
        // zero-width match makes no empty column where one starts.
        (
            &["-k", "--colsep", "", "echo", "{1}-{2}", ":::", "ab", "cd"],
            None,
            "a-b\nc-d\n",
        ),
        (
            &[
                "-k",
                "--colsep",
                ",?",
                "echo",
                "[{1}][{2}]",
                ":::",
                "ab,",
                ",ab",
            ],
            None,
            "[a][b]\n[][a]\n",
        ),
        // An argument holding the delimiter is several inputs.
        (
            &["-k", "echo", "{#}", "{}", ":::", "a\nb"],
            None,
            "1 a\n2 b\n",
        ),
        (
            &["-k", "-d", ",", "echo", "{#}-{}", ":::", "a,b"],
            None,
            "1-a\n2-b\n",
        ),
        // --line-buffer tags lines with --tagstring too.
        (
            &["-k", "--lb", "--tagstring", "X{}", "echo", ":::", "a", "b"],
            None,
            "Xa\ta\nXb\tb\n",
        ),
        // --eta and --progress are accepted (remex's bar shows both).
        (&["-k", "--eta", "echo", ":::", "a", "b"], None, "a\nb\n"),
        (&["-k", "--progress", "echo", ":::", "a"], None, "a\n"),
        // A dotfile's name is all extension for {.} and {/.}.
        (
            &[
                "-k", "echo", "{.}", "{/.}", ":::", ".bashrc", "d/.e", "x/.e.f",
            ],
            None,
            " \nd/ \nx/.e .e\n",
        ),
        // -s counts the command without its inputs (remex subtracted
        // the ::: and the inputs too, and so put each input alone).
        (
            &[
                "-k", "-s", "20", "-j1", "-m", "echo", ":::", "aaaa", "bbbb", "cccc", "dddd",
                "eeee",
            ],
            None,
            "aaaa bbbb cccc\ndddd eeee\n",
        ),
        (
            &[
                "-k", "--xargs", "-s", "15", "echo", ":::", "a", "b", "c", "d", "e", "f", "g", "h",
            ],
            None,
            "a b c d e\nf g h\n",
        ),
        // -N and -L replace in context (as -X), -n and -l do not; -L/-l
        // continue a line that ends in a blank; -l takes a number only.
        (
            &["-k", "-N", "2", "echo", "x{}x", ":::", "a", "b", "c"],
            None,
            "xax xbx\nxcx\n",
        ),
        (
            &["-k", "-n", "2", "echo", "x{}x", ":::", "a", "b", "c"],
            None,
            "xa bx\nxcx\n",
        ),
        (
            &["-k", "-L", "2", "echo", "x{}x"],
            Some("a b\nc d\ne\n"),
            "xa bx xc dx\nxex\n",
        ),
        (
            &["-k", "-l", "echo", "x{}x"],
            Some("a \nb\nc\n"),
            "xa bx\nxcx\n",
        ),
        (&["-k", "-l", "2", "echo"], Some("a\nb\nc\n"), "a b\nc\n"),
        // A position past the inputs is nothing, not an empty word; a
        // string -I renames is text.
        (&["-k", "echo", "{1}", "{2}", ":::", "a"], None, "a\n"),
        (
            &["-k", "-I", "@@", "echo", "{}", "@@", ":::", "a"],
            None,
            "{} a\n",
        ),
        // -N with several sources: K combinations per job.
        (
            &[
                "-k", "-N2", "echo", "{1}/{4}", ":::", "a", "b", ":::", "x", "y",
            ],
            None,
            "a/y\nb/y\n",
        ),
        // -r skips blank inputs as they are read, in every source (not
        // a job whose arguments are empty columns); --dryrun tags.
        (
            &["-k", "-r", "echo", ":::", "", "b", ":::", "a"],
            None,
            "b a\n",
        ),
        (
            &["-k", "-r", "--colsep", ",", "echo", "[{1}]", ":::", ","],
            None,
            "[]\n",
        ),
        (
            &["-k", "--tag", "--dryrun", "echo", ":::", "a"],
            None,
            "a\techo a\n",
        ),
        // --header without --colsep splits at tabs (not trimmed); the
        // strings -I and the like rename are text in --tagstring too.
        (
            &["-k", "--header", ":", "echo", "[{b}]"],
            Some("a\tb\n1\t 2\n"),
            "[ 2]\n",
        ),
        (
            &[
                "-k",
                "--seqreplace",
                "@",
                "--tagstring",
                "@:{#}",
                "echo",
                ":::",
                "a",
            ],
            None,
            "1:{#}\ta\n",
        ),
        // --pipe: blocks of whole records on the jobs' stdin.
        (
            &["-k", "--pipe", "--block", "20", "wc", "-c"],
            Some("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n19\n20\n"),
            "18\n18\n15\n",
        ),
        (
            &["-k", "--pipe", "-N", "3", "wc", "-l"],
            Some("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"),
            "3\n3\n3\n1\n",
        ),
        (
            &["-k", "--pipe", "--recend", ",", "--block", "5", "cat; echo"],
            Some("a,bb,ccc,dddd"),
            "a,bb,\nccc,\ndddd\n",
        ),
        (
            &["-k", "--pipe", "echo {#}:; cat"],
            Some("x\ny\n"),
            "1:\nx\ny\n",
        ),
        (
            &["-k", "-N1", "--recstart", ">", "--pipe", "echo {#}; cat"],
            Some(">a\nAC\n>b\nGT\n"),
            "1\n>a\nAC\n2\n>b\nGT\n",
        ),
        (
            &["-k", "--header", "1", "-N2", "--pipe", "cat; echo"],
            Some("h\n1\n2\n3\n"),
            "h\n1\n2\n\nh\n3\n\n",
        ),
        // --dryrun shows an input without its host groups, as run.
        (
            &[
                "-k", "--dryrun", "--hostgroups", "-S", "@g1/:", "echo", ":::", "a@g1", "b",
            ],
            None,
            "echo a\necho b\n",
        ),
        // --pipe's block is no argument, nor in a --dryrun's tag.
        (
            &["--pipe", "--dryrun", "--tagstring", "<{}>", "wc", "-l"],
            Some("1\n2\n3\n"),
            "<>\twc -l\n",
        ),
        // --bin: records to job (column's value) mod the slots, 0 to the
        // last; every slot's job runs; --colsep ' ' is Perl's split ' '.
        (
            &["-k", "--pipe", "--bin", "1", "-j3", "echo job {#}; cat"],
            Some("1,a\n2,b\n3,c\n4,d\n5,e\n6,f\n"),
            "job 1\n1,a\n4,d\njob 2\n2,b\n5,e\njob 3\n3,c\n6,f\n",
        ),
        (
            &["-k", "--pipe", "--colsep", " ", "--bin", "2", "-j3", "echo job {#}; cat"],
            Some("1 a\n2 b\n-4 c\n 7 d\n"),
            "job 1\njob 2\njob 3\n1 a\n2 b\n-4 c\n 7 d\n",
        ),
        (
            &["-k", "--pipe", "--bin", "1", "-j4", "echo job {#} {%}; wc -l"],
            Some("1\n2\n3\n"),
            "job 1 1\n1\njob 2 2\n1\njob 3 3\n1\njob 4 4\n0\n",
        ),
        // --group-by: consecutive lines with the same value in a column
        // are one record (the man page's table); by name, the first
        // line names the columns and goes before every block.
        (
            &["--pipe", "--colsep", ",", "--group-by", "1", "-kN1", "wc"],
            Some("123,1\n123,2\n12-3,1\n221,3\n221,1\n2/21,5\n"),
            "      2       2      12\n      1       1       7\n      2       2      12\n      1       1       7\n",
        ),
        (
            &["--pipe", "--colsep", ",", "--group-by", "UserID", "-kN1", "echo J; cat"],
            Some("UserID,Consumption\n123,1\n123,2\n12-3,1\n221,3\n"),
            "J\nUserID,Consumption\n123,1\n123,2\nJ\nUserID,Consumption\n12-3,1\nJ\nUserID,Consumption\n221,3\n",
        ),
        (
            &["--pipe", "--group-by", "2", "-k", "-N2", "echo J; cat"],
            Some("a\tx\nb\tx\nc\ty\nd\tz\n"),
            "J\na\tx\nb\tx\nc\ty\nJ\nd\tz\n",
        ),
        // --skip-first-line: of the first source, or of --pipe's stdin.
        (
            &["--skip-first-line", "-k", "echo", ":::", "a", "b", ":::", "x", "y"],
            None,
            "b x\nb y\n",
        ),
        (
            &["--skip-first-line", "--pipe", "-k", "-N2", "echo J; cat"],
            Some("h\n1\n2\n3\n"),
            "J\n1\n2\nJ\n3\n",
        ),
        // --bin by a column's name: the first line names it (and is no
        // record); with a number, --header's line is a record.
        (
            &["--pipe", "--colsep", ",", "--bin", "k", "-j2", "-k", "echo J; cat"],
            Some("k,v\n1,a\n2,b\n3,c\n4,d\n"),
            "J\n1,a\n3,c\nJ\n2,b\n4,d\n",
        ),
        (
            &["--pipe", "--header", ":", "--colsep", ",", "--bin", "1", "-j2", "-k", "echo J; cat"],
            Some("k,v\n1,a\n2,b\n3,c\n4,d\n"),
            "J\n1,a\n3,c\nJ\nk,v\n2,b\n4,d\n",
        ),
        (
            &["--pipe", "--colsep", " ", "--bin", "k", "-j3", "-k", "echo J; cat"],
            Some("k v\n1 a\n2 b\n3 c\n4 d\n"),
            "J\n1 a\n4 d\nJ\n2 b\nJ\n3 c\n",
        ),
        // --pipepart over several files: each one's parts in turn, the
        // part size from all their bytes; --roundrobin only sizes them
        // (one a slot); --skip-first-line skips each file's first line.
        (
            &["--pipepart", "-a", "LIST", "-a", "LIST2", "--block", "4", "-k", "echo J {#}; cat"],
            None,
            "J 1\nf1.txt\nJ 2\nf2.txt\nJ 3\na\nb\nc\n",
        ),
        (
            &["--pipepart", "--roundrobin", "-j2", "-k", "-a", "LIST", "-a", "LIST2", "echo J; wc -l"],
            None,
            "J\n2\nJ\n3\n",
        ),
        (
            &["--skip-first-line", "--pipepart", "-k", "cat", "::::", "LIST", "LIST2"],
            None,
            "f2.txt\nb\nc\n",
        ),
        // Among several sources an empty one is one empty input, unless
        // all are empty (linked by :::+, it ends the group after one).
        (&["-k", "echo", "X{1}Y{2}Z", ":::", "a", "b", ":::"], None, "XaYZ\nXbYZ\n"),
        (&["-k", "echo", "{2}", ":::", ":::", "a", "b"], None, "a\nb\n"),
        (&["-k", "echo", "X{1}Y{2}Z", ":::", "a", "b", ":::+"], None, "XaYZ\n"),
        (&["-k", "echo", "X", ":::", ":::"], None, ""),
        // A NUL in an input (no -0) passes as \0 (no argument holds one).
        (&["-k", "echo"], Some("a\u{0}b\nc\n"), "a\\0b\nc\n"),
        // --csv (GNU parallel needs Perl's Text::CSV: .ci/run installs
        // libtext-csv-perl): quoted fields whole, "" a quote, a quoted
        // newline inside a record; no trim unless asked.
        (
            &["--csv", "echo", "{1}", "of", "{2}", "at", "{3}"],
            Some("\"1 big, 2 small\",\"2\"\"x4\"\" plank\",12.34\n"),
            "1 big, 2 small of 2\"x4\" plank at 12.34\n",
        ),
        (
            &["-k", "--csv", "echo", "[{1}]", "[{2}]", "[{3}]"],
            Some("a,\"b\nc\",d\ne,f,g\n"),
            "[a] [b\nc] [d]\n[e] [f] [g]\n",
        ),
        (
            &["-k", "--csv", "--header", ":", "echo", "[{n}]", "[{v}]"],
            Some("n,v\n x , y \n"),
            "[ x ] [ y ]\n",
        ),
        (
            &["-k", "--csv", "--colsep", ";", "echo", "[{1}]", "[{2}]"],
            Some("a;\"b;c\"\n"),
            "[a] [b;c]\n",
        ),
        (
            &["-k", "--csv", "echo", "[{2}]", ":::", "a,b", "\"c,d\",e", ""],
            None,
            "[b]\n[e]\n[]\n",
        ),
        (
            &["-k", "--csv", "--trim", "lr", "echo", "[{1}]", ":::", " a ,b"],
            None,
            "[a]\n",
        ),
        // A record longer than --block makes the block grow for the
        // rest of the input (x1.3 + 1: 3, 5, 8), with a warning.
        (
            &["-k", "--pipe", "--block", "3", "echo ==; cat"],
            Some("abcdef\nx\ny\nz\n"),
            "==\nabcdef\n==\nx\ny\nz\n",
        ),
        // A block ends after the last record end read, even one at its
        // first byte; with --recstart, once the next record's start is
        // read too.
        (
            &["-k", "--pipe", "--block", "1", "echo ==; cat"],
            Some("\nxay>x\n"),
            "==\n\n==\nxay>x\n",
        ),
        (
            &["-k", "--pipe", "--recstart", ">", "--block", "4", "echo ==; cat"],
            Some("yby\naba>bab>y\n"),
            "==\nyby\naba==\n>bab>y\n",
        ),
        // A block --rrs leaves empty starts no command.
        (
            &["-k", "--pipe", "--rrs", "--block", "4", "echo ==; cat"],
            Some("y\ny\n\n"),
            "==\nyy",
        ),
        // --csv with --pipe: blocks of whole CSV records (a newline in
        // quotes ends none), a longer record alone.
        (
            &["-k", "--csv", "--pipe", "--block", "3", "echo ==; cat"],
            Some("a,b\n\"x\ny\",z\nc,\"\"\"q\"\"\"\n"),
            "==\na,b\n==\n\"x\ny\",z\n==\nc,\"\"\"q\"\"\"\n",
        ),
        (
            &["-k", "--csv", "--pipe", "--block", "14", "--header", "1", "echo ==; cat"],
            Some("h,i\na,b\n\"x\ny\",z\nc,d\n"),
            "==\nh,i\na,b\n\"x\ny\",z\n==\nh,i\nc,d\n",
        ),
        // --total-jobs: {##} told, not counted.
        (
            &["-k", "--plus", "--total", "10", "echo", "{##}", ":::", "a", "b"],
            None,
            "10\n10\n",
        ),
        (
            &["-k", "--plus", "--total-jobs", "7", "echo", "{##}", "{}"],
            Some("1\n2\n"),
            "7 1\n7 2\n",
        ),
        // --process-slot-var: the slot less one.
        (
            &["-k", "-j1", "--process-slot-var", "S", "echo $S {}", ":::", "a", "b"],
            None,
            "0 a\n0 b\n",
        ),
        // -N0: every replacement string empty, the word kept.
        (&["-k", "-N0", "echo", "x{}y", ":::", "a", "b"], None, "xy\nxy\n"),
        (
            &["-k", "-N0", "echo", "[{}]", "[{1}]", "[{2}]", ":::", "a"],
            None,
            "[] [] []\n",
        ),
        // -X wins over -m and -d over -0, in either order.
        (&["-j1", "-m", "-X", "echo", "pre{}post", ":::", "a", "b"], None, "preapost prebpost\n"),
        (&["-j1", "-X", "-m", "echo", "pre{}post", ":::", "a", "b"], None, "preapost prebpost\n"),
        (&["-k", "-0", "-d", "x", "echo", ":::", "axb", "c"], None, "a\nb\nc\n"),
        (&["-k", "-d", "x", "-0", "echo", ":::", "axb", "c"], None, "a\nb\nc\n"),
        // --tee: all of stdin for each job, made from the arguments.
        (
            &["-k", "--tee", "--pipe", "grep {}", ":::", "1", "5"],
            Some("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n"),
            "1\n10\n11\n12\n5\n",
        ),
        (
            &[
                "-k", "--tee", "--pipe", "--tag", "grep {1}{2}", ":::", "1", "2", ":::", "0", "1",
            ],
            Some("5\n10\n11\n15\n20\n21\n"),
            "1 0\t10\n1 1\t11\n2 0\t20\n2 1\t21\n",
        ),
        // --cat, --fifo: the block in a file, {} its name
        // ($PARALLEL_TMP, so in a tag).
        (
            &["-k", "--cat", "--block", "20", "wc -l < {}"],
            Some("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n19\n20\n"),
            "9\n6\n5\n",
        ),
        (
            &["-k", "--fifo", "-N", "3", "wc -c < {}"],
            Some("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"),
            "6\n6\n6\n3\n",
        ),
        (
            &["-k", "--cat", "--tag", "-N2", "cat {}; echo {#}"],
            Some("a\nb\nc\n"),
            "$PARALLEL_TMP\ta\n$PARALLEL_TMP\tb\n$PARALLEL_TMP\t1\n$PARALLEL_TMP\tc\n$PARALLEL_TMP\t2\n",
        ),
        (
            &["-k", "--fifo", "--tagstring", "{#}{.}", "-N2", "sort -r {}"],
            Some("a\nb\nc\n"),
            "1$PARALLEL_TMP\tb\n1$PARALLEL_TMP\ta\n2$PARALLEL_TMP\tc\n",
        ),
        // A last line without its newline stays so, tagged or streamed.
        (
            &["-k", "--tag", "printf 'x\\ny'", ":::", "a", "b"],
            None,
            "a\tx\na\tyb\tx\nb\ty",
        ),
        (
            &[
                "-k",
                "--line-buffer",
                "--tag",
                "printf 'x\\ny'",
                ":::",
                "a",
                "b",
            ],
            None,
            "a\tx\na\tyb\tx\nb\ty",
        ),
        (
            &["-k", "--line-buffer", "printf 'x\\ny'", ":::", "a", "b"],
            None,
            "x\nyx\ny",
        ),
        // An empty name at the header's end names nothing ({} stays all).
        (
            &[
                "-k",
                "--header",
                ":",
                "--colsep",
                ",",
                "echo",
                "[{a}][{b}][{}]",
                ":::",
                "a,b,",
                "1,2,3",
            ],
            None,
            "[1][2][1 2 3]\n",
        ),
        // --color: GNU parallel's palette by job number, each line
        // coloured (tag included), \r ending and restarting the colour.
        (
            &["--color", "--tag", "-k", "echo", ":::", "a", "b"],
            None,
            "\x1b[48;5;134;38;5;231m\x1b[Ka\ta\x1b[m\n\x1b[48;5;021;38;5;231m\x1b[Kb\tb\x1b[m\n",
        ),
        (
            &["--ctag", "-k", "echo", ":::", "a"],
            None,
            "\x1b[48;5;134;38;5;231m\x1b[Ka\ta\x1b[m\n",
        ),
        (
            &["--ctagstring", "{}-x", "-k", "echo", ":::", "a"],
            None,
            "\x1b[48;5;134;38;5;231m\x1b[Ka-x\ta\x1b[m\n",
        ),
        (
            &["--colour", "-k", "printf 'x\\ry\\nz'", ":::", "1"],
            None,
            "\x1b[48;5;134;38;5;231m\x1b[Kx\x1b[m\r\x1b[48;5;134;38;5;231m\x1b[Ky\x1b[m\n\x1b[48;5;134;38;5;231m\x1b[Kz\x1b[m\n",
        ),
        (
            &["--color", "--dryrun", "--tag", "echo", ":::", "a"],
            None,
            "\x1b[48;5;134;38;5;231m\x1b[Ka\techo a\x1b[m\n",
        ),
        (
            &["--color", "-k", "echo", ":::", ""],
            None,
            "\x1b[48;5;134;38;5;231m\x1b[K\x1b[m\n",
        ),
        (
            &["--color", "--line-buffer", "-j1", "echo", ":::", "a"],
            None,
            "\x1b[48;5;134;38;5;231m\x1b[Ka\x1b[m\n",
        ),
        (&["-u", "--color", "echo", ":::", "a"], None, "a\n"),
        (&["--cf", "-k", "printf", "{}", ":::", "a"], None, "a\n"),
        // -N0 with several inputs per job: each input counts, its value
        // an empty stand-in written unquoted (a {} word once per input).
        (
            &["-N0", "-m", "-j1", "echo", "x{}y", ":::", "a", "b", "c"],
            None,
            "xy xy xy\n",
        ),
        (
            &["-N0", "-X", "-j1", "--dryrun", "echo", "A{}B", "{}", "C", ":::", "a", "b", "c"],
            None,
            "echo AB AB AB    C\n",
        ),
        (
            &["--xargs", "-N0", "-j1", "echo", "A{}B", "{}", "C", ":::", "a", "b", "c"],
            None,
            "AB AB AB C\n",
        ),
        // -q: each of a job's inputs in {} is a word of its own (remex
        // made them one word).
        (
            &["-k", "-q", "printf", "%s,", "x{}y", ":::", "a", "b", ":::", "c"],
            None,
            "xa,cy,xb,cy,",
        ),
        // {//} is Perl's dirname, as GNU parallel's: trailing and doubled
        // slashes do not count (remex gave `dir`, `a/`, `a/b`).
        (
            &["-k", "echo", "[{//}]", ":::", "dir/", "a//b", "a/b/", "/", ""],
            None,
            "[.]\n[a]\n[a]\n[/]\n[.]\n",
        ),
        // --header: a column's name with {.}'s, {/}'s... ending; any
        // value but 0 takes one line of each source (remex took ':'
        // only); with --header 0 a file's name names its inputs.
        (
            &["--header", ":", "--colsep", ",", "echo", "{a.}", "{b/}", "::::", "TABLE"],
            None,
            "x e\n",
        ),
        (
            &["--header", "1", "--colsep", ",", "echo", "{b}", "{1}", "::::", "TABLE"],
            None,
            "d/e x.y\n",
        ),
        (
            &["-k", "--header", "0", "--colsep", ",", "echo", "{TABLE}", "::::", "TABLE"],
            None,
            "a\nx.y\n",
        ),
        // --csv: fields trimmed when --colsep is given, not without (remex
        // never trimmed them).
        (
            &["--csv", "--colsep", ",", "printf", "[%s]", "{1}", "{2}", "::::", "SPACED"],
            None,
            "[s][t]",
        ),
        (
            &["--csv", "printf", "[%s]", "{1}", "{2}", "::::", "SPACED"],
            None,
            "[ s ][ t ]",
        ),
        // --plus's bash-like strings of one argument ({2#re}), a doubled
        // mark alone ({%%}: {%re} with re = %), and s///g as Perl's (an
        // empty match after a match: XX).
        (
            &["-k", "--plus", "echo", "{2#a}", "{1%%.*}", ":::", "x.y", ":::", "abc"],
            None,
            "bc \n",
        ),
        (
            &["-k", "--plus", "echo", "{%%}", "{/%.*/X}", ":::", "50%"],
            None,
            "50 XX\n",
        ),
        // --plus's {..} and {+..}: an extension may be empty (remex
        // needed a character in each).
        (
            &["-k", "--plus", "echo", "{+..}", "{..}", ":::", "a..b", "..."],
            None,
            ".b a\n. .\n",
        ),
    ];
    let dir = scratch("parallel-cmp");
    let list = dir.join("list");
    std::fs::write(&list, "f1.txt\nf2.txt\n").unwrap();
    let list = list.to_str().unwrap();
    let list2 = dir.join("list2");
    std::fs::write(&list2, "a\nb\nc\n").unwrap();
    let list2 = list2.to_str().unwrap();
    let table = dir.join("table");
    std::fs::write(&table, "a,b\nx.y,d/e\n").unwrap();
    let table = table.to_str().unwrap();
    let spaced = dir.join("spaced.csv");
    std::fs::write(&spaced, " s , t \n").unwrap();
    let spaced = spaced.to_str().unwrap();
    let fill = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| match *a {
                "LIST" => list.to_string(),
                "LIST2" => list2.to_string(),
                "TABLE" => table.to_string(),
                "SPACED" => spaced.to_string(),
                "{TABLE}" => format!("{{{table}}}"),
                _ => a.to_string(),
            })
            .collect()
    };
    let parallel_here = gnu_parallel().is_some();
    let mut same = 0;
    for (args, stdin, want) in cases {
        let args = &fill(args);
        let mut c = remex();
        c.args(["run", "--tx", "popen", "--no-bar"]).args(args);
        let (ok, got, e) = with_stdin(c, *stdin);
        assert!(ok, "{args:?}: {e}");
        assert_eq!(got, *want, "remex {args:?}");
        if let Some(g) = gnu_output(
            |p| {
                p.args(args);
            },
            stdin.map(str::as_bytes),
        ) {
            let (pok, pgot, pe) = (g.status.success(), out(&g), err(&g));
            assert!(pok, "parallel {args:?}: {pe}");
            if pgot == got {
                same += 1;
            } else {
                eprintln!("differs from GNU parallel: {args:?}: remex {got:?}, parallel {pgot:?}");
            }
        }
    }
    if parallel_here {
        println!(
            "remex run matches GNU parallel on {same} of {} command lines",
            cases.len()
        );
        assert_eq!(
            same,
            cases.len(),
            "every case is one GNU parallel agrees with"
        );
    }
    // --retries 0 or less runs a failing job once, as 1 does (GNU
    // parallel's reading).
    let tries = dir.join("tries");
    let job = format!("echo {{}} >> {}; exit 1", tries.display());
    let o = run(&[
        "run",
        "--tx",
        "popen",
        "--retries",
        "-1",
        &job,
        ":::",
        "a",
        "b",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", o.stderr.as_str());
    let mut lines: Vec<String> = std::fs::read_to_string(&tries)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    assert_eq!(lines, ["a", "b"]);
    // What remex refuses or reads differently: clear errors.
    // An abbreviation of several options names them (GNU parallel says
    // the same, and exits 255 on any usage error).
    let o = run(&["run", "--tx", "popen", "--jo", "2", "echo", ":::", "a"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        o.stderr
            .as_str()
            .contains("option --jo is ambiguous (--joblog, --jobs)"),
        "{}",
        o.stderr.as_str()
    );
    assert!(o.stdout.is_empty(), "{}", o.stdout.as_str());
    let o = run(&["run", "--tx", "popen", "-d", "ab", "echo", ":::", "a"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        o.stderr.as_str().contains("one character"),
        "{}",
        o.stderr.as_str()
    );
    let o = run(&["run", "--tx", "popen", "--colsep", "(", "echo", ":::", "a"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        o.stderr.as_str().contains("--colsep \"(\" is not a regex"),
        "{}",
        o.stderr.as_str()
    ); // A Perl expression is refused, not run as text (remex has no Perl;
       // GNU parallel prints "baa" here).
    let o = run(&[
        "run", "--tx", "popen", "echo", "{=", "s/a/b/", "=}", ":::", "aaa",
    ]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        o.stderr
            .as_str()
            .contains("{= s/a/b/ =} is a Perl expression of GNU parallel's"),
        "{}",
        o.stderr.as_str()
    );
    assert!(o.stdout.is_empty(), "{}", o.stdout.as_str());
}

/// `-s N`: a job whose command line (with its end) takes more than N
/// characters ends the run as GNU parallel's does: the jobs before it
/// run, none after, "command line too long" on stderr, exit 255; with
/// --dry-run too. remex ran such a job.
#[test]
fn a_command_line_longer_than_s_ends_the_run_as_in_gnu_parallel() {
    let long = "a".repeat(20);
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "-k", "-j1", "-s", "12", "echo", ":::", "a", "bb", &long, "c",
            ],
            "a\nbb\n",
        ),
        (
            &["--dryrun", "-j1", "-s", "12", "echo", ":::", "a", &long],
            "echo a\n",
        ),
        (
            &[
                "-k", "-j1", "-s", "12", "-m", "echo", ":::", "a", "bb", "cc", &long, "c",
            ],
            "a bb\ncc\n",
        ),
        // The line's end counts: "echo abcd" is 9 characters.
        (&["-s", "9", "echo", ":::", "abcd"], ""),
        // Inputs are measured quoted for the shell.
        (&["-j1", "-s", "11", "echo \"{}\"", ":::", "a b"], ""),
    ];
    for (args, want) in cases {
        let o = ran(remex()
            .args(["run", "--tx", "popen", "--no-bar"])
            .args(*args));
        assert_eq!(o.status.code(), Some(255), "{args:?}: {}", o.stderr);
        assert_eq!(o.stdout, *want, "{args:?}");
        assert!(
            o.stderr.contains("command line too long") && o.stderr.contains("-s "),
            "{args:?}: {}",
            o.stderr
        );
        if let Some(g) = gnu_output(
            |p| {
                p.args(*args);
            },
            None,
        ) {
            assert_eq!(g.status.code(), Some(255), "parallel {args:?}");
            assert_eq!(out(&g), *want, "parallel {args:?}");
        }
    }
    // Within the bound: the job runs.
    let o = run(&["run", "--tx", "popen", "-s", "10", "echo", ":::", "abcd"]);
    assert!(o.status.success(), "{}", o.stderr);
    assert_eq!(o.stdout, "abcd\n");
}

#[test]
fn completions_load_in_bash_and_man_pages_are_written() {
    let dir = scratch("completions");
    let o = run(&["completions", "bash"]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    let script = dir.join("remex.bash");
    std::fs::write(&script, o.stdout).unwrap();
    // What bash does on `remex ru<TAB>`.
    let b = Command::new("bash")
        .arg("-c")
        .arg(format!(
            r#"source {}; COMP_WORDS=(remex ru); COMP_CWORD=1; COMP_LINE="remex ru"; COMP_POINT=${{#COMP_LINE}}; _remex remex ru remex; printf '%s\n' "${{COMPREPLY[@]}}""#,
            script.display()
        ))
        .output()
        .unwrap();
    assert!(b.status.success(), "{}", err(&b));
    assert_eq!(out(&b).trim(), "run", "{}", err(&b));
    // And an option of run after `remex run --li`.
    let b = Command::new("bash")
        .arg("-c")
        .arg(format!(
            r#"source {}; COMP_WORDS=(remex run --li); COMP_CWORD=2; COMP_LINE="remex run --li"; COMP_POINT=${{#COMP_LINE}}; _remex remex --li run; printf '%s\n' "${{COMPREPLY[@]}}""#,
            script.display()
        ))
        .output()
        .unwrap();
    assert!(out(&b).lines().any(|l| l == "--link"), "{}", out(&b));
    for shell in ["zsh", "fish"] {
        let o = run(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", o.stderr.as_str());
        assert!(
            o.stdout.as_str().contains("rsync") && o.stdout.as_str().contains("link"),
            "{shell}"
        );
    }
    let o = run(&["completions", "tcsh"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    let man = dir.join("man");
    let o = run(&["manpages", man.to_str().unwrap()]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    for page in ["remex", "remex-run", "remex-exec", "remex-rsync"] {
        let text = std::fs::read_to_string(man.join(format!("{page}.1"))).unwrap();
        assert!(text.contains(".TH"), "{page}: a man page");
        assert!(text.contains(page), "{page}: named");
    }
    let run_page = std::fs::read_to_string(man.join("remex-run.1")).unwrap();
    assert!(run_page.contains("link") && run_page.contains("colsep"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn run_serves_a_dashboard_and_metrics_while_its_jobs_run() {
    use std::io::{BufRead, Read};
    // Jobs that wait for a file the test writes once it has scraped.
    let dir = scratch("dashboard");
    let go = dir.join("go");
    let wait = format!(
        "while [ ! -e {} ]; do sleep 0.02; done; echo {{}}",
        go.display()
    );
    let mut child = remex()
        .args([
            "run",
            "--tx",
            "2*popen",
            "--dashboard",
            "0",
            "--no-bar",
            "-k",
            "--",
        ])
        .arg(&wait)
        .args([":::", "a", "b", "c"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("remex: dashboard at http://")
        .unwrap_or_else(|| panic!("{line:?}"))
        .trim_end_matches('/')
        .to_string();
    assert!(
        url.starts_with("127.0.0.1:"),
        "a port alone is loopback: {url}"
    );
    let scrape = |path: &str| {
        let mut s = std::net::TcpStream::connect(&url).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    // Running: the jobs are submitted and two of them run.
    let t0 = Instant::now();
    loop {
        let m = scrape("/metrics");
        if m.contains("remex_tasks_submitted_total{task=\"run\"} 3") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{m}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(scrape("/").contains("<title>remex dashboard</title>"));
    std::fs::write(&go, "").unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(remex_tests::finished(child).status.success());
    assert_eq!(out, "a\nb\nc\n");
    // Gone with the run: nothing answers there, or (the port freed and
    // taken by another test's listener at once) not a dashboard.
    if std::net::TcpStream::connect(&url).is_ok() {
        let page = std::panic::catch_unwind(|| scrape("/")).unwrap_or_default();
        assert!(
            !page.contains("<title>remex dashboard</title>"),
            "the dashboard outlived its run"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn slots_shuffles_and_delays_behave_as_in_gnu_parallel() {
    // {%}: two jobs running at once never share a slot. Each job claims
    // its slot's directory for a while; a shared slot fails the claim.
    let dir = scratch("slots");
    let claim = format!(
        "mkdir {d}/slot{{%}} && sleep 0.05 && rmdir {d}/slot{{%}} && echo {{%}}",
        d = dir.display()
    );
    let o = run(&[
        "run", "--tx", "popen", "-j", "3", "--no-bar", "--", &claim, ":::", "1", "2", "3", "4",
        "5", "6", "7", "8", "9",
    ]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    let mut slots: Vec<String> = o.stdout.as_str().lines().map(str::to_string).collect();
    slots.sort();
    slots.dedup();
    assert!(
        slots.iter().all(|s| ["1", "2", "3"].contains(&s.as_str())),
        "{slots:?}"
    );
    // --shuf: every job once, numbered in the shuffled order.
    let letters = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let orders: Vec<Vec<String>> = (0..2)
        .map(|_| {
            let mut args = vec![
                "run", "--tx", "popen", "-k", "--shuf", "--no-bar", "echo", "{#}", "{}", ":::",
            ];
            args.extend(letters);
            let o = run(&args);
            assert!(o.status.success(), "{}", o.stderr.as_str());
            let lines: Vec<String> = o.stdout.as_str().lines().map(str::to_string).collect();
            for (i, l) in lines.iter().enumerate() {
                assert!(l.starts_with(&format!("{} ", i + 1)), "{lines:?}");
            }
            let mut got: Vec<&str> = lines
                .iter()
                .map(|l| &l[l.find(' ').unwrap() + 1..])
                .collect();
            let order = got.iter().map(|s| s.to_string()).collect();
            got.sort();
            assert_eq!(got, letters);
            order
        })
        .collect();
    assert!(
        orders.iter().any(|o| o != &letters),
        "two runs of 8 jobs both in input order: not shuffled ({orders:?})"
    );
    // --delay: four jobs with room for all start 0.2 s apart.
    let t0 = Instant::now();
    let o = run(&[
        "run", "--tx", "popen", "-j", "4", "--delay", "200ms", "--no-bar", "true", ":::", "1", "2",
        "3", "4",
    ]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
    let o = run(&[
        "run", "--tx", "popen", "--delay", "soon", "true", ":::", "1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        o.stderr.as_str().contains("give seconds"),
        "{}",
        o.stderr.as_str()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn log_format_json_writes_every_log_event_as_one_json_object() {
    // A wrapper that says something on stderr before it starts the
    // worker: the worker's stderr, forwarded as a log event.
    let remex_bin = env!("CARGO_BIN_EXE_remex");
    let spec = format!("cmd=sh -c 'echo the wrapper speaks >&2; REMEX_WORKER=1 exec {remex_bin}'");
    let o = remex_tests::output_of(
        remex()
            .args([
                "--log-format",
                "json",
                "exec",
                "--tx",
                &spec,
                "--",
                "echo",
                "done",
            ])
            .env("RUST_LOG", "info"),
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("done"), "{}", out(&o));
    let events: Vec<serde_json::Value> = err(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    let spoke = events
        .iter()
        .find(|e| {
            e["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("the wrapper speaks"))
        })
        .unwrap_or_else(|| panic!("no event of the wrapper's line in {events:?}"));
    assert_eq!(spoke["target"], "remex::worker", "{spoke}");
    assert!(spoke["fields"]["gateway"].is_string(), "{spoke}");
    // A value remex does not know: a usage error.
    let o = run(&["--log-format", "xml", "exec", "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn files_travel_with_jobs_to_an_ssh_host_and_back_and_are_cleaned_up_there() {
    let sshd = remex_tests::Sshd::start_for_new_user("127.0.0.6");
    let spec = sshd.spec("");
    let d = scratch("transfer");
    for (name, text) in [("f1", "one\n"), ("f2", "two\n"), ("common", "shared\n")] {
        std::fs::write(d.join(name), text).unwrap();
    }
    let in_dir = |args: &[&str]| {
        let mut c = remex();
        c.current_dir(&d).args(args);
        remex_tests::output_of(&mut c)
    };
    // --trc: each input there, its .out back here, both removed there;
    // --basefile: there before the first job, removed after the last.
    let o = in_dir(&[
        "run",
        "--tx",
        &spec,
        "--no-bar",
        "--workdir",
        "jobs",
        "--basefile",
        "common",
        "--cleanup",
        "--trc",
        "{}.out",
        "--",
        "{ tr a-z A-Z < {}; cat common; } > {}.out",
        ":::",
        "f1",
        "f2",
    ]);
    assert!(o.status.success(), "{}\n{}", err(&o), sshd.log());
    assert_eq!(
        std::fs::read_to_string(d.join("f1.out")).unwrap(),
        "ONE\nshared\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("f2.out")).unwrap(),
        "TWO\nshared\n"
    );
    let there = sshd.home().join("jobs");
    let left: Vec<_> = std::fs::read_dir(&there)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left on the host in {there:?}: {left:?}");
    // Without --cleanup the files stay there; --return alone brings back.
    let o = in_dir(&[
        "run",
        "--tx",
        &spec,
        "--no-bar",
        "--tf",
        "{}",
        "--return",
        "{}.n",
        "--",
        "wc -l < {} > {}.n",
        ":::",
        "f1",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(std::fs::read_to_string(d.join("f1.n")).unwrap().trim(), "1");
    assert!(sshd.home().join("f1").exists() && sshd.home().join("f1.n").exists());
    // On this machine, in this directory, nothing moves and nothing is
    // removed: the inputs and outputs stay.
    let o = in_dir(&[
        "run",
        "--tx",
        "popen",
        "--no-bar",
        "--trc",
        "{}.l",
        "--",
        "cat {} > {}.l",
        ":::",
        "f2",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(std::fs::read_to_string(d.join("f2")).unwrap(), "two\n");
    assert_eq!(std::fs::read_to_string(d.join("f2.l")).unwrap(), "two\n");
    // On this machine an absolute path is the file itself: a job in
    // another directory (--workdir) neither writes over it nor removes it.
    let abs = d.join("f1").display().to_string();
    let o = in_dir(&[
        "run",
        "--tx",
        "popen",
        "--no-bar",
        "--workdir",
        "elsewhere",
        "--tf",
        &abs,
        "--cleanup",
        "-N0",
        "--",
        "cat",
        &abs,
        ":::",
        "x",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "one\n");
    assert_eq!(std::fs::read_to_string(d.join("f1")).unwrap(), "one\n");
    // A file that cannot be sent fails its job, naming it.
    let o = in_dir(&[
        "run", "--tx", &spec, "--no-bar", "--tf", "{}", "--", "cat {}", ":::", "missing",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("--transferfile missing"), "{}", err(&o));
}

#[test]
fn a_timed_out_job_leaves_no_process_behind_even_one_its_shell_orphaned() {
    // sh dies at SIGTERM; the perl under it ignores SIGTERM and goes to
    // init: the SIGKILL that follows must still reach it. With
    // --termseq as GNU parallel's.
    let code = format!(
        "$SIG{{TERM}}=q(IGNORE); sleep 30; # orphan-{}",
        std::process::id()
    );
    let argv = ["perl", "-e", code.as_str()];
    for extra in [&[][..], &["--termseq", "INT,100,TERM,100,KILL,25"]] {
        let mut args = vec!["run", "--tx", "popen", "--no-bar", "--timeout", "1"];
        args.extend_from_slice(extra);
        let cmd = format!("perl -e '{code}'; echo after");
        args.extend_from_slice(&["--", &cmd, ":::", "x"]);
        let t0 = Instant::now();
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", o.stderr.as_str());
        assert!(
            o.stderr.as_str().contains("timed out"),
            "{}",
            o.stderr.as_str()
        );
        assert!(t0.elapsed() < Duration::from_secs(10), "{extra:?}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !processes_running(&argv).is_empty() {
            assert!(
                Instant::now() < deadline,
                "{extra:?}: left behind: {:?}",
                processes_running(&argv)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn inputs_not_read_or_outputs_not_written_end_in_255_never_silently() {
    let dir = scratch("unfinished");
    // An input that is not UTF-8 was refused (before that, run with
    // U+FFFD in place of the byte, exit 0): now it is passed as its
    // bytes (inputs_that_are_not_utf8_reach_the_jobs_as_their_bytes).
    let mut c = remex();
    c.args(["run", "--tx", "popen", "--no-bar", "-k", "echo"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"ok\nb\xfe\nc\n").unwrap();
    drop(input);
    let o = remex_tests::finished(child);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(o.stdout, b"ok\nb\xfe\nc\n");
    // An input file that cannot be read (a directory: it opens, and its
    // first read fails): no job runs, 255.
    let o = run(&[
        "run",
        "--tx",
        "popen",
        "--no-bar",
        "-k",
        "echo",
        "::::",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(255), "{}", o.stderr);
    assert_eq!(o.stdout, "");
    assert!(o.stderr.contains("Is a directory"), "{}", o.stderr);
    // --results where no directory can be made: before any job runs (it
    // ran them all, printed an error per job and exited 0).
    let blocker = dir.join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let under = blocker.join("results");
    let o = run(&[
        "run",
        "--tx",
        "popen",
        "--no-bar",
        "--results",
        under.to_str().unwrap(),
        "touch",
        dir.join("ran-{}").to_str().unwrap(),
        ":::",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(255), "{}", o.stderr);
    assert!(o.stderr.contains("--results: cannot make"), "{}", o.stderr);
    assert!(!dir.join("ran-x").exists(), "a job ran");
    // A job's files that cannot be written: the run ends in 255, saying
    // how many jobs' output was lost.
    let results = dir.join("results");
    std::fs::create_dir_all(&results).unwrap();
    std::fs::write(results.join("1"), "").unwrap();
    let o = run(&[
        "run",
        "--tx",
        "popen",
        "--no-bar",
        "--results",
        results.to_str().unwrap(),
        "echo",
        ":::",
        "a",
        "b",
    ]);
    assert_eq!(o.status.code(), Some(255), "{}", o.stderr);
    assert!(
        o.stderr
            .contains("the output of 2 jobs could not be written under --results"),
        "{}",
        o.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--results DIR` with `--header`: the directories in the order of the
/// columns' names, and a file's name (which `--header` makes a name of
/// its inputs) over its column's, as GNU parallel makes them (remex kept
/// the columns' order, and escaped the file's slashes). With GNU parallel
/// here, the same trees.
#[test]
fn results_directories_follow_header_names_as_in_gnu_parallel() {
    let dir = scratch("results-header");
    let table = dir.join("t");
    std::fs::write(&table, "b,a\n1,2\n").unwrap();
    let tree = |root: &Path| -> Vec<String> {
        let mut all = Vec::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                all.push(p.strip_prefix(root).unwrap().display().to_string());
                if p.is_dir() {
                    todo.push(p);
                }
            }
        }
        all.sort();
        all
    };
    let rel = table.strip_prefix("/").unwrap().display().to_string();
    let cases: [(&[&str], String); 2] = [
        (&[":::", "b,a", "1,2"], "a/2/b/1/stdout".to_string()),
        (
            &["::::", table.to_str().unwrap()],
            format!("{rel}/1/a/2/stdout"),
        ),
    ];
    for (i, (source, want)) in cases.iter().enumerate() {
        let ours = dir.join(format!("ours{i}"));
        let args = |to: &Path| -> Vec<String> {
            let mut v: Vec<String> = ["--header", ":", "--colsep", ",", "--results"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            v.push(to.display().to_string());
            v.push("echo".into());
            v.extend(source.iter().map(|s| s.to_string()));
            v
        };
        let o = ran(remex()
            .args(["run", "--tx", "popen", "--no-bar"])
            .args(args(&ours)));
        assert!(o.status.success(), "{}", o.stderr);
        assert!(ours.join(want).is_file(), "{want} in {:?}", tree(&ours));
        let theirs = dir.join(format!("theirs{i}"));
        if gnu_output(
            |p| {
                p.args(args(&theirs));
            },
            None,
        )
        .is_some()
        {
            assert_eq!(tree(&ours), tree(&theirs), "{source:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--results FILE.csv|.tsv|.json`: one record per job in GNU parallel's
/// form (a directory named out.csv before); with GNU parallel here, the
/// same file but for the times.
#[test]
fn results_in_a_csv_tsv_or_json_file_are_gnu_parallels_records() {
    let dir = scratch("results-table");
    // The start time and run time differ from run to run.
    let times = regex::Regex::new(
        r#"(?m)^(\d+)([,\t]):[,\t]\d+\.\d{3}[,\t]\d+\.\d{3}|"Starttime": \d+\.\d{3}, "JobRuntime": \d+\.\d{3}"#,
    )
    .unwrap();
    let masked = |p: &std::path::Path| {
        let text = std::fs::read_to_string(p).unwrap();
        times.replace_all(&text, "$1$2:TIMES").into_owned()
    };
    let args = ["-k", "echo", ":::", "a", "b\"c", "p q"];
    for form in ["csv", "tsv", "json"] {
        let ours = dir.join(format!("remex.{form}"));
        let o = run(&[
            &[
                "run",
                "--tx",
                "popen",
                "--no-bar",
                "--results",
                ours.to_str().unwrap(),
            ],
            &args[..],
        ]
        .concat());
        assert!(o.status.success(), "{}", o.stderr);
        assert_eq!(o.stdout, "", "the output is in the file only");
        let got = masked(&ours);
        match form {
            "csv" => assert_eq!(
                got,
                "Seq,Host,Starttime,JobRuntime,Send,Receive,Exitval,Signal,Command,V1,Stdout,Stderr\n\
                 1,:TIMES,0,2,0,0,\"echo a\",a,\"a\n\",\n\
                 2,:TIMES,0,4,0,0,\"echo 'b\"\"c'\",\"b\"\"c\",\"b\"\"c\n\",\n\
                 3,:TIMES,0,4,0,0,\"echo 'p q'\",\"p q\",\"p q\n\",\n"
            ),
            "json" => assert!(
                got.lines().nth(1).unwrap()
                    == r#"{ "Seq": 2, "Host": ":", :TIMES, "Send": 0, "Receive": 4, "Exitval": 0, "Signal": 0, "Command": "echo 'b\"c'", "V": [ "b\"c" ], "Stdout": "b\"c\u000a", "Stderr": "" }"#,
                "{got}"
            ),
            _ => assert!(got.starts_with("Seq\tHost\t"), "{got}"),
        }
        let theirs = dir.join(format!("gnu.{form}"));
        let set = |p: &mut Command| {
            p.args(["--results", theirs.to_str().unwrap()]).args(args);
        };
        if let Some(out) = gnu_output(set, None) {
            assert!(out.status.success());
            assert_eq!(got, masked(&theirs), "{form}: remex's and GNU parallel's");
        }
    }
    // -.csv: the records on stdout.
    let o = run(&[
        "run",
        "--tx",
        "popen",
        "--no-bar",
        "--results",
        "-.csv",
        "echo",
        ":::",
        "a",
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    assert!(
        o.stdout.starts_with("Seq,Host,") && o.stdout.ends_with(",\"echo a\",a,\"a\n\",\n"),
        "{}",
        o.stdout
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Inputs reach a job as they were whatever shell runs the jobs: each is
/// quoted for that shell as GNU parallel quotes it (csh reads `!` as a
/// history event outside a backslash, rc knows no backslash and writes
/// `'` as `''`). The shells are required under CI (`.ci/run` installs
/// them), skipped elsewhere when missing.
#[test]
fn inputs_reach_jobs_as_they_were_under_csh_tcsh_and_rc() {
    let inputs = [
        "plain", "x,y", "a b", "it's", "'", "$HOME", "~x", "a*", "#c", "x=1", "a;b|c&d", "(x)",
        "{y}", "[z]", "a\"b", "q?", "b`c", "e!f", "<>", "a\\b", "é",
    ];
    let want: String = inputs.iter().map(|i| format!("{i}\n")).collect();
    for shell in ["sh", "bash", "csh", "tcsh", "rc"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {shell}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "{shell} is missing (apt-get install csh tcsh rc)"
            );
            eprintln!("{shell} is missing: skipped");
            continue;
        }
        let mut c = remex();
        c.env("PARALLEL_SHELL", shell)
            .args(["run", "-k", "--tx", "popen", "--no-bar"])
            .args(["printf", r"'%s\n'", ":::"])
            .args(inputs);
        let (ok, got, e) = with_stdin(c, None);
        assert!(ok, "{shell}: {e}");
        assert_eq!(got, want, "{shell}");
        // The command lines are GNU parallel's (é aside under csh: it
        // escapes each byte past 0x81, remex the character).
        if let Some(mut p) = gnu_parallel() {
            let ascii: Vec<&str> = inputs.iter().copied().filter(|i| i.is_ascii()).collect();
            let dry = |c: &mut Command| {
                c.env("PARALLEL_SHELL", shell)
                    .args(["-k", "--dryrun", "echo", ":::"])
                    .args(&ascii);
            };
            dry(&mut p);
            let (_, theirs, pe) = with_stdin(p, None);
            let mut c = remex();
            c.args(["run", "--tx", "popen", "--no-bar"]);
            dry(&mut c);
            let (ok, ours, e) = with_stdin(c, None);
            assert!(ok, "{shell}: {e}");
            assert_eq!(ours, theirs, "{shell}: the command lines ({pe})");
        }
    }
}

/// `--line-buffer -k` (GNU parallel's reading): the oldest job's lines
/// print as they come, a later job's wait for its turn, and a later job
/// that holds `--max-output` bytes waits without losing any. `-u` takes
/// `-k` and `--tag` and ignores them, as GNU parallel does.
#[test]
fn keep_order_with_line_buffer_prints_the_oldest_job_live_and_holds_the_rest() {
    let dir = scratch("lb-k");
    let fifo = dir.join("go");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // Held open for reading and writing (an open that never blocks): a
    // job's `read x < fifo` opens at once and waits for our line.
    let mut go = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    // Job 1 prints a line, then waits for the test to have read it (the
    // fifo opens when the test writes); job 2 ends at once.
    let first = format!("echo a; read x < {}; echo a-end", fifo.display());
    let mut child = remex()
        .args(["run", "--tx", "2*popen", "--no-bar", "-k", "--lb", ":::"])
        .args([first.as_str(), "echo b"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (rx, reader) = lines_of(child.stdout.take().unwrap());
    let got = rx.recv_timeout(Duration::from_secs(30));
    // Let job 1 go on, whatever came.
    go.write_all(b"go\n").unwrap();
    assert_eq!(
        got.as_deref(),
        Ok("a"),
        "job 1's line comes while it runs, before job 2's"
    );
    let rest: Vec<String> = rx.iter().collect();
    assert_eq!(rest, ["a-end", "b"]);
    let o = remex_tests::finished(child);
    assert!(o.status.success(), "{}", err(&o));
    reader.join().unwrap();

    // A later job writes far past --max-output while job 1 runs: it
    // waits for its turn, and every line arrives, in order.
    let slow = format!("read x < {}; echo first", fifo.display());
    let child = remex()
        .args(["run", "--tx", "2*popen", "--no-bar", "-k", "--lb"])
        .args(["--max-output", "1000", ":::", slow.as_str(), "seq 1 100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    go.write_all(b"go\n").unwrap();
    let o = remex_tests::finished(child);
    assert!(o.status.success(), "{}", err(&o));
    let want: String = std::iter::once("first".to_string())
        .chain((1..=100_000).map(|i| i.to_string()))
        .map(|l| l + "\n")
        .collect();
    assert!(
        out(&o) == want,
        "every line, in order ({} bytes)",
        o.stdout.len()
    );

    // -u ignores -k and --tag.
    let o = run(&[
        "run", "--tx", "popen", "--no-bar", "-u", "-k", "--tag", "echo", ":::", "a",
    ]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    assert_eq!(o.stdout.as_str(), "a\n");
}

/// `--resume` without `--joblog` skips the jobs whose `--results DIR`
/// output is there (GNU parallel's second place to look), and says what
/// it needs when neither is given.
#[test]
fn resume_skips_the_jobs_whose_results_are_there() {
    let dir = scratch("resume-results");
    let res = dir.join("res");
    let ran = dir.join("ran");
    let job = format!("echo {{}} >> {}; echo {{}}", ran.display());
    let runs = |inputs: &[&str]| {
        let mut args = vec!["run", "--tx", "popen", "--no-bar", "-k", "--resume"];
        let res = res.to_str().unwrap();
        args.extend(["--results", res, job.as_str(), ":::"]);
        args.extend(inputs);
        let o = run(&args);
        assert!(o.status.success(), "{}", o.stderr.as_str());
    };
    runs(&["a", "b"]);
    // b's output is gone: it runs again, a does not; c is new.
    std::fs::remove_dir_all(res.join("1").join("b")).unwrap();
    runs(&["a", "b", "c"]);
    let lines = std::fs::read_to_string(&ran).unwrap();
    let mut first: Vec<&str> = lines.lines().take(2).collect();
    first.sort();
    assert_eq!(first, ["a", "b"]);
    let mut again: Vec<&str> = lines.lines().skip(2).collect();
    again.sort();
    assert_eq!(again, ["b", "c"], "only the jobs without results ran again");
    assert_eq!(
        std::fs::read_to_string(res.join("1").join("c").join("stdout")).unwrap(),
        "c\n"
    );
    // Neither a job log nor a results directory: said, before any job.
    let o = run(&["run", "--tx", "popen", "--resume", "echo", ":::", "a"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        o.stderr
            .as_str()
            .contains("--resume needs --joblog or --results DIR"),
        "{}",
        o.stderr.as_str()
    );
    assert!(o.stdout.is_empty());
    let csv = dir.join("out.csv");
    let o = run(&[
        "run",
        "--tx",
        "popen",
        "--resume",
        "--results",
        csv.to_str().unwrap(),
        "echo",
        ":::",
        "a",
    ]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        o.stderr.as_str().contains("needs --joblog too"),
        "{}",
        o.stderr.as_str()
    );
}

/// `--joblog -` writes the log among the jobs' output, each job's line
/// after its output (in -k's order), and `--joblog +FILE` appends without
/// a header: GNU parallel's forms, compared with it when installed
/// (times masked).
#[test]
fn the_job_log_goes_to_stdout_or_is_appended_as_in_gnu_parallel() {
    let mask = |text: &str| -> String {
        text.lines()
            .map(|l| {
                let mut f: Vec<String> = l.split('\t').map(String::from).collect();
                if f.len() == 9 && f[0] != "Seq" {
                    assert_eq!(f[3].len(), 10, "JobRuntime in 10 columns: {l:?}");
                    f[2] = "T".into();
                    f[3] = "R".into();
                }
                f.join("\t") + "\n"
            })
            .collect()
    };
    let args = [
        "-k",
        "-j2",
        "--joblog",
        "-",
        "sleep {}; echo {}; echo on stderr >&2",
        ":::",
        "0.3",
        "0.1",
    ];
    let mut c = remex();
    c.args(["run", "--tx", "popen", "--no-bar"]).args(args);
    let (ok, got, e) = with_stdin(c, None);
    assert!(ok, "{e}");
    let want = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n\
                0.3\n1\t:\tT\tR\t0\t4\t0\t0\tsleep 0.3; echo 0.3; echo on stderr >&2\n\
                0.1\n2\t:\tT\tR\t0\t4\t0\t0\tsleep 0.1; echo 0.1; echo on stderr >&2\n";
    assert_eq!(mask(&got), want);
    if let Some(mut p) = gnu_parallel() {
        p.args(args);
        let (pok, theirs, pe) = with_stdin(p, None);
        assert!(pok, "{pe}");
        assert_eq!(mask(&theirs), want, "GNU parallel");
    }
    // Receive with --line-buffer counts stdout and stderr, with -u
    // nothing (GNU parallel's counts; "abc\n" and "de a\n").
    for (flow, receive) in [("--line-buffer", "9"), ("-u", "0")] {
        let args = ["--joblog", "-", flow, "echo abc; echo de >&2", ":::", "a"];
        let mut c = remex();
        c.args(["run", "--tx", "popen", "--no-bar"]).args(args);
        let (ok, got, e) = with_stdin(c, None);
        assert!(ok, "{e}");
        let line = got.lines().find(|l| l.starts_with("1\t")).unwrap_or("");
        assert_eq!(line.split('\t').nth(5), Some(receive), "{flow}: {got:?}");
        if let Some(mut p) = gnu_parallel() {
            p.args(args);
            let (_, theirs, _) = with_stdin(p, None);
            let line = theirs.lines().find(|l| l.starts_with("1\t")).unwrap_or("");
            assert_eq!(
                line.split('\t').nth(5),
                Some(receive),
                "GNU parallel {flow}"
            );
        }
    }
    // A job a signal ended: Exitval 0, Signal 9 (remex wrote -1); and a
    // program run without a shell is given its name as written (cat's
    // error said /usr/bin/cat, and so Receive with --lb differed).
    let cases: [(&[&str], &str, &str, &str); 2] = [
        (&["--joblog", "-", "kill -9 $$", ":::", "a"], "0", "9", "0"),
        (
            &["--joblog", "-", "--lb", "cat", ":::", "no-such-file"],
            "1",
            "0",
            "45",
        ),
    ];
    for (args, exitval, signal, receive) in cases {
        let mut c = remex();
        c.args(["run", "--tx", "popen", "--no-bar"]).args(args);
        let (_, got, _) = with_stdin(c, None);
        let line = got.lines().find(|l| l.starts_with("1\t")).unwrap_or("");
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            (f.get(5), f.get(6), f.get(7)),
            (Some(&receive), Some(&exitval), Some(&signal)),
            "{args:?}: {got:?}"
        );
        if let Some(mut p) = gnu_parallel() {
            p.args(args);
            let (_, theirs, _) = with_stdin(p, None);
            let line = theirs.lines().find(|l| l.starts_with("1\t")).unwrap_or("");
            let g: Vec<&str> = line.split('\t').collect();
            assert_eq!(f[5..8], g[5..8], "GNU parallel {args:?}");
        }
    }
    let dir = scratch("joblog-plus");
    let log = dir.join("log");
    let plus = format!("+{}", log.display());
    for (jl, input) in [(log.to_str().unwrap(), "a"), (plus.as_str(), "b")] {
        let o = run(&[
            "run", "--tx", "popen", "--no-bar", "--joblog", jl, "echo", ":::", input,
        ]);
        assert!(o.status.success(), "{}", o.stderr.as_str());
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let commands: Vec<&str> = text
        .lines()
        .map(|l| l.rsplit('\t').next().unwrap())
        .collect();
    assert_eq!(commands, ["Command", "echo a", "echo b"]);
    assert!(!dir.join(format!("+{}", log.display())).exists());
    let fresh = dir.join("fresh");
    let o = run(&[
        "run",
        "--tx",
        "popen",
        "--no-bar",
        "--joblog",
        &format!("+{}", fresh.display()),
        "echo",
        ":::",
        "c",
    ]);
    assert!(o.status.success(), "{}", o.stderr.as_str());
    let text = std::fs::read_to_string(&fresh).unwrap();
    assert!(!text.starts_with("Seq"), "no header after +: {text:?}");
    assert!(text.ends_with("\techo c\n"), "{text:?}");
}

/// `--results NAME` with replacement strings names each job's files as
/// GNU parallel does: stdout in NAME, stderr in NAME.err, the job's
/// number in NAME.seq; a NAME ending in / is a directory of seq, stdout
/// and stderr. Compared with GNU parallel's files when it is installed;
/// `--resume` skips a job whose file is there.
#[test]
fn results_named_by_replacement_strings_are_files_or_directories() {
    let make = |dir: &Path, program: Command| {
        let runs: [&[&str]; 3] = [
            &["--results", "o/{1}-{#}", "echo", ":::", "a/b", "sp ace"],
            &[
                "--results",
                "d/{}/",
                "sh",
                "-c",
                "'echo out; echo err >&2'",
                ":::",
                "x",
            ],
            &[
                "--header",
                ":",
                "--results",
                "h/{n}",
                "echo",
                "{n}",
                ":::",
                "n",
                "v1",
            ],
        ];
        for args in runs {
            let mut c = Command::new(program.get_program());
            c.args(program.get_args()).args(args).current_dir(dir);
            c.env_remove("REMEX_WORKER_PATH");
            let (ok, _, e) = with_stdin(c, None);
            assert!(ok, "{args:?}: {e}");
        }
        let mut files: Vec<(String, String)> = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(dir).unwrap().display().to_string();
                    files.push((rel, std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        files.sort();
        files
    };
    let ours_dir = scratch("results-named");
    let mut remex_run = Command::new(env!("CARGO_BIN_EXE_remex"));
    remex_run.args(["run", "--tx", "popen", "--no-bar", "-k"]);
    let ours = make(&ours_dir, remex_run);
    let want: Vec<(String, String)> = [
        ("d/x/seq", "1"),
        ("d/x/stderr", "err\n"),
        ("d/x/stdout", "out\n"),
        ("h/v1", "v1\n"),
        ("h/v1.err", ""),
        ("h/v1.seq", "1"),
        ("o/a/b-1", "a/b\n"),
        ("o/a/b-1.err", ""),
        ("o/a/b-1.seq", "1"),
        ("o/sp ace-2", "sp ace\n"),
        ("o/sp ace-2.err", ""),
        ("o/sp ace-2.seq", "2"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(ours, want);
    if let Some(mut p) = gnu_parallel() {
        p.arg("-k");
        let theirs_dir = scratch("results-named-gnu");
        assert_eq!(make(&theirs_dir, p), want, "GNU parallel's files");
    }
    // --resume: a job whose file is there does not run again.
    std::fs::remove_file(ours_dir.join("o/sp ace-2")).unwrap();
    let o = ran(remex()
        .current_dir(&ours_dir)
        .args(["run", "--tx", "popen", "--no-bar", "--resume"])
        .args([
            "--results",
            "o/{1}-{#}",
            "echo {} >> ran; echo",
            ":::",
            "a/b",
            "sp ace",
        ]));
    assert!(o.status.success(), "{}", o.stderr.as_str());
    assert_eq!(
        std::fs::read_to_string(ours_dir.join("ran")).unwrap(),
        "sp ace\n"
    );
}

#[test]
fn filter_hosts_leaves_out_the_hosts_that_cannot_start_and_names_them() {
    // GNU parallel's --filter-hosts was refused as having no equivalent:
    // one dead host among many ended the whole run before any job.
    let dead = "cmd=echo not a worker; exit 3";
    let o = run(&[
        "run", "-k", "--tx", "popen", "--tx", dead, "echo", ":::", "a", "b",
    ]);
    assert_eq!(o.status.code(), Some(255), "{}", o.stderr);
    assert_eq!(o.stdout, "", "no job runs without --filter-hosts");
    let o = run(&[
        "run",
        "-k",
        "--filter-hosts",
        "--tx",
        "popen",
        "--tx",
        dead,
        "--tx",
        "popen//via=nowhere",
        "-S",
        "nohost.invalid",
        "echo",
        ":::",
        "a",
        "b",
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    assert_eq!(o.stdout, "a\nb\n");
    for named in [dead, "ssh=nohost.invalid", "popen//via=nowhere"] {
        assert!(
            o.stderr
                .lines()
                .any(|l| l.contains(named) && l.ends_with("(--filter-hosts leaves it out)")),
            "{named} is not named as left out: {}",
            o.stderr
        );
    }
    // None left: an error before any job.
    let o = run(&["run", "--filterhosts", "--tx", dead, "echo", ":::", "a"]);
    assert_eq!(o.status.code(), Some(255), "{}", o.stderr);
    assert!(
        o.stderr
            .contains("--filter-hosts: no worker could start (1 left out)"),
        "{}",
        o.stderr
    );
    assert_eq!(o.stdout, "");
}

#[test]
fn inputs_that_are_not_utf8_reach_the_jobs_as_their_bytes() {
    // GNU parallel passes any bytes (`find -print0 | parallel -0 ...`
    // over file names in Latin-1); remex refused such an input ("not
    // UTF-8 text: convert it first").
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let d = scratch("raw-bytes");
    let names: [&[u8]; 2] = [b"caf\xe9.txt", b"\xff\xfe 'x'.txt"];
    for (k, n) in names.iter().enumerate() {
        std::fs::write(d.join(OsStr::from_bytes(n)), vec![b'x'; k + 3]).unwrap();
    }
    // From stdin with -0, through {} and {.}, with --tag: as GNU
    // parallel prints it, byte for byte.
    let fed = |mut c: Command| {
        c.current_dir(&d)
            .args(["-0", "-k", "--tag", "printf '%s|' {.}; wc -c < {}"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(b"caf\xe9.txt\0\xff\xfe 'x'.txt\0").unwrap();
        drop(input);
        remex_tests::finished(child)
    };
    let mut c = remex();
    c.arg("run");
    let o = fed(c);
    assert!(o.status.success(), "{}", err(&o));
    let want = b"caf\xe9.txt\tcaf\xe9|3\n\xff\xfe 'x'.txt\t\xff\xfe 'x'|4\n";
    assert_eq!(o.stdout, want, "{}", out(&o).escape_debug());
    if let Some(p) = gnu_parallel() {
        let g = fed(p);
        assert_eq!(g.stdout, want, "parallel: {}", out(&g).escape_debug());
    }
    // After ::: on the command line, and into --results' directory names.
    let word = OsStr::from_bytes(b"r\xe9sum\xe9");
    let res = d.join("res");
    let o = remex_tests::output_of(
        remex()
            .current_dir(&d)
            .arg("run")
            .arg("--results")
            .arg(&res)
            .args(["printf %s {}", ":::"])
            .arg(word),
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        std::fs::read(res.join("1").join(word).join("stdout")).unwrap(),
        b"r\xe9sum\xe9"
    );
    // A command word that is not UTF-8 is still a usage error, naming it.
    let o = remex_tests::output_of(
        remex()
            .arg("run")
            .arg(OsStr::from_bytes(b"echo \xff"))
            .args([":::", "a"]),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains(r"word 2 of the command line is not UTF-8 text: echo \xff"),
        "{}",
        err(&o)
    );
    // csh cannot be given such an input: the job is refused, named.
    let o = remex_tests::output_of(
        remex()
            .env("PARALLEL_SHELL", "csh")
            .args(["run", "echo", ":::"])
            .arg(word),
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).contains("the command line for csh holds an input that is not UTF-8"),
        "{}",
        err(&o)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// Feeds `remex run` two inputs (`j{n}`, `j{n+1}`) at once and returns the
/// second word of each job's line, as they end (30 s bound each).
fn two_jobs(
    input: &mut std::process::ChildStdin,
    lines: &std::sync::mpsc::Receiver<String>,
    n: &mut usize,
) -> Vec<String> {
    writeln!(input, "j{}\nj{}", *n, *n + 1).unwrap();
    input.flush().unwrap();
    *n += 2;
    (0..2)
        .map(|_| {
            let l = lines
                .recv_timeout(Duration::from_secs(30))
                .expect("a job's line");
            l.split_whitespace().nth(1).unwrap().to_string()
        })
        .collect()
}

#[test]
fn workers_follow_the_sshloginfile_while_jobs_run_as_in_gnu_parallel() {
    // GNU parallel reads --sshloginfile again while it runs (at most once
    // a second): hosts added get jobs, hosts removed get no new ones and
    // their running jobs finish. remex read it once.
    let d = scratch("slf-reload");
    let slf = d.join("logins");
    std::fs::write(&slf, "1/:\n").unwrap();
    let mut child = spawned(
        remex().args([
            "run",
            "--no-bar",
            "-j1",
            "--slf",
            slf.to_str().unwrap(),
            &format!(
                "echo >> {}/{{}}.ran; sleep 0.4; echo {{}} $PPID",
                d.display()
            ),
        ]),
        Stdio::piped(),
    );
    let mut input = child.stdin.take().unwrap();
    let (lines, _reader) = lines_of(child.stdout.take().unwrap());
    let (errors, _err_reader) = lines_of(child.stderr.take().unwrap());
    let mut n = 0;
    // Two jobs at once, and the workers they ran on.
    let mut pair = |input: &mut std::process::ChildStdin| {
        let mut pids = two_jobs(input, &lines, &mut n);
        pids.sort();
        pids
    };
    let one = pair(&mut input);
    assert_eq!(one[0], one[1], "one worker, one job at a time: {one:?}");
    // A second worker: soon, two jobs at once on two workers.
    std::fs::write(&slf, "2/:\n").unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    let two = loop {
        let p = pair(&mut input);
        if p[0] != p[1] {
            break p;
        }
        assert!(Instant::now() < until, "the added worker got no job");
    };
    // Back to one: the running jobs finish, once each, and the retired
    // worker ends.
    writeln!(input, "long0\nlong1").unwrap();
    input.flush().unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    while !(d.join("long0.ran").exists() && d.join("long1.ran").exists()) {
        assert!(Instant::now() < until, "the long jobs did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(&slf, "1/:\n").unwrap();
    let mut longs: Vec<String> = (0..2)
        .map(|_| {
            lines
                .recv_timeout(Duration::from_secs(20))
                .expect("a long job's line")
        })
        .collect();
    longs.sort();
    assert!(
        longs[0].starts_with("long0 ") && longs[1].starts_with("long1 "),
        "{longs:?}"
    );
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let p = pair(&mut input);
        if p[0] == p[1] {
            break;
        }
        assert!(Instant::now() < until, "the removed worker still got jobs");
    }
    for long in ["long0.ran", "long1.ran"] {
        let runs = std::fs::read_to_string(d.join(long)).unwrap();
        assert_eq!(runs.lines().count(), 1, "{long} ran once");
    }
    let until = Instant::now() + Duration::from_secs(10);
    while two
        .iter()
        .all(|pid| Path::new(&format!("/proc/{pid}")).exists())
    {
        assert!(Instant::now() < until, "neither of {two:?} ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A file emptied names no host: the workers stay (not this
    // machine's default ones), and say so.
    std::fs::write(&slf, "# none\n").unwrap();
    let said = errors
        .recv_timeout(Duration::from_secs(20))
        .expect("a word on the emptied file");
    assert!(said.contains("names no host: the workers stay"), "{said}");
    let p = pair(&mut input);
    assert_eq!(p[0], p[1], "{p:?}");
    drop(input);
    let status = remex_tests::finished(child).status;
    assert!(status.success());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn hosts_added_to_and_removed_from_the_sshloginfile_on_the_testbed() {
    // The same over ssh, on the testbed's hosts: a host added gets jobs,
    // a host removed gets none after, and its worker ends while the run
    // goes on.
    use remex_tests::testbed;
    use std::os::unix::fs::PermissionsExt;
    if !testbed::available() {
        return;
    }
    let hosts = testbed::take(&["rx1", "rx2"]);
    let d = scratch("slf-testbed");
    // remex runs `ssh`: this one reads the testbed's configuration.
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let ssh = bin.join("ssh");
    std::fs::write(
        &ssh,
        format!(
            "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
            testbed::SSH_CONFIG
        ),
    )
    .unwrap();
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let slf = d.join("logins");
    std::fs::write(&slf, "rx1\n").unwrap();
    let mut child = spawned(
        remex().env("PATH", path).args([
            "run",
            "--no-bar",
            "--slf",
            slf.to_str().unwrap(),
            "sleep 0.3; echo {} $(hostname)",
        ]),
        Stdio::piped(),
    );
    let mut input = child.stdin.take().unwrap();
    let (lines, _reader) = lines_of(child.stdout.take().unwrap());
    let mut n = 0;
    // Two jobs at once; the hosts they ran on.
    let mut pair = |input: &mut std::process::ChildStdin| two_jobs(input, &lines, &mut n);
    assert_eq!(pair(&mut input), ["rx1", "rx1"]);
    std::fs::write(&slf, "rx1\nrx2\n").unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while !pair(&mut input).contains(&"rx2".to_string()) {
        assert!(Instant::now() < until, "rx2 got no job");
    }
    std::fs::write(&slf, "rx2\n").unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while pair(&mut input).contains(&"rx1".to_string()) {
        assert!(Instant::now() < until, "rx1 still gets jobs");
    }
    for _ in 0..3 {
        assert_eq!(pair(&mut input), ["rx2", "rx2"]);
    }
    // rx1's worker (and ssh session) ended while the run goes on: its
    // sshd session may outlive it by the shared connection's 10 s.
    testbed::assert_host_clean("rx1", Duration::from_secs(20));
    drop(input);
    assert!(remex_tests::finished(child).status.success());
    hosts.assert_clean(Duration::from_secs(20));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_worker_removed_from_the_sshloginfile_finishes_its_line_buffered_jobs() {
    // With --line-buffer a job runs on its slot's worker directly, not
    // through the pool that Group::retire drains: the removed worker was
    // ended under its running job.
    let d = scratch("slf-line-buffer");
    let slf = d.join("logins");
    std::fs::write(&slf, "2/:\n").unwrap();
    let mut child = spawned(
        remex().args([
            "run",
            "--no-bar",
            "--line-buffer",
            "-j1",
            "--slf",
            slf.to_str().unwrap(),
            &format!(
                "echo >> {}/{{}}.ran; sleep 2.5; echo {{}} done",
                d.display()
            ),
        ]),
        Stdio::piped(),
    );
    let mut input = child.stdin.take().unwrap();
    writeln!(input, "a\nb").unwrap();
    input.flush().unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    while !(d.join("a.ran").exists() && d.join("b.ran").exists()) {
        assert!(Instant::now() < until, "the jobs did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(&slf, "1/:\n").unwrap();
    drop(input);
    let o = remex_tests::finished(child);
    assert!(o.status.success(), "{}", err(&o));
    let mut done: Vec<String> = out(&o).lines().map(String::from).collect();
    done.sort();
    assert_eq!(done, ["a done", "b done"]);
    for job in ["a.ran", "b.ran"] {
        let runs = std::fs::read_to_string(d.join(job)).unwrap();
        assert_eq!(runs.lines().count(), 1, "{job} ran once");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn onall_and_nonall_run_once_per_computer_as_in_gnu_parallel() {
    // GNU parallel runs --onall/--nonall once per sshlogin, however many
    // job slots it has (`2/:`) or however often it is named (`:,:`),
    // and tags with the login (`:` for this machine). remex ran them once
    // per worker, tagged `local#1`, `local#2`.
    let cases: &[(&[&str], &str)] = &[
        (&["--nonall", "--tag", "echo", "x"], ":\tx\n"),
        (&["-S", ":,2/:", "--nonall", "--tag", "echo", "x"], ":\tx\n"),
        (
            &["-S", "3/:", "--onall", "--tag", "echo", ":::", "a", "b"],
            ":\ta\n:\tb\n",
        ),
        (&["-j", "4", "--onall", "echo", ":::", "a", "b"], "a\nb\n"),
    ];
    for (args, want) in cases {
        let o = run(&[&["run"], *args].concat());
        assert!(o.status.success(), "{}: {}", o.what, o.stderr);
        assert_eq!(o.stdout, *want, "{}", o.what);
        if let Some(mut p) = gnu_parallel() {
            let (ok, got, e) = with_stdin(
                {
                    p.args(*args);
                    p
                },
                None,
            );
            assert!(ok, "parallel {args:?}: {e}");
            assert_eq!(got, *want, "GNU parallel {args:?}");
        }
    }
    // Workers of their own (`id=`) are computers of their own.
    let o = run(&[
        "run",
        "--tx",
        "2*popen",
        "--tx",
        "popen//id=w",
        "--nonall",
        "--tag",
        "echo",
        "y",
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    let mut lines: Vec<&str> = o.stdout.lines().collect();
    lines.sort();
    assert_eq!(lines, [":\ty", "w\ty"], "{}", o.what);
}

#[test]
fn v_prints_the_command_in_the_output_and_t_on_stderr_as_in_gnu_parallel() {
    // GNU parallel's -v writes each job's command line into the job's
    // stdout, as its first line (tagged, counted in Receive, kept in
    // --results); --verbose and -t write it on stderr as the job starts.
    // remex took all three for one option printing on stderr.
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["-k", "-v", "--tag", "echo", ":::", "a", "b"],
            "a\techo a\na\ta\nb\techo b\nb\tb\n",
            "",
        ),
        (
            &[
                "-k",
                "-v",
                "--line-buffer",
                "--tag",
                "echo",
                ":::",
                "a",
                "b",
            ],
            "a\techo a\na\ta\nb\techo b\nb\tb\n",
            "",
        ),
        (&["-v", "-u", "echo", ":::", "a"], "echo a\na\n", ""),
        (
            &["-k", "-t", "echo", ":::", "a", "b"],
            "a\nb\n",
            "echo a\necho b\n",
        ),
        (&["-k", "--verbose", "echo", ":::", "a"], "a\n", "echo a\n"),
        (&["--silent", "-v", "echo", ":::", "a"], "a\n", ""),
        (&["--silent", "-t", "echo", ":::", "a"], "a\n", "echo a\n"),
        (
            &["-t", "--dryrun", "echo", ":::", "a"],
            "echo a\n",
            "echo a\n",
        ),
        (
            &[
                "-k", "-v", "--tag", "--onall", "-S", "2/:", "echo", ":::", "a",
            ],
            ":\techo a\n:\ta\n",
            "",
        ),
    ];
    for (args, stdout, stderr) in cases {
        let mut c = remex();
        c.args(["run", "--no-bar"]).args(*args);
        let o = ran(&mut c);
        assert!(o.status.success(), "{}: {}", o.what, o.stderr);
        assert_eq!(
            (o.stdout.as_str(), o.stderr.as_str()),
            (*stdout, *stderr),
            "{}",
            o.what
        );
        if let Some(mut p) = gnu_parallel() {
            let o = ran(p.args(*args));
            assert_eq!(
                (o.stdout.as_str(), o.stderr.as_str()),
                (*stdout, *stderr),
                "{}",
                o.what
            );
        }
    }
    // In the job log's Receive and in --results' stdout file.
    let dir = scratch("v-results");
    let o = run(&[
        "run",
        "--no-bar",
        "-v",
        "--joblog",
        "-",
        "--results",
        dir.to_str().unwrap(),
        "echo",
        ":::",
        "ab",
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    let log = o.stdout.lines().nth(1).unwrap_or_default().to_string();
    assert_eq!(log.split('\t').nth(5), Some("11"), "{log:?}");
    let file = std::fs::read_to_string(dir.join("1/ab/stdout")).unwrap();
    assert_eq!(file, "echo ab\nab\n");
}

#[test]
fn directories_travel_with_jobs_and_are_cleaned_up_there_as_with_rsync() {
    // GNU parallel moves files with rsync -r: a directory given to
    // --transferfile, --return or --basefile travels whole. remex sent
    // one file per name and failed on a directory ("Is a directory");
    // --cleanup left the emptied directories behind.
    let sshd = remex_tests::Sshd::start_for_new_user("127.0.0.7");
    let spec = sshd.spec("");
    let d = scratch("transfer-dirs");
    for (name, text) in [("data/a", "A\n"), ("data/sub/b", "B\n"), ("base/x", "X\n")] {
        let path = d.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let mut c = remex();
    c.current_dir(&d).args([
        "run",
        "--tx",
        &spec,
        "--no-bar",
        "--workdir",
        "jobs",
        "--basefile",
        "base",
        "--transferfile",
        "{}",
        "--return",
        "{}.out",
        "--cleanup",
        "--",
        "mkdir -p {}.out/s && cat {}/a {}/sub/b base/x > {}.out/s/all && echo {}.out/top > {}.out/top",
        ":::",
        "data",
    ]);
    let o = ran(&mut c);
    assert!(o.status.success(), "{}\n{}", o.stderr, sshd.log());
    let back = |p: &str| std::fs::read_to_string(d.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(back("data.out/s/all"), "A\nB\nX\n");
    assert_eq!(back("data.out/top"), "data.out/top\n");
    let there = sshd.home().join("jobs");
    let left: Vec<_> = std::fs::read_dir(&there)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left on the host in {there:?}: {left:?}");
}

#[test]
fn an_sshlogin_without_a_count_runs_a_job_per_cpu_of_its_host_as_in_gnu_parallel() {
    // GNU parallel's -j is 100% of each sshlogin's CPUs (its host's,
    // asked over ssh); remex ran one job at a time on `-S host` (and
    // `-S :`), so a 32-core host did the work of one core.
    let cpus = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let d = scratch("slots-per-cpu");
    // Each job waits (at most 5 s) until `cpus` jobs have started, then
    // says how many had: all at once, each says `cpus`.
    let job = format!(
        "touch {dir}/{{}}; for i in $(seq 100); do [ $(ls {dir} | wc -l) -ge {cpus} ] && break; sleep 0.05; done; ls {dir} | wc -l",
        dir = d.display()
    );
    let inputs: Vec<String> = (1..=cpus).map(|i| i.to_string()).collect();
    let mut args = vec!["run", "--no-bar", "-S", ":", &job, ":::"];
    args.extend(inputs.iter().map(String::as_str));
    let o = run(&args);
    assert!(o.status.success(), "{}", o.stderr);
    let seen: Vec<&str> = o.stdout.lines().map(str::trim).collect();
    assert_eq!(seen, vec![cpus.to_string(); cpus], "{}", o.what);
    // The job log names the login as GNU parallel does (`:`), however
    // many workers it has.
    let o = run(&[
        "run", "--no-bar", "-S", "2/:", "--joblog", "-", "-k", "echo", ":::", "a", "b",
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    let hosts: Vec<&str> = o
        .stdout
        .lines()
        .filter_map(|l| l.split('\t').nth(1))
        .collect();
    assert_eq!(hosts, ["Host", ":", ":"], "{}", o.stdout);
}

#[test]
fn pipe_gives_each_job_a_block_of_stdin_on_a_worker_anywhere() {
    // GNU parallel's --pipe (refused by remex before): stdin cut into
    // blocks of whole records, each one job's stdin; bytes that are not
    // text pass unchanged; the job log's Send counts them; over ssh too.
    let d = scratch("pipe");
    let data: Vec<u8> = (0..200_000u32)
        .flat_map(|i| {
            let mut l = (i.wrapping_mul(2_654_435_761) % 251).to_le_bytes().to_vec();
            l.extend(format!(" {i}\n").bytes());
            l
        })
        .collect();
    let file = d.join("data");
    std::fs::write(&file, &data).unwrap();
    let sshd = remex_tests::Sshd::start_for_new_user("127.0.0.6");
    for tx in ["popen".to_string(), sshd.spec("")] {
        let mut c = remex();
        c.args([
            "run", "--no-bar", "--tx", &tx, "-k", "--pipe", "--block", "64k", "--joblog",
        ])
        .arg(d.join("log"))
        .arg("cat")
        .stdin(std::fs::File::open(&file).unwrap());
        let o = c.output().unwrap();
        assert!(o.status.success(), "{tx}: {}", err(&o));
        assert!(
            o.stdout == data,
            "{tx}: the blocks put together are not the input"
        );
        let log = std::fs::read_to_string(d.join("log")).unwrap();
        let sent: Vec<u64> = log
            .lines()
            .skip(1)
            .map(|l| l.split('\t').nth(4).unwrap().parse().unwrap())
            .collect();
        assert_eq!(sent.iter().sum::<u64>(), data.len() as u64, "{tx}: {log}");
        assert!(
            sent.len() >= 20 && sent.iter().all(|s| *s <= 64 * 1024),
            "{tx}: {sent:?}"
        );
    }
    // What would give jobs arguments is refused, naming it.
    let o = run(&["run", "--pipe", "echo", ":::", "a"]);
    assert_eq!(o.status.code(), Some(255), "{}", o.stderr);
    assert!(o.stderr.contains("not ::: inputs"), "{}", o.stderr);
    // --csv cuts at CSV records: what would cut elsewhere (GNU parallel
    // drops it, or cuts inside quotes) is refused, naming it.
    let file = d.join("records.csv");
    std::fs::write(&file, "a,\"b\nc\"\n").unwrap();
    let file = file.to_str().unwrap();
    for (extra, named) in [
        (&["--pipe", "-L", "1"][..], "-L or --max-lines"),
        (&["--pipe", "--recend", ";"], "--recend"),
        (&["--pipepart", "-a", file], "--pipepart"),
    ] {
        let o = run(&[&["run", "--csv"][..], extra, &["cat"]].concat());
        assert_eq!(o.status.code(), Some(255), "{extra:?}: {}", o.stderr);
        assert!(
            o.stderr
                .contains("--csv with --pipe passes whole CSV records")
                && o.stderr.contains(named),
            "{extra:?}: {}",
            o.stderr
        );
    }
}

#[test]
fn pipepart_cuts_a_file_where_gnu_parallel_does_for_workers_anywhere() {
    // GNU parallel's --pipepart (refused before): a file cut into parts
    // at record boundaries found by seeking, each one job's stdin.
    let d = scratch("pipepart");
    let hundred = d.join("hundred");
    let text: String = (1..=100).map(|i| format!("{i}\n")).collect();
    std::fs::write(&hundred, text).unwrap();
    // What GNU parallel 20221122 prints for the same lines (`seq 100`).
    let cases: &[(&[&str], &str)] = &[
        (
            &["-j2", "--pipepart", "wc", "-l"],
            "8 6 6 6 6 6 6 6 6 6 6 6 6 6 6 6 2",
        ),
        (&["-j2", "--pipepart", "--block", "-1", "wc", "-l"], "53 47"),
        (
            &["-j3", "--pipepart", "--block", "-1", "wc", "-l"],
            "36 33 31",
        ),
        (
            &["--pipepart", "--block", "50", "wc", "-c"],
            "51 51 51 51 51 37",
        ),
        (
            &["--pipepart", "--header", "1", "--block", "50", "head -2"],
            "1 2 1 22 1 39 1 56 1 73 1 90",
        ),
        (
            &["--pipepart", "--recstart", "1", "--block", "50", "head -1"],
            "1 1 1 1 1 100",
        ),
        (
            &["--pipepart", "--recend", "0\\n", "--block", "9", "wc -l"],
            "10 10 10 10 10 10 10 10 10 10",
        ),
        // With --regexp, GNU parallel's match is greedy: the last record
        // end in the 128 KiB read after each block.
        (
            &[
                "--pipepart",
                "--regexp",
                "--recend",
                "0\\n",
                "--block",
                "9",
                "wc -l",
            ],
            "100",
        ),
    ];
    for (args, want) in cases {
        let o = ran(remex()
            .args(["run", "--no-bar", "-k", "-a"])
            .arg(&hundred)
            .args(*args));
        assert!(o.status.success(), "{args:?}: {}", o.stderr);
        let got: Vec<&str> = o.stdout.split_whitespace().collect();
        assert_eq!(got.join(" "), *want, "{args:?}");
    }
    // Bytes that are not text, over ssh too: the parts put together are
    // the file, each at most about its block past a record's end.
    let data: Vec<u8> = (0..300_000u32)
        .flat_map(|i| {
            let mut l = (i.wrapping_mul(2_654_435_761) % 251).to_le_bytes().to_vec();
            l.extend(format!(" {i}\n").bytes());
            l
        })
        .collect();
    let file = d.join("data");
    std::fs::write(&file, &data).unwrap();
    let sshd = remex_tests::Sshd::start_for_new_user("127.0.0.6");
    for tx in ["popen".to_string(), sshd.spec("")] {
        let o = remex_tests::output_of(
            remex()
                .args([
                    "run",
                    "--no-bar",
                    "--tx",
                    &tx,
                    "-k",
                    "--pipepart",
                    "--block",
                    "100k",
                    "-a",
                ])
                .arg(&file)
                .arg("--joblog")
                .arg(d.join("log"))
                .arg("cat"),
        );
        assert!(o.status.success(), "{tx}: {}", err(&o));
        assert!(o.stdout == data, "{tx}: the parts are not the file");
        let log = std::fs::read_to_string(d.join("log")).unwrap();
        let sent: Vec<u64> = log
            .lines()
            .skip(1)
            .map(|l| l.split('\t').nth(4).unwrap().parse().unwrap())
            .collect();
        assert_eq!(sent.iter().sum::<u64>(), data.len() as u64, "{tx}: {log}");
        assert!(
            sent.len() >= 30 && sent.iter().all(|s| *s <= 100 * 1024 + 16),
            "{tx}: {sent:?}"
        );
    }
    // Stdin cannot be cut by seeking; -N, -L are GNU parallel's errors.
    for (args, says) in [
        (&["--pipepart", "wc"][..], "give it with -a FILE"),
        (&["--pipepart", "-a", "-", "wc"][..], "give it with -a FILE"),
        (
            &["--pipepart", "-N", "2", "-a", "x", "wc"][..],
            "incompatible",
        ),
    ] {
        let o = run(&[&["run", "--no-bar"][..], args].concat());
        assert_eq!(o.status.code(), Some(255), "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains(says), "{args:?}: {}", o.stderr);
    }
}

#[test]
fn roundrobin_feeds_each_slots_job_its_blocks_in_turn_on_any_worker() {
    // GNU parallel's --roundrobin (refused before): a job per slot, fed
    // --pipe's blocks on its stdin as they come, in turn.
    let d = scratch("roundrobin");
    let text: String = (1..=200_000).map(|i| format!("{i}\n")).collect();
    let with_stdin = |c: &mut Command, input: &str| {
        let mut child = spawned(c, Stdio::piped());
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_string();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let o = remex_tests::finished(child);
        feeder.join().unwrap();
        o
    };
    let sshd = remex_tests::Sshd::start_for_new_user("127.0.0.6");
    for tx in ["popen".to_string(), sshd.spec("")] {
        let log = d.join("log");
        let o = with_stdin(
            remex()
                .args(["run", "--no-bar", "--tx", &tx, "-j3", "-k", "--pipe"])
                .args(["--roundrobin", "--block", "10k", "--joblog"])
                .arg(&log)
                .arg("echo job {#} {%}; cat"),
            &text,
        );
        assert!(o.status.success(), "{tx}: {}", err(&o));
        let out = out(&o);
        // Three jobs, one a slot, each printing its blocks after its
        // name (-k: in job order).
        let heads: Vec<&str> = out.lines().filter(|l| l.starts_with("job")).collect();
        assert_eq!(heads, ["job 1 1", "job 2 2", "job 3 3"], "{tx}");
        let mut lines: Vec<u64> = out
            .lines()
            .filter(|l| !l.starts_with("job"))
            .map(|l| l.parse().unwrap())
            .collect();
        lines.sort_unstable();
        assert!(
            lines == (1..=200_000).collect::<Vec<u64>>(),
            "{tx}: the jobs' blocks are not the input"
        );
        // The job log counts what each job was fed.
        let log = std::fs::read_to_string(&log).unwrap();
        let sent: u64 = log
            .lines()
            .skip(1)
            .map(|l| l.split('\t').nth(4).unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(sent, text.len() as u64, "{tx}: {log}");
    }
    // In turns: GNU parallel 20221122's `seq 1000000 | parallel --pipe
    // -j4 --roundrobin wc -l`, sorted (blocks 1+5, 2+6, 3+7, 4).
    let million: String = (1..=1_000_000).map(|i| format!("{i}\n")).collect();
    let o = with_stdin(
        remex().args([
            "run",
            "--no-bar",
            "-j4",
            "--pipe",
            "--roundrobin",
            "wc",
            "-l",
        ]),
        &million,
    );
    let mut counts: Vec<String> = out(&o).lines().map(|l| l.trim().to_string()).collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        ["149796", "235148", "299592", "315464"],
        "{}",
        err(&o)
    );
    // One block, one job; no input, no job.
    let o = with_stdin(
        remex().args([
            "run",
            "--no-bar",
            "-j4",
            "--pipe",
            "--roundrobin",
            "wc",
            "-l",
        ]),
        "a\nb\n",
    );
    assert_eq!(out(&o), "2\n", "{}", err(&o));
    let o = with_stdin(
        remex().args([
            "run",
            "--no-bar",
            "-j4",
            "--pipe",
            "--roundrobin",
            "wc",
            "-l",
        ]),
        "",
    );
    assert!(o.status.success() && out(&o).is_empty(), "{}", err(&o));
    // A job that ends before its input does leaves its slot to a new job
    // for the next block: the run ends.
    let t0 = Instant::now();
    let o = with_stdin(
        remex().args([
            "run",
            "--no-bar",
            "-j2",
            "--pipe",
            "--roundrobin",
            "--block",
            "1k",
            "head -c 2; echo",
        ]),
        &text[..20_000],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).lines().count() > 2, "{}", out(&o));
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
    // --shard: the same value of the column, the same job; every line
    // once; a job a slot.
    let keyed: String = (0..3_000).map(|i| format!("{},{i}\n", i % 10)).collect();
    let o = with_stdin(
        remex().args([
            "run",
            "--no-bar",
            "-j3",
            "-k",
            "--pipe",
            "--shard",
            "1",
            "--block",
            "4k",
            "echo job; cat",
        ]),
        &keyed,
    );
    assert!(o.status.success(), "{}", err(&o));
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    let (mut job, mut lines) = (0, 0);
    for l in out(&o).lines() {
        if l == "job" {
            job += 1;
            continue;
        }
        lines += 1;
        let key = l.split(',').next().unwrap().to_string();
        assert_eq!(*seen.entry(key).or_insert(job), job, "{l}: in two jobs");
    }
    assert_eq!((job, lines), (3, 3_000), "{}", out(&o));
    // By a column's name: the first line names it and reaches no job; a
    // name it lacks is an error that names it, and no job runs.
    let named = format!("id,n\n{keyed}");
    let o = with_stdin(
        remex()
            .args(["run", "--no-bar", "-j3", "--pipe", "--shard", "id"])
            .args(["--block", "4k", "sort -u -t, -k1,1 | cut -d, -f1"]),
        &named,
    );
    assert!(o.status.success(), "{}", err(&o));
    let mut keys: Vec<String> = out(&o).lines().map(String::from).collect();
    keys.sort();
    let want: Vec<String> = (0..10).map(|k| k.to_string()).collect();
    assert_eq!(keys, want, "each key in one job, the header in none");
    let o = with_stdin(
        remex().args(["run", "--no-bar", "--pipe", "--bin", "nr", "echo ran"]),
        &named,
    );
    assert_eq!(o.status.code(), Some(255), "{}", err(&o));
    assert!(
        err(&o).contains("--bin nr: no column of that name in the first line \"id,n\""),
        "{}",
        err(&o)
    );
    assert_eq!(out(&o), "");
    // With a column number, --header's line is one record, however many
    // blocks there are (it went before every block).
    let o = with_stdin(
        remex()
            .args(["run", "--no-bar", "-j2", "--pipe", "--header", ":"])
            .args(["--block", "4k", "--bin", "1", "cat"]),
        &named,
    );
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    assert_eq!(text.lines().filter(|l| *l == "id,n").count(), 1, "{text}");
    assert_eq!(text.lines().count(), 3_001);
    // A job fed as it runs cannot run again.
    let o = run(&["run", "--pipe", "--roundrobin", "--retries", "2", "cat"]);
    assert_eq!(o.status.code(), Some(255), "{}", o.stderr);
    assert!(
        o.stderr
            .contains("--roundrobin, --shard and --bin cannot be combined"),
        "{}",
        o.stderr
    );
}

#[test]
fn tee_gives_every_job_all_of_stdin_up_to_its_bound() {
    // GNU parallel's --tee (refused before), on local and ssh workers.
    let sshd = remex_tests::Sshd::start_for_new_user("127.0.0.6");
    let data: String = (0..50_000).map(|i| format!("{i}\n")).collect();
    for tx in ["popen".to_string(), sshd.spec("")] {
        let mut c = remex();
        c.args(["run", "--no-bar", "--tx", &tx, "-k", "--tee", "--pipe"])
            .args(["grep -c {}", ":::", "7", "77", "777"]);
        let mut child = spawned(&mut c, Stdio::piped());
        child
            .stdin
            .take()
            .unwrap()
            .write_all(data.as_bytes())
            .unwrap();
        let o = remex_tests::finished(child);
        assert!(o.status.success(), "{tx}: {}", err(&o));
        let want: Vec<String> = ["7", "77", "777"]
            .iter()
            .map(|n| data.lines().filter(|l| l.contains(n)).count().to_string())
            .collect();
        assert_eq!(out(&o).lines().collect::<Vec<_>>(), want, "{tx}");
    }
    // Stdin past the bound (each job would get it whole): refused, named.
    let mut c = remex();
    c.args(["run", "--no-bar", "--tee", "--pipe", "wc -c", ":::", "a"]);
    let mut child = spawned(&mut c, Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..300 {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let o = remex_tests::finished(child);
    feeder.join().unwrap();
    assert_eq!(o.status.code(), Some(255), "{}", err(&o));
    assert!(
        err(&o).contains("--tee: stdin is longer than"),
        "{}",
        err(&o)
    );
    assert_eq!(out(&o), "");
}

#[test]
fn cat_and_fifo_give_each_job_its_block_in_a_file_gone_after_it() {
    // GNU parallel's --cat and --fifo (refused before): {} names a file
    // on the job's host holding its block (a named pipe with --fifo),
    // removed after the job, also when the job is killed.
    let d = scratch("blockfile");
    let tmp = d.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let ten: String = (1..=10).map(|i| format!("{i}\n")).collect();
    let with_stdin = |c: &mut Command, input: &str| {
        let mut child = spawned(c, Stdio::piped());
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        remex_tests::finished(child)
    };
    let sshd = remex_tests::Sshd::start_for_new_user("127.0.0.6");
    for tx in ["popen".to_string(), sshd.spec("")] {
        for mode in ["--cat", "--fifo"] {
            let what = format!("{tx} {mode}");
            let o = with_stdin(
                remex()
                    .env("TMPDIR", &tmp)
                    .args(["run", "--no-bar", "--tx", &tx, "-k", mode, "-N", "4"])
                    .arg("echo {}; wc -l < {}; test -f {} || test -p {}"),
                &ten,
            );
            assert!(o.status.success(), "{what}: {}", err(&o));
            let text = out(&o);
            let lines: Vec<&str> = text.lines().collect();
            let counts: Vec<&str> = lines.iter().skip(1).step_by(2).copied().collect();
            assert_eq!(counts, ["4", "4", "2"], "{what}: {text}");
            let files: Vec<&str> = lines.iter().step_by(2).copied().collect();
            assert_eq!(files.len(), 3, "{what}: {text}");
            for f in &files {
                // Made where the worker's TMPDIR says (the ssh worker's
                // is its own: /tmp), and gone after the job.
                let dir = match tx.as_str() {
                    "popen" => tmp.clone(),
                    _ => PathBuf::from("/tmp"),
                };
                assert!(Path::new(f).starts_with(&dir), "{what}: {f}");
                assert!(!Path::new(f).exists(), "{what}: {f} is left");
            }
            let mut distinct = files.clone();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "{what}: {text}");
        }
    }
    // A command that never opens its named pipe does not hold its job
    // (GNU parallel's waits for a reader for ever).
    let t0 = Instant::now();
    let o = with_stdin(
        remex()
            .env("TMPDIR", &tmp)
            .args(["run", "--no-bar", "--fifo", "--timeout", "20", "echo"]),
        "x\ny\n",
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    // A job killed by --timeout leaves no file, and its stderr has no
    // word of the lines around the command ("Terminated").
    for mode in ["--cat", "--fifo"] {
        let o = with_stdin(
            remex().env("TMPDIR", &tmp).args([
                "run",
                "--no-bar",
                mode,
                "--timeout",
                "1",
                "echo {}; echo to-stderr >&2; sleep 30 < {}",
            ]),
            "x\n",
        );
        assert_eq!(o.status.code(), Some(1), "{mode}: {}", err(&o));
        let e = err(&o);
        assert!(
            e.contains("to-stderr") && !e.contains("Terminated"),
            "{mode}: {e}"
        );
    }
    // (remex keeps its ssh sockets and uploads there too.)
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("par"))
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    // The jobs' shell runs the command: bash with a function --env
    // sends (the shell named or given by its path), csh (whose syntax
    // the lines around it are not in).
    for bash in ["bash", "/bin/bash"] {
        let o = with_stdin(
            remex()
                .env("PARALLEL_SHELL", bash)
                .env("BASH_FUNC_lines%%", "() {  wc -l < \"$1\"; }")
                .args(["run", "--no-bar", "--env", "lines", "--cat", "lines {}"]),
            "a\nb\n",
        );
        assert_eq!(out(&o), "2\n", "{bash}: {}", err(&o));
    }
    let o = with_stdin(
        remex().env("PARALLEL_SHELL", "csh").args([
            "run",
            "--no-bar",
            "--fifo",
            "set n = `wc -l < {}`; echo $n; exit 3",
        ]),
        "a\nb\n",
    );
    assert_eq!(
        (o.status.code(), out(&o).as_str()),
        (Some(1), "2\n"),
        "{}",
        err(&o)
    );
}

#[test]
fn group_by_gives_each_group_whole_to_one_job_and_names_what_it_refuses() {
    // GNU parallel's --group-by (refused before): consecutive lines with
    // the same value in a column are one record, so no group is split
    // between jobs, even when a group is longer than --block.
    let data: String = (0..30_000)
        .map(|n| format!("k{}\t{n}\n", n / 1000))
        .collect();
    let sshd = remex_tests::Sshd::start_for_new_user("127.0.0.6");
    for tx in ["2*popen".to_string(), format!("2*{}", sshd.spec(""))] {
        for block in ["2k", "20k"] {
            let what = format!("{tx} --block {block}");
            let mut c = remex();
            c.args(["run", "--no-bar", "--tx", &tx, "-k", "--pipe"])
                .args(["--group-by", "1", "--block", block])
                .arg("echo J; cut -f1 | uniq -c");
            let mut child = spawned(&mut c, Stdio::piped());
            let mut stdin = child.stdin.take().unwrap();
            let feed = data.clone();
            let feeder = std::thread::spawn(move || stdin.write_all(feed.as_bytes()));
            let o = remex_tests::finished(child);
            feeder.join().unwrap().unwrap();
            assert!(o.status.success(), "{what}: {}", err(&o));
            let text = out(&o);
            let jobs: Vec<Vec<(usize, String)>> = text
                .split("J\n")
                .skip(1)
                .map(|job| {
                    job.lines()
                        .map(|l| {
                            let (n, k) = l.trim().split_once(' ').unwrap();
                            (n.parse().unwrap(), k.to_string())
                        })
                        .collect()
                })
                .collect();
            // Every group once, whole (1,000 lines), in order.
            let groups: Vec<&(usize, String)> = jobs.iter().flatten().collect();
            assert_eq!(groups.len(), 30, "{what}: {text}");
            for (i, (n, k)) in groups.iter().enumerate() {
                assert_eq!((*n, k.as_str()), (1000, format!("k{i}").as_str()), "{what}");
            }
            // A group longer than the block is a job's alone; a block
            // holds as many whole groups as fit.
            match block {
                "2k" => assert_eq!(jobs.len(), 30, "{what}: {text}"),
                _ => assert!(jobs.len() < 30 && jobs.len() >= 10, "{what}: {text}"),
            }
        }
    }
    // What it cannot do is refused, naming what was given.
    let with_stdin = |args: &[&str]| {
        let mut child = spawned(remex().args(args), Stdio::piped());
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"a,b\n1,2\n").unwrap();
        drop(stdin);
        remex_tests::finished(child)
    };
    for (args, says) in [
        (
            &["run", "--group-by", "1", "echo", ":::", "a"][..],
            "give --pipe",
        ),
        (
            &["run", "--pipe", "--group-by", "s/x//", "cat"],
            "--group-by \"s/x//\": give a column number",
        ),
        (
            &["run", "--pipe", "--colsep", ",", "--group-by", "c", "cat"],
            "--group-by c: no column of that name in the first line \"a,b\"",
        ),
    ] {
        let o = with_stdin(args);
        assert_eq!(o.status.code(), Some(255), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(says), "{args:?}: {}", err(&o));
        assert_eq!(out(&o), "", "{args:?}");
    }
}

#[test]
fn block_timeout_gives_a_job_the_whole_records_read_so_far() {
    // GNU parallel's --block-timeout (refused before): input that
    // trickles in reaches a job once the block has waited that long,
    // as whole records; the rest waits for the next block.
    let mut c = remex();
    c.args(["run", "--no-bar", "--pipe", "--block-timeout", "1", "-k"])
        .arg("echo J; cat");
    let mut child = spawned(&mut c, Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"a\nb\nc").unwrap();
    stdin.flush().unwrap();
    let (lines, reader) = lines_of(child.stdout.take().unwrap());
    // While stdin is still open.
    let first: Vec<String> = (0..3)
        .map(|_| {
            lines
                .recv_timeout(Duration::from_secs(30))
                .expect("the first job's output while stdin is open")
        })
        .collect();
    assert_eq!(first, ["J", "a", "b"]);
    stdin.write_all(b"d\ne\n").unwrap();
    drop(stdin);
    let rest: Vec<String> = lines.iter().collect();
    assert_eq!(rest, ["J", "cd", "e"]);
    let o = remex_tests::finished(child);
    reader.join().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    // Under a second: a usage error that names it (GNU parallel's rule).
    let o = run(&["run", "--pipe", "--block-timeout", "500ms", "cat"]);
    assert_eq!(o.status.code(), Some(2), "{}", o.stderr);
    assert!(
        o.stderr.contains("--block-timeout must be at least 1"),
        "{}",
        o.stderr
    );
}

#[test]
fn an_sshlogins_ssh_command_keeps_its_port_user_and_config() {
    // GNU parallel's sshlogin `ssh -p 2222 server` (its man page's
    // example): remex dropped the ssh command with its options, so the
    // port was lost and ssh went to port 22.
    let sshd = remex_tests::Sshd::start_for_new_user("127.0.0.6");
    let spec = sshd.spec("");
    let config = spec.split("//ssh_config=").nth(1).unwrap();
    let login = format!(
        "ssh -p {} -F {config} -l {} {}",
        sshd.port, sshd.user, sshd.addr
    );
    let o = run(&[
        "run",
        "--no-bar",
        "-k",
        "-S",
        &login,
        "echo",
        "{}-$PARALLEL_SSHHOST",
        ":::",
        "a",
        "b",
    ]);
    assert!(o.status.success(), "{}\n{}", o.stderr, sshd.log());
    assert_eq!(o.stdout, format!("a-{0}\nb-{0}\n", sshd.addr));
    // Another option is refused, naming it, before any job runs.
    let o = run(&[
        "run",
        "--no-bar",
        "-S",
        "ssh -i key host",
        "echo",
        ":::",
        "a",
    ]);
    assert_eq!(o.status.code(), Some(255), "{}", o.stderr);
    assert!(o.stderr.contains("not \"-i\""), "{}", o.stderr);
    assert_eq!(o.stdout, "");
}

#[test]
fn onall_serves_j_computers_at_once() {
    // GNU parallel's --onall logs into -j computers at once; remex served
    // all of them at once. Three computers (specs that differ), -j1: no
    // two run a job at the same time (a directory claims the turn).
    let d = scratch("onall-j");
    let lock = d.join("lock");
    let job = format!(
        "mkdir {0} 2>/dev/null || echo OVERLAP; sleep 0.2; rmdir {0}; echo done",
        lock.display()
    );
    let o = run(&[
        "run",
        "--no-bar",
        "--onall",
        "-j1",
        "--tx",
        "popen",
        "--tx",
        "popen//id=w2",
        "--tx",
        "popen//id=w3",
        &job,
        ":::",
        "1",
        "2",
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    assert_eq!(o.stdout, "done 1\ndone 2\n".repeat(3), "{}", o.stderr);
}

#[test]
fn process_slot_var_is_each_jobs_slot_less_one() {
    // GNU parallel's --process-slot-var (refused before): a job's slot,
    // from 0, in the variable named; two running jobs never share it.
    let o = run(&[
        "run",
        "--no-bar",
        "-j2",
        "--process-slot-var",
        "SLOT",
        "echo $SLOT {%}; sleep 0.1",
        ":::",
        "a",
        "b",
        "c",
        "d",
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", o.stdout);
    for l in lines {
        let (var, slot) = l.split_once(' ').unwrap();
        let slot: u64 = slot.parse().unwrap();
        assert_eq!(var, (slot - 1).to_string(), "{l}");
        assert!((1..=2).contains(&slot), "{l}");
    }
}

#[test]
fn colorfailed_colours_the_lines_of_failed_jobs_white_on_red() {
    // GNU parallel 20221122 prints the same bytes (a failed job is not a
    // case of the comparison test, which wants both to succeed).
    let o = run(&[
        "run",
        "--tx",
        "popen",
        "--no-bar",
        "--cf",
        "-k",
        "echo {}; exit {}",
        ":::",
        "0",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", o.stderr);
    assert_eq!(o.stdout, "0\n\x1b[48;5;196;38;5;231m\x1b[K1\x1b[m\n");
}

/// `--pipe`'s cutting against GNU parallel's on made-up inputs: records
/// of random lengths (some empty, some longer than the block, the last
/// without its end) under each way of cutting, from a fixed seed. Where
/// GNU parallel is not installed there is nothing to compare with.
#[test]
fn pipe_cuts_random_records_as_gnu_parallel_does() {
    if gnu_parallel().is_none() {
        return;
    }
    let cuttings: &[&[&str]] = &[
        &["--block", "3"],
        &["--block", "1"],
        &["--block", "7"],
        &["-N", "2"],
        &["-N", "2", "--block", "3"],
        &["-L", "2"],
        &["-L", "3", "--block", "5"],
        &["--recstart", ">", "--block", "4"],
        &["--recstart", ">", "--recend", "\n", "--block", "5"],
        &["--recend", "x", "--block", "3"],
        &["--regexp", "--recend", "[xy]", "--block", "3"],
        &["--block", "6", "--header", "1"],
        &["--block", "4", "--rrs"],
        &["-N", "3", "--recstart", ">"],
    ];
    // A small LCG (Knuth's MMIX constants): the same inputs every run.
    let mut state: u64 = 0x5eed;
    let mut next = move |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % n
    };
    let mut differ = Vec::new();
    for round in 0..2 {
        for cutting in cuttings {
            let mut data = String::new();
            for _ in 0..1 + next(10) {
                let len = [0, 1, 2, 3, 5, 9, 15][next(7)];
                data.extend((0..len).map(|_| ['a', 'b', 'x', '>', 'y'][next(5)]));
                data.push('\n');
            }
            if next(5) == 0 {
                data.pop();
            }
            let args: Vec<&str> = [&["-k", "--pipe"][..], cutting, &["echo ==; cat"]].concat();
            let mut c = remex();
            c.args(["run", "--tx", "popen", "--no-bar"]).args(&args);
            let (ok, got, e) = with_stdin(c, Some(&data));
            let g = gnu_output(
                |p| {
                    p.args(&args);
                },
                Some(data.as_bytes()),
            )
            .expect("GNU parallel is here");
            if (ok, got.as_str()) != (g.status.success(), out(&g).as_str()) {
                differ.push(format!(
                    "round {round} {cutting:?} {data:?}:\n  remex {got:?} {e}\n  GNU   {:?}",
                    out(&g)
                ));
            }
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}
