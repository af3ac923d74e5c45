//! GNU parallel's `--pipepart`: a file (`-a FILE`) cut into parts at
//! record boundaries found by seeking, each part one job's stdin, as
//! `--pipe` gives blocks; a part is read from the file when its job is
//! made, so the file is never read whole and never passes through a pipe.
//!
//! The parts are GNU parallel's (its `find_split_positions`): the first
//! starts after the header; each next one is looked for `--block` bytes
//! after the last, at the first place where a record end is followed by
//! a record start (with `--regexp`, the last such place in the first
//! 128 KiB read there, as its greedy match finds it). A negative block,
//! `-N` (the default is -10), makes N parts per job slot.

use std::io::{BufRead, Read, Seek, SeekFrom};

use crate::pipe::MOST_BLOCK;

/// How much is read at a time while a part's start is looked for
/// (GNU parallel's `$dd_block_size`).
const READ: usize = 128 << 10;

/// How far back a new read is looked at with the bytes before it, for a
/// record end and start that the read cut in two.
const OVERLAP: usize = 64 << 10;

/// `--block` for `--pipepart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartSize {
    /// About this many bytes each.
    Bytes(u64),
    /// `--block -N`: N parts for each of `slots` job slots.
    PerSlot { parts: u64, slots: u64 },
}

impl PartSize {
    /// The block for a file of `size` bytes (GNU parallel's
    /// `1 + int(size / slots / N)`).
    pub(crate) fn bytes(self, size: u64) -> u64 {
        match self {
            PartSize::Bytes(b) => b.max(1),
            PartSize::PerSlot { parts, slots } => 1 + size / slots.max(1) / parts.max(1),
        }
    }
}

/// How parts are found: the header at the file's start, and where a
/// record ends and the next starts.
#[derive(Debug, Clone)]
pub(crate) struct Cutting {
    pub(crate) size: PartSize,
    /// Matches at a part's start: group 1 ends where the part starts
    /// (after the record end; before the record start). `None`: parts
    /// start anywhere (no record end nor start).
    pub(crate) boundary: Option<regex::bytes::Regex>,
    /// `--header`: what it matches at the file's start goes before every
    /// part.
    pub(crate) header: Option<regex::bytes::Regex>,
}

impl Cutting {
    /// The cutting for record ends `recend` and starts `recstart`, both
    /// regular expressions already (literal text escaped); `greedy` with
    /// `--regexp`, as GNU parallel's match is.
    pub(crate) fn new(
        size: PartSize,
        recend: &str,
        recstart: &str,
        greedy: bool,
        header: Option<regex::bytes::Regex>,
    ) -> Result<Cutting, String> {
        let boundary = match recend.is_empty() && recstart.is_empty() {
            true => None,
            false => {
                let lazy = if greedy { "" } else { "?" };
                let re = format!("^((?s-u:.)*{lazy}(?:{recend}))(?:{recstart})");
                Some(
                    regex::bytes::Regex::new(&re)
                        .map_err(|e| format!("--recend/--recstart: {e}"))?,
                )
            }
        };
        Ok(Cutting {
            size,
            boundary,
            header,
        })
    }
}

/// The parts of the file at `path`, each as text (crate::raw keeps bytes
/// that are not UTF-8) with the header before it; a part past
/// [`MOST_BLOCK`] bytes is an error that says so.
pub(crate) fn parts(
    path: &str,
    cutting: &Cutting,
    skip_first_line: bool,
) -> Result<Box<dyn Iterator<Item = Result<String, String>> + Send>, String> {
    let named = |e: std::io::Error| format!("--pipepart {path}: {e}");
    let mut file = std::fs::File::open(path).map_err(named)?;
    let meta = file.metadata().map_err(named)?;
    if !meta.is_file() {
        return Err(format!(
            "--pipepart {path}: not a file (--pipepart seeks in a file; --pipe reads a stream)"
        ));
    }
    let size = meta.len();
    let block = cutting.size.bytes(size);
    // --skip-first-line: the parts (and the header) start after it.
    let first = match skip_first_line {
        true => std::io::BufReader::new(&mut file)
            .skip_until(b'\n')
            .map_err(named)? as u64,
        false => 0,
    };
    file.seek(SeekFrom::Start(first)).map_err(named)?;
    let header = header_of(&mut file, cutting, block).map_err(named)?;
    let start = first + header.len() as u64;
    let bounds = bounds(&mut file, size, block, start, cutting).map_err(named)?;
    let path = path.to_string();
    let mut at = 0;
    Ok(Box::new(std::iter::from_fn(move || {
        let (start, end) = (*bounds.get(at)?, *bounds.get(at + 1)?);
        at += 1;
        let len = end - start;
        if len > MOST_BLOCK as u64 {
            at = bounds.len();
            return Some(Err(format!(
                "--pipepart {path}: a part of {len} bytes, more than {MOST_BLOCK} (give a smaller --block; is --recend right?)"
            )));
        }
        let mut part = Vec::with_capacity(header.len() + len as usize);
        part.extend_from_slice(&header);
        let read = file
            .seek(SeekFrom::Start(start))
            .and_then(|_| (&mut file).take(len).read_to_end(&mut part));
        match read {
            Ok(n) if n as u64 == len => Some(Ok(crate::raw::text(part))),
            Ok(_) => {
                at = bounds.len();
                Some(Err(format!("--pipepart {path}: the file got shorter")))
            }
            Err(e) => {
                at = bounds.len();
                Some(Err(format!("--pipepart {path}: {e}")))
            }
        }
    })))
}

