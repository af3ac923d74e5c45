//! A session's place: the environment and working directory its
//! controller's setup asked for (`env:NAME=`, `chdir=`), kept with the
//! session instead of applied to the process.
//!
//! A worker that serves one controller over its stdin (popen, ssh, cmd=)
//! applies the setup to the process when it runs alone ([`alone`]: no
//! other thread, so nothing races the change). A program serving as its
//! own worker from inside its runtime (`serve_if_worker` in a
//! `#[tokio::main]`) has other threads: its session gets a place, as a
//! listener's does, and the variables it must not pass on are kept out
//! of every command it starts ([`forget`]) instead of removed. A listener
//! serves many sessions at once and a dial-back worker has its runtime
//! running before its hellos: changing the process's environment there
//! would change every other session's too, and `setenv` racing `getenv`
//! in another thread is undefined behaviour. Their sessions get a place:
//! whatever the session runs applies it (the commands of `shell`, `run`
//! and scripts' `shell`/`run`, scripts' `env()`, `cwd()` and relative
//! paths), set for the thread that runs each of its calls.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Set when the worker is served from inside a program's runtime: other
/// threads run, whatever the thread count says when it is read.
pub(crate) static SHARED_PROCESS: AtomicBool = AtomicBool::new(false);

/// Variables this process must not pass on, where it could not remove
/// them from its environment ([`forget`]).
static HIDDEN: parking_lot::Mutex<Vec<String>> = parking_lot::Mutex::new(Vec::new());

/// Threads that neither read nor change the environment or the working
/// directory while they are counted, so [`alone`] does not count them:
/// the script engine's prewarm while it builds rhai's standard engine
/// beside the handshake (`Scripts::prewarm`; rhai reads no environment).
static QUIET: AtomicUsize = AtomicUsize::new(0);

/// One quiet thread (see [`QUIET`]) while this lives: made before the
/// thread is spawned (so that the thread, once it exists, is never
/// counted without it), dropped by the thread before it may touch the
/// environment or directory (the prewarm: when the session's limits
/// come, the handshake over), or with the thread's closure when it
/// could not be spawned.
pub(crate) struct Quiet(());

impl Quiet {
    pub(crate) fn new() -> Quiet {
        QUIET.fetch_add(1, Ordering::AcqRel);
        Quiet(())
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        QUIET.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether this process runs the calling thread alone, so that changing
/// its environment or directory races nothing (`setenv` racing `getenv`
/// in another thread is undefined behaviour); quiet threads ([`Quiet`])
/// do not count. Never inside a runtime.
pub(crate) fn alone() -> bool {
    if SHARED_PROCESS.load(Ordering::Acquire) || tokio::runtime::Handle::try_current().is_ok() {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        // A quiet thread ends its quiet before it exits: a thread count
        // above 1 + QUIET always means another thread.
        let quiet = QUIET.load(Ordering::Acquire);
        std::fs::read_dir("/proc/self/task").is_ok_and(|d| d.count() == 1 + quiet)
    }
    // Elsewhere the count is not at hand: a worker's own `main` and
    // `serve_if_worker` outside a runtime run before any thread.
    #[cfg(not(target_os = "linux"))]
    {
        true
    }
}

/// Takes the variable `name` out of what this process passes on: out of
/// its environment while it runs alone, else out of every command it
/// starts and every lookup of its sessions (the environment itself is
/// not touched once other threads run).
pub(crate) fn forget(name: &str) {
    if alone() {
        std::env::remove_var(name);
    } else {
        let mut hidden = HIDDEN.lock();
        if !hidden.iter().any(|n| n == name) {
            hidden.push(name.to_string());
        }
    }
}

/// Keeps the variables [`forget`] could not remove out of `cmd`, but
/// for those `cmd` sets itself (a relay marks the worker it starts with
/// `REMEX_WORKER`).
pub(crate) fn scrub(cmd: &mut Command) {
    let set: Vec<std::ffi::OsString> = cmd.get_envs().map(|(k, _)| k.to_os_string()).collect();
    for name in HIDDEN.lock().iter() {
        if !set.iter().any(|k| k == name.as_str()) {
            cmd.env_remove(name);
        }
    }
}

fn hidden(name: &str) -> bool {
    HIDDEN.lock().iter().any(|n| n == name)
}

/// The environment and directory of one session.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Place {
    /// Variables set for this session, in order (later ones win).
    pub(crate) env: Vec<(String, String)>,
    /// Its working directory (absolute), if its setup named one.
    pub(crate) dir: Option<PathBuf>,
    /// Niceness added to the commands it runs (`nice=`).
    pub(crate) nice: Option<i32>,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Place>>> = const { RefCell::new(None) };
}

/// Restores the thread's previous place when dropped.
pub(crate) struct Entered(Option<Arc<Place>>);

impl Drop for Entered {
    fn drop(&mut self) {
        let prev = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

/// Makes `place` this thread's place until the guard is dropped.
pub(crate) fn enter(place: Option<Arc<Place>>) -> Entered {
    Entered(CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), place)))
}

