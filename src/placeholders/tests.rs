//! The rewriter, rule by rule, and generated checks that rewriting changes
//! nothing but the placeholders and that no text makes the lexer panic.

use super::lexer_tests::{names, ALL};
use super::*;
use crate::named_params;
use crate::sql::Dialect;

/// Rewrites for `syntax` in its own style.
fn to(syntax: Syntax, sql: &str, params: Parameters) -> Result<(String, Vec<Value>)> {
    rewrite(sql, syntax, syntax.style(), params).map(|r| (r.sql, r.values))
}

fn pg(sql: &str, params: Parameters) -> (String, Vec<Value>) {
    to(Syntax::Postgres, sql, params).unwrap()
}

fn int(i: i64) -> Value {
    Value::Integer(i)
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

#[test]
fn rewrites_into_each_style() {
    assert_eq!(
        pg("SELECT :id::uuid", named_params! { ":id": "x" }).0,
        "SELECT $1::uuid"
    );
    let sql = "SELECT * FROM t WHERE a = :a AND b = :b";
    let params = || named_params! { ":b": "x", ":a": 1 };
    assert_eq!(
        pg(sql, params()),
        (
            "SELECT * FROM t WHERE a = $1 AND b = $2".to_owned(),
            vec![int(1), text("x")]
        )
    );
    assert_eq!(
        to(Syntax::MySql, sql, params()).unwrap(),
        (
            "SELECT * FROM t WHERE a = ? AND b = ?".to_owned(),
            vec![int(1), text("x")]
        )
    );
    assert_eq!(
        to(Syntax::Sqlite, sql, params()).unwrap(),
        (
            "SELECT * FROM t WHERE a = ?1 AND b = ?2".to_owned(),
            vec![int(1), text("x")]
        )
    );
}

#[test]
fn a_repeated_name_binds_the_same_value() {
    let sql = "SELECT :a, :b, :a, :a";
    let params = || named_params! { ":a": 1, ":b": 2 };
    assert_eq!(
        pg(sql, params()),
        ("SELECT $1, $2, $1, $1".to_owned(), vec![int(1), int(2)])
    );
    assert_eq!(
        to(Syntax::Sqlite, sql, params()).unwrap(),
        ("SELECT ?1, ?2, ?1, ?1".to_owned(), vec![int(1), int(2)])
    );
    assert_eq!(
        to(Syntax::MySql, sql, params()).unwrap(),
        (
            "SELECT ?, ?, ?, ?".to_owned(),
            vec![int(1), int(2), int(1), int(1)]
        )
    );
}

#[test]
fn lists_expand_into_one_placeholder_per_element() {
    let sql = "SELECT * FROM t WHERE k = :k AND id IN (:ids) OR id IN (:ids) AND n = :n";
    let params = || named_params! { ":ids": List::from(vec![3, 4, 5]), ":k": "x", ":n": 9 };
    assert_eq!(
        pg(sql, params()),
        (
            "SELECT * FROM t WHERE k = $1 AND id IN ($2, $3, $4) OR id IN ($2, $3, $4) AND n = $5"
                .to_owned(),
            vec![text("x"), int(3), int(4), int(5), int(9)]
        )
    );
    assert_eq!(
        to(Syntax::Sqlite, sql, params()).unwrap().0,
        "SELECT * FROM t WHERE k = ?1 AND id IN (?2, ?3, ?4) OR id IN (?2, ?3, ?4) AND n = ?5"
    );
    assert_eq!(
        to(Syntax::MySql, sql, params()).unwrap(),
        (
            "SELECT * FROM t WHERE k = ? AND id IN (?, ?, ?) OR id IN (?, ?, ?) AND n = ?"
                .to_owned(),
            vec![
                text("x"),
                int(3),
                int(4),
                int(5),
                int(3),
                int(4),
                int(5),
                int(9)
            ]
        )
    );
    // Anywhere, not only in IN: a one-element list is one placeholder.
    assert_eq!(
        pg(
            "INSERT INTO t VALUES (:row), (:one)",
            named_params! { ":row": List::from(["a", "b"]), ":one": List::from([1]) }
        ),
        (
            "INSERT INTO t VALUES ($1, $2), ($3)".to_owned(),
            vec![text("a"), text("b"), int(1)]
        )
    );
}

#[test]
fn an_empty_list_in_in_matches_nothing_and_in_not_in_everything() {
    let sql = "SELECT * FROM t WHERE a IN (:none) AND b NOT IN (:none) AND c = :c";
    let params = || named_params! { ":none": List::default(), ":c": 1 };
    assert_eq!(
        to(Syntax::Sqlite, sql, params()).unwrap(),
        (
            "SELECT * FROM t WHERE a IN () AND b NOT IN () AND c = ?1".to_owned(),
            vec![int(1)]
        )
    );
    assert_eq!(
        pg(sql, params()),
        (
            "SELECT * FROM t WHERE a = ANY('{}') AND b <> ALL('{}') AND c = $1".to_owned(),
            vec![int(1)]
        )
    );
    assert_eq!(
        to(Syntax::MySql, sql, params()).unwrap().0,
        "SELECT * FROM t WHERE a IN (SELECT NULL FROM DUAL WHERE 1 = 0) \
         AND b NOT IN (SELECT NULL FROM DUAL WHERE 1 = 0) AND c = ?"
    );
    // Spelling and spacing inside the parentheses do not matter.
    assert_eq!(
        pg(
            "SELECT x not  in ( /* none */ :e\n) FROM t",
            named_params! { ":e": List::default() }
        )
        .0,
        "SELECT x <> ALL('{}') FROM t"
    );
}

#[test]
fn an_empty_list_elsewhere_is_an_error() {
    for sql in [
        "INSERT INTO t VALUES (:e)",
        "SELECT * FROM t WHERE a IN (:e, :x)",
        "SELECT * FROM t WHERE a IN (:x, :e)",
        "SELECT * FROM t WHERE a = ANY(:e)",
    ] {
        for syntax in ALL {
            let mut params = named_params! { ":e": List::new(Vec::<i64>::new()) };
            if sql.contains(":x") {
                params.named.push((":x".to_owned(), int(1)));
            }
            let err = to(syntax, sql, params).map(|_| ()).err();
            let Some(Error::Parameter(message)) = err else {
                panic!("{sql}: {err:?}");
            };
            assert!(message.starts_with("the list :e is empty"), "{message}");
        }
    }
}

#[test]
fn a_list_in_any_or_all_is_an_error() {
    let err = to(
        Syntax::Postgres,
        "SELECT * FROM t WHERE id = ANY(:ids)",
        named_params! { ":ids": List::from([1, 2]) },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameter: the list :ids is inside ANY(...) or ALL(...), which takes one array; \
         binding arrays is not supported, write IN (:ids) instead"
    );
    // A single value there is the caller's business.
    assert_eq!(
        pg("SELECT 1 = ANY(:a)", named_params! { ":a": "{1}" }).0,
        "SELECT 1 = ANY($1)"
    );
}

#[test]
fn a_placeholder_without_a_value_is_an_error() {
    let err = to(Syntax::Postgres, "SELECT :a, :b", named_params! { ":a": 1 }).unwrap_err();
    assert!(matches!(&err, Error::ParameterMissing(name) if name == ":b"));
    assert_eq!(err.kind(), crate::error::ErrorKind::Parameter);
    assert_eq!(
        err.to_string(),
        "no value given for the statement's parameter \":b\""
    );
}

#[test]
fn a_value_without_a_placeholder_is_an_error() {
    for syntax in ALL {
        let err = to(
            syntax,
            "SELECT :a, ':b' -- :b",
            named_params! { ":a": 1, ":b": 2 },
        )
        .unwrap_err();
        assert!(matches!(&err, Error::ParameterName(name) if name == ":b"));
        assert_eq!(
            err.to_string(),
            "the statement has no parameter named \":b\""
        );
        let err = to(syntax, "SELECT 1", named_params! { ":a": 1 }).unwrap_err();
        assert!(matches!(&err, Error::ParameterName(name) if name == ":a"));
    }
}

#[test]
fn mixing_kinds_of_placeholders_is_an_error() {
    let cases = [
        (Syntax::Postgres, "SELECT :a, $1", "$1"),
        (Syntax::MySql, "SELECT :a, ?", "?"),
        (Syntax::Sqlite, "SELECT :a, ?2", "?2"),
        (Syntax::Sqlite, "SELECT @b, :a", "@b"),
    ];
    for (syntax, sql, marker) in cases {
        let err = to(syntax, sql, named_params! { ":a": 1 }).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid parameter: named placeholders (:a) and other placeholders ({marker}) \
                 cannot be mixed in one statement"
            )
        );
    }
    let err = to(Syntax::Postgres, "SELECT $1", named_params! { ":a": 1 }).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameter: the statement has positional placeholders ($1) but the parameters are named"
    );
}

