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
    /// Log events (the workers' included, under the job that ran them) on
    /// stderr as text or as one JSON object per line; the level comes
    /// from RUST_LOG (default: warn). Without it, workers' log lines are
    /// printed tagged [worker].
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
}

/// How `--log-format` writes log events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per line: timestamp, level, target, fields, spans.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a command once per input, spread over the workers (GNU parallel's model).
    // An option given twice: the last one counts, as in GNU parallel
    // (repeatable ones, such as --tx, add up).
    #[command(after_help = RUN_EXAMPLES, args_override_self = true)]
    Run(Box<RunArgs>),
    /// Run one command on every worker; output tagged by worker.
    // Long options may be shortened to an unambiguous start, as run's.
    #[command(after_help = EXEC_EXAMPLES, infer_long_args = true)]
    Exec(ExecArgs),
    /// Send a local directory to every worker (only what differs).
    #[command(after_help = RSYNC_EXAMPLES, infer_long_args = true)]
    Rsync(RsyncArgs),
    /// Print the completion script for SHELL.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (remex.1 and remex-SUBCOMMAND.1) into DIR.
    Manpages {
        /// Where to write them (made if missing).
        dir: PathBuf,
    },
}

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  remex completions bash > ~/.local/share/bash-completion/completions/remex
  remex completions zsh > ~/.zfunc/_remex        (with fpath+=~/.zfunc before compinit)
  remex completions fish > ~/.config/fish/completions/remex.fish";

