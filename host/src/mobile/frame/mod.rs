//! The mobile ingest wire format, byte-compatible with the original Python
//! DSS and its phones: frames of a 1-byte type, a 4-byte big-endian payload
//! length and the payload ([`FrameCodec`]), and the JSON payloads of the
//! handshake ([`parse_hello`], [`meta_reply`]) and of user data
//! ([`parse_user_data`]).
//!
//! A session: the phone sends a metadata frame
//! `{"type": "meta", "content": {"id": "<id>" | "", "token": "…"}}`, the
//! server answers one metadata frame carrying the session id, then the
//! phone sends video and audio MPEG-TS and user data (`coord` positions)
//! until either side closes. Real senders mislabel audio and video and
//! cut the TS anywhere (phones send ~512-byte frames), so a frame's
//! payload is a chunk of a byte stream, not a unit of anything.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde_json::{Map, Value};
use std::fmt;
use tokio_util::codec::{Decoder, Encoder};

/// Bytes before each payload: the type and the length.
pub const HEADER_SIZE: usize = 5;

/// Default largest payload accepted (1 MiB): phones send ~512-byte frames
/// and the reference sender at most 64 KiB, so this is 16 times the
/// largest real frame while bounding what one connection can make the
/// host buffer.
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;

/// Longest piece of hostile input an error message repeats.
const MAX_ECHO: usize = 64;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// Type 0: JSON metadata (the handshake).
    Meta,
    /// Type 1: video MPEG-TS (by the sender's word: senders swap them).
    Video,
    /// Type 2: audio MPEG-TS (by the sender's word).
    Audio,
    /// Type 3: JSON user data (positions and other actions).
    UserData,
}

impl FrameKind {
    /// The kind of a type byte, if it is one.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Meta),
            1 => Some(Self::Video),
            2 => Some(Self::Audio),
            3 => Some(Self::UserData),
            _ => None,
        }
    }

    /// The type byte on the wire.
    pub fn as_byte(self) -> u8 {
        match self {
            Self::Meta => 0,
            Self::Video => 1,
            Self::Audio => 2,
            Self::UserData => 3,
        }
    }

    /// A name for log lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::Meta => "metadata",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::UserData => "user data",
        }
    }
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What it carries.
    pub kind: FrameKind,
    /// The payload (never empty on the wire).
    pub payload: Bytes,
}

impl Frame {
    /// A frame of `kind` carrying `payload`.
    pub fn new(kind: FrameKind, payload: impl Into<Bytes>) -> Self {
        Self {
            kind,
            payload: payload.into(),
        }
    }
}

/// Why a byte stream is not a valid sequence of frames. Every variant but
/// [`FrameError::Io`] means the peer is not speaking the protocol: the
/// connection cannot be resynchronised and should be closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The type byte is none of 0..=3.
    #[error("unknown frame type {0} (expected 0 metadata, 1 video, 2 audio or 3 user data)")]
    UnknownType(u8),
    /// A zero payload length (no sender sends one).
    #[error("empty {0} frame (payload length 0)")]
    Empty(FrameKind),
    /// The declared payload length is over the codec's cap.
    #[error("{kind} frame of {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The frame's kind.
        kind: FrameKind,
        /// The declared length.
        len: u64,
        /// The cap.
        max: usize,
    },
    /// The stream ended inside a frame header.
    #[error("connection ended inside a frame header ({have} of {HEADER_SIZE} bytes)")]
    TruncatedHeader {
        /// Header bytes received.
        have: usize,
    },
    /// The stream ended inside a payload.
    #[error("connection ended inside a {kind} frame ({have} of {len} payload bytes)")]
    TruncatedPayload {
        /// The frame's kind.
        kind: FrameKind,
        /// Payload bytes received.
        have: usize,
        /// The declared length.
        len: usize,
    },
    /// Reading or writing the connection failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

