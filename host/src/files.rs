//! The host's own files (compile cache, run files, callback secret,
//! listings fallback), reached only through `cap-std` directory handles.
//!
//! A [`HostDir`] is opened once with ambient authority (the configured
//! path); everything under it is named by a relative path that must stay
//! inside: absolute paths and `..` are refused before any system call, and
//! `cap-std` refuses a symlink that leads out. So no id, file name or
//! configured value can make the host write or read elsewhere.

use cap_std::fs::{
    Dir, DirBuilder, DirBuilderExt, MetadataExt, OpenOptions, OpenOptionsExt, Permissions,
    PermissionsExt,
};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of a private directory.
pub const PRIVATE_DIR: u32 = 0o700;
/// Mode of a private file.
pub const PRIVATE_FILE: u32 = 0o600;

/// A file operation that failed, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", path.display())]
pub struct FilesError {
    /// The file or directory (the handle's root joined with the path).
    pub path: PathBuf,
    /// Why.
    pub error: io::Error,
}

impl FilesError {
    /// The kind of the underlying error.
    pub fn kind(&self) -> io::ErrorKind {
        self.error.kind()
    }
}

impl From<FilesError> for io::Error {
    fn from(e: FilesError) -> io::Error {
        io::Error::new(e.kind(), e.to_string())
    }
}

/// Mode of the state directory and of its `run/`: others (nginx's
/// workers, when they run as another user) may pass through to what they
/// serve, but not list or read anything else.
pub const TRAVERSE_DIR: u32 = 0o711;

/// Mode of what nginx's workers serve from the state directory
/// (thumbnails: public anyway).
pub const SERVED_DIR: u32 = 0o755;

/// Creates `dir` (and its parents) when missing and sets its mode to
/// `mode` (narrowing a wider one, and widening a narrower one only where
/// `mode` says others must get in).
pub fn ensure_mode(dir: &Path, mode: u32) -> Result<(), FilesError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |error| FilesError {
        path: dir.to_path_buf(),
        error,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let now = std::fs::metadata(dir).map_err(fail)?.permissions().mode() & 0o777;
    if now != mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(fail)?;
    }
    Ok(())
}

/// Sets the mode of file `path` to [`PRIVATE_FILE`] if it exists.
pub fn make_private(path: &Path) -> Result<(), FilesError> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o777 != PRIVATE_FILE => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_FILE)).map_err(
                |error| FilesError {
                    path: path.to_path_buf(),
                    error,
                },
            )
        }
        _ => Ok(()),
    }
}

/// A file listed by [`HostDir::files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub len: u64,
    /// When it was last modified.
    pub modified: std::time::SystemTime,
}

/// A directory of the host's, opened as a capability.
#[derive(Debug)]
pub struct HostDir {
    dir: Dir,
    root: PathBuf,
}

