//! The driver boundary: what a worker needs from a blocking database
//! driver, and the registry of drivers.
//!
//! A driver owns nothing but its database: it parses its URLs, opens a
//! connection, prepares statements that run into row cursors, runs scripts,
//! says how to interrupt a running statement from another thread, and
//! classifies its errors. The worker (`crate::worker`) runs the protocol
//! once for every driver: tickets, skipping, the first batch on the answer,
//! serving a cursor, the write permit. The worker is generic over
//! [`Driver`], so every call is statically dispatched.
//!
//! Adding a database is one file (or folder) here and one line in
//! [`registry!`]'s invocation below; `docs/architecture.md` has the checklist.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::params::Parameters;
use crate::row::{ColumnNames, Values};
use crate::server::ServerInfo;
use crate::sql::Dialect;
use crate::tx_options::TxOptions;

/// A blocking driver, as the worker loop sees it. Every method runs on the
/// connection's worker thread.
pub(crate) trait Driver: Sized + 'static {
    /// The driver's name in messages and worker thread names (`sqlite`).
    const NAME: &'static str;
    /// The SQL dialect its statements are written in.
    const DIALECT: Dialect;
    /// The database knows `BEGIN IMMEDIATE` (taking the write lock at once).
    const HAS_IMMEDIATE: bool = false;
    /// Whether an engine funnels its writes through one write permit unless
    /// told otherwise (`EngineBuilder::single_writer`); `None` when the
    /// permit does not apply to this database.
    const SINGLE_WRITER: Option<bool> = None;

    /// Where connections go and how they are set up, parsed from a URL.
    type Config: fmt::Debug + Send + Sync + 'static;
    /// A statement prepared and bound on a connection, not yet run.
    type Statement<'c>: Statement
    where
        Self: 'c;

    /// Parses one of this driver's URLs (or connection strings).
    ///
    /// # Errors
    /// [`Error::Config`] naming what is wrong with the URL.
    fn parse(url: &str) -> Result<Self::Config>;
    /// `true` for a connection string without a URL scheme that this driver
    /// takes (PostgreSQL's `host=... dbname=...`).
    fn claims(_url: &str) -> bool {
        false
    }
    /// Something the engine keeps for as long as it lives (the files of a
    /// private in-memory SQLite database, deleted when it is dropped).
    fn keeper(_config: &Self::Config) -> Option<Box<dyn Any + Send>> {
        None
    }
    /// `true` for an error of [`open`](Driver::open) worth retrying within
    /// the acquire timeout: the server is not reachable yet, refuses for
    /// now, or the database is busy.
    fn is_transient(error: &Error) -> bool;

    /// Opens a connection.
    ///
    /// # Errors
    /// [`Error::Connect`] when the database cannot be reached or opened.
    fn open(config: &Self::Config) -> Result<Self>;
    /// How to interrupt the statement running on this connection from another thread.
    fn kill(&self) -> Kill;
    /// The server this connection reached, where the driver knows it.
    fn server(&self) -> Option<ServerInfo> {
        None
    }
    /// The raw driver connection, for `run_in_thread`.
    fn raw(&mut self) -> &mut dyn Any;
    /// `true` while a transaction is open.
    fn in_transaction(&mut self) -> bool;
    /// `true` once the connection is unusable (the server closed it); the worker then stops.
    fn is_broken(&mut self) -> bool {
        false
    }
    /// `true` when the open transaction failed and can only be rolled back
    /// (PostgreSQL); a `COMMIT` would silently roll it back.
    fn aborted(&mut self) -> bool {
        false
    }
    /// `true` once the connection should be replaced when it is back in the
    /// pool (it still serves its current holder).
    fn worn_out(&mut self) -> bool {
        false
    }
    /// A cheap check that the connection still works.
    ///
    /// # Errors
    /// The driver's error when the connection does not answer.
    fn ping(&mut self) -> Result<()> {
        Ok(())
    }
    /// Called between requests after an interrupt was sent: makes sure an
    /// interrupt that reaches the database late cannot hit the next request.
    fn absorb_interrupt(&mut self) {}
    /// Runs SQL without parameters or results (transaction control, scripts).
    ///
    /// # Errors
    /// The database's error.
    fn execute_batch(&mut self, sql: &str) -> Result<()>;
    /// Runs a script of several statements (a migration file). Afterwards
    /// [`in_transaction`](Driver::in_transaction) must tell whether the
    /// script left a transaction open, whatever statements it held.
    /// Defaults to [`execute_batch`](Driver::execute_batch).
    ///
    /// # Errors
    /// The database's error.
    fn execute_script(&mut self, sql: &str) -> Result<()> {
        self.execute_batch(sql)
    }
    /// Begins a transaction with `options`. Defaults to standard SQL:
    /// `BEGIN ISOLATION LEVEL ..., READ ONLY, DEFERRABLE` (PostgreSQL's
    /// spelling), leaving out what is not asked for.
    ///
    /// # Errors
    /// The database's error.
    fn begin(&mut self, options: &TxOptions) -> Result<()> {
        let mut sql = String::from("BEGIN");
        let mut modes = Vec::new();
        if let Some(level) = options.isolation {
            modes.push(format!("ISOLATION LEVEL {}", level.sql()));
        }
        if options.read_only {
            modes.push("READ ONLY".to_owned());
        }
        if options.deferrable {
            modes.push("DEFERRABLE".to_owned());
        }
        if !modes.is_empty() {
            sql.push(' ');
            sql.push_str(&modes.join(", "));
        }
        self.execute_batch(&sql)
    }
    /// Prepares `sql` and binds `params`, ready to [`run`](Statement::run).
    ///
    /// # Errors
    /// The database's error, or a parameter error naming what does not fit.
    fn prepare<'c>(&'c mut self, sql: &str, params: Parameters) -> Result<Self::Statement<'c>>;
    /// Called once a statement from [`prepare`](Driver::prepare) failed while
    /// it ran or while its rows were read.
    fn statement_failed(&mut self, _sql: &str) {}
    /// Runs `sql` once per parameter set; answers the total rows affected.
    /// The worker wraps the call in a transaction or savepoint, so a failure
    /// undoes the whole batch.
    ///
    /// # Errors
    /// The first error; the worker rolls the batch back.
    fn execute_many(&mut self, sql: &str, params: &[Parameters]) -> Result<u64>;
    /// The names of the tables visible to the connection, sorted.
    ///
    /// # Errors
    /// The database's error.
    fn table_names(&mut self) -> Result<Vec<String>>;
}

