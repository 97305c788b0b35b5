//! One module run once, outside the host: loaded, initialised with an
//! instance's configuration and grant, its streams listed and put through
//! the FFmpeg policy, as `dss providers check` and `dss doctor` do.

use crate::catalog::StreamEntry;
use crate::config::{Config, InstanceConfig, Limits};
use crate::ffmpeg::SourceGrant;
use crate::plugin::module::Grant;
use crate::plugin::{CallError, CallReport, PluginEngine, ProviderModule};
use anyhow::{anyhow, bail};
use std::path::Path;
use std::sync::Arc;

/// An instance to check a module against: its id and its file's settings.
pub type CheckedInstance = (String, InstanceConfig);

/// What a check found.
pub struct Checked {
    /// The module, loaded.
    pub module: ProviderModule,
    /// The limits of its calls.
    pub limits: Limits,
    /// `init`'s report, or (without an instance) why an empty configuration
    /// does not do, which is no fault of the module.
    pub init: Result<CallReport, String>,
    /// `list-streams`' report and what the policy made of the listing, or
    /// why the call failed (none without an instance's configuration).
    pub listing: Option<Result<Listing, CallError>>,
}

/// A listing, checked.
pub struct Listing {
    /// `list-streams`' report.
    pub report: CallReport,
    /// The streams, each with its plan or refusal.
    pub entries: Vec<StreamEntry>,
    /// What the listing's check warned of.
    pub warnings: Vec<String>,
}

/// Loads module `file` and runs it against `instance` (or an empty
/// configuration): the error says which step failed and why. Blocking
/// (it compiles).
pub fn check(
    engine: &Arc<PluginEngine>,
    config: &Config,
    file: &Path,
    instance: Option<&CheckedInstance>,
) -> anyhow::Result<Checked> {
    let (id, config_json, limits, grant, source_grant) = match instance {
        Some((id, inst)) => (
            id.clone(),
            inst.config_json(),
            inst.limits(&config.providers.limits)
                .map_err(|e| anyhow!("instance {id}: {e}"))?,
            Some(inst),
            inst.source_grant().map_err(|e| anyhow!("{e}"))?,
        ),
        None => (
            "check".to_string(),
            "{}".to_string(),
            config.providers.limits.clone(),
            None,
            SourceGrant::default(),
        ),
    };
    let call_grant = Grant {
        provider: Arc::from(id.as_str()),
        limits: limits.clone(),
        allow_hosts: Arc::from(grant.map(|i| i.allow_hosts.clone()).unwrap_or_default()),
        allow_private: grant.is_some_and(|i| i.allow_private),
        secrets: grant.map(|i| i.secret_values.clone()).unwrap_or_default(),
    };
    let module = ProviderModule::load(engine, file, &limits)?;
    let info = match module.init(&call_grant, &config_json) {
        Ok((info, r)) => (info, r),
        Err(CallError::Guest {
            code: "invalid-config",
            message,
        }) if instance.is_none() => {
            return Ok(Checked {
                module,
                limits,
                init: Err(message),
                listing: None,
            })
        }
        Err(e) => bail!("init failed: {e}"),
    };
    let (info, init_report) = info;
    let (streams, report) = match module.list_streams(&call_grant, &config_json) {
        Ok(listed) => listed,
        Err(e) => {
            return Ok(Checked {
                module,
                limits,
                init: Ok(init_report),
                listing: Some(Err(e)),
            })
        }
    };
    let (input_override, output_override) = match grant {
        Some(i) => (i.input_options.clone(), i.output_options.clone()),
        None => (None, None),
    };
    let options = crate::catalog::Options::new(
        input_override.unwrap_or_else(|| info.input_options.clone()),
        output_override.unwrap_or_else(|| info.output_options.clone()),
        Arc::new(source_grant),
        // Phones (`pipe:0`) are fed by the host's ingest.
        info.name == "mobile-ts",
    );
    let (entries, warnings) = super::check_streams(&id, streams, &options, &call_grant.limits);
    let entries = entries.map_err(|e| anyhow!("listing refused: {e}"))?;
    Ok(Checked {
        module,
        limits,
        init: Ok(init_report),
        listing: Some(Ok(Listing {
            report,
            entries,
            warnings,
        })),
    })
}
