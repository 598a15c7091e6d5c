//! Async access to blocking SQL drivers, with an API modelled on SQLAlchemy
//! Core as Python's `sqlalchemy_aio` exposes it.
//!
//! Every driver call runs on a worker thread chosen by a pluggable
//! [`Strategy`], and its answer comes back through a future that any
//! executor can await. The trusted blocking drivers (`rusqlite` for SQLite,
//! the synchronous `postgres` crate for PostgreSQL) never run on an async
//! thread. The [guide](#guide) walks through it chapter by chapter.
//!
//! # Example
//! ```
//! use sqlaio::Engine;
//!
//! # futures::executor::block_on(async {
//! let engine = Engine::builder().url("sqlite::memory:").build()?;
//! engine.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)", ()).await?;
//! let conn = engine.connect().await?;
//! conn.execute("INSERT INTO users (name) VALUES (?1)", ("Dana Whitaker",)).await?;
//! let mut result = conn.execute("SELECT id, name FROM users WHERE name LIKE ?1", ("D%",)).await?;
//! for row in result.fetchall().await? {
//!     let name: String = row.get("name")?;
//!     assert_eq!(name, "Dana Whitaker");
//! }
//! let tx = conn.begin().await?;
//! assert_eq!(tx.scalar::<i64>("SELECT 1", ()).await?, 1);
//! tx.commit().await?;
//! conn.close().await?;
//! # Ok::<(), sqlaio::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Strategies
//! | strategy | feature | where workers run |
//! |---|---|---|
//! | [`ThreadStrategy`] (default) | always | plain named threads; no runtime needed |
//! | `TokioStrategy` | `tokio` | `tokio::task::spawn_blocking` |
//! | `AsyncStdStrategy` | `async-std` | `async_std::task::spawn_blocking` |
//! | `SmolStrategy` | `smol` | `blocking::unblock`, detached |
//!
//! Each connection keeps one worker for its whole life; a request costs one
//! hand-off to that worker and one back. Implement [`Strategy`] to use your
//! own thread pool. Whatever the strategy, the futures it produces can be
//! awaited on any executor.
//!
//! # Cancellation
//! Dropping a future never leaves a connection in a wrong state, and never
//! hands one caller another's answer: a request not yet started is skipped;
//! a running statement is interrupted on the database (`sqlite3_interrupt`,
//! `pg_cancel_backend` on PostgreSQL, `KILL QUERY` on MySQL), aimed so that it can never hit a later
//! statement, unless the engine was built with
//! [`interrupt_on_drop(false)`](EngineBuilder::interrupt_on_drop); a `COMMIT`
//! that was sent always completes; a dropped transaction rolls back before
//! the connection's next request. Statement timeouts use the same path.
//! Each async method documents what dropping its future does.
//!
//! # Features
//! | feature | default | what it adds |
//! |---|---|---|
//! | `sqlite` | yes | SQLite through `rusqlite` (bundled SQLite, no system library) |
//! | `postgres` | no | PostgreSQL through the sync `postgres` crate; `pub use postgres` |
//! | `mysql` | no | MySQL and MariaDB through the sync `mysql` crate (pure-Rust compression, no TLS yet); `pub use mysql` |
//! | `tls` | no | TLS for PostgreSQL through rustls: `sslmode` up to `verify-full`, `sslrootcert`, client certificates |
//! | `chrono`, `uuid`, `json`, `decimal` | no | wider [`Value`] variants: dates and times, UUIDs, JSON, exact decimals |
//! | `tracing` | no | spans after OpenTelemetry's database conventions: per statement, transaction statement, `run_in_thread` and pool wait; slow-statement warnings |
//! | `metrics` | no | OpenTelemetry's database client metrics through the `metrics` facade: operation durations, the pool's connections, waits and timeouts |
//! | `tokio` | no | `TokioStrategy` |
//! | `async-std` | no | `AsyncStdStrategy` (async-std is deprecated upstream in favour of smol) |
//! | `smol` | no | `SmolStrategy` |
//! | `sea-query` | no | `sea_query` statements accepted by every `execute`, rendered in the engine's [`Dialect`]; `pub use sea_query` |
//! | `serde` | no | `Row::deserialize` and `CursorResult::fetchall_as` and friends: rows into structs by column name |
//! | `testing` | no | `sqlaio::testing`: a fresh database per test (a SQLite file, or a PostgreSQL schema), migrated, with fixtures, removed afterwards |
//! | `full` | no | all of the above |
//!
//! # Guide
//! The repository's `docs/` folder holds a guide, starting at
//! `docs/README.md`; its examples are doctests of this crate:
//!
//! | chapter | covers |
//! |---|---|
//! | `getting-started.md` | a first program on tokio, async-std, smol, and with no runtime |
//! | `strategies.md` | choosing a [`Strategy`], the built-in ones, writing your own |
//! | `transactions.md` | [`Transaction`]s, savepoints, what dropping one does |
//! | `streaming.md` | [`CursorResult`] as a stream: batches, memory bound, backpressure |
//! | `cancellation.md` | what dropping each future does; statement and pool timeouts |
//! | `pooling.md` | the pool's settings on [`EngineBuilder`], [`Engine::pool_status`] |
//! | `migrations.md` | [`migrate`](mod@migrate): versioned SQL migrations at start-up, the `migrate!` folder, locking |
//! | `testing.md` | `testing` (feature `testing`): a fresh, migrated database for each test |
//! | `sqlite.md`, `postgres.md`, `mysql.md` | each database: URLs, settings, types, concurrency |
//! | `from-sqlalchemy-aio.md` | sqlalchemy_aio's API beside this one, name by name |
//! | `from-rusqlite-wrappers.md` | tokio-rusqlite, async-sqlite and deadpool-sqlite beside this crate |
//! | `limitations.md` | what the crate does not do, or does differently |
//! | `threading.md`, `reliability.md`, `benchmarks.md` | how it works, how it is tested, what a call costs |
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without a driver feature the crate builds (so every feature combination
// does) but can only refuse URLs; silence what only drivers use.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(unused, unreachable_code)
)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub,
    clippy::await_holding_lock
)]

