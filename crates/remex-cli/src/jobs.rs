//! Jobs from inputs, as GNU parallel makes them: input sources (`:::`
//! arguments, `::::` files, `-a FILE`, or stdin), combined as a cartesian
//! product (the last source varies fastest), and a command template whose
//! replacement strings take each job's arguments, shell-quoted.
//!
//! Replacement strings: `{}` (the arguments, space-separated), `{.}` (no
//! extension), `{/}` (basename), `{//}` (dirname), `{/.}` (basename, no
//! extension), `{#}` (the job's number, from 1), and `{N}`, `{N.}`,
//! `{N/}`, `{N//}`, `{N/.}` for the Nth source's argument, `{##}` the
//! number of jobs. A template with none of them (`{#}` counts) gets ` {}`
//! appended, as GNU parallel's; an empty one runs each input as a command.
//! Other braces stay as they are.

use std::io::BufRead;

/// What a replacement string takes from an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Whole,
    NoExt,
    Base,
    Dir,
    BaseNoExt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// `Some(n)`: the nth source's argument (from 1); `None`: all of them.
    Arg(Option<usize>, Part),
    Seq,
    /// `{##}`: the number of jobs.
    Total,
    /// The arguments as they are, unquoted: a job's input is its command
    /// (an empty template).
    Raw,
}

/// A command line with replacement strings.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

fn parse_repl(inner: &str) -> Option<Piece> {
    if inner == "#" {
        return Some(Piece::Seq);
    }
    if inner == "##" {
        return Some(Piece::Total);
    }
    let digits = inner.bytes().take_while(u8::is_ascii_digit).count();
    let (num, rest) = inner.split_at(digits);
    let pos = if num.is_empty() {
        None
    } else {
        Some(num.parse::<usize>().ok().filter(|n| *n >= 1)?)
    };
    let part = match rest {
        "" => Part::Whole,
        "." => Part::NoExt,
        "/" => Part::Base,
        "//" => Part::Dir,
        "/." => Part::BaseNoExt,
        _ => return None,
    };
    Some(Piece::Arg(pos, part))
}

impl Template {
    /// Parses `cmd`; appends ` {}` when it has no replacement string; an
    /// empty `cmd` makes each job's input its command.
    pub(crate) fn parse(cmd: &str) -> Template {
        if cmd.trim().is_empty() {
            return Template {
                pieces: vec![Piece::Raw],
            };
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = cmd;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            match after
                .find('}')
                .and_then(|close| Some((close, parse_repl(&after[..close])?)))
            {
                Some((close, piece)) => {
                    text.push_str(&rest[..open]);
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(piece);
                    rest = &after[close + 1..];
                }
                None => {
                    text.push_str(&rest[..=open]);
                    rest = after;
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        if pieces.iter().all(|p| matches!(p, Piece::Text(_))) {
            pieces.push(Piece::Text(" ".into()));
            pieces.push(Piece::Arg(None, Part::Whole));
        }
        Template { pieces }
    }

    /// Whether the template says the number of jobs (`{##}`): then they
    /// are counted before the first starts, stdin read whole.
    pub(crate) fn needs_total(&self) -> bool {
        self.pieces.contains(&Piece::Total)
    }

    /// The command line of job `seq` (from 1) of `total` with arguments
    /// `args`.
    pub(crate) fn render(&self, seq: u64, total: Option<u64>, args: &[String]) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Seq => out.push_str(&seq.to_string()),
                Piece::Total => out.push_str(&total.map(|t| t.to_string()).unwrap_or_default()),
                Piece::Raw => out.push_str(&args.join(" ")),
                Piece::Arg(None, part) => {
                    let words: Vec<String> = args.iter().map(|a| quote(&apply(*part, a))).collect();
                    out.push_str(&words.join(" "));
                }
                Piece::Arg(Some(n), part) => {
                    let a = args.get(n - 1).map(String::as_str).unwrap_or("");
                    out.push_str(&quote(&apply(*part, a)));
                }
            }
        }
        out
    }
}

