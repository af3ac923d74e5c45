//! The transport phase's keys: Noise's CipherState for AESGCM (section
//! 5.1 and 12.3 of the Noise specification, revision 34) on ring's
//! AES-256-GCM, with its `Rekey()` (section 11.3) every [`EPOCH_BITS`]
//! worth of nonces.
//!
//! snow runs the handshake and hands over the two keys of its `Split()`;
//! from there on this module seals and opens, exactly as snow's own
//! transport state does with its ring resolver (nonce: 4 zero bytes and
//! the 64-bit counter big-endian; `REKEY(k)`: the first 32 bytes of
//! `ENCRYPT(k, 2^64 - 1, "", 32 zero bytes)`), which a test checks
//! against snow byte for byte. Why not snow's transport state: its rekey
//! needs the state alone (`&mut`) while the engine seals records out of
//! order on several threads, and its ring resolver copies each received
//! record twice (once into a fresh allocation). Here the key of each
//! epoch is derived once and kept beside the previous one, and records
//! open in place.
//!
//! The keys are held in memory zeroed on drop ([`zeroize`]); ring's
//! expanded AES key schedule is not (ring does not offer it).

use std::io;

use parking_lot::RwLock;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use zeroize::Zeroizing;

/// The authentication tag of each sealed message.
pub(crate) const TAG: usize = 16;

/// A key serves `2^EPOCH_BITS` nonces, then both ends rekey: two nonces
/// per record (its header and its body), so a new key every 2^20 records
/// (64 GiB of full records).
pub(crate) const EPOCH_BITS: u32 = 21;

/// The nonce `Rekey()` uses; never a message's.
const REKEY_NONCE: u64 = u64::MAX;

fn nonce(n: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&n.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

fn failed(what: &str) -> io::Error {
    io::Error::other(format!("the session's cipher failed to {what}"))
}

/// One direction's key in one epoch.
struct EpochKey {
    epoch: u64,
    aead: LessSafeKey,
}

impl EpochKey {
    fn new(epoch: u64, key: &Zeroizing<[u8; 32]>) -> EpochKey {
        let unbound =
            UnboundKey::new(&AES_256_GCM, &key[..]).expect("a 32-byte key is an AES-256 key");
        EpochKey {
            epoch,
            aead: LessSafeKey::new(unbound),
        }
    }

    /// Noise's `Rekey()`: the next epoch's key, a function of this one.
    fn next(&self) -> io::Result<EpochKey> {
        let mut k = Zeroizing::new([0u8; 32]);
        // The tag is not part of the key.
        let _tag = self
            .aead
            .seal_in_place_separate_tag(nonce(REKEY_NONCE), Aad::empty(), &mut k[..])
            .map_err(|_| failed("rekey"))?;
        Ok(EpochKey::new(self.epoch + 1, &k))
    }
}

/// The epoch of message `n` under a rekey every `2^bits` nonces.
fn epoch_of(n: u64, bits: u32) -> u64 {
    n >> bits
}

/// A direction's current key and the one before it (a record reserved
/// just before a rekey may be sealed just after).
struct Chain {
    current: EpochKey,
    previous: Option<EpochKey>,
}

impl Chain {
    fn new(key: &Zeroizing<[u8; 32]>) -> Chain {
        Chain {
            current: EpochKey::new(0, key),
            previous: None,
        }
    }

    /// The key of `epoch`, if this chain holds it.
    fn get(&self, epoch: u64) -> Option<&LessSafeKey> {
        if self.current.epoch == epoch {
            return Some(&self.current.aead);
        }
        self.previous
            .as_ref()
            .filter(|p| p.epoch == epoch)
            .map(|p| &p.aead)
    }

    /// Rekeys until the current key is `epoch`'s.
    fn advance_to(&mut self, epoch: u64) -> io::Result<()> {
        while self.current.epoch < epoch {
            let next = self.current.next()?;
            self.previous = Some(std::mem::replace(&mut self.current, next));
        }
        Ok(())
    }
}

/// A message number the session may use (`Rekey()` owns the last one).
fn usable(n: u64) -> io::Result<()> {
    if n == REKEY_NONCE {
        return Err(io::Error::other(
            "the secure session ran out of nonces (2^64 messages)",
        ));
    }
    Ok(())
}

/// The sending direction's keys, shared by whoever seals (records are
/// sealed by several threads, each at the nonces it reserved).
pub(crate) struct SendKeys {
    chain: RwLock<Chain>,
    bits: u32,
}

impl std::fmt::Debug for SendKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendKeys")
            .field("epoch", &self.chain.read().current.epoch)
            .finish_non_exhaustive()
    }
}

