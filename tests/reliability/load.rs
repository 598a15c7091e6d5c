//! Load: 2,000 tasks x 20 statements in transactions over a pool of 8, one
//! task in ten cancelled at a random point.

use std::collections::BTreeMap;
use std::path::Path;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use futures::future::{self, Either};
use futures::FutureExt;
use sqlaio::{Connection, Engine, Result};

#[cfg(feature = "postgres")]
use crate::common::pg;
#[cfg(feature = "tokio")]
use crate::common::Ctx;
use crate::common::{nap, sqlite_file_url};
use crate::*;

#[cfg(feature = "tokio")]
stamp! {
    runtimes: [tokio_multi], backends: [file];
    load_sqlite_tokio,
}

#[cfg(all(feature = "tokio", feature = "postgres"))]
stamp! {
    runtimes: [tokio_multi], backends: [postgres];
    load_postgres_tokio,
}

/// The load's shape.
const LOAD_TASKS: usize = 2_000;

const LOAD_OPS: usize = 20;

const LOAD_POOL: usize = 8;

/// One task in this many is cancelled.
const LOAD_CANCEL_ONE_IN: u64 = 10;

/// A cancelled task is dropped this long (at most) after it got its connection.
const LOAD_CANCEL_WITHIN_US: u64 = 10_000;

/// The seed of the load: `SQLAIO_SEED`, or a fixed one.
fn seed() -> u64 {
    std::env::var("SQLAIO_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0x5EED_2024)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One statement of a load task.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// A new row `(task, seq, v)`.
    Insert,
    /// `v = v + 1` on one of the task's rows.
    Update,
    /// The count and sum of the task's rows.
    ReadSum,
    /// One of the task's rows by key.
    ReadOne,
}

/// How a load transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Commit,
    Rollback,
    /// The `Transaction` is dropped without a word: it rolls back.
    Drop,
}

#[derive(Debug, Clone)]
struct TxPlan {
    ops: Vec<Op>,
    end: End,
}

/// What one task does, drawn from the seeded generator before the load starts.
#[derive(Debug, Clone)]
struct TaskPlan {
    task: i64,
    txs: Vec<TxPlan>,
    /// Dropped this long after it got its connection, if it is one of the cancelled.
    cancel_after: Option<Duration>,
    seed: u64,
}

fn plan_load(seed: u64, tasks: usize, ops: usize) -> Vec<TaskPlan> {
    let mut rng = Rng::new(seed);
    (0..tasks)
        .map(|task| {
            let mut txs = Vec::new();
            let mut left = ops;
            while left > 0 {
                let size = (2 + rng.below(5) as usize).min(left);
                left -= size;
                let ops = (0..size)
                    .map(|_| match rng.below(100) {
                        0..=34 => Op::Insert,
                        35..=54 => Op::Update,
                        55..=79 => Op::ReadSum,
                        _ => Op::ReadOne,
                    })
                    .collect();
                let end = match rng.below(10) {
                    0 => End::Rollback,
                    1 => End::Drop,
                    _ => End::Commit,
                };
                txs.push(TxPlan { ops, end });
            }
            let cancel_after = (rng.below(LOAD_CANCEL_ONE_IN) == 0)
                .then(|| Duration::from_micros(rng.below(LOAD_CANCEL_WITHIN_US)));
            TaskPlan {
                task: task as i64,
                txs,
                cancel_after,
                seed: rng.next(),
            }
        })
        .collect()
}

/// What a task did, as far as it knows; kept outside the task's future so
/// that it survives the task being dropped.
#[derive(Debug, Default)]
struct TaskLog {
    /// The task's rows as of its last confirmed commit: seq -> v.
    committed: BTreeMap<i64, i64>,
    /// A transaction whose `COMMIT` was sent but not confirmed (the task was
    /// dropped meanwhile): its writes are either all in or all out.
    in_doubt: Option<BTreeMap<i64, i64>>,
    /// Microseconds per statement that completed.
    latencies_us: Vec<u64>,
    /// Microseconds waiting for a pooled connection.
    acquire_us: u64,
    /// Answers that were not what the task's own writes imply.
    wrong: Vec<String>,
    /// Errors (none are expected).
    errors: Vec<String>,
    /// The task ran its whole plan.
    finished: bool,
    /// The task was dropped before it finished.
    cancelled: bool,
}

