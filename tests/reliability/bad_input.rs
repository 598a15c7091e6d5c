//! Bad input: empty SQL, several statements, wrong parameter counts, NUL
//! bytes, a 64 MiB blob and a huge `execute_many`.

#[cfg(feature = "postgres")]
use std::time::Duration;
use std::time::Instant;

use sqlaio::{Connection, Engine, Error};

#[cfg(feature = "postgres")]
use crate::common::pg;
use crate::common::Ctx;
use crate::*;

stamp! {
    runtimes: one, backends: [file];
    bad_input_sqlite,
}

#[cfg(feature = "postgres")]
stamp! {
    runtimes: one, backends: [postgres];
    bad_input_postgres,
}

/// Small statements timed (with a bound) before and after a large value is read.
#[cfg(feature = "postgres")]
const QUICK_STATEMENTS: usize = 2_000;

/// A blob of 64 MiB.
const BIG_BLOB: usize = 64 << 20;

/// Parameter sets in the SQLite `execute_many`.
const MANY_SQLITE: i64 = 1_000_000;

/// Parameter sets in the PostgreSQL `execute_many`: one round trip each
/// (about a millisecond in a debug build), so fewer than on SQLite to keep
/// the test within seconds.
#[cfg(feature = "postgres")]
const MANY_POSTGRES: i64 = 5_000;

fn blob(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(7) % 251) as u8).collect()
}

