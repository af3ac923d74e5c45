//! The soak run behind `cargo xtask soak --seconds N`: mixed traffic (task
//! batches through submit/gather, ping-pongs, bulk transfers, channels
//! passed inside values) over a group of popen and ssh gateways and, on
//! the testbed (`.ci/hosts-up`), ssh workers on two of its hosts, a
//! `socket=` worker on a third and Slurm workers that dial back from its
//! nodes, while workers are SIGKILLed and re-added at random and testbed
//! hosts are cut off the network and healed. At the end it checks that
//! every accepted task result arrived exactly once, that every stream
//! arrived intact or ended with a stated error (never cut short silently),
//! that the controller's memory and open files stayed flat, and that no
//! worker process is left on any host (nor salloc or srun); it prints
//! those figures and fails if any check fails.
//!
//! ```text
//! remex-soak [--seconds N] [--no-ssh] [--no-testbed] [--seed S]
//! ```

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use remex::{gather, Errors, Group, Value};
use remex_tests::testbed;
use remex_tests::{bulk_chunk, rss_bytes, wait_gone, Sshd};

/// The controller's resident memory must stay under this.
const RSS_BOUND: u64 = 256 << 20;
/// Open files may grow by this much over the run (a few gateways more
/// than at the start, re-added after losses).
const FDS_SLACK: u64 = 64;
/// Any single wait in the soak: beyond this, something hangs.
const WAIT: Duration = Duration::from_secs(30);
const BULK_TOTAL: u64 = 4 << 20;
const BULK_CHUNK: u64 = 64 << 10;

#[derive(Default)]
struct Counters {
    tasks_submitted: AtomicU64,
    tasks_failed: AtomicU64,
    duplicates: AtomicU64,
    wrong: AtomicU64,
    hangs: AtomicU64,
    pingpongs: AtomicU64,
    bulk_bytes: AtomicU64,
    bulk_streams: AtomicU64,
    passes: AtomicU64,
    interrupted: AtomicU64,
    silent_losses: AtomicU64,
    kills: AtomicU64,
    partitions: AtomicU64,
    readds: AtomicU64,
    readd_failures: AtomicU64,
    max_rss: AtomicU64,
    max_fds: AtomicU64,
}

