//! Who the media plane runs as: the unprivileged user that every FFmpeg
//! (streams, phones, thumbnails, recorders, exports) and nginx's workers
//! run as when the host itself runs as root.
//!
//! FFmpeg decodes whatever a camera, a feed or a phone sends; a decoder
//! bug exploited as root would own the machine. So a host running as root
//! resolves `[security] run_as` (default `dss`, which the set-up creates)
//! once at start and refuses to start when that user does not exist. Each
//! FFmpeg gets the user's uid and gid, and no supplementary groups (the
//! standard library drops them when root sets a uid); nginx's workers get
//! the same through the template's `{{user}}`.
//!
//! What the media user may touch is only what it needs, each handed over
//! by [`MediaUser::grant`] where it is made: FFmpeg's working directories,
//! a phone's FIFOs, a stream's recording directory. The directories above
//! them are traverse-only (`0711`), so the user can reach those and list
//! nothing; the store, the secrets, the logs, the compile cache and the
//! nginx configuration stay root's alone.
//!
//! A host that does not run as root runs FFmpeg as itself (it cannot
//! switch users, and has nothing more to protect than its own files).

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

/// The user every FFmpeg and nginx worker runs as when the host is root
/// and `[security] run_as` is unset.
pub const DEFAULT_USER: &str = "dss";

/// Why the media user cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// `run_as` is not a plausible user name.
    #[error("[security] run_as = {0:?} is not a user name (lowercase letters, digits, '_' and '-', at most 32)")]
    BadName(String),
    /// No such user on this machine.
    #[error("the host runs as root, and FFmpeg and nginx's workers must not: they run as user {0:?} ([security] run_as), which does not exist here; create it with `useradd --system --no-create-home --shell /usr/sbin/nologin {0}` (scripts/setup.sh does), or name another unprivileged user in [security] run_as")]
    Missing(String),
    /// The user lookup itself failed.
    #[error("cannot look up user {name:?}: {error}")]
    Lookup {
        /// The name.
        name: String,
        /// Why.
        error: std::io::Error,
    },
    /// Handing a file to the media user failed.
    #[error("user {user} ([security] run_as, who FFmpeg runs as) cannot reach {path}: {blocker} is mode {mode:o} and not theirs; allow others through it (`chmod o+x {blocker}`) or move state_dir")]
    Unreachable {
        /// The directory the user must reach.
        path: String,
        /// The user.
        user: String,
        /// The first directory on the way the user cannot search.
        blocker: String,
        /// Its mode.
        mode: u32,
    },
    /// Handing a file to the media user failed.
    #[error("cannot give {path} to user {user}: {error}")]
    Grant {
        /// The file.
        path: String,
        /// The user.
        user: String,
        /// Why.
        error: std::io::Error,
    },
}

/// The unprivileged identity of the media plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaUser {
    /// Its name (for nginx's `user` directive and messages).
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// The primary group's name (for nginx's `user` directive).
    pub group: String,
}

impl MediaUser {
    /// The media user for a host running with effective uid `euid` and
    /// `[security] run_as` = `run_as`: `None` when the host is not root
    /// (FFmpeg runs as the host's own user) or when `run_as = "root"` (the
    /// operator's explicit choice, logged as a warning by the caller).
    pub fn resolve(run_as: Option<&str>, euid: u32) -> Result<Option<MediaUser>, PrivilegeError> {
        if euid != 0 {
            return Ok(None);
        }
        let name = run_as.unwrap_or(DEFAULT_USER);
        if !valid_name(name) {
            return Err(PrivilegeError::BadName(name.to_string()));
        }
        if name == "root" {
            return Ok(None);
        }
        lookup(name)?
            .ok_or_else(|| PrivilegeError::Missing(name.to_string()))
            .map(Some)
    }

    /// The media user of this process (see [`MediaUser::resolve`]).
    pub fn for_this_process(run_as: Option<&str>) -> Result<Option<MediaUser>, PrivilegeError> {
        Self::resolve(run_as, if host_is_root() { 0 } else { 1 })
    }

    /// Makes `path` (a file or directory just made for the media plane)
    /// the media user's, keeping its mode.
    pub fn grant(&self, path: &Path) -> Result<(), PrivilegeError> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).map_err(|error| {
            PrivilegeError::Grant {
                path: path.display().to_string(),
                user: self.name.clone(),
                error,
            }
        })
    }

    /// Checks that this user can search every directory from `/` down to
    /// `dir` (which FFmpeg's working directories sit in), by their owners,
    /// groups and modes: a state directory under a private home would
    /// otherwise fail every FFmpeg at its `chdir`. Supplementary groups
    /// are not counted (FFmpeg runs without them).
    pub fn check_reach(&self, dir: &Path) -> Result<(), PrivilegeError> {
        use std::os::unix::fs::MetadataExt;
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut on_the_way = PathBuf::new();
        for part in dir.components() {
            on_the_way.push(part);
            let Ok(meta) = std::fs::metadata(&on_the_way) else {
                // Not made yet: the host makes it, reachable.
                break;
            };
            let mode = meta.mode() & 0o777;
            let search = if meta.uid() == self.uid {
                mode & 0o100
            } else if meta.gid() == self.gid {
                mode & 0o010
            } else {
                mode & 0o001
            };
            if search == 0 {
                return Err(PrivilegeError::Unreachable {
                    path: dir.display().to_string(),
                    user: self.name.clone(),
                    blocker: on_the_way.display().to_string(),
                    mode,
                });
            }
        }
        Ok(())
    }

    /// Makes `cmd` run as this user (its uid, its primary group, no
    /// supplementary groups).
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        cmd.uid(self.uid).gid(self.gid);
    }
}

