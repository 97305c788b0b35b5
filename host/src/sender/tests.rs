use super::state::state_path_from;
use super::*;
use crate::mobile::frame::{
    meta_reply, parse_hello, parse_user_data, Frame, FrameCodec, FrameKind, Hello, UserData,
};
use futures_util::{SinkExt, StreamExt};
use hyper::header::AUTHORIZATION;
use std::path::Path;
use std::sync::Mutex;
use tokio::net::TcpListener;
use tokio::time::sleep;
use tokio_util::codec::Framed;

const ASSIGNED: &str = "0123456789abcdef01234567";

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dss-mobile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn route() -> Route {
    Route::follow(
        crate::mobile::route::parse_waypoints("-22.86,-43.23;-22.87,-43.24").unwrap(),
        15.0,
    )
    .unwrap()
}

fn options(server: String, state: &Path) -> SendOptions {
    let mut o = SendOptions::new(Input::Test, route());
    o.server = Some(server);
    o.state = Some(state.to_path_buf());
    o.duration = Some(Duration::from_secs(3));
    o
}

/// What the fake ingest got on one connection.
#[derive(Debug, Default)]
struct Seen {
    hello: Hello,
    /// Payloads concatenated, by frame type 1 and 2.
    type1: Vec<u8>,
    type2: Vec<u8>,
    type1_frames: usize,
    type2_frames: usize,
    first_bytes: Vec<u8>,
    coords: Vec<(f64, f64)>,
}

/// The server side of the TCP protocol for `n` connections in turn:
/// reads the hello, answers with the id asked for (else
/// [`ASSIGNED`]), then reads until a clean end.
async fn fake_ingest(listener: TcpListener, n: usize) -> Vec<Seen> {
    let mut all = Vec::new();
    for _ in 0..n {
        let (sock, _) = listener.accept().await.unwrap();
        let mut framed = Framed::new(sock, FrameCodec::default());
        let hello = framed.next().await.unwrap().unwrap();
        assert_eq!(hello.kind, FrameKind::Meta);
        let mut seen = Seen {
            hello: parse_hello(&hello.payload).unwrap(),
            ..Seen::default()
        };
        let id = seen.hello.id.clone().unwrap_or_else(|| ASSIGNED.into());
        framed
            .send(Frame::new(
                FrameKind::Meta,
                meta_reply(&id, "k3y-k3y-k3y-k3y!"),
            ))
            .await
            .unwrap();
        while let Some(f) = framed.next().await {
            let f = f.expect("frames end cleanly");
            match f.kind {
                FrameKind::Video | FrameKind::Audio => {
                    seen.first_bytes.push(f.payload[0]);
                    let (buf, n) = if f.kind == FrameKind::Video {
                        (&mut seen.type1, &mut seen.type1_frames)
                    } else {
                        (&mut seen.type2, &mut seen.type2_frames)
                    };
                    buf.extend_from_slice(&f.payload);
                    *n += 1;
                }
                FrameKind::UserData => match parse_user_data(&f.payload).unwrap() {
                    UserData::Coord {
                        latitude,
                        longitude,
                    } => seen.coords.push((latitude, longitude)),
                    other => panic!("unexpected {other:?}"),
                },
                FrameKind::Meta => panic!("a second hello"),
            }
        }
        all.push(seen);
    }
    all
}

/// Whether `ts` is MPEG-TS (every whole 188-byte packet starts with the
/// sync byte) and carries an elementary stream of `stream_type` (0x1b
/// H.264, 0x0f AAC) in its PMT as PID 0x100 (+`pid_offset`), as
/// FFmpeg's muxer writes it.
fn carries(ts: &[u8], stream_type: u8, pid_offset: u8) -> bool {
    assert!(ts.len() >= 188, "only {} bytes", ts.len());
    assert!(ts.chunks_exact(188).all(|p| p[0] == 0x47), "not TS");
    ts.windows(3).any(|w| w == [stream_type, 0xe1, pid_offset])
}

