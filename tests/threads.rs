//! No thread outlives its engine, and neither do the files behind a
//! `sqlite::memory:` database.
//!
//! A test binary of its own holding a single test, so that no other test's
//! threads come and go while this one counts the process's threads (through
//! `/proc/self/task`, so Linux only). Waits are bounded waits for a
//! condition (a thread exits shortly after its job returns), never timing
//! assertions.
#![cfg(all(feature = "sqlite", target_os = "linux"))]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use futures::future;
use sqlaio::{Engine, Error};

#[cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]
use common::Runtime;

/// How long a condition may take to come true after the event that causes it.
const SETTLE: Duration = Duration::from_secs(5);

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// The names of the process's threads (as the kernel keeps them: 15 bytes at most).
fn thread_names() -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let Ok(task) = task else { continue };
        // A thread may exit between the listing and the read.
        if let Ok(name) = std::fs::read_to_string(task.path().join("comm")) {
            names.push(name.trim_end().to_owned());
        }
    }
    names
}

/// Threads sqlaio names: `sqlaio-sqlite-<n>` workers, `sqlaio-timer`, `sqlaio-cancel`.
fn sqlaio_threads() -> Vec<String> {
    thread_names()
        .into_iter()
        .filter(|name| name.starts_with("sqlaio-"))
        .collect()
}

/// Worker threads of the thread strategy (`sqlaio-sqlite-<n>`).
fn worker_threads() -> usize {
    sqlaio_threads()
        .iter()
        .filter(|name| name.starts_with("sqlaio-sqlite-"))
        .count()
}

