//! [`SmolStrategy`]: the `blocking` crate's pool, as smol uses it.

use std::io;

use crate::strategy::{Job, Strategy};

/// Runs every worker on the `blocking` crate's thread pool (smol's `unblock`).
///
/// `blocking::unblock` returns a task that cancels the work if it is dropped
/// before it starts; this strategy detaches the task instead, so an accepted
/// job always runs to completion.
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolStrategy;

impl Strategy for SmolStrategy {
    fn spawn(&self, job: Job) -> io::Result<()> {
        blocking::unblock(move || job.run()).detach();
        Ok(())
    }
}
