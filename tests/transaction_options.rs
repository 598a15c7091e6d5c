//! Transactions with options (`begin_with`) and the retrying
//! `Engine::transaction`, on SQLite and (when its server answers, or always
//! under `CI=true`) PostgreSQL.
#![cfg(feature = "sqlite")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use futures::executor::block_on;
use sqlaio::{Engine, Error, ErrorKind, IsolationLevel, Locking, TxOptions};

fn sqlite() -> Engine {
    let engine = Engine::builder().url("sqlite::memory:").build().unwrap();
    block_on(engine.execute(
        "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)",
        (),
    ))
    .unwrap();
    block_on(engine.execute("INSERT INTO counter VALUES (1, 0)", ())).unwrap();
    engine
}

async fn count(engine: &Engine) -> i64 {
    engine
        .scalar("SELECT n FROM counter WHERE id = 1", ())
        .await
        .unwrap()
}

#[test]
fn a_transaction_commits_on_ok_and_rolls_back_on_an_error_or_a_panic() {
    let engine = sqlite();
    block_on(async {
        let n = engine
            .transaction(|tx| async move {
                tx.execute("UPDATE counter SET n = n + 1", ()).await?;
                tx.scalar::<i64>("SELECT n FROM counter", ()).await
            })
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(count(&engine).await, 1);

        let err = engine
            .transaction(|tx| async move {
                tx.execute("UPDATE counter SET n = n + 1", ()).await?;
                Err::<(), _>(Error::NoRows)
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NoRows), "{err}");
        assert_eq!(count(&engine).await, 1, "rolled back");

        let err = engine
            .transaction(|tx| async move {
                tx.execute("UPDATE counter SET n = n + 1", ()).await?;
                if tx.is_active() {
                    panic!("a bug in the transaction's code");
                }
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(err.is_panic(), "{err}");
        assert_eq!(count(&engine).await, 1, "rolled back after the panic");
        // The engine keeps working.
        assert_eq!(engine.pool_status().in_use, 0);
        engine.close().await.unwrap();
    });
}

#[test]
fn a_retryable_error_runs_the_transaction_again_up_to_the_limit() {
    let engine = sqlite();
    let attempts = Arc::new(AtomicU32::new(0));
    block_on(async {
        // Fails as a lock timeout twice, then succeeds: three attempts.
        let seen = attempts.clone();
        engine
            .transaction(|tx| {
                let seen = seen.clone();
                async move {
                    tx.execute("UPDATE counter SET n = n + 1", ()).await?;
                    if seen.fetch_add(1, Ordering::SeqCst) < 2 {
                        // A busy database, as another process holding the write lock makes it.
                        return Err(locked());
                    }
                    Ok(())
                }
            })
            .await
            .unwrap();
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        assert_eq!(count(&engine).await, 1, "only the last attempt committed");

        // A limit of 2 gives up with the error after two attempts.
        attempts.store(0, Ordering::SeqCst);
        let seen = attempts.clone();
        let err = engine
            .transaction_with(TxOptions::new().max_attempts(2), |_tx| {
                seen.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(locked()) }
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LockTimeout);
        assert_eq!(attempts.load(Ordering::SeqCst), 2);

        // An error that is not retryable runs once.
        attempts.store(0, Ordering::SeqCst);
        let seen = attempts.clone();
        let _ = engine
            .transaction(|_tx| {
                seen.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(Error::NoRows) }
            })
            .await;
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        engine.close().await.unwrap();
    });
}

/// A real "database is locked" error, from SQLite itself.
fn locked() -> Error {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let holder = sqlaio::rusqlite::Connection::open(&path).unwrap();
    holder
        .execute_batch("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
        .unwrap();
    let other = sqlaio::rusqlite::Connection::open(&path).unwrap();
    other.busy_timeout(std::time::Duration::ZERO).unwrap();
    Error::from(other.execute_batch("INSERT INTO t VALUES (2)").unwrap_err())
}

#[test]
fn read_only_and_deferred_transactions_on_sqlite() {
    let engine = sqlite();
    block_on(async {
        let tx = engine
            .begin_with(TxOptions::new().read_only(true))
            .await
            .unwrap();
        let err = tx
            .execute("UPDATE counter SET n = 5", ())
            .await
            .map(drop)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReadOnly, "{err}");
        assert_eq!(
            tx.scalar::<i64>("SELECT n FROM counter", ()).await.unwrap(),
            0
        );
        tx.commit().await.unwrap();
        // The connection is writable again once the read-only transaction ended.
        engine
            .transaction(|tx| async move {
                tx.execute("UPDATE counter SET n = 7", ()).await?;
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(count(&engine).await, 7);
        let tx = engine
            .begin_with(
                TxOptions::new()
                    .locking(Locking::Exclusive)
                    .isolation(IsolationLevel::Serializable),
            )
            .await
            .unwrap();
        tx.execute("UPDATE counter SET n = 8", ()).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count(&engine).await, 8);
        engine.close().await.unwrap();
    });
}

#[cfg(feature = "tokio")]
#[test]
fn a_transaction_future_can_be_spawned_on_a_multi_thread_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let engine = Engine::builder()
            .url("sqlite::memory:")
            .strategy(sqlaio::TokioStrategy)
            .build()
            .unwrap();
        let task = tokio::spawn({
            let engine = engine.clone();
            async move {
                engine
                    .transaction(|tx| async move { tx.scalar::<i64>("SELECT 41 + 1", ()).await })
                    .await
            }
        });
        assert_eq!(task.await.unwrap().unwrap(), 42);
        engine.close().await.unwrap();
    });
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    fn url() -> Option<String> {
        let url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| "postgres://root@127.0.0.1:5432/test".into());
        let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        let answer = block_on(async {
            let engine = Engine::builder().url(&url).build()?;
            let one = engine.scalar::<i64>("SELECT 1", ()).await;
            engine.close().await?;
            one
        });
        match answer {
            Ok(_) => Some(url),
            Err(e) if ci => panic!("no PostgreSQL server under CI=true: {e}"),
            Err(e) => {
                eprintln!("transaction_options: PostgreSQL skipped: {e}");
                None
            }
        }
    }

    /// Two serializable read-modify-write transactions on one row: one of
    /// them fails with a serialization failure, is run again, and both
    /// increments land.
    #[test]
    fn a_serialization_failure_is_retried_and_every_increment_lands() {
        let Some(url) = url() else { return };
        let table = format!("sqlaio_retry_{}", std::process::id());
        block_on(async {
            let engine = Engine::builder()
                .url(&url)
                .max_connections(4)
                .build()
                .unwrap();
            engine
                .execute(
                    format!("CREATE TABLE {table} (id int PRIMARY KEY, n int)"),
                    (),
                )
                .await
                .unwrap();
            engine
                .execute(format!("INSERT INTO {table} VALUES (1, 0)"), ())
                .await
                .unwrap();
            let attempts = Arc::new(AtomicU32::new(0));
            let both_read = Arc::new(tokio::sync::Barrier::new(2));
            let run = |who: u32| {
                let (engine, table, attempts, both_read) = (
                    engine.clone(),
                    table.clone(),
                    attempts.clone(),
                    both_read.clone(),
                );
                async move {
                    let options = TxOptions::new()
                        .isolation(IsolationLevel::Serializable)
                        .max_attempts(5);
                    engine
                        .transaction_with(options, |tx| {
                            let (attempts, both_read, table) =
                                (attempts.clone(), both_read.clone(), table.clone());
                            async move {
                                let first = attempts.fetch_add(1, Ordering::SeqCst) < 2;
                                let n: i64 = tx
                                    .scalar(format!("SELECT n FROM {table} WHERE id = 1"), ())
                                    .await?;
                                if first {
                                    // Both first attempts read before either writes.
                                    both_read.wait().await;
                                }
                                tx.execute(
                                    format!("UPDATE {table} SET n = $1 WHERE id = 1"),
                                    (n + 1,),
                                )
                                .await?;
                                Ok(who)
                            }
                        })
                        .await
                }
            };
            let (a, b) = futures::join!(run(1), run(2));
            assert_eq!((a.unwrap(), b.unwrap()), (1, 2));
            assert!(
                attempts.load(Ordering::SeqCst) >= 3,
                "no attempt was retried"
            );
            let n: i64 = engine
                .scalar(format!("SELECT n FROM {table} WHERE id = 1"), ())
                .await
                .unwrap();
            assert_eq!(n, 2, "both increments landed");
            engine
                .execute(format!("DROP TABLE {table}"), ())
                .await
                .unwrap();
            engine.close().await.unwrap();
        });
    }

    #[test]
    fn read_only_deferrable_serializable_on_postgres() {
        let Some(url) = url() else { return };
        block_on(async {
            let engine = Engine::builder().url(&url).build().unwrap();
            let tx = engine
                .begin_with(
                    TxOptions::new()
                        .isolation(IsolationLevel::Serializable)
                        .read_only(true)
                        .deferrable(true),
                )
                .await
                .unwrap();
            let level: String = tx.scalar("SHOW transaction_isolation", ()).await.unwrap();
            assert_eq!(level, "serializable");
            let err = tx
                .execute("CREATE TABLE sqlaio_never (x int)", ())
                .await
                .map(drop)
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ReadOnly, "{err}");
            tx.rollback().await.unwrap();
            engine.close().await.unwrap();
        });
    }
}
