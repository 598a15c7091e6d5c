//! Panics in user code during a transaction.

use futures::FutureExt;
use sqlaio::{Connection, Error, Result};

#[cfg(feature = "postgres")]
use crate::common::pg;
use crate::common::{Ctx, Family};

stamp! {
    runtimes: each, backends: [file];
    panic_sqlite,
}

#[cfg(feature = "postgres")]
stamp! {
    runtimes: one, backends: [postgres];
    panic_postgres,
}

/// The messages of the panics these tests cause on purpose.
const INTENDED_PANICS: [&str; 2] = [
    "user code failed after writing",
    "async user code failed inside a transaction",
];

/// Keeps the panics these tests cause on purpose out of the output; every
/// other panic is reported as usual.
fn quiet_intended_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or_default();
            if !INTENDED_PANICS.contains(&message) {
                previous(info);
            }
        }));
    });
}

/// Runs `sql` through the raw driver in `run_in_thread`, then panics.
/// The closure for each database family: `rusqlite::Connection` or
/// `postgres::Client`.
async fn raw_then_panic(conn: &Connection, family: Family, sql: String) -> Error {
    let result: Result<()> = match family {
        Family::Sqlite => {
            conn.run_in_thread(move |raw: &mut sqlaio::rusqlite::Connection| {
                raw.execute_batch(&sql)?;
                panic!("{}", INTENDED_PANICS[0]);
            })
            .await
        }
        #[cfg(feature = "postgres")]
        Family::Postgres => {
            conn.run_in_thread(move |raw: &mut sqlaio::postgres::Client| {
                raw.batch_execute(&sql)?;
                panic!("{}", INTENDED_PANICS[0]);
            })
            .await
        }
        #[allow(unreachable_patterns)]
        other => unreachable!("{other:?} is not stamped in this build"),
    };
    result.unwrap_err()
}

/// Panics in user code while a transaction is open, three ways: in a
/// `run_in_thread` closure inside a `Transaction`, in a closure that began
/// its own transaction in raw SQL, and in async code holding a
/// `Transaction`. Each time the transaction rolls back and the pool's only
/// connection serves the next caller, outside any transaction.
async fn panics_roll_back(ctx: &Ctx, table: String) {
    quiet_intended_panics();
    let engine = ctx.builder().max_connections(1).build().unwrap();
    engine
        .execute(format!("CREATE TABLE {table} (x BIGINT)"), ())
        .await
        .unwrap();
    let count = format!("SELECT count(*) FROM {table}");
    let insert = |x: i64| format!("INSERT INTO {table} (x) VALUES ({x})");

    // 1. run_in_thread inside a Transaction.
    let conn = engine.connect().await.unwrap();
    let tx = conn.begin().await.unwrap();
    tx.execute(insert(1), ()).await.unwrap();
    let err = raw_then_panic(&tx, ctx.family(), insert(2)).await;
    assert!(err.is_panic(), "{err:?}");
    assert!(
        err.to_string().contains("user code failed after writing"),
        "{err}"
    );
    // The worker rolled back: committing now says so, and nothing was written.
    let commit = tx.commit().await.unwrap_err();
    assert!(matches!(commit, Error::TransactionAborted), "{commit:?}");
    assert!(!conn.in_transaction());
    assert_eq!(conn.scalar::<i64>(count.as_str(), ()).await.unwrap(), 0);
    drop(conn);

    // 2. Async user code panics while it holds a Transaction.
    let task = {
        let engine = engine.clone();
        let insert = insert(5);
        async move {
            let tx = engine.begin().await.unwrap();
            tx.execute(insert, ()).await.unwrap();
            panic!("{}", INTENDED_PANICS[1]);
        }
    };
    let unwound = std::panic::AssertUnwindSafe(task).catch_unwind().await;
    assert!(unwound.is_err());

    // The next caller gets the same (only) connection, clean.
    let conn = engine.connect().await.unwrap();
    assert!(!conn.in_transaction());
    assert_eq!(conn.scalar::<i64>(count.as_str(), ()).await.unwrap(), 0);
    let tx = conn.begin().await.unwrap();
    tx.execute(insert(6), ()).await.unwrap();
    tx.commit().await.unwrap();
    drop(conn);
    assert_eq!(engine.scalar::<i64>(count.as_str(), ()).await.unwrap(), 1);
    assert_eq!(
        engine.pool_status().size,
        1,
        "the connection was replaced, not reused"
    );

    // 3. A transaction the closure began itself, in raw SQL, then a panic.
    let conn = engine.connect().await.unwrap();
    let err = raw_then_panic(
        &conn,
        ctx.family(),
        format!("BEGIN; {}; {}", insert(3), insert(4)),
    )
    .await;
    assert!(err.is_panic(), "{err:?}");
    drop(conn);
    // The next caller must not find itself inside the abandoned transaction.
    let conn = engine.connect().await.unwrap();
    let seen: i64 = conn.scalar(count.as_str(), ()).await.unwrap();
    assert_eq!(
        seen, 1,
        "the next caller ran inside the transaction the panicking closure began: it sees its uncommitted rows"
    );
    drop(conn);
    engine.close().await.unwrap();
    assert_eq!(engine.worker_count(), 0);
}

async fn panic_sqlite(ctx: Ctx) {
    panics_roll_back(&ctx, "t".into()).await;
}

#[cfg(feature = "postgres")]
async fn panic_postgres(ctx: Ctx) {
    panics_roll_back(&ctx, pg::unique("rel_panic")).await;
}
