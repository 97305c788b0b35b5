//! nginx-rtmp callbacks (`/hooks/SECRET/*`), the HTTP-viewer check nginx
//! makes for each HLS/DASH playlist request (`/hooks/SECRET/http_view`),
//! and the original DSS's `/control/{id}/{action}[/{timeout}]` routes.
//!
//! Callbacks must come straight from a `[security] callback_allow`
//! address and carry the host's callback secret in their path (the
//! rendered nginx.conf has it, mode 0600), so neither a client relayed by
//! nginx nor another local process can forge `on_play_done`. `/control`
//! needs a `callback_allow` address and the API token (bearer or
//! `?token=`): a camera's redirect followed by FFmpeg reaches it from
//! 127.0.0.1 too. An invalid or unknown stream id is a 404, which
//! makes nginx refuse the viewer; nothing is spawned for it.

use crate::http::access::{self, Caller};
use crate::http::api::doc::{Documented, NGINX};
use crate::http::state::{CallbackState, StreamsState};
use crate::ids;
use crate::supervisor::{Refusal, State as StreamState};
use axum::extract::{ConnectInfo, FromRef, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use utoipa_axum::routes;

/// How often a held playlist request looks for the playlist.
const PLAYLIST_POLL: Duration = Duration::from_millis(100);

/// The callbacks, the playlist check and the control routes. nginx-rtmp's
/// callbacks are answered before routing ([`fast_callback`]); their route
/// answers the same, and other methods with a 405.
pub fn routes<S>() -> Documented<S>
where
    S: Clone + Send + Sync + 'static,
    CallbackState: FromRef<S>,
{
    Documented::new()
        .routes(routes!(callback_routed))
        .routes(routes!(http_view))
        .routes(routes!(control))
        .routes(routes!(control_timeout))
}

/// An nginx-rtmp callback (answered before routing, by [`fast_callback`]).
///
/// `on_play`, `on_play_done`, `on_publish`, `on_publish_done`,
/// `on_done`, `on_record_done` ...: nginx-rtmp's form body (`app`,
/// `name`, `clientid`, `addr`, the client's query arguments). Straight
/// from a `callback_allow` address only, with the host's callback secret.
/// Anything but 2xx makes nginx-rtmp refuse the client.
#[utoipa::path(
    post,
    path = "/hooks/{secret}/{event}",
    operation_id = "callback",
    tag = NGINX,
    params(
        ("secret" = String, Path, description = "The host's callback secret"),
        ("event" = String, Path, description = "The callback: on_play, on_play_done, on_publish, ..."),
    ),
    request_body(content = CallbackForm, content_type = "application/x-www-form-urlencoded",
                 description = "nginx-rtmp's fields"),
    responses(
        (status = 200, description = "Accepted", content_type = "text/plain", body = String),
        (status = 400, description = "An unreadable or oversized body", content_type = "text/plain", body = String),
        (status = 403, description = "Not from an allowed address, relayed, or a wrong secret", content_type = "text/plain", body = String),
        (status = 404, description = "An unknown application, event or stream", content_type = "text/plain", body = String),
        (status = 429, description = "Too many viewers", content_type = "text/plain", body = String),
        (status = 503, description = "No FFmpeg slot free, or shutting down", content_type = "text/plain", body = String),
    )
)]
async fn callback_routed(
    State(st): State<CallbackState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(caller): Extension<Caller>,
    Path((secret, event)): Path<(String, String)>,
    body: axum::body::Body,
) -> Response {
    let Ok(body) = axum::body::to_bytes(body, MAX_CALLBACK_BYTES).await else {
        return (
            StatusCode::BAD_REQUEST,
            "unreadable or oversized callback body\n",
        )
            .into_response();
    };
    callback(&st, peer, caller, &secret, &event, Callback::parse(&body)).await
}

/// The fields of an nginx-rtmp callback that are read (others are
/// ignored). (`Callback`, for the document.)
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CallbackForm {
    /// The RTMP application.
    app: Option<String>,
    /// The stream id.
    name: Option<String>,
    /// nginx-rtmp's client id.
    clientid: Option<String>,
    /// The client's address.
    addr: Option<String>,
    /// Our FFmpeg's publish token.
    token: Option<String>,
    /// The client's flash version.
    flashver: Option<String>,
}

