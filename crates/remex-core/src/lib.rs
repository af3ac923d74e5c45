//! remex-core: the wire protocol, values, channels and gateways of remex.
//!
//! remex runs work in other processes and on other hosts. A [`Gateway`]
//! starts a worker and talks to it over one byte stream, on which any number
//! of [`Channel`]s are multiplexed. Items on channels are [`Value`]s; any
//! serde type converts through them.
//!
//! ```
//! # #[tokio::main] async fn main() -> remex::Result<()> {
//! let gw = remex::makegateway("popen").await?;
//! let ch = gw.remote_exec("for x in channel { channel.send(x * x) }")?;
//! for i in 0..3 {
//!     ch.send(&i).await?;
//!     println!("{}", ch.receive::<i64>().await?);
//! }
//! ch.close(None);
//! gw.exit().await?;
//! # Ok(()) }
//! ```
//!
//! The layers, bottom up: [`wire`] (frames and handshake) and [`Value`],
//! both from remex-proto (the protocol without I/O); [`conn`] (the engine
//! both ends run), [`Channel`], [`Gateway`] and [`transport`]. One path
//! per name: a program's types are at the root, the engine's in the
//! modules (`cargo xtask lint` checks it).

pub mod builtin;
mod channel_file;
pub mod conn;
mod error;
mod gateway;
mod pause;
mod spec;
mod stops;
pub mod transport;
pub(crate) use remex_proto::value;
pub use remex_proto::wire;

// One path per name (checked by `cargo xtask lint`): the types a program
// names live here, at the root; the engine's live in `conn`, `wire`,
// `transport` and `builtin`.
pub use channel_file::{AsyncChannelReader, AsyncChannelWriter, ChannelReader, ChannelWriter};
pub use conn::channel::Channel;
pub use error::{with_timeout, Error, RemoteError, Result};
pub use gateway::{makegateway, Gateway, GatewayState};
pub use pause::{pause_workers, WorkersPaused};
pub use spec::{Liveness, SlurmOptions, Spec, SpecError, Transport};
pub use stops::catch_stops;
pub use value::{from_value, to_value, ChannelRef, Value, ValueError};

/// The version of remex this crate belongs to.
///
/// ```
/// assert_eq!(remex::VERSION, env!("CARGO_PKG_VERSION"));
/// ```
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
