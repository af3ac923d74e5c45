//! The connection engine: one byte stream, many channels.
//!
//! Both ends of a gateway run one: the controller and the worker are
//! symmetric at this level. A reader decodes messages and dispatches them
//! to channel states: a reader task, or, on connections over a raw fd, the
//! thread or task that waits for input (`direct`). Senders append encoded
//! frames to a shared output buffer: a sender answering input writes its
//! frame at once, and one writer task drains the rest in large writes, so
//! that many small messages cost one system call.
//!
//! Flow control: each channel starts with `window` bytes of send credit; a
//! sender waits while its credit is used up, and the receiver returns credit
//! as the application consumes items. A receiver that does not read therefore
//! holds at most `window` bytes plus one message per channel.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use std::os::fd::{AsFd, OwnedFd};

use bytes::{Buf, Bytes, BytesMut};
use event_listener::Event;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, Notify};

use crate::channel::Channel;
use crate::error::{Error, RemoteError, Result};
use crate::transport::secure::{Opener, SealKeys, Sealer};
use crate::value::Value;
use crate::wire::{self, ExecRequest, Kind, Message, MessageDecoder, RemoteStatus, WireError};

mod chan;
#[cfg(all(target_os = "linux", not(feature = "portable")))]
mod direct;
#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
#[path = "fallback.rs"]
mod direct;
mod machine;
mod spin;
mod table;

pub use chan::Sink;
pub(crate) use chan::{ChanState, Step, Terminal};
pub(crate) use spin::Quick;
pub use spin::{BUSY_POLL_ENV, SPIN};
use table::{ChanTable, Lookup};

/// Default per-channel flow-control window: 4 MiB.
///
/// ```
/// assert_eq!(remex::core::conn::DEFAULT_WINDOW, 4 << 20);
/// ```
pub const DEFAULT_WINDOW: u32 = 4 << 20;
/// Default bound on one chunked message being reassembled: 1 GiB.
///
/// ```
/// assert_eq!(remex::core::conn::DEFAULT_MAX_MESSAGE, 1 << 30);
/// ```
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 30;

/// Settings of one connection.
///
/// ```
/// let mut config = remex::core::ConnConfig::new("gw1", 1);
/// config.window = 1 << 20; // a smaller flow-control window
/// assert_eq!(config.first_id, 1);
/// ```
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// The gateway id used in errors and logs.
    pub name: String,
    /// The peer's pid, for errors.
    pub peer_pid: u32,
    /// The first channel id this side allocates (odd for the controller,
    /// even for the worker); ids advance by two.
    pub first_id: u32,
    /// Largest frame payload sent and accepted.
    pub max_payload: usize,
    /// Largest chunked message accepted.
    pub max_message: usize,
    /// Per-channel flow-control window in bytes.
    pub window: u32,
}

impl ConnConfig {
    /// Defaults for a side named `name`, allocating ids from `first_id`.
    ///
    /// ```
    /// let config = remex::core::ConnConfig::new("worker", 2);
    /// assert_eq!((config.name.as_str(), config.first_id), ("worker", 2));
    /// ```
    pub fn new(name: impl Into<String>, first_id: u32) -> Self {
        ConnConfig {
            name: name.into(),
            peer_pid: 0,
            first_id,
            max_payload: wire::DEFAULT_MAX_PAYLOAD,
            max_message: DEFAULT_MAX_MESSAGE,
            window: DEFAULT_WINDOW,
        }
    }
}

/// Called for every `Exec` message with the new channel.
///
/// ```
/// use std::sync::Arc;
/// let handler: remex::core::conn::ExecHandler = Arc::new(|ch, _request| ch.close(None));
/// let handlers = remex::core::Handlers { exec: Some(handler), ..Default::default() };
/// assert!(handlers.exec.is_some());
/// ```
pub type ExecHandler = Arc<dyn Fn(Channel, ExecRequest) + Send + Sync>;
/// A channel callback.
#[derive(Clone)]
pub(crate) enum Callback {
    /// Runs on the reader; the item counts as consumed when it returns.
    Inline(Arc<dyn Fn(Value) + Send + Sync>),
    /// Hands the item (and its wire size) elsewhere; whoever handles it
    /// returns the credit with `ChanState::consumed`.
    Deferred(Arc<dyn Fn(Value, usize) + Send + Sync>),
}

impl Callback {
    /// Delivers one item; `true` if it counts as consumed now.
    fn call(&self, value: Value, size: usize) -> bool {
        match self {
            Callback::Inline(f) => {
                f(value);
                true
            }
            Callback::Deferred(f) => {
                f(value, size);
                false
            }
        }
    }
}

#[derive(Default)]
struct OutBuf {
    /// Output that leaves before `buf`: frames up to a large payload, and
    /// the payload itself, shared with the sender's `Bytes` (no copy).
    segments: VecDeque<Bytes>,
    buf: BytesMut,
    /// The record layer of an encrypted stream (`socket=`): `buf` leaves
    /// through it. Nonces are taken here, under this lock, in the order
    /// the bytes reach the stream.
    sealer: Option<Sealer>,
    /// Records sealed for a direct write that the fd did not take whole;
    /// they leave before anything else.
    sealed: BytesMut,
    closing: bool,
    /// The writer task holds bytes taken from `buf` that it has not yet
    /// written; a direct write now would overtake them.
    writer_busy: bool,
    /// A duplicate of the writer's fd (the engine's own, so it can never
    /// name a file that reuses a closed number), which senders write to
    /// directly while the writer is idle, saving a thread wake-up per
    /// message; closed (under this lock) when the writer task ends, so the
    /// peer sees the end of the stream.
    direct_out: Option<OwnedFd>,
    /// When the last direct write happened: under a steady stream of
    /// messages, direct writes would cost a system call (and a wake-up of
    /// the peer) per message, so they are kept for traffic with pauses.
    last_direct: Option<std::time::Instant>,
}

