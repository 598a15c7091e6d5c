//! Reading 1,000,000 rows (`id INTEGER`, 30-character `name`) from SQLite:
//! the bare rusqlite call first, then sqlaio per strategy (scenario e).
//!
//! - `sqlite_fetchall`: every row held at once (`fetchall`; the floor
//!   collects `(i64, String)` tuples), then each row read; the one-call
//!   `Connection::fetch_all_as::<(i64, String)>` (`/fetch_all_as`), which
//!   holds the rows as the floor does; and with the `serde` feature
//!   `fetchall_as` (`/fetchall_as`), which does the same through serde.
//! - `sqlite_stream`: rows read one at a time and dropped (sqlaio's `Stream`
//!   of rows; the floor steps rusqlite's `Rows`).
//!
//! Besides time, the interleaved mode (`-- --interleaved`) reports the peak
//! heap memory of each run above the heap in use when the run started,
//! counted by a global allocator that wraps the system one. SQLite's own
//! page cache is allocated by its C code and not counted, for any contender.

#[path = "support/measure.rs"]
mod measure;
#[path = "support/sqlaio_side.rs"]
mod sqlaio_side;
#[path = "support/sqlite_db.rs"]
mod sqlite_db;

use futures::StreamExt;
use measure::{sync_ops, Counting, Mode, Run, Spec};
use sqlaio::rusqlite;
use sqlaio::{Connection, Row, Value};
use sqlite_db::{bare_fetchall, bare_stream, open_raw, Database, BULK_SQL};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Rows read by every run.
const ROWS: u64 = 1_000_000;

/// What a caller does with each row: read both columns, without copying.
fn consume(row: &Row) -> usize {
    let id: i64 = row.get(0).expect("id");
    let name = match row.get_value(1).expect("name") {
        Value::Text(text) => text.len(),
        other => panic!("name is {other:?}"),
    };
    id as usize + name
}

async fn sqlaio_fetchall(conn: &Connection) -> usize {
    let mut result = conn.execute(BULK_SQL, ()).await.expect("execute");
    let rows = result.fetchall().await.expect("fetchall");
    assert_eq!(rows.len() as u64, ROWS);
    rows.iter().map(consume).sum()
}

/// Every row held at once as the floor holds them, `(i64, String)`,
/// deserialized on the worker by `fetchall_as`.
#[cfg(feature = "serde")]
async fn sqlaio_fetchall_as(conn: &Connection) -> usize {
    let mut result = conn.execute(BULK_SQL, ()).await.expect("execute");
    let rows: Vec<(i64, String)> = result.fetchall_as().await.expect("fetchall_as");
    assert_eq!(rows.len() as u64, ROWS);
    rows.iter()
        .map(|(id, name)| *id as usize + name.len())
        .sum()
}

/// The same through the one-call `fetch_all_as` (tuples through `FromRow`,
/// decoded on the worker; no `serde` needed).
async fn sqlaio_fetch_all_as(conn: &Connection) -> usize {
    let rows: Vec<(i64, String)> = conn.fetch_all_as(BULK_SQL, ()).await.expect("fetch_all_as");
    assert_eq!(rows.len() as u64, ROWS);
    rows.iter()
        .map(|(id, name)| *id as usize + name.len())
        .sum()
}

async fn sqlaio_stream(conn: &Connection) -> usize {
    let mut result = conn.execute(BULK_SQL, ()).await.expect("execute");
    let mut sum = 0;
    while let Some(row) = result.next().await {
        sum += consume(&row.expect("row"));
    }
    sum
}

fn spec(group: &'static str) -> Spec {
    Spec::bulk("sqlite", group, ROWS)
}

fn main() {
    let mut mode = Mode::from_args();
    let db = Database::create(ROWS);
    let sides = sqlaio_side::sides();
    let opened: Vec<_> = sides.iter().map(|s| s.open(&db.url(), 1)).collect();
    let raw: rusqlite::Connection = open_raw(&db.path);

    // The same contenders, holding every row, then reading them one at a time.
    for (group, stream) in [("sqlite_fetchall", false), ("sqlite_stream", true)] {
        let raw = &raw;
        let mut contenders: Vec<(String, Run<'_>)> = vec![(
            "rusqlite".into(),
            Box::new(move |n, per_op| {
                sync_ops(n, per_op, || {
                    std::hint::black_box(if stream {
                        bare_stream(raw)
                    } else {
                        bare_fetchall(raw)
                    });
                })
            }),
        )];
        contenders.extend(sqlaio_side::each(
            &sides,
            &opened,
            "",
            move |conn| async move {
                if stream {
                    sqlaio_stream(&conn).await
                } else {
                    sqlaio_fetchall(&conn).await
                }
            },
        ));
        if !stream {
            contenders.extend(sqlaio_side::each(
                &sides,
                &opened,
                "/fetch_all_as",
                |conn| async move { sqlaio_fetch_all_as(&conn).await },
            ));
        }
        #[cfg(feature = "serde")]
        if !stream {
            contenders.extend(sqlaio_side::each(
                &sides,
                &opened,
                "/fetchall_as",
                |conn| async move { sqlaio_fetchall_as(&conn).await },
            ));
        }
        mode.measure(&spec(group), &mut contenders);
    }

    for (side, open) in sides.iter().zip(opened) {
        side.close(open);
    }
    mode.finish();
}
