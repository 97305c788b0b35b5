//! Three hosts as one service: `scripts/cluster-demo.sh` (three `dss serve`
//! sharing one CongoDB, each with its own nginx-rtmp on the ports the
//! script fixes) driven from outside, as an operator would. The tests of
//! this file share those ports: they run one at a time.

use dss_e2e::faults::wait_exit;
use dss_e2e::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The demo's lease, and what the takeover may take beyond it.
const LEASE: u64 = 10;

/// The running demo; stopped (SIGTERM, as an operator's Ctrl-C) on drop.
struct Demo {
    child: Child,
}

impl Demo {
    fn start() -> Demo {
        Self::start_with(&[])
    }

    /// With `env` added (e.g. `CLUSTER_STORE_PORTS`).
    fn start_with(env: &[(&str, String)]) -> Demo {
        let mut child = Command::new("scripts/cluster-demo.sh")
            .current_dir(repo_root())
            .env("CLUSTER_STORE_PORT", store_port().to_string())
            .env("CLUSTER_FEED_PORT", free_port().to_string())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("CLUSTER_LEASE_SECONDS", LEASE.to_string())
            .env("CLUSTER_DEMO_BIN", dss_bin())
            .env("RUST_LOG", "info,dss_host=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("scripts/cluster-demo.sh");
        let out = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(out).lines();
        let mut seen = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(l)) if l == "ready" => break,
                Some(Ok(l)) => seen.push(l),
                _ => panic!("cluster-demo.sh ended before it was ready: {seen:?}"),
            }
        }
        assert!(
            seen.iter().any(|l| l.contains("http://127.0.0.1:8103/")),
            "{seen:?}"
        );
        Demo { child }
    }

    fn api(&self, n: u32, path: &str) -> Resp {
        get(&format!("http://127.0.0.1:810{n}{path}"))
    }

    fn pid(&self, n: u32) -> u32 {
        std::fs::read_to_string(repo_root().join(format!("var/cluster/host{n}/dss.pid")))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    }

    fn log(&self, n: u32) -> String {
        std::fs::read_to_string(repo_root().join(format!("var/cluster/host{n}/dss.log")))
            .unwrap_or_default()
    }

    /// Waits until host `n`'s log says `needle`.
    fn wait_log(&self, n: u32, needle: &str, timeout: Duration) {
        wait_for(&format!("{needle:?} in host{n}'s log"), timeout, || {
            self.log(n).contains(needle).then_some(())
        });
    }

    /// The host (1-3) that owns `id`, as host `n` sees it.
    fn owner(&self, n: u32, id: &str) -> Option<u32> {
        let c = self.api(n, "/api/cluster").json();
        let host = c["ownership"][id]["host"].as_str()?;
        host.strip_prefix("host")?.parse().ok()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in 1..=3 {
                let log = self.log(n);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- host{n} log (last lines) ---");
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = wait_exit(&mut self.child, Duration::from_secs(30));
    }
}

/// The store's port for this test binary (one per run).
fn store_port() -> u16 {
    static PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *PORT.get_or_init(free_port)
}

/// A proxy to the store for each host (1-3), those of `cut` blocked from
/// the start, and their ports as `CLUSTER_STORE_PORTS` takes them.
fn store_proxies(cut: &[u32]) -> (Vec<dss_e2e::proxy::Proxy>, String) {
    let proxies: Vec<dss_e2e::proxy::Proxy> = (1..=3)
        .map(|n| {
            let p = dss_e2e::proxy::Proxy::start(store_port());
            p.block(cut.contains(&n));
            p
        })
        .collect();
    let ports = proxies
        .iter()
        .map(|p| p.port.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    (proxies, ports)
}

/// The FFmpeg of stream `id` on the demo's hosts: (running its source, relays).
fn ffmpeg_of(id: &str) -> (Vec<u32>, Vec<u32>) {
    let mut own = Vec::new();
    let mut relays = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let ours = (1..=3).any(|n| cmd.contains(&format!("127.0.0.1:194{n}/dss/{id}?token=")));
        if !ours || !process_alive(pid) {
            continue;
        }
        if cmd.contains("DSS-relay") {
            relays.push(pid);
        } else {
            own.push(pid);
        }
    }
    (own, relays)
}

