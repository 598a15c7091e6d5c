//! The test harness shared by every test binary: one way to stamp a test
//! body into a `#[test]` per runtime and per backend, as tokio's
//! `tests/rt_common.rs` does.
//!
//! ```text
//! stamp! {
//!     runtimes: each, backends: all;
//!     statement_timeout,
//! }
//! // => statement_timeout::thread::memory, statement_timeout::thread::file,
//! //    statement_timeout::thread::postgres, statement_timeout::tokio_multi::memory,
//! //    ..., statement_timeout::smol::postgres
//! ```
//!
//! A body is an `async fn name(ctx: Ctx)` returning `()` or a `Result`. Two
//! dimensions:
//! - [`Runtime`]: the executor that awaits the body and the strategy its
//!   engines use. `runtimes: each` stamps every runtime whose cargo feature
//!   is on (`thread` always, so `--no-default-features --features sqlite`
//!   still runs it); `runtimes: one` stamps `thread` only, for bodies whose
//!   outcome cannot depend on the runtime; `runtimes: [tokio_multi]` names
//!   runtimes. A body belongs on every runtime when it drops futures before
//!   they finish, times out, spawns tasks, or waits for a connection or a
//!   worker that another handle gives back.
//! - [`Backend`]: the database. Every stamp gets a fresh one: a SQLite
//!   database in memory or in a file, a PostgreSQL schema of its own, or a
//!   MySQL/MariaDB database of its own. `backends: all` stamps every backend
//!   whose feature is on; `sqlite` the SQLite ones; `[postgres, mysql]`
//!   names them. A backend that is not available
//!   here (no server) skips its stamps with a notice, or fails them under
//!   `CI=true`.
//!
//! # Adding a backend
//!
//! 1. Its [`Backend`] entry and the function that makes a fresh database
//!    for one test, in a file of its own next to this one (see `sqlite.rs`,
//!    `pg.rs` and `mysql.rs`), declared below behind its cargo feature.
//! 2. One arm in `for_backends!` (its module name, its cargo feature, its
//!    entry), and its name in the `all` group there.
//! 3. A [`Family`] when its SQL differs from the others': the compiler then
//!    lists every body that matches on the family.
//!
//! Bodies shared by every backend write their SQL through [`Ctx::sql`],
//! with placeholders `$1`, `$2`, ... that each backend turns into its own.

// Each test binary uses its own subset of the harness.
#![allow(dead_code, unused_macros)]

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{self, BoxFuture, Either};
use futures::FutureExt;
use sqlaio::{Engine, EngineBuilder, Strategy};
use tempfile::TempDir;

/// The SQLite backends: a database in memory, and one in a file.
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// The PostgreSQL backend (a schema per test), server discovery, skipping,
/// and the helpers the PostgreSQL-specific tests use.
#[cfg(feature = "postgres")]
pub mod pg;

/// The MySQL/MariaDB backend (a database per test), server discovery and
/// the setup connections of the MySQL-specific tests.
#[cfg(feature = "mysql")]
pub mod mysql;

/// Throwaway PostgreSQL clusters, a relay that can freeze its connections,
/// and waits bounded on a tokio runtime, for the TLS and network-fault tests.
#[cfg(all(feature = "postgres", unix))]
pub mod net;

/// A test body that has not finished by then is reported as hung instead of
/// blocking the whole run. Generous: the slowest behaviour body takes a few
/// seconds, the reliability load under a minute.
const HANG_LIMIT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

/// What the SQL of a body may differ by: one per database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// SQLite: `?1` and `:name` placeholders, rowids, PRAGMAs.
    Sqlite,
    /// PostgreSQL: `$1` placeholders, identity columns, `bytea`.
    Postgres,
    /// MySQL and MariaDB: `?` placeholders, `AUTO_INCREMENT`, implicit
    /// commits, `KILL QUERY`.
    Mysql,
}

