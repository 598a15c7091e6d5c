//! MySQL and MariaDB specifics: what the API does only there, type
//! conversions both ways, errors, deadlocks, cancellation with `KILL QUERY`
//! watched in the server's processlist, early close of a large result,
//! connections killed under load, a server restart under load, and
//! sea-query statements MySQL cannot express. What every backend shares
//! (results, transactions, implicit commits, pools, run_in_thread,
//! migrations, ...) is in the behavioural suite (`tests/behaviour`),
//! stamped for MariaDB too.
//!
//! The server comes from `MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`).
//! Each test works in a database of its own, created for it and dropped
//! after it. Without a server every test is skipped with a note on stderr,
//! unless `CI=true`, where it fails.

#![cfg(feature = "mysql")]

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant};

use sqlaio::mysql::prelude::Queryable;
use sqlaio::{Engine, Error, Result, Sql, Value};

const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// How long one test may run before it is reported as hung.
const LIMIT: Duration = Duration::from_secs(120);

fn server_url() -> String {
    match std::env::var("MYSQL_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => DEFAULT_URL.to_owned(),
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A plain `mysql` connection to `url`, for setting up and looking on.
fn raw(url: &str) -> std::result::Result<sqlaio::mysql::Conn, sqlaio::mysql::Error> {
    let opts = sqlaio::mysql::Opts::from_url(url)?;
    let opts = sqlaio::mysql::OptsBuilder::from_opts(opts)
        .tcp_connect_timeout(Some(Duration::from_secs(5)))
        .read_timeout(Some(Duration::from_secs(30)));
    sqlaio::mysql::Conn::new(opts)
}

/// `Ok(url)` when a server answers.
fn probe() -> &'static std::result::Result<String, String> {
    static SERVER: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    SERVER.get_or_init(|| {
        let url = server_url();
        match raw(&url).and_then(|mut c| c.query_drop("SELECT 1")) {
            Ok(()) => Ok(url),
            Err(e) => Err(e.to_string()),
        }
    })
}

/// A database of the test's own, dropped when the value is.
struct Scratch {
    server: String,
    name: String,
    url: String,
}

impl Scratch {
    fn new(server: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "sqlaio_t_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = raw(server).expect("connect to create a database");
        conn.query_drop(format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        conn.query_drop(format!("CREATE DATABASE {name}")).unwrap();
        // The same URL with the test's database as its path.
        let (base, query) = server.split_once('?').unwrap_or((server, ""));
        let after_scheme = base.find("://").map_or(0, |i| i + 3);
        let path = base[after_scheme..]
            .find('/')
            .map_or(base.len(), |i| after_scheme + i);
        let mut url = format!("{}/{name}", &base[..path]);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        Scratch {
            server: server.to_owned(),
            name,
            url,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(mut conn) = raw(&self.server) {
            let _ = conn.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
        }
    }
}

/// Held shared by every test of this file while it uses the server, and
/// exclusively by the test that restarts it.
static SERVER_IN_USE: RwLock<()> = RwLock::new(());

/// Runs an async test body in a fresh database on a thread of its own,
/// bounded by [`LIMIT`]; skips it when no server answers (fails under CI).
fn run<F, Fut>(name: &'static str, body: F)
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>>,
{
    let _shared = SERVER_IN_USE.read().unwrap_or_else(|e| e.into_inner());
    run_body(name, body);
}

/// [`run`], with no other test of this file using the server meanwhile.
fn run_alone<F, Fut>(name: &'static str, body: F)
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>>,
{
    let _alone = SERVER_IN_USE.write().unwrap_or_else(|e| e.into_inner());
    run_body(name, body);
}

fn run_body<F, Fut>(name: &'static str, body: F)
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>>,
{
    let server = match probe() {
        Ok(url) => url.clone(),
        Err(why) => {
            if in_ci() {
                panic!("{name}: no MySQL server at MYSQL_URL: {why} (CI=true: a missing server fails the test)");
            }
            let _ = writeln!(
                std::io::stderr(),
                "{name}: skipped: no MySQL server at MYSQL_URL: {why}"
            );
            return;
        }
    };
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let scratch = Scratch::new(&server);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let outcome = rt.block_on(body(scratch.url.clone()));
        drop(rt);
        drop(scratch);
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(())) => {
            let _ = handle.join();
        }
        Ok(Err(e)) => panic!("{name} failed: {e}\n{e:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name} did not finish within {LIMIT:?}"),
    }
}

fn engine(url: &str) -> Result<Engine> {
    Engine::builder().url(url).max_connections(4).build()
}

/// Polls `check` until it is `true`, for at most `limit`.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await? {
            return Ok(());
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Statements of session `id` still running, as the server lists them.
async fn running(observer: &Engine, id: i64) -> Result<i64> {
    observer
        .scalar::<i64>(
            "SELECT COUNT(*) FROM information_schema.processlist \
             WHERE id = ? AND command = 'Query'",
            (id,),
        )
        .await
}

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

// ---------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------

#[test]
fn a_timeout_kills_the_statement_and_the_connection_answers_next() {
    run(
        "a_timeout_kills_the_statement_and_the_connection_answers_next",
        |url| async move {
            let observer = engine(&url)?;
            let engine = engine(&url)?;
            let conn = engine.connect().await?;
            let id: i64 = conn.scalar("SELECT CONNECTION_ID()", ()).await?;
            for sql in [
                "SELECT SLEEP(30)",
                // No error of its own when killed on MariaDB: still a timeout.
                "DO SLEEP(30)",
                "SELECT BENCHMARK(100000000000, MD5('x'))",
            ] {
                let err = conn
                    .execute(Sql::new(sql).timeout(Duration::from_millis(300)), ())
                    .await
                    .unwrap_err();
                assert!(err.is_timeout(), "{sql}: {err}");
                eventually(
                    "the statement is gone from the processlist",
                    Duration::from_secs(10),
                    || async { Ok(running(&observer, id).await? == 0) },
                )
                .await?;
                // The same connection, answering its own next call.
                assert_eq!(conn.scalar::<i64>("SELECT CONNECTION_ID()", ()).await?, id);
                assert_eq!(conn.scalar::<i64>("SELECT 7", ()).await?, 7);
            }
            drop(conn);
            observer.close().await?;
            engine.close().await
        },
    );
}

#[test]
fn dropping_a_running_call_kills_it_on_the_server() {
    run(
        "dropping_a_running_call_kills_it_on_the_server",
        |url| async move {
            let observer = engine(&url)?;
            let engine = engine(&url)?;
            let conn = engine.connect().await?;
            let id: i64 = conn.scalar("SELECT CONNECTION_ID()", ()).await?;
            let call = conn.execute("SELECT SLEEP(30)", ());
            assert!(tokio::time::timeout(Duration::from_millis(300), call)
                .await
                .is_err());
            eventually(
                "the statement is gone from the processlist",
                Duration::from_secs(10),
                || async { Ok(running(&observer, id).await? == 0) },
            )
            .await?;
            assert_eq!(conn.scalar::<i64>("SELECT CONNECTION_ID()", ()).await?, id);
            // Inside a transaction the kill stops the statement, not the transaction.
            conn.execute("CREATE TABLE k (id INT)", ()).await?;
            let tx = conn.begin().await?;
            tx.execute("INSERT INTO k VALUES (1)", ()).await?;
            let call = tx.execute("SELECT SLEEP(30)", ());
            assert!(tokio::time::timeout(Duration::from_millis(300), call)
                .await
                .is_err());
            tx.execute("INSERT INTO k VALUES (2)", ()).await?;
            tx.commit().await?;
            assert_eq!(conn.scalar::<i64>("SELECT COUNT(*) FROM k", ()).await?, 2);
            drop(conn);
            observer.close().await?;
            engine.close().await
        },
    );
}

#[test]
fn closing_a_large_result_early_does_not_read_it_all() {
    run(
        "closing_a_large_result_early_does_not_read_it_all",
        |url| async move {
            let engine = engine(&url)?;
            let conn = engine.connect().await?;
            conn.execute("CREATE TABLE k (n INT PRIMARY KEY)", ())
                .await?;
            conn.execute_many(
                "INSERT INTO k VALUES (?)",
                (0..1000).map(|n| (n,)).collect::<Vec<_>>(),
            )
            .await?;
            let id: i64 = conn.scalar("SELECT CONNECTION_ID()", ()).await?;
            // 10^12 rows: reading them all would never end, so closing returns
            // only if the statement was stopped.
            let mut result = conn
                .execute("SELECT a.n, b.n, c.n, d.n FROM k a, k b, k c, k d", ())
                .await?;
            let some = result.fetchmany(10).await?;
            assert_eq!(some.len(), 10);
            tokio::time::timeout(Duration::from_secs(60), result.close())
                .await
                .expect("closing the result did not return: it read every row")?;
            drop(result);
            assert_eq!(conn.scalar::<i64>("SELECT CONNECTION_ID()", ()).await?, id);
            // Dropping a result without closing it does the same.
            let mut result = conn
                .execute("SELECT a.n, b.n, c.n, d.n FROM k a, k b, k c, k d", ())
                .await?;
            assert_eq!(result.fetchmany(5).await?.len(), 5);
            drop(result);
            let answer =
                tokio::time::timeout(Duration::from_secs(60), conn.scalar::<i64>("SELECT 3", ()))
                    .await
                    .expect("the next call waited for every row of the dropped result")?;
            assert_eq!(answer, 3);
            assert_eq!(conn.scalar::<i64>("SELECT CONNECTION_ID()", ()).await?, id);
            drop(conn);
            engine.close().await
        },
    );
}

#[test]
fn connections_killed_under_load_are_replaced_and_nothing_acknowledged_is_lost() {
    run(
        "connections_killed_under_load_are_replaced_and_nothing_acknowledged_is_lost",
        |url| async move {
            let engine = Engine::builder().url(&url).max_connections(4).build()?;
            engine
                .execute("CREATE TABLE load_t (id INT PRIMARY KEY, w INT)", ())
                .await?;
            let db: String = engine.scalar("SELECT DATABASE()", ()).await?;
            let writers = 4;
            let per_writer = 150;
            let mut tasks = Vec::new();
            for w in 0..writers {
                let engine = engine.clone();
                tasks.push(tokio::spawn(async move {
                    let mut acknowledged = Vec::new();
                    let mut lost = 0;
                    for i in 0..per_writer {
                        let id = w * per_writer + i;
                        match engine
                            .execute("INSERT INTO load_t VALUES (?, ?)", (id, w))
                            .await
                        {
                            Ok(_) => acknowledged.push(id),
                            // A replacement killed while it was being set up fails to connect.
                            Err(e)
                                if e.is_connection_lost()
                                    || e.is_closed()
                                    || matches!(e, Error::Connect { .. }) =>
                            {
                                lost += 1
                            }
                            Err(e) => panic!("insert {id}: {e}"),
                        }
                    }
                    (acknowledged, lost)
                }));
            }
            // Kill the engine's sessions from outside while the writers run.
            let killer_url = url.clone();
            let db_name = db.clone();
            let killer = tokio::task::spawn_blocking(move || {
                let mut conn = raw(&killer_url).expect("a connection to kill from");
                let me = conn.connection_id();
                let mut kills = 0;
                for _ in 0..20 {
                    std::thread::sleep(Duration::from_millis(40));
                    let ids: Vec<u64> = conn
                    .query(format!(
                        "SELECT id FROM information_schema.processlist WHERE db = '{db_name}' AND id <> {me}"
                    ))
                    .unwrap_or_default();
                    if let Some(id) = ids.first() {
                        if conn.query_drop(format!("KILL CONNECTION {id}")).is_ok() {
                            kills += 1;
                        }
                    }
                }
                kills
            });
            let mut acknowledged = Vec::new();
            for task in tasks {
                let (ids, _lost) = task.await.expect("a writer panicked");
                acknowledged.extend(ids);
            }
            let kills = killer.await.expect("the killer panicked");
            assert!(kills > 0, "no connection was killed");
            // Without test_before_acquire, the first statement on a connection
            // killed while idle fails once with ConnectionLost; it is replaced.
            let mut attempts = 0;
            let rows = loop {
                attempts += 1;
                match engine
                    .execute("SELECT id FROM load_t ORDER BY id", ())
                    .await
                {
                    Ok(mut result) => break result.fetchall().await?,
                    Err(e) if e.is_connection_lost() && attempts < 8 => continue,
                    Err(e) => return Err(e),
                }
            };
            let stored: Vec<i64> = rows.iter().map(|r| r.get::<i64>(0).unwrap()).collect();
            acknowledged.sort_unstable();
            let acknowledged: Vec<i64> = acknowledged.into_iter().map(i64::from).collect();
            for id in &acknowledged {
                assert!(
                    stored.binary_search(id).is_ok(),
                    "acknowledged insert {id} is missing"
                );
            }
            // The pool healed: every connection answers.
            let conns = futures::future::try_join_all((0..4).map(|_| engine.connect())).await?;
            for conn in &conns {
                match conn.scalar::<i64>("SELECT 1", ()).await {
                    Ok(one) => assert_eq!(one, 1),
                    Err(e) if e.is_connection_lost() => {}
                    Err(e) => return Err(e),
                }
            }
            drop(conns);
            let conns = futures::future::try_join_all((0..4).map(|_| engine.connect())).await?;
            for conn in &conns {
                assert_eq!(conn.scalar::<i64>("SELECT 1", ()).await?, 1);
            }
            drop(conns);
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

// ---------------------------------------------------------------------------
// A server restart
// ---------------------------------------------------------------------------

/// The server binary this machine runs, restarted with `start-stop-daemon`.
const MARIADBD: &str = "/usr/sbin/mariadbd";

/// Restarts the local server, or says why it cannot here: a remote server,
/// no `start-stop-daemon`, or other clients on the server (whose work a
/// restart would break). The server is left running whatever happens.
fn restart_server(url: &str, own_db: &str) -> std::result::Result<(), String> {
    use std::process::Command;
    let local = ["@127.0.0.1", "@localhost", "@[::1]"]
        .iter()
        .any(|host| url.contains(host));
    if !local {
        return Err("the server is not on this machine".into());
    }
    let daemon = Command::new("start-stop-daemon").arg("--version").output();
    if !matches!(daemon, Ok(ref out) if out.status.success())
        || !std::path::Path::new(MARIADBD).exists()
    {
        return Err(format!("no start-stop-daemon or no {MARIADBD}"));
    }
    let mut conn = raw(url).map_err(|e| e.to_string())?;
    let others: i64 = conn
        .query_first(format!(
            "SELECT COUNT(*) FROM information_schema.processlist \
             WHERE id <> CONNECTION_ID() AND command NOT IN ('Daemon', 'Binlog Dump') \
             AND user <> 'system user' AND (db IS NULL OR db <> '{own_db}')"
        ))
        .map_err(|e| e.to_string())?
        .unwrap_or(0);
    drop(conn);
    if others > 0 {
        return Err(format!("{others} other client session(s) use the server"));
    }
    // Started again when this goes, also if the stop failed half-way.
    struct Running<'a>(&'a str);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            let started = Command::new("start-stop-daemon")
                .args(["--start", "--oknodo", "--background", "--exec", MARIADBD])
                .status();
            if !matches!(started, Ok(s) if s.success()) {
                eprintln!("could not start {MARIADBD}: {started:?}");
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            while raw(self.0)
                .and_then(|mut c| c.query_drop("SELECT 1"))
                .is_err()
            {
                if Instant::now() > deadline {
                    eprintln!("{MARIADBD} did not answer within 60 s of its start");
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let running = Running(url);
    let stopped = Command::new("start-stop-daemon")
        .args([
            "--stop",
            "--oknodo",
            "--exec",
            MARIADBD,
            "--retry",
            "TERM/30/KILL/5",
        ])
        .status()
        .map_err(|e| e.to_string())?;
    drop(running);
    if !stopped.success() {
        return Err(format!("start-stop-daemon --stop failed: {stopped}"));
    }
    raw(url)
        .and_then(|mut c| c.query_drop("SELECT 1"))
        .map_err(|e| format!("the server did not come back: {e}"))
}

/// Ends every connection to the database `db` with `KILL CONNECTION`: the
/// restart's effect on the engine, where the server cannot be restarted.
fn kill_every_connection(url: &str, db: &str) -> usize {
    let mut conn = raw(url).expect("a connection to kill from");
    let ids: Vec<u64> = conn
        .query(format!(
            "SELECT id FROM information_schema.processlist WHERE db = '{db}' AND id <> CONNECTION_ID()"
        ))
        .expect("the processlist");
    ids.iter()
        .filter(|id| conn.query_drop(format!("KILL CONNECTION {id}")).is_ok())
        .count()
}

#[test]
fn a_server_restart_under_load_is_healed_and_nothing_acknowledged_is_lost() {
    run_alone(
        "a_server_restart_under_load_is_healed_and_nothing_acknowledged_is_lost",
        |url| async move {
            use std::sync::atomic::AtomicBool;
            use std::sync::Arc;
            let engine = Engine::builder().url(&url).max_connections(4).build()?;
            engine
                .execute("CREATE TABLE restart_t (id INT PRIMARY KEY, w INT)", ())
                .await?;
            let db: String = engine.scalar("SELECT DATABASE()", ()).await?;
            let restarted = Arc::new(AtomicBool::new(false));
            let acknowledged_before = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for w in 0..4_i64 {
                let (engine, restarted, before) = (
                    engine.clone(),
                    restarted.clone(),
                    acknowledged_before.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let mut acknowledged = Vec::new();
                    let mut after = 0;
                    for i in 0..100_000_i64 {
                        // Some rows once the server is back prove the pool healed under load.
                        if after >= 20 {
                            return acknowledged;
                        }
                        let done = restarted.load(Ordering::SeqCst);
                        let id = w * 100_000 + i;
                        match engine
                            .execute("INSERT INTO restart_t VALUES (?, ?)", (id, w))
                            .await
                        {
                            Ok(_) => {
                                acknowledged.push(id);
                                if done {
                                    after += 1;
                                } else {
                                    before.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            // The server went away under the call, or was not back yet.
                            Err(e)
                                if e.is_connection_lost()
                                    || e.is_closed()
                                    || e.is_pool_timeout()
                                    || matches!(e, Error::Connect { .. }) => {}
                            Err(e) => panic!("insert {id}: {e}"),
                        }
                    }
                    panic!("writer {w}: the pool did not heal");
                }));
            }
            // Restart once the writers are under way.
            eventually("the writers insert", Duration::from_secs(30), || {
                let before = acknowledged_before.clone();
                async move { Ok(before.load(Ordering::SeqCst) >= 40) }
            })
            .await?;
            let (server, own) = (url.clone(), db.clone());
            let outcome = tokio::task::spawn_blocking(move || restart_server(&server, &own))
                .await
                .expect("the restart panicked");
            if let Err(why) = outcome {
                // Named gap: the connections are ended instead, which is what
                // a restart does to the engine, but the server stays up.
                let _ = writeln!(
                    std::io::stderr(),
                    "restart test: not restarting the server ({why}); killing every connection instead"
                );
                let (server, own) = (url.clone(), db.clone());
                let kills =
                    tokio::task::spawn_blocking(move || kill_every_connection(&server, &own))
                        .await
                        .expect("the kill panicked");
                assert!(kills > 0, "no connection was killed");
            }
            restarted.store(true, Ordering::SeqCst);
            let mut acknowledged = Vec::new();
            for task in tasks {
                acknowledged.extend(task.await.expect("a writer panicked"));
            }
            // Idle connections the restart ended fail once, then are replaced.
            let mut attempts = 0;
            let stored: Vec<i64> = loop {
                attempts += 1;
                match engine
                    .execute("SELECT id FROM restart_t ORDER BY id", ())
                    .await
                {
                    Ok(mut result) => {
                        break result
                            .fetchall()
                            .await?
                            .iter()
                            .map(|r| r.get::<i64>(0).unwrap())
                            .collect()
                    }
                    Err(e) if e.is_connection_lost() && attempts < 8 => continue,
                    Err(e) => return Err(e),
                }
            };
            for id in &acknowledged {
                assert!(
                    stored.binary_search(id).is_ok(),
                    "acknowledged insert {id} is missing"
                );
            }
            engine.close().await
        },
    );
}
