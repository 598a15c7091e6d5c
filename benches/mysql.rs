//! MySQL and MariaDB: the bare sync `mysql` crate (the version sqlaio wraps,
//! with statements prepared once) first, then sqlaio per strategy, against the
//! server named by `MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`,
//! over TCP for every contender). Without a server the bench prints a notice
//! and measures nothing.
//!
//! - `my_point_read` (scenario a): `SELECT id, name FROM t WHERE id = ?` on
//!   10,000 rows, one awaited call after the other; the interleaved mode
//!   times every read (p50 and p99).
//! - `my_insert` (scenario b): one autocommit `INSERT` of a 30-character
//!   name at a time.
//! - `my_tx_10k` (scenario c): 10,000 of the same inserts in one transaction:
//!   awaited one by one (`/awaited`), through one `execute_many`
//!   (`/execute_many`), and in one `run_in_thread` closure on the raw
//!   connection (`/one_call`).
//! - `my_point_read_64_tasks` (scenario d): 64 tokio tasks on a multi-thread
//!   runtime doing 16 reads each over a pool of 4 connections, against the
//!   floor doing the same 1,024 reads on one thread; `/connect` checks a
//!   connection out for every read, `sqlaio/tokio/shared` takes the 4
//!   connections once and shares them between the tasks.
//! - `my_fetchall`, `my_stream` (scenario e): 1,000,000 rows held at once or
//!   read one at a time; the interleaved mode also reports peak heap memory.
//!   With the `serde` feature `my_fetchall` also measures
//!   `fetchall_as::<(i64, String)>` (`/fetchall_as`).
//!
//! The insert groups empty the table between runs once it passes 200,000
//! rows, untimed. Run with `cargo bench --bench mysql --all-features` or
//! `... -- --interleaved`; `SQLAIO_BENCH_ONLY=a,c` measures only those
//! scenarios.

#[path = "support/measure.rs"]
mod measure;
#[path = "support/mysql_db.rs"]
mod mysql_db;
#[path = "support/sqlaio_side.rs"]
mod sqlaio_side;

use std::cell::Cell;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use measure::{
    async_ops, multi_thread_runtime, name_for, sync_ops, with_setup, Counting, Ids, Mode, Run, Spec,
};
use mysql::prelude::Queryable;
use mysql_db::{bare_fetchall, bare_insert, bare_insert_tx, bare_read, bare_stream, Table};
use sqlaio::mysql;
use sqlaio::{Connection, CursorResult, Engine, Row, Value};

#[global_allocator]
static ALLOC: Counting = Counting;

const POINT_ROWS: u64 = 10_000;
const BULK_ROWS: u64 = 1_000_000;
const TX_INSERTS: u64 = 10_000;
/// Rows an insert group's table may reach before it is emptied.
const MAX_ROWS: u64 = 200_000;
const TASKS: usize = 64;
const READS_PER_TASK: usize = 16;
const POOL: usize = 4;

async fn sqlaio_read(conn: &Connection, sql: &str, id: i64) -> (i64, String) {
    first_row(conn.execute(sql, (id,)).await).await
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
async fn engine_read(engine: &Engine, sql: &str, id: i64) -> (i64, String) {
    first_row(engine.execute(sql, (id,)).await).await
}

fn consume(row: &Row) -> usize {
    let id: i64 = row.get(0).expect("id");
    let name = match row.get_value(1).expect("name") {
        Value::Text(text) => text.len(),
        other => panic!("name is {other:?}"),
    };
    id as usize + name
}

/// Empties `table` once `inserted` passes `MAX_ROWS`, so every run inserts
/// into a table of about the same size.
fn emptier<'a>(table: &'a Table, inserted: &'a Cell<u64>, per_run: u64) -> impl FnMut() + 'a {
    move || {
        if inserted.get() > MAX_ROWS {
            table.empty();
            inserted.set(0);
        }
        inserted.set(inserted.get() + per_run);
    }
}

fn point_read(mode: &mut Mode, conn: &mut mysql::Conn) {
    let table = Table::create(conn, "point", POINT_ROWS);
    let sql: Arc<str> = table.point_sql().into();
    let sides = sqlaio_side::sides();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&mysql_db::url(), 1)).collect();
    let stmt = conn.prep(&*sql).expect("prepare");
    let mut ids = Ids::new(0, POINT_ROWS);
    let mut contenders: Vec<(String, Run<'_>)> = vec![(
        "mysql".into(),
        Box::new(|n, per_op| {
            sync_ops(n, per_op, || {
                black_box(bare_read(conn, &stmt, ids.next_id()));
            })
        }),
    )];
    contenders.extend(sqlaio_side::contenders(
        &sides,
        &opened,
        "",
        |_, conn, n, per_op| {
            let (conn, sql) = (conn.clone(), sql.clone());
            // Each run starts where the floor's ids start, in a new order.
            let mut ids = Ids::new(n, POINT_ROWS);
            Box::pin(async move {
                async_ops(n, per_op, || {
                    let id = ids.next_id();
                    let (conn, sql) = (&conn, &sql);
                    async move {
                        black_box(sqlaio_read(conn, sql, id).await);
                    }
                })
                .await
            })
        },
    ));
    let spec = Spec {
        rounds: 20,
        batch: 1000,
        latency: true,
        unit: "read",
        ..Spec::new("mysql", "a", "my_point_read")
    };
    mode.measure(&spec, &mut contenders);
    drop(contenders);
    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
    drop(table);
}

