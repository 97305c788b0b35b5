//! The HTTP ingest: `POST` or `PUT /mobile/{id}` with a (chunked) MPEG-TS
//! body carrying both tracks, e.g. `ffmpeg -re -i clip.mp4 -c copy -f
//! mpegts http://HOST:8000/mobile/ID`, and `POST /mobile/{id}/position`
//! with `{"latitude": .., "longitude": ..}`. The same admission, sessions
//! and limits as the TCP ingest; the token comes as `Authorization:
//! Bearer T` or `?token=T`, the session secret as `X-DSS-Phone-Secret: S`
//! or `?secret=S` (a phone may choose its own when it first claims an id;
//! else the response carries the one it got, in the same header).

use crate::http::access::{self, Caller};
use crate::http::api::doc::Documented;
use crate::http::state::MobileState;
use crate::mobile::feed::Track;
use crate::mobile::session::{Credentials, Phones, Refused};
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRef, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use utoipa_axum::routes;

/// Largest position body (a JSON object of a few numbers).
const MAX_POSITION_BYTES: usize = 4096;

/// The ingest routes, and the legacy WebSocket `/mobile/location` (so
/// `location` is no phone id over HTTP).
pub fn routes<S>() -> Documented<S>
where
    S: Clone + Send + Sync + 'static,
    MobileState: FromRef<S>,
{
    Documented::new()
        .routes(routes!(location))
        .routes(routes!(ingest))
        .routes(routes!(position))
}

/// The original's WebSocket of phones' positions (public, like the
/// positions on the map).
#[utoipa::path(
    get,
    path = "/mobile/location",
    tag = "mobile",
    responses(
        (status = 101, description = "Upgraded: JSON positions as they come"),
        (status = 400, description = "Not a WebSocket upgrade", content_type = "text/plain", body = String),
        (status = 404, description = "The mobile ingest is off", content_type = "text/plain", body = String),
        (status = 426, description = "Not a WebSocket upgrade", content_type = "text/plain", body = String),
    )
)]
async fn location(State(st): State<MobileState>, ws: WebSocketUpgrade) -> Response {
    match phones(&st) {
        Ok(p) => crate::mobile::location::upgrade(ws, p.clone(), st.events.clone()),
        Err(e) => e.into_response(),
    }
}

pub use crate::mobile::SECRET_HEADER;

fn refused(e: &Refused) -> Response {
    let status = match e {
        Refused::Full(_) | Refused::NotListed(..) => StatusCode::SERVICE_UNAVAILABLE,
        Refused::AddressFull(_) | Refused::TooFast(_) => StatusCode::TOO_MANY_REQUESTS,
        Refused::Taken(_) | Refused::Reserved(..) => StatusCode::CONFLICT,
        Refused::Unknown(_) | Refused::Token(_) | Refused::NotOwner(_) => StatusCode::FORBIDDEN,
    };
    (status, format!("{e}\n")).into_response()
}

/// The session secret presented: the header, else `?secret=`.
fn presented_secret<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    headers
        .get(SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .or_else(|| query?.split('&').find_map(|kv| kv.strip_prefix("secret=")))
        .filter(|s| !s.is_empty())
}

/// A refusal before admission: a status and a line of text.
type Early = (StatusCode, &'static str);

fn phones(st: &MobileState) -> Result<&Arc<Phones>, Early> {
    st.phones
        .as_ref()
        .ok_or((StatusCode::NOT_FOUND, "the mobile ingest is off\n"))
}

/// The phone's id from the path: an id it chose, so it must be usable
/// (the TCP ingest can hand out one; a URL cannot).
fn phone_id(id: &str) -> Result<&str, Early> {
    if id.len() <= 64 && crate::ids::check_key(id).is_ok() {
        Ok(id)
    } else {
        Err((StatusCode::BAD_REQUEST, "invalid phone id\n"))
    }
}

/// A phone's live MPEG-TS (both tracks), for as long as the body lasts.
///
/// The same admission, sessions and limits as the TCP ingest: the token
/// as `Authorization: Bearer` or `?token=`, the session secret as
/// `X-DSS-Phone-Secret` or `?secret=` (the answer carries the one it got).
#[utoipa::path(
    method(post, put),
    path = "/mobile/{id}",
    tag = "mobile",
    params(
        crate::http::api::doc::PhonePath,
        ("token" = Option<String>, Query, description = "The ingest token (or the bearer header)"),
        ("secret" = Option<String>, Query, description = "The session secret (or the header)"),
        ("X-DSS-Phone-Secret" = Option<String>, Header, description = "The session secret"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "MPEG-TS (any content type)"),
    responses(
        (status = 200, description = "The body ended: how much was received, and the session secret",
         content_type = "text/plain", body = String,
         headers(("X-DSS-Phone-Secret" = String, description = "The session secret"))),
        (status = 400, description = "An invalid phone id", content_type = "text/plain", body = String),
        (status = 403, description = "A wrong token or secret", content_type = "text/plain", body = String),
        (status = 404, description = "The mobile ingest is off", content_type = "text/plain", body = String),
        (status = 409, description = "The id is taken or reserved", content_type = "text/plain", body = String),
        (status = 429, description = "Too many phones from the address, or too fast", content_type = "text/plain", body = String),
        (status = 503, description = "The ingest is full", content_type = "text/plain", body = String),
    )
)]
async fn ingest(
    State(st): State<MobileState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (phones, id) = match (phones(&st), phone_id(&id)) {
        (Ok(p), Ok(id)) => (p, id),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let credentials = Credentials {
        id: Some(id),
        token: access::presented_token(&headers, query.as_deref()),
        secret: presented_secret(&headers, query.as_deref()),
    };
    // Through nginx's public port: the phone's own address.
    let addr = match caller.public_ip() {
        Some(ip) => SocketAddr::new(ip, 0),
        None => peer,
    };
    let mut session = match phones.open(credentials, addr, "http").await {
        Ok(s) => s,
        Err(e) => return refused(&e),
    };
    let secret = session.secret().to_string();
    let idle = Duration::from_secs(phones.config().mobile.idle_timeout_seconds.max(1));
    let mut body = body.into_data_stream();
    let mut received: u64 = 0;
    let why = loop {
        let next = tokio::select! {
            n = tokio::time::timeout(idle, body.next()) => n,
            e = session.cut_off() => break e.to_string(),
        };
        match next {
            Err(_) => break format!("idle for {idle:?}"),
            Ok(None) => break "end of the body".into(),
            Ok(Some(Err(e))) => break format!("body: {e}"),
            Ok(Some(Ok(bytes))) => {
                received += bytes.len() as u64;
                if let Err(e) = session.media(Track::Video, &bytes).await {
                    break e.to_string();
                }
            }
        }
    };
    tracing::info!(stream = %session.stream_id(), %addr, received, "http ingest ended: {why}");
    (
        StatusCode::OK,
        [(SECRET_HEADER, secret.clone())],
        format!("received {received} bytes: {why}\nsecret: {secret}\n"),
    )
        .into_response()
}

/// What a phone reports of its position (any other members are passed on).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PositionBody {
    /// Latitude.
    latitude: f64,
    /// Longitude.
    longitude: f64,
}

