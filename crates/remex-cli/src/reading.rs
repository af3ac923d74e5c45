//! How `remex run`'s options say its inputs are read: delimiters,
//! columns and headers ([`reading`]), `--pipe`'s and `--pipepart`'s
//! cutting, `--tee`'s stdin, and what `--pipe` refuses beside it.

use crate::cli::RunArgs;
use crate::jobs::{Reading, Source};
use crate::{slots, workers};

/// How `a` says inputs are read.
pub(crate) fn reading(a: &RunArgs) -> Result<Reading, String> {
    // --header without --colsep splits at tabs (GNU parallel's default).
    let colsep = match (&a.colsep, a.header.as_ref().filter(|_| !a.pipe)) {
        // --pipe's blocks are not cut in columns (--shard's and --bin's
        // key column is found in each record: roundrobin.rs).
        _ if a.pipe => None,
        // --csv: CSV's fields, --colsep the character between them.
        _ if a.csv => None,
        (Some(re), _) => Some(
            regex::Regex::new(re).map_err(|e| format!("--colsep {re:?} is not a regex: {e}"))?,
        ),
        (None, Some(_)) => Some(regex::Regex::new("\t").expect("a tab is a regex")),
        (None, None) => None,
    };
    // Outside --pipe, GNU parallel takes one line of each source as its
    // header whatever --header says (`:`, a number, a regex), but `0`.
    let header = match a.header.as_deref() {
        // --pipe's header is what goes before every block (pipe_of).
        _ if a.pipe => false,
        None | Some("0") => false,
        Some(_) => true,
    };
    let (pipe, part) = pipe_of(a)?;
    Ok(Reading {
        // -d wins over -0, in any order (GNU parallel's).
        delimiter: a.delimiter.or(a.null.then_some(0)),
        eof: a.eof.clone(),
        // GNU parallel trims columns at both ends unless told otherwise.
        // (Not the tab --header implies: GNU parallel sets the trim
        // before it.)
        // (--pipe's blocks pass as they are.)
        trim: match a.trim {
            _ if a.pipe => crate::jobs::Trim::None,
            Some(t) => t,
            // (--csv too, when --colsep is given: GNU parallel's.)
            None if a.colsep.is_some() => crate::jobs::Trim::Both,
            None => crate::jobs::Trim::None,
        },
        colsep,
        csv: match (a.csv, a.colsep.as_deref()) {
            // --pipe's blocks pass as they are, cut at CSV records
            // (pipe_of).
            _ if a.pipe => None,
            (false, _) => None,
            (true, None) => Some(b','),
            (true, Some(c)) if c.len() == 1 => Some(c.as_bytes()[0]),
            (true, Some("\\t")) => Some(b'\t'),
            (true, Some(c)) => {
                return Err(format!(
                    "--csv --colsep {c:?}: CSV's fields are split at one character"
                ))
            }
        },
        header,
        file_names: a.header.is_some() && !a.pipe,
        link: a.link,
        // -N wins over -n, and both over -L/-l, as in GNU parallel.
        // (-l before -L: GNU parallel reads -l first, and -L sets no
        // count once one is set.) With --pipe, -N counts records.
        per_job: match a.pipe {
            true => None,
            false => a.max_args.or(a.max_args_plain).or(a.max_lines).or(a.lines),
        },
        continued: !a.pipe && (a.lines.is_some() || a.max_lines.is_some()),
        // -r skips blank inputs as they are read, in every source.
        skip_blank: a.no_run_if_empty && !a.pipe,
        skip_first_line: a.skip_first_line,
        pipe,
        part,
    })
}

