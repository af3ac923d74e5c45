//! GNU parallel's `--pipe`: stdin (or a file) cut into blocks of whole
//! records, each one job's stdin ([`blocks`], cut as [`Pipe`] says).

use std::io::{BufRead, Read};

/// `--pipe`: how stdin (or a file) is cut into blocks, each one job's
/// stdin, as GNU parallel cuts it: whole records, at most `block` bytes
/// (a longer record alone), or `records` of them. A record ends where
/// `recend` matches and the next starts where `recstart` matches (both
/// regular expressions; literal text unless `--regexp`); with `lines`
/// (`-L N`) a record is N lines.
#[derive(Debug, Clone)]
pub(crate) struct Pipe {
    pub(crate) block: usize,
    pub(crate) recend: Option<regex::bytes::Regex>,
    /// As it is, and anchored at its start (`^(?:...)`).
    pub(crate) recstart: Option<(regex::bytes::Regex, regex::bytes::Regex)>,
    pub(crate) records: Option<usize>,
    pub(crate) lines: Option<usize>,
    /// `--header`: what it matches at the start of the input (anchored)
    /// goes before every block.
    pub(crate) header: Option<regex::bytes::Regex>,
    /// `--rrs`: the separators are taken out of each block (GNU
    /// parallel's remove_rec_sep).
    pub(crate) remove_separators: Option<regex::bytes::Regex>,
    /// `--group-by`: records are groups of lines with the same value
    /// (--recend, --recstart and -L do not apply).
    pub(crate) group: Option<crate::groupby::GroupBy>,
    /// `--block-timeout`: a block not read whole within this long is the
    /// whole records read so far.
    pub(crate) timeout: Option<std::time::Duration>,
    /// `--csv`: records are CSV records, each ending at a newline outside
    /// quotes (GNU parallel's: an even number of `"` before it).
    pub(crate) csv: bool,
}

/// The largest block `--pipe` makes (a block travels in one message).
pub(crate) const MOST_BLOCK: usize = 256 << 20;

impl Pipe {
    /// A separator as a regular expression: `text` itself, or read as one
    /// (`regexp`); none when empty.
    pub(crate) fn separator(
        text: &str,
        regexp: bool,
        anchored: bool,
    ) -> Result<Option<regex::bytes::Regex>, String> {
        if text.is_empty() {
            return Ok(None);
        }
        let re = match regexp {
            true => text.to_string(),
            false => regex::escape(text),
        };
        let re = if anchored { format!("^(?:{re})") } else { re };
        regex::bytes::Regex::new(&re)
            .map(Some)
            .map_err(|e| format!("--pipe's separator {text:?} is not a regular expression: {e}"))
    }

