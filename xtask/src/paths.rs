//! The one-path-per-name check of `cargo xtask lint`: no public item or
//! module of a library crate under `crates/` can be named by two public
//! paths of that crate (as `remex_core::Channel` beside
//! `remex_core::conn::channel::Channel`, or `remex::Gateway` beside
//! `remex::core::gateway::Gateway`).
//!
//! Each crate's sources are parsed (syn); its public paths are walked from
//! the crate root through `pub mod`s, `pub use`s (followed, also into the
//! workspace's other crates, and globs) and `pub` items; an item reached
//! by two paths fails the check with both named. Items under
//! `#[cfg(test)]` are left out; `pub(crate)` and narrower are not public.
//! Paths into crates outside the workspace (std, tokio...) are not
//! followed: re-exporting one of their items once is one path here.
//! Names are looked up in one namespace (a module first, then an item,
//! then a `use`), which is enough for this workspace: no module holds a
//! public module and a public item of the same name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What a name refers to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ent {
    /// A module, by its index.
    Module(usize),
    /// An item (not a module) defined in a module, by name.
    Item(usize, String),
}

/// A `use` binding of a module.
struct Use {
    public: bool,
    /// The path as written (`crate`, `self`, `super` or a name first).
    path: Vec<String>,
    /// The name it binds, or `None` for a glob.
    name: Option<String>,
}

/// A module of one crate.
struct Module {
    krate: String,
    path: Vec<String>,
    parent: Option<usize>,
    /// Child modules: name -> (index, declared `pub`).
    children: BTreeMap<String, (usize, bool)>,
    /// Items defined here (not modules): name -> declared `pub`.
    items: BTreeMap<String, bool>,
    uses: Vec<Use>,
}

/// The modules of every library crate, and each crate's root.
#[derive(Default)]
struct World {
    modules: Vec<Module>,
    roots: BTreeMap<String, usize>,
}

/// Checks every library crate under `crates/`; the error lists each name
/// with two or more public paths.
pub(crate) fn check(root: &Path) -> Result<(), String> {
    let world = load(root)?;
    let mut problems = Vec::new();
    for (krate, &root) in &world.roots {
        for (ent, paths) in surface(&world, root) {
            if paths.len() > 1 {
                problems.push(format!(
                    "{krate}: {} has {} public paths: {}",
                    world.describe(&ent),
                    paths.len(),
                    paths.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "names with more than one public path (one path per name; see docs/decisions.md):\n  {}",
            problems.join("\n  ")
        ))
    }
}

fn load(root: &Path) -> Result<World, String> {
    let mut world = World::default();
    let libraries = crate::crate_dirs(root)?
        .into_iter()
        .filter(|d| d.join("src/lib.rs").is_file());
    for dir in libraries {
        let krate = dir
            .file_name()
            .map(|n| n.to_string_lossy().replace('-', "_"))
            .unwrap_or_default();
        let lib = dir.join("src/lib.rs");
        let file = parse(&lib)?;
        let id = world.add(&krate, vec![krate.clone()], None);
        world.roots.insert(krate, id);
        world.fill(id, &file.items, &dir.join("src"))?;
    }
    Ok(world)
}

fn parse(file: &Path) -> Result<syn::File, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    syn::parse_file(&text).map_err(|e| format!("{}: {e}", file.display()))
}

fn is_public(vis: &syn::Visibility) -> bool {
    matches!(vis, syn::Visibility::Public(_))
}

/// `#[cfg(test)]` (or any cfg naming `test` alone).
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Path>()
                .is_ok_and(|p| p.is_ident("test"))
    })
}

/// A `#[path = "..."]` attribute's file.
fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// The flattened bindings of a use tree: (path, bound name or None for a
/// glob).
fn flatten(
    tree: &syn::UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                let bound = prefix.last().cloned();
                out.push((prefix.clone(), bound));
            } else {
                let mut p = prefix.clone();
                p.push(name.clone());
                out.push((p, Some(name)));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut p = prefix.clone();
            if r.ident != "self" {
                p.push(r.ident.to_string());
            }
            out.push((p, Some(r.rename.to_string())));
        }
        syn::UseTree::Glob(_) => out.push((prefix.clone(), None)),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten(t, prefix, out);
            }
        }
    }
}

impl World {
    fn add(&mut self, krate: &str, path: Vec<String>, parent: Option<usize>) -> usize {
        self.modules.push(Module {
            krate: krate.to_string(),
            path,
            parent,
            children: BTreeMap::new(),
            items: BTreeMap::new(),
            uses: Vec::new(),
        });
        self.modules.len() - 1
    }

