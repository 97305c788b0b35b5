//! Segment files: their names (`{id}-{start}.{ext}`, the start in UTC as
//! `20261124T130000Z`, no `:`), the `.part` suffix of the one being
//! written, listing them, and retention.
//!
//! Only names this module parses back are ever listed, exported or
//! deleted: a stray file in the record directory is left alone.

use crate::clock::unix_ms;
use crate::config::RECORD_FORMATS;
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The suffix of a segment still being written.
pub const PART: &str = ".part";

/// The `strftime` pattern FFmpeg's segment muxer names segments with (its
/// environment is empty, so the time is UTC).
pub const STRFTIME: &str = "%Y%m%dT%H%M%SZ";

/// One finished segment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Segment {
    /// The stream.
    pub stream: String,
    /// The file name.
    pub file: String,
    /// When it starts (Unix ms, from its name).
    pub start_ms: u64,
    /// When it was last written (Unix ms): its end.
    pub end_ms: u64,
    /// Its size.
    pub bytes: u64,
    #[serde(skip)]
    /// Its path.
    pub path: PathBuf,
}

/// Formats Unix ms as a segment time (`20261124T130000Z`).
pub fn format_time(ms: u64) -> String {
    let t = OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(format_description!(
        "[year][month][day]T[hour][minute][second]Z"
    ))
    .unwrap_or_default()
}

/// Parses a segment time (`20261124T130000Z`) into Unix ms.
pub fn parse_time(s: &str) -> Option<u64> {
    let t = PrimitiveDateTime::parse(
        s.strip_suffix('Z')?,
        format_description!("[year][month][day]T[hour][minute][second]"),
    )
    .ok()?
    .assume_utc();
    u64::try_from(t.unix_timestamp()).ok().map(|s| s * 1000)
}

/// Parses a time given to the API: Unix ms, a segment time or RFC 3339.
pub fn parse_api_time(s: &str) -> Option<u64> {
    if let Ok(ms) = s.parse::<u64>() {
        return Some(ms);
    }
    if let Some(ms) = parse_time(s) {
        return Some(ms);
    }
    let t = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The start (Unix ms) and extension of `file` if it is a finished
/// segment of stream `id`.
pub fn parse_name(id: &str, file: &str) -> Option<(u64, &'static str)> {
    let rest = file.strip_prefix(id)?.strip_prefix('-')?;
    let (time, ext) = rest.split_once('.')?;
    let ext = RECORD_FORMATS.iter().find(|f| **f == ext)?;
    Some((parse_time(time)?, ext))
}

/// The finished segments of stream `id` in `dir` (its directory), oldest
/// first.
pub fn list(id: &str, dir: &Path) -> Vec<Segment> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Segment> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name().into_string().ok()?;
            let (start_ms, _) = parse_name(id, &file)?;
            let meta = e.metadata().ok().filter(|m| m.is_file())?;
            Some(Segment {
                stream: id.to_string(),
                start_ms,
                end_ms: meta.modified().map(unix_ms).unwrap_or(start_ms),
                bytes: meta.len(),
                path: e.path(),
                file,
            })
        })
        .collect();
    out.sort_by(|a, b| a.start_ms.cmp(&b.start_ms).then(a.file.cmp(&b.file)));
    out
}

/// The stream directories of `root` (named by valid stream ids).
pub fn streams(root: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| crate::ids::parse_stream_id(id).is_ok())
        .collect();
    out.sort();
    out
}

/// Renames the `.part` files of stream `id` in `dir` to their final names,
/// except the newest when `keep_newest` (the one FFmpeg still writes: the
/// segment muxer closes a segment before it opens the next). A finished
/// segment is never replaced (see [`finish_one`]). Returns how many were
/// finished.
pub fn finish_parts(id: &str, dir: &Path, keep_newest: bool) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut parts: Vec<(u64, &str, String)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let done = name.strip_suffix(PART)?;
            let (start, ext) = parse_name(id, done)?;
            Some((start, ext, name))
        })
        .collect();
    parts.sort();
    if keep_newest {
        parts.pop();
    }
    let mut finished = 0;
    for (start, ext, name) in parts {
        match finish_one(id, dir, &name, start, ext) {
            Ok(done) => {
                tracing::debug!(stream = %id, "segment {done} finished");
                finished += 1;
            }
            Err(e) => tracing::warn!(stream = %id, error = %e, "segment {name} not finished"),
        }
    }
    finished
}

/// How many later seconds a finished segment may be named by when its own
/// name is taken (a new run opening its first segment in the second the
/// last one of the previous run opened).
const NAME_TRIES: u64 = 60;

