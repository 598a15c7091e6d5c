//! The MySQL/MariaDB backend: a database of its own per test on the server
//! of `MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`), created
//! before the test and dropped after it, also when the test failed.
//!
//! Setup and cleanup use the `mysql` crate directly (re-exported by sqlaio),
//! which connects in milliseconds and needs no executor.

use std::sync::OnceLock;
use std::time::Duration;

use sqlaio::mysql::prelude::Queryable;
use sqlaio::mysql::{Conn, Opts, OptsBuilder};

use super::{skip_or_fail, Backend, Database, Family, Fresh};

/// The URL used when `MYSQL_URL` is not set.
pub const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// A database of its own on the server of `MYSQL_URL`, dropped after the test.
pub const MYSQL: Backend = Backend {
    name: "mysql",
    family: Family::Mysql,
    available,
    fresh,
    placeholder: |_| "?".to_owned(),
    id_column: "id BIGINT AUTO_INCREMENT PRIMARY KEY",
    blob_type: "LONGBLOB",
    unreachable_url: |_| with_database(&mysql_url(), NO_SUCH_DATABASE),
    unreachable_hint: NO_SUCH_DATABASE,
};

/// The database of the MySQL URL that cannot be connected to.
const NO_SUCH_DATABASE: &str = "sqlaio_no_such_database";

/// MySQL's limit on the length of a database name.
const NAME_LIMIT: usize = 64;

/// The server URL: `MYSQL_URL`, or [`DEFAULT_URL`].
pub fn mysql_url() -> String {
    match std::env::var("MYSQL_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => DEFAULT_URL.to_owned(),
    }
}

/// A plain `mysql` connection to `url` with bounded connect and read waits,
/// for setting up, cleaning up and looking on.
pub fn raw(url: &str) -> Result<Conn, String> {
    let opts =
        Opts::from_url(&url.replacen("mariadb://", "mysql://", 1)).map_err(|e| e.to_string())?;
    let opts = OptsBuilder::from_opts(opts)
        .tcp_connect_timeout(Some(Duration::from_secs(5)))
        .read_timeout(Some(Duration::from_secs(30)))
        .write_timeout(Some(Duration::from_secs(30)));
    Conn::new(opts).map_err(|e| e.to_string())
}

/// Connects once, runs `SELECT 1`, and remembers the answer for every test.
fn probe() -> &'static Result<String, String> {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER.get_or_init(|| {
        let url = mysql_url();
        match raw(&url).and_then(|mut c| c.query_drop("SELECT 1").map_err(|e| e.to_string())) {
            Ok(()) => Ok(url),
            Err(e) => Err(e),
        }
    })
}

/// `Ok` when a server answers.
fn available() -> Result<(), String> {
    probe()
        .as_ref()
        .map(|_| ())
        .map_err(|why| format!("no MySQL server at {}: {why}", shown(&mysql_url())))
}

/// The URL for messages, with any password redacted.
fn shown(url: &str) -> String {
    match sqlaio::Engine::builder().url(url).build() {
        Ok(engine) => engine.url().to_owned(),
        Err(_) => "<an invalid MYSQL_URL>".to_owned(),
    }
}

/// The server URL when a server answers, for tests that are not stamped.
/// Otherwise prints why `test` is skipped and returns `None`, or panics
/// under `CI=true`.
pub fn server(test: &str) -> Option<String> {
    match available() {
        Ok(()) => probe().clone().ok(),
        Err(why) => {
            skip_or_fail(test, &why);
            None
        }
    }
}

/// A fresh database for one test.
fn fresh(fresh: &Fresh<'_>) -> Database {
    let server = probe().clone().expect("the server answered the probe");
    let scratch = Scratch::create(&server, &database_name(fresh.test));
    Database {
        url: scratch.url.clone(),
        schema: None,
        guard: Some(Box::new(scratch)),
    }
}

/// `sqlaio_<test>_<pid>`, within MySQL's 64-character limit on names: a
/// long test name is cut and completed with a hash of the whole, so that
/// names stay distinct.
pub fn database_name(test: &str) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let pid = std::process::id().to_string();
    let budget = NAME_LIMIT - "sqlaio__".len() - pid.len();
    let mut words = test
        .to_ascii_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    while words.contains("__") {
        words = words.replace("__", "_");
    }
    let words = if words.len() <= budget {
        words
    } else {
        let mut hasher = DefaultHasher::new();
        test.hash(&mut hasher);
        let hash = format!("{:08x}", hasher.finish() as u32);
        format!("{}_{hash}", &words[..budget - hash.len() - 1])
    };
    format!("sqlaio_{words}_{pid}")
}

/// `url` with its database (the path) replaced by `database`, query kept.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let path = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{database}", &base[..path]);
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A database of a test's own: created (afresh) before the test, dropped
/// with everything in it when this guard goes, also when the test failed.
pub struct Scratch {
    server: String,
    /// Its name: letters, digits and `_` only.
    pub name: String,
    /// The server URL with this database as its path.
    pub url: String,
}

impl Scratch {
    /// Creates the database `name`; panics when it cannot.
    pub fn create(server: &str, name: &str) -> Scratch {
        let scratch = Scratch {
            server: server.to_owned(),
            name: name.to_owned(),
            url: with_database(server, name),
        };
        let done = raw(server).and_then(|mut conn| {
            // Left over from an earlier run that was killed?
            conn.query_drop(format!("DROP DATABASE IF EXISTS {name}"))
                .and_then(|()| {
                    conn.query_drop(format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
                })
                .map_err(|e| e.to_string())
        });
        if let Err(e) = done {
            panic!("cannot create the test database {name}: {e}");
        }
        scratch
    }

    fn drop_database(&self) -> Result<(), String> {
        let mut conn = raw(&self.server)?;
        let fail = |e: sqlaio::mysql::Error| e.to_string();
        // A connection the test left behind may hold a metadata lock the
        // drop would wait for (a year, by default): wait 5 s, then end it.
        conn.query_drop("SET SESSION lock_wait_timeout = 5")
            .map_err(fail)?;
        let drop = format!("DROP DATABASE IF EXISTS {}", self.name);
        if conn.query_drop(&drop).is_ok() {
            return Ok(());
        }
        let me = conn.connection_id();
        let left: Vec<u64> = conn
            .query(format!(
                "SELECT id FROM information_schema.processlist WHERE db = '{}' AND id <> {me}",
                self.name
            ))
            .map_err(fail)?;
        for id in left {
            let _ = conn.query_drop(format!("KILL CONNECTION {id}"));
        }
        conn.query_drop(&drop).map_err(fail)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = self.drop_database() {
            // Not a panic: this may run while a failed test unwinds.
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}
