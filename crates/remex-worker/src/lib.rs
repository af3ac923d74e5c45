//! The remex worker: serves one controller over stdin/stdout, running rhai
//! scripts and registered Rust tasks, each with its own channel.
//!
//! The stock `remex-worker` binary is `Worker::new().run()`. A custom worker
//! adds tasks in a few lines of `main`:
//!
//! ```no_run
//! use remex::worker::{Task, TaskError, Worker};
//!
//! // The whole `main` of a custom worker:
//! Worker::new()
//!     .task("square", |t: &Task| {
//!         let x: i64 = t.args()?;
//!         Ok::<_, TaskError>(x * x)
//!     })
//!     .run()
//! ```
//!
//! A program can also serve as its own worker (self-exec): call
//! [`serve_if_worker`] first thing in `main`, and start gateways with
//! `worker=self`.
//!
//! Every script or task runs on its own thread, so a blocking one never
//! stalls the others. When it returns, its channel closes; when it fails or
//! panics, the channel closes with the error text, which the caller receives
//! as a `RemoteError`.

mod builtins;
mod cli;
mod command;
mod dial;
mod exit;
mod install;
mod lane;
mod listen;
mod place;
mod process;
mod relay;
pub mod rsync;
mod script;
mod serve;
mod store;
mod task;
mod transfer;
mod wirelog;

use std::any::Any;
use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};

use remex_core::conn::ExecutingGuard;
use remex_core::wire::ExecRequest;
use remex_core::{Channel, Value};
use serde::Serialize;

/// The script language's crate, for [`Worker::script_engine`]: types and
/// modules of a worker's own.
pub use command::{CommandOutcome, CommandRequest, DEFAULT_MAX_OUTPUT};
pub use remex_core::wire::ScriptLimits;
pub use rhai;
pub use script::DEFAULT_SCRIPT_LIMITS;
pub use task::{Task, TaskError};
pub use transfer::{Place, Transfer, MOST_RETURNED};

/// A worker: the tasks it offers, ready to serve.
///
/// ```
/// use remex::worker::{Task, TaskError, Worker};
/// let w = Worker::new().task("double", |t: &Task| Ok::<_, TaskError>(t.args::<i64>()? * 2));
/// assert!(w.task_names().contains(&"double".to_string()));
/// assert!(w.task_names().contains(&"echo".to_string()), "built-ins included");
/// ```
#[derive(Clone)]
pub struct Worker {
    tasks: task::Registry,
    scripts: script::Scripts,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("tasks", &self.tasks)
            .finish_non_exhaustive()
    }
}

impl Default for Worker {
    fn default() -> Self {
        Worker::new()
    }
}

pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a non-string panic payload)".to_string()
    }
}

impl Worker {
    /// A worker with the built-in tasks: `echo(x)` returns `x`,
    /// `sleep(seconds)`, `shell("command")` streams the command's stdout
    /// lines, `pid()` returns the worker's pid.
    ///
    /// ```
    /// let w = remex::worker::Worker::new();
    /// assert_eq!(w.task_names(), vec!["echo", "pid", "run", "shell", "sleep"]);
    /// ```
    pub fn new() -> Self {
        builtins::register(Worker::bare())
    }

    /// A worker with no tasks (scripts still run).
    ///
    /// ```
    /// let w = remex::worker::Worker::bare();
    /// assert!(w.task_names().is_empty());
    /// ```
    pub fn bare() -> Self {
        install::register(relay::register(builtins::register_store(Worker {
            tasks: task::Registry::default(),
            scripts: script::Scripts::default(),
        })))
    }

    /// Registers a task under `name`. What it returns is sent to the caller
    /// as the channel's last item (nothing is sent for `()`); an error
    /// closes the channel with its text.
    ///
    /// ```
    /// use remex::worker::{Task, TaskError, Worker};
    /// let w = Worker::bare().task("add", |t: &Task| {
    ///     let (a, b): (i64, i64) = t.args()?;
    ///     Ok::<_, TaskError>(a + b)
    /// });
    /// assert_eq!(w.task_names(), vec!["add".to_string()]);
    /// ```
    pub fn task<F, R, E>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(&Task) -> Result<R, E> + Send + Sync + 'static,
        R: Serialize,
        E: Display,
    {
        self.tasks.insert(name, f);
        self.scripts.changed();
        self
    }

