//! nginx-rtmp callbacks (`/hooks/*`), the HTTP-viewer check nginx makes
//! for each HLS/DASH playlist request (`/hooks/http_view`), and the
//! original DSS's `/control/{id}/{action}[/{timeout}]` routes.
//!
//! Only addresses in `[security] callback_allow` may call these (403
//! otherwise). An invalid or unknown stream id is a 404, which makes nginx
//! refuse the viewer; nothing is spawned for it.

use crate::api::AppState;
use crate::ids;
use crate::supervisor::Refusal;
use axum::extract::{ConnectInfo, Form, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The callback routes.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/hooks/on_play", post(on_play))
        .route("/hooks/on_play_done", post(on_play_done))
        .route("/hooks/on_publish", post(on_publish))
        .route("/hooks/on_publish_done", post(on_publish_done))
        .route("/hooks/on_update", post(on_update))
        .route("/hooks/http_view", any(http_view))
        .route("/control/{id}/{action}", any(control))
        .route("/control/{id}/{action}/{timeout}", any(control_timeout))
        .layer(axum::middleware::from_fn_with_state(state, only_allowed))
}

async fn only_allowed(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    if st.config.security.allows_request(peer.ip(), req.headers()) {
        next.run(req).await
    } else {
        tracing::warn!(%peer, path = %req.uri().path(), "callback from a non-allowed address");
        (
            StatusCode::FORBIDDEN,
            "callbacks are only accepted from [security] callback_allow\n",
        )
            .into_response()
    }
}

/// The fields nginx-rtmp sends (plus the client's query arguments).
#[derive(Debug, Deserialize)]
pub struct Callback {
    #[serde(default)]
    app: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    clientid: String,
    #[serde(default)]
    addr: String,
    /// Our FFmpeg's publish token (a query argument of its RTMP URL).
    #[serde(default)]
    token: String,
    /// The remaining fields.
    #[serde(flatten)]
    _rest: HashMap<String, String>,
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

/// Checks the application and the stream id of a callback.
fn stream_id(st: &AppState, cb: &Callback) -> Result<String, Refused> {
    if cb.app != st.config.nginx.app {
        return Err(not_found(format!("unknown application {:?}", cb.app)));
    }
    // nginx passes the name without its query string.
    ids::parse_stream_id(&cb.name).map_err(|e| not_found(e.to_string()))?;
    Ok(cb.name.clone())
}

fn refusal(r: Refusal) -> Refused {
    not_found(r.to_string())
}

async fn on_play(State(st): State<AppState>, Form(cb): Form<Callback>) -> Response {
    let id = match stream_id(&st, &cb) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    st.providers.ensure_for_stream(&id).await;
    match st.supervisor.play(&id, &cb.clientid) {
        Ok(()) => {
            tracing::debug!(stream = %id, client = %cb.clientid, addr = %cb.addr, "rtmp viewer");
            StatusCode::OK.into_response()
        }
        Err(r) => refusal(r).into_response(),
    }
}

async fn on_play_done(State(st): State<AppState>, Form(cb): Form<Callback>) -> Response {
    match stream_id(&st, &cb) {
        Ok(id) => {
            st.supervisor.play_done(&id, &cb.clientid);
            StatusCode::OK.into_response()
        }
        Err(r) => r.into_response(),
    }
}

async fn on_publish(State(st): State<AppState>, Form(cb): Form<Callback>) -> Response {
    let id = match stream_id(&st, &cb) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    if st.supervisor.publish(&id, &cb.token).await {
        StatusCode::OK.into_response()
    } else {
        tracing::warn!(stream = %id, addr = %cb.addr, "publish refused");
        (StatusCode::FORBIDDEN, "only DSS publishes here\n").into_response()
    }
}

async fn on_publish_done(State(st): State<AppState>, Form(cb): Form<Callback>) -> Response {
    match stream_id(&st, &cb) {
        Ok(id) => {
            st.supervisor.publish_done(&id, &cb.token);
            StatusCode::OK.into_response()
        }
        Err(r) => r.into_response(),
    }
}

async fn on_update(State(st): State<AppState>, Form(cb): Form<Callback>) -> Response {
    // Periodic: nothing to correct here (/stat reconciliation does it);
    // answering non-2xx would drop the client.
    match stream_id(&st, &cb) {
        Ok(_) | Err(_) => StatusCode::OK.into_response(),
    }
}

/// `/hooks/http_view`: nginx's `auth_request` for a playlist. Counts the
/// requester as an HTTP viewer (a lease) and, for an idle stream, holds
/// the answer until the playlist exists (bounded), so the first request
/// gets a playlist instead of a 404.
async fn http_view(State(st): State<AppState>, headers: HeaderMap) -> Response {
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
    if ids::parse_stream_id(id).is_err() || file.contains('/') {
        return (StatusCode::FORBIDDEN, "invalid stream id\n").into_response();
    }
    st.providers.ensure_for_stream(id).await;
    let client = headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    if let Err(r) = st.supervisor.lease(id, &format!("{kind}:{client}"), None) {
        return (StatusCode::FORBIDDEN, r.to_string()).into_response();
    }
    let playlist = st.config.run_dir().join(kind).join(id).join(file);
    let deadline = Instant::now() + Duration::from_secs(st.config.nginx.http_start_wait_seconds);
    while !playlist.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 204 either way: when the wait ran out nginx answers 404 for the file.
    StatusCode::NO_CONTENT.into_response()
}

async fn control(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    control_impl(st, peer, id, action, None).await
}

async fn control_timeout(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, action, timeout)): Path<(String, String, String)>,
) -> Response {
    control_impl(st, peer, id, action, Some(timeout)).await
}

/// The original DSS's control actions: `start` keeps a stream running,
/// `stop` stops it, `http[/timeout]` is an HTTP viewer lease of `timeout`
/// seconds (clamped), `publish_start`/`publish_stop` are accepted for
/// known streams (external publishers are the mobile ingest's business).
async fn control_impl(
    st: AppState,
    peer: SocketAddr,
    id: String,
    action: String,
    timeout: Option<String>,
) -> Response {
    if let Err(e) = ids::parse_stream_id(&id) {
        return not_found(e.to_string()).into_response();
    }
    st.providers.ensure_for_stream(&id).await;
    let known = || -> Result<(), Refused> {
        if st.catalog.snapshot().streams.contains_key(&id) {
            Ok(())
        } else {
            Err(not_found(format!("no stream {id:?}")))
        }
    };
    let result = match action.as_str() {
        "start" => st.supervisor.start(&id).map_err(refusal),
        "stop" => known().map(|()| st.supervisor.stop(&id)),
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
                .lease(&id, &format!("control:{}", peer.ip()), ttl)
                .map(|_| ())
                .map_err(refusal)
        }
        "publish_start" | "publish_stop" => known(),
        other => return not_found(format!("unknown action {other:?}")).into_response(),
    };
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(r) => r.into_response(),
    }
}
