//! The seed's writer service on remex: workers stream "scans" (a start
//! event, data points, an end event) over channels; a session service
//! starts one scan writer per scan; each scan writer's consumer runs in
//! parallel mode and writes its scan to a file of its own.
//!
//! ```text
//! cargo run --release --example stream_writer -- [--tx SPEC]... [--scans N] [--points N]
//!     [--out DIR] [--full-disk SCAN] [--stop-after N]
//! ```
//!
//! - The session (the seed's NexusSessionWriter) runs in sequential mode on
//!   the main runtime: its listener takes scan announcements from the
//!   workers' receive queue, its consumer starts a scan writer per scan.
//! - Each scan writer (NexusScanWriter) listens on the scan's channel on
//!   the main runtime and writes in parallel mode, on a thread of its own,
//!   so a slow disk never holds up the channels.
//! - `--full-disk SCAN` writes that scan to `/dev/full`: it goes to Fault
//!   with the reason while the others finish.
//! - `--stop-after N` stops the session gracefully once N scans started:
//!   no new scan is taken, the ones under way are written to their end.
//!   The Nth scan's start is the stop's decision point: a scan announced
//!   after it is refused (its channel closed with the reason, so its worker
//!   stops producing it), however fast the workers announce.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use remex::sync::{Consumer, Event, Failure, Feed, Launcher, LifecycleState, RunMode, Service};
use remex::worker::{with_self_worker, Task, TaskError, Worker};
use remex::{from_value, Channel, ChannelRef, Group, MultiChannel, Value};
use serde::{Deserialize, Serialize};

/// The endmarker of a worker's announcement channel.
const END: &str = "__remex_end__";
/// How long a scan may take once the session stops taking new ones.
const SCAN_BOUND: Duration = Duration::from_secs(120);

#[derive(Parser)]
#[command(about = "Stream scans from remex workers into one file per scan")]
struct Args {
    /// Gateway spec (repeatable); `N*spec` starts N workers.
    #[arg(long = "tx", default_value = "2*popen")]
    tx: Vec<String>,
    /// Scans per worker.
    #[arg(long, default_value_t = 3)]
    scans: u32,
    /// Data points per scan.
    #[arg(long, default_value_t = 10_000)]
    points: u64,
    /// Where the scan files go (default: stream_writer_out in the
    /// system's temporary directory, printed at the start).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write this scan (e.g. gw0-s1) to /dev/full, a disk that is full.
    #[arg(long)]
    full_disk: Option<String>,
    /// Stop the session gracefully once this many scans have started.
    #[arg(long)]
    stop_after: Option<usize>,
}

/// What a worker streams for one scan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event")]
enum ScanEvent {
    Start { scan: String, points: u64 },
    Data { i: u64, value: f64 },
    End { count: u64 },
}

/// The worker's side: announce each scan on the task's channel with a
/// channel of its own, then stream the scan on it.
fn produce_scans(t: &Task) -> Result<(), TaskError> {
    let (id, scans, points): (String, u32, u64) = t.args()?;
    let ch = t.channel();
    for s in 0..scans {
        let scan = format!("{id}-s{s}");
        let sc = ch.newchannel();
        ch.send_blocking(&(&scan, &sc))?;
        sc.send_blocking(&ScanEvent::Start {
            scan: scan.clone(),
            points,
        })?;
        for i in 0..points {
            let value = (i as f64 * 0.001).sin();
            sc.send_blocking(&ScanEvent::Data { i, value })?;
        }
        sc.send_blocking(&ScanEvent::End { count: points })?;
        sc.close(None);
    }
    Ok(())
}

/// Writes one scan to its file; write errors put the scan writer in Fault
/// and the rest of the scan is drained without writing.
struct FileWriter {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    broken: bool,
    written: Arc<AtomicU64>,
}

impl FileWriter {
    fn fail(&mut self, what: &str, e: std::io::Error) -> Failure {
        self.broken = true;
        self.file = None;
        Failure::non_fatal(format!("{what} {}: {e}", self.path.display()))
    }
}

