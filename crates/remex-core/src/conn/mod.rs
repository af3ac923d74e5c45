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

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use std::os::fd::AsFd;

use bytes::{Bytes, BytesMut};
use event_listener::Event;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, Notify};

use crate::error::{Error, RemoteError, Result};
use crate::transport::secure::{Opener, Sealer};
use crate::value::Value;
use crate::wire::{self, ExecRequest, Kind, Message, MessageDecoder, RemoteStatus, WireError};
use channel::Channel;

mod chan;
pub(crate) mod channel;
#[cfg(all(target_os = "linux", not(feature = "portable")))]
mod direct;
#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
#[path = "fallback.rs"]
mod direct;
mod handle;
mod input;
use remex_proto::channel as machine;
mod output;
mod spin;

pub(crate) use chan::{ChanState, Step, Terminal};
pub use chan::{LogRoute, Sink};
pub use handle::{Connection, ExecutingGuard};
use output::{OutBuf, ZERO_COPY_MIN};
use remex_proto::connection::{ConnMachine, End, Fresh, Route};
pub(crate) use spin::Quick;
pub use spin::{BUSY_POLL_ENV, SPIN};

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
/// let mut config = remex::core::conn::ConnConfig::new("gw1", 1);
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
    /// let config = remex::core::conn::ConnConfig::new("worker", 2);
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
/// let handlers = remex::core::conn::Handlers { exec: Some(handler), ..Default::default() };
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

/// The instant connection clocks count from (the first use in this
/// process).
pub(crate) fn clock_base() -> std::time::Instant {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(std::time::Instant::now)
}

/// Milliseconds since [`clock_base`].
pub(crate) fn since_base_ms() -> u64 {
    clock_base().elapsed().as_millis() as u64
}

/// What went over a connection: bytes and messages each way.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let gw = remex::makegateway("popen").await?;
/// let ch = gw.remote_call("echo", &"hello")?;
/// assert_eq!(ch.receive::<String>().await?, "hello");
/// let t: remex::core::conn::Traffic = gw.connection().traffic();
/// assert!(t.messages_out >= 1 && t.messages_in >= 1);
/// assert!(t.bytes_out > 5 && t.bytes_in > 5);
/// gw.exit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Traffic {
    /// Bytes received (frames, before any decryption overhead).
    pub bytes_in: u64,
    /// Bytes sent (frames).
    pub bytes_out: u64,
    /// Messages received (a chunked one counts once).
    pub messages_in: u64,
    /// Messages sent (a chunked one counts once).
    pub messages_out: u64,
}

/// The counters behind [`Traffic`].
#[derive(Default)]
pub(crate) struct TrafficCounts {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
}

impl TrafficCounts {
    fn sent(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
        self.messages_out.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn received(&self, bytes: usize, messages: u64) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        self.messages_in.fetch_add(messages, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> Traffic {
        Traffic {
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            messages_in: self.messages_in.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
        }
    }
}

/// The most messages counted as awaiting a reply (see
/// [`Shared::arrived`]): a lane's requests come a few dozen at a time.
const UNANSWERED_MAX: usize = 64;

pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) peer_pid: AtomicU32,
    /// The connection's protocol state (`remex_proto::connection`): the
    /// channels by id (live ones, and ended ones a handle still holds, so
    /// that a reference sent back reaches the same channel), the loss, the
    /// status requests in flight.
    chans: Mutex<ConnMachine<ChanState, Error, oneshot::Sender<RemoteStatus>>>,
    /// This side is a worker (its ids are even): a lost peer is the
    /// controller going away.
    worker_side: bool,
    out: Mutex<OutBuf>,
    out_ready: Notify,
    max_payload: usize,
    window: u32,
    lost_event: Event,
    writer_done: Event,
    writer_finished: std::sync::atomic::AtomicBool,
    exec_handler: Mutex<Option<ExecHandler>>,
    terminate_handler: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
    pub(crate) executing: AtomicU64,
    /// What every channel handle keeps alive (the gateway): a channel in
    /// use keeps its worker running, as in execnet.
    keepalive: Mutex<Option<std::sync::Weak<dyn std::any::Any + Send + Sync>>>,
    /// Messages that arrived and were not yet answered (see
    /// [`Shared::answering`]).
    unanswered: std::sync::atomic::AtomicUsize,
    /// Reads that brought input: a sign of life from the peer, however
    /// slowly a large message arrives (liveness).
    pub(crate) input_reads: AtomicU64,
    /// When input last arrived, in milliseconds since [`clock_base`].
    pub(crate) last_input_ms: AtomicU64,
    /// What went each way ([`Traffic`]).
    pub(crate) traffic: TrafficCounts,
    /// The peer (a controller) said it is stopped: between its `Pause`
    /// and its `Resume` its silence is no sign of loss.
    pub(crate) peer_paused: std::sync::atomic::AtomicBool,
    /// Notified when the writer finds nothing left to write.
    pub(crate) out_idle: Event,
    /// Set when waiting threads read the input themselves
    /// ([`Connection::spawn_direct`]).
    direct: Option<direct::DirectReader>,
}

