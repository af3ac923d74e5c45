//! `gather`: futures in nested containers become values in the same shape.
//!
//! With [`Errors::Raise`], the first failure is returned and every other
//! future of the call is dropped, which cancels its task: nothing keeps
//! running. With [`Errors::Skip`], a failed entry is left out of the
//! nearest container that can leave entries out (`Vec`, `HashMap`,
//! `BTreeMap`; `Option` becomes `None`), at every depth; a fixed shape
//! (tuple, array) with a failed member fails as a whole, and its parent
//! leaves it out. Every skipped entry is reported with its path and error.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::Mutex;
use remex_core::{Error, Result};

use crate::future::{SharedTask, TaskFuture};
use crate::group::DataRef;
use serde::de::DeserializeOwned;

/// What `gather` does with failed futures.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use remex::{gather, Errors};
/// let group = remex::Group::new(["2*popen"]).await?;
/// let ok = group.submit::<i64>("echo", &1)?;
/// let bad = group.submit::<i64>("no_such_task", &2)?;
/// let got = gather(vec![ok, bad], Errors::Skip).await?;
/// assert_eq!(got.value, vec![1]);
/// assert_eq!(got.skipped.len(), 1);
/// group.terminate(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Errors {
    /// Return the first failure; cancel the rest.
    Raise,
    /// Leave failed entries out, and report them.
    Skip,
}

/// An entry left out by [`Errors::Skip`].
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use remex::{gather, Errors};
/// let group = remex::Group::new(["2*popen"]).await?;
/// let bad = group.submit::<i64>("no_such_task", &())?;
/// let got = gather(vec![vec![bad]], Errors::Skip).await?;
/// assert_eq!(got.skipped[0].path, "[0][0]");
/// assert!(got.skipped[0].error.to_string().contains("no_such_task"));
/// group.terminate(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Where it was: `[2]`, `["key"]`, `[0][1]`, ...
    pub path: String,
    /// Why.
    pub error: Error,
}

/// What `gather` returns: the values, and what was skipped.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use std::collections::HashMap;
/// use remex::{gather, Errors};
/// let group = remex::Group::new(["2*popen"]).await?;
/// let mut m = HashMap::new();
/// m.insert("a", group.submit::<i64>("echo", &1)?);
/// let got: remex::Gathered<HashMap<&str, i64>> = gather(m, Errors::Raise).await?;
/// assert_eq!(got.value["a"], 1);
/// assert!(got.skipped.is_empty());
/// group.terminate(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Gathered<T> {
    /// The input's shape with values in place of futures.
    pub value: T,
    /// Entries left out under [`Errors::Skip`], in no particular order.
    pub skipped: Vec<Skipped>,
}

pub(crate) type Report = Arc<Mutex<Vec<Skipped>>>;

/// Something `gather` can turn into values.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use remex::{gather, Errors};
/// let group = remex::Group::new(["2*popen"]).await?;
/// // Tuples, vectors, maps, options and arrays of futures all gather.
/// let x = (group.submit::<i64>("echo", &1)?, Some(group.submit::<String>("echo", "s")?));
/// let (a, b) = gather(x, Errors::Raise).await?.value;
/// assert_eq!((a, b), (1, Some("s".to_string())));
/// group.terminate(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub trait Gather: Send + Sized + 'static {
    /// The same shape, with values.
    type Output: Send + 'static;

    /// Gathers at `path`; an error means this whole entry failed.
    fn gather_at(
        self,
        errors: Errors,
        path: String,
        report: Report,
    ) -> BoxFuture<'static, Result<Self::Output>>;

    /// Gathers a vector of these at `path` (entries `{path}[i]`). The
    /// default gathers each entry on its own; a vector of
    /// [`TaskFuture`]s is gathered with one wake-up for all its results.
    #[doc(hidden)]
    fn gather_vec(
        items: Vec<Self>,
        errors: Errors,
        path: String,
        report: Report,
    ) -> BoxFuture<'static, Result<Vec<Self::Output>>> {
        let items = indexed(&path, items);
        async move {
            Ok(children(items, errors, report)
                .await?
                .into_iter()
                .map(|(_, v)| v)
                .collect())
        }
        .boxed()
    }
}

