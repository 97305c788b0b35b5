//! The grant: which hosts an instance's streams may read
//! (`allow_sources`, else `allow_hosts`) and whether non-public addresses
//! are allowed (`allow_private`), checked when a stream is listed (the
//! host, literal addresses) and again before each start
//! ([`Plan::check_addresses`]: every address the host name resolves to).

use super::sources::{parse_host, Host, SourceUrl};
use super::{cut, show, Input, Plan, Refusal, SpawnError};
use crate::addr::address_kind;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

/// How long the spawn-time address check waits for DNS. A resolver slower
/// than this would also fail FFmpeg's own lookup; the supervisor retries.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Patterns named in a "host not allowed" refusal before it says "...".
const SHOW_PATTERNS: usize = 5;

/// Why an `allow_sources` entry is refused (the instance file with it is
/// invalid): the entry as written and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The entry is not of a pattern's form; `reason` says which part.
    #[error("allow_sources entry {}: {reason}", show(.entry))]
    Entry {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The entry's host is neither a host name nor an address.
    #[error("allow_sources entry {}: {host}", show(.entry))]
    Host {
        /// The entry as written.
        entry: String,
        /// The host check's refusal.
        host: Refusal,
    },
}

/// An entry of `allow_sources`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// `*`: any host.
    Any,
    /// `host` or `host:port`.
    Host(String, Option<u16>),
    /// `*.domain`: any name under `domain` (not `domain` itself).
    Suffix(String),
    /// `ip`, `ip:port`, `[v6]:port` or `net/len`.
    Net(IpAddr, u8, Option<u16>),
}

impl Pattern {
    fn parse(entry: &str) -> Result<Pattern, GrantError> {
        let e = entry.trim().to_ascii_lowercase();
        let bad = |reason: &'static str| GrantError::Entry {
            entry: entry.to_string(),
            reason,
        };
        if e == "*" {
            return Ok(Pattern::Any);
        }
        if let Some(domain) = e.strip_prefix("*.") {
            return match parse_host(domain) {
                Ok(Host::Name(d)) => Ok(Pattern::Suffix(format!(".{d}"))),
                _ => Err(bad("*. must be followed by a domain name")),
            };
        }
        if let Some((addr, len)) = e.split_once('/') {
            let ip: IpAddr = addr.parse().map_err(|_| bad("not an address/prefix"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len: u8 = len
                .parse()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| bad("prefix length out of range"))?;
            return Ok(Pattern::Net(ip.to_canonical(), len, None));
        }
        if let Ok(ip) = e.parse::<IpAddr>() {
            let len = if ip.to_canonical().is_ipv4() { 32 } else { 128 };
            return Ok(Pattern::Net(ip.to_canonical(), len, None));
        }
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|&n| n != 0)
                .ok_or_else(|| bad("not a port number"))
        };
        if let Some(v6) = e.strip_prefix('[') {
            let (addr, p) = v6
                .split_once("]:")
                .ok_or_else(|| bad("expected [address]:port"))?;
            let ip: Ipv6Addr = addr.parse().map_err(|_| bad("not an IPv6 address"))?;
            let ip = IpAddr::V6(ip).to_canonical();
            let len = if ip.is_ipv4() { 32 } else { 128 };
            return Ok(Pattern::Net(ip, len, Some(port(p)?)));
        }
        let (h, p) = match e.split_once(':') {
            Some((h, p)) => (h, Some(port(p)?)),
            None => (e.as_str(), None),
        };
        let host = parse_host(h).map_err(|host| GrantError::Host {
            entry: entry.to_string(),
            host,
        })?;
        match host {
            Host::Name(n) => Ok(Pattern::Host(n, p)),
            Host::Ip(ip) => Ok(Pattern::Net(ip, 32, p)),
        }
    }

    fn matches(&self, host: &Host, port: Option<u16>) -> bool {
        let port_ok = |want: &Option<u16>| want.is_none() || *want == port;
        match (self, host) {
            (Pattern::Any, _) => true,
            (Pattern::Host(n, p), Host::Name(h)) => n == h && port_ok(p),
            (Pattern::Suffix(s), Host::Name(h)) => h.ends_with(s.as_str()),
            (Pattern::Net(net, len, p), Host::Ip(ip)) => in_net(*ip, *net, *len) && port_ok(p),
            _ => false,
        }
    }
}