/// A statement prepared and bound, borrowing its connection.
pub(crate) trait Statement {
    /// The rows of the running statement.
    type Cursor<'s>: Cursor
    where
        Self: 's;

    /// The result's column names; `None` for a statement that returns no rows.
    fn keys(&self) -> Option<ColumnNames>;
    /// `true` when the statement may write, so that in autocommit it takes
    /// the engine's write permit first (in single-writer mode).
    fn writes(&self) -> bool {
        true
    }
    /// Starts the statement.
    ///
    /// # Errors
    /// The database's error.
    fn run<'s>(&'s mut self) -> Result<Self::Cursor<'s>>;
}

/// A running statement's rows, read one at a time.
pub(crate) trait Cursor {
    /// Writes the next row's values into `values` and returns `true`, or
    /// returns `false` at the end. `values` is either empty or the previous
    /// row, reused: overwrite it with [`Values::set`] and
    /// [`Values::set_text`] so that its allocations are reused.
    ///
    /// # Errors
    /// The database's error, or a value that cannot be decoded.
    fn next_into(&mut self, values: &mut Values) -> Result<bool>;
    /// Rows inserted, updated or deleted, once `done` (0 for a query, and
    /// before the end).
    fn rowcount(&mut self, done: bool) -> u64;
    /// The id of the row an `INSERT` made, where the database reports one.
    fn last_insert_id(&mut self, _rowcount: u64) -> Option<i64> {
        None
    }
    /// `true` while a transaction is open, as of the statement's start.
    fn in_transaction(&self) -> bool;
    /// The result's column names as running the statement found them, when
    /// the statement could not say before it ran ([`Statement::keys`]);
    /// `None` to keep the statement's.
    fn keys(&self) -> Option<Option<ColumnNames>> {
        None
    }
}

