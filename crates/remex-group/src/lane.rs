//! The controller's end of a task lane (see `remex_worker`'s lane module):
//! one long-lived channel per worker carrying task requests and replies,
//! so that a task costs a message, not a channel and a thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use remex_core::builtin::{self, LaneReply, LaneRequest};
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
}

impl Lane {
    /// Opens a lane with `k` executors on `gw`; its reader hands replies to
    /// their jobs and asks the pool for more work.
    pub(crate) fn open(gw: &Gateway, k: usize, owner: Weak<dyn Scheduler>) -> Result<Arc<Lane>> {
        let control = gw.newchannel();
        let ch = gw.remote_call(builtin::LANE, &(k, control.handle()))?;
        let lane = Arc::new(Lane {
            gateway: gw.clone(),
            ch,
            control,
            in_flight: Mutex::new(HashMap::new()),
            next: AtomicI64::new(0),
            dead: AtomicBool::new(false),
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
        self.in_flight.lock().insert(id, job);
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
        if self.in_flight.lock().remove(&id).is_some() {
            // Best effort: a full control channel or a dead lane needs no cancel.
            let _ = self.control.try_send_value(Value::Int(id));
        }
    }
}

impl Lane {
    /// Hands a reply to its job.
    fn answered(&self, v: Value) {
        let LaneReply { id, outcome } = match LaneReply::from_value(v) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(gateway = %self.gateway.id(), "{e}");
                return;
            }
        };
        let job = self.in_flight.lock().remove(&id);
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
    }
}

async fn read_replies(lane: Arc<Lane>, owner: Weak<dyn Scheduler>) {
    let end = loop {
        match lane.ch.receive_value().await {
            Ok(v) => {
                lane.answered(v);
                // The replies already here too, then one dispatch for all
                // the places they freed: the requests leave together.
                while let Ok(Some(v)) = lane.ch.try_receive_value() {
                    lane.answered(v);
                }
                if let Some(s) = owner.upgrade() {
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
