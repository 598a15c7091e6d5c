//! An engine's timer: one thread that fires deadlines.
//!
//! Statement timeouts must interrupt a worker that is blocked inside its
//! driver, and pool waits must time out under any executor (even with no
//! runtime at all), so deadlines are kept by a thread of the engine's own.
//! It starts on first use, sleeps until the next deadline, and stops with
//! its engine. The engine's short-lived helper threads (which send
//! PostgreSQL cancels) are counted with it, so that closing the engine
//! waits for them too.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::tracker::Tracker;

/// What to do when a deadline passes.
pub(crate) type Action = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    entries: BTreeMap<(Instant, u64), Action>,
    next_id: u64,
    running: bool,
    stopped: bool,
    /// When the sleeping thread wakes up on its own; `None` while it is awake
    /// (it looks at the entries before it sleeps again).
    wakes_at: Option<Instant>,
    /// The timer's thread, joined once it has stopped.
    handle: Option<std::thread::JoinHandle<()>>,
    /// Helper threads started by [`Timer::spawn_helper`], joined with it.
    helpers: Vec<std::thread::JoinHandle<()>>,
}

/// A set of deadlines served by one thread.
#[derive(Default)]
pub(crate) struct Timer {
    state: Mutex<State>,
    changed: Condvar,
    /// Counts the timer's thread and the helpers, so that closing can wait for them.
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
        // Waking the thread is a system call: only for a deadline before the
        // one it sleeps until (with one statement at a time under a statement
        // timeout, each new deadline comes after the last, and none wakes it).
        let wake = state.wakes_at.is_some_and(|wakes_at| at < wakes_at);
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
        } else if wake {
            self.changed.notify_one();
        }
        Some(Deadline {
            timer: Arc::downgrade(self),
            key,
        })
    }

    /// Runs `work` on a thread of its own, which [`stopped`](Timer::stopped)
    /// waits for; if no thread can be started, `work` does not run.
    pub(crate) fn spawn_helper(&self, name: &str, work: impl FnOnce() + Send + 'static) {
        let guard = self.thread.enter();
        let started = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _guard = guard;
                work();
            });
        if let Ok(handle) = started {
            let mut state = self.lock();
            state.helpers.retain(|helper| !helper.is_finished());
            state.helpers.push(handle);
        }
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

    /// Waits until the timer's thread (after [`stop`](Timer::stop)) and every
    /// helper thread have exited.
    pub(crate) async fn stopped(&self) {
        self.thread.idle().await;
        // Their work is over; joining only waits for the threads' own exit,
        // so that no thread of the engine is left once closing returns.
        let (handle, helpers) = {
            let mut state = self.lock();
            (state.handle.take(), std::mem::take(&mut state.helpers))
        };
        for thread in handle.into_iter().chain(helpers) {
            let _ = thread.join();
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
                state.wakes_at = Some(now + wait);
                let (mut guard, _) = t
                    .changed
                    .wait_timeout(state, wait)
                    .unwrap_or_else(|e| e.into_inner());
                guard.wakes_at = None;
                continue;
            }
            None => {
                state.wakes_at = Some(now + Duration::from_secs(60));
                let (mut guard, _) = t
                    .changed
                    .wait_timeout(state, Duration::from_secs(60))
                    .unwrap_or_else(|e| e.into_inner());
                guard.wakes_at = None;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Waits (a bounded while) until the timer's thread sleeps.
    fn until_asleep(timer: &Timer) {
        for _ in 0..10_000 {
            if timer.lock().wakes_at.is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the timer's thread never went to sleep");
    }

    #[test]
    fn an_earlier_deadline_wakes_a_timer_asleep_until_a_later_one() {
        let timer = Arc::new(Timer::default());
        let (tx, rx) = mpsc::channel();
        let late = tx.clone();
        let _late = timer.schedule(
            Duration::from_secs(3600),
            Box::new(move || {
                let _ = late.send("late");
            }),
        );
        until_asleep(&timer);
        let _early = timer.schedule(
            Duration::from_millis(10),
            Box::new(move || {
                let _ = tx.send("early");
            }),
        );
        // Asleep for up to a minute without the wake-up.
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok("early"));
        timer.stop();
    }

    #[test]
    fn deadlines_after_the_one_slept_for_fire_in_order_without_a_wake_up() {
        let timer = Arc::new(Timer::default());
        let (tx, rx) = mpsc::channel();
        let mut kept = Vec::new();
        for (i, ms) in [20u64, 40, 60].into_iter().enumerate() {
            let tx = tx.clone();
            kept.push(timer.schedule(
                Duration::from_millis(ms),
                Box::new(move || {
                    let _ = tx.send(i);
                }),
            ));
            if i == 0 {
                until_asleep(&timer);
            }
        }
        let fired: Vec<usize> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(30)).expect("fired"))
            .collect();
        assert_eq!(fired, [0, 1, 2]);
        timer.stop();
    }
}
