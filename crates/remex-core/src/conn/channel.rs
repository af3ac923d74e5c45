//! `Channel`: one bidirectional stream of values between the two ends of a
//! gateway, multiplexed with the others on its byte stream.
//!
//! Semantics follow execnet: after the remote side closes, every further
//! `receive` reports end-of-channel (or the remote error); a timeout leaves
//! the channel usable; after `set_callback`, `receive` is an error.
//!
//! Every operation exists in two forms: `async` for tokio code, and
//! `*_blocking` for plain threads (scripts on a worker, the blocking API).
//! Both share one implementation built on `event-listener`.
//!
//! Over 500 lines: about 425 are the documentation and runnable examples of
//! the public channel API; the code is under 500.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_listener::Listener;
use futures::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::conn::{Callback, ChanState, Quick, Shared, Step};
use crate::error::{with_timeout, Error, Result};
use crate::value::{from_value, to_value, ChannelRef, Value};
use crate::wire::{Kind, Message};
use remex_sync::RunMode;

/// A channel. Clones share it; when the last handle is dropped without a
/// callback set, the channel is closed.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let gw = remex::makegateway("popen").await?;
/// let ch = gw.remote_exec("channel.send(channel.receive() * 2)")?;
/// ch.send(&21).await?;
/// assert_eq!(ch.receive::<i64>().await?, 42);
/// ch.waitclose(None).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Channel {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    state: Arc<ChanState>,
    /// Keeps the gateway (and so its worker) alive while the channel is used.
    _keep: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.state.handles.fetch_sub(1, Ordering::AcqRel) == 1 && !self.state.has_callback() {
            close_state(&self.shared, &self.state, None);
        }
    }
}

fn close_state(shared: &Shared, state: &ChanState, error: Option<&str>) {
    if state.local_close(shared, false) {
        let msg = match error {
            None => Message::Close { channel: state.id },
            Some(e) => Message::CloseError {
                channel: state.id,
                error: e.to_string(),
            },
        };
        let _ = shared.push(&msg);
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Channel id={} on {}>", self.id(), self.gateway_id())
    }
}

impl PartialEq for Channel {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.handle.state, &other.handle.state)
    }
}

impl Eq for Channel {}

impl Serialize for Channel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.handle().serialize(s)
    }
}

/// How long a task polling the input keeps its runtime's thread before it
/// yields to the other tasks.
const SPIN_SLICE: Duration = Duration::from_micros(10);

/// `exchange`: the wait is for the answer to the one item this side sent
/// (see `ChanState::awaits_answer`), with the channel's record of such
/// waits.
async fn wait_async<T>(
    shared: &Arc<Shared>,
    exchange: Option<&Quick>,
    mut step: impl FnMut() -> Step<T>,
) -> T {
    // On a connection that reads directly, a task waiting for the answer
    // in a request-reply exchange whose last wait was short polls the
    // input for a while, yielding to the other tasks of its runtime
    // between polls, instead of sleeping (see conn::direct). Other waits
    // (a stream of replies to many requests) sleep: spinning there only
    // takes processor time from the workers.
    let began = Instant::now();
    let mut spin = exchange.and_then(|q| shared.spin_for(q)).map(|d| began + d);
    loop {
        match step() {
            Step::Ready(v) => {
                if let Some(q) = exchange {
                    shared.waited(q, began.elapsed());
                }
                return v;
            }
            Step::Wait(l) => {
                if let Some(until) = spin {
                    let now = Instant::now();
                    // Polls for a short slice within this turn, then lets
                    // the runtime's other tasks run. Whoever else holds the
                    // read role hands the item on: then just wait.
                    let slice = until.min(now + SPIN_SLICE);
                    let mut read = Some(false);
                    while read == Some(false) && Instant::now() < slice {
                        read = shared.read_now();
                        std::hint::spin_loop();
                    }
                    match read {
                        Some(true) => continue,
                        Some(false) if Instant::now() < until => {
                            drop(l);
                            tokio::task::yield_now().await;
                            continue;
                        }
                        _ => spin = None,
                    }
                }
                let _w = shared.waiting();
                l.await
            }
        }
    }
}

