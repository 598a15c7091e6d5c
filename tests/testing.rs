//! `sqlaio::testing`: each test gets a private database, migrated and
//! filled with fixtures, and nothing is left behind afterwards, also when
//! the test panics or its setup fails.
//!
//! Every test runs on SQLite and, with the `postgres` and `mysql` features,
//! on the servers of `DATABASE_URL` and `MYSQL_URL` (skipped with a notice
//! when none answers, a failure under `CI=true`).
#![cfg(feature = "testing")]

mod common;
#[cfg(feature = "mysql")]
use common::mysql as my;
#[cfg(feature = "postgres")]
use common::pg;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};

use futures::executor::block_on;
use sqlaio::migrate::{MigrateError, Migrator};
use sqlaio::testing::TestDatabase;
use sqlaio::{Engine, Error};

static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| sqlaio::migrate!("tests/migrations/basic"));

/// The same migrations, in MySQL's words.
static MYSQL_MIGRATOR: LazyLock<Migrator> =
    LazyLock::new(|| sqlaio::migrate!("tests/migrations/mysql"));

/// The migrations for the database of `server`.
fn migrator(server: &str) -> &'static Migrator {
    if is_mysql(server) {
        &MYSQL_MIGRATOR
    } else {
        &MIGRATOR
    }
}

fn is_mysql(server: &str) -> bool {
    server.starts_with("mysql:") || server.starts_with("mariadb:")
}

const FIXTURES: [&str; 2] = [
    "INSERT INTO users (id, name, email) VALUES (1, 'Dana Whitaker', 'dana@example.com');
     INSERT INTO users (id, name, email) VALUES (2, 'Casey McCall', 'casey@example.com');",
    "INSERT INTO posts (id, user_id, title) VALUES (1, 2, 'Sports Night');",
];

/// Stamps each listed `fn name(server: &str)` into `sqlite::name`,
/// `postgres::name` and `mysql::name`; `server` is the URL given to the
/// harness.
macro_rules! backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    $crate::$name("sqlite::memory:");
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(server) = $crate::pg::server(concat!("postgres::", stringify!($name))) {
                        $crate::$name(&server);
                    }
                }
            )*
        }
        #[cfg(feature = "mysql")]
        mod mysql {
            $(
                #[test]
                fn $name() {
                    if let Some(server) = $crate::my::server(concat!("mysql::", stringify!($name))) {
                        $crate::$name(&server);
                    }
                }
            )*
        }
    };
}

backends! {
    migrations_and_fixtures_are_applied,
    each_test_gets_a_database_of_its_own,
    a_panicking_test_leaves_nothing_behind,
    a_test_thread_that_panics_leaves_nothing_behind,
    a_failing_fixture_is_reported_and_nothing_is_left_behind,
    run_returns_what_the_body_returns,
}

/// What a test database was, to look for it after it is gone.
#[derive(Debug, Clone)]
struct Trace {
    url: String,
    schema: Option<String>,
}

impl Trace {
    fn of(db: &TestDatabase) -> Trace {
        Trace {
            url: db.url().to_owned(),
            schema: db.schema().map(str::to_owned),
        }
    }
}

/// `true` while the database `trace` recorded still exists on `server`.
async fn exists(server: &str, trace: &Trace) -> bool {
    let Some(schema) = &trace.schema else {
        return sqlite_folder(&trace.url).exists();
    };
    let count = async {
        let engine = Engine::builder().url(server).max_connections(1).build()?;
        let sql = if is_mysql(server) {
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?"
        } else {
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1"
        };
        let n: i64 = engine.scalar(sql, (schema.as_str(),)).await?;
        engine.close().await?;
        Ok::<_, Error>(n)
    };
    count.await.expect("the server answers") > 0
}

/// The folder of a SQLite test database, from its URL.
fn sqlite_folder(url: &str) -> PathBuf {
    let file = PathBuf::from(url.strip_prefix("sqlite://").expect("a SQLite file URL"));
    file.parent().expect("a folder").to_owned()
}

/// The harness's label for the running test: the last segment of the
/// thread's name, in lower case, letters, digits and `_`, 24 bytes at most.
fn label() -> String {
    let thread = std::thread::current();
    let name = thread.name().expect("a test thread has a name");
    let last = name.rsplit("::").next().unwrap_or(name);
    last.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(24)
        .collect()
}

