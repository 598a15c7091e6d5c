//! Statements built with [`sea_query`], rendered in the engine's [`Dialect`].
//!
//! Every `sea_query` statement the crate accepts implements [`IntoSql`]: the
//! engine renders it with [`SqliteQueryBuilder`] or [`PostgresQueryBuilder`]
//! and binds the values the builder collected as positional parameters, so
//! one statement runs unchanged on both databases. Pass `()` as the call's
//! parameters: the statement carries its own.
//!
//! # Values
//! Each `sea_query::Value` becomes the [`Value`] that holds it without loss:
//!
//! | `sea_query::Value` | [`Value`] |
//! |---|---|
//! | any variant holding `None` | [`Value::Null`] |
//! | `Bool` | [`Value::Bool`] |
//! | `TinyInt`, `SmallInt`, `Int`, `BigInt`, `TinyUnsigned`, `SmallUnsigned`, `Unsigned` | [`Value::Integer`] |
//! | `BigUnsigned` | [`Value::Integer`], or [`Error::Parameter`] above `i64::MAX` |
//! | `Float`, `Double` | [`Value::Real`] |
//! | `String`, `Char` | [`Value::Text`] |
//! | `Bytes` | [`Value::Blob`] |
//! | `ChronoDateTime` | `Value::Timestamp` (feature `chrono`) |
//! | `ChronoDateTimeUtc`, `ChronoDateTimeLocal`, `ChronoDateTimeWithTimeZone` | `Value::TimestampTz`, the same instant in UTC (feature `chrono`) |
//! | `ChronoDate`, `ChronoTime` | `Value::Date`, `Value::Time` (feature `chrono`) |
//! | `Uuid` | `Value::Uuid` (feature `uuid`) |
//! | `Json` | `Value::Json` (feature `json`) |
//! | `Decimal` | `Value::Decimal` (feature `decimal`) |
//!
//! Any other variant (arrays, `time` crate types, big decimals, network
//! types, ...) fails with [`Error::Parameter`] naming it.
//!
//! # Statements a dialect cannot express
//! `sea_query` panics when a statement uses something its builder cannot
//! render for the dialect (`TRUNCATE` or several `ALTER TABLE` options on
//! SQLite, for example). sqlaio catches that panic and returns
//! [`Error::Statement`] with its message instead.
//!
//! The MySQL builder leaves out a `RETURNING` clause without a word (MySQL
//! has none), which would run the write and return no rows: sqlaio refuses
//! such a statement with [`Error::Statement`] before it reaches the
//! database. (MariaDB has `INSERT`/`DELETE ... RETURNING`: write it as SQL.)
//!
//! # Example
//! ```
//! use sqlaio::sea_query::{Alias, ColumnDef, Expr, Order, Query, Table};
//!
//! # futures::executor::block_on(async {
//! let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
//! let users = Alias::new("users");
//! let (id, name) = (Alias::new("id"), Alias::new("name"));
//! engine
//!     .execute(
//!         Table::create()
//!             .table(users.clone())
//!             .col(ColumnDef::new(id.clone()).big_integer().not_null().auto_increment().primary_key())
//!             .col(ColumnDef::new(name.clone()).text().not_null()),
//!         (),
//!     )
//!     .await?;
//! engine
//!     .execute(
//!         Query::insert()
//!             .into_table(users.clone())
//!             .columns([name.clone()])
//!             .values_panic(["Casey McCall".into()])
//!             .values_panic(["Dana Whitaker".into()]),
//!         (),
//!     )
//!     .await?;
//! let first: String = engine
//!     .scalar(
//!         Query::select()
//!             .column(name.clone())
//!             .from(users)
//!             .and_where(Expr::col(name.clone()).like("D%"))
//!             .order_by(id, Order::Asc),
//!         (),
//!     )
//!     .await?;
//! assert_eq!(first, "Dana Whitaker");
//! # Ok::<(), sqlaio::Error>(())
//! # }).unwrap();
//! ```

use ::sea_query as sq;
use sq::{
    MysqlQueryBuilder, PostgresQueryBuilder, QueryStatementWriter, SchemaStatementBuilder,
    SqliteQueryBuilder,
};

use crate::error::{Error, Result};
use crate::params::Parameters;
use crate::sql::{Dialect, IntoSql, Sql};
use crate::value::Value;

