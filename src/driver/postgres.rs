//! PostgreSQL through the synchronous `postgres` crate, on the worker thread.
//!
//! The sync `postgres::Client` runs its own blocking runtime inside every
//! call and inside its `Drop`, so it must never be touched from an async
//! thread: it is created, used and dropped only here, on its worker.

use std::any::Any;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{to_sql_checked, FromSql, IsNull, Kind, ToSql, Type};
use postgres::{Client, RowIter, Statement};

use crate::error::{Error, Result};
use crate::params::Parameters;
use crate::row::ColumnNames;
use crate::value::Value;
use crate::worker::{self, Answer, Batch, Driver, Header, Kill, Limit, Link, Next, Ticket};

/// A connection that read or sent a row bigger than this is replaced once it
/// is back in the pool: the client's buffers keep the size they grew to, and
/// over TLS every later read pays for that size (`tokio-native-tls` clears
/// the free part of the read buffer on each read).
const WORN_ROW_BYTES: usize = 8 * 1024 * 1024;

/// How long a cancel may take to reach the server when the URL sets no `connect_timeout`.
const CANCEL_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Prepared statements kept per connection, at most.
const STATEMENT_CACHE: usize = 256;

pub(crate) struct PostgresDriver {
    client: Client,
    config: postgres::Config,
    tls: Tls,
    /// This connection's server process, as its own session reported it.
    backend: Option<Backend>,
    /// The last cancel went out as a cancel request, which the server may act
    /// on after the statement it was meant for (see [`cancel_backend`]).
    unconfirmed: Arc<AtomicBool>,
    /// Prepared statements and their column names, by statement text.
    statements: HashMap<String, (Statement, ColumnNames)>,
    in_tx: bool,
    /// A statement failed inside the open transaction: the server refuses
    /// everything but a rollback until it ends.
    failed: bool,
}

impl PostgresDriver {
    fn prepare(&mut self, sql: &str) -> Result<(Statement, ColumnNames)> {
        if let Some(cached) = self.statements.get(sql) {
            return Ok(cached.clone());
        }
        let stmt = self.client.prepare(sql).map_err(convert)?;
        let keys: ColumnNames =
            Arc::new(stmt.columns().iter().map(|c| c.name().to_owned()).collect());
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements
            .insert(sql.to_owned(), (stmt.clone(), keys.clone()));
        Ok((stmt, keys))
    }

