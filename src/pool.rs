//! The connection pool behind an [`Engine`](crate::Engine).

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_channel::WeakSender;

use crate::error::{Error, Result};
use crate::session::{Home, InUse, Session};
use crate::sql::Dialect;
use crate::strategy::Strategy;
use crate::timer::Timer;
use crate::trace::{AcquireTrace, TraceConfig};
use crate::worker::{self, Interrupter, Request, Setup, Shared, Tracker};

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
    pub(crate) trace: TraceConfig,
}

struct State {
    idle: Vec<Session>,
    /// Connections open or being opened.
    size: usize,
    closed: bool,
    /// Callers waiting for a connection, oldest first.
    waiters: VecDeque<Arc<Waiter>>,
    /// Every connection's sender and interrupter, to close them all on `Engine::close`.
    all: Vec<(WeakSender<Request>, Arc<Interrupter>)>,
    /// The error of the last failed attempt to open a connection.
    last_connect_error: Option<Error>,
    /// Connections taken for engine-level statements, which later ones may join.
    lanes: Vec<(Weak<Lane>, Arc<LaneInfo>)>,
    /// Every engine handle is gone: returned connections close.
    orphaned: bool,
}

/// What a waiting caller is handed.
enum Handoff {
    /// A connection, taken out of the pool for it.
    Conn(Session),
    /// Room to open a new connection (already counted in `size`).
    Open,
    /// A place on a lane, for a caller in line for an engine-level statement.
    Join(Arc<Lane>),
    /// The engine was closed.
    Closed,
}

/// One caller waiting in line for a connection.
#[derive(Default)]
struct Waiter {
    slot: Mutex<(Option<Handoff>, Option<Waker>)>,
    /// Waits for an engine-level statement, which can join a lane.
    lane: bool,
}

/// What a caller in line gets: a connection of its own, or a place on a lane.
enum Got {
    Session(Session),
    Join(Arc<Lane>),
}

impl Waiter {
    fn give(&self, handoff: Handoff) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.0 = Some(handoff);
        if let Some(waker) = slot.1.take() {
            waker.wake();
        }
    }
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
    state: Mutex<State>,
    next_id: AtomicU64,
    reaper: std::sync::atomic::AtomicBool,
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

