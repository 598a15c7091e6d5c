//! The harness of the behavioural suite: one list of `async fn name(ctx: Ctx)`
//! test bodies, stamped into a `#[test]` per runtime and per backend, as
//! tokio's `tests/rt_common.rs` does.
//!
//! ```text
//! stamp! { commit, rollback, ... }
//! // => thread::memory::commit, thread::file::commit,
//! //    tokio_multi::memory::commit, ..., smol::file::rollback, ...
//! ```
//!
//! Two dimensions:
//! - [`Runtime`]: the executor that awaits the test body and the strategy the
//!   engine uses. Runtimes behind a cargo feature are stamped only when it is
//!   enabled, so `--no-default-features --features sqlite` still runs the
//!   `thread` modules.
//! - [`Backend`]: the database. Every test gets a fresh one. Adding a backend
//!   (PostgreSQL) means one more [`Backend`] arm, its arm in
//!   [`Backend::prepare`] (a URL, or `None` to skip when no server is
//!   configured) and one line in `stamp_runtime!`.
//!
//! Shared test bodies write placeholders as `$1`, `$2`, ... in order of first
//! appearance: SQLite binds those by position just like PostgreSQL does.
//! Bodies that rely on one database's semantics check [`Ctx::backend`].

// Each test binary uses its own subset of the harness.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{self, BoxFuture, Either};
use futures::FutureExt;
use sqlaio::{Engine, EngineBuilder, Strategy};
use tempfile::TempDir;

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
}

impl Backend {
    /// `true` for the SQLite backends (PRAGMAs, `last_insert_id`, `:name` placeholders, ...).
    pub fn is_sqlite(self) -> bool {
        matches!(self, Backend::Memory | Backend::File)
    }

    /// A fresh database for one test, or `None` when this backend is not
    /// available here (the test is then skipped with a note on stderr).
    fn prepare(self, dir: &Path) -> Option<String> {
        match self {
            Backend::Memory => Some("sqlite::memory:".to_owned()),
            Backend::File => Some(sqlite_file_url(&dir.join("test.db"))),
        }
    }

    /// A URL of this backend's kind that cannot be connected to.
    pub fn unreachable_url(self, dir: &Path) -> String {
        match self {
            Backend::Memory | Backend::File => {
                sqlite_file_url(&dir.join("no-such-dir").join("nested").join("test.db"))
            }
        }
    }
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
    /// Holds the database file (if any) and scratch files until the test ends.
    dir: TempDir,
}

impl Ctx {
    /// The URL of this test's database.
    ///
    /// For [`Backend::Memory`], every engine built from it is a database of
    /// its own; for [`Backend::File`], every engine shares the file.
    pub fn url(&self) -> &str {
        &self.url
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
    let dir = tempfile::Builder::new()
        .prefix("sqlaio-test-")
        .tempdir()
        .expect("a temporary directory");
    let Some(url) = backend.prepare(dir.path()) else {
        eprintln!("skipped: the {backend:?} backend is not available");
        return;
    };
    let ctx = Ctx {
        backend,
        runtime,
        url,
        dir,
    };
    runtime.block_on(within(HANG_LIMIT, body(ctx)));
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
        stamp_backend!(memory, Memory, $rt; $($name),*);
        stamp_backend!(file, File, $rt; $($name),*);
    };
}

macro_rules! stamp_backend {
    ($module:ident, $backend:ident, $rt:ident; $($name:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    $crate::common::run(
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
