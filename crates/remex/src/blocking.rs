//! remex for code without a runtime: the same calls as the async API, each
//! blocking, with timeouts where a wait may be long.
//!
//! Here are the types whose calls need a runtime: gateways, groups, their
//! multichannels and receive queues. The first call starts one I/O thread
//! (a [`remex_sync::Thread`] named `remex-io`, with its own tokio runtime)
//! that carries every gateway made through this module; calls hand their
//! work to it with a [`remex_sync::Launcher`] and wait for the result.
//! Channels are the one [`Channel`] type: a thread calls
//! its `*_blocking` methods (`send_blocking`, `receive_blocking`,
//! `waitclose_blocking`, `iter`), as it calls every `remex::sync`
//! primitive's, and they wait on their own (on `event-listener`, or by
//! reading the input in the waiting thread), without a round trip through
//! that thread. (`RunMode::Concurrent` callbacks need a runtime: from a
//! thread, use `RunMode::Parallel`.)
//!
//! execnet's examples read almost line for line:
//!
//! ```
//! use std::time::Duration;
//! use remex::blocking::{makegateway, MultiChannel};
//!
//! # fn main() -> remex::Result<()> {
//! let ch1 = makegateway("popen")?.remote_exec("channel.send(1)")?;
//! let ch2 = makegateway("popen")?.remote_exec("channel.send(2)")?;
//! let mch = MultiChannel::new(vec![ch1.clone(), ch2.clone()]);
//! assert_eq!(mch.len(), 2);
//! assert!(mch[0] == ch1 && mch[1] == ch2);
//! assert!(mch.contains(&ch1) && mch.contains(&ch2));
//! let each: Vec<i64> = mch.receive_each(Some(Duration::from_secs(10)))?;
//! assert_eq!(each.iter().sum::<i64>(), 3);
//! # Ok(()) }
//! ```
//!
//! A call made on the `remex-io` thread itself (from a callback in
//! [`crate::sync::RunMode::Sequential`]) would wait for itself: it returns an error
//! instead. Use [`crate::sync::RunMode::Parallel`] callbacks to call back into
//! remex.
//!
//! Over 500 lines: about 670 are documentation and runnable examples of the
//! blocking API; the code is under 500.

use std::fmt;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use remex_sync::{Launcher, Thread};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::core::wire::{RemoteStatus, WorkerInfo};
use crate::sync::Lifecycle;
use crate::{Channel, Error, GatewayState, Result, Spec, Value};

static IO: OnceLock<std::result::Result<Launcher, String>> = OnceLock::new();

/// The launcher of the `remex-io` thread, started on first use.
fn io() -> Result<&'static Launcher> {
    let l = IO.get_or_init(|| {
        let t = Thread::new("remex-io");
        t.start(true, Some(Duration::from_secs(10)))
            .and_then(|()| t.launcher())
            // The thread runs for the life of the process.
            .inspect(|_| std::mem::forget(t))
            .map_err(|e| e.to_string())
    });
    match l {
        Ok(l) if l.is_owner() => Err(Error::Sync(remex_sync::Error::Usage(
            "a blocking remex call on the remex-io thread (a sequential callback) would wait for itself; use RunMode::Parallel callbacks".into(),
        ))),
        Ok(l) => Ok(l),
        Err(e) => Err(Error::Os {
            what: "starting the remex-io thread".into(),
            detail: e.clone(),
        }),
    }
}

/// Runs a future on the I/O thread and waits for its output.
fn run<F, T>(fut: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    io()?.spawn(fut).take_blocking(None)?
}

/// Runs a closure on the I/O thread (for calls that start tasks).
fn apply<F, T>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    io()?.apply(f)?
}

fn to_value<A: Serialize + ?Sized>(args: &A) -> Result<Value> {
    crate::to_value(args).map_err(|e| Error::Arguments {
        detail: e.to_string(),
    })
}

