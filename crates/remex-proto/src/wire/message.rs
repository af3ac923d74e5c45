//! Messages: what frames mean, and the chunking of large payloads.
//!
//! Over 500 lines: about 200 are tests; the code is under 300.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::frame::{encode_frame, Frame, FrameDecoder, Kind};
use super::WireError;
use crate::value::Value;

/// What an `Exec` message asks the worker to run.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let gw = remex::makegateway("popen").await?;
/// let req = remex::core::wire::ExecRequest::Call { name: "echo".into(), args: remex::Value::Int(3) };
/// let ch = gw.connection().exec(req)?;
/// assert_eq!(ch.receive::<i64>().await?, 3);
/// gw.exit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExecRequest {
    /// A rhai script, run with `channel` in scope.
    Script {
        /// The script's source text.
        source: String,
        /// Variables for the script's scope: a map from names to values,
        /// or `Unit` for none.
        args: Value,
    },
    /// A task registered in the worker, called by name.
    Call {
        /// The task's registered name.
        name: String,
        /// Its argument.
        args: Value,
    },
}

/// A worker's answer to a status request.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let gw = remex::makegateway("popen").await?;
/// let s: remex::core::wire::RemoteStatus = gw.remote_status().await?;
/// assert_eq!(s.numexecuting, 0);
/// gw.exit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RemoteStatus {
    /// Channels open on the worker.
    pub numchannels: u64,
    /// Scripts and tasks running on the worker.
    pub numexecuting: u64,
}

/// A worker's `tracing` event, as the controller re-emits it (kind 12):
/// its level, target, message and fields, and where it happened.
///
/// ```
/// use bytes::BytesMut;
/// use remex::core::wire::{encode_message, LogRecord, Message, MessageDecoder};
/// let record = LogRecord {
///     level: 3,
///     target: "my_task".into(),
///     message: "halfway".into(),
///     fields: vec![("step".into(), "5".into())],
///     request: Some(7),
/// };
/// let msg = Message::Log { channel: 4, record };
/// let mut buf = BytesMut::new();
/// encode_message(&msg, 1024, &mut buf).unwrap();
/// assert_eq!(MessageDecoder::new(1024, 1 << 20).decode(&mut buf).unwrap(), Some(msg));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogRecord {
    /// 1 ERROR, 2 WARN, 3 INFO, 4 DEBUG, 5 TRACE.
    pub level: u8,
    /// The event's target (its module path unless it set one).
    pub target: String,
    /// The event's message.
    pub message: String,
    /// Its other fields, as text.
    pub fields: Vec<(String, String)>,
    /// The task pool's request it happened in, on a lane channel.
    pub request: Option<i64>,
}

/// One protocol message.
///
/// ```
/// use bytes::BytesMut;
/// use remex::core::wire::{encode_message, Message, MessageDecoder};
/// let msg = Message::Close { channel: 3 };
/// let mut buf = BytesMut::new();
/// encode_message(&msg, 1024, &mut buf).unwrap();
/// assert_eq!(MessageDecoder::new(1024, 1 << 20).decode(&mut buf).unwrap(), Some(msg));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Run `request` with its channel `channel`.
    Exec {
        /// The new channel's id, chosen by the sender.
        channel: u32,
        /// What to run.
        request: ExecRequest,
    },
    /// One item on a channel.
    Data {
        /// The channel.
        channel: u32,
        /// The item.
        value: Value,
        /// Payload bytes on the wire, counted against flow-control credit.
        size: usize,
    },
    /// The sender closed the channel in both directions.
    Close {
        /// The channel.
        channel: u32,
    },
    /// The sender closed the channel because of an error.
    CloseError {
        /// The channel.
        channel: u32,
        /// The error's text, with its position where known.
        error: String,
    },
    /// The sender will send no more items on the channel.
    LastMessage {
        /// The channel.
        channel: u32,
    },
    /// The receiver returns credit after consuming items.
    Credit {
        /// The channel.
        channel: u32,
        /// Bytes of credit returned.
        bytes: u32,
    },
    /// The controller asks the worker to end.
    Terminate,
    /// The controller will be silent for a while (its process is being
    /// stopped): until `Resume`, the worker's liveness bound does not run
    /// and its commands are suspended.
    Pause,
    /// The controller is back: the commands continue, the liveness bound
    /// runs again.
    Resume,
    /// Ask the peer for its status.
    StatusRequest {
        /// Request id echoed in the reply.
        id: u32,
    },
    /// The peer's status.
    StatusReply {
        /// The request id.
        id: u32,
        /// The status.
        status: RemoteStatus,
    },
    /// A worker's log event, in the call on `channel` (0: none).
    Log {
        /// The call's channel.
        channel: u32,
        /// The event.
        record: LogRecord,
    },
}

