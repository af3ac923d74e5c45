//! Channels as files: byte-stream readers and writers over a channel, as
//! execnet's `channel.makefile('r'|'w')`.
//!
//! A writer sends each write as one bytes item; a reader takes bytes (and
//! strings, as their UTF-8) items in order, as one stream, so a line may
//! span items. The reader sees end of file when the other side closes the
//! channel (or closes its writing half); a remote error is an
//! [`std::io::Error`] carrying the remote message; an item that is neither
//! bytes nor a string is an `InvalidData` error naming its type.
//!
//! Flow control holds: a writer waits for credit as `send` does, so memory
//! stays within the channel's window plus one write, whatever is written.
//!
//! The example is on [`AsyncChannelReader`].
//!
//! Over 500 lines: about 230 are documentation and runnable examples; the
//! four adapters share their item handling here.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::io::StreamReader;

use crate::{Channel, Error, Value};

fn into_io(e: Error) -> io::Error {
    let kind = if e.is_timeout() {
        io::ErrorKind::TimedOut
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, e)
}

/// The bytes of one received item: bytes as they are, a string as UTF-8.
fn item_bytes(ch: &Channel, v: Value) -> io::Result<Bytes> {
    match v {
        Value::Bytes(b) => Ok(b),
        Value::Str(s) => Ok(Bytes::from(s)),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "channel {} carried {}, where a byte stream takes bytes or strings",
                ch.id(),
                other.describe()
            ),
        )),
    }
}

/// Reads a channel as a byte stream from a plain thread: [`std::io::Read`]
/// and [`std::io::BufRead`] (so `lines()` works across items). Made by
/// [`Channel::reader`].
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use std::io::BufRead;
/// let gw = remex::makegateway("popen").await?;
/// let ch = gw.remote_exec(r#"channel.send("a\nb"); channel.send("c\n")"#)?;
/// let lines = tokio::task::spawn_blocking(move || {
///     ch.reader().lines().collect::<std::io::Result<Vec<_>>>()
/// })
/// .await
/// .unwrap()?;
/// assert_eq!(lines, ["a", "bc"]);
/// gw.exit().await?;
/// # Ok(()) }
/// ```
pub struct ChannelReader {
    channel: Channel,
    current: Bytes,
    /// End of file seen, or an error already returned: later reads give 0.
    done: bool,
}

impl ChannelReader {
    /// The channel read from.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("")?;
    /// assert_eq!(ch.reader().channel(), &ch);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}

impl io::BufRead for ChannelReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.current.is_empty() && !self.done {
            match self.channel.next_value_blocking(None) {
                Ok(v) => match item_bytes(&self.channel, v) {
                    Ok(b) => self.current = b,
                    Err(e) => {
                        self.done = true;
                        return Err(e);
                    }
                },
                Err(e) if e.is_end_of_channel() => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Err(into_io(e));
                }
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, amt: usize) {
        self.current.advance(amt.min(self.current.len()));
    }
}

impl io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = {
            let got = io::BufRead::fill_buf(self)?;
            let n = got.len().min(buf.len());
            buf[..n].copy_from_slice(&got[..n]);
            n
        };
        io::BufRead::consume(self, n);
        Ok(n)
    }
}

/// Writes a channel as a byte stream from a plain thread: each `write` is
/// one bytes item (at most [`ChannelWriter::MAX_ITEM`] bytes), waiting for credit
/// as [`Channel::send_blocking`] does. Dropping the writer (or
/// [`ChannelWriter::finish`]) closes the channel's writing half, so the
/// reader on the other side sees end of file; the channel still receives.
/// Made by [`Channel::writer`]. Wrap it in a [`std::io::BufWriter`] when
/// writing many small pieces.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use std::io::Write;
/// let gw = remex::makegateway("popen").await?;
/// // The script counts the bytes it receives until the writer is closed.
/// let ch = gw.remote_exec("let n = 0; for b in channel { n += b.len(); } channel.send(n)")?;
/// let w = ch.clone();
/// tokio::task::spawn_blocking(move || -> std::io::Result<()> {
///     let mut w = w.writer();
///     w.write_all(&[7u8; 100_000])?;
///     w.finish()
/// })
/// .await
/// .unwrap()?;
/// assert_eq!(ch.receive::<i64>().await?, 100_000);
/// gw.exit().await?;
/// # Ok(()) }
/// ```
pub struct ChannelWriter {
    channel: Channel,
    finished: bool,
}

