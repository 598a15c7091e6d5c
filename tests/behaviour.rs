//! The behavioural suite, stamped per runtime and per backend (see `common`).
//!
//! The first part ports what Python's sqlalchemy_aio tests; the rest covers
//! what it did not: concurrency, the shared in-memory database, isolation,
//! parameters, decoding, bad input, panics, closing, and failed connects.
//!
//! Every body runs on SQLite (in memory and in a file) and, with the
//! `postgres` feature, on PostgreSQL. Where the databases legitimately
//! differ (an error inside a transaction, isolation levels, rowids), a body
//! asserts each one's own behaviour.
#![cfg(any(feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod common;

use std::any::Any;
use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use futures::future;
use futures::{FutureExt, Stream, StreamExt, TryFutureExt, TryStreamExt};
#[cfg(feature = "sqlite")]
use sqlaio::rusqlite;
use sqlaio::{params, Connection, Engine, Error, Value};

use common::{Backend, Ctx};

stamp! {
    // sqlalchemy_aio's own suite
    engine_execute_and_scalar,
    connection_execute_and_scalar,
    connection_close,
    in_transaction,
    commit,
    rollback,
    dropped_transaction_rolls_back,
    rollback_of_a_dropped_transaction_outlives_a_dropped_statement,
    begin_nested,
    engine_begin,
    has_table_and_table_names,
    fetchone,
    fetchmany,
    fetchall,
    first,
    scalar,
    keys,
    returns_rows,
    rowcount,
    last_insert_id,
    stream_large_result,
    dropped_call_in_flight,
    // beyond it
    call_dropped_at_once_never_keeps_running,
    dropped_statement_is_interrupted,
    interrupted_statement_in_a_transaction,
    statement_timeout,
    statement_timeout_in_run_in_thread,
    pool_timeout,
    min_connections_open_ahead_of_demand,
    dropped_fetch_keeps_its_rows,
    dropped_result_releases_its_connection,
    cancelled_begin_is_rolled_back,
    closing_a_connection_in_a_transaction_rolls_back,
    dropped_connection_in_sql_transaction_rolls_back,
    concurrent_tasks,
    tasks_sharing_one_connection,
    engine_statements_queue_on_busy_connections,
    engine_statement_waits_for_an_open_result,
    engine_statement_never_joins_a_transaction,
    engine_statements_in_line_share_the_connection_that_comes_back,
    concurrent_transactions,
    pooled_connections_share_one_database,
    transactions_are_isolated,
    ddl_is_transactional,
    execute_many,
    parameters,
    row_get,
    row_get_errors,
    bad_sql,
    bad_parameters,
    panic_in_run_in_thread,
    panic_in_run_in_thread_rolls_back_the_transaction,
    run_in_thread_returns_the_users_error,
    engine_close,
    engine_debug,
    failed_connect,
    failed_commit_leaves_the_connection_usable,
}

/// `1, 2, ..., $1` as rows of one column `n`.
const SERIES: &str = concat!(
    "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $1) ",
    "SELECT n FROM s"
);

/// Counts to `$1`: one row, after a while.
const COUNT_TO: &str = concat!(
    "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $1) ",
    "SELECT count(*) FROM s"
);

/// Returns its integer parameter. The cast gives PostgreSQL the parameter's
/// type (a bare `SELECT $1` is text there); SQLite returns it as it came.
const ECHO: &str = "SELECT CAST($1 AS BIGINT)";

/// A count for [`COUNT_TO`] long enough that the statement is still running
/// when its future is dropped (over a second on SQLite in a debug build,
/// about half a second on PostgreSQL), short enough to let it run to the end.
fn slow(ctx: &Ctx) -> i64 {
    if ctx.backend.is_sqlite() {
        1_000_000
    } else {
        300_000
    }
}

/// A statement timeout far above what a trivial statement takes, even on a
/// loaded machine, and short enough that a few of them keep the test quick.
const TIMEOUT: Duration = Duration::from_millis(300);

/// Far longer than any test may take (tens of seconds even in a release
/// build): only ever run to be interrupted.
const ENDLESS: i64 = 20_000_000;

async fn count(conn: &Connection, table: &str) -> i64 {
    conn.scalar(format!("SELECT count(*) FROM {table}"), ())
        .await
        .unwrap()
}

async fn ids(conn: &Connection, table: &str) -> Vec<i64> {
    conn.execute(format!("SELECT id FROM {table} ORDER BY id"), ())
        .await
        .unwrap()
        .map(|row| row.unwrap().get::<i64>("id").unwrap())
        .collect()
        .await
}

/// Inserts users through the engine, one pooled call each.
async fn insert_users_through(engine: &Engine, names: &[&str]) {
    for (i, name) in names.iter().enumerate() {
        let id = i64::try_from(i).unwrap() + 1;
        engine
            .execute("INSERT INTO users (id, name) VALUES ($1, $2)", (id, *name))
            .await
            .unwrap();
    }
}

/// `users (id, name)`, where `id` numbers new rows by itself.
async fn create_users(ctx: &Ctx, conn: &Connection) {
    conn.execute(
        format!(
            "CREATE TABLE users ({}, name TEXT NOT NULL)",
            ctx.id_column()
        ),
        (),
    )
    .await
    .unwrap();
}

async fn insert_users(conn: &Connection, names: &[&str]) {
    for (i, name) in names.iter().enumerate() {
        let id = i64::try_from(i).unwrap() + 1;
        conn.execute("INSERT INTO users (id, name) VALUES ($1, $2)", (id, *name))
            .await
            .unwrap();
    }
}

/// The error of a statement in a transaction the database has aborted:
/// sqlaio's own, or PostgreSQL's refusal, "current transaction is aborted"
/// (SQLSTATE 25P02), which lasts until the transaction is rolled back.
fn is_aborted(err: &Error) -> bool {
    if matches!(err, Error::TransactionAborted) {
        return true;
    }
    #[cfg(feature = "postgres")]
    if let Some(pg) = err
        .source()
        .and_then(|s| s.downcast_ref::<sqlaio::postgres::Error>())
    {
        return pg.code() == Some(&sqlaio::postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION);
    }
    false
}

/// The raw driver connection `run_in_thread` hands to its closure, so that
/// one body exercises each backend's own: `rusqlite::Connection` or
/// `postgres::Client`.
trait Raw: Any + Send {
    /// Runs `sql` and returns the integer in the first column of its one row.
    fn query_int(&mut self, sql: &str) -> Result<i64, Error>;
    /// Runs `sql` and returns the text in the first column of its one row.
    fn query_text(&mut self, sql: &str) -> Result<String, Error>;
    /// Runs `sql`, which returns no rows.
    fn run(&mut self, sql: &str) -> Result<(), Error>;
}

#[cfg(feature = "sqlite")]
impl Raw for rusqlite::Connection {
    fn query_int(&mut self, sql: &str) -> Result<i64, Error> {
        Ok(self.query_row(sql, [], |r| r.get(0))?)
    }

    fn query_text(&mut self, sql: &str) -> Result<String, Error> {
        Ok(self.query_row(sql, [], |r| r.get(0))?)
    }

    fn run(&mut self, sql: &str) -> Result<(), Error> {
        self.execute(sql, [])?;
        Ok(())
    }
}

#[cfg(feature = "postgres")]
impl Raw for sqlaio::postgres::Client {
    fn query_int(&mut self, sql: &str) -> Result<i64, Error> {
        use sqlaio::postgres::types::Type;
        let row = self.query_one(sql, &[])?;
        // The client decodes each integer type into its own width only.
        Ok(match *row.columns()[0].type_() {
            Type::INT2 => row.try_get::<_, i16>(0)?.into(),
            Type::INT4 => row.try_get::<_, i32>(0)?.into(),
            _ => row.try_get::<_, i64>(0)?,
        })
    }

    fn query_text(&mut self, sql: &str) -> Result<String, Error> {
        Ok(self.query_one(sql, &[])?.try_get(0)?)
    }

    fn run(&mut self, sql: &str) -> Result<(), Error> {
        self.execute(sql, &[])?;
        Ok(())
    }
}

/// Awaits `$body::<R>(ctx)` with `R` the [`Raw`] connection of the test's backend.
macro_rules! with_raw {
    ($body:ident, $ctx:ident) => {
        match $ctx.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres => $body::<sqlaio::postgres::Client>($ctx).await,
            #[cfg(feature = "sqlite")]
            Backend::Memory | Backend::File => $body::<rusqlite::Connection>($ctx).await,
            #[allow(unreachable_patterns)]
            _ => unreachable!("{:?} is not stamped in this build", $ctx.backend),
        }
    };
}

// ---------------------------------------------------------------------------
// sqlalchemy_aio's suite
// ---------------------------------------------------------------------------

async fn engine_execute_and_scalar(ctx: Ctx) {
    let engine = ctx.engine();
    let mut result = engine
        .execute("SELECT $1 + 1 AS answer", (41,))
        .await
        .unwrap();
    let row = result.fetchone().await.unwrap().expect("one row");
    assert_eq!(row.get::<i64>(0).unwrap(), 42);
    assert_eq!(row.get::<i64>("answer").unwrap(), 42);
    assert!(result.fetchone().await.unwrap().is_none());
    drop(result);

    assert_eq!(
        engine.scalar::<i64>("SELECT $1 * 2", (21,)).await.unwrap(),
        42
    );
    engine
        .execute("CREATE TABLE t (x INTEGER)", ())
        .await
        .unwrap();
    engine
        .execute("INSERT INTO t (x) VALUES ($1)", (7,))
        .await
        .unwrap();
    assert_eq!(
        engine.scalar::<i64>("SELECT x FROM t", ()).await.unwrap(),
        7
    );
    engine.close().await.unwrap();
}

async fn connection_execute_and_scalar(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    insert_users(&conn, &["Dana Whitaker", "Casey McCall"]).await;
    let name: String = conn
        .scalar("SELECT name FROM users WHERE id = $1", (2,))
        .await
        .unwrap();
    assert_eq!(name, "Casey McCall");
    let rows = conn
        .execute("SELECT id, name FROM users ORDER BY id", ())
        .await
        .unwrap()
        .fetchall()
        .await
        .unwrap();
    let got: Vec<(i64, String)> = rows
        .iter()
        .map(|r| (r.get(0).unwrap(), r.get(1).unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "Dana Whitaker".to_owned()),
            (2, "Casey McCall".to_owned())
        ]
    );
    // The connection serves statement after statement.
    for i in 0..20_i64 {
        assert_eq!(conn.scalar::<i64>(ECHO, (i,)).await.unwrap(), i);
    }
}

async fn connection_close(ctx: Ctx) {
    with_raw!(connection_close_with, ctx)
}

