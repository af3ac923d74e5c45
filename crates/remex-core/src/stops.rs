//! The terminal's stops (Ctrl-Z) for a program with workers:
//! [`catch_stops`].
//!
//! A worker's commands run in its process group, which the terminal's
//! SIGTSTP does not reach, and workers over a network run under a
//! liveness bound (10 s by default): a program stopped alone would leave
//! its workers' commands running, and its workers would end their
//! sessions on its silence. So the stop is caught: the workers are told
//! first ([`crate::pause_workers`]: they suspend their commands and wait),
//! then the program stops itself with SIGSTOP, and when the shell
//! continues it (`fg`, `bg`) the commands continue and the bounds run
//! again from then, as GNU parallel stops and continues its jobs.

use futures::FutureExt;
use rustix::process::{getpid, kill_process, Signal};
use tokio::signal::unix::{signal, SignalKind};

/// Catches the terminal's stops for this process now (SIGTSTP: Ctrl-Z;
/// SIGTTIN and SIGTTOU: a background process reading from the terminal,
/// or writing to it under `stty tostop`) and returns the future that
/// serves them, to spawn once. At each stop the workers are paused
/// ([`crate::pause_workers`]), the process stops itself with SIGSTOP as
/// the default action would, and the pause ends when the process is
/// continued (SIGCONT). As the kernel does, a stop is ignored when the
/// process group is orphaned (no shell could continue it) or the process
/// is the first of its pid namespace (a container's). The `remex`
/// command serves them so; call it inside a tokio runtime. An error if a
/// handler cannot be installed (the stops then keep their default action).
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// tokio::spawn(remex::catch_stops().expect("signal handlers"));
/// // Ctrl-Z from now on suspends this program's workers' commands too,
/// // and keeps its workers under a liveness bound waiting.
/// let gw = remex::makegateway("popen//liveness=2").await?;
/// assert_eq!(gw.remote_exec("channel.send(1)")?.receive::<i64>().await?, 1);
/// # gw.exit().await?;
/// # Ok(()) }
/// ```
pub fn catch_stops() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let mut tstp = signal(SignalKind::from_raw(Signal::TSTP.as_raw()))?;
    let mut ttin = signal(SignalKind::from_raw(Signal::TTIN.as_raw()))?;
    let mut ttou = signal(SignalKind::from_raw(Signal::TTOU.as_raw()))?;
    // SIGCONT says the stop is over: kill(2) of this process returns
    // before the stop takes it (another thread is picked for the signal),
    // so the pause must last until the continue, not until the kill.
    let mut cont = signal(SignalKind::from_raw(Signal::CONT.as_raw()))?;
    Ok(async move {
        loop {
            let stop = tokio::select! {
                s = tstp.recv() => s,
                s = ttin.recv() => s,
                s = ttou.recv() => s,
            };
            if stop.is_none() {
                return;
            }
            if orphaned() || getpid().as_raw_nonzero().get() == 1 {
                // The kernel discards a terminal stop sent to an orphaned
                // process group (no shell would ever continue it), or to
                // the first process of a pid namespace (a container's,
                // which even SIGSTOP from within does not stop): so do
                // we, and no pause waits for a continue that never comes.
                continue;
            }
            let pause = crate::pause_workers().await;
            // A continue from before this stop is not this one's.
            while let Some(Some(())) = cont.recv().now_or_never() {}
            if kill_process(getpid(), Signal::STOP).is_ok() {
                // No bound: the process is stopped until its user
                // continues it, and SIGCONT always comes then.
                cont.recv().await;
            }
            drop(pause);
        }
    })
}

/// Whether this process's group is orphaned (POSIX: no member has a
/// parent in another group of the same session), as far as this process's
/// line of ancestors in the group tells; unknown counts as not orphaned.
/// In a pid namespace (a container) the group's or the session's leader
/// may be outside it: its id reads as 0 there, and counts as unknown.
fn orphaned() -> bool {
    // SAFETY: getpgrp(2) and getsid(2) have no preconditions. (rustix's
    // wrappers assume a nonzero id, which a pid namespace breaks.)
    let (group, session) = unsafe { (libc::getpgrp(), libc::getsid(0)) };
    if group <= 0 {
        return false;
    }
    let mut pid = getpid().as_raw_nonzero().get();
    // A line of members, each the parent of the one before.
    for _ in 0..64 {
        let Some((parent, _, _)) = stat(pid) else {
            return false;
        };
        if parent == 0 {
            // The top of this pid namespace: its parent is not seen.
            return session > 0;
        }
        let Some((_, their_group, their_session)) = stat(parent) else {
            return false;
        };
        if their_session != session {
            return true;
        }
        if their_group != group {
            return false;
        }
        pid = parent;
    }
    false
}

/// `pid`'s parent, process group and session, from /proc.
fn stat(pid: i32) -> Option<(i32, i32, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (which may hold anything, ")" included):
    // state, ppid, pgrp, session.
    let mut f = text.rsplit_once(')')?.1.split_whitespace().skip(1);
    let mut next = || f.next()?.parse::<i32>().ok();
    Some((next()?, next()?, next()?))
}
