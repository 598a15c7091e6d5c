//! The pool's async flow: acquiring a connection (or a place on a lane),
//! opening new ones, and closing the pool. Each step takes the lock only to
//! ask the state (`state.rs`) what to do, never across an await.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::pool::lane::{Lane, LaneInfo};
use crate::pool::state::{Found, Handoff, Waiter};
use crate::pool::{Counts, Pool};
use crate::session::{InUse, Session};
use crate::worker;

/// What a caller gets from the pool: a connection of its own, or a place on a lane.
enum Acquired {
    Session(Session),
    Join(Arc<Lane>),
}

impl Pool {
    /// Takes an idle connection or opens a new one, waiting in line while the
    /// pool is full, for at most the acquire timeout.
    ///
    /// # Cancellation
    /// Dropping the future leaves the line; a connection handed to it goes to
    /// the next caller, and one being opened for it is closed by its worker.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<InUse> {
        match self.acquire_as(false).await? {
            Acquired::Session(session) => Ok(self.lend(session)),
            // Only callers in line for a lane are handed one.
            Acquired::Join(_) => Err(Error::Closed("engine")),
        }
    }

    /// A connection for one engine-level statement: an idle one or a new
    /// one while there are any, otherwise a place on the least busy lane,
    /// otherwise a turn in line as [`acquire`](Pool::acquire).
    ///
    /// # Cancellation
    /// As [`acquire`](Pool::acquire).
    pub(crate) async fn lane(self: &Arc<Self>) -> Result<Arc<Lane>> {
        let joined = self.lock().least_busy_lane();
        if let Some(lane) = joined {
            return Ok(lane);
        }
        let session = match self.acquire_as(true).await? {
            Acquired::Session(session) => session,
            Acquired::Join(lane) => return Ok(lane),
        };
        let retires = self.config.max_lifetime.map(|max| session.opened() + max);
        let info = Arc::new(LaneInfo::new(session.shared().clone(), retires));
        let lane = Arc::new(Lane::new(self.lend(session), info.clone()));
        self.lock().add_lane(&lane, info);
        Ok(lane)
    }

    /// As [`acquire`](Pool::acquire); `lane` callers may be handed a place
    /// on a lane instead, formed by the caller ahead of them in line.
    async fn acquire_as(self: &Arc<Self>, lane: bool) -> Result<Acquired> {
        let trace = self.telemetry.acquire();
        let result = self.acquire_timed(lane).await;
        trace.finish(&result);
        result
    }

    async fn acquire_timed(self: &Arc<Self>, lane: bool) -> Result<Acquired> {
        let mut wait = pin!(self.acquire_untimed(lane));
        let mut sleep = None;
        poll_fn(|cx| {
            if let Poll::Ready(result) = wait.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            let sleep = sleep
                .get_or_insert_with(|| Box::pin(self.timer.sleep(self.config.acquire_timeout)));
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(self.lock().timed_out())),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    async fn acquire_untimed(self: &Arc<Self>, lane: bool) -> Result<Acquired> {
        loop {
            let (found, counts) = {
                let mut state = self.lock();
                (state.take(lane), Counts::of(&state))
            };
            self.publish(counts);
            let found = found?;
            let session = match found {
                Found::Idle(session) => session,
                Found::Room => self.open().await?,
                Found::InLine(waiter) => match (InLine {
                    pool: self,
                    waiter,
                    handed: false,
                })
                .await
                {
                    Handoff::Session(session) => session,
                    Handoff::Room => self.open().await?,
                    Handoff::Join(lane) => return Ok(Acquired::Join(lane)),
                    Handoff::Closed => return Err(Error::Closed("engine")),
                },
            };
            if let Some(session) = self.check(session).await {
                self.top_up();
                return Ok(Acquired::Session(session));
            }
        }
    }

    /// Checks a connection about to be handed out; `None` if it was dead or
    /// stuck and is discarded.
    async fn check(&self, mut session: Session) -> Option<Session> {
        if session.is_stopped() {
            self.discard();
            return None;
        }
        // Its worker still runs a request whose caller gave up more than a
        // grace ago, which the interrupt did not stop: the server or the
        // network went silent. Never hand such a connection out again; its
        // worker ends once its socket fails.
        let grace = self.config.timeout_grace;
        if session.shared().running_for(std::time::Instant::now()) > grace {
            session.give_up();
            drop(session);
            self.discard();
            return None;
        }
        if !self.config.test_before_acquire {
            return Some(session);
        }
        // The check itself is bounded: a silent server must not hang the acquire.
        let alive = {
            let mut ping = pin!(session.ping());
            let mut expired = pin!(self.timer.sleep(grace.max(MIN_PING_BOUND)));
            poll_fn(|cx| match ping.as_mut().poll(cx) {
                Poll::Ready(alive) => Poll::Ready(alive),
                Poll::Pending => expired.as_mut().poll(cx).map(|()| false),
            })
            .await
        };
        if alive {
            Some(session)
        } else {
            session.give_up();
            drop(session);
            self.discard();
            None
        }
    }

    /// Opens a new connection in a room already counted, retrying transient
    /// failures (server starting, refused connection) until the acquire
    /// timeout ends the wait.
    async fn open(self: &Arc<Self>) -> Result<Session> {
        let room = Room(self);
        let mut backoff = Duration::from_millis(10);
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let spawned = loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            match worker::spawn(&self.setup, &*self.strategy, &self.tracker, id).await {
                Ok(spawned) => break (id, spawned),
                Err(e) if (self.setup.facts.is_transient)(&e) => {
                    self.lock().connect_failed(e);
                    self.timer.sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    if self.lock().is_closed() {
                        return Err(Error::Closed("engine"));
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let (id, spawned) = spawned;
        let Some(session) = self.adopt(id, spawned) else {
            return Err(Error::Closed("engine"));
        };
        #[cfg(feature = "metrics")]
        self.telemetry.metrics().created(started.elapsed());
        self.start_reaper();
        room.filled();
        Ok(session)
    }

    /// Closes every connection and waits for every worker to stop, for at
    /// most `close_timeout`: statements still running are interrupted a
    /// grace before it ends, and a worker stuck even then (on a socket that
    /// went silent) is left to end on its own when its socket fails.
    pub(crate) async fn close(&self) {
        let (idle, line, counts) = {
            let mut state = self.lock();
            let (idle, line) = state.close();
            (idle, line, Counts::of(&state))
        };
        self.publish(counts);
        drop(idle);
        for waiter in line {
            waiter.closed();
        }
        let close_timeout = self.config.close_timeout;
        let grace = self.config.timeout_grace.min(close_timeout / 2);
        let mut idle = pin!(self.tracker.idle());
        if !self.until(idle.as_mut(), close_timeout - grace).await {
            let interrupters = self.lock().interrupters();
            for interrupter in interrupters {
                interrupter.interrupt_running();
            }
            self.until(idle, grace).await;
        }
        self.timer.stop();
        self.timer.stopped().await;
        let keeper = self
            .keeper
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(keeper);
    }

    /// Waits for `done`, for at most `limit`; `true` when it came.
    async fn until(&self, mut done: Pin<&mut impl Future<Output = ()>>, limit: Duration) -> bool {
        let mut sleep = pin!(self.timer.sleep(limit));
        poll_fn(|cx| match done.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(true),
            Poll::Pending => sleep.as_mut().poll(cx).map(|()| false),
        })
        .await
    }

    /// The last engine handle was dropped: close idle connections now, and
    /// in-use ones as they come back.
    pub(crate) fn orphan(&self) {
        let idle = self.lock().orphan();
        drop(idle);
    }
}

/// The shortest time a `test_before_acquire` ping may take before the
/// connection counts as dead (the engine's `timeout_grace` when longer).
const MIN_PING_BOUND: Duration = Duration::from_secs(5);

/// A caller's place in line; leaving it passes anything handed to it on.
struct InLine<'a> {
    pool: &'a Pool,
    waiter: Arc<Waiter>,
    /// The caller took what it was handed: whoever handed it took the
    /// caller out of the line, so there is nothing to leave or pass on.
    handed: bool,
}

impl Future for InLine<'_> {
    type Output = Handoff;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Handoff> {
        let handoff = ready!(self.waiter.poll_handoff(cx));
        self.handed = true;
        Poll::Ready(handoff)
    }
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        if self.handed {
            // Under load every checkout comes through here: no second
            // look at the pool's lock, and no search of the line.
            return;
        }
        self.pool.lock().leave_line(&self.waiter);
        match self.waiter.take_handoff() {
            Some(Handoff::Session(session)) => self.pool.release(session),
            Some(Handoff::Room) => self.pool.discard(),
            Some(Handoff::Join(lane)) => drop(lane),
            Some(Handoff::Closed) | None => {}
        }
    }
}

/// The room reserved for a connection being opened: given back if opening
/// it failed or was cancelled.
struct Room<'a>(&'a Pool);

impl Room<'_> {
    /// The connection opened and holds the room now.
    fn filled(self) {
        std::mem::forget(self);
    }
}

impl Drop for Room<'_> {
    fn drop(&mut self) {
        self.0.discard();
    }
}
