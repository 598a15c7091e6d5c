//! PostgreSQL-specific tests: type conversions, range checks, errors,
//! results, transactions, streaming, runtimes, TLS and URLs, secrets, and
//! lost connections.
//!
//! The server comes from `DATABASE_URL` (default
//! `postgres://root@127.0.0.1:5432/test`). Without a server every test is
//! skipped with a note on stderr, unless `CI=true`, where it fails.

#![cfg(feature = "postgres")]

mod common;
use common::pg as pg_support;

use std::time::Duration;

use futures::{FutureExt, TryStreamExt};
use pg_support::{run, run_offline, unique, with_option, within, Scratch};
use sqlaio::{Engine, Error, Result, Value};

/// An engine on the default strategy.
fn engine(url: &str) -> Result<Engine> {
    Engine::builder().url(url).max_connections(4).build()
}

/// A failed connect: reported at once, or (refused connections being retried
/// until the acquire timeout) as a pool timeout that carries the connect error.
fn is_connect_failure(e: &Error) -> bool {
    match e {
        Error::Connect { .. } => true,
        Error::PoolTimeout {
            last_connect_error: Some(inner),
        } => matches!(**inner, Error::Connect { .. }),
        _ => false,
    }
}

fn same_f64(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

// ---------------------------------------------------------------------------
// 1. Type round-trips
// ---------------------------------------------------------------------------

#[test]
fn bool_round_trips() {
    run("bool_round_trips", |url| async move {
        let scratch = Scratch::new(&url);
        let t = scratch.table("bool");
        let engine = engine(&url)?;
        let conn = engine.connect().await?;
        conn.execute(
            format!("CREATE TABLE {t} (id int4 PRIMARY KEY, b bool)"),
            (),
        )
        .await?;
        conn.execute(
            format!("INSERT INTO {t} VALUES ($1, $2), ($3, $4)"),
            (1, true, 2, false),
        )
        .await?;
        let rows = conn
            .execute(format!("SELECT b FROM {t} ORDER BY id"), ())
            .await?
            .fetchall()
            .await?;
        assert_eq!(rows.len(), 2);
        assert!(rows[0].get::<bool>("b")?);
        assert!(!rows[1].get::<bool>("b")?);
        assert_eq!(rows[0].get_value(0)?, &Value::Bool(true));
        assert_eq!(rows[1].get_value(0)?, &Value::Bool(false));

        let row = conn
            .execute("SELECT true AS yes, false AS no", ())
            .await?
            .first()
            .await?
            .expect("one row");
        assert!(row.get::<bool>("yes")?);
        assert!(!row.get::<bool>("no")?);
        assert!(conn.scalar::<bool>("SELECT $1::bool", (true,)).await?);
        assert!(!conn.scalar::<bool>("SELECT $1::bool", (false,)).await?);
        conn.close().await?;
        engine.close().await
    });
}

#[test]
fn integers_round_trip_at_their_limits() {
    run("integers_round_trip_at_their_limits", |url| async move {
        let scratch = Scratch::new(&url);
        let t = scratch.table("ints");
        let engine = engine(&url)?;
        let conn = engine.connect().await?;
        conn.execute(
            format!("CREATE TABLE {t} (id int4 PRIMARY KEY, s int2, i int4, l int8)"),
            (),
        )
        .await?;
        let cases: [(i16, i32, i64); 4] = [
            (i16::MIN, i32::MIN, i64::MIN),
            (i16::MAX, i32::MAX, i64::MAX),
            (0, 0, 0),
            (-1, -1, -1),
        ];
        for (id, (s, i, l)) in cases.iter().enumerate() {
            let result = conn
                .execute(
                    format!("INSERT INTO {t} VALUES ($1, $2, $3, $4)"),
                    (id as i32, *s, *i, *l),
                )
                .await?;
            assert_eq!(result.rowcount(), 1);
        }
        let rows = conn
            .execute(format!("SELECT s, i, l FROM {t} ORDER BY id"), ())
            .await?
            .fetchall()
            .await?;
        assert_eq!(rows.len(), cases.len());
        for (row, (s, i, l)) in rows.iter().zip(cases) {
            assert_eq!(row.get::<i16>("s")?, s);
            assert_eq!(row.get::<i32>("i")?, i);
            assert_eq!(row.get::<i64>("l")?, l);
            assert_eq!(row.get::<i64>("s")?, i64::from(s));
            assert_eq!(row.get_value("s")?, &Value::Integer(s.into()));
            assert_eq!(row.get_value("i")?, &Value::Integer(i.into()));
            assert_eq!(row.get_value("l")?, &Value::Integer(l));
        }

        let row = conn
            .execute(
                "SELECT (-32768)::int2 AS a, 32767::int2 AS b, \
                 (-2147483648)::int4 AS c, 2147483647::int4 AS d, \
                 (-9223372036854775808)::int8 AS e, 9223372036854775807::int8 AS f",
                (),
            )
            .await?
            .first()
            .await?
            .expect("one row");
        assert_eq!(row.get::<i16>("a")?, i16::MIN);
        assert_eq!(row.get::<i16>("b")?, i16::MAX);
        assert_eq!(row.get::<i32>("c")?, i32::MIN);
        assert_eq!(row.get::<i32>("d")?, i32::MAX);
        assert_eq!(row.get::<i64>("e")?, i64::MIN);
        assert_eq!(row.get::<i64>("f")?, i64::MAX);

        for (s, i, l) in cases {
            let row = conn
                .execute("SELECT $1::int2, $2::int4, $3::int8", (s, i, l))
                .await?
                .first()
                .await?
                .expect("one row");
            assert_eq!(row.get::<i16>(0)?, s);
            assert_eq!(row.get::<i32>(1)?, i);
            assert_eq!(row.get::<i64>(2)?, l);
        }
        conn.close().await?;
        engine.close().await
    });
}

#[test]
fn floats_round_trip_with_nan_and_infinities() {
    run(
        "floats_round_trip_with_nan_and_infinities",
        |url| async move {
            let scratch = Scratch::new(&url);
            let t = scratch.table("floats");
            let engine = engine(&url)?;
            let conn = engine.connect().await?;
            conn.execute(
                format!("CREATE TABLE {t} (id int4 PRIMARY KEY, r float4, d float8)"),
                (),
            )
            .await?;
            let cases: [(f32, f64); 7] = [
                (f32::NAN, f64::NAN),
                (f32::INFINITY, f64::INFINITY),
                (f32::NEG_INFINITY, f64::NEG_INFINITY),
                (1.5, -2.25),
                (f32::MAX, f64::MAX),
                (f32::MIN_POSITIVE, f64::MIN_POSITIVE),
                (0.1, 0.1),
            ];
            for (id, (r, d)) in cases.iter().enumerate() {
                conn.execute(
                    format!("INSERT INTO {t} VALUES ($1, $2, $3)"),
                    (id as i32, *r, *d),
                )
                .await?;
            }
            let rows = conn
                .execute(format!("SELECT r, d FROM {t} ORDER BY id"), ())
                .await?
                .fetchall()
                .await?;
            assert_eq!(rows.len(), cases.len());
            for (row, (r, d)) in rows.iter().zip(cases) {
                let got_r = row.get::<f32>("r")?;
                let got_d = row.get::<f64>("d")?;
                assert!(
                    (got_r.is_nan() && r.is_nan()) || got_r == r,
                    "float4 {r} came back as {got_r}"
                );
                assert!(same_f64(got_d, d), "float8 {d} came back as {got_d}");
                assert!(matches!(row.get_value("d")?, Value::Real(_)));
            }

            let row = conn
            .execute(
                "SELECT 'NaN'::float4 AS a, 'Infinity'::float4 AS b, '-Infinity'::float4 AS c, \
                 'NaN'::float8 AS d, 'Infinity'::float8 AS e, '-Infinity'::float8 AS f, \
                 1.25::float4 AS g, 2.5::float8 AS h",
                (),
            )
            .await?
            .first()
            .await?
            .expect("one row");
            assert!(row.get::<f32>("a")?.is_nan());
            assert_eq!(row.get::<f32>("b")?, f32::INFINITY);
            assert_eq!(row.get::<f32>("c")?, f32::NEG_INFINITY);
            assert!(row.get::<f64>("d")?.is_nan());
            assert_eq!(row.get::<f64>("e")?, f64::INFINITY);
            assert_eq!(row.get::<f64>("f")?, f64::NEG_INFINITY);
            assert_eq!(row.get::<f32>("g")?, 1.25);
            assert_eq!(row.get::<f64>("h")?, 2.5);

            for (r, d) in cases {
                let row = conn
                    .execute("SELECT $1::float4, $2::float8", (r, d))
                    .await?
                    .first()
                    .await?
                    .expect("one row");
                let got_r = row.get::<f32>(0)?;
                assert!((got_r.is_nan() && r.is_nan()) || got_r == r);
                assert!(same_f64(row.get::<f64>(1)?, d));
            }
            conn.close().await?;
            engine.close().await
        },
    );
}

const NON_ASCII: &str = "Zoë — 東京 🚀";

#[test]
fn text_types_round_trip() {
    run("text_types_round_trip", |url| async move {
        let scratch = Scratch::new(&url);
        let t = scratch.table("text");
        let engine = engine(&url)?;
        let conn = engine.connect().await?;
        conn.execute(
            format!(
                "CREATE TABLE {t} (id int4 PRIMARY KEY, t text, v varchar(40), c char(5), n name)"
            ),
            (),
        )
        .await?;
        conn.execute(
            format!("INSERT INTO {t} VALUES ($1, $2, $3, $4, $5)"),
            (1, NON_ASCII, NON_ASCII, "ab", "some_name"),
        )
        .await?;
        conn.execute(
            format!("INSERT INTO {t} VALUES ($1, $2, $3, $4, $5)"),
            (2, "", "", "", "x"),
        )
        .await?;
        let rows = conn
            .execute(format!("SELECT t, v, c, n FROM {t} ORDER BY id"), ())
            .await?
            .fetchall()
            .await?;
        assert_eq!(rows[0].get::<String>("t")?, NON_ASCII);
        assert_eq!(rows[0].get::<String>("v")?, NON_ASCII);
        assert_eq!(rows[0].get::<String>("c")?, "ab   ");
        assert_eq!(rows[0].get::<String>("n")?, "some_name");
        assert_eq!(rows[0].get_value("t")?, &Value::Text(NON_ASCII.into()));
        assert_eq!(rows[1].get::<String>("t")?, "");
        assert_eq!(rows[1].get::<String>("v")?, "");
        assert_eq!(rows[1].get::<String>("c")?, "     ");
        assert_eq!(rows[1].get::<String>("n")?, "x");

        // The server sees the characters, not bytes mangled on the way.
        let chars: i32 = conn
            .scalar(format!("SELECT char_length(t) FROM {t} WHERE id = 1"), ())
            .await?;
        assert_eq!(chars as usize, NON_ASCII.chars().count());
        let found: i64 = conn
            .scalar(
                format!("SELECT count(*) FROM {t} WHERE t = $1 AND v = $1"),
                (NON_ASCII,),
            )
            .await?;
        assert_eq!(found, 1);

        let row = conn
            .execute(
                "SELECT 'Zoë — 東京 🚀'::text AS t, 'Zoë'::varchar(10) AS v, \
                 'ab'::char(5) AS c, 'nm'::name AS n, 'plain' AS u",
                (),
            )
            .await?
            .first()
            .await?
            .expect("one row");
        assert_eq!(row.get::<String>("t")?, NON_ASCII);
        assert_eq!(row.get::<String>("v")?, "Zoë");
        assert_eq!(row.get::<String>("c")?, "ab   ");
        assert_eq!(row.get::<String>("n")?, "nm");
        assert_eq!(row.get::<String>("u")?, "plain");

        assert_eq!(
            conn.scalar::<String>("SELECT $1", (NON_ASCII,)).await?,
            NON_ASCII
        );
        assert_eq!(
            conn.scalar::<String>("SELECT $1::varchar", (NON_ASCII,))
                .await?,
            NON_ASCII
        );
        assert_eq!(
            conn.scalar::<String>("SELECT $1::char(4)", ("a",)).await?,
            "a   "
        );
        assert_eq!(
            conn.scalar::<String>("SELECT $1::name", ("nm",)).await?,
            "nm"
        );
        // An enum's label comes back as its text, NULL as NULL.
        let mood = format!("{t}_mood");
        conn.execute(format!("CREATE TYPE {mood} AS ENUM ('sad', 'happy')"), ())
            .await?;
        let labels = conn
            .execute(
                format!("SELECT 'happy'::{mood} AS m UNION ALL SELECT NULL::{mood}"),
                (),
            )
            .await?
            .fetchall()
            .await?;
        conn.execute(format!("DROP TYPE {mood}"), ()).await?;
        assert_eq!(labels[0].get::<String>("m")?, "happy");
        assert_eq!(labels[1].get::<Option<String>>("m")?, None);
        conn.close().await?;
        engine.close().await
    });
}

#[test]
fn bytea_round_trips_empty_and_large() {
    run("bytea_round_trips_empty_and_large", |url| async move {
        const BIG: usize = 10 * 1024 * 1024;
        let scratch = Scratch::new(&url);
        let t = scratch.table("bytea");
        let engine = engine(&url)?;
        let conn = engine.connect().await?;
        conn.execute(
            format!("CREATE TABLE {t} (id int4 PRIMARY KEY, y bytea)"),
            (),
        )
        .await?;
        let big: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
        conn.execute(
            format!("INSERT INTO {t} VALUES ($1, $2), ($3, $4), ($5, $6)"),
            (1, Vec::<u8>::new(), 2, big.clone(), 3, vec![0u8, 1, 255, 0]),
        )
        .await?;
        let rows = conn
            .execute(format!("SELECT y, length(y) AS n FROM {t} ORDER BY id"), ())
            .await?
            .fetchall()
            .await?;
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].get::<Vec<u8>>("y")?, Vec::<u8>::new());
        assert_eq!(rows[0].get_value("y")?, &Value::Blob(Vec::new()));
        assert_eq!(rows[0].get::<i32>("n")?, 0);
        let got = rows[1].get::<Vec<u8>>("y")?;
        assert_eq!(got.len(), BIG);
        assert!(got == big, "the 10 MiB value came back different");
        assert_eq!(rows[1].get::<i32>("n")? as usize, BIG);
        assert_eq!(rows[2].get::<Vec<u8>>("y")?, vec![0u8, 1, 255, 0]);

        let row = conn
            .execute("SELECT ''::bytea AS e, '\\xdeadbeef'::bytea AS d", ())
            .await?
            .first()
            .await?
            .expect("one row");
        assert_eq!(row.get::<Vec<u8>>("e")?, Vec::<u8>::new());
        assert_eq!(row.get::<Vec<u8>>("d")?, vec![0xde, 0xad, 0xbe, 0xef]);

        let literal: Vec<u8> = conn
            .scalar(format!("SELECT decode(repeat('ab', {BIG}), 'hex')"), ())
            .await?;
        assert_eq!(literal.len(), BIG);
        assert!(literal.iter().all(|b| *b == 0xab));
        let length: i32 = conn
            .scalar("SELECT length($1::bytea)", (big.clone(),))
            .await?;
        assert_eq!(length as usize, BIG);
        conn.close().await?;
        engine.close().await
    });
}

