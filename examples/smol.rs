//! sqlaio on smol: `SmolStrategy` runs each connection's worker on the
//! `blocking` thread pool that smol uses. Shows transactions and savepoints.
//!
//! Run it with `cargo run --example smol --features smol`.

use sqlaio::{Engine, SmolStrategy};

async fn run() -> sqlaio::Result<()> {
    let engine = Engine::builder()
        .url("sqlite::memory:")
        .strategy(SmolStrategy)
        .build()?;

    let conn = engine.connect().await?;
    conn.execute(
        "CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INTEGER NOT NULL)",
        (),
    )
    .await?;
    conn.execute_many(
        "INSERT INTO accounts (name, balance) VALUES (?1, ?2)",
        [("Casey McCall", 100), ("Dan Rydell", 50)],
    )
    .await?;

    // A transfer: both updates or neither.
    let tx = conn.begin().await?;
    tx.execute(
        "UPDATE accounts SET balance = balance - ?1 WHERE name = ?2",
        (30, "Casey McCall"),
    )
    .await?;
    tx.execute(
        "UPDATE accounts SET balance = balance + ?1 WHERE name = ?2",
        (30, "Dan Rydell"),
    )
    .await?;
    {
        // A savepoint inside the transaction; dropping it uncommitted rolls
        // back to where it began, before the connection's next request.
        let nested = tx.begin_nested().await?;
        nested
            .execute("UPDATE accounts SET balance = 0", ())
            .await?;
    }
    tx.commit().await?;

    for row in conn
        .fetch_all("SELECT name, balance FROM accounts ORDER BY name", ())
        .await?
    {
        let name: String = row.get("name")?;
        let balance: i64 = row.get("balance")?;
        println!("{name}: {balance}");
    }
    let total: i64 = conn.scalar("SELECT sum(balance) FROM accounts", ()).await?;
    assert_eq!(total, 150);

    conn.close().await?;
    engine.close().await?;
    Ok(())
}

fn main() -> sqlaio::Result<()> {
    smol::block_on(run())
}
