//! Transports: how a gateway's byte stream reaches a worker.
//!
//! Every transport so far is a local child process whose stdin and stdout
//! carry the protocol (popen runs the worker itself; ssh and cmd run a
//! command that reaches one). This module starts such a process, forwards
//! its stderr, watches its exit, and performs the handshake.
//!
//! Over 500 lines: the process start shared by popen, cmd and ssh (spawn,
//! stderr forwarding, exit watching, the handshake and its failure report)
//! and the gentle ends of wrappers, kept together because they share one
//! child's lifetime.

pub mod cmd;
pub mod dial;
pub mod fds;
pub mod munge;
pub(crate) mod parts;
pub mod popen;
pub mod secret;
pub mod secure;
pub mod slurm;
pub mod socket;
pub(crate) mod spare;
pub mod ssh;
pub mod via;

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use bytes::BytesMut;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::spec::Spec;
use crate::wire::{self, HandshakeScanner, Hello, Role, WorkerInfo, WorkerSetup};

/// How long a worker may take to answer the handshake.
///
/// ```
/// assert_eq!(remex::core::transport::HANDSHAKE_TIMEOUT, std::time::Duration::from_secs(30));
/// ```
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts the one worker of a `popen`, `cmd=`, `ssh=` or `socket=` spec
/// and runs its handshake: the parts a gateway is made of. (A `slurm`
/// spec starts its workers together: [`slurm::start`]; `via=` and
/// `installvia=` need their relay's gateway: [`via::connect`],
/// [`socket::install`].)
pub(crate) async fn start(id: &str, spec: &Spec) -> Result<parts::Parts> {
    use crate::spec::Transport;
    let cmd = match &spec.transport {
        Transport::Socket { addr } => return Ok(socket::connect(id, spec, addr).await?.into()),
        Transport::Ssh { target } => return Ok(ssh::start(id, spec, target).await?.into()),
        Transport::Popen => popen::command(spec)?,
        Transport::Cmd { command } => cmd::command(spec, command)?,
        other => {
            return Err(Error::Start {
                spec: spec.raw.clone(),
                detail: format!("the {other:?} transport starts with its group, not alone"),
            })
        }
    };
    Ok(start_process(id, spec, cmd, None).await?.into())
}

/// A started worker process, after a successful handshake.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) pid: u32,
    pub(crate) stdin: ChildStdin,
    pub(crate) stdout: ChildStdout,
    pub(crate) leftover: BytesMut,
    pub(crate) info: WorkerInfo,
    pub(crate) exit: watch::Receiver<Option<ExitStatus>>,
    /// Whether the worker binary was uploaded on this connection.
    pub(crate) uploaded: bool,
    /// The last lines of the process's stderr.
    pub(crate) stderr: Arc<Mutex<VecDeque<String>>>,
}

/// Why the hello exchange failed.
pub(crate) enum HelloError {
    Handshake(wire::HandshakeError),
    Io(std::io::Error),
}

/// Sends the controller's hello (with the spec's setup) and reads the
/// worker's, skipping noise before it. `buf` holds bytes already read and
/// keeps what follows the worker's hello.
pub(crate) async fn exchange_hellos<R, W>(
    r: &mut R,
    w: &mut W,
    buf: &mut BytesMut,
    spec: &Spec,
    id: &str,
) -> std::result::Result<Hello, HelloError>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut hello = BytesMut::new();
    wire::encode_hello(
        &Hello {
            role: Role::Controller,
            worker: None,
            setup: Some(setup_of(spec)),
        },
        &mut hello,
    );
    // A worker that died at once makes this write fail; the read below
    // then reports what it printed.
    let _ = w.write_all(&hello).await;
    let _ = w.flush().await;
    let mut scan = HandshakeScanner::new(wire::DEFAULT_MAX_NOISE);
    loop {
        if let Some(h) = scan.scan(buf).map_err(HelloError::Handshake)? {
            if scan.skipped() > 0 {
                tracing::debug!(gateway = %id, "skipped {} bytes before the handshake: {:?}", scan.skipped(), scan.noise());
            }
            return Ok(h);
        }
        let n = r.read_buf(buf).await.map_err(HelloError::Io)?;
        if n == 0 {
            return Err(HelloError::Handshake(scan.eof_error(buf)));
        }
    }
}

