//! `--plus`'s replacement strings modelled on bash's parameter expansion,
//! with GNU parallel's rules (its `%Global::plus` table): `{:-text}`,
//! `{:N}`, `{:N:M}`, `{#re}`, `{##re}`, `{%re}`, `{%%re}`, `{/re/text}`,
//! `{/#re/text}`, `{/%re/text}`, `{//re/text}`, `{^re}`, `{^^re}`,
//! `{,re}`, `{,,re}`. Patterns are regular expressions (Perl's in GNU
//! parallel, the `regex` crate's here: the same for the patterns people
//! write); the replacement text is taken as it is.

use regex::Regex;

/// One of them, parsed.
#[derive(Debug, Clone)]
pub(crate) enum Dynamic {
    /// `{:-text}`: `text` when the argument is empty (or `0`, as Perl's
    /// `||=` in parallel).
    Default(String),
    /// `{:N}`, `{:N:M}`: from character N on, M of them.
    Substr(usize, Option<usize>),
    /// `{%re}`: the shortest end of the argument that `re` matches, gone
    /// (the regex: anything, then `re` lazy as group 1, then the end).
    Suffix(Regex),
    /// `{#re}`, `{##re}`, `{%re}`, `{%%re}`, the `/` forms and the case
    /// changes: a regex applied once or everywhere, with what it does.
    Edit { re: Regex, edit: Edit, all: bool },
}

/// What an `Edit` does where its regex matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Remove the match (`{#re}`, `{%re}` and their doubles).
    Remove,
    /// Put this text there (`{/re/text}` and its anchored forms).
    Put(String),
    Upper,
    Lower,
}

impl PartialEq for Dynamic {
    fn eq(&self, other: &Dynamic) -> bool {
        match (self, other) {
            (Dynamic::Default(a), Dynamic::Default(b)) => a == b,
            (Dynamic::Substr(a, b), Dynamic::Substr(c, d)) => (a, b) == (c, d),
            (Dynamic::Suffix(a), Dynamic::Suffix(b)) => a.as_str() == b.as_str(),
            (
                Dynamic::Edit { re, edit, all },
                Dynamic::Edit {
                    re: r,
                    edit: e,
                    all: a,
                },
            ) => re.as_str() == r.as_str() && edit == e && all == a,
            _ => false,
        }
    }
}

impl Eq for Dynamic {}

/// Perl's `make_regexp_ungreedy` as GNU parallel has it: `*` and `+`
/// become lazy.
fn ungreedy(re: &str) -> String {
    let mut out = String::new();
    let mut chars = re.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '*' | '+' if chars.peek() != Some(&'?') => out.push('?'),
            _ => {}
        }
    }
    out
}

impl Dynamic {
    /// `inner` (between the braces) as one of them; `None` when it is not.
    pub(crate) fn parse(inner: &str) -> Option<Dynamic> {
        Dynamic::parse_checked(inner).ok().flatten()
    }

    /// As [`Dynamic::parse`], and `Err` naming the pattern when `inner`
    /// is one of them whose pattern the `regex` crate does not read.
    pub(crate) fn parse_checked(inner: &str) -> Result<Option<Dynamic>, String> {
        let failed = std::cell::RefCell::new(None);
        let re = |s: String| {
            Regex::new(&s)
                .map_err(|e| *failed.borrow_mut() = Some(e.to_string()))
                .ok()
        };
        match (Dynamic::parse_with(inner, &re), failed.into_inner()) {
            (Some(d), _) => Ok(Some(d)),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(None),
        }
    }

