//! remex-proto: remex's protocol as plain types, without I/O and without
//! an async runtime: the [`Value`](value::Value)s channels carry and their encoding
//! ([`value`]), the wire ([`wire`]): frames, the messages they hold, and
//! the handshake that opens a connection, and one channel's state
//! ([`channel`]: credit, ends, callbacks, as events in and actions out),
//! and a connection's ([`connection`]: its channels by id, the loss, status
//! requests, where each message goes). remex-core drives them over
//! pipes, ssh and sockets; a fuzzer or another implementation can use it
//! alone.
//!
//! ```
//! use remex_proto::{value::Value, wire::Message};
//! let v = Value::List(vec![1.into(), "two".into()]);
//! assert_eq!(Value::from_wire(&v.to_wire().unwrap()).unwrap(), v);
//! # let _ = std::mem::size_of::<Message>();
//! ```

#![forbid(unsafe_code)]

pub mod channel;
pub mod connection;
pub mod value;
pub mod wire;
