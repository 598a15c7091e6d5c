//! PostgreSQL beyond one server: read replicas, multi-host failover URLs,
//! a lag bound, and PgBouncer in transaction mode, on a throwaway primary,
//! streaming standby and PgBouncer that `../shared/scripts/pg-replica-set`
//! starts on loopback ports of their own.
//!
//! One test function runs the scenarios in sequence around one start and
//! stop. Without the PostgreSQL server binaries (or PgBouncer, for its
//! scenario) it is skipped with a notice, unless `CI=true`, where it fails.

#![cfg(feature = "postgres")]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlaio::{Engine, ErrorKind, ServerRole};

const PRIMARY_PORT: u16 = 55433;
const STANDBY_PORT: u16 = 55434;
const BOUNCER_PORT: u16 = 56433;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

fn skip(why: &str) {
    if in_ci() {
        panic!("scaling tests cannot run under CI=true: {why}");
    }
    eprintln!("scaling tests skipped: {why}");
}

/// The replica set of this test binary: started on creation, stopped (and
/// its data removed) on drop.
struct ReplicaSet {
    script: PathBuf,
    dir: tempfile::TempDir,
    bouncer: bool,
}

impl ReplicaSet {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("bash");
        c.arg(&self.script)
            .args(args)
            .env("PGRS_DIR", self.dir.path().join("set"))
            .env("PGRS_PRIMARY_PORT", PRIMARY_PORT.to_string())
            .env("PGRS_STANDBY_PORT", STANDBY_PORT.to_string())
            .env("PGRS_BOUNCER_PORT", BOUNCER_PORT.to_string());
        c
    }

    fn run(&self, args: &[&str]) -> bool {
        match self.command(args).output() {
            Ok(out) if out.status.success() => true,
            Ok(out) => {
                eprintln!(
                    "pg-replica-set {args:?} failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                false
            }
            Err(e) => {
                eprintln!("pg-replica-set {args:?}: {e}");
                false
            }
        }
    }

    fn start() -> Option<ReplicaSet> {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/scripts/pg-replica-set");
        if !script.exists() {
            skip("../shared/scripts/pg-replica-set is missing");
            return None;
        }
        let has_server = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.flatten().any(|e| e.path().join("bin/initdb").exists()))
            .unwrap_or(false);
        if !has_server {
            skip("no PostgreSQL server binaries (apt-get install postgresql)");
            return None;
        }
        let has_bouncer = Command::new("sh")
            .args(["-c", "command -v pgbouncer || test -x /usr/sbin/pgbouncer"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_bouncer {
            if in_ci() {
                panic!("pgbouncer is not installed under CI=true");
            }
            eprintln!("scaling tests: pgbouncer missing: its scenario is skipped");
        }
        let set = ReplicaSet {
            script,
            dir: tempfile::tempdir().expect("a temporary directory"),
            bouncer: has_bouncer,
        };
        let started = if has_bouncer {
            set.run(&["start", "--pgbouncer"])
        } else {
            set.run(&["start"])
        };
        if !started {
            skip("pg-replica-set start failed");
            return None;
        }
        Some(set)
    }

    fn url(port: u16) -> String {
        format!("postgres://root@127.0.0.1:{port}/test?connect_timeout=2")
    }
}

impl Drop for ReplicaSet {
    fn drop(&mut self) {
        let _ = self.command(&["stop"]).output();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// Waits until `f` is true, polling; panics with `what` after `limit`.
async fn eventually(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn beyond_one_server() {
    let Some(set) = ReplicaSet::start() else {
        return;
    };
    let rt = runtime();
    let primary = ReplicaSet::url(PRIMARY_PORT);
    let standby = ReplicaSet::url(STANDBY_PORT);
    rt.block_on(async {
        reads_reach_the_standby_and_writes_the_primary(&primary, &standby).await;
        a_down_replica_falls_back_or_fails_as_configured(&primary).await;
        a_lag_bound_leaves_out_a_paused_replica(&primary, &standby).await;
        if set.bouncer {
            a_transaction_pooler_serves_unprepared_statements().await;
        }
        failover_under_writes(&set).await;
    });
}

async fn reads_reach_the_standby_and_writes_the_primary(primary: &str, standby: &str) {
    let engine = Engine::builder()
        .url(primary)
        .replica_with(standby, |b| b.max_connections(2))
        .max_connections(4)
        .build()
        .unwrap();
    engine
        .execute(
            "CREATE TABLE IF NOT EXISTS scaling_t (id int PRIMARY KEY, v text)",
            (),
        )
        .await
        .unwrap();
    engine
        .execute(
            "INSERT INTO scaling_t VALUES (1, 'a') ON CONFLICT DO NOTHING",
            (),
        )
        .await
        .unwrap();
    assert!(!engine
        .scalar::<bool>("SELECT pg_is_in_recovery()", ())
        .await
        .unwrap());
    assert!(engine
        .read()
        .scalar::<bool>("SELECT pg_is_in_recovery()", ())
        .await
        .unwrap());
    let conn = engine.read().connect().await.unwrap();
    let server = conn
        .server()
        .expect("the server a PostgreSQL connection reached");
    assert_eq!(
        (server.port, server.role),
        (STANDBY_PORT, Some(ServerRole::Standby))
    );
    drop(conn);
    let conn = engine.connect().await.unwrap();
    assert_eq!(conn.server().unwrap().role, Some(ServerRole::Primary));
    drop(conn);
    // The row replicates; the read view sees it.
    eventually(
        "the row on the standby",
        Duration::from_secs(10),
        async || {
            engine
                .read()
                .fetch_optional_as::<(i32,)>("SELECT id FROM scaling_t WHERE id = 1", ())
                .await
                // The table itself may not have replicated yet.
                .is_ok_and(|row| row.is_some())
        },
    )
    .await;
    // Read-your-writes: a view after the write's position sees it at once.
    engine
        .execute(
            "INSERT INTO scaling_t VALUES (3, 'ryw') ON CONFLICT DO NOTHING",
            (),
        )
        .await
        .unwrap();
    let position = engine.wal_position().await.unwrap();
    assert!(position.0 > 0, "{position}");
    let seen: Option<(String,)> = engine
        .read_after(position)
        .fetch_optional_as("SELECT v FROM scaling_t WHERE id = 3", ())
        .await
        .unwrap();
    assert_eq!(seen, Some(("ryw".to_owned(),)));
    // A write through the view fails clearly, on the replica ...
    let e = engine
        .read()
        .execute("INSERT INTO scaling_t VALUES (2, 'b')", ())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
    let status = engine.replica_status();
    assert_eq!(status.len(), 1);
    assert!(status[0].healthy, "{status:?}");
    engine.close().await.unwrap();

    // ... and on the fallback, where the session is read-only too.
    let engine = Engine::builder()
        .url(primary)
        .replica(ReplicaSet::url(1))
        .build()
        .unwrap();
    assert!(!engine
        .read()
        .scalar::<bool>("SELECT pg_is_in_recovery()", ())
        .await
        .unwrap());
    let e = engine
        .read()
        .execute("INSERT INTO scaling_t VALUES (2, 'b')", ())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
    let tx = engine.read().begin().await.unwrap();
    let e = tx
        .execute("INSERT INTO scaling_t VALUES (2, 'b')", ())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
    drop(tx);
    let status = engine.replica_status();
    assert!(!status[0].healthy, "{status:?}");
    engine.close().await.unwrap();
}

async fn a_down_replica_falls_back_or_fails_as_configured(primary: &str) {
    // Nothing listens on port 1.
    let engine = Engine::builder()
        .url(primary)
        .replica(ReplicaSet::url(1))
        .replica_fallback(false)
        .build()
        .unwrap();
    let start = Instant::now();
    let e = engine
        .read()
        .scalar::<i32>("SELECT 1", ())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionFailed, "{e}");
    assert!(e.to_string().contains("no replica available"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // Left out for a while: the next read fails at once.
    let start = Instant::now();
    let _ = engine
        .read()
        .scalar::<i32>("SELECT 1", ())
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    // Writes still go to the primary.
    assert_eq!(engine.scalar::<i32>("SELECT 1", ()).await.unwrap(), 1);
    engine.close().await.unwrap();
}

async fn a_lag_bound_leaves_out_a_paused_replica(primary: &str, standby: &str) {
    let engine = Engine::builder()
        .url(primary)
        .replica(standby)
        .max_replica_lag(Duration::from_millis(500))
        .build()
        .unwrap();
    let on_standby = |engine: Engine| async move {
        engine
            .read()
            .scalar::<bool>("SELECT pg_is_in_recovery()", ())
            .await
            .unwrap()
    };
    // Caught up and idle: not lagged, however old its last replayed transaction.
    // (Polled: WAL the primary writes on its own is received a moment
    // before it is replayed.)
    tokio::time::sleep(Duration::from_millis(1200)).await;
    eventually(
        "the idle standby taken",
        Duration::from_secs(5),
        async || on_standby(engine.clone()).await,
    )
    .await;
    let admin = Engine::builder().url(standby).build().unwrap();
    admin
        .execute("SELECT pg_wal_replay_pause()::text", ())
        .await
        .unwrap();
    let result = async {
        engine
            .execute(
                "INSERT INTO scaling_t VALUES (10, 'lag') ON CONFLICT DO NOTHING",
                (),
            )
            .await?;
        engine
            .execute("UPDATE scaling_t SET v = v WHERE id = 10", ())
            .await?;
        eventually(
            "the paused replica left out",
            Duration::from_secs(15),
            async || !on_standby(engine.clone()).await,
        )
        .await;
        let lag = engine.replica_status()[0].lag.unwrap();
        assert!(lag > Duration::from_millis(500), "{lag:?}");
        // Without a lag bound the paused replica still serves reads, but not
        // the reads that must see a write it has not replayed.
        let unbounded = Engine::builder().url(primary).replica(standby).build()?;
        assert!(on_standby(unbounded.clone()).await);
        let position = engine.wal_position().await?;
        let after = unbounded
            .read_after(position)
            .scalar::<bool>("SELECT pg_is_in_recovery()", ())
            .await?;
        assert!(
            !after,
            "read_after used a replica that had not replayed the write"
        );
        unbounded.close().await?;
        Ok::<(), sqlaio::Error>(())
    }
    .await;
    admin
        .execute("SELECT pg_wal_replay_resume()::text", ())
        .await
        .unwrap();
    result.unwrap();
    eventually(
        "the resumed replica taken back",
        Duration::from_secs(15),
        async || on_standby(engine.clone()).await,
    )
    .await;
    admin.close().await.unwrap();
    engine.close().await.unwrap();
}

async fn a_transaction_pooler_serves_unprepared_statements() {
    let url = ReplicaSet::url(BOUNCER_PORT);
    let engine = Engine::builder()
        .url(&url)
        .prepared_statements(false)
        .max_connections(8)
        .statement_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    engine
        .execute(
            "CREATE TABLE IF NOT EXISTS scaling_pool (task int, n int, v text)",
            (),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for task in 0..8i64 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..200i64 {
                let v: String = engine
                    .scalar("SELECT $1::text || '-' || $2", (task, n))
                    .await
                    .unwrap_or_else(|e| panic!("task {task} call {n}: {e}"));
                assert_eq!(v, format!("{task}-{n}"));
                if n % 20 == 0 {
                    engine
                        .execute(
                            "INSERT INTO scaling_pool VALUES ($1, $2, $3)",
                            (task, n, "x"),
                        )
                        .await
                        .unwrap_or_else(|e| panic!("task {task} insert {n}: {e}"));
                }
            }
        }));
    }
    let start = Instant::now();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("8 x 200 calls through PgBouncer within 120 s")
            .unwrap();
    }
    eprintln!(
        "8 tasks x 200 calls through PgBouncer: {:?}",
        start.elapsed()
    );
    let rows: Vec<(i32, i32)> = engine
        .fetch_all_as("SELECT task, n FROM scaling_pool ORDER BY 1, 2", ())
        .await
        .unwrap();
    assert_eq!(rows.len(), 80);
    // Parameters go as text of unspecified type: the server infers each.
    let row: (i32, Vec<u8>, bool, f64, bool) = engine
        .fetch_one_as(
            "SELECT $1::int4 + 1, $2::bytea, $3::bool, $4::float8 * 2, $5::text IS NULL",
            (41, vec![0u8, 255], true, 0.25, None::<String>),
        )
        .await
        .unwrap();
    assert_eq!(row, (42, vec![0, 255], true, 0.5, true));
    let n = engine
        .execute("UPDATE scaling_pool SET v = $1 WHERE task = $2", ("y", 0))
        .await
        .unwrap()
        .rowcount();
    assert_eq!(n, 10);
    // An empty result still reads as a query.
    let none = engine.fetch_all("SELECT 1 WHERE false", ()).await.unwrap();
    assert!(none.is_empty());
    engine.close().await.unwrap();
}

async fn failover_under_writes(set: &ReplicaSet) {
    let url = format!(
        "postgres://root@127.0.0.1:{PRIMARY_PORT},127.0.0.1:{STANDBY_PORT}/test\
         ?target_session_attrs=read-write&connect_timeout=2"
    );
    let engine = Engine::builder()
        .url(&url)
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    engine
        .execute(
            "CREATE TABLE IF NOT EXISTS scaling_fo (id bigint PRIMARY KEY)",
            (),
        )
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(1));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (engine, stop, next) = (engine.clone(), stop.clone(), next.clone());
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut at = Vec::new();
            let mut failed = 0u32;
            for _ in 0..5000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let id = next.fetch_add(1, Ordering::SeqCst) as i64;
                match engine
                    .execute("INSERT INTO scaling_fo VALUES ($1)", (id,))
                    .await
                {
                    Ok(_) => {
                        acked.push(id);
                        at.push(Instant::now());
                    }
                    Err(e) => {
                        let clear = matches!(
                            e.kind(),
                            ErrorKind::ConnectionLost
                                | ErrorKind::ConnectionFailed
                                | ErrorKind::PoolTimeout
                                | ErrorKind::ReadOnly
                                | ErrorKind::Closed
                        ) || e.is_retryable();
                        assert!(clear, "an unclear error during failover: {e:?}");
                        failed += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (acked, at, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = Instant::now();
    assert!(set.run(&["failover"]), "pg-replica-set failover");
    let promoted = before.elapsed();
    // The engine writes to the promoted standby within its acquire timeout.
    let start = Instant::now();
    let mut first_write = None;
    while start.elapsed() < Duration::from_secs(20) {
        let id = next.fetch_add(1, Ordering::SeqCst) as i64;
        if engine
            .execute("INSERT INTO scaling_fo VALUES ($1)", (id,))
            .await
            .is_ok()
        {
            first_write = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first_write = first_write.expect("a write on the promoted standby within 20 s");
    let conn = engine.connect().await.unwrap();
    let server = conn.server().unwrap();
    assert_eq!(
        (server.port, server.role),
        (STANDBY_PORT, Some(ServerRole::Primary))
    );
    drop(conn);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    let mut times = Vec::new();
    let mut failed = 0;
    for w in writers {
        let (a, t, f) = w.await.unwrap();
        acked.extend(a);
        times.extend(t);
        failed += f;
    }
    times.sort();
    let gap = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    eprintln!("failover: longest time without an acknowledged write: {gap:?}");
    eprintln!(
        "failover: script {promoted:?}, first write after it {first_write:?}, \
         {} writes acknowledged, {failed} failed clearly",
        acked.len()
    );
    // Every acknowledged commit that reached the standby before the stop is
    // there (asynchronous replication may lose the last ones: count them).
    let present: Vec<(i64,)> = engine
        .fetch_all_as("SELECT id FROM scaling_fo", ())
        .await
        .unwrap();
    let present: std::collections::HashSet<i64> = present.into_iter().map(|(id,)| id).collect();
    let lost: Vec<i64> = acked
        .iter()
        .copied()
        .filter(|id| !present.contains(id))
        .collect();
    eprintln!(
        "failover: {} acknowledged writes missing after promotion",
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    engine.close().await.unwrap();
}
