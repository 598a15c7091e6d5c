//! Rows into Rust types through serde: structs by column name, tuples by
//! position, and errors that name the column and the field.
//!
//! The decoding rules do not depend on the runtime or the database: the
//! bodies run once, on a SQLite database in memory (its SQL writes blobs as
//! `x'..'` and lets a column's type change from row to row).

use std::collections::BTreeMap;

use futures::TryStreamExt;
use serde::Deserialize;
use sqlaio::{Engine, Error, Row};

use crate::common::Ctx;

stamp! {
    runtimes: one, backends: [memory];
    fields_come_from_the_columns_of_their_names_in_any_order,
    extra_columns_are_ignored,
    null_into_an_option_is_none,
    a_missing_column_for_an_option_is_none,
    a_missing_column_for_a_plain_field_names_the_field,
    a_missing_column_with_a_default_takes_the_default,
    null_into_a_plain_field_is_a_clear_error,
    a_type_mismatch_names_the_column_the_field_and_the_type,
    renamed_fields_and_case_differences_find_their_columns,
    values_convert_as_their_types_ask,
    tuples_take_the_columns_by_position,
    a_tuple_of_another_length_is_an_error,
    a_tuple_element_of_the_wrong_type_names_its_column,
    maps_take_every_column_and_one_column_rows_become_plain_values,
    flattened_structs_share_the_row,
    borrowed_text_needs_no_copy,
}

#[cfg(feature = "json")]
stamp! {
    runtimes: one, backends: [memory];
    json_text_fills_a_struct_field,
}

stamp! {
    runtimes: one, backends: [memory];
    fetchall_as_reads_every_row_into_structs,
    fetchall_as_deserializes_rows_beyond_the_first_batch_in_order,
    fetchall_as_error_on_a_later_row_names_it_and_leaves_the_connection_usable,
    fetchall_as_matches_fetchall_when_a_column_changes_type_from_row_to_row,
}

/// The one row `sql` returns, from an engine of its own.
async fn row(ctx: &Ctx, sql: &str) -> Row {
    let engine = ctx.engine();
    let row = async {
        let row = engine.execute(sql, ()).await?.first().await?;
        engine.close().await?;
        Ok::<_, Error>(row.expect("one row"))
    };
    row.await.unwrap()
}

/// The error's column, field and display text.
fn parts(err: Error) -> (Option<String>, Option<String>, String) {
    let text = err.to_string();
    match err {
        Error::Deserialize { column, field, .. } => (column, field, text),
        other => panic!("expected Error::Deserialize, got {other:?}"),
    }
}

#[derive(Debug, Deserialize, PartialEq)]
pub(crate) struct User {
    id: i64,
    name: String,
    nickname: Option<String>,
}

async fn fields_come_from_the_columns_of_their_names_in_any_order(ctx: Ctx) {
    let user: User = row(
        &ctx,
        "SELECT 'Dana Whitaker' AS name, 'Dana' AS nickname, 5 AS id",
    )
    .await
    .deserialize()
    .unwrap();
    assert_eq!(
        user,
        User {
            id: 5,
            name: "Dana Whitaker".into(),
            nickname: Some("Dana".into()),
        }
    );
}

async fn extra_columns_are_ignored(ctx: Ctx) {
    let user: User = row(
        &ctx,
        "SELECT 1 AS id, 'Dan Rydell' AS name, NULL AS nickname, 42 AS age, x'00' AS photo",
    )
    .await
    .deserialize()
    .unwrap();
    assert_eq!(user.name, "Dan Rydell");
}

async fn null_into_an_option_is_none(ctx: Ctx) {
    let user: User = row(
        &ctx,
        "SELECT 1 AS id, 'Casey McCall' AS name, NULL AS nickname",
    )
    .await
    .deserialize()
    .unwrap();
    assert_eq!(user.nickname, None);
}

async fn a_missing_column_for_an_option_is_none(ctx: Ctx) {
    let user: User = row(&ctx, "SELECT 1 AS id, 'Casey McCall' AS name")
        .await
        .deserialize()
        .unwrap();
    assert_eq!(user.nickname, None);
}

