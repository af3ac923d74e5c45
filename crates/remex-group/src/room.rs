//! Where the pool's next task goes, in time independent of the number of
//! workers: the least-loaded lane with room, the one that reached that
//! load first among equals (so tasks spread over the workers before any
//! has two, and an idle worker is never passed over for a busy one).
//!
//! The lanes are kept in one queue per load (tasks in flight): a lane is
//! queued at its load when it opens, when a task leaves it (a reply, a
//! cancel, a task given back) and after a task is sent to it. An entry
//! is checked when it is taken (its lane alive, its gateway running, its
//! load still the queue's): one made stale by a later change is dropped,
//! so a lane is never queued at two loads that hold. Taking looks at the
//! loads from 0 up to the lanes' capacity (twice their executors: 8 by
//! default). Stale entries are dropped as they are met, and all at once
//! when the queues hold more than four entries per place of the live
//! lanes, so their memory is bounded by the pool's capacity.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

/// What the room keeps by load: a lane ([`crate::lane::Lane`]).
pub(crate) trait Loaded {
    /// Tasks in flight.
    fn load(&self) -> usize;
    /// Places: tasks it may hold in flight.
    fn capacity(&self) -> usize;
    /// Alive, with its gateway running.
    fn usable(&self) -> bool;
    /// Gone for good.
    fn is_dead(&self) -> bool;
}

/// The pool's lanes by load, and its count of live lanes.
pub(crate) struct Room<L> {
    levels: Mutex<Levels<L>>,
    /// Lanes opened and not dead.
    live: AtomicUsize,
}

impl<L> Default for Room<L> {
    fn default() -> Self {
        Room {
            levels: Mutex::new(Levels {
                by_load: Vec::new(),
                entries: 0,
                places: 0,
            }),
            live: AtomicUsize::new(0),
        }
    }
}

struct Levels<L> {
    /// `by_load[n]`: lanes with `n` tasks in flight, oldest first.
    by_load: Vec<VecDeque<Weak<L>>>,
    /// Entries in all the queues.
    entries: usize,
    /// The places (capacities) of the live lanes: the compaction's
    /// yardstick.
    places: usize,
}

impl<L: Loaded> Levels<L> {
    fn push(&mut self, lane: &Arc<L>, load: usize) {
        if load >= lane.capacity() {
            return;
        }
        if self.by_load.len() <= load {
            self.by_load.resize_with(load + 1, VecDeque::new);
        }
        self.by_load[load].push_back(Arc::downgrade(lane));
        self.entries += 1;
        if self.entries > 4 * self.places + 64 {
            self.compact();
        }
    }

    /// Drops the entries that no longer hold (at most one per live lane
    /// is left).
    fn compact(&mut self) {
        let mut entries = 0;
        let mut seen = std::collections::HashSet::new();
        for (load, q) in self.by_load.iter_mut().enumerate() {
            q.retain(|w| {
                w.upgrade().is_some_and(|l| {
                    !l.is_dead() && l.load() == load && seen.insert(Arc::as_ptr(&l))
                })
            });
            entries += q.len();
        }
        self.entries = entries;
    }
}

impl<L: Loaded> Room<L> {
    /// New lanes (load 0), in the group's order.
    pub(crate) fn opened(&self, lanes: &[Arc<L>]) {
        self.live.fetch_add(lanes.len(), Ordering::AcqRel);
        let mut levels = self.levels.lock();
        levels.places += lanes.iter().map(|l| l.capacity()).sum::<usize>();
        for lane in lanes {
            levels.push(lane, 0);
        }
    }

    /// `lane` now has `load` tasks in flight (a task left it, or was sent
    /// to it).
    pub(crate) fn at(&self, lane: &Arc<L>, load: usize) {
        self.levels.lock().push(lane, load);
    }

    /// A lane of `capacity` places died.
    pub(crate) fn lane_died(&self, capacity: usize) {
        self.live.fetch_sub(1, Ordering::AcqRel);
        let mut levels = self.levels.lock();
        levels.places = levels.places.saturating_sub(capacity);
    }

    /// Lanes opened and not dead.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// The least-loaded usable lane with room, or `None` when every lane
    /// is full. The caller sends it one task and then reports its new
    /// load ([`Room::at`]).
    pub(crate) fn take(&self) -> Option<Arc<L>> {
        let mut levels = self.levels.lock();
        let Levels {
            by_load, entries, ..
        } = &mut *levels;
        for (load, q) in by_load.iter_mut().enumerate() {
            while let Some(w) = q.pop_front() {
                *entries -= 1;
                let Some(lane) = w.upgrade() else { continue };
                if lane.usable() && lane.load() == load && load < lane.capacity() {
                    return Some(lane);
                }
            }
        }
        None
    }
}
