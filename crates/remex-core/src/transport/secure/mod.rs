//! The secure session of `socket=`: a Noise handshake
//! ([`PATTERN`], through the `snow` crate) that proves the shared secret in
//! both directions and derives fresh keys from ephemeral X25519 keys, then
//! encrypted, integrity-protected records in both directions (AES-256-GCM
//! through ring, with the processor's AES instructions where it has them).
//!
//! ```text
//! worker -> client   GREETING ("REMEX-NOISE1\n", plain: says "this is remex")
//! client -> worker   len(2, big-endian) + Noise message 1 (-> psk, e; 48 bytes)
//! worker -> client   len + Noise message 2 (<- e, ee; 48 bytes)
//!                    or REFUSED ("REMEX-AUTH-REFUSED\n") and close, when
//!                    message 1 does not prove the secret
//! then both ways     records: len(2, clear: the rest of the record)
//!                    + header: the body's length sealed (2 + 16 bytes)
//!                    + body: at most MAX_PLAINTEXT bytes sealed (+ 16)
//!                    nonces: 2k for record k's header, 2k + 1 for its
//!                    body, in that direction (implicit, from 0); a new
//!                    key (Noise's Rekey) every 2^21 nonces
//! ```
//!
//! Why a sealed header: the clear length is for whoever frames records
//! (proxies, captures); a receiver trusts only the sealed one, which it
//! opens from a fixed 18 bytes as soon as they arrive. A length changed
//! on the way so that the receiver would wait for bytes that never come
//! (the sender sent the record whole) is caught at once: the clear
//! length no longer matches the sealed one, or the header fails its tag.
//!
//! What each step proves: message 1's tag is keyed by the PSK, so a client
//! without the secret fails there; message 2's tag is keyed by the PSK and
//! the ephemeral DH, so a listener without the secret fails there, before
//! the client sends anything of the user's; the first record from the
//! client (its hello) is keyed by both ephemerals, so a replayed message 1
//! gets nowhere. Each record's nonce is its position, so a flipped,
//! injected, dropped, reordered or replayed record fails its tag and ends
//! the session. The secret enters only as the PSK: a recorded session
//! cannot be decrypted later even with it (the ephemeral keys are gone).
//! The PSK is SHA-256 of a label and the secret, so secrets should carry
//! 128 bits or more of entropy (`installvia=` makes 256-bit ones); a weak
//! one can be guessed offline from a recorded handshake.
//!
//! The handshake's prologue names the session's version, remex's wire
//! protocol version, what the session is for ([`Use`]: `socket=` or a
//! dial-back) and who initiates: a handshake made for one never completes
//! as the other, even under the same secret. Each direction's key changes
//! every 2^20 records (Noise's `Rekey()`, in the `cipher` module), so no key seals
//! more than 64 GiB; the 64-bit counter cannot wrap in a session's life,
//! and the session ends if it ever would.
//!
//! Over 500 lines: about 600 are documentation and 190 are tests; the code
//! (the handshake, the record layer and its split for the engine) is under
//! 500.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::io::poll_read_buf;
use zeroize::Zeroizing;

mod cipher;

use super::spare;

use cipher::{RecvKeys, SendKeys, TAG};

/// The Noise protocol of a session.
///
/// ```
/// assert_eq!(remex::core::transport::secure::PATTERN, "Noise_NNpsk0_25519_AESGCM_SHA256");
/// ```
pub const PATTERN: &str = "Noise_NNpsk0_25519_AESGCM_SHA256";
/// What a listener sends first, in plain: it speaks this protocol.
///
/// ```
/// // What a listener says first, before any secret is proven.
/// assert_eq!(remex::core::transport::secure::GREETING, b"REMEX-NOISE3\n");
/// ```
pub const GREETING: &[u8] = b"REMEX-NOISE3\n";
/// How every version's greeting starts (a peer with another version of
/// the session is told apart from one that is not remex).
const GREETING_FAMILY: &[u8] = b"REMEX-NOISE";
/// What a listener sends, in plain, before closing on a client that did not
/// prove the secret.
///
/// ```
/// assert_eq!(remex::core::transport::secure::REFUSED, b"REMEX-AUTH-REFUSED\n");
/// ```
pub const REFUSED: &[u8] = b"REMEX-AUTH-REFUSED\n";
pub use crate::error::TAMPERED;
/// What a session is for. It is mixed into the handshake (the prologue,
/// with the versions and the roles), so both ends must agree on it: a
/// handshake made for one use never completes as the other, even under
/// the same secret.
///
/// ```
/// # #[tokio::main] async fn main() {
/// use remex::core::transport::secure::{self, Use};
/// let psk = secure::psk(b"s3cret");
/// let (a, b) = tokio::io::duplex(1 << 16);
/// let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
/// let (client, listener) = tokio::join!(
///     secure::initiate(&mut ar, &mut aw, &psk, Use::DialBack),
///     secure::respond(&mut br, &mut bw, &psk, Use::Socket),
/// );
/// assert!(client.is_err() && listener.is_err(), "a dial-back is not a socket= session");
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// `socket=`: the client (controller) initiates, the listener
    /// (worker) responds.
    Socket,
    /// A dial-back (Slurm's workers): the worker initiates, the
    /// controller responds.
    DialBack,
}

/// Mixed into the handshake hash: the session's version, the wire
/// protocol's, the use and the roles.
fn prologue(purpose: Use) -> Vec<u8> {
    let roles = match purpose {
        Use::Socket => "socket=: the client initiates, the listener responds",
        Use::DialBack => "dial-back: the worker initiates, the controller responds",
    };
    format!(
        "remex secure session v3; remex wire protocol {}; {roles}",
        crate::wire::PROTOCOL_VERSION
    )
    .into_bytes()
}
/// The largest record on the wire after its clear length (what the
/// 2-byte length can say).
///
/// ```
/// use remex::core::transport::secure::{MAX_PLAINTEXT, MAX_RECORD};
/// assert_eq!(MAX_RECORD, 65535);
/// assert_eq!(MAX_RECORD - MAX_PLAINTEXT, 34, "the sealed header and two AEAD tags");
/// ```
pub const MAX_RECORD: usize = 65535;
/// A record's sealed header: its body's length (2 bytes) and a tag.
const HEADER: usize = 2 + TAG;
/// A record's bytes beyond its plaintext, after the clear length.
const OVERHEAD: usize = HEADER + TAG;
/// The most plaintext one record carries.
///
/// ```
/// use remex::core::transport::secure::{Sealer, MAX_PLAINTEXT};
/// assert_eq!(Sealer::records_for(MAX_PLAINTEXT + 1), 2);
/// ```
pub const MAX_PLAINTEXT: usize = MAX_RECORD - OVERHEAD;
/// Length of each handshake message: an ephemeral key and an empty
/// payload's tag.
const HANDSHAKE_MESSAGE: usize = 32 + TAG;
/// Room made in an opener's plaintext buffer when it runs out.
const PLAIN_ROOM: usize = 1 << 20;
/// What one read takes from the wire beyond the record under way, once
/// the peer proved itself: three of the largest records, whole.
// Used by the direct input path (Linux) only.
#[cfg_attr(any(not(target_os = "linux"), feature = "portable"), allow(dead_code))]
const READ_AHEAD: usize = 3 * (2 + MAX_RECORD);
/// What a record that failed to open went through.
const INTEGRITY: &str =
    "failed its integrity check (changed, injected, dropped, reordered or replayed data)";
/// Plaintext a writer takes per `write` call (several records, one
/// system call).
const WRITE_BATCH: usize = 4 * MAX_PLAINTEXT;

/// The Noise pre-shared key for `secret`.
///
/// ```
/// use remex::core::transport::secure::psk;
/// assert_eq!(psk(b"s3cret"), psk(b"s3cret"));
/// assert_ne!(psk(b"s3cret"), psk(b"other"));
/// ```
pub fn psk(secret: &[u8]) -> zeroize::Zeroizing<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(b"remex socket psk v1\0");
    h.update(secret);
    zeroize::Zeroizing::new(h.finalize().into())
}

