//! Frames: the length-delimited unit on the byte stream.
//!
//! ```text
//! +----------------+--------+----------------+---------------------------+
//! | length: u32 LE | kind   | channel: u32 LE| payload (length - 5 bytes)|
//! +----------------+--------+----------------+---------------------------+
//!   4 bytes          1 byte   4 bytes          0 ..= max_payload bytes
//! ```
//!
//! `length` counts everything after itself (kind, channel and payload). The
//! decoder checks it against the configured maximum *before* reserving any
//! memory, so a hostile length can never make it allocate.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::WireError;

/// Bytes before the payload: length (4), kind (1), channel (4).
///
/// ```
/// use bytes::BytesMut;
/// use remex::core::wire::{encode_frame, Kind, HEADER_LEN};
/// let mut buf = BytesMut::new();
/// encode_frame(Kind::Data, 1, b"abc", &mut buf);
/// assert_eq!(buf.len(), HEADER_LEN + 3);
/// ```
pub const HEADER_LEN: usize = 9;

/// Default largest payload of one frame (1 MiB). Larger messages are chunked.
///
/// ```
/// assert_eq!(remex::core::wire::DEFAULT_MAX_PAYLOAD, 1 << 20);
/// ```
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;

/// What a frame carries. The numeric values are the wire encoding.
///
/// ```
/// use remex::core::wire::Kind;
/// assert_eq!(Kind::from_u8(Kind::Close as u8), Some(Kind::Close));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Start a script or a task on a new channel; payload: postcard `ExecRequest`.
    Exec = 1,
    /// One item; payload: postcard `Value`.
    Data = 2,
    /// One item that is a byte string; payload: the raw bytes (no encoding).
    Bytes = 3,
    /// A piece of a message too large for one frame; the last piece carries the
    /// message's own kind.
    Chunk = 4,
    /// The sender closed the channel in both directions.
    Close = 5,
    /// The sender closed the channel with an error; payload: postcard `String`.
    CloseError = 6,
    /// The sender will send no more items; the other direction stays open.
    LastMessage = 7,
    /// The receiver consumed items; payload: u32 LE bytes of credit returned.
    Credit = 8,
    /// The controller asks the worker to end.
    Terminate = 9,
    /// Ask for the peer's status; the channel field is a request id.
    StatusRequest = 10,
    /// Answer to `StatusRequest`; payload: postcard `RemoteStatus`.
    StatusReply = 11,
    /// A worker's log event; payload: postcard `LogRecord`; the channel
    /// field is the call it happened in (0: none). Since version 5.
    Log = 12,
    /// The controller will be silent for a while (stopped by its user):
    /// its silence does not count against it, and the worker's commands
    /// are suspended, until `Resume`. Since version 6.
    Pause = 13,
    /// The controller is back: the commands continue, silence counts
    /// again. Since version 6.
    Resume = 14,
}

impl Kind {
    /// Decodes a kind byte, or `None` for an unknown one.
    ///
    /// ```
    /// use remex::core::wire::Kind;
    /// assert_eq!(Kind::from_u8(2), Some(Kind::Data));
    /// assert_eq!(Kind::from_u8(200), None);
    /// ```
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Exec,
            2 => Kind::Data,
            3 => Kind::Bytes,
            4 => Kind::Chunk,
            5 => Kind::Close,
            6 => Kind::CloseError,
            7 => Kind::LastMessage,
            8 => Kind::Credit,
            9 => Kind::Terminate,
            10 => Kind::StatusRequest,
            11 => Kind::StatusReply,
            12 => Kind::Log,
            13 => Kind::Pause,
            14 => Kind::Resume,
            _ => return None,
        })
    }
}

/// One decoded frame.
///
/// ```
/// use bytes::BytesMut;
/// use remex::core::wire::{encode_frame, Frame, FrameDecoder, Kind};
/// let mut buf = BytesMut::new();
/// encode_frame(Kind::Bytes, 3, b"hi", &mut buf);
/// let f: Frame = FrameDecoder::new(1024).decode(&mut buf).unwrap().unwrap();
/// assert_eq!((f.kind, f.channel, &f.payload[..]), (Kind::Bytes, 3, &b"hi"[..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the frame carries.
    pub kind: Kind,
    /// The channel (or request id) it belongs to.
    pub channel: u32,
    /// The payload, sharing the decoder's buffer (no copy).
    pub payload: Bytes,
}