#[test]
fn positional_parameters_pass_through_a_statement_without_names() {
    let params = Parameters::positional(vec![int(1)]);
    assert_eq!(
        pg("SELECT $1, ':a' -- :b", params),
        ("SELECT $1, ':a' -- :b".to_owned(), vec![int(1)])
    );
    assert_eq!(
        pg("SELECT 1", Parameters::default()),
        ("SELECT 1".to_owned(), vec![])
    );
    let err = to(
        Syntax::Postgres,
        "SELECT :a",
        Parameters::positional(vec![int(1)]),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameter: the statement has named placeholders (:a) but the parameters are positional"
    );
    let mut both = named_params! { ":a": 1 };
    both.positional.push(int(2));
    let err = to(Syntax::Postgres, "SELECT :a", both).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameter: positional and named parameters cannot be mixed"
    );
}

#[test]
fn names_must_be_spelled_as_placeholders_and_given_once() {
    for (key, shown) in [
        ("a", "\"a\""),
        ("@a", "\"@a\""),
        (":1a", "\":1a\""),
        (":", "\":\""),
    ] {
        let params = Parameters::named(vec![(key.to_owned(), int(1))]);
        let err = to(Syntax::Postgres, "SELECT :a", params).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid parameter: parameter name {shown} is not of the form \":name\" \
                 (ASCII letters, digits and underscores)"
            )
        );
    }
    let err = to(
        Syntax::Postgres,
        "SELECT :a",
        named_params! { ":a": 1, ":a": List::from([2]) },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameter: parameter \":a\" is given twice"
    );
}

