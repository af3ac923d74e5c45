//! The handshake: each side announces itself once, before any frame.
//!
//! ```text
//! +-------------------------+-----------------+----------------+------------------+
//! | magic: F0 52 45 4D 45 58 00 0A | version: u16 LE | length: u32 LE | postcard Hello   |
//! +-------------------------+-----------------+----------------+------------------+
//! ```
//!
//! The controller speaks first (its hello carries the worker's setup: chdir,
//! environment, nice); the worker applies the setup and answers with its own
//! hello carrying [`WorkerInfo`]. A remote shell may print text before the
//! worker starts (a motd, a `.bashrc` echo): the scanner skips anything
//! before the magic, up to a bound, and reports it if no handshake follows.

use bytes::{Buf, BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::HandshakeError;

/// Marks the start of a hello. Byte 0xF0 cannot start valid text in most
/// encodings, and the trailing newline keeps line-buffered relays moving.
///
/// ```
/// use bytes::BytesMut;
/// use remex::core::wire::{encode_hello, Hello, Role, MAGIC};
/// let mut buf = BytesMut::new();
/// encode_hello(&Hello { role: Role::Worker, worker: None, setup: None }, &mut buf);
/// assert!(buf.starts_with(&MAGIC));
/// ```
pub const MAGIC: [u8; 8] = [0xF0, b'R', b'E', b'M', b'E', b'X', 0x00, 0x0A];

/// The protocol version this build speaks.
///
/// ```
/// assert_eq!(remex::core::wire::PROTOCOL_VERSION, 6);
/// ```
pub const PROTOCOL_VERSION: u16 = 6;

/// Longest hello body accepted.
///
/// ```
/// assert_eq!(remex::core::wire::MAX_HELLO, 64 * 1024);
/// ```
pub const MAX_HELLO: usize = 64 * 1024;

/// Default bound on bytes skipped before the magic.
///
/// ```
/// // Bytes a shell may print before the hello (a login banner):
/// assert_eq!(remex::core::wire::DEFAULT_MAX_NOISE, 64 * 1024);
/// ```
pub const DEFAULT_MAX_NOISE: usize = 64 * 1024;

/// Which side sent a hello.
///
/// ```
/// use remex::core::wire::{Hello, Role};
/// let hello = Hello { role: Role::Controller, worker: None, setup: None };
/// assert_eq!(hello.role, Role::Controller);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The side that started the gateway.
    Controller,
    /// The side that runs scripts and tasks.
    Worker,
}

/// What a worker tells about itself.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let gw = remex::makegateway("popen").await?;
/// let info: &remex::core::wire::WorkerInfo = gw.rinfo();
/// assert_eq!(info.platform, format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH));
/// gw.exit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Process id on the worker's host.
    pub pid: u32,
    /// The worker's host name (`uname -n` there).
    pub host: String,
    /// Working directory after `chdir=` was applied.
    pub cwd: String,
    /// Path of the worker executable.
    pub executable: String,
    /// `os-arch`, e.g. `linux-x86_64`.
    pub platform: String,
    /// The remex version the worker was built from.
    pub version: String,
    /// Where a cluster engine placed the worker (a Slurm job step's task),
    /// or `None` outside one.
    pub cluster: Option<ClusterInfo>,
}

/// Where a cluster engine placed a worker: for Slurm, the job, the step,
/// the node and the task's rank in the step, from the `SLURM_*` variables
/// srun gives each task.
///
/// ```
/// let c = remex::core::wire::ClusterInfo {
///     engine: "slurm".into(),
///     job_id: "42".into(),
///     step_id: "0".into(),
///     node: "node7".into(),
///     task: 3,
///     credential: None,
/// };
/// assert_eq!(c.to_string(), "slurm job 42 step 0 task 3 on node7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The engine: `slurm`.
    pub engine: String,
    /// The job (`SLURM_JOB_ID`).
    pub job_id: String,
    /// The step within the job (`SLURM_STEP_ID`).
    pub step_id: String,
    /// The node the task runs on (`SLURMD_NODENAME`).
    pub node: String,
    /// The task's rank within its step (`SLURM_PROCID`).
    pub task: u32,
    /// A munge credential over the session's handshake hash, from a
    /// worker that dialed back on a node with munge: it proves the
    /// session is the job user's on a node of the cluster, not a
    /// stranger's who learnt the start's secret (docs/security.md).
    pub credential: Option<String>,
}

impl std::fmt::Display for ClusterInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} job {} step {} task {} on {}",
            self.engine, self.job_id, self.step_id, self.task, self.node
        )
    }
}

