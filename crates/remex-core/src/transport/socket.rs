//! `socket=host:port`: a worker listening on TCP (`remex-worker --listen`).
//!
//! The session is the Noise session of [`super::secure`]: both sides prove
//! the shared secret, every byte after the handshake is encrypted and
//! integrity-protected, and the keys are fresh for each session. The
//! secret comes from an environment variable (`secret_env=NAME`), a file
//! (`secret_file=PATH`), or from the gateway that installed the listener
//! (`installvia=`), never from a command line. After the secure handshake
//! come the usual hellos and frames, inside the session.

use std::time::Duration;

use bytes::BytesMut;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::secure::{self, HandshakeError, Opener, Sealer, SecureReader, SecureWriter};
use super::{exchange_hellos, worker_info, HelloError};
use crate::error::{Error, Result};
use crate::spec::{Spec, Transport};
use crate::wire::WorkerInfo;

/// How long connecting may take.
///
/// ```
/// assert!(remex::core::transport::socket::CONNECT_TIMEOUT <= std::time::Duration::from_secs(30));
/// ```
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the secure handshake and the hellos may take once connected.
///
/// ```
/// // The handshake and the worker's hello must complete within it.
/// assert_eq!(remex::core::transport::socket::SESSION_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

fn secret(spec: &Spec) -> Result<super::secret::Secret> {
    let start = |detail: String| Error::Start {
        spec: spec.raw.clone(),
        detail,
    };
    if let Some(name) = &spec.secret_env {
        return super::secret::from_env(name, "secret_env").map_err(start);
    }
    if let Some(path) = &spec.secret_file {
        return super::secret::from_file(path, "secret_file").map_err(start);
    }
    Err(start(
        "socket= needs secret_env=NAME or secret_file=PATH (or installvia=ID in a Group)".into(),
    ))
}

/// A connected and authenticated socket gateway, after the handshake.
#[derive(Debug)]
pub(crate) struct Connected {
    pub(crate) parts: DirectParts,
    pub(crate) info: WorkerInfo,
}

/// An established session taken apart for the engine, which reads it
/// directly (`Connection::spawn_direct_secure`).
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use remex::core::transport::{secure, socket::DirectParts};
/// let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let addr = l.local_addr().unwrap();
/// let psk = secure::psk(b"s3cret");
/// let (client, server) = tokio::join!(
///     async {
///         let (mut r, mut w) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
///         let state = secure::initiate(&mut r, &mut w, &psk, secure::Use::Socket).await.unwrap();
///         let (reader, writer) = secure::split(state, r, w, "listener");
///         DirectParts::new(reader, writer, bytes::BytesMut::new()).unwrap()
///     },
///     async {
///         let (s, _) = l.accept().await.unwrap();
///         let (mut r, mut w) = s.into_split();
///         secure::respond(&mut r, &mut w, &psk, secure::Use::Socket).await.unwrap()
///     }
/// );
/// assert!(client.leftover.is_empty());
/// # drop(server);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DirectParts {
    /// The socket, for reading (a duplicate of `writer`'s).
    pub input: std::os::fd::OwnedFd,
    /// The socket, for the writer task and direct writes.
    pub writer: TcpStream,
    /// Plaintext already opened, after the hellos.
    pub leftover: BytesMut,
    /// The receiving record layer.
    pub opener: Opener,
    /// The sending record layer.
    pub sealer: Sealer,
}

impl DirectParts {
    /// Takes apart a session whose hellos were exchanged over `reader`
    /// and `writer` (flushed), with `leftover` the plaintext read after
    /// the peer's hello.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use remex::core::transport::{secure, socket::DirectParts};
    /// let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let addr = l.local_addr().unwrap();
    /// let psk = secure::psk(b"s3cret");
    /// let (client, server) = tokio::join!(
    ///     async {
    ///         let (mut r, mut w) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
    ///         let state = secure::initiate(&mut r, &mut w, &psk, secure::Use::Socket).await.unwrap();
    ///         let (reader, writer) = secure::split(state, r, w, "listener");
    ///         DirectParts::new(reader, writer, bytes::BytesMut::new()).unwrap()
    ///     },
    ///     async {
    ///         let (s, _) = l.accept().await.unwrap();
    ///         let (mut r, mut w) = s.into_split();
    ///         secure::respond(&mut r, &mut w, &psk, secure::Use::Socket).await.unwrap()
    ///     }
    /// );
    /// assert!(client.leftover.is_empty());
    /// # drop(server);
    /// # Ok(()) }
    /// ```
    pub fn new(
        reader: SecureReader<OwnedReadHalf>,
        writer: SecureWriter<OwnedWriteHalf>,
        mut leftover: BytesMut,
    ) -> std::io::Result<DirectParts> {
        let (r, opener, plain) = reader.into_parts();
        let (w, sealer) = writer.into_parts()?;
        leftover.extend_from_slice(&plain);
        let stream = r.reunite(w).map_err(std::io::Error::other)?.into_std()?;
        let input = stream.try_clone()?.into();
        let writer = TcpStream::from_std(stream)?;
        Ok(DirectParts {
            input,
            writer,
            leftover,
            opener,
            sealer,
        })
    }
}

