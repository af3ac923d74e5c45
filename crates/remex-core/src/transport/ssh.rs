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
/// Printed by the remote script when it needs the worker binary, followed
/// by the form it can take (`zstd`, `gzip` or `raw`) and a newline.
pub(crate) const SEND: &[u8] = b"\x1bREMEX-SEND-WORKER ";

/// A worker binary to upload when the host lacks it: stripped of debug
/// information (kept beside it in the cache as `worker.debug`, for
/// backtraces) and
/// compressed in each form, prepared once per binary in a cache of this
/// user's (the files are read only when a host asks for one).
#[derive(Clone)]
pub(crate) struct Upload {
    /// The binary it was prepared from.
    source: PathBuf,
    dir: PathBuf,
    /// The stripped binary's content hash: the host's cache directory.
    hash: String,
    /// Its full SHA-256, which the host checks the upload against.
    sha: String,
    /// Sizes: the stripped binary, then its zstd, gzip and raw forms.
    sizes: [u64; 4],
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<Upload {} ({} bytes, {} compressed)>",
            self.hash, self.sizes[0], self.sizes[1]
        )
    }
}

impl Upload {
    /// The debug information of the uploaded binary (`worker.debug` in
    /// its cache directory), where objcopy could keep it.
    pub(crate) fn debug_file(&self) -> Option<PathBuf> {
        Some(self.dir.join("worker.debug")).filter(|p| p.is_file())
    }

    /// The stripped binary's content hash (the host's cache directory).
    pub(crate) fn hash(&self) -> &str {
        &self.hash
    }

    /// The bytes of the worker in `form` (`zstd`, `gzip` or `raw`).
    pub(crate) fn blob(&self, form: &str) -> std::io::Result<Vec<u8>> {
        let name = match form {
            "zstd" => "worker.zst",
            "gzip" => "worker.gz",
            "raw" => "worker",
            other => {
                return Err(std::io::Error::other(format!(
                    "the host asked for the worker as {other:?}"
                )))
            }
        };
        let mut bytes = match std::fs::read(self.dir.join(name)) {
            // Pruned by a later build's preparation: prepared again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let again = prepare_in(self.dir.parent().unwrap_or(&self.dir), &self.source)?;
                if again.sha != self.sha {
                    return Err(std::io::Error::other(format!(
                        "the worker {} changed since this program first uploaded it",
                        self.source.display()
                    )));
                }
                std::fs::read(again.dir.join(name))?
            }
            r => r?,
        };
        // Test hook: corrupt the first upload of this process (`once`) or
        // every one (`always`), to show that the host refuses a damaged
        // upload and the start sends it again.
        static CORRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let corrupt = match std::env::var("REMEX_TEST_CORRUPT_UPLOAD").as_deref() {
            Ok("always") => true,
            Ok("once") => !CORRUPTED.swap(true, std::sync::atomic::Ordering::Relaxed),
            _ => false,
        };
        if corrupt && !bytes.is_empty() {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
        }
        Ok(bytes)
    }
}

/// This user's cache of prepared uploads.
fn upload_cache() -> PathBuf {
    let uid = rustix::process::getuid().as_raw();
    std::env::temp_dir().join(format!("remex-upload-{uid}"))
}

/// Prepares `path` for uploads (see [`Upload`]) in the cache, unless a
/// preparation of the same file (path, size, mtime) is there.
fn prepare(path: &std::path::Path) -> std::io::Result<Upload> {
    prepare_in(&upload_cache(), path)
}

