//! PostgreSQL through the synchronous `postgres` crate, on the worker thread.
//!
//! The sync `postgres::Client` runs its own blocking runtime inside every
//! call and inside its `Drop`, so it must never be touched from an async
//! thread: it is created, used and dropped only here, on its worker.

mod connect;
mod errors;
mod hosts;
mod options;
mod tls;
mod statement;
mod types;
mod unnamed;

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use postgres::types::ToSql;
use postgres::Client;

use self::errors::classify;
use self::connect::{cancel, cancel_backend, Backend, Cancel};
use self::statement::PgStatement;
use self::unnamed::Unnamed;
pub(crate) use self::options::PgConfig;
use super::{Driver, Kill};
use crate::error::{Error, Result};
use crate::params::Parameters;
use crate::row::{ColumnNames, Values};
use crate::server::ServerInfo;
use crate::sql::Dialect;
use crate::value::Value;

/// A connection that read or sent a row bigger than this is replaced once it
/// is back in the pool: the client's buffers keep the size they grew to, and
/// over TLS every later read may pay for that size (`tokio-native-tls`,
/// used before rustls, cleared the free part of the read buffer on each read).
const WORN_ROW_BYTES: usize = 8 * 1024 * 1024;

/// Prepared statements kept per connection, at most.
const STATEMENT_CACHE: usize = 256;

pub(crate) struct PostgresDriver {
    client: Client,
    config: Arc<PgConfig>,
    /// This connection's server process, as its own session reported it.
    backend: Option<Backend>,
    /// The host the connection reached, and its role then.
    server: ServerInfo,
    /// The last cancel went out as a cancel request, which the server may act
    /// on after the statement it was meant for (see [`cancel_backend`]).
    unconfirmed: Arc<AtomicBool>,
    /// Prepared statements, by statement text.
    statements: HashMap<String, Prepared>,
    in_tx: bool,
    /// A statement failed inside the open transaction: the server refuses
    /// everything but a rollback until it ends.
    failed: bool,
    /// What the errors seen on this connection said about it.
    seen: Seen,
}

/// What the errors seen on a connection said about it.
#[derive(Debug, Default)]
struct Seen {
    /// A lost-connection error.
    lost: bool,
    /// A row or parameter set over [`WORN_ROW_BYTES`].
    worn: bool,
    /// A statement failed with `query_canceled`: a cancel request met it.
    cancelled: bool,
}

impl Seen {
    /// Converts a `postgres` error into ours, noting what it says about the connection.
    fn convert(&mut self, e: postgres::Error) -> Error {
        if e.code() == Some(&postgres::error::SqlState::QUERY_CANCELED) {
            self.cancelled = true;
        }
        let error = classify(e);
        if error.is_connection_lost() {
            self.lost = true;
        }
        error
    }

    /// Notes a row or parameter set big enough to wear the connection out.
    fn note_size(&mut self, values: &[Value]) {
        if Values::bytes(values) > WORN_ROW_BYTES {
            self.worn = true;
        }
    }
}

/// A prepared statement and what is worked out once from its columns.
#[derive(Clone)]
struct Prepared {
    stmt: postgres::Statement,
    keys: ColumnNames,
    /// Which columns hold text (see [`text_columns`]).
    texts: Arc<[bool]>,
}

/// Which of `columns` hold text, read into the text of the row being read
/// rather than decoded into a new `Value`.
fn text_columns(columns: &[postgres::Column]) -> Arc<[bool]> {
    columns.iter().map(|c| types::is_text(c.type_())).collect()
}

