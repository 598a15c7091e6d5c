//! Statements that return no rows run to their end in one call of the sync
//! client; they still report their row counts and errors, and a timeout
//! still cancels them. Unnamed statements (`prepared_statements=false`)
//! learn their column types from their first row and read every type as a
//! prepared statement does.
//!
//! The driver does not depend on the runtime: each body runs once.

use std::time::{Duration, Instant};

use sqlaio::{ErrorKind, Value};

use crate::common::pg::unique;
use crate::common::Ctx;

stamp! {
    runtimes: one, backends: [postgres];
    statements_without_result_columns_report_rows_and_errors,
    a_timeout_cancels_a_statement_without_result_columns,
    unnamed_statements_read_text_and_other_columns,
}

async fn statements_without_result_columns_report_rows_and_errors(ctx: Ctx) -> sqlaio::Result<()> {
    let t = unique("no_columns");
    let engine = ctx.engine();
    let conn = engine.connect().await?;
    conn.execute(
        format!("CREATE TABLE {t} (id int4 PRIMARY KEY, name text)"),
        (),
    )
    .await?;
    let insert = format!("INSERT INTO {t} VALUES ($1, $2)");
    for id in 1..=3 {
        let result = conn.execute(&insert, (id, "a")).await?;
        assert_eq!(result.rowcount(), 1);
        assert!(!result.returns_rows());
    }
    let updated = conn
        .execute(format!("UPDATE {t} SET name = $1 WHERE id >= $2"), ("b", 2))
        .await?;
    assert_eq!(updated.rowcount(), 2);
    drop(updated);
    let err = conn.execute(&insert, (1, "again")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation, "{err}");

    // Inside a transaction the failure aborts it, as any statement's does.
    let tx = conn.begin().await?;
    tx.execute(&insert, (4, "c")).await?;
    assert!(tx.execute(&insert, (4, "c")).await.is_err());
    let err = tx.commit().await.unwrap_err();
    assert!(matches!(err, sqlaio::Error::TransactionAborted), "{err:?}");
    let deleted = conn.execute(format!("DELETE FROM {t}"), ()).await?;
    assert_eq!(deleted.rowcount(), 3);
    drop(deleted);
    conn.execute(format!("DROP TABLE {t}"), ()).await?;
    conn.close().await?;
    engine.close().await
}

async fn a_timeout_cancels_a_statement_without_result_columns(ctx: Ctx) -> sqlaio::Result<()> {
    let engine = ctx.engine();
    let conn = engine.connect().await?;
    conn.set_statement_timeout(Some(Duration::from_millis(300)));
    let started = Instant::now();
    let err = conn
        .execute("DO $$ BEGIN PERFORM pg_sleep(30); END $$", ())
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "not cancelled");
    conn.set_statement_timeout(None);
    // The server stopped it: the connection serves the next statement.
    assert_eq!(conn.scalar::<i64>("SELECT 7", ()).await?, 7);
    conn.close().await?;
    engine.close().await
}

async fn unnamed_statements_read_text_and_other_columns(ctx: Ctx) -> sqlaio::Result<()> {
    let separator = if ctx.url().contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}prepared_statements=false", ctx.url());
    let engine = ctx.builder().url(url).build()?;
    let conn = engine.connect().await?;
    let rows = conn
        .execute(
            "SELECT g AS n, 'row ' || g AS label, NULL::text AS nothing, g * 0.5::float8 AS half \
             FROM generate_series(1, 3) g",
            (),
        )
        .await?
        .fetchall()
        .await?;
    assert_eq!(rows.len(), 3);
    for (i, row) in rows.iter().enumerate() {
        let n = i as i64 + 1;
        assert_eq!(row.get::<i64>("n")?, n);
        assert_eq!(row.get_value("label")?, &Value::Text(format!("row {n}")));
        assert_eq!(row.get_value("nothing")?, &Value::Null);
        assert_eq!(row.get::<f64>("half")?, n as f64 * 0.5);
    }
    // Text values do not leak from one row into the next when reused.
    let labels: Vec<String> = conn
        .execute(
            "SELECT x FROM (VALUES ('long text here'), ('s'), (NULL)) v(x)",
            (),
        )
        .await?
        .fetchall()
        .await?
        .iter()
        .map(|row| row.get::<Option<String>>(0).map(Option::unwrap_or_default))
        .collect::<sqlaio::Result<_>>()?;
    assert_eq!(labels, ["long text here", "s", ""]);
    conn.close().await?;
    engine.close().await
}