    fn parse_with(inner: &str, re: &dyn Fn(String) -> Option<Regex>) -> Option<Dynamic> {
        if let Some(text) = inner.strip_prefix(":-") {
            return (!text.is_empty()).then(|| Dynamic::Default(text.to_string()));
        }
        if let Some(rest) = inner.strip_prefix(':') {
            let (n, m) = match rest.split_once(':') {
                Some((n, m)) => (n, Some(m)),
                None => (rest, None),
            };
            let num = |s: &str| {
                (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| s.parse().ok())
                    .flatten()
            };
            return Some(Dynamic::Substr(
                num(n)?,
                m.map(num).map_or(Some(None), |m| m.map(Some))?,
            ));
        }
        let edit = |pattern: String, edit: Edit, all: bool| {
            Some(Dynamic::Edit {
                re: re(pattern)?,
                edit,
                all,
            })
        };
        // GNU parallel's patterns: `{#re}` and `{##re}` with `re` not
        // starting with `#`; a doubled mark with nothing after it is the
        // single mark with the second as its pattern (`{%%}` removes a
        // trailing `%`, as `{%re}` with `re` = `%`).
        let pattern = |mark: &str| {
            inner
                .strip_prefix(mark)
                .filter(|p| !(p.is_empty() || mark.starts_with('#') && p.starts_with('#')))
        };
        if let Some(p) = pattern("##") {
            return edit(format!("^(?:{p})"), Edit::Remove, false);
        }
        if let Some(p) = pattern("#") {
            return edit(format!("^(?:{})", ungreedy(p)), Edit::Remove, false);
        }
        if let Some(p) = pattern("%%") {
            return edit(format!("(?:{p})$"), Edit::Remove, false);
        }
        if let Some(p) = inner.strip_prefix('%') {
            // The shortest match that ends the argument: found from the
            // right, as parallel's `s/(.*)re$/$1/` with `re` lazy.
            return (!p.is_empty())
                .then(|| re(format!("^(?s:.*)((?:{}))$", ungreedy(p))).map(Dynamic::Suffix))?;
        }
        for (mark, anchor, all) in [("//", "", true), ("/#", "^", true), ("/%", "$", true)] {
            if let Some(rest) = inner.strip_prefix(mark) {
                let (p, text) = rest.split_once('/')?;
                if p.is_empty() {
                    return None;
                }
                let pattern = if anchor == "^" {
                    format!("^(?:{p})")
                } else if anchor == "$" {
                    format!("(?:{p})$")
                } else {
                    p.to_string()
                };
                return edit(pattern, Edit::Put(text.to_string()), all);
            }
        }
        if let Some(rest) = inner.strip_prefix('/') {
            let (p, text) = rest.split_once('/')?;
            if p.is_empty() || p.contains(['#', '%']) {
                return None;
            }
            return edit(p.to_string(), Edit::Put(text.to_string()), false);
        }
        for (mark, case, all) in [
            ("^^", Edit::Upper, true),
            ("^", Edit::Upper, false),
            (",,", Edit::Lower, true),
            (",", Edit::Lower, false),
        ] {
            if let Some(p) = inner.strip_prefix(mark).filter(|p| !p.is_empty()) {
                let pattern = if all {
                    p.to_string()
                } else {
                    format!("^(?:{p})")
                };
                return edit(pattern, case, all);
            }
        }
        None
    }

    /// What it makes of argument `a`.
    pub(crate) fn apply(&self, a: &str) -> String {
        match self {
            Dynamic::Default(text) if a.is_empty() || a == "0" => text.clone(),
            Dynamic::Default(_) => a.to_string(),
            Dynamic::Substr(from, len) => {
                let tail = a.chars().skip(*from);
                match len {
                    Some(m) => tail.take(*m).collect(),
                    None => tail.collect(),
                }
            }
            Dynamic::Suffix(re) => match re.captures(a).and_then(|c| c.get(1)) {
                Some(m) => a[..m.start()].to_string(),
                None => a.to_string(),
            },
            Dynamic::Edit { re, edit, all } => {
                let made = |c: &regex::Captures<'_>| match edit {
                    Edit::Remove => String::new(),
                    Edit::Put(t) => t.clone(),
                    Edit::Upper => c[0].to_uppercase(),
                    Edit::Lower => c[0].to_lowercase(),
                };
                match all {
                    true => replace_all_as_perl(re, a, made),
                    false => re.replacen(a, 1, made).into_owned(),
                }
            }
        }
    }
}

