//! MySQL and MariaDB: the bare sync `mysql` crate first (the version sqlaio
//! wraps, statements prepared once), then sqlaio under `TokioStrategy`, then
//! each peer crate (sqlx, mysql_async), in the same run, on the same data and
//! SQL as the main crate's `benches/mysql.rs` (scenarios a to e of
//! `docs/benchmarks.md`). Every async contender is awaited from a tokio
//! current-thread runtime and from a task on a multi-thread runtime. Without
//! a server at `MYSQL_URL` the bench prints a notice and measures nothing;
//! `SQLAIO_BENCH_ONLY=a,c` measures only those scenarios.
//!
//! In scenario c, mysql_async's `exec_batch` (all the parameter sets in one
//! call, in a transaction) is measured beside sqlaio's `execute_many`
//! (`/exec_batch`); sqlx has no such call.

#[path = "../../support/measure.rs"]
mod measure;
#[path = "../../support/mysql_db.rs"]
mod mysql_db;
#[path = "../../support/sqlaio_side.rs"]
mod sqlaio_side;

use std::cell::Cell;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use measure::{
    multi_thread_runtime, name_for, sync_ops, time_loop, with_setup, Counting, Exec, Ids, Mode,
    Run, Spec,
};
use mysql::prelude::Queryable as _;
use mysql_async::prelude::Queryable as _;
use mysql_db::{bare_fetchall, bare_insert, bare_insert_tx, bare_read, bare_stream, Table};
use sqlaio::mysql;
use sqlaio::{Connection, CursorResult, Engine, Row, Value};
use sqlx::mysql::{MySqlConnection, MySqlPoolOptions, MySqlRow};
use sqlx::{Connection as _, Row as _};

#[global_allocator]
static ALLOC: Counting = Counting;

const POINT_ROWS: u64 = 10_000;
const BULK_ROWS: u64 = 1_000_000;
const TX_INSERTS: u64 = 10_000;
const MAX_ROWS: u64 = 200_000;
const TASKS: usize = 64;
const READS_PER_TASK: usize = 16;
const POOL: usize = 4;

/// One connection and one pool of each peer, opened on one executor.
#[derive(Clone)]
struct Peers {
    my_async: Arc<tokio::sync::Mutex<mysql_async::Conn>>,
    my_async_pool: mysql_async::Pool,
    sqlx: Arc<tokio::sync::Mutex<MySqlConnection>>,
    sqlx_pool: sqlx::MySqlPool,
}

impl Peers {
    fn open(exec: &Exec, pool: usize) -> Peers {
        exec.block_on(async {
            let opts = mysql_async::Opts::from_url(&mysql_db::url()).expect("mysql_async URL");
            let my_async = mysql_async::Conn::new(opts.clone())
                .await
                .expect("mysql_async");
            let constraints = mysql_async::PoolConstraints::new(pool, pool).expect("pool size");
            let my_async_pool = mysql_async::Pool::new(
                mysql_async::OptsBuilder::from_opts(opts)
                    .pool_opts(mysql_async::PoolOpts::default().with_constraints(constraints)),
            );
            let url = mysql_db::base_url();
            let sqlx = MySqlConnection::connect(&url).await.expect("sqlx");
            let sqlx_pool = MySqlPoolOptions::new()
                .max_connections(pool as u32)
                .min_connections(pool as u32)
                .connect(&url)
                .await
                .expect("sqlx pool");
            Peers {
                my_async: Arc::new(tokio::sync::Mutex::new(my_async)),
                my_async_pool,
                sqlx: Arc::new(tokio::sync::Mutex::new(sqlx)),
                sqlx_pool,
            }
        })
    }

