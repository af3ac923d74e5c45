//! remex-group: many gateways at once.
//!
//! [`Group`] starts gateways in parallel and ends them together;
//! [`MultiChannel`] handles one channel per gateway; a [`ReceiveQueue`]
//! merges their items and announces each channel's end with an endmarker,
//! so that a consumer never waits for a worker that is gone.
//!
//! On top, dask's model: [`Group::submit`] returns a [`TaskFuture`];
//! [`gather`] turns nested containers of futures into values;
//! [`Group::map`] streams many results with bounded memory. A worker's death
//! re-runs its unfinished tasks elsewhere.

#![forbid(unsafe_code)]

#[cfg(feature = "dashboard")]
mod dashboard;
mod future;
mod gather;
mod group;
mod job;
mod lane;
mod metrics;
mod multichannel;
mod placement;
mod pool;
mod queue;
mod record;
mod room;
mod schedule;
mod slot;

#[cfg(feature = "dashboard")]
pub use dashboard::Dashboard;
pub use future::{as_completed, gather_stream, SharedTask, TaskFuture, WithDetails};
pub use gather::{gather, Errors, Gather, Gathered, Skipped};
pub use group::{DataRef, Group, TERMINATE_BOUND};
pub use multichannel::MultiChannel;
pub use pool::{DEFAULT_MAX_ATTEMPTS, DEFAULT_PER_WORKER};
pub use queue::ReceiveQueue;
pub use slot::TaskResult;
