//! Store benchmark: GPS appends, bounding-box queries over 100k geotags, and 10k-stream listings, on each backend.
//!
//! `cargo bench -p dss-store` prints figures for SQLite, then for MongoDB
//! when `MONGO_TEST_URI` is set (in a database of its own, dropped at the
//! end). It asserts no timings. Every loop is bounded in count and in time.

use dss_store::{BBox, Geo, Geotag, GpsPoint, ListedStream, Listing, Store, StoreConfig};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// GPS points appended in calls of [`BATCH`]: 100k, a day of one phone at ~1 Hz.
const POINTS: u64 = 100_000;
/// Points per append call when batched (a few seconds of points per upload).
const BATCH: usize = 100;
/// Most single-point append calls, and the time they may take.
const SINGLE_CALLS: u64 = 5_000;
const SINGLE_TIME: Duration = Duration::from_secs(5);
/// Geotags loaded before querying (the figure).
const GEOTAGS: usize = 100_000;
/// Most bounding-box queries, and the time they may take.
const QUERIES: usize = 2_000;
const QUERY_TIME: Duration = Duration::from_secs(10);
/// Streams in the listing (the figure), and how many put/get rounds.
const STREAMS: usize = 10_000;
const LISTING_ROUNDS: usize = 5;

/// A small deterministic generator (xorshift64*): the same data every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
}

fn rate(n: f64, d: Duration) -> String {
    let per_s = n / d.as_secs_f64().max(1e-9);
    if per_s >= 100.0 {
        format!("{:.0}", per_s)
    } else {
        format!("{:.1}", per_s)
    }
}

fn row(backend: &str, what: &str, figure: String) {
    println!("{backend:<8} {what:<72} {figure}");
}

async fn gps(backend: &str, store: &Arc<dyn Store>) {
    let t0 = 1_700_000_000_000u64;
    let mut rng = Rng(7);
    let points: Vec<GpsPoint> = (0..POINTS)
        .map(|i| GpsPoint {
            t_ms: t0 + i * 1000,
            lat: 44.4 + rng.range(-0.05, 0.05),
            lon: 26.1 + rng.range(-0.05, 0.05),
            extra: (i % 10 == 0).then(|| serde_json::json!({"speed": i % 90, "acc": 5})),
        })
        .collect();
    let start = Instant::now();
    for part in points.chunks(BATCH) {
        store
            .append_points("bench-batched", part.to_vec())
            .await
            .expect("append");
    }
    let took = start.elapsed();
    row(
        backend,
        &format!("GPS append, {BATCH} points per call ({POINTS} points)"),
        format!("{} points/s", rate(POINTS as f64, took)),
    );

    let start = Instant::now();
    let mut n = 0u64;
    while n < SINGLE_CALLS && start.elapsed() < SINGLE_TIME {
        let p = GpsPoint {
            t_ms: t0 + n * 1000,
            lat: 44.4,
            lon: 26.1,
            extra: None,
        };
        store
            .append_points("bench-single", vec![p])
            .await
            .expect("append");
        n += 1;
    }
    row(
        backend,
        &format!("GPS append, 1 point per call ({n} calls)"),
        format!("{} points/s", rate(n as f64, start.elapsed())),
    );

    let start = Instant::now();
    let track = store.track("bench-batched", None).await.expect("track");
    assert_eq!(track.len(), POINTS as usize, "track incomplete");
    row(
        backend,
        &format!("GPS track read ({POINTS} points)"),
        format!("{} ms", start.elapsed().as_millis()),
    );
}

async fn geotags(backend: &str, store: &Arc<dyn Store>) {
    // Spread over 10° x 10°; each query box is 0.5° x 0.5° (~250 results).
    let mut rng = Rng(11);
    let tags: Vec<Geotag> = (0..GEOTAGS)
        .map(|i| Geotag {
            stream_id: format!("prov-cam{i:06}"),
            lat: rng.range(40.0, 50.0),
            lon: rng.range(20.0, 30.0),
            updated_ms: 1_700_000_000_000,
        })
        .collect();
    let start = Instant::now();
    store.put_geotags(tags).await.expect("put geotags");
    row(
        backend,
        &format!("geotag load, one call ({GEOTAGS} geotags)"),
        format!("{} geotags/s", rate(GEOTAGS as f64, start.elapsed())),
    );

    let start = Instant::now();
    let (mut n, mut found) = (0usize, 0usize);
    while n < QUERIES && start.elapsed() < QUERY_TIME {
        let lat = rng.range(40.0, 49.5);
        let lon = rng.range(20.0, 29.5);
        let b = BBox {
            min_lat: lat,
            min_lon: lon,
            max_lat: lat + 0.5,
            max_lon: lon + 0.5,
        };
        found += store.geotags_in(b).await.expect("query").len();
        n += 1;
    }
    row(
        backend,
        &format!(
            "bounding-box query over {GEOTAGS} geotags ({n} queries, ~{} hits each)",
            found / n.max(1)
        ),
        format!("{} queries/s", rate(n as f64, start.elapsed())),
    );
}

