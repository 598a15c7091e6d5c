//! Bad input, constraint violations with their error numbers, and a
//! deadlock that rolls the whole transaction back.

use super::*;

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

#[test]
fn bad_input_is_a_clear_error_and_the_connection_goes_on() {
    run(
        "bad_input_is_a_clear_error_and_the_connection_goes_on",
        |url| async move {
            let engine = Engine::builder().url(&url).max_connections(1).build()?;
            let conn = engine.connect().await?;
            let err = conn.execute("SELECT ? + ?", (1,)).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::ParameterCount {
                        expected: 2,
                        given: 1
                    }
                ),
                "{err}"
            );
            let err = conn
                .execute("SELECT :a", [(":b", Value::from(1))])
                .await
                .unwrap_err();
            // The placeholder without a value, or the value without one, is named.
            assert!(
                matches!(err, Error::ParameterName(ref n) if n == ":b")
                    || matches!(err, Error::ParameterMissing(ref n) if n == ":a"),
                "{err}"
            );
            let err = conn.execute("SELEKT 1", ()).await.unwrap_err();
            assert!(
                err.is_database() && err.to_string().contains("SQL syntax"),
                "{err}"
            );
            let err = conn.execute("  -- nothing\n ", ()).await.unwrap_err();
            assert!(err.to_string().contains("no statement"), "{err}");
            let err = conn
                .execute("SELECT * FROM no_such_table", ())
                .await
                .unwrap_err();
            assert!(err.to_string().contains("doesn't exist"), "{err}");
            // Scripts of several statements run through run_in_thread or as text.
            assert_eq!(conn.scalar::<i64>("SELECT 1", ()).await?, 1);
            let bad = Engine::builder()
                .url(url.replace("mysql://", "mysql://nobody:wrong@"))
                .build();
            if let Ok(bad) = bad {
                let err = bad.scalar::<i64>("SELECT 1", ()).await.unwrap_err();
                assert!(
                    !err.to_string().contains("wrong"),
                    "the password leaked: {err}"
                );
            }
            drop(conn);
            engine.close().await
        },
    );
}

#[test]
fn constraint_violations_are_classified_with_their_error_number() {
    run(
        "constraint_violations_are_classified_with_their_error_number",
        |url| async move {
            use sqlaio::ErrorKind;
            let engine = engine(&url)?;
            engine
                .execute("CREATE TABLE teams (id INT PRIMARY KEY) ENGINE=InnoDB", ())
                .await?;
            engine
                .execute(
                    "CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(64) NOT NULL, \
                     team INT, age INT, UNIQUE KEY email (email), \
                     CONSTRAINT users_team FOREIGN KEY (team) REFERENCES teams (id), \
                     CONSTRAINT adult CHECK (age >= 18)) ENGINE=InnoDB",
                    (),
                )
                .await?;
            engine
                .execute(
                    "INSERT INTO users (id, email) VALUES (1, 'a@example.com')",
                    (),
                )
                .await?;
            let fail = |sql: &'static str| {
                let engine = engine.clone();
                async move { engine.execute(sql, ()).await.map(drop).unwrap_err() }
            };
            let e = fail("INSERT INTO users (id, email) VALUES (2, 'a@example.com')").await;
            assert_eq!(
                (e.kind(), e.code()),
                (ErrorKind::UniqueViolation, Some("1062")),
                "{e}"
            );
            assert_eq!(e.constraint(), Some("email"), "{e}");
            let e =
                fail("INSERT INTO users (id, email, team) VALUES (3, 'b@example.com', 9)").await;
            assert_eq!(e.kind(), ErrorKind::ForeignKeyViolation, "{e}");
            assert_eq!(e.constraint(), Some("users_team"), "{e}");
            let e = fail("INSERT INTO users (id, email) VALUES (4, NULL)").await;
            assert_eq!(e.kind(), ErrorKind::NotNullViolation, "{e}");
            let e = fail("INSERT INTO users (id, email, age) VALUES (5, 'c@example.com', 3)").await;
            assert_eq!(e.kind(), ErrorKind::CheckViolation, "{e}");
            assert_eq!(e.constraint(), Some("adult"), "{e}");
            let e = fail("SELECT * FROM no_such_table").await;
            assert_eq!(
                (e.kind(), e.code()),
                (ErrorKind::Syntax, Some("1146")),
                "{e}"
            );
            engine.close().await
        },
    );
}

// ---------------------------------------------------------------------------
// Transactions as MySQL has them (implicit commits: the behavioural suite's
// ddl_is_transactional)
// ---------------------------------------------------------------------------

#[test]
fn a_deadlock_rolls_the_whole_transaction_back_and_says_so() {
    run(
        "a_deadlock_rolls_the_whole_transaction_back_and_says_so",
        |url| async move {
            let engine = engine(&url)?;
            engine
                .execute(
                    "CREATE TABLE acct (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
                    (),
                )
                .await?;
            engine
                .execute("INSERT INTO acct VALUES (1, 0), (2, 0)", ())
                .await?;
            let a = engine.connect().await?;
            let b = engine.connect().await?;
            let ta = a.begin().await?;
            let tb = b.begin().await?;
            ta.execute("INSERT INTO acct VALUES (3, 0)", ()).await?;
            ta.execute("UPDATE acct SET v = 1 WHERE id = 1", ()).await?;
            tb.execute("UPDATE acct SET v = 1 WHERE id = 2", ()).await?;
            let (ra, rb) = futures::join!(
                ta.execute("UPDATE acct SET v = 2 WHERE id = 2", ()),
                async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    tb.execute("UPDATE acct SET v = 2 WHERE id = 1", ()).await
                }
            );
            let (victim, winner) = match (ra, rb) {
                (Err(e), Ok(_)) => ((e, ta), tb),
                (Ok(_), Err(e)) => ((e, tb), ta),
                (ra, rb) => panic!(
                    "expected one deadlock victim: {:?} / {:?}",
                    ra.err(),
                    rb.err()
                ),
            };
            let (err, victim_tx) = victim;
            assert!(err.to_string().contains("Deadlock"), "{err}");
            assert_eq!(err.kind(), sqlaio::ErrorKind::Deadlock, "{err}");
            assert_eq!(err.code(), Some("1213"));
            assert!(err.is_retryable());
            assert!(
                err.to_string()
                    .contains("rolled the whole transaction back"),
                "{err}"
            );
            let again = victim_tx.execute("SELECT 1", ()).await.unwrap_err();
            assert!(matches!(again, Error::TransactionAborted), "{again}");
            victim_tx.rollback().await?;
            winner.commit().await?;
            engine.close().await
        },
    );
}
