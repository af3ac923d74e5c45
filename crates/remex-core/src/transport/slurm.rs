//! `slurm//ntasks=N`: N workers on Slurm from one allocation.
//!
//! Inside an allocation (`SLURM_JOB_ID` set) the workers run as a step of
//! it; outside, remex asks for an allocation with `salloc` and owns it:
//! salloc runs a command that lives as long as its standard input, a pipe
//! from this process, so the allocation ends when the gateways end (remex
//! cancels it), and also when this process dies without a word (the pipe
//! closes, salloc relinquishes the allocation and Slurm ends its steps).
//! While the allocation is pending, Slurm's reason (`squeue %r`) is logged
//! as it changes and quoted if `alloc_timeout` passes.
//!
//! The workers either dial back (the default: one `srun -n N` step whose
//! tasks connect to a listener in this process over the secure session of
//! [`super::dial`]) or, with `stdio`, each run under an srun of its own
//! with the protocol on srun's stdio (`-u`, one task, `--exact`), as
//! `cmd=srun ...` would. remex sets the srun flags it needs; `srun_args`
//! adds the user's. See `docs/clusters.md`.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::watch;

use super::dial::{Dialin, DIAL_ENV, DIAL_SECRET_ENV};
use super::popen::{resolve_worker, WORKER_ENV};
use super::socket::Connected;
use crate::error::{Error, Result};
use crate::spec::{SlurmOptions, Spec};

/// How long a `slurm` spec waits for its allocation unless
/// `alloc_timeout=SECS` says otherwise.
///
/// ```
/// assert_eq!(remex::core::transport::slurm::ALLOC_TIMEOUT.as_secs(), 300);
/// ```
pub const ALLOC_TIMEOUT: Duration = Duration::from_secs(300);

/// How often a pending allocation's reason is asked of Slurm (squeue has
/// no event to wait on).
const PENDING_POLL: Duration = Duration::from_secs(1);

/// The salloc command's output once the allocation is granted.
const GRANTED: &str = "remex-allocation ";

/// Lines of salloc's and srun's stderr kept for errors.
const KEPT: usize = 8;

/// A Slurm allocation the gateways of one `slurm` spec run in. Dropping
/// the last handle (every gateway gone) releases it, as [`release`]
/// does.
///
/// [`release`]: Allocation::release
pub(crate) struct Allocation {
    /// The job id.
    pub(crate) job: String,
    /// salloc, when this process owns the allocation: its standard input
    /// (closing it ends salloc's command and with it the allocation), its
    /// pid (and process group) and its exit.
    salloc: Mutex<Option<Salloc>>,
    /// The dial-back step's srun: its pid (and process group) and its
    /// exit.
    step: Mutex<Option<Step>>,
    /// The dial-back step's id, once a worker named it.
    step_id: Mutex<Option<String>>,
    released: AtomicBool,
    /// Set once the end began: srun's words about the step's end are
    /// expected then, and logged at debug level only.
    ending: Arc<AtomicBool>,
    /// True once [`release`](Allocation::release) has ended what it ends
    /// (srun and salloc reaped, or killed).
    ended: watch::Sender<bool>,
    /// The dial-back step's last stderr lines of each task, by rank
    /// (srun `--label`s them).
    tails: Mutex<Vec<Tail>>,
}

/// The last lines of one task's stderr.
pub(crate) type Tail = super::parts::Tail;

/// A `--label`ed line of srun: its task's rank and the line.
fn labelled(line: &str) -> Option<(usize, &str)> {
    let (rank, rest) = line.trim_start().split_once(": ")?;
    Some((rank.parse().ok()?, rest))
}

/// A process's exit as it is reaped: `None` while it runs, then its
/// status (`None` inside if waiting failed).
type Exit = watch::Receiver<Option<Option<std::process::ExitStatus>>>;

