//! The output path: one buffer per connection that senders append encoded
//! frames to (large payloads as segments of their own, not copied), direct
//! writes by a sender while the writer is idle, and the writer task that
//! drains the rest in vectored writes (sealing records for `socket=`).

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::Shared;
use crate::transport::secure::{SealKeys, Sealer, MAX_PLAINTEXT};

#[derive(Default)]
pub(super) struct OutBuf {
    /// Output that leaves before `buf`: frames up to a large payload, and
    /// the payload itself, shared with the sender's `Bytes` (no copy).
    pub(super) segments: VecDeque<Bytes>,
    pub(super) buf: BytesMut,
    /// The record layer of an encrypted stream (`socket=`): `buf` leaves
    /// through it. Nonces are taken here, under this lock, in the order
    /// the bytes reach the stream.
    pub(super) sealer: Option<Sealer>,
    /// Records sealed for a direct write that the fd did not take whole;
    /// they leave before anything else.
    pub(super) sealed: BytesMut,
    pub(super) closing: bool,
    /// The stream's writing side stays open when the connection is lost
    /// (its input ended) until [`crate::conn::Connection::close_output`]:
    /// the owner still has something to finish before its peer may see
    /// the end ([`crate::conn::Connection::hold_output`]).
    pub(super) held: bool,
    /// The writer task holds bytes taken from `buf` that it has not yet
    /// written; a direct write now would overtake them.
    pub(super) writer_busy: bool,
    /// The writer's fd, lent to senders, which write to it directly while
    /// the writer is idle, saving a thread wake-up per message. Taken back
    /// (under this lock) before the writer task drops the writer, also if
    /// the task is cancelled ([`Lent`]), so it never names a closed (and
    /// perhaps reused) number. Not a duplicate: a descriptor fewer per
    /// connection.
    pub(super) direct_out: Option<RawFd>,
    /// When the last direct write happened: under a steady stream of
    /// messages, direct writes would cost a system call (and a wake-up of
    /// the peer) per message, so they are kept for traffic with pauses.
    pub(super) last_direct: Option<std::time::Instant>,
}

/// Messages closer together than this go through the writer task, which
/// sends them in batches; sparser ones are written at once by the sender.
pub(super) const DIRECT_GAP: std::time::Duration = std::time::Duration::from_micros(20);

impl OutBuf {
    /// The output of a connection whose senders may write to `writer`'s
    /// fd directly, sealing with `sealer` if the stream is an encrypted
    /// session. The writer must go to [`write_loop`], which takes the fd
    /// back before it drops the writer.
    pub(super) fn direct(writer: &impl AsFd, sealer: Option<Sealer>) -> OutBuf {
        OutBuf {
            sealer,
            direct_out: Some(writer.as_fd().as_raw_fd()),
            ..OutBuf::default()
        }
    }

    /// Writes as much of `buf` as the fd takes now, without blocking.
    /// `answering`: a small frame is likely a reply to a message that
    /// arrived (`Shared::answering`), which batching would only delay.
    /// (Bulk items keep the writer task, which writes while the sender
    /// prepares the next one.)
    /// Returns whether the writer task still has work.
    pub(super) fn try_direct(&mut self, answering: bool) -> bool {
        let Some(raw) = self.direct_out else {
            return true;
        };
        // SAFETY: `direct_out` names the writer's open fd for as long as it
        // is set, and it is cleared under the lock held here (`&mut self`
        // is inside it) before the writer is dropped (see `Lent`).
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        if self.writer_busy || !self.segments.is_empty() {
            return true;
        }
        let now = std::time::Instant::now();
        let recent = !(answering && self.buf.len() <= 16 * 1024)
            && self
                .last_direct
                .is_some_and(|t| now.duration_since(t) < DIRECT_GAP);
        self.last_direct = Some(now);
        if recent {
            return true;
        }
        if let Some(sealer) = &mut self.sealer {
            if sealer.seal(&self.buf, &mut self.sealed).is_err() {
                // Nonces ran out: the writer task meets the same error.
                return true;
            }
            self.buf.clear();
        }
        let out = if self.sealer.is_some() {
            &mut self.sealed
        } else {
            &mut self.buf
        };
        while !out.is_empty() {
            match rustix::io::write(fd, out) {
                Ok(n) => out.advance(n),
                Err(rustix::io::Errno::INTR) => continue,
                // WouldBlock: the writer task will wait for the fd to be
                // writable. A broken stream: the writer task meets the same
                // error and ends the connection.
                Err(_) => return true,
            }
        }
        false
    }

