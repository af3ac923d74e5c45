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

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use remex_core::{Error, Result, Value};
use tokio::sync::oneshot;

use crate::group::{Group, Inner};
use crate::lane::Lane;

/// Tasks in flight per worker, by default (also the worker's executor
/// threads for the pool).
pub const DEFAULT_PER_WORKER: usize = 4;
/// Attempts per task before a lost worker fails it, by default.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

pub(crate) struct Pool {
    queue: Mutex<VecDeque<Job>>,
    lanes: Mutex<std::collections::HashMap<String, Arc<Lane>>>,
    pub(crate) per_worker: Mutex<usize>,
    pub(crate) max_attempts: Mutex<u32>,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            queue: Mutex::new(VecDeque::new()),
            lanes: Mutex::new(Default::default()),
            per_worker: Mutex::new(DEFAULT_PER_WORKER),
            max_attempts: Mutex::new(DEFAULT_MAX_ATTEMPTS),
        }
    }
}

/// What a task's future shares with its job.
#[derive(Default)]
struct JobHandle {
    cancelled: AtomicBool,
    /// The lane and request id while the job is in flight.
    place: Mutex<Option<(Weak<Lane>, i64)>>,
}

/// A submitted task on its way through the pool.
pub(crate) struct Job {
    pub(crate) task: String,
    pub(crate) args: Value,
    refs: Vec<String>,
    attempts: u32,
    avoid: Vec<String>,
    tx: Option<oneshot::Sender<Result<Value>>>,
    handle: Arc<JobHandle>,
}

impl Job {
    pub(crate) fn set_place(&self, lane: Weak<Lane>, id: i64) {
        *self.handle.place.lock() = Some((lane, id));
    }

    pub(crate) fn finish(mut self, r: Result<Value>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(r);
        }
    }

    fn cancelled(&self) -> bool {
        self.handle.cancelled.load(Ordering::Acquire)
    }
}

fn gone(reason: &str) -> Error {
    Error::NoWorker {
        reason: reason.into(),
    }
}