/// `recv`: the channel this waits to receive from, whose record of its
/// waits for items tells whether to poll the input before sleeping (see
/// conn::direct).
fn wait_blocking<T>(
    shared: &Arc<Shared>,
    recv: Option<&ChanState>,
    what: &'static str,
    timeout: Option<Duration>,
    mut step: impl FnMut() -> Step<T>,
) -> Result<T> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let l = match step() {
            Step::Ready(v) => return Ok(v),
            Step::Wait(l) => l,
        };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::Timeout {
                what,
                after: timeout.unwrap_or_default(),
            });
        }
        // On a connection that reads directly, this thread may read what
        // it waits for itself (see conn::direct).
        let l = match shared.read_while_waiting(l, deadline, recv, &mut step) {
            Step::Ready(v) => return Ok(v),
            Step::Wait(l) => l,
        };
        let _w = shared.waiting();
        match deadline {
            None => l.wait(),
            Some(d) => {
                l.wait_deadline(d);
            }
        }
    }
}

impl Channel {
    pub(crate) fn from_state(shared: Arc<Shared>, state: Arc<ChanState>) -> Channel {
        state.handles.fetch_add(1, Ordering::AcqRel);
        state.attached.store(true, Ordering::Release);
        let keep = shared.keepalive();
        Channel {
            handle: Arc::new(Handle {
                shared,
                state,
                _keep: keep,
            }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    fn state(&self) -> &ChanState {
        &self.handle.state
    }

    /// A local channel's sink ([`crate::Connection::local_channel`]); an
    /// error once the channel was closed.
    fn local_sink(&self) -> Result<Option<&crate::conn::Sink>> {
        match &self.state().sink {
            Some(_) if self.state().closed_here() => Err(Error::ChannelClosed {
                gateway: self.gateway_id().to_string(),
                channel: self.id(),
                by_remote: false,
            }),
            sink => Ok(sink.as_ref()),
        }
    }

    /// Where the worker's log events of the calls on this channel go
    /// (a channel made by `remote_exec` or `remote_call` routes them to
    /// the span the call was made in by itself; a channel that carries
    /// many requests, as the task pool's lanes do, names a span per
    /// request).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use remex::core::conn::LogRoute;
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_call("echo", &1)?;
    /// ch.route_logs(LogRoute::Span(tracing::info_span!("my call")));
    /// assert_eq!(ch.receive::<i64>().await?, 1);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn route_logs(&self, route: crate::conn::LogRoute) {
        *self.state().log_route.lock() = Some(route);
    }

    /// The channel's id, unique on its gateway.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let (a, b) = (gw.newchannel(), gw.newchannel());
    /// assert_ne!(a.id(), b.id());
    /// assert_eq!(a.id() % 2, 1, "a controller's channel ids are odd");
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> u32 {
        self.handle.state.id
    }

    /// The id of the gateway the channel belongs to.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen//id=w1").await?;
    /// assert_eq!(gw.newchannel().gateway_id(), "w1");
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn gateway_id(&self) -> &str {
        &self.handle.shared.name
    }

    /// A reference to put inside a value, so that the other side can use
    /// this channel.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.newchannel();
    /// let r: remex::ChannelRef = ch.handle();
    /// assert_eq!(gw.channel(r).id(), ch.id());
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn handle(&self) -> ChannelRef {
        ChannelRef(self.id())
    }

    /// Opens a channel received inside a value, on this channel's gateway.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.newchannel();
    /// let again = ch.attach(ch.handle());
    /// assert_eq!(again.id(), ch.id());
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn attach(&self, r: ChannelRef) -> Channel {
        self.connection().attach(r)
    }

    /// Opens a new channel on the same gateway.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.newchannel();
    /// let other = ch.newchannel();
    /// assert_eq!(other.gateway_id(), ch.gateway_id());
    /// assert_ne!(other.id(), ch.id());
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn newchannel(&self) -> Channel {
        self.connection().newchannel()
    }

    /// The connection this channel runs on.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// assert_eq!(gw.newchannel().connection().name(), gw.id());
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn connection(&self) -> crate::conn::Connection {
        crate::conn::Connection {
            shared: self.handle.shared.clone(),
        }
    }

    fn encode(&self, value: &Value) -> Result<(Kind, Vec<u8>)> {
        match value {
            Value::Bytes(_) => Ok((Kind::Bytes, Vec::new())),
            v => v
                .to_wire()
                .map(|p| (Kind::Data, p))
                .map_err(|e| Error::Unsendable {
                    channel: self.id(),
                    detail: e.to_string(),
                }),
        }
    }

    fn write(&self, value: &Value, kind: Kind, payload: Vec<u8>) -> Result<()> {
        self.state().sent.fetch_add(1, Ordering::Relaxed);
        match (kind, value) {
            (Kind::Bytes, Value::Bytes(b)) => self.shared().push_data(self.id(), kind, b),
            _ => self
                .shared()
                .push_data(self.id(), kind, &bytes::Bytes::from(payload)),
        }
    }

    fn size_of(value: &Value, payload: &[u8]) -> usize {
        match value {
            Value::Bytes(b) => b.len(),
            _ => payload.len(),
        }
    }

    /// Sends a value, waiting for flow-control credit if the receiver is
    /// behind. Sending on a closed channel is an error.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("for x in channel { channel.send(x) }")?;
    /// ch.send_value(remex::Value::from("hi")).await?;
    /// assert_eq!(ch.receive::<remex::Value>().await?, remex::Value::from("hi"));
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_value(&self, value: Value) -> Result<()> {
        if let Some(sink) = self.local_sink()? {
            return sink(value);
        }
        let (kind, payload) = self.encode(&value)?;
        let size = Self::size_of(&value, &payload);
        wait_async(&self.handle.shared, None, || {
            self.state().try_reserve(self.shared(), size)
        })
        .await?;
        self.write(&value, kind, payload)
    }

    /// Sends any serde value (converted through [`Value`]).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("for x in channel { channel.send(x) }")?;
    /// ch.send(&(1, "one")).await?;
    /// assert_eq!(ch.receive::<(i64, String)>().await?, (1, "one".to_string()));
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.send_value(self.to_value(value)?).await
    }

    fn to_value<T: Serialize + ?Sized>(&self, value: &T) -> Result<Value> {
        to_value(value).map_err(|e| Error::Unsendable {
            channel: self.id(),
            detail: e.to_string(),
        })
    }

    /// Sends a value only if flow-control credit is available now; never
    /// waits (for `Drop` implementations and other places that cannot).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("for x in channel { channel.send(x) }")?;
    /// // Within the window: queued at once, without waiting.
    /// ch.try_send_value(remex::Value::Int(7))?;
    /// assert_eq!(ch.receive::<i64>().await?, 7);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn try_send_value(&self, value: Value) -> Result<()> {
        if let Some(sink) = self.local_sink()? {
            return sink(value);
        }
        let (kind, payload) = self.encode(&value)?;
        let size = Self::size_of(&value, &payload);
        match self.state().try_reserve(self.shared(), size) {
            Step::Ready(r) => r?,
            Step::Wait(_) => {
                return Err(Error::Timeout {
                    what: "send credit",
                    after: Duration::ZERO,
                })
            }
        }
        self.write(&value, kind, payload)
    }

