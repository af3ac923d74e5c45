//! The script host: runs rhai source with `channel` and the script's
//! arguments in scope, under resource limits, with the standard library
//! (docs/scripts.md), the worker's tasks and the worker's own functions.
//!
//! One engine is built per worker and per set of limits (a spec may set
//! its own), on first use, and shared by every script that runs with them.

mod convert;
mod limits;
mod signatures;
mod stdlib;
mod tasks;

use std::any::TypeId;
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use remex_core::wire::ScriptLimits;
use remex_core::{Channel, Value};
use rhai::{Engine, EvalAltResult, Scope, AST};

pub use limits::DEFAULT_SCRIPT_LIMITS;
pub(crate) use signatures::param_types;
use signatures::{Registrar, Signatures};

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
    /// The worker's own functions, as the first build registered them
    /// (every build registers the same ones).
    signatures: OnceLock<Signatures>,
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
    /// What `Worker::script_fn` added, for close matches.
    added: Signatures,
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

    /// Notes a function added by `setup` for close matches.
    pub(crate) fn add_signature(&mut self, name: &str, params: &[TypeId]) {
        self.added.add(name, params);
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
        let engine = self.register(Engine::new(), tasks, limits);
        self.complete(engine, limits)
    }

    /// Adds the worker's own functions to `engine`, a standard engine,
    /// for scripts under `limits`. Touches neither the process's
    /// environment nor its directory, and starts no thread (the prewarm
    /// runs it while the worker may still take its setup,
    /// `crate::place`).
    fn register(&self, mut engine: Engine, tasks: &Registry, limits: &ScriptLimits) -> Engine {
        // The first build records the worker's functions for close
        // matches; later ones register the same and record nothing.
        let mut own = self
            .engines
            .signatures
            .get()
            .is_none()
            .then(Signatures::default);
        let mut e = Registrar::new(&mut engine, own.as_mut());
        e.on_print(|s| crate::say(s.to_string()));
        e.on_debug(|s, src, pos| crate::say(format!("{} {pos:?}: {s}", src.unwrap_or("script"))));
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
        if let Some(own) = own {
            let _ = self.engines.signatures.set(own);
        }
        engine
    }

    /// Completes `engine` (from [`Scripts::register`]): puts the limits
    /// on it (the memory limit's watcher is a thread) and runs the
    /// worker program's own setups.
    fn complete(&self, mut engine: Engine, limits: &ScriptLimits) -> Engine {
        limits::apply(&mut engine, limits);
        for setup in &self.setups {
            setup(&mut engine);
        }
        engine
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
    /// standard engine and the worker's functions ([`Scripts::register`],
    /// for the limits a session brings unless it sets its own) are built
    /// first, and completed ([`Scripts::complete`]) once the session's
    /// limits come from `limits` (closed: the worker is ending). Scripts
    /// wait for it once [`Scripts::prewarm_announce`] has named its
    /// limits. Until the
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
        // Built for the limits a session most likely brings (none of its
        // own), and built again if it brings others.
        let likely = limits::resolve(ScriptLimits::default(), self.limits);
        let registered = self.register(Engine::new(), tasks, &likely);
        let Ok(spec) = limits.recv() else { return };
        drop(quiet);
        let limits = limits::resolve(spec, self.limits);
        if !self.engines.built.lock().iter().any(|(l, _)| *l == limits) {
            let built = Arc::new(if limits == likely {
                self.complete(registered, &limits)
            } else {
                self.build(tasks, &limits)
            });
            let mut engines = self.engines.built.lock();
            if !engines.iter().any(|(l, _)| *l == limits) {
                engines.push((limits, built));
            }
        }
        *self.engines.prewarming.lock() = None;
        self.engines.prewarmed.notify_all();
    }

    /// The signatures of every function a script running `ast` can call:
    /// rhai's standard library, the worker's own functions and the
    /// script's.
    fn signatures<'a>(&'a self, ast: &'a AST) -> impl Iterator<Item = String> + 'a {
        let std = signatures::RHAI_STD
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string);
        let own = self
            .engines
            .signatures
            .get()
            .into_iter()
            .flat_map(|s| s.list());
        let script = ast
            .iter_functions()
            .map(|f| format!("{}({})", f.name, f.params.join(", ")));
        std.chain(own).chain(self.added.list()).chain(script)
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
            with_close_matches(&e, self.signatures(&ast), limits::describe(&e, &limits))
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
fn with_close_matches(
    e: &EvalAltResult,
    sigs: impl Iterator<Item = String>,
    msg: String,
) -> String {
    let Some(sig) = not_found(e) else {
        return msg;
    };
    let name = sig.split(['(', ' ']).next().unwrap_or("").trim();
    if name.is_empty() {
        return msg;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rhai::Dynamic;

    /// The names `register_fn("NAME"` registers in `source` (rhai's own
    /// functions that remex replaces are registered on the engine
    /// directly, `Engine::register_fn(e, ...)`, and not listed).
    fn registered_in(source: &str) -> Vec<&str> {
        source
            .split("register_fn(")
            .skip(1)
            .filter_map(|rest| rest.trim_start().strip_prefix('"'))
            .filter_map(|rest| rest.split('"').next())
            .collect()
    }

    #[test]
    fn every_function_the_worker_registers_is_listed_for_close_matches() {
        let scripts = Scripts::default();
        let limits = limits::resolve(ScriptLimits::default(), DEFAULT_SCRIPT_LIMITS);
        let _ = scripts.build(&Registry::default(), &limits);
        let ast = Engine::new_raw().compile("fn mine(a, b) { a }").unwrap();
        let listed: Vec<String> = scripts.signatures(&ast).collect();
        let mut names = Vec::new();
        for source in [
            include_str!("convert.rs"),
            include_str!("stdlib.rs"),
            include_str!("tasks.rs"),
        ] {
            names.extend(registered_in(source));
        }
        assert!(names.len() > 40, "{names:?}");
        for name in names {
            assert!(
                listed.iter().any(|s| s.starts_with(&format!("{name}("))),
                "{name} is registered but not listed"
            );
        }
        for sig in [
            "send(_: Channel, _: Dynamic)",
            "call_task(_: string)",
            "mine(a, b)",
            "len(string: string) -> i64",
        ] {
            assert!(listed.iter().any(|s| s == sig), "{sig} is not listed");
        }
    }

    #[test]
    fn rhai_json_functions_work_as_with_its_metadata_feature() {
        let scripts = Scripts::default();
        let limits = limits::resolve(ScriptLimits::default(), DEFAULT_SCRIPT_LIMITS);
        let e = scripts.build(&Registry::default(), &limits);
        // serde_json's escapes, not Rust's (`\u{1b}`).
        let json: String = e.eval(r#"#{a: "\x1b", b: [1, ()]}.to_json()"#).unwrap();
        assert_eq!(json, r#"{"a":"\u001b","b":[1,null]}"#);
        // Any JSON value, not only an object.
        let a: rhai::Array = e.eval("parse_json(`[1, 2]`)").unwrap();
        assert_eq!(a.len(), 2);
        let e = e.eval::<Dynamic>("parse_json(`{`)").unwrap_err();
        assert!(e.to_string().contains("EOF"), "{e}");
    }
}