/// Messages closer together than this go through the writer task, which
/// sends them in batches; sparser ones are written at once by the sender.
const DIRECT_GAP: std::time::Duration = std::time::Duration::from_micros(20);

impl OutBuf {
    /// The output of a connection whose senders may write to `writer`'s
    /// fd directly (through the engine's own duplicate), sealing with
    /// `sealer` if the stream is an encrypted session.
    fn direct(writer: &impl AsFd, sealer: Option<Sealer>) -> std::io::Result<OutBuf> {
        Ok(OutBuf {
            sealer,
            direct_out: Some(writer.as_fd().try_clone_to_owned()?),
            ..OutBuf::default()
        })
    }

    /// Writes as much of `buf` as the fd takes now, without blocking.
    /// `answering`: input arrived since the last write, so a small frame is
    /// likely a reply in a request-reply exchange, which batching would
    /// only delay. (Bulk items keep the writer task, which writes while the
    /// sender prepares the next one.)
    /// Returns whether the writer task still has work.
    fn try_direct(&mut self, answering: bool) -> bool {
        let Some(fd) = self.direct_out.as_ref() else {
            return true;
        };
        if self.writer_busy || !self.segments.is_empty() {
            return true;
        }
        let now = std::time::Instant::now();
        let recent = !(answering && self.buf.len() <= 16 * 1024)
            && self
                .last_direct
                .is_some_and(|t| now.duration_since(t) < DIRECT_GAP);
        self.last_direct = Some(now);
        if recent {
            return true;
        }
        if let Some(sealer) = &mut self.sealer {
            if sealer.seal(&self.buf, &mut self.sealed).is_err() {
                // Nonces ran out: the writer task meets the same error.
                return true;
            }
            self.buf.clear();
        }
        let out = if self.sealer.is_some() {
            &mut self.sealed
        } else {
            &mut self.buf
        };
        while !out.is_empty() {
            match rustix::io::write(fd, out) {
                Ok(n) => out.advance(n),
                Err(rustix::io::Errno::INTR) => continue,
                // WouldBlock: the writer task will wait for the fd to be
                // writable. A broken stream: the writer task meets the same
                // error and ends the connection.
                Err(_) => return true,
            }
        }
        false
    }

    /// Whether nothing waits to be written.
    fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.sealed.is_empty() && self.segments.is_empty()
    }
}

pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) peer_pid: AtomicU32,
    /// The channels by id (live ones, and ended ones a handle still
    /// holds, so that a reference sent back reaches the same channel).
    chans: Mutex<ChanTable<ChanState>>,
    /// This side is a worker (its ids are even): a lost peer is the
    /// controller going away.
    worker_side: bool,
    out: Mutex<OutBuf>,
    out_ready: Notify,
    max_payload: usize,
    window: u32,
    lost: Mutex<Option<Error>>,
    lost_event: Event,
    writer_done: Event,
    writer_finished: std::sync::atomic::AtomicBool,
    status_waiters: Mutex<HashMap<u32, oneshot::Sender<RemoteStatus>>>,
    exec_handler: Mutex<Option<ExecHandler>>,
    terminate_handler: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
    pub(crate) executing: AtomicU64,
    /// What every channel handle keeps alive (the gateway): a channel in
    /// use keeps its worker running, as in execnet.
    keepalive: Mutex<Option<std::sync::Weak<dyn std::any::Any + Send + Sync>>>,
    /// Input arrived since the last write (see `OutBuf::try_direct`).
    input_seen: std::sync::atomic::AtomicBool,
    /// Set when waiting threads read the input themselves
    /// ([`Connection::spawn_direct`]).
    direct: Option<direct::DirectReader>,
}

/// What a connection does with requests from its peer. Set before the
/// reader starts, so that no request can arrive unhandled.
///
/// ```
/// let handlers = remex::core::Handlers::default();
/// // Without an exec handler, requests from the peer are refused.
/// assert!(handlers.exec.is_none());
/// ```
#[derive(Default, Clone)]
pub struct Handlers {
    /// Runs `Exec` requests (the worker's side); without one, they are
    /// refused with an error.
    pub exec: Option<ExecHandler>,
    /// Runs when the peer sends `Terminate`.
    pub terminate: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Explains an end of stream (e.g. with the worker's exit status); the
    /// connection's channels end with this reason.
    pub eof_reason: Option<EofReason>,
}

/// Produces the reason reported when the peer's stream ends.
///
/// ```
/// use std::sync::Arc;
/// use futures::FutureExt;
/// let why: remex::core::conn::EofReason = Arc::new(|| async { "the worker exited".to_string() }.boxed());
/// let handlers = remex::core::Handlers { eof_reason: Some(why), ..Default::default() };
/// assert!(handlers.eof_reason.is_some());
/// ```
pub type EofReason = Arc<dyn Fn() -> futures::future::BoxFuture<'static, String> + Send + Sync>;

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers")
            .field("exec", &self.exec.is_some())
            .field("terminate", &self.terminate.is_some())
            .field("eof_reason", &self.eof_reason.is_some())
            .finish()
    }
}