/// Lines of host `n`'s log saying it called provider `provider` for a
/// listing.
fn listings_by(demo: &Demo, n: u32, provider: &str) -> usize {
    let me = format!("provider={provider} ");
    demo.log(n)
        .lines()
        .filter(|l| l.contains("listing refreshed") && l.contains(&me))
        .count()
}

/// A traffic feed of test-pattern cameras `keys`.
fn cameras(keys: &[&str]) -> Answer {
    let cams: Vec<Value> = keys
        .iter()
        .map(|k| serde_json::json!({"id": k, "name": k, "source": "testsrc=size=320x240:rate=10"}))
        .collect();
    Answer::Body("application/json", serde_json::to_vec(&cams).expect("json"))
}

/// Waits until every host of `hosts` lists stream `id`.
fn wait_listed(demo: &Demo, hosts: &[u32], id: &str, timeout: Duration) {
    wait_for(&format!("{id} listed on hosts {hosts:?}"), timeout, || {
        hosts
            .iter()
            .all(|n| demo.api(*n, &format!("/api/streams/{id}")).status == 200)
            .then_some(())
    });
}

/// The host (1-3) refreshing provider `provider`, when hosts `hosts` agree.
fn refresher(demo: &Demo, hosts: &[u32], provider: &str) -> Option<u32> {
    let seen: Vec<Option<u32>> = hosts
        .iter()
        .map(|n| {
            let c = demo.api(*n, "/api/cluster").json();
            let host = c["refreshers"][provider]["host"].as_str()?;
            host.strip_prefix("host")?.parse().ok()
        })
        .collect();
    let first = seen[0]?;
    seen.iter().all(|s| *s == Some(first)).then_some(first)
}

fn viewer(n: u32, id: &str) -> Viewer {
    Viewer::start(&format!("rtmp://127.0.0.1:194{n}/dss/{id}"))
}

