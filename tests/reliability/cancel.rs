//! Cancellation: a dropped future interrupts its statement on the database.

use std::pin::pin;
#[cfg(feature = "postgres")]
use std::time::Instant;

use futures::future::{self, Either};
use sqlaio::Engine;

#[cfg(feature = "postgres")]
use crate::common::pg;
use crate::common::{nap, Ctx};
use crate::*;

stamp! {
    runtimes: each, backends: [file];
    cancel_sqlite,
}

#[cfg(feature = "postgres")]
stamp! {
    runtimes: each, backends: [postgres];
    cancel_postgres,
}

/// A long SQLite query dropped after 50 ms: the next call on the same
/// connection answers promptly with its own result, three times over; the
/// same through the engine's pool.
async fn cancel_sqlite(ctx: Ctx) {
    let engine = Engine::builder()
        .url(ctx.url().to_owned())
        .strategy_arc(ctx.strategy())
        .max_connections(1)
        .build()
        .unwrap();
    let conn = engine.connect().await.unwrap();
    for round in 1..=3i64 {
        let long = conn.scalar::<i64>(ENDLESS_SQLITE, ());
        if let Either::Left((answer, _)) = future::select(pin!(long), pin!(nap(CANCEL_AFTER))).await
        {
            panic!("the endless query answered: {answer:?}");
        }
        // Dropped: the statement is interrupted, and the connection is free.
        let (answer, took) = bounded(
            "the call after a dropped query",
            PROMPT,
            conn.scalar::<i64>("SELECT $1", (round,)),
        )
        .await;
        assert_eq!(answer.unwrap(), round, "the next call got another's answer");
        report(format!(
            "cancel sqlite {}: next call on the connection answered in {}",
            ctx.runtime.name(),
            ms(took)
        ));
    }
    drop(conn);

    // Through the pool: the engine's only connection is the one whose statement was dropped.
    let long = engine.scalar::<i64>(ENDLESS_SQLITE, ());
    if let Either::Left((answer, _)) = future::select(pin!(long), pin!(nap(CANCEL_AFTER))).await {
        panic!("the endless query answered: {answer:?}");
    }
    let (answer, took) = bounded(
        "the engine's call after a dropped query",
        PROMPT,
        engine.scalar::<i64>("SELECT 4", ()),
    )
    .await;
    assert_eq!(answer.unwrap(), 4);
    report(format!(
        "cancel sqlite {}: next call through the pool answered in {}",
        ctx.runtime.name(),
        ms(took)
    ));
    assert_eq!(engine.pool_status().size, 1);
    engine.close().await.unwrap();
    assert_eq!(engine.worker_count(), 0);
}

#[cfg(feature = "postgres")]
/// `SELECT pg_sleep(30)` dropped 50 ms after the server lists it as running,
/// ten times: the server stops it (`pg_stat_activity` no longer shows it),
/// the same backend serves the next call promptly with its own result, and
/// no cancel meant for an earlier statement hits the next `pg_sleep`.
async fn cancel_postgres(ctx: Ctx) {
    let url = ctx.url().to_owned();
    let app = pg::unique(&format!("cancel_{}", ctx.runtime.name()));
    let engine = Engine::builder()
        .url(pg_app_url(&url, &app))
        .strategy_arc(ctx.strategy())
        .max_connections(1)
        .build()
        .unwrap();
    let observer = observer(&url);
    let conn = engine.connect().await.unwrap();
    let pid: i32 = conn.scalar("SELECT pg_backend_pid()", ()).await.unwrap();
    for round in 1..=10i64 {
        let started = Instant::now();
        let sleeping = conn.execute(ENDLESS_POSTGRES, ());
        let seen = async {
            nap(CANCEL_AFTER).await;
            poll_until("the server lists pg_sleep as running", PROMPT, || async {
                active_sleeps(&observer, &app).await == 1
            })
            .await;
        };
        match future::select(pin!(sleeping), pin!(seen)).await {
            Either::Left((answer, _)) => panic!(
                "round {round}: pg_sleep(30) answered after {:?}, before its future was dropped: \
                 {answer:?} (a cancel request sent for an earlier statement hit this one)",
                started.elapsed()
            ),
            Either::Right(_) => {}
        }
        let dropped = Instant::now();
        if round % 2 == 1 {
            // The next call at once: it must not wait 30 s for the sleep.
            let (answer, took) = bounded(
                "the call after a dropped pg_sleep",
                PROMPT,
                conn.scalar::<i64>("SELECT $1::bigint", (round,)),
            )
            .await;
            assert_eq!(answer.unwrap(), round, "the next call got another's answer");
            report(format!(
                "cancel postgres {}: next call on the connection answered in {}",
                ctx.runtime.name(),
                ms(took)
            ));
            assert_eq!(active_sleeps(&observer, &app).await, 0);
        } else {
            // Nothing else sent: the server stops the statement on its own account.
            let took = poll_until("pg_stat_activity shows pg_sleep gone", PROMPT, || async {
                active_sleeps(&observer, &app).await == 0
            })
            .await;
            report(format!(
                "cancel postgres {}: pg_stat_activity shows the statement gone {} after the drop (polled every 10 ms)",
                ctx.runtime.name(),
                ms(took.max(dropped.elapsed()))
            ));
            let (answer, _) = bounded(
                "the call after a dropped pg_sleep",
                PROMPT,
                conn.scalar::<i64>("SELECT $1::bigint", (round,)),
            )
            .await;
            assert_eq!(answer.unwrap(), round);
        }
        // The same backend: the connection was kept, not replaced.
        let same: i32 = conn.scalar("SELECT pg_backend_pid()", ()).await.unwrap();
        assert_eq!(same, pid);
    }
    drop(conn);
    engine.close().await.unwrap();
    observer.close().await.unwrap();
    assert_eq!(engine.worker_count(), 0);
}