impl PostgresDriver {
    /// The prepared statement for `sql`, from the cache or prepared now.
    fn statement(&mut self, sql: &str) -> Result<Prepared> {
        if let Some(cached) = self.statements.get(sql) {
            return Ok(cached.clone());
        }
        let stmt = self
            .client
            .prepare(sql)
            .map_err(|e| self.seen.convert(e))?;
        let keys: ColumnNames =
            Arc::new(stmt.columns().iter().map(|c| c.name().to_owned()).collect());
        let prepared = Prepared {
            texts: text_columns(stmt.columns()),
            stmt,
            keys,
        };
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), prepared.clone());
        Ok(prepared)
    }

    /// Tracks `BEGIN`/`COMMIT`/`ROLLBACK` run as plain SQL, since the client does not report it.
    fn note_transaction_sql(&mut self, control: Option<Control>) {
        match control {
            Some(Control::Begin) => (self.in_tx, self.failed) = (true, false),
            Some(Control::End) => (self.in_tx, self.failed) = (false, false),
            // A rollback to a savepoint clears the failed state.
            Some(Control::RollbackTo) => self.failed = false,
            None => {}
        }
    }

    /// Notes a server error: inside a transaction it leaves the transaction failed.
    fn failing<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() && self.in_tx {
            self.failed = true;
        }
        result
    }

    /// After `sql` failed: when it was meant to open or end a transaction, the
    /// session's state is unknown (a `COMMIT` refused before it ran leaves the
    /// transaction open and failed; a `BEGIN` can fail after it opened one), so
    /// roll back whatever is open. A `ROLLBACK` outside a transaction is only a warning.
    /// Returns `true` when it rolled back.
    fn settle(&mut self, sql: &str) -> bool {
        let settled = matches!(control(sql), Some(Control::Begin | Control::End))
            && self.client.batch_execute("ROLLBACK").is_ok();
        if settled {
            self.in_tx = false;
            self.failed = false;
        }
        settled
    }
}

impl Driver for PostgresDriver {
    const NAME: &'static str = "postgres";
    const DIALECT: Dialect = Dialect::Postgres;

    type Config = PgConfig;
    type Statement<'c> = PgStatement<'c>;

    fn claims(url: &str) -> bool {
        // A key-value connection string: "host=... user=... dbname=...".
        !url.contains("://") && !url.starts_with("sqlite") && url.contains('=')
    }

    fn parse(url: &str) -> Result<PgConfig> {
        PgConfig::parse(url)
    }

    fn is_transient(error: &Error) -> bool {
        use postgres::error::SqlState;
        super::is_transient_connect(error, |err| {
            if err.is::<hosts::NoHost>() {
                // No host in the wanted role: a promotion may be under way.
                return Some(true);
            }
            let db = err.downcast_ref::<postgres::Error>()?.as_db_error()?;
            Some([SqlState::TOO_MANY_CONNECTIONS, SqlState::CANNOT_CONNECT_NOW].contains(db.code()))
        })
    }

    fn open(config: &PgConfig) -> Result<Self> {
        let reached = hosts::open(config).map_err(|failed| Error::Connect {
            url: config.describe_host(&failed.host),
            source: failed.error,
        })?;
        let hosts::Reached {
            mut client,
            config: narrowed,
            server,
        } = reached;
        if narrowed.read_only {
            client
                .batch_execute("SET default_transaction_read_only = on")
                .map_err(|e| Error::Connect {
                    url: narrowed.describe(),
                    source: Box::new(e),
                })?;
        }
        // Through a pooler the pid is the pooler's choice of the moment: no
        // pid-targeted cancel (see `kill`).
        let backend = if narrowed.prepared {
            Backend::of(&mut client)
        } else {
            None
        };
        Ok(PostgresDriver {
            client,
            config: Arc::new(narrowed),
            backend,
            server,
            unconfirmed: Arc::new(AtomicBool::new(false)),
            statements: HashMap::new(),
            in_tx: false,
            failed: false,
            seen: Seen::default(),
        })
    }

    fn kill(&self) -> Kill {
        let token = self.client.cancel_token();
        // The worker waits for the cancel: `cancel_backend` runs under a deadline.
        let config = self.config.clone();
        let backend = self.backend.clone();
        let unconfirmed = self.unconfirmed.clone();
        Kill {
            run: Box::new(move || {
                // No backend through a pooler (`prepared_statements=false`):
                // only the protocol's cancel request, which the pooler forwards.
                let outcome = match &backend {
                    Some(backend) => cancel_backend(&config, backend),
                    None => Cancel::Refused,
                };
                if outcome == Cancel::Refused {
                    let _ = cancel(&token, &config);
                    unconfirmed.store(true, Ordering::SeqCst);
                }
            }),
            blocking: true,
        }
    }

    fn server(&self) -> Option<ServerInfo> {
        Some(self.server.clone())
    }

    fn raw(&mut self) -> &mut dyn Any {
        // User code may change anything: forget cached statements.
        self.statements.clear();
        &mut self.client
    }

    fn in_transaction(&mut self) -> bool {
        self.in_tx
    }

