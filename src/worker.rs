//! The worker side of a connection: the requests it serves and its loop.
//!
//! Each connection owns one worker loop, run as a [`Job`] by the engine's
//! strategy. The driver object is created, used and dropped on that thread
//! only. The async handle ([`Connection`](crate::Connection)) sends it
//! [`Request`]s over a bounded channel; every request that expects an answer
//! carries its own one-shot reply slot, so an answer can never reach the
//! wrong caller.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_channel::Receiver;
use event_listener::Event;
use futures_channel::oneshot;

use crate::config::Target;
use crate::error::{Error, Result};
use crate::packed::Packed;
use crate::params::Parameters;
use crate::row::{ColumnNames, Row, Values};
use crate::strategy::{Job, Strategy};
use crate::timer::{Deadline, Timer};
use crate::value::Value;

/// How long a worker waits for the engine's write permit in single-writer mode.
pub(crate) const WRITE_PATIENCE: Duration = Duration::from_secs(5);

/// How many requests may wait in a connection's queue before senders wait.
pub(crate) const QUEUE_CAPACITY: usize = 16;
/// Rows in the first batch of a result (sent with the `execute` answer).
pub(crate) const BATCH_ROWS: usize = 256;
/// Rows in a streamed batch, at most: a result read past its first batch
/// gets batches twice as large each time, up to this.
pub(crate) const STREAM_ROWS: usize = 4096;
/// Bytes of text and blob data in a streamed batch, roughly at most.
pub(crate) const BATCH_BYTES: usize = 1 << 20;

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
pub(crate) struct Answer<'a, T> {
    reply: Reply<T>,
    shared: &'a Shared,
}

impl<T> Answer<'_, T> {
    /// Records whether a transaction is open, then answers; `false` if the caller is gone.
    pub(crate) fn send(self, in_tx: bool, value: Result<T>) -> bool {
        self.shared.in_tx.store(in_tx, Ordering::SeqCst);
        self.reply.send(value).is_ok()
    }
}

/// Why a running request was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Its caller dropped the future.
    Cancelled,
    /// It ran past its deadline.
    #[allow(dead_code)]
    Timeout,
}

/// How a driver interrupts the statement running on its connection.
pub(crate) struct Kill {
    /// Interrupts whatever statement the connection is running.
    pub(crate) run: Box<dyn Fn() + Send + Sync>,
    /// `run` blocks (a network round trip): call it on a thread of its own.
    pub(crate) blocking: bool,
}

/// Which request runs, and its deadline if it has one.
#[derive(Default)]
struct Running {
    seq: u64,
    reason: Option<Reason>,
    deadline: Option<Deadline>,
    /// The next kill for an interrupted request that still runs.
    again: Option<Deadline>,
}

/// What the interrupter knows, under one lock.
#[derive(Default)]
struct Requests {
    running: Running,
    /// Requests cancelled before they started: the worker may have taken
    /// one from its queue, and seen its caller still waiting, just before
    /// the caller gave up. It is skipped when it would start.
    early: Vec<u64>,
}

/// How many requests an early cancel is remembered for (see
/// [`Requests::early`]): requests start in about the order they were
/// numbered, give or take the connection's queue.
const EARLY_WINDOW: u64 = 4 * QUEUE_CAPACITY as u64;

/// How long after a kill an interrupted request that still runs is killed
/// again, doubling up to [`KILL_AGAIN_MAX`]: a kill that reaches the
/// connection before its statement is under way is lost (SQLite clears it
/// when a statement starts; a PostgreSQL server process that is idle
/// ignores it).
const KILL_AGAIN_FIRST: Duration = Duration::from_millis(50);
const KILL_AGAIN_MAX: Duration = Duration::from_secs(1);

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

/// Aims interrupts at one request: the worker marks which request runs, and
/// an interrupt for an earlier request does nothing; one for a request yet
/// to start has it skipped (see [`Interrupter::start`]).
pub(crate) struct Interrupter {
    requests: Mutex<Requests>,
    /// An interrupt was sent since the worker last asked (see [`Interrupter::take_sent`]).
    sent: AtomicBool,
    kill: Kill,
    timer: Arc<Timer>,
    this: Weak<Interrupter>,
}

impl Interrupter {
    fn new(kill: Kill, timer: Arc<Timer>) -> Arc<Interrupter> {
        Arc::new_cyclic(|this| Interrupter {
            requests: Mutex::new(Requests::default()),
            sent: AtomicBool::new(false),
            kill,
            timer,
            this: this.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Requests> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The worker starts running a request; past its timeout, it is
    /// interrupted. `false` when its caller gave up before it started: the
    /// worker then skips it and calls [`finish`](Interrupter::finish).
    #[must_use = "a request cancelled before it started must be skipped"]
    pub(crate) fn start(&self, ticket: Ticket) -> bool {
        // Scheduled before the lock is taken: the timer's lock comes first.
        let deadline = ticket.timeout.and_then(|after| {
            let this = self.this.clone();
            let seq = ticket.seq;
            self.timer.schedule(
                after,
                Box::new(move || {
                    // Not on the timer's thread when the kill blocks: other
                    // deadlines must not wait for a network round trip.
                    if let Some(this) = this.upgrade() {
                        this.interrupt(seq, Reason::Timeout);
                    }
                }),
            )
        });
        // One look under the lock: a cancel lands either before it (and is
        // found here) or after it (and finds the request running).
        let mut requests = self.lock();
        let early = &mut requests.early;
        let cancelled = early.contains(&ticket.seq);
        if !early.is_empty() {
            early.retain(|&seq| seq != ticket.seq && seq + EARLY_WINDOW > ticket.seq);
        }
        let (reason, deadline, unused) = if cancelled {
            (Some(Reason::Cancelled), None, deadline)
        } else {
            (None, deadline, None)
        };
        requests.running = Running {
            seq: ticket.seq,
            reason,
            deadline,
            again: None,
        };
        drop(requests);
        // Dropped outside the lock: cancelling a deadline takes the timer's lock.
        drop(unused);
        !cancelled
    }

    /// The worker is done with its request; says whether it was interrupted.
    fn finish(&self) -> Option<Reason> {
        let running = std::mem::take(&mut self.lock().running);
        // Dropped outside the lock: cancelling a deadline takes the timer's lock.
        drop((running.deadline, running.again));
        running.reason
    }

    /// Interrupts request `seq` if it is the one running, or has yet to start
    /// (see [`start`](Interrupter::start)).
    pub(crate) fn interrupt(self: &Arc<Self>, seq: u64, reason: Reason) {
        if self.kill.blocking {
            let this = self.clone();
            self.timer
                .spawn_helper("sqlaio-cancel", move || this.interrupt_now(seq, reason));
        } else {
            self.interrupt_now(seq, reason);
        }
    }

    /// Interrupts whatever request is running (for `Engine::close` past its deadline).
    pub(crate) fn interrupt_running(self: &Arc<Self>) {
        let seq = self.lock().running.seq;
        self.interrupt(seq, Reason::Cancelled);
    }

    fn interrupt_now(&self, seq: u64, reason: Reason) {
        // Holding the lock keeps the worker from moving on to another request meanwhile.
        if seq == 0 {
            return;
        }
        let mut requests = self.lock();
        let running = &mut requests.running;
        if running.seq == seq {
            if running.reason.is_none() {
                running.reason = Some(reason);
                self.sent.store(true, Ordering::SeqCst);
                (self.kill.run)();
                drop(requests);
                self.kill_again_after(seq, KILL_AGAIN_FIRST);
            }
        } else if reason == Reason::Cancelled && seq + EARLY_WINDOW > running.seq {
            // Not running: maybe about to start, maybe finished (the caller
            // gave up as its answer came). Only the first is ever looked up.
            if !requests.early.contains(&seq) {
                requests.early.push(seq);
            }
        }
    }

    /// Kills request `seq` again after `after` if it is still running then.
    fn kill_again_after(&self, seq: u64, after: Duration) {
        let this = self.this.clone();
        let again = self.timer.schedule(
            after,
            Box::new(move || {
                let Some(this) = this.upgrade() else { return };
                if this.kill.blocking {
                    let killer = this.clone();
                    this.timer.spawn_helper("sqlaio-cancel", move || {
                        killer.kill_again(seq, after);
                    });
                } else {
                    this.kill_again(seq, after);
                }
            }),
        );
        let replaced = {
            let mut requests = self.lock();
            if requests.running.seq == seq {
                std::mem::replace(&mut requests.running.again, again)
            } else {
                again
            }
        };
        // Dropped outside the lock: cancelling a deadline takes the timer's lock.
        drop(replaced);
    }

    /// See [`kill_again_after`](Interrupter::kill_again_after); `last` is the
    /// wait that led here.
    fn kill_again(&self, seq: u64, last: Duration) {
        let requests = self.lock();
        let running = &requests.running;
        if seq != 0 && running.seq == seq && running.reason.is_some() {
            self.sent.store(true, Ordering::SeqCst);
            (self.kill.run)();
            drop(requests);
            self.kill_again_after(seq, (last * 2).min(KILL_AGAIN_MAX));
        }
    }

    /// `true` when the running request was interrupted.
    fn interrupted(&self) -> bool {
        self.lock().running.reason.is_some()
    }

    /// `true` when an interrupt was sent since the last call: the worker then
    /// lets its driver absorb one that may still be on its way.
    fn take_sent(&self) -> bool {
        self.sent.swap(false, Ordering::SeqCst)
    }

    /// Ends the running request, turning an error caused by a timeout into [`Error::Timeout`].
    pub(crate) fn end<T>(&self, result: Result<T>) -> Result<T> {
        match (self.finish(), result) {
            (Some(Reason::Timeout), Err(_)) => Err(Error::Timeout),
            (_, result) => result,
        }
    }

    /// Runs `work` as the ticket's request; see [`end`](Interrupter::end).
    /// A request cancelled before it started is skipped, with
    /// [`Error::Closed`] for an answer nobody waits for.
    pub(crate) fn run<T>(&self, ticket: Ticket, work: impl FnOnce() -> Result<T>) -> Result<T> {
        if !self.start(ticket) {
            return self.skipped();
        }
        let result = work();
        self.end(result)
    }

    /// Ends a request that [`start`](Interrupter::start) said to skip; the
    /// answer is for a caller that no longer waits.
    pub(crate) fn skipped<T>(&self) -> Result<T> {
        self.finish();
        Err(Error::Closed("request"))
    }
}

impl std::fmt::Debug for Interrupter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interrupter")
            .field("running", &self.lock().running.seq)
            .finish()
    }
}

/// What a driver's `execute` needs from the loop to serve a cursor.
pub(crate) struct Link<'a> {
    pub(crate) rx: &'a Receiver<Request>,
    pub(crate) interrupter: &'a Interrupter,
    /// The engine's write permit, in single-writer mode.
    pub(crate) gate: Option<&'a WriteGate>,
    /// Callers waiting for a pooled connection (see [`Wait::next_request`]).
    pub(crate) waiting: &'a AtomicUsize,
    /// What the worker shares with the connection's handles.
    pub(crate) shared: &'a Shared,
}

