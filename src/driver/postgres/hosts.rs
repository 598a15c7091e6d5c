//! Multi-host URLs, walked by sqlaio itself: one host at a time, each under
//! its own connect timeout, in the URL's order or shuffled
//! (`load_balance_hosts=random`), keeping the first whose role fits
//! `target_session_attrs`. Knowing which host a connection reached, the
//! driver sends its cancels there only, names it in errors, and reports it
//! as [`ServerInfo`].
//!
//! Hosts found down or in the wrong role are remembered, process-wide, for
//! [`RECHECK`]: they are tried last until then, so a new connection does
//! not pay a dead host's connect timeout again.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use postgres::Client;
use tokio_postgres::config::Host;

use super::connect::connect;
use super::options::PgConfig;
use crate::server::{ServerInfo, ServerRole};

/// How long a host found down or in the wrong role is tried last.
pub(crate) const RECHECK: Duration = Duration::from_secs(2);

/// libpq's `target_session_attrs`: what a host must be to be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionAttrs {
    /// Any host that accepts the connection.
    Any,
    /// A host that accepts writes (a primary whose `transaction_read_only` is off).
    ReadWrite,
    /// A host that does not accept writes.
    ReadOnly,
    /// A server not in recovery.
    Primary,
    /// A server in recovery.
    Standby,
    /// A standby if one answers, any host otherwise.
    PreferStandby,
}

impl SessionAttrs {
    /// Parses the option's value.
    pub(crate) fn parse(value: &str) -> Option<SessionAttrs> {
        Some(match value {
            "any" => SessionAttrs::Any,
            "read-write" => SessionAttrs::ReadWrite,
            "read-only" => SessionAttrs::ReadOnly,
            "primary" => SessionAttrs::Primary,
            "standby" => SessionAttrs::Standby,
            "prefer-standby" => SessionAttrs::PreferStandby,
            _ => return None,
        })
    }

    /// `true` when a host of this state fits.
    fn fits(self, state: State) -> bool {
        match self {
            SessionAttrs::Any | SessionAttrs::PreferStandby => true,
            SessionAttrs::ReadWrite => state.role == ServerRole::Primary && !state.read_only,
            SessionAttrs::ReadOnly => state.role == ServerRole::Standby || state.read_only,
            SessionAttrs::Primary => state.role == ServerRole::Primary,
            SessionAttrs::Standby => state.role == ServerRole::Standby,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SessionAttrs::Any => "any",
            SessionAttrs::ReadWrite => "read-write",
            SessionAttrs::ReadOnly => "read-only",
            SessionAttrs::Primary => "primary",
            SessionAttrs::Standby => "standby",
            SessionAttrs::PreferStandby => "prefer-standby",
        }
    }
}

/// What a host was found to be after login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    role: ServerRole,
    /// `transaction_read_only` was on.
    read_only: bool,
}

/// One host of the URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) host: Host,
    pub(crate) port: u16,
    /// The URL's `hostaddr` for this host, if any.
    pub(crate) addr: Option<std::net::IpAddr>,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Tcp(h) if h.contains(':') => write!(f, "[{h}]:{}", self.port),
            Host::Tcp(h) => write!(f, "{h}:{}", self.port),
            #[cfg(unix)]
            Host::Unix(p) => write!(f, "{}:{}", p.display(), self.port),
        }
    }
}

impl Endpoint {
    fn name(&self) -> String {
        match &self.host {
            Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            Host::Unix(p) => p.display().to_string(),
        }
    }
}

/// What the process last learned of a host.
#[derive(Clone, Copy)]
enum Known {
    Down,
    Was(State),
}

/// What the process learned of each host, by database and `host:port`.
type KnownHosts = HashMap<(String, String), (Instant, Known)>;

fn known() -> &'static Mutex<KnownHosts> {
    static KNOWN: OnceLock<Mutex<KnownHosts>> = OnceLock::new();
    KNOWN.get_or_init(Default::default)
}

fn remember(db: &str, endpoint: &Endpoint, what: Known) {
    let mut map = known().lock().unwrap_or_else(|e| e.into_inner());
    map.retain(|_, (at, _)| at.elapsed() < RECHECK);
    map.insert((db.to_owned(), endpoint.to_string()), (Instant::now(), what));
}

