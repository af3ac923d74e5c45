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
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures::future::FutureExt;
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use remex_core::{Error, Result, Value};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::group::{Group, Inner};
use crate::lane::Lane;

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
    tx: Option<oneshot::Sender<Result<TaskResult<Value>>>>,
    handle: Arc<JobHandle>,
}

impl Job {
    pub(crate) fn set_place(&self, lane: Weak<Lane>, id: i64) {
        *self.handle.place.lock() = Some((lane, id));
    }

    /// Ends the job with an error.
    pub(crate) fn finish(mut self, e: Error) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(e));
        }
    }

    /// Ends the job with its value, computed on `gateway`.
    pub(crate) fn done(mut self, value: Value, gateway: &str) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok(TaskResult {
                value,
                gateway: gateway.to_string(),
                attempts: self.attempts + 1,
            }));
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
        // Linear, not quadratic, in the workers: dispatch runs on every
        // submit and every result (512 workers: 18 s for 5,000 tasks when
        // this compared every lane with every gateway).
        let ids: std::collections::HashSet<&str> = live.iter().map(|g| g.id()).collect();
        lanes.retain(|id, l| !l.is_dead() && ids.contains(id.as_str()));
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
                job.finish(gone("the group has no live worker"));
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
                    job.finish(e);
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
                    job.finish(e);
                } else {
                    job.avoid.push(gateway.to_string());
                    queue.push_front(job);
                }
            }
        }
        self.dispatch();
    }

    /// Submits `task(args)` to the group's pool; the future resolves to the
    /// task's return value as an `R` (any serde type, or [`Value`] to take
    /// it as it comes). The task is queued at once and runs whether or not
    /// the future is polled. Must be called inside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let x: Vec<i64> = group.submit("echo", &[1, 2])?.await?;
    /// assert_eq!(x, vec![1, 2]);
    /// // Or name the type at the call:
    /// let s = group.submit::<String>("echo", "hi")?.await?;
    /// assert_eq!(s, "hi");
    /// # Ok(()) }
    /// ```
    pub fn submit<R: DeserializeOwned>(
        &self,
        task: &str,
        args: &(impl serde::Serialize + ?Sized),
    ) -> Result<TaskFuture<R>> {
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
            _result: PhantomData,
        })
    }

    /// Tasks in flight per worker (default [`DEFAULT_PER_WORKER`]); lanes
    /// opened from now on get as many executor threads.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["popen"]).await?;
    /// // One task at a time per worker: a second sleep waits for the first.
    /// group.set_tasks_per_worker(1);
    /// let a = group.submit::<()>("sleep", &0.2)?;
    /// let b = group.submit::<()>("sleep", &0.2)?;
    /// let t0 = std::time::Instant::now();
    /// remex::gather((a, b), remex::Errors::Raise).await?;
    /// assert!(t0.elapsed() >= std::time::Duration::from_millis(400));
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn set_tasks_per_worker(&self, n: usize) {
        *self.pool().per_worker.lock() = n.max(1);
        self.dispatch();
    }

    /// Attempts per task before a lost worker fails it (default
    /// [`DEFAULT_MAX_ATTEMPTS`]).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// // A task whose worker dies fails at once instead of running elsewhere.
    /// group.set_max_attempts(1);
    /// let r: i64 = group.submit("echo", &1)?.await?;
    /// assert_eq!(r, 1);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn set_max_attempts(&self, n: u32) {
        *self.pool().max_attempts.lock() = n.max(1);
    }

    /// Runs `task` on every input, streaming the results (each an `R`)
    /// with at most a bounded number of tasks submitted and not yet
    /// consumed (so memory stays bounded however long `inputs` is).
    /// `ordered` keeps the input order; otherwise results come as they
    /// complete.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use futures::TryStreamExt;
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let got: Vec<i64> = group.map::<i64>("echo", 1..=3, true).try_collect().await?;
    /// assert_eq!(got, vec![1, 2, 3]);
    /// # Ok(()) }
    /// ```
    pub fn map<R: DeserializeOwned + Send + 'static>(
        &self,
        task: &str,
        inputs: impl IntoIterator<Item: serde::Serialize, IntoIter: Send + 'static>,
        ordered: bool,
    ) -> Pin<Box<dyn Stream<Item = Result<R>> + Send>> {
        let limit = (self.len().max(1) * *self.pool().per_worker.lock() * 2).max(2);
        let group = self.clone();
        let task = task.to_string();
        let futures = futures::stream::iter(inputs).map(move |a| {
            let submitted = group.submit::<R>(&task, &a);
            async move { submitted?.await }
        });
        if ordered {
            Box::pin(futures.buffered(limit))
        } else {
            Box::pin(futures.buffer_unordered(limit))
        }
    }
}

