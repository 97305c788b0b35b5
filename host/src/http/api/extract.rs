//! The API's extractors: a query string or a path segment that does not
//! parse is refused like everything else, a JSON [`ApiError`] (axum's own
//! rejections are plain text).

use super::ApiError;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// `Query<T>`, refused as a JSON 400.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(ApiQuery(q)),
            Err(e) => Err(ApiError(e.status(), e.body_text())),
        }
    }
}

/// `Path<T>`, refused as JSON (a segment that is not UTF-8: 400).
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(p)) => Ok(ApiPath(p)),
            Err(e) => Err(ApiError(e.status(), e.body_text())),
        }
    }
}
