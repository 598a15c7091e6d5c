//! Statements built with sea-query: the sea-query quickstart gives the
//! same output on every backend, and every value the builder produces comes
//! back from each database as it went in. Rendering does not depend on the
//! runtime: the bodies run on one.

#[allow(dead_code)]
#[path = "../../examples/quickstart_sea_query.rs"]
mod example;

use sqlaio::sea_query::{
    self as sq, Alias, ColumnDef, Expr, Order, Query, SimpleExpr, Table, TableCreateStatement,
};
#[cfg(feature = "sqlite")]
use sqlaio::Error;
use sqlaio::{Dialect, Engine, Row};

use crate::common::Ctx;

stamp! {
    runtimes: one, backends: all;
    quickstart,
    values_round_trip,
}

stamp! {
    runtimes: one, backends: [memory];
    an_unsigned_integer_past_i64_is_refused_before_the_database,
    a_statement_with_its_own_values_takes_no_other_parameters,
    unrenderable_statements_are_errors,
}

const EXPECTED: [&str; 4] = [
    "Inserted 5 users",
    "Username: Dan Rydell",
    "Username: Dana Whitaker",
    "SELECT 1 in a transaction: 1",
];

/// The example's quickstart prints the same lines on every backend.
async fn quickstart(ctx: Ctx) {
    let engine = ctx.engine();
    let lines = example::quickstart(&engine, "sea_quickstart").await;
    engine.close().await.expect("engine closes");
    let lines = lines.unwrap_or_else(|e| panic!("the quickstart failed on {}: {e}", engine.url()));
    assert_eq!(lines, EXPECTED);
}

/// Checks the value read back from a column.
type Check = Box<dyn Fn(&Row, &str)>;

/// One column of the round-trip table: its type, a value and a NULL of the
/// value's type, and how to check the value read back.
struct Case {
    column: &'static str,
    def: fn(&mut ColumnDef, Dialect) -> &mut ColumnDef,
    value: sq::Value,
    null: sq::Value,
    check: Check,
}

macro_rules! case {
    ($column:literal, $def:expr, $value:expr, $null:ty => $t:ty) => {{
        let value: $t = $value;
        let expected = value.clone();
        Case {
            column: $column,
            def: $def,
            value: sq::Value::from(value),
            null: sq::Value::from(None::<$null>),
            check: Box::new(move |row: &Row, column: &str| {
                let got: $t = row
                    .get(column)
                    .unwrap_or_else(|e| panic!("column {column}: {e}"));
                assert_eq!(got, expected, "column {column}");
            }),
        }
    }};
}

