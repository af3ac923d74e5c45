//! `Lock` and `RLock`: locks that threads and async tasks share, with
//! timeouts.

use std::fmt;
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::wait;

fn timeout_error(timeout: Option<Duration>) -> Error {
    Error::Timeout {
        what: "the lock",
        after: timeout.unwrap_or_default(),
    }
}

/// A lock held by one thread or task at a time, acquired with `.await` from
/// async code or blocking (with a timeout) from a thread. The guard
/// releases it when dropped; the guard is `Send`, so it may be held across
/// `.await`. Not reentrant: see [`RLock`].
///
/// Built on `event-listener` (waking one waiter per release). tokio's
/// `Mutex` has no blocking acquire with a timeout, which threads need.
///
/// ```
/// use std::time::Duration;
/// let lock = remex::sync::Lock::new();
/// let guard = lock.acquire_blocking(None).unwrap();
/// // Held: another acquire times out.
/// let l = lock.clone();
/// let other = std::thread::spawn(move || l.acquire_blocking(Some(Duration::from_millis(10))).is_err());
/// assert!(other.join().unwrap());
/// drop(guard);
/// assert!(lock.try_acquire().is_some());
/// ```
#[derive(Clone, Default)]
pub struct Lock {
    inner: Arc<LockInner>,
}

#[derive(Default)]
struct LockInner {
    locked: Mutex<bool>,
    released: event_listener::Event,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lock(locked: {})", *self.inner.locked.lock())
    }
}

/// Holds a [`Lock`] until dropped.
///
/// ```
/// let lock = remex::sync::Lock::new();
/// {
///     let _guard = lock.try_acquire().unwrap();
///     assert!(lock.is_locked());
/// }
/// assert!(!lock.is_locked()); // released by the drop
/// ```
#[derive(Debug)]
pub struct LockGuard {
    lock: Lock,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        *self.lock.inner.locked.lock() = false;
        self.lock.inner.released.notify(1);
    }
}

impl Lock {
    /// A new, free lock.
    ///
    /// ```
    /// let lock = remex::sync::Lock::new();
    /// assert!(!lock.is_locked());
    /// ```
    pub fn new() -> Lock {
        Lock::default()
    }

    /// Takes the lock if it is free now.
    ///
    /// ```
    /// let lock = remex::sync::Lock::new();
    /// let g = lock.try_acquire().unwrap();
    /// assert!(lock.try_acquire().is_none()); // not reentrant
    /// drop(g);
    /// ```
    pub fn try_acquire(&self) -> Option<LockGuard> {
        let mut locked = self.inner.locked.lock();
        if *locked {
            return None;
        }
        *locked = true;
        Some(LockGuard { lock: self.clone() })
    }

    /// Waits for the lock; [`Error::Timeout`] after `timeout`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let lock = remex::sync::Lock::new();
    /// let g = lock.acquire(None).await.unwrap();
    /// tokio::task::yield_now().await; // the guard may cross an await
    /// drop(g);
    /// # }
    /// ```
    pub async fn acquire(&self, timeout: Option<Duration>) -> Result<LockGuard> {
        wait::until(
            timeout,
            || self.try_acquire(),
            || self.inner.released.listen(),
        )
        .await
        .ok_or_else(|| timeout_error(timeout))
    }

    /// [`Lock::acquire`] for threads.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lock = remex::sync::Lock::new();
    /// let g = lock.acquire_blocking(Some(Duration::from_secs(1))).unwrap();
    /// assert!(lock.acquire_blocking(Some(Duration::from_millis(1))).unwrap_err().is_timeout());
    /// drop(g);
    /// ```
    pub fn acquire_blocking(&self, timeout: Option<Duration>) -> Result<LockGuard> {
        wait::until_blocking(
            timeout,
            || self.try_acquire(),
            || self.inner.released.listen(),
        )
        .ok_or_else(|| timeout_error(timeout))
    }

    /// Whether someone holds the lock now.
    ///
    /// ```
    /// let lock = remex::sync::Lock::new();
    /// let g = lock.acquire_blocking(None).unwrap();
    /// assert!(lock.is_locked());
    /// drop(g);
    /// assert!(!lock.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        *self.inner.locked.lock()
    }
}

/// Who holds an [`RLock`]: an async task, or a thread outside any task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Task(tokio::task::Id),
    Thread(ThreadId),
}

fn current_owner() -> Owner {
    match tokio::task::try_id() {
        Some(id) => Owner::Task(id),
        None => Owner::Thread(std::thread::current().id()),
    }
}

