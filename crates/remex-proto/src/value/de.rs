//! A [`Value`] into any `Deserialize` type.

use num_bigint::BigInt;
use serde::de::value::U32Deserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use super::{Value, ValueError, CHANNEL_TOKEN, VALUE_TOKEN};

/// Converts a [`Value`] into any serde type. A mismatch is an error naming
/// what was expected and what arrived.
///
/// ```
/// use remex::{from_value, Value};
/// let n: i64 = from_value(Value::Int(42)).unwrap();
/// assert_eq!(n, 42);
/// let err = from_value::<i64>(Value::from("forty-two")).unwrap_err();
/// assert!(err.to_string().contains("expected i64"));
/// assert!(err.to_string().contains("string \"forty-two\""));
/// // Types are named as written, without their module paths.
/// let err = from_value::<Vec<String>>(Value::Int(1)).unwrap_err();
/// assert!(err.to_string().starts_with("expected Vec<String>,"), "{err}");
/// ```
pub fn from_value<T: DeserializeOwned>(v: Value) -> Result<T, ValueError> {
    let described = v.describe();
    T::deserialize(v).map_err(|e| {
        ValueError::new(format!(
            "expected {}, received {described}: {e}",
            short_type_name(std::any::type_name::<T>())
        ))
    })
}

/// A type's name as a user writes it: `alloc::vec::Vec<alloc::string::String>`
/// becomes `Vec<String>`.
fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(word.rsplit("::").next().unwrap_or(""));
        word.clear();
    };
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn big_to_visitor<'de, V: Visitor<'de>>(b: BigInt, visitor: V) -> Result<V::Value, ValueError> {
    // The narrowest visit first: a u64 above i64::MAX is a big integer
    // here, and serde's u64 takes visit_u64 (not visit_i128).
    if let Ok(u) = u64::try_from(&b) {
        visitor.visit_u64(u)
    } else if let Ok(i) = i64::try_from(&b) {
        visitor.visit_i64(i)
    } else if let Ok(i) = i128::try_from(&b) {
        visitor.visit_i128(i)
    } else if let Ok(u) = u128::try_from(&b) {
        visitor.visit_u128(u)
    } else {
        Err(ValueError::new(format!(
            "integer {b} does not fit in 128 bits"
        )))
    }
}

impl<'de> de::Deserializer<'de> for Value {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Unit => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visitor.visit_i64(i),
            Value::BigInt(b) => big_to_visitor(b, visitor),
            Value::Float(x) => visitor.visit_f64(x),
            Value::Str(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_byte_buf(b.to_vec()),
            Value::List(l) => visitor.visit_seq(de::value::SeqDeserializer::new(l.into_iter())),
            Value::Map(m) => visitor.visit_map(de::value::MapDeserializer::new(m.into_iter())),
            Value::Channel(c) => visitor.visit_u32(c.0),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Unit => visitor.visit_none(),
            v => visitor.visit_some(v),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        if name == CHANNEL_TOKEN {
            return match self {
                Value::Channel(c) => {
                    visitor.visit_newtype_struct(U32Deserializer::<ValueError>::new(c.0))
                }
                other => Err(de::Error::invalid_type(unexpected(&other), &"a channel")),
            };
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        if name == VALUE_TOKEN {
            return visitor.visit_enum(AsValueEnum(self));
        }
        match self {
            Value::Str(s) => visitor.visit_enum(s.into_deserializer()),
            Value::Map(mut m) if m.len() == 1 => {
                let (k, v) = m.pop().unwrap_or_default();
                visitor.visit_enum(Tagged { tag: k, content: v })
            }
            other => Err(de::Error::invalid_type(
                unexpected(&other),
                &"an enum (a string, or a map with one entry)",
            )),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Bytes(b) => visitor.visit_byte_buf(b.to_vec()),
            v => v.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_bytes(visitor)
    }

    /// Bytes read as a sequence too (a blob into a `Vec<u8>`).
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Bytes(b) => {
                visitor.visit_seq(de::value::SeqDeserializer::new(b.iter().copied()))
            }
            v => v.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_seq(visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        unit unit_struct tuple_struct map struct identifier ignored_any
    }
}

impl IntoDeserializer<'_, ValueError> for Value {
    type Deserializer = Value;
    fn into_deserializer(self) -> Value {
        self
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Unit => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Int(i) => de::Unexpected::Signed(*i),
        Value::Float(x) => de::Unexpected::Float(*x),
        Value::Str(s) => de::Unexpected::Str(s),
        Value::Bytes(b) => de::Unexpected::Bytes(b),
        Value::List(_) => de::Unexpected::Seq,
        Value::Map(_) => de::Unexpected::Map,
        Value::BigInt(_) => de::Unexpected::Other("big integer"),
        Value::Channel(_) => de::Unexpected::Other("channel"),
    }
}

/// An externally tagged enum: `{variant: content}`.
struct Tagged {
    tag: Value,
    content: Value,
}

impl<'de> de::EnumAccess<'de> for Tagged {
    type Error = ValueError;
    type Variant = Value;
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Value), ValueError> {
        Ok((seed.deserialize(self.tag)?, self.content))
    }
}

