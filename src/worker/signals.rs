//! What a worker shares with its connection's callers, and how a caller
//! waits for an answer: check for it without sleeping while the worker is
//! awake and quick, then let the executor sleep.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_channel::oneshot;

use crate::error::{Error, Result};
use crate::wait::WaitPolicy;

/// State a worker shares with its connection handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// A transaction is open, as of the last request served.
    pub(crate) in_tx: AtomicBool,
    /// The worker loop has stopped.
    pub(crate) stopped: AtomicBool,
    /// The pool replaces the connection instead of handing it out again.
    pub(crate) worn_out: AtomicBool,
    /// The worker is not sleeping (it runs a request or checks for the next
    /// one), so a request sent now is picked up without waking it (see
    /// the worker's idle wait).
    pub(crate) awake: AtomicBool,
    /// Callers wait for a pooled connection of this engine, as the worker
    /// last saw: callers then leave their threads to the others.
    pub(crate) crowded: AtomicBool,
    /// Tasks take turns on the connection (see the worker's idle wait):
    /// callers then leave their threads to the others, as when crowded.
    pub(super) taking_turns: AtomicBool,
    /// About how long the worker's recent requests took, in nanoseconds
    /// (a moving average).
    pub(crate) busy_ns: AtomicU64,
    /// The same average with each request counted as at most
    /// [`QUICK_SAMPLE_CAP`], for a caller's checks: one slow request (a
    /// checkpoint, a cold page) among quick ones does not stop them.
    quick_ns: AtomicU64,
    /// When the request the worker runs now started ([`clock`] nanoseconds),
    /// or 0 between requests.
    running_since: AtomicU64,
    /// How long the worker and its callers may check for each other.
    pub(super) wait: WaitPolicy,
}

/// `at` in nanoseconds since the first connection's queue was made (at least 1).
pub(super) fn clock(at: std::time::Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The process's [`clock`] origin, set before any worker starts.
pub(super) fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// The longest a caller checks for its answer before it lets its executor
/// sleep, and the longest recent requests may take for it to check at all
/// (enough for a PostgreSQL point read on a local server, 40-60 µs).
const CALLER_SPIN: Duration = Duration::from_micros(150);
const CALLER_SPIN_BUSY: Duration = Duration::from_micros(80);

/// The most one request counts for in the average that decides whether a
/// caller checks for its answer: a slow request among quick ones moves it
/// by a little, while about five slow ones in a row stop the checks (twice
/// [`CALLER_SPIN_BUSY`], whatever that is).
const QUICK_SAMPLE_CAP: Duration = CALLER_SPIN_BUSY.saturating_mul(2);

impl Shared {
    /// The state of a new worker of an engine that waits as `wait` says.
    pub(super) fn new(wait: WaitPolicy) -> Shared {
        Shared {
            wait,
            ..Shared::default()
        }
    }

    /// Notes that a request started.
    pub(super) fn note_start(&self, at: std::time::Instant) {
        self.running_since.store(clock(at), Ordering::Relaxed);
    }

    /// How long, at `now`, the request the worker runs has been running;
    /// zero between requests.
    pub(crate) fn running_for(&self, now: std::time::Instant) -> Duration {
        match self.running_since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_nanos(clock(now).saturating_sub(since)),
        }
    }

    /// Notes how long one request took.
    pub(super) fn note_busy(&self, took: Duration) {
        self.running_since.store(0, Ordering::Relaxed);
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        // A moving average over about the last eight requests.
        let average = |old: u64, took: u64| {
            if old == 0 {
                took
            } else {
                old - old / 8 + took / 8
            }
        };
        let old = self.busy_ns.load(Ordering::Relaxed);
        self.busy_ns.store(average(old, took), Ordering::Relaxed);
        let capped = took.min(QUICK_SAMPLE_CAP.as_nanos() as u64);
        let old = self.quick_ns.load(Ordering::Relaxed);
        self.quick_ns.store(average(old, capped), Ordering::Relaxed);
    }

    /// How long a caller about to send a request should check for its answer
    /// before it lets its executor sleep: zero unless the worker is awake to
    /// pick the request up at once and its recent requests were short, since
    /// waking a sleeping thread costs microseconds (tens of them on an idle
    /// virtual machine), more than such a request takes.
    ///
    /// `queued` is how many requests wait in the connection's queue ahead of
    /// this one (other tasks sharing the connection): then the answer comes
    /// after theirs, and the caller sleeps. It sleeps too while tasks take
    /// turns on the connection even if none is queued now: the other tasks
    /// need its executor's threads to send their next requests. The engine's
    /// [`WaitPolicy`] bounds the time, or makes it zero.
    pub(crate) fn spin_budget(&self, queued: usize) -> Duration {
        if queued > 0
            || !self.awake.load(Ordering::Relaxed)
            || self.crowded.load(Ordering::Relaxed)
            || self.taking_turns.load(Ordering::Relaxed)
        {
            return Duration::ZERO;
        }
        let busy = Duration::from_nanos(self.quick_ns.load(Ordering::Relaxed));
        if busy > CALLER_SPIN_BUSY {
            return Duration::ZERO;
        }
        self.wait
            .bound((busy * 2 + Duration::from_micros(5)).min(CALLER_SPIN))
    }
}

