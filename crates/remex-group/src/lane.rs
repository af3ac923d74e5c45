//! The controller's end of a task lane (see `remex_worker`'s lane module):
//! one long-lived channel per worker carrying task requests and replies,
//! so that a task costs a message, not a channel and a thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use remex_core::builtin::{self, LaneControl, LaneReply, LaneRequest, LaneReturned};
use remex_core::{Channel, Error, Gateway, RemoteError, Result, Value};

use crate::job::{Canceller, Job, Scheduler};

pub(crate) struct Lane {
    pub(crate) gateway: Gateway,
    ch: Channel,
    control: Channel,
    /// Jobs sent and not answered yet, by request id.
    pub(crate) in_flight: Mutex<HashMap<i64, Job>>,
    next: AtomicI64,
    dead: AtomicBool,
    /// Its executors: more jobs in flight than this wait on the worker.
    executors: usize,
    /// The pool's lanes that have jobs waiting on their worker.
    crowded: Arc<Crowded>,
    /// A steal was asked and not answered yet.
    stealing: AtomicBool,
}

/// The lanes with jobs waiting on their worker behind busy executors:
/// where an idle lane takes work from. Kept as loads cross a lane's
/// executor count, so finding one costs nothing per task.
#[derive(Default)]
pub(crate) struct Crowded {
    lanes: Mutex<Vec<Weak<Lane>>>,
}

impl Crowded {
    fn add(&self, lane: &Arc<Lane>) {
        self.lanes.lock().push(Arc::downgrade(lane));
    }

    fn remove(&self, lane: &Lane) {
        self.lanes
            .lock()
            .retain(|w| w.upgrade().is_some_and(|l| !std::ptr::eq(&*l, lane)));
    }

    /// A crowded lane other than `not`, still alive.
    pub(crate) fn pick(&self, not: &Lane) -> Option<Arc<Lane>> {
        let mut lanes = self.lanes.lock();
        lanes.retain(|w| w.upgrade().is_some_and(|l| !l.is_dead()));
        lanes
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|l| !std::ptr::eq(&**l, not))
            .max_by_key(|l| l.load())
    }
}

impl Lane {
    /// Opens a lane with `k` executors on `gw`; its reader hands replies to
    /// their jobs and asks the pool for more work.
    pub(crate) fn open(
        gw: &Gateway,
        k: usize,
        crowded: Arc<Crowded>,
        owner: Weak<dyn Scheduler>,
    ) -> Result<Arc<Lane>> {
        let control = gw.newchannel();
        let ch = gw.remote_call(builtin::LANE, &(k, control.handle()))?;
        let lane = Arc::new(Lane {
            gateway: gw.clone(),
            ch,
            control,
            in_flight: Mutex::new(HashMap::new()),
            next: AtomicI64::new(0),
            dead: AtomicBool::new(false),
            executors: k.max(1),
            crowded,
            stealing: AtomicBool::new(false),
        });
        tokio::spawn(read_replies(lane.clone(), owner));
        Ok(lane)
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    pub(crate) fn load(&self) -> usize {
        self.in_flight.lock().len()
    }

    /// Sends `job`; on failure (the request never reached the worker) the
    /// job comes back.
    pub(crate) fn send(self: &Arc<Self>, job: Job) -> std::result::Result<(), Box<Job>> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let req = LaneRequest {
            id,
            task: job.task.clone(),
            args: job.args.clone(),
        }
        .into_value();
        let place: Weak<Lane> = Arc::downgrade(self);
        job.set_place(place, id);
        let crowded = {
            let mut f = self.in_flight.lock();
            f.insert(id, job);
            f.len() == self.executors + 1
        };
        if crowded {
            self.crowded.add(self);
        }
        // Requests are small and bounded by the lane's capacity, so credit
        // is there; a lane without it is as good as lost.
        if self.ch.try_send_value(req).is_err() {
            let job = self.in_flight.lock().remove(&id);
            self.dead.store(true, Ordering::Release);
            return job.map_or(Ok(()), |j| Err(Box::new(j)));
        }
        Ok(())
    }

