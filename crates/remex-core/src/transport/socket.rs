//! `socket=host:port`: a worker listening on TCP (`remex-worker --listen`).
//!
//! Before the protocol, the client proves a shared secret by challenge and
//! response: the worker sends a random 32-byte challenge, the client
//! answers HMAC-SHA256(secret, challenge), and the worker compares in
//! constant time. The secret never crosses the wire, and comes from an
//! environment variable (`secret_env=NAME`) or a file (`secret_file=PATH`),
//! never from a command line.
//!
//! ```text
//! worker -> client   "REMEX-AUTH1\n" + challenge (32 bytes)
//! client -> worker   HMAC-SHA256(secret, challenge) (32 bytes)
//! worker -> client   (refused: "REMEX-AUTH-REFUSED\n", then close)
//! then the usual handshake and frames
//! ```

use std::time::Duration;

use bytes::BytesMut;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::{exchange_hellos, worker_info, HelloError, HANDSHAKE_TIMEOUT};
use crate::error::{Error, Result};
use crate::spec::Spec;
use crate::wire::WorkerInfo;

/// The worker's greeting before its challenge.
pub const AUTH_GREETING: &[u8] = b"REMEX-AUTH1\n";
/// What the worker says before closing on a failed authentication.
pub const AUTH_REFUSED: &[u8] = b"REMEX-AUTH-REFUSED\n";
/// Length of the challenge and of the answer.
pub const CHALLENGE_LEN: usize = 32;
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// HMAC-SHA256 of `challenge` under `secret`.
pub fn answer(secret: &[u8], challenge: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(challenge);
    mac.finalize().into_bytes().into()
}

/// Whether `response` answers `challenge` under `secret` (constant time).
pub fn verify(secret: &[u8], challenge: &[u8], response: &[u8]) -> bool {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(challenge);
    mac.verify_slice(response).is_ok()
}

fn secret(spec: &Spec) -> Result<Vec<u8>> {
    let start = |detail: String| Error::Start {
        spec: spec.raw.clone(),
        detail,
    };
    if let Some(name) = &spec.secret_env {
        return std::env::var(name)
            .map(String::into_bytes)
            .map_err(|_| start(format!("secret_env={name}: the variable is not set")));
    }
    if let Some(path) = &spec.secret_file {
        let mut bytes =
            std::fs::read(path).map_err(|e| start(format!("secret_file={path}: {e}")))?;
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        return Ok(bytes);
    }
    Err(start(
        "socket= needs secret_env=NAME or secret_file=PATH".into(),
    ))
}

/// A connected and authenticated socket gateway, after the handshake.
pub(crate) struct Connected {
    pub(crate) reader: OwnedReadHalf,
    pub(crate) writer: OwnedWriteHalf,
    pub(crate) leftover: BytesMut,
    pub(crate) info: WorkerInfo,
}

/// Connects to `addr`, authenticates, and runs the handshake.
pub(crate) async fn connect(id: &str, spec: &Spec, addr: &str) -> Result<Connected> {
    let secret = secret(spec)?;
    let unreachable = |message: String| Error::HostUnreachable {
        spec: spec.raw.clone(),
        host: addr.to_string(),
        message,
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| unreachable(format!("no connection within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| unreachable(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (mut r, mut w) = stream.into_split();
    let run = async {
        let mut greeting = vec![0u8; AUTH_GREETING.len() + CHALLENGE_LEN];
        r.read_exact(&mut greeting)
            .await
            .map_err(|e| Error::NotAWorker {
                spec: spec.raw.clone(),
                detail: format!("no remex authentication challenge from {addr}: {e}"),
            })?;
        if &greeting[..AUTH_GREETING.len()] != AUTH_GREETING {
            return Err(Error::NotAWorker {
                spec: spec.raw.clone(),
                detail: format!("{addr} does not speak remex's socket protocol"),
            });
        }
        let response = answer(&secret, &greeting[AUTH_GREETING.len()..]);
        w.write_all(&response)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut buf = BytesMut::new();
        let hello = exchange_hellos(&mut r, &mut w, &mut buf, spec, id)
            .await
            .map_err(|e| match e {
                HelloError::Handshake(h) if h.to_string().contains("REMEX-AUTH-REFUSED") => {
                    Error::AuthRefused {
                        spec: spec.raw.clone(),
                        host: addr.to_string(),
                        message: "the worker refused our secret".into(),
                    }
                }
                HelloError::Handshake(source) => Error::Handshake {
                    spec: spec.raw.clone(),
                    pid: 0,
                    source,
                    detail: String::new(),
                },
                HelloError::Io(e) => unreachable(e.to_string()),
            })?;
        Ok((worker_info(spec, hello)?, buf))
    };
    let (info, leftover) = tokio::time::timeout(HANDSHAKE_TIMEOUT, run)
        .await
        .map_err(|_| Error::Start {
            spec: spec.raw.clone(),
            detail: format!("no handshake from {addr} within {HANDSHAKE_TIMEOUT:?}"),
        })??;
    Ok(Connected {
        reader: r,
        writer: w,
        leftover,
        info,
    })
}
