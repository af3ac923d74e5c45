//! A channel's receivers, woken one at a time, and the claim of a thread
//! that reads the input for itself. Mirrors `remex-core`'s
//! `conn::chan::ChanState`:
//!
//! - `deliver`: the item is queued under the machine's lock; then, unless
//!   this thread claimed the channel (`take_claim`), `readable.notify(1)`:
//!   one receiver is woken unless one already is.
//! - `try_receive`: under the lock, take the front item; if items remain,
//!   `notify(1)` after the lock (pass the turn on); if none, register a
//!   listener *under the lock* and wait on it.
//! - `claim` / `Claim::pass_on`: a thread about to dispatch input it read
//!   claims the channel; an item queued then wakes nobody (the thread
//!   takes it itself); a thread that will not take it after all wakes a
//!   receiver for it.
//!
//! Every model ends only if no wake-up is lost: loom reports a deadlock
//! (every thread blocked) otherwise.

use std::collections::VecDeque;

use std::sync::Arc;

use loom::sync::Mutex;
use remex_models::{check, spawn_on, Event};

/// The channel: the machine's queue under its lock, and `readable`.
#[derive(Default)]
struct Chan {
    queue: Mutex<VecDeque<u32>>,
    readable: Event,
    /// Broken variants, to show that the model catches them.
    no_turn_passing: bool,
    listen_after_unlock: bool,
}

impl Chan {
    /// `ChanState::deliver`; `claim`: this thread's claim on the channel
    /// (`take_claim` clears it).
    fn deliver(&self, v: u32, claim: &mut bool) {
        self.queue.lock().unwrap().push_back(v);
        if !std::mem::take(claim) {
            self.readable.notify(1);
        }
    }

    /// `ChanState::try_receive` until an item comes (the blocking
    /// receive's loop: `Step::Wait(l)` -> `l.wait()` -> try again).
    fn receive(&self) -> u32 {
        loop {
            let mut q = self.queue.lock().unwrap();
            if let Some(v) = q.pop_front() {
                let more = !q.is_empty();
                drop(q);
                if more && !self.no_turn_passing {
                    self.readable.notify(1);
                }
                return v;
            }
            let l = if self.listen_after_unlock {
                drop(q);
                self.readable.listen()
            } else {
                let l = self.readable.listen();
                drop(q);
                l
            };
            l.wait();
        }
    }
}

/// Two receivers, two items delivered back to back by the reader: the
/// second `notify(1)` may find the first receiver still notified (and so
/// wake nobody); the receiver that takes the first item wakes the next.
fn two_receivers(chan: fn() -> Chan) {
    check(move || {
        let c = Arc::new(chan());
        let receivers: Vec<_> = (0..2).map(|_| spawn_on(&c, |c| c.receive())).collect();
        let mut no_claim = false;
        c.deliver(1, &mut no_claim);
        c.deliver(2, &mut no_claim);
        let mut got: Vec<u32> = receivers.into_iter().map(|r| r.join().unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![1, 2]);
    });
}

#[test]
fn receivers_are_woken_one_at_a_time_and_none_is_left_asleep() {
    two_receivers(Chan::default);
}

#[test]
#[should_panic(expected = "deadlock")]
fn without_passing_the_turn_a_receiver_sleeps_with_an_item_queued() {
    two_receivers(|| Chan {
        no_turn_passing: true,
        ..Chan::default()
    });
}

#[test]
#[should_panic(expected = "deadlock")]
fn a_listener_registered_after_the_lock_misses_its_item() {
    check(|| {
        let c = Arc::new(Chan {
            listen_after_unlock: true,
            ..Chan::default()
        });
        let r = spawn_on(&c, |c| c.receive());
        c.deliver(7, &mut false);
        assert_eq!(r.join().unwrap(), 7);
    });
}

/// A thread reads the input for itself (the direct reader) and claims
/// the channel while it dispatches item 1, which it then takes itself;
/// the background reader delivers item 2 meanwhile; another receiver
/// waits. Both receivers get an item: the claimed item woke nobody, and
/// nobody waits for it.
#[test]
fn a_claimed_item_is_taken_by_its_claimant_and_wakes_nobody() {
    check(|| {
        let c = Arc::new(Chan::default());
        let other = spawn_on(&c, |c| c.receive());
        let background = spawn_on(&c, |c| c.deliver(2, &mut false));
        // `read_while_waiting`: claim, dispatch what was read, then take
        // the next item (the claimed one, or one queued before it).
        let mut claim = true;
        c.deliver(1, &mut claim);
        assert!(!claim, "the claim was used");
        let mine = c.receive();
        background.join().unwrap();
        let mut got = vec![mine, other.join().unwrap()];
        got.sort();
        assert_eq!(got, vec![1, 2]);
    });
}

/// The claimant dispatches item 1 under its claim but leaves without
/// taking it (its own wait ended another way): `Claim::pass_on` wakes a
/// receiver for it.
fn a_claim_given_up(pass_on: bool) {
    check(move || {
        let c = Arc::new(Chan::default());
        let other = spawn_on(&c, |c| c.receive());
        let mut claim = true;
        c.deliver(1, &mut claim);
        // `Claim::pass_on`: the claim was used (cleared), so nobody was
        // woken for the item: wake one.
        if pass_on && !claim {
            c.readable.notify(1);
        }
        assert_eq!(other.join().unwrap(), 1);
    });
}

#[test]
fn a_claim_given_up_is_passed_on() {
    a_claim_given_up(true);
}

#[test]
#[should_panic(expected = "deadlock")]
fn a_claim_given_up_without_passing_it_on_leaves_the_item_unseen() {
    a_claim_given_up(false);
}
