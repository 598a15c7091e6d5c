//! PostgreSQL: the bare sync `postgres::Client` first, then sqlaio under
//! `TokioStrategy`, then each peer crate, in the same run, on the same data
//! and SQL as the main crate's `benches/postgres.rs` (scenarios a, b, d and e of
//! `docs/benchmarks.md`). Every async contender is awaited from a tokio
//! current-thread runtime and from a task on a multi-thread runtime. Without
//! a server at `DATABASE_URL` the bench prints a notice and measures nothing.
//! Scenario b (`pg_insert`) inserts, in sessions with `synchronous_commit`
//! off, into a table emptied between runs, untimed. A further argument measures only the groups whose names contain
//! it (`-- --interleaved pg_insert`).

#[path = "../../support/measure.rs"]
mod measure;
#[path = "../../support/pg_db.rs"]
mod pg_db;
#[path = "../../support/sqlaio_side.rs"]
mod sqlaio_side;

extern crate postgres;

use std::cell::Cell;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use measure::{
    multi_thread_runtime, name_for, sync_ops, time_loop, with_setup, Counting, Exec, Ids, Mode,
    Run, Spec,
};
use pg_db::{bare_fetchall, bare_insert, bare_read, bare_stream, Table};
use sqlaio::{Connection, CursorResult, Engine, Row, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection as _, PgConnection, Row as _};

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

/// One client (or `pool` of them) of each peer, opened on one executor.
#[derive(Clone)]
struct Peers {
    tokio_postgres: Vec<Arc<tokio_postgres::Client>>,
    deadpool: deadpool_postgres::Pool,
    sqlx: Arc<tokio::sync::Mutex<PgConnection>>,
    sqlx_pool: sqlx::PgPool,
}

impl Peers {
    fn open(exec: &Exec, pool: usize) -> Peers {
        Peers::open_at(exec, pool, pg_db::url())
    }

    /// [`Peers::open`] on the server and session options of `url`.
    fn open_at(exec: &Exec, pool: usize, url: String) -> Peers {
        exec.block_on(async {
            let mut tokio_postgres = Vec::new();
            for _ in 0..pool {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .expect("tokio-postgres");
                tokio::spawn(connection);
                tokio_postgres.push(Arc::new(client));
            }
            let config: tokio_postgres::Config = url.parse().expect("config");
            let manager = deadpool_postgres::Manager::from_config(
                config,
                tokio_postgres::NoTls,
                deadpool_postgres::ManagerConfig {
                    recycling_method: deadpool_postgres::RecyclingMethod::Fast,
                },
            );
            let deadpool = deadpool_postgres::Pool::builder(manager)
                .max_size(pool)
                .build()
                .expect("deadpool-postgres");
            let sqlx = PgConnection::connect(&url).await.expect("sqlx");
            let sqlx_pool = PgPoolOptions::new()
                .max_connections(pool as u32)
                .min_connections(pool as u32)
                .connect(&url)
                .await
                .expect("sqlx pool");
            Peers {
                tokio_postgres,
                deadpool,
                sqlx: Arc::new(tokio::sync::Mutex::new(sqlx)),
                sqlx_pool,
            }
        })
    }

    fn close(self, exec: &Exec) {
        exec.block_on(async {
            drop(self.tokio_postgres);
            self.deadpool.close();
            let conn = Arc::into_inner(self.sqlx).expect("sqlx connection in use");
            conn.into_inner().close().await.expect("close");
            self.sqlx_pool.close().await;
        });
    }
}

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

fn execs() -> Vec<(&'static str, Exec)> {
    vec![
        ("current_thread", Exec::tokio_current()),
        ("multi_thread_task", Exec::tokio_multi_task()),
    ]
}

fn consume(row: &Row) -> usize {
    let id: i64 = row.get(0).expect("id");
    let name = match row.get_value(1).expect("name") {
        Value::Text(text) => text.len(),
        other => panic!("name is {other:?}"),
    };
    id as usize + name
}

fn consume_pg(row: &tokio_postgres::Row) -> usize {
    row.get::<_, i32>(0) as usize + row.get::<_, &str>(1).len()
}