impl Consumer<ScanEvent> for FileWriter {
    fn consume(&mut self, event: ScanEvent) -> Result<(), Failure> {
        if self.broken {
            return Ok(());
        }
        match event {
            ScanEvent::Start { scan, points } => {
                let mut f = match File::create(&self.path) {
                    Ok(f) => BufWriter::new(f),
                    Err(e) => return Err(self.fail("creating", e)),
                };
                if let Err(e) = writeln!(f, "# scan {scan}, {points} points") {
                    return Err(self.fail("writing", e));
                }
                self.file = Some(f);
            }
            ScanEvent::Data { i, value } => {
                let Some(f) = self.file.as_mut() else {
                    return Err(Failure::non_fatal("data before the scan's start"));
                };
                if let Err(e) = writeln!(f, "{i} {value}") {
                    return Err(self.fail("writing", e));
                }
                self.written.fetch_add(1, Ordering::Relaxed);
            }
            ScanEvent::End { count } => {
                let Some(mut f) = self.file.take() else {
                    return Err(Failure::non_fatal("end before the scan's start"));
                };
                if let Err(e) = f.flush().and_then(|()| f.get_ref().sync_all()) {
                    return Err(self.fail("writing", e));
                }
                let written = self.written.load(Ordering::Relaxed);
                if written != count {
                    return Err(Failure::non_fatal(format!(
                        "wrote {written} points of {count}"
                    )));
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), Failure> {
        if self.file.is_some() {
            return Err(Failure::non_fatal("the scan ended without its end event"));
        }
        Ok(())
    }
}

/// A scan writer: listens on the scan's channel (on `launcher`'s runtime),
/// writes in parallel mode.
fn scan_writer(
    name: &str,
    ch: Channel,
    path: PathBuf,
    launcher: Launcher,
    written: Arc<AtomicU64>,
) -> Service<ScanEvent> {
    Service::builder(name)
        .mode(RunMode::Parallel)
        .runtime(launcher)
        .build(
            move |mut feed: Feed<ScanEvent>| {
                let ch = ch.clone();
                async move {
                    feed.ready();
                    loop {
                        match ch.receive::<ScanEvent>().await {
                            Ok(ev) => {
                                let end = matches!(ev, ScanEvent::End { .. });
                                feed.send(ev).await.map_err(Failure::fatal)?;
                                if end {
                                    return Ok(());
                                }
                            }
                            Err(e) if e.is_end_of_channel() => {
                                return Err(Failure::fatal("the scan's channel ended early"));
                            }
                            Err(e) => return Err(Failure::fatal(e)),
                        }
                    }
                }
            },
            move || FileWriter {
                path: path.clone(),
                file: None,
                broken: false,
                written: written.clone(),
            },
        )
}

struct ScanEntry {
    name: String,
    path: PathBuf,
    service: Service<ScanEvent>,
    written: Arc<AtomicU64>,
}

type Scans = Arc<Mutex<Vec<ScanEntry>>>;

/// Why a scan announced after the stop decision is refused.
const REFUSED: &str = "the session is stopping: no new scan is taken";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    remex::serve_if_worker(|| Worker::new().task("produce_scans", produce_scans));
    let args = Args::parse();
    let t0 = Instant::now();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("stream_writer_out"));
    std::fs::create_dir_all(&out)?;
    println!("scans go to {}", out.display());
    let specs: Vec<String> = args.tx.iter().map(|s| with_self_worker(s)).collect();
    let group = Group::new(&specs).await?;
    for gw in group.gateways() {
        println!("worker {} pid {}", gw.id(), gw.rinfo().pid);
    }
    let channels = group
        .gateways()
        .iter()
        .map(|gw| gw.remote_call("produce_scans", &(gw.id(), args.scans, args.points)))
        .collect::<remex::Result<Vec<_>>>()?;
    let mch = MultiChannel::new(channels);
    let queue = mch.make_receive_queue(Some(Value::from(END)))?;
    let workers = mch.len();

    let launcher = Launcher::current()?;
    let scans: Scans = Default::default();
    let refused: Arc<Mutex<Vec<String>>> = Default::default();
    let enough = Event::new();
    let session = {
        let (scans_l, scans_c) = (scans.clone(), scans.clone());
        let refused_c = refused.clone();
        let (out, full_disk, stop_after) = (out.clone(), args.full_disk.clone(), args.stop_after);
        let (launcher_c, enough_c) = (launcher.clone(), enough.clone());
        Service::builder("session").runtime(launcher.clone()).build(
            // The listener: scan announcements from every worker, until
            // each worker's channel ended or the session is stopped.
            move |mut feed: Feed<(String, Channel)>| {
                let (queue, scans) = (queue.clone(), scans_l.clone());
                async move {
                    feed.ready();
                    let mut ended = 0;
                    while ended < workers {
                        let (ch, item) = tokio::select! {
                            x = queue.get() => x,
                            _ = feed.stopped() => break,
                        };
                        if item == Value::from(END) {
                            ended += 1;
                            continue;
                        }
                        let (name, r): (String, ChannelRef) =
                            from_value(item).map_err(Failure::non_fatal)?;
                        feed.send((name, ch.attach(r)))
                            .await
                            .map_err(Failure::fatal)?;
                    }
                    // Graceful: the scans under way are written to their end.
                    let services: Vec<_> = scans
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|s| s.service.clone())
                        .collect();
                    for s in services {
                        s.join(Some(SCAN_BOUND)).await.map_err(Failure::non_fatal)?;
                    }
                    Ok(())
                }
            },
            // The consumer: a scan writer per scan.
            move || {
                let (scans, out, full_disk) = (scans_c.clone(), out.clone(), full_disk.clone());
                let (launcher, enough) = (launcher_c.clone(), enough_c.clone());
                let refused = refused_c.clone();
                move |(name, ch): (String, Channel)| {
                    // The consumer takes scans one at a time, so the count
                    // orders every announcement against the stop decision.
                    if stop_after.is_some_and(|n| scans.lock().unwrap().len() >= n) {
                        ch.close(Some(REFUSED));
                        refused.lock().unwrap().push(name);
                        return Ok(());
                    }
                    let path = if full_disk.as_deref() == Some(name.as_str()) {
                        PathBuf::from("/dev/full")
                    } else {
                        out.join(format!("{name}.dat"))
                    };
                    let written = Arc::new(AtomicU64::new(0));
                    let service =
                        scan_writer(&name, ch, path.clone(), launcher.clone(), written.clone());
                    service.start(false, None).map_err(Failure::non_fatal)?;
                    let mut scans = scans.lock().unwrap();
                    scans.push(ScanEntry {
                        name,
                        path,
                        service,
                        written,
                    });
                    if Some(scans.len()) == stop_after {
                        enough.set();
                    }
                    Ok(())
                }
            },
        )
    };
    session.start(false, None)?;
    session
        .lifecycle()
        .wait_ready(Some(Duration::from_secs(10)))
        .await?;
    if args.stop_after.is_some() {
        // Stop once enough scans started (or the session ended by itself).
        tokio::select! {
            _ = enough.wait(None) => session.stop(false, None)?,
            _ = session.join(None) => {}
        }
    }
    let state = session.join(Some(SCAN_BOUND * 2)).await?;
    group.terminate(Duration::from_secs(1)).await;

    println!("session: {state} after {:?}", t0.elapsed());
    for name in refused.lock().unwrap().iter() {
        println!("refused {name}");
    }
    let mut bad = 0;
    for s in scans.lock().unwrap().iter() {
        let st = s.service.state();
        println!(
            "scan {}: {st}, {} points -> {}",
            s.name,
            s.written.load(Ordering::Relaxed),
            s.path.display()
        );
        let expected_fault = args.full_disk.as_deref() == Some(s.name.as_str());
        if (st == LifecycleState::Off) == expected_fault {
            bad += 1;
        }
    }
    if state != LifecycleState::Off || bad > 0 {
        return Err(format!("session {state}, {bad} scans not as expected").into());
    }
    Ok(())
}
