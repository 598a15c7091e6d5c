//! The connection pool behind an [`Engine`](crate::Engine): bounded, lazy,
//! fair (first come, first served), shared by every clone of an engine.
//!
//! - `mod.rs`: the [`Pool`] type, its settings and [`PoolStatus`], and how a
//!   session is lent out and taken back;
//! - `flow.rs`: the async flow: acquiring a connection or a place on a
//!   lane, opening connections, closing the pool;
//! - `state.rs`: the state behind the pool's lock (idle connections, the
//!   callers in line and what each is handed, the count of connections),
//!   where nothing awaits;
//! - `maintenance.rs`: keeping `min_connections` open and closing
//!   connections past their idle timeout or lifetime;
//! - `lane.rs`: lanes, the connections engine-level statements share.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::pool::state::{Limits, State};
use crate::session::{Home, InUse, Session};
use crate::sql::Dialect;
use crate::strategy::Strategy;
use crate::timer::Timer;
use crate::trace::{Telemetry, TraceConfig};
use crate::worker::{Setup, Spawned, Tracker};

mod flow;
mod lane;
mod maintenance;
mod state;

pub(crate) use self::lane::Lane;

/// Settings of a pool and of every connection it opens.
#[derive(Debug, Clone)]
pub(crate) struct PoolConfig {
    pub(crate) interrupt_on_drop: bool,
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) acquire_timeout: Duration,
    pub(crate) test_before_acquire: bool,
    pub(crate) min_connections: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) close_timeout: Duration,
    /// How long past its statement timeout a caller waits for a statement's
    /// answer before it gives the connection up.
    pub(crate) timeout_grace: Duration,
    pub(crate) trace: TraceConfig,
}

/// How full the pool is; see [`Engine::pool_status`](crate::Engine::pool_status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStatus {
    /// Connections open or being opened.
    pub size: usize,
    /// Open connections waiting in the pool.
    pub idle: usize,
    /// Connections taken by callers (or being opened for them).
    pub in_use: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// The most connections the pool opens.
    pub max: usize,
}

/// The pool: bounded, lazy, fair (first come, first served), shared by every clone of an engine.
pub(crate) struct Pool {
    pub(crate) setup: Arc<Setup>,
    pub(crate) url: String,
    pub(crate) strategy: Arc<dyn Strategy>,
    pub(crate) max: usize,
    pub(crate) config: PoolConfig,
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) timer: Arc<Timer>,
    /// What the engine records (spans, metrics), and where its connections go.
    pub(crate) telemetry: Arc<Telemetry>,
    state: Mutex<State>,
    next_id: AtomicU64,
    /// The reaper runs (see `maintenance.rs`), from the first connection opened on.
    reaper_started: AtomicBool,
    /// Keeps a shared in-memory database alive while the engine is.
    keeper: Mutex<Option<Box<dyn Any + Send>>>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.status())
            .field("live_workers", &self.tracker.live())
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(
        setup: Setup,
        url: String,
        strategy: Arc<dyn Strategy>,
        max: usize,
        config: PoolConfig,
        keeper: Option<Box<dyn Any + Send>>,
    ) -> Pool {
        let timer = setup.timer.clone();
        let setup = Arc::new(setup);
        let limits = Limits {
            max,
            min_connections: config.min_connections,
            idle_timeout: config.idle_timeout,
            max_lifetime: config.max_lifetime,
            statement_timeout: config.statement_timeout,
        };
        let telemetry = Arc::new(Telemetry::new(
            config.trace.clone(),
            setup.facts.dialect,
            &url,
            max,
        ));
        Pool {
            telemetry,
            state: Mutex::new(State::new(limits, setup.clone())),
            setup,
            url,
            strategy,
            max,
            config,
            tracker: Arc::default(),
            timer,
            next_id: AtomicU64::new(1),
            reaper_started: AtomicBool::new(false),
            keeper: Mutex::new(keeper),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock is never held across user code; a poisoned lock still holds consistent data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The dialect of the engine's database, as its driver declares it.
    pub(crate) fn dialect(&self) -> Dialect {
        self.setup.facts.dialect
    }

    pub(crate) fn status(&self) -> PoolStatus {
        let state = self.lock();
        PoolStatus {
            size: state.size(),
            idle: state.idle(),
            in_use: state.size() - state.idle(),
            waiting: state.waiting(),
            max: self.max,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().is_closed()
    }

    /// Lends a session out; it comes back through [`Home::take_back`].
    fn lend(self: &Arc<Self>, session: Session) -> InUse {
        InUse::new(
            session,
            self.clone(),
            self.dialect(),
            self.telemetry.clone(),
        )
    }

    /// Takes a session back: clean ones go to the first caller in line or
    /// idle, dirty ones are reset first, dead ones are closed.
    fn release(&self, session: Session) {
        let mut state = self.lock();
        let gone = state.put_back(session);
        let counts = Counts::of(&state);
        drop(state);
        self.publish(counts);
        drop(gone);
    }

    /// A connection was dropped, or failed to open: its room goes to the
    /// first caller in line, to open a new one.
    fn discard(&self) {
        let mut state = self.lock();
        state.discard();
        let counts = Counts::of(&state);
        drop(state);
        self.publish(counts);
    }

    /// Hands the pool's counts to the metrics recorder (feature `metrics`),
    /// once the lock is released.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    fn publish(&self, counts: Counts) {
        #[cfg(feature = "metrics")]
        self.telemetry
            .metrics()
            .counts(counts.size, counts.idle, counts.waiting);
    }

    /// The session of a newly opened connection; `None` if the engine was
    /// closed meanwhile.
    fn adopt(&self, id: u64, spawned: Spawned) -> Option<Session> {
        if !self.lock().adopt(&spawned) {
            return None;
        }
        Some(Session::new(
            id,
            spawned,
            self.config.interrupt_on_drop,
            self.config.statement_timeout,
            self.config.timeout_grace,
        ))
    }
}

/// The pool's counts, read under its lock for the metrics; nothing without them.
#[derive(Debug, Clone, Copy)]
struct Counts {
    #[cfg(feature = "metrics")]
    size: usize,
    #[cfg(feature = "metrics")]
    idle: usize,
    #[cfg(feature = "metrics")]
    waiting: usize,
}

impl Counts {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    fn of(state: &State) -> Counts {
        Counts {
            #[cfg(feature = "metrics")]
            size: state.size(),
            #[cfg(feature = "metrics")]
            idle: state.idle(),
            #[cfg(feature = "metrics")]
            waiting: state.waiting(),
        }
    }
}

impl Home for Pool {
    fn take_back(&self, session: Session) {
        self.release(session);
    }

    fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.timer.stop();
    }
}
