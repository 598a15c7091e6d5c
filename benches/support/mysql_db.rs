//! The MySQL/MariaDB tables every MySQL bench uses, here and in
//! `benches/peers`: `t(id BIGINT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(64)
//! NOT NULL)` with 30-character names, under a name unique to the process so
//! that benches and tests sharing the server do not meet. Included with
//! `#[path]`; the including crate names the sync `mysql` crate `mysql` at
//! its root (`use sqlaio::mysql;`, the version sqlaio wraps).

#![allow(dead_code)]

use std::time::Duration;

use crate::measure::name_for;
use crate::mysql::prelude::Queryable;
use crate::mysql::{Conn, Opts, OptsBuilder, Statement, TxOpts};

/// Rows per multi-row `INSERT` when a table is filled.
const FILL_BATCH: u64 = 1000;

/// `MYSQL_URL`, defaulting to the local test server, as given (for the peers
/// that parse URLs of their own, such as sqlx).
pub fn base_url() -> String {
    std::env::var("MYSQL_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "mysql://root@127.0.0.1:3306/test".into())
}

/// `MYSQL_URL` for the `mysql` crate, sqlaio and mysql_async, with
/// `prefer_socket=false`: every contender talks plain TCP (the crates would
/// otherwise move a connection to `127.0.0.1` onto the server's Unix socket).
pub fn url() -> String {
    let url = base_url();
    if url.contains("prefer_socket=") {
        url
    } else if url.contains('?') {
        format!("{url}&prefer_socket=false")
    } else {
        format!("{url}?prefer_socket=false")
    }
}

/// A sync connection of the bare crate, or `None` (with a notice) when no
/// server answers.
pub fn connect() -> Option<Conn> {
    let opts = match Opts::from_url(&url()) {
        Ok(opts) => opts,
        Err(e) => {
            println!("MySQL benches skipped: MYSQL_URL does not parse: {e}");
            return None;
        }
    };
    let opts = OptsBuilder::from_opts(opts).tcp_connect_timeout(Some(Duration::from_secs(3)));
    match Conn::new(opts) {
        Ok(conn) => Some(conn),
        Err(e) => {
            println!("MySQL benches skipped: no server answers at MYSQL_URL ({e})");
            None
        }
    }
}

/// A table of `rows` rows, dropped with the value.
pub struct Table {
    pub name: String,
}

impl Table {
    /// Creates the table and fills it with multi-row `INSERT`s in one
    /// transaction.
    pub fn create(conn: &mut Conn, purpose: &str, rows: u64) -> Table {
        let name = format!("sqlaio_bench_{purpose}_{}", std::process::id());
        conn.query_drop(format!(
            "DROP TABLE IF EXISTS {name};
             CREATE TABLE {name} (id BIGINT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(64) NOT NULL)
                 ENGINE = InnoDB"
        ))
        .expect("create table");
        let mut tx = conn.start_transaction(TxOpts::default()).expect("begin");
        let mut id = 1;
        while id <= rows {
            let last = (id + FILL_BATCH - 1).min(rows);
            let values: Vec<String> = (id..=last)
                .map(|i| format!("({i}, '{}')", name_for(i)))
                .collect();
            tx.query_drop(format!(
                "INSERT INTO {name} (id, name) VALUES {}",
                values.join(",")
            ))
            .expect("fill table");
            id = last + 1;
        }
        tx.commit().expect("commit");
        conn.query_drop(format!("ANALYZE TABLE {name}"))
            .expect("analyze");
        Table { name }
    }

    pub fn point_sql(&self) -> String {
        format!("SELECT id, name FROM {} WHERE id = ?", self.name)
    }

    pub fn insert_sql(&self) -> String {
        format!("INSERT INTO {} (name) VALUES (?)", self.name)
    }

    pub fn bulk_sql(&self) -> String {
        format!("SELECT id, name FROM {}", self.name)
    }

    /// Empties the table (between runs of a contender that inserts, untimed).
    pub fn empty(&self) {
        let mut conn = connect().expect("connect");
        conn.query_drop(format!("TRUNCATE TABLE {}", self.name))
            .expect("empty table");
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // A new connection: the one that made the table may be in use elsewhere.
        if let Some(mut conn) = connect() {
            let _ = conn.query_drop(format!("DROP TABLE IF EXISTS {}", self.name));
        }
    }
}

/// The floor's point read through a statement prepared once.
pub fn bare_read(conn: &mut Conn, stmt: &Statement, id: i64) -> (i64, String) {
    conn.exec_first(stmt, (id,)).expect("read").expect("a row")
}

/// The floor's single-row autocommit insert.
pub fn bare_insert(conn: &mut Conn, stmt: &Statement, name: &str) {
    conn.exec_drop(stmt, (name,)).expect("insert");
}

/// The floor's `count` inserts in one transaction.
pub fn bare_insert_tx(conn: &mut Conn, stmt: &Statement, name: &str, count: u64) {
    let mut tx = conn.start_transaction(TxOpts::default()).expect("begin");
    for _ in 0..count {
        tx.exec_drop(stmt, (name,)).expect("insert");
    }
    tx.commit().expect("commit");
}

/// The floor's `fetchall`: every row decoded into a vector held at once,
/// then read. Returns a checksum.
pub fn bare_fetchall(conn: &mut Conn, stmt: &Statement) -> usize {
    let rows: Vec<(i64, String)> = conn.exec(stmt, ()).expect("query");
    rows.iter()
        .map(|(id, name)| *id as usize + name.len())
        .sum()
}

/// The floor's streamed read: each row decoded and dropped in turn.
pub fn bare_stream(conn: &mut Conn, stmt: &Statement) -> usize {
    let mut sum = 0;
    let mut result = conn.exec_iter(stmt, ()).expect("query");
    for row in result.by_ref() {
        let (id, name): (i64, String) = crate::mysql::from_row(row.expect("row"));
        sum += id as usize + name.len();
    }
    sum
}