/// What `try_take` found.
enum Take {
    Conn(Session),
    Open,
    Wait(Arc<Waiter>),
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
        Pool {
            setup: Arc::new(setup),
            url,
            strategy,
            max,
            config,
            tracker: Arc::default(),
            timer,
            state: Mutex::new(State {
                idle: Vec::new(),
                size: 0,
                closed: false,
                waiters: VecDeque::new(),
                all: Vec::new(),
                last_connect_error: None,
                lanes: Vec::new(),
                orphaned: false,
            }),
            next_id: AtomicU64::new(1),
            reaper: Default::default(),
            keeper: Mutex::new(keeper),
        }
    }

    /// Tells the workers how many callers wait (see `worker::next_request`).
    fn count_waiting(&self, state: &State) {
        self.setup
            .waiting
            .store(state.waiters.len(), Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock is never held across user code; a poisoned lock still holds consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self.setup.target {
            crate::config::Target::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            crate::config::Target::Postgres(_) => Dialect::Postgres,
        }
    }

    pub(crate) fn status(&self) -> PoolStatus {
        let state = self.lock();
        PoolStatus {
            size: state.size,
            idle: state.idle.len(),
            in_use: state.size - state.idle.len(),
            waiting: state.waiters.len(),
            max: self.max,
        }
    }

    /// Takes an idle connection or opens a new one, waiting in line while the
    /// pool is full, for at most the acquire timeout.
    ///
    /// # Cancellation
    /// Dropping the future leaves the line; a connection handed to it goes to
    /// the next caller, and one being opened for it is closed by its worker.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<InUse> {
        match self.acquire_as(false).await? {
            Got::Session(session) => Ok(self.lend(session)),
            // Only callers in line for a lane are handed one.
            Got::Join(_) => Err(Error::Closed("engine")),
        }
    }

    /// As [`acquire`](Pool::acquire); `lane` callers may be handed a place
    /// on a lane instead, formed by the caller ahead of them in line.
    async fn acquire_as(self: &Arc<Self>, lane: bool) -> Result<Got> {
        let trace = AcquireTrace::start(self.dialect());
        let result = self.acquire_timed(lane).await;
        trace.finish(&result);
        result
    }

    async fn acquire_timed(self: &Arc<Self>, lane: bool) -> Result<Got> {
        let mut wait = pin!(self.acquire_untimed(lane));
        let mut sleep = None;
        poll_fn(|cx| {
            if let Poll::Ready(result) = wait.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            let sleep = sleep
                .get_or_insert_with(|| Box::pin(self.timer.sleep(self.config.acquire_timeout)));
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) if self.lock().closed => Poll::Ready(Err(Error::Closed("engine"))),
                Poll::Ready(()) => Poll::Ready(Err(Error::PoolTimeout {
                    last_connect_error: self.lock().last_connect_error.take().map(Box::new),
                })),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    async fn acquire_untimed(self: &Arc<Self>, lane: bool) -> Result<Got> {
        loop {
            let conn = match self.try_take(lane)? {
                Take::Conn(conn) => conn,
                Take::Open => self.open().await?,
                Take::Wait(waiter) => match (Wait { pool: self, waiter }).await {
                    Handoff::Conn(conn) => conn,
                    Handoff::Open => self.open().await?,
                    Handoff::Join(lane) => return Ok(Got::Join(lane)),
                    Handoff::Closed => return Err(Error::Closed("engine")),
                },
            };
            if let Some(conn) = self.check(conn).await {
                self.top_up();
                return Ok(Got::Session(conn));
            }
        }
    }

    /// A connection for one engine-level statement: an idle one or a new
    /// one while there are any, otherwise a place on the least busy lane,
    /// otherwise a turn in line as [`acquire`](Pool::acquire).
    ///
    /// # Cancellation
    /// As [`acquire`](Pool::acquire).
    pub(crate) async fn lane(self: &Arc<Self>) -> Result<Arc<Lane>> {
        if let Some(lane) = self.join_lane() {
            return Ok(lane);
        }
        let session = match self.acquire_as(true).await? {
            Got::Session(session) => session,
            Got::Join(lane) => return Ok(lane),
        };
        let info = Arc::new(LaneInfo {
            pinned: AtomicBool::new(false),
            shared: session.shared().clone(),
            retires: self.config.max_lifetime.map(|max| session.opened() + max),
        });
        let lane = Arc::new(Lane {
            session: self.lend(session),
            info: info.clone(),
        });
        let mut state = self.lock();
        state.lanes.retain(|(lane, _)| lane.strong_count() > 0);
        state.lanes.push((Arc::downgrade(&lane), info));
        // The callers in line behind this one for engine-level statements,
        // up to the first that wants a connection of its own, join the new
        // lane rather than wait for more connections to come back.
        let mut joined = 1;
        while joined < LANE_DEPTH && state.waiters.front().is_some_and(|w| w.lane) {
            if let Some(waiter) = state.waiters.pop_front() {
                waiter.give(Handoff::Join(lane.clone()));
                joined += 1;
            }
        }
        self.count_waiting(&state);
        drop(state);
        Ok(lane)
    }

    /// The lane with the fewest statements, when the pool has no idle
    /// connection, no room for a new one and nobody in line (a caller
    /// waiting for a connection of its own gets the next lane that empties).
    fn join_lane(&self) -> Option<Arc<Lane>> {
        let state = self.lock();
        if state.closed
            || !state.waiters.is_empty()
            || state.size < self.max
            || !state.idle.is_empty()
        {
            return None;
        }
        let now = Instant::now();
        let (lane, _) = state
            .lanes
            .iter()
            .filter(|(lane, info)| {
                (1..LANE_DEPTH).contains(&lane.strong_count()) && info.accepts(now)
            })
            .min_by_key(|(lane, _)| lane.strong_count())?;
        // Never the last handle, dropped under the lock: a lane is only
        // taken while other handles keep it.
        lane.upgrade()
    }

    fn try_take(self: &Arc<Self>, lane: bool) -> Result<Take> {
        let mut state = self.lock();
        if state.closed {
            return Err(Error::Closed("engine"));
        }
        if state.waiters.is_empty() {
            let now = Instant::now();
            while let Some(conn) = state.idle.pop() {
                if conn.is_stopped() || self.expired(&conn, now) {
                    state.size -= 1;
                    continue;
                }
                return Ok(Take::Conn(conn));
            }
            if state.size < self.max {
                state.size += 1;
                return Ok(Take::Open);
            }
        }
        let waiter = Arc::new(Waiter {
            lane,
            ..Waiter::default()
        });
        state.waiters.push_back(waiter.clone());
        self.count_waiting(&state);
        Ok(Take::Wait(waiter))
    }

    /// Checks a connection about to be handed out; `None` if it was dead and is discarded.
    async fn check(&self, conn: Session) -> Option<Session> {
        if conn.is_stopped() {
            self.discard();
            return None;
        }
        if !self.config.test_before_acquire {
            return Some(conn);
        }
        if conn.ping().await {
            Some(conn)
        } else {
            drop(conn);
            self.discard();
            None
        }
    }

    /// Opens a new connection in a slot already counted in `size`, retrying
    /// transient failures (server starting, refused connection) until the
    /// acquire timeout ends the wait.
    async fn open(self: &Arc<Self>) -> Result<Session> {
        let slot = Slot(self);
        let mut backoff = Duration::from_millis(10);
        let spawned = loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            match worker::spawn(&self.setup, &*self.strategy, &self.tracker, id).await {
                Ok(spawned) => break (id, spawned),
                Err(e) if is_transient(&e) => {
                    self.lock().last_connect_error = Some(e);
                    self.timer.sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    if self.lock().closed {
                        return Err(Error::Closed("engine"));
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let (id, spawned) = spawned;
        let Some(conn) = self.adopt(id, spawned) else {
            return Err(Error::Closed("engine"));
        };
        std::mem::forget(slot);
        Ok(conn)
    }

    /// Registers a newly opened connection; `None` if the engine closed meanwhile.
    fn adopt(self: &Arc<Self>, id: u64, spawned: worker::Spawned) -> Option<Session> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        state.last_connect_error = None;
        state.all.retain(|(w, _)| w.upgrade().is_some());
        state
            .all
            .push((spawned.sender.downgrade(), spawned.interrupter.clone()));
        drop(state);
        if !self.reaper.swap(true, Ordering::Relaxed) {
            self.schedule_reaper();
        }
        Some(Session::new(
            id,
            spawned,
            self.config.interrupt_on_drop,
            self.config.statement_timeout,
        ))
    }

    /// Opens connections in the background until `min_connections` are open
    /// (or being opened); they join the idle set as they open. Called from
    /// `acquire`, where a runtime strategy finds its runtime.
    fn top_up(self: &Arc<Self>) {
        if self.config.min_connections == 0 {
            return;
        }
        let wanted = {
            let mut state = self.lock();
            if state.closed || state.orphaned || state.size >= self.config.min_connections {
                return;
            }
            let wanted = self.config.min_connections - state.size;
            state.size += wanted;
            wanted
        };
        for _ in 0..wanted {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (sender, rx) = worker::channel();
            let shared = Arc::new(Shared::default());
            let pool = Arc::downgrade(self);
            let worker_shared = shared.clone();
            let opened: worker::Opened = Box::new(move |opened| {
                let Some(pool) = pool.upgrade() else {
                    return false;
                };
                match opened {
                    Ok(interrupter) => {
                        let spawned = worker::Spawned {
                            sender,
                            shared,
                            interrupter,
                        };
                        match pool.adopt(id, spawned) {
                            Some(conn) => {
                                pool.release(conn);
                                true
                            }
                            None => {
                                pool.discard();
                                false
                            }
                        }
                    }
                    Err(e) => {
                        pool.lock().last_connect_error = Some(e);
                        pool.discard();
                        false
                    }
                }
            });
            let started = worker::start(
                &self.setup,
                &*self.strategy,
                &self.tracker,
                id,
                (rx, worker_shared),
                opened,
            );
            if let Err(e) = started {
                self.lock().last_connect_error = Some(e);
                self.discard();
            }
        }
    }

    /// `true` when a connection outlived `max_lifetime`, or its driver asked to be replaced.
    fn expired(&self, conn: &Session, now: Instant) -> bool {
        conn.is_worn_out()
            || self
                .config
                .max_lifetime
                .is_some_and(|max| now.duration_since(conn.opened()) >= max)
    }

    /// Closes idle connections past `idle_timeout` or `max_lifetime`, keeping
    /// `min_connections` open, then schedules the next round.
    fn reap(self: &Arc<Self>) {
        let now = Instant::now();
        let closed = {
            let mut state = self.lock();
            if state.closed {
                return;
            }
            let mut keep = Vec::with_capacity(state.idle.len());
            let mut gone = Vec::new();
            for conn in std::mem::take(&mut state.idle) {
                let idle_too_long = self
                    .config
                    .idle_timeout
                    .is_some_and(|t| now.duration_since(conn.returned()) >= t);
                let removable = state.size - gone.len() > self.config.min_connections;
                if conn.is_stopped() || self.expired(&conn, now) || (idle_too_long && removable) {
                    gone.push(conn);
                } else {
                    keep.push(conn);
                }
            }
            state.idle = keep;
            state.size -= gone.len();
            for _ in 0..gone.len() {
                self.hand_room(&mut state);
            }
            gone
        };
        drop(closed);
        self.schedule_reaper();
    }

    /// Runs [`reap`](Pool::reap) again after a while, if the pool has limits to enforce.
    pub(crate) fn schedule_reaper(self: &Arc<Self>) {
        let period = match (self.config.idle_timeout, self.config.max_lifetime) {
            (None, None) => return,
            (a, b) => a.into_iter().chain(b).min().unwrap_or_default() / 2,
        };
        let period = period.clamp(Duration::from_millis(50), Duration::from_secs(30));
        let pool = Arc::downgrade(self);
        let deadline = self.timer.schedule(
            period,
            Box::new(move || {
                if let Some(pool) = pool.upgrade() {
                    pool.reap();
                }
            }),
        );
        // The timer keeps the action until it fires; the reaper needs no handle.
        std::mem::forget(deadline);
    }

    /// A connection was dropped: its room goes to the first waiter, to open a new one.
    fn discard(&self) {
        let mut state = self.lock();
        state.size -= 1;
        self.hand_room(&mut state);
    }

    fn hand_room(&self, state: &mut State) {
        if !state.closed && state.size < self.max {
            if let Some(waiter) = state.waiters.pop_front() {
                self.count_waiting(state);
                state.size += 1;
                waiter.give(Handoff::Open);
            }
        }
    }

    /// Takes a connection back: clean ones go to the first waiter or idle,
    /// dirty ones are reset first, dead ones are dropped.
    fn release(&self, mut conn: Session) {
        let mut state = self.lock();
        if state.closed
            || state.orphaned
            || conn.is_stopped()
            || self.expired(&conn, Instant::now())
        {
            state.size -= 1;
            self.hand_room(&mut state);
            return;
        }
        conn.end_lease(self.config.statement_timeout);
        let first = state.waiters.pop_front();
        self.count_waiting(&state);
        match first {
            Some(waiter) => waiter.give(Handoff::Conn(conn)),
            None => state.idle.push(conn),
        }
    }

    /// Closes every connection and waits for every worker to stop.
    pub(crate) async fn close(&self) {
        let (idle, waiters) = {
            let mut state = self.lock();
            state.closed = true;
            state.size -= state.idle.len();
            for (sender, _) in &state.all {
                if let Some(sender) = sender.upgrade() {
                    sender.close();
                }
            }
            let taken = (
                std::mem::take(&mut state.idle),
                std::mem::take(&mut state.waiters),
            );
            self.count_waiting(&state);
            taken
        };
        drop(idle);
        for waiter in waiters {
            waiter.give(Handoff::Closed);
        }
        // Statements still running get `close_timeout` to finish, then are interrupted.
        let mut idle = pin!(self.tracker.idle());
        let mut sleep = pin!(self.timer.sleep(self.config.close_timeout));
        let finished = poll_fn(|cx| match idle.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(true),
            Poll::Pending => sleep.as_mut().poll(cx).map(|()| false),
        })
        .await;
        if !finished {
            let interrupters: Vec<_> = self.lock().all.iter().map(|(_, i)| i.clone()).collect();
            for interrupter in interrupters {
                interrupter.interrupt_running();
            }
            idle.await;
        }
        self.timer.stop();
        self.timer.stopped().await;
        let keeper = self.keeper.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(keeper);
    }

    /// The last engine handle was dropped: close idle connections now, and
    /// in-use ones as they come back.
    pub(crate) fn orphan(&self) {
        let idle = {
            let mut state = self.lock();
            state.orphaned = true;
            state.size -= state.idle.len();
            std::mem::take(&mut state.idle)
        };
        drop(idle);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Lends a session out; it comes back through [`Home::take_back`].
    fn lend(self: &Arc<Self>, session: Session) -> InUse {
        InUse::new(session, self.clone(), self.dialect(), self.config.trace)
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

/// `true` for connect errors worth retrying: the server is not reachable yet,
/// refuses for now, or SQLite found the file busy.
fn is_transient(e: &Error) -> bool {
    let Error::Connect { source, .. } = e else {
        return false;
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | TimedOut
                    | NotConnected
                    | BrokenPipe
                    | UnexpectedEof
            );
        }
        #[cfg(feature = "postgres")]
        if let Some(db) = err
            .downcast_ref::<postgres::Error>()
            .and_then(|e| e.as_db_error())
        {
            use postgres::error::SqlState;
            return [SqlState::TOO_MANY_CONNECTIONS, SqlState::CANNOT_CONNECT_NOW]
                .contains(db.code());
        }
        #[cfg(feature = "sqlite")]
        if let Some(rusqlite::Error::SqliteFailure(f, _)) = err.downcast_ref::<rusqlite::Error>() {
            return matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            );
        }
        cause = err.source();
    }
    false
}

/// A caller's place in line; leaving it passes anything handed to it on.
struct Wait<'a> {
    pool: &'a Pool,
    waiter: Arc<Waiter>,
}

impl Future for Wait<'_> {
    type Output = Handoff;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Handoff> {
        let mut slot = self.waiter.slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.0.take() {
            Some(handoff) => Poll::Ready(handoff),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        state.waiters.retain(|w| !Arc::ptr_eq(w, &self.waiter));
        self.pool.count_waiting(&state);
        drop(state);
        let handed = self
            .waiter
            .slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .take();
        match handed {
            Some(Handoff::Conn(conn)) => self.pool.release(conn),
            Some(Handoff::Open) => self.pool.discard(),
            Some(Handoff::Join(lane)) => drop(lane),
            Some(Handoff::Closed) | None => {}
        }
    }
}

/// Gives a reserved pool slot back if opening the connection failed or was cancelled.
struct Slot<'a>(&'a Pool);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.discard();
    }
}