/// The frame codec, for [`tokio_util::codec::FramedRead`] /
/// [`tokio_util::codec::FramedWrite`]. Decoding checks a header as soon as
/// its bytes arrive (the type from the first byte, the length before any
/// payload is buffered) and never makes the buffer grow past
/// [`HEADER_SIZE`] plus the declared, capped payload length.
///
/// With [`FrameCodec::skip_unknown`] (after the handshake, as the original
/// did) a frame of an unknown type is skipped, its payload dropped as it
/// arrives (never buffered), and counted in [`FrameCodec::skipped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    /// Largest payload decoded or encoded (at most `u32::MAX`).
    pub max_payload: usize,
    /// Skip frames of unknown types instead of failing.
    pub skip_unknown: bool,
    /// Frames of unknown types skipped so far.
    pub skipped: u64,
    /// The type byte of the last one skipped.
    pub last_skipped: Option<u8>,
    /// Payload bytes of the frame being skipped still to drop.
    skipping: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PAYLOAD)
    }
}

impl FrameCodec {
    /// A codec refusing payloads over `max_payload` bytes (itself capped to
    /// what the 4-byte length can say).
    pub fn new(max_payload: usize) -> Self {
        Self {
            max_payload: max_payload.min(u32::MAX as usize),
            skip_unknown: false,
            skipped: 0,
            last_skipped: None,
            skipping: 0,
        }
    }

    /// Drops what is left of a skipped frame and any whole frames of
    /// unknown types at the start of `src`; whether a known header (or
    /// nothing yet) comes next.
    fn skip(&mut self, src: &mut BytesMut) -> bool {
        loop {
            if self.skipping > 0 {
                let n = self.skipping.min(src.len());
                src.advance(n);
                self.skipping -= n;
                if self.skipping > 0 {
                    return false;
                }
            }
            let Some(&first) = src.first() else {
                return true;
            };
            if !self.skip_unknown || FrameKind::from_byte(first).is_some() {
                return true;
            }
            let Some(len) = src.get(1..HEADER_SIZE) else {
                return false;
            };
            self.skipping = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            src.advance(HEADER_SIZE);
            self.skipped += 1;
            self.last_skipped = Some(first);
        }
    }

