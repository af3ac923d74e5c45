//! The built-in `run` task: a shell command to its end on a worker, with
//! its exit status and output, a timeout, and a kill when the task is
//! cancelled. What `remex run` and `remex exec` run on every job.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use remex_core::ChannelRef;
use serde::{Deserialize, Serialize};

use crate::process::{self, RunError};
use crate::task::{Task, TaskError};

/// The most bytes of stdout, and of stderr, a `run` task keeps when its
/// request sets no `max_output`: a command that writes more is killed and
/// its task fails naming the bound.
///
/// ```
/// assert_eq!(remex::worker::DEFAULT_MAX_OUTPUT, 64 << 20);
/// ```
pub const DEFAULT_MAX_OUTPUT: u64 = 64 << 20;

/// The arguments of the built-in `run` task.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use remex::worker::{CommandOutcome, CommandRequest};
/// let gw = remex::makegateway("popen").await?;
/// let req = CommandRequest::new("echo hello; echo oops >&2; exit 3");
/// let out: CommandOutcome = gw.remote_call("run", &req)?.receive().await?;
/// assert_eq!(out.code, Some(3));
/// assert_eq!(&out.stdout[..], b"hello\n");
/// assert_eq!(&out.stderr[..], b"oops\n");
/// assert!(!out.success());
/// gw.exit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandRequest {
    /// The command line, run by `sh -c`.
    pub command: String,
    /// Seconds before the command is sent SIGTERM (its process group),
    /// then SIGKILL a second later.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// The most bytes kept of stdout, and of stderr (default
    /// [`DEFAULT_MAX_OUTPUT`]).
    #[serde(default)]
    pub max_output: Option<u64>,
    /// The directory to run in (default: the worker's).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Environment variables to set.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Bytes for the command's stdin (default: none, stdin is /dev/null).
    #[serde(default)]
    pub stdin: Option<Bytes>,
    /// Stream stdout into this channel as it comes (a byte stream, closed
    /// at the command's end; read it with [`remex::Channel::async_reader`])
    /// instead of returning it in [`CommandOutcome::stdout`]. Only for
    /// calls with a channel of their own (`remote_call`), not for the
    /// pool's tasks.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use tokio::io::AsyncBufReadExt;
    /// use remex::worker::{CommandOutcome, CommandRequest};
    /// let gw = remex::makegateway("popen").await?;
    /// let out = gw.newchannel();
    /// let req = CommandRequest { stdout_to: Some(out.handle()), ..CommandRequest::new("seq 3") };
    /// let done = gw.remote_call("run", &req)?;
    /// let mut lines = out.async_reader().lines();
    /// while let Some(line) = lines.next_line().await? {
    ///     println!("as it comes: {line}");
    /// }
    /// let outcome: CommandOutcome = done.receive().await?;
    /// assert!(outcome.success() && outcome.stdout.is_empty());
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// [`remex::Channel::async_reader`]: remex_core::Channel::async_reader
    #[serde(default)]
    pub stdout_to: Option<ChannelRef>,
}

impl CommandRequest {
    /// A request to run `command` with the defaults.
    ///
    /// ```
    /// let r = remex::worker::CommandRequest::new("true");
    /// assert_eq!(r.command, "true");
    /// assert_eq!(r.timeout, None);
    /// ```
    pub fn new(command: impl Into<String>) -> CommandRequest {
        CommandRequest {
            command: command.into(),
            ..CommandRequest::default()
        }
    }
}

/// What the built-in `run` task returns: how the command ended, its
/// output, and when and where it ran.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use remex::worker::{CommandOutcome, CommandRequest};
/// let gw = remex::makegateway("popen").await?;
/// let req = CommandRequest { timeout: Some(0.2), ..CommandRequest::new("sleep 30") };
/// let out: CommandOutcome = gw.remote_call("run", &req)?.receive().await?;
/// assert!(out.timed_out);
/// assert_eq!(out.signal, Some(15)); // SIGTERM
/// assert!(out.seconds < 5.0);
/// gw.exit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// The exit code, if the command exited.
    pub code: Option<i32>,
    /// The signal that ended the command, if one did.
    pub signal: Option<i32>,
    /// Whether the timeout ended it.
    pub timed_out: bool,
    /// Its stdout.
    pub stdout: Bytes,
    /// Its stderr.
    pub stderr: Bytes,
    /// When it started, in seconds since the Unix epoch.
    pub started: f64,
    /// How long it ran, in seconds.
    pub seconds: f64,
    /// The name of the host it ran on.
    pub host: String,
}

impl CommandOutcome {
    /// Exited with code 0 (and not at the timeout).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use remex::worker::{CommandOutcome, CommandRequest};
    /// let gw = remex::makegateway("popen").await?;
    /// let out: CommandOutcome = gw.remote_call("run", &CommandRequest::new("true"))?.receive().await?;
    /// assert!(out.success());
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
}

/// The `run` task.
pub(crate) fn run(t: &Task) -> Result<CommandOutcome, TaskError> {
    use std::os::unix::process::ExitStatusExt;
    let req: CommandRequest = t.args()?;
    let timeout = req
        .timeout
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .map_err(|_| TaskError(format!("timeout must be seconds >= 0, got {s}")))
        })
        .transpose()?;
    let mut command = Command::new("sh");
    command.arg("-c").arg(&req.command);
    if let Some(dir) = &req.cwd {
        command.current_dir(dir);
    }
    command.envs(req.env.iter().map(|(k, v)| (k, v)));
    let max = req.max_output.unwrap_or(DEFAULT_MAX_OUTPUT);
    let started = SystemTime::now();
    let t0 = Instant::now();
    let done = process::run(process::Run {
        label: req.command.clone(),
        command,
        stdin: req.stdin.map(|b| b.to_vec()),
        timeout,
        max_output: max,
        cancel: Some(t.channel().clone()),
        stdout_to: req
            .stdout_to
            .map(|r| Box::new(t.channel().attach(r).writer()) as Box<dyn std::io::Write + Send>),
    })
    .map_err(|e| match e {
        RunError::Spawn(m) | RunError::Wait(m) => TaskError(m),
        RunError::TooLarge(which) => TaskError(format!(
            "the {which} of {:?} is larger than max_output={max} bytes; it was killed",
            req.command
        )),
        RunError::Cancelled => TaskError(format!("{:?} was cancelled", req.command)),
    })?;
    Ok(CommandOutcome {
        code: done.status.code(),
        signal: done.status.signal(),
        timed_out: done.timed_out,
        stdout: done.stdout.into(),
        stderr: done.stderr.into(),
        started: started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        seconds: t0.elapsed().as_secs_f64(),
        host: process::hostname(),
    })
}