/// The most statements (with the results they hold) that share a lane.
const LANE_DEPTH: usize = worker::QUEUE_CAPACITY;

/// A lane takes more statements only while its connection's recent
/// statements, and the one it runs now, took less than this: a statement
/// does not queue behind a slow one when a connection of its own may come
/// back sooner. Well above what a busy machine adds to a short statement
/// by descheduling its threads for a few milliseconds.
const LANE_PATIENCE: Duration = Duration::from_millis(10);

/// A pooled connection shared by engine-level statements
/// ([`Engine::execute`](crate::Engine::execute) and the calls built on it).
///
/// A checkout per statement leaves the worker idle from one caller to the
/// next (the connection goes back, the next caller wakes up, then sends);
/// on a lane the next statement already waits in the worker's queue. Every
/// statement still gets its own answer, and one that finds a transaction or
/// a result with rows left on the worker is handed back to run on a
/// connection of its own (see `worker::Ticket::lane`). The connection goes
/// back to the pool when the last statement's result is done with it.
pub(crate) struct Lane {
    session: InUse,
    info: Arc<LaneInfo>,
}

impl Lane {
    /// The session the lane's statements go through.
    pub(crate) fn session(&self) -> &InUse {
        &self.session
    }

    /// Takes no more statements: one of them left a result with rows on the
    /// worker, or a transaction open, or was handed back.
    pub(crate) fn pin(&self) {
        self.info.pinned.store(true, Ordering::Relaxed);
    }

    /// `true` while a transaction is open on the lane's connection.
    pub(crate) fn in_transaction(&self) -> bool {
        self.info.shared.in_tx.load(Ordering::SeqCst)
    }
}

/// What the pool reads of a lane without taking a handle to it.
struct LaneInfo {
    pinned: AtomicBool,
    shared: Arc<Shared>,
    /// When the connection passes `max_lifetime`: from then on the lane
    /// takes no more statements, so that the connection goes back to the
    /// pool, which replaces it, even under a steady stream of statements.
    retires: Option<Instant>,
}

impl LaneInfo {
    fn accepts(&self, now: Instant) -> bool {
        let shared = &self.shared;
        !self.pinned.load(Ordering::Relaxed)
            && !shared.stopped.load(Ordering::SeqCst)
            && !shared.worn_out.load(Ordering::SeqCst)
            && !shared.in_tx.load(Ordering::SeqCst)
            && shared.busy_ns.load(Ordering::Relaxed) < LANE_PATIENCE.as_nanos() as u64
            && shared.running_for(now) < LANE_PATIENCE
            && self.retires.is_none_or(|at| now < at)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.timer.stop();
    }
}
