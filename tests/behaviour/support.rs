//! What the bodies of several concepts share: SQL that runs on every
//! backend, small queries, and the raw driver connection of each backend.

use std::any::Any;

use futures::StreamExt;
#[cfg(feature = "sqlite")]
use sqlaio::rusqlite;
use sqlaio::{Connection, Engine, Error};

use crate::common::{Backend, Ctx, Family};

/// `1, 2, ..., $1` as rows of one column `n`.
pub(crate) const SERIES: &str = concat!(
    "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $1) ",
    "SELECT n FROM s"
);

/// Counts to `$1`: one row, after a while.
pub(crate) const COUNT_TO: &str = concat!(
    "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $1) ",
    "SELECT count(*) FROM s"
);

/// `sql`, built on [`SERIES`] or [`COUNT_TO`], as `backend` runs it: its
/// placeholders, and on MariaDB without the server's limit on recursions
/// (`max_recursive_iterations`, 1000 by default), lifted for this statement
/// alone.
pub(crate) fn recursive(backend: &Backend, sql: &str) -> String {
    let sql = backend.sql(sql);
    match backend.family {
        Family::Sqlite | Family::Postgres => sql,
        Family::Mysql => format!("SET STATEMENT max_recursive_iterations = 4294967295 FOR {sql}"),
    }
}

/// The type a CAST to a 64-bit integer names: `BIGINT`, or MySQL's `SIGNED`.
pub(crate) fn int8(backend: &Backend) -> &'static str {
    match backend.family {
        Family::Sqlite | Family::Postgres => "BIGINT",
        Family::Mysql => "SIGNED",
    }
}

/// A query returning its integer parameter. The cast gives PostgreSQL the
/// parameter's type (a bare `SELECT $1` is text there); SQLite returns it as
/// it came.
pub(crate) fn echo(backend: &Backend) -> String {
    backend.sql(&format!("SELECT CAST($1 AS {})", int8(backend)))
}

/// A count for [`COUNT_TO`] long enough that the statement is still running
/// when its future is dropped (over a second on SQLite in a debug build,
/// about half a second on PostgreSQL and MariaDB), short enough to let it
/// run to the end.
pub(crate) fn slow(ctx: &Ctx) -> i64 {
    match ctx.family() {
        Family::Sqlite => 1_000_000,
        Family::Postgres | Family::Mysql => 300_000,
    }
}

pub(crate) async fn count(conn: &Connection, table: &str) -> i64 {
    conn.scalar(format!("SELECT count(*) FROM {table}"), ())
        .await
        .unwrap()
}

pub(crate) async fn ids(conn: &Connection, table: &str) -> Vec<i64> {
    conn.execute(format!("SELECT id FROM {table} ORDER BY id"), ())
        .await
        .unwrap()
        .map(|row| row.unwrap().get::<i64>("id").unwrap())
        .collect()
        .await
}

/// Inserts users through the engine, one pooled call each.
pub(crate) async fn insert_users_through(ctx: &Ctx, engine: &Engine, names: &[&str]) {
    let insert = ctx.sql("INSERT INTO users (id, name) VALUES ($1, $2)");
    for (i, name) in names.iter().enumerate() {
        let id = i64::try_from(i).unwrap() + 1;
        engine.execute(&insert, (id, *name)).await.unwrap();
    }
}

/// `users (id, name)`, where `id` numbers new rows by itself.
pub(crate) async fn create_users(ctx: &Ctx, conn: &Connection) {
    conn.execute(
        format!(
            "CREATE TABLE users ({}, name TEXT NOT NULL)",
            ctx.id_column()
        ),
        (),
    )
    .await
    .unwrap();
}

/// Inserts users with ids 1, 2, ... on `conn`.
pub(crate) async fn insert_users(ctx: &Ctx, conn: &Connection, names: &[&str]) {
    let insert = ctx.sql("INSERT INTO users (id, name) VALUES ($1, $2)");
    for (i, name) in names.iter().enumerate() {
        let id = i64::try_from(i).unwrap() + 1;
        conn.execute(&insert, (id, *name)).await.unwrap();
    }
}

