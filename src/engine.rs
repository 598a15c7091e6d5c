//! [`Engine`]: the entry point, a pool of connections to one database.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::builder::EngineBuilder;
use crate::connection::{prepare, Begin, ConnRef, Connection};
use crate::error::{Error, Result};
use crate::params::Params;
use crate::pool::{Pool, PoolStatus};
use crate::result::CursorResult;
use crate::sql::{Dialect, IntoSql, Sql};
use crate::transaction::Transaction;
use crate::value::FromValue;

/// The entry point: a pool of connections to one database, and the strategy
/// that runs their workers.
///
/// Cheap to clone (clones share the pool), `Send + Sync`. Connections open
/// lazily, on first use.
///
/// ```
/// # futures::executor::block_on(async {
/// use sqlaio::Engine;
///
/// let engine = Engine::builder().url("sqlite::memory:").build()?;
/// engine.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)", ()).await?;
/// engine.execute("INSERT INTO users (name) VALUES (?1)", ("Jeremy Goodwin",)).await?;
/// assert_eq!(engine.scalar::<i64>("SELECT count(*) FROM users", ()).await?, 1);
/// assert!(engine.has_table("users").await?);
/// engine.close().await?;
/// # Ok::<(), sqlaio::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Handle>,
}

/// The pool as the engine's handles hold it: once the last one is dropped,
/// idle connections close at once, and in-use ones as they are returned.
struct Handle {
    pool: Arc<Pool>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.pool.orphan();
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("url", &self.inner.pool.url)
            .field("strategy", &self.inner.pool.strategy)
            .field("max_connections", &self.inner.pool.max)
            .finish()
    }
}

impl Engine {
    /// The engine over `pool`.
    pub(crate) fn new(pool: Pool) -> Engine {
        Engine {
            inner: Arc::new(Handle {
                pool: Arc::new(pool),
            }),
        }
    }

    /// A builder with every setting at its default.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The engine's URL, with any password redacted.
    pub fn url(&self) -> &str {
        &self.inner.pool.url
    }

    /// The SQL dialect of the engine's database.
    pub fn dialect(&self) -> Dialect {
        self.inner.pool.dialect()
    }

    /// The largest number of connections the pool opens.
    pub fn max_connections(&self) -> usize {
        self.inner.pool.max
    }

    /// Takes a connection from the pool, opening one if none is idle and the
    /// pool is not full, or waiting for one to be returned otherwise.
    ///
    /// # Errors
    /// [`Error::Connect`] when the database cannot be opened;
    /// [`Error::Spawn`] when the strategy cannot run a worker;
    /// [`Error::Closed`] after [`close`](Engine::close).
    ///
    /// # Cancellation
    /// Dropping the future gives up the wait; a connection being opened for
    /// it is closed and its worker exits.
    pub async fn connect(&self) -> Result<Connection> {
        Ok(Connection::new(self.inner.pool.acquire().await?))
    }