/// Starts a gateway from a spec (see [`crate::makegateway`]).
///
/// ```
/// # fn main() -> remex::Result<()> {
/// let gw = remex::blocking::makegateway("popen")?;
/// let ch = gw.remote_exec("channel.send(channel.receive() + 1)")?;
/// ch.send_blocking(&41)?;
/// assert_eq!(ch.receive_blocking::<i64>(None)?, 42);
/// gw.exit()?;
/// # Ok(()) }
/// ```
pub fn makegateway(spec: &str) -> Result<Gateway> {
    let spec = spec.to_string();
    run(async move { crate::makegateway(&spec).await }).map(Gateway::from)
}

/// A gateway for blocking code: [`crate::Gateway`]'s calls.
///
/// ```
/// # fn main() -> remex::Result<()> {
/// let gw = remex::blocking::makegateway("popen")?;
/// let ch = gw.remote_exec("channel.send(1)")?;
/// assert_eq!(ch.receive_blocking::<i64>(None)?, 1);
/// gw.exit()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Gateway {
    inner: crate::Gateway,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl From<crate::Gateway> for Gateway {
    fn from(inner: crate::Gateway) -> Self {
        Gateway { inner }
    }
}

impl Gateway {
    /// The async gateway underneath.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let gw = remex::blocking::makegateway("popen")?;
    /// let inner: &remex::Gateway = gw.asynchronous();
    /// assert_eq!(inner.id(), gw.id());
    /// # Ok(()) }
    /// ```
    pub fn asynchronous(&self) -> &crate::Gateway {
        &self.inner
    }

    /// Runs a rhai script on the worker with a fresh channel.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let gw = remex::blocking::makegateway("popen")?;
    /// let ch = gw.remote_exec("channel.send(channel.receive() + 1)")?;
    /// ch.send_blocking(&1)?;
    /// assert_eq!(ch.receive_blocking::<i64>(None)?, 2);
    /// # Ok(()) }
    /// ```
    pub fn remote_exec(&self, source: &str) -> Result<Channel> {
        let (gw, src) = (self.inner.clone(), source.to_string());
        apply(move || gw.remote_exec(src))
    }

    /// Runs a rhai script with named arguments (see
    /// [`crate::Gateway::remote_exec_with`]).
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let gw = remex::blocking::makegateway("popen")?;
    /// let args = std::collections::HashMap::from([("word", "hi")]);
    /// let ch = gw.remote_exec_with("channel.send(word + \"!\")", &args)?;
    /// assert_eq!(ch.receive_blocking::<String>(None)?, "hi!");
    /// # Ok(()) }
    /// ```
    pub fn remote_exec_with<A: Serialize + ?Sized>(
        &self,
        source: &str,
        args: &A,
    ) -> Result<Channel> {
        let args = remex_core::Gateway::script_args(args)?;
        let (gw, source) = (self.inner.clone(), source.to_string());
        apply(move || {
            gw.connection()
                .exec(remex_core::wire::ExecRequest::Script { source, args })
        })
    }

    /// Calls a registered task with `args`.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let gw = remex::blocking::makegateway("popen")?;
    /// let ch = gw.remote_call("echo", &[1, 2, 3])?;
    /// assert_eq!(ch.receive_blocking::<Vec<i64>>(None)?, vec![1, 2, 3]);
    /// # Ok(()) }
    /// ```
    pub fn remote_call<A: Serialize + ?Sized>(&self, name: &str, args: &A) -> Result<Channel> {
        let args = to_value(args)?;
        let (gw, name) = (self.inner.clone(), name.to_string());
        apply(move || gw.remote_call(&name, &args))
    }

    /// A new channel, to pass to the worker inside a value.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let gw = remex::blocking::makegateway("popen")?;
    /// let t = Some(std::time::Duration::from_secs(10));
    /// let ch = gw.remote_exec("let c = channel.receive(); c.send(5);")?;
    /// let side = gw.newchannel();
    /// ch.send_blocking(&side)?;
    /// assert_eq!(side.receive_blocking::<i64>(t)?, 5);
    /// # Ok(()) }
    /// ```
    pub fn newchannel(&self) -> Channel {
        self.inner.newchannel()
    }

