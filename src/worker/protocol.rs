//! What a worker is asked to do and what it answers: the requests, their
//! reply slots, and the rows a reply carries.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_channel::Receiver;
use futures_channel::oneshot;

use super::signals::Shared;
use crate::error::{Error, Result};
use crate::packed::Packed;
use crate::params::Parameters;
use crate::row::{ColumnNames, Row};
use crate::tx_options::TxOptions;

/// The one-shot answer to a request.
pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// A closure run against the raw driver connection. It returns whether user
/// code panicked, and the delivery of its answer, which the worker runs once
/// it has recorded the connection's state.
pub(crate) type Call = Box<dyn FnOnce(&mut dyn Any, &'static str) -> (bool, Deliver) + Send>;

/// Sends a prepared answer; told whether the call was interrupted for a timeout.
pub(crate) type Deliver = Box<dyn FnOnce(bool) + Send>;

/// A reply slot, together with the state to record before answering, so a
/// caller that reads `in_transaction()` after its answer sees the new state.
pub(crate) struct Responder<'a, T> {
    pub(super) reply: Reply<T>,
    pub(super) shared: &'a Shared,
}

impl<T> Responder<'_, T> {
    /// Records whether a transaction is open, then answers; `false` if the caller is gone.
    pub(crate) fn send(self, in_tx: bool, value: Result<T>) -> bool {
        self.shared.in_tx.store(in_tx, Ordering::SeqCst);
        self.reply.send(value).is_ok()
    }
}

/// A request's number and its statement timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) seq: u64,
    pub(crate) timeout: Option<Duration>,
    /// An engine-level statement that may share the connection with others
    /// (see `pool::Lane`): it runs only on a clean connection, and is
    /// bounced otherwise, or when the worker stops before running it.
    pub(crate) lane: bool,
}
/// What a connection's worker is asked to do.
pub(crate) enum Request {
    /// Run one statement; answer with its header and first batch, then serve its cursor.
    Execute {
        /// The request's number (also the id of the cursor it may open) and timeout.
        ticket: Ticket,
        sql: String,
        params: Parameters,
        reply: Reply<Header>,
    },
    /// Run one statement once per parameter set, atomically.
    ExecuteMany {
        ticket: Ticket,
        sql: String,
        /// The first sets.
        params: Vec<Parameters>,
        /// The rest, in chunks the caller builds while the worker runs the
        /// previous ones; `None` when the first chunk was all.
        more: Option<Receiver<Feed>>,
        reply: Reply<u64>,
    },
    /// The next rows of an open cursor.
    Fetch {
        cursor: u64,
        ticket: Ticket,
        limit: Limit,
        reply: Reply<Batch>,
    },
    /// Finalize an open cursor early.
    CloseCursor { cursor: u64 },
    /// Transaction control; without a reply slot errors are ignored (rollback on drop).
    Tx { op: TxOp, reply: Option<Reply<()>> },
    /// A pending rollback (see `pool::Undo`): run as a `Tx` without a reply,
    /// unless a rollback numbered `id` or later already ran.
    Undo { op: TxOp, id: u64 },
    /// Close any cursor and roll back any transaction: the connection goes
    /// back to the pool. Rollbacks numbered up to `undone` are done with.
    Reset { undone: u64 },
    /// Run user code against the raw connection.
    Call { ticket: Ticket, call: Call },
    /// The names of the tables visible to the connection.
    TableNames { reply: Reply<Vec<String>> },
    /// Run a script of statements without parameters or results (a
    /// migration); answers whether a transaction is open afterwards.
    Script {
        ticket: Ticket,
        sql: String,
        reply: Reply<bool>,
    },
    /// A cheap liveness check, before the pool hands the connection out.
    Ping { reply: Reply<()> },
}

/// A chunk of an `execute_many` batch after its first.
pub(crate) enum Feed {
    /// More parameter sets.
    Sets(Vec<Parameters>),
    /// The batch is complete: commit it. A feed that closes without this
    /// message (the caller's iterator panicked) has its batch rolled back.
    End,
}

/// Transaction control statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxOp {
    /// `BEGIN`, with its options (rendered by the driver: see `Driver::begin_sql`).
    Begin(TxOptions),
    Commit,
    Rollback,
    /// `SAVEPOINT` at this nesting depth (1 for the first nested level).
    Savepoint(u32),
    /// `RELEASE` the savepoint at this depth.
    Release(u32),
    /// `ROLLBACK TO` and `RELEASE` the savepoint at this depth.
    RollbackTo(u32),
}

impl TxOp {
    /// The operation's first keyword, as spans and metrics name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TxOp::Begin { .. } => "BEGIN",
            TxOp::Commit => "COMMIT",
            TxOp::Rollback | TxOp::RollbackTo(_) => "ROLLBACK",
            TxOp::Savepoint(_) => "SAVEPOINT",
            TxOp::Release(_) => "RELEASE",
        }
    }

    pub(crate) fn sql(self) -> String {
        match self {
            TxOp::Begin(_) => "BEGIN".into(),
            TxOp::Commit => "COMMIT".into(),
            TxOp::Rollback => "ROLLBACK".into(),
            TxOp::Savepoint(d) => format!("SAVEPOINT sqlaio_sp_{d}"),
            TxOp::Release(d) => format!("RELEASE SAVEPOINT sqlaio_sp_{d}"),
            TxOp::RollbackTo(d) => {
                format!("ROLLBACK TO SAVEPOINT sqlaio_sp_{d}; RELEASE SAVEPOINT sqlaio_sp_{d}")
            }
        }
    }
}

