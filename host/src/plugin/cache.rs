//! The on-disk cache of compiled components, keyed by the SHA-256 of the
//! `.wasm` file and the engine's compatibility hash, so a second start (or a
//! swap back to a known version) skips compilation; and bounded, so that
//! rebuilds and upgrades do not fill the disk.
//!
//! An artifact is `MODULE@SHA256-ENGINE.cwasm`. It is written by the
//! compiler (in a child process for the daemon: [`super::compile`]),
//! atomically, and loaded by mapping the file: its code pages are the
//! page cache's, shared and dropped under memory pressure rather than
//! copied into the serving process.
//!
//! [`ComponentCache::prune`] runs at start and after each module change:
//! it removes artifacts of another engine, of modules no longer present,
//! and versions of a module older than the newest [`KEEP_OLD_VERSIONS`]
//! (a swap back is still quick); then, beyond `[providers] cache_max_mib`,
//! the least recently used (loading an artifact marks it used). The
//! artifacts of the modules in use are never removed.
//!
//! The directory is private (0700: a compiled artifact is trusted code) and
//! reached only through a [`HostDir`] handle. Files there are written to a
//! temporary name and renamed, or removed, never rewritten in place: a
//! loaded module maps its file, and a file truncated under a mapping
//! would kill the process (SIGBUS). Operators clear the cache by deleting
//! files, which is safe while the host runs.

use super::compile::{self, Compiler};
use crate::files::{FileEntry, HostDir, PRIVATE_FILE};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Versions of a module kept besides the one in use (by last use).
pub const KEEP_OLD_VERSIONS: usize = 2;

/// A temporary file older than this is a leftover of a killed compile.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// Compiled components on disk.
pub struct ComponentCache {
    dir: Option<PathBuf>,
    /// The opened directory, once it could be (retried on each use until).
    handle: Mutex<Option<Arc<HostDir>>>,
    engine_tag: String,
    compiler: Compiler,
    /// Whether the engine uses the pooling allocator (the child must too).
    pooling: bool,
    /// Largest total size of the artifacts (0: no bound).
    max_bytes: u64,
}

/// Whether a component came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Deserialized from a cached artifact.
    Cached,
    /// Compiled now.
    Compiled,
}

/// What [`ComponentCache::prune`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Files removed.
    pub removed: Vec<String>,
    /// Bytes they held.
    pub freed: u64,
    /// Bytes the cache holds now.
    pub kept: u64,
}

/// An artifact's name, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Artifact {
    module: String,
    hash: String,
    tag: String,
}

impl Artifact {
    fn parse(name: &str) -> Option<Artifact> {
        let stem = name.strip_suffix(".cwasm")?;
        let (module, rest) = stem.rsplit_once('@')?;
        let (hash, tag) = rest.split_once('-')?;
        (!module.is_empty() && hash.len() == 64 && !tag.is_empty()).then(|| Artifact {
            module: module.to_string(),
            hash: hash.to_string(),
            tag: tag.to_string(),
        })
    }
}

/// A module name as a file-name part: its safe characters only.
fn file_part(module: &str) -> String {
    let s: String = module
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    match s.trim_start_matches('.') {
        "" => "module".to_string(),
        t => t.to_string(),
    }
}

