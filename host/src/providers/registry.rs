//! The registry of modules and instances: a slot per module file and per
//! instance, and bringing the running instances in line with the instance
//! files (start, restart, stop, report the rejected).

use super::instance_files::Instance;
use super::scan::FileSig;
use super::Providers;
use crate::catalog::{ProviderState, ProviderStatus};
use crate::config::ConfigError;
use crate::plugin::ProviderModule;
use crate::sync::lock;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// A module file: the version serving, and one being loaded.
pub(super) struct ModuleSlot {
    /// The file version last loaded or refused.
    pub(super) sig: Option<FileSig>,
    /// The version serving (the last that loaded).
    pub(super) module: Option<Arc<ProviderModule>>,
    /// Why the last version tried was refused.
    pub(super) error: Option<String>,
    /// A version being loaded in the background (compiling, for a new
    /// module): its instances wait for it; the previous version, if any,
    /// keeps serving.
    pub(super) loading: Option<FileSig>,
}

/// The task serving an instance before a change was validated: the new
/// version's task aborts it once its first listing succeeds.
pub(super) type Predecessor = Arc<std::sync::Mutex<Option<JoinHandle<()>>>>;

/// A running instance (or one shown failed or disabled).
pub(super) struct InstanceSlot {
    /// The instance file (the slot is keyed by id, which `prefix` may set).
    pub(super) file: PathBuf,
    /// The instance file's hash and the module hash it runs with.
    pub(super) fingerprint: (String, Option<String>),
    pub(super) task: Option<JoinHandle<()>>,
    /// Still serving until `task` has validated the new version.
    pub(super) predecessor: Predecessor,
    /// `task` only serves the persisted listing while the module is
    /// loaded: replaced (not a predecessor) when it is.
    pub(super) awaiting_module: bool,
}

impl InstanceSlot {
    /// Takes the task that is actually serving (the predecessor when the
    /// current task has not validated yet, which is then abandoned).
    fn take_serving(&mut self) -> Option<JoinHandle<()>> {
        let pending = lock(&self.predecessor).take();
        match pending {
            Some(serving) => {
                if let Some(t) = self.task.take() {
                    t.abort();
                }
                Some(serving)
            }
            None => self.task.take(),
        }
    }
}

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(t) = lock(&self.predecessor).take() {
            t.abort();
        }
    }
}

/// The module and instance slots, and what the instance files were.
#[derive(Default)]
pub(super) struct State {
    pub(super) modules: HashMap<String, ModuleSlot>,
    pub(super) instances: HashMap<String, InstanceSlot>,
    /// Instance files as last read, by path: a file whose size and time
    /// are unchanged is not read and parsed again (the rescan every few
    /// seconds would otherwise parse a 100,000-camera list each time).
    pub(super) parsed: HashMap<PathBuf, (FileSig, Result<Instance, Arc<ConfigError>>)>,
    /// Ids shown only to report a rejected new file: removed with it.
    pub(super) rejected: Vec<String>,
}

impl Providers {
    /// Starts, restarts or stops instances so that they match the instance
    /// files; rejected files are reported.
    pub(super) fn reconcile_instances(self: &Arc<Self>, state: &mut State) {
        let (instances, bad) = self.read_instances(&state.instances, &mut state.parsed);
        let wanted: BTreeMap<&str, &Instance> =
            instances.iter().map(|i| (i.id.as_str(), i)).collect();
        let broken = self.report_rejected(state, &bad, &wanted);
        self.remove_unwanted(state, &wanted, &broken);
        for inst in instances {
            self.reconcile_instance(state, inst);
        }
    }

    /// Reports rejected instance files: one that a running instance came
    /// from leaves it running (its id is among those returned), a new one
    /// is shown failed under its name; what was shown for a rejected file
    /// that went is removed.
    fn report_rejected(
        &self,
        state: &mut State,
        bad: &[(String, PathBuf, String)],
        wanted: &BTreeMap<&str, &Instance>,
    ) -> Vec<String> {
        // Running instances whose file is broken now: they keep going.
        let mut broken: Vec<String> = Vec::new();
        let previously_rejected = std::mem::take(&mut state.rejected);
        for (stem, file, error) in bad {
            tracing::error!(%error, "provider instance rejected");
            // Found by file, not by name: `prefix` may differ from it.
            let running = state.instances.iter().find(|(_, s)| &s.file == file);
            if let Some((id, _)) = running {
                self.catalog
                    .edit_status(id, |s| s.last_error = Some(error.clone()));
                broken.push(id.clone());
                continue;
            }
            // A new file: reported under its name, if no other uses it.
            let id = stem.to_lowercase();
            let free = |id: &str| {
                !state.instances.contains_key(id)
                    && !wanted.contains_key(id)
                    && !state.rejected.iter().any(|r| r == id)
            };
            let id = if crate::ids::check_provider_id(&id).is_ok() && free(&id) {
                id
            } else {
                let n = state.instances.len() + state.rejected.len() + 1;
                (n..)
                    .map(|n| format!("invalid_{n}"))
                    .find(|id| free(id))
                    .unwrap_or_default()
            };
            self.catalog
                .set_status(failed_status(&id, "?", file, error.clone()));
            state.rejected.push(id);
        }
        for id in previously_rejected {
            let gone = !state.rejected.contains(&id)
                && !state.instances.contains_key(&id)
                && !wanted.contains_key(id.as_str());
            if gone {
                self.catalog.remove_provider(&id);
            }
        }
        broken
    }

