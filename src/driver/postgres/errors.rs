//! PostgreSQL's errors as sqlaio's: classified by SQLSTATE, with the
//! constraint and table the server names.

use std::error::Error as StdError;

use postgres::error::SqlState;

use crate::error::{DatabaseDetails, Error, ErrorKind};

impl From<postgres::Error> for Error {
    /// Lets `run_in_thread` closures use `?` on `postgres` calls.
    fn from(e: postgres::Error) -> Error {
        classify(e)
    }
}

/// `true` for a server error after which the session is gone: a FATAL or
/// PANIC, an operator intervention (57P: terminated, shutting down) or a
/// connection exception (08).
fn ends_session(db: &postgres::error::DbError) -> bool {
    let code = db.code().code();
    matches!(db.severity(), "FATAL" | "PANIC") || code.starts_with("57P") || code.starts_with("08")
}

pub(super) fn classify(e: postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        if ends_session(db) {
            return Error::ConnectionLost(Box::new(e));
        }
        let mut message = db.message().to_owned();
        if let Some(detail) = db.detail() {
            message.push_str(": ");
            message.push_str(detail);
        }
        let details = DatabaseDetails {
            kind: kind(db.code()),
            code: Some(db.code().code().to_owned()),
            constraint: db.constraint().map(str::to_owned),
            table: db.table().map(str::to_owned),
        };
        return Error::database_with(message, e, details);
    }
    if e.is_closed() {
        return Error::ConnectionLost(Box::new(e));
    }
    let text = e.to_string();
    if text.starts_with("error serializing parameter") {
        let reason = e.source().map_or_else(|| text.clone(), |s| s.to_string());
        let index = text
            .trim_start_matches("error serializing parameter ")
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse::<usize>().ok());
        return Error::Parameter(match index {
            Some(i) => format!("parameter ${}: {reason}", i + 1),
            None => reason,
        });
    }
    if e.source().is_some_and(|s| s.is::<std::io::Error>()) {
        return Error::ConnectionLost(Box::new(e));
    }
    Error::database(text, e)
}

/// The portable kind of a SQLSTATE.
pub(super) fn kind(code: &SqlState) -> ErrorKind {
    match code.code() {
        "23505" => ErrorKind::UniqueViolation,
        "23503" => ErrorKind::ForeignKeyViolation,
        "23502" => ErrorKind::NotNullViolation,
        "23514" => ErrorKind::CheckViolation,
        "40001" => ErrorKind::SerializationFailure,
        "40P01" => ErrorKind::Deadlock,
        "55P03" => ErrorKind::LockTimeout,
        "25006" => ErrorKind::ReadOnly,
        "57014" => ErrorKind::QueryCanceled,
        // Syntax errors and access rule violations: 42601, 42P01 (no such table), 42703, ...
        c if c.starts_with("42") => ErrorKind::Syntax,
        _ => ErrorKind::Other,
    }
}
