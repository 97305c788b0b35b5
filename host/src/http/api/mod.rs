//! The host's HTTP surface: REST JSON under `/api/`, the live
//! [`events`] stream, `/healthz`, the original DSS's `/info/*` routes,
//! and the web page at `/`.
//!
//! Ids from the URL are checked ([`crate::ids`]) before any lookup:
//! malformed → 400, well-formed but unknown → 404.

mod clusters;
mod events;
mod list;
mod recordings;
mod stats;

use crate::catalog::{Catalog, ProviderState, StreamEntry};
use crate::http::access::Caller;
use crate::http::state::{AppState, ReadyState, StreamsState};
use crate::ids;
use crate::supervisor::Refusal;
use axum::extract::{Extension, FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// An API error: a status and a message, sent as `{"error": ...}`.
#[derive(Debug)]
pub struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl ApiError {
    fn bad_request(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }

    fn not_found(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, msg.into())
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError(refusal_status(&r), r.to_string())
    }
}

/// The HTTP status that tells a client (or nginx, which refuses the
/// viewer on anything but 2xx) why the supervisor refused.
pub(crate) fn refusal_status(r: &Refusal) -> StatusCode {
    match r {
        Refusal::Capacity(..) | Refusal::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::TooManyLeases(_) | Refusal::TooManyViewers(_) => StatusCode::TOO_MANY_REQUESTS,
        Refusal::Unknown(_) | Refusal::Offline(_) | Refusal::Refused(..) => StatusCode::NOT_FOUND,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// The routes, with `web_dir` served at `/`. Handlers expect the request
/// extensions [`crate::http::server`] adds (the peer and its [`Caller`]).
pub fn router(state: AppState, web_dir: &std::path::Path) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/status", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/streams/{id}/track", get(track))
        .route("/api/events", get(events::events))
        .route("/api/recordings", get(recordings::list))
        .route("/api/recordings/{id}/export", get(recordings::export))
        .route("/api/recordings/{id}/{file}", get(recordings::download))
        .merge(ready_routes())
        .merge(stream_routes())
        .merge(stats::routes())
        .merge(crate::http::hooks::router())
        .merge(crate::http::mobile::router())
        .fallback_service(tower_http::services::ServeDir::new(web_dir))
        .layer(compression())
        .with_state(state)
}

/// Compresses what is worth it for clients that accept gzip: JSON, the
/// page, metrics. Not images (thumbnails) or video (recordings), which
/// are compressed already, nor events (tower-http's default leaves
/// `text/event-stream` alone, so they go out at once). The fastest level:
/// a 100,000-stream list is about 20 MB raw, and level 1 already takes
/// it to a tenth (see the catalog bench).
fn compression(
) -> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{
        DefaultPredicate, NotForContentType, Predicate, SizeAbove,
    };
    use tower_http::compression::{CompressionLayer, CompressionLevel};
    CompressionLayer::new()
        .quality(CompressionLevel::Fastest)
        .compress_when(
            DefaultPredicate::new()
                // Below a packet, compressing saves nothing.
                .and(SizeAbove::new(1024))
                .and(NotForContentType::const_new("video/")),
        )
}

/// `/readyz`.
fn ready_routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    ReadyState: FromRef<S>,
{
    Router::new().route("/readyz", get(readyz))
}

/// The routes that read the catalog and the supervisor: providers,
/// streams, viewers' leases, admin start and stop, the map settings, the
/// cluster, and the original's `/info/*`.
fn stream_routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    StreamsState: FromRef<S>,
{
    Router::new()
        .route("/api/web", get(web))
        .route("/api/cluster", get(cluster))
        .route("/api/providers", get(providers))
        .route("/api/providers/{id}", get(provider))
        .route("/api/streams", get(list::streams))
        .route("/api/clusters", get(clusters::clusters))
        .route("/api/streams/{id}", get(stream))
        .route("/api/streams/{id}/watch", post(watch))
        .route("/api/streams/{id}/start", post(admin_start))
        .route("/api/streams/{id}/stop", post(admin_stop))
        .route(
            "/info/provider",
            get(legacy_providers).post(legacy_providers),
        )
        .route(
            "/info/provider/{id}",
            get(legacy_provider).post(legacy_provider),
        )
        .route("/info/stream/{id}", get(legacy_stream).post(legacy_stream))
}

/// `GET /api/web`: the page's map settings (`[web]`).
async fn web(State(st): State<StreamsState>) -> Json<Value> {
    let w = &st.config.web;
    Json(json!({
        "tiles": w.tiles,
        "attribution": w.attribution,
        "center": w.center,
        "zoom": w.zoom,
    }))
}