impl ChannelWriter {
    /// The largest item one write sends (of this writer and of
    /// [`AsyncChannelWriter`]); a longer write is cut (as `write` may), so
    /// one item never exceeds it.
    ///
    /// ```
    /// assert_eq!(remex::ChannelWriter::MAX_ITEM, 1 << 20);
    /// ```
    pub const MAX_ITEM: usize = 1 << 20;

    /// Closes the channel's writing half (as dropping the writer does),
    /// reporting an error the channel met.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("let n = 0; for x in channel { n += 1 } channel.send(n)")?;
    /// let w = ch.clone();
    /// tokio::task::spawn_blocking(move || w.writer().finish()).await.unwrap()?;
    /// assert_eq!(ch.receive::<i64>().await?, 0);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn finish(mut self) -> io::Result<()> {
        if !self.finished {
            self.channel.close_write();
        }
        self.finished = true;
        Ok(())
    }

    /// Makes dropping the writer (and [`ChannelWriter::finish`]) leave the
    /// channel open, for a byte stream followed by other items.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use std::io::Write;
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("let a = channel.receive(); let b = channel.receive(); channel.send([a.len(), b])")?;
    /// let w = ch.clone();
    /// tokio::task::spawn_blocking(move || w.writer().leave_open().write_all(b"abc")).await.unwrap()?;
    /// ch.send(&"after").await?; // the channel is still open
    /// assert_eq!(ch.receive::<(i64, String)>().await?, (3, "after".to_string()));
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn leave_open(mut self) -> ChannelWriter {
        self.finished = true;
        self
    }
}

impl io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(ChannelWriter::MAX_ITEM);
        self.channel
            .send_value_blocking(Value::Bytes(Bytes::copy_from_slice(&buf[..n])))
            .map_err(into_io)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        if !self.finished {
            self.channel.close_write();
        }
    }
}

/// Reads a channel as a byte stream in async code: [`tokio::io::AsyncRead`]
/// and [`tokio::io::AsyncBufRead`] (so `lines()` works across items).
/// Made by [`Channel::async_reader`]. A reader takes bytes (and strings,
/// as their UTF-8) items in order, as one stream, so a line may span
/// items; it sees end of file when the other side closes the channel (or
/// its writing half); a remote error is an [`std::io::Error`] carrying the
/// remote message; an item that is neither bytes nor a string is an
/// `InvalidData` error naming its type.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
/// let gw = remex::makegateway("popen").await?;
/// // The script echoes every item it receives.
/// let ch = gw.remote_exec("for x in channel { channel.send(x) }")?;
/// let mut w = ch.async_writer();
/// w.write_all(b"one\ntw").await?;
/// w.write_all(b"o\nthree").await?;
/// w.shutdown().await?; // the script's loop ends, and so does the channel
/// let mut lines = ch.async_reader().lines();
/// let mut got = Vec::new();
/// while let Some(line) = lines.next_line().await? {
///     got.push(line);
/// }
/// assert_eq!(got, ["one", "two", "three"]);
/// gw.exit().await?;
/// # Ok(()) }
/// ```
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use tokio::io::AsyncReadExt;
/// let gw = remex::makegateway("popen").await?;
/// let ch = gw.remote_exec(r#"channel.send("ab"); channel.send("cd")"#)?;
/// let mut all = String::new();
/// ch.async_reader().read_to_string(&mut all).await?;
/// assert_eq!(all, "abcd");
/// gw.exit().await?;
/// # Ok(()) }
/// ```
pub struct AsyncChannelReader {
    inner: StreamReader<BoxStream<'static, io::Result<Bytes>>, Bytes>,
}

