//! Reading the input in the thread or task that waits for it.
//!
//! Without this, a thread blocked in `receive_blocking` waits for a reader
//! to decode its item and wake it: two thread wake-ups per message where a
//! plain pipe program has one, and on a virtual machine a wake-up that lands
//! on an idle vCPU costs tens of microseconds. Here, a thread about to block
//! on a channel takes the *read role* if nobody holds it, and reads and
//! dispatches the input itself until what it waits for is there (its own
//! item, or anything for other channels, which it hands on as the reader
//! would).
//!
//! While nobody holds the role, a background task watches the input
//! through an epoll set in which the input is armed one-shot; taking the
//! role disarms it, so that the background task never wakes for input a
//! waiting thread reads. A thread that got its item usually comes back soon
//! for the next one (a task serving requests), so when it lets go of the
//! role and nobody else waits, the input stays unwatched for a grace period
//! ([`GRACE`]): a timer wakes the background task only if nobody took the
//! role again by then. With other threads or tasks waiting, the input is
//! watched at once. In a steady exchange the background task never wakes,
//! and traffic nobody waits for (a new `Exec`, a status request) waits at
//! most the grace period. The background task also reports the end of the
//! input: a waiting thread that meets it leaves it there.
//!
//! A waiting thread whose last wait for input was short polls the input
//! for up to [`SPIN`] (or `$REMEX_BUSY_POLL_US` microseconds, 0 to turn
//! it off) before it sleeps: the peer of a request-reply exchange
//! then answers before either side falls asleep. An async task awaiting the
//! answer to the one item it sent does the same, yielding to the other
//! tasks of its runtime between polls ([`Shared::read_now`]).
//!
//! An eventfd, `wake`, wakes a thread polling the input (a local change,
//! such as a close from another thread, may have ended its wait, or the
//! connection was lost); a [`tokio::sync::Notify`], `nudge`, wakes the
//! background task (it missed its turn while the role was held, or the
//! connection was lost). The eventfd and the grace timer are made when
//! first needed: a connection whose waits are all async tasks (most of a
//! controller's) never polls from a thread nor lets go of the role, and
//! holds two descriptors for its reading (the input and the epoll set)
//! instead of four.
//!
//! Over 500 lines (about 645 of code): the read role, its hand-over through
//! the grace timer and the background task are one protocol over one set of
//! fds, kept together so that its invariants read in one place.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::BytesMut;
use event_listener::EventListener;
use parking_lot::Mutex;
use rustix::event::{epoll, eventfd, EventfdFlags, PollFd, PollFlags};
use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};

use super::chan::ChanState;
use super::input::{drain, end_of_input, make_room};
use super::spin::{busy_poll_bound, Quick};
use super::{EofReason, Shared, Step};
use crate::transport::secure::Opener;
use crate::transport::spare;
use crate::wire::MessageDecoder;

const INPUT: u64 = 0;
const TIMER: u64 = 1;

/// How long the input may stay unwatched after a waiting thread let go of
/// the read role (see the module docs).
pub(super) const GRACE: std::time::Duration = std::time::Duration::from_millis(1);

/// Who watches the input while nobody holds the read role.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// The background task, through the armed epoll set.
    Armed,
    /// The background task once the timer fires.
    Timer,
    /// A thread holds the role.
    Off,
}

/// The input side of a connection that reads directly.
pub(crate) struct DirectReader {
    fd: OwnedFd,
    epoll: OwnedFd,
    /// Wakes threads polling the input (made by the first poller).
    wake: OnceLock<OwnedFd>,
    /// The grace timer, in the epoll set (made when first set).
    timer: OnceLock<OwnedFd>,
    /// Wakes the background task, when it could not take its turn because
    /// the role was held (the input it was woken for may be disarmed), or
    /// to end.
    nudge: tokio::sync::Notify,
    /// The connection is lost: nobody reads any more.
    stopped: std::sync::atomic::AtomicBool,
    nudge_due: std::sync::atomic::AtomicBool,
    /// The timer is set (cleared by the background task when it fires).
    timer_armed: std::sync::atomic::AtomicBool,
    /// How long a waiter may poll before sleeping; zero: never.
    spin_limit: std::time::Duration,
    /// Threads polling the input now; `wake` is written only if some are.
    pollers: AtomicUsize,
    /// Threads and tasks waiting on a channel of this connection without
    /// the read role: while there are some, the input is watched at once.
    waiters: AtomicUsize,
    state: Mutex<ReadState>,
}

