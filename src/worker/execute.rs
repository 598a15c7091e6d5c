//! Running statements: one statement and its rows (`Execute`, then the
//! `Fetch`es of its cursor), and one statement over many parameter sets
//! (`ExecuteMany`).

use std::sync::atomic::Ordering;

use async_channel::Receiver;

use super::gate::WriteGate;
use super::interrupt::Interrupter;
use super::protocol::{Batch, Feed, Header, Limit, Request, Responder, Ticket};
use super::read::read_batch;
use super::serve::Context;
use super::{BATCH_ROWS, WRITE_PATIENCE};
use crate::driver::{Cursor, Driver, Statement};
use crate::error::{Error, Result};
use crate::params::Parameters;
use crate::row::Values;

/// What serving a statement leaves the loop with.
pub(super) enum Next {
    /// Ready for the next request.
    Idle,
    /// A request arrived while a cursor was open; the cursor is closed, serve this next.
    Request(Request),
    /// Every sender is gone: stop.
    Disconnected,
}

/// Runs one statement: answers with its header and first batch, then
/// serves its cursor until the rows are drained, the result is closed, or
/// another request arrives.
pub(super) fn execute<D: Driver>(
    driver: &mut D,
    cx: &Context<'_>,
    ticket: Ticket,
    sql: &str,
    params: Parameters,
    answer: Responder<'_, Header>,
) -> Next {
    let interrupter = cx.interrupter;
    if !interrupter.start(ticket) {
        let _ = answer.send(driver.in_transaction(), interrupter.skipped());
        return Next::Idle;
    }
    let autocommit = !driver.in_transaction();
    let (error, ran) = 'run: {
        let mut statement = match driver.prepare(sql, params) {
            Ok(statement) => statement,
            Err(e) => break 'run (interrupter.end(Err(e)), false),
        };
        // Single-writer mode: an autocommit write waits for the engine's write permit.
        let _permit = if autocommit && statement.writes() {
            match WriteGate::permit(cx.gate, WRITE_PATIENCE) {
                Ok(permit) => permit,
                Err(e) => break 'run (interrupter.end(Err(e)), false),
            }
        } else {
            None
        };
        let keys = statement.keys();
        let mut cursor = match statement.run() {
            Ok(cursor) => cursor,
            Err(e) => break 'run (interrupter.end(Err(e)), true),
        };
        let keys = cursor.keys().unwrap_or(keys);
        let first = match &keys {
            Some(keys) => read_batch(keys, Limit::First(BATCH_ROWS), &mut cursor),
            None => drain(&mut cursor).map(|()| Batch::new(Vec::new(), true)),
        };
        let first = match interrupter.end(first) {
            Ok(batch) => batch,
            Err(e) => break 'run (Err(e), true),
        };
        let done = first.done;
        let rowcount = cursor.rowcount(done);
        let header = Header {
            keys: keys.clone(),
            rowcount,
            last_insert_id: cursor.last_insert_id(rowcount),
            returns_rows: keys.is_some(),
            batch: first,
            bounced: None,
        };
        if !answer.send(cursor.in_transaction(), Ok(header)) || done {
            return Next::Idle;
        }
        let Some(keys) = keys else {
            return Next::Idle;
        };
        return serve_cursor(cx, ticket.seq, |limit| {
            read_batch(&keys, limit, &mut cursor)
        });
    };
    if ran {
        driver.statement_failed(sql);
    }
    let _ = answer.send(driver.in_transaction(), error);
    Next::Idle
}

/// Runs a statement that returns no rows to its end.
fn drain(cursor: &mut impl Cursor) -> Result<()> {
    let mut nothing = Values::default();
    while cursor.next_into(&mut nothing)? {}
    Ok(())
}

/// Serves `Fetch` requests for `cursor` until it is drained, closed, or another request arrives.
///
/// `read` produces the next batch; the loop ends when a batch is `done`.
fn serve_cursor(
    cx: &Context<'_>,
    cursor: u64,
    mut read: impl FnMut(Limit) -> Result<Batch>,
) -> Next {
    loop {
        cx.shared.awake.store(false, Ordering::Relaxed);
        let request = cx.rx.recv_blocking();
        cx.shared.awake.store(true, Ordering::Relaxed);
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
                let batch = cx.interrupter.run(ticket, || read(limit));
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

/// Runs `sql` once per parameter set, atomically: the first sets, then each
/// chunk the caller sends until it says the batch is complete. Keeps the
/// chunks it ran in `spent`, to be freed after the answer.
pub(super) fn execute_many<D: Driver>(
    driver: &mut D,
    interrupter: &Interrupter,
    sql: &str,
    first: &[Parameters],
    more: Option<&Receiver<Feed>>,
    spent: &mut Vec<Vec<Parameters>>,
) -> Result<u64> {
    atomically(driver, |driver| {
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
    })
}

/// Runs `work` atomically: inside a transaction of its own (`BEGIN
/// IMMEDIATE` where the database has it), or a savepoint when one is open.
fn atomically<D: Driver, T>(driver: &mut D, work: impl FnOnce(&mut D) -> Result<T>) -> Result<T> {
    let outer = !driver.in_transaction();
    let begin = match (outer, D::HAS_IMMEDIATE) {
        (true, true) => "BEGIN IMMEDIATE",
        (true, false) => "BEGIN",
        (false, _) => "SAVEPOINT sqlaio_many",
    };
    driver.execute_batch(begin)?;
    let result = work(driver);
    let end = match (&result, outer) {
        (Ok(_), true) => "COMMIT",
        (Ok(_), false) => "RELEASE SAVEPOINT sqlaio_many",
        (Err(_), true) => "ROLLBACK",
        (Err(_), false) => "ROLLBACK TO SAVEPOINT sqlaio_many; RELEASE SAVEPOINT sqlaio_many",
    };
    let ended = driver.execute_batch(end);
    if ended.is_err() && outer && driver.in_transaction() {
        let _ = driver.execute_batch("ROLLBACK");
    }
    let value = result?;
    ended?;
    Ok(value)
}