#[test]
fn viewers_on_three_hosts_share_one_ffmpeg_and_the_owner_s_death_moves_it() {
    let _serial = serial();
    let demo = Demo::start();
    let id = "demo-bars";
    let viewers: Vec<Viewer> = (1..=3).map(|n| viewer(n, id)).collect();
    for v in &viewers {
        v.wait_frames(0, 25, Duration::from_secs(60));
    }
    // Exactly one FFmpeg runs the source; the two other hosts relay it.
    let (own, relays) = ffmpeg_of(id);
    assert_eq!(own.len(), 1, "stream FFmpeg: {own:?}; relays {relays:?}");
    assert_eq!(relays.len(), 2, "relays: {relays:?}");
    let owner = demo.owner(1, id).expect("an owner");
    for n in 2..=3 {
        assert_eq!(demo.owner(n, id), Some(owner), "every host agrees");
    }
    // What a relay costs a viewer host, against the owner's transcoding.
    let (c0, r0) = (
        cpu_time(own[0], false),
        relays.iter().map(|p| cpu_time(*p, false)).sum::<Duration>(),
    );
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let wall = t0.elapsed().as_secs_f64();
    let owner_cpu = (cpu_time(own[0], false) - c0).as_secs_f64() / wall;
    let relay_cpu = (relays.iter().map(|p| cpu_time(*p, false)).sum::<Duration>() - r0)
        .as_secs_f64()
        / wall
        / relays.len() as f64;
    eprintln!(
        "cpu: the owner's ffmpeg {:.1} % of a core, a relay {:.2} % ({:.1} % of the owner's)",
        owner_cpu * 100.0,
        relay_cpu * 100.0,
        relay_cpu / owner_cpu.max(1e-9) * 100.0
    );
    let cluster: Value = demo.api(1, "/api/cluster").json();
    assert_eq!(
        cluster["nodes"].as_array().map(Vec::len),
        Some(3),
        "{cluster}"
    );
    assert!(cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["alive"] == true));
    // The hosts' internal addresses are the operator's, not the public's.
    assert!(
        cluster["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n.get("advertise_rtmp").is_none() && n.get("api").is_none()),
        "{cluster}"
    );
    assert!(cluster.get("advertise_rtmp").is_none(), "{cluster}");

    // The owner dies (SIGKILL: its FFmpeg go with it, its nginx stays).
    let killed_at = Instant::now();
    // SAFETY: kill(2) on a pid of the demo's own host.
    unsafe {
        libc::kill(demo.pid(owner) as i32, libc::SIGKILL);
    }
    let survivors: Vec<u32> = (1..=3).filter(|n| *n != owner).collect();
    let new_owner = wait_for(
        "another host to run the stream",
        Duration::from_secs(LEASE + 20),
        || {
            let o = demo.owner(survivors[0], id)?;
            let (own, _) = ffmpeg_of(id);
            (survivors.contains(&o) && own.len() == 1).then_some(o)
        },
    );
    let takeover = killed_at.elapsed();
    eprintln!(
        "takeover by host{new_owner} after {:.1} s",
        takeover.as_secs_f64()
    );
    assert!(
        takeover <= Duration::from_secs(LEASE + 5),
        "takeover took {takeover:?} (lease {LEASE} s + 5 s)"
    );
    // Viewers on the surviving hosts get frames again.
    let again: Vec<Viewer> = survivors.iter().map(|n| viewer(*n, id)).collect();
    for v in &again {
        v.wait_frames(0, 25, Duration::from_secs(60));
    }
    let (own, _) = ffmpeg_of(id);
    assert_eq!(
        own.len(),
        1,
        "one stream FFmpeg after the takeover: {own:?}"
    );
    drop(viewers);
}

