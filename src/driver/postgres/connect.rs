//! Connecting, with or without TLS, and cancelling a running statement from
//! another session.

use std::time::Duration;

use postgres::Client;
use tokio_postgres::config::SslMode as Wire;

use super::options::{PgConfig, CONNECT_TIMEOUT};
use super::tls::SslMode;

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

/// How long the cancel session may take beyond its connect timeout: its
/// start-up, TLS, authentication and one query.
const CANCEL_SESSION_SLACK: Duration = Duration::from_secs(5);

/// Cancels `backend`'s running statement from a session of its own.
///
/// A cancel request (the protocol's way, [`cancel`]) is answered before the
/// server acts on it, so it can land on the statement after the one it was
/// meant for. `pg_cancel_backend` returns only once the backend has been
/// signalled; since the worker cannot send its next statement until the
/// cancel returns, the signal is taken while the backend still runs the
/// statement it was meant for, or while it waits for the next one, when it is
/// ignored. The cost is a short-lived session per cancel (a few ms).
///
/// The session runs under a deadline: the connect timeout (10 s unless the
/// URL says otherwise) plus [`CANCEL_SESSION_SLACK`]. A server that accepts
/// the connection but never answers counts as unreachable once it passes.
pub(super) fn cancel_backend(config: &PgConfig, backend: &Backend) -> Cancel {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Cancel::Unreachable;
    };
    let deadline = config
        .client
        .get_connect_timeout()
        .copied()
        .unwrap_or(CONNECT_TIMEOUT)
        + CANCEL_SESSION_SLACK;
    runtime.block_on(async {
        tokio::time::timeout(deadline, cancel_session(config, backend))
            .await
            .unwrap_or(Cancel::Unreachable)
    })
    // Dropping the runtime drops the session's connection, whatever its state.
}

async fn cancel_session(config: &PgConfig, backend: &Backend) -> Cancel {
    let session = match open_session(config).await {
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
        .await
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

/// Opens a session on the current tokio runtime, with the same TLS as
/// [`connect`]; its connection runs as a task of that runtime.
async fn open_session(config: &PgConfig) -> Result<tokio_postgres::Client, postgres::Error> {
    let first = open_session_with(config, config.tls.mode.wire()).await;
    match first {
        Err(e) if retry_with_tls(config, &e) => open_session_with(config, Wire::Require).await,
        other => other,
    }
}

async fn open_session_with(
    config: &PgConfig,
    wire: Wire,
) -> Result<tokio_postgres::Client, postgres::Error> {
    let mut client_config = config.client.clone();
    client_config.ssl_mode(wire);
    #[cfg(feature = "tls")]
    if let Some(tls) = &config.tls.connector {
        let (client, connection) = client_config.connect(tls.clone()).await?;
        tokio::spawn(connection);
        return Ok(client);
    }
    let (client, connection) = client_config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// `sslmode=allow`: the plain attempt failed with the server's refusal
/// (a `hostssl` rule, say), so try again with TLS, as libpq does.
fn retry_with_tls(config: &PgConfig, error: &postgres::Error) -> bool {
    cfg!(feature = "tls") && config.tls.mode == SslMode::Allow && error.as_db_error().is_some()
}

/// Opens a connection with the URL's TLS settings.
///
/// # Errors
/// The driver's error: the server could not be reached, refused the
/// connection or its certificate did not pass the checks of the sslmode.
pub(super) fn connect(config: &PgConfig) -> Result<Client, postgres::Error> {
    match connect_with(config, config.tls.mode.wire()) {
        Err(e) if retry_with_tls(config, &e) => connect_with(config, Wire::Require),
        other => other,
    }
}

fn connect_with(config: &PgConfig, wire: Wire) -> Result<Client, postgres::Error> {
    let client_config = config.sync_config(wire);
    #[cfg(feature = "tls")]
    if let Some(tls) = &config.tls.connector {
        return client_config.connect(tls.clone());
    }
    client_config.connect(postgres::NoTls)
}

/// Sends the protocol's cancel request, over TLS when the connection
/// negotiated it (the token remembers the connection's wire mode).
///
/// # Errors
/// The driver's error when the server cannot be reached.
pub(super) fn cancel(token: &postgres::CancelToken, config: &PgConfig) -> Result<(), postgres::Error> {
    #[cfg(feature = "tls")]
    if let Some(tls) = &config.tls.connector {
        return token.cancel_query(tls.clone());
    }
    let _ = config;
    token.cancel_query(postgres::NoTls)
}
