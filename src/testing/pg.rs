//! PostgreSQL test databases: a schema per test, put on the `search_path`
//! of the test engine's connections through the URL's `options`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::engine::Engine;
use crate::error::{Error, Result};

use super::{unique, Place};

/// A test's schema on a server.
#[derive(Debug, Clone)]
pub(super) struct Schema {
    /// The URL the test gave, without the schema: for dropping it.
    server: String,
    /// `sqlaio_test_<label>_<unique>`: letters, digits and `_` only.
    name: String,
    /// The server URL with the schema on the `search_path`.
    url: String,
    /// Whether the test's connections carry the schema's name as their
    /// `application_name` (unless the URL sets one), so that connections a
    /// failed test left behind can be found and ended.
    tagged: bool,
}

/// A new schema name for `server`, and the URL that puts it on the
/// `search_path`. Nothing is created yet.
pub(super) fn place(server: &str, label: &str) -> Result<Place> {
    let name = format!("sqlaio_test_{label}_{}", unique());
    let (url, tagged) = with_search_path(server, &name)?;
    Ok(Place::Postgres(Schema {
        server: server.to_owned(),
        name,
        url,
        tagged,
    }))
}

impl Schema {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// Drops the schema and everything in it, through an engine of its own
    /// (the test's may be closed, or use a strategy that needs a runtime).
    /// When a lock held by a connection the test left open keeps the drop
    /// waiting past 5 seconds, those connections are ended and the drop is
    /// tried again.
    pub(super) async fn drop_schema(&self) -> Result<()> {
        let engine = Engine::builder()
            .url(&self.server)
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .build()?;
        let dropped = self.drop_with(&engine).await;
        let closed = engine.close().await;
        dropped.and(closed)
    }

    async fn drop_with(&self, engine: &Engine) -> Result<()> {
        let conn = engine.connect().await?;
        conn.execute("SET lock_timeout = '5s'", ()).await?;
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        match conn.execute(drop.as_str(), ()).await {
            Ok(_) => Ok(()),
            Err(e) if !self.tagged => Err(e),
            Err(_) => {
                // The name is made of [a-z0-9_]: safe inside a literal.
                let end = format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = '{}' AND pid <> pg_backend_pid()",
                    self.name
                );
                conn.execute(end.as_str(), ()).await?;
                conn.execute(drop.as_str(), ()).await.map(|_| ())
            }
        }
    }
}

/// `server` with `-c search_path=<schema>` added to its `options` (after
/// any it has), and `application_name=<schema>` when it names none; the
/// `bool` says whether the name was added. Works for URLs and key-value
/// strings: the `postgres` crate reads the last value of a repeated key.
fn with_search_path(server: &str, schema: &str) -> Result<(String, bool)> {
    let config: postgres::Config = server
        .parse()
        .map_err(|e| Error::Config(format!("invalid PostgreSQL URL for the test harness: {e}")))?;
    let mut options = config.get_options().unwrap_or_default().trim().to_owned();
    if !options.is_empty() {
        options.push(' ');
    }
    options.push_str("-c search_path=");
    options.push_str(schema);
    let tag = config.get_application_name().is_none();
    let mut url = server.trim().to_owned();
    if url.contains("://") {
        if !url.ends_with(['?', '&']) {
            url.push(if url.contains('?') { '&' } else { '?' });
        }
        url.push_str("options=");
        url.push_str(&percent_encode(&options));
        if tag {
            let _ = write!(url, "&application_name={schema}");
        }
    } else {
        let quoted = options.replace('\\', "\\\\").replace('\'', "\\'");
        let _ = write!(url, " options='{quoted}'");
        if tag {
            let _ = write!(url, " application_name={schema}");
        }
    }
    Ok((url, tag))
}

/// Percent-encodes everything but unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_search_path;

    fn parsed(url: &str) -> postgres::Config {
        url.parse().unwrap()
    }

    #[test]
    fn adds_the_schema_to_a_url() {
        let (url, tagged) = with_search_path("postgres://root@127.0.0.1:5432/test", "s1").unwrap();
        assert!(tagged);
        let config = parsed(&url);
        assert_eq!(config.get_options(), Some("-c search_path=s1"));
        assert_eq!(config.get_application_name(), Some("s1"));
        assert_eq!(config.get_dbname(), Some("test"));
    }

    #[test]
    fn keeps_the_urls_own_options_and_application_name() {
        let server =
            "postgres://root@db/test?options=-c%20statement_timeout%3D5s&application_name=app";
        let (url, tagged) = with_search_path(server, "s2").unwrap();
        assert!(!tagged);
        let config = parsed(&url);
        assert_eq!(
            config.get_options(),
            Some("-c statement_timeout=5s -c search_path=s2")
        );
        assert_eq!(config.get_application_name(), Some("app"));
    }

    #[test]
    fn adds_the_schema_to_a_key_value_string() {
        let (url, _) = with_search_path("host=db user=root options='-c x=it\\'s'", "s3").unwrap();
        let config = parsed(&url);
        assert_eq!(config.get_options(), Some("-c x=it's -c search_path=s3"));
        assert_eq!(config.get_application_name(), Some("s3"));
    }
}