async fn a_missing_column_for_a_plain_field_names_the_field(ctx: Ctx) {
    let err = row(&ctx, "SELECT 'Casey McCall' AS name")
        .await
        .deserialize::<User>()
        .unwrap_err();
    let (column, field, text) = parts(err);
    assert_eq!(column, None);
    assert_eq!(field.as_deref(), Some("id"));
    assert_eq!(
        text,
        "cannot deserialize field `id`: the result has no column of that name"
    );
}

async fn a_missing_column_with_a_default_takes_the_default(ctx: Ctx) {
    #[derive(Deserialize)]
    struct Settings {
        name: String,
        #[serde(default)]
        retries: u32,
    }
    let s: Settings = row(&ctx, "SELECT 'x' AS name").await.deserialize().unwrap();
    assert_eq!((s.name.as_str(), s.retries), ("x", 0));
}

async fn null_into_a_plain_field_is_a_clear_error(ctx: Ctx) {
    let err = row(&ctx, "SELECT NULL AS id, 'Natalie Hurley' AS name")
        .await
        .deserialize::<User>()
        .unwrap_err();
    let (column, field, text) = parts(err);
    assert_eq!(column.as_deref(), Some("id"));
    assert_eq!(field.as_deref(), Some("id"));
    assert_eq!(
        text,
        "cannot deserialize column \"id\" into field `id`: \
         expected i64, found NULL (only an Option can hold NULL)"
    );
}

async fn a_type_mismatch_names_the_column_the_field_and_the_type(ctx: Ctx) {
    let err = row(&ctx, "SELECT 'seven' AS id, 'Jeremy Goodwin' AS name")
        .await
        .deserialize::<User>()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot deserialize column \"id\" into field `id`: expected i64, found text"
    );

    let err = row(&ctx, "SELECT 1 AS id, 42 AS name")
        .await
        .deserialize::<User>()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot deserialize column \"name\" into field `name`: expected text, found integer"
    );

    // The column's own name is shown when it differs from the field's.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Score {
        points: u8,
    }
    let err = row(&ctx, "SELECT 300 AS POINTS")
        .await
        .deserialize::<Score>()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot deserialize column \"POINTS\" into field `points`: integer 300 is out of range for u8"
    );
}

async fn renamed_fields_and_case_differences_find_their_columns(ctx: Ctx) {
    #[derive(Deserialize)]
    struct Renamed {
        #[serde(rename = "user_name")]
        name: String,
        show: String,
    }
    let r: Renamed = row(
        &ctx,
        "SELECT 'Dana Whitaker' AS user_name, 'Sports Night' AS SHOW",
    )
    .await
    .deserialize()
    .unwrap();
    assert_eq!(
        (r.name.as_str(), r.show.as_str()),
        ("Dana Whitaker", "Sports Night")
    );
}

async fn values_convert_as_their_types_ask(ctx: Ctx) {
    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Role {
        Anchor,
        Producer,
    }
    #[derive(Deserialize, Debug, PartialEq)]
    struct Id(i64);
    #[derive(Deserialize, Debug)]
    struct Mixed {
        active: bool,
        ratio: f64,
        whole: f32,
        small: i8,
        role: Role,
        initial: char,
        id: Id,
        photo: Vec<u8>,
        unit: (),
    }
    let m: Mixed = row(
        &ctx,
        "SELECT 1 AS active, 0.25 AS ratio, 3 AS whole, -5 AS small, 'producer' AS role, \
         'D' AS initial, 9 AS id, x'00ff' AS photo, NULL AS unit",
    )
    .await
    .deserialize()
    .unwrap();
    assert!(m.active);
    assert_eq!((m.ratio, m.whole, m.small), (0.25, 3.0, -5));
    assert_eq!(m.role, Role::Producer);
    assert_eq!(m.initial, 'D');
    assert_eq!(m.id, Id(9));
    assert_eq!(m.photo, [0, 255]);
    let _ = (m.unit, Role::Anchor);

    let err = row(&ctx, "SELECT 2 AS active")
        .await
        .deserialize::<BoolOnly>()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot deserialize column \"active\" into field `active`: integer 2 is not a boolean (0 or 1)"
    );
}

