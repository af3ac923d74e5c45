//! GNU parallel's `--roundrobin`, `--shard` and `--bin`: `--pipe`'s input
//! goes to a few long jobs, one a slot, instead of a job a block, on each
//! job's stdin as it comes (`CommandRequest::stdin_from`).
//!
//! `--roundrobin` gives block i to the job of slot i mod N; a slot's job
//! starts with the first block it gets (so fewer blocks than slots make
//! fewer jobs, as in GNU parallel). `--shard COL` and `--bin COL` give
//! each record (line) to a job by the value of its column COL: its hash,
//! or the number itself, mod N (every slot's job runs, as in GNU
//! parallel). A job that ends before its input does leaves its slot to a
//! new job for the next block. At the input's end every job's stdin ends,
//! and the jobs end as their commands do. A job is never run again
//! elsewhere: what it was fed is gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use remex::worker::CommandRequest;
use remex::Gateway;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::{Receiver, Sender};

use crate::jobs::Inputs;

/// Blocks queued for a job beyond the one it is being fed (each up to
/// `--block`).
const AHEAD: usize = 1;

/// The inputs the command's loop makes jobs of: one (with no argument)
/// for each job to start, in order; an error ends them.
pub(crate) type Starts = Receiver<Result<Vec<String>, String>>;

/// The blocks queued for the jobs, by job number, until each job takes
/// its queue.
#[derive(Clone, Default)]
pub(crate) struct Blocks(Arc<Mutex<HashMap<u64, Receiver<bytes::Bytes>>>>);

/// How `--shard` and `--bin` choose a record's job.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    by: By,
    /// The key's column, from 1 (0 while `name` is not found yet).
    column: usize,
    /// A column's name, looked for in the input's first line (which is
    /// then no record).
    name: Option<String>,
    /// Between columns: `--colsep`, else a comma (GNU parallel's); a
    /// single space is Perl's `split ' '`: blanks, those at the start
    /// skipped.
    sep: regex::bytes::Regex,
    awk: bool,
}

#[derive(Debug, Clone, Copy)]
enum By {
    /// `--shard`: the value's hash.
    Hash,
    /// `--bin`: the value as a whole number.
    Number,
}

/// How many bytes of records a job's queue gets at a time.
const BATCH: usize = 64 << 10;

impl Route {
    /// `--shard COL` (`bin` false) or `--bin COL`, columns split at
    /// `colsep` (a regular expression; a comma when none).
    pub(crate) fn new(col: &str, bin: bool, colsep: Option<&str>) -> Result<Route, String> {
        let option = if bin { "--bin" } else { "--shard" };
        let named = crate::groupby::is_column_name(col);
        let (column, name) = match col.trim().parse::<usize>() {
            Ok(n) if n > 0 => (n, None),
            Err(_) if named => (0, Some(col.to_string())),
            _ => {
                return Err(format!(
                    "{option} {col:?}: give a column number (from 1) or name; Perl expressions are GNU parallel's, not offered (docs/cli.md)"
                ))
            }
        };
        let sep = colsep.unwrap_or(",");
        let awk = sep == " ";
        let sep = if awk { r"\s+" } else { sep };
        let sep = regex::bytes::Regex::new(sep)
            .map_err(|e| format!("--colsep {sep:?} is not a regular expression: {e}"))?;
        Ok(Route {
            by: if bin { By::Number } else { By::Hash },
            column,
            name,
            sep,
            awk,
        })
    }

    /// The columns of `line` (without its newline), split as the key's.
    fn columns<'a>(&'a self, line: &'a [u8], most: usize) -> impl Iterator<Item = &'a [u8]> + 'a {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = if self.awk {
            line.trim_ascii_start()
        } else {
            line
        };
        self.sep.splitn(line, most)
    }

    /// With a column's name: `header`, the input's first line, names the
    /// column; an error naming it when it does not.
    fn resolve(&mut self, header: &[u8]) -> Result<(), String> {
        let Some(name) = &self.name else {
            return Ok(());
        };
        let at = self
            .columns(header, usize::MAX)
            .position(|n| n == name.as_bytes());
        match at {
            Some(i) => {
                self.column = i + 1;
                self.name = None;
                Ok(())
            }
            None => Err(format!(
                "{} {name}: no column of that name in the first line {:?}",
                match self.by {
                    By::Hash => "--shard",
                    By::Number => "--bin",
                },
                String::from_utf8_lossy(header.strip_suffix(b"\n").unwrap_or(header))
            )),
        }
    }

    /// The slot (from 0) of `slots` whose job gets `record`.
    fn slot(&self, record: &[u8], slots: usize) -> usize {
        // GNU parallel's `split $sep, $_, $col+1`: the key is the column
        // (none past the last: empty).
        let key = match self.column {
            0 => None,
            c => self.columns(record, c + 1).nth(c - 1),
        };
        let key = key.unwrap_or_default();
        match self.by {
            By::Hash => {
                use std::hash::{Hash, Hasher};
                let mut h = std::hash::DefaultHasher::new();
                key.hash(&mut h);
                (h.finish() % slots as u64) as usize
            }
            // GNU parallel's bins: value mod N, the remainder 0 to the
            // last job (Perl's %: the result is never negative here).
            By::Number => {
                let r = number(key).rem_euclid(slots as i128) as usize;
                match r {
                    0 => slots - 1,
                    r => r - 1,
                }
            }
        }
    }
}

