//! Conversions for the wider value types behind the `decimal`, `chrono`,
//! `uuid` and `json` features.
//!
//! Each type converts into its own [`Value`] variant. Reading back accepts
//! that variant and the text form SQLite stores it as, so values round-trip
//! through both databases.

#[allow(unused_imports)]
use crate::error::DecodeError;
#[allow(unused_imports)]
use crate::value::{FromValue, Value};

/// The text SQLite stores a wider value as; `None` for the basic variants.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_text(value: &Value) -> Option<String> {
    match value {
        #[cfg(feature = "json")]
        Value::Json(j) => Some(j.to_string()),
        other => text_form(other, ' '),
    }
}

/// The text form of a wider date, time, UUID or decimal value, with `sep`
/// between date and time; `None` for other variants.
#[allow(dead_code)]
pub(crate) fn text_form(value: &Value, sep: char) -> Option<String> {
    let _ = sep;
    match value {
        #[cfg(feature = "decimal")]
        Value::Decimal(d) => Some(d.to_string()),
        #[cfg(feature = "chrono")]
        Value::Timestamp(t) => Some(t.format(&format!("%Y-%m-%d{sep}%H:%M:%S%.f")).to_string()),
        #[cfg(feature = "chrono")]
        Value::TimestampTz(t) => Some(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        #[cfg(feature = "chrono")]
        Value::Date(d) => Some(d.format("%Y-%m-%d").to_string()),
        #[cfg(feature = "chrono")]
        Value::Time(t) => Some(t.format("%H:%M:%S%.f").to_string()),
        #[cfg(feature = "uuid")]
        Value::Uuid(u) => Some(u.hyphenated().to_string()),
        _ => None,
    }
}

#[allow(unused_macros)]
macro_rules! into_value {
    ($t:ty => $variant:ident) => {
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::$variant(v)
            }
        }
    };
}

#[allow(dead_code)]
fn parse_error(what: &str, text: &str, e: impl std::fmt::Display) -> DecodeError {
    DecodeError::new(format!("text {text:?} is not a valid {what}: {e}"))
}

#[cfg(feature = "decimal")]
mod decimal {
    use super::*;
    use rust_decimal::Decimal;

    into_value!(Decimal => Decimal);

    impl FromValue for Decimal {
        fn from_value(value: &Value) -> Result<Self, DecodeError> {
            match value {
                Value::Decimal(d) => Ok(*d),
                Value::Integer(i) => Ok(Decimal::from(*i)),
                Value::Real(f) => Decimal::try_from(*f)
                    .map_err(|e| DecodeError::new(format!("real {f} is not a decimal: {e}"))),
                Value::Text(t) => t.parse().map_err(|e| parse_error("decimal", t, e)),
                other => Err(DecodeError::mismatch("decimal", other.kind())),
            }
        }
    }
}

#[cfg(feature = "chrono")]
mod time {
    use super::*;
    use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

    into_value!(NaiveDateTime => Timestamp);
    into_value!(DateTime<Utc> => TimestampTz);
    into_value!(NaiveDate => Date);
    into_value!(NaiveTime => Time);

    fn naive(t: &str) -> Option<NaiveDateTime> {
        [
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    }

    impl FromValue for NaiveDateTime {
        fn from_value(value: &Value) -> Result<Self, DecodeError> {
            match value {
                Value::Timestamp(t) => Ok(*t),
                Value::TimestampTz(t) => Ok(t.naive_utc()),
                Value::Text(t) => naive(t)
                    .ok_or_else(|| parse_error("timestamp", t, "expected YYYY-MM-DD HH:MM:SS")),
                other => Err(DecodeError::mismatch("timestamp", other.kind())),
            }
        }
    }

    impl FromValue for DateTime<Utc> {
        fn from_value(value: &Value) -> Result<Self, DecodeError> {
            match value {
                Value::TimestampTz(t) => Ok(*t),
                Value::Timestamp(t) => Ok(t.and_utc()),
                Value::Text(t) => DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .ok()
                    .or_else(|| naive(t).map(|n| n.and_utc()))
                    .ok_or_else(|| parse_error("timestamptz", t, "expected RFC 3339")),
                other => Err(DecodeError::mismatch("timestamptz", other.kind())),
            }
        }
    }

    impl FromValue for NaiveDate {
        fn from_value(value: &Value) -> Result<Self, DecodeError> {
            match value {
                Value::Date(d) => Ok(*d),
                Value::Text(t) => {
                    NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|e| parse_error("date", t, e))
                }
                other => Err(DecodeError::mismatch("date", other.kind())),
            }
        }
    }

    impl FromValue for NaiveTime {
        fn from_value(value: &Value) -> Result<Self, DecodeError> {
            match value {
                Value::Time(t) => Ok(*t),
                Value::Text(t) => NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
                    .map_err(|e| parse_error("time", t, e)),
                other => Err(DecodeError::mismatch("time", other.kind())),
            }
        }
    }
}

#[cfg(feature = "uuid")]
mod uuid_type {
    use super::*;
    use uuid::Uuid;

    into_value!(Uuid => Uuid);

    impl FromValue for Uuid {
        fn from_value(value: &Value) -> Result<Self, DecodeError> {
            match value {
                Value::Uuid(u) => Ok(*u),
                Value::Text(t) => Uuid::parse_str(t).map_err(|e| parse_error("uuid", t, e)),
                Value::Blob(b) => Uuid::from_slice(b)
                    .map_err(|e| DecodeError::new(format!("blob is not a uuid: {e}"))),
                other => Err(DecodeError::mismatch("uuid", other.kind())),
            }
        }
    }
}

#[cfg(feature = "json")]
mod json {
    use super::*;

    into_value!(serde_json::Value => Json);

    impl FromValue for serde_json::Value {
        fn from_value(value: &Value) -> Result<Self, DecodeError> {
            match value {
                Value::Json(j) => Ok(j.clone()),
                Value::Text(t) => serde_json::from_str(t).map_err(|e| parse_error("json", t, e)),
                other => Err(DecodeError::mismatch("json", other.kind())),
            }
        }
    }
}
