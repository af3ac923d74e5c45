//! Workers that dial back: a listener in the controller that accepts
//! exactly the workers it started.
//!
//! An engine (one `srun -n N` step) starts N workers with [`DIAL_ENV`] (the
//! listener's `host:port`) and [`DIAL_SECRET_ENV`] (a fresh 256-bit secret
//! made for this listener alone) in their environment. Each worker
//! connects and runs the secure handshake of [`super::secure`] as its
//! initiator (Noise NNpsk0: both ends prove the secret, and the session is
//! encrypted and authenticated), then the hellos: the worker's names its
//! task rank ([`crate::wire::ClusterInfo::task`]). The listener takes one
//! session per rank `0..N`; a connection that does not prove the secret, a
//! rank out of range or a rank already taken is refused and logged, and
//! nothing of it reaches a gateway. The listener closes once every rank
//! has its session, or when the wait fails: it serves one start only.
//!
//! Bounds: each connection has [`DIAL_HANDSHAKE`] for its handshake and
//! hello; at most [`MAX_PENDING`] are in their handshake at once and
//! [`MAX_PER_SOURCE`] from one address, admitted as `remex-worker
//! --listen` admits them (a connection whose first handshake message
//! authenticated is never dropped for a newcomer; a full table replaces
//! its oldest unproven entry); accepting that fails (out of fds) drops the
//! oldest unproven handshake or backs off, never spins; refusals are
//! logged, the first [`LOGGED_REFUSALS`] one by one and then as a count.

use std::time::Duration;

use bytes::BytesMut;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::secure::{self, HandshakeError};
use super::socket::{Connected, DirectParts};
use super::{exchange_hellos, worker_info, HelloError};
use crate::error::{Error, Result};
use crate::spec::Spec;

/// The environment variable that tells a worker to dial `host:port`
/// instead of serving its stdin/stdout.
///
/// ```
/// assert_eq!(remex::core::transport::dial::DIAL_ENV, "REMEX_DIAL");
/// ```
pub const DIAL_ENV: &str = "REMEX_DIAL";

/// The environment variable that hands a dialing worker its secret; the
/// worker removes it from its environment before it serves.
///
/// ```
/// assert_eq!(remex::core::transport::dial::DIAL_SECRET_ENV, "REMEX_DIAL_SECRET");
/// ```
pub const DIAL_SECRET_ENV: &str = "REMEX_DIAL_SECRET";

/// The environment variable that tells a dialing worker how long the
/// controller waits for the start (seconds): the worker tries to connect
/// again (100 ms to 2 s apart) until then.
///
/// ```
/// assert_eq!(remex::core::transport::dial::DIAL_WITHIN_ENV, "REMEX_DIAL_WITHIN");
/// ```
pub const DIAL_WITHIN_ENV: &str = "REMEX_DIAL_WITHIN";

/// How long one connection may take for its handshake and hello.
pub const DIAL_HANDSHAKE: Duration = Duration::from_secs(10);

/// Connections in their handshake at once; past that a new one replaces
/// the oldest unproven one older than [`STALE_PENDING`], or is refused.
pub const MAX_PENDING: usize = 256;

/// Connections in their handshake from one address at most: past that a
/// new one from it replaces that address's oldest unproven one.
pub const MAX_PER_SOURCE: usize = 64;

/// How old an unproven handshake must be to give its place to a newcomer
/// when the table is full.
pub const STALE_PENDING: Duration = Duration::from_millis(10);

/// Refusals logged one by one; the rest are counted.
pub const LOGGED_REFUSALS: usize = 10;

/// A listener for the workers of one start.
pub(crate) struct Dialin {
    listener: TcpListener,
    /// The address the workers dial: the host as given (or this host's
    /// name), the bound port.
    pub(crate) addr: String,
    /// The secret, as hex (zeroed when dropped).
    pub(crate) secret: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for Dialin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "<dial-back listener {}>", self.addr)
    }
}

