//! `sqlaio::migrate`: applying migrations on a fresh database and on one
//! partly migrated, the checks against the migrations table, failures and
//! cancellations that leave nothing half-applied, and engines racing to
//! migrate one database.
//!
//! Every test runs on a SQLite file (so that several engines can share it)
//! and, with the `postgres` and `mysql` features, in a schema or database
//! of its own on the servers of `DATABASE_URL` and `MYSQL_URL` (skipped
//! with a notice when none answers, a failure under `CI=true`).

use std::error::Error;
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use futures::future::{self, Either};
use sqlaio::migrate::{MigrateError, Migration, Migrator, DEFAULT_TABLE};
use sqlaio::Engine;

use crate::common::{nap, Ctx, Family};

type TestResult = Result<(), Box<dyn Error>>;

// Several engines share one database: a SQLite file, a PostgreSQL schema,
// or a MySQL database. MySQL commits DDL by itself: where that shows, a
// body asserts what docs/migrations.md says it does there.
stamp! {
    runtimes: one, backends: [file, postgres, mysql];
    a_fresh_database_gets_every_migration,
    a_second_run_applies_only_the_new_migrations,
    a_changed_migration_is_an_error_naming_its_version,
    an_unknown_applied_migration_is_an_error_unless_ignored,
    an_out_of_order_migration_is_an_error_unless_allowed,
    a_failing_migration_is_rolled_back_and_not_recorded,
    a_migration_that_commits_by_itself_is_reported,
    engines_racing_to_migrate_apply_each_migration_once,
    a_dropped_run_rolls_back_and_releases_its_lock,
    badly_named_files_are_refused_before_the_database_is_touched,
    migrations_read_from_a_folder_at_run_time,
    another_table_keeps_another_set_of_migrations,
}

fn engine(ctx: &Ctx) -> Engine {
    Engine::builder()
        .url(ctx.url())
        .build()
        .expect("a valid configuration")
}

fn users() -> Migration {
    Migration::new(
        1,
        "create users",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    )
}

fn email() -> Migration {
    Migration::new(
        2,
        "add email",
        "ALTER TABLE users ADD COLUMN email TEXT;\nCREATE UNIQUE INDEX users_email ON users (email);",
    )
}

fn posts() -> Migration {
    Migration::new(
        3,
        "create posts",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id));",
    )
}

fn versions(applied: &[sqlaio::migrate::AppliedMigration]) -> Vec<i64> {
    applied.iter().map(|row| row.version).collect()
}

async fn a_fresh_database_gets_every_migration(ctx: Ctx) -> TestResult {
    let engine = engine(&ctx);
    let migrator = sqlaio::migrate!("tests/migrations/basic");
    fn is_send<T: Send>(_: &T) {}
    // The futures can be spawned on a multi-threaded runtime.
    is_send(&migrator.run(&engine));
    is_send(&migrator.applied(&engine));
    assert_eq!(
        migrator.migrations().len(),
        3,
        "README.md is not a migration"
    );
    assert!(migrator.applied(&engine).await?.is_empty());

    let report = migrator.run(&engine).await?;
    assert_eq!(report.applied, [1, 2, 3]);
    assert_eq!(report.already_applied, 0);
    for table in ["users", "posts", DEFAULT_TABLE] {
        assert!(engine.has_table(table).await?, "{table}");
    }
    engine
        .execute(
            "INSERT INTO users (id, name, email) VALUES (1, 'Dana Whitaker', 'dana@example.com')",
            (),
        )
        .await?;

    let applied = migrator.applied(&engine).await?;
    assert_eq!(versions(&applied), [1, 2, 3]);
    assert_eq!(applied[0].name, "create users");
    assert_eq!(applied[1].name, "add email");
    for (row, migration) in applied.iter().zip(migrator.migrations()) {
        assert_eq!(row.checksum, migration.checksum());
        assert_eq!(row.checksum.len(), 16);
        // 2024-01-31T12:00:00.000Z
        assert_eq!(row.applied_at.len(), 24, "{}", row.applied_at);
        assert!(row.applied_at.ends_with('Z') && row.applied_at.as_bytes()[10] == b'T');
    }

    // The next start-up finds nothing to do.
    let again = migrator.run(&engine).await?;
    assert!(again.applied.is_empty());
    assert_eq!(again.already_applied, 3);
    engine.close().await?;
    Ok(())
}

async fn a_second_run_applies_only_the_new_migrations(ctx: Ctx) -> TestResult {
    let engine = engine(&ctx);
    let first = Migrator::new([users(), email()]);
    assert_eq!(first.run(&engine).await?.applied, [1, 2]);

    // The next release adds a migration; given in any order, they apply in version order.
    let second = Migrator::new([posts(), users(), email()]);
    let report = second.run(&engine).await?;
    assert_eq!(report.applied, [3]);
    assert_eq!(report.already_applied, 2);
    assert!(engine.has_table("posts").await?);
    assert_eq!(versions(&second.applied(&engine).await?), [1, 2, 3]);
    engine.close().await?;
    Ok(())
}