/// The worker's info from its hello, or why the peer is not a worker.
pub(crate) fn worker_info(spec: &Spec, hello: Hello) -> Result<WorkerInfo> {
    match (hello.role, hello.worker) {
        (Role::Worker, Some(info)) => Ok(info),
        (Role::Controller, _) => Err(Error::NotAWorker {
            spec: spec.raw.clone(),
            detail: "the program echoed the controller's handshake back: it is not a remex worker"
                .into(),
        }),
        (Role::Worker, None) => Err(Error::NotAWorker {
            spec: spec.raw.clone(),
            detail: "the worker's handshake carries no worker information".into(),
        }),
    }
}

/// Waits for the remote script's READY marker, uploading the worker when
/// it asks for it (SEND), and skipping what a shell prints meanwhile.
/// Returns whether it uploaded.
pub(crate) async fn await_ready<W, R>(
    stdin: &mut W,
    stdout: &mut R,
    buf: &mut BytesMut,
    upload: Option<&ssh::Upload>,
) -> std::result::Result<bool, wire::HandshakeError>
where
    W: tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncRead + Unpin,
{
    use bytes::Buf;
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut uploaded = false;
    let mut skipped = 0usize;
    let mut preview = Vec::new();
    loop {
        // `SEND FORM\n`: the form follows the marker (wait for its line).
        let send = find(buf, ssh::SEND).and_then(|pos| {
            let rest = &buf[pos + ssh::SEND.len()..];
            let nl = rest.iter().position(|b| *b == b'\n')?;
            Some((pos, String::from_utf8_lossy(&rest[..nl]).into_owned(), nl))
        });
        if let Some((pos, form, nl)) = send {
            let Some(u) = upload else {
                return Err(wire::HandshakeError::BadHello {
                    detail: "the host asked for a worker upload that was not offered".into(),
                });
            };
            skipped += pos;
            preview.extend_from_slice(&buf[..pos.min(400)]);
            buf.advance(pos + ssh::SEND.len() + nl + 1);
            tracing::info!(
                hash = u.hash(),
                form = form.trim(),
                debug_info = ?u.debug_file(),
                "uploading the worker"
            );
            let bytes = u
                .blob(form.trim())
                .map_err(|e| wire::HandshakeError::BadHello {
                    detail: format!("uploading the worker failed: {e}"),
                })?;
            stdin
                .write_all(&bytes)
                .await
                .map_err(|e| wire::HandshakeError::BadHello {
                    detail: format!("uploading the worker failed: {e}"),
                })?;
            uploaded = true;
            continue;
        }
        if let Some(pos) = find(buf, ssh::READY) {
            buf.advance(pos + ssh::READY.len());
            return Ok(uploaded);
        }
        // Keep a tail that may be the start of a marker (and its form).
        let keep = buf.len().min(ssh::SEND.len().max(ssh::READY.len()) + 8);
        let n = buf.len() - keep;
        if preview.len() < 400 {
            preview.extend_from_slice(&buf[..n.min(400 - preview.len())]);
        }
        skipped += n;
        buf.advance(n);
        let noise = || String::from_utf8_lossy(&preview).trim_end().to_string();
        if skipped > wire::DEFAULT_MAX_NOISE {
            return Err(wire::HandshakeError::TooMuchNoise {
                max: wire::DEFAULT_MAX_NOISE,
                noise: noise(),
            });
        }
        match stdout.read_buf(buf).await {
            Ok(0) | Err(_) => {
                // The kept tail too: the last words are often the reason.
                let room = 400usize.saturating_sub(preview.len());
                preview.extend_from_slice(&buf[..buf.len().min(room)]);
                return Err(wire::HandshakeError::NoHandshake {
                    skipped: skipped + buf.len(),
                    noise: String::from_utf8_lossy(&preview).trim_end().to_string(),
                });
            }
            Ok(_) => {}
        }
    }
}

