//! `--results DIR`, as GNU parallel's: each job's stdout, stderr and
//! number in files under DIR, in a directory named after its arguments
//! (`DIR/1/A/2/C/stdout`: source number, or the `--header` name, then
//! the value, for each argument; in a value `\` `\t` `\0` `/` are
//! written `\\` `\t` `\0` `\_`). The output is not printed (GNU
//! parallel 20221122 prints none either).
//!
//! `--results FILE.csv`, `.tsv` or `.json` (any case; `-.csv` ... for
//! stdout): one record per job in that file instead, as GNU parallel
//! writes it (its `print_csv`/`print_json`): Seq, Host, Starttime,
//! JobRuntime, Send, Receive, Exitval, Signal, Command, the arguments
//! (V1..Vn, or the `--header` names), Stdout, Stderr; a CSV/TSV field
//! is quoted when it holds a quote (doubled), white space, the separator
//! or a NUL; JSON is one object per line.
//!
//! `--results NAME` holding a replacement string (`out/{1}`, `my_{}/`):
//! NAME is filled in per job, as GNU parallel does; the job's stdout
//! goes to that file, its stderr to `.err` and its number to `.seq`
//! beside it, or, when the name ends in `/`, to `stdout`, `stderr` and
//! `seq` in that directory (directories made as needed; the arguments
//! go in as they are).

use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::joblog::{Entry, HEADER};
use crate::jobs::{At, Template};

/// Where the results go.
pub(crate) struct Results {
    to: To,
    /// Argument position (from 1) -> its name (`--header`).
    names: Vec<(String, usize)>,
}

/// Where a job's files go.
enum Files {
    /// `seq`, `stdout` and `stderr` in this directory.
    In(PathBuf),
    /// Stdout in this file, stderr and the number beside it (`.err`,
    /// `.seq`).
    Beside(PathBuf),
}

enum To {
    Dir(PathBuf),
    /// A name with replacement strings, filled in per job.
    Named(Template),
    /// One record per job; `None` is stdout.
    Table {
        form: Form,
        file: Option<(std::fs::File, PathBuf)>,
        header_written: Cell<bool>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Form {
    /// CSV or TSV, with this separator.
    Separated(u8),
    Json,
}

/// Whether `--results path` writes records into one file (`.csv`,
/// `.tsv`, `.json`) rather than files under a directory.
pub(crate) fn is_table(path: &Path) -> bool {
    form_of(path).is_some()
}

/// The record form a `--results` name asks for, by its end.
fn form_of(path: &Path) -> Option<Form> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".csv") {
        Some(Form::Separated(b','))
    } else if name.ends_with(".tsv") {
        Some(Form::Separated(b'\t'))
    } else if name.ends_with(".json") {
        Some(Form::Json)
    } else {
        None
    }
}

/// One CSV/TSV field, quoted as GNU parallel's `combine_ref` quotes it.
fn field(out: &mut Vec<u8>, v: &[u8], sep: u8) {
    let quoted = v.iter().any(|&b| {
        b == b'"' || b == sep || b == 0 || matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
    });
    if !quoted {
        out.extend_from_slice(v);
        return;
    }
    out.push(b'"');
    for &b in v {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// A JSON string's inside, as GNU parallel's `jsonquote` writes it.
fn json(out: &mut Vec<u8>, v: &[u8]) {
    for &b in v {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            0..=31 => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
}

/// A value as one directory name.
fn escaped(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('\t', r"\t")
        .replace('\0', r"\0")
        .replace('/', r"\_")
}

/// One CSV/TSV line of `fields`.
fn row(rec: &mut Vec<u8>, sep: u8, fields: &[&[u8]]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            rec.push(sep);
        }
        field(rec, f, sep);
    }
    rec.push(b'\n');
}

/// A job's CSV/TSV line.
fn separated(
    rec: &mut Vec<u8>,
    sep: u8,
    job: &Entry,
    args: &[String],
    stdout: &[u8],
    stderr: &[u8],
) {
    let figures = job.figures();
    let mut fields: Vec<&[u8]> = figures.iter().map(|s| s.as_bytes()).collect();
    fields.push(job.command.as_bytes());
    let args: Vec<_> = args.iter().map(|a| crate::raw::bytes(a)).collect();
    fields.extend(args.iter().map(|a| &**a));
    fields.extend([stdout, stderr]);
    row(rec, sep, &fields);
}

/// A job's JSON line, as GNU parallel's `print_json` writes it.
fn json_record(rec: &mut Vec<u8>, job: &Entry, args: &[String], stdout: &[u8], stderr: &[u8]) {
    rec.extend_from_slice(format!("{{ \"Seq\": {}, \"Host\": \"", job.seq).as_bytes());
    json(rec, job.host.as_bytes());
    rec.extend_from_slice(
        format!(
            "\", \"Starttime\": {:.3}, \"JobRuntime\": {:.3}, \"Send\": 0, \"Receive\": {}, \"Exitval\": {}, \"Signal\": {}, \"Command\": \"",
            job.start, job.runtime, job.received, job.exitval, job.signal
        )
        .as_bytes(),
    );
    json(rec, job.command.as_bytes());
    rec.extend_from_slice(b"\", \"V\": [ ");
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            rec.push(b',');
        }
        rec.push(b'"');
        json(rec, &crate::raw::bytes(a));
        rec.push(b'"');
    }
    rec.extend_from_slice(b" ], \"Stdout\": \"");
    json(rec, stdout);
    rec.extend_from_slice(b"\", \"Stderr\": \"");
    json(rec, stderr);
    rec.extend_from_slice(b"\" }\n");
}

