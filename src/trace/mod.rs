//! Traces and metrics (features `tracing` and `metrics`), following
//! OpenTelemetry's stable database semantic conventions.
//!
//! Every statement gets one `sqlaio.statement` span (`otel.name` is the
//! operation and table, `SELECT users`), with `db.system.name`,
//! `db.namespace`, `db.query.text` capped at [`MAX_STATEMENT_LEN`] bytes,
//! `db.operation.name`, `db.collection.name`, `server.address` and
//! `server.port`; on failure `error.type`, `db.response.status_code` and
//! `otel.status_code = "ERROR"`. The span stays open while its result is
//! read and records `db.response.returned_rows` once the result is drained,
//! closed or dropped; each later fetch is a `debug` event in it.
//! Transaction statements and `run_in_thread` calls get spans of their own
//! (`sqlaio.transaction`, `sqlaio.call`). Parameter values are recorded
//! only when the engine opts in with
//! [`log_parameters`](crate::EngineBuilder::log_parameters). A statement
//! slower than the engine's
//! [`slow_statement_threshold`](crate::EngineBuilder::slow_statement_threshold)
//! is logged at `warn`. Without the features, all of this compiles to
//! nothing; `docs/observability.md` lists every attribute.
//!
//! - `sql.rs`: the operation and table read off a statement;
//! - `peer.rs`: the database and server read off the engine's URL;
//! - `metrics.rs`: the metrics and their keys, built once per engine.

// Each of the two features uses part of what is here; with one or none,
// the rest compiles to nothing.
#![cfg_attr(
    not(all(feature = "tracing", feature = "metrics")),
    allow(dead_code, unused_mut, unused_variables)
)]

use std::time::Duration;
#[cfg(any(feature = "tracing", feature = "metrics"))]
use std::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::params::Parameters;
use crate::sql::Dialect;

#[cfg(feature = "metrics")]
mod metrics;
mod peer;
mod sql;

use self::peer::Peer;

/// The longest statement text a span records, in bytes.
pub const MAX_STATEMENT_LEN: usize = 1024;

/// What the engine records, as its builder set it.
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) struct TraceConfig {
    pub(crate) slow_threshold: Option<Duration>,
    pub(crate) log_parameters: bool,
    /// `db.client.connection.pool.name`; see `EngineBuilder::pool_name`.
    pub(crate) pool_name: Option<String>,
}

/// The OpenTelemetry `db.system.name` of a dialect (MariaDB is told apart
/// by its URL scheme in [`Telemetry::new`]).
fn system(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "sqlite",
        Dialect::Postgres => "postgresql",
        Dialect::MySql => "mysql",
    }
}

#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
fn capped(sql: &str) -> &str {
    if sql.len() <= MAX_STATEMENT_LEN {
        return sql;
    }
    let mut end = MAX_STATEMENT_LEN;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    &sql[..end]
}

/// `error.type`: the database's status code (SQLSTATE, ...) when there is
/// one, otherwise the kind of error in snake case.
#[cfg_attr(not(any(feature = "tracing", feature = "metrics")), allow(dead_code))]
fn error_type(e: &Error) -> &str {
    if let Some(code) = e.code() {
        return code;
    }
    match e.kind() {
        ErrorKind::UniqueViolation => "unique_violation",
        ErrorKind::ForeignKeyViolation => "foreign_key_violation",
        ErrorKind::NotNullViolation => "not_null_violation",
        ErrorKind::CheckViolation => "check_violation",
        ErrorKind::SerializationFailure => "serialization_failure",
        ErrorKind::Deadlock => "deadlock",
        ErrorKind::LockTimeout => "lock_timeout",
        ErrorKind::ReadOnly => "read_only",
        ErrorKind::QueryCanceled => "query_canceled",
        ErrorKind::Timeout => "timeout",
        ErrorKind::PoolTimeout => "pool_timeout",
        ErrorKind::ConnectionFailed => "connection_failed",
        ErrorKind::ConnectionLost => "connection_lost",
        ErrorKind::Closed => "closed",
        ErrorKind::TransactionAborted => "transaction_aborted",
        ErrorKind::Syntax => "syntax",
        ErrorKind::Parameter => "parameter",
        ErrorKind::Decode => "decode",
        ErrorKind::NoRows => "no_rows",
        ErrorKind::Config => "config",
        _ => "other",
    }
}

