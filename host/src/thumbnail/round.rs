//! Rounds over idle streams of instances with `thumbnails = "all"`: every
//! `[thumbnails] interval` seconds (from the start of one round to the
//! next; a round that runs long delays the next, never overlaps it), each
//! such stream that is online and not running gets one FFmpeg run reading
//! its source with the instance's checked input options, after the same
//! spawn-time address check as the stream itself. At most `workers` run at
//! once, each for at most `timeout` seconds. A failure counts against the
//! stream's thumbnail success, and removes its thumbnails once they are
//! older than `delete_after`.

use super::{ThumbnailError, Thumbnails};
use crate::config::ThumbnailMode;
use crate::supervisor::State;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) async fn run(t: Arc<Thumbnails>) {
    let cfg = t.config.thumbnails.clone();
    tokio::time::sleep(Duration::from_secs(cfg.start_after)).await;
    let interval = Duration::from_secs(cfg.interval.max(1));
    loop {
        let started = Instant::now();
        round(&t).await;
        let took = started.elapsed();
        if took > interval {
            tracing::info!(
                "thumbnail round took {:.0} s, longer than [thumbnails] interval: the next starts now",
                took.as_secs_f64()
            );
        }
        tokio::time::sleep_until((started + interval).into()).await;
    }
}

/// One round; returns (succeeded, attempted).
async fn round(t: &Arc<Thumbnails>) -> (usize, usize) {
    let snap = t.catalog.snapshot();
    let streams: Vec<_> = snap
        .streams
        .values()
        .filter(|e| {
            e.online
                && !e.is_ingest()
                && snap
                    .providers
                    .get(&e.provider)
                    .is_some_and(|p| p.thumbnails == ThumbnailMode::All)
        })
        .cloned()
        .collect();
    if streams.is_empty() {
        return (0, 0);
    }
    let timeout = Duration::from_secs(t.config.thumbnails.timeout.max(1));
    let mut runs = tokio::task::JoinSet::new();
    for entry in streams {
        // A running stream has its live thumbnails.
        let state = t.supervisor.status_brief(&entry.id).state;
        if matches!(state, State::Starting | State::Live | State::Stopping) {
            continue;
        }
        let Ok(permit) = t.jobs.clone().acquire_owned().await else {
            break;
        };
        let t = t.clone();
        runs.spawn(async move {
            let result = match crate::ffmpeg::prepare(&entry.plan).await {
                Ok(plan) => match plan.input_argv(&[]) {
                    Some(input) => {
                        t.make(std::slice::from_ref(&entry.id), input, timeout)
                            .await
                    }
                    None => Err(ThumbnailError::NoSource),
                },
                Err(e) => Err(e.into()),
            };
            drop(permit);
            t.record(&entry.id, &result);
            if result.is_err() {
                t.expire(&entry.id);
            }
            result.is_ok()
        });
    }
    let (mut ok, mut total) = (0, 0);
    while let Some(r) = runs.join_next().await {
        total += 1;
        ok += usize::from(r.unwrap_or(false));
    }
    tracing::info!("thumbnail round: {ok}/{total} streams");
    (ok, total)
}
