//! `cargo xtask bench`: remex measured beside the raw pipe floor and execnet,
//! in one run, so that ratios hold on a noisy shared machine.
//!
//! Rows: (a) popen gateway create + first reply, (b) small-message ping-pong
//! round trip, (c) one-way small messages per second, (d) bulk bytes. The
//! floor for (b) and (d) is a child process of this program speaking over
//! plain pipes with blocking reads and writes. Medians over repetitions.
//!
//! This program is also its own worker (self-exec) and its own pipe peer.
//!
//! Profiling aids, each measuring one row quickly: `--pingpong-only`
//! (`--spawned` from a tokio task, `--blocking` from a plain thread; also
//! prints thread switches per round trip), `--floor-only`, `--bulk-only`,
//! `--messages-only` ((c), (c')), `--tasks-only` (`--raw-lane [--executors K] [--window W]`), `--group-only N`, `--flood-only MIB`, `--ssh-only`, `--socket-only`,
//! `--socket-bulk-only` ((k)'s remex side alone for 60 rounds first, the
//! two processes' pids on stderr for a profiler),
//! `--scripts-only`, `--cli-only`, `--testbed-only` (rows (u)-(u''') on the
//! testbed of hosts, `.ci/hosts-up`; with (v)), `--first-contact-only` (row
//! (v) alone), `--pool-scale-only N TASKS` (one line of row (f'')).
//!
//! Rows (j) and (k) measure `socket=` (the Noise session) against a
//! plain-TCP floor: a child process of this program speaking unencrypted
//! over loopback TCP.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use remex::worker::{Task, TaskError, Worker};
use remex::{makegateway, Value};

mod aids;
mod cli;
mod engine;
mod floor;
mod full;
mod peers;
mod pool;
mod scripts;
mod slurm;
mod socket;
mod ssh;
mod tail;
mod testbed;

use cli::*;
use engine::*;
use floor::*;
use peers::*;
use pool::*;
use scripts::*;
use slurm::*;
use socket::*;
use ssh::*;

struct Counts {
    tasks: usize,
    reps: usize,
    rounds: usize,
    pings: usize,
    msgs: usize,
    bulk_mb: usize,
    chunk: usize,
    /// Rounds of (k)'s remex side alone before the rows (a profiling aid).
    profile_rounds: usize,
}

impl Counts {
    /// One of everything: the base of the profiling aids, which each set
    /// the counts of their own rows.
    fn one_row() -> Counts {
        Counts {
            tasks: 1,
            reps: 1,
            rounds: 1,
            pings: 1,
            msgs: 1,
            bulk_mb: 1,
            chunk: 1,
            profile_rounds: 0,
        }
    }
}

fn worker() -> Worker {
    Worker::new()
        .task("echo_loop", |t: &Task| {
            let ch = t.channel();
            while let Ok(v) = ch.receive_blocking::<remex::Value>(None) {
                ch.send_value_blocking(v)?;
            }
            Ok::<_, TaskError>(())
        })
        .task("flood", |t: &Task| {
            let n: i64 = t.args()?;
            for i in 0..n {
                t.channel().send_value_blocking(Value::Int(i))?;
            }
            Ok::<_, TaskError>(())
        })
        .task("sink", |t: &Task| {
            let mut n = 0i64;
            while t.channel().receive_blocking::<remex::Value>(None).is_ok() {
                n += 1;
            }
            Ok::<_, TaskError>(n)
        })
        .task("stderr_flood", |t: &Task| {
            // Writes MiB megabytes to stderr without a newline.
            let mib: usize = t.args()?;
            let block = vec![b'x'; 1 << 20];
            let mut err = std::io::stderr().lock();
            for _ in 0..mib {
                err.write_all(&block)
                    .map_err(|e| TaskError::from(e.to_string()))?;
            }
            Ok::<_, TaskError>(())
        })
        .task("bulk", |t: &Task| {
            let (total, chunk): (usize, usize) = t.args()?;
            let data = bytes::Bytes::from(vec![b'x'; chunk]);
            for _ in 0..total / chunk {
                t.channel()
                    .send_value_blocking(Value::Bytes(data.clone()))?;
            }
            Ok::<_, TaskError>(())
        })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("--one-byte") {
        // The floor of (a) and (e): this program started, nothing done.
        use std::io::Write;
        let _ = std::io::stdout().write_all(b"1");
        std::process::exit(0);
    }
    remex::serve_if_worker(worker);
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--pipe-peer") {
        pipe_peer(&args[2], &args[3..]);
    }
    if args.get(1).map(String::as_str) == Some("--tcp-peer") {
        tcp_peer(&args[2], &args[3..]);
    }
    if aids::run(&args).await {
        return;
    }
    full::run(args.iter().any(|a| a == "--quick")).await;
}