impl Results {
    fn new(dir: &Path, names: &[(String, usize)]) -> Results {
        Results {
            to: To::Dir(dir.to_path_buf()),
            names: names.to_vec(),
        }
    }

    /// Files under `path`, made now if missing, or the record file
    /// `path` (`.csv`, `.tsv`, `.json`), made now: one that cannot be
    /// made is an error before any job runs (GNU parallel stops there
    /// too).
    pub(crate) fn create(
        path: &Path,
        spelling: &crate::jobs::Spelling<'_>,
    ) -> Result<Results, String> {
        let names = spelling.names;
        let Some(form) = form_of(path) else {
            if let Some(text) = path.to_str() {
                let named = Template::parse_tag(text, spelling);
                if !named.is_text() {
                    return Ok(Results {
                        to: To::Named(named),
                        names: names.to_vec(),
                    });
                }
            }
            std::fs::create_dir_all(path)
                .map_err(|e| format!("--results: cannot make {}: {e}", path.display()))?;
            return Ok(Results::new(path, names));
        };
        let stdout = matches!(path.to_str(), Some(p) if p.len() <= 5 && p.starts_with("-."));
        let file = if stdout {
            None
        } else {
            let f = std::fs::File::create(path)
                .map_err(|e| format!("--results: cannot make {}: {e}", path.display()))?;
            Some((f, path.to_path_buf()))
        };
        Ok(Results {
            to: To::Table {
                form,
                file,
                header_written: Cell::new(false),
            },
            names: names.to_vec(),
        })
    }

    /// Whether `--results DIR` holds the output of a job with arguments
    /// `args` (its `stdout` file: `--resume` skips it, as GNU parallel).
    pub(crate) fn holds(&self, at: At, args: &[String]) -> bool {
        match &self.to {
            To::Dir(dir) => Files::In(self.dir_of(dir, args)).there(),
            To::Named(t) => Files::named(t, at, args).there(),
            To::Table { .. } => false,
        }
    }

    /// The directory of a job with arguments `args` (`--results DIR`).
    pub(crate) fn dir_of(&self, dir: &Path, args: &[String]) -> PathBuf {
        let mut d = dir.to_path_buf();
        // GNU parallel's order: by name, numbers first (Perl's `<=>`,
        // then `cmp`); a name as it is, its slashes making directories,
        // but its `..` parts left out (GNU parallel keeps them: a header
        // read from the inputs could then write outside DIR).
        let mut named: Vec<(String, &String)> = args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let name = self
                    .name_of(i + 1)
                    .map_or_else(|| (i + 1).to_string(), String::from);
                (name, a)
            })
            .collect();
        named.sort_by(|(x, _), (y, _)| {
            perl_number(x)
                .total_cmp(&perl_number(y))
                .then_with(|| x.cmp(y))
        });
        for (name, a) in named {
            for part in name
                .split('/')
                .filter(|p| !p.is_empty() && *p != "." && *p != "..")
            {
                d.push(part);
            }
            d.push(crate::raw::path(&escaped(a)));
        }
        d
    }

    /// The `--header` name of argument `pos` (from 1).
    fn name_of(&self, pos: usize) -> Option<&str> {
        // The last: a file's name over its column's, as GNU parallel's
        // (`--header : --results d echo :::: f` writes under d/f/).
        self.names
            .iter()
            .rev()
            .find(|(_, p)| *p == pos)
            .map(|(n, _)| n.as_str())
    }

    /// Writes a job's results: its files (`seq`, `stdout`, `stderr`), or
    /// its record.
    pub(crate) fn write(
        &self,
        job: &Entry,
        at: At,
        args: &[String],
        stdout: &[u8],
        stderr: &[u8],
    ) -> Result<(), String> {
        let (form, file, header_written) = match &self.to {
            To::Dir(dir) => {
                return Files::In(self.dir_of(dir, args)).write(job.seq, stdout, stderr)
            }
            To::Named(t) => return Files::named(t, at, args).write(job.seq, stdout, stderr),
            To::Table {
                form,
                file,
                header_written,
            } => (*form, file, header_written),
        };
        let mut rec = Vec::new();
        match form {
            Form::Separated(sep) => {
                if !header_written.get() {
                    self.header(&mut rec, sep, args.len());
                }
                separated(&mut rec, sep, job, args, stdout, stderr);
            }
            Form::Json => json_record(&mut rec, job, args, stdout, stderr),
        }
        // One write per record, so that a reader sees whole records.
        let written = match file {
            Some((f, _)) => {
                let mut f: &std::fs::File = f;
                f.write_all(&rec)
            }
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(&rec).and_then(|()| out.flush())
            }
        };
        written.map_err(|e| {
            let what = file
                .as_ref()
                .map_or_else(|| "stdout".to_string(), |(_, p)| p.display().to_string());
            format!("--results: cannot write {what}: {e}")
        })?;
        header_written.set(true);
        Ok(())
    }

    /// The first line of a CSV/TSV file: the job log's columns, the
    /// arguments' (V1..Vn, or their `--header` names), Stdout, Stderr.
    fn header(&self, rec: &mut Vec<u8>, sep: u8, args: usize) {
        let vs: Vec<String> = (1..=args)
            .map(|p| {
                self.name_of(p)
                    .map_or_else(|| format!("V{p}"), String::from)
            })
            .collect();
        let mut h: Vec<&[u8]> = HEADER.split('\t').map(str::as_bytes).collect();
        h.extend(vs.iter().map(|v| v.as_bytes()));
        h.extend([b"Stdout".as_slice(), b"Stderr"]);
        row(rec, sep, &h);
    }
}

