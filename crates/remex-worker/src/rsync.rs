//! The receiving end of rsync (execnet's `RSync`): the built-in task
//! `__rsync` and the messages it exchanges with the sender
//! (`remex::rsync::RSync`), over the task's channel with flow control.
//!
//! The exchange:
//! 1. The sender sends every entry of the source tree ([`ToReceiver::Entry`],
//!    in order; an entry's index is its place), then
//!    [`ToReceiver::EndOfEntries`]. The receiver makes directories and
//!    links as they come and answers, per file, [`FromReceiver::Need`] (it
//!    lacks the file or its size differs), [`FromReceiver::Hash`] (same
//!    size, other mtime: the sender compares contents), or nothing (same
//!    size and mtime); then [`FromReceiver::EntriesDone`].
//! 2. The sender sends each needed file: [`ToReceiver::File`], its bytes as
//!    bytes items, [`ToReceiver::FileEnd`] (or [`ToReceiver::FileGone`]
//!    when it vanished), or for a small file one item, a list of
//!    [`ToReceiver::WholeFile`] and its bytes; a file whose contents are
//!    equal gets [`ToReceiver::Touch`] (mode and mtime only).
//! 3. [`ToReceiver::Finish`]: the receiver deletes what the source lacks
//!    (when asked), gives directories their modes and mtimes, and returns a
//!    [`Received`].
//!
//! A file is written to a temporary name beside its destination and
//! renamed over it when complete, so a reader never sees half a file. The
//! receiver holds the entries (paths, modes, times) and one write buffer:
//! its memory is O(entries), whatever the files' sizes.
//!
//! Over 500 lines: about 150 are documentation; the receiver's code
//! (entries, files, links, deletes, checks on paths) is under 500.

use std::collections::HashSet;
use std::fs::{self, File, FileTimes, Permissions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use remex_core::Value;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::task::{Task, TaskError};

/// The name of the receiving task.
///
/// ```
/// assert_eq!(remex::worker::rsync::RSYNC_TASK, "__rsync");
/// ```
pub const RSYNC_TASK: &str = remex_core::builtin::RSYNC;

/// A modification time: seconds and nanoseconds since the Unix epoch.
///
/// ```
/// use remex::worker::rsync::Mtime;
/// let m = Mtime::of(&std::fs::metadata("/")?);
/// assert!(m.secs > 0 && m.nanos < 1_000_000_000);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mtime {
    /// Whole seconds.
    pub secs: i64,
    /// Nanoseconds past them.
    pub nanos: u32,
}

impl Mtime {
    /// The mtime of `m` (see the type's example).
    pub fn of(m: &fs::Metadata) -> Mtime {
        Mtime {
            secs: m.mtime(),
            nanos: m.mtime_nsec().clamp(0, 999_999_999) as u32,
        }
    }

    fn system_time(self) -> SystemTime {
        let d = Duration::new(self.secs.unsigned_abs(), self.nanos);
        if self.secs >= 0 {
            UNIX_EPOCH + d
        } else {
            UNIX_EPOCH - d
        }
    }
}

/// One entry of the source tree. Paths are relative, `/`-separated, as
/// bytes (any Unix file name); modes are the permission bits.
///
/// ```
/// use remex::worker::rsync::{Entry, LinkTarget};
/// let e = Entry::Link { path: "a/b".into(), target: LinkTarget::AsIs("../c".into()) };
/// assert_eq!(e.path(), "a/b");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// A directory.
    Dir {
        /// Where, relative to the root.
        path: Bytes,
        /// Its permission bits.
        mode: u32,
        /// Its mtime, set after its contents.
        mtime: Mtime,
    },
    /// A regular file.
    File {
        /// Where, relative to the root.
        path: Bytes,
        /// Its permission bits.
        mode: u32,
        /// Its mtime.
        mtime: Mtime,
        /// Its size when the tree was scanned.
        size: u64,
    },
    /// A symbolic link.
    Link {
        /// Where, relative to the root.
        path: Bytes,
        /// Where it points, as the receiver is to make it.
        target: LinkTarget,
    },
}