fn to_postcard<T: Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>, WireError> {
    postcard::to_stdvec(v).map_err(|e| WireError::Encode {
        what,
        detail: e.to_string(),
    })
}

/// Appends `msg` to `dst` as one or more frames, chunking payloads larger
/// than `max_payload`. Returns the payload size counted against credit (the
/// item's size for `Data`, zero otherwise).
///
/// ```
/// use bytes::BytesMut;
/// use remex::core::wire::{encode_message, Message, MessageDecoder};
/// use remex::Value;
///
/// let mut buf = BytesMut::new();
/// let msg = Message::Data { channel: 1, value: Value::Bytes(vec![7u8; 3000].into()), size: 3000 };
/// encode_message(&msg, 1024, &mut buf).unwrap(); // three frames
/// let mut dec = MessageDecoder::new(1024, 1 << 20);
/// assert_eq!(dec.decode(&mut buf).unwrap(), Some(msg));
/// ```
pub fn encode_message(
    msg: &Message,
    max_payload: usize,
    dst: &mut BytesMut,
) -> Result<usize, WireError> {
    let mut counted = 0;
    match msg {
        Message::Exec { channel, request } => {
            let p = to_postcard("exec request", request)?;
            encode_chunked(Kind::Exec, *channel, &p, max_payload, dst);
        }
        Message::Data { channel, value, .. } => {
            if let Value::Bytes(b) = value {
                encode_chunked(Kind::Bytes, *channel, b, max_payload, dst);
                counted = b.len();
            } else {
                let p = value.to_wire()?;
                encode_chunked(Kind::Data, *channel, &p, max_payload, dst);
                counted = p.len();
            }
        }
        Message::Close { channel } => encode_frame(Kind::Close, *channel, &[], dst),
        Message::CloseError { channel, error } => {
            let p = to_postcard("error text", error)?;
            encode_chunked(Kind::CloseError, *channel, &p, max_payload, dst);
        }
        Message::LastMessage { channel } => encode_frame(Kind::LastMessage, *channel, &[], dst),
        Message::Credit { channel, bytes } => encode_chunked(
            Kind::Credit,
            *channel,
            &bytes.to_le_bytes(),
            max_payload,
            dst,
        ),
        Message::Terminate => encode_frame(Kind::Terminate, 0, &[], dst),
        Message::Pause => encode_frame(Kind::Pause, 0, &[], dst),
        Message::Resume => encode_frame(Kind::Resume, 0, &[], dst),
        Message::StatusRequest { id } => encode_frame(Kind::StatusRequest, *id, &[], dst),
        Message::StatusReply { id, status } => {
            let p = to_postcard("status", status)?;
            encode_chunked(Kind::StatusReply, *id, &p, max_payload, dst);
        }
        Message::Log { channel, record } => {
            let p = to_postcard("log record", record)?;
            encode_chunked(Kind::Log, *channel, &p, max_payload, dst);
        }
    }
    Ok(counted)
}

