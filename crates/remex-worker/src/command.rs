//! The built-in `run` task: a shell command to its end on a worker, with
//! its exit status and output, a timeout, and a kill when the task is
//! cancelled. What `remex run` and `remex exec` run on every job.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use remex_core::ChannelRef;
use serde::{Deserialize, Serialize};

use crate::process::{self, RunError};
use crate::task::{Task, TaskError};
use crate::transfer::{Carried, Transfer};

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
    /// The command line, run by `sh -c` (or [`CommandRequest::shell`]).
    pub command: String,
    /// Seconds before the command is sent SIGTERM (its process group),
    /// then SIGKILL a second later.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// The most bytes kept of stdout, and of stderr (default
    /// [`DEFAULT_MAX_OUTPUT`]).
    #[serde(default)]
    pub max_output: Option<u64>,
    /// The directory to run in (default: the worker's), made if missing;
    /// `~` or `~/` at its start is the worker's home directory. An empty
    /// one is refused (`.` is the worker's).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use remex::worker::{CommandOutcome, CommandRequest};
    /// let gw = remex::makegateway("popen").await?;
    /// let mut req = CommandRequest::new("pwd");
    /// req.cwd = Some("".into());
    /// let e = gw.remote_call("run", &req)?.receive::<CommandOutcome>().await.unwrap_err();
    /// assert!(e.to_string().contains("is empty"), "{e}");
    /// req.cwd = Some("/".into());
    /// let out: CommandOutcome = gw.remote_call("run", &req)?.receive().await?;
    /// assert_eq!(&out.stdout[..], b"/\n");
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
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
    /// Feed the command's stdin from this channel as bytes come (a byte
    /// stream; the command reads end of file when the channel's writer
    /// shuts it down) instead of from [`stdin`](Self::stdin). Only for
    /// calls with a channel of their own (`remote_call`).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use tokio::io::AsyncWriteExt;
    /// use remex::worker::{CommandOutcome, CommandRequest};
    /// let gw = remex::makegateway("popen").await?;
    /// let input = gw.newchannel();
    /// let req = CommandRequest { stdin_from: Some(input.handle()), ..CommandRequest::new("wc -l") };
    /// let done = gw.remote_call("run", &req)?;
    /// let mut w = input.async_writer();
    /// for line in ["a\n", "b\n", "c\n"] {
    ///     w.write_all(line.as_bytes()).await?;
    /// }
    /// w.shutdown().await?;
    /// let outcome: CommandOutcome = done.receive().await?;
    /// assert_eq!(String::from_utf8_lossy(&outcome.stdout).trim(), "3");
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    #[serde(default)]
    pub stdin_from: Option<ChannelRef>,
    /// Files written into the command's directory before it and read
    /// back after it ([`Transfer`]).
    #[serde(default)]
    pub transfer: Option<Transfer>,
    /// The shell that runs the command line (`bash`, `/bin/zsh`...;
    /// default `sh`), found on the worker's PATH when it is a bare name.
    #[serde(default)]
    pub shell: Option<String>,
    /// At the timeout: signal names (`TERM`, `INT`, `HUP`, `QUIT`,
    /// `USR1`, `USR2`, `KILL`...) each with the milliseconds to wait for
    /// the end before the next, SIGKILL after the last (GNU parallel's
    /// `--termseq`); empty: SIGTERM, then SIGKILL a second later. When
    /// given, the sequence also ends the command at a cancel (the task
    /// dropped) and when the worker is told to end (which waits for it);
    /// empty: SIGKILL at a cancel, SIGTERM to the worker's process group
    /// at its end.
    #[serde(default)]
    pub termseq: Vec<(String, u64)>,
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
#[non_exhaustive]
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
    /// The files [`Transfer::back`] asked for that were there: (path,
    /// contents).
    #[serde(default)]
    pub files: Vec<(String, Bytes)>,
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

/// A command line of plain words (no quoting, expansion, redirection or
/// assignment: what `sh -c` would run as it is) whose program is found: the
/// program's path and its words (the first its name as written, for its
/// `argv[0]`, as a shell gives it), to run without a shell. One process
/// instead of two: a shell's start is most of a short job's cost.
fn direct(cmd: &str) -> Option<(PathBuf, Vec<&str>)> {
    let plain = |c: char| c == ' ' || c.is_ascii_alphanumeric() || "_-./,+@%^:=".contains(c);
    if !cmd.chars().all(plain) {
        return None;
    }
    let words = cmd.split(' ').filter(|w| !w.is_empty());
    // `NAME=value cmd` is an assignment to sh.
    let prog = words.clone().next().filter(|w| !w.contains('='))?;
    let found =
        |p: &Path| p.is_file() && rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok();
    let path = if prog.contains('/') {
        Some(PathBuf::from(prog)).filter(|p| found(p))
    } else {
        crate::place::var("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(prog))
                .find(|p| found(p))
        })
    }?;
    Some((path, words.collect()))
}

