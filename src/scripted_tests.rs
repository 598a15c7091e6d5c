//! The pool and the worker loop driven by the scripted driver
//! (`driver::fake`): what they ask of a connection, and in which order,
//! checked without a database and without timing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::executor::block_on;

use crate::driver::fake::{script, FakeConnection};
use crate::{Engine, Sql};

fn engine(name: &str, max: usize) -> Engine {
    Engine::builder()
        .url(format!("fake://{name}"))
        .max_connections(max)
        .build()
        .expect("a fake engine")
}

/// The position of the first log entry that ends with `what`.
fn position(log: &[String], what: &str) -> usize {
    log.iter()
        .position(|l| l.ends_with(what))
        .unwrap_or_else(|| panic!("no {what:?} in {log:#?}"))
}

#[test]
fn a_connection_comes_back_rolled_back_before_anyone_else_uses_it() {
    let script = script("reset-on-return");
    let engine = engine("reset-on-return", 1);
    block_on(async {
        let conn = engine.connect().await?;
        let tx = conn.begin().await?;
        drop(tx.execute("write inside", ()).await?);
        // Neither committed nor rolled back.
        drop(tx);
        drop(conn);
        let conn = engine.connect().await?;
        drop(conn.execute("write after", ()).await?);
        conn.close().await?;
        engine.close().await
    })
    .unwrap();
    let log = script.log();
    let inside = position(&log, "run write inside");
    let rollback = position(&log, "batch ROLLBACK");
    let after = position(&log, "run write after");
    assert!(inside < rollback && rollback < after, "{log:#?}");
    assert_eq!(script.count("open"), 1, "{log:#?}");
}

#[test]
fn an_interrupt_stops_the_request_it_was_meant_for_and_not_the_next() {
    let script = script("aimed-interrupt");
    let engine = engine("aimed-interrupt", 1);
    let next = block_on(async {
        let conn = engine.connect().await?;
        let timed_out = conn
            .execute(Sql::new("block").timeout(Duration::from_millis(50)), ())
            .await
            .expect_err("the statement blocks until killed");
        assert!(timed_out.is_timeout(), "{timed_out}");
        let rows = conn.execute("rows 2", ()).await?.fetchall().await?;
        conn.close().await?;
        engine.close().await?;
        Ok::<_, crate::Error>(rows.len())
    })
    .unwrap();
    assert_eq!(next, 2);
    let log = script.log();
    let kill = position(&log, "kill");
    assert!(position(&log, "run block") < kill, "{log:#?}");
    assert!(kill < position(&log, "run rows 2"), "{log:#?}");
    assert_eq!(
        log[position(&log, "run rows 2")..]
            .iter()
            .filter(|l| l.ends_with("kill"))
            .count(),
        0,
        "a kill reached a later request: {log:#?}"
    );
}

#[test]
fn a_request_given_up_before_it_starts_never_runs() {
    let script = script("skipped");
    let engine = engine("skipped", 1);
    block_on(async {
        let conn = engine.connect().await?;
        let mut first = Box::pin(conn.execute("block", ()));
        assert!(futures::poll!(first.as_mut()).is_pending());
        script.wait_for("run block", 1);
        let mut second = Box::pin(conn.execute("rows 1", ()));
        assert!(futures::poll!(second.as_mut()).is_pending());
        // Given up while the first still runs: it was queued, never started.
        drop(second);
        script.release();
        drop(first.await?);
        let rows = conn.execute("rows 3", ()).await?.fetchall().await?;
        assert_eq!(rows.len(), 3);
        conn.close().await?;
        engine.close().await
    })
    .unwrap();
    let log = script.log();
    assert_eq!(script.count("prepare rows 1"), 0, "{log:#?}");
    assert_eq!(script.count("kill"), 0, "{log:#?}");
}

#[test]
fn callers_waiting_for_a_connection_get_it_in_the_order_they_asked() {
    let _script = script("fair");
    let engine = engine("fair", 1);
    let held = block_on(engine.connect()).unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for n in 0..4 {
        let (waiter, order) = (engine.clone(), order.clone());
        waiters.push(std::thread::spawn(move || {
            block_on(async {
                let conn = waiter.connect().await?;
                order.lock().unwrap().push(n);
                conn.close().await
            })
        }));
        // The next one asks only once this one waits in line.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while engine.pool_status().waiting < n + 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "waiter {n} never waited"
            );
            std::thread::yield_now();
        }
    }
    drop(held);
    for waiter in waiters {
        waiter.join().unwrap().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
    block_on(engine.close()).unwrap();
}

#[test]
fn a_panic_in_user_code_becomes_an_error_and_the_connection_serves_on() {
    let script = script("panic");
    let engine = engine("panic", 1);
    block_on(async {
        let conn = engine.connect().await?;
        let err = conn
            .run_in_thread(|_: &mut FakeConnection| -> crate::Result<()> { panic!("user bug") })
            .await
            .expect_err("the closure panicked");
        assert!(err.is_panic(), "{err}");
        let calls = conn
            .run_in_thread(|raw: &mut FakeConnection| Ok::<_, crate::Error>(raw.calls))
            .await?;
        assert_eq!(calls, 2);
        conn.close().await?;
        engine.close().await
    })
    .unwrap();
    // The closure may have opened a transaction the driver cannot see.
    assert_eq!(script.count("batch ROLLBACK"), 1, "{:#?}", script.log());
    assert_eq!(script.count("open"), 1);
}

