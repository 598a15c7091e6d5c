//! Versioned SQL migrations, applied at start-up: one code path on every
//! database.
//!
//! A [`Migrator`] holds [`Migration`]s (a version, a name, SQL) and
//! [`run`](Migrator::run) applies those the database has not seen yet, in
//! version order, each in a transaction of its own, and records each one
//! in a table (`sqlaio_migrations` unless [`Migrator::table`] says
//! otherwise).
//!
//! ```
//! use sqlaio::migrate::{Migration, Migrator};
//!
//! # futures::executor::block_on(async {
//! let migrator = Migrator::new(vec![
//!     Migration::new(1, "create users", "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"),
//!     Migration::new(2, "add email", "ALTER TABLE users ADD COLUMN email TEXT;
//!                                      CREATE UNIQUE INDEX users_email ON users (email);"),
//! ]);
//! let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
//! let report = migrator.run(&engine).await?;
//! assert_eq!(report.applied, [1, 2]);
//! // Run again (the next start-up): nothing to do.
//! assert!(migrator.run(&engine).await?.applied.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Where migrations come from
//! - **A folder embedded at compile time**: [`migrate!("./migrations")`](crate::migrate!)
//!   puts every `.sql` file of the folder into the program.
//! - **A folder read at run time**: [`Migrator::from_dir`].
//! - **Values**: [`Migrator::new`] with [`Migration::new`].
//!
//! Files are named `<version>_<name>.sql`: `0001_create_users.sql`,
//! `0002_add_email.sql`, or with timestamps, `20240131120000_backfill.sql`.
//! The version is decimal digits (leading zeros are allowed and ignored,
//! so the files sort in a listing); the name is letters, digits, `_` and
//! `-`, and is recorded with each `_` as a space. Other files (`README.md`,
//! hidden files) are skipped; a `.sql` file named otherwise, or a subfolder,
//! is an error ([`MigrateError::InvalidName`]), so that a migration is never
//! silently left out.
//!
//! # What `run` does
//! 1. Checks the migrations themselves ([`Migrator::validate`]).
//! 2. Takes a connection; on PostgreSQL, takes a session-level advisory
//!    lock (`pg_advisory_lock`) on it, held until the end of the run.
//! 3. Creates the migrations table if it does not exist.
//! 4. For each pending migration, in one transaction (on SQLite a `BEGIN
//!    IMMEDIATE`, which takes the database's write lock): reads the table,
//!    checks every applied migration's checksum, runs the migration's SQL
//!    as a script, records its version, name and checksum, and commits.
//! 5. Releases the lock, also when a step failed.
//!
//! So several processes (or engines) starting at once apply each migration
//! exactly once: the others wait for the lock, then find it applied. A
//! migration whose SQL fails is rolled back as a whole and not recorded
//! ([`MigrateError::Failed`]); the migrations before it stay applied.
//!
//! # Checks
//! - A migration recorded as applied whose SQL has changed since is an
//!   error naming its version ([`MigrateError::Changed`]). The checksum is
//!   FNV-1a (64 bits) of the SQL, with CRLF line endings read as LF: stable
//!   across platforms and Rust versions, made to detect edits, not tampering.
//! - A migration recorded in the table but unknown to the migrator (an
//!   older program against a newer database) is an error
//!   ([`MigrateError::Unknown`]) unless [`Migrator::ignore_unknown`] is set.
//! - A pending migration with a lower version than an applied one (two
//!   branches merged) is an error ([`MigrateError::OutOfOrder`]) unless
//!   [`Migrator::allow_out_of_order`] is set.
//!
//! # Why not an existing crate
//! `refinery` supports rusqlite and the sync `postgres` client, but its
//! current release (0.10) accepts rusqlite up to 0.41 (sqlaio uses 0.43) and
//! needs Rust 1.92 (sqlaio supports 1.85), and it drives the raw connection
//! itself, outside the worker, the pool and the cancellation rules of this
//! crate. The runner here is small and uses only the public API:
//! [`Engine::connect`], [`Connection::begin`](crate::Connection::begin),
//! `execute`, and [`run_in_thread`](crate::Connection::run_in_thread) for
//! scripts. The one dependency it adds is `include_dir`, whose macro embeds
//! the folder for [`migrate!`](crate::migrate!).
//!
//! The guide's migrations chapter (`docs/migrations.md`) says more:
//! writing migrations per database, and what MySQL's implicit commits will
//! change.

