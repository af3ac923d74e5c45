//! Resource limits for scripts: the defaults, how a spec's and a worker's
//! settings combine, and errors that name the limit a script went over.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use remex_core::wire::ScriptLimits;
use rhai::{Dynamic, Engine, EvalAltResult};

/// The defaults, for fields neither the spec nor the worker sets
/// (docs/scripts.md explains each). Only memory is limited by default:
/// rhai's size limits (string, array, map) re-measure a whole array or
/// map after each change to it, which makes a loop that grows one
/// quadratic (80,000 pushes: 28 s with a limit, 0.9 s without), so they
/// are off unless a spec or worker sets them.
///
/// ```
/// let d = remex::worker::DEFAULT_SCRIPT_LIMITS;
/// assert_eq!(d.max_operations, Some(0), "no limit: a script may serve a channel for ever");
/// assert_eq!(d.max_string_size, Some(0));
/// assert_eq!(d.max_memory, Some(64 << 20));
/// ```
pub const DEFAULT_SCRIPT_LIMITS: ScriptLimits = ScriptLimits {
    max_operations: Some(0),
    max_string_size: Some(0),
    max_array_size: Some(0),
    max_map_size: Some(0),
    max_call_levels: None,
    max_memory: Some(64 << 20),
};

/// How often the worker's memory is measured while scripts run.
const WATCH_EVERY: Duration = Duration::from_millis(10);

/// The token a script stopped for memory carries.
const MEMORY_TOKEN: &str = "remex: script_max_memory";

/// Every limit with a value (`max_call_levels` falls back to rhai's own
/// default: 64, or 8 in a debug build).
pub(crate) fn resolve(spec: ScriptLimits, worker: ScriptLimits) -> ScriptLimits {
    // rhai's own default, read once (resolving runs for every script).
    static RHAI_CALL_LEVELS: OnceLock<u64> = OnceLock::new();
    let mut l = spec.or(worker).or(DEFAULT_SCRIPT_LIMITS);
    l.max_call_levels = l.max_call_levels.or_else(|| {
        Some(*RHAI_CALL_LEVELS.get_or_init(|| Engine::new_raw().max_call_levels() as u64))
    });
    l
}

fn size(v: Option<u64>) -> usize {
    v.map_or(0, |v| usize::try_from(v).unwrap_or(usize::MAX))
}

/// The most bytes one value the library makes (a file read, a process's
/// output) may have: the string limit, else the memory limit.
pub(crate) fn value_cap(l: &ScriptLimits) -> (u64, &'static str) {
    match (l.max_string_size, l.max_memory) {
        (Some(s), _) if s > 0 => (s, "script_max_string"),
        (_, Some(m)) if m > 0 => (m, "script_max_memory"),
        _ => (u64::MAX, "script_max_memory"),
    }
}

/// Puts the limits `l` (resolved) on `e`. The memory limit costs one
/// atomic load per operation: a watcher thread measures the worker's
/// resident memory every [`WATCH_EVERY`] while scripts run.
pub(crate) fn apply(e: &mut Engine, l: &ScriptLimits) {
    e.set_max_operations(l.max_operations.unwrap_or(0))
        .set_max_string_size(size(l.max_string_size))
        .set_max_array_size(size(l.max_array_size))
        .set_max_map_size(size(l.max_map_size))
        .set_max_call_levels(size(l.max_call_levels));
    if let Some(max) = l.max_memory.filter(|m| *m > 0) {
        let grown = &watch().grown;
        e.on_progress(move |_| {
            (grown.load(Ordering::Relaxed) > max).then(|| Dynamic::from(MEMORY_TOKEN))
        });
    }
}

/// The worker's memory growth since its first script, measured while any
/// script runs.
struct Watch {
    running: Mutex<usize>,
    wake: Condvar,
    /// Resident bytes above the baseline, at the last measurement.
    grown: AtomicU64,
    /// Resident bytes when the first script started.
    base: u64,
}