    /// The worker's channel and task counts.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let gw = remex::blocking::makegateway("popen")?;
    /// let status = gw.remote_status()?;
    /// assert_eq!(status.numexecuting, 0);
    /// # Ok(()) }
    /// ```
    pub fn remote_status(&self) -> Result<RemoteStatus> {
        let gw = self.inner.clone();
        run(async move { gw.remote_status().await })
    }

    /// Ends the worker gracefully (see [`crate::Gateway::exit`]).
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let gw = remex::blocking::makegateway("popen")?;
    /// let pid = gw.rinfo().pid;
    /// gw.exit()?;
    /// assert_eq!(gw.lifecycle().state(), remex::sync::LifecycleState::Off);
    /// # let _ = pid;
    /// # Ok(()) }
    /// ```
    pub fn exit(&self) -> Result<()> {
        let gw = self.inner.clone();
        run(async move { gw.exit().await })
    }

    /// Waits at most `timeout` for the worker to end.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let gw = remex::blocking::makegateway("popen")?;
    /// assert!(gw.join(Some(std::time::Duration::from_millis(10))).is_err()); // still running
    /// gw.exit()?;
    /// gw.join(Some(std::time::Duration::from_secs(5)))?;
    /// # Ok(()) }
    /// ```
    pub fn join(&self, timeout: Option<Duration>) -> Result<()> {
        let gw = self.inner.clone();
        run(async move { gw.join(timeout).await })
    }

    /// Kills the worker and its children.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let gw = remex::blocking::makegateway("popen")?;
    /// gw.kill()?;
    /// assert!(matches!(gw.lifecycle().state(), remex::sync::LifecycleState::Fault(_)));
    /// # Ok(()) }
    /// ```
    pub fn kill(&self) -> Result<()> {
        let gw = self.inner.clone();
        run(async move { gw.kill().await })
    }

    /// The worker's pid, cwd, executable, platform and version.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let gw = remex::blocking::makegateway("popen")?;
    /// assert!(gw.rinfo().pid > 0);
    /// # Ok(()) }
    /// ```
    pub fn rinfo(&self) -> &WorkerInfo {
        self.inner.rinfo()
    }

    /// The gateway's id.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let gw = remex::blocking::makegateway("popen//id=w1")?;
    /// assert_eq!(gw.id(), "w1");
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> &str {
        self.inner.id()
    }

    /// The gateway's spec.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let gw = remex::blocking::makegateway("popen")?;
    /// assert_eq!(gw.spec().raw, "popen");
    /// # Ok(()) }
    /// ```
    pub fn spec(&self) -> &Spec {
        self.inner.spec()
    }

    /// The gateway's state.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let gw = remex::blocking::makegateway("popen")?;
    /// assert_eq!(gw.state(), remex::GatewayState::Running);
    /// # Ok(()) }
    /// ```
    pub fn state(&self) -> GatewayState {
        self.inner.state()
    }

    /// The gateway's lifecycle (On, Off, Fault).
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let gw = remex::blocking::makegateway("popen")?;
    /// assert_eq!(gw.lifecycle().state(), remex::sync::LifecycleState::On);
    /// # Ok(()) }
    /// ```
    pub fn lifecycle(&self) -> &Lifecycle {
        self.inner.lifecycle()
    }
}

