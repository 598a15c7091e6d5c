//! Interrupts aimed at one request: a dropped future or a statement timeout
//! stops the request it was meant for, never the one after it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::protocol::Ticket;
use super::QUEUE_CAPACITY;
use crate::driver::Kill;
use crate::error::{Error, Result};
use crate::timer::{Deadline, Timer};

/// Why a running request was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Its caller dropped the future.
    Cancelled,
    /// It ran past its deadline.
    #[allow(dead_code)]
    Timeout,
}
/// Which request runs, and its deadline if it has one.
#[derive(Default)]
struct Running {
    seq: u64,
    reason: Option<Reason>,
    deadline: Option<Deadline>,
    /// The next kill for an interrupted request that still runs.
    again: Option<Deadline>,
}

/// What the interrupter knows, under one lock.
#[derive(Default)]
struct Requests {
    running: Running,
    /// Requests cancelled before they started: the worker may have taken
    /// one from its queue, and seen its caller still waiting, just before
    /// the caller gave up. It is skipped when it would start.
    early: Vec<u64>,
}

/// How many requests an early cancel is remembered for (see
/// [`Requests::early`]): requests start in about the order they were
/// numbered, give or take the connection's queue.
const EARLY_WINDOW: u64 = 4 * QUEUE_CAPACITY as u64;

/// How long after a kill an interrupted request that still runs is killed
/// again, doubling up to [`KILL_AGAIN_MAX`]: a kill that reaches the
/// connection before its statement is under way is lost (SQLite clears it
/// when a statement starts; a PostgreSQL server process that is idle
/// ignores it).
const KILL_AGAIN_FIRST: Duration = Duration::from_millis(50);
const KILL_AGAIN_MAX: Duration = Duration::from_secs(1);
/// Aims interrupts at one request: the worker marks which request runs, and
/// an interrupt for an earlier request does nothing; one for a request yet
/// to start has it skipped (see [`Interrupter::start`]).
pub(crate) struct Interrupter {
    requests: Mutex<Requests>,
    /// An interrupt was sent since the worker last asked (see [`Interrupter::take_sent`]).
    sent: AtomicBool,
    kill: Kill,
    timer: Arc<Timer>,
    this: Weak<Interrupter>,
}

impl Interrupter {
    pub(super) fn new(kill: Kill, timer: Arc<Timer>) -> Arc<Interrupter> {
        Arc::new_cyclic(|this| Interrupter {
            requests: Mutex::new(Requests::default()),
            sent: AtomicBool::new(false),
            kill,
            timer,
            this: this.clone(),
        })
    }

