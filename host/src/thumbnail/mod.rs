//! Thumbnails: a full-size JPEG of each stream plus the scaled sizes of
//! `[thumbnails] sizes` (`ID.jpg`, `ID-medium.jpg`, `ID-small.jpg`), under
//! `<state_dir>/thumb`, which nginx serves at `/thumb/` and the API at
//! `/api/streams/{id}/thumbnail`.
//!
//! Two sources, never a second connection to a live camera:
//! - a live stream (and a connected phone) — its newest HLS fragment,
//!   which nginx-rtmp already wrote for its viewers ([`live`]);
//! - an idle stream of an instance with `thumbnails = "all"` — a periodic
//!   round that reads the source once per stream, with the instance's
//!   checked input options and the same FFmpeg policy, bounded workers
//!   and a timeout ([`round`]).
//!
//! Each run is one FFmpeg writing every size from one decoded frame into a
//! private work directory; the files are then renamed into place, so a
//! reader sees a whole old thumbnail or a whole new one. Every attempt
//! feeds the stream's thumbnail success statistic.

mod live;
mod round;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::stats::Stats;
use crate::supervisor::Supervisor;
use crate::sync::lock;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// FFmpeg stderr lines kept of a thumbnail run (for its error message).
const LOG_LINES: usize = 8;

/// Largest HLS playlist read (nginx's are a few hundred bytes).
const MAX_PLAYLIST: u64 = 64 * 1024;

/// Why a thumbnail cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ThumbError {
    /// No such size.
    #[error("no thumbnail size {0:?} (sizes: full, {1})")]
    Size(String, String),
    /// None made yet (or removed).
    #[error("no thumbnail of {0:?} yet")]
    Missing(String),
}

/// Why a thumbnail was not made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// FFmpeg could not start (or the policy refused the source).
    #[error(transparent)]
    Spawn(#[from] crate::ffmpeg::SpawnError),
    /// Waiting for FFmpeg failed.
    #[error("waiting for ffmpeg: {0}")]
    Wait(std::io::Error),
    /// No frame came within the run's time.
    #[error("no frame within {} s", .0.as_secs())]
    Timeout(Duration),
    /// FFmpeg failed; its last line.
    #[error("ffmpeg exited ({status}): {last}")]
    Exited {
        /// How it exited.
        status: std::process::ExitStatus,
        /// Its last line of stderr.
        last: String,
    },
    /// A made thumbnail could not be put in place.
    #[error("thumbnail {name}: {error}")]
    Rename {
        /// The thumbnail's file name.
        name: String,
        /// Why.
        error: std::io::Error,
    },
    /// The stream's source gives FFmpeg nothing to read.
    #[error("no source to read")]
    NoSource,
    /// A live stream has no HLS playlist (yet).
    #[error("no HLS playlist: {0}")]
    NoPlaylist(std::io::Error),
    /// Its playlist lists no usable fragment.
    #[error("the HLS playlist lists no fragment")]
    NoFragment,
}

/// The thumbnails of every stream.
pub struct Thumbnails {
    config: Arc<Config>,
    catalog: Arc<Catalog>,
    supervisor: Arc<Supervisor>,
    stats: Arc<Stats>,
    dir: PathBuf,
    work: PathBuf,
    /// Scaled sizes: suffix, width, height.
    sizes: Vec<(String, u32, u32)>,
    /// Streams that have thumbnails on disk (phones' go when they leave).
    made: Mutex<HashSet<String>>,
    /// Streams whose last attempt failed (logged once per failure run).
    failing: Mutex<HashSet<String>>,
    /// FFmpeg thumbnail runs at once (live grabs and rounds together).
    jobs: Arc<Semaphore>,
}

