//! The wire protocol, sans IO: bytes in, messages out.
//!
//! Nothing here reads a socket or knows a clock, so the whole protocol can be
//! tested deterministically and fuzzed. The connection engine
//! (remex-core's `conn`) feeds it bytes from a transport.
//!
//! A stream starts with a [hello](Hello) from each side, then carries
//! [frames](Frame). See `docs/protocol.md` for the full picture.

mod frame;
mod handshake;
mod message;
mod payload;

pub use frame::{
    encode_frame, encode_header, Frame, FrameDecoder, Kind, DEFAULT_MAX_PAYLOAD, HEADER_LEN,
};
pub use handshake::{
    encode_hello, ClusterInfo, HandshakeScanner, Hello, Role, ScriptLimits, WorkerInfo,
    WorkerSetup, DEFAULT_MAX_NOISE, MAGIC, MAX_HELLO, PROTOCOL_VERSION,
};
pub use message::{
    encode_chunked, encode_message, ExecRequest, LogRecord, Message, MessageDecoder, RemoteStatus,
};

/// A stream that breaks the frame format. The stream cannot be resynchronised
/// after one of these.
///
/// ```
/// use bytes::BytesMut;
/// use remex::core::wire::{encode_frame, FrameDecoder, Kind, WireError};
/// let mut buf = BytesMut::new();
/// encode_frame(Kind::Data, 1, &[0; 100], &mut buf);
/// let e: WireError = FrameDecoder::new(10).decode(&mut buf).unwrap_err();
/// assert!(e.to_string().contains("100"), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Another handshake where a frame should start: a second process
    /// answers on the same stream (`srun -n2`, `mpirun -np 2`).
    #[error("a second handshake arrived where a frame should start: two workers answer on one stream (a launcher started more than one task, e.g. srun -n2 or mpirun -np 2); start one worker per gateway (srun -n1) and use N*spec for more")]
    SecondHello,
    /// A frame's length field is smaller than its fixed header.
    #[error("frame length {length} is shorter than the 5-byte frame header")]
    FrameTooShort {
        /// The length read.
        length: usize,
    },
    /// A frame's payload exceeds the maximum.
    #[error("frame payload of {length} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The length announced.
        length: usize,
        /// The maximum accepted.
        max: usize,
    },
    /// Chunked messages in progress exceed the bound.
    #[error("chunked message exceeds the maximum message size of {max} bytes")]
    MessageTooLarge {
        /// The bound.
        max: usize,
    },
    /// The peer sent data on a channel without credit.
    #[error("data on channel {channel} past its flow-control window ({outstanding} bytes not yet credited back, window {window}): the peer ignores flow control")]
    WindowOverrun {
        /// The channel.
        channel: u32,
        /// Bytes received on it and not yet credited back.
        outstanding: usize,
        /// The channel's window.
        window: u32,
    },
    /// A frame kind this version does not know.
    #[error("unknown frame kind {kind}")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },
    /// A payload that does not decode as its kind requires.
    #[error("bad {kind:?} payload on channel {channel}: {detail}")]
    BadPayload {
        /// The frame kind.
        kind: Kind,
        /// The channel.
        channel: u32,
        /// What was wrong.
        detail: String,
    },
    /// A message that could not be encoded.
    #[error("cannot encode {what}: {detail}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why it failed.
        detail: String,
    },
}

/// A handshake that did not complete.
///
/// ```
/// use bytes::BytesMut;
/// let mut scan = remex::core::wire::HandshakeScanner::new(8);
/// let mut buf = BytesMut::from(&b"far too much output"[..]);
/// let e: remex::core::wire::HandshakeError = scan.scan(&mut buf).unwrap_err();
/// assert!(e.to_string().contains("no remex handshake within the first 8 bytes"), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: this side speaks version {ours}, the peer speaks version {theirs}")]
    VersionMismatch {
        /// Ours.
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// The stream ended before a hello arrived.
    #[error("the peer closed the stream before the remex handshake ({skipped} bytes of other output{})", noise_suffix(.noise))]
    NoHandshake {
        /// Bytes seen before the end.
        skipped: usize,
        /// The start of what was seen, as text.
        noise: String,
    },
    /// More than the allowed bytes arrived before a hello.
    #[error("no remex handshake within the first {max} bytes of output{}", noise_suffix(.noise))]
    TooMuchNoise {
        /// The bound.
        max: usize,
        /// The start of what was seen, as text.
        noise: String,
    },
    /// A hello that does not decode.
    #[error("malformed handshake: {detail}")]
    BadHello {
        /// What was wrong.
        detail: String,
    },
}

fn noise_suffix(noise: &str) -> String {
    if noise.is_empty() {
        String::new()
    } else {
        format!("; it printed: {noise:?}")
    }
}