    /// The kind and payload length of the header at the start of `src`,
    /// checked; `None` while too few bytes are there to tell.
    fn header(&self, src: &[u8]) -> Result<Option<(FrameKind, usize)>, FrameError> {
        let Some(&first) = src.first() else {
            return Ok(None);
        };
        let kind = FrameKind::from_byte(first).ok_or(FrameError::UnknownType(first))?;
        let Some(len) = src.get(1..HEADER_SIZE) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        if len == 0 {
            return Err(FrameError::Empty(kind));
        }
        if u64::from(len) > self.max_payload as u64 {
            return Err(FrameError::TooLarge {
                kind,
                len: len.into(),
                max: self.max_payload,
            });
        }
        Ok(Some((kind, len as usize)))
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if !self.skip(src) {
            return Ok(None);
        }
        let Some((kind, len)) = self.header(src)? else {
            return Ok(None);
        };
        let total = HEADER_SIZE + len;
        if src.len() < total {
            if src.capacity() < total {
                // Exactly this frame's size: `reserve` may double instead.
                let mut grown = BytesMut::with_capacity(total);
                grown.extend_from_slice(src);
                *src = grown;
            }
            return Ok(None);
        }
        src.advance(HEADER_SIZE);
        let payload = src.split_to(len).freeze();
        Ok(Some(Frame { kind, payload }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if self.skipping > 0 || !self.skip(src) {
            // The connection ended inside a frame that was being skipped.
            src.clear();
            return Ok(None);
        }
        match self.header(src)? {
            _ if src.is_empty() => Ok(None),
            None => Err(FrameError::TruncatedHeader { have: src.len() }),
            Some((kind, len)) => Err(FrameError::TruncatedPayload {
                kind,
                have: src.len() - HEADER_SIZE,
                len,
            }),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    /// Refuses what the decoder would refuse: an empty payload or one over
    /// the cap.
    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = frame.payload.len();
        if len == 0 {
            return Err(FrameError::Empty(frame.kind));
        }
        if len > self.max_payload {
            return Err(FrameError::TooLarge {
                kind: frame.kind,
                len: len as u64,
                max: self.max_payload,
            });
        }
        dst.reserve(HEADER_SIZE + len);
        dst.put_u8(frame.kind.as_byte());
        // `max_payload` is at most u32::MAX.
        dst.put_u32(len as u32);
        dst.extend_from_slice(&frame.payload);
        Ok(())
    }
}

/// Why a JSON payload (metadata or user data) was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    /// Not UTF-8.
    #[error("payload is not UTF-8 (invalid byte at offset {0})")]
    NotUtf8(usize),
    /// Not JSON.
    #[error("payload is not valid JSON: {0}")]
    Json(String),
    /// JSON, but not an object.
    #[error("payload is JSON but not an object")]
    NotObject,
    /// No `"type"` string.
    #[error("payload has no \"type\" string")]
    NoAction,
    /// A metadata payload of another action than `meta`.
    #[error("expected a \"meta\" payload, got {0:?}")]
    NotMeta(String),
    /// The action's `"content"` is missing or not an object.
    #[error("{action:?} payload has no \"content\" object")]
    NoContent {
        /// The action.
        action: String,
    },
    /// A field of the content has the wrong JSON type.
    #[error("{action:?} payload: \"{field}\" must be {expected}")]
    BadField {
        /// The action.
        action: &'static str,
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A coordinate outside its range.
    #[error(
        "coord payload: \"{field}\" {value} is out of range (at most {max} in absolute value)"
    )]
    OutOfRange {
        /// `latitude` or `longitude`.
        field: &'static str,
        /// The value.
        value: f64,
        /// 90 or 180.
        max: f64,
    },
}

/// A phone's hello (or a server's reply: the same shape, without token).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hello {
    /// The session id asked for (or assigned); `None` when missing, empty
    /// or not a string. Returned as sent: checking its form is the
    /// caller's job.
    pub id: Option<String>,
    /// The publish token, when one was sent (an extension of the original
    /// protocol); `None` when missing or empty.
    pub token: Option<String>,
    /// The session secret: in a phone's hello, the one it got when it was
    /// admitted before (to reconnect); in the server's reply, the one it
    /// gets now. An extension of the original protocol (its phones ignore
    /// it); `None` when missing or empty.
    pub secret: Option<String>,
}

/// One user-data message.
#[derive(Debug, Clone, PartialEq)]
pub enum UserData {
    /// A position (`"coord"`), checked: finite and in range.
    Coord {
        /// Degrees, in [-90, 90].
        latitude: f64,
        /// Degrees, in [-180, 180].
        longitude: f64,
    },
    /// Any other action, which this host does not interpret (phones in the
    /// wild send some); not an error.
    Other {
        /// The action (`"type"`), cut to 64 characters.
        action: String,
    },
}

/// Parses a `{"type": <action>, "content": ...}` payload.
fn envelope(payload: &[u8]) -> Result<(String, Map<String, Value>), PayloadError> {
    let mut map = object(payload)?;
    let action = action(&mut map)?;
    Ok((action, map))
}

/// A JSON object payload.
fn object(payload: &[u8]) -> Result<Map<String, Value>, PayloadError> {
    let text = std::str::from_utf8(payload).map_err(|e| PayloadError::NotUtf8(e.valid_up_to()))?;
    let value: Value = serde_json::from_str(text).map_err(|e| PayloadError::Json(e.to_string()))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(PayloadError::NotObject),
    }
}

/// The `"type"` string of an envelope, taken out of it.
fn action(map: &mut Map<String, Value>) -> Result<String, PayloadError> {
    match map.remove("type") {
        Some(Value::String(s)) => Ok(truncate(&s)),
        _ => Err(PayloadError::NoAction),
    }
}

/// The `"content"` object of an envelope.
fn content(action: &str, mut map: Map<String, Value>) -> Result<Map<String, Value>, PayloadError> {
    match map.remove("content") {
        Some(Value::Object(c)) => Ok(c),
        _ => Err(PayloadError::NoContent {
            action: action.to_string(),
        }),
    }
}