/// The rows of `table` are still the baseline: nothing was lost or added.
async fn unchanged(conn: &Connection, table: &str, what: &str) {
    let n: i64 = conn
        .scalar(
            format!("SELECT count(*) FROM {table} WHERE n IS NOT NULL"),
            (),
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: the connection is not usable: {e}"));
    assert_eq!(n, 1, "{what}: rows were added or lost");
}

/// A NUL byte inside the SQL text must not cut the statement short: the
/// database would run only the part before it (here, a `DELETE` of every
/// row instead of one), so the call must fail instead.
async fn nul_in_sql(conn: &Connection, table: &str, label: &str) {
    conn.execute(format!("INSERT INTO {table} (n) VALUES (2)"), ())
        .await
        .unwrap();
    let sql = format!("DELETE FROM {table} WHERE n IS NOT NULL\0 AND n = 2");
    let result = conn.execute(sql.as_str(), ()).await.map(|r| r.rowcount());
    report(format!(
        "bad input {label}: a NUL byte inside the SQL text: {result:?}"
    ));
    match &result {
        Ok(deleted) => panic!(
            "SQL text with a NUL byte ran as the part before the NUL: it deleted {deleted} rows instead of 1"
        ),
        Err(e) => assert!(
            !e.is_connection_lost() && !e.is_closed(),
            "a NUL byte in the SQL text was reported as {e:?}, and the connection was discarded"
        ),
    }
    let left: i64 = conn
        .scalar(
            format!("SELECT count(*) FROM {table} WHERE n IS NOT NULL"),
            (),
        )
        .await
        .unwrap();
    assert_eq!(left, 2, "rows were lost");
    conn.execute(format!("DELETE FROM {table} WHERE n = 2"), ())
        .await
        .unwrap();
}

/// Bad input that must fail clearly without side effects, on any backend.
async fn bad_statements(conn: &Connection, table: &str, label: &str) {
    for sql in ["", "   ", "-- only a comment"] {
        match conn.execute(sql, ()).await {
            Err(err) => {
                report(format!("bad input {label}: empty SQL {sql:?}: {err}"));
                assert!(err.is_database(), "{err:?}");
            }
            // PostgreSQL itself answers an empty query with an empty result.
            Ok(result) if label == "postgres" => {
                report(format!("bad input {label}: empty SQL {sql:?}: an empty result, as the server answers it"));
                assert!(!result.returns_rows() && result.rowcount() == 0);
            }
            Ok(result) => panic!("empty SQL {sql:?} succeeded: {} rows", result.rowcount()),
        }
        unchanged(conn, table, "after empty SQL").await;
    }

    let two = format!("INSERT INTO {table} (n) VALUES (10); INSERT INTO {table} (n) VALUES (11)");
    let err = conn
        .execute(two.as_str(), ())
        .await
        .map(|r| r.rowcount())
        .unwrap_err();
    report(format!(
        "bad input {label}: two statements in one string: {err}"
    ));
    assert!(err.is_database(), "{err:?}");
    unchanged(conn, table, "after two statements in one string").await;

    for params in [
        vec![sqlaio::Value::from(1i64)],
        vec![1i64.into(), 2i64.into(), 3i64.into()],
    ] {
        let given = params.len();
        let err = conn
            .execute(
                format!("INSERT INTO {table} (n, s) VALUES ($1, $2)"),
                params,
            )
            .await
            .map(|r| r.rowcount())
            .unwrap_err();
        report(format!(
            "bad input {label}: {given} parameters for 2: {err}"
        ));
        assert!(
            matches!(err, Error::ParameterCount { expected: 2, given: g } if g == given),
            "{err:?}"
        );
        unchanged(conn, table, "after a parameter count mismatch").await;
    }
}

/// A 64 MiB blob goes in and comes back byte for byte.
async fn big_blob_round_trip(conn: &Connection, table: &str, label: &str) {
    let data = blob(BIG_BLOB);
    let started = Instant::now();
    conn.execute(
        format!("INSERT INTO {table} (b) VALUES ($1)"),
        (data.clone(),),
    )
    .await
    .unwrap();
    let back: Vec<u8> = conn
        .scalar(format!("SELECT b FROM {table} WHERE b IS NOT NULL"), ())
        .await
        .unwrap();
    assert!(
        back == data,
        "the 64 MiB blob came back different ({} bytes)",
        back.len()
    );
    report(format!(
        "bad input {label}: a 64 MiB blob round-tripped in {}",
        ms(started.elapsed())
    ));
    conn.execute(format!("DELETE FROM {table} WHERE b IS NOT NULL"), ())
        .await
        .unwrap();
}

/// `execute_many` with `sets` parameter sets: the right rowcount, every row
/// in; then a batch that fails on its last set leaves nothing behind.
async fn many(conn: &Connection, table: &str, sets: i64, label: &str) {
    let insert = format!("INSERT INTO {table} (k, v) VALUES ($1, $2)");
    let started = Instant::now();
    let result = conn
        .execute_many(insert.as_str(), (0..sets).map(|k| (k, k * 2)))
        .await
        .unwrap();
    assert_eq!(result.rowcount(), sets as u64);
    drop(result);
    let took = started.elapsed();
    let (n, sum): (i64, i64) = {
        let row = conn
            .execute(
                format!("SELECT count(*), CAST(sum(v) AS BIGINT) FROM {table}"),
                (),
            )
            .await
            .unwrap()
            .first()
            .await
            .unwrap()
            .unwrap();
        (row.get(0).unwrap(), row.get(1).unwrap())
    };
    assert_eq!((n, sum), (sets, sets * (sets - 1)));
    report(format!(
        "bad input {label}: execute_many of {sets} parameter sets: rowcount {sets} in {}",
        ms(took)
    ));
    // A batch whose last set breaks the key: all or nothing.
    let failing = conn
        .execute_many(
            insert.as_str(),
            (sets..sets + 1000).chain([0]).map(|k| (k, k)),
        )
        .await
        .map(|r| r.rowcount())
        .unwrap_err();
    assert!(failing.is_database(), "{failing:?}");
    let n: i64 = conn
        .scalar(format!("SELECT count(*) FROM {table}"), ())
        .await
        .unwrap();
    assert_eq!(n, sets, "a failed batch left rows behind");
}

/// Empty SQL, two statements in one string, wrong parameter counts, NUL
/// bytes, a 64 MiB blob and a million-set `execute_many` on a SQLite file:
/// clear errors or correct results, nothing lost, the connection usable.
async fn bad_input_sqlite(ctx: Ctx) {
    let engine = Engine::builder()
        .url(ctx.url().to_owned())
        .max_connections(1)
        .build()
        .unwrap();
    let conn = engine.connect().await.unwrap();
    conn.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, s TEXT, b BLOB)",
        (),
    )
    .await
    .unwrap();
    conn.execute("INSERT INTO t (n) VALUES (1)", ())
        .await
        .unwrap();
    bad_statements(&conn, "t", "sqlite").await;

    // NUL bytes inside text round-trip; inside the SQL text they are refused.
    let text = "a\0b\0";
    let id = conn
        .execute("INSERT INTO t (s) VALUES ($1)", (text,))
        .await
        .unwrap()
        .last_insert_id()
        .unwrap();
    let back: String = conn
        .scalar("SELECT s FROM t WHERE id = $1", (id,))
        .await
        .unwrap();
    assert_eq!(back, text);
    conn.execute("DELETE FROM t WHERE id = $1", (id,))
        .await
        .unwrap();
    unchanged(&conn, "t", "after NUL bytes").await;

    big_blob_round_trip(&conn, "t", "sqlite").await;
    unchanged(&conn, "t", "after the blob").await;

    conn.execute("CREATE TABLE m (k INTEGER PRIMARY KEY, v INTEGER)", ())
        .await
        .unwrap();
    many(&conn, "m", MANY_SQLITE, "sqlite").await;
    unchanged(&conn, "t", "after execute_many").await;
    assert_eq!(conn.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
    nul_in_sql(&conn, "t", "sqlite").await;
    drop(conn);
    engine.close().await.unwrap();
}

