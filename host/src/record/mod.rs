//! Recording: streams of instances with a `[record]` table are kept
//! running and written to `<state_dir>/record/{id}/{id}-{start}.{ext}` in
//! segments of `interval` seconds that start at multiples of it (epoch
//! aligned) and follow one another with no gap.
//!
//! One recorder FFmpeg per recorded stream reads the stream back from the
//! local nginx-rtmp (copy, no decoding) into FFmpeg's segment muxer, which
//! closes a segment at the first keyframe past each boundary and opens the
//! next at once. The file being written carries `.part`; it gets its final
//! name once FFmpeg moved on to the next one or exited. The recorder is
//! not a viewer: it plays with its own flash version, which the callbacks
//! and `/stat` reconciliation leave out of the counts; the stream is kept
//! running as `auto_start` streams are.
//!
//! Level-triggered like the supervisor: once a second the recorder
//! compares the streams that should record with the recorders that run; a
//! stream that is not live is simply waited for, a recorder that dies is
//! restarted with a doubling delay, and neither stops the others.
//! Retention ([`retention`]) runs after each finished segment and every
//! minute.

pub mod export;
mod retention;
pub mod segments;

use crate::backoff::Backoff;
use crate::catalog::Catalog;
use crate::config::{Config, InstanceRecord};
use crate::ffmpeg::Process;
use crate::supervisor::{restart_policy, State, Supervisor};
use crate::sync::lock;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The flash version the recorder's RTMP client announces.
pub use crate::ffmpeg::RECORD_FLASHVER as FLASHVER;

/// How often recorders are reconciled and `.part` files finished.
const TICK: Duration = Duration::from_secs(1);

/// A recorder whose output has not advanced for this long is restarted
/// (the stream's publisher went away under it).
const STALE: Duration = Duration::from_secs(15);

/// FFmpeg stderr lines kept of a recorder.
const LOG_LINES: usize = 20;

struct Running {
    proc: Process,
    started: Instant,
    /// The stream's FFmpeg it records: a new publisher (a restart) gets a
    /// new recorder, since RTMP timestamps start over with it.
    publisher: Option<u32>,
}

struct Rec {
    run: Option<Running>,
    /// Restarts after failures, paced like the streams' (`[ffmpeg]`).
    backoff: Backoff,
    last_error: Option<String>,
}

impl Rec {
    fn new(config: &Config) -> Self {
        Rec {
            run: None,
            backoff: Backoff::new(restart_policy(&config.ffmpeg)),
            last_error: None,
        }
    }
}

/// The recorders of every recorded stream.
pub struct Recorder {
    config: Arc<Config>,
    catalog: Arc<Catalog>,
    supervisor: Arc<Supervisor>,
    dir: PathBuf,
    recs: Mutex<HashMap<String, Rec>>,
    stopping: std::sync::atomic::AtomicBool,
}

/// What the API shows of a stream's recorder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecorderStatus {
    /// The stream.
    pub stream: String,
    /// Whether its recorder FFmpeg runs.
    pub recording: bool,
    /// Its restarts in a row.
    pub failures: u32,
    /// Why it last stopped.
    pub last_error: Option<String>,
}

impl Recorder {
    /// A recorder writing under `[state_dir]/record`; `.part` files left by
    /// a previous run (its recorders died with it) are finished now.
    pub fn new(
        config: Arc<Config>,
        catalog: Arc<Catalog>,
        supervisor: Arc<Supervisor>,
    ) -> anyhow::Result<Arc<Recorder>> {
        let dir = config.record_dir();
        crate::files::HostDir::create(&dir)?;
        for id in segments::streams(&dir) {
            segments::finish_parts(&id, &dir.join(&id), false);
        }
        Ok(Arc::new(Recorder {
            config,
            catalog,
            supervisor,
            dir,
            recs: Mutex::default(),
            stopping: Default::default(),
        }))
    }

    /// The record directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The recorders' states.
    pub fn statuses(&self) -> Vec<RecorderStatus> {
        let mut v: Vec<RecorderStatus> = lock(&self.recs)
            .iter()
            .map(|(id, r)| RecorderStatus {
                stream: id.clone(),
                recording: r.run.is_some(),
                failures: r.backoff.failures,
                last_error: r.last_error.clone(),
            })
            .collect();
        v.sort_by(|a, b| a.stream.cmp(&b.stream));
        v
    }

    /// The streams that should record now, with their settings.
    fn wanted(&self) -> HashMap<String, InstanceRecord> {
        let snap = self.catalog.snapshot();
        snap.streams
            .values()
            .filter(|e| e.online && e.records(&snap.providers))
            .filter_map(|e| {
                let r = snap.providers.get(&e.provider)?.record.clone()?;
                Some((e.id.clone(), r))
            })
            .collect()
    }

