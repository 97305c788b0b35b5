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

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running demo; stopped (SIGTERM, as an operator's Ctrl-C) on drop.
struct Demo {
    child: Child,
}

impl Demo {
    fn start() -> Demo {
        let mut child = Command::new("scripts/cluster-demo.sh")
            .current_dir(repo_root())
            .env("CLUSTER_STORE_PORT", free_port().to_string())
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
