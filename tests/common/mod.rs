//! The harness of the behavioural suite: one list of `async fn name(ctx: Ctx)`
//! test bodies, stamped into a `#[test]` per runtime and per backend, as
//! tokio's `tests/rt_common.rs` does.
//!
//! ```text
//! stamp! { commit, rollback, ... }
//! // => thread::memory::commit, thread::file::commit, thread::postgres::commit,
//! //    tokio_multi::memory::commit, ..., smol::postgres::rollback, ...
//! ```
//!
//! Two dimensions:
//! - [`Runtime`]: the executor that awaits the test body and the strategy the
//!   engine uses. Runtimes behind a cargo feature are stamped only when it is
//!   enabled, so `--no-default-features --features sqlite` still runs the
//!   `thread` modules.
//! - [`Backend`]: the database. Every test gets a fresh one: a SQLite
//!   database in memory or in a file, or (with the `postgres` feature) a
//!   schema of its own on the PostgreSQL server of `DATABASE_URL` (see
//!   `pg_support`), dropped after the test even when it fails. Without a
//!   server the PostgreSQL stamps print that they were skipped, or fail
//!   under `CI=true`.
//!
//! Shared test bodies write placeholders as `$1`, `$2`, ... in order of first
//! appearance: SQLite binds those by position just like PostgreSQL does.
//! Where the SQL itself differs (an auto-numbered key, the blob type) they
//! ask [`Ctx`] for it; bodies that rely on one database's semantics check
//! [`Ctx::backend`].

// Each test binary uses its own subset of the harness.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{self, BoxFuture, Either};
use futures::FutureExt;
use sqlaio::{Engine, EngineBuilder, Strategy};
use tempfile::TempDir;

/// Server discovery, skipping and CI failure for the PostgreSQL backend:
/// the same helpers the PostgreSQL-specific tests use.
#[cfg(feature = "postgres")]
#[path = "../pg_support/mod.rs"]
pub mod pg;

/// A test body that has not finished by then is reported as hung instead of
/// blocking the whole run. Generous: the slowest body takes a few seconds.
const HANG_LIMIT: Duration = Duration::from_secs(120);

/// The database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite::memory:`: one in-memory database per engine.
    Memory,
    /// A SQLite file in a fresh temporary directory.
    File,
    /// A schema of its own on the PostgreSQL server of `DATABASE_URL`,
    /// first on the connections' `search_path`.
    #[cfg(feature = "postgres")]
    Postgres,
}

impl Backend {
    /// `true` for the SQLite backends (PRAGMAs, `last_insert_id`, `:name` placeholders, ...).
    pub fn is_sqlite(self) -> bool {
        matches!(self, Backend::Memory | Backend::File)
    }

    /// `true` for PostgreSQL.
    pub fn is_postgres(self) -> bool {
        !self.is_sqlite()
    }

    /// A fresh database for one test, or `None` when this backend is not
    /// available here (the test is then skipped with a note on stderr).
    /// `test` names the test in schema names and skip notices.
    fn prepare(self, dir: &Path, test: &str, runtime: Runtime) -> Option<Database> {
        let _ = (test, runtime);
        match self {
            Backend::Memory => Some(Database::plain("sqlite::memory:".to_owned())),
            Backend::File => Some(Database::plain(sqlite_file_url(&dir.join("test.db")))),
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let server = pg::server(&format!("{}::postgres::{test}", runtime.name()))?;
                let schema = PgSchema::create(&server, &schema_name(test, runtime));
                Some(Database {
                    url: schema.url(),
                    schema: Some(schema),
                })
            }
        }
    }

    /// A URL of this backend's kind that cannot be connected to.
    pub fn unreachable_url(self, dir: &Path) -> String {
        match self {
            Backend::Memory | Backend::File => {
                sqlite_file_url(&dir.join("no-such-dir").join("nested").join("test.db"))
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                pg::with_option(&pg::database_url(), &format!("dbname={NO_SUCH_DATABASE}"))
            }
        }
    }

    /// A word the connect error for [`Backend::unreachable_url`] contains.
    pub fn unreachable_hint(self) -> &'static str {
        match self {
            Backend::Memory | Backend::File => "no-such-dir",
            #[cfg(feature = "postgres")]
            Backend::Postgres => NO_SUCH_DATABASE,
        }
    }
}

