//! What every request passes before a handler reads its body: the `Host`
//! allow-list and the `Origin` check (browsers: CSRF and DNS rebinding), the
//! bearer token. (`POST /rpc` checks its content type itself: see
//! `pybridge::http`.)

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// The checks, built once from the configuration and the bound address.
#[derive(Debug)]
pub(crate) struct Guard {
    hosts: Vec<HostRule>,
    origins: Vec<String>,
    /// The token's digest: comparing digests takes the same time whatever
    /// the presented token's length, and blake3's `Hash` compares in constant time.
    token: Option<blake3::Hash>,
}

/// Whether the request carried the right token (or none is needed); the
/// health handler shows details only to authorized callers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Authorized(pub(crate) bool);

#[derive(Debug, PartialEq)]
enum HostRule {
    /// `"*"`: any host.
    Any,
    /// An IP address literal, with any port.
    AnyIp,
    /// A name or address literal (lower case, IPv6 in brackets) and a port, or any port.
    Name { name: String, port: Option<u16> },
}

impl Guard {
    /// The guard for a gateway bound to `local`: the names of `local` and
    /// `allowed_hosts` pass (see `GatewayConfig::allowed_hosts`).
    pub(crate) fn new(
        local: SocketAddr,
        allowed_hosts: &[String],
        allowed_origins: &[String],
        token: Option<&str>,
    ) -> Guard {
        let mut hosts = default_hosts(local);
        hosts.extend(allowed_hosts.iter().map(|h| parse_rule(h)));
        Guard {
            hosts,
            origins: allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            token: token.map(|t| blake3::hash(t.as_bytes())),
        }
    }

    fn host_allowed(&self, authority: &str) -> bool {
        let Some((host, port)) = split_authority(authority) else {
            return false;
        };
        self.hosts.iter().any(|rule| match rule {
            HostRule::Any => true,
            HostRule::AnyIp => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok(),
            HostRule::Name { name, port: p } => {
                *name == host && p.is_none_or(|p| port_matches(port, p))
            }
        })
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.origins.contains(&origin) {
            return true;
        }
        // A page served under an allowed host name is the gateway's own.
        let authority = match origin.split_once("://") {
            Some(("http", rest)) => with_default_port(rest, 80),
            Some(("https", rest)) => with_default_port(rest, 443),
            _ => return false,
        };
        self.host_allowed(&authority)
    }

    /// Whether the headers carry the token (always true without one).
    pub(crate) fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        presented.is_some_and(|token| blake3::hash(token.as_bytes()) == *expected)
    }
}

/// The middleware: runs before any extractor reads the body.
pub(crate) async fn check(
    State(guard): State<Arc<Guard>>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !host.is_some_and(|h| guard.host_allowed(h)) {
        tracing::debug!(host, "refused: host not allowed");
        return refuse(
            StatusCode::FORBIDDEN,
            "host not allowed (gateway.allowed_hosts)",
        );
    }
    let origin = headers.get(header::ORIGIN);
    if origin.is_some_and(|o| !o.to_str().is_ok_and(|o| guard.origin_allowed(o))) {
        tracing::debug!(?origin, "refused: origin not allowed");
        return refuse(
            StatusCode::FORBIDDEN,
            "origin not allowed (gateway.allowed_origins)",
        );
    }
    let authorized = guard.authorized(headers);
    let path = request.uri().path();
    // /health answers everyone, with details only for the token's holders.
    if !authorized && path != "/health" {
        let mut response = refuse(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    request.extensions_mut().insert(Authorized(authorized));
    next.run(request).await
}

/// A refusal with a JSON-RPC error body, as the `/rpc` client expects.
pub(crate) use pybridge::http::refuse;

fn default_hosts(local: SocketAddr) -> Vec<HostRule> {
    let port = local.port();
    let ip = local.ip();
    let localhost = HostRule::Name {
        name: "localhost".into(),
        port: Some(port),
    };
    if ip.is_unspecified() {
        // Reached by any address, but by no DNS name until one is listed:
        // a rebinding attacker's page sends its own name as the host. Any
        // port, because a published container port or a forward changes it.
        return vec![
            HostRule::AnyIp,
            HostRule::Name {
                name: "localhost".into(),
                port: None,
            },
        ];
    }
    let literal = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let mut rules = vec![HostRule::Name {
        name: literal,
        port: Some(port),
    }];
    if ip.is_loopback() {
        rules.push(localhost);
    }
    rules
}

fn parse_rule(text: &str) -> HostRule {
    let text = text.trim();
    if text == "*" {
        return HostRule::Any;
    }
    match split_authority(text) {
        Some((name, port)) => HostRule::Name { name, port },
        None => HostRule::Name {
            name: text.to_ascii_lowercase(),
            port: None,
        },
    }
}

/// `host[:port]` in lower case; IPv6 literals keep their brackets.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.trim().to_ascii_lowercase();
    if authority.is_empty() || authority.contains(['/', '@', ' ']) {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        match rest.strip_prefix(':') {
            Some(port) => (host.to_string(), Some(port.parse().ok()?)),
            None if rest.is_empty() => (host.to_string(), None),
            None => return None,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port.parse().ok()?)),
            None => (authority.clone(), None),
        }
    };
    (!host.is_empty()).then_some((host, port))
}

/// A request without a port came to the default HTTP port.
fn port_matches(presented: Option<u16>, allowed: u16) -> bool {
    presented.unwrap_or(80) == allowed
}

fn with_default_port(authority: &str, port: u16) -> String {
    match split_authority(authority) {
        Some((host, None)) => format!("{host}:{port}"),
        _ => authority.to_string(),
    }
}

#[cfg(test)]
mod tests;
