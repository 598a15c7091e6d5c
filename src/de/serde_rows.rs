//! A `serde::Deserializer` over a [`Row`] (feature `serde`):
//! [`Row::deserialize`] documents how columns map to fields.

use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{Error, Result};
use crate::row::{ColumnIndex, Row};
use crate::value::Value;

/// Deserializes `row` into `T`; the error names the column and the field.
pub(crate) fn deserialize<'de, T: de::Deserialize<'de>>(row: &'de Row) -> Result<T> {
    T::deserialize(RowDeserializer { row }).map_err(Into::into)
}

/// The error while deserializing; turned into [`Error::Deserialize`] at the end.
#[derive(Debug)]
pub(crate) struct DeError {
    column: Option<String>,
    field: Option<String>,
    message: String,
}

impl DeError {
    fn new(message: impl Into<String>) -> DeError {
        DeError {
            column: None,
            field: None,
            message: message.into(),
        }
    }

    /// `expected` where `found` came; `NULL` gets its own advice.
    fn mismatch(expected: &str, found: &Value) -> DeError {
        if found.is_null() {
            DeError::new(format!(
                "expected {expected}, found NULL (only an Option can hold NULL)"
            ))
        } else {
            DeError::new(format!("expected {expected}, found {}", found.kind()))
        }
    }

    /// Records where the error happened, keeping the innermost place already known.
    fn at(mut self, column: &str, field: Option<&str>) -> DeError {
        if self.column.is_none() {
            self.column = Some(column.to_owned());
        }
        if self.field.is_none() {
            self.field = field.map(str::to_owned);
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> DeError {
        DeError::new(msg.to_string())
    }

    fn missing_field(field: &'static str) -> DeError {
        DeError {
            column: None,
            field: Some(field.to_owned()),
            message: "the result has no column of that name".to_owned(),
        }
    }
}

impl From<DeError> for Error {
    fn from(e: DeError) -> Error {
        Error::Deserialize {
            column: e.column,
            field: e.field,
            message: e.message,
        }
    }
}

/// A whole row: a map of columns, a struct by field name, or a sequence by position.
struct RowDeserializer<'de> {
    row: &'de Row,
}

impl<'de> RowDeserializer<'de> {
    /// The only column's value, for a row read as one plain value.
    fn single(&self) -> Result<ValueDeserializer<'de>, DeError> {
        match self.row.values() {
            [value] => Ok(ValueDeserializer { value }),
            values => Err(DeError::new(format!(
                "the row has {} columns, and only a one-column row becomes a single \
                 value; use a struct, a tuple or a map",
                values.len()
            ))),
        }
    }

    fn column(&self) -> &'de str {
        self.row.keys().first().map_or("", String::as_str)
    }

    fn seq<V: Visitor<'de>>(self, len: Option<usize>, visitor: V) -> Result<V::Value, DeError> {
        if let Some(len) = len {
            if len != self.row.len() {
                return Err(DeError::new(format!(
                    "the row has {} columns but the tuple takes {len}",
                    self.row.len()
                )));
            }
        }
        let mut columns = Columns {
            row: self.row,
            next: 0,
        };
        let value = visitor.visit_seq(&mut columns)?;
        if columns.next < self.row.len() {
            return Err(DeError::new(format!(
                "the row has {} columns but only {} were read",
                self.row.len(),
                columns.next
            )));
        }
        Ok(value)
    }
}

macro_rules! single_value {
    ($($method:ident($($arg:ident: $ty:ty),*)),+ $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, DeError> {
            let column = self.column();
            self.single()?
                .$method($($arg,)* visitor)
                .map_err(|e| e.at(column, None))
        }
    )+};
}