/// A group of gateways for blocking code: [`crate::Group`]'s calls.
///
/// ```
/// use std::time::Duration;
/// # fn main() -> remex::Result<()> {
/// // execnet: group = execnet.Group(['popen'] * 3)
/// let group = remex::blocking::Group::new(["3*popen"])?;
/// let mch = group.remote_exec("channel.send(channel.receive()+1)")?;
/// let queue = mch.make_receive_queue(Some(42.into()))?;
/// mch[0].send_blocking(&1)?;
/// let (_chan1, res1) = queue.get(Some(Duration::from_secs(10)))?;
/// assert_eq!(res1, 2.into());
/// group.terminate(Duration::from_secs(1)); // kills workers waiting on receive
/// for _ in 0..3 {
///     let (_chan, res) = queue.get(Some(Duration::from_secs(10)))?;
///     assert_eq!(res, 42.into());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Group {
    inner: crate::Group,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Group {
    /// Starts gateways for `specs` in parallel (`N*spec` multiplies).
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// assert_eq!(group.len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn new<I, S>(specs: I) -> Result<Group>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let specs: Vec<String> = specs.into_iter().map(|s| s.as_ref().to_string()).collect();
        run(async move { crate::Group::new(specs).await }).map(|inner| Group { inner })
    }

    /// The async group underneath.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// assert_eq!(group.asynchronous().len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn asynchronous(&self) -> &crate::Group {
        &self.inner
    }

    /// Starts one more gateway in the group.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let gw = group.makegateway("popen//id=extra")?;
    /// assert!(group.contains("extra"));
    /// assert_eq!(gw.id(), "extra");
    /// # Ok(()) }
    /// ```
    pub fn makegateway(&self, spec: &str) -> Result<Gateway> {
        let (g, spec) = (self.inner.clone(), spec.to_string());
        run(async move { g.makegateway(&spec).await }).map(Gateway::from)
    }

    /// The live gateways, in creation order.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let pids: Vec<u32> = group.gateways().iter().map(|g| g.rinfo().pid).collect();
    /// assert_eq!(pids.len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn gateways(&self) -> Vec<Gateway> {
        self.inner
            .gateways()
            .into_iter()
            .map(Gateway::from)
            .collect()
    }

    /// The gateway at `index`.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// assert!(group.get(1).is_some());
    /// assert!(group.get(2).is_none());
    /// # Ok(()) }
    /// ```
    pub fn get(&self, index: usize) -> Option<Gateway> {
        self.inner.get(index).map(Gateway::from)
    }

    /// The gateway with id `id`.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let group = remex::blocking::Group::new(["popen//id=a", "popen//id=b"])?;
    /// assert_eq!(group.by_id("b").unwrap().id(), "b");
    /// # Ok(()) }
    /// ```
    pub fn by_id(&self, id: &str) -> Option<Gateway> {
        self.inner.by_id(id).map(Gateway::from)
    }

    /// Whether a gateway with id `id` is in the group.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let group = remex::blocking::Group::new(["popen//id=a"])?;
    /// assert!(group.contains("a") && !group.contains("z"));
    /// # Ok(()) }
    /// ```
    pub fn contains(&self, id: &str) -> bool {
        self.inner.contains(id)
    }

    /// How many gateways the group holds.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// assert_eq!(group.len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the group is empty.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// assert!(!group.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Runs a script on every gateway.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let t = Some(std::time::Duration::from_secs(10));
    /// let mch = group.remote_exec("channel.send(1)")?;
    /// assert_eq!(mch.receive_each::<i64>(t)?, vec![1, 1]);
    /// # Ok(()) }
    /// ```
    pub fn remote_exec(&self, source: &str) -> Result<MultiChannel> {
        let (g, src) = (self.inner.clone(), source.to_string());
        apply(move || g.remote_exec(&src)).map(MultiChannel::from_async)
    }

    /// Runs a script with named arguments on every gateway (see
    /// [`crate::Gateway::remote_exec_with`]).
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let t = Some(std::time::Duration::from_secs(10));
    /// let args = std::collections::HashMap::from([("n", 2)]);
    /// let mch = group.remote_exec_with("channel.send(n * n)", &args)?;
    /// assert_eq!(mch.receive_each::<i64>(t)?, vec![4, 4]);
    /// # Ok(()) }
    /// ```
    pub fn remote_exec_with<A: Serialize + ?Sized>(
        &self,
        source: &str,
        args: &A,
    ) -> Result<MultiChannel> {
        let args = remex_core::Gateway::script_args(args)?;
        let (g, src) = (self.inner.clone(), source.to_string());
        apply(move || g.remote_exec_with(&src, &args)).map(MultiChannel::from_async)
    }

    /// Calls a registered task on every gateway.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let t = Some(std::time::Duration::from_secs(10));
    /// let mch = group.remote_call("echo", &"hi")?;
    /// assert_eq!(mch.receive_each::<String>(t)?, vec!["hi", "hi"]);
    /// # Ok(()) }
    /// ```
    pub fn remote_call<A: Serialize + ?Sized>(&self, name: &str, args: &A) -> Result<MultiChannel> {
        let args = to_value(args)?;
        let (g, name) = (self.inner.clone(), name.to_string());
        apply(move || g.remote_call(&name, &args)).map(MultiChannel::from_async)
    }

    /// Submits a task to the group's pool (see [`crate::Group::submit`]);
    /// its result is read as an `R`. Collect the futures with [`gather`].
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let x = group.submit::<i64>("echo", &3)?;
    /// let nested = vec![vec![group.submit::<i64>("echo", &1)?], vec![x]];
    /// let got = remex::blocking::gather(nested, remex::Errors::Raise)?;
    /// assert_eq!(got.value, vec![vec![1], vec![3]]);
    /// # Ok(()) }
    /// ```
    pub fn submit<R: DeserializeOwned + 'static>(
        &self,
        task: &str,
        args: &(impl Serialize + ?Sized),
    ) -> Result<crate::TaskFuture<R>> {
        let args = to_value(args)?;
        let (g, task) = (self.inner.clone(), task.to_string());
        apply(move || g.submit::<R>(&task, &args))
    }

    /// Submits a task to the group's pool and waits at most `timeout` for
    /// its result, read as an `R` (retried elsewhere if its worker dies;
    /// see [`crate::Group::submit`]).
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let v: i64 = group.call("echo", &7, Some(std::time::Duration::from_secs(10)))?;
    /// assert_eq!(v, 7);
    /// # Ok(()) }
    /// ```
    pub fn call<R: DeserializeOwned + Send + 'static>(
        &self,
        task: &str,
        args: &(impl Serialize + ?Sized),
        timeout: Option<Duration>,
    ) -> Result<R> {
        let args = to_value(args)?;
        let (g, task) = (self.inner.clone(), task.to_string());
        run(async move {
            crate::with_timeout("the task's result", timeout, g.submit::<R>(&task, &args)?).await
        })
    }

    /// Ends every worker within `timeout` plus [`crate::TERMINATE_BOUND`].
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let pids: Vec<u32> = group.gateways().iter().map(|g| g.rinfo().pid).collect();
    /// group.terminate(std::time::Duration::from_secs(1));
    /// assert!(group.is_empty());
    /// # let _ = pids;
    /// # Ok(()) }
    /// ```
    pub fn terminate(&self, timeout: Duration) {
        let g = self.inner.clone();
        let _ = run(async move {
            g.terminate(timeout).await;
            Ok(())
        });
    }
}

