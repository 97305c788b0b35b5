//! What the host says of itself: `/healthz` (and the original's
//! `/api/status`), `/readyz`, `/metrics`, the map's settings
//! (`/api/web`) and the hosts of a cluster (`/api/cluster`).

use super::doc::Documented;
use super::{authorize, ApiError};
use crate::catalog::ProviderState;
use crate::http::access::Caller;
use crate::http::state::{AppState, ReadyState, StreamsState};
use axum::extract::{Extension, FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::routes;

/// `/healthz`, `/api/status`, `/metrics`.
pub(super) fn host_routes() -> Documented<AppState> {
    Documented::new()
        .routes(routes!(healthz))
        .routes(routes!(status))
        .routes(routes!(metrics))
}

/// `/readyz`.
pub(super) fn ready_routes<S>() -> Documented<S>
where
    S: Clone + Send + Sync + 'static,
    ReadyState: FromRef<S>,
{
    Documented::new().routes(routes!(readyz))
}

/// `/api/web`, `/api/cluster`.
pub(super) fn site_routes<S>() -> Documented<S>
where
    S: Clone + Send + Sync + 'static,
    StreamsState: FromRef<S>,
{
    Documented::new()
        .routes(routes!(web))
        .routes(routes!(cluster))
}

/// Whether the host can answer for what it holds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Everything answers.
    Ok,
    /// The store does not (the host serves from memory meanwhile).
    Degraded,
}

/// The host's health; the details only with the API token.
#[derive(Debug, Serialize, ToSchema)]
pub struct Healthz {
    /// `ok` or `degraded`.
    pub status: Health,
    /// Provider instances.
    pub providers: usize,
    /// Catalogued streams.
    pub streams: usize,
    /// The instances whose last attempt failed (private).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub providers_failed: Option<Vec<String>>,
    /// The store: its backend and health (private).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub store: Option<Value>,
    /// The mobile ingest's counters, `null` when it is off (private).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub mobile: Option<Value>,
    /// The process: memory, threads, files (private).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub process: Option<Value>,
    /// FFmpeg: running, the cap, spawns, refusals (private).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub ffmpeg: Option<Value>,
}

fn health(st: &AppState, caller: Caller) -> Json<Healthz> {
    let snap = st.catalog.snapshot();
    let store = st.store.health();
    let degraded = !matches!(store, dss_store::StoreHealth::Ok);
    let mut h = Healthz {
        status: if degraded {
            Health::Degraded
        } else {
            Health::Ok
        },
        providers: snap.providers.len(),
        streams: snap.streams.len(),
        providers_failed: None,
        store: None,
        mobile: None,
        process: None,
        ffmpeg: None,
    };
    if !caller.is_private() {
        return Json(h);
    }
    h.providers_failed = Some(
        snap.providers
            .values()
            .filter(|p| p.state == ProviderState::Failed)
            .map(|p| p.id.clone())
            .collect(),
    );
    h.store = Some(json!({ "backend": st.store.describe(), "health": store }));
    h.mobile = Some(json!(st.phones.as_ref().map(|p| json!({
        "connected": p.connected(),
        "refused": p.refused.load(std::sync::atomic::Ordering::Relaxed),
        "bad_user_data": p.bad_user_data.load(std::sync::atomic::Ordering::Relaxed),
        "unknown_frames": p.unknown_frames.load(std::sync::atomic::Ordering::Relaxed),
    }))));
    h.process = Some(json!(crate::memory::process_stats()));
    h.ffmpeg = Some(json!({
        "running": st.supervisor.running(),
        "max_running": st.config.ffmpeg.max_running,
        "spawns": st.supervisor.spawns_total(),
        "capacity_refusals": st.supervisor.capacity_refusals(),
        "tracked_streams": st.supervisor.tracked(),
    }));
    Json(h)
}