/// How a driver interrupts the statement running on its connection.
pub(crate) struct Kill {
    /// Interrupts whatever statement the connection is running.
    pub(crate) run: Box<dyn Fn() + Send + Sync>,
    /// `run` blocks (a network round trip): call it on a thread of its own.
    pub(crate) blocking: bool,
}

/// Calls back into the layer above with the concrete driver type of a
/// [`Target`]: the one place where a parsed URL meets static dispatch.
pub(crate) trait Visitor {
    /// What the visit returns.
    type Output;
    /// Called with the target's driver type and configuration.
    fn visit<D: Driver>(self, config: &Arc<D::Config>) -> Self::Output;
}

/// Generates [`Target`] and the URL lookup from one line per driver: when
/// it is built (its cargo feature), its type, and its URL schemes.
macro_rules! registry {
    ($($cfg:meta => $module:ident :: $driver:ident [$($scheme:literal),+],)+) => {
        $(
            #[cfg($cfg)]
            pub(crate) mod $module;
        )+

        /// Where an engine's connections go: a driver and its parsed configuration.
        #[derive(Clone)]
        // Each variant is named after its driver type.
        #[allow(clippy::enum_variant_names)]
        pub(crate) enum Target {
            $(
                #[cfg($cfg)]
                #[doc = concat!("A database of [`", stringify!($driver), "`].")]
                $driver(Arc<<$module::$driver as Driver>::Config>),
            )+
        }

        impl Target {
            /// Calls `visitor` with this target's driver type.
            pub(crate) fn visit<V: Visitor>(&self, visitor: V) -> V::Output {
                match *self {
                    $(
                        #[cfg($cfg)]
                        Target::$driver(ref config) => visitor.visit::<$module::$driver>(config),
                    )+
                }
            }

            /// Parses a URL with the driver its scheme names.
            ///
            /// # Errors
            /// [`Error::Config`] for an empty or unknown URL, a scheme whose
            /// driver's feature is off, or what the driver finds wrong.
            pub(crate) fn parse(url: &str) -> Result<Target> {
                let url = url.trim();
                if url.is_empty() {
                    return Err(Error::Config("the database URL is empty".into()));
                }
                $(
                    #[cfg($cfg)]
                    if <$module::$driver as Driver>::claims(url) {
                        return Ok(Target::$driver(Arc::new(<$module::$driver as Driver>::parse(url)?)));
                    }
                )+
                let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
                $(
                    if scheme.as_deref().is_some_and(|s| [$($scheme),+].contains(&s)) {
                        #[cfg($cfg)]
                        return Ok(Target::$driver(Arc::new(<$module::$driver as Driver>::parse(url)?)));
                        #[cfg(not($cfg))]
                        return Err(Error::Config(format!(
                            "{} URLs need sqlaio built with {}",
                            scheme.unwrap_or_default(),
                            stringify!($cfg).replace(" = ", " ")
                        )));
                    }
                )+
                let known = [$(concat!($($scheme, "://... "),+)),+].concat();
                Err(Error::Config(match scheme {
                    Some(scheme) if url.contains(':') && scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') => format!(
                        "unknown database scheme {scheme:?}: expected one of {}",
                        known.trim_end()
                    ),
                    _ => format!(
                        "{:?} is not a database URL: expected one of {}",
                        crate::url::redact(url),
                        known.trim_end()
                    ),
                }))
            }
        }
    };
}