/// The fields nginx-rtmp sends (plus the client's query arguments).
#[derive(Debug, Default)]
pub struct Callback {
    app: String,
    name: String,
    clientid: String,
    addr: String,
    /// Our FFmpeg's publish token (a query argument of its RTMP URL).
    token: String,
    /// The client's flash version (the recorder announces its own).
    flashver: String,
    // The other fields (tcurl, ...) are ignored.
}

/// A refused callback: a status and a line of text for nginx's log.
struct Refused(StatusCode, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.0, self.1 + "\n").into_response()
    }
}

fn not_found(msg: String) -> Refused {
    Refused(StatusCode::NOT_FOUND, msg)
}

fn refusal(r: Refusal) -> Refused {
    Refused(crate::http::api::refusal_status(&r), r.to_string())
}

/// Checks who sends a callback: straight from an allowed address, with
/// the secret.
fn check_callback(
    st: &CallbackState,
    peer: SocketAddr,
    caller: Caller,
    secret: &str,
) -> Result<(), Refused> {
    if !caller.is_direct() {
        tracing::warn!(%peer, "callback from a non-allowed address or relayed by nginx");
        return Err(Refused(
            StatusCode::FORBIDDEN,
            "callbacks are only accepted from [security] callback_allow".into(),
        ));
    }
    if !crate::tokens::constant_time_eq(secret.as_bytes(), st.secret.as_bytes()) {
        tracing::warn!(%peer, "callback with a wrong secret");
        return Err(Refused(
            StatusCode::FORBIDDEN,
            "wrong callback secret (render nginx.conf with `dss nginx-conf`)".into(),
        ));
    }
    Ok(())
}

/// Checks the application and the stream id of a callback.
fn stream_id(st: &StreamsState, cb: &Callback) -> Result<String, Refused> {
    if cb.app != st.config.nginx.app {
        return Err(not_found(format!(
            "unknown application {:?}",
            cb.app.chars().take(64).collect::<String>()
        )));
    }
    // nginx passes the name without its query string.
    ids::parse_stream_id(&cb.name).map_err(|e| not_found(e.to_string()))?;
    Ok(cb.name.clone())
}

/// Largest callback body: nginx-rtmp sends a few hundred bytes (the
/// client's query arguments included).
const MAX_CALLBACK_BYTES: usize = 16 * 1024;

/// The secret and event of `req` if it is an nginx-rtmp callback
/// (`POST /hooks/SECRET/EVENT`, not `http_view`): those are answered by
/// [`fast_callback`] without the router. nginx-rtmp opens a connection
/// per callback, so this is the host's hottest path (the `callbacks`
/// bench).
pub fn callback_route<B>(req: &axum::http::Request<B>) -> Option<(String, String)> {
    if req.method() != axum::http::Method::POST {
        return None;
    }
    let mut parts = req.uri().path().split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(""), Some("hooks"), Some(secret), Some(event), None)
            if !secret.is_empty() && event != "http_view" =>
        {
            Some((secret.to_string(), event.to_string()))
        }
        _ => None,
    }
}

/// Answers a callback [`callback_route`] recognised: its form body is
/// read (at most [`MAX_CALLBACK_BYTES`]) and parsed in place, then
/// answered by the event's handler.
pub async fn fast_callback(
    st: CallbackState,
    peer: SocketAddr,
    caller: Caller,
    (secret, event): (String, String),
    body: hyper::body::Incoming,
) -> Response {
    use http_body_util::BodyExt;
    let body = http_body_util::Limited::new(body, MAX_CALLBACK_BYTES);
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return (
            StatusCode::BAD_REQUEST,
            "unreadable or oversized callback body\n",
        )
            .into_response();
    };
    let cb = Callback::parse(&body);
    callback(&st, peer, caller, &secret, &event, cb).await
}

