//! The behavioural suite: one module per concept, each body stamped per
//! backend, and per runtime where the runtime can change its outcome (see
//! `common`).
//!
//! The first bodies port what Python's sqlalchemy_aio tests; the rest cover
//! what it did not: cancellation, timeouts, the pool, concurrency, the
//! shared in-memory database, isolation, parameters, decoding, bad input,
//! panics, closing, and failed connects.
//!
//! Shared bodies run on SQLite (in memory and in a file) and, with the
//! `postgres` and `mysql` features, on PostgreSQL and MySQL/MariaDB. Where
//! the databases legitimately differ (an error inside a transaction,
//! isolation levels, rowids, implicit commits), a body asserts each one's
//! own behaviour; bodies that test what only one
//! database has are stamped for that backend alone.
#![cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]

#[macro_use]
#[path = "../common/mod.rs"]
mod common;
#[macro_use]
mod support;

mod batches;
mod cancellation;
mod concurrency;
#[cfg(all(feature = "serde", feature = "sqlite"))]
mod deserialize;
mod engine;
mod errors;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod lost_connections;
mod migrations;
mod named_params;
mod pool;
#[cfg(feature = "sea-query")]
mod query_builder;
mod results;
mod run_in_thread;
mod strategies;
mod transaction_options;
mod transactions;
mod values;
mod waiting;
