//! `Service`: a listener feeding a consumer, in one of three modes, under a
//! [`Lifecycle`] (the seed's Subscriber).
//!
//! Over 500 lines: about 410 are documentation and runnable examples; the
//! code is under 500.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::launcher::Launcher;
use crate::lifecycle::{Lifecycle, LifecycleState};
use crate::queue::Queue;
use crate::result::AsyncResult;
use crate::thread::{StopToken, Thread};

/// How code runs: a service's listener and consumer, or a channel's
/// callback (`Channel::set_callback_in`): in turn on the caller's task
/// (`Sequential`), as tokio tasks (`Concurrent`) or on threads of their
/// own (`Parallel`).
///
/// ```
/// use remex::sync::{RunMode, Service};
/// let svc = Service::builder("writer").mode(RunMode::Parallel).build(
///     |feed: remex::sync::Feed<u8>| async move { feed.ready(); Ok(()) },
///     || |_| Ok(()),
/// );
/// assert_eq!(svc.mode(), RunMode::Parallel);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunMode {
    /// One task: each event is consumed inside the listener's `send`, before
    /// the listener goes on.
    #[default]
    Sequential,
    /// Two tasks on one thread, with a queue between them: the listener
    /// keeps receiving while the consumer waits for I/O, but a consumer
    /// that blocks the thread holds up both.
    Concurrent,
    /// Separate threads with a queue between them: a consumer that blocks
    /// (writing files) never delays the listener.
    Parallel,
}

/// An error from a consumer or listener.
///
/// ```
/// use remex::sync::Failure;
/// let f = Failure::non_fatal(std::io::Error::other("disk full"));
/// assert_eq!(f, Failure::NonFatal("disk full".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The service goes to Fault with this reason but keeps handling events.
    NonFatal(String),
    /// The service ends, in Fault with this reason.
    Fatal(String),
}

impl Failure {
    /// A failure that ends the service.
    ///
    /// ```
    /// let f = remex::sync::Failure::fatal("disk gone");
    /// assert_eq!(f, remex::sync::Failure::Fatal("disk gone".into()));
    /// ```
    pub fn fatal(reason: impl fmt::Display) -> Failure {
        Failure::Fatal(reason.to_string())
    }

    /// A failure the service survives (in Fault).
    ///
    /// ```
    /// let f = remex::sync::Failure::non_fatal(format!("point {} rejected", 3));
    /// assert!(matches!(f, remex::sync::Failure::NonFatal(_)));
    /// ```
    pub fn non_fatal(reason: impl fmt::Display) -> Failure {
        Failure::NonFatal(reason.to_string())
    }

    fn reason(&self) -> &str {
        match self {
            Failure::NonFatal(r) | Failure::Fatal(r) => r,
        }
    }
}

/// Handles a service's events, one at a time, in order. Closures
/// `FnMut(E) -> Result<(), Failure>` are consumers; implement the trait to
/// also act at the end of a run.
///
/// ```
/// use remex::sync::{Consumer, Failure};
/// struct Sum(i64, std::sync::Arc<std::sync::Mutex<i64>>);
/// impl Consumer<i64> for Sum {
///     fn consume(&mut self, x: i64) -> Result<(), Failure> {
///         self.0 = self.0.checked_add(x).ok_or_else(|| Failure::fatal("overflow"))?;
///         Ok(())
///     }
///     fn finish(&mut self) -> Result<(), Failure> {
///         *self.1.lock().unwrap() = self.0; // publish once, at the end
///         Ok(())
///     }
/// }
/// let out = std::sync::Arc::new(std::sync::Mutex::new(0));
/// let mut c = Sum(0, out.clone());
/// c.consume(2).unwrap();
/// c.consume(3).unwrap();
/// c.finish().unwrap();
/// assert_eq!(*out.lock().unwrap(), 5);
/// ```
pub trait Consumer<E>: Send + 'static {
    /// Handles one event.
    fn consume(&mut self, event: E) -> std::result::Result<(), Failure>;

    /// Called once after the last event of a run that was not killed
    /// (flush and close here); its failure counts like `consume`'s.
    fn finish(&mut self) -> std::result::Result<(), Failure> {
        Ok(())
    }
}

impl<E, F> Consumer<E> for F
where
    F: FnMut(E) -> std::result::Result<(), Failure> + Send + 'static,
{
    fn consume(&mut self, event: E) -> std::result::Result<(), Failure> {
        self(event)
    }
}