/// The statements of a load on `table`.
struct LoadSql {
    insert: String,
    update: String,
    read_sum: String,
    read_one: String,
}

impl LoadSql {
    fn new(table: &str) -> LoadSql {
        LoadSql {
            insert: format!("INSERT INTO {table} (task, seq, v) VALUES ($1, $2, $3)"),
            update: format!("UPDATE {table} SET v = v + 1 WHERE task = $1 AND seq = $2"),
            read_sum: format!(
                "SELECT count(*), CAST(coalesce(sum(v), 0) AS BIGINT) FROM {table} WHERE task = $1"
            ),
            read_one: format!("SELECT v FROM {table} WHERE task = $1 AND seq = $2"),
        }
    }

    fn create(table: &str) -> String {
        format!(
            "CREATE TABLE {table} (task BIGINT NOT NULL, seq BIGINT NOT NULL, v BIGINT NOT NULL, \
             PRIMARY KEY (task, seq))"
        )
    }
}

/// A load task's state while it runs a transaction.
struct TaskState {
    task: i64,
    rng: Rng,
    /// The key of the task's next new row.
    next_seq: i64,
    /// The task's rows as its open transaction must see them.
    view: BTreeMap<i64, i64>,
    /// What the open transaction wrote: seq -> v.
    delta: BTreeMap<i64, i64>,
}

/// Runs one statement of a task inside `tx`; `Some(message)` for a wrong answer.
async fn load_op(
    tx: &Connection,
    sql: &LoadSql,
    op: Op,
    state: &mut TaskState,
) -> Result<Option<String>> {
    let TaskState {
        task,
        rng,
        next_seq,
        view,
        delta,
    } = state;
    let task = *task;
    let pick = |rng: &mut Rng, view: &BTreeMap<i64, i64>| {
        let keys: Vec<i64> = view.keys().copied().collect();
        (!keys.is_empty()).then(|| keys[rng.below(keys.len() as u64) as usize])
    };
    let op = match op {
        Op::Update | Op::ReadOne if view.is_empty() => Op::Insert,
        op => op,
    };
    Ok(match op {
        Op::Insert => {
            let seq = *next_seq;
            *next_seq += 1;
            let v = (rng.below(1_000_000) as i64) * 1_000 + task % 1_000;
            let n = tx
                .execute(sql.insert.as_str(), (task, seq, v))
                .await?
                .rowcount();
            view.insert(seq, v);
            delta.insert(seq, v);
            (n != 1).then(|| format!("insert ({task}, {seq}) affected {n} rows"))
        }
        Op::Update => {
            let seq = pick(rng, view).expect("the view has rows");
            let n = tx
                .execute(sql.update.as_str(), (task, seq))
                .await?
                .rowcount();
            let v = view[&seq] + 1;
            view.insert(seq, v);
            delta.insert(seq, v);
            (n != 1).then(|| format!("update ({task}, {seq}) affected {n} rows"))
        }
        Op::ReadSum => {
            let row = tx
                .execute(sql.read_sum.as_str(), (task,))
                .await?
                .first()
                .await?
                .expect("an aggregate returns a row");
            let got: (i64, i64) = (row.get(0)?, row.get(1)?);
            let want = (view.len() as i64, view.values().sum::<i64>());
            (got != want).then(|| format!("task {task}: count/sum {got:?}, expected {want:?}"))
        }
        Op::ReadOne => {
            let seq = pick(rng, view).expect("the view has rows");
            let got: Option<i64> = tx
                .execute(sql.read_one.as_str(), (task, seq))
                .await?
                .first()
                .await?
                .map(|row| row.get(0))
                .transpose()?;
            let want = view.get(&seq).copied();
            (got != want).then(|| format!("task {task}: row {seq} is {got:?}, expected {want:?}"))
        }
    })
}

