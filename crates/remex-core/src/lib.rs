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
//! The layers, bottom up: [`wire`] (frames and handshake) and [`value`],
//! both from remex-proto (the protocol without I/O); [`conn`] (the engine
//! both ends run), [`channel`], [`gateway`] and [`transport`].

pub mod builtin;
pub mod channel_file;
pub mod conn;
pub mod error;
pub mod gateway;
pub mod spec;
pub mod transport;
pub use remex_proto::{value, wire};

pub use channel_file::{AsyncChannelReader, AsyncChannelWriter, ChannelReader, ChannelWriter};
pub use conn::channel;
pub use conn::channel::Channel;
pub use conn::{ConnConfig, Connection, Handlers};
pub use error::{with_timeout, Error, RemoteError, Result};
pub use gateway::{makegateway, Gateway, GatewayState};

pub use spec::{Liveness, Spec, SpecError, Transport};
pub use value::{from_value, to_value, ChannelRef, Value, ValueError};
pub use wire::{ExecRequest, RemoteStatus, ScriptLimits, WorkerInfo};

/// The version of remex this crate belongs to.
///
/// ```
/// assert_eq!(remex::VERSION, env!("CARGO_PKG_VERSION"));
/// ```
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
