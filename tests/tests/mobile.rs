//! The mobile ingest on real FFmpeg and nginx-rtmp: `dss mobile-send`
//! speaking the original DSS's TCP protocol to a host whose `phones`
//! instance is the shipped `mobile-ts` provider.

use dss_e2e::faults::Rng;
use dss_e2e::timeout::T40 as T;
use dss_e2e::*;
use std::time::Duration;

/// The fuzz test runs alone (its 8 client threads would starve the other
/// tests' video on two cores); the others share.
static LOAD: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    LOAD.read().unwrap_or_else(|p| p.into_inner())
}

/// A host with nginx and a `phones` instance; `extra` lines go in its
/// `[config]`, `mobile` lines in `[mobile]`.
fn host(config: &str, mobile: &[&str]) -> (Setup, Host) {
    let mut s = Setup::new();
    s.with_nginx(2);
    for l in mobile {
        s.set("mobile", l);
    }
    s.instance(
        "phones",
        &format!("module = \"mobile-ts\"\n\n[config]\n{config}\n"),
    );
    let host = s.start();
    assert_eq!(host.provider_settled("phones")["state"], "ready");
    (s, host)
}

fn server(s: &Setup) -> String {
    format!("127.0.0.1:{}", s.mobile_port)
}

fn state_file(s: &Setup) -> String {
    s.dir.path().join("sender-state.json").display().to_string()
}