/// One kind of database the stamped bodies run on: its entry in the table
/// of `for_backends!`.
#[derive(Debug)]
pub struct Backend {
    /// The module its stamps go in (`...::thread::postgres`), and its name
    /// in notices.
    pub name: &'static str,
    /// The SQL family.
    pub family: Family,
    /// `Ok` when it can be tested here; `Err(why)` skips its stamps with a
    /// notice, or fails them under `CI=true`.
    pub available: fn() -> Result<(), String>,
    /// A fresh database for one test: its URL, and whatever removes it
    /// afterwards.
    pub fresh: fn(&Fresh<'_>) -> Database,
    /// The `n`th positional placeholder (from 1), as this backend writes it.
    pub placeholder: fn(usize) -> String,
    /// The column definition of an integer key named `id` that numbers new
    /// rows by itself when an INSERT leaves it out, and takes explicit values.
    pub id_column: &'static str,
    /// The column type for byte strings.
    pub blob_type: &'static str,
    /// A URL of this kind that cannot be connected to (given a scratch directory).
    pub unreachable_url: fn(&Path) -> String,
    /// A word the connect error for `unreachable_url` contains.
    pub unreachable_hint: &'static str,
}

impl Backend {
    /// `true` for the SQLite backends (PRAGMAs, `last_insert_id`, `:name` placeholders, ...).
    pub fn is_sqlite(&self) -> bool {
        self.family == Family::Sqlite
    }

    /// `true` for PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.family == Family::Postgres
    }

    /// `true` for MySQL/MariaDB.
    pub fn is_mysql(&self) -> bool {
        self.family == Family::Mysql
    }

    /// `sql` with its placeholders `$1`, `$2`, ... written as this backend
    /// writes them. (A task can take `ctx.backend`, which is `Copy`, and
    /// call this.)
    pub fn sql(&self, sql: &str) -> String {
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                out.push('$');
            } else {
                let n: usize = after[..digits].parse().expect("a placeholder number");
                out.push_str(&(self.placeholder)(n));
            }
            rest = &after[digits..];
        }
        out.push_str(rest);
        out
    }
}

/// What a backend's `fresh` function gets.
#[derive(Debug)]
pub struct Fresh<'a> {
    /// The test's full name (`transactions::commit::thread::postgres`), for
    /// names that must not collide with another test's.
    pub test: &'a str,
    /// A scratch directory that lives as long as the test.
    pub dir: &'a Path,
}

/// A test's database: its URL, and a guard that removes it when dropped
/// (after the test, also when it failed).
pub struct Database {
    /// The URL every engine of the test connects to.
    pub url: String,
    /// The PostgreSQL schema the test's unqualified names land in.
    pub schema: Option<String>,
    /// Dropped after the test.
    pub guard: Option<Box<dyn std::any::Any>>,
}

impl Database {
    /// A database that needs no cleanup beyond the scratch directory.
    pub fn plain(url: String) -> Database {
        Database {
            url,
            schema: None,
            guard: None,
        }
    }
}

/// `sqlite://` followed by an absolute path gives `sqlite:///abs/path`.
pub fn sqlite_file_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// `true` when `CI` is `true`: a missing backend is then a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Prints that `test` is skipped and why, or panics under `CI=true`.
pub fn skip_or_fail(test: &str, why: &str) {
    if in_ci() {
        panic!("{test}: {why} (CI=true: a missing server fails the test)");
    }
    // Straight to stderr: the test harness captures `eprintln!`.
    let _ = writeln!(std::io::stderr(), "{test}: skipped: {why}");
}

// ---------------------------------------------------------------------------
// Runtimes
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// What a body gets, and how it runs
// ---------------------------------------------------------------------------

/// What a test body gets: its runtime, its backend and a fresh database.
#[derive(Debug)]
pub struct Ctx {
    /// The database kind.
    pub backend: &'static Backend,
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
    /// On `memory`, every engine built from it is a database of its own; on
    /// `file`, every engine shares the file; on `postgres`, every engine
    /// shares the test's schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The PostgreSQL schema this test's unqualified names land in; `None`
    /// on SQLite.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The SQL family of this test's backend.
    pub fn family(&self) -> Family {
        self.backend.family
    }

