//! The task pool: `submit` tasks to a group and get futures for their
//! results; `map` many; a worker's death re-runs its unfinished tasks on
//! another worker.
//!
//! Submitted tasks wait in one queue. Each live gateway has a task lane
//! with `tasks_per_worker` executors and room for twice as many tasks in
//! flight (the second half waits on the worker, ready for the next free
//! executor); `dispatch` sends each queued task to the least-loaded lane
//! with room ([`crate::room`]: lanes kept by load, so finding it takes a
//! look at each load level, whatever the number of workers); a task
//! whose arguments hold
//! scattered data, or that lost a worker before, goes to the least-loaded
//! lane that may run it ([`crate::schedule`]), found by a walk over the
//! lanes. Lanes open when the group's gateways change, not per task.
//! Every reply frees a place, and the lane's reader dispatches the next
//! task at once, so a busy pool needs no thread or task wake-up per task. When a worker dies, the
//! tasks it had in flight go back to the front of the queue, to run on
//! another worker, up to a limit; a task that fails by itself (a remote
//! error) is not retried. Results are delivered exactly once; a task may
//! *run* more than once when its worker died after it started.
//!
//! Work stealing: a lane whose executors go idle while nothing is queued
//! asks a lane with tasks waiting behind its busy executors (kept in
//! `Crowded` as loads cross the executor count, so this costs nothing per
//! task) to give back up to that many tasks it has not started; the
//! worker hands back only requests no executor took, so none runs twice,
//! and they go first in the queue (no attempt counted). A task bound to
//! scattered data goes back to a holder: it is stolen only where its data
//! is.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use remex_core::{Error, Gateway, Result};

use crate::job::Job;
use crate::lane::{Crowded, Lane, Scheduler};
use crate::room::Room;
use crate::schedule::{pick_lane, Constraints, LaneLoad};
use crate::slot::gone;

/// Where a task whose arguments hold these data references may run among
/// these live gateways: the gateways holding them all (`None`: anywhere),
/// or why nowhere.
pub(crate) type Allowed<'a> = dyn Fn(&[String], &[&str]) -> Result<Option<Vec<String>>> + 'a;

/// Tasks in flight per worker, by default (also the worker's executor
/// threads for the pool).
///
/// ```
/// assert_eq!(remex::DEFAULT_PER_WORKER, 4);
/// // Change it per group with Group::set_tasks_per_worker.
/// ```
pub const DEFAULT_PER_WORKER: usize = 4;
/// Attempts per task before a lost worker fails it, by default.
///
/// ```
/// assert_eq!(remex::DEFAULT_MAX_ATTEMPTS, 3);
/// // Change it per group with Group::set_max_attempts.
/// ```
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

pub(crate) struct Pool {
    queue: Mutex<VecDeque<Job>>,
    /// The last dispatch left a task queued because every lane was full:
    /// a new task need not try (only a freed place, which dispatches, or
    /// a new worker, can take it). Written under `queue`'s lock.
    saturated: AtomicBool,
    lanes: Mutex<Lanes>,
    /// The lanes' free places.
    room: Arc<Room<Lane>>,
    /// The lanes with jobs waiting behind busy executors.
    pub(crate) crowded: Arc<Crowded>,
    /// What `Group::metrics` reports.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) per_worker: Mutex<usize>,
    pub(crate) max_attempts: Mutex<u32>,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            queue: Mutex::new(VecDeque::new()),
            saturated: AtomicBool::new(false),
            lanes: Mutex::new(Lanes {
                synced: None,
                list: Vec::new(),
            }),
            room: Arc::default(),
            crowded: Arc::default(),
            metrics: Arc::default(),
            per_worker: Mutex::new(DEFAULT_PER_WORKER),
            max_attempts: Mutex::new(DEFAULT_MAX_ATTEMPTS),
        }
    }
}

/// The pool's lanes, one per gateway, in the group's order.
struct Lanes {
    /// The group's membership (a count of its changes) they were opened
    /// for.
    synced: Option<u64>,
    list: Vec<Arc<Lane>>,
}

impl Pool {
    /// Queues a job (send it with [`Pool::dispatch`]); whether dispatching
    /// could send it now (not when every lane was full at the last
    /// dispatch: the next freed place dispatches it).
    pub(crate) fn push(&self, job: Job) -> bool {
        self.queue.lock().push_back(job);
        !self.saturated.load(Ordering::Acquire)
    }

    /// Whether no task waits.
    pub(crate) fn is_idle(&self) -> bool {
        self.queue.lock().is_empty()
    }

    /// A worker joined: the next dispatch must try the lanes again.
    pub(crate) fn unsaturate(&self) {
        self.saturated.store(false, Ordering::Release);
    }

    /// Whether the lanes were opened for another membership than
    /// `members` (see [`Pool::sync`]).
    pub(crate) fn needs_sync(&self, members: u64) -> bool {
        self.lanes.lock().synced != Some(members)
    }