/// Writes the man pages of `remex` and of each subcommand into `dir`;
/// returns their paths.
pub(crate) fn manpages(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    let mut pages = vec![("remex".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("remex-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    let mut written = Vec::new();
    for (name, page) in pages {
        let mut buf = Vec::new();
        clap_mangen::Man::new(page).render(&mut buf)?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, buf)?;
        written.push(path);
    }
    Ok(written)
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

Several sources combine side by side with --link (or :::+ / ::::+ for one source).

Replacement strings: {} the input, {.} without extension, {/} basename, {//} dirname,
{/.} basename without extension, {#} the job number, {##} the number of jobs, {N} (and
{N.} ...) the Nth argument (source, or column with --colsep), {name} a column named by
--header :. Inputs are shell-quoted. A command without any of them gets ' {}' appended;
without a command, each input is one.

Examples:
  remex run -- gzip -9 {} ::: *.log
  remex run --tx 8*popen --tx ssh=host1 --joblog jobs.tsv -- ./simulate --seed {} ::: $(seq 100)
  remex run --joblog jobs.tsv --resume-failed -- ./simulate --seed {} ::: $(seq 100)
  remex run -k --tag -- 'echo {1}-{2}' ::: a b ::: 1 2
  remex run -k --link echo ::: A B C ::: D E F
  remex run -k --colsep , --header : echo {name} is {age} :::: people.csv
  find . -name '*.txt' -print0 | remex run -0 wc -l
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
    /// GNU parallel's sshlogins (repeatable; several separated by , or a
    /// newline): HOST or USER@HOST is --tx ssh=HOST, N/HOST is N workers
    /// there, : is this machine.
    #[arg(short = 'S', long = "sshlogin", value_name = "SSHLOGIN")]
    pub(crate) sshlogin: Vec<String>,
    /// The ssh command for -S hosts (GNU parallel's --ssh): remex runs
    /// ssh itself, so only ssh is taken (any path), without arguments.
    #[arg(long = "ssh", value_name = "CMD")]
    pub(crate) ssh: Option<String>,
    /// A file of sshlogins, one per line (GNU parallel's --sshloginfile).
    #[arg(long = "sshloginfile", visible_alias = "slf", value_name = "FILE")]
    pub(crate) sshloginfile: Vec<PathBuf>,
    /// Leave out the hosts (specs) whose workers cannot start, saying
    /// why, and run on the rest (GNU parallel's --filter-hosts). Without
    /// it, one that cannot start ends the run before any job.
    #[arg(long = "filter-hosts", aliases = ["filterhosts", "filter-host"])]
    pub(crate) filter_hosts: bool,
    /// Serve a live dashboard (and Prometheus /metrics) on ADDR while it
    /// runs: HOST:PORT, or a port alone for loopback.
    #[arg(long, value_name = "ADDR")]
    pub(crate) dashboard: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) workers: WorkerArgs,
    /// Jobs at once: N, N% of the CPUs, +N or -N CPUs, 0 as many as
    /// possible (GNU parallel's forms). Without --tx, for this machine
    /// (default 100%: one per CPU); with --tx, on each worker (default 1).
    #[arg(short = 'j', long = "jobs", visible_alias = "max-procs", short_alias = 'P',
          alias = "maxprocs", value_name = "N", value_parser = crate::slots::Jobs::parse,
          allow_negative_numbers = true)]
    pub(crate) jobs: Option<crate::slots::Jobs>,
    /// Count CPUs rather than cores for -j (GNU parallel's option; remex
    /// counts the CPUs the system offers either way).
    #[arg(long = "use-cpus-instead-of-cores", hide = true, aliases = [
        "usecpusinsteadofcores",
        "use-cores-instead-of-threads",
        "usecoresinsteadofthreads",
        "use-sockets-instead-of-threads",
        "usesocketsinsteadofthreads",
    ])]
    pub(crate) use_cpus: bool,
    /// Read inputs from FILE, one per line (repeatable; - is stdin).
    #[arg(short = 'a', long = "arg-file", alias = "argfile", value_name = "FILE")]
    pub(crate) arg_files: Vec<String>,
    /// Prefix each output line with the job's inputs and a tab.
    #[arg(long)]
    pub(crate) tag: bool,
    /// Colour each job's output lines (tag included), a colour per job
    /// from GNU parallel's palette; not with -u.
    #[arg(long, visible_alias = "colour")]
    pub(crate) color: bool,
    /// --tag in colour (--tag --color).
    #[arg(long)]
    pub(crate) ctag: bool,
    /// --tagstring STR in colour (--tagstring STR --color).
    #[arg(long, alias = "ctag-string", value_name = "STR")]
    pub(crate) ctagstring: Option<String>,
    /// Colour the output lines of jobs that failed: white on red.
    #[arg(
        long = "colorfailed",
        visible_alias = "cf",
        aliases = ["color-failed", "colour-failed", "colourfailed", "color-fail", "colour-fail", "colorfail", "colourfail"]
    )]
    pub(crate) color_failed: bool,
    /// Print the jobs' output in the order of their inputs.
    #[arg(
        short = 'k',
        long = "keep-order",
        alias = "keeporder",
        overrides_with = "no_keep_order"
    )]
    pub(crate) keep_order: bool,
    /// Undoes an earlier -k (GNU parallel's --no-keep-order).
    #[arg(long = "no-keep-order", aliases = ["nokeeporder", "nok", "no-k"], hide = true,
          overrides_with = "keep_order")]
    pub(crate) no_keep_order: bool,
    /// Log each finished job to FILE (GNU parallel's format).
    #[arg(long, alias = "jl", value_name = "FILE")]
    pub(crate) joblog: Option<PathBuf>,
    /// Skip the jobs --joblog already holds, or, without --joblog, those
    /// whose --results DIR files are there (as GNU parallel). With
    /// --resume-failed or --retry-failed, theirs wins (GNU parallel's).
    #[arg(long)]
    pub(crate) resume: bool,
    /// Skip the jobs --joblog holds as succeeded; run the failed ones again.
    #[arg(long = "resume-failed", alias = "resumefailed", requires = "joblog")]
    pub(crate) resume_failed: bool,
    /// Run the jobs --joblog holds as failed again, with the commands it
    /// holds (the command line and inputs are not used).
    #[arg(long = "retry-failed", alias = "retryfailed", requires = "joblog")]
    pub(crate) retry_failed: bool,
    /// Run a failing job up to N times in all (0 or less: once, as in GNU
    /// parallel).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = retries,
          allow_negative_numbers = true)]
    pub(crate) retries: u32,
    /// When to stop: never, soon,fail=N, now,fail=N, now,fail=P%, soon,success=N, now,done=N ...
    #[arg(long, aliases = ["halt-on-error", "haltonerror"], value_name = "WHEN",
          default_value = "never")]
    pub(crate) halt: Halt,
    #[command(flatten)]
    pub(crate) limits: CommandLimits,
    /// No progress bar (there is one by default when stderr is a terminal).
    #[arg(long = "no-bar")]
    pub(crate) no_bar: bool,
    /// Print the commands instead of running them.
    #[arg(long = "dry-run", visible_alias = "dryrun", alias = "dr")]
    pub(crate) dry_run: bool,
    /// Take the sources side by side (a shorter one wraps around), not
    /// their product; `:::+` links one source to the one before, `::::+`
    /// each of its files.
    #[arg(long, visible_alias = "xapply")]
    pub(crate) link: bool,
    /// Inputs end at this character, not at a newline (\n, \t, \0, \\ or one character).
    #[arg(short = 'd', long = "delimiter", value_name = "CHAR", 
          value_parser = crate::jobs::delimiter)]
    pub(crate) delimiter: Option<u8>,
    /// Inputs end at a NUL byte (find -print0).
    #[arg(short = '0', long = "null")]
    pub(crate) null: bool,
    /// An input equal to STR ends its source.
    #[arg(short = 'E', long = "eof", value_name = "STR")]
    pub(crate) eof: Option<String>,
    /// Remove blanks from inputs (each column): l (left), r (right), lr
    /// (both), n (none). Default: n, or lr with --colsep (GNU parallel's).
    #[arg(long, value_name = "WHICH")]
    pub(crate) trim: Option<crate::jobs::Trim>,
    /// Split each input into columns at REGEX: {1}, {2}... are the columns.
    #[arg(short = 'C', long = "colsep", alias = "col-sep", value_name = "REGEX")]
    pub(crate) colsep: Option<String>,
    /// Inputs are CSV records: columns at commas (or --colsep's one
    /// character), a quoted field whole ("" a quote), a record going on
    /// past a newline inside quotes (GNU parallel's --csv).
    #[arg(long)]
    pub(crate) csv: bool,
    /// Each source's first input names its columns: {name} (and {name.}
    /// ...) in the command (any value but 0, as GNU parallel; with
    /// --pipe, RE or N lines go before every block); files name their
    /// inputs too: {FILE}.
    #[arg(long, value_name = ":")]
    pub(crate) header: Option<String>,
    /// K inputs per job ({1}..{K}; a word holding {} repeated for each
    /// input, as with -X); -N0: one input per job, given to none. (A
    /// negative K is one input per job, as in GNU parallel.)
    #[arg(short = 'N', long = "max-replace-args", alias = "maxreplaceargs", value_name = "K",
          value_parser = max_args, allow_negative_numbers = true)]
    pub(crate) max_args: Option<usize>,
    /// K inputs per job, as -N K but {} is all of them in one word (-N
    /// wins over it).
    #[arg(short = 'n', long = "max-args", alias = "maxargs", value_name = "K",
          value_parser = max_args, allow_negative_numbers = true)]
    pub(crate) max_args_plain: Option<usize>,
    /// At most N input lines per job (xargs' and GNU parallel's -L): as
    /// -N N (-N and -n win over it), and a line ending in a blank is
    /// continued by the next.
    #[arg(short = 'L', value_name = "N", value_parser = max_lines)]
    pub(crate) lines: Option<usize>,
    /// As -L, N 1 when no number follows, and as -n, not -N (GNU
    /// parallel's -l and --max-lines).
    #[arg(short = 'l', long = "max-lines", alias = "maxlines", value_name = "N",
          num_args = 0..=1, default_missing_value = crate::abbrev::MAX_LINES_LEFT_OUT, value_parser = max_lines)]
    pub(crate) max_lines: Option<usize>,
    /// STR stands for {} in the command.
    #[arg(short = 'I', long = "replace", value_name = "STR")]
    pub(crate) replace: Option<String>,
    /// STR stands for {.} (the input without its extension).
    #[arg(long = "extensionreplace", visible_alias = "er", value_name = "STR")]
    pub(crate) extension_replace: Option<String>,
    /// STR stands for {/} (the input's basename).
    #[arg(long = "basenamereplace", visible_alias = "bnr", value_name = "STR")]
    pub(crate) basename_replace: Option<String>,
    /// STR stands for {//} (the input's directory).
    #[arg(long = "dirnamereplace", visible_alias = "dnr", value_name = "STR")]
    pub(crate) dirname_replace: Option<String>,
    /// STR stands for {/.} (the basename without its extension).
    #[arg(
        long = "basenameextensionreplace",
        visible_alias = "bner",
        value_name = "STR"
    )]
    pub(crate) basename_extension_replace: Option<String>,
    /// STR stands for {#} (the job's number).
    #[arg(long = "seqreplace", value_name = "STR")]
    pub(crate) seq_replace: Option<String>,
    /// STR stands for {%} (the job's slot).
    #[arg(long = "slotreplace", value_name = "STR")]
    pub(crate) slot_replace: Option<String>,
    /// The number of jobs, for {##}, the progress bar and --halt's
    /// percentages, instead of reading every input first (GNU parallel's
    /// --total-jobs).
    #[arg(long = "total-jobs", aliases = ["totaljobs", "total"], value_name = "N")]
    pub(crate) total_jobs: Option<u64>,
    /// Set the variable NAME of each job to its slot less one (from 0;
    /// GNU parallel's --process-slot-var; {%} and $PARALLEL_JOBSLOT
    /// count from 1).
    #[arg(
        long = "process-slot-var",
        alias = "processslotvar",
        value_name = "NAME"
    )]
    pub(crate) process_slot_var: Option<String>,
    /// STR instead of ::: before arguments.
    #[arg(
        long = "arg-sep",
        alias = "argsep",
        value_name = "STR",
        default_value = ":::"
    )]
    pub(crate) arg_sep: String,
    /// STR instead of :::: before files of arguments.
    #[arg(
        long = "arg-file-sep",
        alias = "argfilesep",
        value_name = "STR",
        default_value = "::::"
    )]
    pub(crate) arg_file_sep: String,
    /// Keep each job's output in files instead of printing it:
    /// DIR/1/ARG/stdout, stderr and seq (a directory level per argument;
    /// with --header its name), or one record per job in DIR.csv, .tsv
    /// or .json, as GNU parallel does.
    #[arg(
        long,
        visible_alias = "res",
        alias = "result",
        value_name = "DIR",
        allow_hyphen_values = true
    )]
    pub(crate) results: Option<PathBuf>,
    /// Cut stdin (or -a FILE) into blocks of whole records and give each
    /// job one on its stdin, instead of inputs on its command line (GNU
    /// parallel's --pipe).
    #[arg(long, alias = "spreadstdin")]
    pub(crate) pipe: bool,
    /// --pipe from parts of a file (-a FILE), found by seeking at record
    /// boundaries about --block bytes apart, each read when its job
    /// starts (GNU parallel's --pipepart).
    #[arg(long = "pipepart", alias = "pipe-part")]
    pub(crate) pipepart: bool,
    /// --pipe with at most one job per slot, each fed the blocks it takes
    /// on its stdin as they come, instead of a job per block (GNU
    /// parallel's --roundrobin).
    #[arg(long = "roundrobin", aliases = ["round-robin", "round"], conflicts_with = "tee")]
    pub(crate) roundrobin: bool,
    /// --pipe with one job per slot, each record (line) to the job its
    /// column COL's value hashes to: the same value, the same job (GNU
    /// parallel's --shard; COL a number, or a name the first line
    /// gives; --colsep, else a comma).
    #[arg(long, value_name = "COL", conflicts_with_all = ["tee", "roundrobin"])]
    pub(crate) shard: Option<String>,
    /// --pipe with one job per slot, each record (line) to job (value of
    /// column COL) mod the slots, the remainder 0 to the last (GNU
    /// parallel's --bin; COL a number or a name, as --shard's).
    #[arg(long, value_name = "COL", conflicts_with_all = ["tee", "roundrobin", "shard"])]
    pub(crate) bin: Option<String>,
    /// With --pipe: consecutive lines whose column COL holds the same
    /// value make one record, so a block (with -N1 a job) gets whole
    /// groups; COL is a number, or a name that the first line gives (it
    /// then goes before every block); columns split at --colsep, else a
    /// tab (GNU parallel's --group-by, without Perl expressions).
    #[arg(long = "group-by", alias = "groupby", value_name = "COL",
          conflicts_with_all = ["tee", "shard", "bin", "pipepart"])]
    pub(crate) group_by: Option<String>,
    /// With --pipe: when a block is not read whole within DURATION (at
    /// least 1s; 10s, 1m...), the whole records read so far are a block
    /// (GNU parallel's --block-timeout; for input that trickles in).
    #[arg(long = "block-timeout", aliases = ["blocktimeout", "bt"], value_name = "DURATION",
          value_parser = block_timeout)]
    pub(crate) block_timeout: Option<std::time::Duration>,
    /// Leave out the first line of the input: stdin with --pipe, each
    /// file with --pipepart, else the first source of inputs (GNU
    /// parallel's --skip-first-line).
    #[arg(long = "skip-first-line", alias = "skipfirstline")]
    pub(crate) skip_first_line: bool,
    /// With --pipe: every job gets all of stdin (at most 256 MiB, read
    /// before the first job), the jobs made from the ::: or :::: inputs
    /// (GNU parallel's --tee).
    #[arg(long, conflicts_with_all = ["cat", "fifo", "pipepart"])]
    pub(crate) tee: bool,
    /// --pipe's block: at most SIZE bytes of whole records (one longer
    /// record whole); K, M, G are 1024s, k, m, g 1000s (default 1M).
    /// With --pipepart, about SIZE bytes each, or -N: N parts per job
    /// slot (default -10).
    #[arg(long = "block", aliases = ["block-size", "blocksize"], value_name = "SIZE",
          value_parser = block_size, allow_hyphen_values = true)]
    pub(crate) block: Option<i64>,
    /// --pipe's record end (default a newline, or nothing with
    /// --recstart alone; GNU parallel's escapes).
    #[arg(long, value_name = "STR")]
    pub(crate) recend: Option<String>,
    /// --pipe's record start (default nothing).
    #[arg(long, value_name = "STR")]
    pub(crate) recstart: Option<String>,
    /// --recend and --recstart are regular expressions.
    #[arg(long, alias = "regex")]
    pub(crate) regexp: bool,
    /// Take --recend and --recstart out of each block (GNU parallel's
    /// --rrs).
    #[arg(long = "remove-rec-sep", aliases = ["removerecsep", "rrs"])]
    pub(crate) remove_rec_sep: bool,
    /// --pipe, with each job's block in a temporary file on the job's
    /// host, named by {} ($PARALLEL_TMP) and removed after the job (GNU
    /// parallel's --cat).
    #[arg(long, conflicts_with = "fifo")]
    pub(crate) cat: bool,
    /// --pipe, with each job's block flowing through a named pipe on the
    /// job's host, named by {} ($PARALLEL_TMP), which the command must
    /// read (GNU parallel's --fifo).
    #[arg(long)]
    pub(crate) fifo: bool,
    /// Run no job for an input that is empty or only blanks.
    #[arg(short = 'r', long = "no-run-if-empty", alias = "norunifempty")]
    pub(crate) no_run_if_empty: bool,
    /// An input ending in @G1+G2 runs only on the workers of host groups
    /// G1 or G2 (-S @G1/host), without that ending (GNU parallel's
    /// --hostgroups).
    #[arg(long = "hostgroups", visible_aliases = ["hostgroup", "hgrp"], alias = "hostgrp")]
    pub(crate) hostgroups: bool,
    /// Print each job's command line on stdout as the first line of its
    /// output (GNU parallel's -v: tagged with it, in --results' files,
    /// counted in the job log's Receive).
    #[arg(short = 'v')]
    pub(crate) verbose: bool,
    /// Print each job's command line on stderr as it starts (GNU
    /// parallel's --verbose and -t).
    #[arg(short = 't', long = "verbose")]
    pub(crate) trace: bool,
    /// Print no job's command line: the default (GNU parallel's
    /// --silent; it wins over -v, wherever either stands, as there).
    #[arg(long, hide = true)]
    pub(crate) silent: bool,
    /// GNU parallel's citation notice, which remex does not print:
    /// accepted and without effect (--will-cite, --no-notice, --nn).
    #[arg(long = "will-cite", aliases = ["willcite", "nn", "nonotice", "no-notice"], hide = true)]
    pub(crate) will_cite: bool,
    /// Where GNU parallel keeps the jobs' output while they run: remex
    /// keeps it in memory (each job's bounded by --max-output), so DIR is
    /// accepted and not used.
    #[arg(long, alias = "tempdir", value_name = "DIR", hide = true)]
    pub(crate) tmpdir: Option<PathBuf>,
    /// Send FILE (replacement strings filled in, e.g. {}) with each job
    /// into its directory on the worker (GNU parallel's --transferfile;
    /// repeatable). Not moved where a job runs in this directory.
    #[arg(long = "transferfile", visible_alias = "tf",
          aliases = ["transfer-file", "transfer-files", "transferfiles"], value_name = "FILE")]
    pub(crate) transferfile: Vec<String>,
    /// --transferfile {}.
    #[arg(long)]
    pub(crate) transfer: bool,
    /// Bring FILE (replacement strings filled in) back from each job's
    /// directory to here after it (repeatable).
    #[arg(long = "return", value_name = "FILE")]
    pub(crate) returns: Vec<String>,
    /// Remove the sent and returned files (and --basefile's after the
    /// last job) on the workers.
    #[arg(long)]
    pub(crate) cleanup: bool,
    /// --transferfile {} --return FILE --cleanup.
    #[arg(long, value_name = "FILE")]
    pub(crate) trc: Vec<String>,
    /// Send FILE to every worker before the first job (repeatable).
    #[arg(long = "basefile", visible_alias = "bf", value_name = "FILE")]
    pub(crate) basefile: Vec<String>,
    /// Print each job's stdout line by line while it runs (lines of
    /// different jobs never mix; stderr at the job's end; with -k, the
    /// oldest job's lines as they come and the others' at their turn).
    #[arg(long = "line-buffer", visible_aliases = ["linebuffer", "lb"],
          aliases = ["line-buffered", "linebuffered"],
          conflicts_with_all = ["ungroup", "results"])]
    pub(crate) line_buffer: bool,
    /// Print each job's stdout as it comes (lines of different jobs may
    /// mix; stderr at the job's end; -k, --tag and --tagstring are
    /// ignored, as in GNU parallel).
    #[arg(short = 'u', long, conflicts_with = "results")]
    pub(crate) ungroup: bool,
    /// Each job's output together, at its end: the default (GNU
    /// parallel's --group; with -u an error, as there).
    #[arg(long, hide = true, conflicts_with = "ungroup")]
    pub(crate) group: bool,
    /// At a timeout: SIGNAL,MS,SIGNAL,MS... each signal, then up to MS
    /// milliseconds for the job's end, SIGKILL after the last (default:
    /// TERM,1000).
    #[arg(long, alias = "term-seq", value_name = "SEQ", value_parser = termseq)]
    pub(crate) termseq: Option<TermSeq>,
    /// Each job on every worker, in order (GNU parallel's --onall).
    #[arg(long, conflicts_with = "nonall")]
    pub(crate) onall: bool,
    /// The command once on every worker, with no inputs (--nonall).
    #[arg(long)]
    pub(crate) nonall: bool,
    /// Copy this variable (or bash function) of this shell to every job
    /// (repeatable).
    #[arg(long, value_name = "NAME")]
    pub(crate) env: Vec<String>,
    /// Run the jobs in DIR (made if missing; relative to the worker's
    /// directory, for ssh the login directory); `.`: this directory, as a
    /// path from home when it is under it.
    #[arg(long, visible_alias = "wd", alias = "work-dir", value_name = "DIR")]
    pub(crate) workdir: Option<String>,
    /// Seconds between ssh starts (GNU parallel's --sshdelay): remex
    /// opens one ssh connection per worker at the start; accepted.
    #[arg(
        long,
        alias = "ssh-delay",
        value_name = "SECS",
        hide = true,
        allow_negative_numbers = true
    )]
    pub(crate) sshdelay: Option<f64>,
    /// Share ssh connections (GNU parallel's --controlmaster): remex
    /// keeps one connection per worker for all its jobs; accepted.
    #[arg(short = 'M', long = "controlmaster", hide = true)]
    pub(crate) controlmaster: bool,
    /// Run the commands with this niceness (nice -n N).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub(crate) nice: Option<i32>,
    /// A progress bar with the jobs done, their rate and an ETA (GNU
    /// parallel's --bar, and its --eta and --progress, whose figures the
    /// bar shows); remex draws one by default when stderr is a terminal,
    /// and none with --no-bar.
    #[arg(long, visible_aliases = ["eta", "progress"])]
    pub(crate) bar: bool,
    /// Each word of the command is one word for the shell (replacement strings filled in, then quoted).
    #[arg(short = 'q', long = "quote")]
    pub(crate) quote: bool,
    /// Prefix each output line with STR (replacement strings filled in) and a tab.
    #[arg(long, alias = "tag-string", value_name = "STR")]
    pub(crate) tagstring: Option<String>,
    /// Several inputs per job, shared evenly among the slots ({} is all of a job's inputs).
    #[arg(short = 'm')]
    pub(crate) multiple: bool,
    /// As many inputs per job as fit on its command line (-s), jobs
    /// filled one after the other (GNU parallel's --xargs).
    #[arg(long, conflicts_with_all = ["multiple", "context"])]
    pub(crate) xargs: bool,
    /// The most characters of a job's command line for -m, -X and
    /// --xargs (default: GNU parallel's, 63,664 on Linux with 4 KiB
    /// pages).
    #[arg(
        short = 's',
        long = "max-chars",
        alias = "maxchars",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub(crate) max_chars: Option<usize>,
    /// As -m, and each word that holds {} is repeated for each input (context replace).
    #[arg(short = 'X')]
    pub(crate) context: bool,
    /// Run the jobs in a random order ({#} numbers them in that order).
    #[arg(long)]
    pub(crate) shuf: bool,
    /// GNU parallel's extra replacement strings: {+/} {+.} {+..} {+...}
    /// {..} {...} {/..} {/...} ({##} is always on).
    #[arg(long)]
    pub(crate) plus: bool,
    /// Wait this long between the starts of two jobs: seconds (0.5) or
    /// with a unit (500ms, 2s, 1m, 1h); a negative number is no wait, as
    /// in GNU parallel.
    #[arg(long, value_name = "DURATION", value_parser = delay,
          allow_negative_numbers = true)]
    pub(crate) delay: Option<std::time::Duration>,
    /// The command, then its inputs: COMMAND... [::: INPUT...]... [:::: FILE...]...
    /// (from its first word on, everything is the command's; a command
    /// that starts with - comes after --)
    /// Without a command, each input is one.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
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
    /// The command line (run by sh -c on each worker); from its first word
    /// on, everything is the command's.
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
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
    /// Seconds a command may run; then SIGTERM, and SIGKILL a second
    /// later. For remex run also N%: N% of the median run time of the jobs
    /// finished so far (GNU parallel's form).
    #[arg(long, value_name = "SECS", value_parser = timeout, allow_hyphen_values = true)]
    pub(crate) timeout: Option<Timeout>,
    /// The most bytes kept of a command's stdout, and of its stderr; a command writing more is killed.
    #[arg(long = "max-output", value_name = "BYTES", default_value_t = 64 << 20)]
    pub(crate) max_output: u64,
}

