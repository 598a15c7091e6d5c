//! The waiting policy: every `WaitPolicy` gives the same results, for one
//! caller and for many tasks sharing a few connections; only time and CPU
//! use differ.

use std::time::Duration;

use futures::future;
use futures::TryStreamExt;
use sqlaio::{Engine, WaitPolicy};

use crate::common::Ctx;
use crate::support::*;

stamp! {
    runtimes: each, backends: all;
    every_wait_policy_gives_the_same_results,
}

const POLICIES: [WaitPolicy; 4] = [
    WaitPolicy::Adaptive,
    WaitPolicy::Sleep,
    WaitPolicy::SpinAtMost(Duration::from_micros(20)),
    WaitPolicy::SpinAtMost(Duration::ZERO),
];

/// What one engine sees: a sum read back after single inserts, a batch and
/// a transaction; a streamed series; and the answers of tasks sharing its
/// connections.
async fn outcome(ctx: &Ctx, engine: &Engine, table: &str) -> (i64, Vec<i64>, Vec<i64>) {
    let backend = ctx.backend;
    engine
        .execute(format!("CREATE TABLE {table} (x INTEGER NOT NULL)"), ())
        .await
        .unwrap();
    let conn = engine.connect().await.unwrap();
    let insert = backend.sql(&format!("INSERT INTO {table} (x) VALUES ($1)"));
    for x in 1..=20 {
        conn.execute(insert.as_str(), (x,)).await.unwrap();
    }
    conn.execute_many(insert.as_str(), (21..=40).map(|x| (x,)))
        .await
        .unwrap();
    let tx = conn.begin().await.unwrap();
    tx.execute(insert.as_str(), (1000,)).await.unwrap();
    tx.commit().await.unwrap();
    let tx = conn.begin().await.unwrap();
    tx.execute(insert.as_str(), (5000,)).await.unwrap();
    tx.rollback().await.unwrap();
    let sum: i64 = conn
        .scalar(
            format!("SELECT CAST(sum(x) AS {}) FROM {table}", int8(backend)),
            (),
        )
        .await
        .unwrap();
    // More rows than the first batch: the rest are streamed.
    let series: Vec<i64> = conn
        .execute(recursive(backend, SERIES), (1000,))
        .await
        .unwrap()
        .try_collect::<Vec<sqlaio::Row>>()
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<i64>(0).unwrap())
        .collect();
    drop(conn);
    // Tasks outnumbering the connections: they queue for the pool and take
    // turns on busy connections.
    let tasks = (0..24i64).map(|task| {
        let engine = engine.clone();
        ctx.spawn(async move {
            let mut total = 0;
            for call in 0..10i64 {
                let echoed: i64 = engine
                    .scalar(echo(backend), (task * 100 + call,))
                    .await
                    .unwrap();
                total += echoed;
            }
            total
        })
    });
    let totals = future::join_all(tasks).await;
    (sum, series, totals)
}

async fn every_wait_policy_gives_the_same_results(ctx: Ctx) {
    let mut outcomes = Vec::new();
    for (i, policy) in POLICIES.into_iter().enumerate() {
        let engine = ctx
            .builder()
            .max_connections(3)
            .wait_policy(policy)
            .build()
            .unwrap();
        outcomes.push(outcome(&ctx, &engine, &format!("waited_{i}")).await);
        engine.close().await.unwrap();
        assert_eq!(engine.worker_count(), 0, "{policy:?}");
    }
    let (sum, series, totals) = &outcomes[0];
    assert_eq!(*sum, (1..=40).sum::<i64>() + 1000);
    assert_eq!(*series, (1..=1000).collect::<Vec<i64>>());
    assert_eq!(
        *totals,
        (0..24i64)
            .map(|task| (0..10).map(|call| task * 100 + call).sum::<i64>())
            .collect::<Vec<_>>()
    );
    for (policy, other) in POLICIES.iter().zip(&outcomes).skip(1) {
        assert_eq!(other, &outcomes[0], "{policy:?}");
    }
}
