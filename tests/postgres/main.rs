//! What is PostgreSQL's own: its types and their conversions, how to
//! connect to it (TLS, URL forms, passwords), and its sync client kept on
//! its worker thread under every runtime. Behaviour that PostgreSQL shares
//! with the other databases is in `tests/behaviour`.
//!
//! The server comes from `DATABASE_URL` (default
//! `postgres://root@127.0.0.1:5432/test`), each test in a schema of its own.
//! Without a server every test is skipped with a note on stderr, unless
//! `CI=true`, where it fails.
#![cfg(feature = "postgres")]

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod client_on_worker;
mod connecting;
mod statements;
#[cfg(feature = "tls")]
mod tls;
mod types;