/// Renders a statement that carries values.
fn query(statement: &impl QueryStatementWriter, dialect: Dialect) -> Result<Sql> {
    let (text, values) = render(|| match dialect {
        Dialect::Sqlite => statement.build(SqliteQueryBuilder),
        Dialect::Postgres => statement.build(PostgresQueryBuilder),
        Dialect::MySql => statement.build(MysqlQueryBuilder),
    })?;
    if dialect == Dialect::MySql && drops_returning(statement, &text)? {
        return Err(Error::Statement(
            "the MySQL query builder leaves out RETURNING (MySQL has none), so the write would \
             return no rows; on MariaDB write INSERT or DELETE ... RETURNING as SQL"
                .into(),
        ));
    }
    Ok(Sql::with_params(text, parameters(values)?))
}

/// `true` when the statement has a `RETURNING` clause that `mysql`, its
/// MySQL rendering, lacks. sea-query does not expose the clause, so the
/// PostgreSQL rendering, which writes it, tells.
fn drops_returning(statement: &impl QueryStatementWriter, mysql: &str) -> Result<bool> {
    const RETURNING: &str = " RETURNING ";
    let (postgres, _) = render(|| statement.build(PostgresQueryBuilder))?;
    Ok(postgres.matches(RETURNING).count() > mysql.matches(RETURNING).count())
}

/// Runs a builder, turning its panic on an unsupported construct into an error.
fn render<T>(build: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(build)).map_err(|panic| {
        let message = match Error::panic(panic) {
            Error::Panic(message) => message,
            other => other.to_string(),
        };
        Error::Statement(message)
    })
}

/// Renders a schema statement (its values, such as column defaults, are
/// written into the text by the builder).
fn schema(statement: &impl SchemaStatementBuilder, dialect: Dialect) -> Result<Sql> {
    let text = render(|| match dialect {
        Dialect::Sqlite => statement.build(SqliteQueryBuilder),
        Dialect::Postgres => statement.build(PostgresQueryBuilder),
        Dialect::MySql => statement.build(MysqlQueryBuilder),
    })?;
    Ok(Sql::new(text))
}

/// Converts the values a statement collected into positional parameters.
fn parameters(values: sq::Values) -> Result<Parameters> {
    values
        .0
        .into_iter()
        .map(value)
        .collect::<Result<Vec<_>>>()
        .map(Parameters::positional)
}

/// Converts one `sea_query` value without loss, or says why it cannot.
pub(crate) fn value(v: sq::Value) -> Result<Value> {
    use sq::Value as V;

    fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
        v.map_or(Value::Null, f)
    }

    // A wildcard arm stays because another crate in the build may turn on
    // more of sea-query's value types than sqlaio does.
    #[allow(unreachable_patterns)]
    Ok(match v {
        V::Bool(b) => opt(b, Value::Bool),
        V::TinyInt(i) => opt(i, Value::from),
        V::SmallInt(i) => opt(i, Value::from),
        V::Int(i) => opt(i, Value::from),
        V::BigInt(i) => opt(i, Value::Integer),
        V::TinyUnsigned(i) => opt(i, Value::from),
        V::SmallUnsigned(i) => opt(i, Value::from),
        V::Unsigned(i) => opt(i, Value::from),
        V::BigUnsigned(None) => Value::Null,
        V::BigUnsigned(Some(i)) => Value::Integer(i64::try_from(i).map_err(|_| {
            Error::Parameter(format!(
                "the unsigned integer {i} is too large for a 64-bit signed integer, \
                 the widest integer SQLite and PostgreSQL store"
            ))
        })?),
        V::Float(f) => opt(f, Value::from),
        V::Double(f) => opt(f, Value::Real),
        V::String(s) => opt(s, |s| Value::Text(*s)),
        V::Char(c) => opt(c, |c| Value::Text(c.to_string())),
        V::Bytes(b) => opt(b, |b| Value::Blob(*b)),
        #[cfg(feature = "json")]
        V::Json(j) => opt(j, |j| Value::Json(*j)),
        #[cfg(feature = "chrono")]
        V::ChronoDate(d) => opt(d, |d| Value::Date(*d)),
        #[cfg(feature = "chrono")]
        V::ChronoTime(t) => opt(t, |t| Value::Time(*t)),
        #[cfg(feature = "chrono")]
        V::ChronoDateTime(t) => opt(t, |t| Value::Timestamp(*t)),
        #[cfg(feature = "chrono")]
        V::ChronoDateTimeUtc(t) => opt(t, |t| Value::TimestampTz(*t)),
        #[cfg(feature = "chrono")]
        V::ChronoDateTimeLocal(t) => opt(t, |t| Value::TimestampTz(t.to_utc())),
        #[cfg(feature = "chrono")]
        V::ChronoDateTimeWithTimeZone(t) => opt(t, |t| Value::TimestampTz(t.to_utc())),
        #[cfg(feature = "uuid")]
        V::Uuid(u) => opt(u, |u| Value::Uuid(*u)),
        #[cfg(feature = "decimal")]
        V::Decimal(d) => opt(d, |d| Value::Decimal(*d)),
        other => return Err(unsupported(&other)),
    })
}

