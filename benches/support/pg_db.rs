//! The PostgreSQL tables every PostgreSQL bench uses, here and in
//! `benches/peers`: `t(id INTEGER PRIMARY KEY, name TEXT NOT NULL)` with
//! 30-character names, under a name unique to the process so that benches
//! and tests sharing the server do not meet. Included with `#[path]`; the
//! including crate names the sync client `postgres` at its root.

#![allow(dead_code)]

use std::str::FromStr;
use std::time::Duration;

use crate::postgres::{Client, Config, NoTls};

/// `DATABASE_URL`, defaulting to the local test server, with TLS off so every
/// contender talks plain TCP.
pub fn url() -> String {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into());
    if url.contains("sslmode=") {
        url
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}

/// [`url`] for scenario b: sessions with `synchronous_commit` off, so that
/// an insert's time is the client's and the server's work rather than the
/// flush of the log to disk (as SQLite's `synchronous = NORMAL` in WAL mode
/// does not flush at each commit either).
pub fn insert_url() -> String {
    let url = url();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20synchronous_commit%3Doff")
}

/// Turns `synchronous_commit` off (`true`) or back to its default on the
/// floor's client, which serves every scenario.
pub fn synchronous_commit_off(client: &mut Client, off: bool) {
    let sql = if off {
        "SET synchronous_commit = off"
    } else {
        "RESET synchronous_commit"
    };
    client.batch_execute(sql).expect("synchronous_commit");
}

/// A sync client, or `None` (with a notice) when no server answers.
pub fn connect() -> Option<Client> {
    let url = url();
    let mut config = match Config::from_str(&url) {
        Ok(config) => config,
        Err(e) => {
            println!("PostgreSQL benches skipped: DATABASE_URL does not parse: {e}");
            return None;
        }
    };
    config.connect_timeout(Duration::from_secs(3));
    match config.connect(NoTls) {
        Ok(client) => Some(client),
        Err(e) => {
            println!("PostgreSQL benches skipped: no server answers at DATABASE_URL ({e})");
            None
        }
    }
}

/// A table of `rows` rows, dropped with the value.
pub struct Table {
    pub name: String,
    url: String,
}

impl Table {
    pub fn create(client: &mut Client, purpose: &str, rows: u64) -> Table {
        let name = format!("sqlaio_bench_{purpose}_{}", std::process::id());
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {name};
                 CREATE TABLE {name} (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
                 INSERT INTO {name} SELECT g, 'customer-' || lpad(g::text, 21, '0')
                     FROM generate_series(1, {rows}) g;
                 ANALYZE {name};"
            ))
            .expect("create table");
        Table { name, url: url() }
    }

    pub fn point_sql(&self) -> String {
        format!("SELECT id, name FROM {} WHERE id = $1", self.name)
    }

    pub fn bulk_sql(&self) -> String {
        format!("SELECT id, name FROM {}", self.name)
    }

    /// An empty table for scenario b, whose ids come from an identity column.
    pub fn for_inserts(client: &mut Client, purpose: &str) -> Table {
        let name = format!("sqlaio_bench_{purpose}_{}", std::process::id());
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {name};
                 CREATE TABLE {name} (
                     id INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                     name TEXT NOT NULL
                 );"
            ))
            .expect("create table");
        Table { name, url: url() }
    }

    pub fn insert_sql(&self) -> String {
        format!("INSERT INTO {} (name) VALUES ($1)", self.name)
    }

    /// Empties the table from a client of its own (untimed, between runs).
    pub fn empty(&self) {
        let mut client = Client::connect(&self.url, NoTls).expect("connect");
        client
            .batch_execute(&format!("TRUNCATE {}", self.name))
            .expect("truncate");
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // A new client: the one that made the table may be in use elsewhere.
        if let Ok(mut client) = crate::postgres::Client::connect(&self.url, NoTls) {
            let _ = client.batch_execute(&format!("DROP TABLE IF EXISTS {}", self.name));
        }
    }
}

/// The floor's point read through a prepared statement.
pub fn bare_read(client: &mut Client, stmt: &crate::postgres::Statement, id: i64) -> (i32, String) {
    let row = client.query_one(stmt, &[&(id as i32)]).expect("row");
    (row.get(0), row.get(1))
}

/// The floor's autocommit insert through a prepared statement.
pub fn bare_insert(client: &mut Client, stmt: &crate::postgres::Statement, name: &str) {
    let inserted = client.execute(stmt, &[&name]).expect("insert");
    assert_eq!(inserted, 1);
}

/// The floor's `fetchall`: `query` returns every row, then each is read.
pub fn bare_fetchall(client: &mut Client, sql: &str) -> usize {
    let rows = client.query(sql, &[]).expect("query");
    rows.iter()
        .map(|row| row.get::<_, i32>(0) as usize + row.get::<_, &str>(1).len())
        .sum()
}

/// The floor's streamed read: `query_raw`, each row read and dropped in turn.
pub fn bare_stream(client: &mut Client, sql: &str) -> usize {
    use crate::postgres::fallible_iterator::FallibleIterator;
    let mut rows = client
        .query_raw(sql, std::iter::empty::<i32>())
        .expect("query");
    let mut sum = 0;
    while let Some(row) = rows.next().expect("row") {
        sum += row.get::<_, i32>(0) as usize + row.get::<_, &str>(1).len();
    }
    sum
}
