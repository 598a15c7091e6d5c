//! Many tasks at once: over a pool, on one shared connection, and in
//! writing transactions.

use std::sync::Arc;

use futures::future;
use futures::{StreamExt, TryStreamExt};
use sqlaio::Error;

use crate::common::{Ctx, Family};
use crate::support::*;

stamp! {
    runtimes: each, backends: all;
    concurrent_tasks,
    tasks_sharing_one_connection,
    concurrent_transactions,
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
    let backend = ctx.backend;
    let tasks = (0..TASKS).map(|task| {
        let engine = engine.clone();
        ctx.spawn(async move {
            for n in 0..ROWS {
                engine
                    .execute(
                        backend.sql("INSERT INTO hits (task, n) VALUES ($1, $2)"),
                        (task, n),
                    )
                    .await
                    .unwrap();
            }
            let conn = engine.connect().await.unwrap();
            let mine: i64 = conn
                .scalar(
                    backend.sql("SELECT count(*) FROM hits WHERE task = $1"),
                    (task,),
                )
                .await
                .unwrap();
            assert_eq!(mine, ROWS);
            let echoed: String = conn
                .scalar(backend.sql("SELECT $1"), (format!("task {task}"),))
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

async fn tasks_sharing_one_connection(ctx: Ctx) {
    const TASKS: i64 = 16;
    const CALLS: i64 = 40;
    let engine = ctx.builder().max_connections(1).build().unwrap();
    let conn = Arc::new(engine.connect().await.unwrap());
    // Statements from many tasks queue on the connection's worker; each
    // task gets its own answers, whatever the order they run in.
    let backend = ctx.backend;
    let tasks = (0..TASKS).map(|task| {
        let conn = conn.clone();
        ctx.spawn(async move {
            let mut sum = 0;
            for call in 0..CALLS {
                let x = task * 1000 + call;
                let got: i64 = conn.scalar(echo(backend), (x,)).await.unwrap();
                assert_eq!(got, x);
                let rows = conn
                    .execute(recursive(backend, SERIES), (call % 5 + 1,))
                    .await
                    .unwrap();
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
    let mut long = conn
        .execute(recursive(ctx.backend, SERIES), (2000_i64,))
        .await
        .unwrap();
    assert_eq!(long.fetchmany(10).await.unwrap().len(), 10);
    let other = conn.clone();
    let seven = ctx
        .spawn(async move { other.scalar::<i64>(echo(backend), (7_i64,)).await.unwrap() })
        .await;
    assert_eq!(seven, 7);
    let rest = long.fetchall().await;
    assert!(matches!(rest, Err(Error::Closed(_))), "{rest:?}");
    drop(long);
    assert_eq!(
        conn.scalar::<i64>(echo(ctx.backend), (8_i64,))
            .await
            .unwrap(),
        8
    );
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
    // lock up front; PostgreSQL's READ COMMITTED and MySQL's REPEATABLE
    // READ (which reads a snapshot) need the row locked by the read itself.
    let read = match ctx.family() {
        Family::Sqlite => "SELECT value FROM counter WHERE id = 1",
        Family::Postgres | Family::Mysql => "SELECT value FROM counter WHERE id = 1 FOR UPDATE",
    };
    let backend = ctx.backend;
    let tasks = (0..TASKS).map(|task| {
        let engine = engine.clone();
        ctx.spawn(async move {
            for _ in 0..ROUNDS {
                let tx = engine.begin().await.unwrap();
                let value: i64 = tx.scalar(read, ()).await.unwrap();
                tx.execute(
                    backend.sql("UPDATE counter SET value = $1 WHERE id = 1"),
                    (value + 1,),
                )
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
