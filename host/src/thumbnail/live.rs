//! Thumbnails of live streams and connected phones, from the newest HLS
//! fragment nginx-rtmp wrote for the stream: the media already flowing,
//! read from a local file, so the camera sees no second connection.
//!
//! Once a second the loop looks at the streams that are live: those whose
//! `[thumbnails] live_interval` (phones: `phone_interval`) has passed
//! since their last attempt are grabbed together, up to [`BATCH`] per
//! FFmpeg run, as workers are free (the rest wait for the next second). Phones' thumbnails are removed
//! when they disconnect.

use super::{lock, ThumbnailError, Thumbnails, MAX_PLAYLIST};
use crate::config::ThumbnailMode;
use crate::supervisor::State;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often the live streams are looked at.
const TICK: Duration = Duration::from_secs(1);

/// A stream live for less than this has no fragment yet (nginx closes the
/// first one after `hls_fragment`, 1 s): it is not attempted.
const FIRST_FRAGMENT: Duration = Duration::from_secs(3);

/// How long one grab (a batch) from local fragments may take.
const GRAB_TIMEOUT: Duration = Duration::from_secs(10);

/// Streams per FFmpeg run: start-up shared, a bounded argv and memory, and
/// one bad fragment costs a batch its retry one by one.
const BATCH: usize = 16;

pub(super) async fn run(t: Arc<Thumbnails>) {
    // The interval slot (Unix seconds / interval) of each stream's last
    // attempt: streams with the same interval fall due in the same second
    // and share runs.
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let snap = t.catalog.snapshot();
        let now_ms = crate::catalog::unix_ms(std::time::SystemTime::now());
        // Phones that left lose their thumbnails.
        let gone: Vec<String> = lock(&t.made)
            .iter()
            .filter(|id| {
                snap.streams
                    .get(*id)
                    .is_some_and(|e| e.is_ingest() && !e.online)
            })
            .cloned()
            .collect();
        for id in gone {
            tracing::debug!(stream = %id, "phone left: thumbnails removed");
            t.remove(&id);
        }
        let mut due = Vec::new();
        for (id, status) in t.supervisor.statuses() {
            if !matches!(status.state, State::Live | State::Stopping) {
                last.remove(&id);
                continue;
            }
            let Some(entry) = snap.streams.get(&id) else {
                continue;
            };
            let mode = snap
                .providers
                .get(&entry.provider)
                .map(|p| p.thumbnails)
                .unwrap_or_default();
            if mode == ThumbnailMode::Off {
                continue;
            }
            let live_for = Duration::from_millis(now_ms.saturating_sub(status.since_ms));
            if status.state == State::Live && live_for < FIRST_FRAGMENT {
                continue;
            }
            let cfg = &t.config.thumbnails;
            let every = if entry.is_ingest() {
                cfg.phone_interval
            } else {
                cfg.live_interval
            }
            .max(1);
            let slot = now_ms / 1000 / every;
            if last.get(&id) == Some(&slot) {
                continue;
            }
            due.push((id, slot));
        }
        // One FFmpeg per batch: its start-up (~0.09 s of CPU, most of a
        // single-stream run) is paid once for up to BATCH streams.
        let mut due = due.into_iter().peekable();
        while due.peek().is_some() {
            let Ok(permit) = t.jobs.clone().try_acquire_owned() else {
                break;
            };
            let batch: Vec<String> = due
                .by_ref()
                .take(BATCH)
                .map(|(id, slot)| {
                    last.insert(id.clone(), slot);
                    id
                })
                .collect();
            let t = t.clone();
            tokio::spawn(async move {
                grab_batch(&t, batch).await;
                drop(permit);
            });
        }
    }
}

/// The global options of a grab.
fn globals() -> Vec<String> {
    crate::ffmpeg::global_options("error")
}

/// Thumbnails of `ids` in one FFmpeg run; if it fails, each on its own.
async fn grab_batch(t: &Thumbnails, ids: Vec<String>) {
    let mut head = globals();
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        match newest_fragment(&t.config.run_dir().join("hls").join(&id)) {
            Ok(fragment) => {
                head.extend(input(&fragment, true));
                found.push(id);
            }
            Err(e) => t.record(&id, &Err(e)),
        }
    }
    if found.is_empty() {
        return;
    }
    match t.make(&found, head, GRAB_TIMEOUT).await {
        Ok(()) => {
            for id in &found {
                t.record(id, &Ok(()));
            }
        }
        Err(e) => {
            tracing::debug!(
                streams = found.len(),
                error = %e,
                "batched thumbnails failed: one by one"
            );
            for id in &found {
                let result = grab(t, id).await;
                t.record(id, &result);
            }
        }
    }
}

/// One thumbnail of `id` from its newest complete HLS fragment.
async fn grab(t: &Thumbnails, id: &str) -> Result<(), ThumbnailError> {
    let dir = t.config.run_dir().join("hls").join(id);
    let fragment = newest_fragment(&dir)?;
    // nginx-rtmp starts fragments at keyframes: decoding only those and on
    // one thread costs ~30 % less; a fragment without one (a GOP longer
    // than nginx's longest fragment) is read again decoding everything.
    let ids = [id.to_string()];
    let mut head = globals();
    head.extend(input(&fragment, true));
    match t.make(&ids, head, GRAB_TIMEOUT).await {
        Ok(()) => Ok(()),
        Err(_) => {
            let mut head = globals();
            head.extend(input(&fragment, false));
            t.make(&ids, head, GRAB_TIMEOUT).await
        }
    }
}

/// One input of a grab: its options and `-i FRAGMENT`.
fn input(fragment: &std::path::Path, keyframes_only: bool) -> Vec<String> {
    let mut a: Vec<String> = ["-threads", "1"].map(String::from).to_vec();
    if keyframes_only {
        a.extend(["-skip_frame", "nokey"].map(String::from));
    }
    a.extend(["-protocol_whitelist", "file", "-f", "mpegts", "-i"].map(String::from));
    a.push(format!("file:{}", fragment.display()));
    a
}

/// The last fragment `dir/index.m3u8` lists (nginx-rtmp writes the
/// playlist after it closes a fragment, so the last listed is whole).
fn newest_fragment(dir: &std::path::Path) -> Result<PathBuf, ThumbnailError> {
    let mut text = String::new();
    std::fs::File::open(dir.join("index.m3u8"))
        .and_then(|f| f.take(MAX_PLAYLIST).read_to_string(&mut text))
        .map_err(ThumbnailError::NoPlaylist)?;
    let name = last_fragment(&text).ok_or(ThumbnailError::NoFragment)?;
    Ok(dir.join(name))
}

/// The last fragment name of a playlist, if it is a plain file name.
fn last_fragment(playlist: &str) -> Option<&str> {
    let name = playlist
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))?;
    let plain = name.len() <= 64
        && !name.starts_with('.')
        && name.ends_with(".ts")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    plain.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::last_fragment;

    #[test]
    fn the_last_listed_plain_fragment_is_taken() {
        let p = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n3.ts\n#EXTINF:1.0,\n4.ts\n";
        assert_eq!(last_fragment(p), Some("4.ts"));
        assert_eq!(last_fragment("#EXTM3U\n"), None);
        for bad in [
            "../../etc/passwd.ts",
            "/abs.ts",
            ".hidden.ts",
            "x.m3u8",
            "a b.ts",
        ] {
            assert_eq!(last_fragment(&format!("#EXTM3U\n{bad}\n")), None, "{bad}");
        }
    }
}
