//! Reliability under cancellation, timeouts, faults, load, panics and bad
//! input, against real SQLite files and the real PostgreSQL server.
//!
//! Every loop is bounded in count and in time, and no test asserts on how
//! fast something was: "promptly" is a bounded wait with a generous limit,
//! and the measured times are printed (run with `--nocapture` to see them)
//! and reported in `docs/reliability.md`.
//!
//! Test names start with what they prove, so that a filter runs one group:
//! `cancel_`, `timeout_`, `fault_`, `load_`, `panic_`, `bad_input_`. Tests
//! that need PostgreSQL skip with a notice when no server answers (and fail
//! under `CI=true`); see `tests/pg_support`.
#![cfg(feature = "sqlite")]

#[allow(unused_macros)]
mod common;
// The harness may load the same helpers as a module of its own.
#[cfg(feature = "postgres")]
#[allow(clippy::duplicate_mod)]
mod pg_support;

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use common::{sqlite_file_url, Runtime};
use futures::future::{self, Either};
use futures::FutureExt;
use sqlaio::{Engine, Error, Result, Sql};

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// Counts to five hundred million: minutes of work, even in a release build.
/// Only ever run to be interrupted.
const ENDLESS_SQLITE: &str = "WITH RECURSIVE c(x) AS \
     (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500000000) SELECT count(*) FROM c";

/// Thirty seconds on the server: only ever run to be interrupted.
#[cfg(feature = "postgres")]
const ENDLESS_POSTGRES: &str = "SELECT pg_sleep(30)";

/// How long a statement runs before its future is dropped.
const CANCEL_AFTER: Duration = Duration::from_millis(50);

/// The statement timeout under test.
const TIMEOUT: Duration = Duration::from_millis(200);

/// The bound on a call that should answer "promptly" (within about a
/// second): generous, so that a loaded machine cannot fail it, and far below
/// what the interrupted statement would take if it were left to run.
const PROMPT: Duration = Duration::from_secs(10);

/// The bound on a whole test body: a hang becomes a failure, not a stuck run.
const TEST_LIMIT: Duration = Duration::from_secs(180);

/// Serializes the PostgreSQL server restart against every other test of this
/// file that uses the server: they hold it shared, the restart exclusively.
static SERVER: RwLock<()> = RwLock::new(());

/// Sleeps on a thread of its own, so it works under any executor (or none).
/// Dropping the future wakes and ends the thread at once.
fn nap(duration: Duration) -> impl Future<Output = ()> + Send + 'static {
    let (fire, fired) = futures::channel::oneshot::channel::<()>();
    let (stop, stopped) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(duration) {
            let _ = fire.send(());
        }
    });
    async move {
        let _stop = stop;
        let _ = fired.await;
    }
}

/// Awaits `fut`, failing the test if it takes longer than `limit`; returns
/// its output and how long it took.
async fn bounded<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    match future::select(pin!(fut), pin!(nap(limit))).await {
        Either::Left((value, _)) => (value, start.elapsed()),
        Either::Right(_) => panic!("{what}: no answer within {limit:?}"),
    }
}

/// Polls `check` until it holds, for at most `limit`; returns how long it took.
async fn poll_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what}: still not so after {limit:?}"
        );
        nap(Duration::from_millis(10)).await;
    }
}

/// Prints one measurement, tagged so that it can be found in the output.
fn report(what: impl AsRef<str>) {
    eprintln!("[reliability] {}", what.as_ref());
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The runtime's name in reports.
fn name(rt: Runtime) -> String {
    format!("{rt:?}").to_lowercase()
}

/// A fresh temporary directory for one test's files.
fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sqlaio-reliability-")
        .tempdir()
        .expect("a temporary directory")
}

/// Runs `body` on `rt`, bounded by [`TEST_LIMIT`].
fn block_on(rt: Runtime, body: impl Future<Output = ()>) {
    rt.block_on(common::within(TEST_LIMIT, body));
}

