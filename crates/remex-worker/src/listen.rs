//! `remex-worker --listen ADDR`: serve gateways over TCP (`socket=`).
//!
//! Each connection runs the secure handshake of
//! `remex::core::transport::secure`; one that does not prove the secret is
//! refused and logged, and no code runs for it. Each authenticated
//! connection is a session of its own, with its own `chdir=` and `env:`
//! (`crate::place`: applied to what the session runs, never to the
//! process); its `nice=` applies to the commands it runs.
//!
//! Hardening against peers that are not clients:
//! - a connection has [`HANDSHAKE_DEADLINE`] to complete the handshake and
//!   its hello;
//! - at most [`MAX_PENDING`] connections are in their handshake at once; a
//!   new one past that replaces the oldest unproven one if it has waited
//!   longer than [`STALE_PENDING`] (idle and slow peers cannot fill the
//!   table for long), and is refused at once otherwise; a connection whose
//!   first handshake message authenticated (made with the secret) is no
//!   longer replaced, so a flood of bare connections never pushes out a
//!   client that is halfway through its handshake;
//! - at most [`MAX_PER_SOURCE`] of them come from one address: past that a
//!   new one from it replaces that address's oldest unproven one at once
//!   (a flood from one address competes with itself, and holds at most
//!   that many places);
//! - when accepting fails for want of fds or memory (EMFILE, ENFILE,
//!   ENOBUFS, ENOMEM), the oldest connection still in its handshake is
//!   dropped to make room, and if there is none the loop backs off
//!   (10 ms, doubling to 1 s) instead of spinning;
//! - a pending connection holds at most one record's buffer (64 KiB), so
//!   the handshakes hold at most `MAX_PENDING` x 64 KiB = 16 MiB of
//!   buffers whatever peers send;
//! - logging goes through a bounded queue to a thread of its own: a
//!   stderr that nobody reads or that is closed never blocks nor ends the
//!   listener (lines that do not fit are counted and the count reported);
//!   refusals are logged with the peer's address, at most
//!   [`REFUSALS_PER_SECOND`] lines a second (the rest are counted).
//!
//! With `--exit-with-stdin` (how `installvia=` starts it), the listener
//! exits when its standard input reaches end-of-file: it lives as long as
//! the worker that started it.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::Mutex;
use remex_core::transport::secure::{self, HandshakeError};
use remex_core::transport::socket::DirectParts;
use remex_core::wire::{HandshakeScanner, Role};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::Worker;

/// How long a connection has to complete the secure handshake and its
/// hello.
pub(crate) const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);
/// Connections in their handshake at once.
pub(crate) const MAX_PENDING: usize = 256;
/// A pending connection older than this gives its place to a new one when
/// the table is full.
pub(crate) const STALE_PENDING: Duration = Duration::from_millis(10);
/// Refusal lines logged per second at most.
pub(crate) const REFUSALS_PER_SECOND: u32 = 20;
/// Other lines (sessions' log events, scripts' prints) per second at most.
pub(crate) const LINES_PER_SECOND: u32 = 200;
/// Log lines waiting for the log thread at most.
const LOG_QUEUE: usize = 1024;

/// Options of `--listen`.
#[derive(Debug, Default)]
pub(crate) struct ListenOptions {
    /// Exit when stdin reaches end-of-file (`--exit-with-stdin`).
    pub(crate) exit_with_stdin: bool,
}

/// Serves sessions on `addr` until the process is killed. Prints
/// `remex-worker listening on ADDR` (the bound address) on stdout once it
/// listens.
pub(crate) fn listen(
    worker: Worker,
    addr: &str,
    secret: remex_core::transport::secret::Secret,
    opts: ListenOptions,
) -> ! {
    crate::not_dumpable();
    let log = Log::start();
    {
        let log = log.clone();
        crate::route_lines(move |line| log.session_line(line));
    }
    {
        let log = log.clone();
        crate::exit::flush_with(move || log.flush());
    }
    crate::init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4096)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => crate::exit::fail(format!("cannot start the runtime: {e}")),
    };
    let worker = Arc::new(worker);
    let psk = secure::psk(&secret);
    drop(secret);
    rt.block_on(async move {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => crate::exit::fail(format!("cannot listen on {addr}: {e}")),
        };
        match listener.local_addr() {
            Ok(a) => {
                let mut out = std::io::stdout();
                let _ = writeln!(out, "remex-worker listening on {a}");
                let _ = out.flush();
            }
            Err(e) => log.line(format!("remex-worker: {e}")),
        }
        if opts.exit_with_stdin {
            tokio::spawn(async move {
                let mut stdin = tokio::io::stdin();
                let mut buf = [0u8; 64];
                while let Ok(n) = stdin.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                crate::exit::now(0, None, crate::exit::Children::Leave)
            });
        }
        accept_loop(listener, worker, psk, log).await
    })
}