#[test]
fn unicode_text_around_placeholders_is_kept() {
    let sql = "SELECT 'Zoë :x' || :nom || '日本', \"列:y\" FROM t \
               WHERE 名前 = :b -- ünï :c\nAND ω=:b/*→:d*/";
    let (out, values) = pg(sql, named_params! { ":nom": "é", ":b": 2 });
    assert_eq!(
        out,
        "SELECT 'Zoë :x' || $1 || '日本', \"列:y\" FROM t \
         WHERE 名前 = $2 -- ünï :c\nAND ω=$2/*→:d*/"
    );
    assert_eq!(values, [text("é"), int(2)]);
    // A name glued to a non-ASCII word is part of that word.
    assert_eq!(names("SELECT 名前:b", Syntax::Postgres), Vec::<&str>::new());
}

#[test]
fn placeholders_at_the_edges_and_next_to_punctuation() {
    let (out, values) = pg(
        ":a||(:a,:b)+:b*(:c);:c",
        named_params! { ":a": 1, ":b": 2, ":c": List::from([3, 4]) },
    );
    assert_eq!(out, "$1||($1,$2)+$2*($3, $4);$3, $4");
    assert_eq!(values, [int(1), int(2), int(3), int(4)]);
    assert_eq!(
        to(
            Syntax::MySql,
            "VALUES(:a,:b)",
            named_params! { ":a": 1, ":b": 2 }
        )
        .unwrap()
        .0,
        "VALUES(?,?)"
    );
}

#[test]
fn dialects_map_to_their_syntax_and_style() {
    assert_eq!(Syntax::of(Dialect::Sqlite), Syntax::Sqlite);
    assert_eq!(Syntax::of(Dialect::Postgres), Syntax::Postgres);
    assert_eq!(Syntax::Sqlite.style(), Style::QuestionNumbered);
    assert_eq!(Syntax::Postgres.style(), Style::Dollar);
    assert_eq!(Syntax::MySql.style(), Style::Question);
}

/// A small deterministic generator (xorshift64*), so tests need no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// Text that holds no placeholder under each syntax, whatever surrounds
/// it with whitespace between.
fn literals(syntax: Syntax) -> Vec<&'static str> {
    let mut pieces = vec![
        "SELECT",
        "x",
        "t.col",
        "Zoë",
        "日本語",
        "a$b",
        "E",
        "IN",
        "NOT",
        "1",
        "2.5",
        "x::int",
        "::text",
        "a:b",
        "arr[1:n]",
        ":=",
        ": x",
        "'it''s :a'",
        "':b'",
        "'日本 :c ü'",
        "''",
        "\"col :a\"",
        "\"a\"\":b\"",
        "-- :a note\n",
        "/* :b */",
    ];
    pieces.extend(match syntax {
        Syntax::Postgres => &[
            r"E'\' :a'",
            "$$ :a $$",
            "$tag$ :b $$ $tag$",
            "/* /* :a */ :c */",
            "?",
            "#",
        ][..],
        Syntax::MySql => &[
            r"'it\'s :a'",
            r#""dq\" :b""#,
            "# :a\n",
            "`x``:a`",
            "--x",
            "@v",
        ][..],
        Syntax::Sqlite => &["[a:b]", "`x``:a`", r"'\'", "$$"][..],
    });
    pieces
}

const PUNCTUATION: [&str; 10] = ["(", ")", ",", "=", "+", "*", "<", ">", "||", ";"];
const SPACE: [&str; 5] = [" ", "\n", "\t", "  ", "\r\n"];
const NAMES: [&str; 4] = ["a", "b", "c", "long_name_2"];