async fn connection_close_with<R: Raw>(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    assert!(!conn.is_closed());
    assert_eq!(conn.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
    conn.close().await.unwrap();
    assert!(conn.is_closed());
    // Closing twice is fine.
    conn.close().await.unwrap();
    assert!(conn.is_closed());

    let err = conn.execute("SELECT 1", ()).await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = conn.scalar::<i64>("SELECT 1", ()).await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = conn.begin().await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = conn.begin_nested().await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = conn
        .execute_many("SELECT $1", [(1,), (2,)])
        .await
        .unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = conn.table_names().await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = conn.has_table("users").await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = conn
        .run_in_thread(|_raw: &mut R| Ok::<_, Error>(()))
        .await
        .unwrap_err();
    assert!(err.is_closed(), "{err}");
    assert!(!conn.in_transaction());

    // The engine is not affected.
    assert!(!engine.is_closed());
    assert_eq!(engine.scalar::<i64>("SELECT 2", ()).await.unwrap(), 2);
    let again = engine.connect().await.unwrap();
    assert_eq!(again.scalar::<i64>("SELECT 3", ()).await.unwrap(), 3);
}

async fn in_transaction(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    assert!(!conn.in_transaction());

    let tx = conn.begin().await.unwrap();
    assert!(tx.is_active());
    assert!(tx.in_transaction());
    assert!(conn.in_transaction());
    tx.commit().await.unwrap();
    assert!(!conn.in_transaction());

    let tx = conn.begin().await.unwrap();
    assert!(conn.in_transaction());
    tx.rollback().await.unwrap();
    assert!(!conn.in_transaction());

    // Transactions begun with SQL count too.
    conn.execute("BEGIN", ()).await.unwrap();
    assert!(conn.in_transaction());
    conn.execute("COMMIT", ()).await.unwrap();
    assert!(!conn.in_transaction());

    // A second BEGIN on the same connection is refused; the first stays open.
    let tx = conn.begin().await.unwrap();
    let err = conn.begin().await.unwrap_err();
    assert!(matches!(err, Error::TransactionOpen), "{err:?}");
    assert!(err.to_string().contains("begin_nested"), "{err}");
    assert!(tx.is_active());
    tx.commit().await.unwrap();
    assert!(!conn.in_transaction());
}

async fn commit(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    let tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO users (id, name) VALUES ($1, $2)", (1, "Isaac"))
        .await
        .unwrap();
    assert_eq!(count(&tx, "users").await, 1);
    tx.commit().await.unwrap();
    assert_eq!(count(&conn, "users").await, 1);
    // Committed means visible to every other connection.
    let other = engine.connect().await.unwrap();
    assert_eq!(count(&other, "users").await, 1);
}

async fn rollback(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    let tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO users (id, name) VALUES ($1, $2)", (1, "Isaac"))
        .await
        .unwrap();
    assert_eq!(count(&tx, "users").await, 1);
    tx.rollback().await.unwrap();
    assert!(!conn.in_transaction());
    assert_eq!(count(&conn, "users").await, 0);
    let other = engine.connect().await.unwrap();
    assert_eq!(count(&other, "users").await, 0);
}

async fn dropped_transaction_rolls_back(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    {
        let tx = conn.begin().await.unwrap();
        tx.execute(
            "INSERT INTO users (id, name) VALUES ($1, $2)",
            (1, "Natalie"),
        )
        .await
        .unwrap();
        // dropped uncommitted
    }
    // Out of the transaction right away, before any other call.
    assert!(!conn.in_transaction());
    assert_eq!(count(&conn, "users").await, 0);
    assert!(!conn.in_transaction());
    let other = engine.connect().await.unwrap();
    assert_eq!(count(&other, "users").await, 0);

    // The connection is usable: a new transaction begins and commits.
    let tx = conn.begin().await.unwrap();
    tx.execute(
        "INSERT INTO users (id, name) VALUES ($1, $2)",
        (2, "Jeremy"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&other, "users").await, [2]);
}

async fn rollback_of_a_dropped_transaction_outlives_a_dropped_statement(ctx: Ctx) {
    // A transaction dropped while the connection's queue is full leaves its
    // rollback to go ahead of the next request. The request that finds it
    // may then wait for room in the queue; the rollback must still go ahead
    // of every later request: when that request's future is dropped, and
    // when another request is sent before it gets room. Otherwise a later
    // write runs inside the dropped transaction and is rolled back with it.
    let engine = ctx.builder().max_connections(2).build().unwrap();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    let insert = "INSERT INTO users (id, name) VALUES ($1, $2)";
    for keep_waiting in [false, true] {
        conn.execute("DELETE FROM users", ()).await.unwrap();
        let tx = conn.begin().await.unwrap();
        tx.execute(insert, (1, "dropped")).await.unwrap();
        // One statement runs on the worker for a while, 16 more fill the queue.
        let mut running = Box::pin(conn.scalar::<i64>(COUNT_TO, (slow(&ctx),)));
        assert!(futures::poll!(running.as_mut()).is_pending());
        std::thread::sleep(Duration::from_millis(50));
        let mut queued: Vec<_> = (0..16_i64)
            .map(|i| Box::pin(conn.scalar::<i64>(ECHO, (i,))))
            .collect();
        for q in &mut queued {
            assert!(futures::poll!(q.as_mut()).is_pending());
        }
        drop(tx);
        assert!(!conn.in_transaction());
        // This request finds the rollback and waits for room.
        let mut waiting = Some(Box::pin(conn.execute(insert, (2, "waited"))));
        if let Some(w) = waiting.as_mut() {
            assert!(futures::poll!(w.as_mut()).is_pending());
        }
        if !keep_waiting {
            waiting = None;
        }
        assert_eq!(running.await.unwrap(), slow(&ctx));
        for (i, q) in queued.into_iter().enumerate() {
            assert_eq!(q.await.unwrap(), i as i64);
        }
        // Answers from inside the transaction came after it was dropped;
        // its rollback is not queued yet, and it counts as gone all the same.
        assert!(!conn.in_transaction());
        // The queue has room now; a new request goes in before the waiting
        // one is polled again, and the rollback still goes first.
        conn.execute(insert, (3, "kept")).await.unwrap();
        assert!(!conn.in_transaction());
        let expected: &[i64] = match waiting {
            Some(w) => {
                w.await.unwrap();
                &[2, 3]
            }
            None => &[3],
        };
        assert!(!conn.in_transaction());
        let other = engine.connect().await.unwrap();
        assert_eq!(ids(&other, "users").await, expected);
        assert_eq!(ids(&conn, "users").await, expected);
    }
}

async fn begin_nested(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    let insert = "INSERT INTO users (id, name) VALUES ($1, 'x')";

    let tx = conn.begin().await.unwrap();
    tx.execute(insert, (1,)).await.unwrap();
    let inner = tx.begin_nested().await.unwrap();
    inner.execute(insert, (2,)).await.unwrap();
    assert_eq!(ids(&inner, "users").await, [1, 2]);
    inner.rollback().await.unwrap();
    assert!(tx.is_active());
    assert!(conn.in_transaction());
    assert_eq!(ids(&tx, "users").await, [1]);

    let inner = tx.begin_nested().await.unwrap();
    inner.execute(insert, (3,)).await.unwrap();
    inner.commit().await.unwrap();
    assert!(tx.is_active());

    {
        let inner = tx.begin_nested().await.unwrap();
        inner.execute(insert, (4,)).await.unwrap();
        // dropped: back to the savepoint only
    }
    assert!(tx.is_active());
    assert_eq!(ids(&tx, "users").await, [1, 3]);

    // Two levels deep, the outer savepoint keeps what the inner one released.
    let outer = tx.begin_nested().await.unwrap();
    outer.execute(insert, (5,)).await.unwrap();
    let deeper = outer.begin_nested().await.unwrap();
    deeper.execute(insert, (6,)).await.unwrap();
    deeper.rollback().await.unwrap();
    outer.commit().await.unwrap();

    tx.commit().await.unwrap();
    assert!(!conn.in_transaction());
    let other = engine.connect().await.unwrap();
    assert_eq!(ids(&other, "users").await, [1, 3, 5]);

    // Outside a transaction, a savepoint starts one.
    let sp = conn.begin_nested().await.unwrap();
    assert!(conn.in_transaction());
    sp.execute(insert, (7,)).await.unwrap();
    sp.commit().await.unwrap();
    assert!(!conn.in_transaction());
    assert_eq!(ids(&other, "users").await, [1, 3, 5, 7]);
}

async fn engine_begin(ctx: Ctx) {
    // One connection: each transaction must give it back for the next call.
    let engine = ctx.builder().max_connections(1).build().unwrap();
    engine
        .execute(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
            (),
        )
        .await
        .unwrap();
    let insert = "INSERT INTO users (id, name) VALUES ($1, 'x')";

    let tx = engine.begin().await.unwrap();
    assert!(tx.in_transaction());
    tx.execute(insert, (1,)).await.unwrap();
    tx.commit().await.unwrap();
    let c: i64 = engine
        .scalar("SELECT count(*) FROM users", ())
        .await
        .unwrap();
    assert_eq!(c, 1);

    let tx = engine.begin().await.unwrap();
    tx.execute(insert, (2,)).await.unwrap();
    tx.rollback().await.unwrap();
    let c: i64 = engine
        .scalar("SELECT count(*) FROM users", ())
        .await
        .unwrap();
    assert_eq!(c, 1);

    let tx = engine.begin().await.unwrap();
    tx.execute(insert, (3,)).await.unwrap();
    drop(tx);
    let conn = engine.connect().await.unwrap();
    assert!(!conn.in_transaction());
    assert_eq!(ids(&conn, "users").await, [1]);
}

async fn has_table_and_table_names(ctx: Ctx) {
    let engine = ctx.engine();
    assert!(!engine.has_table("users").await.unwrap());
    assert_eq!(engine.table_names().await.unwrap(), Vec::<String>::new());

    let conn = engine.connect().await.unwrap();
    assert!(!conn.has_table("users").await.unwrap());
    create_users(&ctx, &conn).await;
    conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY)", ())
        .await
        .unwrap();
    assert!(conn.has_table("users").await.unwrap());
    assert!(conn.has_table("accounts").await.unwrap());
    assert!(!conn.has_table("nothing").await.unwrap());
    // An unquoted name in another case names the same table on both databases.
    assert!(conn.has_table("USERS").await.unwrap());
    assert_eq!(conn.table_names().await.unwrap(), ["accounts", "users"]);
    if ctx.backend.is_postgres() {
        // A quoted mixed-case name is its own table there.
        conn.execute("CREATE TABLE \"Mixed\" (id INTEGER)", ())
            .await
            .unwrap();
        assert!(conn.has_table("Mixed").await.unwrap());
        assert!(!conn.has_table("mixed").await.unwrap());
        conn.execute("DROP TABLE \"Mixed\"", ()).await.unwrap();
    }
    drop(conn);

    assert!(engine.has_table("users").await.unwrap());
    assert_eq!(engine.table_names().await.unwrap(), ["accounts", "users"]);

    engine.execute("DROP TABLE users", ()).await.unwrap();
    assert!(!engine.has_table("users").await.unwrap());
    assert_eq!(engine.table_names().await.unwrap(), ["accounts"]);
}

async fn fetchone(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    insert_users(&conn, &["Dana", "Casey"]).await;
    let mut result = conn
        .execute("SELECT id, name FROM users ORDER BY id", ())
        .await
        .unwrap();
    let row = result.fetchone().await.unwrap().expect("a first row");
    assert_eq!(row.get::<i64>("id").unwrap(), 1);
    assert_eq!(row.get::<String>("name").unwrap(), "Dana");
    let row = result.fetchone().await.unwrap().expect("a second row");
    assert_eq!(row.get::<i64>("id").unwrap(), 2);
    assert_eq!(row.get::<String>("name").unwrap(), "Casey");
    assert!(result.fetchone().await.unwrap().is_none());
    assert!(result.fetchone().await.unwrap().is_none());

    let mut empty = conn
        .execute("SELECT id FROM users WHERE id > 100", ())
        .await
        .unwrap();
    assert!(empty.fetchone().await.unwrap().is_none());
}

async fn fetchmany(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    insert_users(&conn, &["a", "b"]).await;
    let select = "SELECT id FROM users ORDER BY id";
    let got =
        |rows: Vec<sqlaio::Row>| -> Vec<i64> { rows.iter().map(|r| r.get(0).unwrap()).collect() };

    // Size 1 (sqlalchemy's default arraysize), one row at a time.
    let mut result = conn.execute(select, ()).await.unwrap();
    assert_eq!(got(result.fetchmany(1).await.unwrap()), [1]);
    assert_eq!(got(result.fetchmany(1).await.unwrap()), [2]);
    assert!(result.fetchmany(1).await.unwrap().is_empty());
    drop(result);

    // 1 of 2 rows, then the rest.
    let mut result = conn.execute(select, ()).await.unwrap();
    assert_eq!(got(result.fetchmany(1).await.unwrap()), [1]);
    assert_eq!(got(result.fetchall().await.unwrap()), [2]);
    drop(result);

    // 100 of 3 rows gives the 3.
    conn.execute("INSERT INTO users (id, name) VALUES (3, 'c')", ())
        .await
        .unwrap();
    let mut result = conn.execute(select, ()).await.unwrap();
    assert_eq!(got(result.fetchmany(100).await.unwrap()), [1, 2, 3]);
    assert!(result.fetchmany(100).await.unwrap().is_empty());
    drop(result);

    // Across batches: sizes that straddle what comes with the first answer.
    let mut result = conn.execute(SERIES, (1000,)).await.unwrap();
    let mut next = 1;
    for size in [1, 300, 7, 500, 1000] {
        let rows = result.fetchmany(size).await.unwrap();
        let want: Vec<i64> = (next..(next + size as i64).min(1001)).collect();
        assert_eq!(got(rows), want);
        next += want.len() as i64;
    }
    assert_eq!(next, 1001);

    // More than one message holds (4,096 rows): still exactly the size asked for.
    let mut result = conn.execute(SERIES, (12_000,)).await.unwrap();
    assert_eq!(got(result.fetchmany(3).await.unwrap()), [1, 2, 3]);
    let rows = got(result.fetchmany(10_000).await.unwrap());
    assert_eq!(rows, (4..10_004).collect::<Vec<i64>>());
    let rest = got(result.fetchmany(10_000).await.unwrap());
    assert_eq!(rest, (10_004..=12_000).collect::<Vec<i64>>());
    assert!(result.fetchmany(10_000).await.unwrap().is_empty());
}

async fn fetchall(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    insert_users(&conn, &["a", "b", "c"]).await;
    let mut result = conn
        .execute("SELECT id, name FROM users ORDER BY id", ())
        .await
        .unwrap();
    let rows = result.fetchall().await.unwrap();
    let got: Vec<(i64, String)> = rows
        .iter()
        .map(|r| (r.get("id").unwrap(), r.get("name").unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "a".to_owned()),
            (2, "b".to_owned()),
            (3, "c".to_owned())
        ]
    );
    assert!(result.fetchall().await.unwrap().is_empty());

    // More than one batch.
    let rows = conn
        .execute(SERIES, (3000,))
        .await
        .unwrap()
        .fetchall()
        .await
        .unwrap();
    let got: Vec<i64> = rows.iter().map(|r| r.get(0).unwrap()).collect();
    assert_eq!(got, (1..=3000).collect::<Vec<_>>());
}

async fn first(ctx: Ctx) {
    // One connection: `first` must give it back.
    let engine = ctx.builder().max_connections(1).build().unwrap();
    engine
        .execute(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
            (),
        )
        .await
        .unwrap();
    insert_users_through(&engine, &["Dana", "Casey", "Dan"]).await;
    let row = engine
        .execute("SELECT id, name FROM users ORDER BY id", ())
        .await
        .unwrap()
        .first()
        .await
        .unwrap()
        .expect("a row");
    assert_eq!(row.get::<String>("name").unwrap(), "Dana");

    // `first` of a result larger than a batch closes it and frees the connection.
    let row = engine
        .execute(SERIES, (5000,))
        .await
        .unwrap()
        .first()
        .await
        .unwrap()
        .expect("a row");
    assert_eq!(row.get::<i64>(0).unwrap(), 1);
    let none = engine
        .execute("SELECT id FROM users WHERE id > 100", ())
        .await
        .unwrap()
        .first()
        .await
        .unwrap();
    assert!(none.is_none());
    assert_eq!(
        engine
            .scalar::<i64>("SELECT count(*) FROM users", ())
            .await
            .unwrap(),
        3
    );

    let conn = engine.connect().await.unwrap();
    let row = conn
        .execute(SERIES, (5000,))
        .await
        .unwrap()
        .first()
        .await
        .unwrap()
        .expect("a row");
    assert_eq!(row.get::<i64>("n").unwrap(), 1);
    assert_eq!(conn.scalar::<i64>("SELECT 5", ()).await.unwrap(), 5);
}