/// Held by whoever has the read role.
struct ReadState {
    buf: BytesMut,
    /// The record layer of an encrypted stream (`socket=`): what is read
    /// goes through it into `buf`.
    records: Option<Opener>,
    dec: MessageDecoder,
    /// A waiting thread met the end of the input (or a read error); the
    /// background task reports it.
    ended: bool,
    /// The stream is broken or lost: nobody reads any more.
    done: bool,
    watch: Watch,
    /// When the timer fires, with `watch == Timer`.
    timer_due: Instant,
}

/// A failed OS call, named; the OS error stays its source (so that
/// `transport::fds::explain` can tell "too many open files").
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
struct OsCall {
    what: String,
    source: io::Error,
}

/// Names the call that failed; the OS error stays its source.
fn named<T>(what: &str, r: rustix::io::Result<T>) -> io::Result<T> {
    r.map_err(|e| {
        let e = io::Error::from(e);
        io::Error::new(
            e.kind(),
            OsCall {
                what: what.to_string(),
                source: e,
            },
        )
    })
}

fn new_eventfd() -> io::Result<OwnedFd> {
    named(
        "eventfd",
        eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK),
    )
}

/// Wakes whoever waits on the eventfd. (Writing to an eventfd fails only
/// when its counter would overflow, and then it is readable anyway.)
fn bump(fd: impl AsFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// Clears the eventfd (non-blocking: a cleared one stays cleared).
fn reset(fd: impl AsFd) {
    let _ = rustix::io::read(fd, &mut [0u8; 8]);
}

/// The read role, held by a thread or task other than the background task.
struct Held<'a> {
    d: &'a DirectReader,
    guard: Option<parking_lot::MutexGuard<'a, ReadState>>,
    /// Taken from the background task by a polling thread: given back on
    /// drop, also if a callback run while dispatching panicked.
    reading: bool,
}

impl std::ops::Deref for Held<'_> {
    type Target = ReadState;
    fn deref(&self) -> &ReadState {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut ReadState {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(rs) = self.guard.as_mut().filter(|_| self.reading) {
            self.d.pollers.fetch_sub(1, Ordering::SeqCst);
            self.d.release(rs);
        }
        drop(self.guard.take());
        if self.d.nudge_due.swap(false, Ordering::SeqCst) {
            self.d.nudge.notify_one();
        }
    }
}

enum Wake {
    Input,
    Kicked,
    Stopped,
    TimedOut,
    Interrupted,
}