/// Why a secure handshake failed.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use remex::core::transport::secure::{self, Use};
/// let (a, b) = tokio::io::duplex(1 << 16);
/// let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
/// let (right, wrong) = (secure::psk(b"right"), secure::psk(b"wrong"));
/// let (client, server) = tokio::join!(
///     secure::initiate(&mut ar, &mut aw, &right, Use::Socket),
///     secure::respond(&mut br, &mut bw, &wrong, Use::Socket)
/// );
/// let e: secure::HandshakeError = client.unwrap_err();
/// assert!(e.to_string().contains("secret"), "{e}");
/// assert!(server.is_err());
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer does not speak this protocol; says what it sent.
    NotRemex(String),
    /// The listener refused our proof of the secret (the secrets differ).
    Refused,
    /// The peer's handshake message did not prove the secret.
    Unproven,
    /// The connection failed or closed during the handshake.
    Io(io::Error),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::NotRemex(what) => write!(f, "not a remex listener: {what}"),
            HandshakeError::Refused => write!(f, "the listener refused our secret"),
            HandshakeError::Unproven => write!(f, "the peer did not prove the shared secret"),
            HandshakeError::Io(e) => write!(f, "the connection failed during the handshake: {e}"),
        }
    }
}

impl From<io::Error> for HandshakeError {
    fn from(e: io::Error) -> Self {
        HandshakeError::Io(e)
    }
}

fn builder<'a>(psk: &'a [u8; 32], prologue: &'a [u8]) -> snow::Builder<'a> {
    let params = PATTERN.parse().expect("PATTERN is a valid Noise pattern");
    snow::Builder::new(params)
        .prologue(prologue)
        .and_then(|b| b.psk(0, psk))
        .expect("the prologue and psk fit the pattern")
}

fn snow_io(e: snow::Error) -> io::Error {
    io::Error::other(format!("noise: {e}"))
}

/// Shows what a peer sent, for "not remex" errors.
fn shown(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "it closed without a word".into();
    }
    format!(
        "it sent {:?}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(64)])
    )
}

/// Reads exactly `buf.len()` bytes; `Ok(n < len)` when the peer closed first.
async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]).await? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// What came where the peer's handshake message was due.
enum Incoming {
    /// A whole message of the expected length.
    Message([u8; HANDSHAKE_MESSAGE]),
    /// The peer closed before two bytes; what it sent.
    Short(Vec<u8>),
    /// Two bytes that are not the expected length.
    OtherLength([u8; 2]),
    /// The right length, then the peer closed mid-message.
    Cut,
}

/// Reads the peer's handshake message, length first.
async fn recv_message<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Incoming> {
    let mut len = [0u8; 2];
    let got = read_full(r, &mut len).await?;
    if got < 2 {
        return Ok(Incoming::Short(len[..got].to_vec()));
    }
    if u16::from_be_bytes(len) as usize != HANDSHAKE_MESSAGE {
        return Ok(Incoming::OtherLength(len));
    }
    let mut msg = [0u8; HANDSHAKE_MESSAGE];
    if read_full(r, &mut msg).await? < HANDSHAKE_MESSAGE {
        return Ok(Incoming::Cut);
    }
    Ok(Incoming::Message(msg))
}

/// Writes this side's handshake message (empty payload), length first.
async fn send_message<W: AsyncWrite + Unpin>(
    hs: &mut snow::HandshakeState,
    w: &mut W,
) -> io::Result<()> {
    let mut msg = [0u8; 2 + HANDSHAKE_MESSAGE];
    let n = hs.write_message(&[], &mut msg[2..]).map_err(snow_io)?;
    debug_assert_eq!(n, HANDSHAKE_MESSAGE);
    msg[..2].copy_from_slice(&(n as u16).to_be_bytes());
    w.write_all(&msg[..2 + n]).await?;
    w.flush().await
}

/// An established session: the keys of both directions (zeroed on drop)
/// and the handshake hash. [`split`] makes its reader and writer.
pub struct Session {
    send: Zeroizing<[u8; 32]>,
    recv: Zeroizing<[u8; 32]>,
    hash: SessionHash,
    /// A rekey every `2^epoch_bits` nonces (small in tests).
    epoch_bits: u32,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    /// The session's handshake hash: the same on both ends of one session
    /// and on no other, for binding something to it (a credential made
    /// for this session is worthless in another).
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use remex::core::transport::secure::{self, Use};
    /// let psk = secure::psk(b"s3cret");
    /// let (a, b) = tokio::io::duplex(1 << 16);
    /// let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// let (client, server) = tokio::join!(
    ///     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
    ///     secure::respond(&mut br, &mut bw, &psk, Use::Socket),
    /// );
    /// assert_eq!(client.unwrap().hash(), server.unwrap().hash(), "both ends agree on it");
    /// # }
    /// ```
    pub fn hash(&self) -> SessionHash {
        self.hash
    }

    /// The same session, rekeying every `2^bits` nonces (tests cross
    /// several rekeys in a few records).
    #[cfg(test)]
    fn rekeying_every(mut self, bits: u32) -> Session {
        self.epoch_bits = bits;
        self
    }
}

/// The client's side: checks the greeting, proves the secret and checks
/// the listener's proof. Nothing else is sent before this returns `Ok`.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// # use remex::core::transport::secure::{self, Use};
/// # let psk = secure::psk(b"s3cret");
/// # let (a, b) = tokio::io::duplex(1 << 20);
/// # let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
/// # let (client, server) = tokio::join!(
/// #     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
/// #     secure::respond(&mut br, &mut bw, &psk, Use::Socket)
/// # );
/// # let (mut reader, _) = secure::split(server.unwrap(), br, bw, "client");
/// # let (_, mut writer) = secure::split(client.unwrap(), ar, aw, "listener");
/// // (above: `initiate` on one side, `respond` on the other, then `split`)
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// writer.write_all(b"hello").await.unwrap();
/// writer.flush().await.unwrap();
/// let mut got = [0u8; 5];
/// reader.read_exact(&mut got).await.unwrap();
/// assert_eq!(&got, b"hello");
/// # Ok(()) }
/// ```
pub async fn initiate<R, W>(
    r: &mut R,
    w: &mut W,
    psk: &[u8; 32],
    purpose: Use,
) -> Result<Session, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut greeting = [0u8; GREETING.len()];
    let got = read_full(r, &mut greeting).await?;
    if got == GREETING.len() && greeting != GREETING && greeting.starts_with(GREETING_FAMILY) {
        return Err(HandshakeError::NotRemex(format!(
            "it speaks another version of remex's secure session ({}; this remex speaks {}): run the same remex version on both ends",
            String::from_utf8_lossy(&greeting).trim_end(),
            String::from_utf8_lossy(GREETING).trim_end()
        )));
    }
    if got < GREETING.len() || greeting != GREETING {
        return Err(HandshakeError::NotRemex(shown(&greeting[..got])));
    }
    let prologue = prologue(purpose);
    let mut hs = builder(psk, &prologue).build_initiator().map_err(snow_io)?;
    send_message(&mut hs, w).await?;
    let reply = match recv_message(r).await? {
        Incoming::Message(m) => m,
        Incoming::OtherLength(prefix) if prefix == REFUSED[..2] => {
            return Err(HandshakeError::Refused)
        }
        Incoming::OtherLength(_) => return Err(HandshakeError::Unproven),
        Incoming::Short(_) | Incoming::Cut => {
            return Err(HandshakeError::Io(io::ErrorKind::UnexpectedEof.into()))
        }
    };
    hs.read_message(&reply, &mut [])
        .map_err(|_| HandshakeError::Unproven)?;
    Ok(finish(hs))
}

/// The handshake hash of a session (see [`Session::hash`]).
pub type SessionHash = [u8; 32];

/// The session of a finished handshake: Noise's `Split()`, each key to
/// its direction.
fn finish(mut hs: snow::HandshakeState) -> Session {
    let mut hash = [0u8; 32];
    let h = hs.get_handshake_hash();
    hash[..h.len().min(32)].copy_from_slice(&h[..h.len().min(32)]);
    let (k1, k2) = hs.dangerously_get_raw_split();
    let (k1, k2) = (Zeroizing::new(k1), Zeroizing::new(k2));
    let (send, recv) = if hs.is_initiator() {
        (k1, k2)
    } else {
        (k2, k1)
    };
    Session {
        send,
        recv,
        hash,
        epoch_bits: cipher::EPOCH_BITS,
    }
}

