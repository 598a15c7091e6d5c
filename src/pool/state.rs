//! The pool's locked state: the idle sessions, the callers in line and what
//! each is handed, the lanes, and the count of connections.
//!
//! Every method runs under the pool's lock and returns at once: nothing here
//! awaits, opens a connection or runs user code. What must happen outside
//! the lock (closing sessions, telling callers) is handed back to the caller.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_channel::WeakSender;

use crate::error::{Error, Result};
use crate::pool::lane::{Lane, LaneInfo, LANE_DEPTH};
use crate::session::Session;
use crate::worker::{Interrupter, Request, Setup, Spawned};

/// The limits the state keeps to, fixed when the engine is built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The most connections open or being opened.
    pub(crate) max: usize,
    /// The connections kept open even when idle.
    pub(crate) min_connections: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    /// The statement timeout a session gets back when its lease ends.
    pub(crate) statement_timeout: Option<Duration>,
}

/// Where the pool is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connections are handed out and taken back.
    Open,
    /// Every engine handle is gone: idle connections are closed, and
    /// in-use ones close as they come back.
    Orphaned,
    /// The engine was closed: nothing is handed out any more, and every
    /// connection closes.
    Closed,
}

/// The pool's state, behind its lock.
pub(crate) struct State {
    limits: Limits,
    /// Where the workers read how many callers wait (see `worker::next_request`).
    setup: Arc<Setup>,
    phase: Phase,
    idle: Vec<Session>,
    /// Connections open or being opened.
    size: usize,
    /// Callers waiting for a connection, oldest first.
    line: VecDeque<Arc<Waiter>>,
    /// Every connection's queue and interrupter, to close them all on `Engine::close`.
    workers: Vec<(WeakSender<Request>, Arc<Interrupter>)>,
    /// The error of the last failed attempt to open a connection.
    last_connect_error: Option<Error>,
    /// Connections taken for engine-level statements, which later ones may join.
    lanes: Vec<(Weak<Lane>, Arc<LaneInfo>)>,
}

/// What [`State::take`] found for a caller.
pub(crate) enum Found {
    /// An idle connection.
    Idle(Session),
    /// Room to open a new connection (already counted).
    Room,
    /// Nothing yet: the caller's place at the end of the line.
    InLine(Arc<Waiter>),
}

/// What a caller in line is handed.
pub(crate) enum Handoff {
    /// A connection, taken out of the pool for it.
    Session(Session),
    /// Room to open a new connection (already counted).
    Room,
    /// A place on a lane, for a caller in line for an engine-level statement.
    Join(Arc<Lane>),
    /// The engine was closed.
    Closed,
}

/// One caller waiting in line for a connection.
pub(crate) struct Waiter {
    slot: Mutex<Slot>,
    /// Waits for an engine-level statement, which can join a lane.
    lane: bool,
}

/// What a waiter was handed, and how to wake it.
#[derive(Default)]
struct Slot {
    handoff: Option<Handoff>,
    waker: Option<Waker>,
}

impl Waiter {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn give(&self, handoff: Handoff) {
        let mut slot = self.slot();
        slot.handoff = Some(handoff);
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
    }

