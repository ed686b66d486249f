//! Remote workers' configuration: where to dial them ([`Endpoint`]), the
//! shared secret that authenticates both sides ([`Secret`]), and the socket
//! settings that bound how long a vanished peer goes unnoticed
//! ([`RemotePolicy`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::Error;

/// Where a remote worker listens: `tcp://HOST:PORT` or `unix:/path/to.sock`.
///
/// The transport is chosen by the URL's scheme; a new one (TLS, say) is a new
/// variant whose dialer returns a byte stream: everything past the dial
/// (authentication, framing, calls) works on any stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// A TCP listener, by host name or address and port.
    Tcp {
        /// The host name or IP address (IPv6 without brackets).
        host: String,
        /// The port.
        port: u16,
    },
    /// A Unix domain socket.
    Unix(PathBuf),
}

impl Endpoint {
    /// Parses `tcp://HOST:PORT` (`tcp://[::1]:7001` for IPv6) or `unix:/path`
    /// (also `unix:///path`).
    ///
    /// # Errors
    /// [`Error::InvalidEndpoint`] naming the URL and what is wrong with it.
    pub fn parse(url: &str) -> Result<Endpoint, Error> {
        let invalid = |problem: &'static str| Error::InvalidEndpoint {
            url: url.to_string(),
            problem,
        };
        if let Some(rest) = url.strip_prefix("tcp://") {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
                let (host, after) = v6
                    .split_once(']')
                    .ok_or_else(|| invalid("has an unclosed `[` around its host"))?;
                let port = after
                    .strip_prefix(':')
                    .ok_or_else(|| invalid("needs a port: tcp://HOST:PORT"))?;
                (host, port)
            } else {
                rest.rsplit_once(':')
                    .ok_or_else(|| invalid("needs a port: tcp://HOST:PORT"))?
            };
            if host.is_empty() {
                return Err(invalid("needs a host: tcp://HOST:PORT"));
            }
            let port: u16 = port
                .parse()
                .map_err(|_| invalid("has a port that is not a number from 1 to 65535"))?;
            if port == 0 {
                return Err(invalid("has a port that is not a number from 1 to 65535"));
            }
            return Ok(Endpoint::Tcp {
                host: host.to_string(),
                port,
            });
        }
        if let Some(rest) = url.strip_prefix("unix:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(invalid("needs a socket path: unix:/path/to.sock"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        Err(invalid("must start with tcp:// or unix:"))
    }

    /// Whether this is a TCP endpoint (which needs a secret, or an explicit
    /// opt-out on the worker's side).
    pub fn is_tcp(&self) -> bool {
        matches!(self, Endpoint::Tcp { .. })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = Error;

    fn from_str(url: &str) -> Result<Endpoint, Error> {
        Endpoint::parse(url)
    }
}

/// The secret a bridge and its remote workers share. It never crosses the
/// wire: each side proves it knows it with an HMAC-SHA256 over nonces from
/// both sides (see `docs/protocol.md`). `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// A secret from its bytes.
    ///
    /// # Errors
    /// [`Error::InvalidSecret`] when it is empty.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Secret, Error> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(Error::InvalidSecret {
                problem: "the secret is empty".into(),
            });
        }
        Ok(Secret(bytes.into()))
    }

    /// Reads a secret file: its bytes without trailing whitespace (so the
    /// newline an editor adds is not part of the secret). A blocking read,
    /// meant for configuration time.
    ///
    /// # Errors
    /// [`Error::InvalidSecret`] when the file cannot be read or holds nothing.
    pub fn from_file(path: &Path) -> Result<Secret, Error> {
        let bytes = std::fs::read(path).map_err(|err| Error::InvalidSecret {
            problem: format!("cannot read the secret file {}: {err}", path.display()).into(),
        })?;
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        Secret::new(&bytes[..end]).map_err(|_| Error::InvalidSecret {
            problem: format!("the secret file {} is empty", path.display()).into(),
        })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How remote workers are dialled and watched.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemotePolicy {
    /// How long a dial may take, before authentication (default 5 s).
    pub connect_timeout: Duration,
    /// Idle time before TCP keepalive probes start; probes then follow at a
    /// third of it (default 10 s).
    pub keepalive: Duration,
    /// `TCP_USER_TIMEOUT`: how long written data may stay unacknowledged
    /// before the kernel drops the connection (default 20 s). With the
    /// keepalive it bounds how long a vanished peer goes unnoticed.
    pub user_timeout: Duration,
}

impl Default for RemotePolicy {
    fn default() -> Self {
        RemotePolicy {
            connect_timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(10),
            user_timeout: Duration::from_secs(20),
        }
    }
}

impl RemotePolicy {
    /// Sets `connect_timeout`: how long a dial may take.
    pub fn connect_timeout(mut self, value: Duration) -> Self {
        self.connect_timeout = value;
        self
    }

    /// Sets `keepalive`: idle time before keepalive probes.
    pub fn keepalive(mut self, value: Duration) -> Self {
        self.keepalive = value;
        self
    }

    /// Sets `user_timeout`: how long written data may stay unacknowledged.
    pub fn user_timeout(mut self, value: Duration) -> Self {
        self.user_timeout = value;
        self
    }
}
