use super::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn any() -> Arc<SourceGrant> {
    Arc::new(SourceGrant::any_host(false))
}

fn plan(source: &str, input: &[&str], output: &[&str]) -> Result<Plan, Refusal> {
    Plan::check(source, &s(input), &s(output), &any())
}

fn refused(source: &str, input: &[&str], output: &[&str]) -> String {
    match plan(source, input, output) {
        Ok(p) => panic!("{source:?} {input:?} {output:?} passed: {p:?}"),
        Err(r) => r.to_string(),
    }
}

const DEMO_IN: &[&str] = &["-re", "-f", "lavfi"];
const DEMO_OUT: &[&str] = &[
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-tune",
    "zerolatency",
    "-pix_fmt",
    "yuv420p",
    "-g",
    "25",
];

#[test]
fn the_demo_and_test_configurations_pass() {
    for src in [
        "smptehdbars=size=640x360:rate=25",
        "testsrc2=size=640x360:rate=25",
        "mandelbrot=size=640x360:rate=25",
        "testsrc=size=320x240:rate=15",
        "rgbtestsrc=size=640x360:rate=25",
        "smptebars=size=640x360:rate=25",
        "sine=frequency=1000",
        "testsrc[out0];sine[out1]",
    ] {
        plan(src, DEMO_IN, DEMO_OUT).unwrap_or_else(|e| panic!("{src}: {e}"));
    }
    let tests_out = [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "15",
    ];
    plan("testsrc=size=320x240:rate=15", DEMO_IN, &tests_out).unwrap();
    plan(
        "http://feed.example/live.ts",
        &["-analyzeduration", "1000000", "-re"],
        &["-c:v", "libx264", "-preset", "ultrafast", "-g", "15"],
    )
    .unwrap();
}

#[test]
fn camera_options_reach_the_argv_around_the_source() {
    let grant = Arc::new(SourceGrant::new(Some(&s(&["cam.example"])), &[], false).unwrap());
    let p = Plan::check(
        "rtsp://user:p%40ss@cam.example/1",
        &s(&["-rtsp_transport", "tcp", "-timeout", "5000000"]),
        &s(&["-c", "copy"]),
        &grant,
    )
    .unwrap();
    let a = p.argv("rtmp://127.0.0.1:1935/dss/x?token=t");
    let i = a.iter().position(|x| x == "-i").unwrap();
    assert_eq!(
        &a[i - 4..i + 2],
        [
            "-timeout",
            "5000000",
            "-protocol_whitelist",
            "rtsp,rtp,udp,tcp",
            "-i",
            "rtsp://user:p%40ss@cam.example/1"
        ]
    );
    assert_eq!(
        &a[i + 2..],
        [
            "-c",
            "copy",
            "-f",
            "flv",
            "rtmp://127.0.0.1:1935/dss/x?token=t"
        ]
    );
    assert!(a.contains(&"-nostdin".to_string()));
}

/// Input options of a real RTSP camera.
#[rustfmt::skip]
const CAMERA_IN: &[&str] = &[
    "-rtsp_transport", "tcp",
    "-stimeout", "5000000",
    "-rw_timeout", "5000000",
    "-analyzeduration", "2000000",
    "-probesize", "1000000",
    "-fflags", "+genpts+nobuffer",
    "-flags", "low_delay",
    "-use_wallclock_as_timestamps", "1",
    "-thread_queue_size", "512",
    "-user_agent", "Mozilla/5.0 (DSS)",
    "-r", "30000/1001",
    "-itsoffset", "-0.5",
    "-stream_loop", "-1",
];

/// Output options copying a camera's video and re-encoding its audio.
#[rustfmt::skip]
const CAMERA_OUT: &[&str] = &[
    "-map", "0:v:0",
    "-map", "0:a?",
    "-c:v", "copy",
    "-c:a", "aac",
    "-b:a:0", "128k",
    "-ar", "44100",
    "-ac", "2",
];

/// Input options of an HTTP(S) feed.
#[rustfmt::skip]
const FEED_IN: &[&str] = &[
    "-reconnect", "1",
    "-reconnect_streamed", "1",
    "-reconnect_delay_max", "5",
    "-reconnect_on_http_error", "4xx,5xx",
    "-f", "hls",
];

