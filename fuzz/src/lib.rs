//! What each fuzz target checks, as plain functions: the targets in
//! `fuzz_targets/` call them under libFuzzer (`cargo xtask fuzz`), and the
//! tests replay the seeds and every saved regression through them.
//!
//! Each `check` must never panic on any input, except to report a broken
//! property (a decoded item that does not round-trip).
//!
//! ```
//! // Arbitrary bytes: an error at worst, never a panic.
//! remex_fuzz::frame::check(&[0xff; 64]);
//! remex_fuzz::spec::check(b"popen//id=x//id=y");
//! ```

#![forbid(unsafe_code)]

/// The frame and message decoders.
pub mod frame {
    use bytes::BytesMut;
    use remex_proto::wire::{encode_message, FrameDecoder, Message, MessageDecoder};

    /// A small maximum payload, so that chunking is exercised.
    pub const MAX_PAYLOAD: usize = 64;
    const MAX_MESSAGE: usize = 1 << 20;

    /// Decodes `data` as a stream of frames and as a stream of messages;
    /// every message decoded re-encodes and decodes to itself.
    pub fn check(data: &[u8]) {
        let mut buf = BytesMut::from(data);
        let mut frames = FrameDecoder::new(MAX_PAYLOAD);
        while let Ok(Some(_)) = frames.decode(&mut buf) {}

        let mut buf = BytesMut::from(data);
        let mut messages = MessageDecoder::new(MAX_PAYLOAD, MAX_MESSAGE);
        let mut decoded = Vec::new();
        while let Ok(Some(m)) = messages.decode(&mut buf) {
            decoded.push(m);
        }
        for m in decoded {
            let mut out = BytesMut::new();
            if encode_message(&m, MAX_PAYLOAD, &mut out).is_err() {
                continue;
            }
            let mut again = MessageDecoder::new(MAX_PAYLOAD, MAX_MESSAGE);
            let back: Message = again
                .decode(&mut out)
                .expect("a re-encoded message decodes")
                .expect("a re-encoded message is complete");
            assert_eq!(normal(&back), normal(&m), "round trip");
        }
    }

    /// A message without `Data`'s wire size: postcard accepts overlong
    /// varints, so a value may re-encode shorter than it arrived (found by
    /// this target: regressions/frame/overlong_varint_data_size). The size
    /// is what arrived, which flow control must count; the value is the same.
    fn normal(m: &Message) -> String {
        match m {
            Message::Data { channel, value, .. } => format!("Data {channel} {value:?}"),
            other => format!("{other:?}"),
        }
    }
}

/// The handshake scanner (noise before the marker, then a hello).
pub mod handshake {
    use bytes::BytesMut;
    use remex_proto::wire::{encode_hello, HandshakeScanner};

    /// Scans `data` for a hello; a hello found re-encodes and scans to
    /// itself.
    pub fn check(data: &[u8]) {
        let mut buf = BytesMut::from(data);
        let mut scanner = HandshakeScanner::new(4096);
        if let Ok(Some(hello)) = scanner.scan(&mut buf) {
            let mut out = BytesMut::new();
            encode_hello(&hello, &mut out);
            let again = HandshakeScanner::new(0)
                .scan(&mut out)
                .expect("a re-encoded hello scans")
                .expect("a re-encoded hello is complete");
            assert_eq!(format!("{again:?}"), format!("{hello:?}"), "round trip");
        }
        let _ = scanner.noise();
        let _ = scanner.eof_error(&buf);
    }
}

/// `Value` decoding.
pub mod value {
    use remex_proto::value::Value;

    /// Decodes `data` as a value; a value decoded encodes to bytes that
    /// decode to the same value.
    pub fn check(data: &[u8]) {
        if let Ok(v) = Value::from_wire(data) {
            let bytes = v.to_wire().expect("a decoded value encodes");
            let back = Value::from_wire(&bytes).expect("a re-encoded value decodes");
            // Compared as bytes: NaN is not equal to itself.
            assert_eq!(back.to_wire().unwrap(), bytes, "round trip");
        }
    }
}

/// Spec parsing.
pub mod spec {
    use remex_core::Spec;

    /// Parses `data` (when it is UTF-8) as one spec and as a list; a spec
    /// that parses keeps its text and parses again the same way.
    pub fn check(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(spec) = Spec::parse(text) {
            assert_eq!(spec.raw, text);
            let again = Spec::parse(&spec.raw).expect("a parsed spec parses again");
            assert_eq!(format!("{again:?}"), format!("{spec:?}"));
        }
        let _ = Spec::parse_many(text);
    }
}