/// One end of a connection. Cheap to clone.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// # use std::sync::Arc;
/// # use remex::core::conn::{ConnConfig, Connection, Handlers};
/// # let (a, b) = tokio::io::duplex(1 << 16);
/// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
/// # // The worker's side answers every request with "ran" and closes.
/// # let handlers = Handlers {
/// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
/// #         tokio::spawn(async move {
/// #             let _ = ch.send(&"ran").await;
/// #             ch.close(None);
/// #         });
/// #     })),
/// #     ..Handlers::default()
/// # };
/// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
/// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
/// let ch = conn.exec(remex::core::ExecRequest::Script { source: "anything".into(), args: remex::Value::Unit })?;
/// assert_eq!(ch.receive::<String>().await?, "ran");
/// # drop(worker);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Connection {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("name", &self.shared.name)
            .field("channels", &self.shared.chans.lock().len())
            .finish()
    }
}

impl Connection {
    /// Starts the reader and writer tasks on the current tokio runtime.
    /// `leftover` holds bytes already read past the handshake.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// // (set up above: `conn` and `worker` joined by an in-memory pipe)
    /// let ch = conn.exec(remex::core::ExecRequest::Call { name: "t".into(), args: remex::Value::Unit })?;
    /// assert_eq!(ch.receive::<String>().await?, "ran");
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn spawn<R, W>(
        config: ConnConfig,
        handlers: Handlers,
        reader: R,
        writer: W,
        leftover: BytesMut,
    ) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        Connection::spawn_with(
            config,
            handlers,
            reader,
            writer,
            leftover,
            OutBuf::default(),
        )
    }

    /// [`Connection::spawn`] with the output set up (a sealer, a direct
    /// fd) before any task runs: nothing can leave before it.
    fn spawn_with<R, W>(
        config: ConnConfig,
        handlers: Handlers,
        reader: R,
        writer: W,
        leftover: BytesMut,
        out: OutBuf,
    ) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let decoder = MessageDecoder::new(config.max_payload, config.max_message);
        let eof_reason = handlers.eof_reason.clone();
        let shared = Shared::new(config, handlers, None, out);
        tokio::spawn(read_loop(
            shared.clone(),
            reader,
            leftover,
            decoder,
            eof_reason,
        ));
        tokio::spawn(write_loop(shared.clone(), writer));
        Connection { shared }
    }

    /// As [`Connection::spawn`], but the input is the raw fd `input` (made
    /// non-blocking), and a thread that waits on a channel with a
    /// `*_blocking` call reads it itself while nobody else does, so that its
    /// item needs no hand-off from a reader; a task awaiting the answer of a
    /// request-reply exchange polls it for a while. A background task reads
    /// the rest of the time. Workers and process gateways (popen, ssh, cmd)
    /// run this way; the module `direct` tells how.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// // What a popen gateway does with its worker's pipes:
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.connection().exec(remex::core::ExecRequest::Script { source: "channel.send(1)".into(), args: remex::Value::Unit })?;
    /// assert_eq!(ch.receive::<i64>().await?, 1);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn spawn_direct<W>(
        config: ConnConfig,
        handlers: Handlers,
        input: std::os::fd::OwnedFd,
        writer: W,
        leftover: BytesMut,
    ) -> std::io::Result<Connection>
    where
        W: AsyncWrite + AsFd + Unpin + Send + 'static,
    {
        Connection::spawn_direct_inner(config, handlers, input, writer, leftover, None)
    }

    /// As [`Connection::spawn_direct`], over an encrypted session
    /// (`socket=`): `input` and `writer` carry records of
    /// `remex::core::transport::secure`, opened by `opener` and sealed by
    /// `sealer` (taken over from the session's handshake); `leftover` is
    /// plaintext already opened.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// // What a socket= gateway runs on: a listener, then the session.
    /// let installer = remex::makegateway("popen").await?;
    /// let spec = remex::Spec::parse(&format!("socket=127.0.0.1:0//installvia={}", installer.id()))?;
    /// let gw = remex::Gateway::start_installvia(spec, None, &installer).await?;
    /// let ch = gw.connection().exec(remex::core::ExecRequest::Script { source: "channel.send(2)".into(), args: remex::Value::Unit })?;
    /// assert_eq!(ch.receive::<i64>().await?, 2);
    /// gw.exit().await?;
    /// installer.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn spawn_direct_secure<W>(
        config: ConnConfig,
        handlers: Handlers,
        input: std::os::fd::OwnedFd,
        writer: W,
        leftover: BytesMut,
        opener: Opener,
        sealer: Sealer,
    ) -> std::io::Result<Connection>
    where
        W: AsyncWrite + AsFd + Unpin + Send + 'static,
    {
        Connection::spawn_direct_inner(
            config,
            handlers,
            input,
            writer,
            leftover,
            Some((opener, sealer)),
        )
    }

    /// Where the direct reader is built (Linux, without the `portable`
    /// feature), it reads `input`; elsewhere a reader task does (through
    /// the session's records, if any). Senders write directly either way.
    fn spawn_direct_inner<W>(
        config: ConnConfig,
        handlers: Handlers,
        input: std::os::fd::OwnedFd,
        writer: W,
        leftover: BytesMut,
        records: Option<(Opener, Sealer)>,
    ) -> std::io::Result<Connection>
    where
        W: AsyncWrite + AsFd + Unpin + Send + 'static,
    {
        let (opener, sealer) = records.unzip();
        let out = OutBuf::direct(&writer, sealer)?;
        #[cfg(all(target_os = "linux", not(feature = "portable")))]
        {
            let decoder = MessageDecoder::new(config.max_payload, config.max_message);
            let eof_reason = handlers.eof_reason.clone();
            let reader = direct::DirectReader::new(input, leftover, decoder, opener)?;
            let shared = Shared::new(config, handlers, Some(reader), out);
            direct::start(shared.clone(), eof_reason)?;
            tokio::spawn(write_loop(shared.clone(), writer));
            Ok(Connection { shared })
        }
        #[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
        {
            let input = direct::async_input(input)?;
            Ok(match opener {
                Some(o) => {
                    let reader = crate::transport::secure::SecureReader::from_parts(input, o);
                    Connection::spawn_with(config, handlers, reader, writer, leftover, out)
                }
                None => Connection::spawn_with(config, handlers, input, writer, leftover, out),
            })
        }
    }

    /// The name (gateway id) of this connection.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// assert_eq!(conn.name(), "gw");
    /// assert_eq!(worker.name(), "worker");
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Makes every channel handle of this connection keep `owner` alive.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// let owner: Arc<dyn std::any::Any + Send + Sync> = Arc::new("the gateway");
    /// conn.set_keepalive(Arc::downgrade(&owner));
    /// // Channels of `conn` now keep `owner` alive while they live.
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn set_keepalive(&self, owner: std::sync::Weak<dyn std::any::Any + Send + Sync>) {
        *self.shared.keepalive.lock() = Some(owner);
    }

    /// Counts a running script or task for status replies; the count drops
    /// when the guard does.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// // A worker counts what it runs: a status request reports it.
    /// let guard = worker.executing_guard();
    /// assert_eq!(conn.status().await?.numexecuting, 1);
    /// drop(guard);
    /// assert_eq!(conn.status().await?.numexecuting, 0);
    /// # Ok(()) }
    /// ```
    pub fn executing_guard(&self) -> ExecutingGuard {
        self.shared.executing.fetch_add(1, Ordering::Relaxed);
        ExecutingGuard(self.shared.clone())
    }

    /// Opens a new channel that the peer learns of when it is sent inside a
    /// value.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// let ch = conn.newchannel();
    /// assert_eq!(ch.id() % 2, 1, "the side with first id 1 allocates odd ids");
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn newchannel(&self) -> Channel {
        let st = self.shared.new_chan();
        Channel::from_state(self.shared.clone(), st)
    }

    /// A channel that exists on this side only: the peer never hears of it,
    /// sending on it is an error, and closing it sends nothing. Tasks run
    /// through a task lane get one, so that cancelling them can close it.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// let ch = conn.detached_channel();
    /// assert_eq!(ch.gateway_id(), "gw");
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn detached_channel(&self) -> Channel {
        self.local(None)
    }

    /// A channel on this side only whose items go to `sink`: what is sent
    /// on it is handed to `sink` in order, on the sender's thread (a sink
    /// may block, to bound what it holds; its error is the send's). The
    /// peer never hears of it. Scripts run a worker's tasks this way.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # let (a, _b) = tokio::io::duplex(1 << 16);
    /// # let (ar, aw) = tokio::io::split(a);
    /// use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// use std::sync::{Arc, Mutex};
    /// let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// let got = Arc::new(Mutex::new(Vec::new()));
    /// let g = got.clone();
    /// let ch = conn.local_channel(Arc::new(move |v: remex::Value| {
    ///     g.lock().unwrap().push(v);
    ///     Ok(())
    /// }));
    /// ch.send(&1).await?;
    /// ch.send_blocking(&"two")?;
    /// assert_eq!(*got.lock().unwrap(), vec![remex::Value::Int(1), remex::Value::from("two")]);
    /// # Ok(()) }
    /// ```
    pub fn local_channel(&self, sink: Sink) -> Channel {
        self.local(Some(sink))
    }

    fn local(&self, sink: Option<Sink>) -> Channel {
        let id = self.shared.chans.lock().allocate();
        let st = Arc::new(ChanState::local(id, self.shared.window, sink));
        Channel::from_state(self.shared.clone(), st)
    }

    /// Opens a channel whose reference arrived inside a value.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// let ch = conn.newchannel();
    /// assert_eq!(conn.attach(ch.handle()).id(), ch.id());
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn attach(&self, r: crate::value::ChannelRef) -> Channel {
        let st = self.shared.chan_for_ref(r.0);
        Channel::from_state(self.shared.clone(), st)
    }

    /// Asks the peer to run `request`, returning the channel it runs with.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// let ch = conn.exec(remex::core::ExecRequest::Script { source: "x".into(), args: remex::Value::Unit })?;
    /// assert_eq!(ch.receive::<String>().await?, "ran");
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn exec(&self, request: ExecRequest) -> Result<Channel> {
        let st = self.shared.new_chan();
        let id = st.id;
        let ch = Channel::from_state(self.shared.clone(), st);
        self.shared.push(&Message::Exec {
            channel: id,
            request,
        })?;
        Ok(ch)
    }

    /// Asks the peer for its status.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// let status = conn.status().await?;
    /// assert_eq!(status.numexecuting, 0);
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub async fn status(&self) -> Result<RemoteStatus> {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.shared.status_waiters.lock().insert(id, tx);
        if let Err(e) = self.shared.push(&Message::StatusRequest { id }) {
            self.shared.status_waiters.lock().remove(&id);
            return Err(e);
        }
        rx.await.map_err(|_| self.shared.lost_error())
    }

    /// Asks the peer to end (sends `Terminate`).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// // The worker side runs its terminate handler (none here).
    /// conn.send_terminate()?;
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn send_terminate(&self) -> Result<()> {
        self.shared.push(&Message::Terminate)
    }

    /// Channels open on this side.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// let ch = conn.newchannel();
    /// assert_eq!(conn.numchannels(), 1);
    /// ch.close(None);
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn numchannels(&self) -> usize {
        self.shared.chans.lock().len()
    }

    /// Stops sending: the writer flushes what is queued, then closes the
    /// stream (the peer sees end-of-file).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// conn.close_output();
    /// // The other side sees the end of its stream.
    /// let why = worker.closed().await;
    /// assert!(why.to_string().contains("controller went away"), "{why}");
    /// # Ok(()) }
    /// ```
    pub fn close_output(&self) {
        self.shared.out.lock().closing = true;
        self.shared.out_ready.notify_one();
    }

    /// Waits until the writer has flushed everything and closed the stream
    /// (after [`Connection::close_output`]) or failed.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// let ch = conn.newchannel();
    /// ch.send(&1).await?;
    /// conn.close_output();
    /// conn.flushed().await; // the item, then the end, reached the stream
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub async fn flushed(&self) {
        // No timeout: the writer finishes once its stream takes the rest
        // or fails (a bound is the caller's, as in `Gateway::exit_within`).
        let s = &self.shared;
        remex_sync::wait::until(
            None,
            || s.writer_finished.load(Ordering::Acquire).then_some(()),
            || s.writer_done.listen(),
        )
        .await;
    }

    /// The error that ended the connection, if it has ended. A connection
    /// whose output already failed or is closing counts as ended, even
    /// before its reader has seen the end of the stream.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// assert!(conn.lost().is_none());
    /// worker.close_output(); // the peer's stream ends
    /// conn.closed().await;
    /// assert!(conn.lost().is_some());
    /// # Ok(()) }
    /// ```
    pub fn lost(&self) -> Option<Error> {
        if let Some(e) = self.shared.lost.lock().clone() {
            return Some(e);
        }
        if self.shared.out.lock().closing {
            return Some(self.shared.lost_error());
        }
        None
    }

    /// Waits until the connection ends, returning why.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// worker.close_output();
    /// let why: remex::Error = conn.closed().await;
    /// assert!(matches!(why, remex::Error::GatewayLost { .. }), "{why}");
    /// # Ok(()) }
    /// ```
    pub async fn closed(&self) -> Error {
        // No timeout: a connection lasts as long as its peer; callers bound
        // the wait where they need to (`Gateway::join`).
        let s = &self.shared;
        let lost =
            remex_sync::wait::until(None, || s.lost.lock().clone(), || s.lost_event.listen());
        lost.await.unwrap_or_else(|| s.lost_error())
    }

    /// Marks the connection as ended for `reason`: every open channel gets
    /// its end (and endmarker) with that error.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// conn.set_lost(remex::Error::GatewayLost { gateway: "gw".into(), pid: 7, reason: "told so".into() });
    /// assert!(conn.lost().unwrap().to_string().contains("told so"));
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn set_lost(&self, reason: Error) {
        self.shared.set_lost(reason);
    }

    /// Sets the peer's pid (known after the handshake), for error messages.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use std::sync::Arc;
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # // The worker's side answers every request with "ran" and closes.
    /// # let handlers = Handlers {
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// conn.set_peer_pid(1234);
    /// conn.set_lost(remex::Error::GatewayLost { gateway: "gw".into(), pid: 1234, reason: "gone".into() });
    /// assert!(conn.lost().unwrap().to_string().contains("pid 1234"));
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn set_peer_pid(&self, pid: u32) {
        self.shared.peer_pid.store(pid, Ordering::Relaxed);
    }
}

