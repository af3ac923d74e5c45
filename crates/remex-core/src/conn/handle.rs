//! The public handle on a connection ([`Connection`]) and the guard that
//! counts a running request ([`ExecutingGuard`]).
//!
//! Over 500 lines: most of them are the runnable examples on each method.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::input::read_loop;
use super::output::{write_loop, Lent};
use super::*;

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
/// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
/// #         tokio::spawn(async move {
/// #             let _ = ch.send(&"ran").await;
/// #             ch.close(None);
/// #         });
/// #     })),
/// #     ..Handlers::default()
/// # };
/// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
/// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
/// let ch = conn.exec(remex::core::wire::ExecRequest::Script { source: "anything".into(), args: remex::Value::Unit })?;
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
    /// let ch = conn.exec(remex::core::wire::ExecRequest::Call { name: "t".into(), args: remex::Value::Unit })?;
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
        tokio::spawn(write_loop(Lent::new(shared.clone(), writer)));
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
    /// let ch = gw.connection().exec(remex::core::wire::ExecRequest::Script { source: "channel.send(1)".into(), args: remex::Value::Unit })?;
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
    /// let ch = gw.connection().exec(remex::core::wire::ExecRequest::Script { source: "channel.send(2)".into(), args: remex::Value::Unit })?;
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
        let out = OutBuf::direct(&writer, sealer);
        #[cfg(all(target_os = "linux", not(feature = "portable")))]
        {
            let decoder = MessageDecoder::new(config.max_payload, config.max_message);
            let eof_reason = handlers.eof_reason.clone();
            let reader = direct::DirectReader::new(input, leftover, decoder, opener)?;
            let shared = Shared::new(config, handlers, Some(reader), out);
            if let Err(e) = direct::start(shared.clone(), eof_reason) {
                // The writer is dropped here: take its lent fd back first.
                shared.out.lock().direct_out = None;
                return Err(e);
            }
            tokio::spawn(write_loop(Lent::new(shared.clone(), writer)));
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
    /// #         tokio::spawn(async move {
    /// #             let _ = ch.send(&"ran").await;
    /// #             ch.close(None);
    /// #         });
    /// #     })),
    /// #     ..Handlers::default()
    /// # };
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), handlers, br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// let ch = conn.exec(remex::core::wire::ExecRequest::Script { source: "x".into(), args: remex::Value::Unit })?;
    /// assert_eq!(ch.receive::<String>().await?, "ran");
    /// # drop(worker);
    /// # Ok(()) }
    /// ```
    pub fn exec(&self, request: ExecRequest) -> Result<Channel> {
        let st = self.shared.new_chan();
        // The worker's log events of this call go under the caller's span.
        let span = tracing::Span::current();
        if !span.is_none() {
            *st.log_route.lock() = Some(super::chan::LogRoute::Span(span));
        }
        let id = st.id;
        let ch = Channel::from_state(self.shared.clone(), st);
        self.shared.push(&Message::Exec {
            channel: id,
            request,
        })?;
        Ok(ch)
    }

    /// What went over the connection so far: bytes and messages each way.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let before = gw.connection().traffic();
    /// gw.remote_call("echo", &vec![0u8; 10_000])?.receive::<Vec<u8>>().await?;
    /// let after = gw.connection().traffic();
    /// assert!(after.bytes_out - before.bytes_out >= 10_000);
    /// assert!(after.bytes_in - before.bytes_in >= 10_000);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn traffic(&self) -> super::Traffic {
        self.shared.traffic.read()
    }

    /// Sends the peer one log record of the call on `channel` (0: no
    /// call): what a worker does with its `tracing` events
    /// ([`crate::wire::LogRecord`]); the controller re-emits them.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # let worker = Connection::spawn(ConnConfig::new("worker", 2), Handlers::default(), br, bw, Default::default());
    /// # let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// use remex::core::wire::LogRecord;
    /// let record = LogRecord { level: 3, target: "t".into(), message: "hello".into(), ..Default::default() };
    /// worker.send_log(0, record)?; // "gw" re-emits it as a tracing event
    /// # drop(conn);
    /// # Ok(()) }
    /// ```
    pub fn send_log(&self, channel: u32, record: crate::wire::LogRecord) -> Result<()> {
        self.shared.push(&Message::Log { channel, record })
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
        self.shared.chans.lock().ask_status(id, tx)?;
        if let Err(e) = self.shared.push(&Message::StatusRequest { id }) {
            self.shared.chans.lock().forget_status(id);
            return Err(e);
        }
        // A probe given up on (a timeout) leaves no waiter behind.
        struct Forget<'a>(&'a Shared, u32);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.chans.lock().forget_status(self.1);
            }
        }
        let _forget = Forget(&self.shared, id);
        rx.await.map_err(|_| self.shared.lost_error())
    }

    /// A count that grows whenever input arrives from the peer (any bytes:
    /// a reply, data, part of a large message): compare two readings to
    /// tell whether the peer showed a sign of life in between.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let before = gw.connection().input_activity();
    /// gw.remote_status().await?;
    /// assert!(gw.connection().input_activity() > before);
    /// # Ok(()) }
    /// ```
    pub fn input_activity(&self) -> u64 {
        self.shared.input_reads.load(Ordering::Relaxed)
    }

    /// When input last arrived from the peer (to the millisecond; the
    /// connection's start if none has yet).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// gw.remote_status().await?;
    /// assert!(gw.connection().last_input().elapsed() < std::time::Duration::from_secs(5));
    /// # Ok(()) }
    /// ```
    pub fn last_input(&self) -> std::time::Instant {
        super::clock_base()
            + std::time::Duration::from_millis(self.shared.last_input_ms.load(Ordering::Relaxed))
    }

    /// Whether the peer (a controller) said it is stopped: between its
    /// `Pause` and its `Resume` ([`crate::pause_workers`]) its silence is
    /// no sign that it is gone.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// // This side is the controller: its worker never pauses it.
    /// assert!(!gw.connection().peer_paused());
    /// # Ok(()) }
    /// ```
    pub fn peer_paused(&self) -> bool {
        self.shared.peer_paused.load(Ordering::Relaxed)
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
        let mut o = self.shared.out.lock();
        o.closing = true;
        o.held = false;
        drop(o);
        self.shared.out_ready.notify_one();
    }

    /// Keeps the stream's writing side open when the input ends, until
    /// [`Connection::close_output`]: the connection is lost as usual
    /// (channels end, nothing more can be sent), but the peer sees the end
    /// of the stream only once this side has finished what it still does.
    /// A worker holds its output so that its controller's last word (a
    /// `Terminate`, then the end of its input) is answered by the end of
    /// the stream only after the worker's commands went through their
    /// kill sequences: a relay, or a session dialed back, has nothing else
    /// to tell the controller that they did.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use remex::core::conn::{ConnConfig, Connection, Handlers};
    /// # let (a, b) = tokio::io::duplex(1 << 16);
    /// # let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// let worker = Connection::spawn(ConnConfig::new("controller", 2), Handlers::default(), br, bw, Default::default());
    /// let conn = Connection::spawn(ConnConfig::new("gw", 1), Handlers::default(), ar, aw, Default::default());
    /// worker.hold_output();
    /// conn.close_output();
    /// worker.closed().await; // the worker's input ended...
    /// let soon = std::time::Duration::from_millis(100);
    /// // ...but its output is still open
    /// assert!(tokio::time::timeout(soon, conn.closed()).await.is_err());
    /// worker.close_output(); // its last duty done
    /// conn.closed().await;
    /// # Ok(()) }
    /// ```
    pub fn hold_output(&self) {
        self.shared.out.lock().held = true;
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
        if let Some(e) = self.shared.lost() {
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
        let lost = remex_sync::wait::until(None, || s.lost(), || s.lost_event.listen());
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
    /// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
/// #     exec: Some(Arc::new(|ch: remex::Channel, _req: remex::core::wire::ExecRequest| {
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
