//! `installvia=ID`: a listening worker started through another gateway
//! (ssh or popen) with a fresh secret handed over that gateway; the socket
//! gateway works without any secret set up by hand, and the listener lives
//! as long as the gateway that installed it.

use std::time::Duration;

use remex::{makegateway, Group};
use remex_tests::{children_of, wait_gone, Sshd};

const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");

/// Whether `text` holds a run of 64 hex digits (a secret as installvia
/// makes them).
fn has_hex_secret(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .any(|w| w.len() >= 64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installvia_over_ssh_needs_no_secret_by_hand_and_ends_with_its_installer() {
    let sshd = Sshd::start("127.0.0.4");
    let g = Group::new([
        sshd.spec(&format!("//worker={WORKER}//id=h")),
        "socket=127.0.0.1:0//installvia=h//id=s".to_string(),
    ])
    .await
    .unwrap();
    let (h, s) = (g.by_id("h").unwrap(), g.by_id("s").unwrap());
    let listener = s.rinfo().pid;
    assert_ne!(listener, h.rinfo().pid);
    assert!(
        children_of(h.rinfo().pid).contains(&listener),
        "the listener is the ssh worker's child"
    );
    let cmdline = std::fs::read(format!("/proc/{listener}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        !has_hex_secret(&cmdline),
        "a secret on the command line: {cmdline}"
    );
    assert!(cmdline.contains("--listen"), "{cmdline}");
    let ch = s
        .remote_exec("channel.send(channel.receive() * 3)")
        .unwrap();
    ch.send(&14).await.unwrap();
    assert_eq!(ch.receive::<i64>().await.unwrap(), 42);
    // A second installed gateway gets a listener and a secret of its own.
    let s2 = g
        .makegateway("socket=127.0.0.1:0//installvia=h//id=s2")
        .await
        .unwrap();
    assert_ne!(s2.rinfo().pid, listener);
    // The listener lives as long as its installer.
    h.kill().await.unwrap();
    assert!(
        wait_gone(listener, Duration::from_secs(5)),
        "the listener outlived the gateway that installed it"
    );
    assert!(wait_gone(s2.rinfo().pid, Duration::from_secs(5)));
    g.terminate(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installvia_through_popen_and_terminate_leaves_nothing() {
    let g = Group::new([
        format!("popen//worker={WORKER}//id=p"),
        "2*socket=127.0.0.1:0//installvia=p".to_string(),
    ])
    .await
    .unwrap();
    assert_eq!(g.len(), 3);
    let pids: Vec<u32> = g.gateways().iter().map(|gw| gw.rinfo().pid).collect();
    let got: Vec<i64> = g
        .remote_exec("channel.send(5)")
        .unwrap()
        .receive_each()
        .await
        .unwrap();
    assert_eq!(got, vec![5; 3]);
    g.terminate(Duration::from_secs(1)).await;
    for pid in pids {
        assert!(wait_gone(pid, Duration::from_secs(5)), "{pid} left behind");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installvia_mistakes_are_named() {
    let e = Group::new(["socket=127.0.0.1:0//installvia=nope"])
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("installvia=nope: the group has no gateway with that id"),
        "{e}"
    );
    let e = makegateway("socket=127.0.0.1:0//installvia=x")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("start it in a Group"), "{e}");
    let e = makegateway("socket=127.0.0.1:0//installvia=x//secret_env=S")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("drop secret_env"), "{e}");
    let e = makegateway("popen//installvia=x").await.unwrap_err();
    assert!(e.to_string().contains("applies to socket= only"), "{e}");
    let e = Group::new([
        format!("popen//worker={WORKER}//id=p"),
        "socket=0.0.0.0:0//installvia=p".to_string(),
    ])
    .await
    .unwrap_err();
    assert!(e.to_string().contains("this controller reaches"), "{e}");
}
