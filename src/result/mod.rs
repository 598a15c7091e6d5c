//! [`CursorResult`]: the result of a statement, fetched in batches.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use futures_core::future::BoxFuture;
use futures_core::Stream;

use crate::connection::ConnRef;
use crate::error::{Error, Result};
use crate::row::{ColumnNames, Row};
use crate::trace::RowsTrace;
use crate::value::FromValue;
use crate::worker::{Batch, Header, Limit, Sink, BATCH_ROWS, STREAM_ROWS};

#[cfg(feature = "serde")]
mod typed;

#[cfg(feature = "serde")]
pub use self::typed::TypedRows;

/// The result of a statement: what it did, and the rows it returns.
///
/// [`keys`](CursorResult::keys), [`rowcount`](CursorResult::rowcount),
/// [`last_insert_id`](CursorResult::last_insert_id) and
/// [`returns_rows`](CursorResult::returns_rows) are known when `execute`
/// returns. Rows are fetched with [`fetchone`](CursorResult::fetchone),
/// [`fetchmany`](CursorResult::fetchmany), [`fetchall`](CursorResult::fetchall),
/// [`first`](CursorResult::first), [`scalar`](CursorResult::scalar), or by
/// using the result as a [`Stream`] of rows.
///
/// # Batches and memory
/// Rows cross from the worker in batches; the first (at most 256 rows, or
/// about 1 MiB of text and blobs) comes with the `execute` answer. Read on
/// with the stream or `fetchone`, and each batch is twice the last, up to
/// 4096 rows (or the same 1 MiB; [`yield_per`](CursorResult::yield_per)
/// fixes the size instead), and the worker reads the next batch while
/// the caller goes through the current one, so streaming a large result
/// holds at most about two batches in memory. `fetchall` reads the rest in
/// batches of 4096 rows, asking for the next before the last has come, and
/// returns them all at once.
///
/// # Dropping
/// A result from [`Connection::execute`](crate::Connection::execute) borrows its connection; a result
/// from [`Engine::execute`](crate::Engine::execute) owns one and returns it
/// to the pool once drained, closed or dropped. Dropping a result that still
/// has rows finalizes its statement on the worker before the connection's
/// next request. A fetch whose future is dropped keeps its place: the rows it
/// asked for are delivered to the next fetch, never lost.
///
/// ```
/// # futures::executor::block_on(async {
/// use futures::TryStreamExt;
/// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
/// let sql = "WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 1000) \
///            SELECT value FROM s";
/// let mut result = engine.execute(sql, ()).await?;
/// let mut sum = 0;
/// while let Some(row) = result.try_next().await? {
///     sum += row.get::<i64>(0)?;
/// }
/// assert_eq!(sum, 500_500);
/// # Ok::<(), sqlaio::Error>(())
/// # }).unwrap();
/// ```
pub struct CursorResult<'c> {
    conn: ConnRef<'c>,
    /// `None` for a statement that returns no rows.
    keys: Option<ColumnNames>,
    rowcount: u64,
    last_insert_id: Option<i64>,
    returns_rows: bool,
    buffer: VecDeque<Row>,
    /// The worker's cursor, while it may hold more rows.
    cursor: Option<u64>,
    /// The fetch in flight; in a `Mutex` only so that the result is `Sync` (never locked).
    inflight: Option<Mutex<BoxFuture<'static, Result<Batch>>>>,
    /// A streaming fetch sent after `inflight`, whose batch comes next.
    queued: Option<Mutex<BoxFuture<'static, Result<Batch>>>>,
    closed: bool,
    /// The size of the last streaming batch asked for.
    stream_rows: usize,
    /// The size of every streaming batch, once set by [`CursorResult::yield_per`].
    yield_per: Option<usize>,
    /// The statement's span while rows are read: counts them, and records
    /// the count once the result is drained, closed or dropped.
    trace: RowsTrace,
}

