//! `KILL QUERY` watched in the processlist: on a timeout, on a dropped
//! call, and on a large result closed early.

use super::*;

// ---------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------

#[test]
fn a_timeout_kills_the_statement_and_the_connection_answers_next() {
    run(
        "a_timeout_kills_the_statement_and_the_connection_answers_next",
        |url| async move {
            let observer = engine(&url)?;
            let engine = engine(&url)?;
            let conn = engine.connect().await?;
            let id: i64 = conn.scalar("SELECT CONNECTION_ID()", ()).await?;
            for sql in [
                "SELECT SLEEP(30)",
                // No error of its own when killed on MariaDB: still a timeout.
                "DO SLEEP(30)",
                "SELECT BENCHMARK(100000000000, MD5('x'))",
            ] {
                let err = conn
                    .execute(Sql::new(sql).timeout(Duration::from_millis(300)), ())
                    .await
                    .unwrap_err();
                assert!(err.is_timeout(), "{sql}: {err}");
                eventually(
                    "the statement is gone from the processlist",
                    Duration::from_secs(10),
                    || async { Ok(running(&observer, id).await? == 0) },
                )
                .await?;
                // The same connection, answering its own next call.
                assert_eq!(conn.scalar::<i64>("SELECT CONNECTION_ID()", ()).await?, id);
                assert_eq!(conn.scalar::<i64>("SELECT 7", ()).await?, 7);
            }
            drop(conn);
            observer.close().await?;
            engine.close().await
        },
    );
}

#[test]
fn dropping_a_running_call_kills_it_on_the_server() {
    run(
        "dropping_a_running_call_kills_it_on_the_server",
        |url| async move {
            let observer = engine(&url)?;
            let engine = engine(&url)?;
            let conn = engine.connect().await?;
            let id: i64 = conn.scalar("SELECT CONNECTION_ID()", ()).await?;
            let call = conn.execute("SELECT SLEEP(30)", ());
            assert!(tokio::time::timeout(Duration::from_millis(300), call)
                .await
                .is_err());
            eventually(
                "the statement is gone from the processlist",
                Duration::from_secs(10),
                || async { Ok(running(&observer, id).await? == 0) },
            )
            .await?;
            assert_eq!(conn.scalar::<i64>("SELECT CONNECTION_ID()", ()).await?, id);
            // Inside a transaction the kill stops the statement, not the transaction.
            conn.execute("CREATE TABLE k (id INT)", ()).await?;
            let tx = conn.begin().await?;
            tx.execute("INSERT INTO k VALUES (1)", ()).await?;
            let call = tx.execute("SELECT SLEEP(30)", ());
            assert!(tokio::time::timeout(Duration::from_millis(300), call)
                .await
                .is_err());
            tx.execute("INSERT INTO k VALUES (2)", ()).await?;
            tx.commit().await?;
            assert_eq!(conn.scalar::<i64>("SELECT COUNT(*) FROM k", ()).await?, 2);
            drop(conn);
            observer.close().await?;
            engine.close().await
        },
    );
}

#[test]
fn closing_a_large_result_early_does_not_read_it_all() {
    run(
        "closing_a_large_result_early_does_not_read_it_all",
        |url| async move {
            let engine = engine(&url)?;
            let conn = engine.connect().await?;
            conn.execute("CREATE TABLE k (n INT PRIMARY KEY)", ())
                .await?;
            conn.execute_many(
                "INSERT INTO k VALUES (?)",
                (0..1000).map(|n| (n,)).collect::<Vec<_>>(),
            )
            .await?;
            let id: i64 = conn.scalar("SELECT CONNECTION_ID()", ()).await?;
            // 10^12 rows: reading them all would never end, so closing returns
            // only if the statement was stopped.
            let mut result = conn
                .execute("SELECT a.n, b.n, c.n, d.n FROM k a, k b, k c, k d", ())
                .await?;
            let some = result.fetchmany(10).await?;
            assert_eq!(some.len(), 10);
            tokio::time::timeout(Duration::from_secs(60), result.close())
                .await
                .expect("closing the result did not return: it read every row")?;
            drop(result);
            assert_eq!(conn.scalar::<i64>("SELECT CONNECTION_ID()", ()).await?, id);
            // Dropping a result without closing it does the same.
            let mut result = conn
                .execute("SELECT a.n, b.n, c.n, d.n FROM k a, k b, k c, k d", ())
                .await?;
            assert_eq!(result.fetchmany(5).await?.len(), 5);
            drop(result);
            let answer =
                tokio::time::timeout(Duration::from_secs(60), conn.scalar::<i64>("SELECT 3", ()))
                    .await
                    .expect("the next call waited for every row of the dropped result")?;
            assert_eq!(answer, 3);
            assert_eq!(conn.scalar::<i64>("SELECT CONNECTION_ID()", ()).await?, id);
            drop(conn);
            engine.close().await
        },
    );
}