/// What an engine records and where its connections go, fixed when it is built.
#[derive(Debug)]
#[cfg_attr(not(any(feature = "tracing", feature = "metrics")), allow(dead_code))]
pub(crate) struct Telemetry {
    system: &'static str,
    peer: Peer,
    config: TraceConfig,
    #[cfg(feature = "metrics")]
    metrics: self::metrics::Metrics,
}

impl Telemetry {
    /// Reads the database and server off the engine's `url` once.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(config: TraceConfig, dialect: Dialect, url: &str, max: usize) -> Telemetry {
        let system = match system(dialect) {
            // Told apart by the URL's scheme only: the server is not asked.
            "mysql"
                if url
                    .trim_start()
                    .get(..8)
                    .is_some_and(|s| s.eq_ignore_ascii_case("mariadb:")) =>
            {
                "mariadb"
            }
            system => system,
        };
        let peer = Peer::from_url(system, url);
        #[cfg(feature = "metrics")]
        let metrics = {
            let name = config
                .pool_name
                .clone()
                .unwrap_or_else(|| peer.pool_name(system));
            self::metrics::Metrics::new(system, name, max)
        };
        Telemetry {
            system,
            peer,
            config,
            #[cfg(feature = "metrics")]
            metrics,
        }
    }

    /// The pool's metrics.
    #[cfg(feature = "metrics")]
    pub(crate) fn metrics(&self) -> &self::metrics::Metrics {
        &self.metrics
    }

    /// Starts the trace of one statement.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn statement(&self, sql: &str, params: Option<&Parameters>) -> StatementTrace<'_> {
        #[cfg(feature = "metrics")]
        let mut trace = StatementTrace::new(self, sql::operation(sql));
        #[cfg(not(feature = "metrics"))]
        let mut trace = StatementTrace::new(self, None);
        #[cfg(feature = "tracing")]
        {
            let span = tracing::info_span!(
                "sqlaio.statement",
                otel.name = tracing::field::Empty,
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                otel.status_message = tracing::field::Empty,
                db.system.name = self.system,
                db.namespace = tracing::field::Empty,
                db.query.text = capped(sql),
                db.operation.name = tracing::field::Empty,
                db.collection.name = tracing::field::Empty,
                db.operation.batch.size = tracing::field::Empty,
                db.response.status_code = tracing::field::Empty,
                db.response.returned_rows = tracing::field::Empty,
                error.type = tracing::field::Empty,
                server.address = tracing::field::Empty,
                server.port = tracing::field::Empty,
                "db.query.parameter.0" = tracing::field::Empty,
                "db.query.parameter.1" = tracing::field::Empty,
                "db.query.parameter.2" = tracing::field::Empty,
                "db.query.parameter.3" = tracing::field::Empty,
                "db.query.parameter.4" = tracing::field::Empty,
                "db.query.parameter.5" = tracing::field::Empty,
                "db.query.parameter.6" = tracing::field::Empty,
                "db.query.parameter.7" = tracing::field::Empty,
                "db.query.parameter.8" = tracing::field::Empty,
                "db.query.parameter.9" = tracing::field::Empty,
                "db.query.parameter.10" = tracing::field::Empty,
                "db.query.parameter.11" = tracing::field::Empty,
            );
            if !span.is_disabled() {
                self.describe(&span, sql::operation(sql), sql::collection(sql));
                if self.config.log_parameters {
                    if let Some(params) = params {
                        record_parameters(&span, params);
                    }
                }
            }
            trace.span = span;
        }
        #[allow(clippy::let_and_return)]
        trace
    }

    /// Starts the trace of a transaction statement (`BEGIN`, `COMMIT`,
    /// `ROLLBACK`, `SAVEPOINT`, `RELEASE`) or, with `None`, a `run_in_thread` call.
    pub(crate) fn operation(&self, op: Option<&'static str>) -> StatementTrace<'_> {
        let mut trace = StatementTrace::new(self, op);
        #[cfg(feature = "tracing")]
        {
            let span = match op {
                Some(_) => tracing::info_span!(
                    "sqlaio.transaction",
                    otel.name = tracing::field::Empty,
                    otel.kind = "client",
                    otel.status_code = tracing::field::Empty,
                    otel.status_message = tracing::field::Empty,
                    db.system.name = self.system,
                    db.namespace = tracing::field::Empty,
                    db.operation.name = tracing::field::Empty,
                    db.response.status_code = tracing::field::Empty,
                    error.type = tracing::field::Empty,
                    server.address = tracing::field::Empty,
                    server.port = tracing::field::Empty,
                ),
                None => tracing::info_span!(
                    "sqlaio.call",
                    otel.name = tracing::field::Empty,
                    otel.kind = "client",
                    otel.status_code = tracing::field::Empty,
                    otel.status_message = tracing::field::Empty,
                    db.system.name = self.system,
                    db.namespace = tracing::field::Empty,
                    db.operation.name = tracing::field::Empty,
                    db.response.status_code = tracing::field::Empty,
                    error.type = tracing::field::Empty,
                    server.address = tracing::field::Empty,
                    server.port = tracing::field::Empty,
                ),
            };
            if !span.is_disabled() {
                self.describe(&span, op, None);
                if op.is_none() {
                    span.record("otel.name", "run_in_thread");
                }
            }
            trace.span = span;
        }
        #[allow(clippy::let_and_return, unused_mut)]
        trace
    }

    /// Records the name and the attributes every span of the engine has.
    #[cfg(feature = "tracing")]
    fn describe(&self, span: &tracing::Span, op: Option<&str>, collection: Option<&str>) {
        let name = match (op, collection) {
            (Some(op), Some(table)) => format!("{op} {table}"),
            (Some(op), None) => op.to_owned(),
            (None, _) => self.system.to_owned(),
        };
        span.record("otel.name", name.as_str());
        if let Some(op) = op {
            span.record("db.operation.name", op);
        }
        if let Some(table) = collection {
            span.record("db.collection.name", table);
        }
        if let Some(namespace) = &self.peer.namespace {
            span.record("db.namespace", namespace.as_str());
        }
        if let Some(address) = &self.peer.address {
            span.record("server.address", address.as_str());
        }
        if let Some(port) = self.peer.port {
            span.record("server.port", port);
        }
    }

    /// Starts the trace of a wait for a pooled connection.
    pub(crate) fn acquire(&self) -> AcquireTrace<'_> {
        AcquireTrace {
            #[cfg(feature = "tracing")]
            span: tracing::debug_span!(
                "sqlaio.acquire",
                db.system.name = self.system,
                error.type = tracing::field::Empty,
            ),
            #[cfg(feature = "metrics")]
            telemetry: self,
            #[cfg(feature = "metrics")]
            started: Instant::now(),
            #[cfg(not(feature = "metrics"))]
            _telemetry: std::marker::PhantomData,
        }
    }
}

