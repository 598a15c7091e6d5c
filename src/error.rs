//! The one error type of the crate.

use std::error::Error as StdError;
use std::fmt;

/// A boxed error from a driver or the operating system, kept as [`Error::source`](std::error::Error::source).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// `Result` with [`Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in sqlaio.
///
/// Match on the variants you care about (the enum is `#[non_exhaustive]`, so
/// keep a wildcard arm), ask for its portable [`kind`](Error::kind) (a unique
/// violation, a deadlock, ... the same on every database), its database
/// [`code`](Error::code) and [`constraint`](Error::constraint), or use the
/// predicates: [`is_closed`](Error::is_closed), [`is_timeout`](Error::is_timeout),
/// [`is_pool_timeout`](Error::is_pool_timeout), [`is_database`](Error::is_database),
/// [`is_retryable`](Error::is_retryable). `Display` says what went wrong in
/// plain words; the driver's own error is kept as the
/// [`source`](std::error::Error::source).
///
/// ```
/// # futures::executor::block_on(async {
/// use sqlaio::{Engine, ErrorKind};
///
/// let engine = Engine::builder().url("sqlite::memory:").build()?;
/// engine.execute("CREATE TABLE users (email TEXT UNIQUE)", ()).await?;
/// engine.execute("INSERT INTO users VALUES ('a@example.com')", ()).await?;
/// let err = engine
///     .execute("INSERT INTO users VALUES ('a@example.com')", ())
///     .await
///     .unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::UniqueViolation);
/// assert_eq!(err.code(), Some("2067")); // SQLite's extended result code
/// assert_eq!(err.table(), Some("users"));
/// # Ok::<(), sqlaio::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database rejected a statement or a call: syntax error, constraint
    /// violation, locked database, and so on. The message is the database's.
    #[error("database error: {message}")]
    Database {
        /// The database's own message.
        message: String,
        /// The driver's error.
        #[source]
        source: BoxError,
        /// What else the database said: the kind of failure, its code, and
        /// the constraint and table it names.
        details: Box<DatabaseDetails>,
    },
    /// Opening a connection failed.
    #[error("could not connect to {url}: {}", chain(source.as_ref()))]
    Connect {
        /// The URL, with any password redacted.
        url: String,
        /// The driver's or the operating system's error.
        #[source]
        source: BoxError,
    },
    /// The connection to the database server was lost (the server closed it,
    /// restarted, or the network failed). The connection is discarded from
    /// the pool; the next call opens a new one.
    #[error("the connection to the database was lost: {}", chain(.0.as_ref()))]
    ConnectionLost(#[source] BoxError),
    /// The connection, the result or the engine was closed before or during the call.
    #[error("{0} is closed")]
    Closed(&'static str),
    /// The database ended the open transaction on its own (a statement in it
    /// was interrupted or failed in a way that rolls back); statements are
    /// refused until the transaction is rolled back or dropped.
    #[error("the transaction was rolled back by the database; roll back or drop the Transaction before running more statements")]
    TransactionAborted,
    /// `begin` on a connection whose transaction is still open; nothing was
    /// sent to the database. Use `begin_nested` for a savepoint.
    #[error("a transaction is already open on this connection; use begin_nested for a savepoint")]
    TransactionOpen,
    /// A statement ran past its deadline and was interrupted.
    #[error("statement timed out")]
    Timeout,
    /// No pooled connection became free within the acquire timeout.
    #[error("timed out waiting for a pooled connection{}", last_connect_error.as_ref().map(|e| format!(" (last connect error: {e})")).unwrap_or_default())]
    PoolTimeout {
        /// The error of the last failed attempt to open a connection, if any.
        last_connect_error: Option<Box<Error>>,
    },
    /// The statement has a different number of placeholders than the parameters given.
    #[error("wrong number of parameters: the statement takes {expected}, {given} given")]
    ParameterCount {
        /// Placeholders in the statement.
        expected: usize,
        /// Parameters passed by the caller.
        given: usize,
    },
    /// A named parameter does not appear in the statement.
    #[error("the statement has no parameter named {0:?}")]
    ParameterName(String),
    /// A placeholder of the statement has no value among the named
    /// parameters given (the name is written as in the statement, `":id"`).
    #[error("no value given for the statement's parameter {0:?}")]
    ParameterMissing(String),
    /// A parameter could not be bound (for example a text value with a NUL byte where the driver forbids it).
    #[error("invalid parameter: {0}")]
    Parameter(String),
    /// A row has no column with this name.
    #[error("no column named {0:?} in the result")]
    ColumnName(String),
    /// A row has fewer columns than the index asked for.
    #[error("column index {index} is out of range: the row has {len} columns")]
    ColumnIndex {
        /// The index asked for.
        index: usize,
        /// How many columns the row has.
        len: usize,
    },
    /// A value could not be converted to the requested Rust type.
    #[error("cannot decode column {column:?}: {source}")]
    Decode {
        /// The column's name.
        column: String,
        /// What was wrong with the value.
        #[source]
        source: DecodeError,
    },
    /// A row could not become the requested type: a struct field with no
    /// column, a value of the wrong type or `NULL` for a field that is not an
    /// `Option`, or a tuple of another length than the row
    /// ([`Row::decode`](crate::Row::decode), and `Row::deserialize` with the `serde` feature).
    #[error("cannot deserialize {}: {message}", deserialize_place(column.as_deref(), field.as_deref()))]
    Deserialize {
        /// The column being read, when the error concerns one.
        column: Option<String>,
        /// The struct field being filled, when the error concerns one.
        field: Option<String>,
        /// What was wrong.
        message: String,
    },
    /// A query that must return a row returned none (for example [`scalar`](crate::CursorResult::scalar) into a non-`Option` type).
    #[error("the query returned no rows")]
    NoRows,
    /// User code passed to [`run_in_thread`](crate::Connection::run_in_thread) panicked.
    #[error("the closure panicked: {0}")]
    Panic(String),
    /// A statement built with a query builder cannot be rendered for the
    /// engine's database (the builder's own message).
    #[error("cannot build the statement for this database: {0}")]
    Statement(String),
    /// The engine's configuration is invalid (bad URL, zero connections, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The strategy could not run a worker (for example `TokioStrategy` outside a tokio runtime).
    #[error("the strategy could not start a worker: {0}")]
    Spawn(#[source] std::io::Error),
    /// A worker stopped without answering (its thread was torn down, for example by a runtime shutting down).
    #[error("the connection's worker stopped without answering")]
    WorkerGone,
    /// A [`run_in_thread`](crate::Connection::run_in_thread) closure expected another driver than the engine's.
    #[error("run_in_thread expected a {expected} connection, but this engine uses {actual}")]
    WrongDriver {
        /// The raw connection type the closure takes.
        expected: &'static str,
        /// The engine's driver.
        actual: &'static str,
    },
}

/// An error's message followed by its causes', as "a: b: c" (skipping a cause
/// whose message the previous one already ends with).
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// "column \"a\" into field `b`", or as much of it as is known.
fn deserialize_place(column: Option<&str>, field: Option<&str>) -> String {
    match (column, field) {
        (Some(c), Some(f)) => format!("column {c:?} into field `{f}`"),
        (Some(c), None) => format!("column {c:?}"),
        (None, Some(f)) => format!("field `{f}`"),
        (None, None) => "the row".to_owned(),
    }
}

impl Error {
    /// `true` when the connection, result or engine used was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed(_))
    }

    /// `true` when the connection to the database server was lost.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, Error::ConnectionLost(_))
    }

    /// `true` when a statement ran past its deadline.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout)
    }

    /// `true` when no pooled connection became free in time.
    pub fn is_pool_timeout(&self) -> bool {
        matches!(self, Error::PoolTimeout { .. })
    }

    /// `true` when the database itself reported the error.
    pub fn is_database(&self) -> bool {
        matches!(self, Error::Database { .. })
    }

    /// `true` when user code panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, Error::Panic(_))
    }

    /// What kind of failure this is, the same on every database: code that
    /// must handle a conflict or retry a transaction matches on this rather
    /// than on one database's codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Database { details, .. } => details.kind,
            Error::Connect { .. } => ErrorKind::ConnectionFailed,
            Error::ConnectionLost(_) => ErrorKind::ConnectionLost,
            Error::Closed(_) | Error::WorkerGone => ErrorKind::Closed,
            Error::TransactionAborted => ErrorKind::TransactionAborted,
            Error::Timeout => ErrorKind::Timeout,
            Error::PoolTimeout { .. } => ErrorKind::PoolTimeout,
            Error::ParameterCount { .. }
            | Error::ParameterName(_)
            | Error::ParameterMissing(_)
            | Error::Parameter(_) => ErrorKind::Parameter,
            Error::ColumnName(_)
            | Error::ColumnIndex { .. }
            | Error::Decode { .. }
            | Error::Deserialize { .. } => ErrorKind::Decode,
            Error::NoRows => ErrorKind::NoRows,
            Error::Config(_) => ErrorKind::Config,
            _ => ErrorKind::Other,
        }
    }

    /// The database's own code for the error: the SQLSTATE on PostgreSQL
    /// (`"23505"`), the extended result code on SQLite (`"2067"`), the error
    /// number on MySQL (`"1062"`). `None` for errors the database did not
    /// report.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Database { details, .. } => details.code.as_deref(),
            _ => None,
        }
    }

    /// The constraint the error names, where the database reports it
    /// (PostgreSQL names every constraint; SQLite names `CHECK` constraints).
    pub fn constraint(&self) -> Option<&str> {
        match self {
            Error::Database { details, .. } => details.constraint.as_deref(),
            _ => None,
        }
    }

    /// The table the error concerns, where the database reports it.
    pub fn table(&self) -> Option<&str> {
        match self {
            Error::Database { details, .. } => details.table.as_deref(),
            _ => None,
        }
    }

    /// `true` when running the same transaction again may well succeed: a
    /// serialization failure, a deadlock, or a lock that could not be taken
    /// in time. A lost connection is not retryable as such: a write may have
    /// committed before the connection went.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }

    /// A database error with nothing more known than its message.
    pub(crate) fn database(message: impl Into<String>, source: impl Into<BoxError>) -> Error {
        Error::Database {
            message: message.into(),
            source: source.into(),
            details: Box::default(),
        }
    }

    /// A database error, classified.
    pub(crate) fn database_with(
        message: impl Into<String>,
        source: impl Into<BoxError>,
        details: DatabaseDetails,
    ) -> Error {
        Error::Database {
            message: message.into(),
            source: source.into(),
            details: Box::new(details),
        }
    }

    pub(crate) fn panic(payload: Box<dyn std::any::Any + Send>) -> Error {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a non-string panic payload".to_owned()
        };
        Error::Panic(message)
    }

    pub(crate) fn decode(column: &str, source: DecodeError) -> Error {
        Error::Decode {
            column: column.to_owned(),
            source,
        }
    }
}