/// Parses a metadata payload: `{"type": "meta", "content": {"id": ..,
/// "token": ..}}`. A missing, empty or non-string id is `None` (a new
/// session); a non-string token is an error, an empty one `None`.
///
/// The original ignored the hello's `"type"`, and senders written for it
/// may leave it out: a missing one is taken as `meta`; another action is
/// still refused.
pub fn parse_hello(payload: &[u8]) -> Result<Hello, PayloadError> {
    let mut map = object(payload)?;
    if map.contains_key("type") {
        let action = action(&mut map)?;
        if action != "meta" {
            return Err(PayloadError::NotMeta(action));
        }
    }
    let content = content("meta", map)?;
    let id = match content.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let text = |field: &'static str| match content.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone()).filter(|s| !s.is_empty())),
        Some(_) => Err(PayloadError::BadField {
            action: "meta",
            field,
            expected: "a string",
        }),
    };
    Ok(Hello {
        id,
        token: text("token")?,
        secret: text("secret")?,
    })
}

/// Parses a user-data payload. `coord` must carry finite numbers in range;
/// other actions are [`UserData::Other`].
pub fn parse_user_data(payload: &[u8]) -> Result<UserData, PayloadError> {
    let (action, map) = envelope(payload)?;
    if action != "coord" {
        return Ok(UserData::Other { action });
    }
    let content = content(&action, map)?;
    let number = |field: &'static str, max: f64| -> Result<f64, PayloadError> {
        let value = content
            .get(field)
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite())
            .ok_or(PayloadError::BadField {
                action: "coord",
                field,
                expected: "a finite number",
            })?;
        if value.abs() > max {
            return Err(PayloadError::OutOfRange { field, value, max });
        }
        Ok(value)
    };
    Ok(UserData::Coord {
        latitude: number("latitude", 90.0)?,
        longitude: number("longitude", 180.0)?,
    })
}

/// The server's reply to a hello in the style of Python's
/// `json.dumps({"type": "meta", "content": {"id": id, "secret": secret}})`
/// (`", "` and `": "` separators, non-ASCII escaped), as the original
/// phones expect it: they read `id` and ignore the rest.
pub fn meta_reply(id: &str, secret: &str) -> Bytes {
    hello_payload(Some(id), None, Some(secret))
}

/// A hello payload in the same Python style: the id (`""` when `None`)
/// and, when given, the token and the session secret.
pub fn hello_payload(id: Option<&str>, token: Option<&str>, secret: Option<&str>) -> Bytes {
    let mut s = String::from("{\"type\": \"meta\", \"content\": {\"id\": ");
    python_json_str(&mut s, id.unwrap_or(""));
    for (key, value) in [("token", token), ("secret", secret)] {
        if let Some(v) = value {
            s.push_str(&format!(", \"{key}\": "));
            python_json_str(&mut s, v);
        }
    }
    s.push_str("}}");
    Bytes::from(s)
}

/// A `coord` user-data payload (in the same style; numbers as their
/// shortest round-trip form).
pub fn coord_payload(latitude: f64, longitude: f64) -> Bytes {
    let num =
        |v: f64| serde_json::Number::from_f64(v).map_or_else(|| "null".into(), |n| n.to_string());
    Bytes::from(format!(
        "{{\"type\": \"coord\", \"content\": {{\"latitude\": {}, \"longitude\": {}}}}}",
        num(latitude),
        num(longitude)
    ))
}

/// Appends `s` as a JSON string the way Python's `json.dumps` writes it
/// with `ensure_ascii=True`: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`,
/// everything else outside `' '..='~'` as lowercase `\uXXXX` (UTF-16
/// surrogate pairs beyond the BMP).
fn python_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Bounds what an error message repeats of hostile input.
fn truncate(s: &str) -> String {
    s.chars().take(MAX_ECHO).collect()
}

#[cfg(test)]
mod tests;
