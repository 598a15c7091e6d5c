//! Spans after OpenTelemetry's database conventions: their attributes, the
//! rows counted to the end of a result, transaction and `run_in_thread`
//! spans, and that parameter values stay out of them unless the engine opts
//! in. The PostgreSQL test uses `DATABASE_URL` (skipped with a notice when
//! no server answers, a failure under `CI=true`).
#![cfg(feature = "tracing")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlaio::Engine;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A span's name and its recorded fields, as text.
type SpanFields = (String, HashMap<String, String>);

/// Every span and event seen.
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<HashMap<u64, SpanFields>>>,
    events: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.spans
            .lock()
            .unwrap()
            .insert(id.into_u64(), (attrs.metadata().name().to_owned(), fields));
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some((_, fields)) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        fields.insert("level".into(), event.metadata().level().to_string());
        self.events.lock().unwrap().push(fields);
    }
}

impl Capture {
    fn statements(&self) -> Vec<HashMap<String, String>> {
        self.named("sqlaio.statement")
    }

    fn named(&self, wanted: &str) -> Vec<HashMap<String, String>> {
        let spans = self.spans.lock().unwrap();
        let mut ids: Vec<_> = spans
            .iter()
            .filter(|(_, (name, _))| name == wanted)
            .map(|(id, (_, f))| (*id, f.clone()))
            .collect();
        ids.sort_by_key(|(id, _)| *id);
        ids.into_iter().map(|(_, f)| f).collect()
    }
}

fn run<F: std::future::Future<Output = ()>>(capture: &Capture, body: F) {
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, || futures::executor::block_on(body));
}

#[test]
fn statement_spans_follow_the_database_conventions() {
    let capture = Capture::default();
    run(&capture, async {
        let engine = Engine::builder().url("sqlite::memory:").build().unwrap();
        engine
            .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, secret TEXT)", ())
            .await
            .unwrap();
        engine
            .execute(
                "INSERT INTO t (secret) VALUES (?1), (?2)",
                ("hunter2-value", "swordfish-value"),
            )
            .await
            .unwrap();
        let rows = engine
            .execute("SELECT secret FROM t", ())
            .await
            .unwrap()
            .fetchall()
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert!(engine.execute("SELEC nonsense", ()).await.is_err());
        engine.close().await.unwrap();
    });
    let statements = capture.statements();
    let insert = statements
        .iter()
        .find(|f| f["db.query.text"].starts_with("INSERT"))
        .expect("a span for the insert");
    assert_eq!(insert["db.system.name"], "sqlite");
    assert_eq!(insert["otel.kind"], "client");
    assert_eq!(insert["otel.name"], "INSERT t");
    assert_eq!(insert["db.operation.name"], "INSERT");
    assert_eq!(insert["db.collection.name"], "t");
    assert_eq!(insert["db.namespace"], ":memory:");
    assert!(!insert.contains_key("otel.status_code"), "{insert:?}");
    assert!(!insert.contains_key("server.address"), "{insert:?}");
    let select = statements
        .iter()
        .find(|f| f["db.query.text"] == "SELECT secret FROM t")
        .expect("a span for the select");
    assert_eq!(select["db.response.returned_rows"], "2");
    assert_eq!(select["otel.name"], "SELECT t");
    let failed = statements
        .iter()
        .find(|f| f["db.query.text"] == "SELEC nonsense")
        .expect("a span for the failed statement");
    assert_eq!(failed["otel.status_code"], "ERROR");
    assert_eq!(failed["otel.name"], "sqlite");
    assert!(failed.contains_key("error.type"), "{failed:?}");
    assert_eq!(
        failed["otel.status_message"], "database error: Syntax",
        "{failed:?}"
    );
    // The old names are gone.
    for old in [
        "db.system",
        "db.statement",
        "db.parameters",
        "rows",
        "outcome",
        "duration_ms",
    ] {
        assert!(statements.iter().all(|f| !f.contains_key(old)), "{old}");
    }

    // Parameter values appear nowhere by default.
    let everything = format!("{statements:?} {:?}", capture.events.lock().unwrap());
    assert!(!everything.contains("hunter2-value"), "{everything}");
    assert!(!everything.contains("swordfish-value"), "{everything}");
}

#[test]
fn returned_rows_count_every_batch_and_fetches_are_events() {
    let capture = Capture::default();
    run(&capture, async {
        let engine = Engine::builder().url("sqlite::memory:").build().unwrap();
        let sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) \
                   SELECT i FROM n";
        // Streamed row by row, across several batches.
        let mut result = engine.execute(sql, ()).await.unwrap();
        let mut count = 0;
        while result.fetchone().await.unwrap().is_some() {
            count += 1;
        }
        assert_eq!(count, 3000);
        drop(result);
        // Closed after a few rows: the count is what was read.
        let mut result = engine.execute(sql, ()).await.unwrap();
        let _ = result.fetchmany(300).await.unwrap();
        result.close().await.unwrap();
        engine.close().await.unwrap();
    });
    let counts: Vec<_> = capture
        .statements()
        .iter()
        .map(|f| f["db.response.returned_rows"].clone())
        .collect();
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert_eq!(counts[0], "3000");
    let partial: u64 = counts[1].parse().unwrap();
    assert!((300..3000).contains(&partial), "{counts:?}");
    let events = capture.events.lock().unwrap();
    assert!(events
        .iter()
        .any(|e| e.get("message").is_some_and(|m| m == "fetch")));
}