/// Whether `ip` is in `net/len`.
fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip.to_canonical(), net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Where a grant's host patterns come from (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Origin {
    #[default]
    AllowHosts,
    AllowSources,
}

/// What sources an instance's streams may read: the hosts of its
/// `allow_sources` (unset: those of `allow_hosts`) and whether non-public
/// addresses are allowed (`allow_private`). The default grant allows no
/// host (test graphs only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceGrant {
    patterns: Vec<Pattern>,
    /// The entries as written, for messages.
    entries: Vec<String>,
    origin: Origin,
    allow_private: bool,
    /// `udp://` and `rtp://` sources (received on a local port) are
    /// allowed: the instance's `allow_udp`.
    allow_udp: bool,
}

impl SourceGrant {
    /// The grant of an instance. `allow_sources` entries are `host`,
    /// `host:port`, `*.domain`, `*`, an address (`10.0.0.5`, `[fe80::1]:554`)
    /// or a network (`10.0.0.0/8`); a bad one is an error. Unset, the
    /// `allow_hosts` entries apply (ones that are not patterns are skipped:
    /// they match no source anyway).
    pub fn new(
        allow_sources: Option<&[String]>,
        allow_hosts: &[String],
        allow_private: bool,
    ) -> Result<SourceGrant, GrantError> {
        let (origin, entries) = match allow_sources {
            Some(s) => (Origin::AllowSources, s),
            None => (Origin::AllowHosts, allow_hosts),
        };
        let mut patterns = Vec::new();
        for e in entries {
            match Pattern::parse(e) {
                Ok(p) => patterns.push(p),
                Err(why) if origin == Origin::AllowSources => return Err(why),
                Err(_) => {}
            }
        }
        Ok(SourceGrant {
            patterns,
            entries: entries.to_vec(),
            origin,
            allow_private,
            allow_udp: false,
        })
    }

    /// This grant, allowing `udp://` and `rtp://` sources or not.
    pub fn with_udp(mut self, allow: bool) -> SourceGrant {
        self.allow_udp = allow;
        self
    }

    /// A grant of any host (`allow_sources = ["*"]`).
    pub fn any_host(allow_private: bool) -> SourceGrant {
        SourceGrant {
            patterns: vec![Pattern::Any],
            entries: vec!["*".into()],
            origin: Origin::AllowSources,
            allow_private,
            allow_udp: false,
        }
    }

