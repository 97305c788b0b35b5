//! The on-disk cache of compiled components, keyed by the SHA-256 of the
//! `.wasm` file and the engine's compatibility hash, so a second start (or a
//! swap back to a known version) skips compilation.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Compiled components on disk.
pub struct ComponentCache {
    dir: Option<PathBuf>,
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
    /// A cache in `dir` (created on first write); `None` disables it.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        ComponentCache {
            dir,
            engine_tag: format!("{:016x}", h.finish()),
        }
    }

    /// Content hash of a module, as hex.
    pub fn content_hash(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn path_for(&self, hash: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{hash}-{}.cwasm", self.engine_tag)))
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
        if let Some(path) = self.path_for(hash) {
            // Read into memory rather than `deserialize_file`: a mapped file
            // truncated by someone else would kill the process with SIGBUS.
            if let Ok(artifact) = std::fs::read(&path) {
                // SAFETY: the file was written by `Component::serialize` of
                // an engine with the same compatibility hash (part of the
                // name), into a directory only this host writes, replaced
                // atomically (written to a temporary, renamed); wasmtime
                // still checks its header and compatibility.
                match unsafe { Component::deserialize(engine, &artifact) } {
                    Ok(c) => return Ok((c, Origin::Cached)),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "discarding unreadable compiled module: {e:?}");
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Some(path) = self.path_for(hash) {
            if let Err(e) = write_atomically(&path, &component) {
                tracing::warn!(path = %path.display(), "cannot cache compiled module: {e}");
            }
        }
        Ok((component, Origin::Compiled))
    }
}

fn write_atomically(path: &Path, component: &Component) -> std::io::Result<()> {
    let bytes = component
        .serialize()
        .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