/// `--pipe`'s way of cutting, from `a` (GNU parallel's defaults: records
/// end in a newline; with `--recstart` alone, in nothing).
/// With `--pipepart`, the file's cutting too.
#[allow(clippy::type_complexity)]
fn pipe_of(
    a: &RunArgs,
) -> Result<(Option<crate::pipe::Pipe>, Option<crate::pipepart::Cutting>), String> {
    use crate::jobs::unquote_printf;
    use crate::pipe::Pipe;
    if !a.pipe {
        return match a.group_by {
            Some(_) => {
                Err("--group-by groups the lines --pipe cuts into blocks: give --pipe".into())
            }
            None => Ok((None, None)),
        };
    }
    let recstart = unquote_printf(a.recstart.as_deref().unwrap_or(""));
    let default_end = if a.recstart.is_some() { "" } else { "\n" };
    let recend = unquote_printf(a.recend.as_deref().unwrap_or(default_end));
    // Each as a regular expression (literal text escaped).
    let as_regex = |t: &str| match a.regexp {
        true => t.to_string(),
        false => regex::escape(t),
    };
    let both = format!("{}{}", as_regex(&recend), as_regex(&recstart));
    let group = match &a.group_by {
        Some(val) => Some(crate::groupby::GroupBy::new(val, a.colsep.as_deref())?),
        None => None,
    };
    let header = match a.header.as_deref() {
        // --shard, --bin: the header is a record, or names the column
        // (roundrobin.rs), never before every block (GNU parallel's).
        _ if a.shard.is_some() || a.bin.is_some() => None,
        // --group-by NAME: the first line names the columns, and goes
        // before every block (GNU parallel's), whatever --header says.
        _ if group.as_ref().is_some_and(|g| g.named()) => Some("^(?:.*\n)".to_string()),
        None => None,
        Some(":") => Some("^(?:.*\n)".to_string()),
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            Some(format!("^(?:.*\n){{{n}}}"))
        }
        Some(re) => Some(format!("^(?:{re})")),
    };
    let header = match header {
        Some(h) => Some(
            regex::bytes::Regex::new(&h)
                .map_err(|e| format!("--header {h:?} is not a regular expression: {e}"))?,
        ),
        None => None,
    };
    let part = match a.pipepart {
        true => {
            use crate::pipepart::{Cutting, PartSize};
            let size = match a.block {
                Some(b) if b > 0 => PartSize::Bytes(b as u64),
                per_slot => PartSize::PerSlot {
                    parts: per_slot.map_or(10, |b| b.unsigned_abs()),
                    slots: planned_slots(a)? as u64,
                },
            };
            Some(Cutting::new(
                size,
                &as_regex(&recend),
                &as_regex(&recstart),
                a.regexp,
                header.clone(),
            )?)
        }
        false => None,
    };
    let block = match a.block {
        None => 1 << 20,
        Some(b) if b > 0 => usize::try_from(b).unwrap_or(usize::MAX),
        Some(_) if part.is_some() => 1 << 20,
        Some(b) => {
            return Err(format!(
                "--block {b}: parts per job slot are --pipepart's; --pipe takes a size"
            ))
        }
    };
    Ok((
        Some(Pipe {
            block,
            recend: Pipe::separator(&recend, a.regexp, false)?,
            recstart: match (
                Pipe::separator(&recstart, a.regexp, false)?,
                Pipe::separator(&recstart, a.regexp, true)?,
            ) {
                (Some(s), Some(at)) => Some((s, at)),
                _ => None,
            },
            records: a.max_args.or(a.max_args_plain),
            lines: a.lines.or(a.max_lines),
            header,
            remove_separators: match (a.remove_rec_sep, both.is_empty()) {
                (true, false) => Some(
                    regex::bytes::Regex::new(&both)
                        .map_err(|e| format!("--recend/--recstart: {e}"))?,
                ),
                _ => None,
            },
            group,
            timeout: a.block_timeout,
            csv: a.csv,
        }),
        part,
    ))
}

/// The workers `specs` start (`N*SPEC` counts N; a spec that does not
/// parse, one: it is refused when started).
pub(crate) fn spec_workers(specs: &[String]) -> usize {
    specs
        .iter()
        .map(|s| {
            remex::Spec::parse_many(s).map_or(1, |specs| specs.iter().map(|s| s.workers()).sum())
        })
        .sum()
}

