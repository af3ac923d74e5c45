//! `Thread`: an OS thread with its own tokio runtime, a stop mechanism, and
//! its main function's result.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::launcher::Launcher;
use crate::result::AsyncResult;

/// Tells a [`Thread`]'s main function (or a service's listener) to stop:
/// await `cancelled()`, or check `is_cancelled()`. It is tokio-util's
/// `CancellationToken`.
///
/// ```
/// let t = remex::sync::Thread::with_main("m", |stop: remex::sync::StopToken| async move {
///     stop.cancelled().await;
///     "stopped"
/// });
/// t.start(true, None).unwrap();
/// t.stop(false, None).unwrap();
/// assert_eq!(t.get_blocking(Some(std::time::Duration::from_secs(5))).unwrap(), "stopped");
/// ```
pub type StopToken = tokio_util::sync::CancellationToken;

type Main<R> = Box<dyn FnOnce(StopToken) -> Pin<Box<dyn Future<Output = R>>> + Send>;

/// An OS thread running a current-thread tokio runtime: closures and
/// futures can be sent to it from anywhere (`apply`, `apply_async`,
/// `spawn`), it stops on request, and its main function's result (or
/// panic) can be fetched.
///
/// The main function gets a [`StopToken`]; `stop` cancels it. When main
/// returns, the thread ends: work still queued or running on it is dropped,
/// and the [`AsyncResult`]s waiting for that work fail with
/// [`Error::Gone`]. Dropping the last handle stops the thread without
/// waiting.
///
/// Built on `std::thread`, a tokio current-thread runtime, tokio-util's
/// `CancellationToken` and this crate's [`Launcher`] and [`Event`].
///
/// ```
/// use std::time::Duration;
/// use remex::sync::Thread;
///
/// let t = Thread::with_main("counter", |stop| async move {
///     let mut ticks = 0;
///     while !stop.is_cancelled() {
///         tokio::time::sleep(Duration::from_millis(1)).await;
///         ticks += 1;
///     }
///     ticks
/// });
/// t.start(true, Some(Duration::from_secs(5))).unwrap();
/// t.stop(true, Some(Duration::from_secs(5))).unwrap();
/// assert!(t.get_blocking(Some(Duration::ZERO)).unwrap() >= 0);
/// ```
pub struct Thread<R = ()> {
    inner: Arc<Inner<R>>,
}