/// The error of a statement in a transaction the database has aborted:
/// sqlaio's own, or PostgreSQL's refusal, "current transaction is aborted"
/// (SQLSTATE 25P02), which lasts until the transaction is rolled back.
pub(crate) fn is_aborted(err: &Error) -> bool {
    if matches!(err, Error::TransactionAborted) {
        return true;
    }
    #[cfg(feature = "postgres")]
    if let Some(pg) =
        std::error::Error::source(err).and_then(|s| s.downcast_ref::<sqlaio::postgres::Error>())
    {
        return pg.code() == Some(&sqlaio::postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION);
    }
    false
}

/// The raw driver connection `run_in_thread` hands to its closure, so that
/// one body exercises each backend's own: `rusqlite::Connection`,
/// `postgres::Client` or `mysql::Conn`.
pub(crate) trait Raw: Any + Send {
    /// Runs `sql` and returns the integer in the first column of its one row.
    fn query_int(&mut self, sql: &str) -> Result<i64, Error>;
    /// Runs `sql` and returns the text in the first column of its one row.
    fn query_text(&mut self, sql: &str) -> Result<String, Error>;
    /// Runs `sql`, which returns no rows.
    fn run(&mut self, sql: &str) -> Result<(), Error>;
}

#[cfg(feature = "sqlite")]
impl Raw for rusqlite::Connection {
    fn query_int(&mut self, sql: &str) -> Result<i64, Error> {
        Ok(self.query_row(sql, [], |r| r.get(0))?)
    }

    fn query_text(&mut self, sql: &str) -> Result<String, Error> {
        Ok(self.query_row(sql, [], |r| r.get(0))?)
    }

    fn run(&mut self, sql: &str) -> Result<(), Error> {
        self.execute(sql, [])?;
        Ok(())
    }
}

#[cfg(feature = "postgres")]
impl Raw for sqlaio::postgres::Client {
    fn query_int(&mut self, sql: &str) -> Result<i64, Error> {
        use sqlaio::postgres::types::Type;
        let row = self.query_one(sql, &[])?;
        // The client decodes each integer type into its own width only.
        Ok(match *row.columns()[0].type_() {
            Type::INT2 => row.try_get::<_, i16>(0)?.into(),
            Type::INT4 => row.try_get::<_, i32>(0)?.into(),
            _ => row.try_get::<_, i64>(0)?,
        })
    }

    fn query_text(&mut self, sql: &str) -> Result<String, Error> {
        Ok(self.query_one(sql, &[])?.try_get(0)?)
    }

    fn run(&mut self, sql: &str) -> Result<(), Error> {
        self.execute(sql, &[])?;
        Ok(())
    }
}

#[cfg(feature = "mysql")]
impl Raw for sqlaio::mysql::Conn {
    fn query_int(&mut self, sql: &str) -> Result<i64, Error> {
        use sqlaio::mysql::prelude::Queryable;
        self.query_first(sql)?.ok_or(Error::NoRows)
    }

    fn query_text(&mut self, sql: &str) -> Result<String, Error> {
        use sqlaio::mysql::prelude::Queryable;
        self.query_first(sql)?.ok_or(Error::NoRows)
    }

    fn run(&mut self, sql: &str) -> Result<(), Error> {
        use sqlaio::mysql::prelude::Queryable;
        self.query_drop(sql)?;
        Ok(())
    }
}

/// Awaits `$body::<R>(ctx)` with `R` the [`Raw`] connection of the test's backend.
macro_rules! with_raw {
    ($body:ident, $ctx:ident) => {
        match $ctx.family() {
            #[cfg(feature = "postgres")]
            $crate::common::Family::Postgres => $body::<sqlaio::postgres::Client>($ctx).await,
            #[cfg(feature = "sqlite")]
            $crate::common::Family::Sqlite => $body::<sqlaio::rusqlite::Connection>($ctx).await,
            #[cfg(feature = "mysql")]
            $crate::common::Family::Mysql => $body::<sqlaio::mysql::Conn>($ctx).await,
            #[allow(unreachable_patterns)]
            _ => unreachable!("{} is not stamped in this build", $ctx.backend.name),
        }
    };
}

#[cfg(feature = "postgres")]
/// The integers in the first column of `sql`'s rows.
pub(crate) async fn read_ids(conn: &sqlaio::Connection, sql: &str) -> sqlaio::Result<Vec<i32>> {
    conn.execute(sql, ())
        .await?
        .fetchall()
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect()
}
