//! Registered tasks: Rust functions a controller calls by name.

use std::collections::HashMap;
use std::fmt::{self, Display};
use std::sync::Arc;

use remex_core::{from_value, to_value, Channel, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// What a task gets when it is called: its arguments and its channel.
#[derive(Debug)]
pub struct Task {
    pub(crate) name: String,
    pub(crate) args: Value,
    pub(crate) channel: Channel,
}

impl Task {
    /// The name the task was called by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The arguments, converted to `T`. A mismatch names expected and
    /// received.
    pub fn args<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        from_value(self.args.clone())
            .map_err(|e| TaskError(format!("bad arguments for task '{}': {e}", self.name)))
    }

    /// The raw arguments.
    pub fn args_value(&self) -> &Value {
        &self.args
    }

    /// The task's channel, to stream items to the caller or receive more.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}

/// A task's failure, sent to the caller as the remote error's message.
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

    pub(crate) fn get(&self, name: &str) -> Option<TaskFn> {
        self.tasks.get(name).cloned()
    }

    /// The user-visible task names (internal `__` tasks left out), sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut v: Vec<_> = self
            .tasks
            .keys()
            .filter(|n| !n.starts_with("__"))
            .cloned()
            .collect();
        v.sort();
        v
    }
}
