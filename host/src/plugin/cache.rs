//! The on-disk cache of compiled components, keyed by the SHA-256 of the
//! `.wasm` file and the engine's compatibility hash, so a second start (or a
//! swap back to a known version) skips compilation.
//!
//! The directory is private (0700: a compiled artifact is trusted code) and
//! reached only through a [`HostDir`] handle.

use crate::files::{HostDir, PRIVATE_FILE};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Compiled components on disk.
pub struct ComponentCache {
    dir: Option<PathBuf>,
    /// The opened directory, once it could be (retried on each use until).
    handle: Mutex<Option<Arc<HostDir>>>,
    engine_tag: String,
}

/// Whether a component came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Deserialized from a cached artifact.
    Cached,
    /// Compiled now.
    Compiled,
}

impl ComponentCache {
    /// A cache in `dir` (created, mode 0700, on first use); `None`
    /// disables it.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        ComponentCache {
            dir,
            handle: Mutex::new(None),
            engine_tag: format!("{:016x}", h.finish()),
        }
    }

    /// Content hash of a module, as hex.
    pub fn content_hash(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn name_for(&self, hash: &str) -> String {
        format!("{hash}-{}.cwasm", self.engine_tag)
    }

    /// The cache directory, opened (and created private) on first use.
    fn dir(&self) -> Option<Arc<HostDir>> {
        let path = self.dir.as_ref()?;
        let mut handle = self.handle.lock().unwrap_or_else(|p| p.into_inner());
        if handle.is_none() {
            match open_private(path) {
                Ok(d) => *handle = Some(Arc::new(d)),
                Err(e) => tracing::warn!("compile cache unavailable: {e}"),
            }
        }
        handle.clone()
    }

    /// Returns the compiled component for `bytes` (whose hash is `hash`),
    /// from the cache when possible. A cache that cannot be read or written
    /// only costs a compilation.
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        hash: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, Origin)> {
        let dir = self.dir();
        let name = self.name_for(hash);
        if let Some(dir) = &dir {
            // Read into memory rather than `deserialize_file`: a mapped file
            // truncated by someone else would kill the process with SIGBUS.
            if let Ok(artifact) = dir.read(&name) {
                // SAFETY: the file was written by `Component::serialize` of
                // an engine with the same compatibility hash (part of the
                // name), into a private (0700) directory only this host
                // writes, replaced atomically (written to a temporary,
                // renamed); wasmtime still checks its header and
                // compatibility.
                match unsafe { Component::deserialize(engine, &artifact) } {
                    Ok(c) => return Ok((c, Origin::Cached)),
                    Err(e) => {
                        tracing::warn!(path = %dir.path(&name).display(), "discarding unreadable compiled module: {e:?}");
                        let _ = dir.remove_file(&name);
                    }
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Some(dir) = &dir {
            let written = component
                .serialize()
                .map_err(|e| format!("{e:?}"))
                .and_then(|b| {
                    dir.write_atomic(&name, &b, Some(PRIVATE_FILE))
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = written {
                tracing::warn!(path = %dir.path(&name).display(), "cannot cache compiled module: {e}");
            }
        }
        Ok((component, Origin::Compiled))
    }
}

/// Opens `path` as a private directory: its parent is created as usual,
/// `path` itself with mode 0700 (narrowed to it when it existed).
fn open_private(path: &std::path::Path) -> Result<HostDir, crate::files::FilesError> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => {
            HostDir::create(parent)?.private_dir(name)
        }
        _ => HostDir::create(std::path::Path::new("."))?.private_dir(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The smallest component: the preamble alone.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_cache_directory_is_private_and_serves_a_second_load() {
        let state = std::env::temp_dir().join(format!("dss-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        let dir = state.join("cache").join("modules");
        let engine = Engine::default();
        let cache = ComponentCache::new(&engine, Some(dir.clone()));
        let hash = ComponentCache::content_hash(EMPTY_COMPONENT);
        let (_, origin) = cache
            .get_or_compile(&engine, &hash, EMPTY_COMPONENT)
            .unwrap();
        assert_eq!(origin, Origin::Compiled);
        assert_eq!(mode(&dir), 0o700, "the compile cache is private");
        let file = dir.join(cache.name_for(&hash));
        assert_eq!(mode(&file), 0o600);
        let again = ComponentCache::new(&engine, Some(dir.clone()));
        let (_, origin) = again
            .get_or_compile(&engine, &hash, EMPTY_COMPONENT)
            .unwrap();
        assert_eq!(origin, Origin::Cached);

        // A damaged artifact is discarded and replaced; a directory made
        // open by someone is narrowed again.
        std::fs::write(&file, b"garbage").unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let third = ComponentCache::new(&engine, Some(dir.clone()));
        let (_, origin) = third
            .get_or_compile(&engine, &hash, EMPTY_COMPONENT)
            .unwrap();
        assert_eq!(origin, Origin::Compiled);
        assert_eq!(mode(&dir), 0o700);
        let (_, origin) = third
            .get_or_compile(&engine, &hash, EMPTY_COMPONENT)
            .unwrap();
        assert_eq!(origin, Origin::Cached);
        let _ = std::fs::remove_dir_all(&state);
    }
}