impl<'de> de::VariantAccess<'de> for Value {
    type Error = ValueError;
    fn unit_variant(self) -> Result<(), ValueError> {
        match self {
            Value::Unit => Ok(()),
            other => Err(de::Error::invalid_type(
                unexpected(&other),
                &"a unit variant",
            )),
        }
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, ValueError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

/// Presents a `Value` as the enum that `Value`'s own `Deserialize` expects,
/// so that a `Value` nested in a typed struct comes back as itself.
struct AsValueEnum(Value);

impl<'de> de::EnumAccess<'de> for AsValueEnum {
    type Error = ValueError;
    type Variant = Value;
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Value), ValueError> {
        let (idx, content) = match self.0 {
            Value::Unit => (0u32, Value::Unit),
            v @ Value::Bool(_) => (1, v),
            v @ Value::Int(_) => (2, v),
            Value::BigInt(b) => (3, Value::Bytes(b.to_signed_bytes_le().into())),
            v @ Value::Float(_) => (4, v),
            v @ Value::Str(_) => (5, v),
            v @ Value::Bytes(_) => (6, v),
            v @ Value::List(_) => (7, v),
            Value::Map(m) => (
                8,
                Value::List(
                    m.into_iter()
                        .map(|(k, v)| Value::List(vec![k, v]))
                        .collect(),
                ),
            ),
            Value::Channel(c) => (9, Value::Int(c.0.into())),
        };
        Ok((
            seed.deserialize(U32Deserializer::<ValueError>::new(idx))?,
            content,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::value::{to_value, ChannelRef};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Dot,
        Circle(f64),
        Rect { w: u32, h: u32 },
        Pair(i8, i8),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Everything {
        name: String,
        tags: Vec<String>,
        maybe: Option<u8>,
        nothing: Option<u8>,
        shapes: Vec<Shape>,
        big: u128,
        neg: i128,
        large: u64,
        small_big: u128,
        map: BTreeMap<u32, bool>,
        raw: Value,
        chan: ChannelRef,
        unit: (),
        tuple: (u8, String),
    }

    #[test]
    fn typed_values_roundtrip_through_value_and_the_wire() {
        let e = Everything {
            name: "x".into(),
            tags: vec!["a".into(), "b".into()],
            maybe: Some(3),
            nothing: None,
            shapes: vec![
                Shape::Dot,
                Shape::Circle(1.5),
                Shape::Rect { w: 2, h: 3 },
                Shape::Pair(-1, 1),
            ],
            big: u128::MAX,
            neg: i128::MIN,
            large: u64::MAX,
            small_big: 5,
            map: [(1, true), (2, false)].into_iter().collect(),
            raw: Value::Map(vec![(
                Value::Int(1),
                Value::BigInt(BigInt::from(u64::MAX) * 1000),
            )]),
            chan: ChannelRef(9),
            unit: (),
            tuple: (7, "seven".into()),
        };
        let v = to_value(&e).unwrap();
        let over_wire = Value::from_wire(&v.to_wire().unwrap()).unwrap();
        assert_eq!(over_wire, v);
        let back: Everything = from_value(over_wire).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn bytes_read_as_a_byte_vector() {
        let v = Value::Bytes(vec![1u8, 2, 255].into());
        assert_eq!(from_value::<Vec<u8>>(v.clone()).unwrap(), vec![1, 2, 255]);
        assert_eq!(from_value::<[u8; 3]>(v).unwrap(), [1, 2, 255]);
    }

    #[test]
    fn mismatch_names_expected_and_received() {
        let err = from_value::<Vec<u8>>(Value::Int(5))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected Vec<u8>,") && err.contains("int 5"),
            "{err}"
        );
        let err = from_value::<u8>(Value::Int(300)).unwrap_err().to_string();
        assert!(err.contains("u8") && err.contains("300"), "{err}");
        let err = from_value::<ChannelRef>(Value::Int(1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("channel"), "{err}");
    }
}