pub(crate) mod checksum;
mod error;
mod runner;
pub(crate) mod script;
mod source;

use std::borrow::Cow;
use std::path::Path;

use crate::engine::Engine;

pub use error::MigrateError;

/// The table [`Migrator::run`] records applied migrations in, unless
/// [`Migrator::table`] names another.
pub const DEFAULT_TABLE: &str = "sqlaio_migrations";

/// One migration: a version, a name, and SQL (one or more statements,
/// separated by `;`).
///
/// The SQL runs as a script inside the migration's transaction, so it must
/// not hold transaction control statements (`BEGIN`, `COMMIT`, `ROLLBACK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    version: i64,
    name: Cow<'static, str>,
    sql: Cow<'static, str>,
    checksum: String,
}

impl Migration {
    /// A migration from its version (0 or more), its name, and its SQL.
    ///
    /// A negative version is reported by [`Migrator::validate`] and
    /// [`Migrator::run`] ([`MigrateError::InvalidVersion`]).
    pub fn new(
        version: i64,
        name: impl Into<Cow<'static, str>>,
        sql: impl Into<Cow<'static, str>>,
    ) -> Migration {
        let sql = sql.into();
        Migration {
            version,
            name: name.into(),
            checksum: checksum::checksum(&sql),
            sql,
        }
    }

    /// The version: migrations apply in ascending order of it.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The name, as recorded in the migrations table.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SQL.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The checksum recorded for the SQL: 16 hex digits of FNV-1a (64 bits)
    /// over the text with CRLF read as LF and any byte-order mark removed.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }
}

/// A problem with the migrations themselves, kept until they are checked.
#[derive(Debug, Clone)]
enum Problem {
    InvalidName {
        file: String,
        reason: String,
    },
    InvalidVersion {
        version: i64,
        name: String,
    },
    DuplicateVersion {
        version: i64,
        first: String,
        second: String,
    },
    InvalidTable {
        table: String,
    },
}

impl From<Problem> for MigrateError {
    fn from(problem: Problem) -> MigrateError {
        match problem {
            Problem::InvalidName { file, reason } => MigrateError::InvalidName { file, reason },
            Problem::InvalidVersion { version, name } => {
                MigrateError::InvalidVersion { version, name }
            }
            Problem::DuplicateVersion {
                version,
                first,
                second,
            } => MigrateError::DuplicateVersion {
                version,
                first,
                second,
            },
            Problem::InvalidTable { table } => MigrateError::InvalidTable { table },
        }
    }
}

/// A set of migrations, and how to apply them.
///
/// Building one never fails: problems with the migrations themselves (a
/// malformed file name, two migrations with one version, a negative
/// version, a bad table name) are reported by [`validate`](Migrator::validate)
/// and by [`run`](Migrator::run) before it touches the database. A unit
/// test that calls `validate` catches them before any deployment does.
///
/// Cloning copies the list of migrations; the SQL of an embedded folder is
/// borrowed from the program, not copied.
#[derive(Debug, Clone)]
#[must_use = "a migrator does nothing until .run(&engine) is awaited"]
pub struct Migrator {
    /// Sorted by version.
    migrations: Vec<Migration>,
    problems: Vec<Problem>,
    table: Cow<'static, str>,
    ignore_unknown: bool,
    allow_out_of_order: bool,
}

impl Migrator {
    /// A migrator for these migrations, in any order: they apply in order
    /// of version.
    pub fn new(migrations: impl IntoIterator<Item = Migration>) -> Migrator {
        let mut migrations: Vec<Migration> = migrations.into_iter().collect();
        migrations.sort_by_key(|m| m.version);
        let mut problems = Vec::new();
        for pair in migrations.windows(2) {
            if pair[0].version == pair[1].version {
                problems.push(Problem::DuplicateVersion {
                    version: pair[0].version,
                    first: pair[0].name().to_owned(),
                    second: pair[1].name().to_owned(),
                });
            }
        }
        for m in migrations.iter().filter(|m| m.version < 0) {
            problems.push(Problem::InvalidVersion {
                version: m.version,
                name: m.name().to_owned(),
            });
        }
        Migrator {
            migrations,
            problems,
            table: Cow::Borrowed(DEFAULT_TABLE),
            ignore_unknown: false,
            allow_out_of_order: false,
        }
    }

