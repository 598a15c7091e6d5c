//! Cancellation: a dropped future stops its statement on the database (or
//! skips it), a statement timeout does the same, and the connection's next
//! calls get their own answers.

use std::time::Duration;

use futures::future;
use futures::FutureExt;

use crate::common::{self, Ctx, Family};
use crate::support::*;

stamp! {
    runtimes: each, backends: all;
    dropped_call_in_flight,
    call_dropped_at_once_never_keeps_running,
    dropped_statement_is_interrupted,
    interrupted_statement_in_a_transaction,
    statement_timeout,
    statement_timeout_in_run_in_thread,
    dropped_fetch_keeps_its_rows,
    cancelled_begin_is_rolled_back,
}

// Its rows come from SQLite (their SQL is the serde tests').
#[cfg(all(feature = "serde", feature = "sqlite"))]
stamp! {
    runtimes: each, backends: [memory];
    a_dropped_fetchall_as_interrupts_the_read_and_closes_the_result,
}

/// A statement timeout far above what a trivial statement takes, even on a
/// loaded machine, and short enough that a few of them keep the test quick.
const TIMEOUT: Duration = Duration::from_millis(300);

/// Far longer than any test may take (tens of seconds even in a release
/// build): only ever run to be interrupted.
const ENDLESS: i64 = 20_000_000;

async fn call_dropped_at_once_never_keeps_running(ctx: Ctx) {
    // Polled once and dropped at once, a call may be given up while the
    // worker takes its request from the queue or prepares its statement,
    // before the statement is under way: it must still be skipped or
    // interrupted, never left running with the connection's next call
    // queued behind it.
    // (Without its limit on recursions lifted, MariaDB would end it after 1000.)
    let endless = recursive(
        ctx.backend,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    );
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    for i in 0..40_i64 {
        assert!(conn.scalar::<i64>(&endless, ()).now_or_never().is_none());
        let next = conn.scalar::<i64>(echo(ctx.backend), (i,));
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
            let mut slow = Box::pin(conn.execute(recursive(ctx.backend, COUNT_TO), (slow(&ctx),)));
            assert!(futures::poll!(slow.as_mut()).is_pending());
        }
        for i in 0..5_i64 {
            assert_eq!(
                conn.scalar::<i64>(echo(ctx.backend), (i,)).await.unwrap(),
                i
            );
        }
        let rows = conn
            .execute(recursive(ctx.backend, SERIES), (600,))
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
        let insert_count = recursive(ctx.backend, &format!("INSERT INTO t (n) {COUNT_TO}"));
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
            let mut slow =
                Box::pin(engine.scalar::<i64>(recursive(ctx.backend, COUNT_TO), (slow(&ctx),)));
            assert!(futures::poll!(slow.as_mut()).is_pending());
            std::thread::sleep(Duration::from_millis(50));
        }
        let backend = ctx.backend;
        let tasks = (0..8_i64).map(|i| {
            let engine = engine.clone();
            ctx.spawn(async move {
                let got: i64 = engine
                    .scalar(backend.sql("SELECT $1 * 10"), (i,))
                    .await
                    .unwrap();
                (i, got)
            })
        });
        for (i, got) in future::join_all(tasks).await {
            assert_eq!(got, i * 10);
        }
        // The same statement, awaited this time, is right.
        assert_eq!(
            engine
                .scalar::<i64>(recursive(ctx.backend, COUNT_TO), (1000,))
                .await
                .unwrap(),
            1000
        );
        engine.close().await.unwrap();
    }
}

async fn dropped_statement_is_interrupted(ctx: Ctx) {
    // The statement takes far longer than the test: it must be interrupted
    // (or skipped), never completed, once its future is dropped.
    let engine = ctx.builder().max_connections(1).build().unwrap();
    let conn = engine.connect().await.unwrap();
    conn.execute("CREATE TABLE t (n INTEGER)", ())
        .await
        .unwrap();
    let insert_count = recursive(ctx.backend, &format!("INSERT INTO t (n) {COUNT_TO}"));
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
    assert_eq!(
        conn.scalar::<i64>(echo(ctx.backend), (5,)).await.unwrap(),
        5
    );
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
        let mut slow = Box::pin(conn.scalar::<i64>(recursive(ctx.backend, COUNT_TO), (ENDLESS,)));
        assert!(futures::poll!(slow.as_mut()).is_pending());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        conn.scalar::<i64>(echo(ctx.backend), (6,)).await.unwrap(),
        6
    );
    drop(conn);

    // Through the engine: its only connection comes back and works.
    {
        let mut slow = Box::pin(engine.scalar::<i64>(recursive(ctx.backend, COUNT_TO), (ENDLESS,)));
        let _ = futures::poll!(slow.as_mut());
        std::thread::sleep(Duration::from_millis(50));
        let _ = futures::poll!(slow.as_mut());
    }
    assert_eq!(
        engine.scalar::<i64>(echo(ctx.backend), (7,)).await.unwrap(),
        7
    );
    let c: i64 = engine.scalar("SELECT count(*) FROM t", ()).await.unwrap();
    assert_eq!(c, 0);
    engine.close().await.unwrap();
}

