//! The worker loop: open the connection, serve requests until every sender
//! is gone, close. One function per request kind.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_channel::Receiver;

use super::execute::{execute, execute_many, Next};
use super::gate::{Permit, WriteGate};
use super::idle::Idle;
use super::interrupt::{Interrupter, Reason};
use super::protocol::{Call, Header, Request, Responder, TxOp};
use super::signals::Shared;
use super::{Opened, Setup, Spawned, WRITE_PATIENCE};
use crate::driver::Driver;
use crate::error::{Error, Result};

/// What serving a request needs from the loop.
pub(super) struct Context<'a> {
    pub(super) rx: &'a Receiver<Request>,
    pub(super) interrupter: &'a Interrupter,
    /// The engine's write permit, in single-writer mode.
    pub(super) gate: Option<&'a WriteGate>,
    /// Callers waiting for a pooled connection (see [`Idle::next_request`]).
    pub(super) waiting: &'a AtomicUsize,
    /// What the worker shares with the connection's handles.
    pub(super) shared: &'a Shared,
}

/// A worker loop: open, serve until every sender is gone, close.
pub(super) fn run<D: Driver>(
    config: &D::Config,
    setup: &Setup,
    rx: Receiver<Request>,
    sender: async_channel::Sender<Request>,
    opened: Opened,
) {
    let opening = catch_unwind(AssertUnwindSafe(|| {
        let mut driver = D::open(config)?;
        if let Some(hook) = &setup.after_connect {
            hook(driver.raw(), D::NAME)?;
        }
        Ok(driver)
    }));
    let mut driver = match opening {
        Ok(Ok(driver)) => driver,
        Ok(Err(e)) => {
            opened(Err(e));
            return;
        }
        Err(panic) => {
            opened(Err(Error::panic(panic)));
            return;
        }
    };
    let interrupter = Interrupter::new(driver.kill(), setup.timer.clone());
    let shared = Arc::new(Shared::new(setup.wait));
    let spawned = Spawned {
        sender,
        shared: shared.clone(),
        interrupter: interrupter.clone(),
        server: driver.server(),
    };
    if opened(Ok(spawned)) {
        let cx = Context {
            rx: &rx,
            interrupter: &interrupter,
            gate: setup.gate.as_deref(),
            waiting: &setup.waiting,
            shared: &shared,
        };
        let served = catch_unwind(AssertUnwindSafe(|| serve(&mut driver, &cx)));
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

/// The transaction state the loop keeps across requests.
#[derive(Default)]
struct Session<'g> {
    /// Transaction levels opened through `Tx` requests: if the database ends
    /// the transaction on its own (an interrupted or failed statement),
    /// statements are refused until the handle rolls back, rather than run
    /// in autocommit.
    depth: u32,
    /// In single-writer mode: the write permit this connection's transaction holds.
    held: Option<Permit<'g>>,
    /// The number of the last pending rollback run (see `Request::Undo`).
    undone: u64,
}

/// Serves requests until every sender is gone or the connection breaks.
fn serve<D: Driver>(driver: &mut D, cx: &Context<'_>) {
    let shared = cx.shared;
    let mut session = Session::default();
    let mut next: Option<Request> = None;
    let mut idle = Idle::default();
    let mut started: Option<std::time::Instant> = None;
    loop {
        if let Some(started) = started.take() {
            shared.note_busy(started.elapsed());
        }
        if session.held.is_some() && session.depth == 0 {
            session.held = None;
        }
        if cx.interrupter.take_sent() {
            driver.absorb_interrupt();
        }
        if driver.worn_out() {
            shared.worn_out.store(true, Ordering::SeqCst);
        }
        if driver.is_broken() {
            // Callers see their request fail; the pool discards the connection.
            cx.rx.close();
            return;
        }
        let request = match next.take() {
            Some(request) => request,
            None => match idle.next_request(cx.rx, cx.waiting, shared) {
                Some(request) => request,
                None => return,
            },
        };
        let now = std::time::Instant::now();
        shared.note_start(now);
        started = Some(now);
        // The database ended a transaction that the handle still holds open.
        let lost = session.depth > 0 && !driver.in_transaction();
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
                if ticket.lane && (session.depth > 0 || driver.in_transaction()) {
                    Header::bounce(reply, sql, params);
                    continue;
                }
                let answer = Responder { reply, shared };
                if lost {
                    answer.send(false, Err(Error::TransactionAborted));
                    continue;
                }
                match execute(driver, cx, ticket, &sql, params, answer) {
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
                if reply.is_canceled() {
                    continue;
                }
                let mut spent = Vec::new();
                // Outside a transaction the batch is one write transaction of its own.
                let permit = if session.held.is_none() && !driver.in_transaction() {
                    WriteGate::permit(cx.gate, WRITE_PATIENCE)
                } else {
                    Ok(None)
                };
                let result = match permit {
                    _ if lost => Err(Error::TransactionAborted),
                    Err(e) => Err(e),
                    Ok(_permit) => cx.interrupter.run(ticket, || {
                        execute_many(
                            driver,
                            cx.interrupter,
                            &sql,
                            &params,
                            more.as_ref(),
                            &mut spent,
                        )
                    }),
                };
                // A caller still sending chunks learns that the batch stopped.
                if let Some(more) = &more {
                    more.close();
                }
                let answer = Responder { reply, shared };
                answer.send(driver.in_transaction(), result);
                // The sets are freed after the answer, off the caller's wait.
                drop(params);
                drop(spent);
            }
            Request::Fetch { reply, .. } => {
                // The cursor it asks for is no longer open.
                let _ = reply.send(Err(Error::Closed("result")));
            }
            Request::CloseCursor { .. } => {}
            Request::Tx { op, reply } => {
                let result = transaction(driver, cx, &mut session, op);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Request::Undo { op, id } => {
                if id > session.undone {
                    session.undone = id;
                    next = Some(Request::Tx { op, reply: None });
                }
            }
            Request::Reset { undone } => {
                session.undone = session.undone.max(undone);
                if driver.in_transaction() {
                    let _ = driver.execute_batch("ROLLBACK");
                }
                session.depth = 0;
                shared
                    .in_tx
                    .store(driver.in_transaction(), Ordering::SeqCst);
            }
            Request::Call { ticket, call } => {
                if !cx.interrupter.start(ticket) {
                    // Its caller is gone: dropping the closure drops its reply.
                    cx.interrupter.finish();
                    continue;
                }
                run_call(driver, cx, call);
            }
            Request::Script { ticket, sql, reply } => {
                if reply.is_canceled() {
                    continue;
                }
                let result = cx.interrupter.run(ticket, || driver.execute_script(&sql));
                let in_tx = driver.in_transaction();
                shared.in_tx.store(in_tx, Ordering::SeqCst);
                let _ = reply.send(result.map(|()| in_tx));
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

/// Runs a transaction control request, keeping the session's depth and
/// write permit in step with the database.
fn transaction<'g, D: Driver>(
    driver: &mut D,
    cx: &Context<'g>,
    session: &mut Session<'g>,
    op: TxOp,
) -> Result<()> {
    if let (TxOp::Begin(options), None) = (op, &session.held) {
        if options.takes_write_lock() {
            session.held = WriteGate::permit(cx.gate, WRITE_PATIENCE)?;
        }
    }
    let depth = session.depth;
    let result = match op {
        // The database already ended it (an interrupted or failed
        // statement, a panic in user code): nothing left to undo.
        TxOp::Rollback if !driver.in_transaction() => Ok(()),
        // Nothing is left to commit: say so rather than pass the database's puzzlement on.
        TxOp::Commit if depth > 0 && !driver.in_transaction() => Err(Error::TransactionAborted),
        TxOp::Commit if driver.aborted() => {
            let _ = driver.execute_batch("ROLLBACK");
            Err(Error::TransactionAborted)
        }
        TxOp::Release(level) if level > depth => Err(Error::TransactionAborted),
        TxOp::RollbackTo(level) if level > depth || !driver.in_transaction() => Ok(()),
        op => control(driver, op),
    };
    session.depth = match (op, &result) {
        (TxOp::Begin(_), Ok(())) => 1,
        (TxOp::Savepoint(level), Ok(())) => level,
        (TxOp::Begin(_) | TxOp::Savepoint(_), Err(_)) => depth,
        (TxOp::Commit | TxOp::Rollback, _) => 0,
        (TxOp::Release(level) | TxOp::RollbackTo(level), _) => level - 1,
    };
    if !driver.in_transaction() {
        session.depth = 0;
    }
    cx.shared
        .in_tx
        .store(driver.in_transaction(), Ordering::SeqCst);
    result
}

/// Runs a transaction statement; a failed `COMMIT` or `RELEASE` rolls back so
/// the connection is never left inside a transaction nobody owns.
fn control<D: Driver>(driver: &mut D, op: TxOp) -> Result<()> {
    let result = match op {
        TxOp::Begin(options) => driver.begin(&options),
        op => driver.execute_batch(&op.sql()),
    };
    if result.is_err() {
        match op {
            TxOp::Commit if driver.in_transaction() => {
                let _ = driver.execute_batch("ROLLBACK");
            }
            TxOp::Release(depth) => {
                let _ = driver.execute_batch(&TxOp::RollbackTo(depth).sql());
            }
            _ => {}
        }
    }
    result
}

/// Runs user code against the raw connection (`run_in_thread`).
fn run_call<D: Driver>(driver: &mut D, cx: &Context<'_>, call: Call) {
    let (panicked, deliver) = call(driver.raw(), D::NAME);
    let timed_out = cx.interrupter.finish() == Some(Reason::Timeout);
    if panicked {
        // The closure may have begun a transaction in raw SQL that the
        // driver cannot see: roll back whatever is open.
        let _ = driver.execute_batch("ROLLBACK");
    }
    cx.shared
        .in_tx
        .store(driver.in_transaction(), Ordering::SeqCst);
    deliver(timed_out);
}