/// `true` when the host was recently found down or not fitting `attrs`.
fn avoid(db: &str, endpoint: &Endpoint, attrs: SessionAttrs) -> bool {
    let map = known().lock().unwrap_or_else(|e| e.into_inner());
    match map.get(&(db.to_owned(), endpoint.to_string())) {
        Some((at, Known::Down)) => at.elapsed() < RECHECK,
        Some((at, Known::Was(state))) => at.elapsed() < RECHECK && !attrs.fits(*state),
        None => false,
    }
}

/// No host of the URL fit: each host's outcome, for the message. A
/// transient connect error: a promotion is ridden out by retrying it.
#[derive(Debug)]
pub(crate) struct NoHost {
    pub(crate) attrs: &'static str,
    pub(crate) tried: Vec<(String, String)>,
}

impl fmt::Display for NoHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no host fits target_session_attrs={}:", self.attrs)?;
        for (i, (host, outcome)) in self.tried.iter().enumerate() {
            let sep = if i == 0 { " " } else { "; " };
            write!(f, "{sep}{host} {outcome}")?;
        }
        Ok(())
    }
}

impl std::error::Error for NoHost {}

/// The URL's hosts with their ports, in the URL's order.
pub(crate) fn endpoints(config: &PgConfig) -> Vec<Endpoint> {
    let hosts = config.client.get_hosts();
    let ports = config.client.get_ports();
    let port = |i: usize| match ports.len() {
        0 => 5432,
        1 => ports[0],
        _ => ports.get(i).copied().unwrap_or(5432),
    };
    let addrs = config.client.get_hostaddrs();
    if hosts.is_empty() {
        return vec![Endpoint {
            host: Host::Tcp("localhost".into()),
            port: port(0),
            addr: addrs.first().copied(),
        }];
    }
    hosts
        .iter()
        .enumerate()
        .map(|(i, host)| Endpoint {
            host: host.clone(),
            port: port(i),
            addr: addrs.get(i).copied(),
        })
        .collect()
}

/// A connection to one host, and what it is.
pub(crate) struct Reached {
    pub(crate) client: Client,
    /// The configuration narrowed to the host reached (cancels go there).
    pub(crate) config: PgConfig,
    pub(crate) server: ServerInfo,
}

/// The error of [`open`]: the last host's driver error when there was one
/// host, else [`NoHost`]; and the host it names.
pub(crate) struct Failed {
    pub(crate) host: String,
    pub(crate) error: Box<dyn std::error::Error + Send + Sync>,
}

/// Walks the URL's hosts for the first that fits its `target_session_attrs`.
///
/// # Errors
/// [`Failed`]: one host's error, or [`NoHost`] listing each host's outcome.
pub(crate) fn open(config: &PgConfig) -> Result<Reached, Failed> {
    let db = config.client.get_dbname().unwrap_or("").to_owned();
    let mut order = endpoints(config);
    if config.random_hosts {
        shuffle(&mut order);
    }
    // Hosts recently found down or in the wrong role go last.
    let attrs = config.attrs;
    let (mut fresh, stale): (Vec<_>, Vec<_>) =
        order.into_iter().partition(|e| !avoid(&db, e, attrs));
    fresh.extend(stale);
    let single = fresh.len() == 1;
    let mut tried = Vec::new();
    let mut fallback: Option<Reached> = None;
    for endpoint in fresh {
        let narrowed = config.narrowed(&endpoint);
        let mut client = match connect(&narrowed) {
            Ok(client) => client,
            Err(e) => {
                if e.as_db_error().is_none() {
                    remember(&db, &endpoint, Known::Down);
                }
                if single {
                    return Err(Failed {
                        host: endpoint.to_string(),
                        error: Box::new(e),
                    });
                }
                tried.push((endpoint.to_string(), format!("failed: {e}")));
                continue;
            }
        };
        let state = {
            match probe(&mut client) {
                Ok(state) => Some(state),
                Err(e) => {
                    if single {
                        return Err(Failed {
                            host: endpoint.to_string(),
                            error: Box::new(e),
                        });
                    }
                    tried.push((endpoint.to_string(), format!("failed: {e}")));
                    continue;
                }
            }
        };
        if let Some(state) = state {
            remember(&db, &endpoint, Known::Was(state));
        }
        let server = ServerInfo {
            host: endpoint.name(),
            port: endpoint.port,
            role: state.map(|s| s.role),
        };
        let reached = Reached {
            client,
            config: narrowed,
            server,
        };
        match state {
            Some(state) if !attrs.fits(state) => {
                tried.push((
                    endpoint.to_string(),
                    format!(
                        "is {}",
                        match (state.role, state.read_only) {
                            (ServerRole::Standby, _) => "a standby",
                            (ServerRole::Primary, true) => "a read-only primary",
                            (ServerRole::Primary, false) => "a primary",
                        }
                    ),
                ));
                continue;
            }
            Some(state)
                if attrs == SessionAttrs::PreferStandby && state.role != ServerRole::Standby =>
            {
                tried.push((endpoint.to_string(), "is a primary".into()));
                fallback.get_or_insert(reached);
                continue;
            }
            _ => return Ok(reached),
        }
    }
    if let Some(reached) = fallback {
        return Ok(reached);
    }
    Err(Failed {
        host: tried
            .iter()
            .map(|(h, _)| h.as_str())
            .collect::<Vec<_>>()
            .join(","),
        error: Box::new(NoHost {
            attrs: attrs.name(),
            tried,
        }),
    })
}

