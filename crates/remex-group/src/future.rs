//! What a submitted task returns: [`TaskFuture`] (cancelling its task when
//! dropped unresolved), [`WithDetails`], [`SharedTask`], and the streams
//! [`as_completed`] and [`gather_stream`].

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures::future::FutureExt;
use futures::{Stream, StreamExt};
use remex_core::{Error, Result, Value};
use serde::de::DeserializeOwned;

use crate::job::JobHandle;
use crate::lane::Scheduler;
use crate::slot::{gone, Batch, Outcome, Slot, TaskResult};

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
    rx: Arc<Slot>,
    handle: Arc<JobHandle>,
    scheduler: Weak<dyn Scheduler>,
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
            if let Some(s) = self.scheduler.upgrade() {
                s.dispatch();
            }
        }
    }
}

impl<R> TaskFuture<R> {
    /// The future of a job just queued.
    pub(crate) fn new(
        task: &str,
        rx: Arc<Slot>,
        handle: Arc<JobHandle>,
        scheduler: Weak<dyn Scheduler>,
    ) -> Self {
        TaskFuture {
            rx,
            handle,
            scheduler,
            task: task.to_string(),
            done: false,
            _result: PhantomData,
        }
    }

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
        self.rx.poll_take(cx).map(|r| {
            self.done = true;
            self.typed(r)
        })
    }

    /// The outcome read as `R`.
    fn typed(&self, r: Outcome) -> Result<TaskResult<R>>
    where
        R: DeserializeOwned,
    {
        let ran = r?;
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
    }

    /// Waits for all of `items` with one wake-up for all of them: when
    /// the last result is in, or, with `stop_at_failure`, at the first
    /// failure, whose error is returned (the futures not resolved are then
    /// dropped, which cancels their tasks). What [`gather`](crate::gather)
    /// does with a vector of futures.
    pub(crate) async fn settle_all(
        items: Vec<Self>,
        stop_at_failure: bool,
    ) -> Result<Vec<Result<TaskResult<R>>>>
    where
        R: DeserializeOwned,
    {
        let batch = Batch::new(items.len(), stop_at_failure);
        for (i, f) in items.iter().enumerate() {
            f.rx.join(&batch, i);
        }
        futures::future::poll_fn(|cx| batch.poll_ready(cx)).await;
        let mut items = items;
        if let Some(i) = batch.failed() {
            let e = items[i].take();
            // Dropping the rest cancels what still runs.
            drop(items);
            return Err(e.err().unwrap_or_else(|| gone("a task failed")));
        }
        Ok(items.iter_mut().map(|f| f.take()).collect())
    }

    /// The result of a member of a batch that is ready.
    fn take(&mut self) -> Result<TaskResult<R>>
    where
        R: DeserializeOwned,
    {
        self.done = true;
        let r = self.rx.take();
        self.typed(r)
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