#[derive(Deserialize, Debug)]
#[allow(dead_code)]
struct BoolOnly {
    active: bool,
}

async fn tuples_take_the_columns_by_position(ctx: Ctx) {
    let r = row(&ctx, "SELECT 7, 'Dana Whitaker', NULL").await;
    let t: (i64, String, Option<f64>) = r.deserialize().unwrap();
    assert_eq!(t, (7, "Dana Whitaker".into(), None));
    let t: (i64, String, Option<f64>) = r.decode().unwrap();
    assert_eq!(t, (7, "Dana Whitaker".into(), None));

    #[derive(Deserialize, Debug, PartialEq)]
    struct Pair(i64, String);
    let p: Pair = row(&ctx, "SELECT 1, 'one'").await.deserialize().unwrap();
    assert_eq!(p, Pair(1, "one".into()));

    let all: Vec<i64> = row(&ctx, "SELECT 1, 2, 3").await.deserialize().unwrap();
    assert_eq!(all, [1, 2, 3]);
}

async fn a_tuple_of_another_length_is_an_error(ctx: Ctx) {
    let r = row(&ctx, "SELECT 1, 2, 3").await;
    let err = r.deserialize::<(i64, i64)>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot deserialize the row: the row has 3 columns but the tuple takes 2"
    );
    let err = r.decode::<(i64, i64)>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot deserialize the row: the row has 3 columns but the tuple takes 2"
    );
    let err = r.deserialize::<(i64, i64, i64, i64)>().unwrap_err();
    assert!(matches!(err, Error::Deserialize { .. }), "{err:?}");
}

async fn a_tuple_element_of_the_wrong_type_names_its_column(ctx: Ctx) {
    let err = row(&ctx, "SELECT 1 AS n, 'x' AS label")
        .await
        .deserialize::<(i64, i64)>()
        .unwrap_err();
    let (column, field, text) = parts(err);
    assert_eq!((column.as_deref(), field), (Some("label"), None));
    assert_eq!(
        text,
        "cannot deserialize column \"label\": expected i64, found text"
    );
    let err = row(&ctx, "SELECT 1 AS n, 'x' AS label")
        .await
        .decode::<(i64, i64)>()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot decode column \"label\": expected integer, found text"
    );
}

async fn maps_take_every_column_and_one_column_rows_become_plain_values(ctx: Ctx) {
    let m: BTreeMap<String, Option<String>> = row(
        &ctx,
        "SELECT 'Isaac' AS first, NULL AS middle, 'Jaffe' AS last",
    )
    .await
    .deserialize()
    .unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(m["last"].as_deref(), Some("Jaffe"));
    assert_eq!(m["middle"], None);

    let n: i64 = row(&ctx, "SELECT 42").await.deserialize().unwrap();
    assert_eq!(n, 42);
    let err = row(&ctx, "SELECT 1, 2")
        .await
        .deserialize::<i64>()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("only a one-column row becomes a single value"),
        "{err}"
    );
}

async fn flattened_structs_share_the_row(ctx: Ctx) {
    #[derive(Deserialize)]
    struct Person {
        name: String,
    }
    #[derive(Deserialize)]
    struct Staff {
        #[serde(flatten)]
        person: Person,
        show: String,
    }
    let s: Staff = row(&ctx, "SELECT 'Sports Night' AS show, 'Dan Rydell' AS name")
        .await
        .deserialize()
        .unwrap();
    assert_eq!(
        (s.person.name.as_str(), s.show.as_str()),
        ("Dan Rydell", "Sports Night")
    );
}

async fn borrowed_text_needs_no_copy(ctx: Ctx) {
    #[derive(Deserialize)]
    struct Borrowed<'a> {
        name: &'a str,
    }
    let r = row(&ctx, "SELECT 'Natalie Hurley' AS name").await;
    let b: Borrowed<'_> = r.deserialize().unwrap();
    assert_eq!(b.name, "Natalie Hurley");
}