/// Records parameter values as `db.query.parameter.<i>`: positional ones
/// at their index, named ones after them as `name=value` (span fields
/// cannot be named at run time). Only the first twelve are recorded.
#[cfg(feature = "tracing")]
fn record_parameters(span: &tracing::Span, params: &Parameters) {
    const KEYS: [&str; 12] = [
        "db.query.parameter.0",
        "db.query.parameter.1",
        "db.query.parameter.2",
        "db.query.parameter.3",
        "db.query.parameter.4",
        "db.query.parameter.5",
        "db.query.parameter.6",
        "db.query.parameter.7",
        "db.query.parameter.8",
        "db.query.parameter.9",
        "db.query.parameter.10",
        "db.query.parameter.11",
    ];
    let positional = params.positional.iter().map(|v| format!("{v:?}"));
    let named = params.named.iter().map(|(k, v)| format!("{k}={v:?}"));
    let lists = params.lists.iter().map(|(k, v)| format!("{k}={v:?}"));
    for (key, value) in KEYS.iter().zip(positional.chain(named).chain(lists)) {
        span.record(*key, value.as_str());
    }
}

/// One statement's trace, from the call until its answer; its span goes
/// on in the [`RowsTrace`] of a result with rows still to read.
pub(crate) struct StatementTrace<'t> {
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    telemetry: &'t Telemetry,
    #[cfg(not(any(feature = "tracing", feature = "metrics")))]
    telemetry: std::marker::PhantomData<&'t Telemetry>,
    #[cfg(feature = "metrics")]
    op: Option<&'static str>,
    /// `None` when nothing would use the duration: no clock is read.
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    started: Option<Instant>,
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl<'t> StatementTrace<'t> {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    fn new(telemetry: &'t Telemetry, op: Option<&'static str>) -> StatementTrace<'t> {
        // The span measures its own duration: the clock is read only for
        // the metrics and the slow-statement warning.
        #[cfg(any(feature = "tracing", feature = "metrics"))]
        let timed = cfg!(feature = "metrics") || telemetry.config.slow_threshold.is_some();
        StatementTrace {
            #[cfg(any(feature = "tracing", feature = "metrics"))]
            telemetry,
            #[cfg(not(any(feature = "tracing", feature = "metrics")))]
            telemetry: std::marker::PhantomData,
            #[cfg(feature = "metrics")]
            op,
            #[cfg(any(feature = "tracing", feature = "metrics"))]
            started: timed.then(Instant::now),
            #[cfg(feature = "tracing")]
            span: tracing::Span::none(),
        }
    }

    /// Records `db.operation.batch.size` for an `execute_many`.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn batch_size(&self, size: usize) {
        #[cfg(feature = "tracing")]
        if size >= 2 {
            self.span.record("db.operation.batch.size", size as u64);
        }
    }

    /// Records that the statement did not run on this connection: it goes
    /// to another one, which traces it again. Nothing is measured.
    pub(crate) fn bounced(self) {}

    /// Records the outcome. `returned` gives the rows returned so far for a
    /// statement that returns rows (`None` otherwise); the span goes on in
    /// the [`RowsTrace`], which counts the rest.
    #[cfg_attr(
        not(any(feature = "tracing", feature = "metrics")),
        allow(unused_variables)
    )]
    pub(crate) fn finish<T>(
        self,
        result: &Result<T>,
        returned: impl FnOnce(&T) -> Option<u64>,
    ) -> RowsTrace {
        #[cfg(any(feature = "tracing", feature = "metrics"))]
        let elapsed = self.started.map(|started| started.elapsed());
        #[cfg(feature = "metrics")]
        if let Some(elapsed) = elapsed {
            self.telemetry
                .metrics
                .operation(self.op, result.as_ref().err(), elapsed);
        }
        #[cfg(feature = "tracing")]
        {
            let span = self.span;
            let with_values = self.telemetry.config.log_parameters;
            if let Err(e) = result {
                failed(&span, e, with_values);
            }
            if let (Some(elapsed), Some(threshold)) =
                (elapsed, self.telemetry.config.slow_threshold)
            {
                if elapsed >= threshold {
                    span.in_scope(|| {
                        tracing::warn!(
                            duration_ms = elapsed.as_secs_f64() * 1000.0,
                            threshold_ms = threshold.as_secs_f64() * 1000.0,
                            "slow statement"
                        );
                    });
                }
            }
            match result {
                Ok(value) if !span.is_disabled() => match returned(value) {
                    Some(count) => RowsTrace {
                        span: Some(span),
                        count,
                        with_values,
                    },
                    None => RowsTrace::none(),
                },
                _ => RowsTrace::none(),
            }
        }
        #[cfg(not(feature = "tracing"))]
        RowsTrace::none()
    }
}

