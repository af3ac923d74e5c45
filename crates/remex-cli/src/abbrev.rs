//! Abbreviated long options of `remex run`, as GNU parallel takes them.
//!
//! GNU parallel reads its options with Perl's Getopt::Long, which takes
//! any unambiguous start of a long name: `--dry` is `--dry-run`, `--wi`
//! is `--will-cite`, `--k` is `-k`, and `--jo` is refused as ambiguous
//! (`--joblog`, `--jobs`). `remex run` resolves a start the same way,
//! among GNU parallel's options (one line of `parallel_options.txt` is
//! one option with its names) and its own (`--tx`, `--no-bar`, ...):
//!
//! - an exact name always wins (`--res` is GNU parallel's own spelling of
//!   `--results`, not a start of `--resume`);
//! - a start of the names of one option becomes that option's name;
//! - a start of several options' names is a usage error that lists them,
//!   as GNU parallel's ("option --ta is ambiguous (--tag, --tag-string,
//!   --tagstring)");
//! - anything else is left to the parser (an unknown option, or an
//!   option of GNU parallel that remex does not offer, named as such).
//!
//! Only options before the command are looked at: the walk stops at the
//! first word that is not an option (the command, or `:::`) and at `--`.

use std::ffi::OsString;

/// GNU parallel's options: each one's names, without their dashes.
fn gnu_options() -> &'static [Vec<&'static str>] {
    static OPTIONS: std::sync::OnceLock<Vec<Vec<&'static str>>> = std::sync::OnceLock::new();
    OPTIONS.get_or_init(|| {
        include_str!("parallel_options.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                l.split_whitespace()
                    .map(|n| n.trim_start_matches('-').trim_end_matches('='))
                    .collect()
            })
            .collect()
    })
}

/// `cmd`'s option whose long name or alias is `name`.
fn by_long<'a>(cmd: &'a clap::Command, name: &str) -> Option<&'a clap::Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
    })
}

/// `cmd`'s option whose one-letter name or alias is `c`.
fn by_short(cmd: &clap::Command, c: char) -> Option<&clap::Arg> {
    cmd.get_arguments().find(|a| {
        a.get_short() == Some(c) || a.get_all_short_aliases().is_some_and(|al| al.contains(&c))
    })
}

/// What a `--name` stands for among `cmd`'s options.
enum Meant<'a> {
    /// One of `cmd`'s options, by the name to write (`--name`, or `-c`
    /// for a one-letter name).
    Ours(&'a clap::Arg, String),
    /// A name of GNU parallel's alone: the parser names it.
    Theirs(String),
    /// Nothing known starts so.
    Unknown,
}

/// One option a start may name: a line of GNU parallel's table (its
/// aliases are one option), or one of remex's own by its id.
#[derive(PartialEq)]
enum Named<'a> {
    Gnu(&'a [&'static str]),
    Remex(&'a str),
}

/// `name` (without dashes) among `cmd`'s options and GNU parallel's.
fn resolve<'a>(cmd: &'a clap::Command, name: &str) -> Result<Meant<'a>, String> {
    if name.is_empty() {
        // `--=x`: no name at all, for the parser to refuse.
        return Ok(Meant::Unknown);
    }
    // Exact names first.
    if let Some(a) = by_long(cmd, name) {
        return Ok(Meant::Ours(a, format!("--{name}")));
    }
    let mut letters = name.chars();
    if let (Some(c), None) = (letters.next(), letters.next()) {
        if let Some(a) = by_short(cmd, c) {
            return Ok(Meant::Ours(a, format!("-{name}")));
        }
    }
    let gnu = gnu_options();
    if gnu.iter().flatten().any(|n| *n == name) {
        let dashes = if name.chars().count() == 1 { "-" } else { "--" };
        return Ok(Meant::Theirs(format!("{dashes}{name}")));
    }
    // A start: the options whose names begin with it. remex's own names
    // that GNU parallel lacks count by the option they name.
    let mut hits: Vec<&str> = Vec::new();
    let mut options: Vec<Named<'_>> = Vec::new();
    let mut hit = |n: &'a str, o: Named<'a>| {
        if !hits.contains(&n) {
            hits.push(n);
            if !options.contains(&o) {
                options.push(o);
            }
        }
    };
    for line in gnu {
        for n in line.iter().filter(|n| n.len() > 1 && n.starts_with(name)) {
            hit(n, Named::Gnu(line));
        }
    }
    for a in cmd.get_arguments() {
        let names = a
            .get_long()
            .into_iter()
            .chain(a.get_all_aliases().unwrap_or_default());
        for n in names.filter(|n| n.starts_with(name)) {
            hit(n, Named::Remex(a.get_id().as_str()));
        }
    }
    match options.as_slice() {
        [] => Ok(Meant::Unknown),
        [one] => {
            // The option's name that remex takes, if any of its names is.
            let line: &[&str] = match one {
                Named::Gnu(line) => line,
                Named::Remex(_) => &[],
            };
            let taken = hits
                .iter()
                .chain(line)
                .find_map(|n| by_long(cmd, n).map(|a| (a, *n)));
            Ok(match taken {
                Some((a, n)) => Meant::Ours(a, format!("--{n}")),
                None => Meant::Theirs(format!("--{}", hits[0])),
            })
        }
        _ => {
            hits.sort_unstable();
            let list: Vec<String> = hits.iter().map(|n| format!("--{n}")).collect();
            Err(format!(
                "option --{name} is ambiguous ({}): give more of its name",
                list.join(", ")
            ))
        }
    }
}

