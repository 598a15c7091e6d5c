//! `run_in_thread`: the raw driver connection in a closure on its worker,
//! the closure's own error type, and panics in it.

use sqlaio::Error;

use crate::common::Ctx;
use crate::support::*;

stamp! {
    runtimes: one, backends: all;
    panic_in_run_in_thread,
    panic_in_run_in_thread_rolls_back_the_transaction,
    run_in_thread_returns_the_users_error,
}

async fn panic_in_run_in_thread(ctx: Ctx) {
    with_raw!(panic_in_run_in_thread_with, ctx)
}

async fn panic_in_run_in_thread_with<R: Raw>(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    let code = 4242;
    let err = conn
        .run_in_thread(move |_raw: &mut R| -> Result<(), Error> {
            panic!("the closure gave up at step {code}")
        })
        .await
        .unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert!(
        err.to_string().contains("the closure gave up at step 4242"),
        "{err}"
    );
    // The same connection and the engine keep working.
    assert!(!conn.is_closed());
    assert_eq!(conn.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
    let n = conn
        .run_in_thread(|raw: &mut R| raw.query_int("SELECT 2"))
        .await
        .unwrap();
    assert_eq!(n, 2);

    let err = engine
        .run_in_thread(|_raw: &mut R| -> Result<(), Error> { panic!("a static message") })
        .await
        .unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert!(err.to_string().contains("a static message"), "{err}");
    assert_eq!(engine.scalar::<i64>("SELECT 3", ()).await.unwrap(), 3);
    assert!(!engine.is_closed());
}

async fn panic_in_run_in_thread_rolls_back_the_transaction(ctx: Ctx) {
    with_raw!(panic_in_run_in_thread_rolls_back_the_transaction_with, ctx)
}

async fn panic_in_run_in_thread_rolls_back_the_transaction_with<R: Raw>(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    let tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO users (id, name) VALUES (1, 'x')", ())
        .await
        .unwrap();
    let err = tx
        .run_in_thread(|raw: &mut R| -> Result<(), Error> {
            raw.run("INSERT INTO users (id, name) VALUES (2, 'y')")?;
            panic!("half way")
        })
        .await
        .unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    // The transaction is gone: a statement through its handle is refused
    // rather than run in autocommit.
    let err = tx
        .execute("INSERT INTO users (id, name) VALUES (4, 'stray')", ())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TransactionAborted), "{err:?}");
    drop(tx);
    assert!(!conn.in_transaction());
    assert_eq!(count(&conn, "users").await, 0);
    let other = engine.connect().await.unwrap();
    assert_eq!(count(&other, "users").await, 0);
    // And the connection takes a new one.
    let tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO users (id, name) VALUES (3, 'z')", ())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&other, "users").await, [3]);

    // Rolling back a transaction the panic already ended is fine too.
    let tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO users (id, name) VALUES (5, 'z')", ())
        .await
        .unwrap();
    let err = tx
        .run_in_thread(|_raw: &mut R| -> Result<(), Error> { panic!("again") })
        .await
        .unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    tx.rollback().await.unwrap();
    assert!(!conn.in_transaction());
    assert_eq!(ids(&conn, "users").await, [3]);
}

/// An application's own error type, as `run_in_thread` closures return it.
#[derive(Debug)]
enum AppError {
    Db(Error),
    Invalid(String),
}

impl From<Error> for AppError {
    fn from(e: Error) -> AppError {
        AppError::Db(e)
    }
}

async fn run_in_thread_returns_the_users_error(ctx: Ctx) {
    with_raw!(run_in_thread_returns_the_users_error_with, ctx)
}

async fn run_in_thread_returns_the_users_error_with<R: Raw>(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();

    let result: Result<i64, AppError> = conn
        .run_in_thread(|raw: &mut R| {
            let n = raw.query_int("SELECT 5").map_err(AppError::Db)?;
            Err(AppError::Invalid(format!("{n} is too small")))
        })
        .await;
    match result {
        Err(AppError::Invalid(message)) => assert_eq!(message, "5 is too small"),
        other => panic!("expected the closure's own error, got {other:?}"),
    }

    let ok: Result<String, AppError> = engine
        .run_in_thread(|raw: &mut R| raw.query_text("SELECT 'fine'").map_err(AppError::Db))
        .await;
    assert_eq!(ok.unwrap(), "fine");

    // sqlaio's own failures arrive converted into the user's type.
    let result: Result<(), AppError> = conn.run_in_thread(|_raw: &mut R| panic!("oops")).await;
    match result {
        Err(AppError::Db(e)) => assert!(e.is_panic(), "{e:?}"),
        other => panic!("expected a converted panic, got {other:?}"),
    }
    let result: Result<(), AppError> = conn.run_in_thread(|_raw: &mut String| Ok(())).await;
    match result {
        Err(AppError::Db(Error::WrongDriver { .. })) => {}
        other => panic!("expected WrongDriver, got {other:?}"),
    }
    conn.close().await.unwrap();
    let result: Result<(), AppError> = conn.run_in_thread(|_raw: &mut R| Ok(())).await;
    match result {
        Err(AppError::Db(e)) => assert!(e.is_closed(), "{e:?}"),
        other => panic!("expected a closed error, got {other:?}"),
    }
}
