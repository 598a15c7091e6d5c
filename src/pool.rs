//! The connection pool behind an [`Engine`](crate::Engine).

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_channel::{Sender, WeakSender};
use event_listener::Event;

use crate::config::Target;
use crate::error::{Error, Result};
use crate::strategy::Strategy;
use crate::worker::{self, Interrupter, Request, Shared, Tracker, TxOp};

/// One open connection, as the async side holds it: the way to its worker and
/// what the handle knows of its state.
pub(crate) struct ConnState {
    pub(crate) id: u64,
    pub(crate) sender: Sender<Request>,
    pub(crate) shared: Arc<Shared>,
    /// Transaction levels opened through handles (1 = `BEGIN`, 2+ = savepoints).
    pub(crate) depth: u32,
    /// A rollback to send before the next request (a transaction was dropped or a `begin` cancelled).
    pub(crate) pending: Option<TxOp>,
    /// A full rollback was queued and not yet confirmed by a reply.
    pub(crate) rollback_queued: bool,
    /// The cursor the worker may still hold open.
    pub(crate) open_cursor: Option<u64>,
    /// The number of the last request sent (also the id of any cursor it opened).
    pub(crate) next_seq: u64,
    /// Interrupts the statement running on the worker.
    pub(crate) interrupter: Arc<Interrupter>,
    /// Whether dropping a statement's future interrupts it.
    pub(crate) interrupt_on_drop: bool,
}

impl ConnState {
    /// `true` once the worker stopped or the channel was closed.
    pub(crate) fn is_stopped(&self) -> bool {
        self.sender.is_closed() || self.shared.stopped.load(Ordering::SeqCst)
    }

    /// `true` while a transaction is open on the connection, as far as this side knows.
    pub(crate) fn in_transaction(&self) -> bool {
        self.depth > 0 || (!self.rollback_queued && self.shared.in_tx.load(Ordering::SeqCst))
    }

    /// Adds a rollback to the pending work; the deeper rollback covers the shallower.
    pub(crate) fn add_pending(&mut self, op: TxOp) {
        let level = |op: TxOp| match op {
            TxOp::RollbackTo(d) => d,
            _ => 0,
        };
        self.pending = Some(match self.pending {
            Some(old) if level(old) <= level(op) => old,
            _ => op,
        });
        if level(op) == 0 {
            self.rollback_queued = true;
        }
    }

    /// Queues the pending rollback without waiting, if the queue has room.
    pub(crate) fn try_flush(&mut self) {
        if let Some(op) = self.pending {
            if self
                .sender
                .try_send(Request::Tx { op, reply: None })
                .is_ok()
            {
                self.pending = None;
            }
        }
    }
}

struct State {
    idle: Vec<ConnState>,
    /// Connections open or being opened.
    size: usize,
    closed: bool,
    /// Every connection's sender, to close them all on `Engine::close`.
    all: Vec<WeakSender<Request>>,
}

