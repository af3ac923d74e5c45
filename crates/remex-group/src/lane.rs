//! The controller's end of a task lane (see `remex_worker`'s lane module):
//! one long-lived channel per worker carrying task requests and replies,
//! so that a task costs a message, not a channel and a thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use remex_core::{Channel, Error, Gateway, RemoteError, Result, Value};

use crate::group::{Group, Inner};
use crate::pool::Job;

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
    pub(crate) fn open(gw: &Gateway, k: usize, group: Weak<Inner>) -> Result<Arc<Lane>> {
        let control = gw.newchannel();
        let ch = gw.remote_call("__lane", &(k, control.handle()))?;
        let lane = Arc::new(Lane {
            gateway: gw.clone(),
            ch,
            control,
            in_flight: Mutex::new(HashMap::new()),
            next: AtomicI64::new(0),
            dead: AtomicBool::new(false),
        });
        tokio::spawn(read_replies(lane.clone(), group));
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
        let req = Value::List(vec![
            Value::Int(id),
            Value::Str(job.task.clone()),
            job.args.clone(),
        ]);
        job.set_place(Arc::downgrade(self), id);
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

    /// Cancels request `id`: forgets its job and tells the worker.
    pub(crate) fn cancel(&self, id: i64) {
        if self.in_flight.lock().remove(&id).is_some() {
            // Best effort: a full control channel or a dead lane needs no cancel.
            let _ = self.control.try_send_value(Value::Int(id));
        }
    }

    fn lost(&self, reason: &str) -> Error {
        Error::GatewayLost {
            gateway: self.gateway.id().to_string(),
            pid: self.gateway.rinfo().pid,
            reason: reason.to_string(),
        }
    }
}

async fn read_replies(lane: Arc<Lane>, group: Weak<Inner>) {
    let end = loop {
        match lane.ch.receive_value().await {
            Ok(Value::List(mut l)) if l.len() == 3 => {
                let value = l.pop().unwrap_or_default();
                let (ok, id) = (l.pop(), l.pop());
                let (Some(Value::Bool(ok)), Some(Value::Int(id))) = (ok, id) else {
                    tracing::warn!(gateway = %lane.gateway.id(), "malformed lane reply");
                    continue;
                };
                let job = lane.in_flight.lock().remove(&id);
                if let Some(job) = job {
                    if ok {
                        job.done(value, lane.gateway.id());
                    } else {
                        job.finish(Error::Remote(RemoteError {
                            gateway: lane.gateway.id().to_string(),
                            pid: lane.gateway.rinfo().pid,
                            message: match value {
                                Value::Str(s) => s,
                                other => other.describe(),
                            },
                        }));
                    }
                }
                // A place is free: send more.
                if let Some(g) = group.upgrade() {
                    Group::from_inner(g).dispatch();
                }
            }
            Ok(other) => {
                tracing::warn!(gateway = %lane.gateway.id(), "unexpected lane item: {}", other.describe())
            }
            Err(e @ Error::GatewayLost { .. }) => break e,
            Err(e) => break lane.lost(&format!("the task lane ended: {e}")),
        }
    };
    lane.dead.store(true, Ordering::Release);
    let jobs: Vec<Job> = lane.in_flight.lock().drain().map(|(_, j)| j).collect();
    match group.upgrade() {
        Some(g) => Group::from_inner(g).requeue_lost(jobs, lane.gateway.id(), &end),
        None => jobs.into_iter().for_each(|j| j.finish(end.clone())),
    }
}
