//! Serving one controller over the process's stdin and stdout.
//!
//! The protocol streams are moved off fds 0 and 1 first: fd 1 then points at
//! stderr and fd 0 at `/dev/null`, so whatever a task prints or reads can
//! never corrupt the protocol; stderr reaches the controller, tagged with
//! the gateway id.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use remex_core::conn::{ConnConfig, Connection, Handlers};
use remex_core::wire::{self, HandshakeScanner, Hello, Role, WorkerInfo, WorkerSetup};
use remex_core::wire::{ExecRequest, ScriptLimits};
use remex_core::Channel;
use tokio::sync::Notify;

use crate::Worker;

/// How long a terminating worker tries to flush what it still has to send.
const FLUSH_ON_EXIT: Duration = Duration::from_millis(500);

/// Names the call that failed in an OS error.
fn os(what: &'static str) -> impl Fn(rustix::io::Errno) -> std::io::Error {
    move |e| {
        let e = std::io::Error::from(e);
        std::io::Error::new(e.kind(), format!("{what}: {e}"))
    }
}

/// Moves the protocol off fds 0/1 and returns (protocol in, protocol out).
fn isolate_stdio() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::BorrowedFd;
    // SAFETY: fds 0, 1 and 2 are open for the life of the process (the
    // controller gave them); they are only borrowed here.
    let (stdin, stdout, stderr) = unsafe {
        (
            BorrowedFd::borrow_raw(0),
            BorrowedFd::borrow_raw(1),
            BorrowedFd::borrow_raw(2),
        )
    };
    let pin = rustix::io::fcntl_dupfd_cloexec(stdin, 3).map_err(os("dup stdin"))?;
    let pout = rustix::io::fcntl_dupfd_cloexec(stdout, 3).map_err(os("dup stdout"))?;
    let null = rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(os("open /dev/null"))?;
    rustix::stdio::dup2_stdin(&null).map_err(os("dup2 /dev/null to stdin"))?;
    rustix::stdio::dup2_stdout(stderr).map_err(os("dup2 stderr to stdout"))?;
    Ok((pin, pout))
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd).map_err(os("fcntl F_GETFL"))?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK).map_err(os("fcntl F_SETFL"))
}

pub(crate) fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

pub(crate) fn apply_setup(setup: &WorkerSetup) -> Result<(), String> {
    if let Some(dir) = &setup.chdir {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create chdir={dir}: {e}"))?;
        std::env::set_current_dir(dir).map_err(|e| format!("cannot chdir to {dir}: {e}"))?;
    }
    for (k, v) in &setup.env {
        // The process runs this thread alone (`crate::place::alone`).
        std::env::set_var(k, v);
    }
    if let Some(n) = setup.nice {
        apply_nice(n)?;
    }
    Ok(())
}

/// Adds `n` to the process's niceness.
pub(crate) fn apply_nice(n: i32) -> Result<(), String> {
    // nice(2) adds to the priority: the same through get/setpriority,
    // which every Unix has.
    use rustix::process::{getpriority_process, setpriority_process};
    getpriority_process(None)
        .and_then(|now| setpriority_process(None, now.saturating_add(n)))
        .map_err(|e| format!("cannot apply nice={n}: {}", std::io::Error::from(e)))
}

/// This worker's hello, describing the process as it is now (after the
/// controller's setup was applied), or as the session's place says.
pub(crate) fn worker_hello(credential: Option<String>) -> BytesMut {
    let mut cluster = wire::ClusterInfo::from_env();
    if let Some(c) = cluster.as_mut() {
        c.credential = credential;
    }
    let info = WorkerInfo {
        pid: std::process::id(),
        host: rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
        cwd: crate::place::cwd()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        executable: std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        platform: platform(),
        version: remex_core::VERSION.to_string(),
        cluster,
    };
    let mut out = BytesMut::new();
    wire::encode_hello(
        &Hello {
            role: Role::Worker,
            worker: Some(info),
            setup: None,
        },
        &mut out,
    );
    out
}