/// `--header`'s match at the start of the file (read `block` bytes at a
/// time until it matches, at most [`MOST_BLOCK`]), or nothing.
fn header_of(file: &mut std::fs::File, cutting: &Cutting, block: u64) -> std::io::Result<Vec<u8>> {
    let Some(re) = &cutting.header else {
        return Ok(Vec::new());
    };
    let mut buf = Vec::new();
    let step = block.clamp(1, MOST_BLOCK as u64);
    loop {
        let before = buf.len();
        (&mut *file).take(step).read_to_end(&mut buf)?;
        if let Some(m) = re.find(&buf) {
            return Ok(buf[..m.end()].to_vec());
        }
        if buf.len() == before || buf.len() > MOST_BLOCK {
            return Ok(Vec::new());
        }
    }
}

/// Where the parts start and end (GNU parallel's split positions): the
/// header's end, each boundary found, and the file's end.
fn bounds(
    file: &mut std::fs::File,
    size: u64,
    block: u64,
    skip: u64,
    cutting: &Cutting,
) -> std::io::Result<Vec<u64>> {
    let mut pos = vec![skip];
    let mut at = block + skip;
    while at < size {
        match &cutting.boundary {
            None => pos.push(at),
            Some(re) => {
                if let Some(found) = boundary_after(file, at, re)? {
                    at = found;
                    pos.push(at);
                }
            }
        }
        at += block;
    }
    if pos.last() != Some(&size) {
        pos.push(size);
    }
    Ok(pos)
}

/// The first part start at or after `from` (the end of `re`'s group 1),
/// reading [`READ`] bytes at a time and looking at each read with the
/// [`OVERLAP`] bytes before it; `None` up to the end of the file, or
/// past [`MOST_BLOCK`] bytes (the part before it is refused as too long
/// when read).
fn boundary_after(
    file: &mut std::fs::File,
    from: u64,
    re: &regex::bytes::Regex,
) -> std::io::Result<Option<u64>> {
    file.seek(SeekFrom::Start(from))?;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let before = buf.len();
        (&mut *file).take(READ as u64).read_to_end(&mut buf)?;
        if buf.len() == before {
            return Ok(None);
        }
        // A match wholly before this read would have been found by the
        // look before.
        let look = before.saturating_sub(OVERLAP);
        if let Some(c) = re.captures(&buf[look..]) {
            let end = c.get(1).map_or(0, |g| g.end());
            return Ok(Some(from + (look + end) as u64));
        }
        if buf.len() > MOST_BLOCK {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(text: &[u8], size: PartSize, recend: &str, recstart: &str, greedy: bool) -> Vec<String> {
        let dir = std::env::temp_dir().join(format!("remex-pipepart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(format!("{}", text.len()));
        std::fs::write(&f, text).unwrap();
        let c = Cutting::new(size, recend, recstart, greedy, None).unwrap();
        let got = parts(f.to_str().unwrap(), &c, false)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        std::fs::remove_file(&f).unwrap();
        got
    }

    #[test]
    fn parts_start_after_the_first_record_end_past_each_block() {
        // GNU parallel 20221122, `seq 100 > f; parallel -k --pipepart
        // --block 50 -a f wc -c`: 51 51 51 51 51 37.
        let hundred: String = (1..=100).map(|i| format!("{i}\n")).collect();
        let sizes: Vec<usize> = cut(hundred.as_bytes(), PartSize::Bytes(50), "\n", "", false)
            .iter()
            .map(String::len)
            .collect();
        assert_eq!(sizes, [51, 51, 51, 51, 51, 37]);
        // `-j3 --block -1`: 36 33 31 lines.
        let lines: Vec<usize> = cut(
            hundred.as_bytes(),
            PartSize::PerSlot { parts: 1, slots: 3 },
            "\n",
            "",
            false,
        )
        .iter()
        .map(|p| p.lines().count())
        .collect();
        assert_eq!(lines, [36, 33, 31]);
        // No record end nor start: parts of the block's size exactly.
        let sizes: Vec<usize> = cut(b"abcdefghij", PartSize::Bytes(4), "", "", false)
            .iter()
            .map(String::len)
            .collect();
        assert_eq!(sizes, [4, 4, 2]);
        // An empty file has no part.
        assert!(cut(b"", PartSize::Bytes(4), "\n", "", false).is_empty());
        // A record start: parts begin with it.
        let fasta = b">a\nAC\n>b\nGT\n>c\nTT\n";
        assert_eq!(
            cut(fasta, PartSize::Bytes(2), "", ">", false),
            [">a\nAC\n", ">b\nGT\n", ">c\nTT\n"]
        );
    }

    #[test]
    fn a_boundary_cut_by_a_read_is_found() {
        // The record end straddles the first 128 KiB read.
        let mut text = vec![b'x'; READ - 1];
        text.extend_from_slice(b"\n\nyy\n");
        let parts = cut(&text, PartSize::Bytes(10), "\n\n", "", false);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].len(), READ + 1);
        assert_eq!(parts[1], "yy\n");
    }
}
