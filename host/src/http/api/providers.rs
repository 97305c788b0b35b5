//! The provider instances over HTTP: their states, modules and listings.

use super::doc::{Documented, ErrorBody};
use super::extract::ApiPath;
use super::ApiError;
use crate::catalog::{ProviderState, ProviderStatus};
use crate::http::access::Caller;
use crate::http::state::StreamsState;
use crate::ids;
use axum::extract::{Extension, FromRef, State};
use axum::Json;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::routes;

/// `/api/providers`, `/api/providers/{id}`.
pub(super) fn routes<S>() -> Documented<S>
where
    S: Clone + Send + Sync + 'static,
    StreamsState: FromRef<S>,
{
    Documented::new()
        .routes(routes!(providers))
        .routes(routes!(provider))
}

/// A provider id from the URL: 400 when it is not one.
pub(super) fn check_provider(id: &str) -> Result<(), ApiError> {
    ids::check_provider_id(id).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A provider's status with the age of the listing it serves; a public
/// caller does not see errors, warnings or the instance file (errors can
/// quote feed URLs and their keys).
pub(super) fn provider_json(p: &ProviderStatus, caller: Caller) -> Value {
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

/// A provider instance, as the API shows it. (What `provider_json`
/// writes, for the document.)
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Provider {
    /// The instance id (its file's name).
    id: String,
    /// The module (`.wasm`) it runs.
    module: String,
    /// Its state.
    state: ProviderState,
    /// The module's version.
    version: Option<String>,
    /// The WIT interface version the module implements.
    interface_version: Option<String>,
    /// Streams it lists.
    stream_count: u64,
    /// When the module was loaded (Unix ms).
    loaded_at_ms: Option<u64>,
    /// When the last listing succeeded (Unix ms).
    refreshed_at_ms: Option<u64>,
    /// `provider`, `cache`, `fallback` or `cluster`.
    listing_source: Option<String>,
    /// How old the served listing is (ms).
    listing_age_ms: Option<u64>,
    /// Whether the served listing is not this run's latest.
    stale: bool,
    /// Whether its last attempt failed (public).
    has_error: Option<bool>,
    /// Why its last attempt failed (private).
    last_error: Option<String>,
    /// Warnings of its last listing (private).
    warnings: Option<Vec<String>>,
    /// Its instance file (private).
    file: Option<String>,
}

/// The provider instances and their states.
#[utoipa::path(
    get,
    path = "/api/providers",
    tag = "providers",
    security((), ("bearer" = [])),
    responses((status = 200, description = "Every instance, in id order", body = [Provider]))
)]
pub(super) async fn providers(
    State(st): State<StreamsState>,
    Extension(caller): Extension<Caller>,
) -> Json<Vec<Value>> {
    let snap = st.catalog.snapshot();
    Json(
        snap.providers
            .values()
            .map(|p| provider_json(p, caller))
            .collect(),
    )
}

/// One provider instance.
///
/// With the token, its errors, warnings and instance file too.
#[utoipa::path(
    get,
    path = "/api/providers/{id}",
    tag = "providers",
    security((), ("bearer" = [])),
    params(super::doc::ProviderPath),
    responses(
        (status = 200, description = "The instance", body = Provider),
        (status = 400, description = "Not a provider id", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
    )
)]
pub(super) async fn provider(
    State(st): State<StreamsState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    check_provider(&id)?;
    let snap = st.catalog.snapshot();
    let p = snap
        .providers
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no provider {id:?}")))?;
    Ok(Json(provider_json(p, caller)))
}
