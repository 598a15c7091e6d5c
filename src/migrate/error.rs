//! [`MigrateError`]: what can go wrong while checking or applying migrations.

use std::path::PathBuf;

use crate::error::Error;

/// Everything that can go wrong while checking or applying migrations.
///
/// The variants about the migrations themselves (names, versions, the table
/// name) are found before the database is touched. `Display` says what went
/// wrong and names the migration; a database error is kept as the
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// A file in a migrations folder is not named `<version>_<name>.sql`.
    #[error("migration file {file:?} is not named <version>_<name>.sql (for example 0001_create_users.sql): {reason}")]
    InvalidName {
        /// The file's name, or its path inside the folder.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A migration's version is negative.
    #[error("migration {version} ({name}) has a negative version; versions are 0 or more")]
    InvalidVersion {
        /// The version given.
        version: i64,
        /// The migration's name.
        name: String,
    },
    /// Two migrations have the same version.
    #[error("migrations {first:?} and {second:?} both have version {version}")]
    DuplicateVersion {
        /// The version they share.
        version: i64,
        /// The first one's name (its file name when it came from a folder).
        first: String,
        /// The second one's name.
        second: String,
    },
    /// The migrations table's name is not a plain SQL identifier.
    #[error("{table:?} cannot name the migrations table: use letters, digits and underscores, not starting with a digit, optionally after a schema name and a dot")]
    InvalidTable {
        /// The name given.
        table: String,
    },
    /// A migrations folder, or a file in it, could not be read.
    #[error("cannot read migrations from {}: {source}", path.display())]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An applied migration's SQL has changed since it was applied.
    #[error("migration {version} ({name}) was changed after it was applied: its checksum was {applied}, it is now {current}; write a new migration instead of editing an applied one")]
    Changed {
        /// The migration's version.
        version: i64,
        /// Its name.
        name: String,
        /// The checksum recorded when it was applied.
        applied: String,
        /// The checksum of its SQL now.
        current: String,
    },
    /// The database records a migration this migrator does not know (see
    /// [`Migrator::ignore_unknown`](super::Migrator::ignore_unknown)).
    #[error("migration {version} ({name}) is recorded as applied in the database, but this program does not know it (is the program older than the database?)")]
    Unknown {
        /// The recorded version.
        version: i64,
        /// The recorded name.
        name: String,
    },
    /// A pending migration has a lower version than one already applied (see
    /// [`Migrator::allow_out_of_order`](super::Migrator::allow_out_of_order)).
    #[error("migration {version} ({name}) is not applied, but the later migration {latest} is; refusing to apply it out of order")]
    OutOfOrder {
        /// The pending migration's version.
        version: i64,
        /// Its name.
        name: String,
        /// The highest applied version.
        latest: i64,
    },
    /// A migration's SQL failed; its transaction was rolled back and it is
    /// not recorded as applied.
    #[error("migration {version} ({name}) failed and was rolled back: {source}")]
    Failed {
        /// The migration's version.
        version: i64,
        /// Its name.
        name: String,
        /// The database's error.
        #[source]
        source: Error,
    },
    /// A migration's SQL ended the transaction it runs in (a `COMMIT` or
    /// `ROLLBACK` in the file), so what it did before that is committed but
    /// not recorded as applied.
    #[error("migration {version} ({name}) ended its own transaction (a COMMIT or ROLLBACK in its SQL): what ran before that may be committed, but the migration is not recorded as applied; each migration already runs in a transaction, so remove the transaction control from it")]
    TransactionEnded {
        /// The migration's version.
        version: i64,
        /// Its name.
        name: String,
    },
    /// A fixture script of the test harness failed (`sqlaio::testing`).
    #[error("fixture {index} failed: {source}")]
    Fixture {
        /// Its position in the list of fixtures, from 0.
        index: usize,
        /// The database's error.
        #[source]
        source: Error,
    },
    /// A database call failed outside any one migration: connecting, the
    /// migrations table, the lock.
    #[error(transparent)]
    Database(#[from] Error),
}
