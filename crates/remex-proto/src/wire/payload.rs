//! A value's encoding as the payload of a `Data` frame
//! ([`Value::to_wire`]; decoding is [`Value::from_wire`], beside the
//! value's depth bound).

use super::WireError;
use crate::value::Value;

impl Value {
    /// Encodes the value as postcard bytes (the `Data` frame payload).
    ///
    /// ```
    /// let v = remex::Value::List(vec![1.into(), "two".into()]);
    /// let bytes = v.to_wire().unwrap();
    /// assert_eq!(remex::Value::from_wire(&bytes).unwrap(), v);
    /// ```
    pub fn to_wire(&self) -> Result<Vec<u8>, WireError> {
        if self.depth() > Value::MAX_DEPTH {
            return Err(WireError::Encode {
                what: "value",
                detail: format!("value nested deeper than {} levels", Value::MAX_DEPTH),
            });
        }
        postcard::to_stdvec(self).map_err(|e| WireError::Encode {
            what: "value",
            detail: e.to_string(),
        })
    }
}
