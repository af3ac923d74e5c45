//! `Group`: many gateways started together and ended together.
//!
//! The group's state ([`Inner`]) is private to this module. Its methods
//! are split by concern: here the gateways (start, add, remove, exec on
//! all, terminate); `tasks` the pool's API (`submit`, `map`, settings)
//! and what the pool's lanes call back; `scatter` data placed on workers
//! ([`DataRef`]); `metrics` the Prometheus text; the dashboard's in
//! `crate::dashboard` (a feature), which reaches the group through a
//! [`GroupRef`].

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use remex_core::{Channel, Error, Gateway, GatewayState, Result, Spec, Transport};
use serde::Serialize;

use crate::multichannel::MultiChannel;

mod metrics;
mod scatter;
mod tasks;

use crate::placement::Placement;
use crate::pool::Pool;
pub use scatter::DataRef;

/// How long `terminate` may take beyond its timeout: killing and reaping
/// the workers that did not exit in time.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let group = remex::Group::new(["2*popen"]).await?;
/// let t0 = std::time::Instant::now();
/// let timeout = std::time::Duration::from_secs(1);
/// group.terminate(timeout).await;
/// assert!(t0.elapsed() <= timeout + remex::TERMINATE_BOUND);
/// # Ok(()) }
/// ```
pub const TERMINATE_BOUND: Duration = Duration::from_secs(2);

/// A set of gateways with ids `gw0`, `gw1`, ... in creation order (or the
/// spec's `id=`). Dropping the group kills its workers.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let group = remex::Group::new(["2*popen"]).await?;
/// assert_eq!(group.ids(), vec!["gw0", "gw1"]);
/// let mch = group.remote_exec("channel.send(channel.receive() + 1)")?;
/// mch.send_each(&1).await?;
/// assert_eq!(mch.receive_each::<i64>().await?, vec![2, 2]);
/// group.terminate(std::time::Duration::from_secs(1)).await;
/// assert_eq!(group.len(), 0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Group {
    inner: Arc<Inner>,
}

struct Inner {
    gateways: Mutex<Vec<Gateway>>,
    /// The gateways a [`Group::terminate`] under way is ending: a second
    /// terminate waits for them too.
    ending: Mutex<Vec<Gateway>>,
    /// Counts changes of `gateways` (the pool opens lanes when it moves).
    members: AtomicU64,
    next: AtomicUsize,
    pool: Arc<Pool>,
    /// Where scattered data was placed.
    placement: Mutex<Placement>,
}

/// A group's handle that does not keep it alive (what its dashboard and
/// its scattered data hold).
#[derive(Clone)]
pub(crate) struct GroupRef(std::sync::Weak<Inner>);

impl GroupRef {
    /// The group, if it is still there.
    pub(crate) fn upgrade(&self) -> Option<Group> {
        self.0.upgrade().map(Group::from_inner)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for gw in self.gateways.get_mut().drain(..) {
            gw.kill_nowait();
        }
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Group {:?}>", self.ids())
    }
}

fn alive(gw: &Gateway) -> bool {
    matches!(gw.state(), GatewayState::Running)
}

