//! What an instance grants its provider and its streams: the limits of
//! its calls (the defaults with its overrides) and what its stream
//! sources may reach.

use super::{InstanceConfig, Limits};
use crate::ffmpeg::{GrantError, SourceGrant};

/// Why an instance's limits cannot be made: the defaults did not turn into
/// a table, or the instance's `[limits]` overrides do not fit them.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    /// The defaults could not be written as a TOML table.
    #[error("{0}")]
    Defaults(toml::ser::Error),
    /// An override is unknown or of the wrong type.
    #[error("[limits]: {0}")]
    Override(toml::de::Error),
}

impl InstanceConfig {
    /// What this instance's stream sources may reach (`allow_sources`,
    /// else `allow_hosts`, and `allow_private`); a bad `allow_sources`
    /// entry is an error.
    pub fn source_grant(&self) -> Result<SourceGrant, GrantError> {
        SourceGrant::new(
            self.allow_sources.as_deref(),
            &self.allow_hosts,
            self.allow_private,
        )
        .map(|g| g.with_udp(self.allow_udp))
    }

    /// The limits in force: `defaults` with this instance's overrides.
    pub fn limits(&self, defaults: &Limits) -> Result<Limits, LimitsError> {
        let mut table = toml::Table::try_from(defaults).map_err(LimitsError::Defaults)?;
        for (k, v) in &self.limits {
            table.insert(k.clone(), v.clone());
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(LimitsError::Override)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_allow_sources_entries_reject_the_instance_file() {
        let dir = std::env::temp_dir().join(format!("dss-config-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cams.toml");
        std::fs::write(
            &file,
            "module = \"x\"\nallow_sources = [\"cams.example\", \"10.0.0.0/40\"]\n",
        )
        .unwrap();
        let e = InstanceConfig::load(&file).unwrap_err().to_string();
        assert!(e.contains("cams.toml") && e.contains("10.0.0.0/40"), "{e}");
        std::fs::write(
            &file,
            "module = \"x\"\nallow_sources = [\"*.cams.example\", \"10.0.0.0/8\", \"cam:554\"]\n",
        )
        .unwrap();
        let (_, inst) = InstanceConfig::load(&file).unwrap();
        assert_eq!(inst.allow_sources.as_ref().map(Vec::len), Some(3));
    }

    #[test]
    fn instance_limits_override_defaults() {
        let inst: InstanceConfig =
            toml::from_str("module = \"x\"\n[limits]\nmemory_mib = 8\n[config]\na = 1\n").unwrap();
        let l = inst.limits(&Limits::default()).unwrap();
        assert_eq!(l.memory_mib, 8);
        assert_eq!(l.call_timeout_ms, Limits::default().call_timeout_ms);
        assert_eq!(inst.config_json(), r#"{"a":1}"#);
        let bad: InstanceConfig = toml::from_str("module = \"x\"\n[limits]\nmemory = 8\n").unwrap();
        assert!(bad.source_grant().is_ok());
        let e = bad.limits(&Limits::default()).unwrap_err();
        assert!(matches!(e, LimitsError::Override(_)), "{e:?}");
        let e = e.to_string();
        assert!(e.starts_with("[limits]: ") && e.contains("memory"), "{e}");
    }
}
