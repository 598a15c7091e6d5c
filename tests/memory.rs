//! Memory held while reading a large result, counted by a global allocator
//! that wraps the system one: a stream holds a bounded number of rows
//! whatever the size of the result, and stops reading while its consumer
//! pauses; `fetchall_as` and `fetch_all_as` hold the result once, as the
//! caller's type.
//!
//! One test in this binary, so no other test allocates while it measures.

#![cfg(feature = "sqlite")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::executor::block_on;
use futures::StreamExt;
use sqlaio::Engine;

struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        System.dealloc(p, layout);
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Starts counting the peak from the bytes in use now; returns them.
fn reset_peak() -> usize {
    let now = IN_USE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn peak_above(start: usize) -> usize {
    PEAK.load(Ordering::Relaxed).saturating_sub(start)
}

const ROWS: i64 = 200_000;
/// Each row carries 100 bytes of text: 20 MB in all.
const TEXT: usize = 100;
const MIB: usize = 1 << 20;
/// What a stream may hold above its start: two batches of at most 4,096
/// rows or about 1 MiB of text each, with their `Row` overhead, and slack.
const STREAM_BOUND: usize = 6 * MIB;
/// The same with `yield_per(100)`: a first batch of 256 rows and two of 100,
/// each row about 200 bytes with its `Row`, and slack.
const YIELD_PER_BOUND: usize = 256 * 1024;

#[test]
fn streaming_holds_a_bounded_number_of_rows_and_fetchall_as_holds_the_result_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("big.db").display());
    block_on(async {
        let engine = Engine::builder().url(url).build().unwrap();
        engine
            .execute(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
                (),
            )
            .await
            .unwrap();
        engine
            .execute(
                "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?1) \
                 INSERT INTO t (name) SELECT printf('%0100d', n) FROM s",
                (ROWS,),
            )
            .await
            .unwrap();
        let conn = engine.connect().await.unwrap();

        // Streamed to the end: the peak stays under the bound, a tenth of the text.
        let start = reset_peak();
        let mut result = conn.execute("SELECT id, name FROM t", ()).await.unwrap();
        let (mut rows, mut bytes) = (0_i64, 0_usize);
        while let Some(row) = result.next().await {
            let row = row.unwrap();
            rows += 1;
            bytes += row.get::<String>(1).unwrap().len();
        }
        assert_eq!((rows, bytes), (ROWS, ROWS as usize * TEXT));
        let streamed = peak_above(start);
        assert!(
            streamed < STREAM_BOUND,
            "streaming {} MB of text held {streamed} bytes at its peak",
            bytes / 1_000_000
        );
        drop(result);

        // A consumer that pauses: the worker reads at most one batch ahead
        // and then waits, so nothing piles up while it sleeps.
        let start = reset_peak();
        let mut result = conn.execute("SELECT id, name FROM t", ()).await.unwrap();
        for _ in 0..5_000 {
            result.next().await.unwrap().unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        let paused = peak_above(start);
        assert!(paused < STREAM_BOUND, "a paused stream held {paused} bytes");
        drop(result);

        // yield_per(100): the first batch of 256 rows, then two batches of
        // 100 at a time, a fraction of what the default batches hold.
        let start = reset_peak();
        let mut result = conn
            .execute("SELECT id, name FROM t", ())
            .await
            .unwrap()
            .yield_per(100);
        let mut rows = 0_i64;
        while let Some(row) = result.next().await {
            row.unwrap();
            rows += 1;
        }
        assert_eq!(rows, ROWS);
        let small = peak_above(start);
        assert!(
            small < YIELD_PER_BOUND && small * 4 < streamed,
            "a stream read 100 rows at a time held {small} bytes at its peak, \
             against {streamed} with the default batches"
        );
        drop(result);

        // The one-call fetch_all_as decodes on the worker too: the whole
        // result, once, as (i64, String), never as rows first.
        let start = reset_peak();
        let typed: Vec<(i64, String)> = conn
            .fetch_all_as("SELECT id, name FROM t", ())
            .await
            .unwrap();
        let one_call = peak_above(start);
        assert_eq!(typed.len(), ROWS as usize);
        assert_eq!(typed[41], (42, format!("{:0100}", 42)));
        drop(typed);
        let held = ROWS as usize * (TEXT + std::mem::size_of::<(i64, String)>());
        assert!(
            one_call >= held && one_call < held * 3 / 2,
            "fetch_all_as peaked at {one_call} bytes for {held} bytes of tuples"
        );

        // fetchall_as: the whole result, once, as (i64, String); the
        // Row-based fetchall holds more than that for the same rows.
        #[cfg(feature = "serde")]
        {
            let start = reset_peak();
            let typed: Vec<(i64, String)> = conn
                .execute("SELECT id, name FROM t", ())
                .await
                .unwrap()
                .fetchall_as()
                .await
                .unwrap();
            let as_tuples = peak_above(start);
            assert_eq!(typed.len(), ROWS as usize);
            assert_eq!(typed[41], (42, format!("{:0100}", 42)));
            drop(typed);
            let start = reset_peak();
            let rows = conn
                .execute("SELECT id, name FROM t", ())
                .await
                .unwrap()
                .fetchall()
                .await
                .unwrap();
            let as_rows = peak_above(start);
            assert_eq!(rows.len(), ROWS as usize);
            drop(rows);
            let held = ROWS as usize * (TEXT + std::mem::size_of::<(i64, String)>());
            assert!(
                as_tuples >= held && as_tuples < held * 2,
                "fetchall_as peaked at {as_tuples} bytes for {held} bytes of tuples"
            );
            assert!(
                as_rows > as_tuples,
                "fetchall {as_rows} bytes, fetchall_as {as_tuples}"
            );
        }
        drop(conn);
        engine.close().await.unwrap();
    });
}
