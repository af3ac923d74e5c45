//! `ssh=[user@]host`: a worker over the system OpenSSH client.
//!
//! The user's `~/.ssh/config`, agent, ProxyJump and known_hosts apply as for
//! any ssh command; remex adds batch mode (no prompt can hang a gateway), a
//! connect timeout and keep-alives. The remote command is `exec WORKER`
//! (`worker=PATH` on the remote host). Without `worker=`, the local worker
//! binary is uploaded if the host lacks it (zero-install); `worker=self`
//! uploads the running program, which serves as its own worker. A failure before
//! the handshake becomes a distinct error carrying ssh's own message:
//! unreachable host, refused authentication, rejected host key, or missing
//! worker.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::error::{Error, Result};
use crate::spec::Spec;

/// Printed by the remote script right before it starts the worker.
pub(crate) const READY: &[u8] = b"\x1bREMEX-READY\n";
/// Printed by the remote script when it needs the worker binary.
pub(crate) const SEND: &[u8] = b"\x1bREMEX-SEND-WORKER\n";

/// A worker binary to upload when the host lacks it.
#[derive(Clone)]
pub(crate) struct Upload {
    pub(crate) bytes: Arc<Vec<u8>>,
    hash: String,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Upload {} ({} bytes)>", self.hash, self.bytes.len())
    }
}

/// The local worker binary and its content hash, read once per path.
fn upload_for(spec: &Spec) -> Result<Upload> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Upload>>> = OnceLock::new();
    // `worker=self` uploads the running program (a self-serving program
    // carries its own tasks); otherwise the local default worker.
    let mut local = spec.clone();
    local.worker = (spec.worker.as_deref() == Some("self")).then(|| "self".to_string());
    let path = super::popen::resolve_worker(&local)?;
    let mut cache = CACHE.get_or_init(Default::default).lock();
    if let Some(u) = cache.get(&path) {
        return Ok(u.clone());
    }
    let bytes = std::fs::read(&path).map_err(|e| Error::Start {
        spec: spec.raw.clone(),
        detail: format!(
            "cannot read the local worker {} to upload it: {e}",
            path.display()
        ),
    })?;
    let digest = Sha256::digest(&bytes);
    let hash: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let u = Upload {
        bytes: Arc::new(bytes),
        hash,
    };
    cache.insert(path, u.clone());
    Ok(u)
}

/// The remote side of the zero-install bootstrap: use the cached worker,
/// or check the platform, ask for the binary, store it atomically under
/// `~/.cache/remex/HASH/`, and start it.
fn bootstrap_script(u: &Upload) -> String {
    let platform = format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    format!(
        r#"d="$HOME/.cache/remex/{hash}"; w="$d/remex-worker"
if [ ! -x "$w" ]; then
  p="$(uname -s | tr A-Z a-z)-$(uname -m)"
  if [ "$p" != "{platform}" ]; then echo "REMEX-PLATFORM host is $p, the local worker is {platform}" >&2; exit 3; fi
  mkdir -p "$d" || exit 4
  t="$(mktemp "$d/.upload.XXXXXX")" || exit 4
  printf '\033REMEX-SEND-WORKER\n'
  head -c {size} > "$t"
  if [ "$(wc -c < "$t")" -ne {size} ]; then rm -f "$t"; echo "REMEX-UPLOAD incomplete" >&2; exit 5; fi
  chmod 755 "$t" && mv -f "$t" "$w" || exit 4
fi
printf '\033REMEX-READY\n'
REMEX_WORKER=1 exec "$w""#,
        hash = u.hash,
        size = u.bytes.len(),
    )
}

/// How long ssh may take to connect.
///
/// ```
/// assert_eq!(remex::core::transport::ssh::CONNECT_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The ssh command for `spec` reaching `target`, and the worker to upload
/// if the host lacks it (none when `worker=` names the remote worker).
pub(crate) fn command(spec: &Spec, target: &str) -> Result<(Command, Option<Upload>)> {
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
    let (remote, upload) = match spec.worker.as_deref().filter(|w| *w != "self") {
        Some(w) => (
            format!(
                "printf '\\033REMEX-READY\\n'; REMEX_WORKER=1 exec {}",
                shell_quote(w)
            ),
            None,
        ),
        None => {
            let u = upload_for(spec)?;
            (bootstrap_script(&u), Some(u))
        }
    };
    cmd.arg(target).arg("--").arg(remote);
    Ok((cmd, upload))
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
    if has(&["REMEX-PLATFORM"]) {
        return Error::WorkerMissing {
            spec,
            host,
            message: format!(
                "{message}; the host needs a worker built for its platform: put one there and give worker=PATH"
            ),
        };
    }
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
