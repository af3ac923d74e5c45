//! The job log, in GNU parallel's format (tab-separated: Seq, Host,
//! Starttime, JobRuntime, Send, Receive, Exitval, Signal, Command), and
//! what `--resume` and `--resume-failed` read from it.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// The first line of a job log.
pub(crate) const HEADER: &str =
    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand";

/// One finished job.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) host: String,
    /// Seconds since the Unix epoch.
    pub(crate) start: f64,
    pub(crate) runtime: f64,
    /// Bytes given to its stdin (`--pipe`).
    pub(crate) sent: u64,
    pub(crate) received: u64,
    /// 0 when a signal ended the job (as GNU parallel writes it), -1 when
    /// it ended without an exit code otherwise (a timeout, its worker
    /// lost, or it could not run).
    pub(crate) exitval: i64,
    pub(crate) signal: i64,
    pub(crate) command: String,
}

impl Entry {
    /// The fields before Command, as the log writes them (also the
    /// records of `--results FILE.csv`).
    pub(crate) fn figures(&self) -> [String; 8] {
        [
            self.seq.to_string(),
            self.host.clone(),
            format!("{:.3}", self.start),
            format!("{:.3}", self.runtime),
            self.sent.to_string(),
            self.received.to_string(),
            self.exitval.to_string(),
            self.signal.to_string(),
        ]
    }

    /// The log's line: JobRuntime right-aligned in 10 columns
    /// (GNU parallel's `%10.3f`; its CSV and JSON records have `%0.3f`).
    fn line(&self) -> String {
        let mut f = self.figures();
        f[3] = format!("{:10.3}", self.runtime);
        // A command refused for an input that is not UTF-8 (crate::raw)
        // is logged with its bytes escaped.
        let command = crate::raw::shown(&self.command).replace('\n', " ");
        format!("{}\t{command}", f.join("\t"))
    }
}

/// How a previous run's log is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Start a new log.
    No,
    /// Skip the jobs the log has.
    All,
    /// Skip the jobs the log has as succeeded; run the failed ones again.
    Failed,
}

/// The jobs a log at `path` holds, in its order: (seq, succeeded,
/// command); none when there is no file.
pub(crate) fn read(path: &Path) -> Result<Vec<(u64, bool, String)>, String> {
    let name = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read the job log {name}: {e}")),
    };
    let mut jobs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 && line.starts_with("Seq\t") || line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.splitn(9, '\t').collect();
        let num = |k: usize| f.get(k).and_then(|x| x.parse::<i64>().ok());
        match (num(0), num(6), num(7)) {
            (Some(seq), Some(exit), Some(sig)) if seq > 0 => {
                let command = f.get(8).map_or("", |c| c).to_string();
                jobs.push((seq as u64, exit == 0 && sig == 0, command));
            }
            _ => {
                return Err(format!(
                    "{name}, line {}: not a job log line (Seq, Host, Starttime, JobRuntime, Send, Receive, Exitval, Signal, Command): {line:?}",
                    i + 1
                ))
            }
        }
    }
    Ok(jobs)
}

/// `--joblog +FILE` (GNU parallel's): FILE, appended to; any other
/// name as it is, not.
fn appended(path: &Path) -> (&Path, bool) {
    match path.to_str().and_then(|p| p.strip_prefix('+')) {
        Some(rest) if !rest.is_empty() => (Path::new(rest), true),
        _ => (path, false),
    }
}

/// `--retry-failed`: the command of each job of the log at `path` by its
/// number (from 1), empty for a job that succeeded or is not there.
pub(crate) fn failed_commands(path: &Path) -> Result<Vec<String>, String> {
    let jobs = read(appended(path).0)?;
    let last = jobs.iter().map(|(s, _, _)| *s).max().unwrap_or(0) as usize;
    let mut ok = vec![false; last];
    let mut commands = vec![String::new(); last];
    for (seq, good, command) in jobs {
        let i = seq as usize - 1;
        ok[i] |= good;
        commands[i] = command;
    }
    Ok(commands
        .into_iter()
        .zip(ok)
        .map(|(c, good)| if good { String::new() } else { c })
        .collect())
}

/// An open job log.
pub(crate) struct JobLog {
    to: Sink,
    /// Seq -> succeeded, from the previous run (when resuming).
    done: HashMap<u64, bool>,
    resume: Resume,
}

