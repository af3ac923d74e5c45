//! rsync (execnet's `RSync`): push a local directory to one or many
//! gateways at once.
//!
//! Only what differs is sent: a file whose size or mtime differs from the
//! destination's; when only the mtime differs, the two ends compare
//! SHA-256 hashes and equal contents get their mtime set instead of being
//! sent. Modes and mtimes are kept; a symbolic link that points into the
//! tree by an absolute path is re-pointed to the same place under the
//! destination, any other link is copied as it is; `delete` removes what
//! the source does not have; a filter decides what is sent; progress is
//! reported per file. Sockets, fifos and devices are skipped.
//!
//! Data travels over an ordinary channel per target, with flow control:
//! the sender holds the tree's entries (paths, modes, times: O(entries))
//! and, per target, at most the channel's window, one 256 KiB chunk of a
//! large file and 8 small files (at most 256 KiB each) read ahead,
//! whatever the files' sizes. Targets are served at once.
//!
//! ```
//! # #[tokio::main] async fn main() -> remex::Result<()> {
//! let src = std::env::temp_dir().join(format!("rsync-doc-src-{}", std::process::id()));
//! let dst = std::env::temp_dir().join(format!("rsync-doc-dst-{}", std::process::id()));
//! std::fs::create_dir_all(src.join("sub"))?;
//! std::fs::write(src.join("sub/a.txt"), "hello")?;
//! let gw = remex::makegateway("popen").await?;
//! let reports = remex::rsync::RSync::new(&src)
//!     .add_target(&gw, dst.to_str().unwrap())
//!     .send()
//!     .await?;
//! assert_eq!(reports[0].files_sent, 1);
//! assert_eq!(std::fs::read_to_string(dst.join("sub/a.txt"))?, "hello");
//! // A second send finds nothing to do.
//! let again = remex::rsync::RSync::new(&src).add_target(&gw, dst.to_str().unwrap()).send().await?;
//! assert_eq!((again[0].files_sent, again[0].bytes_sent), (0, 0));
//! gw.exit().await?;
//! # std::fs::remove_dir_all(src)?; std::fs::remove_dir_all(dst)?;
//! # Ok(()) }
//! ```
//!
//! Over 500 lines: about 120 are documentation; the sending side (scan,
//! compare, send with read-ahead, progress) is one protocol with the
//! receiver in `remex::worker::rsync`.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use remex_worker::rsync::{
    file_sha256, Entry, FromReceiver, LinkTarget, Mtime, ReceiveArgs, Received, ToReceiver,
    RSYNC_TASK,
};

use crate::{Channel, Error, Gateway, Result};

/// Bytes per data item.
pub const CHUNK: usize = 256 << 10;

type Filter = Arc<dyn Fn(&Path) -> bool + Send + Sync>;
type OnProgress = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Where a target stands, after each file sent to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The target's gateway id.
    pub gateway: String,
    /// The target's destination directory.
    pub dest: String,
    /// The file just sent, relative to the source.
    pub path: String,
    /// Files sent to this target so far.
    pub files_sent: u64,
    /// File bytes sent to this target so far.
    pub bytes_sent: u64,
    /// Files this target needs in all.
    pub files_needed: u64,
}

/// What a send did to one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The target's gateway id.
    pub gateway: String,
    /// The target's destination directory.
    pub dest: String,
    /// Files whose contents were sent.
    pub files_sent: u64,
    /// Bytes of file contents sent.
    pub bytes_sent: u64,
    /// Files with equal contents whose mtime (and mode) were set.
    pub files_touched: u64,
    /// Files that were already the same.
    pub files_unchanged: u64,
    /// Links made or re-made.
    pub links_made: u64,
    /// Directories made.
    pub dirs_made: u64,
    /// Entries removed (with `delete`).
    pub deleted: u64,
    /// Files that vanished (or could not be read) after the scan, and why:
    /// not sent, not an error.
    pub vanished: Vec<(String, String)>,
}

/// One entry of the source, with where it is.
struct Item {
    abs: PathBuf,
    rel: String,
    entry: Entry,
}

/// Pushes a directory to gateways; see the [module docs](self).
#[derive(Clone)]
pub struct RSync {
    source: PathBuf,
    targets: Vec<(Gateway, String)>,
    delete: bool,
    filter: Option<Filter>,
    progress: Option<OnProgress>,
}

