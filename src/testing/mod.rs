//! A fresh database for each test, migrated and filled with fixtures, and
//! dropped afterwards even when the test fails. Behind the `testing` feature.
//!
//! It does for a plain `#[test]` (or `#[tokio::test]`, or any executor's
//! test) what `#[sqlx::test]` does, with functions instead of an attribute:
//!
//! | database | each test gets | removed |
//! |---|---|---|
//! | SQLite (`sqlite::memory:`) | a database file of its own in a temporary folder | the folder, once the engine is closed |
//! | PostgreSQL (`postgres://...`) | a schema of its own (`CREATE SCHEMA sqlaio_test_...`), first and only on the `search_path` of every connection of the test's engine | `DROP SCHEMA ... CASCADE` |
//! | MySQL, MariaDB (`mysql://...`, `mariadb://...`) | a database of its own (`CREATE DATABASE sqlaio_test_...`), the database of every connection of the test's engine | `DROP DATABASE` |
//!
//! ```
//! use std::sync::LazyLock;
//! use sqlaio::migrate::{Migration, Migrator};
//! use sqlaio::testing::TestDatabase;
//!
//! static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
//!     // Usually: sqlaio::migrate!("./migrations")
//!     Migrator::new([Migration::new(1, "create users", "CREATE TABLE users (name TEXT NOT NULL)")])
//! });
//!
//! // #[test]
//! fn counts_users() -> sqlaio::Result<()> {
//!     TestDatabase::builder()
//! # /*
//!         .url_from_env("DATABASE_URL") // PostgreSQL where it is set, SQLite otherwise
//! # */
//!         .migrations(&MIGRATOR)
//!         .fixtures(["INSERT INTO users VALUES ('Dana Whitaker'); INSERT INTO users VALUES ('Casey McCall');"])
//!         .run(|engine| async move {
//!             let n: i64 = engine.scalar("SELECT count(*) FROM users", ()).await?;
//!             assert_eq!(n, 2);
//!             Ok(())
//!         })
//! }
//! # counts_users().unwrap();
//! ```
//!
//! [`run`](TestDatabaseBuilder::run) blocks the test's thread on the body
//! with a minimal executor of its own, which is all sqlaio's futures need
//! (they complete under any executor). In an async test, or to await
//! anything that needs a runtime, use [`create`](TestDatabaseBuilder::create)
//! and keep the [`TestDatabase`] alive for the test:
//!
//! ```
//! # use sqlaio::testing::TestDatabase;
//! // #[tokio::test]
//! async fn inserts_a_row() -> Result<(), Box<dyn std::error::Error>> {
//!     let db = TestDatabase::builder().create().await?;
//!     db.engine().execute("CREATE TABLE t (x INTEGER)", ()).await?;
//!     db.engine().execute("INSERT INTO t VALUES (1)", ()).await?;
//!     db.close().await?; // or let it drop: Drop cleans up too
//!     Ok(())
//! }
//! # futures::executor::block_on(inserts_a_row()).unwrap();
//! ```
//!
//! # Cleaning up
//! [`TestDatabase::close`] closes the engine and removes the database. When
//! a test panics, or returns without closing it, dropping the
//! [`TestDatabase`] does the same on a thread of its own (`Drop` cannot
//! await), and waits for it, at most 60 seconds. A test process that is
//! killed leaves its database behind: PostgreSQL schemas and MySQL
//! databases are named `sqlaio_test_<test>_<unique>`, SQLite folders
//! `sqlaio-test-<test>-<unique>` in the system's temporary folder.

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod pg;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::block::block_on;
use crate::builder::EngineBuilder;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::migrate::checksum::fnv1a_64;
use crate::migrate::script::run_script;
use crate::migrate::{MigrateError, Migrator};
use crate::sql::Dialect;

/// How long dropping a [`TestDatabase`] waits for its cleanup.
const CLEANUP_LIMIT: Duration = Duration::from_secs(60);

/// A user's changes to the test engine's builder.
type Configure = Box<dyn FnOnce(EngineBuilder) -> EngineBuilder + Send>;

/// Sets up a [`TestDatabase`]: where, which migrations, which fixtures.
///
/// Every setter consumes and returns the builder.
#[must_use = "a builder does nothing until .create() or .run(..) is called"]
pub struct TestDatabaseBuilder {
    url: String,
    configure: Option<Configure>,
    migrator: Option<Migrator>,
    fixtures: Vec<String>,
}

