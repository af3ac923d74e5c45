//! remex-group: many gateways at once.
//!
//! [`Group`] starts gateways in parallel and ends them together;
//! [`MultiChannel`] handles one channel per gateway; a [`ReceiveQueue`]
//! merges their items and announces each channel's end with an endmarker,
//! so that a consumer never waits for a worker that is gone.

mod group;
mod multichannel;
mod queue;

pub use group::{Group, TERMINATE_BOUND};
pub use multichannel::MultiChannel;
pub use queue::ReceiveQueue;