/// The listener's side: greets, checks the client's proof of the secret
/// (answering [`REFUSED`] when it fails) and proves its own. The client is
/// proven fresh only by its first record: [`SecureReader`] fails on a
/// replayed handshake there.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// # use remex::core::transport::secure::{self, Use};
/// # let psk = secure::psk(b"s3cret");
/// # let (a, b) = tokio::io::duplex(1 << 20);
/// # let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
/// # let (client, server) = tokio::join!(
/// #     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
/// #     secure::respond(&mut br, &mut bw, &psk, Use::Socket)
/// # );
/// # let (mut reader, _) = secure::split(server.unwrap(), br, bw, "client");
/// # let (_, mut writer) = secure::split(client.unwrap(), ar, aw, "listener");
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// writer.write_all(b"x").await.unwrap();
/// writer.flush().await.unwrap();
/// assert_eq!(reader.read_u8().await.unwrap(), b'x');
/// # Ok(()) }
/// ```
pub async fn respond<R, W>(
    r: &mut R,
    w: &mut W,
    psk: &[u8; 32],
    purpose: Use,
) -> Result<Session, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    respond_noting(r, w, psk, purpose, || {}).await
}

/// [`respond`], calling `proven` as soon as the initiator's first message
/// has authenticated (it was made with the secret: a client, or a replay
/// of one's first message), before the rest of the handshake. A listener
/// uses it to stop counting that connection among the unproven ones it
/// may drop under a flood.
///
/// ```
/// # #[tokio::main] async fn main() {
/// use remex::core::transport::secure::{self, Use};
/// let psk = secure::psk(b"s3cret");
/// let (a, b) = tokio::io::duplex(1 << 16);
/// let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
/// let proven = std::sync::atomic::AtomicBool::new(false);
/// let (client, server) = tokio::join!(
///     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
///     secure::respond_noting(&mut br, &mut bw, &psk, Use::Socket, || {
///         proven.store(true, std::sync::atomic::Ordering::Relaxed)
///     }),
/// );
/// assert!(client.is_ok() && server.is_ok());
/// assert!(proven.load(std::sync::atomic::Ordering::Relaxed));
/// # }
/// ```
pub async fn respond_noting<R, W>(
    r: &mut R,
    w: &mut W,
    psk: &[u8; 32],
    purpose: Use,
    proven: impl FnOnce(),
) -> Result<Session, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    w.write_all(GREETING).await?;
    w.flush().await?;
    let msg = match recv_message(r).await? {
        Incoming::Message(m) => m,
        Incoming::Short(got) => return Err(HandshakeError::NotRemex(shown(&got))),
        Incoming::OtherLength(prefix) => {
            refuse(w).await;
            return Err(HandshakeError::NotRemex(shown(&prefix)));
        }
        Incoming::Cut => return Err(HandshakeError::Io(io::ErrorKind::UnexpectedEof.into())),
    };
    let prologue = prologue(purpose);
    let mut hs = builder(psk, &prologue).build_responder().map_err(snow_io)?;
    if hs.read_message(&msg, &mut []).is_err() {
        refuse(w).await;
        return Err(HandshakeError::Unproven);
    }
    proven();
    send_message(&mut hs, w).await?;
    Ok(finish(hs))
}

/// Tells a client it failed to prove the secret. Best effort: a peer that
/// does not read must not hold the listener.
async fn refuse<W: AsyncWrite + Unpin>(w: &mut W) {
    let _ = tokio::time::timeout(std::time::Duration::from_millis(100), w.write_all(REFUSED)).await;
}

/// Splits an established session into its reading and writing halves.
/// `peer` names the other end in errors.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// # use remex::core::transport::secure::{self, Use};
/// # let psk = secure::psk(b"s3cret");
/// # let (a, b) = tokio::io::duplex(1 << 20);
/// # let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
/// # let (client, server) = tokio::join!(
/// #     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
/// #     secure::respond(&mut br, &mut bw, &psk, Use::Socket)
/// # );
/// # let (mut reader, _) = secure::split(server.unwrap(), br, bw, "client");
/// # let (_, mut writer) = secure::split(client.unwrap(), ar, aw, "listener");
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// writer.write_all(&[7; 100_000]).await.unwrap(); // several records
/// writer.flush().await.unwrap();
/// let mut got = vec![0u8; 100_000];
/// reader.read_exact(&mut got).await.unwrap();
/// assert!(got.iter().all(|b| *b == 7));
/// # Ok(()) }
/// ```
pub fn split<R, W>(
    session: Session,
    reader: R,
    writer: W,
    peer: &str,
) -> (SecureReader<R>, SecureWriter<W>) {
    (
        SecureReader {
            inner: reader,
            opener: Opener {
                keys: RecvKeys::new(&session.recv, session.epoch_bits),
                nonce: 0,
                body: None,
                cipher: BytesMut::with_capacity(4096),
                last_read: 0,
                peer: peer.to_string(),
                failed: None,
            },
            plain: BytesMut::new(),
        },
        SecureWriter {
            inner: writer,
            sealer: Sealer {
                keys: Arc::new(SendKeys::new(&session.send, session.epoch_bits)),
                next: 0,
            },
            out: BytesMut::new(),
        },
    )
}

/// The receiving side of a session's record layer, without I/O: bytes
/// from the wire go in ([`Opener::spare`]), the
/// plaintext of whole records comes out ([`Opener::open`]). A record that
/// fails its integrity check, or a stream cut in the middle of a record,
/// is an error (kind `InvalidData` or `UnexpectedEof`) that names the peer
/// and repeats on every later call; nothing of that record or after it is
/// returned. Until the first record opened, it holds at most one record's
/// bytes (64 KiB) for an unproven peer.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// # use remex::core::transport::secure::{self, Use};
/// # let psk = secure::psk(b"s3cret");
/// # let (a, b) = tokio::io::duplex(1 << 20);
/// # let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
/// # let (client, server) = tokio::join!(
/// #     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
/// #     secure::respond(&mut br, &mut bw, &psk, Use::Socket)
/// # );
/// # let (mut reader, _) = secure::split(server.unwrap(), br, bw, "client");
/// # let (_, mut writer) = secure::split(client.unwrap(), ar, aw, "listener");
/// let (_inner, mut opener, _plain) = reader.into_parts();
/// let (_inner, mut sealer) = writer.into_parts().unwrap();
/// let mut wire = bytes::BytesMut::new();
/// sealer.seal(b"record", &mut wire).unwrap();
/// opener.spare().extend_from_slice(&wire);
/// let mut plain = bytes::BytesMut::new();
/// assert_eq!(opener.open(&mut plain).unwrap(), 6);
/// assert_eq!(&plain[..], b"record");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Opener {
    keys: RecvKeys,
    /// The next message's nonce: 2k for record k's header, 2k + 1 for
    /// its body.
    nonce: u64,
    /// The body's plaintext length, once the record's header opened.
    body: Option<usize>,
    cipher: BytesMut,
    /// The bytes the last read into the plaintext buffer brought.
    #[cfg_attr(any(not(target_os = "linux"), feature = "portable"), allow(dead_code))]
    last_read: usize,
    peer: String,
    failed: Option<(io::ErrorKind, String)>,
}

impl Opener {
    fn fail(&mut self, kind: io::ErrorKind, msg: String) -> io::Error {
        self.failed = Some((kind, msg.clone()));
        io::Error::new(kind, msg)
    }

    /// The error this session already failed with, if any.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use remex::core::transport::secure::{self, Use};
    /// # let psk = secure::psk(b"s3cret");
    /// # let (a, b) = tokio::io::duplex(1 << 20);
    /// # let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # let (client, server) = tokio::join!(
    /// #     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
    /// #     secure::respond(&mut br, &mut bw, &psk, Use::Socket)
    /// # );
    /// # let (mut reader, _) = secure::split(server.unwrap(), br, bw, "client");
    /// # let (_, mut writer) = secure::split(client.unwrap(), ar, aw, "listener");
    /// let (_inner, mut opener, _plain) = reader.into_parts();
    /// opener.spare().extend_from_slice(&[0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    /// assert!(opener.open(&mut bytes::BytesMut::new()).is_err());
    /// assert!(opener.failure().unwrap().to_string().contains("tampered"));
    /// # Ok(()) }
    /// ```
    pub fn failure(&self) -> Option<io::Error> {
        self.failed
            .as_ref()
            .map(|(kind, msg)| io::Error::new(*kind, msg.clone()))
    }