impl CommandLimits {
    /// The `run` task's request for `command` under these bounds.
    pub(crate) fn request(&self, command: String) -> remex::worker::CommandRequest {
        remex::worker::CommandRequest {
            timeout: match self.timeout {
                Some(Timeout::Secs(s)) => Some(s),
                _ => None,
            },
            max_output: Some(self.max_output),
            ..remex::worker::CommandRequest::new(command)
        }
    }
}

/// `--timeout`'s value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Timeout {
    /// Seconds.
    Secs(f64),
    /// A percentage of the median run time of the jobs finished so far.
    Percent(f64),
}

/// `--termseq`'s value: signals, each with the milliseconds to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TermSeq(pub(crate) Vec<(String, u64)>);

impl TermSeq {
    /// GNU parallel's default: `TERM,200,TERM,100,TERM,50,KILL,25`.
    pub(crate) fn gnu() -> TermSeq {
        TermSeq(
            [("TERM", 200), ("TERM", 100), ("TERM", 50), ("KILL", 25)]
                .map(|(s, ms)| (s.to_string(), ms))
                .to_vec(),
        )
    }

    /// How long the whole sequence may take.
    pub(crate) fn total(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.iter().map(|(_, ms)| ms).sum())
    }
}

/// `--termseq`'s value: `SIGNAL,MS,SIGNAL,MS...` (GNU parallel's form:
/// at a timeout, `--halt now` or Ctrl-C each signal, then up to MS
/// milliseconds for the end).
pub(crate) fn termseq(s: &str) -> Result<TermSeq, String> {
    const NAMES: &[&str] = &[
        "TERM", "INT", "HUP", "QUIT", "KILL", "USR1", "USR2", "ALRM", "CONT", "STOP",
    ];
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() % 2 != 0 {
        return Err(format!(
            "--termseq {s:?}: give pairs SIGNAL,MS (TERM,200,KILL,25)"
        ));
    }
    parts
        .chunks(2)
        .map(|p| {
            let name = p[0].trim_start_matches("SIG");
            if !NAMES.contains(&name) {
                return Err(format!(
                    "--termseq: {:?} is not one of {}",
                    p[0],
                    NAMES.join(", ")
                ));
            }
            let ms = p[1]
                .parse::<u64>()
                .map_err(|_| format!("--termseq: {:?} is not milliseconds", p[1]))?;
            Ok((name.to_string(), ms))
        })
        .collect::<Result<_, _>>()
        .map(TermSeq)
}

