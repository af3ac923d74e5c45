//! Jobs from inputs, as GNU parallel makes them: input sources (`:::`
//! arguments, `::::` files, `-a FILE`, or stdin), combined as a cartesian
//! product (the last source varies fastest) or linked (taken side by
//! side: with `--link` a shorter source wraps around; `:::+` and `::::+`
//! link one source, and the shortest ends the group), and a
//! command template whose replacement strings take each job's arguments,
//! shell-quoted.
//!
//! Replacement strings: `{}` (the arguments, space-separated), `{.}` (no
//! extension), `{/}` (basename), `{//}` (dirname), `{/.}` (basename, no
//! extension), `{#}` (the job's number, from 1), and `{N}`, `{N.}`,
//! `{N/}`, `{N//}`, `{N/.}` for the Nth argument, `{##}` the number of
//! jobs, and with `--header :` a column's name (`{name}`). A template with
//! none of them (`{#}` counts) gets ` {}` appended, as GNU parallel's; an
//! empty one runs each input as a command. Other braces stay as they are.
//!
//! Reading: inputs are lines (`-d C` or `-0` for another delimiter), up to
//! a line equal to `-E STR`, trimmed with `--trim`, split into columns
//! with `--colsep REGEX` (each column an argument: `{1}`, `{2}`...);
//! `-N K` puts K inputs in each job (`-N0`: one, given to none; with
//! `-m`, `-X` or `--xargs`, the jobs they make, given to none).

use std::io::BufRead;

/// What a replacement string takes from an argument.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Whole,
    NoExt,
    Base,
    Dir,
    BaseNoExt,
    /// `--plus`: `{+/}`, the directory (empty when there is none).
    PlusDir,
    /// `--plus`: `{+.}` (everything after the last dot), `{+..}`,
    /// `{+...}` (the last two or three extensions).
    PlusExt(usize),
    /// `--plus`: `{..}`, `{...}`: without the last two or three
    /// extensions (unchanged when it has fewer).
    NoExts(usize),
    /// `--plus`: `{/..}`, `{/...}`: the base name without them.
    BaseNoExts(usize),
    /// `--plus`: bash's expansions (`{:-text}`, `{#re}`, `{/re/text}`...).
    Plus(crate::plus::Dynamic),
    /// `--plus`: `{choose_k}`, `{Nchoose_k}`: the argument as it is; the
    /// job is skipped unless its arguments rise strictly (compared as
    /// bytes, as Perl's `ge`): one job per combination of the inputs.
    ChooseK,
    /// `--plus`: `{uniq}`, `{Nuniq}`: the argument as it is; the job is
    /// skipped when two of its arguments are the same.
    Uniq,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// `Some(n)`: the nth argument (from 1); `None`: all of them.
    Arg(Option<usize>, Part),
    /// `{-n}`: the nth argument from the last (from 1).
    ArgBack(usize, Part),
    Seq,
    /// `{%}`: the job's slot (1 to the number of slots; no two running
    /// jobs share one).
    Slot,
    /// `--plus`'s `{0#}`: the job's number, zero-padded to the width of
    /// the number of jobs.
    SeqPadded,
    /// `--plus`'s `{0%}`: the slot, zero-padded to the width of the
    /// number of slots.
    SlotPadded,
    /// `{##}`: the number of jobs.
    Total,
    /// The arguments as they are, unquoted: a job's input is its command
    /// (an empty template).
    Raw,
    /// `--plus`'s `{host}` and `{sshlogin}`: a variable the job's worker
    /// sets, left to the job's shell (`${NAME}`), as GNU parallel does.
    Var(&'static str),
}

/// The jobs skipped by `--plus`'s `{choose_k}` (unless the arguments
/// rise strictly, compared as bytes as Perl's `ge` compares them) and
/// `{uniq}` (when two arguments are the same).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Skips {
    rising: bool,
    distinct: bool,
}

impl Skips {
    /// Both templates' rules.
    pub(crate) fn and(self, other: Skips) -> Skips {
        Skips {
            rising: self.rising || other.rising,
            distinct: self.distinct || other.distinct,
        }
    }

    /// Whether the job of `args` is skipped.
    pub(crate) fn skip(self, args: &[String]) -> bool {
        let rising = || args.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes());
        let distinct = || {
            let mut seen = std::collections::HashSet::new();
            args.iter().all(|x| seen.insert(x))
        };
        (self.rising && !rising()) || (self.distinct && !distinct())
    }
}

/// How a command template is read: GNU parallel's `-I` and `-q`, and the
/// header's column names.
#[derive(Debug, Clone, Default)]
pub(crate) struct Spelling<'a> {
    /// `-I REPL`: REPL stands for `{}`; `--extensionreplace`,
    /// `--basenamereplace`, ... : other strings renamed (what stands for
    /// what, as `(REPL, "{.}")`).
    pub(crate) renames: &'a [(String, &'static str)],
    /// `-q`: each word of the command is one word for the shell (its
    /// replacement strings filled in, then quoted whole).
    pub(crate) quote_words: bool,
    /// Column names (`--header :`) and their argument positions.
    pub(crate) names: &'a [(String, usize)],
    /// `--plus`: its replacement strings are on.
    pub(crate) plus: bool,
    /// `--pipe`: the input goes to stdin, so none is put after a command
    /// that names none.
    pub(crate) no_input: bool,
}

impl Spelling<'_> {
    /// `text` parsed into pieces, its strings spelled as `self` says.
    ///
    /// A renamed string is text (`-I @@ echo {}` prints `{}`, as in GNU
    /// parallel), and so are its positional forms (`{1}` for `{}`, `{1.}`
    /// for `{.}`: GNU parallel derives them from the string's new
    /// spelling, which has none): their `{` is hidden while the renames
    /// are made and the text is parsed, and put back in the text after
    /// (not when the text holds the hiding character itself).
    fn pieces(&self, text: &str) -> Vec<Piece> {
        let renamed: Vec<&(String, &'static str)> = self
            .renames
            .iter()
            .filter(|(from, to)| !from.is_empty() && from != to)
            .collect();
        if renamed.is_empty() || text.contains(HIDDEN_BRACE) {
            let text = renamed.iter().fold(text.to_string(), |t, (from, to)| {
                t.replace(from.as_str(), to)
            });
            return pieces(&text, self.names, self.plus);
        }
        let hidden = renamed.iter().fold(text.to_string(), |t, (_, to)| {
            t.replace(to, &to.replacen('{', &HIDDEN_BRACE.to_string(), 1))
        });
        let hidden = renamed
            .iter()
            .filter_map(|(_, to)| to.strip_prefix('{')?.strip_suffix('}'))
            .filter_map(|inner| {
                regex::Regex::new(&format!(r"\{{(-?[0-9]+{}\}})", regex::escape(inner))).ok()
            })
            .fold(hidden, |t, re| {
                re.replace_all(&t, format!("{HIDDEN_BRACE}${{1}}"))
                    .into_owned()
            });
        let spelled = renamed
            .iter()
            .fold(hidden, |t, (from, to)| t.replace(from.as_str(), to));
        pieces(&spelled, self.names, self.plus)
            .into_iter()
            .map(unhide)
            .collect()
    }
}

/// A command line with replacement strings.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
    /// `-q`: the words, each rendered unquoted and then quoted whole.
    words: Option<Vec<Vec<Piece>>>,
    /// `-X`: a word holding `{}` is repeated for each argument.
    context: bool,
    /// How inputs are quoted in the command.
    quoting: Quoting,
    /// `-N0` with `-m`, `-X` or `--xargs`: the inputs are empty stand-ins
    /// that only count (a word with `{}` once per input), written
    /// unquoted, as GNU parallel writes them.
    stand_ins: bool,
}

fn parse_repl(inner: &str, names: &[(String, usize)], plus: bool) -> Option<Piece> {
    if inner == "#" {
        return Some(Piece::Seq);
    }
    if inner == "##" {
        return Some(Piece::Total);
    }
    if inner == "%" {
        return Some(Piece::Slot);
    }
    if plus && inner == "0#" {
        return Some(Piece::SeqPadded);
    }
    if plus && inner == "0%" {
        return Some(Piece::SlotPadded);
    }
    // --plus's shorthand for $PARALLEL_JOBSLOT.
    if plus && inner == "slot" {
        return Some(Piece::Slot);
    }
    // --plus's worker variables (workers::login_env sets them).
    if plus && inner == "host" {
        return Some(Piece::Var("PARALLEL_SSHHOST"));
    }
    if plus && inner == "sshlogin" {
        return Some(Piece::Var("PARALLEL_SSHLOGIN"));
    }
    let named = by_name(inner, names);
    let inner = named.as_deref().unwrap_or(inner);
    let (back, inner) = match inner.strip_prefix('-') {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => (true, rest),
        _ => (false, inner),
    };
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
        "+/" if plus => Part::PlusDir,
        "+." if plus => Part::PlusExt(1),
        "+.." if plus => Part::PlusExt(2),
        "+..." if plus => Part::PlusExt(3),
        ".." if plus => Part::NoExts(2),
        "..." if plus => Part::NoExts(3),
        "/.." if plus => Part::BaseNoExts(2),
        "/..." if plus => Part::BaseNoExts(3),
        "choose_k" if plus && !back => Part::ChooseK,
        "uniq" if plus && !back => Part::Uniq,
        // (`{2#re}`, `{-1:-text}`: of one argument, as GNU parallel's.)
        _ if plus => Part::Plus(crate::plus::Dynamic::parse(rest)?),
        _ => return None,
    };
    match (back, pos) {
        (true, Some(n)) => Some(Piece::ArgBack(n, part)),
        _ => Some(Piece::Arg(pos, part)),
    }
}