impl AsyncRead for AsyncChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncBufRead for AsyncChannelReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        Pin::new(&mut self.get_mut().inner).poll_fill_buf(cx)
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.inner).consume(amt)
    }
}

type Sending = Pin<Box<dyn Future<Output = crate::Result<()>> + Send>>;

/// Writes a channel as a byte stream in async code:
/// [`tokio::io::AsyncWrite`]. Each write is one bytes item (at most
/// [`ChannelWriter::MAX_ITEM`] bytes); a write that finds no credit is taken and
/// sent when credit comes, and the next write (or a flush) waits for it,
/// so at most one write is held beyond the window. `shutdown` closes the
/// channel's writing half (as dropping the writer does). Made by
/// [`Channel::async_writer`]; see [`AsyncChannelReader`]'s example.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let gw = remex::makegateway("popen").await?;
/// let ch = gw.remote_exec("let n = 0; for b in channel { n += b.len(); } channel.send(n)")?;
/// // Copy a reader into the channel, then end the stream.
/// let mut src: &[u8] = &[1u8; 50_000];
/// let mut w = ch.async_writer();
/// tokio::io::copy(&mut src, &mut w).await?;
/// drop(w);
/// assert_eq!(ch.receive::<i64>().await?, 50_000);
/// gw.exit().await?;
/// # Ok(()) }
/// ```
pub struct AsyncChannelWriter {
    channel: Channel,
    sending: Option<Sending>,
    finished: bool,
    leave_open: bool,
}

impl AsyncChannelWriter {
    /// Makes dropping the writer (and `shutdown`) leave the channel open,
    /// for a byte stream followed by other items.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use tokio::io::AsyncWriteExt;
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("let a = channel.receive(); let b = channel.receive(); channel.send([a.len(), b])")?;
    /// let mut w = ch.async_writer().leave_open();
    /// w.write_all(b"abc").await?;
    /// w.shutdown().await?; // sent, and the channel stays open
    /// ch.send(&"after").await?;
    /// assert_eq!(ch.receive::<(i64, String)>().await?, (3, "after".to_string()));
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn leave_open(mut self) -> AsyncChannelWriter {
        self.leave_open = true;
        self
    }