impl Dialin {
    /// Binds `listen` (`host`, `host:port`, an IP address, or
    /// `[v6]:port`: that address only, any port if none is given) and
    /// makes the secret. The workers dial `listen`'s host and the bound
    /// port.
    pub(crate) async fn bind(spec: &Spec, listen: &str) -> Result<Dialin> {
        let start = |detail: String| Error::Start {
            spec: spec.raw.clone(),
            detail,
        };
        let (bind, host) = if let Ok(ip) = listen.parse::<std::net::IpAddr>() {
            let host = match ip {
                std::net::IpAddr::V4(v4) => v4.to_string(),
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            };
            (std::net::SocketAddr::from((ip, 0)).to_string(), host)
        } else {
            match listen.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => {
                    (listen.to_string(), h.to_string())
                }
                _ => (format!("{listen}:0"), listen.to_string()),
            }
        };
        let listener = TcpListener::bind(&bind)
            .await
            .map_err(|e| start(format!("cannot listen on {bind} for the workers to dial back (listen=HOST[:PORT] sets it): {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| start(format!("the dial-back listener's address: {e}")))?
            .port();
        let secret = super::socket::fresh_secret().map_err(start)?;
        Ok(Dialin {
            listener,
            addr: format!("{host}:{port}"),
            secret,
        })
    }

    /// Accepts one session for each rank `0..n`, within `within`, unless
    /// `failed` resolves first (the engine's step ended: its message is
    /// the error). Returns the sessions by rank.
    pub(crate) async fn accept(
        self,
        spec: &Spec,
        ids: &[String],
        job: Option<&str>,
        bound: bool,
        within: Duration,
        failed: impl std::future::Future<Output = String>,
    ) -> Result<Vec<Connected>> {
        let n = ids.len();
        let psk = std::sync::Arc::new(secure::psk(self.secret.as_bytes()));
        let mut slots: Vec<Option<Connected>> = (0..n).map(|_| None).collect();
        let mut filled = 0usize;
        // The step every worker must name: the first one's.
        let mut step: Option<String> = None;
        let mut pending = JoinSet::new();
        let mut refused = 0usize;
        let mut refuse = |why: String| {
            refused += 1;
            if refused <= LOGGED_REFUSALS {
                tracing::warn!(spec = %spec.raw, "dial-back listener {}: refused {why}", self.addr);
            }
        };
        let deadline = tokio::time::sleep(within);
        tokio::pin!(deadline, failed);
        // Connections in their handshake, oldest first.
        let mut table = Handshakes::default();
        let mut backoff = Duration::ZERO;
        while filled < n {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(x) => {
                            backoff = Duration::ZERO;
                            x
                        }
                        Err(e) => {
                            // Out of fds (or memory): drop the oldest
                            // unproven handshake, else back off; never spin.
                            refuse(format!("accepting failed: {e}"));
                            if !table.evict(Duration::ZERO, None) {
                                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                                tokio::time::sleep(backoff).await;
                            }
                            continue;
                        }
                    };
                    let source = peer.ip();
                    if table.count_from(source) >= MAX_PER_SOURCE && !table.evict(Duration::ZERO, Some(source)) {
                        refuse(format!("{peer}: {MAX_PER_SOURCE} connections from {source} are in their handshake"));
                        continue;
                    }
                    if table.len() >= MAX_PENDING && !table.evict(STALE_PENDING, None) {
                        refuse(format!("{peer}: {MAX_PENDING} connections are in their handshake"));
                        continue;
                    }
                    let (spec, addr, psk) = (spec.clone(), peer.to_string(), psk.clone());
                    // The hello names the gateway by rank later; the worker's
                    // log lines carry the listener's id until then.
                    let id = format!("dial:{peer}");
                    let proven = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let mark = proven.clone();
                    let task = pending.spawn(async move {
                        let noted = move || mark.store(true, std::sync::atomic::Ordering::Relaxed);
                        let r = tokio::time::timeout(DIAL_HANDSHAKE, session(&spec, &id, stream, &addr, &psk, noted, bound))
                            .await
                            .unwrap_or_else(|_| Err(format!("no handshake within {DIAL_HANDSHAKE:?}")));
                        (addr, r)
                    });
                    table.push(task, source, proven);
                }
                Some(done) = pending.join_next_with_id() => {
                    let done = done.map(|(id, x)| {
                        table.remove(id);
                        x
                    });
                    let Ok((peer, r)) = done else { continue };
                    match r {
                        Err(why) => refuse(format!("{peer}: {why}")),
                        Ok(c) => {
                            match judge(c.info.cluster.as_ref(), job, step.as_deref(), n, |r| slots[r].is_some()) {
                                Verdict::Refuse(why) => refuse(format!("{peer}: {why}")),
                                Verdict::Abandon(why) => {
                                    return Err(Error::Start {
                                        spec: spec.raw.clone(),
                                        detail: format!("{why} (the second time from {peer}): someone else holds this start's secret; the start is abandoned"),
                                    });
                                }
                                Verdict::Take(r, place_step) => {
                                    step.get_or_insert(place_step);
                                    slots[r] = Some(c);
                                    filled += 1;
                                }
                            }
                        }
                    }
                }
                _ = &mut deadline => {
                    return Err(Error::Start {
                        spec: spec.raw.clone(),
                        detail: format!(
                            "{filled} of {n} workers dialed back to {} within {within:?} (start_timeout=SECS sets the bound){}",
                            self.addr,
                            if refused > 0 { format!("; {refused} connections were refused (see the log)") } else { String::new() }
                        ),
                    });
                }
                why = &mut failed => {
                    return Err(Error::Start {
                        spec: spec.raw.clone(),
                        detail: format!("{why} ({filled} of {n} workers had dialed back)"),
                    });
                }
            }
        }
        if refused > LOGGED_REFUSALS {
            tracing::warn!(spec = %spec.raw, "dial-back listener {}: {refused} connections refused in all", self.addr);
        }
        Ok(slots.into_iter().flatten().collect())
    }
}

