//! Workers that dial back (`REMEX_DIAL`, how `slurm` gateways' workers
//! reach their controller) serve nobody that does not prove the secret.
//! The controller's side (a listener that takes one session per started
//! rank) is tested in remex-core (`transport::dial`); the Slurm suite
//! runs both ends for real.

use std::process::{Command, Stdio};
use std::time::Duration;

use remex::core::transport::dial::{DIAL_ENV, DIAL_SECRET_ENV};
use remex::core::transport::secure;

const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");

fn worker(addr: &str, secret: Option<&str>) -> std::process::Child {
    let mut cmd = Command::new(WORKER);
    cmd.env(DIAL_ENV, addr)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(s) = secret {
        cmd.env(DIAL_SECRET_ENV, s);
    }
    cmd.spawn().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_no_listener_that_lacks_its_secret() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let child = worker(&addr, Some("the worker's own secret, long enough"));
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .unwrap()
        .unwrap();
    let (mut r, mut w) = stream.into_split();
    let e = secure::respond(&mut r, &mut w, &secure::psk(b"an impostor's guess"))
        .await
        .unwrap_err();
    assert!(matches!(e, secure::HandshakeError::Unproven), "{e}");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refused this worker's secret"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_worker_told_to_dial_without_a_secret_says_so() {
    let out = worker("127.0.0.1:9", None).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("REMEX_DIAL_SECRET is not"), "{err}");
}

#[test]
fn a_worker_whose_controller_is_gone_says_where_it_dialed() {
    // A port nobody listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = worker(&addr, Some("a secret of the controller that is gone"))
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("cannot connect to the controller at {addr}")),
        "{err}"
    );
}