    /// `true` on the SQLite backends.
    pub fn is_sqlite(&self) -> bool {
        self.backend.is_sqlite()
    }

    /// `true` on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.backend.is_postgres()
    }

    /// `true` on MySQL/MariaDB.
    pub fn is_mysql(&self) -> bool {
        self.backend.is_mysql()
    }

    /// `true` on the backend named `name` (`"memory"`, `"file"`, ...).
    pub fn is(&self, name: &str) -> bool {
        self.backend.name == name
    }

    /// `sql` with its placeholders `$1`, `$2`, ... written as this
    /// backend writes them; see [`Backend::sql`].
    pub fn sql(&self, sql: &str) -> String {
        self.backend.sql(sql)
    }

    /// The column definition of an integer key named `id` that numbers new
    /// rows by itself when an INSERT leaves it out, and takes explicit values.
    pub fn id_column(&self) -> &'static str {
        self.backend.id_column
    }

    /// The column type for byte strings.
    pub fn blob_type(&self) -> &'static str {
        self.backend.blob_type
    }

    /// A URL of this backend's kind that cannot be connected to.
    pub fn unreachable_url(&self) -> String {
        (self.backend.unreachable_url)(self.dir.path())
    }

    /// A word the connect error for [`Ctx::unreachable_url`] contains.
    pub fn unreachable_hint(&self) -> &'static str {
        self.backend.unreachable_hint
    }

    /// A scratch directory that lives as long as the test.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
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

/// What a body returns: nothing, or a `Result` whose error fails the test.
pub trait Outcome {
    /// Panics when the body failed.
    fn check(self, test: &str);
}

impl Outcome for () {
    fn check(self, _: &str) {}
}

impl<E: std::fmt::Display + std::fmt::Debug> Outcome for Result<(), E> {
    fn check(self, test: &str) {
        if let Err(e) = self {
            panic!("{test} failed: {e}\n{e:?}");
        }
    }
}

/// Runs one stamped body on `runtime` against a fresh `backend` database.
/// `module` is the stamp's `module_path!()`, whose last part is the runtime.
pub fn run<F, Fut>(module: &str, runtime: Runtime, backend: &'static Backend, body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future,
    Fut::Output: Outcome,
{
    // `behaviour::transactions::commit::thread` gives `transactions::commit::thread::memory`.
    let path = module.split_once("::").map_or(module, |(_, path)| path);
    let test = format!("{path}::{}", backend.name);
    if let Err(why) = (backend.available)() {
        skip_or_fail(&test, &why);
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("sqlaio-test-")
        .tempdir()
        .expect("a temporary directory");
    let database = (backend.fresh)(&Fresh {
        test: &test,
        dir: dir.path(),
    });
    let ctx = Ctx {
        backend,
        runtime,
        url: database.url.clone(),
        schema: database.schema.clone(),
        dir,
    };
    runtime.block_on(within(HANG_LIMIT, body(ctx))).check(&test);
    // `database` goes here, or while a failed test unwinds: that removes it.
    drop(database);
}

// ---------------------------------------------------------------------------
// Waiting, without depending on a runtime
// ---------------------------------------------------------------------------

/// Awaits `fut`, panicking if it has not completed after `limit`.
///
/// Turns a hang into a failure; it is not a performance assertion.
pub async fn within<F: Future>(limit: Duration, fut: F) -> F::Output {
    let fut = std::pin::pin!(fut);
    match future::select(fut, std::pin::pin!(nap(limit))).await {
        Either::Left((output, _)) => output,
        Either::Right(_) => panic!("the test did not finish within {limit:?}: it hangs"),
    }
}

/// Sleeps on a thread of its own, so it works under any executor (or none).
/// Dropping the future wakes and ends the thread at once.
pub fn nap(duration: Duration) -> impl Future<Output = ()> + Send + 'static {
    let (fire, fired) = futures::channel::oneshot::channel::<()>();
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(duration) {
            let _ = fire.send(());
        }
    });
    async move {
        let _stop = stop;
        let _ = fired.await;
    }
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