impl Callback {
    /// The fields of a callback body. nginx-rtmp sends its own fields
    /// first, then appends the client's query arguments (`?flashver=...`
    /// on a play URL): the first value of each field is nginx's, and a
    /// client's repetition of it is ignored.
    fn parse(body: &[u8]) -> Callback {
        let mut cb = Callback::default();
        let mut seen = [false; 6];
        for (k, v) in form_urlencoded::parse(body) {
            let (i, field) = match &*k {
                "app" => (0, &mut cb.app),
                "name" => (1, &mut cb.name),
                "clientid" => (2, &mut cb.clientid),
                "addr" => (3, &mut cb.addr),
                "token" => (4, &mut cb.token),
                "flashver" => (5, &mut cb.flashver),
                _ => continue,
            };
            if !std::mem::replace(&mut seen[i], true) {
                *field = v.into_owned();
            }
        }
        cb
    }
}

/// Answers callback `event` with fields `cb`.
async fn callback(
    st: &CallbackState,
    peer: SocketAddr,
    caller: Caller,
    secret: &str,
    event: &str,
    cb: Callback,
) -> Response {
    if let Err(r) = check_callback(st, peer, caller, secret) {
        return r.into_response();
    }
    let st = &st.streams;
    let result = match event {
        "on_play" => on_play(st, &cb).await,
        "on_play_done" => stream_id(st, &cb).map(|id| st.supervisor.play_done(&id, &cb.clientid)),
        "on_publish" => on_publish(st, &cb),
        "on_publish_done" => {
            stream_id(st, &cb).map(|id| st.supervisor.publish_done(&id, &cb.token))
        }
        // Periodic: nothing to correct here (/stat reconciliation does it);
        // answering non-2xx would drop the client.
        "on_update" => Ok(()),
        _ => Err(not_found("unknown callback".into())),
    };
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(r) => r.into_response(),
    }
}

async fn on_play(st: &StreamsState, cb: &Callback) -> Result<(), Refused> {
    let id = stream_id(st, cb)?;
    if is_recorder(cb) {
        // Not a viewer: a recorded stream is kept running by its instance.
        tracing::debug!(stream = %id, client = %cb.clientid, "recorder plays");
        return Ok(());
    }
    st.listings.ensure_for_stream(&id).await;
    // nginx's own `addr` (the first value): a public player counts
    // against its address's max_streams_per_client.
    let public = cb
        .addr
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|a| a.to_canonical())
        .filter(|a| !st.config.security.allows(*a));
    st.supervisor
        .play(&id, &cb.clientid, public)
        .map_err(refusal)?;
    tracing::debug!(stream = %id, client = %cb.clientid, addr = %cb.addr, "rtmp viewer");
    Ok(())
}