fn single_insert(mode: &mut Mode, conn: &mut mysql::Conn) {
    let table = Table::create(conn, "insert", 0);
    let sql: Arc<str> = table.insert_sql().into();
    let sides = sqlaio_side::sides();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&mysql_db::url(), 1)).collect();
    let stmt = conn.prep(&*sql).expect("prepare");
    let name = name_for(1);
    let inserted = Cell::new(0);
    let mut contenders: Vec<(String, Run<'_>)> = vec![(
        "mysql".into(),
        Box::new(|n, per_op| sync_ops(n, per_op, || bare_insert(conn, &stmt, &name))),
    )];
    contenders.extend(sqlaio_side::contenders(
        &sides,
        &opened,
        "",
        |_, conn, n, per_op| {
            let (conn, sql, name) = (conn.clone(), sql.clone(), name_for(1));
            Box::pin(async move {
                async_ops(n, per_op, || async {
                    conn.execute(&*sql, (name.as_str(),)).await.expect("insert");
                })
                .await
            })
        },
    ));
    let spec = Spec {
        rounds: 30,
        batch: 200,
        unit: "insert",
        measurement: Duration::from_secs(2),
        ..Spec::new("mysql", "b", "my_insert")
    };
    let mut contenders: Vec<(String, Run<'_>)> = contenders
        .into_iter()
        .map(|(label, run)| {
            (
                label,
                with_setup(emptier(&table, &inserted, spec.batch), run),
            )
        })
        .collect();
    mode.measure(&spec, &mut contenders);
    drop(contenders);
    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
    drop(table);
}

fn transaction_10k(mode: &mut Mode, conn: &mut mysql::Conn) {
    let table = Table::create(conn, "tx", 0);
    let sql: Arc<str> = table.insert_sql().into();
    let sides = sqlaio_side::sides();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&mysql_db::url(), 1)).collect();
    let stmt = conn.prep(&*sql).expect("prepare");
    let name: Arc<str> = name_for(1).into();
    let inserted = Cell::new(0);
    let mut contenders: Vec<(String, Run<'_>)> = vec![(
        "mysql".into(),
        Box::new(|n, per_op| {
            sync_ops(n, per_op, || bare_insert_tx(conn, &stmt, &name, TX_INSERTS))
        }),
    )];
    contenders.extend(sqlaio_side::contenders(
        &sides,
        &opened,
        "/awaited",
        |_, conn, n, per_op| {
            let (conn, sql, name) = (conn.clone(), sql.clone(), name_for(1));
            Box::pin(async move {
                async_ops(n, per_op, || async {
                    let tx = conn.begin().await.expect("begin");
                    for _ in 0..TX_INSERTS {
                        tx.execute(&*sql, (name.as_str(),)).await.expect("insert");
                    }
                    tx.commit().await.expect("commit");
                })
                .await
            })
        },
    ));
    let (many_sql, many_name) = (sql.clone(), name.clone());
    contenders.extend(sqlaio_side::each(
        &sides,
        &opened,
        "/execute_many",
        move |conn| {
            let (sql, name) = (many_sql.clone(), many_name.clone());
            async move {
                let sets = (0..TX_INSERTS).map(|_| (&*name,));
                conn.execute_many(&*sql, sets).await.expect("execute_many");
            }
        },
    ));
    // The whole transaction in one closure on the connection's thread, on
    // the `mysql` crate's own connection (whose statement cache keeps the
    // statement between runs).
    let (call_sql, call_name) = (sql.clone(), name.clone());
    contenders.extend(sqlaio_side::each(
        &sides,
        &opened,
        "/one_call",
        move |conn| {
            let (sql, name) = (call_sql.clone(), call_name.clone());
            async move {
                conn.run_in_thread(move |raw: &mut mysql::Conn| {
                    let stmt = raw.prep(&*sql)?;
                    bare_insert_tx(raw, &stmt, &name, TX_INSERTS);
                    Ok::<_, sqlaio::Error>(())
                })
                .await
                .expect("one_call");
            }
        },
    ));
    let spec = Spec {
        rounds: 10,
        batch: 1,
        ops_per_unit: TX_INSERTS,
        unit: "insert",
        samples: 10,
        measurement: Duration::from_secs(5),
        ..Spec::new("mysql", "c", "my_tx_10k")
    };
    let mut contenders: Vec<(String, Run<'_>)> = contenders
        .into_iter()
        .map(|(label, run)| {
            (
                label,
                with_setup(emptier(&table, &inserted, TX_INSERTS), run),
            )
        })
        .collect();
    mode.measure(&spec, &mut contenders);
    drop(contenders);
    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
    drop(table);
}