fn timeout(s: &str) -> Result<Timeout, String> {
    let bad = || format!("--timeout takes seconds (2.5) or N% of the median job, not {s:?}");
    let num = |t: &str| {
        t.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(bad)
    };
    match s.strip_suffix('%') {
        Some(p) => Ok(Timeout::Percent(num(p)?)),
        None => Ok(Timeout::Secs(num(s)?)),
    }
}

/// `-N`'s value: a whole number; a negative one is one input per job
/// (GNU parallel runs `-N -1` as `-N 1`).
fn max_args(s: &str) -> Result<usize, String> {
    let n =
        whole(s).ok_or_else(|| format!("-N takes a whole number of inputs per job, not {s:?}"))?;
    Ok(if n < 0 { 1 } else { n as usize })
}

impl RunArgs {
    /// `-I` and the like: (what stands for, the string it renames).
    pub(crate) fn renames(&self) -> Vec<(String, &'static str)> {
        [
            (&self.replace, "{}"),
            (&self.extension_replace, "{.}"),
            (&self.basename_replace, "{/}"),
            (&self.dirname_replace, "{//}"),
            (&self.basename_extension_replace, "{/.}"),
            (&self.seq_replace, "{#}"),
            (&self.slot_replace, "{%}"),
        ]
        .into_iter()
        .filter_map(|(from, to)| Some((from.clone()?, to)))
        .collect()
    }
}

