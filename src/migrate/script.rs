//! Running a migration file (several statements) as one script.
//!
//! `execute` runs one statement, so a file goes to the driver's own script
//! call (rusqlite's `execute_batch`, the `postgres` client's
//! `batch_execute`, a multi-statement query on MySQL), which also says
//! whether the script left a transaction open.

use crate::connection::Connection;
use crate::error::Result;

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
pub(crate) async fn run_script(conn: &Connection, sql: String) -> Result<After> {
    Ok(if conn.execute_script(sql).await? {
        After::InTransaction
    } else {
        After::Autocommit
    })
}
