//! How a job's output reaches remex's own stdout or stderr: as it came,
//! or each line after the job's tag (`--tag`, `--tagstring`).

use std::io::Write;

/// Writes `data` to `out`, each line prefixed with `tag` if there is one.
pub(crate) fn emit(out: &mut dyn Write, tag: Option<&str>, data: &[u8]) {
    let Some(tag) = tag else {
        let _ = out.write_all(data);
        return;
    };
    for line in data.split_inclusive(|b| *b == b'\n') {
        let _ = out.write_all(tag.as_bytes());
        let _ = out.write_all(b"\t");
        let _ = out.write_all(line);
    }
    if !data.is_empty() && !data.ends_with(b"\n") {
        let _ = out.write_all(b"\n");
    }
}
