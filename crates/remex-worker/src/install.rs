//! `__listen`, the built-in behind `installvia=`: this worker starts a
//! listening worker (its own binary with `--listen`) for a controller that
//! reaches it, with the secret the controller made.
//!
//! The secret travels inside this worker's own session (ssh, a pipe, or a
//! secure socket) and reaches the listener in its environment
//! (`REMEX_SECRET`, which the listener removes from its environment at
//! once), never on a command line. The listener's stdin is a pipe whose
//! other end this worker holds until it exits, and the listener runs with
//! `--exit-with-stdin`: it lives as long as this worker.

use std::io::{BufRead, BufReader};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;

use crate::task::{Task, TaskError};
use crate::Worker;

/// The listeners' stdin pipes, held open until this process exits.
static HELD: Mutex<Vec<ChildStdin>> = Mutex::new(Vec::new());

/// `__listen([addr, secret])`: starts a listener bound to `addr` and
/// answers its bound address (`host:port`).
fn listen(t: &Task) -> Result<String, TaskError> {
    let (addr, secret): (String, String) = t.args()?;
    let secret = zeroize::Zeroizing::new(secret);
    let exe = std::env::current_exe()
        .map_err(|e| TaskError(format!("installvia: this worker's own binary: {e}")))?;
    let mut cmd = Command::new(&exe);
    crate::place::scrub(&mut cmd);
    let mut child = cmd
        .args([
            "--listen",
            &addr,
            "--secret-env",
            "REMEX_SECRET",
            "--exit-with-stdin",
        ])
        .env("REMEX_SECRET", secret.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| TaskError(format!("installvia: cannot run {}: {e}", exe.display())))?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let mut line = String::new();
    // The listener prints its address once it listens, or exits (EOF)
    // after saying why on stderr: this read ends either way.
    let read = BufReader::new(child.stdout.take().expect("stdout is piped")).read_line(&mut line);
    let bound = line
        .trim()
        .strip_prefix("remex-worker listening on ")
        .map(str::to_string);
    let Some(bound) = bound else {
        drop(stdin);
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        return Err(TaskError(format!(
            "installvia: the listener on {addr} did not start ({status}{}); its stderr went to this worker's",
            read.err().map(|e| format!(", {e}")).unwrap_or_default()
        )));
    };
    HELD.lock().unwrap_or_else(|e| e.into_inner()).push(stdin);
    // Reap it when it ends, so it leaves no zombie behind.
    std::thread::spawn(move || child.wait());
    Ok(bound)
}

/// Adds `__listen` to every worker.
pub(crate) fn register(w: Worker) -> Worker {
    w.task(remex_core::builtin::LISTEN, listen)
}