/// Connects to `addr` with the spec's secret, runs the secure handshake
/// and the hellos.
pub(crate) async fn connect(id: &str, spec: &Spec, addr: &str) -> Result<Connected> {
    let secret = secret(spec)?;
    connect_with(id, spec, addr, &secret).await
}

/// A fresh one-time secret: 256 random bits, as hex (for `installvia=`
/// listeners and dial-back workers).
pub(crate) fn fresh_secret() -> std::result::Result<zeroize::Zeroizing<String>, String> {
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::getrandom(&mut raw[..]).map_err(|e| format!("no randomness for a secret: {e}"))?;
    let mut hex = zeroize::Zeroizing::new(String::with_capacity(64));
    for b in raw.iter() {
        use std::fmt::Write;
        let _ = write!(hex, "{b:02x}");
    }
    Ok(hex)
}

/// The gateway whose worker starts the listener of an `installvia=`
/// gateway (a [`Gateway`](crate::Gateway)).
pub(crate) trait Installer {
    /// Its id, for errors.
    fn installer_id(&self) -> &str;
    /// Has its worker start a listening worker bound to `addr` that
    /// admits `secret`; the address it bound.
    fn listen(
        &self,
        addr: &str,
        secret: &str,
    ) -> impl std::future::Future<Output = Result<String>> + Send;
}

/// `installvia=`: `installer`'s worker starts a listening worker bound to
/// the spec's `host:port` (port 0: any free port) with a fresh 256-bit
/// secret handed to it over `installer`'s session; then [`connect_with`]
/// to it, at the spec's host and the port the listener bound.
pub(crate) async fn install(
    id: &str,
    spec: &Spec,
    installer: &impl Installer,
) -> Result<Connected> {
    let start = |detail: String| Error::Start {
        spec: spec.raw.clone(),
        detail,
    };
    let Transport::Socket { addr } = &spec.transport else {
        return Err(start("installvia= applies to socket= only".into()));
    };
    let Some((host, _)) = addr.rsplit_once(':') else {
        return Err(start(format!("socket address {addr:?} needs host:port")));
    };
    if matches!(host, "0.0.0.0" | "[::]" | "::" | "") {
        return Err(start(format!(
            "installvia= binds the listener to {host:?} and connects there: give an address this controller reaches"
        )));
    }
    let secret = fresh_secret().map_err(start)?;
    let via = installer.installer_id();
    let bound = installer
        .listen(addr, secret.as_str())
        .await
        .map_err(|e| start(format!("installvia={via}: {e}")))?;
    let port = bound
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .ok_or_else(|| start(format!("installvia={via}: the listener reported {bound:?}")))?;
    connect_with(id, spec, &format!("{host}:{port}"), secret.as_bytes()).await
}

/// Connections tried when the peer resets one during the handshake.
const HANDSHAKE_ATTEMPTS: u32 = 3;

/// [`connect`] with the secret given (`installvia=`). A connection the
/// peer resets or closes during the handshake is tried again (twice, after
/// 100 and 200 ms): over a real network a new connection can meet what
/// is left of an old one with the same ports on the far side (a host that
/// was cut off still holds it), and the listener resets it.
async fn connect_with(id: &str, spec: &Spec, addr: &str, secret: &[u8]) -> Result<Connected> {
    let mut attempt = 1;
    loop {
        match connect_once(id, spec, addr, secret).await {
            Err((e, true)) if attempt < HANDSHAKE_ATTEMPTS => {
                tracing::debug!(spec = %spec.raw, "{e}: trying a new connection");
                tokio::time::sleep(Duration::from_millis(100) * attempt).await;
                attempt += 1;
            }
            r => return r.map_err(|(e, _)| e),
        }
    }
}