impl Entry {
    /// The entry's relative path (see the type's example).
    pub fn path(&self) -> &Bytes {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Link { path, .. } => path,
        }
    }
}

/// Where a link points.
///
/// ```
/// use remex::worker::rsync::LinkTarget;
/// // An absolute link to <source>/data/x arrives as <dest>/data/x:
/// let t = LinkTarget::InTree("data/x".into());
/// assert_ne!(t, LinkTarget::AsIs("data/x".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkTarget {
    /// As it was (relative, or outside the tree).
    AsIs(Bytes),
    /// An absolute link into the source tree: the same place under the
    /// destination (this relative path, joined to the destination root).
    InTree(Bytes),
}

/// What the sender sends (between [`ToReceiver::File`] and
/// [`ToReceiver::FileEnd`], the file's bytes as bytes items).
///
/// ```
/// use remex::worker::rsync::ToReceiver;
/// let v = remex::to_value(&ToReceiver::File { index: 3 })?;
/// assert_eq!(remex::from_value::<ToReceiver>(v)?, ToReceiver::File { index: 3 });
/// # Ok::<(), remex::ValueError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToReceiver {
    /// The next entry of the tree.
    Entry(Entry),
    /// No more entries.
    EndOfEntries,
    /// The contents of file entry `index` follow.
    File {
        /// The entry's place in the list.
        index: u64,
    },
    /// File entry `index` is complete.
    FileEnd {
        /// The entry's place in the list.
        index: u64,
    },
    /// File entry `index` vanished or could not be read: drop what came.
    FileGone {
        /// The entry's place in the list.
        index: u64,
        /// The sender's error.
        reason: String,
    },
    /// File entry `index` whole, in one item: sent as a list of this
    /// message and the file's bytes (small files: one item, not three).
    WholeFile {
        /// The entry's place in the list.
        index: u64,
    },
    /// File entry `index` has equal contents: set its mode and mtime.
    Touch {
        /// The entry's place in the list.
        index: u64,
    },
    /// Done: delete (if asked), set directories, answer with [`Received`].
    Finish,
}

/// What the receiver answers.
///
/// ```
/// use remex::worker::rsync::FromReceiver;
/// let v = remex::to_value(&FromReceiver::Need { index: 1 })?;
/// assert_eq!(remex::from_value::<FromReceiver>(v)?, FromReceiver::Need { index: 1 });
/// # Ok::<(), remex::ValueError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromReceiver {
    /// Send file entry `index`.
    Need {
        /// The entry's place in the list.
        index: u64,
    },
    /// File entry `index` has the same size and another mtime; this is
    /// the receiver's hash of it.
    Hash {
        /// The entry's place in the list.
        index: u64,
        /// SHA-256 of the receiver's file.
        sha256: Bytes,
    },
    /// Every entry is taken.
    EntriesDone,
}

/// The arguments of the receiving task.
///
/// ```
/// let a = remex::worker::rsync::ReceiveArgs { dest: "/tmp/x".into(), delete: false };
/// assert!(remex::to_value(&a).is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiveArgs {
    /// The destination directory (made if missing).
    pub dest: String,
    /// Remove what the source does not have.
    pub delete: bool,
}

/// What a receiver did.
///
/// ```
/// let r = remex::worker::rsync::Received::default();
/// assert_eq!(r.files_written, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// Files written whole.
    pub files_written: u64,
    /// Their bytes.
    pub bytes_written: u64,
    /// Files whose contents were equal: mode and mtime set only.
    pub files_touched: u64,
    /// Links made or re-made.
    pub links_made: u64,
    /// Directories made.
    pub dirs_made: u64,
    /// Entries removed (with `delete`).
    pub deleted: u64,
}