/// A reentrant lock: its holder may acquire it again; it is free once every
/// guard is dropped.
///
/// The holder is the current tokio task when there is one (identified by
/// `tokio::task::try_id`), else the OS thread. Its limits: a guard handed to
/// another task or thread does not make that one the holder (its acquires
/// wait like anyone's); a task that spawns a child and waits for it while
/// holding the lock deadlocks if the child acquires it, as with any
/// reentrant lock across threads.
///
/// Built on `event-listener` and a `parking_lot` mutex for the state.
///
/// ```
/// let lock = remex::sync::RLock::new();
/// let outer = lock.acquire_blocking(None).unwrap();
/// let inner = lock.acquire_blocking(None).unwrap(); // same thread: fine
/// assert_eq!(lock.depth(), 2);
/// drop(inner);
/// drop(outer);
/// assert_eq!(lock.depth(), 0);
/// ```
#[derive(Clone, Default)]
pub struct RLock {
    inner: Arc<RInner>,
}

#[derive(Default)]
struct RInner {
    state: Mutex<(Option<Owner>, usize)>,
    released: event_listener::Event,
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RLock(depth: {})", self.depth())
    }
}

/// One level of an [`RLock`], released when dropped.
///
/// ```
/// let lock = remex::sync::RLock::new();
/// let g = lock.try_acquire().unwrap();
/// assert_eq!(lock.depth(), 1);
/// drop(g);
/// assert_eq!(lock.depth(), 0);
/// ```
#[derive(Debug)]
pub struct RLockGuard {
    lock: RLock,
}

impl Drop for RLockGuard {
    fn drop(&mut self) {
        let free = {
            let mut s = self.lock.inner.state.lock();
            s.1 -= 1;
            if s.1 == 0 {
                s.0 = None;
            }
            s.1 == 0
        };
        if free {
            self.lock.inner.released.notify(1);
        }
    }
}

impl RLock {
    /// A new, free reentrant lock.
    ///
    /// ```
    /// let lock = remex::sync::RLock::new();
    /// assert_eq!(lock.depth(), 0);
    /// ```
    pub fn new() -> RLock {
        RLock::default()
    }

    fn try_as(&self, me: Owner) -> Option<RLockGuard> {
        let mut s = self.inner.state.lock();
        match s.0 {
            Some(o) if o != me => None,
            _ => {
                s.0 = Some(me);
                s.1 += 1;
                Some(RLockGuard { lock: self.clone() })
            }
        }
    }

    /// Takes the lock if it is free or already held by the caller.
    ///
    /// ```
    /// let lock = remex::sync::RLock::new();
    /// let a = lock.try_acquire().unwrap();
    /// let b = lock.try_acquire().unwrap(); // the holder again
    /// let l = lock.clone();
    /// assert!(std::thread::spawn(move || l.try_acquire().is_none()).join().unwrap());
    /// drop((a, b));
    /// ```
    pub fn try_acquire(&self) -> Option<RLockGuard> {
        self.try_as(current_owner())
    }

    /// Waits for the lock; [`Error::Timeout`] after `timeout`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let lock = remex::sync::RLock::new();
    /// let a = lock.acquire(None).await.unwrap();
    /// let b = lock.acquire(None).await.unwrap(); // same task
    /// assert_eq!(lock.depth(), 2);
    /// drop((a, b));
    /// # }
    /// ```
    pub async fn acquire(&self, timeout: Option<Duration>) -> Result<RLockGuard> {
        let me = current_owner();
        wait::until(timeout, || self.try_as(me), || self.inner.released.listen())
            .await
            .ok_or_else(|| timeout_error(timeout))
    }

    /// [`RLock::acquire`] for threads.
    ///
    /// ```
    /// let lock = remex::sync::RLock::new();
    /// let _g = lock.acquire_blocking(None).unwrap();
    /// let l = lock.clone();
    /// let other = std::thread::spawn(move || l.acquire_blocking(Some(std::time::Duration::from_millis(1))).is_err());
    /// assert!(other.join().unwrap());
    /// ```
    pub fn acquire_blocking(&self, timeout: Option<Duration>) -> Result<RLockGuard> {
        let me = current_owner();
        wait::until_blocking(timeout, || self.try_as(me), || self.inner.released.listen())
            .ok_or_else(|| timeout_error(timeout))
    }

    /// How many guards the holder has (0: free).
    ///
    /// ```
    /// let lock = remex::sync::RLock::new();
    /// let g1 = lock.acquire_blocking(None).unwrap();
    /// let g2 = lock.acquire_blocking(None).unwrap();
    /// assert_eq!(lock.depth(), 2);
    /// drop((g1, g2));
    /// ```
    pub fn depth(&self) -> usize {
        self.inner.state.lock().1
    }
}