/// The test databases still on `server` whose names carry `label`.
fn leftovers(server: &str, label: &str) -> Vec<String> {
    if server.starts_with("sqlite") {
        let prefix = format!("sqlaio-test-{label}-");
        std::fs::read_dir(std::env::temp_dir())
            .expect("the temporary folder")
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(&prefix))
            .collect()
    } else {
        block_on(async {
            let engine = Engine::builder().url(server).max_connections(1).build()?;
            let cast = if is_mysql(server) {
                "CAST(schema_name AS CHAR)"
            } else {
                "schema_name::text"
            };
            let mut result = engine
                .execute(
                    format!("SELECT {cast} FROM information_schema.schemata"),
                    (),
                )
                .await?;
            let prefix = format!("sqlaio_test_{label}_");
            let names = result
                .fetchall()
                .await?
                .iter()
                .map(|row| row.get::<String>(0))
                .filter(|name| !matches!(name, Ok(name) if !name.starts_with(&prefix)))
                .collect::<Result<Vec<_>, _>>()?;
            drop(result);
            engine.close().await?;
            Ok::<_, Error>(names)
        })
        .expect("the server answers")
    }
}

fn migrations_and_fixtures_are_applied(server: &str) {
    let migrations = migrator(server);
    let traced = TestDatabase::builder()
        .url(server)
        .migrations(migrations)
        .fixtures(FIXTURES)
        .run(|engine| async move {
            let applied = migrations.applied(&engine).await?;
            let versions: Vec<i64> = applied.iter().map(|row| row.version).collect();
            assert_eq!(versions, [1, 2, 3]);
            let users: i64 = engine.scalar("SELECT count(*) FROM users", ()).await?;
            assert_eq!(users, 2);
            let author: String = engine
                .scalar(
                    "SELECT name FROM users JOIN posts ON posts.user_id = users.id",
                    (),
                )
                .await?;
            assert_eq!(author, "Casey McCall");
            Ok::<_, MigrateError>(())
        });
    traced.unwrap();
}

fn each_test_gets_a_database_of_its_own(server: &str) {
    block_on(async {
        let a = TestDatabase::builder().url(server).create().await?;
        let b = TestDatabase::builder().url(server).create().await?;
        assert_ne!(a.url(), b.url());
        a.engine()
            .execute("CREATE TABLE only_in_a (x INTEGER)", ())
            .await?;
        assert!(a.engine().has_table("only_in_a").await?);
        assert!(!b.engine().has_table("only_in_a").await?);

        // More engines on the same test database see the same tables.
        let again = Engine::builder().url(a.url()).build()?;
        assert!(again.has_table("only_in_a").await?);
        if let Some(schema) = a.schema() {
            assert!(schema.starts_with("sqlaio_test_"), "{schema}");
            let current = if is_mysql(server) {
                "SELECT DATABASE()"
            } else {
                "SELECT current_schema()::text"
            };
            let current: String = again.scalar(current, ()).await?;
            assert_eq!(current, schema);
        }
        again.close().await?;

        let (trace_a, trace_b) = (Trace::of(&a), Trace::of(&b));
        assert!(exists(server, &trace_a).await && exists(server, &trace_b).await);
        a.close().await?;
        assert!(!exists(server, &trace_a).await, "closed: {trace_a:?}");
        drop(b);
        assert!(!exists(server, &trace_b).await, "dropped: {trace_b:?}");
        Ok::<_, MigrateError>(())
    })
    .unwrap();
}

fn a_panicking_test_leaves_nothing_behind(server: &str) {
    let (server_url, test) = (server.to_owned(), label());
    let outcome = catch_unwind(AssertUnwindSafe(move || {
        TestDatabase::builder()
            .url(server_url.clone())
            .migrations(migrator(&server_url))
            .run(|engine| async move {
                engine
                    .execute(
                        "INSERT INTO users (id, name) VALUES (7, 'Jeremy Goodwin')",
                        (),
                    )
                    .await
                    .unwrap();
                // The search below finds the database while it exists.
                assert_eq!(leftovers(&server_url, &test).len(), 1);
                panic!("the test failed");
            })
    }));
    let panic = outcome.expect_err("the body panicked");
    assert_eq!(
        panic.downcast_ref::<&str>().copied(),
        Some("the test failed")
    );
    // `run` gives the body an engine, not the database: look for it by name.
    assert_eq!(leftovers(server, &label()), Vec::<String>::new());
}

