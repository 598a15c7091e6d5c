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

    /// Builds the value from `row`, free to move its texts and blobs out
    /// (leaving `NULL`): the worker decodes every row of a `fetch_all_as`
    /// from one row it refills, so a moved text costs no copy. Defaults to
    /// [`from_row`](FromRow::from_row).
    ///
    /// # Errors
    /// As [`from_row`](FromRow::from_row).
    #[doc(hidden)]
    fn from_row_taking(row: &mut Row) -> Result<Self> {
        Self::from_row(row)
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
                Self::from_row_taking(&mut row)
            }

            fn from_row_taking(row: &mut Row) -> Result<Self> {
                check_width(row, $len)?;
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
mod serde_rows;

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
