//! `socket=` against real attacks on loopback: an on-path proxy that reads,
//! flips, injects and drops; fake listeners; a relay of the handshake; a
//! replayed session; and a listener under idle, slow, garbage-spewing and
//! fd-exhausting peers, with a stderr nobody reads or that is closed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use remex::{makegateway, Error, Gateway};
use remex_tests::Listener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");

/// The client's handshake message: length prefix and 48 bytes.
const MSG1: usize = 2 + 48;
/// The listener's greeting.
const GREETING: usize = 13;
/// The listener's handshake message.
const MSG2: usize = 2 + 48;

/// What a proxy does to the client's records (counted from 0, the hello).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Attack {
    /// Forward everything, keep a copy.
    Capture,
    /// Flip one bit in this client record.
    Flip(usize),
    /// Send a copy of this client record again right after it.
    Inject(usize),
    /// Leave this client record out.
    Drop(usize),
    /// Flip one bit in this record from the worker.
    FlipFromWorker(usize),
    /// Flip the lowest bit of the byte at this offset of the client's
    /// stream (counted from its first byte, the handshake included).
    FlipByte(usize),
    /// The same in the worker's stream.
    FlipByteFromWorker(usize),
}

#[derive(Default)]
struct Capture {
    to_worker: Vec<u8>,
    to_client: Vec<u8>,
    /// A `FlipByte*` attack reached its offset and flipped the bit.
    flipped: bool,
}

/// A transparent TCP proxy on loopback in front of `target`; returns its
/// address and what it saw.
async fn proxy(target: String, attack: Attack) -> (String, Arc<Mutex<Capture>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Capture::default()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = l.accept().await {
            let worker = tokio::net::TcpStream::connect(&target).await.unwrap();
            let (cr, cw) = client.into_split();
            let (wr, ww) = worker.into_split();
            let (s1, s2) = (seen2.clone(), seen2.clone());
            match attack {
                Attack::FlipByte(at) => {
                    tokio::spawn(flip_at(cr, ww, Some(at), s1));
                    tokio::spawn(flip_at(wr, cw, None, s2));
                }
                Attack::FlipByteFromWorker(at) => {
                    tokio::spawn(flip_at(cr, ww, None, s1));
                    tokio::spawn(flip_at(wr, cw, Some(at), s2));
                }
                _ => {
                    tokio::spawn(pump(cr, ww, &[MSG1], attack, true, s1));
                    tokio::spawn(pump(wr, cw, &[GREETING, MSG2], attack, false, s2));
                }
            }
        }
    });
    (addr, seen)
}

/// Copies `r` to `w`: the handshake messages of lengths `head` one by one,
/// then record by record (2-byte length + body), applying `attack` to this direction.
async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    head: &[usize],
    attack: Attack,
    from_client: bool,
    seen: Arc<Mutex<Capture>>,
) {
    let note = |bytes: &[u8]| {
        let mut s = seen.lock().unwrap();
        let v = if from_client {
            &mut s.to_worker
        } else {
            &mut s.to_client
        };
        v.extend_from_slice(bytes);
    };
    for len in head {
        let mut h = vec![0u8; *len];
        if r.read_exact(&mut h).await.is_err() {
            return;
        }
        note(&h);
        if w.write_all(&h).await.is_err() {
            return;
        }
    }
    let mut k = 0;
    loop {
        let mut len = [0u8; 2];
        if r.read_exact(&mut len).await.is_err() {
            break;
        }
        let mut rec = vec![0u8; u16::from_be_bytes(len) as usize];
        if r.read_exact(&mut rec).await.is_err() {
            break;
        }
        let mut whole = len.to_vec();
        whole.extend_from_slice(&rec);
        note(&whole);
        let mut out = whole.clone();
        match (attack, from_client) {
            (Attack::Flip(n), true) | (Attack::FlipFromWorker(n), false) if n == k => {
                let last = out.len() - 1;
                out[2 + (last - 2) / 2] ^= 0x01;
            }
            (Attack::Inject(n), true) if n == k => out.extend_from_slice(&whole),
            (Attack::Drop(n), true) if n == k => out.clear(),
            _ => {}
        }
        if w.write_all(&out).await.is_err() {
            break;
        }
        k += 1;
    }
    let _ = w.shutdown().await;
}

