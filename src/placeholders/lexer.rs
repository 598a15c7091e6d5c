//! Finding `:name` placeholders in SQL text.
//!
//! The lexer is hand-written and small. It knows just enough of each
//! database's lexical rules to tell a placeholder from the same characters
//! inside a string, a quoted identifier, a comment or a cast:
//!
//! | skipped | SQLite | PostgreSQL | MySQL |
//! |---|---|---|---|
//! | `'...'` with `''` | yes | yes | yes, and `\` escapes |
//! | `E'...'` with `\` escapes | | yes | |
//! | `"..."` with `""` | identifier | identifier | string, `\` escapes |
//! | `` `...` `` with ``` `` ``` | yes | | yes |
//! | `[...]` | yes | | |
//! | `--` to end of line | yes | yes | only before whitespace or a control character |
//! | `#` to end of line | | | yes |
//! | `/* ... */` | yes | yes, nested | yes |
//! | `$$...$$`, `$tag$...$tag$` | | yes | |
//!
//! PostgreSQL strings are read with `standard_conforming_strings` on, its
//! default since 9.1. MySQL's `/*! ... */`, which MySQL runs, is skipped as
//! a comment all the same.
//!
//! A `:` is a placeholder only when an identifier start (`[A-Za-z_]`)
//! follows it and neither an identifier character nor another `:` precedes
//! it, as in SQLAlchemy's `text()`: so `::int` casts, `:=`, `: x` and
//! `arr[1:n]` slices are left alone (but `arr[:n]` is a placeholder; write
//! `arr[: n]`). A name is `[A-Za-z_][A-Za-z0-9_]*`. Other placeholders are
//! reported, not rewritten: `$1` in PostgreSQL, `?` in MySQL, `?`, `?NNN`,
//! `:NNN`, `@name` and `$name` in SQLite. (`?` is a jsonb operator in PostgreSQL.)

use std::ops::Range;

use crate::error::{Error, Result};
use crate::sql::Dialect;

/// Whose lexical rules tell strings, identifiers and comments apart, and
/// how an empty list is written for that database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL and MariaDB (default `sql_mode`: backslash escapes, `"` strings).
    MySql,
}

impl Syntax {
    /// The syntax of a dialect.
    pub(crate) fn of(dialect: Dialect) -> Syntax {
        match dialect {
            Dialect::Sqlite => Syntax::Sqlite,
            Dialect::Postgres => Syntax::Postgres,
            Dialect::MySql => Syntax::MySql,
        }
    }
}

/// One `:name` placeholder found in a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placeholder<'a> {
    /// The name, without its `:`.
    pub(crate) name: &'a str,
    /// Where `:name` sits in the text, in bytes.
    pub(crate) span: Range<usize>,
    /// What surrounds it, for the callers that treat a list there specially.
    pub(crate) context: Context,
}

/// What a placeholder stands in, as far as a list bound to it cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    /// First item of `IN (...)` or `NOT IN (...)`.
    In {
        /// `NOT IN`.
        negated: bool,
        /// Where the `NOT` or `IN` keyword starts, in bytes.
        start: usize,
        /// When the placeholder is the list's only item: where the closing
        /// `)` ends, in bytes.
        close: Option<usize>,
    },
    /// First argument of `ANY(`, `SOME(` or `ALL(`, which take one array
    /// (PostgreSQL) or a subquery, not a list of values.
    Array,
    /// Anywhere else.
    Other,
}

/// What [`scan`] found in a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan<'a> {
    /// The `:name` placeholders, in order.
    pub(crate) placeholders: Vec<Placeholder<'a>>,
    /// The first placeholder of another kind (`$1`, `?`, `?2`, `@name`),
    /// which cannot be mixed with `:name` ones.
    pub(crate) other: Option<&'a str>,
}

/// Finds the `:name` placeholders of `sql` under `syntax`'s rules.
///
/// # Errors
/// [`Error::Parameter`] when a name runs into a character that SQL allows
/// in identifiers but placeholder names do not (`$`, non-ASCII), as in
/// `:prénom`.
pub(crate) fn scan(sql: &str, syntax: Syntax) -> Result<Scan<'_>> {
    Lexer::new(sql, syntax).run()
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
pub(super) fn is_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(is_name_start) && bytes.all(is_name_char)
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A byte that continues an identifier or number in all three databases:
/// ASCII letters, digits, `_`, `$`, and every byte of a non-ASCII character.
fn is_ident(b: u8) -> bool {
    is_name_char(b) || b == b'$' || b >= 0x80
}

/// A significant token, as far as telling `IN (` and `ANY(` apart needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Nothing,
    /// An identifier, keyword or number: its byte range.
    Word(usize, usize),
    /// One punctuation byte and where it is.
    Punct(u8, usize),
    /// A string, a quoted identifier, a placeholder, a cast.
    Other,
}

