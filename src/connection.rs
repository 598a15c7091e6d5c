//! [`Connection`]: one pooled connection and the statements run on it.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_channel::Sender;

use crate::error::{Error, Result};
use crate::params::{Parameters, Params};
use crate::pool::Lane;
use crate::result::CursorResult;
use crate::session::{InUse, Started};
use crate::sql::{Dialect, IntoSql, Sql};
use crate::trace::{RowsTrace, StatementTrace};
use crate::transaction::Transaction;
use crate::tx_options::{Locking, TxOptions};
use crate::value::FromValue;
use crate::worker::{Feed, Header, TxOp};

/// Parameter sets in the first chunk of an `execute_many`, sent with its
/// request; the rest follow in chunks while the worker runs the first.
const FIRST_CHUNK: usize = 64;
/// Parameter sets in a later chunk, at most: each chunk is twice as large as
/// the one before, up to this.
const MAX_CHUNK: usize = 1024;

/// Converts the next `size` sets (fewer at the end).
fn chunk<P: Params>(sets: &mut impl Iterator<Item = P>, size: usize) -> Vec<Parameters> {
    sets.take(size).map(|set| set.into_parameters()).collect()
}

/// Rewrites `sql`'s `:name` placeholders for `dialect` once, and each named
/// set into the positional values it binds; every set must name the same
/// placeholders. Lists are refused: their lengths would change the text.
fn rename_sets(dialect: Dialect, sql: &str, sets: &mut [Parameters]) -> Result<String> {
    let mut text: Option<String> = None;
    for set in sets.iter_mut() {
        if let Some((name, _)) = set.lists.first() {
            return Err(Error::Parameter(format!(
                "execute_many cannot expand the list {name}: give each set single values"
            )));
        }
        let mut this = sql.to_owned();
        crate::placeholders::for_dialect(dialect, &mut this, set)?;
        match &text {
            None => text = Some(this),
            Some(first) if *first == this => {}
            Some(_) => {
                return Err(Error::Parameter(
                    "execute_many's parameter sets must all name the same placeholders".into(),
                ))
            }
        }
    }
    Ok(text.unwrap_or_else(|| sql.to_owned()))
}

/// Sends the rest of an `execute_many`'s parameter sets (if `feed` is there
/// to take them) in chunks, then their end; stops early when the worker
/// stopped the statement (its reply says why).
/// Returns the number of sets sent.
fn send_chunks<P: Params>(feed: Option<Sender<Feed>>, mut sets: impl Iterator<Item = P>) -> usize {
    let Some(feed) = feed else {
        return 0;
    };
    let mut sent = 0;
    let mut size = FIRST_CHUNK;
    loop {
        size = (size * 2).min(MAX_CHUNK);
        let chunk = chunk(&mut sets, size);
        let message = if chunk.is_empty() {
            Feed::End
        } else {
            Feed::Sets(chunk)
        };
        let (end, count) = match &message {
            Feed::End => (true, 0),
            Feed::Sets(chunk) => (false, chunk.len()),
        };
        if feed.try_send(message).is_err() || end {
            return sent;
        }
        sent += count;
    }
}

/// The connection behind a result or a transaction: borrowed from the
/// caller, or owned (from [`Engine`](crate::Engine) methods) and returned to
/// the pool when no longer needed.
///
/// No `Drop` impl here on purpose: a borrowed result's borrow ends at its
/// last use, not at the end of its scope.
// An owned connection stays inline: boxing it would cost an allocation per
// engine-level transaction and result, to save stack space in one value.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ConnRef<'c> {
    Borrowed(&'c Connection),
    Owned(Connection),
    /// A pooled connection shared with other engine-level statements.
    Lane(Arc<Lane>),
    Released,
}

impl ConnRef<'_> {
    /// The session the statements go through; `None` once released.
    pub(crate) fn session(&self) -> Option<&InUse> {
        match self {
            ConnRef::Borrowed(c) => Some(&c.session),
            ConnRef::Owned(c) => Some(&c.session),
            ConnRef::Lane(lane) => Some(lane.session()),
            ConnRef::Released => None,
        }
    }

    /// The connection of a transaction (never a lane).
    pub(crate) fn connection(&self) -> Option<&Connection> {
        match self {
            ConnRef::Borrowed(c) => Some(c),
            ConnRef::Owned(c) => Some(c),
            ConnRef::Lane(_) | ConnRef::Released => None,
        }
    }

    /// Gives an owned connection (or a place on a lane) back; a borrowed
    /// one stays borrowed.
    pub(crate) fn release(&mut self) {
        if matches!(self, ConnRef::Owned(_) | ConnRef::Lane(_)) {
            *self = ConnRef::Released;
        }
    }
}