/// Reaps `child` in a task of its own; the watch tells when it exited.
fn reaped(mut child: tokio::process::Child) -> Exit {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let status = child.wait().await.ok();
        let _ = tx.send(Some(status));
    });
    rx
}

/// The srun of a dial-back step.
struct Step {
    pid: u32,
    exit: Exit,
}

/// The salloc that holds an allocation this process owns.
struct Salloc {
    stdin: Option<ChildStdin>,
    pid: u32,
    exit: Exit,
}

/// How long salloc has to relinquish the allocation by itself once its
/// command ended (its input closed), before remex makes sure: SIGHUP, then
/// after [`WRAPPER_GRACE`] scancel of the job and SIGKILL.
///
/// salloc 22.05 can be caught in a busy loop that ignores SIGTERM: if the
/// job's end reaches its message thread while the command has just exited,
/// that thread reaps the command (`waitpid(WNOHANG)`), and the main
/// thread's `waitpid` then fails with ECHILD forever; only SIGHUP (which
/// it takes as "exit now") or SIGKILL end it. So remex never cancels an
/// allocation it owns while closing salloc's input (that raced), and ends
/// a salloc that outlives the grace.
///
/// [`WRAPPER_GRACE`]: super::WRAPPER_GRACE
///
/// ```
/// assert_eq!(remex::core::transport::slurm::SALLOC_GRACE.as_secs(), 5);
/// ```
pub const SALLOC_GRACE: Duration = Duration::from_secs(5);

/// Whether the process behind `exit` still runs (not reaped yet).
fn running(exit: &Exit) -> bool {
    exit.borrow().is_none()
}

/// Sends `signal` to process group `pid` if its leader was not reaped
/// (a reaped pid may be reused).
fn signal_group(pid: u32, exit: &Exit, signal: rustix::process::Signal) {
    if running(exit) {
        if let Some(group) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process_group(group, signal);
        }
    }
}

/// Waits up to `within` for the process behind `exit` to be reaped;
/// returns whether it was. Polls: a plain thread cannot await the watch.
fn ended_within(exit: &Exit, within: Duration) -> bool {
    let t0 = std::time::Instant::now();
    while running(exit) {
        if t0.elapsed() >= within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// How long the step's srun has to end by itself once its workers are
/// gone, before it gets SIGTERM and the step or allocation is cancelled
/// (srun reports a cancelled step on stderr; a step that ends by itself
/// needs no words).
pub const STEP_GRACE: Duration = Duration::from_secs(2);

impl std::fmt::Debug for Allocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<slurm job {}>", self.job)
    }
}

