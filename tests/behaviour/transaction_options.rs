//! Transactions with options (`begin_with`) and the retrying
//! `Engine::transaction`: commit on `Ok`, rollback on an error or a panic,
//! retries of retryable errors, read-only transactions, and a real
//! serialization failure retried until every increment lands.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use sqlaio::{Engine, Error, ErrorKind, IsolationLevel, Locking, TxOptions};

use crate::common::Ctx;

stamp! {
    runtimes: one, backends: all;
    a_transaction_commits_on_ok_and_rolls_back_on_an_error_or_a_panic,
    read_only_and_locking_transactions,
}

// The retryable error is a real SQLite "database is locked", whatever the
// backend the transaction runs on: the retries are the engine's, not the
// database's.
#[cfg(feature = "sqlite")]
stamp! {
    runtimes: one, backends: all;
    a_retryable_error_runs_the_transaction_again_up_to_the_limit,
}

#[cfg(feature = "tokio")]
stamp! {
    runtimes: [tokio_multi], backends: all;
    a_transaction_future_can_be_spawned_on_a_multi_thread_runtime,
}

// Two transactions that must both read before either writes: SQLite's
// `begin` takes the write lock first, so the second would wait for ever.
#[cfg(any(feature = "postgres", feature = "mysql"))]
stamp! {
    runtimes: one, backends: [postgres, mysql];
    a_serialization_failure_is_retried_and_every_increment_lands,
}

#[cfg(feature = "postgres")]
stamp! {
    runtimes: one, backends: [postgres];
    read_only_deferrable_serializable_on_postgres,
}

/// An engine whose database has `counter (id, n)` with the row `(1, 0)`.
async fn counter(ctx: &Ctx) -> Engine {
    let engine = ctx.builder().max_connections(4).build().unwrap();
    engine
        .execute(
            "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)",
            (),
        )
        .await
        .unwrap();
    engine
        .execute("INSERT INTO counter (id, n) VALUES (1, 0)", ())
        .await
        .unwrap();
    engine
}

async fn count(engine: &Engine) -> i64 {
    engine
        .scalar("SELECT n FROM counter WHERE id = 1", ())
        .await
        .unwrap()
}

async fn a_transaction_commits_on_ok_and_rolls_back_on_an_error_or_a_panic(ctx: Ctx) {
    let engine = counter(&ctx).await;
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
}

#[cfg(feature = "sqlite")]
async fn a_retryable_error_runs_the_transaction_again_up_to_the_limit(ctx: Ctx) {
    let engine = counter(&ctx).await;
    let attempts = Arc::new(AtomicU32::new(0));
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
}

/// A real "database is locked" error, from SQLite itself.
#[cfg(feature = "sqlite")]
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

async fn read_only_and_locking_transactions(ctx: Ctx) {
    let engine = counter(&ctx).await;
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
    // PostgreSQL aborts the transaction on the error; the others go on.
    if !ctx.is_postgres() {
        assert_eq!(
            tx.scalar::<i64>("SELECT n FROM counter", ()).await.unwrap(),
            0
        );
        tx.commit().await.unwrap();
    } else {
        tx.rollback().await.unwrap();
    }
    // The connection is writable again once the read-only transaction ended.
    engine
        .transaction(|tx| async move {
            tx.execute("UPDATE counter SET n = 7", ()).await?;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(count(&engine).await, 7);
    // SQLite's locking mode; the other databases take the level alone.
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
}

#[cfg(feature = "tokio")]
async fn a_transaction_future_can_be_spawned_on_a_multi_thread_runtime(ctx: Ctx) {
    let engine = ctx.engine();
    let task = ctx.spawn({
        let engine = engine.clone();
        async move {
            engine
                .transaction(|tx| async move { tx.scalar::<i64>("SELECT 41 + 1", ()).await })
                .await
        }
    });
    assert_eq!(task.await.unwrap(), 42);
    engine.close().await.unwrap();
}

/// Two serializable read-modify-write transactions on one row: one of them
/// fails (PostgreSQL's serialization failure, MySQL's deadlock), is run
/// again, and both increments land.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn a_serialization_failure_is_retried_and_every_increment_lands(ctx: Ctx) {
    let engine = counter(&ctx).await;
    let update = ctx.sql("UPDATE counter SET n = $1 WHERE id = 1");
    let attempts = Arc::new(AtomicU32::new(0));
    let both_read = Arc::new(tokio::sync::Barrier::new(2));
    let run = |who: u32| {
        let (engine, update, attempts, both_read) = (
            engine.clone(),
            update.clone(),
            attempts.clone(),
            both_read.clone(),
        );
        async move {
            let options = TxOptions::new()
                .isolation(IsolationLevel::Serializable)
                .max_attempts(5);
            engine
                .transaction_with(options, |tx| {
                    let (attempts, both_read, update) =
                        (attempts.clone(), both_read.clone(), update.clone());
                    async move {
                        let first = attempts.fetch_add(1, Ordering::SeqCst) < 2;
                        let n: i64 = tx.scalar("SELECT n FROM counter WHERE id = 1", ()).await?;
                        if first {
                            // Both first attempts read before either writes.
                            both_read.wait().await;
                        }
                        tx.execute(update.as_str(), (n + 1,)).await?;
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
    assert_eq!(count(&engine).await, 2, "both increments landed");
    engine.close().await.unwrap();
}

#[cfg(feature = "postgres")]
async fn read_only_deferrable_serializable_on_postgres(ctx: Ctx) {
    let engine = ctx.engine();
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
        .execute("CREATE TABLE never (x int)", ())
        .await
        .map(drop)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadOnly, "{err}");
    tx.rollback().await.unwrap();
    engine.close().await.unwrap();
}
