//! Portable `:name` placeholders: one SQL text for SQLite, PostgreSQL and
//! MySQL. [`scan`] finds them (see the `lexer` module for what it skips);
//! [`rewrite`] turns them into the target database's own positional
//! placeholders and orders the named values to match, expanding each
//! [`List`] into one placeholder per element.

mod lexer;
#[cfg(test)]
mod lexer_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Range;

pub(crate) use lexer::{scan, Context, Placeholder, Scan, Syntax};

use crate::error::{Error, Result};
use crate::params::{List, Parameters};
use crate::sql::Dialect;
use crate::value::Value;
use lexer::is_name;

/// How the target database writes a positional placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `$1, $2, ...` (PostgreSQL); a name used twice reuses its number.
    Dollar,
    /// `?` (MySQL, MariaDB); a name used twice binds its value twice.
    Question,
    /// `?1, ?2, ...` (SQLite); a name used twice reuses its number.
    QuestionNumbered,
}

impl Syntax {
    /// The database's own placeholder style.
    pub(crate) fn style(self) -> Style {
        match self {
            Syntax::Sqlite => Style::QuestionNumbered,
            Syntax::Postgres => Style::Dollar,
            Syntax::MySql => Style::Question,
        }
    }
}

/// A statement rewritten into positional placeholders.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rewritten {
    /// The statement's text in the target style.
    pub(crate) sql: String,
    /// The values, in the order of the positional placeholders.
    pub(crate) values: Vec<Value>,
}

/// Rewrites the `:name` placeholders of `sql` into `style`'s positional
/// ones and orders the named values to match, expanding each [`List`] into
/// one placeholder per element.
///
/// The text outside placeholders is copied unchanged, except for an empty
/// list standing alone in `[NOT] IN (:name)`, since `IN ()` is valid only in
/// SQLite: SQLite keeps `IN ()`; PostgreSQL gets `= ANY('{}')` (or
/// `<> ALL('{}')` for `NOT IN`) in place of the whole `IN (...)`, the empty
/// array taking the type of the left side; MySQL gets
/// `IN (SELECT NULL FROM DUAL WHERE 1 = 0)`. Each is false for `IN` and true
/// for `NOT IN`, whatever the left side, `NULL` included. (`IN (NULL)` is no
/// substitute: `x NOT IN (NULL)` is `NULL`, which keeps no row.)
///
/// Positional parameters pass through unchanged when the statement has no
/// `:name` placeholder.
///
/// # Errors
/// - [`Error::ParameterMissing`]: a placeholder has no value.
/// - [`Error::ParameterName`]: a value has no placeholder.
/// - [`Error::Parameter`]: `:name` placeholders mixed with others (`$1`,
///   `?`, `@name`) or with positional parameters; a name given twice or not
///   spelled `:name`; an empty list anywhere but alone in `[NOT] IN (...)`;
///   a list inside `ANY(...)`/`ALL(...)`; or a [`scan`] error.
pub(crate) fn rewrite(
    sql: &str,
    syntax: Syntax,
    style: Style,
    params: Parameters,
) -> Result<Rewritten> {
    let Parameters {
        positional,
        named,
        lists,
    } = params;
    let scan = scan(sql, syntax)?;
    let is_named = !named.is_empty() || !lists.is_empty();
    check_kinds(&scan, is_named, !positional.is_empty())?;
    if scan.placeholders.is_empty() && !is_named {
        return Ok(Rewritten {
            sql: sql.to_owned(),
            values: positional,
        });
    }
    let mut bindings = Bindings::new(named, lists, &scan.placeholders)?;
    let mut out = String::with_capacity(sql.len() + 8 * scan.placeholders.len());
    let mut copied = 0;
    for placeholder in &scan.placeholders {
        let slot = bindings.slot(placeholder.name);
        let (span, replacement) = match bindings.list_len(slot) {
            Some(0) => empty_list(placeholder, syntax)?,
            Some(_) if placeholder.context == Context::Array => {
                return Err(Error::Parameter(format!(
                    "the list :{} is inside ANY(...) or ALL(...), which takes one array; \
                     binding arrays is not supported, write IN (:{0}) instead",
                    placeholder.name
                )));
            }
            _ => (placeholder.span.clone(), None),
        };
        out.push_str(&sql[copied..span.start]);
        match replacement {
            Some(text) => out.push_str(text),
            None => bindings.write(slot, style, &mut out),
        }
        copied = span.end;
    }
    out.push_str(&sql[copied..]);
    Ok(Rewritten {
        sql: out,
        values: bindings.values,
    })
}

/// Refuses `:name` placeholders mixed with other kinds, and named
/// parameters mixed with positional ones or with positional placeholders.
fn check_kinds(scan: &Scan<'_>, named: bool, positional: bool) -> Result<()> {
    let message = match (scan.placeholders.first(), scan.other) {
        _ if named && positional => "positional and named parameters cannot be mixed".to_owned(),
        (Some(first), Some(other)) => format!(
            "named placeholders (:{}) and other placeholders ({other}) cannot be mixed in one statement",
            first.name
        ),
        (Some(first), None) if positional => format!(
            "the statement has named placeholders (:{}) but the parameters are positional",
            first.name
        ),
        (None, Some(other)) if named => format!(
            "the statement has positional placeholders ({other}) but the parameters are named"
        ),
        _ => return Ok(()),
    };
    Err(Error::Parameter(message))
}