async fn scalar(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    insert_users(&conn, &["Dana", "Casey"]).await;
    assert_eq!(
        conn.scalar::<i64>("SELECT count(*) FROM users", ())
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        conn.scalar::<String>("SELECT name FROM users ORDER BY id DESC", ())
            .await
            .unwrap(),
        "Casey"
    );

    // Option: no row and NULL are both None.
    let none: Option<i64> = conn
        .scalar("SELECT id FROM users WHERE id > 100", ())
        .await
        .unwrap();
    assert_eq!(none, None);
    let null: Option<i64> = conn.scalar("SELECT NULL", ()).await.unwrap();
    assert_eq!(null, None);
    let some: Option<i64> = conn.scalar("SELECT 5", ()).await.unwrap();
    assert_eq!(some, Some(5));

    // A plain type: no row is NoRows, NULL does not decode.
    let err = conn
        .scalar::<i64>("SELECT id FROM users WHERE id > 100", ())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoRows), "{err:?}");
    let err = engine
        .scalar::<i64>("SELECT id FROM users WHERE id > 100", ())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoRows), "{err:?}");
    let err = conn
        .scalar::<i64>("SELECT NULL AS empty_value", ())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("empty_value") && text.contains("null"),
        "{text}"
    );

    // On a result, and on a statement that returns no rows.
    let result = conn.execute("SELECT 9, 10", ()).await.unwrap();
    assert_eq!(result.scalar::<i64>().await.unwrap(), 9);
    let result = conn
        .execute("UPDATE users SET name = 'x' WHERE id = 1", ())
        .await
        .unwrap();
    assert_eq!(result.scalar::<Option<i64>>().await.unwrap(), None);
    // The connection is free afterwards.
    assert_eq!(conn.scalar::<i64>("SELECT 11", ()).await.unwrap(), 11);
}

async fn keys(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    let result = conn
        .execute("SELECT id, name FROM users", ())
        .await
        .unwrap();
    // Known even when there are no rows.
    assert_eq!(result.keys(), ["id", "name"]);
    drop(result);
    let result = conn
        .execute(
            "SELECT 1 AS first_col, 'x' AS second_col, NULL AS third_col",
            (),
        )
        .await
        .unwrap();
    assert_eq!(result.keys(), ["first_col", "second_col", "third_col"]);
    let row = result.first().await.unwrap().expect("a row");
    assert_eq!(row.keys(), ["first_col", "second_col", "third_col"]);
    let result = conn
        .execute("CREATE TABLE other (x INTEGER)", ())
        .await
        .unwrap();
    assert!(result.keys().is_empty());
}

async fn returns_rows(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    let result = conn
        .execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)", ())
        .await
        .unwrap();
    assert!(!result.returns_rows());
    drop(result);
    let result = conn.execute("SELECT id FROM users", ()).await.unwrap();
    assert!(result.returns_rows());
    drop(result);
    let result = conn
        .execute("INSERT INTO users (id, name) VALUES (1, 'a')", ())
        .await
        .unwrap();
    assert!(!result.returns_rows());
    drop(result);
    let mut result = conn
        .execute(
            "INSERT INTO users (id, name) VALUES (2, 'b') RETURNING id",
            (),
        )
        .await
        .unwrap();
    assert!(result.returns_rows());
    let rows = result.fetchall().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<i64>("id").unwrap(), 2);
    assert_eq!(count(&conn, "users").await, 2);
}

async fn rowcount(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    let result = conn
        .execute(
            "INSERT INTO users (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')",
            (),
        )
        .await
        .unwrap();
    assert_eq!(result.rowcount(), 3);
    drop(result);
    let result = conn
        .execute("DELETE FROM users WHERE id <= $1", (2,))
        .await
        .unwrap();
    assert_eq!(result.rowcount(), 2);
    drop(result);
    let result = conn
        .execute("UPDATE users SET name = 'z'", ())
        .await
        .unwrap();
    assert_eq!(result.rowcount(), 1);
    drop(result);
    let result = conn
        .execute("DELETE FROM users WHERE id > 100", ())
        .await
        .unwrap();
    assert_eq!(result.rowcount(), 0);
    drop(result);
    // Through the engine too.
    let result = engine.execute("DELETE FROM users", ()).await.unwrap();
    assert_eq!(result.rowcount(), 1);
}

async fn last_insert_id(ctx: Ctx) {
    // SQLite reports the rowid of the inserted row. PostgreSQL has no rowid:
    // always None there, and `INSERT ... RETURNING id` gives the key instead.
    let sqlite = ctx.backend.is_sqlite();
    let inserted = |id: i64| sqlite.then_some(id);
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    let result = conn
        .execute("INSERT INTO users (name) VALUES ($1)", ("Dana",))
        .await
        .unwrap();
    assert_eq!(result.last_insert_id(), inserted(1));
    assert_eq!(result.rowcount(), 1);
    drop(result);
    let result = conn
        .execute("INSERT INTO users (name) VALUES ($1)", ("Casey",))
        .await
        .unwrap();
    assert_eq!(result.last_insert_id(), inserted(2));
    drop(result);
    let result = conn
        .execute("INSERT INTO users (id, name) VALUES (40, 'x')", ())
        .await
        .unwrap();
    assert_eq!(result.last_insert_id(), inserted(40));
    drop(result);
    // Not an insert: no id.
    let result = conn
        .execute("UPDATE users SET name = 'y' WHERE id = 1", ())
        .await
        .unwrap();
    assert_eq!(result.last_insert_id(), None);
    drop(result);
    let result = conn.execute("SELECT 1", ()).await.unwrap();
    assert_eq!(result.last_insert_id(), None);
    drop(result);
    // Through the engine.
    let result = engine
        .execute("INSERT INTO users (name) VALUES ('z')", ())
        .await
        .unwrap();
    assert_eq!(result.last_insert_id(), inserted(41));
    drop(result);

    // The portable way: RETURNING. SQLite numbers after the largest rowid;
    // PostgreSQL's identity counts on, whatever ids were given explicitly.
    let id: i64 = conn
        .scalar("INSERT INTO users (name) VALUES ($1) RETURNING id", ("w",))
        .await
        .unwrap();
    assert_eq!(id, if sqlite { 42 } else { 4 });
    assert_eq!(ids(&conn, "users").await.len(), 5);
}

async fn stream_large_result(ctx: Ctx) {
    const N: i64 = 2000;
    let engine = ctx.builder().max_connections(1).build().unwrap();

    let mut result = engine.execute(SERIES, (N,)).await.unwrap();
    let mut expected = 1;
    while let Some(row) = result.try_next().await.unwrap() {
        assert_eq!(row.get::<i64>("n").unwrap(), expected);
        expected += 1;
    }
    assert_eq!(expected, N + 1);
    // A drained stream stays drained.
    assert!(result.next().await.is_none());
    drop(result);

    // Combinators; the single connection came back after each drained result.
    let values: Vec<i64> = engine
        .execute(SERIES, (N,))
        .await
        .unwrap()
        .map(|row| row.unwrap().get::<i64>(0).unwrap())
        .collect()
        .await;
    assert_eq!(values, (1..=N).collect::<Vec<_>>());
    let rows: Vec<sqlaio::Row> = engine
        .execute(SERIES, (N,))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), N as usize);

    // Mixed with fetches, on a connection.
    let conn = engine.connect().await.unwrap();
    let mut result = conn.execute(SERIES, (N,)).await.unwrap();
    let head: Vec<i64> = (&mut result)
        .take(300)
        .map(|row| row.unwrap().get::<i64>(0).unwrap())
        .collect()
        .await;
    assert_eq!(head, (1..=300).collect::<Vec<_>>());
    let one = result.fetchone().await.unwrap().expect("row 301");
    assert_eq!(one.get::<i64>(0).unwrap(), 301);
    let many = result.fetchmany(299).await.unwrap();
    assert_eq!(many.first().unwrap().get::<i64>(0).unwrap(), 302);
    assert_eq!(many.last().unwrap().get::<i64>(0).unwrap(), 600);
    let tail: Vec<i64> = result
        .map_ok(|row| row.get::<i64>(0).unwrap())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(tail, (601..=N).collect::<Vec<_>>());
    assert_eq!(conn.scalar::<i64>("SELECT 7", ()).await.unwrap(), 7);

    // Dropped mid-stream, while the worker may be reading the next batch
    // ahead: the connection's next statements get their own rows.
    for stop in [1, 257, 700] {
        let mut result = conn.execute(SERIES, (N,)).await.unwrap();
        for expected in 1..=stop {
            let row = result.try_next().await.unwrap().expect("a row");
            assert_eq!(row.get::<i64>(0).unwrap(), expected);
        }
        drop(result);
        assert_eq!(conn.scalar::<i64>("SELECT 7", ()).await.unwrap(), 7);
        let rows = conn.execute(SERIES, (600,)).await.unwrap();
        let all = rows.try_collect::<Vec<_>>().await.unwrap();
        assert_eq!(all.len(), 600, "after a stream dropped at row {stop}");
        assert_eq!(all[599].get::<i64>(0).unwrap(), 600);
    }

    // yield_per: after the first batch (256 rows, with the execute answer)
    // every batch holds that many rows, where it would have doubled.
    for (per, left) in [(None, 511), (Some(10), 9), (Some(0), 0)] {
        let mut result = conn.execute(SERIES, (N,)).await.unwrap();
        if let Some(per) = per {
            result = result.yield_per(per);
        }
        for expected in 1..=257 {
            let row = result.try_next().await.unwrap().expect("a row");
            assert_eq!(row.get::<i64>(0).unwrap(), expected);
        }
        assert_eq!(
            result.size_hint().0,
            left,
            "rows in hand with yield_per {per:?}"
        );
        let rest: Vec<i64> = result
            .map_ok(|row| row.get::<i64>(0).unwrap())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(rest, (258..=N).collect::<Vec<_>>(), "yield_per {per:?}");
    }

    // Small batches keep a fetch or two under way while the stream reads;
    // the other fetch methods take the rows of those batches first, in
    // order, and the batches' sizes may end exactly where the rows do.
    for stop in [300, 356] {
        let n = 356;
        let fetch = |stop| {
            let conn = &conn;
            async move {
                let mut result = conn.execute(SERIES, (n,)).await.unwrap().yield_per(10);
                for expected in 1..=stop {
                    let row = result.try_next().await.unwrap().expect("a row");
                    assert_eq!(row.get::<i64>(0).unwrap(), expected);
                }
                result
            }
        };
        let rest = (stop + 1..=n).collect::<Vec<i64>>();
        let values = |rows: Vec<sqlaio::Row>| -> Vec<i64> {
            rows.iter().map(|row| row.get(0).unwrap()).collect()
        };
        let mut result = fetch(stop).await;
        assert_eq!(
            values(result.fetchall().await.unwrap()),
            rest,
            "fetchall after {stop}"
        );
        let mut result = fetch(stop).await;
        let many = result.fetchmany(1000).await.unwrap();
        assert_eq!(values(many), rest, "fetchmany after {stop}");
        #[cfg(feature = "serde")]
        {
            let mut result = fetch(stop).await;
            let typed: Vec<(i64,)> = result.fetchall_as().await.unwrap();
            let typed: Vec<i64> = typed.into_iter().map(|(n,)| n).collect();
            assert_eq!(typed, rest, "fetchall_as after {stop}");
        }
        let mut result = fetch(stop).await;
        assert!(result.next().await.is_none() == (stop == n));
        drop(result);
        assert_eq!(conn.scalar::<i64>("SELECT 7", ()).await.unwrap(), 7);
    }

    // A wait for rows given up (polled once, then dropped) while the next
    // batches take a while to read: the fetches it sent still deliver
    // their rows, in order, to whatever reads the result next.
    const SLOW: &str = concat!(
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 200000) ",
        "SELECT n / 500 FROM s WHERE n % 500 = 0"
    );
    for method in ["fetchall", "fetchmany", "fetchall_as", "stream"] {
        let mut result = conn.execute(SLOW, ()).await.unwrap().yield_per(10);
        let mut seen = Vec::new();
        // Past row 300, stop at the first wait given up (or at the end).
        loop {
            let row = if result.size_hint().0 == 0 {
                match result.next().now_or_never() {
                    Some(row) => row.transpose().unwrap(),
                    None if seen.len() >= 300 => break,
                    None => continue,
                }
            } else {
                result.try_next().await.unwrap()
            };
            match row {
                Some(row) => seen.push(row.get::<i64>(0).unwrap()),
                None => break,
            }
        }
        let values = |rows: Vec<sqlaio::Row>| -> Vec<i64> {
            rows.iter().map(|row| row.get(0).unwrap()).collect()
        };
        match method {
            "fetchall" => seen.extend(values(result.fetchall().await.unwrap())),
            "fetchmany" => seen.extend(values(result.fetchmany(1000).await.unwrap())),
            #[cfg(feature = "serde")]
            "fetchall_as" => seen.extend(result.fetchall_as::<i64>().await.unwrap()),
            _ => seen.extend(
                result
                    .map_ok(|row| row.get::<i64>(0).unwrap())
                    .try_collect::<Vec<_>>()
                    .await
                    .unwrap(),
            ),
        }
        assert_eq!(seen, (1..=400).collect::<Vec<_>>(), "{method}");
    }
}

async fn call_dropped_at_once_never_keeps_running(ctx: Ctx) {
    // Polled once and dropped at once, a call may be given up while the
    // worker takes its request from the queue or prepares its statement,
    // before the statement is under way: it must still be skipped or
    // interrupted, never left running with the connection's next call
    // queued behind it.
    let endless = concat!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) ",
        "SELECT count(*) FROM c"
    );
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    for i in 0..40_i64 {
        assert!(conn.scalar::<i64>(endless, ()).now_or_never().is_none());
        let next = conn.scalar::<i64>(ECHO, (i,));
        assert_eq!(
            common::within(Duration::from_secs(60), next).await.unwrap(),
            i
        );
    }
}

