//! The read role handed between a waiting thread and the background
//! reader. Mirrors `remex-core`'s `conn::direct`:
//!
//! - A thread waiting on a channel takes the read role if it is free
//!   (`DirectReader::hold`: `state.try_lock()`) and reads the input
//!   itself; letting go of it (`Held`'s drop) releases the lock, then,
//!   if the background task missed its turn meanwhile
//!   (`nudge_due.swap(false)`), wakes it (`nudge.notify_one()`, a tokio
//!   `Notify`: a permit is kept if the task is not waiting yet).
//! - The background task, woken for input, takes its turn
//!   (`read_here`): `try_lock`; if the role is held, it sets `nudge_due`
//!   and tries once more, so that a holder that let go in between is not
//!   missed; if that fails too, it sleeps until nudged.
//!
//! The property: the background task always gets its turn once the
//! holder lets go (else input nobody waits for, a new `Exec`, would wait
//! forever). Loom reports a deadlock if a turn is lost.

use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use loom::sync::{Condvar, Mutex};
use remex_models::{check, spawn_on};

/// tokio's `Notify` as the background task uses it: `notify_one` wakes
/// the waiter or leaves one permit.
#[derive(Default)]
struct Notify {
    permit: Mutex<bool>,
    cv: Condvar,
}

impl Notify {
    fn notify_one(&self) {
        *self.permit.lock().unwrap() = true;
        self.cv.notify_one();
    }

    fn notified(&self) {
        let mut p = self.permit.lock().unwrap();
        while !*p {
            p = self.cv.wait(p).unwrap();
        }
        *p = false;
    }
}

#[derive(Default)]
struct Reader {
    /// The read role (`DirectReader::state`, a parking_lot mutex taken
    /// with `try_lock` only: a compare-and-swap, modelled as one, since
    /// loom's `Mutex::try_lock` never fails while a thread holds it; it
    /// blocks instead).
    held: AtomicBool,
    /// Reads done with the role held (an atomic, so that the read is a
    /// point where loom may switch threads, as a `read` system call is).
    reads: AtomicU32,
    nudge_due: AtomicBool,
    nudge: Notify,
    /// The broken variant: no second `try_lock` after setting `nudge_due`.
    no_second_try: bool,
}

impl Reader {
    /// `state.try_lock()`.
    fn try_hold(&self) -> bool {
        self.held
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// The guard's drop.
    fn let_go(&self) {
        self.held.store(false, Ordering::Release);
    }

    /// A waiting thread takes the role if it is free, reads, and lets go
    /// (`Held`'s drop); with the role held, it waits on its channel
    /// instead (not modelled: it reads nothing).
    fn waiting_thread_reads(&self) {
        if !self.try_hold() {
            return;
        }
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.let_go();
        if self.nudge_due.swap(false, Ordering::SeqCst) {
            self.nudge.notify_one();
        }
    }

    /// `read_here`: the background task's turn; `false` if the role was
    /// held (the holder nudges it when it lets go).
    fn background_turn(&self) -> bool {
        if !self.try_hold() {
            self.nudge_due.store(true, Ordering::SeqCst);
            if self.no_second_try || !self.try_hold() {
                return false;
            }
            self.nudge_due.store(false, Ordering::SeqCst);
        }
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.let_go();
        true
    }

    /// The background task: woken for input, it loops until it has read
    /// (`background`: each `nudge.notified()` is another turn).
    fn background(&self) {
        while !self.background_turn() {
            self.nudge.notified();
        }
    }
}

fn model(no_second_try: bool) {
    check(move || {
        // A std `Arc`: loom's counts its drops as steps, and a drop while
        // a found deadlock unwinds would abort the test instead of failing it.
        let r = Arc::new(Reader {
            no_second_try,
            ..Reader::default()
        });
        // The thread holding the role, and the background task woken for
        // input at the same time.
        let holder = spawn_on(&r, |r| r.waiting_thread_reads());
        let background = spawn_on(&r, |r| r.background());
        holder.join().unwrap();
        background.join().unwrap();
        assert!(r.reads.load(Ordering::SeqCst) >= 1);
    });
}

#[test]
fn the_background_reader_never_misses_its_turn() {
    model(false);
}

#[test]
#[should_panic(expected = "deadlock")]
fn without_trying_again_a_turn_missed_while_the_role_is_let_go_is_lost() {
    model(true);
}

/// The connection's loss wakes a thread polling the input
/// (`DirectReader::stop`, `read_while_waiting`, `poll`). The eventfd that
/// wakes pollers is made by the first poller (`wake_fd`, a `OnceLock`),
/// so a stop may come before it exists: the stop stores `stopped`, fences,
/// then writes the eventfd if there is one; the poller makes the eventfd,
/// fences, then checks `stopped` before it polls. With both fences one of
/// them sees the other (a store-buffer pattern: without them, each may
/// miss the other's store and the poller sleeps for good).
#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    /// The eventfd exists (`wake.get().is_some()`).
    made: AtomicBool,
    /// Its counter, and pollers sleeping on it.
    counter: Mutex<u64>,
    readable: Condvar,
    /// The broken variant: no fences.
    no_fences: bool,
}

impl Stop {
    fn fence(&self) {
        if !self.no_fences {
            loom::sync::atomic::fence(Ordering::SeqCst);
        }
    }

    /// `DirectReader::stop`.
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.fence();
        if self.made.load(Ordering::Acquire) {
            *self.counter.lock().unwrap() += 1;
            self.readable.notify_all();
        }
    }

    /// `read_while_waiting` up to its poll, and `poll` seeing the stop.
    fn poller(&self) {
        self.made.store(true, Ordering::Release);
        self.fence();
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        let mut c = self.counter.lock().unwrap();
        while *c == 0 {
            c = self.readable.wait(c).unwrap();
        }
        assert!(self.stopped.load(Ordering::SeqCst));
    }
}

fn stop_model(no_fences: bool) {
    check(move || {
        let s = Arc::new(Stop {
            no_fences,
            ..Stop::default()
        });
        let poller = spawn_on(&s, |s| s.poller());
        let stopper = spawn_on(&s, |s| s.stop());
        stopper.join().unwrap();
        poller.join().unwrap();
    });
}

#[test]
fn a_stop_always_reaches_a_polling_thread() {
    stop_model(false);
}

#[test]
#[should_panic(expected = "deadlock")]
fn without_the_fences_a_stop_before_the_eventfd_is_missed() {
    stop_model(true);
}
