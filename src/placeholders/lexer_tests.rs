//! The lexer, rule by rule: what it skips, what it reports.

use super::*;

pub(super) const ALL: [Syntax; 3] = [Syntax::Sqlite, Syntax::Postgres, Syntax::MySql];

pub(super) fn names(sql: &str, syntax: Syntax) -> Vec<&str> {
    scan(sql, syntax)
        .unwrap()
        .placeholders
        .iter()
        .map(|p| p.name)
        .collect()
}

fn other(sql: &str, syntax: Syntax) -> Option<&str> {
    scan(sql, syntax).unwrap().other
}

#[test]
fn finds_names_in_order_with_spans() {
    let sql = "SELECT * FROM t WHERE a = :a AND b_2 = :b_2 OR :_c";
    let found = scan(sql, Syntax::Postgres).unwrap();
    let spans: Vec<&str> = found
        .placeholders
        .iter()
        .map(|p| &sql[p.span.clone()])
        .collect();
    assert_eq!(spans, [":a", ":b_2", ":_c"]);
    assert_eq!(names(sql, Syntax::Postgres), ["a", "b_2", "_c"]);
    assert_eq!(found.other, None);
}

#[test]
fn skips_single_quoted_strings_with_doubled_quotes() {
    for syntax in ALL {
        assert_eq!(names("SELECT 'it''s :a', ':b' || :c", syntax), ["c"]);
        assert_eq!(names("SELECT '', :a, ''''", syntax), ["a"]);
        assert_eq!(names("SELECT '12:30' AS t, :when", syntax), ["when"]);
    }
}

#[test]
fn postgres_escape_strings_take_backslashes() {
    let pg = Syntax::Postgres;
    assert_eq!(names(r"SELECT E'it\'s :a', :b", pg), ["b"]);
    assert_eq!(names(r"SELECT e'\\', :a", pg), ["a"]);
    assert_eq!(names(r"SELECT e'\\\' :a', :b", pg), ["b"]);
    // A plain string ends at its first quote: the backslash is a character.
    assert_eq!(names(r"SELECT '\', :a", pg), ["a"]);
    // `E` must touch the quote and stand alone.
    assert_eq!(names(r"SELECT E '\', :a", pg), ["a"]);
    assert_eq!(names(r"SELECT some'\', :a", pg), ["a"]);
    // Elsewhere `E` is just an identifier before a plain string.
    assert_eq!(names(r"SELECT E'\', :a", Syntax::Sqlite), ["a"]);
}