#[test]
fn nulls_of_every_type_read_as_none() {
    run("nulls_of_every_type_read_as_none", |url| async move {
        let scratch = Scratch::new(&url);
        let t = scratch.table("nulls");
        let engine = engine(&url)?;
        let conn = engine.connect().await?;
        conn.execute(
            format!(
                "CREATE TABLE {t} (id int4 PRIMARY KEY, b bool, s int2, i int4, l int8, \
                 r float4, d float8, t text, v varchar(10), c char(3), n name, y bytea)"
            ),
            (),
        )
        .await?;
        // NULL as a Value...
        let mut params = vec![Value::from(1)];
        params.extend(std::iter::repeat_n(Value::Null, 11));
        conn.execute(
            format!("INSERT INTO {t} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"),
            params,
        )
        .await?;
        // ... and as typed `None`s.
        conn.execute(
            format!("INSERT INTO {t} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"),
            (
                2,
                None::<bool>,
                None::<i16>,
                None::<i32>,
                None::<i64>,
                None::<f32>,
                None::<f64>,
                None::<String>,
                None::<&str>,
                None::<&str>,
                None::<&str>,
                None::<Vec<u8>>,
            ),
        )
        .await?;
        let literal = "SELECT 0 AS id, NULL::bool AS b, NULL::int2 AS s, NULL::int4 AS i, \
                       NULL::int8 AS l, NULL::float4 AS r, NULL::float8 AS d, NULL::text AS t, \
                       NULL::varchar(10) AS v, NULL::char(3) AS c, NULL::name AS n, \
                       NULL::bytea AS y";
        let mut rows = conn
            .execute(format!("SELECT * FROM {t} ORDER BY id"), ())
            .await?
            .fetchall()
            .await?;
        rows.extend(conn.execute(literal, ()).await?.fetchall().await?);
        assert_eq!(rows.len(), 3);
        for row in &rows {
            assert_eq!(row.get::<Option<bool>>("b")?, None);
            assert_eq!(row.get::<Option<i16>>("s")?, None);
            assert_eq!(row.get::<Option<i32>>("i")?, None);
            assert_eq!(row.get::<Option<i64>>("l")?, None);
            assert_eq!(row.get::<Option<f32>>("r")?, None);
            assert_eq!(row.get::<Option<f64>>("d")?, None);
            assert_eq!(row.get::<Option<String>>("t")?, None);
            assert_eq!(row.get::<Option<String>>("v")?, None);
            assert_eq!(row.get::<Option<String>>("c")?, None);
            assert_eq!(row.get::<Option<String>>("n")?, None);
            assert_eq!(row.get::<Option<Vec<u8>>>("y")?, None);
            for value in &row.values()[1..] {
                assert_eq!(value, &Value::Null);
            }
            // NULL needs an Option: a clear decode error naming the column.
            match row.get::<i64>("l") {
                Err(Error::Decode { column, .. }) => assert_eq!(column, "l"),
                other => panic!("NULL into i64 gave {other:?}"),
            }
        }
        // Some(..) still round-trips through an Option parameter.
        let some: Option<i64> = conn.scalar("SELECT $1::int8", (Some(7i64),)).await?;
        assert_eq!(some, Some(7));
        let none: Option<i64> = conn.scalar("SELECT $1::int8", (None::<i64>,)).await?;
        assert_eq!(none, None);
        let none: Option<String> = conn.scalar("SELECT $1::text", (None::<String>,)).await?;
        assert_eq!(none, None);
        conn.close().await?;
        engine.close().await
    });
}