/// Runs `scancel ARGS` without waiting for it; a thread reaps it.
fn scancel(target: &str) {
    let mut cmd = std::process::Command::new("scancel");
    super::secret::scrub(&mut cmd);
    let spawned = cmd
        .arg("--quiet")
        .arg(target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn();
    match spawned {
        Ok(mut child) => {
            let _ = std::thread::Builder::new()
                .name("remex-scancel".into())
                .spawn(move || child.wait());
        }
        Err(e) => tracing::warn!("cannot run scancel {target}: {e}; the job may be left"),
    }
}

impl Allocation {
    /// The last stderr lines of the dial-back step's task `rank`.
    pub(crate) fn tail(&self, rank: usize) -> Option<Tail> {
        self.tails.lock().get(rank).cloned()
    }

    /// Ends what this start made, in a thread of its own (it must work
    /// from a `Drop`, without a runtime), without waiting for it:
    ///
    /// - the dial-back step's srun gets [`STEP_GRACE`] to end by itself
    ///   (its workers are ending), then SIGTERM (srun cancels its step),
    ///   then after [`WRAPPER_GRACE`] scancel of the step (if this process
    ///   does not own the allocation) and SIGKILL;
    /// - an allocation this process owns ends as salloc relinquishes it
    ///   when its input closes; a salloc still there after
    ///   [`SALLOC_GRACE`] gets SIGHUP, then scancel of the job and SIGKILL.
    ///
    /// Idempotent.
    ///
    /// [`WRAPPER_GRACE`]: super::WRAPPER_GRACE
    pub(crate) fn release(&self) {
        if self.released.swap(true, Ordering::SeqCst) {
            return;
        }
        self.ending.store(true, Ordering::SeqCst);
        let salloc = self.salloc.lock().take();
        let step = self.step.lock().take();
        let step_id = self.step_id.lock().clone();
        let job = self.job.clone();
        let ended = self.ended.clone();
        let end = move || {
            use rustix::process::Signal;
            if let Some(s) = &step {
                if !ended_within(&s.exit, STEP_GRACE) {
                    signal_group(s.pid, &s.exit, Signal::TERM);
                    if !ended_within(&s.exit, super::WRAPPER_GRACE) {
                        if salloc.is_none() {
                            if let Some(id) = &step_id {
                                scancel(&format!("{job}.{id}"));
                            }
                        }
                        tracing::warn!("srun of slurm job {job} ignored SIGTERM: killed");
                        signal_group(s.pid, &s.exit, Signal::KILL);
                    }
                }
            }
            if let Some(mut sa) = salloc {
                tracing::debug!("ending the slurm allocation {job}");
                // salloc's command (`cat`) ends with its input, and salloc
                // then relinquishes the allocation.
                drop(sa.stdin.take());
                if !ended_within(&sa.exit, SALLOC_GRACE) {
                    tracing::warn!("salloc of slurm job {job} did not end within {SALLOC_GRACE:?}: SIGHUP, then scancel and SIGKILL");
                    signal_group(sa.pid, &sa.exit, Signal::HUP);
                    if !ended_within(&sa.exit, super::WRAPPER_GRACE) {
                        scancel(&job);
                        signal_group(sa.pid, &sa.exit, Signal::KILL);
                    }
                }
            }
            ended.send_replace(true);
        };
        if std::thread::Builder::new()
            .name("remex-slurm-end".into())
            .spawn(end)
            .is_err()
        {
            // No thread: end it all now, the hard way.
            scancel(&self.job);
        }
    }
}

impl Allocation {
    /// Resolves once [`release`](Allocation::release) has ended the
    /// allocation's processes (never before it was called: callers bound
    /// the wait).
    pub(crate) async fn ended(&self) {
        let mut rx = self.ended.subscribe();
        let _ = rx.wait_for(|e| *e).await;
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        self.release();
    }
}

/// Tells the user something they are waiting on (a pending allocation's
/// reason, options not used): a `tracing` event of target `remex::slurm`
/// at INFO, or a line on stderr when nobody listens to `tracing` (the
/// user would otherwise wait without a word).
fn notice(spec: &Spec, message: String) {
    if tracing::enabled!(target: "remex::slurm", tracing::Level::INFO) {
        tracing::info!(target: "remex::slurm", spec = %spec.raw, "{message}");
    } else {
        eprintln!("remex: {message}");
    }
}

fn start_err(spec: &Spec, detail: String) -> Error {
    Error::Start {
        spec: spec.raw.clone(),
        detail,
    }
}

fn said(lines: &Mutex<VecDeque<String>>) -> String {
    let l = lines.lock();
    if l.is_empty() {
        String::new()
    } else {
        format!(
            "; it said: {:?}",
            l.iter().cloned().collect::<Vec<_>>().join("\n")
        )
    }
}

/// The allocation to run in: the one this process is in, or a new one.
pub(crate) async fn allocate(spec: &Spec, o: &SlurmOptions) -> Result<Arc<Allocation>> {
    if let Some(job) = std::env::var("SLURM_JOB_ID").ok().filter(|j| !j.is_empty()) {
        let ignored: Vec<&str> = [
            ("partition", o.partition.is_some()),
            ("time", o.time.is_some()),
            ("account", o.account.is_some()),
            ("salloc_args", !o.salloc_args.is_empty()),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| *k)
        .collect();
        if !ignored.is_empty() {
            notice(
                spec,
                format!(
                    "inside the allocation {job} (SLURM_JOB_ID): {} apply to a new allocation and are not used",
                    ignored.join(", ")
                ),
            );
        }
        return Ok(Arc::new(Allocation {
            job,
            salloc: Mutex::new(None),
            step: Mutex::new(None),
            step_id: Mutex::new(None),
            released: AtomicBool::new(false),
            ending: Arc::default(),
            ended: watch::channel(false).0,
            tails: Mutex::new(Vec::new()),
        }));
    }
    salloc(spec, o).await
}

async fn salloc(spec: &Spec, o: &SlurmOptions) -> Result<Arc<Allocation>> {
    let mut cmd = Command::new("salloc");
    super::secret::scrub(cmd.as_std_mut());
    cmd.arg(format!(
        "--job-name={}",
        o.job_name.as_deref().unwrap_or("remex")
    ))
    .arg(format!("--ntasks={}", o.ntasks));
    for (flag, v) in [
        ("--nodes", &o.nodes),
        ("--partition", &o.partition),
        ("--time", &o.time),
        ("--account", &o.account),
    ] {
        if let Some(v) = v {
            cmd.arg(format!("{flag}={v}"));
        }
    }
    if let Some(c) = o.cpus_per_task {
        cmd.arg(format!("--cpus-per-task={c}"));
    }
    cmd.args(&o.salloc_args)
        .arg("--")
        .arg("sh")
        .arg("-c")
        // Lives as long as its input: the pipe from this process.
        .arg(format!(
            "echo \"{GRANTED}$SLURM_JOB_ID\"; exec cat >/dev/null"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let mut child = cmd.spawn().map_err(|e| {
        start_err(
            spec,
            format!("cannot run salloc: {e} (is this a Slurm submit host? the Slurm client tools must be on PATH)"),
        )
    })?;
    let stdin = child.stdin.take();
    let salloc_pid = child.id().unwrap_or(0);
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let kept = Arc::new(Mutex::new(VecDeque::new()));
    let (job_tx, mut job_rx) = watch::channel(None::<String>);
    let stderr_read = tokio::spawn(super::read_stderr_lines(
        stderr,
        kept.clone(),
        KEPT,
        move |line| {
            // "salloc: Pending job allocation 42", "... Granted job allocation 42"
            if let Some(id) = line
                .split_once("job allocation ")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .filter(|id| id.chars().all(|c| c.is_ascii_digit()))
            {
                job_tx.send_replace(Some(id.to_string()));
            }
            tracing::debug!("{line}");
        },
    ));
    // salloc is reaped by a task of its own; its exit before the grant is
    // a refusal (its stderr says why).
    let mut exit_rx = reaped(child);
    let mut out = BufReader::new(stdout).lines();
    let within = o.alloc_timeout.unwrap_or(ALLOC_TIMEOUT);
    let deadline = tokio::time::sleep(within);
    tokio::pin!(deadline);
    let mut poll = tokio::time::interval(PENDING_POLL);
    let mut reason = String::new();
    let fail = |job: Option<String>, detail: String| {
        if let Some(j) = job {
            scancel(&j);
        }
        start_err(spec, detail)
    };
    loop {
        tokio::select! {
            line = out.next_line() => {
                match line {
                    Ok(Some(l)) if l.starts_with(GRANTED) => {
                        let job = l[GRANTED.len()..].trim().to_string();
                        tracing::debug!(spec = %spec.raw, "slurm allocation {job} granted");
                        return Ok(Arc::new(Allocation {
                            job,
                            salloc: Mutex::new(Some(Salloc { stdin, pid: salloc_pid, exit: exit_rx.clone() })),
                            step: Mutex::new(None),
                            step_id: Mutex::new(None),
                            released: AtomicBool::new(false),
                            ending: Arc::default(),
                            ended: watch::channel(false).0,
                            tails: Mutex::new(Vec::new()),
                        }));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        // salloc ended without a grant: wait (bounded) for
                        // its last words.
                        let _ = tokio::time::timeout(Duration::from_secs(2), exit_rx.wait_for(|s| s.is_some())).await;
                        // And for them to be read: the stderr reader is a
                        // task of its own, which may lag the exit (under
                        // load the refusal came without its reason).
                        let _ = tokio::time::timeout(Duration::from_secs(2), stderr_read).await;
                        let status = (*exit_rx.borrow()).flatten();
                        let job = job_rx.borrow().clone();
                        return Err(fail(job, format!(
                            "salloc gave no allocation{}{}",
                            status.map(|s| format!(" (it exited: {s})")).unwrap_or_default(),
                            said(&kept)
                        )));
                    }
                }
            }
            _ = poll.tick() => {
                let Some(job) = job_rx.borrow_and_update().clone() else { continue };
                let now = pending_reason(&job).await;
                if let Some(now) = now.filter(|n| *n != reason) {
                    notice(spec, format!("slurm job {job} is waiting for its allocation: {now}"));
                    reason = now;
                }
            }
            _ = &mut deadline => {
                let job = job_rx.borrow().clone();
                let what = match (&job, reason.is_empty()) {
                    (Some(j), false) => format!("job {j} is still pending ({reason})"),
                    (Some(j), true) => format!("job {j} is still pending"),
                    (None, _) => "salloc named no job".into(),
                };
                return Err(fail(job, format!(
                    "no Slurm allocation within {within:?} (alloc_timeout=SECS sets the bound): {what}{}",
                    said(&kept)
                )));
            }
        }
    }
}

/// `STATE (REASON)` of a pending job, from squeue.
async fn pending_reason(job: &str) -> Option<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        Command::new("squeue")
            .args(["-h", "-j", job, "-o", "%T (%r)"])
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The srun flags every worker step gets, then the user's.
fn srun(alloc: &Allocation, o: &SlurmOptions, ntasks: u32) -> Command {
    let mut cmd = Command::new("srun");
    super::secret::scrub(cmd.as_std_mut());
    cmd.arg(format!("--jobid={}", alloc.job))
        .arg(format!("--ntasks={ntasks}"))
        // Only the resources it asks for: other steps may share the
        // allocation.
        .arg("--exact");
    if let Some(c) = o.cpus_per_task {
        cmd.arg(format!("--cpus-per-task={c}"));
    }
    cmd.args(&o.srun_args);
    cmd.env(WORKER_ENV, "1");
    cmd
}

/// The command that starts one `stdio` worker: its own srun, the protocol
/// on srun's stdio.
pub(crate) fn stdio_command(spec: &Spec, o: &SlurmOptions, alloc: &Allocation) -> Result<Command> {
    let worker = resolve_worker(spec)?;
    let mut cmd = srun(alloc, o, 1);
    // -u: srun passes bytes on as they come (the handshake has no newline).
    cmd.arg("--unbuffered").arg("--nodes=1").arg(worker);
    Ok(cmd)
}

/// Runs `scontrol ARGS` (bounded) and returns its output, or why not.
async fn scontrol(args: &[&str]) -> std::result::Result<String, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        Command::new("scontrol")
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| format!("scontrol {} did not answer within 10 s", args.join(" ")))?
    .map_err(|e| format!("cannot run scontrol: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scontrol {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The value of `KEY=value` among the whitespace-separated fields of
/// `text` (scontrol's one-line form).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split_whitespace()
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
        .filter(|v| !v.is_empty() && *v != "(null)")
}

/// The local address this host uses to reach `host:port`: the route's
/// source address (a UDP socket's connect sends nothing).
async fn local_address_towards(host: &str, port: u16) -> std::result::Result<IpAddr, String> {
    let target = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let any: SocketAddr = if target.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = std::net::UdpSocket::bind(any).map_err(|e| format!("a probe socket: {e}"))?;
    sock.connect(target)
        .map_err(|e| format!("no route to {host} ({}): {e}", target.ip()))?;
    sock.local_addr()
        .map(|a| a.ip())
        .map_err(|e| format!("the route to {host}: {e}"))
}

/// The address the workers of `alloc` dial back to when `listen=` does not
/// say: this host's address on the route towards the allocation's first
/// node (its `NodeAddr`), else towards slurmctld. It is one the nodes can
/// reach (a loopback address only when the nodes are this host), unlike
/// this host's name, which /etc/hosts often maps to loopback. Returns the
/// address and how it was chosen.
async fn dial_address(alloc: &Allocation) -> std::result::Result<(IpAddr, String), String> {
    let nodes = match std::env::var("SLURM_JOB_ID") {
        Ok(j) if j == alloc.job => std::env::var("SLURM_JOB_NODELIST").ok(),
        _ => None,
    };
    let nodes = match nodes {
        Some(n) => Some(n),
        None => scontrol(&["-o", "show", "job", &alloc.job])
            .await
            .ok()
            .and_then(|t| field(&t, "NodeList").map(str::to_string)),
    };
    let mut why = Vec::new();
    if let Some(nodes) = nodes {
        match scontrol(&["-o", "show", "node", &nodes]).await {
            Ok(text) => {
                let first = text.lines().next().unwrap_or_default();
                let name = field(first, "NodeName").unwrap_or("?");
                if let Some(addr) = field(first, "NodeAddr") {
                    match local_address_towards(addr, 6818).await {
                        Ok(ip) => return Ok((ip, format!("the route to node {name} ({addr})"))),
                        Err(e) => why.push(e),
                    }
                }
            }
            Err(e) => why.push(e),
        }
    }
    let config = scontrol(&["show", "config"]).await?;
    let ctl = config
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim()
                .starts_with("SlurmctldHost")
                .then(|| v.trim().to_string())
        })
        .ok_or_else(|| {
            format!(
                "scontrol show config names no SlurmctldHost; {}",
                why.join("; ")
            )
        })?;
    // `name(addr)` or `name`.
    let host = ctl
        .split_once('(')
        .and_then(|(_, a)| a.strip_suffix(')'))
        .unwrap_or(&ctl)
        .to_string();
    let ip = local_address_towards(&host, 6817).await?;
    Ok((ip, format!("the route to slurmctld {ctl}")))
}

/// Starts the `ids.len()` workers of a `slurm` spec in one allocation
/// (this process's, else a new one) and runs their handshakes: the
/// allocation, and each worker's parts by rank. All start or none: a
/// failure ends what was started (the allocation is released when its
/// last holder goes).
pub(crate) async fn start(
    spec: &Spec,
    o: &SlurmOptions,
    ids: &[String],
) -> Result<(Arc<Allocation>, Vec<super::parts::Parts>)> {
    let alloc = allocate(spec, o).await?;
    if !o.stdio {
        let conns = dial_step(spec, o, &alloc, ids).await?;
        let parts = conns
            .into_iter()
            .enumerate()
            .map(|(rank, c)| {
                let mut p = super::parts::Parts::from(c);
                // Its lines of the step's stderr (srun labels them).
                p.stderr = alloc.tail(rank);
                p
            })
            .collect();
        return Ok((alloc, parts));
    }
    let started = futures::future::join_all(ids.iter().map(|id| {
        let alloc = &alloc;
        async move {
            let cmd = stdio_command(spec, o, alloc)?;
            super::start_process(id, spec, cmd, None).await
        }
    }))
    .await;
    if let Some(e) = started.iter().find_map(|r| r.as_ref().err()) {
        let e = e.clone();
        futures::future::join_all(
            started
                .iter()
                .flatten()
                .map(|s| super::end_process(s.pid, true)),
        )
        .await;
        return Err(e);
    }
    let parts = started.into_iter().flatten().map(Into::into).collect();
    Ok((alloc, parts))
}

/// Starts one step of `ids.len()` workers that dial back, and returns
/// their sessions by rank.
pub(crate) async fn dial_step(
    spec: &Spec,
    o: &SlurmOptions,
    alloc: &Arc<Allocation>,
    ids: &[String],
) -> Result<Vec<Connected>> {
    let worker = resolve_worker(spec)?;
    let chosen = match &o.listen {
        Some(l) => l.clone(),
        None => match dial_address(alloc).await {
            Ok((ip, how)) => {
                tracing::info!(spec = %spec.raw, "the workers dial back to {ip} ({how}; listen=HOST[:PORT] sets another)");
                ip.to_string()
            }
            Err(e) => {
                return Err(start_err(
                    spec,
                    format!("cannot tell which address of this host the nodes reach ({e}): set it with listen=HOST[:PORT]"),
                ))
            }
        },
    };
    let dialin = Dialin::bind(spec, &chosen).await?;
    // Where MUNGE runs (every auth/munge cluster), sessions must carry the
    // job user's credential over their own handshake: the secret alone,
    // which every node sees, is not enough.
    let bound = super::munge::available().await;
    if !bound {
        tracing::info!(spec = %spec.raw, "no MUNGE here: dial-back sessions are bound by the one-time secret alone (docs/security.md)");
    }
    tracing::info!(spec = %spec.raw, "dial-back listener on {}", dialin.addr);
    let mut cmd = srun(alloc, o, ids.len() as u32);
    if let Some(n) = &o.nodes {
        cmd.arg(format!("--nodes={n}"));
    }
    cmd.arg("--label")
        .arg(worker)
        .env(DIAL_ENV, &dialin.addr)
        .env(DIAL_SECRET_ENV, dialin.secret.as_str())
        .env(
            super::dial::DIAL_WITHIN_ENV,
            spec.start_timeout
                .unwrap_or(super::HANDSHAKE_TIMEOUT)
                .as_secs_f64()
                .to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let mut child = cmd
        .spawn()
        .map_err(|e| start_err(spec, format!("cannot run srun: {e}")))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let kept = Arc::new(Mutex::new(VecDeque::new()));
    let tag = format!("slurm job {}", alloc.job);
    let ending = alloc.ending.clone();
    let tails: Vec<Tail> = (0..ids.len()).map(|_| Tail::default()).collect();
    *alloc.tails.lock() = tails.clone();
    tokio::spawn(super::read_stderr_lines(
        stderr,
        kept.clone(),
        KEPT,
        move |line| {
            if let Some((rank, text)) = labelled(line) {
                if let Some(t) = tails.get(rank) {
                    let mut t = t.lock();
                    if t.len() == super::STDERR_KEPT {
                        t.pop_front();
                    }
                    t.push_back(text.to_string());
                }
            }
            if ending.load(Ordering::Relaxed) {
                tracing::debug!(target: "remex::worker", gateway = %tag, "{line}");
            } else {
                super::forward_line(&tag, line)
            }
        },
    ));
    let pid = child.id().unwrap_or(0);
    let mut exit_rx = reaped(child);
    *alloc.step.lock() = Some(Step {
        pid,
        exit: exit_rx.clone(),
    });
    let failed = async move {
        let _ = exit_rx.wait_for(|s| s.is_some()).await;
        // Its last words arrive with its exit.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let status = (*exit_rx.borrow()).flatten();
        format!(
            "srun exited{} before every worker dialed back{}",
            status.map(|s| format!(" ({s})")).unwrap_or_default(),
            said(&kept)
        )
    };
    let within = spec.start_timeout.unwrap_or(super::HANDSHAKE_TIMEOUT);
    let conns = dialin
        .accept(spec, ids, Some(&alloc.job), bound, within, failed)
        .await?;
    if let Some(c) = conns.first().and_then(|c| c.info.cluster.as_ref()) {
        *alloc.step_id.lock() = Some(c.step_id.clone());
    }
    Ok(conns)
}