impl SendKeys {
    pub(crate) fn new(key: &Zeroizing<[u8; 32]>, bits: u32) -> SendKeys {
        SendKeys {
            chain: RwLock::new(Chain::new(key)),
            bits,
        }
    }

    /// Seals `in_out` in place as message `n` and writes its tag.
    pub(crate) fn seal(&self, n: u64, in_out: &mut [u8], tag: &mut [u8]) -> io::Result<()> {
        usable(n)?;
        let epoch = epoch_of(n, self.bits);
        {
            let chain = self.chain.read();
            if let Some(key) = chain.get(epoch) {
                return seal_with(key, n, in_out, tag);
            }
        }
        let mut chain = self.chain.write();
        chain.advance_to(epoch)?;
        match chain.get(epoch) {
            Some(key) => seal_with(key, n, in_out, tag),
            None => Err(io::Error::other(format!(
                "a record of the secure session was sealed after its key was gone (message {n})"
            ))),
        }
    }
}

fn seal_with(key: &LessSafeKey, n: u64, in_out: &mut [u8], tag: &mut [u8]) -> io::Result<()> {
    let t = key
        .seal_in_place_separate_tag(nonce(n), Aad::empty(), in_out)
        .map_err(|_| failed("seal"))?;
    tag.copy_from_slice(t.as_ref());
    Ok(())
}

/// The receiving direction's keys: messages open in order, one reader.
pub(crate) struct RecvKeys {
    chain: Chain,
    bits: u32,
}

impl std::fmt::Debug for RecvKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvKeys")
            .field("epoch", &self.chain.current.epoch)
            .finish_non_exhaustive()
    }
}

impl RecvKeys {
    pub(crate) fn new(key: &Zeroizing<[u8; 32]>, bits: u32) -> RecvKeys {
        RecvKeys {
            chain: Chain::new(key),
            bits,
        }
    }

    /// Opens message `n` (ciphertext then tag) in place; its plaintext
    /// length. `Err` when it fails its tag.
    pub(crate) fn open(&mut self, n: u64, in_out: &mut [u8]) -> Result<usize, Tampered> {
        self.open_within(n, in_out, 0)
    }

    /// Opens the message at `in_out[src..]` (ciphertext and tag) in one
    /// pass, its plaintext written at the front of `in_out` (ring's
    /// overlapping `open_within`); the plaintext's length.
    pub(crate) fn open_within(
        &mut self,
        n: u64,
        in_out: &mut [u8],
        src: usize,
    ) -> Result<usize, Tampered> {
        usable(n).map_err(|_| Tampered)?;
        let epoch = epoch_of(n, self.bits);
        self.chain.advance_to(epoch).map_err(|_| Tampered)?;
        let key = self.chain.get(epoch).ok_or(Tampered)?;
        key.open_within(nonce(n), Aad::empty(), in_out, src..)
            .map(|plain| plain.len())
            .map_err(|_| Tampered)
    }
}