#[test]
fn mysql_strings_take_backslashes_in_both_quotes() {
    let my = Syntax::MySql;
    assert_eq!(names(r"SELECT 'it\'s :a', :b", my), ["b"]);
    assert_eq!(names(r#"SELECT "say \":a\"", :b"#, my), ["b"]);
    assert_eq!(names(r#"SELECT "a"":b", :c"#, my), ["c"]);
    assert_eq!(names(r"SELECT '\\', :a", my), ["a"]);
    // SQLite has no backslash escapes.
    assert_eq!(names(r"SELECT '\', :a", Syntax::Sqlite), ["a"]);
}

#[test]
fn skips_double_quoted_identifiers() {
    for syntax in ALL {
        assert_eq!(
            names(r#"SELECT "a "":b" FROM "t:c" WHERE x = :d"#, syntax),
            ["d"]
        );
    }
}

#[test]
fn skips_backtick_identifiers_in_mysql_and_sqlite() {
    for syntax in [Syntax::MySql, Syntax::Sqlite] {
        assert_eq!(
            names("SELECT `a``:b` FROM `:t` WHERE x = :c", syntax),
            ["c"]
        );
    }
    // Not PostgreSQL syntax: a backtick is just a character there.
    assert_eq!(names("SELECT `:a`", Syntax::Postgres), ["a"]);
}

#[test]
fn skips_square_bracket_identifiers_in_sqlite() {
    assert_eq!(
        names("SELECT [a:b] FROM [:t] WHERE x = :c", Syntax::Sqlite),
        ["c"]
    );
    // In PostgreSQL brackets subscript arrays; a slice bound glued to a number is no placeholder.
    assert_eq!(names("SELECT arr[1:n], arr[:m]", Syntax::Postgres), ["m"]);
}

#[test]
fn skips_line_comments() {
    for syntax in ALL {
        assert_eq!(names("SELECT :a -- :b, 'x\n, :c", syntax), ["a", "c"]);
        assert_eq!(names("SELECT :a -- :b at the end", syntax), ["a"]);
        assert_eq!(names("SELECT :a --\n:b", syntax), ["a", "b"]);
    }
    // MySQL needs whitespace or a control character after `--`.
    assert_eq!(names("SELECT 1 --:a", Syntax::MySql), ["a"]);
    assert_eq!(
        names("SELECT 1 --\t:a\n", Syntax::MySql),
        Vec::<&str>::new()
    );
    assert_eq!(names("SELECT 1 --:a", Syntax::Postgres), Vec::<&str>::new());
}

#[test]
fn skips_hash_comments_in_mysql_only() {
    assert_eq!(names("SELECT :a # :b\n, :c", Syntax::MySql), ["a", "c"]);
    // `#` is an operator in PostgreSQL (bitwise xor).
    assert_eq!(names("SELECT :a # :b", Syntax::Postgres), ["a", "b"]);
}

#[test]
fn skips_block_comments_nested_in_postgres() {
    for syntax in ALL {
        assert_eq!(
            names("SELECT /* :a */ :b /**/ /***/, :c", syntax),
            ["b", "c"]
        );
        assert_eq!(names("SELECT :a /* :b unterminated", syntax), ["a"]);
        assert_eq!(names("SELECT /*! :a */ :b", syntax), ["b"]);
    }
    let nested = "SELECT /* outer /* :a */ :b */ :c";
    assert_eq!(names(nested, Syntax::Postgres), ["c"]);
    // SQLite and MySQL end the comment at the first `*/`.
    assert_eq!(names(nested, Syntax::Sqlite), ["b", "c"]);
    assert_eq!(names(nested, Syntax::MySql), ["b", "c"]);
    assert_eq!(
        names("SELECT /* /* :a */", Syntax::Postgres),
        Vec::<&str>::new()
    );
}

#[test]
fn skips_casts_and_assignments() {
    for syntax in ALL {
        assert_eq!(
            names("SELECT :id::int, x::text, '{}'::int[]", syntax),
            ["id"]
        );
        assert_eq!(names("SELECT CAST(:a AS int)::bigint", syntax), ["a"]);
        assert_eq!(names("SET @x := :a", syntax), ["a"]);
        assert_eq!(names("SELECT f(a := :b, c => :d)", syntax), ["b", "d"]);
        assert_eq!(names("SELECT x:::a", syntax), Vec::<&str>::new());
    }
}

#[test]
fn a_colon_needs_a_name_after_and_no_word_before() {
    for syntax in ALL {
        let none = Vec::<&str>::new();
        assert_eq!(names("SELECT : a, :1, :(, :", syntax), none);
        assert_eq!(names("SELECT a:b, 1:n, é:x", syntax), none);
        assert_eq!(names("SELECT :", syntax), none);
        assert_eq!(names(":a", syntax), ["a"]);
    }
}

#[test]
fn skips_dollar_quoted_strings_in_postgres() {
    let pg = Syntax::Postgres;
    assert_eq!(names("SELECT $$ :a 'x $$, :b", pg), ["b"]);
    assert_eq!(names("SELECT $tag$ :a $$ :b $tag$, :c", pg), ["c"]);
    assert_eq!(names("SELECT $a$ $b$ :x $b$ $a$, :y", pg), ["y"]);
    assert_eq!(names("SELECT $é$ :a $é$, :b", pg), ["b"]);
    assert_eq!(
        names("DO $body$ BEGIN :a; END $body$", pg),
        Vec::<&str>::new()
    );
    assert_eq!(names("SELECT $$ :a unterminated", pg), Vec::<&str>::new());
    // A `$` inside an identifier starts nothing.
    assert_eq!(names("SELECT a$b$ , :c, x$ FROM t$1$", pg), ["c"]);
    assert_eq!(other("SELECT a$b$ , :c, x$ FROM t$1$", pg), None);
    // Not PostgreSQL: `$` is an ordinary character.
    assert_eq!(names("SELECT $$ :a $$", Syntax::MySql), ["a"]);
}

#[test]
fn reports_placeholders_of_other_kinds() {
    assert_eq!(other("SELECT $1, $22", Syntax::Postgres), Some("$1"));
    assert_eq!(other("SELECT ?", Syntax::MySql), Some("?"));
    assert_eq!(other("SELECT ?12", Syntax::Sqlite), Some("?12"));
    assert_eq!(other("SELECT @who", Syntax::Sqlite), Some("@who"));
    assert_eq!(other("SELECT $who", Syntax::Sqlite), Some("$who"));
    assert_eq!(other("SELECT @1", Syntax::Sqlite), Some("@1"));
    assert_eq!(other("SELECT :1, a:2", Syntax::Sqlite), Some(":1"));
    assert_eq!(other("SELECT :1", Syntax::Postgres), None);
    // PostgreSQL's jsonb operators and MySQL's variables are no placeholders.
    assert_eq!(
        other("SELECT d ? 'k', d ?| :a, d ?& :b", Syntax::Postgres),
        None
    );
    assert_eq!(other("SELECT @who, @@version", Syntax::MySql), None);
    // Inside strings and comments they do not count.
    assert_eq!(other("SELECT '?', $$ $1 $$ -- ?\n", Syntax::Postgres), None);
    assert_eq!(other("SELECT '?' -- ?\n", Syntax::MySql), None);
}

#[test]
fn reports_in_and_any_contexts() {
    let sql = "SELECT * FROM t WHERE a NOT IN (:ids) AND b in( /* c */ :x ) \
               AND c IN (:p, :q) AND d = ANY(:arr) AND e <> all (:all) AND f = :f";
    let found = scan(sql, Syntax::Postgres).unwrap();
    let contexts: Vec<Context> = found.placeholders.iter().map(|p| p.context).collect();
    let not_at = sql.find("NOT").unwrap();
    let ids_close = sql.find(":ids)").unwrap() + 5;
    let in_at = sql.find("in(").unwrap();
    let x_close = sql.find(":x )").unwrap() + 4;
    let c_in = sql.find("IN (:p").unwrap();
    assert_eq!(
        contexts,
        [
            Context::In {
                negated: true,
                start: not_at,
                close: Some(ids_close)
            },
            Context::In {
                negated: false,
                start: in_at,
                close: Some(x_close)
            },
            Context::In {
                negated: false,
                start: c_in,
                close: None
            },
            Context::Other,
            Context::Array,
            Context::Array,
            Context::Other,
        ]
    );
}

#[test]
fn a_name_running_into_other_identifier_characters_is_an_error() {
    for (sql, shown) in [("SELECT :prénom", "'é'"), ("SELECT :a$b", "'$'")] {
        for syntax in ALL {
            let err = scan(sql, syntax).unwrap_err();
            assert!(err.to_string().ends_with(&format!(
                "runs into {shown}: placeholder names are ASCII letters, digits and underscores"
            )));
        }
    }
}
