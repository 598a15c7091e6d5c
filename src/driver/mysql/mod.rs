//! MySQL and MariaDB through the synchronous `mysql` crate, on the worker thread.
//!
//! Statements are prepared (binary protocol) and kept per connection;
//! scripts and transaction control go as text, several statements at once.
//! A running statement is stopped with `KILL QUERY` from the engine's control
//! connection ([`connect::Control`]). Whether a transaction is open is what
//! the server says in its OK packets (session transaction-state tracking),
//! so a DDL statement's implicit commit ends the handle's transaction too.

mod connect;
mod statement;
mod types;

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use mysql::prelude::Queryable;
use mysql::Conn;

pub(crate) use self::connect::MysqlConfig;
use self::connect::{code, convert, Control, Kills};
use self::statement::{bind, MyStatement, Plan};
use super::{Driver, Kill};
use crate::error::{Error, Result};
use crate::params::Parameters;
use crate::row::ColumnNames;
use crate::sql::Dialect;
use crate::tx_options::TxOptions;

/// ER_UNSUPPORTED_PS: the statement cannot be prepared; it runs as text.
const UNSUPPORTED_PS: u16 = 1295;
/// ER_PARSE_ERROR: what the server says of a second statement in a prepare.
const PARSE_ERROR: u16 = 1064;
/// ER_LOCK_DEADLOCK: InnoDB rolled the whole transaction back.
const DEADLOCK: u16 = 1213;

pub(crate) struct MysqlDriver {
    conn: Conn,
    state: State,
}

/// Everything of a connection but the crate's connection itself, so that a
/// running statement can borrow both.
struct State {
    control: Arc<Control>,
    /// The server's id for this session; `None` behind a proxy (no kill then).
    id: Option<u64>,
    kills: Arc<Kills>,
    /// Prepared statements by their text.
    statements: HashMap<Arc<str>, Prepared>,
    capacity: usize,
    in_tx: bool,
    /// The server reports transaction state (see [`State::track`]).
    tracked: bool,
    mariadb: bool,
    /// An error came inside a transaction: ask the server whether it still runs.
    unsure: bool,
    /// The connection is unusable (lost, or its protocol state unknown).
    lost: bool,
}

/// A statement prepared on the server, and what sqlaio needs to know of it;
/// cheap to clone (shared parts only).
#[derive(Clone)]
struct Prepared {
    /// Its text, the key it is cached under.
    sql: Arc<str>,
    stmt: mysql::Statement,
    /// Column names; `None` for a statement that returns no rows.
    keys: Option<ColumnNames>,
    /// Its `:name` placeholders in order, without the colon; empty for `?` ones.
    names: Arc<[String]>,
    /// A write that can return rows (`... RETURNING`): its rowcount is the rows read.
    returning: bool,
    /// A write with `RETURNING` whose columns the server did not announce
    /// when it prepared it (MariaDB): they come with its result.
    unannounced: bool,
}

impl State {
    /// Converts an error, noting what it says about the connection and its transaction.
    fn fail(&mut self, e: mysql::Error) -> Error {
        match code(&e) {
            Some(DEADLOCK) => self.in_tx = false,
            Some(_) if self.in_tx => self.unsure = true,
            _ => {}
        }
        let error = convert(e);
        if error.is_connection_lost() {
            self.lost = true;
        }
        error
    }

    /// Reads the transaction state the server put in its last OK packet, if any.
    fn track(&mut self, conn: &Conn) {
        if !self.tracked {
            return;
        }
        let Ok(changes) = conn.session_state_changes() else {
            return;
        };
        for change in changes {
            if let Ok(mysql::session_state_change::SessionStateChange::TransactionState(s)) =
                change.decode()
            {
                // "T_______": explicit, "I___...": implicit (autocommit off), "_": none.
                self.in_tx = matches!(s.as_bytes().first(), Some(b'T' | b'I'));
            }
        }
    }