impl DirectReader {
    /// Takes over `fd` (non-blocking); `buf` holds bytes already read.
    /// With `records`, the input is an encrypted session: its whole
    /// records already received are opened into `buf` at once.
    pub(crate) fn new(
        fd: OwnedFd,
        mut buf: BytesMut,
        dec: MessageDecoder,
        mut records: Option<Opener>,
    ) -> io::Result<Self> {
        if let Some(r) = &mut records {
            // A bad record shows at the first read.
            let _ = r.open(&mut buf);
        }
        // The background task reads until the input would block, so it
        // must not block.
        let flags = named("fcntl F_GETFL", rustix::fs::fcntl_getfl(&fd))?;
        named(
            "fcntl F_SETFL",
            rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK),
        )?;
        let epoll = named("epoll_create1", epoll::create(epoll::CreateFlags::CLOEXEC))?;
        named(
            "epoll_ctl",
            epoll::add(
                &epoll,
                fd.as_fd(),
                epoll::EventData::new_u64(INPUT),
                epoll::EventFlags::empty(),
            ),
        )?;
        Ok(DirectReader {
            fd,
            epoll,
            wake: OnceLock::new(),
            timer: OnceLock::new(),
            nudge: tokio::sync::Notify::new(),
            stopped: Default::default(),
            nudge_due: Default::default(),
            timer_armed: Default::default(),
            spin_limit: busy_poll_bound(),
            pollers: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            state: Mutex::new(ReadState {
                buf,
                records,
                dec,
                ended: false,
                done: false,
                watch: Watch::Off,
                timer_due: Instant::now(),
            }),
        })
    }

    /// Takes the read role if it is free. Letting go of it wakes the
    /// background task if it missed its turn meanwhile.
    fn hold(&self) -> Option<Held<'_>> {
        let guard = self.state.try_lock()?;
        Some(Held {
            d: self,
            guard: Some(guard),
            reading: false,
        })
    }

    /// Lets the background task wake for input. (Modifying a registered fd
    /// cannot fail; if it did, the background task would only sleep while
    /// a thread holds the role.)
    fn arm(&self) {
        let _ = epoll::modify(
            &self.epoll,
            &self.fd,
            epoll::EventData::new_u64(INPUT),
            epoll::EventFlags::IN | epoll::EventFlags::ONESHOT,
        );
    }

    /// Keeps the background task asleep while a waiting thread reads.
    fn disarm(&self) {
        let _ = epoll::modify(
            &self.epoll,
            &self.fd,
            epoll::EventData::new_u64(INPUT),
            epoll::EventFlags::ONESHOT,
        );
    }

    /// The eventfd that wakes polling threads, made on first use; `None`
    /// if it cannot be made (out of descriptors: the thread then waits
    /// without polling).
    fn wake_fd(&self) -> Option<&OwnedFd> {
        if self.wake.get().is_none() {
            // A racing thread's eventfd may win: this one is then closed.
            let _ = self.wake.set(new_eventfd().ok()?);
        }
        self.wake.get()
    }

    /// The grace timer, made and added to the epoll set on first use;
    /// `None` if it cannot be (the input is then watched at once).
    fn timer_fd(&self) -> Option<&OwnedFd> {
        if let Some(t) = self.timer.get() {
            return Some(t);
        }
        // Only a thread holding the read role or the background task (which
        // excludes it) sets the timer: nobody races here.
        let timer = rustix::time::timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
        )
        .ok()?;
        let data = epoll::EventData::new_u64(TIMER);
        epoll::add(&self.epoll, &timer, data, epoll::EventFlags::IN).ok()?;
        let _ = self.timer.set(timer);
        self.timer.get()
    }

    /// Sets the timer to fire in `after`; `false` if there is no timer.
    /// (Setting a timerfd we own with a valid time cannot fail.)
    fn start_timer(&self, after: std::time::Duration) -> bool {
        let Some(timer) = self.timer_fd() else {
            return false;
        };
        let t = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: after.as_secs() as _,
                // Never zero, which would disarm the timer.
                tv_nsec: after.subsec_nanos().max(1) as _,
            },
        };
        let _ = rustix::time::timerfd_settime(timer, TimerfdTimerFlags::empty(), &t);
        true
    }

    /// For the background task: takes what its epoll set reports, without
    /// blocking, and clears the timer if it fired; `false` if nothing had.
    fn take_events(&self) -> bool {
        let mut events = [const { MaybeUninit::<epoll::Event>::uninit() }; 2];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let Ok((fired, _)) = epoll::wait(&self.epoll, &mut events, Some(&zero)) else {
            return false;
        };
        if fired.iter().any(|e| e.data.u64() == TIMER) {
            if let Some(t) = self.timer.get() {
                reset(t);
            }
            self.timer_armed.store(false, Ordering::SeqCst);
        }
        !fired.is_empty()
    }

    /// Hands the input to the background task as `rs` lets go of it.
    fn release(&self, rs: &mut ReadState) {
        if rs.done {
            return;
        }
        if rs.ended || self.waiters.load(Ordering::SeqCst) > 0 {
            self.arm();
            rs.watch = Watch::Armed;
        } else {
            // Programming a timer costs a microsecond (more on a VM): a
            // running one is left alone, and the background task sets it
            // again if the grace period was extended meanwhile.
            rs.timer_due = Instant::now() + GRACE;
            rs.watch = Watch::Timer;
            if !self.timer_armed.swap(true, Ordering::SeqCst) && !self.start_timer(GRACE) {
                self.timer_armed.store(false, Ordering::SeqCst);
                self.arm();
                rs.watch = Watch::Armed;
            }
        }
    }

    /// Takes the input from the background task.
    fn take(&self, rs: &mut ReadState) {
        if rs.watch == Watch::Armed {
            self.disarm();
        }
        // A running timer may still fire: the background task then finds
        // the role taken, or a later timer, and sleeps on.
        rs.watch = Watch::Off;
    }

    /// The connection ended: wakes every reader, for good.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        // A poller that makes the eventfd after this sees `stopped` (see
        // `read_while_waiting`).
        std::sync::atomic::fence(Ordering::SeqCst);
        if let Some(w) = self.wake.get() {
            bump(w);
        }
        self.nudge.notify_one();
    }

    /// Wakes a thread polling the input so that it checks its wait again.
    pub(crate) fn kick(&self) {
        if self.pollers.load(Ordering::SeqCst) > 0 {
            if let Some(w) = self.wake.get() {
                bump(w);
            }
        }
    }

    /// Waits for input, a kick or the stop, at most `timeout` (`None`: no
    /// bound).
    fn poll(&self, wake: &OwnedFd, timeout: Option<std::time::Duration>) -> Wake {
        let mut fds = [
            PollFd::new(&self.fd, PollFlags::IN),
            PollFd::new(wake, PollFlags::IN),
        ];
        let timeout = timeout.map(|t| Timespec {
            tv_sec: t.as_secs() as _,
            tv_nsec: t.subsec_nanos() as _,
        });
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Err(_) => return Wake::Interrupted,
            Ok(0) => return Wake::TimedOut,
            Ok(_) => {}
        }
        let (input, woken) = (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
        if woken {
            // `stopped` is set before `wake` is written: a stop that came
            // after this reset writes it again.
            reset(wake);
            if self.stopped.load(Ordering::SeqCst) {
                return Wake::Stopped;
            }
            if !input {
                return Wake::Kicked;
            }
        }
        Wake::Input
    }

    /// Tries to read for up to `spin_limit` from `began` (not past `deadline`)
    /// without sleeping; `None` if nothing came.
    fn spin_read(
        &self,
        buf: &mut BytesMut,
        records: &mut Option<Opener>,
        began: Instant,
        deadline: Option<Instant>,
    ) -> Option<io::Result<usize>> {
        let until = match deadline {
            Some(d) => d.min(began + self.spin_limit),
            None => began + self.spin_limit,
        };
        loop {
            match self.read_some(buf, records) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= until {
                        return None;
                    }
                    std::hint::spin_loop();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return Some(r),
            }
        }
    }

    /// Whether a wait with this record polls the input first.
    fn spins(&self, quick: &Quick) -> bool {
        !self.spin_limit.is_zero() && quick.spin_now()
    }

    /// Records a wait for input that took `took` (see [`Quick`]).
    fn record(&self, quick: &Quick, took: std::time::Duration) {
        quick.record(took < self.spin_limit);
    }

    /// One `read` into the spare capacity of `buf`; through `records`, as
    /// many as it takes to open a whole record (or until the input would
    /// block), the records opened in `buf` where they were read.
    fn read_some(&self, buf: &mut BytesMut, records: &mut Option<Opener>) -> io::Result<usize> {
        let Some(r) = records else {
            make_room(buf);
            return self.read_into(buf);
        };
        loop {
            // Records are read into `buf` and open there (no copy).
            let (read, opened) = r.read_open(buf, |room| self.read(room))?;
            if read == 0 {
                r.ended()?;
                return Ok(0);
            }
            if opened > 0 {
                return Ok(opened);
            }
        }
    }

    /// One `read` into the spare capacity of `buf`.
    fn read_into(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let room = buf.capacity() - buf.len();
        spare::read_into(buf, &[], room, |room| self.read(room))
    }

    /// One `read` of the input into `room`; the part it filled.
    fn read<'a>(&self, room: &'a mut [MaybeUninit<u8>]) -> io::Result<&'a mut [u8]> {
        let (filled, _) = rustix::io::read(&self.fd, room)?;
        Ok(filled)
    }
}

