//! [`ThreadStrategy`]: plain named threads, no runtime.

use std::io;

use crate::strategy::{Job, Strategy};

/// Runs every worker on its own plain OS thread, named after the job
/// (`sqlaio-sqlite-3`). Needs no async runtime: futures of an engine built
/// with it can be awaited from `futures::executor::block_on`, tokio,
/// async-std, smol or any other executor.
///
/// This is the default strategy. A worker's thread lives as long as its
/// connection and is joined by [`Engine::close`](crate::Engine::close).
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadStrategy;

impl Strategy for ThreadStrategy {
    fn spawn(&self, job: Job) -> io::Result<()> {
        std::thread::Builder::new()
            .name(job.name().to_owned())
            .spawn(move || job.run())
            .map(drop)
    }
}
