//! The built-in tasks every remex worker has, and the task lane's
//! messages: defined once, here, for the controller (`remex-group`, the
//! transports) and the worker (`remex-worker`) alike.
//!
//! Names starting with `__` are reserved: a worker refuses to register a
//! task under one ([`is_reserved`]). A task lane is one long-lived channel
//! per worker opened with the call [`LANE`]`([executors, control])`; it
//! carries [`LaneRequest`]s one way and [`LaneReply`]s the other, and
//! cancels (a request id) travel on the control channel.
//!
//! ```
//! use remex::core::builtin::{LaneReply, LaneRequest};
//! use remex::Value;
//!
//! let req = LaneRequest { id: 7, task: "square".into(), args: Value::Int(3) };
//! assert_eq!(LaneRequest::from_value(req.clone().into_value()).unwrap(), req);
//! let reply = LaneReply { id: 7, outcome: Ok(Value::Int(9)) };
//! assert_eq!(LaneReply::from_value(reply.clone().into_value()).unwrap(), reply);
//! ```

use crate::value::Value;

/// Opens a task lane: `[executors, control channel]`.
pub const LANE: &str = "__lane";
/// Stores a scattered value under a key: `[key, value]`.
pub const STORE: &str = "__store";
/// Returns a stored value: `key`.
pub const FETCH: &str = "__fetch";
/// Drops stored values: `[keys]`.
pub const DROP: &str = "__drop";
/// Starts a worker behind this one and carries its stdio (`via=`).
pub const RELAY: &str = "__relay";
/// Starts a `socket=` listener with a given secret (`installvia=`).
pub const LISTEN: &str = "__listen";
/// Receives an rsync send (`remex::rsync::RSync`).
pub const RSYNC: &str = "__rsync";

/// The key of the one-entry map that stands for a scattered value (a
/// `DataRef`): the worker replaces such a map in a task's arguments with
/// the value it stores under the key.
///
/// ```
/// assert_eq!(remex::core::builtin::REF_KEY, "$remex_ref");
/// ```
pub const REF_KEY: &str = "$remex_ref";

/// Whether `name` is reserved for built-in tasks (it starts with `__`).
///
/// ```
/// assert!(remex::core::builtin::is_reserved("__lane"));
/// assert!(!remex::core::builtin::is_reserved("square"));
/// ```
pub fn is_reserved(name: &str) -> bool {
    name.starts_with("__")
}

/// A reference to the stored value `key`, as it travels.
///
/// ```
/// use remex::core::builtin::{data_ref, ref_key};
/// assert_eq!(ref_key(&data_ref("k1")), Some("k1"));
/// ```
pub fn data_ref(key: &str) -> Value {
    Value::Map(vec![(Value::Str(REF_KEY.into()), Value::Str(key.into()))])
}

/// The key if `v` is a reference to a stored value.
///
/// ```
/// use remex::core::builtin::ref_key;
/// assert_eq!(ref_key(&remex::Value::Int(1)), None);
/// ```
pub fn ref_key(v: &Value) -> Option<&str> {
    match v {
        Value::Map(m) if m.len() == 1 => match &m[0] {
            (Value::Str(k), Value::Str(key)) if k == REF_KEY => Some(key),
            _ => None,
        },
        _ => None,
    }
}

/// A lane message that is not what the lane protocol says, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed lane {what}: expected {expected}, got {got}")]
pub struct LaneMessageError {
    /// "request" or "reply".
    pub what: &'static str,
    /// Its shape.
    pub expected: &'static str,
    /// What came, described.
    pub got: String,
}

/// A task for a lane: `[id, task, args]` on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneRequest {
    /// The controller's id for it, unique on its lane.
    pub id: i64,
    /// The registered task's name.
    pub task: String,
    /// Its arguments.
    pub args: Value,
}

impl LaneRequest {
    const SHAPE: &'static str = "[id: int, task: string, args]";

    /// The request as it travels.
    pub fn into_value(self) -> Value {
        Value::List(vec![Value::Int(self.id), Value::Str(self.task), self.args])
    }

    /// Reads a request, or names what is wrong with it.
    pub fn from_value(v: Value) -> Result<Self, LaneMessageError> {
        three(v, "request", Self::SHAPE, |parts| match parts {
            [Value::Int(id), Value::Str(task), args] => Ok(LaneRequest { id, task, args }),
            parts => Err(parts),
        })
    }
}

/// A lane's answer: `[id, ok, value or error message]` on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneReply {
    /// The request's id.
    pub id: i64,
    /// The task's result, or its error message.
    pub outcome: Result<Value, String>,
}

impl LaneReply {
    const SHAPE: &'static str = "[id: int, ok: bool, value]";

    /// The reply as it travels.
    pub fn into_value(self) -> Value {
        let (ok, value) = match self.outcome {
            Ok(v) => (true, v),
            Err(e) => (false, Value::Str(e)),
        };
        Value::List(vec![Value::Int(self.id), Value::Bool(ok), value])
    }

    /// Reads a reply, or names what is wrong with it.
    pub fn from_value(v: Value) -> Result<Self, LaneMessageError> {
        three(v, "reply", Self::SHAPE, |parts| match parts {
            [Value::Int(id), Value::Bool(true), value] => Ok(LaneReply {
                id,
                outcome: Ok(value),
            }),
            [Value::Int(id), Value::Bool(false), error] => Ok(LaneReply {
                id,
                outcome: Err(match error {
                    Value::Str(s) => s,
                    other => other.describe(),
                }),
            }),
            parts => Err(parts),
        })
    }
}