    /// Runs one statement on a pooled connection, in autocommit.
    ///
    /// The result holds the connection until its rows are drained, or until
    /// it is closed or dropped. While every connection is taken, statements
    /// run this way share them: a statement queues behind others on the
    /// least busy connection instead of waiting for one to come back, so
    /// many short statements from many tasks keep every connection busy.
    /// Such a statement runs only where no transaction is open and no
    /// earlier result still has rows on the connection; otherwise it waits
    /// for a connection of its own. See the pooling chapter of the guide.
    ///
    /// # Errors
    /// As [`connect`](Engine::connect) and [`Connection::execute`].
    ///
    /// # Cancellation
    /// As [`Connection::execute`].
    pub async fn execute(
        &self,
        sql: impl IntoSql,
        params: impl Params,
    ) -> Result<CursorResult<'static>> {
        let sql = sql.into_sql(self.dialect())?;
        let lane = self.inner.pool.lane().await?;
        let session = lane.session();
        let sql = prepare(session.dialect(), sql, params.into_parameters())?;
        let timeout = sql.timeout;
        let (mut header, cursor, trace) = session.execute(sql, true).await?;
        match header.bounced.take() {
            None => {
                if !header.batch.done || lane.in_transaction() {
                    lane.pin();
                }
                Ok(CursorResult::new(
                    ConnRef::Lane(lane),
                    header,
                    cursor,
                    trace,
                ))
            }
            Some(bounced) => {
                lane.pin();
                drop(lane);
                let (text, params) = *bounced;
                let conn = self.connect().await?;
                let sql = Sql {
                    text,
                    params: Some(params),
                    timeout,
                };
                let (header, cursor, trace) = conn.run(sql).await?;
                Ok(CursorResult::new(
                    ConnRef::Owned(conn),
                    header,
                    cursor,
                    trace,
                ))
            }
        }
    }

    /// Runs a query on a pooled connection and returns the first column of its first row.
    ///
    /// # Errors
    /// As [`Connection::scalar`].
    ///
    /// # Cancellation
    /// As [`Connection::execute`].
    pub async fn scalar<T: FromValue>(&self, sql: impl IntoSql, params: impl Params) -> Result<T> {
        self.execute(sql, params).await?.scalar().await
    }

    /// Begins a transaction on a connection of its own (`BEGIN IMMEDIATE` on
    /// SQLite, as [`Connection::begin`]).
    ///
    /// The transaction owns the connection and returns it to the pool when
    /// it ends; dropping it uncommitted rolls back first.
    ///
    /// # Errors
    /// As [`connect`](Engine::connect) and [`Connection::begin`].
    ///
    /// # Cancellation
    /// As [`Connection::begin`].
    pub async fn begin(&self) -> Result<Transaction<'static>> {
        let conn = self.connect().await?;
        let level = conn.open_transaction(Begin::Immediate).await?;
        Ok(Transaction::new(ConnRef::Owned(conn), level))
    }

    /// The names of the database's tables, sorted.
    ///
    /// # Errors
    /// As [`connect`](Engine::connect) and [`Connection::table_names`].
    ///
    /// # Cancellation
    /// Dropping the future only discards the answer.
    pub async fn table_names(&self) -> Result<Vec<String>> {
        self.connect().await?.table_names().await
    }

    /// `true` when a table of this name exists.
    ///
    /// # Errors
    /// As [`connect`](Engine::connect) and [`Connection::table_names`].
    ///
    /// # Cancellation
    /// Dropping the future only discards the answer.
    pub async fn has_table(&self, name: &str) -> Result<bool> {
        self.connect().await?.has_table(name).await
    }

    /// Runs `f` with a pooled raw driver connection on its worker thread.
    ///
    /// See [`Connection::run_in_thread`].
    ///
    /// # Errors
    /// As [`connect`](Engine::connect) (converted into `E`), then whatever
    /// [`Connection::run_in_thread`] returns.
    ///
    /// # Cancellation
    /// As [`Connection::run_in_thread`].
    pub async fn run_in_thread<R, T, E, F>(&self, f: F) -> Result<T, E>
    where
        R: Any,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&mut R) -> Result<T, E> + Send + 'static,
    {
        let conn = self.connect().await?;
        conn.run_in_thread(f).await
    }

    /// Closes the engine: closes every connection, idle or in use, and waits
    /// until every worker has stopped and its thread is released, and every
    /// thread the engine started of its own (its timer, PostgreSQL cancels
    /// still being sent) has exited.
    ///
    /// Statements still running get the [close
    /// timeout](EngineBuilder::close_timeout) to finish; then they are
    /// interrupted on the database. Afterwards every call on
    /// the engine, its clones and its connections fails with
    /// [`Error::Closed`]. Closing twice is not an error.
    ///
    /// # Cancellation
    /// Dropping the future stops the waiting only; the engine stays closed
    /// and its workers still stop.
    pub async fn close(&self) -> Result<()> {
        self.inner.pool.close().await;
        Ok(())
    }

    /// `true` after [`close`](Engine::close).
    pub fn is_closed(&self) -> bool {
        self.inner.pool.is_closed()
    }

    /// How full the pool is: connections open, idle, in use, and callers waiting.
    pub fn pool_status(&self) -> PoolStatus {
        self.inner.pool.status()
    }

    /// How many worker threads the engine runs right now (one per open connection).
    pub fn worker_count(&self) -> usize {
        self.inner.pool.tracker.live()
    }
}
