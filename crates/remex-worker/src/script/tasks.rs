//! The worker's registered tasks, called from scripts:
//! `call_task(name, args)` returns a task's result, `stream_task(name,
//! args)` iterates over what it sends, `tasks()` lists them.
//!
//! A task called from a script runs with a local channel (remex_core's
//! `Connection::local_channel`): what it sends goes to the script, never to
//! the controller. `stream_task` runs the task on a thread of its own and holds
//! at most [`STREAM_BUFFER`] of its items; dropping the stream closes the
//! task's channel, so a task that sends stops at its next send.

use std::sync::Arc;

use parking_lot::Mutex;
use remex_core::{Channel, Error, Value};
use rhai::{Array, Dynamic, ImmutableString};

use super::convert::{from_dynamic, rhai_err, to_dynamic, RhaiResult};
use super::signatures::Registrar;
use crate::task::Registry;

/// Items a `stream` holds that the script has not taken yet.
pub(crate) const STREAM_BUFFER: usize = 16;

fn current() -> RhaiResult<Channel> {
    super::current().ok_or_else(|| rhai_err("tasks can be called only from a running script"))
}

fn args_of(d: Dynamic) -> RhaiResult<Value> {
    from_dynamic(d, 0)
}

/// The internal tasks (relays, installs, lanes) are the controller's only.
fn callable(name: &str) -> RhaiResult<()> {
    if remex_core::builtin::is_reserved(name) {
        return Err(rhai_err(format!(
            "'{name}' is internal to the worker and cannot be called from a script"
        )));
    }
    Ok(())
}

/// Runs task `name` on this thread; items it sends are collected, at most
/// `max_items` of them.
fn call(tasks: &Registry, name: &str, args: Value, max_items: usize) -> RhaiResult<Dynamic> {
    callable(name)?;
    let script = current()?;
    let items = Arc::new(Mutex::new(Vec::new()));
    let sink_items = items.clone();
    let task_name = name.to_string();
    let ch = script
        .connection()
        .local_channel(Arc::new(move |v: Value| {
            let mut items = sink_items.lock();
            if items.len() >= max_items {
                return Err(Error::Unsendable {
                    channel: 0,
                    detail: format!(
                        "task '{task_name}' sent more than script_max_array={max_items} items to call_task(): use stream_task()"
                    ),
                });
            }
            items.push(v);
            Ok(())
        }));
    let result = tasks.run(name.to_string(), args, &ch).map_err(rhai_err);
    ch.close(None);
    let result = result?;
    let mut items = std::mem::take(&mut *items.lock());
    if items.is_empty() {
        return Ok(to_dynamic(result, &script));
    }
    if result != Value::Unit {
        items.push(result);
    }
    Ok(Dynamic::from_array(
        items.into_iter().map(|v| to_dynamic(v, &script)).collect(),
    ))
}

/// What a streaming task has sent and not yet been taken, then its end
/// (`Ok(None)`, or its error). The end is sent, not signalled by the
/// senders going away: the task's channel, which holds one, lives as long
/// as the stream.
type Item = Result<Option<Value>, String>;

/// A task running for a script's `stream_task`: iterate it with `for`.
#[derive(Clone)]
pub(crate) struct TaskStream(Arc<StreamInner>);

struct StreamInner {
    items: flume::Receiver<Item>,
    /// The task's channel: closed when the script lets go of the stream.
    channel: Channel,
    script: Channel,
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        self.channel.close(None);
    }
}

fn stream(tasks: &Registry, name: &str, args: Value) -> RhaiResult<TaskStream> {
    callable(name)?;
    let script = current()?;
    let (tx, rx) = flume::bounded::<Item>(STREAM_BUFFER);
    let sink_tx = tx.clone();
    let ch = script.connection().local_channel(Arc::new(move |v: Value| {
        sink_tx.send(Ok(Some(v))).map_err(|_| Error::Unsendable {
            channel: 0,
            detail: "the script stopped reading this stream".into(),
        })
    }));
    let (tasks, name, task_ch) = (tasks.clone(), name.to_string(), ch.clone());
    let place = crate::place::current();
    std::thread::Builder::new()
        .name(format!("remex-stream-{name}"))
        .spawn(move || {
            let _here = crate::place::enter(place);
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                tasks.run(name, args, &task_ch)
            }));
            let end = match run {
                Ok(Ok(Value::Unit)) => Ok(None),
                Ok(Ok(v)) => {
                    // Its result is its last item.
                    let _ = tx.send(Ok(Some(v)));
                    Ok(None)
                }
                Ok(Err(e)) => Err(e),
                Err(p) => Err(format!("panicked: {}", crate::panic_message(&*p))),
            };
            let _ = tx.send(end);
        })
        .map_err(|e| rhai_err(format!("cannot start a thread for task stream: {e}")))?;
    Ok(TaskStream(Arc::new(StreamInner {
        items: rx,
        channel: ch,
        script,
    })))
}

impl IntoIterator for TaskStream {
    type Item = RhaiResult<Dynamic>;
    type IntoIter = Box<dyn Iterator<Item = RhaiResult<Dynamic>>>;
    fn into_iter(self) -> Self::IntoIter {
        let inner = self.0;
        let mut ended = false;
        Box::new(std::iter::from_fn(move || {
            if ended {
                return None;
            }
            match inner.items.recv() {
                Ok(Ok(Some(v))) => Some(Ok(to_dynamic(v, &inner.script))),
                Ok(Ok(None)) => {
                    ended = true;
                    None
                }
                Ok(Err(e)) => {
                    ended = true;
                    Some(Err(rhai_err(e)))
                }
                Err(_) => {
                    ended = true;
                    Some(Err(rhai_err("the task's thread ended without a result")))
                }
            }
        }))
    }
}

/// Registers `call_task`, `stream_task` and `tasks`.
pub(crate) fn register(e: &mut Registrar<'_>, tasks: &Registry, max_items: usize) {
    let t = tasks.clone();
    e.register_fn("call_task", move |name: ImmutableString| {
        call(&t, &name, Value::Unit, max_items)
    });
    let t = tasks.clone();
    e.register_fn("call_task", move |name: ImmutableString, args: Dynamic| {
        call(&t, &name, args_of(args)?, max_items)
    });
    let t = tasks.clone();
    e.register_fn("stream_task", move |name: ImmutableString| {
        stream(&t, &name, Value::Unit)
    });
    let t = tasks.clone();
    e.register_fn(
        "stream_task",
        move |name: ImmutableString, args: Dynamic| stream(&t, &name, args_of(args)?),
    );
    let names: Array = tasks.names().into_iter().map(Dynamic::from).collect();
    e.register_fn("tasks", move || names.clone());
    e.register_type_with_name::<TaskStream>("TaskStream")
        .register_iterator_result::<TaskStream, Dynamic>();
}
