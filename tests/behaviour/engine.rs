//! The engine and its connections: building, statements through the
//! engine and through a connection, table names, `Debug`, closing, and
//! connects that fail.

use std::error::Error as _;
use std::time::Duration;

use sqlaio::{Connection, Engine, Error};

#[cfg(feature = "postgres")]
use crate::common::pg::{unique, Scratch};
use crate::common::{self, Ctx, Family};
use crate::support::*;

stamp! {
    runtimes: one, backends: all;
    engine_execute_and_scalar,
    connection_execute_and_scalar,
    has_table_and_table_names,
}

// Closing waits for workers to stop; `Debug` names the runtime's strategy;
// a failed connect must give its worker back.
stamp! {
    runtimes: each, backends: all;
    connection_close,
    engine_close,
    engine_debug,
    failed_connect,
}

// Schemas: tables outside the search path are not listed.
#[cfg(feature = "postgres")]
stamp! {
    runtimes: one, backends: [postgres];
    table_names_see_the_current_schema_only,
}

async fn engine_execute_and_scalar(ctx: Ctx) {
    let engine = ctx.engine();
    let mut result = engine
        .execute(ctx.sql("SELECT $1 + 1 AS answer"), (41,))
        .await
        .unwrap();
    let row = result.fetchone().await.unwrap().expect("one row");
    assert_eq!(row.get::<i64>(0).unwrap(), 42);
    assert_eq!(row.get::<i64>("answer").unwrap(), 42);
    assert!(result.fetchone().await.unwrap().is_none());
    drop(result);

    assert_eq!(
        engine
            .scalar::<i64>(ctx.sql("SELECT $1 * 2"), (21,))
            .await
            .unwrap(),
        42
    );
    engine
        .execute("CREATE TABLE t (x INTEGER)", ())
        .await
        .unwrap();
    engine
        .execute(ctx.sql("INSERT INTO t (x) VALUES ($1)"), (7,))
        .await
        .unwrap();
    assert_eq!(
        engine.scalar::<i64>("SELECT x FROM t", ()).await.unwrap(),
        7
    );
    engine.close().await.unwrap();
}

async fn connection_execute_and_scalar(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    create_users(&ctx, &conn).await;
    insert_users(&ctx, &conn, &["Dana Whitaker", "Casey McCall"]).await;
    let name: String = conn
        .scalar(ctx.sql("SELECT name FROM users WHERE id = $1"), (2,))
        .await
        .unwrap();
    assert_eq!(name, "Casey McCall");
    let rows = conn
        .execute("SELECT id, name FROM users ORDER BY id", ())
        .await
        .unwrap()
        .fetchall()
        .await
        .unwrap();
    let got: Vec<(i64, String)> = rows
        .iter()
        .map(|r| (r.get(0).unwrap(), r.get(1).unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "Dana Whitaker".to_owned()),
            (2, "Casey McCall".to_owned())
        ]
    );
    // The connection serves statement after statement.
    for i in 0..20_i64 {
        assert_eq!(
            conn.scalar::<i64>(echo(ctx.backend), (i,)).await.unwrap(),
            i
        );
    }
}

async fn connection_close(ctx: Ctx) {
    with_raw!(connection_close_with, ctx)
}

