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

use crate::addr::is_public;
use crate::config::Limits;
use crate::secrets::{SecretError, Secrets};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
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

/// Why the providers' HTTP client cannot be made: the operator's
/// `extra_ca_file` or the TLS library's set-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// `extra_ca_file` cannot be read, is not PEM, or holds a certificate
    /// that is not a valid root.
    #[error("extra_ca_file {}: {reason}", .path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What the PEM reader or the root store said.
        reason: String,
    },
    /// `extra_ca_file` holds no certificate.
    #[error("extra_ca_file {}: no PEM certificate in it", .path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The TLS library refused the protocol versions.
    #[error("TLS set-up: {reason}")]
    Tls {
        /// What it said.
        reason: String,
    },
}

/// Why the gate refused a request, or why it failed: the message the guest
/// gets (the WIT boundary turns it into a string), with the URL, host,
/// header or limit concerned as fields. Never carries a secret's value.
/// Errors of the network and TLS libraries are kept as their text (with
/// their sources), after `what`: the method and URL of the request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchError {
    /// The URL does not parse.
    #[error("invalid URL {url:?}: {error}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it does not parse.
        error: url::ParseError,
    },
    /// A scheme other than `http` and `https`.
    #[error("{url}: scheme {scheme:?} is not allowed")]
    Scheme {
        /// The URL as given.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// A user name or password in the URL.
    #[error("{url}: credentials in the URL are refused; send them in a header from [secrets]")]
    Credentials {
        /// The URL as given.
        url: String,
    },
    /// A URL with no host.
    #[error("{url}: no host")]
    NoHost {
        /// The URL (or the request, `METHOD URL`).
        url: String,
    },
    /// A host (and port) not in the instance's `allow_hosts`.
    #[error("host {host} is not in this provider's allow_hosts ({})", listed(.allow_hosts))]
    HostNotAllowed {
        /// The host (lower case).
        host: String,
        /// The instance's `allow_hosts`.
        allow_hosts: Arc<[String]>,
    },
    /// More headers than [`MAX_HEADERS`].
    #[error("{count} headers: at most {max} per request")]
    TooManyHeaders {
        /// How many the guest gave.
        count: usize,
        /// [`MAX_HEADERS`].
        max: usize,
    },
    /// A header name that is not a valid one.
    #[error("invalid header name {name:?}")]
    HeaderName {
        /// The name as given.
        name: String,
    },
    /// A header the host sets itself.
    #[error("header {header} is set by the host and cannot be sent")]
    Reserved {
        /// The header (lower case).
        header: String,
    },
    /// A header naming a secret that does not exist or may not go to this
    /// host.
    #[error("header {header}: {error}")]
    Secret {
        /// The header (lower case).
        header: String,
        /// Why the secret is not sent.
        error: SecretError,
    },
    /// A header longer than [`MAX_HEADER_BYTES`].
    #[error("header {header}: longer than {max} bytes")]
    HeaderTooLong {
        /// The header (lower case).
        header: String,
        /// [`MAX_HEADER_BYTES`].
        max: usize,
    },
    /// A secret whose value cannot be a header value.
    #[error("header {header}: the secret's value is not a valid header value")]
    SecretValue {
        /// The header (lower case).
        header: String,
    },
    /// A header value that is not a valid one.
    #[error("header {header}: invalid value (control characters?)")]
    HeaderValue {
        /// The header (lower case).
        header: String,
    },
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// The host name resolved to no address.
    #[error("{host} has no address")]
    NoAddress {
        /// The host name.
        host: String,
    },
    /// A host name resolving to a non-public address, without
    /// `allow_private`.
    #[error("host {host} resolves to the non-public address {address}; set allow_private = true in the instance to allow it")]
    Private {
        /// The host name.
        host: String,
        /// The first non-public address among its answers.
        address: IpAddr,
    },
    /// Connecting took longer than [`CONNECT_TIMEOUT`].
    #[error("{what}: connecting to {address} timed out")]
    ConnectTimeout {
        /// The request (`METHOD URL`).
        what: String,
        /// The address connected to.
        address: SocketAddr,
    },
    /// Connecting failed.
    #[error("{what}: connecting to {address}: {reason}")]
    Connect {
        /// The request (`METHOD URL`).
        what: String,
        /// The address connected to.
        address: SocketAddr,
        /// What the system said.
        reason: String,
    },
    /// The host name is not one TLS can check a certificate against.
    #[error("{what}: {reason}")]
    ServerName {
        /// The request (`METHOD URL`).
        what: String,
        /// What rustls said.
        reason: String,
    },
    /// The TLS handshake failed (an untrusted or wrong certificate, ...).
    #[error("{what}: TLS: {reason}")]
    Tls {
        /// The request (`METHOD URL`).
        what: String,
        /// What rustls said, with its sources.
        reason: String,
    },
    /// The request could not be built.
    #[error("{what}: {reason}")]
    Build {
        /// The request (`METHOD URL`).
        what: String,
        /// What the builder said.
        reason: String,
    },
    /// The HTTP exchange failed (handshake, sending, or reading the
    /// response or its body).
    #[error("{what}: {reason}")]
    Exchange {
        /// The request (`METHOD URL`).
        what: String,
        /// What hyper said, with its sources.
        reason: String,
    },
    /// More redirects than the limit.
    #[error("{method} {url}: more than {max} redirects")]
    TooManyRedirects {
        /// The method the guest asked for.
        method: hyper::Method,
        /// The URL the guest asked for.
        url: String,
        /// The most redirects followed.
        max: u32,
    },
    /// A `Location` header that is not text.
    #[error("{what}: bad Location header")]
    BadLocation {
        /// The request (`METHOD URL`).
        what: String,
    },
    /// A `Location` that is not a URL.
    #[error("{what}: bad redirect {location:?}: {error}")]
    BadRedirect {
        /// The request (`METHOD URL`).
        what: String,
        /// The `Location` header.
        location: String,
        /// Why it does not parse.
        error: url::ParseError,
    },
    /// A redirect from `https` to `http`.
    #[error("redirect from {from} to {to} refused: https never goes down to http")]
    Downgrade {
        /// The URL redirected from.
        from: String,
        /// The URL redirected to.
        to: String,
    },
    /// A redirect to a URL the grant refuses.
    #[error("redirect from {from} refused: {error}")]
    Redirect {
        /// The URL redirected from.
        from: String,
        /// Why the URL redirected to is refused.
        error: Box<FetchError>,
    },
    /// A response body larger than the limit.
    #[error("{what}: body larger than the limit of {max} bytes")]
    BodyTooLarge {
        /// The request (`METHOD URL`).
        what: String,
        /// The limit, in bytes.
        max: usize,
    },
    /// The call has made as many requests as it may.
    #[error("request limit reached: at most {max} http-get/http-request calls per provider call")]
    RequestLimit {
        /// The most requests a call may make.
        max: u32,
    },
    /// A body on a `GET`.
    #[error("a body is only sent with post")]
    BodyOnGet,
    /// A request body larger than the limit.
    #[error("request body of {size} bytes is larger than the limit of {max} bytes")]
    RequestBodyTooLarge {
        /// Its size, in bytes.
        size: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// A request made outside a Tokio runtime.
    #[error("http requests are unavailable outside the host runtime")]
    NoRuntime,
    /// The request's own timeout passed (not the call's deadline).
    #[error("{url}: timed out after {ms} ms")]
    Timeout {
        /// The URL the guest asked for.
        url: String,
        /// The timeout, in milliseconds.
        ms: u128,
    },
}

/// `allow_hosts` for a message: the entries, or `empty`.
fn listed(allow_hosts: &[String]) -> String {
    if allow_hosts.is_empty() {
        "empty".to_string()
    } else {
        allow_hosts.join(", ")
    }
}

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
mod tests {
    use super::*;

    fn gate(hosts: &[&str]) -> HttpGate {
        let hosts: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
        HttpGate::new(client_for_test(), hosts.into(), false, &Limits::default())
    }

    fn client_for_test() -> HttpClient {
        client()
    }

    #[test]
    fn allow_list_by_host_or_host_and_port() {
        let g = gate(&["feed.example", "127.0.0.1:9000"]);
        assert!(g.check("http://feed.example/x").is_ok());
        assert!(g.check("http://FEED.example:8080/x").is_ok());
        assert!(g.check("http://127.0.0.1:9000/x").is_ok());
        let e = g.check("http://127.0.0.1:9001/x").unwrap_err();
        assert_eq!(
            e,
            FetchError::HostNotAllowed {
                host: "127.0.0.1".into(),
                allow_hosts: g.allow_hosts.clone(),
            }
        );
        assert_eq!(
            e.to_string(),
            "host 127.0.0.1 is not in this provider's allow_hosts (feed.example, 127.0.0.1:9000)"
        );
        assert!(g.check("http://evil.example/x").is_err());
        assert!(g.check("http://feed.example.evil/x").is_err());
        assert_eq!(
            g.check("file:///etc/passwd").unwrap_err().to_string(),
            "file:///etc/passwd: scheme \"file\" is not allowed"
        );
        assert!(g.check("https://feed.example/").is_ok());
        assert!(g
            .check("http://user:pw@feed.example/")
            .unwrap_err()
            .to_string()
            .contains("credentials"));
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
        assert!(
            matches!(&e, FetchError::Private { host, address } if host == "localhost" && address.is_loopback()),
            "{e:?}"
        );
        assert!(e.to_string().contains("allow_private"), "{e}");
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
        assert_eq!(
            failure(g.get("http://a.example/")),
            "host a.example is not in this provider's allow_hosts (empty)"
        );
        assert_eq!(
            g.get("http://a.example/").unwrap_err(),
            HttpError::Failed(FetchError::RequestLimit { max: 1 })
        );
        assert_eq!(
            failure(g.get("http://a.example/")),
            "request limit reached: at most 1 http-get/http-request calls per provider call"
        );
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

    /// A local HTTP(S) server: `/echo` answers with the method, the
    /// headers and the body it got (JSON, and an `x-seen` header);
    /// `/to?status=N&url=U` redirects.
    mod server {
        use http_body_util::{BodyExt, Full};
        use hyper::body::Bytes;
        use hyper_util::rt::TokioIo;
        use std::net::SocketAddr;
        use std::sync::Arc;

        pub struct TestCa {
            pub ca_pem: String,
            pub server: Arc<rustls::ServerConfig>,
        }

        /// A CA and a server certificate for `names` signed by it.
        pub fn ca(names: &[&str]) -> TestCa {
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "DSS test CA");
            let ca_cert = params.self_signed(&ca_key).unwrap();
            let issuer = rcgen::Issuer::new(params, ca_key);
            let key = rcgen::KeyPair::generate().unwrap();
            let leaf = rcgen::CertificateParams::new(
                names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            )
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let server = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![leaf.der().clone()],
                    rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
                )
                .unwrap();
            TestCa {
                ca_pem: ca_cert.pem(),
                server: Arc::new(server),
            }
        }

        async fn handle(
            req: hyper::Request<hyper::body::Incoming>,
        ) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
            let query: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
            if req.uri().path() == "/to" {
                let status: u16 = query["status"].parse().unwrap();
                return Ok(hyper::Response::builder()
                    .status(status)
                    .header("location", &query["url"])
                    .body(Full::new(Bytes::new()))
                    .unwrap());
            }
            let method = req.method().to_string();
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").into()))
                .collect();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let seen = serde_json::json!({
                "method": method,
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            });
            Ok(hyper::Response::builder()
                .header("content-type", "application/json")
                .header("x-seen", "yes")
                .body(Full::new(Bytes::from(seen.to_string())))
                .unwrap())
        }

        /// Serves on 127.0.0.1 (TLS with `tls`); returns the address.
        pub async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(handle);
                        let http = hyper::server::conn::http1::Builder::new();
                        match tls {
                            Some(cfg) => {
                                // A client refusing the certificate ends
                                // the handshake: nothing to serve.
                                if let Ok(stream) =
                                    tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await
                                {
                                    let _ =
                                        http.serve_connection(TokioIo::new(stream), service).await;
                                }
                            }
                            None => {
                                let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                            }
                        }
                    });
                }
            });
            addr
        }
    }

    /// A runtime with the servers, and gates made inside it (their
    /// requests are made from the test's own, non-async thread).
    struct Lab {
        rt: tokio::runtime::Runtime,
        https: SocketAddr,
        http: SocketAddr,
        wrong_name: SocketAddr,
        ca_file: tempfile::NamedTempFile,
    }

    impl Lab {
        fn new() -> Lab {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let ca = server::ca(&["localhost"]);
            let other = server::ca(&["wrong.example"]);
            let (https, http, wrong_name) = rt.block_on(async {
                (
                    server::start(Some(ca.server.clone())).await,
                    server::start(None).await,
                    server::start(Some(other.server.clone())).await,
                )
            });
            let ca_file = tempfile::NamedTempFile::new().unwrap();
            // Both test CAs: the wrong-name server's chain is trusted, only
            // its name is wrong.
            std::fs::write(ca_file.path(), format!("{}{}", ca.ca_pem, other.ca_pem)).unwrap();
            Lab {
                rt,
                https,
                http,
                wrong_name,
                ca_file,
            }
        }

        fn gate(&self, trust_test_ca: bool) -> HttpGate {
            let _in = self.rt.enter();
            let client = if trust_test_ca {
                HttpClient::new(Some(self.ca_file.path())).unwrap()
            } else {
                client()
            };
            let hosts: Vec<String> = ["localhost", "127.0.0.1"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            let mut secrets = std::collections::BTreeMap::new();
            secrets.insert(
                "key".to_string(),
                crate::secrets::SecretSource {
                    env: Some("K".into()),
                    file: None,
                    hosts: None,
                },
            );
            let secrets =
                Secrets::load_with(&secrets, Path::new("."), |_| Some("s3cr3t".to_string()))
                    .unwrap();
            let mut g = HttpGate::new(client, hosts.into(), true, &Limits::default())
                .with_secrets(Arc::new(secrets));
            g.max_requests = 100;
            g
        }

        fn url(&self, addr: SocketAddr, scheme: &str, path: &str) -> String {
            format!("{scheme}://localhost:{}{path}", addr.port())
        }
    }

    fn seen(f: &Fetched) -> serde_json::Value {
        serde_json::from_slice(&f.body).unwrap()
    }

    #[test]
    fn https_is_checked_against_the_roots_and_the_extra_ca() {
        let lab = Lab::new();
        let url = lab.url(lab.https, "https", "/echo");
        let f = lab.gate(true).get(&url).unwrap();
        assert_eq!(f.status, 200);
        assert_eq!(seen(&f)["method"], "GET");
        // SNI and Host carry the name, not the address connected to.
        assert_eq!(
            seen(&f)["headers"]["host"],
            format!("localhost:{}", lab.https.port())
        );
        assert!(f
            .headers
            .contains(&("x-seen".to_string(), "yes".to_string())));
        // The public roots alone do not trust the test CA.
        let e = failure(lab.gate(false).get(&url));
        assert!(e.contains("certificate"), "{e}");
        // A certificate for another name is refused, even from a trusted CA.
        let wrong = lab.url(lab.wrong_name, "https", "/echo");
        let e = failure(lab.gate(true).get(&wrong));
        assert!(e.contains("certificate") && e.contains("Name"), "{e}");
    }

    #[test]
    fn an_unreadable_or_empty_ca_file_is_an_error() {
        let e = HttpClient::new(Some(Path::new("/nonexistent/ca.pem")))
            .err()
            .unwrap();
        assert!(
            matches!(&e, ClientError::CaFile { path, .. } if path == Path::new("/nonexistent/ca.pem")),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("extra_ca_file /nonexistent/ca.pem: "),
            "{e}"
        );
        let empty = tempfile::NamedTempFile::new().unwrap();
        let e = HttpClient::new(Some(empty.path())).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "extra_ca_file {}: no PEM certificate in it",
                empty.path().display()
            )
        );
    }

    #[test]
    fn headers_methods_bodies_and_secrets() {
        let lab = Lab::new();
        let mut g = lab.gate(true);
        let url = lab.url(lab.https, "https", "/echo");
        let req = Request {
            method: Method::Post,
            url: url.clone(),
            headers: vec![
                ("Accept".into(), Value::Text("application/json".into())),
                ("x-api-key".into(), Value::Secret("key".into())),
                ("content-type".into(), Value::Text("text/plain".into())),
            ],
            body: Some(b"query".to_vec()),
        };
        let f = g.request(req.clone()).unwrap();
        let s = seen(&f);
        assert_eq!(s["method"], "POST");
        assert_eq!(s["body"], "query");
        assert_eq!(s["headers"]["x-api-key"], "s3cr3t");
        assert_eq!(s["headers"]["accept"], "application/json");
        // An unknown secret, a reserved header, a body on GET: refused,
        // and the message never carries a secret's value.
        let mut bad = req.clone();
        bad.headers = vec![("x-api-key".into(), Value::Secret("nope".into()))];
        let e = failure(g.request(bad));
        assert!(e.contains("\"nope\"") && e.contains("it has: key"), "{e}");
        let mut bad = req.clone();
        bad.headers = vec![("Host".into(), Value::Text("evil".into()))];
        assert!(failure(g.request(bad)).contains("set by the host"));
        let mut bad = req.clone();
        bad.headers = vec![("x".into(), Value::Text("a\r\nb: c".into()))];
        assert!(failure(g.request(bad)).contains("invalid value"));
        let mut bad = req;
        bad.method = Method::Get;
        assert!(failure(g.request(bad)).contains("only sent with post"));
    }

    #[test]
    fn redirects_keep_secrets_at_home_and_never_go_down_to_http() {
        let lab = Lab::new();
        let mut g = lab.gate(true);
        let redirect = |from: &str, status: u16, to: &str| {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("status", &status.to_string())
                .append_pair("url", to)
                .finish();
            format!("{from}/to?{q}")
        };
        let https = lab.url(lab.https, "https", "");
        let http = lab.url(lab.http, "http", "");
        let with_secret = |url: String, method: Method| Request {
            method,
            url,
            headers: vec![
                ("x-api-key".into(), Value::Secret("key".into())),
                ("x-plain".into(), Value::Text("kept".into())),
            ],
            body: (method == Method::Post).then(|| b"q".to_vec()),
        };
        // Same origin: the secret follows.
        let f = g
            .request(with_secret(redirect(&https, 307, "/echo"), Method::Post))
            .unwrap();
        let s = seen(&f);
        assert_eq!(s["headers"]["x-api-key"], "s3cr3t");
        assert_eq!(
            (s["method"].as_str(), s["body"].as_str()),
            (Some("POST"), Some("q"))
        );
        // Another origin (same host, other port): the secret is dropped,
        // the plain header kept; a 303 turns the POST into a bodiless GET.
        let mut g2 = lab.gate(true);
        let from_http = redirect(&http, 303, &format!("{http}/echo"));
        let f = g2.request(with_secret(from_http, Method::Post)).unwrap();
        let s = seen(&f);
        assert_eq!(
            (s["method"].as_str(), s["body"].as_str()),
            (Some("GET"), Some(""))
        );
        let cross = redirect(
            &http,
            302,
            &lab.url(lab.http, "http", "/echo")
                .replace("localhost", "127.0.0.1"),
        );
        let f = g2.request(with_secret(cross, Method::Get)).unwrap();
        let s = seen(&f);
        assert!(s["headers"].get("x-api-key").is_none(), "{s}");
        assert_eq!(s["headers"]["x-plain"], "kept");
        // https never goes down to http.
        let down = redirect(&https, 302, &format!("{http}/echo"));
        let e = failure(g.request(with_secret(down, Method::Get)));
        assert!(e.contains("never goes down"), "{e}");
    }
}
