//! The import-circle check of `cargo xtask lint`: within each module of
//! each crate under `crates/`, the modules it holds must not use each
//! other in a circle (a file that reads only when another is read, and
//! the other only when the first is).
//!
//! A module's uses are the paths its file names: `use` trees and paths in
//! code (`crate::`, `super::`, `self::` and its own child modules), with
//! comments, strings and `#[cfg(test)]` modules left out. A use of module
//! `a::x` from module `a::b::c` is an edge `b -> x` among the children of
//! `a`. A child using its parent's items is not an edge (the parent is
//! where they meet), nor is a parent using its child.
//!
//! A path through a re-export (`pub use`, as the crate root's `pub use
//! conn::channel::Channel`) is followed to the module that defines it.
//!
//! Circles that exist and are known are listed in [`KNOWN`] with why; a
//! new circle, or a known one that grew, fails; a known one that is gone
//! fails too until it is struck from the list (so the list only shrinks).
//! `XTASK_CIRCLES_ALL=1 cargo xtask lint` prints the known ones' edges.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Circles still there: (crate, the module that holds them, its children
/// in the circle, sorted).
const KNOWN: &[(&str, &str, &[&str])] = &[
    // None left (issue 29 broke the last: remex-core's channel <-> conn,
    // gateway <-> transport, error <-> spec <-> transport, value <-> wire).
];

/// A module: its path in the crate and its file.
struct Module {
    path: Vec<String>,
    file: PathBuf,
}

/// One use of a module by another, for the report.
#[derive(Clone)]
struct Evidence {
    file: PathBuf,
    line: usize,
    text: String,
}

/// Checks every crate under `crates/`; the error lists what fails.
pub(crate) fn check(root: &Path) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut found: BTreeSet<(String, String, Vec<String>)> = BTreeSet::new();
    for dir in crate::crate_dirs(root)? {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for top in ["lib.rs", "main.rs"] {
            let file = dir.join("src").join(top);
            if !file.exists() {
                continue;
            }
            let modules = tree(&file)?;
            for (level, members, edges) in circles(&modules)? {
                let known = KNOWN.iter().any(|(c, l, m)| {
                    *c == name && *l == level && m.iter().copied().eq(members.iter().map(|s| &**s))
                });
                let show = std::env::var_os("XTASK_CIRCLES_ALL").is_some();
                if !known || show {
                    let mut text = format!(
                        "{name}: a circle among the modules of `{}`: {}\n",
                        if level.is_empty() { "crate" } else { &level },
                        members.join(", ")
                    );
                    for ((a, b), ev) in &edges {
                        text.push_str(&format!(
                            "    {a} -> {b}: {}:{}: {}\n",
                            ev.file.strip_prefix(root).unwrap_or(&ev.file).display(),
                            ev.line,
                            ev.text
                        ));
                    }
                    if known {
                        print!("known: {text}");
                    } else {
                        problems.push(text);
                    }
                }
                found.insert((name.clone(), level, members));
            }
        }
    }
    for (c, l, m) in KNOWN {
        let key = (
            c.to_string(),
            l.to_string(),
            m.iter().map(|s| s.to_string()).collect(),
        );
        if !found.contains(&key) {
            problems.push(format!(
                "{c}: the known circle {m:?} in `{l}` is gone or changed: update KNOWN in xtask/src/circles.rs\n"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("import circles:\n{}", problems.concat()))
    }
}

/// The modules reachable from a crate's root file by `mod x;`.
fn tree(root: &Path) -> Result<Vec<Module>, String> {
    let mut out = Vec::new();
    let mut todo = vec![(Vec::new(), root.to_path_buf())];
    while let Some((path, file)) = todo.pop() {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let code = strip(&text);
        // Where this module's children live: beside lib.rs/main.rs/mod.rs,
        // else in the directory named after the file.
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned());
        let dir = match stem.as_deref() {
            Some("lib" | "main" | "mod") => file.parent().map(Path::to_path_buf),
            _ => file.parent().map(|p| p.join(stem.unwrap_or_default())),
        }
        .unwrap_or_default();
        for child in declared(&code) {
            let a = dir.join(format!("{child}.rs"));
            let b = dir.join(&child).join("mod.rs");
            let f = if a.exists() { a } else { b };
            if f.exists() {
                let mut p = path.clone();
                p.push(child);
                todo.push((p, f));
            }
        }
        out.push(Module { path, file });
    }
    Ok(out)
}

