//! MySQL and MariaDB through the synchronous `mysql` crate, on the worker thread.
//!
//! Statements are prepared (binary protocol) and kept per connection;
//! scripts and transaction control go as text, several statements at once.
//! A running statement is stopped with `KILL QUERY` from the engine's control
//! connection ([`connect::Control`]). Whether a transaction is open is what
//! the server says in its OK packets (session transaction-state tracking),
//! so a DDL statement's implicit commit ends the handle's transaction too.

mod connect;
mod types;

use std::any::Any;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use mysql::prelude::Queryable;
use mysql::{Binary, Conn, QueryResult, Text, Value as My};

pub(crate) use self::connect::MysqlConfig;
use self::connect::{code, convert, Control, Kills};
use super::{Cursor, Driver, Kill, Statement};
use crate::error::{Error, Result};
use crate::params::Parameters;
use crate::row::{ColumnNames, Values};
use crate::sql::Dialect;
use crate::value::Value;

/// ER_UNSUPPORTED_PS: the statement cannot be prepared; it runs as text.
const UNSUPPORTED_PS: u16 = 1295;
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
    statements: HashMap<String, Prepared>,
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

/// A statement prepared on the server, and what sqlaio needs to know of it.
struct Prepared {
    stmt: mysql::Statement,
    /// Column names; `None` for a statement that returns no rows.
    keys: Option<ColumnNames>,
    /// Its `:name` placeholders in order, without the colon; empty for `?` ones.
    names: Arc<[String]>,
    /// A write that can return rows (`... RETURNING`): its rowcount is the rows read.
    returning: bool,
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
        self.kills.requested.load(Ordering::SeqCst).then(|| Error::Database {
            message: "the statement was stopped by KILL QUERY before it finished".into(),
            source: "interrupted".into(),
        })
    }

    /// Kills the connection's running statement from the control connection.
    fn kill_now(&self) {
        if let Some(id) = self.id {
            self.kills.note(self.control.kill_query(id));
        }
    }
}

impl MysqlDriver {
    /// The prepared statement for `sql`, from the cache or prepared now;
    /// `None` when the server cannot prepare it.
    fn prepared(&mut self, sql: &str) -> Result<Option<&Prepared>> {
        let MysqlDriver { conn, state } = self;
        if !state.statements.contains_key(sql) {
            let stmt = match conn.prep(sql) {
                Ok(stmt) => stmt,
                Err(e) if code(&e) == Some(UNSUPPORTED_PS) => return Ok(None),
                Err(e) => return Err(state.fail(e)),
            };
            let columns = stmt.columns();
            let keys = (!columns.is_empty()).then(|| {
                Arc::new(crate::row::Names(
                    columns.iter().map(|c| c.name_str().into_owned()).collect(),
                ))
            });
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
            let returning = keys.is_some()
                && matches!(
                    first_keyword(sql).to_ascii_uppercase().as_str(),
                    "INSERT" | "REPLACE" | "DELETE" | "UPDATE"
                );
            state.statements.insert(
                sql.to_owned(),
                Prepared {
                    stmt,
                    keys,
                    names,
                    returning,
                },
            );
        }
        Ok(state.statements.get(sql))
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
        let mut run = || -> std::result::Result<(), mysql::Error> {
            let mut result = conn.query_iter(sql)?;
            while let Some(set) = result.iter() {
                for row in set {
                    row?;
                }
            }
            Ok(())
        };
        match run() {
            Ok(()) => {
                state.track(conn);
                state.guess(sql);
                Ok(())
            }
            Err(e) => Err(state.fail(e)),
        }
    }

