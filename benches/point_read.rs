//! Point reads: the bare rusqlite call first, then sqlaio per strategy.
//!
//! `point_read` runs `SELECT id, name FROM t WHERE id = ?1` with a varying id,
//! one awaited call after the other, on a 10,000-row SQLite file database in
//! WAL mode. `point_read_64_tasks` runs the same read from 64 concurrent
//! tokio tasks over a pool of 4 connections and reports reads per second,
//! next to the bare call doing as many reads on one thread: each read takes
//! a connection from the pool, or (`/shared`) the 4 connections are taken
//! once and each is shared by 16 tasks, whose statements queue on its worker.
//! In the interleaved mode, `point_read_latency` and `point_read_64_tasks`
//! also measure `TokioStrategy` under the other waiting policies
//! (`/wait_sleep`, `/wait_spin_10us`; see `sqlaio::WaitPolicy`).
//!
//! The `worker_wait_*` groups do not use sqlaio: they model its request
//! round trip (a bounded `async_channel` to a worker thread that answers
//! through a `futures` oneshot) and compare ways for the worker to wait for
//! its next request: park at once, as sqlaio's worker does, or spin briefly
//! first. They do the same rusqlite read on the worker, so their ratios to
//! the bare call can be compared with sqlaio's.
//!
//! Run with `cargo bench --bench point_read --all-features`; the ratios are
//! recorded in `docs/benchmarks.md` (`scripts/bench_report.py --print-criterion` prints them
//! from criterion's output). `-- --interleaved` measures the same contenders
//! in turns instead, which compares them more fairly on a busy machine; see
//! [`interleaved`].

#[path = "support/measure.rs"]
mod measure;
#[path = "support/sqlaio_side.rs"]
mod sqlaio_side;

use std::future::Future;
use std::hint::black_box;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::async_executor::AsyncExecutor;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use futures::channel::oneshot;
use sqlaio::rusqlite::{self, OpenFlags};
use sqlaio::{Connection, CursorResult, Engine, Strategy, ThreadStrategy};

/// Rows in the table.
const ROWS: u64 = 10_000;
/// The point read.
const SQL: &str = "SELECT id, name FROM t WHERE id = ?1";
/// Concurrent tasks in the loaded groups.
const TASKS: usize = 64;
/// Reads each task does per iteration in the loaded groups.
const READS_PER_TASK: usize = 16;
/// Connections (or model workers) shared by the tasks.
const POOL: usize = 4;

/// A temporary database file with the table filled in.
struct Database {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Database {
    fn create() -> Database {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("point_read.db");
        let mut conn = open_raw(&path);
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
            .expect("create table");
        let tx = conn.transaction().expect("begin");
        {
            let mut insert = tx
                .prepare("INSERT INTO t (id, name) VALUES (?1, ?2)")
                .expect("prepare insert");
            for id in 1..=ROWS {
                // 30 characters.
                let name = format!("customer-{id:021}");
                insert.execute((id as i64, name)).expect("insert");
            }
        }
        tx.commit().expect("commit");
        Database { _dir: dir, path }
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    fn engine(&self, strategy: impl Strategy, max_connections: usize) -> Engine {
        Engine::builder()
            .url(self.url())
            .strategy(strategy)
            .max_connections(max_connections)
            .build()
            .expect("engine")
    }
}

/// Opens a raw connection the way sqlaio opens a file database.
fn open_raw(path: &std::path::Path) -> rusqlite::Connection {
    let flags = OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE;
    let conn = rusqlite::Connection::open_with_flags(path, flags).expect("open");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .expect("WAL");
    assert_eq!(mode, "wal");
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .expect("pragmas");
    conn
}

/// Ids visiting every row in a scattered order.
#[derive(Debug, Default)]
struct Ids(u64);

impl Ids {
    fn starting_at(n: u64) -> Ids {
        Ids(n)
    }

    fn next_id(&mut self) -> i64 {
        self.0 += 1;
        // 7919 is prime, so this visits every id once per ROWS calls.
        ((self.0 * 7919) % ROWS + 1) as i64
    }
}

/// The floor: the bare driver call, decoding both columns.
fn bare_read(conn: &rusqlite::Connection, id: i64) -> (i64, String) {
    let mut stmt = conn.prepare_cached(SQL).expect("prepare");
    stmt.query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("row")
}

/// The same read through sqlaio.
async fn sqlaio_read(conn: &Connection, id: i64) -> (i64, String) {
    first_row(conn.execute(SQL, (id,)).await).await
}

/// The first row of a read's result, decoded as the floor decodes it.
async fn first_row(result: sqlaio::Result<CursorResult<'_>>) -> (i64, String) {
    let row = result
        .expect("execute")
        .first()
        .await
        .expect("first")
        .expect("a row");
    (row.get(0).expect("id"), row.get(1).expect("name"))
}

/// The same read as one call on the engine.
async fn engine_read(engine: &Engine, id: i64) -> (i64, String) {
    first_row(engine.execute(SQL, (id,)).await).await
}

/// `futures::executor::block_on` as a criterion executor.
#[derive(Debug, Clone, Copy)]
struct FuturesExecutor;

impl AsyncExecutor for FuturesExecutor {
    fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        futures::executor::block_on(future)
    }
}

/// async-std's `block_on` as a criterion executor (criterion has none).
#[cfg(feature = "async-std")]
#[derive(Debug, Clone, Copy)]
struct AsyncStdExecutor;

#[cfg(feature = "async-std")]
impl AsyncExecutor for AsyncStdExecutor {
    fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        async_std::task::block_on(future)
    }
}

