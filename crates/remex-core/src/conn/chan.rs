//! A channel's state shared by the engine and the handles: the protocol
//! state ([`ChanMachine`]) under a lock, the events its waiters wait on,
//! and the actions the machine asks for (wake-ups, callback calls, credit
//! and close messages), performed after the lock is released.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use event_listener::{Event, EventListener};
use parking_lot::Mutex;

/// How the remote side ended a channel, with remex's error.
pub(crate) type Terminal = super::machine::Terminal<Error>;
use super::machine::{
    credit_parts, CallbackAlreadySet, ChanMachine, Delivery, Overrun, Receive, Reserve, WaitClose,
};
use super::{Callback, Quick, Shared};
use crate::error::{Error, Result};
use crate::value::Value;
use crate::wire::Message;

/// The state of one channel, shared by the engine and the handles.
pub(crate) struct ChanState {
    pub(crate) id: u32,
    machine: Mutex<ChanMachine<Value, Callback, Error>>,
    /// Receivers wait here: one at a time while items wait, all at the end.
    readable: Event,
    /// `waitclose` waits here, apart from receivers, so that it can never
    /// absorb an item's wake-up.
    ended: Event,
    writable: Event,
    /// Serialises callback invocations so that items keep their order.
    cb_order: Mutex<()>,
    pub(crate) handles: AtomicUsize,
    /// A handle was made for it. A channel that arrived inside a value and
    /// was not attached yet stays registered after the peer closed it, so
    /// that the items it holds are there when it is attached.
    pub(crate) attached: AtomicBool,
    /// Items sent and received on this channel, to tell a request-reply
    /// exchange (see [`ChanState::awaits_answer`]).
    pub(crate) sent: AtomicU64,
    received: AtomicU64,
    /// Its recent waits for items: whether the next polls the input first.
    pub(crate) quick: Quick,
    /// A local channel's destination: sends go here, not to the peer.
    pub(crate) sink: Option<Sink>,
    /// Where the worker's log events of the call on this channel go:
    /// under the span that made the call (see [`LogRoute`]).
    pub(crate) log_route: Mutex<Option<LogRoute>>,
}

/// The span a worker's log event re-emits under: the one the call was
/// made in, or, for a channel that carries many requests (a task lane),
/// the one that request's submission was made in.
#[derive(Clone)]
pub enum LogRoute {
    /// Every event of the channel under this span.
    Span(tracing::Span),
    /// The span of request `id` (`None`: an event outside any request).
    Requests(Arc<dyn Fn(Option<i64>) -> Option<tracing::Span> + Send + Sync>),
}

impl std::fmt::Debug for LogRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogRoute::Span(s) => f.debug_tuple("Span").field(s).finish(),
            LogRoute::Requests(_) => f.write_str("Requests(..)"),
        }
    }
}

/// Where a local channel's items go (see [`super::Connection::local_channel`]).
pub type Sink = Arc<dyn Fn(Value) -> Result<()> + Send + Sync>;

thread_local! {
    /// The channel (its address) whose next queued item this thread takes
    /// itself, while it dispatches input it read for it (see
    /// [`ChanState::claim`]); 0: none.
    static CLAIM: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A thread's claim on the next item queued on a channel
/// ([`ChanState::claim`]); dropped, an unused claim lapses.
// Claims are made by the direct reader only (Linux, not `portable`).
#[cfg_attr(any(not(target_os = "linux"), feature = "portable"), allow(dead_code))]
pub(crate) struct Claim<'a>(&'a ChanState);

#[cfg_attr(any(not(target_os = "linux"), feature = "portable"), allow(dead_code))]
impl Claim<'_> {
    fn addr(&self) -> usize {
        self.0 as *const ChanState as usize
    }

    /// For a thread that will not take the item after all: if the claim
    /// was used, wakes a receiver for it.
    pub(crate) fn pass_on(self) {
        if CLAIM.with(|c| c.get()) != self.addr() {
            self.0.readable.notify(1);
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let me = self.addr();
        CLAIM.with(|c| {
            if c.get() == me {
                c.set(0);
            }
        });
    }
}

/// Either a result now, or a listener to wait on before trying again.
pub(crate) enum Step<T> {
    Ready(T),
    Wait(EventListener),
}

impl ChanState {
    fn with(id: u32, machine: ChanMachine<Value, Callback, Error>, sink: Option<Sink>) -> Self {
        ChanState {
            id,
            machine: Mutex::new(machine),
            readable: Event::new(),
            ended: Event::new(),
            writable: Event::new(),
            cb_order: Mutex::new(()),
            handles: AtomicUsize::new(0),
            attached: Default::default(),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            quick: Quick::default(),
            sink,
            log_route: Mutex::new(None),
        }
    }