    /// The migrations of a folder read now: its files named
    /// `<version>_<name>.sql` (see the [module docs](self)).
    ///
    /// # Errors
    /// [`MigrateError::Io`] when the folder or a file cannot be read, or a
    /// file is not UTF-8; [`MigrateError::InvalidName`] for a badly named
    /// `.sql` file or a subfolder; [`MigrateError::DuplicateVersion`] when
    /// two files have one version.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Migrator, MigrateError> {
        source::read_dir(dir.as_ref())
    }

    /// For [`migrate!`](crate::migrate!) only.
    #[doc(hidden)]
    pub fn __from_embedded(dir: &'static include_dir::Dir<'static>) -> Migrator {
        source::embedded(dir)
    }

    /// The table that records applied migrations: a plain identifier
    /// (letters, digits, `_`), optionally schema-qualified on PostgreSQL
    /// (`app.schema_migrations`). Give each migrator of one database its
    /// own table. Defaults to [`DEFAULT_TABLE`] (`sqlaio_migrations`).
    pub fn table(mut self, name: impl Into<Cow<'static, str>>) -> Migrator {
        self.table = name.into();
        self.problems
            .retain(|p| !matches!(p, Problem::InvalidTable { .. }));
        if !is_table_name(&self.table) {
            self.problems.push(Problem::InvalidTable {
                table: self.table.to_string(),
            });
        }
        self
    }

    /// Whether a migration recorded in the table but unknown to this
    /// migrator is let pass (`true`) or is an error
    /// ([`MigrateError::Unknown`]). Set it where an older build may start
    /// against a database that a newer one migrated. Defaults to `false`.
    pub fn ignore_unknown(mut self, ignore: bool) -> Migrator {
        self.ignore_unknown = ignore;
        self
    }

    /// Whether a pending migration whose version is lower than an applied
    /// one is applied (`true`) or is an error ([`MigrateError::OutOfOrder`]).
    /// Defaults to `false`.
    pub fn allow_out_of_order(mut self, allow: bool) -> Migrator {
        self.allow_out_of_order = allow;
        self
    }

    /// The migrations, in order of version.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// The name of the migrations table.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Checks the migrations themselves, without a database.
    ///
    /// # Errors
    /// The first problem found: [`MigrateError::InvalidName`],
    /// [`MigrateError::DuplicateVersion`], [`MigrateError::InvalidVersion`]
    /// or [`MigrateError::InvalidTable`].
    pub fn validate(&self) -> Result<(), MigrateError> {
        match self.problems.first() {
            Some(problem) => Err(problem.clone().into()),
            None => Ok(()),
        }
    }

    /// Applies the pending migrations to the engine's database, in version
    /// order, each in its own transaction, and records them. See the
    /// [module docs](self) for the steps and the locking: concurrent runs
    /// against one database apply each migration once.
    ///
    /// # Errors
    /// What [`validate`](Migrator::validate) finds, before anything else;
    /// [`MigrateError::Changed`], [`MigrateError::Unknown`] and
    /// [`MigrateError::OutOfOrder`] when the table does not fit the
    /// migrations (nothing is applied then); [`MigrateError::Failed`] when a
    /// migration's SQL fails (it is rolled back; those before it stay
    /// applied); [`MigrateError::TransactionEnded`] when a migration's SQL
    /// commits or rolls back by itself; [`MigrateError::Database`] when
    /// connecting, the table or the lock fail. The engine's statement
    /// timeout applies to each statement, to each migration's script, and to
    /// the wait for PostgreSQL's lock.
    ///
    /// # Cancellation
    /// Dropping the future interrupts the statement or script running (as
    /// [`Connection::execute`](crate::Connection::execute) does) and rolls
    /// back the migration in progress; the migrations committed before stay
    /// applied and recorded. PostgreSQL's advisory lock is then released by a
    /// short-lived thread that sends the unlock on the run's connection, so no
    /// pooled connection keeps it.
    pub async fn run(&self, engine: &Engine) -> Result<Report, MigrateError> {
        self.validate()?;
        self.apply(engine).await
    }

    /// What the migrations table of the engine's database records, in
    /// version order; empty when the table does not exist.
    ///
    /// # Errors
    /// [`MigrateError::InvalidTable`] for a bad table name;
    /// [`MigrateError::Database`] when the database cannot be read.
    ///
    /// # Cancellation
    /// Dropping the future only discards the answer.
    pub async fn applied(&self, engine: &Engine) -> Result<Vec<AppliedMigration>, MigrateError> {
        if let Some(problem) = self
            .problems
            .iter()
            .find(|p| matches!(p, Problem::InvalidTable { .. }))
        {
            return Err(problem.clone().into());
        }
        self.read(engine).await
    }

    fn find(&self, version: i64) -> Option<&Migration> {
        self.migrations
            .binary_search_by_key(&version, |m| m.version)
            .ok()
            .map(|i| &self.migrations[i])
    }
}

