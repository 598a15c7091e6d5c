//! The engine's write permit in single-writer mode: one writer at a time,
//! first come, first served.

use std::sync::Mutex;
use std::time::Duration;

use crate::error::{DatabaseDetails, Error, ErrorKind, Result};

/// One writer at a time: a permit that workers take before writing (blocking
/// their own thread, never an executor's), first come, first served.
///
/// SQLite's own busy handler keeps no order: under load one writer can lose
/// every race for the whole busy timeout. Queued here, the engine's writers
/// take turns, and the busy timeout only has to cover other processes.
#[derive(Debug, Default)]
pub(crate) struct WriteGate {
    state: Mutex<GateState>,
    freed: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    taken: bool,
    /// Waiters' numbers, in arrival order.
    queue: std::collections::VecDeque<u64>,
    next: u64,
}

impl WriteGate {
    /// Takes the permit in turn, waiting at most `patience`.
    pub(crate) fn take(&self, patience: Duration) -> Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let me = state.next;
        state.next += 1;
        state.queue.push_back(me);
        let (mut state, wait) = self
            .freed
            .wait_timeout_while(state, patience, |s| s.taken || s.queue.front() != Some(&me))
            .unwrap_or_else(|e| e.into_inner());
        if wait.timed_out() && (state.taken || state.queue.front() != Some(&me)) {
            state.queue.retain(|&n| n != me);
            let behind = !state.queue.is_empty();
            drop(state);
            if behind {
                // The one behind may now be first.
                self.freed.notify_all();
            }
            return Err(Error::database_with(
                format!(
                    "database is locked: other connections of this engine kept the write permit for {} s",
                    patience.as_secs()
                ),
                "single-writer permit wait timed out",
                DatabaseDetails {
                    kind: ErrorKind::LockTimeout,
                    ..DatabaseDetails::default()
                },
            ));
        }
        state.queue.pop_front();
        state.taken = true;
        Ok(())
    }

    pub(crate) fn give_back(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.taken = false;
        // Waking nobody still costs a system call: every autocommit write would pay it.
        let waiting = !state.queue.is_empty();
        drop(state);
        if waiting {
            self.freed.notify_all();
        }
    }
}

impl WriteGate {
    /// Takes the permit for one statement or transaction, if `gate` is the
    /// engine's permit; it is given back when the [`Permit`] is dropped.
    pub(crate) fn permit(
        gate: Option<&WriteGate>,
        patience: Duration,
    ) -> Result<Option<Permit<'_>>> {
        match gate {
            Some(gate) => {
                gate.take(patience)?;
                Ok(Some(Permit(gate)))
            }
            None => Ok(None),
        }
    }
}

/// A write permit held for one statement.
pub(crate) struct Permit<'a>(&'a WriteGate);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::sync::Arc;

    use super::*;

    fn queued(gate: &WriteGate) -> usize {
        gate.state.lock().unwrap().queue.len()
    }

    fn wait_until(what: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !what() {
            assert!(std::time::Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Writers get the permit in the order they asked for it.
    #[test]
    fn write_gate_serves_in_arrival_order() {
        let gate = Arc::new(WriteGate::default());
        gate.take(Duration::from_secs(1)).unwrap();
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        for n in 0..5 {
            let (writer, tx) = (gate.clone(), tx.clone());
            threads.push(std::thread::spawn(move || {
                writer.take(Duration::from_secs(10)).unwrap();
                tx.send(n).unwrap();
                writer.give_back();
            }));
            // The next one asks only once this one waits in line.
            wait_until(|| queued(&gate) == n + 1);
        }
        gate.give_back();
        let order: Vec<usize> = (0..5).map(|_| rx.recv().unwrap()).collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
        for t in threads {
            t.join().unwrap();
        }
    }

    /// A writer that gives up leaves the line, and the one behind it is served.
    #[test]
    fn write_gate_waiter_that_gives_up_leaves_the_line() {
        let gate = Arc::new(WriteGate::default());
        gate.take(Duration::from_secs(1)).unwrap();
        let impatient = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.take(Duration::from_millis(300)))
        };
        wait_until(|| queued(&gate) == 1);
        let patient = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.take(Duration::from_secs(10)))
        };
        wait_until(|| queued(&gate) == 2);
        let err = impatient.join().unwrap().unwrap_err();
        assert!(err.to_string().contains("database is locked"), "{err}");
        assert_eq!(queued(&gate), 1);
        gate.give_back();
        patient.join().unwrap().unwrap();
        assert_eq!(queued(&gate), 0);
        assert!(gate.state.lock().unwrap().taken);
    }
}