    /// Room for the next read from the wire: the rest of the record under
    /// way, and once the peer proved itself (a record opened), several.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use remex::core::transport::secure::{self, Use};
    /// # let psk = secure::psk(b"s3cret");
    /// # let (a, b) = tokio::io::duplex(1 << 20);
    /// # let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # let (client, server) = tokio::join!(
    /// #     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
    /// #     secure::respond(&mut br, &mut bw, &psk, Use::Socket)
    /// # );
    /// # let (mut reader, _) = secure::split(server.unwrap(), br, bw, "client");
    /// # let (_, mut writer) = secure::split(client.unwrap(), ar, aw, "listener");
    /// let (_inner, mut opener, _plain) = reader.into_parts();
    /// let room: &mut bytes::BytesMut = opener.spare();
    /// room.extend_from_slice(&[0]); // half a length prefix
    /// assert_eq!(opener.open(&mut bytes::BytesMut::new()).unwrap(), 0);
    /// # Ok(()) }
    /// ```
    pub fn spare(&mut self) -> &mut BytesMut {
        let need = match self.body {
            None => 2 + HEADER,
            Some(p) => p + TAG,
        }
        .saturating_sub(self.cipher.len());
        let want = if self.nonce == 0 {
            need
        } else {
            need.max(2 + MAX_RECORD)
        };
        if self.cipher.capacity() - self.cipher.len() < want {
            self.cipher.reserve(if self.nonce == 0 {
                want
            } else {
                4 * MAX_RECORD
            });
        }
        &mut self.cipher
    }

    /// The wire ended: an error if it ended inside a record.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use remex::core::transport::secure::{self, Use};
    /// # let psk = secure::psk(b"s3cret");
    /// # let (a, b) = tokio::io::duplex(1 << 20);
    /// # let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # let (client, server) = tokio::join!(
    /// #     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
    /// #     secure::respond(&mut br, &mut bw, &psk, Use::Socket)
    /// # );
    /// # let (mut reader, _) = secure::split(server.unwrap(), br, bw, "client");
    /// # let (_, mut writer) = secure::split(client.unwrap(), ar, aw, "listener");
    /// let (_inner, mut opener, _plain) = reader.into_parts();
    /// assert!(opener.ended().is_ok(), "a clean end between records");
    /// opener.spare().extend_from_slice(&[0, 40]); // a record cut short
    /// assert!(opener.ended().is_err());
    /// # Ok(()) }
    /// ```
    pub fn ended(&mut self) -> io::Result<()> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        if self.cipher.is_empty() && self.body.is_none() {
            return Ok(());
        }
        let msg = format!(
            "the secure session with {} was cut in the middle of record {} ({} bytes of it arrived)",
            self.peer,
            self.nonce / 2,
            self.cipher.len() + self.body.map_or(0, |_| 2 + HEADER)
        );
        Err(self.fail(io::ErrorKind::UnexpectedEof, msg))
    }

    /// Opens the whole records received so far, appending their plaintext
    /// to `plain`; returns how many plaintext bytes it appended. What came
    /// before a bad record is appended before the error shows (on this
    /// call if nothing came before it, else on the next).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use remex::core::transport::secure::{self, Use};
    /// # let psk = secure::psk(b"s3cret");
    /// # let (a, b) = tokio::io::duplex(1 << 20);
    /// # let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # let (client, server) = tokio::join!(
    /// #     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
    /// #     secure::respond(&mut br, &mut bw, &psk, Use::Socket)
    /// # );
    /// # let (mut reader, _) = secure::split(server.unwrap(), br, bw, "client");
    /// # let (_, mut writer) = secure::split(client.unwrap(), ar, aw, "listener");
    /// let (_inner, mut opener, _plain) = reader.into_parts();
    /// let (_inner, mut sealer) = writer.into_parts().unwrap();
    /// let mut wire = bytes::BytesMut::new();
    /// sealer.seal(b"one", &mut wire).unwrap();
    /// sealer.seal(b"two", &mut wire).unwrap();
    /// opener.spare().extend_from_slice(&wire);
    /// let mut plain = bytes::BytesMut::new();
    /// assert_eq!(opener.open(&mut plain).unwrap(), 6);
    /// assert_eq!(&plain[..], b"onetwo");
    /// # Ok(()) }
    /// ```
    pub fn open(&mut self, plain: &mut BytesMut) -> io::Result<usize> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let mut produced = 0;
        loop {
            let bad = match self.body {
                None => {
                    if self.cipher.len() < 2 + HEADER {
                        break;
                    }
                    let mut bytes = [0u8; 2 + HEADER];
                    bytes.copy_from_slice(&self.cipher[..2 + HEADER]);
                    let r = self.open_header(&bytes);
                    if r.is_ok() {
                        self.cipher.advance(2 + HEADER);
                    }
                    r.err()
                }
                Some(p) => {
                    if self.cipher.len() < p + TAG {
                        break;
                    }
                    let start = plain.len();
                    if plain.capacity() - start < p + TAG {
                        // Room for several records at once (growing record
                        // by record would move a partly received item each
                        // time), but only once the peer proved itself:
                        // before its first record opens, one record's worth.
                        let room = if self.nonce == 1 {
                            p + TAG
                        } else {
                            (p + TAG).max(PLAIN_ROOM)
                        };
                        plain.reserve(room);
                    }
                    // One copy, then the record opens in place.
                    plain.extend_from_slice(&self.cipher[..p + TAG]);
                    let r = self.keys.open(self.nonce, &mut plain[start..]);
                    plain.truncate(start + p);
                    if r.is_err() {
                        plain.truncate(start);
                        Some(INTEGRITY)
                    } else {
                        produced += p;
                        self.nonce += 1;
                        self.body = None;
                        self.cipher.advance(p + TAG);
                        None
                    }
                }
            };
            if let Some(what) = bad {
                let e = self.tampered(what);
                return if produced > 0 { Ok(produced) } else { Err(e) };
            }
        }
        Ok(produced)
    }

    /// Opens a record's header (its clear length and the sealed 18 bytes
    /// after it, opened as soon as they are here: never a wait on a
    /// length that came in clear); the body's length is then expected.
    fn open_header(&mut self, bytes: &[u8; 2 + HEADER]) -> Result<(), &'static str> {
        let clear = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
        let mut header = [0u8; HEADER];
        header.copy_from_slice(&bytes[2..]);
        if self.keys.open(self.nonce, &mut header).is_err() {
            return Err(INTEGRITY);
        }
        let p = u16::from_be_bytes([header[0], header[1]]) as usize;
        if p > MAX_PLAINTEXT || clear != p + OVERHEAD {
            return Err("has a length that was changed on the way");
        }
        self.nonce += 1;
        self.body = Some(p);
        Ok(())
    }

    /// Fails the session: record `nonce / 2` was tampered with.
    fn tampered(&mut self, what: &str) -> io::Error {
        let msg = format!(
            "the secure session with {} {TAMPERED}: record {} {what}",
            self.peer,
            self.nonce / 2
        );
        self.fail(io::ErrorKind::InvalidData, msg)
    }

    /// One read from the wire straight into the spare room of `plain`,
    /// whose whole records then open where they lie: each record's
    /// plaintext is written over its own header and the tags before it
    /// (ring's overlapping `open_within`), so a record read whole is
    /// never copied. `read` fills the front of the slice it is given and returns
    /// the filled part. A read takes the rest of the record under way
    /// and three more of the largest, so that a stream of full records
    /// is read a record boundary at a time. The start of a record that
    /// has not all arrived waits in the opener and goes in front of the
    /// next read's bytes; while reads bring less than twice what waits,
    /// the opener instead reads the rest of that record alone and opens
    /// it with one copy (what waits is never copied once per small read).
    /// Before the peer proved itself (its first record opened), a read
    /// takes at most the rest of that record. Returns the bytes read (0:
    /// the wire ended; see [`Opener::ended`]) and the plaintext appended;
    /// errors as [`Opener::open`], and `read`'s own (nothing changed).
    #[cfg_attr(any(not(target_os = "linux"), feature = "portable"), allow(dead_code))]
    pub(crate) fn read_open(
        &mut self,
        plain: &mut BytesMut,
        read: impl FnOnce(&mut [MaybeUninit<u8>]) -> io::Result<&mut [u8]>,
    ) -> io::Result<(usize, usize)> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let held = self.cipher.len();
        let need = match self.body {
            None => 2 + HEADER,
            Some(p) => p + TAG,
        }
        .saturating_sub(held);
        if held > 0 && held > self.last_read / 2 {
            // Reads smaller than what waits: the rest of this record alone,
            // into the opener, then opened with one copy (copying what
            // waits in front of each small read would cost more).
            if self.cipher.capacity() - held < need {
                self.cipher.reserve(need);
            }
            let n = spare::read_into(&mut self.cipher, &[], need, read)?;
            if n == 0 {
                return Ok((0, 0));
            }
            return Ok((n, self.open(plain)?));
        }
        let proven = self.nonce >= 2;
        let limit = if proven { need + READ_AHEAD } else { need };
        let base = plain.len();
        if plain.capacity() - base < held + limit {
            plain.reserve(if proven {
                (held + limit).max(PLAIN_ROOM)
            } else {
                held + limit
            });
        }
        // What waits goes in front of the bytes read (copied only once
        // the read brought some).
        let n = spare::read_into(plain, &self.cipher, limit, read)?;
        if n == 0 {
            return Ok((0, 0));
        }
        self.cipher.clear();
        self.last_read = n;
        let end = plain.len();
        let (mut src, mut dst, mut produced) = (base, base, 0);
        let bad = loop {
            match self.body {
                None => {
                    if end - src < 2 + HEADER {
                        break None;
                    }
                    let mut bytes = [0u8; 2 + HEADER];
                    bytes.copy_from_slice(&plain[src..src + 2 + HEADER]);
                    if let Err(what) = self.open_header(&bytes) {
                        break Some(what);
                    }
                    src += 2 + HEADER;
                }
                Some(p) => {
                    if end - src < p + TAG {
                        break None;
                    }
                    let r = self.keys.open_within(
                        self.nonce,
                        &mut plain[dst..src + p + TAG],
                        src - dst,
                    );
                    if r.is_err() {
                        break Some(INTEGRITY);
                    }
                    produced += p;
                    dst += p;
                    src += p + TAG;
                    self.nonce += 1;
                    self.body = None;
                }
            }
        };
        if let Some(what) = bad {
            plain.truncate(dst);
            let e = self.tampered(what);
            return if produced > 0 {
                Ok((n, produced))
            } else {
                Err(e)
            };
        }
        self.cipher.extend_from_slice(&plain[src..]);
        plain.truncate(dst);
        Ok((n, produced))
    }
}