async fn dropped_call_in_flight(ctx: Ctx) {
    // Whether the dropped statement is interrupted (the default) or runs to
    // completion (as in sqlalchemy_aio), later calls get their own answers.
    for interrupt in [true, false] {
        let engine = ctx.builder().interrupt_on_drop(interrupt).build().unwrap();
        let conn = engine.connect().await.unwrap();

        // Dropped right after it was sent.
        {
            let mut slow = Box::pin(conn.execute(COUNT_TO, (slow(&ctx),)));
            assert!(futures::poll!(slow.as_mut()).is_pending());
        }
        for i in 0..5_i64 {
            assert_eq!(conn.scalar::<i64>(ECHO, (i,)).await.unwrap(), i);
        }
        let rows = conn
            .execute(SERIES, (600,))
            .await
            .unwrap()
            .fetchall()
            .await
            .unwrap();
        assert_eq!(rows.len(), 600);
        assert_eq!(rows[599].get::<i64>(0).unwrap(), 600);

        // A batch dropped while it runs: interrupted and rolled back as a
        // whole, or left to finish, every set of it.
        // (The second round of the loop finds the first round's table.)
        conn.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)", ())
            .await
            .unwrap();
        conn.execute("DELETE FROM t", ()).await.unwrap();
        let insert_count = format!("INSERT INTO t (n) {COUNT_TO}");
        {
            let sets = std::iter::once((slow(&ctx),)).chain((0..1_000).map(|_| (1,)));
            let mut batch = Box::pin(conn.execute_many(&insert_count, sets));
            assert!(futures::poll!(batch.as_mut()).is_pending());
            // The worker is on the first set by now.
            std::thread::sleep(Duration::from_millis(50));
        }
        let expected = if interrupt { 0 } else { 1_001 };
        assert_eq!(count(&conn, "t").await, expected);
        assert!(!conn.in_transaction());

        // A batch whose sets stop coming (the iterator panics after the
        // first chunk went to the worker) is rolled back, and the
        // connection works on.
        let sets = (0..1_000).map(|i| {
            assert!(i < 500, "the iterator gives up");
            (1,)
        });
        let panicked = std::panic::AssertUnwindSafe(conn.execute_many(&insert_count, sets))
            .catch_unwind()
            .await;
        assert!(panicked.is_err());
        assert_eq!(count(&conn, "t").await, expected);
        assert!(!conn.in_transaction());
        drop(conn);
        engine.close().await.unwrap();

        // Dropped while the worker runs it, on an engine with one connection
        // that many tasks then queue for.
        let engine = ctx
            .builder()
            .interrupt_on_drop(interrupt)
            .max_connections(1)
            .build()
            .unwrap();
        assert_eq!(engine.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
        {
            let mut slow = Box::pin(engine.scalar::<i64>(COUNT_TO, (slow(&ctx),)));
            assert!(futures::poll!(slow.as_mut()).is_pending());
            std::thread::sleep(Duration::from_millis(50));
        }
        let tasks = (0..8_i64).map(|i| {
            let engine = engine.clone();
            ctx.spawn(async move {
                let got: i64 = engine.scalar("SELECT $1 * 10", (i,)).await.unwrap();
                (i, got)
            })
        });
        for (i, got) in future::join_all(tasks).await {
            assert_eq!(got, i * 10);
        }
        // The same statement, awaited this time, is right.
        assert_eq!(engine.scalar::<i64>(COUNT_TO, (1000,)).await.unwrap(), 1000);
        engine.close().await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// Beyond sqlalchemy_aio
// ---------------------------------------------------------------------------

async fn dropped_statement_is_interrupted(ctx: Ctx) {
    // The statement takes far longer than the test: it must be interrupted
    // (or skipped), never completed, once its future is dropped.
    let engine = ctx.builder().max_connections(1).build().unwrap();
    let conn = engine.connect().await.unwrap();
    conn.execute("CREATE TABLE t (n INTEGER)", ())
        .await
        .unwrap();
    let insert_count = format!("INSERT INTO t (n) {COUNT_TO}");
    // Run to the end, the statement inserts a row.
    let done = conn.execute(&insert_count, (10,)).await.unwrap();
    assert_eq!(done.rowcount(), 1);
    drop(done);
    conn.execute("DELETE FROM t", ()).await.unwrap();
    {
        let mut slow = Box::pin(conn.execute(&insert_count, (ENDLESS,)));
        assert!(futures::poll!(slow.as_mut()).is_pending());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(conn.scalar::<i64>(ECHO, (5,)).await.unwrap(), 5);
    assert_eq!(count(&conn, "t").await, 0);
    assert!(!conn.in_transaction());

    // The same for a batch (larger than the chunk sent with its request)
    // and for a query that streams.
    {
        let sets = (0..1_000).map(|_| (ENDLESS,));
        let mut slow = Box::pin(conn.execute_many(&insert_count, sets));
        assert!(futures::poll!(slow.as_mut()).is_pending());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count(&conn, "t").await, 0);
    assert!(!conn.in_transaction());
    {
        let mut slow = Box::pin(conn.scalar::<i64>(COUNT_TO, (ENDLESS,)));
        assert!(futures::poll!(slow.as_mut()).is_pending());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(conn.scalar::<i64>(ECHO, (6,)).await.unwrap(), 6);
    drop(conn);

    // Through the engine: its only connection comes back and works.
    {
        let mut slow = Box::pin(engine.scalar::<i64>(COUNT_TO, (ENDLESS,)));
        let _ = futures::poll!(slow.as_mut());
        std::thread::sleep(Duration::from_millis(50));
        let _ = futures::poll!(slow.as_mut());
    }
    assert_eq!(engine.scalar::<i64>(ECHO, (7,)).await.unwrap(), 7);
    let c: i64 = engine.scalar("SELECT count(*) FROM t", ()).await.unwrap();
    assert_eq!(c, 0);
    engine.close().await.unwrap();
}

async fn interrupted_statement_in_a_transaction(ctx: Ctx) {
    let engine = ctx.builder().max_connections(2).build().unwrap();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    let slow = format!(
        "INSERT INTO users (id, name) SELECT n + 100, 'slow' FROM ({}) AS c WHERE n > 0",
        COUNT_TO.replace("count(*)", "count(*) AS n")
    );
    // Run to the end, the statement inserts a row.
    let done = conn.execute(&slow, (10,)).await.unwrap();
    assert_eq!(done.rowcount(), 1);
    drop(done);
    conn.execute("DELETE FROM users", ()).await.unwrap();

    let tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO users (id, name) VALUES (1, 'kept?')", ())
        .await
        .unwrap();
    {
        let mut insert = Box::pin(tx.execute(&slow, (ENDLESS,)));
        assert!(futures::poll!(insert.as_mut()).is_pending());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Either the transaction goes on without the interrupted statement, or
    // the database rolled it back and the handle refuses to run statements
    // outside it. Never: a statement silently run in autocommit. SQLite may
    // do either; PostgreSQL always aborts a transaction whose statement was
    // cancelled.
    match tx
        .execute("INSERT INTO users (id, name) VALUES (2, 'after')", ())
        .await
    {
        Ok(_) => {
            assert!(ctx.backend.is_sqlite(), "PostgreSQL went on after a cancel");
            tx.commit().await.unwrap();
            assert_eq!(ids(&conn, "users").await, [1, 2]);
        }
        Err(err) => {
            assert!(is_aborted(&err), "{err:?}");
            drop(tx);
            assert!(!conn.in_transaction());
            assert_eq!(count(&conn, "users").await, 0);
        }
    }
    assert!(!conn.in_transaction());
    let other = engine.connect().await.unwrap();
    let slow_rows: i64 = other
        .scalar("SELECT count(*) FROM users WHERE name = 'slow'", ())
        .await
        .unwrap();
    assert_eq!(slow_rows, 0);
}

async fn statement_timeout(ctx: Ctx) {
    let engine = ctx
        .builder()
        .statement_timeout(TIMEOUT)
        .max_connections(1)
        .build()
        .unwrap();
    let conn = engine.connect().await.unwrap();
    conn.execute("CREATE TABLE t (n INTEGER)", ())
        .await
        .unwrap();
    let insert_count = format!("INSERT INTO t (n) {COUNT_TO}");

    let err = conn.scalar::<i64>(COUNT_TO, (ENDLESS,)).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(!err.is_closed() && !err.is_database(), "{err:?}");
    // The connection works on, and the statement left nothing behind.
    assert_eq!(conn.scalar::<i64>(ECHO, (1,)).await.unwrap(), 1);
    let err = conn.execute(&insert_count, (ENDLESS,)).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(count(&conn, "t").await, 0);

    // A fetch of more rows is a statement of its own, with its own deadline:
    // the first rows come at once, the rest would take forever.
    let sparse = "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $1) \
                  SELECT n FROM s WHERE n <= 1000 OR n = $1";
    let mut result = conn.execute(sparse, (ENDLESS,)).await.unwrap();
    let first = result.fetchone().await.unwrap().expect("a first row");
    assert_eq!(first.get::<i64>(0).unwrap(), 1);
    let err = result.fetchall().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    drop(result);
    assert_eq!(conn.scalar::<i64>(ECHO, (2,)).await.unwrap(), 2);

    // The connection's own setting overrides the engine's.
    assert_eq!(conn.statement_timeout(), Some(TIMEOUT));
    conn.set_statement_timeout(None);
    assert_eq!(conn.statement_timeout(), None);
    assert_eq!(
        conn.scalar::<i64>(COUNT_TO, (slow(&ctx) / 4,))
            .await
            .unwrap(),
        slow(&ctx) / 4
    );
    conn.set_statement_timeout(Some(TIMEOUT / 2));
    let err = conn.scalar::<i64>(COUNT_TO, (ENDLESS,)).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    drop(conn);

    // The timeout covers a whole batch: a slow set in a later chunk, and
    // a caller slow to hand over the sets, both end it, and nothing remains.
    let conn = engine.connect().await.unwrap();
    let sets = (0..300).map(|i| (if i == 250 { ENDLESS } else { 1 },));
    let err = conn.execute_many(&insert_count, sets).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let sets = (0..300).map(|i| {
        if i == 100 {
            std::thread::sleep(TIMEOUT + Duration::from_millis(200));
        }
        (1,)
    });
    let err = conn.execute_many(&insert_count, sets).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    // Slow to say that the sets are all there, after the last of them.
    let sets = (0..300).map(|_| (1,)).chain(std::iter::from_fn(|| {
        std::thread::sleep(TIMEOUT + Duration::from_millis(200));
        None
    }));
    let err = conn.execute_many(&insert_count, sets).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(count(&conn, "t").await, 0);
    assert!(!conn.in_transaction());
    drop(conn);

    // Inside a transaction: a timed-out write never commits.
    let tx = engine.begin().await.unwrap();
    tx.execute("INSERT INTO t (n) VALUES (1)", ())
        .await
        .unwrap();
    let err = tx.execute(&insert_count, (ENDLESS,)).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    // SQLite rolls back the whole transaction when a write in it is
    // interrupted (or goes on without the write); PostgreSQL aborts the
    // transaction of a cancelled statement. The commit must not pretend to
    // succeed when nothing is left to commit.
    let committed = tx.commit().await;
    let rows: i64 = engine.scalar("SELECT count(*) FROM t", ()).await.unwrap();
    match committed {
        Ok(()) => {
            assert!(
                ctx.backend.is_sqlite(),
                "the commit of an aborted transaction succeeded; {rows} rows"
            );
            assert_eq!(rows, 1);
        }
        Err(err) => {
            assert!(!err.is_closed(), "{err:?}");
            assert_eq!(rows, 0);
        }
    }
    // The timeout went back to the engine's default with the connection.
    let conn = engine.connect().await.unwrap();
    assert_eq!(conn.statement_timeout(), Some(TIMEOUT));
    assert!(!conn.in_transaction());
}

async fn statement_timeout_in_run_in_thread(ctx: Ctx) {
    with_raw!(statement_timeout_in_run_in_thread_with, ctx)
}

async fn statement_timeout_in_run_in_thread_with<R: Raw>(ctx: Ctx) {
    let engine = ctx.builder().statement_timeout(TIMEOUT).build().unwrap();
    let conn = engine.connect().await.unwrap();
    // The closure's SQL is interrupted at the deadline, and the call reports
    // the timeout rather than the bare interruption.
    let sql = COUNT_TO.replace("$1", &ENDLESS.to_string());
    let err = conn
        .run_in_thread(move |raw: &mut R| raw.query_int(&sql))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(conn.scalar::<i64>(ECHO, (2,)).await.unwrap(), 2);
}

async fn min_connections_open_ahead_of_demand(ctx: Ctx) {
    let engine = ctx
        .builder()
        .max_connections(4)
        .min_connections(3)
        .build()
        .unwrap();
    // Building connects nothing.
    assert_eq!(engine.pool_status().size, 0);
    assert_eq!(engine.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
    // The first use opens the rest of the floor in the background, to wait idle.
    let warm = common::wait_until(Duration::from_secs(20), || {
        let status = engine.pool_status();
        status.size == 3 && status.idle == 3
    });
    assert!(warm, "{:?}", engine.pool_status());
    assert_eq!(engine.worker_count(), 3);
    // Three callers at once are served by them without opening a fourth.
    let held = future::try_join_all((0..3).map(|_| engine.connect()))
        .await
        .unwrap();
    assert_eq!(engine.pool_status().size, 3);
    for (n, conn) in held.iter().enumerate() {
        assert_eq!(
            conn.scalar::<i64>(ECHO, (n as i64,)).await.unwrap(),
            n as i64
        );
    }
    drop(held);
    engine.close().await.unwrap();
    assert_eq!(engine.worker_count(), 0);
}

async fn pool_timeout(ctx: Ctx) {
    let engine = ctx
        .builder()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    // Opening the first connection can take longer than that on a loaded
    // machine; the connection then still goes to the pool for the next try.
    let mut tries = 0;
    let held = loop {
        match engine.connect().await {
            Ok(conn) => break conn,
            Err(err) if err.is_pool_timeout() && tries < 20 => tries += 1,
            Err(err) => panic!("{err:?}"),
        }
    };
    let err = engine.connect().await.unwrap_err();
    assert!(err.is_pool_timeout(), "{err:?}");
    assert!(!err.is_closed(), "{err:?}");
    let err = engine.scalar::<i64>("SELECT 1", ()).await.unwrap_err();
    assert!(err.is_pool_timeout(), "{err:?}");
    // The held connection is unaffected, and once returned it is handed out.
    assert_eq!(held.scalar::<i64>("SELECT 2", ()).await.unwrap(), 2);
    drop(held);
    assert_eq!(engine.scalar::<i64>("SELECT 3", ()).await.unwrap(), 3);
    assert_eq!(engine.worker_count(), 1);
    engine.close().await.unwrap();
}

async fn dropped_fetch_keeps_its_rows(ctx: Ctx) {
    const N: i64 = 2000;
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    let mut result = conn.execute(SERIES, (N,)).await.unwrap();
    let mut next = 1;
    for _ in 0..3 {
        // More than one batch, so the fetch has to ask the worker.
        let mut fetch = Box::pin(result.fetchmany(700));
        if let std::task::Poll::Ready(rows) = futures::poll!(fetch.as_mut()) {
            // It completed at once; those rows were handed out.
            next += rows.unwrap().len() as i64;
        }
    }
    let rest: Vec<i64> = result
        .fetchall()
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0).unwrap())
        .collect();
    assert_eq!(rest, (next..=N).collect::<Vec<_>>());

    // A `fetchall` dropped while under way, then a row taken from the ones
    // buffered before it: the rest comes in order, nothing missing or empty.
    const M: i64 = 100_000;
    let mut result = conn.execute(SERIES, (M,)).await.unwrap();
    let mut taken = vec![result.fetchone().await.unwrap().unwrap()];
    let mut fetch = Box::pin(result.fetchall());
    if let std::task::Poll::Ready(rows) = futures::poll!(fetch.as_mut()) {
        taken.extend(rows.unwrap());
    }
    drop(fetch);
    taken.extend(result.fetchone().await.unwrap());
    taken.extend(result.fetchall().await.unwrap());
    let ids: Vec<i64> = taken.iter().map(|r| r.get(0).unwrap()).collect();
    assert_eq!(ids, (1..=M).collect::<Vec<_>>());
}

async fn dropped_result_releases_its_connection(ctx: Ctx) {
    let engine = ctx.builder().max_connections(1).build().unwrap();
    for _ in 0..3 {
        let mut result = engine.execute(SERIES, (5000,)).await.unwrap();
        assert_eq!(
            result
                .fetchone()
                .await
                .unwrap()
                .unwrap()
                .get::<i64>(0)
                .unwrap(),
            1
        );
        drop(result);
        assert_eq!(engine.scalar::<i64>("SELECT 2", ()).await.unwrap(), 2);
    }

    let conn = engine.connect().await.unwrap();
    let mut result = conn.execute(SERIES, (5000,)).await.unwrap();
    result.fetchmany(10).await.unwrap();
    drop(result);
    assert_eq!(conn.scalar::<i64>("SELECT 3", ()).await.unwrap(), 3);
    // The same statement again starts from its first row.
    let all = conn
        .execute(SERIES, (5000,))
        .await
        .unwrap()
        .fetchall()
        .await
        .unwrap();
    assert_eq!(all.len(), 5000);
    assert_eq!(all[0].get::<i64>(0).unwrap(), 1);

    // An explicitly closed result refuses fetches; closing twice is fine.
    let mut result = conn.execute(SERIES, (5000,)).await.unwrap();
    result.fetchone().await.unwrap();
    result.close().await.unwrap();
    assert!(result.is_closed());
    result.close().await.unwrap();
    let err = result.fetchone().await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = result.fetchall().await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    assert!(result.next().await.is_none());
    drop(result);
    assert_eq!(conn.scalar::<i64>("SELECT 4", ()).await.unwrap(), 4);
}

async fn cancelled_begin_is_rolled_back(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    for _ in 0..3 {
        let mut begin = Box::pin(conn.begin());
        if let std::task::Poll::Ready(tx) = futures::poll!(begin.as_mut()) {
            drop(tx.unwrap()); // completed at once: dropping it rolls back too
        }
        drop(begin);
        assert!(!conn.in_transaction());
        // A new transaction begins (no "transaction within a transaction").
        let tx = conn.begin().await.unwrap();
        tx.execute("INSERT INTO users (name) VALUES ('x')", ())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(!conn.in_transaction());
    }
    let other = engine.connect().await.unwrap();
    assert_eq!(count(&other, "users").await, 3);
}

async fn closing_a_connection_in_a_transaction_rolls_back(ctx: Ctx) {
    let engine = ctx.builder().max_connections(1).build().unwrap();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    let tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO users (id, name) VALUES (1, 'x')", ())
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert!(!tx.is_active());
    drop(tx);
    // The pool's only connection is clean for the next user.
    let next = engine.connect().await.unwrap();
    assert!(!next.in_transaction());
    assert_eq!(count(&next, "users").await, 0);
    let tx = next.begin().await.unwrap();
    tx.commit().await.unwrap();
}

async fn dropped_connection_in_sql_transaction_rolls_back(ctx: Ctx) {
    let engine = ctx.builder().max_connections(1).build().unwrap();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    conn.execute("BEGIN", ()).await.unwrap();
    conn.execute("INSERT INTO users (id, name) VALUES (1, 'x')", ())
        .await
        .unwrap();
    assert!(conn.in_transaction());
    drop(conn);
    let next = engine.connect().await.unwrap();
    assert!(!next.in_transaction());
    assert_eq!(count(&next, "users").await, 0);
    next.begin().await.unwrap().commit().await.unwrap();
}

async fn tasks_sharing_one_connection(ctx: Ctx) {
    const TASKS: i64 = 16;
    const CALLS: i64 = 40;
    let engine = ctx.builder().max_connections(1).build().unwrap();
    let conn = Arc::new(engine.connect().await.unwrap());
    // Statements from many tasks queue on the connection's worker; each
    // task gets its own answers, whatever the order they run in.
    let tasks = (0..TASKS).map(|task| {
        let conn = conn.clone();
        ctx.spawn(async move {
            let mut sum = 0;
            for call in 0..CALLS {
                let x = task * 1000 + call;
                let got: i64 = conn.scalar(ECHO, (x,)).await.unwrap();
                assert_eq!(got, x);
                let rows = conn.execute(SERIES, (call % 5 + 1,)).await.unwrap();
                let rows = rows.try_collect::<Vec<_>>().await.unwrap();
                assert_eq!(rows.len() as i64, call % 5 + 1);
                sum += got;
            }
            sum
        })
    });
    let sums = future::join_all(tasks).await;
    let expected: Vec<i64> = (0..TASKS)
        .map(|task| (0..CALLS).map(|call| task * 1000 + call).sum())
        .collect();
    assert_eq!(sums, expected);
    // A result with rows left on the worker loses them to the next
    // statement another task sends: its next fetch fails alone.
    let mut long = conn.execute(SERIES, (2000_i64,)).await.unwrap();
    assert_eq!(long.fetchmany(10).await.unwrap().len(), 10);
    let other = conn.clone();
    let seven = ctx
        .spawn(async move { other.scalar::<i64>(ECHO, (7_i64,)).await.unwrap() })
        .await;
    assert_eq!(seven, 7);
    let rest = long.fetchall().await;
    assert!(matches!(rest, Err(Error::Closed(_))), "{rest:?}");
    drop(long);
    assert_eq!(conn.scalar::<i64>(ECHO, (8_i64,)).await.unwrap(), 8);
}

/// An engine whose one connection is open and has answered a few statements.
async fn warm_engine_of_one(ctx: &Ctx) -> Engine {
    let engine = ctx.builder().max_connections(1).build().unwrap();
    for x in 0..10_i64 {
        assert_eq!(engine.scalar::<i64>(ECHO, (x,)).await.unwrap(), x);
    }
    engine
}

/// Long enough to still run after the statements queued behind it are sent.
fn a_while(ctx: &Ctx) -> i64 {
    slow(ctx) / 10
}

/// Polls each future once, in order, and says whether they all queued on
/// the engine's one connection: none waits in line for the pool.
///
/// An engine-level statement joins a busy connection only while that
/// connection's statement has run for a few milliseconds at most, so a
/// machine that pauses the test thread between two calls for longer sends
/// the later one in line; the tests then try again.
async fn all_queued<F: std::future::Future + Unpin>(engine: &Engine, futures: &mut [F]) -> bool {
    for f in futures.iter_mut() {
        if futures::poll!(f).is_ready() {
            return false;
        }
    }
    engine.pool_status().waiting == 0
}

/// Runs quick statements on the engine's connection after an attempt that
/// did not queue: a statement joins a busy connection only while the
/// connection's recent statements were short on average, and on a loaded
/// machine the dropped attempts' statements can push that average up.
async fn settle(engine: &Engine) {
    for i in 0..16_i64 {
        assert_eq!(engine.scalar::<i64>(ECHO, (i,)).await.unwrap(), i);
    }
}

/// Tries `attempt` until its statements all queue on one connection.
macro_rules! until_queued {
    ($engine:expr, $attempt:expr) => {{
        let mut tries = 0;
        loop {
            let mut futures = $attempt;
            if all_queued($engine, &mut futures).await {
                break futures;
            }
            drop(futures);
            tries += 1;
            assert!(tries < 50, "statements never queued on one connection");
            settle($engine).await;
        }
    }};
}

async fn engine_statements_queue_on_busy_connections(ctx: Ctx) {
    let engine = warm_engine_of_one(&ctx).await;
    let n = slow(&ctx);
    // The second statement waits on the busy connection, behind the first,
    // rather than in line for the pool.
    let [long, short] = until_queued!(&engine, {
        [
            engine.scalar::<i64>(COUNT_TO, (n,)).boxed(),
            engine.scalar::<i64>(ECHO, (2_i64,)).boxed(),
        ]
    });
    assert_eq!(engine.pool_status().in_use, 1);
    // Once a statement has been running for a while, later ones wait for a
    // connection of their own instead of queueing behind it.
    std::thread::sleep(Duration::from_millis(50));
    let mut late = engine.scalar::<i64>(ECHO, (3_i64,)).boxed();
    assert!(futures::poll!(late.as_mut()).is_pending());
    assert_eq!(engine.pool_status().waiting, 1);
    let limit = Duration::from_secs(60);
    assert_eq!(common::within(limit, long).await.unwrap(), n);
    assert_eq!(common::within(limit, short).await.unwrap(), 2);
    assert_eq!(common::within(limit, late).await.unwrap(), 3);

    // Many tasks over two connections: each statement gets its own answer.
    let engine = ctx.builder().max_connections(2).build().unwrap();
    let tasks = (0..16_i64).map(|task| {
        let engine = engine.clone();
        ctx.spawn(async move {
            for call in 0..25 {
                let x = task * 1000 + call;
                assert_eq!(engine.scalar::<i64>(ECHO, (x,)).await.unwrap(), x);
                let rows = engine.execute(SERIES, (call % 3 + 1,)).await.unwrap();
                let rows = rows.try_collect::<Vec<_>>().await.unwrap();
                assert_eq!(rows.len() as i64, call % 3 + 1);
            }
        })
    });
    future::join_all(tasks).await;
    let status = engine.pool_status();
    assert_eq!((status.in_use, status.waiting), (0, 0), "{status:?}");
}

async fn engine_statement_waits_for_an_open_result(ctx: Ctx) {
    let engine = warm_engine_of_one(&ctx).await;
    let n = a_while(&ctx);
    // More rows than the answer to `execute` carries: the result keeps its
    // statement open on the worker.
    const ROWS: i64 = 3000;
    let [first, big, next] = until_queued!(&engine, {
        [
            engine
                .scalar::<i64>(COUNT_TO, (n,))
                .map_ok(|_| None)
                .boxed(),
            engine.execute(SERIES, (ROWS,)).map_ok(Some).boxed(),
            engine
                .scalar::<i64>(ECHO, (7_i64,))
                .map_ok(|_| None)
                .boxed(),
        ]
    });
    let limit = Duration::from_secs(60);
    let mut big = common::within(limit, big).await.unwrap().unwrap();
    // The last statement does not close the open result: it waits for the
    // connection, which comes back once the result is read and the first
    // statement's answer taken.
    let mut seen = 0;
    while let Some(row) = big.next().await {
        seen += 1;
        assert_eq!(row.unwrap().get::<i64>(0).unwrap(), seen);
    }
    assert_eq!(seen, ROWS);
    drop(big);
    assert!(common::within(limit, first).await.is_ok());
    assert!(common::within(limit, next).await.is_ok());
    assert_eq!(engine.scalar::<i64>(ECHO, (8_i64,)).await.unwrap(), 8);
}

async fn engine_statement_never_joins_a_transaction(ctx: Ctx) {
    let engine = warm_engine_of_one(&ctx).await;
    engine
        .execute("CREATE TABLE marks (n INTEGER NOT NULL)", ())
        .await
        .unwrap();
    let n = a_while(&ctx);
    // A `BEGIN` run through the engine leaves a transaction open on its
    // connection until the connection goes back to the pool, which rolls
    // it back. An insert queued behind it must not run inside it.
    let [first, begin, insert] = until_queued!(&engine, {
        [
            engine.execute(COUNT_TO, (n,)).boxed(),
            engine.execute("BEGIN", ()).boxed(),
            engine
                .execute("INSERT INTO marks (n) VALUES (1)", ())
                .boxed(),
        ]
    });
    let limit = Duration::from_secs(60);
    drop(common::within(limit, first).await.unwrap());
    drop(common::within(limit, begin).await.unwrap());
    let inserted = common::within(limit, insert).await.unwrap();
    assert_eq!(inserted.rowcount(), 1);
    let marks: i64 = engine
        .scalar("SELECT count(*) FROM marks", ())
        .await
        .unwrap();
    assert_eq!(marks, 1);
}

async fn engine_statements_in_line_share_the_connection_that_comes_back(ctx: Ctx) {
    let engine = warm_engine_of_one(&ctx).await;
    // The only connection is taken for a caller of its own: engine
    // statements wait in line.
    let conn = engine.connect().await.unwrap();
    let mut queued: Vec<_> = (0..5_i64)
        .map(|x| engine.scalar::<i64>(ECHO, (x,)).boxed())
        .collect();
    for statement in &mut queued {
        assert!(futures::poll!(statement).is_pending());
    }
    assert_eq!(engine.pool_status().waiting, 5);
    drop(conn);
    // The first in line takes the connection back, and the others queue on
    // it with its statement instead of waiting for it to come back again.
    let mut answers = Vec::new();
    if let std::task::Poll::Ready(first) = futures::poll!(&mut queued[0]) {
        answers.push(first.unwrap());
        drop(queued.remove(0));
    }
    assert_eq!(engine.pool_status().waiting, 0);
    let rest = common::within(Duration::from_secs(60), future::join_all(queued)).await;
    answers.extend(rest.into_iter().map(Result::unwrap));
    assert_eq!(answers, [0, 1, 2, 3, 4]);
}

async fn concurrent_tasks(ctx: Ctx) {
    const TASKS: i64 = 32;
    const ROWS: i64 = 5;
    let engine = ctx.builder().max_connections(4).build().unwrap();
    engine
        .execute(
            "CREATE TABLE hits (task INTEGER NOT NULL, n INTEGER NOT NULL)",
            (),
        )
        .await
        .unwrap();
    let tasks = (0..TASKS).map(|task| {
        let engine = engine.clone();
        ctx.spawn(async move {
            for n in 0..ROWS {
                engine
                    .execute("INSERT INTO hits (task, n) VALUES ($1, $2)", (task, n))
                    .await
                    .unwrap();
            }
            let conn = engine.connect().await.unwrap();
            let mine: i64 = conn
                .scalar("SELECT count(*) FROM hits WHERE task = $1", (task,))
                .await
                .unwrap();
            assert_eq!(mine, ROWS);
            let echoed: String = conn
                .scalar("SELECT $1", (format!("task {task}"),))
                .await
                .unwrap();
            assert_eq!(echoed, format!("task {task}"));
            task
        })
    });
    let finished = future::join_all(tasks).await;
    assert_eq!(finished, (0..TASKS).collect::<Vec<_>>());
    let total: i64 = engine
        .scalar("SELECT count(*) FROM hits", ())
        .await
        .unwrap();
    assert_eq!(total, TASKS * ROWS);
    let distinct: i64 = engine
        .scalar("SELECT count(DISTINCT task * 100 + n) FROM hits", ())
        .await
        .unwrap();
    assert_eq!(distinct, TASKS * ROWS);
    assert!(engine.worker_count() <= 4, "{}", engine.worker_count());
    engine.close().await.unwrap();
    assert_eq!(engine.worker_count(), 0);
}

async fn concurrent_transactions(ctx: Ctx) {
    // Writing transactions from many tasks: none may fail with "database is
    // locked" (a writer waits for the lock), and no increment may be lost.
    const TASKS: i64 = 8;
    const ROUNDS: i64 = 5;
    let engine = ctx.builder().max_connections(4).build().unwrap();
    engine
        .execute(
            "CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)",
            (),
        )
        .await
        .unwrap();
    engine
        .execute("INSERT INTO counter (id, value) VALUES (1, 0), (2, 0)", ())
        .await
        .unwrap();
    // Read, then write the value read. On SQLite `begin` takes the write
    // lock up front; PostgreSQL's READ COMMITTED needs the row locked by
    // the read itself.
    let read = if ctx.backend.is_sqlite() {
        "SELECT value FROM counter WHERE id = 1"
    } else {
        "SELECT value FROM counter WHERE id = 1 FOR UPDATE"
    };
    let tasks = (0..TASKS).map(|task| {
        let engine = engine.clone();
        ctx.spawn(async move {
            for _ in 0..ROUNDS {
                let tx = engine.begin().await.unwrap();
                let value: i64 = tx.scalar(read, ()).await.unwrap();
                tx.execute("UPDATE counter SET value = $1 WHERE id = 1", (value + 1,))
                    .await
                    .unwrap();
                if task % 2 == 0 {
                    tx.commit().await.unwrap();
                } else {
                    // Half of them nest a savepoint too.
                    let sp = tx.begin_nested().await.unwrap();
                    sp.execute("UPDATE counter SET value = value WHERE id = 1", ())
                        .await
                        .unwrap();
                    sp.commit().await.unwrap();
                    tx.commit().await.unwrap();
                }

                // A deferred transaction that writes first waits for the lock too.
                let conn = engine.connect().await.unwrap();
                let tx = conn.begin_deferred().await.unwrap();
                tx.execute("UPDATE counter SET value = value + 1 WHERE id = 2", ())
                    .await
                    .unwrap();
                let seen: i64 = tx
                    .scalar("SELECT value FROM counter WHERE id = 2", ())
                    .await
                    .unwrap();
                assert!(seen >= 1);
                tx.commit().await.unwrap();
                assert!(!conn.in_transaction());
            }
        })
    });
    future::join_all(tasks).await;
    let values: Vec<i64> = engine
        .execute("SELECT value FROM counter ORDER BY id", ())
        .await
        .unwrap()
        .map(|row| row.unwrap().get::<i64>(0).unwrap())
        .collect()
        .await;
    assert_eq!(values, [TASKS * ROUNDS, TASKS * ROUNDS]);
    engine.close().await.unwrap();
}

async fn pooled_connections_share_one_database(ctx: Ctx) {
    let engine = ctx.builder().max_connections(3).build().unwrap();
    let a = engine.connect().await.unwrap();
    let b = engine.connect().await.unwrap();
    assert_eq!(engine.worker_count(), 2);
    a.execute("CREATE TABLE shared (x INTEGER)", ())
        .await
        .unwrap();
    a.execute("INSERT INTO shared (x) VALUES (7)", ())
        .await
        .unwrap();
    // `a` is still checked out: `b` is another connection, same database.
    assert!(b.has_table("shared").await.unwrap());
    assert_eq!(
        b.scalar::<i64>("SELECT x FROM shared", ()).await.unwrap(),
        7
    );
    b.execute("INSERT INTO shared (x) VALUES (8)", ())
        .await
        .unwrap();
    assert_eq!(count(&a, "shared").await, 2);
    // And a third, through the engine, while both are held.
    let sum: i64 = engine
        .scalar("SELECT sum(x) FROM shared", ())
        .await
        .unwrap();
    assert_eq!(sum, 15);

    if ctx.backend == Backend::Memory {
        // Each engine has its own in-memory database.
        let separate = ctx.engine();
        assert!(!separate.has_table("shared").await.unwrap());
        separate.close().await.unwrap();
        // Closing that one did not disturb this one.
        assert_eq!(count(&a, "shared").await, 2);
    }

    // The database lives as long as the engine, not as long as a connection.
    drop((a, b));
    for _ in 0..3 {
        let c = engine.connect().await.unwrap();
        c.close().await.unwrap();
    }
    assert_eq!(
        engine
            .scalar::<i64>("SELECT count(*) FROM shared", ())
            .await
            .unwrap(),
        2
    );
}

async fn transactions_are_isolated(ctx: Ctx) {
    let engine = ctx.engine();
    let a = engine.connect().await.unwrap();
    let b = engine.connect().await.unwrap();
    create_users(&ctx, &a).await;

    // Uncommitted writes are invisible to others, who go on reading.
    let tx = a.begin().await.unwrap();
    tx.execute("INSERT INTO users (id, name) VALUES (1, 'x')", ())
        .await
        .unwrap();
    assert_eq!(count(&tx, "users").await, 1);
    assert_eq!(count(&b, "users").await, 0);
    tx.commit().await.unwrap();
    assert_eq!(count(&b, "users").await, 1);

    // A reading transaction keeps its snapshot while another connection
    // commits: SQLite's deferred transaction does, PostgreSQL's does at the
    // REPEATABLE READ level.
    let reader = b.begin_deferred().await.unwrap();
    if ctx.backend.is_postgres() {
        reader
            .execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", ())
            .await
            .unwrap();
    }
    assert_eq!(count(&reader, "users").await, 1);
    a.execute("INSERT INTO users (id, name) VALUES (2, 'y')", ())
        .await
        .unwrap();
    assert_eq!(count(&reader, "users").await, 1);
    reader.commit().await.unwrap();
    assert_eq!(count(&b, "users").await, 2);

    // Rolled back writes were never seen.
    let tx = a.begin().await.unwrap();
    tx.execute("DELETE FROM users", ()).await.unwrap();
    assert_eq!(count(&tx, "users").await, 0);
    assert_eq!(count(&b, "users").await, 2);
    tx.rollback().await.unwrap();
    assert_eq!(count(&b, "users").await, 2);
    assert_eq!(count(&a, "users").await, 2);

    if ctx.backend.is_postgres() {
        // PostgreSQL's default level, READ COMMITTED: each statement sees
        // what was committed before it began.
        let reader = b.begin().await.unwrap();
        assert_eq!(count(&reader, "users").await, 2);
        a.execute("INSERT INTO users (id, name) VALUES (3, 'z')", ())
            .await
            .unwrap();
        assert_eq!(count(&reader, "users").await, 3);
        reader.commit().await.unwrap();
    }
}

async fn ddl_is_transactional(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    let tx = conn.begin().await.unwrap();
    tx.execute("CREATE TABLE ddl (x INTEGER)", ())
        .await
        .unwrap();
    tx.execute("INSERT INTO ddl (x) VALUES (1)", ())
        .await
        .unwrap();
    assert!(tx.has_table("ddl").await.unwrap());
    tx.rollback().await.unwrap();
    assert!(!conn.has_table("ddl").await.unwrap());
    assert!(!engine.has_table("ddl").await.unwrap());

    let tx = conn.begin().await.unwrap();
    tx.execute("CREATE TABLE ddl (x INTEGER)", ())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(engine.has_table("ddl").await.unwrap());

    // Dropping a table can be undone too.
    let tx = conn.begin().await.unwrap();
    tx.execute("DROP TABLE ddl", ()).await.unwrap();
    drop(tx);
    assert!(engine.has_table("ddl").await.unwrap());
}

/// 700 `(id, name)` sets from `first_id` on, spanning several of
/// `execute_many`'s chunks, whose 601st reuses the taken id `taken`.
fn failing_late(first_id: i64, taken: i64) -> impl Iterator<Item = (i64, &'static str)> {
    (0..700).map(move |i| {
        if i == 600 {
            (taken, "again")
        } else {
            (first_id + i, "late")
        }
    })
}

async fn execute_many(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    let insert = "INSERT INTO users (id, name) VALUES ($1, $2)";

    let result = conn
        .execute_many(insert, [(1, "a"), (2, "b"), (3, "c")])
        .await
        .unwrap();
    assert_eq!(result.rowcount(), 3);
    assert!(!result.returns_rows());
    drop(result);
    assert_eq!(ids(&conn, "users").await, [1, 2, 3]);

    // The total over every set.
    let result = conn
        .execute_many(
            "UPDATE users SET name = $1 WHERE id <= $2",
            vec![("x", 2), ("y", 3)],
        )
        .await
        .unwrap();
    assert_eq!(result.rowcount(), 5);
    drop(result);

    // No sets: nothing happens.
    let result = conn
        .execute_many(insert, Vec::<(i64, &str)>::new())
        .await
        .unwrap();
    assert_eq!(result.rowcount(), 0);
    drop(result);

    // Atomic: the third set fails, the first two are undone.
    let err = conn
        .execute_many(insert, [(4, "d"), (5, "e"), (1, "duplicate")])
        .await
        .unwrap_err();
    assert!(err.is_database(), "{err}");
    assert!(!conn.in_transaction());
    assert_eq!(ids(&conn, "users").await, [1, 2, 3]);

    // Inside a transaction: the batch is undone, the transaction goes on.
    let tx = conn.begin().await.unwrap();
    tx.execute(insert, (10, "j")).await.unwrap();
    let err = tx
        .execute_many(insert, [(11, "k"), (2, "duplicate")])
        .await
        .unwrap_err();
    assert!(err.is_database(), "{err}");
    assert!(tx.is_active());
    assert_eq!(ids(&tx, "users").await, [1, 2, 3, 10]);
    let ok = tx.execute_many(insert, [(12, "l")]).await.unwrap();
    assert_eq!(ok.rowcount(), 1);
    drop(ok);
    // The same for a batch of several chunks failing in a late one.
    let err = tx
        .execute_many(insert, failing_late(2_000, 10))
        .await
        .unwrap_err();
    assert!(err.is_database(), "{err}");
    assert!(tx.is_active());
    assert_eq!(ids(&tx, "users").await, [1, 2, 3, 10, 12]);
    tx.commit().await.unwrap();
    assert_eq!(ids(&conn, "users").await, [1, 2, 3, 10, 12]);

    // A batch larger than one chunk (the sets go to the worker in chunks
    // while it runs the ones before) is whole, and as atomic: the failing
    // set here comes in a later chunk than the first.
    let big = 700;
    let sets = (0..big).map(|i| (1_000 + i, "many"));
    let result = conn.execute_many(insert, sets).await.unwrap();
    assert_eq!(result.rowcount(), big as u64);
    drop(result);
    let sum: i64 = conn
        .scalar(
            "SELECT CAST(sum(id) AS BIGINT) FROM users WHERE name = 'many'",
            (),
        )
        .await
        .unwrap();
    assert_eq!(sum, (1_000..1_000 + big).sum::<i64>());
    let err = conn
        .execute_many(insert, failing_late(5_000, 1_000))
        .await
        .unwrap_err();
    assert!(err.is_database(), "{err}");
    assert!(!conn.in_transaction());
    assert_eq!(count(&conn, "users").await, 5 + big);
    conn.execute("DELETE FROM users WHERE id >= 1000", ())
        .await
        .unwrap();

    // A batch whose sets borrow runs in a spawned task (its future is `Send`).
    let names: Vec<String> = (0..big).map(|i| format!("n{i}")).collect();
    let batch = ctx.spawn({
        let engine = engine.clone();
        async move {
            let conn = engine.connect().await.unwrap();
            let sets = names.iter().zip(1_000..).map(|(n, id)| (id, n.as_str()));
            conn.execute_many(insert, sets).await.unwrap().rowcount()
        }
    });
    assert_eq!(batch.await, big as u64);
    let last: String = conn
        .scalar("SELECT name FROM users WHERE id = $1", (1_000 + big - 1,))
        .await
        .unwrap();
    assert_eq!(last, format!("n{}", big - 1));
    conn.execute("DELETE FROM users WHERE id >= 1000", ())
        .await
        .unwrap();

    // Parameter errors are errors too.
    let err = conn.execute_many(insert, [(20,)]).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ParameterCount {
                expected: 2,
                given: 1
            }
        ),
        "{err:?}"
    );
    assert_eq!(count(&conn, "users").await, 5);
}

async fn parameters(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();

    // ()
    assert_eq!(conn.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
    // tuples of mixed types
    let joined: String = conn
        .scalar("SELECT $1 || '-' || $2 || '-' || $3", (1, "two", 3.5))
        .await
        .unwrap();
    assert_eq!(joined, "1-two-3.5");
    let one: i64 = conn.scalar(ECHO, (1_i64,)).await.unwrap();
    assert_eq!(one, 1);
    // Vec<Value>, &[Value], [Value; N] (one cast types both parameters on PostgreSQL)
    let values = vec![Value::Integer(6), Value::Integer(7)];
    let times = "SELECT CAST($1 AS BIGINT) * $2";
    assert_eq!(conn.scalar::<i64>(times, values.clone()).await.unwrap(), 42);
    assert_eq!(conn.scalar::<i64>(times, &values[..]).await.unwrap(), 42);
    assert_eq!(
        conn.scalar::<i64>(
            "SELECT CAST($1 AS BIGINT) - $2",
            [Value::Integer(50), Value::Integer(8)]
        )
        .await
        .unwrap(),
        42
    );
    // params![]
    let joined: String = conn
        .scalar("SELECT $1 || $2 || $3", params![4, "x", 2.5])
        .await
        .unwrap();
    assert_eq!(joined, "4x2.5");
    assert_eq!(conn.scalar::<i64>("SELECT 3", params![]).await.unwrap(), 3);
    // None binds NULL, Some the value
    assert!(conn
        .scalar::<bool>("SELECT CAST($1 AS BIGINT) IS NULL", (None::<i64>,))
        .await
        .unwrap());
    assert!(!conn
        .scalar::<bool>("SELECT CAST($1 AS BIGINT) IS NULL", (Some(5_i64),))
        .await
        .unwrap());
    assert_eq!(
        conn.scalar::<Option<String>>("SELECT $1", (None::<String>,))
            .await
            .unwrap(),
        None
    );

    // Every kind round-trips through a table.
    conn.execute(
        format!(
            "CREATE TABLE kinds (i BIGINT, r DOUBLE PRECISION, t TEXT, b {}, f BOOLEAN, n TEXT)",
            ctx.blob_type()
        ),
        (),
    )
    .await
    .unwrap();
    conn.execute(
        "INSERT INTO kinds (i, r, t, b, f, n) VALUES ($1, $2, $3, $4, $5, $6)",
        (
            -9_000_000_000_i64,
            0.25_f64,
            "Dan Rydell",
            vec![0_u8, 159, 146, 150],
            true,
            None::<String>,
        ),
    )
    .await
    .unwrap();
    let row = conn
        .execute("SELECT i, r, t, b, f, n FROM kinds", ())
        .await
        .unwrap()
        .first()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.get::<i64>("i").unwrap(), -9_000_000_000);
    assert_eq!(row.get::<f64>("r").unwrap(), 0.25);
    assert_eq!(row.get::<String>("t").unwrap(), "Dan Rydell");
    assert_eq!(row.get::<Vec<u8>>("b").unwrap(), [0, 159, 146, 150]);
    assert!(row.get::<bool>("f").unwrap());
    assert_eq!(row.get::<Option<String>>("n").unwrap(), None);

    if ctx.backend.is_sqlite() {
        // Named placeholders, in any order.
        let diff: i64 = conn
            .scalar("SELECT :a - :b", [(":a", 10), (":b", 2)])
            .await
            .unwrap();
        assert_eq!(diff, 8);
        let diff: i64 = conn
            .scalar("SELECT :a - :b", [(":b", 2), (":a", 10)])
            .await
            .unwrap();
        assert_eq!(diff, 8);
        let named: String = conn
            .scalar(
                "SELECT :first || ' ' || :last",
                vec![(":first", "Casey"), (":last", "McCall")],
            )
            .await
            .unwrap();
        assert_eq!(named, "Casey McCall");
        let null: Option<i64> = conn
            .scalar("SELECT :x", [(":x", None::<i64>)])
            .await
            .unwrap();
        assert_eq!(null, None);
    }
}

async fn row_get(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    conn.execute(
        format!(
            "CREATE TABLE kinds (amount INTEGER, ratio DOUBLE PRECISION, title TEXT, \
             payload {}, flag BOOLEAN, missing TEXT)",
            ctx.blob_type()
        ),
        (),
    )
    .await
    .unwrap();
    conn.execute(
        "INSERT INTO kinds VALUES ($1, $2, $3, $4, $5, $6)",
        (
            1234,
            2.5,
            "Sports Night",
            vec![0_u8, 255, 16],
            true,
            None::<i64>,
        ),
    )
    .await
    .unwrap();
    let row = conn
        .execute(
            "SELECT amount, ratio, title, payload, flag, missing FROM kinds",
            (),
        )
        .await
        .unwrap()
        .first()
        .await
        .unwrap()
        .expect("a row");
    assert_eq!(row.len(), 6);
    assert!(!row.is_empty());
    assert_eq!(
        row.keys(),
        ["amount", "ratio", "title", "payload", "flag", "missing"]
    );

    // By index and by name.
    assert_eq!(row.get::<i64>(0).unwrap(), 1234);
    assert_eq!(row.get::<i64>("amount").unwrap(), 1234);
    assert_eq!(row.get::<i32>("amount").unwrap(), 1234);
    assert_eq!(row.get::<i16>(0).unwrap(), 1234);
    assert_eq!(row.get::<f64>(1).unwrap(), 2.5);
    assert_eq!(row.get::<f64>("ratio").unwrap(), 2.5);
    assert_eq!(row.get::<f32>("ratio").unwrap(), 2.5_f32);
    assert_eq!(row.get::<String>(2).unwrap(), "Sports Night");
    assert_eq!(row.get::<String>("title").unwrap(), "Sports Night");
    assert_eq!(row.get::<Vec<u8>>(3).unwrap(), [0, 255, 16]);
    assert_eq!(row.get::<Vec<u8>>("payload").unwrap(), [0, 255, 16]);
    assert!(row.get::<bool>(4).unwrap());
    assert!(row.get::<bool>("flag").unwrap());

    // Value, without conversion.
    assert_eq!(row.get::<Value>("amount").unwrap(), Value::Integer(1234));
    assert_eq!(row.get::<Value>("ratio").unwrap(), Value::Real(2.5));
    assert_eq!(
        row.get::<Value>("title").unwrap(),
        Value::Text("Sports Night".into())
    );
    assert_eq!(
        row.get::<Value>("payload").unwrap(),
        Value::Blob(vec![0, 255, 16])
    );
    assert_eq!(row.get::<Value>(5).unwrap(), Value::Null);
    assert!(row.get_value("missing").unwrap().is_null());
    assert_eq!(row.values().len(), 6);

    // Option<T>: NULL is None, a value is Some.
    assert_eq!(row.get::<Option<String>>("missing").unwrap(), None);
    assert_eq!(row.get::<Option<i64>>(5).unwrap(), None);
    assert_eq!(row.get::<Option<i64>>("amount").unwrap(), Some(1234));
    assert_eq!(
        row.get::<Option<String>>("title").unwrap().as_deref(),
        Some("Sports Night")
    );

    // Booleans written as false read back as false.
    let f: bool = conn
        .scalar("SELECT CAST($1 AS BOOLEAN)", (false,))
        .await
        .unwrap();
    assert!(!f);
}

async fn row_get_errors(ctx: Ctx) {
    let engine = ctx.engine();
    let row = engine
        .execute(
            "SELECT 40000 AS big, 'Jeremy' AS title, NULL AS missing, 7 AS flag",
            (),
        )
        .await
        .unwrap()
        .first()
        .await
        .unwrap()
        .expect("a row");

    // The wrong type: names the column and both types.
    let err = row.get::<i64>("title").unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("title") && text.contains("integer") && text.contains("text"),
        "{text}"
    );
    assert!(err.source().is_some());
    let err = row.get::<String>(0).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("big") && text.contains("text") && text.contains("integer"),
        "{text}"
    );
    let err = row.get::<Vec<u8>>("big").unwrap_err();
    assert!(err.to_string().contains("big"), "{err}");

    // Narrowing out of range: no silent wrap.
    let err = row.get::<i16>("big").unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("big") && text.contains("40000") && text.contains("i16"),
        "{text}"
    );
    assert_eq!(row.get::<i32>("big").unwrap(), 40000);
    let err = row.get::<bool>("flag").unwrap_err();
    assert!(err.to_string().contains("flag"), "{err}");

    // NULL into a plain type.
    let err = row.get::<i64>("missing").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("missing") && text.contains("null"), "{text}");

    // No such column.
    let err = row.get::<i64>("no_such_column").unwrap_err();
    assert!(
        matches!(err, Error::ColumnName(ref name) if name == "no_such_column"),
        "{err:?}"
    );
    assert!(err.to_string().contains("no_such_column"), "{err}");
    let err = row.get::<i64>(99).unwrap_err();
    assert!(
        matches!(err, Error::ColumnIndex { index: 99, len: 4 }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("99") && text.contains('4'), "{text}");
    assert!(row.get_value(4).is_err());
}

