//! The original DSS's WebSocket `/mobile/location`: phones' positions
//! pushed to map pages, in its message shapes.
//!
//! On connect the server sends `{"request":"all","content":[…]}`, one
//! element per connected phone (`start`, `active`, its last `position`
//! or null, and its `name`); then `{"request":"update","content":{"name":
//! …,"info":{"time":{"$date":MS},"coord":[lat,lon]}}}` for every
//! position and `{"request":"update","content":{"name":…,"info":
//! "finished"}}` when a phone leaves. Names are the phones' stream ids
//! (`phones-<id>`, where the original had `M_<id>`). What clients send is
//! ignored. The events come from the host's [`Events`]; a client too slow
//! for them is sent `all` again rather than holding memory.

use super::session::{Location, Phones};
use crate::events::{Event, Events};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// The original pinged every client this often; a dead connection is
/// found by the ping's failed write.
const PING_INTERVAL: Duration = Duration::from_secs(15);

/// A client that does not take a message within this time is dropped (it
/// holds a socket buffer full of positions nobody reads).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest message or frame a client may send (what it sends is ignored:
/// the original's pages send nothing). The library's default, 64 MiB,
/// let any client make the host buffer that much per connection.
pub const MAX_CLIENT_MESSAGE: usize = 4 * 1024;

/// Answers the upgrade and serves the client until it leaves.
pub fn upgrade(ws: WebSocketUpgrade, phones: Arc<Phones>, events: Arc<Events>) -> Response {
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve(socket, phones, events))
        .into_response()
}

async fn serve(mut socket: WebSocket, phones: Arc<Phones>, events: Arc<Events>) {
    // Subscribed before the first `all`: nothing between the two is lost.
    let mut rx = events.subscribe();
    if send(&mut socket, all(&phones.locations())).await.is_err() {
        return;
    }
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    loop {
        let out = tokio::select! {
            m = socket.recv() => match m {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
            _ = ping.tick() => Message::Ping(Default::default()),
            e = rx.recv() => match e {
                Ok(e) => match update(&e) {
                    Some(v) => Message::Text(v.to_string().into()),
                    None => continue,
                },
                Err(RecvError::Lagged(_)) => Message::Text(all(&phones.locations()).to_string().into()),
                Err(RecvError::Closed) => return,
            },
        };
        if !matches!(
            tokio::time::timeout(SEND_TIMEOUT, socket.send(out)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}

async fn send(socket: &mut WebSocket, v: Value) -> Result<(), ()> {
    match tokio::time::timeout(
        SEND_TIMEOUT,
        socket.send(Message::Text(v.to_string().into())),
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// The original's `$date` (Unix ms).
fn date(ms: u64) -> Value {
    json!({ "$date": ms })
}

/// The `all` message for `phones`.
pub fn all(phones: &[Location]) -> Value {
    let content: Vec<Value> = phones
        .iter()
        .map(|p| {
            json!({
                "start": date(p.started_ms),
                "active": true,
                "position": p.last.map(|(t, lat, lon)| json!({
                    "time": date(t),
                    "coord": [lat, lon],
                })),
                "name": p.id,
            })
        })
        .collect();
    json!({ "request": "all", "content": content })
}

/// The `update` message for `event`, if it is about a phone.
pub fn update(event: &Event) -> Option<Value> {
    let (name, info) = match event {
        Event::Position { id, t_ms, lat, lon } => {
            (id, json!({ "time": date(*t_ms), "coord": [lat, lon] }))
        }
        Event::Phone { id, online: false } => (id, json!("finished")),
        _ => return None,
    };
    Some(json!({ "request": "update", "content": { "name": name, "info": info } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_the_original_shapes() {
        let phones = [
            Location {
                id: "phones-a".into(),
                started_ms: 5,
                last: Some((7, -22.86, -43.23)),
            },
            Location {
                id: "phones-b".into(),
                started_ms: 6,
                last: None,
            },
        ];
        assert_eq!(
            all(&phones),
            json!({"request": "all", "content": [
                {"start": {"$date": 5}, "active": true, "name": "phones-a",
                 "position": {"time": {"$date": 7}, "coord": [-22.86, -43.23]}},
                {"start": {"$date": 6}, "active": true, "name": "phones-b", "position": null},
            ]})
        );
        let pos = Event::Position {
            id: "phones-a".into(),
            t_ms: 9,
            lat: 1.5,
            lon: 2.5,
        };
        assert_eq!(
            update(&pos).unwrap(),
            json!({"request": "update", "content": {"name": "phones-a",
                "info": {"time": {"$date": 9}, "coord": [1.5, 2.5]}}})
        );
        let gone = Event::Phone {
            id: "phones-a".into(),
            online: false,
        };
        assert_eq!(
            update(&gone).unwrap(),
            json!({"request": "update", "content": {"name": "phones-a", "info": "finished"}})
        );
        let came = Event::Phone {
            id: "phones-a".into(),
            online: true,
        };
        assert_eq!(update(&came), None);
    }
}
