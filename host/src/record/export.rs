//! Export: one MP4 of a stream's recording over a time range, made by
//! FFmpeg's concat demuxer over the finished segments that overlap it
//! (stream copy, no re-encoding) and streamed as it is written
//! (fragmented MP4: stdout cannot seek). The cut points fall on the
//! keyframes at or before the range's ends.

use super::segments::{self, Segment};
use super::Recorder;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::path::PathBuf;

/// Why an export cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// `to` is not after `from`, or the range is too long.
    #[error("{0}")]
    Range(String),
    /// No finished segment overlaps the range.
    #[error("no recording of {0:?} in that range")]
    Nothing(String),
    /// FFmpeg could not be started.
    #[error("cannot start the export: {0}")]
    Spawn(String),
}

/// What an export needs to know of its first segment.
#[derive(Debug, Default)]
struct Probe {
    /// Its first timestamp, in seconds.
    start: f64,
    /// Its audio is AAC in MPEG-TS (ADTS).
    adts_aac: bool,
}

/// How long reading a segment's header may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// FFmpeg's stderr lines kept of a probe (its banner is about ten).
const PROBE_LINES: usize = 64;

/// Reads `file`'s start time and audio codec from what `ffmpeg -i` prints
/// (zero and no when it cannot tell), run like every FFmpeg of the host
/// with `cwd` as its working directory.
async fn probe(
    binary: &std::path::Path,
    file: &std::path::Path,
    cwd: &std::path::Path,
    user: Option<&crate::privileges::MediaUser>,
) -> Probe {
    let argv: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-protocol_whitelist",
        "file",
        "-i",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(std::iter::once(format!("file:{}", file.display())))
    .collect();
    let Ok(mut p) = crate::ffmpeg::spawn(binary, &argv, PROBE_LINES, cwd, user) else {
        return Probe::default();
    };
    if tokio::time::timeout(PROBE_TIMEOUT, p.child.wait())
        .await
        .is_err()
    {
        p.stop().await;
        return Probe::default();
    }
    let text = p.final_log_tail(PROBE_LINES).await.join("\n");
    parse_probe(&text, file)
}

fn parse_probe(text: &str, file: &std::path::Path) -> Probe {
    let start = text
        .split("start: ")
        .nth(1)
        .and_then(|r| r.split(|c: char| c == ',' || c.is_whitespace()).next())
        .and_then(|n| n.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(0.0);
    let ts = file.extension().is_some_and(|e| e == "ts");
    Probe {
        start,
        adts_aac: ts && text.contains("Audio: aac"),
    }
}

/// Removes the export's work directory when the response is done.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The finished segments of `id` overlapping `[from_ms, to_ms)`.
pub fn overlapping(rec: &Recorder, id: &str, from_ms: u64, to_ms: u64) -> Vec<Segment> {
    segments::list(id, &rec.dir.join(id))
        .into_iter()
        .filter(|s| s.end_ms > from_ms && s.start_ms < to_ms)
        .collect()
}

/// The MP4 of stream `id` (a checked id) from `from_ms` to `to_ms`, as a
/// byte stream; FFmpeg is killed if the stream is dropped early.
pub async fn export(
    rec: &Recorder,
    id: &str,
    from_ms: u64,
    to_ms: u64,
) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static, ExportError> {
    if to_ms <= from_ms {
        return Err(ExportError::Range("`to` must be after `from`".into()));
    }
    let max_h = rec.config.record.max_export_hours;
    if to_ms - from_ms > max_h * 3_600_000 {
        return Err(ExportError::Range(format!(
            "at most {max_h} hours per export ([record] max_export_hours)"
        )));
    }
    let segs = overlapping(rec, id, from_ms, to_ms);
    let Some(first) = segs.first() else {
        return Err(ExportError::Nothing(id.to_string()));
    };
    let start = from_ms.max(first.start_ms);
    let duration = (to_ms - start) as f64 / 1000.0;
    let holding = rec.config.run_dir().join("export-work");
    let mode = crate::privileges::holding_dir_mode(rec.config.security.media_user.as_ref());
    crate::files::ensure_mode(&holding, mode).map_err(|e| ExportError::Spawn(e.to_string()))?;
    let work = holding.join(crate::ids::unguessable_hex(8));
    std::fs::create_dir_all(&work).map_err(|e| ExportError::Spawn(e.to_string()))?;
    let work = WorkDir(work);
    let user = rec.config.security.media_user.as_ref();
    let probe = probe(&rec.config.ffmpeg.binary, &first.path, &work.0, user).await;
    // The concat demuxer's `inpoint` is in the file's own timestamps.
    let inpoint = probe.start + (start - first.start_ms) as f64 / 1000.0;
    // Paths made of checked ids and parsed names only: nothing to quote.
    let mut list = String::from("ffconcat version 1.0\n");
    for (i, s) in segs.iter().enumerate() {
        list.push_str(&format!("file '{}'\n", s.path.display()));
        if i == 0 && inpoint > 0.0 {
            list.push_str(&format!("inpoint {inpoint:.3}\n"));
        }
    }
    std::fs::write(work.0.join("list.ffconcat"), list)
        .map_err(|e| ExportError::Spawn(e.to_string()))?;
    let mut argv = crate::ffmpeg::global_options("error");
    argv.extend(
        [
            "-f",
            "concat",
            "-safe",
            "0",
            "-protocol_whitelist",
            "file",
            "-i",
            "file:list.ffconcat",
            "-t",
            &format!("{duration:.3}"),
            "-map",
            "0",
            "-c",
            "copy",
        ]
        .map(String::from),
    );
    if probe.adts_aac {
        // MPEG-TS carries AAC in ADTS frames; MP4 wants it raw.
        argv.extend(["-bsf:a", "aac_adtstoasc"].map(String::from));
    }
    argv.extend(
        [
            // Streamed (stdout cannot seek); delay_moov keeps the audio's
            // lead over the first keyframe instead of stretching a frame.
            "-movflags",
            "+frag_keyframe+empty_moov+default_base_moof+delay_moov",
            "-f",
            "mp4",
            "pipe:1",
        ]
        .map(String::from),
    );
    let (proc, stdout) =
        crate::ffmpeg::spawn_piped(&rec.config.ffmpeg.binary, &argv, 20, &work.0, user)
            .map_err(|e| ExportError::Spawn(e.to_string()))?;
    tracing::info!(stream = %id, from_ms, to_ms, segments = segs.len(), "export");
    // The process and the work directory live as long as the body.
    let guard = (proc, work);
    Ok(tokio_util::io::ReaderStream::new(stdout).map(move |chunk| {
        let _ = &guard;
        chunk
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_and_the_codec_are_read_from_ffmpeg_s_banner() {
        let text = "Input #0, mpegts, from 'file:x.ts':\n  Duration: 00:00:05.00, start: 1.400000, bitrate: 300 kb/s\n  Stream #0:0[0x100]: Video: h264\n  Stream #0:1[0x101]: Audio: aac (LC)\n";
        let p = parse_probe(text, std::path::Path::new("a/x.ts"));
        assert_eq!(p.start, 1.4);
        assert!(p.adts_aac);
        let p = parse_probe(text, std::path::Path::new("a/x.mp4"));
        assert!(!p.adts_aac, "MP4 carries raw AAC");
        assert_eq!(
            parse_probe("garbage", std::path::Path::new("x.ts")).start,
            0.0
        );
    }
}