/// How to start another worker like one that was lost: by the spec's
/// kind (popen, ssh to the loopback sshd, or a testbed host).
fn kind_of(gw: &remex::Gateway) -> String {
    let spec = &gw.spec().raw;
    if spec.starts_with("slurm") {
        "slurm".into()
    } else if spec.starts_with("socket=") {
        "socket".into()
    } else if spec.starts_with("ssh=rx") {
        format!("ssh {}", gw.rinfo().host)
    } else if spec.starts_with("ssh=") {
        "ssh".into()
    } else {
        "popen".into()
    }
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

struct Soak {
    group: Group,
    /// The spec of each kind of worker (see [`kind_of`]).
    specs: std::collections::HashMap<String, String>,
    /// Testbed hosts that may be cut off the network.
    partitionable: Vec<&'static str>,
    deadline: Instant,
    c: Counters,
    results: Mutex<HashSet<i64>>,
    pids: Mutex<HashSet<u32>>,
    rng: Mutex<u64>,
    errors: Mutex<Vec<String>>,
    /// The next task id: every task of the run has its own.
    next_id: std::sync::atomic::AtomicI64,
}

impl Soak {
    fn rand(&self, n: usize) -> usize {
        let mut s = self.rng.lock().unwrap();
        // xorshift64
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s % n.max(1) as u64) as usize
    }

    fn running(&self) -> bool {
        Instant::now() < self.deadline
    }

    fn gateway(&self) -> Option<remex::Gateway> {
        let gws = self.group.gateways();
        (!gws.is_empty()).then(|| gws[self.rand(gws.len())].clone())
    }

    fn note(&self, e: String) {
        eprintln!("soak: {e}");
        self.errors.lock().unwrap().push(e);
    }

    /// An error that ends a stream: stated (the worker was killed) or not.
    fn ended(&self, what: &str, e: &remex::Error) {
        if e.is_end_of_channel() {
            self.c.silent_losses.fetch_add(1, Ordering::Relaxed);
            self.note(format!("{what}: the stream ended early without an error"));
        } else if matches!(e, remex::Error::Timeout { .. }) {
            self.c.hangs.fetch_add(1, Ordering::Relaxed);
            self.note(format!("{what}: {e}"));
        } else {
            self.c.interrupted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn tasks(s: Arc<Soak>) {
    while s.running() {
        let first = s.next_id.fetch_add(200, Ordering::Relaxed);
        let ids: Vec<i64> = (first..first + 200).collect();
        let futures: Vec<_> = match ids.iter().map(|i| s.group.submit("echo", i)).collect() {
            Ok(f) => f,
            Err(e) => {
                s.note(format!("submit: {e}"));
                continue;
            }
        };
        s.c.tasks_submitted
            .fetch_add(ids.len() as u64, Ordering::Relaxed);
        match tokio::time::timeout(WAIT, gather(futures, Errors::Skip)).await {
            Err(_) => {
                s.c.hangs.fetch_add(1, Ordering::Relaxed);
                s.note("gather: no answer within 30 s".into());
            }
            Ok(Err(e)) => s.note(format!("gather: {e}")),
            Ok(Ok(g)) => {
                s.c.tasks_failed
                    .fetch_add(g.skipped.len() as u64, Ordering::Relaxed);
                for sk in &g.skipped {
                    s.note(format!("a task failed: {}", sk.error));
                }
                let mut results = s.results.lock().unwrap();
                for v in g.value {
                    match v {
                        Value::Int(i) if (first..first + 200).contains(&i) => {
                            if !results.insert(i) {
                                s.c.duplicates.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        other => {
                            s.c.wrong.fetch_add(1, Ordering::Relaxed);
                            s.note(format!("a task returned {other:?}"));
                        }
                    }
                }
            }
        }
    }
}

async fn pingpong(s: Arc<Soak>) {
    while s.running() {
        let Some(gw) = s.gateway() else { continue };
        let Ok(ch) = gw.remote_exec("for x in channel { channel.send(x + 1) }") else {
            continue;
        };
        for j in 0..50i64 {
            if let Err(e) = ch.send(&j).await {
                s.ended("ping-pong send", &e);
                break;
            }
            match ch.receive_timeout::<i64>(WAIT).await {
                Ok(v) if v == j + 1 => {
                    s.c.pingpongs.fetch_add(1, Ordering::Relaxed);
                }
                Ok(v) => {
                    s.c.wrong.fetch_add(1, Ordering::Relaxed);
                    s.note(format!("ping-pong: sent {j}, got {v}"));
                    break;
                }
                Err(e) => {
                    s.ended("ping-pong", &e);
                    break;
                }
            }
        }
        ch.close(None);
    }
}

async fn bulk(s: Arc<Soak>) {
    while s.running() {
        let Some(gw) = s.gateway() else { continue };
        let Ok(ch) = gw.remote_call("bulk", &(BULK_TOTAL, BULK_CHUNK)) else {
            continue;
        };
        let chunks = BULK_TOTAL.div_ceil(BULK_CHUNK);
        let mut ok = true;
        for i in 0..=chunks {
            match ch.receive_timeout::<Value>(WAIT).await {
                Ok(Value::Bytes(b)) if i < chunks => {
                    if b[..] != bulk_chunk(i, BULK_CHUNK as usize)[..] {
                        s.c.wrong.fetch_add(1, Ordering::Relaxed);
                        s.note(format!("bulk: chunk {i} corrupt"));
                        ok = false;
                        break;
                    }
                    s.c.bulk_bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                }
                Ok(Value::Int(n)) if i == chunks && n as u64 == chunks => {}
                Ok(other) => {
                    s.c.wrong.fetch_add(1, Ordering::Relaxed);
                    s.note(format!("bulk: item {i} was {}", other.kind_name()));
                    ok = false;
                    break;
                }
                Err(e) => {
                    s.ended("bulk", &e);
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            s.c.bulk_streams.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn passing(s: Arc<Soak>) {
    while s.running() {
        let Some(gw) = s.gateway() else { continue };
        let Ok(ch) = gw.remote_exec("let c = channel.receive(); for x in c { c.send(x * 2) }")
        else {
            continue;
        };
        let side = gw.newchannel();
        if let Err(e) = ch.send(&side).await {
            s.ended("channel passing", &e);
            continue;
        }
        for j in 0..20i64 {
            let r = async {
                side.send(&j).await?;
                side.receive_timeout::<i64>(WAIT).await
            }
            .await;
            match r {
                Ok(v) if v == 2 * j => {}
                Ok(v) => {
                    s.c.wrong.fetch_add(1, Ordering::Relaxed);
                    s.note(format!("passed channel: sent {j}, got {v}"));
                    break;
                }
                Err(e) => {
                    s.ended("passed channel", &e);
                    break;
                }
            }
        }
        s.c.passes.fetch_add(1, Ordering::Relaxed);
        side.close(None);
    }
}

/// Kills a random worker every 1-3 s and adds a fresh one of the same kind.
async fn chaos(s: Arc<Soak>) {
    loop {
        let pause = Duration::from_millis(1000 + s.rand(2000) as u64);
        if Instant::now() + pause >= s.deadline {
            return;
        }
        tokio::time::sleep(pause).await;
        // One time in four, a testbed host is cut off for 3 s (its
        // workers are lost within their 2 s bound) and healed.
        if !s.partitionable.is_empty() && s.rand(4) == 0 {
            let host = s.partitionable[s.rand(s.partitionable.len())];
            let on_it: Vec<remex::Gateway> = s
                .group
                .gateways()
                .into_iter()
                .filter(|g| g.rinfo().host == host)
                .collect();
            let cut = testbed::partition(host);
            s.c.partitions.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(3)).await;
            cut.heal();
            for g in &on_it {
                s.readd(&kind_of(g)).await;
            }
            continue;
        }
        let Some(gw) = s.gateway() else { continue };
        if kind_of(&gw) == "socket" {
            // Its pid is the listener's, which serves the other sessions
            // too: socket= workers are lost by cutting their host off.
            continue;
        }
        let pid = gw.rinfo().pid;
        // SAFETY: kill(2) on a worker this soak started (testbed hosts
        // share this machine's pids).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        s.c.kills.fetch_add(1, Ordering::Relaxed);
        s.readd(&kind_of(&gw)).await;
    }
}

impl Soak {
    /// Starts a worker of `kind` in the group.
    async fn readd(&self, kind: &str) {
        let Some(spec) = self.specs.get(kind).cloned() else {
            self.note(format!("no spec for a worker of kind {kind}"));
            return;
        };
        match self.group.makegateway(&spec).await {
            Ok(g) => {
                self.pids.lock().unwrap().insert(g.rinfo().pid);
                self.c.readds.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.c.readd_failures.fetch_add(1, Ordering::Relaxed);
                self.note(format!("re-adding {spec}: {e}"))
            }
        }
    }
}

async fn memory(s: Arc<Soak>) {
    while s.running() {
        if let Some(rss) = rss_bytes(std::process::id()) {
            s.c.max_rss.fetch_max(rss, Ordering::Relaxed);
        }
        s.c.max_fds.fetch_max(open_fds(), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn main() -> ExitCode {
    let mut seconds = 60u64;
    let mut ssh = true;
    let mut use_testbed = std::env::var_os("REMEX_TESTBED_SKIP").is_none();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).unwrap_or(seconds),
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(seed),
            "--no-ssh" => ssh = false,
            "--no-testbed" => use_testbed = false,
            other => {
                eprintln!("remex-soak: unknown argument {other:?}; use [--seconds N] [--no-ssh] [--no-testbed] [--seed S]");
                return ExitCode::FAILURE;
            }
        }
    }
    if use_testbed {
        // Before any thread: the Slurm commands talk to the testbed's
        // cluster.
        std::env::set_var("SLURM_CONF", testbed::SLURM_CONF);
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run(seconds, ssh, use_testbed, seed))
}

async fn run(seconds: u64, ssh: bool, use_testbed: bool, seed: u64) -> ExitCode {
    let worker = std::env::current_exe()
        .unwrap()
        .with_file_name("remex-test-worker");
    let popen = format!("popen//worker={}", worker.display());
    let sshd = ssh.then(|| Sshd::start("127.0.0.5"));
    let mut specs = std::collections::HashMap::new();
    specs.insert("popen".to_string(), popen.clone());
    let mut start = vec![format!("3*{popen}")];
    if let Some(sshd) = &sshd {
        let spec = sshd.spec(&format!("//worker={}", worker.display()));
        specs.insert("ssh".into(), spec.clone());
        start.push(spec);
    }
    // The testbed: ssh to rx1 and rx2, socket= to a listener on rx3, Slurm
    // workers dialing back from rx5-rx7; a 2 s liveness bound, so that a
    // partition is noticed quickly.
    let listener = use_testbed.then(|| {
        testbed::available();
        testbed::RemoteListener::start("rx3", &worker.display().to_string())
    });
    let mut partitionable = Vec::new();
    if let Some(l) = &listener {
        let extra = format!("//worker={}//liveness=2", worker.display());
        for h in ["rx1", "rx2"] {
            let spec = testbed::ssh_spec(h, &extra);
            specs.insert(format!("ssh {h}"), spec.clone());
            start.push(spec);
        }
        let socket = format!("{}//liveness=2", l.spec());
        specs.insert("socket".into(), socket.clone());
        start.push(socket);
        let slurm = format!("slurm//ntasks=1{extra}");
        specs.insert("slurm".into(), slurm);
        start.push(format!("slurm//ntasks=2//nodes=2{extra}"));
        partitionable = vec!["rx1", "rx2", "rx3"];
    }
    let t0 = Instant::now();
    let group = match Group::new(&start).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("remex-soak: cannot start the group: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("soak: {seconds} s over {} (seed {seed})", start.join(", "));
    let pids = group.gateways().iter().map(|g| g.rinfo().pid).collect();
    let fds_start = open_fds();
    let s = Arc::new(Soak {
        group,
        specs,
        partitionable,
        deadline: Instant::now() + Duration::from_secs(seconds),
        c: Counters::default(),
        results: Mutex::new(HashSet::new()),
        pids: Mutex::new(pids),
        rng: Mutex::new(seed),
        errors: Mutex::new(Vec::new()),
        next_id: Default::default(),
    });
    let loops = vec![
        tokio::spawn(tasks(s.clone())),
        tokio::spawn(tasks(s.clone())),
        tokio::spawn(pingpong(s.clone())),
        tokio::spawn(bulk(s.clone())),
        tokio::spawn(passing(s.clone())),
        tokio::spawn(chaos(s.clone())),
        tokio::spawn(memory(s.clone())),
    ];
    for l in loops {
        if let Err(e) = l.await {
            s.note(format!("a traffic loop panicked: {e}"));
        }
    }
    let fds_end = open_fds();
    s.group.terminate(Duration::from_secs(2)).await;
    // The socket= sessions' pid is their listener's: it goes now.
    drop(listener);
    let pids: Vec<u32> = s.pids.lock().unwrap().iter().copied().collect();
    let mut leaked: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|p| !wait_gone(*p, Duration::from_secs(5)))
        .collect();
    drop(sshd);
    if use_testbed {
        // Nothing of the soak on any host, nor a wrapper here.
        let deadline = Instant::now() + Duration::from_secs(10);
        for h in ["rx1", "rx2", "rx3", "rx5", "rx6", "rx7"] {
            loop {
                let left: Vec<u32> = testbed::processes(h)
                    .into_iter()
                    .filter(|p| p.cmdline.contains("remex-test-worker"))
                    .map(|p| p.pid)
                    .collect();
                if left.is_empty() || Instant::now() >= deadline {
                    leaked.extend(left);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let wrappers = testbed::controller_processes(&["salloc", "srun"]);
        if !wrappers.is_empty() {
            tokio::time::sleep(Duration::from_secs(5)).await;
            leaked.extend(
                testbed::controller_processes(&["salloc", "srun"])
                    .iter()
                    .map(|p| p.pid),
            );
        }
    }

    let c = &s.c;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let submitted = get(&c.tasks_submitted);
    let received = s.results.lock().unwrap().len() as u64;
    let failed = get(&c.tasks_failed);
    let missing = submitted.saturating_sub(received + failed);
    let max_rss = get(&c.max_rss);
    println!("soak: ran {:?}", t0.elapsed());
    println!(
        "tasks:       {submitted} submitted, {received} results exactly once, {} duplicates, {failed} failed with an error, {missing} missing",
        get(&c.duplicates)
    );
    println!("ping-pongs:  {}", get(&c.pingpongs));
    println!(
        "bulk:        {} streams of 4 MiB intact, {} MiB verified",
        get(&c.bulk_streams),
        get(&c.bulk_bytes) >> 20
    );
    println!("passed channels: {}", get(&c.passes));
    println!(
        "faults:      {} workers killed, {} hosts cut off and healed, {} re-added ({} failed to start), {} streams ended with a stated error, {} ended silently",
        get(&c.kills),
        get(&c.partitions),
        get(&c.readds),
        get(&c.readd_failures),
        get(&c.interrupted),
        get(&c.silent_losses)
    );
    println!("wrong items: {}, hangs: {}", get(&c.wrong), get(&c.hangs));
    println!(
        "memory:      controller max RSS {} MiB (bound {} MiB)",
        max_rss >> 20,
        RSS_BOUND >> 20
    );
    println!(
        "files:       {fds_start} open after the start, {fds_end} at the end, {} at most",
        get(&c.max_fds)
    );
    println!(
        "processes:   {} workers started, {} left",
        pids.len(),
        leaked.len()
    );
    let ok = get(&c.duplicates) == 0
        && failed == 0
        && missing == 0
        && get(&c.wrong) == 0
        && get(&c.hangs) == 0
        && get(&c.silent_losses) == 0
        && max_rss < RSS_BOUND
        && fds_end <= fds_start + FDS_SLACK
        && get(&c.readd_failures) == 0
        && leaked.is_empty()
        && received > 0
        && get(&c.kills) > 0;
    if ok {
        println!("soak: OK");
        ExitCode::SUCCESS
    } else {
        let described: Vec<String> = leaked
            .iter()
            .map(|p| {
                let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                format!("{p} {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
            })
            .collect();
        println!(
            "soak: FAILED ({} notes above; left: {described:?})",
            s.errors.lock().unwrap().len()
        );
        ExitCode::FAILURE
    }
}