/// A connection taken from an [`Engine`](crate::Engine)'s pool.
///
/// Every method sends one request to the connection's worker thread and
/// awaits its answer; the driver itself never runs on the caller's thread.
/// Methods take `&self`, and a connection runs one statement at a time; use
/// more connections (or [`Engine::execute`](crate::Engine::execute)) for
/// concurrency. A connection shared by several tasks (in an `Arc`) queues
/// their statements on its worker, in the order sent: the cheapest way to
/// run many short statements, but the next statement closes a result that
/// still has rows on the worker, and an open transaction takes in every
/// task's statements (see the pooling chapter of the guide).
///
/// Dropping a `Connection` returns it to the pool; an open transaction is
/// rolled back first.
///
/// # Cancellation
/// Dropping the future of any method before it completes never corrupts the
/// connection: a request that was not started yet is skipped, a running
/// statement is interrupted on the database (see
/// [`interrupt_on_drop`](crate::EngineBuilder::interrupt_on_drop)), and the
/// next call always receives its own answer. A cancelled
/// [`begin`](Connection::begin) is rolled back before the next request.
///
/// ```
/// # futures::executor::block_on(async {
/// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
/// let conn = engine.connect().await?;
/// conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)", ()).await?;
/// let result = conn.execute("INSERT INTO users (name) VALUES (?1)", ("Dana Whitaker",)).await?;
/// assert_eq!(result.last_insert_id(), Some(1));
/// let name: String = conn.scalar("SELECT name FROM users WHERE id = ?1", (1,)).await?;
/// assert_eq!(name, "Dana Whitaker");
/// conn.close().await?;
/// assert!(conn.is_closed());
/// # Ok::<(), sqlaio::Error>(())
/// # }).unwrap();
/// ```
pub struct Connection {
    session: InUse,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Connection");
        self.session.debug_fields(&mut d);
        d.finish()
    }
}

impl Connection {
    pub(crate) fn new(session: InUse) -> Connection {
        Connection { session }
    }

    /// The server this connection reached: its host, port and role
    /// (PostgreSQL, where a multi-host URL may reach any of its hosts);
    /// `None` for databases that are not servers (SQLite), drivers that do
    /// not report it, or after [`close`](Connection::close).
    pub fn server(&self) -> Option<crate::ServerInfo> {
        self.session.server()
    }

    /// Runs one statement on this connection.
    pub(crate) async fn run(&self, sql: Sql) -> Result<(Header, u64, RowsTrace)> {
        self.session.execute(sql, false).await
    }

