//! Observability: statement spans, their fields, and that parameter
//! values stay out of them unless the engine opts in.
//!
//! A body sets its subscriber as the default of the thread that polls it,
//! which is the test's own thread on the `thread` runtime: one runtime is
//! enough, and one backend (the spans name it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::common::Ctx;

stamp! {
    runtimes: one, backends: [memory];
    statement_spans_carry_system_text_rows_and_outcome,
    parameters_are_recorded_only_when_asked,
    slow_statements_warn_and_long_statements_are_capped,
}

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
        let spans = self.spans.lock().unwrap();
        let mut ids: Vec<_> = spans
            .iter()
            .filter(|(_, (name, _))| name == "sqlaio.statement")
            .map(|(id, (_, f))| (*id, f.clone()))
            .collect();
        ids.sort_by_key(|(id, _)| *id);
        ids.into_iter().map(|(_, f)| f).collect()
    }
}

/// Makes `capture` the default subscriber of this thread until the guard goes.
fn capturing(capture: &Capture) -> tracing::subscriber::DefaultGuard {
    tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()))
}

async fn statement_spans_carry_system_text_rows_and_outcome(ctx: Ctx) {
    let capture = Capture::default();
    let default = capturing(&capture);
    {
        let engine = ctx.engine();
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
    }
    drop(default);
    let statements = capture.statements();
    let insert = statements
        .iter()
        .find(|f| f["db.statement"].starts_with("INSERT"))
        .expect("a span for the insert");
    assert_eq!(insert["db.system"], "sqlite");
    assert_eq!(insert["rows"], "2");
    assert_eq!(insert["outcome"], "ok");
    assert!(insert.contains_key("duration_ms"));
    let select = statements
        .iter()
        .find(|f| f["db.statement"] == "SELECT secret FROM t")
        .expect("a span for the select");
    assert_eq!(select["rows"], "2");
    let failed = statements
        .iter()
        .find(|f| f["db.statement"] == "SELEC nonsense")
        .expect("a span for the failed statement");
    assert_eq!(failed["outcome"], "error");
    assert!(failed["error"].contains("syntax error"), "{failed:?}");

    // Parameter values appear nowhere by default.
    let everything = format!("{statements:?} {:?}", capture.events.lock().unwrap());
    assert!(!everything.contains("hunter2-value"), "{everything}");
    assert!(!everything.contains("swordfish-value"), "{everything}");
}

async fn parameters_are_recorded_only_when_asked(ctx: Ctx) {
    let capture = Capture::default();
    let default = capturing(&capture);
    {
        let engine = ctx.builder().log_parameters(true).build().unwrap();
        let v: String = engine
            .scalar("SELECT ?1", ("visible-value",))
            .await
            .unwrap();
        assert_eq!(v, "visible-value");
    }
    drop(default);
    let statements = capture.statements();
    assert!(
        statements.iter().any(|f| f
            .get("db.parameters")
            .is_some_and(|p| p.contains("visible-value"))),
        "{statements:?}"
    );
}

async fn slow_statements_warn_and_long_statements_are_capped(ctx: Ctx) {
    let capture = Capture::default();
    let default = capturing(&capture);
    {
        let engine = ctx
            .builder()
            .slow_statement_threshold(Duration::ZERO)
            .build()
            .unwrap();
        let long = format!("SELECT 1 {}", " ".repeat(3 * sqlaio::MAX_STATEMENT_LEN));
        let one: i64 = engine.scalar(long.as_str(), ()).await.unwrap();
        assert_eq!(one, 1);
    }
    drop(default);
    let statements = capture.statements();
    assert!(statements
        .iter()
        .all(|f| f["db.statement"].len() <= sqlaio::MAX_STATEMENT_LEN));
    let events = capture.events.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["level"] == "WARN" && e["message"] == "slow statement"),
        "{events:?}"
    );
}