#[cfg(feature = "decimal")]
#[test]
fn numeric_round_trips_as_decimal() {
    use rust_decimal::Decimal;
    use std::str::FromStr;

    run("numeric_round_trips_as_decimal", |url| async move {
        let scratch = Scratch::new(&url);
        let t = scratch.table("numeric");
        let engine = engine(&url)?;
        let conn = engine.connect().await?;
        conn.execute(
            format!("CREATE TABLE {t} (id int4 PRIMARY KEY, n numeric, p numeric(12, 4))"),
            (),
        )
        .await?;
        let cases = [
            "1234567890.0123456789",
            "-0.000000001",
            "0",
            "79228162514264337593543950335",
            "-42",
        ];
        for (id, text) in cases.iter().enumerate() {
            let d = Decimal::from_str(text).expect("a decimal");
            conn.execute(
                format!("INSERT INTO {t} VALUES ($1, $2, $3)"),
                (id as i32, d, Decimal::from_str("1.5").expect("a decimal")),
            )
            .await?;
        }
        conn.execute(
            format!("INSERT INTO {t} VALUES ($1, $2, $3)"),
            (99, None::<Decimal>, None::<Decimal>),
        )
        .await?;
        let rows = conn
            .execute(format!("SELECT n, p FROM {t} ORDER BY id"), ())
            .await?
            .fetchall()
            .await?;
        assert_eq!(rows.len(), cases.len() + 1);
        for (row, text) in rows.iter().zip(cases) {
            let want = Decimal::from_str(text).expect("a decimal");
            assert_eq!(row.get::<Decimal>("n")?, want);
            assert!(matches!(row.get_value("n")?, Value::Decimal(_)));
            assert_eq!(row.get::<Decimal>("p")?, Decimal::from_str("1.5").unwrap());
            assert_eq!(row.get::<Decimal>("p")?.to_string(), "1.5000");
        }
        assert_eq!(rows[cases.len()].get::<Option<Decimal>>("n")?, None);

        let row = conn
            .execute("SELECT 1.5::numeric AS a, (-12.345)::numeric AS b", ())
            .await?
            .first()
            .await?
            .expect("one row");
        assert_eq!(row.get::<Decimal>("a")?, Decimal::from_str("1.5").unwrap());
        assert_eq!(
            row.get::<Decimal>("b")?,
            Decimal::from_str("-12.345").unwrap()
        );
        let d: Decimal = conn.scalar("SELECT $1::numeric", (7,)).await?;
        assert_eq!(d, Decimal::from(7));
        let d: Decimal = conn.scalar("SELECT $1::numeric", ("3.25",)).await?;
        assert_eq!(d, Decimal::from_str("3.25").unwrap());
        conn.close().await?;
        engine.close().await
    });
}

#[cfg(feature = "chrono")]
#[test]
fn date_and_time_round_trip_through_chrono() {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

    run(
        "date_and_time_round_trip_through_chrono",
        |url| async move {
            let scratch = Scratch::new(&url);
            let t = scratch.table("chrono");
            let engine = engine(&url)?;
            let conn = engine.connect().await?;
            conn.execute(
            format!(
                "CREATE TABLE {t} (id int4 PRIMARY KEY, ts timestamp, tz timestamptz, d date, t time)"
            ),
            (),
        )
        .await?;
            let ts: NaiveDateTime = NaiveDate::from_ymd_opt(2024, 2, 29)
                .unwrap()
                .and_hms_micro_opt(13, 45, 30, 123_456)
                .unwrap();
            let tz: DateTime<Utc> = NaiveDate::from_ymd_opt(1999, 12, 31)
                .unwrap()
                .and_hms_micro_opt(23, 59, 59, 999_999)
                .unwrap()
                .and_utc();
            let d = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
            let time = NaiveTime::from_hms_micro_opt(0, 0, 0, 1).unwrap();
            conn.execute(
                format!("INSERT INTO {t} VALUES ($1, $2, $3, $4, $5)"),
                (1, ts, tz, d, time),
            )
            .await?;
            conn.execute(
                format!("INSERT INTO {t} VALUES ($1, $2, $3, $4, $5)"),
                (
                    2,
                    None::<NaiveDateTime>,
                    None::<DateTime<Utc>>,
                    None::<NaiveDate>,
                    None::<NaiveTime>,
                ),
            )
            .await?;
            let rows = conn
                .execute(format!("SELECT ts, tz, d, t FROM {t} ORDER BY id"), ())
                .await?
                .fetchall()
                .await?;
            assert_eq!(rows[0].get::<NaiveDateTime>("ts")?, ts);
            assert_eq!(rows[0].get::<DateTime<Utc>>("tz")?, tz);
            assert_eq!(rows[0].get::<NaiveDate>("d")?, d);
            assert_eq!(rows[0].get::<NaiveTime>("t")?, time);
            assert_eq!(rows[0].get_value("ts")?, &Value::Timestamp(ts));
            assert_eq!(rows[0].get_value("tz")?, &Value::TimestampTz(tz));
            assert_eq!(rows[0].get_value("d")?, &Value::Date(d));
            assert_eq!(rows[0].get_value("t")?, &Value::Time(time));
            assert_eq!(rows[1].get::<Option<NaiveDateTime>>("ts")?, None);
            assert_eq!(rows[1].get::<Option<DateTime<Utc>>>("tz")?, None);
            assert_eq!(rows[1].get::<Option<NaiveDate>>("d")?, None);
            assert_eq!(rows[1].get::<Option<NaiveTime>>("t")?, None);

            let row = conn
                .execute(
                    "SELECT '2024-02-29 13:45:30.123456'::timestamp AS ts, \
                 '2024-02-29 13:45:30.123456+02'::timestamptz AS tz, \
                 '1970-01-01'::date AS d, '00:00:00.000001'::time AS t",
                    (),
                )
                .await?
                .first()
                .await?
                .expect("one row");
            assert_eq!(row.get::<NaiveDateTime>("ts")?, ts);
            assert_eq!(
                row.get::<DateTime<Utc>>("tz")?,
                (ts - chrono::Duration::hours(2)).and_utc()
            );
            assert_eq!(row.get::<NaiveDate>("d")?, d);
            assert_eq!(row.get::<NaiveTime>("t")?, time);

            let back: NaiveDateTime = conn.scalar("SELECT $1::timestamp", (ts,)).await?;
            assert_eq!(back, ts);
            let back: DateTime<Utc> = conn.scalar("SELECT $1::timestamptz", (tz,)).await?;
            assert_eq!(back, tz);
            conn.close().await?;
            engine.close().await
        },
    );
}

#[cfg(feature = "uuid")]
#[test]
fn uuid_round_trips() {
    use uuid::Uuid;

    run("uuid_round_trips", |url| async move {
        let scratch = Scratch::new(&url);
        let t = scratch.table("uuid");
        let engine = engine(&url)?;
        let conn = engine.connect().await?;
        conn.execute(
            format!("CREATE TABLE {t} (id int4 PRIMARY KEY, u uuid)"),
            (),
        )
        .await?;
        let u = Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
        conn.execute(
            format!("INSERT INTO {t} VALUES ($1, $2), ($3, $4), ($5, $6)"),
            (1, u, 2, None::<Uuid>, 3, Uuid::nil()),
        )
        .await?;
        let rows = conn
            .execute(format!("SELECT u FROM {t} ORDER BY id"), ())
            .await?
            .fetchall()
            .await?;
        assert_eq!(rows[0].get::<Uuid>("u")?, u);
        assert_eq!(rows[0].get_value("u")?, &Value::Uuid(u));
        assert_eq!(rows[1].get::<Option<Uuid>>("u")?, None);
        assert_eq!(rows[2].get::<Uuid>("u")?, Uuid::nil());
        let literal: Uuid = conn
            .scalar("SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", ())
            .await?;
        assert_eq!(literal, u);
        let back: Uuid = conn.scalar("SELECT $1::uuid", (u,)).await?;
        assert_eq!(back, u);
        // Text binds into a uuid parameter too.
        let back: Uuid = conn
            .scalar("SELECT $1::uuid", ("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",))
            .await?;
        assert_eq!(back, u);
        conn.close().await?;
        engine.close().await
    });
}

#[cfg(feature = "json")]
#[test]
fn json_and_jsonb_round_trip() {
    use serde_json::json;

    run("json_and_jsonb_round_trip", |url| async move {
        let scratch = Scratch::new(&url);
        let t = scratch.table("json");
        let engine = engine(&url)?;
        let conn = engine.connect().await?;
        conn.execute(
            format!("CREATE TABLE {t} (id int4 PRIMARY KEY, j json, jb jsonb)"),
            (),
        )
        .await?;
        let doc = json!({"a": [1, 2, null], "b": "Zoë — 東京 🚀", "c": {"d": true, "e": 1.5}});
        conn.execute(
            format!("INSERT INTO {t} VALUES ($1, $2, $3), ($4, $5, $6)"),
            (
                1,
                doc.clone(),
                doc.clone(),
                2,
                None::<serde_json::Value>,
                None::<serde_json::Value>,
            ),
        )
        .await?;
        let rows = conn
            .execute(format!("SELECT j, jb FROM {t} ORDER BY id"), ())
            .await?
            .fetchall()
            .await?;
        assert_eq!(rows[0].get::<serde_json::Value>("j")?, doc);
        assert_eq!(rows[0].get::<serde_json::Value>("jb")?, doc);
        assert_eq!(rows[1].get::<Option<serde_json::Value>>("j")?, None);
        assert_eq!(rows[1].get::<Option<serde_json::Value>>("jb")?, None);

        let row = conn
            .execute(
                r#"SELECT '{"a": [1, 2, null], "b": "Zoë"}'::json AS j, '{"a": [1, 2, null], "b": "Zoë"}'::jsonb AS jb, '[]'::jsonb AS empty"#,
                (),
            )
            .await?
            .first()
            .await?
            .expect("one row");
        let want = json!({"a": [1, 2, null], "b": "Zoë"});
        assert_eq!(row.get::<serde_json::Value>("j")?, want);
        assert_eq!(row.get::<serde_json::Value>("jb")?, want);
        assert_eq!(row.get::<serde_json::Value>("empty")?, json!([]));
        let back: serde_json::Value = conn.scalar("SELECT $1::jsonb", (doc.clone(),)).await?;
        assert_eq!(back, doc);
        let back: serde_json::Value = conn.scalar("SELECT $1::json", (doc.clone(),)).await?;
        assert_eq!(back, doc);
        conn.close().await?;
        engine.close().await
    });
}

