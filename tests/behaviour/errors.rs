//! Errors: what bad SQL, bad parameters and undecodable values report
//! (`Display`, `source`, the predicates), and that the connection goes on.

use std::error::Error as _;

use sqlaio::Error;

#[cfg(feature = "postgres")]
use crate::common::pg::unique;
use crate::common::{Ctx, Family};
use crate::support::*;

stamp! {
    runtimes: one, backends: all;
    row_get_errors,
    bad_sql,
    bad_parameters,
}

// PostgreSQL's own messages and SQLSTATE behaviour.
#[cfg(feature = "postgres")]
stamp! {
    runtimes: one, backends: [postgres];
    errors_are_clear_and_the_connection_survives_them,
}

async fn row_get_errors(ctx: Ctx) {
    let engine = ctx.engine();
    let row = engine
        .execute(
            "SELECT 40000 AS big, 'Jeremy' AS title, NULL AS missing, 7 AS flag",
            (),
        )
        .await
        .unwrap()
        .first()
        .await
        .unwrap()
        .expect("a row");

    // The wrong type: names the column and both types.
    let err = row.get::<i64>("title").unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("title") && text.contains("integer") && text.contains("text"),
        "{text}"
    );
    assert!(err.source().is_some());
    let err = row.get::<String>(0).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("big") && text.contains("text") && text.contains("integer"),
        "{text}"
    );
    let err = row.get::<Vec<u8>>("big").unwrap_err();
    assert!(err.to_string().contains("big"), "{err}");

    // Narrowing out of range: no silent wrap.
    let err = row.get::<i16>("big").unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("big") && text.contains("40000") && text.contains("i16"),
        "{text}"
    );
    assert_eq!(row.get::<i32>("big").unwrap(), 40000);
    let err = row.get::<bool>("flag").unwrap_err();
    assert!(err.to_string().contains("flag"), "{err}");

    // NULL into a plain type.
    let err = row.get::<i64>("missing").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("missing") && text.contains("null"), "{text}");

    // No such column.
    let err = row.get::<i64>("no_such_column").unwrap_err();
    assert!(
        matches!(err, Error::ColumnName(ref name) if name == "no_such_column"),
        "{err:?}"
    );
    assert!(err.to_string().contains("no_such_column"), "{err}");
    let err = row.get::<i64>(99).unwrap_err();
    assert!(
        matches!(err, Error::ColumnIndex { index: 99, len: 4 }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("99") && text.contains('4'), "{text}");
    assert!(row.get_value(4).is_err());
}