/// `-L`'s and `-l`'s value: a whole number of lines; 0 is 1 (GNU
/// parallel's).
fn max_lines(s: &str) -> Result<usize, String> {
    let n = s
        .trim()
        .parse::<usize>()
        .map_err(|_| format!("-L and -l take a whole number of lines per job, not {s:?}"))?;
    Ok(n.max(1))
}

/// `--block`'s size: a number with GNU parallel's prefixes (K, M, G, T
/// and Ki, Mi ... are powers of 1024; k, m, g, t of 1000), at least 1;
/// or `-N`, --pipepart's N parts per job slot (returned negative).
fn block_size(s: &str) -> Result<i64, String> {
    let bad = || {
        format!("--block takes a size such as 1M, 100k or 65536 (with --pipepart also -N: N parts per job slot), not {s:?}")
    };
    let t = s.trim();
    if let Some(n) = t.strip_prefix('-') {
        // --pipepart's -N.
        return match n.parse::<i64>() {
            Ok(n) if n > 0 => Ok(-n),
            _ => Err(bad()),
        };
    }
    let digits = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let number: f64 = t[..digits].parse().map_err(|_| bad())?;
    let unit = match &t[digits..] {
        "" => 1.0,
        "K" | "Ki" | "ki" | "KI" | "kI" => 1024.0,
        "M" | "Mi" | "mi" | "MI" | "mI" => 1024.0 * 1024.0,
        "G" | "Gi" | "gi" | "GI" | "gI" => 1024.0 * 1024.0 * 1024.0,
        "T" | "Ti" | "ti" => 1024f64.powi(4),
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        _ => return Err(bad()),
    };
    let n = number * unit;
    if !(1.0..=(i64::MAX as f64)).contains(&n) {
        return Err(bad());
    }
    Ok(n as i64)
}

/// A whole number, negative ones too.
fn whole(s: &str) -> Option<i64> {
    s.trim().parse().ok()
}

/// `--retries`' value: a whole number; 0 or less runs a job once (as 1
/// does), as in GNU parallel.
fn retries(s: &str) -> Result<u32, String> {
    let n = whole(s).ok_or_else(|| format!("{s:?}: give a whole number of runs"))?;
    Ok(n.clamp(0, i64::from(u32::MAX)) as u32)
}

/// `--delay`'s value: seconds, or a number with ms, s, m, h or d.
fn delay(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let scale = match unit {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => {
            return Err(format!(
                "{s:?}: give seconds, or a number with ms, s, m, h or d"
            ))
        }
    };
    // A negative delay is none (GNU parallel's --delay -1 runs at once).
    num.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .and_then(|n| std::time::Duration::try_from_secs_f64(n.max(0.0) * scale).ok())
        .ok_or_else(|| format!("{s:?}: give seconds, or a number with ms, s, m, h or d"))
}

/// `--block-timeout`: a duration as `--delay` reads it, at least a second
/// (GNU parallel's rule).
fn block_timeout(s: &str) -> Result<std::time::Duration, String> {
    match delay(s)? {
        d if d >= std::time::Duration::from_secs(1) => Ok(d),
        _ => Err(format!("{s:?}: --block-timeout must be at least 1 second")),
    }
}

