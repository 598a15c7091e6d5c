//! Type conversions both ways: integers signed and unsigned, text, bytes,
//! floats, decimals, JSON, ENUM, SET, NULL, dates and times.

use super::*;

// ---------------------------------------------------------------------------
// Types, both ways
// ---------------------------------------------------------------------------

#[test]
fn integers_signed_and_unsigned_round_trip_without_wrapping() {
    run(
        "integers_signed_and_unsigned_round_trip_without_wrapping",
        |url| async move {
            let engine = engine(&url)?;
            engine
            .execute(
                "CREATE TABLE ints (t TINYINT, tu TINYINT UNSIGNED, s SMALLINT, m MEDIUMINT, \
                 i INT, iu INT UNSIGNED, b BIGINT, bu BIGINT UNSIGNED, y YEAR, bits BIT(12), flag BOOL)",
                (),
            )
            .await?;
            engine
                .execute(
                    "INSERT INTO ints VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, b'101000000001', ?)",
                    (
                        -128,
                        255,
                        -32768,
                        -8388608,
                        i32::MIN,
                        u32::MAX,
                        i64::MIN,
                        i64::MAX,
                        2024,
                        true,
                    ),
                )
                .await?;
            let row = engine
                .execute("SELECT * FROM ints", ())
                .await?
                .first()
                .await?
                .unwrap();
            assert_eq!(row.get::<i8>("t")?, -128);
            assert_eq!(row.get::<u8>("tu")?, 255);
            assert_eq!(row.get::<i16>("s")?, -32768);
            assert_eq!(row.get::<i32>("m")?, -8388608);
            assert_eq!(row.get::<i32>("i")?, i32::MIN);
            assert_eq!(row.get::<u32>("iu")?, u32::MAX);
            assert_eq!(row.get::<i64>("b")?, i64::MIN);
            assert_eq!(row.get::<i64>("bu")?, i64::MAX);
            assert_eq!(row.get::<i64>("y")?, 2024);
            assert_eq!(row.get::<i64>("bits")?, 0b1010_0000_0001);
            assert!(row.get::<bool>("flag")?);

            // Above i64::MAX: a decimal with the feature, an error without it.
            engine
                .execute("UPDATE ints SET bu = 18446744073709551615", ())
                .await?;
            let above = engine
                .execute("SELECT bu FROM ints", ())
                .await?
                .first()
                .await;
            #[cfg(feature = "decimal")]
            {
                let row = above?.unwrap();
                assert_eq!(
                    row.get::<rust_decimal::Decimal>(0)?,
                    rust_decimal::Decimal::from(u64::MAX)
                );
                assert!(row.get::<i64>(0).is_err());
            }
            #[cfg(not(feature = "decimal"))]
            {
                let err = above.unwrap_err();
                assert!(err.to_string().contains("18446744073709551615"), "{err}");
            }
            // Out of a column's range is the server's error, not a silent clamp (strict mode).
            let err = engine
                .execute("INSERT INTO ints (tu) VALUES (?)", (256,))
                .await
                .unwrap_err();
            assert!(err.is_database(), "{err}");
            engine.close().await
        },
    );
}

