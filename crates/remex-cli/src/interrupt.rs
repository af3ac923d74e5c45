//! Ctrl-C and SIGTERM: the jobs are asked to end before `remex` does.
//!
//! Killed at once, `remex` would leave its workers to kill their jobs
//! with SIGKILL (their controller gone, nobody cleans up after them): a
//! job's cleanup (`trap ... TERM`) would never run. GNU parallel sends its
//! jobs its `--termseq`. So the first SIGINT or SIGTERM ends every worker
//! as the end of a run does (each sends its jobs their kill sequence,
//! `--termseq` or GNU parallel's default, and then what is left of its
//! process group SIGTERM and 400 ms before SIGKILL), says
//! nothing more of the jobs, and then `remex` dies of that signal, so that
//! a shell loop around it stops as it would for any command (GNU parallel
//! exits 255 instead). A second signal ends it at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use remex::Group;
use rustix::process::Signal;
use tokio::signal::unix::{signal, SignalKind};

/// The workers to end at an interrupt.
static GROUPS: Mutex<Vec<Group>> = Mutex::new(Vec::new());
/// Set at the first SIGINT or SIGTERM.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How long the workers get to end, their jobs' 400 ms included, and
/// their jobs' kill sequences ([`jobs_end_within`]).
const END_WITHIN: Duration = Duration::from_secs(2);
/// The jobs' kill sequence, in milliseconds.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The jobs' kill sequence (`--termseq`) takes up to `d`: the workers get
/// that long more to end at an interrupt.
pub(crate) fn jobs_end_within(d: Duration) {
    SEQUENCE.store(d.as_millis() as u64, Ordering::Relaxed);
}

/// `group`'s workers are ended at an interrupt.
pub(crate) fn ends(group: &Group) {
    GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(group.clone());
}

/// Whether the command was interrupted: it then prints nothing more of its
/// jobs, and does not end by itself.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Catches SIGINT and SIGTERM now and returns what serves them (to
/// spawn). `None` if no handler could be installed: they then keep their
/// default action.
pub(crate) fn catch() -> Option<impl std::future::Future<Output = ()>> {
    let mut int = signal(SignalKind::interrupt()).ok()?;
    let mut term = signal(SignalKind::terminate()).ok()?;
    Some(async move {
        let first = tokio::select! {
            s = int.recv() => s.map(|()| Signal::INT),
            s = term.recv() => s.map(|()| Signal::TERM),
        };
        let Some(sig) = first else {
            return;
        };
        INTERRUPTED.store(true, Ordering::Relaxed);
        let within = END_WITHIN + Duration::from_millis(SEQUENCE.load(Ordering::Relaxed));
        let groups = std::mem::take(&mut *GROUPS.lock().unwrap_or_else(|e| e.into_inner()));
        let ending = futures::future::join_all(groups.iter().map(|g| g.terminate(within)));
        tokio::select! {
            _ = ending => {}
            // A second signal: at once.
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        let _ = signal_hook::low_level::emulate_default_handler(sig.as_raw());
        // Not reached where the signal's default action is known.
        std::process::exit(128 + sig.as_raw());
    })
}

/// Waits for the end an interrupt brings, if the command was interrupted
/// (its loop may finish first, as its jobs fail): the process then dies
/// of the signal, not with the loop's status.
pub(crate) async fn settle() {
    if interrupted() {
        std::future::pending::<()>().await;
    }
}