impl fmt::Debug for TestDatabaseBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDatabaseBuilder")
            .field("url", &redacted(&self.url))
            .field("configure", &self.configure.is_some())
            .field("migrator", &self.migrator)
            .field("fixtures", &self.fixtures.len())
            .finish()
    }
}

impl TestDatabaseBuilder {
    /// Which database server to make the test's database on:
    /// `sqlite::memory:` for SQLite (each test still gets a file of its
    /// own: see the [module docs](self)), a PostgreSQL URL, whose
    /// database the test's schema is created in, or a MySQL/MariaDB URL,
    /// on whose server the test's database is created. A SQLite file URL is
    /// refused by [`create`](TestDatabaseBuilder::create): a test database
    /// is always private. Defaults to `sqlite::memory:`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// The URL from the environment variable `var` when it is set and not
    /// empty; otherwise the URL stays as it was (by default
    /// `sqlite::memory:`). With `"DATABASE_URL"`, a suite runs on SQLite
    /// by default and on PostgreSQL where the variable names a server.
    pub fn url_from_env(self, var: &str) -> Self {
        match std::env::var(var) {
            Ok(url) if !url.trim().is_empty() => self.url(url),
            _ => self,
        }
    }

    /// Changes the test engine's builder before it is built, for example
    /// `.engine(|b| b.strategy(TokioStrategy).max_connections(2))`. The URL
    /// is set afterwards by the harness. Defaults to the builder's defaults.
    pub fn engine(
        mut self,
        configure: impl FnOnce(EngineBuilder) -> EngineBuilder + Send + 'static,
    ) -> Self {
        self.configure = Some(Box::new(configure));
        self
    }

    /// Migrations to apply to the fresh database, with
    /// [`Migrator::run`]. Defaults to none.
    pub fn migrations(mut self, migrator: &Migrator) -> Self {
        self.migrator = Some(migrator.clone());
        self
    }

    /// SQL scripts to run after the migrations, in order: test data. Each
    /// may hold several statements and runs as a script, in autocommit (a
    /// script may wrap itself in `BEGIN` and `COMMIT`). Adds to the fixtures
    /// given before. Defaults to none.
    pub fn fixtures<I, S>(mut self, scripts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fixtures.extend(scripts.into_iter().map(Into::into));
        self
    }

    /// Creates the test's database, applies the migrations, runs the
    /// fixtures, and returns it with its engine.
    ///
    /// # Errors
    /// [`MigrateError::Database`] with [`Error::Config`] for a bad URL or a
    /// SQLite file URL, or the database's error when the schema, database
    /// or folder cannot be made; what [`Migrator::run`] returns; [`MigrateError::Fixture`]
    /// when a fixture fails. Whatever was created is removed before the error
    /// is returned.
    ///
    /// # Cancellation
    /// Dropping the future removes whatever was created, as dropping a
    /// [`TestDatabase`] does.
    pub async fn create(self) -> Result<TestDatabase, MigrateError> {
        let dialect = Engine::builder().url(&self.url).build()?.dialect();
        let label = label();
        let place = match dialect {
            Dialect::Sqlite => Place::sqlite(&self.url, &label)?,
            #[cfg(feature = "postgres")]
            Dialect::Postgres => pg::place(&self.url, &label)?,
            #[cfg(feature = "mysql")]
            Dialect::MySql => mysql::place(&self.url, &label)?,
            #[allow(unreachable_patterns)]
            other => {
                return Err(Error::Config(format!(
                    "the test harness does not support the {other:?} database"
                ))
                .into())
            }
        };
        let builder = match self.configure {
            Some(configure) => configure(Engine::builder()),
            None => Engine::builder(),
        };
        let engine = match builder.url(place.url()).build() {
            Ok(engine) => engine,
            Err(e) => {
                place.remove_now();
                return Err(e.into());
            }
        };
        // From here on, dropping `db` (an error, a panic, a dropped future)
        // removes the database.
        let db = TestDatabase {
            url: place.url(),
            engine,
            place: Some(place),
        };
        db.prepare(self.migrator.as_ref(), self.fixtures).await?;
        Ok(db)
    }