    /// The recorder's argv for stream `id`.
    fn argv(&self, id: &str, r: &InstanceRecord) -> Vec<String> {
        let out = self.dir.join(id).join(format!(
            "{id}-{}.{}{}",
            segments::STRFTIME,
            r.format,
            segments::PART
        ));
        let mut a = crate::ffmpeg::global_options("warning");
        a.extend(
            [
                "-progress",
                "pipe:1",
                "-rtmp_flashver",
                FLASHVER,
                // A live RTMP stream has no duration to probe for.
                "-analyzeduration",
                "2000000",
                // A publisher gone quiet ends the recorder (in about twice
                // this, µs) instead of leaving it waiting.
                "-rw_timeout",
                "5000000",
                "-protocol_whitelist",
                "tcp,rtmp",
                "-i",
            ]
            .map(String::from),
        );
        a.push(self.config.rtmp_url(id));
        a.extend(
            [
                "-map",
                "0",
                "-c",
                "copy",
                // Every packet reaches the file as it comes: a killed
                // recorder leaves its open segment readable to the end.
                "-fflags",
                "+flush_packets",
                "-f",
                "segment",
                "-segment_time",
                &r.interval.to_string(),
                "-segment_atclocktime",
                "1",
                // Each cut CUT_DELAY after its boundary (see there).
                "-segment_clocktime_offset",
                CUT_DELAY,
                "-strftime",
                "1",
                "-segment_format",
                muxer(&r.format),
            ]
            .map(String::from),
        );
        if r.format == "mp4" {
            // Fragmented: readable up to the last whole fragment even if
            // FFmpeg is killed, and playable while written.
            a.extend(
                [
                    "-segment_format_options",
                    "movflags=+frag_keyframe+empty_moov+default_base_moof",
                ]
                .map(String::from),
            );
        }
        a.push(out.display().to_string());
        a
    }

    /// One reconciliation; returns whether a segment was finished.
    async fn tick(self: &Arc<Self>) -> bool {
        let mut finished = 0;
        let mut failed = Vec::new();
        let mut running: Vec<PathBuf> = Vec::new();
        let wanted = self.wanted();
        let now = Instant::now();
        let mut stops = Vec::new();
        let mut starts = Vec::new();
        {
            let mut recs = lock(&self.recs);
            recs.retain(|id, r| {
                if wanted.contains_key(id) {
                    return true;
                }
                if let Some(run) = r.run.take() {
                    stops.push((id.clone(), run));
                }
                false
            });
            for (id, settings) in &wanted {
                let r = recs
                    .entry(id.clone())
                    .or_insert_with(|| Rec::new(&self.config));
                let dir = self.dir.join(id);
                match &mut r.run {
                    Some(run) => {
                        let exited = run.proc.child.try_wait().ok().flatten();
                        let progress = lock(&run.proc.monitor).last_progress;
                        let stale = now.duration_since(progress.unwrap_or(run.started)) > STALE;
                        let status = self.supervisor.status_brief(id);
                        let same = matches!(status.state, State::Live | State::Stopping)
                            && status.pid == run.publisher;
                        if !same && exited.is_none() {
                            // The stream stopped or restarted: this segment
                            // ends; a new recorder follows the new publisher.
                            if let Some(run) = r.run.take() {
                                tracing::info!(stream = %id, "the stream restarted: new recorder");
                                stops.push((id.clone(), run));
                            }
                            continue;
                        }
                        if exited.is_some() || stale {
                            let Some(run) = r.run.take() else { continue };
                            let why = match exited {
                                Some(status) => format!("recorder exited ({status})"),
                                None => format!("recorder stalled for {} s", STALE.as_secs()),
                            };
                            let delay = r.backoff.fail(Some(now.duration_since(run.started)), now);
                            r.last_error = Some(why.clone());
                            failed.push((id.clone(), why, delay));
                            stops.push((id.clone(), run));
                        } else {
                            running.push(dir);
                        }
                    }
                    None => {
                        let due = r.backoff.next_allowed().is_none_or(|t| now >= t);
                        let status = self.supervisor.status_brief(id);
                        // Cluster mode: the host that runs the stream records
                        // it, not those relaying it for their viewers.
                        let here = self.supervisor.cluster().is_none_or(|c| c.may_run(id, now));
                        if due && here && status.state == State::Live {
                            starts.push((id.clone(), settings.clone(), status.pid));
                        }
                    }
                }
            }
        }
        // File work outside the lock.
        for dir in running {
            let id = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            finished += segments::finish_parts(id, &dir, true);
        }
        for (id, run) in stops {
            let dir = self.dir.join(&id);
            let failure = failed
                .iter()
                .position(|(f, ..)| *f == id)
                .map(|i| failed.swap_remove(i));
            let me = self.clone();
            let mut proc = run.proc;
            tokio::spawn(async move {
                // FFmpeg's last words, once its stderr is read to the end
                // (a stalled recorder has none until it is stopped).
                if let Some((_, why, delay)) = failure {
                    if proc.child.try_wait().ok().flatten().is_none() {
                        crate::ffmpeg::signal_group(proc.pid, libc::SIGTERM);
                    }
                    let last = proc.final_log_tail(3).await.join(" | ");
                    let why = format!("{why}: {last}");
                    tracing::warn!(stream = %id, retry_in = ?delay, error = %why, "recorder failed");
                    if let Some(r) = lock(&me.recs).get_mut(&id) {
                        r.last_error = Some(why);
                    }
                }
                proc.stop().await;
                segments::finish_parts(&id, &dir, false);
            });
        }
        for (id, settings, publisher) in starts {
            if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            self.start(&id, &settings, publisher);
        }
        finished > 0
    }