/// `GET /api/cluster`: the hosts (last seen, running FFmpeg, owned
/// streams) and who owns which stream; `{"enabled": false}` on a single
/// host. Their addresses only on the private surface.
async fn cluster(
    State(st): State<StreamsState>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    let Some(c) = st.supervisor.cluster() else {
        return Json(json!({ "enabled": false }));
    };
    let mut v = serde_json::to_value(c.snapshot()).unwrap_or_default();
    if !caller.is_private() {
        // The hosts' internal addresses and the store's errors are the
        // operator's: the public sees who runs what.
        if let Some(o) = v.as_object_mut() {
            o.remove("advertise_rtmp");
            o.remove("store_error");
        }
        for node in v["nodes"].as_array_mut().into_iter().flatten() {
            if let Some(n) = node.as_object_mut() {
                n.remove("advertise_rtmp");
                n.remove("api");
            }
        }
    }
    Json(v)
}

#[derive(Debug, Deserialize)]
struct TrackQuery {
    since: Option<u64>,
}

/// `GET /api/streams/{id}/track[?since=MS]`: a phone's GPS track (all its
/// sessions), oldest first.
async fn track(
    State(store): State<Arc<dyn dss_store::Store>>,
    Path(id): Path<String>,
    Query(q): Query<TrackQuery>,
) -> Response {
    if crate::ids::parse_stream_id(&id).is_err() {
        return ApiError(
            StatusCode::NOT_FOUND,
            format!("no stream {:?}", id.chars().take(64).collect::<String>()),
        )
        .into_response();
    }
    match store.track(&id, q.since).await {
        Ok(points) => Json(json!({ "id": id, "points": points })).into_response(),
        Err(e) => {
            tracing::warn!(stream = %id, error = %e, "cannot read the track");
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store cannot answer".into(),
            )
            .into_response()
        }
    }
}

async fn healthz(State(st): State<AppState>, Extension(caller): Extension<Caller>) -> Json<Value> {
    let snap = st.catalog.snapshot();
    let failed: Vec<&str> = snap
        .providers
        .values()
        .filter(|p| p.state == ProviderState::Failed)
        .map(|p| p.id.as_str())
        .collect();
    let store = st.store.health();
    let degraded = !matches!(store, dss_store::StoreHealth::Ok);
    let status = if degraded { "degraded" } else { "ok" };
    if !caller.is_private() {
        return Json(json!({
            "status": status,
            "providers": snap.providers.len(),
            "streams": snap.streams.len(),
        }));
    }
    Json(json!({
        "status": status,
        "providers": snap.providers.len(),
        "providers_failed": failed,
        "streams": snap.streams.len(),
        "store": { "backend": st.store.describe(), "health": store },
        "mobile": st.phones.as_ref().map(|p| json!({
            "connected": p.connected(),
            "refused": p.refused.load(std::sync::atomic::Ordering::Relaxed),
            "bad_user_data": p.bad_user_data.load(std::sync::atomic::Ordering::Relaxed),
        })),
        "process": crate::memory::process_stats(),
        "ffmpeg": {
            "running": st.supervisor.running(),
            "max_running": st.config.ffmpeg.max_running,
            "spawns": st.supervisor.spawns_total(),
            "capacity_refusals": st.supervisor.capacity_refusals(),
            "tracked_streams": st.supervisor.tracked(),
        },
    }))
}

/// `GET /readyz`: 200 once nginx runs (when the host manages it) and every
/// enabled provider instance has served a first listing (persisted, fresh
/// or fallback; lazy ones list on first use); 503 before, saying what is
/// pending. `/healthz` only says the process answers.
async fn readyz(State(st): State<ReadyState>) -> Response {
    let pending: Vec<Value> = st
        .listings
        .pending()
        .into_iter()
        .map(|(id, why)| json!({ "provider": id, "waiting_for": why }))
        .collect();
    let nginx = match &st.nginx {
        Some(n) if n.up() => "up",
        Some(_) => "down",
        // Run by the operator: its own service's health, not checked here.
        None => "external",
    };
    let ready = pending.is_empty() && nginx != "down";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ready": ready, "nginx": nginx, "pending": pending })),
    )
        .into_response()
}