/// `--plus`: each of `text`'s bash-like strings (`{#re}`, `{2/re/t}`...)
/// whose pattern the `regex` crate does not read, as an error naming it
/// (GNU parallel stops on what Perl does not read; remex would leave
/// the string as written).
pub(crate) fn check(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            break;
        };
        let inner = &after[..close];
        let unnumbered = inner
            .strip_prefix('-')
            .unwrap_or(inner)
            .trim_start_matches(|c: char| c.is_ascii_digit());
        if let Err(e) = Dynamic::parse_checked(unnumbered) {
            let e = e.lines().last().unwrap_or_default().trim().to_string();
            return Err(format!(
                "--plus: the pattern of {{{inner}}} is not a regular expression remex reads: {e}"
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// Perl's `s/re/.../g`: as `Regex::replace_all`, but an empty match
/// right after a match counts (`s/.*$/X/g` on `ab` makes `XX`); only an
/// empty match where the last empty one was is skipped.
fn replace_all_as_perl(
    re: &Regex,
    a: &str,
    made: impl Fn(&regex::Captures<'_>) -> String,
) -> String {
    let mut out = String::new();
    let (mut copied, mut from) = (0, 0);
    let mut last_empty: Option<usize> = None;
    while from <= a.len() {
        let Some(c) = re.captures_at(a, from) else {
            break;
        };
        let m = c.get(0).expect("the whole match");
        if m.is_empty() && last_empty == Some(m.start()) {
            match a[m.start()..].chars().next() {
                Some(ch) => from = m.start() + ch.len_utf8(),
                None => break,
            }
            continue;
        }
        out.push_str(&a[copied..m.start()]);
        out.push_str(&made(&c));
        copied = m.end();
        from = m.end();
        last_empty = m.is_empty().then_some(m.end());
    }
    out.push_str(&a[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(inner: &str, a: &str) -> String {
        Dynamic::parse(inner)
            .unwrap_or_else(|| panic!("{inner:?} parses"))
            .apply(a)
    }

    #[test]
    fn the_tutorials_examples_give_bashs_results() {
        // `man parallel_tutorial`, "Bash inspired replacement strings".
        assert_eq!(run(":-myval", ""), "myval");
        let v = "abcAaAdef";
        assert_eq!(run(":2", v), "cAaAdef");
        assert_eq!(run(":2:3", v), "cAa");
        assert_eq!(run("#bc", v), "abcAaAdef");
        assert_eq!(run("#abc", v), "AaAdef");
        assert_eq!(run("%de", v), "abcAaAdef");
        assert_eq!(run("%def", v), "abcAaA");
        assert_eq!(run("/def/ghi", v), "abcAaAghi");
        assert_eq!(run("^a", v), "AbcAaAdef");
        assert_eq!(run("^^a", v), "AbcAAAdef");
        assert_eq!(run(",A", "AbcAaAdef"), "abcAaAdef");
        assert_eq!(run(",,A", "AbcAaAdef"), "abcaaadef");
    }

    #[test]
    fn a_doubled_mark_alone_is_the_single_mark_with_a_pattern() {
        // GNU parallel 20221122: {%%} is {%re} with re = %, {^^} is {^re}
        // with re = ^ (the start: no change), {,,} lowers a leading comma.
        assert_eq!(run("%%", "50%"), "50");
        assert_eq!(run("^^", "abc"), "abc");
        assert_eq!(run(",,", ",x"), ",x");
        // {#re} and {##re}: re does not start with #; {/re/t}: re has no
        // # or %.
        assert!(Dynamic::parse("###").is_none());
        assert!(Dynamic::parse("/a#b/X").is_none());
    }

    #[test]
    fn a_pattern_that_is_no_regex_is_named() {
        let e = check("echo {/#?/X} {}").unwrap_err();
        assert!(e.contains("{/#?/X}"), "{e}");
        assert!(check("echo {2%%(}").unwrap_err().contains("{2%%(}"));
        // Not a pattern: braces of the shell, other strings.
        assert!(check("echo {a,b} {} {%} {:-x} {#} ${HOME} {=").is_ok());
    }

    #[test]
    fn every_match_is_replaced_as_perls_g() {
        // Perl (GNU parallel's s///g): an empty match right after a match.
        assert_eq!(run("/%.*/X", "aaa.bbb"), "XX");
        assert_eq!(run("//b*/X", "abc"), "XaXXcX");
        assert_eq!(run("//a/X", "banana"), "bXnXnX");
        assert_eq!(run("^^a", "banana"), "bAnAnA");
    }

    #[test]
    fn patterns_take_the_shortest_or_longest_match_as_bash_does() {
        // GNU parallel's own comments: {#z.*z.} ::: z.z.z.foo => z.foo,
        // {##z.*z.} => foo; {%.z.*z} ::: foo.z.z.z => foo.z, {%%.z.*z} => foo.
        assert_eq!(run("#z.*z.", "z.z.z.foo"), "z.foo");
        assert_eq!(run("##z.*z.", "z.z.z.foo"), "foo");
        assert_eq!(run("%.z.*z", "foo.z.z.z"), "foo.z");
        assert_eq!(run("%%.z.*z", "foo.z.z.z"), "foo");
        assert_eq!(run("//a/_", "banana"), "b_n_n_");
        assert_eq!(run("/#b/B", "bob"), "Bob");
        assert_eq!(run("/%b/B", "bob"), "boB");
        assert_eq!(run(":-x", "set"), "set");
    }

    #[test]
    fn what_is_not_one_of_them_is_left_alone() {
        for inner in [
            "", ":", ":x", ":2:y", "#", "%", "^", "/", "/a", "/(/b", "#(",
        ] {
            assert!(Dynamic::parse(inner).is_none(), "{inner:?}");
        }
    }
}
