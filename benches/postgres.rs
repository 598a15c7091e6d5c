//! PostgreSQL: the bare sync `postgres::Client` first, then sqlaio per
//! strategy, against the server named by `DATABASE_URL` (default
//! `postgres://root@127.0.0.1:5432/test`, TLS off). Without a server the
//! bench prints a notice and measures nothing.
//!
//! - `pg_point_read` (scenario a): `SELECT id, name FROM t WHERE id = $1` on
//!   10,000 rows, one awaited call after the other; the interleaved mode
//!   times every read (p50 and p99).
//! - `pg_insert` (scenario b): one autocommit `INSERT` of a 30-character
//!   name at a time, each awaited before the next, every session with
//!   `synchronous_commit` off; the table is emptied between runs, untimed.
//! - `pg_point_read_64_tasks` (scenario d): 64 tokio tasks on a multi-thread
//!   runtime doing 16 reads each over a pool of 4 connections, against the
//!   floor doing the same 1,024 reads on one thread; `sqlaio/tokio/shared`
//!   takes the 4 connections once and shares them between the tasks.
//! - `pg_fetchall`, `pg_stream` (scenario e): 1,000,000 rows held at once or
//!   read one at a time; the interleaved mode also reports peak heap memory.
//!   With the `serde` feature `pg_fetchall` also measures
//!   `fetchall_as::<(i64, String)>` (`/fetchall_as`); `pg_stream` also
//!   measures the stream with `yield_per(64)` (`/yield_per_64`).
//!
//! Run with `cargo bench --bench postgres --all-features` or `... -- --interleaved`;
//! a further argument measures only the groups whose names contain it
//! (`-- --interleaved pg_insert`).

#[path = "support/measure.rs"]
mod measure;
#[path = "support/pg_db.rs"]
mod pg_db;
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
use pg_db::{bare_fetchall, bare_insert, bare_read, bare_stream, Table};
use sqlaio::postgres;
use sqlaio::{Connection, CursorResult, Engine, Row, Value};

#[global_allocator]
static ALLOC: Counting = Counting;

const POINT_ROWS: u64 = 10_000;
const BULK_ROWS: u64 = 1_000_000;
const TASKS: usize = 64;
const READS_PER_TASK: usize = 16;
const POOL: usize = 4;
/// Rows the insert table may reach before it is emptied.
const MAX_ROWS: u64 = 200_000;

/// `true` when the arguments name no group, or name a part of `group` (or
/// `group` followed by a contender's name, as criterion's filter may).
fn wanted(group: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    filters.is_empty()
        || filters
            .iter()
            .any(|f| group.contains(f.as_str()) || f.starts_with(group))
}

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