/// The SHA-256 of the file at `path`.
///
/// ```
/// let h = remex::worker::rsync::file_sha256(std::path::Path::new("/dev/null"))?;
/// assert_eq!(h[0], 0xe3); // SHA-256 of nothing: e3b0c442...
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn file_sha256(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

fn err(what: &str, path: &Path, e: std::io::Error) -> TaskError {
    TaskError(format!("rsync: {what} {}: {e}", path.display()))
}

/// `rel` as a path under `root`, refusing anything that could leave it.
fn under(root: &Path, rel: &[u8]) -> Result<PathBuf, TaskError> {
    let p = Path::new(std::ffi::OsStr::from_bytes(rel));
    let ok = !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(TaskError(format!(
            "rsync: refused the path {:?}: not a plain relative path",
            String::from_utf8_lossy(rel)
        )));
    }
    Ok(root.join(p))
}

/// Removes whatever is at `p` (a directory with its contents).
fn remove_any(p: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            make_writable_tree(p);
            fs::remove_dir_all(p)
        }
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Gives the owner write and search permission on every directory under
/// `p` (so that read-only directories can be emptied).
fn make_writable_tree(p: &Path) {
    if let Ok(m) = fs::symlink_metadata(p) {
        if m.is_dir() {
            let _ = fs::set_permissions(p, Permissions::from_mode(m.mode() | 0o700));
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    make_writable_tree(&e.path());
                }
            }
        }
    }
}

struct Incoming {
    index: u64,
    file: File,
    tmp: PathBuf,
    bytes: u64,
}

struct Receiver {
    root: PathBuf,
    entries: Vec<Entry>,
    /// Directories to give their modes and mtimes at the end.
    dirs: Vec<(PathBuf, u32, Mtime)>,
    current: Option<Incoming>,
    done: Received,
}

impl Receiver {
    fn entry(&self, index: u64) -> Result<&Entry, TaskError> {
        self.entries
            .get(index as usize)
            .ok_or_else(|| TaskError(format!("rsync: no entry {index}")))
    }

    /// File entry `index`: where it goes, its mode and its mtime.
    fn file_entry(&self, index: u64) -> Result<(PathBuf, u32, Mtime), TaskError> {
        match self.entry(index)? {
            Entry::File {
                path, mode, mtime, ..
            } => Ok((under(&self.root, path)?, *mode, *mtime)),
            _ => Err(TaskError(format!("rsync: entry {index} is not a file"))),
        }
    }