#[cfg(feature = "postgres")]
/// The same on PostgreSQL; NUL bytes in text are refused with a clear error.
async fn bad_input_postgres(ctx: Ctx) {
    let url = ctx.url().to_owned();
    let t = pg::unique("rel_bad");
    let m = pg::unique("rel_bad_many");
    // Without TLS: reading a 64 MiB value through tokio-native-tls is slow
    // and leaves the connection slow (docs/limitations.md).
    let plain = format!(
        "{url}{}sslmode=disable",
        if url.contains('?') { '&' } else { '?' }
    );
    let engine = Engine::builder()
        .url(&plain)
        .max_connections(1)
        .build()
        .unwrap();
    let conn = engine.connect().await.unwrap();
    conn.execute(
        format!("CREATE TABLE {t} (id BIGSERIAL PRIMARY KEY, n BIGINT, s TEXT, b BYTEA)"),
        (),
    )
    .await
    .unwrap();
    conn.execute(format!("INSERT INTO {t} (n) VALUES (1)"), ())
        .await
        .unwrap();
    bad_statements(&conn, &t, "postgres").await;

    let err = conn
        .execute(format!("INSERT INTO {t} (s) VALUES ($1)"), ("a\0b",))
        .await
        .map(|r| r.rowcount())
        .unwrap_err();
    report(format!(
        "bad input postgres: NUL in a text parameter: {err}"
    ));
    let text = err.to_string().to_lowercase();
    assert!(
        text.contains("0x00") || text.contains("nul"),
        "unclear error: {err}"
    );
    unchanged(&conn, &t, "after NUL bytes").await;

    conn.execute(
        format!("CREATE TABLE {m} (k BIGINT PRIMARY KEY, v BIGINT)"),
        (),
    )
    .await
    .unwrap();
    many(&conn, &m, MANY_POSTGRES, "postgres").await;
    unchanged(&conn, &t, "after execute_many").await;

    // The connection that read a 64 MiB value keeps its pace afterwards:
    // 2,000 small statements take one to four seconds in a debug build
    // on a busy machine; the bound only catches a slowdown of ten times
    // and more.
    let quick = |what: &'static str| {
        let conn = &conn;
        let t = t.clone();
        async move {
            let (_, took) = bounded(what, Duration::from_secs(30), async {
                for _ in 0..QUICK_STATEMENTS {
                    unchanged(conn, &t, what).await;
                }
            })
            .await;
            report(format!(
                "bad input postgres: {what}: {QUICK_STATEMENTS} statements in {}",
                ms(took)
            ));
        }
    };
    quick("before the blob").await;
    big_blob_round_trip(&conn, &t, "postgres").await;
    unchanged(&conn, &t, "after the blob").await;
    quick("after reading back a 64 MiB blob").await;
    nul_in_sql(&conn, &t, "postgres").await;
    drop(conn);
    engine.close().await.unwrap();
}