/// smol's `block_on` as a criterion executor.
#[cfg(feature = "smol")]
#[derive(Debug, Clone, Copy)]
struct SmolExecutor;

#[cfg(feature = "smol")]
impl AsyncExecutor for SmolExecutor {
    fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        smol::block_on(future)
    }
}

fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[cfg(feature = "tokio")]
fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Sequential point reads through one sqlaio connection, awaited by `executor`.
fn bench_sqlaio<A: AsyncExecutor + Copy>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    db: &Database,
    strategy: impl Strategy,
    executor: A,
) {
    let engine = db.engine(strategy, 1);
    let conn = executor.block_on(engine.connect()).expect("connect");
    let mut ids = Ids::default();
    group.bench_function(name, |b| {
        b.to_async(executor)
            .iter(|| sqlaio_read(&conn, ids.next_id()))
    });
    executor.block_on(async {
        conn.close().await.expect("close connection");
        engine.close().await.expect("close engine");
    });
}

/// Sequential point reads from a task spawned on a multi-thread tokio
/// runtime's worker, where an application's code usually runs (criterion's
/// `to_async` alone would poll on the calling thread, outside the workers).
#[cfg(feature = "tokio")]
fn bench_sqlaio_in_task(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    db: &Database,
    strategy: impl Strategy,
    rt: &tokio::runtime::Runtime,
) {
    let engine = db.engine(strategy, 1);
    let conn = Arc::new(rt.block_on(engine.connect()).expect("connect"));
    let mut start = 0;
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let conn = conn.clone();
            let mut ids = Ids::starting_at(start);
            start += iters;
            let task = tokio::spawn(async move {
                let begin = Instant::now();
                for _ in 0..iters {
                    black_box(sqlaio_read(&conn, ids.next_id()).await);
                }
                begin.elapsed()
            });
            async move { task.await.expect("task") }
        })
    });
    rt.block_on(async {
        conn.close().await.expect("close connection");
        engine.close().await.expect("close engine");
    });
}

/// Group 1: one read at a time.
fn point_read(c: &mut Criterion) {
    let db = Database::create();
    let mut group = c.benchmark_group("point_read");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let raw = open_raw(&db.path);
    let mut ids = Ids::default();
    group.bench_function("rusqlite", |b| b.iter(|| bare_read(&raw, ids.next_id())));
    drop(raw);

    bench_sqlaio(
        &mut group,
        "sqlaio/thread/block_on",
        &db,
        ThreadStrategy,
        FuturesExecutor,
    );

    #[cfg(feature = "tokio")]
    {
        let rt = current_thread_runtime();
        bench_sqlaio(
            &mut group,
            "sqlaio/tokio/current_thread",
            &db,
            sqlaio::TokioStrategy,
            &rt,
        );
        drop(rt);
        let rt = multi_thread_runtime();
        bench_sqlaio_in_task(
            &mut group,
            "sqlaio/tokio/multi_thread_task",
            &db,
            sqlaio::TokioStrategy,
            &rt,
        );
        bench_sqlaio(
            &mut group,
            "sqlaio/tokio/multi_thread_block_on",
            &db,
            sqlaio::TokioStrategy,
            &rt,
        );
    }

    #[cfg(feature = "async-std")]
    bench_sqlaio(
        &mut group,
        "sqlaio/async_std/block_on",
        &db,
        sqlaio::AsyncStdStrategy,
        AsyncStdExecutor,
    );

    #[cfg(feature = "smol")]
    bench_sqlaio(
        &mut group,
        "sqlaio/smol/block_on",
        &db,
        sqlaio::SmolStrategy,
        SmolExecutor,
    );

    group.finish();
}

/// How a task of the load reaches a connection for each read.
enum Lane {
    /// Runs every read through the engine (`Engine::execute`), which finds
    /// it a pooled connection.
    Engine(Engine),
    /// Takes a connection from the pool for every read (`Engine::connect`).
    Pool(Engine),
    /// Uses one connection, taken once and shared with other tasks: the
    /// statements of different tasks queue on its worker (as the peers
    /// without a pool are measured).
    Shared(Arc<Connection>),
}

/// The ways every task reaches a pooled connection of one engine, and the
/// suffix of each contender's name.
const POOLED: [(&str, PooledLane); 2] = [("", Lane::Engine), ("/connect", Lane::Pool)];

/// How a task reaches a connection, made from the engine it reads through.
type PooledLane = fn(Engine) -> Lane;