async fn bad_sql(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    let mut check = 0_i64;
    let mut still_works = || {
        check += 1;
        let n = check;
        let conn = &conn;
        async move {
            assert_eq!(conn.scalar::<i64>(ECHO, (n,)).await.unwrap(), n);
            assert!(!conn.in_transaction());
        }
    };

    let err = conn.execute("SELEC 1", ()).await.unwrap_err();
    assert!(err.is_database(), "{err:?}");
    assert!(!err.is_closed());
    assert!(err.source().is_some(), "the driver's error is kept");
    let text = err.to_string();
    assert!(
        text.contains("syntax error") && text.contains("SELEC"),
        "{text}"
    );
    still_works().await;

    let err = conn
        .execute("SELECT * FROM no_such_table", ())
        .await
        .unwrap_err();
    assert!(err.is_database(), "{err:?}");
    assert!(err.to_string().contains("no_such_table"), "{err}");
    still_works().await;

    for empty in ["", "   ", "-- only a comment\n", ";"] {
        let Err(err) = conn.execute(empty, ()).await else {
            panic!("{empty:?} was run as a statement");
        };
        assert!(!err.is_closed(), "{empty:?}: {err:?}");
        assert!(err.to_string().contains("statement"), "{empty:?}: {err}");
        still_works().await;
    }

    let err = conn.execute("SELECT 1; SELECT 2", ()).await.unwrap_err();
    assert!(!err.is_closed(), "{err:?}");
    assert!(err.to_string().contains("statement"), "{err}");
    still_works().await;
    // Nothing of a multi-statement string runs.
    let err = conn
        .execute("CREATE TABLE a (x INTEGER); CREATE TABLE b (x INTEGER)", ())
        .await
        .unwrap_err();
    assert!(!err.is_closed(), "{err:?}");
    assert!(!conn.has_table("a").await.unwrap());
    assert!(!conn.has_table("b").await.unwrap());
    still_works().await;

    // A constraint violation is the database's error.
    create_users(&ctx, &conn).await;
    conn.execute("INSERT INTO users (id, name) VALUES (1, 'x')", ())
        .await
        .unwrap();
    let err = conn
        .execute("INSERT INTO users (id, name) VALUES (1, 'y')", ())
        .await
        .unwrap_err();
    assert!(err.is_database(), "{err:?}");
    let err = conn
        .execute("INSERT INTO users (id, name) VALUES (2, NULL)", ())
        .await
        .unwrap_err();
    assert!(err.is_database(), "{err:?}");
    still_works().await;

    if ctx.backend.is_sqlite() {
        // In SQLite a failed statement does not end the transaction around it.
        let tx = conn.begin().await.unwrap();
        tx.execute("INSERT INTO users (id, name) VALUES (2, 'z')", ())
            .await
            .unwrap();
        assert!(tx.execute("SELEC", ()).await.unwrap_err().is_database());
        assert!(tx.is_active());
        tx.commit().await.unwrap();
        assert_eq!(ids(&conn, "users").await, [1, 2]);
    } else {
        // In PostgreSQL it aborts the transaction: later statements are
        // refused until it is rolled back, and the commit cannot succeed.
        let tx = conn.begin().await.unwrap();
        tx.execute("INSERT INTO users (id, name) VALUES (2, 'z')", ())
            .await
            .unwrap();
        assert!(tx.execute("SELEC", ()).await.unwrap_err().is_database());
        let err = tx
            .execute("INSERT INTO users (id, name) VALUES (3, 'w')", ())
            .await
            .unwrap_err();
        assert!(is_aborted(&err), "{err:?}");
        let err = tx.commit().await.unwrap_err();
        assert!(is_aborted(&err), "{err:?}");
        assert!(!conn.in_transaction());
        assert_eq!(ids(&conn, "users").await, [1]);
        conn.execute("INSERT INTO users (id, name) VALUES (2, 'z')", ())
            .await
            .unwrap();
    }
    // On both, a savepoint confines the failure: roll back to it and go on.
    let tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO users (id, name) VALUES (3, 'w')", ())
        .await
        .unwrap();
    let sp = tx.begin_nested().await.unwrap();
    assert!(sp.execute("SELEC", ()).await.unwrap_err().is_database());
    sp.rollback().await.unwrap();
    tx.execute("INSERT INTO users (id, name) VALUES (4, 'v')", ())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&conn, "users").await, [1, 2, 3, 4]);
    still_works().await;
}

