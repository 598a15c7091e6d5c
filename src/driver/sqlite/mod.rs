//! SQLite through `rusqlite`, on the worker thread.

use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::OpenFlags;

mod config;

use self::config::{Location, Options};
pub(crate) use self::config::SqliteConfig;
use super::{Cursor, Driver, Kill, Statement};
use crate::error::{DatabaseDetails, Error, ErrorKind, Result};
use crate::params::Parameters;
use crate::row::{ColumnNames, Values};
use crate::sql::Dialect;
use crate::tx_options::{Locking, TxOptions};
use crate::value::Value;


pub(crate) struct SqliteDriver {
    conn: rusqlite::Connection,
    keys: Keys,
    /// `PRAGMA query_only` is on for a read-only transaction, until it ends.
    query_only: bool,
}

impl SqliteDriver {
    /// Turns `query_only` off once the read-only transaction that set it ended.
    fn settle_query_only(&mut self) {
        if self.query_only && self.conn.is_autocommit() {
            self.query_only = self.conn.execute_batch("PRAGMA query_only = OFF").is_err();
        }
    }
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
    fn of(&mut self, sql: &str, stmt: &rusqlite::Statement<'_>) -> ColumnNames {
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

/// Deletes a database file and its WAL companions when dropped.
struct TempDatabase(PathBuf);

impl Drop for TempDatabase {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Driver for SqliteDriver {
    const NAME: &'static str = "sqlite";
    const DIALECT: Dialect = Dialect::Sqlite;
    const HAS_IMMEDIATE: bool = true;
    const SINGLE_WRITER: Option<bool> = Some(true);

    type Config = SqliteConfig;
    type Statement<'c> = SqliteStatement<'c>;

    /// Parses `sqlite://path`, `sqlite:///absolute/path`, `sqlite::memory:`,
    /// each with options after a `?`.
    fn parse(url: &str) -> Result<SqliteConfig> {
        SqliteConfig::parse(url.split_once(':').map_or("", |(_, rest)| rest))
    }

    fn keeper(config: &SqliteConfig) -> Option<Box<dyn Any + Send>> {
        match &config.location {
            Location::Memory { path } => Some(Box::new(TempDatabase(path.clone()))),
            Location::File { .. } => None,
        }
    }

    fn is_transient(error: &Error) -> bool {
        super::is_transient_connect(error, |err| match err.downcast_ref() {
            Some(rusqlite::Error::SqliteFailure(f, _)) => Some(matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )),
            _ => None,
        })
    }

    fn open(config: &SqliteConfig) -> Result<Self> {
        let (path, read_only, url) = match &config.location {
            Location::File { path, read_only } => {
                (path, *read_only, format!("sqlite://{}", path.display()))
            }
            Location::Memory { path } => (path, false, "sqlite::memory:".to_owned()),
        };
        let memory = matches!(config.location, Location::Memory { .. });
        rusqlite::Connection::open_with_flags(path, flags(read_only))
            .and_then(|conn| set_up(conn, &config.options, read_only, memory))
            .map(|conn| SqliteDriver {
                conn,
                keys: Keys::default(),
                query_only: false,
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

    fn execute_batch(&mut self, sql: &str) -> Result<()> {
        let result = self.conn.execute_batch(sql).map_err(convert);
        self.settle_query_only();
        result
    }

    /// `BEGIN DEFERRED`, `IMMEDIATE` or `EXCLUSIVE`; a read-only transaction
    /// is deferred and sets `PRAGMA query_only` until it ends. SQLite's
    /// transactions are serializable whatever the isolation asked for.
    fn begin(&mut self, options: &TxOptions) -> Result<()> {
        let lock = match options.locking {
            _ if options.read_only => "DEFERRED",
            Locking::Deferred => "DEFERRED",
            Locking::Exclusive => "EXCLUSIVE",
            _ => "IMMEDIATE",
        };
        self.conn
            .execute_batch(&format!("BEGIN {lock}"))
            .map_err(convert)?;
        if options.read_only {
            if let Err(e) = self.conn.execute_batch("PRAGMA query_only = ON") {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(convert(e));
            }
            self.query_only = true;
        }
        Ok(())
    }

    fn prepare<'c>(&'c mut self, sql: &str, params: Parameters) -> Result<SqliteStatement<'c>> {
        self.settle_query_only();
        let conn = &self.conn;
        let mut stmt = conn.prepare_cached(sql).map_err(convert)?;
        bind(&mut stmt, &params)?;
        let keys = (stmt.column_count() > 0).then(|| self.keys.of(sql, &stmt));
        Ok(SqliteStatement {
            conn,
            stmt,
            keys,
            inserts: is_insert(sql),
        })
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

/// A prepared, bound SQLite statement.
pub(crate) struct SqliteStatement<'c> {
    conn: &'c rusqlite::Connection,
    stmt: rusqlite::CachedStatement<'c>,
    keys: Option<ColumnNames>,
    /// An `INSERT` or `REPLACE`, so `last_insert_id` applies.
    inserts: bool,
}

impl Statement for SqliteStatement<'_> {
    type Cursor<'s>
        = SqliteCursor<'s>
    where
        Self: 's;

    fn keys(&self) -> Option<ColumnNames> {
        self.keys.clone()
    }

    fn writes(&self) -> bool {
        !self.stmt.readonly()
    }

    fn run(&mut self) -> Result<SqliteCursor<'_>> {
        let before = self.conn.total_changes();
        Ok(SqliteCursor {
            conn: self.conn,
            before,
            inserts: self.inserts,
            width: self.keys.as_ref().map_or(0, |keys| keys.len()),
            rows: self.stmt.raw_query(),
        })
    }
}

/// The rows of a running SQLite statement.
pub(crate) struct SqliteCursor<'s> {
    conn: &'s rusqlite::Connection,
    rows: rusqlite::Rows<'s>,
    /// The connection's change count before the statement ran.
    before: u64,
    inserts: bool,
    width: usize,
}

impl Cursor for SqliteCursor<'_> {
    #[inline]
    fn next_into(&mut self, values: &mut Values) -> Result<bool> {
        let Some(row) = self.rows.next().map_err(convert)? else {
            return Ok(false);
        };
        for i in 0..self.width {
            match row.get_ref(i).map_err(convert)? {
                ValueRef::Null => values.set(i, Value::Null),
                ValueRef::Integer(n) => values.set(i, Value::Integer(n)),
                ValueRef::Real(f) => values.set(i, Value::Real(f)),
                ValueRef::Text(t) => match std::str::from_utf8(t) {
                    Ok(s) => values.set_text(i, s),
                    // Not UTF-8: keep every byte rather than mangle it.
                    Err(_) => values.set(i, Value::Blob(t.to_vec())),
                },
                ValueRef::Blob(b) => values.set(i, Value::Blob(b.to_vec())),
            }
        }
        Ok(true)
    }

