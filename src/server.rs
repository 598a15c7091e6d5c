//! Which database server a connection reached: leaf types, filled in by the
//! drivers that know (PostgreSQL, which walks multi-host URLs itself).

use std::fmt;

/// What a server was found to be when the connection logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerRole {
    /// A server that is not in recovery (it can take writes, unless its
    /// `default_transaction_read_only` is on).
    Primary,
    /// A server in recovery: a streaming standby, read-only.
    Standby,
}

/// The server a connection reached: its host, port and role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ServerInfo {
    /// The host name, address or socket directory, as the URL gave it.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The server's role when the connection logged in; `None` when it was
    /// not asked.
    pub role: Option<ServerRole>,
}

impl fmt::Display for ServerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        match self.role {
            Some(ServerRole::Primary) => write!(f, " (primary)"),
            Some(ServerRole::Standby) => write!(f, " (standby)"),
            None => Ok(()),
        }
    }
}