impl Link<'_> {
    /// Takes the write permit for one autocommit write, if the engine has one.
    pub(crate) fn write(&self, patience: Duration) -> Result<Option<Permit<'_>>> {
        match self.gate {
            Some(gate) => {
                gate.take(patience)?;
                Ok(Some(Permit(gate)))
            }
            None => Ok(None),
        }
    }
}

/// A write permit held for one statement.
pub(crate) struct Permit<'a>(&'a WriteGate);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.give_back();
    }
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
    /// `BEGIN`; `true` takes SQLite's write lock at once (`BEGIN IMMEDIATE`).
    Begin {
        immediate: bool,
    },
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
    fn sql(self) -> String {
        match self {
            TxOp::Begin { immediate: true } => "BEGIN IMMEDIATE".into(),
            TxOp::Begin { immediate: false } => "BEGIN".into(),
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
    /// Takes one row (the same `Row`, refilled, comes for every row).
    fn push(&mut self, row: &Row) -> Result<()>;
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
    fn bounce(reply: Reply<Header>, sql: String, params: Parameters) {
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

/// What a driver's `execute` leaves the loop with.
pub(crate) enum Next {
    /// Ready for the next request.
    Idle,
    /// A request arrived while a cursor was open; the cursor is closed, serve this next.
    Request(Request),
    /// Every sender is gone: stop.
    Disconnected,
}

/// A blocking driver, as the worker loop sees it.
pub(crate) trait Driver: Sized + 'static {
    /// The database's name in messages and thread names.
    const NAME: &'static str;
    /// The database knows `BEGIN IMMEDIATE`.
    const HAS_IMMEDIATE: bool = false;
    /// Opens a connection on the worker thread.
    fn open(target: &Target) -> Result<Self>;
    /// How to interrupt the statement running on this connection from another thread.
    fn kill(&self) -> Kill;
    /// The raw driver connection, for `run_in_thread`.
    fn raw(&mut self) -> &mut dyn Any;
    /// `true` while a transaction is open.
    fn in_transaction(&mut self) -> bool;
    /// `true` once the connection is unusable (the server closed it); the worker then stops.
    fn is_broken(&mut self) -> bool {
        false
    }
    /// `true` when the open transaction failed and can only be rolled back
    /// (PostgreSQL); a `COMMIT` would silently roll it back.
    fn aborted(&mut self) -> bool {
        false
    }
    /// `true` once the connection should be replaced when it is back in the
    /// pool (it still serves its current holder).
    fn worn_out(&mut self) -> bool {
        false
    }
    /// A cheap check that the connection still works.
    fn ping(&mut self) -> Result<()> {
        Ok(())
    }
    /// Called between requests after an interrupt was sent: makes sure an
    /// interrupt that reaches the database late cannot hit the next request.
    /// SQLite's interrupt acts at once and is forgotten when the next statement
    /// starts; PostgreSQL needs this only when it fell back to the protocol's
    /// cancel request, which the server acts on later.
    fn absorb_interrupt(&mut self) {}
    /// Runs a statement without parameters or results.
    fn batch(&mut self, sql: &str) -> Result<()>;
    /// Runs a statement, answers `reply` with its header, then serves its cursor from `rx`.
    fn execute(
        &mut self,
        ticket: Ticket,
        sql: &str,
        params: Parameters,
        answer: Answer<'_, Header>,
        link: &Link<'_>,
    ) -> Next;
    /// Runs `sql` once per parameter set; answers the total rows affected.
    /// The worker wraps the call in a transaction or savepoint, so a failure
    /// undoes the whole batch.
    fn execute_many(&mut self, sql: &str, params: &[Parameters]) -> Result<u64>;
    /// The names of the tables visible to the connection, sorted.
    fn table_names(&mut self) -> Result<Vec<String>>;
}

/// State a worker shares with its connection handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// A transaction is open, as of the last request served.
    pub(crate) in_tx: AtomicBool,
    /// The worker loop has stopped.
    pub(crate) stopped: AtomicBool,
    /// The pool replaces the connection instead of handing it out again.
    pub(crate) worn_out: AtomicBool,
    /// The worker is not sleeping (it runs a request or checks for the next
    /// one), so a request sent now is picked up without waking it (see
    /// [`Wait::next_request`]).
    pub(crate) awake: AtomicBool,
    /// Callers wait for a pooled connection of this engine, as the worker
    /// last saw: callers then leave their threads to the others.
    pub(crate) crowded: AtomicBool,
    /// Tasks take turns on the connection (see [`Wait::next_request`]):
    /// callers then leave their threads to the others, as when crowded.
    taking_turns: AtomicBool,
    /// About how long the worker's recent requests took, in nanoseconds
    /// (a moving average).
    pub(crate) busy_ns: AtomicU64,
    /// The same average with each request counted as at most
    /// [`QUICK_SAMPLE_CAP`], for a caller's checks: one slow request (a
    /// checkpoint, a cold page) among quick ones does not stop them.
    quick_ns: AtomicU64,
    /// When the request the worker runs now started ([`clock`] nanoseconds),
    /// or 0 between requests.
    running_since: AtomicU64,
}

/// `at` in nanoseconds since the first connection's queue was made (at least 1).
fn clock(at: std::time::Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The process's [`clock`] origin, set before any worker starts.
fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// The longest a caller checks for its answer before it lets its executor
/// sleep, and the longest recent requests may take for it to check at all
/// (enough for a PostgreSQL point read on a local server, 40-60 µs).
const CALLER_SPIN: Duration = Duration::from_micros(150);
const CALLER_SPIN_BUSY: Duration = Duration::from_micros(80);

/// The most one request counts for in the average that decides whether a
/// caller checks for its answer: a slow request among quick ones moves it
/// by a little, while about five slow ones in a row stop the checks (twice
/// [`CALLER_SPIN_BUSY`], whatever that is).
const QUICK_SAMPLE_CAP: Duration = CALLER_SPIN_BUSY.saturating_mul(2);

impl Shared {
    /// Notes that a request started.
    fn note_start(&self, at: std::time::Instant) {
        self.running_since.store(clock(at), Ordering::Relaxed);
    }

    /// How long, at `now`, the request the worker runs has been running;
    /// zero between requests.
    pub(crate) fn running_for(&self, now: std::time::Instant) -> Duration {
        match self.running_since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_nanos(clock(now).saturating_sub(since)),
        }
    }

    /// Notes how long one request took.
    fn note_busy(&self, took: Duration) {
        self.running_since.store(0, Ordering::Relaxed);
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        // A moving average over about the last eight requests.
        let average = |old: u64, took: u64| {
            if old == 0 {
                took
            } else {
                old - old / 8 + took / 8
            }
        };
        let old = self.busy_ns.load(Ordering::Relaxed);
        self.busy_ns.store(average(old, took), Ordering::Relaxed);
        let capped = took.min(QUICK_SAMPLE_CAP.as_nanos() as u64);
        let old = self.quick_ns.load(Ordering::Relaxed);
        self.quick_ns.store(average(old, capped), Ordering::Relaxed);
    }

    /// How long a caller about to send a request should check for its answer
    /// before it lets its executor sleep: zero unless the worker is awake to
    /// pick the request up at once and its recent requests were short, since
    /// waking a sleeping thread costs microseconds (tens of them on an idle
    /// virtual machine), more than such a request takes.
    ///
    /// `queued` is how many requests wait in the connection's queue ahead of
    /// this one (other tasks sharing the connection): then the answer comes
    /// after theirs, and the caller sleeps. It sleeps too while tasks take
    /// turns on the connection even if none is queued now: the other tasks
    /// need its executor's threads to send their next requests.
    pub(crate) fn spin_budget(&self, queued: usize) -> Duration {
        if queued > 0
            || !self.awake.load(Ordering::Relaxed)
            || self.crowded.load(Ordering::Relaxed)
            || self.taking_turns.load(Ordering::Relaxed)
        {
            return Duration::ZERO;
        }
        let busy = Duration::from_nanos(self.quick_ns.load(Ordering::Relaxed));
        if busy > CALLER_SPIN_BUSY {
            return Duration::ZERO;
        }
        (busy * 2 + Duration::from_micros(5)).min(CALLER_SPIN)
    }
}

/// Awaits a worker's answer; first checks for it, without letting the
/// executor sleep, for up to `spin` (see [`Shared::spin_budget`]).
///
/// The checks do not register the task's waker, so an answer found by them
/// wakes nothing (a multi-thread runtime would otherwise also wake an idle
/// thread of its own to look for work); only when they give up is the
/// answer awaited as usual.
pub(crate) async fn answer<T>(
    mut answer: oneshot::Receiver<Result<T>>,
    spin: Duration,
) -> Result<T> {
    let mut spin = (!spin.is_zero()).then_some(spin);
    std::future::poll_fn(|cx| {
        if let Some(spin) = spin.take() {
            let start = std::time::Instant::now();
            let mut round = 0u32;
            loop {
                match answer.try_recv() {
                    Ok(Some(result)) => return std::task::Poll::Ready(result),
                    Ok(None) if start.elapsed() < spin => pause(&mut round, 4),
                    Ok(None) => break,
                    Err(_) => return std::task::Poll::Ready(Err(Error::WorkerGone)),
                }
            }
        }
        std::pin::Pin::new(&mut answer)
            .poll(cx)
            .map(|result| result.unwrap_or(Err(Error::WorkerGone)))
    })
    .await
}

/// Counts live workers so that `Engine::close` can wait for them all.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    live: AtomicUsize,
    changed: Event,
}

