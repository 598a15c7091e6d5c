//! The quickstart against MySQL or MariaDB: the same code as on SQLite, another URL.
//!
//! Run it with `MYSQL_URL=mysql://user@host/db cargo run --example mysql --features mysql`;
//! without `MYSQL_URL` it uses `mysql://root@127.0.0.1:3306/test`.

use sqlaio::Engine;

async fn run(url: &str) -> sqlaio::Result<()> {
    let engine = Engine::builder().url(url).build()?;
    let conn = engine.connect().await?;
    conn.execute("DROP TABLE IF EXISTS quickstart_users", ())
        .await?;
    conn.execute(
        "CREATE TABLE quickstart_users (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL)",
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
        "INSERT INTO quickstart_users (name) VALUES (?)",
        names.iter().map(|name| (*name,)),
    )
    .await?;

    let inserted = conn
        .execute(
            "INSERT INTO quickstart_users (name) VALUES (?)",
            ("Isaac Jaffe",),
        )
        .await?;
    println!(
        "Inserted Isaac Jaffe with id {:?}",
        inserted.last_insert_id()
    );
    drop(inserted);

    let mut result = conn
        .execute(
            "SELECT name FROM quickstart_users WHERE name LIKE ? ORDER BY id",
            ("D%",),
        )
        .await?;
    for row in result.fetchall().await? {
        let name: String = row.get("name")?;
        println!("Username: {name}");
    }
    drop(result);

    let tx = conn.begin().await?;
    let one: i64 = tx.scalar("SELECT 1", ()).await?;
    assert_eq!(one, 1);
    tx.commit().await?;

    conn.execute("DROP TABLE quickstart_users", ()).await?;
    conn.close().await?;
    engine.close().await?;
    Ok(())
}

fn main() -> sqlaio::Result<()> {
    let url = std::env::var("MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
    futures::executor::block_on(run(&url))
}
