//! The builder's own checks.

use super::*;

#[cfg(feature = "sqlite")]
#[test]
fn a_sqlite_path_may_hold_any_character_a_url_would_need_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my data?#50%.db");
    futures::executor::block_on(async {
        let engine = Engine::builder().sqlite_path(&path).build()?;
        engine.execute("CREATE TABLE t (x)", ()).await?;
        engine.close().await
    })
    .unwrap();
    assert!(path.exists(), "no file at {}", path.display());
}

#[cfg(feature = "sqlite")]
#[test]
fn replicas_are_refused_on_sqlite_and_read_is_the_same_pool() {
    let e = Engine::builder()
        .url("sqlite::memory:")
        .replica("postgres://u@h/db")
        .build()
        .unwrap_err();
    assert!(
        e.to_string().contains("read replicas apply to PostgreSQL"),
        "{e}"
    );
    futures::executor::block_on(async {
        let engine = Engine::builder().url("sqlite::memory:").build()?;
        engine.execute("CREATE TABLE t (x)", ()).await?;
        engine
            .read()
            .execute("INSERT INTO t VALUES (1)", ())
            .await?;
        assert_eq!(
            engine
                .read()
                .scalar::<i64>("SELECT count(*) FROM t", ())
                .await?,
            1
        );
        assert!(engine.replica_status().is_empty());
        assert_eq!(engine.wal_position().await?.0, 0);
        engine.close().await
    })
    .unwrap();
}

#[test]
fn a_builder_from_the_environment_names_the_variable_it_missed() {
    // The variable itself is shared with other tests: only the message is checked.
    let builder = EngineBuilder {
        url: None,
        url_from_env: true,
        ..EngineBuilder::default()
    };
    let e = builder.build().unwrap_err().to_string();
    assert!(e.contains("DATABASE_URL"), "{e}");
}

#[cfg(feature = "sqlite")]
#[test]
fn an_eager_engine_fails_at_start_up_when_its_database_cannot_open() {
    let err = futures::executor::block_on(
        Engine::builder()
            .url("sqlite:///nonexistent-dir/app.db?mode=ro")
            .connect(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    let engine = futures::executor::block_on(
        Engine::builder()
            .url("sqlite::memory:")
            .min_connections(2)
            .connect(),
    )
    .unwrap();
    assert!(engine.pool_status().idle >= 2, "{:?}", engine.pool_status());
    futures::executor::block_on(engine.close()).unwrap();
}
