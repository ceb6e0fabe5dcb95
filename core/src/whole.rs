//! Whole numbers as JSON Schema counts them: `14` and `14.0` alike (a number whose fraction is
//! zero is an integer there), so a client that writes every number as a float, as JavaScript
//! may, is not refused a count the API document allows.

use serde::de::Error;
use serde::{Deserialize, Deserializer};

/// The whole number `number` is, if it is one and not below 0.
pub fn of(number: &serde_json::Number) -> Option<u64> {
    number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f))
            .map(|f| f as u64)
    })
}

/// For `#[serde(default, deserialize_with = "crate::whole::option")]`: an optional count, read
/// as [`of`] reads it, refused when it does not fit `T`.
pub fn option<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = of(&number)
        .ok_or_else(|| D::Error::custom(format!("{number} is not a whole number of 0 or more")))?;
    T::try_from(whole)
        .map(Some)
        .map_err(|_| D::Error::custom(format!("{number} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Count {
        #[serde(default, deserialize_with = "option")]
        n: Option<u32>,
    }

    fn count(json: &str) -> Result<Option<u32>, serde_json::Error> {
        serde_json::from_str::<Count>(json).map(|c| c.n)
    }

    #[test]
    fn a_whole_float_is_a_whole_number_and_a_fraction_or_a_negative_is_not() {
        assert_eq!(count(r#"{"n": 14}"#).unwrap(), Some(14));
        assert_eq!(count(r#"{"n": 14.0}"#).unwrap(), Some(14));
        assert_eq!(count(r#"{"n": null}"#).unwrap(), None);
        assert_eq!(count("{}").unwrap(), None);
        assert!(count(r#"{"n": 14.5}"#).is_err());
        assert!(count(r#"{"n": -1}"#).is_err());
        assert!(count(r#"{"n": 5000000000}"#).is_err(), "beyond u32");
    }
}
