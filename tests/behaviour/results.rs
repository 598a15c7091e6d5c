//! Results: `fetchone`, `fetchmany`, `fetchall`, `first`, `scalar`, keys,
//! row counts, inserted ids, streaming, and what a dropped result gives back.

use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use sqlaio::Error;

#[cfg(feature = "postgres")]
use crate::common::pg::unique;
use crate::common::{Ctx, Family};
use crate::support::*;

stamp! {
    runtimes: one, backends: all;
    fetchone,
    fetchmany,
    fetchall,
    scalar,
    keys,
    returns_rows,
    rowcount,
    last_insert_id,
    a_stale_fetch_does_not_close_the_newer_result,
}

// These drop streams and waits for rows, or wait for the pool's only
// connection to come back.
stamp! {
    runtimes: each, backends: all;
    first,
    stream_large_result,
    dropped_result_releases_its_connection,
}

// PostgreSQL's own SQL: serial keys, RETURNING several rows, generate_series.
#[cfg(feature = "postgres")]
stamp! {
    runtimes: one, backends: [postgres];
    result_metadata,
    large_results_stream_complete_and_in_order,
    fetchmany_fetches_in_chunks,
}

async fn fetchone(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    insert_users(&ctx, &conn, &["Dana", "Casey"]).await;
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
    insert_users(&ctx, &conn, &["a", "b"]).await;
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
    let mut result = conn
        .execute(recursive(ctx.backend, SERIES), (1000,))
        .await
        .unwrap();
    let mut next = 1;
    for size in [1, 300, 7, 500, 1000] {
        let rows = result.fetchmany(size).await.unwrap();
        let want: Vec<i64> = (next..(next + size as i64).min(1001)).collect();
        assert_eq!(got(rows), want);
        next += want.len() as i64;
    }
    assert_eq!(next, 1001);

    // More than one message holds (4,096 rows): still exactly the size asked for.
    let mut result = conn
        .execute(recursive(ctx.backend, SERIES), (12_000,))
        .await
        .unwrap();
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
    insert_users(&ctx, &conn, &["a", "b", "c"]).await;
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
        .execute(recursive(ctx.backend, SERIES), (3000,))
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
    insert_users_through(&ctx, &engine, &["Dana", "Casey", "Dan"]).await;
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
        .execute(recursive(ctx.backend, SERIES), (5000,))
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
        .execute(recursive(ctx.backend, SERIES), (5000,))
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
    insert_users(&ctx, &conn, &["Dana", "Casey"]).await;
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
        .execute(ctx.sql("DELETE FROM users WHERE id <= $1"), (2,))
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
    // SQLite reports the rowid of the inserted row, MySQL the AUTO_INCREMENT
    // value. PostgreSQL has no such id: always None there, and
    // `INSERT ... RETURNING id` gives the key instead.
    let reported = match ctx.family() {
        Family::Sqlite | Family::Mysql => true,
        Family::Postgres => false,
    };
    let inserted = |id: i64| reported.then_some(id);
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    let result = conn
        .execute(ctx.sql("INSERT INTO users (name) VALUES ($1)"), ("Dana",))
        .await
        .unwrap();
    assert_eq!(result.last_insert_id(), inserted(1));
    assert_eq!(result.rowcount(), 1);
    drop(result);
    let result = conn
        .execute(ctx.sql("INSERT INTO users (name) VALUES ($1)"), ("Casey",))
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

    // The portable way: RETURNING (MariaDB 10.5 and later; not MySQL).
    // SQLite and MariaDB number after the largest id; PostgreSQL's identity
    // counts on, whatever ids were given explicitly.
    let id: i64 = conn
        .scalar(
            ctx.sql("INSERT INTO users (name) VALUES ($1) RETURNING id"),
            ("w",),
        )
        .await
        .unwrap();
    assert_eq!(id, if reported { 42 } else { 4 });
    assert_eq!(ids(&conn, "users").await.len(), 5);
}

