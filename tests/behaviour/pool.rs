//! The pool: waiting for a connection and timing out, opening ahead of
//! demand, engine statements sharing a busy connection, and pooled
//! connections sharing one database.

use std::time::Duration;

use futures::future;
use futures::{FutureExt, StreamExt, TryFutureExt, TryStreamExt};
use sqlaio::Engine;

#[cfg(feature = "postgres")]
use crate::common::pg::with_option;
use crate::common::{self, Ctx};
use crate::support::*;

stamp! {
    runtimes: one, backends: all;
    pooled_connections_share_one_database,
}

// It registers an `after_connect` hook on the SQLite driver's connection.
stamp! {
    runtimes: one, backends: [memory];
    a_shared_connection_takes_no_more_statements_after_max_lifetime,
}

stamp! {
    runtimes: each, backends: all;
    pool_timeout,
    min_connections_open_ahead_of_demand,
    engine_statements_queue_on_busy_connections,
    engine_statement_waits_for_an_open_result,
    engine_statement_never_joins_a_transaction,
    engine_statements_in_line_share_the_connection_that_comes_back,
}

// The PostgreSQL client keeps its buffers as large as the largest row read.
#[cfg(feature = "postgres")]
stamp! {
    runtimes: one, backends: [postgres];
    a_connection_that_read_a_huge_row_is_replaced_in_the_pool,
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
            conn.scalar::<i64>(echo(ctx.backend), (n as i64,))
                .await
                .unwrap(),
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

/// An engine whose one connection is open and has answered a few statements.
async fn warm_engine_of_one(ctx: &Ctx) -> Engine {
    let engine = ctx.builder().max_connections(1).build().unwrap();
    for x in 0..10_i64 {
        assert_eq!(
            engine.scalar::<i64>(echo(ctx.backend), (x,)).await.unwrap(),
            x
        );
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
async fn settle(ctx: &Ctx, engine: &Engine) {
    for i in 0..16_i64 {
        assert_eq!(
            engine.scalar::<i64>(echo(ctx.backend), (i,)).await.unwrap(),
            i
        );
    }
}

/// Tries `attempt` until its statements all queue on one connection.
macro_rules! until_queued {
    ($ctx:expr, $engine:expr, $attempt:expr) => {{
        let mut tries = 0;
        loop {
            let mut futures = $attempt;
            if all_queued($engine, &mut futures).await {
                break futures;
            }
            drop(futures);
            tries += 1;
            assert!(tries < 50, "statements never queued on one connection");
            settle($ctx, $engine).await;
        }
    }};
}

async fn engine_statements_queue_on_busy_connections(ctx: Ctx) {
    let engine = warm_engine_of_one(&ctx).await;
    let n = slow(&ctx);
    // The second statement waits on the busy connection, behind the first,
    // rather than in line for the pool.
    let [long, short] = until_queued!(&ctx, &engine, {
        [
            engine
                .scalar::<i64>(recursive(ctx.backend, COUNT_TO), (n,))
                .boxed(),
            engine.scalar::<i64>(echo(ctx.backend), (2_i64,)).boxed(),
        ]
    });
    assert_eq!(engine.pool_status().in_use, 1);
    // Once a statement has been running for a while, later ones wait for a
    // connection of their own instead of queueing behind it.
    std::thread::sleep(Duration::from_millis(50));
    let mut late = engine.scalar::<i64>(echo(ctx.backend), (3_i64,)).boxed();
    assert!(futures::poll!(late.as_mut()).is_pending());
    assert_eq!(engine.pool_status().waiting, 1);
    let limit = Duration::from_secs(60);
    assert_eq!(common::within(limit, long).await.unwrap(), n);
    assert_eq!(common::within(limit, short).await.unwrap(), 2);
    assert_eq!(common::within(limit, late).await.unwrap(), 3);

    // Many tasks over two connections: each statement gets its own answer.
    let engine = ctx.builder().max_connections(2).build().unwrap();
    let backend = ctx.backend;
    let tasks = (0..16_i64).map(|task| {
        let engine = engine.clone();
        ctx.spawn(async move {
            for call in 0..25 {
                let x = task * 1000 + call;
                assert_eq!(engine.scalar::<i64>(echo(backend), (x,)).await.unwrap(), x);
                let rows = engine
                    .execute(recursive(backend, SERIES), (call % 3 + 1,))
                    .await
                    .unwrap();
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
    let [first, big, next] = until_queued!(&ctx, &engine, {
        [
            engine
                .scalar::<i64>(recursive(ctx.backend, COUNT_TO), (n,))
                .map_ok(|_| None)
                .boxed(),
            engine
                .execute(recursive(ctx.backend, SERIES), (ROWS,))
                .map_ok(Some)
                .boxed(),
            engine
                .scalar::<i64>(echo(ctx.backend), (7_i64,))
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
    assert_eq!(
        engine
            .scalar::<i64>(echo(ctx.backend), (8_i64,))
            .await
            .unwrap(),
        8
    );
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
    let [first, begin, insert] = until_queued!(&ctx, &engine, {
        [
            engine
                .execute(recursive(ctx.backend, COUNT_TO), (n,))
                .boxed(),
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
        .map(|x| engine.scalar::<i64>(echo(ctx.backend), (x,)).boxed())
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
    // MySQL's sum of integers is a DECIMAL.
    let sum: i64 = engine
        .scalar(
            format!("SELECT CAST(sum(x) AS {}) FROM shared", int8(ctx.backend)),
            (),
        )
        .await
        .unwrap();
    assert_eq!(sum, 15);

    if ctx.is("memory") {
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

/// A connection that engine statements keep busy (they queue on it, and
/// one of them is always still to be answered) stops taking more once it is
/// past `max_lifetime`: later statements wait for it to go back to the pool,
/// which replaces it.
#[cfg(feature = "sqlite")]
async fn a_shared_connection_takes_no_more_statements_after_max_lifetime(ctx: Ctx) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let opened = Arc::new(AtomicUsize::new(0));
    let counter = opened.clone();
    let engine = ctx
        .builder()
        .max_connections(1)
        .max_lifetime(Duration::from_millis(100))
        .after_connect(move |_: &mut sqlaio::rusqlite::Connection| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .build()
        .unwrap();
    assert_eq!(engine.scalar::<i64>("SELECT 0", ()).await.unwrap(), 0);
    // Sent, and left unanswered: it keeps its place on the connection.
    // (Its caller may find the answer before its first poll returns;
    // then it holds nothing, and is sent again.)
    let mut tries = 0;
    let held = loop {
        let mut held = Box::pin(engine.scalar::<i64>("SELECT 1", ()));
        if futures::poll!(held.as_mut()).is_pending() {
            break held;
        }
        tries += 1;
        assert!(
            tries < 100,
            "every statement was answered within its first poll"
        );
    };
    assert_eq!(engine.scalar::<i64>("SELECT 2", ()).await.unwrap(), 2);
    assert_eq!(engine.pool_status().waiting, 0);
    std::thread::sleep(Duration::from_millis(150));
    let mut late = Box::pin(engine.scalar::<i64>("SELECT 3", ()));
    assert!(futures::poll!(late.as_mut()).is_pending());
    assert_eq!(engine.pool_status().waiting, 1);
    assert_eq!(held.await.unwrap(), 1);
    assert_eq!(late.await.unwrap(), 3);
    assert_eq!(opened.load(Ordering::SeqCst), 2);
    engine.close().await.unwrap();
}

#[cfg(feature = "postgres")]
/// A connection that read a row over 8 MiB keeps serving its holder, and is
/// replaced once it is back in the pool (its client buffers stay that large);
/// one that read small rows is kept.
async fn a_connection_that_read_a_huge_row_is_replaced_in_the_pool(ctx: Ctx) -> sqlaio::Result<()> {
    let url = ctx.url().to_owned();
    // Without TLS: over TLS the big read itself is slow (see docs/limitations.md).
    let url = with_option(&url, "sslmode=disable");
    let engine = Engine::builder().url(&url).max_connections(1).build()?;
    let pid: i32 = engine.scalar("SELECT pg_backend_pid()", ()).await?;
    let small: Vec<u8> = engine
        .scalar("SELECT decode(repeat('ab', 1024 * 1024), 'hex')", ())
        .await?;
    assert_eq!(small.len(), 1024 * 1024);
    assert_eq!(
        engine.scalar::<i32>("SELECT pg_backend_pid()", ()).await?,
        pid
    );

    let conn = engine.connect().await?;
    let huge: Vec<u8> = conn
        .scalar("SELECT decode(repeat('ab', 9 * 1024 * 1024), 'hex')", ())
        .await?;
    assert_eq!(huge.len(), 9 * 1024 * 1024);
    // Its holder keeps it.
    assert_eq!(
        conn.scalar::<i32>("SELECT pg_backend_pid()", ()).await?,
        pid
    );
    drop(conn);
    let next: i32 = engine.scalar("SELECT pg_backend_pid()", ()).await?;
    assert_ne!(next, pid, "the worn connection went back into use");
    assert_eq!(engine.pool_status().size, 1);
    engine.close().await?;
    assert_eq!(engine.worker_count(), 0);
    Ok(())
}