/// How long a wait for input may take: `Some(None)` without a deadline,
/// `None` once it has passed. (ppoll takes nanoseconds: no rounding.)
fn poll_timeout(deadline: Option<Instant>) -> Option<Option<std::time::Duration>> {
    match deadline {
        None => Some(None),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then_some(Some(left))
        }
    }
}

impl Shared {
    /// For a thread about to wait on `l`: if this connection reads directly
    /// and nobody reads now, reads the input here until `step` is ready or
    /// `deadline` passes. Otherwise, or then, returns a listener to wait on.
    /// With `recv` (the thread waits to receive from that channel), polls
    /// the input for a while before sleeping when the channel's record of
    /// its waits says so ([`SPIN`], [`Quick`]), unless busy-polling is
    /// off; the wait updates it. An item this thread reads for `recv` is
    /// its own: it wakes no other receiver ([`ChanState::claim`]).
    pub(crate) fn read_while_waiting<T>(
        self: &Arc<Self>,
        l: EventListener,
        deadline: Option<Instant>,
        recv: Option<&ChanState>,
        step: &mut dyn FnMut() -> Step<T>,
    ) -> Step<T> {
        let quick = recv.map(|c| &c.quick);
        let Some(d) = &self.direct else {
            return Step::Wait(l);
        };
        let Some(mut rs) = d.hold() else {
            return Step::Wait(l);
        };
        if rs.ended || rs.done {
            return Step::Wait(l);
        }
        let Some(wake) = d.wake_fd() else {
            return Step::Wait(l);
        };
        // A stop before the eventfd was made did not write it (see `stop`).
        std::sync::atomic::fence(Ordering::SeqCst);
        if d.stopped.load(Ordering::SeqCst) {
            return Step::Wait(l);
        }
        drop(l);
        d.take(&mut rs);
        d.pollers.fetch_add(1, Ordering::SeqCst);
        rs.reading = true;
        let rs = &mut *rs;
        loop {
            let l = match step() {
                Step::Ready(v) => break Step::Ready(v),
                Step::Wait(l) => l,
            };
            let Some(timeout) = poll_timeout(deadline) else {
                break Step::Wait(l);
            };
            let began = Instant::now();
            let spun = if quick.is_some_and(|q| d.spins(q)) {
                d.spin_read(&mut rs.buf, &mut rs.records, began, deadline)
            } else {
                None
            };
            let read = match spun {
                Some(r) => r,
                None => {
                    match d.poll(wake, timeout) {
                        Wake::Input => {}
                        Wake::Kicked | Wake::Interrupted => continue,
                        // The loss notified `l`'s event, or will.
                        Wake::Stopped | Wake::TimedOut => break Step::Wait(l),
                    }
                    d.read_some(&mut rs.buf, &mut rs.records)
                }
            };
            // Spin next time only if this input came within the spin.
            if let Some(q) = quick {
                d.record(q, began.elapsed());
            }
            match read {
                // The background task reports the end, which `l` hears.
                Ok(0) => {
                    rs.ended = true;
                    break Step::Wait(l);
                }
                Ok(_) => {
                    let claim = recv.map(ChanState::claim);
                    if !drain(self, &mut rs.dec, &mut rs.buf) {
                        // The item claimed, if any, is left for others.
                        if let Some(c) = claim {
                            c.pass_on();
                        }
                        rs.done = true;
                        break Step::Wait(l);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => {
                    rs.ended = true;
                    break Step::Wait(l);
                }
            }
        }
        // Dropping the role gives the input back (Held's drop).
    }

    /// For a task about to wait on a channel with this record of its
    /// waits: whether it should poll the input first, and how long.
    pub(crate) fn spin_for(&self, quick: &Quick) -> Option<std::time::Duration> {
        let d = self.direct.as_ref()?;
        d.spins(quick).then_some(d.spin_limit)
    }

    /// Records whether a task's wait was short (see [`Quick`]).
    pub(crate) fn waited(&self, quick: &Quick, took: std::time::Duration) {
        if let Some(d) = &self.direct {
            d.record(quick, took);
        }
    }

    /// Reads and dispatches what the input holds now, without waiting and
    /// without taking the read role from anyone: for a task polling the
    /// input in turns with the other tasks of its runtime. Returns whether
    /// anything was read, or `None` if this task cannot read here (someone
    /// else holds the read role, or the input ended): it should wait.
    pub(crate) fn read_now(self: &Arc<Self>) -> Option<bool> {
        let d = self.direct.as_ref()?;
        let mut rs = d.hold()?;
        if rs.ended || rs.done {
            return None;
        }
        let rs = &mut *rs;
        // The end of the input and errors are left to the background task,
        // which the input wakes.
        if !matches!(d.read_some(&mut rs.buf, &mut rs.records), Ok(1..)) {
            return Some(false);
        }
        if !drain(self, &mut rs.dec, &mut rs.buf) {
            rs.done = true;
        }
        Some(true)
    }

    /// Counts a thread or task waiting on a channel without the read role,
    /// until the guard drops (see [`DirectReader::release`]).
    pub(crate) fn waiting(&self) -> Option<Waiting<'_>> {
        let d = self.direct.as_ref()?;
        d.waiters.fetch_add(1, Ordering::SeqCst);
        // A thread that let go of the role just before may have started the
        // grace period: watch the input now.
        if let Some(mut rs) = d.hold() {
            if rs.watch == Watch::Timer && !rs.done {
                d.arm();
                rs.watch = Watch::Armed;
            }
        }
        Some(Waiting(d))
    }
}

/// See [`Shared::waiting`].
pub(crate) struct Waiting<'a>(&'a DirectReader);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The epoll set, for tokio to watch: its fd, and the connection that owns
/// it (held, so that the fd cannot close while it is watched). No extra fd
/// per connection, as a duplicate would cost.
struct EpollSet {
    fd: RawFd,
    _owner: Arc<Shared>,
}