/// A provider's status with the age of the listing it serves; a public
/// caller does not see errors, warnings or the instance file (errors can
/// quote feed URLs and their keys).
fn provider_json(p: &crate::catalog::ProviderStatus, caller: Caller) -> Value {
    let mut v = json!(p);
    if !caller.is_private() {
        if let Some(o) = v.as_object_mut() {
            o.remove("file");
            o.remove("warnings");
            let failed = o.remove("last_error").is_some_and(|e| !e.is_null());
            o.insert("has_error".into(), json!(failed));
        }
    }
    if let Some(t) = p.listing_fetched_at_ms {
        let now = crate::catalog::unix_ms(std::time::SystemTime::now());
        v["listing_age_ms"] = json!(now.saturating_sub(t));
    }
    v
}

async fn metrics(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    if !caller.is_private() {
        return Err(forbidden());
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::http::metrics::render(&st).await,
    ))
}

fn forbidden() -> ApiError {
    ApiError(
        StatusCode::FORBIDDEN,
        "only with the API token (Authorization: Bearer TOKEN)".into(),
    )
}

async fn providers(
    State(st): State<StreamsState>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    let snap = st.catalog.snapshot();
    Json(json!(snap
        .providers
        .values()
        .map(|p| provider_json(p, caller))
        .collect::<Vec<_>>()))
}

fn check_provider(id: &str) -> Result<(), ApiError> {
    ids::check_provider_id(id).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn provider(
    State(st): State<StreamsState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_provider(&id)?;
    let snap = st.catalog.snapshot();
    let p = snap
        .providers
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no provider {id:?}")))?;
    Ok(Json(provider_json(p, caller)))
}

fn lookup(catalog: &Catalog, id: &str) -> Result<Arc<StreamEntry>, ApiError> {
    ids::parse_stream_id(id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    catalog
        .snapshot()
        .streams
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no stream {id:?}")))
}

async fn stream(
    State(st): State<StreamsState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    st.listings.ensure_for_stream(&id).await;
    let s = lookup(&st.catalog, &id)?;
    let private = caller.is_private();
    let status = if private {
        st.supervisor.status(&id)
    } else {
        st.supervisor.status_brief(&id)
    };
    let mut v = json!(s);
    v["state"] = json!(list::effective_state(&s, &status));
    v["viewers"] = json!({ "rtmp": status.viewers_rtmp, "http": status.viewers_http });
    v["pinned"] = json!(status.pinned);
    v["pid"] = json!(status.pid);
    v["since_ms"] = json!(status.since_ms);
    v["restarts"] = json!(status.restarts);
    v["failures"] = json!(status.failures);
    v["warmup_ms"] = json!(status.warmup_ms);
    v["frames"] = json!(status.frames);
    if private {
        // FFmpeg's lines and errors can quote sources with credentials.
        let refused = s.refusal().map(|r| format!("refused: {r}"));
        v["last_error"] = json!(refused.or(status.last_error));
        v["log"] = json!(status.log);
    } else {
        v["has_error"] = json!(status.last_error.is_some());
    }
    let n = &st.config.nginx;
    v["urls"] = json!({
        "rtmp": format!("rtmp://HOST:{}/{}/{id}", n.rtmp_port, n.app),
        "hls": format!("http://HOST:{}/hls/{id}/index.m3u8", n.http_port),
        "dash": format!("http://HOST:{}/dash/{id}/index.mpd", n.http_port),
    });
    Ok(Json(v))
}

/// Parameters of `POST /api/streams/{id}/watch`.
#[derive(Debug, Deserialize)]
pub struct WatchParams {
    /// Lease length in seconds (clamped by the config).
    timeout: Option<u64>,
    /// Distinguishes viewers behind one address.
    client: Option<String>,
}

async fn watch(
    State(st): State<StreamsState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(p): Query<WatchParams>,
) -> Result<Json<Value>, ApiError> {
    st.listings.ensure_for_stream(&id).await;
    lookup(&st.catalog, &id)?;
    let client = p.client.unwrap_or_default();
    if client.len() > 128 {
        return Err(ApiError::bad_request("client is longer than 128 bytes"));
    }
    // A public client holds one lease per stream, and leases on at most
    // `max_streams_per_client` streams.
    let key = match caller {
        Caller::Public { ip, .. } => format!("watch:{ip}"),
        Caller::Private { .. } => format!("watch:private:{client}"),
    };
    let ttl = st.supervisor.lease(
        &id,
        &key,
        p.timeout.map(Duration::from_secs),
        caller.public_ip(),
    )?;
    Ok(Json(json!({
        "id": id,
        "lease_seconds": ttl.as_secs(),
        "state": st.supervisor.status(&id).state,
    })))
}

/// Admin actions need the API token (from every caller: see
/// [`crate::http::access`]).
pub(crate) fn authorize(caller: Caller) -> Result<(), ApiError> {
    if caller.is_private() {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "the API token is required (Authorization: Bearer TOKEN; see [security] api_token or <state_dir>/api.token)"
                .into(),
        ))
    }
}