#[test]
fn one_call_fetches_say_when_there_is_no_row() {
    let _script = script("fetches");
    let engine = engine("fetches", 1);
    block_on(async {
        let err = engine.fetch_one("rows 0", ()).await.unwrap_err();
        assert!(matches!(err, crate::Error::NoRows), "{err}");
        assert_eq!(err.kind(), crate::ErrorKind::NoRows);
        assert!(engine.fetch_optional("rows 0", ()).await?.is_none());
        assert!(engine
            .fetch_optional_as::<(i64,)>("rows 0", ())
            .await?
            .is_none());
        let row = engine.fetch_one("rows 3", ()).await?;
        assert_eq!(row.get::<i64>("n")?, 1);
        let all: Vec<(i64,)> = engine.fetch_all_as("rows 3", ()).await?;
        assert_eq!(all, [(1,), (2,), (3,)]);
        // Past the first batch the rows are decoded on the worker: all of
        // them, in order, and a row that does not fit fails the fetch
        // without harming the connection.
        let many: Vec<(i64,)> = engine.fetch_all_as("rows 70000", ()).await?;
        assert_eq!(many.len(), 70_000);
        assert!(many.iter().enumerate().all(|(i, &(n,))| n == i as i64 + 1));
        let err = engine
            .fetch_all_as::<(u16,)>("rows 70000", ())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Decode, "{err}");
        let again: Vec<(i64,)> = engine.fetch_all_as("rows 2", ()).await?;
        assert_eq!(again, [(1,), (2,)]);
        let conn = engine.connect().await?;
        let (n,): (i64,) = conn.fetch_one_as("rows 2", ()).await?;
        assert_eq!(n, 1);
        let err = conn
            .fetch_one_as::<(i64, i64)>("rows 1", ())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Decode, "{err}");
        conn.close().await?;
        engine.close().await
    })
    .unwrap();
}

#[test]
fn a_call_whose_answer_never_comes_gives_its_connection_up_after_the_grace() {
    let script = script("silent");
    let engine = Engine::builder()
        .url("fake://silent")
        .max_connections(1)
        .statement_timeout(Duration::from_millis(20))
        .timeout_grace(Duration::from_millis(30))
        .build()
        .unwrap();
    block_on(async {
        let err = engine.execute("hang", ()).await.map(drop).unwrap_err();
        assert!(err.is_timeout(), "{err}");
        // The stuck connection is never handed out again: a new one serves.
        let rows = engine.fetch_all("rows 1", ()).await?;
        assert_eq!(rows.len(), 1);
        Ok::<(), crate::Error>(())
    })
    .unwrap();
    assert_eq!(script.count("open"), 2, "{:#?}", script.log());
    assert!(script.count("kill") >= 1, "{:#?}", script.log());
    // Let the stuck worker end, so that close finds every worker gone.
    script.release();
    block_on(engine.close()).unwrap();
}

#[test]
fn a_connection_whose_dropped_call_never_ends_is_not_handed_out_again() {
    let script = script("stuck-after-drop");
    let engine = Engine::builder()
        .url("fake://stuck-after-drop")
        .max_connections(2)
        .timeout_grace(Duration::from_millis(20))
        .build()
        .unwrap();
    block_on(async {
        let conn = engine.connect().await?;
        let mut call = Box::pin(conn.execute("hang", ()));
        assert!(futures::poll!(call.as_mut()).is_pending());
        script.wait_for("run hang", 1);
        // Given up: the interrupt cannot stop it, and the connection goes back.
        drop(call);
        drop(conn);
        // Past the grace, the stuck connection is passed over for a new one.
        std::thread::sleep(Duration::from_millis(60));
        let rows = engine.fetch_all("rows 1", ()).await?;
        assert_eq!(rows.len(), 1);
        Ok::<(), crate::Error>(())
    })
    .unwrap();
    assert_eq!(script.count("open"), 2, "{:#?}", script.log());
    script.release();
    block_on(engine.close()).unwrap();
}

#[test]
fn a_ping_that_never_answers_does_not_hang_the_acquire() {
    let script = script("silent-ping");
    let engine = Engine::builder()
        .url("fake://silent-ping")
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(8))
        .test_before_acquire(true)
        .build()
        .unwrap();
    block_on(async {
        drop(engine.fetch_all("rows 1", ()).await?);
        // The idle connection's next ping never answers: the acquire gives
        // it up after its bound and opens another.
        script.silence();
        let rows = engine
            .fetch_all("rows 2", ())
            .await
            .unwrap_or_else(|e| panic!("{e}: {:#?}", script.log()));
        assert_eq!(rows.len(), 2);
        Ok::<(), crate::Error>(())
    })
    .unwrap();
    assert_eq!(script.count("open"), 2, "{:#?}", script.log());
    assert!(script.count("ping") >= 1);
    script.release();
    block_on(engine.close()).unwrap();
}
