//! What a new user meets first (issue 12): the program's own binary as
//! its worker, the guard against a worker that forgot to serve, and the
//! worker binary's command line.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

/// A fresh file for a test subject's pids.
fn pid_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("remex-first-hour-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join(name);
    let _ = std::fs::remove_file(&f);
    f
}

/// Runs the forgetful program in `role`; returns its stdout and the pids
/// of every process that ran it.
fn forgetful(role: &str) -> (String, Vec<u32>) {
    let pids = pid_file(role);
    let out = Command::new(env!("CARGO_BIN_EXE_remex-test-forgetful"))
        .arg(role)
        .env("REMEX_TEST_PIDS", &pids)
        .env_remove(remex::core::transport::popen::WORKER_ENV)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let pids = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), pids)
}

#[test]
fn a_worker_that_forgot_to_serve_starts_no_grandchild() {
    let (out, pids) = forgetful("gateway");
    assert!(out.starts_with("ERROR "), "{out}");
    assert!(
        out.contains("call remex::serve_if_worker(...) first thing in main"),
        "the error names the missing call: {out}"
    );
    // The program and the one worker it started; the worker started none.
    assert_eq!(pids.len(), 2, "processes that ran: {pids:?}");
}

#[test]
fn a_group_of_workers_that_forgot_to_serve_starts_no_grandchild() {
    let (out, pids) = forgetful("group");
    assert!(out.contains("remex::serve_if_worker"), "{out}");
    assert_eq!(pids.len(), 4, "the program and its 3 workers: {pids:?}");
}

#[test]
fn a_program_that_serves_is_its_own_default_worker() {
    // Even with a stock worker configured, the serving program's spec
    // without worker= starts the program itself.
    let out = Command::new(env!("CARGO_BIN_EXE_remex-test-selfserving"))
        .env(
            remex::core::transport::popen::WORKER_PATH_ENV,
            env!("CARGO_BIN_EXE_remex-test-worker"),
        )
        .env_remove(remex::core::transport::popen::WORKER_ENV)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    let mut words = out.split_whitespace();
    assert_eq!(words.next(), Some("RESULT"), "{out}");
    assert_eq!(words.next(), Some("self-serving"), "{out}");
    let ran_in: u32 = words.next().unwrap().parse().unwrap();
    let worker: u32 = words.next().unwrap().parse().unwrap();
    assert_eq!(ran_in, worker, "the task ran in the gateway's worker");
}

#[test]
fn a_worker_served_from_a_runtime_leaves_the_process_environment_alone() {
    // The worker runs beside the program's runtime: the spec's env: reaches
    // its commands, not the process (setenv beside other threads is
    // undefined behaviour), and the worker marker stays out of its
    // commands all the same.
    let out = remex_tests::ran(
        Command::new(env!("CARGO_BIN_EXE_remex-test-selfserving"))
            .arg("env")
            .env_remove(remex::core::transport::popen::WORKER_ENV)
            .env_remove("REMEX_PROBE"),
    )
    .ok();
    assert_eq!(
        out.stdout.trim(),
        "ENV unset 1 | set unset",
        "{}",
        out.stderr
    );
}

#[test]
fn a_worker_served_from_a_runtime_relays_to_itself() {
    // The relay sets the worker marker for the worker it starts, though
    // its own commands are kept from inheriting it.
    let out = remex_tests::ran(
        Command::new(env!("CARGO_BIN_EXE_remex-test-selfserving"))
            .arg("via")
            .env_remove(remex::core::transport::popen::WORKER_ENV),
    )
    .ok();
    assert!(
        out.stdout.starts_with("VIA self-serving "),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn no_worker_found_says_what_to_do_in_a_dependent_project() {
    // A program that does not serve, alone in a directory, with no
    // remex-worker on PATH or configured: a dependent project's binary.
    let dir = pid_file("alone").with_extension("d");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("lonely");
    // Copied by another process: a file this test process has open for
    // writing is inherited by any child another test forks meanwhile, and
    // exec then fails with ETXTBSY ("Text file busy", rust-lang/rust#114554).
    let copied = Command::new("cp")
        .arg(env!("CARGO_BIN_EXE_remex-test-forgetful"))
        .arg(&exe)
        .status()
        .unwrap();
    assert!(copied.success());
    let pids = dir.join("pids");
    let out = Command::new(&exe)
        .arg("plain")
        .env("REMEX_TEST_PIDS", &pids)
        .env("PATH", &dir)
        .env_remove(remex::core::transport::popen::WORKER_PATH_ENV)
        .env_remove(remex::core::transport::popen::WORKER_ENV)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.starts_with("ERROR "), "{out}");
    assert!(out.contains("no worker binary found"), "{out}");
    assert!(
        out.contains("remex::serve_if_worker(remex::worker::Worker::new)"),
        "{out}"
    );
    assert!(out.contains("cargo install"), "{out}");
    assert!(!out.contains("cargo build -p"), "{out}");
}

fn worker_cli(args: &[&str], stdin: Stdio) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_remex-test-worker"))
        .args(args)
        .env(remex::core::transport::popen::WORKER_ENV, "1")
        .stdin(stdin)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_worker_binary_explains_itself() {
    let (code, out, _) = worker_cli(&["--help"], Stdio::null());
    assert_eq!(code, 0);
    assert!(
        out.contains("--listen") && out.contains("--secret-file"),
        "{out}"
    );
    let (code, out, _) = worker_cli(&["--version"], Stdio::null());
    assert_eq!(code, 0);
    assert!(out.contains(remex::VERSION), "{out}");
    let (code, _, err) = worker_cli(&["--bogus"], Stdio::null());
    assert_eq!(code, 2);
    assert!(err.contains("'--bogus'"), "{err}");
    let (code, _, err) = worker_cli(&["--secret-file", "/nonexistent"], Stdio::null());
    assert_eq!(code, 2, "--secret-file needs --listen: {err}");
}

#[test]
fn a_terminal_on_stdin_gets_a_hint_not_a_silent_wait() {
    // A real pseudo-terminal as the worker's stdin.
    // SAFETY: plain libc calls on fds this test owns.
    let slave = unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0);
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let name = std::ffi::CStr::from_ptr(libc::ptsname(master))
            .to_str()
            .unwrap()
            .to_string();
        // The master stays open (never closed) for the test's life, so the
        // terminal does.
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name)
            .unwrap()
    };
    let t0 = std::time::Instant::now();
    let (code, _, err) = worker_cli(&[], Stdio::from(slave));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("stdin is a terminal"), "{err}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn a_clean_exit_prints_nothing_about_lost_channels() {
    for round in 0..5 {
        let out = Command::new(env!("CARGO_BIN_EXE_remex-test-controller"))
            .args(["clean-exit", env!("CARGO_BIN_EXE_remex-test-worker")])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stdout.contains("EXITED"),
            "round {round}: {stdout} {stderr}"
        );
        assert!(
            stderr.trim().is_empty(),
            "round {round}: a clean exit printed: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_mismatch_names_the_gateway_and_the_type_as_written() {
    let gw = common::gateway().await;
    let ch = gw.remote_exec("channel.send(5)").unwrap();
    let err = ch.receive::<Vec<String>>().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, remex::Error::TypeMismatch { .. }), "{text}");
    assert!(text.contains(&format!("of {}", gw.id())), "{text}");
    assert!(
        text.contains("expected Vec<String>, received int 5"),
        "{text}"
    );
    assert!(!text.contains("alloc::"), "{text}");
    gw.exit().await.unwrap();
}

