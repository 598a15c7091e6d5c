//! Support for the TLS and network-fault tests: throwaway PostgreSQL
//! clusters (`cluster`), a TCP relay that can freeze its connections
//! (`relay`), skipping with a notice, and bounded waits.
//!
//! Everything listens on loopback only, or inside a network namespace the
//! test itself creates.

pub mod cluster;
pub mod relay;

use std::future::Future;
use std::time::{Duration, Instant};

use super::in_ci;

/// Prints why `test` is skipped; under `CI=true`, fails instead.
pub fn skip(test: &str, why: &str) {
    if in_ci() {
        panic!("{test}: cannot run under CI=true: {why}");
    }
    eprintln!("{test}: skipped: {why}");
}

/// Prints why `test` is skipped, even under `CI=true` (for what CI machines
/// may lawfully lack, such as network namespaces when not root).
pub fn skip_always(test: &str, why: &str) {
    eprintln!("{test}: skipped: {why}");
}

/// Runs `fut` on a fresh tokio runtime, failing the test after `limit`.
pub fn block_on_bounded<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        match tokio::time::timeout(limit, fut).await {
            Ok(value) => value,
            Err(_) => panic!("{what}: still running after {limit:?}"),
        }
    })
}

/// Awaits `fut` for at most `limit`; answers its output (or `None`) and how long it took.
pub async fn timed<T>(limit: Duration, fut: impl Future<Output = T>) -> (Option<T>, Duration) {
    let started = Instant::now();
    let out = tokio::time::timeout(limit, fut).await.ok();
    (out, started.elapsed())
}
