//! Portable `:name` placeholders and lists: the same statement text runs
//! unchanged on SQLite, PostgreSQL and MariaDB (each server's part is
//! skipped with a notice when it is not there, and fails under `CI=true`).

use sqlaio::{named_params, Connection, Engine, List, Result};

/// The databases this run can reach, by name and URL.
fn backends() -> Vec<(&'static str, String)> {
    let mut found = vec![("sqlite", "sqlite::memory:".to_owned())];
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    for (name, var, default, feature) in [
        (
            "postgres",
            "DATABASE_URL",
            "postgres://root@127.0.0.1:5432/test",
            cfg!(feature = "postgres"),
        ),
        (
            "mysql",
            "MYSQL_URL",
            "mysql://root@127.0.0.1:3306/test",
            cfg!(feature = "mysql"),
        ),
    ] {
        if !feature {
            continue;
        }
        let url = std::env::var(var)
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| default.to_owned());
        let reachable = futures::executor::block_on(async {
            let engine = Engine::builder().url(&url).build()?;
            let answer = engine.scalar::<i64>("SELECT 1", ()).await;
            engine.close().await?;
            answer
        });
        match reachable {
            Ok(_) => found.push((name, url)),
            Err(e) if ci => panic!("no {name} server under CI=true: {e}"),
            Err(e) => eprintln!("named_params: {name} skipped: {e}"),
        }
    }
    found
}

/// A table of five people on a connection of its own (temporary where the
/// database has them, so that parallel runs do not meet).
async fn people(conn: &Connection, backend: &str) -> Result<()> {
    let create = if backend == "sqlite" {
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, kind TEXT)"
    } else {
        "CREATE TEMPORARY TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(40), kind VARCHAR(10))"
    };
    conn.execute(create, ()).await?;
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

#[test]
fn one_statement_with_names_and_a_list_runs_on_every_database() {
    for (backend, url) in backends() {
        futures::executor::block_on(async {
            let engine = Engine::builder().url(&url).max_connections(1).build()?;
            let conn = engine.connect().await?;
            people(&conn, backend).await?;

            let ids: Vec<(i64,)> = conn
                .fetch_all_as(
                    PORTABLE,
                    named_params! { ":ids": List::from(vec![1, 2, 4, 5]), ":kind": "staff", ":min": 2 },
                )
                .await?;
            assert_eq!(ids, [(4,), (5,)], "{backend}");

            // An empty list matches no row; NOT IN an empty list matches every row.
            let none: Vec<(i64,)> = conn
                .fetch_all_as(
                    "SELECT id FROM people WHERE id IN (:ids)",
                    named_params! { ":ids": List::new(Vec::<i64>::new()) },
                )
                .await?;
            assert!(none.is_empty(), "{backend}: {none:?}");
            let all: i64 = conn
                .scalar(
                    "SELECT count(*) FROM people WHERE id NOT IN (:ids)",
                    named_params! { ":ids": List::new(Vec::<i64>::new()) },
                )
                .await?;
            assert_eq!(all, 5, "{backend}");

            // A missing value and an extra one are named in the error.
            let err = conn
                .execute("SELECT id FROM people WHERE id = :id", named_params! { ":other": 1 })
                .await
                .map(drop)
                .unwrap_err();
            assert_eq!(err.kind(), sqlaio::ErrorKind::Parameter, "{backend}: {err}");
            let text = err.to_string();
            assert!(text.contains(":other") || text.contains(":id"), "{backend}: {text}");

            conn.close().await?;
            engine.close().await
        })
        .unwrap_or_else(|e| panic!("{backend}: {e}"));
    }
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_casts_and_dollar_quotes_around_names_are_left_alone() {
    let Some((_, url)) = backends().into_iter().find(|(b, _)| *b == "postgres") else {
        return;
    };
    futures::executor::block_on(async {
        let engine = Engine::builder().url(&url).build()?;
        let (n, text): (i64, String) = engine
            .fetch_one_as(
                "SELECT :n::int8 + 1, $$ :not_a_name $$ || :t::text",
                named_params! { ":n": 41, ":t": "x" },
            )
            .await?;
        assert_eq!((n, text.as_str()), (42, " :not_a_name x"));
        engine.close().await
    })
    .unwrap();
}
