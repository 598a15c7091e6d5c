//! One connection's session, as the async side holds it: the way to its
//! worker, what this side knows of the worker's state, and the requests it
//! sends.
//!
//! [`Session`] is that state and its invariants; the pool keeps it while the
//! connection is idle. [`InUse`] is a session lent out to a
//! [`Connection`](crate::Connection) or a lane: it sends requests and
//! receives their replies (`requests.rs`), and gives the session back to
//! its [`Home`] (the pool) once dropped or closed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::Sender;
use futures_channel::oneshot;

use crate::timer::Timer;
use crate::worker::{Interrupter, Reason, Request, Shared, Spawned, Ticket, TxOp};

mod in_use;
mod requests;

pub(crate) use self::in_use::{Home, InUse};
pub(crate) use self::requests::Started;

/// One open connection's session: the way to its worker and what this side
/// knows of the worker's state.
///
/// What the worker may still hold of a lease (a transaction, a cursor, a
/// rollback not yet sent) makes the session dirty; the reset that ends a
/// lease clears it (see [`is_dirty`](Session::is_dirty) and
/// [`end_lease`](Session::end_lease)).
pub(crate) struct Session {
    id: u64,
    sender: Sender<Request>,
    shared: Arc<Shared>,
    /// Interrupts the statement running on the worker.
    interrupter: Arc<Interrupter>,
    /// Transaction levels opened through handles (1 = `BEGIN`, 2+ = savepoints).
    depth: u32,
    /// A rollback to send before the next request (a transaction was dropped
    /// or a `begin` cancelled). It stays here until it is in the queue:
    /// every request sent meanwhile sends it first (see [`Undo`]).
    undo: Option<Undo>,
    /// The number of the last rollback put in `undo`.
    last_undo: u64,
    /// A full rollback was queued and not yet confirmed by a reply.
    rollback_queued: bool,
    /// The cursor the worker may still hold open.
    open_cursor: Option<u64>,
    /// The number of the last request sent (also the id of any cursor it opened).
    last_seq: u64,
    /// Whether dropping a statement's future interrupts it.
    interrupt_on_drop: bool,
    /// The timeout of each statement; the engine's again when the lease ends.
    statement_timeout: Option<Duration>,
    /// How long past a statement's timeout its caller waits for the answer.
    timeout_grace: Duration,
    /// When the connection was opened, and when its last lease ended.
    opened: Instant,
    returned: Instant,
    /// The server the connection reached, where the driver knows it.
    server: Option<Box<crate::server::ServerInfo>>,
}

impl Session {
    /// The session of a connection just opened.
    pub(crate) fn new(
        id: u64,
        spawned: Spawned,
        interrupt_on_drop: bool,
        statement_timeout: Option<Duration>,
        timeout_grace: Duration,
    ) -> Session {
        let now = Instant::now();
        Session {
            id,
            sender: spawned.sender,
            shared: spawned.shared,
            interrupter: spawned.interrupter,
            depth: 0,
            undo: None,
            last_undo: 0,
            rollback_queued: false,
            open_cursor: None,
            last_seq: 0,
            interrupt_on_drop,
            statement_timeout,
            timeout_grace,
            opened: now,
            returned: now,
            server: spawned.server.map(Box::new),
        }
    }

    /// What the worker shares with this side.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The server the connection reached, where the driver knows it.
    pub(crate) fn server(&self) -> Option<&crate::server::ServerInfo> {
        self.server.as_deref()
    }

    /// When the connection was opened.
    pub(crate) fn opened(&self) -> Instant {
        self.opened
    }

    /// When the last lease ended.
    pub(crate) fn returned(&self) -> Instant {
        self.returned
    }

    /// `true` once the worker stopped or the channel was closed.
    pub(crate) fn is_stopped(&self) -> bool {
        self.sender.is_closed() || self.shared.stopped.load(Ordering::SeqCst)
    }

    /// `true` once the driver asked for the connection to be replaced.
    pub(crate) fn is_worn_out(&self) -> bool {
        self.shared.worn_out.load(Ordering::SeqCst)
    }

    /// `true` while a transaction is open on the connection, as far as this side knows.
    fn in_transaction(&self) -> bool {
        self.depth > 0 || (!self.rollback_queued && self.shared.in_tx.load(Ordering::SeqCst))
    }

    /// `true` when the worker may hold something of the lease: a rollback
    /// still to send, an open cursor, or a transaction.
    fn is_dirty(&self) -> bool {
        self.undo.is_some() || self.open_cursor.is_some() || self.in_transaction()
    }

    /// The reset that ends a lease: it also stands for every rollback
    /// numbered so far, so a copy of one still on its way is not run after it.
    fn reset_request(&self) -> Request {
        Request::Reset {
            undone: self.last_undo,
        }
    }

    /// The reset is in the worker's queue: nothing is left to undo, no
    /// cursor or transaction level is open, and a transaction the worker
    /// reported is on its way out.
    fn mark_reset(&mut self) {
        self.undo = None;
        self.open_cursor = None;
        self.depth = 0;
        self.rollback_queued = true;
    }

    /// Queues the reset of a dirty session, waiting for room in the queue.
    ///
    /// # Cancellation
    /// Dropped before the reset is queued, the session stays dirty, and the
    /// end of its lease resets it (see [`end_lease`](Session::end_lease)).
    async fn reset(&mut self) {
        if self.is_dirty() && !self.is_stopped() {
            let (sender, reset) = (self.sender.clone(), self.reset_request());
            if sender.send(reset).await.is_ok() {
                self.mark_reset();
            }
        }
    }

