//! The getting-started program: SQLite, no server, no async runtime.
//!
//! Run it with `cargo run --example quickstart`.

use sqlaio::{Engine, ThreadStrategy};

async fn run() -> sqlaio::Result<()> {
    let engine = Engine::builder()
        .url("sqlite::memory:")
        .strategy(ThreadStrategy)
        .build()?;

    let conn = engine.connect().await?;
    conn.execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        (),
    )
    .await?;

    let names = [
        "Jeremy Goodwin",
        "Natalie Hurley",
        "Dan Rydell",
        "Casey McCall",
        "Dana Whitaker",
    ];
    conn.execute_many(
        "INSERT INTO users (name) VALUES (?1)",
        names.iter().map(|name| (*name,)),
    )
    .await?;

    let rows = conn
        .fetch_all(
            "SELECT name FROM users WHERE name LIKE ?1 ORDER BY id",
            ("D%",),
        )
        .await?;
    for row in rows {
        let name: String = row.get("name")?;
        println!("Username: {name}");
    }

    let tx = conn.begin().await?;
    let one: i64 = tx.scalar("SELECT 1", ()).await?;
    assert_eq!(one, 1);
    tx.commit().await?;

    conn.execute("DROP TABLE users", ()).await?;
    conn.close().await?;
    engine.close().await?;
    Ok(())
}

fn main() -> sqlaio::Result<()> {
    futures::executor::block_on(run())
}
