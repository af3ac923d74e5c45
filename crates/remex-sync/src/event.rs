//! `Event`: a flag that threads and tasks wait for.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::wait;

/// A flag shared by threads and async tasks: `set` wakes every waiter,
/// `clear` resets it. Clones share the flag.
///
/// Built on `event-listener` (the notification) and an atomic flag.
///
/// ```
/// use std::time::Duration;
/// let ev = remex::sync::Event::new();
/// let e = ev.clone();
/// let t = std::thread::spawn(move || e.wait_blocking(Some(Duration::from_secs(5))));
/// ev.set();
/// assert!(t.join().unwrap());
/// assert!(ev.is_set());
/// ev.clear();
/// assert!(!ev.wait_blocking(Some(Duration::from_millis(1))));
/// ```
#[derive(Clone, Default)]
pub struct Event {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    flag: AtomicBool,
    changed: event_listener::Event,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

impl Event {
    /// A new, cleared event.
    ///
    /// ```
    /// let ev = remex::sync::Event::new();
    /// assert!(!ev.is_set());
    /// ```
    pub fn new() -> Event {
        Event::default()
    }

    /// Sets the flag and wakes every waiter.
    ///
    /// ```
    /// let ev = remex::sync::Event::new();
    /// ev.set();
    /// ev.set(); // setting twice is harmless
    /// assert!(ev.is_set());
    /// ```
    pub fn set(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        self.inner.changed.notify(usize::MAX);
    }

    /// Clears the flag.
    ///
    /// ```
    /// let ev = remex::sync::Event::new();
    /// ev.set();
    /// ev.clear();
    /// assert!(!ev.is_set());
    /// ```
    pub fn clear(&self) {
        self.inner.flag.store(false, Ordering::SeqCst);
    }

    /// Whether the flag is set.
    ///
    /// ```
    /// let ev = remex::sync::Event::new();
    /// let seen = ev.clone();
    /// ev.set();
    /// assert!(seen.is_set()); // clones share the flag
    /// ```
    pub fn is_set(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    fn check(&self) -> Option<()> {
        self.is_set().then_some(())
    }

    /// Waits until the flag is set: `true`, or `false` if `timeout` passed
    /// first.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let ev = remex::sync::Event::new();
    /// let e = ev.clone();
    /// tokio::spawn(async move { e.set() });
    /// assert!(ev.wait(None).await);
    /// # }
    /// ```
    pub async fn wait(&self, timeout: Option<Duration>) -> bool {
        wait::until(timeout, || self.check(), || self.inner.changed.listen())
            .await
            .is_some()
    }

    /// [`Event::wait`] for threads.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ev = remex::sync::Event::new();
    /// assert!(!ev.wait_blocking(Some(Duration::from_millis(1))));
    /// ev.set();
    /// assert!(ev.wait_blocking(None));
    /// ```
    pub fn wait_blocking(&self, timeout: Option<Duration>) -> bool {
        wait::until_blocking(timeout, || self.check(), || self.inner.changed.listen()).is_some()
    }
}
