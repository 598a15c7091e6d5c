//! Strategies and runtimes mixed: an engine built under one runtime and
//! awaited from another.

/// An engine built under tokio, with a connection opened there, is then
/// used from `futures::executor::block_on` on a plain thread.
#[cfg(all(feature = "tokio", feature = "sqlite"))]
#[test]
fn tokio_engine_awaited_from_a_plain_thread() {
    use futures::TryStreamExt;
    use sqlaio::{Engine, Error};

    use crate::support::*;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (engine, conn) = rt.block_on(async {
        let engine = Engine::builder()
            .url("sqlite::memory:")
            .strategy(sqlaio::TokioStrategy)
            .max_connections(3)
            .build()
            .unwrap();
        let conn = engine.connect().await.unwrap();
        conn.execute("CREATE TABLE t (x INTEGER)", ())
            .await
            .unwrap();
        // A second connection, left idle in the pool.
        let spare = engine.connect().await.unwrap();
        drop(spare);
        (engine, conn)
    });
    assert_eq!(engine.worker_count(), 2);

    let shared = engine.clone();
    std::thread::spawn(move || {
        futures::executor::block_on(async move {
            conn.execute("INSERT INTO t (x) VALUES ($1)", (20,))
                .await
                .unwrap();
            conn.execute_many("INSERT INTO t (x) VALUES ($1)", [(1,), (2,)])
                .await
                .unwrap();
            assert_eq!(count(&conn, "t").await, 3);
            let tx = conn.begin().await.unwrap();
            tx.execute("DELETE FROM t WHERE x = 1", ()).await.unwrap();
            tx.commit().await.unwrap();
            let rows: Vec<sqlaio::Row> = conn
                .execute(SERIES, (1000,))
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            assert_eq!(rows.len(), 1000);
            // The pooled idle connection serves this thread too.
            let sum: i64 = shared.scalar("SELECT sum(x) FROM t", ()).await.unwrap();
            assert_eq!(sum, 22);
            // Opening a new connection needs the tokio runtime: a clear error, no panic.
            let idle = shared.connect().await.unwrap();
            let err = shared.connect().await.unwrap_err();
            assert!(matches!(err, Error::Spawn(_)), "{err:?}");
            assert!(err.to_string().contains("tokio"), "{err}");
            drop(idle);
            drop(conn);
        })
    })
    .join()
    .expect("the plain thread's checks");

    rt.block_on(async {
        // The failed open gave its slot back: a third connection opens here.
        let a = engine.connect().await.unwrap();
        let b = engine.connect().await.unwrap();
        let c = engine.connect().await.unwrap();
        assert_eq!(count(&c, "t").await, 2);
        drop((a, b, c));
        engine.close().await.unwrap();
        assert_eq!(engine.worker_count(), 0);
    });
    drop(rt);
}