/// `text` as Perl reads a number for `%`: blanks, a sign and digits at
/// its start (a fraction cut off), else 0.
fn number(text: &[u8]) -> i128 {
    let t = text.trim_ascii_start();
    let (minus, t) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let n = t
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0i128, |n, d| {
            n.saturating_mul(10).saturating_add(i128::from(d - b'0'))
        });
    if minus {
        -n
    } else {
        n
    }
}

/// Reads `inputs` (`--pipe`'s blocks) on a thread of its own, handing
/// them to the jobs of `slots` slots in turn, or each record by `route`,
/// and a start for each job that a block needs (with `route`, every
/// slot's at once).
pub(crate) fn feed(
    inputs: Inputs,
    slots: usize,
    route: Option<Route>,
) -> Result<(Starts, Blocks), String> {
    let slots = slots.max(1);
    let (starts_tx, starts) = tokio::sync::mpsc::channel(slots);
    let blocks = Blocks::default();
    let queues = blocks.clone();
    std::thread::Builder::new()
        .name("remex-blocks".into())
        .spawn(move || read(inputs, slots, route, &starts_tx, &queues))
        .map_err(|e| format!("cannot start the thread that reads the input: {e}"))?;
    Ok((starts, blocks))
}

/// The slots' jobs, each started with the first bytes it gets.
struct Lanes<'a> {
    lanes: Vec<Option<Sender<bytes::Bytes>>>,
    jobs: u64,
    starts: &'a Sender<Result<Vec<String>, String>>,
    blocks: &'a Blocks,
}

impl Lanes<'_> {
    /// `bytes` to slot `i`'s job (a new one if it has none, or its job
    /// is over); false when the command's loop takes no more jobs.
    fn send(&mut self, i: usize, mut bytes: bytes::Bytes) -> bool {
        let lane = &mut self.lanes[i];
        loop {
            let to = match lane {
                Some(to) => to.clone(),
                None => {
                    let (to, queue) = tokio::sync::mpsc::channel(AHEAD);
                    self.jobs += 1;
                    self.blocks
                        .0
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(self.jobs, queue);
                    if self.starts.blocking_send(Ok(Vec::new())).is_err() {
                        return false;
                    }
                    *lane = Some(to.clone());
                    to
                }
            };
            match to.blocking_send(bytes) {
                Ok(()) => return true,
                // Its job is over: a new one for the bytes.
                Err(back) => {
                    bytes = back.0;
                    *lane = None;
                }
            }
        }
    }
}

/// The reading thread's work (see [`feed`]); it ends when the input
/// does (dropping every queue: the jobs' stdin ends), or when the
/// command's loop takes no more jobs.
fn read(
    mut inputs: Inputs,
    slots: usize,
    mut route: Option<Route>,
    starts: &Sender<Result<Vec<String>, String>>,
    blocks: &Blocks,
) {
    let mut lanes = Lanes {
        lanes: vec![None; slots],
        jobs: 0,
        starts,
        blocks,
    };
    // --shard, --bin: every slot's job, and records gathered per slot.
    let mut gathered: Vec<Vec<u8>> = vec![Vec::new(); slots];
    // By a column's name: the first line names it, and is no record (GNU
    // parallel's), before any job starts.
    let mut first = None;
    if let Some(r) = route.as_mut().filter(|r| r.name.is_some()) {
        let mut block = match inputs.next() {
            None => Vec::new(),
            Some(Ok(args)) => block_of(args),
            Some(Err(e)) => {
                let _ = starts.blocking_send(Err(e));
                return;
            }
        };
        let end = block
            .iter()
            .position(|b| *b == b'\n')
            .map_or(block.len(), |i| i + 1);
        if let Err(e) = r.resolve(&block[..end]) {
            let _ = starts.blocking_send(Err(e));
            return;
        }
        block.drain(..end);
        first = Some(Ok(vec![crate::raw::text(block)]));
    }
    let route = route.as_ref();
    if route.is_some() {
        for i in 0..slots {
            if !lanes.send(i, bytes::Bytes::new()) {
                return;
            }
        }
    }
    for (i, input) in first.into_iter().chain(inputs.by_ref()).enumerate() {
        let block: Vec<u8> = match input {
            Ok(args) => block_of(args),
            Err(e) => {
                let _ = starts.blocking_send(Err(e));
                return;
            }
        };
        let Some(route) = route else {
            if !lanes.send(i % slots, block.into()) {
                return;
            }
            continue;
        };
        for record in block.split_inclusive(|b| *b == b'\n') {
            let to = route.slot(record, slots);
            gathered[to].extend_from_slice(record);
            if gathered[to].len() >= BATCH
                && !lanes.send(to, std::mem::take(&mut gathered[to]).into())
            {
                return;
            }
        }
    }
    for (to, rest) in gathered.into_iter().enumerate() {
        if !rest.is_empty() && !lanes.send(to, rest.into()) {
            return;
        }
    }
}

