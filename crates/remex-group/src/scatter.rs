//! `scatter`: place values on workers once; tasks receive references and
//! read the worker's copy.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Weak;

use futures::future::BoxFuture;
use futures::FutureExt;
use remex_core::{Error, Result, Value};
use serde::{Serialize, Serializer};

use crate::gather::Errors;
use crate::gather::{Gather, Report};
use crate::group::{Group, Inner};

/// The map key that marks a reference inside task arguments (the worker
/// library knows it as `remex::worker::REF_KEY`).
pub(crate) const REF_KEY: &str = "$remex_ref";

/// A value placed on one or more workers by [`Group::scatter`]. Pass it
/// inside a task's arguments: the task runs on a worker that holds the
/// value and receives the value itself. [`crate::gather`] of a reference
/// fetches the value.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let group = remex::Group::new(["2*popen"]).await?;
/// let refs: Vec<remex::DataRef> = group.scatter(vec![vec![1, 2, 3]], false).await?;
/// // The task runs where the data is, and gets the data itself.
/// let echoed: Vec<i64> = group.submit("echo", &refs[0])?.await?;
/// assert_eq!(echoed, vec![1, 2, 3]);
/// group.terminate(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DataRef {
    key: String,
    group: Weak<Inner>,
}

impl fmt::Debug for DataRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<DataRef {} on {:?}>", self.key, self.holders())
    }
}

impl Serialize for DataRef {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(REF_KEY, &self.key)?;
        m.end()
    }
}

impl DataRef {
    /// The key the value is stored under on its workers.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["popen"]).await?;
    /// let refs = group.scatter(vec![vec![1, 2, 3]], false).await?;
    /// assert!(!refs[0].key().is_empty());
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The live gateways holding the value.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// // Broadcast: every worker holds it.
    /// let refs = group.scatter(vec!["data"], true).await?;
    /// assert_eq!(refs[0].holders().len(), 2);
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn holders(&self) -> Vec<String> {
        self.group
            .upgrade()
            .map(|g| Group::from_inner(g).live_holders(&self.key))
            .unwrap_or_default()
    }
}

/// Keys of the references inside `v`.
pub(crate) fn ref_keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Map(m) => {
            if let [(Value::Str(k), Value::Str(key))] = m.as_slice() {
                if k == REF_KEY {
                    out.push(key.clone());
                    return;
                }
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

static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

impl Group {
    /// Places each value of `data` on one worker, round-robin (or, with
    /// `broadcast`, on every worker) and returns references to them.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// use remex::{gather, Errors, Group};
    /// let group = Group::new(["2*popen"]).await?;
    /// let refs = group.scatter(vec![vec![1, 2, 3]], false).await?;
    /// // The task receives the worker's copy, not the reference.
    /// let echoed = group.submit("echo", &refs[0])?.await?;
    /// assert_eq!(remex::from_value::<Vec<i64>>(echoed).unwrap(), vec![1, 2, 3]);
    /// assert_eq!(gather(refs[0].clone(), Errors::Raise).await?.value, remex::to_value(&[1, 2, 3]).unwrap());
    /// # Ok(()) }
    /// ```
    pub async fn scatter<T: Serialize>(
        &self,
        data: Vec<T>,
        broadcast: bool,
    ) -> Result<Vec<DataRef>> {
        let live = self.gateways();
        if live.is_empty() {
            return Err(Error::NoWorker {
                reason: "the group has no live worker to scatter to".into(),
            });
        }
        let mut refs = Vec::with_capacity(data.len());
        for (i, item) in data.iter().enumerate() {
            let value = remex_core::to_value(item).map_err(|e| Error::Arguments {
                detail: e.to_string(),
            })?;
            let key = format!("scatter-{}", NEXT_KEY.fetch_add(1, Ordering::Relaxed));
            let targets: Vec<_> = if broadcast {
                live.clone()
            } else {
                vec![live[i % live.len()].clone()]
            };
            let stores = targets.iter().map(|gw| {
                let (key, value) = (key.clone(), value.clone());
                async move {
                    gw.remote_call("__store", &(key, value))?
                        .waitclose(None)
                        .await
                }
            });
            futures::future::try_join_all(stores).await?;
            self.add_holders(&key, targets.iter().map(|g| g.id().to_string()).collect());
            refs.push(DataRef {
                key,
                group: self.weak(),
            });
        }
        Ok(refs)
    }

    /// The live gateways allowed to run a task whose arguments hold these
    /// references: those holding all of them. `None` when there is no
    /// reference; an error naming the data when no live worker holds it.
    pub(crate) fn placement(&self, keys: &[String]) -> Result<Option<Vec<String>>> {
        if keys.is_empty() {
            return Ok(None);
        }
        let mut allowed: Option<Vec<String>> = None;
        for key in keys {
            let holders = self.live_holders(key);
            if holders.is_empty() {
                return Err(Error::DataLost {
                    key: key.clone(),
                    holders: self.all_holders(key).join(","),
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

impl Gather for DataRef {
    type Output = Value;
    fn gather_at(self, _: Errors, _: String, _: Report) -> BoxFuture<'static, Result<Value>> {
        async move {
            let inner = self.group.upgrade().ok_or_else(|| Error::NoWorker {
                reason: format!("the group of scattered data {} was dropped", self.key),
            })?;
            let group = Group::from_inner(inner);
            let holders = group
                .placement(std::slice::from_ref(&self.key))?
                .unwrap_or_default();
            let gw = group.by_id(&holders[0]).ok_or_else(|| Error::DataLost {
                key: self.key.clone(),
                holders: holders.join(","),
                reason: "its holder is gone".into(),
            })?;
            gw.remote_call("__fetch", &self.key)?.receive_value().await
        }
        .boxed()
    }
}
