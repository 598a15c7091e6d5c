//! SQLite writes: the bare rusqlite call first, then sqlaio per strategy.
//!
//! - `sqlite_insert` (scenario b): one autocommit `INSERT` of a 30-character
//!   name at a time, each awaited before the next; `TokioStrategy` from a
//!   task on a multi-thread runtime is also measured under the other
//!   waiting policies (`/wait_sleep`, `/wait_spin_10us`).
//! - `sqlite_tx_10k` (scenario c): 10,000 of the same inserts inside one
//!   transaction, awaited one by one (`begin`, 10,000 `execute`, `commit`) and
//!   through one `execute_many` (which runs in its own transaction); and, as
//!   the peers' `/one_call` does with their closure APIs, all of it in one
//!   `run_in_thread` closure (`/one_call`).
//!
//! The database is a file in a temporary directory in WAL mode with
//! `synchronous = NORMAL`, as sqlaio opens it; the table is emptied between
//! runs, untimed. Run with
//! `cargo bench --bench sqlite_write --all-features` (criterion) or
//! `... -- --interleaved` (every contender in turns, ratios per round).

#[path = "support/measure.rs"]
mod measure;
#[path = "support/sqlaio_side.rs"]
mod sqlaio_side;
#[path = "support/sqlite_db.rs"]
mod sqlite_db;

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use measure::{async_ops, name_for, sync_ops, with_setup, Mode, Run, Spec};
use sqlaio::rusqlite;
use sqlite_db::{bare_insert, bare_insert_tx, open_raw, Database, INSERT_SQL};

/// Inserts in one transaction (scenario c).
const TX_INSERTS: u64 = 10_000;
/// Rows the table may reach before it is emptied.
const MAX_ROWS: u64 = 200_000;

/// Empties the table once `inserted` passes `MAX_ROWS`, so every run inserts
/// into a table of about the same size.
fn emptier<'a>(db: &'a Database, inserted: &'a Cell<u64>, per_run: u64) -> impl FnMut() + 'a {
    move || {
        if inserted.get() > MAX_ROWS {
            db.empty();
            inserted.set(0);
        }
        inserted.set(inserted.get() + per_run);
    }
}

fn single_insert(mode: &mut Mode) {
    let db = Database::create(0);
    let sides = sqlaio_side::sides_with_wait_policies();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&db.url(), 1)).collect();
    let name = name_for(1);
    let spec = Spec {
        rounds: 40,
        batch: 200,
        unit: "insert",
        measurement: Duration::from_secs(2),
        ..Spec::new("sqlite", "b", "sqlite_insert")
    };
    let inserted = Cell::new(0);
    let raw = open_raw(&db.path);
    let mut contenders: Vec<(String, Run<'_>)> = vec![(
        "rusqlite".into(),
        Box::new(|n, per_op| sync_ops(n, per_op, || bare_insert(&raw, &name))),
    )];
    contenders.extend(sqlaio_side::contenders(
        &sides,
        &opened,
        "",
        |_, conn, n, per_op| {
            let (conn, name) = (conn.clone(), name_for(1));
            Box::pin(async move {
                async_ops(n, per_op, || async {
                    conn.execute(INSERT_SQL, (name.as_str(),))
                        .await
                        .expect("insert");
                })
                .await
            })
        },
    ));
    let mut contenders: Vec<(String, Run<'_>)> = contenders
        .into_iter()
        .map(|(name, run)| (name, with_setup(emptier(&db, &inserted, 200), run)))
        .collect();
    mode.measure(&spec, &mut contenders);
    drop(contenders);
    drop(raw);
    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
}

fn transaction_10k(mode: &mut Mode) {
    let db = Database::create(0);
    let sides = sqlaio_side::sides();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&db.url(), 1)).collect();
    let spec = Spec {
        rounds: 15,
        batch: 1,
        ops_per_unit: TX_INSERTS,
        unit: "insert",
        samples: 10,
        measurement: Duration::from_secs(3),
        ..Spec::new("sqlite", "c", "sqlite_tx_10k")
    };
    let inserted = Cell::new(0);
    let name = name_for(1);
    let mut raw = open_raw(&db.path);
    let raw: &mut rusqlite::Connection = &mut raw;
    let mut contenders: Vec<(String, Run<'_>)> = vec![(
        "rusqlite".into(),
        Box::new(|n, per_op| sync_ops(n, per_op, || bare_insert_tx(raw, &name, TX_INSERTS))),
    )];
    contenders.extend(sqlaio_side::contenders(
        &sides,
        &opened,
        "/awaited",
        |_, conn, n, per_op| {
            let (conn, name) = (conn.clone(), name_for(1));
            Box::pin(async move {
                async_ops(n, per_op, || async {
                    let tx = conn.begin().await.expect("begin");
                    for _ in 0..TX_INSERTS {
                        tx.execute(INSERT_SQL, (name.as_str(),))
                            .await
                            .expect("insert");
                    }
                    tx.commit().await.expect("commit");
                })
                .await
            })
        },
    ));
    let shared_name: Arc<str> = name_for(1).into();
    let name = shared_name.clone();
    contenders.extend(sqlaio_side::each(
        &sides,
        &opened,
        "/execute_many",
        move |conn| {
            let name = name.clone();
            async move {
                let sets = (0..TX_INSERTS).map(|_| (&*name,));
                conn.execute_many(INSERT_SQL, sets)
                    .await
                    .expect("execute_many");
            }
        },
    ));
    // What the peers' `/one_call` does with their closure APIs: the whole
    // transaction in one closure on the connection's thread.
    let name = shared_name;
    contenders.extend(sqlaio_side::each(
        &sides,
        &opened,
        "/one_call",
        move |conn| {
            let name = name.clone();
            async move {
                conn.run_in_thread(move |raw: &mut rusqlite::Connection| {
                    bare_insert_tx(raw, &name, TX_INSERTS);
                    Ok::<_, sqlaio::Error>(())
                })
                .await
                .expect("one_call");
            }
        },
    ));
    let mut contenders: Vec<(String, Run<'_>)> = contenders
        .into_iter()
        .map(|(name, run)| (name, with_setup(emptier(&db, &inserted, TX_INSERTS), run)))
        .collect();
    mode.measure(&spec, &mut contenders);
    drop(contenders);
    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
}

fn main() {
    let mut mode = Mode::from_args();
    single_insert(&mut mode);
    transaction_10k(&mut mode);
    mode.finish();
}