#[test]
fn transactions_batches_and_calls_have_spans() {
    let capture = Capture::default();
    run(&capture, async {
        let engine = Engine::builder().url("sqlite::memory:").build().unwrap();
        let conn = engine.connect().await.unwrap();
        conn.execute("CREATE TABLE t (x INTEGER)", ())
            .await
            .unwrap();
        let tx = conn.begin().await.unwrap();
        let nested = tx.begin_nested().await.unwrap();
        nested.rollback().await.unwrap();
        tx.execute_many("INSERT INTO t (x) VALUES (?1)", (0..100).map(|i| (i,)))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let n: i64 = conn
            .run_in_thread(|raw: &mut sqlaio::rusqlite::Connection| {
                raw.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                    .map_err(|e| sqlaio::Error::Statement(e.to_string()))
            })
            .await
            .unwrap();
        assert_eq!(n, 100);
        conn.close().await.unwrap();
        engine.close().await.unwrap();
    });
    let ops: Vec<_> = capture
        .named("sqlaio.transaction")
        .iter()
        .map(|f| f["db.operation.name"].clone())
        .collect();
    assert_eq!(ops, ["BEGIN", "SAVEPOINT", "ROLLBACK", "COMMIT"]);
    let tx = &capture.named("sqlaio.transaction")[0];
    assert_eq!(tx["otel.kind"], "client");
    assert_eq!(tx["db.system.name"], "sqlite");
    let batch = capture
        .statements()
        .into_iter()
        .find(|f| f["db.query.text"].starts_with("INSERT"))
        .expect("a span for the batch");
    assert_eq!(batch["db.operation.batch.size"], "100");
    let calls = capture.named("sqlaio.call");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["otel.name"], "run_in_thread");
}

#[cfg(feature = "postgres")]
#[test]
fn a_failing_postgres_insert_reports_its_sqlstate_and_no_parameter() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into());
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    let probe = futures::executor::block_on(async {
        let engine = Engine::builder()
            .url(url.as_str())
            .acquire_timeout(Duration::from_secs(3))
            .build()?;
        let one: i64 = engine.scalar("SELECT 1::BIGINT", ()).await?;
        engine.close().await?;
        Ok::<_, sqlaio::Error>(one)
    });
    if let Err(e) = probe {
        if ci {
            panic!("no PostgreSQL server at DATABASE_URL: {e} (CI=true: a missing server fails the test)");
        }
        eprintln!("skipped: no PostgreSQL server at DATABASE_URL ({e})");
        return;
    }
    let table = format!("trace_unique_{}", std::process::id());
    let capture = Capture::default();
    run(&capture, async {
        let engine = Engine::builder().url(url.as_str()).build().unwrap();
        engine
            .execute(
                format!("CREATE TABLE {table} (email TEXT PRIMARY KEY)").as_str(),
                (),
            )
            .await
            .unwrap();
        let insert = format!("INSERT INTO {table} (email) VALUES ($1)");
        engine
            .execute(insert.as_str(), ("dana-secret@example.com",))
            .await
            .unwrap();
        let err = engine
            .execute(insert.as_str(), ("dana-secret@example.com",))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("23505"));
        engine
            .execute(format!("DROP TABLE {table}").as_str(), ())
            .await
            .unwrap();
        engine.close().await.unwrap();
    });
    let statements = capture.statements();
    let failed = statements
        .iter()
        .filter(|f| f["db.query.text"].starts_with("INSERT"))
        .find(|f| f.contains_key("otel.status_code"))
        .expect("a span for the failed insert");
    assert_eq!(failed["db.system.name"], "postgresql");
    assert_eq!(failed["db.response.status_code"], "23505");
    assert_eq!(failed["error.type"], "23505");
    assert_eq!(failed["otel.status_code"], "ERROR");
    assert_eq!(failed["otel.kind"], "client");
    assert_eq!(failed["db.operation.name"], "INSERT");
    assert_eq!(failed["db.collection.name"], table);
    assert!(!failed["server.address"].is_empty(), "{failed:?}");
    assert!(!failed["db.namespace"].is_empty(), "{failed:?}");
    assert!(failed.contains_key("server.port"), "{failed:?}");
    let everything = format!("{statements:?} {:?}", capture.events.lock().unwrap());
    assert!(!everything.contains("dana-secret"), "{everything}");
    assert!(
        statements
            .iter()
            .all(|f| !f.keys().any(|k| k.starts_with("db.query.parameter"))),
        "{statements:?}"
    );
}

#[test]
fn parameters_are_recorded_only_when_asked() {
    let capture = Capture::default();
    run(&capture, async {
        let engine = Engine::builder()
            .url("sqlite::memory:")
            .log_parameters(true)
            .build()
            .unwrap();
        let v: String = engine
            .scalar("SELECT ?1", ("visible-value",))
            .await
            .unwrap();
        assert_eq!(v, "visible-value");
    });
    let statements = capture.statements();
    assert!(
        statements.iter().any(|f| f
            .get("db.query.parameter.0")
            .is_some_and(|p| p.contains("visible-value"))),
        "{statements:?}"
    );
}

#[test]
fn slow_statements_warn_and_long_statements_are_capped() {
    let capture = Capture::default();
    run(&capture, async {
        let engine = Engine::builder()
            .url("sqlite::memory:")
            .slow_statement_threshold(Duration::ZERO)
            .build()
            .unwrap();
        let long = format!("SELECT 1 {}", " ".repeat(3 * sqlaio::MAX_STATEMENT_LEN));
        let one: i64 = engine.scalar(long.as_str(), ()).await.unwrap();
        assert_eq!(one, 1);
    });
    let statements = capture.statements();
    assert!(statements
        .iter()
        .all(|f| f["db.query.text"].len() <= sqlaio::MAX_STATEMENT_LEN));
    let events = capture.events.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["level"] == "WARN" && e["message"] == "slow statement"),
        "{events:?}"
    );
}
