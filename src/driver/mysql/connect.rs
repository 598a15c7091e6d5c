//! URLs, connecting, the engine's control connection that stops running
//! statements (`KILL QUERY`), and what the crate's errors mean.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql::consts::CapabilityFlags;
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder};

use crate::error::{DatabaseDetails, Error, ErrorKind, Result};

/// How long the control connection may take to connect, and to answer a
/// `KILL`, unless the URL says otherwise (`kill_timeout`).
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection unless the URL says otherwise
/// (`stmt_cache_size`).
pub(super) const STATEMENT_CACHE: usize = 256;

/// Where an engine's connections go, and the control connection they share.
pub(crate) struct MysqlConfig {
    /// The session's options, as given, plus the capabilities sqlaio needs.
    pub(super) opts: Opts,
    /// The URL for messages, password redacted.
    pub(super) shown: String,
    /// Prepared statements kept per connection.
    pub(super) statements: usize,
    /// The engine's one connection for `KILL QUERY`.
    pub(super) control: Arc<Control>,
}

impl fmt::Debug for MysqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlConfig")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

/// URL options that would need TLS, which this build does not do yet.
fn is_tls_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    key.starts_with("ssl")
        || key.starts_with("tls")
        || key.starts_with("danger_")
        || key.starts_with("pkcs12")
        || matches!(
            key.as_str(),
            "require_ssl"
                | "verify_ca"
                | "verify_identity"
                | "built_in_roots"
                | "root_cert_path"
                | "cert_chain_path"
                | "priv_key_path"
                | "cipher_suites"
        )
}

/// `true` for a TLS option's value that asks for no TLS at all.
fn declines_tls(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "disabled" | "disable" | "false" | "0" | "off"
    )
}

fn seconds(key: &str, value: &str) -> Result<Duration> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            Error::Config(format!(
                "MySQL URL option {key}={value:?}: expected a positive number of seconds"
            ))
        })
}

/// Parses `mysql://user:pass@host:port/db?options` (or `mariadb://`).
///
/// sqlaio's own options are taken out before the `mysql` crate parses the
/// rest: `connect_timeout` (seconds), `kill_timeout` (seconds, the control
/// connection's connect and read timeouts) and `stmt_cache_size`.
pub(super) fn parse(url: &str) -> Result<MysqlConfig> {
    let shown = crate::url::redact(url);
    let invalid = |why: &str| Error::Config(format!("invalid MySQL URL {shown:?}: {why}"));
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid("expected mysql://user:password@host:port/database"));
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "mysql" | "mariadb") {
        return Err(invalid("the scheme must be mysql:// or mariadb://"));
    }
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut kept = Vec::new();
    let mut connect_timeout = None;
    let mut kill_timeout = KILL_TIMEOUT;
    let mut statements = STATEMENT_CACHE;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "connect_timeout" => connect_timeout = Some(seconds(key, value)?),
            "kill_timeout" => kill_timeout = seconds(key, value)?,
            "stmt_cache_size" => {
                statements = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| invalid("stmt_cache_size must be a positive number"))?;
            }
            "pool_min" | "pool_max" | "check_health" | "reset_connection" => {
                return Err(invalid(&format!(
                    "{key} is an option of the mysql crate's own pool; size sqlaio's pool on the \
                     EngineBuilder (max_connections, min_connections)"
                )))
            }
            key if is_tls_option(key) => {
                if !declines_tls(value) {
                    return Err(Error::Config(format!(
                        "MySQL URL option {key}={value:?} needs TLS, which sqlaio does not do for \
                         MySQL yet: connect without it (on a trusted network or over a local socket)"
                    )));
                }
            }
            _ => kept.push(pair),
        }
    }
    let mut crate_url = format!("mysql://{base}");
    if !kept.is_empty() {
        crate_url.push('?');
        crate_url.push_str(&kept.join("&"));
    }
    let opts = Opts::from_url(&crate_url).map_err(|e| invalid(&e.to_string()))?;
    let capabilities = opts.get_additional_capabilities()
        // An UPDATE reports the rows it matched, as on SQLite and PostgreSQL.
        | CapabilityFlags::CLIENT_FOUND_ROWS
        // OK packets say when a transaction starts or ends (implicit commits included).
        | CapabilityFlags::CLIENT_SESSION_TRACK;
    let mut builder = OptsBuilder::from_opts(opts.clone())
        .additional_capabilities(capabilities)
        // The crate closes statements it evicts: its cache must outlast sqlaio's.
        .stmt_cache_size(statements.saturating_mul(2));
    if let Some(timeout) = connect_timeout {
        builder = builder.tcp_connect_timeout(Some(timeout));
    }
    let control = OptsBuilder::from_opts(opts)
        .tcp_connect_timeout(Some(connect_timeout.unwrap_or(kill_timeout)))
        .read_timeout(Some(kill_timeout))
        .write_timeout(Some(kill_timeout))
        .stmt_cache_size(0);
    Ok(MysqlConfig {
        opts: builder.into(),
        shown,
        statements,
        control: Arc::new(Control {
            opts: control.into(),
            conn: Mutex::new(None),
        }),
    })
}

