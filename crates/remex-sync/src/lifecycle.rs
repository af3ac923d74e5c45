//! `Lifecycle`: the states of a service (Init, On, Off, Fault) and the
//! transitions between them, shared by whoever runs and watches it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::wait;

/// Where a service (or a gateway) is in its life.
///
/// ```
/// use remex::sync::LifecycleState;
/// assert_eq!(LifecycleState::Fault("disk full".into()).to_string(), "FAULT (disk full)");
/// assert_eq!(LifecycleState::On.to_string(), "ON");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleState {
    /// Never started.
    Init,
    /// Running.
    On,
    /// Ended normally.
    Off,
    /// Failed, with the reason. A run that faults keeps this state, even
    /// after it ends, until a restart.
    Fault(String),
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LifecycleState::Init => f.write_str("INIT"),
            LifecycleState::On => f.write_str("ON"),
            LifecycleState::Off => f.write_str("OFF"),
            LifecycleState::Fault(r) => write!(f, "FAULT ({r})"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Starting,
    Running,
    Ended,
}

/// The state machine of a service. Transitions that the current state does
/// not allow are ignored (and report `false`):
///
/// | from | `begin` + `ready` | `fault` | `finish(Ok)` | `finish(Err)` |
/// |---|---|---|---|---|
/// | Init | On | ignored | ignored | ignored |
/// | On | ignored | Fault | Off | Fault |
/// | Fault, running | ignored | ignored (first reason holds) | stays Fault | stays Fault |
/// | Off or Fault, ended | On (a restart) | ignored | ignored | ignored |
///
/// A run that ends before it was ready (`begin`, then `finish` without
/// `ready`) goes from its old state to Off or Fault.
///
/// Clones share the state. Built on a `parking_lot` mutex, `event-listener`
/// for `join`, and a `tokio::sync::watch` for subscribers.
///
/// ```
/// use remex::sync::{Lifecycle, LifecycleState};
/// let lc = Lifecycle::new();
/// assert!(!lc.fault("too early")); // Init: ignored
/// assert!(lc.begin() && lc.ready());
/// assert_eq!(lc.state(), LifecycleState::On);
/// assert!(lc.fault("disk full"));
/// assert!(lc.finish(Ok(())));
/// assert_eq!(lc.state(), LifecycleState::Fault("disk full".into())); // Fault holds
/// assert!(lc.done());
/// ```
#[derive(Clone)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

struct Inner {
    st: Mutex<St>,
    tx: watch::Sender<LifecycleState>,
    changed: event_listener::Event,
}

struct St {
    state: LifecycleState,
    phase: Phase,
    started_at: Option<Instant>,
    ended_at: Option<Instant>,
    /// The current (or last) run got to On.
    was_ready: bool,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}

impl fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.st.lock();
        write!(f, "Lifecycle({}, {:?})", st.state, st.phase)
    }
}

impl Lifecycle {
    /// A lifecycle in Init.
    ///
    /// ```
    /// use remex::sync::{Lifecycle, LifecycleState};
    /// let lc = Lifecycle::new();
    /// assert_eq!(lc.state(), LifecycleState::Init);
    /// ```
    pub fn new() -> Lifecycle {
        Lifecycle {
            inner: Arc::new(Inner {
                st: Mutex::new(St {
                    state: LifecycleState::Init,
                    phase: Phase::Idle,
                    started_at: None,
                    ended_at: None,
                    was_ready: false,
                }),
                tx: watch::Sender::new(LifecycleState::Init),
                changed: event_listener::Event::new(),
            }),
        }
    }

    fn update(&self, f: impl FnOnce(&mut St) -> bool) -> bool {
        let (changed, state) = {
            let mut st = self.inner.st.lock();
            let changed = f(&mut st);
            (changed, st.state.clone())
        };
        if changed {
            self.inner.tx.send_replace(state);
            self.inner.changed.notify(usize::MAX);
        }
        changed
    }

    /// The current state.
    ///
    /// ```
    /// use remex::sync::{Lifecycle, LifecycleState};
    /// let lc = Lifecycle::new();
    /// lc.begin();
    /// lc.ready();
    /// assert_eq!(lc.state(), LifecycleState::On);
    /// ```
    pub fn state(&self) -> LifecycleState {
        self.inner.st.lock().state.clone()
    }

    /// The reason of a Fault.
    ///
    /// ```
    /// use remex::sync::{Lifecycle, LifecycleState};
    /// let lc = Lifecycle::new();
    /// lc.begin();
    /// lc.finish(Err("refused".into()));
    /// assert_eq!(lc.reason().as_deref(), Some("refused"));
    /// ```
    pub fn reason(&self) -> Option<String> {
        match self.state() {
            LifecycleState::Fault(r) => Some(r),
            _ => None,
        }
    }