async fn a_changed_migration_is_an_error_naming_its_version(ctx: Ctx) -> TestResult {
    let engine = engine(&ctx);
    Migrator::new([users()]).run(&engine).await?;

    let edited = Migration::new(
        1,
        "create users",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);",
    );
    let migrator = Migrator::new([edited.clone(), email()]);
    let err = migrator.run(&engine).await.unwrap_err();
    match &err {
        MigrateError::Changed {
            version,
            name,
            applied,
            current,
        } => {
            assert_eq!(*version, 1);
            assert_eq!(name, "create users");
            assert_eq!(applied, users().checksum());
            assert_eq!(current, edited.checksum());
        }
        other => panic!("expected Changed, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("migration 1 (create users) was changed"),
        "{message}"
    );
    // Nothing after it was applied.
    assert!(!engine.has_table("users_email").await?);
    assert_eq!(versions(&migrator.applied(&engine).await?), [1]);

    // Line endings are not a change.
    let crlf = Migration::new(1, "create users", users().sql().replace('\n', "\r\n"));
    Migrator::new([crlf]).run(&engine).await?;
    engine.close().await?;
    Ok(())
}

async fn an_unknown_applied_migration_is_an_error_unless_ignored(ctx: Ctx) -> TestResult {
    let engine = engine(&ctx);
    Migrator::new([users(), email()]).run(&engine).await?;

    // An older build starts against the migrated database.
    let older = Migrator::new([users()]);
    match older.run(&engine).await.unwrap_err() {
        MigrateError::Unknown { version, name } => {
            assert_eq!((version, name.as_str()), (2, "add email"));
        }
        other => panic!("expected Unknown, got {other:?}"),
    }
    let report = older.ignore_unknown(true).run(&engine).await?;
    assert!(report.applied.is_empty());
    engine.close().await?;
    Ok(())
}

async fn an_out_of_order_migration_is_an_error_unless_allowed(ctx: Ctx) -> TestResult {
    let engine = engine(&ctx);
    Migrator::new([users(), posts()]).run(&engine).await?;

    // A branch that added version 2 is merged after 3 was applied.
    let merged = Migrator::new([users(), email(), posts()]);
    match merged.run(&engine).await.unwrap_err() {
        MigrateError::OutOfOrder {
            version, latest, ..
        } => assert_eq!((version, latest), (2, 3)),
        other => panic!("expected OutOfOrder, got {other:?}"),
    }
    let report = merged.allow_out_of_order(true).run(&engine).await?;
    assert_eq!(report.applied, [2]);
    engine.close().await?;
    Ok(())
}