/// [`prepare`] in the cache at `root`.
fn prepare_in(root: &std::path::Path, path: &std::path::Path) -> std::io::Result<Upload> {
    use std::io::Write;
    let md = std::fs::metadata(path)?;
    let mtime = md
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut key = Sha256::new();
    key.update(path.as_os_str().as_encoded_bytes());
    key.update(md.len().to_le_bytes());
    key.update(mtime.to_le_bytes());
    let key: String = key.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = root.join(&key);
    let read_meta = |dir: &std::path::Path| -> Option<Upload> {
        let meta = std::fs::read_to_string(dir.join("meta")).ok()?;
        let f: Vec<&str> = meta.split_whitespace().collect();
        let [hash, sha, a, b, c, d] = f.as_slice() else {
            return None;
        };
        Some(Upload {
            source: path.to_path_buf(),
            dir: dir.to_path_buf(),
            hash: hash.to_string(),
            sha: sha.to_string(),
            sizes: [
                a.parse().ok()?,
                b.parse().ok()?,
                c.parse().ok()?,
                d.parse().ok()?,
            ],
        })
    };
    if let Some(u) = read_meta(&dir) {
        return Ok(u);
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)?;
    }
    let tmp = root.join(format!(".{key}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    // Without the debug information: what a host runs, a fraction of the
    // size. objcopy comes with every C toolchain; without it, the binary
    // goes as it is.
    let stripped = tmp.join("worker");
    if !objcopy(&["--strip-debug"], path, &stripped) {
        std::fs::copy(path, &stripped)?;
    }
    let raw = std::fs::read(&stripped)?;
    let digest = Sha256::digest(&raw);
    let sha: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let hash = sha[..32].to_string();
    // Both forms at once (each is single-threaded), and beside them the
    // debug information, kept here for backtraces (`worker.debug`: the
    // addresses are the stripped binary's, so gdb or addr2line read a
    // host's core or a frame's offset with it; compressed sections, as
    // gdb reads them). Best effort: without objcopy there is none.
    let (zst, gz) = std::thread::scope(|scope| {
        scope.spawn(|| keep_debug(path, &tmp.join("worker.debug")));
        let gz = scope.spawn(|| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            gz.write_all(&raw)?;
            gz.finish()
        });
        let zst = zstd::encode_all(&raw[..], 9);
        let gz = gz
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("gzip panicked")));
        (zst, gz)
    });
    let (zst, gz) = (zst?, gz?);
    std::fs::write(tmp.join("worker.zst"), &zst)?;
    std::fs::write(tmp.join("worker.gz"), &gz)?;
    std::fs::write(
        tmp.join("meta"),
        format!(
            "{hash} {sha} {} {} {} {}\n",
            raw.len(),
            zst.len(),
            gz.len(),
            raw.len()
        ),
    )?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => {}
        // Another process prepared it meanwhile.
        Err(_) if read_meta(&dir).is_some() => {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(e) => return Err(e),
    }
    prune(root, &dir);
    read_meta(&dir).ok_or_else(|| std::io::Error::other("the prepared upload has no meta"))
}

/// Runs `objcopy OPTIONS from to`; whether it succeeded (false without
/// objcopy).
fn objcopy(options: &[&str], from: &std::path::Path, to: &std::path::Path) -> bool {
    std::process::Command::new("objcopy")
        .args(options)
        .arg(from)
        .arg(to)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes the debug sections of `path` alone to `out` (compressed), or
/// nothing if objcopy cannot.
fn keep_debug(path: &std::path::Path, out: &std::path::Path) {
    if !objcopy(
        &["--only-keep-debug", "--compress-debug-sections=zlib"],
        path,
        out,
    ) {
        let _ = std::fs::remove_file(out);
    }
}

/// How many prepared binaries the cache keeps (each a few times the
/// stripped binary's size): every new build adds one.
const KEEP_PREPARED: usize = 8;

/// Keeps the cache in bounds: the [`KEEP_PREPARED`] newest preparations
/// (`keep` among them), and no partial one older than an hour (a
/// process killed while preparing).
fn prune(root: &std::path::Path, keep: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let now = std::time::SystemTime::now();
    let mut done = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let Some(when) = e.metadata().ok().and_then(|m| m.modified().ok()) else {
            continue;
        };
        if e.file_name().to_string_lossy().starts_with('.') {
            if now
                .duration_since(when)
                .is_ok_and(|age| age > std::time::Duration::from_secs(3600))
            {
                let _ = std::fs::remove_dir_all(&path);
            }
        } else if path != keep {
            done.push((when, path));
        }
    }
    done.sort();
    let surplus = (done.len() + 1).saturating_sub(KEEP_PREPARED);
    for (_, path) in done.into_iter().take(surplus) {
        let _ = std::fs::remove_dir_all(path);
    }
}

/// For several gateways to one host over one connection
/// ([`crate::Gateway::start_ssh_fanout`]): the spec of the relay (an ssh
/// worker of `first`'s, with the default setup: its children, the
/// gateways' workers, inherit its directory and environment before their
/// own hellos apply theirs), and what the relay starts for each gateway
/// (its own program: the uploaded worker, `worker=PATH`, or this program
/// with `worker=self`).
pub(crate) fn fanout_relay(first: &Spec) -> (Spec, String) {
    let mut relay = first.clone();
    relay.id = None;
    relay.chdir = None;
    relay.env.clear();
    relay.nice = None;
    (relay, "popen".to_string())
}

