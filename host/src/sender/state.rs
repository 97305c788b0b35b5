//! The state file: each server's session (its id and, since phones own
//! their ids, the secret that reclaims it), so the next run resumes the
//! same session. Written atomically, mode 0600.

use super::{check_session_id, say, SendError, SendOptions};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `$XDG_STATE_HOME/dss/mobile-send.json`, else
/// `$HOME/.local/state/dss/mobile-send.json` (relative values are ignored,
/// as the XDG specification says).
pub fn default_state_path() -> Option<PathBuf> {
    state_path_from(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
}

pub(super) fn state_path_from(xdg: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    absolute(xdg)
        .map(|d| d.join("dss/mobile-send.json"))
        .or_else(|| absolute(home).map(|h| h.join(".local/state/dss/mobile-send.json")))
}

/// What the state file keeps for a server: the session id and, since
/// phones own their ids, the session secret that reclaims it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    /// The session id.
    pub id: String,
    /// Its session secret, when the server gave (or the sender chose) one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// An entry of the state file: a bare id (written before secrets), or an
/// id with its secret.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Entry {
    Id(String),
    Saved(Saved),
}

/// The state file's map of server (`HOST:PORT` for TCP, `http://HOST:PORT`
/// for HTTP) to session; empty when the file does not exist.
pub fn load_ids(path: &Path) -> Result<BTreeMap<String, Saved>, SendError> {
    let fail = |reason: String| SendError::State {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<BTreeMap<String, Entry>>(&bytes)
            .map(|m| {
                m.into_iter()
                    .map(|(k, e)| {
                        let saved = match e {
                            Entry::Id(id) => Saved { id, secret: None },
                            Entry::Saved(s) => s,
                        };
                        (k, saved)
                    })
                    .collect()
            })
            .map_err(|e| {
                fail(format!(
                    "not a JSON object of server to session ({e}); fix or delete it"
                ))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// The session saved for `server`, its id checked.
pub fn saved_id(path: &Path, server: &str) -> Result<Option<Saved>, SendError> {
    let Some(saved) = load_ids(path)?.remove(server) else {
        return Ok(None);
    };
    check_session_id(&saved.id).map_err(|reason| SendError::State {
        path: path.display().to_string(),
        reason: format!("entry for {server}: {reason}"),
    })?;
    Ok(Some(saved))
}

/// Records `session` for `server`: creates the parent directories, writes
/// a temporary file (mode 0600: the secret reclaims the phone's id) next
/// to it and renames it over the old one, so a crash never leaves a
/// half-written file.
pub fn save_id(path: &Path, server: &str, session: &Saved) -> Result<(), SendError> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |reason: String| SendError::State {
        path: path.display().to_string(),
        reason,
    };
    let mut ids = load_ids(path)?;
    ids.insert(server.to_string(), session.clone());
    let mut text = serde_json::to_string_pretty(&ids).map_err(|e| fail(e.to_string()))?;
    text.push('\n');
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    let name = path
        .file_name()
        .ok_or_else(|| fail("not a file name".into()))?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e.to_string()));
    }
    Ok(())
}

/// The state file to use, if any.
pub(super) fn state_path(opts: &SendOptions) -> Option<PathBuf> {
    opts.state.clone().or_else(default_state_path)
}

/// Saves the session, or says why it could not (the session goes on).
pub(super) fn remember(
    out: &mut (dyn Write + Send),
    state: Option<&Path>,
    server: &str,
    session: &Saved,
) {
    match state {
        Some(p) => {
            if let Err(e) = save_id(p, server, session) {
                say(out, &format!("note: id not saved: {e}"));
            }
        }
        None => say(out, "note: id not saved: no $XDG_STATE_HOME or $HOME"),
    }
}
