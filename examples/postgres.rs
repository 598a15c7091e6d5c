//! The quickstart against PostgreSQL: the same code as on SQLite, another URL.
//!
//! Run it with `DATABASE_URL=postgres://user@host/db cargo run --example postgres --features postgres`;
//! without `DATABASE_URL` it uses `postgres://root@127.0.0.1:5432/test`.

use sqlaio::Engine;

async fn run(url: &str) -> sqlaio::Result<()> {
    let engine = Engine::builder().url(url).build()?;
    let conn = engine.connect().await?;
    conn.execute("DROP TABLE IF EXISTS quickstart_users", ())
        .await?;
    conn.execute(
        "CREATE TABLE quickstart_users (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL)",
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
        "INSERT INTO quickstart_users (name) VALUES ($1)",
        names.iter().map(|name| (*name,)),
    )
    .await?;

    // PostgreSQL has no last_insert_id: ask for the new id with RETURNING.
    let id: i64 = conn
        .scalar(
            "INSERT INTO quickstart_users (name) VALUES ($1) RETURNING id",
            ("Isaac Jaffe",),
        )
        .await?;
    println!("Inserted Isaac Jaffe with id {id}");

    let mut result = conn
        .execute(
            "SELECT name FROM quickstart_users WHERE name LIKE $1 ORDER BY id",
            ("D%",),
        )
        .await?;
    for row in result.fetchall().await? {
        let name: String = row.get("name")?;
        println!("Username: {name}");
    }

    let tx = conn.begin().await?;
    let one: i32 = tx.scalar("SELECT 1", ()).await?;
    assert_eq!(one, 1);
    tx.commit().await?;

    conn.execute("DROP TABLE quickstart_users", ()).await?;
    conn.close().await?;
    engine.close().await?;
    Ok(())
}

fn main() -> sqlaio::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned());
    futures::executor::block_on(run(&url))
}
