//! [`Transaction`]: a `BEGIN` or `SAVEPOINT` that cannot leak.

use std::fmt;
use std::ops::Deref;

use crate::connection::{ConnRef, Connection, Level};
use crate::error::Result;

/// An open transaction or savepoint.
///
/// It derefs to [`Connection`], so statements run on it directly. End it
/// with [`commit`](Transaction::commit) or [`rollback`](Transaction::rollback);
/// both consume it.
///
/// # Dropping
/// `Drop` cannot await, so dropping an uncommitted transaction queues a
/// rollback (`ROLLBACK`, or `ROLLBACK TO` for a savepoint) ahead of the
/// connection's next request: nothing else ever runs inside an abandoned
/// transaction, and a connection never returns to the pool inside one.
///
/// ```
/// # futures::executor::block_on(async {
/// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
/// engine.execute("CREATE TABLE t (x INTEGER)", ()).await?;
/// let conn = engine.connect().await?;
/// let tx = conn.begin().await?;
/// tx.execute("INSERT INTO t VALUES (1)", ()).await?;
/// {
///     let nested = tx.begin_nested().await?;
///     nested.execute_many("INSERT INTO t VALUES (?1)", [(2,), (3,)]).await?;
///     // dropped: rolled back to the savepoint
/// }
/// tx.commit().await?;
/// assert_eq!(conn.scalar::<i64>("SELECT count(*) FROM t", ()).await?, 1);
/// # Ok::<(), sqlaio::Error>(())
/// # }).unwrap();
/// ```
pub struct Transaction<'c> {
    conn: ConnRef<'c>,
    level: Level,
    active: bool,
}

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("depth", &self.level.depth)
            .field("savepoint", &self.level.savepoint)
            .field("active", &self.is_active())
            .finish()
    }
}

impl<'c> Transaction<'c> {
    /// Wraps a connection whose transaction at `level` was just opened.
    pub(crate) fn new(conn: ConnRef<'c>, level: Level) -> Transaction<'c> {
        Transaction {
            conn,
            level,
            active: true,
        }
    }

    /// Commits: `COMMIT`, or `RELEASE SAVEPOINT` for a nested transaction.
    ///
    /// # Errors
    /// The database's error when the commit fails; the transaction is then
    /// rolled back and the connection is usable, outside any transaction
    /// (for a savepoint: back where the savepoint began).
    ///
    /// # Cancellation
    /// Once the `COMMIT` was sent, it is never interrupted: dropping the
    /// future leaves it to complete or fail as a whole on the worker. If the
    /// future is dropped before it was sent, the transaction rolls back.
    pub async fn commit(mut self) -> Result<()> {
        self.finish(true).await
    }

    /// Rolls back: `ROLLBACK`, or `ROLLBACK TO SAVEPOINT` for a nested transaction.
    ///
    /// # Errors
    /// The database's error when the rollback fails. Rolling back a
    /// transaction the database already ended (see
    /// [`Error::TransactionAborted`](crate::Error::TransactionAborted)) succeeds.
    ///
    /// # Cancellation
    /// As [`commit`](Transaction::commit): once sent, the rollback completes.
    pub async fn rollback(mut self) -> Result<()> {
        self.finish(false).await
    }

    async fn finish(&mut self, commit: bool) -> Result<()> {
        // `end_transaction` lowers the depth once the request is sent; from then
        // on `Drop` does not queue another rollback.
        let result = self.end(commit).await;
        self.active = false;
        result
    }

    async fn end(&self, commit: bool) -> Result<()> {
        self.connection().end_transaction(self.level, commit).await
    }

    fn connection(&self) -> &Connection {
        match self.conn.connection() {
            Some(conn) => conn,
            None => unreachable!("a transaction holds its connection until it ends"),
        }
    }

    /// Begins a nested transaction (a `SAVEPOINT`) inside this one.
    ///
    /// # Errors
    /// As [`Connection::begin_nested`].
    ///
    /// # Cancellation
    /// As [`Connection::begin`].
    pub async fn begin_nested(&self) -> Result<Transaction<'_>> {
        self.connection().begin_nested().await
    }

    /// `true` until the transaction is committed or rolled back, and while
    /// the database still has it open.
    pub fn is_active(&self) -> bool {
        self.active && {
            let conn = self.connection();
            !conn.is_closed() && conn.in_transaction()
        }
    }
}

impl Deref for Transaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.connection()
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.active {
            self.connection().abandon_transaction(self.level);
        }
    }
}
