//! Clients of the host's push channels: Server-Sent Events and WebSocket.

use crate::wait::wait_for;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A Server-Sent Events client (of `/api/events`): it asks over HTTP/1.0
/// (so the body is not chunked) and collects `(event, data)` pairs in a
/// thread until dropped.
pub struct EventsClient {
    events: Arc<Mutex<Vec<(String, Value)>>>,
    stream: std::net::TcpStream,
}

impl EventsClient {
    /// Connects to `base` (`http://HOST:PORT`) and reads `path`.
    pub fn connect(base: &str, path: &str) -> EventsClient {
        use std::io::{BufRead, Write};
        let addr = base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect for events");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send request");
        let events = Arc::new(Mutex::new(Vec::new()));
        let (out, reader) = (events.clone(), stream.try_clone().expect("clone"));
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(reader)
                .lines()
                .map_while(Result::ok);
            // The status line and headers.
            for line in lines.by_ref() {
                if line.is_empty() {
                    break;
                }
            }
            let (mut name, mut data) = (String::new(), String::new());
            for line in lines {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                } else if line.is_empty() && !name.is_empty() {
                    let v = serde_json::from_str(&data).unwrap_or(Value::String(data.clone()));
                    out.lock()
                        .expect("events")
                        .push((std::mem::take(&mut name), v));
                    data.clear();
                }
            }
        });
        EventsClient { events, stream }
    }

    /// Every event so far.
    pub fn all(&self) -> Vec<(String, Value)> {
        self.events.lock().expect("events").clone()
    }

    /// Waits for the first event `f` accepts.
    pub fn wait(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&str, &Value) -> bool,
    ) -> Value {
        wait_for(what, timeout, || {
            self.all()
                .into_iter()
                .find(|(n, v)| f(n, v))
                .map(|(_, v)| v)
        })
    }
}

impl Drop for EventsClient {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A WebSocket client whose reads give up after a second (so tests wait
/// for conditions with [`wait_for`]).
pub struct WsClient(tungstenite::WebSocket<std::net::TcpStream>);

impl WsClient {
    /// Connects to `url` (`ws://HOST:PORT/PATH`).
    pub fn connect(url: &str) -> WsClient {
        let addr = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap_or_default();
        let tcp = std::net::TcpStream::connect(addr).expect("connect for the websocket");
        tcp.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let (ws, _) = tungstenite::client(url, tcp).expect("websocket handshake");
        WsClient(ws)
    }

    /// The next text message as JSON, if one comes within a second.
    pub fn next_json(&mut self) -> Option<Value> {
        loop {
            match self.0.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    return Some(serde_json::from_str(t.as_str()).expect("a JSON message"))
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.0
            .send(tungstenite::Message::Text(text.into()))
            .map_err(|e| e.to_string())
    }

    /// Whether the server has closed the connection: reads (and drops)
    /// what comes for up to a second.
    pub fn closed(&mut self) -> bool {
        loop {
            match self.0.read() {
                Ok(tungstenite::Message::Close(_)) => return true,
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }

    /// Waits for the first JSON message `f` accepts (earlier ones are
    /// dropped).
    pub fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Value) -> bool,
    ) -> Value {
        wait_for(what, timeout, || self.next_json().filter(|v| f(v)))
    }
}
