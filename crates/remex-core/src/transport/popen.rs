//! `popen`: a worker as a local child process.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::error::{Error, Result};
use crate::spec::Spec;

/// Environment variable that tells a program it was started as a worker
/// (used by self-exec binaries, see `remex_worker::serve_if_worker`).
pub const WORKER_ENV: &str = "REMEX_WORKER";

/// Environment variable naming the default worker binary.
pub const WORKER_PATH_ENV: &str = "REMEX_WORKER_PATH";

/// Finds the worker binary for `spec`: `worker=PATH` (`worker=self` is the
/// running program), then `$REMEX_WORKER_PATH`, then `remex-worker` beside
/// the running program or one directory up (cargo's `deps/` and `examples/`),
/// then `remex-worker` on `PATH`.
pub fn resolve_worker(spec: &Spec) -> Result<PathBuf> {
    let not_found = |detail: String| Error::Start {
        spec: spec.raw.clone(),
        detail,
    };
    if let Some(w) = &spec.worker {
        if w == "self" {
            return std::env::current_exe()
                .map_err(|e| not_found(format!("cannot find the running program: {e}")));
        }
        return Ok(PathBuf::from(w));
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
        "no remex-worker binary found: build it (cargo build -p remex-worker), put it on PATH, \
         set REMEX_WORKER_PATH, or give worker=PATH (worker=self for a self-serving program)"
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
