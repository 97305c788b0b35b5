//! FFmpeg processes: the argv built (never through a shell) from a stream's
//! source and options, the child spawned in its own process group with a
//! parent-death signal so none outlives the host, its stderr kept in a
//! bounded log and its `-progress` output turned into a liveness signal.

use crate::catalog::StreamEntry;
use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long FFmpeg gets to exit after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest stderr line kept.
const MAX_LINE: usize = 1_000;

/// Options no stream may carry: they write or read local files or would
/// add inputs and outputs behind the host's back.
const FORBIDDEN_OPTIONS: &[&str] = &[
    "-i",
    "-y",
    "-progress",
    "-vstats_file",
    "-passlogfile",
    "-filter_script",
    "-filter_complex_script",
    "-dump_attachment",
    "-attach",
    "-report",
    "-sdp_file",
];

/// Source URL schemes a provider may use.
const ALLOWED_SCHEMES: &[&str] = &[
    "rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "srt", "udp", "tcp", "rtp",
];

/// Why a stream cannot be started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpawnError {
    /// The stream's source or options break the rules above.
    #[error("refused: {0}")]
    Refused(String),
    /// The process could not be started.
    #[error("cannot start {binary}: {message}")]
    Spawn {
        /// The binary.
        binary: String,
        /// Why.
        message: String,
    },
}

/// Checks what a provider asks FFmpeg to do.
pub fn check_stream(s: &StreamEntry) -> Result<(), SpawnError> {
    for o in s.input_options.iter().chain(&s.output_options) {
        if FORBIDDEN_OPTIONS.contains(&o.as_str()) {
            return Err(SpawnError::Refused(format!("option {o} is not allowed")));
        }
    }
    let lavfi = s
        .input_options
        .windows(2)
        .any(|w| w[0] == "-f" && w[1] == "lavfi");
    let source = s.source.as_str();
    if lavfi {
        // Test-pattern graphs; no filter that reads files or sockets.
        let bad = ["movie", "sendcmd", "zmq", "azmq", "/"];
        if let Some(b) = bad.iter().find(|b| source.contains(*b)) {
            return Err(SpawnError::Refused(format!("lavfi source uses {b:?}")));
        }
        return Ok(());
    }
    if source == "pipe:0" {
        return Ok(());
    }
    let scheme = source
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    match scheme {
        Some(s) if ALLOWED_SCHEMES.contains(&s.as_str()) => Ok(()),
        _ => Err(SpawnError::Refused(format!(
            "source must be a URL with one of the schemes {}",
            ALLOWED_SCHEMES.join(", ")
        ))),
    }
}

/// The full argv (without the binary) that publishes `s` to `output`.
pub fn argv(s: &StreamEntry, output: &str) -> Vec<String> {
    let mut a: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "warning",
        // key=value blocks on stdout, about twice a second: the liveness
        // signal used for stale detection.
        "-progress",
        "pipe:1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(s.input_options.iter().cloned());
    a.push("-i".into());
    a.push(s.source.clone());
    a.extend(s.output_options.iter().cloned());
    a.extend(["-f".to_string(), "flv".to_string(), output.to_string()]);
    a
}

/// What the supervisor sees of a running FFmpeg.
#[derive(Debug, Default)]
pub struct Monitor {
    /// Last stderr lines.
    pub log: VecDeque<String>,
    /// When the output last advanced.
    pub last_progress: Option<Instant>,
    /// Frames written so far (from progress).
    pub frames: u64,
    /// Output time reached, in microseconds (from progress).
    pub out_time_us: i64,
}

/// A running FFmpeg.
pub struct Process {
    /// The child.
    pub child: tokio::process::Child,
    /// Its pid (= its process group id).
    pub pid: u32,
    /// Shared with the reader tasks.
    pub monitor: Arc<Mutex<Monitor>>,
}