/// A finished task with where it ran ([`TaskFuture::with_details`]).
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let group = remex::Group::new(["popen//id=w1"]).await?;
/// let r: remex::TaskResult<String> = group.submit("echo", "x")?.with_details().await?;
/// assert_eq!((r.value.as_str(), r.gateway.as_str(), r.attempts), ("x", "w1", 1));
/// group.terminate(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult<R> {
    /// What the task returned.
    pub value: R,
    /// The id of the gateway whose worker ran it to the end.
    pub gateway: String,
    /// Attempts it took: 1, or more when workers died under it.
    pub attempts: u32,
}

/// The result of a submitted task. Dropping it before it resolved cancels
/// the task: a queued task never starts; a running one has its channel
/// closed on the worker (a cancellable task such as `sleep` stops) and its
/// result discarded.
///
/// `R` is the type the result is read as ([`Value`] by default); a result
/// of another shape is an [`Error::ResultType`] naming the task and the
/// gateway. Clone the result among several places with
/// [`TaskFuture::shared`].
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let group = remex::Group::new(["2*popen"]).await?;
/// let f: remex::TaskFuture<i64> = group.submit("echo", &5)?;
/// assert_eq!(f.await?, 5);
/// // Dropped unresolved, a future cancels its task:
/// drop(group.submit::<()>("sleep", &3600)?);
/// group.terminate(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[must_use = "dropping a TaskFuture cancels its task"]
pub struct TaskFuture<R = Value> {
    rx: oneshot::Receiver<Result<TaskResult<Value>>>,
    handle: Arc<JobHandle>,
    group: Weak<Inner>,
    task: String,
    done: bool,
    _result: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for TaskFuture<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<TaskFuture {} done={}>", self.task, self.done)
    }
}

impl<R> Drop for TaskFuture<R> {
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

impl<R> TaskFuture<R> {
    /// The name of the task.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let f = group.submit::<i64>("echo", &5)?;
    /// assert_eq!(f.task(), "echo");
    /// f.await?;
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn task(&self) -> &str {
        &self.task
    }

