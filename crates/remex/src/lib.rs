//! remex: remote execution for Rust — execnet, rebuilt.
//!
//! Start workers (local processes now; ssh hosts and any command later),
//! run rhai scripts and registered Rust tasks on them, and talk to them over
//! channels multiplexed on one byte stream, with flow control and typed
//! values.
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
//! This crate re-exports [`remex_core`] (gateways, channels, values, the
//! wire protocol) and [`remex_worker`] (the worker library, under
//! [`worker`]).

pub use remex_core::*;
pub use remex_group::{as_completed, SharedTask, TaskResult, WithDetails};
pub use remex_group::{
    gather, gather_stream, DataRef, Errors, Gather, Gathered, Group, MultiChannel, ReceiveQueue,
    Skipped, TaskFuture, TERMINATE_BOUND,
};

pub use remex_worker::serve_if_worker;

pub mod blocking;

/// Primitives shared by threads and async tasks, and the service
/// lifecycle (the `remex-sync` crate).
pub mod sync {
    pub use remex_sync::*;
}

/// The worker library: build a custom worker, or let a program serve as its
/// own worker.
pub mod worker {
    pub use remex_worker::*;
}