fn value_of(name: &str) -> Result<Value, Vec<Value>> {
    match name {
        "a" => Ok(int(7)),
        "b" => Ok(text("ü")),
        "c" => Err(vec![int(1), int(2), int(3)]),
        _ => Ok(Value::Null),
    }
}

#[test]
fn rewriting_changes_nothing_but_the_placeholders() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for syntax in ALL {
        let literals = literals(syntax);
        for style in [Style::Dollar, Style::Question, Style::QuestionNumbered] {
            for _ in 0..300 {
                // Build the statement and, beside it, what the rewrite must give.
                let (mut sql, mut expected) = (String::new(), String::new());
                let mut values = Vec::new();
                let mut numbers: Vec<(&str, usize)> = Vec::new();
                let mut last_punct = true;
                for _ in 0..rng.below(30) {
                    let kind = rng.below(10);
                    let punct = kind < 3;
                    if !(punct || last_punct) {
                        let space = rng.pick(&SPACE);
                        sql.push_str(space);
                        expected.push_str(space);
                    }
                    last_punct = punct;
                    if punct || kind >= 6 {
                        let piece = if punct {
                            rng.pick(&PUNCTUATION)
                        } else {
                            rng.pick(&literals)
                        };
                        sql.push_str(piece);
                        expected.push_str(piece);
                        continue;
                    }
                    let name = rng.pick(&NAMES);
                    sql.push(':');
                    sql.push_str(name);
                    let bound = value_of(name);
                    let count = bound.as_ref().map_or_else(Vec::len, |_| 1);
                    let prefix = match style {
                        Style::Question => {
                            match bound {
                                Ok(v) => values.push(v),
                                Err(vs) => values.extend(vs),
                            }
                            expected.push_str(&vec!["?"; count].join(", "));
                            continue;
                        }
                        Style::Dollar => "$",
                        Style::QuestionNumbered => "?",
                    };
                    let first = match numbers.iter().find(|(n, _)| *n == name) {
                        Some(&(_, first)) => first,
                        None => {
                            let first = values.len() + 1;
                            numbers.push((name, first));
                            match bound {
                                Ok(v) => values.push(v),
                                Err(vs) => values.extend(vs),
                            }
                            first
                        }
                    };
                    let rendered: Vec<String> = (first..first + count)
                        .map(|n| format!("{prefix}{n}"))
                        .collect();
                    expected.push_str(&rendered.join(", "));
                }
                let mut params = Parameters::default();
                for name in NAMES {
                    if !sql.contains(&format!(":{name}")) {
                        continue;
                    }
                    let key = format!(":{name}");
                    match value_of(name) {
                        Ok(v) => params.named.push((key, v)),
                        Err(vs) => params.lists.push((key, List(vs))),
                    }
                }
                // A name only inside a literal piece has no placeholder: drop it.
                let found: Vec<String> = scan(&sql, syntax)
                    .unwrap()
                    .placeholders
                    .iter()
                    .map(|p| format!(":{}", p.name))
                    .collect();
                params.named.retain(|(k, _)| found.contains(k));
                params.lists.retain(|(k, _)| found.contains(k));
                let out = rewrite(&sql, syntax, style, params)
                    .unwrap_or_else(|e| panic!("{syntax:?} {style:?} {sql:?}: {e}"));
                assert_eq!(out.sql, expected, "{syntax:?} {style:?} {sql:?}");
                assert_eq!(out.values, values, "{syntax:?} {style:?} {sql:?}");
            }
        }
    }
}

#[test]
fn any_text_scans_without_panicking_and_spans_fit() {
    let alphabet = [
        "'", "\"", "`", "[", "]", "$", "$$", ":", "::", "a", "E", "1", " ", "\n", "-", "--", "/",
        "*", "/*", "*/", "#", "\\", "?", "@", "(", ")", "IN", "é", "日", ":x", ":y",
    ];
    let mut rng = Rng(42);
    for _ in 0..3000 {
        let sql: String = (0..rng.below(40)).map(|_| rng.pick(&alphabet)).collect();
        for syntax in ALL {
            let Ok(found) = scan(&sql, syntax) else {
                continue;
            };
            let mut params = Parameters::default();
            for p in &found.placeholders {
                assert_eq!(&sql[p.span.clone()], format!(":{}", p.name));
                let key = format!(":{}", p.name);
                if !params.named.iter().any(|(k, _)| *k == key) {
                    params.named.push((key, int(1)));
                }
            }
            for style in [Style::Dollar, Style::Question, Style::QuestionNumbered] {
                let _ = rewrite(&sql, syntax, style, params.clone());
            }
        }
    }
}