/// Copies `r` to `w` as bytes come, flipping the lowest bit of the byte
/// at offset `at` (if given; noted in `seen` before the byte is passed
/// on); each end's close is passed on (a reset becomes a close).
async fn flip_at(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    at: Option<usize>,
    seen: Arc<Mutex<Capture>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0usize;
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(at) = at.filter(|a| (offset..offset + n).contains(a)) {
            buf[at - offset] ^= 0x01;
            seen.lock().unwrap().flipped = true;
        }
        offset += n;
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

/// Runs `echo LINE >> FILE` on the worker through its `shell` task.
async fn append(gw: &Gateway, file: &std::path::Path, line: &str) -> remex::Result<()> {
    append_within(gw, file, line, Duration::from_secs(10)).await
}

async fn append_within(
    gw: &Gateway,
    file: &std::path::Path,
    line: &str,
    within: Duration,
) -> remex::Result<()> {
    let ch = gw.remote_call("shell", &format!("echo {line} >> '{}'", file.display()))?;
    ch.waitclose(Some(within)).await
}

fn lines(file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Starts a gateway through a proxy doing `attack`, runs two appends
/// (client records 1 and 2, after the hello, record 0), and returns the
/// lines the worker wrote and the error the client saw.
async fn attacked(l: &Listener, attack: Attack) -> (Vec<String>, Option<Error>) {
    let (addr, _) = proxy(l.addr.clone(), attack).await;
    let file = l
        .dir
        .join(format!("appended-{attack:?}").replace(['(', ')'], "-"));
    let gw = match makegateway(&l.spec_at(&addr)).await {
        Ok(gw) => gw,
        Err(e) => return (lines(&file), Some(e)),
    };
    let mut err = None;
    for line in ["one", "two", "three"] {
        // A dropped record shows only when a later one arrives: a step
        // that times out is followed by the next.
        match append_within(&gw, &file, line, Duration::from_secs(2)).await {
            Ok(()) => {}
            Err(e) if e.is_timeout() => err = Some(e),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    (lines(&file), err)
}

fn lost(e: &Option<Error>) -> bool {
    matches!(e, Some(Error::GatewayLost { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wire_carries_neither_the_script_nor_the_data() {
    let l = Listener::start(WORKER, "capture");
    let (addr, seen) = proxy(l.addr.clone(), Attack::Capture).await;
    let gw = makegateway(&format!(
        "{}//env:MARKER_ENV=envsecret4242",
        l.spec_at(&addr)
    ))
    .await
    .unwrap();
    let ch = gw
        .remote_exec("let x = channel.receive(); channel.send(x + \"-scriptmarker9313\")")
        .unwrap();
    ch.send(&"datamarker7171").await.unwrap();
    assert_eq!(
        ch.receive::<String>().await.unwrap(),
        "datamarker7171-scriptmarker9313"
    );
    gw.exit().await.unwrap();
    let s = seen.lock().unwrap();
    assert!(s.to_worker.len() > 200 && s.to_client.len() > 100);
    for (dir, bytes) in [
        ("to the worker", &s.to_worker),
        ("to the client", &s.to_client),
    ] {
        let text = String::from_utf8_lossy(bytes);
        for marker in [
            "scriptmarker",
            "datamarker",
            "envsecret",
            "MARKER_ENV",
            "channel.receive",
        ] {
            assert!(
                !text.contains(marker),
                "{marker:?} crossed the wire in clear {dir}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_bit_ends_the_session_and_runs_nothing() {
    let l = Listener::start(WORKER, "flip");
    let (written, err) = attacked(&l, Attack::Flip(2)).await;
    assert_eq!(written, ["one"], "the tampered command ran");
    assert!(lost(&err), "{err:?}");
    assert!(l.logged("tampered"), "the worker logs the tampering");
    // The other direction: the client refuses the worker's tampered record.
    let (_, err) = attacked(&l, Attack::FlipFromWorker(1)).await;
    let e = err.expect("the client sees the tampering");
    assert!(e.to_string().contains("tampered"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_copy_of_a_record_ends_the_session_and_runs_nothing_twice() {
    let l = Listener::start(WORKER, "inject");
    let (written, err) = attacked(&l, Attack::Inject(1)).await;
    // The genuine record may or may not have run before the session ended
    // (its copy came in the same segment); never twice, nothing after it.
    assert!(
        written.is_empty() || written == ["one"],
        "a command ran twice, or one after the injection: {written:?}"
    );
    assert!(lost(&err), "{err:?}");
    assert!(l.logged("tampered"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_record_ends_the_session_and_nothing_after_it_runs() {
    let l = Listener::start(WORKER, "drop");
    let (written, err) = attacked(&l, Attack::Drop(1)).await;
    assert!(written.is_empty(), "{written:?}");
    assert!(lost(&err), "{err:?}");
    assert!(l.logged("tampered"));
}

/// A fake listener: greets as remex, then answers the client's handshake
/// message with 48 bytes of its own; keeps everything the client sends.
async fn fake_listener(greeting: &'static [u8]) -> (String, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let got = Arc::new(Mutex::new(Vec::new()));
    let got2 = got.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let got = got2.clone();
            tokio::spawn(async move {
                let _ = s.write_all(greeting).await;
                let mut first = [0u8; MSG1];
                if s.read_exact(&mut first).await.is_ok() {
                    got.lock().unwrap().extend_from_slice(&first);
                    let mut reply = vec![0u8, 48];
                    reply.extend((0..48u8).map(|i| i.wrapping_mul(37)));
                    let _ = s.write_all(&reply).await;
                }
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    got.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (addr, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fake_listener_without_the_secret_gets_nothing_of_the_users() {
    let l = Listener::start(WORKER, "fake");
    let (addr, got) = fake_listener(remex::core::transport::secure::GREETING).await;
    let t0 = Instant::now();
    let err = makegateway(&format!("{}//env:MARKER=usersetup5151", l.spec_at(&addr)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PeerUnauthenticated { .. }), "{err}");
    assert!(err.to_string().contains(&addr), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    // It received the client's handshake message, and nothing after it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(got.lock().unwrap().len(), MSG1);
    // A listener that is not remex at all is named as such.
    let (addr, _) = fake_listener(b"SSH-2.0-OpenSSH_9.2p1\r\n").await;
    let err = makegateway(&l.spec_at(&addr)).await.unwrap_err();
    assert!(matches!(err, Error::NotAWorker { .. }), "{err}");
    assert!(err.to_string().contains("not a remex listener"), "{err}");
    assert!(!err.to_string().contains("ssh"), "{err}");
    // A wrong secret is told apart from a fake worker.
    let err = makegateway(&l.spec("wrong")).await.unwrap_err();
    assert!(matches!(err, Error::SecretRefused { .. }), "{err}");
    assert!(err.to_string().contains(&l.addr), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_handshake_gives_the_relay_no_session() {
    let l = Listener::start(WORKER, "relay");
    let marker = l.dir.join("relay-ran");
    // The relay passes the handshake between a real client and the worker,
    // then drops the client and speaks on the authenticated connection.
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap().to_string();
    let target = l.addr.clone();
    let marker2 = marker.clone();
    let hijack = tokio::spawn(async move {
        let (mut client, _) = relay.accept().await.unwrap();
        let mut worker = tokio::net::TcpStream::connect(&target).await.unwrap();
        let mut g = vec![0u8; GREETING];
        worker.read_exact(&mut g).await.unwrap();
        client.write_all(&g).await.unwrap();
        let mut m1 = [0u8; MSG1];
        client.read_exact(&mut m1).await.unwrap();
        worker.write_all(&m1).await.unwrap();
        let mut m2 = [0u8; MSG2];
        worker.read_exact(&mut m2).await.unwrap();
        client.write_all(&m2).await.unwrap();
        drop(client);
        // The old attack: a plaintext hello and Exec frame of its own.
        let mut forged = bytes::BytesMut::new();
        remex_core::wire::encode_hello(
            &remex_core::wire::Hello {
                role: remex_core::wire::Role::Controller,
                worker: None,
                setup: None,
            },
            &mut forged,
        );
        remex_core::wire::encode_message(
            &remex_core::wire::Message::Exec {
                channel: 1,
                request: remex_core::wire::ExecRequest::Call {
                    name: "shell".into(),
                    args: remex::Value::from(format!("touch {}", marker2.display())),
                },
            },
            1 << 16,
            &mut forged,
        )
        .unwrap();
        let _ = worker.write_all(&forged).await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), worker.read_to_end(&mut rest)).await;
        rest
    });
    let err = makegateway(&l.spec_at(&relay_addr)).await.unwrap_err();
    assert!(matches!(err, Error::SessionBroken { .. }), "{err}");
    let answer = hijack.await.unwrap();
    assert!(l.logged("refused"), "the worker logs the refusal");
    assert!(!marker.exists(), "the relay ran a command");
    assert!(
        answer.is_empty(),
        "the worker answered the relay: {answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_session_is_refused_and_runs_nothing_again() {
    let l = Listener::start(WORKER, "replay");
    let (addr, seen) = proxy(l.addr.clone(), Attack::Capture).await;
    let file = l.dir.join("replayed");
    let gw = makegateway(&l.spec_at(&addr)).await.unwrap();
    append(&gw, &file, "once").await.unwrap();
    gw.exit().await.unwrap();
    assert_eq!(lines(&file), ["once"]);
    let recorded = seen.lock().unwrap().to_worker.clone();
    // Replay everything the client sent, on a new connection.
    let mut s = TcpStream::connect(&l.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut g = [0u8; GREETING];
    s.read_exact(&mut g).unwrap();
    s.write_all(&recorded).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        l.logged("replayed handshake"),
        "the worker names the replay"
    );
    assert_eq!(lines(&file), ["once"], "the replayed command ran again");
    // Only the listener's handshake message came back: no hello, no data.
    assert!(rest.len() <= MSG2, "{} bytes came back", rest.len());
}

/// Connects a real client and returns how long `makegateway` took.
async fn connect_time(l: &Listener) -> Duration {
    let t0 = Instant::now();
    let gw = tokio::time::timeout(Duration::from_secs(10), makegateway(&l.spec("secret")))
        .await
        .expect("the listener answers")
        .expect("a legitimate client connects");
    let took = t0.elapsed();
    assert_eq!(
        gw.remote_call("echo", &7)
            .unwrap()
            .receive::<i64>()
            .await
            .unwrap(),
        7
    );
    took
}

/// The best of three connection times: one noisy moment on a shared
/// machine says nothing of the listener.
async fn best_connect_time(l: &Listener) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..3 {
        best = best.min(connect_time(l).await);
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slow_and_garbage_peers_do_not_delay_a_real_client() {
    let mut l = Listener::start(WORKER, "hostile");
    let base_rss = remex_tests::rss_bytes(l.child.id()).unwrap();
    // 500 idle connections.
    let idle: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(&l.addr).unwrap())
        .collect();
    // A slowloris: one byte of a handshake message every 50 ms.
    let slow_addr = l.addr.clone();
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&slow_addr).unwrap();
        for _ in 0..40 {
            if s.write_all(&[0]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    // 200 MiB of garbage, as fast as the listener takes it (it should
    // refuse after the first bytes).
    let junk_addr = l.addr.clone();
    let junk = std::thread::spawn(move || {
        let chunk = vec![0xa5u8; 1 << 20];
        let mut sent = 0usize;
        let mut s = TcpStream::connect(&junk_addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        while sent < 200 << 20 {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        sent
    });
    let took = best_connect_time(&l).await;
    assert!(
        took < Duration::from_millis(100),
        "a real client took {took:?}"
    );
    let junk_sent = junk.join().unwrap();
    assert!(
        junk_sent < 200 << 20,
        "the listener swallowed all the garbage"
    );
    slow.join().unwrap();
    assert!(l.alive());
    let rss = remex_tests::rss_bytes(l.child.id()).unwrap();
    assert!(
        rss < base_rss + (64 << 20),
        "the listener grew from {base_rss} to {rss} bytes"
    );
    drop(idle);
    assert!(l.logged("refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fd_limit_does_not_spin_the_listener_nor_keep_clients_out() {
    let mut l = Listener::start_with(WORKER, "fdlimit", "ulimit -n 64;", None);
    let idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&l.addr).unwrap())
        .collect();
    let took = best_connect_time(&l).await;
    assert!(
        took < Duration::from_millis(100),
        "a real client took {took:?}"
    );
    // More idle peers than fds, held for a second: the listener backs off
    // instead of spinning, and its log stays short.
    let more: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(&l.addr).ok())
        .collect();
    let cpu = |pid: u32| -> u64 {
        let f = remex_tests::proc_stat(pid);
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let (c0, t0) = (cpu(l.child.id()), Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let ticks = cpu(l.child.id()) - c0;
    let elapsed_ticks = t0.elapsed().as_secs_f64() * 100.0;
    assert!(
        (ticks as f64) < elapsed_ticks * 0.3,
        "the listener used {ticks} ticks of CPU in {elapsed_ticks:.0}"
    );
    drop((idle, more));
    assert!(l.alive());
    let logged = l.lines().len();
    assert!(logged < 200, "{logged} log lines");
}

/// A pipe whose write end is handed to the listener as its stderr.
fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two fds we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    use std::os::fd::FromRawFd;
    // SAFETY: both fds are fresh and owned by nobody else.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

/// Refused connections, each making the listener log a line.
fn refusals(addr: &str, n: usize) {
    for _ in 0..n {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.write_all(&[0xff; 64]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_or_closed_stderr_never_stops_the_listener() {
    // Full: a pipe filled to the brim that nobody reads.
    let (r, mut w) = pipe();
    set_nonblocking(&w, true);
    let fill = vec![b'x'; 1 << 16];
    while w.write(&fill).is_ok_and(|n| n > 0) {}
    set_nonblocking(&w, false);
    let mut full = Listener::start_with(WORKER, "fullerr", "", Some(w.into()));
    assert_serves_after_refusals(&mut full, 2000, "a full stderr").await;
    drop(r);

    // Closed: nobody will ever read it.
    let (r, w) = pipe();
    drop(r);
    let mut closed = Listener::start_with(WORKER, "closederr", "", Some(w.into()));
    assert_serves_after_refusals(&mut closed, 200, "a closed stderr").await;
    // A session's own lines (a script that prints, a task that logs a
    // warning) go through the same log: no panic on the closed stderr,
    // and the listener serves on.
    let gw = makegateway(&closed.spec("secret")).await.unwrap();
    let ch = gw
        .remote_exec("for i in 0..5000 { print(`line ${i}`) } channel.send(1)")
        .unwrap();
    assert_eq!(
        ch.receive_timeout::<i64>(Duration::from_secs(10))
            .await
            .unwrap(),
        1,
        "a script that prints to a closed stderr"
    );
    gw.remote_call("log_warning", &"to nobody")
        .unwrap()
        .waitclose(Some(Duration::from_secs(10)))
        .await
        .unwrap();
    gw.exit().await.unwrap();
    assert!(closed.alive(), "the listener exited");
}

/// After `n` refused connections (each logged), a real client still
/// connects within 100 ms and the listener is still up.
async fn assert_serves_after_refusals(l: &mut Listener, n: usize, with: &str) {
    refusals(&l.addr, n);
    let took = best_connect_time(l).await;
    assert!(took < Duration::from_millis(100), "with {with}: {took:?}");
    assert!(l.alive(), "with {with}, the listener exited");
}

/// Sets or clears O_NONBLOCK on `f`.
fn set_nonblocking(f: &std::fs::File, on: bool) {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on an fd we own.
    unsafe {
        libc::fcntl(
            f.as_raw_fd(),
            libc::F_SETFL,
            if on { libc::O_NONBLOCK } else { 0 },
        );
    }
}

/// How one session with a flipped bit went.
enum Flipped {
    /// The session failed, after this long.
    Ended(Duration),
    /// The session's stream was shorter this time (records batched
    /// differently): the offset was never reached before the last answer,
    /// so no bit was flipped.
    NotReached,
    /// What went wrong.
    Failure(String),
}

/// The calls of one probe session: an echo whose channel is closed
/// before a last round trip, so that every byte either way up to that
/// last answer is one the session depends on and nothing from the worker
/// follows it.
async fn probe_session(spec: &str) -> Result<String, Error> {
    let gw = makegateway(spec).await?;
    let ch = gw.remote_call("echo", &"flip-probe-payload-0123456789")?;
    let got: String = ch.receive().await?;
    ch.waitclose(None).await?;
    gw.remote_status().await?;
    Ok(got)
}

/// One session through a proxy that flips one bit at `attack`'s offset:
/// the call either fails or (never) succeeds with changed data.
async fn flipped_session(l: &Listener, attack: Attack) -> Flipped {
    let (addr, seen) = proxy(l.addr.clone(), attack).await;
    let t0 = Instant::now();
    let spec = format!("{}//liveness=off", l.spec_at(&addr));
    let outcome = tokio::time::timeout(Duration::from_secs(5), probe_session(&spec)).await;
    let took = t0.elapsed();
    match outcome {
        Err(_) => Flipped::Failure(format!("{attack:?}: the client still waited after 5 s")),
        Ok(Ok(got)) if got != "flip-probe-payload-0123456789" => {
            Flipped::Failure(format!("{attack:?}: changed data delivered: {got:?}"))
        }
        Ok(Ok(_)) if !seen.lock().unwrap().flipped => Flipped::NotReached,
        Ok(Ok(_)) => Flipped::Failure(format!("{attack:?}: a flipped bit went unnoticed")),
        Ok(Err(_)) => Flipped::Ended(took),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bit_flipped_anywhere_ends_the_session_on_both_sides_within_a_second() {
    let mut l = Listener::start(WORKER, "flip-every-byte");
    // The length of each stream in one such session, recorded through a
    // proxy that only watches.
    let (addr, seen) = proxy(l.addr.clone(), Attack::Capture).await;
    let spec = format!("{}//liveness=off", l.spec_at(&addr));
    tokio::time::timeout(Duration::from_secs(10), probe_session(&spec))
        .await
        .expect("the session through a watching proxy took over 10 s")
        .unwrap();
    // What crossed until the last answer (what the end sends after it
    // cannot change this session's results).
    let (to_worker, to_client) = {
        let s = seen.lock().unwrap();
        (s.to_worker.len(), s.to_client.len())
    };
    let mut failures = Vec::new();
    let mut not_reached = Vec::new();
    let mut slowest = Duration::ZERO;
    let attacks = (0..to_worker)
        .map(Attack::FlipByte)
        .chain((0..to_client).map(Attack::FlipByteFromWorker));
    let mut runs = 0;
    for attack in attacks {
        // The worker batches messages into records as they come: a
        // session may be a record header shorter than the one measured,
        // and its last offsets then lie beyond its end. Tried again; an
        // offset never reached in three sessions is reported.
        let mut tries = 0;
        let flipped = loop {
            runs += 1;
            tries += 1;
            match flipped_session(&l, attack).await {
                Flipped::NotReached if tries < 3 => continue,
                other => break other,
            }
        };
        match flipped {
            Flipped::Ended(took) if took > Duration::from_secs(1) => {
                failures.push(format!("{attack:?}: the client saw the end after {took:?}"))
            }
            Flipped::Ended(took) => slowest = slowest.max(took),
            Flipped::NotReached => not_reached.push(attack),
            Flipped::Failure(f) => failures.push(f),
        }
    }
    eprintln!("{runs} sessions with one flipped bit each ({to_worker} offsets towards the worker, {to_client} back; {} not reached); slowest end {slowest:?}", not_reached.len());
    assert!(
        failures.is_empty(),
        "{} of {runs}: {failures:#?}",
        failures.len()
    );
    // At most one record header and tag (2 + 16 bytes) at the very end of
    // a stream can be out of reach.
    assert!(
        not_reached.iter().all(|a| match *a {
            Attack::FlipByte(at) => at + 18 >= to_worker,
            Attack::FlipByteFromWorker(at) => at + 18 >= to_client,
            _ => false,
        }),
        "offsets never reached: {not_reached:?}"
    );
    assert!(l.alive(), "the listener survived");
}

/// A client whose handshake takes 100 ms each way (a real network) gets
/// in while another address floods the listener with bare connections,
/// as fast as the listener takes them and more than its handshake table
/// holds: the flood holds at most 64 places and competes with itself, and
/// a client whose first message authenticated is never dropped for a
/// newcomer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_gets_in_while_another_address_floods_the_listener() {
    let l = Listener::start(WORKER, "flood");
    let target: std::net::SocketAddr = l.addr.parse().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flood = {
        let (stop, made) = (stop.clone(), made.clone());
        tokio::spawn(async move {
            let mut held = std::collections::VecDeque::new();
            let t0 = Instant::now();
            // Bounded in count and time.
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && t0.elapsed() < Duration::from_secs(20)
                && made.load(std::sync::atomic::Ordering::Relaxed) < 50_000
            {
                // Out of fds or ports now and then (other tests run
                // beside this one): a pause, not a panic.
                let connected = match tokio::net::TcpSocket::new_v4() {
                    Ok(s) if s.bind("127.0.0.2:0".parse().unwrap()).is_ok() => {
                        s.connect(target).await.ok()
                    }
                    _ => None,
                };
                match connected {
                    Some(c) => {
                        held.push_back(c);
                        made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    None => tokio::time::sleep(Duration::from_millis(1)).await,
                }
                if held.len() > 200 {
                    held.pop_front();
                }
            }
        })
    };
    // The flood is under way before the client starts.
    while made.load(std::sync::atomic::Ordering::Relaxed) < 500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let slow = remex_tests::testbed::Relay::start_at(
        "127.0.0.1",
        &l.addr,
        Duration::from_millis(100),
        None,
    );
    let t0 = Instant::now();
    let gw = tokio::time::timeout(Duration::from_secs(10), makegateway(&l.spec_at(&slow.addr)))
        .await
        .expect("the slow client is answered")
        .expect("the slow client gets in");
    let took = t0.elapsed();
    let during = made.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        gw.remote_call("echo", &7)
            .unwrap()
            .receive::<i64>()
            .await
            .unwrap(),
        7
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.await.unwrap();
    eprintln!("a 100 ms client got in after {took:?}, with {during} flood connections made");
    // More than the whole handshake table holds.
    assert!(during > 256, "the flood was too thin: {during}");
}
