//! The script host: runs rhai source with `channel` and the script's
//! arguments in scope, under resource limits, with the standard library
//! (docs/scripts.md), the worker's tasks and the worker's own functions.
//!
//! One engine is built per worker and per set of limits (a spec may set
//! its own), on first use, and shared by every script that runs with them.

mod convert;
mod limits;
mod stdlib;
mod tasks;

use std::cell::RefCell;
use std::sync::Arc;

use parking_lot::Mutex;
use remex_core::wire::ScriptLimits;
use remex_core::{Channel, Value};
use rhai::{Engine, EvalAltResult, Scope, AST};

pub use limits::DEFAULT_SCRIPT_LIMITS;

use crate::task::Registry;

/// A step of building a worker's script engine (its own functions, types
/// and modules).
pub(crate) type Setup = Arc<dyn Fn(&mut Engine) + Send + Sync>;

/// The engines built so far, by the limits they enforce, and the limits
/// the prewarm is building an engine for (scripts wait for it, bounded).
#[derive(Default)]
struct EngineCache {
    built: Mutex<Vec<(ScriptLimits, Arc<Engine>)>>,
    prewarming: Mutex<Option<ScriptLimits>>,
    prewarmed: parking_lot::Condvar,
}

type Engines = Arc<EngineCache>;

/// How long a script waits for the prewarm's engine before it builds its
/// own: long enough for the prewarm to finish on a machine with a core to
/// spare (a build takes one to two milliseconds), short enough that a
/// prewarm starved at nice 19 delays nobody for long.
const PREWARM_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// How a worker runs scripts.
#[derive(Clone, Default)]
pub(crate) struct Scripts {
    setups: Vec<Setup>,
    limits: ScriptLimits,
    restricted: bool,
    engines: Engines,
}

impl Scripts {
    /// A changed configuration (or task list) builds its engines anew.
    pub(crate) fn changed(&mut self) -> &mut Self {
        self.engines = Arc::default();
        self
    }

    pub(crate) fn add(&mut self, setup: Setup) {
        self.changed().setups.push(setup);
    }

    pub(crate) fn set_limits(&mut self, limits: ScriptLimits) {
        self.changed().limits = limits;
    }

    pub(crate) fn restrict(&mut self, restricted: bool) {
        self.changed().restricted = restricted;
    }

    /// The script engines built here, held by the caller until the
    /// process exits: freeing an engine (thousands of allocations) would
    /// only delay the exit of a process that ends anyway.
    pub(crate) fn engines_until_exit(&self) -> impl Sized {
        self.engines.clone()
    }

    /// The engine for scripts under `spec` limits (the worker's and the
    /// defaults fill what the spec leaves unset).
    fn engine(&self, tasks: &Registry, spec: ScriptLimits) -> (Arc<Engine>, ScriptLimits) {
        let limits = limits::resolve(spec, self.limits);
        let cached = || {
            self.engines
                .built
                .lock()
                .iter()
                .find(|(l, _)| *l == limits)
                .map(|(_, e)| e.clone())
        };
        if let Some(e) = cached() {
            return (e, limits);
        }
        // The prewarm is building this very engine: wait for it, bounded
        // (it runs at the lowest priority, and may be starved).
        {
            let mut building = self.engines.prewarming.lock();
            if *building == Some(limits) {
                let _ = self.engines.prewarmed.wait_while_for(
                    &mut building,
                    |b| *b == Some(limits),
                    PREWARM_WAIT,
                );
            }
        }
        if let Some(e) = cached() {
            return (e, limits);
        }
        // Built without a lock held: two may build at once; the first one
        // stored is kept.
        let built = Arc::new(self.build(tasks, &limits));
        let mut engines = self.engines.built.lock();
        if let Some((_, e)) = engines.iter().find(|(l, _)| *l == limits) {
            return (e.clone(), limits);
        }
        engines.push((limits, built.clone()));
        (built, limits)
    }

    fn build(&self, tasks: &Registry, limits: &ScriptLimits) -> Engine {
        self.build_on(Engine::new(), tasks, limits)
    }

    /// Completes `e`, a standard engine, for scripts under `limits`.
    fn build_on(&self, mut e: Engine, tasks: &Registry, limits: &ScriptLimits) -> Engine {
        e.on_print(|s| crate::say(s.to_string()));
        e.on_debug(|s, src, pos| crate::say(format!("{} {pos:?}: {s}", src.unwrap_or("script"))));
        limits::apply(&mut e, limits);
        convert::register_channel(&mut e, limits::value_cap(limits));
        stdlib::register_pure(&mut e);
        if !self.restricted {
            stdlib::register_system(&mut e, limits);
        }
        let max_items = limits
            .max_array_size
            .filter(|m| *m > 0)
            .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
        tasks::register(&mut e, tasks, max_items);
        for setup in &self.setups {
            setup(&mut e);
        }
        e
    }