/// A task's plan, on its connection; every step is recorded in `log`.
async fn run_plan(conn: &Connection, sql: &LoadSql, plan: &TaskPlan, log: &Mutex<TaskLog>) {
    let task = plan.task;
    let mut state = TaskState {
        task,
        rng: Rng::new(plan.seed),
        next_seq: 0,
        view: BTreeMap::new(),
        delta: BTreeMap::new(),
    };
    for (n, txp) in plan.txs.iter().enumerate() {
        let tx = match conn.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                lock(log)
                    .errors
                    .push(format!("task {task} tx {n}: begin: {e}"));
                return;
            }
        };
        state.view = lock(log).committed.clone();
        state.delta = BTreeMap::new();
        for &op in &txp.ops {
            let start = Instant::now();
            let outcome = load_op(&tx, sql, op, &mut state).await;
            let us = start.elapsed().as_micros() as u64;
            let mut log = lock(log);
            match outcome {
                Ok(None) => log.latencies_us.push(us),
                Ok(Some(wrong)) => log.wrong.push(wrong),
                Err(e) => {
                    log.errors.push(format!("task {task} tx {n}: {op:?}: {e}"));
                    return;
                }
            }
        }
        match txp.end {
            End::Commit => {
                lock(log).in_doubt = Some(state.delta.clone());
                if let Err(e) = tx.commit().await {
                    lock(log)
                        .errors
                        .push(format!("task {task} tx {n}: commit: {e}"));
                    return;
                }
                let mut log = lock(log);
                log.committed.extend(std::mem::take(&mut state.delta));
                log.in_doubt = None;
            }
            End::Rollback => {
                if let Err(e) = tx.rollback().await {
                    lock(log)
                        .errors
                        .push(format!("task {task} tx {n}: rollback: {e}"));
                    return;
                }
            }
            End::Drop => drop(tx),
        }
    }
    lock(log).finished = true;
}

/// Where the load's tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exec {
    /// All tasks polled by the awaiting executor (`join_all`), any runtime or none.
    Local,
    /// One tokio task each (`tokio::spawn`), on the current tokio runtime.
    #[cfg(feature = "tokio")]
    Tokio,
}

impl Exec {
    fn sleep(self, d: Duration) -> future::BoxFuture<'static, ()> {
        match self {
            Exec::Local => nap(d).boxed(),
            #[cfg(feature = "tokio")]
            Exec::Tokio => tokio::time::sleep(d).boxed(),
        }
    }

    async fn join<T: Send + 'static>(self, tasks: Vec<future::BoxFuture<'static, T>>) -> Vec<T> {
        match self {
            Exec::Local => future::join_all(tasks).await,
            #[cfg(feature = "tokio")]
            Exec::Tokio => {
                let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
                let mut out = Vec::with_capacity(handles.len());
                for handle in handles {
                    out.push(handle.await.expect("a load task panicked"));
                }
                out
            }
        }
    }
}

/// The `p`-th percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn us(v: u64) -> String {
    format!("{:.2} ms", v as f64 / 1000.0)
}