/// Kills a process group with SIGKILL.
pub(crate) fn kill_group(pgid: u32) {
    if pgid > 1 {
        if let Some(group) = rustix::process::Pid::from_raw(pgid as i32) {
            // Already gone is fine.
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }
}

/// How long a wrapper (a `cmd=` command such as `srun`, `kubectl exec`
/// or `podman run`) gets after SIGTERM to clean up (cancel its job step,
/// remove its container) before its process group gets SIGKILL.
///
/// ```
/// assert_eq!(remex::core::transport::WRAPPER_GRACE, std::time::Duration::from_secs(2));
/// ```
pub const WRAPPER_GRACE: Duration = Duration::from_secs(2);

/// Whether `spec`'s local process is a wrapper that may need to clean up
/// (`cmd=`, a `slurm//stdio` srun), rather than the worker itself (popen)
/// or ssh.
pub(crate) fn is_wrapper(spec: &Spec) -> bool {
    matches!(
        spec.transport,
        crate::spec::Transport::Cmd { .. } | crate::spec::Transport::Slurm(_)
    )
}

/// Ends a started process and its process group. A wrapper's group gets
/// SIGTERM first (the `sh -c` that runs the command dies at once; srun
/// cancels its step, podman removes its container) and up to
/// [`WRAPPER_GRACE`] to be gone; then the group gets SIGKILL (whatever is
/// left goes with it).
pub(crate) async fn end_process(pid: u32, wrapper: bool) {
    if let Some(group) = rustix::process::Pid::from_raw(pid as i32).filter(|_| wrapper && pid > 1) {
        use rustix::process::{kill_process_group, test_kill_process_group, Signal};
        let _ = kill_process_group(group, Signal::TERM);
        // No event tells that a process group is empty (a pidfd follows one
        // process, and the group's leader, `sh`, is the first to go): look
        // every 20 ms, within the grace.
        let t0 = std::time::Instant::now();
        while t0.elapsed() < WRAPPER_GRACE
            && test_kill_process_group(group).is_ok()
            && group_runs(pid)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    kill_group(pid);
}

/// Whether a process of group `pgid` still runs. A group whose members
/// have all exited but are not reaped yet (zombies: a wrapper that exited
/// before its worker leaves the worker to init, which reaps when it gets
/// to it) still answers a signal, yet runs nothing: on Linux /proc tells
/// them apart; elsewhere every member counts.
fn group_runs(pgid: u32) -> bool {
    #[cfg(target_os = "linux")]
    if let Ok(dir) = std::fs::read_dir("/proc") {
        return dir.flatten().any(|e| {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                return false;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // After the command's ")": state, ppid, pgrp.
            let mut fields = stat
                .rsplit_once(')')
                .map_or("", |(_, rest)| rest)
                .split_whitespace();
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|g| g.parse::<u32>().ok());
            pgrp == Some(pgid) && state != Some("Z")
        });
    }
    let _ = pgid;
    true
}

/// [`end_process`] where nothing can wait (a `Drop`): a wrapper is ended
/// in the background when a runtime runs (it gets its SIGTERM at once);
/// otherwise, and for other processes, the group gets SIGKILL now.
pub(crate) fn end_process_detached(pid: u32, wrapper: bool) {
    if wrapper {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(end_process(pid, true));
            return;
        }
    }
    kill_group(pid);
}

/// Pipe capacity asked for on the protocol pipes: bulk transfers then need
/// fewer context switches. Linux lets any user go up to 1 MiB.
const PIPE_SIZE: usize = 1 << 20;

/// Failure is harmless (the pipe keeps its size); other systems have no
/// such call.
fn grow_pipe(fd: impl std::os::fd::AsFd) {
    #[cfg(target_os = "linux")]
    let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPE_SIZE);
    #[cfg(not(target_os = "linux"))]
    let _ = (fd, PIPE_SIZE);
}

pub(crate) fn setup_of(spec: &Spec) -> WorkerSetup {
    WorkerSetup {
        chdir: spec.chdir.clone(),
        env: spec.env.clone(),
        nice: spec.nice,
        script_limits: spec.script_limits,
        liveness: spec.liveness_bound(),
        log_level: wanted_log_level(),
    }
}

/// The most detailed `tracing` level this process has on (1 ERROR to 5
/// TRACE; `None`: off): what it asks of its workers' events.
pub(crate) fn wanted_log_level() -> Option<u8> {
    use tracing::Level;
    let level = tracing::level_filters::LevelFilter::current().into_level()?;
    Some(if level == Level::ERROR {
        1
    } else if level == Level::WARN {
        2
    } else if level == Level::INFO {
        3
    } else if level == Level::DEBUG {
        4
    } else {
        5
    })
}

