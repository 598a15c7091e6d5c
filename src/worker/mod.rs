//! The worker side of a connection: the requests it serves and its loop.
//!
//! Each connection owns one worker loop, run as a [`Job`] by the engine's
//! strategy. The driver object is created, used and dropped on that thread
//! only. The connection's session sends it [`Request`]s over a bounded
//! channel; every request that expects an answer carries its own one-shot
//! reply slot, so an answer can never reach the wrong caller.
//!
//! The concepts, one file each:
//! - `protocol`: the requests, their replies and the rows they carry;
//! - `interrupt`: aiming an interrupt (a dropped future, a timeout) at the
//!   one request it is meant for;
//! - `serve`: the loop, one function per request kind;
//! - `execute`: running a statement, its first batch, serving its cursor;
//! - `read`: rows from a driver cursor into batches;
//! - `gate`: the engine's write permit in single-writer mode;
//! - `idle`: how a worker waits for its next request;
//! - `signals`: what a worker shares with its callers, and how a caller
//!   waits for an answer.

mod execute;
mod gate;
mod idle;
mod interrupt;
mod protocol;
mod read;
mod serve;
mod signals;

use std::any::Any;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use async_channel::Receiver;
use futures_channel::oneshot;

use crate::driver::{Driver, Facts, Target, Visitor};
use crate::error::{Error, Result};
use crate::strategy::{Job, Strategy};
use crate::timer::Timer;
use crate::tracker::TrackerGuard;
use crate::wait::WaitPolicy;

pub(crate) use crate::tracker::Tracker;
pub(crate) use gate::WriteGate;
pub(crate) use interrupt::{Interrupter, Reason};
pub(crate) use protocol::{call, Batch, Feed, Header, Limit, Reply, Request, Sink, Ticket, TxOp};
pub(crate) use signals::{answer, Shared};

/// How long a worker waits for the engine's write permit in single-writer mode.
pub(crate) const WRITE_PATIENCE: Duration = Duration::from_secs(5);

/// How many requests may wait in a connection's queue before senders wait.
pub(crate) const QUEUE_CAPACITY: usize = 16;
/// Rows in the first batch of a result (sent with the `execute` answer).
pub(crate) const BATCH_ROWS: usize = 256;
/// Rows in a streamed batch, at most: a result read past its first batch
/// gets batches twice as large each time, up to this.
pub(crate) const STREAM_ROWS: usize = 4096;
/// Bytes of text and blob data in a streamed batch, roughly at most.
pub(crate) const BATCH_BYTES: usize = 1 << 20;

/// The sending half of a running worker.
pub(crate) struct Spawned {
    pub(crate) sender: async_channel::Sender<Request>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) interrupter: Arc<Interrupter>,
    /// The server the connection reached, where the driver knows it.
    pub(crate) server: Option<crate::server::ServerInfo>,
}

/// Code run on each new connection's worker, with the raw driver connection.
pub(crate) type Hook = Arc<dyn Fn(&mut dyn Any, &'static str) -> Result<()> + Send + Sync>;

/// What every worker of one engine shares.
pub(crate) struct Setup {
    pub(crate) target: Target,
    /// The driver's facts, read once from `target`.
    pub(crate) facts: Facts,
    pub(crate) timer: Arc<Timer>,
    pub(crate) after_connect: Option<Hook>,
    /// In single-writer mode, the engine's one write permit.
    pub(crate) gate: Option<Arc<WriteGate>>,
    /// Callers waiting for a connection of the pool, as the pool last counted them.
    pub(crate) waiting: AtomicUsize,
    /// How the workers and their callers wait for each other.
    pub(crate) wait: WaitPolicy,
}

impl Setup {
    /// What the workers of an engine connecting to `target` share.
    pub(crate) fn new(target: Target, after_connect: Option<Hook>, single_writer: bool) -> Setup {
        Setup {
            facts: target.facts(),
            target,
            timer: Arc::default(),
            after_connect,
            gate: single_writer.then(Arc::default),
            waiting: AtomicUsize::new(0),
            wait: WaitPolicy::default(),
        }
    }
}

/// Told, on the worker, that its connection opened (with the handle's half
/// of the worker) or why not; answers whether anyone still wants the
/// connection. If not, the worker closes it and exits.
pub(crate) type Opened = Box<dyn FnOnce(Result<Spawned>) -> bool + Send>;

/// Starts a worker on `strategy` without waiting for its connection to
/// open; `opened` is told, on the worker, how the opening went. The one way
/// a worker starts.
///
/// # Errors
/// [`Error::Spawn`] when the strategy refuses the job (`opened` is not called then).
pub(crate) fn start(
    setup: &Arc<Setup>,
    strategy: &dyn Strategy,
    tracker: &Arc<Tracker>,
    id: u64,
    opened: Opened,
) -> Result<()> {
    signals::epoch();
    let (sender, rx) = async_channel::bounded(QUEUE_CAPACITY);
    let job = setup.target.visit(Launch {
        setup: setup.clone(),
        guard: tracker.enter(),
        id,
        rx,
        sender,
        opened,
    });
    strategy.spawn(job).map_err(Error::Spawn)
}

/// Starts a worker on `strategy` and waits until its connection is open.
///
/// # Errors
/// As [`start`], and the driver's error when the connection cannot open.
///
/// # Cancellation
/// If the returned future is dropped, the worker finishes opening, sees that
/// nobody waits for it, closes the connection and exits.
pub(crate) async fn spawn(
    setup: &Arc<Setup>,
    strategy: &dyn Strategy,
    tracker: &Arc<Tracker>,
    id: u64,
) -> Result<Spawned> {
    let (open_tx, open_rx) = oneshot::channel();
    start(
        setup,
        strategy,
        tracker,
        id,
        Box::new(move |opened| open_tx.send(opened).is_ok()),
    )?;
    open_rx.await.unwrap_or(Err(Error::WorkerGone))
}

/// Makes the job of a worker for the target's driver.
struct Launch {
    setup: Arc<Setup>,
    guard: TrackerGuard,
    id: u64,
    rx: Receiver<Request>,
    sender: async_channel::Sender<Request>,
    opened: Opened,
}

impl Visitor for Launch {
    type Output = Job;

    fn visit<D: Driver>(self, config: &Arc<D::Config>) -> Job {
        let config = config.clone();
        let Launch {
            setup,
            guard,
            id,
            rx,
            sender,
            opened,
        } = self;
        Job::new(format!("sqlaio-{}-{id}", D::NAME), move || {
            let _guard = guard;
            serve::run::<D>(&config, &setup, rx, sender, opened);
        })
    }
}