/// Records a failure on `span`: `error.type`, `db.response.status_code`,
/// and the span's status.
///
/// A database's message may repeat values of the statement (PostgreSQL's
/// `DETAIL: Key (email)=(...)`, MySQL's `Duplicate entry '...'`), so it
/// is recorded only where parameter values are (`with_values`); otherwise
/// the status message names the kind of failure.
#[cfg(feature = "tracing")]
fn failed(span: &tracing::Span, e: &Error, with_values: bool) {
    span.record("otel.status_code", "ERROR");
    if with_values || !e.is_database() {
        span.record("otel.status_message", tracing::field::display(e));
    } else {
        span.record(
            "otel.status_message",
            tracing::field::display(format_args!("database error: {:?}", e.kind())),
        );
    }
    span.record("error.type", error_type(e));
    if let Some(code) = e.code() {
        span.record("db.response.status_code", code);
    }
}

/// The rest of a statement's span while its result is read: counts the
/// rows returned and records `db.response.returned_rows` when dropped
/// (the result drained, closed or dropped). Empty without a subscriber.
#[derive(Default)]
pub(crate) struct RowsTrace {
    #[cfg(feature = "tracing")]
    span: Option<tracing::Span>,
    #[cfg(feature = "tracing")]
    count: u64,
    /// Errors keep their full message (see `failed`).
    #[cfg(feature = "tracing")]
    with_values: bool,
}