    /// Removes the running instances that no file wants any more, except
    /// those whose file is `broken` now (they keep going).
    fn remove_unwanted(
        &self,
        state: &mut State,
        wanted: &BTreeMap<&str, &Instance>,
        broken: &[String],
    ) {
        state.instances.retain(|id, _| {
            let keep = wanted.contains_key(id.as_str()) || broken.contains(id);
            if !keep {
                tracing::info!(provider = %id, "provider instance removed");
                // Its streams' memory goes back to the system.
                crate::memory::trim_soon();
                self.catalog.remove_provider(id);
                lock(&self.serving).remove(id);
                self.release_refresh(id);
            }
            keep
        });
    }

    /// Brings instance `inst` in line with its file and its module: left
    /// alone when neither changed, else started (taking over from the
    /// version running), waiting for its module, disabled, or failed.
    fn reconcile_instance(self: &Arc<Self>, state: &mut State, inst: Instance) {
        let slot = state.modules.get(&inst.config.module);
        let module = slot.and_then(|s| s.module.clone());
        let fingerprint = (
            inst.text_hash.clone(),
            module.as_ref().map(|m| m.hash.clone()),
        );
        let module_loading = slot.is_some_and(|s| s.loading.is_some());
        if let Some(running) = state.instances.get(&inst.id) {
            // One waiting for its module is done waiting once the
            // module has loaded or failed.
            let waited = running.awaiting_module && !module_loading;
            if running.fingerprint == fingerprint && running.file == inst.file && !waited {
                // Unchanged; but a rejected update of its module is news.
                if let (Some(err), Some(_)) = (slot.and_then(|s| s.error.clone()), &module) {
                    self.catalog.edit_status(&inst.id, |s| {
                        s.last_error = Some(format!(
                            "module update rejected, the previous version keeps serving: {err}"
                        ))
                    });
                }
                return;
            }
        }
        let id = inst.id.clone();
        let file = inst.file.clone();
        let predecessor: Predecessor = Arc::default();
        let mut awaiting_module = false;
        let task = if !inst.config.enabled {
            self.show_disabled(&inst);
            None
        } else if let Some(module) = module {
            // A running instance keeps serving until the new version
            // (config or module) has listed successfully; one that
            // only waited for its module is replaced at once.
            let mut after_placeholder = false;
            let serving = match state.instances.get_mut(&id) {
                Some(r) if r.awaiting_module => {
                    if let Some(t) = r.task.take() {
                        t.abort();
                    }
                    after_placeholder = true;
                    None
                }
                Some(r) => r.take_serving(),
                None => None,
            };
            *lock(&predecessor) = serving;
            let me = self.clone();
            let pred = predecessor.clone();
            Some(tokio::spawn(async move {
                me.run_instance(inst, module, pred, after_placeholder).await
            }))
        } else if module_loading {
            // Its module is compiling: what was listed before serves
            // meanwhile; a first use waits for the rest (bounded).
            awaiting_module = true;
            let me = self.clone();
            Some(tokio::spawn(async move { me.await_module(inst).await }))
        } else {
            self.show_without_module(&inst, slot.and_then(|s| s.error.clone()));
            None
        };
        state.instances.insert(
            id,
            InstanceSlot {
                file,
                fingerprint,
                task,
                predecessor,
                awaiting_module,
            },
        );
    }

    /// Shows instance `inst` disabled (`enabled = false`): no streams.
    fn show_disabled(&self, inst: &Instance) {
        let id = &inst.id;
        self.catalog.replace_streams(id, Vec::new());
        let mut st = failed_status(id, &inst.config.module, &inst.file, String::new());
        st.state = ProviderState::Disabled;
        st.last_error = None;
        self.catalog.set_status(st);
        self.release_refresh(id);
    }

    /// Shows instance `inst` failed for want of its module: the module
    /// was refused (`error`), or there is no such module file.
    fn show_without_module(&self, inst: &Instance, error: Option<String>) {
        let id = &inst.id;
        let why = match error {
            Some(e) => e,
            None => format!(
                "module {:?} not found: no {}.wasm in {}",
                inst.config.module,
                inst.config.module,
                self.config
                    .providers
                    .modules_dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        };
        tracing::error!(provider = %id, "{why}");
        self.catalog
            .set_status(failed_status(id, &inst.config.module, &inst.file, why));
        self.release_refresh(id);
    }
}

/// The status of instance `id` (module `module`, file `file`) refused for
/// `error`; a base the other states start from.
pub(super) fn failed_status(id: &str, module: &str, file: &Path, error: String) -> ProviderStatus {
    ProviderStatus {
        id: id.to_string(),
        module: module.to_string(),
        file: file.display().to_string(),
        state: ProviderState::Failed,
        version: None,
        interface_version: None,
        module_hash: None,
        info: None,
        stream_count: 0,
        last_error: Some(error),
        warnings: Vec::new(),
        loaded_at_ms: None,
        refreshed_at_ms: None,
        refreshed_by: None,
        listing_source: None,
        listing_fetched_at_ms: None,
        stale: false,
        lazy_pending: false,
        thumbnails: Default::default(),
        record: None,
    }
}