/// How a task of the load reaches a connection for each read.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
enum Lane {
    /// Runs every read through the engine (`Engine::execute`), which finds
    /// it a pooled connection.
    Engine(Engine),
    /// Takes a connection from the pool for every read (`Engine::connect`).
    Pool(Engine),
    /// Uses one connection, taken once and shared with other tasks.
    Shared(Arc<Connection>),
}

/// `TASKS` tasks doing `READS_PER_TASK` reads each; task `i` reads through `lane(i)`.
async fn sqlaio_load(lane: impl Fn(usize) -> Lane, sql: Arc<str>, round: u64) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (lane, sql) = (lane(task), sql.clone());
            let mut ids = Ids::new(round * 7 + task as u64 * 131, POINT_ROWS);
            tokio::spawn(async move {
                for _ in 0..READS_PER_TASK {
                    let id = ids.next_id();
                    black_box(match &lane {
                        Lane::Engine(engine) => engine_read(engine, &sql, id).await,
                        Lane::Pool(engine) => {
                            let conn = engine.connect().await.expect("connect");
                            sqlaio_read(&conn, &sql, id).await
                        }
                        Lane::Shared(conn) => sqlaio_read(conn, &sql, id).await,
                    });
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
}

fn loaded(mode: &mut Mode, conn: &mut mysql::Conn) {
    let table = Table::create(conn, "loaded", POINT_ROWS);
    let sql: Arc<str> = table.point_sql().into();
    let stmt = conn.prep(&*sql).expect("prepare");
    let rt = multi_thread_runtime();
    let engines: Vec<(String, Engine)> = sqlaio_side::sides()
        .into_iter()
        .filter(|side| !side.label.contains("current_thread"))
        .map(|side| {
            let label = side.label.split('/').take(2).collect::<Vec<_>>().join("/");
            let engine = Engine::builder()
                .url(mysql_db::url())
                .strategy_arc(side.strategy)
                .max_connections(POOL)
                .build()
                .expect("engine");
            (label, engine)
        })
        .collect();
    // `sqlaio/tokio/shared`: an engine of its own, whose connections stay taken.
    #[cfg(feature = "tokio")]
    let shared_engine = Engine::builder()
        .url(mysql_db::url())
        .strategy(sqlaio::TokioStrategy)
        .max_connections(POOL)
        .build()
        .expect("engine");
    #[cfg(feature = "tokio")]
    let shared: Vec<Arc<Connection>> = rt.block_on(async {
        let mut conns = Vec::new();
        for _ in 0..POOL {
            conns.push(Arc::new(shared_engine.connect().await.expect("connect")));
        }
        conns
    });
    let mut ids = Ids::new(0, POINT_ROWS);
    let mut contenders: Vec<(String, Run<'_>)> = vec![(
        "mysql/one_thread".into(),
        Box::new(|n, per_op| {
            sync_ops(n, per_op, || {
                for _ in 0..TASKS * READS_PER_TASK {
                    black_box(bare_read(conn, &stmt, ids.next_id()));
                }
            })
        }),
    )];
    for (label, engine) in &engines {
        for (suffix, lane) in [
            ("", Lane::Engine as fn(Engine) -> Lane),
            ("/connect", Lane::Pool),
        ] {
            let (rt, sql) = (&rt, sql.clone());
            let mut round = 0;
            contenders.push((
                format!("{label}{suffix}"),
                Box::new(move |n, per_op| {
                    sync_ops(n, per_op, || {
                        round += 1;
                        rt.block_on(sqlaio_load(|_| lane(engine.clone()), sql.clone(), round));
                    })
                }),
            ));
        }
    }
    #[cfg(feature = "tokio")]
    {
        let (rt, sql, conns) = (&rt, sql.clone(), shared.clone());
        let mut round = 0;
        contenders.push((
            "sqlaio/tokio/shared".into(),
            Box::new(move |n, per_op| {
                sync_ops(n, per_op, || {
                    round += 1;
                    rt.block_on(sqlaio_load(
                        |task| Lane::Shared(conns[task % conns.len()].clone()),
                        sql.clone(),
                        round,
                    ));
                })
            }),
        ));
    }
    let spec = Spec::loaded(
        "mysql",
        "my_point_read_64_tasks",
        (TASKS * READS_PER_TASK) as u64,
    );
    mode.measure(&spec, &mut contenders);
    drop(contenders);
    #[cfg(feature = "tokio")]
    {
        drop(shared);
        rt.block_on(shared_engine.close()).expect("close engine");
    }
    for (_, engine) in engines {
        rt.block_on(engine.close()).expect("close engine");
    }
    drop(table);
}

fn bulk(mode: &mut Mode, conn: &mut mysql::Conn) {
    let table = Table::create(conn, "bulk", BULK_ROWS);
    let sql: Arc<str> = table.bulk_sql().into();
    let stmt = conn.prep(&*sql).expect("prepare");
    let sides = sqlaio_side::sides();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&mysql_db::url(), 1)).collect();
    let spec = |group| Spec::bulk("mysql", group, BULK_ROWS);

    {
        let (conn, stmt) = (&mut *conn, &stmt);
        let mut contenders: Vec<(String, Run<'_>)> = vec![(
            "mysql".into(),
            Box::new(|n, per_op| {
                sync_ops(n, per_op, || {
                    black_box(bare_fetchall(conn, stmt));
                })
            }),
        )];
        let all = sql.clone();
        contenders.extend(sqlaio_side::each(&sides, &opened, "", move |conn| {
            let sql = all.clone();
            async move {
                let mut result = conn.execute(&*sql, ()).await.expect("execute");
                let rows = result.fetchall().await.expect("fetchall");
                assert_eq!(rows.len() as u64, BULK_ROWS);
                rows.iter().map(consume).sum::<usize>()
            }
        }));
        // The rows as `(i64, String)`, deserialized on the worker, as the floor holds them.
        #[cfg(feature = "serde")]
        {
            let all = sql.clone();
            contenders.extend(sqlaio_side::each(
                &sides,
                &opened,
                "/fetchall_as",
                move |conn| {
                    let sql = all.clone();
                    async move {
                        let mut result = conn.execute(&*sql, ()).await.expect("execute");
                        let rows: Vec<(i64, String)> =
                            result.fetchall_as().await.expect("fetchall_as");
                        assert_eq!(rows.len() as u64, BULK_ROWS);
                        rows.iter()
                            .map(|(id, name)| *id as usize + name.len())
                            .sum::<usize>()
                    }
                },
            ));
        }
        mode.measure(&spec("my_fetchall"), &mut contenders);
    }
    {
        let (conn, stmt) = (&mut *conn, &stmt);
        let mut contenders: Vec<(String, Run<'_>)> = vec![(
            "mysql".into(),
            Box::new(|n, per_op| {
                sync_ops(n, per_op, || {
                    black_box(bare_stream(conn, stmt));
                })
            }),
        )];
        let all = sql.clone();
        contenders.extend(sqlaio_side::each(&sides, &opened, "", move |conn| {
            let sql = all.clone();
            async move {
                let mut result = conn.execute(&*sql, ()).await.expect("execute");
                let mut sum = 0;
                while let Some(row) = result.next().await {
                    sum += consume(&row.expect("row"));
                }
                sum
            }
        }));
        mode.measure(&spec("my_stream"), &mut contenders);
    }
    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
    drop(table);
}

fn main() {
    let mut mode = Mode::from_args();
    let Some(mut conn) = mysql_db::connect() else {
        return;
    };
    // `SQLAIO_BENCH_ONLY=a,c` measures only those scenarios.
    let only = std::env::var("SQLAIO_BENCH_ONLY").unwrap_or_default();
    let wanted = |s: &str| only.is_empty() || only.split(',').any(|o| o.trim() == s);
    if wanted("a") {
        point_read(&mut mode, &mut conn);
    }
    if wanted("b") {
        single_insert(&mut mode, &mut conn);
    }
    if wanted("c") {
        transaction_10k(&mut mode, &mut conn);
    }
    if wanted("d") {
        loaded(&mut mode, &mut conn);
    }
    if wanted("e") {
        bulk(&mut mode, &mut conn);
    }
    mode.finish();
}
