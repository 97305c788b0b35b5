//! `dss providers new NAME`: a provider crate that builds and passes
//! `dss providers check` unchanged (Cargo.toml, src/lib.rs with the SDK and
//! a test, an instance file, a README).

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("scaffold/Cargo.toml.in");
const LIB_RS: &str = include_str!("scaffold/lib.rs.in");
const INSTANCE: &str = include_str!("scaffold/instance.toml.in");
const README: &str = include_str!("scaffold/README.md.in");

/// Finds the SDK: the flag, else `./provider-sdk`, else beside the binary
/// of a repository build (`target/<profile>/dss`).
pub fn find_sdk(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
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
        if c.join("Cargo.toml").exists() && c.join("wit").exists() {
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

/// Creates the crate of provider `name` in `dir`.
pub fn create(name: &str, dir: &Path, sdk: &Path) -> anyhow::Result<()> {
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
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("creating {}", dir.display()))?;
    for (file, template) in [
        ("Cargo.toml", CARGO_TOML),
        ("src/lib.rs", LIB_RS),
        ("instance.toml", INSTANCE),
        ("README.md", README),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, fill(template))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