async fn bad_parameters(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();

    let err = conn.execute("SELECT $1, $2", (1,)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ParameterCount {
                expected: 2,
                given: 1
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains('2') && text.contains('1'), "{text}");
    let err = conn.execute("SELECT $1, $2", (1, 2, 3)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ParameterCount {
                expected: 2,
                given: 3
            }
        ),
        "{err:?}"
    );
    let err = conn.execute("SELECT $1", ()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ParameterCount {
                expected: 1,
                given: 0
            }
        ),
        "{err:?}"
    );
    let err = conn.execute("SELECT 1", (1,)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ParameterCount {
                expected: 0,
                given: 1
            }
        ),
        "{err:?}"
    );
    assert_eq!(conn.scalar::<i64>(ECHO, (5,)).await.unwrap(), 5);
    let err = engine.scalar::<i64>("SELECT $1", ()).await.unwrap_err();
    assert!(matches!(err, Error::ParameterCount { .. }), "{err:?}");

    if ctx.backend.is_sqlite() {
        let err = conn.execute("SELECT :a", [(":b", 1)]).await.unwrap_err();
        assert!(
            matches!(err, Error::ParameterName(ref n) if n == ":b"),
            "{err:?}"
        );
        assert!(err.to_string().contains(":b"), "{err}");
        let err = conn
            .execute("SELECT :a, :b", [(":a", 1)])
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::ParameterCount {
                    expected: 2,
                    given: 1
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            conn.scalar::<i64>("SELECT :a", [(":a", 6)]).await.unwrap(),
            6
        );
    }
    assert!(!conn.in_transaction());
    assert_eq!(conn.scalar::<i64>(ECHO, (7,)).await.unwrap(), 7);
}

