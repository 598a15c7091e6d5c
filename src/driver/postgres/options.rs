//! A PostgreSQL URL or key-value connection string, parsed: the options
//! sqlaio reads itself, the rest left to `tokio_postgres::Config`, and the
//! defaults that bound how long a dead connection can hold a call.
//!
//! tokio-postgres knows only `sslmode=disable|prefer|require` and reads
//! `tcp_user_timeout` in seconds, where libpq reads milliseconds. sqlaio
//! takes `sslmode`, `sslrootcert`, `sslcert`, `sslkey` and
//! `tcp_user_timeout` out of the string before tokio-postgres parses the
//! rest, and gives them libpq's meaning.

use std::fmt;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use tokio_postgres::config::Host;

use super::hosts::{Endpoint, SessionAttrs};
use super::tls::{SslMode, Tls, TlsFiles};
use crate::error::{Error, Result};

/// Per host: how long opening the TCP connection may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time on a connection before the first keepalive probe.
pub(crate) const KEEPALIVES_IDLE: Duration = Duration::from_secs(15);
/// Between keepalive probes.
pub(crate) const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered probes before the system gives up (when no `tcp_user_timeout` decides first).
pub(crate) const KEEPALIVES_RETRIES: u32 = 3;
/// How long sent data may stay unacknowledged (and keepalive probes
/// unanswered) before the socket fails.
pub(crate) const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// Options tokio-postgres parses itself that sqlaio gives a default to:
/// when the URL names one, its value stands.
const DEFAULTED: [&str; 5] = [
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
];

/// A parsed PostgreSQL URL: the client's settings and TLS.
#[derive(Clone)]
pub(crate) struct PgConfig {
    /// Everything but TLS; its `ssl_mode` is the first attempt's (see [`SslMode::wire`]).
    pub(super) client: tokio_postgres::Config,
    /// The sslmode and the connector that carries it out.
    pub(super) tls: Tls,
    /// `target_session_attrs`, walked by sqlaio (see `hosts`).
    pub(super) attrs: SessionAttrs,
    /// `load_balance_hosts=random`: try the hosts in a random order.
    pub(super) random_hosts: bool,
    /// sqlaio's `prepared_statements` (default `true`): `false` runs every
    /// statement unnamed, in one round trip, for transaction poolers.
    pub(super) prepared: bool,
    /// sqlaio's `read_only` (default `false`): every transaction of the
    /// session is read-only (`default_transaction_read_only`).
    pub(super) read_only: bool,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio-postgres prints a password as `_`.
        f.debug_struct("PgConfig")
            .field("client", &self.client)
            .field("tls", &self.tls)
            .field("target_session_attrs", &self.attrs)
            .field("random_hosts", &self.random_hosts)
            .field("prepared_statements", &self.prepared)
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// What sqlaio takes out of the string before tokio-postgres sees it.
#[derive(Default)]
struct Own {
    sslmode: Option<String>,
    files: TlsFiles,
    /// libpq's `tcp_user_timeout`, in milliseconds.
    tcp_user_timeout: Option<String>,
    target_session_attrs: Option<String>,
    load_balance_hosts: Option<String>,
    prepared_statements: Option<String>,
    read_only: Option<String>,
    /// Which of [`DEFAULTED`] the string sets.
    given: Vec<&'static str>,
}

impl Own {
    /// Takes `key = value` if it is one of sqlaio's options; `false` when
    /// tokio-postgres should have it. Notes the options that have defaults.
    fn take(&mut self, key: &str, value: impl FnOnce() -> Result<String>) -> Result<bool> {
        let slot = match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.files.rootcert,
            "sslcert" => &mut self.files.cert,
            "sslkey" => &mut self.files.key,
            "tcp_user_timeout" => &mut self.tcp_user_timeout,
            "target_session_attrs" => &mut self.target_session_attrs,
            "load_balance_hosts" => &mut self.load_balance_hosts,
            "prepared_statements" => &mut self.prepared_statements,
            "read_only" => &mut self.read_only,
            _ => {
                if let Some(known) = DEFAULTED.iter().find(|k| **k == key) {
                    self.given.push(known);
                }
                return Ok(false);
            }
        };
        *slot = Some(value()?);
        Ok(true)
    }
}