impl Group {
    /// An empty group.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::empty();
    /// assert!(group.is_empty());
    /// group.makegateway("popen").await?;
    /// assert_eq!(group.len(), 1);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn empty() -> Group {
        Group {
            inner: Arc::new(Inner {
                gateways: Mutex::new(Vec::new()),
                ending: Mutex::new(Vec::new()),
                members: AtomicU64::new(0),
                next: AtomicUsize::new(0),
                pool: Arc::default(),
                placement: Mutex::default(),
            }),
        }
    }

    fn from_inner(inner: Arc<Inner>) -> Group {
        Group { inner }
    }

    fn weak(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    /// A handle that does not keep the group alive.
    pub(crate) fn downgrade(&self) -> GroupRef {
        GroupRef(self.weak())
    }

    pub(crate) fn pool(&self) -> Arc<Pool> {
        self.inner.pool.clone()
    }

    /// A count of the changes of its gateways.
    pub(crate) fn members(&self) -> u64 {
        self.inner.members.load(Ordering::Acquire)
    }

    /// The live gateways, pruned.
    pub(crate) fn live(&self) -> Vec<Gateway> {
        self.prune()
    }

    /// `key` was stored on the gateways `ids`.
    pub(crate) fn add_holders(&self, key: &str, ids: Vec<String>) {
        self.inner.placement.lock().add(key, ids);
    }

    /// The live gateways allowed to run a task whose arguments hold these
    /// references (see [`Placement::allowed`]).
    pub(crate) fn placement(&self, keys: &[String]) -> Result<Option<Vec<String>>> {
        if keys.is_empty() {
            return Ok(None);
        }
        let live = self.ids();
        let live: Vec<&str> = live.iter().map(String::as_str).collect();
        self.placement_among(keys, &live)
    }

    /// [`Group::placement`] among the `live` gateway ids.
    pub(crate) fn placement_among(
        &self,
        keys: &[String],
        live: &[&str],
    ) -> Result<Option<Vec<String>>> {
        self.inner.placement.lock().allowed(keys, live)
    }

    /// Starts a gateway for every spec (`N*spec` counts N), all at once.
    /// If one fails, the others are ended and the error (naming its spec)
    /// is returned.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["popen//id=a", "2*popen"]).await?;
    /// // Unnamed gateways count from gw0, as in execnet.
    /// assert_eq!(group.ids(), vec!["a", "gw0", "gw1"]);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn new<I, S>(specs: I) -> Result<Group>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let group = Group::empty();
        let mut parsed = Vec::new();
        for s in specs {
            parsed.extend(Spec::parse_many(s.as_ref())?);
        }
        group.start(parsed).await?;
        Ok(group)
    }

    fn next_id(&self) -> String {
        format!("gw{}", self.inner.next.fetch_add(1, Ordering::Relaxed))
    }

    async fn start(&self, specs: Vec<Spec>) -> Result<Vec<Gateway>> {
        let mut ids: Vec<String> = self.ids();
        let mut planned = Vec::new();
        for spec in specs {
            // A slurm spec names its N workers ID.0 .. ID.N-1 when it has
            // an id=.
            let n = spec.workers();
            let mine: Vec<String> = match (&spec.id, n) {
                (Some(id), 1) => vec![id.clone()],
                (Some(id), n) => (0..n).map(|i| format!("{id}.{i}")).collect(),
                (None, n) => (0..n).map(|_| self.next_id()).collect(),
            };
            for id in &mine {
                if ids.contains(id) {
                    return Err(Error::Start {
                        spec: spec.raw.clone(),
                        detail: format!("the group already has a gateway with id {id:?}"),
                    });
                }
                ids.push(id.clone());
            }
            planned.push((spec, mine));
        }
        // The dashboard shows them starting until they are in, or failed.
        let workers: Vec<(String, String)> = planned
            .iter()
            .flat_map(|(spec, ids)| ids.iter().map(|id| (id.clone(), spec.raw.clone())))
            .collect();
        let record = self.pool().metrics.record.clone();
        let _starting = record.starting(workers.clone());
        // Gateways without via= start at once; each via= gateway starts as
        // soon as its relay exists (a tree starts level by level).
        let mut ok: Vec<Gateway> = Vec::new();
        let mut first_err = None;
        let mut pending = planned;
        while !pending.is_empty() && first_err.is_none() {
            let known: Vec<Gateway> = self
                .gateways()
                .into_iter()
                .chain(ok.iter().cloned())
                .collect();
            let (ready, waiting): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(spec, _)| {
                spec.via
                    .as_ref()
                    .or(spec.installvia.as_ref())
                    .is_none_or(|v| known.iter().any(|g| g.id() == v))
            });
            if ready.is_empty() {
                let (spec, _) = &waiting[0];
                let (key, id) = match (&spec.via, &spec.installvia) {
                    (Some(v), _) => ("via", v.as_str()),
                    (None, i) => ("installvia", i.as_deref().unwrap_or("")),
                };
                first_err = Some(Error::Start {
                    spec: spec.raw.clone(),
                    detail: format!("{key}={id}: the group has no gateway with that id"),
                });
                break;
            }
            pending = waiting;
            // Several ssh gateways to one destination start behind one
            // connection and a relay (Gateway::start_ssh_fanout).
            let (fanouts, ready) = ssh_fanouts(ready);
            let fanned =
                futures::future::join_all(fanouts.into_iter().map(Gateway::start_ssh_fanout));
            let singles = futures::future::join_all(ready.into_iter().map(|(spec, ids)| {
                let find = |v: &Option<String>| {
                    v.as_ref()
                        .and_then(|v| known.iter().find(|g| g.id() == v).cloned())
                };
                let (relay, installer) = (find(&spec.via), find(&spec.installvia));
                async move {
                    let one = |r: Result<Gateway>| r.map(|g| vec![g]);
                    let mut ids = ids;
                    match (relay, installer) {
                        _ if matches!(spec.transport, Transport::Slurm(_)) => {
                            Gateway::start_slurm(spec, ids).await
                        }
                        (Some(r), _) => one(Gateway::start_via(spec, ids.pop(), &r).await),
                        (None, Some(i)) => {
                            one(Gateway::start_installvia(spec, ids.pop(), &i).await)
                        }
                        (None, None) => one(Gateway::start(spec, ids.pop()).await),
                    }
                }
            }));
            let (fanned, mut started) = futures::future::join(fanned, singles).await;
            started.extend(fanned.into_iter().flatten().map(|r| r.map(|g| vec![g])));
            for r in started {
                match r {
                    Ok(gws) => ok.extend(gws),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        if let Some(e) = first_err {
            for gw in &ok {
                gw.kill_nowait();
            }
            futures::future::join_all(ok.iter().map(|gw| gw.join(Some(TERMINATE_BOUND)))).await;
            record.failed_start(workers, &e.to_string());
            return Err(e);
        }
        // In the order the specs gave (fan-outs finish apart).
        ok.sort_by_key(|g| ids.iter().position(|i| i == g.id()));
        self.inner.gateways.lock().extend(ok.iter().cloned());
        self.inner.members.fetch_add(1, Ordering::AcqRel);
        // Queued tasks may run on the new workers.
        self.pool().unsaturate();
        self.dispatch();
        Ok(ok)
    }

    /// Starts the gateways of one spec in the group: `N*spec`, or a
    /// `slurm//ntasks=N` spec's N workers; all or none.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["popen"]).await?;
    /// let more = group.makegateways("2*popen").await?;
    /// assert_eq!((more.len(), group.len()), (2, 3));
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn makegateways(&self, spec: &str) -> Result<Vec<Gateway>> {
        self.start(Spec::parse_many(spec)?).await
    }

    /// Starts one more gateway in the group.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["popen//id=hop"]).await?;
    /// // Started through the group's gateway "hop":
    /// let gw = group.makegateway("popen//via=hop").await?;
    /// assert_eq!(group.len(), 2);
    /// assert!(group.contains(gw.id()));
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn makegateway(&self, spec: &str) -> Result<Gateway> {
        let spec = Spec::parse(spec)?;
        if spec.workers() != 1 {
            return Err(Error::Start {
                spec: spec.raw.clone(),
                detail: format!(
                    "this spec starts {} gateways and makegateway returns one: use Group::makegateways",
                    spec.workers()
                ),
            });
        }
        let mut gws = self.start(vec![spec]).await?;
        Ok(gws.remove(0))
    }

    /// Opens a channel with `open` on every live gateway. A gateway whose
    /// worker is found lost while this runs (after `prune` saw it running)
    /// has left the group as if `prune` had seen it: it gets no channel,
    /// whether its loss was noticed a moment before or during the call.
    /// A worker lost after its channel opened ends that channel instead
    /// (its endmarker arrives in a receive queue).
    fn on_each(&self, open: impl Fn(&Gateway) -> Result<Channel>) -> Result<MultiChannel> {
        let mut chans = Vec::new();
        let mut lost = false;
        for g in self.prune() {
            match open(&g) {
                Ok(ch) => chans.push(ch),
                Err(Error::GatewayLost { .. }) if !alive(&g) => lost = true,
                Err(e) => return Err(e),
            }
        }
        if lost {
            self.prune();
        }
        Ok(MultiChannel::new(chans))
    }

    fn prune(&self) -> Vec<Gateway> {
        let mut g = self.inner.gateways.lock();
        let before = g.len();
        let mut left = Vec::new();
        g.retain(|gw| {
            let keep = alive(gw);
            if !keep {
                left.push(gw.clone());
            }
            keep
        });
        if g.len() != before {
            self.inner.members.fetch_add(1, Ordering::AcqRel);
        }
        let live = g.clone();
        drop(g);
        let record = &self.inner.pool.metrics.record;
        for gw in &left {
            record.departed(gw);
        }
        live
    }

    /// The live gateways, in creation order. A gateway whose worker has
    /// exited or was lost leaves the group.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let pids: Vec<u32> = group.gateways().iter().map(|g| g.rinfo().pid).collect();
    /// assert_eq!(pids.len(), 2);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn gateways(&self) -> Vec<Gateway> {
        self.prune()
    }

    /// The ids of the live gateways.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// assert_eq!(group.ids(), vec!["gw0", "gw1"]);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn ids(&self) -> Vec<String> {
        self.prune().iter().map(|g| g.id().to_string()).collect()
    }

    /// How many live gateways.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// assert_eq!(group.len(), 2);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> usize {
        self.prune().len()
    }

    /// Whether the group has no live gateway.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// assert!(!group.is_empty());
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// assert!(group.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live gateway at `index`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// assert_eq!(group.get(1).unwrap().id(), "gw1");
    /// assert!(group.get(2).is_none());
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn get(&self, index: usize) -> Option<Gateway> {
        self.prune().get(index).cloned()
    }

    /// The live gateway with id `id`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["popen//id=w1"]).await?;
    /// assert!(group.by_id("w1").is_some());
    /// assert!(group.by_id("w2").is_none());
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn by_id(&self, id: &str) -> Option<Gateway> {
        self.prune().into_iter().find(|g| g.id() == id)
    }

    /// Whether a live gateway has id `id`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["popen//id=w1"]).await?;
    /// assert!(group.contains("w1"));
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn contains(&self, id: &str) -> bool {
        self.by_id(id).is_some()
    }

    /// Runs `source` on every gateway. A gateway whose worker was lost
    /// gets no channel (it has left the group), also when the loss is
    /// noticed during this call; one lost afterwards ends its channel.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let mch = group.remote_exec("channel.send(1 + 1)")?;
    /// assert_eq!(mch.receive_each::<i64>().await?, vec![2, 2]);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn remote_exec(&self, source: &str) -> Result<MultiChannel> {
        self.on_each(|g| g.remote_exec(source))
    }

    /// Runs `source` on every gateway with named arguments (see
    /// [`remex::Gateway::remote_exec_with`]).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let args = std::collections::HashMap::from([("base", 40)]);
    /// let mch = group.remote_exec_with("channel.send(base + 2)", &args)?;
    /// assert_eq!(mch.receive_each::<i64>().await?, vec![42, 42]);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    ///
    /// [`remex::Gateway::remote_exec_with`]: remex_core::Gateway::remote_exec_with
    pub fn remote_exec_with<A: Serialize + ?Sized>(
        &self,
        source: &str,
        args: &A,
    ) -> Result<MultiChannel> {
        // Converted and checked once, not once per gateway.
        let args = remex_core::Gateway::script_args(args)?;
        self.on_each(|g| {
            g.connection().exec(remex_core::wire::ExecRequest::Script {
                source: source.to_string(),
                args: args.clone(),
            })
        })
    }

    /// Calls the task `name` with `args` on every gateway. A gateway whose
    /// worker was lost gets no channel, as in [`Group::remote_exec`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let mch = group.remote_call("echo", "hi")?;
    /// assert_eq!(mch.receive_each::<String>().await?, vec!["hi", "hi"]);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn remote_call<A: Serialize + ?Sized>(&self, name: &str, args: &A) -> Result<MultiChannel> {
        self.on_each(|g| g.remote_call(name, args))
    }

    /// Ends every gateway: asks each worker to exit, and kills those still
    /// there after `timeout`, with their children. Returns within `timeout`
    /// plus [`TERMINATE_BOUND`] at most (in practice a few milliseconds
    /// past `timeout`) whatever the workers do, and leaves no process.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// // Running tasks or not, every worker ends within the bound.
    /// let _busy = group.remote_call("sleep", &3600)?;
    /// group.terminate(std::time::Duration::from_millis(200)).await;
    /// assert!(group.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn terminate(&self, timeout: Duration) {
        let t0 = tokio::time::Instant::now();
        // With those another terminate is ending: two at once (a program's
        // end and its Ctrl-C) both return when the workers have ended, not
        // the second at once with nothing left to end.
        let gws: Vec<Gateway> = {
            let taken = std::mem::take(&mut *self.inner.gateways.lock());
            let mut ending = self.inner.ending.lock();
            ending.extend(taken);
            ending.clone()
        };
        self.inner.members.fetch_add(1, Ordering::AcqRel);
        // A relay (`via=`) is told to end once the gateways behind it have
        // ended (within the same deadline): their streams, and the end of
        // their commands' kill sequences, come through it.
        let deadline = t0 + timeout;
        let gws_ref = &gws;
        futures::future::join_all(gws.iter().map(|g| async move {
            let behind = gws_ref
                .iter()
                .filter(|b| b.spec().via.as_deref() == Some(g.id()));
            let ended = futures::future::join_all(behind.map(|b| b.join(None)));
            let _ = tokio::time::timeout_at(deadline, ended).await;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Err(e) = g.exit_within(left).await {
                tracing::warn!(gateway = %g.id(), "terminate: {e}");
            }
        }))
        .await;
        // Cluster allocations end with their last worker: srun and salloc
        // are given the rest of the time to go, so that a program ending
        // now leaves none of them behind.
        let rest = (timeout + TERMINATE_BOUND).saturating_sub(t0.elapsed());
        let released = futures::future::join_all(gws.iter().map(|g| g.cluster_released()));
        if tokio::time::timeout(rest, released).await.is_err() {
            tracing::warn!("terminate: a Slurm allocation or step had not ended within the timeout (it is being ended in the background)");
        }
        self.inner
            .ending
            .lock()
            .retain(|g| !gws.iter().any(|e| e.id() == g.id()));
    }

    /// Retires gateway `id` gracefully, as dask's `retire_workers` does:
    /// it leaves the group at once (no new task or call goes to it), the
    /// pool's tasks waiting on its worker for an executor go back to the
    /// queue, to run on the other workers (no attempt counted), the
    /// running ones finish and deliver their results, and then its worker
    /// exits. Its running tasks have `timeout` to finish; then the worker
    /// is told to exit with what time is left of `timeout` (at least 1 s), and
    /// those tasks run again elsewhere, as when a worker is lost. Adding
    /// and retiring workers while tasks run makes a pool grow and shrink
    /// (`remex run` does it when its `--sshloginfile` changes).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let running = group.submit::<()>("sleep", &0.3)?;
    /// group.retire("gw0", std::time::Duration::from_secs(10)).await?;
    /// running.await?; // a task running there finished
    /// assert_eq!(group.ids(), ["gw1"]);
    /// let later: String = group.submit("echo", "on")?.await?;
    /// assert_eq!(later, "on"); // on gw1
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn retire(&self, id: &str, timeout: Duration) -> Result<()> {
        let t0 = tokio::time::Instant::now();
        let gw = {
            let mut gateways = self.inner.gateways.lock();
            let Some(at) = gateways.iter().position(|g| g.id() == id) else {
                return Err(Error::Arguments {
                    detail: format!("retire: the group has no gateway {id:?}"),
                });
            };
            let gw = gateways.remove(at);
            // A terminate meanwhile ends it too.
            self.inner.ending.lock().push(gw.clone());
            gw
        };
        self.inner.members.fetch_add(1, Ordering::AcqRel);
        let drained = match self.pool().lane_of(id) {
            Some(lane) => lane.retire(timeout).await,
            None => true,
        };
        if !drained {
            tracing::warn!(gateway = %id, "retire: tasks still running after {timeout:?}; ending the worker (they run again elsewhere)");
        }
        let left = timeout
            .saturating_sub(t0.elapsed())
            .max(Duration::from_secs(1));
        let ended = gw.exit_within(left).await;
        self.inner.ending.lock().retain(|g| g.id() != id);
        self.pool().metrics.record.departed(&gw);
        self.dispatch();
        ended
    }
}

