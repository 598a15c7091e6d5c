//! Database URLs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Where an engine's connections go, parsed from its URL.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A SQLite database.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Sqlite(SqliteTarget),
    /// A PostgreSQL server.
    #[cfg(feature = "postgres")]
    Postgres(Box<postgres::Config>),
}

/// A SQLite database: a file, or an in-memory database shared by the engine.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) enum SqliteTarget {
    File {
        path: PathBuf,
        read_only: bool,
    },
    /// The engine's private database for `sqlite::memory:`: a file on tmpfs
    /// (`/dev/shm`) where there is one, shared by every connection of one
    /// engine and deleted with it.
    Memory {
        path: PathBuf,
    },
}

impl Target {
    /// Parses a URL: `sqlite://path`, `sqlite:///absolute/path`, `sqlite::memory:`.
    pub(crate) fn parse(url: &str) -> Result<Target> {
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::Config("the database URL is empty".into()));
        }
        if !url.contains("://") && !url.starts_with("sqlite") && url.contains('=') {
            // A PostgreSQL key-value string: "host=... user=... dbname=...".
            return parse_postgres(url);
        }
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(Error::Config(format!(
                "{:?} is not a database URL: expected sqlite://path or sqlite::memory:",
                redact(url)
            )));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" | "sqlite3" => parse_sqlite(rest),
            "postgres" | "postgresql" => parse_postgres(url),
            other => Err(Error::Config(format!(
                "unknown database scheme {other:?}: expected \"sqlite\" or \"postgres\""
            ))),
        }
    }
}

fn parse_sqlite(rest: &str) -> Result<Target> {
    if rest == ":memory:" {
        return Ok(Target::Sqlite(memory()));
    }
    let Some(rest) = rest.strip_prefix("//") else {
        return Err(Error::Config(format!(
            "sqlite URL \"sqlite:{rest}\" must be sqlite://path or sqlite::memory:"
        )));
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return Ok(Target::Sqlite(memory()));
    }
    let mut read_only = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("mode", "ro")) => read_only = true,
            Some(("mode", "rw" | "rwc")) => read_only = false,
            _ => {
                return Err(Error::Config(format!(
                    "unknown sqlite URL option {pair:?}: supported is mode=ro|rwc"
                )))
            }
        }
    }
    Ok(Target::Sqlite(SqliteTarget::File {
        path: PathBuf::from(path),
        read_only,
    }))
}

#[cfg(feature = "postgres")]
fn parse_postgres(url: &str) -> Result<Target> {
    let config: postgres::Config = url
        .parse()
        .map_err(|e| Error::Config(format!("invalid PostgreSQL URL {:?}: {e}", redact(url))))?;
    #[cfg(not(feature = "tls"))]
    if config.get_ssl_mode() == postgres::config::SslMode::Require {
        return Err(Error::Config(
            "sslmode=require needs the \"tls\" feature of sqlaio".into(),
        ));
    }
    Ok(Target::Postgres(Box::new(config)))
}

#[cfg(not(feature = "postgres"))]
fn parse_postgres(_url: &str) -> Result<Target> {
    Err(Error::Config(
        "PostgreSQL URLs need the \"postgres\" feature of sqlaio".into(),
    ))
}

fn memory() -> SqliteTarget {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    SqliteTarget::Memory {
        path: dir.join(format!(
            "sqlaio-memory-{}-{}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )),
    }
}

/// The URL with any password replaced by `***`, for `Debug`, logs and errors.
pub(crate) fn redact(url: &str) -> String {
    // scheme://user:password@host...
    let Some(scheme_end) = url.find("://") else {
        return redact_key_value(url);
    };
    let after = &url[scheme_end + 3..];
    let authority_end = after.find(['/', '?']).unwrap_or(after.len());
    let authority = &after[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[scheme_end + 3 + at..]
                ),
                None => redact_key_value(url),
            }
        }
        None => redact_key_value(url),
    }
}

/// Redacts `password=...` in a key-value connection string, and in URL query strings.
fn redact_key_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("password=") {
        let at_boundary = i == 0 || matches!(rest.as_bytes()[i - 1], b' ' | b'?' | b'&');
        out.push_str(&rest[..i + "password=".len()]);
        rest = &rest[i + "password=".len()..];
        if at_boundary {
            let end = if let Some(quoted) = rest.strip_prefix('\'') {
                quoted.find('\'').map_or(rest.len(), |e| e + 2)
            } else {
                rest.find([' ', '&']).unwrap_or(rest.len())
            };
            out.push_str("***");
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls() {
        assert!(matches!(
            Target::parse("sqlite::memory:").unwrap(),
            Target::Sqlite(SqliteTarget::Memory { .. })
        ));
        assert!(matches!(
            Target::parse("sqlite://data/app.db").unwrap(),
            Target::Sqlite(SqliteTarget::File { path, read_only: false }) if path == std::path::Path::new("data/app.db")
        ));
        assert!(matches!(
            Target::parse("sqlite:///var/app.db?mode=ro").unwrap(),
            Target::Sqlite(SqliteTarget::File { path, read_only: true }) if path == std::path::Path::new("/var/app.db")
        ));
    }

    #[test]
    fn two_memory_urls_are_two_databases() {
        let name = |t: Target| match t {
            Target::Sqlite(SqliteTarget::Memory { path }) => path,
            other => panic!("not a memory target: {other:?}"),
        };
        assert_ne!(
            name(Target::parse("sqlite::memory:").unwrap()),
            name(Target::parse("sqlite::memory:").unwrap())
        );
    }

    #[test]
    fn bad_urls_say_why() {
        let e = Target::parse("mysql://x").unwrap_err().to_string();
        assert!(e.contains("unknown database scheme \"mysql\""), "{e}");
        let e = Target::parse("sqlite:app.db").unwrap_err().to_string();
        assert!(e.contains("must be sqlite://path"), "{e}");
        let e = Target::parse("").unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = Target::parse("sqlite://a.db?cache=shared")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cache=shared"), "{e}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://dana:s3cret@db:5432/app"),
            "postgres://dana:***@db:5432/app"
        );
        assert_eq!(redact("postgres://dana@db/app"), "postgres://dana@db/app");
        assert_eq!(redact("sqlite://app.db"), "sqlite://app.db");
        assert_eq!(
            redact("host=db user=dana password=s3cret dbname=app"),
            "host=db user=dana password=*** dbname=app"
        );
        assert_eq!(
            redact("host=db password='a b' user=x"),
            "host=db password=*** user=x"
        );
        assert_eq!(
            redact("postgres://db/app?user=x&password=s3cret&sslmode=require"),
            "postgres://db/app?user=x&password=***&sslmode=require"
        );
    }
}
