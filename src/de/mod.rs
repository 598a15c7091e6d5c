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
}

macro_rules! tuple_from_row {
    ($len:literal: $($name:ident $index:tt),+) => {
        impl<$($name: FromValue),+> FromRow for ($($name,)+) {
            fn from_row(row: &Row) -> Result<Self> {
                if row.len() != $len {
                    return Err(Error::Deserialize {
                        column: None,
                        field: None,
                        message: format!(
                            "the row has {} columns but the tuple takes {}",
                            row.len(),
                            $len
                        ),
                    });
                }
                Ok(($(row.get::<$name>($index)?,)+))
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
