//! SQLite: the bare rusqlite call first, then each peer crate, on the same
//! data and SQL as sqlaio's own SQLite benches (scenarios a to e of
//! `docs/benchmarks.md`). Every peer is awaited from a tokio current-thread
//! runtime and from a task on a multi-thread runtime, as sqlaio's
//! `TokioStrategy` is in the main crate's benches.
//!
//! sqlaio is not in this graph: see `Cargo.toml` for why (one
//! `libsqlite3-sys` per graph). Compare ratios to each run's own floor.

#[path = "../../support/measure.rs"]
mod measure;
#[path = "../../support/sqlite_db.rs"]
mod sqlite_db;

extern crate rusqlite;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use measure::{multi_thread_runtime, sync_ops, time_loop, Counting, Exec, Ids, Mode, Run, Spec};
use sqlite_db::{
    bare_fetchall, bare_insert, bare_insert_tx, bare_read, bare_stream, open_raw, pragmas,
    Database, BULK_SQL, INSERT_SQL, POINT_SQL,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, Row as _, SqliteConnection};

#[global_allocator]
static ALLOC: Counting = Counting;

const POINT_ROWS: u64 = 10_000;
const BULK_ROWS: u64 = 1_000_000;
const TX_INSERTS: u64 = 10_000;
const TASKS: usize = 64;
const READS_PER_TASK: usize = 16;
const POOL: usize = 4;
const MAX_ROWS: u64 = 200_000;
/// The name every insert writes: `measure::name_for(1)`, 30 characters.
const NAME: &str = "customer-000000000000000000001";

/// The executors every peer is awaited from.
fn execs() -> Vec<(&'static str, Exec)> {
    vec![
        ("current_thread", Exec::tokio_current()),
        ("multi_thread_task", Exec::tokio_multi_task()),
    ]
}

fn sqlx_options(db: &Database) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(&db.path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
}

/// One connection (or a pool of `pool`) of each peer, opened on `exec`.
struct Peers {
    tokio_rusqlite: Vec<tokio_rusqlite::Connection>,
    async_sqlite: async_sqlite::Pool,
    deadpool: deadpool_sqlite::Pool,
    sqlx: Arc<tokio::sync::Mutex<SqliteConnection>>,
    sqlx_pool: sqlx::SqlitePool,
}

impl Peers {
    fn open(exec: &Exec, db: &Database, pool: usize) -> Peers {
        exec.block_on(async {
            let mut tokio_rusqlite = Vec::new();
            for _ in 0..pool {
                let conn = tokio_rusqlite::Connection::open(&db.path)
                    .await
                    .expect("tokio-rusqlite");
                conn.call(|c| pragmas(c)).await.expect("pragmas");
                tokio_rusqlite.push(conn);
            }
            let async_sqlite = async_sqlite::PoolBuilder::new()
                .path(&db.path)
                .journal_mode(async_sqlite::JournalMode::Wal)
                .num_conns(pool)
                .open()
                .await
                .expect("async-sqlite");
            for result in async_sqlite.conn_for_each(pragmas).await {
                result.expect("pragmas");
            }
            let mut config = deadpool_sqlite::Config::new(&db.path);
            config.pool = Some(deadpool_sqlite::PoolConfig::new(pool));
            let deadpool = config
                .create_pool(deadpool_sqlite::Runtime::Tokio1)
                .expect("deadpool-sqlite");
            // Open every connection now and set the pragmas on each.
            let mut objects = Vec::new();
            for _ in 0..pool {
                let object = deadpool.get().await.expect("deadpool get");
                object
                    .interact(|c| pragmas(c))
                    .await
                    .expect("interact")
                    .expect("pragmas");
                objects.push(object);
            }
            drop(objects);
            let sqlx = SqliteConnection::connect_with(&sqlx_options(db))
                .await
                .expect("sqlx");
            let sqlx_pool = SqlitePoolOptions::new()
                .max_connections(pool as u32)
                .min_connections(pool as u32)
                .connect_with(sqlx_options(db))
                .await
                .expect("sqlx pool");
            Peers {
                tokio_rusqlite,
                async_sqlite,
                deadpool,
                sqlx: Arc::new(tokio::sync::Mutex::new(sqlx)),
                sqlx_pool,
            }
        })
    }

