//! Read replicas: [`Engine::read`] and the [`ReadView`] it returns.
//!
//! Each replica is an engine of its own (its own pool); the view takes a
//! connection from a healthy one, round robin, and falls back to a
//! read-only pool on the primary when none is available (or fails, as
//! configured). Every session of the view is read-only, replica or not, so
//! code cannot start writing only during an outage. Routing never looks at
//! the SQL: only the view routes.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::connection::{prepare, Begin, ConnRef, Connection};
use crate::engine::{Engine, ReadSide};
use crate::error::{Error, ErrorKind, Result};
use crate::params::Params;
use crate::pool::PoolStatus;
use crate::result::CursorResult;
use crate::sql::IntoSql;
use crate::transaction::Transaction;
use crate::value::FromValue;

/// How long a replica found unreachable is left out before it is tried again.
pub(crate) const REPLICA_RECHECK: Duration = Duration::from_secs(3);

/// How often, at most, a replica's lag is measured.
pub(crate) const LAG_INTERVAL: Duration = Duration::from_secs(1);

/// The replication lag, in seconds: 0 on a server not in recovery, and on a
/// standby that has replayed all it received (an idle primary sends
/// nothing, so the last replayed transaction can be old without any lag);
/// otherwise the age of the last transaction replayed.
const LAG_SQL: &str = "SELECT CASE \
     WHEN NOT pg_is_in_recovery() THEN 0 \
     WHEN pg_last_wal_receive_lsn() IS NOT NULL \
          AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
     ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) \
     END::float8";

/// The replay position of a server, in bytes of WAL since `0/0`: the
/// primary's write position on a primary.
const REPLAYED_SQL: &str = "SELECT (CASE WHEN pg_is_in_recovery() \
     THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::int8";

/// A position in the primary's write-ahead log, from
/// [`Engine::wal_position`]: a read view from
/// [`Engine::read_after`] only uses replicas that have replayed up to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WalPosition(pub u64);

impl fmt::Display for WalPosition {
    /// PostgreSQL's `pg_lsn` form, `16/B374D848`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// The replicas of an engine, and what to do when none is available.
pub(crate) struct Reads {
    pub(crate) replicas: Vec<Replica>,
    /// A read-only pool on the primary, when falling back is allowed.
    pub(crate) fallback: Option<Engine>,
    pub(crate) max_lag: Option<Duration>,
    next: AtomicUsize,
}

/// One replica: its engine and what was last learned of it.
pub(crate) struct Replica {
    pub(crate) engine: Engine,
    health: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    /// Left out until then (unreachable).
    down_until: Option<Instant>,
    last_error: Option<String>,
    lag: Option<Duration>,
    /// When the lag was last measured (or a measure started).
    measured: Option<Instant>,
    /// The highest replay position seen.
    replayed: u64,
}

impl Replica {
    pub(crate) fn new(engine: Engine) -> Replica {
        Replica {
            engine,
            health: Mutex::new(Health::default()),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mark_down(&self, error: &Error) {
        let mut h = self.health();
        h.down_until = Some(Instant::now() + REPLICA_RECHECK);
        h.last_error = Some(error.to_string());
    }

    fn is_down(&self) -> bool {
        self.health().down_until.is_some_and(|t| Instant::now() < t)
    }

    /// `true` when the lag measured last is over `max`; the lag is measured
    /// again on `conn` when the last measure is older than [`LAG_INTERVAL`].
    async fn lagging(&self, conn: &Connection, max: Duration) -> Result<bool> {
        let stale = {
            let mut h = self.health();
            let stale = h.measured.is_none_or(|t| t.elapsed() >= LAG_INTERVAL);
            if stale {
                // Claimed: concurrent callers use the last value meanwhile.
                h.measured = Some(Instant::now());
            }
            stale
        };
        if stale {
            let seconds: f64 = conn.scalar(LAG_SQL, ()).await?;
            self.health().lag = Some(Duration::from_secs_f64(seconds.max(0.0)));
        }
        Ok(self.health().lag.is_some_and(|lag| lag > max))
    }

    /// `true` once the replica has replayed up to `position` (asked on
    /// `conn` unless an earlier answer already said so).
    async fn replayed(&self, conn: &Connection, position: WalPosition) -> Result<bool> {
        if self.health().replayed >= position.0 {
            return Ok(true);
        }
        let replayed: Option<i64> = conn.scalar(REPLAYED_SQL, ()).await?;
        let replayed = replayed.map_or(0, |r| r.max(0) as u64);
        let mut h = self.health();
        h.replayed = h.replayed.max(replayed);
        Ok(h.replayed >= position.0)
    }
}

/// `true` for an error that says the replica cannot be reached now.
fn unreachable(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ConnectionFailed | ErrorKind::PoolTimeout | ErrorKind::ConnectionLost
    )
}

impl Reads {
    pub(crate) fn new(
        replicas: Vec<Replica>,
        fallback: Option<Engine>,
        max_lag: Option<Duration>,
    ) -> Reads {
        Reads {
            replicas,
            fallback,
            max_lag,
            next: AtomicUsize::new(0),
        }
    }

