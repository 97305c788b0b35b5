//! `cargo bench -p dss-e2e --bench mobile`: the mobile ingest's cost.
//!
//! 1. Throughput of one phone connection: MPEG-TS in the original's
//!    frames, sent as fast as the host takes it (it feeds FFmpeg, which
//!    publishes to nginx-rtmp, which cuts HLS), against the same frames
//!    sent to a plain loopback TCP reader in the same run: the ratio is
//!    what the ingest costs over the machine's raw socket path. Two frame
//!    sizes: the original phones' ~512 B, and 64 KiB. The CPU of the host
//!    and of the phone's FFmpeg while it runs shows which one limits it.
//! 2. 20 phones at 2 Mbit/s each (paced, one position a second) for
//!    10 s: the host's CPU per phone, with FFmpeg's (the remux it does per
//!    phone) beside it.

use dss_e2e::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);
/// The test clip: 10 s at 2 Mbit/s, looped to this many seconds (so a
/// whole throughput run has rising timestamps).
const CLIP_SECONDS: u32 = 240;
/// Phones of the CPU part and their bit rate.
const PHONES: usize = 20;
const PHONE_BYTES_PER_SECOND: usize = 2_000_000 / 8;
/// Seconds the CPU part measures (after the phones are live).
const CPU_SECONDS: u64 = 10;

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + payload.len());
    f.push(kind);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A 2 Mbit/s H.264 MPEG-TS of `CLIP_SECONDS`, made once per run.
fn clip(dir: &Path) -> PathBuf {
    let short = dir.join("short.ts");
    let long = dir.join("clip.ts");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=25")
        .args([
            "-t",
            "10",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
        ])
        .args([
            "-b:v", "2M", "-maxrate", "2M", "-bufsize", "1M", "-f", "mpegts",
        ])
        .arg(&short)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ffmpeg could not make the clip");
    let loops = (CLIP_SECONDS / 10 - 1).to_string();
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-stream_loop", &loops, "-i"])
        .arg(&short)
        .args(["-c", "copy", "-f", "mpegts"])
        .arg(&long)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ffmpeg could not loop the clip");
    long
}