impl std::fmt::Debug for RSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RSync")
            .field("source", &self.source)
            .field(
                "targets",
                &self
                    .targets
                    .iter()
                    .map(|(g, d)| (g.id(), d))
                    .collect::<Vec<_>>(),
            )
            .field("delete", &self.delete)
            .finish_non_exhaustive()
    }
}

impl RSync {
    /// A send of the directory `source`.
    ///
    /// ```
    /// let r = remex::rsync::RSync::new("/tmp/data");
    /// assert!(format!("{r:?}").contains("/tmp/data"));
    /// ```
    pub fn new(source: impl AsRef<Path>) -> RSync {
        RSync {
            source: source.as_ref().to_path_buf(),
            targets: Vec::new(),
            delete: false,
            filter: None,
            progress: None,
        }
    }

    /// Adds a target: the directory `dest` on `gw`'s worker (made if
    /// missing; relative to the worker's directory, which is `"."`; an
    /// empty `dest` is refused by [`RSync::send`]).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let src = std::env::temp_dir().join(format!("rsync-doc-two-{}", std::process::id()));
    /// std::fs::create_dir_all(&src)?;
    /// std::fs::write(src.join("f"), "x")?;
    /// let mut rs = remex::rsync::RSync::new(&src);
    /// for (i, gw) in group.gateways().iter().enumerate() {
    ///     rs = rs.add_target(gw, format!("{}-copy{i}", src.display()));
    /// }
    /// let reports = rs.send().await?;
    /// assert_eq!(reports.len(), 2);
    /// # for i in 0..2 { std::fs::remove_dir_all(format!("{}-copy{i}", src.display()))?; }
    /// # std::fs::remove_dir_all(src)?;
    /// # Ok(()) }
    /// ```
    pub fn add_target(mut self, gw: &Gateway, dest: impl Into<String>) -> RSync {
        self.targets.push((gw.clone(), dest.into()));
        self
    }

    /// Removes, at each target, what the source does not have (default:
    /// keep it).
    ///
    /// ```
    /// let r = remex::rsync::RSync::new("/tmp/data").delete(true);
    /// assert!(format!("{r:?}").contains("delete: true"));
    /// ```
    pub fn delete(mut self, yes: bool) -> RSync {
        self.delete = yes;
        self
    }

    /// Sends only the entries for which `f(relative path)` is true (a
    /// directory refused is skipped whole).
    ///
    /// ```
    /// let r = remex::rsync::RSync::new("/tmp/data").filter(|p| p.extension().is_none_or(|e| e != "tmp"));
    /// # let _ = r;
    /// ```
    pub fn filter(mut self, f: impl Fn(&Path) -> bool + Send + Sync + 'static) -> RSync {
        self.filter = Some(Arc::new(f));
        self
    }

