//! `scatter`: place values on workers once; tasks receive references and
//! read the worker's copy.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use remex_core::{Error, Result, Value};
use serde::{Serialize, Serializer};

use super::{Group, GroupRef};

use remex_core::builtin::{self, REF_KEY};

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
    group: GroupRef,
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
            .and_then(|g| g.placement(std::slice::from_ref(&self.key)).ok().flatten())
            .unwrap_or_default()
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
                    gw.remote_call(builtin::STORE, &(key, value))?
                        .waitclose(None)
                        .await
                }
            });
            futures::future::try_join_all(stores).await?;
            self.add_holders(&key, targets.iter().map(|g| g.id().to_string()).collect());
            refs.push(DataRef {
                key,
                group: self.downgrade(),
            });
        }
        Ok(refs)
    }
}

impl DataRef {
    /// Fetches the value from a live holder (what gathering it does).
    pub(crate) async fn fetch(self) -> Result<Value> {
        let group = self.group.upgrade().ok_or_else(|| Error::NoWorker {
            reason: format!("the group of scattered data {} was dropped", self.key),
        })?;
        let holders = group
            .placement(std::slice::from_ref(&self.key))?
            .unwrap_or_default();
        let gw = group.by_id(&holders[0]).ok_or_else(|| Error::DataLost {
            key: self.key.clone(),
            holders: holders.join(","),
            reason: "its holder is gone".into(),
        })?;
        gw.remote_call(builtin::FETCH, &self.key)?
            .receive::<remex_core::Value>()
            .await
    }
}
