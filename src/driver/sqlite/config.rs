//! A SQLite URL: where the database lives, and the options of its connections.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};

/// How long a connection waits for a lock held by another connection before `SQLITE_BUSY`.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A SQLite database and how its connections are set up, from its URL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SqliteConfig {
    pub(crate) location: Location,
    pub(crate) options: Options,
}

/// Where a SQLite database lives.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Location {
    File { path: PathBuf, read_only: bool },
    /// The engine's private database for `sqlite::memory:`: a file on tmpfs
    /// (`/dev/shm`) where there is one, shared by every connection of one
    /// engine and deleted with it.
    Memory { path: PathBuf },
}

/// Connection settings a URL can change (`?busy_timeout=10000&foreign_keys=off`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    /// How long a connection waits for another's lock before `SQLITE_BUSY`.
    pub(super) busy_timeout: Duration,
    /// `PRAGMA journal_mode`; WAL unless the URL says otherwise.
    pub(super) journal_mode: String,
    /// `PRAGMA synchronous`; `NORMAL` for files (safe with WAL), `OFF` in memory.
    pub(super) synchronous: Option<String>,
    pub(super) foreign_keys: bool,
    /// Prepared statements cached per connection.
    pub(super) statement_cache: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            busy_timeout: BUSY_TIMEOUT,
            journal_mode: "WAL".into(),
            synchronous: None,
            foreign_keys: true,
            statement_cache: STATEMENT_CACHE,
        }
    }
}

/// Prepared statements each connection keeps by default (rusqlite's own default is 16).
const STATEMENT_CACHE: usize = 64;

/// The options a SQLite URL takes, for messages.
const OPTIONS: &str =
    "mode=ro|rw|rwc, busy_timeout=<ms>, journal_mode=<mode>, synchronous=<level>, \
     foreign_keys=on|off, statement_cache_capacity=<n>";

impl SqliteConfig {
    /// Parses what follows `sqlite:` in a URL.
    pub(super) fn parse(rest: &str) -> Result<SqliteConfig> {
        let (location, query) = match rest.strip_prefix(":memory:") {
            Some(query) => (":memory:", query),
            None => {
                let Some(rest) = rest.strip_prefix("//") else {
                    return Err(Error::Config(format!(
                        "sqlite URL \"sqlite:{rest}\" must be sqlite://path or sqlite::memory:"
                    )));
                };
                // A `?` in a file name must be written `%3F`: the first `?` starts the options.
                rest.split_once('?').map_or((rest, ""), |(path, query)| (path, query))
            }
        };
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut options = Options::default();
        let mut read_only = false;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let bad = || {
                Error::Config(format!(
                    "invalid sqlite URL option {key}={value:?}: supported are {OPTIONS}"
                ))
            };
            match &*key {
                "mode" => match &*value {
                    "ro" => read_only = true,
                    "rw" | "rwc" => read_only = false,
                    _ => return Err(bad()),
                },
                "busy_timeout" => {
                    options.busy_timeout = Duration::from_millis(value.parse().map_err(|_| bad())?)
                }
                "journal_mode" => options.journal_mode = pragma_word(&value).ok_or_else(bad)?,
                "synchronous" => options.synchronous = Some(pragma_word(&value).ok_or_else(bad)?),
                "foreign_keys" => {
                    options.foreign_keys = match &*value.to_ascii_lowercase() {
                        "on" | "true" | "1" | "yes" => true,
                        "off" | "false" | "0" | "no" => false,
                        _ => return Err(bad()),
                    }
                }
                "statement_cache_capacity" => {
                    options.statement_cache = value.parse().map_err(|_| bad())?
                }
                _ => {
                    return Err(Error::Config(format!(
                        "unknown sqlite URL option {key:?}: supported are {OPTIONS}"
                    )))
                }
            }
        }
        let path = percent_encoding::percent_decode_str(location)
            .decode_utf8()
            .map_err(|_| Error::Config("the sqlite URL's path is not valid UTF-8".into()))?;
        if path.is_empty() || path == ":memory:" {
            return Ok(SqliteConfig {
                location: Location::memory(),
                options,
            });
        }
        let path = PathBuf::from(&*path);
        check_not_at_root(&path)?;
        Ok(SqliteConfig {
            location: Location::File { path, read_only },
            options,
        })
    }
}