/// Pending connections from one source address at most: past that, a
/// new one from it takes the place of its own oldest unproven one, so a
/// flood from one address cannot push out connections from others.
pub(crate) const MAX_PER_SOURCE: usize = 64;

/// A connection in its handshake.
struct Handshaking {
    id: u64,
    since: Instant,
    task: AbortHandle,
    source: std::net::IpAddr,
    /// Its first handshake message authenticated: made with the secret.
    proven: bool,
}

/// Connections in their handshake, oldest first. Proven ones (their
/// first message made with the secret) are never dropped to make room:
/// only a holder of the secret (or a replay of a recorded first message,
/// which gets no further) can take their place.
#[derive(Default)]
struct Pending {
    next: u64,
    entries: VecDeque<Handshaking>,
}

impl Pending {
    fn remove(&mut self, id: u64) {
        if let Some(i) = self.entries.iter().position(|e| e.id == id) {
            self.entries.remove(i);
        }
    }

    fn mark_proven(&mut self, id: u64) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            e.proven = true;
        }
    }

    fn count_from(&self, source: std::net::IpAddr) -> usize {
        self.entries.iter().filter(|e| e.source == source).count()
    }

    /// Drops the oldest unproven connection older than `min_age` (from
    /// `source` only, if given).
    fn evict_oldest(&mut self, min_age: Duration, source: Option<std::net::IpAddr>) -> bool {
        let found = self.entries.iter().position(|e| {
            !e.proven && e.since.elapsed() >= min_age && source.is_none_or(|s| e.source == s)
        });
        match found.and_then(|i| self.entries.remove(i)) {
            Some(e) => {
                e.task.abort();
                true
            }
            None => false,
        }
    }
}

fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

async fn accept_loop(
    listener: TcpListener,
    worker: Arc<Worker>,
    psk: zeroize::Zeroizing<[u8; 32]>,
    log: Log,
) -> ! {
    let psk = Arc::new(psk);
    let pending = Arc::new(Mutex::new(Pending::default()));
    let mut backoff = Duration::ZERO;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => {
                backoff = Duration::ZERO;
                x
            }
            Err(e) if out_of_fds(&e) => {
                log.refusal(format!("remex-worker: accept failed: {e}"));
                if pending.lock().evict_oldest(Duration::ZERO, None) {
                    // Its fd is freed once the runtime drops the task.
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                } else {
                    backoff =
                        (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    tokio::time::sleep(backoff).await;
                }
                continue;
            }
            Err(e) => {
                // A connection that went away before we took it.
                log.refusal(format!("remex-worker: accept failed: {e}"));
                continue;
            }
        };
        // The table stays locked until the task's entry is in it: the
        // task removes its entry under the same lock, so it never finds
        // its entry missing, nor leaves one behind.
        let mut p = pending.lock();
        let source = peer.ip();
        // Within one address the newest connection wins at once: a flood
        // from it competes with itself.
        if p.count_from(source) >= MAX_PER_SOURCE && !p.evict_oldest(Duration::ZERO, Some(source)) {
            drop(p);
            log.refusal(format!(
                "remex-worker: refused {peer}: {MAX_PER_SOURCE} connections from {source} are in their handshake"
            ));
            continue;
        }
        if p.entries.len() >= MAX_PENDING && !p.evict_oldest(STALE_PENDING, None) {
            drop(p);
            log.refusal(format!(
                "remex-worker: refused {peer}: {MAX_PENDING} connections are in their handshake"
            ));
            continue;
        }
        p.next += 1;
        let id = p.next;
        let (worker, log2, pending2) = (worker.clone(), log.clone(), pending.clone());
        let psk = psk.clone();
        let proven = {
            let pending = pending.clone();
            move || pending.lock().mark_proven(id)
        };
        let task = tokio::spawn(async move {
            let admitted = admit(stream, &peer.to_string(), &psk, proven).await;
            pending2.lock().remove(id);
            if admitted.is_ok() {
                make_room(&pending2, SESSION_FDS).await;
            }
            let admitted = admitted.and_then(|(r, w, leftover, terms)| {
                DirectParts::new(r, w, leftover)
                    .map(|p| (p, terms))
                    .map_err(|e| format!("taking over the session: {e}"))
            });
            match admitted {
                Ok((p, terms)) => {
                    if let Some(bound) = terms.liveness {
                        // A paused session still learns of a dead
                        // controller host.
                        let _ = remex_core::transport::socket::keep_alive(&p.writer, bound);
                    }
                    // Script and task threads read the session directly,
                    // as they read a pipe (Connection::spawn_direct_secure).
                    let ended = crate::serve::session(worker, terms, move |config, handlers| {
                        remex_core::conn::Connection::spawn_direct_secure(
                            config, handlers, p.input, p.writer, p.leftover, p.opener, p.sealer,
                        )
                    })
                    .await;
                    // A session that broke on tampering or a cut says so.
                    let ended = ended.map(|e| e.to_string());
                    if let Some(why) = ended.filter(|w| w.contains("secure session")) {
                        log2.refusal(format!("remex-worker: session from {peer} ended: {why}"));
                    }
                }
                Err(why) => log2.refusal(format!("remex-worker: refused {peer}: {why}")),
            }
        });
        p.entries.push_back(Handshaking {
            id,
            since: Instant::now(),
            task: task.abort_handle(),
            source,
            proven: false,
        });
    }
}

