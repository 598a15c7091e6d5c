//! A light reading of a statement for its span: the operation (its first
//! keyword) and the first table it names. It never fails and never panics;
//! what it cannot tell, it leaves out.

// Used by spans (feature `tracing`) or metrics (feature `metrics`).
#![cfg_attr(not(all(feature = "tracing", feature = "metrics")), allow(dead_code))]

/// The operations spans and metrics name; anything else is left out, so
/// that a metric's `db.operation.name` takes few distinct values.
pub(crate) const OPERATIONS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "MERGE",
    "UPSERT",
    "VALUES",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "PRAGMA",
    "SET",
    "SHOW",
    "EXPLAIN",
    "CALL",
    "COPY",
    "GRANT",
    "REVOKE",
    "VACUUM",
    "ANALYZE",
    "LOCK",
    "START",
    "DO",
];

/// The words after which a statement names the table it works on.
const BEFORE_TABLE: &[&str] = &["FROM", "INTO", "UPDATE", "JOIN", "TABLE"];

/// Words of the statement outside quotes, comments and parentheses, in
/// order, with the text right after each.
struct Words<'a> {
    sql: &'a str,
    at: usize,
}

impl<'a> Words<'a> {
    fn new(sql: &'a str) -> Words<'a> {
        Words { sql, at: 0 }
    }
}

impl<'a> Iterator for Words<'a> {
    /// A word at nesting depth zero, and the rest of the statement after it.
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.sql.as_bytes();
        let mut depth = 0usize;
        let mut i = self.at;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    i = memchr(bytes, i, b'\n');
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    i = find(self.sql, i + 2, "*/").map_or(bytes.len(), |end| end + 2);
                }
                b'\'' | b'"' | b'`' => {
                    i = memchr(bytes, i + 1, b).saturating_add(1);
                }
                b'(' => {
                    depth += 1;
                    i += 1;
                }
                b')' => {
                    depth = depth.saturating_sub(1);
                    i += 1;
                }
                _ if b.is_ascii_alphabetic() || b == b'_' => {
                    let start = i;
                    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_')
                    {
                        i += 1;
                    }
                    if depth == 0 {
                        self.at = i;
                        return Some((&self.sql[start..i], &self.sql[i..]));
                    }
                }
                _ => i += 1,
            }
        }
        self.at = bytes.len();
        None
    }
}

/// The index of the next `byte` from `from`, or the end.
fn memchr(bytes: &[u8], from: usize, byte: u8) -> usize {
    bytes
        .get(from..)
        .and_then(|rest| rest.iter().position(|&b| b == byte))
        .map_or(bytes.len(), |at| from + at)
}

fn find(sql: &str, from: usize, needle: &str) -> Option<usize> {
    sql.get(from..)?.find(needle).map(|at| from + at)
}

/// The statement's operation as one of [`OPERATIONS`]: its first keyword,
/// or for a `WITH` statement the first of `SELECT`, `INSERT`, `UPDATE` or
/// `DELETE` after its common table expressions.
pub(crate) fn operation(sql: &str) -> Option<&'static str> {
    let mut words = Words::new(sql);
    let (first, _) = words.next()?;
    if first.eq_ignore_ascii_case("WITH") {
        return words.find_map(|(word, _)| {
            ["SELECT", "INSERT", "UPDATE", "DELETE"]
                .into_iter()
                .find(|op| word.eq_ignore_ascii_case(op))
        });
    }
    OPERATIONS
        .iter()
        .copied()
        .find(|op| first.eq_ignore_ascii_case(op))
}

/// The first table the statement names after `FROM`, `INTO`, `UPDATE`,
/// `JOIN` or `TABLE`, as written (quotes taken off, any schema kept);
/// `None` for a subquery or anything not read as a name.
pub(crate) fn collection(sql: &str) -> Option<&str> {
    Words::new(sql)
        .filter(|(word, _)| BEFORE_TABLE.iter().any(|k| word.eq_ignore_ascii_case(k)))
        .find_map(|(_, rest)| name(rest))
}

/// A possibly qualified, possibly quoted name at the start of `rest`
/// (after spaces), quotes taken off when it is one quoted part.
fn name(rest: &str) -> Option<&str> {
    let rest = rest.trim_start();
    let mut words = rest.split_whitespace();
    let mut first = words.next()?;
    // `CREATE TABLE IF NOT EXISTS t`, `INSERT OR REPLACE INTO t`, `DELETE FROM ONLY t`.
    if first.eq_ignore_ascii_case("IF") {
        let _not = words.next();
        let _exists = words.next();
        first = words.next()?;
    } else if first.eq_ignore_ascii_case("ONLY") {
        first = words.next()?;
    }
    let end = first
        .find(|c: char| !(c.is_alphanumeric() || "_.\"`[]$".contains(c)))
        .unwrap_or(first.len());
    let name = &first[..end];
    let quoted = [('"', '"'), ('`', '`'), ('[', ']')]
        .into_iter()
        .find_map(|(open, close)| name.strip_prefix(open)?.strip_suffix(close));
    let name = match quoted {
        Some(inner) if !inner.contains(['"', '`', '[', ']']) => inner,
        Some(_) => return None,
        None if name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') => name,
        None => return None,
    };
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::{collection, operation};

    #[test]
    fn operations_and_tables_are_read_lightly() {
        let cases = [
            (
                "SELECT id FROM users WHERE x = 1",
                Some("SELECT"),
                Some("users"),
            ),
            ("  select * from \"Users\"", Some("SELECT"), Some("Users")),
            (
                "INSERT INTO app.orders (a) VALUES ($1)",
                Some("INSERT"),
                Some("app.orders"),
            ),
            (
                "INSERT OR REPLACE INTO t VALUES (1)",
                Some("INSERT"),
                Some("t"),
            ),
            ("update `items` set a = 1", Some("UPDATE"), Some("items")),
            ("DELETE FROM ONLY logs", Some("DELETE"), Some("logs")),
            (
                "CREATE TABLE IF NOT EXISTS t (id INT)",
                Some("CREATE"),
                Some("t"),
            ),
            ("SELECT 1", Some("SELECT"), None),
            ("SELECT * FROM (SELECT 1) AS s", Some("SELECT"), None),
            (
                "SELECT (SELECT x FROM inner_t) FROM outer_t",
                Some("SELECT"),
                Some("outer_t"),
            ),
            (
                "WITH s AS (SELECT 1 FROM a) SELECT * FROM s JOIN b ON true",
                Some("SELECT"),
                Some("s"),
            ),
            (
                "-- note FROM x\nSELECT 'FROM y' FROM z",
                Some("SELECT"),
                Some("z"),
            ),
            ("/* FROM q */ DELETE FROM r", Some("DELETE"), Some("r")),
            ("FROBNICATE everything", None, None),
            ("", None, None),
            ("SELECT * FROM", Some("SELECT"), None),
            ("SELECT 'unterminated FROM t", Some("SELECT"), None),
            ("SELECT * FROM \"", Some("SELECT"), None),
            ("SELECT * FROM \"é", Some("SELECT"), None),
            ("SELECT * FROM [a b]", Some("SELECT"), None),
            ("ÉLÈVE FROM é", None, None),
        ];
        for (sql, op, table) in cases {
            assert_eq!(operation(sql), op, "{sql}");
            assert_eq!(collection(sql), table, "{sql}");
        }
    }
}