/// Re-emits a worker's log record as a `tracing` event of target
/// `remex::worker`, with the gateway's id, the worker's target and the
/// record's fields, under `parent` (the span the call was made in) or
/// at the root.
///
/// ```
/// use remex::core::wire::LogRecord;
/// let record = LogRecord { level: 3, target: "t".into(), message: "m".into(), ..Default::default() };
/// let span = tracing::info_span!("submitting");
/// remex::core::transport::emit_worker_record("gw0", &record, Some(span));
/// ```
pub fn emit_worker_record(
    gateway: &str,
    r: &crate::wire::LogRecord,
    parent: Option<tracing::Span>,
) {
    use tracing::Level;
    let fields = r
        .fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let parent = parent.and_then(|s| s.id());
    macro_rules! emit {
        ($level:expr) => {
            tracing::event!(
                target: "remex::worker",
                parent: parent.clone(),
                $level,
                gateway,
                worker_target = %r.target,
                fields = %fields,
                "{}",
                r.message
            )
        };
    }
    match r.level {
        1 => emit!(Level::ERROR),
        2 => emit!(Level::WARN),
        3 => emit!(Level::INFO),
        4 => emit!(Level::DEBUG),
        _ => emit!(Level::TRACE),
    }
}

/// Spawns `cmd` (in its own process group), forwards its stderr tagged with
/// `id`, and runs the handshake.
/// With `bootstrap`, the remote side is the ssh bootstrap script: the
/// hello is sent only after its READY marker, and the worker binary when it
/// asks for it.
pub(crate) async fn start_process(
    id: &str,
    spec: &Spec,
    mut cmd: Command,
    bootstrap: Option<Option<ssh::Upload>>,
) -> Result<Started> {
    secret::scrub(cmd.as_std_mut());
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let mut child = cmd.spawn().map_err(|e| Error::Start {
        spec: spec.raw.clone(),
        detail: format!(
            "gateway {id}: cannot run {:?}: {}",
            cmd.as_std().get_program(),
            fds::explain(&e)
        ),
    })?;
    let pid = child.id().unwrap_or(0);
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    grow_pipe(&stdin);
    grow_pipe(&stdout);
    let stderr = child.stderr.take().expect("stderr is piped");
    let last_stderr = Arc::new(Mutex::new(VecDeque::new()));
    let last_stderr_w = last_stderr.clone();
    let id_owned = id.to_string();
    let (stderr_done_tx, stderr_done) = watch::channel(false);
    tokio::spawn(async move {
        forward_stderr(id_owned, stderr, last_stderr_w).await;
        let _ = stderr_done_tx.send(true);
    });
    let (tx, exit) = watch::channel(None);
    let mut drained = stderr_done.clone();
    tokio::spawn(async move {
        let status = child.wait().await.ok();
        // The worker's last words are forwarded before anyone hears that
        // it exited; a grandchild still holding its stderr delays that by
        // STDERR_DRAIN at most.
        let _ = tokio::time::timeout(STDERR_DRAIN, drained.wait_for(|d| *d)).await;
        let _ = tx.send(status);
    });
    let fail = |source| Error::Handshake {
        spec: spec.raw.clone(),
        pid: Some(pid),
        source,
        detail: String::new(),
    };
    let mut uploaded = false;
    let handshake = async {
        let mut buf = BytesMut::with_capacity(8192);
        if let Some(upload) = &bootstrap {
            uploaded = await_ready(&mut stdin, &mut stdout, &mut buf, upload.as_ref())
                .await
                .map_err(fail)?;
        }
        let h = exchange_hellos(&mut stdout, &mut stdin, &mut buf, spec, id)
            .await
            .map_err(|e| match e {
                HelloError::Handshake(h) => fail(h),
                HelloError::Io(e) => Error::os("reading the worker's handshake", e),
            })?;
        Ok((h, buf))
    };
    let wrapper = is_wrapper(spec);
    let within = spec.start_timeout.unwrap_or(HANDSHAKE_TIMEOUT);
    let result = match tokio::time::timeout(within, handshake).await {
        Ok(r) => r,
        Err(_) => {
            // What the command said while it waited ("queued and waiting
            // for resources", a pull in progress) is the explanation.
            let lines: Vec<String> = last_stderr.lock().iter().cloned().collect();
            let said = if lines.is_empty() {
                "; it printed nothing on stderr".to_string()
            } else {
                format!("; its stderr ended with: {:?}", lines.join("\n"))
            };
            Err(Error::Start {
                spec: spec.raw.clone(),
                detail: format!(
                    "no handshake from the worker (pid {pid}) within {within:?} (start_timeout=SECS sets the bound){said}"
                ),
            })
        }
    };
    let (hello, leftover) = match result {
        Ok(x) => x,
        Err(Error::Handshake {
            spec,
            pid: Some(pid),
            source,
            detail: _,
        }) => {
            // Say how the process ended and what it printed on stderr
            // (a shell's "not found", ssh's or kubectl's own message).
            let mut rx = exit.clone();
            let status = tokio::time::timeout(EXIT_STATUS_WAIT, rx.wait_for(|s| s.is_some()))
                .await
                .ok()
                .and_then(|r| r.ok().and_then(|s| *s));
            end_process(pid, wrapper).await;
            // The process's last words: its stderr ends once its group is gone.
            let mut done = stderr_done.clone();
            let _ = tokio::time::timeout(EXIT_STATUS_WAIT, done.wait_for(|d| *d)).await;
            let mut detail = String::new();
            if let Some(st) = status {
                detail.push_str(&format!("; it exited ({st})"));
            }
            let lines: Vec<String> = last_stderr.lock().iter().cloned().collect();
            if !lines.is_empty() {
                detail.push_str(&format!("; its stderr ended with: {:?}", lines.join("\n")));
            }
            return Err(Error::Handshake {
                spec,
                pid: Some(pid),
                source,
                detail,
            });
        }
        Err(e) => {
            end_process(pid, wrapper).await;
            return Err(e);
        }
    };
    let info = match worker_info(spec, hello) {
        Ok(info) => info,
        Err(e) => {
            end_process(pid, wrapper).await;
            return Err(e);
        }
    };
    Ok(Started {
        pid,
        stdin,
        stdout,
        leftover,
        info,
        exit,
        uploaded,
        stderr: last_stderr,
    })
}

