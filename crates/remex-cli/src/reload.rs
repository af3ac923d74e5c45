//! `--sshloginfile` read again while jobs run, as GNU parallel reads it
//! ("re-read when a running job finishes though at most once per second.
//! This makes it possible to add and remove hosts while running"): a
//! host added to the file gets workers, which take jobs at once; one
//! removed takes no new job, its jobs waiting on it go to the others, its
//! running jobs finish (the pool's through `Group::retire`; those run on
//! it directly, with `--line-buffer`, `-u` or host groups, are waited for
//! first: [`Busy`]), then its workers end. A count changed (`2/host` to
//! `4/host`) adds or retires the difference.
//!
//! Only files are read again (`--slf -`, stdin, is read once); the
//! `-S` and `--tx` workers stay as they are. A file that cannot be read
//! or names no host any more keeps the current workers (said on stderr).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use remex::Gateway;

use crate::cli::WorkerArgs;
use crate::workers::HostGroups;

/// At most once a second, as GNU parallel.
const EVERY: Duration = Duration::from_secs(1);

/// The sshlogin files of a run and what they said last.
pub(crate) struct Reload {
    files: Vec<PathBuf>,
    /// The workers the start gave the logins without a count (-j of
    /// their CPUs), kept while the file names them so.
    filled: HashMap<String, usize>,
    /// Each file's text at the last read.
    texts: Vec<Option<String>>,
    next: Instant,
}

/// The workers to change after a read.
#[derive(Debug, Default)]
pub(crate) struct Change {
    /// Specs to start (`N*SPEC`).
    pub(crate) start: Vec<String>,
    /// Gateways to retire.
    pub(crate) retire: Vec<String>,
    /// The host groups the files now give.
    pub(crate) groups: HostGroups,
}

impl Reload {
    /// A reader of `args`' sshlogin files, if it names any that can be
    /// read again.
    pub(crate) fn new(args: &WorkerArgs, filled: HashMap<String, usize>) -> Option<Reload> {
        let files: Vec<PathBuf> = args
            .sshloginfile
            .iter()
            .filter(|f| f.as_os_str() != "-")
            .cloned()
            .collect();
        if files.is_empty() {
            return None;
        }
        // Compared at the first look (the run read them before its
        // workers started).
        let texts = vec![None; files.len()];
        Some(Reload {
            files,
            filled,
            texts,
            next: Instant::now() + EVERY,
        })
    }

    /// When the files are to be looked at next.
    pub(crate) fn due(&self) -> Instant {
        self.next
    }

    /// Looks at the files (when [`Reload::due`]); when one changed, what
    /// to start and retire for the workers `now` (the group's, and those
    /// of the specs `starting`) to be what `args` says.
    pub(crate) fn check(
        &mut self,
        args: &WorkerArgs,
        now: &[Gateway],
        starting: &[String],
    ) -> Option<Change> {
        self.next = Instant::now() + EVERY;
        let texts: Vec<Option<String>> = self
            .files
            .iter()
            .map(|f| crate::workers::read_sshloginfile(f).ok())
            .collect();
        if texts == self.texts {
            return None;
        }
        self.texts = texts;
        // No worker named at all would mean this machine's default
        // workers: not what an emptied file asks.
        let named = crate::workers::sshlogins(&[], &self.files)
            .map(|l| !l.specs.is_empty())
            .unwrap_or(true)
            || !args.tx.is_empty()
            || !args.txfile.is_empty()
            || !args.sshlogin.is_empty();
        if !named {
            eprintln!(
                "remex: --sshloginfile changed and names no host: the workers stay as they are"
            );
            return None;
        }
        let (specs, groups) = match crate::workers::specs_and_groups(args) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("remex: --sshloginfile changed: {e}; the workers stay as they are");
                return None;
            }
        };
        // A login without a count the start filled to its CPUs keeps its
        // workers (one added to the file gets one: its CPUs are not
        // asked).
        let specs: Vec<String> = specs
            .into_iter()
            .map(|s| match self.filled.get(&s) {
                Some(n) if *n > 1 => format!("{n}*{s}"),
                _ => s,
            })
            .collect();
        match plan(&specs, now, starting) {
            Ok((start, retire)) if start.is_empty() && retire.is_empty() => None,
            Ok((start, retire)) => Some(Change {
                start,
                retire,
                groups,
            }),
            Err(e) => {
                eprintln!("remex: --sshloginfile changed: {e}; the workers stay as they are");
                None
            }
        }
    }
}

