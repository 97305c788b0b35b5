//! `http-get` and `http-request` as granted to a provider: `http://` and
//! `https://` requests to hosts in the instance's `allow_hosts`, redirects
//! re-checked against the same list (and never from `https` down to
//! `http`), a time and body-size cap per request and a request count per
//! call.
//!
//! A host name that resolves to a private, loopback or link-local address
//! is refused unless the instance sets `allow_private` (IP addresses listed
//! literally are the operator's explicit choice). The request goes to the
//! address that was checked, so DNS cannot be switched under it: the host
//! connects to that IP itself, then (for `https`) speaks TLS with the URL's
//! host name for SNI and the certificate check — the URL is never
//! rewritten to the IP. Certificates are checked against the webpki roots
//! plus the operator's `extra_ca_file` ([`HttpClient::new`]).
//!
//! Header values may name one of the instance's secrets ([`Value::Secret`]):
//! the gate puts the value in, marked sensitive, and drops it on a redirect
//! to another origin. Neither the guest nor the log ever sees it.
//!
//! Refusals are error messages returned to the guest, never traps; only
//! the call's wall-clock deadline stops it ([`HttpError::Deadline`]): each
//! request waits at most `http_timeout_ms` and never past that deadline.

mod error;

pub use error::{ClientError, FetchError};

use crate::addr::is_public;
use crate::config::Limits;
use crate::secrets::Secrets;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long connecting to one address may take (within the request's own
/// time budget): a dead address fails fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Request headers a provider may add. A feed needs a key, `accept` and a
/// `content-type` or two; more is a mistake or an attack on the upstream.
const MAX_HEADERS: usize = 32;
/// Bytes of one request header (name and value).
const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Headers the host sets itself (framing, routing, identity).
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "user-agent",
    "proxy-authorization",
    "proxy-connection",
];

/// The TLS settings shared by all providers' requests. Each request opens
/// its own connection (to the address it checked): providers list every
/// few seconds at most, so there is nothing worth pooling.
#[derive(Clone)]
pub struct HttpClient {
    tls: Arc<rustls::ClientConfig>,
}

impl HttpClient {
    /// Trusts the webpki (Mozilla) roots, plus every certificate in
    /// `extra_ca_file` (PEM) when given.
    pub fn new(extra_ca_file: Option<&Path>) -> Result<HttpClient, ClientError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = extra_ca_file {
            let bad = |e: &dyn std::fmt::Display| ClientError::CaFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(&e))?
                .collect::<Result<_, _>>()
                .map_err(|e| bad(&e))?;
            if certs.is_empty() {
                return Err(ClientError::NoCertificate {
                    path: path.to_path_buf(),
                });
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad(&e))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls {
                reason: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(HttpClient { tls: Arc::new(tls) })
    }
}

/// Makes the shared client with the default roots.
pub fn client() -> HttpClient {
    HttpClient::new(None).expect("the built-in roots are valid")
}

/// A request method a provider may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

impl Method {
    fn as_hyper(self) -> hyper::Method {
        match self {
            Method::Get => hyper::Method::GET,
            Method::Post => hyper::Method::POST,
        }
    }
}

/// A request header's value as the guest gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Sent as written.
    Text(String),
    /// The instance's secret of this name.
    Secret(String),
}

/// A request as the guest gave it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// URL (checked by the gate).
    pub url: String,
    /// Headers besides the host's own.
    pub headers: Vec<(String, Value)>,
    /// Body.
    pub body: Option<Vec<u8>>,
}

impl Request {
    /// A plain `GET` (what `http-get` sends).
    pub fn get(url: &str) -> Request {
        Request {
            method: Method::Get,
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
        }
    }
}

/// A checked header ready to send; `secret` ones are dropped across
/// origins.
struct Prepared {
    name: HeaderName,
    value: HeaderValue,
    secret: bool,
}

/// The HTTP grant of one call.
pub struct HttpGate {
    client: HttpClient,
    runtime: Option<tokio::runtime::Handle>,
    allow_hosts: Arc<[String]>,
    allow_private: bool,
    secrets: Arc<Secrets>,
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

/// Why a request gave no response.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpError {
    /// Refused or failed: the message goes back to the guest.
    Failed(FetchError),
    /// The call's wall-clock deadline came first (before or during the
    /// request): the call must stop.
    Deadline,
}