/// Runs the load on `engine` (whose table `table` exists and is empty),
/// closes the engine, checks the table through `checker`, and prints the
/// numbers. Panics with every problem found.
async fn run_load(label: &str, engine: Engine, checker: Engine, table: &str, exec: Exec) {
    let seed = seed();
    let plans = plan_load(seed, LOAD_TASKS, LOAD_OPS);
    let sql = Arc::new(LoadSql::new(table));
    let logs: Vec<Arc<Mutex<TaskLog>>> = plans.iter().map(|_| Arc::default()).collect();
    let tasks: Vec<future::BoxFuture<'static, ()>> = plans
        .iter()
        .cloned()
        .zip(logs.iter().cloned())
        .map(|(plan, log)| {
            let engine = engine.clone();
            let sql = sql.clone();
            async move {
                let waited = Instant::now();
                let conn = match engine.connect().await {
                    Ok(conn) => conn,
                    Err(e) => {
                        lock(&log)
                            .errors
                            .push(format!("task {}: connect: {e}", plan.task));
                        return;
                    }
                };
                lock(&log).acquire_us = waited.elapsed().as_micros() as u64;
                let work = run_plan(&conn, &sql, &plan, &log);
                match plan.cancel_after {
                    None => work.await,
                    Some(after) => {
                        let work = pin!(work);
                        let raced = future::select(work, exec.sleep(after)).await;
                        if let Either::Right(_) = raced {
                            // The plan's future, and with it its open transaction, is gone.
                            lock(&log).cancelled = true;
                        }
                    }
                }
            }
            .boxed()
        })
        .collect();

    let started = Instant::now();
    exec.join(tasks).await;
    let wall = started.elapsed();
    engine.close().await.unwrap();
    assert_eq!(engine.worker_count(), 0, "{label}: workers outlived close");

    // Every task's rows, as the database has them now.
    let mut rows = checker
        .execute(
            format!("SELECT task, seq, v FROM {table} ORDER BY task, seq"),
            (),
        )
        .await
        .unwrap();
    let mut stored: BTreeMap<i64, BTreeMap<i64, i64>> = BTreeMap::new();
    for row in rows.fetchall().await.unwrap() {
        let (task, seq, v): (i64, i64, i64) = (
            row.get(0).unwrap(),
            row.get(1).unwrap(),
            row.get(2).unwrap(),
        );
        stored.entry(task).or_default().insert(seq, v);
    }
    drop(rows);
    checker.close().await.unwrap();

    let mut problems = Vec::new();
    let mut latencies = Vec::new();
    let mut acquire = Vec::new();
    let (mut cancelled, mut doubt_in, mut doubt_out, mut committed_rows) = (0, 0, 0, 0);
    for (plan, log) in plans.iter().zip(&logs) {
        let log = lock(log);
        let actual = stored.remove(&plan.task).unwrap_or_default();
        committed_rows += log.committed.len();
        let with_doubt = log.in_doubt.as_ref().map(|delta| {
            let mut all = log.committed.clone();
            all.extend(delta.iter().map(|(k, v)| (*k, *v)));
            all
        });
        if actual == log.committed {
            if log.in_doubt.as_ref().is_some_and(|d| !d.is_empty()) {
                doubt_out += 1;
            }
        } else if with_doubt.as_ref() == Some(&actual) {
            doubt_in += 1;
        } else {
            problems.push(format!(
                "task {}: the table holds {actual:?}, but its committed rows are {:?} (in doubt: {:?})",
                plan.task, log.committed, log.in_doubt
            ));
        }
        problems.extend(log.wrong.iter().cloned());
        problems.extend(log.errors.iter().cloned());
        if plan.cancel_after.is_none() && !log.finished {
            problems.push(format!("task {} did not finish", plan.task));
        }
        cancelled += usize::from(log.cancelled);
        latencies.extend(log.latencies_us.iter().copied());
        acquire.push(log.acquire_us);
    }
    for (task, rows) in stored {
        problems.push(format!("rows of no task: task {task}: {rows:?}"));
    }
    latencies.sort_unstable();
    acquire.sort_unstable();
    let statements = latencies.len();
    report(format!(
        "load {label}: {LOAD_TASKS} tasks x {LOAD_OPS} statements, pool {LOAD_POOL}, seed {seed}: \
         {statements} statements in {:.1} s = {:.0} statements/s; per statement p50 {}, p99 {}, max {}; \
         connection wait p50 {}, p99 {}; {cancelled} tasks cancelled mid-work; \
         {doubt_in} dropped commits applied, {doubt_out} not; {committed_rows} committed rows checked",
        wall.as_secs_f64(),
        statements as f64 / wall.as_secs_f64(),
        us(percentile(&latencies, 50.0)),
        us(percentile(&latencies, 99.0)),
        us(latencies.last().copied().unwrap_or(0)),
        us(percentile(&acquire, 50.0)),
        us(percentile(&acquire, 99.0)),
    ));
    assert!(
        problems.is_empty(),
        "{label}: {} problems, the first ones: {:#?}",
        problems.len(),
        &problems[..problems.len().min(20)]
    );
    assert!(cancelled > 0, "{label}: no task was cancelled mid-work");
}