async fn admin_start(
    State(st): State<StreamsState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(caller)?;
    lookup(&st.catalog, &id)?;
    st.supervisor.start(&id)?;
    Ok(Json(json!({ "id": id, "pinned": true })))
}

async fn admin_stop(
    State(st): State<StreamsState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(caller)?;
    lookup(&st.catalog, &id)?;
    st.supervisor.stop(&id);
    Ok(Json(json!({ "id": id, "stopping": true })))
}

/// The original DSS's stream data: `{id, name, geo: [lat, lon], status}`.
fn legacy_data(s: &StreamEntry) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "geo": s.geo.map(|g| [g.lat, g.lon]),
        "status": if s.online { "online" } else { "offline" },
    })
}

async fn legacy_providers(State(st): State<StreamsState>) -> Json<Value> {
    let snap = st.catalog.snapshot();
    Json(json!(snap
        .providers
        .values()
        .filter(|p| p.state != ProviderState::Disabled)
        .map(|p| json!({
            "id": p.id,
            "name": p.info.as_ref().map(|i| i.description.clone()).unwrap_or_else(|| p.module.clone()),
        }))
        .collect::<Vec<_>>()))
}

async fn legacy_provider(
    State(st): State<StreamsState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_provider(&id)?;
    let snap = st.catalog.snapshot();
    if !snap.providers.contains_key(&id) {
        return Err(ApiError::not_found(format!("no provider {id:?}")));
    }
    Ok(Json(json!(snap
        .streams
        .values()
        .filter(|s| s.provider == id)
        .map(|s| legacy_data(s))
        .collect::<Vec<_>>())))
}

