//! PostgreSQL connections whose network stops answering: calls fail with
//! `is_connection_lost()` in bounded time instead of hanging.
//!
//! - Through a relay on 127.0.0.1 that freezes the connections it holds
//!   (`frozen_relay_*`), in front of the server on 127.0.0.1:5432.
//! - Inside a network namespace the test creates, whose loopback is taken
//!   down while a connection is open (`silent_network_*`): root only, with a
//!   throwaway cluster started inside the namespace.
//!
//! Times are measured and printed (`-- --nocapture`), and only checked
//! against generous "within N seconds" bounds.
#![cfg(feature = "postgres")]

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::RwLockReadGuard;
use std::time::{Duration, Instant};

use sqlaio::Engine;

use crate::common::net::cluster::{is_root, pg_bin, Cluster, Setup};
use crate::common::net::relay::Relay;
use crate::common::net::{block_on_bounded, skip, skip_always, timed};
use crate::common::pg;

/// Low settings for the tests: data unacknowledged for 2 s, or a silence of
/// 2 s with keepalive probes out, fails the socket.
const FAST: &str = "tcp_user_timeout=2000&keepalives_idle=1&keepalives_interval=1\
                    &keepalives_retries=2&connect_timeout=2";

/// The shared server the relay tests put the relay in front of.
const UPSTREAM: &str = "127.0.0.1:5432";

/// The default local server's address when it answers (the relay tests
/// need it), held shared so that no test restarts it meanwhile.
fn upstream_or_skip(test: &str) -> Option<(SocketAddr, RwLockReadGuard<'static, ()>)> {
    let addr: SocketAddr = UPSTREAM.parse().unwrap();
    if let Ok(url) = std::env::var("DATABASE_URL") {
        if !url.trim().is_empty() && !url.contains("127.0.0.1:5432") {
            skip_always(
                test,
                "DATABASE_URL names another server than 127.0.0.1:5432",
            );
            return None;
        }
    }
    let server = pg::shared();
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(_) => Some((addr, server)),
        Err(e) => {
            skip(test, &format!("no PostgreSQL server on {UPSTREAM}: {e}"));
            None
        }
    }
}

fn relay_url(relay: &Relay, options: &str) -> String {
    format!(
        "postgres://root@127.0.0.1:{}/test?sslmode=disable&{options}",
        relay.port()
    )
}