/// Channels used together, for blocking code: [`crate::MultiChannel`]'s
/// calls.
///
/// ```
/// # fn main() -> remex::Result<()> {
/// let t = Some(std::time::Duration::from_secs(10));
/// let group = remex::blocking::Group::new(["2*popen"])?;
/// let mch = group.remote_exec("channel.send(channel.receive() * 10)")?;
/// mch.send_each(&1)?;
/// assert_eq!(mch.receive_each::<i64>(t)?, vec![10, 10]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MultiChannel {
    inner: crate::MultiChannel,
    channels: Vec<Channel>,
}

impl fmt::Debug for MultiChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.channels).finish()
    }
}

impl std::ops::Index<usize> for MultiChannel {
    type Output = Channel;
    fn index(&self, i: usize) -> &Channel {
        &self.channels[i]
    }
}

impl MultiChannel {
    /// Channels to use together.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let gw = remex::blocking::makegateway("popen")?;
    /// let t = Some(std::time::Duration::from_secs(10));
    /// let a = gw.remote_exec("channel.send(1)")?;
    /// let b = gw.remote_exec("channel.send(2)")?;
    /// let mch = remex::blocking::MultiChannel::new(vec![a, b]);
    /// assert_eq!(mch.receive_each::<i64>(t)?, vec![1, 2]);
    /// # Ok(()) }
    /// ```
    pub fn new(channels: Vec<Channel>) -> MultiChannel {
        let inner = crate::MultiChannel::new(channels.clone());
        MultiChannel { inner, channels }
    }

