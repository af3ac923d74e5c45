//! Errors of remex-core. Each carries what a user needs to act: the spec,
//! the gateway, the worker's pid, the remote message.

use std::time::Duration;

use crate::spec::SpecError;
use crate::wire::{HandshakeError, WireError};

/// What every error of a session that failed an integrity check says
/// ([`crate::Error::is_tampering`]).
///
/// ```
/// assert_eq!(remex::core::transport::secure::TAMPERED, "was tampered with");
/// ```
pub const TAMPERED: &str = "was tampered with";

/// An error raised on the worker: a failing script or task.
///
/// The message holds the remote text: a script's error with its line and
/// column, or a task's error or panic message.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let gw = remex::makegateway("popen").await?;
/// let ch = gw.remote_exec("throw \"boom\"")?;
/// match ch.waitclose(None).await {
///     Err(remex::Error::Remote(e)) => {
///         assert_eq!(e.gateway, gw.id());
///         assert_eq!(e.pid, gw.rinfo().pid);
///         assert!(e.message.contains("boom"));
///     }
///     other => panic!("{other:?}"),
/// }
/// gw.exit().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("remote error on {gateway} (pid {pid}): {message}")]
pub struct RemoteError {
    /// The gateway's id.
    pub gateway: String,
    /// The worker's pid.
    pub pid: u32,
    /// The remote message.
    pub message: String,
}

