//! A scripted driver for the crate's own tests: it drives the pool and the
//! worker loop deterministically, without a database.
//!
//! A test makes a [`Script`] with [`script`] and opens an engine on
//! `fake://<name>`. Every connection of that engine logs what the worker
//! asked of it into the script, and runs these statements:
//!
//! - `rows N`: one column `n`, the rows 1 to N;
//! - `block`: runs until it is killed (then fails as interrupted) or the
//!   script releases it;
//! - `hang`: runs until the script releases it, whatever kills it gets (a
//!   server or network gone silent);
//! - `fail`: fails when it runs;
//! - anything else: a write of one row.
//!
//! `BEGIN...`, `COMMIT`, `ROLLBACK` and savepoints go through
//! `execute_batch` and are logged as `batch <sql>`.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::{Cursor, Driver, Kill, Statement};
use crate::error::{Error, Result};
use crate::params::Parameters;
use crate::row::{ColumnNames, Names, Values};
use crate::sql::Dialect;
use crate::value::Value;

/// What a test tells its connections, and what they tell it back.
#[derive(Debug, Default)]
pub(crate) struct Script {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Everything the connections were asked, in order, as
    /// `<connection> <what>` (`1 run rows 3`, `2 kill`).
    log: Vec<String>,
    /// Statements killed while they ran: the connection numbers.
    killed: Vec<u64>,
    /// `block` statements the test let finish.
    released: u64,
    /// Pings of the connections opened so far when the test called
    /// [`Script::silence`] go unanswered until it releases a statement.
    silent_upto: u64,
    opened: u64,
}

/// Makes a script that engines on `fake://<name>` follow.
pub(crate) fn script(name: &str) -> Arc<Script> {
    let script = Arc::new(Script::default());
    scripts().insert(name.to_owned(), script.clone());
    script
}

fn scripts() -> MutexGuard<'static, HashMap<String, Arc<Script>>> {
    static SCRIPTS: OnceLock<Mutex<HashMap<String, Arc<Script>>>> = OnceLock::new();
    SCRIPTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

impl Script {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note(&self, conn: u64, what: String) {
        self.lock().log.push(format!("{conn} {what}"));
        self.changed.notify_all();
    }

    /// The log so far.
    pub(crate) fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// The log's entries that end with `what`, without their connection number.
    pub(crate) fn count(&self, what: &str) -> usize {
        self.lock().log.iter().filter(|l| l.ends_with(what)).count()
    }

    /// Waits (at most 10 s) until the log holds `n` entries that end with `what`.
    ///
    /// # Panics
    /// When they do not come: the test then fails with the log.
    pub(crate) fn wait_for(&self, what: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut state = self.lock();
        while state.log.iter().filter(|l| l.ends_with(what)).count() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {what:?} in {:#?}", state.log);
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Lets one running `block` statement finish, and ends a silence.
    pub(crate) fn release(&self) {
        let mut state = self.lock();
        state.released += 1;
        state.silent_upto = 0;
        drop(state);
        self.changed.notify_all();
    }

    /// Makes the pings of the connections open now go unanswered (their
    /// server gone silent) until [`release`](Script::release).
    pub(crate) fn silence(&self) {
        let mut state = self.lock();
        state.silent_upto = state.opened;
    }
}

/// A connection that follows a [`Script`].
pub(crate) struct FakeDriver {
    script: Arc<Script>,
    id: u64,
    in_tx: bool,
    /// Kills so far; a `block` ends when this grows.
    kills: Arc<AtomicU64>,
    /// The `run_in_thread` view.
    raw: FakeConnection,
}

/// What `run_in_thread` closures get on a fake engine.
#[derive(Debug, Default)]
pub(crate) struct FakeConnection {
    /// Calls so far.
    pub(crate) calls: u64,
}

impl Driver for FakeDriver {
    const NAME: &'static str = "fake";
    const DIALECT: Dialect = Dialect::Sqlite;

    type Config = Arc<Script>;
    type Statement<'c> = FakeStatement<'c>;

    fn parse(url: &str) -> Result<Arc<Script>> {
        let name = url.split_once("://").map_or("", |(_, name)| name);
        scripts()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Config(format!("no script named {name:?}")))
    }

    fn is_transient(_: &Error) -> bool {
        false
    }

    fn open(script: &Arc<Script>) -> Result<Self> {
        let id = {
            let mut state = script.lock();
            state.opened += 1;
            state.opened
        };
        script.note(id, "open".into());
        Ok(FakeDriver {
            script: script.clone(),
            id,
            in_tx: false,
            kills: Arc::default(),
            raw: FakeConnection::default(),
        })
    }

    fn kill(&self) -> Kill {
        let (script, id, kills) = (self.script.clone(), self.id, self.kills.clone());
        Kill {
            run: Box::new(move || {
                kills.fetch_add(1, Ordering::SeqCst);
                script.note(id, "kill".into());
            }),
            blocking: false,
        }
    }

    fn raw(&mut self) -> &mut dyn Any {
        self.raw.calls += 1;
        &mut self.raw
    }

    fn in_transaction(&mut self) -> bool {
        self.in_tx
    }

    fn ping(&mut self) -> Result<()> {
        self.script.note(self.id, "ping".into());
        let mut state = self.script.lock();
        while self.id <= state.silent_upto {
            state = self
                .script
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }

    fn execute_batch(&mut self, sql: &str) -> Result<()> {
        self.script.note(self.id, format!("batch {sql}"));
        let word = sql.split_whitespace().next().unwrap_or("");
        let to = sql.contains(" TO ");
        match word.to_ascii_uppercase().as_str() {
            "BEGIN" => self.in_tx = true,
            "COMMIT" => self.in_tx = false,
            "ROLLBACK" if !to => self.in_tx = false,
            _ => {}
        }
        Ok(())
    }

    fn prepare<'c>(&'c mut self, sql: &str, params: Parameters) -> Result<FakeStatement<'c>> {
        self.script.note(self.id, format!("prepare {sql}"));
        let rows = sql
            .strip_prefix("rows ")
            .map(|n| {
                n.trim()
                    .parse::<i64>()
                    .map_err(|e| Error::Parameter(e.to_string()))
            })
            .transpose()?;
        Ok(FakeStatement {
            sql: sql.to_owned(),
            rows,
            params,
            driver: self,
        })
    }