/// How many rows a fetch wants.
#[derive(Debug)]
pub(crate) enum Limit {
    /// Exactly this many, or fewer at the end.
    Rows(usize),
    /// One streaming batch: this many rows, or [`BATCH_BYTES`] bytes.
    Stream(usize),
    /// The rows `execute` sends with its answer: as [`Limit::Stream`], but
    /// as [`Row`]s rather than [`Packed`] (for the one-row results of most
    /// queries, packing would only add work).
    First(usize),
    /// Everything that is left, each row handed to the sink on the worker as
    /// it is read (so the rows never pile up as `Row`s); the sink comes back
    /// in the batch.
    Into(Box<dyn Sink>),
}

/// Takes rows on the worker as they are read, turning each into what the
/// caller asked for; see [`Limit::Into`].
pub(crate) trait Sink: Send {
    /// Takes one row (the same `Row`, refilled, comes for every row); it
    /// may move values out, which the next row's values replace.
    fn push(&mut self, row: &mut Row) -> Result<()>;
    /// The sink itself, for the caller to take its rows out.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl std::fmt::Debug for dyn Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink")
    }
}

/// Rows sent across in one message.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) rows: Vec<Row>,
    /// The rows of a [`Limit::Rows`] or [`Limit::Stream`] fetch, for the
    /// caller to unpack (`rows` is empty then).
    pub(crate) packed: Option<Packed>,
    /// No more rows follow; the worker has finalized the statement.
    pub(crate) done: bool,
    /// The sink of a [`Limit::Into`] fetch, holding every row.
    pub(crate) sink: Option<Box<dyn Sink>>,
}

impl Batch {
    /// A batch of `rows`.
    pub(crate) fn new(rows: Vec<Row>, done: bool) -> Batch {
        Batch {
            rows,
            packed: None,
            done,
            sink: None,
        }
    }

    /// How many rows it holds.
    pub(crate) fn len(&self) -> usize {
        self.packed.as_ref().map_or(self.rows.len(), Packed::len)
    }

    /// Puts its rows behind the rows in `buffer`, unpacked on the calling
    /// thread if they came packed.
    pub(crate) fn append_to(self, buffer: &mut VecDeque<Row>) {
        match self.packed {
            Some(packed) => packed.unpack_into(buffer),
            // The first batch of a result: its vector becomes the buffer.
            None if buffer.is_empty() => *buffer = self.rows.into(),
            None if self.rows.len() > buffer.len() => {
                // Keep the larger allocation: the buffered rows go in front.
                let mut rows = self.rows;
                rows.splice(0..0, buffer.drain(..));
                *buffer = rows.into();
            }
            None => buffer.extend(self.rows),
        }
    }
}

/// What `execute` answers: everything known about the result, and its first rows.
#[derive(Debug)]
pub(crate) struct Header {
    /// The column names; `None` for a statement that returns no rows (no
    /// allocation for the inserts and updates that make up most writes).
    pub(crate) keys: Option<ColumnNames>,
    pub(crate) rowcount: u64,
    pub(crate) last_insert_id: Option<i64>,
    pub(crate) returns_rows: bool,
    pub(crate) batch: Batch,
    /// A lane statement the worker did not run, handed back (see [`Ticket::lane`]).
    pub(crate) bounced: Option<Box<(String, Parameters)>>,
}

impl Header {
    /// The answer to a lane statement that did not run (it found a
    /// transaction or a result still open on the connection, or the worker
    /// stopped first): the statement goes back to its caller, to run on a
    /// connection of its own.
    pub(crate) fn bounce(reply: Reply<Header>, sql: String, params: Parameters) {
        let _ = reply.send(Ok(Header {
            keys: None,
            rowcount: 0,
            last_insert_id: None,
            returns_rows: false,
            batch: Batch::new(Vec::new(), true),
            bounced: Some(Box::new((sql, params))),
        }));
    }
}

/// Runs user code against the raw connection, catching panics.
pub(crate) fn call<R, T, E, F>(f: F) -> (Call, oneshot::Receiver<Result<Result<T, E>>>)
where
    R: Any,
    T: Send + 'static,
    E: Send + 'static,
    F: FnOnce(&mut R) -> Result<T, E> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let call: Call = Box::new(move |raw: &mut dyn Any, driver: &'static str| {
        let (panicked, answer) = if reply.is_canceled() {
            return (false, Box::new(|_| {}) as Deliver);
        } else if let Some(raw) = raw.downcast_mut::<R>() {
            match catch_unwind(AssertUnwindSafe(|| f(raw))) {
                Ok(result) => (false, Ok(result)),
                Err(panic) => (true, Err(Error::panic(panic))),
            }
        } else {
            let wrong = Error::WrongDriver {
                expected: std::any::type_name::<R>(),
                actual: driver,
            };
            (false, Err(wrong))
        };
        let deliver: Deliver = Box::new(move |timed_out| {
            // Whatever the closure made of its interrupted statement, say why.
            let answer = if timed_out {
                Err(Error::Timeout)
            } else {
                answer
            };
            let _ = reply.send(answer);
        });
        (panicked, deliver)
    });
    (call, answer)
}