impl ClusterInfo {
    /// The placement this process's environment describes: a Slurm task
    /// when `SLURM_JOB_ID`, `SLURM_STEP_ID` and `SLURM_PROCID` are set (as
    /// srun sets them), else `None`.
    ///
    /// ```
    /// // A test process is not a Slurm task (unless run under srun).
    /// if std::env::var_os("SLURM_STEP_ID").is_none() {
    ///     assert_eq!(remex::core::wire::ClusterInfo::from_env(), None);
    /// }
    /// ```
    pub fn from_env() -> Option<ClusterInfo> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        Some(ClusterInfo {
            engine: "slurm".into(),
            job_id: var("SLURM_JOB_ID")?,
            step_id: var("SLURM_STEP_ID")?,
            node: var("SLURMD_NODENAME")
                .or_else(|| var("HOSTNAME"))
                .unwrap_or_default(),
            task: var("SLURM_PROCID")?.parse().ok()?,
            credential: None,
        })
    }
}

/// Settings the controller asks the worker to apply before it serves.
///
/// ```
/// use remex::core::wire::{Hello, Role, WorkerSetup};
/// let setup = WorkerSetup { chdir: Some("/tmp".into()), nice: Some(5), ..WorkerSetup::default() };
/// let hello = Hello { role: Role::Controller, worker: None, setup: Some(setup) };
/// assert_eq!(hello.setup.unwrap().nice, Some(5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkerSetup {
    /// Directory to change into (created if missing).
    pub chdir: Option<String>,
    /// Environment variables to set.
    pub env: Vec<(String, String)>,
    /// Niceness increment.
    pub nice: Option<i32>,
    /// Limits for this controller's scripts (unset ones: the worker's).
    pub script_limits: ScriptLimits,
    /// The controller's liveness bound (`liveness=`, on by default over a
    /// network): the controller probes at least every quarter of it, so a
    /// worker that hears nothing from it for the whole bound takes it
    /// for gone (a dead host, a cut network) and ends the session.
    pub liveness: Option<std::time::Duration>,
    /// The most detailed level of the worker's `tracing` events the
    /// controller wants as records (1 ERROR to 5 TRACE; `None`: none):
    /// the controller's own level, so that `RUST_LOG=info` there shows
    /// the workers' info events. Since version 5.
    pub log_level: Option<u8>,
}

/// Resource limits for scripts, set per spec (`script_max_operations=`,
/// ...) or per worker ([`remex::worker::Worker::script_limits`]); a field
/// left `None` takes the worker's setting, then the default
/// (docs/scripts.md lists them). A script over a limit fails its own
/// channel with an error naming the limit; the worker keeps serving.
///
/// ```
/// let spec = remex::Spec::parse("popen//script_max_operations=1000//script_max_string=1M").unwrap();
/// assert_eq!(spec.script_limits.max_operations, Some(1000));
/// assert_eq!(spec.script_limits.max_string_size, Some(1 << 20));
/// assert_eq!(spec.script_limits.max_array_size, None, "not set: the worker's");
/// ```
///
/// [`remex::worker::Worker::script_limits`]: https://docs.rs/remex-worker
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ScriptLimits {
    /// Operations a script may run (0: no limit).
    pub max_operations: Option<u64>,
    /// Bytes in one string.
    pub max_string_size: Option<u64>,
    /// Elements of one array, or bytes of one blob (nested arrays count).
    pub max_array_size: Option<u64>,
    /// Entries of one object map (nested maps count).
    pub max_map_size: Option<u64>,
    /// Depth of function calls.
    pub max_call_levels: Option<u64>,
    /// Bytes the worker's memory may grow by while scripts run.
    pub max_memory: Option<u64>,
}

impl ScriptLimits {
    /// `self`, with the fields it leaves unset taken from `base`.
    ///
    /// ```
    /// use remex::core::wire::ScriptLimits;
    /// let spec = ScriptLimits { max_operations: Some(5), ..ScriptLimits::default() };
    /// let worker = ScriptLimits { max_operations: Some(9), max_call_levels: Some(8), ..ScriptLimits::default() };
    /// let both = spec.or(worker);
    /// assert_eq!((both.max_operations, both.max_call_levels), (Some(5), Some(8)));
    /// ```
    pub fn or(self, base: ScriptLimits) -> ScriptLimits {
        ScriptLimits {
            max_operations: self.max_operations.or(base.max_operations),
            max_string_size: self.max_string_size.or(base.max_string_size),
            max_array_size: self.max_array_size.or(base.max_array_size),
            max_map_size: self.max_map_size.or(base.max_map_size),
            max_call_levels: self.max_call_levels.or(base.max_call_levels),
            max_memory: self.max_memory.or(base.max_memory),
        }
    }
}

/// A decoded hello.
///
/// ```
/// use remex::core::wire::{Hello, Role};
/// let hello = Hello { role: Role::Worker, worker: None, setup: None };
/// assert_eq!(hello.clone(), hello);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Who sent it.
    pub role: Role,
    /// The worker's self-description (worker hellos only).
    pub worker: Option<WorkerInfo>,
    /// The setup to apply (controller hellos only).
    pub setup: Option<WorkerSetup>,
}

