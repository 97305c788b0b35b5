//! Plain HTTP requests, as tests make them: every answer (errors included)
//! comes back as a [`Resp`], a transport failure panics.

use serde_json::Value;
use std::time::Duration;

/// An HTTP response as tests see it.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Body text.
    pub body: String,
}

impl Resp {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// The client of every request: answers of any status are answers, and
/// nothing waits more than 30 s.
pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// The status and the whole body (up to 1 GiB) of the answer to `url`.
pub(crate) fn bytes_of(
    url: &str,
    answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> (u16, Vec<u8>) {
    let mut r = answer.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let body = r
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap_or_default();
    (status, body)
}

/// GET `url`.
pub fn get(url: &str) -> Resp {
    let mut r = agent()
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    Resp {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// GET `url` with the API token (the private surface).
pub fn get_private(url: &str, token: &str) -> Resp {
    let mut r = agent()
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    Resp {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// GET `url`: the status and the body's bytes (images, media).
pub fn get_bytes(url: &str) -> (u16, Vec<u8>) {
    bytes_of(url, agent().get(url).call())
}

/// GET `url` with `headers`: the status, the answer's headers (names in
/// lower case) and its body as sent (a compressed body stays so).
pub fn get_with(
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, std::collections::HashMap<String, String>, Vec<u8>) {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let answer = req.call();
    let head = answer
        .as_ref()
        .map(|r| {
            r.headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let (status, body) = bytes_of(url, answer);
    (status, head, body)
}

/// POST `url` with a form body.
pub fn post_form(url: &str, fields: &[(&str, &str)]) -> Resp {
    let mut r = agent()
        .post(url)
        .send_form(fields.iter().copied())
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    Resp {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// POST `url` with a JSON body.
pub fn post_json(url: &str, body: &str) -> Resp {
    let mut r = agent()
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    Resp {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// POST `body` (with content type `ct`) to `url` with extra `headers`.
pub fn post_with(url: &str, ct: &str, body: &[u8], headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().post(url).header("Content-Type", ct);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.send(body).unwrap_or_else(|e| panic!("POST {url}: {e}"));
    Resp {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// POST `url` with an empty body and a bearer token.
pub fn post_bearer(url: &str, token: &str) -> Resp {
    let mut r = agent()
        .post(url)
        .header("Authorization", &format!("Bearer {token}"))
        .send_empty()
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    Resp {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}