struct Lexer<'a> {
    sql: &'a str,
    bytes: &'a [u8],
    syntax: Syntax,
    pos: usize,
    /// The last three significant tokens, most recent first.
    recent: [Token; 3],
    /// A placeholder first in an `IN (` list, waiting to see whether `)` follows it.
    open_in: Option<usize>,
    found: Scan<'a>,
}

impl<'a> Lexer<'a> {
    fn new(sql: &'a str, syntax: Syntax) -> Lexer<'a> {
        Lexer {
            sql,
            bytes: sql.as_bytes(),
            syntax,
            pos: 0,
            recent: [Token::Nothing; 3],
            open_in: None,
            found: Scan {
                placeholders: Vec::new(),
                other: None,
            },
        }
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    fn run(mut self) -> Result<Scan<'a>> {
        // Every byte this matches on is ASCII, and UTF-8 never puts an ASCII
        // byte inside a multi-byte character, so every position kept is a
        // character boundary.
        while let Some(b) = self.at(self.pos) {
            let next = self.at(self.pos + 1);
            let start = self.pos;
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => self.pos += 1,
                b'\'' => {
                    let backslash = match self.syntax {
                        Syntax::MySql => true,
                        Syntax::Postgres => self.after_e_prefix(),
                        Syntax::Sqlite => false,
                    };
                    self.pos = self.skip_quoted(b'\'', backslash);
                    self.push(Token::Other);
                }
                b'"' => {
                    self.pos = self.skip_quoted(b'"', self.syntax == Syntax::MySql);
                    self.push(Token::Other);
                }
                b'`' if self.syntax != Syntax::Postgres => {
                    self.pos = self.skip_quoted(b'`', false);
                    self.push(Token::Other);
                }
                b'[' if self.syntax == Syntax::Sqlite => {
                    self.pos = self.skip_past(start + 1, "]");
                    self.push(Token::Other);
                }
                b'-' if next == Some(b'-') && self.dash_comment(start + 2) => {
                    self.pos = self.skip_past(start + 2, "\n");
                }
                b'#' if self.syntax == Syntax::MySql => {
                    self.pos = self.skip_past(start + 1, "\n");
                }
                b'/' if next == Some(b'*') => self.pos = self.skip_block_comment(),
                b':' => self.colon()?,
                b'$' if self.syntax == Syntax::Postgres => self.dollar(),
                b'$' | b'@' if self.syntax == Syntax::Sqlite && next.is_some_and(is_name_char) => {
                    self.pos = self.skip_ident(start + 1);
                    self.other(start);
                }
                b'?' if self.syntax != Syntax::Postgres => {
                    self.pos = start + 1;
                    if self.syntax == Syntax::Sqlite {
                        while self.at(self.pos).is_some_and(|b| b.is_ascii_digit()) {
                            self.pos += 1;
                        }
                    }
                    self.other(start);
                }
                b if is_ident(b) => {
                    self.pos = self.skip_ident(start);
                    self.push(Token::Word(start, self.pos));
                }
                _ => {
                    self.pos += 1;
                    self.push(Token::Punct(b, start));
                }
            }
        }
        Ok(self.found)
    }

    /// Notes a significant token, and whether it closes an `IN (:name)`.
    fn push(&mut self, token: Token) {
        if let Some(i) = self.open_in.take() {
            if let (Token::Punct(b')', at), Context::In { close, .. }) =
                (token, &mut self.found.placeholders[i].context)
            {
                *close = Some(at + 1);
            }
        }
        self.recent = [token, self.recent[0], self.recent[1]];
    }

    /// Notes a placeholder of another kind than `:name`.
    fn other(&mut self, start: usize) {
        if self.found.other.is_none() {
            self.found.other = Some(&self.sql[start..self.pos]);
        }
        self.push(Token::Other);
    }

