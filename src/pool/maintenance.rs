//! Keeping the pool in shape: `min_connections` kept open in the
//! background, and idle connections past their idle timeout or lifetime
//! closed by a reaper that runs on the engine's timer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pool::{Counts, Pool};
use crate::worker;

impl Pool {
    /// Opens connections in the background until `min_connections` are open
    /// (or being opened); they join the idle set as they open. Called from
    /// `acquire`, where a runtime strategy finds its runtime.
    pub(super) fn top_up(self: &Arc<Self>) {
        if self.config.min_connections == 0 {
            return;
        }
        let wanted = self.lock().reserve_minimum();
        for _ in 0..wanted {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let pool = Arc::downgrade(self);
            let opened: worker::Opened = Box::new(move |opened| {
                let Some(pool) = pool.upgrade() else {
                    return false;
                };
                match opened {
                    Ok(spawned) => match pool.adopt(id, spawned) {
                        Some(session) => {
                            pool.start_reaper();
                            pool.release(session);
                            true
                        }
                        None => {
                            pool.discard();
                            false
                        }
                    },
                    Err(e) => {
                        pool.lock().connect_failed(e);
                        pool.discard();
                        false
                    }
                }
            });
            let started = worker::start(&self.setup, &*self.strategy, &self.tracker, id, opened);
            if let Err(e) = started {
                self.lock().connect_failed(e);
                self.discard();
            }
        }
    }

    /// Starts the reaper, once: called as connections open.
    pub(super) fn start_reaper(self: &Arc<Self>) {
        if !self.reaper_started.swap(true, Ordering::Relaxed) {
            self.schedule_reaper();
        }
    }

    /// Closes idle connections past `idle_timeout` or `max_lifetime`, keeping
    /// `min_connections` open, then schedules the next round.
    fn reap(self: &Arc<Self>) {
        let now = Instant::now();
        let (gone, counts) = {
            let mut state = self.lock();
            (state.reap(now), Counts::of(&state))
        };
        let Some(gone) = gone else {
            return;
        };
        self.publish(counts);
        drop(gone);
        self.schedule_reaper();
    }

    /// Runs [`reap`](Pool::reap) again after a while, if the pool has limits to enforce.
    fn schedule_reaper(self: &Arc<Self>) {
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
}