impl<'de> de::Deserializer<'de> for RowDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_map(Columns {
            row: self.row,
            next: 0,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_map(Fields {
            row: self.row,
            fields,
            next: 0,
            pending: None,
        })
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.seq(None, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.seq(Some(len), visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.seq(Some(len), visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    single_value!(
        deserialize_bool(),
        deserialize_i8(),
        deserialize_i16(),
        deserialize_i32(),
        deserialize_i64(),
        deserialize_i128(),
        deserialize_u8(),
        deserialize_u16(),
        deserialize_u32(),
        deserialize_u64(),
        deserialize_u128(),
        deserialize_f32(),
        deserialize_f64(),
        deserialize_char(),
        deserialize_str(),
        deserialize_string(),
        deserialize_bytes(),
        deserialize_byte_buf(),
        deserialize_identifier(),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
    );
}

/// Every column in order: a map by name, or a sequence by position.
struct Columns<'de> {
    row: &'de Row,
    next: usize,
}

impl<'de> Columns<'de> {
    fn value<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
        index: usize,
    ) -> Result<T::Value, DeError> {
        let column = self.row.keys()[index].as_str();
        seed.deserialize(ValueDeserializer {
            value: &self.row.values()[index],
        })
        .map_err(|e| e.at(column, None))
    }
}

impl<'de> MapAccess<'de> for Columns<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.row.keys().get(self.next) {
            Some(key) => seed
                .deserialize(BorrowedStrDeserializer::new(key.as_str()))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, DeError> {
        let index = self.next;
        self.next += 1;
        self.value(seed, index)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.row.len() - self.next)
    }
}

impl<'de> SeqAccess<'de> for &mut Columns<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        if self.next >= self.row.len() {
            return Ok(None);
        }
        let index = self.next;
        self.next += 1;
        self.value(seed, index).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.row.len() - self.next)
    }
}

/// A struct's fields, each from the column of its name; fields with no
/// column are left out for serde to default or report.
struct Fields<'de> {
    row: &'de Row,
    fields: &'static [&'static str],
    next: usize,
    /// The field whose key was given last, and its column.
    pending: Option<(&'static str, usize)>,
}

impl<'de> MapAccess<'de> for Fields<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        while let Some(&field) = self.fields.get(self.next) {
            self.next += 1;
            if let Ok(index) = field.position(self.row.keys()) {
                self.pending = Some((field, index));
                return seed
                    .deserialize(BorrowedStrDeserializer::new(field))
                    .map(Some);
            }
        }
        Ok(None)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, DeError> {
        let Some((field, index)) = self.pending.take() else {
            return Err(DeError::new(
                "a field's value was asked for before its name",
            ));
        };
        let column = self.row.keys()[index].as_str();
        seed.deserialize(ValueDeserializer {
            value: &self.row.values()[index],
        })
        .map_err(|e| e.at(column, Some(field)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len() - self.next)
    }
}

/// One column's value.
struct ValueDeserializer<'de> {
    value: &'de Value,
}

/// The text form of the wider types, as their own `serde` support reads it.
fn text_form(value: &Value) -> Option<String> {
    crate::types::text_form(value, 'T')
}

#[cfg(feature = "json")]
fn json_error(e: serde_json::Error) -> DeError {
    DeError::new(e.to_string())
}

/// Reads a JSON value (or JSON text) the way `deserialize` asks; `None`
/// when the value is neither.
macro_rules! from_json {
    ($value:expr, $method:ident($($arg:expr),*), $visitor:expr) => {{
        #[cfg(feature = "json")]
        {
            match $value {
                Value::Json(j) => {
                    return de::Deserializer::$method(j, $($arg,)* $visitor).map_err(json_error)
                }
                Value::Text(t) => {
                    let parsed: serde_json::Value = serde_json::from_str(t).map_err(|e| {
                        DeError::new(format!("text is not valid JSON: {e}"))
                    })?;
                    return de::Deserializer::$method(parsed, $($arg,)* $visitor)
                        .map_err(json_error);
                }
                _ => {}
            }
        }
        #[cfg(not(feature = "json"))]
        let _ = (&$value, $(&$arg,)* &$visitor);
    }};
}

/// Delegates to the JSON document when the value is one.
macro_rules! json_value {
    ($value:expr, $method:ident($($arg:expr),*), $visitor:expr) => {{
        #[cfg(feature = "json")]
        {
            if let Value::Json(j) = $value {
                return de::Deserializer::$method(j, $($arg,)* $visitor).map_err(json_error);
            }
        }
        #[cfg(not(feature = "json"))]
        let _ = (&$value, $(&$arg,)* &$visitor);
    }};
}

