//! Free places on the pool's lanes, so that sending a task costs the same
//! with 2 workers or 2,000: a lane offers a place when it opens (twice its
//! executors) and whenever a task leaves it (a reply, a cancel, a task
//! given back); the pool takes the oldest offer. Places on lanes with an
//! idle executor go first, so a task never waits behind a busy executor
//! while another worker has a free one; among those, the lane that freed
//! its place first.
//!
//! An offer is checked when it is taken (its lane still running and not
//! full): a task sent elsewhere meanwhile (one bound to its data, placed
//! by [`crate::schedule`]) only makes an offer stale. A lane never has
//! more offers out than free places, and the offers of dead lanes go
//! when lanes open, so the queues hold at most the capacity of the lanes
//! alive at the group's last change plus that of lanes dead since.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::lane::Lane;

/// The pool's offered places and its count of live lanes.
#[derive(Default)]
pub(crate) struct Room {
    places: Mutex<Places>,
    /// Lanes opened and not dead.
    live: AtomicUsize,
}

#[derive(Default)]
struct Places {
    /// Places on lanes with an idle executor, oldest first.
    idle: VecDeque<Weak<Lane>>,
    /// Places behind busy executors, oldest first.
    spare: VecDeque<Weak<Lane>>,
}

impl Places {
    fn offer(&mut self, lane: &Arc<Lane>, idle: bool) {
        lane.offered.fetch_add(1, Ordering::Relaxed);
        let place = Arc::downgrade(lane);
        if idle {
            self.idle.push_back(place);
        } else {
            self.spare.push_back(place);
        }
    }
}

impl Room {
    /// New lanes offer their places, in turns (the first place of each
    /// lane before the second of any), so that tasks spread. The offers
    /// of lanes that died go (so the queues hold at most the capacity of
    /// the lanes alive at the last change of the group, plus those that
    /// died since).
    pub(crate) fn opened(&self, lanes: &[Arc<Lane>]) {
        self.live.fetch_add(lanes.len(), Ordering::AcqRel);
        let mut places = self.places.lock();
        let alive = |p: &Weak<Lane>| p.upgrade().is_some_and(|l| !l.is_dead());
        places.idle.retain(alive);
        places.spare.retain(alive);
        let most = lanes.iter().map(|l| l.capacity()).max().unwrap_or(0);
        for round in 0..most {
            for lane in lanes.iter().filter(|l| round < l.capacity()) {
                places.offer(lane, round < lane.executors());
            }
        }
    }

    /// A task left `lane`, which now has `load` in flight: it offers the
    /// place (unless it has as many offers out as free places).
    pub(crate) fn freed(&self, lane: &Arc<Lane>, load: usize) {
        let free = lane.capacity().saturating_sub(load);
        let mut places = self.places.lock();
        if lane.offered.load(Ordering::Relaxed) < free {
            places.offer(lane, load < lane.executors());
        }
    }

    /// A lane died.
    pub(crate) fn lane_died(&self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
    }

    /// Lanes opened and not dead.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// The oldest offered place that still holds: a lane to send one task
    /// to, or `None` when every lane is full.
    pub(crate) fn take(&self) -> Option<Arc<Lane>> {
        let mut places = self.places.lock();
        loop {
            let place = match places.idle.pop_front() {
                Some(p) => p,
                None => places.spare.pop_front()?,
            };
            let Some(lane) = place.upgrade() else {
                continue;
            };
            lane.offered.fetch_sub(1, Ordering::Relaxed);
            if lane.usable() && lane.load() < lane.capacity() {
                return Some(lane);
            }
        }
    }
}