/// `s` as a Perl number: its leading decimal number (`11a` is 11), else
/// 0.
fn perl_number(s: &str) -> f64 {
    let t = s.trim_start();
    let digits = |from: usize| t[from..].bytes().take_while(u8::is_ascii_digit).count();
    let mut end = usize::from(t.starts_with(['+', '-']));
    let whole = digits(end);
    end += whole;
    if t[end..].starts_with('.') && digits(end + 1) + whole > 0 {
        end += 1 + digits(end + 1);
    } else if whole == 0 {
        return 0.0;
    }
    if t[end..].starts_with(['e', 'E']) {
        let sign = usize::from(t[end + 1..].starts_with(['+', '-']));
        let exp = digits(end + 1 + sign);
        if exp > 0 {
            end += 1 + sign + exp;
        }
    }
    t[..end].parse().unwrap_or(0.0)
}

fn cannot_write(e: std::io::Error, p: &Path) -> String {
    format!("--results: cannot write {}: {e}", p.display())
}

impl Files {
    /// The files `--results NAME` names for the job `at`: NAME filled in,
    /// a directory when it ends in `/`.
    fn named(t: &Template, at: At, args: &[String]) -> Files {
        let name = t.render_plain(at, args);
        if name.ends_with('/') {
            Files::In(crate::raw::path(&name))
        } else {
            Files::Beside(crate::raw::path(&name))
        }
    }

    /// Whether the job's output is there (`--resume` skips it, as GNU
    /// parallel: its stdout file).
    fn there(&self) -> bool {
        match self {
            Files::In(d) => d.join("stdout").exists(),
            Files::Beside(f) => f.is_file(),
        }
    }

    /// Writes job `seq`'s number, stdout and stderr (directories made if
    /// missing).
    fn write(&self, seq: u64, stdout: &[u8], stderr: &[u8]) -> Result<(), String> {
        let seq = seq.to_string();
        let files: [(PathBuf, &[u8]); 3] = match self {
            Files::In(d) => {
                std::fs::create_dir_all(d).map_err(|e| cannot_write(e, d))?;
                [
                    (d.join("seq"), seq.as_bytes()),
                    (d.join("stdout"), stdout),
                    (d.join("stderr"), stderr),
                ]
            }
            Files::Beside(f) => {
                if let Some(d) = f.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(d).map_err(|e| cannot_write(e, d))?;
                }
                let with = |ext: &str| {
                    let mut p = f.as_os_str().to_os_string();
                    p.push(ext);
                    PathBuf::from(p)
                };
                [
                    (with(".seq"), seq.as_bytes()),
                    (f.clone(), stdout),
                    (with(".err"), stderr),
                ]
            }
        };
        for (p, body) in files {
            std::fs::write(&p, body).map_err(|e| cannot_write(e, &p))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_named_as_gnu_parallel_names_them() {
        let out = Path::new("out");
        let r = Results::new(out, &[]);
        assert_eq!(
            r.dir_of(out, &["A".into(), "C".into()]),
            Path::new("out/1/A/2/C")
        );
        assert_eq!(
            r.dir_of(out, &["a/b\\c\td".into()]),
            Path::new(r"out/1/a\_b\\c\td")
        );
        let r = Results::new(out, &[("f1".into(), 1), ("f2".into(), 2)]);
        assert_eq!(
            r.dir_of(out, &["A".into(), "C".into()]),
            Path::new("out/f1/A/f2/C")
        );
        // By name, numbers first; a file's name (last) over the column's;
        // `..` parts of a name left out.
        let r = Results::new(
            out,
            &[
                ("b".into(), 1),
                ("10".into(), 2),
                ("9x".into(), 3),
                ("../../up".into(), 1),
            ],
        );
        assert_eq!(
            r.dir_of(out, &["B".into(), "T".into(), "N".into()]),
            Path::new("out/up/B/9x/N/10/T")
        );
        assert_eq!(perl_number("11a"), 11.0);
        assert_eq!(perl_number(" -.5e1x"), -5.0);
        assert_eq!(perl_number("abc"), 0.0);
    }
}