    /// Runs one statement with bound parameters and returns its result.
    ///
    /// Placeholders are the database's own (`?1`, `:name` for SQLite, `$1`
    /// for PostgreSQL). The answer carries the first rows, so a small query
    /// costs one trip to the worker. The result borrows the connection; the
    /// next statement run on the connection while the result still has rows
    /// closes it (its later fetches fail with [`Error::Closed`]), so drain or
    /// drop a result before starting the next statement.
    ///
    /// `sql` is a `&str`, a `String`, or a [`Sql`] with per-call options.
    ///
    /// # Errors
    /// [`Error::Database`] with the database's message for invalid SQL or a
    /// failed statement; [`Error::ParameterCount`] / [`Error::ParameterName`]
    /// for parameters that do not fit; [`Error::Timeout`] past the statement
    /// timeout; [`Error::Closed`] after [`close`](Connection::close).
    ///
    /// # Cancellation
    /// Dropping the future before the worker starts the statement skips it;
    /// dropping it while the statement runs interrupts the statement on the
    /// database (aimed at this statement only), unless the engine was built
    /// with [`interrupt_on_drop(false)`](crate::EngineBuilder::interrupt_on_drop),
    /// in which case it runs to completion and its answer is discarded. The
    /// connection is usable at once either way.
    pub async fn execute(
        &self,
        sql: impl IntoSql,
        params: impl Params,
    ) -> Result<CursorResult<'_>> {
        let sql = prepare(self.session.dialect(), sql, params.into_parameters())?;
        let (header, cursor, trace) = self.run(sql).await?;
        Ok(CursorResult::new(
            ConnRef::Borrowed(self),
            header,
            cursor,
            trace,
        ))
    }

    /// Runs one statement once for each parameter set, on the worker, in one request.
    ///
    /// The batch is atomic: it runs inside its own transaction (or a savepoint
    /// when a transaction is open) and either every set applies or none does.
    /// The result's [`rowcount`](CursorResult::rowcount) is the total of rows affected.
    ///
    /// The worker starts on the first sets while this call converts the
    /// rest, so a large batch costs little more than its statements. The
    /// iterator runs to its end before the call first waits, while the
    /// worker may already hold the batch's transaction open: it should not
    /// do anything slow.
    ///
    /// # Errors
    /// The first failing set's error; nothing of the batch remains applied.
    /// Past the statement timeout, which covers the whole batch,
    /// [`Error::Timeout`].
    ///
    /// # Cancellation
    /// As [`execute`](Connection::execute); an interrupted batch is rolled
    /// back as a whole.
    pub async fn execute_many<P: Params>(
        &self,
        sql: impl IntoSql,
        params: impl IntoIterator<Item = P>,
    ) -> Result<CursorResult<'_>> {
        let (trace, started) = self.start_many(sql, params)?;
        let rowcount = match started {
            Ok(started) => self.session.finish(started).await,
            Err(e) => Err(e),
        };
        drop(trace.finish(&rowcount, |_| None));
        let rowcount = rowcount?;
        Ok(CursorResult::done(ConnRef::Borrowed(self), rowcount))
    }

    /// Sends an `execute_many` request with its first chunk of parameter
    /// sets, then the rest in chunks while the worker runs the first.
    ///
    /// Not async: the sets are used up before `execute_many` first waits,
    /// as a future that held them across an await would not be `Send` where
    /// they borrow from its own data (a limit of the compiler's `Send` check
    /// for closures over borrowed data).
    fn start_many<P: Params>(
        &self,
        sql: impl IntoSql,
        params: impl IntoIterator<Item = P>,
    ) -> Result<(StatementTrace<'_>, Result<Started<u64>>)> {
        let sql = checked(sql.into_sql(self.session.dialect())?)?;
        if sql.params.is_some() {
            return Err(Error::Parameter(
                "execute_many takes a statement without parameters of its own".into(),
            ));
        }
        let mut sets = params.into_iter();
        let mut first = chunk(&mut sets, FIRST_CHUNK);
        let dialect = self.session.dialect();
        let mut text = sql.text;
        if first
            .first()
            .is_some_and(|set| !set.named.is_empty() || !set.lists.is_empty())
        {
            // Named sets are rewritten one by one: all of them now, so that a
            // set that does not fit fails the call before anything runs.
            first.extend(sets.by_ref().map(Params::into_parameters));
            text = rename_sets(dialect, &text, &mut first)?;
        }
        let sql = Sql { text, ..sql };
        let next = sets.next();
        let (feed, more) = match next {
            Some(_) => {
                let (feed, more) = async_channel::unbounded();
                (Some(feed), Some(more))
            }
            None => (None, None),
        };
        let trace = self.session.trace(&sql.text, None);
        let count = first.len();
        let started = self.session.start_many(sql.text, sql.timeout, first, more);
        let count = count + send_chunks(feed, next.into_iter().chain(sets));
        trace.batch_size(count);
        Ok((trace, started))
    }

    /// Runs a query and returns the first column of its first row.
    ///
    /// # Errors
    /// As [`execute`](Connection::execute); [`Error::NoRows`] when there is no
    /// row and `T` is not an `Option`; [`Error::Decode`] when the value does not convert.
    ///
    /// # Cancellation
    /// As [`execute`](Connection::execute).
    pub async fn scalar<T: FromValue>(&self, sql: impl IntoSql, params: impl Params) -> Result<T> {
        self.execute(sql, params).await?.scalar().await
    }

    /// Begins a transaction.
    ///
    /// On SQLite this takes the database's write lock at once (`BEGIN
    /// IMMEDIATE`), so that concurrent read-modify-write transactions wait
    /// for each other (within the busy timeout) instead of failing with
    /// "database is locked" when one of them first reads and then writes. Use
    /// [`begin_deferred`](Connection::begin_deferred) for a transaction that
    /// only reads. On PostgreSQL it is a plain `BEGIN`.
    ///
    /// Commit it with [`Transaction::commit`]; dropping it rolls back.
    ///
    /// # Errors
    /// [`Error::TransactionOpen`] when a transaction is already open on this
    /// connection (use [`begin_nested`](Connection::begin_nested) for a
    /// savepoint); [`Error::Database`] when SQLite's write lock stays taken past the busy timeout.
    ///
    /// # Cancellation
    /// If the future is dropped, a `BEGIN` that did run is rolled back before
    /// the connection's next request.
    pub async fn begin(&self) -> Result<Transaction<'_>> {
        let level = self.open_transaction(Begin::Immediate).await?;
        Ok(Transaction::new(ConnRef::Borrowed(self), level))
    }

    /// Begins a transaction that takes SQLite's write lock at once (`BEGIN
    /// IMMEDIATE`); the same as [`begin`](Connection::begin), named for
    /// code that wants to say so. A plain `BEGIN` on PostgreSQL.
    ///
    /// # Errors
    /// As [`begin`](Connection::begin).
    ///
    /// # Cancellation
    /// As [`begin`](Connection::begin).
    pub async fn begin_immediate(&self) -> Result<Transaction<'_>> {
        self.begin().await
    }

    /// Begins a deferred transaction (`BEGIN`): on SQLite it takes no lock
    /// until its first statement, and a write after a read can fail with
    /// "database is locked" when another connection wrote in between. Best
    /// for transactions that only read a consistent snapshot.
    ///
    /// # Errors
    /// [`Error::TransactionOpen`] when a transaction is already open on this
    /// connection (use [`begin_nested`](Connection::begin_nested) for a
    /// savepoint); [`Error::Closed`] after [`close`](Connection::close).
    ///
    /// # Cancellation
    /// As [`begin`](Connection::begin).
    pub async fn begin_deferred(&self) -> Result<Transaction<'_>> {
        let level = self.open_transaction(Begin::Deferred).await?;
        Ok(Transaction::new(ConnRef::Borrowed(self), level))
    }

    /// Begins a transaction with `options`: an isolation level, read only,
    /// PostgreSQL's `DEFERRABLE`, SQLite's locking.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use sqlaio::{ErrorKind, IsolationLevel, TxOptions};
    ///
    /// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
    /// let conn = engine.connect().await?;
    /// conn.execute("CREATE TABLE t (x INTEGER)", ()).await?;
    /// let tx = conn
    ///     .begin_with(TxOptions::new().isolation(IsolationLevel::Serializable).read_only(true))
    ///     .await?;
    /// let err = tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::ReadOnly);
    /// tx.rollback().await?;
    /// conn.execute("INSERT INTO t VALUES (1)", ()).await?; // writable again
    /// # Ok::<(), sqlaio::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`begin`](Connection::begin), and the database's error for an
    /// option it refuses.
    ///
    /// # Cancellation
    /// As [`begin`](Connection::begin).
    pub async fn begin_with(&self, options: TxOptions) -> Result<Transaction<'_>> {
        let level = self.open_transaction(Begin::With(options)).await?;
        Ok(Transaction::new(ConnRef::Borrowed(self), level))
    }

    /// Begins a nested transaction: a `SAVEPOINT`.
    ///
    /// Outside a transaction, the savepoint starts one. Committing it releases
    /// the savepoint; rolling it back (or dropping it) undoes only what ran
    /// since it began.
    ///
    /// # Errors
    /// [`Error::Database`] when the database refuses the `SAVEPOINT` (or,
    /// outside a transaction, the `BEGIN`, as [`begin`](Connection::begin));
    /// [`Error::Closed`] after [`close`](Connection::close).
    ///
    /// # Cancellation
    /// As [`begin`](Connection::begin).
    pub async fn begin_nested(&self) -> Result<Transaction<'_>> {
        let level = self.open_transaction(Begin::Nested).await?;
        Ok(Transaction::new(ConnRef::Borrowed(self), level))
    }

    /// Sends `BEGIN` or `SAVEPOINT` and raises the depth once it succeeded.
    pub(crate) async fn open_transaction(&self, kind: Begin) -> Result<Level> {
        let (level, in_tx) = self.session.next_level()?;
        if kind != Begin::Nested && in_tx {
            // PostgreSQL would only warn; refuse it the same way on every database.
            return Err(Error::TransactionOpen);
        }
        // A savepoint needs an enclosing transaction: outside one, begin_nested begins one.
        let (op, undo) = match kind {
            Begin::Nested if level > 1 || in_tx => {
                (TxOp::Savepoint(level), TxOp::RollbackTo(level))
            }
            Begin::With(options) => (TxOp::Begin(options), TxOp::Rollback),
            Begin::Deferred => (
                TxOp::Begin(TxOptions::new().locking(Locking::Deferred)),
                TxOp::Rollback,
            ),
            _ => (TxOp::Begin(TxOptions::new()), TxOp::Rollback),
        };
        self.session.begin(op, undo, level).await?;
        Ok(Level {
            depth: level,
            savepoint: matches!(op, TxOp::Savepoint(_)),
        })
    }

    /// Ends the transaction at `level` with a commit or a rollback.
    pub(crate) async fn end_transaction(&self, level: Level, commit: bool) -> Result<()> {
        self.session.end(level.end(commit), level.depth).await
    }

    /// Rolls back the transaction at `level` without waiting: for `Drop`.
    pub(crate) fn abandon_transaction(&self, level: Level) {
        self.session.abandon(level.end(false), level.depth);
    }

    /// Sets the statement timeout for this connection's later calls: a
    /// statement (or a fetch, or a `run_in_thread` closure) running longer is
    /// interrupted on the database and fails with [`Error::Timeout`]. `None`
    /// means no limit. The engine's
    /// [`statement_timeout`](crate::EngineBuilder::statement_timeout) is the
    /// initial value; the setting lasts until the connection goes back to the pool.
    pub fn set_statement_timeout(&self, timeout: Option<Duration>) {
        self.session.set_statement_timeout(timeout);
    }

    /// The statement timeout of this connection's calls; see
    /// [`set_statement_timeout`](Connection::set_statement_timeout).
    pub fn statement_timeout(&self) -> Option<Duration> {
        self.session.statement_timeout()
    }

    /// `true` while a transaction (or savepoint) is open on this connection.
    ///
    /// This reflects transactions begun through [`begin`](Connection::begin)
    /// and those begun with SQL, as of the last answer from the worker.
    pub fn in_transaction(&self) -> bool {
        self.session.in_transaction()
    }

    /// Runs `f` with the raw driver connection on the connection's worker thread.
    ///
    /// This is the escape hatch for anything the driver can do that sqlaio
    /// does not wrap (custom functions, backups, `execute_batch`, ...). The
    /// closure names the raw type it expects: `&mut rusqlite::Connection`
    /// for SQLite. It may return its own error type, as long as that type
    /// converts from [`Error`]; its result is returned as it is.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
    /// let conn = engine.connect().await?;
    /// let tables = conn
    ///     .run_in_thread(|raw: &mut rusqlite::Connection| {
    ///         raw.execute_batch("CREATE TABLE a (x); CREATE TABLE b (y);")?;
    ///         let n: i64 = raw.query_row(
    ///             "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
    ///             [],
    ///             |row| row.get(0),
    ///         )?;
    ///         Ok::<_, sqlaio::Error>(n)
    ///     })
    ///     .await?;
    /// assert_eq!(tables, 2);
    /// # Ok::<(), sqlaio::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// Whatever `f` returns; [`Error::Panic`] (converted into `E`) when `f`
    /// panics, after which any open transaction is rolled back and the
    /// connection keeps working; [`Error::Timeout`] when `f` ran past the
    /// statement timeout (its running statement is interrupted, and whatever
    /// `f` returned is replaced by the timeout); [`Error::WrongDriver`] when
    /// `R` is not this engine's raw connection type.
    ///
    /// # Cancellation
    /// Dropping the future before the worker starts `f` skips it. Dropping it
    /// while `f` runs interrupts the statement `f` is running on the database
    /// (unless [`interrupt_on_drop(false)`](crate::EngineBuilder::interrupt_on_drop));
    /// `f` itself always runs to its end, seeing that statement fail.
    pub async fn run_in_thread<R, T, E, F>(&self, f: F) -> Result<T, E>
    where
        R: Any,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&mut R) -> Result<T, E> + Send + 'static,
    {
        self.session.run_in_thread(f).await?
    }

    /// Runs a script of several statements (a migration file) as the
    /// driver's script call does; `true` when a transaction is open after it.
    pub(crate) async fn execute_script(&self, sql: String) -> Result<bool> {
        self.session.script(sql).await
    }

    /// The names of the tables visible to this connection, sorted.
    ///
    /// # Errors
    /// The database's error when it cannot list them; [`Error::Closed`]
    /// after [`close`](Connection::close).
    ///
    /// # Cancellation
    /// Dropping the future only discards the answer.
    pub async fn table_names(&self) -> Result<Vec<String>> {
        self.session.table_names().await
    }

    /// `true` when a table of this name exists. Names compare as SQL resolves
    /// them: case-insensitively on SQLite; on PostgreSQL exactly, or folded to
    /// lower case as an unquoted name would be (`"Users"` finds a table
    /// created as `users`, but `users` does not find one created as `"Users"`);
    /// on MySQL exactly, as its default on Linux (`lower_case_table_names=0`) compares them.
    ///
    /// # Errors
    /// As [`table_names`](Connection::table_names).
    ///
    /// # Cancellation
    /// Dropping the future only discards the answer.
    pub async fn has_table(&self, name: &str) -> Result<bool> {
        Ok(self
            .table_names()
            .await?
            .iter()
            .any(|t| match self.session.dialect() {
                Dialect::Sqlite => t.eq_ignore_ascii_case(name),
                Dialect::Postgres => *t == name || *t == name.to_lowercase(),
                // Case-sensitive on Linux by default (lower_case_table_names=0).
                Dialect::MySql => *t == name,
            }))
    }

    /// Returns the connection to the pool, rolling back any open transaction.
    ///
    /// Closing twice is not an error. Any later call on this handle fails with
    /// [`Error::Closed`].
    ///
    /// # Cancellation
    /// Dropping the future still returns the connection to the pool, where a
    /// rollback is queued ahead of its next use.
    pub async fn close(&self) -> Result<()> {
        self.session.close().await;
        Ok(())
    }

    /// `true` after [`close`](Connection::close), or once the engine was closed.
    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }
}

