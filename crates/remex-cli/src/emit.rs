//! How a job's output reaches remex's own stdout or stderr: as it came,
//! or each line after the job's tag (`--tag`, `--tagstring`), in the
//! job's colour (`--color`, `--colorfailed`); and what a write that finds
//! no reader does ([`checked`]).

use std::io::Write;

/// Writes `data` to `out`, each line prefixed with `tag` if there is one;
/// the bytes are the job's, none added.
pub(crate) fn emit(out: &mut dyn Write, tag: Option<&str>, data: &[u8]) {
    let Some(tag) = tag else {
        checked(out.write_all(data));
        return;
    };
    // Its bytes (an input that is not UTF-8: crate::raw), once per call.
    let tag = crate::raw::bytes(tag);
    for line in data.split_inclusive(|b| *b == b'\n') {
        checked(out.write_all(&tag));
        checked(out.write_all(b"\t"));
        checked(out.write_all(line));
    }
    // A last line without its newline stays so (GNU parallel's --tag:
    // `printf x` tagged `a` is `a<TAB>x`, and the next job's tag follows).
}

/// A job's colour (`--color`): GNU parallel's (20221122), chosen by the
/// job's number from its palette of 256-colour backgrounds with black or
/// white text, or white on red for a failed job (`--colorfailed`).
/// Written as GNU parallel writes them where `tput` has no terminal: the
/// colour, clear to the end of the line (`ESC[K`), the line, `ESC[m`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Color {
    start: String,
    reset: &'static str,
}

impl Color {
    /// Job `seq`'s colour.
    pub(crate) fn of_job(seq: u64) -> Color {
        let palette = palette();
        let (bg, fg) = palette[(seq % palette.len() as u64) as usize];
        Color::of(bg, fg)
    }

    /// A failed job's (`--colorfailed`).
    pub(crate) fn failed() -> Color {
        Color::of(196, 231)
    }

    /// `--colorfailed`'s for a job that did not fail: no colour, but the
    /// lines are written as coloured ones are (a last line gets its
    /// newline), as in GNU parallel.
    pub(crate) fn none() -> Color {
        Color {
            start: String::new(),
            reset: "",
        }
    }

    fn of(bg: u16, fg: u16) -> Color {
        Color {
            start: format!("\x1b[48;5;{bg:03};38;5;{fg:03}m\x1b[K"),
            reset: "\x1b[m",
        }
    }
}

/// GNU parallel's palette (its `init_color`): readable pairs of a
/// background and black (0) or white (231) text, reordered so that
/// neighbours differ (by index %23 ascending, then %7 descending).
fn palette() -> &'static [(u16, u16)] {
    static PALETTE: std::sync::OnceLock<Vec<(u16, u16)>> = std::sync::OnceLock::new();
    PALETTE.get_or_init(|| {
        let black: [std::ops::RangeInclusive<u16>; 10] = [
            6..=7,
            9..=11,
            13..=15,
            40..=51,
            75..=87,
            113..=123,
            147..=159,
            171..=182,
            185..=231,
            249..=254,
        ];
        let white: [std::ops::RangeInclusive<u16>; 11] = [
            1..=9,
            12..=13,
            16..=45,
            52..=81,
            88..=114,
            124..=149,
            160..=178,
            180..=180,
            182..=184,
            196..=214,
            232..=250,
        ];
        let pairs: Vec<(u16, u16)> = black
            .into_iter()
            .flatten()
            .map(|c| (c, 0))
            .chain(white.into_iter().flatten().map(|c| (c, 231)))
            .collect();
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        // Perl's sort is a stable merge sort, as this one.
        order.sort_by(|a, b| (a % 23).cmp(&(b % 23)).then((b % 7).cmp(&(a % 7))));
        order.into_iter().map(|i| pairs[i]).collect()
    })
}

/// [`emit`], or with `color`, each line as GNU parallel colours it: the
/// colour, the tag and its tab, the line (a carriage return in it ends
/// the colour and starts it again, tag included), the colour's end and
/// a newline, also after a last line that had none.
pub(crate) fn emit_marked(
    out: &mut dyn Write,
    tag: Option<&str>,
    color: Option<&Color>,
    data: &[u8],
) {
    let Some(color) = color else {
        return emit(out, tag, data);
    };
    let mut lead = color.start.as_bytes().to_vec();
    if let Some(tag) = tag {
        lead.extend_from_slice(&crate::raw::bytes(tag));
        lead.push(b'\t');
    }
    let mut text = Vec::with_capacity(data.len() + 32);
    for line in data.split_inclusive(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        text.extend_from_slice(&lead);
        for (i, piece) in line.split(|b| *b == b'\r').enumerate() {
            if i > 0 {
                text.extend_from_slice(color.reset.as_bytes());
                text.push(b'\r');
                text.extend_from_slice(&lead);
            }
            text.extend_from_slice(piece);
        }
        text.extend_from_slice(color.reset.as_bytes());
        text.push(b'\n');
    }
    checked(out.write_all(&text));
}

/// The status remex ends with when its output has no reader: a shell's
/// for a death by SIGPIPE (128 + 13), as GNU parallel's.
pub(crate) const NO_READER: i32 = 141;

/// Looks at the result of a write to remex's stdout or stderr. If the
/// reader went away (`remex run ... | head -1`: EPIPE, as Rust ignores
/// SIGPIPE), the command ends here with [`NO_READER`], as GNU parallel
/// dies of the SIGPIPE: no more jobs start, and the workers, losing their
/// controller, end the running ones. (It used to run every job for no
/// reader.) One line on stderr says so, if stderr still has a reader.
/// Other errors are ignored, as before.
pub(crate) fn checked(written: std::io::Result<()>) {
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            let _ = writeln!(
                std::io::stderr(),
                "remex: the output's reader went away (a closed pipe): no more jobs started"
            );
            std::process::exit(NO_READER);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_get_gnu_parallels_colours() {
        // GNU parallel 20221122's first three jobs (`--color`, no tty).
        assert_eq!(Color::of_job(1).start, "\x1b[48;5;134;38;5;231m\x1b[K");
        assert_eq!(Color::of_job(2).start, "\x1b[48;5;021;38;5;231m\x1b[K");
        assert_eq!(Color::of_job(3).start, "\x1b[48;5;243;38;5;231m\x1b[K");
        // Its palette, as `perl` computes it from GNU's init_color.
        assert_eq!(palette().len(), 307);
        assert_eq!(palette()[0], (185, 0));
        assert_eq!(palette()[4], (149, 0));
        assert_eq!(palette()[100], (28, 231));
        assert_eq!(palette()[306], (166, 231));
        assert_eq!(Color::of_job(307).start, "\x1b[48;5;185;38;5;000m\x1b[K");
    }

    #[test]
    fn a_coloured_line_ends_its_colour_at_each_carriage_return_and_at_its_end() {
        let c = Color::of(1, 231);
        let mut out = Vec::new();
        emit_marked(&mut out, Some("t"), Some(&c), b"x\ry\nz");
        let s = String::from_utf8(out).unwrap();
        let (on, off) = ("\x1b[48;5;001;38;5;231m\x1b[K", "\x1b[m");
        assert_eq!(s, format!("{on}t\tx{off}\r{on}t\ty{off}\n{on}t\tz{off}\n"));
        // Nothing for no output; an empty line is one coloured line.
        let mut out = Vec::new();
        emit_marked(&mut out, None, Some(&c), b"");
        assert!(out.is_empty());
        emit_marked(&mut out, None, Some(&c), b"\n");
        assert_eq!(String::from_utf8(out).unwrap(), format!("{on}{off}\n"));
    }
}