/// Says hello as phone `id`; returns once the host answered.
fn hello(addr: &str, id: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect to the ingest");
    let meta = format!(r#"{{"type":"meta","content":{{"id":"{id}"}}}}"#);
    s.write_all(&frame(0, meta.as_bytes())).expect("hello");
    let mut head = [0u8; 5];
    s.read_exact(&mut head).expect("the host's answer");
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("the host's answer");
    s
}

/// Sends `ts` in video frames of `chunk` bytes; the time it took.
fn blast(s: &mut TcpStream, ts: &[u8], chunk: usize) -> Duration {
    // Frames are built up front: the sender's own copying is not measured.
    let frames: Vec<u8> = ts.chunks(chunk).flat_map(|c| frame(1, c)).collect();
    let t0 = Instant::now();
    s.write_all(&frames).expect("send the clip");
    t0.elapsed()
}

/// The same TS (not framed) into FFmpeg's standard input, which remuxes
/// it to a plain nginx-rtmp that cuts HLS and DASH as DSS's does: the
/// work DSS's chain does without DSS. The first `head` bytes (FFmpeg's
/// start and probe) go before the clock starts.
fn ffmpeg_alone(ts: &[u8], head: usize, rtmp: u16) -> Duration {
    let mut ff = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-analyzeduration",
            "1000000",
            "-f",
            "mpegts",
            "-i",
            "pipe:0",
        ])
        .args(["-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{rtmp}/live/alone"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg");
    let mut stdin = ff.stdin.take().expect("stdin");
    {
        use std::os::fd::AsRawFd;
        // The pipe as large as the host makes its FIFOs ([mobile]
        // buffer_bytes, 1 MiB), so both chains hand over the same chunks.
        // SAFETY: fcntl(2) F_SETPIPE_SZ on a pipe descriptor we own.
        unsafe { libc::fcntl(stdin.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    }
    stdin.write_all(&ts[..head]).expect("feed ffmpeg");
    let t0 = Instant::now();
    stdin.write_all(&ts[head..]).expect("feed ffmpeg");
    let d = t0.elapsed();
    drop(stdin);
    let _ = ff.wait();
    d
}

/// The same bytes to a loopback reader that discards them.
fn raw_tcp(ts: &[u8], chunk: usize) -> Duration {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let reader = std::thread::spawn(move || {
        let (mut c, _) = l.accept().expect("accept");
        let mut buf = vec![0u8; 64 * 1024];
        while c.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    let mut s = TcpStream::connect(addr).expect("connect");
    let d = blast(&mut s, ts, chunk);
    drop(s);
    let _ = reader.join();
    d
}

fn mb_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// CPU time (user + system) of process `pid` so far.
fn cpu(pid: u32) -> Duration {
    cpu_time(pid, false)
}

fn main() {
    let work = tempfile::tempdir().expect("tempdir");
    let ts = std::fs::read(clip(work.path())).expect("read the clip");
    let mut s = Setup::new();
    s.log_filter = "info".into();
    s.with_nginx(2);
    s.set("mobile", "max_sessions = 100");
    s.instance(
        "phones",
        "module = \"mobile-ts\"\n\n[config]\nphones = []\n",
    );
    let host = s.start();
    let addr = format!("127.0.0.1:{}", s.mobile_port);
    println!(
        "mobile ingest, clip {:.1} MB ({CLIP_SECONDS} s at 2 Mbit/s, H.264 MPEG-TS)",
        ts.len() as f64 / 1e6
    );

    println!("\n1. one connection, frames sent as fast as they are taken");
    let plain = PlainNginx::start_segmenting();
    let head = 2_000_000.min(ts.len() / 4);
    println!(
        "| frame payload | raw loopback TCP | FFmpeg → nginx-rtmp alone | DSS ingest | vs raw TCP | vs FFmpeg alone | host CPU | its FFmpeg's CPU |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (n, chunk) in [512usize, 65536].into_iter().enumerate() {
        let raw = raw_tcp(&ts, chunk);
        let alone = mb_s(ts.len() - head, ffmpeg_alone(&ts, head, plain.rtmp));
        let id = format!("blast{n}");
        let mut phone = hello(&addr, &id);
        // Start-up (listing, FFmpeg's spawn and probe) is not throughput:
        // the first 2 MB go before the clock starts.
        blast(&mut phone, &ts[..head], chunk);
        host.wait_stream(&format!("phones-{id}"), "the phone live", T, |v| {
            v["state"] == "live"
        });
        let ffmpeg = publishers_of(&format!("phones-{id}"));
        let (h0, f0) = (
            cpu(host.child.id()),
            ffmpeg.iter().map(|p| cpu(*p)).sum::<Duration>(),
        );
        let d = blast(&mut phone, &ts[head..], chunk);
        let (h1, f1) = (
            cpu(host.child.id()),
            ffmpeg.iter().map(|p| cpu(*p)).sum::<Duration>(),
        );
        let bytes = ts.len() - head;
        let (r, m) = (mb_s(ts.len(), raw), mb_s(bytes, d));
        let busy = |c: Duration| 100.0 * c.as_secs_f64() / d.as_secs_f64();
        println!(
            "| {chunk} B | {r:.0} MB/s | {alone:.1} MB/s | {m:.1} MB/s | {:.1} % | {:.0} % | {:.0} % | {:.0} % |",
            100.0 * m / r,
            100.0 * m / alone,
            busy(h1 - h0),
            busy(f1 - f0)
        );
        drop(phone);
        host.wait_stream(&format!("phones-{id}"), "the phone gone", T, |v| {
            v["online"] == false
        });
    }

    println!(
        "\n2. {PHONES} phones at 2 Mbit/s, 512 B frames, a position a second, {CPU_SECONDS} s"
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let connect_at = Instant::now();
    let senders: Vec<_> = (0..PHONES)
        .map(|i| {
            let (addr, stop, ts) = (addr.clone(), stop.clone(), ts.clone());
            std::thread::spawn(move || {
                let mut s = hello(&addr, &format!("p{i}"));
                let tick = Duration::from_millis(100);
                let per_tick = PHONE_BYTES_PER_SECOND / 10;
                let t0 = Instant::now();
                let mut sent = 0usize;
                let mut k = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && sent < ts.len() {
                    let end = (sent + per_tick).min(ts.len());
                    let mut out: Vec<u8> = ts[sent..end]
                        .chunks(512)
                        .flat_map(|c| frame(1, c))
                        .collect();
                    if k.is_multiple_of(10) {
                        let pos = format!(
                            r#"{{"type":"coord","content":{{"latitude":{},"longitude":{}}}}}"#,
                            -22.9 + f64::from(k) * 1e-5,
                            -43.2 + i as f64 * 1e-3
                        );
                        out.extend(frame(3, pos.as_bytes()));
                    }
                    if s.write_all(&out).is_err() {
                        break;
                    }
                    sent = end;
                    k += 1;
                    let next = t0 + tick * k;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        })
        .collect();
    let ids: Vec<String> = (0..PHONES).map(|i| format!("phones-p{i}")).collect();
    // From connecting at once to each phone's stream live (published to
    // nginx-rtmp), polled every 20 ms.
    let mut live_after: std::collections::BTreeMap<String, Duration> = Default::default();
    while live_after.len() < PHONES {
        assert!(connect_at.elapsed() < T, "phones not live: {live_after:?}");
        let list = host.get("/api/streams?provider=phones").json();
        for v in list.as_array().into_iter().flatten() {
            if let Some(id) = v["id"].as_str() {
                if v["state"] == "live" && !live_after.contains_key(id) {
                    live_after.insert(id.to_string(), connect_at.elapsed());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut times: Vec<Duration> = live_after.values().copied().collect();
    times.sort();
    println!(
        "connect → live, {PHONES} phones at once: median {:.2} s, max {:.2} s",
        times[PHONES / 2].as_secs_f64(),
        times[PHONES - 1].as_secs_f64()
    );
    let host_pid = host.child.id();
    let ffmpeg: Vec<u32> = ids.iter().flat_map(|id| publishers_of(id)).collect();
    let (h0, f0): (Duration, Duration) = (cpu(host_pid), ffmpeg.iter().map(|p| cpu(*p)).sum());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(CPU_SECONDS));
    let wall = t0.elapsed().as_secs_f64();
    let (h1, f1): (Duration, Duration) = (cpu(host_pid), ffmpeg.iter().map(|p| cpu(*p)).sum());
    let (rss, health) = (host.rss_kib(), host.health());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in senders {
        let _ = t.join();
    }
    let per = |d: Duration| 100.0 * d.as_secs_f64() / wall / PHONES as f64;
    let host_cpu = per(h1 - h0);
    let ff_cpu = per(f1 - f0);
    println!("| | CPU per phone (% of one core) | {PHONES} phones |");
    println!("| --- | --- | --- |");
    println!(
        "| dss host | {host_cpu:.2} % | {:.1} % |",
        host_cpu * PHONES as f64
    );
    println!(
        "| its FFmpeg ({} processes) | {ff_cpu:.2} % | {:.1} % |",
        ffmpeg.len(),
        ff_cpu * PHONES as f64
    );
    println!(
        "host/FFmpeg CPU ratio: {:.2} (the host's framing, FIFOs and positions against FFmpeg's remux of the same bytes)",
        host_cpu / ff_cpu.max(1e-9)
    );
    println!(
        "host RSS {} MiB with {} phones connected",
        rss / 1024,
        health["mobile"]["connected"]
    );
}