/// What a user writes: `?` on a conversion inside a function returning
/// `remex::Result`.
fn doubled(v: remex::Value) -> remex::Result<i64> {
    let n: i64 = remex::from_value(v)?;
    Ok(n * 2)
}

#[test]
fn value_errors_convert_with_question_mark_and_errors_debug_as_their_message() {
    assert_eq!(doubled(remex::Value::Int(21)).unwrap(), 42);
    let err = doubled(remex::Value::from("x")).unwrap_err();
    assert!(matches!(err, remex::Error::Value(_)), "{err}");
    assert!(
        err.to_string().starts_with("expected i64, received string"),
        "{err}"
    );
    // `fn main() -> remex::Result<()>` prints the Debug form: the message,
    // with no escaped quotes or struct syntax.
    let err = remex::Spec::parse("popen//chdir")
        .map(|_| ())
        .map_err(remex::Error::from);
    let err = err.unwrap_err();
    assert_eq!(format!("{err:?}"), err.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_mistakes_say_what_was_meant() {
    let err = remex::makegateway("4*popen").await.unwrap_err().to_string();
    assert!(err.contains("asks for 4 gateways"), "{err}");
    assert!(err.contains("makegateway starts one"), "{err}");
    let err = remex::makegateway("popen//chidr=/tmp")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("did you mean 'chdir'?"), "{err}");
    let err = remex::Group::new(["2*popen//intsallvia=x"])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("did you mean 'installvia'?"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_handshake_through_a_relay_names_no_pid_zero() {
    let group = remex::Group::new([common::spec("//id=root")])
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    let err = group
        .makegateway("popen//worker=/bin/echo//via=root")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("through relay root"), "{err}");
    assert!(!err.contains("pid 0"), "{err}");
    // The relayed process's end shows at once, not after the handshake's
    // 30 s timeout.
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    group.terminate(Duration::from_secs(5)).await;
}

/// Sends `ch` to a script that sends it back and ends (which closes the
/// channel on the worker); returns the reference that came back, once the
/// script and `ch` have ended.
async fn sent_back(gw: &remex::Gateway, ch: &remex::Channel) -> remex::ChannelRef {
    let script = gw
        .remote_exec("let c = channel.receive(); channel.send(c);")
        .unwrap();
    script.send(ch).await.unwrap();
    let r = script.receive().await.unwrap();
    script
        .waitclose(Some(Duration::from_secs(10)))
        .await
        .unwrap();
    ch.waitclose(Some(Duration::from_secs(10))).await.unwrap();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_sent_back_after_the_script_ended_is_the_same_channel() {
    let gw = common::gateway().await;
    let mine = gw.newchannel();
    let r = sent_back(&gw, &mine).await;
    let back = gw.channel(r);
    assert_eq!(back.id(), mine.id());
    // It reports its end at once, like the handle we kept.
    let t0 = std::time::Instant::now();
    assert!(back.is_closed());
    let err = back
        .receive_timeout::<i64>(Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(err.is_end_of_channel(), "{err}");
    back.waitclose(Some(Duration::from_secs(10))).await.unwrap();
    assert!(
        back.send(&1).await.is_err(),
        "a send on an ended channel fails"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));

    // The same when we no longer hold a handle of our own.
    let lost = gw.newchannel();
    let r = sent_back(&gw, &lost).await;
    drop(lost);
    let back = gw.channel(r);
    let err = back
        .receive_timeout::<i64>(Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(err.is_end_of_channel(), "{err}");
    back.waitclose(Some(Duration::from_secs(10))).await.unwrap();
    assert_eq!(
        gw.numchannels(),
        0,
        "ended channels are not kept in the table"
    );
    gw.exit().await.unwrap();
}