    /// Adds a function for scripts: `f` takes up to six arguments of
    /// script types (`i64`, `f64`, `bool`, `String`, `rhai::Array`,
    /// `rhai::Map`, `rhai::Dynamic`, ...) and returns one, or a
    /// `Result<_, Box<rhai::EvalAltResult>>` whose error fails the script.
    ///
    /// ```
    /// #[tokio::main]
    /// async fn main() -> remex::Result<()> {
    ///     remex::serve_if_worker(|| {
    ///         remex::worker::Worker::new()
    ///             .script_fn("square", |x: i64| x * x)
    ///             .script_fn("greet", |name: &str| format!("hello, {name}"))
    ///     });
    ///     let gw = remex::makegateway("popen").await?;
    ///     let ch = gw.remote_exec("channel.send([square(7), greet(\"ann\")])")?;
    ///     assert_eq!(ch.receive::<(i64, String)>().await?, (49, "hello, ann".to_string()));
    ///     gw.exit().await?;
    ///     Ok(())
    /// }
    /// ```
    pub fn script_fn<A, const N: usize, const X: bool, R, const F: bool, Func>(
        mut self,
        name: &str,
        f: Func,
    ) -> Self
    where
        A: 'static,
        R: std::any::Any + Clone + Send + Sync,
        Func: rhai::RhaiNativeFunc<A, N, X, R, F> + Clone + Send + Sync + 'static,
    {
        self.scripts
            .add_signature(name, &script::param_types::<A, N, X, R, F, _>(&f));
        let name = name.to_string();
        self.scripts
            .add(std::sync::Arc::new(move |e: &mut rhai::Engine| {
                e.register_fn(name.as_str(), f.clone());
            }));
        self
    }

    /// Adds to the script engine what [`Worker::script_fn`] cannot: types
    /// with methods, modules, packages, custom operators. `setup` runs on
    /// every engine the worker builds (one per set of limits).
    ///
    /// ```
    /// use remex::worker::{rhai, Worker};
    ///
    /// #[derive(Clone)]
    /// struct Counter(i64);
    ///
    /// #[tokio::main]
    /// async fn main() -> remex::Result<()> {
    ///     remex::serve_if_worker(|| {
    ///         Worker::new().script_engine(|e: &mut rhai::Engine| {
    ///             e.register_type_with_name::<Counter>("Counter")
    ///                 .register_fn("counter", || Counter(0))
    ///                 .register_fn("bump", |c: &mut Counter| c.0 += 1)
    ///                 .register_get("value", |c: &mut Counter| c.0);
    ///         })
    ///     });
    ///     let gw = remex::makegateway("popen").await?;
    ///     let ch = gw.remote_exec("let c = counter(); c.bump(); c.bump(); channel.send(c.value)")?;
    ///     assert_eq!(ch.receive::<i64>().await?, 2);
    ///     gw.exit().await?;
    ///     Ok(())
    /// }
    /// ```
    pub fn script_engine(
        mut self,
        setup: impl Fn(&mut rhai::Engine) + Send + Sync + 'static,
    ) -> Self {
        self.scripts.add(std::sync::Arc::new(setup));
        self
    }

    /// This worker's limits for scripts; a spec's own (`script_max_*=`)
    /// take precedence, and [`DEFAULT_SCRIPT_LIMITS`] fills what neither
    /// sets.
    ///
    /// ```
    /// #[tokio::main]
    /// async fn main() -> remex::Result<()> {
    ///     remex::serve_if_worker(|| {
    ///         remex::worker::Worker::new().script_limits(remex::core::wire::ScriptLimits {
    ///             max_operations: Some(10_000),
    ///             ..Default::default()
    ///         })
    ///     });
    ///     let gw = remex::makegateway("popen").await?;
    ///     let e = gw.remote_exec("loop { }")?.waitclose(None).await.unwrap_err();
    ///     assert!(e.to_string().contains("script_max_operations=10000"), "{e}");
    ///     // The worker keeps serving.
    ///     assert_eq!(gw.remote_exec("channel.send(1)")?.receive::<i64>().await?, 1);
    ///     gw.exit().await?;
    ///     Ok(())
    /// }
    /// ```
    pub fn script_limits(mut self, limits: ScriptLimits) -> Self {
        self.scripts.set_limits(limits);
        self
    }