fn watch() -> &'static Watch {
    static WATCH: OnceLock<&'static Watch> = OnceLock::new();
    WATCH.get_or_init(|| {
        let base = resident_bytes().unwrap_or(0);
        // One per process, for its whole life.
        let w: &'static Watch = Box::leak(Box::new(Watch {
            running: Mutex::new(0),
            wake: Condvar::new(),
            grown: AtomicU64::new(0),
            base,
        }));
        let spawned = std::thread::Builder::new()
            .name("remex-memwatch".into())
            .spawn(move || loop {
                {
                    let mut running = w.running.lock();
                    // Idle while no script runs (no wake-ups at all).
                    while *running == 0 {
                        w.wake.wait(&mut running);
                    }
                }
                let now = resident_bytes().unwrap_or(base);
                w.grown.store(now.saturating_sub(base), Ordering::Relaxed);
                std::thread::sleep(WATCH_EVERY);
            });
        if spawned.is_err() {
            tracing::warn!("cannot start the memory watcher: script_max_memory is not enforced");
        }
        w
    })
}

/// Counts a running script for the memory watcher.
pub(crate) struct Running(());

impl Running {
    pub(crate) fn start() -> Running {
        let w = watch();
        *w.running.lock() += 1;
        w.wake.notify_one();
        Running(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        *watch().running.lock() -= 1;
    }
}

/// Gives freed memory back to the system after a script was stopped for
/// memory, so that the next measurement sees it gone.
pub(crate) fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
    let w = watch();
    if let Some(now) = resident_bytes() {
        w.grown.store(now.saturating_sub(w.base), Ordering::Relaxed);
    }
}

/// The process's resident set, from /proc (Linux); `None` elsewhere, where
/// `script_max_memory` is not enforced.
fn resident_bytes() -> Option<u64> {
    static PAGE: AtomicU64 = AtomicU64::new(0);
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let mut page = PAGE.load(Ordering::Relaxed);
    if page == 0 {
        page = rustix::param::page_size() as u64;
        PAGE.store(page, Ordering::Relaxed);
    }
    Some(pages * page)
}

/// The spec key and value of the limit `e` went over, if it is a limit.
fn over(e: &EvalAltResult, l: &ScriptLimits) -> Option<(&'static str, u64)> {
    let v = |x: Option<u64>| x.unwrap_or(0);
    match e {
        EvalAltResult::ErrorDataTooLarge(what, _) => Some(if what.contains("string") {
            ("script_max_string", v(l.max_string_size))
        } else if what.contains("array") {
            ("script_max_array", v(l.max_array_size))
        } else {
            ("script_max_map", v(l.max_map_size))
        }),
        EvalAltResult::ErrorTooManyOperations(_) => {
            Some(("script_max_operations", v(l.max_operations)))
        }
        EvalAltResult::ErrorStackOverflow(_) => {
            Some(("script_max_call_levels", v(l.max_call_levels)))
        }
        EvalAltResult::ErrorTerminated(token, _)
            if token.clone().into_immutable_string().ok().as_deref() == Some(MEMORY_TOKEN) =>
        {
            Some(("script_max_memory", v(l.max_memory)))
        }
        // A limit met inside a function call is wrapped in the call's error.
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => over(inner, l),
        _ => None,
    }
}

/// Whether `e` stopped a script for memory.
pub(crate) fn for_memory(e: &EvalAltResult, l: &ScriptLimits) -> bool {
    matches!(over(e, l), Some(("script_max_memory", _)))
}

/// The script's error text; a limit's names the spec key and its value.
pub(crate) fn describe(e: &EvalAltResult, l: &ScriptLimits) -> String {
    match over(e, l) {
        Some(("script_max_memory", max)) => format!(
            "script error: the worker's memory grew by more than script_max_memory={max} bytes \
             while this script ran ({}); raise it with the spec key script_max_memory= \
             or Worker::script_limits",
            e.position()
        ),
        Some((key, max)) => format!(
            "script error: {e} (over the limit {key}={max}; raise it with the spec key \
             {key}= or Worker::script_limits)"
        ),
        None => format!("script error: {e}"),
    }
}
