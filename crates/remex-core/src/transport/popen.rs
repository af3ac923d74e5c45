//! `popen`: a worker as a local child process.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::process::Command;

use crate::error::{Error, Result};
use crate::spec::Spec;

/// Environment variable that tells a program it was started as a worker
/// (used by self-exec binaries, see `remex::serve_if_worker`).
///
/// ```
/// assert_eq!(remex::core::transport::popen::WORKER_ENV, "REMEX_WORKER");
/// ```
pub const WORKER_ENV: &str = "REMEX_WORKER";

/// Environment variable naming the default worker binary.
///
/// ```
/// // `REMEX_WORKER_PATH=/opt/bin/remex-worker` picks the default worker.
/// assert_eq!(remex::core::transport::popen::WORKER_PATH_ENV, "REMEX_WORKER_PATH");
/// ```
pub const WORKER_PATH_ENV: &str = "REMEX_WORKER_PATH";

static SELF_SERVING: AtomicBool = AtomicBool::new(false);

/// Records that this program serves as its own worker (it called the
/// serve hook, `remex::serve_if_worker`, and was not started as a
/// worker): from then on a spec that names no worker starts this program.
///
/// ```
/// use remex::core::transport::popen;
/// // remex::serve_if_worker calls it when the program was not started as a worker.
/// popen::set_self_serving();
/// assert!(popen::is_self_serving());
/// ```
pub fn set_self_serving() {
    SELF_SERVING.store(true, Ordering::Relaxed);
}

/// Whether this program serves as its own worker (see [`set_self_serving`]).
///
/// ```
/// remex::serve_if_worker(remex::worker::Worker::new); // returns: not a worker
/// assert!(remex::core::transport::popen::is_self_serving());
/// ```
pub fn is_self_serving() -> bool {
    SELF_SERVING.load(Ordering::Relaxed)
}

/// Refuses to start a gateway from a process that was started as a worker
/// but did not serve: a program run with `worker=self` (or as the default
/// worker) that never called the serve hook would otherwise start workers
/// of its own in every child, and they theirs.
///
/// ```
/// use remex::core::transport::popen;
/// assert!(popen::check_not_unserved_worker("popen").is_ok()); // not started as a worker
/// ```
pub fn check_not_unserved_worker(spec: &str) -> Result<()> {
    if std::env::var_os(WORKER_ENV).is_some_and(|v| v == "1") {
        return Err(Error::Start {
            spec: spec.to_string(),
            detail: format!(
                "this process was started as a remex worker ({WORKER_ENV}=1) but is starting gateways \
                 instead of serving: call remex::serve_if_worker(...) first thing in main, before any \
                 makegateway or Group::new (no worker was started)"
            ),
        });
    }
    Ok(())
}

/// Finds the worker binary for `spec`: `worker=PATH` (`worker=self` is the
/// running program), then the running program if it serves as its own
/// worker ([`set_self_serving`]), then `$REMEX_WORKER_PATH`, then
/// `remex-worker` beside the running program or one directory up (cargo's
/// `deps/` and `examples/`), then `remex-worker` on `PATH`.
///
/// ```
/// # fn main() -> remex::Result<()> {
/// let spec = remex::Spec::parse("popen//worker=/opt/bin/my-worker")?;
/// let path = remex::core::transport::popen::resolve_worker(&spec)?;
/// assert_eq!(path, std::path::PathBuf::from("/opt/bin/my-worker"));
/// # Ok(()) }
/// ```
pub fn resolve_worker(spec: &Spec) -> Result<PathBuf> {
    let not_found = |detail: String| Error::Start {
        spec: spec.raw.clone(),
        detail,
    };
    let own = || {
        std::env::current_exe()
            .map_err(|e| not_found(format!("cannot find the running program: {e}")))
    };
    if let Some(w) = &spec.worker {
        if w == "self" {
            return own();
        }
        return Ok(PathBuf::from(w));
    }
    if is_self_serving() {
        return own();
    }
    if let Some(p) = std::env::var_os(WORKER_PATH_ENV) {
        return Ok(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            for cand in [dir.join("remex-worker"), dir.join("../remex-worker")] {
                if cand.is_file() {
                    return Ok(cand);
                }
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let cand = dir.join("remex-worker");
            if is_executable(&cand) {
                return Ok(cand);
            }
        }
    }
    Err(not_found(
        "no worker binary found. Make this program its own worker: call \
         remex::serve_if_worker(remex::worker::Worker::new) first thing in main. Or install the \
         stock worker on PATH (cargo install remex-worker, or cargo install --path \
         REMEX_SOURCE/crates/remex-worker), set REMEX_WORKER_PATH, or give worker=PATH"
            .into(),
    ))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The command that starts a local worker for `spec`.
pub(crate) fn command(spec: &Spec) -> Result<Command> {
    let path = resolve_worker(spec)?;
    let mut cmd = Command::new(path);
    cmd.env(WORKER_ENV, "1");
    Ok(cmd)
}