/// The sending side of a session's record layer, without I/O: plaintext
/// in, records out. Inside remex, nonces are reserved in order so that
/// records may be sealed outside the lock that orders them, as long as
/// they reach the wire in nonce order; that nonce-taking part is not
/// public (a nonce used twice would break the cipher).
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// # use remex::core::transport::secure::{self, Use};
/// # let psk = secure::psk(b"s3cret");
/// # let (a, b) = tokio::io::duplex(1 << 20);
/// # let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
/// # let (client, server) = tokio::join!(
/// #     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
/// #     secure::respond(&mut br, &mut bw, &psk, Use::Socket)
/// # );
/// # let (mut reader, _) = secure::split(server.unwrap(), br, bw, "client");
/// # let (_, mut writer) = secure::split(client.unwrap(), ar, aw, "listener");
/// let (_inner, mut sealer) = writer.into_parts().unwrap();
/// let mut wire = bytes::BytesMut::new();
/// sealer.seal(b"data", &mut wire).unwrap();
/// assert_eq!(wire.len(), remex::core::transport::secure::Sealer::sealed_len(4));
/// # drop(reader);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Sealer {
    keys: Arc<SendKeys>,
    next: u64,
}

impl Sealer {
    /// Reserves the nonces of the records `len` plaintext bytes need;
    /// returns the first.
    pub(crate) fn reserve(&mut self, len: usize) -> u64 {
        let first = self.next;
        self.next += Sealer::nonces_for(len);
        first
    }

    /// The records `len` plaintext bytes make.
    ///
    /// ```
    /// use remex::core::transport::secure::{Sealer, MAX_PLAINTEXT};
    /// assert_eq!(Sealer::records_for(0), 0);
    /// assert_eq!(Sealer::records_for(MAX_PLAINTEXT), 1);
    /// assert_eq!(Sealer::records_for(MAX_PLAINTEXT + 1), 2);
    /// ```
    pub fn records_for(len: usize) -> u64 {
        len.div_ceil(MAX_PLAINTEXT) as u64
    }

    /// The nonces `len` plaintext bytes take: two per record (its header
    /// and its body).
    pub(crate) fn nonces_for(len: usize) -> u64 {
        2 * Sealer::records_for(len)
    }

    /// The bytes `len` plaintext bytes take as records.
    ///
    /// ```
    /// use remex::core::transport::secure::Sealer;
    /// // A clear length, the sealed header (2 + 16) and the body's tag.
    /// assert_eq!(Sealer::sealed_len(10), 2 + (2 + 16) + 10 + 16);
    /// ```
    pub fn sealed_len(len: usize) -> usize {
        len + len.div_ceil(MAX_PLAINTEXT) * (2 + OVERHEAD)
    }

    /// Reserves the nonces of `segments`, each sealed as records of its
    /// own; returns the first.
    pub(crate) fn reserve_segments(&mut self, segments: &[bytes::Bytes]) -> u64 {
        let first = self.next;
        self.next += segments
            .iter()
            .map(|s| Sealer::nonces_for(s.len()))
            .sum::<u64>();
        first
    }

    /// A handle that seals with reserved nonces, from any thread.
    pub(crate) fn keys(&self) -> SealKeys {
        SealKeys(self.keys.clone())
    }

    /// Seals `plain` with the next nonces, appending the records to `out`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use remex::core::transport::secure::{self, Use};
    /// # let psk = secure::psk(b"s3cret");
    /// # let (a, b) = tokio::io::duplex(1 << 20);
    /// # let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # let (client, server) = tokio::join!(
    /// #     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
    /// #     secure::respond(&mut br, &mut bw, &psk, Use::Socket)
    /// # );
    /// # let (mut reader, _) = secure::split(server.unwrap(), br, bw, "client");
    /// # let (_, mut writer) = secure::split(client.unwrap(), ar, aw, "listener");
    /// let (_inner, mut sealer) = writer.into_parts().unwrap();
    /// let mut wire = bytes::BytesMut::new();
    /// sealer.seal(b"secret", &mut wire).unwrap();
    /// assert!(!wire.windows(6).any(|w| w == b"secret"), "encrypted");
    /// # drop(reader);
    /// # Ok(()) }
    /// ```
    pub fn seal(&mut self, plain: &[u8], out: &mut BytesMut) -> io::Result<()> {
        let first = self.reserve(plain.len());
        self.keys().seal(first, plain, out)
    }
}

/// Seals records with nonces reserved from a [`Sealer`], from any thread.
#[derive(Debug, Clone)]
pub(crate) struct SealKeys(Arc<SendKeys>);

impl SealKeys {
    /// Seals `plain` as records with nonces from `first` on, appending
    /// them to `out`.
    pub(crate) fn seal(&self, first: u64, plain: &[u8], out: &mut BytesMut) -> io::Result<()> {
        let start = out.len();
        out.resize(start + Sealer::sealed_len(plain.len()), 0);
        self.seal_into(first, plain, &mut out[start..])?;
        Ok(())
    }

