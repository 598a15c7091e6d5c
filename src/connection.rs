//! [`Connection`]: one pooled connection and the statements run on it.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_channel::Sender;
use futures_channel::oneshot;

use crate::error::{Error, Result};
use crate::params::{Parameters, Params};
use crate::pool::{ConnState, Lease, Undo};
use crate::result::{ConnRef, CursorResult};
use crate::sql::{Dialect, IntoSql, Sql};
use crate::trace::{StatementTrace, TraceConfig};
use crate::transaction::Transaction;
use crate::value::FromValue;
use crate::worker::{self, Feed, Header, Interrupter, Reason, Reply, Request, Ticket, TxOp};

/// Parameter sets in the first chunk of an `execute_many` batch, sent with
/// its request; the rest follow in chunks while the worker runs the first.
const FIRST_CHUNK: usize = 64;
/// Parameter sets in a later chunk, at most: each chunk is twice as large as
/// the one before, up to this.
const MAX_CHUNK: usize = 1024;

/// Converts the next `size` sets (fewer at the end).
fn chunk<P: Params>(sets: &mut impl Iterator<Item = P>, size: usize) -> Vec<Parameters> {
    sets.take(size).map(|set| set.into_parameters()).collect()
}

/// Sends the rest of an `execute_many` batch (if `feed` is there to take
/// it) in chunks, then its end; stops early when the worker stopped the
/// batch (its answer says why).
fn send_chunks<P: Params>(feed: Option<Sender<Feed>>, mut sets: impl Iterator<Item = P>) {
    let Some(feed) = feed else {
        return;
    };
    let mut size = FIRST_CHUNK;
    loop {
        size = (size * 2).min(MAX_CHUNK);
        let chunk = chunk(&mut sets, size);
        let message = if chunk.is_empty() {
            Feed::End
        } else {
            Feed::Sets(chunk)
        };
        let end = matches!(message, Feed::End);
        if feed.try_send(message).is_err() || end {
            return;
        }
    }
}

/// A statement-like request, numbered and sent unless the queue was full.
struct Started<T> {
    /// Interrupts the request if the caller's future is dropped once it was sent.
    guard: InFlight,
    awaited: Awaited<T>,
    /// The request, and a rollback to send before it, when the queue was full.
    unsent: Option<(Sender<Request>, Option<Undo>, Request)>,
}

/// A request's answer slot, and how long to check for the answer before
/// sleeping (see [`worker::answer`]).
pub(crate) struct Awaited<T> {
    answer: oneshot::Receiver<Result<T>>,
    spin: Duration,
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
    lease: Mutex<Option<Lease>>,
    /// Fixed for the connection's life: read without locking.
    dialect: Dialect,
    trace: TraceConfig,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lease = self.lock();
        let mut d = f.debug_struct("Connection");
        match lease.as_ref() {
            Some(lease) => d
                .field("id", &lease.state_ref().id)
                .field("url", &lease.pool().url)
                .field("in_transaction", &lease.state_ref().in_transaction()),
            None => d.field("closed", &true),
        };
        d.finish()
    }
}