/// Waits for every future in `x` and returns the same shape with values.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// use remex::{gather, Errors, Group};
/// let group = Group::new(["2*popen"]).await?;
/// let x = || group.submit::<i64>("echo", &3);
/// let got = gather(vec![vec![x()?], vec![x()?, x()?]], Errors::Raise).await?;
/// assert_eq!(got.value, vec![vec![3], vec![3, 3]]);
/// # Ok(()) }
/// ```
pub async fn gather<G: Gather>(x: G, errors: Errors) -> Result<Gathered<G::Output>> {
    let report: Report = Arc::default();
    let value = on_runtime(x.gather_at(errors, String::new(), report.clone())).await?;
    let skipped = std::mem::take(&mut *report.lock());
    Ok(Gathered { value, skipped })
}

/// Runs the gathering as a task of the current multi-threaded tokio
/// runtime, if there is one, and waits for its end. Results are delivered
/// by the lanes' readers, which run on the runtime's threads: a result
/// then wakes the gathering on the same thread, where a caller outside
/// the runtime's threads (`block_on` in `#[tokio::main]`) would be woken
/// across threads, a system call and a context switch per result. The
/// caller wakes once, at the end. Dropping the returned future aborts the
/// task, which drops (and so cancels) the futures not resolved yet.
async fn on_runtime<T: Send + 'static>(fut: BoxFuture<'static, Result<T>>) -> Result<T> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let Some(rt) = Handle::try_current()
        .ok()
        .filter(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
    else {
        return fut.await;
    };
    struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
    impl<T> Drop for AbortOnDrop<T> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut task = AbortOnDrop(rt.spawn(fut));
    match (&mut task.0).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(crate::slot::gone("the runtime shut down while gathering")),
    }
}

impl<R: DeserializeOwned + Send + 'static> Gather for TaskFuture<R> {
    type Output = R;
    fn gather_at(self, _: Errors, _: String, _: Report) -> BoxFuture<'static, Result<R>> {
        self.boxed()
    }

    fn gather_vec(
        items: Vec<Self>,
        errors: Errors,
        path: String,
        report: Report,
    ) -> BoxFuture<'static, Result<Vec<R>>> {
        async move {
            let settled = TaskFuture::settle_all(items, errors == Errors::Raise).await?;
            let mut out = Vec::with_capacity(settled.len());
            for (i, r) in settled.into_iter().enumerate() {
                match r {
                    Ok(v) => out.push(v.value),
                    Err(e) if errors == Errors::Raise => return Err(e),
                    Err(error) => report.lock().push(Skipped {
                        path: format!("{path}[{i}]"),
                        error,
                    }),
                }
            }
            Ok(out)
        }
        .boxed()
    }
}

impl<R: Clone + Send + Sync + 'static> Gather for SharedTask<R> {
    type Output = R;
    fn gather_at(self, _: Errors, _: String, _: Report) -> BoxFuture<'static, Result<R>> {
        self.boxed()
    }
}

/// Gathers children; under Skip, failed children are reported and left out.
async fn children<T: Gather>(
    items: Vec<(String, T)>,
    errors: Errors,
    report: Report,
) -> Result<Vec<(String, T::Output)>> {
    let futs = items.into_iter().map(|(path, x)| {
        let r = report.clone();
        let p = path.clone();
        x.gather_at(errors, path, r)
            .map(move |res| res.map(|v| (p.clone(), v)).map_err(|e| (p, e)))
    });
    match errors {
        // try_join_all drops the rest at the first error, cancelling them.
        Errors::Raise => futures::future::try_join_all(futs)
            .await
            .map_err(|(_, e)| e),
        Errors::Skip => {
            let mut out = Vec::new();
            for r in futures::future::join_all(futs).await {
                match r {
                    Ok(v) => out.push(v),
                    Err((path, error)) => report.lock().push(Skipped { path, error }),
                }
            }
            Ok(out)
        }
    }
}

/// Gathers members of a fixed shape: any failure fails the whole.
async fn members<T: Gather>(
    items: Vec<(String, T)>,
    errors: Errors,
    report: Report,
) -> Result<Vec<T::Output>> {
    let futs = items
        .into_iter()
        .map(|(path, x)| x.gather_at(errors, path, report.clone()));
    futures::future::try_join_all(futs).await
}