/// This thread's place, to carry to threads a call starts.
pub(crate) fn current() -> Option<Arc<Place>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// A command running `program` as this thread's session runs commands:
/// under `nice -n N` when its setup asked for a niceness (its scripts and
/// tasks run in the listener's process, at the listener's), with its
/// variables and directory ([`command`]).
pub(crate) fn program(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = match current().and_then(|p| p.nice) {
        Some(n) => {
            let mut c = Command::new("nice");
            c.arg("-n").arg(n.to_string()).arg(program);
            c
        }
        None => Command::new(program),
    };
    command(&mut cmd);
    cmd
}

/// Applies this thread's place to `cmd`: its variables, and its directory
/// unless the command names one.
pub(crate) fn command(cmd: &mut Command) {
    scrub(cmd);
    if let Some(p) = current() {
        cmd.envs(p.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &p.dir {
            if cmd.get_current_dir().is_none() {
                cmd.current_dir(dir);
            } else if let Some(rel) = cmd.get_current_dir().filter(|d| d.is_relative()) {
                let joined = dir.join(rel);
                cmd.current_dir(joined);
            }
        }
    }
}

/// The variable `name` as this thread's session sees it.
pub(crate) fn var(name: &str) -> Option<String> {
    if let Some(p) = current() {
        if let Some((_, v)) = p.env.iter().rev().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
    }
    if hidden(name) {
        return None;
    }
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// Every variable as this thread's session sees it.
pub(crate) fn vars() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .filter(|(k, _)| !hidden(k))
        .collect();
    if let Some(p) = current() {
        for (k, v) in &p.env {
            match all.iter_mut().find(|(n, _)| n == k) {
                Some(slot) => slot.1 = v.clone(),
                None => all.push((k.clone(), v.clone())),
            }
        }
    }
    all
}

/// The working directory as this thread's session sees it.
pub(crate) fn cwd() -> std::io::Result<PathBuf> {
    match current().and_then(|p| p.dir.clone()) {
        Some(d) => Ok(d),
        None => std::env::current_dir(),
    }
}

/// `path` as this thread's session means it: relative to its directory.
pub(crate) fn path(path: &str) -> PathBuf {
    let p = Path::new(path);
    match current().and_then(|pl| pl.dir.clone()) {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    }
}

/// The place a session's setup asks for, made real: its directory
/// created (relative to the process's) and made absolute.
pub(crate) fn of(setup: &remex_core::wire::WorkerSetup) -> Result<Place, String> {
    let dir = match &setup.chdir {
        None => None,
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| format!("cannot create chdir={d}: {e}"))?;
            Some(std::fs::canonicalize(d).map_err(|e| format!("cannot use chdir={d}: {e}"))?)
        }
    };
    Ok(Place {
        env: setup.env.clone(),
        dir,
        nice: setup.nice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_applies_to_its_thread_only_and_ends_with_its_guard() {
        let place = Arc::new(Place {
            env: vec![("REMEX_PLACE_TEST".into(), "here".into())],
            dir: Some(PathBuf::from("/tmp")),
            nice: Some(3),
        });
        assert_eq!(var("REMEX_PLACE_TEST"), None);
        {
            let _g = enter(Some(place.clone()));
            assert_eq!(var("REMEX_PLACE_TEST").as_deref(), Some("here"));
            assert_eq!(cwd().unwrap(), PathBuf::from("/tmp"));
            assert_eq!(path("a/b"), PathBuf::from("/tmp/a/b"));
            assert_eq!(path("/etc/x"), PathBuf::from("/etc/x"));
            let other = std::thread::spawn(|| var("REMEX_PLACE_TEST"))
                .join()
                .unwrap();
            assert_eq!(other, None, "another thread keeps its own");
            let c = program("true");
            assert_eq!(c.get_program(), "nice");
            assert_eq!(c.get_args().collect::<Vec<_>>(), ["-n", "3", "true"]);
            assert_eq!(c.get_current_dir(), Some(Path::new("/tmp")));
            assert!(c
                .get_envs()
                .any(|(k, v)| k == "REMEX_PLACE_TEST" && v == Some("here".as_ref())));
        }
        assert_eq!(var("REMEX_PLACE_TEST"), None);
    }
}