type Admitted = (
    secure::SecureReader<tokio::net::tcp::OwnedReadHalf>,
    secure::SecureWriter<tokio::net::tcp::OwnedWriteHalf>,
    BytesMut,
    crate::serve::Terms,
);

/// File descriptors a session needs beyond its socket (a duplicate for
/// reading, an epoll set, a timer, two eventfds), and a spare.
const SESSION_FDS: usize = 6;

/// Frees `need` fds for a session that passed its handshake, dropping
/// the oldest connections still in theirs if the process is at its limit:
/// a proven client outranks unproven peers. Bounded by the table's size.
async fn make_room(pending: &Mutex<Pending>, need: usize) {
    for _ in 0..MAX_PENDING {
        if free_fds() >= need || !pending.lock().evict_oldest(Duration::ZERO, None) {
            return;
        }
        // The evicted task's socket closes when the runtime drops it.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// How many more fds this process may open now.
fn free_fds() -> usize {
    use remex_core::transport::fds;
    let soft = fds::limits().map_or(u64::MAX, |(soft, _)| soft);
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    soft.saturating_sub(fds::open_files().unwrap_or(0))
}

/// The secure handshake and the hellos, within [`HANDSHAKE_DEADLINE`].
async fn admit(
    stream: TcpStream,
    peer: &str,
    psk: &[u8; 32],
    proven: impl FnOnce(),
) -> Result<Admitted, String> {
    let _ = stream.set_nodelay(true);
    let (mut r, mut w) = stream.into_split();
    let run = async {
        let state = secure::respond_noting(&mut r, &mut w, psk, secure::Use::Socket, proven)
            .await
            .map_err(|e| match e {
                HandshakeError::Unproven => {
                    "it did not prove the secret (wrong secret, or not a remex client)".to_string()
                }
                HandshakeError::NotRemex(what) => format!("not a remex client: {what}"),
                other => other.to_string(),
            })?;
        let (mut r, mut w) = secure::split(state, r, w, peer);
        let (leftover, terms) = hellos(&mut r, &mut w, false, None).await.map_err(|e| {
            if e.contains("tampered") {
                format!("its first record failed authentication (a replayed handshake, or tampering): {e}")
            } else {
                e
            }
        })?;
        Ok((r, w, leftover, terms))
    };
    tokio::time::timeout(HANDSHAKE_DEADLINE, run)
        .await
        .unwrap_or_else(|_| Err(format!("no handshake within {HANDSHAKE_DEADLINE:?}")))
}

/// The worker's half of the hellos, inside the session.
pub(crate) async fn hellos<R, W>(
    r: &mut R,
    w: &mut W,
    whole_process: bool,
    credential: Option<String>,
) -> Result<(BytesMut, crate::serve::Terms), String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(4096);
    let mut scan = HandshakeScanner::new(0);
    let hello = loop {
        if let Some(h) = scan.scan(&mut buf).map_err(|e| e.to_string())? {
            break h;
        }
        if r.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("the client closed before its hello".into());
        }
    };
    if hello.role != Role::Controller {
        return Err("the peer is not a remex controller".into());
    }
    let setup = hello.setup.unwrap_or_default();
    // The session's environment and directory stay with it; nice= goes
    // to the process of a dial-back worker (its one session) and to the
    // commands of a listener's session (the listener's sessions share its
    // process).
    let mut terms = crate::serve::Terms::of_session(&setup)?;
    if let (Some(n), true) = (setup.nice, whole_process) {
        // A dial-back worker serves this one session: the process.
        crate::serve::apply_nice(n)?;
        if let Some(p) = terms.place.as_mut() {
            std::sync::Arc::make_mut(p).nice = None;
        }
    }
    let _here = crate::place::enter(terms.place.clone());
    let out = crate::serve::worker_hello(credential);
    w.write_all(&out).await.map_err(|e| e.to_string())?;
    w.flush().await.map_err(|e| e.to_string())?;
    Ok((buf, terms))
}

