//! The task pool: `submit` tasks to a group and get futures for their
//! results; `map` many; a worker's death re-runs its unfinished tasks on
//! another worker.
//!
//! Each submitted task gets a driver (a tokio task) that takes a slot on
//! the least-loaded live gateway, calls the task there, and delivers its
//! result. Slots bound the tasks in flight per worker. When the worker dies
//! before the result arrived, the driver tries again on another worker, up
//! to a limit; a task that fails by itself (a remote error) is not retried.
//! Results are delivered exactly once; a task may *run* more than once when
//! its worker died after it started.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use event_listener::Event;
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use remex_core::{Error, Gateway, Result, Value};
use tokio::task::JoinHandle;

use crate::group::{Group, Inner};
use crate::lane::Lane;

/// Tasks in flight per worker, by default.
pub const DEFAULT_PER_WORKER: usize = 4;
/// Attempts per task before a lost worker fails it, by default.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

pub(crate) struct Pool {
    slots: Mutex<HashMap<String, usize>>,
    lanes: Mutex<HashMap<String, Arc<Lane>>>,
    freed: Event,
    pub(crate) per_worker: Mutex<usize>,
    pub(crate) max_attempts: Mutex<u32>,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            slots: Mutex::new(HashMap::new()),
            lanes: Mutex::new(HashMap::new()),
            freed: Event::new(),
            per_worker: Mutex::new(DEFAULT_PER_WORKER),
            max_attempts: Mutex::new(DEFAULT_MAX_ATTEMPTS),
        }
    }
}

/// A slot on one gateway, released on drop.
struct Slot {
    pool: Arc<Pool>,
    gateway: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(n) = self.pool.slots.lock().get_mut(&self.gateway) {
            *n = n.saturating_sub(1);
        }
        // One more waiter per freed slot, even if earlier ones have not run yet.
        self.pool.freed.notify_additional(1);
    }
}

impl Pool {
    /// Takes a slot on the least-loaded live gateway, waiting while all are
    /// full. Fails when the group has no live gateway.
    /// Gateways in `avoid` (where this task already failed) are used only
    /// when no other is live.
    /// With references in the arguments, only their live holders qualify.
    async fn acquire(
        self: &Arc<Self>,
        group: &Weak<Inner>,
        avoid: &[String],
        refs: &[String],
    ) -> Result<(Gateway, Slot)> {
        loop {
            let inner = group
                .upgrade()
                .ok_or_else(|| gone("the group was dropped"))?;
            let group = Group::from_inner(inner);
            let mut live = group.gateways();
            if let Some(allowed) = group.placement(refs)? {
                live.retain(|g| allowed.iter().any(|a| a == g.id()));
            }
            drop(group);
            if live.is_empty() {
                return Err(gone("the group has no live worker"));
            }
            if live.iter().any(|g| !avoid.iter().any(|a| a == g.id())) {
                live.retain(|g| !avoid.iter().any(|a| a == g.id()));
            }
            let per_worker = *self.per_worker.lock();
            let listener = {
                let mut slots = self.slots.lock();
                let best = live
                    .iter()
                    .map(|g| (slots.get(g.id()).copied().unwrap_or(0), g))
                    .filter(|(n, _)| *n < per_worker)
                    .min_by_key(|(n, _)| *n)
                    .map(|(_, g)| g.clone());
                if let Some(gw) = best {
                    *slots.entry(gw.id().to_string()).or_default() += 1;
                    let slot = Slot {
                        pool: self.clone(),
                        gateway: gw.id().to_string(),
                    };
                    return Ok((gw, slot));
                }
                self.freed.listen()
            };
            listener.await;
        }
    }
}

impl Pool {
    /// The live lane to `gw`, opened on first use.
    fn lane(&self, gw: &Gateway) -> Result<Arc<Lane>> {
        let mut lanes = self.lanes.lock();
        if let Some(l) = lanes.get(gw.id()) {
            if !l.is_dead() {
                return Ok(l.clone());
            }
        }
        let lane = Lane::open(gw, *self.per_worker.lock())?;
        lanes.insert(gw.id().to_string(), lane.clone());
        Ok(lane)
    }
}

fn gone(reason: &str) -> Error {
    Error::GatewayLost {
        gateway: "group".into(),
        pid: 0,
        reason: reason.into(),
    }
}

