//! The blocking drivers, as seen from a worker thread.

#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