/// The database name of the PostgreSQL URL that cannot be connected to.
#[cfg(feature = "postgres")]
const NO_SUCH_DATABASE: &str = "sqlaio_no_such_database";

/// A test's database: its URL, and for PostgreSQL the schema dropped afterwards.
struct Database {
    url: String,
    #[cfg(feature = "postgres")]
    schema: Option<PgSchema>,
}

impl Database {
    fn plain(url: String) -> Database {
        Database {
            url,
            #[cfg(feature = "postgres")]
            schema: None,
        }
    }

    /// The name of the test's PostgreSQL schema.
    fn schema_name(&self) -> Option<String> {
        #[cfg(feature = "postgres")]
        return self.schema.as_ref().map(|s| s.name.clone());
        #[cfg(not(feature = "postgres"))]
        None
    }
}

/// `sqlaio_b_<test>_<runtime>_<pid>`, within PostgreSQL's 63-byte limit on
/// names: a long test name is cut and completed with a hash of the whole,
/// so that names stay distinct.
#[cfg(feature = "postgres")]
fn schema_name(test: &str, runtime: Runtime) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    const MAX: usize = 63;
    let rt = runtime.name();
    let pid = std::process::id().to_string();
    let budget = MAX - "sqlaio_b___".len() - rt.len() - pid.len();
    let test = test.to_ascii_lowercase();
    let test = if test.len() <= budget {
        test
    } else {
        let mut hasher = DefaultHasher::new();
        test.hash(&mut hasher);
        let hash = format!("{:08x}", hasher.finish() as u32);
        format!("{}_{hash}", &test[..budget - hash.len() - 1])
    };
    format!("sqlaio_b_{test}_{rt}_{pid}")
}

/// A test's own schema on the server: created (afresh) before the test,
/// dropped with everything in it when this guard goes, also when the test
/// failed. The test's connections carry the schema's name as their
/// `application_name`, so that any a failed test left behind can be ended
/// when they hold locks the drop waits for.
#[cfg(feature = "postgres")]
struct PgSchema {
    server: String,
    name: String,
}

#[cfg(feature = "postgres")]
impl PgSchema {
    /// How long creating or dropping the schema may take.
    const LIMIT: Duration = Duration::from_secs(30);

    /// Creates the schema `name` through a setup connection; panics when it cannot.
    fn create(server: &str, name: &str) -> PgSchema {
        let schema = PgSchema {
            server: server.to_owned(),
            name: name.to_owned(),
        };
        let (drop_schema, create_schema) = (schema.drop_sql(), format!("CREATE SCHEMA {name}"));
        let done = setup(server, "create-schema", move |run| {
            // Left over from an earlier run that was killed?
            run(&drop_schema)?;
            run(&create_schema)
        });
        if let Err(e) = done {
            panic!("cannot create the test schema {name}: {e}");
        }
        schema
    }

    fn drop_sql(&self) -> String {
        format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)
    }

    /// The server URL with this schema alone on the `search_path`, and its
    /// name as the `application_name`.
    fn url(&self) -> String {
        let name = &self.name;
        if self.server.contains("://") {
            let url = pg::with_option(&self.server, &format!("options=-c%20search_path%3D{name}"));
            pg::with_option(&url, &format!("application_name={name}"))
        } else {
            let url = pg::with_option(&self.server, &format!("options='-c search_path={name}'"));
            pg::with_option(&url, &format!("application_name={name}"))
        }
    }
}