/// GNU parallel's options that `remex run` does not offer, by the reason
/// (with what to use instead where there is something; docs/cli.md has
/// the table).
const PARALLEL_ONLY: &[(&str, &[&str])] = &[
    (
        "remex's --pipe cuts stdin into blocks of records ending in --recend, and no more",
        &[
            "--header-lines",
        ],
    ),
    (
        "remex runs commands without a terminal",
        &[
            "--tty",
            "--interactive",
            "-p",
            "--open-tty",
            "-o",
            "--tmux",
            "--tmuxpane",
            "--tmux-pane",
            "--fg",
            "--bg",
            "--latest-line",
            "--latestline",
            "--ll",
        ],
    ),
    (
        "remex starts a job when a slot is free, whatever the load or free memory: size -j instead",
        &[
            "--load",
            "--memfree",
            "--limit",
            "--memsuspend",
            "--noswap",
        ],
    ),
    (
        "remex has no semaphore mode: use flock(1) around the command",
        &[
            "--semaphore",
            "--semaphore-name",
            "--semaphorename",
            "--id",
            "--semaphore-timeout",
            "--semaphoretimeout",
            "--st",
            "--wait",
        ],
    ),
    (
        "remex has no SQL job queue: its jobs come from the command line, files and stdin",
        &[
            "--sql",
            "--sqlmaster",
            "--sqlworker",
            "--sql-master",
            "--sql-worker",
            "--sql-and-worker",
            "--sqlandworker",
        ],
    ),
    (
        "remex has no equivalent",
        &[
            "--filter",
            "--session",
            "--shebang",
            "--hashbang",
            "--template",
            "--tmpl",
            "--parens",
            "--rpl",
            "--record-env",
            "--recordenv",
            "--rsync-opts",
            "--rsyncopts",
            "--ctrl-c",
            "--ctrlc",
            "--no-ctrl-c",
            "--no-ctrlc",
            "--noctrlc",
            "--shell-completion",
            "--shellcompletion",
            "--embed",
            "--bug",
            "--gnu",
            "--tollef",
            "-g",
            "-x",
            "--exit",
            "-D",
            "--debug",
            "-B",
            "-H",
            "-T",
            "-U",
            "-W",
            "-Y",
            "--linkinputsource",
            "--xapplyinputsource",
            "--max-line-length-allowed",
            "--maxlinelengthallowed",
            "--min-version",
            "--minversion",
            "--show-limits",
            "--showlimits",
        ],
    ),
    (
        "nproc and lscpu tell",
        &[
            "--number-of-cpus",
            "--numberofcpus",
            "--number-of-cores",
            "--numberofcores",
            "--number-of-sockets",
            "--numberofsockets",
            "--number-of-threads",
            "--numberofthreads",
        ],
    ),
    (
        "remex keeps each job's output in memory (bounded by --max-output); --results DIR writes it to files",
        &[
            "--files",
            "--output-as-files",
            "--outputasfiles",
            "--compress",
            "--compress-program",
            "--use-compress-program",
            "--usecompressprogram",
            "--compressprogram",
            "--decompress-program",
            "--use-decompress-program",
            "--usedecompressprogram",
            "--decompressprogram",
        ],
    ),
    (
        "no profiles or ~/.parallel/config are read",
        &[
            "--profile",
            "-J",
            "--plain",
        ],
    ),
    (
        "use -E STR",
        &[
            "-e",
        ],
    ),
    (
        "use -I STR",
        &[
            "-i",
        ],
    ),
    (
        "bash's printf %q quotes words",
        &[
            "--shell-quote",
            "--shellquote",
            "--shell_quote",
        ],
    ),
    (
        "remex --version prints remex's",
        &[
            "--version",
            "-V",
        ],
    ),
    (
        "GNU parallel prints it; remex asks for no citation",
        &[
            "--citation",
            "--bibtex",
        ],
    ),
];

