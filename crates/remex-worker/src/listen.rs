//! `remex-worker --listen ADDR`: serve gateways over TCP (`socket=`).
//!
//! Each connection must first prove the shared secret (see
//! `remex_core::transport::socket` for the exchange); a client that sends a
//! wrong answer, garbage, or nothing within [`AUTH_TIMEOUT`] is refused and
//! logged, and no code runs for it. Each accepted connection is a session
//! of its own; sessions share the process, so `chdir=`, `env:` and `nice=`
//! apply to the whole process (the last session's setup wins).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use remex_core::transport::socket::{verify, AUTH_GREETING, AUTH_REFUSED, CHALLENGE_LEN};
use remex_core::wire::{HandshakeScanner, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::Worker;

/// How long a client has to answer the challenge.
pub(crate) const AUTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves sessions on `addr` until the process is killed. Prints
/// `remex-worker listening on ADDR` (the bound address) on stdout once it
/// listens.
pub(crate) fn listen(worker: Worker, addr: &str, secret: Vec<u8>) -> ! {
    crate::init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4096)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("remex-worker: cannot start the runtime: {e}");
            std::process::exit(2)
        }
    };
    let worker = Arc::new(worker);
    let secret: Arc<[u8]> = secret.into();
    rt.block_on(async move {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("remex-worker: cannot listen on {addr}: {e}");
                std::process::exit(2)
            }
        };
        match listener.local_addr() {
            Ok(a) => println!("remex-worker listening on {a}"),
            Err(e) => eprintln!("remex-worker: {e}"),
        }
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("remex-worker: accept failed: {e}");
                    continue;
                }
            };
            let (worker, secret) = (worker.clone(), secret.clone());
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let (mut r, mut w) = stream.into_split();
                match tokio::time::timeout(AUTH_TIMEOUT, authenticate(&mut r, &mut w, &secret)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(why)) => {
                        eprintln!("remex-worker: refused {peer}: {why}");
                        let _ = w.write_all(AUTH_REFUSED).await;
                        return;
                    }
                    Err(_) => {
                        eprintln!("remex-worker: refused {peer}: no answer within {AUTH_TIMEOUT:?}");
                        return;
                    }
                }
                let leftover = match tokio::time::timeout(AUTH_TIMEOUT, hellos(&mut r, &mut w)).await {
                    Ok(Ok(b)) => b,
                    Ok(Err(why)) => {
                        eprintln!("remex-worker: session from {peer} failed its handshake: {why}");
                        return;
                    }
                    Err(_) => {
                        eprintln!("remex-worker: session from {peer}: no handshake within {AUTH_TIMEOUT:?}");
                        return;
                    }
                };
                crate::serve::session(worker, move |config, handlers| {
                    Ok(remex_core::conn::Connection::spawn(config, handlers, r, w, leftover))
                })
                .await;
            });
        }
    })
}

async fn authenticate<R, W>(r: &mut R, w: &mut W, secret: &[u8]) -> Result<(), String>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut challenge = [0u8; CHALLENGE_LEN];
    getrandom::getrandom(&mut challenge)
        .map_err(|e| format!("no randomness for a challenge: {e}"))?;
    let mut greeting = AUTH_GREETING.to_vec();
    greeting.extend_from_slice(&challenge);
    w.write_all(&greeting).await.map_err(|e| e.to_string())?;
    let mut response = [0u8; 32];
    r.read_exact(&mut response)
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    if verify(secret, &challenge, &response) {
        Ok(())
    } else {
        Err("wrong answer to the challenge (wrong secret, or not a remex client)".into())
    }
}

/// The worker's half of the handshake, asynchronously.
async fn hellos<R, W>(r: &mut R, w: &mut W) -> Result<BytesMut, String>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(4096);
    let mut scan = HandshakeScanner::new(0);
    let hello = loop {
        if let Some(h) = scan.scan(&mut buf).map_err(|e| e.to_string())? {
            break h;
        }
        if r.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("the client closed before its hello".into());
        }
    };
    if hello.role != Role::Controller {
        return Err("the peer is not a remex controller".into());
    }
    crate::serve::apply_setup(&hello.setup.unwrap_or_default())?;
    let out = crate::serve::worker_hello();
    w.write_all(&out).await.map_err(|e| e.to_string())?;
    Ok(buf)
}
