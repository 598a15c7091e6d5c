//! The [`Strategy`] trait: where blocking work runs.

use std::fmt;
use std::io;

/// A unit of blocking work handed to a [`Strategy`].
///
/// A job is one connection's worker loop: it runs for as long as the
/// connection lives and may block freely. Its [`name`](Job::name) suits a
/// thread name (`sqlaio-sqlite-3`).
pub struct Job {
    name: String,
    work: Box<dyn FnOnce() + Send + 'static>,
}

impl Job {
    /// Wraps a closure as a job.
    pub fn new(name: impl Into<String>, work: impl FnOnce() + Send + 'static) -> Job {
        Job {
            name: name.into(),
            work: Box::new(work),
        }
    }

    /// A short name for the thread that runs the job.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the job to completion on the current thread.
    pub fn run(self) {
        (self.work)()
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job").field("name", &self.name).finish()
    }
}

/// Decides where blocking work runs.
///
/// sqlaio hands every connection's worker loop to its engine's strategy as a
/// [`Job`]. The contract, for every implementation:
///
/// - the job runs to completion on a thread where blocking is allowed, even
///   if nobody awaits anything any more (never cancel a job that was accepted);
/// - a job that cannot be run is refused by returning an error, never by
///   panicking or by dropping it silently.
///
/// The trait is object-safe: the engine holds an `Arc<dyn Strategy>`, so
/// no user type carries a strategy parameter. Implement it to run sqlaio's
/// workers on your own thread pool:
///
/// ```
/// use std::io;
/// use sqlaio::{Engine, Job, Strategy};
///
/// /// Runs each worker on a plain thread with a larger stack.
/// #[derive(Debug)]
/// struct BigStacks;
///
/// impl Strategy for BigStacks {
///     fn spawn(&self, job: Job) -> io::Result<()> {
///         std::thread::Builder::new()
///             .name(job.name().to_owned())
///             .stack_size(8 << 20)
///             .spawn(move || job.run())
///             .map(drop)
///     }
/// }
///
/// # futures::executor::block_on(async {
/// let engine = Engine::builder().url("sqlite::memory:").strategy(BigStacks).build()?;
/// assert_eq!(engine.scalar::<i64>("SELECT 6 * 7", ()).await?, 42);
/// engine.close().await?;
/// # Ok::<(), sqlaio::Error>(())
/// # }).unwrap();
/// ```
pub trait Strategy: Send + Sync + fmt::Debug + 'static {
    /// Runs `job` to completion on a thread where blocking is allowed.
    ///
    /// # Errors
    /// An error when the job cannot be run (no runtime, no thread could be
    /// created); the job is dropped unrun and the caller reports the error.
    fn spawn(&self, job: Job) -> io::Result<()>;
}