/// Spawns `binary argv...` in its own process group, with SIGKILL as its
/// parent-death signal, stdout/stderr read by background tasks into a
/// [`Monitor`] holding at most `log_lines` lines.
///
/// Must be called from a runtime worker thread, never from a blocking-pool
/// thread: the parent-death signal fires when the *thread* that forked
/// exits, and blocking-pool threads exit when idle.
pub fn spawn(binary: &Path, argv: &[String], log_lines: usize) -> Result<Process, SpawnError> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Own group: a terminal's Ctrl-C does not hit it, and stopping
        // kills everything FFmpeg may have started.
        .process_group(0);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only
    // calls async-signal-safe functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The host may have died between fork and prctl.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("parent exited"));
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| SpawnError::Spawn {
        binary: binary.display().to_string(),
        message: e.to_string(),
    })?;
    let pid = child.id().unwrap_or(0);
    let monitor = Arc::new(Mutex::new(Monitor::default()));
    if let Some(stderr) = child.stderr.take() {
        let m = monitor.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(mut line)) = lines.next_line().await {
                if line.len() > MAX_LINE {
                    let mut cut = MAX_LINE;
                    while !line.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    line.truncate(cut);
                }
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                if m.log.len() >= log_lines.max(1) {
                    m.log.pop_front();
                }
                m.log.push_back(line);
            }
        });
    }
    if let Some(stdout) = child.stdout.take() {
        let m = monitor.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                // Progress means output advancing (frames or, for audio
                // only, time): FFmpeg blocked on a silent input prints
                // nothing, and a stuck one may repeat the same figures.
                let advanced = if let Some(v) = line.strip_prefix("frame=") {
                    let f = v.trim().parse().unwrap_or(m.frames);
                    std::mem::replace(&mut m.frames, f) < f
                } else if let Some(v) = line.strip_prefix("out_time_us=") {
                    let t = v.trim().parse().unwrap_or(m.out_time_us);
                    std::mem::replace(&mut m.out_time_us, t) < t
                } else {
                    false
                };
                if advanced {
                    m.last_progress = Some(Instant::now());
                }
            }
        });
    }
    Ok(Process {
        child,
        pid,
        monitor,
    })
}

/// Sends `signal` to the process group `pid`.
pub fn signal_group(pid: u32, signal: libc::c_int) {
    if pid == 0 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; it has
    // no memory-safety preconditions.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

impl Process {
    /// Stops FFmpeg: SIGTERM to its group, SIGKILL after [`STOP_TIMEOUT`];
    /// returns once it is reaped.
    pub async fn stop(mut self) -> Option<std::process::ExitStatus> {
        signal_group(self.pid, libc::SIGTERM);
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                // Anything FFmpeg started goes too.
                signal_group(self.pid, libc::SIGKILL);
                status.ok()
            }
            Err(_) => {
                signal_group(self.pid, libc::SIGKILL);
                self.child.wait().await.ok()
            }
        }
    }

    /// The last stderr lines.
    pub fn log_tail(&self, n: usize) -> Vec<String> {
        let m = self.monitor.lock().unwrap_or_else(|p| p.into_inner());
        m.log.iter().rev().take(n).rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn entry(source: &str, input: &[&str], output: &[&str]) -> StreamEntry {
        StreamEntry {
            id: "demo-a".into(),
            provider: "demo".into(),
            key: "a".into(),
            name: "A".into(),
            geo: None,
            online: true,
            source: source.into(),
            input_options: input.iter().map(|s| s.to_string()).collect(),
            output_options: output.iter().map(|s| s.to_string()).collect(),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn argv_places_options_around_the_input_and_ends_with_the_output() {
        let e = entry("rtsp://cam/1", &["-rtsp_transport", "tcp"], &["-c", "copy"]);
        let a = argv(&e, "rtmp://127.0.0.1:1935/dss/demo-a?token=t");
        let i = a.iter().position(|x| x == "-i").unwrap();
        assert_eq!(&a[i - 2..i], ["-rtsp_transport", "tcp"]);
        assert_eq!(a[i + 1], "rtsp://cam/1");
        assert_eq!(
            &a[i + 2..],
            [
                "-c",
                "copy",
                "-f",
                "flv",
                "rtmp://127.0.0.1:1935/dss/demo-a?token=t"
            ]
        );
        assert!(a.contains(&"-nostdin".to_string()));
    }

    #[test]
    fn provider_sources_and_options_are_checked() {
        assert!(check_stream(&entry("rtsp://cam/1", &[], &[])).is_ok());
        assert!(check_stream(&entry("testsrc2=size=320x240", &["-f", "lavfi"], &[])).is_ok());
        assert!(check_stream(&entry("pipe:0", &["-f", "mpegts"], &[])).is_ok());
        for bad in [
            entry("/etc/passwd", &[], &[]),
            entry("file:///etc/passwd", &[], &[]),
            entry("concat:a|b", &[], &[]),
            entry("movie=/etc/passwd", &["-f", "lavfi"], &[]),
            entry("rtsp://cam/1", &[], &["-y", "/tmp/x"]),
            entry("rtsp://cam/1", &["-i", "/etc/passwd"], &[]),
        ] {
            assert!(check_stream(&bad).is_err(), "{bad:?}");
        }
    }
}