/// Whether `a` takes a value (always given: remex has no option with an
/// optional value).
fn takes_value(a: &clap::Arg) -> bool {
    a.get_action().takes_values()
}

/// Whether `a` may be given without its value (`-l`, `--max-lines`).
fn optional_value(a: &clap::Arg) -> bool {
    takes_value(a) && a.get_num_args().is_some_and(|n| n.min_values() == 0)
}

/// The value `a` has when given without one (clap keeps it private): the
/// one option whose value may be left out is -l/--max-lines.
fn default_of(a: &clap::Arg) -> &'static str {
    debug_assert_eq!(a.get_id(), "max_lines");
    MAX_LINES_LEFT_OUT
}

/// `-l`'s value when none follows it (GNU parallel's 1).
pub(crate) const MAX_LINES_LEFT_OUT: &str = "1";

/// Whether `t` is a number (an optional value is taken only then).
fn numeric(t: Option<&OsString>) -> bool {
    t.and_then(|t| t.to_str())
        .is_some_and(|t| t.parse::<f64>().is_ok())
}

/// Where the options of `remex run` begin in `args` (after the program
/// name and options before the subcommand), if the subcommand is `run`.
fn run_options(top: &clap::Command, args: &[OsString]) -> Option<usize> {
    let mut i = 1;
    while let Some(t) = args.get(i) {
        let t = t.to_str()?;
        if t == "--" {
            return None;
        }
        if let Some(long) = t.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            let a = top.get_arguments().find(|a| a.get_long() == Some(name))?;
            i += if takes_value(a) && !value { 2 } else { 1 };
        } else if t.starts_with('-') {
            i += 1;
        } else {
            return (t == "run").then_some(i + 1);
        }
    }
    None
}