    /// Whether non-public addresses are allowed.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// A `udp://` or `rtp://` source as FFmpeg gets it: only when the
    /// instance allows them, and connected to the source (`connect=1`:
    /// the kernel drops datagrams from anyone else; without it FFmpeg
    /// takes the port's datagrams from anywhere, on every interface).
    pub(super) fn connected_udp(&self, source: &Arc<str>) -> Result<Arc<str>, Refusal> {
        if !self.allow_udp {
            return Err(Refusal::new(
                "udp:// and rtp:// sources are received on a local port: set allow_udp = true in the instance to allow them",
            ));
        }
        let query = source.split_once('?').map(|(_, q)| q).unwrap_or("");
        let mut connect = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k.eq_ignore_ascii_case("connect") {
                connect = Some(v);
            }
        }
        match connect {
            Some("1") => Ok(source.clone()),
            Some(other) => Err(Refusal::new(format!(
                "source URL parameter connect={} would take datagrams from anyone (refused)",
                show(other)
            ))),
            None => {
                let sep = if source.contains('?') { '&' } else { '?' };
                Ok(format!("{source}{sep}connect=1").into())
            }
        }
    }

    pub(super) fn check_host(&self, url: &SourceUrl) -> Result<(), Refusal> {
        if !self.patterns.iter().any(|p| p.matches(&url.host, url.port)) {
            let listed = if self.entries.is_empty() {
                "empty".to_string()
            } else {
                let mut shown: Vec<String> = self
                    .entries
                    .iter()
                    .take(SHOW_PATTERNS)
                    .map(|e| cut(e))
                    .collect();
                if self.entries.len() > SHOW_PATTERNS {
                    shown.push("…".into());
                }
                shown.join(", ")
            };
            let which = match self.origin {
                Origin::AllowSources => "allow_sources",
                Origin::AllowHosts => "allow_hosts (allow_sources is unset)",
            };
            return Err(Refusal::new(format!(
                "source host {} is not allowed by this instance's {which}: {listed}",
                url.host
            )));
        }
        match &url.host {
            Host::Ip(ip) => self.check_address(&url.host, *ip)?,
            // Known before any lookup: the resolver answers loopback.
            Host::Name(n)
                if !self.allow_private && (n == "localhost" || n.ends_with(".localhost")) =>
            {
                return Err(Refusal::new(format!(
                    "source host {n} is a loopback name (set allow_private = true to allow)"
                )))
            }
            Host::Name(_) => {}
        }
        Ok(())
    }

    fn check_address(&self, host: &Host, ip: IpAddr) -> Result<(), Refusal> {
        if self.allow_private {
            return Ok(());
        }
        match address_kind(ip) {
            None => Ok(()),
            Some(kind) => Err(Refusal::new(match host {
                Host::Ip(_) => format!(
                    "source host {ip} is {kind} address (set allow_private = true to allow)"
                ),
                Host::Name(n) => format!(
                    "source host {n} resolves to {ip}, {kind} address (set allow_private = true to allow)"
                ),
            })),
        }
    }
}

impl Plan {
    /// The spawn-time check: resolves a URL source's host name and checks
    /// every address it resolves to (non-public ones need
    /// `allow_private`). [`SpawnError::Refused`] is permanent,
    /// [`SpawnError::Resolve`] may pass later.
    pub async fn check_addresses(&self) -> Result<(), SpawnError> {
        let Input::Url {
            host, port, grant, ..
        } = &self.input
        else {
            return Ok(());
        };
        let name = match host {
            Host::Ip(ip) => return grant.check_address(host, *ip).map_err(SpawnError::Refused),
            // FFmpeg resolves the name itself; with allow_private any
            // answer is fine.
            Host::Name(_) if grant.allow_private => return Ok(()),
            Host::Name(n) => n,
        };
        let unresolved = |message: String| SpawnError::Resolve {
            host: name.clone(),
            message,
        };
        let addrs: Vec<std::net::SocketAddr> = tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host((name.as_str(), *port)),
        )
        .await
        .map_err(|_| unresolved(format!("no answer in {RESOLVE_TIMEOUT:?}")))?
        .map_err(|e| unresolved(e.to_string()))?
        .collect();
        if addrs.is_empty() {
            return Err(unresolved("no address".into()));
        }
        for a in addrs {
            grant
                .check_address(host, a.ip())
                .map_err(SpawnError::Refused)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_allow_sources_entry_is_named_with_its_reason() {
        let grant = |entry: &str| SourceGrant::new(Some(&[entry.to_string()]), &[], false);
        let e = grant("10.0.0.0/40").unwrap_err();
        assert_eq!(
            e,
            GrantError::Entry {
                entry: "10.0.0.0/40".into(),
                reason: "prefix length out of range",
            }
        );
        assert_eq!(
            e.to_string(),
            "allow_sources entry \"10.0.0.0/40\": prefix length out of range"
        );
        let e = grant("a b").unwrap_err();
        assert!(
            matches!(&e, GrantError::Host { entry, .. } if entry == "a b"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "allow_sources entry \"a b\": source host \"a b\" is not a valid host name"
        );
    }
}