    /// Records the items of module `id`; its child modules' files are
    /// under `dir`.
    fn fill(&mut self, id: usize, items: &[syn::Item], dir: &Path) -> Result<(), String> {
        for item in items {
            let (vis, name, attrs) = match item {
                syn::Item::Mod(m) => {
                    if is_test_only(&m.attrs) {
                        continue;
                    }
                    let name = m.ident.to_string();
                    if self.modules[id].children.contains_key(&name) {
                        continue; // a cfg alternative of the same module
                    }
                    let mut path = self.modules[id].path.clone();
                    path.push(name.clone());
                    let krate = self.modules[id].krate.clone();
                    let child = self.add(&krate, path, Some(id));
                    self.modules[id]
                        .children
                        .insert(name.clone(), (child, is_public(&m.vis)));
                    let child_dir = dir.join(&name);
                    match &m.content {
                        Some((_, inner)) => self.fill(child, inner, &child_dir)?,
                        None => {
                            let f = match path_attr(&m.attrs) {
                                Some(p) => dir.join(p),
                                None if dir.join(format!("{name}.rs")).is_file() => {
                                    dir.join(format!("{name}.rs"))
                                }
                                None => child_dir.join("mod.rs"),
                            };
                            let parsed = parse(&f)?;
                            self.fill(child, &parsed.items, &child_dir)?;
                        }
                    }
                    continue;
                }
                syn::Item::Use(u) => {
                    if is_test_only(&u.attrs) {
                        continue;
                    }
                    let mut out = Vec::new();
                    flatten(&u.tree, &mut Vec::new(), &mut out);
                    for (path, name) in out {
                        self.modules[id].uses.push(Use {
                            public: is_public(&u.vis),
                            path,
                            name,
                        });
                    }
                    continue;
                }
                syn::Item::Const(i) => (&i.vis, i.ident.to_string(), &i.attrs),
                syn::Item::Enum(i) => (&i.vis, i.ident.to_string(), &i.attrs),
                syn::Item::Fn(i) => (&i.vis, i.sig.ident.to_string(), &i.attrs),
                syn::Item::Static(i) => (&i.vis, i.ident.to_string(), &i.attrs),
                syn::Item::Struct(i) => (&i.vis, i.ident.to_string(), &i.attrs),
                syn::Item::Trait(i) => (&i.vis, i.ident.to_string(), &i.attrs),
                syn::Item::Type(i) => (&i.vis, i.ident.to_string(), &i.attrs),
                syn::Item::Union(i) => (&i.vis, i.ident.to_string(), &i.attrs),
                _ => continue,
            };
            if !is_test_only(attrs) {
                self.modules[id].items.insert(name, is_public(vis));
            }
        }
        Ok(())
    }

    /// What `path`, written in module `at`, names (`None`: outside the
    /// workspace, or not found).
    fn resolve(&self, at: usize, path: &[String], depth: usize) -> Option<Ent> {
        if depth > 32 {
            return None;
        }
        let (first, rest) = path.split_first()?;
        let krate_root = self.roots[&self.modules[at].krate];
        let mut cur = match first.as_str() {
            "crate" => Ent::Module(krate_root),
            "self" => Ent::Module(at),
            "super" => Ent::Module(self.modules[at].parent?),
            name => match self.lookup(at, name, false, depth + 1) {
                Some(e) => e,
                None => Ent::Module(*self.roots.get(name)?),
            },
        };
        let krate = &self.modules[at].krate;
        for seg in rest {
            let Ent::Module(m) = cur else { return None };
            // Another crate's private names are out of reach.
            let public = self.modules[m].krate != *krate;
            cur = match seg.as_str() {
                "super" => Ent::Module(self.modules[m].parent?),
                "self" => Ent::Module(m),
                name => self.lookup(m, name, public, depth + 1)?,
            };
        }
        Some(cur)
    }

    /// The binding of `name` in module `m` (only its public ones if
    /// `public`).
    fn lookup(&self, m: usize, name: &str, public: bool, depth: usize) -> Option<Ent> {
        let module = &self.modules[m];
        if let Some(&(child, p)) = module.children.get(name) {
            if p || !public {
                return Some(Ent::Module(child));
            }
        }
        if let Some(&p) = module.items.get(name) {
            if p || !public {
                return Some(Ent::Item(m, name.to_string()));
            }
        }
        for u in &module.uses {
            if (u.public || !public) && u.name.as_deref() == Some(name) {
                if let Some(e) = self.resolve(m, &u.path, depth + 1) {
                    return Some(e);
                }
            }
        }
        for u in module.uses.iter().filter(|u| u.name.is_none()) {
            if u.public || !public {
                if let Some(Ent::Module(g)) = self.resolve(m, &u.path, depth + 1) {
                    if let Some(e) = self.lookup(g, name, true, depth + 1) {
                        return Some(e);
                    }
                }
            }
        }
        None
    }