/// `{name}`, `{name/}`, `{name//}`, `{name.}`, `{name/.}` with `--header`
/// names as `{N}`... with the column's (or `--header`'s file's) number,
/// as GNU parallel rewrites its command: name after name in their order,
/// each rewrite seen by the next (so a column named `2` also takes what
/// another name made `{2}`). `None`: no name.
fn by_name(inner: &str, names: &[(String, usize)]) -> Option<String> {
    let mut s: Option<String> = None;
    for (name, pos) in names {
        let now = s.as_deref().unwrap_or(inner);
        let part = now
            .strip_prefix(name.as_str())
            .filter(|p| ["", "/", "//", ".", "/."].contains(p));
        if let Some(part) = part {
            s = Some(format!("{pos}{part}"));
        }
    }
    s
}

/// The pieces of `cmd`: text and replacement strings.
fn pieces(cmd: &str, names: &[(String, usize)], plus: bool) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = cmd;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after
            .find('}')
            .and_then(|close| Some((close, parse_repl(&after[..close], names, plus)?)))
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
    pieces
}

/// The first Perl expression GNU parallel would see in `text` (`{=` up
/// to the next `=}`, `{=2 ... =}` too), which remex cannot run.
pub(crate) fn perl_expression(text: &str) -> Option<&str> {
    let open = text.find("{=")?;
    let close = text[open + 2..].find("=}")?;
    Some(&text[open..open + 2 + close + 2])
}

/// What stands for the `{` of a replacement string that `-I` and the
/// like renamed, while a command is parsed (a character of Unicode's
/// private use area).
const HIDDEN_BRACE: char = '\u{E000}';

/// `p` with the hidden braces of its text put back.
fn unhide(p: Piece) -> Piece {
    match p {
        Piece::Text(t) => Piece::Text(t.replace(HIDDEN_BRACE, "{")),
        other => other,
    }
}

fn all_text(pieces: &[Piece]) -> bool {
    pieces.iter().all(|p| matches!(p, Piece::Text(_)))
}

impl Template {
    /// Parses `cmd`; appends ` {}` when it has no replacement string; an
    /// empty `cmd` makes each job's input its command.
    #[cfg(test)]
    pub(crate) fn parse(cmd: &str) -> Template {
        Template::parse_words(&[cmd.to_string()], &Spelling::default())
    }

    /// Parses the command `words` as `spelling` says (joined by spaces,
    /// or each one shell word with `-q`).
    pub(crate) fn parse_words(words: &[String], spelling: &Spelling<'_>) -> Template {
        let pieces = |text: &str| spelling.pieces(text);
        let cmd = words.join(" ");
        // -q without a command: each input is one quoted word, the
        // command (GNU parallel's: `-q ::: 'echo a'` runs `'echo a'`,
        // "command not found").
        if cmd.trim().is_empty() && spelling.quote_words && !spelling.no_input {
            return Template {
                pieces: Vec::new(),
                words: Some(vec![vec![Piece::Arg(None, Part::Whole)]]),
                context: false,
                quoting: Quoting::Sh,
                stand_ins: false,
            };
        }
        if cmd.trim().is_empty() {
            return Template {
                pieces: vec![Piece::Raw],
                words: None,
                context: false,
                quoting: Quoting::Sh,
                stand_ins: false,
            };
        }
        if spelling.quote_words {
            let mut split: Vec<Vec<Piece>> = words.iter().map(|w| pieces(w)).collect();
            if split.iter().all(|w| all_text(w)) && !spelling.no_input {
                split.push(vec![Piece::Arg(None, Part::Whole)]);
            }
            return Template {
                pieces: Vec::new(),
                words: Some(split),
                context: false,
                quoting: Quoting::Sh,
                stand_ins: false,
            };
        }
        let mut p = pieces(&cmd);
        if all_text(&p) && !spelling.no_input {
            p.push(Piece::Text(" ".into()));
            p.push(Piece::Arg(None, Part::Whole));
        }
        Template {
            pieces: p,
            words: None,
            context: false,
            quoting: Quoting::Sh,
            stand_ins: false,
        }
    }

    /// `-X`: each word that holds `{}` (or another whole-list string) is
    /// repeated for each of the job's arguments.
    pub(crate) fn in_context(mut self) -> Template {
        self.context = true;
        self
    }

    /// The inputs are `-N0`'s empty stand-ins (see [`Template`]).
    pub(crate) fn with_stand_ins(mut self) -> Template {
        self.stand_ins = true;
        self
    }

    /// Inputs quoted for the shell named `shell` (`None`: sh), as GNU
    /// parallel quotes them ([`Quoting::for_shell`]).
    pub(crate) fn quoted_for(mut self, shell: Option<&str>) -> Template {
        self.quoting = Quoting::for_shell(shell);
        self
    }

    /// Whether it is text only, with no replacement string.
    pub(crate) fn is_text(&self) -> bool {
        self.words.is_none() && all_text(&self.pieces)
    }

    /// Which jobs `{choose_k}` and `{uniq}` skip (GNU parallel's `--plus`
    /// rules; a skipped job keeps its number): looked up once, then
    /// asked per job.
    pub(crate) fn skips(&self) -> Skips {
        let mut skips = Skips::default();
        for p in self
            .pieces
            .iter()
            .chain(self.words.iter().flatten().flatten())
        {
            match p {
                Piece::Arg(_, Part::ChooseK) => skips.rising = true,
                Piece::Arg(_, Part::Uniq) => skips.distinct = true,
                _ => {}
            }
        }
        skips
    }

    /// Whether the template says the job's slot (`{%}`): then jobs take
    /// slots, and no two running jobs share one.
    pub(crate) fn uses_slot(&self) -> bool {
        let slot = |p: &Piece| matches!(p, Piece::Slot | Piece::SlotPadded);
        self.pieces.iter().any(slot) || self.words.iter().flatten().flatten().any(slot)
    }

    /// A template for text around the arguments (`--tagstring`): nothing
    /// appended, rendered without quotes.
    pub(crate) fn parse_tag(text: &str, spelling: &Spelling<'_>) -> Template {
        Template {
            pieces: spelling.pieces(text),
            words: None,
            context: false,
            quoting: Quoting::Sh,
            stand_ins: false,
        }
    }

    /// Whether the template says the number of jobs (`{##}`): then they
    /// are counted before the first starts, stdin read whole.
    pub(crate) fn needs_total(&self) -> bool {
        let counts = |p: &Piece| matches!(p, Piece::Total | Piece::SeqPadded);
        self.pieces.iter().any(counts) || self.words.iter().flatten().flatten().any(counts)
    }

    /// The command line of job `seq` (from 1) of `total` with arguments
    /// `args`, in slot 1.
    #[cfg(test)]
    pub(crate) fn render(&self, seq: u64, total: Option<u64>, args: &[String]) -> String {
        self.render_at(
            At {
                seq,
                slot: 1,
                total,
                slots: 1,
            },
            args,
        )
    }

    /// The command line of the job `at` with arguments `args`.
    pub(crate) fn render_at(&self, at: At, args: &[String]) -> String {
        match &self.words {
            Some(words) => words
                .iter()
                .flat_map(|w| render_word(w, at, args))
                .map(|w| self.quoting.quote(&w))
                .collect::<Vec<_>>()
                .join(" "),
            None if self.context => render_context(&self.pieces, at, args, self.quoted()),
            None => render(&self.pieces, at, args, self.quoted()),
        }
    }

    /// How inputs are quoted: not at all when they are `-N0`'s stand-ins.
    fn quoted(&self) -> Option<Quoting> {
        (!self.stand_ins).then_some(self.quoting)
    }

    /// As [`Template::render_at`], with the arguments as they are (a tag).
    pub(crate) fn render_plain(&self, at: At, args: &[String]) -> String {
        render(&self.pieces, at, args, None)
    }
}

/// Where a job stands: its number (from 1), its slot, and the number of
/// jobs when known.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At {
    pub(crate) seq: u64,
    pub(crate) slot: u64,
    pub(crate) total: Option<u64>,
    /// The number of slots.
    pub(crate) slots: u64,
}

/// `-X`: the words (split at blanks in the text) that hold a whole-list
/// string are rendered once per argument, side by side.
fn render_context(pieces: &[Piece], at: At, args: &[String], quoting: Option<Quoting>) -> String {
    let flush = |word: &mut Vec<Piece>, out: &mut String| {
        // (No inputs, -N0's: the word once, `{}` empty, as GNU parallel.)
        if !args.is_empty() && word.iter().any(|p| matches!(p, Piece::Arg(None, _))) {
            let each: Vec<String> = args
                .iter()
                .map(|a| render(word, at, std::slice::from_ref(a), quoting))
                .collect();
            out.push_str(&each.join(" "));
        } else {
            out.push_str(&render(word, at, args, quoting));
        }
        word.clear();
    };
    let mut out = String::new();
    let mut word = Vec::new();
    for p in pieces {
        match p {
            Piece::Text(t) => {
                let mut rest = t.as_str();
                while let Some(i) = rest.find(char::is_whitespace) {
                    if i > 0 {
                        word.push(Piece::Text(rest[..i].to_string()));
                    }
                    flush(&mut word, &mut out);
                    let blank = rest[i..].chars().next().map_or(1, char::len_utf8);
                    out.push_str(&rest[i..i + blank]);
                    rest = &rest[i + blank..];
                }
                if !rest.is_empty() {
                    word.push(Piece::Text(rest.to_string()));
                }
            }
            other => word.push(other.clone()),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The pieces with the job's values in; the inputs quoted by `quoted`'s
/// rule, or as they are.
fn render(pieces: &[Piece], at: At, args: &[String], quoted: Option<Quoting>) -> String {
    let At {
        seq,
        slot,
        total,
        slots,
    } = at;
    let width = |n: u64| n.to_string().len();
    let q = |a: String| match quoted {
        Some(rule) => rule.quote(&a),
        None => a,
    };
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Seq => out.push_str(&seq.to_string()),
            Piece::Slot => out.push_str(&slot.to_string()),
            Piece::SeqPadded => {
                let w = width(total.unwrap_or(seq));
                out.push_str(&format!("{seq:0w$}"));
            }
            Piece::SlotPadded => {
                let w = width(slots);
                out.push_str(&format!("{slot:0w$}"));
            }
            Piece::Total => out.push_str(&total.map(|t| t.to_string()).unwrap_or_default()),
            Piece::Raw => out.push_str(&args.join(" ")),
            Piece::Var(name) => {
                out.push_str("${");
                out.push_str(name);
                out.push('}');
            }
            Piece::Arg(None, part) => {
                let words: Vec<String> = args.iter().map(|a| q(apply(part, a))).collect();
                out.push_str(&words.join(" "));
            }
            // A position past the job's arguments is nothing, not an
            // empty argument (`echo {1} {2} ::: a` runs `echo a `, as in
            // GNU parallel).
            Piece::Arg(Some(n), part) => {
                if let Some(a) = args.get(n - 1) {
                    out.push_str(&q(apply(part, a)));
                }
            }
            Piece::ArgBack(n, part) => {
                let a = args
                    .len()
                    .checked_sub(*n)
                    .and_then(|i| args.get(i))
                    .map(String::as_str)
                    .unwrap_or("");
                out.push_str(&q(apply(part, a)));
            }
        }
    }
    out
}
/// `-q`: one word of the command with the job's arguments, as the words
/// it makes: each argument a whole-list string (`{}`, `{.}`...) stands
/// for is a word of its own, the word's text before it joined to the
/// first and the text after it to the last (GNU parallel's: `-q printf
/// %s, x{}y ::: a ::: b` prints `xa,by,`).
fn render_word(pieces: &[Piece], at: At, args: &[String]) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    for p in pieces {
        match p {
            Piece::Arg(None, part) => {
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        words.push(std::mem::take(&mut word));
                    }
                    word.push_str(&apply(part, a));
                }
            }
            _ => word.push_str(&render(std::slice::from_ref(p), at, args, None)),
        }
    }
    words.push(word);
    words
}

