//! Registered tasks: Rust functions a controller calls by name.

use std::collections::HashMap;
use std::fmt::{self, Display};
use std::sync::Arc;

use remex_core::{from_value, to_value, Channel, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// What a task gets when it is called: its arguments and its channel.
///
/// ```
/// use remex::worker::{Task, TaskError, Worker};
///
/// #[tokio::main]
/// async fn main() -> remex::Result<()> {
///     remex::serve_if_worker(|| {
///         Worker::new().task("shout", |t: &Task| {
///             let s: String = t.args()?;
///             Ok::<_, TaskError>(s.to_uppercase())
///         })
///     });
///     let gw = remex::makegateway("popen").await?;
///     let r: String = gw.remote_call("shout", "hi")?.receive().await?;
///     assert_eq!(r, "HI");
///     gw.exit().await?;
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct Task {
    pub(crate) name: String,
    pub(crate) args: Value,
    pub(crate) channel: Channel,
}

impl Task {
    /// The name the task was called by.
    ///
    /// ```
    /// use remex::worker::{Task, TaskError, Worker};
    ///
    /// #[tokio::main]
    /// async fn main() -> remex::Result<()> {
    ///     remex::serve_if_worker(|| {
    ///         Worker::new().task("whoami", |t: &Task| {
    ///             Ok::<_, TaskError>(t.name().to_string())
    ///         })
    ///     });
    ///     let gw = remex::makegateway("popen").await?;
    ///     let r: String = gw.remote_call("whoami", &())?.receive().await?;
    ///     assert_eq!(r, "whoami");
    ///     gw.exit().await?;
    ///     Ok(())
    /// }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The arguments, converted to `T`. A mismatch names expected and
    /// received.
    ///
    /// ```
    /// use remex::worker::{Task, TaskError, Worker};
    ///
    /// #[tokio::main]
    /// async fn main() -> remex::Result<()> {
    ///     remex::serve_if_worker(|| {
    ///         Worker::new().task("add", |t: &Task| {
    ///             let (a, b): (i64, i64) = t.args()?;
    ///             Ok::<_, TaskError>(a + b)
    ///         })
    ///     });
    ///     let gw = remex::makegateway("popen").await?;
    ///     let r: i64 = gw.remote_call("add", &(2, 3))?.receive().await?;
    ///     assert_eq!(r, 5);
    ///     // Arguments of another shape are the caller's error, by name:
    ///     let e = gw.remote_call("add", "x")?.waitclose(None).await.unwrap_err();
    ///     assert!(e.to_string().contains("bad arguments for task 'add'"), "{e}");
    ///     gw.exit().await?;
    ///     Ok(())
    /// }
    /// ```
    pub fn args<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        from_value(self.args.clone())
            .map_err(|e| TaskError(format!("bad arguments for task '{}': {e}", self.name)))
    }

    /// The raw arguments.
    ///
    /// ```
    /// use remex::worker::{Task, TaskError, Worker};
    ///
    /// #[tokio::main]
    /// async fn main() -> remex::Result<()> {
    ///     remex::serve_if_worker(|| {
    ///         Worker::new().task("kind", |t: &Task| {
    ///             Ok::<_, TaskError>(t.args_value().kind_name())
    ///         })
    ///     });
    ///     let gw = remex::makegateway("popen").await?;
    ///     let r: String = gw.remote_call("kind", &[1, 2])?.receive().await?;
    ///     assert_eq!(r, "list");
    ///     gw.exit().await?;
    ///     Ok(())
    /// }
    /// ```
    pub fn args_value(&self) -> &Value {
        &self.args
    }

    /// The task's channel, to stream items to the caller or receive more.
    ///
    /// ```
    /// use remex::worker::{Task, TaskError, Worker};
    ///
    /// #[tokio::main]
    /// async fn main() -> remex::Result<()> {
    ///     remex::serve_if_worker(|| {
    ///         Worker::new().task("count", |t: &Task| {
    ///             let n: i64 = t.args()?;
    ///             for i in 0..n {
    ///                 t.channel().send_blocking(&i)?;
    ///             }
    ///             Ok::<_, TaskError>(())
    ///         })
    ///     });
    ///     let gw = remex::makegateway("popen").await?;
    ///     let ch = gw.remote_call("count", &3)?;
    ///     let mut got = Vec::new();
    ///     while let Ok(i) = ch.receive::<i64>().await {
    ///         got.push(i);
    ///     }
    ///     assert_eq!(got, vec![0, 1, 2]);
    ///     gw.exit().await?;
    ///     Ok(())
    /// }
    /// ```
    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}

/// A task's failure, sent to the caller as the remote error's message.
///
/// ```
/// use remex::worker::{Task, TaskError, Worker};
///
/// #[tokio::main]
/// async fn main() -> remex::Result<()> {
///     remex::serve_if_worker(|| {
///         Worker::new().task("check", |t: &Task| {
///             let n: i64 = t.args()?;
///             if n < 0 {
///                 return Err(TaskError(format!("{n} is negative")));
///             }
///             Ok(n)
///         })
///     });
///     let gw = remex::makegateway("popen").await?;
///     let e = gw.remote_call("check", &-1)?.waitclose(None).await.unwrap_err();
///     assert!(e.to_string().contains("-1 is negative"), "{e}");
///     gw.exit().await?;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError(pub String);

impl Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TaskError {}

impl From<remex_core::Error> for TaskError {
    fn from(e: remex_core::Error) -> Self {
        TaskError(e.to_string())
    }
}

impl From<String> for TaskError {
    fn from(e: String) -> Self {
        TaskError(e)
    }
}

impl From<&str> for TaskError {
    fn from(e: &str) -> Self {
        TaskError(e.to_string())
    }
}

/// A task as stored in the registry: returns the value to send (nothing is
/// sent for `Value::Unit`) or an error text.
pub(crate) type TaskFn = Arc<dyn Fn(&Task) -> Result<Value, String> + Send + Sync>;

/// Name -> task.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    tasks: HashMap<String, TaskFn>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.tasks.keys().collect();
        names.sort();
        f.debug_list().entries(names).finish()
    }
}

impl Registry {
    pub(crate) fn insert<F, R, E>(&mut self, name: &str, f: F)
    where
        F: Fn(&Task) -> Result<R, E> + Send + Sync + 'static,
        R: Serialize,
        E: Display,
    {
        let wrapped: TaskFn = Arc::new(move |t: &Task| {
            let r = f(t).map_err(|e| e.to_string())?;
            to_value(&r).map_err(|e| {
                format!(
                    "task '{}' returned a value that cannot be sent: {e}",
                    t.name
                )
            })
        });
        self.tasks.insert(name.to_string(), wrapped);
    }

    /// Runs task `name` with `args` (references to scattered values
    /// resolved) and channel `ch`; returns its result.
    pub(crate) fn run(&self, name: String, args: Value, ch: &Channel) -> Result<Value, String> {
        let f = self.tasks.get(&name).cloned().ok_or_else(|| {
            format!(
                "no task named '{name}' on this worker (it has: {})",
                self.names().join(", ")
            )
        })?;
        let t = Task {
            name,
            args: crate::store::resolve(args)?,
            channel: ch.clone(),
        };
        f(&t)
    }

    /// The user-visible task names (internal `__` tasks left out), sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut v: Vec<_> = self
            .tasks
            .keys()
            .filter(|n| !remex_core::builtin::is_reserved(n))
            .cloned()
            .collect();
        v.sort();
        v
    }
}