fn cases() -> Vec<Case> {
    #[allow(unused_mut)]
    let mut cases = vec![
        case!("b", |c, _| c.boolean(), true, bool => bool),
        case!("i8", |c, _| c.small_integer(), i8::MIN, i8 => i8),
        case!("i16", |c, _| c.small_integer(), i16::MIN, i16 => i16),
        case!("i32", |c, _| c.integer(), i32::MIN, i32 => i32),
        case!("i64", |c, _| c.big_integer(), i64::MIN, i64 => i64),
        case!("u8", |c, _| c.small_integer(), u8::MAX, u8 => u8),
        case!("u16", |c, _| c.integer(), u16::MAX, u16 => u16),
        case!("u32", |c, _| c.big_integer(), u32::MAX, u32 => u32),
        case!("u64", |c, _| c.big_integer(), i64::MAX as u64, u64 => u64),
        case!("f32", |c, _| c.float(), 1.5f32, f32 => f32),
        case!("f64", |c, _| c.double(), -2.125e-3, f64 => f64),
        case!("s", |c, _| c.text(), "Natalie Hurley".to_owned(), String => String),
        case!("bytes", |c, _| c.blob(), vec![0u8, 1, 254, 255], Vec<u8> => Vec<u8>),
    ];
    // A char goes in as one-character text.
    cases.push(Case {
        column: "ch",
        def: |c, _| c.char_len(1),
        value: sq::Value::from('é'),
        null: sq::Value::from(None::<char>),
        check: Box::new(|row, column| assert_eq!(row.get::<String>(column).unwrap(), "é")),
    });
    #[cfg(feature = "chrono")]
    {
        use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
        let at = NaiveDate::from_ymd_opt(2024, 2, 29)
            .unwrap()
            .and_hms_micro_opt(23, 59, 58, 123_456)
            .unwrap();
        // MySQL keeps whole seconds unless a column asks for microseconds.
        cases.push(case!(
            "ts",
            |c, dialect| match dialect {
                Dialect::MySql => c.custom(Alias::new("DATETIME(6)")),
                _ => c.date_time(),
            },
            at,
            NaiveDateTime => NaiveDateTime
        ));
        cases.push(case!(
            "tstz",
            |c, dialect| match dialect {
                Dialect::MySql => c.custom(Alias::new("TIMESTAMP(6) NULL")),
                _ => c.timestamp_with_time_zone(),
            },
            Utc.from_utc_datetime(&at),
            DateTime<Utc> => DateTime<Utc>
        ));
        cases.push(case!("d", |c, _| c.date(), at.date(), NaiveDate => NaiveDate));
        cases.push(case!(
            "t",
            |c, dialect| match dialect {
                Dialect::MySql => c.custom(Alias::new("TIME(6)")),
                _ => c.time(),
            },
            at.time(),
            NaiveTime => NaiveTime
        ));
    }
    #[cfg(feature = "uuid")]
    cases.push(case!(
        "id_uuid",
        // sqlaio sends a Uuid to MySQL as its hyphenated text, which does
        // not fit sea-query's MySQL `uuid()` column, BINARY(16).
        |c, dialect| match dialect {
            Dialect::MySql => c.char_len(36),
            _ => c.uuid(),
        },
        uuid::Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8),
        uuid::Uuid => uuid::Uuid
    ));
    #[cfg(feature = "json")]
    cases.push(case!(
        "doc",
        |c, _| c.json_binary(),
        serde_json::json!({"name": "Casey McCall", "shows": [1, 2]}),
        serde_json::Value => serde_json::Value
    ));
    #[cfg(feature = "decimal")]
    cases.push(case!(
        "amount",
        // SQLite would give a `decimal` column REAL affinity; keep the digits as text.
        |c, dialect| match dialect {
            Dialect::Postgres | Dialect::MySql => c.decimal_len(20, 4),
            _ => c.custom(Alias::new("decimal_text")),
        },
        "12345678901234.5678".parse::<rust_decimal::Decimal>().unwrap(),
        rust_decimal::Decimal => rust_decimal::Decimal
    ));
    cases
}

/// Writes one row of values and one of NULLs through sea-query and reads them back.
async fn round_trip(engine: Engine, table: &str) {
    let dialect = engine.dialect();
    let cases = cases();
    let t = Alias::new(table);
    let conn = engine.connect().await.expect("a connection");
    conn.execute(Table::drop().table(t.clone()).if_exists(), ())
        .await
        .unwrap();
    let mut create: TableCreateStatement = Table::create();
    create.table(t.clone()).col(
        ColumnDef::new(Alias::new("n"))
            .integer()
            .not_null()
            .primary_key(),
    );
    for case in &cases {
        let mut def = ColumnDef::new(Alias::new(case.column));
        (case.def)(&mut def, dialect);
        create.col(&mut def);
    }
    conn.execute(&create, ()).await.unwrap();

    let mut insert = Query::insert();
    insert.into_table(t.clone()).columns(
        std::iter::once("n")
            .chain(cases.iter().map(|c| c.column))
            .map(Alias::new),
    );
    let row = |n: i32, pick: fn(&Case) -> &sq::Value| {
        std::iter::once(SimpleExpr::from(n))
            .chain(cases.iter().map(|c| SimpleExpr::Value(pick(c).clone())))
            .collect::<Vec<_>>()
    };
    insert.values_panic(row(1, |c| &c.value));
    insert.values_panic(row(2, |c| &c.null));
    let written = conn.execute(&insert, ()).await.unwrap().rowcount();
    assert_eq!(written, 2);

    let rows = conn
        .execute(
            Query::select()
                .columns(cases.iter().map(|c| Alias::new(c.column)))
                .from(t.clone())
                .order_by(Alias::new("n"), Order::Asc),
            (),
        )
        .await
        .unwrap()
        .fetchall()
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for case in &cases {
        (case.check)(&rows[0], case.column);
        assert!(
            rows[1].get_value(case.column).unwrap().is_null(),
            "column {} should be NULL on {dialect:?}",
            case.column
        );
    }

    // Values in WHERE bind as parameters too.
    let found: Option<i64> = conn
        .scalar(
            Query::select()
                .expr(Expr::col(Alias::new("i64")))
                .from(t.clone())
                .and_where(Expr::col(Alias::new("s")).eq("Natalie Hurley"))
                .and_where(Expr::col(Alias::new("b")).eq(true)),
            (),
        )
        .await
        .unwrap();
    assert_eq!(found, Some(i64::MIN));

    conn.execute(Table::drop().table(t), ()).await.unwrap();
    conn.close().await.unwrap();
    engine.close().await.unwrap();
}

