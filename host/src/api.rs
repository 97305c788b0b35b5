//! The host's HTTP surface: REST JSON under `/api/`, `/healthz`, the
//! original DSS's `/info/*` routes, and the web page at `/`.
//!
//! Ids from the URL are checked ([`crate::ids`]) before any lookup:
//! malformed → 400, well-formed but unknown → 404.

use crate::catalog::{Catalog, ProviderState, StreamEntry};
use crate::ids;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The catalog.
    pub catalog: Arc<Catalog>,
}

/// An API error: a status and a message, sent as `{"error": ...}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad_request(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }

    fn not_found(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// The routes, with `web_dir` served at `/`.
pub fn router(state: AppState, web_dir: &std::path::Path) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/providers", get(providers))
        .route("/api/providers/{id}", get(provider))
        .route("/api/streams", get(streams))
        .route("/api/streams/{id}", get(stream))
        .route(
            "/info/provider",
            get(legacy_providers).post(legacy_providers),
        )
        .route(
            "/info/provider/{id}",
            get(legacy_provider).post(legacy_provider),
        )
        .route("/info/stream/{id}", get(legacy_stream).post(legacy_stream))
        .fallback_service(tower_http::services::ServeDir::new(web_dir))
        .with_state(state)
}

async fn healthz(State(st): State<AppState>) -> Json<Value> {
    let snap = st.catalog.snapshot();
    let failed: Vec<&str> = snap
        .providers
        .values()
        .filter(|p| p.state == ProviderState::Failed)
        .map(|p| p.id.as_str())
        .collect();
    Json(json!({
        "status": "ok",
        "providers": snap.providers.len(),
        "providers_failed": failed,
        "streams": snap.streams.len(),
    }))
}

async fn providers(State(st): State<AppState>) -> Json<Value> {
    let snap = st.catalog.snapshot();
    Json(json!(snap.providers.values().collect::<Vec<_>>()))
}

fn check_provider(id: &str) -> Result<(), ApiError> {
    ids::check_provider_id(id).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn provider(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_provider(&id)?;
    let snap = st.catalog.snapshot();
    let p = snap
        .providers
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no provider {id:?}")))?;
    Ok(Json(json!(p)))
}

/// Filters of `GET /api/streams`.
#[derive(Debug, Deserialize)]
pub struct StreamFilter {
    provider: Option<String>,
    online: Option<bool>,
}

async fn streams(
    State(st): State<AppState>,
    Query(f): Query<StreamFilter>,
) -> Result<Json<Vec<Arc<StreamEntry>>>, ApiError> {
    if let Some(p) = &f.provider {
        check_provider(p)?;
    }
    let snap = st.catalog.snapshot();
    let list = snap
        .streams
        .values()
        .filter(|s| f.provider.as_ref().is_none_or(|p| &s.provider == p))
        .filter(|s| f.online.is_none_or(|o| s.online == o))
        .cloned()
        .collect();
    Ok(Json(list))
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
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = lookup(&st.catalog, &id)?;
    Ok(Json(json!(s)))
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

async fn legacy_providers(State(st): State<AppState>) -> Json<Value> {
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
    State(st): State<AppState>,
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
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = lookup(&st.catalog, &id)?;
    Ok(Json(legacy_data(&s)))
}
