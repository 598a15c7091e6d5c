//! Where migrations come from: file names, folders read at run time, and
//! folders embedded at compile time by [`migrate!`](crate::migrate!).

use std::path::Path;

use super::{MigrateError, Migration, Migrator, Problem};

/// What a folder entry's name says about it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `<version>_<name>.sql`: a migration.
    Migration { version: i64, name: String },
    /// A hidden file, or one that does not end in `.sql`: not a migration.
    Other,
}

/// Reads a file name as `<version>_<name>.sql`: the version is decimal
/// digits (leading zeros allowed), the name letters, digits, `_` and `-`,
/// with each `_` read as a space. `Err` says what is wrong with it.
pub(crate) fn parse_file_name(file: &str) -> Result<Entry, String> {
    if file.starts_with('.') {
        return Ok(Entry::Other);
    }
    let Some(dot) = file.rfind('.') else {
        return Ok(Entry::Other);
    };
    if !file[dot + 1..].eq_ignore_ascii_case("sql") {
        return Ok(Entry::Other);
    }
    let stem = &file[..dot];
    let digits = stem.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        let hint = if stem.starts_with(['V', 'v']) && stem.contains("__") {
            "the version comes first and without a V prefix"
        } else {
            "it does not start with a version number"
        };
        return Err(hint.to_owned());
    }
    let (number, rest) = stem.split_at(digits);
    let version: i64 = number
        .parse()
        .map_err(|_| format!("the version {number} is too large (at most {})", i64::MAX))?;
    let Some(name) = rest.strip_prefix('_') else {
        return Err("the version must be followed by an underscore and a name".to_owned());
    };
    if name.is_empty() {
        return Err("the name after the version is empty".to_owned());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        let what = if bad == '.' {
            "a dot in the name (down migrations like .down.sql are not supported)".to_owned()
        } else {
            format!("the character {bad:?} in the name (use letters, digits, '_' and '-')")
        };
        return Err(what);
    }
    Ok(Entry::Migration {
        version,
        name: name.replace('_', " "),
    })
}

/// The migrations of a folder read at run time. A subfolder or a badly
/// named `.sql` file is an error; hidden files and other files are skipped.
pub(crate) fn read_dir(dir: &Path) -> Result<Migrator, MigrateError> {
    let io = |path: &Path, source| MigrateError::Io {
        path: path.to_owned(),
        source,
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        entries.push(entry.path());
    }
    entries.sort();
    let mut migrations = Vec::new();
    for path in entries {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            if !file.starts_with('.') {
                return Err(folder_inside(file).into());
            }
            continue;
        }
        match parse_file_name(&file) {
            Ok(Entry::Other) => {}
            Ok(Entry::Migration { version, name }) => {
                let sql = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
                migrations.push(Migration::new(version, name, sql));
            }
            Err(reason) => return Err(Problem::InvalidName { file, reason }.into()),
        }
    }
    let migrator = Migrator::new(migrations);
    migrator.validate()?;
    Ok(migrator)
}

/// The migrations of a folder embedded by [`migrate!`](crate::migrate!).
/// Problems with names are kept and reported by
/// [`Migrator::validate`] and [`Migrator::run`].
pub(crate) fn embedded(dir: &'static include_dir::Dir<'static>) -> Migrator {
    let mut migrations = Vec::new();
    let mut problems = Vec::new();
    for entry in dir.entries() {
        let path = entry.path();
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file_entry = match entry {
            include_dir::DirEntry::Dir(_) => {
                if !file.starts_with('.') {
                    problems.push(folder_inside(file));
                }
                continue;
            }
            include_dir::DirEntry::File(file_entry) => file_entry,
        };
        match parse_file_name(&file) {
            Ok(Entry::Other) => {}
            Ok(Entry::Migration { version, name }) => match file_entry.contents_utf8() {
                Some(sql) => migrations.push(Migration::new(version, name, sql)),
                None => problems.push(Problem::InvalidName {
                    file,
                    reason: "its content is not UTF-8 text".to_owned(),
                }),
            },
            Err(reason) => problems.push(Problem::InvalidName { file, reason }),
        }
    }
    let mut migrator = Migrator::new(migrations);
    migrator.problems.splice(0..0, problems);
    migrator
}

fn folder_inside(file: String) -> Problem {
    Problem::InvalidName {
        file,
        reason:
            "it is a folder; migrations are the .sql files directly inside the migrations folder"
                .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_file_name, Entry};

    fn migration(version: i64, name: &str) -> Result<Entry, String> {
        Ok(Entry::Migration {
            version,
            name: name.to_owned(),
        })
    }

    #[test]
    fn reads_version_and_name() {
        assert_eq!(
            parse_file_name("0001_create_users.sql"),
            migration(1, "create users")
        );
        assert_eq!(
            parse_file_name("7_add-email.SQL"),
            migration(7, "add-email")
        );
        assert_eq!(
            parse_file_name("20240131120000_backfill.sql"),
            migration(20_240_131_120_000, "backfill")
        );
    }

    #[test]
    fn skips_files_that_are_not_sql() {
        for file in [
            "README.md",
            ".gitkeep",
            ".0001_x.sql",
            "notes",
            "0001_x.sql.bak",
        ] {
            assert_eq!(parse_file_name(file), Ok(Entry::Other), "{file}");
        }
    }

    #[test]
    fn refuses_malformed_names_and_says_why() {
        let cases = [
            ("V1__create_users.sql", "without a V prefix"),
            ("create_users.sql", "does not start with a version"),
            ("0001.sql", "followed by an underscore"),
            ("0001create.sql", "followed by an underscore"),
            ("0001_.sql", "empty"),
            ("0001_create users.sql", "' '"),
            ("0002_add_email.down.sql", "down migrations"),
            ("99999999999999999999_big.sql", "too large"),
        ];
        for (file, why) in cases {
            match parse_file_name(file) {
                Err(reason) => assert!(reason.contains(why), "{file}: {reason}"),
                Ok(entry) => panic!("{file} was accepted as {entry:?}"),
            }
        }
    }
}
