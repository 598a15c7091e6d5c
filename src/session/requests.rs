//! How a session in use sends requests to its worker and receives their replies.
//!
//! A request goes after any rollback still waiting to be sent (see
//! `Undo`); a statement-like request is numbered, so that an interrupt
//! (its future dropped, its timeout passed) reaches it and no other.

use std::any::Any;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use futures_channel::oneshot;

use crate::error::{Error, Result};
use crate::params::Parameters;
use crate::session::{InFlight, InUse, Session, Undo};
use crate::sql::Sql;
use crate::timer::Timer;
use crate::trace::RowsTrace;
use crate::worker::{self, Batch, Feed, Header, Limit, Reply, Request, Ticket, TxOp};

/// A reply still to come: the receiving end of a request's reply slot, and
/// how long to check for it before sleeping (see [`worker::answer`]).
struct Incoming<T> {
    receiver: oneshot::Receiver<Result<T>>,
    spin: Duration,
}

/// A statement-like request, numbered and sent unless the queue was full;
/// [`InUse::finish`] sends the rest and awaits the reply.
pub(crate) struct Started<T> {
    /// Interrupts the request if the caller's future is dropped once it was sent.
    guard: InFlight,
    /// For a request with a timeout: the clock, and how long to wait for its
    /// answer before giving the connection up (the timeout and its grace).
    bound: Option<(Arc<Timer>, Duration)>,
    incoming: Incoming<T>,
    /// What could not be sent yet, the queue being full.
    unsent: Option<Unsent>,
}

/// A request, and a rollback to send before it, waiting for room in the queue.
struct Unsent {
    sender: Sender<Request>,
    undo: Option<Undo>,
    request: Request,
}

impl InUse {
    /// Sends a request, after any waiting rollback; returns how long to
    /// check for its reply before sleeping (see [`worker::answer`]).
    async fn send_request(&self, request: Request) -> Result<Duration> {
        let out = self.with(|session| session.outgoing(false))?;
        self.post(&out.sender, out.undo, request).await?;
        Ok(out.spin)
    }

    /// Sends the waiting rollback, if any, then the request, without waiting;
    /// gives back what it could not send (the queue is full or closed).
    fn try_post(
        &self,
        sender: &Sender<Request>,
        undo: Option<Undo>,
        request: Request,
    ) -> Option<(Option<Undo>, Request)> {
        if let Some(first) = undo {
            if sender.try_send(first.request()).is_err() {
                return Some((undo, request));
            }
            let _ = self.with(|session| session.undo_sent(first.id));
        }
        match sender.try_send(request) {
            Ok(()) => None,
            Err(e) => Some((None, e.into_inner())),
        }
    }

    /// Sends the waiting rollback, if any, then the request. The rollback
    /// stays waiting until it is in the queue, so a request sent meanwhile
    /// sends it too (the worker runs it once), and it survives this future
    /// being dropped.
    async fn post(
        &self,
        sender: &Sender<Request>,
        undo: Option<Undo>,
        request: Request,
    ) -> Result<()> {
        if let Some(undo) = undo {
            sender
                .send(undo.request())
                .await
                .map_err(|_| Error::Closed("connection"))?;
            let _ = self.with(|session| session.undo_sent(undo.id));
        }
        sender
            .send(request)
            .await
            .map_err(|_| Error::Closed("connection"))
    }

    /// Sends a request built around a new reply slot and returns the slot.
    async fn send<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<Incoming<T>> {
        let (reply, receiver) = oneshot::channel();
        let spin = self.send_request(make(reply)).await?;
        Ok(Incoming { receiver, spin })
    }

    /// Awaits a reply, and notes that the worker's state is current again.
    async fn receive<T>(&self, incoming: Incoming<T>) -> Result<T> {
        let result = worker::answer(incoming.receiver, incoming.spin).await;
        let lost = matches!(&result, Err(e) if e.is_connection_lost());
        let _ = self.with(|session| session.replied(lost));
        result
    }

    async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T> {
        let incoming = self.send(make).await?;
        self.receive(incoming).await
    }

    /// Sends a statement-like request (numbered, and interrupted if this
    /// future is dropped while it runs) and awaits its reply.
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
    /// (see [`finish`](InUse::finish) for the rest).
    fn start<T>(
        &self,
        timeout: Option<Option<Duration>>,
        lane: bool,
        make: impl FnOnce(Ticket, Reply<T>) -> Request,
    ) -> Result<Started<T>> {
        // One look at the session for numbering and sending.
        let ((mut ticket, guard), out, bound) = self.with(|session| {
            let (mut ticket, guard) = session.number();
            if let Some(timeout) = timeout {
                ticket.timeout = timeout;
            }
            let bound = session.bound(ticket.timeout);
            ((ticket, guard), session.outgoing(lane), bound)
        })?;
        ticket.lane = lane;
        let (reply, receiver) = oneshot::channel();
        let unsent = self
            .try_post(&out.sender, out.undo, make(ticket, reply))
            .map(|(undo, request)| Unsent {
                sender: out.sender,
                undo,
                request,
            });
        Ok(Started {
            guard,
            bound,
            incoming: Incoming {
                receiver,
                spin: out.spin,
            },
            unsent,
        })
    }