    /// Seals `plain` as records with nonces from `first` on into the
    /// front of `out` (at least [`Sealer::sealed_len`] long, its old
    /// contents overwritten: a buffer kept between calls needs no
    /// clearing); returns the bytes written.
    pub(crate) fn seal_into(&self, first: u64, plain: &[u8], out: &mut [u8]) -> io::Result<usize> {
        let mut at = 0;
        for (k, chunk) in plain.chunks(MAX_PLAINTEXT).enumerate() {
            let nonce = first + 2 * k as u64;
            let p = chunk.len();
            out[at..at + 2].copy_from_slice(&((p + OVERHEAD) as u16).to_be_bytes());
            let (header, tag) = out[at + 2..at + 2 + HEADER].split_at_mut(2);
            header.copy_from_slice(&(p as u16).to_be_bytes());
            self.0.seal(nonce, header, tag)?;
            let body = at + 2 + HEADER;
            let (body, tag) = out[body..body + p + TAG].split_at_mut(p);
            body.copy_from_slice(chunk);
            self.0.seal(nonce + 1, body, tag)?;
            at += 2 + OVERHEAD + p;
        }
        Ok(at)
    }
}

/// The reading half of a session: an [`AsyncRead`] of the peer's
/// plaintext (see [`Opener`] for its errors).
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// # use remex::core::transport::secure::{self, Use};
/// # let psk = secure::psk(b"s3cret");
/// # let (a, b) = tokio::io::duplex(1 << 20);
/// # let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
/// # let (client, server) = tokio::join!(
/// #     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
/// #     secure::respond(&mut br, &mut bw, &psk, Use::Socket)
/// # );
/// # let (mut reader, _) = secure::split(server.unwrap(), br, bw, "client");
/// # let (_, mut writer) = secure::split(client.unwrap(), ar, aw, "listener");
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// let _: &remex::core::transport::secure::SecureReader<_> = &reader;
/// writer.write_all(b"ok").await.unwrap();
/// writer.flush().await.unwrap();
/// let mut got = [0u8; 2];
/// reader.read_exact(&mut got).await.unwrap();
/// assert_eq!(&got, b"ok");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SecureReader<R> {
    inner: R,
    opener: Opener,
    plain: BytesMut,
}

impl<R> SecureReader<R> {
    /// Reads the session from `inner` with `opener` (taken from another
    /// reader of it).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use remex::core::transport::secure::{self, Use};
    /// # let psk = secure::psk(b"s3cret");
    /// # let (a, b) = tokio::io::duplex(1 << 20);
    /// # let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # let (client, server) = tokio::join!(
    /// #     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
    /// #     secure::respond(&mut br, &mut bw, &psk, Use::Socket)
    /// # );
    /// # let (mut reader, _) = secure::split(server.unwrap(), br, bw, "client");
    /// # let (_, mut writer) = secure::split(client.unwrap(), ar, aw, "listener");
    /// let (inner, opener, _plain) = reader.into_parts();
    /// let again = remex::core::transport::secure::SecureReader::from_parts(inner, opener);
    /// # drop((again, writer));
    /// # Ok(()) }
    /// ```
    pub fn from_parts(inner: R, opener: Opener) -> SecureReader<R> {
        SecureReader {
            inner,
            opener,
            plain: BytesMut::new(),
        }
    }

    /// The stream, the record layer, and plaintext opened but not yet
    /// read: to go on reading the session another way.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use remex::core::transport::secure::{self, Use};
    /// # let psk = secure::psk(b"s3cret");
    /// # let (a, b) = tokio::io::duplex(1 << 20);
    /// # let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # let (client, server) = tokio::join!(
    /// #     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
    /// #     secure::respond(&mut br, &mut bw, &psk, Use::Socket)
    /// # );
    /// # let (mut reader, _) = secure::split(server.unwrap(), br, bw, "client");
    /// # let (_, mut writer) = secure::split(client.unwrap(), ar, aw, "listener");
    /// let (_inner, opener, plain) = reader.into_parts();
    /// assert!(plain.is_empty(), "nothing read ahead");
    /// assert!(opener.failure().is_none());
    /// # drop(writer);
    /// # Ok(()) }
    /// ```
    pub fn into_parts(self) -> (R, Opener, BytesMut) {
        (self.inner, self.opener, self.plain)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for SecureReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.plain.is_empty() {
                let n = this.plain.len().min(buf.remaining());
                buf.put_slice(&this.plain[..n]);
                this.plain.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.opener.open(&mut this.plain)? > 0 {
                continue;
            }
            let n = ready!(poll_read_buf(
                Pin::new(&mut this.inner),
                cx,
                this.opener.spare()
            ))?;
            if n == 0 {
                return Poll::Ready(this.opener.ended());
            }
        }
    }
}

/// The writing half of a session: an [`AsyncWrite`] whose bytes leave as
/// encrypted records. Bytes a `write` accepted leave at the next `write`,
/// `flush` or `shutdown`.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// # use remex::core::transport::secure::{self, Use};
/// # let psk = secure::psk(b"s3cret");
/// # let (a, b) = tokio::io::duplex(1 << 20);
/// # let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
/// # let (client, server) = tokio::join!(
/// #     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
/// #     secure::respond(&mut br, &mut bw, &psk, Use::Socket)
/// # );
/// # let (mut reader, _) = secure::split(server.unwrap(), br, bw, "client");
/// # let (_, mut writer) = secure::split(client.unwrap(), ar, aw, "listener");
/// use tokio::io::AsyncWriteExt;
/// let _: &remex::core::transport::secure::SecureWriter<_> = &writer;
/// writer.write_all(b"sealed on the way out").await.unwrap();
/// writer.flush().await.unwrap();
/// # drop(reader);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SecureWriter<W> {
    inner: W,
    sealer: Sealer,
    out: BytesMut,
}

impl<W> SecureWriter<W> {
    /// The stream and the record layer, once everything written was
    /// flushed (an error otherwise): to go on writing the session another
    /// way.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// # use remex::core::transport::secure::{self, Use};
    /// # let psk = secure::psk(b"s3cret");
    /// # let (a, b) = tokio::io::duplex(1 << 20);
    /// # let ((mut ar, mut aw), (mut br, mut bw)) = (tokio::io::split(a), tokio::io::split(b));
    /// # let (client, server) = tokio::join!(
    /// #     secure::initiate(&mut ar, &mut aw, &psk, Use::Socket),
    /// #     secure::respond(&mut br, &mut bw, &psk, Use::Socket)
    /// # );
    /// # let (mut reader, _) = secure::split(server.unwrap(), br, bw, "client");
    /// # let (_, mut writer) = secure::split(client.unwrap(), ar, aw, "listener");
    /// let (_inner, mut sealer) = writer.into_parts().unwrap(); // nothing pending
    /// let mut wire = bytes::BytesMut::new();
    /// sealer.seal(b"more", &mut wire).unwrap(); // the session goes on
    /// assert_eq!(wire.len(), secure::Sealer::sealed_len(4));
    /// # drop(reader);
    /// # Ok(()) }
    /// ```
    pub fn into_parts(self) -> io::Result<(W, Sealer)> {
        if !self.out.is_empty() {
            return Err(io::Error::other("the session's writer was not flushed"));
        }
        Ok((self.inner, self.sealer))
    }
}

