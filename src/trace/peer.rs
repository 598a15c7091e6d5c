//! What spans and metrics say about where an engine's connections go:
//! `db.namespace`, `server.address`, `server.port`, read once per engine
//! from its URL. Credentials and query options are never kept.

// Used by spans (feature `tracing`) or metrics (feature `metrics`).
#![cfg_attr(not(all(feature = "tracing", feature = "metrics")), allow(dead_code))]

/// The database and server of an engine, as its spans show them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Peer {
    /// The database name, or the SQLite file (`:memory:` for a memory database).
    pub(crate) namespace: Option<String>,
    /// The server's host name or address (the first one of a multi-host URL).
    pub(crate) address: Option<String>,
    /// The server's port: the URL's, or the system's default.
    pub(crate) port: Option<u16>,
}

impl Peer {
    /// Reads `url` (passwords already redacted or not: they are skipped)
    /// for a database of `system` (`sqlite`, `postgresql`, `mysql`, `mariadb`).
    pub(crate) fn from_url(system: &str, url: &str) -> Peer {
        let url = url.trim();
        let default_port = match system {
            "postgresql" => Some(5432),
            "mysql" | "mariadb" => Some(3306),
            _ => None,
        };
        if system == "sqlite" {
            let Some((_, rest)) = url.split_once(':') else {
                return Peer::default();
            };
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = path.split(['?', '#']).next().unwrap_or_default();
            let path = if path.is_empty() || path.starts_with(":memory:") {
                ":memory:"
            } else {
                path
            };
            return Peer {
                namespace: Some(path.to_owned()),
                ..Peer::default()
            };
        }
        if !url.contains("://") {
            return key_value(url, default_port);
        }
        let Some(after) = url.split_once("://").map(|(_, after)| after) else {
            return Peer::default();
        };
        let authority_end = after.find(['/', '?']).unwrap_or(after.len());
        let authority = &after[..authority_end];
        let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let first = hosts.split(',').next().unwrap_or_default();
        let (address, port) = host_port(first);
        let namespace = after[authority_end..]
            .strip_prefix('/')
            .map(|path| path.split(['?', '#']).next().unwrap_or_default())
            .filter(|db| !db.is_empty());
        Peer {
            namespace: namespace.map(decode),
            address: (!address.is_empty()).then(|| decode(address)),
            port: port.or(default_port),
        }
    }

    /// The pool name used when none is given: the URL without credentials
    /// or options (`postgresql://db.internal:5432/app`, `sqlite:app.db`).
    pub(crate) fn pool_name(&self, system: &str) -> String {
        match (&self.address, &self.namespace) {
            (Some(address), namespace) => format!(
                "{system}://{address}{}/{}",
                self.port.map(|p| format!(":{p}")).unwrap_or_default(),
                namespace.as_deref().unwrap_or_default()
            ),
            (None, Some(namespace)) => format!("{system}:{namespace}"),
            (None, None) => system.to_owned(),
        }
    }
}

/// `host:port`, `[::1]:port` or `host`.
fn host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(v6) = s.strip_prefix('[') {
        if let Some((host, rest)) = v6.split_once(']') {
            return (host, rest.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().ok()),
        _ => (s, None),
    }
}

/// A key-value connection string: `host=... port=... dbname=...`.
fn key_value(s: &str, default_port: Option<u16>) -> Peer {
    let mut peer = Peer::default();
    for pair in s.split_whitespace() {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let value = value.trim_matches('\'');
        match key {
            "host" | "hostaddr" if peer.address.is_none() => {
                peer.address = value.split(',').next().map(str::to_owned);
            }
            "port" => {
                if let Some(port) = value.split(',').next().and_then(|p| p.parse().ok()) {
                    peer.port = Some(port);
                }
            }
            "dbname" => peer.namespace = Some(value.to_owned()),
            _ => {}
        }
    }
    if peer.address.is_some() {
        peer.port = peer.port.or(default_port);
    }
    peer
}

/// Percent-decodes a URL part (a Unix socket directory, a database name).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::Peer;

    fn peer(system: &str, url: &str) -> (Option<String>, Option<String>, Option<u16>) {
        let p = Peer::from_url(system, url);
        (p.namespace, p.address, p.port)
    }

    #[test]
    fn urls_give_namespace_address_and_port_and_never_credentials() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            peer(
                "postgresql",
                "postgres://root:secret@127.0.0.1:5433/test?sslmode=disable"
            ),
            (s("test"), s("127.0.0.1"), Some(5433))
        );
        assert_eq!(
            peer("postgresql", "postgresql://u@h1:5432,h2:5433/app"),
            (s("app"), s("h1"), Some(5432))
        );
        assert_eq!(
            peer("postgresql", "postgres://[::1]/db"),
            (s("db"), s("::1"), Some(5432))
        );
        assert_eq!(
            peer(
                "postgresql",
                "host=db.internal port=6432 user=u password=p dbname=orders"
            ),
            (s("orders"), s("db.internal"), Some(6432))
        );
        assert_eq!(
            peer("mysql", "mysql://root@localhost/shop"),
            (s("shop"), s("localhost"), Some(3306))
        );
        assert_eq!(
            peer("sqlite", "sqlite::memory:"),
            (s(":memory:"), None, None)
        );
        assert_eq!(
            peer("sqlite", "sqlite://data/app.db?mode=ro"),
            (s("data/app.db"), None, None)
        );
        assert_eq!(peer("postgresql", "nonsense"), (None, None, None));
        let name = Peer::from_url("postgresql", "postgres://u:pw@h:5432/d").pool_name("postgresql");
        assert_eq!(name, "postgresql://h:5432/d");
    }
}
