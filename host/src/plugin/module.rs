//! A loaded provider module: a `.wasm` file checked, compiled (or taken
//! from the cache), its interface version verified and its imports resolved
//! into an `InstancePre`; and the typed calls made on fresh instances of it.

use super::bindings::{self, v0_1, v0_2, GuestError};
use super::cache::{ComponentCache, Origin};
use super::call::{self, CallError, CallReport, CallState};
use super::http::HttpGate;
use super::PluginEngine;
use crate::config::Limits;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use wasmtime::component::types::ComponentItem;

/// The interface package this host implements.
pub const INTERFACE: &str = "dss:provider";
/// The newest interface version this host implements.
pub const INTERFACE_VERSION: (u64, u64, u64) = (0, 2, 0);
/// Every interface version this host serves, as `(major, minor)`: a
/// module of any of them loads (0.x versions are compatible within a
/// minor version, as semver says).
pub const SERVED_VERSIONS: &[(u64, u64)] = &[(0, 1), (0, 2)];
/// Largest `.wasm` file accepted.
pub const MAX_MODULE_BYTES: u64 = 64 * 1024 * 1024;

/// Why a module could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: cannot read: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not a WebAssembly component.
    #[error("{path}: {reason}")]
    NotComponent {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },
    /// Compilation failed (invalid or unsupported Wasm).
    #[error("{path}: invalid component: {message}")]
    Compile {
        /// The file.
        path: PathBuf,
        /// wasmtime's message.
        message: String,
    },
    /// The component does not export the provider interface.
    #[error("{path}: not a DSS provider: it does not export {INTERFACE}/provider (its exports: {exports})")]
    NotProvider {
        /// The file.
        path: PathBuf,
        /// What it exports.
        exports: String,
    },
    /// The component targets an interface version this host does not know.
    #[error("{path}: targets {INTERFACE}@{found}, but this host supports {supported}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version it targets.
        found: String,
        /// What this host supports.
        supported: String,
    },
    /// Its imports cannot be satisfied (it wants something not granted).
    #[error("{path}: imports something the host does not grant: {message}")]
    Link {
        /// The file.
        path: PathBuf,
        /// wasmtime's message.
        message: String,
    },
    /// `describe` failed.
    #[error("{path}: describe failed: {error}")]
    Describe {
        /// The file.
        path: PathBuf,
        /// Why.
        error: CallError,
    },
}

/// A provider's self-description (from `describe` or `init`): the SDK's
/// own type, so the host and the providers cannot drift apart.
pub use dss_provider_sdk::ProviderInfo as ModuleInfo;

impl From<bindings::ProviderInfo> for ModuleInfo {
    fn from(p: bindings::ProviderInfo) -> Self {
        ModuleInfo {
            name: p.name,
            version: p.version,
            description: p.description,
            input_options: p.input_options,
            output_options: p.output_options,
            refresh_seconds: p.refresh_seconds,
            extra: p.extra.into_iter().map(|t| (t.key, t.value)).collect(),
        }
    }
}

/// What a call is granted: whose it is, its limits and its HTTP hosts.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The provider instance id (for log attribution).
    pub provider: Arc<str>,
    /// Limits of each call.
    pub limits: Limits,
    /// Hosts `http-get` may reach.
    pub allow_hosts: Arc<[String]>,
    /// Whether host names may resolve to private addresses.
    pub allow_private: bool,
    /// Values request headers may name.
    pub secrets: Arc<crate::secrets::Secrets>,
}

impl Grant {
    /// A grant with no HTTP hosts.
    pub fn new(provider: &str, limits: Limits) -> Self {
        Grant {
            provider: provider.into(),
            limits,
            allow_hosts: Arc::from(Vec::new()),
            allow_private: false,
            secrets: Arc::default(),
        }
    }
}

/// A module ready to be instantiated.
pub struct ProviderModule {
    /// Module name (file stem).
    pub name: String,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// SHA-256 of the file, hex.
    pub hash: String,
    /// The interface version it exports (`0.1.0`, `0.2.0`).
    pub interface_version: String,
    /// What `describe` returned.
    pub info: ModuleInfo,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// Whether compilation was skipped thanks to the cache.
    pub origin: Origin,
    pre: Pre,
    engine: Arc<PluginEngine>,
}

/// The prepared component, by the interface version it exports.
enum Pre {
    V0_1(v0_1::DssProviderPre<CallState>),
    V0_2(v0_2::DssProviderPre<CallState>),
}