/// `TASKS` tasks doing `READS_PER_TASK` reads each; task `i` reads through `lane(i)`.
async fn sqlaio_load(lane: impl Fn(usize) -> Lane, round: u64) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let lane = lane(task);
            let mut ids = Ids::starting_at(round * 7 + task as u64 * 131);
            tokio::spawn(async move {
                for _ in 0..READS_PER_TASK {
                    let id = ids.next_id();
                    black_box(match &lane {
                        Lane::Engine(engine) => engine_read(engine, id).await,
                        Lane::Pool(engine) => {
                            sqlaio_read(&engine.connect().await.expect("connect"), id).await
                        }
                        Lane::Shared(conn) => sqlaio_read(conn, id).await,
                    });
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
}

/// `POOL` connections of `engine`, each to be shared by several tasks.
fn shared_connections(engine: &Engine, rt: &tokio::runtime::Runtime) -> Vec<Arc<Connection>> {
    rt.block_on(async {
        let mut conns = Vec::new();
        for _ in 0..POOL {
            conns.push(Arc::new(engine.connect().await.expect("connect")));
        }
        conns
    })
}

fn bench_sqlaio_load(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    db: &Database,
    strategy: impl Strategy,
    rt: &tokio::runtime::Runtime,
) {
    let engine = db.engine(strategy, POOL);
    let mut round = 0;
    for (suffix, lane) in POOLED {
        group.bench_function(format!("{name}{suffix}"), |b| {
            b.to_async(rt).iter(|| {
                round += 1;
                sqlaio_load(|_| lane(engine.clone()), round)
            })
        });
    }
    let conns = shared_connections(&engine, rt);
    group.bench_function(format!("{name}/shared"), |b| {
        b.to_async(rt).iter(|| {
            round += 1;
            sqlaio_load(
                |task| Lane::Shared(conns[task % conns.len()].clone()),
                round,
            )
        })
    });
    drop(conns);
    rt.block_on(engine.close()).expect("close engine");
}

fn configure_loaded(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements((TASKS * READS_PER_TASK) as u64));
}

/// Group 2: 64 tasks sharing a pool of 4 connections.
fn point_read_64_tasks(c: &mut Criterion) {
    let db = Database::create();
    let mut group = c.benchmark_group("point_read_64_tasks");
    configure_loaded(&mut group);

    let raw = open_raw(&db.path);
    let mut ids = Ids::default();
    group.bench_function("rusqlite/one_thread", |b| {
        b.iter(|| {
            for _ in 0..TASKS * READS_PER_TASK {
                black_box(bare_read(&raw, ids.next_id()));
            }
        })
    });
    drop(raw);

    let rt = multi_thread_runtime();
    bench_sqlaio_load(&mut group, "sqlaio/thread", &db, ThreadStrategy, &rt);
    #[cfg(feature = "tokio")]
    bench_sqlaio_load(&mut group, "sqlaio/tokio", &db, sqlaio::TokioStrategy, &rt);
    group.finish();
}

/// A model of sqlaio's worker round trip, to try ways of waiting without
/// changing the crate.
mod model {
    use super::*;

    /// How a model worker waits for its next request.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Wait {
        /// `recv_blocking` at once: sqlaio's worker today.
        Park,
        /// Poll `try_recv` with a spin hint for up to this long, then park.
        Spin(Duration),
        /// Poll `try_recv`, yielding the thread in between, for up to this long, then park.
        SpinYield(Duration),
        /// As `Spin`, but only one worker in the process spins at a time;
        /// the others park at once.
        SpinOne(Duration),
        /// As `Spin`, but after a spin that found nothing the worker parks
        /// at once for its next 2, 4, 8, ... up to 64 waits before it
        /// tries spinning again; a spin that finds a request resets this.
        SpinAdaptive(Duration),
    }

    /// Waits an adaptive worker skips spinning for, at most.
    const MAX_BACKOFF: u32 = 64;

    /// Workers currently spinning, for [`Wait::SpinOne`].
    static SPINNING: AtomicUsize = AtomicUsize::new(0);

    /// A worker's waits for a request, and how many of them a spin served.
    #[derive(Debug, Default)]
    pub(crate) struct SpinStats {
        waits: AtomicU64,
        hits: AtomicU64,
    }

    impl SpinStats {
        /// The waits and hits counted so far, resetting both.
        pub(crate) fn take(&self) -> (u64, u64) {
            (
                self.waits.swap(0, Ordering::Relaxed),
                self.hits.swap(0, Ordering::Relaxed),
            )
        }
    }

    /// A worker's way of waiting, with what it remembers between waits.
    pub(crate) struct Waiter {
        wait: Wait,
        /// Waits left to park at once ([`Wait::SpinAdaptive`]).
        skip: u32,
        /// The next `skip` after a spin that found nothing.
        backoff: u32,
        stats: Arc<SpinStats>,
    }

    impl Waiter {
        pub(crate) fn new(wait: Wait, stats: Arc<SpinStats>) -> Waiter {
            Waiter {
                wait,
                skip: 0,
                backoff: 1,
                stats,
            }
        }

        fn recv<T>(&mut self, rx: &async_channel::Receiver<T>) -> Option<T> {
            self.stats.waits.fetch_add(1, Ordering::Relaxed);
            let got = match self.wait {
                Wait::Park => return rx.recv_blocking().ok(),
                Wait::Spin(budget) => spin(rx, budget, false),
                Wait::SpinYield(budget) => spin(rx, budget, true),
                Wait::SpinOne(budget) => {
                    if SPINNING
                        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                        .is_err()
                    {
                        return rx.recv_blocking().ok();
                    }
                    let got = spin(rx, budget, false);
                    SPINNING.store(0, Ordering::Release);
                    got
                }
                Wait::SpinAdaptive(budget) => {
                    if self.skip > 0 {
                        self.skip -= 1;
                        return rx.recv_blocking().ok();
                    }
                    let got = spin(rx, budget, false);
                    if matches!(got, Spun::Empty) {
                        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                        self.skip = self.backoff;
                    } else {
                        self.backoff = 1;
                    }
                    got
                }
            };
            match got {
                Spun::Got(value) => {
                    self.stats.hits.fetch_add(1, Ordering::Relaxed);
                    Some(value)
                }
                Spun::Closed => None,
                Spun::Empty => rx.recv_blocking().ok(),
            }
        }
    }

    enum Spun<T> {
        Got(T),
        Closed,
        Empty,
    }

    fn spin<T>(rx: &async_channel::Receiver<T>, budget: Duration, yield_thread: bool) -> Spun<T> {
        let start = Instant::now();
        loop {
            match rx.try_recv() {
                Ok(value) => return Spun::Got(value),
                Err(async_channel::TryRecvError::Closed) => return Spun::Closed,
                Err(async_channel::TryRecvError::Empty) => {}
            }
            if start.elapsed() >= budget {
                return Spun::Empty;
            }
            if yield_thread {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// The id of a request the worker answers without touching the
    /// database: the bare hand-off and wake-up round trip.
    pub(crate) const EMPTY: i64 = 0;

    struct Request {
        id: i64,
        reply: oneshot::Sender<(i64, String)>,
    }

    /// One connection: a thread owning a rusqlite connection, fed through a
    /// bounded channel, answering through a oneshot per request.
    pub(crate) struct Worker {
        tx: Option<async_channel::Sender<Request>>,
        thread: Option<JoinHandle<()>>,
        stats: Arc<SpinStats>,
    }

    impl Worker {
        pub(crate) fn start(db: &Database, wait: Wait) -> Worker {
            let (tx, rx) = async_channel::bounded::<Request>(16);
            let path = db.path.clone();
            let stats = Arc::new(SpinStats::default());
            let worker_stats = stats.clone();
            let thread = std::thread::Builder::new()
                .name("model-worker".into())
                .spawn(move || {
                    let conn = open_raw(&path);
                    let mut waiter = Waiter::new(wait, worker_stats);
                    while let Some(request) = waiter.recv(&rx) {
                        if request.reply.is_canceled() {
                            continue;
                        }
                        let answer = if request.id == EMPTY {
                            (EMPTY, String::new())
                        } else {
                            bare_read(&conn, request.id)
                        };
                        let _ = request.reply.send(answer);
                    }
                })
                .expect("spawn model worker");
            Worker {
                tx: Some(tx),
                thread: Some(thread),
                stats,
            }
        }

        /// How often this worker's waits ended while spinning.
        pub(crate) fn spin_stats(&self) -> &SpinStats {
            &self.stats
        }

        pub(crate) async fn read(&self, id: i64, reply_spin: Option<Duration>) -> (i64, String) {
            let (reply, answer) = oneshot::channel();
            let tx = self.tx.as_ref().expect("running");
            tx.send(Request { id, reply }).await.expect("send");
            match reply_spin {
                None => answer.await.expect("answer"),
                Some(budget) => SpinPoll::new(answer, budget).await.expect("answer"),
            }
        }
    }

    impl Drop for Worker {
        fn drop(&mut self) {
            drop(self.tx.take());
            if let Some(thread) = self.thread.take() {
                thread.join().expect("model worker");
            }
        }
    }

    /// Polls its future again at once, for up to `budget`, before waiting
    /// for a wake-up: the caller's side of spinning.
    struct SpinPoll<F> {
        inner: F,
        budget: Duration,
        deadline: Option<Instant>,
    }

    impl<F> SpinPoll<F> {
        fn new(inner: F, budget: Duration) -> Self {
            SpinPoll {
                inner,
                budget,
                deadline: None,
            }
        }
    }

    impl<F: Future + Unpin> Future for SpinPoll<F> {
        type Output = F::Output;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            if let Poll::Ready(value) = Pin::new(&mut self.inner).poll(cx) {
                return Poll::Ready(value);
            }
            let now = Instant::now();
            let budget = self.budget;
            let deadline = *self.deadline.get_or_insert(now + budget);
            if now < deadline {
                std::hint::spin_loop();
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        }
    }

    /// `POOL` workers behind a FIFO queue of idle ones.
    pub(crate) struct Pool {
        idle: (
            async_channel::Sender<Arc<Worker>>,
            async_channel::Receiver<Arc<Worker>>,
        ),
        workers: Vec<Arc<Worker>>,
    }

    impl Pool {
        pub(crate) fn start(db: &Database, wait: Wait) -> Pool {
            let idle = async_channel::bounded(POOL);
            let workers: Vec<_> = (0..POOL)
                .map(|_| Arc::new(Worker::start(db, wait)))
                .collect();
            for worker in &workers {
                idle.0.try_send(worker.clone()).expect("room");
            }
            Pool { idle, workers }
        }

        pub(crate) fn workers(&self) -> impl Iterator<Item = &Worker> {
            self.workers.iter().map(|w| &**w)
        }

        /// `TASKS` tasks doing `READS_PER_TASK` reads each, every read on a
        /// worker taken from the pool for that read.
        pub(crate) async fn load(&self, round: u64) {
            let tasks: Vec<_> = (0..TASKS)
                .map(|task| {
                    let (give, take) = self.idle.clone();
                    let mut ids = Ids::starting_at(round * 7 + task as u64 * 131);
                    tokio::spawn(async move {
                        for _ in 0..READS_PER_TASK {
                            let worker = take.recv().await.expect("pool");
                            black_box(worker.read(ids.next_id(), None).await);
                            give.try_send(worker).expect("pool has room");
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("task");
            }
        }
    }
}

/// Ways of waiting tried by the model, with their names.
fn wait_variants() -> [(&'static str, model::Wait, Option<Duration>); 8] {
    use model::Wait;
    let us = Duration::from_micros;
    [
        ("park", Wait::Park, None),
        ("spin_20us", Wait::Spin(us(20)), None),
        ("spin_one_20us", Wait::SpinOne(us(20)), None),
        ("spin_adaptive_20us", Wait::SpinAdaptive(us(20)), None),
        ("spin_yield_5us", Wait::SpinYield(us(5)), None),
        ("spin_yield_20us", Wait::SpinYield(us(20)), None),
        ("spin_yield_50us", Wait::SpinYield(us(50)), None),
        ("spin_both_sides_20us", Wait::Spin(us(20)), Some(us(20))),
    ]
}

/// Says how often `workers` found their request while spinning, and resets the count.
fn report_spin_hits<'a>(label: &str, workers: impl IntoIterator<Item = &'a model::Worker>) {
    let (waits, hits) = workers
        .into_iter()
        .map(|w| w.spin_stats().take())
        .fold((0, 0), |(w, h), (dw, dh)| (w + dw, h + dh));
    if hits > 0 {
        eprintln!(
            "{label}: {hits} of {waits} waits ({:.0}%) ended while spinning",
            hits as f64 * 100.0 / waits.max(1) as f64
        );
    }
}

/// The model, one read at a time, awaited with `futures::executor::block_on`
/// (compare with `point_read/sqlaio/thread/block_on`).
fn worker_wait_sequential(c: &mut Criterion) {
    let db = Database::create();
    let mut group = c.benchmark_group("worker_wait_sequential");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, wait, reply_spin) in wait_variants() {
        let worker = model::Worker::start(&db, wait);
        let mut ids = Ids::default();
        group.bench_function(name, |b| {
            b.to_async(FuturesExecutor)
                .iter(|| worker.read(ids.next_id(), reply_spin))
        });
        report_spin_hits(&format!("worker_wait_sequential/{name}"), [&worker]);
    }
    for (name, wait) in [
        ("round_trip_only/park", model::Wait::Park),
        (
            "round_trip_only/spin_yield_20us",
            model::Wait::SpinYield(Duration::from_micros(20)),
        ),
    ] {
        let worker = model::Worker::start(&db, wait);
        group.bench_function(name, |b| {
            b.to_async(FuturesExecutor)
                .iter(|| worker.read(model::EMPTY, None))
        });
    }
    group.finish();
}

/// The model under 64 tasks over 4 workers on a multi-thread tokio runtime
/// (compare with `point_read_64_tasks`). The caller's side never spins here.
fn worker_wait_64_tasks(c: &mut Criterion) {
    let db = Database::create();
    let mut group = c.benchmark_group("worker_wait_64_tasks");
    configure_loaded(&mut group);
    let rt = multi_thread_runtime();
    for (name, wait, reply_spin) in wait_variants() {
        if reply_spin.is_some() {
            continue;
        }
        let pool = model::Pool::start(&db, wait);
        let mut round = 0;
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                round += 1;
                pool.load(round)
            })
        });
        report_spin_hits(&format!("worker_wait_64_tasks/{name}"), pool.workers());
        // Dropping the pool drops its workers, which joins their threads.
        drop(pool);
    }
    group.finish();
}

/// The same contenders, measured in turns instead of one after the other.
///
/// Criterion measures each contender for a few seconds before moving to the
/// next, so on a shared machine one contender can meet a quiet minute and
/// the next a busy one. Here every round gives each contender one short
/// batch, in a rotating order, and each batch is divided by the floor's
/// batch of the same round; the median of those ratios is reported, with
/// their quartiles as the spread.
mod interleaved {
    use super::*;

    /// Rounds of sequential reads.
    const SEQUENTIAL_ROUNDS: usize = 200;
    /// Reads per batch, one at a time.
    const SEQUENTIAL_BATCH: u64 = 100;
    /// Rounds under load.
    const LOADED_ROUNDS: usize = 60;
    /// Iterations (of `TASKS * READS_PER_TASK` reads) per batch under load.
    const LOADED_BATCH: u64 = 1;

    type Run<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

    pub(crate) fn run() {
        let db = Database::create();
        println!(
            "Sequential point reads: {SEQUENTIAL_ROUNDS} rounds of {SEQUENTIAL_BATCH} reads each\n"
        );
        sequential(&db);
        println!(
            "\n{TASKS} tasks over {POOL} connections: {LOADED_ROUNDS} rounds of {} reads each\n",
            LOADED_BATCH * (TASKS * READS_PER_TASK) as u64
        );
        loaded(&db);
        println!(
            "\nSequential point reads, each timed: {LATENCY_ROUNDS} rounds of {LATENCY_BATCH} reads\n"
        );
        latency(&db);
    }

    /// Rounds of individually timed reads (p50 and p99 per read).
    const LATENCY_ROUNDS: usize = 20;
    /// Reads per round, each timed: 20,000 per contender in all.
    const LATENCY_BATCH: u64 = 1000;

    /// Every read timed on its own, for the median and the 99th percentile
    /// of the time per read: the floor, then sqlaio under each strategy.
    fn latency(db: &Database) {
        let raw = open_raw(&db.path);
        let sides = sqlaio_side::sides_with_wait_policies();
        let opened: Vec<_> = sides.iter().map(|s| s.open(&db.url(), 1)).collect();
        let mut ids = Ids::default();
        let mut contenders: Vec<(String, measure::Run<'_>)> = vec![(
            "rusqlite".into(),
            Box::new(|n, per_op| {
                measure::sync_ops(n, per_op, || {
                    drop(black_box(bare_read(&raw, ids.next_id())))
                })
            }),
        )];
        contenders.extend(sqlaio_side::contenders(
            &sides,
            &opened,
            "",
            |_, conn, n, per_op| {
                let conn = conn.clone();
                let mut ids = Ids::starting_at(n);
                Box::pin(async move {
                    measure::async_ops(n, per_op, || {
                        let id = ids.next_id();
                        let conn = &conn;
                        async move {
                            black_box(sqlaio_read(conn, id).await);
                        }
                    })
                    .await
                })
            },
        ));
        let spec = measure::Spec {
            rounds: LATENCY_ROUNDS,
            batch: LATENCY_BATCH,
            latency: true,
            unit: "read",
            ..measure::Spec::new("sqlite", "a", "point_read_latency")
        };
        measure::Mode::Interleaved.measure(&spec, &mut contenders);
        drop(contenders);
        for (side, open) in sides.iter().zip(opened) {
            side.close(open);
        }
    }

    fn timed(n: u64, mut read: impl FnMut()) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            read();
        }
        start.elapsed()
    }

    /// Sequential sqlaio reads through `conn`, awaited by `executor`.
    fn sqlaio_reads<'a, A: AsyncExecutor + 'a>(executor: A, conn: &'a Connection) -> Run<'a> {
        let mut ids = Ids::default();
        Box::new(move |n| {
            executor.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    black_box(sqlaio_read(conn, ids.next_id()).await);
                }
                start.elapsed()
            })
        })
    }

    /// Sequential model reads, awaited with `futures::executor::block_on`.
    fn model_reads(worker: &model::Worker, reply_spin: Option<Duration>, empty: bool) -> Run<'_> {
        let mut ids = Ids::default();
        Box::new(move |n| {
            futures::executor::block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    let id = if empty { model::EMPTY } else { ids.next_id() };
                    black_box(worker.read(id, reply_spin).await);
                }
                start.elapsed()
            })
        })
    }

    fn sequential(db: &Database) {
        let raw = open_raw(&db.path);
        let thread = db.engine(ThreadStrategy, 1);
        let thread_conn = futures::executor::block_on(thread.connect()).expect("connect");
        #[cfg(feature = "tokio")]
        let (current, current_engine, multi, multi_engine) = {
            let current = current_thread_runtime();
            let current_engine = db.engine(sqlaio::TokioStrategy, 1);
            let multi = multi_thread_runtime();
            let multi_engine = db.engine(sqlaio::TokioStrategy, 1);
            (current, current_engine, multi, multi_engine)
        };
        #[cfg(feature = "tokio")]
        let (current_conn, multi_conn) = (
            current.block_on(current_engine.connect()).expect("connect"),
            Arc::new(multi.block_on(multi_engine.connect()).expect("connect")),
        );
        #[cfg(feature = "async-std")]
        let async_std = db.engine(sqlaio::AsyncStdStrategy, 1);
        #[cfg(feature = "async-std")]
        let async_std_conn = AsyncStdExecutor
            .block_on(async_std.connect())
            .expect("connect");
        #[cfg(feature = "smol")]
        let smol = db.engine(sqlaio::SmolStrategy, 1);
        #[cfg(feature = "smol")]
        let smol_conn = SmolExecutor.block_on(smol.connect()).expect("connect");
        let workers: Vec<_> = wait_variants()
            .into_iter()
            .map(|(name, wait, reply_spin)| (name, model::Worker::start(db, wait), reply_spin))
            .collect();

        let mut contenders: Vec<(String, Run<'_>)> = Vec::new();
        let mut ids = Ids::default();
        let raw_ref = &raw;
        contenders.push((
            "rusqlite".into(),
            Box::new(move |n| timed(n, || drop(black_box(bare_read(raw_ref, ids.next_id()))))),
        ));
        contenders.push((
            "sqlaio/thread/block_on".into(),
            sqlaio_reads(FuturesExecutor, &thread_conn),
        ));
        #[cfg(feature = "tokio")]
        {
            contenders.push((
                "sqlaio/tokio/current_thread".into(),
                sqlaio_reads(&current, &current_conn),
            ));
            let mut start = 0;
            let (multi_ref, conn) = (&multi, &multi_conn);
            contenders.push((
                "sqlaio/tokio/multi_thread_task".into(),
                Box::new(move |n| {
                    let conn = conn.clone();
                    let mut ids = Ids::starting_at(start);
                    start += n;
                    multi_ref
                        .block_on(multi_ref.spawn(async move {
                            let begin = Instant::now();
                            for _ in 0..n {
                                black_box(sqlaio_read(&conn, ids.next_id()).await);
                            }
                            begin.elapsed()
                        }))
                        .expect("task")
                }),
            ));
            contenders.push((
                "sqlaio/tokio/multi_thread_block_on".into(),
                sqlaio_reads(&multi, &multi_conn),
            ));
        }
        #[cfg(feature = "async-std")]
        contenders.push((
            "sqlaio/async_std/block_on".into(),
            sqlaio_reads(AsyncStdExecutor, &async_std_conn),
        ));
        #[cfg(feature = "smol")]
        contenders.push((
            "sqlaio/smol/block_on".into(),
            sqlaio_reads(SmolExecutor, &smol_conn),
        ));
        for (name, worker, reply_spin) in &workers {
            contenders.push((
                format!("model/{name}"),
                model_reads(worker, *reply_spin, false),
            ));
        }
        for (name, worker, reply_spin) in &workers {
            if matches!(*name, "park" | "spin_yield_20us") {
                contenders.push((
                    format!("model/round_trip_only/{name}"),
                    model_reads(worker, *reply_spin, true),
                ));
            }
        }
        measure(
            &mut contenders,
            SEQUENTIAL_ROUNDS,
            SEQUENTIAL_BATCH,
            1,
            ("a", "point_read"),
        );
        drop(contenders);
        println!();
        for (name, worker, _) in &workers {
            report_spin_hits(&format!("model/{name}"), [worker]);
        }

        futures::executor::block_on(thread.close()).expect("close");
        #[cfg(feature = "tokio")]
        {
            drop(current_conn);
            current.block_on(current_engine.close()).expect("close");
            drop(multi_conn);
            multi.block_on(multi_engine.close()).expect("close");
        }
        #[cfg(feature = "async-std")]
        {
            drop(async_std_conn);
            AsyncStdExecutor.block_on(async_std.close()).expect("close");
        }
        #[cfg(feature = "smol")]
        {
            drop(smol_conn);
            SmolExecutor.block_on(smol.close()).expect("close");
        }
    }

    fn loaded(db: &Database) {
        let raw = open_raw(&db.path);
        let rt = multi_thread_runtime();
        let thread = db.engine(ThreadStrategy, POOL);
        #[cfg(feature = "tokio")]
        let tokio_engine = db.engine(sqlaio::TokioStrategy, POOL);
        // Through `Engine::execute` under the other waiting policies.
        #[cfg(feature = "tokio")]
        let policy_engines: Vec<_> = sqlaio_side::WAIT_POLICIES
            .into_iter()
            .map(|(suffix, wait)| {
                let engine = Engine::builder()
                    .url(db.url())
                    .strategy(sqlaio::TokioStrategy)
                    .max_connections(POOL)
                    .wait_policy(wait)
                    .build()
                    .expect("engine");
                (format!("sqlaio/tokio{suffix}"), engine)
            })
            .collect();
        // The `/shared` contenders' connections, from engines of their own
        // (all of an engine's connections stay taken while they run).
        let shared_thread = db.engine(ThreadStrategy, POOL);
        #[cfg(feature = "tokio")]
        let shared_tokio = db.engine(sqlaio::TokioStrategy, POOL);
        let shared: Vec<_> = [
            ("sqlaio/thread", &shared_thread),
            #[cfg(feature = "tokio")]
            ("sqlaio/tokio", &shared_tokio),
        ]
        .into_iter()
        .map(|(name, engine)| (name, shared_connections(engine, &rt)))
        .collect();
        let pools: Vec<_> = wait_variants()
            .into_iter()
            .filter(|(_, _, reply_spin)| reply_spin.is_none())
            .map(|(name, wait, _)| (name, model::Pool::start(db, wait)))
            .collect();

        let mut contenders: Vec<(String, Run<'_>)> = Vec::new();
        let mut ids = Ids::default();
        let raw_ref = &raw;
        contenders.push((
            "rusqlite/one_thread".into(),
            Box::new(move |n| {
                timed(n * (TASKS * READS_PER_TASK) as u64, || {
                    drop(black_box(bare_read(raw_ref, ids.next_id())))
                })
            }),
        ));
        let rt_ref = &rt;
        let engines = [
            ("sqlaio/thread", &thread),
            #[cfg(feature = "tokio")]
            ("sqlaio/tokio", &tokio_engine),
        ];
        for (name, engine) in engines {
            for (suffix, lane) in POOLED {
                let mut round = 0;
                contenders.push((
                    format!("{name}{suffix}"),
                    Box::new(move |n| {
                        timed(n, || {
                            round += 1;
                            rt_ref.block_on(sqlaio_load(|_| lane(engine.clone()), round));
                        })
                    }),
                ));
            }
        }
        #[cfg(feature = "tokio")]
        for (name, engine) in &policy_engines {
            let mut round = 0;
            contenders.push((
                name.clone(),
                Box::new(move |n| {
                    timed(n, || {
                        round += 1;
                        rt_ref.block_on(sqlaio_load(|_| Lane::Engine(engine.clone()), round));
                    })
                }),
            ));
        }
        for (name, conns) in &shared {
            let mut round = 0;
            contenders.push((
                format!("{name}/shared"),
                Box::new(move |n| {
                    timed(n, || {
                        round += 1;
                        rt_ref.block_on(sqlaio_load(
                            |task| Lane::Shared(conns[task % conns.len()].clone()),
                            round,
                        ));
                    })
                }),
            ));
        }
        for (name, pool) in &pools {
            let mut round = 0;
            contenders.push((
                format!("model/{name}"),
                Box::new(move |n| {
                    timed(n, || {
                        round += 1;
                        rt_ref.block_on(pool.load(round));
                    })
                }),
            ));
        }
        measure(
            &mut contenders,
            LOADED_ROUNDS,
            LOADED_BATCH,
            TASKS * READS_PER_TASK,
            ("d", "point_read_64_tasks"),
        );
        drop(contenders);
        drop(shared);

        println!();
        for (name, pool) in &pools {
            report_spin_hits(&format!("model/{name}"), pool.workers());
        }

        rt.block_on(thread.close()).expect("close");
        rt.block_on(shared_thread.close()).expect("close");
        #[cfg(feature = "tokio")]
        rt.block_on(tokio_engine.close()).expect("close");
        #[cfg(feature = "tokio")]
        rt.block_on(shared_tokio.close()).expect("close");
        #[cfg(feature = "tokio")]
        for (_, engine) in policy_engines {
            rt.block_on(engine.close()).expect("close");
        }
        drop(pools);
    }

    /// Runs every contender once untimed, then `rounds` times in turns, and
    /// prints a table (and appends JSON lines to `SQLAIO_BENCH_JSON`, see
    /// `support/measure.rs`); the first contender is the floor.
    fn measure(
        contenders: &mut [(String, Run<'_>)],
        rounds: usize,
        batch: u64,
        reads_per_unit: usize,
        (scenario, group): (&'static str, &'static str),
    ) {
        let spec = measure::Spec {
            rounds,
            batch,
            ops_per_unit: reads_per_unit as u64,
            unit: "read",
            ..measure::Spec::new("sqlite", scenario, group)
        };
        let mut runs: Vec<(String, measure::Run<'_>)> = contenders
            .iter_mut()
            .map(|(name, run)| {
                let run: measure::Run<'_> = Box::new(move |n, _| measure::Batch {
                    time: run(n),
                    per_op: Vec::new(),
                });
                (name.clone(), run)
            })
            .collect();
        measure::Mode::Interleaved.measure(&spec, &mut runs);
    }
}

/// What `criterion_main!` would do, without plots (drawing them takes longer
/// than measuring on a small machine; the estimates are still saved under
/// `target/criterion`), and `-- --interleaved` to run [`interleaved`] instead.
fn main() {
    if std::env::args().any(|arg| arg == "--interleaved") {
        interleaved::run();
        return;
    }
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    point_read(&mut criterion);
    point_read_64_tasks(&mut criterion);
    worker_wait_sequential(&mut criterion);
    worker_wait_64_tasks(&mut criterion);
    criterion.final_summary();
}