/// Ignored in the default run: whether the kernel ends a connection whose
/// peer keeps a zero receive window (probes acknowledged, data never taken)
/// within `tcp_user_timeout` depends on the kernel; it did on one run of
/// this test (2.4 s) and did not on another (still waiting at 30 s). The
/// namespace test below checks the bound where TCP itself goes silent.
#[test]
#[ignore = "depends on the kernel's handling of a zero receive window"]
fn frozen_relay_a_large_write_fails_with_connection_lost_within_the_tcp_user_timeout() {
    let test = "frozen_relay_a_large_write";
    let Some((upstream, _server)) = upstream_or_skip(test) else {
        return;
    };
    let relay = Relay::start(upstream);
    let engine = Engine::builder()
        .url(relay_url(&relay, FAST))
        .max_connections(1)
        .build()
        .unwrap();
    block_on_bounded(test, Duration::from_secs(60), async {
        let conn = engine.connect().await.unwrap();
        assert_eq!(conn.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
        relay.freeze();
        // More than the relay's receive buffer and the client's send buffer
        // hold: the rest stays unacknowledged, which tcp_user_timeout bounds.
        let big = vec![7u8; 32 << 20];
        let (answer, took) = timed(
            Duration::from_secs(30),
            conn.scalar::<i64>("SELECT octet_length($1::bytea)::int8", (big,)),
        )
        .await;
        eprintln!("{test}: measured: the call gave up after {took:.2?}: {answer:?}");
        let error = answer
            .expect("the call must give up within 30 s")
            .expect_err("nothing can answer through a frozen relay");
        assert!(error.is_connection_lost(), "{error}");
    });
    drop(relay);
    block_on_bounded(test, Duration::from_secs(30), engine.close()).unwrap();
}

/// What TCP cannot see: the relay's kernel acknowledges the small query and
/// answers every keepalive probe, so the socket stays healthy while nothing
/// is forwarded. Only a deadline above the socket can end such a call;
/// without a statement timeout none applies. Ignored because it fails: the
/// call is still waiting when the test gives up.
#[test]
#[ignore = "fails: a frozen peer whose kernel still acknowledges looks healthy to TCP"]
fn frozen_relay_a_waiting_call_without_a_statement_timeout_fails_in_bounded_time() {
    let test = "frozen_relay_a_waiting_call_without_a_statement_timeout";
    let Some((upstream, _server)) = upstream_or_skip(test) else {
        return;
    };
    let relay = Relay::start(upstream);
    let engine = Engine::builder()
        .url(relay_url(&relay, FAST))
        .max_connections(1)
        .build()
        .unwrap();
    let outcome = block_on_bounded(test, Duration::from_secs(60), async {
        let conn = engine.connect().await.unwrap();
        assert_eq!(conn.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
        relay.freeze();
        let (answer, took) =
            timed(Duration::from_secs(15), conn.scalar::<i64>("SELECT 2", ())).await;
        eprintln!("{test}: measured: after {took:.2?}: {answer:?}");
        answer.map(|a| a.map_err(|e| e.is_connection_lost()))
    });
    drop(relay);
    let _ = block_on_bounded(test, Duration::from_secs(30), engine.close());
    assert_eq!(
        outcome,
        Some(Err(true)),
        "the call must fail as lost within 15 s"
    );
}

/// The same frozen relay, under a 1 s statement timeout: the deadline
/// fires and the cancel goes out on a new connection to a backend that never
/// received the statement, so the worker stays blocked on the frozen socket.
/// The caller gives the connection up once the timeout and its grace have
/// passed: the call fails with `Error::Timeout` well within 15 s, the engine
/// serves the next call from a new connection at once, and `close` returns
/// within its `close_timeout` although a worker is still stuck.
#[test]
fn frozen_relay_a_call_with_a_statement_timeout_fails_in_bounded_time() {
    let test = "frozen_relay_a_call_with_a_statement_timeout";
    let Some((upstream, _server)) = upstream_or_skip(test) else {
        return;
    };
    let relay = Relay::start(upstream);
    let engine = Engine::builder()
        .url(relay_url(&relay, FAST))
        .max_connections(1)
        .statement_timeout(Duration::from_secs(1))
        .close_timeout(Duration::from_secs(4))
        .build()
        .unwrap();
    block_on_bounded(test, Duration::from_secs(60), async {
        assert_eq!(engine.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
        relay.freeze();
        let (answer, took) = timed(
            Duration::from_secs(15),
            engine.scalar::<i64>("SELECT 2", ()),
        )
        .await;
        eprintln!("{test}: measured: the call gave up after {took:.2?}: {answer:?}");
        let error = answer
            .expect("the call must give up within 15 s")
            .expect_err("nothing can answer through a frozen relay");
        assert!(error.is_timeout(), "{error}");

        // The stuck connection is never handed out again: a new one serves.
        let (answer, took) = timed(
            Duration::from_secs(10),
            engine.scalar::<i64>("SELECT 3", ()),
        )
        .await;
        eprintln!("{test}: measured: the next call was answered after {took:.2?}");
        assert_eq!(answer.expect("the next call within 10 s").unwrap(), 3);

        let (closed, took) = timed(Duration::from_secs(10), engine.close()).await;
        eprintln!("{test}: measured: close returned after {took:.2?}");
        closed
            .expect("close must return within its close_timeout")
            .unwrap();
    });
    // Dropping the relay closes its sockets: the stuck worker ends.
    drop(relay);
}

/// As above under `TokioStrategy`: a worker stuck on a frozen socket is a
/// blocking task the runtime cannot stop, so the runtime's own shutdown is
/// bounded with `shutdown_timeout`, which returns in time.
#[cfg(feature = "tokio")]
#[test]
fn frozen_relay_a_stuck_worker_does_not_stop_a_tokio_runtime_from_shutting_down() {
    let test = "frozen_relay_a_stuck_worker_and_tokio";
    let Some((upstream, _server)) = upstream_or_skip(test) else {
        return;
    };
    let relay = Relay::start(upstream);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = relay_url(&relay, FAST);
    runtime.block_on(async {
        let engine = Engine::builder()
            .url(url)
            .strategy(sqlaio::TokioStrategy)
            .statement_timeout(Duration::from_secs(1))
            .close_timeout(Duration::from_secs(4))
            .build()
            .unwrap();
        assert_eq!(engine.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
        relay.freeze();
        let error = tokio::time::timeout(
            Duration::from_secs(15),
            engine.scalar::<i64>("SELECT 2", ()),
        )
        .await
        .expect("the call must give up within 15 s")
        .unwrap_err();
        assert!(error.is_timeout(), "{error}");
        tokio::time::timeout(Duration::from_secs(10), engine.close())
            .await
            .expect("close must return within its close_timeout")
            .unwrap();
    });
    let started = Instant::now();
    runtime.shutdown_timeout(Duration::from_secs(2));
    let took = started.elapsed();
    eprintln!("{test}: measured: the runtime shut down after {took:.2?}");
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    drop(relay);
}

/// A network namespace that is deleted when dropped.
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Result<Netns, String> {
        ip(&["netns", "add", name])?;
        let ns = Netns(name.to_owned());
        ip(&["netns", "exec", name, "ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A server and a client inside a namespace of the test's own; its loopback
/// goes down under open connections (nothing is delivered any more, in
/// either direction, and nothing is closed). The client half runs in a copy
/// of this test binary started inside the namespace
/// (`helper_silent_network`).
#[test]
fn silent_network_calls_fail_with_connection_lost_within_the_tcp_bounds() {
    let test = "silent_network";
    if !is_root() {
        return skip_always(test, "network namespaces need root");
    }
    let Some(bin) = pg_bin() else {
        return skip(
            test,
            "no PostgreSQL server binaries under /usr/lib/postgresql",
        );
    };
    let name = format!("sqlaio-nf-{}", std::process::id());
    let netns = match Netns::create(&name) {
        Ok(ns) => ns,
        Err(e) => return skip_always(test, &format!("no network namespace: {e}")),
    };
    let cluster = Cluster::start(
        &bin,
        Setup {
            hba: vec![
                "local all all trust".into(),
                "host all all 127.0.0.1/32 trust".into(),
            ],
            conf: vec![],
            files: vec![],
            netns: Some(name.clone()),
        },
    )
    .unwrap_or_else(|e| panic!("{test}: the cluster did not start: {e}"));
    cluster.wait_ready().unwrap();

    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &name])
        .arg(exe)
        .args([
            "--exact",
            "network::helper_silent_network",
            "--ignored",
            "--nocapture",
        ])
        .env("SQLAIO_SILENT_PORT", cluster.port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the helper starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{test}: the helper ran for over 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    drop(cluster);
    drop(netns);
    print!("{out}");
    assert!(status.success(), "{test}: the helper failed:\n{out}");
    let results: Vec<&str> = out.lines().filter(|l| l.starts_with("RESULT ")).collect();
    assert_eq!(results.len(), 4, "{test}: missing results:\n{out}");
    for line in results {
        assert!(line.ends_with("=> ok"), "{test}: {line}");
    }
}

/// The client half of `silent_network_*`, inside the namespace; does
/// nothing unless started by it.
#[test]
#[ignore = "a helper: started inside a namespace by silent_network_calls_fail_..."]
fn helper_silent_network() {
    let Ok(port) = std::env::var("SQLAIO_SILENT_PORT") else {
        return;
    };
    let url = |options: &str| format!("postgres://root@127.0.0.1:{port}/postgres?{options}");
    let lo = |state: &str| ip(&["link", "set", "lo", state]).unwrap();
    let report = |case: &str, took: Duration, error: &sqlaio::Error| {
        let outcome = if error.is_connection_lost() {
            "ok"
        } else {
            "not lost"
        };
        println!(
            "RESULT {case} {:.2} s: {error} => {outcome}",
            took.as_secs_f64()
        );
    };
    block_on_bounded("helper_silent_network", Duration::from_secs(150), async {
        // 1. A call sent into the silence: its data is never acknowledged.
        for (case, options, bound) in [
            ("sent_fast", FAST, 15),
            ("sent_defaults", "connect_timeout=2", 60),
        ] {
            let engine = Engine::builder().url(url(options)).build().unwrap();
            let conn = engine.connect().await.unwrap();
            assert_eq!(conn.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
            lo("down");
            let (answer, took) = timed(
                Duration::from_secs(bound),
                conn.scalar::<i64>("SELECT 2", ()),
            )
            .await;
            lo("up");
            match answer {
                Some(Err(e)) => report(case, took, &e),
                other => println!("RESULT {case} {took:.2?}: {other:?} => not failed"),
            }
            drop(conn);
            let _ = engine.close().await;
        }

        // 2. A call waiting for its answer when the silence falls: nothing
        // is unacknowledged, so the keepalive probes find it.
        let engine = Engine::builder().url(url(FAST)).build().unwrap();
        let conn = engine.connect().await.unwrap();
        let call = conn.scalar::<String>("SELECT pg_sleep(4)::text", ());
        let silence = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            lo("down");
            Instant::now()
        };
        let (answer, fell) =
            tokio::join!(tokio::time::timeout(Duration::from_secs(20), call), silence);
        let took = fell.elapsed();
        lo("up");
        match answer {
            Ok(Err(e)) => report("waiting_fast", took, &e),
            other => println!("RESULT waiting_fast {took:.2?}: {other:?} => not failed"),
        }
        drop(conn);

        // 3. The pool replaced the lost connection: the next call works.
        let (answer, took) = timed(
            Duration::from_secs(20),
            engine.scalar::<i64>("SELECT 3", ()),
        )
        .await;
        match answer {
            Some(Ok(3)) => println!("RESULT recovered {:.2} s => ok", took.as_secs_f64()),
            other => println!("RESULT recovered {took:.2?}: {other:?} => not recovered"),
        }
        let _ = engine.close().await;
    });
}
