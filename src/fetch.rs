//! One-call fetches: run a statement and take its rows in one call, on an
//! [`Engine`] or a [`Connection`] (and so on a
//! [`Transaction`](crate::Transaction), which derefs to its connection).
//!
//! The `_as` forms decode each row with [`FromRow`]: tuples take the
//! columns by position; a struct implements it by hand, or, with the `serde`
//! feature, through `serde::Deserialize` with [`from_row_via_serde!`](crate::from_row_via_serde).
//! For results too large to hold at once, stream them with
//! [`execute`](Engine::execute) and the [`CursorResult`](crate::CursorResult).

use crate::connection::Connection;
use crate::de::FromRow;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::params::Params;
use crate::read::ReadView;
use crate::row::Row;
use crate::sql::IntoSql;

macro_rules! one_call_fetches {
    ($owner:ty, $example:literal) => {
        impl $owner {
            /// Runs a statement and returns its one row; more rows are
            /// ignored (and not read).
            ///
            #[doc = $example]
            ///
            /// # Errors
            /// [`Error::NoRows`] when the statement returns no row; otherwise
            /// as `execute`.
            ///
            /// # Cancellation
            /// As `execute`: dropping the future interrupts the statement.
            pub async fn fetch_one(&self, sql: impl IntoSql, params: impl Params) -> Result<Row> {
                self.fetch_optional(sql, params).await?.ok_or(Error::NoRows)
            }

            /// Runs a statement and returns its first row, or `None` when it
            /// returns none.
            ///
            /// # Errors
            /// As `execute`.
            ///
            /// # Cancellation
            /// As `execute`.
            pub async fn fetch_optional(
                &self,
                sql: impl IntoSql,
                params: impl Params,
            ) -> Result<Option<Row>> {
                self.execute(sql, params).await?.first().await
            }

            /// Runs a statement and returns all its rows.
            ///
            /// # Errors
            /// As `execute`, and any error met while reading the rows.
            ///
            /// # Cancellation
            /// As `execute`: rows already read are dropped with the future.
            pub async fn fetch_all(
                &self,
                sql: impl IntoSql,
                params: impl Params,
            ) -> Result<Vec<Row>> {
                self.execute(sql, params).await?.fetchall().await
            }

            /// [`fetch_one`](Self::fetch_one), decoded into `T` (a tuple,
            /// or a type that implements [`FromRow`]).
            ///
            /// # Errors
            /// As `fetch_one`, and [`Error::Decode`] or
            /// [`Error::Deserialize`] when the row does not fit `T`.
            ///
            /// # Cancellation
            /// As `execute`.
            pub async fn fetch_one_as<T: FromRow>(
                &self,
                sql: impl IntoSql,
                params: impl Params,
            ) -> Result<T> {
                T::from_row_owned(self.fetch_one(sql, params).await?)
            }

            /// [`fetch_optional`](Self::fetch_optional), decoded into `T`.
            ///
            /// # Errors
            /// As `fetch_optional`, and [`Error::Decode`] or
            /// [`Error::Deserialize`] when the row does not fit `T`.
            ///
            /// # Cancellation
            /// As `execute`.
            pub async fn fetch_optional_as<T: FromRow>(
                &self,
                sql: impl IntoSql,
                params: impl Params,
            ) -> Result<Option<T>> {
                self.fetch_optional(sql, params)
                    .await?
                    .map(T::from_row_owned)
                    .transpose()
            }

            /// [`fetch_all`](Self::fetch_all), each row decoded into `T`.
            ///
            /// The rows are decoded on the connection's worker as they are
            /// read, so they are never held as [`Row`]s: a large result
            /// takes about the memory of collecting the bare driver's rows
            /// into `Vec<T>`.
            ///
            /// # Errors
            /// As `fetch_all`, and [`Error::Decode`] or
            /// [`Error::Deserialize`] for the first row that does not fit `T`.
            ///
            /// # Cancellation
            /// As `execute`: dropping the future interrupts the statement,
            /// also while its rows are read.
            pub async fn fetch_all_as<T: FromRow + Send + 'static>(
                &self,
                sql: impl IntoSql,
                params: impl Params,
            ) -> Result<Vec<T>> {
                self.execute(sql, params)
                    .await?
                    .fetch_into(T::from_row_taking)
                    .await
            }
        }
    };
}

one_call_fetches!(
    Engine,
    r#"```
# futures::executor::block_on(async {
let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
engine.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)", ()).await?;
engine.execute("INSERT INTO users (name) VALUES ('Dana Whitaker')", ()).await?;

let row = engine.fetch_one("SELECT id, name FROM users WHERE id = ?1", (1,)).await?;
assert_eq!(row.get::<String>("name")?, "Dana Whitaker");

let (id, name): (i64, String) = engine.fetch_one_as("SELECT id, name FROM users", ()).await?;
assert_eq!((id, name.as_str()), (1, "Dana Whitaker"));

let missing = engine.fetch_optional("SELECT id FROM users WHERE id = 2", ()).await?;
assert!(missing.is_none());
let err = engine.fetch_one("SELECT id FROM users WHERE id = 2", ()).await.unwrap_err();
assert!(matches!(err, sqlaio::Error::NoRows));

let all: Vec<(i64, String)> = engine.fetch_all_as("SELECT id, name FROM users", ()).await?;
assert_eq!(all.len(), 1);
# Ok::<(), sqlaio::Error>(())
# }).unwrap();
```"#
);

one_call_fetches!(
    ReadView,
    r#"```
# futures::executor::block_on(async {
let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
let (one,): (i64,) = engine.read().fetch_one_as("SELECT 1", ()).await?;
assert_eq!(one, 1);
# Ok::<(), sqlaio::Error>(())
# }).unwrap();
```"#
);

one_call_fetches!(
    Connection,
    r#"```
# futures::executor::block_on(async {
let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
let conn = engine.connect().await?;
let tx = conn.begin().await?;
tx.execute("CREATE TABLE t (x INTEGER)", ()).await?;
tx.execute("INSERT INTO t VALUES (7)", ()).await?;
let (x,): (i64,) = tx.fetch_one_as("SELECT x FROM t", ()).await?;
assert_eq!(x, 7);
tx.commit().await?;
# Ok::<(), sqlaio::Error>(())
# }).unwrap();
```"#
);

/// Implements [`FromRow`] for types that implement `serde::Deserialize`,
/// so that the one-call fetches (`fetch_one_as`, `fetch_all_as`, ...)
/// decode rows into them; the mapping is [`Row::deserialize`]'s (each field
/// from the column of its name).
///
/// ```
/// # futures::executor::block_on(async {
/// #[derive(serde::Deserialize)]
/// struct User {
///     id: i64,
///     name: String,
/// }
/// sqlaio::from_row_via_serde!(User);
///
/// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
/// let users: Vec<User> = engine
///     .fetch_all_as("SELECT 1 AS id, 'Dana Whitaker' AS name", ())
///     .await?;
/// assert_eq!((users[0].id, users[0].name.as_str()), (1, "Dana Whitaker"));
/// # Ok::<(), sqlaio::Error>(())
/// # }).unwrap();
/// ```
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
#[macro_export]
macro_rules! from_row_via_serde {
    ($($ty:ty),+ $(,)?) => {
        $(
            impl $crate::FromRow for $ty {
                fn from_row(row: &$crate::Row) -> $crate::Result<Self> {
                    row.deserialize()
                }
            }
        )+
    };
}
