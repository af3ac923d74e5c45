//! The pool's counters in the Prometheus text format
//! ([`Group::metrics`]): tasks submitted, finished (done or failed),
//! re-run after a lost worker and their durations by task name, workers
//! alive and lost. Through prometheus-client (the Prometheus project's
//! Rust client); names and units by its conventions. Memory: one series
//! per task name (and outcome), so bounded by the task names a program
//! uses.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::group::Group;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    task: String,
    outcome: String,
}

type Durations = Family<TaskLabel, Histogram, fn() -> Histogram>;

/// A group's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    submitted: Family<TaskLabel, Counter>,
    finished: Family<OutcomeLabel, Counter>,
    rerun: Family<TaskLabel, Counter>,
    seconds: Durations,
    lost: Counter,
    workers: Gauge,
}

fn durations() -> Histogram {
    // 100 us to ~1.8 h.
    Histogram::new(exponential_buckets(1e-4, 4.0, 13))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("remex");
        let submitted = Family::<TaskLabel, Counter>::default();
        let finished = Family::<OutcomeLabel, Counter>::default();
        let rerun = Family::<TaskLabel, Counter>::default();
        let seconds: Durations = Family::new_with_constructor(durations);
        let lost = Counter::default();
        let workers = Gauge::default();
        registry.register(
            "tasks_submitted",
            "Tasks submitted to the pool",
            submitted.clone(),
        );
        registry.register(
            "tasks_finished",
            "Tasks finished, by outcome (done: a value; failed: an error)",
            finished.clone(),
        );
        registry.register(
            "tasks_rerun",
            "Tasks sent again because their worker was lost",
            rerun.clone(),
        );
        registry.register_with_unit(
            "task_duration",
            "Time from a task's sending to a worker to its result",
            prometheus_client::registry::Unit::Seconds,
            seconds.clone(),
        );
        registry.register(
            "workers_lost",
            "Workers whose task lane ended with tasks or while the group ran",
            lost.clone(),
        );
        registry.register("workers", "Live workers in the group", workers.clone());
        Metrics {
            registry,
            submitted,
            finished,
            rerun,
            seconds,
            lost,
            workers,
        }
    }
}

impl Metrics {
    pub(crate) fn submitted(&self, task: &str) {
        self.submitted
            .get_or_create(&TaskLabel { task: task.into() })
            .inc();
    }

    /// A task ended: `ok` with a value, else with an error; `took` from
    /// its sending (none: it never reached a worker).
    pub(crate) fn finished(&self, task: &str, ok: bool, took: Option<Duration>) {
        let outcome = if ok { "done" } else { "failed" };
        self.finished
            .get_or_create(&OutcomeLabel {
                task: task.into(),
                outcome: outcome.into(),
            })
            .inc();
        if let Some(t) = took {
            self.seconds
                .get_or_create(&TaskLabel { task: task.into() })
                .observe(t.as_secs_f64());
        }
    }

    pub(crate) fn rerun(&self, task: &str) {
        self.rerun
            .get_or_create(&TaskLabel { task: task.into() })
            .inc();
    }

    pub(crate) fn worker_lost(&self) {
        self.lost.inc();
    }
}

impl Group {
    /// The group's metrics in the Prometheus text format: tasks submitted,
    /// finished by outcome, re-run after a lost worker and their durations
    /// (a histogram) by task name, workers alive and lost. Serve it from an
    /// HTTP endpoint of your program for Prometheus to scrape.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let _: i64 = group.submit("echo", &1)?.await?;
    /// let text = group.metrics();
    /// assert!(text.contains("remex_tasks_submitted_total{task=\"echo\"} 1"));
    /// assert!(text.contains("remex_workers 2"));
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn metrics(&self) -> String {
        let m = self.pool().metrics.clone();
        m.workers.set(self.len() as i64);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &m.registry);
        out
    }
}
