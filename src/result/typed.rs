//! Rows deserialized into Rust types as they are fetched (feature `serde`):
//! the `_as` fetches of [`CursorResult`] and the [`TypedRows`] stream.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::result::CursorResult;
use crate::row::Row;

impl<'c> CursorResult<'c> {
    /// The next row deserialized into `T`, or `None` when there are no more;
    /// see [`Row::deserialize`] for how columns map to `T`.
    ///
    /// # Errors
    /// As [`fetchone`](CursorResult::fetchone), and [`Error::Deserialize`](crate::Error::Deserialize)
    /// when the row does not fit `T`.
    ///
    /// # Cancellation
    /// As [`fetchone`](CursorResult::fetchone).
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub async fn fetchone_as<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        self.fetchone()
            .await?
            .map(|row| row.deserialize())
            .transpose()
    }

    /// Up to `n` more rows deserialized into `T`; fewer only at the end of the result.
    ///
    /// # Errors
    /// As [`fetchone_as`](CursorResult::fetchone_as).
    ///
    /// # Cancellation
    /// As [`fetchone`](CursorResult::fetchone).
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub async fn fetchmany_as<T: DeserializeOwned>(&mut self, n: usize) -> Result<Vec<T>> {
        self.fetchmany(n)
            .await?
            .iter()
            .map(Row::deserialize)
            .collect()
    }

    /// Every remaining row deserialized into `T`.
    ///
    /// The rows still on the worker are deserialized there as they are read,
    /// so a large result is held once, as `T`s, and never as [`Row`]s: for
    /// plain columns about the memory of collecting the bare driver's rows
    /// into the same type.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// #[derive(serde::Deserialize)]
    /// struct User {
    ///     id: i64,
    ///     name: String,
    /// }
    ///
    /// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
    /// let mut result = engine
    ///     .execute("SELECT 1 AS id, 'Dan Rydell' AS name UNION ALL SELECT 2, 'Dana Whitaker'", ())
    ///     .await?;
    /// let users: Vec<User> = result.fetchall_as().await?;
    /// assert_eq!(users.len(), 2);
    /// assert_eq!((users[1].id, users[1].name.as_str()), (2, "Dana Whitaker"));
    /// # Ok::<(), sqlaio::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`fetchone_as`](CursorResult::fetchone_as); after an error the
    /// result has no more rows.
    ///
    /// # Cancellation
    /// Unlike the other fetches, dropping the future while the rows are read
    /// interrupts the read (when the connection interrupts on drop, the
    /// default) and closes the result: the rows deserialized so far cannot go
    /// back into it, so later fetches fail with [`Error::Closed`](crate::Error::Closed) rather than
    /// skip them.
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub async fn fetchall_as<T: DeserializeOwned + Send + 'static>(&mut self) -> Result<Vec<T>> {
        self.fetch_into(|row: &mut Row| row.deserialize()).await
    }

    /// The first row deserialized into `T` (or `None`), closing the result.
    ///
    /// # Errors
    /// As [`fetchone_as`](CursorResult::fetchone_as).
    ///
    /// # Cancellation
    /// As [`first`](CursorResult::first).
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub async fn first_as<T: DeserializeOwned>(self) -> Result<Option<T>> {
        self.first().await?.map(|row| row.deserialize()).transpose()
    }

    /// The rows as a [`Stream`] of `Result<T>`, each deserialized into `T`
    /// as it arrives; rows are read in batches as by the result's own stream.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use futures::TryStreamExt;
    ///
    /// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
    /// let sql = "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100) \
    ///            SELECT n, n * n FROM s";
    /// let squares: Vec<(i64, i64)> = engine
    ///     .execute(sql, ())
    ///     .await?
    ///     .into_stream_as::<(i64, i64)>()
    ///     .try_collect()
    ///     .await?;
    /// assert_eq!(squares[9], (10, 100));
    /// # Ok::<(), sqlaio::Error>(())
    /// # }).unwrap();
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn into_stream_as<T: DeserializeOwned>(self) -> TypedRows<'c, T> {
        TypedRows::new(self)
    }
}

/// The rows of a result, each deserialized into `T`: a [`Stream`] of
/// `Result<T>`, made by [`CursorResult::into_stream_as`].
///
/// It reads rows exactly as the result's own stream does, in batches
/// (see [`CursorResult`]); dropping it drops the result.
#[must_use = "streams do nothing unless polled"]
pub struct TypedRows<'c, T> {
    result: CursorResult<'c>,
    _type: PhantomData<fn() -> T>,
}

impl<'c, T> TypedRows<'c, T> {
    pub(crate) fn new(result: CursorResult<'c>) -> TypedRows<'c, T> {
        TypedRows {
            result,
            _type: PhantomData,
        }
    }

    /// The result the rows come from, for its [`keys`](CursorResult::keys)
    /// and [`rowcount`](CursorResult::rowcount).
    pub fn result(&self) -> &CursorResult<'c> {
        &self.result
    }

    /// Gives back the result.
    pub fn into_inner(self) -> CursorResult<'c> {
        self.result
    }
}

impl<T> fmt::Debug for TypedRows<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedRows")
            .field("result", &self.result)
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: DeserializeOwned> Stream for TypedRows<'_, T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = self.get_mut();
        Pin::new(&mut this.result)
            .poll_next(cx)
            .map(|next| next.map(|row| row.and_then(|row| row.deserialize())))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.result.size_hint()
    }
}
