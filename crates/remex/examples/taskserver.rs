//! Saturate several workers with tasks, lose no result, end cleanly.
//!
//! A port of execnet's "saturate multiple hosts and CPUs" example: each
//! worker runs `process_item`, which says "ready", then answers every task
//! it receives until it receives `None`. Tasks go to whichever worker
//! answered. A receive queue with an endmarker tells when a worker's channel
//! ended; a task that was in flight on a worker that died is handed to
//! another one, so every result arrives exactly once.
//!
//! ```text
//! cargo run --release --example taskserver -- [--tx SPEC]... [--tasks N] [--sleep-ms MAX]
//! ```
//!
//! `--tx` is repeatable and defaults to `2*popen`. popen and ssh workers
//! are this program itself (`worker=self`; uploaded to ssh hosts) unless
//! the spec names a `worker=`; a `cmd=` spec names its command, e.g.
//! `cmd=exec target/release/examples/taskserver`.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use remex::worker::{with_self_worker, Task, TaskError, Worker};
use remex::{from_value, Channel, Group, Value};

/// The endmarker: a value no task produces.
const END: &str = "__remex_end__";

#[derive(Parser)]
#[command(about = "Spread tasks over remex workers and collect every result")]
struct Args {
    /// Gateway spec (repeatable); `N*spec` starts N workers.
    #[arg(long = "tx", default_value = "2*popen")]
    tx: Vec<String>,
    /// Number of tasks.
    #[arg(long, default_value_t = 20_000)]
    tasks: i64,
    /// Each task sleeps a pseudo-random time up to this many milliseconds
    /// (execnet's example sleeps up to 2 s; 0 keeps tasks CPU-only).
    #[arg(long, default_value_t = 0)]
    sleep_ms: u64,
}

/// The task processor that sits on each worker (the seed's `process_item`).
fn process_item(t: &Task) -> Result<(), TaskError> {
    let sleep_ms: u64 = t.args()?;
    let ch = t.channel();
    ch.send_blocking(&"ready")?;
    loop {
        let x: Option<i64> = ch.receive_blocking(None)?;
        let Some(x) = x else { break };
        if sleep_ms > 0 {
            let pseudo_random = (x as u64)
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407)
                >> 33;
            std::thread::sleep(Duration::from_millis(pseudo_random % (sleep_ms + 1)));
        }
        ch.send_blocking(&(x, x * 10))?;
    }
    Ok(())
}

fn worker() -> Worker {
    Worker::new().task("process_item", process_item)
}

#[derive(Default)]
struct Worksheet {
    /// Tasks not handed out yet (or handed back by a dead worker).
    todo: VecDeque<i64>,
    /// The task each channel is working on, by gateway id.
    in_flight: BTreeMap<String, i64>,
    /// Channels that are ready but got nothing to do, waiting in case a
    /// task comes back from a dead worker.
    parked: Vec<Channel>,
    results: BTreeMap<i64, i64>,
    per_worker: BTreeMap<String, u64>,
    requeued: u64,
}

impl Worksheet {
    /// Gives `ch` the next task, or parks it; once nothing is left to do
    /// anywhere, tells every parked worker to stop.
    async fn feed(&mut self, mut ch: Channel) -> remex::Result<()> {
        while let Some(task) = self.todo.pop_front() {
            match ch.send(&Some(task)).await {
                Ok(()) => {
                    self.in_flight.insert(ch.gateway_id().to_string(), task);
                    return Ok(());
                }
                // The worker died after its last answer (its endmarker is
                // on the way): the task goes to a parked worker, or stays
                // for the next one that answers.
                Err(remex::Error::GatewayLost { .. }) => {
                    self.todo.push_front(task);
                    match self.parked.pop() {
                        Some(idle) => ch = idle,
                        None => return Ok(()),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.parked.push(ch);
        if self.in_flight.is_empty() {
            for idle in self.parked.drain(..) {
                // A worker that died meanwhile has its endmarker queued.
                let _ = idle.send(&None::<i64>).await;
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    remex::serve_if_worker(worker);
    let args = Args::parse();
    let t0 = Instant::now();
    let specs: Vec<String> = args.tx.iter().map(|s| with_self_worker(s)).collect();
    let group = Group::new(&specs).await?;
    println!(
        "started {} workers ({}) in {:?}",
        group.len(),
        specs.join(", "),
        t0.elapsed()
    );
    for gw in group.gateways() {
        println!("  {} pid {}", gw.id(), gw.rinfo().pid);
    }

    let mch = group.remote_call("process_item", &args.sleep_ms)?;
    let queue = mch.make_receive_queue(Some(Value::from(END)))?;
    let mut w = Worksheet {
        todo: (0..args.tasks).collect(),
        ..Worksheet::default()
    };
    let bar = ProgressBar::new(args.tasks as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} results, {per_sec}, eta {eta}",
    )?);
    let mut ended = 0;
    while ended < mch.len() {
        let (ch, item) = queue.get().await;
        let gw = ch.gateway_id().to_string();
        if item == Value::from(END) {
            ended += 1;
            if let Some(task) = w.in_flight.remove(&gw) {
                // The worker died with a task: hand it to a parked worker,
                // or to the next one that answers.
                w.requeued += 1;
                w.todo.push_front(task);
                if let Some(idle) = w.parked.pop() {
                    w.feed(idle).await?;
                }
            }
            continue;
        }
        if item != Value::from("ready") {
            let (x, r): (i64, i64) = from_value(item)?;
            if w.in_flight.remove(&gw) != Some(x) {
                return Err(format!("{gw} returned a result for task {x} it was not given").into());
            }
            if w.results.insert(x, r).is_some() {
                return Err(format!("task {x} returned twice").into());
            }
            *w.per_worker.entry(gw).or_default() += 1;
            bar.inc(1);
        }
        w.feed(ch).await?;
    }
    bar.finish_and_clear();
    group.terminate(Duration::from_secs(1)).await;
    let wall = t0.elapsed();

    let missing = (0..args.tasks)
        .filter(|x| !w.results.contains_key(x))
        .count();
    let wrong = w.results.iter().filter(|(x, r)| **r != **x * 10).count();
    println!("tasks:    {}", args.tasks);
    println!(
        "results:  {} ({} missing, {} wrong, {} re-run after a worker ended)",
        w.results.len(),
        missing,
        wrong,
        w.requeued
    );
    for (gw, n) in &w.per_worker {
        println!("  {gw}: {n}");
    }
    println!(
        "wall time: {wall:?} ({:.0} tasks/s)",
        args.tasks as f64 / wall.as_secs_f64()
    );
    if missing > 0 || wrong > 0 {
        return Err("results were lost or wrong".into());
    }
    Ok(())
}
