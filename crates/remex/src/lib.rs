//! remex: remote execution for Rust — execnet, rebuilt.
//!
//! remex starts **workers** — local processes, processes on ssh hosts,
//! listeners on TCP, or anything a command reaches (`kubectl exec -i`,
//! `podman run -i`, `srun`) — runs code on them, and talks to them over
//! **channels** multiplexed on one byte stream, with typed values and flow
//! control. A [`Group`] manages many workers: receive queues announce a
//! worker's end, and dask-style [`Group::submit`] and [`gather`] spread
//! tasks over them, re-running a dead worker's tasks elsewhere. A result is
//! never lost silently: it arrives, or an error says why.
//!
//! # Quick start
//!
//! A program is its own worker: [`serve_if_worker`] first thing in `main`
//! serves the tasks you register when the program was started as a
//! worker, and from then on a spec that names no worker (`popen`,
//! `ssh=host`) starts this very program.
//!
//! ```
//! use remex::worker::{Task, TaskError, Worker};
//! use remex::{gather, Errors, Group};
//!
//! #[tokio::main]
//! async fn main() -> remex::Result<()> {
//!     remex::serve_if_worker(|| {
//!         Worker::new().task("square", |t: &Task| {
//!             let x: i64 = t.args()?;
//!             Ok::<_, TaskError>(x * x)
//!         })
//!     });
//!     let group = Group::new(["2*popen"]).await?;
//!     let futures = (1..=4)
//!         .map(|x| group.submit::<i64>("square", &x))
//!         .collect::<remex::Result<Vec<_>>>()?;
//!     assert_eq!(gather(futures, Errors::Raise).await?.value, vec![1, 4, 9, 16]);
//!     Ok(())
//! }
//! ```
//!
//! A single gateway and its channels, as in execnet: a rhai script with
//! `channel` in scope, or a Rust task called by name.
//!
//! ```
//! # #[tokio::main] async fn main() -> remex::Result<()> {
//! let gw = remex::makegateway("popen").await?;
//! let ch = gw.remote_exec("channel.send(channel.receive() + 1)")?;
//! ch.send(&41).await?;
//! assert_eq!(ch.receive::<i64>().await?, 42);
//! gw.exit().await?;
//! # Ok(()) }
//! ```
//!
//! # Specs
//!
//! A gateway is described by an execnet-style [`Spec`]: `key=value` parts
//! joined by `//`, one transport and options.
//!
//! | spec | worker |
//! |---|---|
//! | `popen` | a local process: this program if it serves, else `remex-worker` |
//! | `ssh=user@host` | over OpenSSH; the worker binary is uploaded if the host lacks it |
//! | `cmd=kubectl exec -i pod -- remex-worker` | any command whose stdin/stdout reach a worker |
//! | `socket=host:port//secret_file=PATH` | a listener (`remex-worker --listen`), over an encrypted, mutually authenticated session |
//! | `popen//via=ID`, `socket=host:0//installvia=ID` | started through gateway `ID` of a [`Group`] |
//!
//! Options for every transport: `id=`, `chdir=`, `env:NAME=value`,
//! `nice=`, `liveness=SECONDS`, `start_timeout=SECONDS` (default 30),
//! `worker=PATH` (or `worker=self`), and
//! limits for the gateway's scripts (`script_max_memory=`,
//! `script_max_operations=`, ...: docs/scripts.md). In a [`Group`],
//! `N*spec` starts N gateways.
//!
//! # Where things are
//!
//! - [`makegateway`], [`Gateway`], [`Channel`]: one worker and its
//!   channels; values are [`Value`]s or any serde type.
//! - [`Group`], [`MultiChannel`], [`ReceiveQueue`]: many workers;
//!   [`Group::submit`], [`Group::map`], [`gather`], [`as_completed`],
//!   [`Group::scatter`]: tasks and data, dask's way.
//! - [`worker`]: a worker's tasks ([`worker::Worker`], [`worker::Task`])
//!   and its scripts' own functions and limits.
//! - Scripts: [`Gateway::remote_exec`] runs rhai source on the worker with
//!   `channel` in scope, [`Gateway::remote_exec_with`] with named
//!   arguments; they call the worker's tasks, files, processes and more
//!   (docs/scripts.md).
//! - [`blocking`]: the same for plain threads, without a runtime.
//! - [`sync`]: primitives shared by threads and tasks, and the service
//!   lifecycle.
//! - [`Error`]: every failure, each naming the spec, gateway or worker.
//! - [`core`]: the engine's internals (connections, the wire protocol,
//!   transports), for tools and tests.

#![forbid(unsafe_code)]

pub use remex_core::{
    catch_stops, from_value, makegateway, pause_workers, to_value, with_timeout,
    AsyncChannelReader, AsyncChannelWriter, Channel, ChannelReader, ChannelRef, ChannelWriter,
    Error, Gateway, GatewayState, Liveness, RemoteError, Result, SlurmOptions, Spec, SpecError,
    Transport, Value, ValueError, WorkersPaused, VERSION,
};
pub use remex_group::{
    as_completed, gather, gather_stream, DataRef, Errors, Gather, Gathered, Group, MultiChannel,
    ReceiveQueue, SharedTask, Skipped, TaskFuture, TaskResult, WithDetails, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PER_WORKER, TERMINATE_BOUND,
};

#[cfg(feature = "dashboard")]
pub use remex_group::Dashboard;
pub use remex_worker::serve_if_worker;

pub mod blocking;
pub mod rsync;

/// The engine's internals (the `remex-core` crate): connections, the wire
/// protocol, transports, the workers' built-in tasks. Programs need none
/// of it; tools and tests do. What the crate root exports ([`Channel`],
/// [`Gateway`], [`Value`]...) is not here: one path per name (`cargo
/// xtask lint` checks it).
///
/// ```
/// // The variable that tells a program it was started as a worker.
/// assert_eq!(remex::core::transport::popen::WORKER_ENV, "REMEX_WORKER");
/// ```
pub mod core {
    pub use remex_core::{builtin, conn, transport, wire};
}

/// Primitives shared by threads and async tasks, and the service
/// lifecycle (the `remex-sync` crate).
pub mod sync {
    pub use remex_sync::*;
}

/// The worker library: build a custom worker, or let a program serve as its
/// own worker.
pub mod worker {
    // Listed, not globbed: `serve_if_worker` is at the crate root and
    // `ScriptLimits` in `remex::core::wire` (one path per name).
    pub use remex_worker::{
        rhai, rsync, with_self_worker, CommandOutcome, CommandRequest, Place, Task, TaskError,
        Transfer, Worker, DEFAULT_MAX_OUTPUT, DEFAULT_SCRIPT_LIMITS, MOST_RETURNED,
    };
}