impl AsRawFd for EpollSet {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

/// Decodes what the handshake left in the buffer and starts the background
/// reader, a task on the current runtime.
pub(crate) fn start(shared: Arc<Shared>, eof_reason: Option<EofReason>) -> io::Result<()> {
    let Some(d) = &shared.direct else {
        return Ok(());
    };
    let watched = EpollSet {
        fd: d.epoll.as_raw_fd(),
        _owner: shared.clone(),
    };
    // SAFETY: `watched` holds the connection whose direct reader owns the
    // epoll fd, so the fd stays open and names the same epoll set for as
    // long as the AsyncFd (which owns `watched`) is registered.
    let afd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(watched, tokio::io::Interest::READABLE)
    }
    .map_err(io::Error::from)?;
    {
        let mut rs = d.state.lock();
        let rs = &mut *rs;
        if drain(&shared, &mut rs.dec, &mut rs.buf) {
            d.arm();
            rs.watch = Watch::Armed;
        } else {
            rs.done = true;
        }
    }
    tokio::spawn(background(shared, afd, eof_reason));
    Ok(())
}

/// How a background read ended.
enum End {
    /// The input would block: watch it again.
    Pending,
    /// A protocol error, already reported.
    Broken,
    /// The end of the input, with the bytes of a cut frame.
    Eof(usize),
    Failed(String),
}