    fn prepare<'c>(&'c mut self, sql: &str, params: Parameters) -> Result<MyStatement<'c>> {
        self.state.kills.requested.store(false, Ordering::SeqCst);
        if is_blank(sql) {
            return Err(Error::Database {
                message: "the SQL string holds no statement".into(),
                source: "empty statement".into(),
            });
        }
        let plan = match self.prepared(sql)? {
            Some(prepared) => {
                let values = bind(prepared, params)?;
                Plan::Prepared {
                    stmt: prepared.stmt.clone(),
                    keys: prepared.keys.clone(),
                    returning: prepared.returning,
                    values: Some(values),
                }
            }
            None => {
                if !params.is_empty() {
                    return Err(Error::Parameter(
                        "the server cannot prepare this statement, so it takes no parameters".into(),
                    ));
                }
                Plan::Text
            }
        };
        let MysqlDriver { conn, state } = self;
        state.track(conn);
        let mut statement = MyStatement {
            conn: Some(conn),
            state,
            plan,
            text: None,
            sql: sql.to_owned(),
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
            bound.push(bind(prepared, set.clone())?);
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

/// How a statement runs.
enum Plan {
    /// A prepared statement and its parameters, bound.
    Prepared {
        stmt: mysql::Statement,
        keys: Option<ColumnNames>,
        returning: bool,
        values: Option<mysql::Params>,
    },
    /// As text: the server cannot prepare it (no parameters then).
    Text,
}

/// A statement ready to run, borrowing its connection.
pub(crate) struct MyStatement<'c> {
    /// The connection, until a text statement's result borrows it.
    conn: Option<&'c mut Conn>,
    state: &'c mut State,
    plan: Plan,
    /// A text statement, already running, and its column names.
    text: Option<(QueryResult<'c, 'c, 'c, Text>, Option<ColumnNames>)>,
    sql: String,
}

impl<'c> MyStatement<'c> {
    /// Runs a text statement, so that its columns are known.
    fn start_text(&mut self) -> Result<()> {
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        match conn.query_iter(&self.sql) {
            Ok(result) => {
                let columns = result.columns();
                let columns = columns.as_ref();
                let keys = (!columns.is_empty()).then(|| {
                    Arc::new(crate::row::Names(
                        columns.iter().map(|c| c.name_str().into_owned()).collect(),
                    ))
                });
                self.text = Some((result, keys));
                Ok(())
            }
            Err(e) => Err(self.state.fail(e)),
        }
    }
}

impl<'c> Statement for MyStatement<'c> {
    type Cursor<'s>
        = MyCursor<'s, 'c>
    where
        Self: 's;

    fn keys(&self) -> Option<ColumnNames> {
        match (&self.plan, &self.text) {
            (Plan::Prepared { keys, .. }, _) => keys.clone(),
            (Plan::Text, Some((_, keys))) => keys.clone(),
            (Plan::Text, None) => None,
        }
    }

    fn run(&mut self) -> Result<MyCursor<'_, 'c>> {
        let state = &mut *self.state;
        if let Some((result, keys)) = self.text.take() {
            let in_tx = state.in_tx;
            let affected = result.affected_rows();
            let insert_id = result.last_insert_id();
            state.guess(&self.sql);
            return Ok(MyCursor {
                rows: Rows::Text(result),
                state,
                width: keys.map_or(0, |k| k.len()),
                affected,
                insert_id,
                returning: false,
                read: 0,
                in_tx,
            });
        }
        let Plan::Prepared {
            stmt,
            keys,
            returning,
            values,
        } = &mut self.plan
        else {
            return Err(Error::Closed("statement"));
        };
        let Some(conn) = self.conn.as_deref_mut() else {
            return Err(Error::Closed("statement"));
        };
        let values = values.take().unwrap_or(mysql::Params::Empty);
        if keys.is_none() {
            // No rows: run it to its end here, so that the transaction state
            // its OK packet carries is known before the answer goes out.
            let run = || -> std::result::Result<(u64, Option<u64>), mysql::Error> {
                let mut result = conn.exec_iter(&*stmt, values)?;
                let done = (result.affected_rows(), result.last_insert_id());
                while let Some(set) = result.iter() {
                    for row in set {
                        row?;
                    }
                }
                Ok(done)
            };
            let (affected, insert_id) = run().map_err(|e| state.fail(e))?;
            state.track(conn);
            if let Some(killed) = state.killed() {
                return Err(killed);
            }
            return Ok(MyCursor {
                rows: Rows::Done,
                in_tx: state.in_tx,
                state,
                width: 0,
                affected,
                insert_id,
                returning: false,
                read: 0,
            });
        }
        let in_tx = state.in_tx;
        let result = match conn.exec_iter(&*stmt, values) {
            Ok(result) => result,
            Err(e) => return Err(state.fail(e)),
        };
        let width = keys.as_ref().map_or(0, |k| k.len());
        if !same_columns(keys.as_deref(), result.columns().as_ref()) {
            // The table changed since the statement was prepared (ALTER TABLE):
            // the names the answer carries would not fit the rows.
            state.statements.remove(&self.sql);
            drop(result);
            return Err(Error::Database {
                message: "the statement's result columns changed since it was prepared (the \
                          table was altered); run it again"
                    .into(),
                source: "result columns changed".into(),
            });
        }
        Ok(MyCursor {
            rows: Rows::Binary(result),
            state,
            width,
            affected: 0,
            insert_id: None,
            returning: *returning,
            read: 0,
            in_tx,
        })
    }
}

/// `true` when the columns a statement returns are the ones it was prepared with.
fn same_columns(keys: Option<&crate::row::Names>, columns: &[mysql::Column]) -> bool {
    let Some(keys) = keys else {
        return columns.is_empty();
    };
    keys.len() == columns.len()
        && keys
            .iter()
            .zip(columns)
            .all(|(k, c)| k.as_bytes() == c.name_ref())
}

/// The rows of a running statement: a prepared one borrows the connection
/// from its statement, a text one from the connection itself.
enum Rows<'s, 'c> {
    Binary(QueryResult<'s, 's, 's, Binary>),
    Text(QueryResult<'c, 'c, 'c, Text>),
    /// Read to the end.
    Done,
}

/// The rows of a running MySQL statement.
pub(crate) struct MyCursor<'s, 'c> {
    rows: Rows<'s, 'c>,
    state: &'s mut State,
    width: usize,
    affected: u64,
    insert_id: Option<u64>,
    /// A write returning rows: its rowcount is the rows read.
    returning: bool,
    read: u64,
    in_tx: bool,
}

impl MyCursor<'_, '_> {
    /// Reads what follows the first result set (a procedure's further sets
    /// and its final status), for the errors they may hold.
    fn finish(&mut self) -> Result<()> {
        let rows = std::mem::replace(&mut self.rows, Rows::Done);
        let drained = match rows {
            Rows::Binary(mut result) => drain(&mut result),
            Rows::Text(mut result) => drain(&mut result),
            Rows::Done => Ok(()),
        };
        drained.map_err(|e| self.state.fail(e))?;
        match self.state.killed() {
            Some(killed) => Err(killed),
            None => Ok(()),
        }
    }
}

fn drain<P: mysql::prelude::Protocol>(
    result: &mut QueryResult<'_, '_, '_, P>,
) -> std::result::Result<(), mysql::Error> {
    while let Some(set) = result.iter() {
        for row in set {
            row?;
        }
    }
    Ok(())
}

impl Cursor for MyCursor<'_, '_> {
    fn next_into(&mut self, values: &mut Values) -> Result<bool> {
        // The crate's decoder panics on a column type it does not know
        // (`unimplemented!`): that is an error here, and the connection,
        // whose rows are left half read, is replaced.
        let next = catch_unwind(AssertUnwindSafe(|| match &mut self.rows {
            Rows::Binary(result) => result.next(),
            Rows::Text(result) => result.next(),
            Rows::Done => None,
        }));
        let row = match next {
            Ok(Some(Ok(row))) => row,
            Ok(Some(Err(e))) => {
                self.rows = Rows::Done;
                return Err(self.state.fail(e));
            }
            Ok(None) => {
                self.finish()?;
                return Ok(false);
            }
            Err(panic) => {
                self.state.lost = true;
                self.rows = Rows::Done;
                let Error::Panic(reason) = Error::panic(panic) else {
                    return Err(Error::Closed("result"));
                };
                return Err(Error::Database {
                    message: format!("the mysql crate cannot decode this result: {reason}"),
                    source: reason.into(),
                });
            }
        };
        let text = matches!(self.rows, Rows::Text(_));
        let mut row = row;
        for i in 0..self.width.min(row.len()) {
            let value = row.take::<My, _>(i).unwrap_or(My::NULL);
            let columns = row.columns_ref();
            let column = &columns[i];
            let value = if text {
                types::from_text(column, value).map_err(|e| types::decode_error(column, e))?
            } else {
                value
            };
            match value {
                My::Bytes(bytes) if is_plain_text(column) => match std::str::from_utf8(&bytes) {
                    // Into the text the row being read already holds.
                    Ok(s) => values.set_text(i, s),
                    Err(_) => values.set(i, Value::Blob(bytes)),
                },
                value => values.set(
                    i,
                    types::decode(column, value).map_err(|e| types::decode_error(column, e))?,
                ),
            }
        }
        self.read += 1;
        Ok(true)
    }

    fn rowcount(&mut self, done: bool) -> u64 {
        match (done, self.returning) {
            (false, _) => 0,
            (true, true) => self.read,
            (true, false) => self.affected,
        }
    }

    fn last_insert_id(&mut self, _rowcount: u64) -> Option<i64> {
        self.insert_id
            .filter(|id| *id != 0)
            .and_then(|id| i64::try_from(id).ok())
    }

    fn in_transaction(&self) -> bool {
        self.in_tx
    }
}

impl Drop for MyCursor<'_, '_> {
    fn drop(&mut self) {
        if matches!(self.rows, Rows::Done) || self.state.lost {
            return;
        }
        // The crate reads every remaining row when a result is dropped: stop
        // the statement first, so that only the rows already on their way are read.
        self.state.kill_now();
        let rows = std::mem::replace(&mut self.rows, Rows::Done);
        let drained = match rows {
            Rows::Binary(mut result) => drain(&mut result),
            Rows::Text(mut result) => drain(&mut result),
            Rows::Done => Ok(()),
        };
        if let Err(e) = drained {
            // ER_QUERY_INTERRUPTED is the kill's own answer.
            if code(&e) != Some(1317) {
                self.state.fail(e);
            }
        }
    }
}

/// `true` for a column whose values are plain text (not a number, date,
/// JSON, decimal, bit string or bytes).
fn is_plain_text(column: &mysql::Column) -> bool {
    use mysql::consts::ColumnType::*;
    column.character_set() != 63
        && matches!(
            column.column_type(),
            MYSQL_TYPE_STRING
                | MYSQL_TYPE_VAR_STRING
                | MYSQL_TYPE_VARCHAR
                | MYSQL_TYPE_ENUM
                | MYSQL_TYPE_SET
                | MYSQL_TYPE_TINY_BLOB
                | MYSQL_TYPE_MEDIUM_BLOB
                | MYSQL_TYPE_LONG_BLOB
                | MYSQL_TYPE_BLOB
        )
}

/// Binds parameters to a prepared statement: positional for `?`, by name for `:name`.
fn bind(prepared: &Prepared, params: Parameters) -> Result<mysql::Params> {
    let expected = usize::from(prepared.stmt.num_params());
    if params.named.is_empty() {
        if !prepared.names.is_empty() {
            return Err(Error::Parameter(
                "the statement has :name placeholders: pass named parameters".into(),
            ));
        }
        if params.positional.len() != expected {
            return Err(Error::ParameterCount {
                expected,
                given: params.positional.len(),
            });
        }
        if expected == 0 {
            return Ok(mysql::Params::Empty);
        }
        let values = params.positional.into_iter().map(types::bind);
        return Ok(mysql::Params::Positional(values.collect::<Result<_>>()?));
    }
    if !params.positional.is_empty() {
        return Err(Error::Parameter(
            "positional and named parameters cannot be mixed".into(),
        ));
    }
    if prepared.names.is_empty() {
        return Err(Error::Parameter(
            "the statement has no :name placeholders: pass positional parameters".into(),
        ));
    }
    let mut named = HashMap::with_capacity(params.named.len());
    for (name, value) in params.named {
        let bare = name.strip_prefix(':').unwrap_or(&name);
        if !prepared.names.iter().any(|n| n == bare) {
            return Err(Error::ParameterName(name));
        }
        named.insert(bare.as_bytes().to_vec(), types::bind(value)?);
    }
    if let Some(missing) = prepared
        .names
        .iter()
        .find(|n| !named.contains_key(n.as_bytes()))
    {
        return Err(Error::Parameter(format!("no value given for :{missing}")));
    }
    Ok(mysql::Params::Named(named))
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