fn consume_sqlx(row: &sqlx::postgres::PgRow) -> usize {
    row.get::<i32, _>(0) as usize + row.get::<&str, _>(1).len()
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

/// Scenario a: point reads, one at a time, every read timed.
fn point_read(mode: &mut Mode, client: &mut postgres::Client, execs: &[(&str, Exec)]) {
    let table = Table::create(client, "peer_point", POINT_ROWS);
    let sql: Arc<str> = table.point_sql().into();
    let sides = sqlaio_side::tokio_sides();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&pg_db::url(), 1)).collect();
    let peers: Vec<Peers> = execs.iter().map(|(_, e)| Peers::open(e, 1)).collect();
    let stmt = client.prepare(&sql).expect("prepare");
    let mut ids = Ids::new(0, POINT_ROWS);
    let mut list: Vec<(String, Run<'_>)> = vec![(
        "postgres".into(),
        Box::new(|n, per_op| {
            sync_ops(n, per_op, || {
                black_box(bare_read(client, &stmt, ids.next_id()));
            })
        }),
    )];
    list.extend(sqlaio_side::contenders(&sides, &opened, "", {
        let sql = sql.clone();
        move |_, conn, n, per_op| {
            let (conn, sql) = (conn.clone(), sql.clone());
            Box::pin(async move {
                let mut ids = Ids::new(n, POINT_ROWS);
                time_loop!(n, per_op, {
                    black_box(sqlaio_read(&conn, &sql, ids.next_id()).await);
                })
            })
        }
    }));
    for ((label, exec), p) in execs.iter().zip(&peers) {
        contender!(
            list,
            format!("tokio-postgres/{label}"),
            exec,
            [p, sql],
            |n, per_op| {
                let client = &p.tokio_postgres[0];
                let stmt = client.prepare(&sql).await.expect("prepare");
                let mut ids = Ids::new(n, POINT_ROWS);
                time_loop!(n, per_op, {
                    let id = ids.next_id() as i32;
                    let row = client.query_one(&stmt, &[&id]).await.expect("read");
                    black_box((row.get::<_, i32>(0), row.get::<_, String>(1)));
                })
            }
        );

        contender!(
            list,
            format!("deadpool-postgres/{label}"),
            exec,
            [p, sql],
            |n, per_op| {
                let mut ids = Ids::new(n, POINT_ROWS);
                time_loop!(n, per_op, {
                    let id = ids.next_id() as i32;
                    let client = p.deadpool.get().await.expect("get");
                    let stmt = client.prepare_cached(&sql).await.expect("prepare");
                    let row = client.query_one(&stmt, &[&id]).await.expect("read");
                    black_box((row.get::<_, i32>(0), row.get::<_, String>(1)));
                })
            }
        );

        contender!(
            list,
            format!("sqlx/{label}"),
            exec,
            [p, sql],
            |n, per_op| {
                let mut conn = p.sqlx.lock().await;
                let mut ids = Ids::new(n, POINT_ROWS);
                time_loop!(n, per_op, {
                    let row = sqlx::query(sqlx::AssertSqlSafe(&*sql))
                        .bind(ids.next_id() as i32)
                        .fetch_one(&mut *conn)
                        .await
                        .expect("read");
                    black_box((row.get::<i32, _>(0), row.get::<String, _>(1)));
                })
            }
        );
    }
    let spec = Spec {
        rounds: 20,
        batch: 1000,
        latency: true,
        unit: "read",
        ..Spec::new("postgres", "a", "pg_point_read")
    };
    mode.measure(&spec, &mut list);
    drop(list);
    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
    for ((_, exec), p) in execs.iter().zip(peers) {
        p.close(exec);
    }
}

