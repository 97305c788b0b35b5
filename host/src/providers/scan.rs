//! Listing the modules and instances directories: their files by stem,
//! each with a cheap signature of its version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What identifies a file version cheaply (size and modification time).
pub(super) type FileSig = (u64, Option<SystemTime>);

/// The stem of `file` (an instance file's name), if it is UTF-8.
pub(super) fn file_stem(file: &Path) -> Option<String> {
    file.file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string)
}

/// Files `*.ext` of `dir` by stem, with their signature. Hidden files and
/// editor/partial-copy leftovers (`.name.wasm`, `name.wasm.tmp`) are skipped
/// by the extension and dot checks.
pub(super) fn list_dir(dir: &Path, ext: &str) -> BTreeMap<String, (PathBuf, FileSig)> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        tracing::warn!(dir = %dir.display(), "directory not readable");
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some(ext) {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if stem.starts_with('.') {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        out.insert(stem.to_string(), (path, (meta.len(), meta.modified().ok())));
    }
    out
}
