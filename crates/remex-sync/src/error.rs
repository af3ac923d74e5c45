//! The errors of remex-sync.

use std::sync::Arc;
use std::time::Duration;

/// What went wrong while waiting, running or handing over a result.
///
/// ```
/// use std::time::Duration;
/// let q: remex::sync::Queue<u8> = remex::sync::Queue::unbounded();
/// let e = q.get_blocking(Some(Duration::from_millis(1))).unwrap_err();
/// assert!(matches!(e, remex::sync::Error::Timeout { .. }));
/// assert_eq!(e.to_string(), "timed out after 1ms waiting for an item in the queue");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The wait ended before what it waited for happened. The primitive is
    /// still usable.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// The timeout that expired.
        after: Duration,
    },
    /// The queue (or other primitive) was closed and holds nothing more.
    #[error("{what} is closed")]
    Closed {
        /// What was closed.
        what: &'static str,
    },
    /// The thread or runtime that was to run the work ended first; the
    /// work never ran or never finished.
    #[error("{what} ended before the work finished: {reason}")]
    Gone {
        /// The thread or runtime.
        what: String,
        /// Why it ended, as far as known.
        reason: String,
    },
    /// The work panicked; the message is the panic's.
    #[error("panicked: {0}")]
    Panicked(String),
    /// The work failed with this error.
    #[error("{0}")]
    Failed(Arc<dyn std::error::Error + Send + Sync>),
    /// A call that cannot work where it was made (for instance waiting, on
    /// a runtime's only thread, for work queued on that same thread).
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// Wraps any error as [`Error::Failed`].
    ///
    /// ```
    /// let e = remex::sync::Error::failed(std::io::Error::other("disk full"));
    /// assert_eq!(e.to_string(), "disk full");
    /// ```
    pub fn failed(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::Failed(Arc::from(e.into()))
    }

    /// Whether this is a [`Error::Timeout`].
    ///
    /// ```
    /// let e = remex::sync::Error::Timeout { what: "x", after: std::time::Duration::ZERO };
    /// assert!(e.is_timeout());
    /// assert!(!remex::sync::Error::Panicked("p".into()).is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Error {
        let msg = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic without a message".to_string()
        };
        Error::Panicked(msg)
    }
}

/// Errors compare by kind and message (a wrapped error by its message).
impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.to_string() == other.to_string()
    }
}

impl Eq for Error {}

/// `Result` with [`Error`].
///
/// ```
/// fn half(x: u32) -> remex::sync::Result<u32> {
///     if x % 2 == 0 { Ok(x / 2) } else { Err(remex::sync::Error::failed("odd")) }
/// }
/// assert_eq!(half(4).unwrap(), 2);
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
