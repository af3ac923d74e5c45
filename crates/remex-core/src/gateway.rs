//! `Gateway`: the controller's handle on one worker.
//!
//! Over 500 lines: about 350 are documentation and runnable examples; the
//! rest is the gateway handle and its lifecycle (start, join, exit, kill
//! and their bounds), which belong together.

use std::fmt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::conn::channel::Channel;
use crate::conn::{ConnConfig, Connection, Handlers};
use crate::error::{with_timeout, Error, Result};
use crate::spec::{Spec, Transport};
use crate::transport::parts::{Parts, Streams};
use crate::transport::{self, kill_group, popen, slurm};
use crate::value::{to_value, ChannelRef, Value};
use crate::wire::{ExecRequest, RemoteStatus, WorkerInfo};
use remex_sync::Lifecycle;

use crate::transport::parts::EOF_STATUS_WAIT;

/// Where a gateway is in its life.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let gw = remex::makegateway("popen").await?;
/// assert_eq!(gw.state(), remex::GatewayState::Running);
/// gw.exit().await?;
/// assert!(matches!(gw.state(), remex::GatewayState::Exited { code: Some(0), .. }));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayState {
    /// Connected to a live worker.
    Running,
    /// `exit()` was asked for; the worker is ending.
    Exiting,
    /// The worker process ended.
    Exited {
        /// Its exit code, if it exited normally.
        code: Option<i32>,
        /// The signal that ended it, if any.
        signal: Option<i32>,
    },
    /// The connection broke while the worker process may still run.
    Lost {
        /// Why.
        reason: String,
    },
}

/// How a gateway's run ended, for its lifecycle: asked to exit, or exit
/// status 0, is Off; anything else is a Fault with the reason.
fn end_outcome(
    exiting: bool,
    status: Option<ExitStatus>,
    lost: &str,
) -> std::result::Result<(), String> {
    match status {
        _ if exiting => Ok(()),
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!("the worker exited ({s})")),
        None => Err(lost.to_string()),
    }
}

/// Where a gateway's worker is, for errors: the ssh host, the socket's
/// address, the Slurm node, or the local worker's pid.
fn worker_place(spec: &Spec, info: &WorkerInfo) -> String {
    match (&spec.transport, &info.cluster) {
        (_, Some(c)) => format!("node {} ({c})", c.node),
        (crate::Transport::Ssh { target }, _) => {
            let host = target.rsplit_once('@').map_or(target.as_str(), |(_, h)| h);
            format!("host {host} (worker pid {})", info.pid)
        }
        (crate::Transport::Socket { addr }, _) => {
            format!("{addr} (host {}, worker pid {})", info.host, info.pid)
        }
        _ => format!("the worker (host {}, pid {})", info.host, info.pid),
    }
}

/// Probes a worker every quarter of `bound`. When nothing at all has come
/// from it for half of the bound after a probe (no reply and no other
/// input: a worker sending bulk over a slow link is alive even if the
/// reply waits behind the data), the gateway is declared lost, its
/// channels end with the reason (naming the host), and the local process
/// (the ssh client, a wrapper) is ended. So a stopped or hung worker, a
/// dead host or a cut network is noticed within three quarters of the
/// bound. The reader answers probes, so a worker busy running tasks still
/// answers. While this process is paused ([`crate::pause_workers`]) it
/// neither probes nor judges.
async fn watch_liveness(
    conn: Connection,
    lifecycle: Lifecycle,
    (id, place, worker_pid): (String, String, u32),
    (pid, wrapper): (u32, bool),
    bound: Duration,
) {
    let closed = conn.clone();
    let probe = async {
        loop {
            tokio::time::sleep(bound / 4).await;
            // Not while this process is paused (stopped by its user,
            // `pause_workers`): no probe, and none that spanned a pause
            // counts.
            crate::pause::resumed().await;
            if conn.lost().is_some() {
                return;
            }
            let seen = conn.input_activity();
            let epoch = crate::pause::epoch();
            if tokio::time::timeout(bound / 2, conn.status()).await.is_ok()
                || conn.input_activity() != seen
                || crate::pause::epoch() != epoch
            {
                continue;
            }
            tracing::warn!(gateway = %id, "no sign of life from {place} within {bound:?}: declaring the gateway lost");
            let reason = format!(
                "no sign of life from {place} within the liveness bound of {bound:?} (the host is down or unreachable, or the worker is stopped or hung)"
            );
            // The reason the lifecycle keeps, rather than the SIGKILL.
            lifecycle.fault(reason.clone());
            conn.set_lost(Error::GatewayLost {
                gateway: id.clone(),
                pid: worker_pid,
                reason,
            });
            conn.close_output();
            transport::end_process(pid, wrapper).await;
            return;
        }
    };
    tokio::select! {
        _ = probe => {}
        _ = closed.closed() => {}
    }
}