/// With the `json` feature, a json/jsonb column reads as `Value::Json`, as
/// `Value::Json`'s documentation says, like the other wider types read as
/// their own variants.
#[cfg(feature = "json")]
#[test]
fn json_columns_read_as_value_json() {
    run("json_columns_read_as_value_json", |url| async move {
        let engine = engine(&url)?;
        let row = engine
            .execute(
                r#"SELECT '{"a": 1}'::json AS j, '{"a": 1}'::jsonb AS jb"#,
                (),
            )
            .await?
            .first()
            .await?
            .expect("one row");
        let want = Value::Json(serde_json::json!({"a": 1}));
        assert_eq!(row.get_value("j")?, &want, "json column");
        assert_eq!(row.get_value("jb")?, &want, "jsonb column");
        engine.close().await
    });
}

// ---------------------------------------------------------------------------
// 2. Range checks
// ---------------------------------------------------------------------------

#[test]
fn binding_out_of_range_integers_fails_clearly() {
    run(
        "binding_out_of_range_integers_fails_clearly",
        |url| async move {
            let scratch = Scratch::new(&url);
            let t = scratch.table("range");
            let engine = engine(&url)?;
            let conn = engine.connect().await?;
            conn.execute(format!("CREATE TABLE {t} (i int4, s int2)"), ())
                .await?;
            let insert_i = format!("INSERT INTO {t} (i) VALUES ($1)");
            let insert_s = format!("INSERT INTO {t} (s) VALUES ($1)");

            for (sql, value, ty) in [
                (&insert_i, 3_000_000_000i64, "int4"),
                (&insert_i, -2_147_483_649i64, "int4"),
                (&insert_i, i64::MAX, "int4"),
                (&insert_s, 40_000i64, "int2"),
                (&insert_s, -32_769i64, "int2"),
            ] {
                let e = conn.execute(sql, (value,)).await.unwrap_err();
                let text = e.to_string();
                assert!(
                    text.contains(&value.to_string()) && text.contains(ty),
                    "binding {value} into {ty} gave: {text}"
                );
                assert!(!e.is_connection_lost(), "{e:?}");
                // The connection keeps working.
                assert_eq!(conn.scalar::<i32>("SELECT 1", ()).await?, 1);
            }
            // Casts in the SQL give typed parameters too.
            let e = conn
                .scalar::<i32>("SELECT $1::int4", (3_000_000_000i64,))
                .await
                .unwrap_err();
            assert!(e.to_string().contains("3000000000"), "{e}");
            assert!(e.to_string().contains("int4"), "{e}");
            let e = conn
                .scalar::<i16>("SELECT $1::int2", (40_000i64,))
                .await
                .unwrap_err();
            assert!(e.to_string().contains("40000"), "{e}");
            assert!(e.to_string().contains("int2"), "{e}");

            // Values that fit are accepted, at both ends.
            conn.execute(&insert_i, (2_147_483_647i64,)).await?;
            conn.execute(&insert_i, (-2_147_483_648i64,)).await?;
            conn.execute(&insert_s, (32_767i64,)).await?;
            conn.execute(&insert_s, (-32_768i64,)).await?;
            let rows = conn
                .execute(format!("SELECT i, s FROM {t} ORDER BY i NULLS LAST, s"), ())
                .await?
                .fetchall()
                .await?;
            let got: Vec<(Option<i32>, Option<i16>)> = rows
                .iter()
                .map(|r| Ok((r.get("i")?, r.get("s")?)))
                .collect::<Result<_>>()?;
            assert_eq!(
                got,
                [
                    (Some(i32::MIN), None),
                    (Some(i32::MAX), None),
                    (None, Some(i16::MIN)),
                    (None, Some(i16::MAX)),
                ]
            );
            conn.close().await?;
            engine.close().await
        },
    );
}

#[test]
fn decoding_out_of_range_integers_fails_clearly() {
    run(
        "decoding_out_of_range_integers_fails_clearly",
        |url| async move {
            let engine = engine(&url)?;
            let conn = engine.connect().await?;
            let row = conn
                .execute(
                    "SELECT 3000000000::int8 AS big, 40000::int8 AS mid, (-40000)::int4 AS neg, \
                 2147483647::int8 AS fits",
                    (),
                )
                .await?
                .first()
                .await?
                .expect("one row");
            for (column, value, into) in [("big", "3000000000", "i32"), ("mid", "40000", "i16")] {
                let e = if into == "i32" {
                    row.get::<i32>(column).unwrap_err()
                } else {
                    row.get::<i16>(column).unwrap_err()
                };
                match &e {
                    Error::Decode { column: c, .. } => assert_eq!(c, column),
                    other => panic!("expected Error::Decode, got {other:?}"),
                }
                let text = e.to_string();
                assert!(text.contains(column), "{text}");
                assert!(text.contains(value), "{text}");
            }
            assert!(matches!(row.get::<i16>("neg"), Err(Error::Decode { .. })));
            assert!(matches!(row.get::<u32>("neg"), Err(Error::Decode { .. })));
            assert_eq!(row.get::<i32>("fits")?, i32::MAX);
            assert_eq!(row.get::<i64>("big")?, 3_000_000_000);

            let e = conn
                .scalar::<i32>("SELECT 3000000000::int8 AS huge", ())
                .await
                .unwrap_err();
            assert!(
                matches!(&e, Error::Decode { column, .. } if column == "huge"),
                "{e:?}"
            );
            assert_eq!(conn.scalar::<i32>("SELECT 1", ()).await?, 1);
            conn.close().await?;
            engine.close().await
        },
    );
}

// ---------------------------------------------------------------------------
// 3. Unsupported types
// ---------------------------------------------------------------------------