fn apply(part: &Part, a: &str) -> String {
    let base = |a: &str| a.rsplit_once('/').map_or(a, |(_, b)| b).to_string();
    // GNU parallel's `s:\.[^/.]*$::`: from the last dot after the last
    // slash, a dotfile's leading dot too (`.bashrc` -> empty, as its man
    // page says).
    let no_ext = |a: &str| {
        let start = a.rfind('/').map_or(0, |i| i + 1);
        match a[start..].rfind('.') {
            Some(dot) => a[..start + dot].to_string(),
            None => a.to_string(),
        }
    };
    match part {
        Part::Whole | Part::ChooseK | Part::Uniq => a.to_string(),
        Part::NoExt => no_ext(a),
        Part::Base => base(a),
        Part::Dir => dirname(a).to_string(),
        Part::BaseNoExt => no_ext(&base(a)),
        Part::PlusDir => a.rsplit_once('/').map_or("", |(d, _)| d).to_string(),
        // GNU parallel's rule: after the last dot, wherever it is.
        Part::PlusExt(1) => a.rsplit_once('.').map_or("", |(_, e)| e).to_string(),
        Part::PlusExt(k) => exts(a, *k).map_or("", |(_, e)| e).to_string(),
        Part::NoExts(k) => exts(a, *k).map_or(a, |(s, _)| s).to_string(),
        Part::BaseNoExts(k) => {
            let b = base(a);
            exts(&b, *k).map_or(b.as_str(), |(s, _)| s).to_string()
        }
        Part::Plus(d) => d.apply(a),
    }
}

/// `{//}`: Perl's `File::Basename::dirname`, which GNU parallel calls:
/// trailing slashes do not count (`dir/` -> `.`, `a/b/` -> `a`), runs of
/// slashes are one (`a//b` -> `a`), `.` where there is no directory.
fn dirname(a: &str) -> &str {
    // Perl's fileparse: up to the last slash, and whether no name follows.
    fn parse(p: &str) -> (&str, bool) {
        match p.rfind('/') {
            Some(i) => (&p[..=i], i + 1 == p.len()),
            None => ("./", p.is_empty()),
        }
    }
    // Trailing slashes off, the first character kept (`s{(.)/*\z}{$1}`).
    let strip = |d: &str| -> usize {
        let kept = d.trim_end_matches('/').len().max(1);
        kept.min(d.len())
    };
    let (dir, no_base) = parse(a);
    let dir = &dir[..strip(dir)];
    if !no_base {
        return dir;
    }
    let (dir, _) = parse(dir);
    &dir[..strip(dir)]
}

/// `a` split before its last `k` extensions (each a dot and characters
/// other than dots and slashes, maybe none: GNU parallel's
/// `(\.[^/.]*){k}$`), the extensions without their first dot; `None`
/// when it has fewer.
fn exts(a: &str, k: usize) -> Option<(&str, &str)> {
    let mut at = a.len();
    for _ in 0..k {
        let dot = a[..at].rfind('.')?;
        if a[dot + 1..at].contains('/') {
            return None;
        }
        at = dot;
    }
    Some((&a[..at], &a[at + 1..]))
}

/// How inputs are quoted in a command: as GNU parallel quotes them for
/// the shell that runs the jobs (its `shell_quote_scalar`), so that the
/// command lines shown (`--dryrun`, `-v`, the job log, `--results`) are
/// parallel's and each shell reads back the input as it was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Quoting {
    /// Bourne shells (sh, bash, zsh, ...): in single quotes unless made
    /// only of letters, digits and `-_.+/`.
    #[default]
    Sh,
    /// csh and tcsh: each special character after a backslash.
    Csh,
    /// rc: runs of special characters in single quotes.
    Rc,
}

impl Quoting {
    /// The quoting of the shell named `shell` (`None`: sh), as GNU
    /// parallel picks it: csh's for a name holding `csh`, rc's for `rc`.
    pub(crate) fn for_shell(shell: Option<&str>) -> Quoting {
        match shell {
            Some(s) if s.contains("csh") => Quoting::Csh,
            Some(s) if s == "rc" || s.ends_with("/rc") => Quoting::Rc,
            _ => Quoting::Sh,
        }
    }

    /// `a` as one word of this shell.
    pub(crate) fn quote(self, a: &str) -> String {
        match self {
            Quoting::Sh => crate::raw::quote_sh(a, quote),
            Quoting::Csh => quote_csh(a),
            Quoting::Rc => quote_rc(a),
        }
    }
}