    /// Tracks `BEGIN`/`COMMIT`/`ROLLBACK` run as plain SQL, since the client does not report it.
    fn note_transaction_sql(&mut self, sql: &str) {
        match control(sql) {
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

    fn open(target: &crate::config::Target) -> Result<Self> {
        let crate::config::Target::Postgres(config) = target else {
            unreachable!("the worker opens the driver its target names")
        };
        // Worker threads can be reused (a runtime's blocking pool): start clean.
        for flag in [&LOST, &WORN, &CANCELLED] {
            flag.with(|f| f.set(false));
        }
        let tls = tls(config);
        let mut client = connect(config, &tls).map_err(|e| Error::Connect {
            url: describe(config),
            source: Box::new(e),
        })?;
        let backend = Backend::of(&mut client);
        Ok(PostgresDriver {
            client,
            config: (**config).clone(),
            tls,
            backend,
            unconfirmed: Arc::new(AtomicBool::new(false)),
            statements: HashMap::new(),
            in_tx: false,
            failed: false,
        })
    }

    fn kill(&self) -> Kill {
        let token = self.client.cancel_token();
        let mut config = self.config.clone();
        if config.get_connect_timeout().is_none() {
            // The worker waits for the cancel: never for the system's TCP timeout.
            config.connect_timeout(CANCEL_CONNECT_TIMEOUT);
        }
        let tls = self.tls.clone();
        let backend = self.backend.clone();
        let unconfirmed = self.unconfirmed.clone();
        Kill {
            run: Box::new(move || {
                let outcome = match &backend {
                    Some(backend) => cancel_backend(&config, &tls, backend),
                    None => Cancel::Refused,
                };
                if outcome == Cancel::Refused {
                    let _ = cancel(&token, &tls);
                    unconfirmed.store(true, Ordering::SeqCst);
                }
            }),
            blocking: true,
        }
    }

    fn raw(&mut self) -> &mut dyn Any {
        // User code may change anything: forget cached statements.
        self.statements.clear();
        &mut self.client
    }

    fn in_transaction(&mut self) -> bool {
        self.in_tx
    }

    fn worn_out(&mut self) -> bool {
        WORN.with(|w| w.get())
    }

    fn is_broken(&mut self) -> bool {
        // A lost-connection error was seen on this worker, or the client noticed itself.
        LOST.with(|lost| lost.replace(false)) || self.client.is_closed()
    }

    fn ping(&mut self) -> Result<()> {
        self.client.batch_execute("").map_err(convert)
    }

    fn absorb_interrupt(&mut self) {
        // Only after a fallback (see `cancel_backend`): a cancel request
        // travels on a connection of its own, and the server
        // acts on it a little later; it also signals the backend twice (the
        // process and its process group), so even a cancel that met its
        // statement can leave a second one pending that the next statement
        // would meet. Give it a statement to hit that no caller waits for:
        // `pg_sleep` checks for a pending cancel first, then while it sleeps.
        let met = CANCELLED.with(|c| c.replace(false));
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

    fn batch(&mut self, sql: &str) -> Result<()> {
        let result = self.client.batch_execute(sql).map_err(convert);
        let result = self.failing(result);
        self.note_transaction_sql(sql);
        if result.is_err()
            && self.settle(sql)
            && first_keyword(sql).eq_ignore_ascii_case("ROLLBACK")
        {
            // The rollback that failed (a late cancel met it) was repeated.
            return Ok(());
        }
        result
    }

    fn execute(
        &mut self,
        ticket: Ticket,
        sql: &str,
        params: Parameters,
        reply: Answer<'_, Header>,
        link: &Link<'_>,
    ) -> Next {
        let interrupter = link.interrupter;
        // Only a cancel met by this request counts (see `absorb_interrupt`).
        CANCELLED.with(|c| c.set(false));
        if !interrupter.start(ticket) {
            let _ = reply.send(self.in_tx, interrupter.skipped());
            return Next::Idle;
        }
        let prepared = if is_blank(sql) {
            Err(Error::Database {
                message: "the SQL string holds no statement".into(),
                source: "empty statement".into(),
            })
        } else {
            let prepared = self.prepare(sql);
            self.failing(prepared)
                .and_then(|(stmt, keys)| check(&stmt, &params).map(|()| (stmt, keys)))
        };
        let (stmt, keys) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                let _ = reply.send(self.in_tx, interrupter.end(Err(e)));
                return Next::Idle;
            }
        };
        self.note_transaction_sql(sql);
        note_size(&params.positional);
        let in_tx = self.in_tx;
        let returns_rows = !stmt.columns().is_empty();
        let error = 'run: {
            let mut rows = match self.client.query_raw(&stmt, params.positional.iter()) {
                Ok(rows) => rows,
                Err(e) => break 'run interrupter.end(Err(convert(e))),
            };
            let first =
                match interrupter.end(read(&mut rows, &keys, Limit::First(worker::BATCH_ROWS))) {
                    Ok(batch) => batch,
                    Err(e) => break 'run Err(e),
                };
            let done = first.done;
            let header = Header {
                keys: returns_rows.then(|| keys.clone()),
                // As on SQLite: rows inserted, updated or deleted; 0 for queries.
                rowcount: match first_keyword(sql).to_ascii_uppercase().as_str() {
                    "SELECT" | "VALUES" | "SHOW" | "TABLE" | "FETCH" | "EXPLAIN" => 0,
                    _ if done => rows.rows_affected().unwrap_or(0),
                    _ => 0,
                },
                last_insert_id: None,
                returns_rows,
                batch: first,
                bounced: None,
            };
            if !reply.send(in_tx, Ok(header)) || done {
                return Next::Idle;
            }
            return worker::serve_cursor(link, ticket.seq, |limit| read(&mut rows, &keys, limit));
        };
        self.failed |= in_tx;
        self.settle(sql);
        let _ = reply.send(self.in_tx, error);
        Next::Idle
    }