#[cfg(feature = "postgres")]
impl Drop for PgSchema {
    fn drop(&mut self) {
        let drop_schema = self.drop_sql();
        // The name is ours, made of [a-z0-9_]: safe to quote as a literal.
        let terminate = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{}' AND pid <> pg_backend_pid()",
            self.name
        );
        let done = setup(&self.server, "drop-schema", move |run| {
            run("SET lock_timeout = '5s'")?;
            if run(&drop_schema).is_err() {
                // A connection the test left behind holds a lock: end it.
                run(&terminate)?;
                run(&drop_schema)?;
            }
            Ok(())
        });
        if let Err(e) = done {
            // Not a panic: this may run while a failed test unwinds.
            eprintln!("could not drop the test schema {}: {e}", self.name);
        }
    }
}

/// Runs `job` on a thread of its own (so that it works from any executor
/// and while a failed test unwinds), bounded by [`PgSchema::LIMIT`], with a
/// function that runs one statement on a setup connection. That is the bare
/// `postgres` client without TLS, which opens in milliseconds, or an engine
/// when the server requires TLS.
#[cfg(feature = "postgres")]
fn setup<F>(server: &str, what: &str, job: F) -> Result<(), String>
where
    F: FnOnce(&mut dyn FnMut(&str) -> Result<(), String>) -> Result<(), String> + Send + 'static,
{
    use sqlaio::postgres::{Client, NoTls};
    let server = server.to_owned();
    let done = pg::on_thread(what, PgSchema::LIMIT, move || {
        if let Ok(mut client) = Client::connect(&server, NoTls) {
            return job(&mut |sql| client.batch_execute(sql).map_err(|e| chain(&e)));
        }
        use futures::executor::block_on;
        let engine = setup_engine(&server).map_err(|e| chain(&e))?;
        let conn = block_on(engine.connect()).map_err(|e| chain(&e))?;
        let done = job(&mut |sql| {
            block_on(conn.execute(sql, ()))
                .map(drop)
                .map_err(|e| chain(&e))
        });
        drop(conn);
        block_on(engine.close()).map_err(|e| chain(&e))?;
        done
    });
    done.unwrap_or_else(|| Err(format!("no answer within {:?}", PgSchema::LIMIT)))
}

/// An error with its sources, for messages.
#[cfg(feature = "postgres")]
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An engine for creating and dropping test schemas: one connection, and a
/// short wait when the server refuses connections.
#[cfg(feature = "postgres")]
fn setup_engine(server: &str) -> sqlaio::Result<Engine> {
    Engine::builder()
        .url(server)
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .build()
}

/// `sqlite://` followed by an absolute path gives `sqlite:///abs/path`.
pub fn sqlite_file_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// The executor awaiting the test body, and the strategy engines use under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// tokio's multi-thread runtime with `TokioStrategy`.
    #[cfg(feature = "tokio")]
    TokioMulti,
    /// tokio's current-thread runtime with `TokioStrategy`.
    #[cfg(feature = "tokio")]
    TokioCurrent,
    /// `async_std::task::block_on` with `AsyncStdStrategy`.
    #[cfg(feature = "async-std")]
    AsyncStd,
    /// `smol::block_on` with `SmolStrategy`.
    #[cfg(feature = "smol")]
    Smol,
    /// `futures::executor::block_on` with `ThreadStrategy`: no runtime at all.
    Thread,
}