/// `a` as one word of a Bourne shell, as GNU parallel's
/// `shell_quote_scalar_default` writes it: unquoted when made only of
/// ASCII letters, digits and `-_.+/`; else in single quotes, each `'`
/// written `'"'"'`, with the empty `''` at either end dropped.
fn quote(a: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.+/".contains(c);
    if a.is_empty() {
        return "''".to_string();
    }
    if a.chars().all(plain) {
        return a.to_string();
    }
    let q = format!("'{}'", a.replace('\'', r#"'"'"'"#));
    let q = q.strip_prefix("''").unwrap_or(&q);
    q.strip_suffix("''").unwrap_or(q).to_string()
}

/// The characters csh and rc give a meaning to, as GNU parallel lists
/// them (bytes 0x82-0xff: any character past ASCII here).
fn shell_special(c: char, rc: bool) -> bool {
    matches!(c, '\u{2}'..='\u{9}' | '\u{b}'..='\u{1a}')
        || "\\#?`(){}[]^*<=>~|; \"!$&'".contains(c)
        || (rc && c == '\n')
        || (c as u32) >= 0x82
}

/// `a` as one word of csh (`shell_quote_scalar_csh`): a backslash before
/// each special character, a newline as `"\` newline `"`.
fn quote_csh(a: &str) -> String {
    if a.is_empty() {
        return "''".to_string();
    }
    let mut out = String::with_capacity(a.len() * 2);
    for c in a.chars() {
        if c == '\n' {
            out.push_str("\"\\\n\"");
        } else {
            if shell_special(c, false) {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// `a` as one word of rc (`shell_quote_scalar_rc`): each `'` doubled,
/// then each run of special characters in single quotes.
fn quote_rc(a: &str) -> String {
    if a.is_empty() {
        return "''".to_string();
    }
    let a = a.replace('\'', "''");
    let mut out = String::with_capacity(a.len() + 8);
    let mut run = false;
    for c in a.chars() {
        let special = shell_special(c, true);
        if special != run {
            out.push('\'');
            run = special;
        }
        out.push(c);
    }
    if run {
        out.push('\'');
    }
    out
}

/// `--trim`: which ends of an input lose their blanks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Trim {
    #[default]
    None,
    Left,
    Right,
    Both,
}

impl std::str::FromStr for Trim {
    type Err = String;

    fn from_str(s: &str) -> Result<Trim, String> {
        match s {
            "n" => Ok(Trim::None),
            "l" => Ok(Trim::Left),
            "r" => Ok(Trim::Right),
            "lr" | "rl" => Ok(Trim::Both),
            other => Err(format!("--trim takes n, l, r, lr or rl, not {other:?}")),
        }
    }
}

/// `-d`'s delimiter: one character, after GNU parallel's escapes (`\t`, `\n`,
/// `\r`, `\NNN`, `\N`; and `\\`, a backslash).
pub(crate) fn delimiter(s: &str) -> Result<u8, String> {
    if s == r"\\" {
        return Ok(b'\\');
    }
    match unquote_printf(s).as_bytes() {
        [b] => Ok(*b),
        _ => Err(format!(
            "-d takes one character (or \\n, \\t, \\r, \\NNN in octal, \\\\), not {s:?}: remex splits inputs on one byte"
        )),
    }
}

/// GNU parallel's `unquote_printf`, for `-d` and `--tagstring`: `\t`,
/// `\n`, `\r`, then `\NNN` and then `\N` in octal, each a pass over what
/// the one before made (Perl's reading of "\NNN": its octal digits; an 8
/// or 9 stays a digit).
pub(crate) fn unquote_printf(s: &str) -> String {
    let s = s
        .replace(r"\t", "\t")
        .replace(r"\n", "\n")
        .replace(r"\r", "\r");
    octal_escapes(&octal_escapes(&s, 3), 1)
}

/// Each `\` followed by `width` digits made the character Perl's
/// "\DIGITS" is.
fn octal_escapes(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        let after = &rest[i + 1..];
        out.push_str(&rest[..i]);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits < width {
            out.push('\\');
            rest = after;
            continue;
        }
        let (escape, tail) = after.split_at(width);
        let n = escape
            .bytes()
            .take_while(|b| (b'0'..=b'7').contains(b))
            .count();
        let (oct, literal) = escape.split_at(n);
        if let Some(c) = u32::from_str_radix(oct, 8).ok().and_then(char::from_u32) {
            out.push(c);
        }
        out.push_str(literal);
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// How inputs are read and cut.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reading {
    /// The byte between inputs (`None`: lines, `\n` or `\r\n`).
    pub(crate) delimiter: Option<u8>,
    /// `-E`: an input equal to it ends its source.
    pub(crate) eof: Option<String>,
    pub(crate) trim: Trim,
    /// `--colsep`: columns of an input, each one argument.
    pub(crate) colsep: Option<regex::Regex>,
    /// `--csv`: inputs are CSV records, fields split at this byte.
    pub(crate) csv: Option<u8>,
    /// `--header :`: each source's first input names its columns.
    pub(crate) header: bool,
    /// `--header` (any value, `0` too): the files of `-a` and `::::` name
    /// their inputs too, `{FILE}` (GNU parallel's `--header 0`).
    pub(crate) file_names: bool,
    /// `--link`: every source linked to the one before.
    pub(crate) link: bool,
    /// `-N K`: K inputs in each job (0: one input, given to none).
    pub(crate) per_job: Option<usize>,
    /// `-L`, `-l`: an input ending in a blank is continued by the next
    /// (joined as they are).
    pub(crate) continued: bool,
    /// `-r`: inputs that are only blanks are skipped.
    pub(crate) skip_blank: bool,
    /// `--pipe`: a file's inputs are blocks of records, not lines.
    pub(crate) pipe: Option<crate::pipe::Pipe>,
    /// `--pipepart`: a file's inputs are its parts, found by seeking.
    pub(crate) part: Option<crate::pipepart::Cutting>,
    /// `--skip-first-line`: the first source's first line is left out
    /// (of stdin with --pipe, of each file with --pipepart).
    pub(crate) skip_first_line: bool,
}

impl Reading {
    fn trimmed(&self, s: String) -> String {
        match self.trim {
            Trim::None => s,
            Trim::Left => s.trim_start().to_string(),
            Trim::Right => s.trim_end().to_string(),
            Trim::Both => s.trim().to_string(),
        }
    }

    /// One input as arguments: its columns, or itself.
    fn columns(&self, s: String) -> Vec<String> {
        if let Some(sep) = self.csv {
            return csv_fields(&s, sep);
        }
        match &self.colsep {
            Some(re) => perl_split(re, &s),
            None => vec![s],
        }
    }

    /// A source's inputs, as they are read: up to `-E`, trimmed, in
    /// columns; `first`: the run's first source (--skip-first-line).
    fn items(&self, source: &Source, first: bool) -> Result<Rows, String> {
        let skip = first && self.skip_first_line;
        let raw: Box<dyn Iterator<Item = Result<String, String>> + Send> = match source {
            Source::Args(a, _) => {
                // As GNU parallel reads them: records joined by the
                // delimiter and read back, so an argument holding one
                // is several inputs (`::: $'a\nb'` is a and b; with -0
                // a newline stays).
                let at = char::from(self.delimiter.unwrap_or(b'\n'));
                let split = at.is_ascii();
                Box::new(a.clone().into_iter().flat_map(move |arg| {
                    let parts: Vec<String> = if split && arg.contains(at) {
                        arg.split(at).map(String::from).collect()
                    } else {
                        vec![arg]
                    };
                    parts.into_iter().map(Ok)
                }))
            }
            Source::File(p, _) => match (&self.part, &self.pipe) {
                (Some(cutting), _) => crate::pipepart::parts(p, cutting, skip)?,
                (None, Some(pipe)) => {
                    let (mut reader, path) = open_input(p)?;
                    if skip {
                        reader
                            .skip_until(b'\n')
                            .map_err(|e| format!("reading {path}: {e}"))?;
                    }
                    Box::new(crate::pipe::blocks(reader, pipe.clone(), path))
                }
                (None, None) => read_items(p, self.delimiter, self.csv.is_some())?,
            },
        };
        // (A line is an input here: --pipe and --pipepart skipped theirs.)
        let raw = match skip && self.pipe.is_none() && self.part.is_none() {
            true => Box::new(raw.skip(1)),
            false => raw,
        };
        let eof = self.eof.clone();
        let me = self.clone();
        let raw = raw.take_while(move |r| match (r, &eof) {
            (Ok(s), Some(e)) => s != e,
            _ => true,
        });
        let raw: Box<dyn Iterator<Item = Result<String, String>> + Send> =
            match self.continued || self.skip_blank {
                true => Box::new(shaped(raw, self.skip_blank, self.continued)),
                false => Box::new(raw),
            };
        Ok(Box::new(
            raw
                // Each column trimmed, as GNU parallel trims each argument.
                .map(move |r| {
                    r.map(|s| me.columns(s).into_iter().map(|c| me.trimmed(c)).collect())
                }),
        ))
    }
}

/// `rows`, or one empty input when it has none.
fn one_if_none(mut rows: Rows) -> impl Iterator<Item = Result<Vec<String>, String>> + Send {
    let mut any = false;
    std::iter::from_fn(move || match rows.next() {
        Some(r) => {
            any = true;
            Some(r)
        }
        None if !any => {
            any = true;
            Some(Ok(vec![String::new()]))
        }
        None => None,
    })
}

/// `items` as GNU parallel reads them under `-r` and `-L`/`-l` (its
/// multiread): an item continued from the one before is joined to it;
/// then one that is only blanks is skipped (`skip_blank`); then one that
/// ends in a blank (Perl's `\s`) is continued by the next (`continued`),
/// the last one staying as it is.
fn shaped(
    mut items: impl Iterator<Item = Result<String, String>> + Send,
    skip_blank: bool,
    continued: bool,
) -> impl Iterator<Item = Result<String, String>> + Send {
    let blank = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c');
    let mut before: Option<String> = None;
    std::iter::from_fn(move || loop {
        let s = match items.next() {
            Some(Ok(s)) => s,
            Some(Err(e)) => return Some(Err(e)),
            None => return before.take().map(Ok),
        };
        let s = match before.take() {
            Some(b) => b + s.as_str(),
            None => s,
        };
        if skip_blank && s.chars().all(blank) {
            continue;
        }
        if continued && s.ends_with(blank) {
            before = Some(s);
            continue;
        }
        return Some(Ok(s));
    })
}

/// `s` split where `re` matches, as Perl's `split /re/, s, -1` does
/// (GNU parallel splits --colsep columns so): a match must end past the
/// start of the field it ends, so a zero-width match never makes an
/// empty field where a field starts (`,?` on `ab,` is `["a", "b", ""]`,
/// not `["", "a", "b", ""]`; an empty pattern splits between
/// characters); empty fields at the end are kept. An empty `s` is one
/// empty column. Checked against perl 5.36.
fn perl_split(re: &regex::Regex, s: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut from = 0;
    while start < s.len() {
        let Some(m) = re.find_at(s, from) else { break };
        if m.end() == start {
            // Zero-width where the field starts: look from the next
            // character on.
            match s[start..].chars().next() {
                Some(c) => from = start + c.len_utf8(),
                None => break,
            }
            continue;
        }
        fields.push(s[start..m.start()].to_string());
        start = m.end();
        from = start;
    }
    fields.push(s[start..].to_string());
    fields
}

/// Where a source's arguments come from, and whether it is linked to the
/// source before (`:::+`, `::::+`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// Given on the command line after `:::`.
    Args(Vec<String>, bool),
    /// Inputs of a file (`-` is stdin), after `::::` or `-a`.
    File(String, bool),
}

impl Source {
    fn linked(&self) -> bool {
        matches!(self, Source::Args(_, true) | Source::File(_, true))
    }

    fn is_stdin(&self) -> bool {
        matches!(self, Source::File(p, _) if p == "-")
    }
}

/// The command words and sources of `remex run COMMAND... ::: A... :::: F...`.
#[cfg(test)]
pub(crate) fn split_command(words: &[String]) -> (Vec<String>, Vec<Source>) {
    split_command_at(words, ":::", "::::")
}

/// As `split_command`, with other separators (`--arg-sep`,
/// `--arg-file-sep`); each with `+` links its source to the one before.
pub(crate) fn split_command_at(
    words: &[String],
    arg_sep: &str,
    file_sep: &str,
) -> (Vec<String>, Vec<Source>) {
    let mut command = Vec::new();
    let mut sources = Vec::new();
    // (files, linked, words)
    let mut current: Option<(bool, bool, Vec<String>)> = None;
    let flush = |c: Option<(bool, bool, Vec<String>)>, sources: &mut Vec<Source>| match c {
        Some((false, linked, args)) => sources.push(Source::Args(args, linked)),
        Some((true, linked, files)) => {
            // `::::+ a b`: every file linked, to the one before it (GNU
            // parallel: `::::+ a b` makes a's first line with b's first,
            // and so on).
            for f in files {
                sources.push(Source::File(f, linked));
            }
        }
        None => {}
    };
    let sep = |w: &str| -> Option<(bool, bool)> {
        // A separator as given first (`--arg-file-sep ++`), then linked.
        let (w, linked) = match w.strip_suffix('+') {
            Some(_) if w == file_sep || w == arg_sep => (w, false),
            Some(w) => (w, true),
            None => (w, false),
        };
        if w == file_sep {
            Some((true, linked))
        } else if w == arg_sep {
            Some((false, linked))
        } else {
            None
        }
    };
    for w in words {
        match sep(w) {
            Some((files, linked)) => {
                flush(current.take(), &mut sources);
                current = Some((files, linked, Vec::new()));
            }
            None => match current.as_mut() {
                Some((_, _, v)) => v.push(w.clone()),
                None => command.push(w.clone()),
            },
        }
    }
    flush(current, &mut sources);
    (command, sources)
}

/// Inputs of `path` (`-`: stdin) split on `delimiter` (lines without
/// their ends when `None`).
fn read_items(
    path: &str,
    delimiter: Option<u8>,
    csv: bool,
) -> Result<Box<dyn Iterator<Item = Result<String, String>> + Send>, String> {
    let (reader, path) = open_input(path)?;
    let sep = delimiter.unwrap_or(b'\n');
    let name = path.clone();
    let items = reader.split(sep).map(move |l| {
        let mut b = l.map_err(|e| format!("reading {path}: {e}"))?;
        if delimiter.is_none() && b.ends_with(b"\r") {
            b.pop();
        }
        if b.contains(&0) {
            b = nul_replaced(&b);
        }
        // Inputs travel as text; bytes that are not UTF-8 are kept as
        // they are, never replaced (a changed file name would name
        // another file): crate::raw.
        Ok(crate::raw::text(b))
    });
    match csv {
        false => Ok(Box::new(items)),
        true => Ok(Box::new(csv_records(items, sep as char, name))),
    }
}

/// `--csv`: `lines` joined where a quoted field goes on past the end of
/// one (an odd number of quotes so far: `""` is a quote inside one); a
/// field still open at the end, or a record joined past
/// [`crate::pipe::MOST_BLOCK`] bytes, is an error that says so.
fn csv_records(
    mut lines: impl Iterator<Item = Result<String, String>> + Send,
    sep: char,
    path: String,
) -> impl Iterator<Item = Result<String, String>> + Send {
    std::iter::from_fn(move || {
        let mut record: Option<String> = None;
        // Quotes in the record so far (each line counted once as it is
        // joined, not the whole record again).
        let mut quotes = 0usize;
        loop {
            let line = match lines.next() {
                Some(Ok(l)) => l,
                Some(Err(e)) => return Some(Err(e)),
                None if record.is_some() => {
                    return Some(Err(format!(
                        "reading {path}: --csv: a quoted field is still open at the end"
                    )))
                }
                None => return None,
            };
            quotes += line.bytes().filter(|b| *b == b'"').count();
            let r = match record.take() {
                Some(mut r) => {
                    r.push(sep);
                    r.push_str(&line);
                    r
                }
                None => line,
            };
            if quotes % 2 == 0 {
                return Some(Ok(r));
            }
            if r.len() > crate::pipe::MOST_BLOCK {
                return Some(Err(format!(
                    "reading {path}: --csv: a record longer than {} bytes (is a quote not closed?)",
                    crate::pipe::MOST_BLOCK
                )));
            }
            record = Some(r);
        }
    })
}

/// The fields of one CSV record `s` (fields split at `sep`, a quoted one
/// whole, `""` in it a quote), as GNU parallel's --csv reads them; an
/// empty record is one empty field.
fn csv_fields(s: &str, sep: u8) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(sep)
        .from_reader(s.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => record.iter().map(String::from).collect(),
        _ => vec![String::new()],
    }
}

/// `b` with each NUL byte written `\0`, as GNU parallel passes it (no
/// argument can hold one), said once on stderr.
fn nul_replaced(b: &[u8]) -> Vec<u8> {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
        eprintln!(
            "remex: a NUL character in the input was replaced with \\0: an argument cannot hold one (did you mean -0?)"
        );
    }
    let mut out = Vec::with_capacity(b.len() + 8);
    for &c in b {
        match c {
            0 => out.extend_from_slice(b"\\0"),
            c => out.push(c),
        }
    }
    out
}

/// `path` (`-`: stdin) opened for reading, and its name for messages.
fn open_input(path: &str) -> Result<(Box<dyn BufRead + Send>, String), String> {
    let reader: Box<dyn BufRead + Send> = if path == "-" {
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            // A forgotten `:::` would otherwise look like a hang (GNU
            // parallel warns too).
            eprintln!(
                "remex: reading the inputs from the terminal; Ctrl-D ends them \
                 (forgot ::: or :::: or -a, or to pipe them in?)"
            );
        }
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(crate::raw::path(path))
            .map_err(|e| format!("cannot read {}: {e}", crate::raw::path(path).display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    Ok((reader, crate::raw::path(path).display().to_string()))
}

type Rows = Box<dyn Iterator<Item = Result<Vec<String>, String>> + Send>;

/// The most bytes of arguments `-m` and `-X` put on one command line in
/// the unit tests.
#[cfg(test)]
pub(crate) const LINE_ARGS: usize = 120 * 1024;

/// The default of `-s` (the most characters of a job's command line for
/// `-m`, `-X` and `--xargs`): GNU parallel's "maximal usable size of
/// command". Parallel finds the longest command line `sh -c` accepts by
/// a search that starts at 324, multiplies by 16 while the line is
/// accepted, then halves the interval until its ends are within 1%
/// (`Limits::Command::find_max`), and keeps (that - 3000) / 2 for its
/// wrapping and quoting. The line is `sh -c`'s one argument, which Linux
/// bounds at 32 pages with its NUL (MAX_ARG_STRLEN); the search is
/// replayed here against that bound rather than run (131,071 with 4 KiB
/// pages: parallel finds 130,329 and uses 63,664).
pub(crate) fn default_max_chars() -> usize {
    let longest = 32 * rustix::param::page_size() - 1;
    let accepted = |len: usize| len <= longest;
    let mut len = 324usize;
    let mut lower = len;
    while accepted(len) {
        lower = len;
        len *= 16;
    }
    let found = find_max(lower, len, &accepted);
    found.saturating_sub(3000) / 2
}

/// GNU parallel's `binary_find_max`: the longest accepted length between
/// `lower` (accepted) and `upper` (not), to within 1%.
fn find_max(mut lower: usize, mut upper: usize, accepted: &dyn Fn(usize) -> bool) -> usize {
    while !(lower == upper || lower + 1 == upper || lower as f64 / upper as f64 > 0.99) {
        let middle = lower + (upper - lower) / 2;
        if accepted(middle) {
            lower = middle;
        } else {
            upper = middle;
        }
    }
    lower
}

/// The jobs' argument lists, in order. Stdin as the only first source is
/// read as jobs are made (it may be endless); the other sources are read
/// first, whole (so the number of jobs is known).
pub(crate) struct Inputs {
    /// The first group's rows (a row: one input of each of its sources,
    /// side by side).
    first: Rows,
    /// The other groups' rows.
    rest: Vec<Vec<Vec<String>>>,
    /// The first group's current row and the odometer over `rest`.
    current: Option<(Vec<String>, Vec<usize>)>,
    /// `-N`.
    per_job: Option<usize>,
    /// The number of jobs, when the first source is not stdin.
    pub(crate) total: Option<u64>,
    /// Column names (`--header :`) and their argument positions, then
    /// (`--header`) the files' names and their numbers among the files.
    pub(crate) names: Vec<(String, usize)>,
}

impl Inputs {
    /// Opens `sources`; none means stdin. With `count`, stdin as the
    /// first source is read whole too, so that the number of jobs is known.
    #[cfg(test)]
    pub(crate) fn open(sources: Vec<Source>, count: bool) -> Result<Inputs, String> {
        Inputs::open_with(sources, &Reading::default(), count)
    }

    /// Opens `sources` (none means stdin), read as `reading` says. With
    /// `count`, stdin as the first source is read whole too, so that the
    /// number of jobs is known.
    pub(crate) fn open_with(
        sources: Vec<Source>,
        reading: &Reading,
        count: bool,
    ) -> Result<Inputs, String> {
        // --pipepart: the parts of each file in turn, one source (GNU
        // parallel's; --skip-first-line and --header apply to each file).
        if let Some(cutting) = reading.part.as_ref().filter(|_| sources.len() > 1) {
            // --block -N: N parts per slot of all the files' bytes.
            let all: u64 = sources
                .iter()
                .filter_map(|s| match s {
                    Source::File(p, _) => std::fs::metadata(p).ok().map(|m| m.len()),
                    Source::Args(..) => None,
                })
                .sum();
            let mut each = reading.clone();
            each.part = Some(crate::pipepart::Cutting {
                size: crate::pipepart::PartSize::Bytes(cutting.size.bytes(all)),
                ..cutting.clone()
            });
            let parts = sources
                .iter()
                .map(|s| each.items(s, true))
                .collect::<Result<Vec<_>, _>>()?;
            let rows: Rows = Box::new(parts.into_iter().flatten());
            let (first, total): (Rows, _) = match count {
                false => (rows, None),
                true => {
                    let all = rows.collect::<Result<Vec<_>, _>>()?;
                    let n = all.len() as u64;
                    (Box::new(all.into_iter().map(Ok)), Some(n))
                }
            };
            return Ok(Inputs {
                first,
                rest: Vec::new(),
                current: None,
                per_job: reading.per_job,
                total,
                names: Vec::new(),
            });
        }
        // --header: the files name their inputs too, numbered among the
        // files only (GNU parallel's count).
        let files: Vec<(String, usize)> = match reading.file_names {
            false => Vec::new(),
            true => sources
                .iter()
                .filter_map(|s| match s {
                    Source::File(p, _) => Some(p.clone()),
                    Source::Args(..) => None,
                })
                .enumerate()
                .map(|(i, p)| (p, i + 1))
                .collect(),
        };
        let mut groups: Vec<Vec<Source>> = Vec::new();
        for s in sources {
            match groups.last_mut() {
                Some(g) if s.linked() || reading.link => g.push(s),
                _ => groups.push(vec![s]),
            }
        }
        if groups.is_empty() {
            groups.push(vec![Source::File("-".into(), false)]);
        }
        let mut names = Vec::new();
        let mut width = 0usize;
        // GNU parallel splits the header without Perl's -1: empty names
        // at its end name nothing (so `{}` stays every argument).
        let mut name = |mut header: Vec<String>, width: &mut usize| {
            while header.last().is_some_and(String::is_empty) {
                header.pop();
            }
            for (j, n) in header.into_iter().enumerate() {
                names.push((n, *width + j + 1));
            }
        };
        let mut first: Option<(Rows, Option<u64>)> = None;
        let mut rest = Vec::new();
        // Each read group's sources' inputs.
        let mut read: Vec<Vec<Vec<Vec<String>>>> = Vec::new();
        for (gi, group) in groups.into_iter().enumerate() {
            if gi == 0 && group.len() == 1 && group[0].is_stdin() && !count {
                let mut items = reading.items(&group[0], true)?;
                if reading.header {
                    if let Some(h) = items.next().transpose()? {
                        let w = h.len();
                        name(h, &mut width);
                        width += w;
                    }
                }
                first = Some((items, None));
                continue;
            }
            let mut lists = Vec::new();
            for (si, s) in group.iter().enumerate() {
                let first = gi == 0 && si == 0;
                let mut list = reading.items(s, first)?.collect::<Result<Vec<_>, _>>()?;
                if reading.header && !list.is_empty() {
                    let h = list.remove(0);
                    let w = h.len();
                    name(h, &mut width);
                    width += w;
                }
                lists.push(list);
            }
            read.push(lists);
        }
        // GNU parallel's rule: among several sources, an empty one is one
        // empty input, unless every one is empty (`echo ::: a b :::`
        // prints "a " and "b "). (Read as it comes, stdin's emptiness is
        // known at its end: it then gives that one input.)
        let several = read.iter().map(Vec::len).sum::<usize>() + usize::from(first.is_some()) > 1;
        let some = read.iter().flatten().any(|l| !l.is_empty());
        if several && (some || first.is_some()) {
            for list in read.iter_mut().flatten().filter(|l| l.is_empty()) {
                list.push(vec![String::new()]);
            }
        }
        if let Some((items, None)) = first.take() {
            let items: Rows = match several && some {
                true => Box::new(one_if_none(items)),
                false => items,
            };
            first = Some((items, None));
        }
        for lists in read {
            // Side by side: with --link a shorter source wraps around; a
            // source linked by :::+ ends the group where it ends (GNU
            // parallel's rules) (an empty one: none, all being empty).
            let len = if lists.iter().any(Vec::is_empty) {
                0
            } else if reading.link {
                lists.iter().map(Vec::len).max().unwrap_or(0)
            } else {
                lists.iter().map(Vec::len).min().unwrap_or(0)
            };
            let rows: Vec<Vec<String>> = (0..len)
                .map(|i| {
                    lists
                        .iter()
                        .flat_map(|l| l[i % l.len()].iter().cloned())
                        .collect()
                })
                .collect();
            if first.is_none() {
                let n = rows.len() as u64;
                first = Some((Box::new(rows.into_iter().map(Ok)), Some(n)));
            } else {
                rest.push(rows);
            }
        }
        let (first, n) = first.expect("a first group");
        let product: u64 = rest.iter().map(|r| r.len() as u64).product();
        let total = n.map(|n| match reading.per_job {
            Some(k) if k > 1 => (n * product).div_ceil(k as u64),
            _ => n * product,
        });
        names.extend(files);
        Ok(Inputs {
            first,
            rest,
            current: None,
            per_job: reading.per_job,
            total,
            names,
        })
    }

    /// Every row, read now (`-N` not applied).
    fn all_rows(&mut self) -> Result<Vec<Vec<String>>, String> {
        let mut rows = Vec::new();
        while let Some(r) = self.next_row() {
            rows.push(r?);
        }
        Ok(rows)
    }

    /// Makes `rows` the jobs, one each.
    fn replace_rows(&mut self, rows: Vec<Vec<String>>) {
        self.total = Some(rows.len() as u64);
        self.first = Box::new(rows.into_iter().map(Ok));
        self.rest.clear();
        self.current = None;
    }

    /// `--shuf`: reads every input now and puts the jobs in a random
    /// order (`{#}` then numbers them in that order, as in GNU parallel).
    pub(crate) fn shuffle(&mut self) -> Result<(), String> {
        let per_job = self.per_job.take();
        let mut rows = self.all_rows()?;
        fastrand::shuffle(&mut rows);
        self.replace_rows(rows);
        self.per_job = per_job;
        if let (Some(k), Some(n)) = (per_job.filter(|k| *k > 1), self.total) {
            self.total = Some(n.div_ceil(k as u64));
        }
        Ok(())
    }

    /// `-m`, `-X`, `--xargs`: several inputs per job, consecutive ones
    /// together, at most `line` bytes of arguments in one job (and at most
    /// `-N K` inputs). GNU parallel's rule: jobs are filled while the
    /// inputs left do not fit in one job; what is left then is shared
    /// evenly among the `slots` (`even`, -m and -X) or filled too
    /// (`--xargs`). With `-N0` the jobs are made as without `-N`, and
    /// their inputs given to none (GNU parallel's: `-j3 -N0 -m` makes
    /// three jobs of seven inputs, `--xargs -N0` one).
    pub(crate) fn share(&mut self, slots: usize, line: usize, even: bool) -> Result<(), String> {
        let none = self.per_job == Some(0);
        let cap = match self.per_job {
            Some(k) if k > 0 => k,
            _ => usize::MAX,
        };
        let rows = self.all_rows()?;
        let len = |row: &Vec<String>| row.iter().map(|a| a.len() + 1).sum::<usize>();
        let mut left: usize = rows.iter().map(len).sum();
        let mut jobs: Vec<Vec<String>> = Vec::new();
        let (mut job, mut rows_in, mut bytes) = (Vec::new(), 0usize, 0usize);
        // Rows per job once the rest fits on one line (even sharing).
        let mut each: Option<usize> = None;
        let n = rows.len();
        for (i, row) in rows.into_iter().enumerate() {
            let l = len(&row);
            if rows_in > 0 && (each == Some(rows_in) || rows_in == cap || bytes + l > line) {
                jobs.push(std::mem::take(&mut job));
                (rows_in, bytes) = (0, 0);
            }
            // At a job's start: once the rest fits on one line, it is
            // shared evenly.
            if rows_in == 0 && each.is_none() && even && left <= line && n - i <= cap {
                each = Some((n - i).div_ceil(slots.max(1)).max(1));
            }
            job.extend(row);
            rows_in += 1;
            bytes += l;
            left -= l;
        }
        if rows_in > 0 {
            jobs.push(job);
        }
        if none {
            // Given to none: empty stand-ins that count the inputs.
            jobs.iter_mut().flatten().for_each(String::clear);
        }
        self.per_job = None;
        self.replace_rows(jobs);
        Ok(())
    }

    /// The next combination of the sources' rows.
    fn next_row(&mut self) -> Option<Result<Vec<String>, String>> {
        if self.rest.iter().any(Vec::is_empty) {
            return None;
        }
        loop {
            if let Some((head, odo)) = self.current.as_mut() {
                let mut args = head.clone();
                for (i, r) in odo.iter().zip(&self.rest) {
                    args.extend(r[*i].iter().cloned());
                }
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

impl Iterator for Inputs {
    type Item = Result<Vec<String>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.per_job {
            // -N0: one input per job, given to none.
            Some(0) => Some(self.next_row()?.map(|_| Vec::new())),
            // -N K: K inputs (the last job may have fewer: a missing
            // {N} is empty, as in GNU parallel).
            Some(k) if k > 1 => {
                let mut args = match self.next_row()? {
                    Ok(r) => r,
                    Err(e) => return Some(Err(e)),
                };
                for _ in 1..k {
                    match self.next_row() {
                        Some(Ok(r)) => args.extend(r),
                        Some(Err(e)) => return Some(Err(e)),
                        None => break,
                    }
                }
                Some(Ok(args))
            }
            _ => self.next_row(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_line_is_gnu_parallels_for_this_kernel() {
        // With 4 KiB pages, GNU parallel's search stops at 130,329
        // (`parallel --max-line-length-allowed`), and it uses 63,664.
        if rustix::param::page_size() == 4096 {
            assert_eq!(default_max_chars(), 63_664);
        }
        let accepted = |len: usize| len <= 131_071;
        assert_eq!(find_max(82_944, 1_327_104, &accepted), 130_329);
        assert_eq!(find_max(10, 11, &accepted), 10);
    }

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
            "gzip -9 .bashrc > ''.gz; echo .bashrc . '' 1"
        );
        // As `parallel --dryrun` writes them; a dotfile in a directory:
        // its whole name is the extension.
        assert_eq!(
            t.render(4, None, &s(&["d/.e"])),
            "gzip -9 d/.e > d/.gz; echo .e d '' 4"
        );
    }

    #[test]
    fn positional_replacements_and_the_appended_default() {
        let t = Template::parse("cp {1} {2/}");
        assert_eq!(t.render(1, None, &s(&["a", "x/b"])), "cp a b");
        let t = Template::parse("echo");
        assert_eq!(
            t.render(1, None, &s(&["it's", "b"])),
            r#"echo 'it'"'"'s' b"#
        );
        // Braces that are not replacement strings stay.
        let t = Template::parse("echo ${HOME} {a,b} {} {x");
        assert_eq!(t.render(1, None, &s(&["1"])), "echo ${HOME} {a,b} 1 {x");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn escapes_are_read_as_gnu_parallels_unquote_printf_reads_them() {
        // (written, what parallel 20221122 makes of it in --tagstring)
        for (written, made) in [
            (r"x\ty", "x\ty"),
            (r"a\nb\rc", "a\nb\rc"),
            (r"\033[31m", "\u{1b}[31m"),
            (r"\101\0", "A\0"),
            (r"\1012", "A2"),
            (r"\8", "8"),
            (r"\089", "\u{0}89"),
            (r"\q\", r"\q\"),
            (r"\1341", "\u{1}"),
        ] {
            assert_eq!(unquote_printf(written), made, "{written}");
        }
        assert_eq!(delimiter(r"\001"), Ok(1));
        assert_eq!(delimiter(r"\t"), Ok(b'\t'));
        assert_eq!(delimiter(r"\\"), Ok(b'\\'));
        assert!(delimiter("ab").is_err());
    }

    #[test]
    fn an_argument_holding_the_delimiter_is_several_inputs() {
        let items = |reading: &Reading, args: &[&str]| -> Vec<Vec<String>> {
            reading
                .items(&Source::Args(s(args), false), false)
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        let lines = Reading::default();
        // As `parallel --dryrun echo ::: $'a\n' b` shows them.
        assert_eq!(
            items(&lines, &["a\n", "b"]),
            [s(&["a"]), s(&[""]), s(&["b"])]
        );
        assert_eq!(items(&lines, &["a\r\nb"]), [s(&["a\r"]), s(&["b"])]);
        let comma = Reading {
            delimiter: Some(b','),
            ..Reading::default()
        };
        assert_eq!(
            items(&comma, &["a,b,", "c"]),
            [s(&["a"]), s(&["b"]), s(&[""]), s(&["c"])]
        );
        let nul = Reading {
            delimiter: Some(0),
            ..Reading::default()
        };
        assert_eq!(items(&nul, &["l1\nl2"]), [s(&["l1\nl2"])]);
    }

    #[test]
    fn perl_expressions_are_found_as_gnu_parallel_finds_them() {
        assert_eq!(perl_expression("echo {= s/a/b/ =} x"), Some("{= s/a/b/ =}"));
        assert_eq!(perl_expression("echo {=2 $_=uc =}"), Some("{=2 $_=uc =}"));
        assert_eq!(perl_expression("echo {=}"), None);
        assert_eq!(perl_expression("a=} {= b"), None);
        assert_eq!(perl_expression("echo {} ${x:=1}"), None);
    }

    #[test]
    fn inputs_are_quoted_as_gnu_parallel_quotes_them_for_each_shell() {
        // (input, sh, csh, rc): what GNU parallel 20221122 writes in
        // `parallel --dryrun echo ::: INPUT` under PARALLEL_SHELL=sh,
        // csh and rc.
        let cases = [
            ("plain-_.+/9", "plain-_.+/9", "plain-_.+/9", "plain-_.+/9"),
            ("", "''", "''", "''"),
            ("x,y", "'x,y'", "x,y", "x,y"),
            ("x=1", "'x=1'", r"x\=1", "x'='1"),
            ("a b", "'a b'", r"a\ b", "a' 'b"),
            ("it's", r#"'it'"'"'s'"#, r"it\'s", "it''''s"),
            ("'", r#""'""#, r"\'", "''''"),
            ("a'", r#"'a'"'""#, r"a\'", "a''''"),
            ("$HOME", "'$HOME'", r"\$HOME", "'$'HOME"),
            (r"a\b", r"'a\b'", r"a\\b", r"a'\'b"),
            ("a:b@c%d^e", "'a:b@c%d^e'", r"a:b@c%d\^e", "a:b@c%d'^'e"),
            ("e!f", "'e!f'", r"e\!f", "e'!'f"),
            ("a;b|c&d", "'a;b|c&d'", r"a\;b\|c\&d", "a';'b'|'c'&'d"),
            ("l1\nl2", "'l1\nl2'", "l1\"\\\n\"l2", "l1'\n'l2"),
        ];
        for (input, sh, csh, rc) in cases {
            assert_eq!(Quoting::Sh.quote(input), sh, "sh: {input:?}");
            assert_eq!(Quoting::Csh.quote(input), csh, "csh: {input:?}");
            assert_eq!(Quoting::Rc.quote(input), rc, "rc: {input:?}");
        }
        assert_eq!(Quoting::for_shell(None), Quoting::Sh);
        assert_eq!(Quoting::for_shell(Some("bash")), Quoting::Sh);
        assert_eq!(Quoting::for_shell(Some("tcsh")), Quoting::Csh);
        assert_eq!(Quoting::for_shell(Some("bsd-csh")), Quoting::Csh);
        assert_eq!(Quoting::for_shell(Some("rc")), Quoting::Rc);
        let t = Template::parse("echo").quoted_for(Some("csh"));
        assert_eq!(t.render(1, None, &s(&["it's"])), r"echo it\'s");
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
        // Among several sources an empty one is one empty input (GNU
        // parallel's), unless all are empty.
        let (_, sources) = split_command(&s(&["echo", ":::", "a", ":::"]));
        let jobs: Vec<_> = Inputs::open(sources, false)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(jobs, vec![s(&["a", ""])]);
        let (_, sources) = split_command(&s(&["echo", ":::", ":::"]));
        assert_eq!(Inputs::open(sources, false).unwrap().count(), 0);
        let (_, sources) = split_command(&s(&["echo", ":::"]));
        assert_eq!(Inputs::open(sources, false).unwrap().count(), 0);
    }

    #[test]
    fn a_separator_ending_in_plus_is_itself_before_it_is_linked() {
        // --arg-sep ++: `++` separates (it was read as `+` linked, so the
        // inputs became words of the command).
        let (cmd, sources) = split_command_at(&s(&["echo", "++", "a", "++", "b"]), "++", "::::");
        assert_eq!(cmd, s(&["echo"]));
        assert_eq!(sources.len(), 2);
        assert!(matches!(&sources[1], Source::Args(w, false) if *w == s(&["b"])));
        let (_, sources) = split_command_at(&s(&["echo", "++", "a", "+++", "b"]), "++", "::::");
        assert!(matches!(&sources[1], Source::Args(w, true) if *w == s(&["b"])));
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
        let e = Inputs::open(vec![Source::File("/nonexistent/in".into(), false)], false)
            .err()
            .unwrap();
        assert!(e.contains("cannot read /nonexistent/in"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn csv_records_go_on_past_a_quoted_newline_and_an_open_one_is_an_error() {
        let lines = |v: &[&str]| {
            let v: Vec<Result<String, String>> = v.iter().map(|l| Ok(l.to_string())).collect();
            csv_records(v.into_iter(), '\n', "in".into()).collect::<Vec<_>>()
        };
        assert_eq!(
            lines(&["a,\"b", "c\",d", "e,\"\"\"q\"\"\""]),
            [
                Ok("a,\"b\nc\",d".to_string()),
                Ok("e,\"\"\"q\"\"\"".to_string())
            ]
        );
        let open = lines(&["a", "b,\"c"]);
        assert_eq!(open[0], Ok("a".to_string()));
        assert!(open[1].as_ref().unwrap_err().contains("still open"));
        assert_eq!(csv_fields("a,\"b\nc\",d", b','), s(&["a", "b\nc", "d"]));
        assert_eq!(csv_fields("x;\"a \"\"q\"\"\"", b';'), s(&["x", "a \"q\""]));
        assert_eq!(csv_fields("", b','), s(&[""]));
    }

    fn jobs(words: &[&str], reading: &Reading) -> (Option<u64>, Vec<Vec<String>>) {
        let (_, sources) = split_command(&s(words));
        let inputs = Inputs::open_with(sources, reading, false).unwrap();
        let total = inputs.total;
        (total, inputs.map(Result::unwrap).collect())
    }

    #[test]
    fn linked_sources_go_side_by_side_and_a_shorter_one_wraps() {
        let link = Reading {
            link: true,
            ..Reading::default()
        };
        let (total, got) = jobs(&["echo", ":::", "A", "B", "C", ":::", "D", "E", "F"], &link);
        assert_eq!(total, Some(3));
        assert_eq!(got, vec![s(&["A", "D"]), s(&["B", "E"]), s(&["C", "F"])]);
        // :::+ links one source; the shortest ends the group.
        let (_, got) = jobs(
            &["echo", ":::", "a", "b", "c", ":::+", "1", "2"],
            &Reading::default(),
        );
        assert_eq!(got, vec![s(&["a", "1"]), s(&["b", "2"])]);
        // A linked pair, then a product with the next source.
        let (total, got) = jobs(
            &["echo", ":::", "a", "b", ":::+", "1", "2", ":::", "x", "y"],
            &Reading::default(),
        );
        assert_eq!(total, Some(4));
        assert_eq!(
            got,
            vec![
                s(&["a", "1", "x"]),
                s(&["a", "1", "y"]),
                s(&["b", "2", "x"]),
                s(&["b", "2", "y"])
            ]
        );
    }

    #[test]
    fn columns_split_as_perl_splits_them() {
        let split = |re: &str, text: &str| perl_split(&regex::Regex::new(re).unwrap(), text);
        assert_eq!(split(",", "a,,b,,"), ["a", "", "b", "", ""]);
        assert_eq!(split(",", ",x"), ["", "x"]);
        assert_eq!(split(",", ""), [""]);
        // An empty pattern: one column per character.
        assert_eq!(split("", "aé b"), ["a", "é", " ", "b", ""]);
        // A zero-width match makes no empty field where a field starts.
        assert_eq!(split(",?", "ab,"), ["a", "b", ""]);
        assert_eq!(split(",?", ",ab"), ["", "a", "b", ""]);
        assert_eq!(split(r"\s*", "a  b"), ["a", "b", ""]);
        assert_eq!(split(r"\s*", ",ab"), [",", "a", "b", ""]);
        assert_eq!(split(",?", "a,,b,,"), ["a", "", "b", "", ""]);
        assert_eq!(split("b*", "abab"), ["a", "a", ""]);
        assert_eq!(split("b*", "ab cd"), ["a", " ", "c", "d", ""]);
        assert_eq!(split(r"\b", "ab cd"), ["ab", " ", "cd", ""]);
        assert_eq!(split(r"\b", "abc"), ["abc", ""]);
    }

    #[test]
    fn delimiters_end_of_input_and_trimming() {
        let dir = std::env::temp_dir().join(format!("remex-cli-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("in");
        std::fs::write(&f, "a\0b c\0 d \0").unwrap();
        let path = f.to_str().unwrap();
        let nul = Reading {
            delimiter: Some(0),
            ..Reading::default()
        };
        let (_, got) = jobs(&["wc", "::::", path], &nul);
        assert_eq!(got, vec![s(&["a"]), s(&["b c"]), s(&[" d "])]);
        let trimmed = Reading {
            trim: "lr".parse().unwrap(),
            ..nul.clone()
        };
        assert_eq!(jobs(&["wc", "::::", path], &trimmed).1[2], s(&["d"]));
        assert!("x".parse::<Trim>().unwrap_err().contains("--trim"));
        assert_eq!(delimiter(r"\t").unwrap(), b'\t');
        assert_eq!(delimiter(",").unwrap(), b',');
        assert!(delimiter("ab").unwrap_err().contains("one character"));
        // -E: the rest of the source is not read.
        let eof = Reading {
            eof: Some("STOP".into()),
            ..Reading::default()
        };
        let (_, got) = jobs(&["echo", ":::", "a", "b", "STOP", "c"], &eof);
        assert_eq!(got, vec![s(&["a"]), s(&["b"])]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn columns_and_a_header_name_the_arguments() {
        let dir = std::env::temp_dir().join(format!("remex-cli-cols-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("people.csv");
        std::fs::write(&f, "name,age\nann,3\nbob , 4\n").unwrap();
        let r = Reading {
            colsep: Some(regex::Regex::new(r"\s*,\s*").unwrap()),
            header: true,
            ..Reading::default()
        };
        let (_, sources) = split_command(&s(&["echo", "::::", f.to_str().unwrap()]));
        let inputs = Inputs::open_with(sources, &r, false).unwrap();
        assert_eq!(
            inputs.names,
            vec![("name".to_string(), 1), ("age".to_string(), 2)]
        );
        let t = Template::parse_words(
            &s(&["echo", "{name}", "is", "{age}", "{2}"]),
            &Spelling {
                names: &inputs.names,
                ..Spelling::default()
            },
        );
        let lines: Vec<String> = inputs.map(|a| t.render(1, None, &a.unwrap())).collect();
        assert_eq!(lines, ["echo ann is 3 3", "echo bob is 4 4"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn several_inputs_per_job_or_none() {
        let two = Reading {
            per_job: Some(2),
            ..Reading::default()
        };
        let (total, got) = jobs(&["echo", ":::", "a", "b", "c"], &two);
        assert_eq!(total, Some(2));
        assert_eq!(got, vec![s(&["a", "b"]), s(&["c"])]);
        let t = Template::parse("echo {2}-{1}");
        // A missing {2} is nothing (`parallel --dryrun -N2 echo {2}-{1}
        // ::: a b c` prints `echo -c`).
        assert_eq!(t.render(2, None, &s(&["c"])), "echo -c");
        let none = Reading {
            per_job: Some(0),
            ..Reading::default()
        };
        let (total, got) = jobs(&["echo", ":::", "a", "b", "c"], &none);
        assert_eq!(total, Some(3));
        assert!(got.iter().all(Vec::is_empty) && got.len() == 3);
        // With several sources, K of their combinations, one after the
        // other (`parallel -N2 echo ::: a b ::: x y`: `a x a y`, `b x b y`).
        let (total, got) = jobs(&["echo", ":::", "a", "b", ":::", "x", "y"], &two);
        assert_eq!(total, Some(2));
        assert_eq!(
            got,
            vec![s(&["a", "x", "a", "y"]), s(&["b", "x", "b", "y"])]
        );
    }

    #[test]
    fn another_replacement_string_quoted_words_and_a_tag() {
        let t = Template::parse_words(
            &s(&["mv", ",,", ",,.bak"]),
            &Spelling {
                renames: &[(",,".into(), "{}")],
                ..Spelling::default()
            },
        );
        assert_eq!(t.render(1, None, &s(&["a b"])), "mv 'a b' 'a b'.bak");
        // The string it renames is text then (GNU parallel: `-I ,, echo
        // {} ,,` runs `echo {} a`), and a command holding neither gets
        // the input after it.
        let renamed = Spelling {
            renames: &[(",,".into(), "{}")],
            ..Spelling::default()
        };
        let t = Template::parse_words(&s(&["echo", "{}", ",,", "{1}"]), &renamed);
        assert_eq!(t.render(1, None, &s(&["a"])), "echo {} a {1}");
        let t = Template::parse_words(&s(&["echo", "x{}"]), &renamed);
        assert_eq!(t.render(1, None, &s(&["a"])), "echo x{} a");
        // Its positional forms too; another string's stay.
        let t = Template::parse_words(&s(&["echo", "{1}", "{-1}", "{1.}", ",,"]), &renamed);
        assert_eq!(t.render(1, None, &s(&["a.b"])), "echo {1} {-1} a a.b");
        // -q: each word one shell word, replacement strings filled in.
        let t = Template::parse_words(
            &s(&["perl", "-e", "print \"{}\\n\""]),
            &Spelling {
                quote_words: true,
                ..Spelling::default()
            },
        );
        assert_eq!(
            t.render(1, None, &s(&["x y"])),
            r#"perl -e 'print "x y\n"'"#
        );
        let t = Template::parse_words(
            &s(&["echo", "a;b"]),
            &Spelling {
                quote_words: true,
                ..Spelling::default()
            },
        );
        assert_eq!(t.render(1, None, &s(&["$HOME"])), "echo 'a;b' '$HOME'");
        // -q without a command: each input one quoted word (GNU parallel
        // runs `'echo a'`: command not found).
        let t = Template::parse_words(
            &[],
            &Spelling {
                quote_words: true,
                ..Spelling::default()
            },
        );
        assert_eq!(t.render(1, None, &s(&["echo a", "b"])), "'echo a' b");
        let tag = Template::parse_tag("{#}:{1}", &Spelling::default());
        let at = At {
            seq: 3,
            slot: 1,
            total: None,
            slots: 1,
        };
        assert_eq!(tag.render_plain(at, &s(&["a b"])), "3:a b");
    }

    #[test]
    fn context_words_slots_and_shared_inputs() {
        let t = Template::parse("echo pre-{}-post {#}").in_context();
        let at = At {
            seq: 2,
            slot: 3,
            total: None,
            slots: 4,
        };
        assert_eq!(
            t.render_at(at, &s(&["1", "it's"])),
            r#"echo pre-1-post pre-'it'"'"'s'-post 2"#
        );
        assert_eq!(
            Template::parse("echo {%}").render_at(at, &s(&["a"])),
            "echo 3"
        );
        assert!(Template::parse("echo {%}").uses_slot());
        assert!(!Template::parse("echo {#}").uses_slot());
        let mut inputs = Inputs::open(
            vec![Source::Args(
                (1..=7).map(|i| i.to_string()).collect(),
                false,
            )],
            true,
        )
        .unwrap();
        inputs.share(3, LINE_ARGS, true).unwrap();
        assert_eq!(inputs.total, Some(3));
        let jobs: Vec<Vec<String>> = inputs.map(Result::unwrap).collect();
        assert_eq!(
            jobs,
            vec![s(&["1", "2", "3"]), s(&["4", "5", "6"]), s(&["7"])]
        );
        // At most LINE_ARGS bytes of arguments in one job.
        let big = "x".repeat(LINE_ARGS / 2);
        let mut inputs = Inputs::open(
            vec![Source::Args(vec![big.clone(), big.clone(), big], false)],
            true,
        )
        .unwrap();
        inputs.share(1, LINE_ARGS, true).unwrap();
        assert_eq!(inputs.count(), 3);
        // GNU parallel's rule: full lines while the rest does not fit on
        // one, then the rest shared evenly.
        let nums: Vec<String> = (1..=30).map(|i| i.to_string()).collect();
        let mut inputs = Inputs::open(vec![Source::Args(nums.clone(), false)], true).unwrap();
        inputs.share(2, 40, true).unwrap();
        let jobs: Vec<Vec<String>> = inputs.map(Result::unwrap).collect();
        assert_eq!(
            jobs,
            vec![
                nums[..16].to_vec(),
                nums[16..29].to_vec(),
                nums[29..].to_vec()
            ]
        );
        // --xargs: full lines to the end.
        let mut inputs = Inputs::open(vec![Source::Args(nums.clone(), false)], true).unwrap();
        inputs.share(2, 60, false).unwrap();
        assert_eq!(
            inputs
                .map(Result::unwrap)
                .map(|j| j.len())
                .collect::<Vec<_>>(),
            [23, 7]
        );
    }

    #[test]
    fn plus_pads_the_number_and_the_slot_to_their_widths() {
        let plus = Spelling {
            plus: true,
            ..Spelling::default()
        };
        let t = Template::parse_words(&s(&["echo {0#} {0%} {..}"]), &plus);
        assert!(t.needs_total() && t.uses_slot());
        let at = At {
            seq: 7,
            slot: 3,
            total: Some(120),
            slots: 12,
        };
        assert_eq!(t.render_at(at, &s(&["x.tar.gz"])), "echo 007 03 x");
        // Without --plus they are text, as in GNU parallel.
        let t = Template::parse("echo {0#} {..}");
        assert_eq!(t.render(1, None, &s(&["a"])), "echo {0#} {..} a");
    }
}