#[test]
fn a_partitioned_owner_stops_its_ffmpeg_before_another_host_takes_over() {
    let _serial = serial();
    // Each host reaches the store through a proxy this test can cut.
    let (proxies, ports) = store_proxies(&[]);
    let demo = Demo::start_with(&[("CLUSTER_STORE_PORTS", ports)]);
    let id = "demo-pattern";
    let viewers: Vec<Viewer> = (1..=3).map(|n| viewer(n, id)).collect();
    for v in &viewers {
        v.wait_frames(0, 25, Duration::from_secs(60));
    }
    let owner = demo.owner(1, id).expect("an owner");
    let (own, _) = ffmpeg_of(id);
    assert_eq!(own.len(), 1, "{own:?}");
    let first = own[0];

    // The owner loses the store; nginx and its relays still reach it.
    let cut_at = Instant::now();
    proxies[(owner - 1) as usize].block(true);
    let mut stopped_at = None;
    let mut successor = None;
    let mut overlap = Duration::ZERO;
    let mut last = Instant::now();
    while cut_at.elapsed() < Duration::from_secs(LEASE + 20) {
        let (own, _) = ffmpeg_of(id);
        let now = Instant::now();
        if own.len() > 1 {
            overlap += now - last;
        }
        last = now;
        if stopped_at.is_none() && !own.contains(&first) {
            stopped_at = Some(cut_at.elapsed());
        }
        if successor.is_none() {
            if let Some(p) = own.iter().find(|p| **p != first) {
                successor = Some((*p, cut_at.elapsed()));
            }
        }
        if stopped_at.is_some() && successor.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = stopped_at.expect("the partitioned owner never stopped its ffmpeg");
    let (_, started) = successor.expect("no other host took the stream over");
    eprintln!(
        "partition: owner host{owner} stopped its ffmpeg {:.1} s after the cut; the successor's started at {:.1} s; overlap {:?}",
        stopped.as_secs_f64(),
        started.as_secs_f64(),
        overlap
    );
    assert!(
        stopped <= Duration::from_secs(LEASE),
        "stopped after {stopped:?}"
    );
    assert!(
        stopped < started,
        "the owner stopped at {stopped:?}, the successor started at {started:?}"
    );
    assert!(overlap.is_zero(), "two ffmpeg ran for {overlap:?}");
    // The link back, everything serves: viewers on the other hosts too.
    proxies[(owner - 1) as usize].block(false);
    let again: Vec<Viewer> = (1..=3)
        .filter(|n| *n != owner)
        .map(|n| viewer(n, id))
        .collect();
    for v in &again {
        v.wait_frames(0, 25, Duration::from_secs(60));
    }
    drop(viewers);
}

/// Placement, through the hosts' own cluster code on the real store
/// (CongoDB, `MONGO_TEST_URI`), without FFmpeg: 300 streams wanted on
/// three hosts in turn — each claims the ones its viewers want — end up
/// owned evenly, within ±20 % of a third each.
#[test]
fn three_hundred_streams_wanted_across_three_hosts_spread_evenly() {
    let Ok(uri) = std::env::var("MONGO_TEST_URI") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but MONGO_TEST_URI is not set"
        );
        eprintln!("MONGO_TEST_URI is not set: skipped");
        return;
    };
    let db = format!("t_spread_{}_{}", std::process::id(), free_port());
    let (scheme_hosts, query) = uri.split_once("/?").unwrap_or((uri.as_str(), ""));
    let url = format!("{}/{db}?{query}", scheme_hosts.trim_end_matches('/'));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut hosts = Vec::new();
        for n in 1..=3 {
            let mut config = dss_host::config::Config {
                store: dss_store::StoreConfig::mongodb(url.clone()),
                ..Default::default()
            };
            config.cluster.enabled = true;
            config.cluster.node_id = Some(format!("host{n}"));
            config.nginx.rtmp_port = 1940 + n;
            let store = dss_store::open(&config.store).await.expect("store");
            let key = format!("key-of-host{n}");
            hosts.push(dss_host::cluster::Cluster::new(&config, store, key).expect("cluster"));
        }
        for h in &hosts {
            h.tick().await;
        }
        for i in 0..300 {
            let h = &hosts[i % 3];
            let role = h.claim(&format!("spread-{i}")).await;
            assert!(
                !matches!(role, dss_host::cluster::Role::Wait(_)),
                "{role:?}"
            );
            // Hosts look at the cluster every tick (a sixth of a lease):
            // a few dozen claims land between two looks.
            if i % 30 == 29 {
                for h in &hosts {
                    h.tick().await;
                }
            }
        }
        for h in &hosts {
            h.tick().await;
        }
        let spread = dss_host::cluster::spread(&hosts[0].snapshot());
        eprintln!("300 streams owned: {spread:?}");
        // The store's side: renewals a second, 64 in flight as a host sends them.
        let store = dss_store::open(&dss_store::StoreConfig::mongodb(url.clone()))
            .await
            .expect("store");
        let mine: Vec<dss_store::cluster::Lease> = store
            .leases("stream/")
            .await
            .expect("leases")
            .into_iter()
            .filter(|l| l.owner == "host1")
            .collect();
        let started = Instant::now();
        let mut renewed = 0;
        for _ in 0..5 {
            for chunk in mine.chunks(64) {
                let answers = futures_util::future::join_all(
                    chunk
                        .iter()
                        .map(|l| store.lease_renew(&l.name, "host1", l.epoch, 10_000)),
                )
                .await;
                renewed += answers.iter().filter(|r| matches!(r, Ok(true))).count();
            }
        }
        eprintln!(
            "renewals: {renewed} in {:.2} s, {:.0} a second (10,000 streams with a 10 s lease need 3,000 a second)",
            started.elapsed().as_secs_f64(),
            renewed as f64 / started.elapsed().as_secs_f64()
        );
        assert_eq!(spread.values().sum::<usize>(), 300, "{spread:?}");
        for n in 1..=3 {
            let owned = spread.get(&format!("host{n}")).copied().unwrap_or(0);
            assert!(
                (80..=120).contains(&owned),
                "host{n} owns {owned}: {spread:?}"
            );
            assert_eq!(
                hosts[n - 1].snapshot().owned_here,
                owned,
                "host{n}'s own count"
            );
        }
    });
}