impl Runtime {
    /// The name of this runtime's module in the stamped tests.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "tokio")]
            Runtime::TokioMulti => "tokio_multi",
            #[cfg(feature = "tokio")]
            Runtime::TokioCurrent => "tokio_current",
            #[cfg(feature = "async-std")]
            Runtime::AsyncStd => "async_std",
            #[cfg(feature = "smol")]
            Runtime::Smol => "smol",
            Runtime::Thread => "thread",
        }
    }

    /// The strategy engines use under this runtime.
    pub fn strategy(self) -> Arc<dyn Strategy> {
        match self {
            #[cfg(feature = "tokio")]
            Runtime::TokioMulti | Runtime::TokioCurrent => Arc::new(sqlaio::TokioStrategy),
            #[cfg(feature = "async-std")]
            Runtime::AsyncStd => Arc::new(sqlaio::AsyncStdStrategy),
            #[cfg(feature = "smol")]
            Runtime::Smol => Arc::new(sqlaio::SmolStrategy),
            Runtime::Thread => Arc::new(sqlaio::ThreadStrategy),
        }
    }

    /// Runs `fut` to completion on this runtime.
    pub fn block_on<F: Future>(self, fut: F) -> F::Output {
        match self {
            #[cfg(feature = "tokio")]
            Runtime::TokioMulti => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio multi-thread runtime")
                .block_on(fut),
            #[cfg(feature = "tokio")]
            Runtime::TokioCurrent => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio current-thread runtime")
                .block_on(fut),
            #[cfg(feature = "async-std")]
            Runtime::AsyncStd => async_std::task::block_on(fut),
            #[cfg(feature = "smol")]
            Runtime::Smol => smol::block_on(fut),
            Runtime::Thread => futures::executor::block_on(fut),
        }
    }

    /// Spawns `fut` as a task of this runtime (a plain thread for `Thread`)
    /// and returns a future of its output; a panic in the task is re-raised
    /// by that future.
    pub fn spawn<F>(self, fut: F) -> BoxFuture<'static, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            #[cfg(feature = "tokio")]
            Runtime::TokioMulti | Runtime::TokioCurrent => {
                let handle = tokio::spawn(fut);
                async move {
                    match handle.await {
                        Ok(output) => output,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Err(e) => panic!("spawned task failed: {e}"),
                    }
                }
                .boxed()
            }
            #[cfg(feature = "async-std")]
            Runtime::AsyncStd => async_std::task::spawn(fut).boxed(),
            #[cfg(feature = "smol")]
            Runtime::Smol => smol::spawn(fut).boxed(),
            Runtime::Thread => {
                let (tx, rx) = futures::channel::oneshot::channel();
                std::thread::spawn(move || {
                    let _ = tx.send(futures::executor::block_on(fut));
                });
                async move { rx.await.expect("the spawned task panicked") }.boxed()
            }
        }
    }
}

/// What a test body gets: its runtime, its backend and a fresh database.
#[derive(Debug)]
pub struct Ctx {
    /// The database kind.
    pub backend: Backend,
    /// The executor and strategy.
    pub runtime: Runtime,
    url: String,
    /// The PostgreSQL schema of this test.
    schema: Option<String>,
    /// Holds the database file (if any) and scratch files until the test ends.
    dir: TempDir,
}

impl Ctx {
    /// The URL of this test's database.
    ///
    /// For [`Backend::Memory`], every engine built from it is a database of
    /// its own; for [`Backend::File`], every engine shares the file; for
    /// `Backend::Postgres`, every engine shares the test's schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The PostgreSQL schema this test's unqualified names land in; `None`
    /// on SQLite.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The column definition of an integer key named `id` that numbers new
    /// rows by itself when an INSERT leaves it out, and takes explicit values.
    pub fn id_column(&self) -> &'static str {
        if self.backend.is_sqlite() {
            "id INTEGER PRIMARY KEY"
        } else {
            "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
        }
    }

    /// The column type for byte strings.
    pub fn blob_type(&self) -> &'static str {
        if self.backend.is_sqlite() {
            "BLOB"
        } else {
            "BYTEA"
        }
    }

    /// A word the connect error for [`Ctx::unreachable_url`] contains.
    pub fn unreachable_hint(&self) -> &'static str {
        self.backend.unreachable_hint()
    }

    /// A scratch directory that lives as long as the test.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A URL of this backend's kind that cannot be connected to.
    pub fn unreachable_url(&self) -> String {
        self.backend.unreachable_url(self.dir.path())
    }

    /// The strategy of this runtime.
    pub fn strategy(&self) -> Arc<dyn Strategy> {
        self.runtime.strategy()
    }

    /// A builder with this test's URL and strategy.
    pub fn builder(&self) -> EngineBuilder {
        Engine::builder()
            .url(self.url.clone())
            .strategy_arc(self.strategy())
    }

    /// An engine with this test's URL and strategy and default settings.
    pub fn engine(&self) -> Engine {
        self.builder()
            .build()
            .expect("a valid engine configuration")
    }

    /// Spawns a task on this test's runtime; see [`Runtime::spawn`].
    pub fn spawn<F>(&self, fut: F) -> BoxFuture<'static, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(fut)
    }
}

