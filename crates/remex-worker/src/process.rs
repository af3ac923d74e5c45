//! Running a process to its end with its output captured, bounded in
//! size and time: what scripts' `run` and the built-in `run` task share.
//!
//! The process stays in the worker's process group, so that it ends with
//! the worker (a worker on its way out signals its group). A timeout or a
//! cancel signals the process and its descendants (found in /proc): a
//! timeout sends SIGTERM and SIGKILL after [`TERM_GRACE`] if the output is
//! still open, or the command's kill sequence (`--termseq`) when it has
//! one; a cancel sends that sequence too (GNU parallel's at `--halt now`
//! and Ctrl-C), or SIGKILL at once when there is none; an output over the
//! size bound sends SIGKILL at once. The worker's end waits for the
//! sequences under way ([`end_running`]).

use std::io::{Read, Write};
use std::os::fd::AsFd;

use rustix::event::{PollFd, PollFlags};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use remex_core::Channel;

/// How long a process has, after SIGTERM at its timeout, before SIGKILL.
pub(crate) const TERM_GRACE: Duration = Duration::from_secs(1);

/// How often a cancel (the task's channel closed) is looked for.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// A process to run.
pub(crate) struct Run {
    /// How errors name the process (its command line).
    pub label: String,
    pub command: Command,
    pub stdin: Option<Vec<u8>>,
    /// Where stdin comes from as it comes, instead of `stdin` (copied by
    /// a thread of its own until its end or the command's).
    pub stdin_from: Option<Box<dyn Read + Send>>,
    pub timeout: Option<Duration>,
    /// The most bytes kept of stdout, and of stderr.
    pub max_output: u64,
    /// Killed when this channel closes (a cancelled task).
    pub cancel: Option<Channel>,
    /// The session the command runs for: while its controller is paused
    /// (`remex::pause_workers`) the command is suspended.
    pub session: Option<remex_core::conn::Connection>,
    /// Where stdout goes as it comes, instead of being kept.
    pub stdout_to: Option<Box<dyn Write + Send>>,
    /// At the timeout and at a cancel: each signal, then how long to
    /// wait for the end before the next; SIGKILL after the last (empty:
    /// SIGTERM, then [`TERM_GRACE`], at the timeout; SIGKILL at once at a
    /// cancel).
    pub termseq: Vec<(rustix::process::Signal, Duration)>,
}

/// A process that ran to its end.
pub(crate) struct Finished {
    pub status: ExitStatus,
    pub timed_out: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why a process gave no [`Finished`].
#[derive(Debug)]
pub(crate) enum RunError {
    /// It could not be started.
    Spawn(String),
    /// Its stdout or stderr (named) went over the bound; it was killed.
    TooLarge(&'static str),
    /// Its task was cancelled; it was killed.
    Cancelled,
    /// Waiting for it failed.
    Wait(String),
}

/// How the waiter ended the process, if it did.
#[derive(PartialEq)]
enum Ended {
    ByItself,
    TimedOut,
    Cancelled,
}

/// What /proc/PID/stat says of a process that this module uses.
pub(crate) struct ProcStat {
    /// Its state letter ('Z': a zombie, it has ended).
    pub(crate) state: char,
    pub(crate) ppid: u32,
    pub(crate) pgrp: i32,
    /// When it started, in clock ticks since boot: with the pid, what
    /// names one process even after it left its parent.
    pub(crate) start: u64,
}

/// `pid`'s /proc/PID/stat, if it is there.
pub(crate) fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the ")" that ends the name (which may hold anything): state,
    // ppid, pgrp, ..., the start time 20th.
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

/// The pids of /proc.
pub(crate) fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
}

/// `pid` and its descendants, from every process's parent in /proc.
fn tree(pid: u32) -> Vec<u32> {
    let parent_of: Vec<(u32, u32)> = pids()
        .filter_map(|p| Some((p, proc_stat(p)?.ppid)))
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let at = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == at)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found
}

