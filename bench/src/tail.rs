//! Row (t): uneven tasks. 2,000 tasks, 98% of 1 ms and 2% of 200 ms in a
//! fixed shuffled order, over 4 workers with 4 tasks each (16 slots): the
//! makespan against its lower bound, max(total work / slots, the longest
//! task), and dask.distributed on the same set (4 workers of 4 threads)
//! in the same run. An idle worker takes tasks queued behind long ones
//! elsewhere (work stealing), so the tail stays short.

use std::time::{Duration, Instant};

use remex::{gather, Errors, Group};

use super::median;

/// Tasks, and how many of them are long.
const TASKS: usize = 2_000;
const LONG: usize = 40;
const SHORT_S: f64 = 0.001;
const LONG_S: f64 = 0.200;
const WORKERS: usize = 4;
const PER_WORKER: usize = 4;

pub(crate) struct TailRow {
    /// Median makespan, ms.
    pub(crate) remex_ms: f64,
    /// The lower bound, ms.
    pub(crate) bound_ms: f64,
    /// The makespan of the ideal list schedule of this order (each task,
    /// in submission order, to the first free slot, no overhead): what no
    /// scheduler that does not know the durations can beat on average.
    pub(crate) list_ms: f64,
    /// dask's median makespan, ms, or why not.
    pub(crate) dask_ms: Result<f64, String>,
}

/// The durations, in seconds, shuffled with a fixed seed.
fn durations() -> Vec<f64> {
    let mut d: Vec<f64> = (0..TASKS)
        .map(|i| if i < LONG { LONG_S } else { SHORT_S })
        .collect();
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..d.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        d.swap(i, (s % (i as u64 + 1)) as usize);
    }
    d
}

pub(crate) async fn tail_row(rounds: usize) -> Result<TailRow, String> {
    let d = durations();
    let total: f64 = d.iter().sum();
    let bound_ms = (total / (WORKERS * PER_WORKER) as f64).max(LONG_S) * 1e3;
    let mut slots = [0f64; WORKERS * PER_WORKER];
    for s in &d {
        let free = slots
            .iter_mut()
            .min_by(|a, b| a.total_cmp(b))
            .expect("slots");
        *free += s;
    }
    let list_ms = slots.iter().fold(0f64, |a, b| a.max(*b)) * 1e3;
    let err = |e: remex::Error| e.to_string();
    let g = Group::new([format!("{WORKERS}*popen//worker=self")])
        .await
        .map_err(err)?;
    g.set_tasks_per_worker(PER_WORKER);
    let mut spans = Vec::new();
    for _ in 0..rounds.max(1) {
        let t0 = Instant::now();
        let futs = d
            .iter()
            .map(|s| g.submit::<()>("sleep", s))
            .collect::<remex::Result<Vec<_>>>()
            .map_err(err)?;
        gather(futs, Errors::Raise).await.map_err(err)?;
        spans.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    g.terminate(Duration::from_secs(2)).await;
    let file = std::env::temp_dir().join(format!("remex-bench-tail-{}", std::process::id()));
    let text: String = d.iter().map(|s| format!("{s}\n")).collect();
    std::fs::write(&file, text).map_err(|e| e.to_string())?;
    let dask = super::python_value("dask-tail", &file.display().to_string(), rounds.max(1));
    let _ = std::fs::remove_file(&file);
    Ok(TailRow {
        remex_ms: median(spans),
        bound_ms,
        list_ms,
        dask_ms: dask,
    })
}

pub(crate) fn print_tail_row(r: &Result<TailRow, String>) {
    match r {
        Ok(r) => {
            let dask = match &r.dask_ms {
                Ok(ms) => format!("{ms:.0} ms ({:.2}x the bound)", ms / r.bound_ms),
                Err(why) => format!("not measured: {why}"),
            };
            println!(
                "| (t) {TASKS} uneven tasks ({}% of {:.0} ms, the rest {:.0} ms, shuffled) over {WORKERS} workers x {PER_WORKER}: makespan / its lower bound | {:.0} ms / {:.0} ms | ideal list schedule of this order: {:.0} ms ({:.2}x the bound) | dask: {dask} | {:.2}x the bound, {:.2}x the ideal list schedule | | <= 1.15x the bound |",
                LONG * 100 / TASKS,
                LONG_S * 1e3,
                SHORT_S * 1e3,
                r.remex_ms,
                r.bound_ms,
                r.list_ms,
                r.list_ms / r.bound_ms,
                r.remex_ms / r.bound_ms,
                r.remex_ms / r.list_ms
            );
        }
        Err(why) => println!("| (t) uneven tasks | not measured: {why} | | | | | |"),
    }
}