#[test]
fn a_phone_is_watchable_over_rtmp_and_hls_and_its_positions_reach_api_store_and_track() {
    let _shared = shared();
    let (s, host) = host("phones = []", &[]);
    let (srv, state) = (server(&s), state_file(&s));
    let mut phone = Sender::start(&[
        "test",
        "--server",
        &srv,
        "--state",
        &state,
        "--duration",
        "60",
        "--route",
        "-22.9,-43.2;-22.91,-43.21",
    ]);
    let key = phone.wait_id(T);
    assert_eq!(key.len(), 24, "a new phone gets a 24-hex id: {key}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    let id = format!("phones-{key}");
    let v = host.wait_stream(&id, "live while connected, with no viewer", T, |v| {
        v["state"] == "live"
    });
    assert_eq!(v["online"], true, "{v}");
    let viewer = Viewer::start(&s.rtmp_url(&id));
    viewer.wait_frames(0, 10, T);
    let hls = format!("{}/hls/{id}/index.m3u8", s.nginx_base());
    wait_for("an HLS playlist of the phone", T, || {
        let r = get(&hls);
        (r.status == 200 && r.body.contains("#EXTINF")).then_some(())
    });
    // Positions: the stream's geo follows the route, the track fills up.
    let v = host.wait_stream(&id, "a position", T, |v| v["geo"]["lat"].is_number());
    let lat = v["geo"]["lat"].as_f64().unwrap_or_default();
    assert!((-22.92..=-22.89).contains(&lat), "on the route: {v}");
    let points = wait_for("three points in the track", T, || {
        let t = host.get(&format!("/api/streams/{id}/track")).json();
        let n = t["points"].as_array().map(Vec::len).unwrap_or(0);
        (n >= 3).then_some(n)
    });
    assert!(points >= 3);
    // Thumbnails from its stream while it is connected.
    let thumb = format!("{}/thumb/{id}-small.jpg", s.nginx_base());
    wait_for("the phone's thumbnails", T, || {
        (get(&thumb).status == 200).then_some(())
    });
    // The phone vanishes: its FFmpeg goes and it is offline.
    phone.kill();
    host.wait_stream(&id, "offline after the phone left", T, |v| {
        v["online"] == false && v["state"] == "idle"
    });
    wait_for("the phone's thumbnails removed", T, || {
        (get(&thumb).status == 404).then_some(())
    });
    assert_eq!(
        host.get(&format!("/api/streams/{id}/thumbnail")).status,
        404
    );
    wait_for("no FFmpeg left for the phone", T, || {
        publishers_of(&id).is_empty().then_some(())
    });
    // A reconnect keeps the id (state file) and the track grows on.
    let phone = Sender::start(&[
        "test",
        "--server",
        &srv,
        "--state",
        &state,
        "--duration",
        "30",
        "--video-only",
    ]);
    assert_eq!(phone.wait_id(T), key, "the id is kept for reconnects");
    host.wait_stream(&id, "live again", T, |v| v["state"] == "live");
    wait_for("the track grows on after the reconnect", T, || {
        let t = host.get(&format!("/api/streams/{id}/track")).json();
        let n = t["points"].as_array().map(Vec::len).unwrap_or(0);
        (n > points).then_some(())
    });
}

#[test]
fn phones_and_positions_reach_the_events_stream_and_the_legacy_websocket_through_nginx() {
    let _shared = shared();
    let (s, _host) = host("phones = []", &[]);
    let public = s.nginx_base();
    let events = EventsClient::connect(&public, "/api/events");
    let snap = events.wait("a snapshot on connect", T, |n, _| n == "snapshot");
    assert!(snap["streams"].is_array(), "{snap}");
    let phones = snap["providers"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["id"] == "phones").cloned());
    let phones = phones.unwrap_or_else(|| panic!("the phones provider in {snap}"));
    assert!(
        phones.get("last_error").is_none(),
        "no errors for the public: {phones}"
    );
    let ws_url = format!("{}/mobile/location", public.replace("http://", "ws://"));
    let mut ws = WsClient::connect(&ws_url);
    let all = ws.wait("`all` on connect", T, |v| v["request"] == "all");
    assert_eq!(all["content"], serde_json::json!([]), "{all}");

    let mut phone = Sender::start(&[
        "test",
        "--server",
        &server(&s),
        "--duration",
        "60",
        "--route",
        "-22.9,-43.2;-22.91,-43.21",
    ]);
    let id = format!("phones-{}", phone.wait_id(T));
    events.wait("the phone online", T, |n, v| {
        n == "phone" && v["id"] == id.as_str() && v["online"] == true
    });
    let p = events.wait("a position event", T, |n, v| {
        n == "position" && v["id"] == id.as_str()
    });
    let lat = p["lat"].as_f64().unwrap_or_default();
    assert!((-22.92..=-22.89).contains(&lat), "on the route: {p}");
    assert!(p["t_ms"].as_u64().is_some_and(|t| t > 0), "{p}");
    events.wait("the phone's stream live", T, |n, v| {
        n == "stream" && v["id"] == id.as_str() && v["state"] == "live"
    });
    let listed = events.wait("the phone listed", T, |n, v| {
        n == "listed" && v["id"] == id.as_str()
    });
    assert!(listed.get("source").is_none(), "no sources: {listed}");
    // The original's update shape, with lat, lon in that order.
    let u = ws.wait("a websocket update", T, |v| {
        v["request"] == "update" && v["content"]["name"] == id.as_str()
    });
    let info = &u["content"]["info"];
    assert!(info["time"]["$date"].is_u64(), "{u}");
    let coord = info["coord"].as_array().cloned().unwrap_or_default();
    assert_eq!(coord.len(), 2, "{u}");
    assert!(
        (-22.92..=-22.89).contains(&coord[0].as_f64().unwrap_or_default()),
        "{u}"
    );
    // A late client gets the phone in `all`, with its last position.
    let mut late = WsClient::connect(&ws_url);
    let all = late.wait("`all` with the phone", T, |v| v["request"] == "all");
    let entry = &all["content"][0];
    assert_eq!(entry["name"], id.as_str(), "{all}");
    assert_eq!(entry["active"], true, "{all}");
    assert!(entry["start"]["$date"].is_u64(), "{all}");
    assert!(entry["position"]["coord"].is_array(), "{all}");
    // The phone leaves: `finished` on the websocket, offline in the events.
    phone.kill();
    ws.wait("`finished`", T, |v| {
        v["content"]["name"] == id.as_str() && v["content"]["info"] == "finished"
    });
    events.wait("the phone offline", T, |n, v| {
        n == "phone" && v["id"] == id.as_str() && v["online"] == false
    });
}

