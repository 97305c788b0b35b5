//! A phone's media on its way to FFmpeg: one FIFO per track, in a private
//! directory of the host's run directory, written with back-pressure.
//!
//! The original DSS fed FFmpeg the same way (two named pipes, opened
//! read-write so that FFmpeg never sees an end while the phone is
//! connected). Here a FIFO exists only for a track that sent bytes, so a
//! video-only phone gives FFmpeg one input, and the pipe's capacity is the
//! whole buffer: a write that does not fit waits for FFmpeg, the session
//! stops reading its socket meanwhile, and TCP slows the phone down.
//! Dropping the feed closes the FIFOs (FFmpeg reads the end of its inputs)
//! and removes the directory.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;

use crate::privileges::MediaUser;

/// Which byte stream of a phone: the type byte of its frames. The label is
/// only a hint (real senders swap them); FFmpeg probes what each carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// Frames of type 1.
    Video,
    /// Frames of type 2.
    Audio,
}

impl Track {
    fn file_name(self) -> &'static str {
        match self {
            Track::Video => "video.ts",
            Track::Audio => "audio.ts",
        }
    }
}

/// The FIFOs of one phone session.
#[derive(Debug)]
pub struct Feed {
    dir: PathBuf,
    buffer: usize,
    /// Who FFmpeg runs as, when not the host's user: the directory and
    /// its FIFOs are made that user's.
    user: Option<MediaUser>,
    /// Tracks in the order their first bytes came.
    tracks: Vec<(Track, PathBuf, pipe::Sender)>,
}

impl Feed {
    /// Creates the session's directory `dir` (owner-only). `buffer` is the
    /// capacity asked for each FIFO (the kernel may round it, or cap it at
    /// `/proc/sys/fs/pipe-max-size` for unprivileged users). With a
    /// `user`, the directory and FIFOs are that user's (FFmpeg's), still
    /// owner-only.
    pub fn create(dir: &Path, buffer: usize, user: Option<&MediaUser>) -> io::Result<Feed> {
        std::fs::DirBuilder::new()
            .recursive(false)
            .mode(0o700)
            .create(dir)?;
        crate::privileges::grant(user, dir).map_err(io::Error::other)?;
        Ok(Feed {
            dir: dir.to_path_buf(),
            buffer,
            user: user.cloned(),
            tracks: Vec::new(),
        })
    }

    /// The FIFOs made so far, in the order their tracks started.
    pub fn inputs(&self) -> Vec<PathBuf> {
        self.tracks.iter().map(|(_, p, _)| p.clone()).collect()
    }

    /// The tracks that sent bytes so far.
    pub fn tracks(&self) -> Vec<Track> {
        self.tracks.iter().map(|(t, _, _)| *t).collect()
    }

    /// Writes `bytes` of `track`, making its FIFO on first use; waits while
    /// the FIFO is full.
    pub async fn write(&mut self, track: Track, bytes: &[u8]) -> io::Result<()> {
        let mut off = 0;
        while off < bytes.len() {
            off += self.write_some(track, &bytes[off..]).await?;
        }
        Ok(())
    }

    /// Writes some of `bytes` of `track` (at least one byte; waits while
    /// the FIFO is full); how many. Cancel-safe: dropped before it
    /// completes, it wrote nothing.
    pub async fn write_some(&mut self, track: Track, bytes: &[u8]) -> io::Result<usize> {
        let i = match self.tracks.iter().position(|(t, _, _)| *t == track) {
            Some(i) => i,
            None => {
                let path = self.dir.join(track.file_name());
                make_fifo(&path)?;
                crate::privileges::grant(self.user.as_ref(), &path).map_err(io::Error::other)?;
                // Read-write: opening never waits for a reader, and FFmpeg
                // (re)started on it never sees an end while we hold it.
                let tx = pipe::OpenOptions::new()
                    .read_write(true)
                    .open_sender(&path)?;
                set_capacity(&tx, self.buffer);
                self.tracks.push((track, path, tx));
                self.tracks.len() - 1
            }
        };
        self.tracks[i].2.write(bytes).await
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.tracks.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Makes a FIFO readable and writable by the owner only.
fn make_fifo(path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a feed path"))?;
    // SAFETY: mkfifo(3) on a NUL-terminated path we own.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel for a pipe of `bytes` (Linux); keeps the default
/// (64 KiB) if refused.
fn set_capacity(tx: &pipe::Sender, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        let n = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: fcntl(2) F_SETPIPE_SZ on a pipe descriptor we own.
        let r = unsafe { libc::fcntl(tx.as_raw_fd(), libc::F_SETPIPE_SZ, n) };
        if r < 0 {
            tracing::debug!(
                "pipe capacity {bytes} refused: {}",
                io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (tx, bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn tracks_get_fifos_in_arrival_order_and_vanish_with_the_feed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s1");
        let mut feed = Feed::create(&dir, 1 << 16, None).unwrap();
        assert!(feed.inputs().is_empty());
        feed.write(Track::Audio, b"aa").await.unwrap();
        feed.write(Track::Video, b"vv").await.unwrap();
        feed.write(Track::Audio, b"a2").await.unwrap();
        assert_eq!(feed.tracks(), [Track::Audio, Track::Video]);
        let inputs = feed.inputs();
        assert!(inputs[0].ends_with("audio.ts"));
        // A reader (FFmpeg) gets the bytes in order.
        let mut rx = pipe::OpenOptions::new().open_receiver(&inputs[0]).unwrap();
        let mut buf = [0u8; 4];
        rx.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"aaa2");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(feed);
        assert!(!dir.exists());
        // The reader sees the end once the feed is gone.
        let n = rx.read(&mut buf).await.unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn a_full_fifo_makes_the_writer_wait() {
        let tmp = tempfile::tempdir().unwrap();
        let mut feed = Feed::create(&tmp.path().join("s"), 4096, None).unwrap();
        let chunk = vec![0x47u8; 64 * 1024];
        // Nobody reads: the pipe's capacity (64 KiB to 1 MiB) fills up and
        // the write does not complete.
        let filled = tokio::time::timeout(std::time::Duration::from_millis(300), async {
            for _ in 0..64 {
                feed.write(Track::Video, &chunk).await.unwrap();
            }
        })
        .await;
        assert!(filled.is_err(), "4 MiB went into a pipe nobody reads");
    }

    #[test]
    fn an_existing_directory_is_not_reused() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(Feed::create(tmp.path(), 4096, None).is_err());
    }
}