/// What kind of failure an [`Error`] is, the same on every database; see
/// [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A unique or primary key constraint was violated.
    UniqueViolation,
    /// A foreign key constraint was violated.
    ForeignKeyViolation,
    /// A `NOT NULL` constraint was violated.
    NotNullViolation,
    /// A `CHECK` constraint was violated.
    CheckViolation,
    /// The transaction could not be serialized with concurrent ones
    /// (PostgreSQL's `SERIALIZABLE` and `REPEATABLE READ`): run it again.
    SerializationFailure,
    /// The database broke a deadlock by failing this transaction: run it again.
    Deadlock,
    /// A lock could not be taken in time: SQLite's busy or locked database,
    /// PostgreSQL's `lock_timeout` or `NOWAIT`, MySQL's lock wait timeout.
    LockTimeout,
    /// A write in a read-only transaction, session or database.
    ReadOnly,
    /// The database cancelled the statement (a server-side timeout, or
    /// another session cancelled it).
    QueryCanceled,
    /// The statement ran past sqlaio's statement timeout.
    Timeout,
    /// No pooled connection became free within the acquire timeout.
    PoolTimeout,
    /// A connection could not be opened.
    ConnectionFailed,
    /// The connection to the database was lost.
    ConnectionLost,
    /// The connection, result or engine was closed.
    Closed,
    /// The database ended the transaction on its own; roll it back.
    TransactionAborted,
    /// The SQL is not valid: a syntax error, or a table or column that does not exist.
    Syntax,
    /// A parameter was missing, extra or could not be bound.
    Parameter,
    /// A value or row could not become the requested Rust type.
    Decode,
    /// A query that had to return a row returned none.
    NoRows,
    /// The engine's configuration is invalid.
    Config,
    /// Anything else.
    #[default]
    Other,
}