#[cfg(feature = "json")]
async fn json_text_fills_a_struct_field(ctx: Ctx) {
    #[derive(Deserialize, Debug, PartialEq)]
    struct Settings {
        theme: String,
        sizes: Vec<u32>,
    }
    #[derive(Deserialize, Debug)]
    struct Account {
        id: i64,
        settings: Settings,
        tags: Option<Vec<String>>,
    }
    let a: Account = row(
        &ctx,
        r#"SELECT 1 AS id, '{"theme": "dark", "sizes": [1, 2]}' AS settings, NULL AS tags"#,
    )
    .await
    .deserialize()
    .unwrap();
    assert_eq!(a.id, 1);
    assert_eq!(
        a.settings,
        Settings {
            theme: "dark".into(),
            sizes: vec![1, 2]
        }
    );
    assert_eq!(a.tags, None);

    let err = row(&ctx, "SELECT 1 AS id, 'not json' AS settings, NULL AS tags")
        .await
        .deserialize::<Account>()
        .unwrap_err();
    let (column, field, text) = parts(err);
    assert_eq!(column.as_deref(), Some("settings"));
    assert_eq!(field.as_deref(), Some("settings"));
    assert!(
        text.starts_with(
            "cannot deserialize column \"settings\" into field `settings`: text is not valid JSON"
        ),
        "{text}"
    );
}

async fn users(engine: &Engine) -> sqlaio::Result<()> {
    engine
        .execute(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, nickname TEXT, \
             joined TEXT)",
            (),
        )
        .await?;
    let conn = engine.connect().await?;
    conn.execute_many(
        "INSERT INTO users (name, nickname) VALUES (?1, ?2)",
        [
            ("Jeremy Goodwin", None),
            ("Natalie Hurley", Some("Natalie")),
            ("Dan Rydell", Some("Danny")),
            ("Casey McCall", None),
            ("Dana Whitaker", None),
        ],
    )
    .await?;
    Ok(())
}

async fn fetchall_as_reads_every_row_into_structs(ctx: Ctx) -> sqlaio::Result<()> {
    let engine = ctx.engine();
    users(&engine).await?;
    let all: Vec<User> = engine
        .execute("SELECT * FROM users ORDER BY id", ())
        .await?
        .fetchall_as()
        .await?;
    assert_eq!(all.len(), 5);
    assert_eq!(
        all[2],
        User {
            id: 3,
            name: "Dan Rydell".into(),
            nickname: Some("Danny".into())
        }
    );
    assert_eq!(all[4].nickname, None);

    let mut result = engine
        .execute("SELECT id, name FROM users ORDER BY id", ())
        .await?;
    let one: Option<(i64, String)> = result.fetchone_as().await?;
    assert_eq!(one, Some((1, "Jeremy Goodwin".into())));
    let two: Vec<User> = result.fetchmany_as(2).await?;
    assert_eq!(
        two.iter().map(|u| u.id).collect::<Vec<_>>(),
        [2, 3],
        "missing nickname column reads as None"
    );
    let rest: Vec<User> = result.fetchall_as().await?;
    assert_eq!(rest.len(), 2);
    assert_eq!(result.fetchone_as::<User>().await?, None);
    drop(result);

    let first: Option<User> = engine
        .execute(
            "SELECT * FROM users WHERE name LIKE ?1 ORDER BY id",
            ("D%",),
        )
        .await?
        .first_as()
        .await?;
    assert_eq!(first.map(|u| u.name).as_deref(), Some("Dan Rydell"));
    let none: Option<User> = engine
        .execute("SELECT * FROM users WHERE id > 100", ())
        .await?
        .first_as()
        .await?;
    assert_eq!(none, None);

    let names: Vec<String> = engine
        .execute("SELECT name FROM users ORDER BY id DESC", ())
        .await?
        .into_stream_as()
        .try_collect()
        .await?;
    assert_eq!(names[0], "Dana Whitaker");
    assert_eq!(names.len(), 5);

    // A row that does not fit stops fetchall_as with an error naming it.
    let err = engine
        .execute("SELECT id, nickname AS name FROM users ORDER BY id", ())
        .await?
        .fetchall_as::<User>()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot deserialize column \"name\" into field `name`: \
         expected text, found NULL (only an Option can hold NULL)"
    );
    engine.close().await
}