registry! {
    feature = "sqlite" => sqlite::SqliteDriver ["sqlite", "sqlite3"],
    feature = "postgres" => postgres::PostgresDriver ["postgres", "postgresql"],
    feature = "mysql" => mysql::MysqlDriver ["mysql", "mariadb"],
    test => fake::FakeDriver ["fake"],
}

/// The driver's name, dialect and engine-level facts, read off a [`Target`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts {
    /// The driver's name (`sqlite`).
    pub(crate) name: &'static str,
    /// Its SQL dialect.
    pub(crate) dialect: Dialect,
    /// See [`Driver::SINGLE_WRITER`].
    pub(crate) single_writer: Option<bool>,
    /// See [`Driver::is_transient`].
    pub(crate) is_transient: fn(&Error) -> bool,
}

struct GetFacts;

impl Visitor for GetFacts {
    type Output = Facts;
    fn visit<D: Driver>(self, _: &Arc<D::Config>) -> Facts {
        Facts {
            name: D::NAME,
            dialect: D::DIALECT,
            single_writer: D::SINGLE_WRITER,
            is_transient: D::is_transient,
        }
    }
}

struct GetKeeper;

impl Visitor for GetKeeper {
    type Output = Option<Box<dyn Any + Send>>;
    fn visit<D: Driver>(self, config: &Arc<D::Config>) -> Self::Output {
        D::keeper(config)
    }
}

impl Target {
    /// What the layers above need to know of the driver.
    pub(crate) fn facts(&self) -> Facts {
        self.visit(GetFacts)
    }

    /// See [`Driver::keeper`].
    pub(crate) fn keeper(&self) -> Option<Box<dyn Any + Send>> {
        self.visit(GetKeeper)
    }
}

struct Describe<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Visitor for Describe<'_, '_> {
    type Output = fmt::Result;
    fn visit<D: Driver>(self, config: &Arc<D::Config>) -> fmt::Result {
        fmt::Debug::fmt(&**config, self.0)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visit(Describe(f))
    }
}

/// Walks the causes of a connect error for one that says whether trying
/// again is worth it: an I/O error that says the server could not be
/// reached for now, or whatever `driver` makes of its own errors. `false`
/// for any other error.
pub(crate) fn is_transient_connect(
    error: &Error,
    driver: impl Fn(&(dyn std::error::Error + 'static)) -> Option<bool>,
) -> bool {
    let Error::Connect { source, .. } = error else {
        return false;
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | TimedOut
                    | NotConnected
                    | BrokenPipe
                    | UnexpectedEof
            );
        }
        if let Some(transient) = driver(err) {
            return transient;
        }
        cause = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_say_why() {
        let error = |url| Target::parse(url).unwrap_err().to_string();
        let e = error("oracle://x");
        assert!(e.contains("unknown database scheme \"oracle\""), "{e}");
        assert!(e.contains("sqlite://"), "{e}");
        let e = error("sqlite:app.db");
        assert!(e.contains("must be sqlite://path"), "{e}");
        let e = error("");
        assert!(e.contains("empty"), "{e}");
        let e = error("sqlite://a.db?cache=shared");
        assert!(e.contains("unknown sqlite URL option \"cache\""), "{e}");
        let e = error("app.db");
        assert!(e.contains("is not a database URL"), "{e}");
    }

    #[test]
    fn each_scheme_finds_its_driver() {
        let facts = |url| Target::parse(url).unwrap().facts();
        assert_eq!(facts("sqlite::memory:").dialect, Dialect::Sqlite);
        assert_eq!(facts("SQLite3://app.db").name, "sqlite");
        #[cfg(feature = "postgres")]
        {
            assert_eq!(facts("postgres://u@h/db").dialect, Dialect::Postgres);
            assert_eq!(facts("postgresql://u@h/db").name, "postgres");
            assert_eq!(facts("host=h user=u dbname=db").name, "postgres");
        }
        #[cfg(not(feature = "postgres"))]
        {
            let e = Target::parse("postgres://u@h/db").unwrap_err().to_string();
            assert!(e.contains("built with feature \"postgres\""), "{e}");
        }
    }
}
