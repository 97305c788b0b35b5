//! Tolerant number decoding: integers stored as Int64 may come back as Int32 or Double.
//!
//! Real MongoDB returns an Int64 as it was written. CongoDB (the test server)
//! goes through JavaScript numbers: a small integer comes back as Int32 and a
//! large one (a millisecond timestamp) as Double. Decoding every stored
//! integer through these helpers makes one set of serde structs correct on
//! both.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// Largest integer a Double holds exactly (2^53).
const MAX_EXACT_F64: f64 = 9_007_199_254_740_992.0;

struct U64Visitor;

impl Visitor<'_> for U64Visitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative integer (Int32, Int64 or an integral Double)")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("negative integer {v}")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        if v.is_finite() && v.fract() == 0.0 && (0.0..=MAX_EXACT_F64).contains(&v) {
            // Exact: checked integral and within 2^53 just above.
            Ok(v as u64)
        } else {
            Err(E::custom(format!("{v} is not a non-negative integer")))
        }
    }
}

/// Decodes a `u64` stored as Int32, Int64 or an integral Double.
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(U64Visitor)
}

/// Decodes a `u32` the same way as [`u64`], checking the range.
pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = d.deserialize_any(U64Visitor)?;
    u32::try_from(v).map_err(|_| de::Error::custom(format!("{v} does not fit in 32 bits")))
}

/// Decodes an optional `u64` (absent or null is `None`).
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct OptVisitor;
    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("null or a non-negative integer")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            u64(d).map(Some)
        }
    }
    d.deserialize_option(OptVisitor)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    struct T {
        #[serde(deserialize_with = "super::u64")]
        a: u64,
        #[serde(default, deserialize_with = "super::opt_u64")]
        b: Option<u64>,
    }

    fn decode(doc: bson::Document) -> Result<T, bson::de::Error> {
        bson::from_document(doc)
    }

    #[test]
    fn accepts_int32_int64_and_integral_double() {
        use bson::doc;
        assert_eq!(decode(doc! {"a": 5_i32}).unwrap().a, 5);
        assert_eq!(decode(doc! {"a": 5_i64}).unwrap().a, 5);
        let ms = 1_700_000_000_123_u64;
        assert_eq!(decode(doc! {"a": ms as f64}).unwrap().a, ms);
        let t = decode(doc! {"a": 1_i32, "b": ms as f64}).unwrap();
        assert_eq!(t.b, Some(ms));
        assert_eq!(
            decode(doc! {"a": 1_i32, "b": bson::Bson::Null}).unwrap().b,
            None
        );
        assert_eq!(decode(doc! {"a": 1_i32}).unwrap().b, None);
    }

    #[test]
    fn rejects_fractions_and_negatives() {
        use bson::doc;
        assert!(decode(doc! {"a": 1.5}).is_err());
        assert!(decode(doc! {"a": -1_i32}).is_err());
    }
}