type BoxConsumer<E> = Box<dyn Consumer<E>>;
type ListenFn<E> = Arc<
    dyn Fn(Feed<E>) -> Pin<Box<dyn Future<Output = std::result::Result<(), Failure>> + Send>>
        + Send
        + Sync,
>;
type MakeConsumer<E> = Arc<dyn Fn() -> BoxConsumer<E> + Send + Sync>;

/// What one run shares between its listener, its consumer and its service.
struct Run {
    name: String,
    stop: StopToken,
    kill: StopToken,
    killed: AtomicBool,
    fatal: Mutex<Option<String>>,
    lifecycle: Lifecycle,
}

impl Run {
    /// Applies a consumer's outcome; `false` when the run must end.
    fn handle(&self, outcome: std::result::Result<(), Failure>) -> bool {
        match outcome {
            Ok(()) => true,
            Err(Failure::NonFatal(r)) => {
                tracing::warn!(service = %self.name, "non-fatal: {r}");
                self.lifecycle.fault(r);
                true
            }
            Err(Failure::Fatal(r)) => {
                tracing::warn!(service = %self.name, "fatal: {r}");
                self.fatal.lock().get_or_insert(r);
                self.stop.cancel();
                false
            }
        }
    }

    fn dead(&self) -> bool {
        self.killed.load(Ordering::SeqCst) || self.fatal.lock().is_some()
    }
}

enum Sink<E> {
    Inline(Arc<Mutex<BoxConsumer<E>>>),
    Queue(Queue<E>),
}

/// The listener's side of a service: `send` events to the consumer, say
/// when it is `ready`, and watch for `stopped`.
///
/// ```
/// use remex::sync::{Failure, Feed, Service, LifecycleState};
/// let svc = Service::builder("feeder").build(
///     |mut feed: Feed<&'static str>| async move {
///         feed.ready(); // subscribed: start() returns now
///         for word in ["a", "b"] {
///             feed.send(word).await.map_err(Failure::fatal)?;
///         }
///         feed.stopped().await; // until stop()
///         Ok(())
///     },
///     || |_| Ok(()),
/// );
/// svc.start(true, None).unwrap();
/// svc.stop(true, Some(std::time::Duration::from_secs(5))).unwrap();
/// assert_eq!(svc.state(), LifecycleState::Off);
/// ```
pub struct Feed<E> {
    sink: Sink<E>,
    run: Arc<Run>,
}

impl<E> fmt::Debug for Feed<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Feed(for {})", self.run.name)
    }
}

