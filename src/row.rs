//! Rows of a result.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::value::{FromValue, Value};

/// One row of a result: its values and the result's column names.
///
/// ```
/// # futures::executor::block_on(async {
/// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
/// let row = engine
///     .execute("SELECT 7 AS id, 'Dana' AS name", ())
///     .await?
///     .first()
///     .await?
///     .expect("one row");
/// assert_eq!(row.get::<i64>(0)?, 7);
/// assert_eq!(row.get::<String>("name")?, "Dana");
/// assert_eq!(row.keys(), ["id", "name"]);
/// # Ok::<(), sqlaio::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, PartialEq)]
pub struct Row {
    keys: ColumnNames,
    values: Values,
}

/// A result's column names, shared by its rows: a thin pointer, so that a
/// row spends 8 bytes on them rather than the 16 of an `Arc<[String]>`.
pub(crate) type ColumnNames = Arc<Names>;

/// The column names behind [`ColumnNames`], aligned so that the `Arc`'s
/// counts get 128 bytes to themselves.
///
/// The caller's thread changes the count for every row it makes or drops.
/// Allocated next to memory the worker writes for every row it reads, the
/// count's cache line went back and forth between the two threads (false
/// sharing); a packed stream then spent most of its time making rows. Two
/// 64-byte lines, since processors fetch lines in adjacent pairs.
#[repr(align(128))]
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Names(pub(crate) Vec<String>);

impl std::ops::Deref for Names {
    type Target = Vec<String>;

    fn deref(&self) -> &Vec<String> {
        &self.0
    }
}

impl FromIterator<String> for Names {
    fn from_iter<I: IntoIterator<Item = String>>(names: I) -> Names {
        Names(names.into_iter().collect())
    }
}

/// A row's values: up to two inside the row itself, so that the rows of
/// narrow results need no allocation of their own for them.
///
/// Unlike a general small vector it keeps no count of its own beside the
/// values: the variant says how many are inline, and the compiler stores the
/// variant in a spare bit pattern of the first value's tag. So it takes the
/// 64 bytes of two values, and a row of two values 72 bytes, where a
/// `SmallVec<[Value; 2]>` took 72 and the row 80 (a unit test checks this).
#[derive(Clone, Default)]
pub(crate) enum Values {
    /// No values.
    #[default]
    Empty,
    /// One value.
    One(Value),
    /// Two values.
    Two([Value; 2]),
    /// Any number, in a vector of their own (wide rows).
    Many(Vec<Value>),
}

impl Values {
    /// No values yet; room for `n` in the row itself when `n` is at most 2.
    pub(crate) fn with_capacity(n: usize) -> Values {
        if n <= 2 {
            Values::Empty
        } else {
            Values::Many(Vec::with_capacity(n))
        }
    }

    /// `n` values, each made by `value` in turn.
    #[inline]
    pub(crate) fn from_fn(n: usize, mut value: impl FnMut() -> Value) -> Values {
        match n {
            0 => Values::Empty,
            1 => Values::One(value()),
            2 => {
                let first = value();
                Values::Two([first, value()])
            }
            _ => Values::Many((0..n).map(|_| value()).collect()),
        }
    }

    /// Sets value `i` of a row being read, adding it if the row has only `i`
    /// values so far (a cursor's [`next_into`](crate::driver::Cursor::next_into)
    /// fills a reused row this way).
    #[inline]
    pub(crate) fn set(&mut self, i: usize, value: Value) {
        match self.get_mut(i) {
            Some(slot) => *slot = value,
            None => self.push(value),
        }
    }

    /// Sets value `i` of a row being read to `text`, reusing the allocation
    /// of the text already there.
    #[inline]
    pub(crate) fn set_text(&mut self, i: usize, text: &str) {
        match self.get_mut(i) {
            Some(Value::Text(old)) => {
                old.clear();
                old.push_str(text);
            }
            _ => self.set(i, Value::Text(text.to_owned())),
        }
    }

    /// About how many bytes the values take (texts and blobs by length, the rest as 8).
    pub(crate) fn bytes(values: &[Value]) -> usize {
        values
            .iter()
            .map(|v| match v {
                Value::Text(t) => t.len(),
                Value::Blob(b) => b.len(),
                _ => 8,
            })
            .sum()
    }

    /// Adds a value at the end.
    pub(crate) fn push(&mut self, value: Value) {
        match self {
            Values::Many(values) => values.push(value),
            Values::Empty => *self = Values::One(value),
            _ => {
                *self = match std::mem::take(self) {
                    Values::One(first) => Values::Two([first, value]),
                    other => {
                        let mut values = other.into_vec();
                        values.push(value);
                        Values::Many(values)
                    }
                }
            }
        }
    }

