//! `Value`: the dynamic value that travels on channels.
//!
//! Every item on a channel is a [`Value`]. Typed sends and receives convert
//! any serde type through it ([`to_value`], [`from_value`]), so a script's
//! `42` can be received as an `i64`, and a Rust struct sent to a script
//! arrives there as a map.
//!
//! Over 500 lines: the value type, its serde conversions both ways and
//! their tests; the code is under 500.

mod de;
mod ser;

use std::fmt;

use bytes::Bytes;
use num_bigint::BigInt;
use serde::de::{DeserializeSeed, EnumAccess, SeqAccess, VariantAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use de::from_value;
pub use ser::to_value;

/// The dynamic value on the wire.
///
/// ```
/// use remex::Value;
/// let v = Value::List(vec![Value::Int(1), Value::from("two")]);
/// let back = Value::from_wire(&v.to_wire().unwrap()).unwrap();
/// assert_eq!(back, v);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// No value (Python's `None`, Rust's `()`, rhai's `()`).
    #[default]
    Unit,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// An integer outside `i64`: it round-trips rather than failing.
    BigInt(BigInt),
    /// A 64-bit float.
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// A byte string; travels without encoding when sent on its own.
    Bytes(Bytes),
    /// A list.
    List(Vec<Value>),
    /// A map with any keys, in insertion order.
    Map(Vec<(Value, Value)>),
    /// A channel handle, sent inside a value (see `remex::Channel::handle`).
    Channel(ChannelRef),
}

/// A reference to a channel carried inside a [`Value`]. Turn it into a
/// `remex::Channel` with `remex::Channel::attach` or
/// `remex::Gateway::channel`.
///
/// ```
/// # #[tokio::main] async fn main() -> remex::Result<()> {
/// let gw = remex::makegateway("popen").await?;
/// let ch = gw.newchannel();
/// let r: remex::ChannelRef = ch.handle();
/// // Inside a value, it travels as a channel:
/// assert_eq!(remex::to_value(&r)?, remex::Value::Channel(r));
/// gw.exit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelRef(pub u32);

/// The name under which `ChannelRef` serializes; the value serializer knows it.
pub(crate) const CHANNEL_TOKEN: &str = "$remex::ChannelRef";
/// The name under which `Value` serializes as an enum.
pub(crate) const VALUE_TOKEN: &str = "$remex::Value";
pub(crate) const VARIANTS: &[&str] = &[
    "Unit", "Bool", "Int", "BigInt", "Float", "Str", "Bytes", "List", "Map", "Channel",
];

impl Serialize for ChannelRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(CHANNEL_TOKEN, &self.0)
    }
}

impl<'de> Deserialize<'de> for ChannelRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ChannelRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a channel")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<ChannelRef, D::Error> {
                u32::deserialize(d).map(ChannelRef)
            }
            fn visit_u32<E: serde::de::Error>(self, v: u32) -> Result<ChannelRef, E> {
                Ok(ChannelRef(v))
            }
        }
        d.deserialize_newtype_struct(CHANNEL_TOKEN, V)
    }
}

/// A value that cannot become the requested type, or cannot be encoded.
///
/// ```
/// let e: remex::ValueError = remex::from_value::<bool>(remex::Value::Int(1)).unwrap_err();
/// assert!(e.to_string().starts_with("expected bool, received int 1"), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValueError {
    pub(crate) message: String,
}

impl ValueError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ValueError {
            message: message.into(),
        }
    }
}

impl serde::ser::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError::new(msg.to_string())
    }
}

impl serde::de::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError::new(msg.to_string())
    }
}

impl Value {
    /// How deep lists and maps may nest in a value. Deeper values are
    /// refused on both encode and decode, so that a hostile peer cannot
    /// exhaust the stack.
    ///
    /// ```
    /// let mut v = remex::Value::Int(0);
    /// for _ in 0..remex::Value::MAX_DEPTH + 1 {
    ///     v = remex::Value::List(vec![v]);
    /// }
    /// assert!(v.to_wire().is_err(), "too deep to send");
    /// ```
    pub const MAX_DEPTH: usize = 128;