/// Asks a fresh session whether its server is in recovery and read-only (one round trip).
fn probe(client: &mut Client) -> Result<State, postgres::Error> {
    let messages =
        client.simple_query("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")?;
    let row = messages.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    });
    let (recovery, read_only) = row.map_or((None, None), |r| (r.get(0), r.get(1)));
    Ok(State {
        role: if recovery == Some("t") {
            ServerRole::Standby
        } else {
            ServerRole::Primary
        },
        read_only: read_only == Some("on"),
    })
}

/// A Fisher-Yates shuffle on a cheap seed: the order only spreads load.
fn shuffle<T>(items: &mut [T]) {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut seed = {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish() | 1
    };
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let j = (seed % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_parse_and_fit_as_in_libpq() {
        let primary = State {
            role: ServerRole::Primary,
            read_only: false,
        };
        let standby = State {
            role: ServerRole::Standby,
            read_only: true,
        };
        let rw = SessionAttrs::parse("read-write").unwrap();
        assert!(rw.fits(primary) && !rw.fits(standby));
        let ro = SessionAttrs::parse("read-only").unwrap();
        assert!(!ro.fits(primary) && ro.fits(standby));
        assert!(SessionAttrs::parse("standby").unwrap().fits(standby));
        assert!(SessionAttrs::parse("prefer-standby").unwrap().fits(primary));
        assert!(SessionAttrs::parse("sometimes").is_none());
    }

    #[test]
    fn hosts_pair_with_their_ports() {
        let c = PgConfig::parse("postgres://u@a:1,b:2,c/db").unwrap();
        let e: Vec<String> = endpoints(&c).iter().map(|e| e.to_string()).collect();
        assert_eq!(e, ["a:1", "b:2", "c:5432"]);
        let c = PgConfig::parse("host=a,b port=7 user=u").unwrap();
        let e: Vec<String> = endpoints(&c).iter().map(|e| e.to_string()).collect();
        assert_eq!(e, ["a:7", "b:7"]);
    }

    #[test]
    fn no_fitting_host_names_each_and_is_transient() {
        use crate::driver::Driver;
        // Nothing listens on ports 1 and 2 of the loopback address.
        let url = "postgres://u@127.0.0.1:1,127.0.0.1:2/db?target_session_attrs=read-write&connect_timeout=1";
        let config = PgConfig::parse(url).unwrap();
        let Err(e) = super::super::PostgresDriver::open(&config) else {
            panic!("connected to nothing");
        };
        let shown = e.to_string();
        assert!(shown.contains("127.0.0.1:1,127.0.0.1:2"), "{shown}");
        let crate::error::Error::Connect { source, .. } = &e else {
            panic!("{e:?}");
        };
        let source = source.to_string();
        assert!(source.contains("no host fits target_session_attrs=read-write"), "{source}");
        assert!(source.contains("127.0.0.1:2 failed"), "{source}");
        assert!(super::super::PostgresDriver::is_transient(&e));
        assert!(avoid("db", &endpoints(&config)[0], SessionAttrs::Any));
    }

    #[test]
    fn a_shuffle_keeps_every_host() {
        let mut v: Vec<u32> = (0..10).collect();
        shuffle(&mut v);
        v.sort_unstable();
        assert_eq!(v, (0..10).collect::<Vec<_>>());
    }
}