impl ComponentCache {
    /// A cache in `dir` (created, mode 0700, on first use); `None`
    /// disables it. Components are compiled in this process until
    /// [`ComponentCache::set_compiler`] says otherwise.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        ComponentCache {
            dir,
            handle: Mutex::new(None),
            engine_tag: format!("{:016x}", h.finish()),
            compiler: Compiler::InProcess,
            pooling: true,
            max_bytes: 0,
        }
    }

    /// Where components missing from the cache are compiled, for an
    /// engine with (`pooling`) or without the pooling allocator.
    pub fn set_compiler(&mut self, compiler: Compiler, pooling: bool) {
        self.compiler = compiler;
        self.pooling = pooling;
    }

    /// The most the artifacts may hold together (0: no bound).
    pub fn set_max_bytes(&mut self, max: u64) {
        self.max_bytes = max;
    }

    /// Content hash of a module, as hex.
    pub fn content_hash(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn name_for(&self, module: &str, hash: &str) -> String {
        format!("{}@{hash}-{}.cwasm", file_part(module), self.engine_tag)
    }

    /// The cache directory, opened (and created private) on first use.
    fn dir(&self) -> Option<Arc<HostDir>> {
        let path = self.dir.as_ref()?;
        let mut handle = self.handle.lock().unwrap_or_else(|p| p.into_inner());
        if handle.is_none() {
            match open_private(path) {
                Ok(d) => *handle = Some(Arc::new(d)),
                Err(e) => tracing::warn!(error = %e, "compile cache unavailable"),
            }
        }
        handle.clone()
    }

    /// Loads artifact `name` by mapping it.
    fn load(&self, engine: &Engine, dir: &HostDir, name: &str) -> wasmtime::Result<Component> {
        // SAFETY: the file was written by `Component::serialize` or
        // `Engine::precompile_component` of an engine with the same
        // compatibility hash (part of the name), into a private (0700)
        // directory only this host (and the compilers it runs) writes;
        // files there are only ever replaced by a rename or unlinked,
        // never truncated or rewritten in place, so the mapping stays
        // whole. wasmtime still checks its header and compatibility.
        unsafe { Component::deserialize_file(engine, dir.path(name)) }
    }

    /// The cached artifact of `hash` for module `module`: its own, else
    /// another module's with the same bytes (linked under its name).
    fn find(&self, dir: &HostDir, module: &str, hash: &str) -> Option<String> {
        let own = self.name_for(module, hash);
        let files = dir.files().ok()?;
        if files.iter().any(|f| f.name == own) {
            return Some(own);
        }
        let other = files.into_iter().find(|f| {
            Artifact::parse(&f.name).is_some_and(|a| a.hash == hash && a.tag == self.engine_tag)
        })?;
        match dir.hard_link(&other.name, &own) {
            Ok(()) => Some(own),
            Err(_) => Some(other.name),
        }
    }

    /// Returns the compiled component for `bytes` of module `module` (whose
    /// hash is `hash`), from the cache when possible. A cache that cannot be
    /// read or written only costs a compilation (in this process).
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        module: &str,
        hash: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, Origin)> {
        let dir = self.dir();
        if let Some(dir) = &dir {
            if let Some(name) = self.find(dir, module, hash) {
                match self.load(engine, dir, &name) {
                    Ok(c) => {
                        // Used now: the last to go when the cache is full.
                        let _ = dir.touch(&name);
                        return Ok((c, Origin::Cached));
                    }
                    Err(e) => {
                        tracing::warn!(path = %dir.path(&name).display(), error = ?e, "discarding unreadable compiled module");
                        let _ = dir.remove_file(&name);
                    }
                }
            }
        }
        let name = self.name_for(module, hash);
        match (&self.compiler, &dir) {
            (Compiler::Child { program }, Some(dir)) => {
                compile::in_child(program, self.pooling, bytes, dir.root(), &name)
                    .map_err(|e| wasmtime::format_err!("{e}"))?;
                let c = self.load(engine, dir, &name)?;
                Ok((c, Origin::Compiled))
            }
            _ => {
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
                        tracing::warn!(path = %dir.path(&name).display(), error = %e, "cannot cache compiled module");
                    }
                }
                Ok((component, Origin::Compiled))
            }
        }
    }

    /// Bounds the cache, given the module files present (name, and the
    /// hash of the version in use if one loaded): see the module
    /// documentation. Errors are logged; a file that cannot be removed
    /// stays.
    pub fn prune(&self, present: &[(String, Option<String>)]) -> Pruned {
        let Some(dir) = self.dir() else {
            return Pruned::default();
        };
        let files = match dir.files() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "compile cache: cannot list");
                return Pruned::default();
            }
        };
        let plan = plan_prune(
            files,
            &self.engine_tag,
            present,
            self.max_bytes,
            SystemTime::now(),
        );
        let mut done = Pruned {
            kept: plan.kept,
            ..Pruned::default()
        };
        for f in plan.remove {
            match dir.remove_file(&f.name) {
                Ok(()) => {
                    done.freed += f.len;
                    done.removed.push(f.name);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "compile cache: cannot remove");
                    done.kept += f.len;
                }
            }
        }
        if plan.over {
            tracing::warn!(
                kept_mib = done.kept >> 20,
                max_mib = self.max_bytes >> 20,
                "compile cache: the modules in use alone exceed [providers] cache_max_mib"
            );
        }
        if !done.removed.is_empty() {
            tracing::info!(
                files = done.removed.len(),
                freed_mib = done.freed >> 20,
                kept_mib = done.kept >> 20,
                "compile cache pruned"
            );
        }
        done
    }
}