async fn stream_large_result(ctx: Ctx) {
    const N: i64 = 2000;
    let engine = ctx.builder().max_connections(1).build().unwrap();

    let mut result = engine
        .execute(recursive(ctx.backend, SERIES), (N,))
        .await
        .unwrap();
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
        .execute(recursive(ctx.backend, SERIES), (N,))
        .await
        .unwrap()
        .map(|row| row.unwrap().get::<i64>(0).unwrap())
        .collect()
        .await;
    assert_eq!(values, (1..=N).collect::<Vec<_>>());
    let rows: Vec<sqlaio::Row> = engine
        .execute(recursive(ctx.backend, SERIES), (N,))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), N as usize);

    // Mixed with fetches, on a connection.
    let conn = engine.connect().await.unwrap();
    let mut result = conn
        .execute(recursive(ctx.backend, SERIES), (N,))
        .await
        .unwrap();
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
        let mut result = conn
            .execute(recursive(ctx.backend, SERIES), (N,))
            .await
            .unwrap();
        for expected in 1..=stop {
            let row = result.try_next().await.unwrap().expect("a row");
            assert_eq!(row.get::<i64>(0).unwrap(), expected);
        }
        drop(result);
        assert_eq!(conn.scalar::<i64>("SELECT 7", ()).await.unwrap(), 7);
        let rows = conn
            .execute(recursive(ctx.backend, SERIES), (600,))
            .await
            .unwrap();
        let all = rows.try_collect::<Vec<_>>().await.unwrap();
        assert_eq!(all.len(), 600, "after a stream dropped at row {stop}");
        assert_eq!(all[599].get::<i64>(0).unwrap(), 600);
    }

    // yield_per: after the first batch (256 rows, with the execute answer)
    // every batch holds that many rows, where it would have doubled.
    for (per, left) in [(None, 511), (Some(10), 9), (Some(0), 0)] {
        let mut result = conn
            .execute(recursive(ctx.backend, SERIES), (N,))
            .await
            .unwrap();
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
            let (conn, backend) = (&conn, ctx.backend);
            async move {
                let mut result = conn
                    .execute(recursive(backend, SERIES), (n,))
                    .await
                    .unwrap()
                    .yield_per(10);
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
    let slow = recursive(
        ctx.backend,
        &format!(
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 200000) \
             SELECT CAST(n / 500 AS {}) FROM s WHERE n % 500 = 0",
            int8(ctx.backend)
        ),
    );
    for method in ["fetchall", "fetchmany", "fetchall_as", "stream"] {
        let mut result = conn.execute(&slow, ()).await.unwrap().yield_per(10);
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

async fn dropped_result_releases_its_connection(ctx: Ctx) {
    let engine = ctx.builder().max_connections(1).build().unwrap();
    for _ in 0..3 {
        let mut result = engine
            .execute(recursive(ctx.backend, SERIES), (5000,))
            .await
            .unwrap();
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
    let mut result = conn
        .execute(recursive(ctx.backend, SERIES), (5000,))
        .await
        .unwrap();
    result.fetchmany(10).await.unwrap();
    drop(result);
    assert_eq!(conn.scalar::<i64>("SELECT 3", ()).await.unwrap(), 3);
    // The same statement again starts from its first row.
    let all = conn
        .execute(recursive(ctx.backend, SERIES), (5000,))
        .await
        .unwrap()
        .fetchall()
        .await
        .unwrap();
    assert_eq!(all.len(), 5000);
    assert_eq!(all[0].get::<i64>(0).unwrap(), 1);

    // An explicitly closed result refuses fetches; closing twice is fine.
    let mut result = conn
        .execute(recursive(ctx.backend, SERIES), (5000,))
        .await
        .unwrap();
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

/// A fetch from an older, closed result fails alone; the newer result keeps its rows.
async fn a_stale_fetch_does_not_close_the_newer_result(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    let series = recursive(ctx.backend, SERIES);
    let mut older = conn.execute(&series, (1000,)).await.unwrap();
    assert_eq!(older.fetchmany(10).await.unwrap().len(), 10);
    // Leaves about 744 rows unread in the first batch of 256 plus more on the worker.
    let mut newer = conn.execute(&series, (1000,)).await.unwrap();
    assert_eq!(newer.fetchmany(300).await.unwrap().len(), 300);
    let stale = older.fetchall().await;
    assert!(matches!(stale, Err(Error::Closed(_))), "{stale:?}");
    let rest = newer.fetchall().await.unwrap();
    assert_eq!(rest.len(), 700);
    assert_eq!(rest[0].get::<i64>(0).unwrap(), 301);
}

#[cfg(feature = "postgres")]
async fn result_metadata(ctx: Ctx) -> sqlaio::Result<()> {
    let t = unique("meta");
    let engine = ctx.builder().max_connections(4).build()?;
    let conn = engine.connect().await?;
    let created = conn
        .execute(
            format!("CREATE TABLE {t} (id serial PRIMARY KEY, x int4, y text)"),
            (),
        )
        .await?;
    assert!(!created.returns_rows());
    assert!(created.keys().is_empty());
    assert_eq!(created.rowcount(), 0);
    drop(created);

    let inserted = conn
        .execute(
            format!("INSERT INTO {t} (x, y) VALUES (1, 'a'), (2, 'b'), (3, 'c')"),
            (),
        )
        .await?;
    assert_eq!(inserted.rowcount(), 3);
    assert!(!inserted.returns_rows());
    assert_eq!(inserted.last_insert_id(), None);
    drop(inserted);

    let updated = conn
        .execute(format!("UPDATE {t} SET y = 'z' WHERE x >= $1"), (2,))
        .await?;
    assert_eq!(updated.rowcount(), 2);
    drop(updated);
    let none = conn
        .execute(format!("UPDATE {t} SET y = 'z' WHERE x > 100"), ())
        .await?;
    assert_eq!(none.rowcount(), 0);
    drop(none);

    let select = conn
        .execute(format!("SELECT x, y AS why FROM {t} WHERE false"), ())
        .await?;
    assert!(select.returns_rows());
    assert_eq!(select.keys(), ["x", "why"]);
    drop(select);

    let id: i32 = conn
        .scalar(
            format!("INSERT INTO {t} (x, y) VALUES ($1, $2) RETURNING id"),
            (4, "d"),
        )
        .await?;
    assert_eq!(id, 4);
    let returning = conn
        .execute(
            format!("INSERT INTO {t} (x) VALUES (5), (6) RETURNING id, x"),
            (),
        )
        .await?;
    assert!(returning.returns_rows());
    assert_eq!(returning.keys(), ["id", "x"]);
    assert_eq!(returning.last_insert_id(), None);
    let ids: Vec<i32> = {
        let mut returning = returning;
        returning
            .fetchall()
            .await?
            .iter()
            .map(|r| r.get("id"))
            .collect::<sqlaio::Result<_>>()?
    };
    assert_eq!(ids, [5, 6]);

    let deleted = conn.execute(format!("DELETE FROM {t}"), ()).await?;
    assert_eq!(deleted.rowcount(), 6);
    drop(deleted);
    conn.close().await?;
    engine.close().await
}

#[cfg(feature = "postgres")]
async fn large_results_stream_complete_and_in_order(ctx: Ctx) -> sqlaio::Result<()> {
    const N: i64 = 200_000;
    let engine = ctx.builder().max_connections(4).build()?;
    let mut result = engine
        .execute(format!("SELECT generate_series(1, {N}) AS n"), ())
        .await?;
    assert_eq!(result.keys(), ["n"]);
    let mut expected = 1;
    while let Some(row) = result.try_next().await? {
        assert_eq!(row.get::<i64>("n")?, expected);
        expected += 1;
    }
    assert_eq!(expected, N + 1, "every row arrived");
    assert!(result.try_next().await?.is_none());
    drop(result);

    // The same on a borrowed connection, which is usable afterwards.
    let conn = engine.connect().await?;
    let mut result = conn
        .execute("SELECT generate_series(1, 20000)::int8 AS n", ())
        .await?;
    let mut count = 0i64;
    let mut last = 0;
    while let Some(row) = result.try_next().await? {
        let n: i64 = row.get(0)?;
        assert_eq!(n, last + 1);
        last = n;
        count += 1;
    }
    assert_eq!(count, 20_000);
    drop(result);

    // A stream dropped half way leaves the connection usable.
    let mut result = conn
        .execute("SELECT generate_series(1, 20000) AS n", ())
        .await?;
    for want in 1..=1000 {
        let row = result.try_next().await?.expect("a row");
        assert_eq!(row.get::<i64>(0)?, want);
    }
    drop(result);
    assert_eq!(conn.scalar::<i32>("SELECT 7", ()).await?, 7);
    conn.close().await?;
    engine.close().await
}

#[cfg(feature = "postgres")]
async fn fetchmany_fetches_in_chunks(ctx: Ctx) -> sqlaio::Result<()> {
    let engine = ctx.builder().max_connections(4).build()?;
    let conn = engine.connect().await?;
    let mut result = conn
        .execute("SELECT generate_series(1, 10000) AS n", ())
        .await?;
    let mut next = 1i64;
    let mut sizes = Vec::new();
    loop {
        let chunk = result.fetchmany(3000).await?;
        if chunk.is_empty() {
            break;
        }
        sizes.push(chunk.len());
        for row in chunk {
            assert_eq!(row.get::<i64>("n")?, next);
            next += 1;
        }
    }
    assert_eq!(sizes, [3000, 3000, 3000, 1000]);
    assert_eq!(next, 10_001);
    drop(result);

    // Mixed fetches keep their place.
    let mut result = conn
        .execute("SELECT generate_series(1, 1000) AS n", ())
        .await?;
    let first = result.fetchone().await?.expect("a row");
    assert_eq!(first.get::<i64>(0)?, 1);
    let small = result.fetchmany(5).await?;
    let small: Vec<i64> = small
        .iter()
        .map(|r| r.get(0))
        .collect::<sqlaio::Result<_>>()?;
    assert_eq!(small, [2, 3, 4, 5, 6]);
    let big = result.fetchmany(300).await?;
    assert_eq!(big.len(), 300);
    assert_eq!(big[0].get::<i64>(0)?, 7);
    assert_eq!(big[299].get::<i64>(0)?, 306);
    let rest = result.fetchall().await?;
    assert_eq!(rest.len(), 694);
    assert_eq!(rest.last().expect("a row").get::<i64>(0)?, 1000);
    assert!(result.fetchmany(10).await?.is_empty());
    assert!(result.fetchone().await?.is_none());
    drop(result);
    conn.close().await?;
    engine.close().await
}
