//! The controller's open files: each gateway holds several (its pipes, its
//! child, its reader's epoll set, timer and wake-ups), so the common soft
//! limit of 1024 would stop a Group at about 126 workers.
//!
//! As Go's runtime does, the first gateway raises the process's soft
//! `RLIMIT_NOFILE` to its hard limit; set `REMEX_KEEP_NOFILE=1` to keep
//! the limit as it is. Children (workers, `cmd=` wrappers) inherit the
//! raised limit. When the limit is reached anyway, errors say how many
//! files are open and what to do.

use std::sync::Once;

/// The environment variable that keeps the soft limit as it is.
///
/// ```
/// assert_eq!(remex::core::transport::fds::KEEP_ENV, "REMEX_KEEP_NOFILE");
/// ```
pub const KEEP_ENV: &str = "REMEX_KEEP_NOFILE";

/// Raises the soft limit on open files to the hard limit, once per
/// process (unless [`KEEP_ENV`] is set). Gateways call it; a program may
/// call it earlier.
///
/// ```
/// remex::core::transport::fds::raise_limit();
/// let (soft, hard) = remex::core::transport::fds::limits().unwrap();
/// assert!(std::env::var_os("REMEX_KEEP_NOFILE").is_some() || soft == hard);
/// ```
pub fn raise_limit() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os(KEEP_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
            return;
        }
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut lim = getrlimit(Resource::Nofile);
        if lim.current < lim.maximum {
            let was = lim.current;
            lim.current = lim.maximum;
            match setrlimit(Resource::Nofile, lim) {
                Ok(()) => {
                    tracing::debug!("raised the open-files limit from {was:?} to its hard limit")
                }
                Err(e) => tracing::debug!("cannot raise the open-files limit: {e}"),
            }
        }
    });
}

/// The soft and hard limits on open files (`None` means unlimited).
///
/// ```
/// let (soft, hard) = remex::core::transport::fds::limits().unwrap();
/// assert!(soft <= hard);
/// ```
pub fn limits() -> Option<(u64, u64)> {
    let lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    Some((
        lim.current.unwrap_or(u64::MAX),
        lim.maximum.unwrap_or(u64::MAX),
    ))
}

/// Files this process has open now (from /proc; `None` elsewhere).
///
/// ```
/// assert!(remex::core::transport::fds::open_files().unwrap() >= 3);
/// ```
pub fn open_files() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count())
}

/// `e` with, if it is "too many open files", how many are open, the
/// limit, and the remedy.
///
/// ```
/// let e = std::io::Error::from_raw_os_error(24); // EMFILE
/// let text = remex::core::transport::fds::explain(&e);
/// assert!(text.contains("open files") && text.contains("ulimit -n"), "{text}");
/// let other = std::io::Error::from_raw_os_error(2);
/// assert_eq!(remex::core::transport::fds::explain(&other), other.to_string());
/// // Also when it is the source of an error that names the call.
/// #[derive(Debug, thiserror::Error)]
/// #[error("eventfd: {0}")]
/// struct Named(#[source] std::io::Error);
/// let named = std::io::Error::other(Named(std::io::Error::from_raw_os_error(24)));
/// assert!(remex::core::transport::fds::explain(&named).contains("ulimit -n"));
/// ```
pub fn explain(e: &std::io::Error) -> String {
    let code = rustix::io::Errno::MFILE.raw_os_error();
    // The OS error may be the source of a named one (`epoll_create1: ...`).
    let mut emfile = false;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            emfile |= io.raw_os_error() == Some(code);
        }
        cur = err.source();
    }
    if !emfile {
        return e.to_string();
    }
    let open = open_files().map_or("?".to_string(), |n| n.to_string());
    let (soft, hard) = limits().unwrap_or((0, 0));
    format!(
        "{e}: this process has {open} files open and may have {soft} (hard limit {hard}); \
         each gateway needs about 8: raise the limit (`ulimit -n {hard}` before starting, \
         or unset {KEEP_ENV})"
    )
}
