//! Values in and out: parameters of every kind, and reading a row's
//! columns by index and by name into Rust types and `Value`.

use sqlaio::{params, Value};

use crate::common::{Ctx, Family};
use crate::support::*;

stamp! {
    runtimes: one, backends: all;
    parameters,
    row_get,
}

async fn parameters(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();

    // ()
    assert_eq!(conn.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
    // tuples of mixed types
    let joined: String = conn
        .scalar(
            concat(&ctx, &["$1", "'-'", "$2", "'-'", "$3"]),
            (1, "two", 3.5),
        )
        .await
        .unwrap();
    assert_eq!(joined, "1-two-3.5");
    let one: i64 = conn.scalar(echo(ctx.backend), (1_i64,)).await.unwrap();
    assert_eq!(one, 1);
    // Vec<Value>, &[Value], [Value; N] (one cast types both parameters on PostgreSQL)
    let values = vec![Value::Integer(6), Value::Integer(7)];
    let times = &ctx.sql(&format!("SELECT CAST($1 AS {}) * $2", int8(ctx.backend)));
    assert_eq!(conn.scalar::<i64>(times, values.clone()).await.unwrap(), 42);
    assert_eq!(conn.scalar::<i64>(times, &values[..]).await.unwrap(), 42);
    assert_eq!(
        conn.scalar::<i64>(
            ctx.sql(&format!("SELECT CAST($1 AS {}) - $2", int8(ctx.backend))),
            [Value::Integer(50), Value::Integer(8)]
        )
        .await
        .unwrap(),
        42
    );
    // params![]
    let joined: String = conn
        .scalar(concat(&ctx, &["$1", "$2", "$3"]), params![4, "x", 2.5])
        .await
        .unwrap();
    assert_eq!(joined, "4x2.5");
    assert_eq!(conn.scalar::<i64>("SELECT 3", params![]).await.unwrap(), 3);
    // None binds NULL, Some the value
    assert!(conn
        .scalar::<bool>(
            ctx.sql(&format!("SELECT CAST($1 AS {}) IS NULL", int8(ctx.backend))),
            (None::<i64>,)
        )
        .await
        .unwrap());
    assert!(!conn
        .scalar::<bool>(
            ctx.sql(&format!("SELECT CAST($1 AS {}) IS NULL", int8(ctx.backend))),
            (Some(5_i64),)
        )
        .await
        .unwrap());
    assert_eq!(
        conn.scalar::<Option<String>>(ctx.sql("SELECT $1"), (None::<String>,))
            .await
            .unwrap(),
        None
    );

    // Every kind round-trips through a table.
    conn.execute(
        format!(
            "CREATE TABLE kinds (i BIGINT, r DOUBLE PRECISION, t TEXT, b {}, f BOOLEAN, n TEXT)",
            ctx.blob_type()
        ),
        (),
    )
    .await
    .unwrap();
    conn.execute(
        ctx.sql("INSERT INTO kinds (i, r, t, b, f, n) VALUES ($1, $2, $3, $4, $5, $6)"),
        (
            -9_000_000_000_i64,
            0.25_f64,
            "Dan Rydell",
            vec![0_u8, 159, 146, 150],
            true,
            None::<String>,
        ),
    )
    .await
    .unwrap();
    let row = conn
        .execute("SELECT i, r, t, b, f, n FROM kinds", ())
        .await
        .unwrap()
        .first()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.get::<i64>("i").unwrap(), -9_000_000_000);
    assert_eq!(row.get::<f64>("r").unwrap(), 0.25);
    assert_eq!(row.get::<String>("t").unwrap(), "Dan Rydell");
    assert_eq!(row.get::<Vec<u8>>("b").unwrap(), [0, 159, 146, 150]);
    assert!(row.get::<bool>("f").unwrap());
    assert_eq!(row.get::<Option<String>>("n").unwrap(), None);

    if ctx.backend.is_sqlite() {
        // Named placeholders, in any order.
        let diff: i64 = conn
            .scalar("SELECT :a - :b", [(":a", 10), (":b", 2)])
            .await
            .unwrap();
        assert_eq!(diff, 8);
        let diff: i64 = conn
            .scalar("SELECT :a - :b", [(":b", 2), (":a", 10)])
            .await
            .unwrap();
        assert_eq!(diff, 8);
        let named: String = conn
            .scalar(
                "SELECT :first || ' ' || :last",
                vec![(":first", "Casey"), (":last", "McCall")],
            )
            .await
            .unwrap();
        assert_eq!(named, "Casey McCall");
        let null: Option<i64> = conn
            .scalar("SELECT :x", [(":x", None::<i64>)])
            .await
            .unwrap();
        assert_eq!(null, None);
    }
}

