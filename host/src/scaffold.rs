//! `dss providers new NAME --lang rust|js|python`: a provider project that
//! builds with one command and passes `dss providers check` unchanged: the
//! code on the language's SDK (`provider-sdk/`, `provider-sdk/js/`,
//! `provider-sdk/python/`), a native test, an instance file, a README.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// The language of a new provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust on `provider-sdk` (the smallest and fastest components).
    Rust,
    /// JavaScript on `provider-sdk/js` (ComponentizeJS).
    Js,
    /// Python on `provider-sdk/python` (componentize-py).
    Python,
}

/// A template file: where it goes in the project and its text.
type Template = (&'static str, &'static str);

const RUST: &[Template] = &[
    ("Cargo.toml", include_str!("scaffold/Cargo.toml.in")),
    ("src/lib.rs", include_str!("scaffold/lib.rs.in")),
    ("instance.toml", include_str!("scaffold/instance.toml.in")),
    ("README.md", include_str!("scaffold/README.md.in")),
];

const JS: &[Template] = &[
    ("package.json", include_str!("scaffold/js/package.json.in")),
    (
        "src/{{name}}.js",
        include_str!("scaffold/js/provider.js.in"),
    ),
    (
        "test/{{name}}.test.js",
        include_str!("scaffold/js/provider.test.js.in"),
    ),
    (
        "instance.toml",
        include_str!("scaffold/js/instance.toml.in"),
    ),
    ("README.md", include_str!("scaffold/js/README.md.in")),
    (".gitignore", include_str!("scaffold/js/gitignore.in")),
];

const PYTHON: &[Template] = &[
    ("app.py", include_str!("scaffold/python/app.py.in")),
    (
        "test_app.py",
        include_str!("scaffold/python/test_app.py.in"),
    ),
    ("build.sh", include_str!("scaffold/python/build.sh.in")),
    (
        "instance.toml",
        include_str!("scaffold/python/instance.toml.in"),
    ),
    ("README.md", include_str!("scaffold/python/README.md.in")),
    (".gitignore", include_str!("scaffold/python/gitignore.in")),
];

impl Lang {
    fn templates(self) -> &'static [Template] {
        match self {
            Lang::Rust => RUST,
            Lang::Js => JS,
            Lang::Python => PYTHON,
        }
    }

    /// The SDK file that must exist for this language.
    fn sdk_marker(self) -> &'static str {
        match self {
            Lang::Rust => "Cargo.toml",
            Lang::Js => "js/package.json",
            Lang::Python => "python/dss_provider/__init__.py",
        }
    }

    /// What to run next, in the project directory.
    pub fn next_steps(self) -> &'static str {
        match self {
            Lang::Rust => "cargo test && cargo build --release --target wasm32-wasip2",
            Lang::Js => "npm install && npm test && npm run build",
            Lang::Python => "python3 -m unittest && ./build.sh",
        }
    }
}

/// Finds the SDK: the flag, else `./provider-sdk`, else beside the binary
/// of a repository build (`target/<profile>/dss`).
pub fn find_sdk(flag: Option<&Path>, lang: Lang) -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = match flag {
        Some(p) => vec![p.to_path_buf()],
        None => {
            let mut c = vec![PathBuf::from("provider-sdk")];
            if let Ok(exe) = std::env::current_exe() {
                if let Some(root) = exe.ancestors().nth(3) {
                    c.push(root.join("provider-sdk"));
                }
            }
            c
        }
    };
    for c in &candidates {
        if c.join(lang.sdk_marker()).exists() && c.join("wit").exists() {
            return std::path::absolute(c).context("resolving the SDK path");
        }
    }
    bail!(
        "the provider SDK was not found (looked in {}); pass --sdk PATH/TO/provider-sdk",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Creates the project of provider `name` in `dir`.
pub fn create(name: &str, dir: &Path, sdk: &Path, lang: Lang) -> anyhow::Result<()> {
    let valid = name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!("invalid provider name {name:?}: use lowercase letters, digits and '-', starting with a letter");
    }
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{} exists and is not empty", dir.display());
    }
    let crate_name = name.replace('-', "_");
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{sdk}}", &sdk.display().to_string())
    };
    for (file, template) in lang.templates() {
        let path = dir.join(fill(file));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, fill(template))
            .with_context(|| format!("writing {}", path.display()))?;
        if file.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("making {} executable", path.display()))?;
        }
    }
    Ok(())
}
