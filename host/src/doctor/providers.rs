//! The store (reachable) and the provider instances: each file valid,
//! its module there, and the module run against it as `dss providers
//! check` runs it (init, list-streams, the FFmpeg policy on every stream).

use super::{Finding, NeedKind, Needs};
use crate::config::{Config, InstanceConfig};
use crate::plugin::{CallError, PluginEngine};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

/// How long the store gets to answer (MongoDB's driver would wait 30 s
/// for a server to select).
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// The store: MongoDB answers; SQLite's file (when there is one, and it
/// is this user's) opens.
pub(super) async fn store(config: &Config) -> Finding {
    let subject = "store";
    let s = &config.store;
    if s.is_embedded() {
        let path = &s.sqlite_path;
        match std::fs::metadata(path) {
            Err(_) => {
                return Finding::ok(
                    subject,
                    format!("SQLite {} (made at first start)", path.display()),
                )
            }
            // Opening it as another user could leave that user's journal
            // files beside it.
            Ok(m) if m.uid() != crate::privileges::euid() => {
                return Finding::ok(
                    subject,
                    format!("SQLite {} (another user's: not opened)", path.display()),
                )
            }
            Ok(_) => {}
        }
    }
    // One read: MongoDB's driver connects on first use.
    let probe = async {
        let store = dss_store::open(s).await?;
        store.listing_stamp("dss-doctor").await?;
        Ok::<_, dss_store::StoreError>(store)
    };
    match tokio::time::timeout(STORE_TIMEOUT, probe).await {
        Ok(Ok(store)) => Finding::ok(subject, store.describe()),
        Ok(Err(e)) => Finding::fail(
            subject,
            format!("cannot open it: {e}"),
            "check [store] (url for MongoDB, sqlite_path for SQLite) and that the server runs",
        ),
        Err(_) => Finding::fail(
            subject,
            format!("no answer within {} s", STORE_TIMEOUT.as_secs()),
            "check [store] url and that MongoDB runs and is reachable from here",
        ),
    }
}

/// Every instance file: valid, its module there, the module's check
/// passed; each finding given to `add` as it comes. Returns what the
/// listed streams need of FFmpeg.
pub(super) async fn instances(config: &Config, add: &mut dyn FnMut(Finding)) -> Needs {
    let mut needs = Needs::default();
    // What the host itself needs: publishing to nginx, and reading the
    // phones' FIFOs.
    needs.add(NeedKind::Format, "flv", "the host");
    needs.add(NeedKind::Protocol, "rtmp", "the host");
    let mut files: Vec<_> = match std::fs::read_dir(&config.providers.instances_dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        // `directories` said so already.
        Err(_) => return needs,
    };
    files.sort();
    let modules = crate::providers::module_files(&config.providers);
    let engine = match engine(config) {
        Ok(e) => e,
        Err(e) => {
            add(Finding::fail(
                "providers",
                format!("cannot create the Wasm engine: {e:#}"),
                "check [providers] extra_ca_file",
            ));
            return needs;
        }
    };
    for file in files {
        let (id, inst) = match InstanceConfig::load(&file) {
            Ok(loaded) => loaded,
            Err(e) => {
                add(Finding::fail(
                    format!("instance {}", file.display()),
                    e.to_string(),
                    "correct the file (the README lists an instance's keys)",
                ));
                continue;
            }
        };
        let subject = format!("provider {id}");
        if !inst.enabled {
            add(Finding::ok(subject, "disabled (enabled = false)"));
            continue;
        }
        let Some(module) = modules.get(&inst.module).cloned() else {
            add(Finding::fail(
                subject,
                format!("module {:?} not found", inst.module),
                format!(
                    "put {}.wasm in {}, or correct `module` in {}",
                    inst.module,
                    config.providers.modules_dir.display(),
                    file.display()
                ),
            ));
            continue;
        };
        let hint = format!(
            "`dss providers check {} --instance {}` tells more",
            module.display(),
            file.display()
        );
        let (engine, config2) = (engine.clone(), config.clone());
        let instance = (id.clone(), inst);
        let checked = tokio::task::spawn_blocking(move || {
            crate::providers::check::check(&engine, &config2, &module, Some(&instance))
        })
        .await;
        let checked = match checked {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                add(Finding::fail(subject, format!("{e:#}"), hint));
                continue;
            }
            Err(e) => {
                add(Finding::fail(
                    subject,
                    format!("the check panicked: {e}"),
                    "report it",
                ));
                continue;
            }
        };
        let version = format!(
            "{} {}",
            checked.module.info.name, checked.module.info.version
        );
        match checked.listing {
            Some(Ok(listing)) => {
                let refused: Vec<String> = listing
                    .entries
                    .iter()
                    .filter_map(|e| Some(format!("{}: {}", e.id, e.refusal()?)))
                    .collect();
                for e in &listing.entries {
                    if let Ok(plan) = &e.plan {
                        if plan.is_ingest() {
                            needs.add(NeedKind::Format, "mpegts", &id);
                            needs.add(NeedKind::Protocol, "file", &id);
                        } else {
                            needs.add_argv(&id, &crate::ffmpeg::argv(plan, "rtmp://127.0.0.1/x"));
                        }
                    }
                }
                if refused.is_empty() {
                    add(Finding::ok(
                        subject,
                        format!("{version}: {} streams listed", listing.entries.len()),
                    ));
                } else {
                    add(Finding::fail(
                        subject,
                        format!(
                            "{version}: the FFmpeg policy refuses {} of {} streams (first: {})",
                            refused.len(),
                            listing.entries.len(),
                            refused[0]
                        ),
                        "grant the sources in the instance file (allow_sources, allow_private) or correct the provider's options",
                    ));
                }
            }
            // An upstream that does not answer now is no misconfiguration:
            // the host retries with backoff.
            Some(Err(e @ CallError::Guest { .. })) => add(Finding::warn(
                subject,
                format!("{version}: cannot list now: {e}"),
                "check that the provider's upstream answers from this machine (the host retries meanwhile)",
            )),
            Some(Err(e)) => add(Finding::fail(
                subject,
                format!("{version}: list-streams failed: {e}"),
                "raise the instance's [limits], or report it to the provider's authors",
            )),
            None => add(Finding::ok(subject, version)),
        }
    }
    needs
}

/// An engine for the checks that writes nothing of the host's: its
/// compile cache is used only when it is this user's (it is shared with
/// `dss serve`, which must be able to replace what is in it).
fn engine(config: &Config) -> anyhow::Result<Arc<PluginEngine>> {
    let cache = config.module_cache_dir();
    let own = std::fs::metadata(&cache).is_ok_and(|m| m.uid() == crate::privileges::euid());
    let http = crate::plugin::http::HttpClient::new(config.providers.extra_ca_file.as_deref())
        .map_err(|e| anyhow::anyhow!("[providers] {e}"))?;
    // Pooling, as `dss serve`'s engine: the cached artifacts are compiled
    // for it.
    PluginEngine::with_http(own.then_some(cache), true, http).map_err(|e| anyhow::anyhow!("{e:?}"))
}
