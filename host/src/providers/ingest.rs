//! Ingest instances: the phones connected to the host, which their
//! instance lists (online) as they come and go.

use super::Providers;
use crate::config::InstanceConfig;
use crate::sync::lock;
use tokio::sync::watch;

/// A phone connected to the mobile ingest, as its instance lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IngestSession {
    /// The phone's key (its id).
    pub key: String,
    /// Display name.
    pub name: String,
    /// Connected now (else it left).
    pub online: bool,
}

impl Providers {
    /// The phones connected to ingest instance `instance`, as they change.
    pub(super) fn sessions_of(&self, instance: &str) -> watch::Receiver<Vec<IngestSession>> {
        lock(&self.sessions)
            .entry(instance.to_string())
            .or_insert_with(|| watch::channel(Vec::new()).0)
            .subscribe()
    }
}

/// `config_json` (an object) with the connected phones as `sessions`.
pub(super) fn with_sessions(config_json: &str, sessions: &[IngestSession]) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(config_json).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("sessions".into(), serde_json::json!(sessions));
    }
    v.to_string()
}

/// Whether an instance's `pipe:0` streams are phones of the host's ingest.
pub(super) fn is_ingest(inst: &InstanceConfig) -> bool {
    inst.module == "mobile-ts"
}
