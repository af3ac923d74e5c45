//! The worker's one way out. Every end goes through [`now`]: what the
//! worker has to say is said (through [`crate::say`], so a listener's log
//! takes it), what was logged is flushed (a listener's log writer gets at
//! most 200 ms), the rest of its process group is told (its children:
//! SIGTERM and 400 ms to end before SIGKILL, once the session's end has
//! put the commands given a kill sequence through it; or SIGKILL at once
//! when nobody will clean up after it), then the
//! process exits with its status: 0 ended as asked or its controller went
//! away, 2 it could not start, 3 its controller broke the protocol, 4 its
//! session was tampered with.

use std::io::Write;
use std::sync::OnceLock;

/// What the rest of the worker's process group (its children) gets on
/// the way out; only a worker that leads its group signals it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Children {
    /// Nothing (a worker that did not start, or a listener).
    Leave,
    /// SIGTERM: they may end cleanly.
    Term,
    /// SIGKILL: the controller is gone and nobody will clean up after us.
    Kill,
}

static FLUSH: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

/// Makes `flush` what [`now`] runs before the exit (a listener's log
/// writer); the first call wins.
pub(crate) fn flush_with(flush: impl Fn() + Send + Sync + 'static) {
    let _ = FLUSH.set(Box::new(flush));
}

/// Ends the process with `code`, after `why` is said and the log flushed,
/// and `children` told.
pub(crate) fn now(code: i32, why: Option<&str>, children: Children) -> ! {
    if let Some(why) = why {
        crate::say(format!("remex-worker: {why}"));
    }
    match FLUSH.get() {
        Some(flush) => flush(),
        None => {
            let _ = std::io::stderr().flush();
        }
    }
    if children != Children::Leave && leads_group() {
        // SAFETY: signal dispositions and kill(2) on our own process group.
        unsafe {
            if children == Children::Kill {
                libc::kill(0, libc::SIGKILL);
            } else {
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                libc::kill(0, libc::SIGTERM);
            }
        }
        if children == Children::Term && crate::process::spawned() {
            end_the_rest();
        }
    }
    std::process::exit(code)
}

/// How long the rest of the group has, after SIGTERM, to end by itself
/// (a job's cleanup trap) before SIGKILL: GNU parallel's default
/// `--termseq` (TERM 200, TERM 100, TERM 50, KILL 25 ms) in one.
const TERM_GRACE: std::time::Duration = std::time::Duration::from_millis(400);

/// Waits (at most [`TERM_GRACE`]) for the rest of this process's group
/// to end after its SIGTERM, then kills what is left: a job that ignores
/// SIGTERM is not left behind, on this host or another. No event tells
/// that a group is empty: /proc is looked at every 10 ms.
fn end_the_rest() {
    let t0 = std::time::Instant::now();
    loop {
        let rest = others_in_group();
        if rest.is_empty() {
            return;
        }
        if t0.elapsed() >= TERM_GRACE {
            for pid in rest {
                if let Some(p) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The processes of this process's group other than itself that still
/// run (zombies have ended), from /proc; none where there is no /proc.
fn others_in_group() -> Vec<i32> {
    let (me, group) = (
        rustix::process::getpid().as_raw_nonzero().get() as u32,
        process_group(),
    );
    if group <= 0 {
        return Vec::new();
    }
    crate::process::pids()
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            crate::process::proc_stat(pid).is_some_and(|s| s.state != 'Z' && s.pgrp == group)
        })
        .map(|pid| pid as i32)
        .collect()
}

/// A worker that cannot start or go on: says why and exits 2.
pub(crate) fn fail(why: impl std::fmt::Display) -> ! {
    now(2, Some(&why.to_string()), Children::Leave)
}

/// The end of a served session (over stdio or dialed back): `ended` is
/// `None` when the controller terminated the worker, else why the session
/// stopped.
pub(crate) fn after_session(ended: Option<remex_core::Error>) -> ! {
    match ended {
        None => now(0, None, Children::Term),
        // Never quiet: a status and a warning (stderr may be closed: no
        // panic).
        Some(e) if e.is_tampering() => {
            tracing::warn!("ending: {e}");
            now(4, None, Children::Kill)
        }
        // A controller that breaks the protocol is a bug worth a status
        // and a line at the default level.
        Some(e @ remex_core::Error::Protocol { .. }) => {
            now(3, Some(&format!("ending: {e}")), Children::Kill)
        }
        Some(_) => now(0, None, Children::Kill),
    }
}

/// Whether this process leads its own process group (popen workers do):
/// only then may it signal the whole group on the way out.
fn leads_group() -> bool {
    process_group() == rustix::process::getpid().as_raw_nonzero().get()
}

/// This process's group: 0 in a pid namespace (a container) whose
/// group's leader is outside it.
fn process_group() -> i32 {
    // SAFETY: getpgrp(2) has no preconditions. (rustix's wrapper assumes
    // a nonzero id, which a pid namespace breaks.)
    unsafe { libc::getpgrp() }
}
