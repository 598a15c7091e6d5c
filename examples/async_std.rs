//! sqlaio on async-std: `AsyncStdStrategy` runs each connection's worker on
//! async-std's blocking pool. Rows are read as a `Stream`, in batches.
//!
//! async-std is deprecated upstream in favour of smol; see the `smol` example.
//!
//! Run it with `cargo run --example async_std --features async-std`.

use futures::TryStreamExt;
use sqlaio::{AsyncStdStrategy, Engine};

#[async_std::main]
async fn main() -> sqlaio::Result<()> {
    let engine = Engine::builder()
        .url("sqlite::memory:")
        .strategy(AsyncStdStrategy)
        .build()?;

    let conn = engine.connect().await?;
    conn.execute(
        "CREATE TABLE readings (id INTEGER PRIMARY KEY, celsius REAL NOT NULL)",
        (),
    )
    .await?;
    // One trip to the worker, one transaction for the whole batch.
    let inserted = conn
        .execute_many(
            "INSERT INTO readings (celsius) VALUES (?1)",
            (0..1000).map(|i| (f64::from(i % 40) - 5.0,)),
        )
        .await?
        .rowcount();
    println!("inserted {inserted} readings");

    // A `CursorResult` is a `Stream` of rows: the first batch came with the
    // `execute` answer, the next ones are fetched as the stream is polled.
    let mut rows = conn
        .execute(
            "SELECT celsius FROM readings WHERE celsius < ?1 ORDER BY id",
            (0.0,),
        )
        .await?;
    let mut below_zero = 0;
    while let Some(row) = rows.try_next().await? {
        let celsius: f64 = row.get(0)?;
        assert!(celsius < 0.0);
        below_zero += 1;
    }
    drop(rows);
    println!("{below_zero} readings below zero");

    conn.close().await?;
    engine.close().await?;
    Ok(())
}
