//! A submitted task on its way through the pool, the handle its future
//! keeps, and what the pool and the lanes call back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use remex_core::{Error, Value};

use crate::slot::{slot, Filler, Slot, TaskResult};

/// Cancels a request in flight (a lane).
pub(crate) trait Canceller: Send + Sync {
    /// Forgets request `id` and tells the worker.
    fn cancel(&self, id: i64);
}

/// What a task's future shares with its job.
#[derive(Default)]
pub(crate) struct JobHandle {
    pub(crate) cancelled: AtomicBool,
    /// Where the job is in flight (its lane) and its request id there.
    pub(crate) place: Mutex<Option<(Weak<dyn Canceller>, i64)>>,
}

/// A submitted task on its way through the pool.
pub(crate) struct Job {
    pub(crate) task: String,
    pub(crate) args: Value,
    /// The scattered data its arguments refer to.
    pub(crate) refs: Vec<String>,
    /// Attempts lost with their workers so far.
    pub(crate) attempts: u32,
    /// Gateways whose workers died under it.
    pub(crate) avoid: Vec<String>,
    tx: Option<Filler>,
    handle: Arc<JobHandle>,
    /// Where its end is counted.
    metrics: Arc<crate::metrics::Metrics>,
    /// When it was last sent to a worker.
    pub(crate) sent: Option<std::time::Instant>,
    /// Its run on a worker, as the dashboard counts it.
    running: Option<crate::record::Running>,
    /// Its task name's counts.
    meters: Arc<crate::metrics::TaskMeters>,
    /// The span it was submitted in: its worker's log events go under it.
    pub(crate) span: tracing::Span,
}

impl Job {
    /// A job for `task(args)` and the handle its future keeps.
    pub(crate) fn new(
        task: &str,
        args: Value,
        refs: Vec<String>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> (Job, Arc<JobHandle>, Arc<Slot>) {
        let meters = metrics.submitted(task);
        let (tx, rx) = slot();
        let handle = Arc::new(JobHandle::default());
        let job = Job {
            task: task.to_string(),
            args,
            refs,
            attempts: 0,
            avoid: Vec::new(),
            tx: Some(tx),
            handle: handle.clone(),
            metrics,
            sent: None,
            running: None,
            meters,
            span: tracing::Span::current(),
        };
        (job, handle, rx)
    }

    /// It is being sent to `gateway`, whose counts `worker` holds (set
    /// at its lane's first send).
    pub(crate) fn sending(
        &mut self,
        worker: &std::sync::OnceLock<Arc<crate::record::WorkerStats>>,
        gateway: &str,
    ) {
        let now = std::time::Instant::now();
        self.sent = Some(now);
        let record = &self.metrics.record;
        let w = worker.get_or_init(|| record.worker(gateway)).clone();
        self.running = Some(record.running(self.meters.stats.clone(), w, now));
    }

    /// Its task name's counts.
    pub(crate) fn meters(&self) -> &crate::metrics::TaskMeters {
        &self.meters
    }

    /// It came back unstarted (stolen for another worker).
    pub(crate) fn unsent(&mut self) {
        self.running = None;
    }

    /// Its worker was lost under it.
    pub(crate) fn lost_under(&mut self) {
        if let Some(r) = self.running.take() {
            r.end(crate::record::Outcome::Lost);
        }
    }

    pub(crate) fn set_place(&self, lane: Weak<dyn Canceller>, id: i64) {
        *self.handle.place.lock() = Some((lane, id));
    }

    /// Ends the job with an error.
    pub(crate) fn finish(mut self, e: Error) {
        if let Some(tx) = self.tx.take() {
            let took = self.sent.map(|t| t.elapsed());
            self.meters.finished(false, took);
            if let Some(r) = self.running.take() {
                r.end(crate::record::Outcome::Failed);
            }
            tx.fill(Err(e));
        }
    }

    /// Ends the job with its value, computed on `gateway`.
    pub(crate) fn done(mut self, value: Value, gateway: &str) {
        if let Some(tx) = self.tx.take() {
            let took = self.sent.map(|t| t.elapsed());
            self.meters.finished(true, took);
            if let Some(r) = self.running.take() {
                r.end(crate::record::Outcome::Done);
            }
            tx.fill(Ok(TaskResult {
                value,
                gateway: gateway.to_string(),
                attempts: self.attempts + 1,
            }));
        }
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.handle.cancelled.load(Ordering::Acquire)
    }
}