    /// Runs the script, then asks the server whether a transaction is open:
    /// the client does not report it, and a script may begin or end one
    /// anywhere (a savepoint can only be taken inside one).
    fn execute_script(&mut self, sql: &str) -> Result<()> {
        let result = self.client.batch_execute(sql);
        let result = result.map_err(|e| self.seen.convert(e));
        let result = self.failing(result);
        let probe = self
            .client
            .batch_execute("SAVEPOINT sqlaio_script_check; RELEASE SAVEPOINT sqlaio_script_check");
        match probe {
            Ok(()) => self.in_tx = true,
            Err(e) if e.code() == Some(&postgres::error::SqlState::NO_ACTIVE_SQL_TRANSACTION) => {
                (self.in_tx, self.failed) = (false, false)
            }
            // Inside a failed transaction: still one, awaiting its rollback.
            Err(e) if e.code() == Some(&postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION) => {
                (self.in_tx, self.failed) = (true, true)
            }
            Err(e) => return result.and(Err(self.seen.convert(e))),
        }
        result
    }

    fn worn_out(&mut self) -> bool {
        self.seen.worn
    }

    fn is_broken(&mut self) -> bool {
        // A lost-connection error was seen, or the client noticed itself.
        std::mem::take(&mut self.seen.lost) || self.client.is_closed()
    }

    fn ping(&mut self) -> Result<()> {
        let result = self.client.batch_execute("");
        result.map_err(|e| self.seen.convert(e))
    }

    fn absorb_interrupt(&mut self) {
        // Only after a fallback (see `cancel_backend`): a cancel request
        // travels on a connection of its own, and the server
        // acts on it a little later; it also signals the backend twice (the
        // process and its process group), so even a cancel that met its
        // statement can leave a second one pending that the next statement
        // would meet. Give it a statement to hit that no caller waits for:
        // `pg_sleep` checks for a pending cancel first, then while it sleeps.
        let met = std::mem::take(&mut self.seen.cancelled);
        if !self.unconfirmed.swap(false, Ordering::SeqCst) {
            // The server said it had signalled the backend before the worker
            // could move on: nothing is left on its way.
            return;
        }
        if self.failed {
            // Only a rollback can run; `batch` repeats one that a cancel hits.
            return;
        }
        let wait = if met { "0.1" } else { "0.2" };
        let probe = if self.in_tx {
            // A savepoint keeps a hit from failing the transaction.
            format!(
                "SAVEPOINT sqlaio_absorb; SELECT pg_sleep({wait}); RELEASE SAVEPOINT sqlaio_absorb"
            )
        } else {
            format!("SELECT pg_sleep({wait})")
        };
        if self.client.batch_execute(&probe).is_err() && self.in_tx {
            let _ = self.client.batch_execute(
                "ROLLBACK TO SAVEPOINT sqlaio_absorb; RELEASE SAVEPOINT sqlaio_absorb",
            );
        }
    }


    fn aborted(&mut self) -> bool {
        self.in_tx && self.failed
    }

    fn execute_batch(&mut self, sql: &str) -> Result<()> {
        let result = self.client.batch_execute(sql);
        let result = result.map_err(|e| self.seen.convert(e));
        let result = self.failing(result);
        self.note_transaction_sql(control(sql));
        if result.is_err()
            && self.settle(sql)
            && first_keyword(sql).eq_ignore_ascii_case("ROLLBACK")
        {
            // The rollback that failed (a late cancel met it) was repeated.
            return Ok(());
        }
        result
    }