    /// Whether nothing waits to be written.
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.sealed.is_empty() && self.segments.is_empty()
    }
}

/// Payloads at least this large leave from the sender's own buffer
/// instead of being copied into the output buffer.
pub(super) const ZERO_COPY_MIN: usize = 32 * 1024;

/// Plaintext the writer seals before it writes: four of the largest
/// records (the size of the peer's reads).
const SEAL_STEP: usize = 4 * MAX_PLAINTEXT;

/// Writes `sealed`, then seals `plain` with the nonces from `first` on
/// and writes the records, [`SEAL_STEP`] of plaintext at a time, through
/// `out` (grown when a step needs it, never past about two steps: many
/// small segments add a record's overhead each). A segment is cut only
/// between its records, so the records are those of sealing it whole.
async fn seal_and_write<W: AsyncWrite + Unpin>(
    w: &mut W,
    out: &mut Vec<u8>,
    sealed: &[u8],
    plain: &[Bytes],
    keys: &SealKeys,
    first: u64,
) -> std::io::Result<()> {
    if !sealed.is_empty() {
        w.write_all(sealed).await?;
    }
    // `used`: sealed bytes in `out`; `step`: the plaintext they hold.
    let (mut used, mut step, mut nonce) = (0, 0, first);
    for seg in plain {
        let mut rest: &[u8] = seg;
        while !rest.is_empty() {
            // Whole records, as many as the step has room for (one at least).
            let fits = SEAL_STEP.saturating_sub(step).max(MAX_PLAINTEXT);
            let take = rest.len().min(fits / MAX_PLAINTEXT * MAX_PLAINTEXT);
            let need = used + Sealer::sealed_len(take);
            if out.len() < need {
                out.resize(need, 0);
            }
            used += keys.seal_into(nonce, &rest[..take], &mut out[used..])?;
            nonce += Sealer::nonces_for(take);
            step += take;
            rest = &rest[take..];
            if step >= SEAL_STEP || used >= SEAL_STEP {
                w.write_all(&out[..used]).await?;
                (used, step) = (0, 0);
            }
        }
    }
    if used > 0 {
        w.write_all(&out[..used]).await?;
    }
    Ok(())
}

/// What the writer task takes from the output buffer at once: segments
/// in stream order.
enum Chunk {
    /// Bytes to write as they are.
    Plain(Vec<Bytes>),
    /// Records already sealed, then plaintext segments to seal with the
    /// nonces reserved from `first` on.
    Sealed {
        sealed: BytesMut,
        plain: Vec<Bytes>,
        keys: SealKeys,
        first: u64,
    },
}

/// Writes `segments` whole, with vectored writes.
async fn write_segments<W: AsyncWrite + Unpin>(
    w: &mut W,
    segments: &mut [Bytes],
) -> std::io::Result<()> {
    let mut at = 0;
    while at < segments.len() {
        let slices: Vec<std::io::IoSlice<'_>> = segments[at..]
            .iter()
            .take(64)
            .map(|b| std::io::IoSlice::new(b))
            .collect();
        let mut n = w.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let first = &mut segments[at];
            if n >= first.len() {
                n -= first.len();
                at += 1;
            } else {
                first.advance(n);
                n = 0;
            }
        }
        while at < segments.len() && segments[at].is_empty() {
            at += 1;
        }
    }
    Ok(())
}

/// The writer of a connection whose fd senders borrow (`direct_out`):
/// dropped, it takes the fd back under the output lock before the writer
/// closes it, also when the writer task is cancelled or dropped before it
/// first ran (it is made before the task's future, which holds it).
pub(super) struct Lent<W> {
    w: W,
    shared: Arc<Shared>,
}

impl<W> Lent<W> {
    pub(super) fn new(shared: Arc<Shared>, w: W) -> Self {
        Lent { w, shared }
    }
}

impl<W> Drop for Lent<W> {
    fn drop(&mut self) {
        self.shared.out.lock().direct_out = None;
        // `w` is dropped (and its fd closed) after this.
    }
}