    /// Creates the test's database, runs `body` with its engine, and removes
    /// the database, blocking the current thread until all is done: the
    /// whole test in a plain `#[test]`, with no runtime. `body` returns what
    /// the test returns.
    ///
    /// The executor is a minimal one: enough for sqlaio's futures, which
    /// complete under any executor, but not for a runtime's own timers or
    /// sockets (use [`create`](TestDatabaseBuilder::create) in a
    /// `#[tokio::test]` for those). Do not call it from inside an async
    /// runtime: it blocks the thread.
    ///
    /// # Panics
    /// When the database cannot be created (with the error's message), and
    /// when `body` panics, after the database was removed. A database that
    /// cannot be removed after a successful body is reported on stderr.
    pub fn run<F, Fut>(self, body: F) -> Fut::Output
    where
        F: FnOnce(Engine) -> Fut,
        Fut: Future,
    {
        block_on(async move {
            let db = match self.create().await {
                Ok(db) => db,
                Err(e) => panic!("could not create the test database: {e}"),
            };
            let output = body(db.engine().clone()).await;
            if let Err(e) = db.close().await {
                eprintln!("sqlaio::testing: could not remove the test database: {e}");
            }
            output
        })
    }
}

/// A test's own database: its engine, and the schema or file behind it,
/// removed by [`close`](TestDatabase::close) or when this is dropped.
///
/// See the [module docs](self).
pub struct TestDatabase {
    engine: Engine,
    url: String,
    /// `None` once removed.
    place: Option<Place>,
}

impl fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDatabase")
            .field("engine", &self.engine)
            .field("schema", &self.schema())
            .finish()
    }
}

impl TestDatabase {
    /// A builder: SQLite unless [`url`](TestDatabaseBuilder::url) says
    /// otherwise, no migrations, no fixtures.
    pub fn builder() -> TestDatabaseBuilder {
        TestDatabaseBuilder {
            url: "sqlite::memory:".to_owned(),
            configure: None,
            migrator: None,
            fixtures: Vec::new(),
        }
    }

    /// The test's engine. Clones of it share its pool; all of them are
    /// closed when the test database is removed.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The URL of the test's database, for more engines on it (to test
    /// concurrent start-ups, say): a SQLite file URL, the PostgreSQL URL
    /// with the test's schema on the `search_path`, or the MySQL URL of the
    /// test's database. Close those engines
    /// before the test database is removed.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The test's PostgreSQL schema, or its MySQL database (which MySQL
    /// also calls a schema); `None` on SQLite.
    pub fn schema(&self) -> Option<&str> {
        match &self.place {
            #[cfg(feature = "postgres")]
            Some(Place::Postgres(schema)) => Some(schema.name()),
            #[cfg(feature = "mysql")]
            Some(Place::Mysql(database)) => Some(database.name()),
            _ => None,
        }
    }

    /// Closes the engine (as [`Engine::close`]) and removes the database.
    ///
    /// # Errors
    /// The database's error when the PostgreSQL schema or the MySQL
    /// database cannot be dropped.
    ///
    /// # Cancellation
    /// Dropping the future before it completes leaves the removal to the
    /// remaining cleanup on drop: the engine is closed and the database
    /// removed on a thread of its own.
    pub async fn close(mut self) -> Result<()> {
        let Some(place) = self.place.take() else {
            return Ok(());
        };
        let mut pending = Pending(Some((self.engine.clone(), place.clone())));
        let result = remove(self.engine.clone(), place).await;
        pending.0 = None;
        result
    }

    /// Applies the migrations and runs the fixtures.
    async fn prepare(
        &self,
        migrator: Option<&Migrator>,
        fixtures: Vec<String>,
    ) -> Result<(), MigrateError> {
        match &self.place {
            #[cfg(feature = "postgres")]
            Some(Place::Postgres(schema)) => {
                let create = format!("CREATE SCHEMA {}", schema.name());
                self.engine.execute(create, ()).await?;
            }
            #[cfg(feature = "mysql")]
            Some(Place::Mysql(database)) => database.create().await?,
            _ => {}
        }
        if let Some(migrator) = migrator {
            migrator.run(&self.engine).await?;
        }
        if !fixtures.is_empty() {
            let conn = self.engine.connect().await?;
            for (index, sql) in fixtures.into_iter().enumerate() {
                run_script(&conn, sql)
                    .await
                    .map_err(|source| MigrateError::Fixture { index, source })?;
            }
        }
        Ok(())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(place) = self.place.take() {
            remove_on_thread(self.engine.clone(), place);
        }
    }
}

/// Removes the database if `close` is dropped before it finished.
struct Pending(Option<(Engine, Place)>);

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some((engine, place)) = self.0.take() {
            remove_on_thread(engine, place);
        }
    }
}

