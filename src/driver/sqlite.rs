//! SQLite through `rusqlite`, on the worker thread.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{OpenFlags, Statement};

use crate::config::{SqliteTarget, Target};
use crate::error::{Error, Result};
use crate::params::Parameters;
use crate::row::ColumnNames;
use crate::value::Value;
use crate::worker::{self, Answer, Batch, Driver, Header, Kill, Limit, Link, Next, Ticket};

/// How long a connection waits for a lock held by another connection before `SQLITE_BUSY`.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct SqliteDriver {
    conn: rusqlite::Connection,
    keys: Keys,
}

/// Statements whose column names are kept, at most.
const KEYS_CACHE: usize = 256;

/// Column names per statement text, shared by every row of every result.
#[derive(Default)]
struct Keys {
    by_sql: HashMap<String, ColumnNames>,
    /// The last statement's text and names: a statement run again and again
    /// (the common case) is found without hashing its text.
    last_sql: String,
    last: Option<ColumnNames>,
}

impl Keys {
    /// The column names of `stmt`, reusing the cached list while it still
    /// matches (a schema change can change what a statement returns).
    fn of(&mut self, sql: &str, stmt: &Statement<'_>) -> ColumnNames {
        let cached = match &self.last {
            Some(keys) if self.last_sql == sql => Some(keys),
            _ => self.by_sql.get(sql),
        };
        let keys = match cached {
            Some(keys)
                if keys.len() == stmt.column_count()
                    && keys.iter().map(String::as_str).eq(stmt.column_names()) =>
            {
                keys.clone()
            }
            _ => {
                let keys: ColumnNames = Arc::new(stmt.column_names().map(str::to_owned).collect());
                if self.by_sql.len() >= KEYS_CACHE {
                    self.by_sql.clear();
                }
                self.by_sql.insert(sql.to_owned(), keys.clone());
                keys
            }
        };
        if self.last_sql != sql {
            self.last_sql.clear();
            self.last_sql.push_str(sql);
        }
        if !self
            .last
            .as_ref()
            .is_some_and(|last| Arc::ptr_eq(last, &keys))
        {
            self.last = Some(keys.clone());
        }
        keys
    }
}

fn flags(read_only: bool) -> OpenFlags {
    let base = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    if read_only {
        base | OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        base | OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    }
}

impl Driver for SqliteDriver {
    const NAME: &'static str = "sqlite";
    const HAS_IMMEDIATE: bool = true;

    fn open(target: &Target) -> Result<Self> {
        #[allow(irrefutable_let_patterns)]
        let Target::Sqlite(target) = target
        else {
            unreachable!("the worker opens the driver its target names")
        };
        let (conn, url) = match target {
            SqliteTarget::File { path, read_only } => (
                rusqlite::Connection::open_with_flags(path, flags(*read_only))
                    .and_then(|conn| setup_file(conn, *read_only)),
                format!("sqlite://{}", path.display()),
            ),
            SqliteTarget::Memory { path } => (
                rusqlite::Connection::open_with_flags(path, flags(false))
                    .and_then(|conn| setup_file(conn, false))
                    .and_then(|conn| {
                        // Nothing to keep across a crash: the database dies with its engine.
                        conn.execute_batch("PRAGMA synchronous = OFF;")?;
                        Ok(conn)
                    }),
                "sqlite::memory:".to_owned(),
            ),
        };
        conn.map(|conn| SqliteDriver {
            conn,
            keys: Keys::default(),
        })
        .map_err(|e| Error::Connect {
            url,
            source: Box::new(e),
        })
    }

    fn kill(&self) -> Kill {
        let handle = self.conn.get_interrupt_handle();
        Kill {
            run: Box::new(move || handle.interrupt()),
            blocking: false,
        }
    }

    fn raw(&mut self) -> &mut dyn Any {
        &mut self.conn
    }

    fn in_transaction(&mut self) -> bool {
        !self.conn.is_autocommit()
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(convert)
    }

