//! Metrics through the `metrics` facade (feature `metrics`), named as
//! OpenTelemetry's database conventions name them.
//!
//! Every key (name and labels) is built once per engine; a call hands the
//! prebuilt key to the installed recorder (`metrics::with_recorder`), so
//! the per-call path allocates nothing and takes no lock of ours. Without
//! a recorder the facade's no-op recorder answers.

use std::time::Duration;

use metrics::{Key, Label, Level, Metadata, Unit};

use crate::error::Error;
use crate::trace::sql::OPERATIONS;

/// `db.client.operation.duration`, seconds.
pub(crate) const OPERATION_DURATION: &str = "db.client.operation.duration";
/// `db.client.connection.count`, by `db.client.connection.state`.
pub(crate) const CONNECTION_COUNT: &str = "db.client.connection.count";
/// `db.client.connection.max`.
pub(crate) const CONNECTION_MAX: &str = "db.client.connection.max";
/// `db.client.connection.pending_requests`.
pub(crate) const PENDING_REQUESTS: &str = "db.client.connection.pending_requests";
/// `db.client.connection.wait_time`, seconds.
pub(crate) const WAIT_TIME: &str = "db.client.connection.wait_time";
/// `db.client.connection.timeouts`.
pub(crate) const TIMEOUTS: &str = "db.client.connection.timeouts";
/// `db.client.connection.create_time`, seconds.
pub(crate) const CREATE_TIME: &str = "db.client.connection.create_time";
/// `db.client.connection.use_time`, seconds.
pub(crate) const USE_TIME: &str = "db.client.connection.use_time";

const POOL_NAME: &str = "db.client.connection.pool.name";

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// An engine's metric keys, built once.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// `db.client.operation.duration` per entry of [`OPERATIONS`], then one without an operation.
    operations: Vec<Key>,
    idle: Key,
    used: Key,
    max: Key,
    max_value: usize,
    pending: Key,
    wait_time: Key,
    timeouts: Key,
    create_time: Key,
    use_time: Key,
}

impl Metrics {
    pub(crate) fn new(system: &'static str, pool_name: String, max: usize) -> Metrics {
        describe();
        let system_label = Label::from_static_parts("db.system.name", system);
        let operations = OPERATIONS
            .iter()
            .map(|op| Some(*op))
            .chain([None])
            .map(|op| {
                let mut labels = vec![system_label.clone()];
                if let Some(op) = op {
                    labels.push(Label::from_static_parts("db.operation.name", op));
                }
                Key::from_parts(OPERATION_DURATION, labels)
            })
            .collect();
        let pool = Label::new(POOL_NAME, pool_name);
        let pooled = |name: &'static str| Key::from_parts(name, vec![pool.clone()]);
        let state = |state: &'static str| {
            Key::from_parts(
                CONNECTION_COUNT,
                vec![
                    pool.clone(),
                    Label::from_static_parts("db.client.connection.state", state),
                ],
            )
        };
        let metrics = Metrics {
            operations,
            idle: state("idle"),
            used: state("used"),
            max: pooled(CONNECTION_MAX),
            max_value: max,
            pending: pooled(PENDING_REQUESTS),
            wait_time: pooled(WAIT_TIME),
            timeouts: pooled(TIMEOUTS),
            create_time: pooled(CREATE_TIME),
            use_time: pooled(USE_TIME),
        };
        metrics::with_recorder(|r| r.register_gauge(&metrics.max, &METADATA).set(max as f64));
        metrics
    }

    /// One operation took `elapsed`; `error` when it failed.
    pub(crate) fn operation(&self, op: Option<&str>, error: Option<&Error>, elapsed: Duration) {
        let index = op
            .and_then(|op| OPERATIONS.iter().position(|known| *known == op))
            .unwrap_or(OPERATIONS.len());
        let Some(key) = self.operations.get(index) else {
            return;
        };
        let seconds = elapsed.as_secs_f64();
        match error {
            None => {
                metrics::with_recorder(|r| r.register_histogram(key, &METADATA).record(seconds))
            }
            // Failures are rarer: their key is built when they happen.
            Some(e) => {
                let key = key.with_extra_labels(vec![Label::new(
                    "error.type",
                    super::error_type(e).to_owned(),
                )]);
                metrics::with_recorder(|r| r.register_histogram(&key, &METADATA).record(seconds));
            }
        }
    }

    /// A caller waited `elapsed` for a connection; `timed_out` when it gave up.
    pub(crate) fn acquired(&self, elapsed: Duration, timed_out: bool) {
        metrics::with_recorder(|r| {
            r.register_histogram(&self.wait_time, &METADATA)
                .record(elapsed.as_secs_f64());
            if timed_out {
                r.register_counter(&self.timeouts, &METADATA).increment(1);
            }
        });
    }

    /// The pool's counts changed: `size` connections (open or opening),
    /// `idle` of them idle, `waiting` callers in line.
    pub(crate) fn counts(&self, size: usize, idle: usize, waiting: usize) {
        metrics::with_recorder(|r| {
            r.register_gauge(&self.idle, &METADATA).set(idle as f64);
            r.register_gauge(&self.used, &METADATA)
                .set(size.saturating_sub(idle) as f64);
            r.register_gauge(&self.pending, &METADATA)
                .set(waiting as f64);
            r.register_gauge(&self.max, &METADATA)
                .set(self.max_value as f64);
        });
    }

    /// A connection took `elapsed` to open.
    pub(crate) fn created(&self, elapsed: Duration) {
        metrics::with_recorder(|r| {
            r.register_histogram(&self.create_time, &METADATA)
                .record(elapsed.as_secs_f64());
        });
    }

    /// A connection was lent out for `elapsed` before it came back.
    pub(crate) fn used(&self, elapsed: Duration) {
        metrics::with_recorder(|r| {
            r.register_histogram(&self.use_time, &METADATA)
                .record(elapsed.as_secs_f64());
        });
    }
}

/// Units and descriptions, given to whichever recorder is installed.
fn describe() {
    metrics::with_recorder(|r| {
        let seconds = [
            (
                OPERATION_DURATION,
                "Duration of database client operations.",
            ),
            (
                WAIT_TIME,
                "The time it took to obtain an open connection from the pool.",
            ),
            (CREATE_TIME, "The time it took to create a new connection."),
            (
                USE_TIME,
                "The time between borrowing a connection and returning it to the pool.",
            ),
        ];
        for (name, text) in seconds {
            r.describe_histogram(name.into(), Some(Unit::Seconds), text.into());
        }
        r.describe_gauge(
            CONNECTION_COUNT.into(),
            Some(Unit::Count),
            "The number of connections that are currently in state described by the state attribute.".into(),
        );
        r.describe_gauge(
            CONNECTION_MAX.into(),
            Some(Unit::Count),
            "The maximum number of open connections allowed.".into(),
        );
        r.describe_gauge(
            PENDING_REQUESTS.into(),
            Some(Unit::Count),
            "The number of current pending requests for an open connection.".into(),
        );
        r.describe_counter(
            TIMEOUTS.into(),
            Some(Unit::Count),
            "The number of connection timeouts that have occurred trying to obtain a connection from the pool.".into(),
        );
    });
}