impl<E: Send + 'static> Feed<E> {
    /// Hands an event to the consumer (in [`RunMode::Sequential`], runs it).
    /// An error once the run was killed or its consumer failed fatally:
    /// the listener should return then. After a graceful `stop`, sends
    /// still go through, so that nothing received is lost.
    ///
    /// ```
    /// use remex::sync::{Failure, Feed, Service, LifecycleState};
    /// let svc = Service::builder("s").build(
    ///     |mut feed: Feed<u8>| async move {
    ///         // After a fatal consumer failure, send fails: the listener returns.
    ///         while feed.send(1).await.is_ok() {}
    ///         Ok(())
    ///     },
    ///     || |_| Err(Failure::fatal("no thanks")),
    /// );
    /// svc.start(true, None).unwrap();
    /// assert_eq!(svc.join_blocking(None).unwrap(), LifecycleState::Fault("no thanks".into()));
    /// ```
    pub async fn send(&mut self, event: E) -> Result<()> {
        self.ready();
        if self.run.dead() {
            return Err(Error::Closed {
                what: "the service",
            });
        }
        match &self.sink {
            Sink::Inline(c) => {
                let outcome = c.lock().consume(event);
                if self.run.handle(outcome) {
                    Ok(())
                } else {
                    Err(Error::Closed {
                        what: "the service",
                    })
                }
            }
            Sink::Queue(q) => q.put(event).await,
        }
    }

    /// The listener is ready (subscribed, connected): the service is On and
    /// `start(wait)` returns. The first `send` implies it.
    ///
    /// ```
    /// use remex::sync::{Feed, Service, LifecycleState};
    /// let svc = Service::builder("s").build(
    ///     |feed: Feed<u8>| async move { feed.ready(); feed.stopped().await; Ok(()) },
    ///     || |_| Ok(()),
    /// );
    /// svc.start(true, None).unwrap(); // returned because the listener said ready
    /// assert_eq!(svc.state(), LifecycleState::On);
    /// svc.stop(true, None).unwrap();
    /// ```
    pub fn ready(&self) {
        self.run.lifecycle.ready();
    }

    /// Resolves when the service is asked to stop (or killed).
    ///
    /// ```
    /// use remex::sync::{Feed, Service, LifecycleState};
    /// let svc = Service::builder("s").build(
    ///     |feed: Feed<u8>| async move { feed.ready(); feed.stopped().await; Ok(()) },
    ///     || |_| Ok(()),
    /// );
    /// svc.start(true, None).unwrap();
    /// svc.stop(true, Some(std::time::Duration::from_secs(5))).unwrap(); // the listener saw stopped()
    /// assert_eq!(svc.state(), LifecycleState::Off);
    /// ```
    pub async fn stopped(&self) {
        self.run.stop.cancelled().await
    }

    /// Whether the service is asked to stop.
    ///
    /// ```
    /// use remex::sync::{Feed, Service};
    /// let svc = Service::builder("poller").build(
    ///     |feed: Feed<u8>| async move {
    ///         feed.ready();
    ///         while !feed.is_stopped() {
    ///             tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    ///         }
    ///         Ok(())
    ///     },
    ///     || |_| Ok(()),
    /// );
    /// svc.start(true, None).unwrap();
    /// svc.stop(true, Some(std::time::Duration::from_secs(5))).unwrap();
    /// ```
    pub fn is_stopped(&self) -> bool {
        self.run.stop.is_cancelled()
    }

    /// The service's lifecycle.
    ///
    /// ```
    /// use remex::sync::{Feed, Service, LifecycleState};
    /// let svc = Service::builder("s").build(
    ///     |feed: Feed<u8>| async move {
    ///         feed.ready();
    ///         assert_eq!(feed.lifecycle().state(), LifecycleState::On);
    ///         Ok(())
    ///     },
    ///     || |_| Ok(()),
    /// );
    /// svc.start(true, None).unwrap();
    /// assert_eq!(svc.join_blocking(None).unwrap(), LifecycleState::Off);
    /// ```
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.run.lifecycle
    }
}

/// Builds a [`Service`].
///
/// ```
/// use remex::sync::{RunMode, Service};
/// let builder = Service::builder("writer").mode(RunMode::Concurrent).capacity(16);
/// let svc = builder.build(|feed: remex::sync::Feed<u8>| async move { feed.ready(); Ok(()) }, || |_| Ok(()));
/// assert_eq!(svc.mode(), RunMode::Concurrent);
/// ```
pub struct ServiceBuilder {
    name: String,
    mode: RunMode,
    capacity: usize,
    launcher: Option<Launcher>,
}

impl fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceBuilder({}, {:?})", self.name, self.mode)
    }
}

impl ServiceBuilder {
    /// The mode (default [`RunMode::Sequential`]).
    ///
    /// ```
    /// let svc = remex::sync::Service::builder("p").mode(remex::sync::RunMode::Parallel)
    ///     .build(|_f: remex::sync::Feed<u8>| async { Ok(()) }, || |_| Ok(()));
    /// assert_eq!(svc.mode(), remex::sync::RunMode::Parallel);
    /// ```
    pub fn mode(mut self, mode: RunMode) -> Self {
        self.mode = mode;
        self
    }

    /// How many events may wait between listener and consumer in the
    /// concurrent and parallel modes (default 1024); a full queue makes the
    /// listener's `send` wait, so memory stays bounded.
    ///
    /// ```
    /// // A listener that runs ahead of a slow consumer waits once 4 events queue.
    /// let svc = remex::sync::Service::builder("small").mode(remex::sync::RunMode::Parallel).capacity(4)
    ///     .build(|_f: remex::sync::Feed<u8>| async { Ok(()) }, || |_| Ok(()));
    /// assert_eq!(svc.name(), "small");
    /// ```
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Runs the listener on this launcher's runtime instead of a thread of
    /// the service's own.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use remex::sync::{Launcher, Service, LifecycleState};
    /// let svc = Service::builder("here").runtime(Launcher::current().unwrap())
    ///     .build(|feed: remex::sync::Feed<u8>| async move { feed.ready(); Ok(()) }, || |_| Ok(()));
    /// svc.start(false, None).unwrap();
    /// assert_eq!(svc.join(Some(std::time::Duration::from_secs(5))).await.unwrap(), LifecycleState::Off);
    /// # }
    /// ```
    pub fn runtime(mut self, launcher: Launcher) -> Self {
        self.launcher = Some(launcher);
        self
    }