    fn rowcount(&mut self, done: bool) -> u64 {
        if done && self.conn.total_changes() != self.before {
            self.conn.changes()
        } else {
            0
        }
    }

    fn last_insert_id(&mut self, rowcount: u64) -> Option<i64> {
        (self.inserts && rowcount > 0).then(|| self.conn.last_insert_rowid())
    }

    fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }
}

/// Applies a connection's settings.
fn set_up(
    conn: rusqlite::Connection,
    options: &Options,
    read_only: bool,
    memory: bool,
) -> rusqlite::Result<rusqlite::Connection> {
    conn.busy_timeout(options.busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(options.statement_cache);
    if read_only {
        // Reading a value also proves the file is a SQLite database.
        let _: i64 = conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
    } else {
        let mode = &options.journal_mode;
        let _: String = conn.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))?;
        // Nothing to keep across a crash in memory: the database dies with its engine.
        let synchronous = options
            .synchronous
            .as_deref()
            .unwrap_or(if memory { "OFF" } else { "NORMAL" });
        conn.execute_batch(&format!("PRAGMA synchronous = {synchronous};"))?;
    }
    let foreign_keys = if options.foreign_keys { "ON" } else { "OFF" };
    conn.execute_batch(&format!("PRAGMA foreign_keys = {foreign_keys};"))?;
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

fn bind(stmt: &mut rusqlite::Statement<'_>, params: &Parameters) -> Result<()> {
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
        E::MultipleStatement => Error::database(
            "the SQL string holds more than one statement; pass one statement per call, \
             or use run_in_thread with execute_batch",
            e,
        ),
        E::Empty => Error::database("the SQL string holds no statement", e),
        E::SqliteFailure(ref failure, ref message) => {
            let message = message.clone().unwrap_or_else(|| failure.to_string());
            let details = details(failure, &message);
            Error::database_with(message, e, details)
        }
        E::SqlInputError { ref msg, .. } => {
            let details = DatabaseDetails {
                kind: ErrorKind::Syntax,
                ..DatabaseDetails::default()
            };
            Error::database_with(msg.clone(), e, details)
        }
        other => Error::database(other.to_string(), other),
    }
}

