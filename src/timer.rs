//! An engine's timer: one thread that fires deadlines.
//!
//! Statement timeouts must interrupt a worker that is blocked inside its
//! driver, and pool waits must time out under any executor (even with no
//! runtime at all), so deadlines are kept by a thread of the engine's own.
//! It starts on first use, sleeps until the next deadline, and stops with
//! its engine.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::worker::Tracker;

/// What to do when a deadline passes.
pub(crate) type Action = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    entries: BTreeMap<(Instant, u64), Action>,
    next_id: u64,
    running: bool,
    stopped: bool,
    /// The timer's thread, joined once it has stopped.
    handle: Option<std::thread::JoinHandle<()>>,
}

/// A set of deadlines served by one thread.
#[derive(Default)]
pub(crate) struct Timer {
    state: Mutex<State>,
    changed: Condvar,
    /// Counts the timer's thread, so that closing can wait for it.
    thread: Arc<Tracker>,
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("pending", &self.lock().entries.len())
            .finish()
    }
}

/// A registered deadline; dropping it cancels the action if it has not fired.
pub(crate) struct Deadline {
    timer: Weak<Timer>,
    key: (Instant, u64),
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.upgrade() {
            timer.lock().entries.remove(&self.key);
        }
    }
}

impl Timer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `action` on the timer thread once `after` has passed, unless the
    /// returned [`Deadline`] is dropped first. `None` once the timer is stopped.
    pub(crate) fn schedule(self: &Arc<Self>, after: Duration, action: Action) -> Option<Deadline> {
        let at = Instant::now().checked_add(after)?;
        let mut state = self.lock();
        if state.stopped {
            return None;
        }
        state.next_id += 1;
        let key = (at, state.next_id);
        let first = state.entries.keys().next().is_none_or(|k| key < *k);
        state.entries.insert(key, action);
        if !state.running {
            state.running = true;
            let timer = Arc::downgrade(self);
            let guard = self.thread.enter();
            let started = std::thread::Builder::new()
                .name("sqlaio-timer".into())
                .spawn(move || {
                    let _guard = guard;
                    run(timer);
                });
            match started {
                Ok(handle) => state.handle = Some(handle),
                Err(_) => {
                    state.running = false;
                    state.entries.remove(&key);
                    return None;
                }
            }
        } else if first {
            self.changed.notify_one();
        }
        Some(Deadline {
            timer: Arc::downgrade(self),
            key,
        })
    }

    /// A future that completes once `after` has passed.
    pub(crate) fn sleep(self: &Arc<Self>, after: Duration) -> Sleep {
        Sleep {
            timer: self.clone(),
            after,
            fired: Arc::new(Mutex::new(Fired::default())),
            deadline: None,
        }
    }

    /// Stops the thread; pending actions are dropped without running.
    pub(crate) fn stop(&self) {
        let entries = {
            let mut state = self.lock();
            state.stopped = true;
            self.changed.notify_one();
            std::mem::take(&mut state.entries)
        };
        // Dropped outside the lock: an action may own things that lock it again.
        drop(entries);
    }

    /// Waits until the timer's thread has exited (after [`stop`](Timer::stop)).
    pub(crate) async fn stopped(&self) {
        self.thread.idle().await;
        // Its work is over; joining only waits for the thread's own exit, so
        // that no thread of the engine is left once closing returns.
        let handle = self.lock().handle.take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

fn run(timer: Weak<Timer>) {
    loop {
        let Some(t) = timer.upgrade() else { return };
        let mut state = t.lock();
        if state.stopped {
            state.running = false;
            return;
        }
        let now = Instant::now();
        let due = match state.entries.keys().next() {
            Some(&key) if key.0 <= now => state.entries.remove(&key),
            Some(&(at, _)) => {
                // Sleep until the next deadline, or a minute at most, then look again
                // (the engine may be gone by then).
                let wait = (at - now).min(Duration::from_secs(60));
                let _unused = t.changed.wait_timeout(state, wait);
                continue;
            }
            None => {
                let (guard, _) = t
                    .changed
                    .wait_timeout(state, Duration::from_secs(60))
                    .unwrap_or_else(|e| e.into_inner());
                if guard.entries.is_empty() && !guard.stopped {
                    // Idle for a minute: let the thread go; the next deadline starts another.
                    let mut guard = guard;
                    guard.running = false;
                    return;
                }
                continue;
            }
        };
        drop(state);
        drop(t);
        if let Some(action) = due {
            action();
        }
    }
}

#[derive(Default)]
struct Fired {
    done: bool,
    waker: Option<Waker>,
}

/// Completes once its time has passed; see [`Timer::sleep`].
pub(crate) struct Sleep {
    timer: Arc<Timer>,
    after: Duration,
    fired: Arc<Mutex<Fired>>,
    deadline: Option<Deadline>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut fired = self.fired.lock().unwrap_or_else(|e| e.into_inner());
            if fired.done {
                return Poll::Ready(());
            }
            fired.waker = Some(cx.waker().clone());
        }
        if self.deadline.is_none() {
            let fired = self.fired.clone();
            let action: Action = Box::new(move || {
                let mut fired = fired.lock().unwrap_or_else(|e| e.into_inner());
                fired.done = true;
                if let Some(waker) = fired.waker.take() {
                    waker.wake();
                }
            });
            let after = self.after;
            match self.timer.schedule(after, action) {
                Some(deadline) => self.deadline = Some(deadline),
                // The timer is stopped: the engine is closing, stop waiting.
                None => return Poll::Ready(()),
            }
        }
        Poll::Pending
    }
}