/// What a connection does with requests from its peer. Set before the
/// reader starts, so that no request can arrive unhandled.
///
/// ```
/// let handlers = remex::core::conn::Handlers::default();
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
/// let handlers = remex::core::conn::Handlers { eof_reason: Some(why), ..Default::default() };
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
            chans: Mutex::new(ConnMachine::new(config.first_id)),
            worker_side: config.first_id % 2 == 0,
            out: Mutex::new(out),
            out_ready: Notify::new(),
            max_payload: config.max_payload,
            window: config.window,
            lost_event: Event::new(),
            writer_done: Event::new(),
            writer_finished: Default::default(),
            exec_handler: Mutex::new(handlers.exec),
            terminate_handler: Mutex::new(handlers.terminate),
            executing: AtomicU64::new(0),
            keepalive: Mutex::new(None),
            unanswered: Default::default(),
            input_reads: AtomicU64::new(0),
            last_input_ms: AtomicU64::new(since_base_ms()),
            traffic: TrafficCounts::default(),
            peer_paused: Default::default(),
            out_idle: Event::new(),
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
        self.lost()
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

    /// Why the connection was lost, if it was.
    pub(crate) fn lost(&self) -> Option<Error> {
        self.chans.lock().lost().cloned()
    }

    /// Makes the channel states the connection machine asks for.
    fn maker(&self) -> impl FnMut(u32, Fresh) -> Arc<ChanState> {
        let window = self.window;
        move |id, fresh| {
            Arc::new(match fresh {
                Fresh::Live => ChanState::new(id, window),
                Fresh::Ended => ChanState::ended(id, window),
            })
        }
    }

    /// A channel the machine made after the loss ends with it at once.
    fn opened(&self, o: remex_proto::connection::Opened<ChanState, Error>) -> Arc<ChanState> {
        if let Some(e) = o.lost {
            o.chan.remote_closed(self, Terminal::Failed(e), true);
        }
        o.chan
    }

    fn new_chan(&self) -> Arc<ChanState> {
        let o = self.chans.lock().open(&mut self.maker());
        self.opened(o)
    }

    /// The channel a reference names: a live one, an ended one a handle
    /// still holds (the same channel, reporting its end), an ended one of
    /// ours nobody holds (a fresh handle that reports the end at once), or
    /// a new one the peer opened.
    pub(crate) fn chan_for_ref(&self, id: u32) -> Arc<ChanState> {
        let o = self.chans.lock().for_ref(id, &mut self.maker());
        self.opened(o)
    }

    fn get(&self, id: u32) -> Option<Arc<ChanState>> {
        self.chans.lock().get(id)
    }

    pub(crate) fn remove(&self, id: u32) {
        self.chans.lock().remove(id);
    }

    /// Counts a message that arrived (at most [`UNANSWERED_MAX`]: after
    /// a long one-way stream in, a stream out is batched again soon).
    pub(crate) fn arrived(&self) {
        let _ = self
            .unanswered
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < UNANSWERED_MAX).then_some(n + 1)
            });
    }

    /// Whether a message sent now is likely a reply, which batching would
    /// only delay (see `OutBuf::try_direct`).
    fn answering(&self) -> bool {
        if !self.worker_side {
            // The controller's requests, sent in bursts as replies free
            // places, leave together from the writer task: only the first
            // message after input is written at once.
            return self.unanswered.swap(0, Ordering::Relaxed) > 0;
        }
        // A worker answers each request: its replies leave at once, with
        // no wake-up of the writer task (a pool's lane: 1.4x the tasks).
        self.unanswered
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Waits (at most `within`) until everything queued so far has been
    /// handed to the stream, or the connection is closing. Whether it was.
    pub(crate) async fn written(&self, within: std::time::Duration) -> bool {
        let check = || {
            let o = self.out.lock();
            (o.closing || (o.is_empty() && !o.writer_busy)).then_some(())
        };
        remex_sync::wait::until(Some(within), check, || self.out_idle.listen())
            .await
            .is_some()
    }

    /// Encodes and queues one message for the writer.
    pub(crate) fn push(&self, msg: &Message) -> Result<()> {
        self.queue(|o| {
            let before = o.buf.len();
            wire::encode_message(msg, self.max_payload, &mut o.buf).map_err(|source| {
                Error::Protocol {
                    gateway: self.name.clone(),
                    source,
                }
            })?;
            self.traffic.sent(o.buf.len() - before);
            Ok(o.try_direct(self.answering()))
        })
    }

    /// Queues an already-encoded data payload. A large one is not copied:
    /// it leaves from `payload`'s own buffer.
    pub(crate) fn push_data(&self, channel: u32, kind: Kind, payload: &Bytes) -> Result<()> {
        self.queue(|o| {
            if payload.len() < ZERO_COPY_MIN {
                let before = o.buf.len();
                wire::encode_chunked(kind, channel, payload, self.max_payload, &mut o.buf);
                self.traffic.sent(o.buf.len() - before);
                return Ok(o.try_direct(self.answering()));
            }
            // The payload and a header per frame.
            let frames = payload.len().div_ceil(self.max_payload.max(1));
            self.traffic.sent(payload.len() + wire::HEADER_LEN * frames);
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
        // The channels and status waiters, taken out once (the first loss).
        let Some(loss) = self.chans.lock().lose(reason.clone()) else {
            return;
        };
        tracing::debug!(gateway = %self.name, "connection lost: {reason}");
        self.out.lock().closing = true;
        self.out_ready.notify_one();
        for c in loss.chans {
            c.remote_closed(self, Terminal::Failed(reason.clone()), true);
        }
        // Dropped senders: each waiting status request hears the loss.
        drop(loss.waiters);
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
        let routed = self.chans.lock().route(msg, &mut self.maker());
        match routed {
            Route::Deliver { chan, value, size } => {
                if let Err(machine::Overrun { outstanding }) = chan.deliver(self, value, size) {
                    self.window_overrun(chan.id, outstanding);
                }
            }
            Route::Exec { opened, request } => {
                let st = self.opened(opened);
                let handler = self.exec_handler.lock().clone();
                let ch = Channel::from_state(self.clone(), st);
                match handler {
                    Some(h) => h(ch, request),
                    None => ch.close(Some("this side does not run scripts or tasks")),
                }
            }
            Route::Ended { chan, how } => match how {
                End::Closed => chan.remote_closed(self, Terminal::Eof, true),
                End::LastMessage => chan.remote_closed(self, Terminal::Eof, false),
                End::Failed(error) => {
                    let e = Error::Remote(RemoteError {
                        gateway: self.name.clone(),
                        pid: self.peer_pid.load(Ordering::Relaxed),
                        message: error,
                    });
                    chan.remote_closed(self, Terminal::Failed(e), true);
                }
            },
            Route::Credit { chan, bytes } => chan.add_credit(bytes),
            Route::Terminate => {
                let h = self.terminate_handler.lock().clone();
                if let Some(h) = h {
                    h();
                }
            }
            Route::Pause => self.peer_paused.store(true, Ordering::Relaxed),
            Route::Resume => self.peer_paused.store(false, Ordering::Relaxed),
            Route::StatusRequest { id, numchannels } => {
                let status = RemoteStatus {
                    numchannels,
                    numexecuting: self.executing.load(Ordering::Relaxed),
                };
                let _ = self.push(&Message::StatusReply { id, status });
            }
            Route::StatusAnswered { waiter, status } => {
                let _ = waiter.send(status);
            }
            Route::Log { chan, record } => {
                let parent = chan.and_then(|c| c.log_parent(record.request));
                crate::transport::emit_worker_record(&self.name, &record, parent);
            }
            Route::Dropped { channel } => {
                tracing::trace!(gateway = %self.name, channel, "a message for a channel that is not live dropped")
            }
            // A route added to remex-proto: nothing to do until this side
            // knows it.
            _ => {}
        }
    }
}
