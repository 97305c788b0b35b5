//! `http-get` as granted to a provider: plain `http://` GETs to hosts in the
//! instance's `allow_hosts`, redirects re-checked against the same list, a
//! time and body-size cap per request and a request count per call.
//! A host name that resolves to a private, loopback or link-local address
//! is refused unless the instance sets `allow_private` (IP addresses listed
//! literally are the operator's explicit choice); the request goes to the
//! address that was checked, so DNS cannot be switched under it.
//! Refusals are error messages returned to the guest, never traps; only
//! the call's wall-clock deadline stops it ([`HttpError::Deadline`]): each
//! request waits at most `http_timeout_ms` and never past that deadline.

use crate::addr::is_public;
use crate::config::Limits;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The shared HTTP client (one connection pool for all providers).
pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Makes the shared client.
pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector)
}

/// The `http-get` grant of one call.
pub struct HttpGate {
    client: HttpClient,
    runtime: Option<tokio::runtime::Handle>,
    allow_hosts: Arc<[String]>,
    allow_private: bool,
    max_requests: u32,
    max_body: usize,
    timeout: Duration,
    max_redirects: u32,
    /// The call's wall-clock deadline (`None`: too far to represent).
    deadline: Option<Instant>,
    /// Requests made so far in this call.
    pub requests: u32,
    /// Time spent waiting on the network (not counted as guest time).
    pub waited: Duration,
}

/// Why `http-get` gave no response.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpError {
    /// Refused or failed: the message goes back to the guest.
    Failed(String),
    /// The call's wall-clock deadline came first (before or during the
    /// request): the call must stop.
    Deadline,
}

impl HttpError {
    /// The message for the guest, if the call may go on.
    pub fn message(&self) -> Option<&str> {
        match self {
            HttpError::Failed(m) => Some(m),
            HttpError::Deadline => None,
        }
    }
}

impl From<String> for HttpError {
    fn from(m: String) -> Self {
        HttpError::Failed(m)
    }
}

/// How long one request may wait: its own timeout, or less if the call's
/// wall-clock deadline comes first (`None`: the deadline has passed).
pub fn request_budget(
    timeout: Duration,
    deadline: Option<Instant>,
    now: Instant,
) -> Option<(Duration, bool)> {
    match deadline {
        None => Some((timeout, false)),
        Some(d) => {
            let left = d.saturating_duration_since(now);
            if left.is_zero() {
                None
            } else if left < timeout {
                Some((left, true))
            } else {
                Some((timeout, false))
            }
        }
    }
}

