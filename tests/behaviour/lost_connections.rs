//! Lost connections: a connection whose server process went away fails
//! its call with `is_connection_lost()`, does not hang the calls queued on
//! it, and is replaced by the pool. The backend is killed from outside with
//! PostgreSQL's `pg_terminate_backend` or MySQL's `KILL CONNECTION`.

use std::future::Future;
use std::pin::pin;
use std::time::{Duration, Instant};

use futures::future::{self, Either};
use futures::FutureExt;
use sqlaio::{Engine, Result};

use crate::common::{nap, Ctx, Family};

stamp! {
    runtimes: one, backends: [postgres, mysql];
    a_lost_connection_is_reported_and_replaced,
    statements_queued_on_a_lost_connection_do_not_hang,
    a_lost_connection_inside_a_transaction_is_reported_and_replaced,
    an_idle_pooled_connection_that_was_lost_is_replaced,
    test_before_acquire_replaces_a_lost_idle_connection_unseen,
}

/// How long one statement may take where a hang is the failure guarded against.
const STEP_LIMIT: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing the test if it takes longer than [`STEP_LIMIT`].
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match future::select(pin!(fut), pin!(nap(STEP_LIMIT))).await {
        Either::Left((value, _)) => value,
        Either::Right(_) => panic!("{what} did not finish within {STEP_LIMIT:?}"),
    }
}

/// The query that returns the server's id for the connection it runs on.
fn pid_query(ctx: &Ctx) -> &'static str {
    match ctx.family() {
        Family::Postgres => "SELECT pg_backend_pid()",
        Family::Mysql => "SELECT CONNECTION_ID()",
        Family::Sqlite => unreachable!("not stamped for SQLite"),
    }
}

/// Terminates the backend `pid` from another engine and waits (bounded)
/// until the server no longer lists it.
async fn kill_backend(ctx: &Ctx, killer: &Engine, pid: i32) -> Result<()> {
    let listed = match ctx.family() {
        Family::Sqlite => unreachable!("not stamped for SQLite"),
        Family::Postgres => {
            let killed: bool = killer
                .scalar("SELECT pg_terminate_backend($1)", (pid,))
                .await?;
            assert!(killed, "pg_terminate_backend({pid}) failed");
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1"
        }
        Family::Mysql => {
            killer.execute(format!("KILL CONNECTION {pid}"), ()).await?;
            "SELECT count(*) FROM information_schema.processlist WHERE id = ?"
        }
    };
    let deadline = Instant::now() + STEP_LIMIT;
    loop {
        let left: i64 = killer.scalar(listed, (pid,)).await?;
        if left == 0 {
            return Ok(());
        }
        assert!(
            Instant::now() < deadline,
            "the terminated backend is still there after {STEP_LIMIT:?}"
        );
        nap(Duration::from_millis(20)).await;
    }
}

/// Sends a slow statement, then three short ones, through `send`, so that
/// they queue on one connection; kills its backend `pid` while the slow one
/// runs, and returns every answer.
async fn lost_under_queue<'a>(
    ctx: &Ctx,
    killer: &Engine,
    pid: i32,
    send: impl Fn(&'static str) -> futures::future::BoxFuture<'a, Result<i32>>,
) -> Result<Vec<Result<i32>>> {
    let mut queued = vec![send(match ctx.family() {
        Family::Sqlite => unreachable!("not stamped for SQLite"),
        Family::Postgres => "SELECT count(*)::int FROM (SELECT pg_sleep(0.5)) AS s",
        Family::Mysql => "SELECT SLEEP(0.5)",
    })];
    queued.extend((0..3).map(|_| send("SELECT 1")));
    for statement in &mut queued {
        assert!(futures::poll!(statement).is_pending());
    }
    kill_backend(ctx, killer, pid).await?;
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
        let pid: i32 = conn.scalar(pid_query(&ctx), ()).await?;
        kill_backend(&ctx, &killer, pid).await?;

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
        let new_pid: i32 = engine.scalar(pid_query(&ctx), ()).await?;
        assert_ne!(new_pid, pid);
    }
    killer.close().await?;
    engine.close().await
}

async fn statements_queued_on_a_lost_connection_do_not_hang(ctx: Ctx) -> sqlaio::Result<()> {
    let url = ctx.url().to_owned();
    let engine = Engine::builder().url(&url).max_connections(1).build()?;
    let killer = Engine::builder().url(&url).max_connections(1).build()?;
    let pid: i32 = engine.scalar(pid_query(&ctx), ()).await?;
    for _ in 0..10 {
        engine.scalar::<i32>("SELECT 1", ()).await?;
    }
    // Engine statements queue on the one busy connection (see
    // `Engine::execute`), and the connection is lost under them.
    // The statement running when it was lost fails; those queued
    // behind it never ran, and run on a new connection.
    let mut answers =
        lost_under_queue(&ctx, &killer, pid, |sql| engine.scalar(sql, ()).boxed()).await?;
    let first = answers
        .remove(0)
        .expect_err("the statement on the lost connection");
    assert!(first.is_connection_lost(), "{first:?}");
    for answer in answers {
        assert_eq!(answer?, 1);
    }
    // The pool replaced the connection.
    let new_pid: i32 = within("a statement afterwards", engine.scalar(pid_query(&ctx), ())).await?;
    assert_ne!(new_pid, pid);

    // Tasks sharing one connection: those queued behind the lost
    // statement fail too, at once, as the connection is gone.
    let conn = engine.connect().await?;
    let pid: i32 = conn.scalar(pid_query(&ctx), ()).await?;
    let mut answers =
        lost_under_queue(&ctx, &killer, pid, |sql| conn.scalar(sql, ()).boxed()).await?;
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
    let pid: i32 = tx.scalar(pid_query(&ctx), ()).await?;
    kill_backend(&ctx, &killer, pid).await?;
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
    let pid: i32 = engine.scalar(pid_query(&ctx), ()).await?;
    kill_backend(&ctx, &killer, pid).await?;
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
    let pid: i32 = engine.scalar(pid_query(&ctx), ()).await?;
    kill_backend(&ctx, &killer, pid).await?;
    // The pool checks the idle connection first, finds it dead and
    // opens a new one: the caller never sees the loss.
    let new_pid = within(
        "the first statement after the kill",
        engine.scalar::<i32>(pid_query(&ctx), ()),
    )
    .await?;
    assert_ne!(new_pid, pid);
    killer.close().await?;
    engine.close().await
}