/// Items paired with their paths `{path}[0]`, `{path}[1]`, ...
fn indexed<T>(path: &str, xs: impl IntoIterator<Item = T>) -> Vec<(String, T)> {
    xs.into_iter()
        .enumerate()
        .map(|(i, x)| (format!("{path}[{i}]"), x))
        .collect()
}

/// Gathering a reference fetches its value from a worker holding it.
impl Gather for DataRef {
    type Output = remex_core::Value;
    fn gather_at(
        self,
        _: Errors,
        _: String,
        _: Report,
    ) -> BoxFuture<'static, Result<Self::Output>> {
        self.fetch().boxed()
    }
}

impl<T: Gather> Gather for Vec<T> {
    type Output = Vec<T::Output>;
    fn gather_at(
        self,
        errors: Errors,
        path: String,
        report: Report,
    ) -> BoxFuture<'static, Result<Self::Output>> {
        T::gather_vec(self, errors, path, report)
    }
}

impl<T: Gather> Gather for Option<T> {
    type Output = Option<T::Output>;
    fn gather_at(
        self,
        errors: Errors,
        path: String,
        report: Report,
    ) -> BoxFuture<'static, Result<Self::Output>> {
        async move {
            match self {
                None => Ok(None),
                Some(x) => Ok(children(vec![(path, x)], errors, report)
                    .await?
                    .pop()
                    .map(|(_, v)| v)),
            }
        }
        .boxed()
    }
}

/// Gathers map entries; under Skip, failed entries are left out.
async fn entries<K, T>(
    map: Vec<(K, T)>,
    errors: Errors,
    path: String,
    report: Report,
) -> Result<Vec<(K, T::Output)>>
where
    K: Debug + Send + 'static,
    T: Gather,
{
    let mut keys = HashMap::new();
    let mut items = Vec::with_capacity(map.len());
    for (k, x) in map {
        let p = format!("{path}[{k:?}]");
        keys.insert(p.clone(), k);
        items.push((p, x));
    }
    Ok(children(items, errors, report)
        .await?
        .into_iter()
        .filter_map(|(p, v)| keys.remove(&p).map(|k| (k, v)))
        .collect())
}

/// Maps gather their values; under Skip, failed entries are left out.
macro_rules! map_gather {
    ($map:ident, $($bound:tt)+) => {
        impl<K, T> Gather for $map<K, T>
        where
            K: $($bound)+ + Debug + Send + 'static,
            T: Gather,
        {
            type Output = $map<K, T::Output>;
            fn gather_at(self, errors: Errors, path: String, report: Report) -> BoxFuture<'static, Result<Self::Output>> {
                let map: Vec<_> = self.into_iter().collect();
                async move { Ok(entries(map, errors, path, report).await?.into_iter().collect()) }.boxed()
            }
        }
    };
}

map_gather!(HashMap, Eq + Hash);
map_gather!(BTreeMap, Ord);

impl<T: Gather, const N: usize> Gather for [T; N] {
    type Output = [T::Output; N];
    fn gather_at(
        self,
        errors: Errors,
        path: String,
        report: Report,
    ) -> BoxFuture<'static, Result<Self::Output>> {
        let items = indexed(&path, self);
        async move {
            let v = members(items, errors, report).await?;
            Ok(v.try_into()
                .unwrap_or_else(|_| unreachable!("an array keeps its length")))
        }
        .boxed()
    }
}

macro_rules! tuple_gather {
    ($($name:ident $idx:tt),+) => {
        impl<$($name: Gather),+> Gather for ($($name,)+) {
            type Output = ($($name::Output,)+);
            fn gather_at(self, errors: Errors, path: String, report: Report) -> BoxFuture<'static, Result<Self::Output>> {
                async move {
                    // A tuple is a fixed shape: its members succeed together.
                    Ok(futures::try_join!($(self.$idx.gather_at(errors, format!("{path}.{}", $idx), report.clone())),+)?)
                }
                .boxed()
            }
        }
    };
}

tuple_gather!(A 0, B 1);
tuple_gather!(A 0, B 1, C 2);
tuple_gather!(A 0, B 1, C 2, D 3);
