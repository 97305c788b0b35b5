//! Reading and checking the instance files `NAME.toml` (a file unchanged
//! since the last scan is not parsed again).

use super::registry::InstanceSlot;
use super::scan::{file_stem, list_dir, FileSig};
use super::Providers;
use crate::config::{ConfigError, InstanceConfig, Limits};
use crate::ffmpeg::SourceGrant;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One instance file, read and checked.
#[derive(Clone)]
pub(super) struct Instance {
    pub(super) id: String,
    pub(super) file: PathBuf,
    /// What tells versions of the file apart (its SHA-256): the text
    /// itself can be megabytes (a static list of 100,000 cameras).
    pub(super) text_hash: String,
    /// Its `[config]` as the JSON every call gets (the parsed table is
    /// dropped: it weighs several times the text).
    pub(super) config_json: Arc<str>,
    pub(super) config: InstanceConfig,
    pub(super) limits: Limits,
    /// What its stream sources may reach.
    pub(super) grant: Arc<SourceGrant>,
}

impl Providers {
    /// The instance files, checked. Of two files claiming one id, the one
    /// already serving it keeps it (else the first by name); the other is
    /// rejected.
    pub(super) fn read_instances(
        &self,
        running: &HashMap<String, InstanceSlot>,
        parsed: &mut HashMap<PathBuf, (FileSig, Result<Instance, Arc<ConfigError>>)>,
    ) -> (Vec<Instance>, Vec<(String, PathBuf, String)>) {
        let dir = &self.config.providers.instances_dir;
        let mut good: Vec<Instance> = Vec::new();
        let mut bad = Vec::new();
        let files = list_dir(dir, "toml");
        parsed.retain(|path, _| files.values().any(|(f, _)| f == path));
        for (stem, (file, sig)) in files {
            let loaded = match parsed.get(&file) {
                Some((known, loaded)) if *known == sig => loaded.clone(),
                _ => {
                    let loaded = self.read_instance(&file);
                    parsed.insert(file.clone(), (sig, loaded.clone()));
                    loaded
                }
            };
            match loaded {
                Ok(mut inst) => {
                    let Some(other) = good.iter_mut().find(|i| i.id == inst.id) else {
                        good.push(inst);
                        continue;
                    };
                    if running.get(&inst.id).is_some_and(|r| r.file == inst.file) {
                        std::mem::swap(other, &mut inst);
                    }
                    let msg = format!(
                        "{}: provider id {:?} is already used by {}",
                        inst.file.display(),
                        inst.id,
                        other.file.display()
                    );
                    let stem = file_stem(&inst.file).unwrap_or(stem);
                    bad.push((stem, inst.file, msg));
                }
                Err(e) => bad.push((stem, file, e.to_string())),
            }
        }
        // A broken file's previous version keeps serving, and its id.
        let broken: Vec<PathBuf> = bad.iter().map(|(_, f, _)| f.clone()).collect();
        let (good, taken): (Vec<Instance>, Vec<Instance>) = good.into_iter().partition(|i| {
            !running
                .get(&i.id)
                .is_some_and(|r| r.file != i.file && broken.contains(&r.file))
        });
        for inst in taken {
            let holder = running.get(&inst.id).map(|r| r.file.display().to_string());
            let msg = format!(
                "{}: provider id {:?} is already used by {}",
                inst.file.display(),
                inst.id,
                holder.unwrap_or_default()
            );
            bad.push((file_stem(&inst.file).unwrap_or_default(), inst.file, msg));
        }
        (good, bad)
    }

    /// Reads and checks instance file `file` (the error is shared by the
    /// parsed files' cache).
    fn read_instance(&self, file: &Path) -> Result<Instance, Arc<ConfigError>> {
        let text_hash = std::fs::read(file)
            .map(|t| crate::plugin::cache::ComponentCache::content_hash(&t))
            .unwrap_or_default();
        let (id, mut config) = InstanceConfig::load(file).map_err(Arc::new)?;
        let invalid = |message: String| {
            Arc::new(ConfigError::Invalid {
                path: file.to_path_buf(),
                message,
            })
        };
        let limits = config
            .limits(&self.config.providers.limits)
            .map_err(|e| invalid(e.to_string()))?;
        let grant = Arc::new(config.source_grant().map_err(|e| invalid(e.to_string()))?);
        let config_json = config.config_json().into();
        config.config = toml::Table::new();
        Ok(Instance {
            id,
            file: file.to_path_buf(),
            text_hash,
            config_json,
            config,
            limits,
            grant,
        })
    }
}
