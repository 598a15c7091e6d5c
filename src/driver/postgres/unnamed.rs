//! Parameters of unnamed statements (`prepared_statements=false`): each
//! value goes in its text form with an unspecified type, so the server
//! infers the type as it would for a literal, and the statement needs no
//! prepare round trip, nor any statement kept on the server session (which
//! a transaction pooler would not keep).

use bytes::BytesMut;
use postgres::types::{Format, IsNull, Kind, ToSql, Type};

use crate::value::Value;

type BoxErr = Box<dyn std::error::Error + Sync + Send>;

/// A value bound in text form to a parameter of unspecified type.
#[derive(Debug)]
pub(super) struct Unnamed<'a>(&'a Value);

impl<'a> Unnamed<'a> {
    /// Each value with the unspecified type (oid 0: the server infers it).
    pub(super) fn params(values: &'a [Value]) -> Vec<(Unnamed<'a>, Type)> {
        values.iter().map(|v| (Unnamed(v), unspecified())).collect()
    }
}

impl Unnamed<'_> {
    /// The `dyn ToSql` form `execute_typed` takes.
    pub(super) fn as_dyn(&self) -> &(dyn ToSql + Sync) {
        self
    }
}

fn unspecified() -> Type {
    Type::new("unspecified".into(), 0, Kind::Pseudo, "pg_catalog".into())
}

/// The text PostgreSQL reads back as `value`; `None` for `NULL`.
fn text(value: &Value) -> Option<String> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => if *b { "t" } else { "f" }.into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) if f.is_nan() => "NaN".into(),
        Value::Real(f) if f.is_infinite() => {
            if *f > 0.0 { "Infinity" } else { "-Infinity" }.into()
        }
        Value::Real(f) => format!("{f:?}"),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => {
            let mut s = String::with_capacity(2 + 2 * b.len());
            s.push_str("\\x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        #[cfg(feature = "decimal")]
        Value::Decimal(d) => d.to_string(),
        #[cfg(feature = "chrono")]
        Value::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
        #[cfg(feature = "chrono")]
        Value::TimestampTz(t) => t.to_rfc3339(),
        #[cfg(feature = "chrono")]
        Value::Date(d) => d.to_string(),
        #[cfg(feature = "chrono")]
        Value::Time(t) => t.to_string(),
        #[cfg(feature = "uuid")]
        Value::Uuid(u) => u.to_string(),
        #[cfg(feature = "json")]
        Value::Json(j) => j.to_string(),
    })
}

impl ToSql for Unnamed<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxErr> {
        match text(self.0) {
            None => Ok(IsNull::Yes),
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_go_in_the_text_postgres_reads_back() {
        assert_eq!(text(&Value::Null), None);
        assert_eq!(text(&Value::Bool(true)).as_deref(), Some("t"));
        assert_eq!(text(&Value::Real(0.5)).as_deref(), Some("0.5"));
        assert_eq!(text(&Value::Real(3.0)).as_deref(), Some("3.0"));
        assert_eq!(text(&Value::Blob(vec![0, 255])).as_deref(), Some("\\x00ff"));
    }
}