fn a_test_thread_that_panics_leaves_nothing_behind(server: &str) {
    let seen: Arc<Mutex<Option<Trace>>> = Arc::default();
    let record = seen.clone();
    let server_url = server.to_owned();
    let failed = std::thread::spawn(move || {
        block_on(async move {
            let db = TestDatabase::builder()
                .migrations(migrator(&server_url))
                .url(server_url)
                .fixtures(FIXTURES)
                .create()
                .await
                .unwrap();
            *record.lock().unwrap() = Some(Trace::of(&db));
            db.engine().execute("DELETE FROM posts", ()).await.unwrap();
            panic!("the test failed while holding its database");
        })
    })
    .join();
    assert!(failed.is_err(), "the thread panicked");
    let trace = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the database was created");
    assert!(!block_on(exists(server, &trace)), "left behind: {trace:?}");
}

fn a_failing_fixture_is_reported_and_nothing_is_left_behind(server: &str) {
    let err = block_on(
        TestDatabase::builder()
            .url(server)
            .migrations(migrator(server))
            .fixtures(["INSERT INTO users (id, name) VALUES (1, 'Dana Whitaker')"])
            .fixtures(["INSERT INTO no_such_table VALUES (1)"])
            .create(),
    )
    .unwrap_err();
    match &err {
        MigrateError::Fixture { index, source } => {
            assert_eq!(*index, 1);
            assert!(source.to_string().contains("no_such_table"), "{source}");
        }
        other => panic!("expected Fixture, got {other:?}"),
    }
    assert!(err.to_string().starts_with("fixture 1 failed: "), "{err}");
    assert_eq!(leftovers(server, &label()), Vec::<String>::new());
}

fn run_returns_what_the_body_returns(server: &str) {
    let n = TestDatabase::builder()
        .url(server)
        .run(|engine| async move { engine.scalar::<i64>("SELECT 41 + 1", ()).await });
    assert_eq!(n.unwrap(), 42);

    let failed: Result<(), Error> = TestDatabase::builder()
        .url(server)
        .run(|engine| async move {
            engine.execute("SELECT * FROM no_such_table", ()).await?;
            Ok(())
        });
    assert!(failed.unwrap_err().is_database());
    assert_eq!(leftovers(server, &label()), Vec::<String>::new());
}

/// The futures can be spawned on a multi-threaded runtime.
#[test]
fn the_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    let create = TestDatabase::builder().create();
    is_send(&create);
    let db = block_on(create).unwrap();
    let close = db.close();
    is_send(&close);
    block_on(close).unwrap();
}

#[test]
fn a_sqlite_file_url_is_refused() {
    let err = block_on(TestDatabase::builder().url("sqlite://app.db").create()).unwrap_err();
    match err {
        MigrateError::Database(Error::Config(message)) => {
            assert!(message.contains("sqlite::memory:"), "{message}")
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    assert!(!std::path::Path::new("app.db").exists());
}

#[test]
fn the_url_can_come_from_the_environment() {
    let var = "SQLAIO_TESTING_NO_SUCH_VARIABLE";
    assert!(std::env::var(var).is_err());
    let kind = TestDatabase::builder()
        .url_from_env(var)
        .run(|engine| async move { engine.dialect() });
    assert_eq!(kind, sqlaio::Dialect::Sqlite);
}

/// Under tokio, with `TokioStrategy`: `create` in an async test, and the
/// cleanup of a database dropped on a runtime thread.
#[cfg(feature = "tokio")]
#[tokio::test]
async fn a_database_dropped_inside_a_tokio_runtime_is_removed() {
    let db = TestDatabase::builder()
        .engine(|builder| builder.strategy(sqlaio::TokioStrategy))
        .migrations(&MIGRATOR)
        .create()
        .await
        .unwrap();
    db.engine()
        .execute(
            "INSERT INTO users (id, name) VALUES (1, 'Natalie Hurley')",
            (),
        )
        .await
        .unwrap();
    let trace = Trace::of(&db);
    drop(db);
    assert!(!exists("sqlite::memory:", &trace).await);
}