impl Thumbnails {
    /// Checks `[thumbnails]` and creates the directories.
    pub fn new(
        config: Arc<Config>,
        catalog: Arc<Catalog>,
        supervisor: Arc<Supervisor>,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Arc<Thumbnails>> {
        let sizes = config.thumbnails.scaled().map_err(anyhow::Error::msg)?;
        let dir = config.thumb_dir();
        crate::files::HostDir::create(&dir)?;
        let work = config.run_dir().join("thumb-work");
        let mode = crate::privileges::holding_dir_mode(config.security.media_user.as_ref());
        crate::files::ensure_mode(&work, mode)?;
        let made = existing(&dir, &sizes);
        let workers = config.thumbnails.workers.max(1);
        Ok(Arc::new(Thumbnails {
            config,
            catalog,
            supervisor,
            stats,
            dir,
            work,
            sizes,
            made: Mutex::new(made),
            failing: Mutex::default(),
            jobs: Arc::new(Semaphore::new(workers)),
        }))
    }

    /// The file of `id`'s thumbnail of `size` (`None`: full size).
    fn file(&self, id: &str, size: Option<&str>) -> Result<PathBuf, ThumbError> {
        match size {
            None | Some("full") | Some("") => Ok(self.dir.join(format!("{id}.jpg"))),
            Some(s) if self.sizes.iter().any(|(n, ..)| n == s) => {
                Ok(self.dir.join(format!("{id}-{s}.jpg")))
            }
            Some(s) => Err(ThumbError::Size(
                s.chars().take(32).collect(),
                self.sizes
                    .iter()
                    .map(|(n, ..)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    /// Whether `id` has thumbnails now.
    pub fn has(&self, id: &str) -> bool {
        lock(&self.made).contains(id)
    }

    /// The JPEG of `id` (a checked stream id) at `size`.
    pub async fn read(&self, id: &str, size: Option<&str>) -> Result<Vec<u8>, ThumbError> {
        let file = self.file(id, size)?;
        tokio::fs::read(&file)
            .await
            .map_err(|_| ThumbError::Missing(id.to_string()))
    }

    /// Every file name of `id` (full size first).
    fn names(&self, id: &str) -> Vec<String> {
        std::iter::once(format!("{id}.jpg"))
            .chain(self.sizes.iter().map(|(n, ..)| format!("{id}-{n}.jpg")))
            .collect()
    }

    /// The host's outputs of a run over `inputs` inputs: one frame of
    /// each input's first video track, split into every size, to
    /// `INPUT-SIZE.jpg` in the run's working directory.
    fn outputs(&self, inputs: usize) -> Vec<String> {
        let n = self.sizes.len() + 1;
        let mut graph = Vec::new();
        for i in 0..inputs {
            let mut g = format!(
                "[{i}:v:0]split={n}{}",
                (0..n).map(|k| format!("[o{i}_{k}]")).collect::<String>()
            );
            for (k, (_, w, h)) in self.sizes.iter().enumerate() {
                g.push_str(&format!(";[o{i}_{}]scale={w}:{h}[s{i}_{}]", k + 1, k + 1));
            }
            graph.push(g);
        }
        let mut a = vec!["-filter_complex".to_string(), graph.join(";")];
        for i in 0..inputs {
            for k in 0..n {
                let label = if k == 0 {
                    format!("[o{i}_0]")
                } else {
                    format!("[s{i}_{k}]")
                };
                a.extend(
                    [
                        "-map",
                        &label,
                        "-frames:v",
                        "1",
                        // JPEG quality (2 best .. 31): 11-26 KB at 640x360
                        // to 720p, still sharp at full size.
                        "-q:v",
                        "3",
                        "-update",
                        "1",
                        "-f",
                        "image2",
                        &format!("file:{i}-{k}.jpg"),
                    ]
                    .map(String::from),
                );
            }
        }
        a
    }

    /// Runs one FFmpeg with `head` (global options, then one input per id
    /// of `ids`, in order) and this host's outputs, then renames every
    /// result into place. All or nothing: the error says what failed.
    async fn make(
        &self,
        ids: &[String],
        mut head: Vec<String>,
        timeout: Duration,
    ) -> Result<(), ThumbnailError> {
        let Some(first) = ids.first() else {
            return Ok(());
        };
        let work = self.work.join(first);
        let _ = tokio::fs::remove_dir_all(&work).await;
        head.extend(self.outputs(ids.len()));
        let binary = &self.config.ffmpeg.binary;
        let mut p = crate::ffmpeg::spawn(
            binary,
            &head,
            LOG_LINES,
            &work,
            self.config.security.media_user.as_ref(),
        )?;
        let status = match tokio::time::timeout(timeout, p.child.wait()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(ThumbnailError::Wait(e)),
            Err(_) => {
                crate::ffmpeg::signal_group(p.pid, libc::SIGKILL);
                let _ = p.child.wait().await;
                return Err(ThumbnailError::Timeout(timeout));
            }
        };
        if !status.success() {
            let last = p.final_log_tail(1).await.join("");
            return Err(ThumbnailError::Exited { status, last });
        }
        for (i, id) in ids.iter().enumerate() {
            for (k, name) in self.names(id).iter().enumerate() {
                tokio::fs::rename(work.join(format!("{i}-{k}.jpg")), self.dir.join(name))
                    .await
                    .map_err(|error| ThumbnailError::Rename {
                        name: name.clone(),
                        error,
                    })?;
            }
            lock(&self.made).insert(id.clone());
        }
        let _ = tokio::fs::remove_dir(&work).await;
        Ok(())
    }

    /// Counts one attempt for `id` and logs a failure once per run of them.
    fn record(&self, id: &str, result: &Result<(), ThumbnailError>) {
        self.stats.thumbnail(id, result.is_ok());
        let mut failing = lock(&self.failing);
        match result {
            Ok(()) => {
                if failing.remove(id) {
                    tracing::info!(stream = %id, "thumbnails work again");
                }
            }
            Err(e) => {
                if failing.insert(id.to_string()) {
                    tracing::warn!(stream = %id, error = %e, "thumbnail failed");
                } else {
                    tracing::debug!(stream = %id, error = %e, "thumbnail failed");
                }
            }
        }
    }

    /// Removes every thumbnail of `id`.
    fn remove(&self, id: &str) {
        for name in self.names(id) {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
        lock(&self.made).remove(id);
    }

    /// Removes `id`'s thumbnails if the full-size one is older than
    /// `[thumbnails] delete_after` (a stream that keeps failing).
    fn expire(&self, id: &str) {
        let after = self.config.thumbnails.delete_after;
        if after == 0 {
            return;
        }
        let old = std::fs::metadata(self.dir.join(format!("{id}.jpg")))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= Duration::from_secs(after));
        if old {
            tracing::info!(stream = %id, "old thumbnails removed: the stream keeps failing");
            self.remove(id);
        }
    }
}

/// The stream ids that have a full-size thumbnail in `dir`: every
/// `ID.jpg` whose stem is a stream id, less the `ID-SIZE.jpg` copies of
/// another one (their stems read as stream ids too).
fn existing(dir: &Path, sizes: &[(String, u32, u32)]) -> HashSet<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return HashSet::new();
    };
    let stems: HashSet<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_suffix(".jpg")?;
            crate::ids::parse_stream_id(id).ok()?;
            Some(id.to_string())
        })
        .collect();
    let copy = |id: &str| {
        sizes.iter().any(|(n, ..)| {
            id.strip_suffix(n.as_str())
                .and_then(|b| b.strip_suffix('-'))
                .is_some_and(|base| stems.contains(base))
        })
    };
    stems.iter().filter(|id| !copy(id)).cloned().collect()
}

/// Runs the live thumbnails and the idle rounds until the host stops.
pub async fn run(t: Arc<Thumbnails>) {
    tokio::join!(live::run(t.clone()), round::run(t));
}

#[cfg(test)]
mod tests {
    #[test]
    fn sized_copies_are_not_taken_for_streams() {
        let dir = std::env::temp_dir().join(format!("dss-thumbs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in [
            "cam-a.jpg",
            "cam-a-small.jpg",
            "cam-x-small.jpg",
            "notes.txt",
        ] {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        let sizes = vec![("small".to_string(), 176, 132)];
        let mut got: Vec<String> = super::existing(&dir, &sizes).into_iter().collect();
        got.sort();
        // cam-x-small has no cam-x.jpg: a stream of its own.
        assert_eq!(got, ["cam-a", "cam-x-small"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