/// Signals `pid` (not reaped yet, so the number is still its) and, first
/// found then signalled, all its descendants.
fn signal_tree(pid: Option<rustix::process::Pid>, sig: rustix::process::Signal) {
    Tree::default().signal(pid, sig);
}

/// Suspends a process and its descendants while its controller is paused
/// (`remex::pause_workers`), as [`run`] does its command, for a process
/// that [`run`] does not drive (a script's `lines(...)`): a thread looks
/// at the pause every [`CANCEL_POLL`]. Dropped before the process is
/// reaped (its number is then still its); the process is resumed if it
/// was suspended.
pub(crate) struct PauseWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PauseWatch {
    /// Watches `session`'s pause for process `pid`; `None` if no thread
    /// could start (the process then runs on through a pause).
    pub(crate) fn start(pid: u32, session: remex_core::conn::Connection) -> Option<PauseWatch> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let pid = rustix::process::Pid::from_raw(pid as i32);
        let thread = std::thread::Builder::new()
            .name("remex-pause-watch".into())
            .spawn(move || {
                let mut suspended = false;
                while !stopped.load(std::sync::atomic::Ordering::Acquire) {
                    let pause = session.peer_paused() && session.lost().is_none();
                    if pause != suspended {
                        let sig = match pause {
                            true => rustix::process::Signal::TSTP,
                            false => rustix::process::Signal::CONT,
                        };
                        signal_tree(pid, sig);
                        suspended = pause;
                    }
                    std::thread::park_timeout(CANCEL_POLL);
                }
                if suspended {
                    signal_tree(pid, rustix::process::Signal::CONT);
                }
            })
            .ok()?;
        Some(PauseWatch {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for PauseWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// When a process started (see [`ProcStat::start`]).
fn started(pid: u32) -> Option<u64> {
    Some(proc_stat(pid)?.start)
}

/// The processes of a tree signalled in turns (a timeout's sequence): a
/// descendant seen once is signalled again though its parent has died
/// and it went to init (`bash -c 'cmd'` ends at SIGTERM; a `cmd` that
/// ignores it is orphaned, and the SIGKILL must still reach it).
#[derive(Default)]
struct Tree {
    /// (pid, start time) of every process seen in the tree.
    seen: Vec<(u32, u64)>,
}

impl Tree {
    /// Signals the tree of `pid` as it is now, and what was seen of it
    /// before and is still the same process.
    fn signal(&mut self, pid: Option<rustix::process::Pid>, sig: rustix::process::Signal) {
        let Some(pid) = pid else { return };
        for p in tree(pid.as_raw_nonzero().get() as u32) {
            if let Some(t) = started(p) {
                if !self.seen.contains(&(p, t)) {
                    self.seen.push((p, t));
                }
            }
        }
        for &(p, t) in &self.seen {
            if started(p) != Some(t) {
                continue;
            }
            if let Some(p) = rustix::process::Pid::from_raw(p as i32) {
                let _ = rustix::process::kill_process(p, sig);
            }
        }
    }
}

/// This host's name (uname's nodename), read once: every command's
/// outcome names it.
pub(crate) fn hostname() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned()
    })
    .clone()
}

