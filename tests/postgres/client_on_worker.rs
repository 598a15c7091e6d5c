//! The sync `postgres::Client` runs its own `block_on` inside every call
//! and inside `Drop`, so it panics on an executor thread: sqlaio creates,
//! uses and drops it only on its worker. Queries, transactions, streams,
//! raw calls, dropped connections and engines, and a failed connect, under
//! every runtime; afterwards the server lists none of the connections, and
//! no runtime panicked.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use sqlaio::{Engine, Error, Result, Strategy};

use crate::common::pg::{self, unique, with_option, Scratch};
use crate::common::Ctx;

stamp! {
    runtimes: each, backends: [postgres];
    keeps_the_client_on_its_worker,
}

/// On the server's own URL (not the test's schema), whose connections this
/// test tells apart by their `application_name`.
async fn keeps_the_client_on_its_worker(ctx: Ctx) -> Result<()> {
    let url = pg::database_url();
    exercise_runtime(&url, ctx.strategy(), ctx.runtime.name()).await
}

/// `ThreadStrategy` awaited on a tokio runtime's thread: the engine's
/// workers are plain threads, the awaiting task is tokio's.
#[tokio::test]
async fn thread_strategy_under_tokio_keeps_the_client_on_its_worker() {
    let name = "thread_strategy_under_tokio_keeps_the_client_on_its_worker";
    let Some(url) = pg::server(name) else {
        return;
    };
    let strategy: Arc<dyn Strategy> = Arc::new(sqlaio::ThreadStrategy);
    if let Err(e) = pg::bounded(name, exercise_runtime(&url, strategy, "thread_tokio")).await {
        panic!("{name} failed: {e}\n{e:?}");
    }
}

/// Runs queries, transactions, streams and raw calls on an engine with
/// `strategy`, drops connections and engines from the async side, and checks
/// that every backend connection closed and that no runtime panicked.
async fn exercise_runtime(url: &str, strategy: Arc<dyn Strategy>, tag: &str) -> Result<()> {
    pg::record_panics();
    let app = unique(&format!("rt_{tag}"));
    let app_url = with_option(url, &format!("application_name={app}"));
    let scratch = Scratch::new(url);
    let t = scratch.table(&format!("rt_{tag}"));
    let insert = format!("INSERT INTO {t} VALUES ($1)");
    let count_sql = format!("SELECT count(*) FROM {t}");

    let engine = Engine::builder()
        .url(&app_url)
        .strategy_arc(strategy.clone())
        .max_connections(3)
        .build()?;
    assert_eq!(engine.scalar::<i32>("SELECT 1", ()).await?, 1);

    let conn = engine.connect().await?;
    conn.execute(format!("CREATE TABLE {t} (id int8 PRIMARY KEY)"), ())
        .await?;
    conn.execute_many(&insert, (1..=3i64).map(|i| (i,))).await?;
    {
        let tx = conn.begin().await?;
        tx.execute(&insert, (4i64,)).await?;
        // Dropped: rolled back.
    }
    assert_eq!(conn.scalar::<i64>(&count_sql, ()).await?, 3);
    // A stream dropped unfinished.
    let mut rows = conn
        .execute("SELECT generate_series(1, 100000) AS n", ())
        .await?;
    assert!(rows.try_next().await?.is_some());
    drop(rows);
    // The raw client, on its worker.
    let two = conn
        .run_in_thread(|client: &mut sqlaio::postgres::Client| {
            let row = client.query_one("SELECT 2::int4", &[])?;
            Ok::<i32, Error>(row.get(0))
        })
        .await?;
    assert_eq!(two, 2);
    drop(conn);

    // An engine transaction dropped with its connection, uncommitted.
    let tx = engine.begin().await?;
    tx.execute(&insert, (5i64,)).await?;
    drop(tx);
    // Concurrent work on several connections.
    let (a, b, c) = futures::join!(
        engine.scalar::<i32>("SELECT 1", ()),
        engine.scalar::<i32>("SELECT 2", ()),
        engine.scalar::<i64>(&count_sql, ()),
    );
    assert_eq!((a?, b?, c?), (1, 2, 3));

    // A connection still out when the last engine handle goes.
    let held = engine.connect().await?;
    drop(engine.clone());
    assert_eq!(held.scalar::<i32>("SELECT 3", ()).await?, 3);
    held.close().await?;
    drop(held);

    // A failed connect, on this strategy.
    let unreachable = Engine::builder()
        .url("postgres://root@127.0.0.1:1/test?connect_timeout=2")
        .strategy_arc(strategy.clone())
        .acquire_timeout(Duration::from_secs(1))
        .build()?;
    let e = unreachable.connect().await.unwrap_err();
    assert!(is_connect_failure(&e), "{e:?}");
    unreachable.close().await?;
    drop(unreachable);

    engine.close().await?;
    assert_eq!(engine.worker_count(), 0, "close joins every worker");
    assert!(engine
        .execute("SELECT 1", ())
        .await
        .unwrap_err()
        .is_closed());
    drop(engine);

    // An engine dropped without close, while one of its connections is out.
    let dropped = Engine::builder()
        .url(&app_url)
        .strategy_arc(strategy.clone())
        .max_connections(2)
        .build()?;
    assert_eq!(dropped.scalar::<i32>("SELECT 4", ()).await?, 4);
    let last = dropped.connect().await?;
    drop(dropped);
    assert_eq!(last.scalar::<i32>("SELECT 5", ()).await?, 5);
    drop(last);

    // Every client was dropped (on its worker): the server sees none left.
    let watcher = Engine::builder().url(url).max_connections(1).build()?;
    pg::eventually(
        "the dropped engines' connections close",
        Duration::from_secs(15),
        || {
            let watcher = watcher.clone();
            let app = app.clone();
            async move {
                let open: i64 = watcher
                    .scalar(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                        (app,),
                    )
                    .await?;
                Ok(open == 0)
            }
        },
    )
    .await?;
    watcher.close().await?;
    pg::assert_no_runtime_panics();
    Ok(())
}

/// A failed connect: reported at once, or (refused connections being retried
/// until the acquire timeout) as a pool timeout that carries the connect error.
fn is_connect_failure(e: &Error) -> bool {
    match e {
        Error::Connect { .. } => true,
        Error::PoolTimeout {
            last_connect_error: Some(inner),
        } => matches!(**inner, Error::Connect { .. }),
        _ => false,
    }
}
