//! What a job's `run` request carries besides its command line, from
//! `remex run`'s options: `--env`'s variables, `--workdir`, `--nice`, and
//! the files that travel with jobs (`--transferfile`, `--return`,
//! `--cleanup`, `--trc`, `--basefile`; carried out on the worker by
//! [`remex::worker::Transfer`]).

use crate::blockfile::BlockFile;
use crate::cli::{RunArgs, TermSeq};
use crate::jobs::{At, Template};
use crate::workers::Workers;

/// The directory `--workdir DIR` names for the jobs: `.` is this
/// directory, as `~/PATH` when it is under the home directory (so that
/// it is the same place on hosts where home differs), else as it is;
/// `...` (GNU parallel's own temporary directory) is refused.
fn workdir(dir: &str) -> Result<String, String> {
    match dir {
        "." => {
            let here = std::env::current_dir()
                .map_err(|e| format!("--workdir .: the current directory: {e}"))?;
            let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
            Ok(match home.and_then(|h| here.strip_prefix(h).ok().map(|p| p.to_path_buf())) {
                Some(rel) if rel.as_os_str().is_empty() => "~".into(),
                Some(rel) => format!("~/{}", rel.display()),
                None => here.display().to_string(),
            })
        }
        "..." => Err(
            "--workdir ... (a temporary directory of GNU parallel's own) is not offered: name a directory"
                .into(),
        ),
        d if d.trim().is_empty() => {
            Err("--workdir is empty: name a directory (. for this one)".into())
        }
        d => Ok(d.to_string()),
    }
}

/// What every job's request carries besides its command: `--env`'s
/// variables (a bash function's `BASH_FUNC_NAME%%` too), `--workdir`,
/// `--nice`, and the files that travel with it (`--transferfile`,
/// `--return`, `--cleanup`, `--trc`).
pub(crate) struct JobSetup {
    env: Vec<(String, String)>,
    pub(crate) workdir: Option<String>,
    nice: Option<i32>,
    /// Templates of the files sent and returned.
    send: Vec<Template>,
    back: Vec<Template>,
    cleanup: bool,
    /// This directory: files are not moved for a job that runs in it.
    pub(crate) here: Option<remex::worker::Place>,
    /// The shell that runs the jobs (`None`: sh).
    shell: Option<String>,
    /// `--termseq` (GNU parallel's default when not given).
    termseq: Vec<(String, u64)>,
    /// How long that sequence may take.
    sequence: std::time::Duration,
    /// Whether jobs hold their slot from start to end, so that
    /// `$PARALLEL_JOBSLOT` names it.
    pub(crate) jobslot: bool,
    /// `--process-slot-var NAME`: NAME is the slot less one.
    slot_var: Option<String>,
    /// This process's pid, for `$PARALLEL_PID`.
    pid: String,
    /// `--cat`, `--fifo`: the job's block reaches it as a file.
    block_file: Option<BlockFile>,
}

/// The shells an ancestor process may be, by name (GNU parallel's list).
const SHELLS: &[&str] = &[
    "ash",
    "bash",
    "bsd-csh",
    "csh",
    "dash",
    "fdsh",
    "fish",
    "fizsh",
    "ksh",
    "ksh93",
    "lksh",
    "mksh",
    "pdksh",
    "posh",
    "rbash",
    "rc",
    "rush",
    "rzsh",
    "sash",
    "sh",
    "static-sh",
    "tcsh",
    "yash",
    "zsh",
];

/// How many ancestors are looked at, at most (a loop in /proc's answers
/// cannot keep the walk going).
const ANCESTORS_MAX: usize = 64;

/// The shell that runs the jobs, chosen as GNU parallel chooses it:
/// `$PARALLEL_SHELL`, else the nearest ancestor process that is a shell
/// (by the name it was started as: `bash`, `-bash`, `/bin/zsh`...), else
/// `$SHELL`; by name, found on each worker's PATH. `None` (sh) when the
/// shell found is sh or none says.
pub(crate) fn shell() -> Option<String> {
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    if let Some(s) = std::env::var("PARALLEL_SHELL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        return Some(s);
    }
    let found = ancestor_shell(std::os::unix::process::parent_id()).or_else(|| {
        std::env::var("SHELL")
            .ok()
            .filter(|s| !s.is_empty())
            .map(|s| base(&s))
    });
    found.filter(|s| s != "sh")
}

