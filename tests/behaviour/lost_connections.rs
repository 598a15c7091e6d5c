//! Lost connections: a connection whose server process went away fails
//! its call with `is_connection_lost()`, does not hang the calls queued on
//! it, and is replaced by the pool. The backend is killed from outside with
//! PostgreSQL's `pg_terminate_backend`.

use std::time::Duration;

use futures::FutureExt;
use sqlaio::{Engine, Result};

use crate::common::pg::{self, within};
use crate::common::Ctx;

stamp! {
    runtimes: one, backends: [postgres];
    a_lost_connection_is_reported_and_replaced,
    statements_queued_on_a_lost_connection_do_not_hang,
    a_lost_connection_inside_a_transaction_is_reported_and_replaced,
    an_idle_pooled_connection_that_was_lost_is_replaced,
    test_before_acquire_replaces_a_lost_idle_connection_unseen,
}

/// Terminates the backend `pid` from another engine and waits (bounded)
/// until the server no longer lists it.
async fn kill_backend(killer: &Engine, pid: i32) -> Result<()> {
    let killed: bool = killer
        .scalar("SELECT pg_terminate_backend($1)", (pid,))
        .await?;
    assert!(killed, "pg_terminate_backend({pid}) failed");
    pg::eventually(
        "the terminated backend goes away",
        Duration::from_secs(10),
        || async move {
            let left: i64 = killer
                .scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                    (pid,),
                )
                .await?;
            Ok(left == 0)
        },
    )
    .await
}

/// Sends a slow statement, then three short ones, through `send`, so that
/// they queue on one connection; kills its backend `pid` while the slow one
/// runs, and returns every answer.
async fn lost_under_queue<'a>(
    killer: &Engine,
    pid: i32,
    send: impl Fn(&'static str) -> futures::future::BoxFuture<'a, Result<i32>>,
) -> Result<Vec<Result<i32>>> {
    let mut queued = vec![send(
        "SELECT count(*)::int FROM (SELECT pg_sleep(0.5)) AS s",
    )];
    queued.extend((0..3).map(|_| send("SELECT 1")));
    for statement in &mut queued {
        assert!(futures::poll!(statement).is_pending());
    }
    kill_backend(killer, pid).await?;
    Ok(within(
        "the statements queued on the lost connection",
        futures::future::join_all(queued),
    )
    .await)
}

async fn a_lost_connection_is_reported_and_replaced(ctx: Ctx) -> sqlaio::Result<()> {
    let url = ctx.url().to_owned();
    let engine = Engine::builder().url(&url).max_connections(1).build()?;
    let killer = Engine::builder().url(&url).max_connections(1).build()?;
    // Round 0 prepares the next statement afresh; later rounds find it in
    // the statement cache of the replacement connection.
    for round in 0..3 {
        let conn = engine.connect().await?;
        let pid: i32 = conn.scalar("SELECT pg_backend_pid()", ()).await?;
        kill_backend(&killer, pid).await?;

        let e = within(
            "the first statement after the kill",
            conn.execute("SELECT 1", ()),
        )
        .await
        .expect_err("a statement on a terminated connection fails");
        assert!(
            e.is_connection_lost(),
            "round {round}: expected a lost connection, got {e:?}"
        );
        assert!(
            e.to_string()
                .contains("connection to the database was lost"),
            "round {round}: {e}"
        );
        // The dead connection keeps failing, at once.
        let again = within(
            "a second statement on the lost connection",
            conn.scalar::<i32>("SELECT 1", ()),
        )
        .await;
        assert!(again.is_err(), "round {round}: {again:?}");
        drop(conn);

        // The pool discarded the dead connection and opens a new one.
        let mut result = within(
            "a statement after the lost connection was returned",
            engine.execute("SELECT 1", ()),
        )
        .await?;
        let one: i32 = result.fetchone().await?.expect("one row").get(0)?;
        assert_eq!(one, 1);
        drop(result);
        let new_pid: i32 = engine.scalar("SELECT pg_backend_pid()", ()).await?;
        assert_ne!(new_pid, pid);
    }
    killer.close().await?;
    engine.close().await
}