/// The bytes of a block, an input's one argument.
fn block_of(mut args: Vec<String>) -> Vec<u8> {
    args.pop()
        .map(|b| crate::raw::bytes(&b).into_owned())
        .unwrap_or_default()
}

/// A job's feeding: stops when dropped (the job over).
pub(crate) struct Feeding {
    task: tokio::task::JoinHandle<()>,
    /// Bytes written to the job's stdin.
    fed: Arc<AtomicU64>,
}

impl Feeding {
    /// The bytes the job was fed, its feeding over (the job's Send in
    /// the job log).
    pub(crate) fn fed(self) -> u64 {
        self.fed.load(Ordering::Acquire)
    }
}

impl Drop for Feeding {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Tells a job's feeding that its call is made.
pub(crate) struct Go(tokio::sync::oneshot::Sender<()>);

impl Go {
    /// The call is made: feed it.
    pub(crate) fn go(self) {
        let _ = self.0.send(());
    }
}

/// `req` (job `seq`) with its stdin fed its blocks through a channel of
/// `gw`'s, by a task that ends the stdin after the last (or stops when
/// the job no longer reads). The task starts once told that the call is
/// made ([`Go`]): an item sent to a channel before the call that names it
/// would find no channel there.
pub(crate) fn attach(
    gw: &Gateway,
    mut req: CommandRequest,
    blocks: &Blocks,
    seq: u64,
) -> (CommandRequest, Feeding, Go) {
    let ch = gw.newchannel();
    req.stdin_from = Some(ch.handle());
    let queue = blocks
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&seq);
    let (go, called) = tokio::sync::oneshot::channel();
    let fed = Arc::new(AtomicU64::new(0));
    let counted = fed.clone();
    let task = tokio::spawn(async move {
        // The call was never made: nothing to feed.
        if called.await.is_err() {
            return;
        }
        let mut to = ch.async_writer();
        if let Some(mut queue) = queue {
            while let Some(block) = queue.recv().await {
                if to.write_all(&block).await.is_err() {
                    return;
                }
                counted.fetch_add(block.len() as u64, Ordering::AcqRel);
            }
        }
        let _ = to.shutdown().await;
    });
    (req, Feeding { task, fed }, Go(go))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_read_as_perl_reads_a_number() {
        for (text, n) in [
            ("12", 12),
            ("  -12.7x", -12),
            ("+4", 4),
            ("12abc", 12),
            ("abc", 0),
            ("", 0),
            ("-", 0),
        ] {
            assert_eq!(number(text.as_bytes()), n, "{text:?}");
        }
    }

    #[test]
    fn bins_and_shards_choose_a_job_by_the_column() {
        // GNU parallel's bins: value mod N, 0 to the last job.
        let bin = Route::new("1", true, None).unwrap();
        let slots: Vec<usize> = ["1,a\n", "2,b\n", "3,c\n", "4\n", "-4,x\n", ",e\n"]
            .iter()
            .map(|r| bin.slot(r.as_bytes(), 3))
            .collect();
        assert_eq!(slots, [0, 1, 2, 0, 1, 2]);
        // Perl's split ' ': blanks, leading ones skipped.
        let awk = Route::new("2", true, Some(" ")).unwrap();
        assert_eq!(awk.slot(b" 7  5\n", 3), 1);
        // A column past the last is empty: 0.
        assert_eq!(awk.slot(b"7\n", 3), 2);
        // --shard: the same value, the same job, whatever follows it.
        let shard = Route::new("1", false, None).unwrap();
        assert_eq!(shard.slot(b"k,1\n", 5), shard.slot(b"k,2,3", 5));
        // By name: the first line names the column.
        let mut named = Route::new("v", true, None).unwrap();
        named.resolve(b"k,v\n").unwrap();
        assert_eq!(named.slot(b"a,5\n", 3), 1);
        let e = Route::new("w", false, None).unwrap().resolve(b"k,v\n");
        assert!(e.unwrap_err().contains("--shard w: no column"));
        assert!(Route::new("$F[1]", false, None)
            .unwrap_err()
            .contains("give a column number"));
        assert!(Route::new("0", true, None).is_err());
    }
}
