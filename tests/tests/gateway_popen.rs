//! Gateways over popen: spec handling, the gateway calls, and process
//! lifecycle checked against the operating system.

mod common;

use std::time::{Duration, Instant};

use remex::{makegateway, Error, GatewayState};
use remex_tests::{children_of, process_gone, wait_gone};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_are_clear_errors() {
    let err = makegateway("popen//colour=red").await.unwrap_err();
    assert!(err.to_string().contains("unknown key 'colour'"), "{err}");
    let err = makegateway("popen//id=a//id=b").await.unwrap_err();
    assert!(err.to_string().contains("duplicate key 'id'"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rinfo_id_spec_and_setup_are_honoured() {
    let dir = std::env::temp_dir().join(format!("remex-chdir-{}", std::process::id()));
    let spec = common::spec(&format!(
        "//id=w1//chdir={}//env:REMEX_T=hello//nice=3",
        dir.display()
    ));
    let gw = makegateway(&spec).await.unwrap();
    assert_eq!(gw.id(), "w1");
    assert_eq!(gw.spec().raw, spec);
    let info = gw.rinfo();
    assert!(!process_gone(info.pid));
    assert_eq!(std::path::Path::new(&info.cwd), dir.canonicalize().unwrap());
    // The worker runs alone when it reads the setup (its engine's prewarm
    // is quiet then): the process itself moved, not only its commands.
    assert_eq!(
        std::fs::read_link(format!("/proc/{}/cwd", info.pid)).unwrap(),
        dir.canonicalize().unwrap()
    );
    assert!(
        info.executable.ends_with("remex-test-worker"),
        "{}",
        info.executable
    );
    assert_eq!(
        info.platform,
        format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
    );
    assert_eq!(info.version, remex::VERSION);
    let ch = gw
        .remote_call(
            "shell",
            "echo $REMEX_T; pwd; cut -d' ' -f19 /proc/self/stat",
        )
        .unwrap();
    let lines: Vec<String> = (0..3)
        .map(|_| ch.receive_blocking::<String>(Some(T)).unwrap())
        .collect();
    assert_eq!(lines[0], "hello");
    assert_eq!(std::path::Path::new(&lines[1]), dir.canonicalize().unwrap());
    assert_eq!(lines[2], "3", "niceness of the worker's child");
    ch.waitclose(Some(T)).await.unwrap();
    gw.exit().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_ids_count_up() {
    let a = common::gateway().await;
    let b = common::gateway().await;
    let n = |id: &str| id.strip_prefix("gw").unwrap().parse::<usize>().unwrap();
    assert!(n(b.id()) > n(a.id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_call_runs_registered_tasks_and_reports_unknown_ones() {
    let gw = common::gateway().await;
    assert_eq!(
        gw.remote_call("square", &12)
            .unwrap()
            .receive::<i64>()
            .await
            .unwrap(),
        144
    );
    let err = gw
        .remote_call("nope", &())
        .unwrap()
        .receive::<i64>()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote(r) if r.message.contains("no task named 'nope'") && r.message.contains("square")),
        "{err}"
    );
    let err = gw
        .remote_call("square", "seven")
        .unwrap()
        .receive::<i64>()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("expected i64") && err.to_string().contains("seven"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_task_is_a_remote_error_and_the_worker_serves_on() {
    // No backtrace from the panic: with RUST_BACKTRACE=1 (as on CI),
    // resolving it loads the worker's debug info, tens of MB, and the
    // blocked script below, whose memory limit counts the process's
    // growth while it runs, failed with script_max_memory (flaky, seen
    // once in the portable pass).
    let gw = remex::makegateway(&common::spec("//env:RUST_BACKTRACE=0"))
        .await
        .unwrap();
    let blocked = gw.remote_exec("channel.send(channel.receive())").unwrap();
    let err = gw
        .remote_call("panic", &())
        .unwrap()
        .waitclose(Some(T))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote(r) if r.message.contains("panicked on purpose")),
        "{err}"
    );
    assert_eq!(
        gw.remote_call("square", &3)
            .unwrap()
            .receive::<i64>()
            .await
            .unwrap(),
        9
    );
    blocked.send(&"still here").await.unwrap();
    assert_eq!(blocked.receive::<String>().await.unwrap(), "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_execs_do_not_block_each_other() {
    let gw = common::gateway().await;
    let waiting: Vec<_> = (0..20)
        .map(|_| {
            gw.remote_exec("channel.send(channel.receive() + 1)")
                .unwrap()
        })
        .collect();
    let sleeping = gw.remote_call("sleep", &30).unwrap();
    let quick = gw.remote_exec("channel.send(5)").unwrap();
    assert_eq!(quick.receive_timeout::<i64>(T).await.unwrap(), 5);
    quick.waitclose(Some(T)).await.unwrap();
    let status = gw.remote_status().await.unwrap();
    assert_eq!(status.numexecuting, 21, "{status:?}");
    for (i, ch) in waiting.iter().enumerate() {
        ch.send(&(i as i64)).await.unwrap();
    }
    for (i, ch) in waiting.iter().enumerate() {
        assert_eq!(ch.receive_timeout::<i64>(T).await.unwrap(), i as i64 + 1);
    }
    drop(sleeping);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_status_counts_channels_and_executions() {
    let gw = common::gateway().await;
    assert_eq!(
        gw.remote_status().await.unwrap(),
        remex::core::wire::RemoteStatus::default()
    );
    let ch = gw
        .remote_exec("let c = channel.receive(); channel.send(1); channel.receive();")
        .unwrap();
    let side = gw.newchannel();
    ch.send(&side).await.unwrap();
    ch.receive::<i64>().await.unwrap();
    let s = gw.remote_status().await.unwrap();
    assert_eq!(
        (s.numchannels, s.numexecuting),
        (2, 1),
        "exec channel and the channel it holds"
    );
    ch.send(&0).await.unwrap();
    // The script's end drops its last handle on `c`, which closes it.
    side.waitclose(Some(T)).await.unwrap();
    ch.waitclose(Some(T)).await.unwrap();
    let s = gw.remote_status().await.unwrap();
    assert_eq!((s.numchannels, s.numexecuting), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_returns_promptly_while_a_task_sleeps_and_leaves_no_process() {
    let gw = common::gateway().await;
    let pid = gw.rinfo().pid;
    let ch = gw.remote_call("sleep", &60).unwrap();
    assert!(gw
        .join(Some(Duration::from_millis(50)))
        .await
        .unwrap_err()
        .is_timeout());
    assert_eq!(gw.state(), GatewayState::Running);
    let t0 = Instant::now();
    gw.exit().await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "exit took {:?}",
        t0.elapsed()
    );
    assert!(process_gone(pid));
    assert!(
        matches!(gw.state(), GatewayState::Exited { code: Some(0), .. }),
        "{:?}",
        gw.state()
    );
    gw.join(Some(T)).await.unwrap();
    let err = ch.receive::<()>().await.unwrap_err();
    assert!(matches!(err, Error::GatewayLost { .. }), "{err}");
    assert!(matches!(
        gw.remote_exec("1").unwrap_err(),
        Error::GatewayLost { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_takes_the_workers_children_with_it() {
    let gw = common::gateway().await;
    let pid = gw.rinfo().pid;
    let child = common::spawn_sleeper(&gw).await;
    assert_eq!(children_of(pid), vec![child]);
    gw.kill().await.unwrap();
    assert!(process_gone(pid));
    assert!(
        wait_gone(child, Duration::from_secs(2)),
        "the worker's child {child} survived kill()"
    );
    assert!(
        matches!(
            gw.state(),
            GatewayState::Exited {
                signal: Some(9),
                ..
            }
        ),
        "{:?}",
        gw.state()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_takes_the_workers_children_with_it() {
    let gw = common::gateway().await;
    let child = common::spawn_sleeper(&gw).await;
    gw.exit().await.unwrap();
    assert!(
        wait_gone(child, Duration::from_secs(2)),
        "the worker's child {child} survived exit()"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_gateway_handle_kills_the_worker() {
    let gw = common::gateway().await;
    let pid = gw.rinfo().pid;
    drop(gw);
    assert!(wait_gone(pid, Duration::from_secs(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_is_not_a_worker_is_a_clear_error() {
    let err = makegateway("popen//worker=/bin/cat").await.unwrap_err();
    assert!(
        matches!(&err, Error::NotAWorker { .. }) && err.to_string().contains("not a remex worker"),
        "{err}"
    );
    let err = makegateway("popen//worker=/bin/true").await.unwrap_err();
    assert!(
        matches!(&err, Error::Handshake { .. })
            && err.to_string().contains("before the remex handshake"),
        "{err}"
    );
    let err = makegateway("popen//worker=/bin/pwd").await.unwrap_err();
    assert!(err.to_string().contains("it printed"), "{err}");
    let err = makegateway("popen//worker=/no/such/worker")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Start { .. }) && err.to_string().contains("/no/such/worker"),
        "{err}"
    );
}

#[test]
fn worker_exits_when_its_controller_is_killed() {
    let (mut controller, pids) = remex_tests::start_controller(
        env!("CARGO_BIN_EXE_remex-test-controller"),
        &["child", env!("CARGO_BIN_EXE_remex-test-worker")],
    );
    controller.kill().unwrap();
    controller.wait().unwrap();
    let t0 = Instant::now();
    assert!(
        wait_gone(pids[0], Duration::from_secs(1)),
        "worker {} outlived its controller by 1 s",
        pids[0]
    );
    assert!(
        wait_gone(pids[1], Duration::from_secs(1)),
        "the worker's child {} outlived the controller",
        pids[1]
    );
    eprintln!(
        "worker gone {:?} after the controller's SIGKILL",
        t0.elapsed()
    );
}
