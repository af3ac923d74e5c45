//! The controller's end of a task lane (see `remex_worker`'s lane module):
//! one long-lived channel per worker carrying task requests and replies,
//! so that submitting a task costs a message, not a channel and a thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use remex_core::{Channel, Error, Gateway, RemoteError, Result, Value};
use tokio::sync::oneshot;

pub(crate) struct Lane {
    gateway: Gateway,
    ch: Channel,
    control: Channel,
    pending: Mutex<HashMap<i64, oneshot::Sender<Result<Value>>>>,
    next: AtomicI64,
    dead: AtomicBool,
}

/// Cancels a request whose caller went away before its reply.
struct Cancel<'a> {
    lane: &'a Lane,
    id: i64,
    armed: bool,
}

impl Drop for Cancel<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.lane.pending.lock().remove(&self.id);
            // Best effort: a full control channel or a dead lane needs no cancel.
            let _ = self.lane.control.try_send_value(Value::Int(self.id));
        }
    }
}

impl Lane {
    /// Opens a lane with `k` executors on `gw`.
    pub(crate) fn open(gw: &Gateway, k: usize) -> Result<Arc<Lane>> {
        let control = gw.newchannel();
        let ch = gw.remote_call("__lane", &(k, control.handle()))?;
        let lane = Arc::new(Lane {
            gateway: gw.clone(),
            ch,
            control,
            pending: Mutex::new(HashMap::new()),
            next: AtomicI64::new(0),
            dead: AtomicBool::new(false),
        });
        tokio::spawn(read_replies(lane.clone()));
        Ok(lane)
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Sends a request. `Err` means it never reached the worker.
    pub(crate) fn send(
        &self,
        task: &str,
        args: &Value,
    ) -> Result<(i64, oneshot::Receiver<Result<Value>>)> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        let req = Value::List(vec![
            Value::Int(id),
            Value::Str(task.to_string()),
            args.clone(),
        ]);
        // Requests are small and bounded in number by the pool's slots, so
        // credit is there; a lane without it is as good as lost.
        if let Err(e) = self.ch.try_send_value(req) {
            self.pending.lock().remove(&id);
            return Err(match e {
                e @ Error::GatewayLost { .. } => e,
                other => Error::GatewayLost {
                    gateway: self.gateway.id().to_string(),
                    pid: self.gateway.rinfo().pid,
                    reason: format!("the task lane cannot take a request: {other}"),
                },
            });
        }
        Ok((id, rx))
    }

    /// Waits for the reply to request `id`; dropping the wait cancels it.
    pub(crate) async fn reply(
        &self,
        id: i64,
        rx: oneshot::Receiver<Result<Value>>,
    ) -> Result<Value> {
        let mut cancel = Cancel {
            lane: self,
            id,
            armed: true,
        };
        let r = rx
            .await
            .unwrap_or_else(|_| Err(self.lost("the task lane ended")));
        cancel.armed = false;
        r
    }

    fn lost(&self, reason: &str) -> Error {
        Error::GatewayLost {
            gateway: self.gateway.id().to_string(),
            pid: self.gateway.rinfo().pid,
            reason: reason.to_string(),
        }
    }
}

async fn read_replies(lane: Arc<Lane>) {
    let end = loop {
        match lane.ch.receive_value().await {
            Ok(Value::List(mut l)) if l.len() == 3 => {
                let value = l.pop().unwrap_or_default();
                let (ok, id) = (l.pop(), l.pop());
                let (Some(Value::Bool(ok)), Some(Value::Int(id))) = (ok, id) else {
                    tracing::warn!(gateway = %lane.gateway.id(), "malformed lane reply");
                    continue;
                };
                let Some(tx) = lane.pending.lock().remove(&id) else {
                    continue;
                };
                let result = if ok {
                    Ok(value)
                } else {
                    Err(Error::Remote(RemoteError {
                        gateway: lane.gateway.id().to_string(),
                        pid: lane.gateway.rinfo().pid,
                        message: match value {
                            Value::Str(s) => s,
                            other => other.describe(),
                        },
                    }))
                };
                let _ = tx.send(result);
            }
            Ok(other) => {
                tracing::warn!(gateway = %lane.gateway.id(), "unexpected lane item: {}", other.describe())
            }
            Err(e @ Error::GatewayLost { .. }) => break e,
            Err(e) => break lane.lost(&format!("the task lane ended: {e}")),
        }
    };
    lane.dead.store(true, Ordering::Release);
    let pending: Vec<_> = lane.pending.lock().drain().collect();
    for (_, tx) in pending {
        let _ = tx.send(Err(end.clone()));
    }
}
