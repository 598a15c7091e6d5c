//! [`AsyncStdStrategy`]: async-std's blocking pool.

use std::io;

use crate::strategy::{Job, Strategy};

/// Runs every worker on async-std's blocking pool (`task::spawn_blocking`).
///
/// Dropping async-std's join handle detaches the task, so an accepted job
/// always runs to completion. Note that async-std is deprecated upstream in
/// favour of smol; new code should prefer [`SmolStrategy`](crate::SmolStrategy)
/// where that feature is enabled.
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdStrategy;

impl Strategy for AsyncStdStrategy {
    fn spawn(&self, job: Job) -> io::Result<()> {
        drop(async_std::task::spawn_blocking(move || job.run()));
        Ok(())
    }
}