    /// The service: `listener` is called once per run with the [`Feed`];
    /// `consumer` makes the consumer of each run, on the consumer's thread.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// let total = Arc::new(AtomicU32::new(0));
    /// let t = total.clone();
    /// let svc = remex::sync::Service::builder("adder").build(
    ///     |mut feed: remex::sync::Feed<u32>| async move {
    ///         for i in 1..=3 { feed.send(i).await.map_err(remex::sync::Failure::fatal)?; }
    ///         Ok(())
    ///     },
    ///     move || { let t = t.clone(); move |i| { t.fetch_add(i, Ordering::SeqCst); Ok(()) } },
    /// );
    /// svc.start(true, None).unwrap();
    /// svc.join_blocking(None).unwrap();
    /// assert_eq!(total.load(Ordering::SeqCst), 6);
    /// ```
    pub fn build<E, L, Fut, M, C>(self, listener: L, consumer: M) -> Service<E>
    where
        E: Send + 'static,
        L: Fn(Feed<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), Failure>> + Send + 'static,
        M: Fn() -> C + Send + Sync + 'static,
        C: Consumer<E>,
    {
        Service {
            inner: Arc::new(Inner {
                name: self.name,
                mode: self.mode,
                capacity: self.capacity,
                launcher: self.launcher,
                listener: Arc::new(move |feed| Box::pin(listener(feed))),
                consumer: Arc::new(move || Box::new(consumer())),
                lifecycle: Lifecycle::new(),
                run: Mutex::new(None),
            }),
        }
    }
}

/// A listener feeding a consumer, in a [`RunMode`], with the lifecycle of the
/// seed's Subscriber: Init → On (`start`), On → Off (`stop`, or the
/// listener ends), On → Fault (`kill`, or a failure), restartable from Off
/// or Fault; disallowed transitions are ignored (see [`Lifecycle`]).
///
/// `stop` is graceful: the listener sees [`Feed::stopped`] and returns,
/// and every event it sent is consumed before the service is Off. `kill`
/// drops the listener at its next `.await` and the events not yet
/// consumed, and ends in Fault("killed").
///
/// Built on [`Thread`] (the listener's runtime, unless given one), a
/// [`Queue`] (between listener and consumer), a plain OS thread for the
/// parallel consumer, and [`Lifecycle`].
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use remex::sync::{Failure, RunMode, Service, LifecycleState};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let s = seen.clone();
/// let svc = Service::builder("counter").mode(RunMode::Parallel).build(
///     |mut feed| async move {
///         feed.ready();
///         for i in 0..5 {
///             feed.send(i).await.map_err(Failure::fatal)?;
///         }
///         Ok(()) // the source ended
///     },
///     move || { let s = s.clone(); move |i| { s.lock().unwrap().push(i); Ok(()) } },
/// );
/// svc.start(true, Some(Duration::from_secs(5))).unwrap();
/// assert_eq!(svc.join_blocking(Some(Duration::from_secs(5))).unwrap(), LifecycleState::Off);
/// assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2, 3, 4]);
/// ```
pub struct Service<E> {
    inner: Arc<Inner<E>>,
}

impl<E> Clone for Service<E> {
    fn clone(&self) -> Self {
        Service {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<E> {
    name: String,
    mode: RunMode,
    capacity: usize,
    launcher: Option<Launcher>,
    listener: ListenFn<E>,
    consumer: MakeConsumer<E>,
    lifecycle: Lifecycle,
    run: Mutex<Option<Current<E>>>,
}

/// The run under way.
struct Current<E> {
    run: Arc<Run>,
    queue: Queue<E>,
    _thread: Option<Thread>,
}

impl<E> fmt::Debug for Service<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Service({}, {:?}, {})",
            self.inner.name,
            self.inner.mode,
            self.inner.lifecycle.state()
        )
    }
}

impl Service<()> {
    /// Starts building a service named `name`.
    ///
    /// ```
    /// let b = remex::sync::Service::builder("session");
    /// let svc = b.build(|_f: remex::sync::Feed<()>| async { Ok(()) }, || |_| Ok(()));
    /// assert_eq!(svc.name(), "session");
    /// ```
    pub fn builder(name: impl Into<String>) -> ServiceBuilder {
        ServiceBuilder {
            name: name.into(),
            mode: RunMode::Sequential,
            capacity: 1024,
            launcher: None,
        }
    }
}