/// Every value the builder produces comes back as it went in, and NULLs of
/// each type come back as NULL.
async fn values_round_trip(ctx: Ctx) {
    round_trip(ctx.engine(), "sea_round_trip").await;
}

#[cfg(feature = "sqlite")]
async fn an_unsigned_integer_past_i64_is_refused_before_the_database(ctx: Ctx) {
    let engine = ctx.engine();
    let err = engine
        .execute(Query::select().expr(Expr::val(u64::MAX)), ())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Parameter(_)), "{err:?}");
    assert!(err.to_string().contains("18446744073709551615"), "{err}");
    let fits: i64 = engine
        .scalar(Query::select().expr(Expr::val(i64::MAX as u64)), ())
        .await
        .unwrap();
    assert_eq!(fits, i64::MAX);
    engine.close().await.unwrap();
}

#[cfg(feature = "sqlite")]
async fn a_statement_with_its_own_values_takes_no_other_parameters(ctx: Ctx) {
    let engine = ctx.engine();
    let select = Query::select().expr(Expr::val(1)).to_owned();
    let err = engine.execute(&select, (2,)).await.unwrap_err();
    assert!(matches!(err, Error::Parameter(_)), "{err:?}");
    let conn = engine.connect().await.unwrap();
    let err = conn.execute_many(&select, [(1,), (2,)]).await.unwrap_err();
    assert!(matches!(err, Error::Parameter(_)), "{err:?}");
    // A statement without values still takes parameters in execute_many.
    conn.execute(
        Table::create()
            .table(Alias::new("t"))
            .col(ColumnDef::new(Alias::new("x")).integer()),
        (),
    )
    .await
    .unwrap();
    let rows = conn
        .execute_many("INSERT INTO t (x) VALUES (?1)", [(1,), (2,)])
        .await
        .unwrap()
        .rowcount();
    assert_eq!(rows, 2);
    let total: i64 = conn
        .scalar(
            Query::select()
                .expr(Expr::col(Alias::new("x")).sum())
                .from(Alias::new("t")),
            (),
        )
        .await
        .unwrap();
    assert_eq!(total, 3);
    drop(conn);
    engine.close().await.unwrap();
}

/// A statement the dialect cannot express is an error, not a panic.
#[cfg(feature = "sqlite")]
async fn unrenderable_statements_are_errors(ctx: Ctx) {
    let engine = ctx.engine();
    let truncate = Table::truncate().table(Alias::new("t")).to_owned();
    let err = engine.execute(truncate, ()).await.unwrap_err();
    assert!(matches!(err, sqlaio::Error::Statement(_)), "{err:?}");
    assert!(
        err.to_string().starts_with("cannot build the statement"),
        "{err}"
    );
    // The engine keeps working.
    assert_eq!(engine.scalar::<i64>("SELECT 1", ()).await.unwrap(), 1);
}
