//! Metrics after OpenTelemetry's database conventions, read back through a
//! small recorder installed for the test's thread.
#![cfg(all(feature = "metrics", feature = "sqlite"))]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use sqlaio::Engine;

/// A metric's name and its labels, sorted, as text: `name{k=v,k=v}`.
fn id(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

#[derive(Default)]
struct Seen {
    counters: HashMap<String, u64>,
    gauges: HashMap<String, f64>,
    histograms: HashMap<String, Vec<f64>>,
    units: HashMap<String, Unit>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Seen>>);

struct Handle(Arc<Mutex<Seen>>, String);

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        *self
            .0
            .lock()
            .unwrap()
            .counters
            .entry(self.1.clone())
            .or_default() += value;
    }
    fn absolute(&self, value: u64) {
        self.0
            .lock()
            .unwrap()
            .counters
            .insert(self.1.clone(), value);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        *self
            .0
            .lock()
            .unwrap()
            .gauges
            .entry(self.1.clone())
            .or_default() += value;
    }
    fn decrement(&self, value: f64) {
        *self
            .0
            .lock()
            .unwrap()
            .gauges
            .entry(self.1.clone())
            .or_default() -= value;
    }
    fn set(&self, value: f64) {
        self.0.lock().unwrap().gauges.insert(self.1.clone(), value);
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.0
            .lock()
            .unwrap()
            .histograms
            .entry(self.1.clone())
            .or_default()
            .push(value);
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit);
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Handle(self.0.clone(), id(key))))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::new(Handle(self.0.clone(), id(key))))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Handle(self.0.clone(), id(key))))
    }
}

impl Capture {
    fn describe(&self, key: KeyName, unit: Option<Unit>) {
        if let Some(unit) = unit {
            self.0
                .lock()
                .unwrap()
                .units
                .insert(key.as_str().to_owned(), unit);
        }
    }
}

fn run<F: std::future::Future<Output = ()>>(capture: &Capture, body: F) {
    metrics::with_local_recorder(capture, || futures::executor::block_on(body));
}

#[test]
fn operations_and_the_pool_are_measured_with_their_attributes() {
    let capture = Capture::default();
    run(&capture, async {
        let engine = Engine::builder()
            .url("sqlite::memory:")
            .pool_name("orders-db")
            .max_connections(2)
            .acquire_timeout(Duration::from_millis(50))
            .build()
            .unwrap();
        engine
            .execute("CREATE TABLE t (id INTEGER PRIMARY KEY)", ())
            .await
            .unwrap();
        engine
            .execute("INSERT INTO t (id) VALUES (1)", ())
            .await
            .unwrap();
        assert!(engine
            .execute("INSERT INTO t (id) VALUES (1)", ())
            .await
            .is_err());
        let rows = engine
            .execute("SELECT id FROM t", ())
            .await
            .unwrap()
            .fetchall()
            .await;
        assert_eq!(rows.unwrap().len(), 1);
        // Both connections taken: the third caller times out.
        let a = engine.connect().await.unwrap();
        let b = engine.connect().await.unwrap();
        let err = engine.connect().await.unwrap_err();
        assert!(err.is_pool_timeout(), "{err}");
        drop((a, b));
        engine.close().await.unwrap();
    });
    let seen = capture.0.lock().unwrap();
    let duration = |labels: &str| {
        seen.histograms
            .get(&format!("db.client.operation.duration{{{labels}}}"))
            .map_or(0, Vec::len)
    };
    assert_eq!(
        duration("db.operation.name=INSERT,db.system.name=sqlite"),
        1,
        "{:?}",
        seen.histograms.keys()
    );
    assert_eq!(
        duration("db.operation.name=INSERT,db.system.name=sqlite,error.type=1555"),
        1,
        "{:?}",
        seen.histograms.keys()
    );
    assert_eq!(
        duration("db.operation.name=SELECT,db.system.name=sqlite"),
        1
    );
    assert_eq!(
        duration("db.operation.name=CREATE,db.system.name=sqlite"),
        1
    );
    assert_eq!(
        seen.units.get("db.client.operation.duration"),
        Some(&Unit::Seconds)
    );

    let pool = "db.client.connection.pool.name=orders-db";
    assert_eq!(
        seen.gauges[&format!("db.client.connection.max{{{pool}}}")],
        2.0
    );
    assert_eq!(
        seen.counters[&format!("db.client.connection.timeouts{{{pool}}}")],
        1
    );
    for name in ["wait_time", "create_time", "use_time"] {
        let key = format!("db.client.connection.{name}{{{pool}}}");
        assert!(
            seen.histograms.get(&key).is_some_and(|v| !v.is_empty()),
            "{key}: {:?}",
            seen.histograms.keys()
        );
    }
    for state in ["idle", "used"] {
        let key =
            format!("db.client.connection.count{{{pool},db.client.connection.state={state}}}");
        assert!(seen.gauges.contains_key(&key), "{key}: {:?}", seen.gauges);
    }
    // Closed: nothing idle any more.
    assert_eq!(
        seen.gauges
            [&format!("db.client.connection.count{{{pool},db.client.connection.state=idle}}")],
        0.0
    );
    assert!(seen
        .gauges
        .contains_key(&format!("db.client.connection.pending_requests{{{pool}}}")));
}

#[test]
fn the_pool_name_defaults_to_the_url_without_credentials() {
    let capture = Capture::default();
    run(&capture, async {
        let engine = Engine::builder().url("sqlite::memory:").build().unwrap();
        let one: i64 = engine.scalar("SELECT 1", ()).await.unwrap();
        assert_eq!(one, 1);
        engine.close().await.unwrap();
    });
    let seen = capture.0.lock().unwrap();
    assert!(
        seen.gauges.contains_key(
            "db.client.connection.max{db.client.connection.pool.name=sqlite::memory:}"
        ),
        "{:?}",
        seen.gauges.keys()
    );
}