/// Starts the worker of an `ssh=` spec (`target`): over the shared
/// connection to its host if there is one, uploading the worker if the
/// host lacks it (once more if it arrived damaged), with ssh's failures
/// told apart ([`classify`]).
pub(crate) async fn start(id: &str, spec: &Spec, target: &str) -> Result<super::Started> {
    prepare_upload(spec).await?;
    let control = shared_connection(spec, target).await?;
    let (cmd, upload) = command(spec, target, control.as_deref())?;
    match super::start_process(id, spec, cmd, Some(upload)).await {
        Ok(s) => Ok(s),
        // An upload that arrived damaged (the host checked its size and
        // SHA-256 and kept nothing) is sent once more.
        Err(e) if upload_refused(&e) => {
            tracing::warn!(gateway = %id, "the worker upload arrived damaged ({e}); sending it again");
            let control = shared_connection(spec, target).await?;
            let (cmd, upload) = command(spec, target, control.as_deref())?;
            super::start_process(id, spec, cmd, Some(upload))
                .await
                .map_err(|e| classify(spec, target, e))
        }
        Err(e) => Err(classify(spec, target, e)),
    }
}

/// The local worker binary, prepared for uploads, once per path and
/// process.
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
    let u = prepare(&path).map_err(|e| Error::Start {
        spec: spec.raw.clone(),
        detail: format!(
            "cannot prepare the local worker {} to upload it: {e}",
            path.display()
        ),
    })?;
    cache.insert(path, u.clone());
    Ok(u)
}

/// The remote side of the zero-install bootstrap: use the cached worker,
/// or check the platform, ask for the binary in the most compact form the
/// host can decompress (zstd, gzip, else raw; `REMEX_UPLOAD_FORM` in the
/// host's environment chooses one), check its size and
/// SHA-256, store it atomically under `~/.cache/remex/HASH/`, and start
/// it.
fn bootstrap_script(u: &Upload) -> String {
    let platform = format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    format!(
        r#"d="$HOME/.cache/remex/{hash}"; w="$d/remex-worker"
if [ ! -x "$w" ]; then
  p="$(uname -s | tr A-Z a-z)-$(uname -m)"
  if [ "$p" != "{platform}" ]; then echo "REMEX-PLATFORM host is $p, the local worker is {platform}" >&2; exit 3; fi
  mkdir -p "$d" || exit 4
  t="$(mktemp "$d/.upload.XXXXXX")" || exit 4
  f="${{REMEX_UPLOAD_FORM:-}}"
  if [ -z "$f" ]; then
    if command -v zstd >/dev/null 2>&1; then f=zstd
    elif command -v gzip >/dev/null 2>&1; then f=gzip
    else f=raw; fi
  fi
  case "$f" in
    zstd) n={zsize}; u="zstd -dcq";;
    gzip) n={gsize}; u="gzip -dc";;
    *) f=raw; n={size}; u=cat;;
  esac
  printf '\033REMEX-SEND-WORKER %s\n' "$f"
  head -c "$n" | $u > "$t" 2>/dev/null
  if [ "$(wc -c < "$t")" -ne {size} ]; then rm -f "$t"; echo "REMEX-UPLOAD incomplete or corrupt"; echo "REMEX-UPLOAD incomplete or corrupt" >&2; exit 5; fi
  if command -v sha256sum >/dev/null 2>&1 && [ "$(sha256sum < "$t" | cut -c1-64)" != "{sha}" ]; then rm -f "$t"; echo "REMEX-UPLOAD corrupt"; echo "REMEX-UPLOAD corrupt" >&2; exit 5; fi
  chmod 755 "$t" && mv -f "$t" "$w" || exit 4
fi
printf '\033REMEX-READY\n'
REMEX_WORKER=1 exec "$w""#,
        hash = u.hash,
        sha = u.sha,
        size = u.sizes[0],
        zsize = u.sizes[1],
        gsize = u.sizes[2],
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

