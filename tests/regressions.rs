//! Cases found in review, each pinned by a test.
#![cfg(feature = "sqlite")]

use futures::executor::block_on;
use sqlaio::{Engine, Error};

fn engine() -> Engine {
    Engine::builder().url("sqlite::memory:").build().unwrap()
}

const SERIES: &str =
    "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?1) \
                      SELECT n FROM s";

/// A fetch from an older, closed result fails alone; the newer result keeps its rows.
#[test]
fn a_stale_fetch_does_not_close_the_newer_result() {
    block_on(async {
        let engine = engine();
        let conn = engine.connect().await.unwrap();
        let mut older = conn.execute(SERIES, (1000,)).await.unwrap();
        assert_eq!(older.fetchmany(10).await.unwrap().len(), 10);
        // Leaves about 744 rows unread in the first batch of 256 plus more on the worker.
        let mut newer = conn.execute(SERIES, (1000,)).await.unwrap();
        assert_eq!(newer.fetchmany(300).await.unwrap().len(), 300);
        let stale = older.fetchall().await;
        assert!(matches!(stale, Err(Error::Closed(_))), "{stale:?}");
        let rest = newer.fetchall().await.unwrap();
        assert_eq!(rest.len(), 700);
        assert_eq!(rest[0].get::<i64>(0).unwrap(), 301);
    });
}

/// `begin_nested` inside a transaction begun with SQL is a savepoint: ending
/// it leaves the outer transaction alone.
#[test]
fn a_savepoint_inside_a_sql_transaction_ends_only_itself() {
    block_on(async {
        let engine = engine();
        let conn = engine.connect().await.unwrap();
        conn.execute("CREATE TABLE t (x INTEGER)", ())
            .await
            .unwrap();
        conn.execute("BEGIN", ()).await.unwrap();
        conn.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        let nested = conn.begin_nested().await.unwrap();
        nested
            .execute("INSERT INTO t VALUES (2)", ())
            .await
            .unwrap();
        nested.rollback().await.unwrap();
        assert!(
            conn.in_transaction(),
            "the outer transaction must still be open"
        );
        let nested = conn.begin_nested().await.unwrap();
        nested
            .execute("INSERT INTO t VALUES (3)", ())
            .await
            .unwrap();
        nested.commit().await.unwrap();
        assert!(
            conn.in_transaction(),
            "releasing the savepoint must not commit"
        );
        conn.execute("COMMIT", ()).await.unwrap();
        let mut result = conn
            .execute("SELECT x FROM t ORDER BY x", ())
            .await
            .unwrap();
        let xs: Vec<i64> = result
            .fetchall()
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        assert_eq!(xs, [1, 3]);
    });
}

/// A batch of queries changes no rows, whatever the last write before it did.
#[test]
fn execute_many_of_queries_counts_no_rows() {
    block_on(async {
        let engine = engine();
        let conn = engine.connect().await.unwrap();
        conn.execute("CREATE TABLE t (x INTEGER)", ())
            .await
            .unwrap();
        conn.execute_many("INSERT INTO t VALUES (?1)", [(1,), (2,), (3,)])
            .await
            .unwrap();
        let queried = conn
            .execute_many("SELECT x FROM t WHERE x = ?1", [(1,), (2,)])
            .await
            .unwrap();
        assert_eq!(queried.rowcount(), 0);
        let deleted = conn
            .execute_many("DELETE FROM t WHERE x = ?1", [(1,), (9,)])
            .await
            .unwrap();
        assert_eq!(deleted.rowcount(), 1);
    });
}

/// A connection that engine statements keep busy (they queue on it, and
/// one of them is always still to be answered) stops taking more once it is
/// past `max_lifetime`: later statements wait for it to go back to the pool,
/// which replaces it.
#[test]
fn a_shared_connection_takes_no_more_statements_after_max_lifetime() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    block_on(async {
        let opened = Arc::new(AtomicUsize::new(0));
        let counter = opened.clone();
        let engine = Engine::builder()
            .url("sqlite::memory:")
            .max_connections(1)
            .max_lifetime(Duration::from_millis(100))
            .after_connect(move |_: &mut sqlaio::rusqlite::Connection| {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .build()
            .unwrap();
        assert_eq!(engine.scalar::<i64>("SELECT 0", ()).await.unwrap(), 0);
        // Sent, and left unanswered: it keeps its place on the connection.
        // (Its caller may find the answer before its first poll returns;
        // then it holds nothing, and is sent again.)
        let mut tries = 0;
        let held = loop {
            let mut held = Box::pin(engine.scalar::<i64>("SELECT 1", ()));
            if futures::poll!(held.as_mut()).is_pending() {
                break held;
            }
            tries += 1;
            assert!(
                tries < 100,
                "every statement was answered within its first poll"
            );
        };
        assert_eq!(engine.scalar::<i64>("SELECT 2", ()).await.unwrap(), 2);
        assert_eq!(engine.pool_status().waiting, 0);
        std::thread::sleep(Duration::from_millis(150));
        let mut late = Box::pin(engine.scalar::<i64>("SELECT 3", ()));
        assert!(futures::poll!(late.as_mut()).is_pending());
        assert_eq!(engine.pool_status().waiting, 1);
        assert_eq!(held.await.unwrap(), 1);
        assert_eq!(late.await.unwrap(), 3);
        assert_eq!(opened.load(Ordering::SeqCst), 2);
        engine.close().await.unwrap();
    });
}
