//! The functions the host grants a provider: logging, allow-listed HTTP GET
//! and a clock. In a component they call the host; natively they call the
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

/// A response to [`http_get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code of the final response.
    pub status: u16,
    /// The `content-type` header, if any.
    pub content_type: Option<String>,
    /// The body (bounded by the host).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
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

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    imp::now_ms()
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{HttpResponse, Level};
    use crate::bindings::dss::provider::host as wit;

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
        wit::http_get(url).map(|r| HttpResponse {
            status: r.status,
            content_type: r.content_type,
            body: r.body,
        })
    }

    pub fn now_ms() -> u64 {
        wit::now_ms()
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{HttpResponse, Level};
    use crate::testing::with_current;

    pub fn log(level: Level, message: &str) {
        with_current(|h| h.logs.push((level, message.to_string())))
    }

    pub fn http_get(url: &str) -> Result<HttpResponse, String> {
        with_current(|h| {
            h.requests.push(url.to_string());
            h.responses
                .get(url)
                .cloned()
                .unwrap_or_else(|| Err(format!("no mock response for {url}")))
        })
    }

    pub fn now_ms() -> u64 {
        with_current(|h| h.now_ms)
    }
}