    /// Sends a started request if it is still unsent, then awaits its reply
    /// (interrupting the request if this future is dropped meanwhile).
    pub(crate) async fn finish<T>(&self, started: Started<T>) -> Result<T> {
        let Started {
            guard,
            bound,
            incoming,
            unsent,
        } = started;
        if let Some(unsent) = unsent {
            self.post(&unsent.sender, unsent.undo, unsent.request)
                .await?;
        }
        let guard = guard.arm();
        let Some((timer, limit)) = bound else {
            let result = self.receive(incoming).await;
            guard.disarm();
            return result;
        };
        // Past its timeout the statement was interrupted; if even that does
        // not bring its answer back within the grace (a server or network
        // gone silent), give the connection up: it never serves again, and
        // its worker ends once its socket fails.
        let mut receive = pin!(self.receive(incoming));
        let mut expired = pin!(timer.sleep(limit));
        let answer = poll_fn(|cx| match receive.as_mut().poll(cx) {
            Poll::Ready(result) => Poll::Ready(Some(result)),
            Poll::Pending => expired.as_mut().poll(cx).map(|()| None),
        })
        .await;
        guard.disarm();
        answer.unwrap_or_else(|| {
            let _ = self.with(|session| session.give_up());
            Err(Error::Timeout)
        })
    }

    /// A fresh request number, and the guard that would interrupt it.
    fn number(&self) -> Result<(Ticket, InFlight)> {
        self.with(Session::number)
    }

