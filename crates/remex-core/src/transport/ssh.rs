//! `ssh=[user@]host`: a worker over the system OpenSSH client.
//!
//! The user's `~/.ssh/config`, agent, ProxyJump and known_hosts apply as for
//! any ssh command; remex adds batch mode (no prompt can hang a gateway), a
//! connect timeout and keep-alives. The remote command is `exec WORKER`
//! (`worker=PATH`, or `remex-worker` on the remote `PATH`). A failure before
//! the handshake becomes a distinct error carrying ssh's own message:
//! unreachable host, refused authentication, rejected host key, or missing
//! worker.

use std::time::Duration;

use tokio::process::Command;

use crate::error::{Error, Result};
use crate::spec::Spec;

/// How long ssh may take to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The ssh command for `spec` reaching `target`.
pub(crate) fn command(spec: &Spec, target: &str) -> Result<Command> {
    let worker = spec.worker.as_deref().unwrap_or("remex-worker");
    if worker == "self" {
        return Err(Error::Start {
            spec: spec.raw.clone(),
            detail: "worker=self does not apply to ssh=: give the worker's path on the remote host"
                .into(),
        });
    }
    let mut cmd = Command::new("ssh");
    cmd.args(["-T", "-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!("ConnectTimeout={}", CONNECT_TIMEOUT.as_secs()))
        .args([
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=3",
        ]);
    if let Some(port) = spec.port {
        cmd.arg("-p").arg(port.to_string());
    }
    if let Some(cfg) = &spec.ssh_config {
        cmd.arg("-F").arg(cfg);
    }
    cmd.arg(target)
        .arg("--")
        .arg(format!("REMEX_WORKER=1 exec {}", shell_quote(worker)));
    Ok(cmd)
}

/// Turns a failed handshake into the ssh error it stands for.
pub(crate) fn classify(spec: &Spec, target: &str, err: Error) -> Error {
    let Error::Handshake { detail, .. } = &err else {
        return err;
    };
    let has = |needles: &[&str]| needles.iter().any(|n| detail.contains(n));
    let message = detail.trim_start_matches("; ").to_string();
    let host = target.to_string();
    let spec = spec.raw.clone();
    if has(&[
        "Host key verification failed",
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
        "No ED25519 host key is known",
        "host key is known",
    ]) {
        Error::HostKeyRejected {
            spec,
            host,
            message,
        }
    } else if has(&["Permission denied", "Too many authentication failures"]) {
        Error::AuthRefused {
            spec,
            host,
            message,
        }
    } else if has(&[
        "Connection refused",
        "Connection timed out",
        "No route to host",
        "Could not resolve hostname",
        "Network is unreachable",
        "Connection closed by",
        "Connection reset",
    ]) {
        Error::HostUnreachable {
            spec,
            host,
            message,
        }
    } else if has(&[
        "exit status: 127",
        "exit status: 126",
        "not found",
        "No such file",
    ]) {
        Error::WorkerMissing {
            spec,
            host,
            message: format!(
                "{message}; install remex-worker on the host's PATH or give worker=PATH (the path on the remote host)"
            ),
        }
    } else {
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(shell_quote("/a b/it's"), "'/a b/it'\\''s'");
    }
}