/// What a controller's hello asks of its session, beyond the setup
/// applied at once: limits for its scripts, and its liveness bound.
#[derive(Debug, Clone, Default)]
pub(crate) struct Terms {
    /// The controller's limits for scripts (the worker's fill in).
    pub(crate) limits: ScriptLimits,
    /// Silence from the controller for this long ends the session.
    pub(crate) liveness: Option<Duration>,
    /// The session's environment and directory, when they are not the
    /// process's (listeners' and dial-back workers' sessions).
    pub(crate) place: Option<Arc<crate::place::Place>>,
    /// The most detailed level of this process's `tracing` events the
    /// controller wants as records.
    pub(crate) log_level: Option<u8>,
    /// The session is the process's only one: its events go to the
    /// controller as records (`crate::wirelog`).
    pub(crate) records: bool,
}

impl Terms {
    /// A worker that serves one controller, whose setup went to the
    /// process.
    pub(crate) fn of(setup: &WorkerSetup) -> Terms {
        Terms {
            limits: setup.script_limits,
            liveness: setup.liveness,
            place: None,
            log_level: setup.log_level,
            records: true,
        }
    }

    /// A session that keeps its setup to itself (see `crate::place`).
    pub(crate) fn of_session(setup: &WorkerSetup) -> Result<Terms, String> {
        Ok(Terms {
            limits: setup.script_limits,
            liveness: setup.liveness,
            place: Some(Arc::new(crate::place::of(setup)?)),
            log_level: setup.log_level,
            records: false,
        })
    }
}