/// `n` rows `(i, 'name i')`, i from 1: more than one batch when `n` > 256.
pub(crate) fn counting(n: u32) -> String {
    format!(
        "WITH RECURSIVE s(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM s WHERE id < {n}) \
         SELECT id, 'name ' || id AS name, NULL AS nickname FROM s"
    )
}

async fn fetchall_as_deserializes_rows_beyond_the_first_batch_in_order(
    ctx: Ctx,
) -> sqlaio::Result<()> {
    let engine = ctx.engine();
    let conn = engine.connect().await?;
    let mut result = conn.execute(counting(5_000), ()).await?;
    // Some rows taken first: the rest, read on the worker, follow them.
    let head: Vec<User> = result.fetchmany_as(3).await?;
    assert_eq!(head.iter().map(|u| u.id).collect::<Vec<_>>(), [1, 2, 3]);
    let rest: Vec<User> = result.fetchall_as().await?;
    assert_eq!(rest.len(), 4_997);
    for (i, user) in rest.iter().enumerate() {
        let id = i as i64 + 4;
        assert_eq!((user.id, &user.name), (id, &format!("name {id}")));
    }
    assert!(result.fetchone().await?.is_none());
    drop(result);
    // The cursor is finished: the connection goes on.
    assert_eq!(conn.scalar::<i64>("SELECT 41 + 1", ()).await?, 42);
    engine.close().await
}

async fn fetchall_as_error_on_a_later_row_names_it_and_leaves_the_connection_usable(
    ctx: Ctx,
) -> sqlaio::Result<()> {
    let engine = ctx.engine();
    let conn = engine.connect().await?;
    // Row 3,000 has a NULL name: far past the first batch.
    let sql = "WITH RECURSIVE s(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM s WHERE id < 4000) \
               SELECT id, CASE id WHEN 3000 THEN NULL ELSE 'x' END AS name FROM s";
    let mut result = conn.execute(sql, ()).await?;
    let err = result.fetchall_as::<User>().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("column \"name\" into field `name`"),
        "{err}"
    );
    assert!(
        result.fetchone().await?.is_none(),
        "no rows after the error"
    );
    drop(result);
    assert_eq!(conn.scalar::<i64>("SELECT 7", ()).await?, 7);
    engine.close().await
}

async fn fetchall_as_matches_fetchall_when_a_column_changes_type_from_row_to_row(
    ctx: Ctx,
) -> sqlaio::Result<()> {
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(untagged)]
    enum Cell {
        Int(i64),
        Text(String),
    }
    let engine = ctx.engine();
    let conn = engine.connect().await?;
    // SQLite columns have no fixed type: text, NULL and integers take turns.
    let sql = "WITH RECURSIVE s(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM s WHERE id < 1000) \
               SELECT id, CASE id % 3 WHEN 0 THEN NULL WHEN 1 THEN 'text ' || id ELSE id * 10 END \
               FROM s";
    let typed: Vec<(i64, Option<Cell>)> = conn.execute(sql, ()).await?.fetchall_as().await?;
    let rows = conn.execute(sql, ()).await?.fetchall().await?;
    assert_eq!(typed.len(), 1000);
    assert_eq!(typed.len(), rows.len());
    for (t, row) in typed.iter().zip(&rows) {
        let cell = match row.get_value(1)? {
            sqlaio::Value::Null => None,
            sqlaio::Value::Integer(n) => Some(Cell::Int(*n)),
            sqlaio::Value::Text(s) => Some(Cell::Text(s.clone())),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!((t.0, &t.1), (row.get::<i64>(0)?, &cell));
    }
    assert_eq!(typed[998], (999, None));
    assert_eq!(typed[999], (1000, Some(Cell::Text("text 1000".into()))));
    engine.close().await
}