/// A fresh instance, by interface version.
enum Instance {
    V0_1(v0_1::DssProvider),
    V0_2(v0_2::DssProvider),
}

impl std::fmt::Debug for ProviderModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderModule")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Checks the first bytes: a component, not a core module or something else.
fn check_header(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    let not = |reason: &str| LoadError::NotComponent {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if bytes.is_empty() {
        return Err(not("empty file"));
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(not("not a WebAssembly file (no \\0asm header)"));
    }
    match bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err(not(
            "a core WebAssembly module, not a component: build it for wasm32-wasip2",
        )),
        _ => Err(not("unknown WebAssembly version or layer")),
    }
}

/// Finds the exported provider interface and its version.
fn interface_version(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
    path: &Path,
) -> Result<String, LoadError> {
    let ty = component.component_type();
    let mut names = Vec::new();
    let mut found = None;
    for (name, item) in ty.exports(engine) {
        names.push(name.to_string());
        if let (Some(version), ComponentItem::ComponentInstance(_)) = (
            name.strip_prefix(&format!("{INTERFACE}/provider@")),
            &item.ty,
        ) {
            found = Some(version.to_string());
        }
    }
    let Some(version) = found else {
        return Err(LoadError::NotProvider {
            path: path.to_path_buf(),
            exports: if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            },
        });
    };
    let parts: Vec<u64> = version
        .split(['.', '-', '+'])
        .take(2)
        .filter_map(|p| p.parse().ok())
        .collect();
    // Semver: 0.x versions are compatible within a minor version, others
    // within a major one.
    let compatible = match parts.as_slice() {
        [0, m] => SERVED_VERSIONS.contains(&(0, *m)),
        [m, _] => SERVED_VERSIONS.iter().any(|(maj, _)| maj == m),
        _ => false,
    };
    if !compatible {
        return Err(LoadError::Version {
            path: path.to_path_buf(),
            found: version,
            supported: served_versions(),
        });
    }
    Ok(version)
}

/// `dss:provider@0.1.x and dss:provider@0.2.x`, for messages.
pub fn served_versions() -> String {
    let names: Vec<String> = SERVED_VERSIONS
        .iter()
        .map(|(maj, min)| {
            if *maj == 0 {
                format!("{INTERFACE}@0.{min}.x")
            } else {
                format!("{INTERFACE}@{maj}.x")
            }
        })
        .collect();
    names.join(" and ")
}