    /// The engine's timer, which also keeps callers' deadlines.
    pub(crate) fn timer(&self) -> &Arc<Timer> {
        &self.timer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Requests> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The worker starts running a request; past its timeout, it is
    /// interrupted. `false` when its caller gave up before it started: the
    /// worker then skips it and calls [`finish`](Interrupter::finish).
    #[must_use = "a request cancelled before it started must be skipped"]
    pub(crate) fn start(&self, ticket: Ticket) -> bool {
        // Scheduled before the lock is taken: the timer's lock comes first.
        let deadline = ticket.timeout.and_then(|after| {
            let this = self.this.clone();
            let seq = ticket.seq;
            self.timer.schedule(
                after,
                Box::new(move || {
                    // Not on the timer's thread when the kill blocks: other
                    // deadlines must not wait for a network round trip.
                    if let Some(this) = this.upgrade() {
                        this.interrupt(seq, Reason::Timeout);
                    }
                }),
            )
        });
        // One look under the lock: a cancel lands either before it (and is
        // found here) or after it (and finds the request running).
        let mut requests = self.lock();
        let early = &mut requests.early;
        let cancelled = early.contains(&ticket.seq);
        if !early.is_empty() {
            early.retain(|&seq| seq != ticket.seq && seq + EARLY_WINDOW > ticket.seq);
        }
        let (reason, deadline, unused) = if cancelled {
            (Some(Reason::Cancelled), None, deadline)
        } else {
            (None, deadline, None)
        };
        requests.running = Running {
            seq: ticket.seq,
            reason,
            deadline,
            again: None,
        };
        drop(requests);
        // Dropped outside the lock: cancelling a deadline takes the timer's lock.
        drop(unused);
        !cancelled
    }

    /// The worker is done with its request; says whether it was interrupted.
    pub(super) fn finish(&self) -> Option<Reason> {
        let running = std::mem::take(&mut self.lock().running);
        // Dropped outside the lock: cancelling a deadline takes the timer's lock.
        drop((running.deadline, running.again));
        running.reason
    }

    /// Interrupts request `seq` if it is the one running, or has yet to start
    /// (see [`start`](Interrupter::start)).
    pub(crate) fn interrupt(self: &Arc<Self>, seq: u64, reason: Reason) {
        if self.kill.blocking {
            let this = self.clone();
            self.timer
                .spawn_helper("sqlaio-cancel", move || this.interrupt_now(seq, reason));
        } else {
            self.interrupt_now(seq, reason);
        }
    }

    /// Interrupts whatever request is running (for `Engine::close` past its deadline).
    pub(crate) fn interrupt_running(self: &Arc<Self>) {
        let seq = self.lock().running.seq;
        self.interrupt(seq, Reason::Cancelled);
    }

    fn interrupt_now(&self, seq: u64, reason: Reason) {
        // Holding the lock keeps the worker from moving on to another request meanwhile.
        if seq == 0 {
            return;
        }
        let mut requests = self.lock();
        let running = &mut requests.running;
        if running.seq == seq {
            if running.reason.is_none() {
                running.reason = Some(reason);
                self.sent.store(true, Ordering::SeqCst);
                (self.kill.run)();
                drop(requests);
                self.kill_again_after(seq, KILL_AGAIN_FIRST);
            }
        } else if reason == Reason::Cancelled && seq + EARLY_WINDOW > running.seq {
            // Not running: maybe about to start, maybe finished (the caller
            // gave up as its answer came). Only the first is ever looked up.
            if !requests.early.contains(&seq) {
                requests.early.push(seq);
            }
        }
    }

    /// Kills request `seq` again after `after` if it is still running then.
    fn kill_again_after(&self, seq: u64, after: Duration) {
        let this = self.this.clone();
        let again = self.timer.schedule(
            after,
            Box::new(move || {
                let Some(this) = this.upgrade() else { return };
                if this.kill.blocking {
                    let killer = this.clone();
                    this.timer.spawn_helper("sqlaio-cancel", move || {
                        killer.kill_again(seq, after);
                    });
                } else {
                    this.kill_again(seq, after);
                }
            }),
        );
        let replaced = {
            let mut requests = self.lock();
            if requests.running.seq == seq {
                std::mem::replace(&mut requests.running.again, again)
            } else {
                again
            }
        };
        // Dropped outside the lock: cancelling a deadline takes the timer's lock.
        drop(replaced);
    }

    /// See [`kill_again_after`](Interrupter::kill_again_after); `last` is the
    /// wait that led here.
    fn kill_again(&self, seq: u64, last: Duration) {
        let requests = self.lock();
        let running = &requests.running;
        if seq != 0 && running.seq == seq && running.reason.is_some() {
            self.sent.store(true, Ordering::SeqCst);
            (self.kill.run)();
            drop(requests);
            self.kill_again_after(seq, (last * 2).min(KILL_AGAIN_MAX));
        }
    }

    /// `true` when the running request was interrupted.
    pub(super) fn interrupted(&self) -> bool {
        self.lock().running.reason.is_some()
    }

    /// `true` when an interrupt was sent since the last call: the worker then
    /// lets its driver absorb one that may still be on its way.
    pub(super) fn take_sent(&self) -> bool {
        self.sent.swap(false, Ordering::SeqCst)
    }

    /// Ends the running request, turning an error caused by a timeout into [`Error::Timeout`].
    pub(crate) fn end<T>(&self, result: Result<T>) -> Result<T> {
        match (self.finish(), result) {
            (Some(Reason::Timeout), Err(_)) => Err(Error::Timeout),
            (_, result) => result,
        }
    }

    /// Runs `work` as the ticket's request; see [`end`](Interrupter::end).
    /// A request cancelled before it started is skipped, with
    /// [`Error::Closed`] for an answer nobody waits for.
    pub(crate) fn run<T>(&self, ticket: Ticket, work: impl FnOnce() -> Result<T>) -> Result<T> {
        if !self.start(ticket) {
            return self.skipped();
        }
        let result = work();
        self.end(result)
    }

    /// Ends a request that [`start`](Interrupter::start) said to skip; the
    /// answer is for a caller that no longer waits.
    pub(crate) fn skipped<T>(&self) -> Result<T> {
        self.finish();
        Err(Error::Closed("request"))
    }
}

impl std::fmt::Debug for Interrupter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interrupter")
            .field("running", &self.lock().running.seq)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A blocking interrupt runs on a thread of its own, and closing (which
    /// waits for the timer to stop) waits for that thread too.
    #[test]
    fn closing_waits_for_an_interrupt_sent_from_a_thread_of_its_own() {
        let timer = Arc::new(crate::timer::Timer::default());
        let sent = Arc::new(AtomicBool::new(false));
        let kill = Kill {
            run: Box::new({
                let sent = sent.clone();
                move || {
                    std::thread::sleep(Duration::from_millis(200));
                    sent.store(true, Ordering::SeqCst);
                }
            }),
            blocking: true,
        };
        let interrupter = Interrupter::new(kill, timer.clone());
        assert!(interrupter.start(Ticket {
            seq: 1,
            timeout: None,
            lane: false,
        }));
        interrupter.interrupt(1, Reason::Cancelled);
        assert!(
            !sent.load(Ordering::SeqCst),
            "the interrupt ran on the caller's thread"
        );
        timer.stop();
        futures::executor::block_on(timer.stopped());
        assert!(
            sent.load(Ordering::SeqCst),
            "closing returned before the interrupt was sent"
        );
        assert_eq!(interrupter.finish(), Some(Reason::Cancelled));
    }

    /// An interrupter whose kill only counts how often it ran.
    fn counted_interrupter() -> (Arc<Interrupter>, Arc<crate::timer::Timer>, Arc<AtomicUsize>) {
        let timer = Arc::new(crate::timer::Timer::default());
        let kills = Arc::new(AtomicUsize::new(0));
        let kill = Kill {
            run: Box::new({
                let kills = kills.clone();
                move || {
                    kills.fetch_add(1, Ordering::SeqCst);
                }
            }),
            blocking: false,
        };
        (Interrupter::new(kill, timer.clone()), timer, kills)
    }

    /// A caller that gives up after the worker took its request from the
    /// queue, but before the request started, still has it skipped: the
    /// kill would have come too early to stop the statement.
    #[test]
    fn a_request_cancelled_before_it_starts_is_skipped() {
        let (interrupter, timer, kills) = counted_interrupter();
        let ticket = |seq| Ticket {
            seq,
            timeout: None,
            lane: false,
        };
        // Request 1 runs and ends; its caller gives up as the answer comes.
        assert!(interrupter.start(ticket(1)));
        assert_eq!(interrupter.finish(), None);
        interrupter.interrupt(1, Reason::Cancelled);
        // Request 2 is given up before it starts: no kill, and it is skipped.
        interrupter.interrupt(2, Reason::Cancelled);
        assert_eq!(kills.load(Ordering::SeqCst), 0);
        assert!(!interrupter.start(ticket(2)));
        assert_eq!(interrupter.finish(), Some(Reason::Cancelled));
        assert_eq!(
            interrupter
                .run(ticket(2), || Ok(()))
                .err()
                .map(|e| e.to_string()),
            None,
            "a request is skipped once only"
        );
        // The requests after it run, and can be interrupted as usual.
        assert!(interrupter.start(ticket(3)));
        interrupter.interrupt(3, Reason::Cancelled);
        assert_eq!(kills.load(Ordering::SeqCst), 1);
        assert_eq!(interrupter.finish(), Some(Reason::Cancelled));
        // A stale cancel is forgotten once far behind the requests that start.
        for seq in 4..4 + EARLY_WINDOW + 1 {
            assert!(interrupter.start(ticket(seq)));
            interrupter.finish();
        }
        assert!(interrupter.lock().early.is_empty());
        timer.stop();
        futures::executor::block_on(timer.stopped());
    }

    /// A kill that reached the connection before its statement was under way
    /// is lost; the interrupter sends it again for as long as the request
    /// runs, and stops once it ends.
    #[test]
    fn an_interrupt_is_sent_again_while_its_request_still_runs() {
        let (interrupter, timer, kills) = counted_interrupter();
        assert!(interrupter.start(Ticket {
            seq: 1,
            timeout: None,
            lane: false,
        }));
        interrupter.interrupt(1, Reason::Cancelled);
        assert_eq!(kills.load(Ordering::SeqCst), 1);
        // A bound on a wait for the timer, not a timing assertion.
        let limit = std::time::Instant::now() + Duration::from_secs(30);
        while kills.load(Ordering::SeqCst) < 3 && std::time::Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            kills.load(Ordering::SeqCst) >= 3,
            "the kill was not sent again"
        );
        assert_eq!(interrupter.finish(), Some(Reason::Cancelled));
        let ended = kills.load(Ordering::SeqCst);
        std::thread::sleep(KILL_AGAIN_MAX + Duration::from_millis(100));
        assert_eq!(kills.load(Ordering::SeqCst), ended, "killed after it ended");
        timer.stop();
        futures::executor::block_on(timer.stopped());
    }
}
