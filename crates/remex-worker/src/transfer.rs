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
    /// that is not there is left out; a directory is every regular file
    /// under it, as `DIR/SUB/FILE`; at most [`MOST_RETURNED`] bytes in
    /// all).
    pub back: Vec<String>,
    /// Removed after the command (and `back` read), with the directories
    /// that leaves empty (the job's directory excepted).
    pub remove: Vec<String>,
    /// Also remove `send` and what `back` returned after the command,
    /// and the directories that leaves empty (the job's directory
    /// excepted), as GNU parallel's `--cleanup` does.
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

impl Transfer {
    /// The file at `path` as [`Transfer::send`] entries: itself, or if it
    /// is a directory every regular file under it (`DIR/SUB/FILE`; a
    /// symbolic link to a file is followed, one to a directory is not),
    /// at most [`MOST_RETURNED`] bytes in all. An error names the path
    /// and what was wrong.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("remex-files-at-{}", std::process::id()));
    /// std::fs::create_dir_all(dir.join("sub")).unwrap();
    /// std::fs::write(dir.join("sub/a"), "A").unwrap();
    /// let files = remex::worker::Transfer::files_at(&dir.display().to_string()).unwrap();
    /// assert_eq!(files, [(format!("{}/sub/a", dir.display()), bytes::Bytes::from("A"))]);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn files_at(path: &str) -> Result<Vec<(String, Bytes)>, String> {
        let files = files_under(Path::new(path)).map_err(|e| format!("{path}: {e}"))?;
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            let body = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            out.push((f.display().to_string(), Bytes::from(body)));
        }
        Ok(out)
    }
}

/// The regular files at `root`: itself, or those under it (sorted), at
/// most [`MOST_RETURNED`] bytes in all (an error says so). Symbolic links
/// to files are followed, to directories not (no cycles).
fn files_under(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let too_big = |n: u64| {
        std::io::Error::other(format!(
            "{n} bytes or more, more than the {MOST_RETURNED} that files travelling with a job may have (use remex rsync)"
        ))
    };
    let m = std::fs::metadata(root)?;
    if !m.is_dir() {
        if m.len() > MOST_RETURNED {
            return Err(too_big(m.len()));
        }
        return Ok(vec![root.to_path_buf()]);
    }
    let (mut files, mut total, mut dirs) = (Vec::new(), 0u64, vec![root.to_path_buf()]);
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d)? {
            let path = e?.path();
            let link = std::fs::symlink_metadata(&path)?.file_type().is_symlink();
            let Ok(m) = std::fs::metadata(&path) else {
                continue;
            };
            if m.is_dir() && !link {
                dirs.push(path);
            } else if m.is_file() {
                total += m.len();
                if total > MOST_RETURNED {
                    return Err(too_big(total));
                }
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Removes the directories above `file` up to `top` (not `top`) that are
/// empty, as GNU parallel's cleanup does (`rmdir` of the parents).
fn remove_empty_parents(top: &Path, file: &Path) {
    let mut d = file.parent();
    while let Some(dir) = d.filter(|d| *d != top && d.starts_with(top)) {
        if std::fs::remove_dir(dir).is_err() {
            break;
        }
        d = dir.parent();
    }
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
        let mut total = 0u64;
        for p in self.t.back.iter().filter(|p| self.moves(p)) {
            let path = self.dir.join(p);
            if std::fs::metadata(&path).is_err() {
                continue;
            }
            let found = files_under(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            for f in found {
                let body =
                    std::fs::read(&f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
                total += body.len() as u64;
                if total > MOST_RETURNED {
                    return Err(format!(
                        "{} and the files before it are more than the {MOST_RETURNED} bytes a job may return",
                        f.display()
                    ));
                }
                // Named as asked: `p`, then its place under `p`.
                let rel = f.strip_prefix(&path).unwrap_or(Path::new(""));
                let name = match rel.as_os_str().is_empty() {
                    true => p.clone(),
                    false => format!("{}/{}", p.trim_end_matches('/'), rel.display()),
                };
                files.push((name, Bytes::from(body)));
            }
        }
        let mut gone: Vec<&String> = self.t.remove.iter().collect();
        if self.t.cleanup {
            gone.extend(self.t.send.iter().map(|(p, _)| p));
            gone.extend(files.iter().map(|(p, _)| p));
        }
        for p in gone.into_iter().filter(|p| self.moves(p)) {
            let path = self.dir.join(p);
            let _ = std::fs::remove_file(&path);
            remove_empty_parents(&self.dir, &path);
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_its_files_within_the_bound_and_links_to_directories_are_not_followed() {
        let d = std::env::temp_dir().join(format!("remex-files-under-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("t/sub")).unwrap();
        std::fs::write(d.join("t/a"), "a").unwrap();
        std::fs::write(d.join("t/sub/b"), "b").unwrap();
        std::os::unix::fs::symlink(d.join("t/a"), d.join("t/to-a")).unwrap();
        // A loop: followed, it would never end.
        std::os::unix::fs::symlink(d.join("t"), d.join("t/sub/up")).unwrap();
        let files = files_under(&d.join("t")).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.strip_prefix(&d).unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            [Path::new("t/a"), Path::new("t/sub/b"), Path::new("t/to-a")]
        );
        // Sparse files: sizes past the bound without the disk space.
        let big = std::fs::File::create(d.join("t/sub/big")).unwrap();
        big.set_len(MOST_RETURNED / 2 + 1).unwrap();
        assert!(files_under(&d.join("t")).is_ok());
        let big2 = std::fs::File::create(d.join("t/big2")).unwrap();
        big2.set_len(MOST_RETURNED / 2 + 1).unwrap();
        let e = files_under(&d.join("t")).unwrap_err().to_string();
        assert!(e.contains("more than the 268435456"), "{e}");
        let e = Transfer::files_at(&d.join("t").display().to_string()).unwrap_err();
        assert!(e.starts_with(&d.join("t").display().to_string()), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
