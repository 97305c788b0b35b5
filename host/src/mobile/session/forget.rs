//! Phones that left: the anonymous ones (not listed by the instance) are
//! forgotten `[mobile] forget_after_seconds` after, in the catalog and in
//! the store (also those gone before a restart); and the per-address
//! connection counts of minutes that are over are dropped.

use super::Phones;
use crate::catalog::unix_ms;
use crate::sync::lock;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often departed phones and per-address counts are looked at.
const MAINTAIN_EVERY: Duration = Duration::from_secs(5);

/// How often the store is searched for anonymous phones gone for longer
/// than `forget_after_seconds` that the catalog no longer knows (forgotten
/// before a restart, or pushed out of the departed list): two small
/// queries, so once a minute is plenty for an hour's horizon.
const STORE_SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Phones {
    /// Every few seconds: forgets anonymous phones that left more than
    /// `[mobile] forget_after_seconds` ago (unlisted; registered phones
    /// stay, their instance lists them) and minutes of connection counts
    /// that are over.
    pub async fn maintain(self: Arc<Self>) {
        let mut swept: Option<Instant> = None;
        loop {
            tokio::time::sleep(MAINTAIN_EVERY).await;
            lock(&self.connects).expire(Instant::now());
            let forget = self.config.mobile.forget_after_seconds;
            if forget == 0 {
                continue;
            }
            let forget = Duration::from_secs(forget);
            let instance = &self.config.mobile.instance;
            let gone: Vec<String> = {
                let mut departed = lock(&self.departed);
                let mut gone = Vec::new();
                departed.retain(|d| {
                    let keep = d.left.elapsed() < forget
                        || self
                            .providers
                            .config_entry_field(instance, "phones", &d.key, "key")
                            .is_some();
                    if !keep {
                        gone.push(d.key.clone());
                    }
                    keep
                });
                gone
            };
            if !gone.is_empty() {
                tracing::info!(
                    phones = gone.len(),
                    "anonymous phones that left are forgotten"
                );
                self.publish_sessions();
                for key in &gone {
                    self.forget_in_store(&format!("{instance}-{key}")).await;
                }
            }
            if swept.is_none_or(|t| t.elapsed() >= STORE_SWEEP_EVERY) {
                swept = Some(Instant::now());
                self.sweep_store(forget).await;
            }
        }
    }

    /// Forgets anonymous phones in the store whose sessions all closed more
    /// than `forget` ago and that the catalog does not hold (connected,
    /// registered, or departed and still listed).
    async fn sweep_store(&self, forget: Duration) {
        let before = unix_ms(SystemTime::now()).saturating_sub(forget.as_millis() as u64);
        let idle = match self.store.phones_idle_since(before).await {
            Ok(idle) => idle,
            Err(e) => {
                tracing::debug!(error = %e, "cannot look for phones to forget in the store");
                return;
            }
        };
        let instance = &self.config.mobile.instance;
        let prefix = format!("{instance}-");
        for id in idle {
            let Some(key) = id.strip_prefix(&prefix) else {
                continue;
            };
            let held = self.is_connected(key)
                || lock(&self.departed).iter().any(|d| d.key == key)
                || self
                    .providers
                    .config_entry_field(instance, "phones", key, "key")
                    .is_some();
            if !held {
                self.forget_in_store(&id).await;
            }
        }
    }

    /// Forgets phone stream `stream_id` in the store: its sessions, track,
    /// geotag and statistics.
    async fn forget_in_store(&self, stream_id: &str) {
        match self.store.forget_phone(stream_id).await {
            Ok(()) => {
                tracing::info!(stream = %stream_id, "an anonymous phone is forgotten in the store")
            }
            Err(e) => {
                tracing::warn!(stream = %stream_id, error = %e, "cannot forget a phone in the store")
            }
        }
    }
}
