//! The worker's data store: values placed by `Group::scatter`, which tasks
//! receive through references without the data crossing the wire again.
//!
//! A reference travels as a map with the single key [`REF_KEY`]; before a
//! task runs, the worker replaces every reference in its arguments with the
//! stored value.

use std::collections::HashMap;
use std::sync::OnceLock;

use parking_lot::Mutex;
use remex_core::Value;

use crate::task::{Task, TaskError};
use crate::Worker;

/// The key of the map that stands for a scattered value.
///
/// ```
/// // A scattered value travels as a map under this key.
/// assert_eq!(remex::worker::REF_KEY, "$remex_ref");
/// ```
pub use remex_core::builtin::REF_KEY;

fn store() -> &'static Mutex<HashMap<String, Value>> {
    static STORE: OnceLock<Mutex<HashMap<String, Value>>> = OnceLock::new();
    STORE.get_or_init(Default::default)
}

use remex_core::builtin::ref_key;

/// Replaces every reference inside `v` with the stored value.
pub(crate) fn resolve(v: Value) -> Result<Value, String> {
    if let Some(key) = ref_key(&v) {
        return store()
            .lock()
            .get(key)
            .cloned()
            .ok_or_else(|| format!("scattered data {key:?} is not on this worker"));
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

/// Adds the store's tasks: `__store([key, value])`, `__fetch(key)`,
/// `__drop(key)`.
pub(crate) fn register(w: Worker) -> Worker {
    w.task(remex_core::builtin::STORE, |t: &Task| {
        let (key, value): (String, Value) = t.args()?;
        store().lock().insert(key, value);
        Ok::<_, TaskError>(())
    })
    .task(remex_core::builtin::FETCH, |t: &Task| {
        let key: String = t.args()?;
        store()
            .lock()
            .get(&key)
            .cloned()
            .ok_or_else(|| TaskError(format!("scattered data {key:?} is not on this worker")))
    })
    .task(remex_core::builtin::DROP, |t: &Task| {
        let key: String = t.args()?;
        store().lock().remove(&key);
        Ok::<_, TaskError>(())
    })
}
