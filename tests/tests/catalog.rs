//! The foundation end to end: the real host loads the real provider
//! components, serves their streams, and isolates the failures of one.

use dss_e2e::*;
use serde_json::Value;

const CETRIO: &str = "function init() {\n\
var c = new google.maps.LatLng(-22.90026953385686, -43.17699603271244);\n\
addCam(map, c, 1, 'Av. Pres.Vargas X R. 1\u{ba} Mar\u{e7}o', 'Ligado');\n\
var c = new google.maps.LatLng(-22.9125, -43.2301);\n\
addCam(map, c, 27, 'T\u{fa}nel Rebou\u{e7}as', 'Desligado');\n}\n";

const JSON_LIST: &str = r#"[
  {"id": "bridge", "name": "Bridge", "lat": -22.1, "lon": -43.5, "status": "online"},
  {"id": 7, "name": "Port", "lat": "-22.2", "lon": "-43.6", "status": false}
]"#;

fn feed() -> FileServer {
    FileServer::start(vec![
        (
            "/cams.json",
            Answer::Body("application/json", JSON_LIST.into()),
        ),
        ("/cams.js", Answer::Body("text/javascript", CETRIO.into())),
    ])
}

fn stream<'a>(streams: &'a Value, id: &str) -> &'a Value {
    streams
        .as_array()
        .expect("array")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no stream {id} in {streams}"))
}

#[test]
fn serves_the_streams_of_all_three_providers() {
    let feed = feed();
    let setup = Setup::new();
    setup.instance(
        "cams",
        r#"module = "static-list"
[config]
source_template = "rtsp://cams.example/{key}"
streams = ["gate", { key = "lobby", name = "Lobby", lat = -22.9, lon = -43.2 }]"#,
    );
    setup.instance(
        "traffic",
        &format!(
            "module = \"traffic-feed\"\nallow_hosts = [\"{0}\"]\n[config]\nurl = \"http://{0}/cams.json\"\nsource_template = \"rtsp://feed/{{key}}\"\n",
            feed.addr
        ),
    );
    setup.instance(
        "phones",
        "module = \"mobile-ts\"\n[config]\nphones = [{ key = \"van1\" }]\n",
    );
    let host = setup.start();
    for id in ["cams", "traffic", "phones"] {
        let p = host.provider_settled(id);
        assert_eq!(p["state"], "ready", "{p}");
        assert_eq!(p["interface_version"], "0.2.0");
        assert_eq!(p["module_hash"].as_str().map(str::len), Some(64));
    }
    let streams = host.get("/api/streams").json();
    let ids = host.stream_ids();
    for id in [
        "cams-gate",
        "cams-lobby",
        "traffic-bridge",
        "traffic-7",
        "phones-van1",
    ] {
        assert!(ids.contains(&id.to_string()), "{id} missing from {ids:?}");
    }
    let lobby = stream(&streams, "cams-lobby");
    assert_eq!(lobby["provider"], "cams");
    assert_eq!(lobby["name"], "Lobby");
    assert_eq!(lobby["geo"]["lat"], -22.9);
    assert_eq!(lobby["online"], true);
    assert!(lobby.get("source").is_none(), "sources stay internal");
    assert_eq!(stream(&streams, "traffic-7")["online"], false);

    let one = host.get("/api/streams/traffic-bridge");
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["geo"]["lon"], -43.5);
    let filtered = host.get("/api/streams?provider=phones").json();
    assert_eq!(filtered.as_array().map(Vec::len), Some(1));

    let health = host.get("/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["streams"], 5);
    assert_eq!(host.get("/").status, 200, "the web page is served");
}

