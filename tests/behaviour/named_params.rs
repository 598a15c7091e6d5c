//! Portable `:name` placeholders and lists: the same statement text runs
//! unchanged on every backend. Rendering does not depend on the runtime:
//! the bodies run on one.

use sqlaio::{named_params, Connection, List, Result};

use crate::common::Ctx;

stamp! {
    runtimes: one, backends: all;
    one_statement_with_names_and_a_list_runs_on_every_database,
}

#[cfg(feature = "postgres")]
stamp! {
    runtimes: one, backends: [postgres];
    postgres_casts_and_dollar_quotes_around_names_are_left_alone,
}

/// A table of five people.
async fn people(conn: &Connection) -> Result<()> {
    conn.execute(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(40), kind VARCHAR(10))",
        (),
    )
    .await?;
    conn.execute_many(
        "INSERT INTO people (id, name, kind) VALUES (:id, :name, :kind)",
        [
            (1, "Dana", "staff"),
            (2, "Casey", "anchor"),
            (3, "Dan", "anchor"),
            (4, "Natalie", "staff"),
            (5, "Jeremy", "staff"),
        ]
        .map(|(id, name, kind)| named_params! { ":id": id, ":name": name, ":kind": kind }),
    )
    .await?;
    Ok(())
}

/// One text for every database: a list, a name used twice, and colons in
/// strings, identifiers and comments that are not placeholders.
const PORTABLE: &str = "SELECT id FROM people /* :not_a_placeholder */
    WHERE id IN (:ids) -- :nor_this
      AND (kind = :kind OR name = :kind)
      AND name <> ':also_not' AND CAST(:min AS INTEGER) <= id
    ORDER BY id";

async fn one_statement_with_names_and_a_list_runs_on_every_database(ctx: Ctx) -> Result<()> {
    let engine = ctx.builder().max_connections(1).build()?;
    let conn = engine.connect().await?;
    people(&conn).await?;

    let ids: Vec<(i64,)> = conn
        .fetch_all_as(
            PORTABLE,
            named_params! { ":ids": List::from(vec![1, 2, 4, 5]), ":kind": "staff", ":min": 2 },
        )
        .await?;
    assert_eq!(ids, [(4,), (5,)]);

    // An empty list matches no row; NOT IN an empty list matches every row.
    let none: Vec<(i64,)> = conn
        .fetch_all_as(
            "SELECT id FROM people WHERE id IN (:ids)",
            named_params! { ":ids": List::new(Vec::<i64>::new()) },
        )
        .await?;
    assert!(none.is_empty(), "{none:?}");
    let all: i64 = conn
        .scalar(
            "SELECT count(*) FROM people WHERE id NOT IN (:ids)",
            named_params! { ":ids": List::new(Vec::<i64>::new()) },
        )
        .await?;
    assert_eq!(all, 5);

    // A missing value and an extra one are named in the error.
    let err = conn
        .execute(
            "SELECT id FROM people WHERE id = :id",
            named_params! { ":other": 1 },
        )
        .await
        .map(drop)
        .unwrap_err();
    assert_eq!(err.kind(), sqlaio::ErrorKind::Parameter, "{err}");
    let text = err.to_string();
    assert!(text.contains(":other") || text.contains(":id"), "{text}");

    conn.close().await?;
    engine.close().await
}

#[cfg(feature = "postgres")]
async fn postgres_casts_and_dollar_quotes_around_names_are_left_alone(ctx: Ctx) -> Result<()> {
    let engine = ctx.engine();
    let (n, text): (i64, String) = engine
        .fetch_one_as(
            "SELECT :n::int8 + 1, $$ :not_a_name $$ || :t::text",
            named_params! { ":n": 41, ":t": "x" },
        )
        .await?;
    assert_eq!((n, text.as_str()), (42, " :not_a_name x"));
    engine.close().await
}