async fn bad_sql(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    let mut check = 0_i64;
    let mut still_works = || {
        check += 1;
        let n = check;
        let (conn, backend) = (&conn, ctx.backend);
        async move {
            assert_eq!(conn.scalar::<i64>(echo(backend), (n,)).await.unwrap(), n);
            assert!(!conn.in_transaction());
        }
    };

    let err = conn.execute("SELEC 1", ()).await.unwrap_err();
    assert!(err.is_database(), "{err:?}");
    assert!(!err.is_closed());
    assert!(err.source().is_some(), "the driver's error is kept");
    let text = err.to_string();
    // MySQL: "You have an error in your SQL syntax".
    assert!(
        (text.contains("syntax error") || text.contains("SQL syntax")) && text.contains("SELEC"),
        "{text}"
    );
    still_works().await;

    let err = conn
        .execute("SELECT * FROM no_such_table", ())
        .await
        .unwrap_err();
    assert!(err.is_database(), "{err:?}");
    assert!(err.to_string().contains("no_such_table"), "{err}");
    still_works().await;

    for empty in ["", "   ", "-- only a comment\n", ";"] {
        let Err(err) = conn.execute(empty, ()).await else {
            panic!("{empty:?} was run as a statement");
        };
        assert!(!err.is_closed(), "{empty:?}: {err:?}");
        assert!(err.to_string().contains("statement"), "{empty:?}: {err}");
        still_works().await;
    }

    let err = conn.execute("SELECT 1; SELECT 2", ()).await.unwrap_err();
    assert!(!err.is_closed(), "{err:?}");
    assert!(err.to_string().contains("statement"), "{err}");
    still_works().await;
    // Nothing of a multi-statement string runs.
    let err = conn
        .execute("CREATE TABLE a (x INTEGER); CREATE TABLE b (x INTEGER)", ())
        .await
        .unwrap_err();
    assert!(!err.is_closed(), "{err:?}");
    assert!(!conn.has_table("a").await.unwrap());
    assert!(!conn.has_table("b").await.unwrap());
    still_works().await;

    // A constraint violation is the database's error.
    create_users(&ctx, &conn).await;
    conn.execute("INSERT INTO users (id, name) VALUES (1, 'x')", ())
        .await
        .unwrap();
    let err = conn
        .execute("INSERT INTO users (id, name) VALUES (1, 'y')", ())
        .await
        .unwrap_err();
    assert!(err.is_database(), "{err:?}");
    let err = conn
        .execute("INSERT INTO users (id, name) VALUES (2, NULL)", ())
        .await
        .unwrap_err();
    assert!(err.is_database(), "{err:?}");
    still_works().await;

    match ctx.family() {
        Family::Sqlite | Family::Mysql => {
            // In SQLite and MySQL a failed statement does not end the
            // transaction around it.
            let tx = conn.begin().await.unwrap();
            tx.execute("INSERT INTO users (id, name) VALUES (2, 'z')", ())
                .await
                .unwrap();
            assert!(tx.execute("SELEC", ()).await.unwrap_err().is_database());
            assert!(tx.is_active());
            tx.commit().await.unwrap();
            assert_eq!(ids(&conn, "users").await, [1, 2]);
        }
        Family::Postgres => {
            // In PostgreSQL it aborts the transaction: later statements are
            // refused until it is rolled back, and the commit cannot succeed.
            let tx = conn.begin().await.unwrap();
            tx.execute("INSERT INTO users (id, name) VALUES (2, 'z')", ())
                .await
                .unwrap();
            assert!(tx.execute("SELEC", ()).await.unwrap_err().is_database());
            let err = tx
                .execute("INSERT INTO users (id, name) VALUES (3, 'w')", ())
                .await
                .unwrap_err();
            assert!(is_aborted(&err), "{err:?}");
            let err = tx.commit().await.unwrap_err();
            assert!(is_aborted(&err), "{err:?}");
            assert!(!conn.in_transaction());
            assert_eq!(ids(&conn, "users").await, [1]);
            conn.execute("INSERT INTO users (id, name) VALUES (2, 'z')", ())
                .await
                .unwrap();
        }
    }
    // On both, a savepoint confines the failure: roll back to it and go on.
    let tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO users (id, name) VALUES (3, 'w')", ())
        .await
        .unwrap();
    let sp = tx.begin_nested().await.unwrap();
    assert!(sp.execute("SELEC", ()).await.unwrap_err().is_database());
    sp.rollback().await.unwrap();
    tx.execute("INSERT INTO users (id, name) VALUES (4, 'v')", ())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&conn, "users").await, [1, 2, 3, 4]);
    still_works().await;
}

async fn bad_parameters(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();

    let err = conn
        .execute(ctx.sql("SELECT $1, $2"), (1,))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ParameterCount {
                expected: 2,
                given: 1
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains('2') && text.contains('1'), "{text}");
    let err = conn
        .execute(ctx.sql("SELECT $1, $2"), (1, 2, 3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ParameterCount {
                expected: 2,
                given: 3
            }
        ),
        "{err:?}"
    );
    let err = conn.execute(ctx.sql("SELECT $1"), ()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ParameterCount {
                expected: 1,
                given: 0
            }
        ),
        "{err:?}"
    );
    let err = conn.execute("SELECT 1", (1,)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ParameterCount {
                expected: 0,
                given: 1
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        conn.scalar::<i64>(echo(ctx.backend), (5,)).await.unwrap(),
        5
    );
    let err = engine
        .scalar::<i64>(ctx.sql("SELECT $1"), ())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ParameterCount { .. }), "{err:?}");

    if ctx.backend.is_sqlite() {
        let err = conn.execute("SELECT :a", [(":b", 1)]).await.unwrap_err();
        assert!(
            matches!(err, Error::ParameterName(ref n) if n == ":b"),
            "{err:?}"
        );
        assert!(err.to_string().contains(":b"), "{err}");
        let err = conn
            .execute("SELECT :a, :b", [(":a", 1)])
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::ParameterCount {
                    expected: 2,
                    given: 1
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            conn.scalar::<i64>("SELECT :a", [(":a", 6)]).await.unwrap(),
            6
        );
    }
    assert!(!conn.in_transaction());
    assert_eq!(
        conn.scalar::<i64>(echo(ctx.backend), (7,)).await.unwrap(),
        7
    );
}