impl ProviderModule {
    /// Loads, validates and prepares the module at `path`, then calls
    /// `describe` on it under `limits`.
    pub fn load(
        engine: &Arc<PluginEngine>,
        path: &Path,
        limits: &Limits,
    ) -> Result<ProviderModule, LoadError> {
        let read = |error| LoadError::Read {
            path: path.to_path_buf(),
            error,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        if meta.len() > MAX_MODULE_BYTES {
            return Err(LoadError::NotComponent {
                path: path.to_path_buf(),
                reason: format!(
                    "{} bytes is larger than the limit of {MAX_MODULE_BYTES}",
                    meta.len()
                ),
            });
        }
        let bytes = std::fs::read(path).map_err(read)?;
        Self::from_bytes(engine, path, &bytes, limits)
    }

    /// [`ProviderModule::load`] from bytes already read from `path`.
    pub fn from_bytes(
        engine: &Arc<PluginEngine>,
        path: &Path,
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<ProviderModule, LoadError> {
        check_header(path, bytes)?;
        let hash = ComponentCache::content_hash(bytes);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (component, origin) = engine
            .cache
            .get_or_compile(&engine.engine, &name, &hash, bytes)
            .map_err(|e| LoadError::Compile {
                path: path.to_path_buf(),
                message: format!("{e:?}"),
            })?;
        let interface_version = interface_version(&engine.engine, &component, path)?;
        let link = |e: wasmtime::Error| LoadError::Link {
            path: path.to_path_buf(),
            message: format!("{e}"),
        };
        let pre = engine.linker.instantiate_pre(&component).map_err(link)?;
        let pre = if interface_version.starts_with("0.1.") {
            Pre::V0_1(v0_1::DssProviderPre::new(pre).map_err(link)?)
        } else {
            Pre::V0_2(v0_2::DssProviderPre::new(pre).map_err(link)?)
        };
        let mut module = ProviderModule {
            name,
            path: path.to_path_buf(),
            hash,
            interface_version,
            info: ModuleInfo {
                output_options: Vec::new(),
                ..ModuleInfo::new("", "", "")
            },
            loaded_at: SystemTime::now(),
            origin,
            pre,
            engine: engine.clone(),
        };
        let grant = Grant::new(&format!("module {}", module.name), limits.clone());
        let (info, _) = module
            .describe(&grant)
            .map_err(|error| LoadError::Describe {
                path: path.to_path_buf(),
                error,
            })?;
        module.info = info;
        Ok(module)
    }

    /// Runs `f` on a fresh instance under `grant`. Blocking: call from a
    /// blocking thread (it may wait on `http-get`).
    fn call<R>(
        &self,
        grant: &Grant,
        f: impl FnOnce(
            &Instance,
            &mut wasmtime::Store<CallState>,
        ) -> wasmtime::Result<Result<R, GuestError>>,
    ) -> Result<(R, CallReport), CallError> {
        let http = HttpGate::new(
            self.engine.http.clone(),
            grant.allow_hosts.clone(),
            grant.allow_private,
            &grant.limits,
        )
        .with_secrets(grant.secrets.clone());
        let state = CallState::new(grant.provider.clone(), grant.limits.clone(), http);
        let mut store = call::new_store(&self.engine.engine, state);
        let instance = match &self.pre {
            Pre::V0_1(pre) => pre.instantiate(&mut store).map(Instance::V0_1),
            Pre::V0_2(pre) => pre.instantiate(&mut store).map(Instance::V0_2),
        };
        let instance = match instance {
            Ok(i) => i,
            Err(e) => {
                let err = call::classify(&store, e);
                return Err(match err {
                    CallError::Trap(m) => CallError::Instantiate(m),
                    other => other,
                });
            }
        };
        let result = f(&instance, &mut store);
        call::log_stderr(&store);
        let report = call::report(&store);
        match result {
            Ok(Ok(r)) => Ok((r, report)),
            Ok(Err(guest)) => Err(guest.into()),
            Err(e) => Err(call::classify(&store, e)),
        }
    }

    /// `describe`.
    pub fn describe(&self, grant: &Grant) -> Result<(ModuleInfo, CallReport), CallError> {
        self.call(grant, |i, s| match i {
            Instance::V0_1(p) => p
                .dss_provider_provider()
                .call_describe(s)
                .map(|x| Ok(x.into())),
            Instance::V0_2(p) => p.dss_provider_provider().call_describe(s).map(Ok),
        })
        .map(|(i, r)| (i.into(), r))
    }

    /// `init` with the instance configuration (JSON).
    pub fn init(&self, grant: &Grant, config: &str) -> Result<(ModuleInfo, CallReport), CallError> {
        self.call(grant, |i, s| match i {
            Instance::V0_1(p) => p
                .dss_provider_provider()
                .call_init(s, config)
                .map(|r| r.map(Into::into).map_err(Into::into)),
            Instance::V0_2(p) => p.dss_provider_provider().call_init(s, config),
        })
        .map(|(i, r)| (i.into(), r))
    }

    /// `list-streams` with the instance configuration (JSON).
    pub fn list_streams(
        &self,
        grant: &Grant,
        config: &str,
    ) -> Result<(Vec<bindings::StreamSource>, CallReport), CallError> {
        self.call(grant, |i, s| match i {
            Instance::V0_1(p) => p
                .dss_provider_provider()
                .call_list_streams(s, config)
                .map(|r| {
                    r.map(|v| v.into_iter().map(Into::into).collect())
                        .map_err(Into::into)
                }),
            Instance::V0_2(p) => p.dss_provider_provider().call_list_streams(s, config),
        })
    }

    /// `transform-metadata`.
    pub fn transform_metadata(
        &self,
        grant: &Grant,
        config: &str,
        key: &str,
        metadata: &str,
    ) -> Result<(String, CallReport), CallError> {
        self.call(grant, |i, s| match i {
            Instance::V0_1(p) => p
                .dss_provider_provider()
                .call_transform_metadata(s, config, key, metadata)
                .map(|r| r.map_err(Into::into)),
            Instance::V0_2(p) => p
                .dss_provider_provider()
                .call_transform_metadata(s, config, key, metadata),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_told_apart() {
        let p = Path::new("x.wasm");
        let msg = |b: &[u8]| check_header(p, b).unwrap_err().to_string();
        assert!(msg(b"").contains("empty"));
        assert!(msg(b"hello world, I am text").contains("not a WebAssembly"));
        assert!(msg(b"\0asm\x01\0\0\0").contains("core WebAssembly module"));
        assert!(check_header(p, b"\0asm\x0d\0\x01\0").is_ok());
    }
}
