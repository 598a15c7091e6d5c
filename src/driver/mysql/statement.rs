//! A statement on its way: how it runs (prepared, or as text), its
//! parameters, and the cursor over its rows.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use mysql::prelude::Queryable;
use mysql::{Binary, Conn, QueryResult, Text, Value as My};

use super::connect::code;
use super::{types, Prepared, State};
use crate::driver::{Cursor, Statement};
use crate::error::{Error, Result};
use crate::params::Parameters;
use crate::row::{ColumnNames, Values};
use crate::value::Value;

/// How a statement runs.
pub(super) enum Plan {
    /// A prepared statement and its parameters, bound.
    Prepared {
        stmt: mysql::Statement,
        keys: Option<ColumnNames>,
        returning: bool,
        /// See `Prepared::unannounced`: its columns come with its result.
        unannounced: bool,
        values: Option<mysql::Params>,
    },
    /// As text: the server cannot prepare it (no parameters then).
    Text,
}

/// A statement ready to run, borrowing its connection.
pub(crate) struct MyStatement<'c> {
    /// The connection, until a text statement's result borrows it.
    pub(super) conn: Option<&'c mut Conn>,
    pub(super) state: &'c mut State,
    pub(super) plan: Plan,
    /// A text statement, already running, and its column names.
    pub(super) text: Option<(QueryResult<'c, 'c, 'c, Text>, Option<ColumnNames>)>,
    /// Its text (shared with the statement cache).
    pub(super) sql: Arc<str>,
}

impl<'c> MyStatement<'c> {
    /// Runs a text statement, so that its columns are known.
    pub(super) fn start_text(&mut self) -> Result<()> {
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        match conn.query_iter(&*self.sql) {
            Ok(result) => {
                let columns = result.columns();
                let columns = columns.as_ref();
                let keys = (!columns.is_empty()).then(|| names(columns));
                self.text = Some((result, keys));
                Ok(())
            }
            Err(e) => Err(self.state.fail(e)),
        }
    }
}

impl<'c> Statement for MyStatement<'c> {
    type Cursor<'s>
        = MyCursor<'s, 'c>
    where
        Self: 's;

    fn keys(&self) -> Option<ColumnNames> {
        match (&self.plan, &self.text) {
            (Plan::Prepared { keys, .. }, _) => keys.clone(),
            (Plan::Text, Some((_, keys))) => keys.clone(),
            (Plan::Text, None) => None,
        }
    }

    fn run(&mut self) -> Result<MyCursor<'_, 'c>> {
        let state = &mut *self.state;
        if let Some((result, keys)) = self.text.take() {
            let in_tx = state.in_tx;
            let affected = result.affected_rows();
            let insert_id = result.last_insert_id();
            state.guess(&self.sql);
            return Ok(MyCursor {
                rows: Rows::Text(result),
                state,
                width: keys.map_or(0, |k| k.len()),
                affected,
                insert_id,
                returning: false,
                read: 0,
                in_tx,
                found: None,
            });
        }
        let Plan::Prepared {
            stmt,
            keys,
            returning,
            unannounced,
            values,
        } = &mut self.plan
        else {
            return Err(Error::Closed("statement"));
        };
        let Some(conn) = self.conn.as_deref_mut() else {
            return Err(Error::Closed("statement"));
        };
        let values = values.take().unwrap_or(mysql::Params::Empty);
        if keys.is_none() && !*unannounced {
            // No rows: run it to its end here, so that the transaction state
            // its OK packet carries is known before the answer goes out.
            let run = || -> std::result::Result<(u64, Option<u64>), mysql::Error> {
                let mut result = conn.exec_iter(&*stmt, values)?;
                let done = (result.affected_rows(), result.last_insert_id());
                while let Some(set) = result.iter() {
                    for row in set {
                        row?;
                    }
                }
                Ok(done)
            };
            let (affected, insert_id) = run().map_err(|e| state.fail(e))?;
            state.track(conn);
            if let Some(killed) = state.killed() {
                return Err(killed);
            }
            return Ok(MyCursor {
                rows: Rows::Done,
                in_tx: state.in_tx,
                state,
                width: 0,
                affected,
                insert_id,
                returning: false,
                read: 0,
                found: None,
            });
        }
        let in_tx = state.in_tx;
        let result = match conn.exec_iter(&*stmt, values) {
            Ok(result) => result,
            Err(e) => return Err(state.fail(e)),
        };
        if keys.is_none() {
            // A RETURNING whose columns were not announced: read them now.
            let columns = result.columns();
            let found = (!columns.as_ref().is_empty()).then(|| names(columns.as_ref()));
            return Ok(MyCursor {
                width: found.as_ref().map_or(0, |k| k.len()),
                returning: found.is_some(),
                affected: result.affected_rows(),
                insert_id: result.last_insert_id(),
                rows: Rows::Binary(result),
                state,
                read: 0,
                in_tx,
                found: Some(found),
            });
        }
        let width = keys.as_ref().map_or(0, |k| k.len());
        if !same_columns(keys.as_deref(), result.columns().as_ref()) {
            // The table changed since the statement was prepared (ALTER TABLE):
            // the names the answer carries would not fit the rows.
            state.statements.remove(&*self.sql);
            drop(result);
            return Err(Error::database("the statement's result columns changed since it was prepared (the \
                          table was altered); run it again", "result columns changed"));
        }
        Ok(MyCursor {
            rows: Rows::Binary(result),
            state,
            width,
            affected: 0,
            insert_id: None,
            returning: *returning,
            read: 0,
            in_tx,
            found: None,
        })
    }
}