/// Keeps a script or task counted as executing.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// # use std::sync::Arc;
/// # use remex::core::conn::{ConnConfig, Connection, Handlers};
/// # let (a, b) = tokio::io::duplex(1 << 16);
/// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
/// # // The worker's side answers every request with "ran" and closes.
/// # let handlers = Handlers {
/// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::ExecRequest| {
/// #         tokio::spawn(async move {
/// #             let _ = ch.send(&"ran").await;
/// #             ch.close(None);
/// #         });
/// #     })),
/// #     ..Handlers::default()
/// # };
/// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
/// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
/// let guard: remex::core::conn::ExecutingGuard = worker.executing_guard();
/// assert_eq!(conn.status().await?.numexecuting, 1);
/// drop(guard);
/// # Ok(()) }
/// ```
#[must_use]
pub struct ExecutingGuard(Arc<Shared>);

impl std::fmt::Debug for ExecutingGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExecutingGuard")
    }
}

impl Drop for ExecutingGuard {
    fn drop(&mut self) {
        self.0.executing.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decodes and dispatches every whole message in `buf`. Returns false if
/// the stream is broken (the connection is then lost, with the reason).
fn drain(shared: &Arc<Shared>, dec: &mut MessageDecoder, buf: &mut BytesMut) -> bool {
    if !buf.is_empty() {
        shared.input_seen.store(true, Ordering::Relaxed);
    }
    loop {
        match dec.decode(buf) {
            Ok(Some(msg)) => shared.dispatch(msg),
            Ok(None) => return true,
            // The frame was whole, only its payload was bad: the stream is
            // still in step, so only that channel fails.
            Err(WireError::BadPayload {
                kind: kind @ (Kind::Exec | Kind::Data),
                channel,
                detail,
            }) => shared.bad_payload(kind, channel, detail),
            Err(source) => {
                shared.set_lost(Error::Protocol {
                    gateway: shared.name.clone(),
                    source,
                });
                return false;
            }
        }
    }
}

/// The reason reported when the input ends (from `eof_reason` if given),
/// and whether the stream was cut in the middle of a frame (`cut` bytes of
/// it arrived).
async fn end_of_input(eof_reason: &Option<EofReason>, cut: usize) -> String {
    let why = match eof_reason {
        Some(f) => f().await,
        None => "the connection closed".to_string(),
    };
    if cut == 0 {
        why
    } else {
        format!("{why}, in the middle of a frame ({cut} bytes of it arrived)")
    }
}

/// Makes room in a read buffer for the next `read`.
fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 16 * 1024 {
        buf.reserve(256 * 1024);
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    mut r: R,
    mut buf: BytesMut,
    mut dec: MessageDecoder,
    eof_reason: Option<EofReason>,
) {
    let reason = loop {
        if !drain(&shared, &mut dec, &mut buf) {
            return;
        }
        make_room(&mut buf);
        match r.read_buf(&mut buf).await {
            Ok(0) => break end_of_input(&eof_reason, buf.len()).await,
            Ok(_) => {}
            Err(e) => break format!("reading failed: {e}"),
        }
    };
    shared.stream_lost(reason);
}

/// Payloads at least this large leave from the sender's own buffer
/// instead of being copied into the output buffer.
const ZERO_COPY_MIN: usize = 32 * 1024;

/// The writer keeps a sealing buffer up to this size between rounds.
const SEAL_BUF_KEPT: usize = 4 << 20;

/// What the writer task takes from the output buffer at once: segments
/// in stream order.
enum Chunk {
    /// Bytes to write as they are.
    Plain(Vec<Bytes>),
    /// Records already sealed, then plaintext segments to seal with the
    /// nonces reserved from `first` on.
    Sealed {
        sealed: BytesMut,
        plain: Vec<Bytes>,
        keys: SealKeys,
        first: u64,
    },
}

/// Writes `segments` whole, with vectored writes.
async fn write_segments<W: AsyncWrite + Unpin>(
    w: &mut W,
    segments: &mut [Bytes],
) -> std::io::Result<()> {
    let mut at = 0;
    while at < segments.len() {
        let slices: Vec<std::io::IoSlice<'_>> = segments[at..]
            .iter()
            .take(64)
            .map(|b| std::io::IoSlice::new(b))
            .collect();
        let mut n = w.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let first = &mut segments[at];
            if n >= first.len() {
                n -= first.len();
                at += 1;
            } else {
                first.advance(n);
                n = 0;
            }
        }
        while at < segments.len() && segments[at].is_empty() {
            at += 1;
        }
    }
    Ok(())
}

async fn write_loop<W: AsyncWrite + Unpin>(shared: Arc<Shared>, mut w: W) {
    let mut out: Vec<u8> = Vec::new();
    loop {
        let chunk = {
            let mut guard = shared.out.lock();
            let o = &mut *guard;
            if o.is_empty() {
                o.writer_busy = false;
                if o.closing {
                    break;
                }
                None
            } else {
                o.writer_busy = true;
                let mut plain: Vec<Bytes> = o.segments.drain(..).collect();
                if !o.buf.is_empty() {
                    plain.push(o.buf.split().freeze());
                }
                Some(match o.sealer.as_mut() {
                    None => Chunk::Plain(plain),
                    Some(sealer) => {
                        let first = sealer.reserve_segments(&plain);
                        Chunk::Sealed {
                            sealed: o.sealed.split(),
                            plain,
                            keys: sealer.keys(),
                            first,
                        }
                    }
                })
            }
        };
        let written = match chunk {
            Some(Chunk::Plain(mut segments)) => write_segments(&mut w, &mut segments).await,
            Some(Chunk::Sealed {
                sealed,
                plain,
                keys,
                first,
            }) => {
                // Sealed outside the lock: senders go on meanwhile. The
                // writer is busy, so nothing overtakes these records.
                // `out` keeps its length between rounds: sealing
                // overwrites it, so it is zeroed only when it grows.
                let need = sealed.len()
                    + plain
                        .iter()
                        .map(|p| SealKeys::sealed_len(p.len()))
                        .sum::<usize>();
                if out.len() < need {
                    out.resize(need, 0);
                }
                out[..sealed.len()].copy_from_slice(&sealed);
                let (mut used, mut nonce) = (sealed.len(), first);
                let mut result = Ok(());
                for seg in &plain {
                    match keys.seal_into(nonce, seg, &mut out[used..]) {
                        Ok(n) => used += n,
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                    nonce += Sealer::records_for(seg.len());
                }
                let r = match result {
                    Ok(()) => w.write_all(&out[..used]).await,
                    Err(e) => Err(e),
                };
                if out.len() > SEAL_BUF_KEPT {
                    out = Vec::new();
                }
                r
            }
            None => {
                if let Err(e) = w.flush().await {
                    tracing::debug!(gateway = %shared.name, "flush failed: {e}");
                    break;
                }
                shared.out_ready.notified().await;
                continue;
            }
        };
        if let Err(e) = written {
            tracing::debug!(gateway = %shared.name, "write failed: {e}");
            let mut o = shared.out.lock();
            o.closing = true;
            o.buf.clear();
            o.sealed.clear();
            o.segments.clear();
            break;
        }
    }
    shared.out.lock().direct_out = None;
    let _ = w.shutdown().await;
    shared.writer_finished.store(true, Ordering::Release);
    shared.writer_done.notify(usize::MAX);
}

impl Shared {
    fn new(
        config: ConnConfig,
        handlers: Handlers,
        direct: Option<direct::DirectReader>,
        out: OutBuf,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            name: config.name,
            peer_pid: AtomicU32::new(config.peer_pid),
            chans: Mutex::new(ChanTable::new(config.first_id)),
            worker_side: config.first_id % 2 == 0,
            out: Mutex::new(out),
            out_ready: Notify::new(),
            max_payload: config.max_payload,
            window: config.window,
            lost: Mutex::new(None),
            lost_event: Event::new(),
            writer_done: Event::new(),
            writer_finished: Default::default(),
            status_waiters: Mutex::new(HashMap::new()),
            exec_handler: Mutex::new(handlers.exec),
            terminate_handler: Mutex::new(handlers.terminate),
            executing: AtomicU64::new(0),
            keepalive: Mutex::new(None),
            input_seen: Default::default(),
            direct,
        })
    }

