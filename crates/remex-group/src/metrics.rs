//! The pool's counters in the Prometheus text format
//! ([`Group::metrics`](crate::Group::metrics)): tasks submitted, finished (done or failed),
//! re-run after a lost worker and their durations by task name, workers
//! alive and lost. Through prometheus-client (the Prometheus project's
//! Rust client); names and units by its conventions. Memory: one series
//! per task name (and outcome), so bounded by the task names a program
//! uses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use remex_core::Gateway;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrafficLabel {
    gateway: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
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
    running: Family<TaskLabel, Gauge>,
    by_state: Family<StateLabel, Gauge>,
    channels: Gauge,
    memory: Gauge,
    bytes: Family<TrafficLabel, Counter>,
    messages: Family<TrafficLabel, Counter>,
    /// What the dashboard shows.
    pub(crate) record: std::sync::Arc<crate::record::Record>,
    /// Each task name's meters, made on its first submit (as many as the
    /// record's task names).
    meters: parking_lot::Mutex<HashMap<Arc<str>, Arc<TaskMeters>>>,
}

/// One task name's counts and duration histogram, and its record in the
/// dashboard's: looked up once when a task is submitted and carried by
/// its job, so that its end and re-runs count without a lookup.
pub(crate) struct TaskMeters {
    pub(crate) stats: Arc<crate::record::TaskStats>,
    submitted: Counter,
    done: Counter,
    failed: Counter,
    rerun: Counter,
    seconds: Histogram,
}

impl TaskMeters {
    /// A task ended: `ok` with a value, else with an error; `took` from
    /// its sending (none: it never reached a worker).
    pub(crate) fn finished(&self, ok: bool, took: Option<Duration>) {
        if ok { &self.done } else { &self.failed }.inc();
        if let Some(t) = took {
            self.seconds.observe(t.as_secs_f64());
        }
    }
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
        let running = Family::<TaskLabel, Gauge>::default();
        registry.register(
            "tasks_running",
            "Tasks sent to a worker and not finished",
            running.clone(),
        );
        let by_state = Family::<StateLabel, Gauge>::default();
        registry.register(
            "workers_by_state",
            "The group's workers by state (ready, exiting; and those that left: lost, ended, as the last 1,024 remembered)",
            by_state.clone(),
        );
        let channels = Gauge::default();
        registry.register(
            "channels_open",
            "Channels open on the live workers' connections",
            channels.clone(),
        );
        let memory = Gauge::default();
        registry.register_with_unit(
            "controller_resident_memory",
            "Resident memory of the controller process",
            prometheus_client::registry::Unit::Bytes,
            memory.clone(),
        );
        let bytes = Family::<TrafficLabel, Counter>::default();
        registry.register_with_unit(
            "gateway",
            "Bytes over each live gateway's connection, by direction (in: from the worker)",
            prometheus_client::registry::Unit::Bytes,
            bytes.clone(),
        );
        let messages = Family::<TrafficLabel, Counter>::default();
        registry.register(
            "gateway_messages",
            "Messages over each live gateway's connection, by direction",
            messages.clone(),
        );
        Metrics {
            registry,
            submitted,
            finished,
            rerun,
            seconds,
            lost,
            workers,
            running,
            by_state,
            channels,
            memory,
            bytes,
            messages,
            record: Default::default(),
            meters: Default::default(),
        }
    }
}

impl Metrics {
    /// A task of name `task` was submitted: its meters.
    pub(crate) fn submitted(&self, task: &str) -> Arc<TaskMeters> {
        let m = self.meters_of(task);
        self.record.submitted(&m.stats);
        m.submitted.inc();
        m
    }

    fn meters_of(&self, task: &str) -> Arc<TaskMeters> {
        let mut all = self.meters.lock();
        if let Some(m) = all.get(task) {
            return m.clone();
        }
        let label = TaskLabel { task: task.into() };
        let outcome = |outcome: &str| OutcomeLabel {
            task: task.into(),
            outcome: outcome.into(),
        };
        // One family lookup per statement: its guard is a lock on the
        // family, which a second lookup may need to write.
        let submitted = self.submitted.get_or_create(&label).clone();
        let done = self.finished.get_or_create(&outcome("done")).clone();
        let failed = self.finished.get_or_create(&outcome("failed")).clone();
        let rerun = self.rerun.get_or_create(&label).clone();
        let seconds = self.seconds.get_or_create(&label).clone();
        let m = Arc::new(TaskMeters {
            stats: self.record.task(task),
            submitted,
            done,
            failed,
            rerun,
            seconds,
        });
        all.insert(task.into(), m.clone());
        m
    }