    /// A connection on a healthy replica, or on the fallback.
    async fn connect(&self, after: Option<WalPosition>) -> Result<Connection> {
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut why = Vec::new();
        for i in 0..n {
            let replica = &self.replicas[(start + i) % n];
            if replica.is_down() {
                why.push(format!("{}: down", replica.engine.url()));
                continue;
            }
            let conn = match replica.engine.connect().await {
                Ok(conn) => conn,
                Err(e) if unreachable(&e) => {
                    replica.mark_down(&e);
                    why.push(format!("{}: {e}", replica.engine.url()));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(max) = self.max_lag {
                match replica.lagging(&conn, max).await {
                    Ok(false) => {}
                    Ok(true) => {
                        why.push(format!("{}: lagging over {max:?}", replica.engine.url()));
                        continue;
                    }
                    Err(e) => {
                        replica.mark_down(&e);
                        why.push(format!("{}: {e}", replica.engine.url()));
                        continue;
                    }
                }
            }
            if let Some(position) = after {
                match replica.replayed(&conn, position).await {
                    Ok(true) => {}
                    Ok(false) => {
                        why.push(format!(
                            "{}: not replayed up to {position}",
                            replica.engine.url()
                        ));
                        continue;
                    }
                    Err(e) => {
                        replica.mark_down(&e);
                        why.push(format!("{}: {e}", replica.engine.url()));
                        continue;
                    }
                }
            }
            return Ok(conn);
        }
        match &self.fallback {
            Some(primary) => primary.connect().await,
            None => Err(Error::Connect {
                url: "read replicas".into(),
                source: format!(
                    "no replica available and falling back to the primary is off: {}",
                    why.join("; ")
                )
                .into(),
            }),
        }
    }

    /// Each replica's health, lag and pool.
    pub(crate) fn status(&self) -> Vec<ReplicaStatus> {
        self.replicas
            .iter()
            .map(|r| {
                let h = r.health();
                ReplicaStatus {
                    url: r.engine.url().to_owned(),
                    healthy: h.down_until.is_none_or(|t| Instant::now() >= t),
                    lag: h.lag,
                    last_error: h.last_error.clone(),
                    pool: r.engine.pool_status(),
                }
            })
            .collect()
    }

    /// Closes every replica engine and the fallback.
    pub(crate) async fn close(&self) {
        for r in &self.replicas {
            r.engine.close_pool().await;
        }
        if let Some(f) = &self.fallback {
            f.close_pool().await;
        }
    }
}

impl ReadSide for Reads {
    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(Reads::close(self))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Engine {
    /// The read replicas, when the engine has any.
    fn reads(&self) -> Option<&Reads> {
        self.read_side()?.as_any().downcast_ref::<Reads>()
    }

    /// The read side of the engine: the same calls, on a healthy read
    /// replica (see [`EngineBuilder::replica`](crate::EngineBuilder::replica)) in read-only sessions, or
    /// on the primary in read-only sessions when none is available (as
    /// [`EngineBuilder::replica_fallback`](crate::EngineBuilder::replica_fallback) says). Only this view routes:
    /// the engine's own calls always go to the primary, whatever their
    /// SQL. Without replicas (and on SQLite and MySQL) the view is the
    /// engine's own pool.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
    /// assert_eq!(engine.read().scalar::<i64>("SELECT 1", ()).await?, 1);
    /// # Ok::<(), sqlaio::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn read(&self) -> ReadView {
        ReadView::new(self.clone())
    }

    /// The primary's current write position, to pass to
    /// [`read_after`](Engine::read_after) after a write: read-your-writes.
    /// Without replicas (and on SQLite and MySQL) no query runs and the
    /// position is 0.
    ///
    /// # Errors
    /// As [`Engine::scalar`].
    ///
    /// # Cancellation
    /// Dropping the future only discards the answer.
    pub async fn wal_position(&self) -> Result<WalPosition> {
        if self.reads().is_none() {
            return Ok(WalPosition(0));
        }
        let position: i64 = self.scalar(REPLAYED_SQL, ()).await?;
        Ok(WalPosition(position.max(0) as u64))
    }

    /// A read view that only uses replicas that have replayed up to
    /// `position` (from [`wal_position`](Engine::wal_position) after a
    /// write), falling back as [`read`](Engine::read) does: the reads see
    /// that write. A replica's replay position is asked once per call until
    /// it has passed `position`.
    pub fn read_after(&self, position: WalPosition) -> ReadView {
        ReadView {
            engine: self.clone(),
            after: Some(position),
        }
    }

    /// Each read replica's health, last measured lag and pool; empty
    /// without replicas.
    pub fn replica_status(&self) -> Vec<ReplicaStatus> {
        self.reads().map_or_else(Vec::new, Reads::status)
    }
}

/// A replica's state, as [`Engine::replica_status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaStatus {
    /// The replica's URL, with any password redacted.
    pub url: String,
    /// `false` while the replica is left out after it could not be reached.
    pub healthy: bool,
    /// The lag last measured (only with a lag bound).
    pub lag: Option<Duration>,
    /// The last error that left it out.
    pub last_error: Option<String>,
    /// Its pool.
    pub pool: PoolStatus,
}

/// The read side of an [`Engine`], from [`Engine::read`]: the same calls,
/// on a read replica when the engine has healthy ones, else on the primary
/// (as configured by [`replica_fallback`](crate::EngineBuilder::replica_fallback)),
/// always in read-only sessions. On an engine without replicas (SQLite,
/// MySQL, or PostgreSQL without any) it is the engine's own pool, so one
/// code path runs everywhere.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct ReadView {
    engine: Engine,
    /// Only replicas replayed up to this position (read-your-writes).
    after: Option<WalPosition>,
}

impl fmt::Debug for ReadView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadView")
            .field("engine", &self.engine)
            .field(
                "replicas",
                &self.engine.reads().map_or(0, |r| r.replicas.len()),
            )
            .finish()
    }
}