// ---------------------------------------------------------------------------
// Stamping
// ---------------------------------------------------------------------------

/// Stamps each listed `async fn name(ctx: Ctx)` of the calling module into
/// `name::<runtime>::<backend>` tests; see the module docs.
macro_rules! stamp {
    (runtimes: $runtimes:tt, backends: $backends:tt; $($body:ident),+ $(,)?) => {
        $(
            mod $body {
                for_runtimes!($runtimes; $body; $backends);
            }
        )+
    };
}

/// The runtime table: one arm per runtime (its module name, its `Runtime`
/// variant, the `cfg` it needs), and the groups `each` and `one`.
macro_rules! for_runtimes {
    (each; $($then:tt)*) => {
        for_runtimes!([thread, tokio_current, tokio_multi, async_std, smol]; $($then)*);
    };
    (one; $($then:tt)*) => {
        for_runtimes!([thread]; $($then)*);
    };
    ([$first:ident, $($rest:ident),+]; $($then:tt)*) => {
        for_runtimes!([$first]; $($then)*);
        for_runtimes!([$($rest),+]; $($then)*);
    };
    ([thread]; $($then:tt)*) => { stamp_runtime!(thread, Thread, all(); $($then)*); };
    ([tokio_current]; $($then:tt)*) => {
        stamp_runtime!(tokio_current, TokioCurrent, feature = "tokio"; $($then)*);
    };
    ([tokio_multi]; $($then:tt)*) => {
        stamp_runtime!(tokio_multi, TokioMulti, feature = "tokio"; $($then)*);
    };
    ([async_std]; $($then:tt)*) => {
        stamp_runtime!(async_std, AsyncStd, feature = "async-std"; $($then)*);
    };
    ([smol]; $($then:tt)*) => { stamp_runtime!(smol, Smol, feature = "smol"; $($then)*); };
}

macro_rules! stamp_runtime {
    ($module:ident, $variant:ident, $cfg:meta; $body:ident; $backends:tt) => {
        #[cfg($cfg)]
        mod $module {
            for_backends!($backends; $body; $variant);
        }
    };
}

/// The backend table: one arm per backend (its module name, the cargo
/// feature it needs, its [`Backend`] entry), and the groups `all` and
/// `sqlite`. A new backend is one more arm, and its name in `all`.
macro_rules! for_backends {
    (all; $($then:tt)*) => { for_backends!([memory, file, postgres, mysql]; $($then)*); };
    (sqlite; $($then:tt)*) => { for_backends!([memory, file]; $($then)*); };
    ([$first:ident, $($rest:ident),+]; $($then:tt)*) => {
        for_backends!([$first]; $($then)*);
        for_backends!([$($rest),+]; $($then)*);
    };
    ([memory]; $($then:tt)*) => {
        stamp_backend!(memory, "sqlite", $crate::common::sqlite::MEMORY; $($then)*);
    };
    ([file]; $($then:tt)*) => {
        stamp_backend!(file, "sqlite", $crate::common::sqlite::FILE; $($then)*);
    };
    ([postgres]; $($then:tt)*) => {
        stamp_backend!(postgres, "postgres", $crate::common::pg::POSTGRES; $($then)*);
    };
    ([mysql]; $($then:tt)*) => {
        stamp_backend!(mysql, "mysql", $crate::common::mysql::MYSQL; $($then)*);
    };
}

macro_rules! stamp_backend {
    ($module:ident, $feature:literal, $entry:path; $body:ident; $variant:ident) => {
        #[cfg(feature = $feature)]
        #[test]
        fn $module() {
            $crate::common::run(
                module_path!(),
                $crate::common::Runtime::$variant,
                &$entry,
                super::super::$body,
            );
        }
    };
}
