//! Ctrl-Z: the command and its jobs stop as a shell expects, and its
//! workers wait.
//!
//! The jobs run in their workers' process groups, which the terminal's
//! SIGTSTP does not reach, and workers over a network run under a liveness
//! bound (10 s by default): stopped alone, the command would leave its
//! jobs running, and its workers would end their sessions on its silence,
//! failing every job not yet finished with "no live worker" once it
//! continued. So SIGTSTP is caught: the workers are told first
//! (`remex::pause_workers`: they suspend their jobs and wait), then the
//! command stops itself with SIGSTOP, and when the shell continues it
//! (`fg`, `bg`) the jobs continue and the bounds run again from then, as
//! GNU parallel stops and continues its jobs.

use futures::FutureExt;
use rustix::process::{getpgrp, getpid, getsid, kill_process, Signal};
use tokio::signal::unix::{signal, SignalKind};

/// Catches the terminal's stops now (SIGTSTP: Ctrl-Z; SIGTTIN and
/// SIGTTOU: a background `remex` reading its inputs from the terminal, or
/// writing to it under `stty tostop`) and returns what serves them for
/// the rest of the command's life (to spawn). `None` if no handler could
/// be installed: they then keep their default action.
pub(crate) fn catch() -> Option<impl std::future::Future<Output = ()>> {
    let mut tstp = signal(SignalKind::from_raw(Signal::TSTP.as_raw())).ok()?;
    let mut ttin = signal(SignalKind::from_raw(Signal::TTIN.as_raw())).ok()?;
    let mut ttou = signal(SignalKind::from_raw(Signal::TTOU.as_raw())).ok()?;
    // SIGCONT says the stop is over: kill(2) of this process returns
    // before the stop takes it (another thread is picked for the signal),
    // so the pause must last until the continue, not until the kill.
    let mut cont = signal(SignalKind::from_raw(Signal::CONT.as_raw())).ok()?;
    Some(async move {
        loop {
            let stop = tokio::select! {
                s = tstp.recv() => s,
                s = ttin.recv() => s,
                s = ttou.recv() => s,
            };
            if stop.is_none() {
                return;
            }
            if orphaned() {
                // The kernel discards a terminal stop sent to an orphaned
                // process group (no shell would ever continue it): so do
                // we.
                continue;
            }
            let pause = remex::pause_workers().await;
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
fn orphaned() -> bool {
    let (group, session) = (
        getpgrp().as_raw_nonzero().get(),
        getsid(None).map_or(0, |s| s.as_raw_nonzero().get()),
    );
    let mut pid = getpid().as_raw_nonzero().get();
    // A line of members, each the parent of the one before.
    for _ in 0..64 {
        let Some((parent, _, _)) = stat(pid) else {
            return false;
        };
        if parent == 0 {
            return true;
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
