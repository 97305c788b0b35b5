//! Retention: deletes finished segments, oldest first, that are older than
//! their instance's `max_age_hours`, beyond their instance's
//! `max_total_gib`, or beyond `[record] max_total_gib` across the whole
//! record directory. Segments being written count towards the totals but
//! are never deleted; segments of streams no longer recorded obey the
//! directory-wide bound only.

use super::segments::{self, Segment};
use super::Recorder;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// How often retention runs at least.
pub(super) const EVERY: Duration = Duration::from_secs(60);

const GIB: f64 = (1u64 << 30) as f64;

fn bytes(gib: f64) -> Option<u64> {
    (gib > 0.0).then_some((gib * GIB) as u64)
}

/// The bytes of `.part` files in `dir`.
fn partial(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(segments::PART))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn delete(s: &Segment, why: &str) {
    match std::fs::remove_file(&s.path) {
        Ok(()) => tracing::info!(stream = %s.stream, "segment {} deleted: {why}", s.file),
        Err(e) => {
            tracing::warn!(stream = %s.stream, file = %s.file, error = %e, "segment not deleted")
        }
    }
}

/// One retention pass.
pub(super) fn run(rec: &Recorder) {
    let snap = rec.catalog.snapshot();
    let now_ms = crate::catalog::unix_ms(SystemTime::now());
    // Segments by provider instance.
    let mut groups: BTreeMap<String, (Vec<Segment>, u64)> = BTreeMap::new();
    for id in segments::streams(&rec.dir) {
        let dir = rec.dir.join(&id);
        let provider = id
            .split_once('-')
            .map(|(p, _)| p.to_string())
            .unwrap_or_default();
        let g = groups.entry(provider).or_default();
        g.0.extend(segments::list(&id, &dir));
        g.1 += partial(&dir);
    }
    let mut kept: Vec<Segment> = Vec::new();
    let mut partial_total = 0;
    for (provider, (segs, part)) in groups {
        partial_total += part;
        let settings = snap.providers.get(&provider).and_then(|p| p.record.clone());
        let doomed = match &settings {
            Some(r) => segments::over_limits(
                &segs,
                now_ms,
                (r.max_age_hours > 0.0).then(|| Duration::from_secs_f64(r.max_age_hours * 3600.0)),
                bytes(r.max_total_gib),
                part,
            ),
            None => Vec::new(),
        };
        for (i, s) in segs.into_iter().enumerate() {
            if doomed.contains(&i) {
                delete(&s, "over its instance's [record] retention");
            } else {
                kept.push(s);
            }
        }
    }
    if let Some(max) = bytes(rec.config.record.max_total_gib) {
        for i in segments::over_limits(&kept, now_ms, None, Some(max), partial_total) {
            delete(&kept[i], "over [record] max_total_gib");
        }
    }
}
