//! [`Sql`] and [`IntoSql`]: what the `execute` methods accept as a statement.

use std::borrow::Cow;
use std::time::Duration;

use crate::error::Result;
use crate::params::Parameters;

/// The SQL dialect of an engine's database, for statements built per dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// SQLite: placeholders `?1`, `:name`.
    Sqlite,
    /// PostgreSQL: placeholders `$1`.
    Postgres,
    /// MySQL and MariaDB: placeholders `?`, or `:name`.
    MySql,
}

/// One statement, ready to run: its text, optionally the values it carries
/// (for statements built by a query builder), and options for this call.
///
/// A plain `&str` or `String` converts into it; build one explicitly to set
/// a per-call option:
///
/// ```
/// # futures::executor::block_on(async {
/// use std::time::Duration;
/// use sqlaio::Sql;
///
/// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
/// let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
///                SELECT count(*) FROM c";
/// let err = engine
///     .scalar::<i64>(Sql::new(endless).timeout(Duration::from_millis(100)), ())
///     .await
///     .unwrap_err();
/// assert!(err.is_timeout());
/// # Ok::<(), sqlaio::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    pub(crate) text: String,
    pub(crate) params: Option<Parameters>,
    pub(crate) timeout: Option<Option<Duration>>,
}

impl Sql {
    /// A statement from its text.
    pub fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            params: None,
            timeout: None,
        }
    }

    /// A statement with the parameters it carries; the `params` argument of
    /// the call must then be `()`.
    pub fn with_params(text: impl Into<String>, params: Parameters) -> Sql {
        Sql {
            text: text.into(),
            params: Some(params),
            timeout: None,
        }
    }

    /// The longest this call's statement may run before it is interrupted
    /// and fails with [`Error::Timeout`](crate::Error::Timeout); overrides
    /// the connection's statement timeout for this call only.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Sql {
        self.timeout = Some(Some(timeout));
        self
    }

    /// Runs this call without any statement timeout, whatever the connection's.
    #[must_use]
    pub fn no_timeout(mut self) -> Sql {
        self.timeout = Some(None);
        self
    }

    /// The statement's text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Anything the `execute` methods accept as a statement: `&str`, `String`,
/// [`Sql`], and (with the `sea-query` feature) `sea_query` statements, which
/// are rendered in the engine's [`Dialect`].
pub trait IntoSql {
    /// Renders the statement for `dialect`.
    ///
    /// # Errors
    /// When the statement cannot be rendered for this dialect.
    fn into_sql(self, dialect: Dialect) -> Result<Sql>;
}

impl IntoSql for Sql {
    fn into_sql(self, _: Dialect) -> Result<Sql> {
        Ok(self)
    }
}

impl IntoSql for &str {
    fn into_sql(self, _: Dialect) -> Result<Sql> {
        Ok(Sql::new(self))
    }
}

impl IntoSql for String {
    fn into_sql(self, _: Dialect) -> Result<Sql> {
        Ok(Sql::new(self))
    }
}

impl IntoSql for &String {
    fn into_sql(self, _: Dialect) -> Result<Sql> {
        Ok(Sql::new(self.as_str()))
    }
}

impl IntoSql for Cow<'_, str> {
    fn into_sql(self, _: Dialect) -> Result<Sql> {
        Ok(Sql::new(self.into_owned()))
    }
}