/// Where a test's database lives.
#[derive(Debug, Clone)]
enum Place {
    /// A temporary folder holding the SQLite file `test.db`.
    Sqlite(PathBuf),
    /// A PostgreSQL schema.
    #[cfg(feature = "postgres")]
    Postgres(pg::Schema),
    /// A MySQL/MariaDB database.
    #[cfg(feature = "mysql")]
    Mysql(mysql::Database),
}

impl Place {
    /// A fresh temporary folder for a SQLite test database. Only
    /// `sqlite::memory:` (and its spellings) is accepted: a test database is
    /// private.
    fn sqlite(url: &str, label: &str) -> Result<Place> {
        let url = url.trim();
        let rest = url
            .strip_prefix("sqlite3:")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if !matches!(rest, ":memory:" | "//" | "//:memory:") {
            return Err(Error::Config(format!(
                "the test harness gives each test a private SQLite database: give it \
                 \"sqlite::memory:\", not {url:?}"
            )));
        }
        let dir = std::env::temp_dir().join(format!("sqlaio-test-{label}-{}", unique()));
        std::fs::create_dir(&dir).map_err(|e| {
            Error::Config(format!(
                "cannot create the test database folder {}: {e}",
                dir.display()
            ))
        })?;
        Ok(Place::Sqlite(dir))
    }

    /// The test engine's URL.
    fn url(&self) -> String {
        match self {
            Place::Sqlite(dir) => format!("sqlite://{}", dir.join("test.db").display()),
            #[cfg(feature = "postgres")]
            Place::Postgres(schema) => schema.url().to_owned(),
            #[cfg(feature = "mysql")]
            Place::Mysql(database) => database.url().to_owned(),
        }
    }

    /// Removes what exists before any engine was built: the SQLite folder.
    fn remove_now(&self) {
        match self {
            Place::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            #[cfg(feature = "postgres")]
            Place::Postgres(_) => {}
            #[cfg(feature = "mysql")]
            Place::Mysql(_) => {}
        }
    }
}

/// Closes `engine`, then removes the database.
async fn remove(engine: Engine, place: Place) -> Result<()> {
    engine.close().await?;
    match place {
        Place::Sqlite(dir) => match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Config(format!(
                "cannot remove the test database folder {}: {e}",
                dir.display()
            ))),
        },
        #[cfg(feature = "postgres")]
        Place::Postgres(schema) => schema.drop_schema().await,
        #[cfg(feature = "mysql")]
        Place::Mysql(database) => database.drop_database().await,
    }
}

/// Runs [`remove`] on a thread of its own and waits for it, at most
/// [`CLEANUP_LIMIT`]: it works from `Drop`, under any executor, and while a
/// failed test unwinds. Problems go to stderr, never a panic.
fn remove_on_thread(engine: Engine, place: Place) {
    let what = format!("{place:?}");
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("sqlaio-test-cleanup".to_owned())
        .spawn(move || {
            let _ = tx.send(block_on(remove(engine, place)));
        });
    if let Err(e) = spawned {
        eprintln!("sqlaio::testing: could not remove the test database {what}: no thread: {e}");
        return;
    }
    match rx.recv_timeout(CLEANUP_LIMIT) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("sqlaio::testing: could not remove the test database {what}: {e}"),
        Err(_) => eprintln!(
            "sqlaio::testing: removing the test database {what} took over {CLEANUP_LIMIT:?}"
        ),
    }
}

/// A short name for the running test, from its thread's name (the test
/// harness names each test's thread after the test): the last path
/// segment, in lower case, letters, digits and `_` only, at most 24 bytes.
fn label() -> String {
    let thread = std::thread::current();
    let name = match thread.name() {
        Some(name) if name != "main" => name.rsplit("::").next().unwrap_or(name),
        _ => "db",
    };
    let mut label: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    if label.is_empty() {
        label.push_str("db");
    }
    label
}

/// 12 hex digits that differ between processes, runs and calls: a hash of
/// the process id, a counter, the time and the thread.
fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!(
        "{}/{n}/{nanos}/{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    format!("{:012x}", fnv1a_64(seed.bytes()) & 0xffff_ffff_ffff)
}

/// The URL with any password hidden, for `Debug`.
fn redacted(url: &str) -> String {
    match Engine::builder().url(url).build() {
        Ok(engine) => engine.url().to_owned(),
        Err(_) => "<an invalid URL>".to_owned(),
    }
}
