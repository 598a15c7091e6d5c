//! The SQLite backends: `memory` and `file`.

use std::path::Path;

use super::{sqlite_file_url, Backend, Database, Family, Fresh};

/// `sqlite::memory:`: one in-memory database per engine.
pub const MEMORY: Backend = Backend {
    name: "memory",
    fresh: |_| Database::plain("sqlite::memory:".to_owned()),
    ..SQLITE
};

/// A SQLite file in the test's fresh scratch directory.
pub const FILE: Backend = Backend {
    name: "file",
    fresh: fresh_file,
    ..SQLITE
};

/// What the two share.
const SQLITE: Backend = Backend {
    name: "sqlite",
    family: Family::Sqlite,
    available: || Ok(()),
    fresh: fresh_file,
    // SQLite binds `$1`, `$2`, ... by position, as PostgreSQL does.
    placeholder: |n| format!("${n}"),
    id_column: "id INTEGER PRIMARY KEY",
    blob_type: "BLOB",
    unreachable_url,
    unreachable_hint: "no-such-dir",
};

fn fresh_file(fresh: &Fresh<'_>) -> Database {
    Database::plain(sqlite_file_url(&fresh.dir.join("test.db")))
}

/// A file in a directory that does not exist.
fn unreachable_url(dir: &Path) -> String {
    sqlite_file_url(&dir.join("no-such-dir").join("nested").join("test.db"))
}