/// Whether a player is the host's own recorder: its flash version, from
/// this machine.
fn is_recorder(cb: &Callback) -> bool {
    cb.flashver == crate::ffmpeg::RECORD_FLASHVER
        && cb
            .addr
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

fn on_publish(st: &StreamsState, cb: &Callback) -> Result<(), Refused> {
    let id = stream_id(st, cb)?;
    if st.supervisor.publish(&id, &cb.token) {
        Ok(())
    } else {
        tracing::warn!(stream = %id, addr = %cb.addr, "publish refused");
        Err(Refused(
            StatusCode::FORBIDDEN,
            "only DSS publishes here".into(),
        ))
    }
}

/// `/hooks/SECRET/http_view`: nginx's `auth_request` for a playlist.
/// Counts the requester as an HTTP viewer (a lease; a public client's
/// leases are bounded per address) and, for a stream that is not live
/// yet, holds the answer until this run's FFmpeg has written the
/// playlist (bounded), so the first request gets a fresh playlist instead
/// of a 404 or a stale one left by an earlier run.
#[utoipa::path(
    method(get, head),
    path = "/hooks/{secret}/http_view",
    tag = NGINX,
    params(
        ("secret" = String, Path, description = "The host's callback secret"),
        ("X-Original-URI" = Option<String>, Header, description = "The playlist asked for: `/hls/ID/FILE` or `/dash/ID/FILE`"),
        ("X-Real-IP" = Option<String>, Header, description = "The viewer's address"),
    ),
    responses(
        (status = 204, description = "Serve the playlist"),
        (status = 403, description = "Not nginx's, not a playlist, or the viewer refused", content_type = "text/plain", body = String),
    )
)]
async fn http_view(
    State(st): State<CallbackState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(secret): Path<String>,
) -> Response {
    if let Err(r) = check_callback(&st, peer, caller, &secret) {
        return r.into_response();
    }
    let st = st.streams;
    let uri = headers
        .get("x-original-uri")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let path = uri.split('?').next().unwrap_or_default();
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (kind, id, file) = (parts.next(), parts.next(), parts.next());
    let (Some(kind @ ("hls" | "dash")), Some(id), Some(file)) = (kind, id, file) else {
        return (StatusCode::FORBIDDEN, "not a playlist\n").into_response();
    };
    if ids::parse_stream_id(id).is_err() || file.contains('/') || file.starts_with('.') {
        return (StatusCode::FORBIDDEN, "invalid stream id\n").into_response();
    }
    st.listings.ensure_for_stream(id).await;
    // nginx's own request (the secret in its path): its X-Real-IP is the
    // viewer's.
    let client = access::client_ip(peer.ip(), &headers, true);
    let public = (!st.config.security.allows(client)).then_some(client);
    if let Err(r) = st
        .supervisor
        .lease(id, &format!("{kind}:{client}"), None, public)
    {
        // auth_request understands 2xx, 401 and 403 only (anything else
        // is a 500 for the viewer).
        return (StatusCode::FORBIDDEN, r.to_string() + "\n").into_response();
    }
    let playlist = st.config.run_dir().join(kind).join(id).join(file);
    let deadline = Instant::now() + Duration::from_secs(st.config.nginx.http_start_wait_seconds);
    while !fresh_playlist(&st, id, &playlist) && Instant::now() < deadline {
        tokio::time::sleep(PLAYLIST_POLL).await;
    }
    // 204 either way: when the wait ran out nginx answers 404 for the file.
    StatusCode::NO_CONTENT.into_response()
}

/// Whether `playlist` was written by the FFmpeg now publishing `id`.
fn fresh_playlist(st: &StreamsState, id: &str, playlist: &std::path::Path) -> bool {
    let status = st.supervisor.status_brief(id);
    if !matches!(status.state, StreamState::Live | StreamState::Stopping) {
        return false;
    }
    let Some(spawned) = status.spawned_at_ms else {
        return false;
    };
    let modified = std::fs::metadata(playlist)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64);
    // nginx-rtmp writes the first playlist a fragment after the publish,
    // well after the spawn time was taken.
    modified.is_some_and(|m| m >= spawned)
}

/// The original DSS's control action on a stream (`start`, `stop`,
/// `http`, `publish_start`, `publish_stop`).
///
/// From a `callback_allow` address with the API token only (a camera's
/// redirect followed by FFmpeg reaches the host from 127.0.0.1 too).
#[utoipa::path(
    method(get, post),
    path = "/control/{id}/{action}",
    tag = NGINX,
    security(("bearer" = [])),
    params(
        crate::http::api::doc::StreamPath,
        ("action" = String, Path, description = "start, stop, http, publish_start or publish_stop"),
    ),
    responses(
        (status = 200, description = "Done"),
        (status = 401, description = "Without the API token", content_type = "text/plain", body = String),
        (status = 403, description = "Not from an allowed address, or relayed", content_type = "text/plain", body = String),
        (status = 404, description = "An unknown stream or action, or the stream refused", content_type = "text/plain", body = String),
        (status = 429, description = "Too many viewers", content_type = "text/plain", body = String),
        (status = 503, description = "No FFmpeg slot free, or shutting down", content_type = "text/plain", body = String),
    )
)]
async fn control(
    State(st): State<CallbackState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    control_impl(st.streams, peer, headers, query, id, action, None).await
}