impl PgConfig {
    /// Parses a `postgres://` URL or a `key=value` connection string.
    ///
    /// # Errors
    /// [`Error::Config`] naming what is wrong: a malformed string, an
    /// unknown option or value, a certificate file that cannot be read, or
    /// a TLS mode this build cannot honour.
    pub(crate) fn parse(url: &str) -> Result<PgConfig> {
        let invalid = |e: &dyn fmt::Display| {
            Error::Config(format!(
                "invalid PostgreSQL URL {:?}: {e}",
                crate::url::redact(url)
            ))
        };
        let mut own = Own::default();
        let rest = if url.contains("://") {
            split_url(url, &mut own)
        } else {
            split_key_value(url, &mut own)
        }
        .map_err(|e| invalid(&e))?;
        let mut client: tokio_postgres::Config = rest.parse().map_err(|e| invalid(&e))?;

        let mode = match &own.sslmode {
            Some(mode) => SslMode::parse(mode).map_err(|e| invalid(&e))?,
            None => SslMode::Prefer,
        };
        client.ssl_mode(mode.wire());
        if let Some(ms) = &own.tcp_user_timeout {
            let ms: i64 = ms
                .trim()
                .parse()
                .map_err(|_| invalid(&"tcp_user_timeout must be a number of milliseconds"))?;
            // As in libpq, 0 (or less) leaves the system's default.
            if ms > 0 {
                client.tcp_user_timeout(Duration::from_millis(ms.unsigned_abs()));
            }
        } else {
            client.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        defaults(&mut client, &own.given);
        let attrs = match own.target_session_attrs.as_deref() {
            None => SessionAttrs::Any,
            Some(v) => SessionAttrs::parse(v).ok_or_else(|| {
                invalid(&"target_session_attrs must be any, read-write, read-only, primary, standby or prefer-standby")
            })?,
        };
        let random_hosts = match own.load_balance_hosts.as_deref() {
            None | Some("disable") => false,
            Some("random") => true,
            Some(_) => return Err(invalid(&"load_balance_hosts must be disable or random")),
        };
        let flag = |name: &str, value: &Option<String>, default: bool| match value.as_deref() {
            None => Ok(default),
            Some("true" | "on" | "1" | "yes") => Ok(true),
            Some("false" | "off" | "0" | "no") => Ok(false),
            Some(_) => Err(invalid(&format!("{name} must be true or false"))),
        };
        let prepared = flag("prepared_statements", &own.prepared_statements, true)?;
        let read_only = flag("read_only", &own.read_only, false)?;
        let tls = Tls::new(mode, own.files)?;
        Ok(PgConfig {
            client,
            tls,
            attrs,
            random_hosts,
            prepared,
            read_only,
        })
    }

    /// This configuration with `endpoint` as its only host.
    pub(super) fn narrowed(&self, endpoint: &Endpoint) -> PgConfig {
        let c = &self.client;
        let mut n = tokio_postgres::Config::new();
        match &endpoint.host {
            Host::Tcp(h) => n.host(h),
            #[cfg(unix)]
            Host::Unix(p) => n.host_path(p),
        };
        if let Some(addr) = endpoint.addr {
            n.hostaddr(addr);
        }
        n.port(endpoint.port);
        if let Some(v) = c.get_user() {
            n.user(v);
        }
        if let Some(v) = c.get_password() {
            n.password(v);
        }
        if let Some(v) = c.get_dbname() {
            n.dbname(v);
        }
        if let Some(v) = c.get_options() {
            n.options(v);
        }
        if let Some(v) = c.get_application_name() {
            n.application_name(v);
        }
        n.ssl_mode(c.get_ssl_mode());
        n.ssl_negotiation(c.get_ssl_negotiation());
        if let Some(v) = c.get_connect_timeout() {
            n.connect_timeout(*v);
        }
        if let Some(v) = c.get_tcp_user_timeout() {
            n.tcp_user_timeout(*v);
        }
        n.keepalives(c.get_keepalives());
        n.keepalives_idle(c.get_keepalives_idle());
        if let Some(v) = c.get_keepalives_interval() {
            n.keepalives_interval(v);
        }
        if let Some(v) = c.get_keepalives_retries() {
            n.keepalives_retries(v);
        }
        n.channel_binding(c.get_channel_binding());
        PgConfig {
            client: n,
            tls: self.tls.clone(),
            attrs: SessionAttrs::Any,
            random_hosts: false,
            prepared: self.prepared,
            read_only: self.read_only,
        }
    }

    /// The settings for the `postgres` crate's client, with `mode`'s wire
    /// setting.
    pub(super) fn sync_config(&self, mode: tokio_postgres::config::SslMode) -> postgres::Config {
        let mut client = self.client.clone();
        client.ssl_mode(mode);
        postgres::Config::from(client)
    }

    /// [`describe`](PgConfig::describe) with `hosts` (`host:port,...`) for the hosts.
    pub(super) fn describe_host(&self, hosts: &str) -> String {
        format!(
            "postgres://{}@{hosts}/{}",
            self.client.get_user().unwrap_or(""),
            self.client.get_dbname().unwrap_or("")
        )
    }

    /// `postgres://user@host:port/db` for messages, never with the password.
    pub(super) fn describe(&self) -> String {
        let host = match self.client.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.client.get_ports().first().copied().unwrap_or(5432);
        format!(
            "postgres://{}@{host}:{port}/{}",
            self.client.get_user().unwrap_or(""),
            self.client.get_dbname().unwrap_or("")
        )
    }
}

/// Sets sqlaio's defaults for the options the string did not set.
fn defaults(client: &mut tokio_postgres::Config, given: &[&str]) {
    let unset = |key: &str| !given.contains(&key);
    if unset("connect_timeout") {
        client.connect_timeout(CONNECT_TIMEOUT);
    }
    if unset("keepalives") {
        client.keepalives(true);
    }
    if unset("keepalives_idle") {
        client.keepalives_idle(KEEPALIVES_IDLE);
    }
    if unset("keepalives_interval") {
        client.keepalives_interval(KEEPALIVES_INTERVAL);
    }
    if unset("keepalives_retries") {
        client.keepalives_retries(KEEPALIVES_RETRIES);
    }
}

/// Takes sqlaio's options out of a URL's query; returns the URL without them.
///
/// The query is split as tokio-postgres splits it (`&` between options,
/// the first `=` in each) and decoded as it decodes it, with
/// percent-decoding only: a `+` stays a `+`, as in libpq (form encoding,
/// where `+` is a space, would change a file name). Options that are not
/// sqlaio's are passed on exactly as written.
fn split_url(url: &str, own: &mut Own) -> Result<String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok(url.to_owned());
    };
    let decode = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|e| Error::Config(format!("an option is not UTF-8 once decoded: {e}")))
    };
    let mut kept = Vec::new();
    for option in query.split('&').filter(|o| !o.is_empty()) {
        let Some((key, value)) = option.split_once('=') else {
            kept.push(option);
            continue;
        };
        if !own.take(&decode(key)?, || decode(value))? {
            kept.push(option);
        }
    }
    Ok(if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    })
}

