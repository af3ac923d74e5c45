//! Values between remex and rhai, and the `channel` object scripts see.
//!
//! The channel object offers `send(x)`, `receive()`, `receive(seconds)`,
//! `close()`, `close(message)`, `close_write()`, `is_closed()`,
//! `newchannel()`, and iteration (`for x in channel { ... }` ends when the
//! remote side closes); and the channel as a byte stream (execnet's
//! `makefile`): `write(string or blob)` sends bytes, `read_lines()`
//! iterates over the text lines of the bytes and strings received (a line
//! may span items) and `read_all()` returns them as one string, both up to
//! the end of the channel.
//! Values convert both ways: rhai ints, floats, strings, bools, arrays,
//! maps, blobs, `()` and channels.

use std::io::{BufRead, Read};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use remex_core::{Channel, ChannelReader, Value};
use rhai::{Array, Blob, Dynamic, EvalAltResult, ImmutableString, Map, Position};

use super::signatures::Registrar;

/// The `channel` object seen by scripts.
#[derive(Clone)]
pub(crate) struct ScriptChannel(pub(crate) Channel);

pub(crate) type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

pub(crate) fn rhai_err(msg: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        msg.into().into(),
        Position::NONE,
    ))
}

pub(crate) fn to_dynamic(v: Value, ch: &Channel) -> Dynamic {
    match v {
        Value::Unit => Dynamic::UNIT,
        Value::Bool(b) => b.into(),
        Value::Int(i) => i.into(),
        Value::BigInt(b) => b.to_string().into(),
        Value::Float(f) => f.into(),
        Value::Str(s) => s.into(),
        Value::Bytes(b) => Dynamic::from_blob(b.to_vec()),
        Value::List(l) => Dynamic::from_array(l.into_iter().map(|v| to_dynamic(v, ch)).collect()),
        Value::Map(m) => {
            if m.iter().all(|(k, _)| matches!(k, Value::Str(_))) {
                let mut map = Map::new();
                for (k, v) in m {
                    if let Value::Str(k) = k {
                        map.insert(k.into(), to_dynamic(v, ch));
                    }
                }
                Dynamic::from_map(map)
            } else {
                // rhai maps have string keys: other maps arrive as [key, value] pairs.
                Dynamic::from_array(
                    m.into_iter()
                        .map(|(k, v)| {
                            Dynamic::from_array(vec![to_dynamic(k, ch), to_dynamic(v, ch)])
                        })
                        .collect(),
                )
            }
        }
        Value::Channel(r) => Dynamic::from(ScriptChannel(ch.attach(r))),
    }
}

pub(crate) fn from_dynamic(d: Dynamic, depth: usize) -> RhaiResult<Value> {
    if depth > remex_core::Value::MAX_DEPTH {
        return Err(rhai_err("value nested too deeply to send"));
    }
    if d.is_unit() {
        return Ok(Value::Unit);
    }
    if let Ok(b) = d.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = d.as_int() {
        return Ok(Value::Int(i));
    }
    if let Ok(f) = d.as_float() {
        return Ok(Value::Float(f));
    }
    if let Ok(c) = d.as_char() {
        return Ok(Value::Str(c.to_string()));
    }
    if d.is_string() {
        return Ok(Value::Str(d.cast::<ImmutableString>().to_string()));
    }
    if d.is_blob() {
        return Ok(Value::Bytes(d.cast::<Blob>().into()));
    }
    if d.is_array() {
        return d
            .cast::<Array>()
            .into_iter()
            .map(|x| from_dynamic(x, depth + 1))
            .collect::<RhaiResult<Vec<_>>>()
            .map(Value::List);
    }
    if d.is_map() {
        let mut out = Vec::new();
        for (k, v) in d.cast::<Map>() {
            out.push((Value::Str(k.to_string()), from_dynamic(v, depth + 1)?));
        }
        return Ok(Value::Map(out));
    }
    if d.is::<ScriptChannel>() {
        return Ok(Value::Channel(d.cast::<ScriptChannel>().0.handle()));
    }
    Err(rhai_err(format!(
        "cannot send a value of type {}",
        d.type_name()
    )))
}

fn receive(ch: &ScriptChannel, timeout: Option<Duration>) -> RhaiResult<Dynamic> {
    match ch.0.receive_blocking::<remex_core::Value>(timeout) {
        Ok(v) => Ok(to_dynamic(v, &ch.0)),
        Err(e) => Err(rhai_err(e.to_string())),
    }
}

pub(crate) fn seconds(d: &Dynamic) -> RhaiResult<Duration> {
    let s = d
        .as_float()
        .or_else(|_| d.as_int().map(|i| i as f64))
        .map_err(|_| rhai_err(format!("seconds must be a number, got {}", d.type_name())))?;
    Duration::try_from_secs_f64(s).map_err(|_| rhai_err(format!("{s} is not a number of seconds")))
}