/// Scenario b: autocommit inserts, one at a time.
fn single_insert(mode: &mut Mode, client: &mut postgres::Client, execs: &[(&str, Exec)]) {
    let table = Table::for_inserts(client, "peer_insert");
    let sql: Arc<str> = table.insert_sql().into();
    let sides = sqlaio_side::tokio_sides();
    let url = pg_db::insert_url();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&url, 1)).collect();
    let peers: Vec<Peers> = execs
        .iter()
        .map(|(_, e)| Peers::open_at(e, 1, url.clone()))
        .collect();
    pg_db::synchronous_commit_off(client, true);
    let stmt = client.prepare(&sql).expect("prepare");
    let name: Arc<str> = name_for(1).into();
    let mut list: Vec<(String, Run<'_>)> = vec![(
        "postgres".into(),
        Box::new(|n, per_op| sync_ops(n, per_op, || bare_insert(client, &stmt, &name))),
    )];
    list.extend(sqlaio_side::contenders(&sides, &opened, "", {
        let (sql, name) = (sql.clone(), name.clone());
        move |_, conn, n, per_op| {
            let (conn, sql, name) = (conn.clone(), sql.clone(), name.clone());
            Box::pin(async move {
                time_loop!(n, per_op, {
                    conn.execute(&*sql, (&*name,)).await.expect("insert");
                })
            })
        }
    }));
    for ((label, exec), p) in execs.iter().zip(&peers) {
        contender!(
            list,
            format!("tokio-postgres/{label}"),
            exec,
            [p, sql, name],
            |n, per_op| {
                let client = &p.tokio_postgres[0];
                let stmt = client.prepare(&sql).await.expect("prepare");
                time_loop!(n, per_op, {
                    client.execute(&stmt, &[&&*name]).await.expect("insert");
                })
            }
        );

        contender!(
            list,
            format!("deadpool-postgres/{label}"),
            exec,
            [p, sql, name],
            |n, per_op| {
                time_loop!(n, per_op, {
                    let client = p.deadpool.get().await.expect("get");
                    let stmt = client.prepare_cached(&sql).await.expect("prepare");
                    client.execute(&stmt, &[&&*name]).await.expect("insert");
                })
            }
        );

        contender!(
            list,
            format!("sqlx/{label}"),
            exec,
            [p, sql, name],
            |n, per_op| {
                let mut conn = p.sqlx.lock().await;
                time_loop!(n, per_op, {
                    sqlx::query(sqlx::AssertSqlSafe(&*sql))
                        .bind(&*name)
                        .execute(&mut *conn)
                        .await
                        .expect("insert");
                })
            }
        );
    }
    let inserted = Cell::new(0);
    let (table, inserted) = (&table, &inserted);
    let mut list: Vec<(String, Run<'_>)> = list
        .into_iter()
        .map(|(label, run)| {
            let empty = move || {
                if inserted.get() > MAX_ROWS {
                    table.empty();
                    inserted.set(0);
                }
                inserted.set(inserted.get() + 200);
            };
            (label, with_setup(empty, run))
        })
        .collect();
    let spec = Spec {
        rounds: 30,
        batch: 200,
        unit: "insert",
        measurement: Duration::from_secs(2),
        ..Spec::new("postgres", "b", "pg_insert")
    };
    mode.measure(&spec, &mut list);
    drop(list);
    pg_db::synchronous_commit_off(client, false);
    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
    for ((_, exec), p) in execs.iter().zip(peers) {
        p.close(exec);
    }
}

