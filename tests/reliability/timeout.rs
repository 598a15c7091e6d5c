//! Timeouts: the same statements past a 200 ms statement timeout.

use sqlaio::{Engine, Sql};

#[cfg(feature = "postgres")]
use crate::common::pg;
use crate::common::Ctx;
use crate::*;

stamp! {
    runtimes: each, backends: [file];
    timeout_sqlite,
}

#[cfg(feature = "postgres")]
stamp! {
    runtimes: each, backends: [postgres];
    timeout_postgres,
}

/// The endless SQLite query fails with `is_timeout()` under a 200 ms
/// statement timeout set on the builder, and under one set per call; the
/// connection answers right after.
async fn timeout_sqlite(ctx: Ctx) {
    let url = ctx.url().to_owned();
    let with_timeout = Engine::builder()
        .url(&url)
        .strategy_arc(ctx.strategy())
        .max_connections(1)
        .statement_timeout(TIMEOUT)
        .build()
        .unwrap();
    let without = Engine::builder()
        .url(&url)
        .strategy_arc(ctx.strategy())
        .max_connections(1)
        .build()
        .unwrap();

    let conn = with_timeout.connect().await.unwrap();
    let (err, took) = bounded(
        "a statement past the builder's timeout",
        PROMPT,
        conn.scalar::<i64>(ENDLESS_SQLITE, ()),
    )
    .await;
    let err = err.unwrap_err();
    assert!(err.is_timeout(), "expected a timeout, got {err:?}");
    report(format!(
        "timeout sqlite {} builder: is_timeout() after {} (timeout {})",
        ctx.runtime.name(),
        ms(took),
        ms(TIMEOUT)
    ));
    let (answer, _) = bounded(
        "the call after a timeout",
        PROMPT,
        conn.scalar::<i64>("SELECT 11", ()),
    )
    .await;
    assert_eq!(answer.unwrap(), 11i64);
    drop(conn);
    // Through the pool too.
    let (err, _) = bounded(
        "an engine statement past the builder's timeout",
        PROMPT,
        with_timeout.scalar::<i64>(ENDLESS_SQLITE, ()),
    )
    .await;
    assert!(err.unwrap_err().is_timeout());
    assert_eq!(
        with_timeout.scalar::<i64>("SELECT 12", ()).await.unwrap(),
        12
    );

    let conn = without.connect().await.unwrap();
    let (err, took) = bounded(
        "a statement past its own timeout",
        PROMPT,
        conn.scalar::<i64>(Sql::new(ENDLESS_SQLITE).timeout(TIMEOUT), ()),
    )
    .await;
    let err = err.unwrap_err();
    assert!(err.is_timeout(), "expected a timeout, got {err:?}");
    report(format!(
        "timeout sqlite {} per call: is_timeout() after {}",
        ctx.runtime.name(),
        ms(took)
    ));
    let (answer, _) = bounded(
        "the call after a timeout",
        PROMPT,
        conn.scalar::<i64>("SELECT 13", ()),
    )
    .await;
    assert_eq!(answer.unwrap(), 13i64);
    drop(conn);

    with_timeout.close().await.unwrap();
    without.close().await.unwrap();
    assert_eq!(with_timeout.worker_count() + without.worker_count(), 0);
}

#[cfg(feature = "postgres")]
/// `pg_sleep(30)` fails with `is_timeout()` under a 200 ms statement timeout
/// (builder and per call), is gone from `pg_stat_activity`, and the same
/// connection answers right after.
async fn timeout_postgres(ctx: Ctx) {
    let url = ctx.url().to_owned();
    let app = pg::unique(&format!("timeout_{}", ctx.runtime.name()));
    let app_url = pg_app_url(&url, &app);
    let with_timeout = Engine::builder()
        .url(&app_url)
        .strategy_arc(ctx.strategy())
        .max_connections(1)
        .statement_timeout(TIMEOUT)
        .build()
        .unwrap();
    let without = Engine::builder()
        .url(&app_url)
        .strategy_arc(ctx.strategy())
        .max_connections(1)
        .build()
        .unwrap();
    let observer = observer(&url);

    for (label, engine, sql) in [
        ("builder", &with_timeout, Sql::new(ENDLESS_POSTGRES)),
        (
            "per call",
            &without,
            Sql::new(ENDLESS_POSTGRES).timeout(TIMEOUT),
        ),
    ] {
        let conn = engine.connect().await.unwrap();
        let pid: i32 = conn.scalar("SELECT pg_backend_pid()", ()).await.unwrap();
        let (err, took) = bounded("pg_sleep past its timeout", PROMPT, conn.execute(sql, ())).await;
        let err = err.map(|_| ()).unwrap_err();
        assert!(err.is_timeout(), "expected a timeout, got {err:?}");
        report(format!(
            "timeout postgres {} {label}: is_timeout() after {}",
            ctx.runtime.name(),
            ms(took)
        ));
        let (answer, _) = bounded(
            "the call after a timeout",
            PROMPT,
            conn.scalar::<i64>("SELECT 21::bigint", ()),
        )
        .await;
        assert_eq!(answer.unwrap(), 21);
        let same: i32 = conn.scalar("SELECT pg_backend_pid()", ()).await.unwrap();
        assert_eq!(same, pid, "the connection was replaced");
        assert_eq!(active_sleeps(&observer, &app).await, 0);
    }
    with_timeout.close().await.unwrap();
    without.close().await.unwrap();
    observer.close().await.unwrap();
}