/// A small deterministic generator (SplitMix64): the same seed gives the same
/// load, so a failure can be replayed with `SQLAIO_SEED=<seed>`.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Waits for a child process, for at most `limit`; kills it past that.
fn wait_child(mut child: Child, limit: Duration, what: &str) -> (ExitStatus, String) {
    let start = Instant::now();
    loop {
        match child.try_wait().expect("poll the child process") {
            Some(_) => break,
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let out = child
                    .wait_with_output()
                    .expect("collect the child's output");
                panic!(
                    "{what}: the child process did not finish within {limit:?}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    }
    let out = child
        .wait_with_output()
        .expect("collect the child's output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

/// Starts this test binary again to run one (ignored) helper test, with `env` set.
fn spawn_self(test: &str, env: &[(&str, &str)]) -> Child {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().expect("start a copy of the test binary")
}

/// Stamps `mod $name { fn thread(), fn tokio_multi(), ... }`, one test per
/// runtime (each with its own strategy), calling `$body(runtime)`.
macro_rules! per_runtime {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn thread() {
                crate::$body(crate::common::Runtime::Thread);
            }
            #[cfg(feature = "tokio")]
            #[test]
            fn tokio_multi() {
                crate::$body(crate::common::Runtime::TokioMulti);
            }
            #[cfg(feature = "tokio")]
            #[test]
            fn tokio_current() {
                crate::$body(crate::common::Runtime::TokioCurrent);
            }
            #[cfg(feature = "async-std")]
            #[test]
            fn async_std() {
                crate::$body(crate::common::Runtime::AsyncStd);
            }
            #[cfg(feature = "smol")]
            #[test]
            fn smol() {
                crate::$body(crate::common::Runtime::Smol);
            }
        }
    };
}

/// The PostgreSQL server's URL, holding the server shared for the test, or
/// `None` (with a notice) when no server answers.
#[cfg(feature = "postgres")]
fn pg(test: &str) -> Option<(String, std::sync::RwLockReadGuard<'static, ()>)> {
    let url = pg_support::server(test)?;
    let guard = SERVER.read().unwrap_or_else(|e| e.into_inner());
    Some((url, guard))
}

/// `url` with an `application_name`, so that the test can find its own
/// backends in `pg_stat_activity`.
#[cfg(feature = "postgres")]
fn pg_app_url(url: &str, app: &str) -> String {
    pg_support::with_option(url, &format!("application_name={app}"))
}

/// Statements of `app` that are running `pg_sleep` right now.
#[cfg(feature = "postgres")]
async fn active_sleeps(observer: &Engine, app: &str) -> i64 {
    observer
        .scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = $1 AND state = 'active' AND query LIKE '%pg_sleep%'",
            (app,),
        )
        .await
        .expect("query pg_stat_activity")
}

/// An engine on `url` for watching `pg_stat_activity` from outside.
#[cfg(feature = "postgres")]
fn observer(url: &str) -> Engine {
    Engine::builder()
        .url(url)
        .max_connections(1)
        .build()
        .expect("an observer engine")
}

// ---------------------------------------------------------------------------
// Cancellation: a dropped future interrupts its statement on the database
// ---------------------------------------------------------------------------

per_runtime!(cancel_sqlite, cancel_sqlite_body);

/// A long SQLite query dropped after 50 ms: the next call on the same
/// connection answers promptly with its own result, three times over; the
/// same through the engine's pool.
fn cancel_sqlite_body(rt: Runtime) {
    block_on(rt, async move {
        let dir = scratch_dir();
        let engine = Engine::builder()
            .url(sqlite_file_url(&dir.path().join("cancel.db")))
            .strategy_arc(rt.strategy())
            .max_connections(1)
            .build()
            .unwrap();
        let conn = engine.connect().await.unwrap();
        for round in 1..=3i64 {
            let long = conn.scalar::<i64>(ENDLESS_SQLITE, ());
            if let Either::Left((answer, _)) =
                future::select(pin!(long), pin!(nap(CANCEL_AFTER))).await
            {
                panic!("the endless query answered: {answer:?}");
            }
            // Dropped: the statement is interrupted, and the connection is free.
            let (answer, took) = bounded(
                "the call after a dropped query",
                PROMPT,
                conn.scalar::<i64>("SELECT $1", (round,)),
            )
            .await;
            assert_eq!(answer.unwrap(), round, "the next call got another's answer");
            report(format!(
                "cancel sqlite {}: next call on the connection answered in {}",
                name(rt),
                ms(took)
            ));
        }
        drop(conn);

        // Through the pool: the engine's only connection is the one whose statement was dropped.
        let long = engine.scalar::<i64>(ENDLESS_SQLITE, ());
        if let Either::Left((answer, _)) = future::select(pin!(long), pin!(nap(CANCEL_AFTER))).await
        {
            panic!("the endless query answered: {answer:?}");
        }
        let (answer, took) = bounded(
            "the engine's call after a dropped query",
            PROMPT,
            engine.scalar::<i64>("SELECT 4", ()),
        )
        .await;
        assert_eq!(answer.unwrap(), 4);
        report(format!(
            "cancel sqlite {}: next call through the pool answered in {}",
            name(rt),
            ms(took)
        ));
        assert_eq!(engine.pool_status().size, 1);
        engine.close().await.unwrap();
        assert_eq!(engine.worker_count(), 0);
    });
}

#[cfg(feature = "postgres")]
per_runtime!(cancel_postgres, cancel_postgres_body);

/// `SELECT pg_sleep(30)` dropped 50 ms after the server lists it as running:
/// the server stops it (`pg_stat_activity` no longer shows it), the same
/// backend serves the next call promptly with its own result.
#[cfg(feature = "postgres")]
fn cancel_postgres_body(rt: Runtime) {
    let Some((url, _server)) = pg("cancel_postgres") else {
        return;
    };
    block_on(rt, async move {
        let app = pg_support::unique(&format!("cancel_{}", name(rt)));
        let engine = Engine::builder()
            .url(pg_app_url(&url, &app))
            .strategy_arc(rt.strategy())
            .max_connections(1)
            .build()
            .unwrap();
        let observer = observer(&url);
        let conn = engine.connect().await.unwrap();
        let pid: i32 = conn.scalar("SELECT pg_backend_pid()", ()).await.unwrap();
        for round in 1..=6i64 {
            let started = Instant::now();
            let sleeping = conn.execute(ENDLESS_POSTGRES, ());
            let seen = async {
                nap(CANCEL_AFTER).await;
                poll_until("the server lists pg_sleep as running", PROMPT, || async {
                    active_sleeps(&observer, &app).await == 1
                })
                .await;
            };
            match future::select(pin!(sleeping), pin!(seen)).await {
                Either::Left((answer, _)) => panic!(
                    "round {round}: pg_sleep(30) answered after {:?}, before its future was dropped: \
                     {answer:?} (a cancel request sent for an earlier statement hit this one)",
                    started.elapsed()
                ),
                Either::Right(_) => {}
            }
            let dropped = Instant::now();
            if round % 2 == 1 {
                // The next call at once: it must not wait 30 s for the sleep.
                let (answer, took) = bounded(
                    "the call after a dropped pg_sleep",
                    PROMPT,
                    conn.scalar::<i64>("SELECT $1::bigint", (round,)),
                )
                .await;
                assert_eq!(answer.unwrap(), round, "the next call got another's answer");
                report(format!(
                    "cancel postgres {}: next call on the connection answered in {}",
                    name(rt),
                    ms(took)
                ));
                assert_eq!(active_sleeps(&observer, &app).await, 0);
            } else {
                // Nothing else sent: the server stops the statement on its own account.
                let took = poll_until("pg_stat_activity shows pg_sleep gone", PROMPT, || async {
                    active_sleeps(&observer, &app).await == 0
                })
                .await;
                report(format!(
                    "cancel postgres {}: pg_stat_activity shows the statement gone {} after the drop (polled every 10 ms)",
                    name(rt),
                    ms(took.max(dropped.elapsed()))
                ));
                let (answer, _) = bounded(
                    "the call after a dropped pg_sleep",
                    PROMPT,
                    conn.scalar::<i64>("SELECT $1::bigint", (round,)),
                )
                .await;
                assert_eq!(answer.unwrap(), round);
            }
            // The same backend: the connection was kept, not replaced.
            let same: i32 = conn.scalar("SELECT pg_backend_pid()", ()).await.unwrap();
            assert_eq!(same, pid);
        }
        drop(conn);
        engine.close().await.unwrap();
        observer.close().await.unwrap();
        assert_eq!(engine.worker_count(), 0);
    });
}

// ---------------------------------------------------------------------------
// Timeouts: the same statements past a 200 ms statement timeout
// ---------------------------------------------------------------------------

per_runtime!(timeout_sqlite, timeout_sqlite_body);

/// The endless SQLite query fails with `is_timeout()` under a 200 ms
/// statement timeout set on the builder, and under one set per call; the
/// connection answers right after.
fn timeout_sqlite_body(rt: Runtime) {
    block_on(rt, async move {
        let dir = scratch_dir();
        let url = sqlite_file_url(&dir.path().join("timeout.db"));
        let with_timeout = Engine::builder()
            .url(&url)
            .strategy_arc(rt.strategy())
            .max_connections(1)
            .statement_timeout(TIMEOUT)
            .build()
            .unwrap();
        let without = Engine::builder()
            .url(&url)
            .strategy_arc(rt.strategy())
            .max_connections(1)
            .build()
            .unwrap();

        let conn = with_timeout.connect().await.unwrap();
        let (err, took) = bounded(
            "a statement past the builder's timeout",
            PROMPT,
            conn.scalar::<i64>(ENDLESS_SQLITE, ()),
        )
        .await;
        let err = err.unwrap_err();
        assert!(err.is_timeout(), "expected a timeout, got {err:?}");
        report(format!(
            "timeout sqlite {} builder: is_timeout() after {} (timeout {})",
            name(rt),
            ms(took),
            ms(TIMEOUT)
        ));
        let (answer, _) = bounded(
            "the call after a timeout",
            PROMPT,
            conn.scalar::<i64>("SELECT 11", ()),
        )
        .await;
        assert_eq!(answer.unwrap(), 11i64);
        drop(conn);
        // Through the pool too.
        let (err, _) = bounded(
            "an engine statement past the builder's timeout",
            PROMPT,
            with_timeout.scalar::<i64>(ENDLESS_SQLITE, ()),
        )
        .await;
        assert!(err.unwrap_err().is_timeout());
        assert_eq!(
            with_timeout.scalar::<i64>("SELECT 12", ()).await.unwrap(),
            12
        );

        let conn = without.connect().await.unwrap();
        let (err, took) = bounded(
            "a statement past its own timeout",
            PROMPT,
            conn.scalar::<i64>(Sql::new(ENDLESS_SQLITE).timeout(TIMEOUT), ()),
        )
        .await;
        let err = err.unwrap_err();
        assert!(err.is_timeout(), "expected a timeout, got {err:?}");
        report(format!(
            "timeout sqlite {} per call: is_timeout() after {}",
            name(rt),
            ms(took)
        ));
        let (answer, _) = bounded(
            "the call after a timeout",
            PROMPT,
            conn.scalar::<i64>("SELECT 13", ()),
        )
        .await;
        assert_eq!(answer.unwrap(), 13i64);
        drop(conn);

        with_timeout.close().await.unwrap();
        without.close().await.unwrap();
        assert_eq!(with_timeout.worker_count() + without.worker_count(), 0);
    });
}

#[cfg(feature = "postgres")]
per_runtime!(timeout_postgres, timeout_postgres_body);

/// `pg_sleep(30)` fails with `is_timeout()` under a 200 ms statement timeout
/// (builder and per call), is gone from `pg_stat_activity`, and the same
/// connection answers right after.
#[cfg(feature = "postgres")]
fn timeout_postgres_body(rt: Runtime) {
    let Some((url, _server)) = pg("timeout_postgres") else {
        return;
    };
    block_on(rt, async move {
        let app = pg_support::unique(&format!("timeout_{}", name(rt)));
        let app_url = pg_app_url(&url, &app);
        let with_timeout = Engine::builder()
            .url(&app_url)
            .strategy_arc(rt.strategy())
            .max_connections(1)
            .statement_timeout(TIMEOUT)
            .build()
            .unwrap();
        let without = Engine::builder()
            .url(&app_url)
            .strategy_arc(rt.strategy())
            .max_connections(1)
            .build()
            .unwrap();
        let observer = observer(&url);

        for (label, engine, sql) in [
            ("builder", &with_timeout, Sql::new(ENDLESS_POSTGRES)),
            (
                "per call",
                &without,
                Sql::new(ENDLESS_POSTGRES).timeout(TIMEOUT),
            ),
        ] {
            let conn = engine.connect().await.unwrap();
            let pid: i32 = conn.scalar("SELECT pg_backend_pid()", ()).await.unwrap();
            let (err, took) =
                bounded("pg_sleep past its timeout", PROMPT, conn.execute(sql, ())).await;
            let err = err.map(|_| ()).unwrap_err();
            assert!(err.is_timeout(), "expected a timeout, got {err:?}");
            report(format!(
                "timeout postgres {} {label}: is_timeout() after {}",
                name(rt),
                ms(took)
            ));
            let (answer, _) = bounded(
                "the call after a timeout",
                PROMPT,
                conn.scalar::<i64>("SELECT 21::bigint", ()),
            )
            .await;
            assert_eq!(answer.unwrap(), 21);
            let same: i32 = conn.scalar("SELECT pg_backend_pid()", ()).await.unwrap();
            assert_eq!(same, pid, "the connection was replaced");
            assert_eq!(active_sleeps(&observer, &app).await, 0);
        }
        with_timeout.close().await.unwrap();
        without.close().await.unwrap();
        observer.close().await.unwrap();
    });
}

// ---------------------------------------------------------------------------
// Faults: lost connections, a restarted server, locked, foreign and read-only files
// ---------------------------------------------------------------------------

/// What happened to one unit of work in the fault tests.
#[cfg(feature = "postgres")]
#[derive(Debug)]
enum Outcome {
    Committed,
    /// Failed before its `COMMIT` was sent: none of it may remain.
    FailedBefore(Error),
    /// Failed while committing: it may have committed or not, as a whole.
    FailedAtCommit(Error),
}

/// One transaction of the terminate test: insert a row tagged with the task
/// and iteration, read back the task's own row count, commit.
#[cfg(feature = "postgres")]
async fn terminate_iteration(
    engine: &Engine,
    table: &str,
    task: i64,
    i: i64,
    before: i64,
) -> Outcome {
    let tx = match engine.begin().await {
        Ok(tx) => tx,
        Err(e) => return Outcome::FailedBefore(e),
    };
    if let Err(e) = tx
        .execute(
            format!("INSERT INTO {table} (task, seq) VALUES ($1, $2)"),
            (task, i),
        )
        .await
    {
        return Outcome::FailedBefore(e);
    }
    match tx
        .scalar::<i64>(
            format!("SELECT count(*) FROM {table} WHERE task = $1"),
            (task,),
        )
        .await
    {
        // The task's committed rows (at least), plus this one.
        Ok(n) => assert!(
            n > before,
            "task {task} read {n} rows, expected more than {before}"
        ),
        Err(e) => return Outcome::FailedBefore(e),
    }
    match tx.commit().await {
        Ok(()) => Outcome::Committed,
        Err(e) => Outcome::FailedAtCommit(e),
    }
}

/// Terminates every backend of `app` from outside; returns how many.
#[cfg(feature = "postgres")]
async fn terminate_all(killer: &Engine, app: &str) -> i64 {
    killer
        .scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) AS killed \
             FROM pg_stat_activity WHERE application_name = $1) t WHERE killed",
            (app,),
        )
        .await
        .expect("terminate the pool's backends")
}