/// A streaming phone's position, `{"latitude": .., "longitude": ..}`.
#[utoipa::path(
    post,
    path = "/mobile/{id}/position",
    tag = "mobile",
    params(
        crate::http::api::doc::PhonePath,
        ("token" = Option<String>, Query, description = "The ingest token (or the bearer header)"),
        ("secret" = Option<String>, Query, description = "The session secret (or the header)"),
        ("X-DSS-Phone-Secret" = Option<String>, Header, description = "The session secret"),
    ),
    request_body(content = PositionBody, content_type = "application/json", description = "The position (and anything else the phone reports)"),
    responses(
        (status = 204, description = "Passed to the phone's provider"),
        (status = 400, description = "An invalid phone id, or not JSON", content_type = "text/plain", body = String),
        (status = 403, description = "A wrong token or secret", content_type = "text/plain", body = String),
        (status = 404, description = "The mobile ingest is off", content_type = "text/plain", body = String),
        (status = 409, description = "The phone is not streaming", content_type = "text/plain", body = String),
        (status = 413, description = "Too large", content_type = "text/plain", body = String),
    )
)]
async fn position(
    State(st): State<MobileState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (phones, id) = match (phones(&st), phone_id(&id)) {
        (Ok(p), Ok(id)) => (p, id),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    if body.len() > MAX_POSITION_BYTES {
        return (StatusCode::PAYLOAD_TOO_LARGE, "position too large\n").into_response();
    }
    let credentials = Credentials {
        id: Some(id),
        token: access::presented_token(&headers, query.as_deref()),
        secret: presented_secret(&headers, query.as_deref()),
    };
    match phones.check_owner(id, &credentials) {
        Ok(true) => {}
        Ok(false) => return (StatusCode::CONFLICT, "the phone is not streaming\n").into_response(),
        Err(e) => return refused(&e),
    }
    // The original's user-data shape, for the provider.
    let Ok(content) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON\n").into_response();
    };
    let payload = serde_json::json!({ "type": "coord", "content": content }).to_string();
    if phones.user_data(id, payload.as_bytes()).await {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::CONFLICT, "the phone is not streaming\n").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::state::testing::{request, send, PEER, PUBLIC};

    #[tokio::test]
    async fn an_ingest_that_is_off_says_so_before_reading_anything() {
        let st = MobileState {
            phones: None,
            events: Arc::new(crate::events::Events::new()),
        };
        for (method, uri) in [
            ("POST", "/mobile/phone1"),
            ("PUT", "/mobile/phone1"),
            ("POST", "/mobile/phone1/position"),
        ] {
            let (status, body) = send(
                routes().into_router().with_state(st.clone()),
                request(method, uri, PEER, PUBLIC),
            )
            .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}");
            assert_eq!(body, "the mobile ingest is off\n");
        }
    }

    #[test]
    fn a_phone_id_from_a_url_must_be_usable() {
        assert_eq!(phone_id("phone_1"), Ok("phone_1"));
        for bad in ["", "..", "a/b", "a b", &"x".repeat(65)] {
            assert_eq!(
                phone_id(bad).map_err(|e| e.0),
                Err(StatusCode::BAD_REQUEST),
                "{bad:?}"
            );
        }
    }
}
