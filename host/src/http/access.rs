//! Who is calling: the private surface (any caller presenting the API
//! token) and the public one (everyone else).
//!
//! Being on this machine grants nothing: FFmpeg following a camera's
//! redirect, a provider's HTTP request and any local user reach the host
//! from 127.0.0.1 too. So the private surface (admin actions, `/metrics`,
//! FFmpeg logs and error details, recordings, `/control`) needs the token
//! from every caller, the loopback included (`[security] api_token`, or the
//! one the host keeps in `<state_dir>/api.token`, mode 0600). nginx's
//! callbacks carry the callback secret in their path instead, and must come
//! straight from a `callback_allow` address.
//!
//! nginx's catch-all location marks what it relays with `X-DSS-Proxied`
//! (which it always sets, so a client cannot remove it): a relayed request
//! is public whoever sent it. Its value is the callback secret: only then
//! (and straight from a `callback_allow` address) is the client address
//! nginx passes in `X-Real-IP` believed; anyone else's `X-Real-IP` is
//! ignored, so per-client bounds count the real peer. The HTTP server
//! ([`crate::http::server`]) classifies every request and hands the
//! handlers its [`Caller`] as a request extension.

use crate::config::Config;
use axum::http::HeaderMap;
use std::net::IpAddr;

/// The caller of a request, as the handlers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// With the API token.
    Private {
        /// Straight from a `callback_allow` address, not relayed by nginx.
        direct: bool,
    },
    /// Without it.
    Public {
        /// The client's address (for per-client limits).
        ip: IpAddr,
        /// Straight from a `callback_allow` address, not relayed by nginx
        /// (what callbacks need, besides their secret).
        direct: bool,
    },
}

impl Caller {
    /// Whether details (logs, errors, sources) may be shown and admin
    /// actions taken.
    pub fn is_private(&self) -> bool {
        matches!(self, Caller::Private { .. })
    }

    /// Whether the request came straight from a `callback_allow` address.
    pub fn is_direct(&self) -> bool {
        match self {
            Caller::Private { direct } | Caller::Public { direct, .. } => *direct,
        }
    }

    /// The public client's address, if public.
    pub fn public_ip(&self) -> Option<IpAddr> {
        match self {
            Caller::Public { ip, .. } => Some(*ip),
            Caller::Private { .. } => None,
        }
    }
}

/// The header nginx marks what it relays with.
pub const PROXIED: &str = "x-dss-proxied";

/// Whether the request was relayed by nginx's public port (or claims to
/// be: either way it is public).
pub fn relayed(headers: &HeaderMap) -> bool {
    headers.contains_key(PROXIED)
}

/// Whether the request is nginx's own: straight from a `callback_allow`
/// address, marked with the callback `secret`.
pub fn from_nginx(config: &Config, peer: IpAddr, headers: &HeaderMap, secret: &str) -> bool {
    config.security.allows(peer)
        && headers
            .get(PROXIED)
            .is_some_and(|v| crate::tokens::constant_time_eq(v.as_bytes(), secret.as_bytes()))
}

/// The client's address: `X-Real-IP` when `trusted` says nginx passed it,
/// else `peer`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: bool) -> IpAddr {
    let real = || {
        headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    };
    trusted.then(real).flatten().unwrap_or(peer).to_canonical()
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

/// Whether `given` is the API token.
pub fn token_ok(config: &Config, given: Option<&str>) -> bool {
    match (&config.security.api_token, given) {
        (Some(t), Some(g)) => crate::tokens::constant_time_eq(t.as_bytes(), g.as_bytes()),
        _ => false,
    }
}

/// Whether the request comes straight from a `callback_allow` address
/// (not relayed by nginx's public port).
pub fn direct_and_allowed(config: &Config, peer: IpAddr, headers: &HeaderMap) -> bool {
    !relayed(headers) && config.security.allows(peer)
}

/// Classifies a request; `secret` is the callback secret (nginx's mark).
pub fn classify(
    config: &Config,
    peer: IpAddr,
    headers: &HeaderMap,
    query: Option<&str>,
    secret: &str,
) -> Caller {
    let direct = direct_and_allowed(config, peer, headers);
    if token_ok(config, presented_token(headers, query)) {
        return Caller::Private { direct };
    }
    Caller::Public {
        ip: client_ip(peer, headers, from_nginx(config, peer, headers, secret)),
        direct,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config(token: Option<&str>) -> Config {
        let mut c = Config::load_with_env(None, []).expect("defaults");
        c.security.api_token = token.map(str::to_string);
        c
    }

    #[test]
    fn the_loopback_is_public_without_the_token() {
        // FFmpeg following a redirect to 127.0.0.1, a provider's request,
        // a local user: all come from here.
        let c = config(Some("s3cret"));
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let h = HeaderMap::new();
        let caller = classify(&c, local, &h, None, SECRET);
        assert!(!caller.is_private());
        assert!(caller.is_direct(), "callbacks still need the direct path");
        assert_eq!(
            classify(&c, local, &h, Some("token=s3cret"), SECRET),
            Caller::Private { direct: true }
        );
    }

    #[test]
    fn relayed_requests_are_public_and_x_real_ip_is_believed_from_nginx_only() {
        let c = config(Some("s3cret"));
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let outside: IpAddr = "203.0.113.5".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-real-ip", "203.0.113.5".parse().unwrap());
        // nginx, with its mark: the client's address is believed.
        h.insert(PROXIED, SECRET.parse().unwrap());
        assert_eq!(
            classify(&c, local, &h, None, SECRET),
            Caller::Public {
                ip: outside,
                direct: false
            }
        );
        // Anyone else claiming to be nginx, or relaying from elsewhere:
        // public, counted under its own address.
        h.insert(PROXIED, "1".parse().unwrap());
        assert_eq!(
            classify(&c, local, &h, None, SECRET).public_ip(),
            Some(local)
        );
        let far: IpAddr = "192.0.2.7".parse().unwrap();
        h.insert(PROXIED, SECRET.parse().unwrap());
        assert_eq!(classify(&c, far, &h, None, SECRET).public_ip(), Some(far));
        let mut direct = HeaderMap::new();
        direct.insert("x-real-ip", "203.0.113.9".parse().unwrap());
        assert_eq!(
            classify(&c, far, &direct, None, SECRET).public_ip(),
            Some(far),
            "a direct client's X-Real-IP is ignored"
        );
    }

    #[test]
    fn the_token_makes_any_caller_private() {
        let c = config(Some("s3cret"));
        let outside: IpAddr = "192.0.2.7".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(PROXIED, "1".parse().unwrap());
        assert!(!classify(&c, outside, &h, Some("token=wrong"), SECRET).is_private());
        assert_eq!(
            classify(&c, outside, &h, Some("a=1&token=s3cret"), SECRET),
            Caller::Private { direct: false }
        );
        h.insert("authorization", "Bearer s3cret".parse().unwrap());
        assert!(classify(&c, outside, &h, None, SECRET).is_private());
        assert!(!token_ok(&config(None), Some("")), "no token configured");
    }
}