/// `mod name;` declarations (not inline modules).
fn declared(code: &str) -> Vec<String> {
    let toks = tokens(code);
    let mut out = Vec::new();
    for w in toks.windows(3) {
        if w[0].1 == "mod" && is_ident(&w[1].1) && w[2].1 == ";" {
            out.push(w[1].1.clone());
        }
    }
    out
}

type Edges = BTreeMap<(String, String), Evidence>;

/// The circles among siblings: (the parent's path, the members, the edges
/// among them with one use each).
fn circles(modules: &[Module]) -> Result<Vec<(String, Vec<String>, Edges)>, String> {
    let known: BTreeSet<&[String]> = modules.iter().map(|m| &m.path[..]).collect();
    let mut read = Vec::new();
    // What each module re-exports (`pub use`): (module, name) -> the path.
    let mut aliases: BTreeMap<(Vec<String>, String), Vec<String>> = BTreeMap::new();
    for m in modules {
        let text =
            std::fs::read_to_string(&m.file).map_err(|e| format!("{}: {e}", m.file.display()))?;
        let code = strip(&text);
        let children: BTreeSet<String> = declared(&code).into_iter().collect();
        for target in reexports(&code, &m.path, &children) {
            if let Some(name) = target.last() {
                aliases.insert((m.path.clone(), name.clone()), target);
            }
        }
        read.push((m, text, code, children));
    }
    // The module a path names, through re-exports: the longest module
    // prefix, and again from what it re-exports under the next name.
    let module_of = |mut path: Vec<String>| -> Option<Vec<String>> {
        for _ in 0..8 {
            let n = (0..=path.len())
                .rev()
                .find(|&n| known.contains(&path[..n]))?;
            let via = path
                .get(n)
                .and_then(|name| aliases.get(&(path[..n].to_vec(), name.clone())));
            match via {
                Some(target) if *target != path[..=n] => {
                    let mut p = target.clone();
                    p.extend_from_slice(&path[n + 1..]);
                    path = p;
                }
                _ => return Some(path[..n].to_vec()),
            }
        }
        None
    };
    // Edges by level (the parent's path).
    let mut levels: BTreeMap<Vec<String>, Edges> = BTreeMap::new();
    for (m, text, code, children) in read {
        for (target, line) in uses(&code, &m.path, &children) {
            let Some(t) = module_of(target) else {
                continue;
            };
            let t = &t[..];
            let k = m.path.iter().zip(t).take_while(|(a, b)| a == b).count();
            if k < m.path.len() && k < t.len() {
                let ev = Evidence {
                    file: m.file.clone(),
                    line,
                    text: text
                        .lines()
                        .nth(line - 1)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                levels
                    .entry(m.path[..k].to_vec())
                    .or_default()
                    .entry((m.path[k].clone(), t[k].clone()))
                    .or_insert(ev);
            }
        }
    }
    let mut out = Vec::new();
    for (level, edges) in levels {
        for members in strongly_connected(&edges) {
            let inside: Edges = edges
                .iter()
                .filter(|((a, b), _)| members.contains(a) && members.contains(b))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            out.push((level.join("::"), members, inside));
        }
    }
    Ok(out)
}

/// Tarjan's strongly connected components with more than one member.
fn strongly_connected(edges: &Edges) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        graph.entry(a).or_default().push(b);
        graph.entry(b).or_default();
    }
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(n: &'a str, g: &BTreeMap<&'a str, Vec<&'a str>>, s: &mut State<'a>) {
        let i = s.index.len();
        s.index.insert(n, i);
        s.low.insert(n, i);
        s.stack.push(n);
        s.on.insert(n);
        for &w in &g[n] {
            if !s.index.contains_key(w) {
                visit(w, g, s);
                let l = s.low[w].min(s.low[n]);
                s.low.insert(n, l);
            } else if s.on.contains(w) {
                let l = s.index[w].min(s.low[n]);
                s.low.insert(n, l);
            }
        }
        if s.low[n] == s.index[n] {
            let mut c = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                c.push(w.to_string());
                if w == n {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                s.out.push(c);
            }
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for &n in graph.keys() {
        if !s.index.contains_key(n) {
            visit(n, &graph, &mut s);
        }
    }
    s.out
}

/// The absolute module paths `code` (of module `here`) names, with their
/// lines.
fn uses(code: &str, here: &[String], children: &BTreeSet<String>) -> Vec<(Vec<String>, usize)> {
    let toks = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i].1;
        let after_colons = i > 0 && toks[i - 1].1 == "::";
        let starts = !after_colons
            && (t == "crate" || t == "super" || t == "self" || children.contains(t))
            && toks.get(i + 1).is_some_and(|n| n.1 == "::");
        if !starts {
            i += 1;
            continue;
        }
        let base = match t.as_str() {
            "crate" => Vec::new(),
            "self" => here.to_vec(),
            "super" => here[..here.len().saturating_sub(1)].to_vec(),
            child => {
                let mut p = here.to_vec();
                p.push(child.to_string());
                p
            }
        };
        i = path_tree(&toks, i + 1, base, &mut out);
    }
    out
}

