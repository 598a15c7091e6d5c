//! Rows into Rust types: tuples by position with [`FromRow`], and (with the
//! `serde` feature) any `serde::Deserialize` type through a `Deserializer`
//! over a [`Row`]; [`Row::deserialize`] documents the mapping.

use crate::error::{Error, Result};
use crate::row::Row;
use crate::value::FromValue;

/// A Rust type built from a whole [`Row`], used by [`Row::decode`].
///
/// Implemented for tuples of up to 12 [`FromValue`] types, which take the
/// columns by position; the row must have exactly as many columns as the
/// tuple has elements.
///
/// ```
/// # futures::executor::block_on(async {
/// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
/// let row = engine
///     .execute("SELECT 7, 'Dana Whitaker', NULL", ())
///     .await?
///     .first()
///     .await?
///     .expect("one row");
/// let (id, name, nickname) = row.decode::<(i64, String, Option<String>)>()?;
/// assert_eq!((id, name.as_str(), nickname), (7, "Dana Whitaker", None));
/// # Ok::<(), sqlaio::Error>(())
/// # }).unwrap();
/// ```
pub trait FromRow: Sized {
    /// Builds the value from `row`.
    ///
    /// # Errors
    /// [`Error::Deserialize`] when the row does not have the shape the type
    /// needs; [`Error::Decode`] when a column's value does not convert.
    fn from_row(row: &Row) -> Result<Self>;

    /// Builds the value from an owned `row`, moving its texts and blobs out
    /// rather than copying them where it can. Defaults to
    /// [`from_row`](FromRow::from_row).
    ///
    /// # Errors
    /// As [`from_row`](FromRow::from_row).
    fn from_row_owned(row: Row) -> Result<Self> {
        Self::from_row(&row)
    }
}

/// A tuple of `len` takes a row of exactly `len` columns.
fn check_width(row: &Row, len: usize) -> Result<()> {
    if row.len() == len {
        return Ok(());
    }
    Err(Error::Deserialize {
        column: None,
        field: None,
        message: format!(
            "the row has {} columns but the tuple takes {len}",
            row.len()
        ),
    })
}