    fn poll_sent(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(f) = self.sending.as_mut() {
            let r = ready!(f.as_mut().poll(cx));
            self.sending = None;
            r.map_err(into_io)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for AsyncChannelWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_sent(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(ChannelWriter::MAX_ITEM);
        let item = Bytes::copy_from_slice(&buf[..n]);
        match this.channel.try_send_value(Value::Bytes(item.clone())) {
            Ok(()) => {}
            Err(e) if e.is_timeout() => {
                // No credit now: the item is taken; the next write waits.
                let ch = this.channel.clone();
                this.sending = Some(Box::pin(
                    async move { ch.send_value(Value::Bytes(item)).await },
                ));
            }
            Err(e) => return Poll::Ready(Err(into_io(e))),
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_sent(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_sent(cx))?;
        if !this.finished {
            this.finished = true;
            if !this.leave_open {
                this.channel.close_write();
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for AsyncChannelWriter {
    fn drop(&mut self) {
        let close = !self.finished && !self.leave_open;
        if let Some(f) = self.sending.take() {
            // A write was taken but not yet sent: finish it (then close).
            let ch = self.channel.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = f.await;
                    if close {
                        ch.close_write();
                    }
                });
                return;
            }
        }
        if close {
            self.channel.close_write();
        }
    }
}

impl Channel {
    /// The channel as a byte-stream reader for plain threads; see
    /// [`ChannelReader`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use std::io::Read;
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec(r#"channel.send("hello")"#)?;
    /// let s = tokio::task::spawn_blocking(move || {
    ///     let mut s = String::new();
    ///     ch.reader().read_to_string(&mut s).map(|_| s)
    /// })
    /// .await
    /// .unwrap()?;
    /// assert_eq!(s, "hello");
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn reader(&self) -> ChannelReader {
        ChannelReader {
            channel: self.clone(),
            current: Bytes::new(),
            done: false,
        }
    }

    /// The channel as a byte-stream writer for plain threads; see
    /// [`ChannelWriter`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use std::io::Write;
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("let s = \"\"; for b in channel { s += b.as_string() } channel.send(s)")?;
    /// let w = ch.clone();
    /// tokio::task::spawn_blocking(move || writeln!(w.writer(), "hi")).await.unwrap()?;
    /// assert_eq!(ch.receive::<String>().await?, "hi\n");
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn writer(&self) -> ChannelWriter {
        ChannelWriter {
            channel: self.clone(),
            finished: false,
        }
    }

    /// The channel as an async byte-stream reader; see
    /// [`AsyncChannelReader`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use tokio::io::AsyncReadExt;
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec(r#"channel.send("hello")"#)?;
    /// let mut s = String::new();
    /// ch.async_reader().read_to_string(&mut s).await?;
    /// assert_eq!(s, "hello");
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn async_reader(&self) -> AsyncChannelReader {
        let ch = self.clone();
        let items = futures::stream::unfold(Some(ch), |ch| async move {
            let ch = ch?;
            match ch.next_value().await {
                Ok(v) => match item_bytes(&ch, v) {
                    Ok(b) => Some((Ok(b), Some(ch))),
                    Err(e) => Some((Err(e), None)),
                },
                Err(e) if e.is_end_of_channel() => None,
                Err(e) => Some((Err(into_io(e)), None)),
            }
        });
        AsyncChannelReader {
            inner: StreamReader::new(items.boxed()),
        }
    }

    /// The channel as an async byte-stream writer; see
    /// [`AsyncChannelWriter`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use tokio::io::AsyncWriteExt;
    /// let gw = remex::makegateway("popen").await?;
    /// let ch = gw.remote_exec("let n = 0; for b in channel { n += b.len(); } channel.send(n)")?;
    /// let mut w = ch.async_writer();
    /// w.write_all(b"12345").await?;
    /// w.shutdown().await?;
    /// assert_eq!(ch.receive::<i64>().await?, 5);
    /// gw.exit().await?;
    /// # Ok(()) }
    /// ```
    pub fn async_writer(&self) -> AsyncChannelWriter {
        AsyncChannelWriter {
            channel: self.clone(),
            sending: None,
            finished: false,
            leave_open: false,
        }
    }
}

macro_rules! debug_by_channel {
    ($($t:ident),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t)).field("channel", &self.channel.id()).finish()
            }
        }
    )*};
}

debug_by_channel!(ChannelReader, ChannelWriter, AsyncChannelWriter);

impl std::fmt::Debug for AsyncChannelReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncChannelReader").finish_non_exhaustive()
    }
}

/// `ch` joined to an in-memory duplex stream: its byte items come out of
/// the returned stream, and what is written to the stream leaves as byte
/// items; its end ends the stream, and the stream's end ends the
/// channel's writing side (the far side's items still come). (A relayed
/// worker's byte stream, `via=`.)
pub(crate) fn duplex(ch: Channel) -> tokio::io::DuplexStream {
    use bytes::BytesMut;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (near, far) = tokio::io::duplex(1 << 20);
    let (mut far_r, mut far_w) = tokio::io::split(far);
    let inbound = ch.clone();
    tokio::spawn(async move {
        while let Ok(v) = inbound.next_value().await {
            if let Value::Bytes(b) = v {
                if far_w.write_all(&b).await.is_err() {
                    break;
                }
            }
        }
        let _ = far_w.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            buf.reserve(64 * 1024);
            match far_r.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if ch
                        .send_value(Value::Bytes(buf.split().freeze()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Our side's end only: what the far side still sends (a relayed
        // worker's last words) is read until it closes the channel.
        ch.close_write();
    });
    near
}
