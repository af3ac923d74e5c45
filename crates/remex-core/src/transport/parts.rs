//! What a transport hands the gateway: a worker connected and past its
//! handshake, as parts ([`Parts`]): the streams to run the engine over,
//! the local process if there is one, what the worker said of itself,
//! and how to explain an end of its stream. Each transport module turns
//! its spec into these (`popen`, `cmd` and `ssh` through
//! [`super::start`], `socket`, `slurm`, `via`); `gateway.rs` assembles a
//! `Gateway` from them and knows no transport.

use std::collections::VecDeque;
use std::process::ExitStatus;
use std::sync::Arc;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::watch;

use super::socket::{Connected, DirectParts};
use crate::wire::WorkerInfo;

/// Produces the reason reported when a worker's stream ends (the type of
/// `conn::EofReason`, spelled here so that transports need not import the
/// engine).
pub(crate) type EofReason =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, String> + Send + Sync>;

/// The last lines of a worker's stderr, as this side sees them.
pub(crate) type Tail = Arc<Mutex<VecDeque<String>>>;

/// A connected worker, in parts (see the module docs).
pub(crate) struct Parts {
    /// What the worker said of itself in its hello.
    pub(crate) info: WorkerInfo,
    pub(crate) streams: Streams,
    /// The local process (the worker, or a wrapper such as ssh or srun);
    /// `None` when the worker is reached over a socket or a relay.
    pub(crate) process: Option<Process>,
    /// The worker binary was uploaded to reach it (ssh).
    pub(crate) uploaded: bool,
    /// Its last stderr lines, where they reach this side.
    pub(crate) stderr: Option<Tail>,
    /// Explains an end of the stream (how the process exited, or the
    /// relay's loss).
    pub(crate) eof_reason: Option<EofReason>,
}

/// The byte streams to a worker.
pub(crate) enum Streams {
    /// A child's pipes, read directly by waiting threads.
    Pipes {
        stdout: ChildStdout,
        stdin: ChildStdin,
        /// Bytes read past the handshake.
        leftover: BytesMut,
    },
    /// An encrypted session (`socket=`, Slurm dial-back), read directly.
    Session(Box<DirectParts>),
    /// A stream through a relay's channel (`via=`, ssh fan-out).
    Relayed {
        reader: ReadHalf<DuplexStream>,
        writer: WriteHalf<DuplexStream>,
        leftover: BytesMut,
    },
}

/// A local process behind a gateway.
pub(crate) struct Process {
    /// Its pid (and process group).
    pub(crate) pid: u32,
    /// Its exit status, once it exited.
    pub(crate) exit: watch::Receiver<Option<ExitStatus>>,
}

/// How long a closed stream waits for the worker's exit status, to
/// report it.
pub(crate) const EOF_STATUS_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

impl From<Connected> for Parts {
    fn from(c: Connected) -> Parts {
        Parts {
            info: c.info,
            streams: Streams::Session(Box::new(c.parts)),
            process: None,
            uploaded: false,
            stderr: None,
            eof_reason: None,
        }
    }
}