/// Output options of a full transcode.
#[rustfmt::skip]
const TRANSCODE_OUT: &[&str] = &[
    "-c:v", "libx264",
    "-profile:v", "high",
    "-level", "4.1",
    "-b:v", "2M",
    "-maxrate", "2500k",
    "-bufsize", "4M",
    "-crf", "23",
    "-keyint_min", "25",
    "-sc_threshold", "0",
    "-bf", "0",
    "-r", "25",
    "-s", "1280x720",
    "-vf", "yadif,scale=1280:-2,fps=25,format=yuv420p",
    "-af", "aresample=44100,volume=0.8",
    "-filter:v", "scale=640:360",
    "-bsf:a", "aac_adtstoasc",
    "-threads", "2",
    "-fps_mode", "cfr",
    "-flvflags", "no_duration_filesize",
    "-max_muxing_queue_size", "1024",
    "-an",
    "-x264-params", "keyint=50:min-keyint=25:scenecut=0:deblock=1,1",
    "-x264opts", "no-scenecut",
    "-codec:v", "libx264",
    "-c:0", "copy",
    "-sn",
    "-dn",
];

#[test]
fn camera_and_transcode_options_pass() {
    for (input, output) in [(CAMERA_IN, CAMERA_OUT), (FEED_IN, TRANSCODE_OUT)] {
        plan("rtsp://cam.example/1", input, output)
            .unwrap_or_else(|e| panic!("{input:?} {output:?}: {e}"));
    }
}

#[test]
fn option_exploits_are_refused_with_reasons() {
    let cam = "rtsp://cam.example/1";
    for (input, output, why) in [
        (
            &[][..],
            &["-c", "copy", "/tmp/x.mp4"][..],
            "output option \"/tmp/x.mp4\" is not an option (positional words are refused)",
        ),
        (
            &[],
            &["-y", "/tmp/x"],
            "output option \"-y\" is not allowed",
        ),
        (
            &[],
            &["-dump_attachment:t", "/tmp/x"],
            "output option \"-dump_attachment:t\" is not allowed",
        ),
        (
            &[],
            &["-c:t", "copy"],
            "stream specifier \"t\" (attachments) is refused",
        ),
        (&[], &["-map", "0:t"], "attachments"),
        (
            &[],
            &["-vf", "drawtext=textfile=/etc/passwd"],
            "filter \"drawtext\" is not allowed",
        ),
        (
            &[],
            &["-filter:v", "movie=/etc/passwd"],
            "filter \"movie\" is not allowed",
        ),
        (
            &[],
            &["-filter_complex_script", "/tmp/x"],
            "output option \"-filter_complex_script\" is not allowed",
        ),
        (&[], &["-filter_complex", "movie=/x"], "is not allowed"),
        (&[], &["-i", "extra"], "output option \"-i\" is not allowed"),
        (&["-i", "extra"], &[], "input option \"-i\" is not allowed"),
        (&[], &["-f", "mp4"], "output option \"-f\" is not allowed"),
        (&[], &["-progress", "/tmp/p"], "not allowed"),
        (&[], &["-an", "/tmp/x"], "positional"),
        (&[], &["-c"], "needs a value"),
        (
            &[],
            &["-c:v", "libx264rgb", "-preset", "fast;rm"],
            "-preset is refused",
        ),
        (
            &[],
            &["-x264-params", "stats=/tmp/x:pass=1"],
            "key \"stats\" is not allowed",
        ),
        (&[], &["-x264opts", "keyint=2:dump-yuv=/tmp/y"], "dump-yuv"),
        (
            &[],
            &["-bsf:v", "trace_headers,filter_units=remove_types=6"],
            "bitstream filter",
        ),
        (&[], &["-c:p:0:v", "copy"], "stream specifier"),
        (&[], &["-g:v", "25", "-map", "1:v"], "only input 0"),
        (&[], &["-map", "[out]"], "only input 0"),
        (&[], &["-an:v"], "takes no stream specifier"),
        (&[], &["-"], "positional"),
        (&[], &["-vstats_file", "/tmp/v"], "not allowed"),
        (&[], &["-passlogfile", "/tmp/p"], "not allowed"),
        (&[], &["-sdp_file", "/tmp/s"], "not allowed"),
        (
            &["-graph_file", "/etc/passwd"],
            &[],
            "input option \"-graph_file\" is not allowed",
        ),
        (&["-f", "data"], &[], "input format not allowed"),
        (&["-f", "image2"], &[], "input format not allowed"),
        (&["-f", "v4l2"], &[], "input format not allowed"),
        (&["-f", "lavfi", "-f", "mpegts"], &[], "given twice"),
        (&["-protocol_whitelist", "file,rtsp"], &[], "not allowed"),
        (&["-headers", "X: y\r\n"], &[], "not allowed"),
        (
            &["-rtsp_flags", "listen"],
            &[],
            "flag \"listen\" is not allowed",
        ),
        (&["-listen", "1"], &[], "not allowed"),
        (&["-user_agent", "a\r\nX-Evil: 1"], &[], "control character"),
        (&["-timeout", "1e9"], &[], "not an integer"),
        (&["-analyzeduration", "99999999999"], &[], "out of range"),
        (&["-stream_loop", "-1", "/tmp/in"], &[], "positional"),
        (
            &["-re", "-re", "extra"],
            &[],
            "input option \"extra\" is not an option",
        ),
    ] {
        let e = refused(cam, input, output);
        assert!(e.contains(why), "{input:?} {output:?}: {e}");
    }
    let e = refused("/tmp/list.txt", &["-f", "concat", "-safe", "0"], &[]);
    assert!(e.contains("input format not allowed"), "{e}");
    let long = "x".repeat(10_000);
    let e = refused(cam, &[], &["-c", "copy", &long]);
    assert!(e.len() < 200, "unbounded echo: {e}");
    assert!(e.contains('…'), "{e}");
}