    /// [`Channel::send_value`] for plain threads.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.send(channel.receive() * 2)")?;
    /// // From a plain thread:
    /// let n: i64 = tokio::task::spawn_blocking(move || -> remex::Result<i64> {
    ///     ch.send_value_blocking(remex::Value::Int(21))?;
    ///     ch.receive_blocking::<i64>(None)
    /// })
    /// .await
    /// .unwrap()?;
    /// assert_eq!(n, 42);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn send_value_blocking(&self, value: Value) -> Result<()> {
        if let Some(sink) = self.local_sink()? {
            return sink(value);
        }
        let (kind, payload) = self.encode(&value)?;
        let size = Self::size_of(&value, &payload);
        wait_blocking(&self.handle.shared, None, "send credit", None, || {
            self.state().try_reserve(self.shared(), size)
        })??;
        self.write(&value, kind, payload)
    }

    /// [`Channel::send`] for plain threads.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.send(channel.receive() * 2)")?;
    /// // From a plain thread:
    /// let n: i64 = tokio::task::spawn_blocking(move || -> remex::Result<i64> {
    ///     ch.send_blocking(&21)?;
    ///     ch.receive_blocking::<i64>(None)
    /// })
    /// .await
    /// .unwrap()?;
    /// assert_eq!(n, 42);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn send_blocking<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.send_value_blocking(self.to_value(value)?)
    }

    /// The next item as it came (see [`Channel::receive`]).
    pub(crate) async fn next_value(&self) -> Result<Value> {
        let exchange = self.state().awaits_answer().then_some(&self.state().quick);
        wait_async(&self.handle.shared, exchange, || {
            self.state().try_receive(self.shared())
        })
        .await
    }

    /// Receives the next item as `T` (any serde type, or [`Value`] to take
    /// it as it came, at no cost); a mismatch names expected and received.
    /// After the remote side closed, returns [`Error::EndOfChannel`] (or
    /// the remote error) every time.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.send(6 * 7)")?;
    /// let n: i64 = ch.receive().await?;
    /// assert_eq!(n, 42);
    /// // After the last item, the end:
    /// assert!(ch.receive::<i64>().await.unwrap_err().is_end_of_channel());
    /// let any = gw.remote_exec("channel.send([1, \"two\"])")?;
    /// let v = any.receive::<remex::Value>().await?;
    /// assert_eq!(v, remex::Value::List(vec![1.into(), "two".into()]));
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn receive<T: DeserializeOwned + 'static>(&self) -> Result<T> {
        self.convert(self.next_value().await?)
    }

    /// Receives an item if one is queued now, without waiting: `Ok(None)`
    /// if none is; the channel's end or failure as [`Channel::receive`]
    /// reports them.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.send(1); channel.send(2)")?;
    /// ch.waitclose(None).await?; // both items are here now
    /// assert_eq!(ch.try_receive::<i64>()?, Some(1));
    /// assert_eq!(ch.try_receive::<remex::Value>()?, Some(remex::Value::Int(2)));
    /// assert!(ch.try_receive::<i64>().unwrap_err().is_end_of_channel());
    /// let idle = gw.remote_exec("channel.receive()")?;
    /// assert_eq!(idle.try_receive::<i64>()?, None);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn try_receive<T: DeserializeOwned + 'static>(&self) -> Result<Option<T>> {
        match self.state().try_receive(self.shared()) {
            Step::Ready(r) => self.convert(r?).map(Some),
            Step::Wait(_) => Ok(None),
        }
    }

    /// Receives with a timeout; a timeout leaves the channel usable.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.receive()")?; // sends nothing
    /// let e = ch
    ///     .receive_timeout::<i64>(std::time::Duration::from_millis(50))
    ///     .await
    ///     .unwrap_err();
    /// assert!(e.is_timeout());
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn receive_timeout<T: DeserializeOwned + 'static>(
        &self,
        timeout: Duration,
    ) -> Result<T> {
        let v = with_timeout("an item", Some(timeout), self.next_value()).await?;
        self.convert(v)
    }

    /// The next item as it came, for a thread (see
    /// [`Channel::receive_blocking`]).
    pub(crate) fn next_value_blocking(&self, timeout: Option<Duration>) -> Result<Value> {
        wait_blocking(
            &self.handle.shared,
            Some(self.state()),
            "an item",
            timeout,
            || self.state().try_receive(self.shared()),
        )?
    }

    /// [`Channel::receive`] for plain threads, with an optional timeout.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.send(channel.receive() * 2)")?;
    /// // From a plain thread:
    /// let n: i64 = tokio::task::spawn_blocking(move || -> remex::Result<i64> {
    ///     ch.send_blocking(&21)?;
    ///     ch.receive_blocking::<i64>(Some(std::time::Duration::from_secs(10)))
    /// })
    /// .await
    /// .unwrap()?;
    /// assert_eq!(n, 42);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn receive_blocking<T: DeserializeOwned + 'static>(
        &self,
        timeout: Option<Duration>,
    ) -> Result<T> {
        let v = self.next_value_blocking(timeout)?;
        self.convert(v)
    }

    /// `v` as a `T`: itself when `T` is [`Value`] (a `Value` deserialized
    /// into a `Value` would be rebuilt), else through serde.
    fn convert<T: DeserializeOwned + 'static>(&self, v: Value) -> Result<T> {
        let mut slot = Some(v);
        if let Some(same) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<T>>() {
            if let Some(t) = same.take() {
                return Ok(t);
            }
        }
        let Some(v) = slot else {
            return Err(Error::TypeMismatch {
                gateway: self.gateway_id().to_string(),
                channel: self.id(),
                detail: "no item".into(),
            });
        };
        from_value(v).map_err(|e| Error::TypeMismatch {
            gateway: self.gateway_id().to_string(),
            channel: self.id(),
            detail: e.to_string(),
        })
    }

    /// Closes the channel from this side, with an error text for the remote
    /// side if given. Closing twice does nothing.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.receive()")?;
    /// ch.close(None);
    /// assert!(ch.is_closed());
    /// assert!(ch.send(&1).await.is_err());
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn close(&self, error: Option<&str>) {
        close_state(self.shared(), self.state(), error);
    }

    /// Tells the remote side that no more items will come from here, while
    /// still receiving what it sends.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("let n = 0; for x in channel { n += x; } channel.send(n)")?;
    /// ch.send(&1).await?;
    /// ch.send(&2).await?;
    /// ch.close_write(); // the script's loop ends; its answer still arrives
    /// assert_eq!(ch.receive::<i64>().await?, 3);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn close_write(&self) {
        if self.state().local_close(self.shared(), true) {
            let _ = self
                .shared()
                .push(&Message::LastMessage { channel: self.id() });
        }
    }

    /// Waits until the remote side closes the channel; returns its error if
    /// it failed. A timeout leaves the channel usable.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.send(1)")?;
    /// ch.waitclose(Some(std::time::Duration::from_secs(10))).await?;
    /// // A script's error arrives as the close's error:
    /// let ch = gw.remote_exec("throw \"boom\"")?;
    /// assert!(ch.waitclose(None).await.unwrap_err().to_string().contains("boom"));
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn waitclose(&self, timeout: Option<Duration>) -> Result<()> {
        with_timeout(
            "the channel to close",
            timeout,
            wait_async(&self.handle.shared, None, || self.state().try_waitclose()),
        )
        .await
    }

    /// [`Channel::waitclose`] for plain threads.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.send(1)")?;
    /// tokio::task::spawn_blocking(move || ch.waitclose_blocking(Some(std::time::Duration::from_secs(10))))
    ///     .await
    ///     .unwrap()?;
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn waitclose_blocking(&self, timeout: Option<Duration>) -> Result<()> {
        wait_blocking(
            &self.handle.shared,
            None,
            "the channel to close",
            timeout,
            || self.state().try_waitclose(),
        )?
    }

    /// Items received but not yet consumed, and their size in wire bytes.
    /// Flow control keeps the bytes within the channel's window plus one
    /// message.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.send(1); channel.send(2)")?;
    /// ch.waitclose(None).await?;
    /// let (items, _bytes) = ch.queued();
    /// assert_eq!(items, 2);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn queued(&self) -> (usize, usize) {
        self.state().queued()
    }

    /// Whether either side has closed the channel.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("")?;
    /// ch.waitclose(None).await?;
    /// assert!(ch.is_closed());
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.state().is_closed()
    }

    /// Whether the other side will not receive anything more on this
    /// channel: it closed the channel, or the connection is gone. A
    /// producer can stop producing then.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.close()")?;
    /// ch.waitclose(None).await?;
    /// assert!(ch.peer_gone());
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn peer_gone(&self) -> bool {
        self.state().peer_gone()
    }

    /// Whether this side closed the channel ([`Channel::close`]); a
    /// [`Channel::close_write`] or the other side's close does not count.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.receive()")?;
    /// ch.close_write();
    /// assert!(!ch.closed_here());
    /// ch.close(None);
    /// assert!(ch.closed_here());
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn closed_here(&self) -> bool {
        self.state().closed_here()
    }

    /// Hands every item to `callback` instead of the receive queue: first
    /// the items already queued, in order, then each new one as it arrives,
    /// then `endmarker` (if given) once the channel ends — also when the
    /// remote failed or the worker died. After this, `receive` is an error.
    ///
    /// The callback runs on the gateway's reader and should return quickly.
    /// On popen, ssh and cmd gateways and on workers, the reader may be a
    /// thread or task that waits on another channel of the same gateway and
    /// reads the input meanwhile (see `Connection::spawn_direct`): the
    /// callback must not block, nor wait on the gateway itself.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.send(1); channel.send(2)")?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// ch.set_callback(move |v| { let _ = tx.send(v); }, Some("end".into()))?;
    /// let got: Vec<remex::Value> = (0..3)
    ///     .map(|_| rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap())
    ///     .collect();
    /// assert_eq!(got, vec![1.into(), 2.into(), "end".into()]);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn set_callback<F>(&self, callback: F, endmarker: Option<Value>) -> Result<()>
    where
        F: Fn(Value) + Send + Sync + 'static,
    {
        self.set_callback_in(RunMode::Sequential, callback, endmarker)
    }

    /// [`Channel::set_callback`] with a choice of where the callback runs:
    ///
    /// - [`RunMode::Sequential`]: on the gateway's reader, as `set_callback`.
    ///   A slow callback holds up every channel of the gateway.
    /// - [`RunMode::Concurrent`]: in a task of its own on the tokio runtime
    ///   the call is made in (an error outside one).
    /// - [`RunMode::Parallel`]: on a thread of its own. A callback that blocks
    ///   delays only its own channel.
    ///
    /// In the last two, an item counts as consumed once its callback has
    /// returned, so flow control still bounds what waits for the callback
    /// to the channel's window. Order and the endmarker's place after the
    /// last item are the same in every mode.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use std::sync::{Arc, Mutex};
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("for i in 0..3 { channel.send(i) }")?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// let done = remex::sync::Event::new();
    /// let d = done.clone();
    /// ch.set_callback_in(remex::sync::RunMode::Parallel, move |v| {
    ///     if v == remex::Value::Str("end".into()) { d.set() } else { s.lock().unwrap().push(v) }
    /// }, Some("end".into()))?;
    /// assert!(done.wait(Some(std::time::Duration::from_secs(10))).await);
    /// assert_eq!(seen.lock().unwrap().len(), 3);
    /// # Ok(()) }
    /// ```
    pub fn set_callback_in<F>(
        &self,
        mode: RunMode,
        callback: F,
        endmarker: Option<Value>,
    ) -> Result<()>
    where
        F: Fn(Value) + Send + Sync + 'static,
    {
        if mode == RunMode::Sequential {
            let cb = Callback::Inline(Arc::new(callback));
            return self.state().set_callback(self.shared(), cb, endmarker);
        }
        // Off the reader: items wait in a queue, and each counts as consumed
        // (its credit goes back) once its callback has returned. The consumer
        // ends when the channel releases the callback (and with it the
        // sender), after the last item.
        let (tx, rx) = flume::unbounded::<(Value, usize)>();
        let (shared, state) = (self.handle.shared.clone(), self.handle.state.clone());
        let handle = move |(v, size): (Value, usize)| {
            callback(v);
            state.consumed(&shared, size);
        };
        if mode == RunMode::Concurrent {
            let rt = tokio::runtime::Handle::try_current().map_err(|_| Error::Os {
                what: "set_callback_in(RunMode::Concurrent)".into(),
                detail: "needs a tokio runtime: call it inside one, or use RunMode::Parallel"
                    .into(),
            })?;
            rt.spawn(async move {
                while let Ok(item) = rx.recv_async().await {
                    handle(item);
                }
            });
        } else {
            std::thread::Builder::new()
                .name(format!("remex-cb-{}-{}", self.gateway_id(), self.id()))
                .spawn(move || {
                    while let Ok(item) = rx.recv() {
                        handle(item);
                    }
                })
                .map_err(|e| Error::Os {
                    what: "starting a callback thread".into(),
                    detail: e.to_string(),
                })?;
        }
        let cb = Callback::Deferred(Arc::new(move |v, size| {
            let _ = tx.send((v, size));
        }));
        self.state().set_callback(self.shared(), cb, endmarker)
    }

    /// The items as an async stream of `T`: ends at end-of-channel; a remote
    /// error or a type mismatch is yielded once, then the stream ends.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use futures::StreamExt;
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("for i in 0..3 { channel.send(i) }")?;
    /// let items: Vec<i64> = ch.stream::<i64>().map(|r| r.unwrap()).collect().await;
    /// assert_eq!(items, vec![0, 1, 2]);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn stream<T: DeserializeOwned + 'static>(
        &self,
    ) -> impl Stream<Item = Result<T>> + Send + 'static {
        futures::stream::unfold(Some(self.clone()), |ch| async move {
            let ch = ch?;
            match ch.receive::<T>().await {
                Ok(v) => Some((Ok(v), Some(ch))),
                Err(e) if e.is_end_of_channel() => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }

    /// The items as a blocking iterator, with the same ending as
    /// [`Channel::stream`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("for i in 0..3 { channel.send(i) }")?;
    /// let items = tokio::task::spawn_blocking(move || ch.iter::<i64>().collect::<remex::Result<Vec<_>>>())
    ///     .await
    ///     .unwrap()?;
    /// assert_eq!(items, vec![0, 1, 2]);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn iter<T: DeserializeOwned + 'static>(&self) -> impl Iterator<Item = Result<T>> + '_ {
        let mut done = false;
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            match self.receive_blocking::<T>(None) {
                Ok(v) => Some(Ok(v)),
                Err(e) if e.is_end_of_channel() => None,
                Err(e) => {
                    done = true;
                    Some(Err(e))
                }
            }
        })
    }
}