/// Errors of gateways and channels.
///
/// `Debug` prints the same text as `Display`, so that `fn main() ->
/// remex::Result<()>` ends with a readable message:
///
/// ```
/// let e = remex::Error::NoWorker { reason: "the group is empty".into() };
/// assert_eq!(format!("{e:?}"), e.to_string());
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spec could not be parsed.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The worker process could not be started.
    #[error("cannot start a worker for spec {spec:?}: {detail}")]
    Start {
        /// The spec.
        spec: String,
        /// What went wrong.
        detail: String,
    },
    /// The worker did not complete the handshake.
    #[error("worker for spec {spec:?}{} failed the handshake: {source}{detail}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Handshake {
        /// The spec.
        spec: String,
        /// The local process that was started (none through a relay).
        pid: Option<u32>,
        /// What went wrong.
        source: HandshakeError,
        /// How the process ended and the last lines of its stderr, when
        /// known (`""` otherwise).
        detail: String,
    },
    /// ssh could not reach the host (refused, timed out, unknown name).
    #[error("spec {spec:?}: cannot reach {host} over ssh: {message}")]
    HostUnreachable {
        /// The spec.
        spec: String,
        /// `[user@]host`.
        host: String,
        /// ssh's own message.
        message: String,
    },
    /// The host refused our authentication.
    #[error("spec {spec:?}: {host} refused the ssh authentication: {message}")]
    AuthRefused {
        /// The spec.
        spec: String,
        /// `[user@]host`.
        host: String,
        /// ssh's own message.
        message: String,
    },
    /// The host's key is unknown or differs from the recorded one.
    #[error("spec {spec:?}: the host key of {host} was rejected: {message}")]
    HostKeyRejected {
        /// The spec.
        spec: String,
        /// `[user@]host`.
        host: String,
        /// ssh's own message.
        message: String,
    },
    /// The host has no (runnable) worker at the path asked for.
    #[error("spec {spec:?}: no remex worker on {host}: {message}")]
    WorkerMissing {
        /// The spec.
        spec: String,
        /// `[user@]host`.
        host: String,
        /// What the remote shell said, and how to provide a worker.
        message: String,
    },
    /// No TCP connection to a listening worker (`socket=`).
    #[error("spec {spec:?}: cannot connect to {addr}: {message}")]
    Connect {
        /// The spec.
        spec: String,
        /// `host:port`.
        addr: String,
        /// What the system said.
        message: String,
    },
    /// The listening worker refused our proof of the shared secret: the
    /// secrets differ (`socket=`).
    #[error("spec {spec:?}: the worker at {addr} refused our secret (the two secrets differ)")]
    SecretRefused {
        /// The spec.
        spec: String,
        /// `host:port`.
        addr: String,
    },
    /// The peer did not prove the shared secret: it is not the worker the
    /// spec means, or its secret differs. Nothing of the user's was sent
    /// to it (`socket=`).
    #[error("spec {spec:?}: the peer at {addr} did not prove the shared secret (not the worker configured, or its secret differs); nothing was sent to it")]
    PeerUnauthenticated {
        /// The spec.
        spec: String,
        /// `host:port`.
        addr: String,
    },
    /// The secure session broke before the gateway was up: tampered with,
    /// cut, or closed by the peer (`socket=`).
    #[error("spec {spec:?}: the secure session with {addr} failed: {detail}")]
    SessionBroken {
        /// The spec.
        spec: String,
        /// `host:port`.
        addr: String,
        /// What happened.
        detail: String,
    },
    /// A group has no live worker for the work asked (all have exited or
    /// were lost, or the group was dropped).
    #[error("no live worker: {reason}")]
    NoWorker {
        /// Why, and for what.
        reason: String,
    },
    /// A task's worker died on each of its attempts.
    #[error("task '{task}' failed: its worker died on each of {attempts} attempts (last on {gateway}: {reason})")]
    TaskLost {
        /// The task's name.
        task: String,
        /// How many times it was started.
        attempts: u32,
        /// The gateway of the last attempt.
        gateway: String,
        /// Why that gateway was lost.
        reason: String,
    },
    /// Scattered data whose every holder is gone.
    #[error("scattered data {key} is lost: {reason} (held by {holders})")]
    DataLost {
        /// The data's key.
        key: String,
        /// The gateways that held it, comma-separated.
        holders: String,
        /// What happened.
        reason: String,
    },
    /// Arguments (of a call, a task, a scatter) that cannot be converted
    /// to a [`crate::Value`].
    #[error("cannot convert the arguments: {detail}")]
    Arguments {
        /// Why.
        detail: String,
    },
    /// The program at the other end is not a remex worker.
    #[error("spec {spec:?}: {detail}")]
    NotAWorker {
        /// The spec.
        spec: String,
        /// Why it is not a worker.
        detail: String,
    },
    /// The remote script or task failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The remote side closed the channel; no more items will arrive.
    #[error("end of channel {channel} on {gateway}: the remote side closed it")]
    EndOfChannel {
        /// The gateway's id.
        gateway: String,
        /// The channel id.
        channel: u32,
    },
    /// Sending on a channel that is closed (by either side).
    #[error("channel {channel} on {gateway} is closed{}", if *.by_remote { " by the remote side" } else { "" })]
    ChannelClosed {
        /// The gateway's id.
        gateway: String,
        /// The channel id.
        channel: u32,
        /// Whether the remote side closed it.
        by_remote: bool,
    },
    /// A wait ran out of time; the object it waited on is still usable.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The connection to the worker is gone (the worker exited or was
    /// killed, or the stream broke).
    #[error("gateway {gateway} lost its worker (pid {pid}): {reason}")]
    GatewayLost {
        /// The gateway's id.
        gateway: String,
        /// The worker's pid.
        pid: u32,
        /// Why.
        reason: String,
    },
    /// A task's result is not of the type asked for (`submit::<R>`).
    #[error("task '{task}' on {gateway} returned a result of another type: {detail}")]
    ResultType {
        /// The task's name.
        task: String,
        /// The gateway that ran it.
        gateway: String,
        /// Expected and received.
        detail: String,
    },
    /// On a worker: the controller went away (its stream ended or broke).
    #[error("the controller went away: {reason}")]
    ControllerLost {
        /// Why.
        reason: String,
    },
    /// A received value is not of the requested type.
    #[error("type mismatch on channel {channel} of {gateway}: {detail}")]
    TypeMismatch {
        /// The gateway's id.
        gateway: String,
        /// The channel id.
        channel: u32,
        /// Expected and received.
        detail: String,
    },
    /// A value that cannot be sent.
    #[error("cannot send on channel {channel}: {detail}")]
    Unsendable {
        /// The channel id.
        channel: u32,
        /// Why.
        detail: String,
    },
    /// `receive` on a channel that has a callback.
    #[error("channel {channel} has a callback: receive is not allowed")]
    CallbackSet {
        /// The channel id.
        channel: u32,
    },
    /// The peer broke the protocol.
    #[error("protocol error from {gateway}: {source}")]
    Protocol {
        /// The gateway's id.
        gateway: String,
        /// What was wrong.
        source: WireError,
    },
    /// Handing work to or from another thread failed (its runtime ended,
    /// or a wait timed out); see `remex::sync::Error`.
    #[error(transparent)]
    Sync(#[from] remex_sync::Error),
    /// A value did not convert to the requested type, or could not be
    /// encoded (from [`crate::from_value`] and [`crate::to_value`]).
    #[error("{0}")]
    Value(#[from] crate::value::ValueError),
    /// An operating-system call failed.
    #[error("{what} failed: {detail}")]
    Os {
        /// What was attempted.
        what: String,
        /// The OS error.
        detail: String,
    },
}

/// An I/O error becomes [`Error::Os`], unless it carries a remex error (as
/// the errors of [`crate::ChannelReader`] and its kin do), which comes back
/// as it was; so `?` works on channel files in a function returning
/// [`Result`].
///
/// ```
/// let e = std::io::Error::new(std::io::ErrorKind::Other, remex::Error::NoWorker { reason: "none".into() });
/// assert!(matches!(remex::Error::from(e), remex::Error::NoWorker { .. }));
/// let e = remex::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
/// assert!(e.to_string().starts_with("I/O failed: "), "{e}");
/// ```
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            if let Some(inner) = e.into_inner() {
                if let Ok(ours) = inner.downcast::<Error>() {
                    return *ours;
                }
            }
            unreachable!("checked to be a remex error above")
        }
        Error::os("I/O", e)
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Debug for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Error {
    /// Whether this error says the channel ended normally.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.send(1)")?;
    /// ch.receive::<i64>().await?;
    /// assert!(ch.receive::<i64>().await.unwrap_err().is_end_of_channel());
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn is_end_of_channel(&self) -> bool {
        matches!(self, Error::EndOfChannel { .. })
    }

    /// Whether this error is a timeout.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.receive()")?;
    /// let e = ch.receive_timeout::<i64>(std::time::Duration::from_millis(20)).await.unwrap_err();
    /// assert!(e.is_timeout());
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Whether this error ended a secure session (`socket=`, dial-back)
    /// because a record failed its integrity check: someone on the path
    /// changed, injected, dropped or replayed data.
    ///
    /// ```
    /// let e = remex::Error::GatewayLost {
    ///     gateway: "gw0".into(),
    ///     pid: 1,
    ///     reason: "reading failed: the secure session with 10.0.0.1:4 was tampered with: record 3 ...".into(),
    /// };
    /// assert!(e.is_tampering());
    /// ```
    pub fn is_tampering(&self) -> bool {
        self.to_string().contains(TAMPERED)
    }

    pub(crate) fn os(what: impl Into<String>, e: std::io::Error) -> Error {
        Error::Os {
            what: what.into(),
            detail: e.to_string(),
        }
    }
}