    /// Builds the default engine ahead of the first script (off the
    /// request path), at the lowest priority (nice 19 for this thread):
    /// when hundreds of workers start at once on a few cores, their starts
    /// and handshakes go first (the engine builds took a third of the CPU
    /// of 512 gateways starting; row (g') of the benchmark). A script that
    /// needs this engine meanwhile waits for it up to [`PREWARM_WAIT`], then
    /// builds its own.
    ///
    /// It runs from the worker's start, beside the handshake: rhai's
    /// standard engine (0.6 ms of a build's 0.85 ms) is built first, and
    /// completed once the session's limits come from `limits` (closed:
    /// the worker is ending). Scripts wait for it once
    /// [`Scripts::prewarm_announce`] has named its limits. Until the
    /// limits come (the handshake is over), this thread touches neither
    /// the environment nor the directory (`quiet`: the worker is still
    /// alone, and takes its setup, `crate::place`).
    pub(crate) fn prewarm(
        &self,
        tasks: &Registry,
        limits: std::sync::mpsc::Receiver<ScriptLimits>,
        quiet: crate::place::Quiet,
    ) {
        // On Linux a thread id given to setpriority names that thread
        // alone; elsewhere the thread keeps its priority.
        #[cfg(target_os = "linux")]
        let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
        let base = Engine::new();
        let Ok(spec) = limits.recv() else { return };
        drop(quiet);
        let limits = limits::resolve(spec, self.limits);
        if !self.engines.built.lock().iter().any(|(l, _)| *l == limits) {
            let built = Arc::new(self.build_on(base, tasks, &limits));
            let mut engines = self.engines.built.lock();
            if !engines.iter().any(|(l, _)| *l == limits) {
                engines.push((limits, built));
            }
        }
        *self.engines.prewarming.lock() = None;
        self.engines.prewarmed.notify_all();
    }

    /// Tells scripts that the prewarm builds the engine for `spec`: one
    /// that needs that engine waits for it (bounded by [`PREWARM_WAIT`])
    /// rather than building its own.
    pub(crate) fn prewarm_announce(&self, spec: ScriptLimits) {
        *self.engines.prewarming.lock() = Some(limits::resolve(spec, self.limits));
    }

    /// Runs `source` with `channel` bound to `ch` and `args` (a map, or
    /// `Unit`) as variables. The error text carries the line and position,
    /// and names the limit a script went over.
    pub(crate) fn run(
        &self,
        tasks: &Registry,
        spec: ScriptLimits,
        source: &str,
        args: Value,
        ch: &Channel,
    ) -> Result<(), String> {
        let (engine, limits) = self.engine(tasks, spec);
        let ast = engine
            .compile(source)
            .map_err(|e| format!("syntax error: {e}"))?;
        let mut scope = Scope::new();
        match args {
            Value::Unit => {}
            Value::Map(entries) => {
                for (k, v) in entries {
                    let Value::Str(name) = k else {
                        return Err(format!(
                            "script argument names must be strings, got {}",
                            k.describe()
                        ));
                    };
                    scope.push_dynamic(name, convert::to_dynamic(v, ch));
                }
            }
            other => {
                return Err(format!(
                    "script arguments must be a map of names to values, got {}",
                    other.describe()
                ))
            }
        }
        scope.push("channel", convert::ScriptChannel(ch.clone()));
        let _current = enter(ch);
        let _running = limits::Running::start();
        let result = engine.run_ast_with_scope(&mut scope, &ast);
        drop(scope);
        result.map_err(|e| {
            if limits::for_memory(&e, &limits) {
                limits::release_memory();
            }
            with_close_matches(&e, &engine, &ast, limits::describe(&e, &limits))
        })
    }
}

/// A signature as a script writer reads it: no return type, and Rust
/// paths (`types::dynamic::Dynamic`) cut to their last part.
fn readable(sig: &str) -> String {
    let sig = sig.split(" -> ").next().unwrap_or(sig);
    let mut out = String::new();
    let mut word = String::new();
    for c in sig.chars().chain(std::iter::once('\0')) {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        out.push_str(word.rsplit("::").next().unwrap_or(&word));
        word.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

/// The signature rhai names in a "function not found" error, if `e` is one.
fn not_found(e: &EvalAltResult) -> Option<&str> {
    match e {
        EvalAltResult::ErrorFunctionNotFound(sig, _) => Some(sig),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => not_found(inner),
        _ => None,
    }
}

/// `msg`, plus the functions whose names are close to a missing one's
/// (the same name with other argument types first), with their
/// signatures.
fn with_close_matches(e: &EvalAltResult, engine: &Engine, ast: &AST, msg: String) -> String {
    let Some(sig) = not_found(e) else {
        return msg;
    };
    let name = sig.split(['(', ' ']).next().unwrap_or("").trim();
    if name.is_empty() {
        return msg;
    }
    let mut sigs = engine.gen_fn_signatures(true);
    sigs.extend(
        ast.iter_functions()
            .map(|f| format!("{}({})", f.name, f.params.join(", "))),
    );
    let close = (name.chars().count() / 3).max(1);
    let mut found: Vec<(usize, String)> = sigs
        .into_iter()
        .filter_map(|s| {
            let cand = s.split('(').next().unwrap_or("").trim().to_string();
            let word = !cand.is_empty()
                && !remex_core::builtin::is_reserved(&cand)
                && cand.chars().all(|c| c.is_alphanumeric() || c == '_');
            let d = strsim::damerau_levenshtein(name, &cand);
            (word && d <= close).then_some((d, s))
        })
        .collect();
    found.sort();
    found.dedup();
    if found.is_empty() {
        return msg;
    }
    let list: Vec<String> = found
        .into_iter()
        .take(6)
        .map(|(_, s)| readable(&s))
        .collect();
    format!("{msg}; close matches: {}", list.join(", "))
}

thread_local! {
    /// The channel of the script running on this thread (scripts run on a
    /// thread each, from start to end).
    static CURRENT: RefCell<Option<Channel>> = const { RefCell::new(None) };
}

/// Makes `ch` the running script's channel on this thread until the
/// guard is dropped.
fn enter(ch: &Channel) -> impl Drop {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            CURRENT.with(|c| c.borrow_mut().take());
        }
    }
    CURRENT.with(|c| *c.borrow_mut() = Some(ch.clone()));
    Leave
}

/// The channel of the script running on this thread.
fn current() -> Option<Channel> {
    CURRENT.with(|c| c.borrow().clone())
}