/// The original DSS's control action with a lease length (`http/{timeout}`).
#[utoipa::path(
    method(get, post),
    path = "/control/{id}/{action}/{timeout}",
    tag = NGINX,
    security(("bearer" = [])),
    params(
        crate::http::api::doc::StreamPath,
        ("action" = String, Path, description = "http (or any action: the timeout is ignored)"),
        ("timeout" = String, Path, description = "The lease in seconds"),
    ),
    responses(
        (status = 200, description = "Done"),
        (status = 400, description = "A timeout that is not a number", content_type = "text/plain", body = String),
        (status = 401, description = "Without the API token", content_type = "text/plain", body = String),
        (status = 403, description = "Not from an allowed address, or relayed", content_type = "text/plain", body = String),
        (status = 404, description = "An unknown stream or action, or the stream refused", content_type = "text/plain", body = String),
        (status = 429, description = "Too many viewers", content_type = "text/plain", body = String),
        (status = 503, description = "No FFmpeg slot free, or shutting down", content_type = "text/plain", body = String),
    )
)]
async fn control_timeout(
    State(st): State<CallbackState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path((id, action, timeout)): Path<(String, String, String)>,
) -> Response {
    control_impl(st.streams, peer, headers, query, id, action, Some(timeout)).await
}

/// The original DSS's control actions, with its semantics (its nginx.conf
/// called them from `exec_play`/`exec_play_done`): `start` is a viewer
/// joining, `stop` a viewer leaving (the last one starts the grace
/// period), `http[/timeout]` an HTTP viewer lease of `timeout` seconds
/// (clamped), `publish_start`/`publish_stop` are accepted for known
/// streams.
async fn control_impl(
    st: StreamsState,
    peer: SocketAddr,
    headers: HeaderMap,
    query: Option<String>,
    id: String,
    action: String,
    timeout: Option<String>,
) -> Response {
    if !access::direct_and_allowed(&st.config, peer.ip(), &headers) {
        tracing::warn!(%peer, "/control from a non-allowed address or relayed by nginx");
        return Refused(
            StatusCode::FORBIDDEN,
            "/control is only accepted from [security] callback_allow".into(),
        )
        .into_response();
    }
    if st.config.security.api_token.is_some()
        && !access::token_ok(
            &st.config,
            access::presented_token(&headers, query.as_deref()),
        )
    {
        return Refused(
            StatusCode::UNAUTHORIZED,
            "/control needs the API token (Authorization: Bearer, or ?token=)".into(),
        )
        .into_response();
    }
    if let Err(e) = ids::parse_stream_id(&id) {
        return not_found(e.to_string()).into_response();
    }
    st.listings.ensure_for_stream(&id).await;
    let known = || -> Result<(), Refused> {
        if st.catalog.snapshot().streams.contains_key(&id) {
            Ok(())
        } else {
            Err(not_found(format!("no stream {id:?}")))
        }
    };
    let result = match action.as_str() {
        "start" => st.supervisor.legacy_join(&id).map_err(refusal),
        "stop" => known().map(|()| st.supervisor.legacy_leave(&id)),
        "http" => {
            let ttl = match timeout.as_deref().map(str::parse::<u64>) {
                None => None,
                Some(Ok(s)) => Some(Duration::from_secs(s)),
                Some(Err(_)) => {
                    return (
                        StatusCode::BAD_REQUEST,
                        "timeout must be a number of seconds\n",
                    )
                        .into_response()
                }
            };
            st.supervisor
                .lease(&id, &format!("control:{}", peer.ip()), ttl, None)
                .map(|_| ())
                .map_err(refusal)
        }
        "publish_start" | "publish_stop" => known(),
        other => {
            return not_found(format!(
                "unknown action {:?}",
                other.chars().take(32).collect::<String>()
            ))
            .into_response()
        }
    };
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(r) => r.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::http::state::testing::{self, catalogue, send, FakeListings};
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    /// nginx on this machine, as [`access::classify`] sees it.
    const NGINX: Caller = Caller::Public {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        direct: true,
    };
    const LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);
    const AWAY: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)), 40000);

    /// The callbacks' state over a catalog with `cams-one` and `cams-two`.
    fn callbacks(config: Config) -> (CallbackState, Arc<FakeListings>) {
        let (streams, listings) = testing::streams(config);
        catalogue(&streams.catalog, "cams", &["one", "two"]);
        let st = CallbackState {
            streams,
            secret: SECRET.into(),
        };
        (st, listings)
    }

    fn defaults() -> Config {
        Config::load_with_env(None, []).expect("the defaults load")
    }

    async fn play(st: &CallbackState, caller: Caller, secret: &str, body: &str) -> StatusCode {
        let cb = Callback::parse(body.as_bytes());
        callback(st, LOCAL, caller, secret, "on_play", cb)
            .await
            .status()
    }

    #[tokio::test]
    async fn a_callback_needs_a_direct_caller_and_the_secret() {
        let (st, listings) = callbacks(defaults());
        let body = "app=dss&name=cams-one&clientid=7&addr=203.0.113.9";
        let relayed = Caller::Public {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            direct: false,
        };
        assert_eq!(
            play(&st, relayed, SECRET, body).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(play(&st, NGINX, "wrong", body).await, StatusCode::FORBIDDEN);
        assert_eq!(
            st.streams.supervisor.tracked(),
            0,
            "refused before anything"
        );
        assert_eq!(play(&st, NGINX, SECRET, body).await, StatusCode::OK);
        assert_eq!(st.streams.supervisor.status("cams-one").viewers_rtmp, 1);
        assert_eq!(*crate::sync::lock(&listings.asked), ["stream:cams-one"]);
    }

    #[tokio::test]
    async fn what_is_not_catalogued_is_refused_and_wants_nothing() {
        let (st, _) = callbacks(defaults());
        for body in [
            "app=other&name=cams-one&clientid=1",
            "app=dss&name=..%2Fetc&clientid=1",
            "app=dss&name=cams-nine&clientid=1",
            "app=dss&clientid=1",
        ] {
            assert_eq!(
                play(&st, NGINX, SECRET, body).await,
                StatusCode::NOT_FOUND,
                "{body}"
            );
        }
        let cb = Callback::parse(b"app=dss&name=cams-one");
        let r = callback(&st, LOCAL, NGINX, SECRET, "on_nothing", cb).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(st.streams.supervisor.tracked(), 0);
    }

    #[tokio::test]
    async fn a_viewer_leaving_is_counted_and_only_our_ffmpeg_publishes() {
        let (st, _) = callbacks(defaults());
        let body = "app=dss&name=cams-two&clientid=9&addr=127.0.0.1";
        assert_eq!(play(&st, NGINX, SECRET, body).await, StatusCode::OK);
        let cb = Callback::parse(body.as_bytes());
        let r = callback(&st, LOCAL, NGINX, SECRET, "on_play_done", cb).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(st.streams.supervisor.status("cams-two").viewers_rtmp, 0);
        let cb = Callback::parse(b"app=dss&name=cams-two&token=forged&addr=127.0.0.1");
        let r = callback(&st, LOCAL, NGINX, SECRET, "on_publish", cb).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn the_recorder_is_no_viewer() {
        let (st, _) = callbacks(defaults());
        let body = format!(
            "app=dss&name=cams-one&clientid=3&addr=127.0.0.1&flashver={}",
            crate::ffmpeg::RECORD_FLASHVER
        );
        assert_eq!(play(&st, NGINX, SECRET, &body).await, StatusCode::OK);
        assert_eq!(st.streams.supervisor.tracked(), 0);
    }

    fn control_request(uri: &str, peer: SocketAddr) -> axum::http::Request<axum::body::Body> {
        testing::request("POST", uri, peer, NGINX)
    }

    #[tokio::test]
    async fn control_needs_an_allowed_address_and_the_token() {
        let mut config = defaults();
        config.security.api_token = Some("tok".into());
        let (st, _) = callbacks(config);
        let app = || routes().into_router().with_state(st.clone());
        let (status, _) = send(app(), control_request("/control/cams-one/start", AWAY)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = send(app(), control_request("/control/cams-one/start", LOCAL)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(st.streams.supervisor.tracked(), 0);
        let uri = "/control/cams-one/start?token=tok";
        assert_eq!(
            send(app(), control_request(uri, LOCAL)).await.0,
            StatusCode::OK
        );
        assert_eq!(st.streams.supervisor.tracked(), 1);
        for (uri, want) in [
            (
                "/control/cams-one/http/soon?token=tok",
                StatusCode::BAD_REQUEST,
            ),
            ("/control/cams-one/explode?token=tok", StatusCode::NOT_FOUND),
            ("/control/cams-nine/stop?token=tok", StatusCode::NOT_FOUND),
            ("/control/..%2Fx/start?token=tok", StatusCode::NOT_FOUND),
        ] {
            assert_eq!(
                send(app(), control_request(uri, LOCAL)).await.0,
                want,
                "{uri}"
            );
        }
    }

    #[tokio::test]
    async fn a_playlist_request_leases_its_stream_and_nothing_else_passes() {
        let mut config = defaults();
        // Answer at once: no FFmpeg writes a playlist here.
        config.nginx.http_start_wait_seconds = 0;
        let (st, _) = callbacks(config);
        let view = |uri: &str| {
            let mut req =
                testing::request("GET", &format!("/hooks/{SECRET}/http_view"), LOCAL, NGINX);
            req.headers_mut()
                .insert("x-original-uri", uri.parse().expect("a header value"));
            send(routes().into_router().with_state(st.clone()), req)
        };
        for uri in [
            "/etc/passwd",
            "/hls/../x/index.m3u8",
            "/hls/cams-one/.hidden",
            "/rec/cams-one/a.m3u8",
        ] {
            assert_eq!(view(uri).await.0, StatusCode::FORBIDDEN, "{uri}");
        }
        assert_eq!(st.streams.supervisor.tracked(), 0);
        assert_eq!(
            view("/hls/cams-one/index.m3u8?x=1").await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(st.streams.supervisor.status("cams-one").viewers_http, 1);
    }

    fn req(method: &str, path: &str) -> axum::http::Request<()> {
        axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap()
    }

    #[test]
    fn the_first_value_of_each_field_is_nginx_s() {
        // nginx's fields, then a viewer's `?flashver=DSS-record&name=x&clientid=1`.
        let cb = Callback::parse(
            b"app=dss&flashver=LNX%209%2C0%2C124%2C2&swfurl=&tcurl=rtmp&pageurl=&addr=203.0.113.9\
              &clientid=77&call=play&name=demo-bars&start=-2000&duration=0&reset=0\
              &flashver=DSS-record&name=demo-mandel&clientid=1&addr=127.0.0.1&token=t",
        );
        assert_eq!(cb.app, "dss");
        assert_eq!(cb.flashver, "LNX 9,0,124,2");
        assert_eq!(cb.addr, "203.0.113.9");
        assert_eq!(cb.clientid, "77");
        assert_eq!(cb.name, "demo-bars");
        // A field nginx does not send for plays stays the client's: the
        // publish token matters only for publishes, where nginx sends none
        // either and FFmpeg's own URL carries it.
        assert_eq!(cb.token, "t");
    }

    #[test]
    fn only_callbacks_take_the_short_path() {
        assert_eq!(
            callback_route(&req("POST", "/hooks/s3cret/on_play")),
            Some(("s3cret".into(), "on_play".into()))
        );
        assert_eq!(
            callback_route(&req("POST", "/hooks/s3cret/on_play?x=1")),
            Some(("s3cret".into(), "on_play".into()))
        );
        // Everything else goes through the router, which answers it (or 404s).
        for (m, p) in [
            ("GET", "/hooks/s3cret/on_play"),
            ("POST", "/hooks/s3cret/http_view"),
            ("POST", "/hooks//on_play"),
            ("POST", "/hooks/s3cret/on_play/extra"),
            ("POST", "/hooks/s3cret"),
            ("POST", "/api/streams/x/watch"),
        ] {
            assert_eq!(callback_route(&req(m, p)), None, "{m} {p}");
        }
    }
}
