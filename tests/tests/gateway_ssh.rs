//! ssh gateways against a real OpenSSH sshd on 127.0.0.2.

use std::time::{Duration, Instant};

use remex::{makegateway, Error};
use remex_tests::{wait_gone, Sshd};

const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");

fn worker() -> String {
    format!("//worker={WORKER}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_over_ssh_and_the_worker_ends_with_the_gateway() {
    let sshd = Sshd::start("127.0.0.2");
    let gw = makegateway(&sshd.spec(&format!("{}//chdir=/tmp//env:OVER=ssh", worker())))
        .await
        .unwrap();
    let info = gw.rinfo().clone();
    assert_eq!(info.cwd, "/tmp");
    let ch = gw
        .remote_exec("channel.send(channel.receive() + 1)")
        .unwrap();
    ch.send(&41).await.unwrap();
    assert_eq!(ch.receive::<i64>().await.unwrap(), 42);
    let ch = gw.remote_call("shell", "echo $OVER").unwrap();
    assert_eq!(ch.receive::<String>().await.unwrap(), "ssh");
    gw.kill().await.unwrap();
    assert!(
        wait_gone(info.pid, Duration::from_secs(2)),
        "the remote worker outlived its gateway"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_an_authentication_error() {
    let sshd = Sshd::start("127.0.0.2");
    let err = makegateway(&sshd.spec_with("ssh_config_wrong_key", &worker()))
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::AuthRefused { .. }), "{err}");
    assert!(err.to_string().contains("Permission denied"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_host_key_is_rejected() {
    let sshd = Sshd::start("127.0.0.2");
    let err = makegateway(&sshd.spec_with("ssh_config_wrong_host", &worker()))
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::HostKeyRejected { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_port_is_reported_within_the_connect_timeout() {
    let sshd = Sshd::start("127.0.0.2");
    let closed = std::net::TcpListener::bind(("127.0.0.2", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = sshd
        .spec(&worker())
        .replace(&format!("port={}", sshd.port), &format!("port={closed}"));
    let t0 = Instant::now();
    let err = makegateway(&spec).await.unwrap_err();
    assert!(t0.elapsed() < remex::core::transport::ssh::CONNECT_TIMEOUT + Duration::from_secs(2));
    assert!(matches!(&err, Error::HostUnreachable { .. }), "{err}");
    assert!(err.to_string().contains("Connection refused"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_worker_is_reported_with_how_to_provide_one() {
    let sshd = Sshd::start("127.0.0.2");
    let err = makegateway(&sshd.spec("//worker=/no/such/remex-worker"))
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::WorkerMissing { .. }), "{err}");
    assert!(err.to_string().contains("worker=PATH"), "{err}");
}