impl fmt::Debug for CursorResult<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CursorResult")
            .field("keys", &self.keys())
            .field("rowcount", &self.rowcount)
            .field("last_insert_id", &self.last_insert_id)
            .field("returns_rows", &self.returns_rows)
            .field("buffered", &self.buffer.len())
            .field("exhausted", &self.cursor.is_none())
            .field("closed", &self.closed)
            .finish()
    }
}

impl<'c> CursorResult<'c> {
    pub(crate) fn new(
        conn: ConnRef<'c>,
        header: Header,
        cursor: u64,
        trace: RowsTrace,
    ) -> CursorResult<'c> {
        let done = header.batch.done;
        let mut buffer = VecDeque::new();
        header.batch.append_to(&mut buffer);
        let mut result = CursorResult {
            conn,
            keys: header.keys,
            rowcount: header.rowcount,
            last_insert_id: header.last_insert_id,
            returns_rows: header.returns_rows,
            buffer,
            cursor: Some(cursor),
            inflight: None,
            queued: None,
            closed: false,
            stream_rows: BATCH_ROWS,
            yield_per: None,
            trace,
        };
        if done {
            result.exhausted();
        }
        result
    }

    /// A result that returns no rows.
    pub(crate) fn done(conn: ConnRef<'c>, rowcount: u64) -> CursorResult<'c> {
        let mut result = CursorResult {
            conn,
            keys: None,
            rowcount,
            last_insert_id: None,
            returns_rows: false,
            buffer: VecDeque::new(),
            cursor: None,
            inflight: None,
            queued: None,
            closed: false,
            stream_rows: BATCH_ROWS,
            yield_per: None,
            trace: RowsTrace::none(),
        };
        result.exhausted();
        result
    }

    /// The worker has no more rows: forget the cursor and any fetch still
    /// under way for it, give an owned connection back.
    fn exhausted(&mut self) {
        self.inflight = None;
        self.queued = None;
        if let Some(cursor) = self.cursor.take() {
            if let Some(session) = self.conn.session() {
                session.cursor_done(cursor);
            }
        }
        // The statement's span ends with its rows.
        self.trace = RowsTrace::none();
        self.conn.release();
    }

    /// The column names, in order; empty for a statement that returns no rows.
    pub fn keys(&self) -> &[String] {
        self.keys.as_deref().map_or(&[], |keys| keys.as_slice())
    }

    /// Rows inserted, updated or deleted by the statement; 0 for other statements.
    pub fn rowcount(&self) -> u64 {
        self.rowcount
    }

    /// The row id of the row inserted by an `INSERT` or `REPLACE` that inserted
    /// rows; `None` for other statements.
    pub fn last_insert_id(&self) -> Option<i64> {
        self.last_insert_id
    }

    /// `true` when the statement returns rows (a `SELECT`, a `RETURNING`
    /// clause, some `PRAGMA`s), even if there are none.
    pub fn returns_rows(&self) -> bool {
        self.returns_rows
    }

    /// `true` after [`close`](CursorResult::close).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Reads the rows still to come `rows` at a time (at least one) when
    /// streaming, through the [`Stream`] or [`fetchone`](CursorResult::fetchone),
    /// as SQLAlchemy's `Result.yield_per` does.
    ///
    /// By default each batch asks for twice the rows of the last, from 256
    /// up to 4,096. A smaller fixed size holds less in memory (about two
    /// batches: one read ahead) at the cost of more hand-offs between the
    /// worker and your task; a larger one does the opposite. Either way a
    /// batch also ends once its text and blob data pass about 1 MiB. A batch
    /// read ahead is not interrupted when the result is dropped, so a large
    /// `rows` also makes a dropped stream keep its connection busy for
    /// longer. The first batch, which came with the `execute` answer (up to
    /// 256 rows), is already here. The guide's `streaming.md` has the
    /// measured trade-off.
    ///
    /// ```
    /// use futures::TryStreamExt;
    /// # futures::executor::block_on(async {
    /// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
    /// let sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
    ///            SELECT i FROM n";
    /// let rows = engine.execute(sql, ()).await?.yield_per(100);
    /// let count = rows.try_fold(0, |count, _row| async move { Ok(count + 1) }).await?;
    /// assert_eq!(count, 1000);
    /// # Ok::<(), sqlaio::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use = "the result comes back with the batch size set"]
    pub fn yield_per(mut self, rows: usize) -> Self {
        self.yield_per = Some(rows.max(1));
        self
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(Error::Closed("result"))
        } else {
            Ok(())
        }
    }

    /// A request for rows of `cursor`, as a future that sends it and waits for the batch.
    ///
    /// Dropping the future after the request is sent interrupts the read
    /// (when the connection interrupts on drop).
    fn fetch(&self, cursor: u64, limit: Limit) -> Result<BoxFuture<'static, Result<Batch>>> {
        let session = self.conn.session().ok_or(Error::Closed("connection"))?;
        Ok(Box::pin(session.fetch(cursor, limit)?))
    }

    /// The next streaming batch: the size set by [`CursorResult::yield_per`],
    /// or else twice as many rows as the last, up to [`STREAM_ROWS`].
    fn next_stream(&mut self) -> Limit {
        self.stream_rows = match self.yield_per {
            Some(rows) => rows,
            None => (self.stream_rows * 2).min(STREAM_ROWS),
        };
        Limit::Stream(self.stream_rows)
    }

    /// Asks the worker for the next streaming batch without waiting for it,
    /// so the worker reads it while the caller goes through the rows it has.
    ///
    /// Only after a streaming fetch had to wait for rows (the caller is going
    /// through the result, not taking its first row).
    fn prefetch(&mut self) {
        if self.inflight.is_none() {
            self.inflight = self.fetch_ahead(Self::next_stream);
        }
    }

    /// With no row left in hand and a batch still on its way: asks for the
    /// one after it too, so the worker goes on reading as soon as it has sent
    /// that batch rather than wait for this task to wake and ask. The caller
    /// holds no rows meanwhile (and lets go of the emptied buffer, which the
    /// next batch would replace anyway), so at most two batches are held at
    /// a time, as with [`prefetch`](Self::prefetch) alone.
    fn queue_ahead(&mut self) {
        if self.buffer.is_empty() && self.inflight.is_some() && self.queued.is_none() {
            self.buffer = VecDeque::new();
            self.queued = self.fetch_ahead(Self::next_stream);
        }
    }

    /// A streaming fetch sent at once, for [`prefetch`](Self::prefetch) and
    /// [`queue_ahead`](Self::queue_ahead); `None` unless the request fits in
    /// the connection's queue right away. Dropping the result does not
    /// interrupt this read: it is one batch, and the worker drops it.
    fn fetch_ahead(
        &mut self,
        limit: impl FnOnce(&mut Self) -> Limit,
    ) -> Option<Mutex<BoxFuture<'static, Result<Batch>>>> {
        let cursor = self.cursor?;
        self.conn.session()?;
        let limit = limit(self);
        let fetch = self.conn.session()?.fetch_now(cursor, limit)?;
        Some(Mutex::new(Box::pin(fetch)))
    }

    /// Every remaining row converted by `decode`; rows still to come are
    /// converted on the worker as they are read, so they never pile up as
    /// [`Row`]s.
    ///
    /// Dropping the future while rows are being read closes the result: the
    /// rows converted so far cannot go back into it.
    pub(crate) async fn fetch_into<T, F>(&mut self, mut decode: F) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: FnMut(&mut Row) -> Result<T> + Send + 'static,
    {
        self.check_open()?;
        // The rows of fetches already sent come first.
        poll_fn(|cx| {
            while self.inflight.is_some() {
                ready!(self.poll_batch(cx, |_| Limit::Stream(STREAM_ROWS)))?;
            }
            Poll::Ready(Ok::<_, Error>(()))
        })
        .await?;
        let mut rows = Vec::with_capacity(self.buffer.len());
        for mut row in self.buffer.drain(..) {
            rows.push(decode(&mut row)?);
        }
        let Some(cursor) = self.cursor else {
            return Ok(rows);
        };
        let already = rows.len();
        let sink = Box::new(Collect { rows, decode });
        let fetch = self.fetch(cursor, Limit::Into(sink))?;
        // Closed until the rows are in: see above.
        self.closed = true;
        let batch = fetch.await;
        self.closed = false;
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                self.trace.fetch_failed(&e);
                self.exhausted();
                return Err(e);
            }
        };
        let result = match batch
            .sink
            .map(|sink| sink.into_any().downcast::<Collect<T, F>>())
        {
            Some(Ok(collect)) => {
                self.trace
                    .fetched(collect.rows.len().saturating_sub(already));
                Ok(collect.rows)
            }
            _ => Err(Error::WorkerGone),
        };
        self.exhausted();
        result
    }

    /// Starts (or continues) a fetch and waits for one batch; `false` when no rows are left.
    ///
    /// `limit` is asked only when a new fetch starts.
    fn poll_batch(
        &mut self,
        cx: &mut Context<'_>,
        limit: impl FnOnce(&mut Self) -> Limit,
    ) -> Poll<Result<bool>> {
        let Some(cursor) = self.cursor else {
            return Poll::Ready(Ok(false));
        };
        if self.inflight.is_none() {
            let limit = limit(self);
            match self.fetch(cursor, limit) {
                Ok(fetch) => self.inflight = Some(Mutex::new(fetch)),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let Some(inflight) = self.inflight.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        let inflight = inflight.get_mut().unwrap_or_else(PoisonError::into_inner);
        let batch = ready!(inflight.as_mut().poll(cx));
        self.inflight = self.queued.take();
        match batch {
            Ok(batch) => {
                let done = batch.done;
                self.trace.fetched(batch.len());
                batch.append_to(&mut self.buffer);
                if done {
                    self.exhausted();
                }
                Poll::Ready(Ok(true))
            }
            Err(e) => {
                self.trace.fetch_failed(&e);
                self.exhausted();
                Poll::Ready(Err(e))
            }
        }
    }

    /// The next row, or `None` when there are no more.
    ///
    /// # Errors
    /// [`Error::Closed`] after [`close`](CursorResult::close); the database's
    /// error if reading the next rows fails.
    ///
    /// # Cancellation
    /// Dropping the future keeps the rows it was waiting for in the result.
    pub async fn fetchone(&mut self) -> Result<Option<Row>> {
        self.check_open()?;
        poll_fn(|cx| loop {
            if let Some(row) = self.buffer.pop_front() {
                return Poll::Ready(Ok(Some(row)));
            }
            self.queue_ahead();
            if !ready!(self.poll_batch(cx, Self::next_stream))? {
                return Poll::Ready(Ok(None));
            }
            self.prefetch();
        })
        .await
    }

    /// Up to `n` more rows; fewer only at the end of the result.
    ///
    /// # Errors
    /// As [`fetchone`](CursorResult::fetchone).
    ///
    /// # Cancellation
    /// As [`fetchone`](CursorResult::fetchone).
    pub async fn fetchmany(&mut self, n: usize) -> Result<Vec<Row>> {
        self.check_open()?;
        poll_fn(|cx| {
            while self.buffer.len() < n {
                // At most a streaming batch at a time: a packed batch and its
                // rows are both held while it is unpacked.
                let missing = (n - self.buffer.len()).min(STREAM_ROWS);
                if !ready!(self.poll_batch(cx, |_| Limit::Rows(missing)))? {
                    break;
                }
            }
            let take = n.min(self.buffer.len());
            Poll::Ready(Ok(self.buffer.drain(..take).collect()))
        })
        .await
    }

    /// Every remaining row.
    ///
    /// # Errors
    /// As [`fetchone`](CursorResult::fetchone).
    ///
    /// # Cancellation
    /// As [`fetchone`](CursorResult::fetchone).
    pub async fn fetchall(&mut self) -> Result<Vec<Row>> {
        self.check_open()?;
        poll_fn(|cx| {
            loop {
                // Two batches asked for at a time: the worker reads the next
                // while this task makes the rows of the last.
                if self.inflight.is_some() && self.queued.is_none() {
                    self.queued = self.fetch_ahead(|_| Limit::Stream(STREAM_ROWS));
                }
                if !ready!(self.poll_batch(cx, |_| Limit::Stream(STREAM_ROWS)))? {
                    break;
                }
            }
            // In place: no second copy of every row.
            Poll::Ready(Ok(Vec::from(std::mem::take(&mut self.buffer))))
        })
        .await
    }

    /// The first row (or `None`), closing the result.
    ///
    /// # Errors
    /// As [`fetchone`](CursorResult::fetchone).
    ///
    /// # Cancellation
    /// The result moves into the future, so dropping the future drops the
    /// result: its statement is closed before the connection's next request.
    pub async fn first(mut self) -> Result<Option<Row>> {
        let row = self.fetchone().await?;
        self.close().await?;
        Ok(row)
    }

    /// The first column of the first row, closing the result.
    ///
    /// With no row at all, `Option<T>` gives `None` and other types fail with
    /// [`Error::NoRows`]; a `NULL` value needs an `Option<T>`.
    ///
    /// # Errors
    /// [`Error::NoRows`], [`Error::Decode`], or as [`fetchone`](CursorResult::fetchone).
    ///
    /// # Cancellation
    /// As [`first`](CursorResult::first).
    pub async fn scalar<T: FromValue>(self) -> Result<T> {
        match self.first().await? {
            Some(row) => row.get(0),
            None => T::from_missing().ok_or(Error::NoRows),
        }
    }

    /// Closes the result: drops its buffered rows and finalizes its statement.
    ///
    /// Later fetches fail with [`Error::Closed`]. Closing twice is not an error.
    ///
    /// # Cancellation
    /// Dropping the future leaves the statement to be finalized before the
    /// connection's next request.
    pub async fn close(&mut self) -> Result<()> {
        self.closed = true;
        self.buffer.clear();
        self.inflight = None;
        self.queued = None;
        if let Some(cursor) = self.cursor {
            if let Some(session) = self.conn.session() {
                session.close_cursor(cursor).await;
            }
            self.exhausted();
        }
        Ok(())
    }
}

impl Stream for CursorResult<'_> {
    type Item = Result<Row>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Row>>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(None);
        }
        loop {
            if let Some(row) = this.buffer.pop_front() {
                return Poll::Ready(Some(Ok(row)));
            }
            this.queue_ahead();
            match ready!(this.poll_batch(cx, Self::next_stream)) {
                Ok(true) => this.prefetch(),
                Ok(false) => return Poll::Ready(None),
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.cursor.is_none() {
            (self.buffer.len(), Some(self.buffer.len()))
        } else {
            (self.buffer.len(), None)
        }
    }
}

/// The sink of [`CursorResult::fetch_into`]: converts each row and keeps the
/// results. Generic over the conversion, so that it is compiled into `push`.
struct Collect<T, F> {
    rows: Vec<T>,
    decode: F,
}

impl<T, F> Sink for Collect<T, F>
where
    T: Send + 'static,
    F: FnMut(&mut Row) -> Result<T> + Send + 'static,
{
    fn push(&mut self, row: &mut Row) -> Result<()> {
        self.rows.push((self.decode)(row)?);
        Ok(())
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}