/// Encodes a data item straight from an already-serialized payload:
/// `Chunk` frames of at most `max_payload` bytes, then one of `kind` with
/// the rest.
///
/// ```
/// use remex::core::wire::{encode_chunked, FrameDecoder, Kind, DEFAULT_MAX_PAYLOAD};
/// let mut out = bytes::BytesMut::new();
/// encode_chunked(Kind::Data, 3, &[7u8; 10], 4, &mut out);
/// let mut frames = FrameDecoder::new(DEFAULT_MAX_PAYLOAD);
/// let f = frames.decode(&mut out).unwrap().unwrap();
/// assert_eq!((f.kind, f.channel, f.payload.len()), (Kind::Chunk, 3, 4));
/// ```
pub fn encode_chunked(
    kind: Kind,
    channel: u32,
    payload: &[u8],
    max_payload: usize,
    dst: &mut BytesMut,
) {
    let mut rest = payload;
    while rest.len() > max_payload {
        let (head, tail) = rest.split_at(max_payload);
        encode_frame(Kind::Chunk, channel, head, dst);
        rest = tail;
    }
    encode_frame(kind, channel, rest, dst);
}

/// Turns a byte stream into messages: frame decoding plus reassembly of
/// chunked payloads, each bounded.
///
/// ```
/// use bytes::BytesMut;
/// use remex::core::wire::{encode_message, Message, MessageDecoder};
/// let msg = Message::Data { channel: 1, value: remex::Value::Int(5), size: 0 };
/// let mut buf = BytesMut::new();
/// encode_message(&msg, 1024, &mut buf).unwrap();
/// let got = MessageDecoder::new(1024, 1 << 20).decode(&mut buf).unwrap().unwrap();
/// assert!(matches!(got, Message::Data { channel: 1, value: remex::Value::Int(5), .. }));
/// ```
#[derive(Debug)]
pub struct MessageDecoder {
    frames: FrameDecoder,
    partial: HashMap<u32, BytesMut>,
    partial_total: usize,
    max_message: usize,
}

impl MessageDecoder {
    /// `max_payload` bounds one frame; `max_message` bounds the sum of all
    /// partly received chunked messages.
    ///
    /// ```
    /// let dec = remex::core::wire::MessageDecoder::new(1 << 20, 1 << 30);
    /// let _ = dec;
    /// ```
    pub fn new(max_payload: usize, max_message: usize) -> Self {
        MessageDecoder {
            frames: FrameDecoder::new(max_payload),
            partial: HashMap::new(),
            partial_total: 0,
            max_message,
        }
    }

    /// Returns the next complete message, or `None` if more bytes are needed.
    /// An error means the stream is corrupt and must be abandoned.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use remex::core::wire::{encode_message, Message, MessageDecoder};
    /// let mut buf = BytesMut::new();
    /// encode_message(&Message::Terminate, 1024, &mut buf).unwrap();
    /// let mut dec = MessageDecoder::new(1024, 1 << 20);
    /// assert_eq!(dec.decode(&mut buf).unwrap(), Some(Message::Terminate));
    /// assert_eq!(dec.decode(&mut buf).unwrap(), None, "nothing more");
    /// ```
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WireError> {
        while let Some(frame) = self.frames.decode(buf)? {
            if let Some(msg) = self.on_frame(frame)? {
                return Ok(Some(msg));
            }
        }
        Ok(None)
    }

    fn on_frame(&mut self, frame: Frame) -> Result<Option<Message>, WireError> {
        let Frame {
            kind,
            channel,
            payload,
        } = frame;
        if kind == Kind::Chunk {
            self.partial_total += payload.len();
            if self.partial_total > self.max_message {
                return Err(WireError::MessageTooLarge {
                    max: self.max_message,
                });
            }
            self.partial
                .entry(channel)
                .or_default()
                .extend_from_slice(&payload);
            return Ok(None);
        }
        let payload = match self.partial.remove(&channel) {
            Some(mut head) => {
                self.partial_total -= head.len();
                head.extend_from_slice(&payload);
                head.freeze()
            }
            None => payload,
        };
        decode_payload(kind, channel, payload).map(Some)
    }
}

fn from_postcard<'a, T: Deserialize<'a>>(
    kind: Kind,
    channel: u32,
    p: &'a [u8],
) -> Result<T, WireError> {
    postcard::from_bytes(p).map_err(|e| WireError::BadPayload {
        kind,
        channel,
        detail: e.to_string(),
    })
}

fn expect_empty(kind: Kind, channel: u32, p: &[u8]) -> Result<(), WireError> {
    if p.is_empty() {
        Ok(())
    } else {
        Err(WireError::BadPayload {
            kind,
            channel,
            detail: format!("expected no payload, got {} bytes", p.len()),
        })
    }
}