    fn close(self, exec: &Exec) {
        exec.block_on(async {
            for conn in self.tokio_rusqlite {
                conn.close().await.expect("close");
            }
            self.async_sqlite.close().await.expect("close");
            self.deadpool.close();
            let conn = Arc::into_inner(self.sqlx).expect("sqlx connection in use");
            conn.into_inner().close().await.expect("close");
            self.sqlx_pool.close().await;
        });
    }
}

fn read_row(c: &rusqlite::Connection, id: i64) -> rusqlite::Result<(i64, String)> {
    let mut stmt = c.prepare_cached(POINT_SQL)?;
    stmt.query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
}

fn insert_row(c: &rusqlite::Connection, name: &str) -> rusqlite::Result<usize> {
    c.prepare_cached(INSERT_SQL)?.execute([name])
}

fn insert_tx(c: &mut rusqlite::Connection, name: &str) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    {
        let mut stmt = tx.prepare_cached(INSERT_SQL)?;
        for _ in 0..TX_INSERTS {
            stmt.execute([name])?;
        }
    }
    tx.commit()
}

fn collect_all(c: &rusqlite::Connection) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut stmt = c.prepare_cached(BULK_SQL)?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

fn sum_tuples(rows: &[(i64, String)]) -> usize {
    rows.iter()
        .map(|(id, name)| *id as usize + name.len())
        .sum()
}

fn sum_sqlx(row: &sqlx::sqlite::SqliteRow) -> usize {
    let id: i64 = row.get(0);
    let name: &str = row.get(1);
    id as usize + name.len()
}

/// The peers' contenders for one kind of operation on one executor.
/// `$body` is given `$p` (the peers) and `n`, `per_op`, and must evaluate
/// to a `Batch` future.
macro_rules! contender {
    ($list:ident, $label:expr, $exec:expr, [$($c:ident),*], |$n:ident, $per_op:ident| $body:expr) => {{
        let exec: &Exec = $exec;
        $(let $c = $c.clone();)*
        let run: Run<'_> = Box::new(move |$n, $per_op| {
            $(let $c = $c.clone();)*
            exec.run(Box::pin(async move { $body }))
        });
        $list.push(($label, run));
    }};
}

impl Clone for Peers {
    fn clone(&self) -> Peers {
        Peers {
            tokio_rusqlite: self.tokio_rusqlite.clone(),
            async_sqlite: self.async_sqlite.clone(),
            deadpool: self.deadpool.clone(),
            sqlx: self.sqlx.clone(),
            sqlx_pool: self.sqlx_pool.clone(),
        }
    }
}

