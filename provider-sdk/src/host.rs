//! The functions the host grants a provider: logging, allow-listed HTTP
//! (`GET`, or a [`Request`] with a method, headers and a body; `http` and
//! `https`) and a clock. A header value may name one of the operator's
//! secrets ([`HeaderValue::Secret`]): the host sends the value, the
//! provider never sees it. In a component they call the host; natively they call the
//! [`MockHost`](crate::testing::MockHost) installed by the test.

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging details.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// A response to [`http_get`] or [`http_request`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpResponse {
    /// Status code of the final response.
    pub status: u16,
    /// The `content-type` header, if any.
    pub content_type: Option<String>,
    /// Response headers, lower-case names, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body (bounded by the host).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

/// The value of a request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Sent as written.
    Text(String),
    /// The operator's secret of this name (the instance's `[secrets]`):
    /// the host puts its value in; the provider never sees it.
    Secret(String),
}

/// A request for [`http_request`], built with [`Request::get`] or
/// [`Request::post`]:
///
/// ```
/// use dss_provider_sdk::host::Request;
/// let req = Request::get("https://cams.example/api/list")
///     .header("accept", "application/json")
///     .secret_header("x-api-key", "city_key");
/// assert_eq!(req.headers.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// An `http://` or `https://` URL.
    pub url: String,
    /// Headers besides the host's own.
    pub headers: Vec<(String, HeaderValue)>,
    /// The body (`post` only).
    pub body: Option<Vec<u8>>,
}

impl Request {
    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Request {
            method: Method::Get,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A `POST` of `body` to `url`.
    pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Request {
            method: Method::Post,
            url: url.into(),
            headers: Vec::new(),
            body: Some(body.into()),
        }
    }

    /// Adds a header with a text value.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.into(), HeaderValue::Text(value.into())));
        self
    }

    /// Adds a header whose value is the operator's secret `secret`.
    pub fn secret_header(mut self, name: impl Into<String>, secret: impl Into<String>) -> Self {
        self.headers
            .push((name.into(), HeaderValue::Secret(secret.into())));
        self
    }
}

/// Writes a line to the host's log, attributed to this provider instance.
pub fn log(level: Level, message: &str) {
    imp::log(level, message)
}

/// Fetches `url` with GET through the host. Only hosts in the instance's
/// `allow_hosts` are reachable; the error names the cause of a refusal.
pub fn http_get(url: &str) -> Result<HttpResponse, String> {
    imp::http_get(url)
}

/// [`http_get`] that also requires a 2xx status, as an upstream error.
pub fn http_get_ok(url: &str) -> crate::Result<HttpResponse> {
    let resp = http_get(url).map_err(|e| crate::Error::upstream(format!("GET {url}: {e}")))?;
    if !(200..300).contains(&resp.status) {
        return Err(crate::Error::upstream(format!(
            "GET {url}: HTTP status {}",
            resp.status
        )));
    }
    Ok(resp)
}

/// Sends `request` through the host: the checks of [`http_get`], plus the
/// method, headers and body; secret headers are filled in by the host.
pub fn http_request(request: &Request) -> Result<HttpResponse, String> {
    imp::http_request(request)
}

/// [`http_request`] that also requires a 2xx status, as an upstream error.
pub fn http_request_ok(request: &Request) -> crate::Result<HttpResponse> {
    let what = format!(
        "{} {}",
        match request.method {
            Method::Get => "GET",
            Method::Post => "POST",
        },
        request.url
    );
    let resp = http_request(request).map_err(|e| crate::Error::upstream(format!("{what}: {e}")))?;
    if !(200..300).contains(&resp.status) {
        return Err(crate::Error::upstream(format!(
            "{what}: HTTP status {}",
            resp.status
        )));
    }
    Ok(resp)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    imp::now_ms()
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{HeaderValue, HttpResponse, Level, Method, Request};
    use crate::bindings::dss::provider::host as wit;

    fn response(r: wit::HttpResponse) -> HttpResponse {
        HttpResponse {
            status: r.status,
            content_type: r.content_type,
            headers: r.headers,
            body: r.body,
        }
    }

    pub fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => wit::LogLevel::Trace,
            Level::Debug => wit::LogLevel::Debug,
            Level::Info => wit::LogLevel::Info,
            Level::Warn => wit::LogLevel::Warn,
            Level::Error => wit::LogLevel::Error,
        };
        wit::log(level, message)
    }

    pub fn http_get(url: &str) -> Result<HttpResponse, String> {
        wit::http_get(url).map(response)
    }

    pub fn http_request(request: &Request) -> Result<HttpResponse, String> {
        let req = wit::Request {
            method: match request.method {
                Method::Get => wit::Method::Get,
                Method::Post => wit::Method::Post,
            },
            url: request.url.clone(),
            headers: request
                .headers
                .iter()
                .map(|(name, value)| wit::Header {
                    name: name.clone(),
                    value: match value {
                        HeaderValue::Text(t) => wit::HeaderValue::Text(t.clone()),
                        HeaderValue::Secret(s) => wit::HeaderValue::Secret(s.clone()),
                    },
                })
                .collect(),
            body: request.body.clone(),
        };
        wit::http_request(&req).map(response)
    }

    pub fn now_ms() -> u64 {
        wit::now_ms()
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{HttpResponse, Level, Request};
    use crate::testing::with_current;

    pub fn log(level: Level, message: &str) {
        with_current(|h| h.logs.push((level, message.to_string())))
    }

    pub fn http_get(url: &str) -> Result<HttpResponse, String> {
        http_request(&Request::get(url))
    }

    pub fn http_request(request: &Request) -> Result<HttpResponse, String> {
        with_current(|h| {
            h.requests.push(request.url.clone());
            h.sent.push(request.clone());
            h.responses
                .get(&request.url)
                .cloned()
                .unwrap_or_else(|| Err(format!("no mock response for {}", request.url)))
        })
    }

    pub fn now_ms() -> u64 {
        with_current(|h| h.now_ms)
    }
}