    /// The span a worker's event in request `request` of this channel
    /// goes under.
    pub(crate) fn log_parent(&self, request: Option<i64>) -> Option<tracing::Span> {
        match self.log_route.lock().as_ref()? {
            LogRoute::Span(s) => Some(s.clone()),
            LogRoute::Requests(f) => f(request),
        }
    }

    /// A channel with a peer.
    pub(crate) fn new(id: u32, window: u32) -> Self {
        Self::with(id, ChanMachine::new(window), None)
    }

    /// A local channel: no peer, its sends go to `sink`.
    pub(crate) fn local(id: u32, window: u32, sink: Option<Sink>) -> Self {
        Self::with(id, ChanMachine::unpeered(window), sink)
    }

    /// One of ours that ended and left the table.
    pub(crate) fn ended(id: u32, window: u32) -> Self {
        Self::with(id, ChanMachine::ended(window), None)
    }

    /// Takes an item from the peer; the overrun if the peer sent past the
    /// window (the item is dropped).
    pub(crate) fn deliver(
        &self,
        shared: &Shared,
        value: Value,
        size: usize,
    ) -> std::result::Result<(), Overrun> {
        let delivery = self.machine.lock().on_data(value, size)?;
        match delivery {
            // One receiver is woken, unless one already is; the receiver
            // that takes an item wakes the next while items remain (see
            // `try_receive`). So a burst of items wakes receivers one at a
            // time, and a receiver that comes back quickly (a trivial task
            // of a lane) takes the rest before others wake: not a thread
            // wake-up per item.
            Delivery::Queued => {
                if !self.take_claim() {
                    self.readable.notify(1);
                }
            }
            Delivery::Callback(cb, value) => {
                let order = self.cb_order.lock();
                let now = cb.call(value, size);
                drop(order);
                if now {
                    self.consumed(shared, size);
                }
            }
            Delivery::Dropped => {}
        }
        Ok(())
    }