/// A PRAGMA value: one word of letters (`WAL`, `normal`).
fn pragma_word(value: &str) -> Option<String> {
    (!value.is_empty() && value.bytes().all(|b| b.is_ascii_alphabetic())).then(|| value.to_ascii_uppercase())
}

/// `sqlite:///app.db` is SQLAlchemy's spelling of `app.db` in the current
/// directory, while sqlaio reads it as `/app.db`: refuse to create a new
/// database file at the root of the file system, naming both spellings.
fn check_not_at_root(path: &Path) -> Result<()> {
    let at_root = path.parent() == Some(Path::new("/"));
    if at_root && !path.exists() {
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        return Err(Error::Config(format!(
            "sqlite:///{name} names a new database at the root of the file system ({}); \
             write sqlite://{name} for {name} in the current directory (sqlaio's URLs put the \
             path right after \"sqlite://\", so an absolute path has three slashes: \
             sqlite:///var/data/{name})",
            path.display()
        )));
    }
    Ok(())
}

impl Location {
    /// The engine's private in-memory database: a file name no other engine
    /// of this process uses.
    fn memory() -> Location {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        Location::Memory {
            path: dir.join(format!(
                "sqlaio-memory-{}-{}.db",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::sqlite::SqliteDriver;
    use crate::driver::Driver;

    #[test]
    fn sqlite_urls() {
        let location = |url| SqliteDriver::parse(url).unwrap().location;
        assert!(matches!(location("sqlite::memory:"), Location::Memory { .. }));
        assert!(matches!(
            location("sqlite://data/app.db"),
            Location::File { path, read_only: false } if path == Path::new("data/app.db")
        ));
        assert!(matches!(
            location("sqlite:///var/app.db?mode=ro"),
            Location::File { path, read_only: true } if path == Path::new("/var/app.db")
        ));
        // Spaces and question marks in a file name, percent-encoded.
        assert!(matches!(
            location("sqlite://my%20data/what%3F.db?mode=rwc"),
            Location::File { path, .. } if path == Path::new("my data/what?.db")
        ));
    }

    #[test]
    fn sqlite_url_options() {
        let options = |url| SqliteDriver::parse(url).unwrap().options;
        assert_eq!(options("sqlite://a.db"), Options::default());
        let set = options(
            "sqlite://a.db?busy_timeout=250&journal_mode=delete&synchronous=full\
             &foreign_keys=off&statement_cache_capacity=8",
        );
        assert_eq!(set.busy_timeout, Duration::from_millis(250));
        assert_eq!((set.journal_mode.as_str(), set.synchronous.as_deref()), ("DELETE", Some("FULL")));
        assert!(!set.foreign_keys);
        assert_eq!(set.statement_cache, 8);
        assert!(!options("sqlite::memory:?foreign_keys=0").foreign_keys);
        for bad in [
            "sqlite://a.db?busy_timeout=soon",
            "sqlite://a.db?journal_mode=wal;drop",
            "sqlite://a.db?foreign_keys=maybe",
            "sqlite://a.db?cache=shared",
        ] {
            let e = SqliteDriver::parse(bad).unwrap_err().to_string();
            assert!(e.contains("busy_timeout=<ms>"), "{bad}: {e}");
        }
    }

    #[test]
    fn three_slashes_before_a_new_file_name_say_how_to_spell_both() {
        let e = SqliteDriver::parse("sqlite:///sqlaio-surely-absent.db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sqlite://sqlaio-surely-absent.db for"), "{e}");
        assert!(e.contains("sqlite:///var/data/"), "{e}");
    }

    #[test]
    fn two_memory_urls_are_two_databases() {
        let name = |c: SqliteConfig| match c.location {
            Location::Memory { path } => path,
            other => panic!("not a memory database: {other:?}"),
        };
        assert_ne!(
            name(SqliteDriver::parse("sqlite::memory:").unwrap()),
            name(SqliteDriver::parse("sqlite::memory:").unwrap())
        );
    }
}