/// Starts a gateway from a spec string such as `"popen"` or
/// `"popen//id=w1//chdir=/tmp"`.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let gw = remex::makegateway("popen").await?;
/// let ch = gw.remote_exec("channel.send(42)")?;
/// assert_eq!(ch.receive::<i64>().await?, 42);
/// gw.exit().await?;
/// # Ok(()) }
/// ```
pub async fn makegateway(spec: &str) -> Result<Gateway> {
    Gateway::start(Spec::parse(spec)?, None).await
}

/// A gateway: one worker and the channels to it. Clones share it, and so do
/// its channels: when the last gateway handle and the last handle of its
/// channels are dropped, the worker is killed.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let gw = remex::makegateway("popen").await?;
/// let same = gw.clone(); // clones share the worker
/// assert_eq!(same.rinfo().pid, gw.rinfo().pid);
/// gw.exit().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    spec: Spec,
    conn: Connection,
    info: WorkerInfo,
    pid: u32,
    exit: watch::Receiver<Option<ExitStatus>>,
    exiting: Arc<std::sync::atomic::AtomicBool>,
    uploaded: std::sync::atomic::AtomicBool,
    lifecycle: Lifecycle,
    /// The local process is a wrapper (`cmd=`): it gets SIGTERM and
    /// [`transport::WRAPPER_GRACE`] before SIGKILL.
    wrapper: bool,
    /// What the worker needs kept alive: held, released with the gateway.
    holds: Holds,
    /// The last lines of the local process's stderr (process transports).
    stderr: std::sync::OnceLock<Arc<parking_lot::Mutex<std::collections::VecDeque<String>>>>,
}

/// What a gateway keeps alive for its worker: the Slurm allocation it runs
/// in (released when its last gateway goes), the relay it is reached
/// through (an ssh connection's, see [`Gateway::start_ssh_fanout`]).
#[derive(Default)]
pub(crate) struct Holds {
    allocation: Option<Arc<slurm::Allocation>>,
    relay: Option<Gateway>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.exit.borrow().is_none() {
            transport::end_process_detached(self.pid, self.wrapper);
        }
        // Ends a socket session (and anything still connected).
        self.conn.close_output();
    }
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<Gateway id={:?} spec={:?} pid={}",
            self.inner.id, self.inner.spec.raw, self.inner.pid
        )?;
        if let Some(a) = &self.inner.holds.allocation {
            write!(f, " slurm_job={}", a.job)?;
        }
        if let Some(r) = &self.inner.holds.relay {
            write!(f, " relay={}", r.id())?;
        }
        write!(f, ">")
    }
}

/// Runs `then` once the connections of all `gateways` have ended. The
/// task holds the connections only, not the gateways.
fn when_all_end<'a>(
    gateways: impl Iterator<Item = &'a Gateway>,
    then: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let conns: Vec<Connection> = gateways.map(|g| g.inner.conn.clone()).collect();
    tokio::spawn(async move {
        futures::future::join_all(conns.iter().map(|c| c.closed())).await;
        then.await;
    });
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// A gateway's id: its spec's `id=`, else `default_id`, else the next
/// `gwN`.
fn gateway_id(spec: &Spec, default_id: Option<String>) -> String {
    spec.id
        .clone()
        .or(default_id)
        .unwrap_or_else(Gateway::next_id)
}

/// The engine's constants and helpers that go with a gateway.
impl Gateway {
    /// How long `exit()` lets a worker end by itself before killing it.
    ///
    /// ```
    /// // `exit()` waits this long for the worker before killing it.
    /// assert!(remex::Gateway::EXIT_GRACE >= std::time::Duration::from_millis(100));
    /// ```
    pub const EXIT_GRACE: Duration = Duration::from_secs(1);

    /// How long `remote_status()` waits for an answer.
    ///
    /// ```
    /// assert!(remex::Gateway::STATUS_TIMEOUT > std::time::Duration::ZERO);
    /// ```
    pub const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