fn apply(part: Part, a: &str) -> String {
    let base = |a: &str| a.rsplit_once('/').map_or(a, |(_, b)| b).to_string();
    let no_ext = |a: &str| {
        let start = a.rfind('/').map_or(0, |i| i + 1);
        match a[start..].rfind('.') {
            Some(dot) if dot > 0 => a[..start + dot].to_string(),
            _ => a.to_string(),
        }
    };
    match part {
        Part::Whole => a.to_string(),
        Part::NoExt => no_ext(a),
        Part::Base => base(a),
        Part::Dir => match a.rsplit_once('/') {
            Some(("", _)) => "/".into(),
            Some((d, _)) => d.to_string(),
            None => ".".into(),
        },
        Part::BaseNoExt => no_ext(&base(a)),
    }
}

/// `a` as one shell word.
pub(crate) fn quote(a: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./=:,+@%^".contains(c);
    if !a.is_empty() && a.chars().all(plain) {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// Where a source's arguments come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// Given on the command line after `:::`.
    Args(Vec<String>),
    /// Lines of a file (`-` is stdin), after `::::` or `-a`.
    File(String),
}

/// The command words and sources of `remex run COMMAND... ::: A... :::: F...`.
pub(crate) fn split_command(words: &[String]) -> (Vec<String>, Vec<Source>) {
    let mut command = Vec::new();
    let mut sources = Vec::new();
    let mut current: Option<(bool, Vec<String>)> = None;
    let flush = |c: Option<(bool, Vec<String>)>, sources: &mut Vec<Source>| match c {
        Some((false, args)) => sources.push(Source::Args(args)),
        Some((true, files)) => sources.extend(files.into_iter().map(Source::File)),
        None => {}
    };
    for w in words {
        match w.as_str() {
            ":::" | "::::" => {
                flush(current.take(), &mut sources);
                current = Some((w == "::::", Vec::new()));
            }
            _ => match current.as_mut() {
                Some((_, v)) => v.push(w.clone()),
                None => command.push(w.clone()),
            },
        }
    }
    flush(current, &mut sources);
    (command, sources)
}

/// Lines of `path` (`-`: stdin), without their line ends.
fn read_lines(path: &str) -> Result<Box<dyn Iterator<Item = Result<String, String>>>, String> {
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let path = path.to_string();
    Ok(Box::new(reader.lines().map(move |l| {
        l.map(|mut s| {
            if s.ends_with('\r') {
                s.pop();
            }
            s
        })
        .map_err(|e| format!("reading {path}: {e}"))
    })))
}

/// The jobs' argument lists, in order. Stdin as the first source is read
/// as jobs are made (it may be endless); files and the other sources are
/// read first, whole (so the number of jobs is known).
pub(crate) struct Inputs {
    first: Box<dyn Iterator<Item = Result<String, String>>>,
    rest: Vec<Vec<String>>,
    /// The first source's current argument and the odometer over `rest`.
    current: Option<(String, Vec<usize>)>,
    /// The number of jobs, when the first source is not stdin.
    pub(crate) total: Option<u64>,
}

impl Inputs {
    /// Opens `sources`; none means stdin. With `count`, stdin as the
    /// first source is read whole too, so that the number of jobs is known.
    pub(crate) fn open(sources: Vec<Source>, count: bool) -> Result<Inputs, String> {
        let mut sources = sources;
        if sources.is_empty() {
            sources.push(Source::File("-".into()));
        }
        let mut rest = Vec::new();
        for s in sources.iter().skip(1) {
            rest.push(match s {
                Source::Args(a) => a.clone(),
                Source::File(p) => read_lines(p)?.collect::<Result<Vec<_>, _>>()?,
            });
        }
        let product: u64 = rest.iter().map(|r| r.len() as u64).product();
        let (first, total): (Box<dyn Iterator<Item = Result<String, String>>>, _) =
            match &sources[0] {
                Source::Args(a) => (
                    Box::new(a.clone().into_iter().map(Ok)),
                    Some(a.len() as u64 * product),
                ),
                Source::File(p) if p != "-" || count => {
                    let lines = read_lines(p)?.collect::<Result<Vec<_>, _>>()?;
                    let n = lines.len() as u64;
                    (Box::new(lines.into_iter().map(Ok)), Some(n * product))
                }
                Source::File(p) => (read_lines(p)?, None),
            };
        Ok(Inputs {
            first,
            rest,
            current: None,
            total,
        })
    }
}

impl Iterator for Inputs {
    type Item = Result<Vec<String>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.iter().any(Vec::is_empty) {
            return None;
        }
        loop {
            if let Some((head, odo)) = self.current.as_mut() {
                let mut args = vec![head.clone()];
                args.extend(odo.iter().zip(&self.rest).map(|(i, r)| r[*i].clone()));
                // Advance: the last source fastest.
                let mut k = odo.len();
                loop {
                    if k == 0 {
                        self.current = None;
                        break;
                    }
                    k -= 1;
                    odo[k] += 1;
                    if odo[k] < self.rest[k].len() {
                        break;
                    }
                    odo[k] = 0;
                }
                return Some(Ok(args));
            }
            match self.first.next()? {
                Ok(a) => self.current = Some((a, vec![0; self.rest.len()])),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn replacement_strings_take_parts_of_the_arguments_quoted() {
        let t = Template::parse("gzip -9 {} > {.}.gz; echo {/} {//} {/.} {#}");
        assert_eq!(
            t.render(7, None, &s(&["dir/my file.log"])),
            "gzip -9 'dir/my file.log' > 'dir/my file'.gz; echo 'my file.log' dir 'my file' 7"
        );
        assert_eq!(
            t.render(1, None, &s(&["a.b/c"])),
            "gzip -9 a.b/c > a.b/c.gz; echo c a.b c 1"
        );
        assert_eq!(
            t.render(1, None, &s(&["/x"])),
            "gzip -9 /x > /x.gz; echo x / x 1"
        );
        assert_eq!(
            t.render(1, None, &s(&[".bashrc"])),
            "gzip -9 .bashrc > .bashrc.gz; echo .bashrc . .bashrc 1"
        );
    }

    #[test]
    fn positional_replacements_and_the_appended_default() {
        let t = Template::parse("cp {1} {2/}");
        assert_eq!(t.render(1, None, &s(&["a", "x/b"])), "cp a b");
        let t = Template::parse("echo");
        assert_eq!(t.render(1, None, &s(&["it's", "b"])), r"echo 'it'\''s' b");
        // Braces that are not replacement strings stay.
        let t = Template::parse("echo ${HOME} {a,b} {} {x");
        assert_eq!(t.render(1, None, &s(&["1"])), "echo ${HOME} {a,b} 1 {x");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn any_replacement_string_keeps_the_input_off_the_end_as_in_gnu_parallel() {
        // `parallel echo {#} ::: A B C` prints 1, 2, 3 (no input appended).
        let t = Template::parse("echo {#}");
        assert_eq!(t.render(2, None, &s(&["B"])), "echo 2");
        let t = Template::parse("echo {#} of {##}");
        assert!(t.needs_total());
        assert_eq!(t.render(2, Some(3), &s(&["B"])), "echo 2 of 3");
        // No command: each input is the command, as written.
        let t = Template::parse("");
        assert_eq!(
            t.render(1, None, &s(&["echo 'a b' | wc -w"])),
            "echo 'a b' | wc -w"
        );
    }

    #[test]
    fn sources_split_on_markers_and_combine_as_a_product() {
        let (cmd, sources) =
            split_command(&s(&["echo", "{1}{2}", ":::", "a", "b", ":::", "1", "2"]));
        assert_eq!(cmd, s(&["echo", "{1}{2}"]));
        let inputs = Inputs::open(sources, false).unwrap();
        assert_eq!(inputs.total, Some(4));
        let jobs: Vec<_> = inputs.map(Result::unwrap).collect();
        assert_eq!(
            jobs,
            vec![
                s(&["a", "1"]),
                s(&["a", "2"]),
                s(&["b", "1"]),
                s(&["b", "2"])
            ]
        );
        // An empty source makes no jobs.
        let (_, sources) = split_command(&s(&["echo", ":::", "a", ":::"]));
        assert_eq!(Inputs::open(sources, false).unwrap().count(), 0);
    }

    #[test]
    fn file_sources_are_read_by_line() {
        let dir = std::env::temp_dir().join(format!("remex-cli-jobs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("in.txt");
        std::fs::write(&f, "x\r\ny z\n").unwrap();
        let (_, sources) = split_command(&s(&["wc", "::::", f.to_str().unwrap(), ":::", "1"]));
        let jobs: Vec<_> = Inputs::open(sources, false)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(jobs, vec![s(&["x", "1"]), s(&["y z", "1"])]);
        let e = Inputs::open(vec![Source::File("/nonexistent/in".into())], false)
            .err()
            .unwrap();
        assert!(e.contains("cannot read /nonexistent/in"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