mod block;
mod builder;
mod connection;
mod de;
mod driver;
mod engine;
mod error;
mod fetch;
pub mod migrate;
mod packed;
mod params;
mod placeholders;
mod pool;
mod read;
mod result;
mod row;
#[cfg(test)]
mod scripted_tests;
#[cfg(feature = "sea-query")]
#[path = "sea_query.rs"]
mod sea_query_sql;
mod server;
mod session;
mod sql;
mod strategy;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod timer;
mod trace;
mod tracker;
mod transaction;
mod tx_options;
mod types;
mod url;
mod value;
mod wait;
mod worker;

#[path = "../strategies/thread.rs"]
mod thread_strategy;

#[cfg(feature = "tokio")]
#[path = "../strategies/tokio.rs"]
mod tokio_strategy;

#[cfg(feature = "async-std")]
#[path = "../strategies/async_std.rs"]
mod async_std_strategy;

#[cfg(feature = "smol")]
#[path = "../strategies/smol.rs"]
mod smol_strategy;

pub use builder::{
    EngineBuilder, DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_CLOSE_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_LIFETIME, DEFAULT_REPLICA_ACQUIRE_TIMEOUT,
    DEFAULT_TIMEOUT_GRACE,
};
pub use connection::Connection;
pub use de::FromRow;
pub use engine::Engine;
pub use error::{BoxError, DatabaseDetails, DecodeError, Error, ErrorKind, Result};
pub use params::{List, Parameters, Params};
pub use pool::PoolStatus;
pub use read::{ReadView, ReplicaStatus, WalPosition};
pub use result::CursorResult;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use result::TypedRows;
pub use row::{ColumnIndex, Row};
pub use server::{ServerInfo, ServerRole};
pub use sql::{Dialect, IntoSql, Sql};
pub use strategy::{Job, Strategy};
pub use trace::MAX_STATEMENT_LEN;
pub use transaction::Transaction;
pub use tx_options::{IsolationLevel, Locking, TxOptions};
pub use value::{FromValue, Value};
pub use wait::WaitPolicy;