#[test]
fn unsupported_types_are_named_in_the_error() {
    run(
        "unsupported_types_are_named_in_the_error",
        |url| async move {
            let engine = engine(&url)?;
            let conn = engine.connect().await?;
            for (sql, ty) in [
                ("SELECT point(1, 2) AS p", "point"),
                ("SELECT '1 day'::interval AS i", "interval"),
                ("SELECT ARRAY[1, 2]::int4[] AS a", "int4"),
            ] {
                let e = conn.execute(sql, ()).await.unwrap_err();
                let text = e.to_string();
                assert!(text.contains(ty), "{sql}: {text}");
                assert!(!e.is_connection_lost(), "{e:?}");
                assert_eq!(conn.scalar::<i32>("SELECT 1", ()).await?, 1);
            }

            // A NULL of an unsupported type is still just NULL.
            let p: Option<i64> = conn.scalar("SELECT NULL::point", ()).await?;
            assert_eq!(p, None);

            // A bad value after the first batch fails the fetch, and the
            // connection keeps working afterwards.
            let mut result = conn
                .execute(
                    "SELECT CASE WHEN g < 2000 THEN NULL ELSE point(g, g) END AS p \
                 FROM generate_series(1, 2500) AS g",
                    (),
                )
                .await?;
            let mut failure = None;
            loop {
                match result.try_next().await {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            drop(result);
            let e = failure.expect("reading a point fails");
            assert!(e.to_string().contains("point"), "{e}");
            assert_eq!(conn.scalar::<i32>("SELECT 2", ()).await?, 2);

            // Binding into a parameter of an unsupported type names it too.
            let e = conn.execute("SELECT $1::point", (5,)).await.unwrap_err();
            assert!(e.to_string().contains("point"), "{e}");
            assert_eq!(conn.scalar::<i32>("SELECT 3", ()).await?, 3);
            conn.close().await?;
            engine.close().await
        },
    );
}

#[cfg(not(feature = "decimal"))]
#[test]
fn numeric_without_the_decimal_feature_names_the_feature() {
    run(
        "numeric_without_the_decimal_feature_names_the_feature",
        |url| async move {
            let engine = engine(&url)?;
            let e = engine
                .execute("SELECT 1.5::numeric AS n", ())
                .await
                .unwrap_err();
            let text = e.to_string();
            assert!(text.contains("numeric"), "{text}");
            assert!(text.contains("\"decimal\" feature"), "{text}");
            // Cast to text, it reads fine.
            let n: String = engine.scalar("SELECT 1.5::numeric::text", ()).await?;
            assert_eq!(n, "1.5");
            engine.close().await
        },
    );
}

#[cfg(not(feature = "chrono"))]
#[test]
fn timestamps_without_the_chrono_feature_name_the_feature() {
    run(
        "timestamps_without_the_chrono_feature_name_the_feature",
        |url| async move {
            let engine = engine(&url)?;
            for sql in [
                "SELECT now()",
                "SELECT current_date",
                "SELECT '12:00'::time",
            ] {
                let e = engine.execute(sql, ()).await.unwrap_err();
                assert!(e.to_string().contains("\"chrono\" feature"), "{sql}: {e}");
            }
            engine.close().await
        },
    );
}

#[cfg(not(feature = "uuid"))]
#[test]
fn uuid_without_the_uuid_feature_names_the_feature() {
    run(
        "uuid_without_the_uuid_feature_names_the_feature",
        |url| async move {
            let engine = engine(&url)?;
            let e = engine
                .execute("SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", ())
                .await
                .unwrap_err();
            assert!(e.to_string().contains("\"uuid\" feature"), "{e}");
            engine.close().await
        },
    );
}

// ---------------------------------------------------------------------------
// 4. Errors
// ---------------------------------------------------------------------------

#[test]
fn errors_are_clear_and_the_connection_survives_them() {
    run(
        "errors_are_clear_and_the_connection_survives_them",
        |url| async move {
            let scratch = Scratch::new(&url);
            let t = scratch.table("errs");
            let engine = engine(&url)?;
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
        },
    );
}

// ---------------------------------------------------------------------------
// 5. Results, tables and transactions
// ---------------------------------------------------------------------------

#[test]
fn result_metadata() {
    run("result_metadata", |url| async move {
        let scratch = Scratch::new(&url);
        let t = scratch.table("meta");
        let engine = engine(&url)?;
        let conn = engine.connect().await?;
        let created = conn
            .execute(
                format!("CREATE TABLE {t} (id serial PRIMARY KEY, x int4, y text)"),
                (),
            )
            .await?;
        assert!(!created.returns_rows());
        assert!(created.keys().is_empty());
        assert_eq!(created.rowcount(), 0);
        drop(created);

        let inserted = conn
            .execute(
                format!("INSERT INTO {t} (x, y) VALUES (1, 'a'), (2, 'b'), (3, 'c')"),
                (),
            )
            .await?;
        assert_eq!(inserted.rowcount(), 3);
        assert!(!inserted.returns_rows());
        assert_eq!(inserted.last_insert_id(), None);
        drop(inserted);

        let updated = conn
            .execute(format!("UPDATE {t} SET y = 'z' WHERE x >= $1"), (2,))
            .await?;
        assert_eq!(updated.rowcount(), 2);
        drop(updated);
        let none = conn
            .execute(format!("UPDATE {t} SET y = 'z' WHERE x > 100"), ())
            .await?;
        assert_eq!(none.rowcount(), 0);
        drop(none);

        let select = conn
            .execute(format!("SELECT x, y AS why FROM {t} WHERE false"), ())
            .await?;
        assert!(select.returns_rows());
        assert_eq!(select.keys(), ["x", "why"]);
        drop(select);

        let id: i32 = conn
            .scalar(
                format!("INSERT INTO {t} (x, y) VALUES ($1, $2) RETURNING id"),
                (4, "d"),
            )
            .await?;
        assert_eq!(id, 4);
        let returning = conn
            .execute(
                format!("INSERT INTO {t} (x) VALUES (5), (6) RETURNING id, x"),
                (),
            )
            .await?;
        assert!(returning.returns_rows());
        assert_eq!(returning.keys(), ["id", "x"]);
        assert_eq!(returning.last_insert_id(), None);
        let ids: Vec<i32> = {
            let mut returning = returning;
            returning
                .fetchall()
                .await?
                .iter()
                .map(|r| r.get("id"))
                .collect::<Result<_>>()?
        };
        assert_eq!(ids, [5, 6]);

        let deleted = conn.execute(format!("DELETE FROM {t}"), ()).await?;
        assert_eq!(deleted.rowcount(), 6);
        drop(deleted);
        conn.close().await?;
        engine.close().await
    });
}

#[test]
fn table_names_see_the_current_schema_only() {
    run(
        "table_names_see_the_current_schema_only",
        |url| async move {
            let scratch = Scratch::new(&url);
            let other = scratch.schema("other");
            let t = scratch.table("listed");
            let hidden = unique("hidden");
            let engine = engine(&url)?;
            assert!(!engine.has_table(&t).await?);
            engine
                .execute(format!("CREATE TABLE {t} (x int4)"), ())
                .await?;
            engine.execute(format!("CREATE SCHEMA {other}"), ()).await?;
            engine
                .execute(format!("CREATE TABLE {other}.{hidden} (x int4)"), ())
                .await?;

            let names = engine.table_names().await?;
            assert!(names.contains(&t), "{t} missing from {names:?}");
            assert!(!names.contains(&hidden), "{hidden} listed in {names:?}");
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "table_names is sorted");
            assert!(engine.has_table(&t).await?);
            assert!(!engine.has_table(&hidden).await?);
            assert!(!engine.has_table(&unique("no_such_table")).await?);

            let conn = engine.connect().await?;
            assert!(conn.has_table(&t).await?);
            assert!(conn.table_names().await?.contains(&t));
            conn.close().await?;
            engine.close().await
        },
    );
}

#[test]
fn nested_transactions_and_rollback_on_drop() {
    run(
        "nested_transactions_and_rollback_on_drop",
        |url| async move {
            let scratch = Scratch::new(&url);
            let t = scratch.table("nested");
            let engine = engine(&url)?;
            let conn = engine.connect().await?;
            conn.execute(format!("CREATE TABLE {t} (id int4 PRIMARY KEY)"), ())
                .await?;
            let insert = format!("INSERT INTO {t} VALUES ($1)");
            let ids_sql = format!("SELECT id FROM {t} ORDER BY id");

            // begin_nested: inner rollback, outer commit.
            let tx = conn.begin().await?;
            tx.execute(&insert, (1,)).await?;
            let inner = tx.begin_nested().await?;
            inner.execute(&insert, (2,)).await?;
            inner.rollback().await?;
            assert!(tx.is_active());
            tx.execute(&insert, (3,)).await?;
            let inner = tx.begin_nested().await?;
            inner.execute(&insert, (4,)).await?;
            inner.commit().await?;
            {
                let dropped = tx.begin_nested().await?;
                dropped.execute(&insert, (5,)).await?;
            }
            tx.execute(&insert, (6,)).await?;
            tx.commit().await?;
            let got = read_ids(&conn, &ids_sql).await?;
            assert_eq!(got, [1, 3, 4, 6]);

            // begin_nested outside a transaction begins one.
            let outer = conn.begin_nested().await?;
            outer.execute(&insert, (7,)).await?;
            outer.rollback().await?;
            assert_eq!(read_ids(&conn, &ids_sql).await?, [1, 3, 4, 6]);

            // A dropped transaction rolls back before anything else runs.
            {
                let tx = conn.begin().await?;
                tx.execute(&insert, (8,)).await?;
            }
            assert!(
                // The insert gave the dropped transaction an id; a new one has none.
                conn.scalar::<bool>("SELECT txid_current_if_assigned() IS NULL", ())
                    .await?,
                "the next statement runs outside the dropped transaction"
            );
            assert!(!conn.in_transaction());
            assert_eq!(read_ids(&conn, &ids_sql).await?, [1, 3, 4, 6]);
            conn.close().await?;

            // An engine transaction dropped uncommitted: its connection goes back
            // to the pool rolled back.
            let single = Engine::builder().url(&url).max_connections(1).build()?;
            {
                let tx = single.begin().await?;
                tx.execute(&insert, (9,)).await?;
            }
            assert!(
                single
                    .scalar::<bool>("SELECT txid_current_if_assigned() IS NULL", ())
                    .await?,
                "the pooled connection came back outside the dropped transaction"
            );
            let count: i64 = single
                .scalar(format!("SELECT count(*) FROM {t} WHERE id = 9"), ())
                .await?;
            assert_eq!(count, 0);
            let tx = single.begin().await?;
            tx.execute(&insert, (10,)).await?;
            tx.commit().await?;
            let count: i64 = engine
                .scalar(format!("SELECT count(*) FROM {t} WHERE id = 10"), ())
                .await?;
            assert_eq!(count, 1);
            single.close().await?;
            engine.close().await
        },
    );
}

async fn read_ids(conn: &sqlaio::Connection, sql: &str) -> Result<Vec<i32>> {
    conn.execute(sql, ())
        .await?
        .fetchall()
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn execute_many_is_atomic() {
    run("execute_many_is_atomic", |url| async move {
        let scratch = Scratch::new(&url);
        let t = scratch.table("many");
        let engine = engine(&url)?;
        let conn = engine.connect().await?;
        conn.execute(format!("CREATE TABLE {t} (id int4 PRIMARY KEY)"), ())
            .await?;
        let insert = format!("INSERT INTO {t} VALUES ($1)");
        let ids_sql = format!("SELECT id FROM {t} ORDER BY id");

        let done = conn.execute_many(&insert, [(1,), (2,), (3,)]).await?;
        assert_eq!(done.rowcount(), 3);
        drop(done);
        assert!(!conn.in_transaction());

        // A duplicate in the last set: none of the set applies.
        let e = conn
            .execute_many(&insert, [(10,), (11,), (1,)])
            .await
            .unwrap_err();
        assert!(e.is_database(), "{e:?}");
        assert!(!conn.in_transaction());
        assert_eq!(read_ids(&conn, &ids_sql).await?, [1, 2, 3]);

        // A value out of range for int4: nothing applies either.
        let e = conn
            .execute_many(&insert, [(20i64,), (3_000_000_000i64,)])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("3000000000"), "{e}");
        assert_eq!(read_ids(&conn, &ids_sql).await?, [1, 2, 3]);

        // A set with the wrong number of parameters.
        let sets = vec![
            vec![Value::from(30)],
            vec![Value::from(31), Value::from(32)],
        ];
        let e = conn.execute_many(&insert, sets).await.unwrap_err();
        assert!(matches!(e, Error::ParameterCount { .. }), "{e:?}");
        assert_eq!(read_ids(&conn, &ids_sql).await?, [1, 2, 3]);

        // Inside a transaction, a failing batch undoes only itself.
        let tx = conn.begin().await?;
        tx.execute(&insert, (100,)).await?;
        assert!(tx.execute_many(&insert, [(101,), (100,)]).await.is_err());
        assert!(tx.is_active());
        tx.execute_many(&insert, [(102,), (103,)]).await?;
        tx.commit().await?;
        assert_eq!(read_ids(&conn, &ids_sql).await?, [1, 2, 3, 100, 102, 103]);
        conn.close().await?;
        engine.close().await
    });
}

// ---------------------------------------------------------------------------
// 6. Streaming
// ---------------------------------------------------------------------------

#[test]
fn large_results_stream_complete_and_in_order() {
    run(
        "large_results_stream_complete_and_in_order",
        |url| async move {
            const N: i64 = 200_000;
            let engine = engine(&url)?;
            let mut result = engine
                .execute(format!("SELECT generate_series(1, {N}) AS n"), ())
                .await?;
            assert_eq!(result.keys(), ["n"]);
            let mut expected = 1;
            while let Some(row) = result.try_next().await? {
                assert_eq!(row.get::<i64>("n")?, expected);
                expected += 1;
            }
            assert_eq!(expected, N + 1, "every row arrived");
            assert!(result.try_next().await?.is_none());
            drop(result);

            // The same on a borrowed connection, which is usable afterwards.
            let conn = engine.connect().await?;
            let mut result = conn
                .execute("SELECT generate_series(1, 20000)::int8 AS n", ())
                .await?;
            let mut count = 0i64;
            let mut last = 0;
            while let Some(row) = result.try_next().await? {
                let n: i64 = row.get(0)?;
                assert_eq!(n, last + 1);
                last = n;
                count += 1;
            }
            assert_eq!(count, 20_000);
            drop(result);

            // A stream dropped half way leaves the connection usable.
            let mut result = conn
                .execute("SELECT generate_series(1, 20000) AS n", ())
                .await?;
            for want in 1..=1000 {
                let row = result.try_next().await?.expect("a row");
                assert_eq!(row.get::<i64>(0)?, want);
            }
            drop(result);
            assert_eq!(conn.scalar::<i32>("SELECT 7", ()).await?, 7);
            conn.close().await?;
            engine.close().await
        },
    );
}

#[test]
fn fetchmany_fetches_in_chunks() {
    run("fetchmany_fetches_in_chunks", |url| async move {
        let engine = engine(&url)?;
        let conn = engine.connect().await?;
        let mut result = conn
            .execute("SELECT generate_series(1, 10000) AS n", ())
            .await?;
        let mut next = 1i64;
        let mut sizes = Vec::new();
        loop {
            let chunk = result.fetchmany(3000).await?;
            if chunk.is_empty() {
                break;
            }
            sizes.push(chunk.len());
            for row in chunk {
                assert_eq!(row.get::<i64>("n")?, next);
                next += 1;
            }
        }
        assert_eq!(sizes, [3000, 3000, 3000, 1000]);
        assert_eq!(next, 10_001);
        drop(result);

        // Mixed fetches keep their place.
        let mut result = conn
            .execute("SELECT generate_series(1, 1000) AS n", ())
            .await?;
        let first = result.fetchone().await?.expect("a row");
        assert_eq!(first.get::<i64>(0)?, 1);
        let small = result.fetchmany(5).await?;
        let small: Vec<i64> = small.iter().map(|r| r.get(0)).collect::<Result<_>>()?;
        assert_eq!(small, [2, 3, 4, 5, 6]);
        let big = result.fetchmany(300).await?;
        assert_eq!(big.len(), 300);
        assert_eq!(big[0].get::<i64>(0)?, 7);
        assert_eq!(big[299].get::<i64>(0)?, 306);
        let rest = result.fetchall().await?;
        assert_eq!(rest.len(), 694);
        assert_eq!(rest.last().expect("a row").get::<i64>(0)?, 1000);
        assert!(result.fetchmany(10).await?.is_empty());
        assert!(result.fetchone().await?.is_none());
        drop(result);
        conn.close().await?;
        engine.close().await
    });
}

// ---------------------------------------------------------------------------
// 7. The sync client lives and dies on its worker, under every runtime
// ---------------------------------------------------------------------------

/// Runs queries, transactions, streams and raw calls on an engine with
/// `strategy`, drops connections and engines from the async side, and checks
/// that every backend connection closed and that no runtime panicked.
async fn exercise_runtime(
    url: &str,
    strategy: impl sqlaio::Strategy + Clone,
    tag: &str,
) -> Result<()> {
    pg_support::record_panics();
    let app = unique(&format!("rt_{tag}"));
    let app_url = with_option(url, &format!("application_name={app}"));
    let scratch = Scratch::new(url);
    let t = scratch.table(&format!("rt_{tag}"));
    let insert = format!("INSERT INTO {t} VALUES ($1)");
    let count_sql = format!("SELECT count(*) FROM {t}");

    let engine = Engine::builder()
        .url(&app_url)
        .strategy(strategy.clone())
        .max_connections(3)
        .build()?;
    assert_eq!(engine.scalar::<i32>("SELECT 1", ()).await?, 1);

    let conn = engine.connect().await?;
    conn.execute(format!("CREATE TABLE {t} (id int8 PRIMARY KEY)"), ())
        .await?;
    conn.execute_many(&insert, (1..=3i64).map(|i| (i,))).await?;
    {
        let tx = conn.begin().await?;
        tx.execute(&insert, (4i64,)).await?;
        // Dropped: rolled back.
    }
    assert_eq!(conn.scalar::<i64>(&count_sql, ()).await?, 3);
    // A stream dropped unfinished.
    let mut rows = conn
        .execute("SELECT generate_series(1, 100000) AS n", ())
        .await?;
    assert!(rows.try_next().await?.is_some());
    drop(rows);
    // The raw client, on its worker.
    let two = conn
        .run_in_thread(|client: &mut sqlaio::postgres::Client| {
            let row = client.query_one("SELECT 2::int4", &[])?;
            Ok::<i32, Error>(row.get(0))
        })
        .await?;
    assert_eq!(two, 2);
    drop(conn);

    // An engine transaction dropped with its connection, uncommitted.
    let tx = engine.begin().await?;
    tx.execute(&insert, (5i64,)).await?;
    drop(tx);
    // Concurrent work on several connections.
    let (a, b, c) = futures::join!(
        engine.scalar::<i32>("SELECT 1", ()),
        engine.scalar::<i32>("SELECT 2", ()),
        engine.scalar::<i64>(&count_sql, ()),
    );
    assert_eq!((a?, b?, c?), (1, 2, 3));

    // A connection still out when the last engine handle goes.
    let held = engine.connect().await?;
    drop(engine.clone());
    assert_eq!(held.scalar::<i32>("SELECT 3", ()).await?, 3);
    held.close().await?;
    drop(held);

    // A failed connect, on this strategy.
    let unreachable = Engine::builder()
        .url("postgres://root@127.0.0.1:1/test?connect_timeout=2")
        .strategy(strategy.clone())
        .acquire_timeout(Duration::from_secs(1))
        .build()?;
    let e = unreachable.connect().await.unwrap_err();
    assert!(is_connect_failure(&e), "{e:?}");
    unreachable.close().await?;
    drop(unreachable);

    engine.close().await?;
    assert_eq!(engine.worker_count(), 0, "close joins every worker");
    assert!(engine
        .execute("SELECT 1", ())
        .await
        .unwrap_err()
        .is_closed());
    drop(engine);

    // An engine dropped without close, while one of its connections is out.
    let dropped = Engine::builder()
        .url(&app_url)
        .strategy(strategy.clone())
        .max_connections(2)
        .build()?;
    assert_eq!(dropped.scalar::<i32>("SELECT 4", ()).await?, 4);
    let last = dropped.connect().await?;
    drop(dropped);
    assert_eq!(last.scalar::<i32>("SELECT 5", ()).await?, 5);
    drop(last);

    // Every client was dropped (on its worker): the server sees none left.
    let watcher = Engine::builder().url(url).max_connections(1).build()?;
    pg_support::eventually(
        "the dropped engines' connections close",
        Duration::from_secs(15),
        || {
            let watcher = watcher.clone();
            let app = app.clone();
            async move {
                let open: i64 = watcher
                    .scalar(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                        (app,),
                    )
                    .await?;
                Ok(open == 0)
            }
        },
    )
    .await?;
    watcher.close().await?;
    pg_support::assert_no_runtime_panics();
    Ok(())
}

async fn runtime_test(name: &str, strategy: impl sqlaio::Strategy + Clone, tag: &str) {
    let Some(url) = pg_support::server(name) else {
        return;
    };
    if let Err(e) = pg_support::bounded(name, exercise_runtime(&url, strategy, tag)).await {
        panic!("{name} failed: {e}\n{e:?}");
    }
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn tokio_current_thread_keeps_the_client_on_its_worker() {
    runtime_test(
        "tokio_current_thread_keeps_the_client_on_its_worker",
        sqlaio::TokioStrategy,
        "tokio_ct",
    )
    .await;
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_multi_thread_keeps_the_client_on_its_worker() {
    runtime_test(
        "tokio_multi_thread_keeps_the_client_on_its_worker",
        sqlaio::TokioStrategy,
        "tokio_mt",
    )
    .await;
}

#[tokio::test]
async fn thread_strategy_under_tokio_keeps_the_client_on_its_worker() {
    runtime_test(
        "thread_strategy_under_tokio_keeps_the_client_on_its_worker",
        sqlaio::ThreadStrategy,
        "thread_tokio",
    )
    .await;
}

#[cfg(feature = "async-std")]
#[async_std::test]
async fn async_std_keeps_the_client_on_its_worker() {
    runtime_test(
        "async_std_keeps_the_client_on_its_worker",
        sqlaio::AsyncStdStrategy,
        "async_std",
    )
    .await;
}

#[cfg(feature = "smol")]
#[test]
fn smol_keeps_the_client_on_its_worker() {
    smol::block_on(runtime_test(
        "smol_keeps_the_client_on_its_worker",
        sqlaio::SmolStrategy,
        "smol",
    ));
}

// ---------------------------------------------------------------------------
// 8. TLS and URL forms
// ---------------------------------------------------------------------------

#[cfg(feature = "tls")]
const SSL_IN_USE: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

#[cfg(feature = "tls")]
#[test]
fn sslmode_require_encrypts_and_disable_does_not() {
    run(
        "sslmode_require_encrypts_and_disable_does_not",
        |url| async move {
            let server_ssl: String = {
                let plain = Engine::builder()
                    .url(with_option(&url, "sslmode=disable"))
                    .build()?;
                let ssl = plain.scalar::<bool>(SSL_IN_USE, ()).await?;
                assert!(!ssl, "sslmode=disable must not encrypt");
                let on = plain.scalar("SELECT current_setting('ssl')", ()).await?;
                plain.close().await?;
                on
            };
            if server_ssl != "on" {
                eprintln!("the server has ssl={server_ssl}: sslmode=require not tested");
                return Ok(());
            }
            let secure = Engine::builder()
                .url(with_option(&url, "sslmode=require"))
                .build()?;
            assert!(
                secure.scalar::<bool>(SSL_IN_USE, ()).await?,
                "sslmode=require must encrypt"
            );
            // Everything else works over TLS too.
            let n: i64 = secure
                .scalar("SELECT sum(g)::int8 FROM generate_series(1, 1000) AS g", ())
                .await?;
            assert_eq!(n, 500_500);
            secure.close().await?;

            // The default (prefer) encrypts when the server offers TLS.
            if !url.contains("sslmode") {
                let default = Engine::builder().url(&url).build()?;
                assert!(
                    default.scalar::<bool>(SSL_IN_USE, ()).await?,
                    "sslmode=prefer encrypts"
                );
                default.close().await?;
            }
            Ok(())
        },
    );
}

#[cfg(not(feature = "tls"))]
#[test]
fn sslmode_require_without_tls_feature_says_so() {
    run_offline(
        "sslmode_require_without_tls_feature_says_so",
        |url| async move {
            let e = Engine::builder()
                .url(with_option(&url, "sslmode=require"))
                .build()
                .unwrap_err();
            assert!(e.to_string().contains("\"tls\" feature"), "{e}");
            Ok(())
        },
    );
}

#[test]
fn postgresql_scheme_works() {
    run("postgresql_scheme_works", |url| async move {
        let Some(rest) = url.strip_prefix("postgres://") else {
            eprintln!("postgresql_scheme_works: DATABASE_URL is not a postgres:// URL; skipped");
            return Ok(());
        };
        let engine = Engine::builder()
            .url(format!("postgresql://{rest}"))
            .build()?;
        assert_eq!(engine.scalar::<i32>("SELECT 1", ()).await?, 1);
        engine.close().await
    });
}

/// The key-value form of `url`: `host=... port=... user=... dbname=...`.
fn key_value(url: &str) -> String {
    use sqlaio::postgres::config::Host;
    if !url.contains("://") {
        return url.to_owned();
    }
    let config: sqlaio::postgres::Config = url.parse().expect("a valid URL");
    let quote = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut parts = Vec::new();
    match config.get_hosts().first() {
        Some(Host::Tcp(h)) => parts.push(format!("host={}", quote(h))),
        #[cfg(unix)]
        Some(Host::Unix(p)) => parts.push(format!("host={}", quote(&p.display().to_string()))),
        None => {}
    }
    if let Some(port) = config.get_ports().first() {
        parts.push(format!("port={port}"));
    }
    if let Some(user) = config.get_user() {
        parts.push(format!("user={}", quote(user)));
    }
    if let Some(password) = config.get_password() {
        parts.push(format!(
            "password={}",
            quote(&String::from_utf8_lossy(password))
        ));
    }
    if let Some(db) = config.get_dbname() {
        parts.push(format!("dbname={}", quote(db)));
    }
    parts.join(" ")
}

#[test]
fn key_value_connection_strings_work() {
    run("key_value_connection_strings_work", |url| async move {
        if pg_support::using_default_url() {
            // The literal form, as a user would write it.
            let engine = Engine::builder()
                .url("host=127.0.0.1 port=5432 user=root dbname=test")
                .build()?;
            assert_eq!(engine.scalar::<i32>("SELECT 1", ()).await?, 1);
            engine.close().await?;
        }
        let kv = key_value(&url);
        let engine = Engine::builder().url(&kv).build()?;
        assert_eq!(engine.scalar::<i32>("SELECT 2", ()).await?, 2);
        let app = unique("kv_app");
        let named = Engine::builder()
            .url(format!("{kv} application_name={app}"))
            .build()?;
        let got: String = named
            .scalar("SELECT current_setting('application_name')", ())
            .await?;
        assert_eq!(got, app);
        named.close().await?;
        engine.close().await
    });
}

#[test]
fn application_name_in_the_url_reaches_the_server() {
    run(
        "application_name_in_the_url_reaches_the_server",
        |url| async move {
            let app = unique("app");
            let engine = Engine::builder()
                .url(with_option(&url, &format!("application_name={app}")))
                .build()?;
            let got: String = engine
                .scalar("SELECT current_setting('application_name')", ())
                .await?;
            assert_eq!(got, app);
            engine.close().await
        },
    );
}

// ---------------------------------------------------------------------------
// 9. Passwords never appear
// ---------------------------------------------------------------------------

const SECRET: &str = "s3cr3t-pw";

fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the password: {text}");
}

#[test]
fn passwords_never_appear_in_debug_or_errors() {
    run_offline(
        "passwords_never_appear_in_debug_or_errors",
        |_| async move {
            for url in [
                format!("postgres://root:{SECRET}@127.0.0.1:5432/test"),
                format!("postgresql://root:{SECRET}@127.0.0.1:5432/test?sslmode=disable"),
                format!("postgres://root@127.0.0.1:5432/test?password={SECRET}&sslmode=disable"),
                format!("host=127.0.0.1 port=5432 user=root password={SECRET} dbname=test"),
                format!("host=127.0.0.1 user=root password='{SECRET}' dbname=test"),
            ] {
                let builder = Engine::builder().url(&url);
                assert_no_secret("EngineBuilder's Debug", &format!("{builder:?}"));
                let engine = builder.build()?;
                assert_no_secret("Engine's Debug", &format!("{engine:?}"));
                assert_no_secret("Engine::url", engine.url());
                engine.close().await?;
            }

            // Nothing listens on port 1: connecting fails, and says so without the password.
            for url in [
            format!("postgres://root:{SECRET}@127.0.0.1:1/test?connect_timeout=2"),
            format!("host=127.0.0.1 port=1 user=root password={SECRET} dbname=test connect_timeout=2"),
        ] {
            let engine = Engine::builder()
                .url(&url)
                .acquire_timeout(Duration::from_secs(1))
                .build()?;
            let e = engine.connect().await.unwrap_err();
            assert!(is_connect_failure(&e), "{e:?}");
            let text = e.to_string();
            assert!(text.contains("could not connect"), "{text}");
            assert!(text.contains("127.0.0.1"), "{text}");
            assert_no_secret("the connect error", &text);
            assert_no_secret("the connect error's Debug", &format!("{e:?}"));
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                assert_no_secret("a source of the connect error", &s.to_string());
                source = s.source();
            }
            let e = engine.execute("SELECT 1", ()).await.unwrap_err();
            assert_no_secret("the execute error", &e.to_string());
            assert_no_secret("Engine's Debug", &format!("{engine:?}"));
            engine.close().await?;
        }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// 10. Lost connections
// ---------------------------------------------------------------------------

/// Terminates the backend `pid` from another engine and waits (bounded)
/// until the server no longer lists it.
async fn kill_backend(killer: &Engine, pid: i32) -> Result<()> {
    let killed: bool = killer
        .scalar("SELECT pg_terminate_backend($1)", (pid,))
        .await?;
    assert!(killed, "pg_terminate_backend({pid}) failed");
    pg_support::eventually(
        "the terminated backend goes away",
        Duration::from_secs(10),
        || async move {
            let left: i64 = killer
                .scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                    (pid,),
                )
                .await?;
            Ok(left == 0)
        },
    )
    .await
}

#[test]
fn a_lost_connection_is_reported_and_replaced() {
    run(
        "a_lost_connection_is_reported_and_replaced",
        |url| async move {
            let engine = Engine::builder().url(&url).max_connections(1).build()?;
            let killer = Engine::builder().url(&url).max_connections(1).build()?;
            // Round 0 prepares the next statement afresh; later rounds find it in
            // the statement cache of the replacement connection.
            for round in 0..3 {
                let conn = engine.connect().await?;
                let pid: i32 = conn.scalar("SELECT pg_backend_pid()", ()).await?;
                kill_backend(&killer, pid).await?;

                let e = within(
                    "the first statement after the kill",
                    conn.execute("SELECT 1", ()),
                )
                .await
                .expect_err("a statement on a terminated connection fails");
                assert!(
                    e.is_connection_lost(),
                    "round {round}: expected a lost connection, got {e:?}"
                );
                assert!(
                    e.to_string()
                        .contains("connection to the database was lost"),
                    "round {round}: {e}"
                );
                // The dead connection keeps failing, at once.
                let again = within(
                    "a second statement on the lost connection",
                    conn.scalar::<i32>("SELECT 1", ()),
                )
                .await;
                assert!(again.is_err(), "round {round}: {again:?}");
                drop(conn);

                // The pool discarded the dead connection and opens a new one.
                let mut result = within(
                    "a statement after the lost connection was returned",
                    engine.execute("SELECT 1", ()),
                )
                .await?;
                let one: i32 = result.fetchone().await?.expect("one row").get(0)?;
                assert_eq!(one, 1);
                drop(result);
                let new_pid: i32 = engine.scalar("SELECT pg_backend_pid()", ()).await?;
                assert_ne!(new_pid, pid);
            }
            killer.close().await?;
            engine.close().await
        },
    );
}

/// Sends a slow statement, then three short ones, through `send`, so that
/// they queue on one connection; kills its backend `pid` while the slow one
/// runs, and returns every answer.
async fn lost_under_queue<'a>(
    killer: &Engine,
    pid: i32,
    send: impl Fn(&'static str) -> futures::future::BoxFuture<'a, Result<i32>>,
) -> Result<Vec<Result<i32>>> {
    let mut queued = vec![send(
        "SELECT count(*)::int FROM (SELECT pg_sleep(0.5)) AS s",
    )];
    queued.extend((0..3).map(|_| send("SELECT 1")));
    for statement in &mut queued {
        assert!(futures::poll!(statement).is_pending());
    }
    kill_backend(killer, pid).await?;
    Ok(within(
        "the statements queued on the lost connection",
        futures::future::join_all(queued),
    )
    .await)
}

#[test]
fn statements_queued_on_a_lost_connection_do_not_hang() {
    run(
        "statements_queued_on_a_lost_connection_do_not_hang",
        |url| async move {
            let engine = Engine::builder().url(&url).max_connections(1).build()?;
            let killer = Engine::builder().url(&url).max_connections(1).build()?;
            let pid: i32 = engine.scalar("SELECT pg_backend_pid()", ()).await?;
            for _ in 0..10 {
                engine.scalar::<i32>("SELECT 1", ()).await?;
            }
            // Engine statements queue on the one busy connection (see
            // `Engine::execute`), and the connection is lost under them.
            // The statement running when it was lost fails; those queued
            // behind it never ran, and run on a new connection.
            let mut answers =
                lost_under_queue(&killer, pid, |sql| engine.scalar(sql, ()).boxed()).await?;
            let first = answers
                .remove(0)
                .expect_err("the statement on the lost connection");
            assert!(first.is_connection_lost(), "{first:?}");
            for answer in answers {
                assert_eq!(answer?, 1);
            }
            // The pool replaced the connection.
            let new_pid: i32 = within(
                "a statement afterwards",
                engine.scalar("SELECT pg_backend_pid()", ()),
            )
            .await?;
            assert_ne!(new_pid, pid);

            // Tasks sharing one connection: those queued behind the lost
            // statement fail too, at once, as the connection is gone.
            let conn = engine.connect().await?;
            let pid: i32 = conn.scalar("SELECT pg_backend_pid()", ()).await?;
            let mut answers =
                lost_under_queue(&killer, pid, |sql| conn.scalar(sql, ()).boxed()).await?;
            let first = answers.remove(0).expect_err("the lost statement");
            assert!(first.is_connection_lost(), "{first:?}");
            for answer in answers {
                let e = answer.expect_err("a statement queued on a lost connection");
                assert!(e.is_closed(), "{e:?}");
            }
            drop(conn);
            assert_eq!(engine.scalar::<i32>("SELECT 1", ()).await?, 1);
            killer.close().await?;
            engine.close().await
        },
    );
}

#[test]
fn a_lost_connection_inside_a_transaction_is_reported_and_replaced() {
    run(
        "a_lost_connection_inside_a_transaction_is_reported_and_replaced",
        |url| async move {
            let engine = Engine::builder().url(&url).max_connections(1).build()?;
            let killer = Engine::builder().url(&url).max_connections(1).build()?;
            let conn = engine.connect().await?;
            let tx = conn.begin().await?;
            let pid: i32 = tx.scalar("SELECT pg_backend_pid()", ()).await?;
            kill_backend(&killer, pid).await?;
            let e = within("a statement after the kill", tx.execute("SELECT 1", ()))
                .await
                .unwrap_err();
            assert!(e.is_connection_lost(), "{e:?}");
            // Ending the transaction cannot succeed, but must not hang or panic.
            let _ = within("the rollback after the kill", tx.rollback()).await;
            drop(conn);
            let one = within(
                "a statement after the lost connection was returned",
                engine.scalar::<i32>("SELECT 1", ()),
            )
            .await?;
            assert_eq!(one, 1);
            killer.close().await?;
            engine.close().await
        },
    );
}

#[test]
fn an_idle_pooled_connection_that_was_lost_is_replaced() {
    run(
        "an_idle_pooled_connection_that_was_lost_is_replaced",
        |url| async move {
            let engine = Engine::builder().url(&url).max_connections(1).build()?;
            let killer = Engine::builder().url(&url).max_connections(1).build()?;
            let pid: i32 = engine.scalar("SELECT pg_backend_pid()", ()).await?;
            kill_backend(&killer, pid).await?;
            // The pool cannot know before it tries: the first call may report
            // the loss, but the one after it works on a new connection.
            match within(
                "the first statement after the kill",
                engine.scalar::<i32>("SELECT 1", ()),
            )
            .await
            {
                Ok(one) => assert_eq!(one, 1),
                Err(e) => assert!(e.is_connection_lost(), "{e:?}"),
            }
            let one = within(
                "the second statement after the kill",
                engine.scalar::<i32>("SELECT 1", ()),
            )
            .await?;
            assert_eq!(one, 1);
            killer.close().await?;
            engine.close().await
        },
    );
}

/// A connection that read a row over 8 MiB keeps serving its holder, and is
/// replaced once it is back in the pool (its client buffers stay that large);
/// one that read small rows is kept.
#[test]
fn a_connection_that_read_a_huge_row_is_replaced_in_the_pool() {
    run(
        "a_connection_that_read_a_huge_row_is_replaced_in_the_pool",
        |url| async move {
            // Without TLS: over TLS the big read itself is slow (see docs/limitations.md).
            let url = with_option(&url, "sslmode=disable");
            let engine = Engine::builder().url(&url).max_connections(1).build()?;
            let pid: i32 = engine.scalar("SELECT pg_backend_pid()", ()).await?;
            let small: Vec<u8> = engine
                .scalar("SELECT decode(repeat('ab', 1024 * 1024), 'hex')", ())
                .await?;
            assert_eq!(small.len(), 1024 * 1024);
            assert_eq!(
                engine.scalar::<i32>("SELECT pg_backend_pid()", ()).await?,
                pid
            );

            let conn = engine.connect().await?;
            let huge: Vec<u8> = conn
                .scalar("SELECT decode(repeat('ab', 9 * 1024 * 1024), 'hex')", ())
                .await?;
            assert_eq!(huge.len(), 9 * 1024 * 1024);
            // Its holder keeps it.
            assert_eq!(
                conn.scalar::<i32>("SELECT pg_backend_pid()", ()).await?,
                pid
            );
            drop(conn);
            let next: i32 = engine.scalar("SELECT pg_backend_pid()", ()).await?;
            assert_ne!(next, pid, "the worn connection went back into use");
            assert_eq!(engine.pool_status().size, 1);
            engine.close().await?;
            assert_eq!(engine.worker_count(), 0);
            Ok(())
        },
    );
}

#[test]
fn test_before_acquire_replaces_a_lost_idle_connection_unseen() {
    run(
        "test_before_acquire_replaces_a_lost_idle_connection_unseen",
        |url| async move {
            let engine = Engine::builder()
                .url(&url)
                .max_connections(1)
                .test_before_acquire(true)
                .build()?;
            let killer = Engine::builder().url(&url).max_connections(1).build()?;
            let pid: i32 = engine.scalar("SELECT pg_backend_pid()", ()).await?;
            kill_backend(&killer, pid).await?;
            // The pool checks the idle connection first, finds it dead and
            // opens a new one: the caller never sees the loss.
            let new_pid = within(
                "the first statement after the kill",
                engine.scalar::<i32>("SELECT pg_backend_pid()", ()),
            )
            .await?;
            assert_ne!(new_pid, pid);
            killer.close().await?;
            engine.close().await
        },
    );
}