    /// Scripts on this worker get no environment, files or processes (the
    /// rest of the library, tasks and the worker's own functions stay).
    /// A worker for untrusted scripts also leaves out tasks that reach the
    /// system: `Worker::bare().restricted_scripts()`.
    ///
    /// ```
    /// #[tokio::main]
    /// async fn main() -> remex::Result<()> {
    ///     remex::serve_if_worker(|| remex::worker::Worker::bare().restricted_scripts());
    ///     let gw = remex::makegateway("popen").await?;
    ///     let e = gw.remote_exec("read_file(\"/etc/passwd\")")?.waitclose(None).await.unwrap_err();
    ///     assert!(e.to_string().contains("read_file"), "{e}");
    ///     gw.exit().await?;
    ///     Ok(())
    /// }
    /// ```
    pub fn restricted_scripts(mut self) -> Self {
        self.scripts.restrict(true);
        self
    }

    /// Builds the script engine ahead of the first script, for the
    /// limits `limits` gives (see `Scripts::prewarm`).
    pub(crate) fn prewarm_scripts(
        &self,
        limits: std::sync::mpsc::Receiver<ScriptLimits>,
        quiet: place::Quiet,
    ) {
        self.scripts.prewarm(&self.tasks, limits, quiet);
    }

    /// Scripts under `limits` wait for the prewarm's engine.
    pub(crate) fn prewarm_announce(&self, limits: ScriptLimits) {
        self.scripts.prewarm_announce(limits);
    }

    /// The names of the registered tasks, sorted.
    ///
    /// ```
    /// use remex::worker::{Task, TaskError, Worker};
    /// let w = Worker::bare().task("b", |_t: &Task| Ok::<_, TaskError>(())).task("a", |_t: &Task| Ok::<_, TaskError>(()));
    /// assert_eq!(w.task_names(), vec!["a", "b"]);
    /// ```
    pub fn task_names(&self) -> Vec<String> {
        self.tasks.names()
    }

    /// Serves the controller on stdin/stdout and exits the process when it
    /// terminates the worker or goes away. Called inside a tokio runtime
    /// (a self-serving `#[tokio::main]` program), it serves from a thread
    /// of its own, with its own runtime.
    ///
    /// With `--listen ADDR` on the command line, it serves gateways over TCP
    /// instead (`socket=`), admitting only clients that prove the secret
    /// read from `--secret-file PATH` or the environment variable named by
    /// `--secret-env NAME` (default `REMEX_SECRET`); never from the command
    /// line.
    ///
    /// ```no_run
    /// // The whole `main` of a worker binary of your own (run by gateways with
    /// // `worker=PATH`; by hand, `--help` says how):
    /// remex::worker::Worker::new().run()
    /// ```
    pub fn run(self) -> ! {
        // A worker an engine started to dial its controller (slurm
        // gateways) takes no arguments.
        let dial_to = std::env::var(dial::DIAL_ENV).ok().filter(|a| !a.is_empty());
        let args = dial_to.is_none().then(cli::parse);
        // Served from inside a program's runtime, other threads run: the
        // process's environment and directory are left alone
        // (`crate::place`).
        let in_runtime = tokio::runtime::Handle::try_current().is_ok();
        if in_runtime {
            place::SHARED_PROCESS.store(true, std::sync::atomic::Ordering::Release);
        }
        // Gateways this process starts (from its tasks) are its own, not
        // a worker that forgot to serve.
        place::forget(remex_core::transport::popen::WORKER_ENV);
        let serve: Box<dyn FnOnce() -> std::convert::Infallible + Send> = match (dial_to, args) {
            (Some(addr), _) => {
                Box::new(move || -> std::convert::Infallible { dial::dial(self, addr) })
            }
            (
                None,
                Some(cli::Args {
                    listen: Some(addr),
                    secret_file,
                    secret_env,
                    exit_with_stdin,
                }),
            ) => {
                let (secret, opts) = listen_args(secret_file, secret_env, exit_with_stdin);
                Box::new(move || -> std::convert::Infallible {
                    listen::listen(self, &addr, secret, opts)
                })
            }
            (None, _) => Box::new(move || -> std::convert::Infallible { serve::run(self) }),
        };
        // Inside a runtime (a self-serving `#[tokio::main]` program), the
        // worker's runtime runs on a thread of its own.
        if in_runtime {
            let serving = std::thread::Builder::new()
                .name("remex-worker".into())
                .spawn(serve);
            if let Ok(t) = serving {
                let _ = t.join();
            }
            // Serving never returns: its thread could not start, or
            // panicked.
            exit::fail("the worker's thread ended")
        }
        match serve() {}
    }