/// Waits until `condition` holds, for at most [`SETTLE`]; panics saying `what` otherwise.
fn settle(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < SETTLE,
            "{what}: still not so after {SETTLE:?}; threads: {} {:?}",
            thread_count(),
            thread_names()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn back_to(baseline: usize, what: &str) {
    settle(what, || {
        thread_count() == baseline && sqlaio_threads().is_empty()
    });
}

/// The files of this process's `sqlite::memory:` databases (in `/dev/shm`
/// where it exists, else the temporary directory), with their WAL companions.
fn memory_files() -> Vec<String> {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let prefix = format!("sqlaio-memory-{}-", std::process::id());
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn no_memory_files(what: &str) {
    settle(what, || memory_files().is_empty());
}

fn file_url(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

#[test]
fn no_thread_outlives_its_engine() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    thread_strategy(dir.path());
    cancelled_and_failed_connects(dir.path());
    dropped_engine(dir.path());
    timer_thread();
    #[cfg(feature = "tokio")]
    tokio_strategy(dir.path());
    #[cfg(feature = "smol")]
    shared_pool_strategy(Runtime::Smol, dir.path());
    #[cfg(feature = "async-std")]
    shared_pool_strategy(Runtime::AsyncStd, dir.path());
    no_memory_files("every in-memory database file is deleted");
}

/// One named thread per open connection while the engine is open; none after `close`.
fn thread_strategy(dir: &Path) {
    for url in ["sqlite::memory:".to_owned(), file_url(dir, "threads.db")] {
        let baseline = thread_count();
        assert!(sqlaio_threads().is_empty(), "{:?}", sqlaio_threads());
        block_on(async {
            let engine = Engine::builder()
                .url(url.clone())
                .max_connections(4)
                .build()
                .unwrap();
            let conns = future::try_join_all((0..4).map(|_| engine.connect()))
                .await
                .unwrap();
            for (i, conn) in (0_i64..).zip(&conns) {
                assert_eq!(conn.scalar::<i64>("SELECT $1", (i,)).await.unwrap(), i);
            }
            assert_eq!(engine.worker_count(), 4);
            assert_eq!(worker_threads(), 4, "{:?}", thread_names());
            assert!(thread_count() >= baseline + 4);
            if url.ends_with(":memory:") {
                assert!(!memory_files().is_empty(), "the in-memory database's file");
            }

            // Close with work still open: a streaming result and a transaction.
            conns[0]
                .execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)", ())
                .await
                .unwrap();
            let mut streaming = conns[1]
                .execute(
                    "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s \
                     WHERE n < 5000) SELECT n FROM s",
                    (),
                )
                .await
                .unwrap();
            streaming.fetchone().await.unwrap();
            let tx = conns[2].begin().await.unwrap();
            tx.execute("INSERT INTO t (x) VALUES (1)", ())
                .await
                .unwrap();

            engine.close().await.unwrap();
            assert_eq!(engine.worker_count(), 0);
            drop((streaming, tx));
        });
        back_to(
            baseline,
            &format!("{url}: threads back to the baseline after close"),
        );
    }
}

/// A connect whose future is dropped after its first poll, and a connect that
/// fails, leave no thread behind; the engine still works afterwards.
fn cancelled_and_failed_connects(dir: &Path) {
    let baseline = thread_count();
    let mut cancelled = 0;
    for _ in 0..10 {
        let engine = Engine::builder().url("sqlite::memory:").build().unwrap();
        let pending = block_on(async {
            let mut connect = Box::pin(engine.connect());
            // Pending unless the worker opened the database before this poll.
            futures::poll!(connect.as_mut()).is_pending()
        });
        if pending {
            cancelled += 1;
            // No close: the cancellation alone ends the worker.
            settle("a cancelled connect leaves no worker", || {
                engine.worker_count() == 0
            });
        }
        assert_eq!(
            block_on(engine.scalar::<i64>("SELECT 1", ())).unwrap(),
            1,
            "the engine works after a cancelled connect"
        );
        block_on(engine.close()).unwrap();
    }
    assert!(
        cancelled > 0,
        "no connect was still pending after its first poll"
    );
    back_to(baseline, "cancelled connects: threads back to the baseline");

    let bad = Engine::builder()
        .url(file_url(&dir.join("no-such-dir"), "x.db"))
        .max_connections(1)
        .build()
        .unwrap();
    for _ in 0..5 {
        let err = block_on(bad.connect()).unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    }
    settle("failed connects: no worker left", || {
        bad.worker_count() == 0 && worker_threads() == 0
    });
    // The engine's timer thread may run until the engine closes.
    block_on(bad.close()).unwrap();
    back_to(baseline, "failed connects: threads back to the baseline");
}

/// Dropping every handle without `close` stops the workers too, and deletes
/// an in-memory database's files.
fn dropped_engine(dir: &Path) {
    for url in [file_url(dir, "dropped.db"), "sqlite::memory:".to_owned()] {
        let baseline = thread_count();
        let conn = block_on(async {
            let engine = Engine::builder().url(url.clone()).build().unwrap();
            let (a, b) = future::try_join(engine.connect(), engine.connect())
                .await
                .unwrap();
            assert_eq!(engine.worker_count(), 2);
            a.execute("CREATE TABLE t (x INTEGER)", ()).await.unwrap();
            drop(a);
            drop(engine);
            // A connection still held keeps working without its engine handle.
            assert!(b.has_table("t").await.unwrap());
            b
        });
        drop(conn);
        back_to(baseline, &format!("{url}: every handle dropped"));
        no_memory_files("dropping the last handle deletes the in-memory database's files");
    }
    // An engine that never opened a connection.
    drop(Engine::builder().url("sqlite::memory:").build().unwrap());
    no_memory_files("an unused in-memory engine leaves no file behind");
}

/// The engine's timer thread (statement timeouts) stops with the engine.
fn timer_thread() {
    let baseline = thread_count();
    block_on(async {
        let engine = Engine::builder()
            .url("sqlite::memory:")
            .statement_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        assert_eq!(engine.scalar::<i64>("SELECT 3", ()).await.unwrap(), 3);
        engine.close().await.unwrap();
    });
    back_to(baseline, "the timer thread stops with its engine");
}

/// TokioStrategy: once the engine is closed and the runtime dropped, the
/// process is back to its threads from before the runtime.
#[cfg(feature = "tokio")]
fn tokio_strategy(dir: &Path) {
    for runtime in [Runtime::TokioMulti, Runtime::TokioCurrent] {
        let baseline = thread_count();
        let url = file_url(dir, "tokio.db");
        // The runtime is built for this call and dropped at its end.
        runtime.block_on(async {
            let engine = Engine::builder()
                .url(url)
                .strategy_arc(runtime.strategy())
                .max_connections(3)
                .build()
                .unwrap();
            let conns = future::try_join_all((0..3).map(|_| engine.connect()))
                .await
                .unwrap();
            for conn in &conns {
                assert_eq!(conn.scalar::<i64>("SELECT 4", ()).await.unwrap(), 4);
            }
            assert_eq!(engine.worker_count(), 3);
            drop(conns);
            engine.close().await.unwrap();
            assert_eq!(engine.worker_count(), 0);
        });
        back_to(baseline, "tokio: closed engine, dropped runtime");

        // Dropped (not closed) before its runtime: the runtime's shutdown,
        // which waits for blocking tasks, still ends.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let engine = Engine::builder()
                .url("sqlite::memory:")
                .strategy(sqlaio::TokioStrategy)
                .build()
                .unwrap();
            assert_eq!(engine.scalar::<i64>("SELECT 5", ()).await.unwrap(), 5);
        });
        let (done, dropped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(rt);
            let _ = done.send(());
        });
        dropped
            .recv_timeout(Duration::from_secs(60))
            .expect("the tokio runtime shuts down after the engine was dropped");
        back_to(baseline, "tokio: dropped engine, dropped runtime");
    }
}