/// Set once this process has run a command: only then does its end look
/// for what is left of its process group (`crate::exit`), a scan of /proc
/// that 512 workers ending at once should not all pay.
static SPAWNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process has run a command.
pub(crate) fn spawned() -> bool {
    SPAWNED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The commands with a kill sequence running now (one in its sequence
/// included).
static RUNNING: std::sync::Mutex<usize> = std::sync::Mutex::new(0);
/// Set when the worker ends: the commands with a kill sequence start it.
static ENDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Told when [`RUNNING`] goes down.
static ENDED: std::sync::Condvar = std::sync::Condvar::new();
/// The longest kill sequence a command was given, in milliseconds.
static LONGEST_SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A running command, counted in [`RUNNING`] until dropped.
struct Counted;

impl Counted {
    fn new() -> Counted {
        *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        ENDED.notify_all();
    }
}

/// Ends the commands that were given a kill sequence with it, and waits
/// until they have ended, for at most the longest sequence and a margin
/// (the end is seen within [`CANCEL_POLL`]): at the worker's end its
/// commands get their sequences, a cleanup trap its time, as GNU parallel
/// gives its jobs at Ctrl-C. No wait if no command was given one; those
/// without are left to the signal to the worker's group.
pub(crate) fn end_running() {
    ENDING.store(true, std::sync::atomic::Ordering::Relaxed);
    let longest = LONGEST_SEQUENCE.load(std::sync::atomic::Ordering::Relaxed);
    if longest == 0 {
        return;
    }
    let within = Duration::from_millis(longest) + CANCEL_POLL * 4;
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    let _ = ENDED.wait_timeout_while(running, within, |n| *n > 0);
}

/// Runs `r` to its end.
pub(crate) fn run(r: Run) -> Result<Finished, RunError> {
    SPAWNED.store(true, std::sync::atomic::Ordering::Relaxed);
    let Run {
        label,
        mut command,
        stdin,
        stdin_from,
        timeout,
        max_output,
        cancel,
        session,
        stdout_to,
        termseq,
    } = r;
    // A cancel sends the sequence only if one was given.
    let sequence_at_cancel = !termseq.is_empty();
    let termseq = if termseq.is_empty() {
        vec![(rustix::process::Signal::TERM, TERM_GRACE)]
    } else {
        let total: Duration = termseq.iter().map(|(_, d)| *d).sum();
        LONGEST_SEQUENCE.fetch_max(
            total.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        termseq
    };
    // While the controller is paused (stopped by its user:
    // `remex::pause_workers`), the command is suspended, and one still to
    // start waits. No bound: until the controller resumes, the task is
    // cancelled, or the session is lost (its controller gone: the command
    // then runs as it would have).
    let paused = |s: &remex_core::conn::Connection| s.peer_paused() && s.lost().is_none();
    if let Some(conn) = &session {
        while paused(conn) {
            if cancel.as_ref().is_some_and(|c| c.is_closed())
                || ENDING.load(std::sync::atomic::Ordering::Relaxed)
            {
                return Err(RunError::Cancelled);
            }
            std::thread::sleep(CANCEL_POLL);
        }
    }
    let mut child = command
        .stdin(if stdin.is_some() || stdin_from.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunError::Spawn(format!("cannot run {label:?}: {e}")))?;
    let _counted = sequence_at_cancel.then(Counted::new);
    // A stream for stdin: copied by a thread, blocking, as it comes; it
    // ends at the stream's end (the pipe closed: end of file for the
    // command) or when the command stops reading (a broken pipe).
    if let Some(mut from) = stdin_from {
        if let Some(mut to) = child.stdin.take() {
            let copy = move || {
                let _ = std::io::copy(&mut from, &mut to);
            };
            if let Err(e) = std::thread::Builder::new()
                .name("remex-stdin".into())
                .spawn(copy)
            {
                signal_tree(
                    rustix::process::Pid::from_raw(child.id() as i32),
                    rustix::process::Signal::KILL,
                );
                let _ = child.wait();
                return Err(RunError::Spawn(format!(
                    "cannot start the thread that feeds {label:?}: {e}"
                )));
            }
        }
    }
    // One thread does it all: a poll loop over the pipes (stdin fed,
    // stdout and stderr read), the timeout's signals and the cancel,
    // then the reap. (Three threads per process before: most of a short
    // job's cost on the worker.)
    let mut feed = child
        .stdin
        .take()
        .zip(stdin)
        .map(|(p, data)| (p, data, 0usize));
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    // Our ends of the pipes: fresh from pipe2 with no status flag set
    // (F_SETFL leaves the access mode alone), so one call each.
    for fd in [
        feed.as_ref().map(|(p, _, _)| p.as_fd()),
        out.as_ref().map(|p| p.as_fd()),
        err.as_ref().map(|p| p.as_fd()),
    ]
    .into_iter()
    .flatten()
    {
        rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK)
            .map_err(|e| RunError::Spawn(e.to_string()))?;
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32);
    let mut deadline = timeout.map(|t| Instant::now() + t);
    // Since when the process is suspended (its controller paused).
    let mut suspended: Option<Instant> = None;
    let mut ended = Ended::ByItself;
    let mut too_large: Option<&'static str> = None;
    // At the timeout: the next signal of the sequence and when.
    let mut kill: Option<(usize, Instant)> = None;
    let mut tree = Tree::default();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut sink = stdout_to;
    let mut stdout_dropped = false;
    let mut buf = vec![0u8; 64 * 1024];
    while out.is_some() || err.is_some() {
        // How long to sleep: to the next signal, the deadline, or the
        // next look at the cancel, the pause and the worker's end.
        let now = Instant::now();
        let mut wake: Option<Instant> = match kill {
            // Suspended: no signal or deadline is due until the end.
            _ if suspended.is_some() => None,
            Some((_, at)) => Some(at),
            None => deadline,
        };
        if cancel.is_some() || session.is_some() || sequence_at_cancel {
            let c = now + CANCEL_POLL;
            wake = Some(wake.map_or(c, |w| w.min(c)));
        }
        let timeout = wake.map(|w| {
            let d = w.saturating_duration_since(now);
            rustix::time::Timespec {
                tv_sec: d.as_secs() as _,
                tv_nsec: d.subsec_nanos() as _,
            }
        });
        let (o_ready, e_ready, f_ready) = {
            let mut fds = Vec::with_capacity(3);
            if let Some(p) = &out {
                fds.push(PollFd::new(p, PollFlags::IN));
            }
            if let Some(p) = &err {
                fds.push(PollFd::new(p, PollFlags::IN));
            }
            if let Some((p, _, _)) = &feed {
                fds.push(PollFd::new(p, PollFlags::OUT));
            }
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(RunError::Wait(format!("waiting for {label:?}: {e}"))),
            }
            let mut r = fds.iter().map(|f| !f.revents().is_empty());
            (
                out.is_some() && r.next().unwrap_or(false),
                err.is_some() && r.next().unwrap_or(false),
                feed.is_some() && r.next().unwrap_or(false),
            )
        };
        if o_ready {
            match drain(out.as_mut(), &mut buf) {
                Some([]) => out = None,
                Some(chunk) => match &mut sink {
                    // Streamed: nothing kept. A sink that fails (its
                    // reader went away) is drained past, so the process
                    // is not stopped on a full pipe.
                    Some(s) => {
                        if s.write_all(chunk).is_err() {
                            sink = None;
                            stdout_dropped = true;
                        }
                    }
                    None if stdout_dropped => {}
                    None => {
                        stdout.extend_from_slice(chunk);
                        if stdout.len() as u64 > max_output {
                            too_large = Some("stdout");
                        }
                    }
                },
                None => {}
            }
        }
        if e_ready {
            match drain(err.as_mut(), &mut buf) {
                Some([]) => err = None,
                Some(chunk) => {
                    stderr.extend_from_slice(chunk);
                    if stderr.len() as u64 > max_output {
                        too_large = Some("stderr");
                    }
                }
                None => {}
            }
        }
        if f_ready {
            if let Some((p, data, at)) = &mut feed {
                match p.write(&data[*at..]) {
                    Ok(n) => *at += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    // A process that does not read its input ends the write.
                    Err(_) => *at = data.len(),
                }
                if *at >= data.len() {
                    feed = None;
                }
            }
        }
        if too_large.is_some() {
            signal_tree(pid, rustix::process::Signal::KILL);
            break;
        }
        let now = Instant::now();
        let ending = sequence_at_cancel && ENDING.load(std::sync::atomic::Ordering::Relaxed);
        if ended != Ended::Cancelled && (ending || cancel.as_ref().is_some_and(|c| c.is_closed())) {
            ended = Ended::Cancelled;
            if !sequence_at_cancel {
                signal_tree(pid, rustix::process::Signal::KILL);
                break;
            }
            // The sequence from its start (a timeout's under way too),
            // to a command that runs: a suspended one could not act on it.
            if suspended.take().is_some() {
                tree.signal(pid, rustix::process::Signal::CONT);
            }
            let (sig, wait) = termseq[0];
            tree.signal(pid, sig);
            kill = Some((1, now + wait));
            deadline = None;
        }
        let pause = ended != Ended::Cancelled && session.as_ref().is_some_and(paused);
        match (suspended, pause) {
            (None, true) => {
                // As a shell stops a job's processes at Ctrl-Z (and GNU
                // parallel its jobs).
                signal_tree(pid, rustix::process::Signal::TSTP);
                suspended = Some(now);
            }
            (Some(since), false) => {
                signal_tree(pid, rustix::process::Signal::CONT);
                // The pause does not count against the timeout.
                let held = now - since;
                deadline = deadline.map(|d| d + held);
                kill = kill.map(|(i, at)| (i, at + held));
                suspended = None;
            }
            _ => {}
        }
        if suspended.is_some() {
            continue;
        }
        match kill {
            None if deadline.is_some_and(|d| now >= d) => {
                ended = Ended::TimedOut;
                let (sig, wait) = termseq[0];
                tree.signal(pid, sig);
                kill = Some((1, now + wait));
            }
            Some((i, at)) if now >= at => match termseq.get(i) {
                Some((sig, wait)) => {
                    tree.signal(pid, *sig);
                    kill = Some((i + 1, now + *wait));
                }
                None => {
                    // The sequence is over: SIGKILL, and no more waiting
                    // for the output of what may have escaped it.
                    tree.signal(pid, rustix::process::Signal::KILL);
                    break;
                }
            },
            _ => {}
        }
    }
    // What was written before the end and not read yet (after a kill,
    // as far as it is there now).
    if too_large.is_none() {
        while let Some(chunk) = drain(out.as_mut(), &mut buf).filter(|c| !c.is_empty()) {
            match &mut sink {
                Some(s) => {
                    let _ = s.write_all(chunk);
                }
                None if stdout_dropped => {}
                None => stdout.extend_from_slice(chunk),
            }
        }
        while let Some(chunk) = drain(err.as_mut(), &mut buf).filter(|c| !c.is_empty()) {
            stderr.extend_from_slice(chunk);
        }
        if stdout.len() as u64 > max_output {
            too_large = Some("stdout");
        } else if stderr.len() as u64 > max_output {
            too_large = Some("stderr");
        }
    }
    drop((feed, out, err, sink));
    let status = child
        .wait()
        .map_err(|e| RunError::Wait(format!("waiting for {label:?}: {e}")))?;
    if ended == Ended::Cancelled {
        return Err(RunError::Cancelled);
    }
    if let Some(which) = too_large {
        return Err(RunError::TooLarge(which));
    }
    Ok(Finished {
        status,
        timed_out: ended == Ended::TimedOut,
        stdout,
        stderr,
    })
}

/// Reads what `pipe` has now into `buf`: `Some(empty)` at its end,
/// `None` when nothing is there yet.
fn drain<'b>(pipe: Option<&mut impl Read>, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let pipe = pipe?;
    loop {
        match pipe.read(buf) {
            Ok(n) => return Some(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
            // A broken pipe reads as its end.
            Err(_) => return Some(&buf[..0]),
        }
    }
}