/// `--tee`: all of stdin, at most [`crate::pipe::MOST_BLOCK`] bytes (each
/// job gets it in one message).
pub(crate) fn all_of_stdin() -> Result<bytes::Bytes, String> {
    use std::io::Read;
    let most = crate::pipe::MOST_BLOCK;
    let mut all = Vec::new();
    std::io::stdin()
        .lock()
        .take(most as u64 + 1)
        .read_to_end(&mut all)
        .map_err(|e| format!("--tee: reading stdin: {e}"))?;
    if all.len() > most {
        return Err(format!(
            "--tee: stdin is longer than {most} bytes, which every job would get whole"
        ));
    }
    Ok(all.into())
}

/// The job slots a run will have, as far as they are known before its
/// workers start (for `--pipepart`'s parts per slot): `-j` local workers,
/// or each named worker's `-j` (a `-S` host without a count as one
/// worker, where GNU parallel would ask the host its CPUs).
fn planned_slots(a: &RunArgs) -> Result<usize, String> {
    if workers::none_named(&a.workers) {
        return Ok(slots::local(a.jobs, None));
    }
    let workers = spec_workers(&workers::specs(&a.workers)?);
    Ok((workers * slots::per_worker(a.jobs)?).max(1))
}

/// `--pipe` reads one stream (stdin, or one `-a`/`::::` file) into
/// blocks; what would give jobs arguments instead is refused, naming it.
pub(crate) fn pipe_alone(a: &RunArgs, sources: &[Source]) -> Result<(), String> {
    let files = a.arg_files.len()
        + sources
            .iter()
            .filter(|s| matches!(s, Source::File(..)))
            .count();
    if a.pipepart {
        // Each file's parts in turn (GNU parallel's); stdin is no file.
        let mut names = a
            .arg_files
            .iter()
            .chain(sources.iter().filter_map(|s| match s {
                Source::File(f, _) => Some(f),
                Source::Args(..) => None,
            }));
        let file = match names.clone().any(|f| f == "-") {
            true => None,
            false => names.next(),
        };
        match file.map(String::as_str) {
            None => {
                return Err(
                    "--pipepart cuts a file by seeking in it: give it with -a FILE (--pipe reads stdin)"
                        .into(),
                )
            }
            Some(_) if a.max_args.is_some() || a.lines.is_some() || a.max_lines.is_some() => {
                // GNU parallel's words.
                return Err(
                    "--pipepart is incompatible with --max-replace-args, --max-lines, and -L"
                        .into(),
                );
            }
            Some(_) => {}
        }
    }
    if a.csv {
        // GNU parallel passes whole CSV records with --pipe and quietly
        // drops these (or cuts records inside quotes with -L): refused.
        let not_with = if a.pipepart {
            Some("--pipepart: a record's quotes are known only reading the file from its start (--pipe -a FILE cuts it at CSV records)")
        } else if a.shard.is_some() || a.bin.is_some() || a.group_by.is_some() {
            Some("--shard, --bin or --group-by: their columns are --colsep's")
        } else if a.recend.is_some() || a.recstart.is_some() || a.regexp {
            Some("--recend, --recstart or --regexp: a CSV record ends at a newline outside quotes")
        } else if a.lines.is_some() || a.max_lines.is_some() {
            Some("-L or --max-lines: a CSV record may hold newlines (-N K passes K records)")
        } else {
            None
        };
        if let Some(what) = not_with {
            return Err(format!(
                "--csv with --pipe passes whole CSV records; not with {what}"
            ));
        }
    }
    let clash = if sources.iter().any(|s| matches!(s, Source::Args(..))) {
        Some("::: inputs")
    } else if files > 1 && !a.pipepart {
        Some("more than one input file")
    } else if a.multiple || a.context || a.xargs {
        Some("-m, -X or --xargs")
    } else if a.colsep.is_some() && a.shard.is_none() && a.bin.is_none() && a.group_by.is_none() {
        Some("--colsep")
    } else {
        None
    };
    match clash {
        Some(what) => Err(format!(
            "--pipe gives each job a block of stdin (or of one -a FILE; --pipepart: of each), not {what}"
        )),
        None => Ok(()),
    }
}
