//! Applying migrations: the migrations table, the lock, and the loop that
//! checks and applies one pending migration per transaction.

use crate::block::block_on;
use crate::connection::Connection;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::sql::Dialect;
use crate::transaction::Transaction;

use super::checksum::fnv1a_32;
use super::script::{run_script, After};
use super::{AppliedMigration, MigrateError, Migration, Migrator, Report};

/// The first key of the PostgreSQL advisory lock, the same for every
/// sqlaio migrator: "sqla" in ASCII.
pub(crate) const LOCK_CLASS: i32 = 0x7371_6c61;

/// The SQL a migrator sends, for one dialect and one table name.
struct Statements {
    /// The database commits DDL on its own (MySQL): see [`apply_one`].
    implicit_commits: bool,
    create: String,
    select: String,
    insert: String,
}

impl Statements {
    fn new(dialect: Dialect, table: &str) -> Result<Statements> {
        let (columns, applied_at) = match dialect {
            Dialect::Sqlite => (
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, \
                 applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                "applied_at",
            ),
            Dialect::Postgres => (
                "version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, \
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()",
                "to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
            ),
            Dialect::MySql => (
                "version BIGINT PRIMARY KEY, name VARCHAR(255) NOT NULL, \
                 checksum VARCHAR(64) NOT NULL, \
                 applied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)",
                // A TIMESTAMP reads in the session's time zone, and `%f` is
                // microseconds: UTC, to the millisecond, as the others.
                "CONCAT(LEFT(DATE_FORMAT(CONVERT_TZ(applied_at, @@session.time_zone, '+00:00'), \
                 '%Y-%m-%dT%H:%i:%s.%f'), 23), 'Z')",
            ),
            #[allow(unreachable_patterns)]
            other => {
                return Err(Error::Config(format!(
                    "migrations do not support the {other:?} database yet"
                )))
            }
        };
        Ok(Statements {
            implicit_commits: dialect == Dialect::MySql,
            create: format!("CREATE TABLE IF NOT EXISTS {table} ({columns})"),
            select: format!(
                "SELECT version, name, checksum, {applied_at} AS applied_at FROM {table} ORDER BY version"
            ),
            insert: format!(
                "INSERT INTO {table} (version, name, checksum) VALUES (:version, :name, :checksum)"
            ),
        })
    }
}

/// The connection a run uses from start to end, and on PostgreSQL the
/// session-level advisory lock it holds meanwhile.
///
/// `Drop` cannot await: if the run's future is dropped while the lock is
/// held, the connection is moved to a thread of its own that sends the
/// unlock (after the rollback a dropped transaction queued on it), so the
/// pool never keeps a connection that still holds the lock.
struct Session {
    conn: Option<Connection>,
    unlock: Option<String>,
}

impl Session {
    /// Takes a connection and, on PostgreSQL, the advisory lock on
    /// (`LOCK_CLASS`, a hash of the schema-qualified table name). The key is
    /// fixed for a table, so every process migrating the same table waits
    /// for the others; migrations of another schema (the test harness gives
    /// each test one) do not.
    async fn open(engine: &Engine, table: &str) -> Result<Session> {
        let conn = engine.connect().await?;
        let mut session = Session {
            conn: Some(conn),
            unlock: None,
        };
        if engine.dialect() == Dialect::MySql {
            // A named lock held by this session until released (or the session ends).
            let name = format!("sqlaio_migrations.{}", table.to_ascii_lowercase());
            session.unlock = Some(format!("SELECT RELEASE_LOCK('{name}')"));
            let lock = format!("SELECT GET_LOCK('{name}', 600)");
            let locked = session
                .conn()
                .scalar::<Option<i64>>(lock.as_str(), ())
                .await;
            if !matches!(locked, Ok(Some(1))) {
                session.unlock = None;
                return Err(locked.err().unwrap_or_else(|| {
                    Error::Config("another run held the migration lock for 10 minutes".into())
                }));
            }
        }
        if engine.dialect() == Dialect::Postgres {
            let conn = session.conn();
            let qualified = if table.contains('.') {
                table.to_ascii_lowercase()
            } else {
                let schema: Option<String> =
                    conn.scalar("SELECT current_schema()::text", ()).await?;
                format!(
                    "{}.{}",
                    schema.unwrap_or_default(),
                    table.to_ascii_lowercase()
                )
            };
            let key = fnv1a_32(&qualified) as i32;
            // Armed before the lock is asked for: a future dropped while it
            // waits still unlocks (unlocking a lock not held only warns).
            session.unlock = Some(format!("SELECT pg_advisory_unlock({LOCK_CLASS}, {key})"));
            // `pg_advisory_lock` returns `void`, which has no value to decode.
            let lock = format!("SELECT true FROM pg_advisory_lock({LOCK_CLASS}, {key})");
            if let Err(e) = session.conn().execute(lock.as_str(), ()).await {
                // Refused or interrupted: not held.
                session.unlock = None;
                return Err(e);
            }
        }
        Ok(session)
    }

