//! Loading the module files, each in the background on its own: compiled,
//! or taken from the compile cache, which is kept bounded.

use super::registry::{ModuleSlot, State};
use super::scan::{list_modules, FileSig};
use super::Providers;
use crate::plugin::ProviderModule;
use std::path::PathBuf;
use std::sync::Arc;

impl Providers {
    /// Starts loading every new or changed module file in the background
    /// ([`Providers::load_module`]); forgets removed ones.
    pub(super) fn reconcile_modules(self: &Arc<Self>, state: &mut State) {
        let files = list_modules(&self.config.providers.modules_dirs());
        state.modules.retain(|name, _| {
            let keep = files.contains_key(name);
            if !keep {
                tracing::info!(module = %name, "module removed");
            }
            keep
        });
        for (name, (path, sig)) in files {
            let slot = state.modules.entry(name.clone()).or_insert(ModuleSlot {
                sig: None,
                module: None,
                error: None,
                loading: None,
            });
            let known = match slot.loading {
                Some(loading) => loading == sig,
                None => slot.sig == Some(sig),
            };
            if known {
                continue;
            }
            slot.loading = Some(sig);
            tokio::spawn(self.clone().load_module(name, path, sig));
        }
    }

    /// Loads version `sig` of module `name` (compiled, or taken from the
    /// cache), then brings the instances in line with it; a version
    /// superseded meanwhile (the file changed again, or went) is dropped.
    async fn load_module(self: Arc<Self>, name: String, path: PathBuf, sig: FileSig) {
        let engine = self.engine.clone();
        let limits = self.config.providers.limits.clone();
        let p = path.clone();
        let loaded =
            tokio::task::spawn_blocking(move || ProviderModule::load(&engine, &p, &limits))
                .await
                .map_err(|e| format!("{}: loader panicked: {e}", path.display()))
                .and_then(|r| r.map_err(|e| e.to_string()));
        let mut state = self.state.lock().await;
        let Some(slot) = state.modules.get_mut(&name) else {
            return;
        };
        if slot.loading != Some(sig) {
            return;
        }
        slot.loading = None;
        slot.sig = Some(sig);
        match loaded {
            Ok(m) => {
                tracing::info!(
                    module = %name, version = %m.info.version, interface = %m.interface_version,
                    hash = %&m.hash[..12], origin = ?m.origin, "module loaded"
                );
                slot.module = Some(Arc::new(m));
                slot.error = None;
            }
            Err(e) => {
                tracing::error!(module = %name, error = %e, "module rejected");
                if slot.module.is_some() {
                    tracing::warn!(module = %name, "the previous version keeps serving");
                }
                slot.error = Some(e);
            }
        }
        self.reconcile_instances(&mut state);
        self.prune_cache(&state);
        crate::memory::trim_soon();
    }

    /// Bounds the compile cache once no module is loading (their
    /// artifacts being written are not known yet).
    pub(super) fn prune_cache(&self, state: &State) {
        if state.modules.values().any(|m| m.loading.is_some()) {
            return;
        }
        let present: Vec<(String, Option<String>)> = state
            .modules
            .iter()
            .map(|(name, m)| (name.clone(), m.module.as_ref().map(|m| m.hash.clone())))
            .collect();
        let engine = self.engine.clone();
        // File operations: off the async threads.
        tokio::task::spawn_blocking(move || engine.cache().prune(&present));
    }
}
