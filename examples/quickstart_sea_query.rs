//! The quickstart with statements built by `sea_query` instead of SQL text:
//! the engine renders each one in its database's dialect, so the same code
//! runs on SQLite and on PostgreSQL.
//!
//! Run it with `cargo run --example quickstart_sea_query --features sea-query`
//! for an in-memory SQLite database, or give a URL as the first argument (or
//! in `DATABASE_URL`), e.g. `postgres://user@host:5432/db` with the
//! `postgres` feature also enabled.

use sqlaio::sea_query::{Alias, ColumnDef, Expr, Order, Query, Table};
use sqlaio::Engine;

/// Runs the quickstart on `engine` in a table named `table`, and returns
/// the lines it has to say.
pub async fn quickstart(engine: &Engine, table: &str) -> sqlaio::Result<Vec<String>> {
    let users = Alias::new(table);
    let id = Alias::new("id");
    let name = Alias::new("name");
    let mut lines = Vec::new();

    let conn = engine.connect().await?;
    // Start from a clean slate, in case a previous run stopped half-way.
    conn.execute(Table::drop().table(users.clone()).if_exists(), ())
        .await?;
    conn.execute(
        Table::create()
            .table(users.clone())
            .col(
                ColumnDef::new(id.clone())
                    .big_integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(ColumnDef::new(name.clone()).text().not_null()),
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
    let mut insert = Query::insert();
    insert.into_table(users.clone()).columns([name.clone()]);
    for n in names {
        insert.values_panic([n.into()]);
    }
    let inserted = conn.execute(&insert, ()).await?.rowcount();
    lines.push(format!("Inserted {inserted} users"));

    for row in conn
        .fetch_all(
            Query::select()
                .column(name.clone())
                .from(users.clone())
                .and_where(Expr::col(name.clone()).like("D%"))
                .order_by(id, Order::Asc),
            (),
        )
        .await?
    {
        let name: String = row.get("name")?;
        lines.push(format!("Username: {name}"));
    }

    let tx = conn.begin().await?;
    let one: i64 = tx.scalar(Query::select().expr(Expr::cust("1")), ()).await?;
    lines.push(format!("SELECT 1 in a transaction: {one}"));
    tx.commit().await?;

    conn.execute(Table::drop().table(users), ()).await?;
    conn.close().await?;
    Ok(lines)
}

fn main() -> sqlaio::Result<()> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .unwrap_or_else(|| "sqlite::memory:".to_owned());
    let engine = Engine::builder().url(&url).build()?;
    futures::executor::block_on(async {
        let lines = quickstart(&engine, "users").await;
        engine.close().await?;
        for line in lines? {
            println!("{line}");
        }
        Ok(())
    })
}