fn decode_payload(kind: Kind, channel: u32, payload: Bytes) -> Result<Message, WireError> {
    Ok(match kind {
        Kind::Exec => Message::Exec {
            channel,
            request: from_postcard(kind, channel, &payload)?,
        },
        Kind::Data => Message::Data {
            channel,
            size: payload.len(),
            value: Value::from_wire(&payload).map_err(|e| WireError::BadPayload {
                kind,
                channel,
                detail: e.to_string(),
            })?,
        },
        Kind::Bytes => Message::Data {
            channel,
            size: payload.len(),
            value: Value::Bytes(payload),
        },
        Kind::Close => {
            expect_empty(kind, channel, &payload)?;
            Message::Close { channel }
        }
        Kind::CloseError => Message::CloseError {
            channel,
            error: from_postcard(kind, channel, &payload)?,
        },
        Kind::LastMessage => {
            expect_empty(kind, channel, &payload)?;
            Message::LastMessage { channel }
        }
        Kind::Credit => {
            let b: [u8; 4] = payload[..].try_into().map_err(|_| WireError::BadPayload {
                kind,
                channel,
                detail: format!("credit needs 4 bytes, got {}", payload.len()),
            })?;
            Message::Credit {
                channel,
                bytes: u32::from_le_bytes(b),
            }
        }
        Kind::Terminate => {
            expect_empty(kind, channel, &payload)?;
            Message::Terminate
        }
        Kind::Pause => {
            expect_empty(kind, channel, &payload)?;
            Message::Pause
        }
        Kind::Resume => {
            expect_empty(kind, channel, &payload)?;
            Message::Resume
        }
        Kind::StatusRequest => {
            expect_empty(kind, channel, &payload)?;
            Message::StatusRequest { id: channel }
        }
        Kind::StatusReply => Message::StatusReply {
            id: channel,
            status: from_postcard(kind, channel, &payload)?,
        },
        Kind::Log => Message::Log {
            channel,
            record: from_postcard(kind, channel, &payload)?,
        },
        Kind::Chunk => unreachable!("chunks are reassembled before decoding"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(msgs: &[Message], max_payload: usize) -> Vec<Message> {
        let mut buf = BytesMut::new();
        for m in msgs {
            encode_message(m, max_payload, &mut buf).unwrap();
        }
        let mut dec = MessageDecoder::new(max_payload, 1 << 24);
        let mut out = Vec::new();
        while let Some(m) = dec.decode(&mut buf).unwrap() {
            out.push(m);
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn every_kind_roundtrips() {
        let msgs = vec![
            Message::Exec {
                channel: 1,
                request: ExecRequest::Script {
                    source: "channel.send(42)".into(),
                    args: Value::Map(vec![(Value::from("n"), Value::Int(3))]),
                },
            },
            Message::Exec {
                channel: 3,
                request: ExecRequest::Call {
                    name: "square".into(),
                    args: Value::Int(7),
                },
            },
            Message::Data {
                channel: 1,
                value: Value::Str("hi".into()),
                size: Value::Str("hi".into()).to_wire().unwrap().len(),
            },
            Message::Close { channel: 1 },
            Message::CloseError {
                channel: 3,
                error: "boom".into(),
            },
            Message::LastMessage { channel: 5 },
            Message::Credit {
                channel: 5,
                bytes: 99,
            },
            Message::Terminate,
            Message::Pause,
            Message::Resume,
            Message::StatusRequest { id: 4 },
            Message::StatusReply {
                id: 4,
                status: RemoteStatus {
                    numchannels: 2,
                    numexecuting: 1,
                },
            },
        ];
        assert_eq!(roundtrip(&msgs, 64), msgs);
    }

    #[test]
    fn interleaved_chunked_messages_reassemble_per_channel() {
        let a = Value::Bytes(Bytes::from(
            (0..5000u32).map(|i| i as u8).collect::<Vec<_>>(),
        ));
        let b = Value::List((0..300).map(Value::Int).collect());
        let mut buf = BytesMut::new();
        // Interleave the frames of two chunked messages by hand.
        let mut fa = BytesMut::new();
        let mut fb = BytesMut::new();
        encode_message(
            &Message::Data {
                channel: 1,
                value: a.clone(),
                size: 0,
            },
            100,
            &mut fa,
        )
        .unwrap();
        encode_message(
            &Message::Data {
                channel: 2,
                value: b.clone(),
                size: 0,
            },
            100,
            &mut fb,
        )
        .unwrap();
        let mut da = FrameDecoder::new(100);
        let mut db = FrameDecoder::new(100);
        loop {
            let x = da.decode(&mut fa).unwrap();
            let y = db.decode(&mut fb).unwrap();
            if x.is_none() && y.is_none() {
                break;
            }
            for f in [x, y].into_iter().flatten() {
                encode_frame(f.kind, f.channel, &f.payload, &mut buf);
            }
        }
        let mut dec = MessageDecoder::new(100, 1 << 20);
        let mut got = Vec::new();
        while let Some(Message::Data { channel, value, .. }) = dec.decode(&mut buf).unwrap() {
            got.push((channel, value));
        }
        got.sort_by_key(|(c, _)| *c);
        assert_eq!(got, vec![(1, a), (2, b)]);
    }

    #[test]
    fn oversized_frame_is_refused_before_allocating() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0x7f, 2, 0, 0, 0, 0][..]);
        let err = MessageDecoder::new(1024, 4096)
            .decode(&mut buf)
            .unwrap_err();
        assert!(
            matches!(err, WireError::FrameTooLarge { max: 1024, .. }),
            "{err}"
        );
        assert!(buf.capacity() < 1 << 20);
    }

    #[test]
    fn chunked_message_over_the_bound_is_refused() {
        let mut buf = BytesMut::new();
        for _ in 0..10 {
            encode_frame(Kind::Chunk, 1, &[0; 100], &mut buf);
        }
        let err = MessageDecoder::new(100, 500).decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, WireError::MessageTooLarge { max: 500 }),
            "{err}"
        );
    }

    #[test]
    fn unknown_kind_and_bad_payloads_are_errors() {
        let mut buf = BytesMut::new();
        encode_frame(Kind::Close, 1, b"x", &mut buf);
        assert!(MessageDecoder::new(64, 64).decode(&mut buf).is_err());
        let mut buf = BytesMut::from(&[5, 0, 0, 0, 200, 0, 0, 0, 0][..]);
        let err = MessageDecoder::new(64, 64).decode(&mut buf).unwrap_err();
        assert!(matches!(err, WireError::UnknownKind { kind: 200 }));
        let mut buf = BytesMut::new();
        encode_frame(Kind::Data, 1, &[0xff, 0xff, 0xff], &mut buf);
        assert!(matches!(
            MessageDecoder::new(64, 64).decode(&mut buf),
            Err(WireError::BadPayload {
                kind: Kind::Data,
                channel: 1,
                ..
            })
        ));
    }

    #[test]
    fn status_reply_and_credit_are_chunked_under_a_tiny_max_payload() {
        // Found by the wire_properties test: these were sent as one frame
        // whatever the maximum, and a small maximum rejected them.
        let msgs = vec![
            Message::StatusReply {
                id: 3,
                status: RemoteStatus {
                    numchannels: u64::MAX,
                    numexecuting: u64::MAX,
                },
            },
            Message::Credit {
                channel: 1,
                bytes: 7,
            },
        ];
        assert_eq!(roundtrip(&msgs, 2), msgs);
    }

    #[test]
    fn truncated_frame_waits_for_more() {
        let mut buf = BytesMut::new();
        encode_message(
            &Message::Data {
                channel: 1,
                value: Value::Int(5),
                size: 0,
            },
            64,
            &mut buf,
        )
        .unwrap();
        let full = buf.clone();
        let mut part = BytesMut::from(&full[..full.len() - 1]);
        let mut dec = MessageDecoder::new(64, 64);
        assert_eq!(dec.decode(&mut part).unwrap(), None);
        part.extend_from_slice(&full[full.len() - 1..]);
        assert!(dec.decode(&mut part).unwrap().is_some());
    }
}
