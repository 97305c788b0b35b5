//! The wire format's tests: frames whole, byte by byte and cut short, random
//! bytes, caps, and the handshake's and user data's JSON.

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
    let cases: [(&[u8], E); 8] = [
        (b"\xff{}", E::NotUtf8(0)),
        (
            b"{\"type\": \"meta\", \"content\": {\"id\": \"\xc3\"}}",
            E::NotUtf8(36),
        ),
        (b"[1]", E::NotObject),
        (b"\"meta\"", E::NotObject),
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
        parse_user_data(
            br#"{"type": "coord", "content": {"latitude": 90, "longitude": -180, "accuracy": 5}}"#
        )
        .unwrap(),
        UserData::Coord {
            latitude: 90.0,
            longitude: -180.0
        }
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

#[test]
fn a_hello_without_type_is_meta_as_the_original_took_it() {
    let hello = parse_hello(br#"{"content": {"id": "5f0c0ffee0c0ffee0c0ffee0"}}"#).unwrap();
    assert_eq!(hello.id.as_deref(), Some("5f0c0ffee0c0ffee0c0ffee0"));
    let hello = parse_hello(br#"{"content": {}}"#).unwrap();
    assert_eq!(hello.id, None);
    assert_eq!(
        parse_hello(br#"{"id": "x"}"#),
        Err(PayloadError::NoContent {
            action: "meta".into()
        })
    );
}

#[test]
fn after_the_handshake_unknown_types_are_skipped_and_counted_whatever_their_size() {
    let mut codec = FrameCodec::new(16);
    codec.skip_unknown = true;
    let mut wire = BytesMut::new();
    // An unknown type with a payload over the cap (skipped, never
    // buffered), one with an empty payload, then a good frame.
    wire.extend_from_slice(&[9, 0, 0, 0, 40]);
    wire.extend_from_slice(&[0xaa; 40]);
    wire.extend_from_slice(&[200, 0, 0, 0, 0]);
    wire.extend_from_slice(&encode(FrameKind::Audio, b"ts").freeze());
    // Fed a few bytes at a time, as a socket would.
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for chunk in wire.chunks(7) {
        buf.extend_from_slice(chunk);
        while let Some(f) = codec.decode(&mut buf).unwrap() {
            got.push(f);
        }
        assert!(
            buf.len() <= 7 + HEADER_SIZE,
            "a skipped payload was buffered"
        );
    }
    assert_eq!(got, vec![Frame::new(FrameKind::Audio, &b"ts"[..])]);
    assert_eq!((codec.skipped, codec.last_skipped), (2, Some(200)));
    // The connection ending inside a skipped frame is a plain end.
    let mut tail = BytesMut::from(&[7u8, 0, 0, 1, 0, 1, 2][..]);
    assert_eq!(codec.decode_eof(&mut tail).unwrap(), None);
    // Before the handshake they are still errors.
    let mut strict = FrameCodec::default();
    let e = strict.decode(&mut BytesMut::from(&[9u8, 0, 0, 0, 1, 0][..]));
    assert!(matches!(e, Err(FrameError::UnknownType(9))));
}