/// The name of the nearest shell among `pid` and its ancestors, read
/// from /proc (each one's argv[0] and parent); `None` without /proc.
fn ancestor_shell(mut pid: u32) -> Option<String> {
    for _ in 0..ANCESTORS_MAX {
        if pid == 0 {
            return None;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
        if let Some(name) = shell_named(&String::from_utf8_lossy(argv0)) {
            return Some(name);
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        pid = parent_in_stat(&stat)?;
    }
    None
}

/// The shell an argv[0] names (`bash`, `-bash` for a login shell,
/// `/usr/bin/zsh`, `busybox sh`), if it is one.
fn shell_named(argv0: &str) -> Option<String> {
    let word = argv0.strip_prefix("busybox ").unwrap_or(argv0);
    let word = word.split(' ').next().unwrap_or(word);
    let name = word.rsplit('/').next().unwrap_or(word);
    let name = name.strip_prefix('-').unwrap_or(name);
    SHELLS.contains(&name).then(|| name.to_string())
}

/// The parent's pid in a /proc/PID/stat line (the field after the
/// command, which is in parentheses and may hold spaces and parentheses).
fn parent_in_stat(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

impl JobSetup {
    pub(crate) fn new(a: &RunArgs, names: &[(String, usize)]) -> Result<JobSetup, String> {
        // Timeouts, `--halt now` and Ctrl-C end a job with it, as in GNU
        // parallel; the workers' end waits for it.
        let termseq = a.termseq.clone().unwrap_or_else(TermSeq::gnu);
        let sequence = termseq.total();
        crate::interrupt::jobs_end_within(sequence);
        let mut env = Vec::new();
        for name in &a.env {
            if name == "_" {
                return Err(
                    "--env _ needs GNU parallel's --record-env file; name the variables".into(),
                );
            }
            for key in [name.clone(), format!("BASH_FUNC_{name}%%")] {
                if let Ok(v) = std::env::var(&key) {
                    env.push((key, v));
                }
            }
        }
        let renames = a.renames();
        let spelling = crate::jobs::Spelling {
            renames: &renames,
            names,
            plus: a.plus,
            ..Default::default()
        };
        let parse = |t: &String| Template::parse_tag(t, &spelling);
        let mut send: Vec<Template> = a.transferfile.iter().map(parse).collect();
        let mut back: Vec<Template> = a.returns.iter().map(parse).collect();
        if a.transfer || !a.trc.is_empty() {
            // The input, as -I spells it (GNU parallel's --transfer).
            send.push(parse(&a.replace.clone().unwrap_or_else(|| "{}".into())));
        }
        back.extend(a.trc.iter().map(parse));
        Ok(JobSetup {
            env,
            workdir: a.workdir.as_deref().map(workdir).transpose()?,
            nice: a.nice,
            send,
            back,
            cleanup: a.cleanup || !a.trc.is_empty(),
            here: remex::worker::Place::of(std::path::Path::new(".")),
            shell: shell(),
            termseq: termseq.0,
            sequence,
            jobslot: false,
            slot_var: a.process_slot_var.clone(),
            pid: std::process::id().to_string(),
            block_file: BlockFile::of(a.cat, a.fifo),
        })
    }

    /// The shell that runs the jobs (`None`: sh).
    pub(crate) fn shell(&self) -> Option<&str> {
        self.shell.as_deref()
    }

    /// How long the workers have to end when the run is over: 5 s, and
    /// the jobs' kill sequence (those killed by `--halt now` go through it).
    pub(crate) fn end_within(&self) -> std::time::Duration {
        std::time::Duration::from_secs(5) + self.sequence
    }

    /// The `run` request for `command` under `limits`, with the files of
    /// a job with arguments `args` (read now).
    pub(crate) fn request(
        &self,
        limits: &crate::cli::CommandLimits,
        command: &str,
        at: At,
        args: &[String],
    ) -> Result<remex::worker::CommandRequest, String> {
        if crate::raw::has_raw(command) {
            // Quoted for a Bourne shell, such an input is printf's; csh
            // and rc get it as it is, which they cannot be given.
            let shell = self.shell.as_deref().unwrap_or("sh");
            return Err(crate::raw::refuse(
                &format!("the command line for {shell}"),
                command,
            ));
        }
        // --cat, --fifo: the block in a file the command names.
        let (line, shell) = match self.block_file {
            Some(f) => f.wrap(command, self.shell()),
            None => (command.to_string(), self.shell.clone()),
        };
        let line = match self.nice {
            Some(n) => format!(
                "nice -n {n} {} -c {}",
                shell.as_deref().unwrap_or("sh"),
                crate::jobs::Quoting::for_shell(shell.as_deref()).quote(&line)
            ),
            None => line,
        };
        let mut req = limits.request(line);
        req.shell = shell;
        req.termseq = self.termseq.clone();
        req.env = self.env.clone();
        // As in GNU parallel: the job's number, and the command's pid
        // (`kill -HUP $PARALLEL_PID` starts no more jobs); the slot when
        // jobs hold one.
        req.env.push(("PARALLEL_SEQ".into(), at.seq.to_string()));
        req.env.push(("PARALLEL_PID".into(), self.pid.clone()));
        if self.jobslot {
            req.env
                .push(("PARALLEL_JOBSLOT".into(), at.slot.to_string()));
            if let Some(name) = &self.slot_var {
                req.env
                    .push((name.clone(), at.slot.saturating_sub(1).to_string()));
            }
        }
        req.cwd = self.workdir.clone();
        if !self.send.is_empty() || !self.back.is_empty() {
            let mut send = Vec::new();
            for t in &self.send {
                let p = t.render_plain(at, args);
                if crate::raw::has_raw(&p) {
                    return Err(crate::raw::refuse("--transferfile", &p));
                }
                // A directory is every file under it (rsync -r's, as GNU
                // parallel moves them).
                send.extend(
                    remex::worker::Transfer::files_at(&p)
                        .map_err(|e| format!("--transferfile {p}: {e}"))?,
                );
            }
            req.transfer = Some(remex::worker::Transfer {
                send,
                back: self
                    .back
                    .iter()
                    .map(|t| {
                        let p = t.render_plain(at, args);
                        match crate::raw::has_raw(&p) {
                            true => Err(crate::raw::refuse("--return", &p)),
                            false => Ok(p),
                        }
                    })
                    .collect::<Result<_, _>>()?,
                remove: Vec::new(),
                cleanup: self.cleanup,
                from: self.here.clone(),
            });
        }
        Ok(req)
    }
}

/// `--basefile`: sends the files (a directory: the files under it) to
/// every worker (in the jobs' directory) before the first job, returning
/// their names; or removes the files named (`remove`, after the last job
/// with `--cleanup`), and the directories that leaves empty. Not on a
/// worker that runs in this directory.
pub(crate) async fn basefiles(
    w: &Workers,
    files: &[String],
    setup: &JobSetup,
    remove: bool,
) -> Result<Vec<String>, String> {
    let mut send = Vec::new();
    if !remove {
        for p in files {
            send.extend(
                remex::worker::Transfer::files_at(p).map_err(|e| format!("--basefile {p}: {e}"))?,
            );
        }
    }
    let names = send.iter().map(|(p, _)| p.clone()).collect();
    let req = remex::worker::CommandRequest {
        cwd: setup.workdir.clone(),
        transfer: Some(remex::worker::Transfer {
            send,
            remove: if remove { files.to_vec() } else { Vec::new() },
            from: setup.here.clone(),
            ..remex::worker::Transfer::default()
        }),
        ..remex::worker::CommandRequest::new("true")
    };
    let calls = w.group.gateways().into_iter().map(|gw| {
        let req = req.clone();
        let label = w.label(gw.id());
        async move {
            crate::workers::run_on(&gw, &req)
                .await
                .map(|_| ())
                .map_err(|e| format!("--basefile on {label}: {e}"))
        }
    });
    futures::future::try_join_all(calls).await.map(|_| names)
}

/// Writes the files a job brought back where they belong here.
pub(crate) fn land(files: &[(String, bytes::Bytes)]) -> Result<(), String> {
    for (p, body) in files {
        let path = std::path::Path::new(p);
        if let Some(parent) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| format!("--return {p}: {e}"))?;
        }
        std::fs::write(path, body).map_err(|e| format!("--return {p}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdir_names_a_directory() {
        assert_eq!(workdir("d").unwrap(), "d");
        assert!(workdir("").unwrap_err().contains("--workdir is empty"));
        assert!(workdir(" ").unwrap_err().contains("--workdir is empty"));
        assert!(workdir("...").unwrap_err().contains("not offered"));
    }

    #[test]
    fn a_shell_is_known_by_the_name_it_was_started_as() {
        assert_eq!(shell_named("bash").as_deref(), Some("bash"));
        assert_eq!(shell_named("-bash").as_deref(), Some("bash"));
        assert_eq!(shell_named("/usr/bin/zsh").as_deref(), Some("zsh"));
        assert_eq!(shell_named("busybox sh").as_deref(), Some("sh"));
        assert_eq!(shell_named("/bin/sh -c x").as_deref(), Some("sh"));
        for not in ["ssh", "sshd", "foo.sh", "crash", "cargo", "", "/"] {
            assert_eq!(shell_named(not), None, "{not}");
        }
    }

    #[test]
    fn the_parent_is_read_past_a_command_with_spaces_and_parentheses() {
        assert_eq!(parent_in_stat("42 (bash) S 7 42 42 0"), Some(7));
        assert_eq!(parent_in_stat("42 (a) b) (c) R 99 1 1"), Some(99));
        assert_eq!(parent_in_stat("garbage"), None);
        assert_eq!(parent_in_stat("1 (x) S notanumber"), None);
    }
}