/// Reads the controller's hello with blocking I/O, applies its setup and
/// answers. Returns bytes read past the hello, and the session's terms.
fn handshake(input: &mut File, output: &mut File) -> Result<(BytesMut, Terms), String> {
    let mut buf = BytesMut::with_capacity(4096);
    let mut scan = HandshakeScanner::new(4096);
    let mut chunk = [0u8; 4096];
    let send_hello = |output: &mut File| {
        output
            .write_all(&worker_hello(None))
            .map_err(|e| format!("cannot write the handshake: {e}"))
    };
    let hello = loop {
        match scan.scan(&mut buf) {
            Ok(Some(h)) => break h,
            Ok(None) => {}
            Err(e) => {
                // Answer anyway, so that the controller names both versions.
                let _ = send_hello(output);
                return Err(format!("handshake failed: {e}"));
            }
        }
        let n = input
            .read(&mut chunk)
            .map_err(|e| format!("reading the handshake: {e}"))?;
        if n == 0 {
            return Err(format!(
                "controller went away before the handshake: {}",
                scan.eof_error(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if hello.role != Role::Controller {
        return Err("the peer is not a remex controller".into());
    }
    let setup = hello.setup.unwrap_or_default();
    // The process takes the setup only while nothing else runs in it;
    // else the session keeps it (`crate::place`).
    let terms = if crate::place::alone() {
        apply_setup(&setup)?;
        Terms::of(&setup)
    } else {
        Terms {
            records: true,
            ..Terms::of_session(&setup)?
        }
    };
    send_hello(output)?;
    Ok((buf, terms))
}

pub(crate) fn run(worker: Worker) -> ! {
    // The script engine is built from the start, beside the handshake
    // (Scripts::prewarm), unless the machine is crowded. The thread is
    // quiet until the handshake is over: the worker still runs alone
    // (crate::place) and takes its setup.
    let prewarm = if crowded() {
        None
    } else {
        let (limits, receive) = std::sync::mpsc::sync_channel(1);
        let (w, quiet) = (worker.clone(), crate::place::Quiet::new());
        std::thread::Builder::new()
            .name("remex-prewarm".into())
            .spawn(move || w.prewarm_scripts(receive, quiet))
            .ok()
            .map(|_| limits)
    };
    let (pin, pout) = match isolate_stdio() {
        Ok(x) => x,
        Err(e) => crate::exit::fail(e),
    };
    let mut input = File::from(pin);
    let mut output = File::from(pout);
    // A second hold on the protocol's output, kept until the process
    // exits. The session holds its output through its commands' kill
    // sequences (`Connection::hold_output`); this one also covers what
    // the worker does after the session (`exit::now`: SIGTERM to the rest
    // of its group and up to 400 ms for it), so that the stream ends when
    // the process does, as over ssh. A relay or any other carrier with no
    // process of ours on the controller's side has only the stream's end
    // to tell that the worker is over.
    let _until_exit = output.try_clone();
    let (leftover, terms) = match handshake(&mut input, &mut output) {
        Ok(b) => b,
        Err(e) => crate::exit::fail(e),
    };
    crate::init_tracing();
    if let Some(limits) = prewarm {
        worker.prewarm_announce(terms.limits);
        let _ = limits.send(terms.limits);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4096)
        .thread_name("remex-worker")
        .enable_all()
        .build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => crate::exit::fail(format!("cannot start the runtime: {e}")),
    };
    let _engines = worker.scripts.engines_until_exit();
    crate::exit::after_session(rt.block_on(serve(worker, terms, input, output, leftover)))
}

/// Serves until the controller terminates us (returns `None`) or goes
/// away (returns why).
async fn serve(
    worker: Worker,
    terms: Terms,
    input: File,
    output: File,
    leftover: BytesMut,
) -> Option<remex_core::Error> {
    let setup = || -> std::io::Result<_> {
        let (i, o): (OwnedFd, OwnedFd) = (input.into(), output.into());
        // The input is made non-blocking by the direct reader.
        set_nonblocking(&o)?;
        let w = tokio::net::unix::pipe::Sender::from_owned_fd_unchecked(o)?;
        Ok((i, w))
    };
    let (input, writer) = match setup() {
        Ok(x) => x,
        Err(e) => {
            return Some(remex_core::Error::Os {
                what: "setting up the protocol streams".into(),
                detail: e.to_string(),
            });
        }
    };
    // Tasks and scripts wait in blocking calls: they read the input
    // themselves while nobody else does (remex_core::conn::Connection::spawn_direct).
    session(Arc::new(worker), terms, move |config, handlers| {
        Connection::spawn_direct(config, handlers, input, writer, leftover)
    })
    .await
}

/// Serves one controller over the connection `connect` starts, until it
/// terminates the session (returns `None`) or goes away (returns why):
/// its connection ends, or, under a liveness bound, nothing at all comes
/// from it for the whole bound (its host died or the network is cut: the
/// connection may never end by itself). Its scripts run under the terms'
/// limits (the controller's; the worker's fill in).
pub(crate) async fn session(
    worker: Arc<Worker>,
    terms: Terms,
    connect: impl FnOnce(ConnConfig, Handlers) -> std::io::Result<Connection>,
) -> Option<remex_core::Error> {
    let limits = terms.limits;
    let place = terms.place.clone();
    let log_level = terms.log_level;
    crate::wirelog::note_level(log_level);
    let terminate = Arc::new(Notify::new());
    let terminated = Arc::new(AtomicBool::new(false));
    let (t, flag) = (terminate.clone(), terminated.clone());
    let handle = tokio::runtime::Handle::current();
    let handlers = Handlers {
        exec: Some(Arc::new(move |ch: Channel, req: ExecRequest| {
            let guard = ch.connection().executing_guard();
            let (w, place) = (worker.clone(), place.clone());
            handle.spawn_blocking(move || {
                let _here = crate::place::enter(place);
                let _call = crate::wirelog::enter_call(&ch.connection(), log_level, ch.id());
                w.execute(ch, req, guard, limits)
            });
        })),
        eof_reason: None,
        terminate: Some(Arc::new(move || {
            flag.store(true, Ordering::SeqCst);
            t.notify_one();
        })),
    };
    let conn = match connect(ConnConfig::new("controller", 2), handlers) {
        Ok(c) => c,
        Err(e) => {
            return Some(remex_core::Error::Os {
                what: "starting the connection".into(),
                detail: e.to_string(),
            });
        }
    };
    if let Some(bound) = terms.liveness {
        tokio::spawn(watch_controller(conn.clone(), bound));
    }
    if terms.records {
        crate::wirelog::attach(conn.clone(), terms.log_level);
        // The process's only session: its stream ends with the commands'
        // kill sequences below, not with the controller's input (every
        // way out of this function closes it).
        conn.hold_output();
    }
    // However the session ends, no more records.
    struct Detach(bool);
    impl Drop for Detach {
        fn drop(&mut self) {
            if self.0 {
                crate::wirelog::detach();
            }
        }
    }
    let _detach = Detach(terms.records);
    // The controller sends Terminate and then closes our input, so both
    // may be seen at once: Terminate, once received, decides.
    tokio::select! {
        _ = terminate.notified() => {}
        reason = conn.closed() => {
            if !terminated.load(Ordering::SeqCst) {
                tracing::debug!("controller went away: {reason}");
                conn.close_output();
                return Some(reason);
            }
        }
    }
    if terms.records {
        // The process's only session: its commands go through their kill
        // sequences before its stream ends, so that the end of the
        // stream (all a relay or a shared ssh connection sees) is the end
        // of the commands too.
        let _ = tokio::task::spawn_blocking(crate::process::end_running).await;
    }
    conn.close_output();
    let _ = tokio::time::timeout(FLUSH_ON_EXIT, conn.flushed()).await;
    None
}

/// Ends the session when nothing at all has come from the controller for
/// `bound`: it probes at least every quarter of the bound, so such a
/// silence means its host is gone or the way to it is cut (a TCP
/// connection to a dead host stays open for hours). Wakes when the
/// silence would reach the bound. A controller that paused (stopped by
/// its user, `remex::pause_workers`) is waited for until it resumes.
async fn watch_controller(conn: Connection, bound: Duration) {
    let closed = conn.clone();
    let watch = async {
        loop {
            if conn.peer_paused() {
                // The controller is stopped (Ctrl-Z) and said so: its
                // silence is no loss. Looked at again every bound; its
                // `Resume` is input, so the bound then runs from it.
                tokio::time::sleep(bound).await;
                continue;
            }
            let due = conn.last_input() + bound;
            if std::time::Instant::now() >= due {
                let reason = format!(
                    "nothing from the controller within the liveness bound of {bound:?}: its host is down or unreachable"
                );
                tracing::warn!("{reason}; ending the session");
                conn.set_lost(remex_core::Error::GatewayLost {
                    gateway: "controller".into(),
                    pid: 0,
                    reason,
                });
                conn.close_output();
                return;
            }
            tokio::time::sleep_until(due.into()).await;
        }
    };
    tokio::select! {
        _ = watch => {}
        _ = closed.closed() => {}
    }
}

/// Whether the machine has more runnable threads than twice its cores now
/// (Linux: `/proc/loadavg`'s running count), as when hundreds of workers
/// start at once. The script engine is then not built ahead of the first
/// script: 512 prewarms at once took a third of the CPU of the burst even
/// at nice 19 (512 gateways ready in 1.35-1.76 s with them, 0.97-1.05 s
/// without), while a worker started alone keeps its first script fast.
fn crowded() -> bool {
    let Ok(avg) = std::fs::read_to_string("/proc/loadavg") else {
        return false;
    };
    let running = avg
        .split_whitespace()
        .nth(3)
        .and_then(|f| f.split('/').next())
        .and_then(|r| r.parse::<usize>().ok());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    running.is_some_and(|r| r > 2 * cores)
}
