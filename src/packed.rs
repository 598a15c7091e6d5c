//! Rows packed for the trip from a worker to the caller's thread.
//!
//! A row read on the worker holds its text in `String`s that the caller's
//! thread frees. With glibc's allocator, memory allocated on one thread and
//! freed on another costs about ten times as much as memory allocated and
//! freed on one: the worker never gets its freed blocks back from its own
//! cache, and each free takes the worker's arena lock. For a streamed result
//! that was most of the time per row. A packed batch keeps the values of its
//! rows, with all their text in one `String` and all their bytes in one
//! vector, so the worker allocates a few buffers per batch; the caller makes
//! the rows ([`Packed::unpack_into`]), allocating and later freeing each row's
//! text on its own thread.

use std::collections::VecDeque;

use crate::row::{ColumnNames, Row, Values};
use crate::value::Value;

/// The values of a batch of rows; see the module's doc.
#[derive(Debug)]
pub(crate) struct Packed {
    keys: ColumnNames,
    /// Row after row, `keys.len()` cells each.
    cells: Vec<Cell>,
    /// Every text value, one after the other.
    text: String,
    /// Every blob value, one after the other.
    blobs: Vec<u8>,
    /// How many cells are neither text nor blob.
    others: usize,
    rows: usize,
}

/// One value of a packed row.
#[derive(Debug)]
enum Cell {
    /// A text value, ending at this offset in [`Packed::text`] (it starts
    /// where the text before it ended).
    Text(usize),
    /// A blob value, ending at this offset in [`Packed::blobs`].
    Blob(usize),
    /// Any other value, kept as it is.
    Value(Value),
}

impl Packed {
    /// An empty batch with room for `rows` rows of `keys`' columns.
    pub(crate) fn with_capacity(keys: ColumnNames, rows: usize) -> Packed {
        Packed {
            cells: Vec::with_capacity(rows * keys.len()),
            keys,
            text: String::new(),
            blobs: Vec::new(),
            others: 0,
            rows: 0,
        }
    }

    /// How many rows it holds.
    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// About how many bytes its values take, counted as
    /// [`Values::bytes`] counts a row's.
    pub(crate) fn bytes(&self) -> usize {
        self.text.len() + self.blobs.len() + 8 * self.others
    }

    /// Adds a row. Its text and blobs are copied and stay in `values`, so
    /// that the next row read into `values` reuses their allocations; its
    /// other values are moved out, leaving `NULL`.
    pub(crate) fn push(&mut self, values: &mut Values) {
        for value in values.iter_mut() {
            let cell = match value {
                Value::Text(text) => {
                    self.text.push_str(text);
                    Cell::Text(self.text.len())
                }
                Value::Blob(bytes) => {
                    self.blobs.extend_from_slice(bytes);
                    Cell::Blob(self.blobs.len())
                }
                other => {
                    self.others += 1;
                    Cell::Value(std::mem::replace(other, Value::Null))
                }
            };
            self.cells.push(cell);
        }
        self.rows += 1;
    }

    /// Makes the rows on the calling thread, straight at the back of `rows`:
    /// a result's buffer keeps its allocation from batch to batch, and a
    /// `fetchall` moves each row once.
    pub(crate) fn unpack_into(self, rows: &mut VecDeque<Row>) {
        let width = self.keys.len();
        let needed = rows.len() + self.rows;
        if needed > rows.capacity() {
            // Powers of two, as a vector that doubles: a million-row
            // `fetchall` ends at 2^20 rows, not at a multiple of its first batch.
            rows.reserve_exact(needed.next_power_of_two() - rows.len());
        }
        let mut cells = self.cells.into_iter();
        let (mut text, mut blobs) = (0, 0);
        for _ in 0..self.rows {
            let values = Values::from_fn(width, || match cells.next() {
                Some(Cell::Text(end)) => {
                    let value = Value::Text(self.text[text..end].to_owned());
                    text = end;
                    value
                }
                Some(Cell::Blob(end)) => {
                    let value = Value::Blob(self.blobs[blobs..end].to_vec());
                    blobs = end;
                    value
                }
                Some(Cell::Value(value)) => value,
                // Every row pushed `width` cells.
                None => Value::Null,
            });
            rows.push_back(Row::new(self.keys.clone(), values));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Names;
    use std::sync::Arc;

    #[test]
    fn rows_come_back_as_they_went_in_and_the_row_keeps_its_text() {
        let keys: ColumnNames = Arc::new(Names(vec!["a".into(), "b".into(), "c".into()]));
        let mut packed = Packed::with_capacity(keys.clone(), 2);
        let sent = [
            [
                Value::Text("héllo".into()),
                Value::Blob(vec![0, 1, 2]),
                Value::Integer(7),
            ],
            [Value::Text(String::new()), Value::Null, Value::Real(1.5)],
            [
                Value::Text("last".into()),
                Value::Blob(Vec::new()),
                Value::Text("x".into()),
            ],
        ];
        let mut row = Values::default();
        for values in &sent {
            row.clear();
            row.extend(values.iter().cloned());
            packed.push(&mut row);
        }
        assert_eq!(packed.len(), 3);
        // Counted as a batch of rows counts its bytes.
        let bytes: usize = sent.iter().map(|v| Values::bytes(v)).sum();
        assert_eq!(packed.bytes(), bytes);
        // The text stays for the next row to reuse; the integer was moved out.
        assert_eq!(row[0], Value::Text("last".into()));
        assert_eq!(row[2], Value::Text("x".into()));
        let mut rows = VecDeque::new();
        packed.unpack_into(&mut rows);
        assert_eq!(rows.len(), 3);
        for (got, want) in rows.iter().zip(&sent) {
            assert_eq!(got.values(), want.as_slice());
            assert_eq!(got.keys(), keys.as_slice());
        }
    }

    #[test]
    fn batches_unpack_behind_the_buffered_rows_into_a_power_of_two() {
        let keys: ColumnNames = Arc::new(Names(vec!["id".into(), "name".into()]));
        let mut buffer = VecDeque::from([Row::new(
            keys.clone(),
            vec![Value::Integer(0), Value::Text("first".into())],
        )]);
        let mut next = 1;
        for batch_rows in [3, 5, 300] {
            let mut packed = Packed::with_capacity(keys.clone(), batch_rows);
            let mut row = Values::default();
            for _ in 0..batch_rows {
                row.clear();
                row.push(Value::Integer(next));
                row.push(Value::Text(format!("name {next}")));
                packed.push(&mut row);
                next += 1;
            }
            packed.unpack_into(&mut buffer);
            // As a vector that doubles, so that a large `fetchall` does not
            // end with room for many rows more than it holds.
            assert!(buffer.capacity().is_power_of_two(), "{}", buffer.capacity());
        }
        assert_eq!(buffer.len(), 309);
        for (i, row) in buffer.iter().enumerate().skip(1) {
            assert_eq!(row.get::<i64>(0).unwrap(), i as i64);
            assert_eq!(row.get::<String>("name").unwrap(), format!("name {i}"));
        }
        assert_eq!(buffer[0].get::<String>(1).unwrap(), "first");
    }

    #[test]
    fn rows_without_columns_are_counted() {
        let mut packed = Packed::with_capacity(Arc::default(), 4);
        let mut row = Values::default();
        packed.push(&mut row);
        packed.push(&mut row);
        let mut rows = VecDeque::new();
        packed.unpack_into(&mut rows);
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(Row::is_empty));
    }
}