    /// The variant's name, for error messages: `int`, `string`, `list`, ...
    ///
    /// ```
    /// assert_eq!(remex::Value::from("x").kind_name(), "string");
    /// assert_eq!(remex::Value::Int(1).kind_name(), "int");
    /// ```
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Unit => "unit",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::BigInt(_) => "big integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Channel(_) => "channel",
        }
    }

    /// A short description for error messages: the kind and a preview.
    ///
    /// ```
    /// assert_eq!(remex::Value::from("hi").describe(), "string \"hi\"");
    /// assert_eq!(remex::Value::List(vec![1.into(), 2.into()]).describe(), "list (length 2)");
    /// ```
    pub fn describe(&self) -> String {
        let mut s = match self {
            Value::Unit => "unit".to_string(),
            Value::Bool(b) => format!("bool {b}"),
            Value::Int(i) => format!("int {i}"),
            Value::BigInt(i) => format!("big integer {i}"),
            Value::Float(x) => format!("float {x}"),
            Value::Str(s) => format!("string {s:?}"),
            Value::Bytes(b) => format!("bytes (length {})", b.len()),
            Value::List(l) => format!("list (length {})", l.len()),
            Value::Map(m) => format!("map (length {})", m.len()),
            Value::Channel(c) => format!("channel {}", c.0),
        };
        if s.len() > 80 {
            let mut cut = 77;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str("...");
        }
        s
    }

    /// Nesting depth: 0 for a scalar, 1 for a flat list, ...
    ///
    /// ```
    /// use remex::Value;
    /// assert_eq!(Value::Int(1).depth(), 0);
    /// assert_eq!(Value::List(vec![Value::List(vec![1.into()])]).depth(), 2);
    /// ```
    pub fn depth(&self) -> usize {
        match self {
            Value::List(l) => 1 + l.iter().map(Value::depth).max().unwrap_or(0),
            Value::Map(m) => {
                1 + m
                    .iter()
                    .map(|(k, v)| k.depth().max(v.depth()))
                    .max()
                    .unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// Calls `f` on every channel handle inside the value.
    ///
    /// ```
    /// use remex::{ChannelRef, Value};
    /// let v = Value::List(vec![Value::Channel(ChannelRef(3)), 1.into(), Value::Channel(ChannelRef(5))]);
    /// let mut seen = Vec::new();
    /// v.for_each_channel(&mut |c| seen.push(c.0));
    /// assert_eq!(seen, vec![3, 5]);
    /// ```
    pub fn for_each_channel(&self, f: &mut impl FnMut(ChannelRef)) {
        match self {
            Value::Channel(c) => f(*c),
            Value::List(l) => l.iter().for_each(|v| v.for_each_channel(f)),
            Value::Map(m) => m.iter().for_each(|(k, v)| {
                k.for_each_channel(f);
                v.for_each_channel(f);
            }),
            _ => {}
        }
    }

    /// Decodes a value from postcard bytes, refusing trailing bytes and
    /// nesting deeper than [`Value::MAX_DEPTH`].
    ///
    /// ```
    /// let bytes = remex::Value::from("hi").to_wire().unwrap();
    /// assert_eq!(remex::Value::from_wire(&bytes).unwrap(), "hi".into());
    /// // Trailing bytes are refused:
    /// let mut longer = bytes.clone();
    /// longer.push(0);
    /// assert!(remex::Value::from_wire(&longer).is_err());
    /// ```
    pub fn from_wire(bytes: &[u8]) -> Result<Value, ValueError> {
        TOO_DEEP.with(|f| f.set(false));
        let (v, rest) = postcard::take_from_bytes::<Value>(bytes).map_err(|e| {
            // postcard drops the text of custom errors; name the depth bound.
            if TOO_DEEP.with(|f| f.replace(false)) {
                ValueError::new(format!(
                    "value nested deeper than {} levels",
                    Value::MAX_DEPTH
                ))
            } else {
                ValueError::new(format!("malformed value: {e}"))
            }
        })?;
        if !rest.is_empty() {
            return Err(ValueError::new(format!(
                "{} trailing bytes after value",
                rest.len()
            )));
        }
        Ok(v)
    }
}

impl From<()> for Value {
    fn from(_: ()) -> Self {
        Value::Unit
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<Bytes> for Value {
    fn from(v: Bytes) -> Self {
        Value::Bytes(v)
    }
}
impl From<BigInt> for Value {
    fn from(v: BigInt) -> Self {
        Value::BigInt(v)
    }
}
impl From<ChannelRef> for Value {
    fn from(v: ChannelRef) -> Self {
        Value::Channel(v)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}

struct Pairs<'a>(&'a [(Value, Value)]);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for pair in self.0 {
            seq.serialize_element(pair)?;
        }
        seq.end()
    }
}

struct BigIntBytes<'a>(&'a BigInt);

impl Serialize for BigIntBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0.to_signed_bytes_le())
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = VALUE_TOKEN;
        match self {
            Value::Unit => s.serialize_unit_variant(t, 0, "Unit"),
            Value::Bool(b) => s.serialize_newtype_variant(t, 1, "Bool", b),
            Value::Int(i) => s.serialize_newtype_variant(t, 2, "Int", i),
            Value::BigInt(i) => s.serialize_newtype_variant(t, 3, "BigInt", &BigIntBytes(i)),
            Value::Float(x) => s.serialize_newtype_variant(t, 4, "Float", x),
            Value::Str(x) => s.serialize_newtype_variant(t, 5, "Str", x),
            Value::Bytes(b) => s.serialize_newtype_variant(t, 6, "Bytes", &serde_bytes_ref(b)),
            Value::List(l) => s.serialize_newtype_variant(t, 7, "List", l),
            Value::Map(m) => s.serialize_newtype_variant(t, 8, "Map", &Pairs(m)),
            Value::Channel(c) => s.serialize_newtype_variant(t, 9, "Channel", &c.0),
        }
    }
}

