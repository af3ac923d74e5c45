//! Running a process to its end with its output captured, bounded in
//! size and time: what scripts' `run` and the built-in `run` task share.
//!
//! The process stays in the worker's process group, so that it ends with
//! the worker (a worker on its way out signals its group). A timeout or a
//! cancel signals the process and its descendants (found in /proc): a
//! timeout sends SIGTERM and SIGKILL after [`TERM_GRACE`] if the output is
//! still open; an output over the size bound or a cancel sends SIGKILL at
//! once.

use std::io::{Read, Write};
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
    pub timeout: Option<Duration>,
    /// The most bytes kept of stdout, and of stderr.
    pub max_output: u64,
    /// Killed when this channel closes (a cancelled task).
    pub cancel: Option<Channel>,
    /// Where stdout goes as it comes, instead of being kept.
    pub stdout_to: Option<Box<dyn Write + Send>>,
    /// At the timeout: each signal, then how long to wait for the end
    /// before the next; SIGKILL after the last (empty: SIGTERM, then
    /// [`TERM_GRACE`]).
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

/// Reads all of `r`, at most `max` bytes: `Err` past that.
fn read_all(mut r: impl Read, max: u64) -> Result<Vec<u8>, ()> {
    let mut buf = Vec::new();
    let _ = (&mut r).take(max.saturating_add(1)).read_to_end(&mut buf);
    if buf.len() as u64 > max {
        Err(())
    } else {
        Ok(buf)
    }
}

/// What the waiter hears from the readers.
enum Done {
    /// Both outputs closed: the process is ending.
    Closed,
    /// An output went over its bound: kill.
    TooLarge,
}

/// How the waiter ended the process, if it did.
#[derive(PartialEq)]
enum Ended {
    ByItself,
    TimedOut,
    Cancelled,
}

/// `pid` and its descendants, from every process's parent in /proc.
fn tree(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // The parent is the 2nd field after the ")" that ends the name.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(pp) = ppid {
            parent_of.push((p, pp));
        }
    }
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

/// When a process started (`/proc/PID/stat`'s 22nd field): with its pid,
/// what names one process even after it left its parent.
fn started(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
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

/// This host's name (uname's nodename).
pub(crate) fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Runs `r` to its end.
pub(crate) fn run(r: Run) -> Result<Finished, RunError> {
    let Run {
        label,
        mut command,
        stdin,
        timeout,
        max_output,
        cancel,
        stdout_to,
        termseq,
    } = r;
    let termseq = if termseq.is_empty() {
        vec![(rustix::process::Signal::TERM, TERM_GRACE)]
    } else {
        termseq
    };
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunError::Spawn(format!("cannot run {label:?}: {e}")))?;
    let input = child.stdin.take().zip(stdin);
    let (done_tx, done_rx) = flume::bounded::<Done>(2);
    let reader = |pipe: Option<Box<dyn Read + Send>>,
                  sink: Option<Box<dyn Write + Send>>,
                  tx: flume::Sender<Done>| {
        pipe.map(|mut p| {
            std::thread::spawn(move || match sink {
                Some(mut sink) => {
                    // Streamed: nothing kept. A sink that fails (its
                    // reader went away) is drained past, so the process
                    // is not stopped on a full pipe.
                    if std::io::copy(&mut p, &mut sink).is_err() {
                        let _ = std::io::copy(&mut p, &mut std::io::sink());
                    }
                    Ok(Vec::new())
                }
                None => {
                    let got = read_all(p, max_output);
                    if got.is_err() {
                        let _ = tx.send(Done::TooLarge);
                    }
                    got
                }
            })
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        stdout_to,
        done_tx.clone(),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        None,
        done_tx.clone(),
    );
    let feeder = input.map(|(mut pipe, data)| {
        std::thread::spawn(move || {
            // A process that does not read its input ends the write.
            let _ = pipe.write_all(&data);
        })
    });
    // The waiter owns the child, so its pid stays its own (not reaped,
    // not reused) until after any signal.
    let pid = rustix::process::Pid::from_raw(child.id() as i32);
    let waiter = std::thread::spawn(move || {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut ended = Ended::ByItself;
        loop {
            let slice = match (deadline, &cancel) {
                (Some(d), Some(_)) => {
                    Some(d.saturating_duration_since(Instant::now()).min(CANCEL_POLL))
                }
                (Some(d), None) => Some(d.saturating_duration_since(Instant::now())),
                (None, Some(_)) => Some(CANCEL_POLL),
                (None, None) => None,
            };
            let heard = match slice {
                Some(s) => done_rx.recv_timeout(s).ok(),
                None => done_rx.recv().ok(),
            };
            match heard {
                Some(Done::Closed) => break,
                Some(Done::TooLarge) => {
                    signal_tree(pid, rustix::process::Signal::KILL);
                    break;
                }
                None if done_rx.is_disconnected() => break,
                None => {}
            }
            if cancel.as_ref().is_some_and(|c| c.is_closed()) {
                signal_tree(pid, rustix::process::Signal::KILL);
                ended = Ended::Cancelled;
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                ended = Ended::TimedOut;
                let mut tree = Tree::default();
                let mut closed = false;
                for (sig, wait) in &termseq {
                    tree.signal(pid, *sig);
                    if matches!(done_rx.recv_timeout(*wait), Ok(Done::Closed)) {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    tree.signal(pid, rustix::process::Signal::KILL);
                }
                break;
            }
        }
        (child.wait(), ended)
    });
    let stdout = out.map(|h| h.join());
    let stderr = err.map(|h| h.join());
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let _ = done_tx.send(Done::Closed);
    let (status, ended) = waiter
        .join()
        .map_err(|_| RunError::Wait(format!("waiting for {label:?} failed")))?;
    let status = status.map_err(|e| RunError::Wait(format!("waiting for {label:?}: {e}")))?;
    if ended == Ended::Cancelled {
        return Err(RunError::Cancelled);
    }
    let take = |h: Option<std::thread::Result<Result<Vec<u8>, ()>>>, which| match h {
        Some(Ok(Ok(b))) => Ok(b),
        Some(Ok(Err(()))) => Err(RunError::TooLarge(which)),
        _ => Ok(Vec::new()),
    };
    Ok(Finished {
        status,
        timed_out: ended == Ended::TimedOut,
        stdout: take(stdout, "stdout")?,
        stderr: take(stderr, "stderr")?,
    })
}