/// A SQLite file engine for the load, and one to check the table afterwards.
async fn sqlite_load_engines(
    dir: &std::path::Path,
    strategy: Arc<dyn sqlaio::Strategy>,
) -> (Engine, Engine) {
    let url = sqlite_file_url(&dir.join("load.db"));
    let engine = Engine::builder()
        .url(&url)
        .strategy_arc(strategy)
        .max_connections(LOAD_POOL)
        // 2,000 tasks queue for 8 connections: the last wait most of the run.
        .acquire_timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    engine.execute(LoadSql::create("load"), ()).await.unwrap();
    let checker = Engine::builder().url(&url).build().unwrap();
    (engine, checker)
}

/// The load on a SQLite file, tokio's multi-thread runtime and `TokioStrategy`.
#[cfg(feature = "tokio")]
async fn load_sqlite_tokio(ctx: Ctx) {
    let (engine, checker) = sqlite_load_engines(ctx.dir(), ctx.strategy()).await;
    run_load("sqlite tokio-multi", engine, checker, "load", Exec::Tokio).await;
}

/// The load on PostgreSQL, tokio's multi-thread runtime and `TokioStrategy`.
#[cfg(all(feature = "tokio", feature = "postgres"))]
async fn load_postgres_tokio(ctx: Ctx) {
    let url = ctx.url().to_owned();
    let table = pg::unique("rel_load");
    let engine = Engine::builder()
        .url(&url)
        .strategy_arc(ctx.strategy())
        .max_connections(LOAD_POOL)
        .acquire_timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    engine.execute(LoadSql::create(&table), ()).await.unwrap();
    let checker = observer(&url);
    run_load("postgres tokio-multi", engine, checker, &table, Exec::Tokio).await;
}

/// The environment variable that turns the thread-strategy load helper on.
const LOAD_ENV: &str = "SQLAIO_RELIABILITY_LOAD_CHILD";

/// The threads of this process.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Helper process for [`load_sqlite_thread_strategy`]: the load with
/// `ThreadStrategy` and no runtime at all, in a process of its own so that
/// `/proc/self/task` counts only this test's threads.
#[test]
#[ignore = "a helper process: load_sqlite_thread_strategy starts it"]
fn helper_load_thread_strategy() {
    if std::env::var(LOAD_ENV).is_err() {
        eprintln!("helper_load_thread_strategy: nothing to do without {LOAD_ENV}");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("sqlaio-reliability-")
        .tempdir()
        .expect("a temporary directory");
    let baseline = thread_count();
    futures::executor::block_on(async {
        let (engine, checker) =
            sqlite_load_engines(dir.path(), Arc::new(sqlaio::ThreadStrategy)).await;
        run_load(
            "sqlite thread (no runtime)",
            engine,
            checker,
            "load",
            Exec::Local,
        )
        .await;
    });
    let start = Instant::now();
    while thread_count() != baseline {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "threads leaked: {} now, {baseline} before the load",
            thread_count()
        );
        thread::sleep(Duration::from_millis(10));
    }
    report(format!(
        "load sqlite thread: back to {baseline} threads {} after close",
        ms(start.elapsed())
    ));
}

/// The load on a SQLite file with `ThreadStrategy` polled by
/// `futures::executor::block_on`, run in a copy of this test binary; also
/// checks that the process is back to its threads of before.
#[test]
fn load_sqlite_thread_strategy() {
    if !Path::new("/proc/self/task").is_dir() {
        eprintln!("load_sqlite_thread_strategy: skipped: no /proc/self/task to count threads");
        return;
    }
    let child = spawn_self("load::helper_load_thread_strategy", &[(LOAD_ENV, "1")]);
    let (status, output) = wait_child(child, TEST_LIMIT, "the thread-strategy load");
    for line in output.lines().filter(|l| l.starts_with("[reliability]")) {
        eprintln!("{line}");
    }
    assert!(
        status.success(),
        "the thread-strategy load failed:\n{output}"
    );
    assert!(
        output.contains("1 passed"),
        "the helper did not run:\n{output}"
    );
}
