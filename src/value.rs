//! The dynamic [`Value`] and the conversions into and out of it.

use crate::error::DecodeError;

/// One SQL value, as it crosses between the async side and a worker.
///
/// Parameters are converted into `Value`s with [`From`]; row values come out
/// of rows as `Value`s and are converted with [`FromValue`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A boolean. SQLite has no boolean type and stores it as the integer 0 or 1.
    Bool(bool),
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes.
    Blob(Vec<u8>),
    /// An exact decimal (PostgreSQL `numeric`; text in SQLite).
    #[cfg(feature = "decimal")]
    #[cfg_attr(docsrs, doc(cfg(feature = "decimal")))]
    Decimal(rust_decimal::Decimal),
    /// A date and time without time zone (PostgreSQL `timestamp`; text in SQLite).
    #[cfg(feature = "chrono")]
    #[cfg_attr(docsrs, doc(cfg(feature = "chrono")))]
    Timestamp(chrono::NaiveDateTime),
    /// An instant in UTC (PostgreSQL `timestamptz`; RFC 3339 text in SQLite).
    #[cfg(feature = "chrono")]
    #[cfg_attr(docsrs, doc(cfg(feature = "chrono")))]
    TimestampTz(chrono::DateTime<chrono::Utc>),
    /// A calendar date (PostgreSQL `date`; text in SQLite).
    #[cfg(feature = "chrono")]
    #[cfg_attr(docsrs, doc(cfg(feature = "chrono")))]
    Date(chrono::NaiveDate),
    /// A time of day (PostgreSQL `time`; text in SQLite).
    #[cfg(feature = "chrono")]
    #[cfg_attr(docsrs, doc(cfg(feature = "chrono")))]
    Time(chrono::NaiveTime),
    /// A UUID (PostgreSQL `uuid`; hyphenated text in SQLite).
    #[cfg(feature = "uuid")]
    #[cfg_attr(docsrs, doc(cfg(feature = "uuid")))]
    Uuid(uuid::Uuid),
    /// A JSON document (PostgreSQL `json`/`jsonb`; text in SQLite).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    Json(serde_json::Value),
}

impl Value {
    /// The kind of value, as used in error messages: `"null"`, `"boolean"`,
    /// `"integer"`, `"real"`, `"text"`, `"blob"`, or the name of a feature-gated type.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Integer(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
            #[cfg(feature = "decimal")]
            Value::Decimal(_) => "decimal",
            #[cfg(feature = "chrono")]
            Value::Timestamp(_) => "timestamp",
            #[cfg(feature = "chrono")]
            Value::TimestampTz(_) => "timestamptz",
            #[cfg(feature = "chrono")]
            Value::Date(_) => "date",
            #[cfg(feature = "chrono")]
            Value::Time(_) => "time",
            #[cfg(feature = "uuid")]
            Value::Uuid(_) => "uuid",
            #[cfg(feature = "json")]
            Value::Json(_) => "json",
        }
    }

    /// `true` for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Integer(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Real(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Real(f64::from(v))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Blob(v.to_vec())
    }
}

impl<const N: usize> From<[u8; N]> for Value {
    fn from(v: [u8; N]) -> Value {
        Value::Blob(v.to_vec())
    }
}