/// A lane's hand-back of requests it had not started, after the
/// controller asked for them ([`LaneControl::Steal`]): `[-1, "returned",
/// [id, ...]]` on the lane's channel, among its replies.
///
/// ```
/// use remex::core::builtin::LaneReturned;
/// let r = LaneReturned { ids: vec![4, 9] };
/// assert_eq!(LaneReturned::from_value(&r.clone().into_value()), Some(r));
/// assert_eq!(LaneReturned::from_value(&remex::Value::Int(1)), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneReturned {
    /// The requests given back, not started.
    pub ids: Vec<i64>,
}

impl LaneReturned {
    /// The hand-back as it travels.
    pub fn into_value(self) -> Value {
        Value::List(vec![
            Value::Int(-1),
            Value::Str("returned".into()),
            Value::List(self.ids.into_iter().map(Value::Int).collect()),
        ])
    }

    /// Reads a hand-back; `None` if `v` is not one (a reply, then).
    pub fn from_value(v: &Value) -> Option<Self> {
        let Value::List(parts) = v else { return None };
        match parts.as_slice() {
            [Value::Int(-1), Value::Str(tag), Value::List(ids)] if tag == "returned" => {
                let ids = ids
                    .iter()
                    .map(|i| match i {
                        Value::Int(i) => Some(*i),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(LaneReturned { ids })
            }
            _ => None,
        }
    }
}

/// What the controller says on a lane's control channel.
///
/// ```
/// use remex::core::builtin::LaneControl;
/// for c in [LaneControl::Cancel(3), LaneControl::Steal(2)] {
///     assert_eq!(LaneControl::from_value(&c.into_value()), Some(c));
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneControl {
    /// Request `id` is not wanted any more: skip it, or stop it.
    Cancel(i64),
    /// Give back up to this many requests not started yet
    /// ([`LaneReturned`]): a worker with idle executors takes them.
    Steal(i64),
}

impl LaneControl {
    /// The message as it travels: `id`, or `["steal", n]`.
    pub fn into_value(self) -> Value {
        match self {
            LaneControl::Cancel(id) => Value::Int(id),
            LaneControl::Steal(n) => Value::List(vec![Value::Str("steal".into()), Value::Int(n)]),
        }
    }

    /// Reads a control message; `None` if it is not one.
    pub fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(id) => Some(LaneControl::Cancel(*id)),
            Value::List(parts) => match parts.as_slice() {
                [Value::Str(tag), Value::Int(n)] if tag == "steal" => Some(LaneControl::Steal(*n)),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Reads a lane message of three parts with `read`, which gives the parts
/// back when they are not what it expects; the error names what came.
fn three<T>(
    v: Value,
    what: &'static str,
    expected: &'static str,
    read: impl FnOnce([Value; 3]) -> Result<T, [Value; 3]>,
) -> Result<T, LaneMessageError> {
    let got = match v {
        Value::List(l) => match <[Value; 3]>::try_from(l) {
            Ok(parts) => match read(parts) {
                Ok(t) => return Ok(t),
                Err(parts) => Value::List(parts.into()),
            },
            Err(l) => Value::List(l),
        },
        other => other,
    };
    Err(LaneMessageError {
        what,
        expected,
        got: got.describe(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_keep_their_wire_shape() {
        let req = LaneRequest {
            id: 3,
            task: "t".into(),
            args: Value::Int(1),
        };
        assert_eq!(
            req.into_value(),
            Value::List(vec![Value::Int(3), Value::Str("t".into()), Value::Int(1)])
        );
        let failed = LaneReply {
            id: 3,
            outcome: Err("boom".into()),
        };
        assert_eq!(
            failed.clone().into_value(),
            Value::List(vec![
                Value::Int(3),
                Value::Bool(false),
                Value::Str("boom".into())
            ])
        );
        assert_eq!(
            LaneReply::from_value(failed.into_value()).unwrap().outcome,
            Err("boom".into())
        );
    }

    #[test]
    fn malformed_lane_messages_are_named() {
        let e = LaneRequest::from_value(Value::List(vec![Value::Str("x".into())])).unwrap_err();
        assert_eq!(e.what, "request");
        assert!(
            e.to_string().contains("[id: int, task: string, args]"),
            "{e}"
        );
        let e = LaneReply::from_value(Value::List(vec![
            Value::Str("1".into()),
            Value::Bool(true),
            Value::Unit,
        ]))
        .unwrap_err();
        assert_eq!(e.what, "reply");
        assert!(LaneReply::from_value(Value::Int(1)).is_err());
    }

    #[test]
    fn a_reference_is_a_one_entry_map_under_the_key() {
        assert_eq!(ref_key(&data_ref("abc")), Some("abc"));
        let two = Value::Map(vec![
            (Value::Str(REF_KEY.into()), Value::Str("a".into())),
            (Value::Str("x".into()), Value::Int(1)),
        ]);
        assert_eq!(ref_key(&two), None);
        assert_eq!(
            ref_key(&Value::Map(vec![(
                Value::Str("other".into()),
                Value::Str("a".into())
            )])),
            None
        );
    }
}