/// Where a transaction sits: its nesting depth, and whether it is a
/// savepoint (a `begin_nested` inside a transaction, even one begun with SQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Level {
    pub(crate) depth: u32,
    pub(crate) savepoint: bool,
}

impl Level {
    /// The statement that commits or rolls back this level.
    fn end(self, commit: bool) -> TxOp {
        match (self.savepoint, commit) {
            (false, true) => TxOp::Commit,
            (false, false) => TxOp::Rollback,
            (true, true) => TxOp::Release(self.depth),
            (true, false) => TxOp::RollbackTo(self.depth),
        }
    }
}

/// Which kind of transaction to begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Begin {
    Immediate,
    Deferred,
    /// A transaction with these options.
    With(TxOptions),
    /// A savepoint inside the open transaction, or a transaction if none is open.
    Nested,
}

/// Refuses SQL text with a NUL byte: the database would run only the part
/// before it (a `DELETE ... WHERE a\0 AND b` would delete too much).
fn checked(sql: Sql) -> Result<Sql> {
    if sql.text.contains('\0') {
        return Err(Error::Statement(
            "the SQL text holds a NUL byte; pass such data as a parameter".into(),
        ));
    }
    Ok(sql)
}

/// Renders a statement and merges the parameters it carries with the call's.
pub(crate) fn prepare(dialect: Dialect, sql: impl IntoSql, params: Parameters) -> Result<Sql> {
    let mut sql = checked(sql.into_sql(dialect)?)?;
    match (&sql.params, params.is_empty()) {
        (Some(_), false) => {
            return Err(Error::Parameter(
                "this statement carries its own parameters: pass () as the parameters".into(),
            ))
        }
        (None, _) => sql.params = Some(params),
        (Some(_), true) => {}
    }
    if let Some(params) = sql.params.as_mut() {
        crate::placeholders::for_dialect(dialect, &mut sql.text, params)?;
    }
    Ok(sql)
}
