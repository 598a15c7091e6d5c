//! The blocking drivers, as seen from a worker thread.

#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