    /// A fresh default gateway id: `gw0`, `gw1`, ... in creation order.
    ///
    /// ```
    /// let a = remex::Gateway::next_id();
    /// let b = remex::Gateway::next_id();
    /// assert!(a.starts_with("gw") && a != b);
    /// ```
    pub fn next_id() -> String {
        format!("gw{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }

    /// Converts a script's named arguments (a struct with named fields, or a
    /// map with string keys) into the map a script request carries; each name
    /// must be a script identifier other than `channel`.
    ///
    /// ```
    /// use remex::Value;
    /// let v = remex::Gateway::script_args(&std::collections::BTreeMap::from([("n", 3)])).unwrap();
    /// assert_eq!(v, Value::Map(vec![(Value::from("n"), Value::Int(3))]));
    /// let e = remex::Gateway::script_args(&std::collections::BTreeMap::from([("channel", 3)])).unwrap_err();
    /// assert!(e.to_string().contains("'channel'"), "{e}");
    /// assert!(remex::Gateway::script_args(&(1, 2)).is_err());
    /// ```
    pub fn script_args<A: Serialize + ?Sized>(args: &A) -> Result<Value> {
        let bad = |detail: String| Error::Arguments { detail };
        let v = to_value(args).map_err(|e| bad(e.to_string()))?;
        let Value::Map(entries) = v else {
            return Err(bad(format!(
                "script arguments must have named fields (a struct or a map with string keys), got {}",
                v.describe()
            )));
        };
        for (k, _) in &entries {
            let Value::Str(name) = k else {
                return Err(bad(format!(
                    "script argument names must be strings, got {}",
                    k.describe()
                )));
            };
            let ident = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ident {
                return Err(bad(format!(
                    "script argument name {name:?} is not a script identifier (letters, digits, '_')"
                )));
            }
            if name == "channel" {
                return Err(bad(
                    "script argument name 'channel' is taken by the script's channel".into(),
                ));
            }
        }
        Ok(Value::Map(entries))
    }
}

impl Gateway {
    /// Starts a gateway for `spec`. Its id is the spec's `id=`, else
    /// `default_id`, else the next `gwN`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::Gateway::start(remex::Spec::parse("popen")?, Some("w1".into())).await?;
    /// assert_eq!(gw.id(), "w1");
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn start(spec: Spec, default_id: Option<String>) -> Result<Gateway> {
        let id = gateway_id(&spec, default_id);
        popen::check_not_unserved_worker(&spec.raw)?;
        transport::fds::raise_limit();
        if let Some(via) = &spec.via {
            return Err(Error::Start {
                spec: spec.raw.clone(),
                detail: format!("via={via} needs the gateway {via:?}: start it in a Group (Group::new, Group::makegateway)"),
            });
        }
        if let Some(via) = &spec.installvia {
            return Err(Error::Start {
                spec: spec.raw.clone(),
                detail: format!("installvia={via} needs the gateway {via:?}: start it in a Group (Group::new, Group::makegateway)"),
            });
        }
        if let Transport::Slurm(_) = &spec.transport {
            let n = spec.workers();
            if n != 1 {
                return Err(Error::Start {
                    spec: spec.raw.clone(),
                    detail: format!("ntasks={n} starts {n} gateways: start them with Group::new (makegateway starts one)"),
                });
            }
            let mut gws = Gateway::start_slurm(spec, vec![id]).await?;
            return Ok(gws.remove(0));
        }
        let parts = transport::start(&id, &spec).await?;
        Gateway::from_parts(id, spec, parts, Holds::default())
    }

    /// A gateway from a transport's parts: the engine over its streams
    /// (read directly where they are pipes or a session), the local
    /// process if there is one, else an exit that follows the connection.
    fn from_parts(id: String, spec: Spec, parts: Parts, holds: Holds) -> Result<Gateway> {
        let mut config = ConnConfig::new(id.clone(), 1);
        config.peer_pid = parts.info.pid;
        let handlers = Handlers {
            eof_reason: parts.eof_reason,
            ..Handlers::default()
        };
        let pid = parts.process.as_ref().map(|p| p.pid);
        let broken = |e: std::io::Error| {
            if let Some(pid) = pid {
                transport::kill_group(pid);
            }
            Error::Start {
                spec: spec.raw.clone(),
                detail: format!(
                    "gateway {id}: cannot set up the worker's streams: {}",
                    transport::fds::explain(&e)
                ),
            }
        };
        // Waiting threads and tasks read a pipe or a session themselves
        // (conn::direct): a round trip then costs no thread hand-off.
        let conn = match parts.streams {
            Streams::Pipes {
                stdout,
                stdin,
                leftover,
            } => stdout
                .into_owned_fd()
                .and_then(|out| Connection::spawn_direct(config, handlers, out, stdin, leftover))
                .map_err(broken)?,
            Streams::Session(p) => {
                let p = *p;
                Connection::spawn_direct_secure(
                    config, handlers, p.input, p.writer, p.leftover, p.opener, p.sealer,
                )
                .map_err(broken)?
            }
            Streams::Relayed {
                reader,
                writer,
                leftover,
            } => Connection::spawn(config, handlers, reader, writer, leftover),
        };
        let (pid, exit) = match parts.process {
            Some(p) => (p.pid, p.exit),
            // No local process (socket, via, dial-back): it "exits" when
            // its connection closes.
            None => {
                let (tx, exit) = watch::channel(None);
                let watched = conn.clone();
                tokio::spawn(async move {
                    watched.closed().await;
                    use std::os::unix::process::ExitStatusExt;
                    let _ = tx.send(Some(ExitStatus::from_raw(0)));
                });
                (0, exit)
            }
        };
        let gw = Gateway::assemble(
            id,
            spec,
            conn,
            parts.info,
            (pid, exit),
            parts.uploaded,
            holds,
        );
        if let Some(tail) = parts.stderr {
            let _ = gw.inner.stderr.set(tail);
        }
        Ok(gw)
    }

    /// The last lines (up to 5) of the worker process's stderr, oldest
    /// first: what its tasks' child processes, its scripts' `print` or
    /// its wrapper wrote there (the worker's own log events go as records
    /// when the controller logs); for a Slurm dial-back worker, its
    /// task's lines of the step's stderr. Empty for `socket=` and `via=`
    /// workers (their stderr is on their host).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// gw.remote_exec("print(\"hello\")")?.waitclose(None).await?;
    /// // The line comes over the stderr pipe, beside the protocol stream.
    /// let t0 = std::time::Instant::now();
    /// while !gw.stderr_tail().iter().any(|l| l.contains("hello")) {
    ///     assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    ///     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    /// }
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn stderr_tail(&self) -> Vec<String> {
        self.inner
            .stderr
            .get()
            .map(|l| l.lock().iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Starts the `ntasks` workers of a `slurm` spec, one gateway each
    /// (ids in task order), in one allocation: the one this process runs
    /// in (`SLURM_JOB_ID`), else a new one that the gateways own and cancel
    /// when the last of them ends. All start or none: a failure cancels
    /// what was started. See `docs/clusters.md`.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let spec = remex::Spec::parse("slurm//ntasks=8//time=10:00")?;
    /// let ids: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    /// let gws = remex::Gateway::start_slurm(spec, ids).await?;
    /// let place = gws[3].rinfo().cluster.clone().expect("a Slurm task");
    /// assert_eq!(place.task, 3);
    /// # Ok(()) }
    /// ```
    pub async fn start_slurm(spec: Spec, ids: Vec<String>) -> Result<Vec<Gateway>> {
        let start = |detail: String| Error::Start {
            spec: spec.raw.clone(),
            detail,
        };
        let Transport::Slurm(o) = &spec.transport else {
            return Err(start("start_slurm takes a slurm spec".into()));
        };
        if ids.len() != o.ntasks as usize {
            return Err(start(format!(
                "{} gateway ids for ntasks={}",
                ids.len(),
                o.ntasks
            )));
        }
        popen::check_not_unserved_worker(&spec.raw)?;
        transport::fds::raise_limit();
        let (alloc, parts) = slurm::start(&spec, o, &ids).await?;
        let gws = ids
            .into_iter()
            .zip(parts)
            .map(|(id, p)| {
                let holds = Holds {
                    allocation: Some(alloc.clone()),
                    relay: None,
                };
                Gateway::from_parts(id, spec.clone(), p, holds)
            })
            .collect::<Result<Vec<_>>>()?;
        // The allocation ends with its last worker, even while handles
        // remain (the group keeps ended gateways until it is next asked);
        // dropping the last handle ends it too.
        let weak = Arc::downgrade(&alloc);
        when_all_end(gws.iter(), async move {
            if let Some(a) = weak.upgrade() {
                a.release();
            }
        });
        Ok(gws)
    }

    /// Starts a gateway whose worker `relay`'s worker starts and relays
    /// (`via=`).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let hop = remex::makegateway("popen").await?;
    /// let spec = remex::Spec::parse(&format!("popen//via={}", hop.id()))?;
    /// let gw = remex::Gateway::start_via(spec, None, &hop).await?;
    /// assert_ne!(gw.rinfo().pid, hop.rinfo().pid);
    /// gw.exit().await?;
    /// hop.exit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn start_via(
        spec: Spec,
        default_id: Option<String>,
        relay: &Gateway,
    ) -> Result<Gateway> {
        let id = gateway_id(&spec, default_id);
        let parts = transport::via::connect(&id, &spec, relay).await?;
        Gateway::from_parts(id, spec, parts.into(), Holds::default())
    }

    /// Starts a gateway for a `socket=host:port//installvia=ID` spec:
    /// `installer`'s worker starts a listening worker bound to `host:port`
    /// (port 0: any free port) with a fresh random secret, handed to it
    /// over `installer`'s session, and this gateway connects to it. The
    /// listener lives as long as `installer`'s worker.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let installer = remex::makegateway("popen").await?;
    /// let spec = remex::Spec::parse(&format!("socket=127.0.0.1:0//installvia={}", installer.id()))?;
    /// let gw = remex::Gateway::start_installvia(spec, None, &installer).await?;
    /// let ch = gw.remote_exec("channel.send(1 + 1)")?;
    /// assert_eq!(ch.receive::<i64>().await?, 2);
    /// gw.exit().await?;
    /// installer.exit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn start_installvia(
        spec: Spec,
        default_id: Option<String>,
        installer: &Gateway,
    ) -> Result<Gateway> {
        let id = gateway_id(&spec, default_id);
        let parts = transport::socket::install(&id, &spec, installer).await?;
        Gateway::from_parts(id, spec, parts.into(), Holds::default())
    }

    /// Starts several gateways to one ssh destination over one
    /// connection: one ssh worker (the relay, not a gateway of its own)
    /// starts the others on the host as its children and carries their
    /// streams, as `via=` does. 16 workers on a host are then ready in
    /// about the time of one ssh connection plus 16 local starts there,
    /// rather than 16 ssh sessions. Each gateway ends on its own (its
    /// worker only); the relay ends with the last of them; a dead
    /// connection ends them all, with endmarkers. `Group` starts ssh
    /// gateways this way when several go to one destination (same target,
    /// port, ssh_config and worker) in one call; `REMEX_SSH_SHARE=0` turns
    /// it off. Results are in the order of `specs`.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let spec = remex::Spec::parse("ssh=host")?;
    /// let specs = (0..4).map(|i| (spec.clone(), format!("w{i}"))).collect();
    /// let gws: Vec<remex::Gateway> = remex::Gateway::start_ssh_fanout(specs)
    ///     .await
    ///     .into_iter()
    ///     .collect::<remex::Result<_>>()?;
    /// assert_eq!(gws.len(), 4);
    /// # Ok(()) }
    /// ```
    pub async fn start_ssh_fanout(specs: Vec<(Spec, String)>) -> Vec<Result<Gateway>> {
        let Some((first, first_id)) = specs.first().cloned() else {
            return Vec::new();
        };
        let (relay_spec, target) = transport::ssh::fanout_relay(&first);
        // Its stderr lines (the relay's own) carry this id.
        let relay = match Gateway::start(relay_spec, Some(format!("{first_id}-relay"))).await {
            Ok(g) => g,
            Err(e) => return specs.iter().map(|_| Err(e.clone())).collect(),
        };
        let relay_ref = &relay;
        let started = futures::future::join_all(specs.into_iter().map(|(spec, id)| {
            let target = &target;
            async move {
                let parts = transport::via::connect_to(&id, &spec, relay_ref, target).await?;
                let holds = Holds {
                    allocation: None,
                    relay: Some(relay_ref.clone()),
                };
                Gateway::from_parts(id, spec, parts.into(), holds)
            }
        }))
        .await;
        // The relay exits once its last worker has ended (dropping the
        // last gateway ends it too).
        if started.iter().any(Result::is_ok) {
            when_all_end(started.iter().flatten(), async move {
                let _ = relay.exit().await;
            });
        }
        started
    }

    /// The gateway around a connected worker: its lifecycle is On, and a
    /// watcher moves it to Off (asked to exit, or exited with status 0) or
    /// Fault (lost, killed, failed) when the worker ends.
    fn assemble(
        id: String,
        spec: Spec,
        conn: Connection,
        info: WorkerInfo,
        (pid, exit): (u32, watch::Receiver<Option<ExitStatus>>),
        uploaded: bool,
        holds: Holds,
    ) -> Gateway {
        let lifecycle = Lifecycle::new();
        lifecycle.begin();
        lifecycle.ready();
        let exiting = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let wrapper = transport::is_wrapper(&spec);
        let gw = Gateway {
            inner: Arc::new(Inner {
                id,
                spec,
                conn: conn.clone(),
                info,
                pid,
                exit: exit.clone(),
                exiting: exiting.clone(),
                uploaded: uploaded.into(),
                lifecycle: lifecycle.clone(),
                wrapper,
                holds,
                stderr: std::sync::OnceLock::new(),
            }),
        };
        let weak: std::sync::Weak<dyn std::any::Any + Send + Sync> = Arc::downgrade(&gw.inner) as _;
        gw.inner.conn.set_keepalive(weak);
        // Holds the connection and the exit watch, not the gateway: it must
        // not keep the worker alive.
        let mut exit = exit;
        let local = gw.inner.pid != 0;
        tokio::spawn(async move {
            let lost = conn.closed().await;
            // Without a local process (socket, via), an end nobody asked
            // for is a loss, whatever the stand-in exit status says.
            let status = if local {
                tokio::time::timeout(EOF_STATUS_WAIT, exit.wait_for(|s| s.is_some()))
                    .await
                    .ok()
                    .and_then(|r| r.ok().and_then(|s| *s))
            } else {
                None
            };
            lifecycle.finish(end_outcome(
                exiting.load(Ordering::Relaxed),
                status,
                &lost.to_string(),
            ));
        });
        crate::pause::watch(&gw.inner.conn.shared);
        if let Some(bound) = gw.inner.spec.liveness_bound() {
            tokio::spawn(watch_liveness(
                gw.inner.conn.clone(),
                gw.inner.lifecycle.clone(),
                (
                    gw.inner.id.clone(),
                    worker_place(&gw.inner.spec, &gw.inner.info),
                    gw.inner.info.pid,
                ),
                (gw.inner.pid, gw.inner.wrapper),
                bound,
            ));
        }
        gw
    }

    /// The gateway's lifecycle, as a service: On while its worker is
    /// connected; then Off if it was asked to exit or exited with status 0,
    /// else Fault with the reason (lost, killed, failed). Subscribe to it
    /// or `join` it to follow the gateway from threads and tasks alike.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use remex::sync::LifecycleState;
    /// let gw = remex::makegateway("popen").await?;
    /// assert_eq!(gw.lifecycle().state(), LifecycleState::On);
    /// gw.exit().await?;
    /// let end = gw.lifecycle().join(Some(std::time::Duration::from_secs(5))).await.unwrap();
    /// assert_eq!(end, LifecycleState::Off);
    /// # Ok(()) }
    /// ```
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.inner.lifecycle
    }

    /// Resolves once the Slurm allocation or job step this gateway's
    /// worker ran in has ended (at once for a gateway without one). The
    /// allocation ends with the last of its gateways: srun and salloc get
    /// their grace to end by themselves, then are killed
    /// ([`SALLOC_GRACE`](crate::transport::slurm::SALLOC_GRACE)). `Group::terminate`
    /// waits for it within its timeout, so that a program that ends right
    /// after leaves no salloc or srun behind.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// gw.exit().await?;
    /// gw.cluster_released().await; // no cluster: at once
    /// # Ok(()) }
    /// ```
    pub async fn cluster_released(&self) {
        if let Some(a) = &self.inner.holds.allocation {
            a.ended().await;
        }
    }

    /// The gateway's id (`gw0`, or the spec's `id=`).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen//id=w1").await?;
    /// assert_eq!(gw.id(), "w1");
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The spec the gateway was started from.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen//nice=5").await?;
    /// assert_eq!(gw.spec().nice, Some(5));
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn spec(&self) -> &Spec {
        &self.inner.spec
    }

    /// What the worker said about itself: pid, cwd, executable, platform,
    /// version.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let info = gw.rinfo();
    /// assert_eq!(info.version, remex::VERSION);
    /// assert!(info.pid > 0);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn rinfo(&self) -> &WorkerInfo {
        &self.inner.info
    }