/// Prepares the upload `spec` would need (a first preparation strips and
/// compresses the binary: most of a second) on a blocking thread, so
/// that [`command`] finds it ready and no runtime thread waits on it.
pub(crate) async fn prepare_upload(spec: &Spec) -> Result<()> {
    if spec.worker.as_deref().is_some_and(|w| w != "self") {
        return Ok(());
    }
    let spec = spec.clone();
    match tokio::task::spawn_blocking(move || upload_for(&spec)).await {
        Ok(r) => r.map(drop),
        // The task panicked or the runtime is going away: command() will
        // say what is wrong when it prepares the upload itself.
        Err(_) => Ok(()),
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

/// Whether a start failed because the host refused a damaged upload (its
/// size or SHA-256 did not match; the host kept nothing).
/// The script says so on stderr (a direct ssh start's error carries it)
/// and on stdout (what a relayed start sees).
pub(crate) fn upload_refused(err: &Error) -> bool {
    matches!(err, Error::Handshake { .. }) && err.to_string().contains("REMEX-UPLOAD")
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

    /// A binary to prepare: a copy of this test program under `dir`.
    fn a_binary(dir: &std::path::Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::copy(std::env::current_exe().unwrap(), &path).unwrap();
        path
    }

    #[test]
    fn an_upload_is_prepared_once_in_every_form_and_each_decodes_to_it() {
        let tmp = std::env::temp_dir().join(format!("remex-prep-test-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let bin = a_binary(&tmp, "w");
        let root = tmp.join("cache");
        let u = prepare_in(&root, &bin).unwrap();
        let raw = u.blob("raw").unwrap();
        assert_eq!(raw.len() as u64, u.sizes[0]);
        let sha: String = Sha256::digest(&raw)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sha, u.sha, "the host checks this digest");
        assert!(
            u.sizes[0] <= std::fs::metadata(&bin).unwrap().len(),
            "never larger than the binary"
        );
        let zst = u.blob("zstd").unwrap();
        assert_eq!(zst.len() as u64, u.sizes[1]);
        assert!(zst.len() < raw.len() / 2, "{} of {}", zst.len(), raw.len());
        assert_eq!(zstd::decode_all(&zst[..]).unwrap(), raw);
        let gz = u.blob("gzip").unwrap();
        assert_eq!(gz.len() as u64, u.sizes[2]);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut back).unwrap();
        assert_eq!(back, raw);
        let err = u.blob("lzma").unwrap_err();
        assert!(err.to_string().contains("lzma"), "{err}");
        // Prepared once: the same directory, not rewritten.
        let when = std::fs::metadata(u.dir.join("meta"))
            .unwrap()
            .modified()
            .unwrap();
        let again = prepare_in(&root, &bin).unwrap();
        assert_eq!(again.dir, u.dir);
        assert_eq!(
            std::fs::metadata(again.dir.join("meta"))
                .unwrap()
                .modified()
                .unwrap(),
            when
        );
        // The debug information stays here, and reads the uploaded
        // binary's addresses: a function of this test, found by its
        // symbol in the stripped binary, has its file and line.
        let objcopy = std::process::Command::new("objcopy")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            objcopy || std::env::var_os("CI").is_none(),
            "CI has binutils"
        );
        if objcopy {
            let debug = u.debug_file().expect("the debug information is kept");
            let nm = std::process::Command::new("nm")
                .arg(u.dir.join("worker"))
                .output()
                .unwrap();
            let symbols = String::from_utf8_lossy(&nm.stdout);
            let addr = symbols
                .lines()
                .find(|l| l.contains("an_upload_is_prepared_once_in_every_form"))
                .and_then(|l| l.split_whitespace().next())
                .expect("the stripped binary keeps its symbols");
            let at = std::process::Command::new("addr2line")
                .arg("-e")
                .arg(&debug)
                .arg(addr)
                .output()
                .unwrap();
            let at = String::from_utf8_lossy(&at.stdout);
            assert!(at.contains("ssh.rs:"), "{addr} -> {at}");
            let at_stripped = std::process::Command::new("addr2line")
                .arg("-e")
                .arg(u.dir.join("worker"))
                .arg(addr)
                .output()
                .unwrap();
            let at_stripped = String::from_utf8_lossy(&at_stripped.stdout);
            assert!(!at_stripped.contains("ssh.rs:"), "{at_stripped}");
        }
        // Pruned (by later builds' preparations): prepared again on use.
        std::fs::remove_dir_all(&u.dir).unwrap();
        assert_eq!(u.blob("raw").unwrap(), raw);
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn the_cache_keeps_the_newest_preparations() {
        let tmp = std::env::temp_dir().join(format!("remex-prune-test-{}", std::process::id()));
        let root = tmp.join("cache");
        std::fs::create_dir_all(&root).unwrap();
        // Eleven earlier preparations (stand-ins) and a partial one left
        // by a killed process two hours ago.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        for i in 0..11 {
            let d = root.join(format!("prep{i:02}"));
            std::fs::create_dir_all(&d).unwrap();
            let when = old + std::time::Duration::from_secs(i * 60);
            std::fs::File::open(&d).unwrap().set_modified(when).unwrap();
        }
        let partial = root.join(".killed.1");
        std::fs::create_dir_all(&partial).unwrap();
        std::fs::File::open(&partial)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let fresh = root.join(".preparing.2");
        std::fs::create_dir_all(&fresh).unwrap();
        let bin = a_binary(&tmp, "w");
        let u = prepare_in(&root, &bin).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mine = u.dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut want: Vec<String> = (4..11).map(|i| format!("prep{i:02}")).collect();
        want.push(".preparing.2".into());
        want.push(mine);
        want.sort();
        assert_eq!(left, want, "the 8 newest, and a partial one still young");
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(shell_quote("/a b/it's"), "'/a b/it'\\''s'");
    }
}
