//! `[cluster]`: several hosts sharing one MongoDB.

use serde::{Deserialize, Serialize};

/// `[cluster]`: several DSS hosts sharing one MongoDB, each stream run by
/// exactly one of them (see `docs/scaling.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Cluster mode (needs the MongoDB store).
    pub enabled: bool,
    /// This host's name in the cluster; unset: the machine's host name.
    /// Letters, digits, `_`, `-` and `.`, at most 64.
    pub node_id: Option<String>,
    /// How the other hosts reach this host's nginx-rtmp to pull its
    /// streams: `rtmp://HOST:PORT/APP`; unset: nginx's address, RTMP port
    /// and application.
    pub advertise_rtmp: Option<String>,
    /// How long a lease holds without renewal, in seconds: a dead host's
    /// streams move after about this long.
    pub lease_seconds: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            node_id: None,
            advertise_rtmp: None,
            // Takeover within ~10 s, three renewal chances per lease.
            lease_seconds: 10,
        }
    }
}

/// Why `[cluster]` is refused: which setting, with its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// Cluster mode with the embedded (one host's) store.
    #[error("[cluster] enabled: several hosts share a MongoDB store; the embedded SQLite store is one host's. Set [store] url = \"mongodb://...\" on every host")]
    EmbeddedStore,
    /// A node id (set, or the host name) that is not a valid id.
    #[error("[cluster] node_id {node_id:?}: letters, digits, '_', '-' and '.', at most 64 (set it when the host name is not)")]
    NodeId {
        /// The id in force.
        node_id: String,
    },
    /// A lease outside 3 to 300 seconds.
    #[error("[cluster] lease_seconds: 3 to 300")]
    LeaseSeconds {
        /// The value set.
        seconds: u64,
    },
    /// An `advertise_rtmp` that is not an `rtmp://` URL with a host.
    #[error("[cluster] advertise_rtmp {url:?}: rtmp://HOST:PORT/APP")]
    AdvertiseRtmp {
        /// The value set.
        url: String,
    },
}

impl ClusterConfig {
    /// The node id in force.
    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(host_name)
    }

    /// Checks the values against the rest of the configuration.
    pub fn check(&self, store: &dss_store::StoreConfig) -> Result<(), ClusterError> {
        if !self.enabled {
            return Ok(());
        }
        if store.is_embedded() {
            return Err(ClusterError::EmbeddedStore);
        }
        let id = self.node_id();
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(ClusterError::NodeId { node_id: id });
        }
        if !(3..=300).contains(&self.lease_seconds) {
            return Err(ClusterError::LeaseSeconds {
                seconds: self.lease_seconds,
            });
        }
        if let Some(a) = &self.advertise_rtmp {
            let ok = url::Url::parse(a).is_ok_and(|u| u.scheme() == "rtmp" && u.host().is_some());
            if !ok {
                return Err(ClusterError::AdvertiseRtmp { url: a.clone() });
            }
        }
        Ok(())
    }
}

/// The machine's host name (`localhost` when it cannot be read).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn cluster_mode_needs_mongodb_and_checks_its_values() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let e = Config::load_with_env(None, env(&[("DSS_CLUSTER__ENABLED", "true")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[cluster]") && e.contains("mongodb"), "{e}");
        let mongo = [
            ("DSS_CLUSTER__ENABLED", "true"),
            ("DSS_STORE__URL", "mongodb://127.0.0.1:27017/dss"),
        ];
        let c = Config::load_with_env(None, env(&mongo)).unwrap();
        assert_eq!(c.cluster.lease_seconds, 10);
        assert!(!c.cluster.node_id().is_empty());
        for (k, v, msg) in [
            ("DSS_CLUSTER__LEASE_SECONDS", "1", "lease_seconds"),
            ("DSS_CLUSTER__NODE_ID", "a b", "node_id"),
            ("DSS_CLUSTER__ADVERTISE_RTMP", "http://x/", "advertise_rtmp"),
        ] {
            let mut pairs = mongo.to_vec();
            pairs.push((k, v));
            let e = Config::load_with_env(None, env(&pairs))
                .unwrap_err()
                .to_string();
            assert!(e.contains(msg), "{k}={v}: {e}");
        }
    }
}
