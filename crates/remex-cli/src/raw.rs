//! Inputs that are not UTF-8 (a file name in Latin-1 from an old archive,
//! `find -print0` over any names), carried as text without loss, as GNU
//! parallel passes any bytes.
//!
//! Each byte of an input that is not part of valid UTF-8 becomes one
//! character of a private-use block, U+F780 to U+F7FF for bytes 0x80 to
//! 0xFF (the scheme of "UTF-8b"); a valid character of that block is
//! taken as its three bytes, so that every input comes back as exactly
//! its bytes ([`bytes`]). Where an input goes, it is turned back:
//!
//! - into a job's command line through the shell's quoting: a run of such
//!   bytes is written `"$(printf '\351')"`, so the command stays text and
//!   the job gets the bytes (Bourne shells; for csh and rc the job is
//!   refused, naming the input);
//! - into remex's output (`--tag`, `--tagstring`, `--dryrun`) and into
//!   `--results` (file names, CSV and JSON fields) as the bytes;
//! - nowhere else: a request to a worker that would still hold one (a
//!   `--transferfile` name) is refused, naming the input ([`refuse`]).

use std::borrow::Cow;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// The first character standing for a byte (0x80 stands for U+F780).
const BASE: u32 = 0xF700;

/// Whether `c` stands for a byte.
fn is_raw(c: char) -> bool {
    (0xF780..=0xF7FF).contains(&(c as u32))
}

/// `b` as text: its valid UTF-8 as it is, every other byte (and every
/// byte of a character in U+F780..U+F7FF) as the character standing for
/// it.
pub(crate) fn text(b: Vec<u8>) -> String {
    match String::from_utf8(b) {
        Ok(s) if !s.chars().any(is_raw) => s,
        Ok(s) => escape(s.as_bytes()),
        Err(e) => escape(e.as_bytes()),
    }
}

fn escape(mut b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 8);
    let raw = |out: &mut String, byte: u8| {
        out.push(char::from_u32(BASE + u32::from(byte)).expect("U+F780..U+F7FF are characters"))
    };
    while !b.is_empty() {
        let (valid, rest) = match std::str::from_utf8(b) {
            Ok(s) => (s, &b[b.len()..]),
            Err(e) => {
                let (v, r) = b.split_at(e.valid_up_to());
                (std::str::from_utf8(v).unwrap_or_default(), r)
            }
        };
        for c in valid.chars() {
            if is_raw(c) {
                let mut buf = [0u8; 4];
                for &byte in c.encode_utf8(&mut buf).as_bytes() {
                    raw(&mut out, byte);
                }
            } else {
                out.push(c);
            }
        }
        // The byte that is not UTF-8 (a byte at a time: the next may
        // start a character).
        if let Some((&byte, r)) = rest.split_first() {
            raw(&mut out, byte);
            b = r;
        } else {
            b = rest;
        }
    }
    out
}

/// Whether `s` holds bytes that are not UTF-8.
pub(crate) fn has_raw(s: &str) -> bool {
    s.chars().any(is_raw)
}

/// The bytes `s` stands for.
pub(crate) fn bytes(s: &str) -> Cow<'_, [u8]> {
    if !has_raw(s) {
        return Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if is_raw(c) {
            out.push((c as u32 - BASE) as u8);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Cow::Owned(out)
}

/// The file name `s` stands for.
pub(crate) fn path(s: &str) -> std::path::PathBuf {
    OsString::from_vec(bytes(s).into_owned()).into()
}

/// `s` as one word of a Bourne shell, where `quote` quotes text: each run
/// of bytes that are not UTF-8 as `"$(printf '\ooo...')"` (printf's octal
/// escapes are POSIX; bytes 0x80-0xFF are never a newline, which `$(...)`
/// would drop).
pub(crate) fn quote_sh(s: &str, quote: impl Fn(&str) -> String) -> String {
    if !has_raw(s) {
        return quote(s);
    }
    let mut out = String::new();
    let mut text = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if !is_raw(c) {
            text.push(c);
            continue;
        }
        if !text.is_empty() {
            out.push_str(&quote(&std::mem::take(&mut text)));
        }
        out.push_str("\"$(printf '");
        out.push_str(&octal(c));
        while let Some(r) = chars.next_if(|&r| is_raw(r)) {
            out.push_str(&octal(r));
        }
        out.push_str("')\"");
    }
    if !text.is_empty() {
        out.push_str(&quote(&text));
    }
    out
}

/// `s` for a message: its bytes escaped where it holds bytes that are
/// not UTF-8 (`\xe9`), else as it is.
pub(crate) fn shown(s: &str) -> Cow<'_, str> {
    match has_raw(s) {
        true => Cow::Owned(bytes(s).escape_ascii().to_string()),
        false => Cow::Borrowed(s),
    }
}

/// printf's octal escape for the byte `c` stands for.
fn octal(c: char) -> String {
    format!("\\{:03o}", c as u32 - BASE)
}

/// The error for a job whose request would still carry bytes that are not
/// UTF-8 in `what` (they reach the worker as text only through a Bourne
/// shell's command line).
pub(crate) fn refuse(what: &str, value: &str) -> String {
    format!(
        "{what} holds an input that is not UTF-8 ({}); remex passes such inputs only to the command \
         line of a Bourne shell (sh, bash, zsh, ...): rename or convert them first (iconv)",
        bytes(value).escape_ascii()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_bytes_come_back_as_they_were() {
        let cases: [&[u8]; 7] = [
            b"plain",
            b"caf\xe9",
            b"\xff\xfe\x80",
            "été".as_bytes(),
            // A valid character of the block itself, and one cut short.
            "a\u{F7A9}b".as_bytes(),
            b"\xef\x9e",
            b"\xe2\x82\xacx\xc3",
        ];
        for b in cases {
            let t = text(b.to_vec());
            assert_eq!(&*bytes(&t), b, "{t:?}");
        }
        assert_eq!(text(b"caf\xc3\xa9".to_vec()), "café");
        assert!(!has_raw("café"));
        assert!(has_raw(&text(b"caf\xe9".to_vec())));
    }

    #[test]
    fn bytes_reach_a_bourne_shell_through_printf() {
        let q = |s: &str| format!("'{s}'");
        let t = text(b"caf\xe9 \xff\xfex".to_vec());
        assert_eq!(
            quote_sh(&t, q),
            r#"'caf'"$(printf '\351')"' '"$(printf '\377\376')"'x'"#
        );
        // What sh makes of it is the bytes.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote_sh(&t, q)))
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"caf\xe9 \xff\xfex");
    }
}
