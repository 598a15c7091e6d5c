//! Rows from a driver's cursor into the batches a reply carries.

use super::protocol::{Batch, Limit};
use super::BATCH_BYTES;
use crate::driver::Cursor;
use crate::error::Result;
use crate::packed::Packed;
use crate::row::{ColumnNames, Row, Values};

/// Reads rows from `cursor` into a batch of the size `limit` asks for.
///
/// The cursor writes each row into the [`Values`] it is given. They are
/// empty for a row that is kept ([`Limit::First`]); otherwise they are one
/// row reused for every row, still holding the previous row's values, which
/// the cursor overwrites (so their text allocations are reused).
pub(super) fn read_batch(
    keys: &ColumnNames,
    limit: Limit,
    cursor: &mut impl Cursor,
) -> Result<Batch> {
    read_with(keys, limit, |values| cursor.next_into(values))
}

/// [`read_batch`] over any source of rows: `next` writes the next row's
/// values and returns `false` at the end.
pub(super) fn read_with(
    keys: &ColumnNames,
    limit: Limit,
    mut next: impl FnMut(&mut Values) -> Result<bool>,
) -> Result<Batch> {
    let max_rows = match limit {
        Limit::Into(mut sink) => {
            let mut row = Row::new(keys.clone(), Values::with_capacity(keys.len()));
            while next(row.values_mut())? {
                sink.push(&mut row)?;
            }
            return Ok(Batch {
                sink: Some(sink),
                ..Batch::new(Vec::new(), true)
            });
        }
        Limit::Rows(n) => return read_packed(keys, n, usize::MAX, next),
        Limit::Stream(n) => return read_packed(keys, n, BATCH_BYTES, next),
        Limit::First(n) => n,
    };
    // Small results are the common case: grow only when rows keep coming.
    let mut rows = Vec::with_capacity(max_rows.min(8));
    let mut bytes = 0;
    let done = loop {
        if rows.len() >= max_rows || bytes >= BATCH_BYTES {
            break false;
        }
        let mut values = Values::with_capacity(keys.len());
        if !next(&mut values)? {
            break true;
        }
        bytes += Values::bytes(&values);
        rows.push(Row::new(keys.clone(), values));
    };
    Ok(Batch::new(rows, done))
}

/// Reads up to `max_rows` rows or about `max_bytes` bytes into a packed batch
/// (see [`Packed`]), each read into one row that is reused.
fn read_packed(
    keys: &ColumnNames,
    max_rows: usize,
    max_bytes: usize,
    mut next: impl FnMut(&mut Values) -> Result<bool>,
) -> Result<Batch> {
    // Room for every row the batch can take before its byte budget ends
    // (counting 8 bytes a value), so that its cells are not copied as they grow.
    let room = max_rows.min(max_bytes / (8 * keys.len().max(1))).max(8);
    let mut packed = Packed::with_capacity(keys.clone(), room);
    let mut row = Values::with_capacity(keys.len());
    let done = loop {
        if packed.len() >= max_rows || packed.bytes() >= max_bytes {
            break false;
        }
        if !next(&mut row)? {
            break true;
        }
        packed.push(&mut row);
    };
    Ok(Batch {
        packed: Some(packed),
        ..Batch::new(Vec::new(), done)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;

    use super::*;
    use crate::value::Value;

    #[test]
    fn a_streaming_batch_stops_after_about_a_mebibyte_of_text_and_keeps_every_row() {
        let keys: ColumnNames = Arc::new(crate::row::Names(vec!["n".into(), "t".into()]));
        // Rows of 100 KB of text: a batch of 4,096 rows stops after the
        // row that takes it past 1 MiB (the 11th), packed or not.
        let text = "x".repeat(100_000);
        let mut read = 0;
        let next = |values: &mut Values| {
            read += 1;
            values.set(0, Value::Integer(read));
            values.set_text(1, &text);
            Ok(true)
        };
        let batch = read_with(&keys, Limit::Stream(4096), next).unwrap();
        assert!(!batch.done);
        let mut rows = VecDeque::new();
        batch.append_to(&mut rows);
        assert_eq!(rows.len(), 11);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.get::<i64>(0).unwrap(), i as i64 + 1);
            assert_eq!(row.get::<String>(1).unwrap().len(), 100_000);
        }
        let mut read = 0;
        let next = |values: &mut Values| {
            read += 1;
            values.push(Value::Integer(read));
            values.push(Value::Text(text.clone()));
            Ok(true)
        };
        let first = read_with(&keys, Limit::First(4096), next).unwrap();
        assert_eq!(first.len(), 11);
    }
}