/// The error for a value sqlaio has no type for, naming its variant (never its contents).
fn unsupported(v: &sq::Value) -> Error {
    let debug = format!("{v:?}");
    let variant = debug.split(['(', ' ', '{']).next().unwrap_or("this");
    let hint = if variant.starts_with("Chrono") {
        " (enable sqlaio's `chrono` feature)"
    } else if variant == "Uuid" {
        " (enable sqlaio's `uuid` feature)"
    } else if variant == "Json" {
        " (enable sqlaio's `json` feature)"
    } else if variant == "Decimal" {
        " (enable sqlaio's `decimal` feature)"
    } else {
        ""
    };
    Error::Parameter(format!(
        "sea-query value {variant} has no sqlaio value type to bind it as{hint}"
    ))
}

macro_rules! into_sql {
    ($render:ident: $($t:ident),+ $(,)?) => {$(
        impl IntoSql for sq::$t {
            fn into_sql(self, dialect: Dialect) -> Result<Sql> {
                $render(&self, dialect)
            }
        }

        impl IntoSql for &sq::$t {
            fn into_sql(self, dialect: Dialect) -> Result<Sql> {
                $render(self, dialect)
            }
        }

        /// For builder chains, which return `&mut` statements.
        impl IntoSql for &mut sq::$t {
            fn into_sql(self, dialect: Dialect) -> Result<Sql> {
                $render(&*self, dialect)
            }
        }
    )+};
}

into_sql!(query: SelectStatement, InsertStatement, UpdateStatement, DeleteStatement, WithQuery);
into_sql!(
    schema: TableCreateStatement,
    TableDropStatement,
    TableAlterStatement,
    TableRenameStatement,
    TableTruncateStatement,
    IndexCreateStatement,
    IndexDropStatement,
);

#[cfg(test)]
mod tests {
    use super::*;
    use sq::{Alias, Expr, Query};

    #[test]
    fn every_basic_variant_maps_without_loss() {
        use sq::Value as V;
        let cases = [
            (V::Bool(Some(true)), Value::Bool(true)),
            (V::TinyInt(Some(-8)), Value::Integer(-8)),
            (V::SmallInt(Some(i16::MIN)), Value::Integer(i16::MIN.into())),
            (V::Int(Some(i32::MAX)), Value::Integer(i32::MAX.into())),
            (V::BigInt(Some(i64::MIN)), Value::Integer(i64::MIN)),
            (V::TinyUnsigned(Some(255)), Value::Integer(255)),
            (
                V::SmallUnsigned(Some(u16::MAX)),
                Value::Integer(u16::MAX.into()),
            ),
            (V::Unsigned(Some(u32::MAX)), Value::Integer(u32::MAX.into())),
            (
                V::BigUnsigned(Some(i64::MAX as u64)),
                Value::Integer(i64::MAX),
            ),
            (V::Float(Some(1.5)), Value::Real(1.5)),
            (V::Double(Some(-2.25)), Value::Real(-2.25)),
            (
                V::String(Some(Box::new("Dan Rydell".into()))),
                Value::Text("Dan Rydell".into()),
            ),
            (V::Char(Some('é')), Value::Text("é".into())),
            (
                V::Bytes(Some(Box::new(vec![0, 1, 255]))),
                Value::Blob(vec![0, 1, 255]),
            ),
        ];
        for (from, to) in cases {
            assert_eq!(value(from).unwrap(), to);
        }
    }

