//! The group's task API (dask's model): [`Group::submit`], [`Group::map`]
//! and the pool's settings, over the pool ([`crate::pool`]).

use std::pin::Pin;
use std::sync::{Arc, Weak};

use futures::{Stream, StreamExt};
use remex_core::{Error, Result};
use serde::de::DeserializeOwned;

use super::{Group, Inner};
use crate::future::TaskFuture;
use crate::job::Job;
use crate::lane::{Lane, Scheduler};

impl Scheduler for Inner {
    fn dispatch(self: Arc<Self>) {
        Group::from_inner(self).dispatch();
    }

    fn requeue_lost(self: Arc<Self>, jobs: Vec<Job>, gateway: &str, why: &Error) {
        let group = Group::from_inner(self);
        if let Error::GatewayLost { reason, .. } = why {
            group.pool().metrics.worker_lost(gateway, reason);
        }
        group.pool().requeue_lost(jobs, gateway, why);
        group.dispatch();
    }

    fn requeue_returned(self: Arc<Self>, jobs: Vec<Job>) {
        Group::from_inner(self).pool().requeue_front(jobs);
    }

    fn feed(self: Arc<Self>, lane: &Lane, idle: usize) {
        let group = Group::from_inner(self);
        if !group.pool().is_idle() {
            return;
        }
        if let Some(victim) = group.pool().crowded.pick(lane) {
            victim.steal(idle);
        }
    }
}

impl Group {
    /// What the pool's lanes and futures call back.
    fn scheduler(&self) -> Weak<dyn Scheduler> {
        self.weak()
    }

    /// Sends queued tasks to lanes with room (opening lanes first when the
    /// gateways changed).
    pub(crate) fn dispatch(&self) {
        let pool = self.pool();
        if pool.is_idle() {
            return;
        }
        let members = self.members();
        if pool.needs_sync(members) {
            pool.sync(members, &self.live(), &self.scheduler());
        }
        let placement = |refs: &[String], ids: &[&str]| {
            if refs.is_empty() {
                return Ok(None);
            }
            self.placement_among(refs, ids)
        };
        pool.dispatch(&placement);
    }

    /// Submits `task(args)` to the group's pool; the future resolves to the
    /// task's return value as an `R` (any serde type, or [`Value`](remex_core::Value) to take
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
        crate::placement::ref_keys(&args, &mut refs);
        let (job, handle, rx) = Job::new(task, args, refs, self.pool().metrics.clone());
        if self.pool().push(job) {
            self.dispatch();
        }
        Ok(TaskFuture::new(task, rx, handle, self.scheduler()))
    }

    /// Tasks in flight per worker (default [`DEFAULT_PER_WORKER`](crate::DEFAULT_PER_WORKER)); lanes
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
    /// [`DEFAULT_MAX_ATTEMPTS`](crate::DEFAULT_MAX_ATTEMPTS)).
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