impl HttpError {
    /// Why the request failed, for the guest, if the call may go on.
    pub fn message(&self) -> Option<&FetchError> {
        match self {
            HttpError::Failed(m) => Some(m),
            HttpError::Deadline => None,
        }
    }
}

impl From<FetchError> for HttpError {
    fn from(e: FetchError) -> Self {
        HttpError::Failed(e)
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
    /// Response headers (lower-case names; values that are not UTF-8 left
    /// out).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// Scheme, host and port: what a secret header is bound to.
fn origin(url: &url::Url) -> (String, Option<String>, Option<u16>) {
    (
        url.scheme().to_string(),
        url.host_str().map(str::to_ascii_lowercase),
        url.port_or_known_default(),
    )
}

/// The method after a redirect with `status`: `301`, `302` and `303` turn
/// a `POST` into a `GET` without a body, as browsers do.
pub fn redirected_method(method: Method, status: u16) -> (Method, bool) {
    match (method, status) {
        (Method::Post, 301..=303) => (Method::Get, true),
        (m, _) => (m, false),
    }
}

/// Aborts a spawned task when dropped (the connection of a request that
/// timed out or failed must not linger).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One HTTP/1.1 request on a connection of its own; the guard keeps the
/// connection driven until the body is read.
async fn exchange<IO>(
    io: IO,
    req: hyper::Request<Full<Bytes>>,
    what: &str,
) -> Result<(hyper::Response<hyper::body::Incoming>, AbortOnDrop), FetchError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let fail = |e: hyper::Error| FetchError::Exchange {
        what: what.to_string(),
        reason: error_chain(&e),
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(fail)?;
    let conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    Ok((sender.send_request(req).await.map_err(fail)?, conn))
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
            secrets: Arc::new(Secrets::default()),
            max_requests: limits.http_max_requests,
            max_body: limits.http_max_body,
            timeout: Duration::from_millis(limits.http_timeout_ms),
            max_redirects: limits.http_max_redirects,
            deadline: None,
            requests: 0,
            waited: Duration::ZERO,
        }
    }

    /// The instance's secrets, for header values that name one.
    pub fn with_secrets(mut self, secrets: Arc<Secrets>) -> Self {
        self.secrets = secrets;
        self
    }

