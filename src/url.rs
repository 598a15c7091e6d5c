//! Database URLs as messages show them: with any password redacted.

/// The URL with any password replaced by `***`, for `Debug`, logs and errors.
pub(crate) fn redact(url: &str) -> String {
    // scheme://user:password@host...
    let Some(scheme_end) = url.find("://") else {
        return redact_key_value(url);
    };
    let after = &url[scheme_end + 3..];
    let authority_end = after.find(['/', '?']).unwrap_or(after.len());
    let authority = &after[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[scheme_end + 3 + at..]
                ),
                None => redact_key_value(url),
            }
        }
        None => redact_key_value(url),
    }
}

/// Redacts `password=...` in a key-value connection string, and in URL query strings.
fn redact_key_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("password=") {
        let at_boundary = i == 0 || matches!(rest.as_bytes()[i - 1], b' ' | b'?' | b'&');
        out.push_str(&rest[..i + "password=".len()]);
        rest = &rest[i + "password=".len()..];
        if at_boundary {
            let end = if let Some(quoted) = rest.strip_prefix('\'') {
                quoted.find('\'').map_or(rest.len(), |e| e + 2)
            } else {
                rest.find([' ', '&']).unwrap_or(rest.len())
            };
            out.push_str("***");
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// `url` with a sqlaio PostgreSQL option added: to the query of a URL, or
/// to a `key=value` connection string. Any other URL is returned as it is
/// (the option only applies to PostgreSQL).
pub(crate) fn with_pg_option(url: &str, key: &str, value: &str) -> String {
    let lower = url.trim_start().to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{key}={value}")
    } else if !url.contains("://") && !lower.starts_with("sqlite") && url.contains('=') {
        format!("{url} {key}={value}")
    } else {
        url.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://dana:s3cret@db:5432/app"),
            "postgres://dana:***@db:5432/app"
        );
        assert_eq!(redact("postgres://dana@db/app"), "postgres://dana@db/app");
        assert_eq!(redact("sqlite://app.db"), "sqlite://app.db");
        assert_eq!(
            redact("host=db user=dana password=s3cret dbname=app"),
            "host=db user=dana password=*** dbname=app"
        );
        assert_eq!(
            redact("host=db password='a b' user=x"),
            "host=db password=*** user=x"
        );
        assert_eq!(
            redact("postgres://db/app?user=x&password=s3cret&sslmode=require"),
            "postgres://db/app?user=x&password=***&sslmode=require"
        );
    }

    #[test]
    fn pg_options_are_added_to_postgres_urls_only() {
        assert_eq!(
            with_pg_option("postgres://u@h/db", "read_only", "true"),
            "postgres://u@h/db?read_only=true"
        );
        assert_eq!(
            with_pg_option("postgresql://u@a,b/db?sslmode=disable", "k", "v"),
            "postgresql://u@a,b/db?sslmode=disable&k=v"
        );
        assert_eq!(
            with_pg_option("host=h user=u", "k", "v"),
            "host=h user=u k=v"
        );
        assert_eq!(
            with_pg_option("sqlite::memory:", "k", "v"),
            "sqlite::memory:"
        );
        assert_eq!(with_pg_option("mysql://u@h/db", "k", "v"), "mysql://u@h/db");
    }
}