#[test]
fn a_phones_track_and_sessions_survive_a_reconnect_in_mongodb() {
    let Some(url) = mongo_url(&format!("dss_mobile_{}", std::process::id())) else {
        return;
    };
    let _shared = shared();
    let mut s = Setup::new();
    s.with_nginx(2);
    s.set("store", &format!("url = {url:?}"));
    s.instance(
        "phones",
        "module = \"mobile-ts\"\n\n[config]\nphones = []\n",
    );
    let host = s.start();
    assert!(
        host.health()["store"]["backend"]
            .as_str()
            .unwrap_or_default()
            .contains("MongoDB"),
        "{}",
        host.health()
    );
    let state = state_file(&s);
    let args = [
        "test",
        "--server",
        &server(&s),
        "--state",
        &state,
        "--duration",
        "60",
        "--video-only",
        "--route",
        "10.0,20.0;10.01,20.01",
    ];
    let mut phone = Sender::start(&args);
    let id = format!("phones-{}", phone.wait_id(T));
    let points = wait_for("three points in MongoDB", T, || {
        let t = host.get(&format!("/api/streams/{id}/track")).json();
        let n = t["points"].as_array().map(Vec::len).unwrap_or(0);
        (n >= 3).then_some(n)
    });
    let t = host.get(&format!("/api/streams/{id}/track")).json();
    let first = &t["points"][0];
    assert!(
        (9.99..=10.02).contains(&first["lat"].as_f64().unwrap_or_default()),
        "{t}"
    );
    phone.kill();
    host.wait_stream(&id, "offline", T, |v| v["online"] == false);
    let phone = Sender::start(&args);
    assert_eq!(format!("phones-{}", phone.wait_id(T)), id);
    let more = wait_for("the track grows on after the reconnect", T, || {
        let t = host.get(&format!("/api/streams/{id}/track")).json();
        let n = t["points"].as_array().map(Vec::len).unwrap_or(0);
        (n > points).then_some(n)
    });
    // `since` narrows it to what came after the first point.
    let t0 = first["t_ms"].as_u64().unwrap_or_default();
    let later = host
        .get(&format!("/api/streams/{id}/track?since={}", t0 + 1))
        .json();
    let n = later["points"].as_array().map(Vec::len).unwrap_or(0);
    assert!(n >= 1 && n < more, "since={}: {n} of {more}", t0 + 1);
}

#[test]
fn video_only_and_swapped_types_play() {
    let _shared = shared();
    let (s, host) = host("phones = []", &[]);
    let srv = server(&s);
    for (n, flag) in ["--video-only", "--swap-types"].iter().enumerate() {
        let state = s.dir.path().join(format!("state-{n}.json"));
        let state = state.display().to_string();
        let phone = Sender::start(&[
            "test",
            "--server",
            &srv,
            "--state",
            &state,
            "--duration",
            "40",
            flag,
        ]);
        let id = format!("phones-{}", phone.wait_id(T));
        host.wait_stream(&id, "live", T, |v| v["state"] == "live");
        let viewer = Viewer::start(&s.rtmp_url(&id));
        viewer.wait_frames(0, 10, T);
    }
}

#[test]
fn registered_phones_need_their_token_and_strangers_are_refused() {
    let _shared = shared();
    let (s, host) = host(
        r#"phones = [{ key = "van1", name = "Van 1", token = "s3cret" }]"#,
        &["allow_unknown = false"],
    );
    let srv = server(&s);
    let state = state_file(&s);
    for (id, token) in [("van1", "wrong"), ("stranger", "s3cret")] {
        let mut phone = Sender::start(&[
            "test", "--server", &srv, "--state", &state, "--id", id, "--token", token,
        ]);
        let status = phone.wait(T);
        assert!(!status.success(), "{id} with {token} was admitted");
    }
    host.wait_log("phone refused", T);
    assert_eq!(
        host.health()["mobile"]["refused"],
        2,
        "refusals are counted"
    );
    let phone = Sender::start(&[
        "test",
        "--server",
        &srv,
        "--state",
        &state,
        "--id",
        "van1",
        "--token",
        "s3cret",
        "--duration",
        "30",
    ]);
    assert_eq!(phone.wait_id(T), "van1");
    host.wait_stream("phones-van1", "live", T, |v| v["state"] == "live");
}

