//! [`WaitPolicy`]: whether a connection's worker and its callers check for
//! each other's next message without sleeping, and for how long.

use std::time::Duration;

/// How a connection's worker waits for its next request and how a caller
/// waits for its answer: checking for a while without sleeping (spinning,
/// with yields of the core), or going to sleep at once.
///
/// Waking a sleeping thread costs a system call on one side and a
/// scheduling delay on the other, often more than a short statement takes,
/// so checking for a few microseconds first makes short calls faster. A
/// check holds a core while it lasts; a sleep and a wake-up cost CPU time
/// too, and in the measurements behind the default, more than the checks
/// did. The guide's `threading.md` says what each side does and gives the
/// numbers.
///
/// Set with [`EngineBuilder::wait_policy`](crate::EngineBuilder::wait_policy).
///
/// ```
/// use std::time::Duration;
/// use sqlaio::{Engine, WaitPolicy};
///
/// # fn main() -> sqlaio::Result<()> {
/// // On a server with a CPU quota: never spin.
/// let engine = Engine::builder()
///     .url("sqlite::memory:")
///     .wait_policy(WaitPolicy::Sleep)
///     .build()?;
/// # let _ = engine;
/// // Or spin, but never for more than 20 µs at a time.
/// let engine = Engine::builder()
///     .url("sqlite::memory:")
///     .wait_policy(WaitPolicy::SpinAtMost(Duration::from_micros(20)))
///     .build()?;
/// # let _ = engine;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WaitPolicy {
    /// Check before sleeping when the other side is likely to answer soon,
    /// and sleep at once when not: a worker checks for its next request
    /// for up to 50 µs after an answer (less and less often while none
    /// comes), a caller checks for its answer for about twice the
    /// connection's recent statement time, at most 150 µs, and only when
    /// the worker is awake and its statements are short; neither checks
    /// while tasks take turns on the connection. The default.
    #[default]
    Adaptive,
    /// As [`Adaptive`](WaitPolicy::Adaptive), but no check, on either
    /// side, lasts longer than the given time. A zero bound is
    /// [`Sleep`](WaitPolicy::Sleep).
    SpinAtMost(Duration),
    /// Never check without sleeping: a worker sleeps as soon as its queue
    /// is empty and a caller lets its executor sleep as soon as it has sent
    /// its request. No thread holds a core while it waits, which is what a
    /// CPU quota counts; short calls are slower, and in the measurements
    /// behind the default they cost more CPU time in all (every answer is
    /// a wake-up), not less.
    Sleep,
}

impl WaitPolicy {
    /// `budget`, the time the adaptive policy would check for, as this
    /// policy bounds it: zero means sleep at once.
    pub(crate) fn bound(self, budget: Duration) -> Duration {
        match self {
            WaitPolicy::Adaptive => budget,
            WaitPolicy::SpinAtMost(most) => budget.min(most),
            WaitPolicy::Sleep => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_policy_bounds_the_checks_as_documented() {
        let budget = Duration::from_micros(50);
        assert_eq!(WaitPolicy::default(), WaitPolicy::Adaptive);
        assert_eq!(WaitPolicy::Adaptive.bound(budget), budget);
        assert_eq!(
            WaitPolicy::SpinAtMost(Duration::from_micros(20)).bound(budget),
            Duration::from_micros(20)
        );
        assert_eq!(
            WaitPolicy::SpinAtMost(Duration::from_millis(1)).bound(budget),
            budget
        );
        assert_eq!(
            WaitPolicy::SpinAtMost(Duration::ZERO).bound(budget),
            Duration::ZERO
        );
        assert_eq!(WaitPolicy::Sleep.bound(budget), Duration::ZERO);
    }
}