impl Tracker {
    pub(crate) fn enter(self: &Arc<Self>) -> TrackerGuard {
        self.live.fetch_add(1, Ordering::SeqCst);
        TrackerGuard(self.clone())
    }

    /// How many workers are running.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Waits until no worker is running.
    pub(crate) async fn idle(&self) {
        loop {
            if self.live() == 0 {
                return;
            }
            let listener = self.changed.listen();
            if self.live() == 0 {
                return;
            }
            listener.await;
        }
    }
}

/// Counts one running thread until dropped.
pub(crate) struct TrackerGuard(Arc<Tracker>);

impl Drop for TrackerGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify(usize::MAX);
    }
}

/// The sending half of a running worker.
pub(crate) struct Spawned {
    pub(crate) sender: async_channel::Sender<Request>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) interrupter: Arc<Interrupter>,
}

/// Code run on each new connection's worker, with the raw driver connection.
pub(crate) type Hook = Arc<dyn Fn(&mut dyn Any, &'static str) -> Result<()> + Send + Sync>;

/// What every worker of one engine shares.
pub(crate) struct Setup {
    pub(crate) target: Target,
    pub(crate) timer: Arc<Timer>,
    pub(crate) after_connect: Option<Hook>,
    /// In single-writer mode, the engine's one write permit.
    pub(crate) gate: Option<Arc<WriteGate>>,
    /// Callers waiting for a connection of the pool, as the pool last counted them.
    pub(crate) waiting: AtomicUsize,
}

/// One writer at a time: a permit that workers take before writing (blocking
/// their own thread, never an executor's), first come, first served.
///
/// SQLite's own busy handler keeps no order: under load one writer can lose
/// every race for the whole busy timeout. Queued here, the engine's writers
/// take turns, and the busy timeout only has to cover other processes.
#[derive(Debug, Default)]
pub(crate) struct WriteGate {
    state: Mutex<GateState>,
    freed: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    taken: bool,
    /// Waiters' numbers, in arrival order.
    queue: std::collections::VecDeque<u64>,
    next: u64,
}

impl WriteGate {
    /// Takes the permit in turn, waiting at most `patience`.
    pub(crate) fn take(&self, patience: Duration) -> Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let me = state.next;
        state.next += 1;
        state.queue.push_back(me);
        let (mut state, wait) = self
            .freed
            .wait_timeout_while(state, patience, |s| s.taken || s.queue.front() != Some(&me))
            .unwrap_or_else(|e| e.into_inner());
        if wait.timed_out() && (state.taken || state.queue.front() != Some(&me)) {
            state.queue.retain(|&n| n != me);
            let behind = !state.queue.is_empty();
            drop(state);
            if behind {
                // The one behind may now be first.
                self.freed.notify_all();
            }
            return Err(Error::Database {
                message: format!(
                    "database is locked: other connections of this engine kept the write permit for {} s",
                    patience.as_secs()
                ),
                source: "single-writer permit wait timed out".into(),
            });
        }
        state.queue.pop_front();
        state.taken = true;
        Ok(())
    }

    pub(crate) fn give_back(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.taken = false;
        // Waking nobody still costs a system call: every autocommit write would pay it.
        let waiting = !state.queue.is_empty();
        drop(state);
        if waiting {
            self.freed.notify_all();
        }
    }
}

