//! The SQLite database every SQLite bench uses, here and in `benches/peers`:
//! a file in a temporary directory, opened as sqlaio opens file databases
//! (WAL, `synchronous = NORMAL`, a busy timeout), with one table
//! `t(id INTEGER PRIMARY KEY, name TEXT NOT NULL)` of 30-character names.
//! Included with `#[path]`; the including crate names its rusqlite `rusqlite`
//! at its root.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::measure::name_for;
use crate::rusqlite::{self, OpenFlags};

pub const POINT_SQL: &str = "SELECT id, name FROM t WHERE id = ?1";
pub const INSERT_SQL: &str = "INSERT INTO t (name) VALUES (?1)";
pub const BULK_SQL: &str = "SELECT id, name FROM t";

/// A temporary database file with `rows` rows in `t`.
pub struct Database {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Database {
    pub fn create(rows: u64) -> Database {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bench.db");
        let mut conn = open_raw(&path);
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
            .expect("create table");
        let tx = conn.transaction().expect("begin");
        {
            let mut insert = tx
                .prepare("INSERT INTO t (id, name) VALUES (?1, ?2)")
                .expect("prepare insert");
            for id in 1..=rows {
                insert.execute((id as i64, name_for(id))).expect("insert");
            }
        }
        tx.commit().expect("commit");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .expect("checkpoint");
        Database { _dir: dir, path }
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    /// Empties `t` (between runs of a contender that inserts, untimed).
    pub fn empty(&self) {
        let conn = open_raw(&self.path);
        conn.execute_batch("DELETE FROM t; PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("empty table");
    }
}

/// Opens a raw connection the way sqlaio opens a file database.
pub fn open_raw(path: &Path) -> rusqlite::Connection {
    let flags = OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE;
    let conn = rusqlite::Connection::open_with_flags(path, flags).expect("open");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    pragmas(&conn).expect("pragmas");
    conn
}

/// WAL, `synchronous = NORMAL` and foreign keys, as sqlaio sets them.
pub fn pragmas(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    assert_eq!(mode, "wal");
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
}

/// The floor's point read, decoding both columns.
pub fn bare_read(conn: &rusqlite::Connection, id: i64) -> (i64, String) {
    let mut stmt = conn.prepare_cached(POINT_SQL).expect("prepare");
    stmt.query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("row")
}

/// The floor's single-row insert.
pub fn bare_insert(conn: &rusqlite::Connection, name: &str) {
    let mut stmt = conn.prepare_cached(INSERT_SQL).expect("prepare");
    stmt.execute([name]).expect("insert");
}

/// The floor's 10,000 inserts in one transaction.
pub fn bare_insert_tx(conn: &mut rusqlite::Connection, name: &str, count: u64) {
    let tx = conn.transaction().expect("begin");
    {
        let mut stmt = tx.prepare_cached(INSERT_SQL).expect("prepare");
        for _ in 0..count {
            stmt.execute([name]).expect("insert");
        }
    }
    tx.commit().expect("commit");
}

/// The floor's `fetchall`: every row decoded into a vector held at once,
/// then read. Returns a checksum.
pub fn bare_fetchall(conn: &rusqlite::Connection) -> usize {
    let mut stmt = conn.prepare_cached(BULK_SQL).expect("prepare");
    let rows: Vec<(i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    rows.iter()
        .map(|(id, name)| *id as usize + name.len())
        .sum()
}

/// The floor's streamed read: each row decoded and dropped in turn.
pub fn bare_stream(conn: &rusqlite::Connection) -> usize {
    let mut stmt = conn.prepare_cached(BULK_SQL).expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    let mut sum = 0;
    while let Some(row) = rows.next().expect("row") {
        let id: i64 = row.get(0).expect("id");
        let name: String = row.get(1).expect("name");
        sum += id as usize + name.len();
    }
    sum
}