impl RowsTrace {
    /// Nothing to record.
    pub(crate) fn none() -> RowsTrace {
        RowsTrace::default()
    }

    /// A later fetch brought `rows` rows: counted, and a `debug` event in the span.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn fetched(&mut self, rows: usize) {
        #[cfg(feature = "tracing")]
        if let Some(span) = &self.span {
            self.count += rows as u64;
            tracing::debug!(parent: span, rows = rows as u64, "fetch");
        }
    }

    /// A later fetch failed: recorded on the span as its failure.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn fetch_failed(&mut self, e: &Error) {
        #[cfg(feature = "tracing")]
        if let Some(span) = &self.span {
            failed(span, e, self.with_values);
        }
    }
}

#[cfg(feature = "tracing")]
impl Drop for RowsTrace {
    fn drop(&mut self) {
        if let Some(span) = self.span.take() {
            span.record("db.response.returned_rows", self.count);
        }
    }
}

impl std::fmt::Debug for RowsTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowsTrace").finish_non_exhaustive()
    }
}

/// Records a wait for a pooled connection: a `debug` span, and with
/// metrics `db.client.connection.wait_time` and `.timeouts`.
pub(crate) struct AcquireTrace<'t> {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    #[cfg(feature = "metrics")]
    telemetry: &'t Telemetry,
    #[cfg(feature = "metrics")]
    started: Instant,
    #[cfg(not(feature = "metrics"))]
    _telemetry: std::marker::PhantomData<&'t Telemetry>,
}

impl AcquireTrace<'_> {
    #[cfg_attr(
        not(any(feature = "tracing", feature = "metrics")),
        allow(unused_variables)
    )]
    pub(crate) fn finish<T>(self, result: &Result<T>) {
        #[cfg(feature = "tracing")]
        if let Err(e) = result {
            self.span.record("error.type", error_type(e));
        }
        #[cfg(feature = "metrics")]
        self.telemetry.metrics.acquired(
            self.started.elapsed(),
            matches!(result, Err(e) if e.is_pool_timeout()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{capped, Telemetry, TraceConfig};
    use crate::sql::Dialect;

    #[test]
    fn mariadb_is_told_apart_by_its_url_scheme() {
        let system =
            |url: &str| Telemetry::new(TraceConfig::default(), Dialect::MySql, url, 1).system;
        assert_eq!(system("mariadb://u@db/app"), "mariadb");
        assert_eq!(system("MariaDB://u@db/app"), "mariadb");
        assert_eq!(system("mysql://u@db/app"), "mysql");
    }

    #[test]
    fn statements_are_capped_on_a_char_boundary() {
        let long = "é".repeat(super::MAX_STATEMENT_LEN);
        let cut = capped(&long);
        assert!(cut.len() <= super::MAX_STATEMENT_LEN);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(capped("SELECT 1"), "SELECT 1");
    }
}