    /// Calls `f` after each file sent to a target (from the sending task:
    /// keep it short).
    ///
    /// ```
    /// let r = remex::rsync::RSync::new("/tmp/data").on_progress(|p| eprintln!("{} {} bytes", p.path, p.bytes_sent));
    /// # let _ = r;
    /// ```
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> RSync {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Sends to every target at once; a report per target, in the order
    /// they were added. The first failure (a target's worker could not
    /// write, a gateway was lost, the source cannot be read) is the error.
    ///
    /// See the [module example](self).
    pub async fn send(&self) -> Result<Vec<Report>> {
        // An empty destination would be the worker's own directory (a
        // home over ssh), and with `delete` its contents would go.
        if let Some((gw, _)) = self.targets.iter().find(|(_, d)| d.trim().is_empty()) {
            return Err(Error::Os {
                what: format!("rsync to {}", gw.id()),
                detail: "its destination is empty: name a directory (\".\" for the worker's own)"
                    .into(),
            });
        }
        let source = self.source.clone();
        let filter = self.filter.clone();
        let items = tokio::task::spawn_blocking(move || scan(&source, filter.as_deref()))
            .await
            .map_err(|e| Error::Os {
                what: "scanning the source".into(),
                detail: e.to_string(),
            })??;
        let items = Arc::new(items);
        let sends = self.targets.iter().map(|(gw, dest)| {
            send_one(
                gw.clone(),
                dest.clone(),
                items.clone(),
                self.delete,
                self.progress.clone(),
            )
        });
        futures::future::try_join_all(sends).await
    }
}

fn os(what: String, e: std::io::Error) -> Error {
    Error::Os {
        what,
        detail: e.to_string(),
    }
}

/// The entries under `source`, sorted by path, directories before their
/// contents.
fn scan(
    source: &Path,
    filter: Option<&(dyn Fn(&Path) -> bool + Send + Sync)>,
) -> Result<Vec<Item>> {
    let root = source
        .canonicalize()
        .map_err(|e| os(format!("rsync: reading the source {}", source.display()), e))?;
    if !root.is_dir() {
        return Err(Error::Os {
            what: format!("rsync: the source {}", source.display()),
            detail: "not a directory".into(),
        });
    }
    let mut items = Vec::new();
    walk(&root, &root, filter, &mut items)?;
    Ok(items)
}

fn walk(
    root: &Path,
    dir: &Path,
    filter: Option<&(dyn Fn(&Path) -> bool + Send + Sync)>,
    items: &mut Vec<Item>,
) -> Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| os(format!("rsync: listing {}", dir.display()), e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    names.sort();
    for abs in names {
        let rel_path = abs.strip_prefix(root).unwrap_or(&abs).to_path_buf();
        if filter.is_some_and(|f| !f(&rel_path)) {
            continue;
        }
        let Ok(m) = std::fs::symlink_metadata(&abs) else {
            continue; // vanished while listing
        };
        let path = Bytes::copy_from_slice(rel_path.as_os_str().as_bytes());
        let mode = m.permissions().mode() & 0o7777;
        let entry = if m.is_dir() {
            Entry::Dir {
                path,
                mode,
                mtime: Mtime::of(&m),
            }
        } else if m.is_file() {
            Entry::File {
                path,
                mode,
                mtime: Mtime::of(&m),
                size: m.len(),
            }
        } else if m.file_type().is_symlink() {
            let Ok(t) = std::fs::read_link(&abs) else {
                continue;
            };
            let target = match t.strip_prefix(root) {
                Ok(inside) if t.is_absolute() => {
                    LinkTarget::InTree(Bytes::copy_from_slice(inside.as_os_str().as_bytes()))
                }
                _ => LinkTarget::AsIs(Bytes::copy_from_slice(t.as_os_str().as_bytes())),
            };
            Entry::Link { path, target }
        } else {
            continue; // sockets, fifos, devices
        };
        let is_dir = m.is_dir();
        items.push(Item {
            rel: rel_path.display().to_string(),
            abs: abs.clone(),
            entry,
        });
        if is_dir {
            walk(root, &abs, filter, items)?;
        }
    }
    Ok(())
}

enum Action {
    Send(u64),
    Compare(u64, Bytes),
}

/// A needed file, ready to go.
enum Prepared {
    /// Equal contents: set the mtime only.
    Touch,
    /// A small file, read whole (or why it could not be).
    Whole(std::result::Result<Vec<u8>, String>),
    /// A large file, streamed when its turn comes.
    Stream(PathBuf),
}

/// Needed files prepared ahead of the one being sent, per target.
const PREFETCH: usize = 8;

fn file_size(e: &Entry) -> u64 {
    match e {
        Entry::File { size, .. } => *size,
        _ => 0,
    }
}

async fn send_one(
    gw: Gateway,
    dest: String,
    items: Arc<Vec<Item>>,
    delete: bool,
    progress: Option<OnProgress>,
) -> Result<Report> {
    let ch = gw.remote_call(
        RSYNC_TASK,
        &ReceiveArgs {
            dest: dest.clone(),
            delete,
        },
    )?;
    // Entries out and answers in at once: neither side waits on a full
    // window.
    let entries = async {
        for it in items.iter() {
            ch.send(&ToReceiver::Entry(it.entry.clone())).await?;
        }
        ch.send(&ToReceiver::EndOfEntries).await
    };
    let answers = async {
        let mut actions = Vec::new();
        loop {
            match ch.receive::<FromReceiver>().await? {
                FromReceiver::Need { index } => actions.push(Action::Send(index)),
                FromReceiver::Hash { index, sha256 } => {
                    actions.push(Action::Compare(index, sha256))
                }
                FromReceiver::EntriesDone => return Ok::<_, Error>(actions),
            }
        }
    };
    let ((), actions) = tokio::try_join!(entries, answers)?;
    let files = items
        .iter()
        .filter(|i| matches!(i.entry, Entry::File { .. }))
        .count() as u64;
    let mut report = Report {
        gateway: gw.id().to_string(),
        dest: dest.clone(),
        ..Report::default()
    };
    let needed = actions.len() as u64;
    // Hashes and small files are read ahead, a few at a time, while
    // earlier files are being sent (bounded: PREFETCH x CHUNK per target).
    let mut prepared = futures::stream::iter(actions)
        .map(|a| {
            let (index, theirs) = match a {
                Action::Send(i) => (i, None),
                Action::Compare(i, h) => (i, Some(h)),
            };
            let item = items
                .get(index as usize)
                .map(|it| (it.abs.clone(), it.rel.clone(), file_size(&it.entry)));
            async move {
                let Some((abs, rel, size)) = item else {
                    return Err(index);
                };
                if let Some(theirs) = theirs {
                    let a = abs.clone();
                    let ours = tokio::task::spawn_blocking(move || file_sha256(&a)).await;
                    if matches!(&ours, Ok(Ok(h)) if h[..] == theirs[..]) {
                        return Ok((index, rel, Prepared::Touch));
                    }
                }
                if size > CHUNK as u64 {
                    return Ok((index, rel, Prepared::Stream(abs)));
                }
                let read = tokio::task::spawn_blocking(move || std::fs::read(&abs))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                Ok((index, rel, Prepared::Whole(read)))
            }
        })
        .buffered(PREFETCH);
    while let Some(p) = prepared.next().await {
        let (index, rel, p) = p.map_err(|index| Error::Os {
            what: format!("rsync to {}", gw.id()),
            detail: format!("the receiver named entry {index}, which was not sent"),
        })?;
        let sent = match p {
            Prepared::Touch => {
                ch.send(&ToReceiver::Touch { index }).await?;
                report.files_touched += 1;
                continue;
            }
            Prepared::Whole(Ok(data)) => {
                let n = data.len() as u64;
                ch.send_value(crate::Value::List(vec![
                    crate::to_value(&ToReceiver::WholeFile { index })?,
                    crate::Value::Bytes(data.into()),
                ]))
                .await?;
                Ok(n)
            }
            Prepared::Whole(Err(why)) => Err(why),
            Prepared::Stream(abs) => send_file(&ch, index, &abs).await?,
        };
        match sent {
            Ok(bytes) => {
                report.files_sent += 1;
                report.bytes_sent += bytes;
            }
            Err(reason) => report.vanished.push((rel.clone(), reason)),
        }
        if let Some(p) = &progress {
            p(&Progress {
                gateway: report.gateway.clone(),
                dest: dest.clone(),
                path: rel,
                files_sent: report.files_sent,
                bytes_sent: report.bytes_sent,
                files_needed: needed,
            });
        }
    }
    ch.send(&ToReceiver::Finish).await?;
    let done: Received = ch.receive().await?;
    report.files_unchanged = files.saturating_sub(needed);
    report.links_made = done.links_made;
    report.dirs_made = done.dirs_made;
    report.deleted = done.deleted;
    Ok(report)
}

/// Sends the file at `abs` as entry `index`, through the channel as a
/// byte stream: `Ok(Ok(bytes))`, or `Ok(Err(why))` when it vanished or
/// could not be read (the receiver drops what it got).
async fn send_file(
    ch: &Channel,
    index: u64,
    abs: &Path,
) -> Result<std::result::Result<u64, String>> {
    let f = match tokio::fs::File::open(abs).await {
        Ok(f) => f,
        Err(e) => return Ok(Err(e.to_string())),
    };
    ch.send(&ToReceiver::File { index }).await?;
    let mut src = tokio::io::BufReader::with_capacity(CHUNK, f);
    let mut w = ch.async_writer().leave_open();
    let copied = match tokio::io::copy_buf(&mut src, &mut w).await {
        Ok(n) => w.flush().await.map(|()| n),
        Err(e) => Err(e),
    };
    let sent = match copied {
        Ok(n) => n,
        // The channel failed: the send fails.
        Err(e) if e.get_ref().is_some_and(|x| x.is::<Error>()) => return Err(Error::from(e)),
        // The file failed: it is reported, the send goes on.
        Err(e) => {
            ch.send(&ToReceiver::FileGone {
                index,
                reason: e.to_string(),
            })
            .await?;
            return Ok(Err(e.to_string()));
        }
    };
    ch.send(&ToReceiver::FileEnd { index }).await?;
    Ok(Ok(sent))
}