    /// What the waiter was handed, once it was; until then, `cx` is woken
    /// when it is.
    pub(crate) fn poll_handoff(&self, cx: &mut Context<'_>) -> Poll<Handoff> {
        let mut slot = self.slot();
        match slot.handoff.take() {
            Some(handoff) => Poll::Ready(handoff),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Tells the waiter that the engine was closed.
    pub(crate) fn closed(&self) {
        self.give(Handoff::Closed);
    }

    /// What the waiter was handed and did not take, if anything.
    pub(crate) fn take_handoff(&self) -> Option<Handoff> {
        self.slot().handoff.take()
    }
}

impl State {
    pub(crate) fn new(limits: Limits, setup: Arc<Setup>) -> State {
        State {
            limits,
            setup,
            phase: Phase::Open,
            idle: Vec::new(),
            size: 0,
            line: VecDeque::new(),
            workers: Vec::new(),
            last_connect_error: None,
            lanes: Vec::new(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Connections open or being opened.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Open connections waiting in the pool.
    pub(crate) fn idle(&self) -> usize {
        self.idle.len()
    }

    /// Callers waiting for a connection.
    pub(crate) fn waiting(&self) -> usize {
        self.line.len()
    }

    /// Tells the workers how many callers wait; called whenever the line changes.
    fn line_changed(&self) {
        self.setup.waiting.store(self.line.len(), Ordering::Relaxed);
    }

    /// `true` when a connection outlived `max_lifetime`, or its driver asked to be replaced.
    fn expired(&self, session: &Session, now: Instant) -> bool {
        session.is_worn_out()
            || self
                .limits
                .max_lifetime
                .is_some_and(|max| now.duration_since(session.opened()) >= max)
    }

    /// For a caller when nobody is in line: an idle connection, or else room
    /// to open one; otherwise (or with others in line) its place at the end
    /// of the line. Idle connections that can no longer serve are dropped.
    ///
    /// # Errors
    /// [`Error::Closed`] once the engine was closed.
    pub(crate) fn take(&mut self, lane: bool) -> Result<Found> {
        if self.is_closed() {
            return Err(Error::Closed("engine"));
        }
        if self.line.is_empty() {
            let now = Instant::now();
            while let Some(session) = self.idle.pop() {
                if session.is_stopped() || self.expired(&session, now) {
                    self.size -= 1;
                    continue;
                }
                return Ok(Found::Idle(session));
            }
            if self.size < self.limits.max {
                self.size += 1;
                return Ok(Found::Room);
            }
        }
        let waiter = Arc::new(Waiter {
            slot: Mutex::default(),
            lane,
        });
        self.line.push_back(waiter.clone());
        self.line_changed();
        Ok(Found::InLine(waiter))
    }

    /// A caller gave up its place in line.
    pub(crate) fn leave_line(&mut self, waiter: &Arc<Waiter>) {
        self.line.retain(|w| !Arc::ptr_eq(w, waiter));
        self.line_changed();
    }

    /// A connection is gone (dropped, or it failed to open): its room goes
    /// to the first caller in line, to open a new one.
    pub(crate) fn discard(&mut self) {
        self.size -= 1;
        self.hand_room();
    }

    fn hand_room(&mut self) {
        if !self.is_closed() && self.size < self.limits.max {
            if let Some(waiter) = self.line.pop_front() {
                self.line_changed();
                self.size += 1;
                waiter.give(Handoff::Room);
            }
        }
    }

    /// Takes a session back at the end of its lease: to the first caller in
    /// line, or idle (a dirty one reset first); one that can no longer serve
    /// (the pool closing, its worker stopped, its life over) is given back
    /// to be closed once the lock is released, and its room handed on.
    pub(crate) fn put_back(&mut self, mut session: Session) -> Option<Session> {
        if self.phase != Phase::Open
            || session.is_stopped()
            || self.expired(&session, Instant::now())
        {
            self.discard();
            return Some(session);
        }
        session.end_lease(self.limits.statement_timeout);
        let first = self.line.pop_front();
        self.line_changed();
        match first {
            Some(waiter) => waiter.give(Handoff::Session(session)),
            None => self.idle.push(session),
        }
        None
    }

    /// Counts a newly opened connection's worker among those closed with the
    /// engine; `false` if the engine was closed meanwhile.
    pub(crate) fn adopt(&mut self, spawned: &Spawned) -> bool {
        if self.is_closed() {
            return false;
        }
        self.last_connect_error = None;
        self.workers.retain(|(w, _)| w.upgrade().is_some());
        self.workers
            .push((spawned.sender.downgrade(), spawned.interrupter.clone()));
        true
    }

    /// Keeps the error of a failed attempt to open a connection, for the
    /// callers that time out waiting.
    pub(crate) fn connect_failed(&mut self, e: Error) {
        self.last_connect_error = Some(e);
    }

    /// The error of a caller whose wait for a connection timed out.
    pub(crate) fn timed_out(&mut self) -> Error {
        if self.is_closed() {
            Error::Closed("engine")
        } else {
            Error::PoolTimeout {
                last_connect_error: self.last_connect_error.take().map(Box::new),
            }
        }
    }

    /// The lane with the fewest statements, when the pool has no idle
    /// connection, no room for a new one and nobody in line (a caller
    /// waiting for a connection of its own gets the next lane that empties).
    pub(crate) fn least_busy_lane(&self) -> Option<Arc<Lane>> {
        if self.is_closed()
            || !self.line.is_empty()
            || self.size < self.limits.max
            || !self.idle.is_empty()
        {
            return None;
        }
        let now = Instant::now();
        let (lane, _) = self
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

    /// Counts a new lane among those later statements may join.
    pub(crate) fn add_lane(&mut self, lane: &Arc<Lane>, info: Arc<LaneInfo>) {
        self.lanes.retain(|(lane, _)| lane.strong_count() > 0);
        self.lanes.push((Arc::downgrade(lane), info));
        // The callers in line behind its maker for engine-level statements,
        // up to the first that wants a connection of its own, join the new
        // lane rather than wait for more connections to come back.
        let mut joined = 1;
        while joined < LANE_DEPTH && self.line.front().is_some_and(|w| w.lane) {
            if let Some(waiter) = self.line.pop_front() {
                waiter.give(Handoff::Join(lane.clone()));
                joined += 1;
            }
        }
        self.line_changed();
    }

    /// How many connections to open so that `min_connections` are open or
    /// being opened; they are counted at once.
    pub(crate) fn reserve_minimum(&mut self) -> usize {
        if self.phase != Phase::Open || self.size >= self.limits.min_connections {
            return 0;
        }
        let wanted = self.limits.min_connections - self.size;
        self.size += wanted;
        wanted
    }

    /// Takes out the idle connections past `max_lifetime`, or whose worker
    /// stopped, or idle past `idle_timeout` while more than
    /// `min_connections` are open, and hands their room on; they are to be
    /// closed once the lock is released. `None` once the engine was closed.
    pub(crate) fn reap(&mut self, now: Instant) -> Option<Vec<Session>> {
        if self.is_closed() {
            return None;
        }
        let mut keep = Vec::with_capacity(self.idle.len());
        let mut gone = Vec::new();
        for session in std::mem::take(&mut self.idle) {
            let idle_too_long = self
                .limits
                .idle_timeout
                .is_some_and(|t| now.duration_since(session.returned()) >= t);
            let removable = self.size - gone.len() > self.limits.min_connections;
            if session.is_stopped() || self.expired(&session, now) || (idle_too_long && removable) {
                gone.push(session);
            } else {
                keep.push(session);
            }
        }
        self.idle = keep;
        self.size -= gone.len();
        for _ in 0..gone.len() {
            self.hand_room();
        }
        Some(gone)
    }

    /// The engine closes: closes every connection's queue, and gives back
    /// the idle connections (to close) and the callers in line (to tell),
    /// both once the lock is released.
    pub(crate) fn close(&mut self) -> (Vec<Session>, VecDeque<Arc<Waiter>>) {
        self.phase = Phase::Closed;
        self.size -= self.idle.len();
        for (sender, _) in &self.workers {
            if let Some(sender) = sender.upgrade() {
                sender.close();
            }
        }
        let taken = (
            std::mem::take(&mut self.idle),
            std::mem::take(&mut self.line),
        );
        self.line_changed();
        taken
    }

    /// Every connection's interrupter, to stop what still runs when the
    /// engine closes.
    pub(crate) fn interrupters(&self) -> Vec<Arc<Interrupter>> {
        self.workers.iter().map(|(_, i)| i.clone()).collect()
    }

    /// The last engine handle is gone: gives back the idle connections, to
    /// close once the lock is released; in-use ones close as they come back.
    pub(crate) fn orphan(&mut self) -> Vec<Session> {
        if self.phase == Phase::Open {
            self.phase = Phase::Orphaned;
        }
        self.size -= self.idle.len();
        std::mem::take(&mut self.idle)
    }
}