    /// A local change (a close, a callback set) may end the wait of a
    /// thread reading the input directly: it looks again.
    pub(crate) fn kick_readers(&self) {
        if let Some(d) = &self.direct {
            d.kick();
        }
    }

    pub(crate) fn keepalive(&self) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        self.keepalive.lock().as_ref().and_then(|w| w.upgrade())
    }

    pub(crate) fn lost_error(&self) -> Error {
        self.lost
            .lock()
            .clone()
            .unwrap_or_else(|| self.lost_with("the connection is closing".into()))
    }

    /// The error for a lost peer: on a controller, its gateway lost the
    /// worker; on a worker (ids from an even first id), the controller
    /// went away.
    fn lost_with(&self, reason: String) -> Error {
        if self.worker_side {
            Error::ControllerLost { reason }
        } else {
            Error::GatewayLost {
                gateway: self.name.clone(),
                pid: self.peer_pid.load(Ordering::Relaxed),
                reason,
            }
        }
    }

    fn new_chan(&self) -> Arc<ChanState> {
        let st = {
            let mut chans = self.chans.lock();
            let id = chans.allocate();
            let st = Arc::new(ChanState::new(id, self.window));
            chans.insert(id, st.clone());
            st
        };
        if self.lost.lock().is_some() {
            st.remote_closed(self, Terminal::Failed(self.lost_error()), true);
        }
        st
    }

    /// The channel a reference names: a live one, an ended one a handle
    /// still holds (the same channel, reporting its end), an ended one of
    /// ours nobody holds (a fresh handle that reports the end at once), or
    /// a new one the peer opened.
    pub(crate) fn chan_for_ref(&self, id: u32) -> Arc<ChanState> {
        let mut chans = self.chans.lock();
        match chans.lookup(id) {
            Lookup::Known(st) => st,
            Lookup::EndedOurs => Arc::new(ChanState::ended(id, self.window)),
            Lookup::Peers => {
                let st = Arc::new(ChanState::new(id, self.window));
                chans.insert(id, st.clone());
                st
            }
        }
    }

    fn get(&self, id: u32) -> Option<Arc<ChanState>> {
        self.chans.lock().get(id)
    }

    pub(crate) fn remove(&self, id: u32) {
        self.chans.lock().remove(id);
    }

    /// Encodes and queues one message for the writer.
    pub(crate) fn push(&self, msg: &Message) -> Result<()> {
        self.queue(|o| {
            wire::encode_message(msg, self.max_payload, &mut o.buf).map_err(|source| {
                Error::Protocol {
                    gateway: self.name.clone(),
                    source,
                }
            })?;
            Ok(o.try_direct(self.input_seen.swap(false, Ordering::Relaxed)))
        })
    }

    /// Queues an already-encoded data payload. A large one is not copied:
    /// it leaves from `payload`'s own buffer.
    pub(crate) fn push_data(&self, channel: u32, kind: Kind, payload: &Bytes) -> Result<()> {
        self.queue(|o| {
            if payload.len() < ZERO_COPY_MIN {
                wire::message::encode_chunked(kind, channel, payload, self.max_payload, &mut o.buf);
                return Ok(o.try_direct(self.input_seen.swap(false, Ordering::Relaxed)));
            }
            let mut rest = payload.clone();
            while !rest.is_empty() {
                let (k, n) = if rest.len() > self.max_payload {
                    (Kind::Chunk, self.max_payload)
                } else {
                    (kind, rest.len())
                };
                wire::encode_header(k, channel, n, &mut o.buf);
                let head = o.buf.split().freeze();
                o.segments.push_back(head);
                o.segments.push_back(rest.split_to(n));
            }
            Ok(true)
        })
    }

    /// Adds output under the output lock with `add`, which says whether
    /// the writer task has work; wakes it if so. An error once the
    /// connection is closing.
    fn queue(&self, add: impl FnOnce(&mut OutBuf) -> Result<bool>) -> Result<()> {
        let mut o = self.out.lock();
        if o.closing {
            drop(o);
            return Err(self.lost_error());
        }
        let pending = add(&mut o)?;
        drop(o);
        if pending {
            self.out_ready.notify_one();
        }
        Ok(())
    }

    /// The input ended or failed: the connection is lost with `reason`.
    fn stream_lost(&self, reason: String) {
        self.set_lost(self.lost_with(reason));
    }

    fn set_lost(&self, reason: Error) {
        {
            let mut lost = self.lost.lock();
            if lost.is_some() {
                return;
            }
            tracing::debug!(gateway = %self.name, "connection lost: {reason}");
            *lost = Some(reason.clone());
        }
        self.out.lock().closing = true;
        self.out_ready.notify_one();
        let chans = self.chans.lock().drain();
        for c in chans {
            c.remote_closed(self, Terminal::Failed(reason.clone()), true);
        }
        self.status_waiters.lock().clear();
        self.lost_event.notify(usize::MAX);
        if let Some(d) = &self.direct {
            d.stop();
        }
    }

    /// The peer sent on `channel` without credit: the channel fails on both
    /// sides with an error naming the overrun (memory stays bounded by the
    /// window plus one message).
    fn window_overrun(self: &Arc<Self>, channel: u32, outstanding: usize) {
        let window = self.window;
        self.fail_channel(
            channel,
            WireError::WindowOverrun {
                channel,
                outstanding,
                window,
            },
        );
    }

    /// A script, task or item whose payload did not decode: the peer's
    /// channel gets an error naming it, and so does ours if we have it.
    fn bad_payload(self: &Arc<Self>, kind: Kind, channel: u32, detail: String) {
        self.fail_channel(
            channel,
            WireError::BadPayload {
                kind,
                channel,
                detail,
            },
        );
    }

    /// The peer broke the protocol on `channel` only (the stream is still
    /// in step): that channel fails on both sides with `source`.
    fn fail_channel(self: &Arc<Self>, channel: u32, source: WireError) {
        tracing::warn!(gateway = %self.name, "{source}");
        let _ = self.push(&Message::CloseError {
            channel,
            error: format!("{} received {source}", self.name),
        });
        if let Some(c) = self.get(channel) {
            let e = Error::Protocol {
                gateway: self.name.clone(),
                source,
            };
            c.remote_closed(self, Terminal::Failed(e), true);
        }
    }

    fn dispatch(self: &Arc<Self>, msg: Message) {
        match msg {
            Message::Data {
                channel,
                value,
                size,
            } => {
                value.for_each_channel(&mut |r| {
                    self.chan_for_ref(r.0);
                });
                match self.get(channel) {
                    Some(c) => {
                        if let Err(machine::Overrun { outstanding }) = c.deliver(self, value, size)
                        {
                            self.window_overrun(channel, outstanding);
                        }
                    }
                    None => {
                        tracing::trace!(gateway = %self.name, channel, "data for a closed channel dropped")
                    }
                }
            }
            Message::Exec { channel, request } => {
                // Channels passed in the arguments exist from now on, so
                // that items sent to them before the task attaches are kept.
                if let ExecRequest::Call { args, .. } = &request {
                    args.for_each_channel(&mut |r| {
                        self.chan_for_ref(r.0);
                    });
                }
                let st = self.chan_for_ref(channel);
                let handler = self.exec_handler.lock().clone();
                let ch = Channel::from_state(self.clone(), st);
                match handler {
                    Some(h) => h(ch, request),
                    None => ch.close(Some("this side does not run scripts or tasks")),
                }
            }
            Message::Close { channel } => {
                if let Some(c) = self.get(channel) {
                    c.remote_closed(self, Terminal::Eof, true);
                }
            }
            Message::CloseError { channel, error } => {
                if let Some(c) = self.get(channel) {
                    let e = Error::Remote(RemoteError {
                        gateway: self.name.clone(),
                        pid: self.peer_pid.load(Ordering::Relaxed),
                        message: error,
                    });
                    c.remote_closed(self, Terminal::Failed(e), true);
                }
            }
            Message::LastMessage { channel } => {
                if let Some(c) = self.get(channel) {
                    c.remote_closed(self, Terminal::Eof, false);
                }
            }
            Message::Credit { channel, bytes } => {
                if let Some(c) = self.get(channel) {
                    c.add_credit(bytes);
                }
            }
            Message::Terminate => {
                let h = self.terminate_handler.lock().clone();
                if let Some(h) = h {
                    h();
                }
            }
            Message::StatusRequest { id } => {
                let status = RemoteStatus {
                    numchannels: self.chans.lock().len() as u64,
                    numexecuting: self.executing.load(Ordering::Relaxed),
                };
                let _ = self.push(&Message::StatusReply { id, status });
            }
            Message::StatusReply { id, status } => {
                if let Some(tx) = self.status_waiters.lock().remove(&id) {
                    let _ = tx.send(status);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    fn pipe() -> (OwnedFd, OwnedFd) {
        rustix::pipe::pipe().expect("a pipe")
    }

    /// The engine writes directly only to an fd it owns: after its writer
    /// task was dropped with its runtime (closing the writer's fd), a
    /// channel's close goes to the engine's duplicate of the stream, never
    /// to a file that reused the writer's fd number.
    #[test]
    fn a_dropped_writer_never_makes_the_engine_write_into_a_reused_fd() {
        let (input_r, _input_w) = pipe();
        let (out_r, out_w) = pipe();
        let writer_fd = out_w.as_raw_fd();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conn = rt.block_on(async {
            let writer = tokio::net::unix::pipe::Sender::from_owned_fd(out_w).unwrap();
            Connection::spawn_direct(
                ConnConfig::new("test", 1),
                Handlers::default(),
                input_r,
                writer,
                BytesMut::new(),
            )
            .unwrap()
        });
        let ch = conn.newchannel();
        // The runtime goes, and its tasks with it: the writer's fd closes.
        drop(rt);
        let file = tempfile_in_fd_order();
        let reused = file.as_raw_fd() == writer_fd;
        drop(ch);
        let mut f = std::fs::File::from(file);
        let mut content = Vec::new();
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut content).unwrap();
        assert!(
            content.is_empty(),
            "the engine wrote {} bytes into a file (fd number reused: {reused})",
            content.len()
        );
        // The close went to the stream itself.
        let mut out = std::fs::File::from(out_r);
        let mut header = [0u8; wire::HEADER_LEN];
        out.read_exact(&mut header).unwrap();
        assert_eq!(header[4], Kind::Close as u8);
    }

    /// A new file, opened read-write: it takes the lowest free fd number.
    fn tempfile_in_fd_order() -> OwnedFd {
        let path = std::env::temp_dir().join(format!(
            "remex-conn-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        f.into()
    }
}