    fn close(self, exec: &Exec) {
        exec.block_on(async {
            let conn = Arc::into_inner(self.my_async).expect("mysql_async connection in use");
            conn.into_inner().disconnect().await.expect("close");
            self.my_async_pool.disconnect().await.expect("close pool");
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

fn consume_sqlx(row: &MySqlRow) -> usize {
    row.get::<i64, _>(0) as usize + row.get::<&str, _>(1).len()
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

/// Empties `table` once `inserted` passes `MAX_ROWS`, untimed.
fn emptier<'a>(table: &'a Table, inserted: &'a Cell<u64>, per_run: u64) -> impl FnMut() + 'a {
    move || {
        if inserted.get() > MAX_ROWS {
            table.empty();
            inserted.set(0);
        }
        inserted.set(inserted.get() + per_run);
    }
}

/// Scenario a: point reads, one at a time, every read timed.
fn point_read(mode: &mut Mode, conn: &mut mysql::Conn, execs: &[(&str, Exec)]) {
    let table = Table::create(conn, "peer_point", POINT_ROWS);
    let sql: Arc<str> = table.point_sql().into();
    let sides = sqlaio_side::tokio_sides();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&mysql_db::url(), 1)).collect();
    let peers: Vec<Peers> = execs.iter().map(|(_, e)| Peers::open(e, 1)).collect();
    let stmt = conn.prep(&*sql).expect("prepare");
    let mut ids = Ids::new(0, POINT_ROWS);
    let mut list: Vec<(String, Run<'_>)> = vec![(
        "mysql".into(),
        Box::new(|n, per_op| {
            sync_ops(n, per_op, || {
                black_box(bare_read(conn, &stmt, ids.next_id()));
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
            format!("mysql_async/{label}"),
            exec,
            [p, sql],
            |n, per_op| {
                let mut conn = p.my_async.lock().await;
                let stmt = conn.prep(&*sql).await.expect("prepare");
                let mut ids = Ids::new(n, POINT_ROWS);
                time_loop!(n, per_op, {
                    let row: Option<(i64, String)> = conn
                        .exec_first(&stmt, (ids.next_id(),))
                        .await
                        .expect("read");
                    black_box(row.expect("a row"));
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
                        .bind(ids.next_id())
                        .fetch_one(&mut *conn)
                        .await
                        .expect("read");
                    black_box((row.get::<i64, _>(0), row.get::<String, _>(1)));
                })
            }
        );
    }
    let spec = Spec {
        rounds: 20,
        batch: 1000,
        latency: true,
        unit: "read",
        ..Spec::new("mysql", "a", "my_point_read")
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

/// Scenario b: one autocommit insert at a time.
fn single_insert(mode: &mut Mode, conn: &mut mysql::Conn, execs: &[(&str, Exec)]) {
    let table = Table::create(conn, "peer_insert", 0);
    let sql: Arc<str> = table.insert_sql().into();
    let sides = sqlaio_side::tokio_sides();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&mysql_db::url(), 1)).collect();
    let peers: Vec<Peers> = execs.iter().map(|(_, e)| Peers::open(e, 1)).collect();
    let stmt = conn.prep(&*sql).expect("prepare");
    let name: Arc<str> = name_for(1).into();
    let inserted = Cell::new(0);
    let mut list: Vec<(String, Run<'_>)> = vec![(
        "mysql".into(),
        Box::new(|n, per_op| sync_ops(n, per_op, || bare_insert(conn, &stmt, &name))),
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
            format!("mysql_async/{label}"),
            exec,
            [p, sql, name],
            |n, per_op| {
                let mut conn = p.my_async.lock().await;
                time_loop!(n, per_op, {
                    conn.exec_drop(&*sql, (&*name,)).await.expect("insert");
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
    let spec = Spec {
        rounds: 30,
        batch: 200,
        unit: "insert",
        measurement: Duration::from_secs(2),
        ..Spec::new("mysql", "b", "my_insert")
    };
    let mut list: Vec<(String, Run<'_>)> = list
        .into_iter()
        .map(|(label, run)| {
            (
                label,
                with_setup(emptier(&table, &inserted, spec.batch), run),
            )
        })
        .collect();
    mode.measure(&spec, &mut list);
    drop(list);
    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
    for ((_, exec), p) in execs.iter().zip(peers) {
        p.close(exec);
    }
}

/// Scenario c: 10,000 inserts in one transaction.
fn transaction_10k(mode: &mut Mode, conn: &mut mysql::Conn, execs: &[(&str, Exec)]) {
    let table = Table::create(conn, "peer_tx", 0);
    let sql: Arc<str> = table.insert_sql().into();
    let sides = sqlaio_side::tokio_sides();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&mysql_db::url(), 1)).collect();
    let peers: Vec<Peers> = execs.iter().map(|(_, e)| Peers::open(e, 1)).collect();
    let stmt = conn.prep(&*sql).expect("prepare");
    let name: Arc<str> = name_for(1).into();
    let inserted = Cell::new(0);
    let mut list: Vec<(String, Run<'_>)> = vec![(
        "mysql".into(),
        Box::new(|n, per_op| {
            sync_ops(n, per_op, || bare_insert_tx(conn, &stmt, &name, TX_INSERTS))
        }),
    )];
    list.extend(sqlaio_side::contenders(&sides, &opened, "/awaited", {
        let (sql, name) = (sql.clone(), name.clone());
        move |_, conn, n, per_op| {
            let (conn, sql, name) = (conn.clone(), sql.clone(), name.clone());
            Box::pin(async move {
                time_loop!(n, per_op, {
                    let tx = conn.begin().await.expect("begin");
                    for _ in 0..TX_INSERTS {
                        tx.execute(&*sql, (&*name,)).await.expect("insert");
                    }
                    tx.commit().await.expect("commit");
                })
            })
        }
    }));
    list.extend(sqlaio_side::contenders(&sides, &opened, "/execute_many", {
        let (sql, name) = (sql.clone(), name.clone());
        move |_, conn, n, per_op| {
            let (conn, sql, name) = (conn.clone(), sql.clone(), name.clone());
            Box::pin(async move {
                time_loop!(n, per_op, {
                    let sets = (0..TX_INSERTS).map(|_| (&*name,));
                    conn.execute_many(&*sql, sets).await.expect("execute_many");
                })
            })
        }
    }));
    for ((label, exec), p) in execs.iter().zip(&peers) {
        contender!(
            list,
            format!("mysql_async/{label}/awaited"),
            exec,
            [p, sql, name],
            |n, per_op| {
                let mut conn = p.my_async.lock().await;
                time_loop!(n, per_op, {
                    let mut tx = conn
                        .start_transaction(mysql_async::TxOpts::default())
                        .await
                        .expect("begin");
                    for _ in 0..TX_INSERTS {
                        tx.exec_drop(&*sql, (&*name,)).await.expect("insert");
                    }
                    tx.commit().await.expect("commit");
                })
            }
        );

        contender!(
            list,
            format!("mysql_async/{label}/exec_batch"),
            exec,
            [p, sql, name],
            |n, per_op| {
                let mut conn = p.my_async.lock().await;
                time_loop!(n, per_op, {
                    let mut tx = conn
                        .start_transaction(mysql_async::TxOpts::default())
                        .await
                        .expect("begin");
                    let sets = (0..TX_INSERTS).map(|_| (name.to_string(),));
                    tx.exec_batch(&*sql, sets).await.expect("exec_batch");
                    tx.commit().await.expect("commit");
                })
            }
        );

        contender!(
            list,
            format!("sqlx/{label}/awaited"),
            exec,
            [p, sql, name],
            |n, per_op| {
                let mut conn = p.sqlx.lock().await;
                time_loop!(n, per_op, {
                    let mut tx = conn.begin().await.expect("begin");
                    for _ in 0..TX_INSERTS {
                        sqlx::query(sqlx::AssertSqlSafe(&*sql))
                            .bind(&*name)
                            .execute(&mut *tx)
                            .await
                            .expect("insert");
                    }
                    tx.commit().await.expect("commit");
                })
            }
        );
    }
    let spec = Spec {
        rounds: 10,
        batch: 1,
        ops_per_unit: TX_INSERTS,
        unit: "insert",
        samples: 10,
        measurement: Duration::from_secs(5),
        ..Spec::new("mysql", "c", "my_tx_10k")
    };
    let mut list: Vec<(String, Run<'_>)> = list
        .into_iter()
        .map(|(label, run)| {
            (
                label,
                with_setup(emptier(&table, &inserted, TX_INSERTS), run),
            )
        })
        .collect();
    mode.measure(&spec, &mut list);
    drop(list);
    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
    for ((_, exec), p) in execs.iter().zip(peers) {
        p.close(exec);
    }
}

/// Scenario d: 64 tasks on a multi-thread runtime, 16 reads each, each read
/// through a pool of 4 connections.
fn loaded(mode: &mut Mode, conn: &mut mysql::Conn) {
    let table = Table::create(conn, "peer_loaded", POINT_ROWS);
    let sql: Arc<str> = table.point_sql().into();
    let stmt = conn.prep(&*sql).expect("prepare");
    let exec = Exec::TokioMultiTask(multi_thread_runtime());
    let Exec::TokioMultiTask(rt) = &exec else {
        unreachable!()
    };
    let p = Peers::open(&exec, POOL);
    let engine = rt.block_on(async {
        Engine::builder()
            .url(mysql_db::url())
            .strategy(sqlaio::TokioStrategy)
            .max_connections(POOL)
            .build()
            .expect("engine")
    });
    let mut ids = Ids::new(0, POINT_ROWS);
    let mut list: Vec<(String, Run<'_>)> = vec![(
        "mysql/one_thread".into(),
        Box::new(|n, per_op| {
            sync_ops(n, per_op, || {
                for _ in 0..TASKS * READS_PER_TASK {
                    black_box(bare_read(conn, &stmt, ids.next_id()));
                }
            })
        }),
    )];
    type Task = fn(Peers, Engine, Arc<str>, Ids) -> futures::future::BoxFuture<'static, ()>;
    let kinds: [(&str, Task); 4] = [
        ("sqlaio/tokio", |_, engine, sql, mut ids| {
            Box::pin(async move {
                for _ in 0..READS_PER_TASK {
                    let read = engine.execute(&*sql, (ids.next_id(),)).await;
                    black_box(first_row(read).await);
                }
            })
        }),
        ("sqlaio/tokio/connect", |_, engine, sql, mut ids| {
            Box::pin(async move {
                for _ in 0..READS_PER_TASK {
                    let conn = engine.connect().await.expect("connect");
                    black_box(sqlaio_read(&conn, &sql, ids.next_id()).await);
                }
            })
        }),
        ("mysql_async", |p, _, sql, mut ids| {
            Box::pin(async move {
                for _ in 0..READS_PER_TASK {
                    let mut conn = p.my_async_pool.get_conn().await.expect("get");
                    let row: Option<(i64, String)> = conn
                        .exec_first(&*sql, (ids.next_id(),))
                        .await
                        .expect("read");
                    black_box(row.expect("a row"));
                }
            })
        }),
        ("sqlx", |p, _, sql, mut ids| {
            Box::pin(async move {
                for _ in 0..READS_PER_TASK {
                    let row = sqlx::query(sqlx::AssertSqlSafe(&*sql))
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
                            rt.spawn(task(p.clone(), engine.clone(), sql.clone(), ids))
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
        "mysql",
        "my_point_read_64_tasks",
        (TASKS * READS_PER_TASK) as u64,
    );
    mode.measure(&spec, &mut list);
    drop(list);
    rt.block_on(engine.close()).expect("close engine");
    p.close(&exec);
}

/// Scenario e: 1,000,000 rows held at once, and streamed.
fn bulk(mode: &mut Mode, conn: &mut mysql::Conn, execs: &[(&str, Exec)]) {
    let table = Table::create(conn, "peer_bulk", BULK_ROWS);
    let sql: Arc<str> = table.bulk_sql().into();
    let stmt = conn.prep(&*sql).expect("prepare");
    let sides = sqlaio_side::tokio_sides();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&mysql_db::url(), 1)).collect();
    let peers: Vec<Peers> = execs.iter().map(|(_, e)| Peers::open(e, 1)).collect();
    let spec = |group| Spec::bulk("mysql", group, BULK_ROWS);

    {
        let (conn, stmt) = (&mut *conn, &stmt);
        let mut list: Vec<(String, Run<'_>)> = vec![(
            "mysql".into(),
            Box::new(|n, per_op| {
                sync_ops(n, per_op, || {
                    black_box(bare_fetchall(conn, stmt));
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
        list.extend(sqlaio_side::contenders(&sides, &opened, "/fetchall_as", {
            let sql = sql.clone();
            move |_, conn, n, per_op| {
                let (conn, sql) = (conn.clone(), sql.clone());
                Box::pin(async move {
                    time_loop!(n, per_op, {
                        let mut result = conn.execute(&*sql, ()).await.expect("execute");
                        let rows: Vec<(i64, String)> =
                            result.fetchall_as().await.expect("fetchall_as");
                        black_box(
                            rows.iter()
                                .map(|(id, name)| *id as usize + name.len())
                                .sum::<usize>(),
                        );
                    })
                })
            }
        }));
        for ((label, exec), p) in execs.iter().zip(&peers) {
            contender!(
                list,
                format!("mysql_async/{label}"),
                exec,
                [p, sql],
                |n, per_op| {
                    let mut conn = p.my_async.lock().await;
                    time_loop!(n, per_op, {
                        let rows: Vec<(i64, String)> = conn.exec(&*sql, ()).await.expect("rows");
                        black_box(
                            rows.iter()
                                .map(|(id, name)| *id as usize + name.len())
                                .sum::<usize>(),
                        );
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
        mode.measure(&spec("my_fetchall"), &mut list);
    }
    {
        let (conn, stmt) = (&mut *conn, &stmt);
        let mut list: Vec<(String, Run<'_>)> = vec![(
            "mysql".into(),
            Box::new(|n, per_op| {
                sync_ops(n, per_op, || {
                    black_box(bare_stream(conn, stmt));
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
                format!("mysql_async/{label}"),
                exec,
                [p, sql],
                |n, per_op| {
                    let mut conn = p.my_async.lock().await;
                    time_loop!(n, per_op, {
                        let mut rows = conn
                            .exec_stream::<(i64, String), _, _>(&*sql, ())
                            .await
                            .expect("query");
                        let mut sum = 0;
                        while let Some(row) = rows.next().await {
                            let (id, name) = row.expect("row");
                            sum += id as usize + name.len();
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
        mode.measure(&spec("my_stream"), &mut list);
    }
    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
    for ((_, exec), p) in execs.iter().zip(peers) {
        p.close(exec);
    }
    drop(table);
}

fn main() {
    let mut mode = Mode::from_args();
    let Some(mut conn) = mysql_db::connect() else {
        return;
    };
    let only = std::env::var("SQLAIO_BENCH_ONLY").unwrap_or_default();
    let wanted = |s: &str| only.is_empty() || only.split(',').any(|o| o.trim() == s);
    let execs = execs();
    if wanted("a") {
        point_read(&mut mode, &mut conn, &execs);
    }
    if wanted("b") {
        single_insert(&mut mode, &mut conn, &execs);
    }
    if wanted("c") {
        transaction_10k(&mut mode, &mut conn, &execs);
    }
    if wanted("d") {
        loaded(&mut mode, &mut conn);
    }
    if wanted("e") {
        bulk(&mut mode, &mut conn, &execs);
    }
    mode.finish();
}