#[test]
fn traffic_feed_parses_json_and_cetrio_js_over_http() {
    let feed = feed();
    let setup = Setup::new();
    for (name, path, format) in [
        ("tjson", "cams.json", "json"),
        ("tjs", "cams.js", "cetrio-js"),
    ] {
        setup.instance(
            name,
            &format!(
                "module = \"traffic-feed\"\nallow_hosts = [\"{0}\"]\n[config]\nurl = \"http://{0}/{path}\"\nformat = \"{format}\"\nsource_template = \"rtsp://feed/cam{{key}}\"\n",
                feed.addr
            ),
        );
    }
    let host = setup.start();
    assert_eq!(host.provider_settled("tjs")["state"], "ready");
    assert_eq!(host.provider_settled("tjson")["state"], "ready");
    let streams = host.get("/api/streams?provider=tjs").json();
    assert_eq!(streams.as_array().map(Vec::len), Some(2));
    let first = stream(&streams, "tjs-1");
    assert_eq!(first["name"], "Av. Pres.Vargas X R. 1º Março");
    assert_eq!(first["geo"]["lat"], -22.90026953385686);
    assert_eq!(first["online"], true);
    assert_eq!(
        stream(&streams, "tjs-27")["online"],
        false,
        "Desligado is offline"
    );
    assert_eq!(stream(&streams, "tjs-27")["tags"]["status"], "Desligado");
    let json = host.get("/api/streams?provider=tjson").json();
    assert_eq!(stream(&json, "tjson-7")["geo"]["lat"], -22.2);
    assert!(feed.hits() >= 2);
}

#[test]
fn http_get_outside_allow_hosts_is_refused_even_through_a_redirect() {
    let forbidden = feed();
    let allowed = FileServer::start(vec![(
        "/cams.json",
        Answer::Redirect(302, format!("http://{}/cams.json", forbidden.addr)),
    )]);
    let setup = Setup::new();
    setup.instance(
        "nolist",
        &format!(
            "module = \"traffic-feed\"\n[config]\nurl = \"http://{}/cams.json\"\nsource_template = \"x{{key}}\"\n",
            forbidden.addr
        ),
    );
    setup.instance(
        "redir",
        &format!(
            "module = \"traffic-feed\"\nallow_hosts = [\"{}\"]\n[config]\nurl = \"http://{}/cams.json\"\nsource_template = \"x{{key}}\"\n",
            allowed.addr, allowed.addr
        ),
    );
    let host = setup.start();
    let p = host.provider_settled("nolist");
    assert_eq!(p["state"], "failed");
    let err = p["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("upstream") && err.contains("allow_hosts"),
        "{err}"
    );
    let p = host.provider_settled("redir");
    assert_eq!(p["state"], "failed");
    let err = p["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("redirect") && err.contains("allow_hosts"),
        "{err}"
    );
    assert_eq!(allowed.hits(), 1, "the allowed host was asked");
    assert_eq!(
        forbidden.hits(),
        0,
        "the forbidden host was never contacted"
    );
}