macro_rules! integer {
    ($($method:ident $visit:ident $t:ty),+ $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            json_value!(self.value, $method(), visitor);
            match self.value {
                Value::Integer(i) => match <$t>::try_from(*i) {
                    Ok(n) => visitor.$visit(n),
                    Err(_) => Err(DeError::new(format!(
                        "integer {i} is out of range for {}",
                        stringify!($t)
                    ))),
                },
                other => Err(DeError::mismatch(stringify!($t), other)),
            }
        }
    )+};
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // The last arm is unreachable without the wider types' features.
        #[allow(unreachable_patterns)]
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Integer(i) => visitor.visit_i64(*i),
            Value::Real(f) => visitor.visit_f64(*f),
            Value::Text(t) => visitor.visit_borrowed_str(t),
            Value::Blob(b) => visitor.visit_borrowed_bytes(b),
            #[cfg(feature = "json")]
            Value::Json(j) => de::Deserializer::deserialize_any(j, visitor).map_err(json_error),
            other => match text_form(other) {
                Some(text) => visitor.visit_string(text),
                None => Err(DeError::new(format!(
                    "cannot deserialize a {} value",
                    other.kind()
                ))),
            },
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        json_value!(self.value, deserialize_bool(), visitor);
        match self.value {
            Value::Bool(b) => visitor.visit_bool(*b),
            // SQLite stores booleans as 0 and 1.
            Value::Integer(0) => visitor.visit_bool(false),
            Value::Integer(1) => visitor.visit_bool(true),
            Value::Integer(i) => Err(DeError::new(format!(
                "integer {i} is not a boolean (0 or 1)"
            ))),
            other => Err(DeError::mismatch("bool", other)),
        }
    }

    integer!(
        deserialize_i8 visit_i8 i8,
        deserialize_i16 visit_i16 i16,
        deserialize_i32 visit_i32 i32,
        deserialize_i64 visit_i64 i64,
        deserialize_i128 visit_i128 i128,
        deserialize_u8 visit_u8 u8,
        deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32,
        deserialize_u64 visit_u64 u64,
        deserialize_u128 visit_u128 u128,
    );

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        json_value!(self.value, deserialize_f64(), visitor);
        match self.value {
            Value::Real(f) => visitor.visit_f64(*f),
            // SQLite stores integral reals in REAL columns as integers.
            Value::Integer(i) => visitor.visit_f64(*i as f64),
            #[cfg(feature = "decimal")]
            Value::Decimal(d) => match d.to_string().parse::<f64>() {
                Ok(f) => visitor.visit_f64(f),
                Err(e) => Err(DeError::new(format!("decimal {d} is not a float: {e}"))),
            },
            other => Err(DeError::mismatch("a float", other)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        json_value!(self.value, deserialize_char(), visitor);
        match self.value {
            Value::Text(t) => {
                let mut chars = t.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => visitor.visit_char(c),
                    _ => Err(DeError::new(format!(
                        "expected a single character, found text of {} characters",
                        t.chars().count()
                    ))),
                }
            }
            other => Err(DeError::mismatch("a character", other)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Text(t) => visitor.visit_borrowed_str(t),
            #[cfg(feature = "json")]
            Value::Json(serde_json::Value::String(s)) => visitor.visit_borrowed_str(s),
            #[cfg(feature = "json")]
            Value::Json(j) => visitor.visit_string(j.to_string()),
            other => match text_form(other) {
                Some(text) => visitor.visit_string(text),
                None => Err(DeError::mismatch("text", other)),
            },
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Blob(b) => visitor.visit_borrowed_bytes(b),
            Value::Text(t) => visitor.visit_borrowed_bytes(t.as_bytes()),
            other => Err(DeError::mismatch("bytes", other)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            other => Err(DeError::mismatch("NULL", other)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if let Value::Blob(b) = self.value {
            return visitor.visit_seq(SeqDeserializer::new(b.iter().copied()));
        }
        from_json!(self.value, deserialize_seq(), visitor);
        Err(DeError::mismatch("a sequence", self.value))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        from_json!(self.value, deserialize_tuple(len), visitor);
        Err(DeError::mismatch("a tuple", self.value))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        from_json!(self.value, deserialize_tuple_struct(name, len), visitor);
        Err(DeError::mismatch("a tuple", self.value))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        from_json!(self.value, deserialize_map(), visitor);
        Err(DeError::mismatch("a map", self.value))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        from_json!(self.value, deserialize_struct(name, fields), visitor);
        Err(DeError::mismatch("a struct", self.value))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        json_value!(self.value, deserialize_enum(name, variants), visitor);
        match self.value {
            Value::Text(t) => visitor.visit_enum(t.as_str().into_deserializer()),
            other => Err(DeError::mismatch("text naming a variant", other)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        true
    }
}
