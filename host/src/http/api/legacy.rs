//! The original DSS's `/info/*` routes, in its shapes (GET or POST, as
//! its clients call them).

use super::doc::{Documented, ErrorBody};
use super::extract::ApiPath;
use super::providers::check_provider;
use super::streams::lookup;
use super::ApiError;
use crate::catalog::{ProviderState, StreamEntry};
use crate::http::state::StreamsState;
use axum::extract::{FromRef, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

/// `/info/provider`, `/info/provider/{id}`, `/info/stream/{id}`.
pub(super) fn routes<S>() -> Documented<S>
where
    S: Clone + Send + Sync + 'static,
    StreamsState: FromRef<S>,
{
    Documented::new()
        .routes(routes!(providers))
        .routes(routes!(provider))
        .routes(routes!(stream))
}

/// `online` or `offline`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LegacyStatus {
    /// The upstream says it is on.
    Online,
    /// It says it is off.
    Offline,
}

/// The original DSS's stream data.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyStream {
    /// The stream id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `[lat, lon]`, `null` when it has no position.
    pub geo: Option<[f64; 2]>,
    /// Whether the upstream says it is on.
    pub status: LegacyStatus,
}

impl From<&StreamEntry> for LegacyStream {
    fn from(s: &StreamEntry) -> Self {
        LegacyStream {
            id: s.id.clone(),
            name: s.name.clone(),
            geo: s.geo.map(|g| [g.lat, g.lon]),
            status: if s.online {
                LegacyStatus::Online
            } else {
                LegacyStatus::Offline
            },
        }
    }
}

/// The original DSS's provider data.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyProvider {
    /// The instance id.
    pub id: String,
    /// Its module's description (or the module's name).
    pub name: String,
}

/// The enabled provider instances, in the original's shape.
#[utoipa::path(
    method(get, post),
    path = "/info/provider",
    operation_id = "legacy_providers",
    tag = "original",
    responses((status = 200, description = "The instances", body = [LegacyProvider]))
)]
pub(super) async fn providers(State(st): State<StreamsState>) -> Json<Vec<LegacyProvider>> {
    let snap = st.catalog.snapshot();
    Json(
        snap.providers
            .values()
            .filter(|p| p.state != ProviderState::Disabled)
            .map(|p| LegacyProvider {
                id: p.id.clone(),
                name: p
                    .info
                    .as_ref()
                    .map(|i| i.description.clone())
                    .unwrap_or_else(|| p.module.clone()),
            })
            .collect(),
    )
}

/// A provider instance's streams, in the original's shape.
#[utoipa::path(
    method(get, post),
    path = "/info/provider/{id}",
    operation_id = "legacy_provider",
    tag = "original",
    params(super::doc::ProviderPath),
    responses(
        (status = 200, description = "Its streams", body = [LegacyStream]),
        (status = 400, description = "Not a provider id", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
    )
)]
pub(super) async fn provider(
    State(st): State<StreamsState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<LegacyStream>>, ApiError> {
    check_provider(&id)?;
    let snap = st.catalog.snapshot();
    if !snap.providers.contains_key(&id) {
        return Err(ApiError::not_found(format!("no provider {id:?}")));
    }
    Ok(Json(
        snap.streams
            .values()
            .filter(|s| s.provider == id)
            .map(|s| LegacyStream::from(&**s))
            .collect(),
    ))
}

/// A stream, in the original's shape.
#[utoipa::path(
    method(get, post),
    path = "/info/stream/{id}",
    operation_id = "legacy_stream",
    tag = "original",
    params(super::doc::StreamPath),
    responses(
        (status = 200, description = "The stream", body = LegacyStream),
        (status = 400, description = "Not a stream id", body = ErrorBody),
        (status = 404, description = "Not catalogued", body = ErrorBody),
    )
)]
pub(super) async fn stream(
    State(st): State<StreamsState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<LegacyStream>, ApiError> {
    let s = lookup(&st.catalog, &id)?;
    Ok(Json(LegacyStream::from(&*s)))
}