#[test]
fn text_binary_float_decimal_json_enum_set_and_null() {
    run(
        "text_binary_float_decimal_json_enum_set_and_null",
        |url| async move {
            let engine = engine(&url)?;
            engine
            .execute(
                "CREATE TABLE mixed (v VARCHAR(20), c CHAR(3), t TEXT, vb VARBINARY(8), bl BLOB, \
                 f FLOAT, d DOUBLE, dec1 DECIMAL(12,4), j JSON, e ENUM('red','green'), \
                 st SET('a','b','c'), n INT NULL) CHARACTER SET utf8mb4",
                (),
            )
            .await?;
            engine
                .execute(
                    "INSERT INTO mixed VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    sqlaio::params![
                        "héllo ✓",
                        "abc",
                        "long text",
                        vec![0u8, 159, 146, 150],
                        vec![1u8, 2, 3],
                        1.5f32,
                        0.1f64,
                        "12345678.1234",
                        r#"{"a": [1, 2]}"#,
                        "green",
                        "a,c",
                        None::<i64>
                    ],
                )
                .await?;
            let row = engine
                .execute("SELECT * FROM mixed", ())
                .await?
                .first()
                .await?
                .unwrap();
            assert_eq!(row.get_value("v")?, &Value::Text("héllo ✓".into()));
            assert_eq!(row.get::<String>("c")?, "abc");
            assert_eq!(row.get::<String>("t")?, "long text");
            assert_eq!(row.get_value("vb")?, &Value::Blob(vec![0, 159, 146, 150]));
            assert_eq!(row.get::<Vec<u8>>("bl")?, [1, 2, 3]);
            assert_eq!(row.get::<f64>("f")?, 1.5);
            assert_eq!(row.get::<f64>("d")?, 0.1);
            #[cfg(feature = "decimal")]
            assert_eq!(
                row.get::<rust_decimal::Decimal>("dec1")?,
                "12345678.1234".parse::<rust_decimal::Decimal>().unwrap()
            );
            #[cfg(not(feature = "decimal"))]
            assert_eq!(row.get::<String>("dec1")?, "12345678.1234");
            #[cfg(feature = "json")]
            assert_eq!(
                row.get::<serde_json::Value>("j")?,
                serde_json::json!({"a": [1, 2]})
            );
            assert_eq!(row.get::<String>("e")?, "green");
            assert_eq!(row.get::<String>("st")?, "a,c");
            assert_eq!(row.get::<Option<i64>>("n")?, None);
            assert!(row.get_value("n")?.is_null());

            // Typed values bind back.
            #[cfg(feature = "decimal")]
            {
                let d: rust_decimal::Decimal = "-0.0001".parse().unwrap();
                let back: rust_decimal::Decimal = engine
                    .scalar("SELECT CAST(? AS DECIMAL(10,4))", (d,))
                    .await?;
                assert_eq!(back, d);
            }
            #[cfg(feature = "json")]
            {
                let doc = serde_json::json!({"k": "v"});
                engine
                    .execute("UPDATE mixed SET j = ?", (doc.clone(),))
                    .await?;
                assert_eq!(
                    engine
                        .scalar::<serde_json::Value>("SELECT j FROM mixed", ())
                        .await?,
                    doc
                );
            }
            engine.close().await
        },
    );
}

#[cfg(feature = "chrono")]
#[test]
fn dates_and_times_round_trip_and_refuse_what_chrono_cannot_hold() {
    use chrono::{NaiveDate, NaiveTime};
    run(
        "dates_and_times_round_trip_and_refuse_what_chrono_cannot_hold",
        |url| async move {
            let engine = Engine::builder().url(&url).max_connections(1).build()?;
            engine
                .execute(
                    "CREATE TABLE times (d DATE, dt DATETIME(6), ts TIMESTAMP(3) NULL, t TIME(6))",
                    (),
                )
                .await?;
            let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
            let dt = d.and_hms_micro_opt(13, 14, 15, 123_456).unwrap();
            let ts = d.and_hms_milli_opt(1, 2, 3, 450).unwrap();
            let t = NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap();
            engine
                .execute("INSERT INTO times VALUES (?, ?, ?, ?)", (d, dt, ts, t))
                .await?;
            let row = engine
                .execute("SELECT * FROM times", ())
                .await?
                .first()
                .await?
                .unwrap();
            assert_eq!(row.get::<NaiveDate>("d")?, d);
            assert_eq!(row.get::<chrono::NaiveDateTime>("dt")?, dt);
            assert_eq!(row.get::<chrono::NaiveDateTime>("ts")?, ts);
            assert_eq!(row.get::<NaiveTime>("t")?, t);

            // TIME beyond a day, or negative: a clear error, and readable another way.
            let err = engine
                .scalar::<Value>("SELECT CAST('25:00:00' AS TIME)", ())
                .await
                .unwrap_err();
            assert!(err.to_string().contains("outside a day"), "{err}");
            let err = engine
                .scalar::<Value>("SELECT CAST('-01:00:00' AS TIME)", ())
                .await
                .unwrap_err();
            assert!(err.to_string().contains("-01:00:00"), "{err}");
            assert_eq!(
                engine
                    .scalar::<i64>("SELECT TIME_TO_SEC(CAST('25:00:00' AS TIME))", ())
                    .await?,
                90_000
            );
            // A zero date (allowed by a lax sql_mode) is an error, not a made-up date.
            let conn = engine.connect().await?;
            conn.execute("SET SESSION sql_mode = ''", ()).await?;
            conn.execute(
                "INSERT INTO times (d, dt) VALUES ('0000-00-00', '0000-00-00 00:00:00')",
                (),
            )
            .await?;
            let err = match conn
                .execute("SELECT d FROM times WHERE d = '0000-00-00'", ())
                .await
            {
                Err(e) => e,
                Ok(rows) => panic!("a zero date decoded as {rows:?}"),
            };
            assert!(err.to_string().contains("zero dates"), "{err}");
            // The connection goes on.
            assert_eq!(conn.scalar::<i64>("SELECT 1", ()).await?, 1);
            // Years MySQL cannot store are refused before they are sent.
            let far = NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap();
            let err = conn.execute("SELECT ?", (far,)).await.unwrap_err();
            assert!(matches!(err, Error::Parameter(_)), "{err}");
            drop(conn);
            engine.close().await
        },
    );
}
