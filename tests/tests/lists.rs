//! Lists that scale, end to end through nginx's public port: a map's
//! box, pages, revalidation with `ETag`, and compression of the host's
//! JSON and of nginx-rtmp's playlists.

use dss_e2e::timeout::T30 as T;
use dss_e2e::*;
use serde_json::Value;

/// Streams on a 60 × 50 grid, 0.01° apart, from (-23, -44).
const COLS: usize = 60;
const ROWS: usize = 50;

fn grid() -> String {
    let mut t = String::from(
        "module = \"static-list\"\n[config]\n\
         input_options = [\"-re\", \"-f\", \"lavfi\"]\n\
         output_options = [\"-c:v\", \"libx264\", \"-preset\", \"ultrafast\", \"-g\", \"10\"]\nstreams = [\n",
    );
    for i in 0..COLS * ROWS {
        t.push_str(&format!(
            "  {{ key = \"c{i}\", name = \"Camera {i}\", source = \"testsrc2=size=160x120:rate=10\", lat = {:.3}, lon = {:.3} }},\n",
            -23.0 + (i / COLS) as f64 * 0.01,
            -44.0 + (i % COLS) as f64 * 0.01,
        ));
    }
    t.push_str("]\n");
    t
}

#[test]
fn lists_narrow_page_revalidate_and_compress_through_nginx() {
    let mut s = Setup::new();
    s.with_nginx(5);
    s.instance("cams", &grid());
    let host = s.start();
    assert_eq!(host.provider_settled("cams")["state"], "ready");
    let api = format!("{}/api/streams", s.nginx_base());

    // The whole list, raw and compressed.
    let (status, head, raw) = get_with(&api, &[]);
    assert_eq!(status, 200);
    let all: Value = serde_json::from_slice(&raw).expect("JSON");
    assert_eq!(all.as_array().map(Vec::len), Some(COLS * ROWS));
    let tag = head.get("etag").cloned().expect("an ETag");
    assert!(tag.starts_with("W/\""), "{tag}");
    let (status, head, gz) = get_with(&api, &[("accept-encoding", "gzip")]);
    assert_eq!(status, 200);
    assert_eq!(
        head.get("content-encoding").map(String::as_str),
        Some("gzip")
    );
    assert!(gz.starts_with(&[0x1f, 0x8b]), "a gzip stream");
    assert!(
        gz.len() * 7 < raw.len(),
        "compressed {} of {} bytes",
        gz.len(),
        raw.len()
    );
    eprintln!(
        "{} streams: {} bytes raw, {} gzip",
        COLS * ROWS,
        raw.len(),
        gz.len()
    );

    // Revalidation: nothing changed, nothing sent.
    let (status, head, body) = get_with(&api, &[("if-none-match", &tag)]);
    assert_eq!((status, body.len()), (304, 0));
    assert_eq!(head.get("etag"), Some(&tag));

    // A box of 10 × 4 cameras, only the fields a map draws.
    let (status, _, body) = get_with(
        &format!("{api}?bbox=-43.905,-22.955,-43.805,-22.915&fields=geo,state"),
        &[],
    );
    assert_eq!(status, 200);
    let view: Value = serde_json::from_slice(&body).expect("JSON");
    let view = view.as_array().expect("a list");
    assert_eq!(view.len(), 10 * 4, "{view:?}");
    assert!(view
        .iter()
        .all(|s| s.as_object().map(|o| o.len()) == Some(3)));

    // Pages of 1,000 follow their links through every stream once.
    let mut next = Some(format!("{api}?limit=1000&fields=id"));
    let mut seen = Vec::new();
    while let Some(url) = next.take() {
        let (status, head, body) = get_with(&url, &[]);
        assert_eq!(status, 200, "{url}");
        let page: Value = serde_json::from_slice(&body).expect("JSON");
        seen.extend(
            page.as_array()
                .expect("a list")
                .iter()
                .map(|s| s["id"].clone()),
        );
        next = head.get("link").map(|l| {
            let path = &l[1..l.find('>').expect("<url>")];
            format!("{}{path}", s.nginx_base())
        });
    }
    assert_eq!(seen.len(), COLS * ROWS);
    let ids: Vec<_> = all
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    assert_eq!(seen, ids, "the pages hold the list, in order");

    // A viewer: the list changed (a count), so the old tag no longer
    // revalidates. Its playlists come compressed from nginx.
    let (status, _, playlist) =
        get_with(&format!("{}/hls/cams-c0/index.m3u8", s.nginx_base()), &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&playlist));
    let (status, _, _) = get_with(&api, &[("if-none-match", &tag)]);
    assert_eq!(status, 200, "a viewer changes the list");
    let mpd = format!("{}/dash/cams-c0/index.mpd", s.nginx_base());
    let head = wait_for("the DASH manifest", T, || {
        let (status, head, _) = get_with(&mpd, &[("accept-encoding", "gzip")]);
        (status == 200).then_some(head)
    });
    assert_eq!(
        head.get("content-encoding").map(String::as_str),
        Some("gzip")
    );
}