impl Group {
    /// The live lanes, opened on first use, with their loads.
    fn lanes(&self) -> Vec<(Arc<Lane>, usize)> {
        let pool = self.pool();
        let per_worker = *pool.per_worker.lock();
        let live = self.gateways();
        let mut lanes = pool.lanes.lock();
        lanes.retain(|id, l| !l.is_dead() && live.iter().any(|g| g.id() == id));
        let mut out = Vec::with_capacity(live.len());
        for gw in &live {
            let lane = match lanes.get(gw.id()) {
                Some(l) => l.clone(),
                None => match Lane::open(gw, per_worker, self.weak()) {
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
    /// every lane is full.
    pub(crate) fn dispatch(&self) {
        let pool = self.pool();
        // Twice the executors: a worker finishing a task finds the next one
        // already there and goes on without sleeping.
        let per_worker = *pool.per_worker.lock() * 2;
        let mut queue = pool.queue.lock();
        if queue.is_empty() {
            return;
        }
        let mut lanes = self.lanes();
        if lanes.is_empty() {
            for job in queue.drain(..) {
                job.finish(Err(gone("the group has no live worker")));
            }
            return;
        }
        let mut waiting = VecDeque::new();
        while let Some(job) = queue.pop_front() {
            if job.cancelled() {
                continue;
            }
            let allowed = match self.placement(&job.refs) {
                Ok(a) => a,
                Err(e) => {
                    job.finish(Err(e));
                    continue;
                }
            };
            let fits = |l: &Lane| {
                allowed
                    .as_ref()
                    .is_none_or(|a| a.iter().any(|id| id == l.gateway.id()))
            };
            let pick = |avoid: &[String], lanes: &[(Arc<Lane>, usize)]| {
                lanes
                    .iter()
                    .enumerate()
                    .filter(|(_, (l, load))| *load < per_worker && fits(l))
                    .filter(|(_, (l, _))| !avoid.iter().any(|a| a == l.gateway.id()))
                    .min_by_key(|(_, (_, load))| *load)
                    .map(|(i, _)| i)
            };
            // Where it failed before only if nowhere else is possible.
            let others_exist = lanes
                .iter()
                .any(|(l, _)| fits(l) && !job.avoid.iter().any(|a| a == l.gateway.id()));
            let chosen = if others_exist {
                pick(&job.avoid, &lanes)
            } else {
                pick(&[], &lanes)
            };
            let Some(i) = chosen else {
                let unconstrained = allowed.is_none() && job.avoid.is_empty();
                waiting.push_back(job);
                if unconstrained {
                    // Every lane is full: nothing behind it fits either.
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

    /// Puts back the jobs a dead lane had in flight: each counts an attempt;
    /// past the limit it fails saying its worker died.
    pub(crate) fn requeue_lost(&self, jobs: Vec<Job>, gateway: &str, why: &Error) {
        let max_attempts = *self.pool().max_attempts.lock();
        let reason = match why {
            Error::GatewayLost { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        {
            let pool = self.pool();
            let mut queue = pool.queue.lock();
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
                    job.finish(Err(e));
                } else {
                    job.avoid.push(gateway.to_string());
                    queue.push_front(job);
                }
            }
        }
        self.dispatch();
    }

    /// Submits `task(args)` to the group's pool; the future resolves to the
    /// task's return value. The task is queued at once and runs whether or
    /// not the future is polled. Must be called inside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex_core::Result<()> {
    /// let group = remex_group::Group::new(["2*popen"]).await?;
    /// let x = group.submit("echo", &[1, 2])?;
    /// assert_eq!(remex_core::from_value::<Vec<i64>>(x.await?).unwrap(), vec![1, 2]);
    /// # Ok(()) }
    /// ```
    pub fn submit<A: serde::Serialize + ?Sized>(&self, task: &str, args: &A) -> Result<TaskFuture> {
        let args = remex_core::to_value(args).map_err(|e| Error::Arguments {
            detail: e.to_string(),
        })?;
        let mut refs = Vec::new();
        crate::scatter::ref_keys(&args, &mut refs);
        let (tx, rx) = oneshot::channel();
        let handle = Arc::new(JobHandle::default());
        self.pool().queue.lock().push_back(Job {
            task: task.to_string(),
            args,
            refs,
            attempts: 0,
            avoid: Vec::new(),
            tx: Some(tx),
            handle: handle.clone(),
        });
        self.dispatch();
        Ok(TaskFuture {
            rx,
            handle,
            group: self.weak(),
            task: task.to_string(),
            done: false,
        })
    }

    /// Tasks in flight per worker (default [`DEFAULT_PER_WORKER`]); lanes
    /// opened from now on get as many executor threads.
    pub fn set_tasks_per_worker(&self, n: usize) {
        *self.pool().per_worker.lock() = n.max(1);
        self.dispatch();
    }

    /// Attempts per task before a lost worker fails it (default
    /// [`DEFAULT_MAX_ATTEMPTS`]).
    pub fn set_max_attempts(&self, n: u32) {
        *self.pool().max_attempts.lock() = n.max(1);
    }

    /// Runs `task` on every input, streaming the results with at most a
    /// bounded number of tasks submitted and not yet consumed (so memory
    /// stays bounded however long `inputs` is). `ordered` keeps the input
    /// order; otherwise results come as they complete.
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

/// The result of a submitted task. Dropping it before it resolved cancels
/// the task: a queued task never starts; a running one has its channel
/// closed on the worker (a cancellable task such as `sleep` stops) and its
/// result discarded.
#[must_use = "dropping a TaskFuture cancels its task"]
pub struct TaskFuture {
    rx: oneshot::Receiver<Result<Value>>,
    handle: Arc<JobHandle>,
    group: Weak<Inner>,
    task: String,
    done: bool,
}

impl fmt::Debug for TaskFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<TaskFuture {} done={}>", self.task, self.done)
    }
}

impl Drop for TaskFuture {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.handle.cancelled.store(true, Ordering::Release);
        let place = self.handle.place.lock().take();
        if let Some((lane, id)) = place {
            if let Some(lane) = lane.upgrade() {
                lane.cancel(id);
            }
            // Its place is free now.
            if let Some(g) = self.group.upgrade() {
                Group::from_inner(g).dispatch();
            }
        }
    }
}

impl Future for TaskFuture {
    type Output = Result<Value>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Value>> {
        let r = Pin::new(&mut self.rx).poll(cx);
        r.map(|r| {
            self.done = true;
            r.unwrap_or_else(|_| Err(gone("the task was dropped: its group went away")))
        })
    }
}

impl TaskFuture {
    /// The name of the task.
    pub fn task(&self) -> &str {
        &self.task
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