/// Scenario d: 64 tasks on a multi-thread runtime, 16 reads each, over 4
/// connections. tokio-postgres has no pool: task `i` uses client `i % 4`.
fn loaded(mode: &mut Mode, client: &mut postgres::Client) {
    let table = Table::create(client, "peer_loaded", POINT_ROWS);
    let sql: Arc<str> = table.point_sql().into();
    let stmt = client.prepare(&sql).expect("prepare");
    let exec = Exec::TokioMultiTask(multi_thread_runtime());
    let Exec::TokioMultiTask(rt) = &exec else {
        unreachable!()
    };
    let p = Peers::open(&exec, POOL);
    let engine = rt.block_on(async {
        Engine::builder()
            .url(pg_db::url())
            .strategy(sqlaio::TokioStrategy)
            .max_connections(POOL)
            .build()
            .expect("engine")
    });
    let mut ids = Ids::new(0, POINT_ROWS);
    let mut list: Vec<(String, Run<'_>)> = vec![(
        "postgres/one_thread".into(),
        Box::new(|n, per_op| {
            sync_ops(n, per_op, || {
                for _ in 0..TASKS * READS_PER_TASK {
                    black_box(bare_read(client, &stmt, ids.next_id()));
                }
            })
        }),
    )];
    type Task = fn(Peers, Engine, Arc<str>, Ids, usize) -> futures::future::BoxFuture<'static, ()>;
    let kinds: [(&str, Task); 5] = [
        ("sqlaio/tokio", |_, engine, sql, mut ids, _| {
            Box::pin(async move {
                for _ in 0..READS_PER_TASK {
                    let read = engine.execute(&*sql, (ids.next_id(),)).await;
                    black_box(first_row(read).await);
                }
            })
        }),
        ("sqlaio/tokio/connect", |_, engine, sql, mut ids, _| {
            Box::pin(async move {
                for _ in 0..READS_PER_TASK {
                    let conn = engine.connect().await.expect("connect");
                    black_box(sqlaio_read(&conn, &sql, ids.next_id()).await);
                }
            })
        }),
        ("tokio-postgres", |p, _, sql, mut ids, task| {
            Box::pin(async move {
                let client = &p.tokio_postgres[task % POOL];
                let stmt = client.prepare(&sql).await.expect("prepare");
                for _ in 0..READS_PER_TASK {
                    let id = ids.next_id() as i32;
                    let row = client.query_one(&stmt, &[&id]).await.expect("read");
                    black_box((row.get::<_, i32>(0), row.get::<_, String>(1)));
                }
            })
        }),
        ("deadpool-postgres", |p, _, sql, mut ids, _| {
            Box::pin(async move {
                for _ in 0..READS_PER_TASK {
                    let id = ids.next_id() as i32;
                    let client = p.deadpool.get().await.expect("get");
                    let stmt = client.prepare_cached(&sql).await.expect("prepare");
                    let row = client.query_one(&stmt, &[&id]).await.expect("read");
                    black_box((row.get::<_, i32>(0), row.get::<_, String>(1)));
                }
            })
        }),
        ("sqlx", |p, _, sql, mut ids, _| {
            Box::pin(async move {
                for _ in 0..READS_PER_TASK {
                    let row = sqlx::query(sqlx::AssertSqlSafe(&*sql))
                        .bind(ids.next_id() as i32)
                        .fetch_one(&p.sqlx_pool)
                        .await
                        .expect("read");
                    black_box((row.get::<i32, _>(0), row.get::<String, _>(1)));
                }
            })
        }),
    ];
    for (label, task) in kinds {
        let (p, engine, sql) = (p.clone(), engine.clone(), sql.clone());
        let mut round = 0;
        list.push((
            label.into(),
            Box::new(move |n, per_op| {
                sync_ops(n, per_op, || {
                    round += 1;
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|t| {
                            let ids = Ids::new(round * 7 + t as u64 * 131, POINT_ROWS);
                            rt.spawn(task(p.clone(), engine.clone(), sql.clone(), ids, t))
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
        "postgres",
        "pg_point_read_64_tasks",
        (TASKS * READS_PER_TASK) as u64,
    );
    mode.measure(&spec, &mut list);
    drop(list);
    rt.block_on(engine.close()).expect("close engine");
    p.close(&exec);
}

/// Scenario e: 1,000,000 rows held at once, and streamed.
fn bulk(mode: &mut Mode, client: &mut postgres::Client, execs: &[(&str, Exec)]) {
    let table = Table::create(client, "peer_bulk", BULK_ROWS);
    let sql: Arc<str> = table.bulk_sql().into();
    let sides = sqlaio_side::tokio_sides();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&pg_db::url(), 1)).collect();
    let peers: Vec<Peers> = execs.iter().map(|(_, e)| Peers::open(e, 1)).collect();
    let spec = |group| Spec::bulk("postgres", group, BULK_ROWS);

    {
        let client = &mut *client;
        let mut list: Vec<(String, Run<'_>)> = vec![(
            "postgres".into(),
            Box::new(|n, per_op| {
                sync_ops(n, per_op, || {
                    black_box(bare_fetchall(client, &sql));
                })
            }),
        )];
        list.extend(sqlaio_side::contenders(&sides, &opened, "", {
            let sql = sql.clone();
            move |_, conn, n, per_op| {
                let (conn, sql) = (conn.clone(), sql.clone());
                Box::pin(async move {
                    time_loop!(n, per_op, {
                        let mut result = conn.execute(&*sql, ()).await.expect("execute");
                        let rows = result.fetchall().await.expect("fetchall");
                        black_box(rows.iter().map(consume).sum::<usize>());
                    })
                })
            }
        }));
        for ((label, exec), p) in execs.iter().zip(&peers) {
            contender!(
                list,
                format!("tokio-postgres/{label}"),
                exec,
                [p, sql],
                |n, per_op| {
                    time_loop!(n, per_op, {
                        let rows = p.tokio_postgres[0].query(&*sql, &[]).await.expect("rows");
                        black_box(rows.iter().map(consume_pg).sum::<usize>());
                    })
                }
            );

            contender!(
                list,
                format!("sqlx/{label}"),
                exec,
                [p, sql],
                |n, per_op| {
                    let mut conn = p.sqlx.lock().await;
                    time_loop!(n, per_op, {
                        let rows = sqlx::query(sqlx::AssertSqlSafe(&*sql))
                            .fetch_all(&mut *conn)
                            .await
                            .expect("rows");
                        black_box(rows.iter().map(consume_sqlx).sum::<usize>());
                    })
                }
            );
        }
        mode.measure(&spec("pg_fetchall"), &mut list);
    }
    {
        let client = &mut *client;
        let mut list: Vec<(String, Run<'_>)> = vec![(
            "postgres".into(),
            Box::new(|n, per_op| {
                sync_ops(n, per_op, || {
                    black_box(bare_stream(client, &sql));
                })
            }),
        )];
        list.extend(sqlaio_side::contenders(&sides, &opened, "", {
            let sql = sql.clone();
            move |_, conn, n, per_op| {
                let (conn, sql) = (conn.clone(), sql.clone());
                Box::pin(async move {
                    time_loop!(n, per_op, {
                        let mut result = conn.execute(&*sql, ()).await.expect("execute");
                        let mut sum = 0;
                        while let Some(row) = result.next().await {
                            sum += consume(&row.expect("row"));
                        }
                        black_box(sum);
                    })
                })
            }
        }));
        for ((label, exec), p) in execs.iter().zip(&peers) {
            contender!(
                list,
                format!("tokio-postgres/{label}"),
                exec,
                [p, sql],
                |n, per_op| {
                    time_loop!(n, per_op, {
                        let rows = p.tokio_postgres[0]
                            .query_raw(&*sql, std::iter::empty::<i32>())
                            .await
                            .expect("query");
                        let mut rows = std::pin::pin!(rows);
                        let mut sum = 0;
                        while let Some(row) = rows.try_next().await.expect("row") {
                            sum += consume_pg(&row);
                        }
                        black_box(sum);
                    })
                }
            );

            contender!(
                list,
                format!("sqlx/{label}"),
                exec,
                [p, sql],
                |n, per_op| {
                    let mut conn = p.sqlx.lock().await;
                    time_loop!(n, per_op, {
                        let mut rows = sqlx::query(sqlx::AssertSqlSafe(&*sql)).fetch(&mut *conn);
                        let mut sum = 0;
                        while let Some(row) = rows.next().await {
                            sum += consume_sqlx(&row.expect("row"));
                        }
                        black_box(sum);
                    })
                }
            );
        }
        mode.measure(&spec("pg_stream"), &mut list);
    }
    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
    for ((_, exec), p) in execs.iter().zip(peers) {
        p.close(exec);
    }
}

fn main() {
    let mut mode = Mode::from_args();
    let Some(mut client) = pg_db::connect() else {
        return;
    };
    let execs = execs();
    if wanted("pg_point_read") {
        point_read(&mut mode, &mut client, &execs);
    }
    if wanted("pg_insert") {
        single_insert(&mut mode, &mut client, &execs);
    }
    if wanted("pg_point_read_64_tasks") {
        loaded(&mut mode, &mut client);
    }
    if wanted("pg_fetchall") || wanted("pg_stream") {
        bulk(&mut mode, &mut client, &execs);
    }
    mode.finish();
}
