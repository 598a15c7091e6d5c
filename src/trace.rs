//! Tracing spans for statements and pool waits (feature `tracing`).
//!
//! Every statement gets one `sqlaio.statement` span with the database
//! system, the statement text capped at [`MAX_STATEMENT_LEN`] bytes, its
//! duration, rows returned or affected, and its outcome. Parameter values
//! are recorded only when the engine opts in with
//! [`log_parameters`](crate::EngineBuilder::log_parameters). A statement
//! slower than the engine's
//! [`slow_statement_threshold`](crate::EngineBuilder::slow_statement_threshold)
//! is logged at `warn`. Without the feature, all of this compiles to nothing.

use std::time::Duration;

use crate::error::Result;
use crate::params::Parameters;
use crate::sql::Dialect;

/// The longest statement text a span records, in bytes.
pub const MAX_STATEMENT_LEN: usize = 1024;

/// What the engine records about statements.
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) struct TraceConfig {
    pub(crate) slow_threshold: Option<Duration>,
    pub(crate) log_parameters: bool,
}

#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
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

/// One statement's span, from the call until its answer.
pub(crate) struct StatementTrace {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    /// `None` when nothing would record the duration (no subscriber wants
    /// the span and no slow-statement threshold is set): no clock is read.
    #[cfg(feature = "tracing")]
    started: Option<std::time::Instant>,
    #[cfg(feature = "tracing")]
    slow: Option<Duration>,
}

impl StatementTrace {
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn start(
        config: &TraceConfig,
        dialect: Dialect,
        sql: &str,
        params: Option<&Parameters>,
    ) -> StatementTrace {
        #[cfg(feature = "tracing")]
        {
            let span = tracing::info_span!(
                "sqlaio.statement",
                db.system = system(dialect),
                db.statement = capped(sql),
                db.parameters = tracing::field::Empty,
                duration_ms = tracing::field::Empty,
                rows = tracing::field::Empty,
                outcome = tracing::field::Empty,
                error = tracing::field::Empty,
            );
            if config.log_parameters {
                if let Some(params) = params {
                    span.record("db.parameters", tracing::field::debug(params));
                }
            }
            let timed = !span.is_disabled() || config.slow_threshold.is_some();
            StatementTrace {
                span,
                started: timed.then(std::time::Instant::now),
                slow: config.slow_threshold,
            }
        }
        #[cfg(not(feature = "tracing"))]
        StatementTrace {}
    }

    /// Records that the statement did not run on this connection: it goes
    /// to another one, which traces it again.
    pub(crate) fn bounced(self) {
        #[cfg(feature = "tracing")]
        self.span.record("outcome", "moved");
    }

    /// Records the outcome; `rows` are the rows returned (first batch) or affected.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn finish<T>(self, result: &Result<T>, rows: impl FnOnce(&T) -> u64) {
        #[cfg(feature = "tracing")]
        {
            let Some(started) = self.started else { return };
            let elapsed = started.elapsed();
            let span = &self.span;
            span.record("duration_ms", elapsed.as_secs_f64() * 1000.0);
            match result {
                Ok(value) => {
                    span.record("rows", rows(value));
                    span.record("outcome", "ok");
                }
                Err(e) => {
                    span.record("outcome", if e.is_timeout() { "timeout" } else { "error" });
                    span.record("error", tracing::field::display(e));
                }
            }
            if let Some(threshold) = self.slow {
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
        }
    }
}

/// Records a wait for a pooled connection as its own span.
pub(crate) struct AcquireTrace {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    #[cfg(feature = "tracing")]
    started: std::time::Instant,
}

impl AcquireTrace {
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn start(dialect: Dialect) -> AcquireTrace {
        #[cfg(feature = "tracing")]
        {
            AcquireTrace {
                span: tracing::debug_span!(
                    "sqlaio.acquire",
                    db.system = system(dialect),
                    wait_ms = tracing::field::Empty,
                    outcome = tracing::field::Empty,
                ),
                started: std::time::Instant::now(),
            }
        }
        #[cfg(not(feature = "tracing"))]
        AcquireTrace {}
    }

    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn finish<T>(self, result: &Result<T>) {
        #[cfg(feature = "tracing")]
        {
            self.span
                .record("wait_ms", self.started.elapsed().as_secs_f64() * 1000.0);
            self.span.record(
                "outcome",
                match result {
                    Ok(_) => "ok",
                    Err(e) if e.is_pool_timeout() => "timeout",
                    Err(_) => "error",
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::capped;

    #[test]
    fn statements_are_capped_on_a_char_boundary() {
        let long = "é".repeat(super::MAX_STATEMENT_LEN);
        let cut = capped(&long);
        assert!(cut.len() <= super::MAX_STATEMENT_LEN);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(capped("SELECT 1"), "SELECT 1");
    }
}