/// Appends a hello to `dst`.
///
/// ```
/// use bytes::BytesMut;
/// use remex::core::wire::{encode_hello, Hello, HandshakeScanner, Role};
///
/// let hello = Hello { role: Role::Controller, worker: None, setup: None };
/// let mut buf = BytesMut::from(&b"Welcome to host!\n"[..]);
/// encode_hello(&hello, &mut buf);
/// let mut scan = HandshakeScanner::new(1024);
/// assert_eq!(scan.scan(&mut buf).unwrap(), Some(hello));
/// assert_eq!(scan.skipped(), 17);
/// ```
pub fn encode_hello(hello: &Hello, dst: &mut BytesMut) {
    let body = postcard::to_stdvec(hello).expect("a hello always serializes");
    dst.put_slice(&MAGIC);
    dst.put_u16_le(PROTOCOL_VERSION);
    dst.put_u32_le(body.len() as u32);
    dst.put_slice(&body);
}

/// Finds and decodes a hello in a growing buffer, skipping noise before it.
///
/// ```
/// use bytes::BytesMut;
/// use remex::core::wire::{encode_hello, HandshakeScanner, Hello, Role};
/// let mut buf = BytesMut::from(&b"motd\n"[..]);
/// encode_hello(&Hello { role: Role::Worker, worker: None, setup: None }, &mut buf);
/// let mut scan = HandshakeScanner::new(1024);
/// assert!(scan.scan(&mut buf).unwrap().is_some());
/// ```
#[derive(Debug, Clone)]
pub struct HandshakeScanner {
    skipped: usize,
    max_noise: usize,
    preview: Vec<u8>,
}

const PREVIEW: usize = 400;

impl HandshakeScanner {
    /// A scanner that skips at most `max_noise` bytes before the magic.
    ///
    /// ```
    /// let scan = remex::core::wire::HandshakeScanner::new(remex::core::wire::DEFAULT_MAX_NOISE);
    /// assert_eq!(scan.skipped(), 0);
    /// ```
    pub fn new(max_noise: usize) -> Self {
        HandshakeScanner {
            skipped: 0,
            max_noise,
            preview: Vec::new(),
        }
    }

    /// Bytes skipped so far.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use remex::core::wire::{encode_hello, HandshakeScanner, Hello, Role};
    /// let mut buf = BytesMut::from(&b"a login banner\n"[..]);
    /// encode_hello(&Hello { role: Role::Worker, worker: None, setup: None }, &mut buf);
    /// let mut scan = HandshakeScanner::new(1024);
    /// assert!(scan.scan(&mut buf).unwrap().is_some());
    /// assert_eq!(scan.skipped(), 15);
    /// ```
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The start of the skipped noise, as text.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// let mut scan = remex::core::wire::HandshakeScanner::new(1024);
    /// let mut buf = BytesMut::from(&b"sh: remex-worker: not found\n"[..]);
    /// scan.scan(&mut buf).unwrap();
    /// assert!(scan.noise().starts_with("sh: remex-worker:"), "{}", scan.noise());
    /// ```
    pub fn noise(&self) -> String {
        String::from_utf8_lossy(&self.preview)
            .trim_end()
            .to_string()
    }

    fn skip(&mut self, buf: &mut BytesMut, n: usize) {
        let keep = PREVIEW.saturating_sub(self.preview.len()).min(n);
        self.preview.extend_from_slice(&buf[..keep]);
        self.skipped += n;
        buf.advance(n);
    }

