//! Counts live threads (workers, the timer and its helpers), so that closing
//! an engine can wait for every one of them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use event_listener::Event;

/// Counts live threads so that `Engine::close` can wait for them all.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    live: AtomicUsize,
    changed: Event,
}

impl Tracker {
    pub(crate) fn enter(self: &Arc<Self>) -> TrackerGuard {
        self.live.fetch_add(1, Ordering::SeqCst);
        TrackerGuard(self.clone())
    }

    /// How many workers are running.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Waits until no worker is running.
    pub(crate) async fn idle(&self) {
        loop {
            if self.live() == 0 {
                return;
            }
            let listener = self.changed.listen();
            if self.live() == 0 {
                return;
            }
            listener.await;
        }
    }
}

/// Counts one running thread until dropped.
pub(crate) struct TrackerGuard(Arc<Tracker>);

impl Drop for TrackerGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify(usize::MAX);
    }
}
