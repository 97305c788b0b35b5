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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    /// Largest payload decoded or encoded (at most `u32::MAX`).
    pub max_payload: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self {
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }
}

impl FrameCodec {
    /// A codec refusing payloads over `max_payload` bytes (itself capped to
    /// what the 4-byte length can say).
    pub fn new(max_payload: usize) -> Self {
        Self {
            max_payload: max_payload.min(u32::MAX as usize),
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
    let text = std::str::from_utf8(payload).map_err(|e| PayloadError::NotUtf8(e.valid_up_to()))?;
    let value: Value = serde_json::from_str(text).map_err(|e| PayloadError::Json(e.to_string()))?;
    let Value::Object(mut map) = value else {
        return Err(PayloadError::NotObject);
    };
    let action = match map.remove("type") {
        Some(Value::String(s)) => s,
        _ => return Err(PayloadError::NoAction),
    };
    Ok((truncate(&action), map))
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
pub fn parse_hello(payload: &[u8]) -> Result<Hello, PayloadError> {
    let (action, map) = envelope(payload)?;
    if action != "meta" {
        return Err(PayloadError::NotMeta(action));
    }
    let content = content(&action, map)?;
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
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef01234567";

    fn encode(kind: FrameKind, payload: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        FrameCodec::default()
            .encode(Frame::new(kind, payload.to_vec()), &mut out)
            .unwrap();
        out
    }

    #[test]
    fn kinds_round_trip_through_their_bytes() {
        for b in 0..=255u8 {
            match FrameKind::from_byte(b) {
                Some(k) => assert_eq!(k.as_byte(), b),
                None => assert!(b > 3),
            }
        }
        assert_eq!(FrameKind::UserData.to_string(), "user data");
    }

    #[test]
    fn headers_are_encoded_byte_exactly() {
        assert_eq!(&encode(FrameKind::Meta, b"x")[..], b"\x00\x00\x00\x00\x01x");
        assert_eq!(
            &encode(FrameKind::Video, &[0x47; 3])[..],
            b"\x01\x00\x00\x00\x03GGG"
        );
        let big = encode(FrameKind::Audio, &[0; 0x01_0203]);
        assert_eq!(&big[..HEADER_SIZE], b"\x02\x00\x01\x02\x03");
        assert_eq!(big.len(), HEADER_SIZE + 0x01_0203);
        assert_eq!(
            &encode(FrameKind::UserData, b"{}")[..],
            b"\x03\x00\x00\x00\x02{}"
        );
    }

    #[test]
    fn the_meta_reply_is_written_as_python_writes_it() {
        let mut out = BytesMut::new();
        FrameCodec::default()
            .encode(Frame::new(FrameKind::Meta, meta_reply(ID, "s")), &mut out)
            .unwrap();
        let want: &[u8] =
            b"\x00\x00\x00\x00\x4e{\"type\": \"meta\", \"content\": {\"id\": \"0123456789abcdef01234567\", \"secret\": \"s\"}}";
        assert_eq!(&out[..], want);
        // Escapes as `json.dumps` writes them (output of CPython 3).
        assert_eq!(
            &hello_payload(
                Some("a\"\\\n\u{1}\u{1f}\u{7f}\u{e9}\u{2028}\u{1F600}/\u{8}\u{c}\r\t"),
                None,
                None
            )[..],
            br#"{"type": "meta", "content": {"id": "a\"\\\n\u0001\u001f\u007f\u00e9\u2028\ud83d\ude00/\b\f\r\t"}}"#
        );
        assert_eq!(
            &hello_payload(None, Some("t"), Some("k"))[..],
            br#"{"type": "meta", "content": {"id": "", "token": "t", "secret": "k"}}"#
        );
    }

    #[test]
    fn frames_arriving_byte_by_byte_decode_once_complete() {
        let wire = encode(FrameKind::Video, b"\x47hello");
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        for (i, b) in wire.iter().enumerate() {
            buf.put_u8(*b);
            let got = codec.decode(&mut buf).unwrap();
            if i + 1 < wire.len() {
                assert_eq!(got, None, "at byte {i}");
            } else {
                assert_eq!(got, Some(Frame::new(FrameKind::Video, &b"\x47hello"[..])));
            }
        }
        assert!(buf.is_empty());
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    }

    #[test]
    fn many_frames_in_one_buffer_decode_in_order() {
        let frames: Vec<Frame> = (0..50u8)
            .map(|i| {
                let kind = FrameKind::from_byte(i % 4).unwrap();
                Frame::new(kind, vec![i; 1 + i as usize * 7])
            })
            .collect();
        let mut buf = BytesMut::new();
        let mut codec = FrameCodec::default();
        for f in &frames {
            codec.encode(f.clone(), &mut buf).unwrap();
        }
        let mut got = Vec::new();
        while let Some(f) = codec.decode(&mut buf).unwrap() {
            got.push(f);
        }
        assert_eq!(got, frames);
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let mut codec = FrameCodec::default();
        // The type is judged from the first byte alone.
        let e = codec.decode(&mut BytesMut::from(&b"\x04"[..])).unwrap_err();
        assert!(matches!(e, FrameError::UnknownType(4)), "{e}");
        assert!(e.to_string().contains("unknown frame type 4"), "{e}");
        let e = codec
            .decode(&mut BytesMut::from(&b"G\x40\x00"[..]))
            .unwrap_err();
        assert!(matches!(e, FrameError::UnknownType(0x47)), "{e}");
        let e = codec
            .decode(&mut BytesMut::from(&b"\x01\x00\x00\x00\x00"[..]))
            .unwrap_err();
        assert!(matches!(e, FrameError::Empty(FrameKind::Video)), "{e}");
        assert_eq!(e.to_string(), "empty video frame (payload length 0)");
    }

    #[test]
    fn eof_inside_a_frame_is_a_typed_error() {
        let mut codec = FrameCodec::default();
        let e = codec
            .decode_eof(&mut BytesMut::from(&b"\x02\x00\x00"[..]))
            .unwrap_err();
        assert!(matches!(e, FrameError::TruncatedHeader { have: 3 }), "{e}");
        assert_eq!(
            e.to_string(),
            "connection ended inside a frame header (3 of 5 bytes)"
        );
        let e = codec
            .decode_eof(&mut BytesMut::from(&b"\x02\x00\x00\x00\x04ab"[..]))
            .unwrap_err();
        assert!(
            matches!(
                e,
                FrameError::TruncatedPayload {
                    kind: FrameKind::Audio,
                    have: 2,
                    len: 4
                }
            ),
            "{e}"
        );
        // A garbage header at EOF is reported as garbage, not truncation.
        let e = codec
            .decode_eof(&mut BytesMut::from(&b"\x09\x00"[..]))
            .unwrap_err();
        assert!(matches!(e, FrameError::UnknownType(9)), "{e}");
        // A complete last frame still decodes at EOF.
        let mut buf = encode(FrameKind::Meta, b"{}");
        assert!(codec.decode_eof(&mut buf).unwrap().is_some());
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    }

    #[test]
    fn the_cap_is_enforced_from_the_header_alone() {
        let mut codec = FrameCodec::new(100);
        let mut buf = BytesMut::from(&b"\x01\x00\x00\x00\x65"[..]);
        let e = codec.decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                e,
                FrameError::TooLarge {
                    kind: FrameKind::Video,
                    len: 101,
                    max: 100
                }
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "video frame of 101 bytes is over the limit of 100 bytes"
        );
        // 4 GiB declared: refused, nothing reserved.
        let mut buf = BytesMut::from(&b"\x01\xff\xff\xff\xff"[..]);
        let before = buf.capacity();
        assert!(FrameCodec::default().decode(&mut buf).is_err());
        assert_eq!(buf.capacity(), before);
        // Exactly the cap is fine, and reserves exactly header + payload.
        let mut buf = BytesMut::from(&b"\x01\x00\x00\x00\x64"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.capacity(), HEADER_SIZE + 100);
        buf.extend_from_slice(&[7; 100]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().payload.len(), 100);
        // The encoder refuses what the decoder would.
        let mut out = BytesMut::new();
        assert!(matches!(
            codec.encode(Frame::new(FrameKind::Video, vec![0; 101]), &mut out),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            codec.encode(Frame::new(FrameKind::Audio, Bytes::new()), &mut out),
            Err(FrameError::Empty(FrameKind::Audio))
        ));
        assert!(out.is_empty());
        assert_eq!(FrameCodec::new(usize::MAX).max_payload, u32::MAX as usize);
    }

    #[test]
    fn frames_round_trip_through_framed_io() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            use futures_util::{SinkExt, StreamExt};
            let (a, b) = tokio::io::duplex(64);
            let mut w = tokio_util::codec::FramedWrite::new(a, FrameCodec::default());
            let mut r = tokio_util::codec::FramedRead::new(b, FrameCodec::default());
            let frames = vec![
                Frame::new(FrameKind::Meta, hello_payload(Some(ID), Some("tok"), None)),
                Frame::new(FrameKind::Video, vec![0x47; 1000]),
                Frame::new(FrameKind::Audio, vec![0x47; 512]),
                Frame::new(FrameKind::UserData, coord_payload(-22.86, -43.23)),
            ];
            let sent = frames.clone();
            let writer = tokio::spawn(async move {
                for f in sent {
                    w.send(f).await.unwrap();
                }
            });
            for f in &frames {
                assert_eq!(r.next().await.unwrap().unwrap(), *f);
            }
            writer.await.unwrap();
            // The writer is gone: a clean end between frames.
            assert!(r.next().await.is_none());
        });
    }

    #[test]
    fn a_stream_cut_mid_frame_ends_with_an_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            use futures_util::StreamExt;
            let wire = encode(FrameKind::Video, &[1; 10]);
            let cut = &wire[..HEADER_SIZE + 4];
            let mut r = tokio_util::codec::FramedRead::new(cut, FrameCodec::default());
            let e = r.next().await.unwrap().unwrap_err();
            assert!(
                matches!(
                    e,
                    FrameError::TruncatedPayload {
                        have: 4,
                        len: 10,
                        ..
                    }
                ),
                "{e}"
            );
        });
    }

    /// xorshift64*: deterministic noise without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A random byte stream: mostly well-formed frames (some over the cap,
    /// some empty), sometimes raw noise.
    fn noisy_stream(rng: &mut Rng, cap: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..rng.below(12) {
            if rng.below(8) == 0 {
                out.extend((0..rng.below(12)).map(|_| rng.next() as u8));
                continue;
            }
            // Up to 10% over the cap, and 0 now and then.
            let len = rng.below(cap as u64 * 11 / 10) as u32;
            out.push(rng.below(5) as u8);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend((0..len.min(cap as u32 * 2)).map(|_| rng.next() as u8));
        }
        out
    }

    #[test]
    fn random_bytes_never_panic_nor_overallocate() {
        const CAP: usize = 300;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut frames, mut errors, mut clean) = (0, 0, 0);
        for _ in 0..2000 {
            let mut codec = FrameCodec::new(CAP);
            let stream = noisy_stream(&mut rng, CAP);
            let mut buf = BytesMut::new();
            let mut fed = 0;
            // Fed in random slices; EOF once all is in.
            'conn: loop {
                let n = (rng.below(2 * CAP as u64) as usize).min(stream.len() - fed);
                buf.extend_from_slice(&stream[fed..fed + n]);
                fed += n;
                let eof = fed == stream.len();
                loop {
                    let before = buf.capacity();
                    let got = if eof {
                        codec.decode_eof(&mut buf)
                    } else {
                        codec.decode(&mut buf)
                    };
                    assert!(
                        buf.capacity() <= before.max(HEADER_SIZE + CAP),
                        "grew from {before} to {}",
                        buf.capacity()
                    );
                    match got {
                        Ok(Some(f)) => {
                            assert!(!f.payload.is_empty() && f.payload.len() <= CAP);
                            frames += 1;
                        }
                        Ok(None) if eof => {
                            assert!(buf.is_empty());
                            clean += 1;
                            break 'conn;
                        }
                        Ok(None) => continue 'conn,
                        Err(e) => {
                            assert!(!e.to_string().is_empty());
                            errors += 1;
                            break 'conn;
                        }
                    }
                }
            }
        }
        assert!(
            frames > 1000 && errors > 500 && clean > 100,
            "{frames} frames, {errors} errors, {clean} clean ends"
        );
    }

    #[test]
    fn hellos_are_parsed() {
        let h = parse_hello(br#"{"type": "meta", "content": {"id": "abc"}}"#).unwrap();
        assert_eq!(
            h,
            Hello {
                id: Some("abc".into()),
                token: None,
                secret: None,
            }
        );
        let h = parse_hello(&hello_payload(Some(ID), Some("s3cret"), Some("k3y"))).unwrap();
        assert_eq!(h.id.as_deref(), Some(ID));
        assert_eq!(h.token.as_deref(), Some("s3cret"));
        assert_eq!(h.secret.as_deref(), Some("k3y"));
        // The reply parses as a hello too (the sender reads it so).
        let reply = parse_hello(&meta_reply(ID, "k3y")).unwrap();
        assert_eq!(reply.id.as_deref(), Some(ID));
        assert_eq!(reply.secret.as_deref(), Some("k3y"));
        // Ids are returned raw; missing, empty or non-string ones are None.
        assert_eq!(
            parse_hello(br#"{"type":"meta","content":{"id":"../x"}}"#)
                .unwrap()
                .id
                .as_deref(),
            Some("../x")
        );
        for p in [
            r#"{"type": "meta", "content": {"id": ""}}"#,
            r#"{"type": "meta", "content": {}}"#,
            r#"{"type": "meta", "content": {"id": 12}}"#,
            r#"{"type": "meta", "content": {"id": null, "token": ""}}"#,
            r#"{"type": "meta", "content": {"id": ["a"], "extra": 1}}"#,
        ] {
            assert_eq!(parse_hello(p.as_bytes()).unwrap(), Hello::default(), "{p}");
        }
    }

    #[test]
    fn bad_hellos_are_errors() {
        use PayloadError as E;
        let cases: [(&[u8], E); 9] = [
            (b"\xff{}", E::NotUtf8(0)),
            (
                b"{\"type\": \"meta\", \"content\": {\"id\": \"\xc3\"}}",
                E::NotUtf8(36),
            ),
            (b"[1]", E::NotObject),
            (b"\"meta\"", E::NotObject),
            (br#"{"content": {}}"#, E::NoAction),
            (br#"{"type": 0, "content": {}}"#, E::NoAction),
            (
                br#"{"type": "coord", "content": {}}"#,
                E::NotMeta("coord".into()),
            ),
            (
                br#"{"type": "meta"}"#,
                E::NoContent {
                    action: "meta".into(),
                },
            ),
            (
                br#"{"type": "meta", "content": {"id": "a", "token": 5}}"#,
                E::BadField {
                    action: "meta",
                    field: "token",
                    expected: "a string",
                },
            ),
        ];
        for (p, want) in cases {
            assert_eq!(parse_hello(p), Err(want), "{}", String::from_utf8_lossy(p));
        }
        for p in [&b""[..], b"{", b"{\"type\": \"meta\",}", b"NaN"] {
            assert!(matches!(parse_hello(p), Err(E::Json(_))), "{p:?}");
        }
        let e = parse_hello(format!(r#"{{"type": "{}"}}"#, "x".repeat(5000)).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.len() < 200, "{e}");
    }

    #[test]
    fn user_data_is_parsed() {
        let c = parse_user_data(
            br#"{"type": "coord", "content": {"latitude": -22.86, "longitude": -43.23}}"#,
        )
        .unwrap();
        assert_eq!(
            c,
            UserData::Coord {
                latitude: -22.86,
                longitude: -43.23
            }
        );
        assert_eq!(parse_user_data(&coord_payload(-22.86, -43.23)).unwrap(), c);
        // Integers, extra fields and the extremes are fine.
        assert_eq!(
            parse_user_data(br#"{"type": "coord", "content": {"latitude": 90, "longitude": -180, "accuracy": 5}}"#)
                .unwrap(),
            UserData::Coord { latitude: 90.0, longitude: -180.0 }
        );
        // Unknown actions are reported, not refused (even without content).
        assert_eq!(
            parse_user_data(br#"{"type": "battery", "content": 42}"#).unwrap(),
            UserData::Other {
                action: "battery".into()
            }
        );
        assert_eq!(
            parse_user_data(br#"{"type": "ping"}"#).unwrap(),
            UserData::Other {
                action: "ping".into()
            }
        );
    }

    #[test]
    fn bad_coords_are_errors() {
        use PayloadError as E;
        let bad = |field| E::BadField {
            action: "coord",
            field,
            expected: "a finite number",
        };
        let cases = [
            (
                r#"{"type": "coord", "content": {"longitude": 1}}"#,
                bad("latitude"),
            ),
            (
                r#"{"type": "coord", "content": {"latitude": 1}}"#,
                bad("longitude"),
            ),
            (
                r#"{"type": "coord", "content": {"latitude": "1", "longitude": 1}}"#,
                bad("latitude"),
            ),
            (
                r#"{"type": "coord", "content": {"latitude": 1, "longitude": null}}"#,
                bad("longitude"),
            ),
            (
                r#"{"type": "coord", "content": [1, 2]}"#,
                E::NoContent {
                    action: "coord".into(),
                },
            ),
            (
                r#"{"type": "coord"}"#,
                E::NoContent {
                    action: "coord".into(),
                },
            ),
            (
                r#"{"type": "coord", "content": {"latitude": 90.5, "longitude": 0}}"#,
                E::OutOfRange {
                    field: "latitude",
                    value: 90.5,
                    max: 90.0,
                },
            ),
            (
                r#"{"type": "coord", "content": {"latitude": 0, "longitude": -180.01}}"#,
                E::OutOfRange {
                    field: "longitude",
                    value: -180.01,
                    max: 180.0,
                },
            ),
        ];
        for (p, want) in cases {
            assert_eq!(parse_user_data(p.as_bytes()), Err(want), "{p}");
        }
        // Python's json.dumps writes NaN and Infinity, which are not JSON.
        for p in [
            r#"{"type": "coord", "content": {"latitude": NaN, "longitude": 0}}"#,
            r#"{"type": "coord", "content": {"latitude": 1e999, "longitude": 0}}"#,
        ] {
            assert!(parse_user_data(p.as_bytes()).is_err(), "{p}");
        }
        assert!(matches!(parse_user_data(b"\x80"), Err(E::NotUtf8(0))));
        assert!(matches!(parse_user_data(b"[]"), Err(E::NotObject)));
    }
}