/// Awaits a worker's answer; first checks for it, without letting the
/// executor sleep, for up to `spin` (see [`Shared::spin_budget`]).
///
/// The checks do not register the task's waker, so an answer found by them
/// wakes nothing (a multi-thread runtime would otherwise also wake an idle
/// thread of its own to look for work); only when they give up is the
/// answer awaited as usual.
pub(crate) async fn answer<T>(
    mut answer: oneshot::Receiver<Result<T>>,
    spin: Duration,
) -> Result<T> {
    let mut spin = (!spin.is_zero()).then_some(spin);
    std::future::poll_fn(|cx| {
        if let Some(spin) = spin.take() {
            let start = std::time::Instant::now();
            let mut round = 0u32;
            loop {
                match answer.try_recv() {
                    Ok(Some(result)) => return std::task::Poll::Ready(result),
                    Ok(None) if start.elapsed() < spin => pause(&mut round, 4),
                    Ok(None) => break,
                    Err(_) => return std::task::Poll::Ready(Err(Error::WorkerGone)),
                }
            }
        }
        std::pin::Pin::new(&mut answer)
            .poll(cx)
            .map(|result| result.unwrap_or(Err(Error::WorkerGone)))
    })
    .await
}

/// A pause between two checks for something another thread is about to
/// do: a short spin, and every `yield_every`-th time a yield of the core, so
/// that a thread waiting for the same core (maybe the very one awaited) gets it.
pub(crate) fn pause(round: &mut u32, yield_every: u32) {
    *round = round.wrapping_add(1);
    if round.is_multiple_of(yield_every) {
        std::thread::yield_now();
    } else {
        for _ in 0..8 {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_checks_for_its_answer_only_when_the_worker_is_awake_and_quick() {
        let shared = Shared::default();
        // Asleep: never.
        assert_eq!(shared.spin_budget(0), Duration::ZERO);
        shared.awake.store(true, Ordering::Relaxed);
        shared.note_busy(Duration::from_micros(4));
        assert_eq!(shared.spin_budget(0), Duration::from_micros(13));
        // Behind other tasks' requests, or while callers wait for the pool: never.
        assert_eq!(shared.spin_budget(1), Duration::ZERO);
        shared.crowded.store(true, Ordering::Relaxed);
        assert_eq!(shared.spin_budget(0), Duration::ZERO);
        shared.crowded.store(false, Ordering::Relaxed);
        // One slow request among quick ones (a checkpoint, say): still.
        shared.note_busy(Duration::from_millis(5));
        assert!(!shared.spin_budget(0).is_zero());
        // Slow requests in a row: never, until quick ones bring the moving
        // average back down.
        let mut slow = 1;
        while !shared.spin_budget(0).is_zero() {
            shared.note_busy(Duration::from_millis(5));
            slow += 1;
        }
        assert!((3..=8).contains(&slow), "{slow} slow requests");
        let mut quick = 0;
        while shared.spin_budget(0).is_zero() {
            shared.note_busy(Duration::from_micros(4));
            quick += 1;
        }
        assert!((1..=10).contains(&quick), "{quick} quick requests");
        // Never longer than the cap.
        let shared = Shared::default();
        shared.awake.store(true, Ordering::Relaxed);
        shared.note_busy(CALLER_SPIN_BUSY);
        assert_eq!(shared.spin_budget(0), CALLER_SPIN);
    }

    #[test]
    fn the_wait_policy_bounds_or_stops_a_callers_checks() {
        let quick = |wait| {
            let shared = Shared::new(wait);
            shared.awake.store(true, Ordering::Relaxed);
            shared.note_busy(Duration::from_micros(40));
            shared.spin_budget(0)
        };
        assert_eq!(quick(WaitPolicy::Adaptive), Duration::from_micros(85));
        assert_eq!(
            quick(WaitPolicy::SpinAtMost(Duration::from_micros(10))),
            Duration::from_micros(10)
        );
        assert_eq!(quick(WaitPolicy::Sleep), Duration::ZERO);
    }

    #[test]
    fn an_answer_is_taken_while_checking_or_after_sleeping() {
        // Already there.
        let (reply, answer) = oneshot::channel::<Result<i32>>();
        reply.send(Ok(1)).unwrap();
        assert_eq!(
            futures::executor::block_on(super::answer(answer, CALLER_SPIN)).unwrap(),
            1
        );
        // Sent from another thread, long after the check gave up.
        let (reply, answer) = oneshot::channel::<Result<i32>>();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            reply.send(Ok(2)).unwrap();
        });
        assert_eq!(
            futures::executor::block_on(super::answer(answer, Duration::from_micros(10))).unwrap(),
            2
        );
        sender.join().unwrap();
        // The worker dropped the slot.
        let (reply, answer) = oneshot::channel::<Result<i32>>();
        drop(reply);
        let gone = futures::executor::block_on(super::answer(answer, CALLER_SPIN));
        assert!(matches!(gone, Err(Error::WorkerGone)));
    }
}