    /// The places in `buf` where a record ends and the next starts (`eof`:
    /// nothing more comes, so a record end at the very end counts).
    fn points<'a>(&'a self, buf: &'a [u8], eof: bool) -> Box<dyn Iterator<Item = usize> + 'a> {
        let starts_here = move |p: usize| match &self.recstart {
            None => true,
            Some(_) if p == buf.len() => eof,
            Some((_, at)) => at.is_match(&buf[p..]),
        };
        if let Some(g) = &self.group {
            return Box::new(g.starts(buf, eof));
        }
        // -L without -N: records are lines, whatever --recend says (GNU
        // parallel's; with -N K it counts K x L of --recend's records).
        if let (Some(l), None) = (self.lines, self.records) {
            let ends = buf
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1);
            return Box::new(ends.skip(l.max(1) - 1).step_by(l.max(1)));
        }
        if self.csv {
            // Blocks start at a record's start, so quotes are counted
            // from there: "" inside a quoted field counts twice.
            let mut quotes = 0usize;
            return Box::new(buf.iter().enumerate().filter_map(move |(i, b)| match b {
                b'"' => {
                    quotes += 1;
                    None
                }
                b'\n' if quotes % 2 == 0 => Some(i + 1),
                _ => None,
            }));
        }
        let all: Box<dyn Iterator<Item = usize> + 'a> = match (&self.recend, &self.recstart) {
            (Some(end), _) => Box::new(
                // With -N, a record holds something before its end (GNU
                // parallel counts ends from the block's second byte on);
                // a block of whole records ends after the last end read,
                // wherever it is.
                end.find_iter(buf)
                    .filter(|m| m.start() > 0 || self.records.is_none())
                    .map(|m| m.end())
                    .filter(move |p| starts_here(*p)),
            ),
            (None, Some((start, _))) => {
                Box::new(start.find_iter(buf).map(|m| m.start()).filter(|p| *p > 0))
            }
            (None, None) => Box::new(1..=buf.len()),
        };
        all
    }

    /// How far `buf` must have been read for the record end `p` to be
    /// found: past the next record's `--recstart` when there is one (GNU
    /// parallel finds --recend and --recstart together in what it read).
    fn found_at(&self, buf: &[u8], p: usize) -> usize {
        let plain =
            self.group.is_none() && !self.csv && (self.lines.is_none() || self.records.is_some());
        match &self.recstart {
            Some((_, at)) if plain && p < buf.len() => {
                at.find(&buf[p..]).map_or(p, |m| p + m.end())
            }
            _ => p,
        }
    }

    /// Where the first block of `buf` ends, if it is known yet. A block
    /// in which no record ends makes the block size grow as GNU parallel's
    /// does, with its warning: 1.3 times and one byte more, each time a
    /// block's worth is read without a record's end (and then at most
    /// [`MOST_BLOCK`]; not with `--block-timeout`), and for the rest of
    /// the input.
    fn cut(&mut self, buf: &[u8], eof: bool) -> Option<usize> {
        if buf.is_empty() {
            return None;
        }
        let rest = || eof.then_some(buf.len());
        if let Some(k) = self.records {
            let k = k.max(1) * self.lines.unwrap_or(1).max(1);
            return self.points(buf, eof).nth(k - 1).or_else(rest);
        }
        if buf.len() < self.block {
            // At the end, -L's whole records go before a part of one (GNU
            // parallel's).
            if eof && self.lines.is_some() {
                return match self.points(buf, eof).last() {
                    Some(p) if p < buf.len() => Some(p),
                    _ => rest(),
                };
            }
            return rest();
        }
        // The last record that ends within the block.
        loop {
            let (mut last, mut past) = (None, None);
            for p in self.points(buf, eof) {
                if self.found_at(buf, p) > self.block {
                    past = Some(p);
                    break;
                }
                last = Some(p);
            }
            if last.is_some() {
                return last;
            }
            if self.timeout.is_some() || self.block >= MOST_BLOCK {
                // The one record, longer than the block, whole.
                return past.or_else(rest);
            }
            let grown = ((self.block as f64 * 1.3 + 1.0).ceil() as usize).min(MOST_BLOCK);
            eprintln!(
                "remex: a record was longer than {} bytes: --block grows to {grown} (as in GNU parallel)",
                self.block
            );
            self.block = grown;
            if buf.len() < self.block {
                // A block's worth is read first.
                return rest();
            }
        }
    }

    /// Where a block of the whole records in `buf` ends, for a block cut
    /// short by `--block-timeout` (none while `buf` holds no whole record).
    fn cut_short(&self, buf: &[u8]) -> Option<usize> {
        let most = self
            .records
            .map_or(usize::MAX, |k| k.max(1) * self.lines.unwrap_or(1).max(1));
        self.points(buf, false).take(most).last()
    }

    /// `block` as the job gets it: after the header, its separators
    /// taken out with `--rrs`.
    fn shaped(&self, header: &[u8], block: Vec<u8>) -> Vec<u8> {
        let block = match &self.remove_separators {
            None => block,
            Some(both) => {
                let mut b = both.replace_all(&block, &b""[..]).into_owned();
                if let Some(m) = self.recstart.as_ref().and_then(|(_, at)| at.find(&b)) {
                    b.drain(..m.end());
                }
                if let Some(end) = &self.recend {
                    if let Some(m) = end.find_iter(&b).last().filter(|m| m.end() == b.len()) {
                        b.truncate(m.start());
                    }
                }
                b
            }
        };
        match header.is_empty() {
            true => block,
            false => [header, &block].concat(),
        }
    }
}

