//! `AsyncResult`: a value or an error, set once, awaited by threads and
//! tasks; `Promise`: the setter that fails it when dropped unset.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::wait;

/// The outcome of work that finishes elsewhere: set once with a value or an
/// error; `get` returns the value or the stored error to every caller.
/// Clones share it.
///
/// Built on `event-listener` (waking getters) and a `parking_lot` mutex.
///
/// ```
/// use std::time::Duration;
/// let r = remex::sync::AsyncResult::new();
/// assert!(!r.ready());
/// let w = r.clone();
/// std::thread::spawn(move || w.set(Ok(42)));
/// assert_eq!(r.get_blocking(Some(Duration::from_secs(5))).unwrap(), 42);
/// assert!(r.ready() && r.successful());
/// ```
pub struct AsyncResult<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    slot: Mutex<Option<Result<T>>>,
    done: event_listener::Event,
}

impl<T> Clone for AsyncResult<T> {
    fn clone(&self) -> Self {
        AsyncResult {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Default for AsyncResult<T> {
    fn default() -> Self {
        AsyncResult {
            inner: Arc::new(Inner {
                slot: Mutex::new(None),
                done: event_listener::Event::new(),
            }),
        }
    }
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.inner.slot.lock() {
            None => "pending",
            Some(Ok(_)) => "ok",
            Some(Err(_)) => "failed",
        };
        write!(f, "AsyncResult({state})")
    }
}

impl<T> AsyncResult<T> {
    /// A result not set yet.
    ///
    /// ```
    /// let r = remex::sync::AsyncResult::<u8>::new();
    /// assert!(!r.ready());
    /// ```
    pub fn new() -> AsyncResult<T> {
        AsyncResult::default()
    }

    /// A pending result and the [`Promise`] that sets it (or fails it with
    /// [`Error::Gone`] if dropped unset).
    ///
    /// ```
    /// let (promise, result) = remex::sync::AsyncResult::<i32>::promise("the worker thread");
    /// drop(promise); // the work was abandoned
    /// assert!(matches!(result.get_blocking(None), Err(remex::sync::Error::Gone { .. })));
    /// ```
    pub fn promise(owner: impl Into<String>) -> (Promise<T>, AsyncResult<T>) {
        let r = AsyncResult::new();
        (
            Promise {
                result: Some(r.clone()),
                owner: owner.into(),
            },
            r,
        )
    }

    /// Sets the outcome and wakes every waiter. Only the first call counts:
    /// `false` if it was already set.
    ///
    /// ```
    /// let r = remex::sync::AsyncResult::new();
    /// assert!(r.set(Ok(1)));
    /// assert!(!r.set(Ok(2))); // the first outcome stays
    /// assert_eq!(r.get_blocking(None).unwrap(), 1);
    /// ```
    pub fn set(&self, outcome: Result<T>) -> bool {
        {
            let mut slot = self.inner.slot.lock();
            if slot.is_some() {
                return false;
            }
            *slot = Some(outcome);
        }
        self.inner.done.notify(usize::MAX);
        true
    }

    /// Whether the outcome is set.
    ///
    /// ```
    /// let r = remex::sync::AsyncResult::<()>::new();
    /// r.set(Err(remex::sync::Error::failed("no")));
    /// assert!(r.ready());
    /// ```
    pub fn ready(&self) -> bool {
        self.inner.slot.lock().is_some()
    }

    /// Whether the outcome is set and is a value.
    ///
    /// ```
    /// let r = remex::sync::AsyncResult::<()>::new();
    /// r.set(Err(remex::sync::Error::failed("no")));
    /// assert!(!r.successful());
    /// ```
    pub fn successful(&self) -> bool {
        matches!(&*self.inner.slot.lock(), Some(Ok(_)))
    }

    fn timeout(after: Option<Duration>) -> Error {
        Error::Timeout {
            what: "the result",
            after: after.unwrap_or_default(),
        }
    }
}

impl<T: Clone> AsyncResult<T> {
    fn peek(&self) -> Option<Result<T>> {
        self.inner.slot.lock().clone()
    }

    /// The value, or the stored error; [`Error::Timeout`] if nothing was set
    /// within `timeout` (`None`: wait as long as it takes).
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let r = remex::sync::AsyncResult::<u8>::new();
    /// r.set(Err(remex::sync::Error::failed("no luck")));
    /// assert_eq!(r.get(None).await.unwrap_err().to_string(), "no luck");
    /// # }
    /// ```
    pub async fn get(&self, timeout: Option<Duration>) -> Result<T> {
        self.wait(timeout)
            .await
            .unwrap_or_else(|| Err(Self::timeout(timeout)))
    }

    /// [`AsyncResult::get`] for threads.
    ///
    /// ```
    /// let r = remex::sync::AsyncResult::<u8>::new();
    /// let e = r.get_blocking(Some(std::time::Duration::from_millis(1))).unwrap_err();
    /// assert!(e.is_timeout());
    /// ```
    pub fn get_blocking(&self, timeout: Option<Duration>) -> Result<T> {
        self.wait_blocking(timeout)
            .unwrap_or_else(|| Err(Self::timeout(timeout)))
    }

    /// The outcome once set, or `None` if `timeout` passed first.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let r = remex::sync::AsyncResult::<u8>::new();
    /// assert!(r.wait(Some(std::time::Duration::from_millis(1))).await.is_none());
    /// r.set(Ok(9));
    /// assert!(matches!(r.wait(None).await, Some(Ok(9))));
    /// # }
    /// ```
    pub async fn wait(&self, timeout: Option<Duration>) -> Option<Result<T>> {
        wait::until(timeout, || self.peek(), || self.inner.done.listen()).await
    }

    /// [`AsyncResult::wait`] for threads.
    ///
    /// ```
    /// let r = remex::sync::AsyncResult::new();
    /// r.set(Ok("v"));
    /// assert!(matches!(r.wait_blocking(None), Some(Ok("v"))));
    /// ```
    pub fn wait_blocking(&self, timeout: Option<Duration>) -> Option<Result<T>> {
        wait::until_blocking(timeout, || self.peek(), || self.inner.done.listen())
    }
}

impl<T> AsyncResult<T> {
    fn take_now(&self) -> Option<Result<T>> {
        let mut slot = self.inner.slot.lock();
        slot.as_ref()?;
        let taken = Err(Error::Usage("the result was already taken".into()));
        slot.replace(taken)
    }

    /// Moves the outcome out, for values that are not `Clone`: later
    /// getters see an error saying it was taken. [`Error::Timeout`] if
    /// nothing was set within `timeout`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let r = remex::sync::AsyncResult::new();
    /// r.set(Ok(vec![1, 2, 3]));
    /// assert_eq!(r.take(None).await.unwrap(), vec![1, 2, 3]);
    /// assert!(r.take(None).await.is_err());
    /// # }
    /// ```
    pub async fn take(&self, timeout: Option<Duration>) -> Result<T> {
        wait::until(timeout, || self.take_now(), || self.inner.done.listen())
            .await
            .unwrap_or_else(|| Err(Self::timeout(timeout)))
    }

    /// [`AsyncResult::take`] for threads.
    ///
    /// ```
    /// let r = remex::sync::AsyncResult::new();
    /// r.set(Ok(String::from("moved")));
    /// assert_eq!(r.take_blocking(None).unwrap(), "moved");
    /// ```
    pub fn take_blocking(&self, timeout: Option<Duration>) -> Result<T> {
        wait::until_blocking(timeout, || self.take_now(), || self.inner.done.listen())
            .unwrap_or_else(|| Err(Self::timeout(timeout)))
    }
}

/// The setting side of an [`AsyncResult`]: work that is queued somewhere
/// holds it, so that if the work is dropped without running (its thread or
/// runtime ended), the result fails with [`Error::Gone`] instead of leaving
/// its waiters hanging.
///
/// ```
/// let (promise, result) = remex::sync::AsyncResult::promise("a worker");
/// std::thread::spawn(move || promise.set(Ok(1)));
/// assert_eq!(result.get_blocking(None).unwrap(), 1);
/// ```
pub struct Promise<T> {
    result: Option<AsyncResult<T>>,
    owner: String,
}

impl<T> fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Promise(for {})", self.owner)
    }
}

impl<T> Promise<T> {
    /// Sets the outcome.
    ///
    /// ```
    /// let (p, r) = remex::sync::AsyncResult::promise("here");
    /// p.set(Ok("done"));
    /// assert_eq!(r.get_blocking(None).unwrap(), "done");
    /// ```
    pub fn set(mut self, outcome: Result<T>) {
        if let Some(r) = self.result.take() {
            r.set(outcome);
        }
    }
}

impl<T> Drop for Promise<T> {
    fn drop(&mut self) {
        if let Some(r) = self.result.take() {
            r.set(Err(Error::Gone {
                what: self.owner.clone(),
                reason: "the work was dropped without running to its end".into(),
            }));
        }
    }
}
