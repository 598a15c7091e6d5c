//! Running a migration file (several statements) as one script.
//!
//! `execute` runs one statement, so a file goes to the driver's own script
//! call through [`Connection::run_in_thread`]: rusqlite's `execute_batch`, or
//! the `postgres` client's `batch_execute` (the simple query protocol). The
//! dialect picks which, and it is the only place the migrations name a
//! driver.

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::sql::Dialect;

/// What a script left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    /// The transaction the script ran in is still open.
    InTransaction,
    /// No transaction is open: the script committed or rolled back the one
    /// it ran in, or it ran outside one.
    Autocommit,
}

/// Runs `sql`, which may hold several statements separated by `;`, on
/// `conn`, and says whether a transaction is still open afterwards.
pub(crate) async fn run_script(conn: &Connection, dialect: Dialect, sql: String) -> Result<After> {
    match dialect {
        #[cfg(feature = "sqlite")]
        Dialect::Sqlite => {
            conn.run_in_thread(move |raw: &mut rusqlite::Connection| {
                raw.execute_batch(&sql)?;
                Ok(if raw.is_autocommit() {
                    After::Autocommit
                } else {
                    After::InTransaction
                })
            })
            .await
        }
        #[cfg(feature = "postgres")]
        Dialect::Postgres => {
            conn.run_in_thread(move |raw: &mut postgres::Client| {
                raw.batch_execute(&sql)?;
                // The client cannot tell whether a transaction is open; a
                // savepoint can only be taken inside one.
                match raw.batch_execute(
                    "SAVEPOINT sqlaio_script_check; RELEASE SAVEPOINT sqlaio_script_check",
                ) {
                    Ok(()) => Ok(After::InTransaction),
                    Err(e)
                        if e.code()
                            == Some(&postgres::error::SqlState::NO_ACTIVE_SQL_TRANSACTION) =>
                    {
                        Ok(After::Autocommit)
                    }
                    Err(e) => Err(Error::from(e)),
                }
            })
            .await
        }
        #[allow(unreachable_patterns)]
        other => {
            let _ = (conn, sql);
            Err(Error::Config(format!(
                "running SQL scripts needs the driver feature of the {other:?} database"
            )))
        }
    }
}