    /// Begins a run (from Init, Off or Fault once ended); the state changes
    /// at `ready`. `false` if a run is already under way.
    ///
    /// ```
    /// use remex::sync::{Lifecycle, LifecycleState};
    /// let lc = Lifecycle::new();
    /// assert!(lc.begin());
    /// assert!(!lc.begin()); // already under way
    /// assert_eq!(lc.state(), LifecycleState::Init); // until ready
    /// ```
    pub fn begin(&self) -> bool {
        self.update(|st| match st.phase {
            Phase::Idle | Phase::Ended => {
                st.phase = Phase::Starting;
                st.was_ready = false;
                true
            }
            _ => false,
        })
    }

    /// The run is ready: On. `false` unless a run was begun.
    ///
    /// ```
    /// use remex::sync::{Lifecycle, LifecycleState};
    /// let lc = Lifecycle::new();
    /// assert!(!lc.ready()); // not begun
    /// lc.begin();
    /// assert!(lc.ready());
    /// assert_eq!(lc.state(), LifecycleState::On);
    /// ```
    pub fn ready(&self) -> bool {
        self.update(|st| {
            if st.phase != Phase::Starting {
                return false;
            }
            st.phase = Phase::Running;
            st.was_ready = true;
            st.state = LifecycleState::On;
            st.started_at = Some(Instant::now());
            st.ended_at = None;
            true
        })
    }

    /// A failure that the run survives: Fault with `reason`, while it keeps
    /// going. Ignored unless On (an earlier Fault's reason holds).
    ///
    /// ```
    /// use remex::sync::{Lifecycle, LifecycleState};
    /// let lc = Lifecycle::new();
    /// lc.begin();
    /// lc.ready();
    /// assert!(lc.fault("one scan failed"));
    /// assert!(lc.is_running()); // a fault is not an end
    /// ```
    pub fn fault(&self, reason: impl Into<String>) -> bool {
        self.update(|st| {
            if st.phase != Phase::Running || st.state != LifecycleState::On {
                return false;
            }
            st.state = LifecycleState::Fault(reason.into());
            true
        })
    }

    /// The run ended: Off, or Fault with the error; a Fault already held
    /// stays. Ignored if no run is under way.
    ///
    /// ```
    /// use remex::sync::{Lifecycle, LifecycleState};
    /// let lc = Lifecycle::new();
    /// lc.begin();
    /// lc.ready();
    /// assert!(lc.finish(Ok(())));
    /// assert_eq!(lc.state(), LifecycleState::Off);
    /// assert!(!lc.finish(Err("late".into()))); // ignored once ended
    /// ```
    pub fn finish(&self, outcome: std::result::Result<(), String>) -> bool {
        self.update(|st| {
            if !matches!(st.phase, Phase::Starting | Phase::Running) {
                return false;
            }
            let was_ready = st.phase == Phase::Running;
            st.phase = Phase::Ended;
            st.ended_at = Some(Instant::now());
            if !was_ready || !matches!(st.state, LifecycleState::Fault(_)) {
                st.state = match outcome {
                    Ok(()) => LifecycleState::Off,
                    Err(r) => LifecycleState::Fault(r),
                };
            }
            true
        })
    }

    /// Whether a run is under way (begun and not ended).
    ///
    /// ```
    /// use remex::sync::{Lifecycle, LifecycleState};
    /// let lc = Lifecycle::new();
    /// assert!(!lc.is_running());
    /// lc.begin();
    /// assert!(lc.is_running());
    /// ```
    pub fn is_running(&self) -> bool {
        matches!(self.inner.st.lock().phase, Phase::Starting | Phase::Running)
    }

    /// Whether the last run has ended (Off or Fault, not running).
    ///
    /// ```
    /// use remex::sync::{Lifecycle, LifecycleState};
    /// let lc = Lifecycle::new();
    /// lc.begin();
    /// lc.ready();
    /// assert!(!lc.done());
    /// lc.finish(Ok(()));
    /// assert!(lc.done());
    /// ```
    pub fn done(&self) -> bool {
        self.inner.st.lock().phase == Phase::Ended
    }

    /// How long the last run has been (or was) On.
    ///
    /// ```
    /// use remex::sync::{Lifecycle, LifecycleState};
    /// let lc = Lifecycle::new();
    /// assert_eq!(lc.duration(), std::time::Duration::ZERO);
    /// lc.begin();
    /// lc.ready();
    /// lc.finish(Ok(()));
    /// let d = lc.duration();
    /// assert_eq!(lc.duration(), d); // frozen once ended
    /// ```
    pub fn duration(&self) -> Duration {
        let st = self.inner.st.lock();
        match (st.started_at, st.ended_at) {
            (Some(s), Some(e)) => e.saturating_duration_since(s),
            (Some(s), None) => s.elapsed(),
            _ => Duration::ZERO,
        }
    }