    /// Opens a lane on each of the `live` gateways that has none, drops
    /// dead lanes, and notes `members`. Linear in the workers, and run
    /// only when the group's gateways changed.
    pub(crate) fn sync(&self, members: u64, live: &[Gateway], owner: &Weak<dyn Scheduler>) {
        let per_worker = *self.per_worker.lock();
        let mut lanes = self.lanes.lock();
        if lanes.synced == Some(members) {
            return;
        }
        lanes.list.retain(|l| !l.is_dead());
        let have: std::collections::HashSet<String> = lanes
            .list
            .iter()
            .map(|l| l.gateway.id().to_string())
            .collect();
        let mut opened = Vec::new();
        for gw in live.iter().filter(|g| !have.contains(g.id())) {
            match Lane::open(
                gw,
                per_worker,
                self.crowded.clone(),
                self.room.clone(),
                owner.clone(),
            ) {
                Ok(l) => opened.push(l),
                Err(e) => tracing::debug!(gateway = %gw.id(), "cannot open a task lane: {e}"),
            }
        }
        self.room.opened(&opened);
        lanes.list.extend(opened);
        lanes.synced = Some(members);
    }

    /// The live lane of gateway `id`, if the pool opened one.
    pub(crate) fn lane_of(&self, id: &str) -> Option<Arc<Lane>> {
        self.lanes
            .lock()
            .list
            .iter()
            .find(|l| !l.is_dead() && l.gateway.id() == id)
            .cloned()
    }

    /// The usable lanes, for a task with constraints.
    fn usable_lanes(&self) -> Vec<Arc<Lane>> {
        self.lanes
            .lock()
            .list
            .iter()
            .filter(|l| l.usable())
            .cloned()
            .collect()
    }

    /// Sends queued tasks to lanes with room, until the queue is empty or
    /// every lane is full (open them first: [`Pool::sync`]). `placement`:
    /// where a task with these data references may run.
    pub(crate) fn dispatch(&self, placement: &Allowed<'_>) {
        // Twice the executors: a worker finishing a task finds the next one
        // already there and goes on without sleeping.
        let capacity = *self.per_worker.lock() * 2;
        let mut queue = self.queue.lock();
        self.saturated.store(false, Ordering::Release);
        if queue.is_empty() {
            return;
        }
        // Listed once per dispatch, and only for a task with constraints.
        let mut listed: Option<Vec<Arc<Lane>>> = None;
        let mut waiting = VecDeque::new();
        while let Some(job) = queue.pop_front() {
            if job.cancelled() {
                continue;
            }
            if self.room.live() == 0 {
                job.finish(gone("the group has no live worker"));
                for job in queue.drain(..) {
                    job.finish(gone("the group has no live worker"));
                }
                break;
            }
            let lane = if job.refs.is_empty() && job.avoid.is_empty() {
                match self.room.take() {
                    Some(lane) => lane,
                    None => {
                        // Every lane is full: nothing behind it fits either.
                        waiting.push_back(job);
                        self.saturated.store(true, Ordering::Release);
                        break;
                    }
                }
            } else {
                let lanes = listed.get_or_insert_with(|| self.usable_lanes());
                let ids: Vec<&str> = lanes.iter().map(|l| l.gateway.id()).collect();
                let allowed = match placement(&job.refs, &ids) {
                    Ok(a) => a,
                    Err(e) => {
                        job.finish(e);
                        continue;
                    }
                };
                let task = Constraints {
                    allowed: allowed.as_deref(),
                    avoid: &job.avoid,
                };
                let loads = lanes.iter().map(|l| LaneLoad {
                    gateway: l.gateway.id(),
                    load: l.load(),
                });
                match pick_lane(loads, capacity, task) {
                    Some(i) => lanes[i].clone(),
                    None => {
                        waiting.push_back(job);
                        continue;
                    }
                }
            };
            if let Err(job) = lane.send(job) {
                let mut job = *job;
                // Never reached the worker: not an attempt, but not there
                // again (the lane is dead now).
                job.avoid.push(lane.gateway.id().to_string());
                if let Some(lanes) = &mut listed {
                    lanes.retain(|l| !Arc::ptr_eq(l, &lane));
                }
                queue.push_front(job);
            }
        }
        while let Some(job) = waiting.pop_back() {
            queue.push_front(job);
        }
    }

    /// Puts back, first in the queue, jobs a worker gave back unstarted
    /// (no attempt counted: they never ran). Dispatch afterwards.
    pub(crate) fn requeue_front(&self, jobs: Vec<Job>) {
        let mut queue = self.queue.lock();
        for mut job in jobs.into_iter().rev() {
            job.unsent();
            if !job.cancelled() {
                queue.push_front(job);
            }
        }
        drop(queue);
        self.unsaturate();
    }

    /// Puts back the jobs a dead lane had in flight: each counts an attempt;
    /// past the limit it fails saying its worker died.
    /// (Dispatch afterwards.)
    pub(crate) fn requeue_lost(&self, jobs: Vec<Job>, gateway: &str, why: &Error) {
        let max_attempts = *self.max_attempts.lock();
        let reason = match why {
            Error::GatewayLost { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        {
            let mut queue = self.queue.lock();
            for mut job in jobs {
                job.lost_under();
                if job.cancelled() {
                    continue;
                }
                job.attempts += 1;
                if job.attempts < max_attempts {
                    self.metrics.rerun(job.meters(), gateway, &reason);
                }
                if job.attempts >= max_attempts {
                    let e = Error::TaskLost {
                        task: job.task.clone(),
                        attempts: job.attempts,
                        gateway: gateway.to_string(),
                        reason: reason.clone(),
                    };
                    job.finish(e);
                } else {
                    job.avoid.push(gateway.to_string());
                    queue.push_front(job);
                }
            }
        }
    }
}