    fn execute_many(&mut self, sql: &str, params: &[Parameters]) -> Result<u64> {
        CANCELLED.with(|c| c.set(false));
        let (stmt, _) = self.prepare(sql)?;
        let mut total = 0;
        for set in params {
            check(&stmt, set)?;
            note_size(&set.positional);
            let refs: Vec<&(dyn ToSql + Sync)> = set
                .positional
                .iter()
                .map(|v| v as &(dyn ToSql + Sync))
                .collect();
            total += self.client.execute(&stmt, &refs).map_err(convert)?;
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
            .map_err(convert)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// A connection's server process: its pid, and when it started (a pid can be reused).
#[derive(Clone)]
struct Backend {
    pid: i32,
    /// `backend_start` in µs since the Unix epoch: unlike its text, the
    /// same whatever `DateStyle` and `TimeZone` a session has.
    started: i64,
}

/// [`Backend::started`] in SQL.
const BACKEND_STARTED: &str = "(extract(epoch FROM backend_start) * 1000000)::int8";

impl Backend {
    /// Asks the session which server process it runs in (one round trip).
    fn of(client: &mut Client) -> Option<Backend> {
        let messages = client
            .simple_query(&format!(
                "SELECT pid, {BACKEND_STARTED} FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            ))
            .ok()?;
        let row = messages.iter().find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })?;
        Some(Backend {
            pid: row.get(0)?.parse().ok()?,
            started: row.get(1)?.parse().ok()?,
        })
    }
}

/// What became of a cancel sent with [`cancel_backend`].
#[derive(Debug, PartialEq, Eq)]
enum Cancel {
    /// The server signalled the backend before it answered.
    Signalled,
    /// The server answered but did not signal it (a session limit, a role
    /// that may not, a backend it does not know): send a cancel request.
    Refused,
    /// The server could not be reached: a cancel request would not be either.
    Unreachable,
}

/// Cancels `backend`'s running statement from a session of its own.
///
/// A cancel request (the protocol's way, [`cancel`]) is answered before the
/// server acts on it, so it can land on the statement after the one it was
/// meant for. `pg_cancel_backend` returns only once the backend has been
/// signalled; since the worker cannot send its next statement until the
/// cancel returns, the signal is taken while the backend still runs the
/// statement it was meant for, or while it waits for the next one, when it is
/// ignored. The cost is a short-lived session per cancel (a few ms).
fn cancel_backend(config: &postgres::Config, tls: &Tls, backend: &Backend) -> Cancel {
    let mut session = match connect(config, tls) {
        Ok(session) => session,
        Err(e) if e.as_db_error().is_some() => return Cancel::Refused,
        Err(_) => return Cancel::Unreachable,
    };
    // The start time guards against a pid the server has since given to another session.
    let signalled = session
        .query_opt(
            &format!(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
                 WHERE pid = $1 AND {BACKEND_STARTED} = $2"
            ),
            &[&backend.pid, &backend.started],
        )
        .ok()
        .flatten()
        .and_then(|row| row.try_get::<_, bool>(0).ok())
        .unwrap_or(false);
    if signalled {
        Cancel::Signalled
    } else {
        Cancel::Refused
    }
}

/// The TLS connector a connection (and its cancel requests) use.
#[cfg(feature = "tls")]
type Tls = Option<postgres_native_tls::MakeTlsConnector>;
/// No TLS in this build.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
struct Tls;

#[cfg(feature = "tls")]
fn tls(config: &postgres::Config) -> Tls {
    use postgres::config::SslMode;
    use std::sync::OnceLock;
    // Building a connector loads the system's certificates: do it once per process.
    static CONNECTOR: OnceLock<Option<postgres_native_tls::MakeTlsConnector>> = OnceLock::new();
    if config.get_ssl_mode() == SslMode::Disable {
        return None;
    }
    CONNECTOR
        .get_or_init(|| {
            // libpq's `prefer` and `require` encrypt without verifying the certificate.
            native_tls::TlsConnector::builder()
                .danger_accept_invalid_certs(true)
                .danger_accept_invalid_hostnames(true)
                .build()
                .ok()
                .map(postgres_native_tls::MakeTlsConnector::new)
        })
        .clone()
}

#[cfg(not(feature = "tls"))]
fn tls(_: &postgres::Config) -> Tls {
    Tls
}

#[cfg(feature = "tls")]
fn connect(config: &postgres::Config, tls: &Tls) -> std::result::Result<Client, postgres::Error> {
    match tls {
        Some(tls) => config.connect(tls.clone()),
        None => config.connect(postgres::NoTls),
    }
}

#[cfg(not(feature = "tls"))]
fn connect(config: &postgres::Config, _: &Tls) -> std::result::Result<Client, postgres::Error> {
    config.connect(postgres::NoTls)
}

#[cfg(feature = "tls")]
fn cancel(token: &postgres::CancelToken, tls: &Tls) -> std::result::Result<(), postgres::Error> {
    match tls {
        Some(tls) => token.cancel_query(tls.clone()),
        None => token.cancel_query(postgres::NoTls),
    }
}

#[cfg(not(feature = "tls"))]
fn cancel(token: &postgres::CancelToken, _: &Tls) -> std::result::Result<(), postgres::Error> {
    token.cancel_query(postgres::NoTls)
}

/// `postgres://user@host:port/db` for messages, never with the password.
fn describe(config: &postgres::Config) -> String {
    use postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
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
    match first_keyword(sql).to_ascii_uppercase().as_str() {
        "BEGIN" | "START" => Some(Control::Begin),
        "COMMIT" | "END" | "ABORT" => Some(Control::End),
        "ROLLBACK" => {
            let rest = sql.trim_start()["ROLLBACK".len()..].trim_start();
            if rest.to_ascii_uppercase().starts_with("TO") {
                Some(Control::RollbackTo)
            } else {
                Some(Control::End)
            }
        }
        _ => None,
    }
}

fn first_keyword(sql: &str) -> &str {
    let s = sql.trim_start();
    let end = s
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(s.len());
    &s[..end]
}

/// Checks the parameters against the statement before anything is sent.
fn check(stmt: &Statement, params: &Parameters) -> Result<()> {
    if !params.named.is_empty() {
        return Err(Error::Parameter(
            "PostgreSQL takes positional parameters ($1, $2, ...), not named ones".into(),
        ));
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

/// Notes a row or parameter set big enough to wear the connection out.
fn note_size(values: &[Value]) {
    if worker::row_bytes(values) > WORN_ROW_BYTES {
        WORN.with(|w| w.set(true));
    }
}

fn read(rows: &mut RowIter<'_>, keys: &ColumnNames, limit: Limit) -> Result<Batch> {
    worker::read_batch(keys, limit, |values| {
        let Some(row) = rows.next().map_err(convert)? else {
            return Ok(false);
        };
        for (i, column) in row.columns().iter().enumerate() {
            let failed = |e: postgres::Error| {
                let reason = e.source().map_or_else(|| e.to_string(), |s| s.to_string());
                Error::decode(column.name(), crate::error::DecodeError::new(reason))
            };
            if is_text(column.type_()) {
                // Into the text the row being read already holds, if any.
                match row.try_get::<_, Option<TextRef<'_>>>(i).map_err(failed)? {
                    Some(TextRef(text)) => worker::put_text(values, i, text),
                    None => worker::put(values, i, Value::Null),
                }
            } else {
                worker::put(values, i, row.try_get::<_, Value>(i).map_err(failed)?);
            }
        }
        note_size(values);
        Ok(true)
    })
}

type BoxErr = Box<dyn StdError + Sync + Send>;

fn out_of_range(value: impl std::fmt::Display, ty: &Type) -> BoxErr {
    format!("value {value} is out of range for a {ty} parameter").into()
}

fn mismatch(value: &Value, ty: &Type) -> BoxErr {
    format!("cannot bind a {} value to a {ty} parameter", value.kind()).into()
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxErr> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Bool(b), &Type::BOOL) => b.to_sql(ty, out),
            (Value::Integer(i), &Type::INT2) => i16::try_from(*i)
                .map_err(|_| out_of_range(i, ty))?
                .to_sql(ty, out),
            (Value::Integer(i), &Type::INT4) => i32::try_from(*i)
                .map_err(|_| out_of_range(i, ty))?
                .to_sql(ty, out),
            (Value::Integer(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Integer(i), &Type::OID) => u32::try_from(*i)
                .map_err(|_| out_of_range(i, ty))?
                .to_sql(ty, out),
            (Value::Integer(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Integer(i), &Type::FLOAT4) => (*i as f32).to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            #[cfg(feature = "decimal")]
            (Value::Integer(i), &Type::NUMERIC) => rust_decimal::Decimal::from(*i).to_sql(ty, out),
            #[cfg(feature = "decimal")]
            (Value::Real(f), &Type::NUMERIC) => {
                rust_decimal::Decimal::try_from(*f)?.to_sql(ty, out)
            }
            #[cfg(feature = "decimal")]
            (Value::Decimal(d), &Type::NUMERIC) => d.to_sql(ty, out),
            #[cfg(feature = "decimal")]
            (Value::Text(s), &Type::NUMERIC) => s.parse::<rust_decimal::Decimal>()?.to_sql(ty, out),
            (Value::Text(s), &Type::JSON) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Text(s), &Type::JSONB) => {
                out.extend_from_slice(&[1]);
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Text(s), t) if is_text(t) => s.as_str().to_sql(ty, out),
            // Plain numbers and booleans into a text parameter (`SELECT $1`): their text form.
            (Value::Integer(i), t) if is_text(t) => i.to_string().as_str().to_sql(ty, out),
            (Value::Real(f), t) if is_text(t) => f.to_string().as_str().to_sql(ty, out),
            (Value::Bool(b), t) if is_text(t) => b.to_string().as_str().to_sql(ty, out),
            (Value::Blob(b), &Type::BYTEA) => b.as_slice().to_sql(ty, out),
            #[cfg(feature = "chrono")]
            (Value::Timestamp(t), &Type::TIMESTAMP) => t.to_sql(ty, out),
            #[cfg(feature = "chrono")]
            (Value::Timestamp(t), &Type::TIMESTAMPTZ) => t.and_utc().to_sql(ty, out),
            #[cfg(feature = "chrono")]
            (Value::TimestampTz(t), &Type::TIMESTAMPTZ) => t.to_sql(ty, out),
            #[cfg(feature = "chrono")]
            (Value::TimestampTz(t), &Type::TIMESTAMP) => t.naive_utc().to_sql(ty, out),
            #[cfg(feature = "chrono")]
            (Value::Date(d), &Type::DATE) => d.to_sql(ty, out),
            #[cfg(feature = "chrono")]
            (Value::Time(t), &Type::TIME) => t.to_sql(ty, out),
            #[cfg(feature = "uuid")]
            (Value::Uuid(u), &Type::UUID) => u.to_sql(ty, out),
            #[cfg(feature = "uuid")]
            (Value::Text(s), &Type::UUID) => uuid::Uuid::parse_str(s)?.to_sql(ty, out),
            #[cfg(feature = "json")]
            (Value::Json(j), &Type::JSON | &Type::JSONB) => j.to_sql(ty, out),
            (value, ty) => Err(mismatch(value, ty)),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_text(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    ) || matches!(ty.kind(), Kind::Enum(_))
        || ty.name() == "citext"
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxErr> {
        Ok(match *ty {
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::INT2 => Value::Integer(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Value::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::OID => Value::Integer(u32::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            #[cfg(feature = "json")]
            Type::JSON | Type::JSONB => Value::Json(serde_json::Value::from_sql(ty, raw)?),
            #[cfg(not(feature = "json"))]
            Type::JSON => Value::Text(String::from_utf8(raw.to_vec())?),
            #[cfg(not(feature = "json"))]
            Type::JSONB if raw.first() == Some(&1) => {
                Value::Text(String::from_utf8(raw[1..].to_vec())?)
            }
            #[cfg(feature = "decimal")]
            Type::NUMERIC => Value::Decimal(rust_decimal::Decimal::from_sql(ty, raw)?),
            #[cfg(feature = "chrono")]
            Type::TIMESTAMP => Value::Timestamp(chrono::NaiveDateTime::from_sql(ty, raw)?),
            #[cfg(feature = "chrono")]
            Type::TIMESTAMPTZ => {
                Value::TimestampTz(chrono::DateTime::<chrono::Utc>::from_sql(ty, raw)?)
            }
            #[cfg(feature = "chrono")]
            Type::DATE => Value::Date(chrono::NaiveDate::from_sql(ty, raw)?),
            #[cfg(feature = "chrono")]
            Type::TIME => Value::Time(chrono::NaiveTime::from_sql(ty, raw)?),
            #[cfg(feature = "uuid")]
            Type::UUID => Value::Uuid(uuid::Uuid::from_sql(ty, raw)?),
            _ if is_text(ty) => Value::Text(String::from_utf8(raw.to_vec())?),
            _ => return Err(unsupported(ty).into()),
        })
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, BoxErr> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A text column's value, borrowed from the row: [`read`] copies it into the
/// text of the row being read rather than allocating a `String` per value.
struct TextRef<'a>(&'a str);

impl<'a> FromSql<'a> for TextRef<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxErr> {
        Ok(TextRef(std::str::from_utf8(raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        is_text(ty)
    }
}

fn unsupported(ty: &Type) -> String {
    let feature = match *ty {
        Type::NUMERIC => Some("decimal"),
        Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::DATE | Type::TIME => Some("chrono"),
        Type::UUID => Some("uuid"),
        _ => None,
    };
    match feature {
        Some(f) => format!(
            "PostgreSQL type {ty} needs the \"{f}\" feature of sqlaio (or cast it to text in SQL)"
        ),
        None => format!("PostgreSQL type {ty} is not supported (cast it to text in SQL)"),
    }
}

impl From<postgres::Error> for Error {
    /// Lets `run_in_thread` closures use `?` on `postgres` calls.
    fn from(e: postgres::Error) -> Error {
        convert(e)
    }
}

/// Converts a `postgres` error into ours, keeping the server's message.
pub(crate) fn convert(e: postgres::Error) -> Error {
    if e.code() == Some(&postgres::error::SqlState::QUERY_CANCELED) {
        CANCELLED.with(|c| c.set(true));
    }
    let error = classify(e);
    if error.is_connection_lost() {
        LOST.with(|lost| lost.set(true));
    }
    error
}

thread_local! {
    /// Set on a worker thread when its connection reported itself lost.
    static LOST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// This worker's connection read or sent a row over [`WORN_ROW_BYTES`].
    static WORN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// A statement on this worker failed with `query_canceled`: a cancel request met it.
    static CANCELLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `true` for a server error after which the session is gone: a FATAL or
/// PANIC, an operator intervention (57P: terminated, shutting down) or a
/// connection exception (08).
fn ends_session(db: &postgres::error::DbError) -> bool {
    let code = db.code().code();
    matches!(db.severity(), "FATAL" | "PANIC") || code.starts_with("57P") || code.starts_with("08")
}

fn classify(e: postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        if ends_session(db) {
            return Error::ConnectionLost(Box::new(e));
        }
        let mut message = db.message().to_owned();
        if let Some(detail) = db.detail() {
            message.push_str(": ");
            message.push_str(detail);
        }
        return Error::Database {
            message,
            source: Box::new(e),
        };
    }
    if e.is_closed() {
        return Error::ConnectionLost(Box::new(e));
    }
    let text = e.to_string();
    if text.starts_with("error serializing parameter") {
        let reason = e.source().map_or_else(|| text.clone(), |s| s.to_string());
        let index = text
            .trim_start_matches("error serializing parameter ")
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse::<usize>().ok());
        return Error::Parameter(match index {
            Some(i) => format!("parameter ${}: {reason}", i + 1),
            None => reason,
        });
    }
    if e.source().is_some_and(|s| s.is::<std::io::Error>()) {
        return Error::ConnectionLost(Box::new(e));
    }
    Error::Database {
        message: text,
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Target;

    /// A driver on the test server (`DATABASE_URL`, or the local default);
    /// `None`, with a notice, when none answers, except under `CI=true`.
    fn driver(test: &str) -> Option<PostgresDriver> {
        let url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| "postgres://root@127.0.0.1:5432/test".into());
        let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        match PostgresDriver::open(&Target::parse(&url).expect("a PostgreSQL URL")) {
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
        assert_eq!(
            cancel_backend(&driver.config, &driver.tls, &reused),
            Cancel::Refused
        );
        assert_eq!(
            cancel_backend(&driver.config, &driver.tls, &backend),
            Cancel::Signalled
        );
        // Nothing listens on port 1: no cancel request is worth sending either.
        let nowhere: postgres::Config = "host=127.0.0.1 port=1 user=sqlaio".parse().unwrap();
        assert_eq!(
            cancel_backend(&nowhere, &driver.tls, &backend),
            Cancel::Unreachable
        );

        // Unconfirmed, the kill falls back to a cancel request and the worker absorbs it.
        driver.backend = Some(reused);
        (driver.kill().run)();
        assert!(driver.unconfirmed.load(Ordering::SeqCst));
        driver.absorb_interrupt();
        assert!(!driver.unconfirmed.load(Ordering::SeqCst));
    }
}
