//! The task pool: `submit` tasks to a group and get futures for their
//! results; `map` many; a worker's death re-runs its unfinished tasks on
//! another worker.
//!
//! Submitted tasks wait in one queue. Each live gateway has a task lane
//! with `tasks_per_worker` executors and room for twice as many tasks in
//! flight (the second half waits on the worker, ready for the next free
//! executor); `dispatch` sends
//! queued tasks to the least-loaded lane that may run them (a task whose
//! arguments hold scattered data goes to a holder). Every reply frees a
//! place, and the lane's reader dispatches the next task at once, so a busy
//! pool needs no thread or task wake-up per task. When a worker dies, the
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

use crate::job::{gone, Job, Scheduler};
use crate::lane::{Crowded, Lane};
use crate::schedule::{pick_lane, Constraints, LaneLoad};

/// Where a task whose arguments hold these data references may run: the
/// gateways holding them all (`None`: anywhere), or why nowhere.
pub(crate) type Allowed<'a> = dyn Fn(&[String]) -> Result<Option<Vec<String>>> + 'a;

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
    lanes: Mutex<std::collections::HashMap<String, Arc<Lane>>>,
    /// The lanes with jobs waiting behind busy executors.
    pub(crate) crowded: Arc<Crowded>,
    pub(crate) per_worker: Mutex<usize>,
    pub(crate) max_attempts: Mutex<u32>,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            queue: Mutex::new(VecDeque::new()),
            saturated: AtomicBool::new(false),
            lanes: Mutex::new(Default::default()),
            crowded: Arc::default(),
            per_worker: Mutex::new(DEFAULT_PER_WORKER),
            max_attempts: Mutex::new(DEFAULT_MAX_ATTEMPTS),
        }
    }
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

    /// The live lanes, opened on first use, with their loads.
    fn lanes(&self, live: &[Gateway], owner: &Weak<dyn Scheduler>) -> Vec<(Arc<Lane>, usize)> {
        let per_worker = *self.per_worker.lock();
        let mut lanes = self.lanes.lock();
        // Linear, not quadratic, in the workers: dispatch runs on every
        // submit and every result (512 workers: 18 s for 5,000 tasks when
        // this compared every lane with every gateway).
        let ids: std::collections::HashSet<&str> = live.iter().map(|g| g.id()).collect();
        lanes.retain(|id, l| !l.is_dead() && ids.contains(id.as_str()));
        let mut out = Vec::with_capacity(live.len());
        for gw in live {
            let lane = match lanes.get(gw.id()) {
                Some(l) => l.clone(),
                None => match Lane::open(gw, per_worker, self.crowded.clone(), owner.clone()) {
                    Ok(l) => {
                        lanes.insert(gw.id().to_string(), l.clone());
                        l
                    }
                    Err(e) => {
                        tracing::debug!(gateway = %gw.id(), "cannot open a task lane: {e}");
                        continue;
                    }
                },
            };
            let load = lane.load();
            out.push((lane, load));
        }
        out
    }

    /// Sends queued tasks to lanes with room, until the queue is empty or
    /// every lane is full. `live`: the group's live gateways; `placement`:
    /// where a task with these data references may run.
    pub(crate) fn dispatch(
        &self,
        live: &[Gateway],
        placement: &Allowed<'_>,
        owner: &Weak<dyn Scheduler>,
    ) {
        // Twice the executors: a worker finishing a task finds the next one
        // already there and goes on without sleeping.
        let capacity = *self.per_worker.lock() * 2;
        let mut queue = self.queue.lock();
        self.saturated.store(false, Ordering::Release);
        if queue.is_empty() {
            return;
        }
        let mut lanes = self.lanes(live, owner);
        if lanes.is_empty() {
            for job in queue.drain(..) {
                job.finish(gone("the group has no live worker"));
            }
            return;
        }
        let mut waiting = VecDeque::new();
        while let Some(job) = queue.pop_front() {
            if job.cancelled() {
                continue;
            }
            let allowed = match placement(&job.refs) {
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
            let loads = lanes.iter().map(|(l, load)| LaneLoad {
                gateway: l.gateway.id(),
                load: *load,
            });
            let Some(i) = pick_lane(loads, capacity, task) else {
                let unconstrained = task.unconstrained();
                waiting.push_back(job);
                if unconstrained {
                    // Every lane is full: nothing behind it fits either.
                    self.saturated.store(true, Ordering::Release);
                    break;
                }
                continue;
            };
            let lane = lanes[i].0.clone();
            match lane.send(job) {
                Ok(()) => lanes[i].1 += 1,
                Err(job) => {
                    let mut job = *job;
                    // Never reached the worker: not an attempt, but not there again.
                    job.avoid.push(lane.gateway.id().to_string());
                    lanes.remove(i);
                    queue.push_front(job);
                    if lanes.is_empty() {
                        break;
                    }
                }
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
        for job in jobs.into_iter().rev() {
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
                if job.cancelled() {
                    continue;
                }
                job.attempts += 1;
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