    fn prepare<'c>(&'c mut self, sql: &str, params: Parameters) -> Result<PgStatement<'c>> {
        // Only a cancel met by this request counts (see `absorb_interrupt`).
        self.seen.cancelled = false;
        if is_blank(sql) {
            return Err(Error::database(
                "the SQL string holds no statement",
                "empty statement",
            ));
        }
        // As on SQLite: rows inserted, updated or deleted; 0 for queries.
        let keyword = first_keyword(sql);
        let counts_rows = !["SELECT", "VALUES", "SHOW", "TABLE", "FETCH", "EXPLAIN"]
            .iter()
            .any(|query| keyword.eq_ignore_ascii_case(query));
        if !self.config.prepared {
            if !params.named.is_empty() {
                return Err(named_params());
            }
            self.seen.note_size(&params.positional);
            return Ok(PgStatement {
                keys: None,
                texts: None,
                control: control(sql),
                driver: self,
                stmt: Err(sql.to_owned()),
                params,
                counts_rows,
            });
        }
        let prepared = self.statement(sql);
        let Prepared { stmt, keys, texts } = self.failing(prepared)?;
        check(&stmt, &params)?;
        self.seen.note_size(&params.positional);
        Ok(PgStatement {
            keys: (!stmt.columns().is_empty()).then_some(keys),
            texts: Some(texts),
            control: control(sql),
            driver: self,
            stmt: Ok(stmt),
            params,
            counts_rows,
        })
    }

    fn statement_failed(&mut self, sql: &str) {
        self.failed |= self.in_tx;
        self.settle(sql);
    }

    fn execute_many(&mut self, sql: &str, params: &[Parameters]) -> Result<u64> {
        self.seen.cancelled = false;
        if !self.config.prepared {
            let mut total = 0;
            for set in params {
                if !set.named.is_empty() {
                    return Err(named_params());
                }
                self.seen.note_size(&set.positional);
                let owned = Unnamed::params(&set.positional);
                let refs: Vec<_> = owned.iter().map(|(v, t)| (v.as_dyn(), t.clone())).collect();
                let done = self.client.execute_typed(sql, &refs);
                total += done.map_err(|e| self.seen.convert(e))?;
            }
            return Ok(total);
        }
        let Prepared { stmt, .. } = self.statement(sql)?;
        let mut total = 0;
        for set in params {
            check(&stmt, set)?;
            self.seen.note_size(&set.positional);
            let refs: Vec<&(dyn ToSql + Sync)> = set
                .positional
                .iter()
                .map(|v| v as &(dyn ToSql + Sync))
                .collect();
            let done = self.client.execute(&stmt, &refs);
            total += done.map_err(|e| self.seen.convert(e))?;
        }
        Ok(total)
    }

    fn table_names(&mut self) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = ANY (current_schemas(false)) \
                 AND table_type IN ('BASE TABLE', 'LOCAL TEMPORARY') \
                 ORDER BY 1",
                &[],
            )
            .map_err(|e| self.seen.convert(e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// `true` when `sql` holds nothing but white space, comments and semicolons.
fn is_blank(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ';');
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r);
        } else {
            return rest.is_empty();
        }
    }
}

/// What a statement does to the transaction, when it opens or ends one.
#[derive(Clone, Copy)]
enum Control {
    /// `BEGIN`, `START TRANSACTION`.
    Begin,
    /// `COMMIT`, `END`, `ABORT`, `ROLLBACK`.
    End,
    /// `ROLLBACK TO [SAVEPOINT] name`.
    RollbackTo,
}

fn control(sql: &str) -> Option<Control> {
    let keyword = first_keyword(sql);
    let is = |word: &str| keyword.eq_ignore_ascii_case(word);
    if is("BEGIN") || is("START") {
        Some(Control::Begin)
    } else if is("COMMIT") || is("END") || is("ABORT") {
        Some(Control::End)
    } else if is("ROLLBACK") {
        let rest = sql.trim_start()["ROLLBACK".len()..].trim_start();
        if rest.get(..2).is_some_and(|to| to.eq_ignore_ascii_case("TO")) {
            Some(Control::RollbackTo)
        } else {
            Some(Control::End)
        }
    } else {
        None
    }
}

fn first_keyword(sql: &str) -> &str {
    let s = sql.trim_start();
    let end = s
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(s.len());
    &s[..end]
}

fn named_params() -> Error {
    Error::Parameter("PostgreSQL takes positional parameters ($1, $2, ...), not named ones".into())
}

