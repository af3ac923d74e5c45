//! `remex run`: a command per input over the workers' pool.
//!
//! Jobs go through the group's task pool as the built-in `run` task, so a
//! job whose worker dies runs again on another worker (up to three
//! attempts), and a job dropped by `--halt now` is killed where it runs.
//! At most `2 x slots` jobs are submitted and unfinished at a time (with
//! `--keep-order`, also at most `max(4 x slots, 64)` past the oldest
//! unprinted job), so memory holds that many jobs' output at most, each
//! bounded by `--max-output`. Stdin is read on a thread of its own, at
//! most 64 lines ahead of the jobs made ([`Feed`]), so a slow stdin never
//! holds the jobs already made or their output.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::{AbortRegistration, Abortable};
use futures::stream::FuturesUnordered;
use futures::{Future, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use remex::worker::CommandOutcome;
use remex::TaskResult;

use crate::cli::RunArgs;
use crate::emit::{emit_marked, Color};
use crate::halt::When;
use crate::joblog::{Entry, JobLog, Resume};
use crate::jobs::{split_command_at, At, Inputs, Source, Spelling, Template};
use crate::making::{Made, Maker};
use crate::reading::{all_of_stdin, pipe_alone, reading, spec_workers};
use crate::relative::Relative;
use crate::results::Results;
use crate::setup::{basefiles, land, JobSetup};
use crate::slots::{self, Jobs};
use crate::stream::{Flow, Order};
use crate::workers::{self, Workers};

/// A job between its inputs and its end.
struct Job {
    seq: u64,
    /// Its slot (`{%}`).
    slot: u64,
    args: Vec<String>,
    command: String,
    attempt: u32,
    /// `--hostgroups`: the host groups it may run in (none: anywhere).
    groups: BTreeSet<String>,
    /// `--line-buffer`: the bytes of stdout printed as they came.
    streamed: u64,
    /// `--pipe`'s block, `--tee`'s all of stdin: for its stdin.
    stdin: Option<bytes::Bytes>,
    /// `--roundrobin`: the bytes of blocks it was fed.
    fed: u64,
}

type Running =
    Pin<Box<dyn Future<Output = (Job, remex::Result<TaskResult<CommandOutcome>>)> + Send>>;

/// A finished job, ready to print.
struct Done {
    job: Job,
    result: remex::Result<TaskResult<CommandOutcome>>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A job's exit status as a shell gives it: its code, or 128 + the
/// signal that ended it; 255 when it did not run to an end.
fn status_code(r: &remex::Result<TaskResult<CommandOutcome>>) -> i32 {
    match r {
        Ok(t) => match (t.value.code, t.value.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 255,
        },
        Err(_) => 255,
    }
}

/// A job's future `f`, ended early when `kill` is aborted (`--timeout
/// N%`), then with a timeout error.
async fn killable<T>(
    f: impl Future<Output = remex::Result<T>>,
    kill: Option<AbortRegistration>,
) -> remex::Result<T> {
    let Some(kill) = kill else {
        return f.await;
    };
    let t0 = Instant::now();
    Abortable::new(f, kill).await.unwrap_or_else(|_| {
        Err(remex::Error::Timeout {
            what: "its end (--timeout as a share of the median job)",
            after: t0.elapsed(),
        })
    })
}

/// Prints a finished job (its turn, with -k), then logs it: the job
/// log's line comes after the job's output, as in GNU parallel (which
/// shows with `--joblog -`).
fn show(printer: &Printer, log: &mut Option<JobLog>, d: &Done) -> Result<(), String> {
    printer.print(d);
    match log {
        Some(l) => l.record(&printer.entry(d)),
        None => Ok(()),
    }
}

fn job_ok(r: &remex::Result<TaskResult<CommandOutcome>>) -> bool {
    matches!(r, Ok(t) if t.value.success())
}

struct Printer {
    tag: bool,
    /// `--color`: each job's lines in its colour.
    color: bool,
    /// `--colorfailed`: a failed job's lines white on red.
    color_failed: bool,
    /// --tagstring's template.
    tagstring: Option<Template>,
    total: Option<u64>,
    /// The number of slots.
    slots: u64,
    bar: ProgressBar,
    workers: Option<Workers>,
    /// `-v`: each job's command line as the first line of its stdout.
    verbose: bool,
    /// `--results DIR`: each job's output in files too.
    results: Option<Results>,
    /// Jobs whose output could not be written under `--results`.
    lost: std::cell::Cell<u64>,
    /// The output goes out as it comes (`--line-buffer`, `-u`).
    streamed: Option<Flow>,
}

impl Printer {
    /// Job `seq`'s colour, if its lines are coloured (`failed`: it did).
    fn color_of(&self, seq: u64, failed: bool) -> Option<Color> {
        match (self.color, self.color_failed) {
            (_, true) if failed => Some(Color::failed()),
            (true, _) => Some(Color::of_job(seq)),
            (false, true) => Some(Color::none()),
            (false, false) => None,
        }
    }

    fn print(&self, d: &Done) {
        if crate::interrupt::interrupted() {
            // Ended by Ctrl-C: the jobs' ends are the interrupt's.
            return;
        }
        let at = At {
            seq: d.job.seq,
            slot: d.job.slot,
            total: self.total,
            slots: self.slots,
        };
        let tag = job_tag(self.tagstring.as_ref(), self.tag, at, &d.job.args);
        self.bar.suspend(|| match &d.result {
            Ok(t) => {
                // -v: the command line is the first line of the job's
                // stdout (GNU parallel writes it there), unless streamed
                // (then it went first, stream.rs).
                let stdout = match self.verbose && self.streamed.is_none() {
                    true => std::borrow::Cow::Owned(
                        [d.job.command.as_bytes(), b"\n", &t.value.stdout].concat(),
                    ),
                    false => std::borrow::Cow::Borrowed(&t.value.stdout[..]),
                };
                if let Some(r) = &self.results {
                    // In the files only, as GNU parallel (20221122) does.
                    let o = &t.value;
                    if let Err(e) = r.write(&self.entry(d), at, &d.job.args, &stdout, &o.stderr) {
                        eprintln!("remex: job {}: {e}", d.job.seq);
                        self.lost.set(self.lost.get() + 1);
                    }
                    return;
                }
                let color = self.color_of(d.job.seq, !t.value.success());
                emit_marked(
                    &mut std::io::stdout().lock(),
                    tag.as_deref(),
                    color.as_ref(),
                    &stdout,
                );
                let mut err = std::io::stderr().lock();
                emit_marked(&mut err, tag.as_deref(), color.as_ref(), &t.value.stderr);
                let o = &t.value;
                if o.timed_out {
                    crate::emit::checked(writeln!(
                        err,
                        "remex: job {} timed out: {}",
                        d.job.seq, d.job.command
                    ));
                }
            }
            Err(e) => {
                crate::emit::checked(std::io::stdout().flush());
                eprintln!(
                    "remex: job {} ({}): {e}",
                    d.job.seq,
                    crate::raw::shown(&d.job.command)
                );
            }
        });
    }

    fn entry(&self, d: &Done) -> Entry {
        match &d.result {
            Ok(t) => {
                let o = &t.value;
                Entry {
                    seq: d.job.seq,
                    host: self
                        .workers
                        .as_ref()
                        .map_or_else(|| t.gateway.clone(), |w| w.joblog_host(&t.gateway)),
                    start: o.started,
                    runtime: o.seconds,
                    sent: d.job.stdin.as_ref().map_or(d.job.fed, |b| b.len() as u64),
                    // GNU parallel's Receive: the bytes of stdout; with
                    // --line-buffer those of stdout and stderr; with -u
                    // none.
                    received: match self.streamed {
                        // With -v's line.
                        None if self.verbose => (d.job.command.len() + 1 + o.stdout.len()) as u64,
                        None => o.stdout.len() as u64,
                        Some(Flow::Lines) => d.job.streamed + o.stderr.len() as u64,
                        Some(Flow::Raw) => 0,
                    },
                    // GNU parallel's: -1 for a timeout, 0 for a job a
                    // signal ended (its Signal says which).
                    exitval: match (o.timed_out, o.code, o.signal) {
                        (true, _, _) => -1,
                        (false, Some(c), _) => i64::from(c),
                        (false, None, Some(_)) => 0,
                        (false, None, None) => -1,
                    },
                    signal: o.signal.map_or(0, i64::from),
                    command: d.job.command.clone(),
                }
            }
            Err(_) => Entry {
                seq: d.job.seq,
                host: "-".into(),
                start: now(),
                runtime: 0.0,
                sent: 0,
                received: 0,
                exitval: -1,
                signal: 0,
                command: d.job.command.clone(),
            },
        }
    }
}

fn progress_bar(total: Option<u64>, hidden: bool) -> ProgressBar {
    let target = if hidden {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(total, target);
    let style = match total {
        Some(_) => ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} jobs, {per_sec}, ETA {eta} {msg}",
        ),
        None => {
            ProgressStyle::with_template("{elapsed_precise} {spinner} {pos} jobs, {per_sec} {msg}")
        }
    };
    if let Ok(s) = style {
        bar.set_style(s);
    }
    bar
}

/// The tag before each line of a job's output (and of its `--dry-run`
/// line): `--tagstring`'s rendered for the job, else with `--tag` its
/// inputs joined by spaces (GNU parallel's).
fn job_tag(tagstring: Option<&Template>, tag: bool, at: At, args: &[String]) -> Option<String> {
    match tagstring {
        Some(t) => Some(t.render_plain(at, args)),
        None => tag.then(|| args.join(" ")),
    }
}

/// Job `req` on `gw` itself, in a call of its own (not the pool's: never
/// run again elsewhere); `go` (`--roundrobin`'s feeding) is told once
/// the call is made.
async fn on_worker(
    gw: remex::Gateway,
    req: remex::worker::CommandRequest,
    go: Option<crate::roundrobin::Go>,
) -> remex::Result<TaskResult<CommandOutcome>> {
    let call = gw.remote_call("run", &req)?;
    if let Some(go) = go {
        go.go();
    }
    let value = call.receive().await?;
    Ok(TaskResult {
        value,
        gateway: gw.id().to_string(),
        attempts: 1,
    })
}

/// `--dry-run`: the command lines of the jobs that would run on `slots`
/// slots, tagged as their output would be, on stdout; nothing runs.
fn dry_run(
    a: &RunArgs,
    mut inputs: Inputs,
    maker: &Maker,
    tagstring: Option<&Template>,
    slots: usize,
    line: usize,
) -> Result<i32, String> {
    if a.multiple || a.context || a.xargs {
        inputs.share(slots, line, !a.xargs)?;
    }
    let total = inputs.total;
    let mut out = std::io::stdout().lock();
    let template_skips = maker.template.skips();
    for (i, args) in inputs.by_ref().enumerate() {
        let seq = i as u64 + 1;
        let at = At {
            seq,
            slot: (seq - 1) % slots as u64 + 1,
            total,
            slots: slots as u64,
        };
        let args = args?;
        // The jobs that would run: not those {choose_k} or {uniq} skip
        // (GNU parallel's --dryrun lists them).
        if template_skips.skip(&args) {
            continue;
        }
        let made = maker.make(at, args);
        if let Some(e) = made.too_long(a.max_chars) {
            return Err(e);
        }
        // -t: on stderr too, as GNU parallel shows a job it starts.
        if a.trace {
            eprintln!("{}", crate::raw::shown(&made.command));
        }
        // Tagged as its output would be (GNU parallel's).
        let tag = job_tag(tagstring, a.tag, at, &made.args);
        let shown = format!("{}\n", made.command);
        let color = a.color.then(|| Color::of_job(seq));
        emit_marked(
            &mut out,
            tag.as_deref(),
            color.as_ref(),
            &crate::raw::bytes(&shown),
        );
    }
    Ok(0)
}

/// Runs `remex run`; returns the exit status.
pub(crate) async fn run(mut a: RunArgs) -> Result<i32, String> {
    // --ctag and --ctagstring are --tag and --tagstring in colour.
    a.color |= a.ctag || a.ctagstring.is_some();
    a.tag |= a.ctag;
    if let Some(s) = a.ctagstring.take() {
        a.tagstring.get_or_insert(s);
    }
    // --cat and --fifo are --pipe, the block in a file (GNU parallel's).
    let block_file = crate::blockfile::BlockFile::of(a.cat, a.fifo);
    // --pipepart is --pipe, the blocks found by seeking in a file.
    a.pipe |= block_file.is_some() || a.pipepart;
    // Without --pipe, GNU parallel's --roundrobin, --shard and --bin do
    // nothing. With it, a job a slot fed as input comes (roundrobin.rs);
    // such a job cannot run again: what it was fed is gone.
    a.roundrobin &= a.pipe;
    // With --pipepart it only sizes the parts, one per slot whatever
    // --block says, each part a job (GNU parallel's: with several files
    // that is more jobs than slots).
    if a.roundrobin && a.pipepart {
        (a.roundrobin, a.block) = (false, Some(-1));
    }
    let route = match (&a.shard, &a.bin) {
        _ if !a.pipe => None,
        (Some(col), _) => Some(crate::roundrobin::Route::new(
            col,
            false,
            a.colsep.as_deref(),
        )?),
        (_, Some(col)) => Some(crate::roundrobin::Route::new(
            col,
            true,
            a.colsep.as_deref(),
        )?),
        _ => None,
    };
    let fed = a.roundrobin || route.is_some();
    if fed && (a.retries > 1 || a.resume || a.resume_failed || a.retry_failed) {
        return Err(
            "--roundrobin, --shard and --bin cannot be combined with --retries, --resume, --resume-failed or --retry-failed: a job's input is gone once fed"
                .into(),
        );
    }
    // --pipe --tee: all of stdin for every job, whose inputs are the
    // arguments (read as without --pipe).
    let tee = match a.pipe && a.tee {
        true => {
            a.pipe = false;
            Some(all_of_stdin()?)
        }
        false => None,
    };
    if a.nonall {
        // The command once on every worker, with no inputs.
        let setup = JobSetup::new(&a, &[])?;
        let command = a.command.join(" ");
        let at = At {
            seq: 1,
            slot: 1,
            total: Some(1),
            slots: 1,
        };
        let req = setup.request(&a.limits, &command, at, &[])?;
        let specs = workers::specs(&a.workers)?;
        let w = Workers::start(&specs, &a.workers).await?;
        let failed = crate::onall::everywhere(&w, &[(command, req)], &a).await;
        w.group.terminate(setup.end_within()).await;
        return Ok(failed.min(101) as i32);
    }
    // No command: each input is one (`remex run ::: 'cmd1' 'cmd2'`).
    let (command, mut sources) = if a.retry_failed {
        // The log's failed commands, each as its job's number's input
        // (the others are skipped as succeeded).
        let log = a.joblog.as_deref().unwrap_or(std::path::Path::new(""));
        let commands = crate::joblog::failed_commands(log)?;
        (Vec::new(), vec![Source::Args(commands, false)])
    } else {
        split_command_at(&a.command, &a.arg_sep, &a.arg_file_sep)
    };
    if a.pipe {
        pipe_alone(&a, &sources)?;
    }
    for text in [Some(command.join(" ")), a.tagstring.clone()]
        .iter()
        .flatten()
    {
        if a.plus {
            crate::plus::check(text)?;
        }
        if let Some(expr) = crate::jobs::perl_expression(text) {
            return Err(format!(
                "{expr} is a Perl expression of GNU parallel's: remex has no Perl; \
                 use --plus's replacement strings or the shell (docs/cli.md)"
            ));
        }
    }
    let mut all: Vec<Source> = a
        .arg_files
        .iter()
        .map(|f| Source::File(f.clone(), false))
        .collect();
    all.append(&mut sources);
    let reading = reading(&a)?;
    let shares = a.multiple || a.context || a.xargs;
    // Bytes of arguments a shared job may have: -s less the command.
    let max_chars = a.max_chars.unwrap_or_else(crate::jobs::default_max_chars);
    let line = max_chars
        .saturating_sub(command.iter().map(|w| w.len() + 1).sum::<usize>())
        .max(1);
    // Read whole when the jobs must be counted, shuffled or shared.
    let plain = Spelling {
        plus: a.plus,
        ..Spelling::default()
    };
    let local = workers::none_named(&a.workers);
    let as_many = local && a.jobs == Some(Jobs::Count(0));
    // (--total-jobs N says it: nothing is read ahead for {##}.)
    let told = a.total_jobs.is_some();
    let counts = (!told && Template::parse_words(&command, &plain).needs_total())
        || shares
        || a.shuf
        || as_many
        || (!told && a.halt.wants_total());
    let mut inputs = Inputs::open_with(all, &reading, counts)?;
    if a.shuf {
        inputs.shuffle()?;
    }
    if let Some(n) = a.total_jobs {
        inputs.total = Some(n);
    }
    let renames = a.renames();
    let spelling = Spelling {
        no_input: (a.pipe && block_file.is_none()) || tee.is_some(),
        renames: &renames,
        quote_words: a.quote,
        names: &inputs.names,
        plus: a.plus,
    };
    let mut setup = JobSetup::new(&a, &inputs.names)?;
    let mut template = Template::parse_words(&command, &spelling).quoted_for(setup.shell());
    // -N and -L replace in context as -X does (GNU parallel's rule; -L
    // not with -m or --xargs); -n and -l do not.
    let in_context = a.max_args.is_some() || (a.lines.is_some() && !(a.multiple || a.xargs));
    if a.context || in_context {
        template = template.in_context();
    }
    // -N0 with several inputs per job: they count, given to none.
    if a.max_args == Some(0) && (a.multiple || a.context || a.xargs) {
        template = template.with_stand_ins();
    }
    let tagstring = a
        .tagstring
        .as_deref()
        // GNU parallel's escapes first (`\t`, `\033`...), then the
        // replacement strings.
        .map(|t| Template::parse_tag(&crate::jobs::unquote_printf(t), &spelling));
    // --plus's {choose_k}, {uniq}: the combinations not wanted (-u
    // ignores --tagstring).
    let skips = template.skips().and(
        tagstring
            .as_ref()
            .filter(|_| !a.ungroup)
            .map(Template::skips)
            .unwrap_or_default(),
    );
    let maker = Maker {
        template,
        // --roundrobin's, --shard's, --bin's jobs are fed, not made of a
        // block.
        pipe: a.pipe && !fed,
        tee,
        block_file,
        hostgroups: a.hostgroups,
    };
    // Slots: GNU parallel's -j for this machine when no worker is named
    // (one local worker per slot), else jobs at once on each worker.
    // An sshlogin without a count (`-S host`) gets -j (100% when not
    // given) of that host's CPUs, as GNU parallel gives it: that many
    // workers of one slot, once its first worker says (Workers::fill_hosts);
    // a plain -j N is N jobs on each worker, so on each such host.
    let uncounted = match local || a.onall {
        true => Default::default(),
        false => workers::uncounted_logins(&a.workers),
    };
    let by_host_cpus = !uncounted.is_empty() && !matches!(a.jobs, Some(Jobs::Count(_)));
    let (specs, host_groups, per_worker) = if local {
        let n = slots::local(a.jobs, inputs.total);
        (vec![workers::local_workers(n)], Default::default(), 1)
    } else {
        let (specs, groups) = workers::specs_and_groups(&a.workers)?;
        let per_worker = match by_host_cpus {
            true => 1,
            false => slots::per_worker(a.jobs)?,
        };
        (specs, groups, per_worker)
    };
    // (--resume with --resume-failed or --retry-failed: theirs, as GNU
    // parallel runs the failed jobs again then.)
    let resume = match (a.resume, a.resume_failed || a.retry_failed) {
        (_, true) => Resume::Failed,
        (true, false) => Resume::All,
        _ => Resume::No,
    };
    if a.dry_run {
        let slots = (spec_workers(&specs) * per_worker).max(1);
        return dry_run(&a, inputs, &maker, tagstring.as_ref(), slots, line);
    }
    // --resume finds the jobs that ran in the job log, or else in
    // --results DIR (GNU parallel's two places; not in a .csv/.json
    // file, which GNU parallel does not read back either).
    let resume_from_results = resume == Resume::All && a.joblog.is_none();
    if resume_from_results {
        match a.results.as_deref() {
            None => {
                return Err(
                    "--resume needs --joblog or --results DIR: where the jobs that ran are found"
                        .into(),
                )
            }
            Some(r) if crate::results::is_table(r) => {
                return Err(format!(
                    "--resume with --results {} needs --joblog too: the records are not read back",
                    r.display()
                ))
            }
            Some(_) => {}
        }
    }
    let mut log = match &a.joblog {
        Some(p) => Some(JobLog::open(p, resume)?),
        None => None,
    };
    let w = Workers::start(&specs, &a.workers).await?;
    let filled = match by_host_cpus {
        true => w.fill_hosts(&uncounted, a.jobs, inputs.total).await,
        false => Default::default(),
    };
    // The basefiles' names (a directory's files), for --cleanup.
    let mut base = Vec::new();
    if !a.basefile.is_empty() {
        match basefiles(&w, &a.basefile, &setup, false).await {
            Ok(names) => base = names,
            Err(e) => {
                w.group.terminate(setup.end_within()).await;
                return Err(e);
            }
        }
    }
    if a.onall {
        // Every job on every worker, in order.
        let total = inputs.total;
        let mut jobs = Vec::new();
        for (i, args) in inputs.by_ref().enumerate() {
            let seq = i as u64 + 1;
            let at = At {
                seq,
                slot: 1,
                total,
                slots: 1,
            };
            let args = args?;
            let command = maker.template.render_at(at, &args);
            let req = setup.request(&a.limits, &command, at, &args)?;
            jobs.push((command, req));
        }
        let failed = crate::onall::everywhere(&w, &jobs, &a).await;
        w.group.terminate(setup.end_within()).await;
        return Ok(failed.min(101) as i32);
    }
    w.group.set_tasks_per_worker(per_worker);
    let slots = (w.group.len() * per_worker).max(1);
    if shares {
        inputs.share(slots, line, !a.xargs)?;
    }
    let total = inputs.total;
    // {%}: a job holds its slot from its start to its end, so no more
    // jobs are out than slots.
    // --line-buffer, --ungroup: a job runs on its slot's worker, its
    // output streamed (stream.rs); slots are held as with {%}.
    let flow = match (a.line_buffer, a.ungroup) {
        (true, _) => Some(Flow::Lines),
        (_, true) => Some(Flow::Raw),
        _ => None,
    };
    // The workers, their slots and host groups: they change when the
    // --sshloginfile does (reload.rs).
    let gateways = std::cell::RefCell::new(w.group.gateways());
    let host_groups = std::cell::RefCell::new(host_groups);
    let slot_count = std::cell::Cell::new(slots);
    // A command that reads $PARALLEL_JOBSLOT gets a slot no running job
    // shares, as with {%}.
    let slotted = maker.template.uses_slot()
        || tagstring.as_ref().is_some_and(Template::uses_slot)
        || command.iter().any(|w| w.contains("PARALLEL_JOBSLOT"))
        || a.process_slot_var.is_some()
        || flow.is_some()
        || fed;
    setup.jobslot = slotted;
    let mut free: BTreeSet<u64> = (1..=slots as u64).collect();
    // With {%} or --halt, no job waits on a worker for a free executor:
    // a slot is held from start to end, and --halt soon starts nothing
    // more (GNU parallel's "running" jobs only).
    let halting = a.halt.0.is_some();
    let mut relative = match a.limits.timeout {
        Some(crate::cli::Timeout::Percent(p)) => Some(Relative::new(p)),
        _ => None,
    };
    // Jobs out at once, and how far -k lets them run past the oldest
    // unprinted one, for `slots` slots.
    // (--retries: a failed job's next try runs before the jobs after it,
    // as GNU parallel puts it back first: `-j1` keeps the inputs' order.)
    let held = slotted || halting || relative.is_some() || a.retries > 1;
    let bounds = |slots: usize| {
        let in_flight = if held { slots } else { (slots * 2).max(2) };
        (in_flight, (slots as u64 * 4).max(64))
    };
    let (mut in_flight_max, mut window) = bounds(slots);
    let mut next_start: Option<Instant> = None;
    let group = w.group.clone();
    let printer = Printer {
        // -u ignores --tag, --tagstring and colours, as GNU parallel does.
        tag: a.tag && !a.ungroup,
        color: a.color && !a.ungroup,
        color_failed: a.color_failed && !a.ungroup,
        tagstring: tagstring.filter(|_| !a.ungroup),
        total,
        slots: slots as u64,
        // --roundrobin, --shard, --bin: jobs are not the inputs.
        bar: progress_bar(inputs.total.filter(|_| !fed), a.no_bar),
        workers: Some(w),
        // --silent wins over -v, as in GNU parallel.
        verbose: a.verbose && !a.silent,
        results: match a.results.as_deref() {
            Some(d) => Some(Results::create(
                d,
                &Spelling {
                    renames: &renames,
                    names: &inputs.names,
                    plus: a.plus,
                    ..Spelling::default()
                },
            )?),
            None => None,
        },
        lost: std::cell::Cell::new(0),
        streamed: flow,
    };
    // --line-buffer -k: the oldest unprinted job's lines as they come,
    // the others' held until their turn (GNU parallel's reading). -u
    // ignores -k, as GNU parallel does.
    let order = (a.keep_order && a.line_buffer).then(|| Order::new(a.limits.max_output));
    // The jobs running on a worker directly, outside the pool (for a
    // worker the --sshloginfile removes: reload.rs).
    let busy = std::sync::Arc::new(crate::reload::Busy::default());
    // --pipepart's parts may be as large as a block can be: two ahead.
    let block = match &reading.part {
        Some(_) => Some(crate::pipe::MOST_BLOCK),
        None => reading.pipe.as_ref().map(|p| p.block),
    };
    // --roundrobin: a job started whenever a slot has none, each fed the
    // blocks it takes.
    let (mut inputs, blocks) = match fed {
        true => {
            let (starts, blocks) = crate::roundrobin::feed(inputs, slots, route)?;
            (Feed::Read(starts), Some(blocks))
        }
        false => (Feed::new(inputs, block), None),
    };
    // The worker of a job's slot (--line-buffer's and --roundrobin's
    // jobs run there, in calls of their own).
    let slot_worker = |slot: u64| {
        let gateways = gateways.borrow();
        gateways[(slot as usize - 1) / per_worker % gateways.len()].clone()
    };
    // A job's future, abortable when --timeout N% may kill it.
    let submit = |job: Job, kill: Option<AbortRegistration>| -> Running {
        let at = At {
            seq: job.seq,
            slot: job.slot,
            total,
            slots: slot_count.get() as u64,
        };
        // --pipe: a job whose block is empty (all of it separators that
        // --rrs took out) runs `true`, not its command: GNU parallel's
        // jobs start their command only once input comes.
        let empty_block = a.pipe
            && !(a.tee || a.roundrobin || a.cat || a.fifo)
            && job.stdin.as_ref().is_some_and(|b| b.is_empty());
        let command = match empty_block {
            true => "true",
            false => &job.command,
        };
        let req = match setup.request(&a.limits, command, at, &job.args) {
            Ok(r) => remex::worker::CommandRequest {
                stdin: job.stdin.clone(),
                ..r
            },
            Err(detail) => {
                return Box::pin(async move { (job, Err(remex::Error::Arguments { detail })) })
            }
        };
        // --verbose, -t: the command line on stderr as the job starts.
        if a.trace {
            printer.bar.suspend(|| eprintln!("{}", job.command));
        }
        if !job.groups.is_empty() {
            // Only the workers of its host groups, in turn.
            let gateways = gateways.borrow();
            let host_groups = host_groups.borrow();
            let serving: Vec<&remex::Gateway> = gateways
                .iter()
                .filter(|g| host_groups.serves(g, &job.groups))
                .collect();
            let Some(gw) = serving
                .get(job.seq as usize % serving.len().max(1))
                .map(|g| (*g).clone())
            else {
                let groups = job.groups.iter().cloned().collect::<Vec<_>>().join("+");
                let detail = format!("no worker is in host group {groups} (-S @{groups}/HOST)");
                return Box::pin(async move { (job, Err(remex::Error::Arguments { detail })) });
            };
            let on = busy.enter(gw.id());
            let f = async move {
                let _on = on;
                on_worker(gw, req, None).await
            };
            return Box::pin(async move { (job, killable(f, kill).await) });
        }
        if let Some(flow) = flow {
            let gw = slot_worker(job.slot);
            let (req, feeding, go) = match &blocks {
                Some(b) => {
                    let (req, f, go) = crate::roundrobin::attach(&gw, req, b, job.seq);
                    (req, Some(f), Some(go))
                }
                None => (req, None, None),
            };
            // Each line after the job's tag: --tagstring's, or --tag's.
            let tag = job_tag(printer.tagstring.as_ref(), printer.tag, at, &job.args);
            let order = order.clone().map(|o| (o, job.seq));
            let on = busy.enter(gw.id());
            let printed = Arc::new(AtomicU64::new(0));
            let first = printer.verbose.then(|| job.command.clone());
            // --colorfailed: a running job has not failed (GNU parallel's).
            let color = printer.color.then(|| Color::of_job(job.seq));
            let f =
                crate::stream::run(gw, req, flow, tag, color, order, printed.clone(), first, go);
            return Box::pin(async move {
                let _on = on;
                let result = killable(f, kill).await;
                let streamed = printed.load(Ordering::Relaxed);
                let fed = feeding.map_or(0, |f| f.fed());
                (
                    Job {
                        streamed,
                        fed,
                        ..job
                    },
                    result,
                )
            });
        }
        if let Some(b) = &blocks {
            let gw = slot_worker(job.slot);
            let (req, feeding, go) = crate::roundrobin::attach(&gw, req, b, job.seq);
            let on = busy.enter(gw.id());
            let f = on_worker(gw, req, Some(go));
            return Box::pin(async move {
                let _on = on;
                let result = killable(f, kill).await;
                (
                    Job {
                        fed: feeding.fed(),
                        ..job
                    },
                    result,
                )
            });
        }
        match group.submit::<CommandOutcome>("run", &req) {
            Ok(f) => {
                let f = f.with_details();
                Box::pin(async move { (job, killable(f, kill).await) })
            }
            Err(e) => Box::pin(async move { (job, Err(e)) }),
        }
    };

    // An input received while the loop waited, not yet made a job.
    let mut arrived: Option<Option<Result<Vec<String>, String>>> = None;
    let mut running: FuturesUnordered<Running> = FuturesUnordered::new();
    // The running jobs' command lines (SIGHUP and SIGUSR1 list them).
    let mut commands: BTreeMap<u64, String> = BTreeMap::new();
    // GNU parallel's signals: SIGHUP starts no more jobs and waits for the
    // running ones; SIGUSR1 lists them on stderr.
    let mut hangup = unix_signal(tokio::signal::unix::SignalKind::hangup());
    let mut usr1 = unix_signal(tokio::signal::unix::SignalKind::user_defined1());
    let mut hung_up = false;
    // --keep-order: finished jobs waiting for their turn, and skipped seqs.
    let mut waiting: BTreeMap<u64, Option<Done>> = BTreeMap::new();
    let mut next_print = 1u64;
    let mut next_seq = 1u64;
    let mut inputs_done = false;
    let (mut failed, mut succeeded, mut killed) = (0u64, 0u64, 0u64);
    let mut halted: Option<When> = None;
    let mut halt_status = None;
    // Jobs run to their end, each retry one more (--halt's share at the
    // end is of these).
    let mut ran_jobs = 0u64;
    let mut input_error = None;
    // --sshloginfile read again while jobs run (reload.rs): workers
    // started for it report here; each start is waited for before the
    // end (bounded by the start's own timeout).
    let mut reload = crate::reload::Reload::new(&a.workers, filled);
    let (started_tx, mut started_rx) =
        tokio::sync::mpsc::unbounded_channel::<(String, remex::Result<Vec<remex::Gateway>>)>();
    let mut starting: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    // The specs being started.
    let mut pending_specs: Vec<String> = Vec::new();
    // Gateways being retired (they leave the group when their retire
    // runs: counted out at once).
    let mut retired: std::collections::HashSet<String> = Default::default();
    // The group's workers changed: slots (and so jobs at once) follow.
    let refresh = |free: &mut BTreeSet<u64>, retired: &std::collections::HashSet<String>| {
        let mut now = group.gateways();
        now.retain(|g| !retired.contains(g.id()));
        let (old, new) = (slot_count.get(), (now.len() * per_worker).max(1));
        if new > old {
            free.extend(old as u64 + 1..=new as u64);
        } else {
            free.retain(|s| *s <= new as u64);
        }
        slot_count.set(new);
        if let Some(w) = &printer.workers {
            w.note(&now);
        }
        *gateways.borrow_mut() = now;
        new
    };
    // Room to start a job now.
    macro_rules! room {
        () => {
            !inputs_done
                && halted.is_none()
                && running.len() < in_flight_max
                && (!a.keep_order || next_seq < next_print + window)
                && next_start.is_none_or(|t| Instant::now() >= t)
        };
    }
    loop {
        // Start jobs while there is room.
        while room!() {
            let input = match arrived.take() {
                Some(input) => input,
                None => match inputs.ready() {
                    Some(input) => input,
                    // Not read yet: the loop waits for it, or for a job.
                    None => break,
                },
            };
            match input {
                None => inputs_done = true,
                Some(Err(e)) => {
                    input_error = Some(e);
                    inputs_done = true;
                }
                Some(Ok(args)) => {
                    let seq = next_seq;
                    next_seq += 1;
                    let ran = log.as_ref().is_some_and(|l| l.skips(seq))
                        || (resume_from_results
                            && printer.results.as_ref().is_some_and(|r| {
                                let at = At {
                                    seq,
                                    slot: 1,
                                    total,
                                    slots: slot_count.get() as u64,
                                };
                                r.holds(at, &args)
                            }));
                    if ran || skips.skip(&args) {
                        printer.bar.inc(1);
                        if a.keep_order {
                            waiting.insert(seq, None);
                        }
                        continue;
                    }
                    let slot = if slotted {
                        free.pop_first().unwrap_or(1)
                    } else {
                        (seq - 1) % slot_count.get() as u64 + 1
                    };
                    let at = At {
                        seq,
                        slot,
                        total,
                        slots: slot_count.get() as u64,
                    };
                    let made = maker.make(at, args);
                    // -s: GNU parallel's end of the run (no more jobs).
                    if let Some(e) = made.too_long(a.max_chars) {
                        if slotted {
                            free.insert(slot);
                        }
                        input_error = Some(e);
                        inputs_done = true;
                        continue;
                    }
                    let Made {
                        args,
                        command,
                        stdin,
                        groups,
                    } = made;
                    let kill = relative.as_mut().map(|r| r.arm(seq));
                    commands.insert(seq, command.clone());
                    running.push(submit(
                        Job {
                            seq,
                            slot,
                            args,
                            command,
                            attempt: 1,
                            groups,
                            streamed: 0,
                            fed: 0,
                            stdin,
                        },
                        kill,
                    ));
                    // --delay: the next start waits.
                    if let Some(d) = a.delay {
                        next_start = Some(Instant::now() + d);
                    }
                }
            }
        }
        if a.keep_order {
            while let Some(d) = waiting.remove(&next_print) {
                if let Some(d) = d {
                    show(&printer, &mut log, &d)?;
                }
                if let Some(o) = &order {
                    o.printed(next_print);
                }
                next_print += 1;
            }
        }
        // Waiting only for --delay's time: wake then, or at a job's end.
        let delayed = next_start.filter(|t| {
            !inputs_done && halted.is_none() && running.len() < in_flight_max && Instant::now() < *t
        });
        // --timeout N%: running jobs are checked ten times a second.
        let checking = relative.is_some() && !running.is_empty();
        // Room for a job whose input is not read yet (-k's printing may
        // have made some).
        let wanting = room!();
        let waiting_for_something = !running.is_empty() || wanting || delayed.is_some() || checking;
        let next = tokio::select! {
            r = running.next(), if !running.is_empty() => r,
            _ = signalled(&mut hangup), if waiting_for_something => {
                if !hung_up {
                    hung_up = true;
                    inputs_done = true;
                    printer.bar.suspend(|| {
                        eprintln!("remex: SIGHUP received: no new jobs will be started");
                        eprintln!(
                            "remex: waiting for the {} jobs already given to workers (SIGTERM stops them now):",
                            commands.len()
                        );
                        for c in commands.values() {
                            eprintln!("remex: {c}");
                        }
                    });
                }
                continue;
            }
            _ = signalled(&mut usr1), if waiting_for_something => {
                printer.bar.suspend(|| {
                    for c in commands.values() {
                        eprintln!("remex: {c}");
                    }
                });
                continue;
            }
            input = inputs.next(), if wanting => {
                arrived = Some(input);
                continue;
            }
            _ = tokio::time::sleep_until(reload.as_ref().map_or_else(Instant::now, |r| r.due()).into()),
                if reload.is_some() && waiting_for_something => {
                let now = gateways.borrow().clone();
                let change = reload
                    .as_mut()
                    .and_then(|r| r.check(&a.workers, &now, &pending_specs));
                if let Some(change) = change {
                    *host_groups.borrow_mut() = change.groups;
                    for spec in change.start {
                        let (g, tx) = (group.clone(), started_tx.clone());
                        pending_specs.push(spec.clone());
                        starting.push(tokio::spawn(async move {
                            let r = g.makegateways(&spec).await;
                            let _ = tx.send((spec, r));
                        }));
                    }
                    for id in change.retire {
                        // Its running jobs finish: as long as they run (the
                        // run's end terminates it in any case).
                        retired.insert(id.clone());
                        let (g, busy) = (group.clone(), busy.clone());
                        tokio::spawn(async move {
                            // Its direct jobs first (no new one goes to it:
                            // it is out of `gateways` now).
                            busy.until_idle(&id).await;
                            if let Err(e) = g.retire(&id, RETIRE_BOUND).await {
                                eprintln!("remex: --sshloginfile: retiring {id}: {e}");
                            }
                        });
                    }
                    (in_flight_max, window) = bounds(refresh(&mut free, &retired));
                }
                continue;
            }
            started = started_rx.recv(), if !pending_specs.is_empty() => {
                if let Some((spec, r)) = started {
                    if let Some(at) = pending_specs.iter().position(|s| *s == spec) {
                        pending_specs.remove(at);
                    }
                    match r {
                        Ok(_) => {
                            (in_flight_max, window) = bounds(refresh(&mut free, &retired));
                        }
                        Err(e) => eprintln!(
                            "remex: --sshloginfile: {} (left out)",
                            crate::workers::without_login_env(&format!("{spec}: {e}"))
                        ),
                    }
                } else {
                    // Cannot be (the sender is held here): nothing more
                    // will report.
                    pending_specs.clear();
                }
                continue;
            }
            _ = tokio::time::sleep_until(delayed.unwrap_or_else(Instant::now).into()), if delayed.is_some() => continue,
            _ = tokio::time::sleep(Duration::from_millis(100)), if checking => {
                if let Some(r) = relative.as_mut() {
                    r.kill_overdue();
                }
                continue;
            }
            else => None,
        };
        let Some((job, result)) = next else {
            break;
        };
        ran_jobs += 1;
        if !job_ok(&result) && job.attempt < a.retries && halted.is_none() && !hung_up {
            let kill = relative.as_mut().map(|r| r.arm(job.seq));
            running.push(submit(
                Job {
                    attempt: job.attempt + 1,
                    streamed: 0,
                    fed: 0,
                    ..job
                },
                kill,
            ));
            continue;
        }
        if slotted && job.slot <= slot_count.get() as u64 {
            free.insert(job.slot);
        }
        commands.remove(&job.seq);
        let d = Done { job, result };
        if let Some(r) = relative.as_mut() {
            r.ended(d.job.seq, d.result.as_ref().ok().map(|t| t.value.seconds));
        }
        if let Ok(t) = &d.result {
            // --return: the files the job brought back, here.
            if let Err(e) = land(&t.value.files) {
                eprintln!("remex: job {}: {e}", d.job.seq);
            }
        }
        let code = status_code(&d.result);
        if job_ok(&d.result) {
            succeeded += 1;
        } else {
            failed += 1;
        }
        printer.bar.inc(1);
        if a.keep_order {
            waiting.insert(d.job.seq, Some(d));
        } else {
            show(&printer, &mut log, &d)?;
        }
        if halted.is_none() {
            halted = a.halt.check(failed, succeeded, total);
            if let Some(when) = halted {
                halt_status = Some(a.halt.status(failed, total, code));
                printer.bar.suspend(|| {
                    eprintln!(
                        "remex: --halt {} reached ({failed} failed, {succeeded} succeeded): {}",
                        a.halt,
                        if when == When::Now {
                            "killing the running jobs"
                        } else {
                            "waiting for the running jobs, starting no more"
                        }
                    )
                });
                if when == When::Now {
                    // Dropping a job's future kills its command.
                    killed = running.len() as u64;
                    running.clear();
                    commands.clear();
                }
            }
        }
    }
    if a.keep_order {
        // What is left (after a halt): in order.
        for (_, d) in std::mem::take(&mut waiting) {
            if let Some(d) = d {
                show(&printer, &mut log, &d)?;
            }
        }
        if let Some(o) = &order {
            o.finish();
        }
    }
    printer.bar.finish_and_clear();
    // Workers still starting for the --sshloginfile join, to be ended
    // with the rest.
    for s in starting {
        let _ = s.await;
    }
    if !a.basefile.is_empty() && a.cleanup {
        if let Some(w) = &printer.workers {
            if let Err(e) = basefiles(w, &base, &setup, true).await {
                eprintln!("remex: {e}");
            }
        }
    }
    group.terminate(setup.end_within()).await;
    // Inputs that could not be read, or outputs that could not be
    // written: what was asked was not done, whatever the jobs did.
    let mut unfinished = false;
    if let Some(e) = input_error {
        eprintln!("remex: {e} (the jobs of the inputs before it ran)");
        unfinished = true;
    }
    if printer.lost.get() > 0 {
        eprintln!(
            "remex: the output of {} jobs could not be written under --results",
            printer.lost.get()
        );
        unfinished = true;
    }
    let failed = failed + killed;
    // Ended by Ctrl-C: the jobs' ends are the interrupt's.
    if failed > 0 && !crate::interrupt::interrupted() {
        eprintln!(
            "remex: {failed} of {} jobs failed{}",
            failed + succeeded,
            if killed > 0 {
                format!(" ({killed} killed by --halt)")
            } else {
                String::new()
            }
        );
    }
    if unfinished {
        return Ok(255);
    }
    Ok(halt_status.unwrap_or_else(|| a.halt.end_status(failed, ran_jobs)))
}

/// How long a worker removed from the --sshloginfile has for its running
/// jobs: as long as they take, as in GNU parallel (the run's end ends it
/// in any case).
const RETIRE_BOUND: Duration = Duration::from_secs(365 * 24 * 3600);

/// Where the loop takes its inputs from.
enum Feed {
    /// Inputs already read (`:::`, files; their number known): taken as
    /// jobs are made, never waited for.
    Here(Inputs),
    /// Stdin, read on a thread of its own at most [`AHEAD`] lines (or
    /// `--pipe` blocks, at most [`AHEAD_BYTES`] of them) ahead of the
    /// jobs made: a read that waits (stdin fed by `tail -f`) never
    /// holds the command's loop, so jobs already made are sent and a job
    /// that ends is printed at once.
    Read(tokio::sync::mpsc::Receiver<Result<Vec<String>, String>>),
}

/// How far stdin is read ahead of the jobs made from it.
const AHEAD: usize = 64;

/// How many bytes of `--pipe` blocks stdin is read ahead (two blocks at
/// least).
const AHEAD_BYTES: usize = 64 << 20;

impl Feed {
    /// `block`: `--pipe`'s block size, if its blocks are the inputs.
    fn new(inputs: Inputs, block: Option<usize>) -> Feed {
        if inputs.total.is_some() {
            return Feed::Here(inputs);
        }
        let ahead = block.map_or(AHEAD, |b| (AHEAD_BYTES / b.max(1)).clamp(2, AHEAD));
        let (tx, rx) = tokio::sync::mpsc::channel(ahead);
        let handle = tokio::runtime::Handle::current();
        let read = move || {
            let mut inputs = inputs;
            // Places for half the window at a time: the loop takes inputs
            // one by one, and this thread is woken once per half window,
            // not once per input. It ends with the inputs, or when the
            // loop stops taking them.
            while let Ok(places) = handle.block_on(tx.reserve_many(ahead / 2)) {
                for place in places {
                    match inputs.next() {
                        Some(input) => place.send(input),
                        None => return,
                    }
                }
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("remex-inputs".into())
            .spawn(read)
        {
            // No thread: the inputs end here, with the reason.
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let _ = tx.try_send(Err(format!(
                "cannot start the thread that reads the inputs: {e}"
            )));
            return Feed::Read(rx);
        }
        Feed::Read(rx)
    }

    /// The next input if it is there (`Some(None)` at the end), `None`
    /// when it is not read yet.
    fn ready(&mut self) -> Option<Option<Result<Vec<String>, String>>> {
        use tokio::sync::mpsc::error::TryRecvError;
        match self {
            Feed::Here(inputs) => Some(inputs.next()),
            Feed::Read(rx) => match rx.try_recv() {
                Ok(input) => Some(Some(input)),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(None),
            },
        }
    }

    /// The next input, when it comes (`None` at the end).
    async fn next(&mut self) -> Option<Result<Vec<String>, String>> {
        match self {
            Feed::Here(inputs) => inputs.next(),
            Feed::Read(rx) => rx.recv().await,
        }
    }
}

/// A handler for `kind`, if one can be installed (the signal then no
/// longer ends the command).
fn unix_signal(kind: tokio::signal::unix::SignalKind) -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).ok()
}

/// The next delivery of `signal`; never without a handler.
async fn signalled(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
