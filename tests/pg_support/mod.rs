//! Helpers for the PostgreSQL tests: which server to use, skipping when
//! there is none, bounded waits, and tables that are dropped afterwards.
//!
//! The server URL comes from `DATABASE_URL`, or defaults to
//! `postgres://root@127.0.0.1:5432/test`. When no server answers, a test
//! prints why it was skipped and returns; with `CI=true` it fails instead.

#![allow(dead_code)]

use std::future::Future;
use std::io::Write;
use std::panic::resume_unwind;
use std::pin::pin;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use futures::future::{self, Either};
use sqlaio::{Engine, Result};

/// The URL used when `DATABASE_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://root@127.0.0.1:5432/test";

/// How long one test may run before it is reported as hung.
pub const LIMIT: Duration = Duration::from_secs(60);

/// How long the server probe and the cleanup may take.
const PROBE_LIMIT: Duration = Duration::from_secs(20);

/// The server URL: `DATABASE_URL`, or [`DEFAULT_URL`].
pub fn database_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => DEFAULT_URL.to_owned(),
    }
}

/// `true` when `DATABASE_URL` is not set, so the URL is the known local default.
pub fn using_default_url() -> bool {
    database_url() == DEFAULT_URL
}

/// `true` when `CI` is `true`: a missing server is then a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The URL for messages, with any password redacted.
pub fn shown(url: &str) -> String {
    match Engine::builder().url(url).build() {
        Ok(engine) => engine.url().to_owned(),
        Err(_) => "<an invalid DATABASE_URL>".to_owned(),
    }
}

/// Connects once, runs `SELECT 1`, and remembers the answer for every test.
fn probe() -> &'static std::result::Result<String, String> {
    static SERVER: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    SERVER.get_or_init(|| {
        let url = database_url();
        let probe_url = url.clone();
        let answer = on_thread("probe", PROBE_LIMIT, move || {
            futures::executor::block_on(async move {
                // Refused connections are retried until the acquire timeout: keep it short.
                let engine = Engine::builder()
                    .url(&probe_url)
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(5))
                    .build()?;
                let one = engine.scalar::<i32>("SELECT 1", ()).await;
                engine.close().await?;
                one.map(|_| ())
            })
        });
        match answer {
            Some(Ok(())) => Ok(url),
            Some(Err(e)) => Err(e.to_string()),
            None => Err(format!("no answer within {PROBE_LIMIT:?}")),
        }
    })
}

/// The server URL when a server answers. Otherwise prints why `test` is
/// skipped and returns `None`, or panics when running in CI.
pub fn server(test: &str) -> Option<String> {
    match probe() {
        Ok(url) => Some(url.clone()),
        Err(why) => {
            let url = shown(&database_url());
            if in_ci() {
                panic!("{test}: no PostgreSQL server at {url}: {why} (CI=true: a missing server fails the test)");
            }
            // Straight to stderr: the test harness captures `eprintln!`.
            let _ = writeln!(
                std::io::stderr(),
                "{test}: skipped: no PostgreSQL server at {url}: {why}"
            );
            None
        }
    }
}

/// Runs `f` on a thread of its own and waits at most `limit` for its answer.
/// `None` when it did not finish in time; a panic in `f` is re-raised here.
pub fn on_thread<T: Send + 'static>(
    name: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn a test thread");
    match rx.recv_timeout(limit) {
        Ok(value) => {
            let _ = handle.join();
            Some(value)
        }
        Err(RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => resume_unwind(panic),
            Ok(()) => unreachable!("the thread answers before it ends"),
        },
        Err(RecvTimeoutError::Timeout) => None,
    }
}

