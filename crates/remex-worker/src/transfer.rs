//! Files that travel with a `run` task (what `remex run --transferfile`,
//! `--return`, `--basefile` and `--cleanup` use): written into the job's
//! directory before the command, read back after it, removed at the end,
//! unless the job runs in the very directory they come from (the same
//! booted machine and the same directory inode), where they already are
//! and nothing is touched; on that machine an absolute path is the file
//! itself, and is never written over nor removed either.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Files moved with one command.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use remex::worker::{CommandOutcome, CommandRequest, Transfer};
/// let gw = remex::makegateway("popen").await?;
/// let dir = std::env::temp_dir().join(format!("remex-transfer-doc-{}", std::process::id()));
/// let req = CommandRequest {
///     cwd: Some(dir.display().to_string()),
///     transfer: Some(Transfer {
///         send: vec![("in.txt".into(), "hello\n".into())],
///         back: vec!["out.txt".into()],
///         cleanup: true,
///         ..Transfer::default()
///     }),
///     ..CommandRequest::new("tr a-z A-Z < in.txt > out.txt")
/// };
/// let out: CommandOutcome = gw.remote_call("run", &req)?.receive().await?;
/// assert_eq!(out.files, [("out.txt".to_string(), bytes::Bytes::from("HELLO\n"))]);
/// assert!(!dir.join("in.txt").exists(), "cleaned up");
/// gw.exit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// Written before the command: (path, contents), a relative path
    /// under the job's directory (parent directories made).
    pub send: Vec<(String, Bytes)>,
    /// Read after the command and returned in
    /// [`CommandOutcome::files`](crate::CommandOutcome::files) (a file
    /// that is not there is left out).
    pub back: Vec<String>,
    /// Removed after the command (and `back` read).
    pub remove: Vec<String>,
    /// Also remove `send` and `back` after the command.
    pub cleanup: bool,
    /// Where the files come from: nothing is moved or removed when the
    /// job's directory is this one (see [`Place::of`]).
    pub from: Option<Place>,
}

/// A directory on a machine, as `Transfer::from` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// The running kernel's boot id (`/proc/sys/kernel/random/boot_id`).
    pub boot: String,
    /// The directory's device.
    pub dev: u64,
    /// The directory's inode.
    pub ino: u64,
}

impl Place {
    /// Where `dir` is, on this machine; `None` if it cannot be told.
    ///
    /// ```
    /// let here = remex::worker::Place::of(std::path::Path::new("."));
    /// assert!(here.is_some());
    /// ```
    pub fn of(dir: &Path) -> Option<Place> {
        use std::os::unix::fs::MetadataExt;
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let m = std::fs::metadata(dir).ok()?;
        Some(Place {
            boot: boot.trim().to_string(),
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// The most bytes one returned file may have: a larger one is an error
/// naming it, not a message the controller must hold.
pub const MOST_RETURNED: u64 = 256 << 20;

/// A transfer being carried out in the job's directory `dir`.
pub(crate) struct Carried<'a> {
    t: &'a Transfer,
    dir: PathBuf,
    /// The files are already here: nothing is done.
    here: bool,
    /// The job runs on the machine the files come from: an absolute path
    /// is the file itself, never written over nor removed.
    same_machine: bool,
}

impl<'a> Carried<'a> {
    /// Writes `t.send` under `dir`.
    pub(crate) fn start(t: &'a Transfer, dir: &Path) -> Result<Carried<'a>, String> {
        let at = Place::of(dir);
        let here = t.from.is_some() && t.from == at;
        let same_machine = match (&t.from, &at) {
            (Some(f), Some(a)) => f.boot == a.boot,
            _ => false,
        };
        let c = Carried {
            t,
            dir: dir.to_path_buf(),
            here,
            same_machine,
        };
        if !here {
            for (p, body) in t.send.iter().filter(|(p, _)| c.moves(p)) {
                let path = c.dir.join(p);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
                }
                std::fs::write(&path, body)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
        }
        Ok(c)
    }

    /// Whether the file at `p` is moved (written, read back, removed).
    fn moves(&self, p: &str) -> bool {
        !(self.here || self.same_machine && Path::new(p).is_absolute())
    }

    /// Reads `t.back`, then removes what is to be removed.
    pub(crate) fn finish(self) -> Result<Vec<(String, Bytes)>, String> {
        if self.here {
            return Ok(Vec::new());
        }
        let mut files = Vec::new();
        for p in self.t.back.iter().filter(|p| self.moves(p)) {
            let path = self.dir.join(p);
            match std::fs::metadata(&path) {
                Ok(m) if m.len() > MOST_RETURNED => {
                    return Err(format!(
                        "{} is {} bytes, more than the {MOST_RETURNED} a returned file may have",
                        path.display(),
                        m.len()
                    ))
                }
                Ok(_) => {
                    let body = std::fs::read(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    files.push((p.clone(), Bytes::from(body)));
                }
                Err(_) => {}
            }
        }
        let mut gone: Vec<&String> = self.t.remove.iter().collect();
        if self.t.cleanup {
            gone.extend(self.t.send.iter().map(|(p, _)| p));
            gone.extend(&self.t.back);
        }
        for p in gone.into_iter().filter(|p| self.moves(p)) {
            let _ = std::fs::remove_file(self.dir.join(p));
        }
        Ok(files)
    }
}