/// Reads while no waiting thread does, and reports the end of the input.
async fn background(
    shared: Arc<Shared>,
    afd: tokio::io::unix::AsyncFd<EpollSet>,
    eof_reason: Option<EofReason>,
) {
    let Some(d) = &shared.direct else { return };
    loop {
        tokio::select! {
            ready = afd.readable() => {
                let Ok(mut guard) = ready else {
                    return;
                };
                if !d.take_events() {
                    guard.clear_ready();
                    continue;
                }
            }
            () = d.nudge.notified() => {}
        }
        if d.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Some(end) = read_here(&shared, d) else {
            continue;
        };
        let why = match end {
            End::Pending => continue,
            End::Broken => return,
            End::Failed(why) => why,
            End::Eof(cut) => end_of_input(&eof_reason, cut).await,
        };
        shared.stream_lost(why);
        return;
    }
}

/// The background reader's turn: reads what there is, unless a thread
/// holds the read role (`None`).
fn read_here(shared: &Arc<Shared>, d: &DirectReader) -> Option<End> {
    // A thread holding the role hands the input back when it lets go: it
    // sees `nudge_due` and wakes this task again.
    let mut rs = match d.state.try_lock() {
        Some(rs) => rs,
        None => {
            d.nudge_due.store(true, Ordering::SeqCst);
            let rs = d.state.try_lock()?;
            d.nudge_due.store(false, Ordering::SeqCst);
            rs
        }
    };
    if rs.done {
        return Some(End::Broken);
    }
    let now = Instant::now();
    if rs.watch == Watch::Timer && now < rs.timer_due {
        // The grace period was extended since the timer was set. (Without
        // a timer, which cannot happen here, read now.)
        if d.timer_armed.swap(true, Ordering::SeqCst) || d.start_timer(rs.timer_due - now) {
            return None;
        }
        d.timer_armed.store(false, Ordering::SeqCst);
    }
    let rs = &mut *rs;
    let end = loop {
        if !drain(shared, &mut rs.dec, &mut rs.buf) {
            break End::Broken;
        }
        match d.read_some(&mut rs.buf, &mut rs.records) {
            Ok(0) => break End::Eof(rs.buf.len()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break End::Pending,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break End::Failed(format!("reading failed: {e}")),
        }
    };
    if let End::Pending = end {
        d.arm();
        rs.watch = Watch::Armed;
    } else {
        rs.done = true;
    }
    Some(end)
}
