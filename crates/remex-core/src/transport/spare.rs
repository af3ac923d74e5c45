//! Reads into the spare room of a `BytesMut` without zeroing it first:
//! the one place where bytes a read filled become part of a buffer. The
//! direct input path (Linux) reads this way, plain and through an
//! encrypted session's records.
#![cfg_attr(any(not(target_os = "linux"), feature = "portable"), allow(dead_code))]

use std::io;
use std::mem::MaybeUninit;

use bytes::BytesMut;

/// One `read` into at most `limit` bytes of `buf`'s spare room after
/// `front.len()` (the room is there); if it read any, `front` is written
/// before them and both become part of `buf`. The bytes read.
pub(crate) fn read_into(
    buf: &mut BytesMut,
    front: &[u8],
    limit: usize,
    read: impl FnOnce(&mut [MaybeUninit<u8>]) -> io::Result<&mut [u8]>,
) -> io::Result<usize> {
    let (first, room) = buf.spare_capacity_mut()[..front.len() + limit].split_at_mut(front.len());
    let start = room.as_ptr() as usize;
    let filled = read(room)?;
    let n = filled.len();
    if filled.as_ptr() as usize != start || n > limit {
        return Err(io::Error::other(
            "a read filled another buffer than its own",
        ));
    }
    if n == 0 {
        return Ok(0);
    }
    for (to, &b) in first.iter_mut().zip(front) {
        to.write(b);
    }
    // SAFETY: the `front.len()` bytes after `buf`'s end were just written
    // and the `n` after them are the ones `read` filled (checked above:
    // its slice starts where the room starts and is no longer than it).
    unsafe { buf.set_len(buf.len() + front.len() + n) };
    Ok(n)
}