/// Runs an async test body with `futures::executor::block_on` on a thread of
/// its own, bounded by [`LIMIT`]; skips it when no server answers.
pub fn run<F, Fut>(name: &'static str, body: F)
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>>,
{
    let Some(url) = server(name) else { return };
    run_with_url(name, url, body);
}

/// As [`run`], for tests that need no server.
pub fn run_offline<F, Fut>(name: &'static str, body: F)
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>>,
{
    run_with_url(name, database_url(), body);
}

fn run_with_url<F, Fut>(name: &'static str, url: String, body: F)
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>>,
{
    match on_thread(name, LIMIT, move || futures::executor::block_on(body(url))) {
        Some(Ok(())) => {}
        Some(Err(e)) => panic!("{name} failed: {e}\n{e:?}"),
        None => panic!("{name} did not finish within {LIMIT:?}"),
    }
}

/// Sleeps without any runtime: a thread completes a channel later.
pub async fn nap(duration: Duration) {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    thread::spawn(move || {
        thread::sleep(duration);
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// Awaits `fut` on any executor, failing the test if it takes longer than [`LIMIT`].
pub async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    within_for(LIMIT, what, fut).await
}

/// How long one statement may take where a hang is the failure being guarded against.
pub const STEP_LIMIT: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing the test if it takes longer than [`STEP_LIMIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    within_for(STEP_LIMIT, what, fut).await
}

async fn within_for<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match future::select(pin!(fut), pin!(nap(limit))).await {
        Either::Left((value, _)) => value,
        Either::Right(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Polls `check` until it returns `true`, for at most `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            panic!("{what}: still not the case after {limit:?}");
        }
        nap(Duration::from_millis(20)).await;
    }
}

/// `url` with one more connection option: `?key=value` or `&key=value` for
/// a URL, ` key=value` for a key-value connection string.
pub fn with_option(url: &str, option: &str) -> String {
    if !url.contains("://") {
        format!("{url} {option}")
    } else if url.contains('?') {
        format!("{url}&{option}")
    } else {
        format!("{url}?{option}")
    }
}

/// A name for a test's own table, schema or setting: `sqlaio_<tag>_<pid>`.
pub fn unique(tag: &str) -> String {
    format!("sqlaio_{tag}_{}", std::process::id())
}

/// Tables and schemas a test creates, dropped when the guard goes, even if
/// the test failed.
pub struct Scratch {
    url: String,
    drops: Mutex<Vec<String>>,
}

impl Scratch {
    pub fn new(url: &str) -> Scratch {
        Scratch {
            url: url.to_owned(),
            drops: Mutex::new(Vec::new()),
        }
    }

    /// A unique table name, dropped at the end.
    pub fn table(&self, tag: &str) -> String {
        let name = unique(tag);
        self.push(format!("DROP TABLE IF EXISTS {name} CASCADE"));
        name
    }

    /// A unique schema name, dropped with everything in it at the end.
    pub fn schema(&self, tag: &str) -> String {
        let name = unique(tag);
        self.push(format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
        name
    }

    fn push(&self, sql: String) {
        self.drops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sql);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let drops = std::mem::take(&mut *self.drops.lock().unwrap_or_else(|e| e.into_inner()));
        if drops.is_empty() {
            return;
        }
        let url = self.url.clone();
        // On a thread of its own, so it works from any executor and while unwinding.
        let done = on_thread("cleanup", PROBE_LIMIT, move || {
            futures::executor::block_on(async move {
                let engine = Engine::builder()
                    .url(&url)
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(5))
                    .build()?;
                for sql in drops.iter().rev() {
                    if let Err(e) = engine.execute(sql, ()).await {
                        eprintln!("cleanup: {sql}: {e}");
                    }
                }
                engine.close().await
            })
        });
        if !matches!(done, Some(Ok(()))) && !thread::panicking() {
            eprintln!("cleanup did not complete: {done:?}");
        }
    }
}

/// Panic messages seen anywhere in the process (worker threads included),
/// once [`record_panics`] ran.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records every panic message, on any thread, then reports it as usual.
/// A panic on a worker thread is otherwise invisible to the test.
pub fn record_panics() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            PANICS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(message);
            previous(info);
        }));
    });
}

/// Fails if any recorded panic came from a tokio runtime being started,
/// entered or dropped where it must not be.
pub fn assert_no_runtime_panics() {
    let panics = PANICS.lock().unwrap_or_else(|e| e.into_inner());
    let bad: Vec<&String> = panics
        .iter()
        .filter(|m| {
            m.contains("Cannot start a runtime from within a runtime")
                || m.contains("Cannot drop a runtime")
                || m.contains("Cannot block the current thread from within a runtime")
        })
        .collect();
    assert!(bad.is_empty(), "a runtime panicked: {bad:?}");
}