/// What [`Migrator::run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The versions this run applied, in the order it applied them.
    pub applied: Vec<i64>,
    /// How many of the migrator's migrations were applied before this run.
    pub already_applied: usize,
}

/// A row of the migrations table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppliedMigration {
    /// The migration's version.
    pub version: i64,
    /// Its name when it was applied.
    pub name: String,
    /// The checksum of its SQL when it was applied.
    pub checksum: String,
    /// When it was applied, in UTC: `2024-01-31T12:00:00.000Z`.
    pub applied_at: String,
}

/// A plain SQL identifier, optionally after a schema name and a dot.
fn is_table_name(name: &str) -> bool {
    let ident = |part: &str| {
        part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match name.split_once('.') {
        Some((schema, table)) => ident(schema) && ident(table),
        None => ident(name),
    }
}

/// Embeds a folder of migrations in the program at compile time and
/// evaluates to a [`Migrator`](crate::migrate::Migrator) for them.
///
/// ```
/// # futures::executor::block_on(async {
/// # /*
/// let migrator = sqlaio::migrate!("./migrations");
/// # */
/// # let migrator = sqlaio::migrate!("$CARGO_MANIFEST_DIR/tests/migrations/basic");
/// migrator.validate()?; // a test like this catches badly named files
/// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
/// migrator.run(&engine).await?;
/// # assert!(engine.has_table("users").await?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// The folder holds files named `<version>_<name>.sql` (see
/// [`sqlaio::migrate`](mod@crate::migrate)); a badly named file is reported by
/// [`Migrator::validate`](crate::migrate::Migrator::validate) and
/// [`Migrator::run`](crate::migrate::Migrator::run).
///
/// The path is a string literal, read by the `include_dir` crate: `$VAR`
/// is replaced by the environment variable `VAR`, and a relative path is
/// relative to the folder cargo runs the compiler in, which is the
/// package's folder for a single package but the workspace's folder in a
/// workspace. `"$CARGO_MANIFEST_DIR/migrations"` always means the
/// `migrations` folder beside the package's `Cargo.toml`.
///
/// A changed file is embedded again at the next build, but cargo does not
/// notice a file added to the folder by itself. Add a build script that
/// says so:
///
/// ```ignore
/// // build.rs
/// fn main() {
///     println!("cargo:rerun-if-changed=migrations");
/// }
/// ```
///
/// To build the migrator once, keep it in a static:
///
/// ```
/// use std::sync::LazyLock;
/// use sqlaio::migrate::Migrator;
///
/// # /*
/// static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| sqlaio::migrate!("./migrations"));
/// # */
/// # static MIGRATOR: LazyLock<Migrator> =
/// #     LazyLock::new(|| sqlaio::migrate!("$CARGO_MANIFEST_DIR/tests/migrations/basic"));
/// # assert!(!MIGRATOR.migrations().is_empty());
/// ```
#[macro_export]
macro_rules! migrate {
    ($dir:tt) => {{
        use $crate::migrate::__private::include_dir;
        static DIR: include_dir::Dir<'static> = include_dir::include_dir!($dir);
        $crate::migrate::Migrator::__from_embedded(&DIR)
    }};
}

/// What [`migrate!`](crate::migrate!) expands to uses; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use include_dir;
}
