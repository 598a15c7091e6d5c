//! [`EngineBuilder`]: every setting of an engine, with its default.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::driver::Target;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::pool::{Pool, PoolConfig};
use crate::read::{Reads, Replica};
use crate::strategy::Strategy;
use crate::trace::TraceConfig;
use crate::wait::WaitPolicy;
use crate::worker::{Hook, Setup};
use crate::ThreadStrategy;

/// The default for [`EngineBuilder::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10;

/// The default for [`EngineBuilder::acquire_timeout`].
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The default for [`EngineBuilder::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The default for [`EngineBuilder::max_lifetime`].
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// The default for [`EngineBuilder::timeout_grace`].
pub const DEFAULT_TIMEOUT_GRACE: Duration = Duration::from_secs(2);

/// The default for [`EngineBuilder::close_timeout`].
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Configures and builds an [`Engine`].
///
/// Every setter consumes and returns the builder; [`build`](EngineBuilder::build)
/// validates the whole configuration.
#[must_use = "a builder does nothing until .build() is called"]
pub struct EngineBuilder {
    url: Option<String>,
    /// The URL was to come from `DATABASE_URL` ([`EngineBuilder::from_env`]).
    url_from_env: bool,
    strategy: Arc<dyn Strategy>,
    max_connections: usize,
    interrupt_on_drop: bool,
    statement_timeout: Option<Duration>,
    acquire_timeout: Duration,
    test_before_acquire: bool,
    single_writer: Option<bool>,
    after_connect: Option<Hook>,
    min_connections: usize,
    idle_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
    close_timeout: Duration,
    timeout_grace: Duration,
    trace: TraceConfig,
    prepared_statements: bool,
    replicas: Vec<(String, ReplicaSetup)>,
    replica_fallback: bool,
    max_replica_lag: Option<Duration>,
    wait_policy: WaitPolicy,
}

/// What a replica's builder gets beyond the engine's settings.
type ReplicaSetup = Box<dyn FnOnce(EngineBuilder) -> EngineBuilder + Send>;

/// The default [`EngineBuilder::acquire_timeout`] of a replica's pool: it
/// bounds what an unreachable replica costs a read before the view moves on.
pub const DEFAULT_REPLICA_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            url: None,
            url_from_env: false,
            strategy: Arc::new(ThreadStrategy),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            interrupt_on_drop: true,
            statement_timeout: None,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            test_before_acquire: false,
            single_writer: None,
            after_connect: None,
            min_connections: 0,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_lifetime: Some(DEFAULT_MAX_LIFETIME),
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            timeout_grace: DEFAULT_TIMEOUT_GRACE,
            trace: TraceConfig::default(),
            prepared_statements: true,
            replicas: Vec::new(),
            replica_fallback: true,
            max_replica_lag: None,
            wait_policy: WaitPolicy::default(),
        }
    }
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("url", &self.url.as_deref().map(crate::url::redact))
            .field("strategy", &self.strategy)
            .field("max_connections", &self.max_connections)
            .field("interrupt_on_drop", &self.interrupt_on_drop)
            .field("statement_timeout", &self.statement_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("test_before_acquire", &self.test_before_acquire)
            .field("single_writer", &self.single_writer)
            .field("after_connect", &self.after_connect.is_some())
            .field("min_connections", &self.min_connections)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("close_timeout", &self.close_timeout)
            .field("timeout_grace", &self.timeout_grace)
            .field("trace", &self.trace)
            .field("prepared_statements", &self.prepared_statements)
            .field(
                "replicas",
                &self
                    .replicas
                    .iter()
                    .map(|(url, _)| crate::url::redact(url))
                    .collect::<Vec<_>>(),
            )
            .field("replica_fallback", &self.replica_fallback)
            .field("max_replica_lag", &self.max_replica_lag)
            .field("wait_policy", &self.wait_policy)
            .finish()
    }
}

impl EngineBuilder {
    /// The database URL: `sqlite://path/to/file.db` (relative),
    /// `sqlite:///absolute/path.db`, or `sqlite::memory:` for a temporary
    /// database shared by every connection of the engine (append `?mode=ro`
    /// to open a file read-only); with the `postgres` feature,
    /// `postgres://user:password@host:port/db?sslmode=...` (or
    /// `postgresql://`, or a `host=... user=...` key-value string).
    ///
    /// Required; there is no default.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// A builder whose URL comes from the `DATABASE_URL` environment
    /// variable, every other setting at its default.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// # std::env::set_var("DATABASE_URL", "sqlite::memory:");
    /// let engine = sqlaio::EngineBuilder::from_env().max_connections(4).build()?;
    /// assert_eq!(engine.scalar::<i64>("SELECT 1", ()).await?, 1);
    /// # Ok::<(), sqlaio::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// Without the variable (or with one that is not valid Unicode),
    /// [`build`](EngineBuilder::build) fails with [`Error::Config`] naming it.
    pub fn from_env() -> Self {
        let url = std::env::var("DATABASE_URL").ok();
        EngineBuilder {
            url,
            url_from_env: true,
            ..EngineBuilder::default()
        }
    }

    /// The SQLite database file at `path`: any path, with spaces, `?`, `#`
    /// or `%` in it, which a URL would need percent-encoded. Query options
    /// cannot be given this way; use [`url`](EngineBuilder::url) for them.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub fn sqlite_path(self, path: impl AsRef<std::path::Path>) -> Self {
        let bytes = path.as_ref().as_os_str().as_encoded_bytes();
        let encoded = percent_encoding::percent_encode(bytes, PATH_UNSAFE);
        self.url(format!("sqlite://{encoded}"))
    }

    /// Where blocking work runs. Defaults to [`ThreadStrategy`].
    pub fn strategy(mut self, strategy: impl Strategy) -> Self {
        self.strategy = Arc::new(strategy);
        self
    }

    /// Where blocking work runs, as a shared strategy object. Defaults to [`ThreadStrategy`].
    pub fn strategy_arc(mut self, strategy: Arc<dyn Strategy>) -> Self {
        self.strategy = strategy;
        self
    }

    /// The largest number of connections (and so worker threads) the pool
    /// opens; callers beyond it wait asynchronously for a free connection.
    /// Must be at least 1. Defaults to [`DEFAULT_MAX_CONNECTIONS`] (10).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// What dropping the future of a running statement does: `true`
    /// interrupts it on the database (`sqlite3_interrupt`, or
    /// `pg_cancel_backend` on PostgreSQL), aimed so that it can never hit a later statement;
    /// `false` lets it run to completion with its answer discarded, as
    /// sqlalchemy_aio does. Transaction control (`COMMIT`, `ROLLBACK`) is
    /// never interrupted either way. Defaults to `true`.
    pub fn interrupt_on_drop(mut self, interrupt: bool) -> Self {
        self.interrupt_on_drop = interrupt;
        self
    }

    /// The longest a statement may run: past it, the statement is interrupted
    /// on the database and its call fails with [`Error::Timeout`]. Applies to
    /// each execute, each fetch of more rows, and each `run_in_thread`
    /// closure; never to `COMMIT` or `ROLLBACK`. Connections can override it
    /// with [`Connection::set_statement_timeout`](crate::Connection::set_statement_timeout). Defaults to no limit.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// The longest a caller waits for a pooled connection (including opening
    /// one) before failing with [`Error::PoolTimeout`], which carries the last
    /// connect error when connections could not be opened. Transient connect
    /// failures (a refused or reset connection, a server starting up) are
    /// retried with backoff within this time; others fail at once. Must be
    /// more than zero. Defaults to [`DEFAULT_ACQUIRE_TIMEOUT`] (30 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Whether the pool checks that an idle connection still works (one
    /// round trip to the database) before handing it out; a dead one is
    /// discarded and replaced. Worth it for PostgreSQL servers that restart
    /// or drop idle connections; without it, the first statement on a dead
    /// connection fails with [`Error::ConnectionLost`] and the connection is
    /// replaced. Defaults to `false`.
    pub fn test_before_acquire(mut self, test: bool) -> Self {
        self.test_before_acquire = test;
        self
    }

    /// Connections the pool keeps open even when idle. From the engine's first
    /// use on (building it connects nothing), every acquire that finds fewer
    /// open opens the rest in the background, where they wait idle; idle
    /// connections are never closed below this number. Must not exceed
    /// `max_connections`. Defaults to 0.
    pub fn min_connections(mut self, n: usize) -> Self {
        self.min_connections = n;
        self
    }

    /// How long a connection may sit idle in the pool before it is closed
    /// (and its worker thread released); `None` keeps idle connections
    /// forever. Defaults to [`DEFAULT_IDLE_TIMEOUT`] (10 minutes).
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.idle_timeout = timeout.into();
        self
    }

    /// How long a connection may live before the pool replaces it (checked
    /// when it is idle, never in the middle of use); `None` for no limit.
    /// Defaults to [`DEFAULT_MAX_LIFETIME`] (30 minutes).
    pub fn max_lifetime(mut self, lifetime: impl Into<Option<Duration>>) -> Self {
        self.max_lifetime = lifetime.into();
        self
    }

    /// How long [`Engine::close`] lets running statements finish before it
    /// interrupts them. Defaults to [`DEFAULT_CLOSE_TIMEOUT`] (30 s).
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// How long past a statement's timeout its caller waits for the answer
    /// before giving up on the connection: when the interrupt cannot bring
    /// the answer back in time (a server or network that went silent), the
    /// call fails with [`Error::Timeout`], the connection is discarded
    /// rather than returned to the pool, and its worker is left to end once
    /// its socket fails. A call with a statement timeout thus returns within
    /// the timeout plus this grace, whatever the network does. Defaults to
    /// [`DEFAULT_TIMEOUT_GRACE`] (2 s).
    pub fn timeout_grace(mut self, grace: Duration) -> Self {
        self.timeout_grace = grace;
        self
    }

    /// How the engine's workers wait for their next request and its callers
    /// for their answers: checking for a while without sleeping before they
    /// sleep ([`WaitPolicy::Adaptive`], or with each check bounded,
    /// [`WaitPolicy::SpinAtMost`]), or sleeping at once
    /// ([`WaitPolicy::Sleep`]: no thread ever holds a core while it waits).
    /// Every policy gives the same results; only time and CPU time differ.
    ///
    /// Defaults to [`WaitPolicy::Adaptive`], chosen by measurement: for
    /// short statements it was both faster and lower in CPU time per call
    /// than `Sleep`, since a sleep and a wake-up cost more CPU time than
    /// checks that end as soon as the other side answers (the guide's
    /// `threading.md` has the numbers).
    pub fn wait_policy(mut self, policy: WaitPolicy) -> Self {
        self.wait_policy = policy;
        self
    }

    /// Statements that take at least this long are logged at `warn` level
    /// (with their capped text and duration) inside their `sqlaio.statement`
    /// span. Defaults to none.
    #[cfg(feature = "tracing")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
    pub fn slow_statement_threshold(mut self, threshold: Duration) -> Self {
        self.trace.slow_threshold = Some(threshold);
        self
    }

    /// Whether statement spans record parameter values (fields
    /// `db.query.parameter.0`, `db.query.parameter.1`, ...: the first twelve
    /// values; named ones follow the positional ones as `name=value`). They
    /// may hold personal data or secrets, so they are never recorded unless
    /// this is `true`. Defaults to `false`.
    #[cfg(feature = "tracing")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
    pub fn log_parameters(mut self, log: bool) -> Self {
        self.trace.log_parameters = log;
        self
    }

    /// The pool's name in metrics (label `db.client.connection.pool.name`),
    /// to tell the pools of several engines apart. Defaults to the URL
    /// without credentials or options: `postgresql://db.internal:5432/app`,
    /// `sqlite:app.db`.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn pool_name(mut self, name: impl Into<String>) -> Self {
        self.trace.pool_name = Some(name.into());
        self
    }

    /// SQLite only: lets one connection of the engine write at a time. A
    /// transaction from [`begin`](crate::Connection::begin) holds the engine's write
    /// permit until it ends, and an autocommit write or an `execute_many`
    /// holds it for its statement; other writers wait for it in their worker,
    /// first come, first served (up to 5 s, then "database is locked"), while
    /// readers never wait. SQLite's own busy handler keeps no order, so
    /// without the permit one writer can lose every race for the whole busy
    /// timeout on a busy machine; with it, the busy timeout only has to cover
    /// other processes. `false` leaves writers to WAL, `BEGIN IMMEDIATE` and
    /// the busy timeout alone.
    ///
    /// Defaults to `true` on SQLite; `true` is a configuration error on PostgreSQL.
    pub fn single_writer(mut self, single: bool) -> Self {
        self.single_writer = Some(single);
        self
    }

    /// Runs `hook` on every new connection, on its worker thread, before the
    /// connection is first used: PRAGMAs, custom SQLite functions,
    /// `SET search_path`, ... The hook names the raw type it takes
    /// (`&mut rusqlite::Connection` or `&mut postgres::Client`); an error
    /// (or a panic) fails the connect with that error.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let engine = sqlaio::Engine::builder()
    ///     .url("sqlite::memory:")
    ///     .after_connect(|raw: &mut rusqlite::Connection| {
    ///         raw.execute_batch("PRAGMA cache_size = -8000;")?;
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// assert_eq!(engine.scalar::<i64>("PRAGMA cache_size", ()).await?, -8000);
    /// # Ok::<(), sqlaio::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn after_connect<R, F>(mut self, hook: F) -> Self
    where
        R: Any,
        F: Fn(&mut R) -> Result<()> + Send + Sync + 'static,
    {
        self.after_connect = Some(Arc::new(move |raw: &mut dyn Any, driver| {
            match raw.downcast_mut::<R>() {
                Some(raw) => hook(raw),
                None => Err(Error::WrongDriver {
                    expected: std::any::type_name::<R>(),
                    actual: driver,
                }),
            }
        }));
        self
    }

    /// Whether PostgreSQL statements are prepared (named, cached per
    /// connection). `false` runs each statement unnamed in one round trip,
    /// keeps no session state, and sends no pid-targeted cancel: the mode
    /// for a transaction pooler (PgBouncer `pool_mode=transaction`). Sets
    /// the URL option `prepared_statements=false` on the engine's URLs
    /// (which a URL may also carry itself); no effect on other databases.
    /// Defaults to `true`.
    pub fn prepared_statements(mut self, prepared: bool) -> Self {
        self.prepared_statements = prepared;
        self
    }

    /// Adds a PostgreSQL read replica (a streaming standby, or a multi-host
    /// URL of several) for [`Engine::read`]; may be called more than once.
    /// Its pool takes the engine's settings, with an
    /// [`acquire_timeout`](EngineBuilder::acquire_timeout) of at most
    /// [`DEFAULT_REPLICA_ACQUIRE_TIMEOUT`]. Defaults to no replica.
    pub fn replica(self, url: impl Into<String>) -> Self {
        self.replica_with(url, |b| b)
    }

    /// [`replica`](EngineBuilder::replica), with its pool's settings
    /// changed by `setup` (`|b| b.max_connections(4)`); the URL and the
    /// replica settings themselves are the engine's. Defaults to no replica.
    pub fn replica_with(
        mut self,
        url: impl Into<String>,
        setup: impl FnOnce(EngineBuilder) -> EngineBuilder + Send + 'static,
    ) -> Self {
        self.replicas.push((url.into(), Box::new(setup)));
        self
    }

    /// Whether [`Engine::read`] falls back to the primary, in read-only
    /// sessions, when no replica is available; with `false` it fails with
    /// [`Error::Connect`] naming each replica's state. Defaults to `true`.
    pub fn replica_fallback(mut self, fallback: bool) -> Self {
        self.replica_fallback = fallback;
        self
    }

    /// Leaves out of [`Engine::read`] a replica whose replay lags more than
    /// `lag` behind what it received; measured at most once a second per
    /// replica. Defaults to no bound.
    pub fn max_replica_lag(mut self, lag: Duration) -> Self {
        self.max_replica_lag = Some(lag);
        self
    }

    /// Builds the engine and opens its first connections now
    /// ([`min_connections`](EngineBuilder::min_connections) of them, at least
    /// one), so that a database that cannot be reached fails start-up
    /// instead of the first request. [`build`](EngineBuilder::build) is the
    /// lazy form.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let engine = sqlaio::Engine::builder().url("sqlite::memory:").connect().await?;
    /// assert_eq!(engine.pool_status().idle, 1);
    ///
    /// let missing = sqlaio::Engine::builder()
    ///     .url("sqlite:///nonexistent-dir/app.db?mode=ro")
    ///     .connect()
    ///     .await;
    /// assert!(matches!(missing, Err(sqlaio::Error::Connect { .. })));
    /// # Ok::<(), sqlaio::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`build`](EngineBuilder::build); the connect error when a
    /// connection cannot be opened. Errors worth retrying (a server still
    /// starting, refusing connections for now) are retried until the
    /// [`acquire_timeout`](EngineBuilder::acquire_timeout), which then bounds
    /// the start-up.
    ///
    /// # Cancellation
    /// Dropping the future closes the connections it opened with the engine.
    pub async fn connect(self) -> Result<Engine> {
        let wanted = self.min_connections.max(1);
        let engine = self.build()?;
        let mut opened = Vec::with_capacity(wanted);
        for _ in 0..wanted {
            match engine.connect().await {
                Ok(conn) => opened.push(conn),
                Err(e) => {
                    drop(opened);
                    let _ = engine.close().await;
                    return Err(match e {
                        Error::PoolTimeout {
                            last_connect_error: Some(connect),
                        } => *connect,
                        e => e,
                    });
                }
            }
        }
        drop(opened);
        Ok(engine)
    }

    /// Validates the configuration and builds the engine. Connects nothing:
    /// connections open on first use.
    ///
    /// # Errors
    /// [`Error::Config`] for a missing or malformed URL or `max_connections` of 0.
    pub fn build(mut self) -> Result<Engine> {
        let replicas = std::mem::take(&mut self.replicas);
        let url = self.url.clone().ok_or_else(|| {
            Error::Config(if self.url_from_env {
                "no database URL: the DATABASE_URL environment variable is not set".into()
            } else {
                "no database URL: call .url(..) on the builder".into()
            })
        })?;
        if self.max_connections == 0 {
            return Err(Error::Config("max_connections must be at least 1".into()));
        }
        if self.min_connections > self.max_connections {
            return Err(Error::Config(format!(
                "min_connections ({}) exceeds max_connections ({})",
                self.min_connections, self.max_connections
            )));
        }
        if self.acquire_timeout.is_zero() {
            return Err(Error::Config(
                "acquire_timeout must be more than zero".into(),
            ));
        }
        let url = if self.prepared_statements {
            url
        } else {
            crate::url::with_pg_option(&url, "prepared_statements", "false")
        };
        let target = Target::parse(&url)?;
        let facts = target.facts();
        let reads = self.reads(replicas, &url, facts.name)?;
        let single_writer = match (facts.single_writer, self.single_writer) {
            (None, Some(true)) => {
                return Err(Error::Config(format!(
                    "single_writer does not apply to {} databases",
                    facts.name
                )))
            }
            (None, _) => false,
            (Some(default), chosen) => chosen.unwrap_or(default),
        };
        let keeper = target.keeper();
        let mut setup = Setup::new(target, self.after_connect, single_writer);
        setup.wait = self.wait_policy;
        let reads = reads.map(|r| Arc::new(r) as Arc<dyn crate::engine::ReadSide>);
        Ok(Engine::with_reads(
            Pool::new(
                setup,
                crate::url::redact(&url),
                self.strategy,
                self.max_connections,
                PoolConfig {
                    interrupt_on_drop: self.interrupt_on_drop,
                    statement_timeout: self.statement_timeout,
                    acquire_timeout: self.acquire_timeout,
                    test_before_acquire: self.test_before_acquire,
                    min_connections: self.min_connections,
                    idle_timeout: self.idle_timeout,
                    max_lifetime: self.max_lifetime,
                    close_timeout: self.close_timeout,
                    timeout_grace: self.timeout_grace,
                    trace: self.trace,
                },
                keeper,
            ),
            reads,
        ))
    }

    /// A builder for a read-only pool on `url` with this builder's settings.
    fn read_only(&self, url: &str) -> EngineBuilder {
        let mut url = crate::url::with_pg_option(url, "read_only", "true");
        if !self.prepared_statements {
            url = crate::url::with_pg_option(&url, "prepared_statements", "false");
        }
        EngineBuilder {
            url: Some(url),
            url_from_env: false,
            strategy: self.strategy.clone(),
            max_connections: self.max_connections,
            interrupt_on_drop: self.interrupt_on_drop,
            statement_timeout: self.statement_timeout,
            acquire_timeout: self.acquire_timeout,
            test_before_acquire: self.test_before_acquire,
            single_writer: None,
            after_connect: self.after_connect.clone(),
            min_connections: 0,
            idle_timeout: self.idle_timeout,
            max_lifetime: self.max_lifetime,
            close_timeout: self.close_timeout,
            timeout_grace: self.timeout_grace,
            trace: self.trace.clone(),
            prepared_statements: self.prepared_statements,
            replicas: Vec::new(),
            replica_fallback: false,
            max_replica_lag: None,
            wait_policy: self.wait_policy,
        }
    }

    /// The replica engines and the read-only fallback on the primary.
    fn reads(
        &self,
        replicas: Vec<(String, ReplicaSetup)>,
        url: &str,
        driver: &str,
    ) -> Result<Option<Reads>> {
        if replicas.is_empty() {
            return Ok(None);
        }
        if driver != "postgres" {
            return Err(Error::Config(format!(
                "read replicas apply to PostgreSQL engines, not {driver}"
            )));
        }
        let mut engines = Vec::with_capacity(replicas.len());
        for (replica, setup) in replicas {
            let mut builder = self.read_only(&replica);
            builder.acquire_timeout = builder.acquire_timeout.min(DEFAULT_REPLICA_ACQUIRE_TIMEOUT);
            let mut builder = setup(builder);
            builder.url = Some(crate::url::with_pg_option(&replica, "read_only", "true"));
            if !self.prepared_statements {
                builder.prepared_statements = false;
            }
            builder.replicas = Vec::new();
            if Target::parse(&replica)?.facts().name != "postgres" {
                return Err(Error::Config(
                    "a read replica must be a PostgreSQL URL".into(),
                ));
            }
            engines.push(Replica::new(builder.build()?));
        }
        let fallback = if self.replica_fallback {
            Some(self.read_only(url).build()?)
        } else {
            None
        };
        Ok(Some(Reads::new(engines, fallback, self.max_replica_lag)))
    }
}

/// The bytes of a path that a `sqlite://` URL must percent-encode: the
/// query and fragment marks, `%` itself, and anything not printable ASCII.
#[cfg(feature = "sqlite")]
const PATH_UNSAFE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'?')
    .add(b'#')
    .add(b'%');

#[cfg(test)]
mod tests;
