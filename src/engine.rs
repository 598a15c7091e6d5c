//! [`Engine`]: the entry point, a pool of connections to one database.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::builder::EngineBuilder;
use crate::connection::{prepare, Begin, ConnRef, Connection};
use crate::error::{Error, Result};
use crate::params::Params;
use crate::pool::{Pool, PoolStatus};
use crate::result::CursorResult;
use crate::sql::{Dialect, IntoSql, Sql};
use crate::transaction::Transaction;
use crate::tx_options::TxOptions;
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
    /// The read replicas, when the engine has any.
    reads: Option<Arc<dyn ReadSide>>,
}

/// What an engine keeps of its read replicas (`crate::read`): closed with
/// the engine, and read back by the read view.
pub(crate) trait ReadSide: Any + Send + Sync {
    /// Closes the replicas' pools.
    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// For the read view to downcast.
    fn as_any(&self) -> &dyn Any;
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
    /// The engine over `pool`, with read replicas.
    pub(crate) fn with_reads(pool: Pool, reads: Option<Arc<dyn ReadSide>>) -> Engine {
        Engine {
            inner: Arc::new(Handle {
                pool: Arc::new(pool),
                reads,
            }),
        }
    }

    /// The read replicas, when the engine has any.
    pub(crate) fn read_side(&self) -> Option<&dyn ReadSide> {
        self.inner.reads.as_deref()
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

    /// [`begin`](Engine::begin) with `options`: an isolation level, read
    /// only, PostgreSQL's `DEFERRABLE`, SQLite's locking.
    ///
    /// # Errors
    /// As [`connect`](Engine::connect) and [`Connection::begin_with`].
    ///
    /// # Cancellation
    /// As [`Connection::begin`].
    pub async fn begin_with(&self, options: TxOptions) -> Result<Transaction<'static>> {
        let conn = self.connect().await?;
        let level = conn.open_transaction(Begin::With(options)).await?;
        Ok(Transaction::new(ConnRef::Owned(conn), level))
    }

    /// Runs `work` in a transaction of its own and commits it when `work`
    /// returns `Ok`; `work` gets the transaction behind an `Arc`, so that its
    /// future owns what it uses (and is `Send` when `work` is); rolls it back when `work` returns an error or panics
    /// (a panic becomes [`Error::Panic`]). When the transaction fails with
    /// an error that [`is_retryable`](Error::is_retryable) (a
    /// serialization failure, a deadlock, a lock timeout: at `BEGIN`, in
    /// `work` or at `COMMIT`), it runs again from the start, up to 3 times
    /// in all, waiting 10 ms and then twice as long before each new attempt;
    /// [`transaction_with`](Engine::transaction_with) changes that. `work`
    /// must therefore be safe to run more than once: keep side effects
    /// outside the database out of it.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
    /// engine.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)", ()).await?;
    /// engine.execute("INSERT INTO accounts VALUES (1, 100), (2, 0)", ()).await?;
    ///
    /// let moved = engine
    ///     .transaction(|tx| async move {
    ///         tx.execute("UPDATE accounts SET balance = balance - 30 WHERE id = 1", ()).await?;
    ///         tx.execute("UPDATE accounts SET balance = balance + 30 WHERE id = 2", ()).await?;
    ///         Ok(30)
    ///     })
    ///     .await?;
    /// assert_eq!(moved, 30);
    /// assert_eq!(engine.scalar::<i64>("SELECT balance FROM accounts WHERE id = 2", ()).await?, 30);
    /// # Ok::<(), sqlaio::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// When to use which: [`begin`](Engine::begin) gives you the
    /// transaction to commit or roll back yourself, across whatever code you
    /// like; `transaction` is for a unit of work that should simply happen,
    /// retried where the database asks for it.
    ///
    /// # Errors
    /// The error of the last attempt: `work`'s own, or as
    /// [`begin`](Engine::begin) and [`Transaction::commit`];
    /// [`Error::Statement`] when `work` kept a clone of the transaction's
    /// `Arc` past its end (the transaction is then rolled back).
    ///
    /// # Cancellation
    /// Dropping the future drops the transaction, which rolls it back before
    /// its connection serves anyone else.
    pub async fn transaction<T, F, Fut>(&self, work: F) -> Result<T>
    where
        F: FnMut(Arc<Transaction<'static>>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.transaction_with(TxOptions::new(), work).await
    }

    /// [`transaction`](Engine::transaction) with `options`: how the
    /// transaction begins, and how many attempts at most
    /// ([`TxOptions::max_attempts`]).
    ///
    /// # Errors
    /// As [`transaction`](Engine::transaction).
    ///
    /// # Cancellation
    /// As [`transaction`](Engine::transaction).
    pub async fn transaction_with<T, F, Fut>(&self, options: TxOptions, mut work: F) -> Result<T>
    where
        F: FnMut(Arc<Transaction<'static>>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            let result = match self.begin_with(options).await {
                Ok(tx) => {
                    let tx = Arc::new(tx);
                    let outcome = catch_panic(work(tx.clone())).await;
                    let Ok(tx) = Arc::try_unwrap(tx) else {
                        // Dropping the last clone rolls the transaction back.
                        return Err(Error::Statement(
                            "the transaction's Arc outlived the closure given to Engine::transaction"
                                .into(),
                        ));
                    };
                    match outcome {
                        Ok(Ok(value)) => tx.commit().await.map(|()| value),
                        Ok(Err(e)) => {
                            let _ = tx.rollback().await;
                            Err(e)
                        }
                        Err(panic) => {
                            let _ = tx.rollback().await;
                            Err(Error::panic(panic))
                        }
                    }
                }
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.is_retryable() && attempt < options.max_attempts => {
                    attempt += 1;
                    self.inner.pool.timer.sleep(options.backoff(attempt)).await;
                }
                result => return result,
            }
        }
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
        if let Some(reads) = self.read_side() {
            reads.close().await;
        }
        self.inner.pool.close().await;
        Ok(())
    }

    /// Closes this engine's own pool (a replica's, which has no replicas).
    pub(crate) async fn close_pool(&self) {
        self.inner.pool.close().await;
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

/// Runs `future`, turning a panic in it into an `Err` with its payload.
async fn catch_panic<F: Future>(future: F) -> std::thread::Result<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(value)) => std::task::Poll::Ready(Ok(value)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    })
    .await
}