#[test]
fn lavfi_sources_are_checked_as_graphs() {
    for (src, why) in [
        ("movie=/etc/passwd", "filter \"movie\" is not allowed"),
        (
            "testsrc,drawtext=textfile=/etc/passwd",
            "filter \"drawtext\" is not allowed",
        ),
        (
            "life=filename=/etc/passwd",
            "filter \"life\" is not allowed",
        ),
        ("amovie=/dev/zero", "\"amovie\""),
    ] {
        let e = refused(src, DEMO_IN, &[]);
        assert!(
            e.starts_with("lavfi source: ") && e.contains(why),
            "{src}: {e}"
        );
    }
}

#[test]
fn source_exploits_are_refused_with_reasons() {
    for (src, why) in [
        ("file:///etc/passwd", "is not a URL with one of the schemes"),
        ("/etc/passwd", "is not a URL with one of the schemes"),
        ("concat:a|b", "is not a URL"),
        ("subfile,,start,0,end,0,,:/etc/passwd", "is not a URL"),
        ("pipe:0", "reserved for the host's own ingest"),
        ("-", "reserved"),
        ("tcp://0.0.0.0:9000?listen", "would make FFmpeg listen"),
        (
            "tcp://cam.example:9000?listen=1",
            "would make FFmpeg listen",
        ),
        (
            "srt://cam.example:9000?mode=listener",
            "would make FFmpeg listen",
        ),
        ("udp://cam.example:9000?localaddr=10.0.0.1", "bind locally"),
        (
            "http://127.0.0.1:8000/control/x/start",
            "source host 127.0.0.1 is a loopback address (set allow_private = true to allow)",
        ),
        ("rtmp://127.0.0.1/dss/x", "127.0.0.1 is a loopback address"),
        ("rtsp://10.0.0.1/cam", "10.0.0.1 is a private address"),
        ("http://[::1]/", "::1 is a loopback address"),
        (
            "http://169.254.169.254/latest",
            "169.254.169.254 is a link-local address",
        ),
        ("udp://239.1.1.1:1234", "multicast"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[fe80::1%25eth0]/", "not an IPv6 address"),
        ("http://2130706433/", "not a canonical IPv4 address"),
        ("http://127.1/", "not a canonical IPv4 address"),
        ("http://0x7f.0.0.1/", "not a canonical IPv4 address"),
        ("http://0177.0.0.1/", "not a canonical IPv4 address"),
        ("http://evil.example#@127.0.0.1/", "'#'"),
        ("http://evil.example\\@127.0.0.1/", "'#' or '\\'"),
        ("http://cam .example/", "character"),
        ("http://cam.example:80x/", "not a port number"),
        ("http://cam.example:0/", "not a port number"),
        ("tcp://cam.example", "needs a port"),
        ("rtsp:///x", "no host"),
        (
            "http://localhost:8000/control/x/start",
            "localhost is a loopback name",
        ),
        ("rtsp://cam.localhost/1", "loopback name"),
        ("gopher://cam.example/", "is not a URL"),
        ("RTSP://cam.example/", "is not a URL"),
        ("rtsp+file://cam.example/", "is not a URL"),
    ] {
        let e = refused(src, &[], &[]);
        assert!(e.contains(why), "{src}: {e}");
        assert!(!e.contains("p%40ss"), "{e}");
    }
    // Credentials are fine, and never quoted back.
    let e = refused("rtsp://admin:secret@10.0.0.1/cam", &[], &[]);
    assert!(!e.contains("secret"), "{e}");
}

#[test]
fn udp_sources_need_the_instance_s_leave_and_are_connected_to_their_source() {
    let input = |src: &str, grant: SourceGrant| {
        let plan = Plan::check(src, &[], &[], &Arc::new(grant)).map_err(String::from)?;
        let argv = plan.argv("rtmp://127.0.0.1/dss/x");
        let i = argv.iter().position(|a| a == "-i").expect("-i");
        Ok::<String, String>(argv[i + 1].clone())
    };
    for src in ["udp://cam.example:9000", "rtp://cam.example:5004"] {
        let e = input(src, SourceGrant::any_host(false)).unwrap_err();
        assert!(e.contains("allow_udp = true"), "{e}");
    }
    let udp = || SourceGrant::any_host(false).with_udp(true);
    assert_eq!(
        input("udp://cam.example:9000", udp()).unwrap(),
        "udp://cam.example:9000?connect=1"
    );
    assert_eq!(
        input("rtp://cam.example:5004?pkt_size=1316", udp()).unwrap(),
        "rtp://cam.example:5004?pkt_size=1316&connect=1"
    );
    assert_eq!(
        input("udp://cam.example:9000?connect=1", udp()).unwrap(),
        "udp://cam.example:9000?connect=1"
    );
    let e = input("udp://cam.example:9000?connect=0", udp()).unwrap_err();
    assert!(e.contains("from anyone"), "{e}");
    // RTSP negotiates its own RTP over UDP: no leave needed.
    assert!(input("rtsp://cam.example/1", SourceGrant::any_host(false)).is_ok());
}

#[test]
fn hosts_are_judged_by_the_grant() {
    let grant = |sources: Option<&[&str]>, hosts: &[&str], private: bool| {
        Arc::new(SourceGrant::new(sources.map(s).as_deref(), &s(hosts), private).unwrap())
    };
    let check = |src: &str, g: &Arc<SourceGrant>| Plan::check(src, &[], &[], g);
    // Unset allow_sources: allow_hosts applies.
    let g = grant(None, &["cam.example", "feed.example:8080"], false);
    assert!(check("rtsp://cam.example/1", &g).is_ok());
    assert!(check("http://feed.example:8080/x", &g).is_ok());
    let e = check("http://feed.example/x", &g).unwrap_err().to_string();
    assert!(e.contains("allow_hosts (allow_sources is unset)"), "{e}");
    assert!(check("rtsp://cam.example.evil/1", &g).is_err());
    // Nothing granted: only graphs.
    let none = Arc::new(SourceGrant::default());
    let e = check("rtsp://cam.example/1", &none)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not allowed") && e.contains("empty"), "{e}");
    // Ports: the scheme's default when the URL has none.
    let g = grant(
        Some(&[
            "cam.example:554",
            "*.cams.example",
            "203.0.113.0/24",
            "[2001:db8::5]:554",
        ]),
        &[],
        true,
    );
    assert!(check("rtsp://cam.example/1", &g).is_ok());
    assert!(check("rtsp://cam.example:8554/1", &g).is_err());
    assert!(check("rtsp://a.cams.example/1", &g).is_ok());
    assert!(
        check("rtsp://cams.example/1", &g).is_err(),
        "*.domain is subdomains only"
    );
    assert!(check("rtsp://203.0.113.77/1", &g).is_ok());
    assert!(check("rtsp://203.0.114.1/1", &g).is_err());
    assert!(check("rtsp://[2001:db8::5]/1", &g).is_ok());
    // Private addresses need allow_private even when listed.
    let g = grant(Some(&["10.0.0.0/8"]), &[], false);
    let e = check("rtsp://10.0.0.1/cam", &g).unwrap_err().to_string();
    assert!(
        e.contains("private address (set allow_private = true"),
        "{e}"
    );
    let g = grant(Some(&["10.0.0.0/8"]), &[], true);
    assert!(check("rtsp://10.0.0.1/cam", &g).is_ok());
    // Bad entries are errors when allow_sources is set, skipped when
    // they come from allow_hosts.
    for bad in [
        "*.",
        "10.0.0.0/33",
        "cam.example:x",
        "[::1]",
        "a b",
        "1.2.3.4.5",
    ] {
        assert!(
            SourceGrant::new(Some(&s(&[bad])), &[], false).is_err(),
            "{bad}"
        );
    }
    assert!(SourceGrant::new(None, &s(&["a b"]), false).is_ok());
}

#[test]
fn rtsp_and_other_schemes_get_their_protocol_whitelist() {
    let wl = |src: &str, input: &[&str]| {
        let a = plan(src, input, &[]).unwrap().argv("out");
        let i = a.iter().position(|x| x == "-protocol_whitelist").unwrap();
        a[i + 1].clone()
    };
    assert_eq!(wl("rtsp://cam.example/1", &[]), "rtsp,rtp,udp,tcp");
    assert_eq!(
        wl("rtsp://cam.example/1", &["-rtsp_transport", "http"]),
        "rtsp,rtp,udp,tcp,http,https,tls"
    );
    assert_eq!(wl("rtmp://cam.example/app/key", &[]), "rtmp,tcp");
    assert_eq!(
        wl("https://cam.example/x.m3u8", &["-f", "hls"]),
        "https,http,tls,tcp,crypto"
    );
    assert_eq!(wl("srt://cam.example:9000?streamid=x", &[]), "srt,udp");
    // Graphs have no URL and no whitelist.
    let a = plan("testsrc", DEMO_IN, &[]).unwrap().argv("out");
    assert!(!a.contains(&"-protocol_whitelist".to_string()));
    assert_eq!(a[a.len() - 5..], ["-i", "testsrc", "-f", "flv", "out"]);
}

#[test]
fn ingest_plans_read_the_hosts_fifos_and_nothing_else() {
    let p = Plan::ingest(&Arc::from(s(&["-c", "copy"]))).unwrap();
    assert!(p.is_ingest());
    let fed = p.with_feeds(vec!["/run/m/a.ts".into(), "/run/m/b.ts".into()]);
    let a = fed.argv("out");
    let expected = s(&[
        "-analyzeduration",
        "1000000",
        "-f",
        "mpegts",
        "-protocol_whitelist",
        "file",
        "-i",
        "file:/run/m/a.ts",
        "-analyzeduration",
        "1000000",
        "-f",
        "mpegts",
        "-protocol_whitelist",
        "file",
        "-i",
        "file:/run/m/b.ts",
        "-c",
        "copy",
        "-f",
        "flv",
        "out",
    ]);
    assert_eq!(a[a.len() - expected.len()..], expected[..]);
    assert!(
        Plan::ingest(&Arc::from(s(&["/tmp/x"]))).is_err(),
        "output options checked"
    );
    // Providers cannot ask for it: their pipe:0 is refused.
    assert!(Plan::check("pipe:0", &s(&["-f", "mpegts"]), &[], &any()).is_err());
}

#[tokio::test]
async fn addresses_are_checked_at_spawn_time() {
    let g = Arc::new(SourceGrant::any_host(false));
    // A name the static check cannot know resolves to loopback (built
    // directly: "localhost" itself is refused when listed).
    let named = |grant: &Arc<SourceGrant>| Plan {
        input_options: Arc::from([]),
        input: Input::Url {
            url: "http://localhost:9/x".into(),
            host: Host::Name("localhost".into()),
            port: 9,
            whitelist: "http".into(),
            grant: grant.clone(),
        },
        output_options: Arc::from([]),
    };
    match named(&g).check_addresses().await {
        Err(SpawnError::Refused(e)) => {
            let e = e.as_str();
            assert!(
                e.contains("localhost resolves to") && e.contains("loopback"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    let open = Arc::new(SourceGrant::any_host(true));
    assert!(named(&open).check_addresses().await.is_ok());
    let p = Plan::check("http://localhost:9/x", &[], &[], &open).unwrap();
    assert!(p.check_addresses().await.is_ok());
    let p = Plan::check("http://[::1]:9/x", &[], &[], &open).unwrap();
    assert!(p.check_addresses().await.is_ok());
    let p = Plan::check("http://no-such-host.invalid/x", &[], &[], &g).unwrap();
    assert!(matches!(
        p.check_addresses().await,
        Err(SpawnError::Resolve { .. })
    ));
    let p = plan("testsrc", DEMO_IN, &[]).unwrap();
    assert!(p.check_addresses().await.is_ok());
}