async fn connection_close_with<R: Raw>(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    assert!(!conn.is_closed());
    assert_eq!(conn.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
    conn.close().await.unwrap();
    assert!(conn.is_closed());
    // Closing twice is fine.
    conn.close().await.unwrap();
    assert!(conn.is_closed());

    let err = conn.execute("SELECT 1", ()).await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = conn.scalar::<i64>("SELECT 1", ()).await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = conn.begin().await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = conn.begin_nested().await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = conn
        .execute_many(ctx.sql("SELECT $1"), [(1,), (2,)])
        .await
        .unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = conn.table_names().await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = conn.has_table("users").await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = conn
        .run_in_thread(|_raw: &mut R| Ok::<_, Error>(()))
        .await
        .unwrap_err();
    assert!(err.is_closed(), "{err}");
    assert!(!conn.in_transaction());

    // The engine is not affected.
    assert!(!engine.is_closed());
    assert_eq!(engine.scalar::<i64>("SELECT 2", ()).await.unwrap(), 2);
    let again = engine.connect().await.unwrap();
    assert_eq!(again.scalar::<i64>("SELECT 3", ()).await.unwrap(), 3);
}

async fn has_table_and_table_names(ctx: Ctx) {
    let engine = ctx.engine();
    assert!(!engine.has_table("users").await.unwrap());
    assert_eq!(engine.table_names().await.unwrap(), Vec::<String>::new());

    let conn = engine.connect().await.unwrap();
    assert!(!conn.has_table("users").await.unwrap());
    create_users(&ctx, &conn).await;
    conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY)", ())
        .await
        .unwrap();
    assert!(conn.has_table("users").await.unwrap());
    assert!(conn.has_table("accounts").await.unwrap());
    assert!(!conn.has_table("nothing").await.unwrap());
    // An unquoted name in another case names the same table on SQLite and
    // PostgreSQL; MySQL compares table names as the server's file system
    // does (exactly, unless `lower_case_table_names` says otherwise).
    let folded = match ctx.family() {
        Family::Sqlite | Family::Postgres => true,
        Family::Mysql => {
            conn.scalar::<i64>("SELECT @@lower_case_table_names", ())
                .await
                .unwrap()
                != 0
        }
    };
    assert_eq!(conn.has_table("USERS").await.unwrap(), folded);
    assert_eq!(conn.table_names().await.unwrap(), ["accounts", "users"]);
    if ctx.backend.is_postgres() {
        // A quoted mixed-case name is its own table there.
        conn.execute("CREATE TABLE \"Mixed\" (id INTEGER)", ())
            .await
            .unwrap();
        assert!(conn.has_table("Mixed").await.unwrap());
        assert!(!conn.has_table("mixed").await.unwrap());
        conn.execute("DROP TABLE \"Mixed\"", ()).await.unwrap();
    }
    drop(conn);

    assert!(engine.has_table("users").await.unwrap());
    assert_eq!(engine.table_names().await.unwrap(), ["accounts", "users"]);

    engine.execute("DROP TABLE users", ()).await.unwrap();
    assert!(!engine.has_table("users").await.unwrap());
    assert_eq!(engine.table_names().await.unwrap(), ["accounts"]);
}

async fn engine_close(ctx: Ctx) {
    with_raw!(engine_close_with, ctx)
}