    fn execute_many(&mut self, sql: &str, params: &[Parameters]) -> Result<u64> {
        self.script
            .note(self.id, format!("many {sql} x{}", params.len()));
        Ok(params.len() as u64)
    }

    fn table_names(&mut self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// A statement of the script's language.
pub(crate) struct FakeStatement<'c> {
    driver: &'c mut FakeDriver,
    sql: String,
    rows: Option<i64>,
    #[allow(dead_code)] // Held like a real driver holds its bound values.
    params: Parameters,
}

impl Statement for FakeStatement<'_> {
    type Cursor<'s>
        = FakeCursor
    where
        Self: 's;

    fn keys(&self) -> Option<ColumnNames> {
        self.rows
            .map(|_| Arc::new(Names(vec!["n".to_owned()])) as ColumnNames)
    }

    fn run(&mut self) -> Result<FakeCursor> {
        let driver = &mut *self.driver;
        driver.script.note(driver.id, format!("run {}", self.sql));
        match self.sql.as_str() {
            "fail" => Err(Error::database("scripted failure", "fail")),
            "hang" => {
                let mut state = driver.script.lock();
                while state.released == 0 {
                    state = driver
                        .script
                        .changed
                        .wait(state)
                        .unwrap_or_else(|e| e.into_inner());
                }
                state.released -= 1;
                Ok(FakeCursor {
                    next: 1,
                    last: 0,
                    in_tx: driver.in_tx,
                })
            }
            "block" => {
                let before = driver.kills.load(Ordering::SeqCst);
                let mut state = driver.script.lock();
                loop {
                    if driver.kills.load(Ordering::SeqCst) != before {
                        state.killed.push(driver.id);
                        return Err(Error::database("interrupted", "block"));
                    }
                    if state.released > 0 {
                        state.released -= 1;
                        return Ok(FakeCursor {
                            next: 1,
                            last: 0,
                            in_tx: driver.in_tx,
                        });
                    }
                    state = driver
                        .script
                        .changed
                        .wait(state)
                        .unwrap_or_else(|e| e.into_inner());
                }
            }
            _ => Ok(FakeCursor {
                next: 1,
                last: self.rows.unwrap_or(0),
                in_tx: driver.in_tx,
            }),
        }
    }
}

/// The rows of a scripted statement.
pub(crate) struct FakeCursor {
    next: i64,
    last: i64,
    in_tx: bool,
}

impl Cursor for FakeCursor {
    fn next_into(&mut self, values: &mut Values) -> Result<bool> {
        if self.next > self.last {
            return Ok(false);
        }
        values.set(0, Value::Integer(self.next));
        self.next += 1;
        Ok(true)
    }

    fn rowcount(&mut self, done: bool) -> u64 {
        u64::from(done && self.last == 0)
    }

    fn in_transaction(&self) -> bool {
        self.in_tx
    }
}