    /// For a thread that waits to receive from this channel and reads the
    /// input itself: the next item queued here while the claim is held is
    /// its own, and wakes no other receiver (it takes the item as soon as
    /// it is done dispatching). Without this, each request a lane's reading
    /// thread read would wake a sleeping executor that then found nothing.
    #[cfg_attr(any(not(target_os = "linux"), feature = "portable"), allow(dead_code))]
    pub(crate) fn claim(&self) -> Claim<'_> {
        let c = Claim(self);
        CLAIM.with(|x| x.set(c.addr()));
        c
    }

    /// Uses this thread's claim on this channel, if it holds one.
    fn take_claim(&self) -> bool {
        let me = self as *const ChanState as usize;
        CLAIM.with(|c| {
            let mine = c.get() == me;
            if mine {
                c.set(0);
            }
            mine
        })
    }

    /// Counts `size` bytes as consumed and returns credit when enough has
    /// accumulated.
    pub(crate) fn consumed(&self, shared: &Shared, size: usize) {
        let give = self.machine.lock().on_consumed(size);
        for bytes in credit_parts(give) {
            let _ = shared.push(&Message::Credit {
                channel: self.id,
                bytes,
            });
        }
    }

    pub(crate) fn add_credit(&self, bytes: u32) {
        self.machine.lock().on_credit(bytes);
        self.writable.notify(usize::MAX);
    }

    /// Whether a thread or task may be waiting on this channel (and so a
    /// thread polling the input for it must look again after a local
    /// change). Listeners are registered under the machine's lock, before
    /// the state is checked: one registered after a change sees it.
    fn has_waiters(&self) -> bool {
        self.readable.total_listeners() > 0
            || self.ended.total_listeners() > 0
            || self.writable.total_listeners() > 0
    }

    /// Kicks a thread polling the input if it may be waiting on this
    /// channel (a kick is an eventfd write and a wake-up: a lane's
    /// per-task channels, which nobody waits on, close without one).
    fn kick_waiters(&self, shared: &Shared) {
        if self.has_waiters() {
            shared.kick_readers();
        }
    }

    fn wake_all(&self) {
        self.readable.notify(usize::MAX);
        self.ended.notify(usize::MAX);
        self.writable.notify(usize::MAX);
    }

    pub(crate) fn remote_closed(&self, shared: &Shared, term: Terminal, peer_gone: bool) {
        // A released callback is dropped after the lock: it may hold this
        // channel's last handle, whose drop takes the lock.
        let end = self.machine.lock().on_remote_end(term, peer_gone);
        if end.finished && self.attached.load(Ordering::Acquire) {
            shared.remove(self.id);
        }
        self.wake_all();
        if let Some((cb, marker)) = end.endmarker {
            let _order = self.cb_order.lock();
            cb.call(marker, 0);
        }
        drop(end.released);
    }

    /// This side sent exactly one item more than it received: a receive
    /// now waits for the answer of a request-reply exchange.
    pub(crate) fn awaits_answer(&self) -> bool {
        self.sent.load(Ordering::Relaxed) == self.received.load(Ordering::Relaxed) + 1
    }

    pub(crate) fn try_receive(&self, shared: &Shared) -> Step<Result<Value>> {
        // Listening happens under the lock, so that an item delivered after
        // the check wakes this listener.
        let mut m = self.machine.lock();
        match m.receive() {
            Receive::Item(v, size) => {
                let more = m.has_items();
                drop(m);
                if more {
                    // Pass the turn on (see `deliver`).
                    self.readable.notify(1);
                }
                self.received.fetch_add(1, Ordering::Relaxed);
                self.consumed(shared, size);
                Step::Ready(Ok(v))
            }
            Receive::End(t) => Step::Ready(Err(self.terminal_error(shared, t))),
            Receive::CallbackSet => Step::Ready(Err(Error::CallbackSet { channel: self.id })),
            Receive::Empty => Step::Wait(self.readable.listen()),
        }
    }

    fn terminal_error(&self, shared: &Shared, t: Terminal) -> Error {
        match t {
            Terminal::Eof => Error::EndOfChannel {
                gateway: shared.name.clone(),
                channel: self.id,
            },
            Terminal::Failed(e) => e,
        }
    }

    /// `Ok(())` once the remote side has closed; its error if it failed.
    pub(crate) fn try_waitclose(&self) -> Step<Result<()>> {
        let m = self.machine.lock();
        match m.wait_close() {
            WaitClose::Closed => Step::Ready(Ok(())),
            WaitClose::Failed(e) => Step::Ready(Err(e)),
            WaitClose::Pending => Step::Wait(self.ended.listen()),
        }
    }

    /// Takes `size` bytes of send credit, or says why sending is impossible.
    pub(crate) fn try_reserve(&self, shared: &Shared, size: usize) -> Step<Result<()>> {
        let mut m = self.machine.lock();
        Step::Ready(Err(match m.reserve(size) {
            Reserve::Granted => return Step::Ready(Ok(())),
            Reserve::NoCredit => return Step::Wait(self.writable.listen()),
            Reserve::ClosedHere => Error::ChannelClosed {
                gateway: shared.name.clone(),
                channel: self.id,
                by_remote: false,
            },
            Reserve::PeerGone(Some(lost)) => lost,
            Reserve::PeerGone(None) => Error::ChannelClosed {
                gateway: shared.name.clone(),
                channel: self.id,
                by_remote: true,
            },
        }))
    }

    /// Marks the channel closed from this side; returns whether a close
    /// message should be sent (not if already closed or the peer is gone).
    pub(crate) fn local_close(&self, shared: &Shared, last_only: bool) -> bool {
        let Some(close) = self.machine.lock().close(last_only) else {
            return false;
        };
        if close.finished {
            shared.remove(self.id);
        }
        self.kick_waiters(shared);
        self.wake_all();
        close.send
    }

    pub(crate) fn queued(&self) -> (usize, usize) {
        self.machine.lock().queued()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.machine.lock().is_closed()
    }

    pub(crate) fn peer_gone(&self) -> bool {
        self.machine.lock().peer_gone()
    }

    /// This side closed the channel.
    pub(crate) fn closed_here(&self) -> bool {
        self.machine.lock().closed_here()
    }

    pub(crate) fn has_callback(&self) -> bool {
        self.machine.lock().has_callback()
    }

    pub(crate) fn set_callback(
        &self,
        shared: &Shared,
        cb: Callback,
        endmarker: Option<Value>,
    ) -> Result<()> {
        let order = self.cb_order.lock();
        let start = self
            .machine
            .lock()
            .set_callback(&cb, endmarker)
            .map_err(|CallbackAlreadySet| Error::CallbackSet { channel: self.id })?;
        let mut total = 0;
        for (v, size) in start.queued {
            if cb.call(v, size) {
                total += size;
            }
        }
        if let Some(m) = start.endmarker {
            cb.call(m, 0);
        }
        drop(order);
        if total > 0 {
            self.consumed(shared, total);
        }
        self.kick_waiters(shared);
        Ok(())
    }
}