    fn execute(
        &mut self,
        ticket: Ticket,
        sql: &str,
        params: Parameters,
        reply: Answer<'_, Header>,
        link: &Link<'_>,
    ) -> Next {
        let conn = &self.conn;
        let interrupter = link.interrupter;
        let in_tx = || !conn.is_autocommit();
        if !interrupter.start(ticket) {
            let _ = reply.send(in_tx(), interrupter.skipped());
            return Next::Idle;
        }
        let prepared = conn
            .prepare_cached(sql)
            .map_err(convert)
            .and_then(|mut stmt| {
                bind(&mut stmt, &params)?;
                Ok(stmt)
            });
        let mut stmt = match prepared {
            Ok(stmt) => stmt,
            Err(e) => {
                let _ = reply.send(in_tx(), interrupter.end(Err(e)));
                return Next::Idle;
            }
        };
        // Single-writer mode: an autocommit write waits for the engine's write permit.
        let _permit = if !stmt.readonly() && conn.is_autocommit() {
            match link.write(worker::WRITE_PATIENCE) {
                Ok(permit) => permit,
                Err(e) => {
                    let _ = reply.send(in_tx(), interrupter.end(Err(e)));
                    return Next::Idle;
                }
            }
        } else {
            None
        };
        let inserts = is_insert(sql);
        let before = conn.total_changes();
        let count = |done: bool| {
            if done && conn.total_changes() != before {
                conn.changes()
            } else {
                0
            }
        };
        let insert_id = |rowcount: u64| (inserts && rowcount > 0).then(|| conn.last_insert_rowid());

        if stmt.column_count() == 0 {
            let header = stmt.raw_execute().map_err(convert).map(|_| {
                let rowcount = count(true);
                Header {
                    keys: None,
                    rowcount,
                    last_insert_id: insert_id(rowcount),
                    returns_rows: false,
                    batch: Batch::new(Vec::new(), true),
                    bounced: None,
                }
            });
            let _ = reply.send(in_tx(), interrupter.end(header));
            return Next::Idle;
        }

        let keys = self.keys.of(sql, &stmt);
        let mut rows = stmt.raw_query();
        let first = match interrupter.end(read(&mut rows, &keys, Limit::First(worker::BATCH_ROWS)))
        {
            Ok(batch) => batch,
            Err(e) => {
                let _ = reply.send(in_tx(), Err(e));
                return Next::Idle;
            }
        };
        let done = first.done;
        let rowcount = count(done);
        let header = Header {
            keys: Some(keys.clone()),
            rowcount,
            last_insert_id: insert_id(rowcount),
            returns_rows: true,
            batch: first,
            bounced: None,
        };
        if !reply.send(in_tx(), Ok(header)) || done {
            return Next::Idle;
        }
        worker::serve_cursor(link, ticket.seq, |limit| read(&mut rows, &keys, limit))
    }

    fn execute_many(&mut self, sql: &str, params: &[Parameters]) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(convert)?;
        let query = stmt.column_count() > 0;
        let mut total = 0;
        let mut before = self.conn.total_changes();
        for set in params {
            bind(&mut stmt, set)?;
            if query {
                let mut rows = stmt.raw_query();
                while rows.next().map_err(convert)?.is_some() {}
            } else {
                stmt.raw_execute().map_err(convert)?;
            }
            // Only statements that changed rows count (a query leaves `changes()` as it was).
            let after = self.conn.total_changes();
            if after != before {
                total += self.conn.changes();
                before = after;
            }
        }
        Ok(total)
    }

    fn table_names(&mut self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
                 UNION SELECT name FROM sqlite_temp_master WHERE type = 'table' \
                 ORDER BY name",
            )
            .map_err(convert)?;
        let names = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(convert)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(convert)?;
        Ok(names)
    }
}

fn setup_file(
    conn: rusqlite::Connection,
    read_only: bool,
) -> rusqlite::Result<rusqlite::Connection> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if !read_only {
        // Reading the mode back also proves the file is a SQLite database.
        let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    } else {
        let _: i64 = conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")?;
    }
    Ok(conn)
}

