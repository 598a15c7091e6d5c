//! MySQL and MariaDB specifics: what the API does only there, type
//! conversions both ways, errors, deadlocks, cancellation with `KILL QUERY`
//! watched in the server's processlist, early close of a large result,
//! connections killed under load, a server restart under load, and
//! sea-query statements MySQL cannot express. What every backend shares
//! (results, transactions, implicit commits, pools, run_in_thread,
//! migrations, ...) is in the behavioural suite (`tests/behaviour`),
//! stamped for MariaDB too.
//!
//! The server comes from `MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`).
//! Each test works in a database of its own, created for it and dropped
//! after it. Without a server every test is skipped with a note on stderr,
//! unless `CI=true`, where it fails.

#![cfg(feature = "mysql")]

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant};

use sqlaio::mysql::prelude::Queryable;
use sqlaio::{Engine, Error, Result, Sql, Value};

const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// How long one test may run before it is reported as hung.
const LIMIT: Duration = Duration::from_secs(120);

fn server_url() -> String {
    match std::env::var("MYSQL_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => DEFAULT_URL.to_owned(),
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A plain `mysql` connection to `url`, for setting up and looking on.
fn raw(url: &str) -> std::result::Result<sqlaio::mysql::Conn, sqlaio::mysql::Error> {
    let opts = sqlaio::mysql::Opts::from_url(url)?;
    let opts = sqlaio::mysql::OptsBuilder::from_opts(opts)
        .tcp_connect_timeout(Some(Duration::from_secs(5)))
        .read_timeout(Some(Duration::from_secs(30)));
    sqlaio::mysql::Conn::new(opts)
}

/// `Ok(url)` when a server answers.
fn probe() -> &'static std::result::Result<String, String> {
    static SERVER: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    SERVER.get_or_init(|| {
        let url = server_url();
        match raw(&url).and_then(|mut c| c.query_drop("SELECT 1")) {
            Ok(()) => Ok(url),
            Err(e) => Err(e.to_string()),
        }
    })
}

/// A database of the test's own, dropped when the value is.
struct Scratch {
    server: String,
    name: String,
    url: String,
}

impl Scratch {
    fn new(server: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "sqlaio_t_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = raw(server).expect("connect to create a database");
        conn.query_drop(format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        conn.query_drop(format!("CREATE DATABASE {name}")).unwrap();
        // The same URL with the test's database as its path.
        let (base, query) = server.split_once('?').unwrap_or((server, ""));
        let after_scheme = base.find("://").map_or(0, |i| i + 3);
        let path = base[after_scheme..]
            .find('/')
            .map_or(base.len(), |i| after_scheme + i);
        let mut url = format!("{}/{name}", &base[..path]);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        Scratch {
            server: server.to_owned(),
            name,
            url,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(mut conn) = raw(&self.server) {
            let _ = conn.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
        }
    }
}

/// Held shared by every test of this file while it uses the server, and
/// exclusively by the test that restarts it.
static SERVER_IN_USE: RwLock<()> = RwLock::new(());

/// Runs an async test body in a fresh database on a thread of its own,
/// bounded by [`LIMIT`]; skips it when no server answers (fails under CI).
fn run<F, Fut>(name: &'static str, body: F)
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>>,
{
    let _shared = SERVER_IN_USE.read().unwrap_or_else(|e| e.into_inner());
    run_body(name, body);
}

/// [`run`], with no other test of this file using the server meanwhile.
fn run_alone<F, Fut>(name: &'static str, body: F)
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>>,
{
    let _alone = SERVER_IN_USE.write().unwrap_or_else(|e| e.into_inner());
    run_body(name, body);
}

fn run_body<F, Fut>(name: &'static str, body: F)
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>>,
{
    let server = match probe() {
        Ok(url) => url.clone(),
        Err(why) => {
            if in_ci() {
                panic!("{name}: no MySQL server at MYSQL_URL: {why} (CI=true: a missing server fails the test)");
            }
            let _ = writeln!(
                std::io::stderr(),
                "{name}: skipped: no MySQL server at MYSQL_URL: {why}"
            );
            return;
        }
    };
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let scratch = Scratch::new(&server);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let outcome = rt.block_on(body(scratch.url.clone()));
        drop(rt);
        drop(scratch);
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(())) => {
            let _ = handle.join();
        }
        Ok(Err(e)) => panic!("{name} failed: {e}\n{e:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name} did not finish within {LIMIT:?}"),
    }
}

fn engine(url: &str) -> Result<Engine> {
    Engine::builder().url(url).max_connections(4).build()
}

/// Polls `check` until it is `true`, for at most `limit`.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await? {
            return Ok(());
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Statements of session `id` still running, as the server lists them.
async fn running(observer: &Engine, id: i64) -> Result<i64> {
    observer
        .scalar::<i64>(
            "SELECT COUNT(*) FROM information_schema.processlist \
             WHERE id = ? AND command = 'Query'",
            (id,),
        )
        .await
}

mod api;
mod cancellation;
mod errors;
mod lost;
mod types;
