//! MySQL/MariaDB test databases: a database per test (`CREATE DATABASE`),
//! named as the path of the test engine's URL.

use std::time::Duration;

use crate::engine::Engine;
use crate::error::{Error, Result};

use super::{unique, Place};

/// A test's database on a server.
#[derive(Debug, Clone)]
pub(super) struct Database {
    /// The URL the test gave: for creating and dropping the database.
    server: String,
    /// `sqlaio_test_<label>_<unique>`: letters, digits and `_` only, at
    /// most 49 characters (MySQL allows 64).
    name: String,
    /// The server URL with the test's database as its path.
    url: String,
}

/// A new database name for `server`, and the URL that connects to it.
/// Nothing is created yet.
pub(super) fn place(server: &str, label: &str) -> Result<Place> {
    let name = format!("sqlaio_test_{label}_{}", unique());
    let url = with_database(server, &name)?;
    Ok(Place::Mysql(Database {
        server: server.to_owned(),
        name,
        url,
    }))
}

impl Database {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// Creates the database, through an engine on the server URL (the test
    /// engine's URL names a database that does not exist yet).
    pub(super) async fn create(&self) -> Result<()> {
        let create = format!("CREATE DATABASE {} CHARACTER SET utf8mb4", self.name);
        self.on_server(|engine| async move { engine.execute(create, ()).await.map(drop) })
            .await
    }

    /// Drops the database and everything in it. When a lock held by a
    /// connection the test left open keeps the drop waiting past 5
    /// seconds, the connections still using the database are ended and the
    /// drop is tried again.
    pub(super) async fn drop_database(&self) -> Result<()> {
        let name = self.name.clone();
        self.on_server(|engine| async move {
            let conn = engine.connect().await?;
            conn.execute("SET SESSION lock_wait_timeout = 5", ())
                .await?;
            let drop_database = format!("DROP DATABASE IF EXISTS {name}");
            if conn.execute(drop_database.as_str(), ()).await.is_ok() {
                return Ok(());
            }
            // The name is made of [a-z0-9_]: safe inside a literal.
            let left = format!(
                "SELECT id FROM information_schema.processlist \
                 WHERE db = '{name}' AND id <> CONNECTION_ID()"
            );
            let ids = conn.execute(left.as_str(), ()).await?.fetchall().await?;
            for row in ids {
                let id: i64 = row.get(0)?;
                // Gone already is as good.
                let _ = conn.execute(format!("KILL CONNECTION {id}"), ()).await;
            }
            conn.execute(drop_database.as_str(), ()).await.map(drop)
        })
        .await
    }

    /// Runs `job` with an engine of its own on the server URL (the test's
    /// may be closed, or use a strategy that needs a runtime).
    async fn on_server<F, Fut>(&self, job: F) -> Result<()>
    where
        F: FnOnce(Engine) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let engine = Engine::builder()
            .url(&self.server)
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .build()?;
        let done = job(engine.clone()).await;
        let closed = engine.close().await;
        done.and(closed)
    }
}

/// `server` with its database (the URL's path) replaced by `database`; the
/// query string is kept.
fn with_database(server: &str, database: &str) -> Result<String> {
    let server = server.trim();
    let Some((scheme, rest)) = server.split_once("://") else {
        return Err(Error::Config(
            "the test harness needs a MySQL URL: mysql://user:password@host:port/database".into(),
        ));
    };
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (rest, None),
    };
    // The path starts at the first '/' after the user info and host.
    let host_start = base.rfind('@').map_or(0, |at| at + 1);
    let authority_end = base[host_start..]
        .find('/')
        .map_or(base.len(), |slash| host_start + slash);
    let mut url = format!("{scheme}://{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_and_keeps_the_rest() {
        let cases = [
            (
                "mysql://root@127.0.0.1:3306/test",
                "mysql://root@127.0.0.1:3306/t1",
            ),
            (
                "mysql://root@127.0.0.1:3306",
                "mysql://root@127.0.0.1:3306/t1",
            ),
            ("mariadb://root@db/", "mariadb://root@db/t1"),
            (
                "mysql://u:p%2Fw@db:3307/app?connect_timeout=5&stmt_cache_size=9",
                "mysql://u:p%2Fw@db:3307/t1?connect_timeout=5&stmt_cache_size=9",
            ),
            // A '/' in the password (unencoded) is not taken for the path.
            ("mysql://u:a/b@db/app", "mysql://u:a/b@db/t1"),
        ];
        for (server, expected) in cases {
            assert_eq!(with_database(server, "t1").unwrap(), expected, "{server}");
        }
        assert!(with_database("db/test", "t1").is_err());
    }
}