/// The blocks of `reader`, as `pipe` cuts them (each as text: crate::raw
/// keeps bytes that are not UTF-8). A block past [`MOST_BLOCK`] bytes (one
/// record that long) is an error that says so.
pub(crate) fn blocks(
    reader: Box<dyn BufRead + Send>,
    mut pipe: Pipe,
    path: String,
) -> impl Iterator<Item = Result<String, String>> + Send {
    let mut reader = Reader::new(reader, pipe.timeout);
    let mut buf: Vec<u8> = Vec::new();
    let mut eof = false;
    let mut failed = false;
    // --block-timeout: when the block being read is due, and whether it
    // is late.
    let mut due: Option<std::time::Instant> = None;
    let mut late = false;
    // --header: taken from the input's start once enough is read.
    let mut header: Option<Vec<u8>> = pipe.header.is_none().then(Vec::new);
    std::iter::from_fn(move || loop {
        if failed {
            return None;
        }
        if header.is_none() && (eof || late || buf.len() >= pipe.block.min(1 << 20)) {
            let re = pipe.header.as_ref().expect("a header to take");
            let end = re.find(&buf).map_or(0, |m| m.end());
            let h: Vec<u8> = buf.drain(..end).collect();
            // --group-by NAME: the header names its column.
            if let Some(Err(e)) = pipe.group.as_mut().map(|g| g.resolve(&h)) {
                failed = true;
                return Some(Err(e));
            }
            header = Some(h);
        }
        if let Some(h) = &header {
            let cut = match pipe.cut(&buf, eof) {
                None if late => pipe.cut_short(&buf),
                cut => cut,
            };
            if let Some(cut) = cut {
                let rest = buf.split_off(cut);
                let block = std::mem::replace(&mut buf, rest);
                (due, late) = (None, false);
                return Some(Ok(crate::raw::text(pipe.shaped(h, block))));
            }
        }
        if eof {
            return None;
        }
        if late {
            // Nothing whole to give yet: the next block has its own time.
            (due, late) = (None, false);
        }
        if buf.len() > MOST_BLOCK {
            failed = true;
            let why = match pipe.group {
                Some(_) => "a group of --group-by is one record",
                None => "--pipe passes records whole; is --recend right?",
            };
            return Some(Err(format!(
                "reading {path}: a record longer than {MOST_BLOCK} bytes ({why})"
            )));
        }
        // Reads grow with the buffer: a long record is looked through a
        // few times, not once per read.
        let want = pipe.block.max(buf.len()).clamp(64 << 10, 16 << 20);
        if let Some(t) = pipe.timeout {
            due.get_or_insert_with(|| std::time::Instant::now() + t);
        }
        match reader.read(&mut buf, want, due) {
            Ok(Got::Some) => {}
            Ok(Got::End) => eof = true,
            Ok(Got::Late) => late = true,
            Err(e) => {
                failed = true;
                return Some(Err(format!("reading {path}: {e}")));
            }
        }
    })
}

/// What a read gave.
enum Got {
    Some,
    /// The input's end.
    End,
    /// Nothing by the time given.
    Late,
}

/// Where [`blocks`] reads: the input itself, or, with `--block-timeout`,
/// a thread that reads it and hands over what it read (at most
/// [`AHEAD`] reads ahead), so that a read can stop waiting.
enum Reader {
    Direct(Box<dyn BufRead + Send>),
    Threaded(std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>),
}

/// Reads the reading thread of `--block-timeout` makes ahead of the
/// blocks, 64 KiB each: its memory bound.
const AHEAD: usize = 4;

