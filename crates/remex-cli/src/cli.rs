//! The command line (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::halt::Halt;

const EXAMPLES: &str = "\
Examples:
  remex run -- gzip -9 {} ::: *.log                 one job per file, one local worker per CPU
  remex run --tx 4*popen --tx ssh=host1 -- gzip -9 {} ::: *.log
  find . -name '*.csv' | remex run --tx ssh=a --tx ssh=b -- wc -l {}
  remex exec --tx ssh=host1 --tx ssh=host2 -b -- uname -r
  remex rsync --tx ssh=host1 --tx ssh=host2 ./data /tmp/data

Workers are gateway specs, as in the library: popen, ssh=[user@]host, cmd=COMMAND,
socket=HOST:PORT, with //key=value options and N*SPEC for N workers. `remex` is its own
worker: ssh hosts get it uploaded (nothing to install).

Documentation: docs/cli.md";

/// Run commands on many workers: local processes, ssh hosts, cluster engines.
#[derive(Debug, Parser)]
#[command(name = "remex", version, after_help = EXAMPLES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a command once per input, spread over the workers (GNU parallel's model).
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Run one command on every worker; output tagged by worker.
    #[command(after_help = EXEC_EXAMPLES)]
    Exec(ExecArgs),
    /// Send a local directory to every worker (only what differs).
    #[command(after_help = RSYNC_EXAMPLES)]
    Rsync(RsyncArgs),
}

const RSYNC_EXAMPLES: &str = "\
Files whose size or mtime differ are sent (equal contents, by SHA-256, get their mtime set
instead); modes and mtimes are kept; links into the tree are re-pointed into DEST.

Examples:
  remex rsync --tx ssh=host1 --tx ssh=host2 ./inputs /tmp/inputs
  remex rsync --txfile hosts.txt --delete --exclude '*.tmp' --exclude .git ./code code

Exit status: 0 when every worker has the tree, 255 otherwise (the error says which).";

const RUN_EXAMPLES: &str = "\
Inputs: arguments after :::, lines of files after :::: (or -a FILE), else lines of stdin.
Several sources combine as a product: ::: a b ::: 1 2 makes a 1, a 2, b 1, b 2.