/// `pg_terminate_backend` on every pooled connection, twice, in the middle of
/// 32 tasks running transactions over a pool of 8: every failure is
/// `is_connection_lost()`, each dead connection fails one call at most, the
/// pool replaces them, every task's last transaction succeeds, and the
/// table holds exactly the committed rows.
#[cfg(feature = "postgres")]
#[test]
fn fault_postgres_terminate_under_load() {
    let Some((url, _server)) = pg("fault_postgres_terminate_under_load") else {
        return;
    };
    block_on(Runtime::Thread, async move {
        const TASKS: i64 = 32;
        const ITERATIONS: i64 = 30;
        let scratch = pg_support::Scratch::new(&url);
        let table = scratch.table("rel_terminate");
        let app = pg_support::unique("rel_terminate");
        let engine = Engine::builder()
            .url(pg_app_url(&url, &app))
            .max_connections(8)
            .build()
            .unwrap();
        let killer = observer(&url);
        engine
            .execute(
                format!("CREATE TABLE {table} (task BIGINT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (task, seq))"),
                (),
            )
            .await
            .unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let total = (TASKS * ITERATIONS) as usize;

        let tasks = (0..TASKS).map(|task| {
            let engine = engine.clone();
            let table = table.clone();
            let done = done.clone();
            async move {
                let mut outcomes = Vec::new();
                let mut committed = 0;
                for i in 0..ITERATIONS {
                    let outcome = terminate_iteration(&engine, &table, task, i, committed).await;
                    if matches!(outcome, Outcome::Committed) {
                        committed += 1;
                    }
                    outcomes.push(outcome);
                    done.fetch_add(1, Ordering::SeqCst);
                }
                outcomes
            }
            .boxed()
        });
        let kills = {
            let done = done.clone();
            let killer = &killer;
            let app = &app;
            async move {
                let mut killed = Vec::new();
                for at in [total / 4, total / 2] {
                    poll_until("the load reaches the next kill", TEST_LIMIT, || {
                        let reached = done.load(Ordering::SeqCst) >= at;
                        async move { reached }
                    })
                    .await;
                    killed.push(terminate_all(killer, app).await);
                }
                killed
            }
        };
        let started = Instant::now();
        let (outcomes, killed) = future::join(future::join_all(tasks), kills).await;
        let took = started.elapsed();

        let mut lost = 0;
        let mut unexpected = Vec::new();
        for (task, list) in outcomes.iter().enumerate() {
            for (i, outcome) in list.iter().enumerate() {
                match outcome {
                    Outcome::Committed => {}
                    Outcome::FailedBefore(e) | Outcome::FailedAtCommit(e) => {
                        if e.is_connection_lost() {
                            lost += 1;
                        } else {
                            unexpected.push(format!("task {task} iteration {i}: {e}"));
                        }
                    }
                }
            }
            assert!(
                matches!(list.last(), Some(Outcome::Committed)),
                "task {task}: its last transaction failed: {:?}",
                list.last()
            );
        }
        let killed_total: i64 = killed.iter().sum();
        report(format!(
            "fault terminate: {} transactions by {TASKS} tasks over a pool of 8 in {}; \
             killed {killed:?} backends; {lost} calls failed with a lost connection",
            total,
            ms(took)
        ));
        assert!(
            unexpected.is_empty(),
            "errors other than a lost connection: {unexpected:#?}"
        );
        assert!(
            killed.iter().all(|&k| k >= 1),
            "a kill round found no backend: {killed:?}"
        );
        assert!(
            lost <= killed_total,
            "{lost} calls failed for {killed_total} killed connections: a dead connection was used twice"
        );

        // The pool healed: eight statements at once, on fresh backends.
        let pids =
            future::join_all((0..8).map(|_| engine.scalar::<i32>("SELECT pg_backend_pid()", ())))
                .await;
        assert!(pids.iter().all(Result::is_ok), "{pids:?}");
        assert!(engine.pool_status().size <= 8);

        // Exactly the committed rows (a failed commit may have applied, as a whole).
        let mut rows = engine
            .execute(
                format!("SELECT task, seq FROM {table} ORDER BY task, seq"),
                (),
            )
            .await
            .unwrap();
        let mut present = std::collections::BTreeSet::new();
        for row in rows.fetchall().await.unwrap() {
            present.insert((row.get::<i64>(0).unwrap(), row.get::<i64>(1).unwrap()));
        }
        drop(rows);
        for (task, list) in outcomes.iter().enumerate() {
            for (i, outcome) in list.iter().enumerate() {
                let key = (task as i64, i as i64);
                match outcome {
                    Outcome::Committed => {
                        assert!(present.remove(&key), "committed row {key:?} is missing")
                    }
                    Outcome::FailedBefore(_) => assert!(
                        !present.contains(&key),
                        "row {key:?} of a failed transaction is present"
                    ),
                    Outcome::FailedAtCommit(_) => {
                        present.remove(&key);
                    }
                }
            }
        }
        assert!(present.is_empty(), "rows nobody wrote: {present:?}");
        engine.close().await.unwrap();
        killer.close().await.unwrap();
        assert_eq!(engine.worker_count(), 0);
    });
}

