//! sqlaio's [`Value`] to and from PostgreSQL's types, in the binary protocol.

use std::error::Error as StdError;

use bytes::BytesMut;
use postgres::types::{to_sql_checked, FromSql, IsNull, Kind, ToSql, Type};

use crate::value::Value;

type BoxErr = Box<dyn StdError + Sync + Send>;

fn out_of_range(value: impl std::fmt::Display, ty: &Type) -> BoxErr {
    format!("value {value} is out of range for a {ty} parameter").into()
}

fn mismatch(value: &Value, ty: &Type) -> BoxErr {
    format!("cannot bind a {} value to a {ty} parameter", value.kind()).into()
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxErr> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Bool(b), &Type::BOOL) => b.to_sql(ty, out),
            (Value::Integer(i), &Type::INT2) => i16::try_from(*i)
                .map_err(|_| out_of_range(i, ty))?
                .to_sql(ty, out),
            (Value::Integer(i), &Type::INT4) => i32::try_from(*i)
                .map_err(|_| out_of_range(i, ty))?
                .to_sql(ty, out),
            (Value::Integer(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Integer(i), &Type::OID) => u32::try_from(*i)
                .map_err(|_| out_of_range(i, ty))?
                .to_sql(ty, out),
            (Value::Integer(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Integer(i), &Type::FLOAT4) => (*i as f32).to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            #[cfg(feature = "decimal")]
            (Value::Integer(i), &Type::NUMERIC) => rust_decimal::Decimal::from(*i).to_sql(ty, out),
            #[cfg(feature = "decimal")]
            (Value::Real(f), &Type::NUMERIC) => {
                rust_decimal::Decimal::try_from(*f)?.to_sql(ty, out)
            }
            #[cfg(feature = "decimal")]
            (Value::Decimal(d), &Type::NUMERIC) => d.to_sql(ty, out),
            #[cfg(feature = "decimal")]
            (Value::Text(s), &Type::NUMERIC) => s.parse::<rust_decimal::Decimal>()?.to_sql(ty, out),
            (Value::Text(s), &Type::JSON) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Text(s), &Type::JSONB) => {
                out.extend_from_slice(&[1]);
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Text(s), t) if is_text(t) => s.as_str().to_sql(ty, out),
            // Plain numbers and booleans into a text parameter (`SELECT $1`): their text form.
            (Value::Integer(i), t) if is_text(t) => i.to_string().as_str().to_sql(ty, out),
            (Value::Real(f), t) if is_text(t) => f.to_string().as_str().to_sql(ty, out),
            (Value::Bool(b), t) if is_text(t) => b.to_string().as_str().to_sql(ty, out),
            (Value::Blob(b), &Type::BYTEA) => b.as_slice().to_sql(ty, out),
            #[cfg(feature = "chrono")]
            (Value::Timestamp(t), &Type::TIMESTAMP) => t.to_sql(ty, out),
            #[cfg(feature = "chrono")]
            (Value::Timestamp(t), &Type::TIMESTAMPTZ) => t.and_utc().to_sql(ty, out),
            #[cfg(feature = "chrono")]
            (Value::TimestampTz(t), &Type::TIMESTAMPTZ) => t.to_sql(ty, out),
            #[cfg(feature = "chrono")]
            (Value::TimestampTz(t), &Type::TIMESTAMP) => t.naive_utc().to_sql(ty, out),
            #[cfg(feature = "chrono")]
            (Value::Date(d), &Type::DATE) => d.to_sql(ty, out),
            #[cfg(feature = "chrono")]
            (Value::Time(t), &Type::TIME) => t.to_sql(ty, out),
            #[cfg(feature = "uuid")]
            (Value::Uuid(u), &Type::UUID) => u.to_sql(ty, out),
            #[cfg(feature = "uuid")]
            (Value::Text(s), &Type::UUID) => uuid::Uuid::parse_str(s)?.to_sql(ty, out),
            #[cfg(feature = "json")]
            (Value::Json(j), &Type::JSON | &Type::JSONB) => j.to_sql(ty, out),
            (value, ty) => Err(mismatch(value, ty)),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

pub(super) fn is_text(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    ) || matches!(ty.kind(), Kind::Enum(_))
        || ty.name() == "citext"
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxErr> {
        Ok(match *ty {
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::INT2 => Value::Integer(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Value::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::OID => Value::Integer(u32::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            #[cfg(feature = "json")]
            Type::JSON | Type::JSONB => Value::Json(serde_json::Value::from_sql(ty, raw)?),
            #[cfg(not(feature = "json"))]
            Type::JSON => Value::Text(String::from_utf8(raw.to_vec())?),
            #[cfg(not(feature = "json"))]
            Type::JSONB if raw.first() == Some(&1) => {
                Value::Text(String::from_utf8(raw[1..].to_vec())?)
            }
            #[cfg(feature = "decimal")]
            Type::NUMERIC => Value::Decimal(rust_decimal::Decimal::from_sql(ty, raw)?),
            #[cfg(feature = "chrono")]
            Type::TIMESTAMP => Value::Timestamp(chrono::NaiveDateTime::from_sql(ty, raw)?),
            #[cfg(feature = "chrono")]
            Type::TIMESTAMPTZ => {
                Value::TimestampTz(chrono::DateTime::<chrono::Utc>::from_sql(ty, raw)?)
            }
            #[cfg(feature = "chrono")]
            Type::DATE => Value::Date(chrono::NaiveDate::from_sql(ty, raw)?),
            #[cfg(feature = "chrono")]
            Type::TIME => Value::Time(chrono::NaiveTime::from_sql(ty, raw)?),
            #[cfg(feature = "uuid")]
            Type::UUID => Value::Uuid(uuid::Uuid::from_sql(ty, raw)?),
            _ if is_text(ty) => Value::Text(String::from_utf8(raw.to_vec())?),
            _ => return Err(unsupported(ty).into()),
        })
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, BoxErr> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A text column's value, borrowed from the row: the cursor copies it into
/// the text of the row being read rather than allocating a `String` per value.
///
/// It accepts any type: the cursor reads only columns [`is_text`] picked
/// when the statement was prepared, and does not pay for the check per value.
pub(super) struct TextRef<'a>(pub(super) &'a str);

impl<'a> FromSql<'a> for TextRef<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxErr> {
        Ok(TextRef(std::str::from_utf8(raw)?))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

pub(super) fn unsupported(ty: &Type) -> String {
    let feature = match *ty {
        Type::NUMERIC => Some("decimal"),
        Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::DATE | Type::TIME => Some("chrono"),
        Type::UUID => Some("uuid"),
        _ => None,
    };
    match feature {
        Some(f) => format!(
            "PostgreSQL type {ty} needs the \"{f}\" feature of sqlaio (or cast it to text in SQL)"
        ),
        None => format!("PostgreSQL type {ty} is not supported (cast it to text in SQL)"),
    }
}