    /// Without tracking, follows transaction control and DDL by their first keyword.
    fn guess(&mut self, sql: &str) {
        if self.tracked {
            return;
        }
        match first_keyword(sql).to_ascii_uppercase().as_str() {
            "BEGIN" | "START" => self.in_tx = true,
            "COMMIT" | "CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE" => self.in_tx = false,
            "ROLLBACK" => {
                let rest = sql.trim_start()["ROLLBACK".len()..].trim_start();
                if !rest.to_ascii_uppercase().starts_with("TO") {
                    self.in_tx = false;
                }
            }
            _ => {}
        }
    }

    /// The error for a statement a kill stopped without an error of its own.
    fn killed(&self) -> Option<Error> {
        self.kills.requested.load(Ordering::SeqCst).then(|| Error::database("the statement was stopped by KILL QUERY before it finished", "interrupted"))
    }

    /// Kills the connection's running statement from the control connection.
    fn kill_now(&self) {
        if let Some(id) = self.id {
            self.kills.note(self.control.kill_query(id));
        }
    }
}

impl MysqlDriver {
    /// The prepared statement for `sql`, from the cache (one lookup) or
    /// prepared now; `None` when the server cannot prepare it.
    fn prepared(&mut self, sql: &str) -> Result<Option<Prepared>> {
        let MysqlDriver { conn, state } = self;
        if let Some(prepared) = state.statements.get(sql) {
            return Ok(Some(prepared.clone()));
        }
        // Not seen before (or evicted): prepare it now.
        {
            let stmt = match conn.prep(sql) {
                Ok(stmt) => stmt,
                Err(e) if code(&e) == Some(UNSUPPORTED_PS) => return Ok(None),
                Err(e) => {
                    let several = code(&e) == Some(PARSE_ERROR) && holds_several(sql);
                    let error = state.fail(e);
                    if several {
                        return Err(Error::database(
                            "the SQL string holds more than one statement; pass one statement \
                             per call, or use run_in_thread with the mysql crate's query_drop",
                            error,
                        ));
                    }
                    return Err(error);
                }
            };
            let columns = stmt.columns();
            let keys = (!columns.is_empty()).then(|| statement::names(&columns));
            let names: Arc<[String]> = match mysql_common::named_params::ParsedNamedParams::parse(sql.as_bytes()) {
                Ok(parsed) => parsed
                    .params()
                    .iter()
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect(),
                Err(_) => Arc::from([]),
            };
            if state.statements.len() >= state.capacity {
                state.statements.clear();
            }
            let write = matches!(
                first_keyword(sql).to_ascii_uppercase().as_str(),
                "INSERT" | "REPLACE" | "DELETE" | "UPDATE"
            );
            let returning = keys.is_some() && write;
            let unannounced =
                keys.is_none() && write && sql.to_ascii_uppercase().contains("RETURNING");
            let prepared = Prepared {
                sql: Arc::from(sql),
                stmt,
                keys,
                names,
                returning,
                unannounced,
            };
            state
                .statements
                .insert(prepared.sql.clone(), prepared.clone());
            Ok(Some(prepared))
        }
    }

    /// Whether a transaction is still open after an error inside one: MariaDB
    /// says so in `@@in_transaction`; MySQL has no such variable, and only a
    /// deadlock (seen in [`State::fail`]) is known to end one.
    fn settle(&mut self) {
        if !std::mem::take(&mut self.state.unsure) || !self.state.mariadb || self.state.lost {
            return;
        }
        match self.conn.query_first::<i64, _>("SELECT @@in_transaction") {
            Ok(Some(open)) => self.state.in_tx = open != 0,
            Ok(None) => {}
            Err(e) => {
                self.state.fail(e);
            }
        }
    }
}

impl Driver for MysqlDriver {
    const NAME: &'static str = "mysql";
    const DIALECT: Dialect = Dialect::MySql;

    type Config = MysqlConfig;
    type Statement<'c> = MyStatement<'c>;

    fn parse(url: &str) -> Result<MysqlConfig> {
        connect::parse(url)
    }

    fn is_transient(error: &Error) -> bool {
        connect::is_transient(error)
    }