impl<R> Clone for Thread<R> {
    fn clone(&self) -> Self {
        Thread {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<R> {
    name: String,
    main: Mutex<Option<Main<R>>>,
    launcher: Arc<Mutex<Option<Launcher>>>,
    start_error: Arc<Mutex<Option<Error>>>,
    started: Event,
    ended: Event,
    stop: StopToken,
    result: AsyncResult<R>,
}

impl<R> Drop for Inner<R> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl<R> fmt::Debug for Thread<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.inner.ended.is_set() {
            "ended"
        } else if self.inner.started.is_set() {
            "running"
        } else {
            "not started"
        };
        write!(f, "Thread({:?}, {state})", self.inner.name)
    }
}

impl Thread<()> {
    /// A thread whose main function waits for `stop`: a place to run work
    /// sent with `apply` and `spawn`.
    ///
    /// ```
    /// let t = remex::sync::Thread::new("t");
    /// t.start(true, None).unwrap();
    /// assert_eq!(t.apply(|| 1).unwrap(), 1);
    /// t.stop(true, None).unwrap();
    /// ```
    pub fn new(name: impl Into<String>) -> Thread<()> {
        Thread::with_main(name, |stop| async move { stop.cancelled().await })
    }
}

impl<R: Send + 'static> Thread<R> {
    /// A thread that will run `main` (given its [`StopToken`]) on its
    /// runtime; its output is what [`Thread::get`] returns. The future need
    /// not be `Send`: it never leaves the thread.
    ///
    /// ```
    /// let t = remex::sync::Thread::with_main("sum", |_stop| async { (1..=10).sum::<u32>() });
    /// t.start(true, None).unwrap();
    /// assert_eq!(t.get_blocking(Some(std::time::Duration::from_secs(5))).unwrap(), 55);
    /// ```
    pub fn with_main<F, Fut>(name: impl Into<String>, main: F) -> Thread<R>
    where
        F: FnOnce(StopToken) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let main: Main<R> = Box::new(move |stop| Box::pin(main(stop)));
        Thread {
            inner: Arc::new(Inner {
                name: name.into(),
                main: Mutex::new(Some(main)),
                launcher: Arc::new(Mutex::new(None)),
                start_error: Arc::new(Mutex::new(None)),
                started: Event::new(),
                ended: Event::new(),
                stop: StopToken::new(),
                result: AsyncResult::new(),
            }),
        }
    }

    /// The thread's name.
    ///
    /// ```
    /// let t = remex::sync::Thread::new("t");
    /// assert_eq!(t.name(), "t");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Starts the thread (a second call is ignored). With `wait`, returns
    /// once its runtime runs, or [`Error::Timeout`] after `timeout`; an
    /// error if the thread could not start.
    ///
    /// ```
    /// let t = remex::sync::Thread::new("t");
    /// t.start(true, Some(std::time::Duration::from_secs(5))).unwrap();
    /// t.start(true, None).unwrap(); // ignored
    /// ```
    pub fn start(&self, wait: bool, timeout: Option<Duration>) -> Result<()> {
        if let Some(main) = self.inner.main.lock().take() {
            let name = self.inner.name.clone();
            let launcher = self.inner.launcher.clone();
            let start_error = self.inner.start_error.clone();
            let (started, ended) = (self.inner.started.clone(), self.inner.ended.clone());
            let (stop, result) = (self.inner.stop.clone(), self.inner.result.clone());
            let spawned = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    match rt {
                        Ok(rt) => {
                            *launcher.lock() = Some(Launcher::with_owner(
                                rt.handle().clone(),
                                format!("thread {name:?}"),
                                std::thread::current().id(),
                            ));
                            started.set();
                            let out = rt.block_on(AssertUnwindSafe(main(stop)).catch_unwind());
                            result.set(out.map_err(Error::from_panic));
                            // Dropping the runtime drops the work still queued on
                            // it, which fails the results waiting for it.
                            drop(rt);
                        }
                        Err(e) => {
                            let e = Error::failed(e);
                            *start_error.lock() = Some(e.clone());
                            result.set(Err(e));
                            started.set();
                        }
                    }
                    ended.set();
                });
            if let Err(e) = spawned {
                let e = Error::failed(e);
                *self.inner.start_error.lock() = Some(e.clone());
                self.inner.result.set(Err(e));
                self.inner.started.set();
                self.inner.ended.set();
            }
        }
        if !wait {
            return Ok(());
        }
        if !self.inner.started.wait_blocking(timeout) {
            return Err(Error::Timeout {
                what: "the thread to start",
                after: timeout.unwrap_or_default(),
            });
        }
        self.launcher().map(drop)
    }

    /// Cancels the thread's [`StopToken`]. With `wait`, also
    /// [`Thread::join_blocking`]s with `timeout`.
    ///
    /// ```
    /// let t = remex::sync::Thread::new("t");
    /// t.start(true, None).unwrap();
    /// t.stop(true, Some(std::time::Duration::from_secs(5))).unwrap();
    /// assert!(t.ended());
    /// ```
    pub fn stop(&self, wait: bool, timeout: Option<Duration>) -> Result<()> {
        self.inner.stop.cancel();
        if wait {
            self.join_blocking(timeout)
        } else {
            Ok(())
        }
    }

    /// The thread's stop token (cancelled by `stop`).
    ///
    /// ```
    /// let t = remex::sync::Thread::new("t");
    /// let token = t.stop_token();
    /// t.start(true, None).unwrap();
    /// t.stop(false, None).unwrap();
    /// assert!(token.is_cancelled());
    /// ```
    pub fn stop_token(&self) -> StopToken {
        self.inner.stop.clone()
    }

    fn not_started(&self) -> Error {
        Error::Usage(format!("thread {:?} was not started", self.inner.name))
    }

    fn check_joinable(&self) -> Result<()> {
        if self.inner.main.lock().is_some() {
            Err(self.not_started())
        } else {
            Ok(())
        }
    }

    fn join_timeout(&self, timeout: Option<Duration>) -> Error {
        Error::Timeout {
            what: "the thread to end",
            after: timeout.unwrap_or_default(),
        }
    }

    /// Waits until the thread has ended.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let t = remex::sync::Thread::with_main("quick", |_stop| async {});
    /// t.start(true, None).unwrap();
    /// t.join(Some(std::time::Duration::from_secs(5))).await.unwrap();
    /// # }
    /// ```
    pub async fn join(&self, timeout: Option<Duration>) -> Result<()> {
        self.check_joinable()?;
        if self.inner.ended.wait(timeout).await {
            Ok(())
        } else {
            Err(self.join_timeout(timeout))
        }
    }

    /// [`Thread::join`] for threads.
    ///
    /// ```
    /// let t = remex::sync::Thread::new("t");
    /// assert!(t.join_blocking(None).is_err()); // not started
    /// t.start(true, None).unwrap();
    /// assert!(t.join_blocking(Some(std::time::Duration::from_millis(1))).unwrap_err().is_timeout());
    /// ```
    pub fn join_blocking(&self, timeout: Option<Duration>) -> Result<()> {
        self.check_joinable()?;
        if self.inner.ended.wait_blocking(timeout) {
            Ok(())
        } else {
            Err(self.join_timeout(timeout))
        }
    }

    /// Whether the thread has ended.
    ///
    /// ```
    /// let t = remex::sync::Thread::with_main("quick", |_stop| async {});
    /// assert!(!t.ended());
    /// t.start(true, None).unwrap();
    /// t.join_blocking(None).unwrap();
    /// assert!(t.ended());
    /// ```
    pub fn ended(&self) -> bool {
        self.inner.ended.is_set()
    }

    /// The launcher that runs work on this thread; an error before `start`.
    ///
    /// ```
    /// let t = remex::sync::Thread::new("t");
    /// assert!(t.launcher().is_err()); // not started
    /// t.start(true, None).unwrap();
    /// assert_eq!(t.launcher().unwrap().apply(|| 5).unwrap(), 5);
    /// ```
    pub fn launcher(&self) -> Result<Launcher> {
        if let Some(l) = self.inner.launcher.lock().clone() {
            return Ok(l);
        }
        // Started but without a runtime: the start error is the answer.
        Err(self
            .inner
            .start_error
            .lock()
            .clone()
            .unwrap_or_else(|| self.not_started()))
    }

    /// Runs `f` on the thread and waits for its value (or panic, or
    /// [`Error::Gone`] if the thread ends first).
    ///
    /// ```
    /// let t = remex::sync::Thread::new("t");
    /// t.start(true, None).unwrap();
    /// let on = t.apply(|| std::thread::current().name().map(String::from)).unwrap();
    /// assert_eq!(on.as_deref(), Some("t"));
    /// ```
    pub fn apply<F, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.launcher()?.apply(f)
    }

    /// Runs `f` on the thread without waiting.
    ///
    /// ```
    /// let t = remex::sync::Thread::new("t");
    /// t.start(true, None).unwrap();
    /// let r = t.apply_async(|| 3);
    /// assert_eq!(r.get_blocking(Some(std::time::Duration::from_secs(5))).unwrap(), 3);
    /// ```
    pub fn apply_async<F, T>(&self, f: F) -> AsyncResult<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.launcher() {
            Ok(l) => l.apply_async(f),
            Err(e) => failed(e),
        }
    }

    /// Runs a future on the thread, beside its main function.
    ///
    /// ```
    /// let t = remex::sync::Thread::new("t");
    /// t.start(true, None).unwrap();
    /// let r = t.spawn(async { tokio::time::sleep(std::time::Duration::from_millis(1)).await; 8 });
    /// assert_eq!(r.get_blocking(Some(std::time::Duration::from_secs(5))).unwrap(), 8);
    /// ```
    pub fn spawn<F>(&self, fut: F) -> AsyncResult<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.launcher() {
            Ok(l) => l.spawn(fut),
            Err(e) => failed(e),
        }
    }
}