/// Starts a worker on `strategy` and waits until its connection is open.
///
/// # Cancellation
/// If the returned future is dropped, the worker finishes opening, sees that
/// nobody waits for it, closes the connection and exits.
pub(crate) async fn spawn(
    setup: &Arc<Setup>,
    strategy: &dyn Strategy,
    tracker: &Arc<Tracker>,
    id: u64,
) -> Result<Spawned> {
    let (open_tx, open_rx) = oneshot::channel();
    let (sender, rx) = channel();
    let shared = Arc::new(Shared::default());
    start(
        setup,
        strategy,
        tracker,
        id,
        (rx, shared.clone()),
        Box::new(move |opened| open_tx.send(opened).is_ok()),
    )?;
    match open_rx.await {
        Ok(Ok(interrupter)) => Ok(Spawned {
            sender,
            shared,
            interrupter,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::WorkerGone),
    }
}

/// A connection's request queue, bounded.
pub(crate) fn channel() -> (async_channel::Sender<Request>, Receiver<Request>) {
    epoch();
    async_channel::bounded(QUEUE_CAPACITY)
}

/// Starts a worker on `strategy` without waiting: it serves `rx` and shares
/// `shared` with the handles. `opened` is called on the worker once the
/// connection is open (or failed to open) and says whether anyone still wants
/// it; if not, the worker closes the connection.
pub(crate) fn start(
    setup: &Arc<Setup>,
    strategy: &dyn Strategy,
    tracker: &Arc<Tracker>,
    id: u64,
    (rx, shared): (Receiver<Request>, Arc<Shared>),
    opened: Opened,
) -> Result<()> {
    let guard = tracker.enter();
    let worker_shared = shared.clone();
    let worker_setup = setup.clone();
    let (name, run): (&str, WorkerLoop) = match &setup.target {
        #[cfg(feature = "sqlite")]
        Target::Sqlite(_) => (
            crate::driver::sqlite::SqliteDriver::NAME,
            run::<crate::driver::sqlite::SqliteDriver>,
        ),
        #[cfg(not(feature = "sqlite"))]
        Target::Sqlite(_) => {
            let _ = (guard, rx, opened, worker_shared, worker_setup, id);
            return Err(Error::Config(
                "sqlite URLs need the \"sqlite\" feature of sqlaio".into(),
            ));
        }
        #[cfg(feature = "postgres")]
        Target::Postgres(_) => (
            crate::driver::postgres::PostgresDriver::NAME,
            run::<crate::driver::postgres::PostgresDriver>,
        ),
    };
    let job = Job::new(format!("sqlaio-{name}-{id}"), move || {
        let _guard = guard;
        run(&worker_setup, rx, opened, &worker_shared);
    });
    strategy.spawn(job).map_err(Error::Spawn)
}

/// Told, on the worker, that its connection opened (or why not); answers
/// whether anyone still wants the connection.
pub(crate) type Opened = Box<dyn FnOnce(Result<Arc<Interrupter>>) -> bool + Send>;

/// A worker loop for one driver.
type WorkerLoop = fn(&Setup, Receiver<Request>, Opened, &Shared);

/// A worker loop: open, serve until every sender is gone, close.
fn run<D: Driver>(setup: &Setup, rx: Receiver<Request>, open: Opened, shared: &Shared) {
    let opened = catch_unwind(AssertUnwindSafe(|| {
        let mut driver = D::open(&setup.target)?;
        if let Some(hook) = &setup.after_connect {
            hook(driver.raw(), D::NAME)?;
        }
        Ok(driver)
    }));
    let mut driver = match opened {
        Ok(Ok(driver)) => driver,
        Ok(Err(e)) => {
            open(Err(e));
            return;
        }
        Err(panic) => {
            open(Err(Error::panic(panic)));
            return;
        }
    };
    let interrupter = Interrupter::new(driver.kill(), setup.timer.clone());
    if open(Ok(interrupter.clone())) {
        let link = Link {
            rx: &rx,
            interrupter: &interrupter,
            gate: setup.gate.as_deref(),
            waiting: &setup.waiting,
            shared,
        };
        let served = catch_unwind(AssertUnwindSafe(|| serve(&mut driver, &link, shared)));
        if served.is_err() {
            // A bug in a driver path: stop this connection, never the process.
            rx.close();
        }
    }
    shared.stopped.store(true, Ordering::SeqCst);
    refuse_queued(&rx);
    drop(driver);
}

/// Answers the requests still queued on a worker that stops (its connection
/// was lost or broke): none of them ran. An engine-level statement goes back
/// to its caller to run on another connection; another statement fails as
/// one sent after the stop would, with [`Error::Closed`]; any other request
/// is dropped, which tells its caller the worker is gone. The queue itself
/// lives as long as the connection's handles, which those callers hold
/// while they wait, so it must not be left to keep them.
fn refuse_queued(rx: &Receiver<Request>) {
    rx.close();
    while let Ok(request) = rx.try_recv() {
        if let Request::Execute {
            ticket,
            sql,
            params,
            reply,
        } = request
        {
            if ticket.lane {
                Header::bounce(reply, sql, params);
            } else {
                let _ = reply.send(Err(Error::Closed("connection")));
            }
        }
    }
}

fn serve<D: Driver>(driver: &mut D, link: &Link<'_>, shared: &Shared) {
    let rx = link.rx;
    // Transaction levels opened through `Tx` requests: if the database ends the
    // transaction on its own (an interrupted or failed statement), statements
    // are refused until the handle rolls back, rather than run in autocommit.
    let mut depth = 0u32;
    // In single-writer mode: the write permit this connection's transaction holds.
    let mut held: Option<Permit<'_>> = None;
    let mut next: Option<Request> = None;
    // The number of the last pending rollback run (see `Request::Undo`).
    let mut undone = 0u64;
    let mut wait = Wait::default();
    let mut started: Option<std::time::Instant> = None;
    loop {
        if let Some(started) = started.take() {
            shared.note_busy(started.elapsed());
        }
        if held.is_some() && depth == 0 {
            held = None;
        }
        if link.interrupter.take_sent() {
            driver.absorb_interrupt();
        }
        if driver.worn_out() {
            shared.worn_out.store(true, Ordering::SeqCst);
        }
        if driver.is_broken() {
            // Callers see their request fail; the pool discards the connection.
            rx.close();
            return;
        }
        let request = match next.take() {
            Some(request) => request,
            None => match wait.next_request(rx, link.waiting, shared) {
                Some(request) => request,
                None => return,
            },
        };
        let now = std::time::Instant::now();
        shared.note_start(now);
        started = Some(now);
        let lost = depth > 0 && !driver.in_transaction();
        match request {
            Request::Execute {
                ticket,
                sql,
                params,
                reply,
            } => {
                if reply.is_canceled() {
                    continue;
                }
                if ticket.lane && (depth > 0 || driver.in_transaction()) {
                    Header::bounce(reply, sql, params);
                    continue;
                }
                let answer = Answer { reply, shared };
                if lost {
                    answer.send(false, Err(Error::TransactionAborted));
                    continue;
                }
                match driver.execute(ticket, &sql, params, answer, link) {
                    Next::Idle => {}
                    Next::Request(request) => next = Some(request),
                    Next::Disconnected => return,
                }
            }
            Request::ExecuteMany {
                ticket,
                sql,
                params,
                more,
                reply,
            } => {
                if !reply.is_canceled() {
                    let mut spent = Vec::new();
                    // Outside a transaction the batch is one write transaction of its own.
                    let permit = if held.is_none() && !driver.in_transaction() {
                        link.write(WRITE_PATIENCE)
                    } else {
                        Ok(None)
                    };
                    let result = if lost {
                        Err(Error::TransactionAborted)
                    } else if let Err(e) = permit {
                        Err(e)
                    } else {
                        link.interrupter.run(ticket, || {
                            atomically(driver, |driver| {
                                run_chunks(
                                    driver,
                                    link.interrupter,
                                    &sql,
                                    &params,
                                    more.as_ref(),
                                    &mut spent,
                                )
                            })
                        })
                    };
                    // A caller still sending chunks learns that the batch stopped.
                    if let Some(more) = &more {
                        more.close();
                    }
                    let answer = Answer { reply, shared };
                    answer.send(driver.in_transaction(), result);
                    // The sets are freed after the answer, off the caller's wait.
                    drop(params);
                    drop(spent);
                }
            }
            Request::Fetch { reply, .. } => {
                // The cursor it asks for is no longer open.
                let _ = reply.send(Err(Error::Closed("result")));
            }
            Request::CloseCursor { .. } => {}
            Request::Tx { op, reply } => {
                if let (TxOp::Begin { immediate: true }, None) = (op, &held) {
                    match link.write(WRITE_PATIENCE) {
                        Ok(permit) => held = permit,
                        Err(e) => {
                            if let Some(reply) = reply {
                                let _ = reply.send(Err(e));
                            }
                            continue;
                        }
                    }
                }
                let result = match op {
                    // The database already ended it (an interrupted or failed
                    // statement, a panic in user code): nothing left to undo.
                    TxOp::Rollback if !driver.in_transaction() => Ok(()),
                    // Nothing is left to commit: say so rather than pass the database's puzzlement on.
                    TxOp::Commit if depth > 0 && !driver.in_transaction() => {
                        Err(Error::TransactionAborted)
                    }
                    TxOp::Commit if driver.aborted() => {
                        let _ = driver.batch("ROLLBACK");
                        Err(Error::TransactionAborted)
                    }
                    TxOp::Release(level) if level > depth => Err(Error::TransactionAborted),
                    TxOp::RollbackTo(level) if level > depth || !driver.in_transaction() => Ok(()),
                    op => transaction(driver, op),
                };
                depth = match (op, &result) {
                    (TxOp::Begin { .. }, Ok(())) => 1,
                    (TxOp::Savepoint(level), Ok(())) => level,
                    (TxOp::Begin { .. } | TxOp::Savepoint(_), Err(_)) => depth,
                    (TxOp::Commit | TxOp::Rollback, _) => 0,
                    (TxOp::Release(level) | TxOp::RollbackTo(level), _) => level - 1,
                };
                if !driver.in_transaction() {
                    depth = 0;
                }
                shared
                    .in_tx
                    .store(driver.in_transaction(), Ordering::SeqCst);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Request::Undo { op, id } => {
                if id > undone {
                    undone = id;
                    next = Some(Request::Tx { op, reply: None });
                }
            }
            Request::Reset { undone: upto } => {
                undone = undone.max(upto);
                if driver.in_transaction() {
                    let _ = driver.batch("ROLLBACK");
                }
                depth = 0;
                shared
                    .in_tx
                    .store(driver.in_transaction(), Ordering::SeqCst);
            }
            Request::Call { ticket, call } => {
                if !link.interrupter.start(ticket) {
                    // Its caller is gone: dropping the closure drops its reply.
                    link.interrupter.finish();
                    continue;
                }
                let (panicked, deliver) = call(driver.raw(), D::NAME);
                let timed_out = link.interrupter.finish() == Some(Reason::Timeout);
                if panicked {
                    // The closure may have begun a transaction in raw SQL that the
                    // driver cannot see: roll back whatever is open.
                    let _ = driver.batch("ROLLBACK");
                }
                shared
                    .in_tx
                    .store(driver.in_transaction(), Ordering::SeqCst);
                deliver(timed_out);
            }
            Request::TableNames { reply } => {
                if !reply.is_canceled() {
                    let _ = reply.send(driver.table_names());
                }
            }
            Request::Ping { reply } => {
                let _ = reply.send(driver.ping());
            }
        }
    }
}

/// How long a worker whose pool has callers waiting keeps checking for its
/// next request, yielding its core between checks, before it sleeps.
const STAY_AWAKE: Duration = Duration::from_micros(50);

/// How long a worker checks for the next request of a caller that awaits
/// one call after another, before it sleeps.
const WORKER_SPIN: Duration = Duration::from_micros(50);

/// The most waits a worker sleeps at once for, after checks that found nothing.
const MAX_BACKOFF: u32 = 64;

/// For how many requests after one that had others queued behind it a
/// worker sleeps at once when its queue runs empty (see [`Wait::next_request`]).
const TAKING_TURNS: u32 = 8;

/// How a worker waits for its next request; see [`Wait::next_request`].
#[derive(Debug, Default)]
struct Wait {
    /// Waits left to sleep at once for, before the worker checks again.
    skip: u32,
    /// How many waits the last check that found nothing set `skip` to.
    backoff: u32,
    /// Requests left to take before the queue counts as fed by one caller
    /// again, after one that had others queued behind it.
    turns: u32,
}

impl Wait {
    /// The next request, or `None` once every sender is gone.
    ///
    /// Waking a sleeping thread costs microseconds, and tens of them on an
    /// idle virtual machine, more than a short statement takes. So before it
    /// sleeps, the worker checks for its next request for a while:
    ///
    /// - when callers wait for a pooled connection, this one is about to be
    ///   handed to the first of them, whose request follows within
    ///   microseconds: up to [`STAY_AWAKE`], yielding its core to any other
    ///   thread that wants it at each check;
    /// - otherwise up to [`WORKER_SPIN`], for a caller that awaits one call
    ///   after another (and, told by [`Shared::awake`], checks for its
    ///   answers the same way instead of sleeping). A check that finds
    ///   nothing makes the worker sleep at once for its next 1, 2, 4, ... up
    ///   to [`MAX_BACKOFF`] waits, so an idle or rarely used connection
    ///   costs next to nothing; a check that finds a request starts over;
    /// - not at all while tasks take turns on the connection (a request was
    ///   taken with others queued behind it within the last
    ///   [`TAKING_TURNS`]): their callers sleep rather than check (the
    ///   worker tells them so through [`Shared::spin_budget`]), so the next
    ///   request comes from a task the executor has yet to run, and a worker
    ///   checking for it takes a core that task may need.
    fn next_request(
        &mut self,
        rx: &Receiver<Request>,
        waiting: &AtomicUsize,
        shared: &Shared,
    ) -> Option<Request> {
        let request = self.wait(rx, waiting, shared)?;
        let was = self.turns > 0;
        self.turns = if rx.is_empty() {
            self.turns.saturating_sub(1)
        } else {
            TAKING_TURNS
        };
        if was != (self.turns > 0) {
            shared.taking_turns.store(self.turns > 0, Ordering::Relaxed);
        }
        Some(request)
    }

    /// [`next_request`](Wait::next_request), before it notes whether others
    /// are queued behind the request.
    fn wait(
        &mut self,
        rx: &Receiver<Request>,
        waiting: &AtomicUsize,
        shared: &Shared,
    ) -> Option<Request> {
        if let Ok(request) = rx.try_recv() {
            return Some(request);
        }
        let crowded = waiting.load(Ordering::Relaxed) > 0;
        shared.crowded.store(crowded, Ordering::Relaxed);
        if crowded {
            if let Some(found) = check(rx, STAY_AWAKE, 1) {
                return found;
            }
        } else if self.turns > 0 {
            // Sleep at once (see above).
        } else if self.skip > 0 {
            self.skip -= 1;
        } else {
            match check(rx, WORKER_SPIN, 4) {
                Some(found) => {
                    self.backoff = 0;
                    return found;
                }
                None => {
                    self.backoff = (self.backoff * 2).clamp(1, MAX_BACKOFF);
                    self.skip = self.backoff;
                }
            }
        }
        shared.awake.store(false, Ordering::Relaxed);
        let slept = std::time::Instant::now();
        let request = rx.recv_blocking().ok();
        shared.awake.store(true, Ordering::Relaxed);
        if !crowded && slept.elapsed() < WORKER_SPIN {
            // A check would have found it: check again from the next wait on.
            self.skip = 0;
            self.backoff = 0;
        }
        request
    }
}

/// Checks `rx` for up to `budget`, with a [`pause`] between checks that
/// yields the core every `yield_every` pauses: `Some` with the request (or
/// `None` if every sender is gone), or `None` if none came.
fn check(rx: &Receiver<Request>, budget: Duration, yield_every: u32) -> Option<Option<Request>> {
    let start = std::time::Instant::now();
    let mut round = 0u32;
    loop {
        match rx.try_recv() {
            Ok(request) => return Some(Some(request)),
            Err(async_channel::TryRecvError::Closed) => return Some(None),
            Err(async_channel::TryRecvError::Empty) if start.elapsed() < budget => {
                pause(&mut round, yield_every);
            }
            Err(async_channel::TryRecvError::Empty) => return None,
        }
    }
}

/// A pause between two checks for something another thread is about to
/// do: a short spin, and every `yield_every`-th time a yield of the core, so
/// that a thread waiting for the same core (maybe the very one awaited) gets it.
pub(crate) fn pause(round: &mut u32, yield_every: u32) {
    *round = round.wrapping_add(1);
    if *round % yield_every == 0 {
        std::thread::yield_now();
    } else {
        for _ in 0..8 {
            std::hint::spin_loop();
        }
    }
}

/// Runs the first chunk of a batch, then each chunk its caller sends, until
/// the caller says the batch is complete; keeps the chunks it ran in `spent`.
fn run_chunks<D: Driver>(
    driver: &mut D,
    interrupter: &Interrupter,
    sql: &str,
    first: &[Parameters],
    more: Option<&Receiver<Feed>>,
    spent: &mut Vec<Vec<Parameters>>,
) -> Result<u64> {
    let mut total = driver.execute_many(sql, first)?;
    let Some(more) = more else {
        return Ok(total);
    };
    loop {
        match more.recv_blocking() {
            // An interrupt (a timeout, or the caller gone) that came while
            // the worker waited for this message found no statement to stop.
            Ok(_) if interrupter.interrupted() => return Err(Error::Timeout),
            Ok(Feed::Sets(sets)) => {
                total += driver.execute_many(sql, &sets)?;
                spent.push(sets);
            }
            Ok(Feed::End) => return Ok(total),
            Err(_) => return Err(Error::Closed("execute_many's caller")),
        }
    }
}

/// Runs a batch atomically: inside a transaction of its own (`BEGIN
/// IMMEDIATE` where the database has it), or a savepoint when one is open.
fn atomically<D: Driver, T>(driver: &mut D, batch: impl FnOnce(&mut D) -> Result<T>) -> Result<T> {
    let outer = !driver.in_transaction();
    let begin = match (outer, D::HAS_IMMEDIATE) {
        (true, true) => "BEGIN IMMEDIATE",
        (true, false) => "BEGIN",
        (false, _) => "SAVEPOINT sqlaio_many",
    };
    driver.batch(begin)?;
    let result = batch(driver);
    let end = match (&result, outer) {
        (Ok(_), true) => "COMMIT",
        (Ok(_), false) => "RELEASE SAVEPOINT sqlaio_many",
        (Err(_), true) => "ROLLBACK",
        (Err(_), false) => "ROLLBACK TO SAVEPOINT sqlaio_many; RELEASE SAVEPOINT sqlaio_many",
    };
    let ended = driver.batch(end);
    if ended.is_err() && outer && driver.in_transaction() {
        let _ = driver.batch("ROLLBACK");
    }
    let value = result?;
    ended?;
    Ok(value)
}

/// About how many bytes a row's values take (texts and blobs by length, the rest as 8).
pub(crate) fn row_bytes(values: &[Value]) -> usize {
    values
        .iter()
        .map(|v| match v {
            Value::Text(t) => t.len(),
            Value::Blob(b) => b.len(),
            _ => 8,
        })
        .sum()
}

/// Reads rows into a batch of the size `limit` asks for.
///
/// `next` writes the next row's values into the vector it is given and
/// returns `false` at the end of the result. The vector is empty for a row
/// that is kept ([`Limit::First`]); otherwise it is one row reused for every
/// row, still holding the previous row's values, which `next` overwrites
/// with [`put`] and [`put_text`] (so their text allocations are reused).
pub(crate) fn read_batch(
    keys: &ColumnNames,
    limit: Limit,
    mut next: impl FnMut(&mut Values) -> Result<bool>,
) -> Result<Batch> {
    let max_rows = match limit {
        Limit::Into(mut sink) => {
            let mut row = Row::new(keys.clone(), Values::with_capacity(keys.len()));
            while next(row.values_mut())? {
                sink.push(&row)?;
            }
            return Ok(Batch {
                sink: Some(sink),
                ..Batch::new(Vec::new(), true)
            });
        }
        Limit::Rows(n) => return read_packed(keys, n, usize::MAX, next),
        Limit::Stream(n) => return read_packed(keys, n, BATCH_BYTES, next),
        Limit::First(n) => n,
    };
    // Small results are the common case: grow only when rows keep coming.
    let mut rows = Vec::with_capacity(max_rows.min(8));
    let mut bytes = 0;
    let done = loop {
        if rows.len() >= max_rows || bytes >= BATCH_BYTES {
            break false;
        }
        let mut values = Values::with_capacity(keys.len());
        if !next(&mut values)? {
            break true;
        }
        bytes += row_bytes(&values);
        rows.push(Row::new(keys.clone(), values));
    };
    Ok(Batch::new(rows, done))
}

/// Reads up to `max_rows` rows or about `max_bytes` bytes into a packed batch
/// (see [`Packed`]), each read into one row that is reused.
fn read_packed(
    keys: &ColumnNames,
    max_rows: usize,
    max_bytes: usize,
    mut next: impl FnMut(&mut Values) -> Result<bool>,
) -> Result<Batch> {
    // Room for every row the batch can take before its byte budget ends
    // (counting 8 bytes a value), so that its cells are not copied as they grow.
    let room = max_rows.min(max_bytes / (8 * keys.len().max(1))).max(8);
    let mut packed = Packed::with_capacity(keys.clone(), room);
    let mut row = Values::with_capacity(keys.len());
    let done = loop {
        if packed.len() >= max_rows || packed.bytes() >= max_bytes {
            break false;
        }
        if !next(&mut row)? {
            break true;
        }
        packed.push(&mut row);
    };
    Ok(Batch {
        packed: Some(packed),
        ..Batch::new(Vec::new(), done)
    })
}

/// Sets column `i` of a row being read (see [`read_batch`]).
#[inline]
pub(crate) fn put(values: &mut Values, i: usize, value: Value) {
    match values.get_mut(i) {
        Some(slot) => *slot = value,
        None => values.push(value),
    }
}

/// Sets column `i` of a row being read to `text`, reusing the allocation of
/// the text already there.
#[inline]
pub(crate) fn put_text(values: &mut Values, i: usize, text: &str) {
    match values.get_mut(i) {
        Some(Value::Text(old)) => {
            old.clear();
            old.push_str(text);
        }
        _ => put(values, i, Value::Text(text.to_owned())),
    }
}

/// Runs a transaction statement; a failed `COMMIT` or `RELEASE` rolls back so
/// the connection is never left inside a transaction nobody owns.
fn transaction<D: Driver>(driver: &mut D, op: TxOp) -> Result<()> {
    let op = match op {
        TxOp::Begin { immediate } => TxOp::Begin {
            immediate: immediate && D::HAS_IMMEDIATE,
        },
        op => op,
    };
    let result = driver.batch(&op.sql());
    if result.is_err() {
        match op {
            TxOp::Commit if driver.in_transaction() => {
                let _ = driver.batch("ROLLBACK");
            }
            TxOp::Release(depth) => {
                let _ = driver.batch(&TxOp::RollbackTo(depth).sql());
            }
            _ => {}
        }
    }
    result
}

/// Serves `Fetch` requests for `cursor` until it is drained, closed, or another request arrives.
///
/// `read` produces the next batch; the loop ends when a batch is `done`.
pub(crate) fn serve_cursor(
    link: &Link<'_>,
    cursor: u64,
    mut read: impl FnMut(Limit) -> Result<Batch>,
) -> Next {
    loop {
        link.shared.awake.store(false, Ordering::Relaxed);
        let request = link.rx.recv_blocking();
        link.shared.awake.store(true, Ordering::Relaxed);
        match request {
            Ok(Request::Fetch {
                cursor: c,
                ticket,
                limit,
                reply,
            }) if c == cursor => {
                if reply.is_canceled() {
                    // Its result was dropped.
                    return Next::Idle;
                }
                let batch = link.interrupter.run(ticket, || read(limit));
                let done = batch.as_ref().map_or(true, |b| b.done);
                let _ = reply.send(batch);
                if done {
                    return Next::Idle;
                }
            }
            Ok(Request::CloseCursor { cursor: c }) if c == cursor => return Next::Idle,
            // Another engine-level statement sharing the connection: the open
            // result keeps its rows, and the statement runs elsewhere.
            Ok(Request::Execute {
                ticket,
                sql,
                params,
                reply,
            }) if ticket.lane => Header::bounce(reply, sql, params),
            // An older result asking for rows: its cursor is gone; this one stays open.
            Ok(Request::Fetch { reply, .. }) => {
                let _ = reply.send(Err(Error::Closed("result")));
            }
            Ok(Request::CloseCursor { .. }) => {}
            Ok(other) => return Next::Request(other),
            Err(_) => return Next::Disconnected,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_streaming_batch_stops_after_about_a_mebibyte_of_text_and_keeps_every_row() {
        let keys: ColumnNames = Arc::new(crate::row::Names(vec!["n".into(), "t".into()]));
        // Rows of 100 KB of text: a batch of 4,096 rows stops after the
        // row that takes it past 1 MiB (the 11th), packed or not.
        let text = "x".repeat(100_000);
        let mut read = 0;
        let next = |values: &mut Values| {
            read += 1;
            put(values, 0, Value::Integer(read));
            put_text(values, 1, &text);
            Ok(true)
        };
        let batch = read_batch(&keys, Limit::Stream(4096), next).unwrap();
        assert!(!batch.done);
        let mut rows = VecDeque::new();
        batch.append_to(&mut rows);
        assert_eq!(rows.len(), 11);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.get::<i64>(0).unwrap(), i as i64 + 1);
            assert_eq!(row.get::<String>(1).unwrap().len(), 100_000);
        }
        let mut read = 0;
        let next = |values: &mut Values| {
            read += 1;
            values.push(Value::Integer(read));
            values.push(Value::Text(text.clone()));
            Ok(true)
        };
        let first = read_batch(&keys, Limit::First(4096), next).unwrap();
        assert_eq!(first.len(), 11);
    }

    fn queued(gate: &WriteGate) -> usize {
        gate.state.lock().unwrap().queue.len()
    }

    fn wait_until(what: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !what() {
            assert!(std::time::Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A blocking interrupt runs on a thread of its own, and closing (which
    /// waits for the timer to stop) waits for that thread too.
    #[test]
    fn closing_waits_for_an_interrupt_sent_from_a_thread_of_its_own() {
        let timer = Arc::new(crate::timer::Timer::default());
        let sent = Arc::new(AtomicBool::new(false));
        let kill = Kill {
            run: Box::new({
                let sent = sent.clone();
                move || {
                    std::thread::sleep(Duration::from_millis(200));
                    sent.store(true, Ordering::SeqCst);
                }
            }),
            blocking: true,
        };
        let interrupter = Interrupter::new(kill, timer.clone());
        assert!(interrupter.start(Ticket {
            seq: 1,
            timeout: None,
            lane: false,
        }));
        interrupter.interrupt(1, Reason::Cancelled);
        assert!(
            !sent.load(Ordering::SeqCst),
            "the interrupt ran on the caller's thread"
        );
        timer.stop();
        futures::executor::block_on(timer.stopped());
        assert!(
            sent.load(Ordering::SeqCst),
            "closing returned before the interrupt was sent"
        );
        assert_eq!(interrupter.finish(), Some(Reason::Cancelled));
    }

    /// An interrupter whose kill only counts how often it ran.
    fn counted_interrupter() -> (Arc<Interrupter>, Arc<crate::timer::Timer>, Arc<AtomicUsize>) {
        let timer = Arc::new(crate::timer::Timer::default());
        let kills = Arc::new(AtomicUsize::new(0));
        let kill = Kill {
            run: Box::new({
                let kills = kills.clone();
                move || {
                    kills.fetch_add(1, Ordering::SeqCst);
                }
            }),
            blocking: false,
        };
        (Interrupter::new(kill, timer.clone()), timer, kills)
    }

    /// A caller that gives up after the worker took its request from the
    /// queue, but before the request started, still has it skipped: the
    /// kill would have come too early to stop the statement.
    #[test]
    fn a_request_cancelled_before_it_starts_is_skipped() {
        let (interrupter, timer, kills) = counted_interrupter();
        let ticket = |seq| Ticket {
            seq,
            timeout: None,
            lane: false,
        };
        // Request 1 runs and ends; its caller gives up as the answer comes.
        assert!(interrupter.start(ticket(1)));
        assert_eq!(interrupter.finish(), None);
        interrupter.interrupt(1, Reason::Cancelled);
        // Request 2 is given up before it starts: no kill, and it is skipped.
        interrupter.interrupt(2, Reason::Cancelled);
        assert_eq!(kills.load(Ordering::SeqCst), 0);
        assert!(!interrupter.start(ticket(2)));
        assert_eq!(interrupter.finish(), Some(Reason::Cancelled));
        assert_eq!(
            interrupter
                .run(ticket(2), || Ok(()))
                .err()
                .map(|e| e.to_string()),
            None,
            "a request is skipped once only"
        );
        // The requests after it run, and can be interrupted as usual.
        assert!(interrupter.start(ticket(3)));
        interrupter.interrupt(3, Reason::Cancelled);
        assert_eq!(kills.load(Ordering::SeqCst), 1);
        assert_eq!(interrupter.finish(), Some(Reason::Cancelled));
        // A stale cancel is forgotten once far behind the requests that start.
        for seq in 4..4 + EARLY_WINDOW + 1 {
            assert!(interrupter.start(ticket(seq)));
            interrupter.finish();
        }
        assert!(interrupter.lock().early.is_empty());
        timer.stop();
        futures::executor::block_on(timer.stopped());
    }

    /// A kill that reached the connection before its statement was under way
    /// is lost; the interrupter sends it again for as long as the request
    /// runs, and stops once it ends.
    #[test]
    fn an_interrupt_is_sent_again_while_its_request_still_runs() {
        let (interrupter, timer, kills) = counted_interrupter();
        assert!(interrupter.start(Ticket {
            seq: 1,
            timeout: None,
            lane: false,
        }));
        interrupter.interrupt(1, Reason::Cancelled);
        assert_eq!(kills.load(Ordering::SeqCst), 1);
        // A bound on a wait for the timer, not a timing assertion.
        let limit = std::time::Instant::now() + Duration::from_secs(30);
        while kills.load(Ordering::SeqCst) < 3 && std::time::Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            kills.load(Ordering::SeqCst) >= 3,
            "the kill was not sent again"
        );
        assert_eq!(interrupter.finish(), Some(Reason::Cancelled));
        let ended = kills.load(Ordering::SeqCst);
        std::thread::sleep(KILL_AGAIN_MAX + Duration::from_millis(100));
        assert_eq!(kills.load(Ordering::SeqCst), ended, "killed after it ended");
        timer.stop();
        futures::executor::block_on(timer.stopped());
    }

    /// Writers get the permit in the order they asked for it.
    #[test]
    fn write_gate_serves_in_arrival_order() {
        let gate = Arc::new(WriteGate::default());
        gate.take(Duration::from_secs(1)).unwrap();
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        for n in 0..5 {
            let (writer, tx) = (gate.clone(), tx.clone());
            threads.push(std::thread::spawn(move || {
                writer.take(Duration::from_secs(10)).unwrap();
                tx.send(n).unwrap();
                writer.give_back();
            }));
            // The next one asks only once this one waits in line.
            wait_until(|| queued(&gate) == n + 1);
        }
        gate.give_back();
        let order: Vec<usize> = (0..5).map(|_| rx.recv().unwrap()).collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
        for t in threads {
            t.join().unwrap();
        }
    }

    /// A writer that gives up leaves the line, and the one behind it is served.
    #[test]
    fn write_gate_waiter_that_gives_up_leaves_the_line() {
        let gate = Arc::new(WriteGate::default());
        gate.take(Duration::from_secs(1)).unwrap();
        let impatient = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.take(Duration::from_millis(300)))
        };
        wait_until(|| queued(&gate) == 1);
        let patient = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.take(Duration::from_secs(10)))
        };
        wait_until(|| queued(&gate) == 2);
        let err = impatient.join().unwrap().unwrap_err();
        assert!(err.to_string().contains("database is locked"), "{err}");
        assert_eq!(queued(&gate), 1);
        gate.give_back();
        patient.join().unwrap().unwrap();
        assert_eq!(queued(&gate), 0);
        assert!(gate.state.lock().unwrap().taken);
    }

    fn ping() -> Request {
        let (reply, _answer) = oneshot::channel();
        Request::Ping { reply }
    }

    /// Long enough for a worker's checks to give up before the request comes.
    const SLOW: Duration = Duration::from_millis(20);

    /// Lets `wait` take a request that another thread sends after `delay`.
    fn take_sent_after(
        wait: &mut Wait,
        (tx, rx): (&async_channel::Sender<Request>, &Receiver<Request>),
        waiting: &AtomicUsize,
        shared: &Shared,
        delay: Duration,
    ) {
        let tx = tx.clone();
        let send = std::thread::spawn(move || {
            std::thread::sleep(delay);
            tx.send_blocking(ping()).unwrap();
        });
        assert!(wait.next_request(rx, waiting, shared).is_some());
        send.join().unwrap();
    }

    #[test]
    fn a_caller_checks_for_its_answer_only_when_the_worker_is_awake_and_quick() {
        let shared = Shared::default();
        // Asleep: never.
        assert_eq!(shared.spin_budget(0), Duration::ZERO);
        shared.awake.store(true, Ordering::Relaxed);
        shared.note_busy(Duration::from_micros(4));
        assert_eq!(shared.spin_budget(0), Duration::from_micros(13));
        // Behind other tasks' requests, or while callers wait for the pool: never.
        assert_eq!(shared.spin_budget(1), Duration::ZERO);
        shared.crowded.store(true, Ordering::Relaxed);
        assert_eq!(shared.spin_budget(0), Duration::ZERO);
        shared.crowded.store(false, Ordering::Relaxed);
        // One slow request among quick ones (a checkpoint, say): still.
        shared.note_busy(Duration::from_millis(5));
        assert!(!shared.spin_budget(0).is_zero());
        // Slow requests in a row: never, until quick ones bring the moving
        // average back down.
        let mut slow = 1;
        while !shared.spin_budget(0).is_zero() {
            shared.note_busy(Duration::from_millis(5));
            slow += 1;
        }
        assert!((3..=8).contains(&slow), "{slow} slow requests");
        let mut quick = 0;
        while shared.spin_budget(0).is_zero() {
            shared.note_busy(Duration::from_micros(4));
            quick += 1;
        }
        assert!((1..=10).contains(&quick), "{quick} quick requests");
        // Never longer than the cap.
        let shared = Shared::default();
        shared.awake.store(true, Ordering::Relaxed);
        shared.note_busy(CALLER_SPIN_BUSY);
        assert_eq!(shared.spin_budget(0), CALLER_SPIN);
    }

    #[test]
    fn an_answer_is_taken_while_checking_or_after_sleeping() {
        // Already there.
        let (reply, answer) = oneshot::channel::<Result<i32>>();
        reply.send(Ok(1)).unwrap();
        assert_eq!(
            futures::executor::block_on(super::answer(answer, CALLER_SPIN)).unwrap(),
            1
        );
        // Sent from another thread, long after the check gave up.
        let (reply, answer) = oneshot::channel::<Result<i32>>();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            reply.send(Ok(2)).unwrap();
        });
        assert_eq!(
            futures::executor::block_on(super::answer(answer, Duration::from_micros(10))).unwrap(),
            2
        );
        sender.join().unwrap();
        // The worker dropped the slot.
        let (reply, answer) = oneshot::channel::<Result<i32>>();
        drop(reply);
        let gone = futures::executor::block_on(super::answer(answer, CALLER_SPIN));
        assert!(matches!(gone, Err(Error::WorkerGone)));
    }

    #[test]
    fn a_worker_backs_off_checking_when_requests_come_slowly_and_starts_over_when_they_come_fast() {
        let (tx, rx) = channel();
        let (shared, waiting) = (Shared::default(), AtomicUsize::new(0));
        let mut wait = Wait::default();
        // A request already queued: taken at once, nothing changes.
        tx.try_send(ping()).unwrap();
        assert!(wait.next_request(&rx, &waiting, &shared).is_some());
        assert_eq!((wait.skip, wait.backoff), (0, 0));
        // Requests far apart: each wait that checks in vain doubles the
        // number of waits that sleep at once.
        take_sent_after(&mut wait, (&tx, &rx), &waiting, &shared, SLOW);
        assert_eq!((wait.skip, wait.backoff), (1, 1));
        take_sent_after(&mut wait, (&tx, &rx), &waiting, &shared, SLOW); // slept at once
        assert_eq!((wait.skip, wait.backoff), (0, 1));
        take_sent_after(&mut wait, (&tx, &rx), &waiting, &shared, SLOW);
        assert_eq!((wait.skip, wait.backoff), (2, 2));
        // A request that comes soon after the worker fell asleep: it checks
        // again from the next wait on.
        take_sent_after(
            &mut wait,
            (&tx, &rx),
            &waiting,
            &shared,
            Duration::from_micros(5),
        );
        // (Or, if the machine was too slow to deliver it that soon, the
        // back-off goes on as before.)
        assert!(
            matches!((wait.skip, wait.backoff), (0, 0) | (1, 2)),
            "{:?}",
            (wait.skip, wait.backoff)
        );
        // Every sender gone: no request.
        drop(tx);
        assert!(wait.next_request(&rx, &waiting, &shared).is_none());
        assert!(shared.awake.load(Ordering::Relaxed));
    }

    #[test]
    fn a_worker_sleeps_at_once_while_tasks_take_turns_on_its_connection() {
        let (tx, rx) = channel();
        let (shared, waiting) = (Shared::default(), AtomicUsize::new(0));
        let mut wait = Wait::default();
        // Two tasks' requests queued at once: the first is taken with the
        // other behind it.
        tx.try_send(ping()).unwrap();
        tx.try_send(ping()).unwrap();
        assert!(wait.next_request(&rx, &waiting, &shared).is_some());
        assert_eq!(wait.turns, TAKING_TURNS);
        assert!(wait.next_request(&rx, &waiting, &shared).is_some());
        assert_eq!(wait.turns, TAKING_TURNS - 1);
        // Their callers do not check for answers either, however quick and
        // awake the worker is.
        shared.note_busy(Duration::from_micros(5));
        shared.awake.store(true, Ordering::Relaxed);
        assert_eq!(shared.spin_budget(0), Duration::ZERO);
        // The queue is empty: the worker sleeps without checking, so a late
        // request does not count as a check in vain.
        take_sent_after(&mut wait, (&tx, &rx), &waiting, &shared, SLOW);
        assert_eq!((wait.skip, wait.backoff), (0, 0));
        // After enough requests that come one at a time, it checks again.
        while wait.turns > 0 {
            tx.try_send(ping()).unwrap();
            assert!(wait.next_request(&rx, &waiting, &shared).is_some());
        }
        shared.awake.store(true, Ordering::Relaxed);
        assert!(shared.spin_budget(0) > Duration::ZERO);
        take_sent_after(&mut wait, (&tx, &rx), &waiting, &shared, SLOW);
        assert_eq!((wait.skip, wait.backoff), (1, 1));
    }
}