    /// A receiver that sees every state change.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use remex::sync::{Lifecycle, LifecycleState};
    /// let lc = Lifecycle::new();
    /// let mut rx = lc.subscribe();
    /// lc.begin();
    /// lc.ready();
    /// rx.changed().await.unwrap();
    /// assert_eq!(*rx.borrow(), LifecycleState::On);
    /// # }
    /// ```
    pub fn subscribe(&self) -> watch::Receiver<LifecycleState> {
        self.inner.tx.subscribe()
    }

    fn ended_state(&self) -> Option<LifecycleState> {
        let st = self.inner.st.lock();
        matches!(st.phase, Phase::Idle | Phase::Ended).then(|| st.state.clone())
    }

    fn ready_state(&self) -> Option<Result<()>> {
        let st = self.inner.st.lock();
        match st.phase {
            Phase::Running => Some(Ok(())),
            Phase::Ended if st.was_ready => Some(Ok(())),
            Phase::Ended | Phase::Idle => Some(Err(Error::failed(format!(
                "it ended before it was ready, in state {}",
                st.state
            )))),
            Phase::Starting => None,
        }
    }

    fn timeout(what: &'static str, timeout: Option<Duration>) -> Error {
        Error::Timeout {
            what,
            after: timeout.unwrap_or_default(),
        }
    }

    /// Waits until the run has ended (or returns at once if none is under
    /// way) and gives the final state.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use remex::sync::{Lifecycle, LifecycleState};
    /// let lc = Lifecycle::new();
    /// lc.begin();
    /// lc.ready();
    /// let l = lc.clone();
    /// tokio::spawn(async move { l.finish(Ok(())) });
    /// assert_eq!(lc.join(Some(std::time::Duration::from_secs(5))).await.unwrap(), LifecycleState::Off);
    /// # }
    /// ```
    pub async fn join(&self, timeout: Option<Duration>) -> Result<LifecycleState> {
        wait::until(
            timeout,
            || self.ended_state(),
            || self.inner.changed.listen(),
        )
        .await
        .ok_or_else(|| Self::timeout("the service to end", timeout))
    }

    /// [`Lifecycle::join`] for threads.
    ///
    /// ```
    /// use remex::sync::{Lifecycle, LifecycleState};
    /// let lc = Lifecycle::new();
    /// lc.begin();
    /// lc.ready();
    /// assert!(lc.join_blocking(Some(std::time::Duration::from_millis(1))).unwrap_err().is_timeout());
    /// lc.finish(Err("lost".into()));
    /// assert_eq!(lc.join_blocking(None).unwrap(), LifecycleState::Fault("lost".into()));
    /// ```
    pub fn join_blocking(&self, timeout: Option<Duration>) -> Result<LifecycleState> {
        wait::until_blocking(
            timeout,
            || self.ended_state(),
            || self.inner.changed.listen(),
        )
        .ok_or_else(|| Self::timeout("the service to end", timeout))
    }

    /// Waits until the run is ready (On); an error if it ended first.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let lc = remex::sync::Lifecycle::new();
    /// lc.begin();
    /// let l = lc.clone();
    /// tokio::spawn(async move { l.ready() });
    /// lc.wait_ready(Some(std::time::Duration::from_secs(5))).await.unwrap();
    /// # }
    /// ```
    pub async fn wait_ready(&self, timeout: Option<Duration>) -> Result<()> {
        wait::until(
            timeout,
            || self.ready_state(),
            || self.inner.changed.listen(),
        )
        .await
        .unwrap_or_else(|| Err(Self::timeout("the service to be ready", timeout)))
    }

    /// [`Lifecycle::wait_ready`] for threads.
    ///
    /// ```
    /// let lc = remex::sync::Lifecycle::new();
    /// lc.begin();
    /// lc.finish(Err("cannot connect".into()));
    /// let e = lc.wait_ready_blocking(None).unwrap_err();
    /// assert!(e.to_string().contains("cannot connect"));
    /// ```
    pub fn wait_ready_blocking(&self, timeout: Option<Duration>) -> Result<()> {
        wait::until_blocking(
            timeout,
            || self.ready_state(),
            || self.inner.changed.listen(),
        )
        .unwrap_or_else(|| Err(Self::timeout("the service to be ready", timeout)))
    }
}