    /// Whether this gateway uploaded its worker (ssh zero-install
    /// bootstrap); `false` when the host already had it cached.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// assert!(!gw.uploaded_worker(), "popen uploads nothing");
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn uploaded_worker(&self) -> bool {
        self.inner.uploaded.load(Ordering::Relaxed)
    }

    /// The connection, for crates that build on gateways.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// assert_eq!(gw.connection().name(), gw.id());
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn connection(&self) -> &Connection {
        &self.inner.conn
    }

    /// Runs a rhai script on the worker with `channel` in scope.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.send(channel.receive() + 1)")?;
    /// ch.send(&41).await?;
    /// assert_eq!(ch.receive::<i64>().await?, 42);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn remote_exec(&self, source: impl Into<String>) -> Result<Channel> {
        self.inner.conn.exec(ExecRequest::Script {
            source: source.into(),
            args: Value::Unit,
        })
    }

    /// Runs a rhai script with named arguments: each field of `args` (a
    /// struct with named fields, or a map with string keys) is a variable
    /// in the script's scope, as execnet's `remote_exec(source, **kwargs)`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// #[derive(serde::Serialize)]
    /// struct Job<'a> { name: &'a str, times: i64 }
    ///
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec_with("channel.send(`${name}:${times * 2}`)", &Job { name: "ab", times: 3 })?;
    /// assert_eq!(ch.receive::<String>().await?, "ab:6");
    ///
    /// // A map works too; anything else is refused before it is sent.
    /// let args = std::collections::HashMap::from([("x", 2)]);
    /// assert_eq!(gw.remote_exec_with("channel.send(x + 1)", &args)?.receive::<i64>().await?, 3);
    /// let e = gw.remote_exec_with("x", &[1, 2]).unwrap_err();
    /// assert!(e.to_string().contains("named"), "{e}");
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn remote_exec_with<A: Serialize + ?Sized>(
        &self,
        source: impl Into<String>,
        args: &A,
    ) -> Result<Channel> {
        self.inner.conn.exec(ExecRequest::Script {
            source: source.into(),
            args: Self::script_args(args)?,
        })
    }

    /// Calls a task registered in the worker by name, with `args`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_call("echo", &[1, 2])?;
    /// assert_eq!(ch.receive::<Vec<i64>>().await?, vec![1, 2]);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn remote_call<A: Serialize + ?Sized>(&self, name: &str, args: &A) -> Result<Channel> {
        let args = to_value(args).map_err(|e| Error::Arguments {
            detail: e.to_string(),
        })?;
        self.inner.conn.exec(ExecRequest::Call {
            name: name.to_string(),
            args,
        })
    }

    /// A new channel, to be sent to the worker inside a value.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let side = gw.newchannel();
    /// let ch = gw.remote_exec("let c = channel.receive(); c.send(5)")?;
    /// ch.send(&side).await?;
    /// assert_eq!(side.receive::<i64>().await?, 5);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn newchannel(&self) -> Channel {
        self.inner.conn.newchannel()
    }

    /// Opens a channel the worker sent inside a value.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("let c = channel.newchannel(); channel.send(c); c.send(9)")?;
    /// let r: remex::ChannelRef = ch.receive().await?;
    /// assert_eq!(gw.channel(r).receive::<i64>().await?, 9);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn channel(&self, r: ChannelRef) -> Channel {
        self.inner.conn.attach(r)
    }

    /// Asks the worker how many channels are open and how many scripts or
    /// tasks are running (bounded by [`Gateway::STATUS_TIMEOUT`]).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let _busy = gw.remote_call("sleep", &5)?;
    /// let status = gw.remote_status().await?;
    /// assert!(status.numexecuting >= 1);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn remote_status(&self) -> Result<RemoteStatus> {
        tokio::time::timeout(Self::STATUS_TIMEOUT, self.inner.conn.status())
            .await
            .unwrap_or(Err(Error::Timeout {
                what: "the worker's status",
                after: Self::STATUS_TIMEOUT,
            }))
    }

    /// Channels open on this side.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.newchannel();
    /// assert!(gw.numchannels() >= 1);
    /// drop(ch);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn numchannels(&self) -> usize {
        self.inner.conn.numchannels()
    }

    /// Ends the worker gracefully: asks it to terminate and closes its input.
    /// Running scripts are abandoned. Returns once the worker has exited; a
    /// worker still alive after [`Gateway::EXIT_GRACE`] is killed.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// gw.exit().await?;
    /// assert!(matches!(gw.state(), remex::GatewayState::Exited { .. }));
    /// # Ok(()) }
    /// ```
    pub async fn exit(&self) -> Result<()> {
        self.exit_within(Self::EXIT_GRACE).await
    }

    /// [`Gateway::exit`] with a chosen grace period: returns within `grace`
    /// plus the time to kill and reap (milliseconds).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let _stuck = gw.remote_call("sleep", &3600)?;
    /// gw.exit_within(std::time::Duration::from_millis(200)).await?;
    /// assert!(!matches!(gw.state(), remex::GatewayState::Running));
    /// # Ok(()) }
    /// ```
    pub async fn exit_within(&self, grace: Duration) -> Result<()> {
        self.inner.exiting.store(true, Ordering::Relaxed);
        let _ = self.inner.conn.send_terminate();
        self.inner.conn.close_output();
        if self.join(Some(grace)).await.is_err() {
            tracing::debug!(gateway = %self.inner.id, "worker did not exit within {grace:?}; killing it");
            self.kill().await?;
        }
        // Children that ignored the worker's SIGTERM go now.
        kill_group(self.inner.pid);
        Ok(())
    }

    /// Sends SIGKILL to the worker's process group without waiting (for
    /// `Drop` implementations); the connection ends as with `kill()`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// gw.kill_nowait();
    /// gw.join(Some(std::time::Duration::from_secs(10))).await?;
    /// # Ok(()) }
    /// ```
    pub fn kill_nowait(&self) {
        if self.inner.exit.borrow().is_none() {
            transport::end_process_detached(self.inner.pid, self.inner.wrapper);
        }
        // A worker without a local process (socket=, dialed back) sees its
        // session end.
        self.inner.conn.close_output();
    }

    /// Waits until the worker has ended: its connection closed and the
    /// local process exited.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("channel.send(1)")?;
    /// ch.receive::<i64>().await?;
    /// gw.kill_nowait();
    /// gw.join(Some(std::time::Duration::from_secs(10))).await?;
    /// assert_ne!(gw.state(), remex::GatewayState::Running);
    /// # Ok(()) }
    /// ```
    pub async fn join(&self, timeout: Option<Duration>) -> Result<()> {
        let mut rx = self.inner.exit.clone();
        let conn = self.inner.conn.clone();
        // Both the connection and the local process: a cmd= wrapper may
        // exit long before the worker it reached.
        let wait = async move {
            conn.closed().await;
            let _ = rx.wait_for(|s| s.is_some()).await;
            Ok(())
        };
        with_timeout("the worker to exit", timeout, wait).await?;
        self.inner.conn.set_lost(Error::GatewayLost {
            gateway: self.inner.id.clone(),
            pid: self.inner.pid,
            reason: self.exit_reason(),
        });
        // The watcher would get there too; once join returns, the
        // lifecycle already says how the worker ended.
        let status = *self.inner.exit.borrow();
        let lost = self
            .inner
            .conn
            .lost()
            .map(|e| e.to_string())
            .unwrap_or_default();
        self.inner.lifecycle.finish(end_outcome(
            self.inner.exiting.load(Ordering::Relaxed),
            status,
            &lost,
        ));
        Ok(())
    }

    fn exit_reason(&self) -> String {
        match *self.inner.exit.borrow() {
            Some(s) => format!("worker exited ({s})"),
            None => "worker is running".into(),
        }
    }

    /// Kills the worker and every process in its process group (its
    /// children) with SIGKILL, and waits for it to be gone.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// gw.kill().await?;
    /// assert!(gw.remote_exec("").is_err() || gw.state() != remex::GatewayState::Running);
    /// # Ok(()) }
    /// ```
    pub async fn kill(&self) -> Result<()> {
        transport::end_process(self.inner.pid, self.inner.wrapper).await;
        // A socket worker has no local process: ending the session is all.
        self.inner.conn.close_output();
        self.inner.conn.set_lost(Error::GatewayLost {
            gateway: self.inner.id.clone(),
            pid: self.inner.pid,
            reason: "the gateway was killed".into(),
        });
        self.join(Some(Duration::from_secs(5))).await
    }

    /// The gateway's state.
    ///
    /// The connection decides whether the gateway runs: with `cmd=`, the
    /// local command (a `setsid` or `ssh` wrapper) may end while the worker
    /// it reached still serves.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// assert_eq!(gw.state(), remex::GatewayState::Running);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn state(&self) -> GatewayState {
        use std::os::unix::process::ExitStatusExt;
        let exiting = self.inner.exiting.load(Ordering::Relaxed);
        let exited = *self.inner.exit.borrow();
        match (self.inner.conn.lost(), exited) {
            (None, _) if exiting => GatewayState::Exiting,
            (None, _) => GatewayState::Running,
            (Some(_), Some(s)) => GatewayState::Exited {
                code: s.code(),
                signal: s.signal(),
            },
            (Some(_), None) if exiting => GatewayState::Exiting,
            (Some(e), None) => GatewayState::Lost {
                reason: e.to_string(),
            },
        }
    }
}

impl transport::socket::Installer for Gateway {
    fn installer_id(&self) -> &str {
        self.id()
    }

    async fn listen(&self, addr: &str, secret: &str) -> Result<String> {
        let ch = self.remote_call(crate::builtin::LISTEN, &(addr, secret))?;
        crate::with_timeout(
            "the installed listener's address",
            Some(transport::socket::SESSION_TIMEOUT),
            ch.receive(),
        )
        .await
    }
}

impl transport::via::Relay for Gateway {
    fn relay_id(&self) -> &str {
        self.id()
    }

    fn relay_lost(&self) -> transport::via::LostWhy {
        let conn = self.connection().clone();
        Arc::new(move || conn.lost().map(|e| e.to_string()))
    }

    fn open(&self, what: &Value) -> Result<tokio::io::DuplexStream> {
        let ch = self.remote_call(crate::builtin::RELAY, what)?;
        Ok(crate::channel_file::duplex(ch))
    }
}