impl Reader {
    fn new(mut reader: Box<dyn BufRead + Send>, timeout: Option<std::time::Duration>) -> Reader {
        if timeout.is_none() {
            return Reader::Direct(reader);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(AHEAD);
        // It ends at the input's end, at an error, or when the blocks are
        // no longer wanted (its next hand-over fails). Until then it may
        // wait in a read of stdin; the command's end ends it.
        std::thread::spawn(move || loop {
            let mut chunk = vec![0; 64 << 10];
            let got = match reader.read(&mut chunk) {
                Ok(n) => {
                    chunk.truncate(n);
                    Ok(chunk)
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let over = !matches!(&got, Ok(c) if !c.is_empty());
            if tx.send(got).is_err() || over {
                return;
            }
        });
        Reader::Threaded(rx)
    }

    /// Up to `want` bytes more into `buf`, waiting until `due` at most.
    fn read(
        &mut self,
        buf: &mut Vec<u8>,
        want: usize,
        due: Option<std::time::Instant>,
    ) -> std::io::Result<Got> {
        let before = buf.len();
        match self {
            Reader::Direct(r) => {
                std::io::Read::take(r.as_mut(), want as u64).read_to_end(buf)?;
            }
            Reader::Threaded(rx) => {
                use std::sync::mpsc::RecvTimeoutError;
                // What has come already, up to `want`, without waiting
                // past the first.
                while buf.len() - before < want {
                    let got = match (buf.len() == before, due) {
                        (true, Some(due)) => {
                            let left = due.saturating_duration_since(std::time::Instant::now());
                            match rx.recv_timeout(left) {
                                Ok(got) => got,
                                Err(RecvTimeoutError::Timeout) => return Ok(Got::Late),
                                Err(RecvTimeoutError::Disconnected) => break,
                            }
                        }
                        (true, None) => match rx.recv() {
                            Ok(got) => got,
                            Err(_) => break,
                        },
                        (false, _) => match rx.try_recv() {
                            Ok(got) => got,
                            Err(_) => break,
                        },
                    };
                    let chunk = got?;
                    if chunk.is_empty() {
                        break;
                    }
                    buf.extend_from_slice(&chunk);
                }
            }
        }
        Ok(match buf.len() == before {
            true => Got::End,
            false => Got::Some,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records ending in a newline (CSV records with `csv`), in blocks of
    /// `block` bytes or of `records` records.
    fn lines(block: usize, records: Option<usize>, csv: bool) -> Pipe {
        Pipe {
            block,
            recend: Pipe::separator("\n", false, false).unwrap(),
            recstart: None,
            records,
            lines: None,
            header: None,
            remove_separators: None,
            group: None,
            timeout: None,
            csv,
        }
    }

    #[test]
    fn pipe_blocks_are_whole_records_within_the_size() {
        let pipe = |block, records| lines(block, records, false);
        // The last record that ends within the block.
        assert_eq!(pipe(5, None).cut(b"ab\ncd\nef", false), Some(3));
        // Not enough yet, unless nothing more comes.
        assert_eq!(pipe(9, None).cut(b"ab\ncd", false), None);
        assert_eq!(pipe(9, None).cut(b"ab\ncd", true), Some(5));
        // A record longer than the block makes it grow (GNU parallel's
        // x1.3 + 1: 2, 4, 7), until a block's worth holds a record's end.
        assert_eq!(pipe(2, None).cut(b"abcd", false), None);
        assert_eq!(pipe(2, None).cut(b"abcd\nx", false), None);
        let mut grows = pipe(2, None);
        assert_eq!(grows.cut(b"abcd\nx\ny\n", false), Some(7));
        assert_eq!(grows.block, 7, "the rest of the input too");
        assert_eq!(grows.cut(b"y\nz\nw\nv\n", false), Some(6));
        assert_eq!(pipe(2, None).cut(b"abcd", true), Some(4));
        // Not with --block-timeout: the record alone.
        let mut timed = pipe(2, None);
        timed.timeout = Some(std::time::Duration::from_secs(1));
        assert_eq!(timed.cut(b"abcd\nx\ny\n", false), Some(5));
        assert_eq!(timed.block, 2);
        // -N K: K records, whatever their size; a record holds something
        // before its end (GNU parallel's: "\n\n\n" is "\n\n", "\n").
        assert_eq!(pipe(1, Some(2)).cut(b"a\nb\nc\n", false), Some(4));
        assert_eq!(pipe(1, Some(1)).cut(b"\n\n\n", false), Some(2));
        assert_eq!(pipe(1, Some(2)).cut(b"a\nb", false), None);
        assert_eq!(pipe(1, Some(2)).cut(b"a\nb", true), Some(3));
        // Read whole through a reader: every byte once, in order.
        let data: Vec<u8> = (0..5000u32)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let reader: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(data.clone()));
        let got: Vec<String> = blocks(reader, pipe(1000, None), "t".into())
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(got.iter().all(|b| b.len() <= 1000 && b.ends_with('\n')));
        assert_eq!(got.concat().into_bytes(), data);
    }

    #[test]
    fn csv_blocks_end_at_a_newline_outside_quotes() {
        let pipe = |block, records| lines(block, records, true);
        let data = b"a,b\n\"x\ny\",z\nc,\"\"\"q\"\"\"\nd,e\n";
        // A newline inside quotes ends nothing ("" is a quote in a field).
        assert_eq!(pipe(6, None).cut(data, false), Some(4));
        assert_eq!(pipe(12, None).cut(data, false), Some(12));
        assert_eq!(pipe(1, Some(1)).cut(&data[4..], false), Some(8));
        assert_eq!(pipe(1, Some(2)).cut(&data[4..], false), Some(18));
        // An open quote: not a record yet, unless nothing more comes.
        assert_eq!(pipe(1, Some(1)).cut(b"\"x\ny", false), None);
        assert_eq!(pipe(1, Some(1)).cut(b"\"x\ny", true), Some(4));
        // Read through a reader: records whole, every byte once.
        let reader: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(data.to_vec()));
        let got: Vec<String> = blocks(reader, pipe(3, None), "t".into())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, ["a,b\n", "\"x\ny\",z\n", "c,\"\"\"q\"\"\"\n", "d,e\n"]);
    }
}
