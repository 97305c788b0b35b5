//! Media around a host: test-pattern instances, phones (`dss
//! mobile-send`), viewers (FFmpeg decoding a stream), and `ffprobe`.

use crate::paths::dss_bin;
use crate::wait::wait_for;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A static-list instance of lavfi test patterns (small, cheap to encode).
pub fn test_pattern_instance(keys: &[&str]) -> String {
    let streams: Vec<String> = keys
        .iter()
        .map(|k| format!("{{ key = \"{k}\", source = \"testsrc=size=320x240:rate=15\" }}"))
        .collect();
    format!(
        "module = \"static-list\"\n\
         input_options = [\"-re\", \"-f\", \"lavfi\"]\n\
         output_options = [\"-c:v\", \"libx264\", \"-preset\", \"ultrafast\", \"-tune\", \"zerolatency\", \"-pix_fmt\", \"yuv420p\", \"-g\", \"15\"]\n\
         [config]\nstreams = [{}]\n",
        streams.join(", ")
    )
}

/// `dss mobile-send` running in the background (killed on drop); its
/// stdout lines are collected.
pub struct Sender {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Sender {
    /// Runs `dss mobile-send ARGS...`.
    pub fn start(args: &[&str]) -> Sender {
        let mut child = Command::new(dss_bin())
            .arg("mobile-send")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn dss mobile-send");
        let out = child.stdout.take().expect("stdout");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                l2.lock().expect("lines").push(line);
            }
        });
        Sender { child, lines }
    }

    /// The stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    /// Waits for the `id: ID` line.
    pub fn wait_id(&self, timeout: Duration) -> String {
        wait_for("the sender's id line", timeout, || {
            self.lines()
                .iter()
                .find_map(|l| l.strip_prefix("id: ").map(str::to_string))
        })
    }

    /// Waits for the sender to exit; its status.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        wait_for("the sender to exit", timeout, || {
            self.child.try_wait().ok().flatten()
        })
    }

    /// Kills it (a phone vanishing).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real viewer: FFmpeg reading a stream and decoding it, reporting the
/// frames it got. Killed on drop.
pub struct Viewer {
    child: Child,
    progress: PathBuf,
    _dir: tempfile::TempDir,
}

impl Viewer {
    /// Starts watching `url`.
    pub fn start(url: &str) -> Viewer {
        let dir = tempfile::tempdir().expect("tempdir");
        let progress = dir.path().join("progress");
        let child = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error"])
            // FFmpeg's RTMP input announces audio and video; on a video-only
            // stream it would wait its whole default analyzeduration (5 s)
            // for the audio before the first frame. Players start faster;
            // 2 s still covers a stream whose first video keyframe comes a
            // second after its audio (a phone's copy joined at its start).
            .args(["-analyzeduration", "2000000", "-i", url])
            .args(["-f", "null", "-", "-progress"])
            .arg(&progress)
            .args(["-stats_period", "0.2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn viewer ffmpeg");
        Viewer {
            child,
            progress,
            _dir: dir,
        }
    }

    /// Frames decoded so far.
    pub fn frames(&self) -> u64 {
        std::fs::read_to_string(&self.progress)
            .unwrap_or_default()
            .lines()
            .rev()
            .filter_map(|l| l.strip_prefix("frame="))
            .find_map(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits until at least `n` more frames than `from` were decoded.
    pub fn wait_frames(&self, from: u64, n: u64, timeout: Duration) -> u64 {
        wait_for(&format!("{n} frames after {from}"), timeout, || {
            let f = self.frames();
            (f >= from + n).then_some(f)
        })
    }

    /// Stops watching.
    pub fn leave(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ffprobe -v error ARGS -of csv=p=0 FILE`: the comma-separated values of
/// its first line.
pub fn ffprobe(file: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .split(',')
        .map(|v| v.trim().to_string())
        .collect()
}
