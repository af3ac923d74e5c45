//! The controller's end of a task lane (see `remex_worker`'s lane module):
//! one long-lived channel per worker carrying task requests and replies,
//! so that a task costs a message, not a channel and a thread.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use remex_core::builtin::{self, LaneControl, LaneReply, LaneRequest, LaneReturned};
use remex_core::{Channel, Error, Gateway, RemoteError, Result, Value};

use crate::job::{Canceller, Job};
use crate::room::{Loaded, Room};

/// What lanes and futures ask of the pool's owner (the group).
pub(crate) trait Scheduler: Send + Sync {
    /// A place became free (a reply came, a task was cancelled): send more.
    fn dispatch(self: Arc<Self>);
    /// A lane died with these jobs in flight on `gateway`.
    fn requeue_lost(self: Arc<Self>, jobs: Vec<Job>, gateway: &str, why: &Error);
    /// A worker gave these jobs back before starting them (a steal): they
    /// go first in the queue, no attempt counted.
    fn requeue_returned(self: Arc<Self>, jobs: Vec<Job>);
    /// `lane` has `idle` executors: when nothing is queued, take jobs that
    /// wait behind busy executors on another lane.
    fn feed(self: Arc<Self>, lane: &Lane, idle: usize);
}

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
    crowd: Arc<Crowded>,
    /// A steal was asked and not answered yet.
    stealing: AtomicBool,
    /// Jobs wait behind its busy executors (changed under `Crowded`'s
    /// lock).
    crowded: AtomicBool,
    /// It is in `Crowded`'s queue (changed under its lock).
    queued_crowded: AtomicBool,
    /// The pool's lanes by load, where this lane says its load.
    room: Arc<Room<Lane>>,
    me: Weak<Lane>,
    /// Its worker's counts for the dashboard (at the first send).
    stats: std::sync::OnceLock<Arc<crate::record::WorkerStats>>,
    /// Being retired ([`Lane::retire`]): no new tasks.
    retiring: AtomicBool,
    /// Told when it has no task in flight any more, or died.
    drained: tokio::sync::Notify,
}

/// The lanes with jobs waiting on their worker behind busy executors:
/// where an idle lane takes work from. Kept as loads cross a lane's
/// executor count, in constant time whatever the number of lanes: a lane
/// is in the queue at most once, marked crowded or not; one no longer
/// crowded leaves the queue when a pick meets it.
#[derive(Default)]
pub(crate) struct Crowded {
    lanes: Mutex<VecDeque<Weak<Lane>>>,
}

impl Crowded {
    fn add(&self, lane: &Arc<Lane>) {
        let mut lanes = self.lanes.lock();
        lane.crowded.store(true, Ordering::Relaxed);
        if !lane.queued_crowded.swap(true, Ordering::Relaxed) {
            lanes.push_back(Arc::downgrade(lane));
        }
    }

    fn remove(&self, lane: &Lane) {
        let _lanes = self.lanes.lock();
        lane.crowded.store(false, Ordering::Relaxed);
    }

    /// A crowded lane other than `not`, still alive: the one crowded
    /// longest (it goes to the back, so that picks take turns).
    pub(crate) fn pick(&self, not: &Lane) -> Option<Arc<Lane>> {
        let mut lanes = self.lanes.lock();
        let mut skipped = None;
        let found = loop {
            let Some(w) = lanes.pop_front() else {
                break None;
            };
            let Some(l) = w.upgrade() else { continue };
            if l.is_dead() || !l.crowded.load(Ordering::Relaxed) {
                l.queued_crowded.store(false, Ordering::Relaxed);
                continue;
            }
            if std::ptr::eq(&*l, not) {
                skipped = Some(w);
                continue;
            }
            lanes.push_back(w);
            break Some(l);
        };
        if let Some(w) = skipped {
            lanes.push_front(w);
        }
        found
    }
}