/// The local PostgreSQL cluster's version (`/etc/postgresql/<version>/main`),
/// when `pg_ctlcluster` can restart it.
#[cfg(feature = "postgres")]
fn local_cluster() -> Option<String> {
    let found = Command::new("pg_ctlcluster")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        return None;
    }
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("main").is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    versions.sort();
    versions.pop()
}

#[cfg(feature = "postgres")]
fn pg_ready() -> bool {
    Command::new("pg_isready")
        .args(["-q", "-h", "127.0.0.1", "-p", "5432"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `pg_ctlcluster <version> main <action>`, bounded.
#[cfg(feature = "postgres")]
fn pg_ctl(version: &str, action: &str) {
    let child = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, "main", action])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pg_ctlcluster");
    let (status, output) = wait_child(child, Duration::from_secs(90), "pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {action} failed: {output}");
}

/// Leaves the server running, whatever happened to the test.
#[cfg(feature = "postgres")]
struct KeepServerUp(String);

#[cfg(feature = "postgres")]
impl Drop for KeepServerUp {
    fn drop(&mut self) {
        let start = Instant::now();
        while !pg_ready() && start.elapsed() < Duration::from_secs(60) {
            if start.elapsed() > Duration::from_secs(5) {
                let _ = Command::new("pg_ctlcluster")
                    .args(["--skip-systemctl-redirect", &self.0, "main", "start"])
                    .status();
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A server restart while idle connections sit in two pools. With
/// `test_before_acquire(true)` the next acquire hands out a working
/// connection; without it, each dead connection fails its first statement
/// with `is_connection_lost()`, is replaced, and the call after succeeds.
#[cfg(feature = "postgres")]
#[test]
fn fault_postgres_server_restart() {
    const POOL: usize = 3;
    let Some(url) = pg_support::server("fault_postgres_server_restart") else {
        return;
    };
    if !pg_support::using_default_url() {
        eprintln!("fault_postgres_server_restart: skipped: DATABASE_URL names a server this test cannot restart");
        return;
    }
    let Some(version) = local_cluster() else {
        eprintln!("fault_postgres_server_restart: skipped: no local cluster that pg_ctlcluster can restart");
        return;
    };
    // No other test of this file uses the server meanwhile.
    let _server = SERVER.write().unwrap_or_else(|e| e.into_inner());
    let _keep = KeepServerUp(version.clone());
    block_on(Runtime::Thread, async move {
        let tested = Engine::builder()
            .url(pg_app_url(&url, &pg_support::unique("rel_restart_tested")))
            .max_connections(POOL)
            .test_before_acquire(true)
            .build()
            .unwrap();
        let plain = Engine::builder()
            .url(pg_app_url(&url, &pg_support::unique("rel_restart_plain")))
            .max_connections(POOL)
            .build()
            .unwrap();
        let mut old = Vec::new();
        for engine in [&tested, &plain] {
            // Fill the pool: POOL connections at once, then all idle.
            let conns = future::join_all((0..POOL).map(|_| engine.connect())).await;
            for conn in &conns {
                let conn = conn.as_ref().unwrap();
                old.push(
                    conn.scalar::<i32>("SELECT pg_backend_pid()", ())
                        .await
                        .unwrap(),
                );
            }
            drop(conns);
            assert_eq!(engine.pool_status().idle, POOL);
        }

        let started = Instant::now();
        pg_ctl(&version, "restart");
        let mut ready = false;
        for _ in 0..300 {
            if pg_ready() {
                ready = true;
                break;
            }
            nap(Duration::from_millis(100)).await;
        }
        assert!(ready, "the server did not come back after the restart");
        report(format!(
            "fault restart: the server was back after {}",
            ms(started.elapsed())
        ));

        // test_before_acquire: the dead idle connections are found and replaced.
        let (pid, took) = bounded(
            "the first call after the restart, with test_before_acquire",
            PROMPT,
            tested.scalar::<i32>("SELECT pg_backend_pid()", ()),
        )
        .await;
        let pid = pid.expect("with test_before_acquire, the first call after a restart succeeds");
        assert!(
            !old.contains(&pid),
            "a connection from before the restart was handed out"
        );
        report(format!(
            "fault restart: with test_before_acquire the first call succeeded in {}",
            ms(took)
        ));
        let all = future::join_all((0..POOL).map(|_| tested.scalar::<i32>("SELECT 1", ()))).await;
        assert!(all.iter().all(Result::is_ok), "{all:?}");

        // Without: each dead connection fails once, then calls succeed.
        let mut failures = 0;
        let pid = loop {
            let (result, _) = bounded(
                "a call after the restart, without test_before_acquire",
                PROMPT,
                plain.scalar::<i32>("SELECT pg_backend_pid()", ()),
            )
            .await;
            match result {
                Ok(pid) => break pid,
                Err(e) => {
                    assert!(
                        e.is_connection_lost(),
                        "expected a lost connection, got {e:?}"
                    );
                    failures += 1;
                    assert!(failures <= POOL, "more failures than dead connections");
                }
            }
        };
        assert!(
            failures >= 1,
            "no call noticed that the server had restarted"
        );
        assert!(!old.contains(&pid));
        report(format!(
            "fault restart: without test_before_acquire {failures} call(s) failed with is_connection_lost() ({POOL} idle connections), then calls succeeded"
        ));
        let all = future::join_all((0..POOL).map(|_| plain.scalar::<i32>("SELECT 1", ()))).await;
        assert!(all.iter().all(Result::is_ok), "{all:?}");

        tested.close().await.unwrap();
        plain.close().await.unwrap();
        assert_eq!(tested.worker_count() + plain.worker_count(), 0);
    });
}

/// The environment variable that turns the lock-holder helper on: the database path.
const LOCK_ENV: &str = "SQLAIO_RELIABILITY_LOCK_DB";

/// Helper process for [`fault_sqlite_locked_by_another_process`]: holds
/// SQLite's write lock on the database named by `SQLAIO_RELIABILITY_LOCK_DB`
/// until a `.release` file appears beside it (30 s at most).
#[test]
#[ignore = "a helper process: fault_sqlite_locked_by_another_process starts it"]
fn helper_lock_holder() {
    let Ok(path) = std::env::var(LOCK_ENV) else {
        eprintln!("helper_lock_holder: nothing to do without {LOCK_ENV}");
        return;
    };
    let conn = sqlaio::rusqlite::Connection::open(&path).expect("open the database");
    conn.execute_batch("BEGIN EXCLUSIVE; INSERT INTO t (x) VALUES (-1);")
        .expect("take the write lock");
    std::fs::write(format!("{path}.locked"), b"").expect("write the marker");
    let release = PathBuf::from(format!("{path}.release"));
    let start = Instant::now();
    while !release.exists() && start.elapsed() < Duration::from_secs(30) {
        thread::sleep(Duration::from_millis(10));
    }
    conn.execute_batch("ROLLBACK").expect("release the lock");
}

/// Another process holds the write lock past the busy timeout (5 s): the
/// write fails with a clear "database is locked" error, reads go on, and
/// once the lock is gone the same write succeeds.
#[test]
fn fault_sqlite_locked_by_another_process() {
    block_on(Runtime::Thread, async {
        let dir = scratch_dir();
        let path = dir.path().join("locked.db");
        let engine = Engine::builder()
            .url(sqlite_file_url(&path))
            .max_connections(2)
            .build()
            .unwrap();
        engine
            .execute("CREATE TABLE t (x INTEGER)", ())
            .await
            .unwrap();
        engine
            .execute("INSERT INTO t (x) VALUES (1)", ())
            .await
            .unwrap();

        let path_text = path.to_str().expect("a UTF-8 temporary path").to_owned();
        let child = spawn_self("helper_lock_holder", &[(LOCK_ENV, &path_text)]);
        let marker = PathBuf::from(format!("{path_text}.locked"));
        let waited = Instant::now();
        let mut child = Some(child);
        while !marker.exists() {
            if let Some(Some(_)) = child
                .as_mut()
                .map(|c| c.try_wait().expect("poll the helper"))
            {
                let (_, output) = wait_child(child.take().unwrap(), PROMPT, "the lock holder");
                panic!("the lock holder exited before taking the lock: {output}");
            }
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "the lock holder never took the lock"
            );
            nap(Duration::from_millis(10)).await;
        }

        let (err, took) = bounded(
            "a write while another process holds the lock",
            Duration::from_secs(60),
            engine.execute("INSERT INTO t (x) VALUES (2)", ()),
        )
        .await;
        let err = err.map(|_| ()).unwrap_err();
        assert!(err.is_database(), "{err:?}");
        assert!(
            err.to_string().contains("database is locked"),
            "unclear error: {err}"
        );
        report(format!(
            "fault locked: the write failed after {}: {err}",
            ms(took)
        ));
        // Readers are not blocked (WAL), and do not see the other process's uncommitted row.
        assert_eq!(
            engine
                .scalar::<i64>("SELECT count(*) FROM t", ())
                .await
                .unwrap(),
            1
        );

        std::fs::write(format!("{path_text}.release"), b"").unwrap();
        let (status, output) = wait_child(
            child.take().unwrap(),
            Duration::from_secs(60),
            "the lock holder",
        );
        assert!(status.success(), "the lock holder failed: {output}");
        let inserted = engine
            .execute("INSERT INTO t (x) VALUES (2)", ())
            .await
            .unwrap();
        assert_eq!(inserted.rowcount(), 1);
        drop(inserted);
        let values: Vec<i64> = engine
            .execute("SELECT x FROM t ORDER BY x", ())
            .await
            .unwrap()
            .fetchall()
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        assert_eq!(
            values,
            [1, 2],
            "the other process's rolled-back row or our failed write leaked"
        );
        engine.close().await.unwrap();
        assert_eq!(engine.worker_count(), 0);
    });
}

/// A file of random bytes is not taken for a database: connecting fails at
/// once with "file is not a database" (not a pool timeout), the file is left
/// as it was, read-write and read-only alike.
#[test]
fn fault_sqlite_not_a_database() {
    block_on(Runtime::Thread, async {
        let dir = scratch_dir();
        let path = dir.path().join("garbage.db");
        let mut rng = Rng::new(7);
        let garbage: Vec<u8> = (0..65536).map(|_| rng.next() as u8).collect();
        assert!(!garbage.starts_with(b"SQLite format 3"));
        std::fs::write(&path, &garbage).unwrap();

        for (how, url) in [
            ("read-write", sqlite_file_url(&path)),
            ("?mode=ro", format!("{}?mode=ro", sqlite_file_url(&path))),
        ] {
            let engine = Engine::builder().url(&url).build().unwrap();
            for _ in 0..2 {
                let (err, took) = bounded(
                    "connecting to a file that is not SQLite",
                    PROMPT,
                    engine.connect(),
                )
                .await;
                let err = err.unwrap_err();
                assert!(
                    !err.is_pool_timeout(),
                    "the error was retried until the pool gave up: {err:?}"
                );
                assert!(
                    err.to_string().contains("not a database"),
                    "unclear error: {err}"
                );
                report(format!(
                    "fault not-a-database ({how}): failed in {}: {err}",
                    ms(took)
                ));
            }
            engine.close().await.unwrap();
            assert_eq!(engine.worker_count(), 0);
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            garbage,
            "the file was modified"
        );
    });
}

/// A database opened read-only (`?mode=ro`, and a file without write
/// permission when the permission bits apply): writes fail with a clear
/// "readonly" error, and reads work before and after.
#[cfg(unix)]
#[test]
fn fault_sqlite_read_only() {
    block_on(Runtime::Thread, async {
        let dir = scratch_dir();
        let path = dir.path().join("ro.db");
        let writer = Engine::builder()
            .url(sqlite_file_url(&path))
            .build()
            .unwrap();
        writer
            .execute("CREATE TABLE t (x INTEGER)", ())
            .await
            .unwrap();
        writer
            .execute("INSERT INTO t (x) VALUES (1)", ())
            .await
            .unwrap();
        writer.close().await.unwrap();

        async fn check(url: &str, how: &str) {
            let engine = Engine::builder().url(url).build().unwrap();
            assert_eq!(
                engine
                    .scalar::<i64>("SELECT count(*) FROM t", ())
                    .await
                    .unwrap(),
                1
            );
            for write in ["INSERT INTO t (x) VALUES (2)", "CREATE TABLE u (y INTEGER)"] {
                let err = engine.execute(write, ()).await.map(|_| ()).unwrap_err();
                assert!(
                    err.to_string().contains("readonly"),
                    "{how}: unclear error: {err}"
                );
                report(format!("fault read-only ({how}): {write}: {err}"));
            }
            let conn = engine.connect().await.unwrap();
            let err = match conn.begin().await {
                Ok(tx) => tx
                    .execute("INSERT INTO t (x) VALUES (3)", ())
                    .await
                    .map(|_| ())
                    .unwrap_err(),
                Err(e) => e,
            };
            assert!(
                err.to_string().contains("readonly"),
                "{how}: unclear error: {err}"
            );
            drop(conn);
            assert_eq!(
                engine
                    .scalar::<i64>("SELECT count(*) FROM t", ())
                    .await
                    .unwrap(),
                1
            );
            engine.close().await.unwrap();
        }

        check(&format!("{}?mode=ro", sqlite_file_url(&path)), "?mode=ro").await;

        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        let writable = std::fs::OpenOptions::new().write(true).open(&path).is_ok();
        if writable {
            eprintln!(
                "fault_sqlite_read_only: the permission bits do not stop this user (root) from \
                 writing; the chmod 0444 case is covered by ?mode=ro only"
            );
            check(
                &format!("{}?mode=ro", sqlite_file_url(&path)),
                "chmod 0444 and ?mode=ro",
            )
            .await;
        } else {
            check(&sqlite_file_url(&path), "chmod 0444").await;
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    });
}
