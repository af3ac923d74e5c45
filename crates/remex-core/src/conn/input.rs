//! Reading a connection's input: decoding whole messages out of the read
//! buffer and dispatching them, and the reader task that reads a stream
//! (the `via` relay's in-memory stream, the portable fallback).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{EofReason, Shared};
use crate::error::Error;
use crate::wire::{Kind, MessageDecoder, WireError};

/// Decodes and dispatches every whole message in `buf`. Returns false if
/// the stream is broken (the connection is then lost, with the reason).
pub(super) fn drain(shared: &Arc<Shared>, dec: &mut MessageDecoder, buf: &mut BytesMut) -> bool {
    if !buf.is_empty() {
        shared.input_reads.fetch_add(1, Ordering::Relaxed);
        shared
            .last_input_ms
            .store(super::since_base_ms(), Ordering::Relaxed);
    }
    loop {
        let at = buf.len();
        match dec.decode(buf) {
            Ok(Some(msg)) => {
                // Counted before it is delivered: whoever it wakes sees it.
                shared.traffic.received(at - buf.len(), 1);
                shared.arrived();
                shared.dispatch(msg);
            }
            Ok(None) => {
                shared.traffic.received(at - buf.len(), 0);
                return true;
            }
            // The frame was whole, only its payload was bad: the stream is
            // still in step, so only that channel fails.
            Err(WireError::BadPayload {
                kind: kind @ (Kind::Exec | Kind::Data),
                channel,
                detail,
            }) => shared.bad_payload(kind, channel, detail),
            Err(source) => {
                shared.set_lost(Error::Protocol {
                    gateway: shared.name.clone(),
                    source,
                });
                return false;
            }
        }
    }
}

/// The reason reported when the input ends (from `eof_reason` if given),
/// and whether the stream was cut in the middle of a frame (`cut` bytes of
/// it arrived).
pub(super) async fn end_of_input(eof_reason: &Option<EofReason>, cut: usize) -> String {
    let why = match eof_reason {
        Some(f) => f().await,
        None => "the connection closed".to_string(),
    };
    if cut == 0 {
        why
    } else {
        format!("{why}, in the middle of a frame ({cut} bytes of it arrived)")
    }
}

/// Makes room in a read buffer for the next `read`.
pub(super) fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 16 * 1024 {
        buf.reserve(256 * 1024);
    }
}

pub(super) async fn read_loop<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    mut r: R,
    mut buf: BytesMut,
    mut dec: MessageDecoder,
    eof_reason: Option<EofReason>,
) {
    let reason = loop {
        if !drain(&shared, &mut dec, &mut buf) {
            return;
        }
        make_room(&mut buf);
        match r.read_buf(&mut buf).await {
            Ok(0) => break end_of_input(&eof_reason, buf.len()).await,
            Ok(_) => {}
            Err(e) => break format!("reading failed: {e}"),
        }
    };
    shared.stream_lost(reason);
}
