//! Reliability under cancellation, timeouts, faults, load, panics and bad
//! input, against real SQLite files and the real PostgreSQL server: a test
//! binary of its own, on the same harness as the behavioural suite.
//!
//! Every loop is bounded in count and in time, and no test asserts on how
//! fast something was: "promptly" is a bounded wait with a generous limit,
//! and the measured times are printed (run with `--nocapture` to see them)
//! and reported in `docs/reliability.md`.
//!
//! Test names start with what they prove, so that a filter runs one group:
//! `cancel_`, `timeout_`, `fault_`, `load_`, `panic_`, `bad_input_`. Tests
//! that need PostgreSQL skip with a notice when no server answers (and fail
//! under `CI=true`).
#![cfg(feature = "sqlite")]

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod cancel;
mod fault;
mod load;
#[cfg(all(feature = "postgres", unix))]
mod network;
mod panic;
mod timeout;

use std::future::Future;
use std::pin::pin;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use futures::future::{self, Either};
#[cfg(feature = "postgres")]
use sqlaio::Engine;

use common::nap;

/// Counts to five hundred million: minutes of work, even in a release build.
/// Only ever run to be interrupted.
pub(crate) const ENDLESS_SQLITE: &str = "WITH RECURSIVE c(x) AS \
     (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500000000) SELECT count(*) FROM c";

/// Thirty seconds on the server: only ever run to be interrupted.
#[cfg(feature = "postgres")]
pub(crate) const ENDLESS_POSTGRES: &str = "SELECT pg_sleep(30)";

/// How long a statement runs before its future is dropped.
pub(crate) const CANCEL_AFTER: Duration = Duration::from_millis(50);

/// The statement timeout under test.
pub(crate) const TIMEOUT: Duration = Duration::from_millis(200);

/// The bound on a call that should answer "promptly" (within about a
/// second): generous, so that a loaded machine cannot fail it, and far below
/// what the interrupted statement would take if it were left to run.
pub(crate) const PROMPT: Duration = Duration::from_secs(10);

/// The bound on a whole test body: a hang becomes a failure, not a stuck run.
pub(crate) const TEST_LIMIT: Duration = Duration::from_secs(180);

/// Awaits `fut`, failing the test if it takes longer than `limit`; returns
/// its output and how long it took.
pub(crate) async fn bounded<T>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = T>,
) -> (T, Duration) {
    let start = Instant::now();
    match future::select(pin!(fut), pin!(nap(limit))).await {
        Either::Left((value, _)) => (value, start.elapsed()),
        Either::Right(_) => panic!("{what}: no answer within {limit:?}"),
    }
}

/// Polls `check` until it holds, for at most `limit`; returns how long it took.
#[cfg(feature = "postgres")]
pub(crate) async fn poll_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what}: still not so after {limit:?}"
        );
        nap(Duration::from_millis(10)).await;
    }
}

/// Prints one measurement, tagged so that it can be found in the output.
pub(crate) fn report(what: impl AsRef<str>) {
    eprintln!("[reliability] {}", what.as_ref());
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A small deterministic generator (SplitMix64): the same seed gives the same
/// load, so a failure can be replayed with `SQLAIO_SEED=<seed>`.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Waits for a child process, for at most `limit`; kills it past that.
pub(crate) fn wait_child(mut child: Child, limit: Duration, what: &str) -> (ExitStatus, String) {
    let start = Instant::now();
    loop {
        match child.try_wait().expect("poll the child process") {
            Some(_) => break,
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let out = child
                    .wait_with_output()
                    .expect("collect the child's output");
                panic!(
                    "{what}: the child process did not finish within {limit:?}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    }
    let out = child
        .wait_with_output()
        .expect("collect the child's output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

/// Starts this test binary again to run one (ignored) helper test, with `env` set.
pub(crate) fn spawn_self(test: &str, env: &[(&str, &str)]) -> Child {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().expect("start a copy of the test binary")
}

/// `url` with an `application_name`, so that the test can find its own
/// backends in `pg_stat_activity`.
#[cfg(feature = "postgres")]
pub(crate) fn pg_app_url(url: &str, app: &str) -> String {
    common::pg::with_option(url, &format!("application_name={app}"))
}

/// Statements of `app` that are running `pg_sleep` right now.
#[cfg(feature = "postgres")]
pub(crate) async fn active_sleeps(observer: &Engine, app: &str) -> i64 {
    observer
        .scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = $1 AND state = 'active' AND query LIKE '%pg_sleep%'",
            (app,),
        )
        .await
        .expect("query pg_stat_activity")
}

/// An engine on `url` for watching `pg_stat_activity` from outside.
#[cfg(feature = "postgres")]
pub(crate) fn observer(url: &str) -> Engine {
    Engine::builder()
        .url(url)
        .max_connections(1)
        .build()
        .expect("an observer engine")
}