    fn poll_result(&mut self, cx: &mut Context<'_>) -> Poll<Result<TaskResult<R>>>
    where
        R: DeserializeOwned,
    {
        let r = Pin::new(&mut self.rx).poll(cx);
        r.map(|r| {
            self.done = true;
            let ran =
                r.unwrap_or_else(|_| Err(gone("the task was dropped: its group went away")))?;
            let value = remex_core::from_value(ran.value).map_err(|e| Error::ResultType {
                task: self.task.clone(),
                gateway: ran.gateway.clone(),
                detail: e.to_string(),
            })?;
            Ok(TaskResult {
                value,
                gateway: ran.gateway,
                attempts: ran.attempts,
            })
        })
    }

    /// This future, resolving to the value with the gateway that ran the
    /// task and the attempts it took.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["popen//id=w1"]).await?;
    /// let r = group.submit::<i64>("echo", &5)?.with_details().await?;
    /// assert_eq!((r.value, r.gateway.as_str(), r.attempts), (5, "w1", 1));
    /// # Ok(()) }
    /// ```
    pub fn with_details(self) -> WithDetails<R> {
        WithDetails(self)
    }

    /// A cloneable handle on this task's result, to await or gather in
    /// several places (dask's `gather([x, [x], x])`). The task is
    /// cancelled only when every clone is dropped unresolved.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use remex::{gather, Errors};
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let x = group.submit::<i64>("echo", &7)?.shared();
    /// let got = gather(vec![vec![x.clone()], vec![x.clone(), x]], Errors::Raise).await?;
    /// assert_eq!(got.value, vec![vec![7], vec![7, 7]]);
    /// # Ok(()) }
    /// ```
    pub fn shared(self) -> SharedTask<R>
    where
        R: DeserializeOwned + Clone + Send + 'static,
    {
        SharedTask(self.boxed().shared())
    }
}

impl<R: DeserializeOwned> Future for TaskFuture<R> {
    type Output = Result<R>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R>> {
        self.poll_result(cx).map(|r| r.map(|d| d.value))
    }
}

/// A [`TaskFuture`] that resolves to its value with where it ran.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let group = remex::Group::new(["2*popen"]).await?;
/// let d: remex::WithDetails<i64> = group.submit("echo", &5)?.with_details();
/// assert_eq!(d.await?.value, 5);
/// group.terminate(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "dropping it cancels its task"]
pub struct WithDetails<R = Value>(TaskFuture<R>);

impl<R: DeserializeOwned> Future for WithDetails<R> {
    type Output = Result<TaskResult<R>>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll_result(cx)
    }
}

/// A cloneable task result ([`TaskFuture::shared`]).
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let group = remex::Group::new(["2*popen"]).await?;
/// let x: remex::SharedTask<i64> = group.submit("echo", &5)?.shared();
/// let (a, b) = futures::join!(x.clone(), x);
/// assert_eq!((a?, b?), (5, 5));
/// group.terminate(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "dropping every clone cancels its task"]
pub struct SharedTask<R = Value>(
    futures::future::Shared<futures::future::BoxFuture<'static, Result<R>>>,
);

impl<R> fmt::Debug for SharedTask<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<SharedTask>")
    }
}

impl<R: Clone> Future for SharedTask<R> {
    type Output = Result<R>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R>> {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// Yields each future's output as it completes, with its index in
/// `futures` (dask's `as_completed`).
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use futures::StreamExt;
/// let group = remex::Group::new(["2*popen"]).await?;
/// let futures = (1..=3)
///     .map(|x| group.submit::<i64>("echo", &x))
///     .collect::<remex::Result<Vec<_>>>()?;
/// let mut done = remex::as_completed(futures);
/// let mut seen = Vec::new();
/// while let Some((i, value)) = done.next().await {
///     seen.push((i, value?));
/// }
/// seen.sort();
/// assert_eq!(seen, vec![(0, 1), (1, 2), (2, 3)]);
/// # Ok(()) }
/// ```
pub fn as_completed<F: Future>(
    futures: impl IntoIterator<Item = F>,
) -> impl Stream<Item = (usize, F::Output)> {
    futures
        .into_iter()
        .enumerate()
        .map(|(i, f)| f.map(move |out| (i, out)))
        .collect::<futures::stream::FuturesUnordered<_>>()
}

/// Gathers a stream of futures as a stream of results, with at most
/// `limit` of them awaited at once, in order.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use futures::StreamExt;
/// let group = remex::Group::new(["2*popen"]).await?;
/// let futures = futures::stream::iter((0..5).map(|i| group.submit::<i64>("echo", &i).unwrap()));
/// let got: Vec<i64> = remex::gather_stream(futures, 2).map(|r| r.unwrap()).collect().await;
/// assert_eq!(got, vec![0, 1, 2, 3, 4]);
/// group.terminate(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub fn gather_stream<S, R>(futures: S, limit: usize) -> impl Stream<Item = Result<R>>
where
    S: Stream<Item = TaskFuture<R>>,
    R: DeserializeOwned,
{
    futures.buffered(limit.max(1))
}