    /// Returns the hello once it is complete (consuming it and the noise
    /// before it from `buf`), `None` if more bytes are needed, or an error.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use remex::core::wire::{encode_hello, HandshakeScanner, Hello, Role};
    /// let mut whole = BytesMut::new();
    /// encode_hello(&Hello { role: Role::Worker, worker: None, setup: None }, &mut whole);
    /// let mut scan = HandshakeScanner::new(1024);
    /// let mut buf = whole.split_to(3); // a part: not yet
    /// assert!(scan.scan(&mut buf).unwrap().is_none());
    /// buf.extend_from_slice(&whole);
    /// assert!(scan.scan(&mut buf).unwrap().is_some());
    /// ```
    pub fn scan(&mut self, buf: &mut BytesMut) -> Result<Option<Hello>, HandshakeError> {
        let pos = buf.windows(MAGIC.len()).position(|w| w == MAGIC);
        let Some(pos) = pos else {
            // Keep a tail that might be the start of the magic.
            let keep = buf.len().min(MAGIC.len() - 1);
            let n = buf.len() - keep;
            self.skip(buf, n);
            return self.check_noise().map(|()| None);
        };
        self.skip(buf, pos);
        self.check_noise()?;
        let head = MAGIC.len() + 6;
        if buf.len() < head {
            return Ok(None);
        }
        let version = u16::from_le_bytes([buf[8], buf[9]]);
        if version != PROTOCOL_VERSION {
            return Err(HandshakeError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: version,
            });
        }
        let len = u32::from_le_bytes([buf[10], buf[11], buf[12], buf[13]]) as usize;
        if len > MAX_HELLO {
            return Err(HandshakeError::BadHello {
                detail: format!("hello of {len} bytes exceeds the maximum of {MAX_HELLO}"),
            });
        }
        if buf.len() < head + len {
            return Ok(None);
        }
        buf.advance(head);
        let body = buf.split_to(len);
        let hello = postcard::from_bytes(&body).map_err(|e| HandshakeError::BadHello {
            detail: e.to_string(),
        })?;
        Ok(Some(hello))
    }

    fn check_noise(&self) -> Result<(), HandshakeError> {
        if self.skipped > self.max_noise {
            return Err(HandshakeError::TooMuchNoise {
                max: self.max_noise,
                noise: self.noise(),
            });
        }
        Ok(())
    }

    /// The error to report when the stream ended before a hello; `rest` is
    /// what is still in the buffer (a possible start of the magic).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// let mut scan = remex::core::wire::HandshakeScanner::new(1024);
    /// let mut buf = BytesMut::from(&b"bash: remex-worker: command not found\n"[..]);
    /// scan.scan(&mut buf).unwrap();
    /// let e = scan.eof_error(&buf);
    /// assert!(e.to_string().contains("command not found"), "{e}");
    /// ```
    pub fn eof_error(&self, rest: &[u8]) -> HandshakeError {
        let mut preview = self.preview.clone();
        preview.extend_from_slice(&rest[..rest.len().min(PREVIEW.saturating_sub(preview.len()))]);
        HandshakeError::NoHandshake {
            skipped: self.skipped + rest.len(),
            noise: String::from_utf8_lossy(&preview).trim_end().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            role: Role::Worker,
            worker: Some(WorkerInfo {
                pid: 42,
                host: "node1".into(),
                cwd: "/tmp".into(),
                executable: "/bin/remex-worker".into(),
                platform: "linux-x86_64".into(),
                version: "0.1.0".into(),
                cluster: None,
            }),
            setup: None,
        }
    }

    #[test]
    fn hello_split_at_every_byte_is_found() {
        let mut full = BytesMut::from(&b"Last login: yesterday\r\nhello from bashrc\n"[..]);
        encode_hello(&hello(), &mut full);
        full.extend_from_slice(b"frames follow");
        for cut in 0..full.len() {
            let mut scan = HandshakeScanner::new(1024);
            let mut buf = BytesMut::from(&full[..cut]);
            let mut got = scan.scan(&mut buf).unwrap();
            buf.extend_from_slice(&full[cut..]);
            if got.is_none() {
                got = scan.scan(&mut buf).unwrap();
            }
            assert_eq!(got, Some(hello()), "cut at {cut}");
            assert_eq!(&buf[..], b"frames follow");
            assert!(scan.noise().starts_with("Last login"));
        }
    }

    #[test]
    fn version_mismatch_names_both_versions() {
        let mut buf = BytesMut::new();
        buf.put_slice(&MAGIC);
        buf.put_u16_le(PROTOCOL_VERSION + 1);
        buf.put_u32_le(0);
        let err = HandshakeScanner::new(0).scan(&mut buf).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&PROTOCOL_VERSION.to_string())
                && text.contains(&(PROTOCOL_VERSION + 1).to_string()),
            "{text}"
        );
    }

    #[test]
    fn noise_without_handshake_is_bounded_and_reported() {
        let mut scan = HandshakeScanner::new(100);
        let mut buf = BytesMut::from(&[b'x'; 50][..]);
        assert_eq!(scan.scan(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[b'y'; 60]);
        let err = scan.scan(&mut buf).unwrap_err();
        assert!(
            matches!(err, HandshakeError::TooMuchNoise { max: 100, .. }),
            "{err}"
        );
        let mut scan = HandshakeScanner::new(100);
        let mut buf = BytesMut::from(&b"bash: remex-worker: command not found\n"[..]);
        scan.scan(&mut buf).unwrap();
        assert!(scan
            .eof_error(&buf)
            .to_string()
            .contains("command not found"));
    }

    #[test]
    fn huge_hello_length_is_refused() {
        let mut buf = BytesMut::new();
        buf.put_slice(&MAGIC);
        buf.put_u16_le(PROTOCOL_VERSION);
        buf.put_u32_le(u32::MAX);
        assert!(matches!(
            HandshakeScanner::new(0).scan(&mut buf),
            Err(HandshakeError::BadHello { .. })
        ));
    }
}