fn output(out: &[u8]) -> String {
    String::from_utf8(out.to_vec()).unwrap()
}

/// The `id:` line's id.
fn printed_id(out: &str) -> &str {
    out.lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap_or_else(|| panic!("no id line in {out:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_sessions_send_both_tracks_and_positions_and_resume_their_id() {
    let dir = scratch("tcp");
    let state = dir.join("state/mobile-send.json");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap().to_string();
    let ingest = tokio::spawn(fake_ingest(listener, 2));

    // First run: no id known, the server assigns one.
    let mut out = Vec::new();
    let opts = options(server.clone(), &state);
    let report = run(&opts, &mut out, std::future::pending()).await;
    let text = output(&out);
    assert_eq!(report.end.as_ref().unwrap(), &End::Duration, "{text}");
    assert_eq!(printed_id(&text), ASSIGNED);
    assert_eq!(
        text.lines().last().unwrap(),
        report.summary_line(),
        "the summary comes last"
    );
    assert_eq!(
        saved_id(&state, &server).unwrap(),
        Some(Saved {
            id: ASSIGNED.into(),
            secret: Some("k3y-k3y-k3y-k3y!".into())
        })
    );

    // Second run: the saved id is asked for with its secret; labels
    // swapped.
    let mut out = Vec::new();
    let mut opts = options(server.clone(), &state);
    opts.swap_types = true;
    opts.token = Some("s3cret".into());
    opts.chunk = 512;
    let report2 = run(&opts, &mut out, std::future::pending()).await;
    assert_eq!(report2.end.as_ref().unwrap(), &End::Duration);
    assert_eq!(printed_id(&output(&out)), ASSIGNED);

    let seen = ingest.await.unwrap();
    let (first, second) = (&seen[0], &seen[1]);
    assert_eq!(first.hello, Hello::default());
    assert_eq!(
        second.hello,
        Hello {
            id: Some(ASSIGNED.into()),
            token: Some("s3cret".into()),
            secret: Some("k3y-k3y-k3y-k3y!".into()),
        }
    );
    // Unswapped: video (H.264) as type 1, audio (AAC) as type 2, each
    // a TS of its own starting on a packet.
    assert!(carries(&first.type1, 0x1b, 0x00));
    assert!(carries(&first.type2, 0x0f, 0x00));
    assert_eq!(first.first_bytes.first(), Some(&0x47));
    assert!(first.type1_frames >= 2 && first.type2_frames >= 1);
    // Swapped: the labels, not the contents.
    assert!(carries(&second.type1, 0x0f, 0x00));
    assert!(carries(&second.type2, 0x1b, 0x00));
    // With 512-byte chunks, every frame is at most that.
    assert!(second.type1_frames >= second.type1.len() / 512);
    // A position a second, on the route.
    for s in [first, second] {
        assert!(s.coords.len() >= 2, "{:?}", s.coords);
        for &(lat, lon) in &s.coords {
            assert!((-22.871..=-22.859).contains(&lat), "{lat}");
            assert!((-43.241..=-43.229).contains(&lon), "{lon}");
        }
    }
    assert_ne!(first.coords[0], first.coords[1], "the phone moves");
    // The counts add up: payloads plus a header per frame.
    let s = report.stats;
    assert_eq!(s.video, first.type1.len() as u64);
    assert_eq!(s.audio, first.type2.len() as u64);
    assert_eq!(s.positions, first.coords.len() as u64);
    assert!(s.total > s.video + s.audio);
    assert_eq!(report2.stats.video, second.type2.len() as u64);
}

#[tokio::test]
async fn a_file_without_audio_streams_video_only_until_it_ends() {
    let dir = scratch("file");
    let clip = dir.join("clip with space.ts");
    let made = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x180:rate=25")
        .args(["-t", "1.2", "-c:v", "libx264", "-preset", "ultrafast", "-y"])
        .arg(&clip)
        .status()
        .await
        .unwrap();
    assert!(made.success());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap().to_string();
    let ingest = tokio::spawn(fake_ingest(listener, 1));
    let mut opts = options(server, &dir.join("state.json"));
    opts.input = Input::File(clip);
    opts.duration = Some(Duration::from_secs(20));
    let mut out = Vec::new();
    let report = run(&opts, &mut out, std::future::pending()).await;
    let text = output(&out);
    assert_eq!(report.end.unwrap(), End::InputEnded, "{text}");
    assert!(text.contains("note: no audio"), "{text}");
    let seen = ingest.await.unwrap().remove(0);
    assert!(carries(&seen.type1, 0x1b, 0x00));
    assert!(seen.type2.is_empty());
}

#[tokio::test]
async fn bad_inputs_are_errors() {
    let dir = scratch("badinput");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap().to_string();
    let ingest = tokio::spawn(fake_ingest(listener, 1));
    // Missing: refused before connecting.
    let mut opts = options(server, &dir.join("state.json"));
    opts.input = Input::File(dir.join("nope.mp4"));
    let report = run(&opts, &mut Vec::new(), std::future::pending()).await;
    let e = report.end.unwrap_err().to_string();
    assert!(
        e.starts_with("cannot read ") && e.contains("nope.mp4"),
        "{e}"
    );
    assert_eq!(report.stats, Stats::default());
    // Not media: FFmpeg's own words.
    let junk = dir.join("junk.mp4");
    std::fs::write(&junk, b"not a video at all").unwrap();
    opts.input = Input::File(junk);
    let e = run(&opts, &mut Vec::new(), std::future::pending())
        .await
        .end
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("ffmpeg (video) failed (exit status: 1): "),
        "{e}"
    );
    assert!(e.contains("junk.mp4"), "{e}");
    let seen = ingest.await.unwrap().remove(0);
    assert!(seen.type1.is_empty());
}

#[tokio::test]
async fn refusals_and_silence_are_errors_with_a_summary() {
    let dir = scratch("refuse");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap().to_string();
    // Refuses by closing after the hello, then stays silent.
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut framed = Framed::new(sock, FrameCodec::default());
        framed.next().await.unwrap().unwrap();
        drop(framed);
        let (_silent, _) = listener.accept().await.unwrap();
        sleep(Duration::from_secs(5)).await;
    });
    let mut opts = options(server.clone(), &dir.join("state.json"));
    opts.handshake_timeout = Duration::from_millis(300);
    let mut out = Vec::new();
    let report = run(&opts, &mut out, std::future::pending()).await;
    let e = report.end.unwrap_err();
    assert!(matches!(e, SendError::Refused { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("closed the connection without answering"),
        "{e}"
    );
    // The hello was sent: a header and `{"type": "meta", "content": {"id": ""}}`.
    assert_eq!(
        output(&out),
        "sent 44 bytes: 0 video, 0 audio, 0 positions, id -\n"
    );
    let e = run(&opts, &mut Vec::new(), std::future::pending())
        .await
        .end
        .unwrap_err();
    assert!(matches!(e, SendError::NoReply { .. }), "{e}");
    // Nobody listening.
    let mut opts = options("127.0.0.1:1".into(), &dir.join("state.json"));
    opts.handshake_timeout = Duration::from_millis(300);
    let e = run(&opts, &mut Vec::new(), std::future::pending())
        .await
        .end
        .unwrap_err();
    assert!(
        e.to_string().starts_with("cannot connect to 127.0.0.1:1"),
        "{e}"
    );
}

#[tokio::test]
async fn ctrl_c_stops_a_run_at_once() {
    let dir = scratch("ctrlc");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap().to_string();
    let ingest = tokio::spawn(fake_ingest(listener, 1));
    let mut opts = options(server, &dir.join("state.json"));
    opts.duration = None;
    opts.video_only = true;
    let started = Instant::now();
    let mut out = Vec::new();
    let report = run(&opts, &mut out, sleep(Duration::from_millis(2500))).await;
    assert_eq!(report.end.unwrap(), End::Interrupted);
    // Stopped at the next frame boundary, not after a grace period.
    assert!(started.elapsed() < Duration::from_millis(2500) + STOP_GRACE);
    let seen = ingest.await.unwrap().remove(0);
    assert!(seen.type2.is_empty());
    assert!(!seen.type1.is_empty());
}

#[test]
fn ffmpeg_gets_files_as_file_urls() {
    let args = ffmpeg_args(&Input::File("-i x.mp4".into()), Tracks::Both);
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
    let i = args.iter().position(|a| a == "-i").unwrap();
    assert_eq!(args[i + 1], "file:-i x.mp4");
    assert!(args.windows(2).any(|w| w == ["-map", "0:a:0?"]));
    assert_eq!(args.last().unwrap(), "pipe:1");
    let video = ffmpeg_args(&Input::Test, Tracks::Video);
    assert!(video.contains(&"-an".into()) && !video.contains(&"aac".into()));
    let audio = ffmpeg_args(&Input::Test, Tracks::Audio);
    assert!(audio.contains(&"-vn".into()) && !audio.contains(&"libx264".into()));
    assert_eq!(Input::from_arg("test"), Input::Test);
    assert_eq!(Input::from_arg("./test"), Input::File("./test".into()));
}

#[test]
fn the_state_file_round_trips() {
    let dir = scratch("state");
    let path = dir.join("a/b/mobile-send.json");
    let saved = |id: &str, secret: Option<&str>| Saved {
        id: id.into(),
        secret: secret.map(str::to_string),
    };
    assert_eq!(saved_id(&path, "x:1").unwrap(), None);
    save_id(&path, "x:1", &saved("id1", None)).unwrap();
    save_id(&path, "http://x:2", &saved("id2", Some("s2"))).unwrap();
    save_id(&path, "x:1", &saved("id3", Some("s3"))).unwrap();
    let ids = load_ids(&path).unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        saved_id(&path, "x:1").unwrap(),
        Some(saved("id3", Some("s3")))
    );
    assert_eq!(
        saved_id(&path, "http://x:2").unwrap(),
        Some(saved("id2", Some("s2")))
    );
    // A file of the earlier form (bare ids) still reads.
    let old = dir.join("old.json");
    std::fs::write(&old, r#"{"x:1": "id9"}"#).unwrap();
    assert_eq!(saved_id(&old, "x:1").unwrap(), Some(saved("id9", None)));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // No temporary file left behind.
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );
    // A corrupt file is an error, not silently replaced.
    std::fs::write(&path, "[1, 2]").unwrap();
    let e = save_id(&path, "x:1", &saved("id4", None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("fix or delete it"), "{e}");
    std::fs::write(&path, r#"{"x:1": "../../etc"}"#).unwrap();
    assert!(saved_id(&path, "x:1").is_err());

    assert_eq!(
        state_path_from(Some("/xdg".into()), Some("/home/u".into())),
        Some(PathBuf::from("/xdg/dss/mobile-send.json"))
    );
    assert_eq!(
        state_path_from(Some("relative".into()), Some("/home/u".into())),
        Some(PathBuf::from("/home/u/.local/state/dss/mobile-send.json"))
    );
    assert_eq!(state_path_from(None, None), None);
}

#[test]
fn session_ids_are_checked() {
    assert!(check_session_id(ASSIGNED).is_ok());
    assert!(check_session_id("phone_1-a").is_ok());
    for bad in ["", "a/b", "a b", "é", &"a".repeat(65)] {
        assert!(check_session_id(bad).is_err(), "{bad}");
    }
}

/// What the fake HTTP ingest got.
#[derive(Debug, Default)]
struct Got {
    uploads: Vec<(String, Option<String>, Vec<u8>)>,
    positions: Vec<(String, serde_json::Value)>,
    /// The session secrets the requests carried.
    secrets: Vec<Option<String>>,
}

type Shared = Arc<Mutex<Got>>;

async fn upload(
    axum::extract::State(got): axum::extract::State<Shared>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> axum::http::StatusCode {
    let auth = headers
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_string());
    if auth.as_deref() == Some("Bearer wrong") {
        return axum::http::StatusCode::UNAUTHORIZED;
    }
    let secret = headers
        .get(crate::http::mobile::SECRET_HEADER)
        .map(|v| v.to_str().unwrap().to_string());
    got.lock().unwrap().secrets.push(secret);
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    got.lock().unwrap().uploads.push((id, auth, bytes));
    axum::http::StatusCode::NO_CONTENT
}

async fn position(
    axum::extract::State(got): axum::extract::State<Shared>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    axum::Json(v): axum::Json<serde_json::Value>,
) -> &'static str {
    let secret = headers
        .get(crate::http::mobile::SECRET_HEADER)
        .map(|v| v.to_str().unwrap().to_string());
    let mut got = got.lock().unwrap();
    got.secrets.push(secret);
    got.positions.push((id, v));
    "ok"
}

async fn fake_http_ingest() -> (String, Shared) {
    use axum::routing::post;
    let got = Shared::default();
    let app = axum::Router::new()
        .route("/mobile/{id}", post(upload))
        .route("/mobile/{id}/position", post(position))
        .with_state(got.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mode_posts_one_muxed_body_and_positions() {
    let dir = scratch("http");
    let state = dir.join("state.json");
    let (server, got) = fake_http_ingest().await;
    let mut opts = options(server.clone(), &state);
    opts.http = true;
    opts.token = Some("tok".into());
    let mut out = Vec::new();
    let report = run(&opts, &mut out, std::future::pending()).await;
    let text = output(&out);
    assert_eq!(report.end.as_ref().unwrap(), &End::Duration, "{text}");
    let id = printed_id(&text).to_string();
    assert_eq!(id.len(), 24);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    let key = format!("http://{server}");
    let kept = saved_id(&state, &key).unwrap().expect("saved");
    assert_eq!(kept.id, id);
    let secret = kept.secret.expect("a secret chosen");
    assert_eq!(secret.len(), 32);
    assert!(
        got.lock()
            .unwrap()
            .secrets
            .iter()
            .all(|s| s.as_deref() == Some(secret.as_str())),
        "the upload and every position carry the session secret"
    );
    {
        let got = got.lock().unwrap();
        let (uid, auth, body) = &got.uploads[0];
        assert_eq!(uid, &id);
        assert_eq!(auth.as_deref(), Some("Bearer tok"));
        assert_eq!(body[0], 0x47);
        // One TS, both tracks (PIDs 0x100 and 0x101).
        assert!(carries(body, 0x1b, 0x00));
        assert!(carries(body, 0x0f, 0x01));
        assert_eq!(report.stats.video, body.len() as u64);
        assert!(got.positions.len() >= 2, "{:?}", got.positions);
        for (pid, p) in &got.positions {
            assert_eq!(pid, &id);
            let lat = p["latitude"].as_f64().unwrap();
            let lon = p["longitude"].as_f64().unwrap();
            assert!((-22.871..=-22.859).contains(&lat), "{p}");
            assert!((-43.241..=-43.229).contains(&lon), "{p}");
        }
        // Counted once answered: one may be in flight at the end.
        let answered = report.stats.positions as usize;
        assert!(answered + 1 >= got.positions.len() && answered <= got.positions.len());
    }

    // The saved id is reused; a refused token is a clear error.
    opts.token = Some("wrong".into());
    let mut out = Vec::new();
    let report = run(&opts, &mut out, std::future::pending()).await;
    assert_eq!(printed_id(&output(&out)), id);
    let e = report.end.unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("POST http://{server}/mobile/{id}: HTTP 401")),
        "{e}"
    );
}
