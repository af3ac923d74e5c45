//! `Trigger`: run a function on a given runtime from any thread; repeated
//! sends before it runs coalesce into one run.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::launcher::Launcher;
use crate::wait;

/// Runs a function (no arguments, no result) on a runtime from any thread.
/// Sends made before the function starts coalesce into one run; a send
/// while it runs makes it run once more afterwards, so no send goes
/// unanswered. `send_wait` also waits until a run that started after the
/// send has finished.
///
/// Built on a [`Launcher`] (tokio) for the runs and `event-listener` for
/// the waiting. The seed's HubTrigger.
///
/// ```
/// # #[tokio::main] async fn main() {
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let runs = Arc::new(AtomicUsize::new(0));
/// let r = runs.clone();
/// let trigger = remex::sync::Trigger::new(
///     remex::sync::Launcher::current().unwrap(),
///     move || { r.fetch_add(1, Ordering::SeqCst); },
/// );
/// trigger.send_wait(Some(Duration::from_secs(5))).await.unwrap();
/// assert!(runs.load(Ordering::SeqCst) >= 1);
/// # }
/// ```
#[derive(Clone)]
pub struct Trigger {
    inner: Arc<Inner>,
}

struct Inner {
    f: Box<dyn Fn() + Send + Sync>,
    launcher: Launcher,
    pending: AtomicBool,
    started: AtomicU64,
    finished: AtomicU64,
    dead: AtomicBool,
    changed: event_listener::Event,
}

impl fmt::Debug for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Trigger(on {:?}, {} runs)",
            self.inner.launcher,
            self.inner.finished.load(Ordering::SeqCst)
        )
    }
}

/// Marks the trigger dead if its run is dropped unrun (the runtime ended).
struct RunGuard(Option<Arc<Inner>>);

impl Drop for RunGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.0.take() {
            inner.dead.store(true, Ordering::SeqCst);
            inner.changed.notify(usize::MAX);
        }
    }
}

impl Trigger {
    /// A trigger running `f` where `launcher` runs work.
    ///
    /// ```
    /// let t = remex::sync::Thread::new("hub");
    /// t.start(true, None).unwrap();
    /// let trigger = remex::sync::Trigger::new(t.launcher().unwrap(), || println!("ran"));
    /// trigger.send_wait_blocking(Some(std::time::Duration::from_secs(5))).unwrap();
    /// ```
    pub fn new(launcher: Launcher, f: impl Fn() + Send + Sync + 'static) -> Trigger {
        Trigger {
            inner: Arc::new(Inner {
                f: Box::new(f),
                launcher,
                pending: AtomicBool::new(false),
                started: AtomicU64::new(0),
                finished: AtomicU64::new(0),
                dead: AtomicBool::new(false),
                changed: event_listener::Event::new(),
            }),
        }
    }

    /// Asks for a run without waiting. Returns the number of runs started
    /// before this send (for `send_wait`).
    ///
    /// ```
    /// let t = remex::sync::Thread::new("hub");
    /// t.start(true, None).unwrap();
    /// let trigger = remex::sync::Trigger::new(t.launcher().unwrap(), || println!("ran"));
    /// trigger.send();
    /// trigger.send(); // coalesces with the first if it has not run yet
    /// trigger.send_wait_blocking(Some(std::time::Duration::from_secs(5))).unwrap();
    /// assert!(trigger.runs() >= 1);
    /// ```
    pub fn send(&self) -> u64 {
        let before = self.inner.started.load(Ordering::SeqCst);
        if !self.inner.pending.swap(true, Ordering::SeqCst) {
            let mut guard = RunGuard(Some(self.inner.clone()));
            self.inner.launcher.handle().spawn(async move {
                let inner = guard.0.take().expect("a run owns its guard");
                // Cleared before running: a send during the run schedules
                // another one.
                inner.pending.store(false, Ordering::SeqCst);
                inner.started.fetch_add(1, Ordering::SeqCst);
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| (inner.f)())) {
                    tracing::warn!("a trigger's function panicked: {}", Error::from_panic(p));
                }
                inner.finished.fetch_add(1, Ordering::SeqCst);
                inner.changed.notify(usize::MAX);
            });
        }
        before
    }

    fn check(&self, before: u64) -> Option<Result<()>> {
        if self.inner.finished.load(Ordering::SeqCst) > before {
            return Some(Ok(()));
        }
        if self.inner.dead.load(Ordering::SeqCst) {
            return Some(Err(Error::Gone {
                what: format!("{:?}", self.inner.launcher),
                reason: "the runtime ended before the trigger ran".into(),
            }));
        }
        None
    }

    fn timeout(timeout: Option<Duration>) -> Error {
        Error::Timeout {
            what: "the trigger to run",
            after: timeout.unwrap_or_default(),
        }
    }

    /// Sends, then waits until a run that started after the send has
    /// finished.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let t = remex::sync::Thread::new("hub");
    /// t.start(true, None).unwrap();
    /// let trigger = remex::sync::Trigger::new(t.launcher().unwrap(), || {});
    /// trigger.send_wait(Some(std::time::Duration::from_secs(5))).await.unwrap();
    /// assert_eq!(trigger.runs(), 1);
    /// # }
    /// ```
    pub async fn send_wait(&self, timeout: Option<Duration>) -> Result<()> {
        let before = self.send();
        wait::until(
            timeout,
            || self.check(before),
            || self.inner.changed.listen(),
        )
        .await
        .unwrap_or_else(|| Err(Self::timeout(timeout)))
    }

    /// [`Trigger::send_wait`] for threads. On the runtime's own thread this
    /// would wait for itself: it returns [`Error::Usage`] there.
    ///
    /// ```
    /// let t = remex::sync::Thread::new("hub");
    /// t.start(true, None).unwrap();
    /// let trigger = remex::sync::Trigger::new(t.launcher().unwrap(), || println!("ran"));
    /// t.stop(true, None).unwrap();
    /// // The hub is gone: the wait fails instead of hanging.
    /// assert!(trigger.send_wait_blocking(Some(std::time::Duration::from_secs(5))).is_err());
    /// ```
    pub fn send_wait_blocking(&self, timeout: Option<Duration>) -> Result<()> {
        if self.inner.launcher.is_owner() {
            return Err(Error::Usage(
                "send_wait_blocking on the trigger's own thread would wait for itself; use send_wait().await".into(),
            ));
        }
        let before = self.send();
        wait::until_blocking(
            timeout,
            || self.check(before),
            || self.inner.changed.listen(),
        )
        .unwrap_or_else(|| Err(Self::timeout(timeout)))
    }

    /// How many runs have finished.
    ///
    /// ```
    /// let t = remex::sync::Thread::new("hub");
    /// t.start(true, None).unwrap();
    /// let trigger = remex::sync::Trigger::new(t.launcher().unwrap(), || println!("ran"));
    /// assert_eq!(trigger.runs(), 0);
    /// trigger.send_wait_blocking(None).unwrap();
    /// assert_eq!(trigger.runs(), 1);
    /// ```
    pub fn runs(&self) -> u64 {
        self.inner.finished.load(Ordering::SeqCst)
    }
}