/// The engine's connection for `KILL QUERY`, opened on first use and again
/// after an error. Kills from every connection of the engine take turns on it.
pub(crate) struct Control {
    opts: Opts,
    conn: Mutex<Option<Conn>>,
}

/// What became of a `KILL QUERY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Killed {
    /// The server acted on it before it answered (or found no such session).
    Done,
    /// The server could not be reached, or refused (a missing privilege).
    NotSent,
    /// It went out but no answer came back: the server may act on it later.
    Unconfirmed,
}

impl Control {
    /// Stops the statement session `id` is running, if any.
    pub(super) fn kill_query(&self, id: u64) -> Killed {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut outcome = Killed::NotSent;
        // A second try on a fresh connection when the kept one has gone stale.
        for _ in 0..2 {
            if conn.is_none() {
                match Conn::new(self.opts.clone()) {
                    Ok(fresh) => *conn = Some(fresh),
                    Err(_) => return outcome,
                }
            }
            let Some(control) = conn.as_mut() else {
                return outcome;
            };
            match control.query_drop(format!("KILL QUERY {id}")) {
                Ok(()) => return Killed::Done,
                // ER_NO_SUCH_THREAD: the session is gone, so is its statement.
                Err(mysql::Error::MySqlError(e)) if e.code == 1094 => return Killed::Done,
                Err(mysql::Error::MySqlError(_)) => return Killed::NotSent,
                Err(_) => {
                    *conn = None;
                    outcome = Killed::Unconfirmed;
                }
            }
        }
        outcome
    }
}

/// Kills asked for on one connection, shared with its `Kill`.
#[derive(Debug, Default)]
pub(super) struct Kills {
    /// A kill was asked for since the statement started: a statement that
    /// then ends without an error was cut short, or ran past its deadline.
    pub(super) requested: AtomicBool,
    /// A `KILL` went out unanswered (see [`Killed::Unconfirmed`]).
    pub(super) unconfirmed: AtomicBool,
}

impl Kills {
    pub(super) fn note(&self, outcome: Killed) {
        if outcome == Killed::Unconfirmed {
            self.unconfirmed.store(true, Ordering::SeqCst);
        }
    }
}

/// What a new session says about itself.
pub(super) struct Session {
    /// The server's id for it, for `KILL QUERY`; `None` behind a proxy.
    pub(super) id: Option<u64>,
    /// It reports transaction state in OK packets.
    pub(super) tracked: bool,
    /// The server is MariaDB.
    pub(super) mariadb: bool,
}