async fn legacy_stream(
    State(st): State<StreamsState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = lookup(&st.catalog, &id)?;
    Ok(Json(legacy_data(&s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::http::state::testing::{self, catalogue, send, FakeListings, ADMIN, PEER, PUBLIC};

    /// The stream routes over a catalog with `cams-one` and `cams-two`.
    fn streams() -> (StreamsState, Arc<FakeListings>) {
        streams_with(|_| {})
    }

    fn streams_with(f: impl FnOnce(&mut Config)) -> (StreamsState, Arc<FakeListings>) {
        let mut config = Config::load_with_env(None, []).expect("the defaults load");
        f(&mut config);
        let (st, listings) = testing::streams(config);
        catalogue(&st.catalog, "cams", &["one", "two"]);
        (st, listings)
    }

    /// Waits (at most 10 s) until `cond` holds.
    async fn eventually(cond: impl Fn() -> bool) {
        let wait = async {
            while !cond() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("the condition holds within 10 s");
    }

    async fn get(
        st: &StreamsState,
        method: &str,
        uri: &str,
        caller: Caller,
    ) -> (StatusCode, Value) {
        let app = stream_routes().with_state(st.clone());
        let (status, body) = send(app, testing::request(method, uri, PEER, caller)).await;
        let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, json)
    }

    #[tokio::test]
    async fn ids_are_checked_before_any_lookup() {
        let (st, listings) = streams();
        for (uri, want) in [
            ("/api/streams/cams-one", StatusCode::OK),
            ("/api/streams/cams-nine", StatusCode::NOT_FOUND),
            ("/api/streams/..%2Fetc", StatusCode::BAD_REQUEST),
            ("/api/streams/nodash", StatusCode::BAD_REQUEST),
            ("/api/providers/cams", StatusCode::OK),
            ("/api/providers/none", StatusCode::NOT_FOUND),
            ("/api/providers/a.b", StatusCode::BAD_REQUEST),
            ("/api/streams?provider=a.b", StatusCode::BAD_REQUEST),
            ("/info/stream/cams-nine", StatusCode::NOT_FOUND),
            ("/info/provider/none", StatusCode::NOT_FOUND),
        ] {
            let (status, body) = get(&st, "GET", uri, PUBLIC).await;
            assert_eq!(status, want, "{uri}: {body}");
            if status.is_client_error() {
                assert!(body["error"].is_string(), "{uri}: {body}");
            }
        }
        // The listing a request needs is asked for first.
        assert!(crate::sync::lock(&listings.asked).contains(&"stream:cams-one".to_string()));
    }

    #[tokio::test]
    async fn the_public_sees_no_errors_logs_or_instance_files() {
        let (st, _) = streams();
        let (_, p) = get(&st, "GET", "/api/providers/cams", PUBLIC).await;
        assert_eq!(p["has_error"], true);
        for hidden in ["last_error", "warnings", "file"] {
            assert!(p.get(hidden).is_none(), "{hidden} shown: {p}");
        }
        let (_, p) = get(&st, "GET", "/api/providers/cams", ADMIN).await;
        assert!(p["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("refused")));
        assert!(p["file"].is_string());
        let (_, s) = get(&st, "GET", "/api/streams/cams-one", PUBLIC).await;
        assert!(
            s.get("log").is_none() && s.get("last_error").is_none(),
            "{s}"
        );
        assert_eq!(s["has_error"], false);
        assert_eq!(s["state"], "idle");
        let (_, s) = get(&st, "GET", "/api/streams/cams-one", ADMIN).await;
        assert!(s["log"].is_array(), "{s}");
    }

    #[tokio::test]
    async fn lists_filter_and_keep_the_original_shapes() {
        let (st, _) = streams();
        let (_, list) = get(&st, "GET", "/api/streams?provider=cams&online=true", PUBLIC).await;
        assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
        let (_, list) = get(&st, "GET", "/api/streams?state=live", PUBLIC).await;
        assert_eq!(list, json!([]));
        let (status, s) = get(&st, "POST", "/info/stream/cams-two", PUBLIC).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            s,
            json!({"id": "cams-two", "name": "Camera two", "geo": [1.0, 2.0], "status": "online"})
        );
        let (_, p) = get(&st, "GET", "/info/provider", PUBLIC).await;
        assert_eq!(p, json!([{"id": "cams", "name": "static-list"}]));
        let (_, p) = get(&st, "GET", "/info/provider/cams", PUBLIC).await;
        assert_eq!(p.as_array().map(Vec::len), Some(2));
    }

    #[tokio::test]
    async fn admin_actions_need_the_token() {
        let (st, _) = streams();
        let (status, _) = get(&st, "POST", "/api/streams/cams-one/start", PUBLIC).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(st.supervisor.tracked(), 0);
        let (status, body) = get(&st, "POST", "/api/streams/cams-one/start", ADMIN).await;
        assert_eq!((status, &body["pinned"]), (StatusCode::OK, &json!(true)));
        // The stream's task reports the pin on its next pass.
        eventually(|| st.supervisor.status("cams-one").pinned).await;
        let (status, _) = get(&st, "POST", "/api/streams/cams-one/stop", ADMIN).await;
        assert_eq!(status, StatusCode::OK);
        eventually(|| !st.supervisor.status("cams-one").pinned).await;
    }

    #[tokio::test]
    async fn a_public_client_holds_bounded_leases() {
        let (st, _) = streams_with(|c| c.security.max_streams_per_client = 1);
        let (status, lease) =
            get(&st, "POST", "/api/streams/cams-one/watch?timeout=5", PUBLIC).await;
        assert_eq!(status, StatusCode::OK, "{lease}");
        assert_eq!(lease["lease_seconds"], 5);
        assert_eq!(st.supervisor.status("cams-one").viewers_http, 1);
        // The same client again: the same lease.
        get(&st, "POST", "/api/streams/cams-one/watch", PUBLIC).await;
        assert_eq!(st.supervisor.status("cams-one").viewers_http, 1);
        let long = format!("/api/streams/cams-two/watch?client={}", "x".repeat(129));
        assert_eq!(
            get(&st, "POST", &long, PUBLIC).await.0,
            StatusCode::BAD_REQUEST
        );
        // A second stream is one too many for max_streams_per_client = 1.
        let (status, _) = get(&st, "POST", "/api/streams/cams-two/watch", PUBLIC).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(st.supervisor.status("cams-two").viewers_http, 0);
    }

    #[tokio::test]
    async fn ready_once_listed_and_nginx_runs() {
        let listings = Arc::new(FakeListings::default());
        crate::sync::lock(&listings.pending).push(("cams".into(), "its first listing"));
        let st = ReadyState {
            listings: listings.clone(),
            nginx: None,
        };
        let app = || ready_routes().with_state(st.clone());
        let (status, body) = send(app(), testing::request("GET", "/readyz", PEER, PUBLIC)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("its first listing"), "{body}");
        crate::sync::lock(&listings.pending).clear();
        let (status, body) = send(app(), testing::request("GET", "/readyz", PEER, PUBLIC)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains(r#""nginx":"external""#), "{body}");
    }
}