/// Checks the parameters against the statement before anything is sent.
fn check(stmt: &postgres::Statement, params: &Parameters) -> Result<()> {
    if !params.named.is_empty() {
        return Err(named_params());
    }
    let expected = stmt.params().len();
    if params.positional.len() != expected {
        return Err(Error::ParameterCount {
            expected,
            given: params.positional.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use postgres::error::SqlState;

    use super::errors::kind;
    use super::*;
    use crate::error::ErrorKind;

    /// A driver on the test server (`DATABASE_URL`, or the local default);
    /// `None`, with a notice, when none answers, except under `CI=true`.
    fn driver(test: &str) -> Option<PostgresDriver> {
        let url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| "postgres://root@127.0.0.1:5432/test".into());
        let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        match PostgresDriver::open(&PostgresDriver::parse(&url).expect("a PostgreSQL URL")) {
            Ok(driver) => Some(driver),
            Err(e) if ci => {
                panic!("{test}: no PostgreSQL server under CI=true: {e}")
            }
            Err(e) => {
                eprintln!("{test}: skipped: no PostgreSQL server: {e}");
                None
            }
        }
    }

    #[test]
    fn server_errors_are_classified_with_their_sqlstate_constraint_and_table() {
        let Some(mut driver) = driver("server_errors_are_classified") else {
            return;
        };
        driver
            .client
            .batch_execute(
                "CREATE TEMP TABLE teams (id int PRIMARY KEY);
                 CREATE TEMP TABLE users (
                     id int PRIMARY KEY,
                     email text NOT NULL CONSTRAINT users_email_key UNIQUE,
                     team int CONSTRAINT users_team_fkey REFERENCES teams (id),
                     age int CONSTRAINT adult CHECK (age >= 18)
                 );
                 INSERT INTO users (id, email) VALUES (1, 'a@example.com');",
            )
            .unwrap();
        let mut fail = |sql: &str| classify(driver.client.batch_execute(sql).unwrap_err());
        let e = fail("INSERT INTO users (id, email) VALUES (2, 'a@example.com')");
        assert_eq!(e.kind(), ErrorKind::UniqueViolation, "{e}");
        assert_eq!(e.code(), Some("23505"));
        assert_eq!((e.constraint(), e.table()), (Some("users_email_key"), Some("users")));
        let e = fail("INSERT INTO users (id, email, team) VALUES (3, 'b@example.com', 7)");
        assert_eq!(e.kind(), ErrorKind::ForeignKeyViolation, "{e}");
        assert_eq!(e.constraint(), Some("users_team_fkey"));
        let e = fail("INSERT INTO users (id, email) VALUES (4, NULL)");
        assert_eq!((e.kind(), e.code()), (ErrorKind::NotNullViolation, Some("23502")));
        let e = fail("INSERT INTO users (id, email, age) VALUES (5, 'c@example.com', 3)");
        assert_eq!((e.kind(), e.constraint()), (ErrorKind::CheckViolation, Some("adult")));
        let e = fail("SELECT * FROM nowhere");
        assert_eq!((e.kind(), e.code()), (ErrorKind::Syntax, Some("42P01")));
        // Temporary tables stay writable in a read-only transaction: create a real one.
        let e = fail("BEGIN READ ONLY; CREATE TABLE sqlaio_read_only_probe (x int)");
        assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
        let _ = driver.client.batch_execute("ROLLBACK");
        let e = classify(
            driver
                .client
                .batch_execute("SET statement_timeout = 10; SELECT pg_sleep(1)")
                .unwrap_err(),
        );
        assert_eq!(e.kind(), ErrorKind::QueryCanceled, "{e}");
        assert!(!e.is_retryable());
        assert!(kind(&SqlState::T_R_SERIALIZATION_FAILURE).is_retryable());
        assert!(kind(&SqlState::T_R_DEADLOCK_DETECTED).is_retryable());
    }

    #[test]
    fn a_cancel_has_been_taken_before_the_next_statement_can_go_out() {
        let Some(mut driver) = driver("a_cancel_has_been_taken_before_the_next_statement") else {
            return;
        };
        let kill = driver.kill();
        // The hardest case: the cancel finds the connection idle, so no
        // statement takes it. A cancel request the server acts on later
        // would fail the statement after it, every time.
        for round in 0..20 {
            (kill.run)();
            assert!(
                !driver.unconfirmed.load(Ordering::SeqCst),
                "round {round}: the server did not confirm the cancel"
            );
            driver
                .client
                .batch_execute("SELECT pg_sleep(0.05)")
                .unwrap_or_else(|e| {
                    panic!("round {round}: a late cancel hit the next statement: {e}")
                });
        }
    }

    #[test]
    fn a_cancel_reaches_only_the_server_process_the_connection_opened_with() {
        let Some(mut driver) = driver("a_cancel_reaches_only_the_server_process") else {
            return;
        };
        let backend = driver
            .backend
            .clone()
            .expect("the session names its backend");
        let reused = Backend {
            started: backend.started - 1,
            ..backend.clone()
        };
        assert_eq!(cancel_backend(&driver.config, &reused), Cancel::Refused);
        assert_eq!(cancel_backend(&driver.config, &backend), Cancel::Signalled);
        // Nothing listens on port 1: no cancel request is worth sending either.
        let nowhere = PgConfig::parse("host=127.0.0.1 port=1 user=sqlaio").unwrap();
        assert_eq!(cancel_backend(&nowhere, &backend), Cancel::Unreachable);

        // Unconfirmed, the kill falls back to a cancel request and the worker absorbs it.
        driver.backend = Some(reused);
        (driver.kill().run)();
        assert!(driver.unconfirmed.load(Ordering::SeqCst));
        driver.absorb_interrupt();
        assert!(!driver.unconfirmed.load(Ordering::SeqCst));
    }
}