/// A signal by its name, with or without `SIG`.
fn signal(name: &str) -> Result<rustix::process::Signal, TaskError> {
    use rustix::process::Signal;
    Ok(match name.trim_start_matches("SIG") {
        "TERM" => Signal::TERM,
        "INT" => Signal::INT,
        "HUP" => Signal::HUP,
        "QUIT" => Signal::QUIT,
        "KILL" => Signal::KILL,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        "ALRM" => Signal::ALARM,
        "CONT" => Signal::CONT,
        "STOP" => Signal::STOP,
        other => {
            return Err(TaskError(format!(
                "termseq: {other:?} is not a signal name (TERM, INT, HUP, QUIT, KILL, USR1, USR2, ALRM, CONT, STOP)"
            )))
        }
    })
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
    let mut command = match direct(&req.command) {
        Some((prog, words)) => {
            let mut c = crate::place::program(&prog);
            // argv[0] as a shell sets it, the name as written (`cat: x:
            // No such file` in its errors, not `/usr/bin/cat: ...`),
            // unless `nice` runs it.
            if c.get_program() == prog.as_os_str() {
                std::os::unix::process::CommandExt::arg0(&mut c, words[0]);
            }
            c.args(&words[1..]);
            c
        }
        None => {
            let mut c = crate::place::program(req.shell.as_deref().unwrap_or("sh"));
            c.arg("-c").arg(&req.command);
            // bash run with SSH_CLIENT set and a shell level under 2
            // takes itself for sshd's and reads ~/.bashrc (whose output
            // would land in the job's): a worker's commands are a level
            // down from the session that started it.
            let level = crate::place::var("SHLVL").and_then(|l| l.parse::<u32>().ok());
            if level.unwrap_or(0) < 1 {
                c.env("SHLVL", "1");
            }
            c
        }
    };
    let dir = match &req.cwd {
        Some(d) if d.trim().is_empty() => {
            return Err(TaskError(format!(
                "the directory to run {:?} in is empty: name one (. for the worker's own)",
                req.command
            )))
        }
        Some(d) => {
            let home = || crate::place::var("HOME").map(PathBuf::from);
            let dir = match d.strip_prefix('~') {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => match home() {
                    Some(h) => h.join(rest.trim_start_matches('/')),
                    None => crate::place::path(d),
                },
                _ => crate::place::path(d),
            };
            std::fs::create_dir_all(&dir).map_err(|e| {
                TaskError(format!("cannot make the directory {}: {e}", dir.display()))
            })?;
            command.current_dir(&dir);
            Some(dir)
        }
        None => None,
    };
    // Files with the job: into its directory (the worker's own when the
    // request names none; looked up only then, not for every command).
    let carried = match &req.transfer {
        Some(t) => {
            let dir = match &dir {
                Some(d) => d.clone(),
                None => crate::place::cwd()
                    .map_err(|e| TaskError(format!("the worker's directory: {e}")))?,
            };
            Some(Carried::start(t, &dir).map_err(TaskError)?)
        }
        None => None,
    };
    command.envs(req.env.iter().map(|(k, v)| (k, v)));
    let max = req.max_output.unwrap_or(DEFAULT_MAX_OUTPUT);
    let started = SystemTime::now();
    let t0 = Instant::now();
    let termseq = req
        .termseq
        .iter()
        .map(|(name, ms)| Ok((signal(name)?, Duration::from_millis(*ms))))
        .collect::<Result<Vec<_>, TaskError>>()?;
    let done = process::run(process::Run {
        label: req.command.clone(),
        command,
        stdin: req.stdin.map(|b| b.to_vec()),
        stdin_from: req
            .stdin_from
            .map(|r| Box::new(t.channel().attach(r).reader()) as Box<dyn std::io::Read + Send>),
        timeout,
        max_output: max,
        termseq,
        cancel: Some(t.channel().clone()),
        session: Some(t.channel().connection()),
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
    let files = match carried {
        Some(c) => c.finish().map_err(TaskError)?,
        None => Vec::new(),
    };
    Ok(CommandOutcome {
        files,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_command_lines_run_without_a_shell() {
        let (prog, words) = direct("true  a b,c x=1").unwrap();
        assert!(prog.ends_with("true"), "{prog:?}");
        assert_eq!(words, ["true", "a", "b,c", "x=1"]);
        assert_eq!(direct("/bin/sh -e").unwrap().0, PathBuf::from("/bin/sh"));
        // Anything a shell would interpret, an assignment, a builtin or a
        // missing program goes through sh -c.
        for cmd in [
            "echo $HOME",
            "a | b",
            "x > f",
            "echo 'q'",
            "ls *",
            "FOO=1 env",
            "cd /",
            "exit 3",
            "no-such-program-here",
            "echo ~",
        ] {
            assert!(direct(cmd).is_none(), "{cmd}");
        }
    }
}