/// Appends one frame to `dst`. The caller keeps `payload` within the peer's
/// maximum; [`super::encode_message`] does the chunking.
///
/// ```
/// use bytes::BytesMut;
/// use remex::core::wire::{encode_frame, FrameDecoder, Kind};
/// let mut buf = BytesMut::new();
/// encode_frame(Kind::Close, 5, b"", &mut buf);
/// assert_eq!(FrameDecoder::new(1024).decode(&mut buf).unwrap().unwrap().kind, Kind::Close);
/// ```
pub fn encode_frame(kind: Kind, channel: u32, payload: &[u8], dst: &mut BytesMut) {
    dst.reserve(HEADER_LEN + payload.len());
    encode_header(kind, channel, payload.len(), dst);
    dst.put_slice(payload);
}

/// Appends the header of a frame whose `len` payload bytes follow it on
/// the stream (written from elsewhere: the zero-copy output path).
///
/// ```
/// use bytes::BytesMut;
/// use remex::core::wire::{encode_header, FrameDecoder, Kind};
/// // A header now, its payload from another buffer after it:
/// let mut buf = BytesMut::new();
/// encode_header(Kind::Bytes, 1, 3, &mut buf);
/// buf.extend_from_slice(b"xyz");
/// assert_eq!(&FrameDecoder::new(1024).decode(&mut buf).unwrap().unwrap().payload[..], b"xyz");
/// ```
pub fn encode_header(kind: Kind, channel: u32, len: usize, dst: &mut BytesMut) {
    debug_assert!(len <= u32::MAX as usize - 5);
    dst.put_u32_le((len + 5) as u32);
    dst.put_u8(kind as u8);
    dst.put_u32_le(channel);
}

/// Splits frames off a growing buffer.
///
/// ```
/// use bytes::BytesMut;
/// use remex::core::wire::{encode_frame, FrameDecoder, Kind};
///
/// let mut buf = BytesMut::new();
/// encode_frame(Kind::Close, 7, b"", &mut buf);
/// let mut dec = FrameDecoder::new(1024);
/// let frame = dec.decode(&mut buf).unwrap().unwrap();
/// assert_eq!((frame.kind, frame.channel), (Kind::Close, 7));
/// assert!(dec.decode(&mut buf).unwrap().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_payload: usize,
}

impl FrameDecoder {
    /// A decoder that refuses frames whose payload exceeds `max_payload`.
    ///
    /// ```
    /// let dec = remex::core::wire::FrameDecoder::new(remex::core::wire::DEFAULT_MAX_PAYLOAD);
    /// let _ = dec;
    /// ```
    pub fn new(max_payload: usize) -> Self {
        FrameDecoder { max_payload }
    }

    /// Returns the next complete frame, `None` if more bytes are needed, or an
    /// error for a frame that breaks the format. After an error the stream is
    /// out of sync and must be abandoned.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use remex::core::wire::{encode_frame, FrameDecoder, Kind};
    /// let mut whole = BytesMut::new();
    /// encode_frame(Kind::Data, 1, b"abc", &mut whole);
    /// let mut dec = FrameDecoder::new(1024);
    /// // Part of a frame: not yet.
    /// let mut buf = whole.split_to(4);
    /// assert_eq!(dec.decode(&mut buf).unwrap(), None);
    /// buf.extend_from_slice(&whole);
    /// assert!(dec.decode(&mut buf).unwrap().is_some());
    /// // A frame over the bound is an error.
    /// let mut big = BytesMut::new();
    /// encode_frame(Kind::Data, 1, &[0; 2048], &mut big);
    /// assert!(dec.decode(&mut big).is_err());
    /// ```
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        if buf.starts_with(&super::MAGIC) {
            return Err(WireError::SecondHello);
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 5 {
            return Err(WireError::FrameTooShort { length: len });
        }
        let payload_len = len - 5;
        if payload_len > self.max_payload {
            return Err(WireError::FrameTooLarge {
                length: payload_len,
                max: self.max_payload,
            });
        }
        let kind = Kind::from_u8(buf[4]).ok_or(WireError::UnknownKind { kind: buf[4] })?;
        if buf.len() < 4 + len {
            // Reserve only what this checked length needs.
            buf.reserve(4 + len - buf.len());
            return Ok(None);
        }
        buf.advance(5);
        let channel = buf.get_u32_le();
        let payload = buf.split_to(payload_len).freeze();
        Ok(Some(Frame {
            kind,
            channel,
            payload,
        }))
    }
}
