//! `cmd=COMMAND`: any command whose stdin and stdout reach a worker.
//!
//! The command runs locally under `sh -c`, in its own process group, and
//! the protocol travels over its stdio: `cmd=kubectl exec -i pod --
//! remex-worker`, `cmd=srun -N1 remex-worker`, `cmd=docker exec -i box
//! remex-worker`. `kill()` kills the command's process group; a worker on
//! the far side sees its input end and exits.

use tokio::process::Command;

use crate::error::{Error, Result};
use crate::spec::Spec;

/// The command that starts `command` for `spec`.
pub(crate) fn command(spec: &Spec, command: &str) -> Result<Command> {
    if spec.worker.is_some() {
        return Err(Error::Start {
            spec: spec.raw.clone(),
            detail: "worker= does not apply to cmd=: name the worker in the command".into(),
        });
    }
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command);
    // A command that starts this very program as its worker (self-exec
    // through a wrapper) needs to know.
    cmd.env(super::popen::WORKER_ENV, "1");
    Ok(cmd)
}
