//! Where things are: the repository, the shipped provider components, the
//! test fixtures, the `dss` binary, and scratch directories for hosts.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where `scripts/build-providers.sh` installs the shipped providers.
pub fn modules_dir() -> PathBuf {
    let dir = repo_root().join("target/providers");
    assert!(
        dir.join("static-list.wasm").exists(),
        "no provider components in {}: run scripts/build-providers.sh first (scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// A shipped provider component.
pub fn module(name: &str) -> PathBuf {
    modules_dir().join(format!("{name}.wasm"))
}

/// A test fixture component built by `scripts/build-fixtures.sh`.
pub fn fixture(name: &str) -> PathBuf {
    let path = repo_root()
        .join("target/fixtures")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} missing: run scripts/build-fixtures.sh first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The `dss` binary of the same profile as this test.
pub fn dss_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in target/<profile>/deps");
    let bin = profile_dir.join("dss");
    assert!(
        bin.exists(),
        "{} missing: build the host first (cargo build --release -p dss-host)",
        bin.display()
    );
    bin
}

/// A scratch directory for a host's files that the media user (who FFmpeg
/// and nginx's workers run as when tests run as root) may pass through:
/// mode 0711, where a plain temporary directory is 0700.
pub fn scratch_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("dss-test-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod scratch");
    dir
}

/// The browser tests' directory (`tests/browser`), when its
/// `playwright-core` and Debian's `chromium` are installed; `None` (the
/// test skips, saying why) when they are not, except in CI, where
/// `scripts/test.sh` installs them and their absence fails the test.
pub fn browser_dir() -> Option<PathBuf> {
    let dir = repo_root().join("tests/browser");
    let ready = dir.join("node_modules/playwright-core").exists()
        && Path::new("/usr/bin/chromium").exists();
    if ready {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "chromium or playwright-core missing (scripts/test.sh installs them)"
    );
    eprintln!("skipped: chromium or tests/browser/node_modules missing (run scripts/test.sh)");
    None
}

/// Schemathesis (`target/python-tools/bin/st`, pinned by
/// `scripts/python-tools.sh`); `None` (the test skips, saying why) when it
/// is not installed, except in CI, where `scripts/test.sh` installs it.
pub fn schemathesis_bin() -> Option<PathBuf> {
    let st = repo_root().join("target/python-tools/bin/st");
    if st.exists() {
        return Some(st);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "schemathesis missing (scripts/test.sh installs it with scripts/python-tools.sh)"
    );
    eprintln!("skipped: schemathesis missing (run scripts/python-tools.sh)");
    None
}