/// Whether the host runs as root (effective uid 0).
pub fn host_is_root() -> bool {
    euid() == 0
}

/// This process's effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The name of user `uid` in the user database (`getpwuid_r`), if any.
pub fn user_name(uid: u32) -> Option<String> {
    // Large enough for any sane passwd entry.
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: zeroed passwd is a valid out-parameter; getpwuid_r writes
    // into `pw` and `buf` (of the length given) only.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded: pw_name points into `buf`, NUL-terminated.
    let name = unsafe { CStr::from_ptr(pw.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// The mode of a directory of the host's that holds directories handed to
/// the media user (FFmpeg's working directories, phones' FIFOs, the
/// recordings): traverse-only when there is such a user (it reaches what
/// is its own and lists nothing), private otherwise.
pub fn holding_dir_mode(user: Option<&MediaUser>) -> u32 {
    if user.is_some() {
        crate::files::TRAVERSE_DIR
    } else {
        crate::files::PRIVATE_DIR
    }
}

/// [`MediaUser::grant`] for an optional user: nothing to do without one.
pub fn grant(user: Option<&MediaUser>, path: &Path) -> Result<(), PrivilegeError> {
    user.map_or(Ok(()), |u| u.grant(path))
}

/// Whether `name` looks like a Unix user name (the portable subset
/// `useradd` accepts by default).
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    first_ok
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Looks `name` up in the user database (`getpwnam_r`), then its primary
/// group's name (`getgrgid_r`).
fn lookup(name: &str) -> Result<Option<MediaUser>, PrivilegeError> {
    let fail = |error| PrivilegeError::Lookup {
        name: name.to_string(),
        error,
    };
    let c_name = CString::new(name).map_err(|e| fail(std::io::Error::other(e)))?;
    // Large enough for any sane passwd or group entry.
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: zeroed passwd is a valid out-parameter; getpwnam_r writes
    // into `pw` and `buf` (of the length given) only.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(fail(std::io::Error::from_raw_os_error(rc)));
    }
    if found.is_null() {
        return Ok(None);
    }
    let (uid, gid) = (pw.pw_uid, pw.pw_gid);
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut found_gr: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as above, for the group entry.
    let rc = unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr(), buf.len(), &mut found_gr) };
    let group = if rc == 0 && !found_gr.is_null() {
        // SAFETY: getgrgid_r succeeded: gr_name points into `buf`, NUL-terminated.
        unsafe { CStr::from_ptr(gr.gr_name) }
            .to_string_lossy()
            .into_owned()
    } else {
        gid.to_string()
    };
    Ok(Some(MediaUser {
        name: name.to_string(),
        uid,
        gid,
        group,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_that_is_not_root_runs_ffmpeg_as_itself() {
        assert_eq!(MediaUser::resolve(Some("nobody"), 1000).unwrap(), None);
        assert_eq!(MediaUser::resolve(None, 1000).unwrap(), None);
    }

    #[test]
    fn root_resolves_the_named_user() {
        let u = MediaUser::resolve(Some("nobody"), 0).unwrap().unwrap();
        assert_eq!(u.name, "nobody");
        assert_eq!(u.uid, 65534);
        assert!(!u.group.is_empty());
    }

    #[test]
    fn root_refuses_a_missing_user_naming_the_fix() {
        let e = MediaUser::resolve(Some("no-such-user-dss"), 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no-such-user-dss") && e.contains("useradd"),
            "{e}"
        );
    }

    #[test]
    fn root_refuses_what_is_not_a_user_name() {
        for bad in ["", "Root", "a b", "x;y", "../x", &"a".repeat(33)] {
            let e = MediaUser::resolve(Some(bad), 0).unwrap_err();
            assert!(matches!(e, PrivilegeError::BadName(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn a_directory_the_user_cannot_search_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let nobody = MediaUser {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
            group: "nogroup".into(),
        };
        let top = tempfile::tempdir().unwrap();
        let closed = top.path().join("closed");
        std::fs::create_dir_all(closed.join("var")).unwrap();
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = nobody
            .check_reach(&closed.join("var/run"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("{} is mode 700", closed.display())),
            "{e}"
        );
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o711)).unwrap();
        nobody.check_reach(&closed.join("var/run")).unwrap();
    }

    #[test]
    fn run_as_root_is_the_operators_explicit_choice() {
        assert_eq!(MediaUser::resolve(Some("root"), 0).unwrap(), None);
    }
}
