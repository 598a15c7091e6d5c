//! What the API does only on MySQL, MariaDB URLs, statements the server
//! cannot prepare, and sea-query statements MySQL cannot express.

use super::*;

// ---------------------------------------------------------------------------
// The API on a real server
// ---------------------------------------------------------------------------

#[test]
fn what_only_mysql_does_in_the_api() {
    run("what_only_mysql_does_in_the_api", |url| async move {
        let engine = engine(&url)?;
        assert_eq!(engine.dialect(), sqlaio::Dialect::MySql);
        engine
            .execute(
                "CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL, score INT)",
                (),
            )
            .await?;
        let conn = engine.connect().await?;
        // `:name` placeholders go to the server as they are (the crate binds them by name).
        let named = conn
            .execute(
                "INSERT INTO users (name, score) VALUES (:name, :score)",
                [
                    (":name", Value::from("Casey McCall")),
                    (":score", Value::from(20)),
                ],
            )
            .await?;
        assert_eq!(named.last_insert_id(), Some(1));
        drop(named);
        conn.execute_many(
            "INSERT INTO users (name, score) VALUES (?, ?)",
            vec![("Isaac Jaffe", 30), ("Natalie Hurley", 40)],
        )
        .await?;

        // An UPDATE reports the rows it matched, even those it left as they
        // were (CLIENT_FOUND_ROWS), as on SQLite and PostgreSQL.
        let same = conn
            .execute("UPDATE users SET score = score WHERE score >= ?", (30,))
            .await?;
        assert_eq!(same.rowcount(), 2);
        drop(same);

        // The escape hatch gets the crate's own connection.
        let via_crate: i64 = conn
            .run_in_thread(|raw: &mut sqlaio::mysql::Conn| {
                let n: Option<i64> = raw.query_first("SELECT COUNT(*) FROM users")?;
                Ok::<_, Error>(n.unwrap_or(0))
            })
            .await?;
        assert_eq!(via_crate, 3);

        // Table names: the current database's, compared exactly (as
        // lower_case_table_names=0, the default on Linux, has them).
        conn.execute("CREATE TABLE Mixed (id INT)", ()).await?;
        assert_eq!(conn.table_names().await?, ["Mixed", "users"]);
        assert!(engine.has_table("Mixed").await?);
        assert!(!engine.has_table("mixed").await?);
        conn.close().await?;
        engine.close().await
    });
}

#[test]
fn a_mariadb_url_is_a_mysql_url() {
    run("a_mariadb_url_is_a_mysql_url", |url| async move {
        let url = url.replacen("mysql://", "mariadb://", 1);
        let engine = engine(&url)?;
        assert_eq!(engine.scalar::<i64>("SELECT 40 + ?", (2,)).await?, 42);
        engine.close().await
    });
}

#[test]
fn statements_that_cannot_be_prepared_run_as_text() {
    run(
        "statements_that_cannot_be_prepared_run_as_text",
        |url| async move {
            let engine = engine(&url)?;
            let conn = engine.connect().await?;
            // SQL-level PREPARE and EXECUTE are not in the prepared-statement protocol.
            conn.execute(
                "PREPARE stmt FROM 'SELECT 40 + 2 AS answer, NOW() AS t'",
                (),
            )
            .await?;
            let row = conn
                .execute("EXECUTE stmt", ())
                .await?
                .first()
                .await?
                .expect("a row");
            assert_eq!(row.keys(), ["answer", "t"]);
            assert_eq!(row.get::<i64>("answer")?, 42);
            let err = conn.execute("EXECUTE stmt", (1,)).await.unwrap_err();
            assert!(matches!(err, Error::Parameter(_)), "{err}");
            conn.execute("DEALLOCATE PREPARE stmt", ()).await?;
            drop(conn);
            engine.close().await
        },
    );
}

// ---------------------------------------------------------------------------
// sea-query
// ---------------------------------------------------------------------------

#[cfg(feature = "sea-query")]
#[test]
fn a_sea_query_returning_the_mysql_builder_would_drop_is_refused() {
    run(
        "a_sea_query_returning_the_mysql_builder_would_drop_is_refused",
        |url| async move {
            use sqlaio::sea_query::{Alias, Query};
            let engine = engine(&url)?;
            engine
                .execute(
                    "CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50))",
                    (),
                )
                .await?;
            let insert = |returning: bool| {
                let mut insert = Query::insert()
                    .into_table(Alias::new("users"))
                    .columns([Alias::new("name")])
                    .values_panic(["Dana Whitaker".into()])
                    .to_owned();
                if returning {
                    insert.returning_col(Alias::new("id"));
                }
                insert
            };
            let err = engine.execute(insert(true), ()).await.unwrap_err();
            assert!(matches!(err, Error::Statement(_)), "{err:?}");
            assert!(err.to_string().contains("RETURNING"), "{err}");
            // Refused before the database: nothing was inserted.
            assert_eq!(
                engine
                    .scalar::<i64>("SELECT COUNT(*) FROM users", ())
                    .await?,
                0
            );
            // Without RETURNING it runs, and the id comes from the OK packet.
            let done = engine.execute(insert(false), ()).await?;
            assert_eq!(done.last_insert_id(), Some(1));
            drop(done);
            // MariaDB's own RETURNING, written as SQL, returns the rows.
            let id: i64 = engine
                .scalar(
                    "INSERT INTO users (name) VALUES (?) RETURNING id",
                    ("Casey McCall",),
                )
                .await?;
            assert_eq!(id, 2);
            engine.close().await
        },
    );
}