#[cfg(feature = "postgres")]
async fn errors_are_clear_and_the_connection_survives_them(ctx: Ctx) -> sqlaio::Result<()> {
    let t = unique("errs");
    let engine = ctx.builder().max_connections(4).build()?;
    let conn = engine.connect().await?;
    conn.execute(format!("CREATE TABLE {t} (id int4 PRIMARY KEY)"), ())
        .await?;

    let e = conn.execute("SELEC 1", ()).await.unwrap_err();
    assert!(e.is_database(), "{e:?}");
    assert!(
        e.to_string().contains("syntax error at or near \"SELEC\""),
        "{e}"
    );
    assert_eq!(conn.scalar::<i32>("SELECT 1", ()).await?, 1);

    let e = conn
        .execute("SELECT $1::int4 + $2::int4", (1,))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ParameterCount {
                expected: 2,
                given: 1
            }
        ),
        "{e:?}"
    );
    let e = conn
        .execute("SELECT $1::int4", (1, 2, 3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ParameterCount {
                expected: 1,
                given: 3
            }
        ),
        "{e:?}"
    );
    let e = conn.execute("SELECT 1", (1,)).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::ParameterCount {
                expected: 0,
                given: 1
            }
        ),
        "{e:?}"
    );
    assert_eq!(conn.scalar::<i32>("SELECT 2", ()).await?, 2);

    let e = conn
        .execute("SELECT $1::text", [(":name", "Dana")])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("named"), "{e}");
    assert!(e.to_string().contains("positional"), "{e}");
    assert_eq!(conn.scalar::<i32>("SELECT 3", ()).await?, 3);

    let e = conn.execute("SELECT 1; SELECT 2", ()).await.unwrap_err();
    assert!(e.is_database(), "{e:?}");
    assert_eq!(conn.scalar::<i32>("SELECT 4", ()).await?, 4);

    let e = conn
        .execute(format!("SELECT nope FROM {t}"), ())
        .await
        .unwrap_err();
    assert!(e.is_database(), "{e:?}");
    assert!(e.to_string().contains("nope"), "{e}");

    // A constraint violation carries the server's message and detail.
    conn.execute(format!("INSERT INTO {t} VALUES (1)"), ())
        .await?;
    let e = conn
        .execute(format!("INSERT INTO {t} VALUES ($1)"), (1,))
        .await
        .unwrap_err();
    assert!(e.is_database(), "{e:?}");
    assert!(e.to_string().contains("duplicate key"), "{e}");

    // An error inside a transaction, then a rollback.
    let tx = conn.begin().await?;
    tx.execute(format!("INSERT INTO {t} VALUES (2)"), ())
        .await?;
    let e = tx.execute("SELECT 1 / 0", ()).await.unwrap_err();
    assert!(e.is_database(), "{e:?}");
    assert!(e.to_string().contains("division by zero"), "{e}");
    // The failed transaction refuses statements until rolled back.
    let e = tx.execute("SELECT 1", ()).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("aborted") || text.contains("rolled back"),
        "{text}"
    );
    tx.rollback().await?;
    assert!(!conn.in_transaction());
    assert_eq!(conn.scalar::<i32>("SELECT 5", ()).await?, 5);
    let ids: i64 = conn.scalar(format!("SELECT count(*) FROM {t}"), ()).await?;
    assert_eq!(ids, 1, "the rolled back insert is gone");

    // An error inside a transaction that is then dropped.
    {
        let tx = conn.begin().await?;
        tx.execute(format!("INSERT INTO {t} VALUES (3)"), ())
            .await?;
        assert!(tx.execute("SELEC", ()).await.is_err());
    }
    assert_eq!(conn.scalar::<i32>("SELECT 6", ()).await?, 6);
    assert!(!conn.in_transaction());
    let ids: i64 = conn.scalar(format!("SELECT count(*) FROM {t}"), ()).await?;
    assert_eq!(ids, 1);

    // A savepoint that failed, rolled back: the outer transaction goes on.
    let tx = conn.begin().await?;
    tx.execute(format!("INSERT INTO {t} VALUES (4)"), ())
        .await?;
    let nested = tx.begin_nested().await?;
    assert!(nested
        .execute(format!("INSERT INTO {t} VALUES (1)"), ())
        .await
        .is_err());
    nested.rollback().await?;
    tx.execute(format!("INSERT INTO {t} VALUES (5)"), ())
        .await?;
    tx.commit().await?;
    let ids: i64 = conn.scalar(format!("SELECT count(*) FROM {t}"), ()).await?;
    assert_eq!(ids, 3);
    conn.close().await?;
    engine.close().await
}
