//! Replays seeds and every saved regression (`fuzz/regressions/<target>/`,
//! named after the crash they reproduce) through the fuzz checks, so that
//! `cargo xtask test` keeps them fixed.

use std::path::Path;

use bytes::BytesMut;
use remex_core::wire::{encode_hello, encode_message, ExecRequest, Message};
use remex_core::Value;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target);
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries {
            let path = e.unwrap().path();
            check(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    n
}

fn messages() -> Vec<u8> {
    let mut out = BytesMut::new();
    let msgs = [
        Message::Exec {
            channel: 1,
            request: ExecRequest::Script {
                source: "channel.send(1)".into(),
                args: Value::Map(vec![(Value::from("n"), Value::Int(2))]),
            },
        },
        Message::Data {
            channel: 1,
            value: Value::List(vec![Value::Int(1), Value::Str("x".repeat(200))]),
            size: 0,
        },
        Message::Close { channel: 1 },
    ];
    for m in &msgs {
        encode_message(m, remex_fuzz::frame::MAX_PAYLOAD, &mut out).unwrap();
    }
    out.to_vec()
}

#[test]
fn frame_seeds_and_regressions() {
    let seed = messages();
    remex_fuzz::frame::check(&seed);
    for cut in [1, 7, seed.len() / 2, seed.len() - 1] {
        remex_fuzz::frame::check(&seed[..cut]);
    }
    replay("frame", remex_fuzz::frame::check);
}

#[test]
fn handshake_seeds_and_regressions() {
    let hello = remex_core::wire::Hello {
        role: remex_core::wire::Role::Controller,
        worker: None,
        setup: None,
    };
    let mut out = BytesMut::from(&b"motd: welcome\n"[..]);
    encode_hello(&hello, &mut out);
    remex_fuzz::handshake::check(&out);
    remex_fuzz::handshake::check(&out[..out.len() - 3]);
    replay("handshake", remex_fuzz::handshake::check);
}

#[test]
fn value_seeds_and_regressions() {
    let v = Value::Map(vec![(Value::Str("k".into()), Value::Float(f64::NAN))]);
    remex_fuzz::value::check(&v.to_wire().unwrap());
    replay("value", remex_fuzz::value::check);
}

#[test]
fn spec_seeds_and_regressions() {
    for s in [
        "popen",
        "3*popen//id=a",
        "ssh=h//python=x",
        "popen//env:A=b//chdir=/tmp",
        "//",
        "*popen",
    ] {
        remex_fuzz::spec::check(s.as_bytes());
    }
    replay("spec", remex_fuzz::spec::check);
}

/// Found by the frame target: an item whose value was encoded with an
/// overlong varint re-encodes shorter; the round trip compares values, and
/// `size` stays what arrived (what flow control counts).
#[test]
fn regression_overlong_varint_data_size() {
    let input = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions/frame/overlong_varint_data_size"),
    )
    .unwrap();
    remex_fuzz::frame::check(&input);
    let mut buf = BytesMut::from(&input[..]);
    let mut dec = remex_core::wire::MessageDecoder::new(remex_fuzz::frame::MAX_PAYLOAD, 1 << 20);
    let mut data = None;
    while let Ok(Some(m)) = dec.decode(&mut buf) {
        if let Message::Data { value, size, .. } = m {
            data = Some((value, size));
        }
    }
    assert_eq!(data, Some((Value::Int(63), 3)));
}