#[test]
fn a_broken_provider_leaves_the_others_serving() {
    let setup = Setup::new();
    setup.write_module("garbage", b"this is not wasm at all");
    setup.instance(
        "good",
        "module = \"static-list\"\n[config]\nsource_template = \"x/{key}\"\nstreams = [\"a\"]\n",
    );
    setup.instance(
        "badconf",
        "module = \"static-list\"\n[config]\nstrems = []\n",
    );
    setup.instance("nomodule", "module = \"does-not-exist\"\n");
    setup.instance("junk", "module = \"garbage\"\n");
    setup.instance("Bad-Name", "module = \"static-list\"\n");
    setup.instance("unparsable", "module = [\n");
    setup.instance(
        "phones",
        "module = \"mobile-ts\"\n[config]\nphones = [{ key = \"p1\" }]\n",
    );
    let host = setup.start();
    assert_eq!(host.provider_settled("good")["state"], "ready");
    assert_eq!(host.provider_settled("phones")["state"], "ready");

    let err = |id: &str| {
        let p = host.provider_settled(id);
        assert_eq!(p["state"], "failed", "{p}");
        p["last_error"].as_str().unwrap_or_default().to_string()
    };
    let e = err("badconf");
    assert!(e.contains("invalid-config") && e.contains("strems"), "{e}");
    let e = err("nomodule");
    assert!(
        e.contains("does-not-exist") && e.contains("not found"),
        "{e}"
    );
    let e = err("junk");
    assert!(
        e.contains("garbage.wasm") && e.contains("not a WebAssembly file"),
        "{e}"
    );
    let e = err("unparsable");
    assert!(e.contains("unparsable.toml"), "{e}");
    let providers = host.get("/api/providers").json();
    let bad_name = providers
        .as_array()
        .expect("array")
        .iter()
        .find(|p| {
            p["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("Bad-Name.toml"))
        })
        .expect("the misnamed instance is reported");
    assert!(bad_name["last_error"]
        .as_str()
        .unwrap_or_default()
        .contains("invalid provider id"));

    let ids = host.stream_ids();
    assert_eq!(ids, ["good-a", "phones-p1"]);
    assert_eq!(host.get("/healthz").status, 200);
}

#[test]
fn invalid_ids_are_refused_before_any_lookup() {
    let setup = Setup::new();
    setup.instance(
        "demo",
        "module = \"static-list\"\n[config]\nsource_template = \"x/{key}\"\nstreams = [\"a\"]\n",
    );
    let host = setup.start();
    host.provider_settled("demo");
    assert_eq!(host.get("/api/streams/demo-a").status, 200);
    for (path, status) in [
        ("/api/streams/demo-..%2Fx", 400),
        ("/api/streams/..%2F..%2Fetc%2Fpasswd", 400),
        ("/api/streams/demo-a%20b", 400),
        ("/api/streams/demo-.hidden", 400),
        ("/api/streams/nodash", 400),
        ("/api/streams/demo-unknown", 404),
        ("/api/streams/other-a", 404),
        ("/api/providers/Demo", 400),
        ("/api/providers/nope", 404),
        ("/info/stream/demo-..%2Fx", 400),
        ("/info/stream/demo-zzz", 404),
        ("/info/provider/nope", 404),
        ("/api/streams?provider=..", 400),
    ] {
        let r = host.get(path);
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert!(r.json()["error"].is_string(), "{path}: errors are JSON");
    }
}

#[test]
fn legacy_info_routes_keep_the_original_shapes() {
    let setup = Setup::new();
    setup.instance("demo", "module = \"static-list\"\n[config]\nsource_template = \"x/{key}\"\nstreams = [{ key = \"a\", name = \"A\", lat = 1.5, lon = 2.5 }]\n");
    let host = setup.start();
    host.provider_settled("demo");
    let providers = host.get("/info/provider").json();
    assert_eq!(providers[0]["id"], "demo");
    assert!(providers[0]["name"].is_string());
    let streams = host.get("/info/provider/demo").json();
    assert_eq!(streams[0]["id"], "demo-a");
    assert_eq!(streams[0]["geo"], serde_json::json!([1.5, 2.5]));
    let one = host.get("/info/stream/demo-a").json();
    assert_eq!(one["name"], "A");
    let posted = post_form(&format!("{}/info/stream/demo-a", host.base), &[]);
    assert_eq!(posted.status, 200, "the original accepted POST too");
}

/// A static-list instance file with this prefix and these stream keys.
fn prefixed(prefix: &str, keys: &[&str]) -> String {
    let keys: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    format!(
        "prefix = \"{prefix}\"\nmodule = \"static-list\"\n[config]\nsource_template = \"rtsp://x/{{key}}\"\nstreams = [{}]\n",
        keys.join(", ")
    )
}

const SWAP: std::time::Duration = std::time::Duration::from_secs(20);

/// The provider's status once `pred` holds for it (404 counts as `Null`).
fn provider_when(host: &Host, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, SWAP, || {
        let r = host.get(&format!("/api/providers/{id}"));
        let v = if r.status == 200 {
            r.json()
        } else {
            Value::Null
        };
        pred(&v).then_some(v)
    })
}