/// Gives `part` its final name without replacing a finished segment: the
/// name of its start, or the next free second after it. Returns the name.
fn finish_one(id: &str, dir: &Path, part: &str, start: u64, ext: &str) -> std::io::Result<String> {
    let from = dir.join(part);
    for k in 0..NAME_TRIES {
        let done = format!("{id}-{}.{ext}", format_time(start + k * 1000));
        let to = dir.join(&done);
        // A hard link fails if the name exists: an atomic no-replace rename.
        match std::fs::hard_link(&from, &to) {
            Ok(()) => {
                std::fs::remove_file(&from)?;
                return Ok(done);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            // A filesystem without hard links: check, then rename.
            Err(_) if !to.exists() => {
                std::fs::rename(&from, &to)?;
                return Ok(done);
            }
            Err(_) => continue,
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("its name and the {NAME_TRIES} seconds after it are taken"),
    ))
}

/// Of `segments` (one group, oldest first), the ones to delete: older than
/// `max_age`, then the oldest while the group holds more than `max_bytes`
/// (`partial`: bytes of segments being written, which count but stay).
pub fn over_limits(
    segments: &[Segment],
    now_ms: u64,
    max_age: Option<Duration>,
    max_bytes: Option<u64>,
    partial: u64,
) -> Vec<usize> {
    let mut out = Vec::new();
    let mut total: u64 = segments.iter().map(|s| s.bytes).sum::<u64>() + partial;
    let mut order: Vec<usize> = (0..segments.len()).collect();
    order.sort_by_key(|&i| segments[i].start_ms);
    for i in order {
        let s = &segments[i];
        let too_old =
            max_age.is_some_and(|a| now_ms.saturating_sub(s.end_ms) > a.as_millis() as u64);
        let too_big = max_bytes.is_some_and(|m| total > m);
        if too_old || too_big {
            out.push(i);
            total -= s.bytes;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_start_time_and_parse_back() {
        let ms = 1_795_957_200_000; // 2026-11-30T...
        let t = format_time(ms);
        assert_eq!(t.len(), 16);
        assert!(!t.contains(':'));
        assert_eq!(parse_time(&t), Some(ms));
        let name = format!("cam-a-b-{t}.mp4");
        assert_eq!(parse_name("cam-a-b", &name), Some((ms, "mp4")));
        assert_eq!(parse_name("cam-a", &name), None, "another stream's");
        for bad in [
            format!("cam-a-b-{t}.exe"),
            format!("cam-a-b-{t}.mp4.part"),
            "cam-a-b-yesterday.mp4".to_string(),
            format!("../cam-a-b-{t}.mp4"),
        ] {
            assert_eq!(parse_name("cam-a-b", &bad), None, "{bad}");
        }
        assert_eq!(
            parse_api_time("2026-11-24T13:00:00Z"),
            parse_time("20261124T130000Z")
        );
        assert_eq!(parse_api_time("1000"), Some(1000));
        assert_eq!(parse_api_time("soon"), None);
    }

    fn seg(start_s: u64, bytes: u64) -> Segment {
        Segment {
            stream: "a-b".into(),
            file: format!("a-b-{start_s}"),
            start_ms: start_s * 1000,
            end_ms: start_s * 1000 + 10_000,
            bytes,
            path: PathBuf::new(),
        }
    }

    #[test]
    fn retention_deletes_the_oldest_first() {
        let segs = [seg(0, 100), seg(10, 100), seg(20, 100), seg(30, 100)];
        // Size: 400 + 50 being written, at most 250 → the two oldest go.
        assert_eq!(over_limits(&segs, 40_000, None, Some(250), 50), [0, 1]);
        // Age: ended more than 15 s before 40 s → 0 and 1.
        assert_eq!(
            over_limits(&segs, 40_000, Some(Duration::from_secs(15)), None, 0),
            [0, 1]
        );
        assert!(over_limits(&segs, 40_000, None, None, 0).is_empty());
    }

    #[test]
    fn finishing_never_replaces_a_finished_segment() {
        let dir = std::env::temp_dir().join(format!("dss-seg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = format_time(1_795_957_200_000);
        let t1 = format_time(1_795_957_201_000);
        std::fs::write(dir.join(format!("a-b-{t}.ts")), "old run").unwrap();
        std::fs::write(dir.join(format!("a-b-{t}.ts{PART}")), "new run").unwrap();
        assert_eq!(finish_parts("a-b", &dir, false), 1);
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
        assert_eq!(read(&format!("a-b-{t}.ts")), "old run");
        assert_eq!(read(&format!("a-b-{t1}.ts")), "new run");
        assert!(!dir.join(format!("a-b-{t}.ts{PART}")).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