    /// Runs one request to its end and closes its channel. It stops counting
    /// as executing before the close, so a caller that saw the close never
    /// sees it running.
    fn execute(
        &self,
        ch: Channel,
        req: ExecRequest,
        executing: ExecutingGuard,
        limits: ScriptLimits,
    ) {
        // A lane counts its tasks, not itself.
        let executing = match &req {
            ExecRequest::Call { name, .. } if name == remex_core::builtin::LANE => {
                drop(executing);
                None
            }
            _ => Some(executing),
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| match req {
            ExecRequest::Script { source, args } => {
                self.scripts.run(&self.tasks, limits, &source, args, &ch)
            }
            ExecRequest::Call { name, args } => self.call(name, args, &ch),
        }));
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(msg)) => Some(msg),
            Err(p) => Some(format!("panicked: {}", panic_message(&*p))),
        };
        drop(executing);
        if ch.peer_gone() {
            // The controller closed the channel or went away: nobody is
            // left to hear (a clean exit ends many this way).
            return;
        }
        if ch.closed_here() {
            // The script or task closed it itself, then failed: the caller
            // cannot hear of it, so log it.
            if let Some(e) = error {
                say(format!(
                    "channel {} failed after it was closed: {e}",
                    ch.id()
                ));
            }
            return;
        }
        // Also when the controller only closed its writing half: it still
        // hears how the channel ended.
        ch.close(error.as_deref());
    }

    fn call(&self, name: String, args: Value, ch: &Channel) -> Result<(), String> {
        if name == remex_core::builtin::LANE {
            return self.run_lane(args, ch);
        }
        let result = self.run_task(name, args, ch)?;
        if result != Value::Unit {
            ch.send_value_blocking(result).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Runs a registered task and returns its result.
    fn run_task(&self, name: String, args: Value, ch: &Channel) -> Result<Value, String> {
        self.tasks.run(name, args, ch)
    }
}

/// If this process was started as a worker (a gateway with `worker=self`),
/// serves with the worker `make` builds and never returns; otherwise returns
/// at once. Call it first thing in `main`.
///
/// ```no_run
/// // First thing in `main`:
/// remex::serve_if_worker(remex::worker::Worker::new);
/// // ... the program's own work, which may start `popen//worker=self` gateways.
/// ```
pub fn serve_if_worker(make: impl FnOnce() -> Worker) {
    if std::env::var_os(remex_core::transport::popen::WORKER_ENV).is_some_and(|v| v == "1") {
        make().run()
    }
    remex_core::transport::popen::set_self_serving();
}

/// Makes this process non-dumpable (Linux: no core dump, and no ptrace
/// or /proc/PID/mem access by the user's other processes), for workers
/// that hold a secret: listeners and dial-back workers.
pub(crate) fn not_dumpable() {
    #[cfg(target_os = "linux")]
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
}

/// The secret and options of `--listen`; exits with status 2 and a
/// message when the secret cannot be had.
fn listen_args(
    secret_file: Option<String>,
    secret_env: Option<String>,
    exit_with_stdin: bool,
) -> (remex_core::transport::secret::Secret, listen::ListenOptions) {
    use remex_core::transport::secret;
    let secret = match (secret_file, secret_env) {
        (Some(path), _) => secret::from_file(&path, "--secret-file"),
        (None, name) => {
            let name = name.unwrap_or_else(|| "REMEX_SECRET".into());
            let s = secret::from_env(&name, "--secret-env").map_err(|e| {
                if std::env::var_os(&name).is_none() {
                    format!("no secret: set {name}, or give --secret-file PATH")
                } else {
                    e
                }
            });
            // Sessions' tasks and their children must not inherit it.
            place::forget(&name);
            s
        }
    };
    let opts = listen::ListenOptions { exit_with_stdin };
    match secret {
        Ok(s) => (s, opts),
        Err(e) => exit::fail(e),
    }
}

/// Adds `//worker=self` to a `popen`, `ssh=` or `slurm` spec that names no worker,
/// so that a program serving its own tasks (with [`serve_if_worker`]) is
/// the worker; other specs (`cmd=`, `socket=`, ones with `worker=`) come
/// back unchanged. `N*` prefixes are kept.
///
/// ```
/// use remex::worker::with_self_worker;
/// assert_eq!(with_self_worker("2*popen"), "2*popen//worker=self");
/// assert_eq!(with_self_worker("ssh=host//id=a"), "ssh=host//id=a//worker=self");
/// assert_eq!(with_self_worker("popen//worker=/bin/w"), "popen//worker=/bin/w");
/// assert_eq!(with_self_worker("cmd=srun worker"), "cmd=srun worker");
/// assert_eq!(with_self_worker("slurm//ntasks=8"), "slurm//ntasks=8//worker=self");
/// ```
pub fn with_self_worker(spec: &str) -> String {
    let base = spec.rsplit('*').next().unwrap_or(spec);
    let parts = || base.split("//");
    let is_popen_or_ssh = parts().any(|p| p == "popen" || p == "slurm" || p.starts_with("ssh="));
    if is_popen_or_ssh && !parts().any(|p| p.starts_with("worker=")) {
        format!("{spec}//worker=self")
    } else {
        spec.to_string()
    }
}

/// Worker-side logs go to stderr, which the controller forwards. The level
/// comes from `REMEX_LOG` (default: warnings).
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REMEX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Plain `LEVEL target: message` lines, no colour codes: the controller
    // reads the level and target back (transport::forward_stderr). Through
    // `say`: a listener's lines go to its bounded, rate-limited log.
    use tracing_subscriber::filter::{dynamic_filter_fn, filter_fn, FilterExt};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    // While a controller takes records (crate::wirelog), the worker's
    // events go to it and not to stderr as well.
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(|| SayLine(Vec::new()))
        .with_ansi(false)
        .without_time()
        .with_filter(filter.and(filter_fn(|meta| !wirelog::sent(meta))));
    let records =
        wirelog::WireLayer.with_filter(dynamic_filter_fn(|meta, _| wirelog::wanted(meta)));
    let _ = tracing_subscriber::registry()
        .with(lines)
        .with(records)
        .try_init();
}

/// Where the worker's own lines go: stderr (write errors ignored: a
/// closed stderr never panics a worker), or what [`route_lines`] set.
type Sink = Box<dyn Fn(String) + Send + Sync>;
static SAY: std::sync::OnceLock<Sink> = std::sync::OnceLock::new();

/// Writes one line of the worker's own (a log event, a script's
/// `print`), without a panic if stderr is closed.
pub(crate) fn say(line: String) {
    match SAY.get() {
        Some(f) => f(line),
        None => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}

/// Sends every line [`say`] writes to `sink` from now on (a listener's
/// log); the first call wins.
pub(crate) fn route_lines(sink: impl Fn(String) + Send + Sync + 'static) {
    let _ = SAY.set(Box::new(sink));
}

/// One log event's bytes, said as one line when the event is written.
struct SayLine(Vec<u8>);

impl std::io::Write for SayLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SayLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let text = text.trim_end_matches('\n');
        if !text.is_empty() {
            say(text.to_string());
        }
    }
}
