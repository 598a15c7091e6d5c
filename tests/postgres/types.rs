//! PostgreSQL's types: each one round-trips at its limits (NaN and
//! infinities, the integer extremes, empty and large values, NULL), values
//! out of a column's range fail clearly both ways, and a type sqlaio does not
//! read, or reads only behind a cargo feature, is named in the error.
//!
//! Conversions do not depend on the runtime: each body runs once.

use futures::TryStreamExt;
use sqlaio::{Error, Value};

use crate::common::pg::unique;
use crate::common::Ctx;

stamp! {
    runtimes: one, backends: [postgres];
    bool_round_trips,
    integers_round_trip_at_their_limits,
    floats_round_trip_with_nan_and_infinities,
    text_types_round_trip,
    bytea_round_trips_empty_and_large,
    nulls_of_every_type_read_as_none,
    binding_out_of_range_integers_fails_clearly,
    decoding_out_of_range_integers_fails_clearly,
    unsupported_types_are_named_in_the_error,
}

#[cfg(feature = "decimal")]
stamp! {
    runtimes: one, backends: [postgres];
    numeric_round_trips_as_decimal,
}

#[cfg(feature = "chrono")]
stamp! {
    runtimes: one, backends: [postgres];
    date_and_time_round_trip_through_chrono,
}

#[cfg(feature = "uuid")]
stamp! {
    runtimes: one, backends: [postgres];
    uuid_round_trips,
}

#[cfg(feature = "json")]
stamp! {
    runtimes: one, backends: [postgres];
    json_and_jsonb_round_trip,
    json_columns_read_as_value_json,
}

#[cfg(not(feature = "decimal"))]
stamp! {
    runtimes: one, backends: [postgres];
    numeric_without_the_decimal_feature_names_the_feature,
}

#[cfg(not(feature = "chrono"))]
stamp! {
    runtimes: one, backends: [postgres];
    timestamps_without_the_chrono_feature_name_the_feature,
}

#[cfg(not(feature = "uuid"))]
stamp! {
    runtimes: one, backends: [postgres];
    uuid_without_the_uuid_feature_names_the_feature,
}

fn same_f64(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

const NON_ASCII: &str = "Zoë — 東京 🚀";

async fn bool_round_trips(ctx: Ctx) -> sqlaio::Result<()> {
    let t = unique("bool");
    let engine = ctx.builder().max_connections(4).build()?;
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
}

async fn integers_round_trip_at_their_limits(ctx: Ctx) -> sqlaio::Result<()> {
    let t = unique("ints");
    let engine = ctx.builder().max_connections(4).build()?;
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
}

async fn floats_round_trip_with_nan_and_infinities(ctx: Ctx) -> sqlaio::Result<()> {
    let t = unique("floats");
    let engine = ctx.builder().max_connections(4).build()?;
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
}

async fn text_types_round_trip(ctx: Ctx) -> sqlaio::Result<()> {
    let t = unique("text");
    let engine = ctx.builder().max_connections(4).build()?;
    let conn = engine.connect().await?;
    conn.execute(
        format!("CREATE TABLE {t} (id int4 PRIMARY KEY, t text, v varchar(40), c char(5), n name)"),
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
}

async fn bytea_round_trips_empty_and_large(ctx: Ctx) -> sqlaio::Result<()> {
    const BIG: usize = 10 * 1024 * 1024;
    let t = unique("bytea");
    let engine = ctx.builder().max_connections(4).build()?;
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
}

async fn nulls_of_every_type_read_as_none(ctx: Ctx) -> sqlaio::Result<()> {
    let t = unique("nulls");
    let engine = ctx.builder().max_connections(4).build()?;
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
}

#[cfg(feature = "decimal")]
async fn numeric_round_trips_as_decimal(ctx: Ctx) -> sqlaio::Result<()> {
    use rust_decimal::Decimal;
    use std::str::FromStr;

    let t = unique("numeric");
    let engine = ctx.builder().max_connections(4).build()?;
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
}

#[cfg(feature = "chrono")]
async fn date_and_time_round_trip_through_chrono(ctx: Ctx) -> sqlaio::Result<()> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

    let t = unique("chrono");
    let engine = ctx.builder().max_connections(4).build()?;
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
}

#[cfg(feature = "uuid")]
async fn uuid_round_trips(ctx: Ctx) -> sqlaio::Result<()> {
    use uuid::Uuid;

    let t = unique("uuid");
    let engine = ctx.builder().max_connections(4).build()?;
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
}

#[cfg(feature = "json")]
async fn json_and_jsonb_round_trip(ctx: Ctx) -> sqlaio::Result<()> {
    use serde_json::json;

    let t = unique("json");
    let engine = ctx.builder().max_connections(4).build()?;
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
}

/// With the `json` feature, a json/jsonb column reads as `Value::Json`, as
/// `Value::Json`'s documentation says, like the other wider types read as
/// their own variants.
#[cfg(feature = "json")]
async fn json_columns_read_as_value_json(ctx: Ctx) -> sqlaio::Result<()> {
    let engine = ctx.builder().max_connections(4).build()?;
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
}

async fn binding_out_of_range_integers_fails_clearly(ctx: Ctx) -> sqlaio::Result<()> {
    let t = unique("range");
    let engine = ctx.builder().max_connections(4).build()?;
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
        .collect::<sqlaio::Result<_>>()?;
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
}

async fn decoding_out_of_range_integers_fails_clearly(ctx: Ctx) -> sqlaio::Result<()> {
    let engine = ctx.builder().max_connections(4).build()?;
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
}

async fn unsupported_types_are_named_in_the_error(ctx: Ctx) -> sqlaio::Result<()> {
    let engine = ctx.builder().max_connections(4).build()?;
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
}

#[cfg(not(feature = "decimal"))]
async fn numeric_without_the_decimal_feature_names_the_feature(ctx: Ctx) -> sqlaio::Result<()> {
    let engine = ctx.builder().max_connections(4).build()?;
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
}

#[cfg(not(feature = "chrono"))]
async fn timestamps_without_the_chrono_feature_name_the_feature(ctx: Ctx) -> sqlaio::Result<()> {
    let engine = ctx.builder().max_connections(4).build()?;
    for sql in [
        "SELECT now()",
        "SELECT current_date",
        "SELECT '12:00'::time",
    ] {
        let e = engine.execute(sql, ()).await.unwrap_err();
        assert!(e.to_string().contains("\"chrono\" feature"), "{sql}: {e}");
    }
    engine.close().await
}

#[cfg(not(feature = "uuid"))]
async fn uuid_without_the_uuid_feature_names_the_feature(ctx: Ctx) -> sqlaio::Result<()> {
    let engine = ctx.builder().max_connections(4).build()?;
    let e = engine
        .execute("SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", ())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("\"uuid\" feature"), "{e}");
    engine.close().await
}