/// Open/close cycles on a shared blocking pool: every worker stops at close,
/// and the pool's threads are reused rather than piling up.
#[cfg(any(feature = "smol", feature = "async-std"))]
fn pool_cycles(cycle: impl Fn()) {
    // The first cycle starts the runtime's and the pool's threads.
    cycle();
    let warm = thread_count();
    let mut peak = warm;
    for _ in 0..20 {
        cycle();
        peak = peak.max(thread_count());
    }
    // Three workers at a time; a leak would add three threads per cycle.
    assert!(
        peak <= warm + 6,
        "threads grew from {warm} to {peak} over 20 cycles: {:?}",
        thread_names()
    );
    // `close` joined the timer thread; the kernel lists a joined thread for a
    // moment after it has exited.
    settle("every sqlaio thread is gone after close", || {
        sqlaio_threads().is_empty()
    });
}

/// A strategy on its runtime's shared blocking pool (smol, async-std).
#[cfg(any(feature = "smol", feature = "async-std"))]
fn shared_pool_strategy(runtime: Runtime, dir: &Path) {
    let url = file_url(dir, &format!("{}.db", runtime.name()));
    pool_cycles(|| {
        runtime.block_on(async {
            cycle(
                Engine::builder()
                    .url(url.clone())
                    .strategy_arc(runtime.strategy()),
            )
            .await;
        });
    });
}

/// Opens three connections at once, uses them, closes the engine.
#[cfg(any(feature = "smol", feature = "async-std"))]
async fn cycle(builder: sqlaio::EngineBuilder) {
    let engine = builder.max_connections(3).build().unwrap();
    let conns = future::try_join_all((0..3).map(|_| engine.connect()))
        .await
        .unwrap();
    for (i, conn) in (0_i64..).zip(&conns) {
        assert_eq!(conn.scalar::<i64>("SELECT $1", (i,)).await.unwrap(), i);
    }
    assert_eq!(engine.worker_count(), 3);
    drop(conns);
    engine.close().await.unwrap();
    assert_eq!(engine.worker_count(), 0);
}
