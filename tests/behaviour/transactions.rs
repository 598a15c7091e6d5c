//! Transactions: begin, commit, rollback, savepoints, a dropped
//! `Transaction` rolling back before anything else runs, isolation,
//! transactional DDL, and commits that fail.

use std::time::Duration;

use sqlaio::Error;

#[cfg(feature = "postgres")]
use crate::common::pg::unique;
use crate::common::{Ctx, Family};
use crate::support::*;

stamp! {
    runtimes: one, backends: all;
    in_transaction,
    commit,
    rollback,
    dropped_transaction_rolls_back,
    begin_nested,
    transactions_are_isolated,
    ddl_is_transactional,
    a_savepoint_inside_a_sql_transaction_ends_only_itself,
}

// Not MySQL: it has no deferred constraints, so nothing makes a COMMIT fail there.
stamp! {
    runtimes: one, backends: [memory, file, postgres];
    failed_commit_leaves_the_connection_usable,
}

// These drop futures, or wait for the pool's only connection to come back.
stamp! {
    runtimes: each, backends: all;
    rollback_of_a_dropped_transaction_outlives_a_dropped_statement,
    engine_begin,
    closing_a_connection_in_a_transaction_rolls_back,
    dropped_connection_in_sql_transaction_rolls_back,
}

// `txid_current_if_assigned()` shows that no transaction is left open.
#[cfg(feature = "postgres")]
stamp! {
    runtimes: one, backends: [postgres];
    nested_transactions_and_rollback_on_drop,
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
    tx.execute(
        ctx.sql("INSERT INTO users (id, name) VALUES ($1, $2)"),
        (1, "Isaac"),
    )
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
    tx.execute(
        ctx.sql("INSERT INTO users (id, name) VALUES ($1, $2)"),
        (1, "Isaac"),
    )
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
            ctx.sql("INSERT INTO users (id, name) VALUES ($1, $2)"),
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
        ctx.sql("INSERT INTO users (id, name) VALUES ($1, $2)"),
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
    let insert = &ctx.sql("INSERT INTO users (id, name) VALUES ($1, $2)");
    for keep_waiting in [false, true] {
        conn.execute("DELETE FROM users", ()).await.unwrap();
        let tx = conn.begin().await.unwrap();
        tx.execute(insert, (1, "dropped")).await.unwrap();
        // One statement runs on the worker for a while, 16 more fill the queue.
        let mut running =
            Box::pin(conn.scalar::<i64>(recursive(ctx.backend, COUNT_TO), (slow(&ctx),)));
        assert!(futures::poll!(running.as_mut()).is_pending());
        std::thread::sleep(Duration::from_millis(50));
        let mut queued: Vec<_> = (0..16_i64)
            .map(|i| Box::pin(conn.scalar::<i64>(echo(ctx.backend), (i,))))
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
    let insert = &ctx.sql("INSERT INTO users (id, name) VALUES ($1, 'x')");

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
    let insert = &ctx.sql("INSERT INTO users (id, name) VALUES ($1, 'x')");

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

/// On SQLite and PostgreSQL DDL is undone with its transaction; MySQL
/// commits before and after DDL, and the handle then says its transaction ended.
async fn ddl_is_transactional(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    if ctx.is_mysql() {
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)", ())
            .await
            .unwrap();
        let tx = conn.begin().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        tx.execute("CREATE TABLE ddl (x INTEGER)", ())
            .await
            .unwrap();
        let err = tx
            .execute("INSERT INTO t VALUES (2)", ())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TransactionAborted), "{err:?}");
        assert!(err.to_string().contains("transaction"), "{err}");
        let err = tx.commit().await.unwrap_err();
        assert!(matches!(err, Error::TransactionAborted), "{err:?}");
        // The implicit commit kept the first insert; nothing ran outside the transaction.
        assert_eq!(ids(&conn, "t").await, [1]);
        assert!(engine.has_table("ddl").await.unwrap());
        assert!(!conn.in_transaction());
        return;
    }
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

