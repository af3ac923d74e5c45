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
