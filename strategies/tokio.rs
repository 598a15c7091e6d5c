//! [`TokioStrategy`]: tokio's blocking pool.

use std::io;

use crate::strategy::{Job, Strategy};

/// Runs every worker on tokio's blocking pool (`spawn_blocking`).
///
/// Connections must be opened from within a tokio runtime (multi-thread or
/// current-thread); once open, their futures may be awaited anywhere. Tokio
/// runs an accepted blocking task to completion even when its handle is
/// dropped. A worker occupies one blocking-pool thread for as long as its
/// connection lives, so keep `max_connections` below tokio's
/// `max_blocking_threads` (512 by default). Close or drop engines before
/// their runtime shuts down: a runtime waits for its blocking tasks.
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioStrategy;

impl Strategy for TokioStrategy {
    fn spawn(&self, job: Job) -> io::Result<()> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            io::Error::other(
                "TokioStrategy needs a tokio runtime: open connections from within one, \
                 or use ThreadStrategy",
            )
        })?;
        drop(handle.spawn_blocking(move || job.run()));
        Ok(())
    }
}