/// Connections in their handshake, oldest first. Proven ones (their first
/// handshake message made with the secret) are never dropped for a
/// newcomer; an address holds at most [`MAX_PER_SOURCE`] places.
#[derive(Default)]
struct Handshakes {
    entries: std::collections::VecDeque<Handshake>,
}

struct Handshake {
    task: tokio::task::AbortHandle,
    since: std::time::Instant,
    source: std::net::IpAddr,
    proven: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Handshakes {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn push(
        &mut self,
        task: tokio::task::AbortHandle,
        source: std::net::IpAddr,
        proven: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        self.entries.push_back(Handshake {
            task,
            since: std::time::Instant::now(),
            source,
            proven,
        });
    }

    fn remove(&mut self, id: tokio::task::Id) {
        self.entries.retain(|e| e.task.id() != id);
    }

    fn count_from(&self, source: std::net::IpAddr) -> usize {
        self.entries.iter().filter(|e| e.source == source).count()
    }

    /// Drops the oldest unproven handshake older than `min_age` (from
    /// `source` only, if given); whether there was one.
    fn evict(&mut self, min_age: Duration, source: Option<std::net::IpAddr>) -> bool {
        let found = self.entries.iter().position(|e| {
            !e.proven.load(std::sync::atomic::Ordering::Relaxed)
                && e.since.elapsed() >= min_age
                && source.is_none_or(|s| e.source == s)
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

/// What the listener does with a proven session, by the place its hello
/// names.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Give it rank `.0`; its step is `.1`.
    Take(usize, String),
    /// Close it, saying why.
    Refuse(String),
    /// Fail the whole start: a rank claimed twice (only a holder of the
    /// start's secret gets that far).
    Abandon(String),
}

/// Judges the place a proven worker's hello names, against the start's
/// job (`job`), the step the workers admitted so far named (`step`), the
/// ranks started (`n`) and those taken. The step must be a number: it is
/// passed to `scancel`.
fn judge(
    place: Option<&crate::wire::ClusterInfo>,
    job: Option<&str>,
    step: Option<&str>,
    n: usize,
    taken: impl Fn(usize) -> bool,
) -> Verdict {
    let Some(place) = place else {
        return Verdict::Refuse("its hello names no Slurm task".into());
    };
    let r = place.task as usize;
    if let Some(job) = job.filter(|j| *j != place.job_id) {
        return Verdict::Refuse(format!(
            "it names job {}, and this start runs in job {job}",
            place.job_id
        ));
    }
    if place.step_id.is_empty() || !place.step_id.bytes().all(|b| b.is_ascii_digit()) {
        return Verdict::Refuse(format!(
            "it names step {:?}, not a step number",
            place.step_id
        ));
    }
    if let Some(step) = step.filter(|s| *s != place.step_id) {
        return Verdict::Refuse(format!(
            "it names step {}, and this start's workers run in step {step}",
            place.step_id
        ));
    }
    if r >= n {
        return Verdict::Refuse(format!("task {r}, and {n} were started"));
    }
    if taken(r) {
        return Verdict::Abandon(format!("task {r} dialed back twice"));
    }
    Verdict::Take(r, place.step_id.clone())
}

/// The secure handshake (responder) and the hellos of one connection.
async fn session(
    spec: &Spec,
    id: &str,
    stream: TcpStream,
    peer: &str,
    psk: &[u8; 32],
    proven: impl FnOnce(),
    bound: bool,
) -> std::result::Result<Connected, String> {
    let _ = stream.set_nodelay(true);
    let (mut r, mut w) = stream.into_split();
    let session = secure::respond_noting(&mut r, &mut w, psk, secure::Use::DialBack, proven)
        .await
        .map_err(|e| match e {
            HandshakeError::Unproven => "it did not prove the secret".to_string(),
            HandshakeError::NotRemex(what) => format!("not a remex worker: {what}"),
            other => other.to_string(),
        })?;
    let hash = session.hash();
    let (mut r, mut w) = secure::split(session, r, w, peer);
    let mut buf = BytesMut::new();
    let hello = exchange_hellos(&mut r, &mut w, &mut buf, spec, id)
        .await
        .map_err(|e| match e {
            HelloError::Handshake(h) => format!("its hello: {h}"),
            HelloError::Io(e) => format!("its hello: {e}"),
        })?;
    let info = worker_info(spec, hello).map_err(|e| e.to_string())?;
    if bound {
        // The session must be the job user's, on a node of the cluster.
        let credential = info
            .cluster
            .as_ref()
            .and_then(|c| c.credential.as_deref())
            .ok_or("it sent no MUNGE credential, and this controller binds sessions with one")?;
        super::munge::verify(credential, &hash).await?;
    }
    let parts = DirectParts::new(r, w, buf).map_err(|e| format!("taking over the session: {e}"))?;
    Ok(Connected { parts, info })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode_hello, ClusterInfo, Hello, Role, WorkerInfo};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A worker that dials `addr` with `secret`, says it is task `task`,
    /// and then reads until the listener closes the connection (refused),
    /// or holds it open until the test ends.
    async fn fake_worker(
        addr: String,
        secret: String,
        task: u32,
    ) -> std::result::Result<(), String> {
        fake_worker_pid(addr, secret, task, 1).await
    }

    async fn fake_worker_pid(
        addr: String,
        secret: String,
        task: u32,
        pid: u32,
    ) -> std::result::Result<(), String> {
        fake_worker_as(addr, secret, task, pid, ("1", "0"), Cred::None).await
    }

    /// A fake worker that names `(job, step)`.
    async fn fake_worker_in(
        addr: String,
        secret: String,
        task: u32,
        place: (&'static str, &'static str),
    ) -> std::result::Result<(), String> {
        fake_worker_as(addr, secret, task, 1, place, Cred::None).await
    }

    /// What MUNGE credential a fake worker sends.
    #[derive(Clone, Copy)]
    enum Cred {
        None,
        /// One over its own session's hash.
        Real,
        /// One over another session's hash.
        Other,
    }

    async fn fake_worker_as(
        addr: String,
        secret: String,
        task: u32,
        pid: u32,
        (job, step): (&str, &str),
        cred: Cred,
    ) -> std::result::Result<(), String> {
        let stream = TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
        let (mut r, mut w) = stream.into_split();
        let session = secure::initiate(
            &mut r,
            &mut w,
            &secure::psk(secret.as_bytes()),
            secure::Use::DialBack,
        )
        .await
        .map_err(|e| e.to_string())?;
        let hash = session.hash();
        let credential = match cred {
            Cred::None => None,
            Cred::Real => super::super::munge::credential(&hash).await,
            Cred::Other => super::super::munge::credential(&[9; 32]).await,
        };
        let (mut r, mut w) = secure::split(session, r, w, &addr);
        let mut hello = BytesMut::new();
        encode_hello(
            &Hello {
                role: Role::Worker,
                worker: Some(WorkerInfo {
                    pid,
                    host: "n".into(),
                    cwd: "/".into(),
                    executable: "fake".into(),
                    platform: "linux-x86_64".into(),
                    version: crate::VERSION.into(),
                    cluster: Some(ClusterInfo {
                        engine: "slurm".into(),
                        job_id: job.into(),
                        step_id: step.into(),
                        node: "n".into(),
                        task,
                        credential,
                    }),
                }),
                setup: None,
            },
            &mut hello,
        );
        w.write_all(&hello).await.map_err(|e| e.to_string())?;
        w.flush().await.map_err(|e| e.to_string())?;
        let mut sink = Vec::new();
        // EOF or an error: the listener dropped this connection.
        let got = r.read_to_end(&mut sink).await;
        Err(format!("closed by the listener: {got:?}"))
    }

    fn spec() -> Spec {
        Spec::parse("slurm//ntasks=2").unwrap()
    }

    /// A listener's address, its secret and the task accepting on it.
    type Listening = (
        String,
        String,
        tokio::task::JoinHandle<Result<Vec<Connected>>>,
    );

    /// A dial-back listener on loopback for `spec`, accepting the workers
    /// `ids` of job `job` (sessions bound to MUNGE with `bound`) in a task
    /// of its own.
    async fn listening(
        spec: &Spec,
        ids: &[&str],
        job: Option<&'static str>,
        bound: bool,
    ) -> Listening {
        listening_on("127.0.0.1", spec, ids, job, bound).await
    }

    /// [`listening`] on loopback address `ip`.
    async fn listening_on(
        ip: &str,
        spec: &Spec,
        ids: &[&str],
        job: Option<&'static str>,
        bound: bool,
    ) -> Listening {
        let d = Dialin::bind(spec, ip).await.unwrap();
        let (addr, secret) = (d.addr.clone(), d.secret.to_string());
        let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        let spec = spec.clone();
        let accepting = tokio::spawn(async move {
            d.accept(
                &spec,
                &ids,
                job,
                bound,
                Duration::from_secs(30),
                std::future::pending(),
            )
            .await
        });
        (addr, secret, accepting)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_workers_that_prove_the_secret_get_a_rank_each() {
        let spec = spec();
        // An address of its own: the port is free again once the listener
        // closes, and another test's listener on 127.0.0.1 may take it
        // (the check below then reached that listener).
        let (addr, secret, accepting) =
            listening_on("127.0.0.61", &spec, &["a", "b"], Some("1"), false).await;
        assert!(addr.starts_with("127.0.0.61:"), "{addr}");
        assert_eq!(secret.len(), 64, "256 bits, hex");
        // Wrong secret: the listener does not prove itself to it, and it
        // gets no session.
        let e = fake_worker(addr.clone(), "not the secret".into(), 0)
            .await
            .unwrap_err();
        assert!(!e.contains("closed by the listener"), "{e}");
        // Not remex at all.
        let mut junk = TcpStream::connect(&addr).await.unwrap();
        junk.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let mut sink = Vec::new();
        let _ = junk.read_to_end(&mut sink).await;
        // A rank that was not started.
        let e = fake_worker(addr.clone(), secret.to_string(), 7)
            .await
            .unwrap_err();
        assert!(e.contains("closed by the listener"), "{e}");
        // A worker of another job.
        let e = fake_worker_in(addr.clone(), secret.to_string(), 0, ("2", "0"))
            .await
            .unwrap_err();
        assert!(e.contains("closed by the listener"), "{e}");
        let _first = tokio::spawn(fake_worker(addr.clone(), secret.to_string(), 0));
        let _last = tokio::spawn(fake_worker(addr.clone(), secret.to_string(), 1));
        let conns = tokio::time::timeout(Duration::from_secs(30), accepting)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let ranks: Vec<u32> = conns
            .iter()
            .map(|c| c.info.cluster.as_ref().unwrap().task)
            .collect();
        assert_eq!(ranks, vec![0, 1]);
        // The listener is closed once every rank is in: a late worker gets
        // no session, and the port refuses connections. A child that
        // another test forks at this moment holds a copy of the listening
        // socket until its exec closes it (close-on-exec), and a connect
        // in that window still lands in the backlog; so the port is
        // asked again until it refuses, within a bound (there is no event
        // for another process's exec).
        let e = fake_worker(addr.clone(), secret.to_string(), 1)
            .await
            .unwrap_err();
        assert!(
            !e.contains("closed by the listener"),
            "a late worker got through the handshake: {e}"
        );
        let t0 = std::time::Instant::now();
        while TcpStream::connect(&addr).await.is_ok() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{addr} still accepts 10 s after every rank was in"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_never_keep_a_worker_out() {
        // 300 bare connections from the workers' own address, more than
        // the handshake table holds (they waited 10 s each and the rest
        // were refused: every worker was locked out).
        let spec = Spec::parse("slurm").unwrap();
        let (addr, secret, accepting) = listening(&spec, &["only"], Some("1"), false).await;
        let mut idle = Vec::new();
        for _ in 0..300 {
            idle.push(TcpStream::connect(&addr).await.unwrap());
        }
        let t0 = std::time::Instant::now();
        let _worker = tokio::spawn(fake_worker(addr.clone(), secret, 0));
        let conns = tokio::time::timeout(Duration::from_secs(5), accepting)
            .await
            .expect("the worker got in while the idle connections stayed")
            .unwrap()
            .unwrap();
        assert_eq!(conns.len(), 1);
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        drop(idle);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bound_listener_takes_only_sessions_with_their_own_munge_credential() {
        if !super::super::munge::available().await
            || super::super::munge::credential(&[0; 32]).await.is_none()
        {
            eprintln!("skipped: no munge here (cargo xtask test starts it with Slurm)");
            return;
        }
        let spec = Spec::parse("slurm").unwrap();
        let (addr, secret, accepting) = listening(&spec, &["only"], Some("1"), true).await;
        // The secret alone, or a credential made for another session: no.
        for cred in [Cred::None, Cred::Other] {
            let e = fake_worker_as(addr.clone(), secret.clone(), 0, 5, ("1", "0"), cred)
                .await
                .unwrap_err();
            assert!(e.contains("closed by the listener"), "{e}");
        }
        let _real = tokio::spawn(fake_worker_as(
            addr.clone(),
            secret,
            0,
            7,
            ("1", "0"),
            Cred::Real,
        ));
        let conns = tokio::time::timeout(Duration::from_secs(30), accepting)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(conns[0].info.pid, 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rank_claimed_twice_abandons_the_start_loudly() {
        let spec = spec();
        let (addr, secret, accepting) = listening(&spec, &["a", "b"], Some("1"), false).await;
        let _one = tokio::spawn(fake_worker(addr.clone(), secret.clone(), 0));
        let _two = tokio::spawn(fake_worker(addr.clone(), secret.clone(), 0));
        let e = tokio::time::timeout(Duration::from_secs(30), accepting)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("task 0 dialed back twice") && e.contains("someone else holds"),
            "{e}"
        );
    }

    #[test]
    fn a_worker_is_judged_by_its_job_step_and_rank() {
        let place = |job: &str, step: &str, task: u32| ClusterInfo {
            engine: "slurm".into(),
            job_id: job.into(),
            step_id: step.into(),
            node: "n".into(),
            task,
            credential: None,
        };
        let free = |_| false;
        let ok = place("7", "3", 1);
        assert_eq!(
            judge(Some(&ok), Some("7"), None, 2, free),
            Verdict::Take(1, "3".into())
        );
        assert_eq!(
            judge(Some(&ok), Some("7"), Some("3"), 2, free),
            Verdict::Take(1, "3".into())
        );
        let refused = |v: Verdict, says: &str| match v {
            Verdict::Refuse(why) => assert!(why.contains(says), "{why}"),
            other => panic!("{other:?}"),
        };
        refused(judge(None, Some("7"), None, 2, free), "no Slurm task");
        refused(
            judge(Some(&place("8", "3", 1)), Some("7"), None, 2, free),
            "job 8",
        );
        refused(judge(Some(&ok), Some("7"), Some("4"), 2, free), "step 3");
        for bad in ["", "0;rm -rf /", "batch"] {
            refused(
                judge(Some(&place("7", bad, 1)), Some("7"), None, 2, free),
                "not a step number",
            );
        }
        refused(
            judge(Some(&place("7", "3", 2)), Some("7"), None, 2, free),
            "task 2",
        );
        assert!(matches!(
            judge(Some(&ok), Some("7"), Some("3"), 2, |r| r == 1),
            Verdict::Abandon(why) if why.contains("task 1 dialed back twice")
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_naming_no_step_number_gets_no_rank() {
        let spec = spec();
        let (addr, secret, accepting) = listening(&spec, &["a", "b"], Some("1"), false).await;
        for step in ["0;rm -rf /", ""] {
            let e = fake_worker_in(addr.clone(), secret.clone(), 1, ("1", step))
                .await
                .unwrap_err();
            assert!(e.contains("closed by the listener"), "step {step:?}: {e}");
        }
        let _a = tokio::spawn(fake_worker_in(addr.clone(), secret.clone(), 0, ("1", "3")));
        let _b = tokio::spawn(fake_worker_in(addr.clone(), secret.clone(), 1, ("1", "3")));
        let conns = tokio::time::timeout(Duration::from_secs(30), accepting)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(conns
            .iter()
            .all(|c| c.info.cluster.as_ref().unwrap().step_id == "3"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_start_that_nobody_answers_or_whose_step_fails_says_so() {
        let spec = spec();
        let ids = vec!["a".to_string(), "b".to_string()];
        let d = Dialin::bind(&spec, "127.0.0.1:0").await.unwrap();
        let e = d
            .accept(
                &spec,
                &ids,
                None,
                false,
                Duration::from_millis(200),
                std::future::pending(),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("0 of 2 workers dialed back"), "{e}");
        let d = Dialin::bind(&spec, "127.0.0.1").await.unwrap();
        let e = d
            .accept(&spec, &ids, None, false, Duration::from_secs(30), async {
                "srun exited (exit status: 1)".to_string()
            })
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("srun exited (exit status: 1) (0 of 2 workers had dialed back)"),
            "{e}"
        );
        let e = Dialin::bind(&spec, "203.0.113.1")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen=HOST[:PORT]"), "{e}");
    }

    /// A proxy on loopback that relays one connection to `to`, flipping
    /// the bit 0x01 of the byte at `offset` of what the worker sends.
    async fn flipping_proxy(to: String, offset: usize) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut client, _) = l.accept().await.unwrap();
            let mut server = TcpStream::connect(&to).await.unwrap();
            let (mut cr, mut cw) = client.split();
            let (mut sr, mut sw) = server.split();
            let up = async {
                let mut seen = 0usize;
                let mut buf = vec![0u8; 4096];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if (seen..seen + n).contains(&offset) {
                        buf[offset - seen] ^= 0x01;
                    }
                    seen += n;
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = sw.shutdown().await;
            };
            let down = async {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
                let _ = cw.shutdown().await;
            };
            tokio::join!(up, down);
        });
        addr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_changed_on_the_way_gets_no_rank() {
        let spec = Spec::parse("slurm").unwrap();
        let (addr, secret, accepting) = listening(&spec, &["only"], None, false).await;
        // A bit flipped in the handshake's first message, and in the
        // worker's hello record (past the 2-byte length, 32-byte ephemeral
        // key and 16-byte tag of the first message): no session either way.
        for offset in [3, 20, 60, 80] {
            let via = flipping_proxy(addr.clone(), offset).await;
            let e = fake_worker_pid(via, secret.to_string(), 0, 666)
                .await
                .unwrap_err();
            assert!(!accepting.is_finished(), "offset {offset}: {e}");
        }
        let _honest = tokio::spawn(fake_worker_pid(addr.clone(), secret.to_string(), 0, 7));
        let conns = tokio::time::timeout(Duration::from_secs(30), accepting)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(conns.len(), 1);
        assert_eq!(
            conns[0].info.pid, 7,
            "the rank went to the untouched session"
        );
    }
}