    fn open(config: &MysqlConfig) -> Result<Self> {
        let (conn, session) = connect::open(config)?;
        Ok(MysqlDriver {
            conn,
            state: State {
                control: config.control.clone(),
                id: session.id,
                kills: Arc::new(Kills::default()),
                statements: HashMap::new(),
                capacity: config.statements,
                in_tx: false,
                tracked: session.tracked,
                mariadb: session.mariadb,
                unsure: false,
                lost: false,
            },
        })
    }

    fn kill(&self) -> Kill {
        let control = self.state.control.clone();
        let kills = self.state.kills.clone();
        let id = self.state.id;
        Kill {
            run: Box::new(move || {
                // Noted first: a statement that then ends without an error was cut short.
                kills.requested.store(true, Ordering::SeqCst);
                if let Some(id) = id {
                    kills.note(control.kill_query(id));
                }
            }),
            blocking: true,
        }
    }

    fn raw(&mut self) -> &mut dyn Any {
        // User code may change anything: forget cached statements.
        self.state.statements.clear();
        &mut self.conn
    }

    fn in_transaction(&mut self) -> bool {
        self.settle();
        // User code in `run_in_thread` may have begun or ended one.
        self.state.track(&self.conn);
        self.state.in_tx
    }

    fn is_broken(&mut self) -> bool {
        self.state.lost
    }

    fn ping(&mut self) -> Result<()> {
        let result = self.conn.ping();
        result.map_err(|e| self.state.fail(e))
    }

    fn absorb_interrupt(&mut self) {
        // A KILL that went out unanswered may reach the server late: give it a
        // statement to stop that no caller waits for. A KILL the server
        // answered was taken while the statement ran, or found the session
        // idle, and the server forgets it when the next command starts.
        if self.state.kills.unconfirmed.swap(false, Ordering::SeqCst) {
            if let Err(e) = self.conn.query_drop("DO SLEEP(0.2)") {
                if code(&e) != Some(1317) {
                    self.state.fail(e);
                }
            }
        }
    }

    fn execute_batch(&mut self, sql: &str) -> Result<()> {
        let MysqlDriver { conn, state } = self;
        let mut run = || -> std::result::Result<usize, mysql::Error> {
            let mut result = conn.query_iter(sql)?;
            let mut sets = 0;
            while let Some(set) = result.iter() {
                sets += 1;
                for row in set {
                    row?;
                }
            }
            Ok(sets)
        };
        match run() {
            Ok(sets) => {
                state.track(conn);
                state.guess(sql);
                // Only the last statement's OK packet is read here; an
                // earlier one may have ended the transaction (DDL commits):
                // ask the server (see `settle`).
                if sets > 1 && state.in_tx {
                    state.unsure = true;
                }
                Ok(())
            }
            Err(e) => Err(state.fail(e)),
        }
    }

    /// `SET TRANSACTION ISOLATION LEVEL ...` for the next transaction, then
    /// `START TRANSACTION [READ ONLY]`.
    fn begin(&mut self, options: &TxOptions) -> Result<()> {
        if let Some(level) = options.isolation {
            self.execute_batch(&format!("SET TRANSACTION ISOLATION LEVEL {}", level.sql()))?;
        }
        self.execute_batch(if options.read_only {
            "START TRANSACTION READ ONLY"
        } else {
            "START TRANSACTION"
        })
    }