/// The portable kind, extended result code and named objects of a SQLite failure.
fn details(failure: &rusqlite::ffi::Error, message: &str) -> DatabaseDetails {
    use rusqlite::ffi;
    use rusqlite::ErrorCode as C;
    let kind = match (failure.code, failure.extended_code) {
        (_, ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
            ErrorKind::UniqueViolation
        }
        (_, ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
        (_, ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
        (_, ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
        (C::DatabaseBusy | C::DatabaseLocked, _) => ErrorKind::LockTimeout,
        (C::ReadOnly, _) => ErrorKind::ReadOnly,
        (C::OperationInterrupted, _) => ErrorKind::QueryCanceled,
        _ if message.starts_with("no such table") || message.contains("syntax error") => {
            ErrorKind::Syntax
        }
        _ => ErrorKind::Other,
    };
    // "UNIQUE constraint failed: users.email, users.name", "CHECK constraint failed: positive".
    let named = message
        .split_once("constraint failed: ")
        .map(|(_, named)| named);
    let (table, constraint) = match (kind, named) {
        (ErrorKind::CheckViolation, Some(name)) => (None, Some(name.to_owned())),
        (_, Some(columns)) => (
            columns.split_once('.').map(|(table, _)| table.to_owned()),
            None,
        ),
        (_, None) => (None, None),
    };
    DatabaseDetails {
        kind,
        code: Some(failure.extended_code.to_string()),
        constraint,
        table,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn failures_are_classified_with_their_extended_code_and_table() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE teams (id INTEGER PRIMARY KEY);
             CREATE TABLE users (
                 id INTEGER PRIMARY KEY,
                 email TEXT NOT NULL UNIQUE,
                 team INTEGER REFERENCES teams (id),
                 age INTEGER CONSTRAINT adult CHECK (age >= 18)
             );
             INSERT INTO users (id, email) VALUES (1, 'a@example.com');",
        )
        .unwrap();
        let fail = |sql: &str| convert(conn.execute_batch(sql).unwrap_err());
        let e = fail("INSERT INTO users (email) VALUES ('a@example.com')");
        assert_eq!(e.kind(), ErrorKind::UniqueViolation, "{e}");
        assert_eq!((e.code(), e.table()), (Some("2067"), Some("users")));
        let e = fail("INSERT INTO users (id, email) VALUES (1, 'b@example.com')");
        assert_eq!((e.kind(), e.code()), (ErrorKind::UniqueViolation, Some("1555")));
        let e = fail("INSERT INTO users (email, team) VALUES ('c@example.com', 7)");
        assert_eq!((e.kind(), e.code()), (ErrorKind::ForeignKeyViolation, Some("787")));
        let e = fail("INSERT INTO users (email) VALUES (NULL)");
        assert_eq!(e.kind(), ErrorKind::NotNullViolation, "{e}");
        assert_eq!((e.code(), e.table()), (Some("1299"), Some("users")));
        let e = fail("INSERT INTO users (email, age) VALUES ('d@example.com', 3)");
        assert_eq!(e.kind(), ErrorKind::CheckViolation, "{e}");
        assert_eq!((e.code(), e.constraint()), (Some("275"), Some("adult")));
        let e = fail("SELECT * FROM nowhere");
        assert_eq!(e.kind(), ErrorKind::Syntax, "{e}");
        for e in [fail("INSERT INTO users (email) VALUES (NULL)"), fail("SELEC 1")] {
            assert!(!e.is_retryable(), "{e}");
        }
    }

    #[test]
    fn a_busy_database_is_a_retryable_lock_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.db");
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder
            .execute_batch("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        other.busy_timeout(Duration::ZERO).unwrap();
        let e = convert(other.execute_batch("INSERT INTO t VALUES (2)").unwrap_err());
        assert_eq!(e.kind(), ErrorKind::LockTimeout, "{e}");
        assert_eq!(e.code(), Some("5"));
        assert!(e.is_retryable());
    }

    #[test]
    fn insert_detection_skips_comments() {
        assert!(is_insert("INSERT INTO t VALUES (1)"));
        assert!(is_insert("  -- note\n /* x */ replace into t values (1)"));
        assert!(!is_insert("UPDATE t SET a = 1"));
        assert!(!is_insert("SELECT 'INSERT'"));
    }
}