async fn row_get(ctx: Ctx) {
    let engine = ctx.engine();
    let conn = engine.connect().await.unwrap();
    conn.execute(
        format!(
            "CREATE TABLE kinds (amount INTEGER, ratio DOUBLE PRECISION, title TEXT, \
             payload {}, flag BOOLEAN, missing TEXT)",
            ctx.blob_type()
        ),
        (),
    )
    .await
    .unwrap();
    conn.execute(
        ctx.sql("INSERT INTO kinds VALUES ($1, $2, $3, $4, $5, $6)"),
        (
            1234,
            2.5,
            "Sports Night",
            vec![0_u8, 255, 16],
            true,
            None::<i64>,
        ),
    )
    .await
    .unwrap();
    let row = conn
        .execute(
            "SELECT amount, ratio, title, payload, flag, missing FROM kinds",
            (),
        )
        .await
        .unwrap()
        .first()
        .await
        .unwrap()
        .expect("a row");
    assert_eq!(row.len(), 6);
    assert!(!row.is_empty());
    assert_eq!(
        row.keys(),
        ["amount", "ratio", "title", "payload", "flag", "missing"]
    );

    // By index and by name.
    assert_eq!(row.get::<i64>(0).unwrap(), 1234);
    assert_eq!(row.get::<i64>("amount").unwrap(), 1234);
    assert_eq!(row.get::<i32>("amount").unwrap(), 1234);
    assert_eq!(row.get::<i16>(0).unwrap(), 1234);
    assert_eq!(row.get::<f64>(1).unwrap(), 2.5);
    assert_eq!(row.get::<f64>("ratio").unwrap(), 2.5);
    assert_eq!(row.get::<f32>("ratio").unwrap(), 2.5_f32);
    assert_eq!(row.get::<String>(2).unwrap(), "Sports Night");
    assert_eq!(row.get::<String>("title").unwrap(), "Sports Night");
    assert_eq!(row.get::<Vec<u8>>(3).unwrap(), [0, 255, 16]);
    assert_eq!(row.get::<Vec<u8>>("payload").unwrap(), [0, 255, 16]);
    assert!(row.get::<bool>(4).unwrap());
    assert!(row.get::<bool>("flag").unwrap());

    // Value, without conversion.
    assert_eq!(row.get::<Value>("amount").unwrap(), Value::Integer(1234));
    assert_eq!(row.get::<Value>("ratio").unwrap(), Value::Real(2.5));
    assert_eq!(
        row.get::<Value>("title").unwrap(),
        Value::Text("Sports Night".into())
    );
    assert_eq!(
        row.get::<Value>("payload").unwrap(),
        Value::Blob(vec![0, 255, 16])
    );
    assert_eq!(row.get::<Value>(5).unwrap(), Value::Null);
    assert!(row.get_value("missing").unwrap().is_null());
    assert_eq!(row.values().len(), 6);

    // Option<T>: NULL is None, a value is Some.
    assert_eq!(row.get::<Option<String>>("missing").unwrap(), None);
    assert_eq!(row.get::<Option<i64>>(5).unwrap(), None);
    assert_eq!(row.get::<Option<i64>>("amount").unwrap(), Some(1234));
    assert_eq!(
        row.get::<Option<String>>("title").unwrap().as_deref(),
        Some("Sports Night")
    );

    // Booleans written as false read back as false (MySQL's BOOLEAN is an
    // integer type it cannot cast to).
    let as_bool = match ctx.family() {
        Family::Sqlite | Family::Postgres => "SELECT CAST($1 AS BOOLEAN)",
        Family::Mysql => "SELECT $1",
    };
    let f: bool = conn.scalar(ctx.sql(as_bool), (false,)).await.unwrap();
    assert!(!f);
}

/// `SELECT` of `parts` joined as text (MySQL's `||` is a logical OR).
fn concat(ctx: &Ctx, parts: &[&str]) -> String {
    match ctx.family() {
        Family::Sqlite | Family::Postgres => ctx.sql(&format!("SELECT {}", parts.join(" || "))),
        Family::Mysql => ctx.sql(&format!("SELECT CONCAT({})", parts.join(", "))),
    }
}
