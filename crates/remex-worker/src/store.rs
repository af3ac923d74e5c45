//! The worker's data store: values placed by `Group::scatter`, which tasks
//! receive through references without the data crossing the wire again.
//!
//! A reference travels as a map with the single key [`REF_KEY`](remex_core::builtin::REF_KEY); before a
//! task runs, the worker replaces every reference in its arguments with the
//! stored value.

use std::collections::HashMap;
use std::sync::OnceLock;

use parking_lot::Mutex;
use remex_core::Value;

fn store() -> &'static Mutex<HashMap<String, Value>> {
    static STORE: OnceLock<Mutex<HashMap<String, Value>>> = OnceLock::new();
    STORE.get_or_init(Default::default)
}

use remex_core::builtin::ref_key;

/// Replaces every reference inside `v` with the stored value.
pub(crate) fn resolve(v: Value) -> Result<Value, String> {
    if let Some(key) = ref_key(&v) {
        return get(key);
    }
    Ok(match v {
        Value::List(l) => Value::List(l.into_iter().map(resolve).collect::<Result<_, _>>()?),
        Value::Map(m) => Value::Map(
            m.into_iter()
                .map(|(k, v)| Ok((resolve(k)?, resolve(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other,
    })
}

/// Keeps `value` under `key` (`__store`).
pub(crate) fn put(key: String, value: Value) {
    store().lock().insert(key, value);
}

/// The value kept under `key` (`__fetch`).
pub(crate) fn get(key: &str) -> Result<Value, String> {
    store()
        .lock()
        .get(key)
        .cloned()
        .ok_or_else(|| format!("scattered data {key:?} is not on this worker"))
}

/// Forgets `key` (`__drop`).
pub(crate) fn remove(key: &str) {
    store().lock().remove(key);
}
