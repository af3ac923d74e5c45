//! What a group remembers of its work for the dashboard
//! ([`Group::dashboard`](crate::Group)): progress per task name, task
//! counts per worker, the last [`EVENTS`] task ends (the task stream),
//! finished tasks per second over the last [`SECONDS`] seconds, the last
//! [`INCIDENTS`] lost workers and re-runs with their reasons, and the
//! last [`DEPARTED`] workers that left the group. Every part is bounded
//! (the maps by the task names a program uses and the workers it
//! started). Recording costs atomic increments at a task's submission,
//! start and end (its task name's and its worker's counts are resolved
//! once: at submission, and when a lane opens) and one short lock at its
//! end, for the ring.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

/// Task ends kept for the task stream.
pub(crate) const EVENTS: usize = 10_000;
/// Seconds of throughput kept.
pub(crate) const SECONDS: usize = 600;
/// Lost workers and re-runs kept.
pub(crate) const INCIDENTS: usize = 200;
/// Workers that left the group, kept with their end.
pub(crate) const DEPARTED: usize = 1_024;

/// How a task's run on a worker ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    /// With a value.
    Done,
    /// With an error.
    Failed,
    /// Its worker was lost under it (it may run again elsewhere).
    Lost,
}

/// One task's run on a worker, in milliseconds since the record began.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct TaskEvent {
    pub(crate) seq: u64,
    pub(crate) task: Arc<str>,
    pub(crate) worker: Arc<str>,
    pub(crate) start: f64,
    pub(crate) end: f64,
    pub(crate) outcome: Outcome,
}

/// Counts of one task name.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Progress {
    pub(crate) submitted: u64,
    pub(crate) running: u64,
    pub(crate) done: u64,
    pub(crate) failed: u64,
    pub(crate) rerun: u64,
}

/// Counts of one worker.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct WorkerCounts {
    pub(crate) running: u64,
    pub(crate) done: u64,
    pub(crate) failed: u64,
}

/// A lost worker or a task sent again, with why.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Incident {
    pub(crate) t: f64,
    pub(crate) kind: &'static str,
    pub(crate) worker: String,
    pub(crate) task: Option<String>,
    pub(crate) reason: String,
}

/// A gateway's state in words.
pub(crate) fn state_of(s: remex_core::GatewayState) -> String {
    use remex_core::GatewayState;
    match s {
        GatewayState::Running => "ready".into(),
        GatewayState::Exiting => "exiting".into(),
        GatewayState::Exited { code, signal } => match (code, signal) {
            (Some(c), _) => format!("ended (exit {c})"),
            (None, Some(sig)) => format!("ended (signal {sig})"),
            (None, None) => "ended".into(),
        },
        GatewayState::Lost { reason } => format!("lost: {reason}"),
    }
}

/// A worker that left the group: what it was and how it ended.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Departed {
    pub(crate) id: String,
    pub(crate) spec: String,
    pub(crate) host: String,
    pub(crate) pid: u32,
    pub(crate) state: String,
    pub(crate) t: f64,
    /// Its connection's bytes in and out, at the end.
    pub(crate) bytes: (u64, u64),
    /// The last lines of its stderr.
    pub(crate) stderr: Vec<String>,
}

/// A worker being started: its id and spec, since when.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Starting {
    pub(crate) id: String,
    pub(crate) spec: String,
    pub(crate) t: f64,
}

/// One task name's counts, shared by its jobs.
#[derive(Default)]
pub(crate) struct TaskStats {
    name: Arc<str>,
    submitted: AtomicU64,
    running: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    rerun: AtomicU64,
}

impl TaskStats {
    fn read(&self) -> Progress {
        Progress {
            submitted: self.submitted.load(Relaxed),
            running: self.running.load(Relaxed),
            done: self.done.load(Relaxed),
            failed: self.failed.load(Relaxed),
            rerun: self.rerun.load(Relaxed),
        }
    }
}

/// One worker's counts, shared by its lane's jobs.
#[derive(Default)]
pub(crate) struct WorkerStats {
    id: Arc<str>,
    running: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
}

#[derive(Default)]
struct Names {
    tasks: HashMap<Arc<str>, Arc<TaskStats>>,
    workers: HashMap<Arc<str>, Arc<WorkerStats>>,
}

#[derive(Default)]
struct State {
    seq: u64,
    events: VecDeque<TaskEvent>,
    /// (second since the start, done, failed).
    seconds: VecDeque<(u64, u64, u64)>,
    incidents: VecDeque<Incident>,
    departed: VecDeque<Departed>,
    starting: Vec<Starting>,
}

/// The dashboard's memory of a group.
pub(crate) struct Record {
    began: Instant,
    names: Mutex<Names>,
    state: Mutex<State>,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            began: Instant::now(),
            names: Mutex::default(),
            state: Mutex::default(),
        }
    }
}

fn push_bounded<T>(q: &mut VecDeque<T>, item: T, bound: usize) {
    if q.len() == bound {
        q.pop_front();
    }
    q.push_back(item);
}

