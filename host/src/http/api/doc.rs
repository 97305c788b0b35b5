//! The API's OpenAPI 3.1 document, generated from the handlers
//! (`utoipa`), and the only way a route is added: [`Documented`] takes
//! what `utoipa_axum::routes!` makes of a handler, which does not compile
//! without the handler's `#[utoipa::path]`. Served at `/api/openapi.json`:
//! the public operations to the public surface, every operation to the
//! private one.
//!
//! An operation is private when it needs the API token (its `security`
//! is bearer only) or is nginx's own (tagged [`NGINX`]); an operation
//! that serves both (more detail with the token) lists an empty
//! requirement beside bearer.

use crate::http::access::Caller;
use axum::extract::Extension;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;
use std::sync::Arc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

/// The tag of the routes only nginx calls (callbacks, the playlist check,
/// the original's `/control`): in the private document only.
pub const NGINX: &str = "nginx";

/// An error: why the request was refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong, in words.
    pub error: String,
}

/// A stream id in the path (the pattern is [`crate::ids::STREAM_ID_PATTERN`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct StreamPath {
    /// `<provider>-<key>`.
    #[param(pattern = "^[a-z][a-z0-9_]{0,31}-[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")]
    id: String,
}

/// A provider instance id in the path
/// ([`crate::ids::PROVIDER_ID_PATTERN`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct ProviderPath {
    /// The instance id.
    #[param(pattern = "^[a-z][a-z0-9_]{0,31}$")]
    id: String,
}

/// A phone's id in the path ([`crate::ids::KEY_PATTERN`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct PhonePath {
    /// The phone's id (a stream key).
    #[param(pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")]
    id: String,
}

/// The document's fixed parts: what DSS is, its bearer token.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Dynamic Stream Server",
        description = "On-demand video restreaming: the catalogued streams, their viewers and \
                       FFmpeg, the providers, phones, statistics and recordings. Without the API \
                       token (`Authorization: Bearer TOKEN`) a caller is public: it sees this \
                       document's public operations, and no sources, logs or errors."
    ),
    modifiers(&Bearer),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

/// The API token as an HTTP bearer scheme.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Routes that all have an operation in the document.
pub struct Documented<S>(OpenApiRouter<S>);

impl<S: Clone + Send + Sync + 'static> Documented<S> {
    /// No routes yet.
    pub fn new() -> Self {
        Documented(OpenApiRouter::new())
    }

    /// Adds `utoipa_axum::routes!(handler, ...)`: its paths, operations
    /// and schemas, and the handlers on the methods they document.
    pub fn routes(self, routes: UtoipaMethodRouter<S>) -> Self {
        Documented(self.0.routes(routes))
    }

    /// Adds `other`'s routes and operations.
    pub fn merge(self, other: Documented<S>) -> Self {
        Documented(self.0.merge(other.0))
    }

    /// The routes and their operations.
    pub fn split(self) -> (Router<S>, Document) {
        self.0.split_for_parts()
    }

    /// The routes alone (the handlers' unit tests).
    #[cfg(test)]
    pub fn into_router(self) -> Router<S> {
        self.split().0
    }
}

/// The two documents, serialized once at start-up.
#[derive(Debug, Clone)]
pub struct Documents {
    public: Arc<str>,
    private: Arc<str>,
}

impl Documents {
    /// `operations` (the routes') completed by [`ApiDoc`]: all of them
    /// privately, the public ones publicly.
    pub fn new(operations: Document) -> Documents {
        let doc = ApiDoc::openapi().merge_from(operations);
        let mut public = doc.clone();
        public.paths.paths.retain(|_, item| {
            for op in operations_mut(item) {
                if op.as_ref().is_some_and(|o| !is_public(o)) {
                    *op = None;
                }
            }
            operations_mut(item).into_iter().any(|o| o.is_some())
        });
        let json = |d: &Document| serde_json::to_string(d).unwrap_or_default();
        Documents {
            public: json(&public).into(),
            private: json(&doc).into(),
        }
    }

    /// The document `caller` gets.
    pub fn for_caller(&self, caller: Caller) -> &Arc<str> {
        if caller.is_private() {
            &self.private
        } else {
            &self.public
        }
    }
}

/// A document's text as bytes for a response body.
struct ArcBytes(Arc<str>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Every method slot of a path item.
fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> [&mut Option<utoipa::openapi::path::Operation>; 8] {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
}

/// Whether an operation needs no token and is not nginx's.
fn is_public(op: &utoipa::openapi::path::Operation) -> bool {
    if op.tags.iter().flatten().any(|t| t == NGINX) {
        return false;
    }
    match &op.security {
        None => true,
        Some(reqs) if reqs.is_empty() => true,
        Some(reqs) => reqs.iter().any(is_empty_requirement),
    }
}

/// Whether a security requirement asks for nothing (`{}`: optional auth).
fn is_empty_requirement(req: &utoipa::openapi::security::SecurityRequirement) -> bool {
    serde_json::to_value(req).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
}

/// The API's OpenAPI 3.1 document.
///
/// Every operation with the API token, the public ones without it.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    security((), ("bearer" = [])),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn openapi(
    Extension(docs): Extension<Documents>,
    Extension(caller): Extension<Caller>,
) -> Response {
    // Shared, not copied: the private document is about 60 KB.
    let body = axum::body::Bytes::from_owner(ArcBytes(docs.for_caller(caller).clone()));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clients generate code from the document: one name per operation.
    #[test]
    fn operation_ids_are_unique() {
        let doc = serde_json::to_value(super::super::documented().split().1).expect("JSON");
        let mut seen = std::collections::BTreeMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                if let Some(id) = op["operationId"].as_str() {
                    let here = format!("{method} {path}");
                    // One handler on several methods is one operation.
                    let first = seen.entry(id.to_string()).or_insert_with(|| path.clone());
                    assert_eq!(first, path, "{id} names {here} and another path");
                }
            }
        }
        assert!(seen.len() > 30, "{seen:?}");
    }

    /// The patterns written in the param structs are the ids' own.
    #[test]
    fn the_documented_patterns_are_the_checked_ones() {
        let doc = ApiDoc::openapi().merge_from(super::super::documented().split().1);
        let text = serde_json::to_string(&doc).expect("JSON");
        for p in [
            crate::ids::STREAM_ID_PATTERN,
            crate::ids::PROVIDER_ID_PATTERN,
            crate::ids::KEY_PATTERN,
        ] {
            let quoted = serde_json::to_string(p).expect("JSON");
            assert!(text.contains(&quoted), "{p} is not in the document");
        }
    }

    #[test]
    fn the_public_document_keeps_what_needs_no_token() {
        let (_, ops) = super::super::documented().split();
        let docs = Documents::new(ops);
        let public: serde_json::Value = serde_json::from_str(&docs.public).expect("JSON");
        let private: serde_json::Value = serde_json::from_str(&docs.private).expect("JSON");
        assert_eq!(private["openapi"], "3.1.0");
        let paths = |d: &serde_json::Value| {
            d["paths"]
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let (public, private) = (paths(&public), paths(&private));
        for p in ["/api/streams", "/api/streams/{id}", "/api/openapi.json"] {
            assert!(public.contains(&p.to_string()), "{p} public");
        }
        for p in [
            "/metrics",
            "/api/recordings",
            "/hooks/{secret}/{event}",
            "/control/{id}/{action}",
        ] {
            assert!(!public.contains(&p.to_string()), "{p} not public");
            assert!(private.contains(&p.to_string()), "{p} private");
        }
    }
}
