//! Cluster mode: one host refreshes an instance (the holder of its lease),
//! the others follow its listings, as long as they run the same version of
//! the instance (its fingerprint).

use super::instance_files::Instance;
use super::Providers;
use crate::catalog::{ProviderState, ProviderStatus};
use crate::cluster::{Cluster, Refresher};
use std::time::Duration;

/// Cluster mode: how often a host that does not refresh an instance looks
/// for the refresher's first listing while there is none (a stamp read, one
/// small query; the first listing takes tens of milliseconds to seconds).
const FOLLOW_FIRST: Duration = Duration::from_millis(250);

impl Providers {
    /// Cluster mode, on a host that does not refresh instance `inst`:
    /// serves the refresher's latest listing when it is new. Returns when to
    /// look again, or `None` when this host must list itself (the
    /// refresher runs another version of the instance, or the store cannot
    /// say which host refreshes it).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn follow(
        &self,
        inst: &Instance,
        fingerprint: &str,
        who: Refresher,
        refresh: Option<Duration>,
        status: &mut ProviderStatus,
        follow: &mut Follow,
        cluster: &Cluster,
    ) -> Option<Duration> {
        let poll = cluster.follow_interval();
        let host = match who {
            Refresher::Host(h) => h,
            Refresher::Here => return None,
            Refresher::Unknown(why) => {
                // MongoDB is away: no host can tell, so each lists for
                // itself (not persisted) rather than all serving nothing.
                if !follow.due_here(refresh) {
                    return Some(poll);
                }
                tracing::warn!(provider = %inst.id, "cluster: which host refreshes it is not known ({why}): listing here");
                return None;
            }
        };
        status.refreshed_by = Some(host.clone());
        let stamp = match self.store.listing_stamp(&inst.id).await {
            Ok(s) => s,
            Err(e) => {
                status.last_error =
                    Some(format!("cluster: cannot read host {host}'s listing: {e}"));
                status.stale = status.listing_source.is_some();
                return Some(poll);
            }
        };
        let Some(stamp) = stamp else {
            // Nothing listed yet: the fallback file serves meanwhile.
            if status.listing_source.is_none() {
                self.serve_fallback(inst, status);
            }
            return Some(FOLLOW_FIRST);
        };
        if stamp.fingerprint.as_deref() != Some(fingerprint) {
            if follow.differs != Some(stamp.fetched_at_ms) {
                tracing::warn!(provider = %inst.id, host = %host, "cluster: the refreshing host runs another version of this instance (file or module): listing here until they match");
                follow.differs = Some(stamp.fetched_at_ms);
            }
            return (!follow.due_here(refresh)).then_some(poll);
        }
        follow.differs = None;
        if follow.served == Some(stamp.fetched_at_ms) {
            return Some(poll);
        }
        let listing = match self.store.get_listing(&inst.id).await {
            Ok(Some(l)) => l,
            Ok(None) => return Some(FOLLOW_FIRST),
            Err(e) => {
                status.last_error =
                    Some(format!("cluster: cannot read host {host}'s listing: {e}"));
                return Some(poll);
            }
        };
        let fetched = listing.fetched_at_ms;
        let n = self.serve_listed(inst, listing.streams, "cluster", Some(fetched), status);
        tracing::info!(provider = %inst.id, host = %host, streams = n, fetched_at_ms = fetched, "cluster: serving the refreshing host's listing");
        // The refresher's latest listing: not stale.
        status.stale = false;
        status.state = ProviderState::Ready;
        status.last_error = None;
        status.warnings.clear();
        status.refreshed_at_ms = Some(fetched);
        follow.served = Some(fetched);
        Some(poll)
    }

    /// Cluster mode: gives up instance `id`'s refresh lease (in the
    /// background), when this host no longer serves it.
    pub(super) fn release_refresh(&self, id: &str) {
        if let Some(c) = self.cluster.clone() {
            let id = id.to_string();
            tokio::spawn(async move { c.release_provider(&id).await });
        }
    }
}

/// Cluster mode: what a host following another's listings has seen.
#[derive(Debug, Default)]
pub(super) struct Follow {
    /// The fetch time of the listing it serves.
    served: Option<u64>,
    /// The fetch time of a listing of another version it was warned of.
    differs: Option<u64>,
    /// When it last listed the instance itself (the refresher's version
    /// differs, or is not known).
    pub(super) listed_here: Option<std::time::Instant>,
}

impl Follow {
    /// Whether this host lists the instance itself again now: never done
    /// yet, or its refresh interval has passed (`None`: it never refreshes).
    pub(super) fn due_here(&self, refresh: Option<Duration>) -> bool {
        match (self.listed_here, refresh) {
            (None, _) => true,
            (Some(at), Some(every)) => at.elapsed() >= every,
            (Some(_), None) => false,
        }
    }
}

/// What identifies a version of an instance across hosts: its file's hash
/// and its module's, hashed.
pub(super) fn fingerprint(instance_hash: &str, module_hash: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(module_hash.as_bytes());
    h.update([0]);
    h.update(instance_hash.as_bytes());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_lists_for_itself_once_per_refresh_interval() {
        let mut f = Follow::default();
        let every = Some(Duration::from_secs(60));
        assert!(f.due_here(every), "never listed here yet");
        assert!(f.due_here(None));
        f.listed_here = Some(std::time::Instant::now());
        assert!(!f.due_here(every));
        assert!(
            !f.due_here(None),
            "an instance that never refreshes is listed once"
        );
        f.listed_here = std::time::Instant::now().checked_sub(Duration::from_secs(61));
        assert!(f.due_here(every));
    }

    #[test]
    fn fingerprints_tell_instance_files_and_modules_apart() {
        let a = fingerprint("module = \"m\"\n", "abc");
        assert_eq!(a, fingerprint("module = \"m\"\n", "abc"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, fingerprint("module = \"m\"\n# changed\n", "abc"));
        assert_ne!(a, fingerprint("module = \"m\"\n", "abd"));
        // The boundary between the two is marked.
        assert_ne!(fingerprint("bc", "a"), fingerprint("c", "ab"));
    }
}