async fn panic_in_run_in_thread(ctx: Ctx) {
    with_raw!(panic_in_run_in_thread_with, ctx)
}

async fn panic_in_run_in_thread_with<R: Raw>(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    let code = 4242;
    let err = conn
        .run_in_thread(move |_raw: &mut R| -> Result<(), Error> {
            panic!("the closure gave up at step {code}")
        })
        .await
        .unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert!(
        err.to_string().contains("the closure gave up at step 4242"),
        "{err}"
    );
    // The same connection and the engine keep working.
    assert!(!conn.is_closed());
    assert_eq!(conn.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
    let n = conn
        .run_in_thread(|raw: &mut R| raw.query_int("SELECT 2"))
        .await
        .unwrap();
    assert_eq!(n, 2);

    let err = engine
        .run_in_thread(|_raw: &mut R| -> Result<(), Error> { panic!("a static message") })
        .await
        .unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert!(err.to_string().contains("a static message"), "{err}");
    assert_eq!(engine.scalar::<i64>("SELECT 3", ()).await.unwrap(), 3);
    assert!(!engine.is_closed());
}

async fn panic_in_run_in_thread_rolls_back_the_transaction(ctx: Ctx) {
    with_raw!(panic_in_run_in_thread_rolls_back_the_transaction_with, ctx)
}

async fn panic_in_run_in_thread_rolls_back_the_transaction_with<R: Raw>(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    let tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO users (id, name) VALUES (1, 'x')", ())
        .await
        .unwrap();
    let err = tx
        .run_in_thread(|raw: &mut R| -> Result<(), Error> {
            raw.run("INSERT INTO users (id, name) VALUES (2, 'y')")?;
            panic!("half way")
        })
        .await
        .unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    // The transaction is gone: a statement through its handle is refused
    // rather than run in autocommit.
    let err = tx
        .execute("INSERT INTO users (id, name) VALUES (4, 'stray')", ())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TransactionAborted), "{err:?}");
    drop(tx);
    assert!(!conn.in_transaction());
    assert_eq!(count(&conn, "users").await, 0);
    let other = engine.connect().await.unwrap();
    assert_eq!(count(&other, "users").await, 0);
    // And the connection takes a new one.
    let tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO users (id, name) VALUES (3, 'z')", ())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&other, "users").await, [3]);

    // Rolling back a transaction the panic already ended is fine too.
    let tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO users (id, name) VALUES (5, 'z')", ())
        .await
        .unwrap();
    let err = tx
        .run_in_thread(|_raw: &mut R| -> Result<(), Error> { panic!("again") })
        .await
        .unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    tx.rollback().await.unwrap();
    assert!(!conn.in_transaction());
    assert_eq!(ids(&conn, "users").await, [3]);
}