    /// Takes entry `e`; returns the answer it needs, if any.
    fn take_entry(&mut self, e: Entry) -> Result<Option<FromReceiver>, TaskError> {
        let index = self.entries.len() as u64;
        let path = under(&self.root, e.path())?;
        let existing = fs::symlink_metadata(&path).ok();
        let answer = match &e {
            Entry::Dir { mode, mtime, .. } => {
                match &existing {
                    Some(m) if m.is_dir() => {
                        if m.mode() & 0o700 != 0o700 {
                            fs::set_permissions(&path, Permissions::from_mode(m.mode() | 0o700))
                                .map_err(|x| err("cannot open up", &path, x))?;
                        }
                    }
                    other => {
                        if other.is_some() {
                            remove_any(&path).map_err(|x| err("cannot replace", &path, x))?;
                        }
                        match fs::create_dir(&path) {
                            Ok(()) => self.done.dirs_made += 1,
                            // Another receiver (a second worker on this
                            // host, sending to the same place) made it.
                            Err(x)
                                if x.kind() == std::io::ErrorKind::AlreadyExists
                                    && path.is_dir() => {}
                            Err(x) => return Err(err("cannot make", &path, x)),
                        }
                    }
                }
                self.dirs.push((path, *mode, *mtime));
                None
            }
            Entry::File {
                mode, mtime, size, ..
            } => match &existing {
                Some(m) if m.is_file() && m.len() == *size => {
                    if Mtime::of(m) == *mtime {
                        if m.mode() & 0o7777 != *mode & 0o7777 {
                            fs::set_permissions(&path, Permissions::from_mode(*mode))
                                .map_err(|x| err("cannot set the mode of", &path, x))?;
                        }
                        None
                    } else {
                        let h = file_sha256(&path).map_err(|x| err("cannot read", &path, x))?;
                        Some(FromReceiver::Hash {
                            index,
                            sha256: Bytes::copy_from_slice(&h),
                        })
                    }
                }
                Some(m) => {
                    if m.is_dir() {
                        remove_any(&path).map_err(|x| err("cannot replace", &path, x))?;
                    }
                    Some(FromReceiver::Need { index })
                }
                None => Some(FromReceiver::Need { index }),
            },
            Entry::Link { target, .. } => {
                let target = match target {
                    LinkTarget::AsIs(t) => PathBuf::from(std::ffi::OsStr::from_bytes(t)),
                    LinkTarget::InTree(rel) if rel.is_empty() => self.root.clone(),
                    LinkTarget::InTree(rel) => under(&self.root, rel)?,
                };
                let same = existing
                    .as_ref()
                    .is_some_and(|m| m.file_type().is_symlink())
                    && fs::read_link(&path).is_ok_and(|t| t == target);
                if !same {
                    remove_any(&path).map_err(|x| err("cannot replace", &path, x))?;
                    std::os::unix::fs::symlink(&target, &path)
                        .map_err(|x| err("cannot make the link", &path, x))?;
                    self.done.links_made += 1;
                }
                None
            }
        };
        self.entries.push(e);
        Ok(answer)
    }

