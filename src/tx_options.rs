//! [`TxOptions`]: how a transaction begins, and how often
//! [`Engine::transaction`](crate::Engine::transaction) runs it again.

use std::time::Duration;

/// A transaction's isolation level (SQL's names). PostgreSQL and MySQL take
/// each as it is; SQLite's transactions are always serializable, which
/// gives every level's guarantees, so it accepts them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IsolationLevel {
    /// `READ UNCOMMITTED` (PostgreSQL runs it as `READ COMMITTED`).
    ReadUncommitted,
    /// `READ COMMITTED`: PostgreSQL's default.
    ReadCommitted,
    /// `REPEATABLE READ`: MySQL's default.
    RepeatableRead,
    /// `SERIALIZABLE`.
    Serializable,
}

impl IsolationLevel {
    /// The level's name in SQL.
    pub(crate) fn sql(self) -> &'static str {
        match self {
            IsolationLevel::ReadUncommitted => "READ UNCOMMITTED",
            IsolationLevel::ReadCommitted => "READ COMMITTED",
            IsolationLevel::RepeatableRead => "REPEATABLE READ",
            IsolationLevel::Serializable => "SERIALIZABLE",
        }
    }
}

/// When a SQLite transaction takes its locks (SQLite's `BEGIN DEFERRED`,
/// `IMMEDIATE` and `EXCLUSIVE`); other databases ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Locking {
    /// No lock until the first statement needs one; a write after a read
    /// can then fail with "database is locked".
    Deferred,
    /// The write lock at once: concurrent read-modify-write transactions
    /// wait for each other. What [`Connection::begin`](crate::Connection::begin) does.
    Immediate,
    /// The write lock at once, and no other connection reads meanwhile
    /// (outside WAL mode).
    Exclusive,
}

/// How a transaction begins: isolation level, read only, deferrable,
/// SQLite's locking; and, for
/// [`Engine::transaction`](crate::Engine::transaction), how many times it
/// runs at most.
///
/// ```
/// use sqlaio::{IsolationLevel, TxOptions};
///
/// let options = TxOptions::new()
///     .isolation(IsolationLevel::Serializable)
///     .read_only(true)
///     .max_attempts(5);
/// assert_eq!(options.isolation_level(), Some(IsolationLevel::Serializable));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct TxOptions {
    pub(crate) isolation: Option<IsolationLevel>,
    pub(crate) read_only: bool,
    pub(crate) deferrable: bool,
    pub(crate) locking: Locking,
    pub(crate) max_attempts: u32,
    pub(crate) first_backoff: Duration,
}

impl Default for TxOptions {
    fn default() -> TxOptions {
        TxOptions {
            isolation: None,
            read_only: false,
            deferrable: false,
            locking: Locking::Immediate,
            max_attempts: 3,
            first_backoff: Duration::from_millis(10),
        }
    }
}

impl TxOptions {
    /// The database's default isolation, read-write, SQLite's
    /// [`Locking::Immediate`], at most 3 attempts.
    pub fn new() -> TxOptions {
        TxOptions::default()
    }

    /// The isolation level. Defaults to the database's own default.
    pub fn isolation(mut self, level: IsolationLevel) -> TxOptions {
        self.isolation = Some(level);
        self
    }

    /// A read-only transaction: writes in it fail with
    /// [`ErrorKind::ReadOnly`](crate::ErrorKind::ReadOnly) (on SQLite
    /// through `PRAGMA query_only` for the transaction's length). Defaults
    /// to `false`.
    pub fn read_only(mut self, read_only: bool) -> TxOptions {
        self.read_only = read_only;
        self
    }

    /// PostgreSQL's `DEFERRABLE`: a `SERIALIZABLE READ ONLY` transaction
    /// that waits for a snapshot it can never fail on; other databases
    /// ignore it. Defaults to `false`.
    pub fn deferrable(mut self, deferrable: bool) -> TxOptions {
        self.deferrable = deferrable;
        self
    }

    /// When a SQLite transaction takes its locks. Defaults to
    /// [`Locking::Immediate`].
    pub fn locking(mut self, locking: Locking) -> TxOptions {
        self.locking = locking;
        self
    }

    /// How many times [`Engine::transaction`](crate::Engine::transaction)
    /// runs the transaction at most, when it fails with an error that
    /// [`is_retryable`](crate::Error::is_retryable). Attempts after the
    /// first wait 10 ms, then twice as long each time (up to 1 s), with
    /// random jitter. At least 1; defaults to 3.
    pub fn max_attempts(mut self, attempts: u32) -> TxOptions {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The isolation level asked for, if any.
    pub fn isolation_level(&self) -> Option<IsolationLevel> {
        self.isolation
    }

    /// `true` when the transaction takes the write lock as it begins (in
    /// single-writer mode: the engine's write permit).
    pub(crate) fn takes_write_lock(&self) -> bool {
        !self.read_only && self.locking != Locking::Deferred
    }

    /// How long to wait before attempt `attempt` (2 for the first retry):
    /// exponential, capped at 1 s, with up to half of it taken off at random
    /// so that transactions that collided do not collide again.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(2).min(16);
        let full = self
            .first_backoff
            .saturating_mul(1 << exponent)
            .min(Duration::from_secs(1));
        let noise = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        full - full.mul_f64(f64::from(noise % 1000) / 2000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap_with_jitter_below_it() {
        let options = TxOptions::new();
        for attempt in 2..20 {
            let wait = options.backoff(attempt);
            let full = Duration::from_millis(10)
                .saturating_mul(1 << (attempt - 2).min(16))
                .min(Duration::from_secs(1));
            assert!(wait <= full && wait >= full / 2, "{attempt}: {wait:?}");
        }
        assert_eq!(TxOptions::new().max_attempts(0).max_attempts, 1);
    }
}
