//! sqlaio's contenders: one per strategy and executor, each with an engine
//! opened the same way. Included with `#[path]` by the benches that measure
//! sqlaio (here and in `benches/peers`).

#![allow(dead_code)]

use std::sync::Arc;

use sqlaio::{Connection, Engine, Strategy, WaitPolicy};

use crate::measure::{async_ops, BoxFuture, Exec, Run};

/// A strategy and the executor that awaits it.
pub struct Side {
    pub label: &'static str,
    pub exec: Exec,
    pub strategy: Arc<dyn Strategy>,
    /// How its engines' workers and callers wait for each other.
    pub wait: WaitPolicy,
}

/// Every strategy this build has, each with its usual executor:
/// `ThreadStrategy` under `futures::executor::block_on`, `TokioStrategy` on a
/// current-thread runtime and from a task on a multi-thread runtime,
/// `AsyncStdStrategy` and `SmolStrategy` under their runtime's `block_on`.
pub fn sides() -> Vec<Side> {
    // Without any runtime feature only the first is there.
    #[allow(unused_mut)]
    let mut sides = vec![Side {
        label: "sqlaio/thread/block_on",
        exec: Exec::Futures,
        strategy: Arc::new(sqlaio::ThreadStrategy),
        wait: WaitPolicy::default(),
    }];
    #[cfg(feature = "tokio")]
    {
        sides.push(Side {
            label: "sqlaio/tokio/current_thread",
            exec: Exec::tokio_current(),
            strategy: Arc::new(sqlaio::TokioStrategy),
            wait: WaitPolicy::default(),
        });
        sides.push(Side {
            label: "sqlaio/tokio/multi_thread_task",
            exec: Exec::tokio_multi_task(),
            strategy: Arc::new(sqlaio::TokioStrategy),
            wait: WaitPolicy::default(),
        });
    }
    #[cfg(feature = "async-std")]
    sides.push(Side {
        label: "sqlaio/async_std/block_on",
        exec: Exec::AsyncStd,
        strategy: Arc::new(sqlaio::AsyncStdStrategy),
        wait: WaitPolicy::default(),
    });
    #[cfg(feature = "smol")]
    sides.push(Side {
        label: "sqlaio/smol/block_on",
        exec: Exec::Smol,
        strategy: Arc::new(sqlaio::SmolStrategy),
        wait: WaitPolicy::default(),
    });
    sides
}

/// The waiting policies measured besides the default, with the suffix of
/// their contenders' names.
pub const WAIT_POLICIES: [(&str, WaitPolicy); 2] = [
    ("/wait_sleep", WaitPolicy::Sleep),
    (
        "/wait_spin_10us",
        WaitPolicy::SpinAtMost(std::time::Duration::from_micros(10)),
    ),
];

/// [`sides`], then `TokioStrategy` awaited from a task on a multi-thread
/// runtime (the server shape) under each of [`WAIT_POLICIES`].
pub fn sides_with_wait_policies() -> Vec<Side> {
    #[allow(unused_mut)]
    let mut sides = sides();
    #[cfg(feature = "tokio")]
    for (suffix, wait) in WAIT_POLICIES {
        sides.push(Side {
            label: String::leak(format!("sqlaio/tokio/multi_thread_task{suffix}")),
            exec: Exec::tokio_multi_task(),
            strategy: Arc::new(sqlaio::TokioStrategy),
            wait,
        });
    }
    sides
}

/// Only the `TokioStrategy` sides (for the peer comparisons).
pub fn tokio_sides() -> Vec<Side> {
    sides()
        .into_iter()
        .filter(|s| s.label.starts_with("sqlaio/tokio"))
        .collect()
}

/// An engine and one connection taken from it before timing starts.
pub struct Open {
    pub engine: Engine,
    pub conn: Arc<Connection>,
}

impl Side {
    pub fn open(&self, url: &str, pool: usize) -> Open {
        let engine = Engine::builder()
            .url(url)
            .strategy_arc(self.strategy.clone())
            .max_connections(pool)
            .wait_policy(self.wait)
            .build()
            .expect("engine");
        let conn = Arc::new(self.exec.block_on(engine.connect()).expect("connect"));
        Open { engine, conn }
    }

    pub fn close(&self, open: Open) {
        self.exec.block_on(async {
            open.conn.close().await.expect("close connection");
            open.engine.close().await.expect("close engine");
        });
    }
}

/// One contender per side: `body(engine, conn, n, per_op)` makes a run's future.
pub fn contenders<'a, B>(
    sides: &'a [Side],
    opened: &[Open],
    suffix: &str,
    body: B,
) -> Vec<(String, Run<'a>)>
where
    B: Fn(&Engine, &Arc<Connection>, u64, bool) -> BoxFuture + Clone + 'a,
{
    sides
        .iter()
        .zip(opened)
        .map(|(side, open)| {
            let (engine, conn, body) = (open.engine.clone(), open.conn.clone(), body.clone());
            let run: Run<'a> =
                Box::new(move |n, per_op| side.exec.run(body(&engine, &conn, n, per_op)));
            (format!("{}{suffix}", side.label), run)
        })
        .collect()
}

/// One contender per side whose every unit awaits `op` once on the side's
/// connection (its output goes through `black_box`).
pub fn each<'a, F, Fut>(
    sides: &'a [Side],
    opened: &[Open],
    suffix: &str,
    op: F,
) -> Vec<(String, Run<'a>)>
where
    F: Fn(Arc<Connection>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future + Send,
    Fut::Output: Send,
{
    contenders(sides, opened, suffix, move |_, conn, n, per_op| {
        let (conn, op) = (conn.clone(), op.clone());
        Box::pin(async move {
            async_ops(n, per_op, || async {
                std::hint::black_box(op(conn.clone()).await);
            })
            .await
        })
    })
}