/// How long a failed handshake waits for the process's exit status.
const EXIT_STATUS_WAIT: Duration = Duration::from_millis(200);
/// How long an exited worker's stderr may take to end before its exit is
/// reported anyway.
const STDERR_DRAIN: Duration = Duration::from_millis(100);
/// Lines of stderr kept for error messages.
pub(crate) const STDERR_KEPT: usize = 5;

/// The longest line of a worker's stderr that is forwarded whole: the
/// rest of a longer line is dropped and counted, so a worker that writes
/// without newlines cannot make the controller hold more than this.
///
/// ```
/// assert_eq!(remex::core::transport::MAX_STDERR_LINE, 16 * 1024);
/// ```
pub const MAX_STDERR_LINE: usize = 16 * 1024;

/// Reads past the rest of a line (to its newline or the end of the
/// stream) without keeping it; returns how many bytes it skipped.
async fn skip_line<R: tokio::io::AsyncRead + Unpin>(r: &mut BufReader<R>) -> u64 {
    let mut skipped = 0u64;
    loop {
        let buf = match r.fill_buf().await {
            Ok(b) if !b.is_empty() => b,
            _ => return skipped,
        };
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                r.consume(i + 1);
                return skipped + i as u64;
            }
            None => {
                let n = buf.len();
                r.consume(n);
                skipped += n as u64;
            }
        }
    }
}

pub(crate) async fn forward_stderr(
    id: String,
    stderr: ChildStderr,
    last: Arc<Mutex<VecDeque<String>>>,
) {
    read_stderr_lines(stderr, last, STDERR_KEPT, |text| forward_line(&id, text)).await
}

/// Reads a stderr stream line by line until it ends: each line (cut at
/// [`MAX_STDERR_LINE`], the rest dropped and counted) goes to `each`, and
/// the last `keep` lines stay in `last` for error messages.
pub(crate) async fn read_stderr_lines<R: tokio::io::AsyncRead + Unpin>(
    stderr: R,
    last: Arc<Mutex<VecDeque<String>>>,
    keep: usize,
    mut each: impl FnMut(&str),
) {
    let mut r = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = MAX_STDERR_LINE as u64 + 1;
        match (&mut r).take(limit).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut dropped = 0u64;
        if line.len() > MAX_STDERR_LINE && !line.ends_with(b"\n") {
            dropped = (line.len() - MAX_STDERR_LINE) as u64;
            line.truncate(MAX_STDERR_LINE);
            dropped += skip_line(&mut r).await;
        }
        let text = String::from_utf8_lossy(&line);
        let mut text = text.trim_end_matches(['\n', '\r']).to_string();
        if dropped > 0 {
            text.push_str(&format!(
                " [line cut at {MAX_STDERR_LINE} bytes: {dropped} more dropped]"
            ));
        }
        {
            let mut l = last.lock();
            if l.len() == keep {
                l.pop_front();
            }
            l.push_back(text.clone());
        }
        each(&text);
    }
}