    fn conn(&self) -> &Connection {
        match &self.conn {
            Some(conn) => conn,
            None => unreachable!("a session holds its connection until it is released"),
        }
    }

    /// Releases the lock, if any, and gives the connection back to the pool.
    async fn release(mut self) -> Result<()> {
        if let Some(unlock) = self.unlock.clone() {
            self.conn().execute(unlock.as_str(), ()).await?;
            self.unlock = None;
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let (Some(conn), Some(unlock)) = (self.conn.take(), self.unlock.take()) else {
            return;
        };
        // If the unlock fails, the connection was lost, which ends the session
        // and its lock on the server. If no thread can be had, the closure is
        // dropped with the connection: the lock then lasts as long as that
        // pooled connection, the best that can be done without a thread.
        let _ = std::thread::Builder::new()
            .name("sqlaio-migrate-unlock".to_owned())
            .spawn(move || {
                let _ = block_on(conn.execute(unlock.as_str(), ()));
            });
    }
}

impl Migrator {
    /// The loop behind [`Migrator::run`].
    pub(super) async fn apply(&self, engine: &Engine) -> Result<Report, MigrateError> {
        let dialect = engine.dialect();
        let statements = Statements::new(dialect, &self.table)?;
        let session = Session::open(engine, &self.table).await?;
        let outcome = self.apply_pending(session.conn(), &statements).await;
        let released = session.release().await;
        let report = outcome?;
        released?;
        Ok(report)
    }

    /// Applies pending migrations one transaction at a time. Each
    /// transaction reads the table, checks it against the migrations and
    /// applies the next pending one, so a migration is checked and applied
    /// under the same lock: SQLite's write lock (`BEGIN IMMEDIATE`), taken
    /// by each transaction, or PostgreSQL's advisory lock, held by the
    /// session around the whole loop.
    async fn apply_pending(
        &self,
        conn: &Connection,
        statements: &Statements,
    ) -> Result<Report, MigrateError> {
        conn.execute(statements.create.as_str(), ()).await?;
        let mut report = Report::default();
        let mut first = true;
        loop {
            let tx = conn.begin().await?;
            let applied = read_applied(&tx, &statements.select).await?;
            if first {
                report.already_applied = applied
                    .iter()
                    .filter(|row| self.find(row.version).is_some())
                    .count();
                first = false;
            }
            let Some(next) = self.next_pending(&applied)? else {
                tx.rollback().await?;
                return Ok(report);
            };
            if apply_one(tx, next, statements).await? == Applied::Committed {
                // MySQL committed the migration's DDL on its own: record it now.
                conn.execute(statements.insert.as_str(), record(next))
                    .await?;
            }
            report.applied.push(next.version);
        }
    }

    /// Checks what the table records against the migrations and returns the
    /// first one not applied.
    pub(super) fn next_pending(
        &self,
        applied: &[AppliedMigration],
    ) -> Result<Option<&Migration>, MigrateError> {
        let mut latest: Option<i64> = None;
        for row in applied {
            match self.find(row.version) {
                Some(known) if known.checksum != row.checksum => {
                    return Err(MigrateError::Changed {
                        version: row.version,
                        name: known.name().to_owned(),
                        applied: row.checksum.clone(),
                        current: known.checksum.clone(),
                    });
                }
                Some(_) => latest = latest.max(Some(row.version)),
                None if self.ignore_unknown => {}
                None => {
                    return Err(MigrateError::Unknown {
                        version: row.version,
                        name: row.name.clone(),
                    })
                }
            }
        }
        let is_applied = |version| {
            applied
                .binary_search_by_key(&version, |row| row.version)
                .is_ok()
        };
        let next = self.migrations.iter().find(|m| !is_applied(m.version));
        if let (Some(next), Some(latest)) = (next, latest) {
            if next.version < latest && !self.allow_out_of_order {
                return Err(MigrateError::OutOfOrder {
                    version: next.version,
                    name: next.name().to_owned(),
                    latest,
                });
            }
        }
        Ok(next)
    }