fn listing(round: usize) -> Listing {
    let streams = (0..STREAMS)
        .map(|i| {
            let mut tags = BTreeMap::new();
            tags.insert("district".to_string(), format!("d{}", i % 12));
            tags.insert("operator".to_string(), "city traffic".to_string());
            ListedStream {
                key: format!("cam{i:05}"),
                source: format!("rtsp://10.1.{}.{}:554/stream1", i / 250, i % 250),
                name: format!("Intersection {i}"),
                geo: Some(Geo {
                    lat: 44.4 + i as f64 * 1e-5,
                    lon: 26.1 - i as f64 * 1e-5,
                }),
                online: i % 9 != 0,
                input_options: vec!["-rtsp_transport".into(), "tcp".into()],
                output_options: vec![],
                tags,
            }
        })
        .collect();
    Listing {
        provider: "traffic".into(),
        fetched_at_ms: 1_700_000_000_000 + round as u64,
        fingerprint: None,
        epoch: None,
        streams,
    }
}

async fn listings(backend: &str, store: &Arc<dyn Store>) {
    let mut put = Duration::ZERO;
    let mut get = Duration::ZERO;
    for round in 0..LISTING_ROUNDS {
        let l = listing(round);
        let start = Instant::now();
        store.put_listing(l).await.expect("put listing");
        put += start.elapsed();
        let start = Instant::now();
        let back = store.get_listing("traffic").await.expect("get listing");
        get += start.elapsed();
        assert_eq!(back.map(|l| l.streams.len()), Some(STREAMS));
    }
    let bytes = dss_store::bson::to_vec(&listing(0))
        .map(|b| b.len())
        .unwrap_or(0);
    let what = format!(
        "listing of {STREAMS} streams (~{:.1} MB BSON), mean of {LISTING_ROUNDS}",
        bytes as f64 / 1e6
    );
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / LISTING_ROUNDS as f64;
    row(
        backend,
        &what,
        format!("persist {:.1} ms, load {:.1} ms", per(put), per(get)),
    );
}

async fn bench(backend: &str, config: StoreConfig) {
    let store = dss_store::open(&config).await.expect("open store");
    println!("{backend:<8} store: {}", store.describe());
    gps(backend, &store).await;
    geotags(backend, &store).await;
    listings(backend, &store).await;
    store.flush().await.expect("flush");
    assert!(store.health().is_ok(), "{:?}", store.health());
}

/// `uri` with its database replaced by `db`.
fn with_database(uri: &str, db: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (hosts, tail) = rest.split_at(host_end);
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    Some(format!("{scheme}://{hosts}/{db}{query}"))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        println!("dss-store benchmark (figures only; nothing is asserted on timings)");
        bench(
            "SQLite",
            StoreConfig::embedded(dir.path().join("bench.sqlite")),
        )
        .await;
        match std::env::var("MONGO_TEST_URI") {
            Ok(uri) if !uri.is_empty() => {
                let db = format!("dss_bench_{}", std::process::id());
                let Some(url) = with_database(&uri, &db) else {
                    println!("MongoDB  skipped: MONGO_TEST_URI {uri:?} is not a mongodb:// URL");
                    return;
                };
                bench("MongoDB", StoreConfig::mongodb(url.clone())).await;
                if let Ok(client) = mongodb::Client::with_uri_str(&url).await {
                    if let Some(db) = client.default_database() {
                        // Best effort: a leftover bench database harms nothing.
                        let _ = db.drop().await;
                    }
                }
            }
            _ => println!("MongoDB  skipped: MONGO_TEST_URI is not set"),
        }
    });
}
