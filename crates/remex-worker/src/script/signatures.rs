//! The functions a script can call, as signatures (`name(_: string, _:
//! i64)`), for the close matches that a call to a missing function lists.
//!
//! rhai lists an engine's functions only when built with its `metadata`
//! feature, which doubles the cost of every engine (rhai's standard
//! library keeps each function's parameter names and doc comments: 0.5
//! ms more per worker start here, docs/decisions.md). Without it, the
//! signatures come from two places: rhai's standard library from a table
//! made from rhai itself with `metadata` (`rhai_std.txt`, by `cargo xtask
//! rhai-signatures`), and the worker's own functions as they are
//! registered ([`Registrar`], `Worker::script_fn`), with their parameter
//! types. Functions a worker adds through `Worker::script_engine` are not
//! listed.

use std::any::TypeId;
use std::ops::{Deref, DerefMut, Range, RangeInclusive};

use rhai::{Array, Blob, Dynamic, Engine, FnPtr, ImmutableString, Map, RhaiNativeFunc};

/// rhai's standard library, one signature a line as rhai's
/// `gen_fn_signatures` writes them; the first line names the rhai
/// version it was made from.
pub(crate) const RHAI_STD: &str = include_str!("rhai_std.txt");

/// Functions registered for scripts: their names and parameter types,
/// and the names of the types registered with one.
#[derive(Debug, Default, Clone)]
pub(crate) struct Signatures {
    fns: Vec<(String, Vec<TypeId>)>,
    types: Vec<(TypeId, String)>,
}

impl Signatures {
    /// Adds the function `name` taking `params`.
    pub(crate) fn add(&mut self, name: &str, params: &[TypeId]) {
        self.fns.push((name.to_string(), params.to_vec()));
    }

    /// Names the type `T` as `name` in signatures.
    pub(crate) fn name_type<T: 'static>(&mut self, name: &str) {
        self.types.push((TypeId::of::<T>(), name.to_string()));
    }

    /// The functions' signatures, as `name(_: string, _: Dynamic)`
    /// (a parameter of a type nobody named is `_`).
    pub(crate) fn list(&self) -> impl Iterator<Item = String> + '_ {
        self.fns.iter().map(|(name, params)| {
            let params: Vec<String> = params
                .iter()
                .map(|t| match self.type_name(*t) {
                    Some(n) => format!("_: {n}"),
                    None => "_".to_string(),
                })
                .collect();
            format!("{name}({})", params.join(", "))
        })
    }

    fn type_name(&self, t: TypeId) -> Option<&str> {
        if let Some((_, n)) = self.types.iter().find(|(id, _)| *id == t) {
            return Some(n);
        }
        let known: [(TypeId, &str); 16] = [
            (TypeId::of::<i64>(), "i64"),
            (TypeId::of::<f64>(), "f64"),
            (TypeId::of::<bool>(), "bool"),
            (TypeId::of::<char>(), "char"),
            (TypeId::of::<ImmutableString>(), "string"),
            (TypeId::of::<String>(), "string"),
            (TypeId::of::<&str>(), "string"),
            (TypeId::of::<Array>(), "array"),
            (TypeId::of::<Map>(), "map"),
            (TypeId::of::<Blob>(), "blob"),
            (TypeId::of::<Dynamic>(), "Dynamic"),
            (TypeId::of::<()>(), "()"),
            (TypeId::of::<FnPtr>(), "Fn"),
            (TypeId::of::<Range<i64>>(), "range"),
            (TypeId::of::<RangeInclusive<i64>>(), "range="),
            (TypeId::of::<std::time::Instant>(), "timestamp"),
        ];
        known.iter().find(|(id, _)| *id == t).map(|(_, n)| *n)
    }
}

/// An engine being built that records the signature of each function
/// registered through it (and the name of each type), if given where;
/// everything else goes to the engine itself.
pub(crate) struct Registrar<'a> {
    engine: &'a mut Engine,
    signatures: Option<&'a mut Signatures>,
}

impl<'a> Registrar<'a> {
    /// Registers on `engine`, recording into `signatures` (`None`: the
    /// signatures are known already, every build registers the same).
    pub(crate) fn new(engine: &'a mut Engine, signatures: Option<&'a mut Signatures>) -> Self {
        Registrar { engine, signatures }
    }

    /// rhai's `Engine::register_fn`, recorded.
    pub(crate) fn register_fn<A: 'static, const N: usize, const X: bool, R, const F: bool>(
        &mut self,
        name: &str,
        func: impl RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
    ) -> &mut Self
    where
        R: std::any::Any + Clone + Send + Sync,
    {
        if let Some(s) = self.signatures.as_deref_mut() {
            s.add(name, &param_types::<A, N, X, R, F, _>(&func));
        }
        self.engine.register_fn(name, func);
        self
    }

    /// rhai's `Engine::register_type_with_name`, recorded.
    pub(crate) fn register_type_with_name<T: std::any::Any + Clone + Send + Sync>(
        &mut self,
        name: &str,
    ) -> &mut Self {
        if let Some(s) = self.signatures.as_deref_mut() {
            s.name_type::<T>(name);
        }
        self.engine.register_type_with_name::<T>(name);
        self
    }
}

/// The parameter types of `func` (a value, so that a closure's type can
/// be named).
pub(crate) fn param_types<
    A: 'static,
    const N: usize,
    const X: bool,
    R: 'static,
    const F: bool,
    Func,
>(
    _func: &Func,
) -> [TypeId; N]
where
    Func: RhaiNativeFunc<A, N, X, R, F>,
{
    Func::param_types()
}

impl Deref for Registrar<'_> {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        self.engine
    }
}

impl DerefMut for Registrar<'_> {
    fn deref_mut(&mut self) -> &mut Engine {
        self.engine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_function_reads_with_its_parameter_types() {
        #[derive(Clone)]
        struct Thing;
        let (mut e, mut s) = (Engine::new_raw(), Signatures::default());
        let mut r = Registrar::new(&mut e, Some(&mut s));
        r.register_type_with_name::<Thing>("Thing")
            .register_fn("poke", |_: &mut Thing, _: ImmutableString, _: i64| ())
            .register_fn("none", || 1_i64)
            .register_fn("odd", |_: u8, _: Dynamic| ());
        let list: Vec<String> = s.list().collect();
        assert_eq!(
            list,
            [
                "poke(_: Thing, _: string, _: i64)",
                "none()",
                "odd(_, _: Dynamic)"
            ]
        );
        // The engine got them too.
        assert_eq!(e.eval::<i64>("none()").unwrap(), 1);
    }

    #[test]
    fn the_standard_table_names_its_rhai_version_and_holds_the_library() {
        let first = RHAI_STD.lines().next().unwrap();
        assert!(first.starts_with("# rhai "), "{first}");
        for sig in [
            "len(string: string) -> i64",
            "sub_string(string: string, start: i64) -> ImmutableString",
        ] {
            assert!(RHAI_STD.lines().any(|l| l == sig), "{sig} is missing");
        }
    }
}