impl Lane {
    /// Opens a lane with `k` executors on `gw`; its reader hands replies to
    /// their jobs and asks the pool for more work.
    /// The pool puts it in `room` ([`Room::opened`]).
    pub(crate) fn open(
        gw: &Gateway,
        k: usize,
        crowded: Arc<Crowded>,
        room: Arc<Room<Lane>>,
        owner: Weak<dyn Scheduler>,
    ) -> Result<Arc<Lane>> {
        let control = gw.newchannel();
        let ch = gw.remote_call(builtin::LANE, &(k, control.handle()))?;
        let lane = Arc::new_cyclic(|me| Lane {
            gateway: gw.clone(),
            ch,
            control,
            in_flight: Mutex::new(HashMap::new()),
            next: AtomicI64::new(0),
            dead: AtomicBool::new(false),
            executors: k.max(1),
            crowd: crowded,
            stealing: AtomicBool::new(false),
            crowded: AtomicBool::new(false),
            queued_crowded: AtomicBool::new(false),
            room,
            me: me.clone(),
            stats: std::sync::OnceLock::new(),
            retiring: AtomicBool::new(false),
            drained: tokio::sync::Notify::new(),
        });
        // A worker's log event in a request goes under the span its job
        // was submitted in.
        let me = Arc::downgrade(&lane);
        lane.ch
            .route_logs(remex_core::conn::LogRoute::Requests(Arc::new(move |req| {
                let lane = me.upgrade()?;
                let span = lane.in_flight.lock().get(&req?).map(|j| j.span.clone());
                span
            })));
        tokio::spawn(read_replies(lane.clone(), owner));
        Ok(lane)
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Marks it dead (once: the pool counts its live lanes).
    fn mark_dead(&self) {
        if !self.dead.swap(true, Ordering::AcqRel) {
            self.room.lane_died(self.capacity());
        }
        self.drained.notify_waiters();
    }

    /// Whether tasks may be sent to it: alive, not being retired, its
    /// gateway running.
    pub(crate) fn usable(&self) -> bool {
        !self.is_dead()
            && !self.retiring.load(Ordering::Acquire)
            && matches!(self.gateway.state(), remex_core::GatewayState::Running)
    }

    /// Retires it: no task is sent to it from now on, the tasks waiting on
    /// its worker for an executor are asked back (to run elsewhere, no
    /// attempt counted), and the running ones finish. Returns when none
    /// is in flight any more or the lane died, or after `within`
    /// (whether it drained).
    pub(crate) async fn retire(&self, within: std::time::Duration) -> bool {
        self.retiring.store(true, Ordering::Release);
        self.steal(usize::MAX);
        let drained = async {
            loop {
                // Made before the look, so a notification in between is
                // not missed (notify_waiters reaches every future made).
                let told = self.drained.notified();
                if self.load() == 0 || self.is_dead() {
                    return;
                }
                told.await;
            }
        };
        tokio::time::timeout(within, drained).await.is_ok()
    }

    /// Tasks it may hold in flight: twice its executors, so that an
    /// executor finishing a task finds the next one there.
    pub(crate) fn capacity(&self) -> usize {
        self.executors * 2
    }

    pub(crate) fn load(&self) -> usize {
        self.in_flight.lock().len()
    }

    /// Sends `job`; on failure (the request never reached the worker) the
    /// job comes back.
    pub(crate) fn send(self: &Arc<Self>, mut job: Job) -> std::result::Result<(), Box<Job>> {
        job.sending(&self.stats, self.gateway.id());
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let req = LaneRequest {
            id,
            task: job.task.clone(),
            args: job.args.clone(),
        }
        .into_value();
        let place: Weak<Lane> = Arc::downgrade(self);
        job.set_place(place, id);
        let load = {
            let mut f = self.in_flight.lock();
            f.insert(id, job);
            f.len()
        };
        if load == self.executors + 1 {
            self.crowd.add(self);
        }
        self.room.at(self, load);
        // Requests are small and bounded by the lane's capacity, so credit
        // is there; a lane without it is as good as lost.
        if self.ch.try_send_value(req).is_err() {
            let job = self.in_flight.lock().remove(&id);
            self.mark_dead();
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

impl Loaded for Lane {
    fn load(&self) -> usize {
        Lane::load(self)
    }
    fn capacity(&self) -> usize {
        Lane::capacity(self)
    }
    fn usable(&self) -> bool {
        Lane::usable(self)
    }
    fn is_dead(&self) -> bool {
        Lane::is_dead(self)
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
        let (job, load) = {
            let mut f = self.in_flight.lock();
            let job = f.remove(&id);
            (job, f.len())
        };
        if job.is_some() {
            if load == self.executors {
                self.crowd.remove(self);
            }
            if let Some(me) = self.me.upgrade() {
                self.room.at(&me, load);
            }
            if load == 0 {
                self.drained.notify_waiters();
            }
        }
        job
    }

    /// Whether some of its executors are idle (a retiring lane takes no
    /// work from others).
    pub(crate) fn hungry(&self) -> usize {
        if self.retiring.load(Ordering::Acquire) {
            return 0;
        }
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
        match lane.ch.receive::<remex_core::Value>().await {
            Ok(v) => {
                let mut returned = lane.answered(v);
                // The replies already here too, then one dispatch for all
                // the places they freed: the requests leave together.
                while let Ok(Some(v)) = lane.ch.try_receive::<remex_core::Value>() {
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
    lane.mark_dead();
    let jobs: Vec<Job> = lane.in_flight.lock().drain().map(|(_, j)| j).collect();
    if jobs.is_empty() && lane.retiring.load(Ordering::Acquire) {
        // Retired, with nothing left: its worker ended as asked, no loss.
        return;
    }
    match owner.upgrade() {
        Some(s) => s.requeue_lost(jobs, lane.gateway.id(), &end),
        None => jobs.into_iter().for_each(|j| j.finish(end.clone())),
    }
}