impl Connection {
    pub(crate) fn new(lease: Lease) -> Connection {
        Connection {
            dialect: lease.pool().dialect(),
            trace: lease.pool().config.trace,
            lease: Mutex::new(Some(lease)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Lease>> {
        // Never held across an await or user code; the data stays consistent.
        self.lease.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the connection's state, briefly locked.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut ConnState) -> R) -> Result<R> {
        let mut lease = self.lock();
        match lease.as_mut() {
            Some(lease) if !lease.state_ref().is_stopped() => Ok(f(lease.state())),
            _ => Err(Error::Closed("connection")),
        }
    }

    /// Sends a request, after any pending rollback; returns how long to
    /// check for its answer before sleeping (see [`worker::answer`]).
    pub(crate) async fn send_request(&self, request: Request) -> Result<Duration> {
        let (sender, pending, spin) = self.with_state(|state| Self::outgoing(state, false))?;
        self.post(&sender, pending, request).await?;
        Ok(spin)
    }

    /// Readies the state for a new request: its way to the worker, any
    /// rollback that must go first, and how long to check for the answer
    /// (read before the request goes: the worker stops checking once it has it).
    fn outgoing(state: &mut ConnState, lane: bool) -> (Sender<Request>, Option<Undo>, Duration) {
        if !lane {
            // Any other request closes the open cursor on the worker (a
            // lane statement is bounced instead: see `Ticket::lane`).
            state.open_cursor = None;
        }
        state.try_flush();
        let spin = state.shared.spin_budget(state.sender.len());
        (state.sender.clone(), state.pending, spin)
    }

    /// Sends the pending rollback, if any, then the request, without waiting;
    /// gives back what it could not send (the queue is full or closed).
    fn try_post(
        &self,
        sender: &Sender<Request>,
        pending: Option<Undo>,
        request: Request,
    ) -> Option<(Option<Undo>, Request)> {
        if let Some(undo) = pending {
            if sender.try_send(undo.request()).is_err() {
                return Some((pending, request));
            }
            let _ = self.with_state(|state| state.undo_sent(undo.id));
        }
        match sender.try_send(request) {
            Ok(()) => None,
            Err(e) => Some((None, e.into_inner())),
        }
    }

    /// Sends the pending rollback, if any, then the request. The rollback
    /// stays pending until it is in the queue, so a request sent meanwhile
    /// sends it too (the worker runs it once), and it survives this future
    /// being dropped.
    async fn post(
        &self,
        sender: &Sender<Request>,
        pending: Option<Undo>,
        request: Request,
    ) -> Result<()> {
        if let Some(undo) = pending {
            sender
                .send(undo.request())
                .await
                .map_err(|_| Error::Closed("connection"))?;
            let _ = self.with_state(|state| state.undo_sent(undo.id));
        }
        sender
            .send(request)
            .await
            .map_err(|_| Error::Closed("connection"))
    }

    /// Sends a request built around a new reply slot and returns the slot.
    pub(crate) async fn send<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Request,
    ) -> Result<Awaited<T>> {
        let (reply, answer) = oneshot::channel();
        let spin = self.send_request(make(reply)).await?;
        Ok(Awaited { answer, spin })
    }

    /// Awaits an answer, and notes that the worker's state is current again.
    pub(crate) async fn receive<T>(&self, awaited: Awaited<T>) -> Result<T> {
        let result = worker::answer(awaited.answer, awaited.spin).await;
        let lost = matches!(&result, Err(e) if e.is_connection_lost());
        let _ = self.with_state(|state| {
            // Unless a full rollback is still waiting to go into the queue.
            state.rollback_queued = state.pending.is_some_and(|undo| undo.op == TxOp::Rollback);
            if lost {
                // Never hand this connection out again; its worker stops too.
                state
                    .shared
                    .stopped
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                state.sender.close();
            }
        });
        result
    }

    async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T> {
        let answer = self.send(make).await?;
        self.receive(answer).await
    }

    /// Sends a statement-like request (numbered, and interrupted if this future is dropped
    /// while it runs) and awaits its answer.
    async fn statement<T>(
        &self,
        timeout: Option<Option<Duration>>,
        lane: bool,
        make: impl FnOnce(Ticket, Reply<T>) -> Request,
    ) -> Result<T> {
        let started = self.start(timeout, lane, make)?;
        self.finish(started).await
    }

    /// Numbers a statement-like request and sends it, if the queue has room
    /// (see [`finish`](Connection::finish) for the rest).
    fn start<T>(
        &self,
        timeout: Option<Option<Duration>>,
        lane: bool,
        make: impl FnOnce(Ticket, Reply<T>) -> Request,
    ) -> Result<Started<T>> {
        // One look at the state for numbering and sending.
        let ((mut ticket, guard), (sender, pending, spin)) =
            self.with_state(|state| (Self::numbered(state), Self::outgoing(state, lane)))?;
        if let Some(timeout) = timeout {
            ticket.timeout = timeout;
        }
        ticket.lane = lane;
        let (reply, answer) = oneshot::channel();
        let unsent = self
            .try_post(&sender, pending, make(ticket, reply))
            .map(|(pending, request)| (sender, pending, request));
        Ok(Started {
            guard,
            awaited: Awaited { answer, spin },
            unsent,
        })
    }

    /// Sends a started request if it is still unsent, then awaits its answer
    /// (interrupting the request if this future is dropped meanwhile).
    async fn finish<T>(&self, started: Started<T>) -> Result<T> {
        let Started {
            guard,
            awaited,
            unsent,
        } = started;
        if let Some((sender, pending, request)) = unsent {
            self.post(&sender, pending, request).await?;
        }
        let guard = guard.arm();
        let result = self.receive(awaited).await;
        guard.disarm();
        result
    }

    /// A fresh request number, and the guard that would interrupt it.
    pub(crate) fn number(&self) -> Result<(Ticket, InFlight)> {
        self.with_state(Self::numbered)
    }

    pub(crate) fn numbered(state: &mut ConnState) -> (Ticket, InFlight) {
        state.next_seq += 1;
        let guard = InFlight {
            interrupter: state.interrupt_on_drop.then(|| state.interrupter.clone()),
            seq: state.next_seq,
            armed: false,
        };
        let ticket = Ticket {
            seq: state.next_seq,
            timeout: state.statement_timeout,
            lane: false,
        };
        (ticket, guard)
    }

    /// The dialect of this connection's database.
    pub(crate) fn dialect(&self) -> Result<Dialect> {
        Ok(self.dialect)
    }

    /// Renders a statement and merges the parameters it carries with the call's.
    pub(crate) fn prepare(&self, sql: impl IntoSql, params: Parameters) -> Result<Sql> {
        let mut sql = checked(sql.into_sql(self.dialect()?)?)?;
        match (&sql.params, params.is_empty()) {
            (Some(_), false) => {
                return Err(Error::Parameter(
                    "this statement carries its own parameters: pass () as the parameters".into(),
                ))
            }
            (None, _) => sql.params = Some(params),
            (Some(_), true) => {}
        }
        Ok(sql)
    }

    /// Starts the trace of one statement.
    fn trace(&self, sql: &str, params: Option<&Parameters>) -> StatementTrace {
        StatementTrace::start(&self.trace, self.dialect, sql, params)
    }

    pub(crate) async fn run(&self, sql: Sql) -> Result<(Header, u64)> {
        self.run_as(sql, false).await
    }

    /// Runs an engine-level statement on a connection it may share with
    /// others (see `pool::Lane`); the header's `bounced` holds the statement
    /// when the worker did not run it.
    pub(crate) async fn run_in_lane(&self, sql: Sql) -> Result<(Header, u64)> {
        self.run_as(sql, true).await
    }

    async fn run_as(&self, sql: Sql, lane: bool) -> Result<(Header, u64)> {
        let trace = self.trace(&sql.text, sql.params.as_ref());
        let mut cursor = 0;
        let Sql {
            text,
            params,
            timeout,
        } = sql;
        let header = self
            .statement(timeout, lane, |ticket, reply| {
                cursor = ticket.seq;
                Request::Execute {
                    ticket,
                    sql: text,
                    params: params.unwrap_or_default(),
                    reply,
                }
            })
            .await;
        if matches!(&header, Ok(h) if h.bounced.is_some()) {
            trace.bounced();
            return header.map(|h| (h, cursor));
        }
        trace.finish(&header, |h| {
            if h.returns_rows {
                h.batch.len() as u64
            } else {
                h.rowcount
            }
        });
        let header = header?;
        if !header.batch.done {
            self.with_state(|state| state.open_cursor = Some(cursor))?;
        }
        Ok((header, cursor))
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
        let sql = self.prepare(sql, params.into_parameters())?;
        let (header, cursor) = self.run(sql).await?;
        Ok(CursorResult::new(ConnRef::Borrowed(self), header, cursor))
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
            Ok(started) => self.finish(started).await,
            Err(e) => Err(e),
        };
        trace.finish(&rowcount, |n| *n);
        let rowcount = rowcount?;
        Ok(CursorResult::done(ConnRef::Borrowed(self), rowcount))
    }

    /// Sends an `execute_many` request with its first chunk of sets, then
    /// the rest in chunks while the worker runs the first.
    ///
    /// Not async: the sets are used up before `execute_many` first waits,
    /// as a future that held them across an await would not be `Send` where
    /// they borrow from its own data (a limit of the compiler's `Send` check
    /// for closures over borrowed data).
    fn start_many<P: Params>(
        &self,
        sql: impl IntoSql,
        params: impl IntoIterator<Item = P>,
    ) -> Result<(StatementTrace, Result<Started<u64>>)> {
        let sql = checked(sql.into_sql(self.dialect()?)?)?;
        if sql.params.is_some() {
            return Err(Error::Parameter(
                "execute_many takes a statement without parameters of its own".into(),
            ));
        }
        let mut sets = params.into_iter();
        let first = chunk(&mut sets, FIRST_CHUNK);
        let next = sets.next();
        let (feed, more) = match next {
            Some(_) => {
                let (feed, more) = async_channel::unbounded();
                (Some(feed), Some(more))
            }
            None => (None, None),
        };
        let trace = self.trace(&sql.text, None);
        let text = sql.text;
        let started = self.start(sql.timeout, false, |ticket, reply| Request::ExecuteMany {
            ticket,
            sql: text,
            params: first,
            more,
            reply,
        });
        send_chunks(feed, next.into_iter().chain(sets));
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
        let (level, in_tx) = self.with_state(|state| (state.depth + 1, state.in_transaction()))?;
        if kind != Begin::Nested && in_tx {
            // PostgreSQL would only warn; refuse it the same way on every database.
            return Err(Error::TransactionOpen);
        }
        // A savepoint needs an enclosing transaction: outside one, begin_nested begins one.
        let (op, undo) = match kind {
            Begin::Nested if level > 1 || in_tx => {
                (TxOp::Savepoint(level), TxOp::RollbackTo(level))
            }
            Begin::Deferred => (TxOp::Begin { immediate: false }, TxOp::Rollback),
            _ => (TxOp::Begin { immediate: true }, TxOp::Rollback),
        };
        let answer = self
            .send(|reply| Request::Tx {
                op,
                reply: Some(reply),
            })
            .await?;
        // Sent: if this future is dropped now, undo whatever the worker begins.
        let disarm = UndoBegin {
            conn: self,
            op: Some(undo),
        };
        let result = self.receive(answer).await;
        let mut disarm = disarm;
        disarm.op = None;
        result?;
        self.with_state(|state| state.depth = level)?;
        Ok(Level {
            depth: level,
            savepoint: matches!(op, TxOp::Savepoint(_)),
        })
    }

    /// Ends the transaction at `level` with a commit or a rollback.
    pub(crate) async fn end_transaction(&self, level: Level, commit: bool) -> Result<()> {
        let op = level.end(commit);
        let level = level.depth;
        let answer = self
            .send(|reply| Request::Tx {
                op,
                reply: Some(reply),
            })
            .await?;
        // Sent: whatever happens to this future now, the worker ends the transaction.
        let _ = self.with_state(|state| state.depth = state.depth.min(level - 1));
        self.receive(answer).await
    }

    /// Rolls back the transaction at `level` without waiting: for `Drop`.
    pub(crate) fn abandon_transaction(&self, level: Level) {
        let _ = self.with_state(|state| {
            if state.depth < level.depth {
                // Already ended by a commit or rollback that was sent.
                return;
            }
            state.add_pending(level.end(false));
            state.depth = level.depth - 1;
            state.try_flush();
        });
    }

    /// Sets the statement timeout for this connection's later calls: a
    /// statement (or a fetch, or a `run_in_thread` closure) running longer is
    /// interrupted on the database and fails with [`Error::Timeout`]. `None`
    /// means no limit. The engine's
    /// [`statement_timeout`](crate::EngineBuilder::statement_timeout) is the
    /// initial value; the setting lasts until the connection goes back to the pool.
    pub fn set_statement_timeout(&self, timeout: Option<Duration>) {
        let _ = self.with_state(|state| state.statement_timeout = timeout);
    }

    /// The statement timeout of this connection's calls; see
    /// [`set_statement_timeout`](Connection::set_statement_timeout).
    pub fn statement_timeout(&self) -> Option<Duration> {
        self.with_state(|state| state.statement_timeout)
            .ok()
            .flatten()
    }

    /// `true` while a transaction (or savepoint) is open on this connection.
    ///
    /// This reflects transactions begun through [`begin`](Connection::begin)
    /// and those begun with SQL, as of the last answer from the worker.
    pub fn in_transaction(&self) -> bool {
        match self.lock().as_ref() {
            Some(lease) => lease.state_ref().in_transaction(),
            None => false,
        }
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
        let (call, answer) = worker::call(f);
        let (ticket, guard) = self.number()?;
        let spin = self.send_request(Request::Call { ticket, call }).await?;
        let guard = guard.arm();
        let result = self.receive(Awaited { answer, spin }).await;
        guard.disarm();
        result?
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
        self.request(|reply| Request::TableNames { reply }).await
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
            .any(|t| match self.dialect {
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
        let lease = self.lock().take();
        if let Some(mut lease) = lease {
            let state = lease.state();
            let dirty =
                state.pending.is_some() || state.open_cursor.is_some() || state.in_transaction();
            if dirty && !state.is_stopped() {
                let (sender, reset) = (state.sender.clone(), state.reset());
                // If this future is dropped before the reset is queued, the lease's
                // return to the pool still sees the state as dirty and resets it.
                if sender.send(reset).await.is_ok() {
                    let state = lease.state();
                    state.pending = None;
                    state.open_cursor = None;
                    state.depth = 0;
                    state.rollback_queued = true;
                }
            }
        }
        Ok(())
    }

    /// `true` after [`close`](Connection::close), or once the engine was closed.
    pub fn is_closed(&self) -> bool {
        match self.lock().as_ref() {
            Some(lease) => lease.state_ref().is_stopped(),
            None => true,
        }
    }
}

/// Queues a rollback if a `begin` future is dropped after its `BEGIN` was sent.
struct UndoBegin<'a> {
    conn: &'a Connection,
    op: Option<TxOp>,
}

impl Drop for UndoBegin<'_> {
    fn drop(&mut self) {
        if let Some(op) = self.op.take() {
            let _ = self.conn.with_state(|state| {
                state.add_pending(op);
                state.try_flush();
            });
        }
    }
}

/// Interrupts request `seq` on the worker if dropped while armed: the future
/// that awaited its answer was dropped.
#[derive(Debug)]
pub(crate) struct InFlight {
    interrupter: Option<Arc<Interrupter>>,
    seq: u64,
    armed: bool,
}

impl InFlight {
    /// Armed once the request was sent.
    pub(crate) fn arm(mut self) -> InFlight {
        self.armed = true;
        self
    }

    /// The answer arrived: nothing to interrupt.
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let (true, Some(interrupter)) = (self.armed, self.interrupter.take()) {
            interrupter.interrupt(self.seq, Reason::Cancelled);
        }
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
