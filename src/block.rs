//! A minimal `block_on` for the few places that must wait for a future on a
//! thread of their own: a `Drop` that cannot await (releasing a migration
//! lock, dropping a test schema), and the test harness's `run`.
//!
//! Every sqlaio future completes under any executor (their wake-ups come
//! from the workers, not from a runtime), so parking the thread until the
//! waker fires is all an executor has to do here.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

/// Wakes the thread that is blocked on the future.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on the current thread, parking it while the
/// future is pending.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            // A wake-up that came before the park makes the park return at once.
            Poll::Pending => thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn waits_for_a_wake_up_from_another_thread() {
        let (tx, rx) = futures_channel::oneshot::channel();
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            let _ = tx.send(7);
        });
        assert_eq!(block_on(rx), Ok(7));
        sender.join().unwrap();
    }
}