/// What the dashboard shows at one moment.
#[derive(Debug, Serialize)]
pub(crate) struct Snapshot {
    /// Milliseconds since the record began.
    pub(crate) t: f64,
    /// The last task event's number.
    pub(crate) seq: u64,
    pub(crate) progress: Vec<(Arc<str>, Progress)>,
    pub(crate) counts: Vec<(Arc<str>, WorkerCounts)>,
    /// Task events after the one asked for (at most [`EVENTS`]).
    pub(crate) events: Vec<TaskEvent>,
    /// (second, done, failed), the last [`SECONDS`].
    pub(crate) throughput: Vec<(u64, u64, u64)>,
    pub(crate) incidents: Vec<Incident>,
    pub(crate) departed: Vec<Departed>,
    pub(crate) starting: Vec<Starting>,
}

/// Removes its workers from the starting ones when dropped.
pub(crate) struct StartGuard {
    record: Arc<Record>,
    ids: Vec<String>,
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        self.record
            .state
            .lock()
            .starting
            .retain(|s| !self.ids.contains(&s.id));
    }
}

impl Record {
    fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.began).as_secs_f64() * 1e3
    }

    /// The counts of task name `task`.
    pub(crate) fn task(&self, task: &str) -> Arc<TaskStats> {
        let mut n = self.names.lock();
        if let Some(t) = n.tasks.get(task) {
            return t.clone();
        }
        let name: Arc<str> = task.into();
        let t = Arc::new(TaskStats {
            name: name.clone(),
            ..Default::default()
        });
        n.tasks.insert(name, t.clone());
        t
    }

    /// The counts of worker `id`.
    pub(crate) fn worker(&self, id: &str) -> Arc<WorkerStats> {
        let mut n = self.names.lock();
        if let Some(w) = n.workers.get(id) {
            return w.clone();
        }
        let key: Arc<str> = id.into();
        let w = Arc::new(WorkerStats {
            id: key.clone(),
            ..Default::default()
        });
        n.workers.insert(key, w.clone());
        w
    }

    /// A task of `stats`' name was submitted.
    pub(crate) fn submitted(&self, stats: &TaskStats) {
        stats.submitted.fetch_add(1, Relaxed);
    }

    pub(crate) fn rerun(&self, stats: &TaskStats, worker: &str, reason: &str) {
        stats.rerun.fetch_add(1, Relaxed);
        let task = &*stats.name;
        let t = self.ms(Instant::now());
        let mut s = self.state.lock();
        push_bounded(
            &mut s.incidents,
            Incident {
                t,
                kind: "rerun",
                worker: worker.to_string(),
                task: Some(task.to_string()),
                reason: reason.to_string(),
            },
            INCIDENTS,
        );
    }

    pub(crate) fn lost(&self, worker: &str, reason: &str) {
        let t = self.ms(Instant::now());
        push_bounded(
            &mut self.state.lock().incidents,
            Incident {
                t,
                kind: "lost",
                worker: worker.to_string(),
                task: None,
                reason: reason.to_string(),
            },
            INCIDENTS,
        );
    }

    /// `gw` left the group: lost (with the reason its task lane ended
    /// on) when the pool lost it, else as its state says.
    pub(crate) fn departed(&self, gw: &remex_core::Gateway) {
        let info = gw.rinfo();
        let t = self.now();
        let mut s = self.state.lock();
        let lost = s
            .incidents
            .iter()
            .rev()
            .find(|i| i.kind == "lost" && i.worker == gw.id())
            .map(|i| format!("lost: {}", i.reason));
        let d = Departed {
            id: gw.id().to_string(),
            spec: gw.spec().to_string(),
            host: info.host.clone(),
            pid: info.pid,
            state: lost.unwrap_or_else(|| state_of(gw.state())),
            t,
            bytes: {
                let tr = gw.connection().traffic();
                (tr.bytes_in, tr.bytes_out)
            },
            stderr: gw.stderr_tail(),
        };
        push_bounded(&mut s.departed, d, DEPARTED);
    }

    /// Workers `ids` (of spec `spec`) are being started, until the guard
    /// drops.
    pub(crate) fn starting(self: &Arc<Self>, workers: Vec<(String, String)>) -> StartGuard {
        let t = self.now();
        let ids: Vec<String> = workers.iter().map(|(id, _)| id.clone()).collect();
        self.state
            .lock()
            .starting
            .extend(
                workers
                    .into_iter()
                    .map(|(id, spec)| Starting { id, spec, t }),
            );
        StartGuard {
            record: self.clone(),
            ids,
        }
    }

    /// Workers that never started, with why.
    pub(crate) fn failed_start(&self, workers: Vec<(String, String)>, reason: &str) {
        let t = self.now();
        let mut s = self.state.lock();
        for (id, spec) in workers {
            let d = Departed {
                id,
                spec,
                host: String::new(),
                pid: 0,
                state: format!("failed to start: {reason}"),
                t,
                bytes: (0, 0),
                stderr: Vec::new(),
            };
            push_bounded(&mut s.departed, d, DEPARTED);
        }
    }

    pub(crate) fn now(&self) -> f64 {
        self.ms(Instant::now())
    }

    /// A task of `task`'s name sent to `worker` at `since` (running
    /// until the guard ends or drops).
    pub(crate) fn running(
        self: &Arc<Self>,
        task: Arc<TaskStats>,
        worker: Arc<WorkerStats>,
        since: Instant,
    ) -> Running {
        task.running.fetch_add(1, Relaxed);
        worker.running.fetch_add(1, Relaxed);
        Running {
            record: self.clone(),
            task,
            worker,
            since,
        }
    }

    /// The state now, with the task events after number `after`.
    pub(crate) fn snapshot(&self, after: u64) -> Snapshot {
        let t = self.ms(Instant::now());
        let (mut progress, counts): (Vec<_>, Vec<_>) = {
            let n = self.names.lock();
            (
                n.tasks.iter().map(|(k, v)| (k.clone(), v.read())).collect(),
                n.workers
                    .iter()
                    .map(|(k, w)| {
                        let c = WorkerCounts {
                            running: w.running.load(Relaxed),
                            done: w.done.load(Relaxed),
                            failed: w.failed.load(Relaxed),
                        };
                        (k.clone(), c)
                    })
                    .collect(),
            )
        };
        progress.sort_by(|a, b| a.0.cmp(&b.0));
        let s = self.state.lock();
        let skip = s.events.partition_point(|e| e.seq <= after);
        Snapshot {
            t,
            seq: s.seq,
            progress,
            counts,
            events: s.events.iter().skip(skip).cloned().collect(),
            throughput: s.seconds.iter().copied().collect(),
            incidents: s.incidents.iter().cloned().collect(),
            departed: s.departed.iter().cloned().collect(),
            starting: s.starting.clone(),
        }
    }
}