/// The host's health: whether it answers, and its store.
///
/// Providers, streams and the store's state for everyone; failed
/// instances, the mobile ingest, memory and FFmpeg with the token.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "host",
    security((), ("bearer" = [])),
    responses((status = 200, description = "The host answers", body = Healthz))
)]
pub(super) async fn healthz(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Json<Healthz> {
    health(&st, caller)
}

/// The host's health, at the original DSS's address (as `/healthz`).
#[utoipa::path(
    get,
    path = "/api/status",
    tag = "host",
    security((), ("bearer" = [])),
    responses((status = 200, description = "The host answers", body = Healthz))
)]
pub(super) async fn status(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Json<Healthz> {
    health(&st, caller)
}

/// Whether nginx runs, for `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NginxState {
    /// Managed by the host and running.
    Up,
    /// Managed by the host and not running (yet, or any more).
    Down,
    /// Run by the operator: its own service's health, not checked here.
    External,
}

/// What `/readyz` waits for.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// Whether the host serves everything it was configured with.
    pub ready: bool,
    /// nginx.
    pub nginx: NginxState,
    /// The provider instances without a first listing yet.
    pub pending: Vec<Pending>,
}

/// A provider instance not listed yet.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pending {
    /// The instance.
    pub provider: String,
    /// What it waits for.
    pub waiting_for: &'static str,
}

/// Whether the host is ready: nginx runs and every provider has listed.
///
/// 200 once nginx runs (when the host manages it) and every enabled
/// provider instance has served a first listing (persisted, fresh or
/// fallback; lazy ones list on first use); 503 before, saying what is
/// pending. `/healthz` only says the process answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "host",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not yet: what is pending", body = Readiness),
    )
)]
pub(super) async fn readyz(State(st): State<ReadyState>) -> Response {
    let pending: Vec<Pending> = st
        .listings
        .pending()
        .into_iter()
        .map(|(provider, waiting_for)| Pending {
            provider,
            waiting_for,
        })
        .collect();
    let nginx = match &st.nginx {
        Some(n) if n.up() => NginxState::Up,
        Some(_) => NginxState::Down,
        None => NginxState::External,
    };
    let ready = pending.is_empty() && !matches!(nginx, NginxState::Down);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        ready,
        nginx,
        pending,
    };
    (status, Json(body)).into_response()
}

/// The host's metrics, in the OpenMetrics text format (API token only).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "host",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The metrics",
         content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "Without the API token", body = super::doc::ErrorBody),
    )
)]
pub(super) async fn metrics(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(caller)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::http::metrics::render(&st).await,
    ))
}

/// The page's map settings (`[web]`).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebSettings {
    /// The tile URL template, `null` for the page's default.
    pub tiles: Option<String>,
    /// The tiles' attribution.
    pub attribution: String,
    /// `[lat, lon]` of the first view, `null` to fit the streams.
    pub center: Option<[f64; 2]>,
    /// The first view's zoom.
    pub zoom: Option<u8>,
}

/// The web page's map settings.
#[utoipa::path(
    get,
    path = "/api/web",
    tag = "host",
    responses((status = 200, description = "The settings", body = WebSettings))
)]
pub(super) async fn web(State(st): State<StreamsState>) -> Json<WebSettings> {
    let w = &st.config.web;
    Json(WebSettings {
        tiles: w.tiles.clone(),
        attribution: w.attribution.clone(),
        center: w.center,
        zoom: w.zoom,
    })
}

/// The hosts sharing the store, and who owns which stream.
///
/// Last seen, FFmpeg running and owned streams per host; `{"enabled":
/// false}` on a single host. Their addresses only with the token.
#[utoipa::path(
    get,
    path = "/api/cluster",
    tag = "host",
    security((), ("bearer" = [])),
    responses((status = 200, description = "The cluster (`enabled`, `nodes`, ...)", body = Object))
)]
pub(super) async fn cluster(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::state::testing::{self, send, FakeListings, PEER, PUBLIC};
    use std::sync::Arc;

    #[tokio::test]
    async fn ready_once_listed_and_nginx_runs() {
        let listings = Arc::new(FakeListings::default());
        crate::sync::lock(&listings.pending).push(("cams".into(), "its first listing"));
        let st = ReadyState {
            listings: listings.clone(),
            nginx: None,
        };
        let app = || ready_routes().into_router().with_state(st.clone());
        let (status, body) = send(app(), testing::request("GET", "/readyz", PEER, PUBLIC)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("its first listing"), "{body}");
        crate::sync::lock(&listings.pending).clear();
        let (status, body) = send(app(), testing::request("GET", "/readyz", PEER, PUBLIC)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains(r#""nginx":"external""#), "{body}");
    }
}