impl<E: Send + 'static> Service<E> {
    /// The service's name.
    ///
    /// ```
    /// use remex::sync::{Feed, Service, LifecycleState};
    /// let svc = Service::builder("s").build(
    ///     |feed: Feed<u8>| async move { feed.ready(); feed.stopped().await; Ok(()) },
    ///     || |_| Ok(()),
    /// );
    /// assert_eq!(svc.name(), "s");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The service's mode.
    ///
    /// ```
    /// use remex::sync::{Feed, Service, LifecycleState};
    /// let svc = Service::builder("s").build(
    ///     |feed: Feed<u8>| async move { feed.ready(); feed.stopped().await; Ok(()) },
    ///     || |_| Ok(()),
    /// );
    /// assert_eq!(svc.mode(), remex::sync::RunMode::Sequential); // the default
    /// ```
    pub fn mode(&self) -> RunMode {
        self.inner.mode
    }

    /// The lifecycle (state, reason, subscriptions).
    ///
    /// ```
    /// use remex::sync::{Feed, Service, LifecycleState};
    /// let svc = Service::builder("s").build(
    ///     |feed: Feed<u8>| async move { feed.ready(); feed.stopped().await; Ok(()) },
    ///     || |_| Ok(()),
    /// );
    /// let mut changes = svc.lifecycle().subscribe();
    /// svc.start(true, None).unwrap();
    /// assert_eq!(*changes.borrow_and_update(), LifecycleState::On);
    /// svc.stop(true, None).unwrap();
    /// ```
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.inner.lifecycle
    }

    /// The state.
    ///
    /// ```
    /// use remex::sync::{Feed, Service, LifecycleState};
    /// let svc = Service::builder("s").build(
    ///     |feed: Feed<u8>| async move { feed.ready(); feed.stopped().await; Ok(()) },
    ///     || |_| Ok(()),
    /// );
    /// assert_eq!(svc.state(), LifecycleState::Init);
    /// svc.start(true, None).unwrap();
    /// assert_eq!(svc.state(), LifecycleState::On);
    /// svc.kill(true, None).unwrap();
    /// assert_eq!(svc.state(), LifecycleState::Fault("killed".into()));
    /// ```
    pub fn state(&self) -> LifecycleState {
        self.inner.lifecycle.state()
    }

    /// Whether the last run has ended.
    ///
    /// ```
    /// use remex::sync::{Feed, Service, LifecycleState};
    /// let svc = Service::builder("s").build(
    ///     |feed: Feed<u8>| async move { feed.ready(); feed.stopped().await; Ok(()) },
    ///     || |_| Ok(()),
    /// );
    /// assert!(!svc.done());
    /// svc.start(true, None).unwrap();
    /// svc.stop(true, None).unwrap();
    /// assert!(svc.done());
    /// ```
    pub fn done(&self) -> bool {
        self.inner.lifecycle.done()
    }

    /// How long the last run has been (or was) On.
    ///
    /// ```
    /// use remex::sync::{Feed, Service, LifecycleState};
    /// let svc = Service::builder("s").build(
    ///     |feed: Feed<u8>| async move { feed.ready(); feed.stopped().await; Ok(()) },
    ///     || |_| Ok(()),
    /// );
    /// svc.start(true, None).unwrap();
    /// std::thread::sleep(std::time::Duration::from_millis(5));
    /// svc.stop(true, None).unwrap();
    /// assert!(svc.duration() >= std::time::Duration::from_millis(5));
    /// ```
    pub fn duration(&self) -> Duration {
        self.inner.lifecycle.duration()
    }

    /// Starts a run: Init, Off or Fault → On (ignored while running). With
    /// `wait`, blocks until the listener is ready; an error if the run ends
    /// first, or on timeout. From async code, start with `wait = false` and
    /// await [`Lifecycle::wait_ready`].
    ///
    /// ```
    /// use remex::sync::{Feed, Service, LifecycleState};
    /// let svc = Service::builder("s").build(
    ///     |feed: Feed<u8>| async move { feed.ready(); feed.stopped().await; Ok(()) },
    ///     || |_| Ok(()),
    /// );
    /// svc.start(true, Some(std::time::Duration::from_secs(5))).unwrap();
    /// svc.start(true, None).unwrap(); // ignored while running
    /// svc.stop(true, None).unwrap();
    /// svc.start(true, None).unwrap(); // a restart
    /// svc.stop(true, None).unwrap();
    /// ```
    pub fn start(&self, wait: bool, timeout: Option<Duration>) -> Result<()> {
        self.launch()?;
        if wait {
            self.inner
                .lifecycle
                .wait_ready_blocking(timeout)
                .map_err(|e| {
                    Error::failed(format!("service {:?} did not start: {e}", self.inner.name))
                })
        } else {
            Ok(())
        }
    }

    fn launch(&self) -> Result<()> {
        let inner = &self.inner;
        if !inner.lifecycle.begin() {
            return Ok(());
        }
        let run = Arc::new(Run {
            name: inner.name.clone(),
            stop: StopToken::new(),
            kill: StopToken::new(),
            killed: AtomicBool::new(false),
            fatal: Mutex::new(None),
            lifecycle: inner.lifecycle.clone(),
        });
        let (launcher, thread) = match &inner.launcher {
            Some(l) => (l.clone(), None),
            None => {
                let t = Thread::new(format!("{}-listener", inner.name));
                if let Err(e) = t.start(true, Some(Duration::from_secs(10))) {
                    inner.lifecycle.finish(Err(e.to_string()));
                    return Err(e);
                }
                (t.launcher()?, Some(t))
            }
        };
        let queue = Queue::bounded(inner.capacity);
        let body = run_body(
            inner.mode,
            inner.listener.clone(),
            inner.consumer.clone(),
            run.clone(),
            queue.clone(),
        );
        let stopper = thread.as_ref().map(|t| t.stop_token());
        let r = run.clone();
        launcher.spawn(async move {
            // Kill drops the listener at its next await.
            let outcome = tokio::select! {
                o = body => o,
                _ = r.kill.cancelled() => Err("killed".to_string()),
            };
            let outcome = match r.fatal.lock().clone() {
                Some(f) => Err(f),
                None => outcome,
            };
            r.lifecycle.finish(outcome);
            if let Some(s) = stopper {
                s.cancel();
            }
        });
        *inner.run.lock() = Some(Current {
            run,
            queue,
            _thread: thread,
        });
        Ok(())
    }

    /// Asks the listener to stop (On → Off once every sent event is
    /// consumed). With `wait`, blocks until the run ended, at most
    /// `timeout`. Ignored when not running.
    ///
    /// ```
    /// use remex::sync::{Feed, Service, LifecycleState};
    /// let svc = Service::builder("s").build(
    ///     |feed: Feed<u8>| async move { feed.ready(); feed.stopped().await; Ok(()) },
    ///     || |_| Ok(()),
    /// );
    /// svc.stop(true, None).unwrap(); // ignored before a start
    /// assert_eq!(svc.state(), LifecycleState::Init);
    /// svc.start(true, None).unwrap();
    /// svc.stop(true, Some(std::time::Duration::from_secs(5))).unwrap();
    /// assert_eq!(svc.state(), LifecycleState::Off);
    /// ```
    pub fn stop(&self, wait: bool, timeout: Option<Duration>) -> Result<()> {
        if let Some(c) = &*self.inner.run.lock() {
            c.run.stop.cancel();
        }
        if wait {
            self.join_blocking(timeout).map(drop)
        } else {
            Ok(())
        }
    }

    /// Ends the run now: the listener is dropped at its next `.await`,
    /// events not yet consumed are dropped, and the state is
    /// Fault("killed"). Ignored when not running.
    ///
    /// ```
    /// use remex::sync::{Feed, Service, LifecycleState};
    /// // A listener that never looks at stop(): kill still ends it.
    /// let svc = Service::builder("deaf").build(
    ///     |feed: Feed<u8>| async move { feed.ready(); std::future::pending::<()>().await; Ok(()) },
    ///     || |_| Ok(()),
    /// );
    /// svc.start(true, None).unwrap();
    /// svc.kill(true, Some(std::time::Duration::from_secs(5))).unwrap();
    /// assert_eq!(svc.state(), LifecycleState::Fault("killed".into()));
    /// ```
    pub fn kill(&self, wait: bool, timeout: Option<Duration>) -> Result<()> {
        if self.inner.lifecycle.is_running() {
            if let Some(c) = &*self.inner.run.lock() {
                c.run.killed.store(true, Ordering::SeqCst);
                self.inner.lifecycle.fault("killed");
                c.run.stop.cancel();
                c.run.kill.cancel();
                c.queue.close();
            }
        }
        if wait {
            self.join_blocking(timeout).map(drop)
        } else {
            Ok(())
        }
    }

    /// Waits until the run has ended and gives the final state (at once if
    /// none is under way).
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use remex::sync::{Feed, Service, LifecycleState};
    /// let svc = Service::builder("s").build(|_f: Feed<u8>| async { Ok(()) }, || |_| Ok(()));
    /// svc.start(false, None).unwrap();
    /// assert_eq!(svc.join(Some(std::time::Duration::from_secs(5))).await.unwrap(), LifecycleState::Off);
    /// # }
    /// ```
    pub async fn join(&self, timeout: Option<Duration>) -> Result<LifecycleState> {
        self.inner.lifecycle.join(timeout).await
    }

    /// [`Service::join`] for threads.
    ///
    /// ```
    /// use remex::sync::{Feed, Service, LifecycleState};
    /// let svc = Service::builder("s").build(
    ///     |feed: Feed<u8>| async move { feed.ready(); feed.stopped().await; Ok(()) },
    ///     || |_| Ok(()),
    /// );
    /// svc.start(true, None).unwrap();
    /// assert!(svc.join_blocking(Some(std::time::Duration::from_millis(1))).unwrap_err().is_timeout());
    /// svc.stop(false, None).unwrap();
    /// assert_eq!(svc.join_blocking(Some(std::time::Duration::from_secs(5))).unwrap(), LifecycleState::Off);
    /// ```
    pub fn join_blocking(&self, timeout: Option<Duration>) -> Result<LifecycleState> {
        self.inner.lifecycle.join_blocking(timeout)
    }
}

