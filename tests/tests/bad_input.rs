//! The bad-input matrix: malformed specs, corrupt streams from a worker,
//! bad payloads, scripts that never end, values nested too deep. Each case
//! asserts the error a user sees and that the rest keeps working.
//!
//! More cases live beside the feature they touch: noise and other protocol
//! versions (gateway_handshake.rs), `worker=/bin/cat` and `/bin/true` and a
//! panicking task (gateway_popen.rs), garbage and idle socket clients and
//! wrong secrets (gateway_socket.rs), arbitrary bytes into every decoder
//! (remex-core's wire_properties.rs and the fuzz targets).

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use remex::core::wire::{
    encode_frame, encode_hello, encode_message, ExecRequest, HandshakeScanner, Hello, Kind,
    Message, MessageDecoder, Role, WorkerInfo,
};
use remex::{makegateway, Error, Group, Spec, Value};

const T: Duration = Duration::from_secs(10);

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("remex-bad-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fake worker: a valid worker hello, then `after` as raw bytes, then it
/// either idles or exits (`then`). Run through `sh` (see gateway_handshake.rs
/// on ETXTBSY).
fn fake_worker(name: &str, after: &[u8], then: &str) -> String {
    let hello = Hello {
        role: Role::Worker,
        worker: Some(WorkerInfo {
            pid: 999_999_999,
            host: "fake".into(),
            cwd: "/".into(),
            executable: "fake".into(),
            platform: "linux-x86_64".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            cluster: None,
        }),
        setup: None,
    };
    let mut bytes = BytesMut::new();
    encode_hello(&hello, &mut bytes);
    bytes.extend_from_slice(after);
    let d = dir();
    let data = d.join(format!("{name}.bin"));
    std::fs::write(&data, &bytes).unwrap();
    let script = d.join(format!("{name}.sh"));
    std::fs::write(&script, format!("cat {}\n{then}\n", data.display())).unwrap();
    format!("cmd=sh {}", script.display())
}

/// Opens a fake-worker gateway and returns the error its first channel
/// reports; a real gateway opened alongside keeps working.
async fn first_error(spec: &str) -> Error {
    let good = common::gateway().await;
    let gw = makegateway(spec).await.expect("the hello is valid");
    let ch = gw.newchannel();
    let e = ch.receive_timeout::<Value>(T).await.unwrap_err();
    let other = good.remote_exec("channel.send(1)").unwrap();
    assert_eq!(
        other.receive::<i64>().await.unwrap(),
        1,
        "the other gateway is unaffected"
    );
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_specs_name_what_is_wrong() {
    for (spec, want) in [
        ("popen//bogus=1", "unknown key"),
        ("popen//id=a//id=b", "duplicate key"),
        ("popen//id=", "empty value"),
        ("popen//chdir", "needs a value"),
        ("x*popen", "*"),
        ("0*popen", "*"),
        ("99999999*popen", "*"),
        ("", "empty"),
    ] {
        let e = Spec::parse_many(spec)
            .err()
            .unwrap_or_else(|| panic!("{spec:?} parsed"));
        let msg = e.to_string();
        assert!(msg.contains(want), "{spec:?}: {msg}");
        assert!(
            msg.contains(spec) || spec.is_empty(),
            "the error names the spec: {msg}"
        );
        // Through the API a user calls, with a good spec beside it: the
        // group starts nothing and says which spec was wrong.
        let good = common::spec("");
        let e = Group::new([good.as_str(), spec]).await.unwrap_err();
        assert!(e.to_string().contains(want), "{spec:?}: {e}");
    }
    // Nothing else broke.
    let gw = common::gateway().await;
    assert_eq!(
        gw.remote_exec("channel.send(2)")
            .unwrap()
            .receive::<i64>()
            .await
            .unwrap(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_longer_than_the_maximum_is_refused() {
    let mut frame = Vec::new();
    frame.extend_from_slice(&0x7fff_ff00u32.to_le_bytes());
    frame.push(Kind::Data as u8);
    frame.extend_from_slice(&1u32.to_le_bytes());
    let e = first_error(&fake_worker("oversize", &frame, "sleep 30")).await;
    let msg = e.to_string();
    assert!(msg.contains("exceeds the maximum"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_in_the_middle_of_a_frame_says_so() {
    let mut frame = Vec::new();
    frame.extend_from_slice(&100u32.to_le_bytes());
    frame.push(Kind::Data as u8);
    frame.extend_from_slice(&1u32.to_le_bytes());
    frame.extend_from_slice(&[0u8; 10]);
    let e = first_error(&fake_worker("truncated", &frame, "exit 0")).await;
    let msg = e.to_string();
    assert!(msg.contains("in the middle of a frame"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_mid_stream_is_a_protocol_error_not_a_hang() {
    // A valid frame first (for a channel nobody has), then text.
    let mut bytes = BytesMut::new();
    encode_message(
        &Message::Data {
            channel: 2,
            value: Value::Int(1),
            size: 0,
        },
        1 << 20,
        &mut bytes,
    )
    .unwrap();
    bytes.extend_from_slice(b"Segmentation fault (core dumped)\n");
    let e = first_error(&fake_worker("garbage", &bytes, "sleep 30")).await;
    assert!(matches!(e, Error::Protocol { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_that_does_not_decode_fails_its_channel_only() {
    // Half a second after its hello (the test opens its channel at once),
    // the fake sends an item that is not a value on the controller's first
    // channel, then a good one on a second channel.
    let (first, second) = {
        let probe = common::gateway().await;
        (probe.newchannel().id(), probe.newchannel().id())
    };
    let mut bytes = BytesMut::new();
    encode_frame(Kind::Data, first, &[0xee, 0xff], &mut bytes);
    encode_message(
        &Message::Data {
            channel: second,
            value: Value::Int(6),
            size: 0,
        },
        1 << 20,
        &mut bytes,
    )
    .unwrap();
    let d = dir();
    let late = d.join("baditem-late.bin");
    std::fs::write(&late, &bytes).unwrap();
    let spec = fake_worker(
        "baditem",
        b"",
        &format!("sleep 0.5; cat {}; sleep 30", late.display()),
    );
    let gw = makegateway(&spec).await.unwrap();
    let (a, b) = (gw.newchannel(), gw.newchannel());
    assert_eq!((a.id(), b.id()), (first, second));
    let e = a.receive_timeout::<Value>(T).await.unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e}");
    assert!(e.to_string().contains("bad Data payload"), "{e}");
    // The other channel, and the gateway, go on.
    assert_eq!(b.receive_timeout::<i64>(T).await.unwrap(), 6);
    assert_eq!(gw.state(), remex::GatewayState::Running);
}

/// A real worker given an Exec whose script is not UTF-8 (something no
/// remex controller sends, so the bytes are written by hand): that channel
/// gets an error naming the problem, and the worker runs the next script.
/// A real worker past its handshake, spoken to by hand: the child, its
/// input and output, and what was read past its hello. A watchdog kills it
/// after `T`, so that nothing waits forever.
fn raw_worker(
    stderr: Stdio,
) -> (
    std::process::Child,
    std::process::ChildStdin,
    std::process::ChildStdout,
    BytesMut,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_remex-test-worker"))
        .env(remex::core::transport::popen::WORKER_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let pid = child.id();
    std::thread::spawn(move || {
        std::thread::sleep(T);
        // SAFETY: kill(2) on our own child; harmless if it is gone (the
        // test waits for it, so its pid is not reused before this runs
        // unless the test took longer than T, and then it failed anyway).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let mut out = child.stdout.take().unwrap();
    let mut input = child.stdin.take().unwrap();
    // The controller speaks first.
    let mut w = BytesMut::new();
    encode_hello(
        &Hello {
            role: Role::Controller,
            worker: None,
            setup: None,
        },
        &mut w,
    );
    input.write_all(&w).unwrap();
    let mut buf = BytesMut::new();
    let mut scan = HandshakeScanner::new(64 * 1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(h) = scan.scan(&mut buf).unwrap() {
            assert_eq!(h.role, Role::Worker);
            break;
        }
        let n = out.read(&mut chunk).unwrap();
        assert!(n > 0, "the worker ended before its hello");
        buf.extend_from_slice(&chunk[..n]);
    }
    (child, input, out, buf)
}

#[test]
fn a_script_that_is_not_utf8_fails_its_channel_and_the_worker_serves_on() {
    let (child, mut input, mut out, mut buf) = raw_worker(Stdio::null());
    let mut chunk = [0u8; 4096];
    let mut w = BytesMut::new();
    // ExecRequest::Script is variant 0; then the string: length 2, bytes.
    encode_frame(Kind::Exec, 1, &[0, 2, 0xff, 0xfe], &mut w);
    encode_message(
        &Message::Exec {
            channel: 3,
            request: ExecRequest::Script {
                source: "channel.send(5)".into(),
                args: remex::Value::Unit,
            },
        },
        1 << 20,
        &mut w,
    )
    .unwrap();
    input.write_all(&w).unwrap();
    let mut dec = MessageDecoder::new(1 << 20, 1 << 30);
    let (mut refused, mut answered) = (None, false);
    let t0 = Instant::now();
    while (refused.is_none() || !answered) && t0.elapsed() < T {
        match dec.decode(&mut buf).unwrap() {
            Some(Message::CloseError { channel: 1, error }) => refused = Some(error),
            Some(Message::Data {
                channel: 3,
                value: Value::Int(5),
                ..
            }) => answered = true,
            Some(_) => {}
            None => {
                let n = out.read(&mut chunk).unwrap();
                assert!(n > 0, "the worker ended");
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
    let refused = refused.expect("channel 1 was refused");
    assert!(
        refused.contains("bad Exec payload") && refused.contains("utf-8"),
        "{refused}"
    );
    assert!(answered, "the worker ran the next script");
    drop(input);
    let status = remex_tests::finished(child).status;
    assert!(status.success() || status.code().is_some(), "{status:?}");
}

/// A controller that breaks the protocol ends its worker with status 3
/// and a line on stderr that says why (at the default log level).
#[test]
fn a_worker_fed_garbage_exits_with_status_3_and_says_why() {
    let (mut child, mut input, _out, _buf) = raw_worker(Stdio::piped());
    let mut stderr = child.stderr.take().unwrap();
    input
        .write_all(b"Segmentation fault (core dumped)\n")
        .unwrap();
    let mut said = String::new();
    stderr.read_to_string(&mut said).unwrap();
    let status = remex_tests::finished(child).status;
    assert_eq!(status.code(), Some(3), "{status:?}; stderr: {said}");
    assert!(
        said.contains("remex-worker: ending: protocol error"),
        "stderr: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_never_ends_does_not_block_the_gateway_and_exit_ends_it() {
    let gw = common::gateway().await;
    let pid = gw.rinfo().pid;
    let spinning = gw.remote_exec("loop { }").unwrap();
    let other = gw.remote_exec("channel.send(3)").unwrap();
    assert_eq!(other.receive::<i64>().await.unwrap(), 3);
    spinning.close(None);
    let t0 = Instant::now();
    gw.exit().await.unwrap();
    assert!(
        t0.elapsed() < remex::Gateway::EXIT_GRACE + Duration::from_secs(1),
        "exit took {:?}",
        t0.elapsed()
    );
    assert!(remex_tests::wait_gone(pid, Duration::from_secs(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_nested_too_deep_are_refused_both_ways() {
    let gw = common::gateway().await;
    let mut deep = Value::Int(0);
    for _ in 0..200 {
        deep = Value::List(vec![deep]);
    }
    let ch = gw.remote_exec("channel.send(channel.receive())").unwrap();
    let e = ch.send(&deep).await.unwrap_err();
    assert!(e.to_string().contains("deep"), "{e}");
    // The channel and the gateway still work.
    ch.send(&1).await.unwrap();
    assert_eq!(ch.receive::<i64>().await.unwrap(), 1);
    // A worker that builds one gets the error in its script.
    let ch = gw
        .remote_exec("let x = 0; for i in 0..200 { x = [x]; } channel.send(x);")
        .unwrap();
    let e = ch.waitclose(Some(T)).await.unwrap_err();
    assert!(e.to_string().contains("deep"), "{e}");
    assert_eq!(
        gw.remote_exec("channel.send(4)")
            .unwrap()
            .receive::<i64>()
            .await
            .unwrap(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_ignores_flow_control_fails_its_channel_not_our_memory() {
    // The fake answers the controller's first request with 64 MiB of items
    // on that channel, without waiting for credit. The channel's window
    // is 4 MiB: what the controller holds stays within it plus one item.
    let first = {
        let probe = common::gateway().await;
        probe.newchannel().id()
    };
    let item = vec![7u8; 1 << 20];
    let mut bytes = BytesMut::new();
    for _ in 0..64 {
        encode_frame(Kind::Bytes, first, &item, &mut bytes);
    }
    let d = dir();
    let flood = d.join("flood-items.bin");
    std::fs::write(&flood, &bytes).unwrap();
    // `head -c 1` waits for the controller's request: the channel exists
    // before the flood arrives.
    let spec = fake_worker(
        "flood",
        b"",
        &format!("head -c 1 >/dev/null; cat {}; sleep 30", flood.display()),
    );
    let gw = makegateway(&spec).await.unwrap();
    let ch = gw.remote_exec("anything").unwrap();
    assert_eq!(ch.id(), first);
    // Nothing is received (so nothing is credited back) until the channel
    // failed.
    let e = ch.waitclose(Some(T)).await.unwrap_err();
    assert!(
        e.to_string().contains("past its flow-control window"),
        "{e}"
    );
    let (items, held) = ch.queued();
    assert!(
        held <= (4 << 20) + (1 << 20),
        "{items} items, {held} bytes held"
    );
    let mut got = 0;
    let e = loop {
        match ch.receive::<remex::Value>().await {
            Ok(_) => got += 1,
            Err(e) => break e,
        }
    };
    assert!(got <= 5, "{got} items");
    assert!(matches!(e, Error::Protocol { .. }), "{e}");
    assert!(
        e.to_string().contains("past its flow-control window"),
        "{e}"
    );
    gw.kill().await.unwrap();
}