impl From<&Value> for Value {
    fn from(v: &Value) -> Value {
        v.clone()
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl From<()> for Value {
    fn from(_: ()) -> Value {
        Value::Null
    }
}

/// Conversion from a [`Value`] into a Rust type, used by [`Row::get`](crate::Row::get)
/// and the `scalar` methods.
///
/// Implemented for `i64, i32, i16, i8, u32, u16, u8, f64, f32, bool, String,
/// Vec<u8>, Value` and `Option<T>` of any of them (`NULL` becomes `None`);
/// with their features also for `rust_decimal::Decimal` (`decimal`),
/// `chrono`'s `NaiveDateTime`, `DateTime<Utc>`, `NaiveDate` and `NaiveTime`
/// (`chrono`), `uuid::Uuid` (`uuid`) and `serde_json::Value` (`json`).
/// Integer conversions check the range instead of wrapping.
pub trait FromValue: Sized {
    /// Converts `value`, or says why it cannot.
    ///
    /// # Errors
    /// A [`DecodeError`] when the value has another kind than `Self` takes
    /// (`NULL` into a type that is not an `Option`, text into an integer, ...)
    /// or is out of `Self`'s range.
    fn from_value(value: &Value) -> Result<Self, DecodeError>;

    /// Converts an owned `value`, moving its text or bytes rather than
    /// copying them where `Self` can hold them as they are. Defaults to
    /// [`from_value`](FromValue::from_value).
    ///
    /// # Errors
    /// As [`from_value`](FromValue::from_value), with the value handed back.
    fn from_owned(value: Value) -> Result<Self, (DecodeError, Value)> {
        Self::from_value(&value).map_err(|e| (e, value))
    }

    /// What to return when a query yields no row at all; `None` means "that is an error".
    #[doc(hidden)]
    fn from_missing() -> Option<Self> {
        None
    }
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self, DecodeError> {
        Ok(value.clone())
    }

    fn from_owned(value: Value) -> Result<Self, (DecodeError, Value)> {
        Ok(value)
    }
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self, DecodeError> {
        match value {
            Value::Integer(i) => Ok(*i),
            other => Err(DecodeError::mismatch("integer", other.kind())),
        }
    }
}

macro_rules! narrow_int {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> Result<Self, DecodeError> {
                let wide = i64::from_value(value)?;
                <$t>::try_from(wide).map_err(|_| {
                    DecodeError::new(format!(
                        "integer {wide} is out of range for {}",
                        stringify!($t)
                    ))
                })
            }
        }
    )*};
}
narrow_int!(i32, i16, i8, u64, u32, u16, u8);

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, DecodeError> {
        match value {
            Value::Real(f) => Ok(*f),
            // SQLite stores integral reals in REAL columns as integers.
            Value::Integer(i) => Ok(*i as f64),
            other => Err(DecodeError::mismatch("real", other.kind())),
        }
    }
}

impl FromValue for f32 {
    fn from_value(value: &Value) -> Result<Self, DecodeError> {
        f64::from_value(value).map(|f| f as f32)
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, DecodeError> {
        match value {
            Value::Bool(b) => Ok(*b),
            Value::Integer(0) => Ok(false),
            Value::Integer(1) => Ok(true),
            Value::Integer(i) => Err(DecodeError::new(format!(
                "integer {i} is not a boolean (0 or 1)"
            ))),
            other => Err(DecodeError::mismatch("boolean", other.kind())),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, DecodeError> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            other => Err(DecodeError::mismatch("text", other.kind())),
        }
    }

    fn from_owned(value: Value) -> Result<Self, (DecodeError, Value)> {
        match value {
            Value::Text(s) => Ok(s),
            other => Self::from_value(&other).map_err(|e| (e, other)),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, DecodeError> {
        match value {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            other => Err(DecodeError::mismatch("blob", other.kind())),
        }
    }

    fn from_owned(value: Value) -> Result<Self, (DecodeError, Value)> {
        match value {
            Value::Blob(b) => Ok(b),
            Value::Text(s) => Ok(s.into_bytes()),
            other => Self::from_value(&other).map_err(|e| (e, other)),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, DecodeError> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }

    fn from_owned(value: Value) -> Result<Self, (DecodeError, Value)> {
        match value {
            Value::Null => Ok(None),
            other => T::from_owned(other).map(Some),
        }
    }

    fn from_missing() -> Option<Self> {
        Some(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowing_checks_the_range() {
        assert_eq!(i16::from_value(&Value::Integer(-32768)), Ok(-32768));
        let err = i16::from_value(&Value::Integer(40_000)).unwrap_err();
        assert_eq!(err.to_string(), "integer 40000 is out of range for i16");
        assert!(u8::from_value(&Value::Integer(-1)).is_err());
    }

    #[test]
    fn null_needs_an_option() {
        assert_eq!(Option::<i64>::from_value(&Value::Null), Ok(None));
        let err = i64::from_value(&Value::Null).unwrap_err();
        assert_eq!(err.to_string(), "expected integer, found null");
    }

    #[test]
    fn bool_accepts_only_zero_and_one() {
        assert_eq!(bool::from_value(&Value::Integer(1)), Ok(true));
        assert!(bool::from_value(&Value::Integer(7)).is_err());
    }
}