/// `true` when the statement's first keyword is INSERT or REPLACE (so `last_insert_id` applies).
fn is_insert(sql: &str) -> bool {
    let mut rest = sql.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    let word = &rest[..rest.bytes().take_while(u8::is_ascii_alphabetic).count()];
    word.eq_ignore_ascii_case("insert") || word.eq_ignore_ascii_case("replace")
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        if let Some(text) = crate::types::sqlite_text(self) {
            return Ok(ToSqlOutput::Owned(rusqlite::types::Value::Text(text)));
        }
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Bool(b) => ValueRef::Integer(i64::from(*b)),
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
            #[allow(unreachable_patterns)]
            _ => ValueRef::Null,
        }))
    }
}

fn bind(stmt: &mut Statement<'_>, params: &Parameters) -> Result<()> {
    let expected = stmt.parameter_count();
    if !params.named.is_empty() {
        if !params.positional.is_empty() {
            return Err(Error::Parameter(
                "positional and named parameters cannot be mixed".into(),
            ));
        }
        if params.named.len() != expected {
            return Err(Error::ParameterCount {
                expected,
                given: params.named.len(),
            });
        }
        for (name, value) in &params.named {
            let index = stmt
                .parameter_index(name)
                .map_err(convert)?
                .ok_or_else(|| Error::ParameterName(name.clone()))?;
            stmt.raw_bind_parameter(index, value).map_err(convert)?;
        }
        return Ok(());
    }
    if params.positional.len() != expected {
        return Err(Error::ParameterCount {
            expected,
            given: params.positional.len(),
        });
    }
    for (i, value) in params.positional.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, value).map_err(convert)?;
    }
    Ok(())
}

fn read(rows: &mut rusqlite::Rows<'_>, keys: &ColumnNames, limit: Limit) -> Result<Batch> {
    worker::read_batch(keys, limit, |values| {
        let Some(row) = rows.next().map_err(convert)? else {
            return Ok(false);
        };
        for i in 0..keys.len() {
            match row.get_ref(i).map_err(convert)? {
                ValueRef::Null => worker::put(values, i, Value::Null),
                ValueRef::Integer(n) => worker::put(values, i, Value::Integer(n)),
                ValueRef::Real(f) => worker::put(values, i, Value::Real(f)),
                ValueRef::Text(t) => match std::str::from_utf8(t) {
                    Ok(s) => worker::put_text(values, i, s),
                    // Not UTF-8: keep every byte rather than mangle it.
                    Err(_) => worker::put(values, i, Value::Blob(t.to_vec())),
                },
                ValueRef::Blob(b) => worker::put(values, i, Value::Blob(b.to_vec())),
            }
        }
        Ok(true)
    })
}

impl From<rusqlite::Error> for Error {
    /// Lets `run_in_thread` closures use `?` on rusqlite calls.
    fn from(e: rusqlite::Error) -> Error {
        convert(e)
    }
}

/// Converts a rusqlite error into ours, keeping SQLite's message.
pub(crate) fn convert(e: rusqlite::Error) -> Error {
    use rusqlite::Error as E;
    match e {
        E::InvalidParameterCount(given, expected) => Error::ParameterCount { expected, given },
        E::InvalidParameterName(name) => Error::ParameterName(name),
        E::NulError(_) | E::ToSqlConversionFailure(_) => Error::Parameter(e.to_string()),
        E::MultipleStatement => Error::Database {
            message: "the SQL string holds more than one statement; pass one statement per call, \
                      or use run_in_thread with execute_batch"
                .into(),
            source: Box::new(e),
        },
        E::Empty => Error::Database {
            message: "the SQL string holds no statement".into(),
            source: Box::new(e),
        },
        E::SqliteFailure(ref code, ref message) => Error::Database {
            message: message.clone().unwrap_or_else(|| code.to_string()),
            source: Box::new(e),
        },
        E::SqlInputError { ref msg, .. } => Error::Database {
            message: msg.clone(),
            source: Box::new(e),
        },
        other => Error::Database {
            message: other.to_string(),
            source: Box::new(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::is_insert;

    #[test]
    fn insert_detection_skips_comments() {
        assert!(is_insert("INSERT INTO t VALUES (1)"));
        assert!(is_insert("  -- note\n /* x */ replace into t values (1)"));
        assert!(!is_insert("UPDATE t SET a = 1"));
        assert!(!is_insert("SELECT 'INSERT'"));
    }
}
