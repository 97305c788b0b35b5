//! Sources: the URL a stream reads, parsed as FFmpeg reads it and checked
//! for an allowed scheme (which also fixes the protocols FFmpeg may open
//! for it), a well-formed host and port, and no parameter that would make
//! FFmpeg listen. Whether the host is allowed is the instance's
//! [`super::SourceGrant`]'s call.

use super::{cut, show, Refusal};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// URL schemes a source may use, with the default port and the protocols
/// FFmpeg may open for it (`-protocol_whitelist`).
const SCHEMES: &[(&str, Option<u16>, &str)] = &[
    ("rtsp", Some(554), "rtsp,rtp,udp,tcp"),
    ("rtsps", Some(322), "rtsps,rtsp,rtp,udp,tcp,tls"),
    ("rtmp", Some(1935), "rtmp,tcp"),
    ("rtmps", Some(443), "rtmps,rtmp,tls,tcp"),
    // HTTP redirects to HTTPS are common, so both may follow each other;
    // `crypto` is HLS AES-128.
    ("http", Some(80), "http,https,tls,tcp,crypto"),
    ("https", Some(443), "https,http,tls,tcp,crypto"),
    ("srt", None, "srt,udp"),
    ("udp", None, "udp"),
    ("tcp", None, "tcp"),
    ("rtp", None, "rtp,udp"),
];

/// URL query parameters that make FFmpeg listen or bind instead of
/// connecting (`tcp://...?listen`, `srt://...?mode=listener`).
const LISTEN_PARAMS: &[&str] = &["listen", "listen_timeout", "localaddr"];

/// A source host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A DNS name, lower-cased.
    Name(String),
    /// A literal address.
    Ip(IpAddr),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// What of a source URL the policy judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SourceUrl {
    pub(super) scheme: &'static str,
    pub(super) whitelist: &'static str,
    pub(super) host: Host,
    pub(super) port: Option<u16>,
}

/// Parses a source URL the way FFmpeg's `av_url_split` and protocol
/// lookup read it, refusing anything on which FFmpeg and other URL
/// parsers could disagree (`#`, `\`, blanks, non-ASCII, numeric host forms
/// other than dotted quads, IPv6 zones).
pub(super) fn parse_url(source: &str) -> Result<SourceUrl, Refusal> {
    if source == "pipe:0" || source == "-" || source.starts_with("pipe:") {
        return Err(Refusal::new(
            "source pipe:0 is reserved for the host's own ingest",
        ));
    }
    let names: Vec<&str> = SCHEMES.iter().map(|s| s.0).collect();
    let not_url = || {
        Refusal::new(format!(
            "source {} is not a URL with one of the schemes {}",
            show(source),
            names.join(", ")
        ))
    };
    let (scheme, rest) = source.split_once("://").ok_or_else(not_url)?;
    let Some(&(scheme, default_port, whitelist)) = SCHEMES.iter().find(|s| s.0 == scheme) else {
        return Err(not_url());
    };
    if let Some(c) = source.chars().find(|c| !('!'..='~').contains(c)) {
        return Err(Refusal::new(format!(
            "source URL contains the character {c:?} (percent-encode it)"
        )));
    }
    if source.contains(['#', '\\']) {
        return Err(Refusal::new(
            "source URL contains '#' or '\\', which FFmpeg reads differently from other URL parsers",
        ));
    }
    // Authority: up to the first '/' or '?' (av_url_split); credentials up
    // to its last '@'.
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = parse_host_port(hostport)?;
    let port = port.or(default_port);
    if port.is_none() {
        return Err(Refusal::new(format!(
            "source URL needs a port ({scheme}:// has no default)"
        )));
    }
    check_query(source)?;
    Ok(SourceUrl {
        scheme,
        whitelist,
        host,
        port,
    })
}

/// The host and the port (if given) of a URL's authority without its
/// credentials: `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_host_port(hostport: &str) -> Result<(Host, Option<u16>), Refusal> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| Refusal::new("source URL has an unclosed [ in its host"))?;
        let ip: Ipv6Addr = addr.parse().map_err(|_| {
            Refusal::new(format!(
                "source host [{}] is not an IPv6 address",
                cut(addr)
            ))
        })?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| Refusal::new("source URL has junk after its IPv6 host"))?,
            ),
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (h, p) = match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        (parse_host(h)?, p)
    };
    let port = match port {
        None => None,
        Some(p) => Some(
            (p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()))
                .then(|| p.parse::<u16>().ok())
                .flatten()
                .filter(|&n| n != 0)
                .ok_or_else(|| {
                    Refusal::new(format!("source port {} is not a port number", show(p)))
                })?,
        ),
    };
    Ok((host, port))
}

/// Refuses query parameters that would make FFmpeg listen or bind
/// locally instead of connecting.
fn check_query(source: &str) -> Result<(), Refusal> {
    if let Some((_, query)) = source.split_once('?') {
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = k.to_ascii_lowercase();
            let listener = LISTEN_PARAMS.contains(&k.as_str())
                || (k == "mode" && !v.eq_ignore_ascii_case("caller"));
            if listener {
                return Err(Refusal::new(format!(
                    "source URL parameter {} would make FFmpeg listen or bind locally (refused)",
                    show(pair)
                )));
            }
        }
    }
    Ok(())
}

/// A host name or dotted-quad address from a URL or a grant entry.
pub(super) fn parse_host(h: &str) -> Result<Host, Refusal> {
    if h.is_empty() {
        return Err(Refusal::new("source URL has no host"));
    }
    // DNS limits: 253 bytes a name, 63 a label.
    if h.len() > 253 {
        return Err(Refusal::new("source host is longer than 253 bytes"));
    }
    let lower = h.to_ascii_lowercase();
    let labels_ok = lower.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    });
    if !labels_ok {
        return Err(Refusal::new(format!(
            "source host {} is not a valid host name",
            show(h)
        )));
    }
    // The resolver reads 127.1, 2130706433 and 0x7f.0.0.1 as addresses;
    // only canonical dotted quads are accepted as addresses, and a name
    // never ends in a numeric label.
    let last = lower.rsplit('.').next().unwrap_or_default();
    let numeric = last.bytes().all(|c| c.is_ascii_digit()) || last.starts_with("0x");
    if numeric {
        return match lower.parse::<Ipv4Addr>() {
            Ok(ip) => Ok(Host::Ip(IpAddr::V4(ip))),
            Err(_) => Err(Refusal::new(format!(
                "source host {} is not a canonical IPv4 address",
                show(h)
            ))),
        };
    }
    Ok(Host::Name(lower))
}