    fn prepare<'c>(&'c mut self, sql: &str, params: Parameters) -> Result<MyStatement<'c>> {
        self.state.kills.requested.store(false, Ordering::SeqCst);
        if is_blank(sql) {
            return Err(Error::database("the SQL string holds no statement", "empty statement"));
        }
        let (plan, sql) = match self.prepared(sql)? {
            Some(prepared) => {
                let values = bind(&prepared, params)?;
                let plan = Plan::Prepared {
                    stmt: prepared.stmt,
                    keys: prepared.keys,
                    returning: prepared.returning,
                    unannounced: prepared.unannounced,
                    values: Some(values),
                };
                (plan, prepared.sql)
            }
            None => {
                if !params.is_empty() {
                    return Err(Error::Parameter(
                        "the server cannot prepare this statement, so it takes no parameters".into(),
                    ));
                }
                (Plan::Text, Arc::from(sql))
            }
        };
        let MysqlDriver { conn, state } = self;
        state.track(conn);
        let mut statement = MyStatement {
            conn: Some(conn),
            state,
            plan,
            text: None,
            sql,
        };
        if let Plan::Text = statement.plan {
            // Its columns are known only once it ran.
            statement.start_text()?;
        }
        Ok(statement)
    }

    fn statement_failed(&mut self, _sql: &str) {
        self.settle();
    }

    fn execute_many(&mut self, sql: &str, params: &[Parameters]) -> Result<u64> {
        self.state.kills.requested.store(false, Ordering::SeqCst);
        let Some(prepared) = self.prepared(sql)? else {
            return Err(Error::Parameter(
                "the server cannot prepare this statement, so it takes no parameters".into(),
            ));
        };
        let stmt = prepared.stmt.clone();
        let returning = prepared.returning;
        let mut bound = Vec::with_capacity(params.len());
        for set in params {
            bound.push(bind(&prepared, set.clone())?);
        }
        let MysqlDriver { conn, state } = self;
        let mut total = 0;
        for values in bound {
            let run = || -> std::result::Result<u64, mysql::Error> {
                let mut result = conn.exec_iter(&stmt, values)?;
                let mut count = result.affected_rows();
                while let Some(set) = result.iter() {
                    for row in set {
                        row?;
                        count += u64::from(returning);
                    }
                }
                Ok(count)
            };
            total += run().map_err(|e| state.fail(e))?;
            if let Some(killed) = state.killed() {
                return Err(killed);
            }
        }
        state.track(conn);
        Ok(total)
    }

    fn table_names(&mut self) -> Result<Vec<String>> {
        let sql = "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
                   WHERE table_schema = DATABASE() \
                   AND table_type IN ('BASE TABLE', 'SYSTEM VERSIONED', 'TEMPORARY') \
                   ORDER BY 1";
        let names = self.conn.query::<String, _>(sql);
        names.map_err(|e| self.state.fail(e))
    }
}

/// `true` when `sql` holds nothing but white space, comments and semicolons.
fn is_blank(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ';');
        if let Some(r) = rest.strip_prefix("--").or_else(|| rest.strip_prefix('#')) {
            rest = r.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r);
        } else {
            return rest.is_empty();
        }
    }
}

