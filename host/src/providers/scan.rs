//! Listing the modules and instances directories: their files by stem,
//! each with a cheap signature of its version; the modules of several
//! directories merged, a later directory's taking precedence.

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

/// The `.wasm` files of `dirs` by stem, merged: a module in a later
/// directory (the operator's) hides one of the same name in an earlier
/// one (the shipped modules). A missing directory is skipped quietly when
/// another exists.
pub(super) fn list_modules(dirs: &[&Path]) -> BTreeMap<String, (PathBuf, FileSig)> {
    let mut out = BTreeMap::new();
    let present: Vec<&Path> = dirs.iter().copied().filter(|d| d.is_dir()).collect();
    // Warn (through list_dir) about the operator's directory when none is there.
    let dirs = if present.is_empty() {
        &dirs[dirs.len().saturating_sub(1)..]
    } else {
        &present[..]
    };
    for dir in dirs {
        out.extend(list_dir(dir, "wasm"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operators_module_hides_the_shipped_one_of_its_name() {
        let root = tempfile::tempdir().expect("tempdir");
        let (shipped, ours) = (root.path().join("shipped"), root.path().join("ours"));
        for d in [&shipped, &ours] {
            std::fs::create_dir(d).expect("mkdir");
        }
        std::fs::write(shipped.join("a.wasm"), b"shipped").expect("write");
        std::fs::write(shipped.join("b.wasm"), b"shipped").expect("write");
        std::fs::write(ours.join("b.wasm"), b"the operator's").expect("write");
        std::fs::write(ours.join("c.wasm"), b"c").expect("write");
        let got = list_modules(&[&shipped, &ours]);
        let from: Vec<(&str, PathBuf)> = got
            .iter()
            .map(|(k, (p, _))| (k.as_str(), p.clone()))
            .collect();
        assert_eq!(
            from,
            vec![
                ("a", shipped.join("a.wasm")),
                ("b", ours.join("b.wasm")),
                ("c", ours.join("c.wasm")),
            ]
        );
        // Without the operator's directory the shipped modules still load.
        let got = list_modules(&[&shipped, &root.path().join("missing")]);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["a", "b"]);
    }
}