    /// The rows of the migrations table; none when it does not exist.
    pub(super) async fn read(
        &self,
        engine: &Engine,
    ) -> Result<Vec<AppliedMigration>, MigrateError> {
        let dialect = engine.dialect();
        let statements = Statements::new(dialect, &self.table)?;
        let conn = engine.connect().await?;
        let exists: bool = match dialect {
            Dialect::Postgres => {
                conn.scalar("SELECT to_regclass($1) IS NOT NULL", (self.table.as_ref(),))
                    .await?
            }
            Dialect::MySql => {
                conn.scalar::<i64>(
                    "SELECT count(*) FROM information_schema.tables \
                     WHERE table_schema = DATABASE() AND table_name = ?",
                    (self.table.as_ref(),),
                )
                .await?
                    > 0
            }
            _ => {
                conn.scalar::<i64>(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1 COLLATE NOCASE",
                    (self.table.as_ref(),),
                )
                .await?
                    > 0
            }
        };
        if !exists {
            return Ok(Vec::new());
        }
        Ok(read_applied(&conn, &statements.select).await?)
    }
}

/// What became of a migration that [`apply_one`] applied.
#[derive(Debug, PartialEq, Eq)]
enum Applied {
    /// Applied and recorded in one transaction.
    Recorded,
    /// Applied, and committed by the database on its own (MySQL's DDL):
    /// not recorded yet.
    Committed,
}

/// The values of a migration's row in the migrations table.
fn record(migration: &Migration) -> crate::Parameters {
    crate::named_params! {
        ":version": migration.version,
        ":name": migration.name(),
        ":checksum": migration.checksum(),
    }
}

/// Applies one migration and records it, in the transaction `tx`. Where
/// DDL commits on its own (MySQL), a script that ended the transaction is
/// taken as applied, to be recorded by the caller.
async fn apply_one(
    tx: Transaction<'_>,
    migration: &Migration,
    statements: &Statements,
) -> Result<Applied, MigrateError> {
    let failed = |source| MigrateError::Failed {
        version: migration.version,
        name: migration.name().to_owned(),
        source,
    };
    match run_script(&tx, migration.sql().to_owned()).await {
        Ok(After::InTransaction) => {}
        Ok(After::Autocommit) if statements.implicit_commits => {
            let _ = tx.rollback().await;
            return Ok(Applied::Committed);
        }
        Ok(After::Autocommit) => {
            // Nothing left to roll back; the rollback only settles the handle.
            let _ = tx.rollback().await;
            return Err(MigrateError::TransactionEnded {
                version: migration.version,
                name: migration.name().to_owned(),
            });
        }
        Err(e) => {
            // Roll back now rather than on drop, so the caller finds the
            // database as it was when the error reaches it.
            let _ = tx.rollback().await;
            return Err(failed(e));
        }
    }
    let recorded = tx
        .execute(statements.insert.as_str(), record(migration))
        .await;
    if let Err(e) = recorded {
        let _ = tx.rollback().await;
        return Err(e.into());
    }
    tx.commit().await.map_err(failed)?;
    Ok(Applied::Recorded)
}

/// Reads the migrations table with `select`.
async fn read_applied(conn: &Connection, select: &str) -> Result<Vec<AppliedMigration>> {
    let mut result = conn.execute(select, ()).await?;
    let mut applied = Vec::new();
    for row in result.fetchall().await? {
        applied.push(AppliedMigration {
            version: row.get("version")?,
            name: row.get("name")?,
            checksum: row.get("checksum")?,
            applied_at: row.get("applied_at")?,
        });
    }
    Ok(applied)
}