async fn engine_close_with<R: Raw>(ctx: Ctx) {
    let engine = ctx.engine();
    let clone = engine.clone();
    engine
        .execute("CREATE TABLE t (x INTEGER)", ())
        .await
        .unwrap();
    let conn = engine.connect().await.unwrap();
    assert_eq!(conn.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
    // A result still streaming, on a connection of its own.
    let mut streaming = engine
        .execute(recursive(ctx.backend, SERIES), (5000,))
        .await
        .unwrap();
    streaming.fetchone().await.unwrap();
    // A transaction still open.
    let tx = engine.begin().await.unwrap();
    tx.execute("INSERT INTO t (x) VALUES (1)", ())
        .await
        .unwrap();
    assert!(engine.worker_count() >= 3);

    engine.close().await.unwrap();
    assert!(engine.is_closed());
    assert!(clone.is_closed());
    // Every worker has stopped.
    assert_eq!(engine.worker_count(), 0);

    let err = engine.execute("SELECT 1", ()).await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = engine.connect().await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = engine.scalar::<i64>("SELECT 1", ()).await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = engine.begin().await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = engine.table_names().await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = engine
        .run_in_thread(|_raw: &mut R| Ok::<_, Error>(()))
        .await
        .unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = clone.execute("SELECT 1", ()).await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");

    // Handles taken before the close.
    assert!(conn.is_closed());
    let err = conn.execute("SELECT 1", ()).await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = tx.execute("SELECT 1", ()).await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    assert!(!tx.is_active());
    let err = tx.commit().await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = streaming.fetchall().await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    conn.close().await.unwrap();

    // Closing again is fine.
    engine.close().await.unwrap();
    clone.close().await.unwrap();
    assert_eq!(engine.worker_count(), 0);

    if !ctx.is("memory") {
        // The uncommitted insert did not survive; the database is intact.
        let reopened = ctx.engine();
        let n: i64 = reopened.scalar("SELECT count(*) FROM t", ()).await.unwrap();
        assert_eq!(n, 0);
        reopened.close().await.unwrap();
    }
}

async fn engine_debug(ctx: Ctx) {
    let engine = ctx.engine();
    let debug = format!("{engine:?}");
    assert!(debug.contains(ctx.url()), "{debug}");
    let strategy = format!("{:?}", ctx.strategy());
    assert!(debug.contains(&strategy), "{debug} lacks {strategy}");
    assert_eq!(engine.url(), ctx.url());
    // Futures are Send, so they can be spawned on any multi-thread executor.
    fn is_send<T: Send>(_: &T) {}
    is_send(&engine.execute("SELECT 1", ()));
    is_send(&engine.connect());
    is_send(&engine.close());
    let conn = engine.connect().await.unwrap();
    is_send(&conn.execute("SELECT 1", ()));
    is_send(&conn.begin());
    let debug = format!("{conn:?}");
    assert!(debug.contains("Connection"), "{debug}");
}

async fn failed_connect(ctx: Ctx) {
    let url = ctx.unreachable_url();
    let engine = ctx.builder().url(url).max_connections(1).build().unwrap();
    for _ in 0..3 {
        // With one slot, each failure must give the slot back (no hang).
        let err = engine.connect().await.unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        assert!(!err.is_closed());
        let text = err.to_string();
        assert!(text.contains(ctx.unreachable_hint()), "{text}");
        assert!(err.source().is_some());
        assert!(
            common::wait_until(Duration::from_secs(5), || engine.worker_count() == 0),
            "a worker outlived its failed connect: {}",
            engine.worker_count()
        );
    }
    let err = engine.execute("SELECT 1", ()).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    engine.close().await.unwrap();
    assert_eq!(engine.worker_count(), 0);
}

/// `Engine` is cheap to share between tasks and threads.
const _: fn() = || {
    fn shareable<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    fn sendable<T: Send + Sync + 'static>() {}
    shareable::<Engine>();
    sendable::<Connection>();
    sendable::<Error>();
    sendable::<sqlaio::Row>();
    fn send_only<T: Send + 'static>() {}
    send_only::<sqlaio::CursorResult<'static>>();
    sendable::<sqlaio::Transaction<'static>>();
};

#[cfg(feature = "sqlite")]
#[test]
fn builder_rejects_bad_configuration() {
    let err = Engine::builder().build().unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let err = Engine::builder()
        .url("sqlite::memory:")
        .max_connections(0)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    // Without the mysql feature, a MySQL URL names what is missing.
    #[cfg(not(feature = "mysql"))]
    {
        let err = Engine::builder().url("mysql://db/app").build().unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(err.to_string().contains("mysql"), "{err}");
    }
    // A scheme that no driver has is refused by its name.
    let err = Engine::builder()
        .url("oracle://db/app")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("oracle"), "{err}");
    let engine = Engine::builder().url("sqlite::memory:").build().unwrap();
    assert_eq!(engine.max_connections(), sqlaio::DEFAULT_MAX_CONNECTIONS);
    assert_eq!(engine.worker_count(), 0, "connections open lazily");
}

#[cfg(feature = "postgres")]
async fn table_names_see_the_current_schema_only(ctx: Ctx) -> sqlaio::Result<()> {
    let url = ctx.url().to_owned();
    let scratch = Scratch::new(&url);
    let other = scratch.schema("other");
    let t = scratch.table("listed");
    let hidden = unique("hidden");
    let engine = ctx.builder().max_connections(4).build()?;
    assert!(!engine.has_table(&t).await?);
    engine
        .execute(format!("CREATE TABLE {t} (x int4)"), ())
        .await?;
    engine.execute(format!("CREATE SCHEMA {other}"), ()).await?;
    engine
        .execute(format!("CREATE TABLE {other}.{hidden} (x int4)"), ())
        .await?;

    let names = engine.table_names().await?;
    assert!(names.contains(&t), "{t} missing from {names:?}");
    assert!(!names.contains(&hidden), "{hidden} listed in {names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "table_names is sorted");
    assert!(engine.has_table(&t).await?);
    assert!(!engine.has_table(&hidden).await?);
    assert!(!engine.has_table(&unique("no_such_table")).await?);

    let conn = engine.connect().await?;
    assert!(conn.has_table(&t).await?);
    assert!(conn.table_names().await?.contains(&t));
    conn.close().await?;
    engine.close().await
}