/// The pool: bounded, lazy, shared by every clone of an engine.
pub(crate) struct Pool {
    pub(crate) target: Target,
    pub(crate) url: String,
    pub(crate) strategy: Arc<dyn Strategy>,
    pub(crate) max: usize,
    pub(crate) interrupt_on_drop: bool,
    pub(crate) tracker: Arc<Tracker>,
    state: Mutex<State>,
    released: Event,
    next_id: AtomicU64,
    /// Keeps a shared in-memory database alive while the engine is.
    keeper: Mutex<Option<Box<dyn Any + Send>>>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("max", &self.max)
            .field("live_workers", &self.tracker.live())
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(
        target: Target,
        url: String,
        strategy: Arc<dyn Strategy>,
        max: usize,
        interrupt_on_drop: bool,
        keeper: Option<Box<dyn Any + Send>>,
    ) -> Pool {
        Pool {
            target,
            url,
            strategy,
            max,
            interrupt_on_drop,
            tracker: Arc::default(),
            state: Mutex::new(State {
                idle: Vec::new(),
                size: 0,
                closed: false,
                all: Vec::new(),
            }),
            released: Event::new(),
            next_id: AtomicU64::new(1),
            keeper: Mutex::new(keeper),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock is never held across user code; a poisoned lock still holds consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes an idle connection or opens a new one, waiting while the pool is full.
    ///
    /// # Cancellation
    /// Dropping the future gives up the wait; a connection being opened for it
    /// is closed by its worker, which then exits.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<Lease> {
        loop {
            if let Some(lease) = self.try_acquire().await? {
                return Ok(lease);
            }
            let listener = self.released.listen();
            if let Some(lease) = self.try_acquire().await? {
                return Ok(lease);
            }
            listener.await;
        }
    }

    async fn try_acquire(self: &Arc<Self>) -> Result<Option<Lease>> {
        {
            let mut state = self.lock();
            if state.closed {
                return Err(Error::Closed("engine"));
            }
            while let Some(conn) = state.idle.pop() {
                if conn.is_stopped() {
                    state.size -= 1;
                    continue;
                }
                return Ok(Some(Lease::new(conn, self.clone())));
            }
            if state.size >= self.max {
                return Ok(None);
            }
            state.size += 1;
        }
        let slot = Slot(self);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let spawned = worker::spawn(&self.target, &*self.strategy, &self.tracker, id).await?;
        let mut state = self.lock();
        if state.closed {
            return Err(Error::Closed("engine"));
        }
        state.all.retain(|w| w.upgrade().is_some());
        state.all.push(spawned.sender.downgrade());
        drop(state);
        std::mem::forget(slot);
        Ok(Some(Lease::new(
            ConnState {
                id,
                sender: spawned.sender,
                shared: spawned.shared,
                depth: 0,
                pending: None,
                rollback_queued: false,
                open_cursor: None,
                next_seq: 0,
                interrupter: spawned.interrupter,
                interrupt_on_drop: self.interrupt_on_drop,
            },
            self.clone(),
        )))
    }

    /// Takes a connection back: clean ones go idle, dirty ones are reset first, dead ones are dropped.
    fn release(&self, mut conn: ConnState) {
        let mut state = self.lock();
        if state.closed || conn.is_stopped() {
            state.size -= 1;
        } else {
            if conn.pending.is_some() || conn.open_cursor.is_some() || conn.in_transaction() {
                conn.pending = None;
                conn.open_cursor = None;
                conn.depth = 0;
                if conn.sender.try_send(Request::Reset).is_err() {
                    conn.add_pending(TxOp::Rollback);
                } else {
                    conn.rollback_queued = true;
                }
            }
            state.idle.push(conn);
        }
        drop(state);
        self.released.notify(1);
    }

    /// Closes every connection and waits for every worker to stop.
    pub(crate) async fn close(&self) {
        let idle = {
            let mut state = self.lock();
            state.closed = true;
            state.size -= state.idle.len();
            for sender in state.all.drain(..).filter_map(|w| w.upgrade()) {
                sender.close();
            }
            std::mem::take(&mut state.idle)
        };
        drop(idle);
        self.released.notify(usize::MAX);
        self.tracker.idle().await;
        let keeper = self.keeper.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(keeper);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

/// Gives a reserved pool slot back if opening the connection failed or was cancelled.
struct Slot<'a>(&'a Pool);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.lock().size -= 1;
        self.0.released.notify(1);
    }
}

/// A connection taken from the pool; dropping it gives the connection back.
pub(crate) struct Lease {
    conn: Option<ConnState>,
    pool: Arc<Pool>,
}

impl Lease {
    fn new(conn: ConnState, pool: Arc<Pool>) -> Lease {
        Lease {
            conn: Some(conn),
            pool,
        }
    }

    pub(crate) fn state(&mut self) -> &mut ConnState {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }

    pub(crate) fn state_ref(&self) -> &ConnState {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }

    pub(crate) fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.release(conn);
        }
    }
}