/// Where the log's lines go.
enum Sink {
    File(std::fs::File),
    /// `--joblog -`, as GNU parallel: among the jobs' output.
    Stdout,
}

impl JobLog {
    /// Opens the log at `path`: a new one (truncated, with a header), or,
    /// when resuming, the previous one to read and append to. As in GNU
    /// parallel, `-` is stdout, and `+FILE` appends to FILE without a
    /// header.
    pub(crate) fn open(path: &Path, resume: Resume) -> Result<JobLog, String> {
        if path == Path::new("-") {
            if resume != Resume::No {
                return Err(
                    "--resume reads the job log: name a file for --joblog, not - (stdout)".into(),
                );
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "{HEADER}").map_err(|e| format!("writing the job log: {e}"))?;
            return Ok(JobLog {
                to: Sink::Stdout,
                done: HashMap::new(),
                resume,
            });
        }
        let (path, append) = appended(path);
        let name = path.display();
        let mut done = HashMap::new();
        if resume != Resume::No {
            for (seq, ok, _) in read(path)? {
                *done.entry(seq).or_insert(ok) |= ok;
            }
        }
        let mut opts = std::fs::OpenOptions::new();
        if resume == Resume::No && !append {
            opts.write(true).create(true).truncate(true);
        } else {
            opts.append(true).create(true);
        }
        let mut file = opts
            .open(path)
            .map_err(|e| format!("cannot write the job log {name}: {e}"))?;
        let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(true);
        if empty && !append {
            writeln!(file, "{HEADER}").map_err(|e| format!("writing {name}: {e}"))?;
        }
        Ok(JobLog {
            to: Sink::File(file),
            done,
            resume,
        })
    }

    /// Whether job `seq` is to be skipped.
    pub(crate) fn skips(&self, seq: u64) -> bool {
        match (self.resume, self.done.get(&seq)) {
            (Resume::No, _) | (_, None) => false,
            (Resume::All, Some(_)) => true,
            (Resume::Failed, Some(ok)) => *ok,
        }
    }

    /// Appends `e` (written at once: a crash loses no printed job).
    pub(crate) fn record(&mut self, e: &Entry) -> Result<(), String> {
        let written = match &mut self.to {
            Sink::File(f) => writeln!(f, "{}", e.line()),
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", e.line()).and_then(|_| out.flush())
            }
        };
        written.map_err(|err| format!("writing the job log: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, exitval: i64) -> Entry {
        Entry {
            seq,
            host: "local".into(),
            start: 1.5,
            runtime: 0.25,
            sent: 0,
            received: 3,
            exitval,
            signal: 0,
            command: format!("job {seq}"),
        }
    }

    #[test]
    fn a_resumed_log_skips_what_it_holds_or_only_what_succeeded() {
        let dir = std::env::temp_dir().join(format!("remex-cli-joblog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let mut log = JobLog::open(&path, Resume::No).unwrap();
        log.record(&entry(1, 0)).unwrap();
        log.record(&entry(2, 3)).unwrap();
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("{HEADER}\n1\tlocal\t1.500\t     0.250\t0\t3\t0\t0\tjob 1\n2\tlocal\t1.500\t     0.250\t0\t3\t3\t0\tjob 2\n")
        );
        let log = JobLog::open(&path, Resume::All).unwrap();
        assert!(log.skips(1) && log.skips(2) && !log.skips(3));
        let mut log = JobLog::open(&path, Resume::Failed).unwrap();
        assert!(log.skips(1) && !log.skips(2) && !log.skips(3));
        // A rerun that succeeds is appended; the log keeps one header.
        log.record(&entry(2, 0)).unwrap();
        drop(log);
        let log = JobLog::open(&path, Resume::Failed).unwrap();
        assert!(log.skips(2));
        assert_eq!(
            std::fs::read_to_string(&path)
                .unwrap()
                .matches("Seq\t")
                .count(),
            1
        );
        // Not a job log: refused, naming the line.
        std::fs::write(&path, "hello\n").unwrap();
        let e = JobLog::open(&path, Resume::All).err().unwrap();
        assert!(e.contains("line 1: not a job log line"), "{e}");
        // Without resuming, the log starts again.
        let log = JobLog::open(&path, Resume::No).unwrap();
        assert!(!log.skips(1));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{HEADER}\n")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