impl ReadView {
    pub(crate) fn new(engine: Engine) -> ReadView {
        ReadView {
            engine,
            after: None,
        }
    }

    /// A connection for reading: on a healthy replica, or on the fallback.
    ///
    /// # Errors
    /// As [`Engine::connect`]; [`Error::Connect`] naming each replica's
    /// state when none is available and falling back is off.
    ///
    /// # Cancellation
    /// As [`Engine::connect`].
    pub async fn connect(&self) -> Result<Connection> {
        match self.engine.reads() {
            Some(reads) => reads.connect(self.after).await,
            None => self.engine.connect().await,
        }
    }

    /// Runs one statement on a read connection (see [`Engine::execute`]).
    /// A write fails with the database's read-only error.
    ///
    /// # Errors
    /// As [`connect`](ReadView::connect) and [`Connection::execute`].
    ///
    /// # Cancellation
    /// As [`Connection::execute`].
    pub async fn execute(
        &self,
        sql: impl IntoSql,
        params: impl Params,
    ) -> Result<CursorResult<'static>> {
        if self.engine.reads().is_none() {
            return self.engine.execute(sql, params).await;
        }
        let dialect = self.engine.dialect();
        let sql = prepare(dialect, sql.into_sql(dialect)?, params.into_parameters())?;
        let conn = self.connect().await?;
        let (header, cursor, rows) = conn.run(sql).await?;
        Ok(CursorResult::new(
            ConnRef::Owned(conn),
            header,
            cursor,
            rows,
        ))
    }

    /// Runs a query on a read connection and returns the first column of its first row.
    ///
    /// # Errors
    /// As [`Connection::scalar`].
    ///
    /// # Cancellation
    /// As [`Connection::execute`].
    pub async fn scalar<T: FromValue>(&self, sql: impl IntoSql, params: impl Params) -> Result<T> {
        self.execute(sql, params).await?.scalar().await
    }

    /// Begins a (read-only) transaction on a read connection of its own.
    ///
    /// # Errors
    /// As [`connect`](ReadView::connect) and [`Connection::begin`].
    ///
    /// # Cancellation
    /// As [`Connection::begin`].
    pub async fn begin(&self) -> Result<Transaction<'static>> {
        if self.engine.reads().is_none() {
            return self.engine.begin().await;
        }
        let conn = self.connect().await?;
        let level = conn.open_transaction(Begin::Immediate).await?;
        Ok(Transaction::new(ConnRef::Owned(conn), level))
    }

    /// Runs `f` with a raw driver connection of the read side on its worker
    /// thread (see [`Connection::run_in_thread`]).
    ///
    /// # Errors
    /// As [`connect`](ReadView::connect) (converted into `E`), then whatever
    /// [`Connection::run_in_thread`] returns.
    ///
    /// # Cancellation
    /// As [`Connection::run_in_thread`].
    pub async fn run_in_thread<R, T, E, F>(&self, f: F) -> Result<T, E>
    where
        R: Any,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&mut R) -> Result<T, E> + Send + 'static,
    {
        let conn = self.connect().await?;
        conn.run_in_thread(f).await
    }
}
