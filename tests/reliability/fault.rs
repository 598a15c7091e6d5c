//! Faults: lost connections, a restarted server, locked, foreign and
//! read-only files.

use std::path::PathBuf;
#[cfg(feature = "postgres")]
use std::process::{Command, Stdio};
#[cfg(feature = "postgres")]
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

#[cfg(feature = "postgres")]
use futures::{future, FutureExt};
use sqlaio::Engine;
#[cfg(feature = "postgres")]
use sqlaio::Error;

#[cfg(feature = "postgres")]
use crate::common::pg;
#[cfg(feature = "postgres")]
use crate::common::{self, Runtime};
use crate::common::{nap, sqlite_file_url, Ctx};
use crate::*;

#[cfg(feature = "postgres")]
stamp! {
    runtimes: one, backends: [postgres];
    fault_postgres_terminate_under_load,
}

stamp! {
    runtimes: one, backends: [file];
    fault_sqlite_locked_by_another_process,
    fault_sqlite_not_a_database,
}

#[cfg(unix)]
stamp! {
    runtimes: one, backends: [file];
    fault_sqlite_read_only,
}

#[cfg(feature = "postgres")]
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

#[cfg(feature = "postgres")]
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

#[cfg(feature = "postgres")]
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

#[cfg(feature = "postgres")]
/// `pg_terminate_backend` on every pooled connection, twice, in the middle of
/// 32 tasks running transactions over a pool of 8: every failure is
/// `is_connection_lost()`, each dead connection fails one call at most, the
/// pool replaces them, every task's last transaction succeeds, and the
/// table holds exactly the committed rows.
async fn fault_postgres_terminate_under_load(ctx: Ctx) {
    let url = ctx.url().to_owned();
    const TASKS: i64 = 32;
    const ITERATIONS: i64 = 30;
    let table = pg::unique("rel_terminate");
    let app = pg::unique("rel_terminate");
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
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
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
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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
                    let reached = done.load(std::sync::atomic::Ordering::SeqCst) >= at;
                    async move { reached }
                })
                .await;
                killed.push(terminate_all(killer, app).await);
            }
            killed
        }
    };
    let started = Instant::now();
    let (mut outcomes, killed) = future::join(future::join_all(tasks), kills).await;
    let took = started.elapsed();
    // On a loaded machine a task can run ahead and meet the last kill in
    // its last transaction: once the kills are over, it runs one more.
    for (task, list) in outcomes.iter_mut().enumerate() {
        if !matches!(list.last(), Some(Outcome::Committed)) {
            let committed = list
                .iter()
                .filter(|o| matches!(o, Outcome::Committed))
                .count() as i64;
            let seq = list.len() as i64;
            list.push(terminate_iteration(&engine, &table, task as i64, seq, committed).await);
        }
    }

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
        future::join_all((0..8).map(|_| engine.scalar::<i32>("SELECT pg_backend_pid()", ()))).await;
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
    let Some(url) = pg::server("fault_postgres_server_restart") else {
        return;
    };
    if !pg::using_default_url() {
        eprintln!("fault_postgres_server_restart: skipped: DATABASE_URL names a server this test cannot restart");
        return;
    }
    let Some(version) = local_cluster() else {
        eprintln!("fault_postgres_server_restart: skipped: no local cluster that pg_ctlcluster can restart");
        return;
    };
    // No other test of this file uses the server meanwhile.
    let _server = pg::exclusive();
    let _keep = KeepServerUp(version.clone());
    Runtime::Thread.block_on(common::within(TEST_LIMIT, async move {
        let tested = Engine::builder()
            .url(pg_app_url(&url, &pg::unique("rel_restart_tested")))
            .max_connections(POOL)
            .test_before_acquire(true)
            .build()
            .unwrap();
        let plain = Engine::builder()
            .url(pg_app_url(&url, &pg::unique("rel_restart_plain")))
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
    }));
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
async fn fault_sqlite_locked_by_another_process(ctx: Ctx) {
    let path = ctx.path("locked.db");
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
    let child = spawn_self("fault::helper_lock_holder", &[(LOCK_ENV, &path_text)]);
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
}

/// A file of random bytes is not taken for a database: connecting fails at
/// once with "file is not a database" (not a pool timeout), the file is left
/// as it was, read-write and read-only alike.
async fn fault_sqlite_not_a_database(ctx: Ctx) {
    let path = ctx.path("garbage.db");
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
}

/// A database opened read-only (`?mode=ro`, and a file without write
/// permission when the permission bits apply): writes fail with a clear
/// "readonly" error, and reads work before and after.
#[cfg(unix)]
async fn fault_sqlite_read_only(ctx: Ctx) {
    let path = ctx.path("ro.db");
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
}
