//! How a worker waits for its next request: check for a while before
//! sleeping when a request is likely to come at once, sleep at once when not.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_channel::Receiver;

use super::protocol::Request;
use super::signals::{pause, Shared};

/// How long a worker whose pool has callers waiting keeps checking for its
/// next request, yielding its core between checks, before it sleeps.
const STAY_AWAKE: Duration = Duration::from_micros(50);

/// How long a worker checks for the next request of a caller that awaits
/// one call after another, before it sleeps.
const WORKER_SPIN: Duration = Duration::from_micros(50);

/// The most waits a worker sleeps at once for, after checks that found nothing.
const MAX_BACKOFF: u32 = 64;

/// For how many requests after one that had others queued behind it a
/// worker sleeps at once when its queue runs empty (see [`Idle::next_request`]).
const TAKING_TURNS: u32 = 8;

/// How a worker waits for its next request; see [`Idle::next_request`].
#[derive(Debug, Default)]
pub(super) struct Idle {
    /// Waits left to sleep at once for, before the worker checks again.
    skip: u32,
    /// How many waits the last check that found nothing set `skip` to.
    backoff: u32,
    /// Requests left to take before the queue counts as fed by one caller
    /// again, after one that had others queued behind it.
    turns: u32,
}

impl Idle {
    /// The next request, or `None` once every sender is gone.
    ///
    /// Waking a sleeping thread costs microseconds, and tens of them on an
    /// idle virtual machine, more than a short statement takes. So before it
    /// sleeps, the worker checks for its next request for a while:
    ///
    /// - when callers wait for a pooled connection, this one is about to be
    ///   handed to the first of them, whose request follows within
    ///   microseconds: up to [`STAY_AWAKE`], yielding its core to any other
    ///   thread that wants it at each check;
    /// - otherwise up to [`WORKER_SPIN`], for a caller that awaits one call
    ///   after another (and, told by [`Shared::awake`], checks for its
    ///   answers the same way instead of sleeping). A check that finds
    ///   nothing makes the worker sleep at once for its next 1, 2, 4, ... up
    ///   to [`MAX_BACKOFF`] waits, so an idle or rarely used connection
    ///   costs next to nothing; a check that finds a request starts over;
    /// - never for longer than the engine's [`WaitPolicy`](crate::WaitPolicy)
    ///   allows, and not at all under its `Sleep`;
    /// - not at all while tasks take turns on the connection (a request was
    ///   taken with others queued behind it within the last
    ///   [`TAKING_TURNS`]): their callers sleep rather than check (the
    ///   worker tells them so through [`Shared::spin_budget`]), so the next
    ///   request comes from a task the executor has yet to run, and a worker
    ///   checking for it takes a core that task may need.
    pub(super) fn next_request(
        &mut self,
        rx: &Receiver<Request>,
        waiting: &AtomicUsize,
        shared: &Shared,
    ) -> Option<Request> {
        let request = self.wait(rx, waiting, shared)?;
        let was = self.turns > 0;
        self.turns = if rx.is_empty() {
            self.turns.saturating_sub(1)
        } else {
            TAKING_TURNS
        };
        if was != (self.turns > 0) {
            shared.taking_turns.store(self.turns > 0, Ordering::Relaxed);
        }
        Some(request)
    }

    /// [`next_request`](Idle::next_request), before it notes whether others
    /// are queued behind the request.
    fn wait(
        &mut self,
        rx: &Receiver<Request>,
        waiting: &AtomicUsize,
        shared: &Shared,
    ) -> Option<Request> {
        if let Ok(request) = rx.try_recv() {
            return Some(request);
        }
        let crowded = waiting.load(Ordering::Relaxed) > 0;
        shared.crowded.store(crowded, Ordering::Relaxed);
        let (stay_awake, spin) = (
            shared.wait.bound(STAY_AWAKE),
            shared.wait.bound(WORKER_SPIN),
        );
        if crowded {
            if stay_awake.is_zero() {
                // The policy says never to check.
            } else if let Some(found) = check(rx, stay_awake, 1) {
                return found;
            }
        } else if self.turns > 0 || spin.is_zero() {
            // Sleep at once (see above).
        } else if self.skip > 0 {
            self.skip -= 1;
        } else {
            match check(rx, spin, 4) {
                Some(found) => {
                    self.backoff = 0;
                    return found;
                }
                None => {
                    self.backoff = (self.backoff * 2).clamp(1, MAX_BACKOFF);
                    self.skip = self.backoff;
                }
            }
        }
        shared.awake.store(false, Ordering::Relaxed);
        let slept = std::time::Instant::now();
        let request = rx.recv_blocking().ok();
        shared.awake.store(true, Ordering::Relaxed);
        if !crowded && slept.elapsed() < WORKER_SPIN {
            // A check would have found it: check again from the next wait on.
            self.skip = 0;
            self.backoff = 0;
        }
        request
    }
}