/// What to remove from the cache.
#[derive(Debug)]
struct PrunePlan {
    remove: Vec<FileEntry>,
    /// Bytes of what stays.
    kept: u64,
    /// What stays exceeds the bound (the modules in use alone do).
    over: bool,
}

/// Decides what [`ComponentCache::prune`] removes (pure, for tests).
fn plan_prune(
    files: Vec<FileEntry>,
    engine_tag: &str,
    present: &[(String, Option<String>)],
    max_bytes: u64,
    now: SystemTime,
) -> PrunePlan {
    let pinned: HashSet<&str> = present.iter().filter_map(|(_, h)| h.as_deref()).collect();
    let names: HashSet<String> = present.iter().map(|(m, _)| file_part(m)).collect();
    let mut remove = Vec::new();
    // Candidates by module: (last used, file).
    let mut old: BTreeMap<String, Vec<FileEntry>> = BTreeMap::new();
    let mut keep: Vec<FileEntry> = Vec::new();
    for f in files {
        if f.name.ends_with(".tmp") {
            // A compile in progress writes one: only old ones go.
            let age = now.duration_since(f.modified).unwrap_or_default();
            if age > STALE_TMP {
                remove.push(f);
            }
            continue;
        }
        let Some(a) = Artifact::parse(&f.name) else {
            // Not ours, or an older naming: unusable.
            if f.name.ends_with(".cwasm") {
                remove.push(f);
            }
            continue;
        };
        if a.tag != engine_tag || !names.contains(&a.module) {
            remove.push(f);
        } else if pinned.contains(a.hash.as_str()) {
            keep.push(f);
        } else {
            old.entry(a.module).or_default().push(f);
        }
    }
    let pinned_bytes: u64 = keep.iter().map(|f| f.len).sum();
    let mut candidates = Vec::new();
    for (_, mut versions) in old {
        versions.sort_by_key(|f| std::cmp::Reverse(f.modified));
        let extra = versions.split_off(KEEP_OLD_VERSIONS.min(versions.len()));
        remove.extend(extra);
        candidates.extend(versions);
    }
    // Beyond the bound, the least recently used old versions go first.
    candidates.sort_by_key(|f| f.modified);
    let mut total = pinned_bytes + candidates.iter().map(|f| f.len).sum::<u64>();
    for f in candidates {
        if max_bytes > 0 && total > max_bytes {
            total -= f.len;
            remove.push(f);
        }
    }
    PrunePlan {
        remove,
        kept: total,
        over: max_bytes > 0 && pinned_bytes > max_bytes,
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
            .get_or_compile(&engine, "m", &hash, EMPTY_COMPONENT)
            .unwrap();
        assert_eq!(origin, Origin::Compiled);
        assert_eq!(mode(&dir), 0o700, "the compile cache is private");
        let file = dir.join(cache.name_for("m", &hash));
        assert_eq!(mode(&file), 0o600);
        let again = ComponentCache::new(&engine, Some(dir.clone()));
        let (_, origin) = again
            .get_or_compile(&engine, "m", &hash, EMPTY_COMPONENT)
            .unwrap();
        assert_eq!(origin, Origin::Cached);
        // The same bytes under another module name: found, and linked.
        let (_, origin) = again
            .get_or_compile(&engine, "other", &hash, EMPTY_COMPONENT)
            .unwrap();
        assert_eq!(origin, Origin::Cached);
        assert!(dir.join(cache.name_for("other", &hash)).exists());

        // A damaged artifact is discarded and replaced; a directory made
        // open by someone is narrowed again.
        std::fs::write(&file, b"garbage").unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let third = ComponentCache::new(&engine, Some(dir.clone()));
        let (_, origin) = third
            .get_or_compile(&engine, "m", &hash, EMPTY_COMPONENT)
            .unwrap();
        assert_eq!(origin, Origin::Compiled);
        assert_eq!(mode(&dir), 0o700);
        let (_, origin) = third
            .get_or_compile(&engine, "m", &hash, EMPTY_COMPONENT)
            .unwrap();
        assert_eq!(origin, Origin::Cached);
        let _ = std::fs::remove_dir_all(&state);
    }

    fn entry(name: String, len: u64, age_s: u64, now: SystemTime) -> FileEntry {
        FileEntry {
            name,
            len,
            modified: now - Duration::from_secs(age_s),
        }
    }

    fn h(n: u8) -> String {
        format!("{n:064x}")
    }

    fn art(module: &str, n: u8, tag: &str) -> String {
        format!("{module}@{}-{tag}.cwasm", h(n))
    }

    fn removed(plan: &PrunePlan) -> Vec<&str> {
        let mut v: Vec<&str> = plan.remove.iter().map(|f| f.name.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn pruning_keeps_what_is_in_use_and_a_few_recent_versions() {
        let now = SystemTime::now();
        let files = vec![
            // In use.
            entry(art("js", 9, "t"), 40, 5000, now),
            // Older versions of js, the newest two kept.
            entry(art("js", 1, "t"), 40, 10, now),
            entry(art("js", 2, "t"), 40, 20, now),
            entry(art("js", 3, "t"), 40, 30, now),
            entry(art("js", 4, "t"), 40, 40, now),
            // Another engine; a module no longer present; an old naming.
            entry(art("js", 9, "old"), 40, 1, now),
            entry(art("gone", 5, "t"), 40, 1, now),
            entry(format!("{}-t.cwasm", h(9)), 40, 1, now),
            // A compile in progress, and one a crash left.
            entry(".js@x.cwasm.1.2.tmp".into(), 10, 1, now),
            entry(".js@y.cwasm.1.3.tmp".into(), 10, 7200, now),
            // Not the cache's.
            entry("notes.txt".into(), 1, 1, now),
        ];
        let in_use = [("js".to_string(), Some(h(9)))];
        let plan = plan_prune(files, "t", &in_use, 0, now);
        let mut want = vec![
            art("js", 3, "t"),
            art("js", 4, "t"),
            art("js", 9, "old"),
            art("gone", 5, "t"),
            format!("{}-t.cwasm", h(9)),
            ".js@y.cwasm.1.3.tmp".to_string(),
        ];
        want.sort();
        assert_eq!(removed(&plan), want);
        assert_eq!(plan.kept, 120);
        assert!(!plan.over);
    }

    #[test]
    fn beyond_the_bound_the_least_recently_used_go_but_never_what_is_in_use() {
        let now = SystemTime::now();
        let files = || {
            vec![
                entry(art("a", 1, "t"), 100, 9000, now),
                entry(art("a", 2, "t"), 100, 10, now),
                entry(art("b", 3, "t"), 100, 9000, now),
                entry(art("b", 4, "t"), 100, 500, now),
            ]
        };
        let in_use = [("a".to_string(), Some(h(1))), ("b".to_string(), Some(h(3)))];
        let plan = plan_prune(files(), "t", &in_use, 300, now);
        assert_eq!(removed(&plan), vec![art("b", 4, "t")]);
        assert_eq!(plan.kept, 300);
        let plan = plan_prune(files(), "t", &in_use, 150, now);
        assert_eq!(removed(&plan), vec![art("a", 2, "t"), art("b", 4, "t")]);
        assert!(plan.over, "the modules in use alone exceed the bound");
        assert_eq!(plan.kept, 200);
    }

    #[test]
    fn artifact_names_parse_and_module_names_are_made_safe() {
        let a = Artifact::parse(&art("geojson-feed", 7, "abc")).unwrap();
        assert_eq!(
            (a.module.as_str(), a.hash, a.tag.as_str()),
            ("geojson-feed", h(7), "abc")
        );
        assert_eq!(Artifact::parse("x.cwasm"), None);
        assert_eq!(file_part("../a b"), "_a_b");
        assert_eq!(file_part("..."), "module");
    }
}
