//! How a job's output reaches remex's own stdout or stderr: as it came,
//! or each line after the job's tag (`--tag`, `--tagstring`); and what a
//! write that finds no reader does ([`checked`]).

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