fn ids_become(host: &Host, want: &[&str]) {
    wait_for(&format!("streams {want:?}"), SWAP, || {
        (host.stream_ids() == want).then_some(())
    });
}

#[test]
fn a_broken_instance_file_keeps_its_provider_when_the_prefix_differs_from_the_name() {
    let setup = Setup::new();
    setup.instance("a", &prefixed("cams", &["gate"]));
    let host = setup.start();
    assert_eq!(host.provider_settled("cams")["state"], "ready");
    assert_eq!(host.stream_ids(), ["cams-gate"]);

    // Not TOML any more: the running version keeps serving, and says why.
    setup.instance("a", "prefix = \"cams\"\nmodule = [\n");
    let p = provider_when(&host, "cams", "the parse error on cams", |p| {
        p["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("a.toml"))
    });
    assert_eq!(p["state"], "ready", "{p}");
    assert_eq!(host.stream_ids(), ["cams-gate"]);
    assert_eq!(
        host.get("/api/providers/a").status,
        404,
        "the file's name is not a provider"
    );

    // An unknown key: the same.
    setup.instance("a", &format!("bogus = 1\n{}", prefixed("cams", &["gate"])));
    let p = provider_when(&host, "cams", "the unknown-key error on cams", |p| {
        p["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("bogus"))
    });
    assert_eq!(p["state"], "ready", "{p}");
    assert_eq!(host.stream_ids(), ["cams-gate"]);

    // Fixed: the new version takes over, and the error is gone.
    setup.instance("a", &prefixed("cams", &["gate", "lobby"]));
    ids_become(&host, &["cams-gate", "cams-lobby"]);
    let p = provider_when(&host, "cams", "the error cleared", |p| {
        p["last_error"].is_null()
    });
    assert_eq!(p["state"], "ready", "{p}");
    assert_eq!(host.get("/api/providers/a").status, 404);
}

#[test]
fn an_instance_file_changing_its_prefix_replaces_the_old_provider() {
    let setup = Setup::new();
    setup.instance("a", &prefixed("cams", &["gate"]));
    let host = setup.start();
    assert_eq!(host.provider_settled("cams")["state"], "ready");

    setup.instance("a", &prefixed("yard", &["gate"]));
    ids_become(&host, &["yard-gate"]);
    assert_eq!(host.provider_settled("yard")["state"], "ready");
    assert_eq!(host.get("/api/providers/cams").status, 404);
    assert_eq!(host.get("/api/streams/cams-gate").status, 404);
}

#[test]
fn of_two_files_claiming_one_prefix_the_newcomer_is_refused() {
    let setup = Setup::new();
    // "b" serves `cams`; "a" (first by name) claims it later.
    setup.instance("b", &prefixed("cams", &["gate"]));
    let host = setup.start();
    assert_eq!(host.provider_settled("cams")["state"], "ready");

    setup.instance("a", &prefixed("cams", &["intruder"]));
    let p = provider_when(&host, "a", "the refusal of a.toml", |p| {
        p["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("already used by") && e.contains("b.toml"))
    });
    assert_eq!(p["state"], "failed", "{p}");
    assert!(
        p["file"].as_str().is_some_and(|f| f.ends_with("a.toml")),
        "{p}"
    );
    let cams = host.provider_settled("cams");
    assert!(
        cams["file"].as_str().is_some_and(|f| f.ends_with("b.toml")),
        "{cams}"
    );
    assert_eq!(host.stream_ids(), ["cams-gate"]);

    // The holder goes: the other file takes the prefix, its refusal goes.
    std::fs::remove_file(setup.dir.path().join("providers.d/b.toml")).unwrap();
    ids_become(&host, &["cams-intruder"]);
    provider_when(&host, "a", "the refusal to go", Value::is_null);
    let cams = host.provider_settled("cams");
    assert!(
        cams["file"].as_str().is_some_and(|f| f.ends_with("a.toml")),
        "{cams}"
    );
}