#[test]
fn a_recorded_stream_runs_and_records_on_its_owner_alone() {
    let _serial = serial();
    let demo = Demo::start();
    // The same recorded instance on every host (deployed to all, as the
    // README says), picked up by each host's instance watcher.
    let instance = r#"module = "static-list"
[config]
input_options = ["-re", "-f", "lavfi"]
output_options = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25"]
streams = [{ key = "cam", name = "Recorded", source = "testsrc2=size=320x240:rate=25" }]
[record]
enabled = true
interval = 60
"#;
    for n in 1..=3 {
        let dir = repo_root().join(format!("var/cluster/host{n}/providers.d"));
        std::fs::write(dir.join(".rec.tmp"), instance).expect("write");
        std::fs::rename(dir.join(".rec.tmp"), dir.join("rec.toml")).expect("rename");
    }
    let segments = |n: u32| -> usize {
        std::fs::read_dir(repo_root().join(format!("var/cluster/host{n}/state/record/rec-cam")))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let recorder = wait_for("a host to record rec-cam", Duration::from_secs(90), || {
        (1..=3).find(|n| segments(*n) > 0)
    });
    // Some seconds later: still one FFmpeg, no relay, one recording host.
    std::thread::sleep(Duration::from_secs(5));
    let (own, relays) = ffmpeg_of("rec-cam");
    assert_eq!(own.len(), 1, "{own:?}");
    assert!(
        relays.is_empty(),
        "relays of a stream nobody watches: {relays:?}"
    );
    assert_eq!(demo.owner(1, "rec-cam"), Some(recorder));
    for n in (1..=3).filter(|n| *n != recorder) {
        assert_eq!(segments(n), 0, "host{n} records too");
    }
}

#[test]
fn one_host_refreshes_each_provider_and_the_others_serve_its_listing() {
    let _serial = serial();
    let feed = FileServer::start(vec![("/cams.json", cameras(&["a", "b"]))]);
    let demo = Demo::start();
    let all = [1, 2, 3];
    // The demo's instances: one refresher each, the same seen from every
    // host; the phones' instance (ingest) is never shared.
    let demo_ids = ["city", "demo", "traffic"];
    wait_for(
        "a refresher for each demo instance",
        Duration::from_secs(30),
        || {
            demo_ids
                .iter()
                .all(|p| refresher(&demo, &all, p).is_some())
                .then_some(())
        },
    );
    let c = demo.api(1, "/api/cluster").json();
    let mut shared: Vec<&String> = c["refreshers"]
        .as_object()
        .expect("refreshers")
        .keys()
        .collect();
    shared.sort();
    assert_eq!(shared, demo_ids, "{c}");
    for p in demo_ids {
        let r = refresher(&demo, &all, p).expect("refresher");
        for n in all.iter().filter(|n| **n != r) {
            assert_eq!(
                listings_by(&demo, *n, p),
                0,
                "host{n} listed {p} (host{r} refreshes it)"
            );
        }
    }

    // An instance deployed to every host, as an operator would (the
    // directory watcher loads it), refreshed every 2 s.
    let text = format!(
        r#"module = "traffic-feed"
allow_hosts = ["{addr}"]
input_options = ["-re", "-f", "lavfi"]
[config]
url = "http://{addr}/cams.json"
format = "json"
refresh_seconds = 2
fields = {{ key = "id", name = "name", source = "source" }}
"#,
        addr = feed.addr
    );
    for n in all {
        let dir = repo_root().join(format!("var/cluster/host{n}/providers.d"));
        std::fs::write(dir.join("feed.toml.tmp"), &text).expect("write");
        std::fs::rename(dir.join("feed.toml.tmp"), dir.join("feed.toml")).expect("rename");
    }
    wait_listed(&demo, &all, "feed-b", Duration::from_secs(30));
    let r = wait_for("one refresher of feed", Duration::from_secs(30), || {
        refresher(&demo, &all, "feed")
    });
    // Several refreshes later, only the refresher has called the provider
    // (and the feed), the others serve its listings.
    let before = feed.hits();
    wait_for("three more refreshes", Duration::from_secs(30), || {
        (feed.hits() >= before + 3).then_some(())
    });
    let by_refresher = listings_by(&demo, r, "feed");
    assert!(
        by_refresher >= 3,
        "host{r} listed feed {by_refresher} times"
    );
    for n in all.iter().filter(|n| **n != r) {
        assert_eq!(
            listings_by(&demo, *n, "feed"),
            0,
            "host{n} listed feed (host{r} refreshes it)"
        );
        let p = demo.api(*n, "/api/providers/feed").json();
        assert_eq!(p["listing_source"], "cluster", "{p}");
        assert_eq!(p["refreshed_by"], format!("host{r}"), "{p}");
    }
    eprintln!(
        "feed: {} requests, {by_refresher} listings by host{r}, none by the others",
        feed.hits()
    );

    // A change of the feed reaches every host.
    feed.set("/cams.json", cameras(&["a", "b", "c"]));
    wait_listed(&demo, &all, "feed-c", Duration::from_secs(20));

    // The refresher dies: another host refreshes within the lease, and the
    // feed's changes still reach the survivors.
    let killed_at = Instant::now();
    // SAFETY: kill(2) on a pid of the demo's own host.
    unsafe {
        libc::kill(demo.pid(r) as i32, libc::SIGKILL);
    }
    let survivors: Vec<u32> = all.into_iter().filter(|n| *n != r).collect();
    feed.set("/cams.json", cameras(&["a", "b", "c", "d"]));
    wait_listed(
        &demo,
        &survivors,
        "feed-d",
        Duration::from_secs(LEASE * 2 + 10),
    );
    let next = wait_for("a new refresher of feed", Duration::from_secs(10), || {
        refresher(&demo, &survivors, "feed")
    });
    assert!(survivors.contains(&next), "host{next}");
    eprintln!(
        "feed: host{next} refreshes it, the change reached both survivors {:.1} s after host{r} died",
        killed_at.elapsed().as_secs_f64()
    );
    let other = survivors
        .iter()
        .find(|n| **n != next)
        .copied()
        .expect("a follower");
    assert_eq!(
        listings_by(&demo, other, "feed"),
        0,
        "host{other} never listed feed"
    );

    // A host whose instance file differs (a deployment half done) lists the
    // instance itself rather than serve another version's listings: once
    // to try the new version, then on every refresh.
    let dir = repo_root().join(format!("var/cluster/host{other}/providers.d"));
    std::fs::write(dir.join("feed.toml.tmp"), format!("{text}# changed\n")).expect("write");
    std::fs::rename(dir.join("feed.toml.tmp"), dir.join("feed.toml")).expect("rename");
    demo.wait_log(
        other,
        "runs another version of this instance",
        Duration::from_secs(20),
    );
    let what = format!("host{other} listing feed itself");
    wait_for(&what, Duration::from_secs(20), || {
        (listings_by(&demo, other, "feed") >= 2).then_some(())
    });
    let p = demo.api(other, "/api/providers/feed").json();
    assert_eq!(p["listing_source"], "provider", "{p}");
    assert_eq!(p["refreshed_by"], format!("host{other}"), "{p}");
}

#[test]
fn a_second_host_under_a_live_host_s_node_id_is_refused_at_start() {
    let Some(url) = mongo_url(&format!("t_twin_{}_{}", std::process::id(), free_port())) else {
        return;
    };
    let twin = |s: &mut Setup| {
        s.set("store", &format!("url = \"{url}\""));
        s.set("cluster", "enabled = true");
        s.set("cluster", "node_id = \"twin\"");
        s.set("cluster", "lease_seconds = 30");
    };
    let mut first = Setup::new();
    twin(&mut first);
    let mut host = first.start();
    let mut second = Setup::new();
    twin(&mut second);
    let err = second.serve_refused();
    assert!(
        err.contains("node id \"twin\" is in use by another live host")
            && err.contains(&format!("API http://127.0.0.1:{}", first.port))
            && err.contains("give each host its own node_id"),
        "{err}"
    );
    // The first host, restarted at once (its record still live), is
    // itself: its key is in its state directory.
    host.crash();
    let again = first.start();
    assert_eq!(again.get("/api/cluster").status, 200);
}

#[test]
fn a_refresher_cut_off_with_queued_listings_never_replays_them_over_its_successor_s() {
    let _serial = serial();
    let db = format!("t_fence_{}_{}", std::process::id(), free_port());
    let Some(direct) = mongo_url(&db) else {
        return;
    };
    // Each host reaches the store through a proxy this test can cut.
    let authority = direct
        .trim_start_matches("mongodb://")
        .split('/')
        .next()
        .expect("host:port")
        .to_string();
    let port: u16 = authority
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let proxies = [
        dss_e2e::proxy::Proxy::start(port),
        dss_e2e::proxy::Proxy::start(port),
    ];
    let feed = FileServer::start(vec![("/cams.json", cameras(&["a", "b"]))]);
    let instance = format!(
        r#"module = "traffic-feed"
allow_hosts = ["{addr}"]
[config]
url = "http://{addr}/cams.json"
format = "json"
refresh_seconds = 1
fields = {{ key = "id", name = "name", source = "source" }}
"#,
        addr = feed.addr
    );
    let setups: Vec<Setup> = (0..2)
        .map(|i| {
            let mut s = Setup::new();
            let via = direct.replacen(&authority, &format!("127.0.0.1:{}", proxies[i].port), 1);
            s.set("store", &format!("url = \"{via}\""));
            s.set("cluster", "enabled = true");
            s.set("cluster", &format!("node_id = \"host{i}\""));
            // Six listings a lease: several are queued while the cut-off
            // refresher still holds it.
            s.set("cluster", "lease_seconds = 6");
            s.instance("feed", &instance);
            s
        })
        .collect();
    let hosts: Vec<Host> = setups.iter().map(|s| s.start()).collect();
    let refresher_seen_by = |i: usize| -> Option<usize> {
        let c = hosts[i].get("/api/cluster").json();
        let h = c["refreshers"]["feed"]["host"]
            .as_str()?
            .strip_prefix("host")?;
        h.parse().ok()
    };
    let r = wait_for("one refresher of feed", Duration::from_secs(30), || {
        let r = refresher_seen_by(0)?;
        (refresher_seen_by(1) == Some(r)).then_some(r)
    });
    let o = 1 - r;

    // The refresher is cut off: its next listings wait in its store queue.
    proxies[r].block(true);
    let queued = |i: usize| -> u64 {
        let st = hosts[i].get("/api/status").json();
        st["store"]["health"]["queued_writes"].as_u64().unwrap_or(0)
    };
    wait_for(
        "listings queued on the cut-off refresher",
        Duration::from_secs(40),
        || (queued(r) > 0).then_some(()),
    );
    // The other host takes the refresh over once the lease runs out; the
    // feed changes then (the queued listings are older).
    wait_for(
        "the other host refreshing feed",
        Duration::from_secs(40),
        || (refresher_seen_by(o) == Some(o)).then_some(()),
    );
    feed.set("/cams.json", cameras(&["a", "b", "c"]));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt.block_on(async {
        dss_store::open(&dss_store::StoreConfig::mongodb(direct.clone()))
            .await
            .expect("store")
    });
    let keys = |l: &dss_store::Listing| -> Vec<String> {
        l.streams.iter().map(|s| s.key.clone()).collect()
    };
    let stored = || rt.block_on(store.get_listing("feed")).ok().flatten();
    wait_for(
        "the successor's listing with c in the store",
        Duration::from_secs(30),
        || {
            stored()
                .filter(|l| keys(l).contains(&"c".to_string()))
                .map(|_| ())
        },
    );

    // Reconnected, the old refresher's queue drains: its listings lose to
    // the newer epoch, and the store never shows them, not even briefly.
    // Everything the store holds from now on is watched, until the old
    // refresher's queue has drained and the successor has listed twice more.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (stop, direct) = (stop.clone(), direct.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async {
                let store = dss_store::open(&dss_store::StoreConfig::mongodb(direct))
                    .await
                    .expect("store");
                let mut stale = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Ok(Some(l)) = store.get_listing("feed").await {
                        let k: Vec<String> = l.streams.iter().map(|s| s.key.clone()).collect();
                        if !k.contains(&"c".to_string()) {
                            stale.push((k, l.epoch));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                stale
            })
        })
    };
    proxies[r].block(false);
    wait_for(
        "the old refresher's queue drained",
        Duration::from_secs(60),
        || (queued(r) == 0).then_some(()),
    );
    let listed = |i: usize| {
        hosts[i]
            .log_text()
            .matches("listing refreshed provider=feed")
            .count()
    };
    let before = listed(o);
    wait_for(
        "two more listings by the successor",
        Duration::from_secs(30),
        || (listed(o) >= before + 2).then_some(()),
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let stale = watcher.join().expect("watcher");
    assert!(
        stale.is_empty(),
        "an old listing replaced the successor's, seen {} times: {:?}",
        stale.len(),
        stale.first()
    );
    hosts[r].wait_log("listing write superseded", Duration::from_secs(10));
    let last = stored().expect("listing");
    assert!(keys(&last).contains(&"c".to_string()), "{:?}", keys(&last));
    // Both hosts serve the successor's listing.
    for h in &hosts {
        wait_for("feed-c everywhere", Duration::from_secs(30), || {
            (h.get("/api/streams/feed-c").status == 200).then_some(())
        });
    }
}