pub(super) async fn write_loop<W: AsyncWrite + Unpin>(mut lent: Lent<W>) {
    let shared = lent.shared.clone();
    let w = &mut lent.w;
    let mut out: Vec<u8> = Vec::new();
    loop {
        let chunk = {
            let mut guard = shared.out.lock();
            let o = &mut *guard;
            if o.is_empty() {
                o.writer_busy = false;
                shared.out_idle.notify(usize::MAX);
                if o.closing && !o.held {
                    break;
                }
                None
            } else {
                o.writer_busy = true;
                let mut plain: Vec<Bytes> = o.segments.drain(..).collect();
                if !o.buf.is_empty() {
                    plain.push(o.buf.split().freeze());
                }
                Some(match o.sealer.as_mut() {
                    None => Chunk::Plain(plain),
                    Some(sealer) => {
                        let first = sealer.reserve_segments(&plain);
                        Chunk::Sealed {
                            sealed: o.sealed.split(),
                            plain,
                            keys: sealer.keys(),
                            first,
                        }
                    }
                })
            }
        };
        let written = match chunk {
            Some(Chunk::Plain(mut segments)) => write_segments(w, &mut segments).await,
            Some(Chunk::Sealed {
                sealed,
                plain,
                keys,
                first,
            }) => {
                // Sealed outside the lock: senders go on meanwhile. The
                // writer is busy, so nothing overtakes these records.
                // They are sealed and written a step at a time: the
                // peer reads the first step while the next is sealed,
                // and each step is still in the cache when the kernel
                // copies it. `out` keeps its length between rounds:
                // sealing overwrites it, so it is zeroed only as it grows.
                seal_and_write(w, &mut out, &sealed, &plain, &keys, first).await
            }
            None => {
                if let Err(e) = w.flush().await {
                    tracing::debug!(gateway = %shared.name, "flush failed: {e}");
                    break;
                }
                shared.out_ready.notified().await;
                continue;
            }
        };
        if let Err(e) = written {
            tracing::debug!(gateway = %shared.name, "write failed: {e}");
            let mut o = shared.out.lock();
            o.closing = true;
            o.buf.clear();
            o.sealed.clear();
            o.segments.clear();
            break;
        }
    }
    shared.out.lock().direct_out = None;
    let _ = w.shutdown().await;
    drop(lent);
    shared.writer_finished.store(true, Ordering::Release);
    shared.writer_done.notify(usize::MAX);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{ConnConfig, Connection, Handlers};
    use std::io::Read;
    use std::os::fd::{AsRawFd, OwnedFd};

    fn pipe() -> (OwnedFd, OwnedFd) {
        rustix::pipe::pipe().expect("a pipe")
    }

    /// The engine writes directly only to the writer's fd while the writer
    /// lives: after its writer task was dropped with its runtime (before
    /// it ever ran, closing the writer's fd), a channel's close is never
    /// written to a file that reused the writer's fd number, and the
    /// stream has ended.
    #[test]
    fn a_dropped_writer_never_makes_the_engine_write_into_a_reused_fd() {
        let (input_r, _input_w) = pipe();
        let (out_r, out_w) = pipe();
        let writer_fd = out_w.as_raw_fd();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conn = rt.block_on(async {
            let writer = tokio::net::unix::pipe::Sender::from_owned_fd(out_w).unwrap();
            Connection::spawn_direct(
                ConnConfig::new("test", 1),
                Handlers::default(),
                input_r,
                writer,
                BytesMut::new(),
            )
            .unwrap()
        });
        let ch = conn.newchannel();
        // The runtime goes, and its tasks with it: the writer's fd closes.
        drop(rt);
        let file = tempfile_in_fd_order();
        let reused = file.as_raw_fd() == writer_fd;
        drop(ch);
        let mut f = std::fs::File::from(file);
        let mut content = Vec::new();
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut content).unwrap();
        assert!(
            content.is_empty(),
            "the engine wrote {} bytes into a file (fd number reused: {reused})",
            content.len()
        );
        // The stream ended with its writer: the peer sees the end, not a
        // cut frame.
        let mut out = std::fs::File::from(out_r);
        let mut rest = Vec::new();
        out.read_to_end(&mut rest).unwrap();
        assert!(
            rest.is_empty(),
            "{} bytes after the writer's end",
            rest.len()
        );
    }

    /// A new file, opened read-write: it takes the lowest free fd number.
    fn tempfile_in_fd_order() -> OwnedFd {
        let path = std::env::temp_dir().join(format!(
            "remex-conn-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        f.into()
    }
}
