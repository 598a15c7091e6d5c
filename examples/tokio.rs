//! sqlaio on tokio: `TokioStrategy` runs each connection's worker on
//! tokio's blocking pool, and many tasks share one engine.
//!
//! Run it with `cargo run --example tokio --features tokio`.

use sqlaio::{Engine, TokioStrategy};

#[tokio::main]
async fn main() -> sqlaio::Result<()> {
    // Connections open lazily, on first use; with `TokioStrategy` that first
    // use must happen inside a tokio runtime, as it does here.
    let engine = Engine::builder()
        .url("sqlite::memory:")
        .strategy(TokioStrategy)
        .max_connections(4)
        .build()?;

    engine
        .execute(
            "CREATE TABLE visits (id INTEGER PRIMARY KEY, page TEXT NOT NULL)",
            (),
        )
        .await?;

    // Eight tasks, four connections: tasks beyond the pool's size wait
    // (asynchronously) for a free connection. Every connection sees the same
    // in-memory database.
    let mut tasks = Vec::new();
    for n in 0..8 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let page = format!("/page/{}", n % 3);
            engine
                .execute("INSERT INTO visits (page) VALUES (?1)", (page,))
                .await?;
            Ok::<_, sqlaio::Error>(())
        }));
    }
    for task in tasks {
        task.await.expect("the task did not panic")?;
    }

    for row in engine
        .fetch_all(
            "SELECT page, count(*) AS n FROM visits GROUP BY page ORDER BY page",
            (),
        )
        .await?
    {
        let page: String = row.get("page")?;
        let n: i64 = row.get("n")?;
        println!("{page}: {n} visits");
    }

    let total: i64 = engine.scalar("SELECT count(*) FROM visits", ()).await?;
    assert_eq!(total, 8);

    // Close the engine before the runtime shuts down: a tokio runtime waits
    // for its blocking tasks, and every open connection is one.
    engine.close().await?;
    Ok(())
}