async fn statements_queued_on_a_lost_connection_do_not_hang(ctx: Ctx) -> sqlaio::Result<()> {
    let url = ctx.url().to_owned();
    let engine = Engine::builder().url(&url).max_connections(1).build()?;
    let killer = Engine::builder().url(&url).max_connections(1).build()?;
    let pid: i32 = engine.scalar("SELECT pg_backend_pid()", ()).await?;
    for _ in 0..10 {
        engine.scalar::<i32>("SELECT 1", ()).await?;
    }
    // Engine statements queue on the one busy connection (see
    // `Engine::execute`), and the connection is lost under them.
    // The statement running when it was lost fails; those queued
    // behind it never ran, and run on a new connection.
    let mut answers = lost_under_queue(&killer, pid, |sql| engine.scalar(sql, ()).boxed()).await?;
    let first = answers
        .remove(0)
        .expect_err("the statement on the lost connection");
    assert!(first.is_connection_lost(), "{first:?}");
    for answer in answers {
        assert_eq!(answer?, 1);
    }
    // The pool replaced the connection.
    let new_pid: i32 = within(
        "a statement afterwards",
        engine.scalar("SELECT pg_backend_pid()", ()),
    )
    .await?;
    assert_ne!(new_pid, pid);

    // Tasks sharing one connection: those queued behind the lost
    // statement fail too, at once, as the connection is gone.
    let conn = engine.connect().await?;
    let pid: i32 = conn.scalar("SELECT pg_backend_pid()", ()).await?;
    let mut answers = lost_under_queue(&killer, pid, |sql| conn.scalar(sql, ()).boxed()).await?;
    let first = answers.remove(0).expect_err("the lost statement");
    assert!(first.is_connection_lost(), "{first:?}");
    for answer in answers {
        let e = answer.expect_err("a statement queued on a lost connection");
        assert!(e.is_closed(), "{e:?}");
    }
    drop(conn);
    assert_eq!(engine.scalar::<i32>("SELECT 1", ()).await?, 1);
    killer.close().await?;
    engine.close().await
}

async fn a_lost_connection_inside_a_transaction_is_reported_and_replaced(
    ctx: Ctx,
) -> sqlaio::Result<()> {
    let url = ctx.url().to_owned();
    let engine = Engine::builder().url(&url).max_connections(1).build()?;
    let killer = Engine::builder().url(&url).max_connections(1).build()?;
    let conn = engine.connect().await?;
    let tx = conn.begin().await?;
    let pid: i32 = tx.scalar("SELECT pg_backend_pid()", ()).await?;
    kill_backend(&killer, pid).await?;
    let e = within("a statement after the kill", tx.execute("SELECT 1", ()))
        .await
        .unwrap_err();
    assert!(e.is_connection_lost(), "{e:?}");
    // Ending the transaction cannot succeed, but must not hang or panic.
    let _ = within("the rollback after the kill", tx.rollback()).await;
    drop(conn);
    let one = within(
        "a statement after the lost connection was returned",
        engine.scalar::<i32>("SELECT 1", ()),
    )
    .await?;
    assert_eq!(one, 1);
    killer.close().await?;
    engine.close().await
}

async fn an_idle_pooled_connection_that_was_lost_is_replaced(ctx: Ctx) -> sqlaio::Result<()> {
    let url = ctx.url().to_owned();
    let engine = Engine::builder().url(&url).max_connections(1).build()?;
    let killer = Engine::builder().url(&url).max_connections(1).build()?;
    let pid: i32 = engine.scalar("SELECT pg_backend_pid()", ()).await?;
    kill_backend(&killer, pid).await?;
    // The pool cannot know before it tries: the first call may report
    // the loss, but the one after it works on a new connection.
    match within(
        "the first statement after the kill",
        engine.scalar::<i32>("SELECT 1", ()),
    )
    .await
    {
        Ok(one) => assert_eq!(one, 1),
        Err(e) => assert!(e.is_connection_lost(), "{e:?}"),
    }
    let one = within(
        "the second statement after the kill",
        engine.scalar::<i32>("SELECT 1", ()),
    )
    .await?;
    assert_eq!(one, 1);
    killer.close().await?;
    engine.close().await
}

async fn test_before_acquire_replaces_a_lost_idle_connection_unseen(
    ctx: Ctx,
) -> sqlaio::Result<()> {
    let url = ctx.url().to_owned();
    let engine = Engine::builder()
        .url(&url)
        .max_connections(1)
        .test_before_acquire(true)
        .build()?;
    let killer = Engine::builder().url(&url).max_connections(1).build()?;
    let pid: i32 = engine.scalar("SELECT pg_backend_pid()", ()).await?;
    kill_backend(&killer, pid).await?;
    // The pool checks the idle connection first, finds it dead and
    // opens a new one: the caller never sees the loss.
    let new_pid = within(
        "the first statement after the kill",
        engine.scalar::<i32>("SELECT pg_backend_pid()", ()),
    )
    .await?;
    assert_ne!(new_pid, pid);
    killer.close().await?;
    engine.close().await
}