#[test]
fn a_host_that_cannot_reach_mongodb_lists_its_instances_itself() {
    let _serial = serial();
    // Host 3 reaches the store through a proxy that holds everything back
    // from the start.
    let (proxies, ports) = store_proxies(&[3]);
    let demo = Demo::start_with(&[("CLUSTER_STORE_PORTS", ports)]);
    // Hosts 1 and 2 share the demo's static list; host 3 cannot tell who
    // refreshes it, so it lists the instance itself rather than serve
    // nothing.
    let provider = |n: u32| demo.api(n, "/api/providers/demo").json();
    wait_for("host3 listing demo itself", Duration::from_secs(30), || {
        let p = provider(3);
        (p["listing_source"] == "provider" && p["refreshed_by"] == "host3").then_some(())
    });
    assert_eq!(demo.api(3, "/api/streams/demo-bars").status, 200);
    let r = wait_for("one refresher of demo", Duration::from_secs(30), || {
        refresher(&demo, &[1, 2], "demo")
    });
    assert!(r == 1 || r == 2, "host{r}");
    // Reconnected, it serves the refresher's listing again.
    proxies[2].block(false);
    wait_for(
        "host3 following again",
        Duration::from_secs(LEASE * 3),
        || {
            let p = provider(3);
            (p["listing_source"] == "cluster" && p["refreshed_by"] == format!("host{r}"))
                .then_some(())
        },
    );
}
