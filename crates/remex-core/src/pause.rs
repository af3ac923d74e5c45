//! A controller stopped without losing its workers: Ctrl-Z on a program
//! with workers ([`pause_workers`]).
//!
//! A worker under a liveness bound ends its session when its controller is
//! silent for the bound, and the controller declares a worker lost when it
//! does not answer a probe in time. A process stopped by its user (Ctrl-Z,
//! `kill -TSTP`) is silent and probes nothing, so both would fire: after
//! ten seconds of Ctrl-Z over ssh every job would fail with "no live
//! worker". And the commands the workers run are in process groups of
//! their own, so the terminal's stop does not reach them: they would go on
//! using the machine while their user stopped the run. A pause tells every
//! worker first (`Pause`): it counts no silence and suspends its commands
//! (SIGTSTP, as a shell stops a job's processes and GNU parallel its
//! jobs); the controller's own watchers do not count the time in between;
//! the end of the pause (`Resume`) continues the commands (SIGCONT) and
//! starts both clocks afresh.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use event_listener::Event;
use parking_lot::Mutex;

use crate::conn::Shared;
use crate::wire::Message;

/// How long a pause waits for its `Pause` messages to reach the streams.
const TELL_WITHIN: Duration = Duration::from_secs(1);

/// Pauses held now, and the connections to workers.
struct Paused {
    held: usize,
    watched: Vec<Weak<Shared>>,
}

static PAUSED: Mutex<Paused> = Mutex::new(Paused {
    held: 0,
    watched: Vec::new(),
});
/// Notified when the last pause ends.
static RESUMED: Event = Event::new();
/// Grows at every pause's start and end: a probe that spans one does not
/// count.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Holds this process's workers paused until dropped (or
/// [`WorkersPaused::resume`]): the value [`pause_workers`] returns.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let gw = remex::makegateway("popen//liveness=2").await?;
/// let pause = remex::pause_workers().await;
/// // Stop the process here (SIGSTOP) for as long as the user wants.
/// pause.resume();
/// assert_eq!(gw.remote_exec("channel.send(1)")?.receive::<i64>().await?, 1);
/// # gw.exit().await?;
/// # Ok(()) }
/// ```
#[must_use = "the pause ends when this is dropped"]
#[derive(Debug)]
pub struct WorkersPaused {
    _private: (),
}

impl WorkersPaused {
    /// Ends the pause: every worker continues its commands and counts its
    /// controller's silence again, from now (as dropping it does).
    pub fn resume(self) {}
}

impl Drop for WorkersPaused {
    fn drop(&mut self) {
        let live = {
            let mut p = PAUSED.lock();
            p.held -= 1;
            if p.held > 0 {
                return;
            }
            EPOCH.fetch_add(1, Ordering::Relaxed);
            live(&mut p)
        };
        for s in live {
            let _ = s.push(&Message::Resume);
        }
        RESUMED.notify(usize::MAX);
    }
}

/// Tells every worker of this process that the process is about to be
/// stopped, and returns once the word has reached their streams (at most a
/// second). Until the returned [`WorkersPaused`] is dropped:
/// - the commands the workers run (the `run` task: `remex run`'s jobs)
///   are suspended with SIGTSTP, and the ones still to start wait; at the
///   end of the pause they continue (SIGCONT), their timeouts moved on by
///   the pause's length;
/// - workers under a liveness bound do not end their sessions for the
///   controller's silence, and the controller does not declare them lost
///   for theirs.
///
/// For Ctrl-Z: the `remex` command calls it on SIGTSTP, stops itself with
/// SIGSTOP, and drops the pause when it is continued, as GNU parallel
/// suspends its jobs. Tasks and scripts (threads of a worker) are not
/// suspended.
///
/// While paused, a worker waits for its controller as long as the
/// connection is open (a killed controller still ends it); a controller
/// that died with its host while paused is not noticed by the workers, as
/// with `liveness=off`. Workers of other programs are not concerned.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let gw = remex::makegateway("popen//liveness=1").await?;
/// let pause = remex::pause_workers().await;
/// // Three times the bound without a probe from the controller.
/// tokio::time::sleep(std::time::Duration::from_secs(3)).await;
/// drop(pause);
/// assert_eq!(gw.remote_exec("channel.send(2)")?.receive::<i64>().await?, 2);
/// # gw.exit().await?;
/// # Ok(()) }
/// ```
pub async fn pause_workers() -> WorkersPaused {
    let live = {
        let mut p = PAUSED.lock();
        p.held += 1;
        EPOCH.fetch_add(1, Ordering::Relaxed);
        live(&mut p)
    };
    for s in &live {
        let _ = s.push(&Message::Pause);
    }
    let deadline = tokio::time::Instant::now() + TELL_WITHIN;
    for s in &live {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        s.written(left).await;
    }
    WorkersPaused { _private: () }
}

/// The watched connections still alive (the dead ones forgotten).
fn live(p: &mut Paused) -> Vec<Arc<Shared>> {
    p.watched.retain(|w| w.strong_count() > 0);
    p.watched.iter().filter_map(Weak::upgrade).collect()
}

/// A connection to a worker, to be told of pauses. A pause held now is
/// passed on at once.
pub(crate) fn watch(shared: &Arc<Shared>) {
    let mut p = PAUSED.lock();
    p.watched.retain(|w| w.strong_count() > 0);
    p.watched.push(Arc::downgrade(shared));
    if p.held > 0 {
        let _ = shared.push(&Message::Pause);
    }
}

/// The pause epoch: changed by every pause's start and end.
pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::Relaxed)
}

/// Returns once no pause is held. (No bound: a pause lasts as long as its
/// holder wants, typically while the process is stopped.)
pub(crate) async fn resumed() {
    remex_sync::wait::until(
        None,
        || (PAUSED.lock().held == 0).then_some(()),
        || RESUMED.listen(),
    )
    .await;
}