pub use thread_strategy::ThreadStrategy;

/// What the crate's macros name; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::params::NamedValue;
}

#[cfg(feature = "async-std")]
pub use async_std_strategy::AsyncStdStrategy;
#[cfg(feature = "smol")]
pub use smol_strategy::SmolStrategy;
#[cfg(feature = "tokio")]
pub use tokio_strategy::TokioStrategy;

/// The `rusqlite` crate sqlaio uses, for [`Connection::run_in_thread`] closures.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use rusqlite;

/// The `postgres` crate sqlaio uses, for [`Connection::run_in_thread`] closures.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres;

/// The `mysql` crate sqlaio uses, for [`Connection::run_in_thread`] closures
/// (`|raw: &mut mysql::Conn| ...`).
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub use mysql;

/// The `sea_query` crate sqlaio renders statements with: build statements
/// with it and pass them to any `execute`, `scalar` or `begin`-scoped call.
#[cfg(feature = "sea-query")]
#[cfg_attr(docsrs, doc(cfg(feature = "sea-query")))]
pub use ::sea_query;

/// The README and the guide in `docs/`, doctested so that every Rust block in
/// them compiles, and runs where it can. A chapter is included when the
/// features its examples need are enabled.
#[cfg(doctest)]
mod guide {
    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../README.md")]
    struct Readme;

    /// Blocks for a runtime's strategy compile to an empty `main` without
    /// that runtime's feature (`# #[cfg(feature = "...")]` hidden lines).
    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/getting-started.md")]
    struct GettingStarted;

    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/strategies.md")]
    struct Strategies;

    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/transactions.md")]
    struct Transactions;

    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/streaming.md")]
    struct Streaming;

    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/pooling.md")]
    struct Pooling;

    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/sqlite.md")]
    struct Sqlite;

    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/migrations.md")]
    struct Migrations;

    /// Its `tokio` example compiles to an empty `main` without that feature.
    #[cfg(all(feature = "sqlite", feature = "testing"))]
    #[doc = include_str!("../docs/testing.md")]
    struct Testing;

    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/cancellation.md")]
    struct Cancellation;

    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/errors.md")]
    struct Errors;

    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/parameters.md")]
    struct Parameters;

    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/threading.md")]
    struct Threading;

    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/limitations.md")]
    struct Limitations;

    /// The exporters' blocks are `ignore`: they are not dependencies.
    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/observability.md")]
    struct Observability;

    /// Its examples need a server, so they are `no_run`: compiled only.
    #[cfg(feature = "postgres")]
    #[doc = include_str!("../docs/postgres.md")]
    struct Postgres;

    /// Its examples need servers, so they are `no_run`: compiled only.
    #[cfg(feature = "postgres")]
    #[doc = include_str!("../docs/scaling.md")]
    struct Scaling;

    /// Its examples need a server, so they are `no_run`: compiled only.
    #[cfg(feature = "mysql")]
    #[doc = include_str!("../docs/mysql.md")]
    struct Mysql;

    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/reliability.md")]
    struct Reliability;

    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/benchmarks.md")]
    struct Benchmarks;

    /// Its `sea-query` example compiles to an empty `main` without that feature.
    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/from-sqlalchemy-aio.md")]
    struct FromSqlalchemyAio;

    /// The other crates' blocks are `ignore`: they are not dependencies.
    #[cfg(feature = "sqlite")]
    #[doc = include_str!("../docs/from-rusqlite-wrappers.md")]
    struct FromRusqliteWrappers;
}