/// Scenario a: point reads, one at a time, every read timed.
fn point_read(mode: &mut Mode, execs: &[(&str, Exec)]) {
    let db = Database::create(POINT_ROWS);
    let peers: Vec<Peers> = execs.iter().map(|(_, e)| Peers::open(e, &db, 1)).collect();
    let raw = open_raw(&db.path);
    let mut ids = Ids::new(0, POINT_ROWS);
    let mut list: Vec<(String, Run<'_>)> = vec![(
        "rusqlite".into(),
        Box::new(|n, per_op| {
            sync_ops(n, per_op, || {
                drop(black_box(bare_read(&raw, ids.next_id())))
            })
        }),
    )];
    for ((label, exec), p) in execs.iter().zip(&peers) {
        contender!(
            list,
            format!("tokio-rusqlite/{label}"),
            exec,
            [p],
            |n, per_op| {
                let mut ids = Ids::new(n, POINT_ROWS);
                time_loop!(n, per_op, {
                    let id = ids.next_id();
                    let row = p.tokio_rusqlite[0]
                        .call(move |c| read_row(c, id))
                        .await
                        .expect("read");
                    black_box(row);
                })
            }
        );
        contender!(
            list,
            format!("async-sqlite/{label}"),
            exec,
            [p],
            |n, per_op| {
                let mut ids = Ids::new(n, POINT_ROWS);
                time_loop!(n, per_op, {
                    let id = ids.next_id();
                    let row = p
                        .async_sqlite
                        .conn(move |c| read_row(c, id))
                        .await
                        .expect("read");
                    black_box(row);
                })
            }
        );
        contender!(
            list,
            format!("deadpool-sqlite/{label}"),
            exec,
            [p],
            |n, per_op| {
                let mut ids = Ids::new(n, POINT_ROWS);
                time_loop!(n, per_op, {
                    let id = ids.next_id();
                    let object = p.deadpool.get().await.expect("get");
                    let row = object
                        .interact(move |c| read_row(c, id))
                        .await
                        .expect("interact")
                        .expect("read");
                    black_box(row);
                })
            }
        );
        contender!(list, format!("sqlx/{label}"), exec, [p], |n, per_op| {
            let mut ids = Ids::new(n, POINT_ROWS);
            let mut conn = p.sqlx.lock().await;
            time_loop!(n, per_op, {
                let row = sqlx::query(POINT_SQL)
                    .bind(ids.next_id())
                    .fetch_one(&mut *conn)
                    .await
                    .expect("read");
                let pair: (i64, String) = (row.get(0), row.get(1));
                black_box(pair);
            })
        });
    }
    let spec = Spec {
        rounds: 20,
        batch: 1000,
        latency: true,
        unit: "read",
        ..Spec::new("sqlite", "a", "point_read_latency")
    };
    mode.measure(&spec, &mut list);
    drop(list);
    for ((_, exec), p) in execs.iter().zip(peers) {
        p.close(exec);
    }
}