impl<W: AsyncWrite + Unpin> SecureWriter<W> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for SecureWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let take = buf.len().min(WRITE_BATCH);
        this.sealer.seal(&buf[..take], &mut this.out)?;
        // The records are ours now; they leave here or at the next call.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair(
        client_secret: &[u8],
        worker_secret: &[u8],
    ) -> (
        Result<Session, HandshakeError>,
        Result<Session, HandshakeError>,
        tokio::io::DuplexStream,
        tokio::io::DuplexStream,
    ) {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let (cp, wp) = (psk(client_secret), psk(worker_secret));
        let (c, w) = tokio::join!(
            async {
                let (mut r, mut w) = tokio::io::split(&mut a);
                initiate(&mut r, &mut w, &cp, Use::Socket).await
            },
            async {
                let (mut r, mut w) = tokio::io::split(&mut b);
                respond(&mut r, &mut w, &wp, Use::Socket).await
            }
        );
        (c, w, a, b)
    }

    #[tokio::test]
    async fn both_sides_with_the_secret_exchange_records_of_any_size() {
        let (c, w, a, b) = pair(b"s3cret", b"s3cret").await;
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let (_, mut cw) = split(c.unwrap(), ar, aw, "worker");
        let (mut wr, _) = split(w.unwrap(), br, bw, "client");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            cw.write_all(&sent[..1]).await.unwrap();
            cw.write_all(&sent[1..]).await.unwrap();
            cw.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        wr.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn a_wrong_secret_fails_on_both_sides() {
        let (c, w, _, _) = pair(b"one", b"two").await;
        assert!(matches!(c, Err(HandshakeError::Refused)), "{c:?}");
        assert!(matches!(w, Err(HandshakeError::Unproven)), "{w:?}");
    }

    #[tokio::test]
    async fn a_flipped_bit_fails_the_record_and_every_read_after_it() {
        let (c, w, a, b) = pair(b"k", b"k").await;
        let (ar, aw) = tokio::io::split(a);
        let (_, mut cw) = split(c.unwrap(), ar, aw, "worker");
        cw.write_all(b"first").await.unwrap();
        cw.write_all(b"second").await.unwrap();
        cw.flush().await.unwrap();
        // Read the raw records, flip a bit in the second, feed them back.
        let mut raw = vec![0u8; 2 * (2 + OVERHEAD) + 11];
        let mut b = b;
        b.read_exact(&mut raw).await.unwrap();
        // A byte of the second record's body.
        let at = (2 + OVERHEAD + 5) + 2 + HEADER + 1;
        raw[at] ^= 1;
        let (mut r, _) = split(w.unwrap(), &raw[..], tokio::io::sink(), "client");
        let mut first = [0u8; 5];
        r.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"first");
        let e = r.read(&mut [0u8; 16]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(
            e.to_string()
                .contains("record 1 failed its integrity check"),
            "{e}"
        );
        assert!(r.read(&mut [0u8; 16]).await.is_err());
    }

    #[tokio::test]
    async fn segments_sealed_out_of_the_lock_open_in_order() {
        let (c, w, a, b) = pair(b"k", b"k").await;
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let (_, cw) = split(c.unwrap(), ar, aw, "worker");
        let (wr, _) = split(w.unwrap(), br, bw, "client");
        let (_, mut sealer) = cw.into_parts().unwrap();
        let (_, mut opener, _) = wr.into_parts();
        let segments: Vec<bytes::Bytes> = [9usize, 200_000, 0, 70_000, 1]
            .iter()
            .enumerate()
            .map(|(k, n)| {
                (0..*n)
                    .map(|i| (i * 7 + k) as u8)
                    .collect::<Vec<u8>>()
                    .into()
            })
            .collect();
        let first = sealer.reserve_segments(&segments);
        let keys = sealer.keys();
        // A buffer with old contents: sealing overwrites it.
        let mut out = vec![0xeeu8; 400_000];
        let mut used = 0;
        let mut nonce = first;
        for seg in &segments {
            used += keys.seal_into(nonce, seg, &mut out[used..]).unwrap();
            nonce += Sealer::nonces_for(seg.len());
        }
        assert_eq!(
            used,
            segments
                .iter()
                .map(|s| Sealer::sealed_len(s.len()))
                .sum::<usize>()
        );
        // The next records continue the sequence.
        let mut tail = BytesMut::new();
        sealer.seal(b"after", &mut tail).unwrap();
        opener.spare().extend_from_slice(&out[..used]);
        opener.spare().extend_from_slice(&tail);
        let mut plain = BytesMut::new();
        while opener.open(&mut plain).unwrap() > 0 {}
        let want: Vec<u8> = segments
            .iter()
            .flat_map(|s| s.to_vec())
            .chain(*b"after")
            .collect();
        assert_eq!(&plain[..], &want[..]);
        assert!(opener.ended().is_ok());
    }

    #[test]
    fn a_length_changed_on_the_way_fails_at_once_without_waiting_for_more() {
        let (c, w) = states();
        let (_, mut sealer) = halves(c);
        let mut wire = BytesMut::new();
        sealer.seal(b"a record", &mut wire).unwrap();
        for (at, flip) in [(0usize, 0x01u8), (1, 0x80), (0, 0x80)] {
            let mut bad = wire.clone();
            bad[at] ^= flip;
            let mut opener = opener_of(&w);
            // Only the clear length and the sealed header: a reader that
            // trusted the clear length would wait here for bytes that
            // never come.
            opener.spare().extend_from_slice(&bad[..2 + HEADER]);
            let e = opener.open(&mut BytesMut::new()).unwrap_err();
            assert!(e.to_string().contains("length that was changed"), "{e}");
        }
    }

    #[tokio::test]
    async fn an_unproven_peer_makes_the_opener_hold_one_record_at_most() {
        // A replayed or forged first record of the largest size: the
        // opener must not reserve its 1 MiB working room before the tag
        // checks (it held max(len, 1 MiB) per pending connection before).
        let (c, w, a, b) = pair(b"k", b"k").await;
        drop((c, a));
        let (br, bw) = tokio::io::split(b);
        let (wr, _) = split(w.unwrap(), br, bw, "client");
        let (_, mut opener, _) = wr.into_parts();
        let mut forged = vec![0xffu8, 0xff];
        forged.extend(std::iter::repeat_n(0x5au8, MAX_RECORD));
        opener.spare().extend_from_slice(&forged);
        let mut plain = BytesMut::new();
        assert!(opener.open(&mut plain).is_err(), "a forged record fails");
        assert!(
            plain.capacity() <= MAX_PLAINTEXT,
            "{} bytes reserved for an unproven peer",
            plain.capacity()
        );
        assert!(opener.cipher.capacity() <= 2 + MAX_RECORD + 64);
    }

    /// A session's two ends, handshaken in memory.
    fn states() -> (Session, Session) {
        let p = psk(b"prop");
        let prologue = prologue(Use::Socket);
        let mut i = builder(&p, &prologue).build_initiator().unwrap();
        let mut r = builder(&p, &prologue).build_responder().unwrap();
        let mut m = [0u8; 64];
        let n = i.write_message(&[], &mut m).unwrap();
        r.read_message(&m[..n], &mut []).unwrap();
        let n = r.write_message(&[], &mut m).unwrap();
        i.read_message(&m[..n], &mut []).unwrap();
        (finish(i), finish(r))
    }

    /// A session's opener and sealer, without I/O.
    fn halves(s: Session) -> (Opener, Sealer) {
        let (r, w) = split(s, tokio::io::empty(), tokio::io::sink(), "peer");
        let (_, opener, _) = r.into_parts();
        let (_, sealer) = w.into_parts().unwrap();
        (opener, sealer)
    }

    /// A fresh opener of `s`'s receiving direction.
    fn opener_of(s: &Session) -> Opener {
        Opener {
            keys: RecvKeys::new(&s.recv, s.epoch_bits),
            nonce: 0,
            body: None,
            cipher: BytesMut::new(),
            last_read: 0,
            peer: "peer".into(),
            failed: None,
        }
    }

    #[tokio::test]
    async fn a_session_crosses_several_rekeys_both_ways() {
        let (c, w, a, b) = pair(b"k", b"k").await;
        // A new key every 8 nonces (4 records): some 75 rekeys each way.
        let (c, w) = (c.unwrap().rekeying_every(3), w.unwrap().rekeying_every(3));
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let (mut cr, mut cw) = split(c, ar, aw, "worker");
        let (mut wr, mut ww) = split(w, br, bw, "client");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 249) as u8).collect();
        let (there, back) = (data.clone(), data.clone());
        let client = tokio::spawn(async move {
            for chunk in there.chunks(1000) {
                cw.write_all(chunk).await.unwrap();
            }
            cw.shutdown().await.unwrap();
            let mut got = Vec::new();
            cr.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut got = Vec::new();
        wr.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, data, "client to worker, across the rekeys");
        for chunk in back.chunks(999) {
            ww.write_all(chunk).await.unwrap();
        }
        ww.shutdown().await.unwrap();
        assert_eq!(client.await.unwrap(), data, "worker to client");
    }

    #[test]
    fn records_after_a_rekey_do_not_open_under_the_old_key() {
        let (c, w) = states();
        let (_, mut sealer) = halves(c.rekeying_every(3));
        let mut wire = BytesMut::new();
        for k in 0..6u8 {
            sealer.seal(&[k; 10], &mut wire).unwrap();
        }
        // The receiver that rekeys opens all six; one that never rekeys
        // opens the first four (epoch 0) and fails the fifth.
        let mut rekeying = opener_of(&w);
        rekeying.keys = RecvKeys::new(&w.recv, 3);
        rekeying.spare().extend_from_slice(&wire);
        let mut plain = BytesMut::new();
        assert_eq!(rekeying.open(&mut plain).unwrap(), 60);
        let mut stale = opener_of(&w);
        stale.spare().extend_from_slice(&wire);
        let mut plain = BytesMut::new();
        assert_eq!(stale.open(&mut plain).unwrap(), 40);
        let e = stale.open(&mut plain).unwrap_err();
        assert!(
            e.to_string()
                .contains("record 4 failed its integrity check"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_session_made_for_one_use_never_completes_as_the_other() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let p = psk(b"the same secret");
        let (c, w) = tokio::join!(
            async {
                let (mut r, mut w) = tokio::io::split(&mut a);
                initiate(&mut r, &mut w, &p, Use::DialBack).await
            },
            async {
                let (mut r, mut w) = tokio::io::split(&mut b);
                respond(&mut r, &mut w, &p, Use::Socket).await
            }
        );
        assert!(matches!(c, Err(HandshakeError::Refused)), "{c:?}");
        assert!(matches!(w, Err(HandshakeError::Unproven)), "{w:?}");
    }

    #[tokio::test]
    async fn a_listener_of_another_session_version_is_named() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        b.write_all(b"REMEX-NOISE1\n").await.unwrap();
        let (mut r, mut w) = tokio::io::split(&mut a);
        let e = initiate(&mut r, &mut w, &psk(b"k"), Use::Socket)
            .await
            .unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("another version of remex's secure session (REMEX-NOISE1"),
            "{e}"
        );
    }

    /// `to` filled with `from` (as a read fills its room).
    fn fill<'a>(to: &'a mut [MaybeUninit<u8>], from: &[u8]) -> &'a mut [u8] {
        for (t, &b) in to.iter_mut().zip(from) {
            t.write(b);
        }
        let n = from.len().min(to.len());
        // SAFETY: the first `n` bytes of `to` were just written.
        unsafe { &mut *(std::ptr::from_mut(&mut to[..n]) as *mut [u8]) }
    }

    /// Feeds `wire` to `opener` through `read_open`, each read taking at
    /// most the next of `sizes` (cycled); the plaintext, or the error.
    fn read_opened(
        opener: &mut Opener,
        plain: &mut BytesMut,
        wire: &[u8],
        sizes: &[usize],
    ) -> io::Result<()> {
        let mut at = 0;
        for k in 0.. {
            let size = sizes[k % sizes.len()];
            let (read, _) = opener.read_open(plain, |room| {
                let n = size.min(room.len()).min(wire.len() - at);
                let filled = fill(&mut room[..n], &wire[at..at + n]);
                at += n;
                Ok(filled)
            })?;
            if read == 0 {
                return opener.ended();
            }
        }
        unreachable!()
    }

    #[test]
    fn records_read_in_any_pieces_open_where_they_lie_across_rekeys() {
        let (c, w) = states();
        let (_, mut sealer) = halves(c.rekeying_every(3));
        let mut wire = BytesMut::new();
        let mut sent = Vec::new();
        for k in 0..40usize {
            // Sizes around the record's limit and the read's.
            let len = [
                0,
                1,
                17,
                4000,
                MAX_PLAINTEXT,
                MAX_PLAINTEXT + 1,
                3 * MAX_PLAINTEXT + 5,
            ][k % 7];
            let item: Vec<u8> = (0..len).map(|i| (i * 31 + k) as u8).collect();
            sealer.seal(&item, &mut wire).unwrap();
            sent.extend_from_slice(&item);
        }
        for sizes in [
            &[1usize][..],
            &[7, 19, 2 + HEADER],
            &[MAX_RECORD - 1, 3],
            &[usize::MAX],
        ] {
            let mut opener = opener_of(&w);
            opener.keys = RecvKeys::new(&w.recv, 3);
            // Plaintext already in the buffer (a partly decoded message)
            // stays in front.
            let mut plain = BytesMut::from(&b"before"[..]);
            let big = sizes == [usize::MAX];
            let wire = &wire[..];
            read_opened(&mut opener, &mut plain, wire, sizes).unwrap();
            assert_eq!(&plain[..6], b"before");
            assert!(plain[6..] == sent[..], "pieces of {sizes:?}");
            if big {
                assert!(
                    opener.cipher.capacity() <= 2 * MAX_RECORD,
                    "only a record's start waits"
                );
            }
        }
    }

    #[test]
    fn a_flipped_bit_read_in_place_delivers_nothing_changed() {
        let (c, w) = states();
        let (_, mut sealer) = halves(c);
        let mut wire = BytesMut::new();
        let items: Vec<Vec<u8>> = (0..4u8).map(|k| vec![k; 3000]).collect();
        for item in &items {
            sealer.seal(item, &mut wire).unwrap();
        }
        let one = Sealer::sealed_len(3000);
        for at in
            (0..wire.len())
                .step_by(97)
                .chain([0, 1, 2, 19, 20, one, one + 21, wire.len() - 1])
        {
            let mut bad = wire.to_vec();
            bad[at] ^= 0x10;
            let mut opener = opener_of(&w);
            let mut plain = BytesMut::new();
            let r = read_opened(&mut opener, &mut plain, &bad, &[1000, 5000]);
            assert!(r.is_err(), "the flip at {at} went unnoticed");
            // What came out is whole records before the flipped one.
            let whole = at / one;
            assert_eq!(plain.len(), whole * 3000, "flip at {at}");
            assert!(plain[..] == items[..whole].concat()[..]);
            assert!(
                opener.read_open(&mut plain, |_| unreachable!()).is_err(),
                "it stays failed"
            );
        }
    }

    #[test]
    fn an_unproven_peer_read_in_place_holds_one_record_at_most() {
        let (_, w) = states();
        let mut opener = opener_of(&w);
        let mut forged = vec![0xffu8, 0xff];
        forged.extend(std::iter::repeat_n(0x5au8, 4 * MAX_RECORD));
        let mut plain = BytesMut::new();
        let mut largest = 0;
        let mut at = 0;
        let r = loop {
            let r = opener.read_open(&mut plain, |room| {
                largest = largest.max(room.len());
                let n = room.len().min(forged.len() - at);
                let filled = fill(&mut room[..n], &forged[at..at + n]);
                at += n;
                Ok(filled)
            });
            match r {
                Ok((0, _)) => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        assert!(r.is_err(), "a forged record fails");
        assert!(
            largest <= 2 + HEADER,
            "a read of {largest} bytes before any record opened"
        );
        assert!(
            plain.capacity() <= 2 + MAX_RECORD,
            "{} bytes reserved",
            plain.capacity()
        );
    }

    proptest::proptest! {
        /// Whatever arrives, in whatever pieces, the opener answers with
        /// plaintext or an error, never a panic; once it failed it stays
        /// failed; and it never holds more than what arrived.
        #[test]
        fn arbitrary_bytes_never_panic_the_opener(
            pieces in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000), 0..6),
            real in proptest::prelude::any::<bool>(),
        ) {
            // Two unrelated sessions, made once: a "real" peer key or not.
            static STATES: std::sync::OnceLock<(Session, Session)> = std::sync::OnceLock::new();
            let (client, worker) = STATES.get_or_init(|| {
                let ((c, _), (_, w)) = (states(), states());
                (c, w)
            });
            let mut opener = opener_of(if real { worker } else { client });
            let mut plain = BytesMut::new();
            let mut failed = false;
            for p in &pieces {
                opener.spare().extend_from_slice(p);
                match opener.open(&mut plain) {
                    Ok(_) => proptest::prop_assert!(!failed || opener.failure().is_some()),
                    Err(_) => failed = true,
                }
                if failed {
                    proptest::prop_assert!(opener.open(&mut plain).is_err());
                }
            }
            let _ = opener.ended();
            // Random bytes never authenticate as records.
            proptest::prop_assert!(plain.is_empty());
        }
    }
}
