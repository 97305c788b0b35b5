//! Listings between the provider, the store, the fallback file and the
//! catalog: persisting a fresh listing, serving one not listed here (the
//! persisted one, the fallback file, another host's), and checking streams
//! into catalog entries.

use super::ingest::is_ingest;
use super::instance_files::Instance;
use super::refresh::cache_wait;
use super::Providers;
use crate::catalog::{Options, ProviderState, ProviderStatus, StreamEntry};
use crate::config::Limits;
use crate::ffmpeg::SourceGrant;
use dss_store::{ListedStream, Listing};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

impl Providers {
    /// Serves the persisted listing of `inst`, else nothing; returns how
    /// long it stays valid (`cache_seconds`), if at all.
    pub(super) async fn serve_known_listing(
        &self,
        inst: &Instance,
        status: &mut ProviderStatus,
    ) -> Option<Duration> {
        let listing = match self.store.get_listing(&inst.id).await {
            Ok(Some(l)) => l,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(provider = %inst.id, error = %e, "cannot read the persisted listing");
                return None;
            }
        };
        let fetched = listing.fetched_at_ms;
        let n = self.serve_listed(inst, listing.streams, "cache", Some(fetched), status);
        tracing::info!(provider = %inst.id, streams = n, fetched_at_ms = fetched, "serving the persisted listing");
        status.state = ProviderState::Ready;
        self.catalog.set_status(status.clone());
        cache_wait(&inst.config, fetched)
    }

    /// Serves the instance's fallback file, when it has one.
    pub(super) fn serve_fallback(&self, inst: &Instance, status: &mut ProviderStatus) {
        let Some(path) = &inst.config.fallback else {
            return;
        };
        let parsed = read_fallback(&inst.file, path).and_then(|t| {
            serde_json::from_str::<Vec<ListedStream>>(&t).map_err(FallbackError::from)
        });
        match parsed {
            Ok(streams) => {
                let n = self.serve_listed(inst, streams, "fallback", None, status);
                tracing::warn!(provider = %inst.id, streams = n, file = %path.display(), "serving the fallback listing");
            }
            Err(e) => {
                let msg = format!("fallback file {}: {e}", path.display());
                tracing::error!(provider = %inst.id, "{msg}");
                status.warnings.push(msg);
            }
        }
    }

    /// Persists a successful listing (in the background: the store queues
    /// writes while a MongoDB is away).
    pub(super) fn persist(
        &self,
        provider: &str,
        fetched_at_ms: u64,
        entries: &[StreamEntry],
        fingerprint: &str,
        epoch: Option<u64>,
    ) {
        let listing = Listing {
            provider: provider.to_string(),
            fetched_at_ms,
            fingerprint: Some(fingerprint.to_string()),
            epoch,
            streams: entries.iter().map(entry_to_listed).collect(),
        };
        let store = self.store.clone();
        let id = provider.to_string();
        let large = listing.streams.len() >= crate::memory::LARGE;
        tokio::spawn(async move {
            if let Err(e) = store.put_listing(listing).await {
                tracing::warn!(provider = %id, error = %e, "listing not persisted");
            }
            if large {
                crate::memory::trim_soon();
            }
        });
    }

    /// Serves `streams` not listed by this host (persisted, another host's,
    /// or the fallback file), re-checked against the instance's own limits
    /// and grant, as its listing from `source`: stale unless the caller
    /// says otherwise. Returns how many it serves.
    pub(super) fn serve_listed(
        &self,
        inst: &Instance,
        streams: Vec<ListedStream>,
        source: &'static str,
        fetched_at_ms: Option<u64>,
        status: &mut ProviderStatus,
    ) -> usize {
        let entries = listed_to_entries(
            &inst.id,
            streams,
            &inst.limits,
            &inst.grant,
            is_ingest(&inst.config),
        );
        let n = entries.len();
        if n >= crate::memory::LARGE {
            crate::memory::trim_soon();
        }
        self.catalog.replace_streams(&inst.id, entries);
        status.listing_source = Some(source);
        status.listing_fetched_at_ms = fetched_at_ms;
        status.stale = true;
        n
    }
}

/// Reads the fallback file `fallback` of the instance file `instance_file`:
/// an absolute path as the operator gave it, a relative one through a
/// handle on the instance file's directory, so it cannot lead out of it.
fn read_fallback(instance_file: &Path, fallback: &Path) -> Result<String, FallbackError> {
    if fallback.is_absolute() {
        return Ok(std::fs::read_to_string(fallback)?);
    }
    let dir = match instance_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok(crate::files::HostDir::open(dir).and_then(|d| d.read_to_string(fallback))?)
}