macro_rules! tuple_from_row {
    ($len:literal: $($name:ident $index:tt),+) => {
        impl<$($name: FromValue),+> FromRow for ($($name,)+) {
            fn from_row(row: &Row) -> Result<Self> {
                check_width(row, $len)?;
                Ok(($(row.get::<$name>($index)?,)+))
            }

            fn from_row_owned(mut row: Row) -> Result<Self> {
                check_width(&row, $len)?;
                Ok(($(row.take::<$name>($index)?,)+))
            }
        }
    };
}
tuple_from_row!(1: A 0);
tuple_from_row!(2: A 0, B 1);
tuple_from_row!(3: A 0, B 1, C 2);
tuple_from_row!(4: A 0, B 1, C 2, D 3);
tuple_from_row!(5: A 0, B 1, C 2, D 3, E 4);
tuple_from_row!(6: A 0, B 1, C 2, D 3, E 4, F 5);
tuple_from_row!(7: A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_from_row!(8: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_from_row!(9: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_from_row!(10: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_from_row!(11: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_from_row!(12: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);

/// Rows into Rust types: defined here, beside the conversions, so that the
/// row itself does not depend on them.
impl Row {
    /// The whole row as a tuple, the columns taken by position.
    ///
    /// Implemented for tuples of up to 12 [`FromValue`] types; see [`FromRow`].
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
    /// let mut result = engine.execute("SELECT 7, 'Dana Whitaker'", ()).await?;
    /// let row = result.fetchone().await?.expect("one row");
    /// let (id, name): (i64, String) = row.decode()?;
    /// assert_eq!((id, name.as_str()), (7, "Dana Whitaker"));
    /// # Ok::<(), sqlaio::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::Deserialize`] when the row has another number of columns
    /// than the tuple; [`Error::Decode`] naming the column whose value does not convert.
    pub fn decode<T: FromRow>(&self) -> Result<T> {
        T::from_row(self)
    }

    /// The row as any type that implements `serde::Deserialize`.
    ///
    /// A struct takes each field from the column of its name (an exact
    /// match first, then one that differs only in ASCII case);
    /// `#[serde(rename)]`, `#[serde(default)]` and `#[serde(flatten)]` work
    /// as usual:
    /// - columns no field asks for are ignored;
    /// - a field with no column is `None` when it is an `Option`, its default
    ///   with `#[serde(default)]`, and an error otherwise;
    /// - `NULL` becomes `None` in an `Option` field and is an error in any other;
    /// - integers are range-checked; SQLite's 0 and 1 read as `bool`; text
    ///   reads as a unit enum variant of that name.
    ///
    /// Tuples and tuple structs take the columns by position (the row must
    /// have as many), sequences take them all, maps take every column by
    /// name, and a one-column row also becomes a plain value (`i64`,
    /// `String`, ...). With the `json` feature a JSON value, or text holding
    /// JSON, fills a struct, map or sequence field. The wider types reach
    /// `Deserialize` implementations as their text form (RFC 3339 times,
    /// hyphenated UUIDs, decimal digits), which `chrono`, `uuid` and
    /// `rust_decimal` read with their own `serde` features.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// #[derive(serde::Deserialize)]
    /// struct User {
    ///     id: i64,
    ///     name: String,
    ///     nickname: Option<String>,
    /// }
    ///
    /// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
    /// let mut result = engine
    ///     .execute("SELECT 7 AS id, 'Dana Whitaker' AS name, NULL AS nickname, 1 AS extra", ())
    ///     .await?;
    /// let row = result.fetchone().await?.expect("one row");
    /// let user: User = row.deserialize()?;
    /// assert_eq!((user.id, user.name.as_str(), user.nickname), (7, "Dana Whitaker", None));
    /// # Ok::<(), sqlaio::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::Deserialize`] naming the field with no column, or the column
    /// and field whose value does not fit (`NULL` in a field that is not an
    /// `Option`, a value of another type).
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn deserialize<'de, T: serde::Deserialize<'de>>(&'de self) -> Result<T> {
        deserialize(self)
    }
}

#[cfg(feature = "serde")]
pub(crate) use self::serde_rows::deserialize;
#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn row() -> Row {
        Row::new(
            std::sync::Arc::new(crate::row::Names(vec![
                "id".to_owned(),
                "name".to_owned(),
                "nickname".to_owned(),
            ])),
            vec![
                Value::Integer(3),
                Value::Text("Dan Rydell".into()),
                Value::Null,
            ],
        )
    }

    #[test]
    fn tuples_take_the_columns_by_position() {
        let (id, name, nickname) = row().decode::<(u8, String, Option<String>)>().unwrap();
        assert_eq!((id, name.as_str(), nickname), (3, "Dan Rydell", None));
    }

    #[test]
    fn the_tuple_must_have_as_many_elements_as_the_row() {
        let err = row().decode::<(i64, String)>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot deserialize the row: the row has 3 columns but the tuple takes 2"
        );
    }

    #[test]
    fn a_value_that_does_not_convert_names_its_column() {
        let err = row().decode::<(i64, String, String)>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot decode column \"nickname\": expected text, found null"
        );
    }
}

#[cfg(feature = "serde")]
pub use self::serde_rows::TypedRows;

#[cfg(feature = "serde")]
mod serde_rows {
    use std::fmt;
    use std::marker::PhantomData;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_core::Stream;
    use serde::de::value::{BorrowedStrDeserializer, SeqDeserializer};
    use serde::de::{
        self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
    };

    use crate::error::{Error, Result};
    use crate::result::CursorResult;
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

        fn next_value_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<T::Value, DeError> {
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

        fn next_value_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<T::Value, DeError> {
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

    /// The rows of a result, each deserialized into `T`: a [`Stream`] of
    /// `Result<T>`, made by [`CursorResult::into_stream_as`].
    ///
    /// It reads rows exactly as the result's own stream does, in batches
    /// (see [`CursorResult`]); dropping it drops the result.
    #[must_use = "streams do nothing unless polled"]
    pub struct TypedRows<'c, T> {
        result: CursorResult<'c>,
        _type: PhantomData<fn() -> T>,
    }

    impl<'c, T> TypedRows<'c, T> {
        pub(crate) fn new(result: CursorResult<'c>) -> TypedRows<'c, T> {
            TypedRows {
                result,
                _type: PhantomData,
            }
        }

        /// The result the rows come from, for its [`keys`](CursorResult::keys)
        /// and [`rowcount`](CursorResult::rowcount).
        pub fn result(&self) -> &CursorResult<'c> {
            &self.result
        }

        /// Gives back the result.
        pub fn into_inner(self) -> CursorResult<'c> {
            self.result
        }
    }

    impl<T> fmt::Debug for TypedRows<'_, T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("TypedRows")
                .field("result", &self.result)
                .field("type", &std::any::type_name::<T>())
                .finish()
        }
    }

    impl<T: DeserializeOwned> Stream for TypedRows<'_, T> {
        type Item = Result<T>;

        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
            let this = self.get_mut();
            Pin::new(&mut this.result)
                .poll_next(cx)
                .map(|next| next.map(|row| row.and_then(|row| row.deserialize())))
        }

        fn size_hint(&self) -> (usize, Option<usize>) {
            self.result.size_hint()
        }
    }
}