/// Asks the kernel to probe the peer of the TCP connection `stream` when
/// it has been silent for `bound` (`SO_KEEPALIVE`): four probes `bound/4`
/// apart (at least a second), after which the connection fails. A peer's
/// kernel answers them while its host is up, whether the peer's process
/// runs or is stopped; so a worker whose controller paused it
/// ([`crate::pause_workers`]: no message is due, and the liveness bound
/// does not run) still learns, within about twice the bound, that the
/// controller's host died or was cut off. While messages flow (the
/// controller probes every quarter of the bound) no probe is sent.
///
/// ```
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// use std::time::Duration;
/// let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let s = tokio::net::TcpStream::connect(l.local_addr()?).await?;
/// remex::core::transport::socket::keep_alive(&s, Duration::from_secs(10))?;
/// # Ok(()) }
/// ```
pub fn keep_alive(stream: &impl std::os::fd::AsFd, bound: Duration) -> std::io::Result<()> {
    use rustix::net::sockopt;
    let second = Duration::from_secs(1);
    // Whole seconds (the kernel's unit), rounded up.
    let idle = Duration::from_secs(bound.as_secs() + u64::from(bound.subsec_nanos() > 0));
    let fd = stream.as_fd();
    sockopt::set_tcp_keepidle(fd, idle.max(second))?;
    sockopt::set_tcp_keepintvl(fd, (idle / 4).max(second))?;
    sockopt::set_tcp_keepcnt(fd, 4)?;
    sockopt::set_socket_keepalive(fd, true)?;
    Ok(())
}

/// One connection and its handshake; an error says whether a new
/// connection may fare better (the peer reset this one mid-handshake).
async fn connect_once(
    id: &str,
    spec: &Spec,
    addr: &str,
    secret: &[u8],
) -> std::result::Result<Connected, (Error, bool)> {
    let psk = secure::psk(secret);
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            let e = Error::Connect {
                spec: spec.raw.clone(),
                addr: addr.to_string(),
                message: format!("no connection within {CONNECT_TIMEOUT:?}"),
            };
            (e, false)
        })?
        .map_err(|e| {
            let e = Error::Connect {
                spec: spec.raw.clone(),
                addr: addr.to_string(),
                message: e.to_string(),
            };
            (e, false)
        })?;
    let _ = stream.set_nodelay(true);
    let mut retry = false;
    let (mut r, mut w) = stream.into_split();
    let broken = |detail: String| Error::SessionBroken {
        spec: spec.raw.clone(),
        addr: addr.to_string(),
        detail,
    };
    let run = async {
        let state = secure::initiate(&mut r, &mut w, &psk, secure::Use::Socket)
            .await
            .map_err(|e| match e {
                HandshakeError::NotRemex(what) => Error::NotAWorker {
                    spec: spec.raw.clone(),
                    detail: format!("{addr} is not a remex listener: {what}"),
                },
                HandshakeError::Refused => Error::SecretRefused {
                    spec: spec.raw.clone(),
                    addr: addr.to_string(),
                },
                HandshakeError::Unproven => Error::PeerUnauthenticated {
                    spec: spec.raw.clone(),
                    addr: addr.to_string(),
                },
                HandshakeError::Io(e) => {
                    use std::io::ErrorKind::*;
                    retry = matches!(e.kind(), ConnectionReset | BrokenPipe | UnexpectedEof);
                    broken(format!("during the handshake: {e}"))
                }
            })?;
        let (mut r, mut w) = secure::split(state, r, w, addr);
        let mut buf = BytesMut::new();
        let hello = exchange_hellos(&mut r, &mut w, &mut buf, spec, id)
            .await
            .map_err(|e| match e {
                HelloError::Handshake(h) => broken(format!("the worker's hello: {h}")),
                HelloError::Io(e) => broken(e.to_string()),
            })?;
        Ok::<_, Error>((worker_info(spec, hello)?, buf, r, w))
    };
    let ran = tokio::time::timeout(SESSION_TIMEOUT, run)
        .await
        .map_err(|_| broken(format!("no secure session within {SESSION_TIMEOUT:?} of connecting (is {addr} a remex listener?)")));
    let (info, leftover, reader, writer) = match ran {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return Err((e, retry)),
        Err(e) => return Err((e, false)),
    };
    let parts = DirectParts::new(reader, writer, leftover)
        .map_err(|e| (broken(format!("taking over the session: {e}")), false))?;
    Ok(Connected { parts, info })
}