    fn from_async(inner: crate::MultiChannel) -> MultiChannel {
        let channels = inner.iter().cloned().collect();
        MultiChannel { inner, channels }
    }

    /// How many channels.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let t = Some(std::time::Duration::from_secs(10));
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 10)")?;
    /// assert_eq!(mch.len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// Whether there are none.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let mch = remex::blocking::MultiChannel::new(vec![]);
    /// assert!(mch.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// Whether `ch` is one of them.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let t = Some(std::time::Duration::from_secs(10));
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 10)")?;
    /// assert!(mch.contains(&mch[1]));
    /// # Ok(()) }
    /// ```
    pub fn contains(&self, ch: &Channel) -> bool {
        self.channels.contains(ch)
    }

    /// The channels.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let t = Some(std::time::Duration::from_secs(10));
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 10)")?;
    /// for ch in mch.iter() { ch.send_blocking(&2)?; }
    /// assert_eq!(mch.receive_each::<i64>(t)?, vec![20, 20]);
    /// # Ok(()) }
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, Channel> {
        self.channels.iter()
    }

    /// Sends `value` on every channel.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let t = Some(std::time::Duration::from_secs(10));
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 10)")?;
    /// mch.send_each(&3)?;
    /// assert_eq!(mch.receive_each::<i64>(t)?, vec![30, 30]);
    /// # Ok(()) }
    /// ```
    pub fn send_each<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.channels
            .iter()
            .try_for_each(|c| c.send_blocking(value))
    }

    /// One item from every channel, in channel order, within `timeout`
    /// overall.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let t = Some(std::time::Duration::from_secs(10));
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 10)")?;
    /// assert!(mch.receive_each::<i64>(Some(std::time::Duration::from_millis(10))).is_err()); // nothing sent yet
    /// mch.send_each(&4)?;
    /// assert_eq!(mch.receive_each::<i64>(t)?, vec![40, 40]);
    /// # Ok(()) }
    /// ```
    pub fn receive_each<T: DeserializeOwned + 'static>(
        &self,
        timeout: Option<Duration>,
    ) -> Result<Vec<T>> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        self.channels
            .iter()
            .map(|c| {
                let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
                c.receive_blocking(left)
            })
            .collect()
    }

    /// The receive queue of these channels (the same on every call).
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let t = Some(std::time::Duration::from_secs(10));
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 10)")?;
    /// let q = mch.make_receive_queue(Some("end".into()))?;
    /// mch.send_each(&1)?;
    /// let mut items = Vec::new();
    /// for _ in 0..4 { items.push(q.get(t)?.1); }
    /// assert_eq!(items.iter().filter(|v| **v == "end".into()).count(), 2);
    /// # Ok(()) }
    /// ```
    pub fn make_receive_queue(&self, endmarker: Option<Value>) -> Result<ReceiveQueue> {
        self.inner
            .make_receive_queue(endmarker)
            .map(|inner| ReceiveQueue { inner })
    }

    /// Waits at most `timeout` for every channel to close; the first remote
    /// error if any failed.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let t = Some(std::time::Duration::from_secs(10));
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 10)")?;
    /// mch.send_each(&1)?;
    /// mch.waitclose(t)?;
    /// # Ok(()) }
    /// ```
    pub fn waitclose(&self, timeout: Option<Duration>) -> Result<()> {
        let m = self.inner.clone();
        run(async move { m.waitclose(timeout).await })
    }
}

