//! `Launcher`: run closures and futures on a given tokio runtime from any
//! thread, and get their results back.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::ThreadId;

use futures::FutureExt;
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::error::{Error, Result};
use crate::result::AsyncResult;

/// Runs work on the runtime it was made for, from any thread or task.
/// A closure's panic comes back as [`Error::Panicked`]; work that the
/// runtime drops unrun (it shut down) fails with [`Error::Gone`].
///
/// For a current-thread runtime (such as a [`crate::Thread`]'s), "the
/// runtime" is its thread: work runs there, one piece at a time. Calling
/// [`Launcher::apply`] on that very thread runs the closure in place
/// rather than deadlocking.
///
/// Built on `tokio::runtime::Handle` (spawning) and `flume` (handing the
/// result back to a blocked thread or an awaiting task).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let here = std::thread::current().id();
/// let launcher = remex::sync::Launcher::current().unwrap();
/// // From another thread, run a closure on this runtime's thread.
/// let ran_on = std::thread::spawn(move || launcher.apply(|| std::thread::current().id()));
/// # let ran_on = tokio::task::spawn_blocking(move || ran_on.join().unwrap());
/// assert_eq!(ran_on.await.unwrap().unwrap(), here);
/// # }
/// ```
#[derive(Clone)]
pub struct Launcher {
    handle: Handle,
    name: String,
    owner: Option<ThreadId>,
}

impl fmt::Debug for Launcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Launcher({})", self.name)
    }
}

fn run_caught<R>(f: impl FnOnce() -> R) -> Result<R> {
    catch_unwind(AssertUnwindSafe(f)).map_err(Error::from_panic)
}

impl Launcher {
    /// A launcher for the runtime the caller runs in. Made on a
    /// current-thread runtime, it knows that thread as its owner.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let l = remex::sync::Launcher::current().unwrap();
    /// assert_eq!(l.call(|| 2 + 2).await.unwrap(), 4);
    /// # }
    /// ```
    pub fn current() -> Result<Launcher> {
        let handle = Handle::try_current().map_err(|_| {
            Error::Usage(
                "Launcher::current() needs a tokio runtime: call it inside one, or use a remex_sync::Thread".into(),
            )
        })?;
        let owner = (handle.runtime_flavor() == RuntimeFlavor::CurrentThread)
            .then(|| std::thread::current().id());
        let name = match std::thread::current().name() {
            Some(n) => format!("the runtime of thread {n:?}"),
            None => "the launcher's runtime".to_string(),
        };
        Ok(Launcher {
            handle,
            name,
            owner,
        })
    }

    /// A launcher for `handle`'s runtime; `name` names it in errors.
    ///
    /// ```
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let l = remex::sync::Launcher::new(rt.handle().clone(), "my runtime");
    /// assert_eq!(l.apply(|| "ran").unwrap(), "ran");
    /// ```
    pub fn new(handle: Handle, name: impl Into<String>) -> Launcher {
        Launcher {
            handle,
            name: name.into(),
            owner: None,
        }
    }

    pub(crate) fn with_owner(handle: Handle, name: String, owner: ThreadId) -> Launcher {
        Launcher {
            handle,
            name,
            owner: Some(owner),
        }
    }

    /// Whether the caller runs on the launcher's own thread (a
    /// current-thread runtime's).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let l = remex::sync::Launcher::current().unwrap();
    /// assert!(l.is_owner());
    /// let other = l.clone();
    /// assert!(!std::thread::spawn(move || other.is_owner()).join().unwrap());
    /// # }
    /// ```
    pub fn is_owner(&self) -> bool {
        self.owner == Some(std::thread::current().id())
    }

    /// The runtime's handle.
    ///
    /// ```
    /// let t = remex::sync::Thread::new("h");
    /// t.start(true, None).unwrap();
    /// let h = t.launcher().unwrap().handle().clone();
    /// assert_eq!(h.runtime_flavor(), tokio::runtime::RuntimeFlavor::CurrentThread);
    /// ```
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    fn gone(&self) -> Error {
        Error::Gone {
            what: self.name.clone(),
            reason: "the runtime shut down".into(),
        }
    }

    /// Runs `f` there and blocks until it returns: its value, its panic as
    /// [`Error::Panicked`], or [`Error::Gone`]. Blocking: from async code
    /// use [`Launcher::call`].
    ///
    /// ```
    /// let t = remex::sync::Thread::new("worker");
    /// t.start(true, None).unwrap();
    /// let l = t.launcher().unwrap();
    /// let err = l.apply(|| -> u8 { panic!("bad input") }).unwrap_err();
    /// assert_eq!(err.to_string(), "panicked: bad input");
    /// ```
    pub fn apply<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        if self.is_owner() {
            return run_caught(f);
        }
        let (tx, rx) = flume::bounded(1);
        self.handle.spawn(async move {
            let _ = tx.send(run_caught(f));
        });
        rx.recv().map_err(|_| self.gone())?
    }

    /// [`Launcher::apply`] for async callers.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let t = remex::sync::Thread::new("io");
    /// t.start(true, None).unwrap();
    /// let name = t.launcher().unwrap()
    ///     .call(|| std::thread::current().name().map(String::from)).await.unwrap();
    /// assert_eq!(name.as_deref(), Some("io"));
    /// # }
    /// ```
    pub async fn call<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = flume::bounded(1);
        self.handle.spawn(async move {
            let _ = tx.send(run_caught(f));
        });
        rx.recv_async().await.map_err(|_| self.gone())?
    }

    /// Runs `f` there without waiting; the [`AsyncResult`] receives its
    /// outcome.
    ///
    /// ```
    /// let t = remex::sync::Thread::new("worker");
    /// t.start(true, None).unwrap();
    /// let r = t.launcher().unwrap().apply_async(|| 6 * 7);
    /// assert_eq!(r.get_blocking(Some(std::time::Duration::from_secs(5))).unwrap(), 42);
    /// ```
    pub fn apply_async<F, R>(&self, f: F) -> AsyncResult<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (promise, result) = AsyncResult::promise(self.name.clone());
        self.handle.spawn(async move { promise.set(run_caught(f)) });
        result
    }

    /// Runs a future there; the [`AsyncResult`] receives its output, or
    /// its panic.
    ///
    /// ```
    /// let t = remex::sync::Thread::new("worker");
    /// t.start(true, None).unwrap();
    /// let r = t.launcher().unwrap().spawn(async { tokio::task::yield_now().await; "done" });
    /// assert_eq!(r.get_blocking(Some(std::time::Duration::from_secs(5))).unwrap(), "done");
    /// ```
    pub fn spawn<F>(&self, fut: F) -> AsyncResult<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (promise, result) = AsyncResult::promise(self.name.clone());
        self.handle.spawn(async move {
            let out = AssertUnwindSafe(fut).catch_unwind().await;
            promise.set(out.map_err(Error::from_panic));
        });
        result
    }
}