impl<R: Clone + Send + 'static> Thread<R> {
    /// Waits for the thread to end, then gives its main function's value, or
    /// its panic as [`Error::Panicked`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let t = remex::sync::Thread::with_main("v", |_stop| async { 'v' });
    /// t.start(true, None).unwrap();
    /// assert_eq!(t.get(Some(std::time::Duration::from_secs(5))).await.unwrap(), 'v');
    /// # }
    /// ```
    pub async fn get(&self, timeout: Option<Duration>) -> Result<R> {
        self.join(timeout).await?;
        self.inner.result.get(Some(Duration::ZERO)).await
    }

    /// [`Thread::get`] for threads.
    ///
    /// ```
    /// let t = remex::sync::Thread::with_main("p", |_stop| async { panic!("main broke") });
    /// t.start(true, None).unwrap();
    /// let e = t.get_blocking(Some(std::time::Duration::from_secs(5))).unwrap_err();
    /// assert_eq!(e.to_string(), "panicked: main broke");
    /// ```
    pub fn get_blocking(&self, timeout: Option<Duration>) -> Result<R> {
        self.join_blocking(timeout)?;
        self.inner.result.get_blocking(Some(Duration::ZERO))
    }
}

fn failed<T>(e: Error) -> AsyncResult<T> {
    let r = AsyncResult::new();
    r.set(Err(e));
    r
}
