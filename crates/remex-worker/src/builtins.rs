//! Tasks every stock worker ships: `echo`, `sleep`, `shell`, `run`, `pid`,
//! and the data store's.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use remex_core::Value;

use crate::task::{Task, TaskError};
use crate::Worker;

/// Adds the data store's tasks (`Group::scatter`'s): `__store([key,
/// value])`, `__fetch(key)`, `__drop(key)`.
pub(crate) fn register_store(w: Worker) -> Worker {
    use crate::store;
    w.task(remex_core::builtin::STORE, |t: &Task| {
        let (key, value): (String, Value) = t.args()?;
        store::put(key, value);
        Ok::<_, TaskError>(())
    })
    .task(remex_core::builtin::FETCH, |t: &Task| {
        let key: String = t.args()?;
        store::get(&key).map_err(TaskError)
    })
    .task(remex_core::builtin::DROP, |t: &Task| {
        let key: String = t.args()?;
        store::remove(&key);
        Ok::<_, TaskError>(())
    })
}

/// Adds the built-in tasks to `w`.
pub(crate) fn register(w: Worker) -> Worker {
    w.task("echo", |t: &Task| {
        Ok::<_, TaskError>(t.args_value().clone())
    })
    .task("sleep", sleep)
    .task("shell", shell)
    .task("run", crate::command::run)
    .task(crate::rsync::RSYNC_TASK, crate::rsync::receive)
    .task("pid", |_t: &Task| Ok::<_, TaskError>(std::process::id()))
}

fn seconds(v: &Value) -> Result<Duration, TaskError> {
    let s = match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        other => {
            return Err(format!(
                "sleep takes seconds (int or float), got {}",
                other.describe()
            )
            .into())
        }
    };
    Duration::try_from_secs_f64(s).map_err(|_| TaskError(format!("cannot sleep {s} seconds")))
}

/// `sleep(seconds)`: ends early, without error, when the caller closes the
/// channel (a cancelled task stops at once).
fn sleep(t: &Task) -> Result<(), TaskError> {
    let d = seconds(t.args_value())?;
    match t.channel().waitclose_blocking(Some(d)) {
        Ok(()) => Ok(()),
        Err(e) if e.is_timeout() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `shell("command")`: runs the command with `sh -c`, sends each line of
/// its stdout as a string, and fails if it exits non-zero. Its stderr goes
/// to the worker's stderr (forwarded to the controller).
fn shell(t: &Task) -> Result<(), TaskError> {
    let cmd: String = t.args()?;
    let mut child = crate::place::program("sh")
        .arg("-c")
        .arg(&cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| TaskError(format!("cannot run sh -c {cmd:?}: {e}")))?;
    let out = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(out).lines() {
        let line = line.map_err(|e| TaskError(format!("reading the output of {cmd:?}: {e}")))?;
        if let Err(e) = t.channel().send_blocking(&line) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.into());
        }
    }
    let status = child.wait().map_err(|e| TaskError(e.to_string()))?;
    if !status.success() {
        return Err(TaskError(format!("command {cmd:?} failed: {status}")));
    }
    Ok(())
}