async fn interrupted_statement_in_a_transaction(ctx: Ctx) {
    let engine = ctx.builder().max_connections(2).build().unwrap();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    let slow = recursive(
        ctx.backend,
        &format!(
            "INSERT INTO users (id, name) SELECT n + 100, 'slow' FROM ({}) AS c WHERE n > 0",
            COUNT_TO.replace("count(*)", "count(*) AS n")
        ),
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
    // cancelled; MySQL's KILL QUERY undoes the statement alone.
    match tx
        .execute("INSERT INTO users (id, name) VALUES (2, 'after')", ())
        .await
    {
        Ok(_) => {
            assert!(!ctx.is_postgres(), "PostgreSQL went on after a cancel");
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
    let insert_count = recursive(ctx.backend, &format!("INSERT INTO t (n) {COUNT_TO}"));

    let err = conn
        .scalar::<i64>(recursive(ctx.backend, COUNT_TO), (ENDLESS,))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(!err.is_closed() && !err.is_database(), "{err:?}");
    // The connection works on, and the statement left nothing behind.
    assert_eq!(
        conn.scalar::<i64>(echo(ctx.backend), (1,)).await.unwrap(),
        1
    );
    let err = conn.execute(&insert_count, (ENDLESS,)).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(count(&conn, "t").await, 0);

    // A fetch of more rows is a statement of its own, with its own deadline:
    // the first rows come at once, the rest would take forever.
    let sparse = match ctx.family() {
        Family::Sqlite | Family::Postgres => ctx.sql(
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $1) \
             SELECT n FROM s WHERE n <= 1000 OR n = $2",
        ),
        // MariaDB computes a recursive CTE whole before it sends a row; its
        // sequence engine streams them (enough to pass the server's buffer).
        Family::Mysql => {
            "SELECT seq FROM seq_1_to_100000000 WHERE seq <= 20000 OR SLEEP(?) = ?".to_owned()
        }
    };
    let mut result = conn.execute(&sparse, (ENDLESS, ENDLESS)).await.unwrap();
    let first = result.fetchone().await.unwrap().expect("a first row");
    assert_eq!(first.get::<i64>(0).unwrap(), 1);
    let err = result.fetchall().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    drop(result);
    assert_eq!(
        conn.scalar::<i64>(echo(ctx.backend), (2,)).await.unwrap(),
        2
    );

    // The connection's own setting overrides the engine's.
    assert_eq!(conn.statement_timeout(), Some(TIMEOUT));
    conn.set_statement_timeout(None);
    assert_eq!(conn.statement_timeout(), None);
    assert_eq!(
        conn.scalar::<i64>(recursive(ctx.backend, COUNT_TO), (slow(&ctx) / 4,))
            .await
            .unwrap(),
        slow(&ctx) / 4
    );
    conn.set_statement_timeout(Some(TIMEOUT / 2));
    let err = conn
        .scalar::<i64>(recursive(ctx.backend, COUNT_TO), (ENDLESS,))
        .await
        .unwrap_err();
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
    // transaction of a cancelled statement; MySQL undoes the killed
    // statement alone. The commit must not pretend to succeed when nothing
    // is left to commit.
    let committed = tx.commit().await;
    let rows: i64 = engine.scalar("SELECT count(*) FROM t", ()).await.unwrap();
    match committed {
        Ok(()) => {
            assert!(
                !ctx.is_postgres(),
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
    let sql = recursive(ctx.backend, &COUNT_TO.replace("$1", &ENDLESS.to_string()));
    let err = conn
        .run_in_thread(move |raw: &mut R| raw.query_int(&sql))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(
        conn.scalar::<i64>(echo(ctx.backend), (2,)).await.unwrap(),
        2
    );
}

async fn dropped_fetch_keeps_its_rows(ctx: Ctx) {
    const N: i64 = 2000;
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    let mut result = conn
        .execute(recursive(ctx.backend, SERIES), (N,))
        .await
        .unwrap();
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
    let mut result = conn
        .execute(recursive(ctx.backend, SERIES), (M,))
        .await
        .unwrap();
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

#[cfg(all(feature = "serde", feature = "sqlite"))]
async fn a_dropped_fetchall_as_interrupts_the_read_and_closes_the_result(
    ctx: Ctx,
) -> sqlaio::Result<()> {
    use crate::deserialize::{counting, User};

    let engine = ctx.engine();
    let conn = engine.connect().await?;
    // Far more rows than can be read before the timeout.
    let mut result = conn.execute(counting(2_000_000_000), ()).await?;
    let timed_out = matches!(
        future::select(
            std::pin::pin!(result.fetchall_as::<User>()),
            std::pin::pin!(common::nap(Duration::from_millis(50))),
        )
        .await,
        future::Either::Right(_)
    );
    assert!(timed_out, "the read did not time out");
    assert!(matches!(
        result.fetchone().await,
        Err(sqlaio::Error::Closed("result"))
    ));
    drop(result);
    // The read was interrupted: the connection answers its next statement.
    assert_eq!(conn.scalar::<i64>("SELECT 7", ()).await?, 7);
    engine.close().await
}