impl IntoIterator for ScriptChannel {
    type Item = Dynamic;
    type IntoIter = Box<dyn Iterator<Item = Dynamic>>;
    fn into_iter(self) -> Self::IntoIter {
        let ch = self.0;
        Box::new(std::iter::from_fn(move || {
            ch.receive_blocking::<remex_core::Value>(None)
                .ok()
                .map(|v| to_dynamic(v, &ch))
        }))
    }
}

/// The text lines of a channel read as a byte stream
/// (`channel.read_lines()`), each at most `max` bytes.
#[derive(Clone)]
pub(crate) struct ChannelLines(Arc<Mutex<(ChannelReader, u64, &'static str)>>);

impl IntoIterator for ChannelLines {
    type Item = RhaiResult<Dynamic>;
    type IntoIter = Box<dyn Iterator<Item = RhaiResult<Dynamic>>>;
    fn into_iter(self) -> Self::IntoIter {
        let state = self.0;
        Box::new(std::iter::from_fn(move || {
            let mut st = state.lock();
            let (reader, max, key) = &mut *st;
            let mut line = Vec::new();
            match reader
                .by_ref()
                .take(max.saturating_add(1))
                .read_until(b'\n', &mut line)
            {
                Ok(0) => None,
                Ok(_) if line.len() as u64 > *max && !line.ends_with(b"\n") => Some(Err(rhai_err(
                    format!("a line of the channel is longer than {key}={max} bytes"),
                ))),
                Ok(_) => {
                    if line.ends_with(b"\n") {
                        line.pop();
                    }
                    Some(Ok(String::from_utf8_lossy(&line).into_owned().into()))
                }
                Err(e) => Some(Err(rhai_err(e.to_string()))),
            }
        }))
    }
}

/// Registers the `Channel` type and its methods; `cap` bounds what the
/// byte-stream functions return (see `limits::value_cap`).
pub(crate) fn register_channel(e: &mut Registrar<'_>, (max, key): (u64, &'static str)) {
    e.register_type_with_name::<ChannelLines>("ChannelLines")
        .register_iterator_result::<ChannelLines, Dynamic>();
    e.register_fn(
        "write",
        |ch: &mut ScriptChannel, v: Dynamic| -> RhaiResult<()> {
            let bytes = if v.is_string() {
                bytes::Bytes::from(v.cast::<ImmutableString>().to_string())
            } else if v.is_blob() {
                bytes::Bytes::from(v.cast::<Blob>())
            } else {
                return Err(rhai_err(format!(
                    "write takes a string or a blob, got {}",
                    v.type_name()
                )));
            };
            ch.0.send_value_blocking(Value::Bytes(bytes))
                .map_err(|e| rhai_err(e.to_string()))
        },
    )
    .register_fn("close_write", |ch: &mut ScriptChannel| ch.0.close_write())
    .register_fn("read_lines", move |ch: &mut ScriptChannel| {
        ChannelLines(Arc::new(Mutex::new((ch.0.reader(), max, key))))
    })
    .register_fn(
        "read_all",
        move |ch: &mut ScriptChannel| -> RhaiResult<String> {
            let mut all = Vec::new();
            ch.0.reader()
                .take(max.saturating_add(1))
                .read_to_end(&mut all)
                .map_err(|e| rhai_err(e.to_string()))?;
            if all.len() as u64 > max {
                return Err(rhai_err(format!(
                    "the channel's stream is longer than {key}={max} bytes"
                )));
            }
            Ok(String::from_utf8_lossy(&all).into_owned())
        },
    );
    e.register_type_with_name::<ScriptChannel>("Channel")
        .register_fn(
            "send",
            |ch: &mut ScriptChannel, v: Dynamic| -> RhaiResult<()> {
                let v = from_dynamic(v, 0)?;
                ch.0.send_value_blocking(v)
                    .map_err(|e| rhai_err(e.to_string()))
            },
        )
        .register_fn("receive", |ch: &mut ScriptChannel| receive(ch, None))
        .register_fn("receive", |ch: &mut ScriptChannel, t: Dynamic| {
            receive(ch, Some(seconds(&t)?))
        })
        .register_fn("close", |ch: &mut ScriptChannel| ch.0.close(None))
        .register_fn("close", |ch: &mut ScriptChannel, msg: ImmutableString| {
            ch.0.close(Some(&msg))
        })
        .register_fn("is_closed", |ch: &mut ScriptChannel| ch.0.is_closed())
        .register_fn("newchannel", |ch: &mut ScriptChannel| {
            ScriptChannel(ch.0.newchannel())
        })
        .register_fn("id", |ch: &mut ScriptChannel| i64::from(ch.0.id()))
        .register_fn("to_string", |ch: &mut ScriptChannel| {
            format!("<Channel id={}>", ch.0.id())
        })
        .register_iterator::<ScriptChannel>();
}