    /// Runs one statement: its header and first rows, and the number of the
    /// cursor that holds the rest. A `lane` statement is an engine-level one
    /// that may share the connection with others (see `pool::Lane`): the
    /// header's `bounced` holds it when the worker did not run it. The
    /// statement's trace goes on in the [`RowsTrace`] while rows are read.
    pub(crate) async fn execute(&self, sql: Sql, lane: bool) -> Result<(Header, u64, RowsTrace)> {
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
            return header.map(|h| (h, cursor, RowsTrace::none()));
        }
        let rows = trace.finish(&header, |h| h.returns_rows.then_some(h.batch.len() as u64));
        let header = header?;
        if !header.batch.done {
            self.with(|session| session.open_cursor = Some(cursor))?;
        }
        Ok((header, cursor, rows))
    }

    /// Starts an `execute_many`: sends its statement with the first
    /// parameter sets, if the queue has room; `more` brings the rest.
    pub(crate) fn start_many(
        &self,
        sql: String,
        timeout: Option<Option<Duration>>,
        first: Vec<Parameters>,
        more: Option<Receiver<Feed>>,
    ) -> Result<Started<u64>> {
        self.start(timeout, false, |ticket, reply| Request::ExecuteMany {
            ticket,
            sql,
            params: first,
            more,
            reply,
        })
    }

    /// Runs `f` with the raw driver connection on the worker (see
    /// [`Connection::run_in_thread`](crate::Connection::run_in_thread)).
    pub(crate) async fn run_in_thread<R, T, E, F>(&self, f: F) -> Result<Result<T, E>>
    where
        R: Any,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&mut R) -> Result<T, E> + Send + 'static,
    {
        let trace = self.telemetry().operation(None);
        let result = async {
            let (call, receiver) = worker::call(f);
            let (ticket, guard) = self.number()?;
            let spin = self.send_request(Request::Call { ticket, call }).await?;
            let guard = guard.arm();
            let result = self.receive(Incoming { receiver, spin }).await;
            guard.disarm();
            result
        }
        .await;
        drop(trace.finish(&result, |_| None));
        result
    }

    /// The names of the tables visible to the connection.
    /// Runs a script of statements; answers whether a transaction is open afterwards.
    pub(crate) async fn script(&self, sql: String) -> Result<bool> {
        self.statement(None, false, |ticket, reply| Request::Script {
            ticket,
            sql,
            reply,
        })
        .await
    }

    pub(crate) async fn table_names(&self) -> Result<Vec<String>> {
        self.request(|reply| Request::TableNames { reply }).await
    }

    /// The depth of a transaction begun now, and whether one is open already.
    pub(crate) fn next_level(&self) -> Result<(u32, bool)> {
        self.with(|session| (session.depth + 1, session.in_transaction()))
    }

    /// Sends `op` (a `BEGIN` or a `SAVEPOINT`) and, once it succeeded,
    /// notes the transaction open at `depth`. If this future is dropped
    /// once `op` was sent, `undo` goes ahead of the next request.
    pub(crate) async fn begin(&self, op: TxOp, undo: TxOp, depth: u32) -> Result<()> {
        let trace = self.telemetry().operation(Some(op.name()));
        let result = self.begin_untraced(op, undo, depth).await;
        drop(trace.finish(&result, |_| None));
        result
    }

    async fn begin_untraced(&self, op: TxOp, undo: TxOp, depth: u32) -> Result<()> {
        let incoming = self
            .send(|reply| Request::Tx {
                op,
                reply: Some(reply),
            })
            .await?;
        // Sent: if this future is dropped now, undo whatever the worker begins.
        let disarm = UndoBegin {
            session: self,
            op: Some(undo),
        };
        let result = self.receive(incoming).await;
        let mut disarm = disarm;
        disarm.op = None;
        result?;
        self.with(|session| session.depth = depth)
    }

    /// Sends `op`, which ends the transaction at `depth` (a commit or a rollback).
    pub(crate) async fn end(&self, op: TxOp, depth: u32) -> Result<()> {
        let trace = self.telemetry().operation(Some(op.name()));
        let result = self.end_untraced(op, depth).await;
        drop(trace.finish(&result, |_| None));
        result
    }

    async fn end_untraced(&self, op: TxOp, depth: u32) -> Result<()> {
        let incoming = self
            .send(|reply| Request::Tx {
                op,
                reply: Some(reply),
            })
            .await?;
        // Sent: whatever happens to this future now, the worker ends the transaction.
        let _ = self.with(|session| session.depth = session.depth.min(depth - 1));
        self.receive(incoming).await
    }

    /// Rolls back the transaction at `depth` with `op`, without waiting: for `Drop`.
    pub(crate) fn abandon(&self, op: TxOp, depth: u32) {
        let _ = self.with(|session| session.abandon(op, depth));
    }

    /// A request for rows of `cursor`, as a future that sends it and waits for the batch.
    ///
    /// Dropping the future after the request is sent interrupts the read
    /// (when the connection interrupts on drop).
    pub(crate) fn fetch(
        &self,
        cursor: u64,
        limit: Limit,
    ) -> Result<impl Future<Output = Result<Batch>> + Send + 'static> {
        let ((ticket, guard), sender, spin) = self.with(|session| {
            let numbered = session.number();
            let spin = session.shared.spin_budget(session.sender.len());
            (numbered, session.sender.clone(), spin)
        })?;
        Ok(async move {
            let (reply, receiver) = oneshot::channel();
            sender
                .send(Request::Fetch {
                    cursor,
                    ticket,
                    limit,
                    reply,
                })
                .await
                .map_err(|_| Error::Closed("connection"))?;
            let guard = guard.arm();
            let batch = worker::answer(receiver, spin).await;
            guard.disarm();
            batch
        })
    }

    /// A fetch of `cursor` sent at once, without waiting for room in the
    /// queue; `None` if the queue is full or the session closed. Dropping
    /// the future does not interrupt the read.
    pub(crate) fn fetch_now(
        &self,
        cursor: u64,
        limit: Limit,
    ) -> Option<impl Future<Output = Result<Batch>> + Send + 'static> {
        // The guard is never armed: nothing to interrupt on drop.
        let ((ticket, _unarmed), sender) = self
            .with(|session| (session.number(), session.sender.clone()))
            .ok()?;
        let (reply, receiver) = oneshot::channel();
        let request = Request::Fetch {
            cursor,
            ticket,
            limit,
            reply,
        };
        sender.try_send(request).ok()?;
        Some(async move { receiver.await.unwrap_or(Err(Error::WorkerGone)) })
    }

    /// The worker has no more rows of `cursor`: no later request needs to close it.
    pub(crate) fn cursor_done(&self, cursor: u64) {
        let _ = self.with(|session| {
            if session.open_cursor == Some(cursor) {
                session.open_cursor = None;
            }
        });
    }

    /// Finalizes `cursor` on the worker, if it is still the open one.
    pub(crate) async fn close_cursor(&self, cursor: u64) {
        let open = self
            .with(|session| (session.open_cursor == Some(cursor)).then(|| session.sender.clone()))
            .ok()
            .flatten();
        if let Some(sender) = open {
            let _ = sender.send(Request::CloseCursor { cursor }).await;
        }
    }
}

/// Queues a rollback if a `begin` future is dropped after its `BEGIN` was sent.
struct UndoBegin<'a> {
    session: &'a InUse,
    op: Option<TxOp>,
}

impl Drop for UndoBegin<'_> {
    fn drop(&mut self) {
        if let Some(op) = self.op.take() {
            let _ = self.session.with(|session| session.roll_back_later(op));
        }
    }
}