/// Parses the command line. A usage error exits with status 2 and says
/// why; an option of GNU parallel that `remex run` does not offer is
/// named as such, with what to use instead and where to read more.
pub(crate) fn parse() -> Cli {
    parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// [`parse`] over `args` (the program name first).
pub(crate) fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    // GNU parallel's abbreviations: `--dry` is `--dry-run`.
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    let args = crate::abbrev::expand(&cmd, args)
        .map_err(|why| cmd.error(ErrorKind::UnknownArgument, why))?;
    // `remex run`'s inputs may be any bytes (crate::raw): its words that
    // are not UTF-8 are parsed as text, then allowed among the inputs
    // only (`::: A...`, `:::: FILE...`).
    let raw: Vec<(usize, String)> = if args.get(1).is_some_and(|a| a == "run") {
        use std::os::unix::ffi::OsStrExt;
        args.iter()
            .enumerate()
            .skip(2)
            .filter(|(_, a)| a.to_str().is_none())
            .map(|(i, a)| (i, crate::raw::text(a.as_bytes().to_vec())))
            .collect()
    } else {
        Vec::new()
    };
    let parsing: std::borrow::Cow<'_, [std::ffi::OsString]> = if raw.is_empty() {
        std::borrow::Cow::Borrowed(&args)
    } else {
        let mut p = args.clone();
        for (i, t) in &raw {
            p[*i] = t.into();
        }
        std::borrow::Cow::Owned(p)
    };
    let not_text = |i: usize, a: &std::ffi::OsStr| {
        use std::os::unix::ffi::OsStrExt;
        cmd.clone().error(
            ErrorKind::InvalidUtf8,
            format!(
                "word {i} of the command line is not UTF-8 text: {}; remex passes commands as text: convert it first (iconv); inputs after ::: or :::: may be any bytes",
                a.as_bytes().escape_ascii()
            ),
        )
    };
    let err = match <Cli as Parser>::try_parse_from(parsing.iter()) {
        Ok(cli) => {
            if let (Command::Run(r), Some(_)) = (&cli.command, raw.first()) {
                let (command, sources) =
                    crate::jobs::split_command_at(&r.command, &r.arg_sep, &r.arg_file_sep);
                let inputs: Vec<&String> = sources
                    .iter()
                    .flat_map(|s| match s {
                        crate::jobs::Source::Args(words, _) => words.iter().collect(),
                        crate::jobs::Source::File(file, _) => vec![file],
                    })
                    .collect();
                // Each such word must be one of the inputs, not an
                // option's value or a word of the command.
                let among = inputs.iter().filter(|w| crate::raw::has_raw(w)).count();
                let misplaced = raw.iter().find(|(_, t)| {
                    command.contains(t) || !inputs.contains(&t) || among < raw.len()
                });
                if let Some((i, _)) = misplaced {
                    return Err(not_text(*i, &args[*i]));
                }
            }
            return Ok(cli);
        }
        Err(e) => e,
    };
    if err.kind() == ErrorKind::InvalidUtf8 {
        // Name the word (clap says only "invalid UTF-8 was detected in
        // one or more arguments"); paths such as rsync's SOURCE may be
        // any bytes, and never get here.
        use std::os::unix::ffi::OsStrExt;
        if let Some((i, a)) = args
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, a)| a.to_str().is_none())
        {
            return Err(cmd.error(
                ErrorKind::InvalidUtf8,
                format!(
                    "word {i} of the command line is not UTF-8 text: {}; remex passes commands and inputs as text: convert it first (iconv)",
                    a.as_bytes().escape_ascii()
                ),
            ));
        }
    }
    if err.kind() != ErrorKind::UnknownArgument {
        return Err(err);
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return Err(err);
    };
    // `-j2`, `--jobs=2`: the option's name alone.
    let name = arg.split('=').next().unwrap_or(arg);
    let short = if name.starts_with("--") {
        name
    } else {
        &name[..name.len().min(2)]
    };
    let named = PARALLEL_ONLY
        .iter()
        .find_map(|(why, names)| names.contains(&short).then_some((short, why)));
    // The subcommand the option was given to ("remex run": named before
    // it), or remex's own.
    let sub = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .take_while(|a| *a != arg.as_str())
        .find(|a| cmd.find_subcommand(a).is_some())
        .map_or_else(|| "remex".to_string(), |s| format!("remex {s}"));
    match named {
        Some((o, instead)) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            Err(cmd.error(
                ErrorKind::UnknownArgument,
                format!(
                    "{sub} does not offer GNU parallel's {o} ({instead}); see docs/cli.md, \"GNU parallel option -> remex\". A command that starts with - goes after --."
                ),
            ))
        }
        None => {
            // clap's tip would be to write `-- --opt`, which makes the
            // option the command: say what is wrong and what `--` does.
            let similar = match err.get(ContextKind::SuggestedArg) {
                Some(ContextValue::String(s)) => format!(" (a similar option: {s})"),
                Some(ContextValue::Strings(s)) if !s.is_empty() => {
                    format!(" (similar options: {})", s.join(", "))
                }
                _ => String::new(),
            };
            let mut cmd = <Cli as clap::CommandFactory>::command();
            Err(cmd.error(
                ErrorKind::UnknownArgument,
                format!(
                    "{name} is not an option of {sub}{similar}; `{sub} --help` lists them. A command that starts with - goes after --."
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn termseq_reads_gnu_parallels_form() {
        assert_eq!(
            termseq("TERM,200,SIGINT,100,KILL,25").unwrap().0,
            [
                ("TERM".into(), 200),
                ("INT".into(), 100),
                ("KILL".into(), 25)
            ]
        );
        assert!(termseq("TERM").unwrap_err().contains("pairs"));
        assert!(termseq("TERN,5").unwrap_err().contains("TERN"));
        assert!(termseq("TERM,x").unwrap_err().contains("milliseconds"));
    }

    fn parsed(args: &[&str]) -> Result<Cli, String> {
        parse_from(std::iter::once("remex").chain(args.iter().copied())).map_err(|e| {
            assert_eq!(e.exit_code(), 2, "a usage error exits 2: {e}");
            e.to_string()
        })
    }

    fn command_of(args: &[&str]) -> Vec<String> {
        match parsed(args).unwrap().command {
            Command::Run(r) => r.command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_option_of_gnu_parallel_is_taken_or_named_never_the_command() {
        let names = include_str!("parallel_options.txt");
        let mut checked = 0;
        for line in names
            .lines()
            .filter(|l| !l.starts_with('#'))
            .flat_map(str::split_whitespace)
        {
            let (opt, value) = match line.strip_suffix('=') {
                Some(o) => (o, Some("1")),
                None => (line, None),
            };
            let mut args = vec!["remex", "run", opt];
            args.extend(value);
            args.extend(["echo", ":::", "a"]);
            match parse_from(args) {
                Ok(cli) => {
                    let Command::Run(r) = cli.command else {
                        panic!("{opt}: not a run")
                    };
                    assert!(
                        !r.command.iter().any(|w| w == opt),
                        "{opt} became part of the command: {:?}",
                        r.command
                    );
                }
                Err(e) => {
                    let text = e.to_string();
                    assert!(
                        e.kind() != clap::error::ErrorKind::UnknownArgument
                            || text.contains(&format!("does not offer GNU parallel's {opt} (")),
                        "{opt}: {text}"
                    );
                }
            }
            checked += 1;
        }
        assert!(checked > 300, "{checked} names");
        // Spellings of remex's own options mean the same.
        let a = |args: &[&str]| match parsed(args).unwrap().command {
            Command::Run(r) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            a(&["run", "-P", "3", "echo"]).jobs,
            a(&["run", "-j3", "echo"]).jobs
        );
        assert!(a(&["run", "--keeporder", "echo"]).keep_order);
        assert!(!a(&["run", "-k", "--nok", "echo"]).keep_order);
        assert!(a(&["run", "-t", "echo"]).trace);
        assert!(a(&["run", "--verbose", "echo"]).trace);
        assert!(a(&["run", "-v", "-v", "echo"]).verbose);
        assert!(a(&["run", "--silent", "-v", "echo"]).silent);
        assert!(parsed(&["run", "-u", "--group", "echo"]).is_err());
        // Twice: the last counts; repeatable options add up.
        let r = a(&[
            "run", "-k", "-k", "-j2", "-j3", "--tx", "popen", "--tx", "2*popen", "echo",
        ]);
        assert!(r.keep_order);
        assert_eq!(r.jobs, a(&["run", "-j3", "echo"]).jobs);
        assert_eq!(r.workers.tx, ["popen", "2*popen"]);
        assert_eq!(a(&["run", "-n", "2", "echo"]).max_args_plain, Some(2));
        assert_eq!(
            a(&["run", "--max-args", "2", "echo"]).max_args_plain,
            Some(2)
        );
        assert_eq!(
            a(&["run", "--max-replace-args", "2", "echo"]).max_args,
            Some(2)
        );
        assert_eq!(a(&["run", "-l", "echo"]).max_lines, Some(1));
        assert_eq!(a(&["run", "-l", "3", "echo"]).max_lines, Some(3));
        assert_eq!(a(&["run", "-kl", "echo"]).max_lines, Some(1));
        assert_eq!(a(&["run", "--max-lines", "echo"]).max_lines, Some(1));
        assert_eq!(a(&["run", "-L", "0", "echo"]).lines, Some(1));
        // --block's sizes, as GNU parallel reads them.
        for (size, bytes) in [
            ("1M", 1 << 20),
            ("100k", 100_000),
            ("2Ki", 2048),
            ("65536", 65536),
        ] {
            assert_eq!(
                a(&["run", "--pipe", "--block", size, "cat"]).block,
                Some(bytes)
            );
        }
        assert!(parsed(&["run", "--pipe", "--block", "1X", "cat"])
            .unwrap_err()
            .contains("--block takes a size"));
        // --pipepart's parts per job slot.
        assert_eq!(
            a(&["run", "--pipepart", "--block", "-3", "cat"]).block,
            Some(-3)
        );
        assert!(parsed(&["run", "--pipe", "--block", "-0", "cat"])
            .unwrap_err()
            .contains("--block takes a size"));
        // -j -1 is "one less than the CPUs", as -j-1 (not an option -1).
        assert_eq!(
            a(&["run", "-j", "-1", "echo"]).jobs,
            a(&["run", "-j-1", "echo"]).jobs
        );
        assert_eq!(a(&["run", "-P", "-1", "echo"]).command, ["echo"]);
        // Negative numbers are values, read as GNU parallel reads them
        // (no wait, one run, one input per job), or refused naming the
        // option; never "unexpected argument '-1'" with a tip to put it
        // after -- (where it would be the command).
        let r = a(&[
            "run",
            "--delay",
            "-1",
            "--retries",
            "-1",
            "-N",
            "-1",
            "echo",
        ]);
        assert_eq!(r.delay, Some(std::time::Duration::ZERO));
        assert_eq!((r.retries, r.max_args), (0, Some(1)));
        assert_eq!(r.command, ["echo"]);
        for opt in ["--timeout", "-s"] {
            let e = parsed(&["run", opt, "-1", "echo"]).unwrap_err();
            assert!(
                e.contains("invalid value '-1'") && !e.contains("-- -1"),
                "{e}"
            );
        }
        assert_eq!(
            a(&["run", "--halt-on-error", "2", "echo"]).halt,
            "now,fail=1".parse().unwrap()
        );
        assert_eq!(
            a(&["run", "--will-cite", "echo", "x"]).command,
            ["echo", "x"]
        );
    }

    #[test]
    fn options_are_options_wherever_they_stand_before_the_command() {
        for args in [
            &["run", "-k", "-j2", "echo", ":::", "a", "b"][..],
            &["run", "-j2", "-k", "echo", ":::", "a", "b"],
            &["run", "-j", "2", "-k", "echo", ":::", "a", "b"],
            &["run", "--jobs=2", "--keep-order", "echo", ":::", "a", "b"],
        ] {
            let Command::Run(r) = parsed(args).unwrap().command else {
                panic!()
            };
            assert_eq!(
                (r.jobs, r.keep_order),
                (Some(crate::slots::Jobs::Count(2)), true),
                "{args:?}"
            );
            assert_eq!(r.command, ["echo", ":::", "a", "b"], "{args:?}");
        }
    }

    #[test]
    fn everything_from_the_command_on_is_the_commands() {
        assert_eq!(
            command_of(&["run", "-k", "grep", "-v", "x", ":::", "a"]),
            ["grep", "-v", "x", ":::", "a"]
        );
        assert_eq!(
            command_of(&["run", "--", "-weird", ":::", "a"]),
            ["-weird", ":::", "a"]
        );
    }

    #[test]
    fn an_unknown_option_is_a_usage_error_naming_it() {
        let e = parsed(&["run", "-k", "--frobnicate", "echo", ":::", "a"]).unwrap_err();
        assert!(e.contains("--frobnicate"), "{e}");
        let e = parsed(&["exec", "--frobnicate", "uptime"]).unwrap_err();
        assert!(e.contains("--frobnicate"), "{e}");
        // Not clap's tip to pass it after -- (which makes it the command),
        // but a near option when there is one.
        let e = parsed(&["run", "--shebang-wrap", "echo", ":::", "a"]).unwrap_err();
        assert!(
            e.contains("--shebang-wrap is not an option of remex run"),
            "{e}"
        );
        assert!(!e.contains("'-- --shebang-wrap'"), "{e}");
        let e = parsed(&["run", "--jbos", "2", "echo", ":::", "a"]).unwrap_err();
        assert!(e.contains("--jobs"), "{e}");
        let e = parsed(&["--frob", "run", "echo"]).unwrap_err();
        assert!(e.contains("--frob is not an option of remex;"), "{e}");
        let e = parsed(&["--frob"]).unwrap_err();
        assert!(e.contains("--frob is not an option of remex;"), "{e}");
    }

    #[test]
    fn a_word_that_is_not_utf8_is_named_unless_it_is_an_input() {
        use std::os::unix::ffi::OsStrExt;
        let raw = std::ffi::OsStr::from_bytes(b"b\xfe").to_os_string();
        let words = |w: &[&str]| w.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        // An input (after ::: or ::::) may be any bytes (crate::raw).
        let mut args = words(&["remex", "run", "echo", ":::", "a"]);
        args.push(raw.clone());
        let Command::Run(r) = parse_from(args).unwrap().command else {
            panic!("not run")
        };
        assert_eq!(r.command[3], crate::raw::text(b"b\xfe".to_vec()));
        // An option's value, or a word of the command, may not.
        for at in [2, 3] {
            let mut args = words(&["remex", "run", "--joblog", "j", "echo", ":::", "a"]);
            args[at + 1] = raw.clone();
            let e = parse_from(args).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            let want = format!(
                "word {} of the command line is not UTF-8 text: b\\xfe",
                at + 1
            );
            assert!(e.to_string().contains(&want), "{e}");
        }
        // A path may be any bytes.
        let args = ["remex", "rsync", "--tx", "popen"]
            .into_iter()
            .map(std::ffi::OsString::from)
            .chain([
                std::ffi::OsStr::from_bytes(b"caf\xe9").to_os_string(),
                "dest".into(),
            ]);
        assert!(parse_from(args).is_ok());
    }

    #[test]
    fn exec_and_rsync_take_a_start_of_a_long_option() {
        match parsed(&["exec", "--tx", "popen", "--time", "5", "--", "true"])
            .unwrap()
            .command
        {
            Command::Exec(a) => assert!(a.limits.timeout.is_some()),
            other => panic!("{other:?}"),
        }
        match parsed(&["rsync", "--tx", "popen", "--del", "a", "b"])
            .unwrap()
            .command
        {
            Command::Rsync(a) => assert!(a.delete),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_gnu_parallel_option_remex_lacks_is_named_and_pointed_at_the_docs() {
        for opt in ["--sqlmaster", "--sqlworker", "--tmux"] {
            let mut args = vec!["run", "-k", opt];
            // Options that take a value in GNU parallel.
            if opt != "--tmux" {
                args.push("X");
            }
            args.extend(["echo", ":::", "A", "B", ":::", "D", "E"]);
            let e = parsed(&args).unwrap_err();
            assert!(
                e.contains(&format!("GNU parallel's {opt}")) && e.contains("docs/cli.md"),
                "{opt}: {e}"
            );
        }
        // Attached values name the option alone.
        let e = parsed(&["run", "--sqlmaster=out", "echo", ":::", "a"]).unwrap_err();
        assert!(e.contains("GNU parallel's --sqlmaster"), "{e}");
        // The ones remex offers parse, in any order.
        for args in [
            &["run", "--link", "-k", "echo", ":::", "a", ":::", "b"][..],
            &["run", "-N2", "-0", "--trim", "lr", "echo"],
            &["run", "-C", ",", "--header", ":", "-q", "-I", ",,", "echo"],
            &[
                "run",
                "-d",
                ",",
                "-E",
                "x",
                "--tagstring",
                "{#}",
                "--dryrun",
                "echo",
            ],
        ] {
            assert!(parsed(args).is_ok(), "{args:?}");
        }
    }
}