    /// Removes every value, keeping a wide row's vector for the next ones.
    #[cfg(test)]
    pub(crate) fn clear(&mut self) {
        match self {
            Values::Many(values) => values.clear(),
            other => *other = Values::Empty,
        }
    }

    /// The values in a vector of their own.
    pub(crate) fn into_vec(self) -> Vec<Value> {
        match self {
            Values::Empty => Vec::new(),
            Values::One(value) => vec![value],
            Values::Two(values) => Vec::from(values),
            Values::Many(values) => values,
        }
    }
}

impl std::ops::Deref for Values {
    type Target = [Value];

    #[inline]
    fn deref(&self) -> &[Value] {
        match self {
            Values::Empty => &[],
            Values::One(value) => std::slice::from_ref(value),
            Values::Two(values) => values,
            Values::Many(values) => values,
        }
    }
}

impl std::ops::DerefMut for Values {
    #[inline]
    fn deref_mut(&mut self) -> &mut [Value] {
        match self {
            Values::Empty => &mut [],
            Values::One(value) => std::slice::from_mut(value),
            Values::Two(values) => values,
            Values::Many(values) => values,
        }
    }
}

impl PartialEq for Values {
    /// The same values in the same order, however they are held.
    fn eq(&self, other: &Values) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Value>> for Values {
    fn from(values: Vec<Value>) -> Values {
        if values.len() > 2 {
            return Values::Many(values);
        }
        let mut small = Values::Empty;
        small.extend(values);
        small
    }
}

impl Extend<Value> for Values {
    fn extend<I: IntoIterator<Item = Value>>(&mut self, values: I) {
        for value in values {
            self.push(value);
        }
    }
}

impl FromIterator<Value> for Values {
    fn from_iter<I: IntoIterator<Item = Value>>(values: I) -> Values {
        let mut all = Values::Empty;
        all.extend(values);
        all
    }
}

impl Row {
    pub(crate) fn new(keys: ColumnNames, values: impl Into<Values>) -> Row {
        Row {
            keys,
            values: values.into(),
        }
    }

    /// The values, for a worker refilling one row for every row it reads.
    pub(crate) fn values_mut(&mut self) -> &mut Values {
        &mut self.values
    }

    /// The value of one column, converted to `T`.
    ///
    /// `index` is a zero-based position (`usize`) or a column name (`&str`).
    ///
    /// # Errors
    /// [`Error::ColumnIndex`] or [`Error::ColumnName`] when there is no such
    /// column; [`Error::Decode`] when the value does not convert to `T`
    /// (`NULL` converts only into `Option`).
    pub fn get<T: FromValue>(&self, index: impl ColumnIndex) -> Result<T> {
        let i = index.position(&self.keys)?;
        T::from_value(&self.values[i]).map_err(|e| Error::decode(&self.keys[i], e))
    }

    /// Moves the value of one column out of the row, converted to `T`,
    /// leaving `NULL` in its place: a long text or blob is handed over
    /// rather than copied, as [`get`](Row::get) would.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
    /// let mut row = engine.fetch_one("SELECT 'a long text' AS body", ()).await?;
    /// let body: String = row.take("body")?;
    /// assert_eq!(body, "a long text");
    /// assert_eq!(row.get::<Option<String>>("body")?, None);
    /// # Ok::<(), sqlaio::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`get`](Row::get); the value stays in the row when it does not convert.
    pub fn take<T: FromValue>(&mut self, index: impl ColumnIndex) -> Result<T> {
        let i = index.position(&self.keys)?;
        let value = std::mem::replace(&mut self.values[i], Value::Null);
        T::from_owned(value).map_err(|(e, value)| {
            self.values[i] = value;
            Error::decode(&self.keys[i], e)
        })
    }

    /// The value of one column as a [`Value`], without conversion.
    ///
    /// # Errors
    /// [`Error::ColumnIndex`] or [`Error::ColumnName`] when there is no such column.
    pub fn get_value(&self, index: impl ColumnIndex) -> Result<&Value> {
        let i = index.position(&self.keys)?;
        Ok(&self.values[i])
    }

    /// The column names, in order.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Takes the values out of the row.
    pub fn into_values(self) -> Vec<Value> {
        self.values.into_vec()
    }

    /// How many columns the row has.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// `true` when the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.keys.iter().zip(self.values.iter()))
            .finish()
    }
}