/// The names of a result's columns.
pub(super) fn names(columns: &[mysql::Column]) -> ColumnNames {
    Arc::new(crate::row::Names(
        columns.iter().map(|c| c.name_str().into_owned()).collect(),
    ))
}

/// `true` when the columns a statement returns are the ones it was prepared with.
fn same_columns(keys: Option<&crate::row::Names>, columns: &[mysql::Column]) -> bool {
    let Some(keys) = keys else {
        return columns.is_empty();
    };
    keys.len() == columns.len()
        && keys
            .iter()
            .zip(columns)
            .all(|(k, c)| k.as_bytes() == c.name_ref())
}

/// The rows of a running statement: a prepared one borrows the connection
/// from its statement, a text one from the connection itself.
enum Rows<'s, 'c> {
    Binary(QueryResult<'s, 's, 's, Binary>),
    Text(QueryResult<'c, 'c, 'c, Text>),
    /// Read to the end.
    Done,
}

/// The rows of a running MySQL statement.
pub(crate) struct MyCursor<'s, 'c> {
    rows: Rows<'s, 'c>,
    state: &'s mut State,
    width: usize,
    affected: u64,
    insert_id: Option<u64>,
    /// A write returning rows: its rowcount is the rows read.
    returning: bool,
    read: u64,
    in_tx: bool,
    /// The columns of a statement that announced none when it was prepared,
    /// as its result has them.
    found: Option<Option<ColumnNames>>,
}

impl MyCursor<'_, '_> {
    /// Reads what follows the first result set (a procedure's further sets
    /// and its final status), for the errors they may hold.
    fn finish(&mut self) -> Result<()> {
        let rows = std::mem::replace(&mut self.rows, Rows::Done);
        let drained = match rows {
            Rows::Binary(mut result) => drain(&mut result),
            Rows::Text(mut result) => drain(&mut result),
            Rows::Done => Ok(()),
        };
        drained.map_err(|e| self.state.fail(e))?;
        match self.state.killed() {
            Some(killed) => Err(killed),
            None => Ok(()),
        }
    }
}

fn drain<P: mysql::prelude::Protocol>(
    result: &mut QueryResult<'_, '_, '_, P>,
) -> std::result::Result<(), mysql::Error> {
    while let Some(set) = result.iter() {
        for row in set {
            row?;
        }
    }
    Ok(())
}

impl Cursor for MyCursor<'_, '_> {
    fn next_into(&mut self, values: &mut Values) -> Result<bool> {
        // The crate's decoder panics on a column type it does not know
        // (`unimplemented!`): that is an error here, and the connection,
        // whose rows are left half read, is replaced.
        let next = catch_unwind(AssertUnwindSafe(|| match &mut self.rows {
            Rows::Binary(result) => result.next(),
            Rows::Text(result) => result.next(),
            Rows::Done => None,
        }));
        let row = match next {
            Ok(Some(Ok(row))) => row,
            Ok(Some(Err(e))) => {
                self.rows = Rows::Done;
                return Err(self.state.fail(e));
            }
            Ok(None) => {
                self.finish()?;
                return Ok(false);
            }
            Err(panic) => {
                self.state.lost = true;
                self.rows = Rows::Done;
                let Error::Panic(reason) = Error::panic(panic) else {
                    return Err(Error::Closed("result"));
                };
                return Err(Error::database(format!("the mysql crate cannot decode this result: {reason}"), reason));
            }
        };
        let text = matches!(self.rows, Rows::Text(_));
        let mut row = row;
        for i in 0..self.width.min(row.len()) {
            let value = row.take::<My, _>(i).unwrap_or(My::NULL);
            let columns = row.columns_ref();
            let column = &columns[i];
            let value = if text {
                types::from_text(column, value).map_err(|e| types::decode_error(column, e))?
            } else {
                value
            };
            match value {
                My::Bytes(bytes) if is_plain_text(column) => match std::str::from_utf8(&bytes) {
                    // Into the text the row being read already holds.
                    Ok(s) => values.set_text(i, s),
                    Err(_) => values.set(i, Value::Blob(bytes)),
                },
                value => values.set(
                    i,
                    types::decode(column, value).map_err(|e| types::decode_error(column, e))?,
                ),
            }
        }
        self.read += 1;
        Ok(true)
    }

    fn rowcount(&mut self, done: bool) -> u64 {
        match (done, self.returning) {
            (false, _) => 0,
            (true, true) => self.read,
            (true, false) => self.affected,
        }
    }

    fn last_insert_id(&mut self, _rowcount: u64) -> Option<i64> {
        self.insert_id
            .filter(|id| *id != 0)
            .and_then(|id| i64::try_from(id).ok())
    }

    fn in_transaction(&self) -> bool {
        self.in_tx
    }

    fn keys(&self) -> Option<Option<ColumnNames>> {
        self.found.clone()
    }
}

impl Drop for MyCursor<'_, '_> {
    fn drop(&mut self) {
        if matches!(self.rows, Rows::Done) || self.state.lost {
            return;
        }
        // The crate reads every remaining row when a result is dropped: stop
        // the statement first, so that only the rows already on their way are read.
        self.state.kill_now();
        let rows = std::mem::replace(&mut self.rows, Rows::Done);
        let drained = match rows {
            Rows::Binary(mut result) => drain(&mut result),
            Rows::Text(mut result) => drain(&mut result),
            Rows::Done => Ok(()),
        };
        if let Err(e) = drained {
            // ER_QUERY_INTERRUPTED is the kill's own answer.
            if code(&e) != Some(1317) {
                self.state.fail(e);
            }
        }
    }
}

/// `true` for a column whose values are plain text (not a number, date,
/// JSON, decimal, bit string or bytes).
fn is_plain_text(column: &mysql::Column) -> bool {
    use mysql::consts::ColumnType::*;
    column.character_set() != 63
        && matches!(
            column.column_type(),
            MYSQL_TYPE_STRING
                | MYSQL_TYPE_VAR_STRING
                | MYSQL_TYPE_VARCHAR
                | MYSQL_TYPE_ENUM
                | MYSQL_TYPE_SET
                | MYSQL_TYPE_TINY_BLOB
                | MYSQL_TYPE_MEDIUM_BLOB
                | MYSQL_TYPE_LONG_BLOB
                | MYSQL_TYPE_BLOB
        )
}

/// Binds parameters to a prepared statement: positional for `?`, by name for `:name`.
pub(super) fn bind(prepared: &Prepared, params: Parameters) -> Result<mysql::Params> {
    let expected = usize::from(prepared.stmt.num_params());
    if params.named.is_empty() {
        if !prepared.names.is_empty() {
            return Err(Error::Parameter(
                "the statement has :name placeholders: pass named parameters".into(),
            ));
        }
        if params.positional.len() != expected {
            return Err(Error::ParameterCount {
                expected,
                given: params.positional.len(),
            });
        }
        if expected == 0 {
            return Ok(mysql::Params::Empty);
        }
        let values = params.positional.into_iter().map(types::bind);
        return Ok(mysql::Params::Positional(values.collect::<Result<_>>()?));
    }
    if !params.positional.is_empty() {
        return Err(Error::Parameter(
            "positional and named parameters cannot be mixed".into(),
        ));
    }
    if prepared.names.is_empty() {
        return Err(Error::Parameter(
            "the statement has no :name placeholders: pass positional parameters".into(),
        ));
    }
    let mut named = HashMap::with_capacity(params.named.len());
    for (name, value) in params.named {
        let bare = name.strip_prefix(':').unwrap_or(&name);
        if !prepared.names.iter().any(|n| n == bare) {
            return Err(Error::ParameterName(name));
        }
        named.insert(bare.as_bytes().to_vec(), types::bind(value)?);
    }
    if let Some(missing) = prepared
        .names
        .iter()
        .find(|n| !named.contains_key(n.as_bytes()))
    {
        return Err(Error::Parameter(format!("no value given for :{missing}")));
    }
    Ok(mysql::Params::Named(named))
}