/// The absolute paths `code` (of module `here`) re-exports: the leaves of
/// its `pub use` (and `pub(...) use`) trees.
fn reexports(code: &str, here: &[String], children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let toks = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i].1 != "pub" {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        if toks.get(j).is_some_and(|t| t.1 == "(") {
            while toks.get(j).is_some_and(|t| t.1 != ")") {
                j += 1;
            }
            j += 1;
        }
        if toks.get(j).is_none_or(|t| t.1 != "use") {
            i = j;
            continue;
        }
        let end = (j..toks.len())
            .find(|&k| toks[k].1 == ";")
            .unwrap_or(toks.len());
        let stmt: String = toks[j + 1..end]
            .iter()
            .map(|t| t.1.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let mut leaves = uses(&stmt, here, children)
            .into_iter()
            .map(|(p, _)| p)
            .collect::<Vec<_>>();
        // Only the leaves: a path another one extends is a prefix.
        let all = leaves.clone();
        leaves.retain(|p| !all.iter().any(|q| q.len() > p.len() && q.starts_with(p)));
        out.extend(leaves);
        i = end;
    }
    out
}

/// Reads `::seg::seg...` or `::{a, b::c}` from `toks[i]` (a `::`) on,
/// adding each named path to `out`; returns the index after it.
fn path_tree(
    toks: &[(usize, String)],
    mut i: usize,
    mut path: Vec<String>,
    out: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    let line = toks.get(i).map_or(0, |t| t.0);
    while toks.get(i).is_some_and(|t| t.1 == "::") {
        match toks.get(i + 1).map(|t| t.1.as_str()) {
            Some("{") => {
                i += 2;
                loop {
                    match toks.get(i).map(|t| t.1.as_str()) {
                        None => return i,
                        Some("}") => return i + 1,
                        Some(",") => i += 1,
                        Some("self") => {
                            out.push((path.clone(), toks[i].0));
                            i += 1;
                        }
                        Some("super") => {
                            // `{super::x}` is rare; take it as the parent.
                            let mut p = path.clone();
                            p.pop();
                            i = path_tree(toks, i + 1, p, out);
                        }
                        Some(s) if is_ident(s) => {
                            let mut p = path.clone();
                            p.push(s.to_string());
                            out.push((p.clone(), toks[i].0));
                            i = path_tree(toks, i + 1, p, out);
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            Some("super") => {
                path.pop();
                i += 2;
            }
            Some(s) if is_ident(s) => {
                path.push(s.to_string());
                i += 2;
            }
            _ => break,
        }
    }
    out.push((path, line));
    i
}

fn is_ident(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Identifiers, `::` and single punctuation, with their lines.
fn tokens(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut line = 1;
    let b: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push((line, b[start..i].iter().collect()));
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            out.push((line, "::".into()));
            i += 2;
        } else {
            out.push((line, c.to_string()));
            i += 1;
        }
    }
    out
}

/// `text` without comments, string and character literals, and
/// `#[cfg(test)]` items; newlines kept, so lines still count.
fn strip(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[char]| {
        for &c in s {
            out.push(if c == '\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let start = i;
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
            blank(&mut out, &b[start..i]);
        } else if c == '/' && next == Some('*') {
            let start = i;
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            blank(&mut out, &b[start..i.min(b.len())]);
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == '_'))
        {
            // A raw string: r"...", r#"..."#.
            let start = i;
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
            blank(&mut out, &b[start..i.min(b.len())]);
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            blank(&mut out, &b[start..i.min(b.len())]);
        } else if c == '\'' && (b.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A character literal ('x', '\n', '\''), not a lifetime.
            let start = i;
            i += 1;
            if b.get(i) == Some(&'\\') {
                i += 1;
            }
            i += 1;
            while i < b.len() && b[i] != '\'' {
                i += 1;
            }
            i += 1;
            blank(&mut out, &b[start..i.min(b.len())]);
        } else {
            out.push(c);
            i += 1;
        }
    }
    drop_test_items(&out)
}

/// Blanks `#[cfg(test)]` items (test modules import freely).
fn drop_test_items(code: &str) -> String {
    let mut b: Vec<char> = code.chars().collect();
    let pat: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + pat.len() <= b.len() {
        if b[i..i + pat.len()] != pat[..] {
            i += 1;
            continue;
        }
        // The item ends at its first `;` before any `{`, or at the `}`
        // that closes its first `{`.
        let mut j = i + pat.len();
        let mut depth = 0usize;
        while j < b.len() {
            match b[j] {
                ';' if depth == 0 => break,
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        let end = (j + 1).min(b.len());
        for c in &mut b[i..end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = j + 1;
    }
    b.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The circles of a crate made of `files` (in a directory of its own
    /// per `case`: the tests run at once).
    fn edges_of(case: &str, files: &[(&str, &str)]) -> Vec<(String, Vec<String>, Edges)> {
        let dir = std::env::temp_dir().join(format!("xtask-circles-{}-{case}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&p, text).expect("write");
        }
        let modules = tree(&dir.join("lib.rs")).expect("tree");
        let got = circles(&modules).expect("circles");
        let _ = std::fs::remove_dir_all(&dir);
        got
    }

    #[test]
    fn a_circle_between_two_files_is_found_with_its_lines() {
        let got = edges_of(
            "two",
            &[
                ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
                ("a.rs", "use crate::b::B;\n"),
                (
                    "b.rs",
                    "// crate::c::C in a comment\nfn f() { crate::a::g() }\n",
                ),
                ("c.rs", "use crate::{a::{self, A}, b};\n"),
            ],
        );
        assert_eq!(
            got.len(),
            1,
            "{:?}",
            got.iter().map(|g| &g.1).collect::<Vec<_>>()
        );
        let (level, members, edges) = &got[0];
        assert_eq!(level, "");
        assert_eq!(members, &["a", "b"]);
        let ab = &edges[&("a".to_string(), "b".to_string())];
        assert_eq!(ab.line, 1);
        let ba = &edges[&("b".to_string(), "a".to_string())];
        assert_eq!(ba.line, 2);
    }

    #[test]
    fn parents_children_tests_and_strings_make_no_circle() {
        let got = edges_of(
            "none",
            &[
                ("lib.rs", "mod d;\nmod e;\n"),
                (
                    "d/mod.rs",
                    "mod x;\nmod y;\npub(crate) use x::X;\nfn f() { y::g() }\n",
                ),
                ("d/x.rs", "use super::Shared;\nuse crate::d::y;\n"),
                (
                    "d/y.rs",
                    "use super::super::e;\nconst S: &str = \"crate::d::x\";\n",
                ),
                (
                    "e.rs",
                    "fn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::d::x;\n}\n",
                ),
            ],
        );
        assert!(
            got.is_empty(),
            "{:?}",
            got.iter().map(|g| &g.1).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_circle_inside_a_directory_module_is_found_there() {
        let got = edges_of(
            "dir",
            &[
                ("lib.rs", "mod d;\n"),
                ("d/mod.rs", "mod x;\nmod y;\n"),
                ("d/x.rs", "use super::y::Y;\n"),
                ("d/y.rs", "use crate::d::x::X;\n"),
            ],
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "d");
        assert_eq!(got[0].1, ["x", "y"]);
    }

    #[test]
    fn a_circle_through_a_reexport_is_found() {
        let got = edges_of(
            "reexport",
            &[
                ("lib.rs", "mod a;\nmod b;\npub use a::inner::Thing;\n"),
                ("a/mod.rs", "pub mod inner;\n"),
                ("a/inner.rs", "use crate::b::B;\npub struct Thing;\n"),
                ("b.rs", "use crate::{Thing, a};\n"),
            ],
        );
        assert_eq!(
            got.len(),
            1,
            "{:?}",
            got.iter().map(|g| &g.1).collect::<Vec<_>>()
        );
        assert_eq!(got[0].1, ["a", "b"]);
    }
}