/// Something that names a column of a [`Row`]: a zero-based `usize` or a column name.
pub trait ColumnIndex {
    /// The zero-based position of the column in `keys`.
    ///
    /// # Errors
    /// [`Error::ColumnIndex`] or [`Error::ColumnName`] when there is no such column.
    fn position(&self, keys: &[String]) -> Result<usize>;
}

impl ColumnIndex for usize {
    fn position(&self, keys: &[String]) -> Result<usize> {
        if *self < keys.len() {
            Ok(*self)
        } else {
            Err(Error::ColumnIndex {
                index: *self,
                len: keys.len(),
            })
        }
    }
}

impl ColumnIndex for &str {
    fn position(&self, keys: &[String]) -> Result<usize> {
        keys.iter()
            .position(|k| k == self)
            .or_else(|| keys.iter().position(|k| k.eq_ignore_ascii_case(self)))
            .ok_or_else(|| Error::ColumnName((*self).to_owned()))
    }
}

impl ColumnIndex for &String {
    fn position(&self, keys: &[String]) -> Result<usize> {
        self.as_str().position(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        Row::new(
            Arc::new(Names(vec!["id".to_owned(), "name".to_owned()])),
            vec![Value::Integer(1), Value::Text("Dan Rydell".into())],
        )
    }

    #[test]
    fn a_row_of_two_values_is_the_two_values_and_a_pointer() {
        // A million-row `fetchall` holds a million of these: the names are
        // shared, each row pays for a thin pointer to them only, and the
        // count of values costs nothing beside the values.
        let value = std::mem::size_of::<Value>();
        assert_eq!(std::mem::size_of::<Values>(), 2 * value);
        assert_eq!(
            std::mem::size_of::<Row>(),
            2 * value + std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn values_grow_and_shrink_through_every_size() {
        let mut values = Values::with_capacity(2);
        let mut expected = Vec::new();
        for i in 0..5 {
            assert_eq!(&*values, expected.as_slice());
            values.push(Value::Integer(i));
            expected.push(Value::Integer(i));
        }
        assert_eq!(values.len(), 5);
        values[3] = Value::Text("three".into());
        expected[3] = Value::Text("three".into());
        assert_eq!(values.clone().into_vec(), expected);
        values.clear();
        assert!(values.is_empty());
        values.extend([Value::Null, Value::Real(1.5)]);
        assert_eq!(&*values, [Value::Null, Value::Real(1.5)]);
        assert_eq!(values.clone().into_vec(), [Value::Null, Value::Real(1.5)]);
        // Equal by content, whether inline or in a vector.
        let mut wide = Values::with_capacity(8);
        wide.extend([Value::Null, Value::Real(1.5)]);
        assert_eq!(wide, values);
        assert_eq!(
            Values::from(vec![Value::Integer(1)]).into_vec(),
            [Value::Integer(1)]
        );
        assert_eq!(Values::from(Vec::new()).len(), 0);
        assert_eq!(
            Values::from_iter((0..3).map(Value::Integer)).into_vec(),
            (0..3).map(Value::Integer).collect::<Vec<_>>()
        );
    }

    #[test]
    fn take_moves_a_value_out_and_leaves_it_on_a_failed_conversion() {
        let mut row = Row::new(
            Arc::new(Names(vec!["n".into(), "t".into()])),
            vec![Value::Integer(4), Value::Text("long text".into())],
        );
        let before = match &row.values()[1] {
            Value::Text(t) => t.as_ptr(),
            _ => unreachable!(),
        };
        // A wrong type leaves the value where it was.
        assert!(row.take::<i64>("t").is_err());
        let text: String = row.take("t").unwrap();
        assert_eq!(
            (text.as_str(), text.as_ptr()),
            ("long text", before),
            "moved, not copied"
        );
        assert_eq!(row.get::<Option<String>>("t").unwrap(), None);
        assert_eq!(row.take::<i64>(0).unwrap(), 4);
    }

    #[test]
    fn get_by_position_and_name() {
        let r = row();
        assert_eq!(r.get::<i64>(0).unwrap(), 1);
        assert_eq!(r.get::<String>("name").unwrap(), "Dan Rydell");
        assert_eq!(r.get::<String>("NAME").unwrap(), "Dan Rydell");
    }

    #[test]
    fn bad_lookups_say_what_was_wrong() {
        let r = row();
        let e = r.get::<i64>(5).unwrap_err();
        assert_eq!(
            e.to_string(),
            "column index 5 is out of range: the row has 2 columns"
        );
        let e = r.get::<i64>("nme").unwrap_err();
        assert_eq!(e.to_string(), "no column named \"nme\" in the result");
        let e = r.get::<i64>("name").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot decode column \"name\": expected integer, found text"
        );
    }
}
