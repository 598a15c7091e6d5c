//! [`InUse`]: a session lent out to a connection or a lane, and where it goes back.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::params::Parameters;
use crate::session::Session;
use crate::sql::Dialect;
use crate::trace::{StatementTrace, Telemetry};

/// Where a session goes back once its handle is done with it: the pool.
pub(crate) trait Home: Send + Sync {
    /// Takes the session back; it ends the lease (see [`Session::end_lease`]).
    fn take_back(&self, session: Session);

    /// The database's URL, any password redacted, for `Debug` output.
    fn url(&self) -> &str;
}

/// A session lent out, and where it goes back when dropped.
struct Loan {
    /// Always there until dropped.
    session: Option<Session>,
    home: Arc<dyn Home>,
    /// When the session was lent out, for `db.client.connection.use_time`.
    #[cfg(feature = "metrics")]
    lent: (Arc<Telemetry>, std::time::Instant),
}

impl Loan {
    fn session(&mut self) -> &mut Session {
        self.session
            .as_mut()
            .expect("a loan holds its session until dropped")
    }

    fn session_ref(&self) -> &Session {
        self.session
            .as_ref()
            .expect("a loan holds its session until dropped")
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            #[cfg(feature = "metrics")]
            self.lent.0.metrics().used(self.lent.1.elapsed());
            self.home.take_back(session);
        }
    }
}

/// A session in use by a [`Connection`](crate::Connection) or a lane: it
/// sends requests and receives their replies (see `requests.rs`), and goes
/// back to its home when dropped or [closed](InUse::close).
///
/// The session is locked briefly for each step of a request, never across
/// an await; a handle shared by several tasks queues their requests on the
/// worker in the order sent.
pub(crate) struct InUse {
    /// `None` once closed.
    loan: Mutex<Option<Loan>>,
    /// Fixed for the session's life: read without locking.
    dialect: Dialect,
    telemetry: Arc<Telemetry>,
}

impl InUse {
    /// Lends `session` out; it goes back to `home` once the handle is done with it.
    pub(crate) fn new(
        session: Session,
        home: Arc<dyn Home>,
        dialect: Dialect,
        telemetry: Arc<Telemetry>,
    ) -> InUse {
        InUse {
            loan: Mutex::new(Some(Loan {
                session: Some(session),
                home,
                #[cfg(feature = "metrics")]
                lent: (telemetry.clone(), std::time::Instant::now()),
            })),
            dialect,
            telemetry,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Loan>> {
        // Never held across an await or user code; the data stays consistent.
        self.loan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the session, briefly locked; fails once the handle was
    /// closed or the worker stopped.
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut Session) -> R) -> Result<R> {
        let mut loan = self.lock();
        match loan.as_mut() {
            Some(loan) if !loan.session_ref().is_stopped() => Ok(f(loan.session())),
            _ => Err(Error::Closed("connection")),
        }
    }

    /// Runs `f` on the session even if its worker stopped; `None` once the handle was closed.
    fn peek<R>(&self, f: impl FnOnce(&Session) -> R) -> Option<R> {
        self.lock().as_ref().map(|loan| f(loan.session_ref()))
    }

    /// The server the connection reached, where the driver knows it.
    pub(crate) fn server(&self) -> Option<crate::server::ServerInfo> {
        self.peek(|s| s.server().cloned()).flatten()
    }

    /// The dialect of the session's database.
    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Starts the trace of one statement.
    pub(crate) fn trace(&self, sql: &str, params: Option<&Parameters>) -> StatementTrace<'_> {
        self.telemetry.statement(sql, params)
    }

    /// What the engine records, for spans of other kinds of request.
    pub(crate) fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Adds what a `Debug` output shows of the session: its connection's id,
    /// its database and whether a transaction is open, or that it is closed.
    pub(crate) fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        match self.lock().as_ref() {
            Some(loan) => d
                .field("id", &loan.session_ref().id)
                .field("url", &loan.home.url())
                .field(
                    "server",
                    &loan.session_ref().server().map(ToString::to_string),
                )
                .field("in_transaction", &loan.session_ref().in_transaction()),
            None => d.field("closed", &true),
        };
    }

    /// `true` once closed, or once the worker stopped.
    pub(crate) fn is_closed(&self) -> bool {
        self.peek(Session::is_stopped).unwrap_or(true)
    }

    /// `true` while a transaction is open, as far as this side knows.
    pub(crate) fn in_transaction(&self) -> bool {
        self.peek(Session::in_transaction).unwrap_or(false)
    }

    /// The timeout of later statements; ignored once closed.
    pub(crate) fn set_statement_timeout(&self, timeout: Option<Duration>) {
        let _ = self.with(|session| session.statement_timeout = timeout);
    }

    /// The timeout of later statements; `None` once closed.
    pub(crate) fn statement_timeout(&self) -> Option<Duration> {
        self.with(|session| session.statement_timeout)
            .ok()
            .flatten()
    }

    /// Gives the session back at once: later calls fail as closed. A dirty
    /// session is reset first.
    ///
    /// # Cancellation
    /// Dropping the future still gives the session back, where a rollback is
    /// queued ahead of its next use.
    pub(crate) async fn close(&self) {
        let loan = self.lock().take();
        if let Some(mut loan) = loan {
            // Dropped before the reset is queued, the loan still goes back,
            // and the end of the lease sees the session dirty and resets it.
            loan.session().reset().await;
        }
    }
}