    /// The lease ends: a dirty session is reset without waiting (or, with
    /// the queue full, a rollback goes ahead of the next request), the
    /// statement timeout is the engine's again, and the time is noted.
    pub(crate) fn end_lease(&mut self, statement_timeout: Option<Duration>) {
        if self.is_dirty() {
            let queued = self.sender.try_send(self.reset_request()).is_ok();
            self.mark_reset();
            if !queued {
                self.queue_rollback(TxOp::Rollback);
            }
        }
        self.statement_timeout = statement_timeout;
        self.returned = Instant::now();
    }

    /// A cheap liveness check: one round trip to the database.
    pub(crate) async fn ping(&self) -> bool {
        let (reply, receiver) = oneshot::channel();
        self.sender.send(Request::Ping { reply }).await.is_ok()
            && matches!(receiver.await, Ok(Ok(())))
    }

    /// Adds a rollback to the one waiting to be sent; the deeper rollback
    /// covers the shallower.
    fn queue_rollback(&mut self, op: TxOp) {
        let level = |op: TxOp| match op {
            TxOp::RollbackTo(d) => d,
            _ => 0,
        };
        match self.undo {
            Some(old) if level(old.op) <= level(op) => {}
            _ => {
                self.last_undo += 1;
                self.undo = Some(Undo {
                    op,
                    id: self.last_undo,
                });
            }
        }
        if level(op) == 0 {
            self.rollback_queued = true;
        }
    }

    /// Queues the waiting rollback without waiting, if the queue has room.
    fn try_flush(&mut self) {
        if let Some(undo) = self.undo {
            if self.sender.try_send(undo.request()).is_ok() {
                self.undo = None;
            }
        }
    }

    /// The waiting rollback `id` is in the queue: later requests need not send it.
    fn undo_sent(&mut self, id: u64) {
        if self.undo.is_some_and(|undo| undo.id == id) {
            self.undo = None;
        }
    }

    /// Rolls back `op` ahead of the next request, sending it now if the
    /// queue has room (a transaction or a `begin` was dropped).
    fn roll_back_later(&mut self, op: TxOp) {
        self.queue_rollback(op);
        self.try_flush();
    }

    /// The transaction at `depth` was dropped: it is rolled back ahead of
    /// the next request, unless a commit or rollback already ended it.
    fn abandon(&mut self, op: TxOp, depth: u32) {
        if self.depth < depth {
            // Already ended by a commit or rollback that was sent.
            return;
        }
        self.queue_rollback(op);
        self.depth = depth - 1;
        self.try_flush();
    }

    /// A reply came: the worker's state is current again, unless a full
    /// rollback still waits to go into the queue. A lost connection is
    /// never handed out again, and its worker stops too.
    fn replied(&mut self, lost: bool) {
        self.rollback_queued = self.undo.is_some_and(|undo| undo.op == TxOp::Rollback);
        if lost {
            self.shared.stopped.store(true, Ordering::SeqCst);
            self.sender.close();
        }
    }

    /// How long a caller waits for the answer to a request with this
    /// timeout before it gives the connection up (see
    /// `EngineBuilder::timeout_grace`), and the clock to wait on.
    fn bound(&self, timeout: Option<Duration>) -> Option<(Arc<Timer>, Duration)> {
        timeout.map(|timeout| {
            (
                self.interrupter.timer().clone(),
                timeout + self.timeout_grace,
            )
        })
    }

    /// Gives the connection up: its worker is stuck past a statement's
    /// timeout and grace, so the connection never serves again.
    pub(crate) fn give_up(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.sender.close();
    }

    /// A fresh request number, and the guard that would interrupt it.
    fn number(&mut self) -> (Ticket, InFlight) {
        self.last_seq += 1;
        let guard = InFlight {
            interrupter: self.interrupt_on_drop.then(|| self.interrupter.clone()),
            seq: self.last_seq,
            armed: false,
        };
        let ticket = Ticket {
            seq: self.last_seq,
            timeout: self.statement_timeout,
            lane: false,
        };
        (ticket, guard)
    }

    /// Readies the session for a new request: its way to the worker, any
    /// rollback that must go first, and how long to check for the reply
    /// (read before the request goes: the worker stops checking once it has it).
    fn outgoing(&mut self, lane: bool) -> Outgoing {
        if !lane {
            // Any other request closes the open cursor on the worker (a
            // lane statement is bounced instead: see `Ticket::lane`).
            self.open_cursor = None;
        }
        self.try_flush();
        Outgoing {
            spin: self.shared.spin_budget(self.sender.len()),
            sender: self.sender.clone(),
            undo: self.undo,
        }
    }
}

/// Where a request goes, and what goes before it; see [`Session::outgoing`].
struct Outgoing {
    sender: Sender<Request>,
    /// A rollback to send first.
    undo: Option<Undo>,
    /// How long to check for the reply before sleeping (see [`crate::worker::answer`]).
    spin: Duration,
}

/// A rollback waiting to go ahead of a connection's next request.
///
/// Until it is in the worker's queue, every request sent on the connection
/// sends it first, so that none can overtake it while another waits for
/// room in the queue; the worker runs each number once, and ignores copies
/// of a number it has run or passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Undo {
    op: TxOp,
    id: u64,
}

impl Undo {
    fn request(self) -> Request {
        Request::Undo {
            op: self.op,
            id: self.id,
        }
    }
}

/// Interrupts request `seq` on the worker if dropped while armed: the future
/// that awaited its reply was dropped.
#[derive(Debug)]
struct InFlight {
    interrupter: Option<Arc<Interrupter>>,
    seq: u64,
    armed: bool,
}

impl InFlight {
    /// Armed once the request was sent.
    fn arm(mut self) -> InFlight {
        self.armed = true;
        self
    }

    /// The reply arrived: nothing to interrupt.
    fn disarm(mut self) {
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