    fn start_file(&mut self, index: u64) -> Result<(), TaskError> {
        self.drop_current();
        let path = under(&self.root, self.entry(index)?.path())?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.remex-{}", std::process::id()));
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|x| err("cannot write", &tmp, x))?;
        self.current = Some(Incoming {
            index,
            file,
            tmp,
            bytes: 0,
        });
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), TaskError> {
        let c = self
            .current
            .as_mut()
            .ok_or_else(|| TaskError("rsync: file data outside a file".into()))?;
        c.file
            .write_all(data)
            .map_err(|x| err("cannot write", &c.tmp, x))?;
        c.bytes += data.len() as u64;
        Ok(())
    }

    fn end_file(&mut self, index: u64) -> Result<(), TaskError> {
        let c = match self.current.take() {
            Some(c) if c.index == index => c,
            _ => {
                return Err(TaskError(format!(
                    "rsync: end of file {index}, which was not started"
                )))
            }
        };
        let (dest, mode, mtime) = self.file_entry(index)?;
        let finish = || -> std::io::Result<()> {
            c.file.set_permissions(Permissions::from_mode(mode))?;
            c.file
                .set_times(FileTimes::new().set_modified(mtime.system_time()))?;
            drop(c.file);
            fs::rename(&c.tmp, &dest)
        };
        if let Err(x) = finish() {
            let _ = fs::remove_file(&c.tmp);
            return Err(err("cannot finish", &dest, x));
        }
        self.done.files_written += 1;
        self.done.bytes_written += c.bytes;
        Ok(())
    }

    fn touch(&mut self, index: u64) -> Result<(), TaskError> {
        let (dest, mode, mtime) = self.file_entry(index)?;
        let set = || -> std::io::Result<()> {
            fs::set_permissions(&dest, Permissions::from_mode(mode))?;
            File::options()
                .write(true)
                .open(&dest)?
                .set_times(FileTimes::new().set_modified(mtime.system_time()))
        };
        set().map_err(|x| err("cannot set the times of", &dest, x))?;
        self.done.files_touched += 1;
        Ok(())
    }

    fn drop_current(&mut self) {
        if let Some(c) = self.current.take() {
            drop(c.file);
            let _ = fs::remove_file(&c.tmp);
        }
    }

    /// Removes what the entries lack, under `dir`.
    fn delete_extra(&mut self, keep: &HashSet<PathBuf>, dir: &Path) -> Result<(), TaskError> {
        let rd = fs::read_dir(dir).map_err(|x| err("cannot list", dir, x))?;
        for e in rd.flatten() {
            let p = e.path();
            if !keep.contains(&p) {
                remove_any(&p).map_err(|x| err("cannot delete", &p, x))?;
                self.done.deleted += 1;
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                self.delete_extra(keep, &p)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, delete: bool) -> Result<(), TaskError> {
        self.drop_current();
        if delete {
            let keep: HashSet<PathBuf> = self
                .entries
                .iter()
                .filter_map(|e| under(&self.root, e.path()).ok())
                .collect();
            let root = self.root.clone();
            self.delete_extra(&keep, &root)?;
        }
        // Deepest first, so that a directory's mtime is set after its
        // contents changed and a read-only one after it was written into.
        self.dirs
            .sort_by_key(|(p, _, _)| std::cmp::Reverse(p.components().count()));
        for (p, mode, mtime) in std::mem::take(&mut self.dirs) {
            let set = || -> std::io::Result<()> {
                File::open(&p)?.set_times(FileTimes::new().set_modified(mtime.system_time()))?;
                fs::set_permissions(&p, Permissions::from_mode(mode))
            };
            set().map_err(|x| err("cannot set the mode of", &p, x))?;
        }
        Ok(())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.drop_current();
    }
}

/// The `__rsync` task.
pub(crate) fn receive(t: &Task) -> Result<Received, TaskError> {
    let args: ReceiveArgs = t.args()?;
    let root = PathBuf::from(&args.dest);
    fs::create_dir_all(&root).map_err(|x| err("cannot make", &root, x))?;
    let mut r = Receiver {
        root,
        entries: Vec::new(),
        dirs: Vec::new(),
        current: None,
        done: Received::default(),
    };
    let ch = t.channel();
    loop {
        let v = match ch.receive_blocking::<remex_core::Value>(None) {
            Ok(v) => v,
            Err(e) if e.is_end_of_channel() => {
                return Err(TaskError(
                    "rsync: the sender stopped before finishing".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        let msg = match v {
            Value::Bytes(b) => {
                r.write(&b)?;
                continue;
            }
            Value::List(mut l) if l.len() == 2 && matches!(l[1], Value::Bytes(_)) => {
                let Some(Value::Bytes(data)) = l.pop() else {
                    unreachable!("checked to be bytes")
                };
                match remex_core::from_value::<ToReceiver>(l.swap_remove(0)) {
                    Ok(ToReceiver::WholeFile { index }) => {
                        r.start_file(index)?;
                        r.write(&data)?;
                        r.end_file(index)?;
                        continue;
                    }
                    _ => {
                        return Err(TaskError(
                            "rsync: bytes beside something other than WholeFile".into(),
                        ))
                    }
                }
            }
            other => remex_core::from_value::<ToReceiver>(other)
                .map_err(|e| TaskError(format!("rsync: not a sender's message: {e}")))?,
        };
        match msg {
            ToReceiver::Entry(e) => {
                if let Some(answer) = r.take_entry(e)? {
                    ch.send_blocking(&answer)?;
                }
            }
            ToReceiver::EndOfEntries => ch.send_blocking(&FromReceiver::EntriesDone)?,
            ToReceiver::File { index } => r.start_file(index)?,
            ToReceiver::FileEnd { index } => r.end_file(index)?,
            ToReceiver::FileGone { .. } => r.drop_current(),
            ToReceiver::Touch { index } => r.touch(index)?,
            ToReceiver::WholeFile { .. } => {
                return Err(TaskError("rsync: WholeFile without its bytes".into()))
            }
            ToReceiver::Finish => {
                r.finish(args.delete)?;
                return Ok(std::mem::take(&mut r.done));
            }
        }
    }
}