/// Runs one test body on `runtime` against a fresh `backend` database.
pub fn run<F, Fut>(runtime: Runtime, backend: Backend, body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let test = format!("test{}", NEXT.fetch_add(1, Ordering::Relaxed));
    run_named(&test, runtime, backend, body);
}

/// As [`run`], with the test's name for its PostgreSQL schema and notices.
pub fn run_named<F, Fut>(test: &str, runtime: Runtime, backend: Backend, body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::Builder::new()
        .prefix("sqlaio-test-")
        .tempdir()
        .expect("a temporary directory");
    let Some(database) = backend.prepare(dir.path(), test, runtime) else {
        return;
    };
    let ctx = Ctx {
        backend,
        runtime,
        url: database.url.clone(),
        schema: database.schema_name(),
        dir,
    };
    runtime.block_on(within(HANG_LIMIT, body(ctx)));
    // `database` goes here, or while a failed test unwinds: that drops its schema.
    drop(database);
}

/// Awaits `fut`, panicking if it has not completed after `limit`.
///
/// Turns a hang into a failure; it is not a performance assertion.
pub async fn within<F: Future>(limit: Duration, fut: F) -> F::Output {
    let (done, finished) = mpsc::channel::<()>();
    let (fire, fired) = futures::channel::oneshot::channel::<()>();
    std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
            let _ = fire.send(());
        }
    });
    let fut = std::pin::pin!(fut);
    let output = match future::select(fut, fired).await {
        Either::Left((output, _)) => output,
        Either::Right(_) => panic!("the test did not finish within {limit:?}: it hangs"),
    };
    drop(done);
    output
}

/// Polls `condition` until it holds, for at most `limit`; returns whether it held.
///
/// A bounded wait for something that happens shortly after an event (a
/// thread exiting after its job returned), not a timing assertion.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stamps one test per backend for one runtime.
macro_rules! stamp_runtime {
    ($rt:ident; $($name:ident),*) => {
        #[cfg(feature = "sqlite")]
        stamp_backend!(memory, Memory, $rt; $($name),*);
        #[cfg(feature = "sqlite")]
        stamp_backend!(file, File, $rt; $($name),*);
        #[cfg(feature = "postgres")]
        stamp_backend!(postgres, Postgres, $rt; $($name),*);
    };
}

macro_rules! stamp_backend {
    ($module:ident, $backend:ident, $rt:ident; $($name:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    $crate::common::run_named(
                        stringify!($name),
                        $crate::common::Runtime::$rt,
                        $crate::common::Backend::$backend,
                        $crate::$name,
                    );
                }
            )*
        }
    };
}

/// Stamps every listed `async fn name(ctx: Ctx)` of the crate root into
/// `<runtime>::<backend>::name` tests.
macro_rules! stamp {
    ($($name:ident),* $(,)?) => {
        #[cfg(feature = "tokio")]
        mod tokio_multi {
            stamp_runtime!(TokioMulti; $($name),*);
        }
        #[cfg(feature = "tokio")]
        mod tokio_current {
            stamp_runtime!(TokioCurrent; $($name),*);
        }
        #[cfg(feature = "async-std")]
        mod async_std {
            stamp_runtime!(AsyncStd; $($name),*);
        }
        #[cfg(feature = "smol")]
        mod smol {
            stamp_runtime!(Smol; $($name),*);
        }
        mod thread {
            stamp_runtime!(Thread; $($name),*);
        }
    };
}