    #[test]
    fn none_of_any_type_is_null() {
        use sq::Value as V;
        for v in [
            V::Bool(None),
            V::TinyInt(None),
            V::BigInt(None),
            V::BigUnsigned(None),
            V::Double(None),
            V::String(None),
            V::Char(None),
            V::Bytes(None),
        ] {
            assert_eq!(value(v).unwrap(), Value::Null);
        }
    }

    #[test]
    fn an_unsigned_integer_past_i64_is_refused() {
        let err = value(sq::Value::BigUnsigned(Some(u64::MAX))).unwrap_err();
        assert!(matches!(err, Error::Parameter(_)));
        assert_eq!(
            err.to_string(),
            "invalid parameter: the unsigned integer 18446744073709551615 is too large \
             for a 64-bit signed integer, the widest integer SQLite and PostgreSQL store"
        );
    }

    #[test]
    fn an_unsupported_value_is_named_not_shown() {
        // Every variant this build knows converts; the message is built the same way for any.
        let err = unsupported(&sq::Value::String(Some(Box::new("secret".into()))));
        assert!(matches!(err, Error::Parameter(_)));
        assert_eq!(
            err.to_string(),
            "invalid parameter: sea-query value String has no sqlaio value type to bind it as"
        );
        let err = unsupported(&sq::Value::Bool(None));
        assert!(err.to_string().contains("value Bool has"));
    }

    #[test]
    fn statements_render_per_dialect_with_their_values() {
        let select = Query::select()
            .column(Alias::new("name"))
            .from(Alias::new("users"))
            .and_where(Expr::col(Alias::new("id")).eq(7))
            .and_where(Expr::col(Alias::new("name")).like("D%"))
            .to_owned();
        let sqlite = (&select).into_sql(Dialect::Sqlite).unwrap();
        assert_eq!(
            sqlite.text(),
            r#"SELECT "name" FROM "users" WHERE "id" = ? AND "name" LIKE ?"#
        );
        assert_eq!(
            sqlite.params,
            Some(Parameters::positional(vec![
                Value::Integer(7),
                Value::Text("D%".into())
            ]))
        );
        let postgres = select.into_sql(Dialect::Postgres).unwrap();
        assert_eq!(
            postgres.text(),
            r#"SELECT "name" FROM "users" WHERE "id" = $1 AND "name" LIKE $2"#
        );
    }

    #[test]
    fn a_returning_clause_the_mysql_builder_would_drop_is_refused() {
        let insert = Query::insert()
            .into_table(Alias::new("users"))
            .columns([Alias::new("name")])
            .values_panic(["Dana Whitaker".into()])
            .returning_col(Alias::new("id"))
            .to_owned();
        let err = (&insert).into_sql(Dialect::MySql).unwrap_err();
        assert!(matches!(err, Error::Statement(_)), "{err:?}");
        assert!(err.to_string().contains("RETURNING"), "{err}");
        // The other dialects write it.
        let sqlite = insert.into_sql(Dialect::Sqlite).unwrap();
        assert!(
            sqlite.text().ends_with(r#"RETURNING "id""#),
            "{}",
            sqlite.text()
        );
        // Without RETURNING, and with the word inside a value, MySQL renders as before.
        let plain = Query::insert()
            .into_table(Alias::new("users"))
            .columns([Alias::new("name")])
            .values_panic([" RETURNING ".into()])
            .to_owned();
        let mysql = plain.into_sql(Dialect::MySql).unwrap();
        assert_eq!(mysql.text(), "INSERT INTO `users` (`name`) VALUES (?)");
    }

    #[test]
    fn schema_statements_carry_no_parameters() {
        let drop = sq::Table::drop()
            .table(Alias::new("users"))
            .if_exists()
            .to_owned();
        let sql = drop.into_sql(Dialect::Postgres).unwrap();
        assert_eq!(sql.text(), r#"DROP TABLE IF EXISTS "users""#);
        assert_eq!(sql.params, None);
    }

    #[cfg(feature = "chrono")]
    #[test]
    fn times_with_an_offset_become_the_same_instant_in_utc() {
        use chrono::{DateTime, FixedOffset, TimeZone, Utc};
        let east = FixedOffset::east_opt(2 * 3600).unwrap();
        let local: DateTime<FixedOffset> = east.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        let v = value(sq::Value::ChronoDateTimeWithTimeZone(Some(Box::new(local)))).unwrap();
        assert_eq!(
            v,
            Value::TimestampTz(Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap())
        );
    }
}
