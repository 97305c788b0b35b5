//! Native unit tests of provider logic: a [`MockHost`] answers the host
//! functions (HTTP responses by URL, a fixed clock) and records the calls.
//!
//! ```
//! use dss_provider_sdk::{host, testing::MockHost};
//! let mock = MockHost::new().respond("http://feed.test/list", 200, "[]");
//! let (result, mock) = mock.run(|| host::http_get("http://feed.test/list"));
//! assert_eq!(result.unwrap().body, b"[]");
//! assert_eq!(mock.requests, ["http://feed.test/list"]);
//! ```

use crate::host::{HttpResponse, Level, Request};
use std::cell::RefCell;
use std::collections::HashMap;

/// The host as seen by a provider running natively.
#[derive(Debug, Clone, Default)]
pub struct MockHost {
    /// Answers to `http_get` and `http_request`, by exact URL; other URLs
    /// get an error.
    pub responses: HashMap<String, Result<HttpResponse, String>>,
    /// What `now_ms` returns.
    pub now_ms: u64,
    /// Lines the provider logged.
    pub logs: Vec<(Level, String)>,
    /// URLs the provider requested, in order.
    pub requests: Vec<String>,
    /// The requests themselves (method, headers with secrets by name,
    /// body), in order.
    pub sent: Vec<Request>,
}

thread_local! {
    static CURRENT: RefCell<Option<MockHost>> = const { RefCell::new(None) };
}

impl MockHost {
    /// A host with no responses and the clock at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers GET `url` with `status` and `body`.
    pub fn respond(mut self, url: &str, status: u16, body: impl Into<Vec<u8>>) -> Self {
        self.responses.insert(
            url.to_string(),
            Ok(HttpResponse {
                status,
                body: body.into(),
                ..HttpResponse::default()
            }),
        );
        self
    }

    /// Makes GET `url` fail with `message`, as the host does for a refused
    /// host or a network error.
    pub fn fail(mut self, url: &str, message: &str) -> Self {
        self.responses
            .insert(url.to_string(), Err(message.to_string()));
        self
    }

    /// Runs `f` with this host installed on the current thread and returns
    /// its result together with the host (to inspect logs and requests).
    pub fn run<R>(self, f: impl FnOnce() -> R) -> (R, MockHost) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self));
        let result = f();
        let host = CURRENT.with(|c| c.borrow_mut().take()).unwrap_or_default();
        (result, host)
    }
}

/// Calls `f` on the installed mock host, or on an empty one when a test did
/// not install any (so a provider that logs still works in a plain test).
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn with_current<R>(f: impl FnOnce(&mut MockHost) -> R) -> R {
    CURRENT.with(|c| {
        let mut slot = c.borrow_mut();
        f(slot.get_or_insert_with(MockHost::default))
    })
}