    /// Bounds every request of this grant by the call's wall-clock deadline.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Checks `url` against the grant; returns the parsed URL.
    pub fn check(&self, url: &str) -> Result<url::Url, FetchError> {
        let parsed = url::Url::parse(url).map_err(|error| FetchError::InvalidUrl {
            url: url.to_string(),
            error,
        })?;
        match parsed.scheme() {
            "http" | "https" => {}
            other => {
                return Err(FetchError::Scheme {
                    url: url.to_string(),
                    scheme: other.to_string(),
                })
            }
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(FetchError::Credentials {
                url: url.to_string(),
            });
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| FetchError::NoHost {
                url: url.to_string(),
            })?
            .to_ascii_lowercase();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let with_port = format!("{host}:{port}");
        let allowed = self.allow_hosts.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a == host || a == with_port
        });
        if !allowed {
            return Err(FetchError::HostNotAllowed {
                host,
                allow_hosts: self.allow_hosts.clone(),
            });
        }
        Ok(parsed)
    }

    /// Checks the guest's headers and fills in secrets, for a request to
    /// `url` (a secret bound to other hosts is refused; across a redirect
    /// to another origin, secrets are dropped).
    fn prepare(
        &self,
        url: &url::Url,
        headers: &[(String, Value)],
    ) -> Result<Vec<Prepared>, FetchError> {
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        if headers.len() > MAX_HEADERS {
            return Err(FetchError::TooManyHeaders {
                count: headers.len(),
                max: MAX_HEADERS,
            });
        }
        let mut out = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let lower = name.to_ascii_lowercase();
            let name_h = HeaderName::from_bytes(lower.as_bytes())
                .map_err(|_| FetchError::HeaderName { name: name.clone() })?;
            if RESERVED.contains(&lower.as_str()) || lower.starts_with("proxy-") {
                return Err(FetchError::Reserved { header: lower });
            }
            let (text, secret) = match value {
                Value::Text(t) => (t.as_str(), false),
                Value::Secret(s) => (
                    self.secrets
                        .for_host(s, host, port)
                        .map_err(|error| FetchError::Secret {
                            header: lower.clone(),
                            error,
                        })?,
                    true,
                ),
            };
            if lower.len() + text.len() > MAX_HEADER_BYTES {
                return Err(FetchError::HeaderTooLong {
                    header: lower,
                    max: MAX_HEADER_BYTES,
                });
            }
            let mut value_h = HeaderValue::from_str(text).map_err(|_| {
                // Never echo a secret's value.
                let header = lower.clone();
                if secret {
                    FetchError::SecretValue { header }
                } else {
                    FetchError::HeaderValue { header }
                }
            })?;
            value_h.set_sensitive(secret);
            out.push(Prepared {
                name: name_h,
                value: value_h,
                secret,
            });
        }
        Ok(out)
    }

    /// Resolves the host of an allowed URL to the address to connect to,
    /// refusing private addresses behind host names unless allowed.
    async fn resolve(&self, url: &url::Url) -> Result<SocketAddr, FetchError> {
        let port = url.port_or_known_default().unwrap_or(80);
        let host = match url.host() {
            Some(url::Host::Ipv4(ip)) => return Ok(SocketAddr::new(IpAddr::V4(ip), port)),
            Some(url::Host::Ipv6(ip)) => return Ok(SocketAddr::new(IpAddr::V6(ip), port)),
            Some(url::Host::Domain(d)) => d.to_string(),
            None => {
                return Err(FetchError::NoHost {
                    url: url.to_string(),
                })
            }
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| FetchError::Resolve {
                host: host.clone(),
                reason: e.to_string(),
            })?
            .collect();
        let Some(first) = addrs.first().copied() else {
            return Err(FetchError::NoAddress { host });
        };
        if !self.allow_private {
            if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(FetchError::Private {
                    host,
                    address: bad.ip(),
                });
            }
        }
        Ok(first)
    }

    /// Sends one request (no redirects) to the checked address `addr`.
    async fn send_once(
        &self,
        url: &url::Url,
        addr: SocketAddr,
        req: hyper::Request<Full<Bytes>>,
    ) -> Result<(hyper::Response<hyper::body::Incoming>, AbortOnDrop), FetchError> {
        let what = format!("{} {url}", req.method());
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| FetchError::ConnectTimeout {
                what: what.clone(),
                address: addr,
            })?
            .map_err(|e| FetchError::Connect {
                what: what.clone(),
                address: addr,
                reason: e.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        if url.scheme() == "https" {
            let name = match url.host() {
                Some(url::Host::Domain(d)) => {
                    ServerName::try_from(d.to_string()).map_err(|e| FetchError::ServerName {
                        what: what.clone(),
                        reason: e.to_string(),
                    })?
                }
                Some(url::Host::Ipv4(ip)) => ServerName::from(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => ServerName::from(IpAddr::V6(ip)),
                None => return Err(FetchError::NoHost { url: what }),
            };
            let tls = tokio_rustls::TlsConnector::from(self.client.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| FetchError::Tls {
                    what: what.clone(),
                    reason: error_chain(&e),
                })?;
            exchange(TokioIo::new(tls), req, &what).await
        } else {
            exchange(TokioIo::new(tcp), req, &what).await
        }
    }

    /// A plain GET (`http-get`).
    pub fn get(&mut self, url: &str) -> Result<Fetched, HttpError> {
        self.request(Request::get(url))
    }

    /// Performs the request, blocking the calling (non-async) thread for
    /// at most `http_timeout_ms`, and never past the call's deadline.
    pub fn request(&mut self, request: Request) -> Result<Fetched, HttpError> {
        let started = Instant::now();
        let Some((timeout, cut_by_deadline)) = request_budget(self.timeout, self.deadline, started)
        else {
            return Err(HttpError::Deadline);
        };
        if self.requests >= self.max_requests {
            return Err(HttpError::Failed(FetchError::RequestLimit {
                max: self.max_requests,
            }));
        }
        self.requests += 1;
        let first = self.check(&request.url)?;
        let headers = self.prepare(&first, &request.headers)?;
        if let Some(b) = &request.body {
            if request.method == Method::Get {
                return Err(HttpError::Failed(FetchError::BodyOnGet));
            }
            if b.len() > self.max_body {
                return Err(HttpError::Failed(FetchError::RequestBodyTooLarge {
                    size: b.len(),
                    max: self.max_body,
                }));
            }
        }
        let Some(runtime) = self.runtime.clone() else {
            return Err(HttpError::Failed(FetchError::NoRuntime));
        };
        let url = request.url.clone();
        let result = runtime.block_on(async {
            tokio::time::timeout(timeout, self.follow(first, request, headers))
                .await
                .map(|r| r.map_err(HttpError::Failed))
                .unwrap_or_else(|_| {
                    Err(if cut_by_deadline {
                        HttpError::Deadline
                    } else {
                        HttpError::Failed(FetchError::Timeout {
                            url,
                            ms: timeout.as_millis(),
                        })
                    })
                })
        });
        self.waited += started.elapsed();
        result
    }

    /// Sends the request and follows redirects, each hop checked again.
    async fn follow(
        &self,
        mut current: url::Url,
        request: Request,
        mut headers: Vec<Prepared>,
    ) -> Result<Fetched, FetchError> {
        let first_origin = origin(&current);
        let mut method = request.method;
        let mut body = request.body.map(Bytes::from);
        let mut redirects = 0;
        loop {
            let addr = self.resolve(&current).await?;
            let host_header = match current.port() {
                Some(p) => format!("{}:{p}", current.host_str().unwrap_or_default()),
                None => current.host_str().unwrap_or_default().to_string(),
            };
            let path = &current[url::Position::BeforePath..url::Position::AfterQuery];
            let mut builder = hyper::Request::builder()
                .method(method.as_hyper())
                .uri(if path.is_empty() { "/" } else { path })
                .header(hyper::header::HOST, host_header)
                .header(
                    hyper::header::USER_AGENT,
                    concat!("dss/", env!("CARGO_PKG_VERSION")),
                );
            for h in &headers {
                builder = builder.header(h.name.clone(), h.value.clone());
            }
            let what = format!("{} {current}", method.as_hyper());
            let req = builder
                .body(Full::new(body.clone().unwrap_or_default()))
                .map_err(|e| FetchError::Build {
                    what: what.clone(),
                    reason: e.to_string(),
                })?;
            // The guard keeps the connection driven until the body is read.
            let (resp, _conn) = self.send_once(&current, addr, req).await?;
            let status = resp.status();
            if status.is_redirection() {
                if let Some(loc) = resp.headers().get(hyper::header::LOCATION) {
                    redirects += 1;
                    if redirects > self.max_redirects {
                        return Err(FetchError::TooManyRedirects {
                            method: request.method.as_hyper(),
                            url: request.url,
                            max: self.max_redirects,
                        });
                    }
                    let loc = loc
                        .to_str()
                        .map_err(|_| FetchError::BadLocation { what: what.clone() })?;
                    let next = current.join(loc).map_err(|error| FetchError::BadRedirect {
                        what: what.clone(),
                        location: loc.to_string(),
                        error,
                    })?;
                    if current.scheme() == "https" && next.scheme() != "https" {
                        return Err(FetchError::Downgrade {
                            from: current.into(),
                            to: next.into(),
                        });
                    }
                    let next = self
                        .check(next.as_str())
                        .map_err(|e| FetchError::Redirect {
                            from: current.to_string(),
                            error: Box::new(e),
                        })?;
                    if origin(&next) != first_origin {
                        headers.retain(|h| !h.secret);
                    }
                    let (m, drop_body) = redirected_method(method, status.as_u16());
                    method = m;
                    if drop_body {
                        body = None;
                        headers.retain(|h| h.name != hyper::header::CONTENT_TYPE);
                    }
                    current = next;
                    continue;
                }
            }
            let content_type = resp
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let resp_headers = resp
                .headers()
                .iter()
                .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            let mut incoming = resp.into_body();
            let mut out = Vec::new();
            while let Some(frame) = incoming.frame().await {
                let frame = frame.map_err(|e| FetchError::Exchange {
                    what: what.clone(),
                    reason: e.to_string(),
                })?;
                if let Some(data) = frame.data_ref() {
                    if out.len() + data.len() > self.max_body {
                        return Err(FetchError::BodyTooLarge {
                            what,
                            max: self.max_body,
                        });
                    }
                    out.extend_from_slice(data);
                }
            }
            return Ok(Fetched {
                status: status.as_u16(),
                content_type,
                headers: resp_headers,
                body: out,
            });
        }
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
mod tests;
