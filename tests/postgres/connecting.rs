//! Connecting to PostgreSQL: TLS per `sslmode`, the URL forms
//! (`postgresql://`, key-value strings, options), and passwords that never
//! show in `Debug` output or errors.
//!
//! The URL forms do not depend on the runtime: each body runs once. The
//! bodies build their URLs from the server's, without the test's schema.

use std::time::Duration;

use sqlaio::{Engine, Error};

use crate::common::pg::{self, unique, with_option};
use crate::common::Ctx;

#[cfg(feature = "tls")]
stamp! {
    runtimes: one, backends: [postgres];
    sslmode_require_encrypts_and_disable_does_not,
}

stamp! {
    runtimes: one, backends: [postgres];
    postgresql_scheme_works,
    key_value_connection_strings_work,
    application_name_in_the_url_reaches_the_server,
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

#[cfg(feature = "tls")]
const SSL_IN_USE: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

#[cfg(feature = "tls")]
async fn sslmode_require_encrypts_and_disable_does_not(ctx: Ctx) -> sqlaio::Result<()> {
    let _ = ctx;
    let url = pg::database_url();
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
}

async fn postgresql_scheme_works(ctx: Ctx) -> sqlaio::Result<()> {
    let _ = ctx;
    let url = pg::database_url();
    let Some(rest) = url.strip_prefix("postgres://") else {
        eprintln!("postgresql_scheme_works: DATABASE_URL is not a postgres:// URL; skipped");
        return Ok(());
    };
    let engine = Engine::builder()
        .url(format!("postgresql://{rest}"))
        .build()?;
    assert_eq!(engine.scalar::<i32>("SELECT 1", ()).await?, 1);
    engine.close().await
}

async fn key_value_connection_strings_work(ctx: Ctx) -> sqlaio::Result<()> {
    let _ = ctx;
    let url = pg::database_url();
    if pg::using_default_url() {
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
}

async fn application_name_in_the_url_reaches_the_server(ctx: Ctx) -> sqlaio::Result<()> {
    let _ = ctx;
    let url = pg::database_url();
    let app = unique("app");
    let engine = Engine::builder()
        .url(with_option(&url, &format!("application_name={app}")))
        .build()?;
    let got: String = engine
        .scalar("SELECT current_setting('application_name')", ())
        .await?;
    assert_eq!(got, app);
    engine.close().await
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

#[cfg(not(feature = "tls"))]
#[test]
fn sslmode_require_without_tls_feature_says_so() {
    let url = pg::database_url();
    let done: sqlaio::Result<()> = futures::executor::block_on(async move {
        let e = Engine::builder()
            .url(with_option(&url, "sslmode=require"))
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("\"tls\" feature"), "{e}");
        Ok(())
    });
    done.unwrap();
}

const SECRET: &str = "s3cr3t-pw";

fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the password: {text}");
}

#[test]
fn passwords_never_appear_in_debug_or_errors() {
    let done: sqlaio::Result<()> = futures::executor::block_on(async move {
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
            format!(
                "host=127.0.0.1 port=1 user=root password={SECRET} dbname=test connect_timeout=2"
            ),
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
    });
    done.unwrap();
}