/// The ssh gateways among `ready` that go, two or more, to one destination
/// (target, port, ssh_config and worker alike, no via=): started behind
/// one connection. The rest are returned as they were. Off with
/// `REMEX_SSH_SHARE=0`.
#[allow(clippy::type_complexity)]
fn ssh_fanouts(
    ready: Vec<(Spec, Vec<String>)>,
) -> (Vec<Vec<(Spec, String)>>, Vec<(Spec, Vec<String>)>) {
    if std::env::var_os(remex_core::transport::ssh::SHARE_ENV).is_some_and(|v| v == "0") {
        return (Vec::new(), ready);
    }
    let key = |s: &Spec| match &s.transport {
        Transport::Ssh { target } if s.via.is_none() && s.installvia.is_none() => Some(format!(
            "{target}|{:?}|{:?}|{:?}",
            s.port, s.ssh_config, s.worker
        )),
        _ => None,
    };
    let mut groups: Vec<(String, Vec<(Spec, String)>)> = Vec::new();
    let mut rest = Vec::new();
    for (spec, ids) in ready {
        match key(&spec) {
            Some(k) => {
                let id = ids.into_iter().next().unwrap_or_default();
                match groups.iter_mut().find(|(g, _)| *g == k) {
                    Some((_, members)) => members.push((spec, id)),
                    None => groups.push((k, vec![(spec, id)])),
                }
            }
            None => rest.push((spec, ids)),
        }
    }
    let mut fanouts = Vec::new();
    for (_, members) in groups {
        if members.len() >= 2 {
            fanouts.push(members);
        } else {
            rest.extend(members.into_iter().map(|(s, id)| (s, vec![id])));
        }
    }
    (fanouts, rest)
}