/// Takes sqlaio's options out of a `key=value` connection string; returns
/// the others, quoted so that tokio-postgres reads the same values back.
fn split_key_value(s: &str, own: &mut Own) -> Result<String> {
    let mut kept = String::new();
    for (key, value) in key_values(s)? {
        if !own.take(&key, || Ok(value.clone()))? {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push_str(&format!("{key}='{quoted}' "));
        }
    }
    Ok(kept)
}

/// The `key=value` pairs of a connection string, read as libpq (and
/// tokio-postgres) read them: blanks between pairs and around `=`, a value
/// in single quotes or up to the next blank, `\` escaping the next character.
fn key_values(s: &str) -> Result<Vec<(String, String)>> {
    let bad = |what: &str| Error::Config(format!("malformed connection string: {what}"));
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(bad(&format!("expected `=` after {key:?}")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return Err(bad(&format!("unterminated quoted value of {key:?}"))),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return Err(bad(&format!("no value for {key:?}")));
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> PgConfig {
        PgConfig::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn defaults_bound_a_dead_connection_unless_the_url_says_otherwise() {
        let c = parse("postgres://u@h/db").client;
        assert_eq!(c.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(c.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert!(c.get_keepalives());
        assert_eq!(c.get_keepalives_idle(), KEEPALIVES_IDLE);
        assert_eq!(c.get_keepalives_interval(), Some(KEEPALIVES_INTERVAL));
        assert_eq!(c.get_keepalives_retries(), Some(KEEPALIVES_RETRIES));

        let c = parse(
            "postgres://u@h/db?connect_timeout=3&keepalives_idle=1&keepalives_interval=2\
             &keepalives_retries=7&tcp_user_timeout=2500&application_name=x",
        )
        .client;
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(1));
        assert_eq!(c.get_keepalives_interval(), Some(Duration::from_secs(2)));
        assert_eq!(c.get_keepalives_retries(), Some(7));
        // Milliseconds, as in libpq (tokio-postgres would read seconds).
        assert_eq!(c.get_tcp_user_timeout(), Some(&Duration::from_millis(2500)));

        let c = parse("postgres://u@h/db?keepalives=0&connect_timeout=0&tcp_user_timeout=0").client;
        assert!(!c.get_keepalives());
        assert_eq!(c.get_connect_timeout(), None);
        assert_eq!(c.get_tcp_user_timeout(), None);

        let c = parse("host=h user=u tcp_user_timeout = 1500 keepalives_idle=4").client;
        assert_eq!(c.get_tcp_user_timeout(), Some(&Duration::from_millis(1500)));
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(4));
        assert_eq!(c.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
    }

    #[test]
    fn sqlaio_options_are_taken_out_and_the_rest_passed_on_as_written() {
        let mut own = Own::default();
        let rest = split_url(
            "postgres://u:p%40ss@h:1/db?options=-c%20search_path%3Da+b&sslmode=verify-full\
             &sslrootcert=%2Ftmp%2Fa+b.pem&application_name=x",
            &mut own,
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p%40ss@h:1/db?options=-c%20search_path%3Da+b&application_name=x"
        );
        assert_eq!(own.sslmode.as_deref(), Some("verify-full"));
        // A `+` is a `+`, as libpq reads it.
        assert_eq!(own.files.rootcert.as_deref(), Some("/tmp/a+b.pem"));

        let mut own = Own::default();
        let rest = split_key_value(
            r"host=h  user = 'd\'a n'  sslmode=verify-ca sslrootcert='/a b/ca.pem' password=x\ y",
            &mut own,
        )
        .unwrap();
        assert_eq!(own.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(own.files.rootcert.as_deref(), Some("/a b/ca.pem"));
        let c: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(c.get_user(), Some("d'a n"));
        assert_eq!(c.get_password(), Some(&b"x y"[..]));
    }

    #[test]
    fn malformed_strings_and_values_say_what_is_wrong_without_the_password() {
        let error = |url: &str| PgConfig::parse(url).unwrap_err().to_string();
        let e = error("postgres://u:s3cret@h/db?sslmode=sometimes");
        assert!(e.contains("sslmode"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let e = error("host=h password=s3cret tcp_user_timeout=soon");
        assert!(e.contains("tcp_user_timeout"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let e = error("host=h user='unterminated");
        assert!(e.contains("unterminated"), "{e}");
        let e = error("postgres://u@h/db?nonsense=1");
        assert!(e.contains("nonsense"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = parse("postgres://u:s3cret@h/db?sslmode=disable");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("Disable"), "{shown}");
    }
}