/// What replaces an empty list's placeholder: the span to replace and its
/// new text (see [`rewrite`]).
fn empty_list(
    placeholder: &Placeholder<'_>,
    syntax: Syntax,
) -> Result<(Range<usize>, Option<&'static str>)> {
    let span = placeholder.span.clone();
    match (placeholder.context, syntax) {
        (
            Context::In {
                negated,
                start,
                close: Some(close),
            },
            Syntax::Postgres,
        ) => Ok((
            start..close,
            Some(if negated { "<> ALL('{}')" } else { "= ANY('{}')" }),
        )),
        (Context::In { close: Some(_), .. }, Syntax::Sqlite) => Ok((span, Some(""))),
        (Context::In { close: Some(_), .. }, Syntax::MySql) => {
            Ok((span, Some("SELECT NULL FROM DUAL WHERE 1 = 0")))
        }
        _ => Err(Error::Parameter(format!(
            "the list :{} is empty, which is allowed only as the whole of an IN (...) or NOT IN (...) list",
            placeholder.name
        ))),
    }
}

/// One named value or list, as given.
#[derive(Debug, Clone)]
enum Bound {
    One(Value),
    Many(Vec<Value>),
}

/// The named values by name, and the positional values taken from them so far.
struct Bindings {
    /// The slot of each name, without its `:`.
    slots: HashMap<String, usize>,
    /// Each slot's value or list, until it is taken.
    given: Vec<Option<Bound>>,
    /// Each slot's list length; `None` for a single value.
    lens: Vec<Option<usize>>,
    /// Placeholders left to write per slot, for `?`, which repeats values.
    uses: Vec<usize>,
    /// The first positional number of each slot, for the numbered styles.
    numbers: Vec<Option<usize>>,
    values: Vec<Value>,
}

impl Bindings {
    /// Checks the names given against the placeholders found.
    fn new(
        named: Vec<(String, Value)>,
        lists: Vec<(String, List)>,
        placeholders: &[Placeholder<'_>],
    ) -> Result<Bindings> {
        let (mut keys, mut given) = (Vec::new(), Vec::new());
        for (key, value) in named {
            keys.push(key);
            given.push(Bound::One(value));
        }
        for (key, list) in lists {
            keys.push(key);
            given.push(Bound::Many(list.0));
        }
        let mut slots = HashMap::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let name = key
                .strip_prefix(':')
                .filter(|name| is_name(name))
                .ok_or_else(|| {
                    Error::Parameter(format!(
                        "parameter name {key:?} is not of the form \":name\" (ASCII letters, digits and underscores)"
                    ))
                })?;
            if slots.insert(name.to_owned(), i).is_some() {
                return Err(Error::Parameter(format!(
                    "parameter {key:?} is given twice"
                )));
            }
        }
        let mut uses = vec![0; keys.len()];
        for placeholder in placeholders {
            let i = *slots
                .get(placeholder.name)
                .ok_or_else(|| Error::ParameterMissing(format!(":{}", placeholder.name)))?;
            uses[i] += 1;
        }
        if let Some(i) = uses.iter().position(|&n| n == 0) {
            return Err(Error::ParameterName(keys.swap_remove(i)));
        }
        Ok(Bindings {
            slots,
            lens: given
                .iter()
                .map(|bound| match bound {
                    Bound::One(_) => None,
                    Bound::Many(values) => Some(values.len()),
                })
                .collect(),
            given: given.into_iter().map(Some).collect(),
            numbers: vec![None; keys.len()],
            uses,
            values: Vec::new(),
        })
    }

    fn slot(&self, name: &str) -> usize {
        self.slots[name]
    }

    /// `None` for a single value, the length for a list.
    fn list_len(&self, slot: usize) -> Option<usize> {
        self.lens[slot]
    }

    /// Appends a value or list to the positional values.
    fn push(&mut self, bound: Option<Bound>) {
        match bound {
            Some(Bound::One(value)) => self.values.push(value),
            Some(Bound::Many(values)) => self.values.extend(values),
            None => {}
        }
    }

    /// Writes the placeholders of one use of `slot`: one for a value, one
    /// per element for a list. `?` binds the values on every use, moving
    /// them on the last and copying them before; the numbered styles bind
    /// them on the first use and repeat their numbers after.
    fn write(&mut self, slot: usize, style: Style, out: &mut String) {
        let count = self.lens[slot].unwrap_or(1);
        let prefix = match style {
            Style::Dollar => '$',
            Style::QuestionNumbered => '?',
            Style::Question => {
                self.uses[slot] -= 1;
                let bound = if self.uses[slot] == 0 {
                    self.given[slot].take()
                } else {
                    self.given[slot].clone()
                };
                self.push(bound);
                out.push('?');
                for _ in 1..count {
                    out.push_str(", ?");
                }
                return;
            }
        };
        let first = match self.numbers[slot] {
            Some(first) => first,
            None => {
                let first = self.values.len() + 1;
                let bound = self.given[slot].take();
                self.push(bound);
                self.numbers[slot] = Some(first);
                first
            }
        };
        for n in first..first + count {
            if n > first {
                out.push_str(", ");
            }
            // Writing to a String cannot fail.
            let _ = write!(out, "{prefix}{n}");
        }
    }
}

/// Rewrites a statement's `:name` placeholders for `dialect` when sqlaio
/// must: always on PostgreSQL and MySQL (their drivers bind by position),
/// and on SQLite only for lists (SQLite binds `:name` itself). Positional
/// parameters, and statements without named values, pass through untouched.
///
/// # Errors
/// As [`rewrite`].
pub(crate) fn for_dialect(
    dialect: Dialect,
    text: &mut String,
    params: &mut Parameters,
) -> Result<()> {
    let named = !params.named.is_empty();
    if params.lists.is_empty() && (!named || dialect == Dialect::Sqlite) {
        return Ok(());
    }
    let syntax = Syntax::of(dialect);
    let rewritten = rewrite(text, syntax, syntax.style(), std::mem::take(params))?;
    *text = rewritten.sql;
    *params = Parameters::positional(rewritten.values);
    Ok(())
}