/// The receive queue of a [`MultiChannel`], for blocking code.
///
/// ```
/// # fn main() -> remex::Result<()> {
/// let t = Some(std::time::Duration::from_secs(10));
/// let group = remex::blocking::Group::new(["2*popen"])?;
/// let mch = group.remote_exec("channel.send(channel.receive() * 10)")?;
/// let q = mch.make_receive_queue(None)?;
/// mch[0].send_blocking(&5)?;
/// let (ch, v) = q.get(t)?;
/// assert!(ch == mch[0] && v == 50.into());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ReceiveQueue {
    inner: crate::ReceiveQueue,
}

impl ReceiveQueue {
    /// The next `(channel, item)`, waiting at most `timeout`.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let t = Some(std::time::Duration::from_secs(10));
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 10)")?;
    /// let q = mch.make_receive_queue(None)?;
    /// assert!(q.get(Some(std::time::Duration::from_millis(10))).is_err());
    /// # Ok(()) }
    /// ```
    pub fn get(&self, timeout: Option<Duration>) -> Result<(Channel, Value)> {
        self.inner.get_blocking(timeout)
    }

    /// Items waiting now.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let t = Some(std::time::Duration::from_secs(10));
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 10)")?;
    /// let q = mch.make_receive_queue(None)?;
    /// mch.send_each(&1)?;
    /// q.get(t)?;
    /// q.get(t)?;
    /// assert_eq!(q.len(), 0);
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether no item waits now.
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let t = Some(std::time::Duration::from_secs(10));
    /// let group = remex::blocking::Group::new(["2*popen"])?;
    /// let mch = group.remote_exec("channel.send(channel.receive() * 10)")?;
    /// let q = mch.make_receive_queue(None)?;
    /// assert!(q.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// Gathers futures (see [`crate::gather`]) for blocking code.
///
/// ```
/// # fn main() -> remex::Result<()> {
/// let group = remex::blocking::Group::new(["2*popen"])?;
/// let futures = vec![group.submit::<i64>("echo", &1)?, group.submit("echo", &2)?];
/// let got = remex::blocking::gather(futures, remex::Errors::Raise)?;
/// assert_eq!(got.value, vec![1, 2]);
/// # Ok(()) }
/// ```
pub fn gather<G: crate::Gather>(x: G, errors: crate::Errors) -> Result<crate::Gathered<G::Output>>
where
    G::Output: Send + 'static,
{
    run(async move { crate::gather(x, errors).await })
}

impl crate::rsync::RSync {
    /// [`RSync::send`](crate::rsync::RSync::send) for plain threads: runs
    /// on the I/O thread. Targets are the gateways' asynchronous handles
    /// ([`Gateway::asynchronous`]).
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let src = std::env::temp_dir().join(format!("rsync-blocking-src-{}", std::process::id()));
    /// let dst = std::env::temp_dir().join(format!("rsync-blocking-dst-{}", std::process::id()));
    /// std::fs::create_dir_all(&src)?;
    /// std::fs::write(src.join("f"), "data")?;
    /// let gw = remex::blocking::makegateway("popen")?;
    /// let reports = remex::rsync::RSync::new(&src)
    ///     .add_target(gw.asynchronous(), dst.display().to_string())
    ///     .send_blocking()?;
    /// assert_eq!(reports[0].files_sent, 1);
    /// assert_eq!(std::fs::read_to_string(dst.join("f"))?, "data");
    /// gw.exit()?;
    /// # std::fs::remove_dir_all(src)?; std::fs::remove_dir_all(dst)?;
    /// # Ok(()) }
    /// ```
    pub fn send_blocking(&self) -> Result<Vec<crate::rsync::Report>> {
        let me = self.clone();
        run(async move { me.send().await })
    }
}