async fn a_failing_migration_is_rolled_back_and_not_recorded(ctx: Ctx) -> TestResult {
    let engine = engine(&ctx);
    let broken = Migration::new(
        2,
        "half done",
        "CREATE TABLE half (x INTEGER);\nINSERT INTO users (id, name) VALUES (1, 'Jeremy Goodwin');\nINSERT INTO no_such_table VALUES (1);",
    );
    let migrator = Migrator::new([users(), broken, posts()]);
    let err = migrator.run(&engine).await.unwrap_err();
    match &err {
        MigrateError::Failed {
            version, source, ..
        } => {
            assert_eq!(*version, 2);
            assert!(source.is_database(), "{source:?}");
            assert!(source.to_string().contains("no_such_table"), "{source}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("migration 2 (half done) failed and was rolled back: "),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());

    // Migration 1 stays; nothing of migration 2 remains; 3 was not tried.
    // On MySQL the CREATE TABLE committed what ran before the failure (and
    // the insert after it ran in autocommit): repaired by hand.
    assert_eq!(versions(&migrator.applied(&engine).await?), [1]);
    let left = match ctx.family() {
        Family::Sqlite | Family::Postgres => 0,
        Family::Mysql => 1,
    };
    assert_eq!(engine.has_table("half").await?, left == 1);
    assert!(!engine.has_table("posts").await?);
    assert_eq!(
        engine
            .scalar::<i64>("SELECT count(*) FROM users", ())
            .await?,
        left
    );
    if ctx.is_mysql() {
        engine.execute("DROP TABLE half", ()).await?;
        engine.execute("DELETE FROM users", ()).await?;
    }

    // The fixed migration applies on the next run.
    let fixed = Migration::new(2, "half done", "CREATE TABLE half (x INTEGER);");
    let report = Migrator::new([users(), fixed, posts()])
        .run(&engine)
        .await?;
    assert_eq!(report.applied, [2, 3]);
    engine.close().await?;
    Ok(())
}

async fn a_migration_that_commits_by_itself_is_reported(ctx: Ctx) -> TestResult {
    let engine = engine(&ctx);
    let committing = Migration::new(2, "commits", "CREATE TABLE committed (x INTEGER);\nCOMMIT;");
    let migrator = Migrator::new([users(), committing]);
    if ctx.is_mysql() {
        // MySQL ends a migration's transaction by itself at any DDL: the
        // runner takes the migration as applied and records it.
        let report = migrator.run(&engine).await?;
        assert_eq!(report.applied, [1, 2]);
        assert_eq!(versions(&migrator.applied(&engine).await?), [1, 2]);
        assert!(engine.has_table("committed").await?);
        engine.close().await?;
        return Ok(());
    }
    match migrator.run(&engine).await.unwrap_err() {
        MigrateError::TransactionEnded { version, .. } => assert_eq!(version, 2),
        other => panic!("expected TransactionEnded, got {other:?}"),
    }
    // Not recorded; the engine is still usable.
    assert_eq!(versions(&migrator.applied(&engine).await?), [1]);
    assert_eq!(engine.scalar::<i64>("SELECT 1", ()).await?, 1);
    engine.close().await?;
    Ok(())
}

async fn engines_racing_to_migrate_apply_each_migration_once(ctx: Ctx) -> TestResult {
    const RACERS: usize = 4;
    // Neither statement may run twice: CREATE TABLE would fail, and the
    // inserts are counted.
    let migrator = Migrator::new([
        Migration::new(
            1,
            "create runs",
            "CREATE TABLE runs (migration INTEGER NOT NULL);",
        ),
        Migration::new(2, "count two", "INSERT INTO runs VALUES (2);"),
        Migration::new(
            3,
            "create items",
            "CREATE TABLE items (id INTEGER PRIMARY KEY);\nINSERT INTO runs VALUES (3);",
        ),
        Migration::new(4, "count four", "INSERT INTO runs VALUES (4);"),
    ]);
    let start = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|_| {
            let (url, migrator, start) = (ctx.url().to_owned(), migrator.clone(), start.clone());
            std::thread::spawn(move || {
                futures::executor::block_on(async move {
                    // One connection: a run needs no second one.
                    let engine = Engine::builder().url(url).max_connections(1).build()?;
                    // Connected before the start line, so the runs overlap.
                    engine.scalar::<i64>("SELECT 1", ()).await?;
                    start.wait();
                    let report = migrator.run(&engine).await;
                    engine.close().await?;
                    Ok::<_, Box<dyn Error + Send + Sync>>(report?)
                })
            })
        })
        .collect();
    let mut applied = Vec::new();
    for racer in racers {
        let report = racer
            .join()
            .expect("a racer panicked")
            .map_err(|e| e.to_string())?;
        applied.extend(report.applied);
    }
    applied.sort_unstable();
    assert_eq!(
        applied,
        [1, 2, 3, 4],
        "each migration applied by exactly one racer"
    );

    let engine = engine(&ctx);
    assert_eq!(versions(&migrator.applied(&engine).await?), [1, 2, 3, 4]);
    let mut runs = engine
        .execute("SELECT migration FROM runs ORDER BY migration", ())
        .await?;
    let runs: Vec<i64> = runs
        .fetchall()
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect::<Result<_, _>>()?;
    assert_eq!(runs, [2, 3, 4]);
    assert!(engine.has_table("items").await?);
    engine.close().await?;
    Ok(())
}

async fn a_dropped_run_rolls_back_and_releases_its_lock(ctx: Ctx) -> TestResult {
    let slow = match ctx.family() {
        Family::Sqlite => {
            // Runs until it is interrupted.
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c;"
        }
        Family::Postgres => "SELECT pg_sleep(60);",
        Family::Mysql => "SELECT SLEEP(60);",
    };
    let first = engine(&ctx);
    let migrator = Migrator::new([
        users(),
        Migration::new(
            2,
            "slow",
            format!("CREATE TABLE slow_side_effect (x INTEGER);\n{slow}"),
        ),
    ]);
    {
        let run = pin!(migrator.run(&first));
        match future::select(run, pin!(nap(Duration::from_millis(500)))).await {
            Either::Left((result, _)) => panic!("the slow migration finished: {result:?}"),
            // Dropped here, in the middle of migration 2.
            Either::Right(_) => {}
        }
    }

    // Another engine (another process, say) migrates at once: the lock is
    // free and migration 2 left nothing behind.
    let second = engine(&ctx);
    let fixed = Migrator::new([users(), Migration::new(2, "slow", "SELECT 1;")]);
    let report =
        match future::select(pin!(fixed.run(&second)), pin!(nap(Duration::from_secs(20)))).await {
            Either::Left((report, _)) => report?,
            Either::Right(_) => panic!("the second run still waits for the first one's lock"),
        };
    assert_eq!(report.applied, [2]);
    // MySQL committed the CREATE TABLE before the slow statement began.
    assert_eq!(second.has_table("slow_side_effect").await?, ctx.is_mysql());
    first.close().await?;
    second.close().await?;
    Ok(())
}

async fn badly_named_files_are_refused_before_the_database_is_touched(ctx: Ctx) -> TestResult {
    let engine = engine(&ctx);
    let migrator = sqlaio::migrate!("tests/migrations/malformed");
    let err = migrator.validate().unwrap_err();
    match &err {
        MigrateError::InvalidName { file, reason } => {
            assert_eq!(file, "V2__flyway_style.sql");
            assert!(reason.contains("without a V prefix"), "{reason}");
        }
        other => panic!("expected InvalidName, got {other:?}"),
    }
    assert!(err.to_string().contains("0001_create_users.sql"), "{err}");
    assert!(matches!(
        migrator.run(&engine).await,
        Err(MigrateError::InvalidName { .. })
    ));
    assert!(!engine.has_table(DEFAULT_TABLE).await?);
    assert!(!engine.has_table("fine").await?);

    let twice = Migrator::new([users(), Migration::new(1, "also one", "SELECT 1")]);
    match twice.run(&engine).await.unwrap_err() {
        MigrateError::DuplicateVersion {
            version,
            first,
            second,
        } => {
            assert_eq!(version, 1);
            assert_eq!([first, second], ["create users", "also one"]);
        }
        other => panic!("expected DuplicateVersion, got {other:?}"),
    }
    let negative = Migrator::new([Migration::new(-1, "below zero", "SELECT 1")]);
    assert!(matches!(
        negative.validate(),
        Err(MigrateError::InvalidVersion { version: -1, .. })
    ));
    assert!(!engine.has_table(DEFAULT_TABLE).await?);
    engine.close().await?;
    Ok(())
}

async fn migrations_read_from_a_folder_at_run_time(ctx: Ctx) -> TestResult {
    let dir = ctx.path("migrations");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("0002_add_email.sql"), email().sql())?;
    std::fs::write(dir.join("0001_create_users.sql"), users().sql())?;
    std::fs::write(dir.join(".gitkeep"), "")?;
    std::fs::write(dir.join("notes.txt"), "not a migration")?;

    let migrator = Migrator::from_dir(&dir)?;
    let names: Vec<_> = migrator.migrations().iter().map(|m| m.name()).collect();
    assert_eq!(names, ["create users", "add email"]);
    // The same SQL as the values: the same checksums.
    assert_eq!(migrator.migrations()[0].checksum(), users().checksum());

    let engine = engine(&ctx);
    assert_eq!(migrator.run(&engine).await?.applied, [1, 2]);

    std::fs::write(dir.join("3_create-posts.sql"), posts().sql())?;
    assert_eq!(Migrator::from_dir(&dir)?.run(&engine).await?.applied, [3]);

    std::fs::write(dir.join("0004 add tags.sql"), "SELECT 1")?;
    match Migrator::from_dir(&dir).unwrap_err() {
        MigrateError::InvalidName { file, .. } => assert_eq!(file, "0004 add tags.sql"),
        other => panic!("expected InvalidName, got {other:?}"),
    }
    match Migrator::from_dir(ctx.path("no-such-folder")).unwrap_err() {
        MigrateError::Io { path, source } => {
            assert_eq!(path, ctx.path("no-such-folder"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    engine.close().await?;
    Ok(())
}

async fn another_table_keeps_another_set_of_migrations(ctx: Ctx) -> TestResult {
    let engine = engine(&ctx);
    Migrator::new([users()]).run(&engine).await?;
    // A library's own migrations, numbered on their own.
    let library = Migrator::new([Migration::new(
        1,
        "create jobs",
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY)",
    )])
    .table("jobs_migrations");
    assert_eq!(library.table_name(), "jobs_migrations");
    assert_eq!(library.run(&engine).await?.applied, [1]);
    assert!(engine.has_table("jobs").await?);
    assert_eq!(library.applied(&engine).await?.len(), 1);
    assert_eq!(Migrator::new([users()]).applied(&engine).await?.len(), 1);

    let bad = Migrator::new([users()]).table("migrations; DROP TABLE users");
    assert!(matches!(
        bad.run(&engine).await,
        Err(MigrateError::InvalidTable { .. })
    ));
    assert!(engine.has_table("users").await?);
    engine.close().await?;
    Ok(())
}
