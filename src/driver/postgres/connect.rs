//! Connecting, with or without TLS, and cancelling a running statement from
//! another session.

use postgres::Client;

/// A connection's server process: its pid, and when it started (a pid can be reused).
#[derive(Clone)]
pub(super) struct Backend {
    pub(super) pid: i32,
    /// `backend_start` in µs since the Unix epoch: unlike its text, the
    /// same whatever `DateStyle` and `TimeZone` a session has.
    pub(super) started: i64,
}

/// [`Backend::started`] in SQL.
const BACKEND_STARTED: &str = "(extract(epoch FROM backend_start) * 1000000)::int8";

impl Backend {
    /// Asks the session which server process it runs in (one round trip).
    pub(super) fn of(client: &mut Client) -> Option<Backend> {
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
pub(super) enum Cancel {
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
pub(super) fn cancel_backend(config: &postgres::Config, tls: &Tls, backend: &Backend) -> Cancel {
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
pub(super) type Tls = Option<postgres_native_tls::MakeTlsConnector>;
/// No TLS in this build.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
pub(super) struct Tls;

#[cfg(feature = "tls")]
pub(super) fn tls(config: &postgres::Config) -> Tls {
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
pub(super) fn tls(_: &postgres::Config) -> Tls {
    Tls
}

#[cfg(feature = "tls")]
pub(super) fn connect(config: &postgres::Config, tls: &Tls) -> std::result::Result<Client, postgres::Error> {
    match tls {
        Some(tls) => config.connect(tls.clone()),
        None => config.connect(postgres::NoTls),
    }
}

#[cfg(not(feature = "tls"))]
pub(super) fn connect(config: &postgres::Config, _: &Tls) -> std::result::Result<Client, postgres::Error> {
    config.connect(postgres::NoTls)
}

#[cfg(feature = "tls")]
pub(super) fn cancel(token: &postgres::CancelToken, tls: &Tls) -> std::result::Result<(), postgres::Error> {
    match tls {
        Some(tls) => token.cancel_query(tls.clone()),
        None => token.cancel_query(postgres::NoTls),
    }
}

#[cfg(not(feature = "tls"))]
pub(super) fn cancel(token: &postgres::CancelToken, _: &Tls) -> std::result::Result<(), postgres::Error> {
    token.cancel_query(postgres::NoTls)
}