#[test]
fn ffmpeg_pushing_mpegts_over_http_through_nginx_plays_and_positions_land() {
    let _shared = shared();
    let (s, host) = host("phones = []", &[]);
    // FFmpeg itself is the phone: one chunked POST of a TS with both
    // tracks, through nginx's public port as a phone outside would, with
    // the session secret it chose.
    let url = format!("{}/mobile/httpcam", s.nginx_base());
    let secret = "a-secret-this-phone-chose";
    let mut ff = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=15"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "15", "-c:a", "aac"])
        // An option of the output's http protocol: before its URL.
        .args(["-headers", &format!("X-DSS-Phone-Secret: {secret}\r\n")])
        .args(["-f", "mpegts", &url])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("ffmpeg");
    let id = "phones-httpcam";
    wait_for("the phone listed", T, || {
        host.stream_ids().iter().any(|s| s == id).then_some(())
    });
    host.wait_stream(id, "live", T, |v| v["state"] == "live");
    let viewer = Viewer::start(&s.rtmp_url(id));
    viewer.wait_frames(0, 10, T);
    let pos = format!("{}/mobile/httpcam/position", s.nginx_base());
    let post_pos = |body: &str| {
        post_with(
            &pos,
            "application/json",
            body.as_bytes(),
            &[("X-DSS-Phone-Secret", secret)],
        )
    };
    let r = post_pos(r#"{"latitude": -22.95, "longitude": -43.21}"#);
    assert_eq!(r.status, 204, "{}", r.body);
    let v = host.stream(id);
    assert_eq!(v["geo"]["lat"], -22.95, "{v}");
    // Anyone else's positions are refused: the track is the phone's.
    let r = post_json(&pos, r#"{"latitude": 10, "longitude": 10}"#);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(host.stream(id)["geo"]["lat"], -22.95);
    let r = post_pos(r#"{"latitude": 95, "longitude": 0}"#);
    assert_eq!(
        r.status, 204,
        "nonsense is ignored, not an error: {}",
        r.body
    );
    assert_eq!(host.stream(id)["geo"]["lat"], -22.95);
    let r = post_json(
        &format!("{}/mobile/nobody/position", s.nginx_base()),
        r#"{"latitude": 1, "longitude": 2}"#,
    );
    assert_eq!(r.status, 409, "a phone that is not streaming: {}", r.body);
    let _ = ff.kill();
    let _ = ff.wait();
    host.wait_stream(id, "offline once the upload ended", T, |v| {
        v["online"] == false && v["state"] == "idle"
    });
}

#[test]
fn the_reference_sender_over_http_plays_with_its_positions() {
    let _shared = shared();
    let (s, host) = host("phones = []", &[]);
    let srv = host.base.trim_start_matches("http://").to_string();
    let state = state_file(&s);
    let phone = Sender::start(&[
        "test",
        "--http",
        "--server",
        &srv,
        "--state",
        &state,
        "--id",
        "httpphone",
        "--duration",
        "40",
        "--route",
        "-22.9,-43.2",
    ]);
    assert_eq!(phone.wait_id(T), "httpphone");
    let id = "phones-httpphone";
    host.wait_stream(id, "live", T, |v| v["state"] == "live");
    Viewer::start(&s.rtmp_url(id)).wait_frames(0, 10, T);
    host.wait_stream(id, "its position", T, |v| v["geo"]["lat"] == -22.9);
}

/// Says hello on a new TCP connection; the reply's content, or `None`
/// when the host closed the connection instead (a refusal).
fn raw_hello(srv: &str, content: serde_json::Value) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(srv).expect("connect");
    c.set_read_timeout(Some(T)).expect("timeout");
    let hello = serde_json::json!({ "type": "meta", "content": content }).to_string();
    c.write_all(&frame(0, hello.as_bytes())).expect("hello");
    let mut head = [0u8; 5];
    c.read_exact(&mut head).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize];
    c.read_exact(&mut body).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    Some(v["content"].clone())
}

/// The session the sender saved in its state file for `server`.
fn saved_session(state: &str, server: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(state).expect("state file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    v[server].clone()
}

#[test]
fn a_connected_phone_cannot_be_taken_over_or_spoofed_and_keeps_its_id_for_a_while() {
    let _shared = shared();
    // A registered phone without a token, as in the demo.
    let (s, host) = host(
        r#"phones = [{ key = "van1", name = "Van 1" }]"#,
        &["reconnect_grace_seconds = 4"],
    );
    let srv = server(&s);
    let state = state_file(&s);
    let mut phone = Sender::start(&[
        "test",
        "--server",
        &srv,
        "--state",
        &state,
        "--id",
        "van1",
        "--duration",
        "12",
    ]);
    assert_eq!(phone.wait_id(T), "van1");
    let id = "phones-van1";
    host.wait_stream(id, "live", T, |v| v["state"] == "live");
    let secret = saved_session(&state, &srv)["secret"]
        .as_str()
        .expect("the reply carried a session secret")
        .to_string();

    // Another client claiming the id over TCP, or over HTTP through the
    // public port, is refused; so are positions without the secret.
    assert_eq!(raw_hello(&srv, serde_json::json!({ "id": "van1" })), None);
    let wrong = serde_json::json!({ "id": "van1", "secret": "0123456789abcdef-wrong" });
    assert_eq!(raw_hello(&srv, wrong), None);
    let r = post_with(
        &format!("{}/mobile/van1", s.nginx_base()),
        "video/mp2t",
        &[0x47; 188 * 10],
        &[],
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("session secret"), "{}", r.body);
    let pos = format!("{}/mobile/van1/position", s.nginx_base());
    let r = post_json(&pos, r#"{"latitude": 1, "longitude": 1}"#);
    assert_eq!(r.status, 403, "{}", r.body);
    // The phone was not disturbed.
    let v = host.stream(id);
    assert_eq!(v["state"], "live", "{v}");
    assert!(phone.lines().iter().all(|l| !l.contains("refused")));
    assert!(phone.wait(T).success(), "{:?}", phone.lines());

    // It left: within the grace period its id is kept for its secret.
    host.wait_stream(id, "offline", T, |v| v["online"] == false);
    assert_eq!(raw_hello(&srv, serde_json::json!({ "id": "van1" })), None);
    let back = raw_hello(&srv, serde_json::json!({ "id": "van1", "secret": secret }))
        .expect("its owner reconnects");
    assert_eq!(back["id"], "van1");
    assert_eq!(back["secret"], secret.as_str(), "the same secret goes on");
    // After the grace period anyone may claim it again (the original's
    // sender, which knows no secret).
    std::thread::sleep(Duration::from_secs(5));
    let fresh = raw_hello(&srv, serde_json::json!({ "id": "van1" })).expect("free again");
    assert_eq!(fresh["id"], "van1");
    assert_ne!(fresh["secret"], secret.as_str());
}

#[test]
fn one_address_gets_bounded_sessions_and_anonymous_phones_are_forgotten() {
    let _shared = shared();
    let (s, host) = host(
        r#"phones = [{ key = "van1" }]"#,
        &[
            "max_sessions_per_address = 2",
            "max_connects_per_minute = 6",
            "forget_after_seconds = 1",
            "reconnect_grace_seconds = 1",
        ],
    );
    let srv = server(&s);
    let send_with = |n: usize, extra: &[&str]| {
        let state = s
            .dir
            .path()
            .join(format!("p{n}.json"))
            .display()
            .to_string();
        let mut args = vec![
            "test",
            "--server",
            &srv,
            "--state",
            &state,
            "--duration",
            "6",
            "--video-only",
        ];
        args.extend(extra);
        Sender::start(&args)
    };
    let send = |n: usize| send_with(n, &[]);
    let a = send_with(1, &["--route", "-22.9,-43.2;-22.91,-43.21"]);
    let b = send(2);
    let (ida, _idb) = (a.wait_id(T), b.wait_id(T));
    // A third from the same address is refused.
    let mut c = send(3);
    assert!(!c.wait(T).success(), "a third session from one address");
    host.wait_log("max_sessions_per_address", T);
    // Connections beyond the minute's count are refused too.
    for _ in 0..4 {
        let _ = raw_hello(&srv, serde_json::json!({}));
    }
    host.wait_log("max_connects_per_minute", T);
    // An anonymous phone that left is forgotten, in the catalog and in the
    // store (its sessions, its track); the registered one stays.
    let anon = format!("phones-{ida}");
    let track = |id: &str| -> usize {
        host.get(&format!("/api/streams/{id}/track")).json()["points"]
            .as_array()
            .map_or(0, |p| p.len())
    };
    wait_for("positions of the anonymous phone", T, || {
        (track(&anon) > 0).then_some(())
    });
    drop(a);
    wait_for("the anonymous phone forgotten", T, || {
        (!host.stream_ids().contains(&anon)).then_some(())
    });
    assert!(host.stream_ids().contains(&"phones-van1".to_string()));
    wait_for("the anonymous phone's track forgotten", T, || {
        (track(&anon) == 0).then_some(())
    });
    host.wait_log("an anonymous phone is forgotten in the store", T);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sessions_left = rt.block_on(async {
        let store = dss_store::open(&dss_store::StoreConfig::embedded(
            s.dir.path().join("var/dss.sqlite"),
        ))
        .await
        .expect("the host's store");
        store
            .phones_idle_since(4_000_000_000_000)
            .await
            .expect("sessions")
    });
    assert!(
        !sessions_left.contains(&anon),
        "the forgotten phone's sessions are still stored: {sessions_left:?}"
    );
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend((payload.len() as u32).to_be_bytes());
    f.extend(payload);
    f
}

/// One fuzz connection: a handshake (valid or not) and up to `frames`
/// random or mutated frames; returns how many frames it wrote.
fn fuzz_connection(addr: &str, rng: &mut Rng, frames: usize) -> usize {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(addr) else {
        return 0;
    };
    let _ = c.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
    let mut out = Vec::new();
    match rng.below(4) {
        0 => out.extend(frame(0, br#"{"type": "meta", "content": {"id": ""}}"#)),
        1 => out.extend(frame(
            0,
            br#"{"type": "meta", "content": {"id": "../../etc"}}"#,
        )),
        2 => out.extend(frame(rng.below(256) as u8, b"{}")),
        _ => {
            let n = rng.below(64) as usize;
            out.extend(rng.bytes(n))
        }
    }
    let coord = br#"{"type": "coord", "content": {"latitude": -22.9, "longitude": -43.2}}"#;
    for _ in 0..frames {
        let f = match rng.below(10) {
            // Garbage of every shape: random bytes, a wrong type byte,
            // an absurd length, a zero length.
            0 => {
                let n = rng.below(32) as usize;
                rng.bytes(n)
            }
            1 => frame(4 + rng.below(250) as u8, b"x"),
            2 => {
                let mut f = vec![1];
                f.extend((rng.next_u64() as u32 | 0x8000_0000).to_be_bytes());
                f
            }
            3 => frame(3, b""),
            // Mutated user data: bit flips in a good position.
            4 | 5 => {
                let mut p = coord.to_vec();
                for _ in 0..rng.below(4) {
                    let i = rng.below(p.len() as u64) as usize;
                    p[i] ^= 1 << rng.below(8);
                }
                frame(3, &p)
            }
            6 => frame(0, b"\xff\xfe not json"),
            // Media that is not MPEG-TS, in phone-sized chunks.
            _ => {
                let n = rng.below(512) as usize + 1;
                let p = rng.bytes(n);
                frame(1 + rng.below(2) as u8, &p)
            }
        };
        out.extend(f);
    }
    // Truncated at a random point, sometimes.
    if rng.below(3) == 0 {
        let cut = rng.below(out.len() as u64) as usize;
        out.truncate(cut);
    }
    let _ = c.write_all(&out);
    let mut sink = [0u8; 256];
    let _ = c.read(&mut sink);
    frames
}

#[test]
fn a_million_random_and_mutated_frames_leave_the_host_and_a_good_phone_alone() {
    let _alone = LOAD.write().unwrap_or_else(|p| p.into_inner());
    let (s, host) = host("phones = []", &["max_sessions = 400"]);
    let srv = server(&s);
    let phone = Sender::start(&[
        "test",
        "--server",
        &srv,
        "--state",
        &state_file(&s),
        "--duration",
        "600",
    ]);
    let id = format!("phones-{}", phone.wait_id(T));
    host.wait_stream(&id, "live", T, |v| v["state"] == "live");
    let viewer = Viewer::start(&s.rtmp_url(&id));
    viewer.wait_frames(0, 10, T);
    let rss_before = host.rss_kib();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let srv = srv.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                let mut sent = 0;
                while sent < 125_000 {
                    let n = 1 + rng.below(400) as usize;
                    sent += fuzz_connection(&srv, &mut rng, n);
                }
                sent
            })
        })
        .collect();
    let sent: usize = threads
        .into_iter()
        .map(|t| t.join().expect("fuzz thread"))
        .sum();
    assert!(sent >= 1_000_000);
    // The host is alive and answers, its memory stayed bounded, the good
    // phone is still connected and its viewer still gets frames.
    assert_eq!(host.health()["status"], "ok");
    let rss_after = host.rss_kib();
    assert!(
        rss_after < rss_before + 256 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    let before = viewer.frames();
    viewer.wait_frames(before, 30, T);
    assert_eq!(host.stream(&id)["state"], "live");
    eprintln!("fuzz: {sent} frames; host RSS {rss_before} KiB -> {rss_after} KiB; good phone live");
}

#[test]
fn a_silent_phone_and_a_slow_handshake_are_dropped_by_their_timeouts() {
    use std::io::{Read, Write};
    let _shared = shared();
    let (s, host) = host(
        "phones = []",
        &["idle_timeout_seconds = 2", "handshake_timeout_ms = 1000"],
    );
    let srv = server(&s);
    // Connects and says nothing (slowloris): closed after the handshake
    // timeout.
    let mut mute = std::net::TcpStream::connect(&srv).expect("connect");
    mute.set_read_timeout(Some(T)).expect("timeout");
    let mut buf = [0u8; 64];
    assert_eq!(mute.read(&mut buf).unwrap_or(0), 0, "closed without a word");
    // Says hello, gets its id, then goes silent with the socket open: the
    // session ends after the idle timeout and the phone is offline.
    let mut quiet = std::net::TcpStream::connect(&srv).expect("connect");
    quiet
        .write_all(&frame(
            0,
            br#"{"type": "meta", "content": {"id": "quiet1"}}"#,
        ))
        .expect("hello");
    quiet.set_read_timeout(Some(T)).expect("timeout");
    // The original server's reply, in Python's json.dumps spacing, with
    // the session secret after the id (the original's phones ignore it).
    let mut head = [0u8; 5];
    quiet.read_exact(&mut head).expect("the id frame");
    assert_eq!(head[..4], [0, 0, 0, 0]);
    let mut reply = vec![0u8; head[4] as usize];
    quiet.read_exact(&mut reply).expect("the id frame");
    let text = String::from_utf8(reply).expect("UTF-8");
    assert!(
        text.starts_with(r#"{"type": "meta", "content": {"id": "quiet1", "secret": ""#),
        "{text}"
    );
    assert!(text.ends_with(r#""}}"#), "{text}");
    host.wait_stream("phones-quiet1", "listed online", T, |v| v["online"] == true);
    assert_eq!(quiet.read(&mut buf).unwrap_or(0), 0, "closed when idle");
    host.wait_stream("phones-quiet1", "offline after the idle timeout", T, |v| {
        v["online"] == false
    });
    host.wait_log("idle for 2s", T);
}

#[test]
fn the_original_senders_ways_hold_a_session_no_type_unknown_frames_and_a_time_limit() {
    use std::io::{Read, Write};
    let _shared = shared();
    let (s, host) = host("phones = []", &["time_limit = 3"]);
    let srv = server(&s);
    let started = std::time::Instant::now();
    let mut c = std::net::TcpStream::connect(&srv).expect("connect");
    c.set_read_timeout(Some(T)).expect("timeout");
    // A hello without "type", as senders written for the original send it.
    c.write_all(&frame(0, br#"{"content": {"id": "old1"}}"#))
        .expect("hello");
    let mut head = [0u8; 5];
    c.read_exact(&mut head).expect("the id frame");
    let mut reply = vec![0u8; head[4] as usize];
    c.read_exact(&mut reply).expect("the id frame");
    assert!(
        String::from_utf8_lossy(&reply).contains(r#""id": "old1""#),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // Frames of unknown types, large and small, are skipped: the position
    // after them lands.
    let mut burst = frame(7, &[0x47; 70_000]);
    burst.extend(frame(200, b"?"));
    burst.extend(frame(
        3,
        br#"{"type": "coord", "content": {"latitude": -22.91, "longitude": -43.17}}"#,
    ));
    c.write_all(&burst).expect("frames");
    host.wait_stream("phones-old1", "its position", T, |v| {
        v["geo"]["lat"] == -22.91
    });
    let status = host.get("/api/status").json();
    assert_eq!(status["mobile"]["unknown_frames"], 2, "{status}");
    // [mobile] time_limit = 3 ends the session though the phone talks on.
    let mut buf = [0u8; 16];
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let closed = wait_for("the time limit to end the session", T, || {
        let _ = c.write_all(&frame(
            3,
            br#"{"type": "coord", "content": {"latitude": -22.91, "longitude": -43.17}}"#,
        ));
        match c.read(&mut buf) {
            Ok(0) => Some(true),
            Err(e)
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut =>
            {
                Some(true)
            }
            _ => None,
        }
    });
    assert!(closed);
    assert!(started.elapsed() >= Duration::from_secs(3));
    host.wait_log("ran for its time limit of 3s ([mobile] time_limit)", T);
}