async fn drive(pool: Arc<Pool>, group: Weak<Inner>, task: String, args: Value) -> Result<Value> {
    let mut refs = Vec::new();
    crate::scatter::ref_keys(&args, &mut refs);
    let max_attempts = *pool.max_attempts.lock();
    let mut attempt = 0;
    let mut avoid: Vec<String> = Vec::new();
    loop {
        let (gw, _slot) = pool.acquire(&group, &avoid, &refs).await?;
        let sent = pool
            .lane(&gw)
            .and_then(|lane| lane.send(&task, &args).map(|(id, rx)| (lane, id, rx)));
        let (lane, id, rx) = match sent {
            Ok(x) => x,
            Err(Error::GatewayLost { reason, .. }) => {
                // Never reached the worker: not an attempt, but not there again.
                tracing::debug!(task = %task, gateway = %gw.id(), "dispatch failed: {reason}");
                avoid.push(gw.id().to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        attempt += 1;
        let outcome = lane.reply(id, rx).await;
        match outcome {
            Err(Error::GatewayLost {
                gateway,
                pid,
                reason,
            }) => {
                tracing::debug!(task = %task, %gateway, attempt, "worker lost: {reason}");
                avoid.push(gateway.clone());
                if attempt >= max_attempts {
                    return Err(Error::GatewayLost {
                        gateway,
                        pid,
                        reason: format!(
                            "task '{task}' failed: its worker died on each of {attempt} attempts (last: {reason})"
                        ),
                    });
                }
            }
            other => return other,
        }
    }
}

/// The result of a submitted task. Dropping it cancels the task: a task not
/// started yet never starts; a running one has its channel closed and its
/// result discarded.
#[must_use = "dropping a TaskFuture cancels its task"]
pub struct TaskFuture {
    handle: JoinHandle<Result<Value>>,
    task: String,
}

impl fmt::Debug for TaskFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<TaskFuture {} finished={}>",
            self.task,
            self.handle.is_finished()
        )
    }
}

impl Drop for TaskFuture {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Future for TaskFuture {
    type Output = Result<Value>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Value>> {
        Pin::new(&mut self.handle).poll(cx).map(|r| {
            r.unwrap_or_else(|e| {
                Err(Error::Os {
                    what: format!("the driver of task '{}'", self.task),
                    detail: e.to_string(),
                })
            })
        })
    }
}

impl TaskFuture {
    /// The name of the task.
    pub fn task(&self) -> &str {
        &self.task
    }
}

impl Group {
    /// Submits `task(args)` to the group's pool; the future resolves to the
    /// task's return value. Must be called inside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex_core::Result<()> {
    /// let group = remex_group::Group::new(["2*popen"]).await?;
    /// let x = group.submit("echo", &[1, 2])?;
    /// assert_eq!(remex_core::from_value::<Vec<i64>>(x.await?).unwrap(), vec![1, 2]);
    /// # Ok(()) }
    /// ```
    pub fn submit<A: serde::Serialize + ?Sized>(&self, task: &str, args: &A) -> Result<TaskFuture> {
        let args = remex_core::to_value(args).map_err(|e| Error::Unsendable {
            channel: 0,
            detail: e.to_string(),
        })?;
        let handle = tokio::spawn(drive(self.pool(), self.weak(), task.to_string(), args));
        Ok(TaskFuture {
            handle,
            task: task.to_string(),
        })
    }

    /// Tasks in flight per worker (default [`DEFAULT_PER_WORKER`]).
    pub fn set_tasks_per_worker(&self, n: usize) {
        *self.pool().per_worker.lock() = n.max(1);
        self.pool().freed.notify(usize::MAX);
    }

    /// Attempts per task before a lost worker fails it (default
    /// [`DEFAULT_MAX_ATTEMPTS`]).
    pub fn set_max_attempts(&self, n: u32) {
        *self.pool().max_attempts.lock() = n.max(1);
    }

    /// Runs `task` on every input, streaming the results with at most a
    /// bounded number of tasks in flight or buffered (so memory stays
    /// bounded however long `inputs` is). `ordered` keeps the input order;
    /// otherwise results come as they complete.
    pub fn map<I, A>(
        &self,
        task: &str,
        inputs: I,
        ordered: bool,
    ) -> Pin<Box<dyn Stream<Item = Result<Value>> + Send>>
    where
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
        A: serde::Serialize,
    {
        let limit = (self.len().max(1) * *self.pool().per_worker.lock() * 2).max(2);
        let group = self.clone();
        let task = task.to_string();
        let futures = futures::stream::iter(inputs).map(move |a| {
            let submitted = group.submit(&task, &a);
            async move { submitted?.await }
        });
        if ordered {
            Box::pin(futures.buffered(limit))
        } else {
            Box::pin(futures.buffer_unordered(limit))
        }
    }
}

/// Gathers a stream of futures as a stream of results, with at most
/// `limit` of them awaited at once, in order.
pub fn gather_stream<S>(futures: S, limit: usize) -> impl Stream<Item = Result<Value>>
where
    S: Stream<Item = TaskFuture>,
{
    futures.buffered(limit.max(1))
}