/// A successful fetch.
#[derive(Debug)]
pub struct Fetched {
    /// Final status.
    pub status: u16,
    /// `content-type`, if any.
    pub content_type: Option<String>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpGate {
    /// A grant for one call.
    pub fn new(
        client: HttpClient,
        allow_hosts: Arc<[String]>,
        allow_private: bool,
        limits: &Limits,
    ) -> Self {
        HttpGate {
            client,
            runtime: tokio::runtime::Handle::try_current().ok(),
            allow_hosts,
            allow_private,
            max_requests: limits.http_max_requests,
            max_body: limits.http_max_body,
            timeout: Duration::from_millis(limits.http_timeout_ms),
            max_redirects: limits.http_max_redirects,
            deadline: None,
            requests: 0,
            waited: Duration::ZERO,
        }
    }

    /// Bounds every request of this grant by the call's wall-clock deadline.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Checks `url` against the grant; returns the parsed URL.
    pub fn check(&self, url: &str) -> Result<url::Url, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        match parsed.scheme() {
            "http" => {}
            "https" => {
                return Err(format!(
                    "{url}: https is not supported by this host; use an http:// URL"
                ))
            }
            other => return Err(format!("{url}: scheme {other:?} is not allowed")),
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("{url}: no host"))?
            .to_ascii_lowercase();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let with_port = format!("{host}:{port}");
        let allowed = self.allow_hosts.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a == host || a == with_port
        });
        if !allowed {
            return Err(format!(
                "host {host} is not in this provider's allow_hosts ({})",
                if self.allow_hosts.is_empty() {
                    "empty".to_string()
                } else {
                    self.allow_hosts.join(", ")
                }
            ));
        }
        Ok(parsed)
    }

    /// Resolves the host of an allowed URL to the address to connect to,
    /// refusing private addresses behind host names unless allowed.
    async fn resolve(&self, url: &url::Url) -> Result<SocketAddr, String> {
        let port = url.port_or_known_default().unwrap_or(80);
        let host = match url.host() {
            Some(url::Host::Ipv4(ip)) => return Ok(SocketAddr::new(IpAddr::V4(ip), port)),
            Some(url::Host::Ipv6(ip)) => return Ok(SocketAddr::new(IpAddr::V6(ip), port)),
            Some(url::Host::Domain(d)) => d.to_string(),
            None => return Err(format!("{url}: no host")),
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        let first = addrs
            .first()
            .copied()
            .ok_or_else(|| format!("{host} has no address"))?;
        if !self.allow_private {
            if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(format!(
                    "host {host} resolves to the non-public address {}; set allow_private = true in the instance to allow it",
                    bad.ip()
                ));
            }
        }
        Ok(first)
    }

    /// Performs the GET, blocking the calling (non-async) thread for at
    /// most `http_timeout_ms`, and never past the call's deadline.
    pub fn get(&mut self, url: &str) -> Result<Fetched, HttpError> {
        let started = Instant::now();
        let Some((timeout, cut_by_deadline)) = request_budget(self.timeout, self.deadline, started)
        else {
            return Err(HttpError::Deadline);
        };
        if self.requests >= self.max_requests {
            return Err(HttpError::Failed(format!(
                "request limit reached: at most {} http-get calls per provider call",
                self.max_requests
            )));
        }
        self.requests += 1;
        let mut current = self.check(url)?;
        let Some(runtime) = self.runtime.clone() else {
            return Err(HttpError::Failed(
                "http-get is unavailable outside the host runtime".into(),
            ));
        };
        let result = runtime.block_on(async {
            tokio::time::timeout(timeout, async {
                let mut redirects = 0;
                loop {
                    let addr = self.resolve(&current).await?;
                    let mut target = current.clone();
                    let _ = target.set_ip_host(addr.ip());
                    let uri: hyper::Uri = target
                        .as_str()
                        .parse()
                        .map_err(|e| format!("invalid URL {current}: {e}"))?;
                    let host_header = match current.port() {
                        Some(p) => format!("{}:{p}", current.host_str().unwrap_or_default()),
                        None => current.host_str().unwrap_or_default().to_string(),
                    };
                    let req = hyper::Request::get(uri)
                        .header(hyper::header::HOST, host_header)
                        .header(
                            hyper::header::USER_AGENT,
                            concat!("dss/", env!("CARGO_PKG_VERSION")),
                        )
                        .body(Empty::new())
                        .map_err(|e| format!("GET {current}: {e}"))?;
                    let resp = self
                        .client
                        .request(req)
                        .await
                        .map_err(|e| format!("GET {current}: {}", error_chain(&e)))?;
                    let status = resp.status();
                    if status.is_redirection() {
                        if let Some(loc) = resp.headers().get(hyper::header::LOCATION) {
                            redirects += 1;
                            if redirects > self.max_redirects {
                                return Err(format!(
                                    "GET {url}: more than {} redirects",
                                    self.max_redirects
                                ));
                            }
                            let loc = loc
                                .to_str()
                                .map_err(|_| format!("GET {current}: bad Location header"))?;
                            let next = current
                                .join(loc)
                                .map_err(|e| format!("GET {current}: bad redirect {loc:?}: {e}"))?;
                            current = self
                                .check(next.as_str())
                                .map_err(|e| format!("redirect from {current} refused: {e}"))?;
                            continue;
                        }
                    }
                    let content_type = resp
                        .headers()
                        .get(hyper::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let mut body = resp.into_body();
                    let mut out = Vec::new();
                    while let Some(frame) = body.frame().await {
                        let frame = frame.map_err(|e| format!("GET {current}: {e}"))?;
                        if let Some(data) = frame.data_ref() {
                            if out.len() + data.len() > self.max_body {
                                return Err(format!(
                                    "GET {current}: body larger than the limit of {} bytes",
                                    self.max_body
                                ));
                            }
                            out.extend_from_slice(data);
                        }
                    }
                    return Ok(Fetched {
                        status: status.as_u16(),
                        content_type,
                        body: out,
                    });
                }
            })
            .await
            .map(|r| r.map_err(HttpError::Failed))
            .unwrap_or_else(|_| {
                Err(if cut_by_deadline {
                    HttpError::Deadline
                } else {
                    HttpError::Failed(format!(
                        "GET {url}: timed out after {} ms",
                        timeout.as_millis()
                    ))
                })
            })
        });
        self.waited += started.elapsed();
        result
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(hosts: &[&str]) -> HttpGate {
        let hosts: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
        HttpGate::new(client_for_test(), hosts.into(), false, &Limits::default())
    }

    fn client_for_test() -> HttpClient {
        Client::builder(hyper_util::rt::TokioExecutor::new()).build(HttpConnector::new())
    }

    #[test]
    fn allow_list_by_host_or_host_and_port() {
        let g = gate(&["feed.example", "127.0.0.1:9000"]);
        assert!(g.check("http://feed.example/x").is_ok());
        assert!(g.check("http://FEED.example:8080/x").is_ok());
        assert!(g.check("http://127.0.0.1:9000/x").is_ok());
        let e = g.check("http://127.0.0.1:9001/x").unwrap_err();
        assert!(e.contains("allow_hosts"), "{e}");
        assert!(g.check("http://evil.example/x").is_err());
        assert!(g.check("http://feed.example.evil/x").is_err());
        assert!(g
            .check("file:///etc/passwd")
            .unwrap_err()
            .contains("scheme"));
        assert!(g
            .check("https://feed.example/")
            .unwrap_err()
            .contains("https"));
        assert!(g.check("not a url").is_err());
    }

    #[test]
    fn private_addresses_are_told_apart() {
        for ip in [
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "127.0.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2001:4860::8888", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn host_names_resolving_to_private_addresses_are_refused() {
        let g = gate(&["localhost"]);
        let url = url::Url::parse("http://localhost:9/").unwrap();
        let e = g.resolve(&url).await.unwrap_err();
        assert!(e.contains("allow_private"), "{e}");
        let mut open = gate(&["localhost"]);
        open.allow_private = true;
        assert!(open.resolve(&url).await.unwrap().ip().is_loopback());
        // Literal addresses are the operator's explicit choice.
        let literal = url::Url::parse("http://127.0.0.1:9/").unwrap();
        assert!(g.resolve(&literal).await.is_ok());
    }

    fn failure(r: Result<Fetched, HttpError>) -> String {
        r.unwrap_err().message().expect("a message").to_string()
    }

    #[test]
    fn request_count_is_bounded() {
        let mut g = gate(&[]);
        g.max_requests = 1;
        assert!(failure(g.get("http://a.example/")).contains("allow_hosts"));
        assert!(failure(g.get("http://a.example/")).contains("limit"));
    }

    #[test]
    fn requests_never_wait_past_the_call_deadline() {
        let t = Duration::from_secs(10);
        let now = Instant::now();
        assert_eq!(request_budget(t, None, now), Some((t, false)));
        let far = now + Duration::from_secs(60);
        assert_eq!(request_budget(t, Some(far), now), Some((t, false)));
        let near = now + Duration::from_secs(3);
        assert_eq!(
            request_budget(t, Some(near), now),
            Some((Duration::from_secs(3), true))
        );
        assert_eq!(request_budget(t, Some(now), now), None);
        assert_eq!(
            request_budget(t, Some(now), now + Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn a_passed_deadline_stops_the_call_before_any_request() {
        let mut g = gate(&["a.example"]);
        g.set_deadline(Some(Instant::now()));
        assert_eq!(g.get("http://a.example/").unwrap_err(), HttpError::Deadline);
        assert_eq!(g.requests, 0);
    }
}