/// Workers by spec without its count, in the order first named.
fn counts(specs: &[String]) -> Result<Vec<(String, usize)>, String> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for s in specs {
        let parsed = remex::Spec::parse_many(s).map_err(|e| e.to_string())?;
        let Some(first) = parsed.first() else {
            continue;
        };
        let n: usize = parsed.iter().map(|p| p.workers()).sum();
        match out.iter_mut().find(|(raw, _)| *raw == first.raw) {
            Some((_, k)) => *k += n,
            None => out.push((first.raw.clone(), n)),
        }
    }
    Ok(out)
}

/// What makes the workers `now` (and those being started for the specs
/// `starting`) those `wanted` (`N*SPEC`s): for each spec, the missing
/// count started, the extra ones (the last started) retired.
fn plan(
    wanted: &[String],
    now: &[Gateway],
    starting: &[String],
) -> Result<(Vec<String>, Vec<String>), String> {
    let want = counts(wanted)?;
    let coming = counts(starting)?;
    let mut have: HashMap<&str, Vec<&str>> = HashMap::new();
    for g in now {
        have.entry(g.spec().raw.as_str()).or_default().push(g.id());
    }
    let mut start = Vec::new();
    for (raw, n) in &want {
        let k = have.get(raw.as_str()).map_or(0, Vec::len)
            + coming.iter().find(|(c, _)| c == raw).map_or(0, |(_, k)| *k);
        if *n > k {
            start.push(match n - k {
                1 => raw.clone(),
                d => format!("{d}*{raw}"),
            });
        }
    }
    let mut retire = Vec::new();
    for (raw, ids) in &have {
        let n = want.iter().find(|(w, _)| w == raw).map_or(0, |(_, n)| *n);
        if ids.len() > n {
            retire.extend(ids[n..].iter().map(|id| id.to_string()));
        }
    }
    Ok((start, retire))
}

/// Jobs that run on a worker directly, outside the group's pool
/// (`--line-buffer`, `-u`, host groups), by gateway: a worker removed from
/// the file is retired only once they have ended, since `Group::retire`
/// waits for the pool's tasks only.
#[derive(Default)]
pub(crate) struct Busy {
    counts: std::sync::Mutex<HashMap<String, usize>>,
    idle: tokio::sync::Notify,
}

/// One direct job on a gateway, counted until dropped.
pub(crate) struct OnWorker {
    busy: std::sync::Arc<Busy>,
    id: String,
}

impl Busy {
    /// Counts a direct job on gateway `id` until the guard is dropped.
    pub(crate) fn enter(self: &std::sync::Arc<Self>, id: &str) -> OnWorker {
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_string())
            .or_insert(0) += 1;
        OnWorker {
            busy: self.clone(),
            id: id.to_string(),
        }
    }

    /// Waits until no direct job runs on gateway `id` (no bound: they end
    /// with their commands, and the run's end ends them in any case).
    pub(crate) async fn until_idle(&self, id: &str) {
        loop {
            let told = self.idle.notified();
            let n = self
                .counts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .copied()
                .unwrap_or(0);
            if n == 0 {
                return;
            }
            told.await;
        }
    }
}

impl Drop for OnWorker {
    fn drop(&mut self) {
        let mut counts = self.busy.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.id);
            }
        }
        drop(counts);
        self.busy.idle.notify_waiters();
    }
}
