//! The handshake as a user meets it: shell noise before the worker starts,
//! and peers that speak another protocol version.
//!
//! The scripts run through `sh` (`cmd=sh FILE`) rather than being executed
//! themselves: executing a file this multi-threaded process just wrote can
//! fail with ETXTBSY when another thread forks meanwhile.

mod common;

use std::path::PathBuf;

use remex::{makegateway, Error};

fn script(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("remex-hs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("{body}\n")).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_printed_before_the_worker_starts_is_skipped() {
    let worker = env!("CARGO_BIN_EXE_remex-test-worker");
    let path = script(
        "motd.sh",
        &format!("echo 'Welcome to host!'; echo 'Last login: yesterday'; printf 'no newline'; exec {worker}"),
    );
    let gw = makegateway(&format!("cmd=sh {}", path.display()))
        .await
        .unwrap();
    let ch = gw.remote_exec("channel.send(7)").unwrap();
    assert_eq!(ch.receive::<i64>().await.unwrap(), 7);
    gw.exit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_another_protocol_version_is_named_in_the_error() {
    // The magic, then version 99, then an empty body.
    let path = script(
        "v99.sh",
        r"printf '\360REMEX\000\n\143\000\000\000\000\000'; sleep 5",
    );
    let err = makegateway(&format!("cmd=sh {}", path.display()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Handshake { .. }), "{text}");
    assert!(
        text.contains(&format!("version {}", remex::core::wire::PROTOCOL_VERSION))
            && text.contains("version 99"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_noise_without_a_handshake_is_reported_not_waited_on() {
    let path = script("noise.sh", "yes 'this is not a remex worker'");
    let err = makegateway(&format!("cmd=sh {}", path.display()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no remex handshake within the first")
            && text.contains("this is not a remex worker"),
        "{text}"
    );
}
