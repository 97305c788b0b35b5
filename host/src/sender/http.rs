//! The HTTP session: the sender picks the session id (or reuses the
//! state file's) and its secret, streams FFmpeg's one muxed MPEG-TS as
//! the body of a single `POST /mobile/ID`, and posts a position a second
//! to `/mobile/ID/position` while the upload runs.

use super::encoder::{ffmpeg_args, Children, Ffmpeg, Tracks};
use super::report::{Counters, End};
use super::state::{remember, saved_id, state_path, Saved};
use super::{
    deadline, next_position, say, sleep_until_opt, SendError, SendOptions, DEFAULT_HTTP_SERVER,
    HANDSHAKE_TIMEOUT, POSITION_INTERVAL, STOP_GRACE,
};
use crate::mobile::route::Route;
use crate::mobile::SECRET_HEADER;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::http::uri::Authority;
use hyper::Request;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::time::{timeout, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Bytes of the new-session id this sender generates in HTTP mode (12:
/// 24 hex digits, the original's format).
const NEW_ID_BYTES: usize = 12;
/// Bytes of an HTTP error body read for the error message.
const MAX_ERROR_BODY: usize = 4096;

type Body = UnsyncBoxBody<Bytes, std::io::Error>;
type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

/// An error's message with its causes (hyper's own is "client error
/// (Connect)").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// Sends `req`; a non-2xx status is an error carrying the status and the
/// start of the body.
async fn post(client: &Client, req: Request<Body>) -> Result<(), SendError> {
    let url = req.uri().to_string();
    let fail = |reason: String| SendError::Http {
        url: url.clone(),
        reason,
    };
    let resp = client.request(req).await.map_err(|e| fail(chain(&e)))?;
    let status = resp.status();
    // Read (a bounded part of) the body: the connection can then be reused.
    let body = Limited::new(resp.into_body(), MAX_ERROR_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    if status.is_success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body);
    let text: String = text.trim().chars().take(300).collect();
    Err(fail(if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    }))
}

/// A run over HTTP: picks and saves the session, streams the upload and
/// the positions until the input ends, the duration elapses or the run is
/// stopped (then the body ends and the server's answer is awaited).
pub(super) async fn run(
    opts: &SendOptions,
    out: &mut (dyn Write + Send),
    counters: &Arc<Counters>,
    id_slot: &mut Option<String>,
    children: &mut Children,
    stop: &CancellationToken,
) -> Result<End, SendError> {
    let authority = authority(opts)?;
    let (id, secret) = session(opts, out, &authority)?;
    *id_slot = Some(id.clone());
    let headers = Headers::new(&secret, opts.token.as_deref())?;
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let url = format!("http://{authority}/mobile/{id}");
    let (req, end_body) = upload_request(opts, counters, children, &url, &headers)?;
    let upload = post(&client, req);
    let positions = post_positions(
        &client,
        format!("http://{authority}/mobile/{id}/position"),
        headers,
        opts.route.clone(),
        counters,
    );
    tokio::pin!(upload, positions);
    let deadline = deadline(opts);
    let mut end_body = Some(end_body);
    let mut end = End::InputEnded;
    let mut grace = None;
    loop {
        tokio::select! {
            r = &mut upload => {
                r?;
                break;
            }
            e = &mut positions => return Err(e),
            () = sleep_until_opt(deadline), if end_body.is_some() => {
                end = End::Duration;
                if let Some(t) = end_body.take() {
                    let _ = t.send(());
                }
                grace = Some(Instant::now() + STOP_GRACE);
            }
            () = stop.cancelled(), if end_body.is_some() => {
                end = End::Interrupted;
                if let Some(t) = end_body.take() {
                    let _ = t.send(());
                }
                grace = Some(Instant::now() + STOP_GRACE);
            }
            () = sleep_until_opt(grace) => {
                return Err(SendError::Http {
                    url,
                    reason: format!("no response within {} s of the end of the body", STOP_GRACE.as_secs()),
                });
            }
        }
    }
    if end == End::InputEnded {
        if let Some(e) = match children.video.as_mut() {
            Some(m) => m.failure().await,
            None => None,
        } {
            return Err(e);
        }
    }
    Ok(end)
}

/// The server as a URL authority (`HOST:PORT`, no credentials).
fn authority(opts: &SendOptions) -> Result<Authority, SendError> {
    let server = opts
        .server
        .clone()
        .unwrap_or_else(|| DEFAULT_HTTP_SERVER.into());
    server
        .parse()
        .ok()
        .filter(|a: &Authority| !a.as_str().contains('@'))
        .ok_or_else(|| SendError::Invalid(format!("invalid server {server:?}: expected HOST:PORT")))
}

/// The session id and secret: the id given, else the state file's, else
/// a new one; printed and saved before anything is sent.
fn session(
    opts: &SendOptions,
    out: &mut (dyn Write + Send),
    authority: &Authority,
) -> Result<(String, String), SendError> {
    let key = format!("http://{authority}");
    let state = state_path(opts);
    let saved = match &state {
        Some(p) => saved_id(p, &key)?,
        None => None,
    };
    let id = match (&opts.id, &saved) {
        (Some(id), _) => id.clone(),
        (None, Some(s)) => s.id.clone(),
        (None, None) => new_id()?,
    };
    // Over HTTP the sender chooses its session secret (it needs it for the
    // positions while the upload runs): the saved one for the saved id.
    let secret = match saved {
        Some(s) if s.id == id => match s.secret {
            Some(secret) => secret,
            None => new_secret()?,
        },
        _ => new_secret()?,
    };
    say(out, &format!("id: {id}"));
    remember(
        out,
        state.as_deref(),
        &key,
        &Saved {
            id: id.clone(),
            secret: Some(secret.clone()),
        },
    );
    Ok((id, secret))
}

/// The headers every request of a session carries: its secret and, given
/// a publish token, the authorization (both marked sensitive).
struct Headers {
    secret: HeaderValue,
    auth: Option<HeaderValue>,
}

impl Headers {
    fn new(secret: &str, token: Option<&str>) -> Result<Self, SendError> {
        let mut secret = HeaderValue::from_str(secret).map_err(|_| {
            SendError::Invalid("the session secret is not a valid header value".into())
        })?;
        secret.set_sensitive(true);
        let auth = match token {
            Some(t) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                    SendError::Invalid("the token is not a valid header value".into())
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Headers { secret, auth })
    }

    /// `req` with the secret and the authorization.
    fn add(&self, mut req: hyper::http::request::Builder) -> hyper::http::request::Builder {
        req = req.header(SECRET_HEADER, self.secret.clone());
        if let Some(a) = &self.auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        req
    }
}

/// Starts the FFmpeg muxing both tracks (or video only) and makes the
/// upload of its output, counted as it goes; the sender ends the body
/// (at a chunk boundary) when the run stops early.
fn upload_request(
    opts: &SendOptions,
    counters: &Arc<Counters>,
    children: &mut Children,
    url: &str,
    headers: &Headers,
) -> Result<(Request<Body>, oneshot::Sender<()>), SendError> {
    let tracks = if opts.video_only {
        Tracks::Video
    } else {
        Tracks::Both
    };
    let (media, stdout) = Ffmpeg::spawn(&opts.ffmpeg, "media", ffmpeg_args(&opts.input, tracks))?;
    children.video = Some(media);
    let (end_body, body_ended) = oneshot::channel::<()>();
    let body_counters = counters.clone();
    let body = tokio_util::io::ReaderStream::with_capacity(stdout, opts.chunk)
        .take_until(body_ended)
        .map(move |chunk| {
            let counters = &body_counters;
            chunk.map(|b| {
                Counters::add(&counters.total, b.len());
                Counters::add(&counters.video, b.len());
                hyper::body::Frame::data(b)
            })
        });
    let req = headers.add(Request::post(url).header(CONTENT_TYPE, "video/mp2t"));
    let req = req
        .body(BodyExt::boxed_unsync(StreamBody::new(body)))
        .map_err(|e| SendError::Invalid(format!("{url}: {e}")))?;
    Ok((req, end_body))
}

/// A new 24-hex session id.
fn new_id() -> Result<String, SendError> {
    crate::ids::random_hex(NEW_ID_BYTES)
        .map_err(|e| SendError::Invalid(format!("cannot generate a session id: {e}")))
}

/// A new session secret (32 hex digits) for the HTTP ingest.
fn new_secret() -> Result<String, SendError> {
    crate::ids::random_hex(16)
        .map_err(|e| SendError::Invalid(format!("cannot generate a session secret: {e}")))
}

/// Posts a position a second until a post fails (then returns why).
async fn post_positions(
    client: &Client,
    url: String,
    headers: Headers,
    mut route: Route,
    counters: &Counters,
) -> SendError {
    let mut ticker = tokio::time::interval(POSITION_INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (lat, lon) = next_position(&mut route);
        let json = serde_json::json!({ "latitude": lat, "longitude": lon }).to_string();
        let len = json.len();
        let req = headers.add(Request::post(&url).header(CONTENT_TYPE, "application/json"));
        let body = Full::new(Bytes::from(json))
            .map_err(|never| match never {})
            .boxed_unsync();
        let req = match req.body(body) {
            Ok(r) => r,
            Err(e) => return SendError::Invalid(format!("{url}: {e}")),
        };
        match timeout(HANDSHAKE_TIMEOUT, post(client, req)).await {
            Ok(Ok(())) => {}
            // 409: the upload is not admitted yet (the host may still be
            // listing the phone) or is being replaced; the next second's
            // position may land.
            Ok(Err(SendError::Http { reason, .. }))
                if reason.starts_with(&format!("HTTP {}", hyper::StatusCode::CONFLICT)) =>
            {
                continue
            }
            Ok(Err(e)) => return e,
            Err(_) => {
                return SendError::Http {
                    url,
                    reason: format!("no response within {} s", HANDSHAKE_TIMEOUT.as_secs()),
                }
            }
        }
        Counters::add(&counters.total, len);
        Counters::add(&counters.positions, 1);
    }
}