/// A line of a worker's log as its `tracing` output writes it (`LEVEL
/// target: message`, see `remex_worker`): the level, the target and the
/// message. Other lines (a task's own prints) are `None`.
///
/// ```
/// use remex::core::transport::parse_worker_log;
/// let (level, target, message) = parse_worker_log(" WARN remex_worker::serve: disk full").unwrap();
/// assert_eq!((level, target, message), (tracing::Level::WARN, "remex_worker::serve", "disk full"));
/// assert!(parse_worker_log("a task printed this").is_none());
/// ```
pub fn parse_worker_log(line: &str) -> Option<(tracing::Level, &str, &str)> {
    let line = line.trim_start();
    let (level, rest) = line.split_once(' ')?;
    let level = match level {
        "ERROR" => tracing::Level::ERROR,
        "WARN" => tracing::Level::WARN,
        "INFO" => tracing::Level::INFO,
        "DEBUG" => tracing::Level::DEBUG,
        "TRACE" => tracing::Level::TRACE,
        _ => return None,
    };
    let (target, message) = rest.trim_start().split_once(": ")?;
    if target.is_empty() || target.contains(char::is_whitespace) {
        return None;
    }
    Some((level, target, message))
}

/// Forwards one line of a worker's stderr: as a `tracing` event of target
/// `remex::worker` with the gateway's id (and, for the worker's own log
/// lines, its level and `worker_target`), or on this process's stderr
/// tagged `[ID]` when nobody listens to `tracing`.
pub(crate) fn forward_line(id: &str, text: &str) {
    use tracing::Level;
    let (level, target, message) = match parse_worker_log(text) {
        Some((l, t, m)) => (l, Some(t), m),
        None => (Level::INFO, None, text),
    };
    // tracing's macros take the level as a constant: one arm per level.
    macro_rules! forward {
        ($lvl:expr) => {{
            let on = tracing::enabled!(target: "remex::worker", $lvl);
            if on {
                match target {
                    Some(t) => tracing::event!(target: "remex::worker", $lvl, gateway = %id, worker_target = %t, "{message}"),
                    None => tracing::event!(target: "remex::worker", $lvl, gateway = %id, "{message}"),
                }
            }
            on
        }};
    }
    let forwarded = match level {
        Level::ERROR => forward!(Level::ERROR),
        Level::WARN => forward!(Level::WARN),
        Level::INFO => forward!(Level::INFO),
        Level::DEBUG => forward!(Level::DEBUG),
        _ => forward!(Level::TRACE),
    };
    if !forwarded {
        eprintln!("[{id}] {text}");
    }
}

impl From<Started> for parts::Parts {
    fn from(s: Started) -> parts::Parts {
        let exit = s.exit.clone();
        let eof_reason: parts::EofReason = Arc::new(move || {
            let mut exit = exit.clone();
            Box::pin(async move {
                // The stream usually ends because the process did: say how.
                let waited =
                    tokio::time::timeout(parts::EOF_STATUS_WAIT, exit.wait_for(|s| s.is_some()))
                        .await;
                match waited {
                    Ok(Ok(s)) => match *s {
                        Some(status) => format!("the worker exited ({status})"),
                        None => "the connection closed".into(),
                    },
                    _ => "the worker closed its output".into(),
                }
            })
        });
        parts::Parts {
            info: s.info,
            streams: parts::Streams::Pipes {
                stdout: s.stdout,
                stdin: s.stdin,
                leftover: s.leftover,
            },
            process: Some(parts::Process {
                pid: s.pid,
                exit: s.exit,
            }),
            uploaded: s.uploaded,
            stderr: Some(s.stderr),
            eof_reason: Some(eof_reason),
        }
    }
}