/// Connects and sets the session up: transaction-state tracking, and which
/// server session the statements run in (one round trip).
pub(super) fn open(config: &MysqlConfig) -> Result<(Conn, Session)> {
    let failed = |e: mysql::Error| Error::Connect {
        url: config.shown.clone(),
        source: Box::new(e),
    };
    let mut conn = Conn::new(config.opts.clone()).map_err(failed)?;
    let ask = "SELECT CONNECTION_ID(), VERSION()";
    let (tracked, answer) = match first_row(
        &mut conn,
        &format!("SET SESSION session_track_transaction_info = 'STATE'; {ask}"),
    ) {
        Ok(answer) => (true, answer),
        // A server without transaction tracking (MySQL before 5.7, MariaDB before 10.3).
        Err(mysql::Error::MySqlError(_)) => (false, first_row(&mut conn, ask).map_err(failed)?),
        Err(e) => return Err(failed(e)),
    };
    let server_id = answer.first().and_then(|id| id.parse::<u64>().ok());
    // Behind a proxy (ProxySQL, MaxScale) the handshake names the proxy's
    // session, not the server's: a KILL could then stop another client's
    // statement, so none is sent.
    let id = server_id.filter(|id| *id as u32 == conn.connection_id());
    let mariadb = answer
        .get(1)
        .is_some_and(|v| v.to_ascii_lowercase().contains("mariadb"));
    Ok((
        conn,
        Session {
            id,
            tracked,
            mariadb,
        },
    ))
}