/// Distinguishes temporary files of one process (threads may write the
/// same file at once).
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl HostDir {
    /// Opens `root`, which must exist and be a directory.
    pub fn open(root: &Path) -> Result<HostDir, FilesError> {
        let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority()).map_err(|error| {
            FilesError {
                path: root.to_path_buf(),
                error,
            }
        })?;
        Ok(HostDir {
            dir,
            root: root.to_path_buf(),
        })
    }

    /// Opens `root`, creating it and its parents (default mode) first.
    pub fn create(root: &Path) -> Result<HostDir, FilesError> {
        std::fs::create_dir_all(root).map_err(|error| FilesError {
            path: root.to_path_buf(),
            error,
        })?;
        HostDir::open(root)
    }

    /// The directory's path (for messages and for programs given paths).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The full path of `rel` (for messages and for programs given paths;
    /// not checked).
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    fn fail(&self, rel: &Path) -> impl FnOnce(io::Error) -> FilesError + '_ {
        let path = self.root.join(rel);
        move |error| FilesError { path, error }
    }

    /// `rel` when it is a non-empty relative path without `..`.
    fn inside<'a>(&self, rel: &'a Path) -> Result<&'a Path, FilesError> {
        let plain = !rel.as_os_str().is_empty()
            && rel
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if plain {
            Ok(rel)
        } else {
            Err(self.fail(rel)(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("refused: leads outside {}", self.root.display()),
            )))
        }
    }

    /// Creates directory `rel` and its missing parents (default mode).
    pub fn create_dir_all(&self, rel: impl AsRef<Path>) -> Result<(), FilesError> {
        let rel = self.inside(rel.as_ref())?;
        self.dir.create_dir_all(rel).map_err(self.fail(rel))
    }

    /// Opens subdirectory `rel` (which must exist).
    pub fn open_dir(&self, rel: impl AsRef<Path>) -> Result<HostDir, FilesError> {
        let rel = self.inside(rel.as_ref())?;
        let dir = self.dir.open_dir(rel).map_err(self.fail(rel))?;
        Ok(HostDir {
            dir,
            root: self.root.join(rel),
        })
    }

    /// Opens subdirectory `rel` as a private one: created (with its missing
    /// parents) mode 0700, and narrowed to 0700 when it exists with more.
    pub fn private_dir(&self, rel: impl AsRef<Path>) -> Result<HostDir, FilesError> {
        let rel = self.inside(rel.as_ref())?;
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(PRIVATE_DIR);
        self.dir
            .create_dir_with(rel, &builder)
            .map_err(self.fail(rel))?;
        let mode = self.dir.metadata(rel).map_err(self.fail(rel))?.mode() & 0o777;
        if mode != PRIVATE_DIR {
            tracing::warn!(dir = %self.root.join(rel).display(), "mode {mode:o}: narrowing to 700");
            self.dir
                .set_permissions(rel, Permissions::from_mode(PRIVATE_DIR))
                .map_err(self.fail(rel))?;
        }
        self.open_dir(rel)
    }

    /// Reads file `rel` whole.
    pub fn read(&self, rel: impl AsRef<Path>) -> Result<Vec<u8>, FilesError> {
        let rel = self.inside(rel.as_ref())?;
        self.dir.read(rel).map_err(self.fail(rel))
    }

    /// Reads file `rel` whole, as UTF-8.
    pub fn read_to_string(&self, rel: impl AsRef<Path>) -> Result<String, FilesError> {
        let rel = self.inside(rel.as_ref())?;
        self.dir.read_to_string(rel).map_err(self.fail(rel))
    }

    /// Removes file `rel`.
    pub fn remove_file(&self, rel: impl AsRef<Path>) -> Result<(), FilesError> {
        let rel = self.inside(rel.as_ref())?;
        self.dir.remove_file(rel).map_err(self.fail(rel))
    }

    /// The regular files directly in this directory: name, size, and
    /// modification time. Entries that vanish while listed are skipped.
    pub fn files(&self) -> Result<Vec<FileEntry>, FilesError> {
        let fail = self.fail(Path::new("."));
        let mut out = Vec::new();
        for entry in self.dir.entries().map_err(fail)? {
            let Ok(entry) = entry else { continue };
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            out.push(FileEntry {
                name,
                len: meta.len(),
                modified: meta
                    .modified()
                    .map(|t| t.into_std())
                    .unwrap_or(std::time::SystemTime::UNIX_EPOCH),
            });
        }
        Ok(out)
    }

    /// Sets file `rel`'s modification time to now (a cache's "last used").
    pub fn touch(&self, rel: impl AsRef<Path>) -> Result<(), FilesError> {
        let rel = self.inside(rel.as_ref())?;
        let file = self.dir.open(rel).map_err(self.fail(rel))?;
        file.into_std()
            .set_modified(std::time::SystemTime::now())
            .map_err(self.fail(rel))
    }

    /// Makes `to` another name of file `from` (both in this directory);
    /// fails if `to` exists.
    pub fn hard_link(
        &self,
        from: impl AsRef<Path>,
        to: impl AsRef<Path>,
    ) -> Result<(), FilesError> {
        let from = self.inside(from.as_ref())?;
        let to = self.inside(to.as_ref())?;
        self.dir
            .hard_link(from, &self.dir, to)
            .map_err(self.fail(to))
    }

    /// A temporary name beside `rel`, unique in this process.
    fn tmp_name(rel: &Path) -> PathBuf {
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        rel.with_file_name(format!(".{name}.{}.{seq}.tmp", std::process::id()))
    }

    /// Writes `bytes` to a new temporary file beside `rel` (with `mode`,
    /// else the default), synced when `sync`; returns its name.
    fn write_tmp(
        &self,
        rel: &Path,
        bytes: &[u8],
        mode: Option<u32>,
        sync: bool,
    ) -> Result<PathBuf, FilesError> {
        let tmp = Self::tmp_name(rel);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        if let Some(mode) = mode {
            options.mode(mode);
        }
        let written = self.dir.open_with(&tmp, &options).and_then(|mut f| {
            f.write_all(bytes)?;
            if sync {
                f.sync_all()?;
            }
            Ok(())
        });
        match written {
            Ok(()) => Ok(tmp),
            Err(error) => {
                let _ = self.dir.remove_file(&tmp);
                Err(self.fail(&tmp)(error))
            }
        }
    }

    /// Replaces file `rel` with `bytes` atomically (a temporary file
    /// beside it, renamed over it): readers see the old or the new file,
    /// never a part. `mode` applies to a new file (e.g. [`PRIVATE_FILE`]).
    pub fn write_atomic(
        &self,
        rel: impl AsRef<Path>,
        bytes: &[u8],
        mode: Option<u32>,
    ) -> Result<(), FilesError> {
        let rel = self.inside(rel.as_ref())?;
        let tmp = self.write_tmp(rel, bytes, mode, false)?;
        self.dir.rename(&tmp, &self.dir, rel).map_err(|e| {
            let _ = self.dir.remove_file(&tmp);
            self.fail(rel)(e)
        })
    }

    /// Creates file `rel` with `bytes` (synced) unless it exists, in which
    /// case it is left alone; returns whether it was created. Atomic too:
    /// of several writers at once, exactly one wins.
    pub fn write_new(
        &self,
        rel: impl AsRef<Path>,
        bytes: &[u8],
        mode: Option<u32>,
    ) -> Result<bool, FilesError> {
        let rel = self.inside(rel.as_ref())?;
        let tmp = self.write_tmp(rel, bytes, mode, true)?;
        let linked = self.dir.hard_link(&tmp, &self.dir, rel);
        let _ = self.dir.remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(self.fail(rel)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dss-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn paths_leading_outside_are_refused() {
        let top = temp("escape");
        std::fs::write(top.join("secret"), "outside").unwrap();
        let root = top.join("state");
        let d = HostDir::create(&root).unwrap();
        std::os::unix::fs::symlink(&top, root.join("up")).unwrap();
        std::os::unix::fs::symlink(top.join("secret"), root.join("link")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("rel-link")).unwrap();
        for bad in [
            "../secret",
            "/etc/passwd",
            "a/../../secret",
            "",
            "up/secret",
        ] {
            let e = d.read(bad).expect_err(bad);
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{bad}: {e}");
            assert!(d.write_atomic(bad, b"x", None).is_err(), "{bad}");
            assert!(d.write_new(bad, b"x", None).is_err(), "{bad}");
            assert!(d.remove_file(bad).is_err(), "{bad}");
        }
        // A symlink inside that leads out is not followed: reads fail, and
        // a write replaces the link itself.
        for link in ["link", "rel-link"] {
            let e = d.read(link).expect_err(link);
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{link}: {e}");
            d.write_atomic(link, b"x", None).unwrap();
            assert!(!std::fs::symlink_metadata(root.join(link))
                .unwrap()
                .file_type()
                .is_symlink());
        }
        for bad in ["../x", "/tmp/dss-files-x", "up/x"] {
            assert!(d.create_dir_all(bad).is_err(), "{bad}");
            assert!(d.private_dir(bad).is_err(), "{bad}");
            assert!(d.open_dir(bad).is_err(), "{bad}");
        }
        assert_eq!(
            std::fs::read_to_string(top.join("secret")).unwrap(),
            "outside",
            "nothing outside was touched"
        );
        assert!(!top.join("x").exists() && !Path::new("/tmp/dss-files-x").exists());
        let _ = std::fs::remove_dir_all(&top);
    }

    #[test]
    fn files_are_replaced_atomically_with_their_mode() {
        let top = temp("write");
        let d = HostDir::create(&top.join("a/b")).unwrap();
        d.create_dir_all("sub").unwrap();
        d.write_atomic("sub/f", b"one", Some(PRIVATE_FILE)).unwrap();
        assert_eq!(mode(&top.join("a/b/sub/f")), 0o600);
        d.write_atomic("sub/f", b"two", Some(PRIVATE_FILE)).unwrap();
        assert_eq!(d.read("sub/f").unwrap(), b"two");
        assert_eq!(d.read_to_string("./sub/f").unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(top.join("a/b/sub")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
        d.remove_file("sub/f").unwrap();
        assert_eq!(d.read("sub/f").unwrap_err().kind(), io::ErrorKind::NotFound);
        let sub = d.open_dir("sub").unwrap();
        assert_eq!(sub.root(), top.join("a/b/sub"));
        let _ = std::fs::remove_dir_all(&top);
    }

    #[test]
    fn the_first_new_file_wins() {
        let top = temp("new");
        let d = HostDir::open(&top).unwrap();
        assert!(d.write_new("s", b"first", Some(PRIVATE_FILE)).unwrap());
        assert!(!d.write_new("s", b"second", Some(PRIVATE_FILE)).unwrap());
        assert_eq!(d.read_to_string("s").unwrap(), "first");
        assert_eq!(mode(&top.join("s")), 0o600);
        assert_eq!(std::fs::read_dir(&top).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&top);
    }

    #[test]
    fn private_dirs_are_0700_even_when_they_existed() {
        let top = temp("private");
        let d = HostDir::open(&top).unwrap();
        d.private_dir("c/m").unwrap();
        assert_eq!(mode(&top.join("c")), 0o700);
        assert_eq!(mode(&top.join("c/m")), 0o700);
        std::fs::create_dir(top.join("open")).unwrap();
        std::fs::set_permissions(top.join("open"), std::fs::Permissions::from_mode(0o755)).unwrap();
        d.private_dir("open")
            .unwrap()
            .write_atomic("f", b"x", None)
            .unwrap();
        assert_eq!(mode(&top.join("open")), 0o700);
        assert!(top.join("open/f").exists());
        let _ = std::fs::remove_dir_all(&top);
    }

    #[test]
    fn a_missing_root_is_an_error_naming_it() {
        let e = HostDir::open(Path::new("/nonexistent/dss-files")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/dss-files:"), "{e}");
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
    }
}