/// `true` when something other than white space, comments and semicolons
/// follows a `;` outside quotes and comments: a second statement.
fn holds_several(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    let mut ended = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        match c {
            b';' => ended = true,
            b'-' if next == Some(b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            b'#' => i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n),
            b'/' if next == Some(b'*') => {
                i = sql[i + 2..].find("*/").map_or(bytes.len(), |n| i + 2 + n + 1);
            }
            c if c.is_ascii_whitespace() => {}
            _ if ended => return true,
            b'\'' | b'"' | b'`' => {
                // To the closing quote; a backslash escapes in strings.
                i += 1;
                while i < bytes.len() && bytes[i] != c {
                    if bytes[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

fn first_keyword(sql: &str) -> &str {
    let s = sql.trim_start();
    let end = s
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(s.len());
    &s[..end]
}

impl From<mysql::Error> for Error {
    /// Lets `run_in_thread` closures use `?` on `mysql` calls.
    fn from(e: mysql::Error) -> Error {
        convert(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{Cursor, Statement};
    use crate::row::Values;

    /// A driver on the test server (`MYSQL_URL`, or the local default);
    /// `None`, with a notice, when none answers, except under `CI=true`.
    fn driver(test: &str) -> Option<MysqlDriver> {
        let url = std::env::var("MYSQL_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| "mysql://root@127.0.0.1:3306/test".into());
        let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        match MysqlDriver::open(&MysqlDriver::parse(&url).expect("a MySQL URL")) {
            Ok(driver) => Some(driver),
            Err(e) if ci => panic!("{test}: no MySQL server under CI=true: {e}"),
            Err(e) => {
                eprintln!("{test}: skipped: no MySQL server: {e}");
                None
            }
        }
    }

    #[test]
    fn a_kill_that_finds_the_connection_idle_never_hits_its_next_statement() {
        let Some(mut driver) = driver("a_kill_that_finds_the_connection_idle") else {
            return;
        };
        assert!(driver.state.id.is_some(), "no proxy here: kills are sent");
        let kill = driver.kill();
        for round in 0..20 {
            (kill.run)();
            assert!(!driver.state.kills.unconfirmed.load(Ordering::SeqCst));
            driver
                .execute_batch("DO SLEEP(0.05)")
                .unwrap_or_else(|e| panic!("round {round}: a late kill hit the next statement: {e}"));
        }
    }

    #[test]
    fn a_statement_a_kill_was_asked_for_fails_even_when_it_returns_normally() {
        let Some(mut driver) = driver("a_statement_a_kill_was_asked_for_fails") else {
            return;
        };
        let mut statement = driver.prepare("DO 0", Parameters::default()).unwrap();
        // As if a timeout fired while it ran and the server let it finish.
        statement.state.kills.requested.store(true, Ordering::SeqCst);
        let err = statement.run().err().expect("reported as stopped");
        assert!(err.to_string().contains("KILL QUERY"), "{err}");
        drop(statement);
        // The next statement starts afresh.
        let mut statement = driver.prepare("SELECT 1", Parameters::default()).unwrap();
        let mut cursor = statement.run().unwrap();
        let mut values = Values::default();
        assert!(cursor.next_into(&mut values).unwrap());
        assert!(!cursor.next_into(&mut values).unwrap());
    }

    #[test]
    fn a_second_statement_is_found_outside_quotes_and_comments() {
        for several in ["SELECT 1; SELECT 2", "SELECT ';'; DO 1", "DO 1;\n-- c\nDO 2"] {
            assert!(holds_several(several), "{several:?}");
        }
        for one in [
            "SELECT 1",
            "SELECT 1;",
            "SELECT 1; ;  -- after\n",
            "SELECT ';' AS a, \"x;y\", `a;b`",
            "SELECT 'it\\'s; fine'",
            "SELECT 1 /* ; DO 2 */",
            "SELECT 1 # ; DO 2",
        ] {
            assert!(!holds_several(one), "{one:?}");
        }
    }

    #[test]
    fn a_script_whose_earlier_statement_commits_ends_the_transaction() {
        let Some(mut driver) = driver("a_script_whose_earlier_statement_commits") else {
            return;
        };
        let table = format!("sqlaio_script_probe_{}", std::process::id());
        driver.execute_batch("BEGIN").unwrap();
        // The CREATE TABLE commits; the OK packet read last is DO's.
        driver
            .execute_batch(&format!("CREATE TABLE {table} (id INT); DO 1"))
            .unwrap();
        let open = driver.in_transaction();
        driver
            .execute_batch(&format!("DROP TABLE IF EXISTS {table}"))
            .unwrap();
        assert!(!open, "the CREATE TABLE committed the transaction");
    }

    #[test]
    fn transaction_state_follows_the_server() {
        let Some(mut driver) = driver("transaction_state_follows_the_server") else {
            return;
        };
        assert!(driver.state.tracked, "MariaDB 10.3+ and MySQL 5.7+ track it");
        driver.execute_batch("BEGIN").unwrap();
        assert!(driver.in_transaction());
        driver.execute_batch("SAVEPOINT a; ROLLBACK TO SAVEPOINT a; RELEASE SAVEPOINT a").unwrap();
        assert!(driver.in_transaction());
        driver
            .execute_batch("CREATE TEMPORARY TABLE sqlaio_tx_probe (id INT)")
            .unwrap();
        // CREATE TEMPORARY TABLE does not commit; a plain CREATE TABLE would.
        assert!(driver.in_transaction());
        driver.execute_batch("COMMIT").unwrap();
        assert!(!driver.in_transaction());
        // Set up as in run_in_thread: raw SQL the driver did not send itself.
        let raw = driver.raw().downcast_mut::<Conn>().unwrap();
        raw.query_drop("START TRANSACTION").unwrap();
        assert!(driver.in_transaction());
        driver.execute_batch("ROLLBACK").unwrap();
        assert!(!driver.in_transaction());
    }
}