/// One run: the listener and the consumer, wired for the mode. Gives the
/// listener's outcome once every event it sent was handled.
fn run_body<E: Send + 'static>(
    mode: RunMode,
    listener: ListenFn<E>,
    make: MakeConsumer<E>,
    run: Arc<Run>,
    queue: Queue<E>,
) -> Pin<Box<dyn Future<Output = std::result::Result<(), String>> + Send>> {
    let reason = |f: Failure| f.reason().to_string();
    match mode {
        RunMode::Sequential => Box::pin(async move {
            let consumer = Arc::new(Mutex::new(make()));
            let feed = Feed {
                sink: Sink::Inline(consumer.clone()),
                run: run.clone(),
            };
            let outcome = listener(feed).await;
            if !run.dead() {
                let f = consumer.lock().finish();
                run.handle(f);
            }
            outcome.map_err(reason)
        }),
        RunMode::Concurrent => Box::pin(async move {
            let feed = Feed {
                sink: Sink::Queue(queue.clone()),
                run: run.clone(),
            };
            let listened = listener(feed);
            let q = queue.clone();
            let listen = async move {
                let outcome = listened.await;
                q.close();
                outcome
            };
            let consume = async {
                let mut c = make();
                while let Ok(event) = queue.get(None).await {
                    if !run.dead() && !run.handle(c.consume(event)) {
                        queue.close();
                    }
                }
                if !run.dead() {
                    run.handle(c.finish());
                }
            };
            let (outcome, ()) = tokio::join!(listen, consume);
            outcome.map_err(reason)
        }),
        RunMode::Parallel => Box::pin(async move {
            let name = format!("{}-consumer", run.name);
            let (promise, consumed) = AsyncResult::promise(name.clone());
            let (r, q) = (run.clone(), queue.clone());
            let spawned = std::thread::Builder::new().name(name).spawn(move || {
                let mut c = make();
                while let Ok(event) = q.get_blocking(None) {
                    if !r.dead() && !r.handle(c.consume(event)) {
                        q.close();
                    }
                }
                if !r.dead() {
                    r.handle(c.finish());
                }
                promise.set(Ok(()));
            });
            if let Err(e) = spawned {
                return Err(format!("cannot start the consumer thread: {e}"));
            }
            let feed = Feed {
                sink: Sink::Queue(queue.clone()),
                run: run.clone(),
            };
            let outcome = listener(feed).await;
            queue.close();
            // The consumer drains the queue, then ends.
            let _ = consumed.get(None).await;
            outcome.map_err(reason)
        }),
    }
}