/// `args` (the program name first) with the abbreviated long options of
/// `remex run` written out; an ambiguous one is an error that names its
/// options. `top` is the built command (`clap::Command::build`).
pub(crate) fn expand(
    top: &clap::Command,
    mut args: Vec<OsString>,
) -> Result<Vec<OsString>, String> {
    let Some(mut i) = run_options(top, &args) else {
        return Ok(args);
    };
    let Some(run) = top.find_subcommand("run") else {
        return Ok(args);
    };
    while let Some(t) = args.get(i).and_then(|t| t.to_str()).map(str::to_string) {
        if t == "--" || t == "-" || !t.starts_with('-') {
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            match resolve(run, name)? {
                // --max-lines without a number after it: 1 (GNU parallel
                // takes its value only when it is a number).
                Meant::Ours(a, written)
                    if value.is_none() && optional_value(a) && !numeric(args.get(i + 1)) =>
                {
                    args[i] = OsString::from(format!("{written}={}", default_of(a)));
                    i += 1;
                }
                Meant::Ours(a, written) => {
                    let mut new = vec![OsString::from(&written)];
                    if let Some(v) = value {
                        if written.starts_with("--") {
                            new[0] = OsString::from(format!("{written}={v}"));
                        } else {
                            new.push(OsString::from(v));
                        }
                    }
                    let step = new.len();
                    args.splice(i..=i, new);
                    i += step;
                    if takes_value(a) && value.is_none() {
                        i += 1;
                    }
                }
                Meant::Theirs(written) => {
                    // The parser refuses it, naming GNU parallel's option.
                    let v = value.map(|v| format!("={v}")).unwrap_or_default();
                    args[i] = OsString::from(format!("{written}{v}"));
                    break;
                }
                Meant::Unknown => break,
            }
            continue;
        }
        // A cluster of one-letter options: `-k`, `-kj2`, `-kj 2`.
        let mut next = i + 1;
        for (at, c) in t.char_indices().skip(1) {
            let Some(a) = by_short(run, c) else {
                // Unknown: the parser says so.
                return Ok(args);
            };
            if takes_value(a) {
                if at + c.len_utf8() == t.len() {
                    if optional_value(a) && !numeric(args.get(i + 1)) {
                        // `-l echo`: -l 1.
                        args[i] = OsString::from(format!("{t}{}", default_of(a)));
                    } else {
                        next += 1;
                    }
                }
                break;
            }
        }
        i = next;
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(args: &[&str]) -> Result<Vec<String>, String> {
        let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
        cmd.build();
        let args = std::iter::once("remex")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        Ok(expand(&cmd, args)?
            .into_iter()
            .skip(1)
            .map(|a| a.into_string().unwrap())
            .collect())
    }

    #[test]
    fn a_start_of_one_options_names_is_that_option() {
        let e = |a: &[&str]| expanded(a).unwrap();
        assert_eq!(e(&["run", "--dry", "echo"]), ["run", "--dry-run", "echo"]);
        assert_eq!(
            e(&["run", "--keep-o", "echo"]),
            ["run", "--keep-order", "echo"]
        );
        assert_eq!(e(&["run", "--wi", "echo"]), ["run", "--will-cite", "echo"]);
        // A value, separate or after =, is kept and not looked at.
        assert_eq!(
            e(&["run", "--joblo", "--dry", "--tagstr={}", "echo"]),
            ["run", "--joblog", "--dry", "--tagstring={}", "echo"]
        );
        // GNU parallel's `--k` and `--j=2` are -k and -j 2.
        assert_eq!(
            e(&["run", "--k", "--j=2", "echo"]),
            ["run", "-k", "-j", "2", "echo"]
        );
        // Exact names win over longer ones: --res is --results' own alias.
        assert_eq!(
            e(&["run", "--res", "d", "echo"]),
            ["run", "--res", "d", "echo"]
        );
        // Options before `run`, values of one-letter options, clusters.
        assert_eq!(
            e(&[
                "--log-format",
                "json",
                "run",
                "-j",
                "2",
                "-kj3",
                "--dry",
                "echo"
            ]),
            [
                "--log-format",
                "json",
                "run",
                "-j",
                "2",
                "-kj3",
                "--dry-run",
                "echo"
            ]
        );
        // remex's own options too.
        assert_eq!(e(&["run", "--no-b", "echo"]), ["run", "--no-bar", "echo"]);
        // An option of GNU parallel's alone is written out, for the
        // parser to name.
        assert_eq!(
            e(&["run", "--pipepa", "echo"]),
            ["run", "--pipepart", "echo"]
        );
    }

    #[test]
    fn the_command_and_what_follows_it_are_never_touched() {
        let e = |a: &[&str]| expanded(a).unwrap();
        assert_eq!(e(&["run", "echo", "--dry"]), ["run", "echo", "--dry"]);
        assert_eq!(e(&["run", "--", "--dry"]), ["run", "--", "--dry"]);
        assert_eq!(e(&["run", "-j", "--dry"]), ["run", "-j", "--dry"]);
        assert_eq!(e(&["run", ":::", "--dry"]), ["run", ":::", "--dry"]);
        assert_eq!(e(&["exec", "--dry"]), ["exec", "--dry"]);
        // After an unknown option nothing more is looked at.
        assert_eq!(e(&["run", "--zzz", "--dry"]), ["run", "--zzz", "--dry"]);
        assert_eq!(e(&["run", "--=x", "--dry"]), ["run", "--=x", "--dry"]);
    }

    #[test]
    fn a_start_of_several_options_is_refused_naming_them() {
        let e = expanded(&["run", "--jo", "2", "echo"]).unwrap_err();
        assert!(e.contains("--jo is ambiguous (--joblog, --jobs)"), "{e}");
        let e = expanded(&["run", "--ta", "echo"]).unwrap_err();
        assert!(e.contains("(--tag, --tag-string, --tagstring)"), "{e}");
    }
}