    fn lost(&self, reason: &str) -> Error {
        Error::GatewayLost {
            gateway: self.gateway.id().to_string(),
            pid: self.gateway.rinfo().pid,
            reason: reason.to_string(),
        }
    }
}

impl Canceller for Lane {
    /// Cancels request `id`: forgets its job and tells the worker.
    fn cancel(&self, id: i64) {
        if self.take(id).is_some() {
            // Best effort: a full control channel or a dead lane needs no cancel.
            let _ = self
                .control
                .try_send_value(LaneControl::Cancel(id).into_value());
        }
    }
}

impl Lane {
    /// Removes job `id` from those in flight.
    fn take(&self, id: i64) -> Option<Job> {
        let (job, uncrowded) = {
            let mut f = self.in_flight.lock();
            let job = f.remove(&id);
            (job, f.len() == self.executors)
        };
        if job.is_some() && uncrowded {
            self.crowded.remove(self);
        }
        job
    }

    /// Whether some of its executors are idle.
    pub(crate) fn hungry(&self) -> usize {
        self.executors.saturating_sub(self.load())
    }

    /// Asks the worker for up to `n` jobs it has not started (once at a
    /// time): they come back as a [`LaneReturned`] and go to a lane with
    /// idle executors.
    pub(crate) fn steal(&self, n: usize) {
        let waiting = self.load().saturating_sub(self.executors);
        let n = n.min(waiting);
        if n == 0 || self.stealing.swap(true, Ordering::AcqRel) {
            return;
        }
        if self
            .control
            .try_send_value(LaneControl::Steal(n as i64).into_value())
            .is_err()
        {
            self.stealing.store(false, Ordering::Release);
        }
    }
}

impl Lane {
    /// Hands a reply to its job; the jobs the worker gave back (after a
    /// steal) are returned, to run elsewhere.
    fn answered(&self, v: Value) -> Vec<Job> {
        if let Some(LaneReturned { ids }) = LaneReturned::from_value(&v) {
            self.stealing.store(false, Ordering::Release);
            return ids.into_iter().filter_map(|id| self.take(id)).collect();
        }
        let LaneReply { id, outcome } = match LaneReply::from_value(v) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(gateway = %self.gateway.id(), "{e}");
                return Vec::new();
            }
        };
        let job = self.take(id);
        match (job, outcome) {
            (Some(job), Ok(value)) => job.done(value, self.gateway.id()),
            (Some(job), Err(message)) => job.finish(Error::Remote(RemoteError {
                gateway: self.gateway.id().to_string(),
                pid: self.gateway.rinfo().pid,
                message,
            })),
            // Cancelled meanwhile: nobody waits for it.
            (None, _) => {}
        }
        Vec::new()
    }
}

async fn read_replies(lane: Arc<Lane>, owner: Weak<dyn Scheduler>) {
    let end = loop {
        match lane.ch.receive_value().await {
            Ok(v) => {
                let mut returned = lane.answered(v);
                // The replies already here too, then one dispatch for all
                // the places they freed: the requests leave together.
                while let Ok(Some(v)) = lane.ch.try_receive_value() {
                    returned.extend(lane.answered(v));
                }
                if let Some(s) = owner.upgrade() {
                    if !returned.is_empty() {
                        s.clone().requeue_returned(returned);
                    }
                    // Idle executors here and nothing queued: take work
                    // that waits behind busy executors elsewhere.
                    let hungry = lane.hungry();
                    if hungry > 0 {
                        s.clone().feed(&lane, hungry);
                    }
                    s.dispatch();
                }
            }
            Err(e @ Error::GatewayLost { .. }) => break e,
            Err(e) => break lane.lost(&format!("the task lane ended: {e}")),
        }
    };
    lane.dead.store(true, Ordering::Release);
    let jobs: Vec<Job> = lane.in_flight.lock().drain().map(|(_, j)| j).collect();
    match owner.upgrade() {
        Some(s) => s.requeue_lost(jobs, lane.gateway.id(), &end),
        None => jobs.into_iter().for_each(|j| j.finish(end.clone())),
    }
}