/// Why an instance's fallback listing cannot be served.
#[derive(Debug, thiserror::Error)]
enum FallbackError {
    /// An absolute path that cannot be read.
    #[error(transparent)]
    Read(#[from] std::io::Error),
    /// A relative path that leads out of the instance's directory, or
    /// cannot be read inside it.
    #[error(transparent)]
    Inside(#[from] crate::files::FilesError),
    /// Not a JSON list of streams.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// A catalog entry as the store keeps it.
fn entry_to_listed(e: &StreamEntry) -> ListedStream {
    ListedStream {
        key: e.key.clone(),
        source: e.source.to_string(),
        name: e.name.clone(),
        geo: e.geo.map(|g| dss_store::Geo {
            lat: g.lat,
            lon: g.lon,
        }),
        online: e.online,
        input_options: e.input_options.to_vec(),
        output_options: e.output_options.to_vec(),
        tags: e.tags.clone(),
    }
}

/// Checks persisted or fallback streams with the same rules as fresh ones
/// (the FFmpeg policy included, under the instance's current grant).
/// Streams stored with the same options share them, checked once.
fn listed_to_entries(
    provider: &str,
    streams: Vec<ListedStream>,
    limits: &Limits,
    grant: &Arc<SourceGrant>,
    ingest: bool,
) -> Vec<StreamEntry> {
    let mut out = Vec::with_capacity(streams.len().min(limits.max_streams));
    let mut shared: HashMap<(Vec<String>, Vec<String>), Options> = HashMap::new();
    for l in streams.into_iter().take(limits.max_streams) {
        let options = shared
            .entry((l.input_options, l.output_options))
            .or_insert_with_key(|(input, output)| {
                Options::new(input.clone(), output.clone(), grant.clone(), ingest)
            })
            .clone();
        let source = crate::plugin::bindings::StreamSource {
            key: l.key,
            source: l.source,
            name: l.name,
            geo: l
                .geo
                .map(|g| crate::plugin::bindings::dss::provider::types::Geo {
                    lat: g.lat,
                    lon: g.lon,
                }),
            // A persisted phone is not connected to this run.
            online: l.online && !ingest,
            input_options: Vec::new(),
            tags: l
                .tags
                .into_iter()
                .map(
                    |(key, value)| crate::plugin::bindings::dss::provider::types::Tag {
                        key,
                        value,
                    },
                )
                .collect(),
        };
        match StreamEntry::from_source(provider, source, &options, limits) {
            Ok(e) => out.push(e),
            Err(e) => tracing::warn!(provider, error = %e, "stored stream skipped"),
        }
    }
    out
}

/// A listing over `max_streams`, refused whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("listed {listed} streams, more than the limit of {max}")]
pub struct TooManyStreams {
    /// How many the provider listed.
    pub listed: usize,
    /// `max_streams`.
    pub max: usize,
}

/// Checks a listing: invalid streams are skipped with a warning; streams the
/// FFmpeg policy refuses are kept (with their reason) and counted in a
/// warning; a listing over the stream limit is refused whole.
pub fn check_streams(
    provider: &str,
    sources: Vec<crate::plugin::bindings::StreamSource>,
    options: &Options,
    limits: &Limits,
) -> (Result<Vec<StreamEntry>, TooManyStreams>, Vec<String>) {
    if sources.len() > limits.max_streams {
        let e = TooManyStreams {
            listed: sources.len(),
            max: limits.max_streams,
        };
        return (Err(e), Vec::new());
    }
    let mut warnings = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(sources.len());
    let mut skipped = 0usize;
    for s in sources {
        match StreamEntry::from_source(provider, s, options, limits) {
            Ok(e) if seen.insert(e.key.clone()) => out.push(e),
            Ok(e) => {
                skipped += 1;
                if warnings.len() < 10 {
                    warnings.push(format!("duplicate key {:?} skipped", e.key));
                }
            }
            Err(e) => {
                skipped += 1;
                if warnings.len() < 10 {
                    warnings.push(format!("stream skipped: {e}"));
                }
            }
        }
    }
    if skipped > warnings.len() {
        warnings.push(format!("{skipped} streams skipped in all"));
    }
    let mut refused = out.iter().filter_map(|e| Some((&e.key, e.refusal()?)));
    if let Some((key, why)) = refused.next() {
        let more = refused.count();
        warnings.push(format!(
            "{} refused by the FFmpeg policy (they stay listed but cannot play); stream {key:?}: {why}",
            if more == 0 {
                "1 stream is".to_string()
            } else {
                format!("{} streams are", more + 1)
            }
        ));
    }
    (Ok(out), warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_fallback_stays_in_the_instances_directory() {
        let top = std::env::temp_dir().join(format!("dss-fallback-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&top);
        let dir = top.join("providers.d");
        std::fs::create_dir_all(dir.join("lists")).unwrap();
        std::fs::write(top.join("elsewhere.json"), "[]").unwrap();
        std::fs::write(dir.join("lists/rio.json"), "[1]").unwrap();
        std::os::unix::fs::symlink(top.join("elsewhere.json"), dir.join("out.json")).unwrap();
        std::os::unix::fs::symlink("lists/rio.json", dir.join("in.json")).unwrap();
        let inst = dir.join("rio.toml");
        let read = |f: &str| read_fallback(&inst, Path::new(f));
        assert_eq!(read("lists/rio.json").unwrap(), "[1]");
        assert_eq!(read("in.json").unwrap(), "[1]", "a symlink inside is fine");
        for bad in [
            "../elsewhere.json",
            "lists/../../elsewhere.json",
            "out.json",
        ] {
            let e = read(bad).expect_err(bad);
            assert!(matches!(e, FallbackError::Inside(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains("outside"), "{bad}: {e}");
        }
        let abs = top.join("elsewhere.json");
        assert_eq!(
            read(abs.to_str().unwrap()).unwrap(),
            "[]",
            "an absolute path is the operator's explicit choice"
        );
        let e = read("missing.json").unwrap_err().to_string();
        assert!(e.contains("missing.json"), "{e}");
        let _ = std::fs::remove_dir_all(&top);
    }
}
