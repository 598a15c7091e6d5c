//! A PostgreSQL statement ready to run, and the cursor over its rows.

use std::error::Error as StdError;
use std::sync::Arc;

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::RowIter;

use super::types::TextRef;
use super::unnamed::Unnamed;
use super::{Control, PostgresDriver, Seen};
use crate::driver::{Cursor, Statement};
use crate::error::{Error, Result};
use crate::params::Parameters;
use crate::row::{ColumnNames, Values};
use crate::value::Value;

/// A prepared PostgreSQL statement with its parameters, checked against it.
pub(crate) struct PgStatement<'c> {
    pub(super) driver: &'c mut PostgresDriver,
    /// The prepared statement, or the SQL to run unnamed (`prepared_statements=false`).
    pub(super) stmt: std::result::Result<postgres::Statement, String>,
    pub(super) keys: Option<ColumnNames>,
    /// Which result columns hold text, when known before running (prepared).
    pub(super) texts: Option<Arc<[bool]>>,
    pub(super) params: Parameters,
    /// What the statement does to the transaction, if anything.
    pub(super) control: Option<Control>,
    /// `rowcount` applies (not a query).
    pub(super) counts_rows: bool,
}

impl Statement for PgStatement<'_> {
    type Cursor<'s>
        = PgCursor<'s>
    where
        Self: 's;

    fn keys(&self) -> Option<ColumnNames> {
        self.keys.clone()
    }

    fn run(&mut self) -> Result<PgCursor<'_>> {
        self.driver.note_transaction_sql(self.control);
        let in_tx = self.driver.in_tx;
        let PostgresDriver { client, seen, .. } = &mut *self.driver;
        if let Ok(stmt) = &self.stmt {
            if stmt.columns().is_empty() {
                // No rows can come: one call runs it to its end, where
                // streaming would take a second one to read the end.
                let params: Vec<&(dyn ToSql + Sync)> = self
                    .params
                    .positional
                    .iter()
                    .map(|v| v as &(dyn ToSql + Sync))
                    .collect();
                let affected = client.execute(stmt, &params).map_err(|e| seen.convert(e))?;
                return Ok(PgCursor {
                    rows: Rows::Done(affected),
                    pending: None,
                    ended: true,
                    keys: None,
                    texts: Arc::from([]),
                    seen,
                    in_tx,
                    counts_rows: self.counts_rows,
                });
            }
        }
        let rows = match &self.stmt {
            Ok(stmt) => client.query_raw(stmt, self.params.positional.iter()),
            Err(sql) => client.query_typed_raw(sql, Unnamed::params(&self.params.positional)),
        };
        let mut rows = match rows {
            Ok(rows) => rows,
            Err(e) => return Err(seen.convert(e)),
        };
        // Unnamed, the columns are known from the first row only.
        let mut ended = false;
        let mut texts = self.texts.clone();
        let (pending, keys) = match &self.stmt {
            Ok(_) => (None, None),
            Err(_) => match rows.next() {
                Ok(Some(row)) => {
                    let names: ColumnNames =
                        Arc::new(row.columns().iter().map(|c| c.name().to_owned()).collect());
                    texts = Some(super::text_columns(row.columns()));
                    (Some(row), Some(Some(names)))
                }
                // No row: a query has no column names to show; anything else returns none.
                Ok(None) => (
                    {
                        ended = true;
                        None
                    },
                    Some((!self.counts_rows).then(|| Arc::new(std::iter::empty().collect()))),
                ),
                Err(e) => return Err(seen.convert(e)),
            },
        };
        Ok(PgCursor {
            rows: Rows::Streaming(rows),
            pending,
            ended,
            keys,
            texts: texts.unwrap_or_else(|| Arc::from([])),
            seen,
            in_tx,
            counts_rows: self.counts_rows,
        })
    }
}

/// Where a cursor's rows come from.
enum Rows<'s> {
    /// Streamed from the server as they are read.
    Streaming(RowIter<'s>),
    /// A statement without result columns, already run: the rows it affected.
    Done(u64),
}

/// The rows of a running PostgreSQL statement.
pub(crate) struct PgCursor<'s> {
    rows: Rows<'s>,
    /// The first row, read to learn the columns of an unnamed statement.
    pending: Option<postgres::Row>,
    /// The rows ended (polling the iterator again would fail).
    ended: bool,
    /// The columns found by running an unnamed statement.
    keys: Option<Option<ColumnNames>>,
    /// Which columns hold text.
    texts: Arc<[bool]>,
    seen: &'s mut Seen,
    in_tx: bool,
    counts_rows: bool,
}

impl Cursor for PgCursor<'_> {
    fn next_into(&mut self, values: &mut Values) -> Result<bool> {
        let next = match self.pending.take() {
            Some(row) => Ok(Some(row)),
            None if self.ended => Ok(None),
            None => match &mut self.rows {
                Rows::Streaming(rows) => rows.next(),
                Rows::Done(_) => Ok(None),
            },
        };
        if matches!(next, Ok(None)) {
            self.ended = true;
        }
        let row = match next {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(false),
            Err(e) => return Err(self.seen.convert(e)),
        };
        for (i, (column, &text)) in row.columns().iter().zip(self.texts.iter()).enumerate() {
            let failed = |e: postgres::Error| {
                let reason = e.source().map_or_else(|| e.to_string(), |s| s.to_string());
                Error::decode(column.name(), crate::error::DecodeError::new(reason))
            };
            if text {
                // Into the text the row being read already holds, if any.
                match row.try_get::<_, Option<TextRef<'_>>>(i).map_err(failed)? {
                    Some(TextRef(text)) => values.set_text(i, text),
                    None => values.set(i, Value::Null),
                }
            } else {
                values.set(i, row.try_get::<_, Value>(i).map_err(failed)?);
            }
        }
        self.seen.note_size(values);
        Ok(true)
    }

    fn rowcount(&mut self, done: bool) -> u64 {
        if self.counts_rows && done {
            match &self.rows {
                Rows::Streaming(rows) => rows.rows_affected().unwrap_or(0),
                Rows::Done(affected) => *affected,
            }
        } else {
            0
        }
    }

    fn in_transaction(&self) -> bool {
        self.in_tx
    }

    fn keys(&self) -> Option<Option<ColumnNames>> {
        self.keys.clone()
    }
}
