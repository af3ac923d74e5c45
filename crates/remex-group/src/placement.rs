//! Where scattered data lives: which gateways hold each key, and so which
//! may run a task whose arguments refer to it. Plain data, without I/O;
//! the group keeps one under a lock.

use std::collections::HashMap;

use remex_core::{builtin, Error, Result, Value};

/// The holders of each scattered key.
#[derive(Debug, Default)]
pub(crate) struct Placement {
    holders: HashMap<String, Vec<String>>,
}

impl Placement {
    /// `key` was stored on the gateways `ids`.
    pub(crate) fn add(&mut self, key: &str, ids: impl IntoIterator<Item = String>) {
        self.holders.entry(key.to_string()).or_default().extend(ids);
    }

    /// Every gateway `key` was stored on, live or not.
    pub(crate) fn all(&self, key: &str) -> &[String] {
        self.holders.get(key).map_or(&[], Vec::as_slice)
    }

    /// The gateways among `live` allowed to run a task whose arguments hold
    /// the references `keys`: those holding all of them. `None` when there
    /// is no reference; an error naming the data when no live gateway holds
    /// a key, or none holds them all.
    pub(crate) fn allowed(&self, keys: &[String], live: &[&str]) -> Result<Option<Vec<String>>> {
        if keys.is_empty() {
            return Ok(None);
        }
        let mut allowed: Option<Vec<String>> = None;
        for key in keys {
            let holders: Vec<String> = self
                .all(key)
                .iter()
                .filter(|h| live.contains(&h.as_str()))
                .cloned()
                .collect();
            if holders.is_empty() {
                return Err(Error::DataLost {
                    key: key.clone(),
                    holders: self.all(key).join(","),
                    reason: "no live worker holds it any more".into(),
                });
            }
            allowed = Some(match allowed {
                None => holders,
                Some(a) => a.into_iter().filter(|g| holders.contains(g)).collect(),
            });
        }
        let allowed = allowed.unwrap_or_default();
        if allowed.is_empty() {
            return Err(Error::NoWorker {
                reason: format!("none holds all of the scattered data {keys:?}"),
            });
        }
        Ok(Some(allowed))
    }
}

/// Keys of the references inside `v`.
pub(crate) fn ref_keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Map(m) => {
            if let Some(key) = builtin::ref_key(v) {
                out.push(key.to_string());
                return;
            }
            for (k, v) in m {
                ref_keys(k, out);
                ref_keys(v, out);
            }
        }
        Value::List(l) => l.iter().for_each(|v| ref_keys(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_task_without_references_may_run_anywhere() {
        assert_eq!(Placement::default().allowed(&[], &["gw0"]).unwrap(), None);
    }

    #[test]
    fn a_task_runs_only_where_all_its_data_is() {
        let mut p = Placement::default();
        p.add("a", keys(&["gw0", "gw1"]));
        p.add("b", keys(&["gw1", "gw2"]));
        let live = ["gw0", "gw1", "gw2"];
        assert_eq!(
            p.allowed(&keys(&["a"]), &live).unwrap(),
            Some(keys(&["gw0", "gw1"]))
        );
        assert_eq!(
            p.allowed(&keys(&["a", "b"]), &live).unwrap(),
            Some(keys(&["gw1"]))
        );
    }

    #[test]
    fn data_whose_holders_are_gone_is_named_lost() {
        let mut p = Placement::default();
        p.add("a", keys(&["gw0"]));
        match p.allowed(&keys(&["a"]), &["gw1"]) {
            Err(Error::DataLost { key, holders, .. }) => {
                assert_eq!((key.as_str(), holders.as_str()), ("a", "gw0"))
            }
            other => panic!("{other:?}"),
        }
        match p.allowed(&keys(&["never"]), &["gw1"]) {
            Err(Error::DataLost { key, .. }) => assert_eq!(key, "never"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn data_held_apart_cannot_meet_in_one_task() {
        let mut p = Placement::default();
        p.add("a", keys(&["gw0"]));
        p.add("b", keys(&["gw1"]));
        assert!(matches!(
            p.allowed(&keys(&["a", "b"]), &["gw0", "gw1"]),
            Err(Error::NoWorker { .. })
        ));
    }
}