impl ErrorKind {
    /// See [`Error::is_retryable`].
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::SerializationFailure | ErrorKind::Deadlock | ErrorKind::LockTimeout
        )
    }
}

/// What a database said about an error besides its message: see
/// [`Error::kind`], [`Error::code`], [`Error::constraint`] and [`Error::table`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatabaseDetails {
    /// The portable kind of failure.
    pub kind: ErrorKind,
    /// The database's own code for it.
    pub code: Option<String>,
    /// The constraint it names.
    pub constraint: Option<String>,
    /// The table it names.
    pub table: Option<String>,
}

impl DatabaseDetails {
    /// Details of this kind and code.
    pub fn new(kind: ErrorKind, code: impl Into<String>) -> DatabaseDetails {
        DatabaseDetails {
            kind,
            code: Some(code.into()),
            constraint: None,
            table: None,
        }
    }
}

/// Why a [`Value`](crate::Value) could not become the requested Rust type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    message: String,
}

impl DecodeError {
    /// A value of kind `found` where `expected` was asked for.
    pub fn mismatch(expected: &str, found: &str) -> DecodeError {
        DecodeError {
            message: format!("expected {expected}, found {found}"),
        }
    }

    /// A free-form reason, for custom [`FromValue`](crate::FromValue) implementations.
    pub fn new(message: impl Into<String>) -> DecodeError {
        DecodeError {
            message: message.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for DecodeError {}