struct BytesRef<'a>(&'a [u8]);
fn serde_bytes_ref(b: &Bytes) -> BytesRef<'_> {
    BytesRef(b)
}
impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

thread_local! {
    /// Set when a decode stopped at the depth bound.
    static TOO_DEEP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Deserializes a value at a given nesting depth.
#[derive(Clone, Copy)]
struct ValueSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.depth > Value::MAX_DEPTH {
            TOO_DEEP.with(|f| f.set(true));
            return Err(serde::de::Error::custom(format!(
                "value nested deeper than {} levels",
                Value::MAX_DEPTH
            )));
        }
        d.deserialize_enum(VALUE_TOKEN, VARIANTS, self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a remex value")
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        use serde::de::Error;
        let (idx, var): (u32, _) = data.variant()?;
        Ok(match idx {
            0 => {
                var.unit_variant()?;
                Value::Unit
            }
            1 => Value::Bool(var.newtype_variant()?),
            2 => Value::Int(var.newtype_variant()?),
            3 => {
                let b: BytesBuf = var.newtype_variant()?;
                Value::BigInt(BigInt::from_signed_bytes_le(&b.0))
            }
            4 => Value::Float(var.newtype_variant()?),
            5 => Value::Str(var.newtype_variant()?),
            6 => Value::Bytes(Bytes::from(var.newtype_variant::<BytesBuf>()?.0)),
            7 => Value::List(var.newtype_variant_seed(ListSeed {
                depth: self.depth + 1,
            })?),
            8 => Value::Map(var.newtype_variant_seed(MapSeed {
                depth: self.depth + 1,
            })?),
            9 => Value::Channel(ChannelRef(var.newtype_variant()?)),
            n => return Err(A::Error::custom(format!("unknown value variant {n}"))),
        })
    }
}

struct BytesBuf(Vec<u8>);

impl<'de> Deserialize<'de> for BytesBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BytesBuf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<BytesBuf, E> {
                Ok(BytesBuf(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<BytesBuf, E> {
                Ok(BytesBuf(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BytesBuf, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(BytesBuf(out))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

struct ListSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = Vec<Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Value>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListSeed {
    type Value = Vec<Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        // Never trust the announced length for allocation.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element_seed(ValueSeed { depth: self.depth })? {
            out.push(v);
        }
        Ok(out)
    }
}

struct MapSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for MapSeed {
    type Value = Vec<(Value, Value)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MapSeed {
    type Value = Vec<(Value, Value)>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of key-value pairs")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(pair) = seq.next_element_seed(PairSeed { depth: self.depth })? {
            out.push(pair);
        }
        Ok(out)
    }
}

struct PairSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for PairSeed {
    type Value = (Value, Value);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_tuple(2, self)
    }
}

impl<'de> Visitor<'de> for PairSeed {
    type Value = (Value, Value);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key-value pair")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let seed = ValueSeed { depth: self.depth };
        let k = seq
            .next_element_seed(seed)?
            .ok_or_else(|| A::Error::custom("map pair without key"))?;
        let v = seq
            .next_element_seed(seed)?
            .ok_or_else(|| A::Error::custom("map pair without value"))?;
        Ok((k, v))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ValueSeed { depth: 0 }.deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_refused_on_decode() {
        // Hand-build postcard bytes for List([List([... ])]) 1000 levels deep.
        let mut bytes = Vec::new();
        for _ in 0..1000 {
            bytes.extend_from_slice(&[7, 1]);
        }
        bytes.push(0);
        let err = Value::from_wire(&bytes).unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_on_encode() {
        let mut v = Value::Unit;
        for _ in 0..=Value::MAX_DEPTH + 1 {
            v = Value::List(vec![v]);
        }
        assert!(v.to_wire().is_err());
    }

    #[test]
    fn huge_announced_list_length_does_not_allocate() {
        // List with announced length u32::MAX but no elements.
        let bytes = [7, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(Value::from_wire(&bytes).is_err());
    }

    #[test]
    fn big_integers_roundtrip() {
        let big: BigInt = "-123456789012345678901234567890123456789".parse().unwrap();
        let v = Value::Map(vec![(
            Value::BigInt(big.clone()),
            Value::Channel(ChannelRef(3)),
        )]);
        assert_eq!(Value::from_wire(&v.to_wire().unwrap()).unwrap(), v);
    }
}