/// The listener's log: lines go through a bounded queue to a thread that
/// writes them to stderr, ignoring write errors.
#[derive(Clone)]
struct Log {
    tx: std::sync::mpsc::SyncSender<Entry>,
    dropped: Arc<AtomicU64>,
    limit: Arc<Mutex<RateLimit>>,
    lines_limit: Arc<Mutex<RateLimit>>,
}

enum Entry {
    Line(String),
    /// Answered once every line before it was written.
    Flush(std::sync::mpsc::Sender<()>),
}

struct RateLimit {
    window: Instant,
    count: u32,
    suppressed: u64,
}

impl Log {
    fn start() -> Log {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Entry>(LOG_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let d = dropped.clone();
        let _ = std::thread::Builder::new()
            .name("remex-listen-log".into())
            .spawn(move || {
                let mut err = std::io::stderr();
                for entry in rx {
                    let line = match entry {
                        Entry::Line(l) => l,
                        Entry::Flush(done) => {
                            let _ = err.flush();
                            let _ = done.send(());
                            continue;
                        }
                    };
                    let lost = d.swap(0, Ordering::Relaxed);
                    if lost > 0 {
                        let _ = writeln!(
                            err,
                            "remex-worker: {lost} log lines dropped (stderr is slow)"
                        );
                    }
                    let _ = writeln!(err, "{line}");
                }
            });
        Log {
            tx,
            dropped,
            limit: Arc::new(Mutex::new(RateLimit {
                window: Instant::now(),
                count: 0,
                suppressed: 0,
            })),
            lines_limit: Arc::new(Mutex::new(RateLimit {
                window: Instant::now(),
                count: 0,
                suppressed: 0,
            })),
        }
    }

    /// Logs a line; never blocks.
    fn line(&self, line: String) {
        if self.tx.try_send(Entry::Line(line)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Logs a line of a session (a log event, a script's print), at most
    /// [`LINES_PER_SECOND`] a second.
    fn session_line(&self, line: String) {
        self.limited(&self.lines_limit, LINES_PER_SECOND, "lines", line);
    }

    /// Logs a refusal, at most [`REFUSALS_PER_SECOND`] a second.
    fn refusal(&self, line: String) {
        self.limited(&self.limit, REFUSALS_PER_SECOND, "refusals", line);
    }

    fn limited(&self, limit: &Mutex<RateLimit>, per_second: u32, what: &str, line: String) {
        let suppressed = {
            let mut l = limit.lock();
            if l.window.elapsed() >= Duration::from_secs(1) {
                l.window = Instant::now();
                l.count = 0;
            }
            if l.count >= per_second {
                l.suppressed += 1;
                return;
            }
            l.count += 1;
            std::mem::take(&mut l.suppressed)
        };
        if suppressed > 0 {
            self.line(format!(
                "remex-worker: {suppressed} more {what} were not logged (at most {per_second} a second)"
            ));
        }
        self.line(line);
    }

    /// Returns once the lines logged so far are written, or after 200 ms
    /// if stderr does not take them (the process is about to exit).
    fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.tx.try_send(Entry::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_millis(200));
        }
    }
}