async fn failed_commit_leaves_the_connection_usable(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    if ctx.backend.is_sqlite() {
        let on: i64 = conn.scalar("PRAGMA foreign_keys", ()).await.unwrap();
        if ctx.is("file") {
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
    match ctx.family() {
        Family::Sqlite => assert!(text.contains("FOREIGN KEY"), "{text}"),
        Family::Postgres => assert!(text.contains("foreign key"), "{text}"),
        Family::Mysql => unreachable!("not stamped for MySQL"),
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

/// `begin_nested` inside a transaction begun with SQL is a savepoint: ending
/// it leaves the outer transaction alone.
async fn a_savepoint_inside_a_sql_transaction_ends_only_itself(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    conn.execute("CREATE TABLE t (x INTEGER)", ())
        .await
        .unwrap();
    conn.execute("BEGIN", ()).await.unwrap();
    conn.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
    let nested = conn.begin_nested().await.unwrap();
    nested
        .execute("INSERT INTO t VALUES (2)", ())
        .await
        .unwrap();
    nested.rollback().await.unwrap();
    assert!(
        conn.in_transaction(),
        "the outer transaction must still be open"
    );
    let nested = conn.begin_nested().await.unwrap();
    nested
        .execute("INSERT INTO t VALUES (3)", ())
        .await
        .unwrap();
    nested.commit().await.unwrap();
    assert!(
        conn.in_transaction(),
        "releasing the savepoint must not commit"
    );
    conn.execute("COMMIT", ()).await.unwrap();
    let mut result = conn
        .execute("SELECT x FROM t ORDER BY x", ())
        .await
        .unwrap();
    let xs: Vec<i64> = result
        .fetchall()
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0).unwrap())
        .collect();
    assert_eq!(xs, [1, 3]);
}

#[cfg(feature = "postgres")]
async fn nested_transactions_and_rollback_on_drop(ctx: Ctx) -> sqlaio::Result<()> {
    let url = ctx.url().to_owned();
    let t = unique("nested");
    let engine = ctx.builder().max_connections(4).build()?;
    let conn = engine.connect().await?;
    conn.execute(format!("CREATE TABLE {t} (id int4 PRIMARY KEY)"), ())
        .await?;
    let insert = format!("INSERT INTO {t} VALUES ($1)");
    let ids_sql = format!("SELECT id FROM {t} ORDER BY id");

    // begin_nested: inner rollback, outer commit.
    let tx = conn.begin().await?;
    tx.execute(&insert, (1,)).await?;
    let inner = tx.begin_nested().await?;
    inner.execute(&insert, (2,)).await?;
    inner.rollback().await?;
    assert!(tx.is_active());
    tx.execute(&insert, (3,)).await?;
    let inner = tx.begin_nested().await?;
    inner.execute(&insert, (4,)).await?;
    inner.commit().await?;
    {
        let dropped = tx.begin_nested().await?;
        dropped.execute(&insert, (5,)).await?;
    }
    tx.execute(&insert, (6,)).await?;
    tx.commit().await?;
    let got = read_ids(&conn, &ids_sql).await?;
    assert_eq!(got, [1, 3, 4, 6]);

    // begin_nested outside a transaction begins one.
    let outer = conn.begin_nested().await?;
    outer.execute(&insert, (7,)).await?;
    outer.rollback().await?;
    assert_eq!(read_ids(&conn, &ids_sql).await?, [1, 3, 4, 6]);

    // A dropped transaction rolls back before anything else runs.
    {
        let tx = conn.begin().await?;
        tx.execute(&insert, (8,)).await?;
    }
    assert!(
        // The insert gave the dropped transaction an id; a new one has none.
        conn.scalar::<bool>("SELECT txid_current_if_assigned() IS NULL", ())
            .await?,
        "the next statement runs outside the dropped transaction"
    );
    assert!(!conn.in_transaction());
    assert_eq!(read_ids(&conn, &ids_sql).await?, [1, 3, 4, 6]);
    conn.close().await?;

    // An engine transaction dropped uncommitted: its connection goes back
    // to the pool rolled back.
    let single = sqlaio::Engine::builder()
        .url(&url)
        .max_connections(1)
        .build()?;
    {
        let tx = single.begin().await?;
        tx.execute(&insert, (9,)).await?;
    }
    assert!(
        single
            .scalar::<bool>("SELECT txid_current_if_assigned() IS NULL", ())
            .await?,
        "the pooled connection came back outside the dropped transaction"
    );
    let count: i64 = single
        .scalar(format!("SELECT count(*) FROM {t} WHERE id = 9"), ())
        .await?;
    assert_eq!(count, 0);
    let tx = single.begin().await?;
    tx.execute(&insert, (10,)).await?;
    tx.commit().await?;
    let count: i64 = engine
        .scalar(format!("SELECT count(*) FROM {t} WHERE id = 10"), ())
        .await?;
    assert_eq!(count, 1);
    single.close().await?;
    engine.close().await
}