/// A message failed its integrity check.
#[derive(Debug)]
pub(crate) struct Tampered;

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished NNpsk0 handshake, in memory: its two `Split()` keys and
    /// snow's own transport state for the initiator.
    fn snow_session() -> (
        Zeroizing<[u8; 32]>,
        Zeroizing<[u8; 32]>,
        snow::StatelessTransportState,
    ) {
        let psk = [7u8; 32];
        let build = || {
            snow::Builder::new(super::super::PATTERN.parse().unwrap())
                .psk(0, &psk)
                .unwrap()
        };
        let mut i = build().build_initiator().unwrap();
        let mut r = build().build_responder().unwrap();
        let mut m = [0u8; 128];
        let n = i.write_message(&[], &mut m).unwrap();
        r.read_message(&m[..n], &mut []).unwrap();
        let n = r.write_message(&[], &mut m).unwrap();
        i.read_message(&m[..n], &mut []).unwrap();
        let (k1, k2) = i.dangerously_get_raw_split();
        (
            Zeroizing::new(k1),
            Zeroizing::new(k2),
            i.into_stateless_transport_mode().unwrap(),
        )
    }

    fn ours(keys: &SendKeys, n: u64, plain: &[u8]) -> Vec<u8> {
        let mut out = plain.to_vec();
        let mut tag = [0u8; TAG];
        keys.seal(n, &mut out, &mut tag).unwrap();
        out.extend_from_slice(&tag);
        out
    }

    fn snows(state: &snow::StatelessTransportState, n: u64, plain: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; plain.len() + TAG];
        let len = state.write_message(n, plain, &mut out).unwrap();
        out.truncate(len);
        out
    }

    #[test]
    fn sealing_and_rekeying_match_snows_transport_state_byte_for_byte() {
        let (k1, _k2, mut state) = snow_session();
        // Epochs of 4 nonces, to cross several rekeys.
        let keys = SendKeys::new(&k1, 2);
        let plain = b"the same record, sealed twice";
        for n in 0..4 {
            assert_eq!(
                ours(&keys, n, plain),
                snows(&state, n, plain),
                "message {n}"
            );
        }
        for epoch in 1..4u64 {
            state.rekey_outgoing();
            for n in epoch * 4..epoch * 4 + 4 {
                assert_eq!(
                    ours(&keys, n, plain),
                    snows(&state, n, plain),
                    "message {n}"
                );
            }
        }
    }

    #[test]
    fn each_epoch_has_its_own_key_and_late_sealers_keep_the_previous_one() {
        let (k1, _, _) = snow_session();
        let send = SendKeys::new(&k1, 2);
        let mut recv = RecvKeys::new(&k1, 2);
        let mut no_rekey = RecvKeys::new(&k1, 40);
        // Message 5 (epoch 1) sealed before message 3 (epoch 0): a thread
        // that reserved 3 seals it after another rekeyed.
        let five = ours(&send, 5, b"five");
        let three = ours(&send, 3, b"three");
        let mut m = three.clone();
        assert_eq!(recv.open(3, &mut m).unwrap(), 5);
        assert_eq!(&m[..5], b"three");
        let mut m = five.clone();
        assert!(no_rekey.open(5, &mut m).is_err(), "epoch 1 has a new key");
        let mut m = five.clone();
        assert_eq!(recv.open(5, &mut m).unwrap(), 4);
        // Two epochs behind: refused, never sealed with a wrong key.
        let _ = ours(&send, 13, b"epoch 3");
        let mut buf = *b"late";
        let mut tag = [0u8; TAG];
        let e = send.seal(1, &mut buf, &mut tag).unwrap_err();
        assert!(e.to_string().contains("after its key was gone"), "{e}");
    }

    #[test]
    fn the_rekey_nonce_is_never_a_message() {
        let (k1, _, _) = snow_session();
        let send = SendKeys::new(&k1, EPOCH_BITS);
        let mut buf = [0u8; 4];
        let mut tag = [0u8; TAG];
        assert!(send.seal(u64::MAX, &mut buf, &mut tag).is_err());
        let mut recv = RecvKeys::new(&k1, EPOCH_BITS);
        assert!(recv.open(u64::MAX, &mut [0u8; 20]).is_err());
    }
}
