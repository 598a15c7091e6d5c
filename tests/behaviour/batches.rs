//! `execute_many`: one statement over many parameter sets, atomic as a
//! whole, streamed to the worker in chunks.

use sqlaio::Error;

#[cfg(feature = "postgres")]
use crate::common::pg::unique;
use crate::common::Ctx;
use crate::support::*;

// On PostgreSQL the rowcount of a batch of queries counts the rows they
// selected (the server's command tags say so); SQLite's counts changes.
stamp! {
    runtimes: one, backends: sqlite;
    execute_many_of_queries_counts_no_rows,
}

// One part runs the batch in a spawned task.
stamp! {
    runtimes: each, backends: all;
    execute_many,
}

// Out of range for `int4`: PostgreSQL's typed parameters.
#[cfg(feature = "postgres")]
stamp! {
    runtimes: one, backends: [postgres];
    execute_many_is_atomic,
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
    let insert = &ctx.sql("INSERT INTO users (id, name) VALUES ($1, $2)");

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
            ctx.sql("UPDATE users SET name = $1 WHERE id <= $2"),
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
            format!(
                "SELECT CAST(sum(id) AS {}) FROM users WHERE name = 'many'",
                int8(ctx.backend)
            ),
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
        let insert = insert.clone();
        async move {
            let conn = engine.connect().await.unwrap();
            let sets = names.iter().zip(1_000..).map(|(n, id)| (id, n.as_str()));
            conn.execute_many(&insert, sets).await.unwrap().rowcount()
        }
    });
    assert_eq!(batch.await, big as u64);
    let last: String = conn
        .scalar(
            ctx.sql("SELECT name FROM users WHERE id = $1"),
            (1_000 + big - 1,),
        )
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

/// A batch of queries changes no rows, whatever the last write before it did.
#[cfg(feature = "sqlite")]
async fn execute_many_of_queries_counts_no_rows(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    conn.execute("CREATE TABLE t (x INTEGER)", ())
        .await
        .unwrap();
    conn.execute_many(ctx.sql("INSERT INTO t VALUES ($1)"), [(1,), (2,), (3,)])
        .await
        .unwrap();
    let queried = conn
        .execute_many(ctx.sql("SELECT x FROM t WHERE x = $1"), [(1,), (2,)])
        .await
        .unwrap();
    assert_eq!(queried.rowcount(), 0);
    let deleted = conn
        .execute_many(ctx.sql("DELETE FROM t WHERE x = $1"), [(1,), (9,)])
        .await
        .unwrap();
    assert_eq!(deleted.rowcount(), 1);
}

#[cfg(feature = "postgres")]
async fn execute_many_is_atomic(ctx: Ctx) -> sqlaio::Result<()> {
    let t = unique("many");
    let engine = ctx.builder().max_connections(4).build()?;
    let conn = engine.connect().await?;
    conn.execute(format!("CREATE TABLE {t} (id int4 PRIMARY KEY)"), ())
        .await?;
    let insert = format!("INSERT INTO {t} VALUES ($1)");
    let ids_sql = format!("SELECT id FROM {t} ORDER BY id");

    let done = conn.execute_many(&insert, [(1,), (2,), (3,)]).await?;
    assert_eq!(done.rowcount(), 3);
    drop(done);
    assert!(!conn.in_transaction());

    // A duplicate in the last set: none of the set applies.
    let e = conn
        .execute_many(&insert, [(10,), (11,), (1,)])
        .await
        .unwrap_err();
    assert!(e.is_database(), "{e:?}");
    assert!(!conn.in_transaction());
    assert_eq!(read_ids(&conn, &ids_sql).await?, [1, 2, 3]);

    // A value out of range for int4: nothing applies either.
    let e = conn
        .execute_many(&insert, [(20i64,), (3_000_000_000i64,)])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("3000000000"), "{e}");
    assert_eq!(read_ids(&conn, &ids_sql).await?, [1, 2, 3]);

    // A set with the wrong number of parameters.
    let sets = vec![
        vec![sqlaio::Value::from(30)],
        vec![sqlaio::Value::from(31), sqlaio::Value::from(32)],
    ];
    let e = conn.execute_many(&insert, sets).await.unwrap_err();
    assert!(matches!(e, Error::ParameterCount { .. }), "{e:?}");
    assert_eq!(read_ids(&conn, &ids_sql).await?, [1, 2, 3]);

    // Inside a transaction, a failing batch undoes only itself.
    let tx = conn.begin().await?;
    tx.execute(&insert, (100,)).await?;
    assert!(tx.execute_many(&insert, [(101,), (100,)]).await.is_err());
    assert!(tx.is_active());
    tx.execute_many(&insert, [(102,), (103,)]).await?;
    tx.commit().await?;
    assert_eq!(read_ids(&conn, &ids_sql).await?, [1, 2, 3, 100, 102, 103]);
    conn.close().await?;
    engine.close().await
}