/// Results of remex-core.
///
/// ```
/// # fn main() -> remex::Result<()> {
/// fn first_gateway_id(specs: &[&str]) -> remex::Result<String> {
///     Ok(remex::Spec::parse(specs[0])?.id.unwrap_or_default())
/// }
/// assert_eq!(first_gateway_id(&["popen//id=w1"])?, "w1");
/// # Ok(()) }
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Awaits `fut`, at most `timeout` (`None`: as long as it takes); past it,
/// [`Error::Timeout`] saying what was awaited. The one way remex bounds an
/// async wait.
///
/// ```
/// # #[tokio::main] async fn main() {
/// use std::time::Duration;
/// let slow = async { tokio::time::sleep(Duration::from_secs(60)).await; Ok(()) };
/// let e = remex::with_timeout("a nap", Some(Duration::from_millis(1)), slow).await;
/// assert_eq!(e.unwrap_err().to_string(), "timed out after 1ms waiting for a nap");
/// # }
/// ```
pub async fn with_timeout<T>(
    what: &'static str,
    timeout: Option<Duration>,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match timeout {
        None => fut.await,
        Some(t) => tokio::time::timeout(t, fut)
            .await
            .unwrap_or(Err(Error::Timeout { what, after: t })),
    }
}

impl remex_proto::channel::Failure for Error {
    fn is_remote(&self) -> bool {
        matches!(self, Error::Remote(_))
    }

    fn is_loss(&self) -> bool {
        matches!(self, Error::GatewayLost { .. })
    }
}
