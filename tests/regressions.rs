//! Cases found in review, each pinned by a test.

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
