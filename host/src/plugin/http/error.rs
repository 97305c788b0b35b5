//! Why a provider's HTTP request, or the client behind them all, fails:
//! each refusal with the URL, host, header or limit as fields, and the
//! message the guest reads.

use crate::secrets::SecretError;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
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
pub(super) fn listed(allow_hosts: &[String]) -> String {
    if allow_hosts.is_empty() {
        "empty".to_string()
    } else {
        allow_hosts.join(", ")
    }
}
