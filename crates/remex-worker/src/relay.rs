//! `__relay(spec)`: this worker starts another worker and carries its byte
//! stream on the call's channel, so that a controller reaches hosts only
//! this worker can see (`via=` on the controller).
//!
//! The target is started as this worker's child: `popen` runs this
//! worker's own program (or `worker=PATH`) in a process group of its own,
//! as a popen worker is; `cmd=` runs the command in this worker's group.
//! Bytes from the child's stdout go out as byte items; byte items
//! received go to its stdin. When the channel ends, the child's input is
//! closed (it exits, or is killed a minute later); when the child's output
//! ends, the channel closes.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use remex_core::{Channel, Spec, Transport, Value};

use crate::task::{Task, TaskError};
use crate::Worker;

fn command(spec: &Spec) -> Result<Command, TaskError> {
    let mut cmd = match &spec.transport {
        Transport::Popen => {
            let path = match spec.worker.as_deref() {
                None | Some("self") => std::env::current_exe()
                    .map_err(|e| TaskError(format!("cannot find this worker's program: {e}")))?,
                Some(p) => p.into(),
            };
            let mut c = Command::new(path);
            // A worker leads a process group of its own, as a popen
            // worker does: its end (a kill sequence for its commands, or
            // SIGKILL to its group when its input is cut) reaches its
            // commands, which would otherwise be left in this relay's
            // group when the relay is killed.
            std::os::unix::process::CommandExt::process_group(&mut c, 0);
            c
        }
        Transport::Cmd { command } => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(command);
            c
        }
        other => {
            return Err(TaskError(format!(
                "a relay starts popen and cmd= workers, not {other:?}"
            )))
        }
    };
    cmd.env(remex_core::transport::popen::WORKER_ENV, "1");
    Ok(cmd)
}

/// What the controller asks the relay to start: a spec (`popen`, `cmd=`),
/// or a command's argv (an ssh client towards a host behind this one, its
/// bootstrap run by the controller through the relayed stream).
fn target(t: &Task) -> Result<(Command, String), TaskError> {
    match t.args::<Value>()? {
        Value::Str(spec) => {
            let spec = Spec::parse(&spec).map_err(|e| TaskError(e.to_string()))?;
            Ok((command(&spec)?, spec.raw))
        }
        Value::List(argv) => {
            let argv: Vec<String> = argv
                .into_iter()
                .map(|a| match a {
                    Value::Str(s) => Ok(s),
                    other => Err(TaskError(format!(
                        "a relay's command is a list of strings, not {other:?}"
                    ))),
                })
                .collect::<Result<_, _>>()?;
            let (program, args) = argv
                .split_first()
                .ok_or_else(|| TaskError("a relay's command is empty".into()))?;
            let mut cmd = Command::new(program);
            cmd.args(args);
            Ok((cmd, argv.join(" ")))
        }
        other => Err(TaskError(format!(
            "a relay starts a spec or a command, not {other:?}"
        ))),
    }
}

fn relay(t: &Task) -> Result<(), TaskError> {
    let (mut cmd, what) = target(t)?;
    crate::place::scrub(&mut cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| TaskError(format!("the relay cannot start {what:?}: {e}")))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let ch: Channel = t.channel().clone();
    let out = ch.clone();
    let pump = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0
                || out
                    .send_value_blocking(Value::Bytes(buf[..n].to_vec().into()))
                    .is_err()
            {
                break;
            }
        }
        // The target's output ended (it exited, or failed to start as a
        // worker): the controller hears the end of its stream at once.
        out.close_write();
    });
    while let Ok(v) = ch.receive_blocking::<remex_core::Value>(None) {
        if let Value::Bytes(b) = v {
            if stdin.write_all(&b).is_err() {
                break;
            }
        }
    }
    drop(stdin);
    // The target sees its input end and exits: a worker once its commands
    // went through their kill sequences (`--termseq`), which it was told
    // to end just before. It gets [`TARGET_GRACE`] for that (no event
    // tells that a child ended: looked at every 10 ms), then is killed.
    // (It was killed at once: a worker told to end lost its commands'
    // cleanup.)
    let until = std::time::Instant::now() + TARGET_GRACE;
    while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = pump.join();
    Ok(())
}

/// How long a relayed target has to exit once its input ended.
const TARGET_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Adds `__relay` to every worker.
pub(crate) fn register(w: Worker) -> Worker {
    w.task(remex_core::builtin::RELAY, relay)
}