    fn word(&self, token: Token) -> Option<&'a str> {
        match token {
            Token::Word(start, end) => Some(&self.sql[start..end]),
            _ => None,
        }
    }

    /// `true` when the quote at `pos` follows a lone `E` or `e`, making a
    /// PostgreSQL escape string.
    fn after_e_prefix(&self) -> bool {
        matches!(self.recent[0], Token::Word(start, end)
            if end == self.pos && end - start == 1 && matches!(self.bytes[start], b'E' | b'e'))
    }

    /// `true` when `--` followed by the byte at `after` starts a comment:
    /// always, but in MySQL only before whitespace, a control character or the end.
    fn dash_comment(&self, after: usize) -> bool {
        self.syntax != Syntax::MySql || self.at(after).is_none_or(|b| b <= b' ')
    }

    /// Skips a quoted string or identifier starting at `pos`, where a doubled
    /// quote stands for itself and, with `backslash`, `\` escapes the next byte.
    /// Unterminated, it runs to the end.
    fn skip_quoted(&self, quote: u8, backslash: bool) -> usize {
        let mut i = self.pos + 1;
        while let Some(b) = self.at(i) {
            if b == quote {
                if self.at(i + 1) == Some(quote) {
                    i += 2;
                    continue;
                }
                return i + 1;
            }
            i += if backslash && b == b'\\' { 2 } else { 1 };
        }
        self.bytes.len()
    }

    /// The position after the first `end` at or after `from`, or the end of the text.
    fn skip_past(&self, from: usize, end: &str) -> usize {
        self.sql
            .get(from..)
            .and_then(|rest| rest.find(end))
            .map_or(self.bytes.len(), |i| from + i + end.len())
    }

    fn skip_ident(&self, from: usize) -> usize {
        let mut i = from;
        while self.at(i).is_some_and(is_ident) {
            i += 1;
        }
        i
    }

    /// Skips `/* ... */` at `pos`; PostgreSQL nests them.
    fn skip_block_comment(&self) -> usize {
        if self.syntax != Syntax::Postgres {
            return self.skip_past(self.pos + 2, "*/");
        }
        let mut depth = 0;
        let mut i = self.pos;
        while let Some(b) = self.at(i) {
            match (b, self.at(i + 1)) {
                (b'/', Some(b'*')) => {
                    depth += 1;
                    i += 2;
                }
                (b'*', Some(b'/')) => {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        return i;
                    }
                }
                _ => i += 1,
            }
        }
        self.bytes.len()
    }

    /// A `:` at `pos`: a cast, a placeholder, or punctuation.
    fn colon(&mut self) -> Result<()> {
        let start = self.pos;
        let next = self.at(start + 1);
        if next == Some(b':') {
            self.pos += 2;
            self.push(Token::Other);
            return Ok(());
        }
        let glued = start > 0 && (is_ident(self.bytes[start - 1]) || self.bytes[start - 1] == b':');
        if !glued && self.syntax == Syntax::Sqlite && next.is_some_and(|b| b.is_ascii_digit()) {
            // SQLite reads `:1` as a parameter of its own.
            self.pos = self.skip_ident(start + 1);
            self.other(start);
            return Ok(());
        }
        if glued || !next.is_some_and(is_name_start) {
            self.pos += 1;
            self.push(Token::Punct(b':', start));
            return Ok(());
        }
        let mut end = start + 2;
        while self.at(end).is_some_and(is_name_char) {
            end += 1;
        }
        let name = &self.sql[start + 1..end];
        if self.at(end).is_some_and(is_ident) {
            let rest = &self.sql[end..];
            let c = rest.chars().next().unwrap_or_default();
            return Err(Error::Parameter(format!(
                "the placeholder :{name} runs into {c:?}: placeholder names are ASCII letters, digits and underscores"
            )));
        }
        let context = self.context();
        self.pos = end;
        self.push(Token::Other);
        if matches!(context, Context::In { .. }) {
            self.open_in = Some(self.found.placeholders.len());
        }
        self.found.placeholders.push(Placeholder {
            name,
            span: start..end,
            context,
        });
        Ok(())
    }

    /// The context of a placeholder about to be pushed.
    fn context(&self) -> Context {
        let Token::Punct(b'(', _) = self.recent[0] else {
            return Context::Other;
        };
        let Some(keyword) = self.word(self.recent[1]) else {
            return Context::Other;
        };
        if keyword.eq_ignore_ascii_case("in") {
            let Token::Word(mut start, _) = self.recent[1] else {
                return Context::Other;
            };
            let negated = self
                .word(self.recent[2])
                .is_some_and(|w| w.eq_ignore_ascii_case("not"));
            if let (true, Token::Word(not, _)) = (negated, self.recent[2]) {
                start = not;
            }
            return Context::In {
                negated,
                start,
                close: None,
            };
        }
        if ["any", "some", "all"]
            .iter()
            .any(|k| keyword.eq_ignore_ascii_case(k))
        {
            return Context::Array;
        }
        Context::Other
    }

    /// A `$` at `pos` in PostgreSQL: a dollar-quoted string, a `$1`
    /// placeholder, or punctuation. (Inside an identifier, `$` was consumed
    /// with it, so a `$` here always starts something.)
    fn dollar(&mut self) {
        let start = self.pos;
        let mut i = start + 1;
        if self.at(i).is_some_and(|b| is_name_start(b) || b >= 0x80) {
            while self.at(i).is_some_and(|b| is_ident(b) && b != b'$') {
                i += 1;
            }
        }
        if self.at(i) == Some(b'$') {
            let delimiter = &self.sql[start..=i];
            self.pos = self.skip_past(i + 1, delimiter);
            self.push(Token::Other);
        } else if self.at(start + 1).is_some_and(|b| b.is_ascii_digit()) {
            self.pos = start + 1;
            while self.at(self.pos).is_some_and(|b| b.is_ascii_digit()) {
                self.pos += 1;
            }
            self.other(start);
        } else {
            self.pos += 1;
            self.push(Token::Punct(b'$', start));
        }
    }
}
