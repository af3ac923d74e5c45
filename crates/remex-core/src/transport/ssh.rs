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
//!
//! Several gateways to one host started together (`16*ssh=host`, or
//! several specs for one destination in one `Group::new`) go over one ssh
//! session: its worker is a relay that starts the others on the host and
//! carries their streams (`Gateway::start_ssh_fanout`), so that 16 are
//! ready in about the time of one. Gateways to one host also share one ssh
//! connection (OpenSSH's connection sharing): the first starts a master
//! (`ssh -M -N -f`, kept 10 s after its last session), the others are
//! sessions over it, ready in the time of a session rather than of a
//! connection. A gateway's own ssh process is a
//! client of the master, so killing one gateway ends only its session; a
//! master that dies ends every session over it, and their gateways end
//! with endmarkers. `REMEX_SSH_SHARE=0` turns both off; a client that
//! cannot reach the master connects directly.

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

/// The environment variable that turns connection sharing off (`0`).
///
/// ```
/// assert_eq!(remex::core::transport::ssh::SHARE_ENV, "REMEX_SSH_SHARE");
/// ```
pub const SHARE_ENV: &str = "REMEX_SSH_SHARE";

/// How long a shared connection's master outlives its last session.
const MASTER_PERSIST: &str = "10";

fn sharing() -> bool {
    std::env::var_os(SHARE_ENV).is_none_or(|v| v != "0")
}

/// The directory of this user's control sockets (mode 0700).
fn control_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let uid = rustix::process::getuid().as_raw();
        let dir = std::env::temp_dir().join(format!("remex-ssh-{uid}"));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        // Only a directory of ours that nobody else can write.
        let md = std::fs::symlink_metadata(&dir).ok()?;
        let ours = md.is_dir() && md.uid() == uid && md.permissions().mode() & 0o077 == 0;
        ours.then_some(dir)
    })
    .clone()
}

/// The options every ssh command of `spec` gets.
fn common_args(cmd: &mut Command, spec: &Spec) {
    cmd.args(["-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!("ConnectTimeout={}", CONNECT_TIMEOUT.as_secs()))
        .args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2"]);
    if let Some(port) = spec.port {
        cmd.arg("-p").arg(port.to_string());
    }
    if let Some(cfg) = &spec.ssh_config {
        cmd.arg("-F").arg(cfg);
    }
}

/// Sessions one shared connection carries: OpenSSH's sshd allows 10 per
/// connection by default (`MaxSessions`); past that a new master starts.
const SESSIONS_PER_MASTER: usize = 10;

/// A destination's masters (their control sockets) and the sessions
/// started over each, under one lock: the first gateway to a host starts
/// the master while the others wait for it.
#[derive(Default)]
struct Masters {
    masters: Vec<(PathBuf, usize)>,
    /// Masters started so far: each gets a socket name of its own.
    started: u64,
}

fn destination(key: &str) -> Arc<tokio::sync::Mutex<Masters>> {
    type Table = Mutex<HashMap<String, Arc<tokio::sync::Mutex<Masters>>>>;
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE
        .get_or_init(Default::default)
        .lock()
        .entry(key.to_string())
        .or_default()
        .clone()
}

/// A control socket for `spec`'s destination with a master listening on
/// it and room for a session (a master is started now if none has room);
/// `None` when sharing is off or the master cannot be started for a
/// reason a direct connection reports better (a refused key, say). A host
/// that cannot be reached at all is an error at once, not a second wait
/// for the connect timeout.
pub(crate) async fn shared_connection(spec: &Spec, target: &str) -> Result<Option<PathBuf>> {
    if !sharing() {
        return Ok(None);
    }
    let Some(dir) = control_dir() else {
        return Ok(None);
    };
    let key = format!(
        "{target}|{}|{}",
        spec.port.unwrap_or(0),
        spec.ssh_config.as_deref().unwrap_or("")
    );
    let dest = destination(&key);
    let mut dest = dest.lock().await;
    // A master of ours with room (its socket still there: a master that
    // died removed it, or its clients fall back to connecting directly).
    dest.masters.retain(|(p, _)| p.exists());
    if let Some((path, n)) = dest
        .masters
        .iter_mut()
        .find(|(_, n)| *n < SESSIONS_PER_MASTER)
    {
        *n += 1;
        return Ok(Some(path.clone()));
    }
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(dest.started.to_le_bytes());
    dest.started += 1;
    let name: String = h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = dir.join(name);
    // A name never used by this process: anything there is stale.
    let _ = std::fs::remove_file(&path);
    if !start_master(spec, target, &path).await? {
        return Ok(None);
    }
    dest.masters.push((path.clone(), 1));
    Ok(Some(path))
}

/// Starts a master on `path`; false if it could not (then gateways connect
/// directly and report why).
async fn start_master(spec: &Spec, target: &str, path: &std::path::Path) -> Result<bool> {
    let mut cmd = Command::new("ssh");
    super::secret::scrub(cmd.as_std_mut());
    common_args(&mut cmd, spec);
    cmd.args(["-M", "-N", "-f", "-o", "ControlMaster=yes"])
        .arg("-o")
        .arg(format!("ControlPersist={MASTER_PERSIST}"))
        .arg("-S")
        .arg(path)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // `-f`: ssh returns once the connection is up, leaving the master (in
    // a session of its own, its stdio on /dev/null).
    let started =
        tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(5), cmd.output()).await;
    match started {
        Ok(Ok(out)) if out.status.success() => Ok(true),
        Ok(Ok(out)) => {
            let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if UNREACHABLE.iter().any(|n| message.contains(n)) {
                return Err(Error::HostUnreachable {
                    spec: spec.raw.clone(),
                    host: target.to_string(),
                    message,
                });
            }
            Ok(false)
        }
        Ok(Err(_)) => Ok(false),
        Err(_) => Err(Error::HostUnreachable {
            spec: spec.raw.clone(),
            host: target.to_string(),
            message: format!("no connection within {CONNECT_TIMEOUT:?}"),
        }),
    }
}

/// The ssh command for `spec` reaching `target` (over the shared
/// connection `control`, when there is one), and the worker to upload if
/// the host lacks it (none when `worker=` names the remote worker).
pub(crate) fn command(
    spec: &Spec,
    target: &str,
    control: Option<&std::path::Path>,
) -> Result<(Command, Option<Upload>)> {
    let mut cmd = Command::new("ssh");
    cmd.arg("-T");
    common_args(&mut cmd, spec);
    if let Some(path) = control {
        // A client of the master; if it cannot reach it, a direct
        // connection of its own.
        cmd.args(["-o", "ControlMaster=no", "-S"]).arg(path);
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

/// What ssh says when it cannot reach a host at all.
const UNREACHABLE: &[&str] = &[
    "Connection refused",
    "Connection timed out",
    "No route to host",
    "Could not resolve hostname",
    "Network is unreachable",
    "Connection closed by",
    "Connection reset",
];

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
    } else if has(UNREACHABLE) {
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