/// An application's own error type, as `run_in_thread` closures return it.
#[derive(Debug)]
enum AppError {
    Db(Error),
    Invalid(String),
}

impl From<Error> for AppError {
    fn from(e: Error) -> AppError {
        AppError::Db(e)
    }
}

async fn run_in_thread_returns_the_users_error(ctx: Ctx) {
    with_raw!(run_in_thread_returns_the_users_error_with, ctx)
}

async fn run_in_thread_returns_the_users_error_with<R: Raw>(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();

    let result: Result<i64, AppError> = conn
        .run_in_thread(|raw: &mut R| {
            let n = raw.query_int("SELECT 5").map_err(AppError::Db)?;
            Err(AppError::Invalid(format!("{n} is too small")))
        })
        .await;
    match result {
        Err(AppError::Invalid(message)) => assert_eq!(message, "5 is too small"),
        other => panic!("expected the closure's own error, got {other:?}"),
    }

    let ok: Result<String, AppError> = engine
        .run_in_thread(|raw: &mut R| raw.query_text("SELECT 'fine'").map_err(AppError::Db))
        .await;
    assert_eq!(ok.unwrap(), "fine");

    // sqlaio's own failures arrive converted into the user's type.
    let result: Result<(), AppError> = conn.run_in_thread(|_raw: &mut R| panic!("oops")).await;
    match result {
        Err(AppError::Db(e)) => assert!(e.is_panic(), "{e:?}"),
        other => panic!("expected a converted panic, got {other:?}"),
    }
    let result: Result<(), AppError> = conn.run_in_thread(|_raw: &mut String| Ok(())).await;
    match result {
        Err(AppError::Db(Error::WrongDriver { .. })) => {}
        other => panic!("expected WrongDriver, got {other:?}"),
    }
    conn.close().await.unwrap();
    let result: Result<(), AppError> = conn.run_in_thread(|_raw: &mut R| Ok(())).await;
    match result {
        Err(AppError::Db(e)) => assert!(e.is_closed(), "{e:?}"),
        other => panic!("expected a closed error, got {other:?}"),
    }
}

async fn engine_close(ctx: Ctx) {
    with_raw!(engine_close_with, ctx)
}

async fn engine_close_with<R: Raw>(ctx: Ctx) {
    let engine = ctx.engine();
    let clone = engine.clone();
    engine
        .execute("CREATE TABLE t (x INTEGER)", ())
        .await
        .unwrap();
    let conn = engine.connect().await.unwrap();
    assert_eq!(conn.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
    // A result still streaming, on a connection of its own.
    let mut streaming = engine.execute(SERIES, (5000,)).await.unwrap();
    streaming.fetchone().await.unwrap();
    // A transaction still open.
    let tx = engine.begin().await.unwrap();
    tx.execute("INSERT INTO t (x) VALUES (1)", ())
        .await
        .unwrap();
    assert!(engine.worker_count() >= 3);

    engine.close().await.unwrap();
    assert!(engine.is_closed());
    assert!(clone.is_closed());
    // Every worker has stopped.
    assert_eq!(engine.worker_count(), 0);

    let err = engine.execute("SELECT 1", ()).await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = engine.connect().await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = engine.scalar::<i64>("SELECT 1", ()).await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = engine.begin().await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = engine.table_names().await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = engine
        .run_in_thread(|_raw: &mut R| Ok::<_, Error>(()))
        .await
        .unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = clone.execute("SELECT 1", ()).await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");

    // Handles taken before the close.
    assert!(conn.is_closed());
    let err = conn.execute("SELECT 1", ()).await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = tx.execute("SELECT 1", ()).await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    assert!(!tx.is_active());
    let err = tx.commit().await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = streaming.fetchall().await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    conn.close().await.unwrap();

    // Closing again is fine.
    engine.close().await.unwrap();
    clone.close().await.unwrap();
    assert_eq!(engine.worker_count(), 0);

    if ctx.backend != Backend::Memory {
        // The uncommitted insert did not survive; the database is intact.
        let reopened = ctx.engine();
        let n: i64 = reopened.scalar("SELECT count(*) FROM t", ()).await.unwrap();
        assert_eq!(n, 0);
        reopened.close().await.unwrap();
    }
}

async fn engine_debug(ctx: Ctx) {
    let engine = ctx.engine();
    let debug = format!("{engine:?}");
    assert!(debug.contains(ctx.url()), "{debug}");
    let strategy = format!("{:?}", ctx.strategy());
    assert!(debug.contains(&strategy), "{debug} lacks {strategy}");
    assert_eq!(engine.url(), ctx.url());
    // Futures are Send, so they can be spawned on any multi-thread executor.
    fn is_send<T: Send>(_: &T) {}
    is_send(&engine.execute("SELECT 1", ()));
    is_send(&engine.connect());
    is_send(&engine.close());
    let conn = engine.connect().await.unwrap();
    is_send(&conn.execute("SELECT 1", ()));
    is_send(&conn.begin());
    let debug = format!("{conn:?}");
    assert!(debug.contains("Connection"), "{debug}");
}

async fn failed_connect(ctx: Ctx) {
    let url = ctx.unreachable_url();
    let engine = ctx.builder().url(url).max_connections(1).build().unwrap();
    for _ in 0..3 {
        // With one slot, each failure must give the slot back (no hang).
        let err = engine.connect().await.unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        assert!(!err.is_closed());
        let text = err.to_string();
        assert!(text.contains(ctx.unreachable_hint()), "{text}");
        assert!(err.source().is_some());
        assert!(
            common::wait_until(Duration::from_secs(5), || engine.worker_count() == 0),
            "a worker outlived its failed connect: {}",
            engine.worker_count()
        );
    }
    let err = engine.execute("SELECT 1", ()).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    engine.close().await.unwrap();
    assert_eq!(engine.worker_count(), 0);
}

async fn failed_commit_leaves_the_connection_usable(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    if ctx.backend.is_sqlite() {
        let on: i64 = conn.scalar("PRAGMA foreign_keys", ()).await.unwrap();
        if ctx.backend == Backend::File {
            assert_eq!(on, 1, "foreign keys are enforced on file databases");
        }
        conn.execute("PRAGMA foreign_keys = ON", ()).await.unwrap();
    }
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)", ())
        .await
        .unwrap();
    conn.execute(
        "CREATE TABLE child (id INTEGER PRIMARY KEY, \
         parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
        (),
    )
    .await
    .unwrap();

    let tx = conn.begin().await.unwrap();
    // Deferred: accepted now, checked at COMMIT.
    tx.execute("INSERT INTO child (id, parent_id) VALUES (1, 99)", ())
        .await
        .unwrap();
    let err = tx.commit().await.unwrap_err();
    assert!(err.is_database(), "{err:?}");
    let text = err.to_string();
    if ctx.backend.is_sqlite() {
        assert!(text.contains("FOREIGN KEY"), "{text}");
    } else {
        assert!(text.contains("foreign key"), "{text}");
    }
    assert!(!conn.in_transaction());
    assert_eq!(count(&conn, "child").await, 0);
    assert!(!conn.in_transaction());

    // The connection begins and commits again.
    let tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO parent (id) VALUES (99)", ())
        .await
        .unwrap();
    tx.execute("INSERT INTO child (id, parent_id) VALUES (1, 99)", ())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let other = engine.connect().await.unwrap();
    assert_eq!(count(&other, "child").await, 1);
}

// ---------------------------------------------------------------------------
// Not stamped: independent of runtime and backend, or about mixing runtimes.
// ---------------------------------------------------------------------------

/// `Engine` is cheap to share between tasks and threads.
const _: fn() = || {
    fn shareable<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    fn sendable<T: Send + Sync + 'static>() {}
    shareable::<Engine>();
    sendable::<Connection>();
    sendable::<Error>();
    sendable::<sqlaio::Row>();
    fn send_only<T: Send + 'static>() {}
    send_only::<sqlaio::CursorResult<'static>>();
    sendable::<sqlaio::Transaction<'static>>();
};

#[cfg(feature = "sqlite")]
#[test]
fn builder_rejects_bad_configuration() {
    let err = Engine::builder().build().unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let err = Engine::builder()
        .url("sqlite::memory:")
        .max_connections(0)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let err = Engine::builder()
        .url("oracle://db/app")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("oracle"), "{err}");
    let engine = Engine::builder().url("sqlite::memory:").build().unwrap();
    assert_eq!(engine.max_connections(), sqlaio::DEFAULT_MAX_CONNECTIONS);
    assert_eq!(engine.worker_count(), 0, "connections open lazily");
}

/// An engine built under tokio, with a connection opened there, is then
/// used from `futures::executor::block_on` on a plain thread.
#[cfg(all(feature = "tokio", feature = "sqlite"))]
#[test]
fn tokio_engine_awaited_from_a_plain_thread() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (engine, conn) = rt.block_on(async {
        let engine = Engine::builder()
            .url("sqlite::memory:")
            .strategy(sqlaio::TokioStrategy)
            .max_connections(3)
            .build()
            .unwrap();
        let conn = engine.connect().await.unwrap();
        conn.execute("CREATE TABLE t (x INTEGER)", ())
            .await
            .unwrap();
        // A second connection, left idle in the pool.
        let spare = engine.connect().await.unwrap();
        drop(spare);
        (engine, conn)
    });
    assert_eq!(engine.worker_count(), 2);

    let shared = engine.clone();
    std::thread::spawn(move || {
        futures::executor::block_on(async move {
            conn.execute("INSERT INTO t (x) VALUES ($1)", (20,))
                .await
                .unwrap();
            conn.execute_many("INSERT INTO t (x) VALUES ($1)", [(1,), (2,)])
                .await
                .unwrap();
            assert_eq!(count(&conn, "t").await, 3);
            let tx = conn.begin().await.unwrap();
            tx.execute("DELETE FROM t WHERE x = 1", ()).await.unwrap();
            tx.commit().await.unwrap();
            let rows: Vec<sqlaio::Row> = conn
                .execute(SERIES, (1000,))
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            assert_eq!(rows.len(), 1000);
            // The pooled idle connection serves this thread too.
            let sum: i64 = shared.scalar("SELECT sum(x) FROM t", ()).await.unwrap();
            assert_eq!(sum, 22);
            // Opening a new connection needs the tokio runtime: a clear error, no panic.
            let idle = shared.connect().await.unwrap();
            let err = shared.connect().await.unwrap_err();
            assert!(matches!(err, Error::Spawn(_)), "{err:?}");
            assert!(err.to_string().contains("tokio"), "{err}");
            drop(idle);
            drop(conn);
        })
    })
    .join()
    .expect("the plain thread's checks");

    rt.block_on(async {
        // The failed open gave its slot back: a third connection opens here.
        let a = engine.connect().await.unwrap();
        let b = engine.connect().await.unwrap();
        let c = engine.connect().await.unwrap();
        assert_eq!(count(&c, "t").await, 2);
        drop((a, b, c));
        engine.close().await.unwrap();
        assert_eq!(engine.worker_count(), 0);
    });
    drop(rt);
}
