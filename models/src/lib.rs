//! Models of remex-core's concurrency protocols, checked by
//! [loom](https://docs.rs/loom) over every interleaving of their threads
//! (up to a bound on preemptions).
//!
//! Each model restates one protocol of `remex-core` step by step, with
//! loom's primitives in place of parking_lot's and event-listener's, and
//! names the functions it mirrors; a change to one of those functions
//! must change its model. A model is not the code: it checks that the
//! protocol is right (no lost wake-up, no use of a closed descriptor),
//! and each comes with a broken variant that loom must catch, so that a
//! model that checks nothing fails. (Loom cannot run remex-core itself:
//! its I/O, tokio and event-listener are not loom's, and tokio does not
//! build with `--cfg loom` as a dependency.)
//!
//! - `tests/wakeups.rs`: a channel's receivers are woken one at a time
//!   (`conn::chan::ChanState::deliver`, `try_receive`), and a thread that
//!   reads the input for itself claims its own item
//!   (`ChanState::claim`, `Claim::pass_on`).
//! - `tests/lent_fd.rs`: the writer's fd lent to senders is taken back
//!   under the output lock before it is closed (`conn::output::Lent`,
//!   `OutBuf::try_direct`).
//! - `tests/read_role.rs`: the read role handed between waiting threads
//!   and the background reader (`conn::direct`: `hold`, `release`,
//!   `take`, the background task's turn), and the loss reaching a
//!   polling thread (`stop`, `wake_fd`, SeqCst fences on both sides).
//!
//! The models share their state through `std::sync::Arc`, not loom's:
//! loom counts an `Arc`'s drop as a step, and one made while a deadlock
//! it found unwinds aborts the test instead of failing it.
//!
//! The bound: [`check`] explores every interleaving with at most
//! [`PREEMPTIONS`] preemptions (loom's advice for models of this size;
//! most bugs need one or two), which runs in seconds.

#![forbid(unsafe_code)]

use loom::sync::{Condvar, Mutex};

/// At most this many preemptions per explored execution.
pub const PREEMPTIONS: usize = 3;

/// Runs `f` under loom with the bound this crate uses.
///
/// ```
/// use std::sync::Arc;
/// use loom::sync::atomic::{AtomicUsize, Ordering};
/// remex_models::check(|| {
///     let n = Arc::new(AtomicUsize::new(0));
///     let m = n.clone();
///     let t = loom::thread::spawn(move || m.fetch_add(1, Ordering::SeqCst));
///     n.fetch_add(1, Ordering::SeqCst);
///     t.join().unwrap();
///     assert_eq!(n.load(Ordering::SeqCst), 2); // in every interleaving
/// });
/// ```
pub fn check<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(PREEMPTIONS);
    b.check(f);
}

/// Starts a loom thread that runs `f` on its own handle to `shared` (a
/// std `Arc`: see the models for why not loom's).
///
/// ```
/// use std::sync::Arc;
/// use loom::sync::atomic::{AtomicUsize, Ordering};
/// remex_models::check(|| {
///     let n = Arc::new(AtomicUsize::new(0));
///     let t = remex_models::spawn_on(&n, |n| n.fetch_add(1, Ordering::SeqCst));
///     n.fetch_add(1, Ordering::SeqCst);
///     t.join().unwrap();
///     assert_eq!(n.load(Ordering::SeqCst), 2);
/// });
/// ```
pub fn spawn_on<T, R>(
    shared: &std::sync::Arc<T>,
    f: impl FnOnce(&T) -> R + Send + 'static,
) -> loom::thread::JoinHandle<R>
where
    T: Send + Sync + 'static,
    R: Send + 'static,
{
    let shared = shared.clone();
    loom::thread::spawn(move || f(&shared))
}

/// The part of event-listener's `Event` the channel relies on, on loom's
/// primitives: listeners registered in order; `notify(n)` makes sure at
/// least `n` registered listeners are notified (not `n` more: one
/// already notified counts); a notified listener that is dropped without
/// waiting passes its notification on.
///
/// ```
/// use std::sync::Arc;
/// use remex_models::{check, Event};
/// check(|| {
///     let e = Arc::new(Event::default());
///     let (a, b) = (e.listen(), e.listen());
///     e.notify(1);
///     e.notify(1); // one is notified already: nobody more
///     drop(a); // unused, its notification goes to `b`
///     b.wait();
/// });
/// ```
#[derive(Default, Debug)]
pub struct Event {
    listeners: Mutex<Listeners>,
    cv: Condvar,
}

#[derive(Default, Debug)]
struct Listeners {
    next: usize,
    /// (id, notified), in registration order.
    entries: Vec<(usize, bool)>,
}

impl Listeners {
    fn notify(&mut self, n: usize) -> bool {
        let already = self.entries.iter().filter(|e| e.1).count();
        let mut more = n.saturating_sub(already);
        let mut any = false;
        for e in self.entries.iter_mut().filter(|e| !e.1) {
            if more == 0 {
                break;
            }
            e.1 = true;
            more -= 1;
            any = true;
        }
        any
    }
}

/// A registered listener of an [`Event`].
#[derive(Debug)]
pub struct Listener<'a> {
    event: &'a Event,
    id: usize,
    done: bool,
}

impl Event {
    /// Registers a listener (event-listener's `listen`).
    pub fn listen(&self) -> Listener<'_> {
        let mut l = self.listeners.lock().unwrap();
        let id = l.next;
        l.next += 1;
        l.entries.push((id, false));
        Listener {
            event: self,
            id,
            done: false,
        }
    }

    /// Makes sure at least `n` listeners are notified.
    pub fn notify(&self, n: usize) {
        if self.listeners.lock().unwrap().notify(n) {
            self.cv.notify_all();
        }
    }
}

impl Listener<'_> {
    /// Blocks until notified.
    pub fn wait(mut self) {
        let mut l = self.event.listeners.lock().unwrap();
        loop {
            let i = l
                .entries
                .iter()
                .position(|e| e.0 == self.id)
                .expect("registered until it returns");
            if l.entries[i].1 {
                l.entries.remove(i);
                self.done = true;
                return;
            }
            l = self.event.cv.wait(l).unwrap();
        }
    }
}

impl Drop for Listener<'_> {
    fn drop(&mut self) {
        // Unwinding from a deadlock loom found: touching loom's objects
        // now would abort the test instead of failing it.
        if self.done || std::thread::panicking() {
            return;
        }
        let mut l = self.event.listeners.lock().unwrap();
        if let Some(i) = l.entries.iter().position(|e| e.0 == self.id) {
            let (_, notified) = l.entries.remove(i);
            // A notification nobody used goes to another listener.
            if notified && l.notify(1) {
                drop(l);
                self.event.cv.notify_all();
            }
        }
    }
}
