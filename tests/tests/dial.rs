//! Workers that dial back (`REMEX_DIAL`, how `slurm` gateways' workers
//! reach their controller) serve nobody that does not prove the secret.
//! The controller's side (a listener that takes one session per started
//! rank) is tested in remex-core (`transport::dial`); the Slurm suite
//! runs both ends for real.

use std::process::{Command, Stdio};
use std::time::Duration;

use remex::core::transport::dial::{DIAL_ENV, DIAL_SECRET_ENV, DIAL_WITHIN_ENV};
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
    let e = secure::respond(
        &mut r,
        &mut w,
        &secure::psk(b"an impostor's guess"),
        secure::Use::DialBack,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, secure::HandshakeError::Unproven), "{e}");
    let out = tokio::task::spawn_blocking(move || remex_tests::finished(child))
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refused this worker's secret"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_worker_told_to_dial_without_a_secret_says_so() {
    let out = remex_tests::finished(worker("127.0.0.1:9", None));
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
    let t0 = std::time::Instant::now();
    let mut cmd = Command::new(WORKER);
    cmd.env(DIAL_ENV, &addr)
        .env(DIAL_SECRET_ENV, "a secret of the controller that is gone")
        .env(DIAL_WITHIN_ENV, "1.5");
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("cannot connect to the controller at {addr}"))
            && err.contains("tried for 1.5s"),
        "{err}"
    );
    // It tried until the controller's bound, not once.
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
}

/// A listener that comes up late (a busy controller, a SYN lost on the
/// way) still gets its worker: the worker tries again with backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_tries_again_until_the_listener_is_up() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let secret = "a secret for a listener that comes late";
    let child = worker(&addr, Some(secret));
    // The scenario, not a synchronisation: nobody listens for 700 ms.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the worker dialed again")
        .unwrap();
    let (mut r, mut w) = stream.into_split();
    secure::respond(
        &mut r,
        &mut w,
        &secure::psk(secret.as_bytes()),
        secure::Use::DialBack,
    )
    .await
    .expect("its handshake proves the secret");
    drop((r, w));
    let _ = tokio::task::spawn_blocking(move || remex_tests::finished(child)).await;
}

/// A dial-back worker whose session is tampered with after the hellos
/// ends at once, with a non-zero status and a warning naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_session_ends_the_worker_with_a_warning_and_status_4() {
    use remex::core::wire::{encode_hello, Hello, Role, WorkerSetup};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let secret = "a dial-back secret of enough characters";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let child = worker(&addr, Some(secret));
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .unwrap()
        .unwrap();
    let (mut r, mut w) = stream.into_split();
    let state = secure::respond(
        &mut r,
        &mut w,
        &secure::psk(secret.as_bytes()),
        secure::Use::DialBack,
    )
    .await
    .unwrap();
    let (mut reader, mut writer) = secure::split(state, r, w, "worker");
    let mut hello = bytes::BytesMut::new();
    encode_hello(
        &Hello {
            role: Role::Controller,
            worker: None,
            setup: Some(WorkerSetup::default()),
        },
        &mut hello,
    );
    writer.write_all(&hello).await.unwrap();
    writer.flush().await.unwrap();
    // The worker's hello comes back: the session is up.
    let mut got = [0u8; 8];
    reader.read_exact(&mut got).await.unwrap();
    assert_eq!(got, remex::core::wire::MAGIC);
    // Then a record with one bit flipped.
    let (mut raw, mut sealer) = writer.into_parts().unwrap();
    let mut record = bytes::BytesMut::new();
    sealer.seal(b"anything at all", &mut record).unwrap();
    let last = record.len() - 1;
    record[last] ^= 0x01;
    raw.write_all(&record).await.unwrap();
    let t0 = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || remex_tests::finished(child))
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("WARN") && err.contains("tampered"), "{err}");
}