/// The first row of the last result set of `sql`, as text.
fn first_row(conn: &mut Conn, sql: &str) -> std::result::Result<Vec<String>, mysql::Error> {
    let mut row = Vec::new();
    let mut result = conn.query_iter(sql)?;
    while let Some(set) = result.iter() {
        for r in set {
            let r = r?;
            if row.is_empty() {
                row = (0..r.len())
                    .map(|i| match r.as_ref(i) {
                        Some(mysql::Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                        Some(other) => other.as_sql(true),
                        None => String::new(),
                    })
                    .collect();
            }
        }
    }
    Ok(row)
}

/// Server error codes after which the session is gone.
fn ends_session(code: u16) -> bool {
    matches!(
        code,
        // ER_SERVER_SHUTDOWN, ER_ABORTING_CONNECTION, ER_NEW_ABORTING_CONNECTION
        1053 | 1152 | 1184
            // MariaDB ER_CONNECTION_KILLED, MySQL ER_SESSION_WAS_KILLED
            | 1927 | 3169
            // MySQL ER_CLIENT_INTERACTION_TIMEOUT
            | 4031
    )
}

/// The server error code of `e`, if it is one.
pub(super) fn code(e: &mysql::Error) -> Option<u16> {
    match e {
        mysql::Error::MySqlError(e) => Some(e.code),
        _ => None,
    }
}

/// `true` for an error of `Conn::new` worth retrying: too many connections,
/// a server shutting down or starting, a connection refused or timed out.
pub(super) fn is_transient(error: &Error) -> bool {
    crate::driver::is_transient_connect(error, |err| {
        if let Some(e) = err.downcast_ref::<mysql::Error>() {
            return match e {
                // ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS,
                // ER_SERVER_SHUTDOWN, ER_SERVER_OFFLINE_MODE
                mysql::Error::MySqlError(e) => Some(matches!(e.code, 1040 | 1203 | 1053 | 3032)),
                mysql::Error::DriverError(d) => Some(transient_driver(d)),
                // An I/O error: the walk goes on to it.
                mysql::Error::IoError(_) => None,
                _ => Some(false),
            };
        }
        err.downcast_ref::<mysql::DriverError>().map(transient_driver)
    })
}

fn transient_driver(d: &mysql::DriverError) -> bool {
    use std::io::ErrorKind::*;
    match d {
        mysql::DriverError::ConnectTimeout => true,
        mysql::DriverError::CouldNotConnect(Some((_, _, kind))) => {
            matches!(kind, ConnectionRefused | ConnectionReset | TimedOut | NotConnected)
        }
        _ => false,
    }
}

/// The portable kind of a server error, its number, and the key or table it names.
fn details(code: u16, message: &str) -> DatabaseDetails {
    let kind = match code {
        1062 | 1586 => ErrorKind::UniqueViolation,
        1451 | 1452 | 1216 | 1217 => ErrorKind::ForeignKeyViolation,
        1048 | 1364 => ErrorKind::NotNullViolation,
        3819 | 4025 => ErrorKind::CheckViolation,
        1213 => ErrorKind::Deadlock,
        1205 => ErrorKind::LockTimeout,
        1792 | 1290 | 1836 => ErrorKind::ReadOnly,
        1317 | 3024 | 1969 => ErrorKind::QueryCanceled,
        1064 | 1146 | 1054 | 1149 => ErrorKind::Syntax,
        _ => ErrorKind::Other,
    };
    // "Duplicate entry 'a' for key 'users.email'" (MySQL 8: table.key; MariaDB: key),
    // "CONSTRAINT `adult` failed for `test`.`users`".
    let quoted = |after: &str| {
        let rest = message.split_once(after)?.1.trim_start();
        let rest = rest.strip_prefix(['\'', '`'])?;
        rest.split_once(['\'', '`']).map(|(name, _)| name.to_owned())
    };
    let constraint = match kind {
        ErrorKind::UniqueViolation => quoted("for key").map(|key| {
            key.rsplit_once('.').map_or(key.clone(), |(_, key)| key.to_owned())
        }),
        ErrorKind::CheckViolation | ErrorKind::ForeignKeyViolation => quoted("CONSTRAINT"),
        _ => None,
    };
    DatabaseDetails {
        kind,
        code: Some(code.to_string()),
        constraint,
        table: None,
    }
}

/// Converts a `mysql` error into ours.
pub(super) fn convert(e: mysql::Error) -> Error {
    use mysql::DriverError as D;
    match e {
        mysql::Error::MySqlError(ref my) => {
            if ends_session(my.code) {
                return Error::ConnectionLost(Box::new(e));
            }
            let message = match my.code {
                // InnoDB rolls the whole transaction back on a deadlock.
                1213 => format!(
                    "{} (MySQL rolled the whole transaction back)",
                    my.message
                ),
                _ => my.message.clone(),
            };
            let details = details(my.code, &my.message);
            Error::database_with(message, e, details)
        }
        mysql::Error::IoError(_) | mysql::Error::CodecError(_) => {
            Error::ConnectionLost(Box::new(e))
        }
        mysql::Error::DriverError(ref d) => match d {
            D::MismatchedStmtParams(expected, given) => Error::ParameterCount {
                expected: usize::from(*expected),
                given: *given,
            },
            D::Params(p) => Error::Parameter(p.to_string()),
            D::MixedParams => Error::Parameter(
                "a statement cannot mix ? and :name placeholders".into(),
            ),
            D::PacketOutOfSync | D::UnexpectedPacket | D::ConnectTimeout | D::Timeout
            | D::CouldNotConnect(_) => Error::ConnectionLost(Box::new(e)),
            _ => Error::database(d.to_string(), e),
        },
        other => Error::database(other.to_string(), other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_sqlaio_options_from_the_crate() {
        let config = parse("mariadb://dana:s3cret@db.example:3307/app?connect_timeout=2&kill_timeout=1.5&prefer_socket=false").unwrap();
        assert_eq!(config.opts.get_tcp_port(), 3307);
        assert_eq!(config.opts.get_db_name(), Some("app"));
        assert_eq!(config.opts.get_pass(), Some("s3cret"));
        assert_eq!(config.opts.get_tcp_connect_timeout(), Some(Duration::from_secs(2)));
        assert!(config
            .opts
            .get_additional_capabilities()
            .contains(CapabilityFlags::CLIENT_FOUND_ROWS));
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("dana:***@db.example"), "{debug}");
    }

    #[test]
    fn tls_options_are_refused_until_tls_is_there() {
        for url in [
            "mysql://u@h/db?ssl-mode=REQUIRED",
            "mysql://u@h/db?require_ssl=true",
            "mysql://u@h/db?verify_ca=true",
        ] {
            let e = parse(url).unwrap_err().to_string();
            assert!(e.contains("needs TLS"), "{url}: {e}");
        }
        assert!(parse("mysql://u@h/db?ssl-mode=DISABLED").is_ok());
    }

    #[test]
    fn bad_urls_say_why_without_the_password() {
        let e = parse("mysql://u:pw@h/db?no_such_option=1").unwrap_err().to_string();
        assert!(e.contains("no_such_option") && !e.contains("pw@"), "{e}");
        let e = parse("mysql://u@h/db?pool_max=3").unwrap_err().to_string();
        assert!(e.contains("max_connections"), "{e}");
        let e = parse("mysql://u@h/db?connect_timeout=soon").unwrap_err().to_string();
        assert!(e.contains("seconds"), "{e}");
    }
}