/// Scenarios b and c: single autocommit inserts, then 10,000 inserts in one
/// transaction (awaited one by one, and in one closure where the peer has one).
fn writes(mode: &mut Mode, execs: &[(&str, Exec)]) {
    let db = Database::create(0);
    let peers: Vec<Peers> = execs.iter().map(|(_, e)| Peers::open(e, &db, 1)).collect();
    let mut raw = open_raw(&db.path);
    let name: Arc<str> = measure::name_for(1).into();
    let inserted = std::cell::Cell::new(0u64);
    let empty = |per_run: u64| {
        if inserted.get() > MAX_ROWS {
            db.empty();
            inserted.set(0);
        }
        inserted.set(inserted.get() + per_run);
    };

    // b
    let mut list: Vec<(String, Run<'_>)> = Vec::new();
    {
        let raw = &raw;
        let name = name.clone();
        list.push((
            "rusqlite".into(),
            Box::new(move |n, per_op| sync_ops(n, per_op, || bare_insert(raw, &name))),
        ));
    }
    for ((label, exec), p) in execs.iter().zip(&peers) {
        contender!(
            list,
            format!("tokio-rusqlite/{label}"),
            exec,
            [p],
            |n, per_op| {
                time_loop!(n, per_op, {
                    p.tokio_rusqlite[0]
                        .call(move |c| insert_row(c, NAME))
                        .await
                        .expect("insert");
                })
            }
        );
        contender!(
            list,
            format!("async-sqlite/{label}"),
            exec,
            [p],
            |n, per_op| {
                time_loop!(n, per_op, {
                    p.async_sqlite
                        .conn(move |c| insert_row(c, NAME))
                        .await
                        .expect("insert");
                })
            }
        );
        contender!(
            list,
            format!("deadpool-sqlite/{label}"),
            exec,
            [p],
            |n, per_op| {
                time_loop!(n, per_op, {
                    let object = p.deadpool.get().await.expect("get");
                    object
                        .interact(move |c| insert_row(c, NAME))
                        .await
                        .expect("interact")
                        .expect("insert");
                })
            }
        );
        contender!(list, format!("sqlx/{label}"), exec, [p], |n, per_op| {
            let mut conn = p.sqlx.lock().await;
            time_loop!(n, per_op, {
                sqlx::query(INSERT_SQL)
                    .bind(NAME)
                    .execute(&mut *conn)
                    .await
                    .expect("insert");
            })
        });
    }
    let mut list: Vec<(String, Run<'_>)> = list
        .into_iter()
        .map(|(label, run)| (label, measure::with_setup(|| empty(200), run)))
        .collect();
    let spec = Spec {
        rounds: 40,
        batch: 200,
        unit: "insert",
        ..Spec::new("sqlite", "b", "sqlite_insert")
    };
    mode.measure(&spec, &mut list);
    drop(list);

    // c
    let mut list: Vec<(String, Run<'_>)> = Vec::new();
    {
        let raw = &mut raw;
        let name = name.clone();
        list.push((
            "rusqlite".into(),
            Box::new(move |n, per_op| {
                sync_ops(n, per_op, || bare_insert_tx(raw, &name, TX_INSERTS))
            }),
        ));
    }
    for ((label, exec), p) in execs.iter().zip(&peers) {
        contender!(
            list,
            format!("tokio-rusqlite/{label}/awaited"),
            exec,
            [p],
            |n, per_op| {
                let conn = &p.tokio_rusqlite[0];
                time_loop!(n, per_op, {
                    conn.call(|c| c.execute_batch("BEGIN"))
                        .await
                        .expect("begin");
                    for _ in 0..TX_INSERTS {
                        conn.call(move |c| insert_row(c, NAME))
                            .await
                            .expect("insert");
                    }
                    conn.call(|c| c.execute_batch("COMMIT"))
                        .await
                        .expect("commit");
                })
            }
        );
        contender!(
            list,
            format!("tokio-rusqlite/{label}/one_call"),
            exec,
            [p],
            |n, per_op| {
                time_loop!(n, per_op, {
                    p.tokio_rusqlite[0]
                        .call(move |c| insert_tx(c, NAME))
                        .await
                        .expect("insert");
                })
            }
        );
        contender!(
            list,
            format!("async-sqlite/{label}/awaited"),
            exec,
            [p],
            |n, per_op| {
                let client = &p.async_sqlite;
                time_loop!(n, per_op, {
                    client
                        .conn(|c| c.execute_batch("BEGIN"))
                        .await
                        .expect("begin");
                    for _ in 0..TX_INSERTS {
                        client
                            .conn(move |c| insert_row(c, NAME))
                            .await
                            .expect("insert");
                    }
                    client
                        .conn(|c| c.execute_batch("COMMIT"))
                        .await
                        .expect("commit");
                })
            }
        );
        contender!(
            list,
            format!("async-sqlite/{label}/one_call"),
            exec,
            [p],
            |n, per_op| {
                time_loop!(n, per_op, {
                    p.async_sqlite
                        .conn_mut(move |c| insert_tx(c, NAME))
                        .await
                        .expect("insert");
                })
            }
        );
        contender!(
            list,
            format!("deadpool-sqlite/{label}/awaited"),
            exec,
            [p],
            |n, per_op| {
                time_loop!(n, per_op, {
                    let object = p.deadpool.get().await.expect("get");
                    object
                        .interact(|c| c.execute_batch("BEGIN"))
                        .await
                        .expect("interact")
                        .expect("begin");
                    for _ in 0..TX_INSERTS {
                        object
                            .interact(move |c| insert_row(c, NAME))
                            .await
                            .expect("interact")
                            .expect("insert");
                    }
                    object
                        .interact(|c| c.execute_batch("COMMIT"))
                        .await
                        .expect("interact")
                        .expect("commit");
                })
            }
        );
        contender!(
            list,
            format!("deadpool-sqlite/{label}/one_call"),
            exec,
            [p],
            |n, per_op| {
                time_loop!(n, per_op, {
                    let object = p.deadpool.get().await.expect("get");
                    object
                        .interact(move |c| insert_tx(c, NAME))
                        .await
                        .expect("interact")
                        .expect("insert");
                })
            }
        );
        contender!(
            list,
            format!("sqlx/{label}/awaited"),
            exec,
            [p],
            |n, per_op| {
                let mut conn = p.sqlx.lock().await;
                time_loop!(n, per_op, {
                    let mut tx = conn.begin().await.expect("begin");
                    for _ in 0..TX_INSERTS {
                        sqlx::query(INSERT_SQL)
                            .bind(NAME)
                            .execute(&mut *tx)
                            .await
                            .expect("insert");
                    }
                    tx.commit().await.expect("commit");
                })
            }
        );
    }
    let mut list: Vec<(String, Run<'_>)> = list
        .into_iter()
        .map(|(label, run)| (label, measure::with_setup(|| empty(TX_INSERTS), run)))
        .collect();
    let spec = Spec {
        rounds: 15,
        batch: 1,
        ops_per_unit: TX_INSERTS,
        unit: "insert",
        samples: 10,
        measurement: Duration::from_secs(3),
        ..Spec::new("sqlite", "c", "sqlite_tx_10k")
    };
    mode.measure(&spec, &mut list);
    drop(list);
    for ((_, exec), p) in execs.iter().zip(peers) {
        p.close(exec);
    }
}

/// Scenario d: 64 tasks on a multi-thread runtime, 16 reads each, over 4
/// connections. tokio-rusqlite has no pool: task `i` uses connection `i % 4`.
fn loaded(mode: &mut Mode) {
    let db = Database::create(POINT_ROWS);
    let exec = Exec::TokioMultiTask(multi_thread_runtime());
    let rt = match &exec {
        Exec::TokioMultiTask(rt) => rt,
        _ => unreachable!(),
    };
    let p = Peers::open(&exec, &db, POOL);
    let raw = open_raw(&db.path);
    let mut ids = Ids::new(0, POINT_ROWS);
    let mut list: Vec<(String, Run<'_>)> = vec![(
        "rusqlite/one_thread".into(),
        Box::new(|n, per_op| {
            sync_ops(n, per_op, || {
                for _ in 0..TASKS * READS_PER_TASK {
                    black_box(bare_read(&raw, ids.next_id()));
                }
            })
        }),
    )];
    type Task = fn(Peers, Ids, usize) -> futures::future::BoxFuture<'static, ()>;
    let kinds: [(&str, Task); 4] = [
        ("tokio-rusqlite", |p, mut ids, task| {
            Box::pin(async move {
                let conn = &p.tokio_rusqlite[task % POOL];
                for _ in 0..READS_PER_TASK {
                    let id = ids.next_id();
                    black_box(conn.call(move |c| read_row(c, id)).await.expect("read"));
                }
            })
        }),
        ("async-sqlite", |p, mut ids, _| {
            Box::pin(async move {
                for _ in 0..READS_PER_TASK {
                    let id = ids.next_id();
                    black_box(
                        p.async_sqlite
                            .conn(move |c| read_row(c, id))
                            .await
                            .expect("read"),
                    );
                }
            })
        }),
        ("deadpool-sqlite", |p, mut ids, _| {
            Box::pin(async move {
                for _ in 0..READS_PER_TASK {
                    let id = ids.next_id();
                    let object = p.deadpool.get().await.expect("get");
                    let row = object.interact(move |c| read_row(c, id)).await;
                    black_box(row.expect("interact").expect("read"));
                }
            })
        }),
        ("sqlx", |p, mut ids, _| {
            Box::pin(async move {
                for _ in 0..READS_PER_TASK {
                    let row = sqlx::query(POINT_SQL)
                        .bind(ids.next_id())
                        .fetch_one(&p.sqlx_pool)
                        .await
                        .expect("read");
                    black_box((row.get::<i64, _>(0), row.get::<String, _>(1)));
                }
            })
        }),
    ];
    for (label, task) in kinds {
        let p = p.clone();
        let mut round = 0;
        list.push((
            label.into(),
            Box::new(move |n, per_op| {
                sync_ops(n, per_op, || {
                    round += 1;
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|t| {
                            let ids = Ids::new(round * 7 + t as u64 * 131, POINT_ROWS);
                            rt.spawn(task(p.clone(), ids, t))
                        })
                        .collect();
                    rt.block_on(async {
                        for t in tasks {
                            t.await.expect("task");
                        }
                    });
                })
            }),
        ));
    }
    let spec = Spec::loaded(
        "sqlite",
        "point_read_64_tasks",
        (TASKS * READS_PER_TASK) as u64,
    );
    mode.measure(&spec, &mut list);
    drop(list);
    p.close(&exec);
}

/// Scenario e: 1,000,000 rows held at once, and streamed (sqlx only: the
/// other peers hand rows out only as a closure's return value).
fn bulk(mode: &mut Mode, execs: &[(&str, Exec)]) {
    let db = Database::create(BULK_ROWS);
    let peers: Vec<Peers> = execs.iter().map(|(_, e)| Peers::open(e, &db, 1)).collect();
    let raw = open_raw(&db.path);
    let spec = |group| Spec::bulk("sqlite", group, BULK_ROWS);
    let mut list: Vec<(String, Run<'_>)> = vec![(
        "rusqlite".into(),
        Box::new(|n, per_op| {
            sync_ops(n, per_op, || {
                black_box(bare_fetchall(&raw));
            })
        }),
    )];
    for ((label, exec), p) in execs.iter().zip(&peers) {
        contender!(
            list,
            format!("tokio-rusqlite/{label}"),
            exec,
            [p],
            |n, per_op| {
                time_loop!(n, per_op, {
                    let rows = p.tokio_rusqlite[0]
                        .call(|c| collect_all(c))
                        .await
                        .expect("rows");
                    black_box(sum_tuples(&rows));
                })
            }
        );
        contender!(
            list,
            format!("async-sqlite/{label}"),
            exec,
            [p],
            |n, per_op| {
                time_loop!(n, per_op, {
                    let rows = p.async_sqlite.conn(collect_all).await.expect("rows");
                    black_box(sum_tuples(&rows));
                })
            }
        );
        contender!(
            list,
            format!("deadpool-sqlite/{label}"),
            exec,
            [p],
            |n, per_op| {
                time_loop!(n, per_op, {
                    let object = p.deadpool.get().await.expect("get");
                    let rows = object.interact(|c| collect_all(c)).await.expect("interact");
                    black_box(sum_tuples(&rows.expect("rows")));
                })
            }
        );
        contender!(list, format!("sqlx/{label}"), exec, [p], |n, per_op| {
            let mut conn = p.sqlx.lock().await;
            time_loop!(n, per_op, {
                let rows = sqlx::query(BULK_SQL)
                    .fetch_all(&mut *conn)
                    .await
                    .expect("rows");
                black_box(rows.iter().map(sum_sqlx).sum::<usize>());
            })
        });
    }
    mode.measure(&spec("sqlite_fetchall"), &mut list);
    drop(list);

    let mut list: Vec<(String, Run<'_>)> = vec![(
        "rusqlite".into(),
        Box::new(|n, per_op| {
            sync_ops(n, per_op, || {
                black_box(bare_stream(&raw));
            })
        }),
    )];
    for ((label, exec), p) in execs.iter().zip(&peers) {
        contender!(list, format!("sqlx/{label}"), exec, [p], |n, per_op| {
            let mut conn = p.sqlx.lock().await;
            time_loop!(n, per_op, {
                let mut rows = sqlx::query(BULK_SQL).fetch(&mut *conn);
                let mut sum = 0;
                while let Some(row) = rows.next().await {
                    sum += sum_sqlx(&row.expect("row"));
                }
                black_box(sum);
            })
        });
    }
    mode.measure(&spec("sqlite_stream"), &mut list);
    drop(list);
    for ((_, exec), p) in execs.iter().zip(peers) {
        p.close(exec);
    }
}

fn main() {
    let mut mode = Mode::from_args();
    let execs = execs();
    point_read(&mut mode, &execs);
    writes(&mut mode, &execs);
    loaded(&mut mode);
    bulk(&mut mode, &execs);
    mode.finish();
}