    /// The public names of module `m` and what they name.
    fn public_names(&self, m: usize, depth: usize) -> BTreeMap<String, Ent> {
        let mut out = BTreeMap::new();
        if depth > 32 {
            return out;
        }
        let module = &self.modules[m];
        for (name, &(child, p)) in &module.children {
            if p {
                out.insert(name.clone(), Ent::Module(child));
            }
        }
        for (name, &p) in &module.items {
            if p {
                out.insert(name.clone(), Ent::Item(m, name.clone()));
            }
        }
        for u in module.uses.iter().filter(|u| u.public) {
            match &u.name {
                Some(name) => {
                    if let Some(e) = self.resolve(m, &u.path, depth + 1) {
                        out.insert(name.clone(), e);
                    }
                }
                None => {
                    if let Some(Ent::Module(g)) = self.resolve(m, &u.path, depth + 1) {
                        for (name, e) in self.public_names(g, depth + 1) {
                            out.entry(name).or_insert(e);
                        }
                    }
                }
            }
        }
        out
    }

    fn describe(&self, ent: &Ent) -> String {
        match ent {
            Ent::Module(m) => format!("module {}", self.modules[*m].path.join("::")),
            Ent::Item(m, name) => format!("{}::{name}", self.modules[*m].path.join("::")),
        }
    }
}

/// Every public path of the crate whose root is `root`, by what it names.
fn surface(world: &World, root: usize) -> BTreeMap<Ent, BTreeSet<String>> {
    let mut out: BTreeMap<Ent, BTreeSet<String>> = BTreeMap::new();
    let name = world.modules[root].path.join("::");
    walk(world, root, &name, &mut vec![root], &mut out);
    out
}

fn walk(
    world: &World,
    m: usize,
    prefix: &str,
    stack: &mut Vec<usize>,
    out: &mut BTreeMap<Ent, BTreeSet<String>>,
) {
    for (name, ent) in world.public_names(m, 0) {
        let path = format!("{prefix}::{name}");
        out.entry(ent.clone()).or_default().insert(path.clone());
        if let Ent::Module(child) = ent {
            if !stack.contains(&child) {
                stack.push(child);
                walk(world, child, &path, stack, out);
                stack.pop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A world of one crate `k` made of `files` (path under src/, text).
    fn world_of(files: &[(&str, &str)]) -> (World, tempfile_dir::Dir) {
        let dir = tempfile_dir::Dir::new();
        for (path, text) in files {
            let p = dir.0.join("crates/k/src").join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        (load(&dir.0).unwrap(), dir)
    }

    fn dups(files: &[(&str, &str)]) -> Vec<String> {
        let (world, _dir) = world_of(files);
        let root = world.roots["k"];
        surface(&world, root)
            .into_iter()
            .filter(|(_, p)| p.len() > 1)
            .map(|(e, p)| {
                format!(
                    "{}: {}",
                    world.describe(&e),
                    p.into_iter().collect::<Vec<_>>().join(" ")
                )
            })
            .collect()
    }

    #[test]
    fn a_root_reexport_of_a_public_modules_item_is_a_second_path() {
        let got = dups(&[
            ("lib.rs", "pub mod a; pub use a::Thing;"),
            ("a.rs", "pub struct Thing; pub const OTHER: u8 = 1;"),
        ]);
        assert_eq!(got, vec!["k::a::Thing: k::Thing k::a::Thing"]);
    }

    #[test]
    fn a_reexport_out_of_a_private_module_is_the_one_path() {
        let got = dups(&[
            ("lib.rs", "mod a; pub mod b; pub use a::Thing;"),
            ("a.rs", "pub struct Thing;"),
            (
                "b/mod.rs",
                "mod inner; pub use inner::Other; pub(crate) use crate::a::Thing;",
            ),
            ("b/inner.rs", "pub struct Other;"),
        ]);
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn globs_module_aliases_and_inline_modules_are_followed() {
        let got = dups(&[
            (
                "lib.rs",
                "pub mod a; pub mod b { pub use crate::a::*; } pub use a as c; #[cfg(test)] pub mod t { pub use crate::a::X; }",
            ),
            ("a.rs", "pub struct X; pub(crate) struct Hidden;"),
        ]);
        assert_eq!(
            got,
            vec!["module k::a: k::a k::c", "k::a::X: k::a::X k::b::X k::c::X"]
        );
    }

    /// A directory removed on drop (xtask has no dependencies to spare).
    mod tempfile_dir {
        pub(super) struct Dir(pub(super) std::path::PathBuf);
        impl Dir {
            pub(super) fn new() -> Dir {
                static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p =
                    std::env::temp_dir().join(format!("xtask-paths-{}-{n}", std::process::id()));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}