    pub(crate) fn rerun(&self, m: &TaskMeters, worker: &str, reason: &str) {
        self.record.rerun(&m.stats, worker, reason);
        m.rerun.inc();
    }

    pub(crate) fn worker_lost(&self, worker: &str, reason: &str) {
        self.record.lost(worker, reason);
        self.lost.inc();
    }
}

/// The text of [`Group::metrics`](crate::Group::metrics): `m` brought up
/// to date with the group's `live` gateways, in Prometheus' text format.
pub(crate) fn render(m: &Metrics, live: &[Gateway]) -> String {
    m.workers.set(live.len() as i64);
    m.channels
        .set(live.iter().map(|g| g.numchannels() as i64).sum());
    let snap = m.record.snapshot(u64::MAX);
    for (task, p) in &snap.progress {
        m.running
            .get_or_create(&TaskLabel {
                task: task.to_string(),
            })
            .set(p.running as i64);
    }
    let mut states = std::collections::BTreeMap::<String, i64>::new();
    for s in ["starting", "ready", "exiting", "lost", "ended"] {
        states.insert(s.into(), 0);
    }
    *states.entry("starting".into()).or_default() += snap.starting.len() as i64;
    for g in live {
        let s = crate::record::state_of(g.state());
        *states.entry(word(&s)).or_default() += 1;
    }
    for d in &snap.departed {
        *states.entry(word(&d.state)).or_default() += 1;
    }
    for (state, n) in states {
        m.by_state.get_or_create(&StateLabel { state }).set(n);
    }
    for g in live {
        let t = g.connection().traffic();
        for (family, dir, now) in [
            (&m.bytes, "in", t.bytes_in),
            (&m.bytes, "out", t.bytes_out),
            (&m.messages, "in", t.messages_in),
            (&m.messages, "out", t.messages_out),
        ] {
            let c = family.get_or_create(&TrafficLabel {
                gateway: g.id().to_string(),
                direction: dir.into(),
            });
            // Counters only rise: add what came since the last look.
            let seen = c.get();
            if now > seen {
                c.inc_by(now - seen);
            }
        }
    }
    if let Some(rss) = resident_bytes() {
        m.memory.set(rss);
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &m.registry);
    prometheus_text(&out)
}

/// A state's first word ("lost: why" -> "lost").
fn word(state: &str) -> String {
    state.split([' ', ':']).next().unwrap_or(state).to_string()
}

/// This process's resident memory, from /proc/self/statm.
fn resident_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// prometheus-client writes OpenMetrics; Prometheus' own text format
/// (0.0.4, what `promtool check metrics` and every scraper read) names a
/// counter's family with its `_total` and has no `# UNIT` or `# EOF`
/// lines. The samples are the same.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((p, rest)) => {
                let name = rest.split(' ').next().unwrap_or("");
                if counters.contains(name) {
                    out.push_str(p);
                    out.push_str(name);
                    out.push_str("_total");
                    out.push_str(&rest[name.len()..]);
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_are_named_with_their_total_and_openmetrics_lines_go() {
        let om = "# HELP remex_tasks_submitted Tasks submitted.\n# TYPE remex_tasks_submitted counter\nremex_tasks_submitted_total{task=\"a\"} 1\n# HELP remex_x_seconds X.\n# TYPE remex_x_seconds histogram\n# UNIT remex_x_seconds seconds\nremex_x_seconds_sum 0.5\n# EOF\n";
        assert_eq!(
            super::prometheus_text(om),
            "# HELP remex_tasks_submitted_total Tasks submitted.\n# TYPE remex_tasks_submitted_total counter\nremex_tasks_submitted_total{task=\"a\"} 1\n# HELP remex_x_seconds X.\n# TYPE remex_x_seconds histogram\nremex_x_seconds_sum 0.5\n"
        );
    }
}
