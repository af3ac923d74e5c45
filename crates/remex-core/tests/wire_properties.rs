//! Properties of the wire layer over generated inputs: values and message
//! sequences round-trip through any chunking and any split of the byte
//! stream, and arbitrary bytes never make the decoders panic.

use bytes::{Bytes, BytesMut};
use num_bigint::BigInt;
use proptest::prelude::*;
use remex_core::wire::{
    encode_message, ExecRequest, HandshakeScanner, Message, MessageDecoder, RemoteStatus,
};
use remex_core::{ChannelRef, Value};

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Unit),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<i128>().prop_map(|i| Value::BigInt(BigInt::from(i) * 1_000_000_007)),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
            .prop_map(Value::Float),
        ".{0,20}".prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| Value::Bytes(b.into())),
        any::<u32>().prop_map(|c| Value::Channel(ChannelRef(c))),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            proptest::collection::vec((inner.clone(), inner), 0..6).prop_map(Value::Map),
        ]
    })
}

fn message() -> impl Strategy<Value = Message> {
    let ch = 0u32..64;
    prop_oneof![
        (ch.clone(), ".{0,40}", value()).prop_map(|(channel, source, args)| Message::Exec {
            channel,
            request: ExecRequest::Script { source, args },
        }),
        (ch.clone(), "[a-z]{1,8}", value()).prop_map(|(channel, name, args)| Message::Exec {
            channel,
            request: ExecRequest::Call { name, args },
        }),
        (ch.clone(), value()).prop_map(|(channel, value)| Message::Data {
            channel,
            value,
            size: 0
        }),
        ch.clone().prop_map(|channel| Message::Close { channel }),
        (ch.clone(), ".{0,40}").prop_map(|(channel, error)| Message::CloseError { channel, error }),
        ch.clone()
            .prop_map(|channel| Message::LastMessage { channel }),
        (ch.clone(), any::<u32>()).prop_map(|(channel, bytes)| Message::Credit { channel, bytes }),
        Just(Message::Terminate),
        Just(Message::Pause),
        Just(Message::Resume),
        ch.clone().prop_map(|id| Message::StatusRequest { id }),
        (ch, any::<u64>(), any::<u64>()).prop_map(|(id, a, b)| Message::StatusReply {
            id,
            status: RemoteStatus {
                numchannels: a,
                numexecuting: b,
            },
        }),
    ]
}

/// Data sizes are filled in by the decoder; compare without them.
fn normalize(m: Message) -> Message {
    match m {
        Message::Data { channel, value, .. } => Message::Data {
            channel,
            value,
            size: 0,
        },
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_value_roundtrips(v in value()) {
        let back = Value::from_wire(&v.to_wire().unwrap()).unwrap();
        prop_assert_eq!(back, v);
    }

    #[test]
    fn any_message_sequence_roundtrips_through_any_chunking_and_split(
        msgs in proptest::collection::vec(message(), 0..20),
        max_payload in 1usize..512,
        cuts in proptest::collection::vec(1usize..200, 0..40),
    ) {
        let mut wire = BytesMut::new();
        for m in &msgs {
            encode_message(m, max_payload, &mut wire).unwrap();
        }
        let wire: Bytes = wire.freeze();
        // Feed the stream in pieces, as a socket would deliver it.
        let mut dec = MessageDecoder::new(max_payload, 1 << 24);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut pos = 0;
        let mut cuts = cuts.into_iter();
        while pos < wire.len() {
            let n = cuts.next().unwrap_or(wire.len()).min(wire.len() - pos);
            buf.extend_from_slice(&wire[pos..pos + n]);
            pos += n;
            while let Some(m) = dec.decode(&mut buf).unwrap() {
                got.push(normalize(m));
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, msgs.into_iter().map(normalize).collect::<Vec<_>>());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut buf = BytesMut::from(&bytes[..]);
        let mut dec = MessageDecoder::new(1024, 1 << 16);
        while let Ok(Some(_)) = dec.decode(&mut buf) {}
        let _ = Value::from_wire(&bytes);
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = HandshakeScanner::new(4096).scan(&mut buf);
    }
}