/// A task running on a worker; counted until it ends or is dropped
/// (cancelled, handed back unstarted).
pub(crate) struct Running {
    record: Arc<Record>,
    task: Arc<TaskStats>,
    worker: Arc<WorkerStats>,
    since: Instant,
}

impl Running {
    /// The run ended: one task event.
    pub(crate) fn end(self, outcome: Outcome) {
        let now = Instant::now();
        let r = &self.record;
        let (start, end) = (r.ms(self.since), r.ms(now));
        let second = now.saturating_duration_since(r.began).as_secs();
        match outcome {
            Outcome::Done => {
                self.task.done.fetch_add(1, Relaxed);
                self.worker.done.fetch_add(1, Relaxed);
            }
            Outcome::Failed => {
                self.task.failed.fetch_add(1, Relaxed);
                self.worker.failed.fetch_add(1, Relaxed);
            }
            Outcome::Lost => {
                self.worker.failed.fetch_add(1, Relaxed);
            }
        }
        let mut s = r.state.lock();
        s.seq += 1;
        let seq = s.seq;
        let event = TaskEvent {
            seq,
            task: self.task.name.clone(),
            worker: self.worker.id.clone(),
            start,
            end,
            outcome,
        };
        push_bounded(&mut s.events, event, EVENTS);
        if outcome != Outcome::Lost {
            if s.seconds.back().map(|b| b.0) != Some(second) {
                push_bounded(&mut s.seconds, (second, 0, 0), SECONDS);
            }
            if let Some(b) = s.seconds.back_mut() {
                match outcome {
                    Outcome::Done => b.1 += 1,
                    _ => b.2 += 1,
                }
            }
        }
        // The running counts fall in drop.
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.running.fetch_sub(1, Relaxed);
        self.worker.running.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_count_while_they_last_and_end_as_events() {
        let r = Arc::new(Record::default());
        let sim = r.task("sim");
        r.submitted(&sim);
        r.submitted(&sim);
        let now = Instant::now();
        let a = r.running(sim.clone(), r.worker("gw0"), now);
        let b = r.running(sim.clone(), r.worker("gw1"), now);
        let snap = r.snapshot(0);
        assert_eq!(snap.progress[0].1.running, 2);
        a.end(Outcome::Done);
        drop(b); // cancelled: no event
        let snap = r.snapshot(0);
        let p = &snap.progress[0].1;
        assert_eq!((p.submitted, p.running, p.done), (2, 0, 1));
        assert_eq!(snap.events.len(), 1);
        assert_eq!(&*snap.events[0].worker, "gw0");
        assert_eq!(snap.throughput.iter().map(|s| s.1).sum::<u64>(), 1);
        // Only what came after the last event seen.
        assert!(r.snapshot(snap.seq).events.is_empty());
    }

    #[test]
    fn the_task_stream_keeps_the_last_events_only() {
        let r = Arc::new(Record::default());
        for _ in 0..EVENTS + 5 {
            r.running(r.task("t"), r.worker("gw0"), Instant::now())
                .end(Outcome::Done);
        }
        let snap = r.snapshot(0);
        assert_eq!(snap.events.len(), EVENTS);
        assert_eq!(snap.events[0].seq, 6);
        assert_eq!(snap.seq, (EVENTS + 5) as u64);
    }
}
