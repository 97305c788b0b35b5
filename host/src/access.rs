//! Who is calling: the private surface (the host's own listen address,
//! from a `callback_allow` address, or with the API token) and the public
//! one (everything nginx relays from its public port, and anyone else).
//!
//! nginx's catch-all location marks what it relays (`X-DSS-Proxied`,
//! which it always sets, so a client cannot remove it) and passes the
//! client's address (`X-Real-IP`). A relayed request is public whoever
//! sent it: admin actions, callbacks, `/metrics`, FFmpeg logs and error
//! details need the host's own address or the token. The HTTP server
//! ([`crate::http_server`]) classifies every request and hands the
//! handlers its [`Caller`] as a request extension.

use crate::config::Config;
use axum::http::HeaderMap;
use std::net::IpAddr;

/// The caller of a request, as the handlers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Directly from a `callback_allow` address, or with the API token.
    Private {
        /// The API token was presented (and is configured).
        token: bool,
        /// Straight from a `callback_allow` address, not relayed by nginx
        /// (what callbacks need, whatever the token).
        direct: bool,
    },
    /// Relayed by nginx, or from any other address.
    Public {
        /// The client's address (for per-client limits).
        ip: IpAddr,
    },
}

impl Caller {
    /// Whether details (logs, errors, sources) may be shown.
    pub fn is_private(&self) -> bool {
        matches!(self, Caller::Private { .. })
    }

    /// Whether the request came straight from a `callback_allow` address.
    pub fn is_direct(&self) -> bool {
        matches!(self, Caller::Private { direct: true, .. })
    }

    /// The public client's address, if public.
    pub fn public_ip(&self) -> Option<IpAddr> {
        match self {
            Caller::Public { ip } => Some(*ip),
            Caller::Private { .. } => None,
        }
    }
}

/// Whether the request was relayed by nginx's public port.
pub fn relayed(headers: &HeaderMap) -> bool {
    headers.contains_key("x-dss-proxied")
}

/// The client address of a relayed request (`X-Real-IP`), else `peer`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
        .unwrap_or(peer)
        .to_canonical()
}

/// The API token presented: `Authorization: Bearer T`, or `?token=T` in
/// the query (for nginx `exec_*` lines and the original's clients).
pub fn presented_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer.or_else(|| {
        query?
            .split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .filter(|t| !t.is_empty())
    })
}

/// Whether `given` is the configured API token.
pub fn token_ok(config: &Config, given: Option<&str>) -> bool {
    match (&config.security.api_token, given) {
        (Some(t), Some(g)) => crate::supervisor::constant_time_eq(t.as_bytes(), g.as_bytes()),
        _ => false,
    }
}

/// Whether the request comes straight from a `callback_allow` address
/// (not relayed by nginx's public port).
pub fn direct_and_allowed(config: &Config, peer: IpAddr, headers: &HeaderMap) -> bool {
    !relayed(headers) && config.security.allows(peer)
}

/// Classifies a request.
pub fn classify(config: &Config, peer: IpAddr, headers: &HeaderMap, query: Option<&str>) -> Caller {
    let direct = direct_and_allowed(config, peer, headers);
    let token = token_ok(config, presented_token(headers, query));
    if token || direct {
        return Caller::Private { token, direct };
    }
    Caller::Public {
        ip: client_ip(peer, headers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(token: Option<&str>) -> Config {
        let mut c = Config::load_with_env(None, []).expect("defaults");
        c.security.api_token = token.map(str::to_string);
        c
    }

    #[test]
    fn relayed_requests_are_public_even_from_loopback() {
        let c = config(None);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let mut h = HeaderMap::new();
        assert!(classify(&c, local, &h, None).is_private());
        h.insert("x-dss-proxied", "1".parse().unwrap());
        h.insert("x-real-ip", "127.0.0.1".parse().unwrap());
        assert_eq!(classify(&c, local, &h, None), Caller::Public { ip: local });
        h.insert("x-real-ip", "203.0.113.5".parse().unwrap());
        assert_eq!(
            classify(&c, local, &h, None).public_ip(),
            Some("203.0.113.5".parse().unwrap())
        );
        let outside: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(!classify(&c, outside, &HeaderMap::new(), None).is_private());
    }

    #[test]
    fn the_token_makes_any_caller_private() {
        let c = config(Some("s3cret"));
        let outside: IpAddr = "192.0.2.7".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-dss-proxied", "1".parse().unwrap());
        assert!(!classify(&c, outside, &h, Some("token=wrong")).is_private());
        assert_eq!(
            classify(&c, outside, &h, Some("a=1&token=s3cret")),
            Caller::Private {
                token: true,
                direct: false
            }
        );
        h.insert("authorization", "Bearer s3cret".parse().unwrap());
        assert!(classify(&c, outside, &h, None).is_private());
        assert!(!token_ok(&config(None), Some("")), "no token configured");
    }
}