Replacement strings: {} the input, {.} without extension, {/} basename, {//} dirname,
{/.} basename without extension, {#} the job number, {N} (and {N.} ...) the Nth source's
input. Inputs are shell-quoted. A command without any gets ' {}' appended.

Examples:
  remex run -- gzip -9 {} ::: *.log
  remex run --tx 8*popen --tx ssh=host1 --joblog jobs.tsv -- ./simulate --seed {} ::: $(seq 100)
  remex run --joblog jobs.tsv --resume-failed -- ./simulate --seed {} ::: $(seq 100)
  remex run -k --tag -- 'echo {1}-{2}' ::: a b ::: 1 2
  ls *.png | remex run --halt now,fail=1 --timeout 60 -- convert {} {.}.jpg
  remex run --tx slurm//ntasks=32//time=2:00:00 -- ./simulate --seed {} ::: $(seq 1000)

Exit status: 0 if every job succeeded, else the number of failed jobs (101 means more than
100), 255 for an error before any job ran.";

const EXEC_EXAMPLES: &str = "\
Examples:
  remex exec --tx ssh=host1 --tx ssh=host2 -- uptime
  remex exec --txfile hosts.txt -b -- 'uname -r; nproc'
  remex exec --tx slurm//ntasks=4//nodes=4 -- 'hostname; nproc'

Exit status: 0 if the command succeeded everywhere, else the number of workers where it
failed, 255 for an error before it ran.";

/// Which workers.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// A worker spec; N*SPEC for N workers, slurm//ntasks=N for N Slurm tasks
    /// (repeatable). Default: N*popen, N the CPUs.
    #[arg(long = "tx", value_name = "SPEC")]
    pub(crate) tx: Vec<String>,
    /// A file of worker specs, one per line (# starts a comment).
    #[arg(long = "txfile", value_name = "FILE")]
    pub(crate) txfile: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) workers: WorkerArgs,
    /// Jobs at once on each worker.
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) jobs: u32,
    /// Read inputs from FILE, one per line (repeatable; - is stdin).
    #[arg(short = 'a', long = "arg-file", value_name = "FILE")]
    pub(crate) arg_files: Vec<String>,
    /// Prefix each output line with the job's inputs and a tab.
    #[arg(long)]
    pub(crate) tag: bool,
    /// Print the jobs' output in the order of their inputs.
    #[arg(short = 'k', long = "keep-order")]
    pub(crate) keep_order: bool,
    /// Log each finished job to FILE (GNU parallel's format).
    #[arg(long, value_name = "FILE")]
    pub(crate) joblog: Option<PathBuf>,
    /// Skip the jobs --joblog already holds.
    #[arg(long, requires = "joblog", conflicts_with = "resume_failed")]
    pub(crate) resume: bool,
    /// Skip the jobs --joblog holds as succeeded; run the failed ones again.
    #[arg(long = "resume-failed", requires = "joblog")]
    pub(crate) resume_failed: bool,
    /// Run a failing job up to N times in all.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) retries: u32,
    /// When to stop: never, soon,fail=N, now,fail=N, now,fail=P%, soon,success=N, now,done=N ...
    #[arg(long, value_name = "WHEN", default_value = "never")]
    pub(crate) halt: Halt,
    #[command(flatten)]
    pub(crate) limits: CommandLimits,
    /// No progress bar (there is one by default when stderr is a terminal).
    #[arg(long = "no-bar")]
    pub(crate) no_bar: bool,
    /// Print the commands instead of running them.
    #[arg(long = "dry-run")]
    pub(crate) dry_run: bool,
    /// The command, then its inputs: COMMAND... [::: INPUT...]... [:::: FILE...]...
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub(crate) command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    #[command(flatten)]
    pub(crate) workers: WorkerArgs,
    /// Merge identical outputs: each distinct output once, under the workers that gave it.
    #[arg(short = 'b', long = "merge")]
    pub(crate) merge: bool,
    #[command(flatten)]
    pub(crate) limits: CommandLimits,
    /// The command line (run by sh -c on each worker).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub(crate) command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RsyncArgs {
    #[command(flatten)]
    pub(crate) workers: WorkerArgs,
    /// Remove, on the workers, what SOURCE does not have.
    #[arg(long)]
    pub(crate) delete: bool,
    /// Skip files and directories whose name matches GLOB (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub(crate) exclude: Vec<String>,
    /// No progress bar (there is one by default when stderr is a terminal).
    #[arg(long = "no-bar")]
    pub(crate) no_bar: bool,
    /// The local directory to send.
    pub(crate) source: PathBuf,
    /// The directory on each worker (made if missing; relative to the worker's directory).
    pub(crate) dest: String,
}

/// The bounds of one command (a job of `run`, a worker's command of `exec`).
#[derive(Debug, Args)]
pub(crate) struct CommandLimits {
    /// Seconds a command may run; then SIGTERM, and SIGKILL a second later.
    #[arg(long, value_name = "SECS")]
    pub(crate) timeout: Option<f64>,
    /// The most bytes kept of a command's stdout, and of its stderr; a command writing more is killed.
    #[arg(long = "max-output", value_name = "BYTES", default_value_t = 64 << 20)]
    pub(crate) max_output: u64,
}

impl CommandLimits {
    /// The `run` task's request for `command` under these bounds.
    pub(crate) fn request(&self, command: String) -> remex::worker::CommandRequest {
        remex::worker::CommandRequest {
            timeout: self.timeout,
            max_output: Some(self.max_output),
            ..remex::worker::CommandRequest::new(command)
        }
    }
}
