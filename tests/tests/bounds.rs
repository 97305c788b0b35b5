//! What providers, feeds and clients may ask of the host, bounded: huge
//! test patterns and scalings, sources that make FFmpeg take datagrams
//! from anyone, and oversized WebSocket messages are refused with their
//! reason, and nothing else stops.

use dss_e2e::timeout::T30 as T;
use dss_e2e::*;

/// A static-list instance of lavfi streams with `output` options.
fn lavfi_instance(streams: &[(&str, &str)], output: &str) -> String {
    let list: Vec<String> = streams
        .iter()
        .map(|(k, src)| format!("{{ key = \"{k}\", source = \"{src}\" }}"))
        .collect();
    format!(
        "module = \"static-list\"\n[config]\ninput_options = [\"-re\", \"-f\", \"lavfi\"]\n\
         output_options = {output}\nstreams = [{}]\n",
        list.join(", ")
    )
}

#[test]
fn pictures_beyond_4k_rates_beyond_120_and_growing_scales_are_refused() {
    let mut s = Setup::new();
    s.with_nginx(2);
    s.instance(
        "big",
        &lavfi_instance(
            &[
                ("huge", "mandelbrot=size=16000x16000:rate=25"),
                ("fast", "testsrc=size=320x240:rate=1000"),
                ("positional", "testsrc=16000x16000"),
                ("ok", "testsrc=size=320x240:rate=15"),
            ],
            r#"["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]"#,
        ),
    );
    s.instance(
        "grow",
        &lavfi_instance(
            &[("a", "testsrc=size=320x240:rate=15")],
            r#"["-vf", "scale=iw*50:ih*50", "-c:v", "libx264"]"#,
        ),
    );
    let host = s.start();
    let refusal = |id: &str| -> String {
        let v = host.stream(id);
        assert_eq!(v["state"], "refused", "{id}: {v}");
        v["last_error"].as_str().unwrap_or_default().to_string()
    };
    assert!(refusal("big-huge").contains("larger than 4K"));
    assert!(refusal("big-fast").contains("at most 120"));
    assert!(refusal("big-positional").contains("larger than 4K"));
    assert!(refusal("grow-a").contains("no expression"));
    // A viewer of a refused stream is refused at once; the others play.
    let r = host.post("/api/streams/big-huge/watch");
    assert_ne!(r.status, 200, "{}", r.body);
    let v = Viewer::start(&s.rtmp_url("big-ok"));
    v.wait_frames(0, 10, T);
}

#[test]
fn datagram_sources_need_the_instance_s_leave_and_are_connected_to_their_source() {
    let mut s = Setup::new();
    s.with_nginx(2);
    let port = free_port();
    let udp = |extra: &str| {
        format!(
            "module = \"static-list\"\nallow_sources = [\"127.0.0.1\"]\nallow_private = true\n{extra}\n\
             [config]\ninput_options = [\"-f\", \"mpegts\"]\noutput_options = [\"-c\", \"copy\"]\n\
             streams = [{{ key = \"cam\", source = \"udp://127.0.0.1:{port}\" }}]\n"
        )
    };
    s.instance("closed", &udp(""));
    s.instance("open", &udp("allow_udp = true"));
    let host = s.start();
    let closed = host.stream("closed-cam");
    assert_eq!(closed["state"], "refused", "{closed}");
    assert!(
        closed["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("allow_udp = true"),
        "{closed}"
    );
    // Allowed: FFmpeg receives from the source host alone.
    let r = host.post("/api/streams/open-cam/watch");
    assert_eq!(r.status, 200, "{}", r.body);
    let pid = wait_for("the datagram stream's FFmpeg", T, || {
        publishers_of("open-cam").first().copied()
    });
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(
        args.iter()
            .any(|a| a == &format!("udp://127.0.0.1:{port}?connect=1")),
        "{args:?}"
    );
}

#[test]
fn an_oversized_websocket_message_ends_that_client_only() {
    let s = Setup::new();
    s.instance("phones", "module = \"mobile-ts\"\n");
    let host = s.start();
    let url = format!("{}/mobile/location", host.base.replace("http://", "ws://"));
    let mut big = WsClient::connect(&url);
    let mut quiet = WsClient::connect(&url);
    assert_eq!(big.next_json().expect("all")["request"], "all");
    assert_eq!(quiet.next_json().expect("all")["request"], "all");
    // 64 KiB: beyond the 4 KiB a client may send.
    let _ = big.send_text(&"x".repeat(64 * 1024));
    wait_for("the oversized client closed", T, || {
        big.closed().then_some(())
    });
    // The other client and the host carry on.
    let phone = Sender::start(&[
        "test",
        "--server",
        &format!("127.0.0.1:{}", s.mobile_port),
        "--state",
        s.dir.path().join("state.json").to_str().unwrap(),
        "--duration",
        "3",
    ]);
    let id = phone.wait_id(T);
    quiet.wait("the phone's update", T, |m| {
        m["request"] == "update" && m["content"]["name"] == format!("phones-{id}")
    });
    assert_eq!(host.get("/healthz").status, 200);
}