    fn start(&self, id: &str, settings: &InstanceRecord, publisher: Option<u32>) {
        let dir = self.dir.join(id);
        // The stream's recordings: its recorder's (which writes them) and
        // the host's, no one else's.
        let user = self.config.security.media_user.as_ref();
        let made = crate::files::ensure_mode(&dir, crate::files::PRIVATE_DIR)
            .map_err(|e| e.to_string())
            .and_then(|()| crate::privileges::grant(user, &dir).map_err(|e| e.to_string()));
        if let Err(e) = made {
            tracing::warn!(stream = %id, error = %e, "recorder not started");
            return;
        }
        let argv = self.argv(id, settings);
        let cfg = &self.config.ffmpeg;
        match crate::ffmpeg::spawn(
            &cfg.binary,
            &argv,
            LOG_LINES,
            &self.config.ffmpeg_cwd(),
            user,
        ) {
            Ok(proc) => {
                tracing::info!(stream = %id, pid = proc.pid, "recording");
                let mut recs = lock(&self.recs);
                let r = recs
                    .entry(id.to_string())
                    .or_insert_with(|| Rec::new(&self.config));
                let now = Instant::now();
                r.backoff.spawned(now);
                r.run = Some(Running {
                    proc,
                    started: now,
                    publisher,
                });
            }
            Err(e) => {
                tracing::warn!(stream = %id, error = %e, "recorder not started");
                let mut recs = lock(&self.recs);
                let r = recs
                    .entry(id.to_string())
                    .or_insert_with(|| Rec::new(&self.config));
                r.backoff.fail(None, Instant::now());
                r.last_error = Some(e.to_string());
            }
        }
    }

    /// Stops every recorder (SIGTERM: FFmpeg closes its segment) and
    /// finishes their files.
    pub async fn shutdown(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let runs: Vec<(String, Running)> = lock(&self.recs)
            .iter_mut()
            .filter_map(|(id, r)| Some((id.clone(), r.run.take()?)))
            .collect();
        let mut stops = tokio::task::JoinSet::new();
        for (id, run) in runs {
            let dir = self.dir.join(&id);
            stops.spawn(async move {
                run.proc.stop().await;
                segments::finish_parts(&id, &dir, false);
            });
        }
        while stops.join_next().await.is_some() {}
    }
}

/// How long after each boundary the recorder cuts. FFmpeg names a
/// segment by `time()`, which glibc reads from the kernel's coarse clock,
/// up to a tick (4 ms at 250 Hz) behind the precise clock FFmpeg cuts by:
/// a keyframe within that tick after a boundary named its segment one
/// second early. Cutting at the first keyframe a tenth of a second past
/// the boundary, the name is the boundary's second whenever the stream
/// has a keyframe at least every 0.9 s, and never a second early.
const CUT_DELAY: &str = "100ms";

/// FFmpeg's muxer for a segment file extension.
fn muxer(ext: &str) -> &'static str {
    match ext {
        "mp4" => "mp4",
        "mkv" => "matroska",
        "flv" => "flv",
        _ => "mpegts",
    }
}

/// Runs the recorders and retention until the host stops.
pub async fn run(rec: Arc<Recorder>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_retention: Option<Instant> = None;
    loop {
        tick.tick().await;
        if rec.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let finished = rec.tick().await;
        // After each finished segment (the directory grew), and at least
        // every minute (ages pass).
        if finished || last_retention.is_none_or(|t| t.elapsed() >= retention::EVERY) {
            last_retention = Some(Instant::now());
            let r = rec.clone();
            // Directory walks and deletions off the runtime's threads.
            let _ = tokio::task::spawn_blocking(move || retention::run(&r)).await;
        }
    }
}
