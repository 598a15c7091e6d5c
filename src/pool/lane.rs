//! Lanes: pooled connections shared by engine-level statements.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::session::InUse;
use crate::worker::{Shared, QUEUE_CAPACITY};

/// The most statements (with the results they hold) that share a lane.
pub(crate) const LANE_DEPTH: usize = QUEUE_CAPACITY;

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
/// statement still gets its own reply, and one that finds a transaction or
/// a result with rows left on the worker is handed back to run on a
/// connection of its own (see `worker::Ticket::lane`). The connection goes
/// back to the pool when the last statement's result is done with it.
pub(crate) struct Lane {
    session: InUse,
    info: Arc<LaneInfo>,
}

impl Lane {
    pub(crate) fn new(session: InUse, info: Arc<LaneInfo>) -> Lane {
        Lane { session, info }
    }

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
pub(crate) struct LaneInfo {
    pinned: AtomicBool,
    shared: Arc<Shared>,
    /// When the connection passes `max_lifetime`: from then on the lane
    /// takes no more statements, so that the connection goes back to the
    /// pool, which replaces it, even under a steady stream of statements.
    retires: Option<Instant>,
}

impl LaneInfo {
    pub(crate) fn new(shared: Arc<Shared>, retires: Option<Instant>) -> LaneInfo {
        LaneInfo {
            pinned: AtomicBool::new(false),
            shared,
            retires,
        }
    }

    /// `true` while the lane takes more statements.
    pub(crate) fn accepts(&self, now: Instant) -> bool {
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