fn point_read(mode: &mut Mode, client: &mut postgres::Client) {
    let table = Table::create(client, "point", POINT_ROWS);
    let sql: Arc<str> = table.point_sql().into();
    let sides = sqlaio_side::sides();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&pg_db::url(), 1)).collect();
    let stmt = client.prepare(&sql).expect("prepare");
    let mut ids = Ids::new(0, POINT_ROWS);
    let mut contenders: Vec<(String, Run<'_>)> = vec![(
        "postgres".into(),
        Box::new(|n, per_op| {
            sync_ops(n, per_op, || {
                black_box(bare_read(client, &stmt, ids.next_id()));
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
        ..Spec::new("postgres", "a", "pg_point_read")
    };
    mode.measure(&spec, &mut contenders);
    drop(contenders);
    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
    drop(table);
}

fn single_insert(mode: &mut Mode, client: &mut postgres::Client) {
    let table = Table::for_inserts(client, "insert");
    let sql: Arc<str> = table.insert_sql().into();
    let sides = sqlaio_side::sides();
    let opened: Vec<_> = sides
        .iter()
        .map(|s| s.open(&pg_db::insert_url(), 1))
        .collect();
    pg_db::synchronous_commit_off(client, true);
    let stmt = client.prepare(&sql).expect("prepare");
    let name = name_for(1);
    let spec = Spec {
        rounds: 30,
        batch: 200,
        unit: "insert",
        measurement: Duration::from_secs(2),
        ..Spec::new("postgres", "b", "pg_insert")
    };
    let mut contenders: Vec<(String, Run<'_>)> = vec![(
        "postgres".into(),
        Box::new(|n, per_op| sync_ops(n, per_op, || bare_insert(client, &stmt, &name))),
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
    let inserted = Cell::new(0);
    let table = &table;
    let inserted = &inserted;
    let mut contenders: Vec<(String, Run<'_>)> = contenders
        .into_iter()
        .map(|(name, run)| {
            let empty = move || {
                if inserted.get() > MAX_ROWS {
                    table.empty();
                    inserted.set(0);
                }
                inserted.set(inserted.get() + 200);
            };
            (name, with_setup(empty, run))
        })
        .collect();
    mode.measure(&spec, &mut contenders);
    drop(contenders);
    pg_db::synchronous_commit_off(client, false);
    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
}

/// How a task of the load reaches a connection for each read.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
enum Lane {
    /// Runs every read through the engine (`Engine::execute`), which finds
    /// it a pooled connection.
    Engine(Engine),
    /// Takes a connection from the pool for every read (`Engine::connect`).
    Pool(Engine),
    /// Uses one connection, taken once and shared with other tasks (as the
    /// peers without a pool are measured).
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

fn loaded(mode: &mut Mode, client: &mut postgres::Client) {
    let table = Table::create(client, "loaded", POINT_ROWS);
    let sql: Arc<str> = table.point_sql().into();
    let stmt = client.prepare(&sql).expect("prepare");
    let rt = multi_thread_runtime();
    let engines: Vec<(String, Engine)> = sqlaio_side::sides()
        .into_iter()
        .filter(|side| !side.label.contains("current_thread"))
        .map(|side| {
            let label = side.label.split('/').take(2).collect::<Vec<_>>().join("/");
            let engine = Engine::builder()
                .url(pg_db::url())
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
        .url(pg_db::url())
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
        "postgres/one_thread".into(),
        Box::new(|n, per_op| {
            sync_ops(n, per_op, || {
                for _ in 0..TASKS * READS_PER_TASK {
                    black_box(bare_read(client, &stmt, ids.next_id()));
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
        "postgres",
        "pg_point_read_64_tasks",
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

fn bulk(mode: &mut Mode, client: &mut postgres::Client) {
    let table = Table::create(client, "bulk", BULK_ROWS);
    let sql: Arc<str> = table.bulk_sql().into();
    let sides = sqlaio_side::sides();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&pg_db::url(), 1)).collect();
    let spec = |group| Spec::bulk("postgres", group, BULK_ROWS);

    {
        let client = &mut *client;
        let mut contenders: Vec<(String, Run<'_>)> = vec![(
            "postgres".into(),
            Box::new(|n, per_op| {
                sync_ops(n, per_op, || {
                    black_box(bare_fetchall(client, &sql));
                })
            }),
        )];
        let all = sql.clone();
        contenders.extend(sqlaio_side::each(&sides, &opened, "", move |conn| {
            let sql = all.clone();
            async move {
                let mut result = conn.execute(&*sql, ()).await.expect("execute");
                let rows = result.fetchall().await.expect("fetchall");
                rows.iter().map(consume).sum::<usize>()
            }
        }));
        // The rows as `(i64, String)`, deserialized on the worker.
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
                        rows.iter()
                            .map(|(id, name)| *id as usize + name.len())
                            .sum::<usize>()
                    }
                },
            ));
        }
        mode.measure(&spec("pg_fetchall"), &mut contenders);
    }
    {
        let client = &mut *client;
        let mut contenders: Vec<(String, Run<'_>)> = vec![(
            "postgres".into(),
            Box::new(|n, per_op| {
                sync_ops(n, per_op, || {
                    black_box(bare_stream(client, &sql));
                })
            }),
        )];
        // The default batches, then a fixed batch of 64 rows after the first:
        // less held at once, more hand-offs.
        for (suffix, per) in [("", None), ("/yield_per_64", Some(64))] {
            let all = sql.clone();
            contenders.extend(sqlaio_side::each(&sides, &opened, suffix, move |conn| {
                let sql = all.clone();
                async move {
                    let mut result = conn.execute(&*sql, ()).await.expect("execute");
                    if let Some(per) = per {
                        result = result.yield_per(per);
                    }
                    let mut sum = 0;
                    while let Some(row) = result.next().await {
                        sum += consume(&row.expect("row"));
                    }
                    sum
                }
            }));
        }
        mode.measure(&spec("pg_stream"), &mut contenders);
    }
    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
    drop(table);
}

fn main() {
    let mut mode = Mode::from_args();
    let Some(mut client) = pg_db::connect() else {
        return;
    };
    if wanted("pg_point_read") {
        point_read(&mut mode, &mut client);
    }
    if wanted("pg_insert") {
        single_insert(&mut mode, &mut client);
    }
    if wanted("pg_point_read_64_tasks") {
        loaded(&mut mode, &mut client);
    }
    if wanted("pg_fetchall") || wanted("pg_stream") {
        bulk(&mut mode, &mut client);
    }
    mode.finish();
}
