//! `cmd=`: a worker reached through any command's stdio, tested with real
//! wrappers (`sh`, `env`, `setsid`).

mod common;

use std::time::Duration;

use futures::StreamExt;

use remex::{makegateway, Error, Group};
use remex_tests::{process_gone, wait_gone};

const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");
const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_behind_a_shell_command_serves() {
    let gw = makegateway(&format!("cmd=exec {WORKER}//id=c1"))
        .await
        .unwrap();
    assert_eq!(gw.id(), "c1");
    assert!(gw.rinfo().executable.ends_with("remex-test-worker"));
    let ch = gw
        .remote_exec("channel.send(channel.receive() * 3)")
        .unwrap();
    ch.send(&14).await.unwrap();
    assert_eq!(ch.receive::<i64>().await.unwrap(), 42);
    gw.exit().await.unwrap();
    assert!(process_gone(gw.rinfo().pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_wrapper_and_setup_keys_apply() {
    let gw = makegateway(&format!(
        "cmd=env FROM_ENV=wrapped {WORKER}//env:FROM_SPEC=spec//chdir=/tmp"
    ))
    .await
    .unwrap();
    let ch = gw
        .remote_call("shell", "echo $FROM_ENV $FROM_SPEC; pwd")
        .unwrap();
    assert_eq!(
        ch.receive_timeout::<String>(T).await.unwrap(),
        "wrapped spec"
    );
    assert_eq!(ch.receive_timeout::<String>(T).await.unwrap(), "/tmp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_in_its_own_session_still_ends_with_its_gateway() {
    // setsid puts the worker out of the command's process group, so only the
    // end of its input can stop it.
    let gw = makegateway(&format!("cmd=setsid {WORKER}")).await.unwrap();
    let pid = gw.rinfo().pid;
    let ch = gw.remote_call("square", &6).unwrap();
    assert_eq!(ch.receive::<i64>().await.unwrap(), 36);
    assert_eq!(
        gw.state(),
        remex::GatewayState::Running,
        "the worker serves although setsid returned"
    );
    gw.kill().await.unwrap();
    assert!(
        wait_gone(pid, Duration::from_secs(1)),
        "the setsid worker outlived its gateway"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_reports_its_status_and_stderr() {
    let err = makegateway("cmd=no-such-command-remex-xyz")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Handshake { .. }), "{text}");
    assert!(text.contains("127") && text.contains("not found"), "{text}");
    let err = makegateway("cmd=echo 'cannot reach the pod' >&2; exit 3")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("exit status: 3") && text.contains("cannot reach the pod"),
        "{text}"
    );
    let err = makegateway(&format!("cmd=exec {WORKER}//worker=/x"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("worker= does not apply to cmd="),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_mixes_popen_and_cmd_gateways() {
    let g = Group::new([
        common::spec(""),
        format!("cmd=exec {WORKER}"),
        format!("cmd=setsid {WORKER}"),
    ])
    .await
    .unwrap();
    let pids: Vec<u32> = g.gateways().iter().map(|gw| gw.rinfo().pid).collect();
    let results: Vec<i64> = g
        .map("square", 0..30i64, true)
        .map(|r| remex::from_value::<i64>(r.unwrap()).unwrap())
        .collect()
        .await;
    assert_eq!(results, (0..30i64).map(|x| x * x).collect::<Vec<_>>());
    g.terminate(Duration::from_secs(1)).await;
    for pid in pids {
        assert!(
            wait_gone(pid, Duration::from_secs(1)),
            "worker {pid} survived terminate"
        );
    }
}

/// A wrapper script standing in for srun, kubectl or podman: it runs the
/// worker as its child and, on SIGTERM, records that it cleaned up and
/// ends the worker (unless `ignore_term`: then it and the worker ignore
/// SIGTERM). `body` replaces the worker with anything else.
fn wrapper(name: &str, ignore_term: bool, body: Option<&str>) -> (String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("remex-wrap-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mark = dir.join("cleaned");
    let trap = if ignore_term {
        "trap '' TERM".to_string()
    } else {
        format!(
            "trap 'echo cleaned >> {}; kill -TERM $child 2>/dev/null; exit 0' TERM",
            mark.display()
        )
    };
    let run = body
        .map(str::to_string)
        .unwrap_or_else(|| format!("exec 3<&0\n{WORKER} <&3 3<&- &\nchild=$!"));
    let script = dir.join("wrap.sh");
    // The trap comes first, as a real wrapper's handler does: the worker
    // answers the handshake before the shell would reach a later line, so
    // a kill right after the start could otherwise find no trap (under
    // load it did: the shell died without cleaning up). A trapped signal
    // is reset to its default in the worker; an ignored one is inherited,
    // so with `ignore_term` the worker ignores SIGTERM too, and the whole
    // group holds out until SIGKILL.
    let text = format!("{trap}\n{run}\nwait $child\nwait $child\n");
    std::fs::write(&script, text).unwrap();
    (format!("cmd=exec sh {}", script.display()), mark)
}

/// Waits (bounded) until the wrapper recorded its clean-up.
fn cleaned(mark: &std::path::Path) -> bool {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < T {
        if std::fs::read_to_string(mark).is_ok_and(|s| s.contains("cleaned")) {
            return true;
        }
        // A file written by another process: no event to wait on.
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_gives_a_wrapper_sigterm_and_time_to_clean_up() {
    let (spec, mark) = wrapper("kill", false, None);
    let gw = makegateway(&spec).await.unwrap();
    let worker = gw.rinfo().pid;
    let started = std::time::Instant::now();
    gw.kill().await.unwrap();
    assert!(
        started.elapsed() < remex::core::transport::WRAPPER_GRACE,
        "a wrapper that ends at once is not waited for"
    );
    assert!(cleaned(&mark), "the wrapper got SIGTERM first");
    assert!(wait_gone(worker, T));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_gateway_gives_a_wrapper_sigterm() {
    let (spec, mark) = wrapper("drop", false, None);
    let gw = makegateway(&spec).await.unwrap();
    let worker = gw.rinfo().pid;
    drop(gw);
    assert!(
        tokio::task::spawn_blocking(move || cleaned(&mark))
            .await
            .unwrap(),
        "the wrapper got SIGTERM"
    );
    assert!(wait_gone(worker, T));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapper_that_ignores_sigterm_is_killed_after_the_grace() {
    let (spec, _) = wrapper("stubborn", true, None);
    let gw = makegateway(&spec).await.unwrap();
    let worker = gw.rinfo().pid;
    let started = std::time::Instant::now();
    gw.kill().await.unwrap();
    let took = started.elapsed();
    let grace = remex::core::transport::WRAPPER_GRACE;
    assert!(took >= grace && took < grace + T, "{took:?}");
    assert!(wait_gone(worker, T));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_gives_a_wrapper_sigterm() {
    // The wrapper answers with another protocol version: the handshake
    // fails, and the wrapper is ended gently.
    let body = r"printf '\360REMEX\000\n\143\000\000\000\000\000'
sleep 30 &
child=$!";
    let (spec, mark) = wrapper("failed", false, Some(body));
    let e = makegateway(&spec).await.unwrap_err();
    assert!(e.to_string().contains("version 99"), "{e}");
    assert!(cleaned(&mark), "the wrapper got SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_start_fails_at_start_timeout_with_what_the_command_said() {
    let started = std::time::Instant::now();
    let e = makegateway(
        "cmd=echo 'srun: job 7 queued and waiting for resources' >&2; exec sleep 30//start_timeout=1",
    )
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("within 1s"), "{text}");
    assert!(text.contains("queued and waiting for resources"), "{text}");
    assert!(text.contains("start_timeout="), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(1) + T,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_answering_on_one_stream_are_named() {
    // What `srun -n2` does: both tasks get the input, both answer.
    let dir = std::env::temp_dir().join(format!("remex-two-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("in");
    let spec = format!(
        "cmd=exec 3<&0; mkfifo {f}; tee {f} <&3 | {WORKER} & {WORKER} < {f}; wait",
        f = fifo.display()
    );
    let text = remex_tests::first_failure(makegateway(&spec).await, T).await;
    assert!(text.contains("two workers answer on one stream"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}