/// Checks `rx` for up to `budget`, with a [`pause`] between checks that
/// yields the core every `yield_every` pauses: `Some` with the request (or
/// `None` if every sender is gone), or `None` if none came.
fn check(rx: &Receiver<Request>, budget: Duration, yield_every: u32) -> Option<Option<Request>> {
    let start = std::time::Instant::now();
    let mut round = 0u32;
    loop {
        match rx.try_recv() {
            Ok(request) => return Some(Some(request)),
            Err(async_channel::TryRecvError::Closed) => return Some(None),
            Err(async_channel::TryRecvError::Empty) if start.elapsed() < budget => {
                pause(&mut round, yield_every);
            }
            Err(async_channel::TryRecvError::Empty) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_channel::oneshot;

    use super::*;
    use crate::worker::QUEUE_CAPACITY;

    fn ping() -> Request {
        let (reply, _answer) = oneshot::channel();
        Request::Ping { reply }
    }

    /// Long enough for a worker's checks to give up before the request comes.
    const SLOW: Duration = Duration::from_millis(20);

    /// Lets `wait` take a request that another thread sends after `delay`.
    fn take_sent_after(
        wait: &mut Idle,
        (tx, rx): (&async_channel::Sender<Request>, &Receiver<Request>),
        waiting: &AtomicUsize,
        shared: &Shared,
        delay: Duration,
    ) {
        let tx = tx.clone();
        let send = std::thread::spawn(move || {
            std::thread::sleep(delay);
            tx.send_blocking(ping()).unwrap();
        });
        assert!(wait.next_request(rx, waiting, shared).is_some());
        send.join().unwrap();
    }

    #[test]
    fn a_worker_backs_off_checking_when_requests_come_slowly_and_starts_over_when_they_come_fast() {
        let (tx, rx) = async_channel::bounded(QUEUE_CAPACITY);
        let (shared, waiting) = (Shared::default(), AtomicUsize::new(0));
        let mut wait = Idle::default();
        // A request already queued: taken at once, nothing changes.
        tx.try_send(ping()).unwrap();
        assert!(wait.next_request(&rx, &waiting, &shared).is_some());
        assert_eq!((wait.skip, wait.backoff), (0, 0));
        // Requests far apart: each wait that checks in vain doubles the
        // number of waits that sleep at once.
        take_sent_after(&mut wait, (&tx, &rx), &waiting, &shared, SLOW);
        assert_eq!((wait.skip, wait.backoff), (1, 1));
        take_sent_after(&mut wait, (&tx, &rx), &waiting, &shared, SLOW); // slept at once
        assert_eq!((wait.skip, wait.backoff), (0, 1));
        take_sent_after(&mut wait, (&tx, &rx), &waiting, &shared, SLOW);
        assert_eq!((wait.skip, wait.backoff), (2, 2));
        // A request that comes soon after the worker fell asleep: it checks
        // again from the next wait on.
        take_sent_after(
            &mut wait,
            (&tx, &rx),
            &waiting,
            &shared,
            Duration::from_micros(5),
        );
        // (Or, if the machine was too slow to deliver it that soon, the
        // back-off goes on as before.)
        assert!(
            matches!((wait.skip, wait.backoff), (0, 0) | (1, 2)),
            "{:?}",
            (wait.skip, wait.backoff)
        );
        // Every sender gone: no request.
        drop(tx);
        assert!(wait.next_request(&rx, &waiting, &shared).is_none());
        assert!(shared.awake.load(Ordering::Relaxed));
    }

    #[test]
    fn a_worker_that_may_not_check_sleeps_at_once_and_still_takes_every_request() {
        let (tx, rx) = async_channel::bounded(QUEUE_CAPACITY);
        let waiting = AtomicUsize::new(0);
        let shared = Shared::new(crate::WaitPolicy::Sleep);
        let mut wait = Idle::default();
        // Requests far apart: no check runs in vain, so nothing backs off.
        for _ in 0..3 {
            take_sent_after(&mut wait, (&tx, &rx), &waiting, &shared, SLOW);
            assert_eq!((wait.skip, wait.backoff), (0, 0));
        }
        // Callers waiting for the pool: it does not check for them either.
        waiting.store(1, Ordering::Relaxed);
        take_sent_after(&mut wait, (&tx, &rx), &waiting, &shared, SLOW);
        assert!(shared.crowded.load(Ordering::Relaxed));
        // A queued request is taken at once; every sender gone ends it.
        tx.try_send(ping()).unwrap();
        assert!(wait.next_request(&rx, &waiting, &shared).is_some());
        drop(tx);
        assert!(wait.next_request(&rx, &waiting, &shared).is_none());
    }

    #[test]
    fn a_worker_sleeps_at_once_while_tasks_take_turns_on_its_connection() {
        let (tx, rx) = async_channel::bounded(QUEUE_CAPACITY);
        let (shared, waiting) = (Shared::default(), AtomicUsize::new(0));
        let mut wait = Idle::default();
        // Two tasks' requests queued at once: the first is taken with the
        // other behind it.
        tx.try_send(ping()).unwrap();
        tx.try_send(ping()).unwrap();
        assert!(wait.next_request(&rx, &waiting, &shared).is_some());
        assert_eq!(wait.turns, TAKING_TURNS);
        assert!(wait.next_request(&rx, &waiting, &shared).is_some());
        assert_eq!(wait.turns, TAKING_TURNS - 1);
        // Their callers do not check for answers either, however quick and
        // awake the worker is.
        shared.note_busy(Duration::from_micros(5));
        shared.awake.store(true, Ordering::Relaxed);
        assert_eq!(shared.spin_budget(0), Duration::ZERO);
        // The queue is empty: the worker sleeps without checking, so a late
        // request does not count as a check in vain.
        take_sent_after(&mut wait, (&tx, &rx), &waiting, &shared, SLOW);
        assert_eq!((wait.skip, wait.backoff), (0, 0));
        // After enough requests that come one at a time, it checks again.
        while wait.turns > 0 {
            tx.try_send(ping()).unwrap();
            assert!(wait.next_request(&rx, &waiting, &shared).is_some());
        }
        shared.awake.store(true, Ordering::Relaxed);
        assert!(shared.spin_budget(0) > Duration::ZERO);
        take_sent_after(&mut wait, (&tx, &rx), &waiting, &shared, SLOW);
        assert_eq!((wait.skip, wait.backoff), (1, 1));
    }
}
