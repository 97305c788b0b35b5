//! The catalog: every provider's status and every stream DSS can serve.
//!
//! Readers take an immutable [`Snapshot`] (an `Arc`, so a request never
//! waits on a provider refresh); writers build the next snapshot and swap
//! it in. Streams enter the catalog only through [`StreamEntry::from_source`],
//! which checks keys and bounds against the host's rules and runs the
//! FFmpeg policy ([`crate::ffmpeg::policy`]): a stream the policy refuses is
//! still listed, with the reason, so it is known before anyone plays it.

mod places;

use crate::config::Limits;
use crate::ffmpeg::policy::CheckedOptions;
use crate::ffmpeg::{Plan, Refusal, SourceGrant};
use crate::ids;
use crate::plugin::bindings::StreamSource;
use crate::plugin::module::ModuleInfo;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// The state of a provider instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderState {
    /// Being loaded or listed for the first time.
    Loading,
    /// Serving its last listing.
    Ready,
    /// Its last attempt failed; see `last_error` (earlier streams, if any,
    /// keep serving).
    Failed,
    /// `enabled = false`.
    Disabled,
}

/// What the API shows of a provider instance.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderStatus {
    /// Instance id (the stream id prefix).
    pub id: String,
    /// Module name.
    pub module: String,
    /// The instance file.
    pub file: String,
    /// State.
    pub state: ProviderState,
    /// Module version (from the module).
    pub version: Option<String>,
    /// Interface version the module targets.
    pub interface_version: Option<String>,
    /// SHA-256 of the module file.
    pub module_hash: Option<String>,
    /// Provider information after `init`.
    pub info: Option<ModuleInfo>,
    /// Streams currently listed.
    pub stream_count: usize,
    /// The last error, with its cause.
    pub last_error: Option<String>,
    /// Warnings of the last listing (skipped streams, ...).
    pub warnings: Vec<String>,
    /// When the module was loaded (Unix ms).
    pub loaded_at_ms: Option<u64>,
    /// When the last listing succeeded (Unix ms).
    pub refreshed_at_ms: Option<u64>,
    /// Where the streams served come from: `provider` (a listing of this
    /// run), `cache` (persisted by an earlier run), `fallback` (the
    /// instance's fallback file), `cluster` (another host's listing, read
    /// from the store), or none yet.
    pub listing_source: Option<&'static str>,
    /// Cluster mode: the host whose listing is served (this host's id when
    /// it lists the instance itself).
    pub refreshed_by: Option<String>,
    /// When the served listing was fetched from the provider (Unix ms).
    pub listing_fetched_at_ms: Option<u64>,
    /// True when the served listing is not this run's latest successful
    /// one (the provider is failing, or has not answered yet).
    pub stale: bool,
    /// Waiting for its first use (`lazy = true`).
    pub lazy_pending: bool,
    /// Whose thumbnails the host makes (the instance's `thumbnails`).
    pub thumbnails: crate::config::ThumbnailMode,
    /// The instance's recording settings.
    pub record: Option<crate::config::InstanceRecord>,
}

/// A stream DSS can serve.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct StreamEntry {
    /// `<provider>-<key>`.
    pub id: String,
    /// Provider instance id.
    pub provider: String,
    /// Key within the provider.
    pub key: String,
    /// Display name.
    pub name: String,
    /// Position.
    pub geo: Option<Geo>,
    /// Whether the upstream says it is on.
    pub online: bool,
    /// What FFmpeg reads (shared with the plan).
    #[serde(skip)]
    pub source: Arc<str>,
    /// FFmpeg options before `-i` (shared by the streams that use the
    /// same ones).
    #[serde(skip)]
    pub input_options: Arc<[String]>,
    /// FFmpeg options after `-i` (shared likewise).
    #[serde(skip)]
    pub output_options: Arc<[String]>,
    /// Free-form metadata.
    pub tags: BTreeMap<String, String>,
    /// What the FFmpeg policy made of `source` and the options when the
    /// stream was listed: the plan to run (its source's addresses are
    /// checked again at each start), or why the stream is refused.
    #[serde(skip)]
    pub plan: Result<Arc<Plan>, Refusal>,
}

/// A position.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Geo {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// The FFmpeg options that apply to a provider's streams, and what their
/// sources may reach.
#[derive(Debug, Clone)]
pub struct Options {
    /// The options before and after `-i`, checked once for every stream
    /// that uses them.
    pub checked: Arc<CheckedOptions>,
    /// The instance's `allow_sources`/`allow_hosts` and `allow_private`
    /// (the default allows no host: test graphs only).
    pub grant: Arc<SourceGrant>,
    /// The instance is the host's mobile ingest: a `pipe:0` source is a
    /// phone fed by the host ([`Plan::ingest`]).
    pub ingest: bool,
}

impl Options {
    /// Options `input` and `output` (checked now) under `grant`.
    pub fn new(
        input: impl Into<Arc<[String]>>,
        output: impl Into<Arc<[String]>>,
        grant: Arc<SourceGrant>,
        ingest: bool,
    ) -> Self {
        Options {
            checked: Arc::new(CheckedOptions::new(input.into(), output.into())),
            grant,
            ingest,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::new(Vec::new(), Vec::new(), Arc::default(), false)
    }
}

/// Tags kept of a listed stream (the rest are dropped).
const MAX_TAGS: usize = 64;
/// Bytes of a tag's key (its value is bounded by `max_string_len`).
const MAX_TAG_KEY: usize = 64;
/// A stream's own input options (the listing's shared ones are bounded
/// when the instance loads).
const MAX_OWN_OPTIONS: usize = 64;

/// Why a listed stream is skipped: what is wrong, without echoing
/// unbounded input (the key is checked first, so it is short).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EntryError {
    /// The key is not a valid stream key.
    #[error(transparent)]
    Key(#[from] ids::IdError),
    /// The source or the name is over `max_string_len`.
    #[error("stream {key:?}: {what} is {len} bytes, limit {max}")]
    TooLong {
        /// The stream's key.
        key: String,
        /// `source` or `name`.
        what: &'static str,
        /// Its length.
        len: usize,
        /// `max_string_len`.
        max: usize,
    },
    /// No source at all.
    #[error("stream {0:?}: empty source")]
    EmptySource(String),
    /// A latitude outside -90..90 or a longitude outside -180..180.
    #[error("stream {key:?}: position out of range ({lat}, {lon})")]
    OutOfRange {
        /// The stream's key.
        key: String,
        /// The latitude given.
        lat: f64,
        /// The longitude given.
        lon: f64,
    },
    /// A tag's key over 64 bytes or its value over `max_string_len`.
    #[error("stream {0:?}: tag too long")]
    TagTooLong(String),
    /// More than 64 input options of its own, or one over `max_string_len`.
    #[error("stream {0:?}: input options too long")]
    OptionsTooLong(String),
}

impl StreamEntry {
    /// Checks one listed stream against the host's rules and makes its
    /// entry. The error says what is wrong, without echoing unbounded input.
    pub fn from_source(
        provider: &str,
        s: StreamSource,
        options: &Options,
        limits: &Limits,
    ) -> Result<StreamEntry, EntryError> {
        ids::check_key(&s.key)?;
        let max = limits.max_string_len;
        let too_long = |what: &'static str, len: usize| EntryError::TooLong {
            key: s.key.clone(),
            what,
            len,
            max,
        };
        if s.source.len() > max {
            return Err(too_long("source", s.source.len()));
        }
        if s.source.is_empty() {
            return Err(EntryError::EmptySource(s.key));
        }
        if s.name.len() > max {
            return Err(too_long("name", s.name.len()));
        }
        let geo = match s.geo {
            Some(g) if (-90.0..=90.0).contains(&g.lat) && (-180.0..=180.0).contains(&g.lon) => {
                Some(Geo {
                    lat: g.lat,
                    lon: g.lon,
                })
            }
            Some(g) => {
                return Err(EntryError::OutOfRange {
                    key: s.key,
                    lat: g.lat,
                    lon: g.lon,
                })
            }
            None => None,
        };
        let mut tags = BTreeMap::new();
        for t in s.tags.into_iter().take(MAX_TAGS) {
            if t.key.len() > MAX_TAG_KEY || t.value.len() > max {
                return Err(EntryError::TagTooLong(s.key));
            }
            tags.insert(t.key, t.value);
        }
        // A stream's own input options are checked with it; the shared
        // ones were checked once for the listing.
        let own;
        let checked = if s.input_options.is_empty() {
            &options.checked
        } else {
            if s.input_options.iter().any(|o| o.len() > max)
                || s.input_options.len() > MAX_OWN_OPTIONS
            {
                return Err(EntryError::OptionsTooLong(s.key));
            }
            own = Arc::new(CheckedOptions::new(
                s.input_options.into(),
                options.checked.output().clone(),
            ));
            &own
        };
        let source: Arc<str> = s.source.into();
        let plan = if options.ingest && &*source == "pipe:0" {
            Plan::ingest(checked.output())
        } else {
            Plan::check_with(source.clone(), checked, &options.grant)
        };
        let plan = plan.map(Arc::new);
        Ok(StreamEntry {
            id: ids::stream_id(provider, &s.key),
            provider: provider.to_string(),
            key: s.key,
            name: s.name,
            geo,
            online: s.online,
            source,
            input_options: checked.input().clone(),
            output_options: checked.output().clone(),
            tags,
            plan,
        })
    }

    /// Whether this is a phone of the host's mobile ingest.
    pub fn is_ingest(&self) -> bool {
        self.plan.as_ref().is_ok_and(|p| p.is_ingest())
    }

    /// Whether this stream records, under `providers`' settings.
    pub fn records(&self, providers: &BTreeMap<String, ProviderStatus>) -> bool {
        providers
            .get(&self.provider)
            .and_then(|p| p.record.as_ref())
            .is_some_and(|r| r.covers(&self.id, &self.key))
    }

    /// Why the FFmpeg policy refuses this stream, if it does.
    pub fn refusal(&self) -> Option<&str> {
        self.plan.as_ref().err().map(Refusal::as_str)
    }
}

/// An immutable view of the catalog.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Providers by id.
    pub providers: BTreeMap<String, ProviderStatus>,
    /// Streams by id: shared by snapshots that differ only in provider
    /// statuses (a status change does not copy 100,000 entries).
    pub streams: Arc<BTreeMap<String, Arc<StreamEntry>>>,
    /// Counts the changes since the host started: two snapshots with the
    /// same generation are the same (the API's `ETag`s are built on it).
    pub generation: u64,
    /// The streams' positions, indexed on the first query of a map's view
    /// (shared by the snapshots that only move phones or change statuses).
    places: Arc<std::sync::OnceLock<places::Places>>,
}

/// The catalog shared by the API and the supervisor.
#[derive(Debug)]
pub struct Catalog {
    current: RwLock<Arc<Snapshot>>,
    /// Positions reported live (phones): they outlive re-listings.
    live_geo: std::sync::Mutex<std::collections::HashMap<String, Geo>>,
    /// Bumped by every change.
    version: tokio::sync::watch::Sender<u64>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            current: RwLock::default(),
            live_geo: Default::default(),
            version: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current view.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Builds the next snapshot with `f` (which takes the streams with
    /// `Arc::make_mut` only when it changes them) and swaps it in.
    fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        self.update_keeping(false, f)
    }

    /// [`Catalog::update`]; `places`: the change moves no listed stream,
    /// so the index of positions stays.
    fn update_keeping(&self, places: bool, f: impl FnOnce(&mut Snapshot)) {
        let mut guard = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Numbered under the write lock, so a reader never pairs this
        // snapshot with another's generation.
        let mut next = Snapshot {
            providers: guard.providers.clone(),
            streams: guard.streams.clone(),
            generation: guard.generation + 1,
            places: match places {
                true => guard.places.clone(),
                false => Default::default(),
            },
        };
        f(&mut next);
        *guard = Arc::new(next);
        drop(guard);
        self.version.send_modify(|v| *v += 1);
    }

    /// The streams of `snap` positioned inside `bbox`, in id order, from
    /// the snapshot's index of positions (built now if it is not yet).
    pub fn within<'a>(
        &self,
        snap: &'a Snapshot,
        bbox: &dss_store::BBox,
    ) -> Vec<&'a Arc<StreamEntry>> {
        let places = snap
            .places
            .get_or_init(|| places::Places::build(&snap.streams));
        // Phones placed live may have moved since the index was built.
        let live: std::collections::HashSet<String> = match self.live_geo.lock() {
            Ok(g) => g.keys().cloned().collect(),
            Err(p) => p.into_inner().keys().cloned().collect(),
        };
        places.within(&snap.streams, &live, bbox)
    }

    /// Changes whenever the catalog does.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Sets the live position of stream `id` (a phone's report); it is
    /// kept over re-listings of its provider.
    pub fn set_geo(&self, id: &str, geo: Geo) {
        match self.live_geo.lock() {
            Ok(mut g) => g.insert(id.to_string(), geo),
            Err(p) => p.into_inner().insert(id.to_string(), geo),
        };
        self.update_keeping(true, |s| {
            if let Some(e) = s.streams.get(id) {
                let mut e2 = (**e).clone();
                e2.geo = Some(geo);
                Arc::make_mut(&mut s.streams).insert(id.to_string(), Arc::new(e2));
            }
        });
    }

    /// Sets a provider's status (its streams stay as they are).
    pub fn set_status(&self, status: ProviderStatus) {
        self.update_keeping(true, |s| {
            let count = s
                .streams
                .values()
                .filter(|e| e.provider == status.id)
                .count();
            let mut status = status;
            status.stream_count = count;
            s.providers.insert(status.id.clone(), status);
        });
    }

    /// Changes a provider's status in place, if it exists.
    pub fn edit_status(&self, id: &str, f: impl FnOnce(&mut ProviderStatus)) {
        self.update_keeping(true, |s| {
            if let Some(p) = s.providers.get_mut(id) {
                f(p);
            }
        });
    }

    /// Replaces all streams of provider `id`.
    pub fn replace_streams(&self, id: &str, streams: Vec<StreamEntry>) {
        let mut streams = streams;
        {
            let mut live = match self.live_geo.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            // Positions of streams the provider no longer lists go with them.
            let prefix = format!("{id}-");
            live.retain(|s, _| !s.starts_with(&prefix) || streams.iter().any(|e| &e.id == s));
            for e in streams.iter_mut() {
                if let Some(g) = live.get(&e.id) {
                    e.geo = Some(*g);
                }
            }
        }
        self.update(|s| {
            let all = Arc::make_mut(&mut s.streams);
            all.retain(|_, e| e.provider != id);
            let count = streams.len();
            for e in streams {
                all.insert(e.id.clone(), Arc::new(e));
            }
            if let Some(p) = s.providers.get_mut(id) {
                p.stream_count = count;
            }
        });
    }

    /// Removes a provider and its streams.
    pub fn remove_provider(&self, id: &str) {
        self.update(|s| {
            if s.streams.values().any(|e| e.provider == id) {
                Arc::make_mut(&mut s.streams).retain(|_, e| e.provider != id);
            }
            s.providers.remove(id);
        });
    }
}

pub use crate::clock::unix_ms;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::bindings::dss::provider::types::{Geo as WGeo, Tag};

    fn source(key: &str) -> StreamSource {
        StreamSource {
            key: key.into(),
            source: "rtsp://x".into(),
            name: "n".into(),
            geo: Some(WGeo { lat: 1.0, lon: 2.0 }),
            online: true,
            input_options: vec![],
            tags: vec![Tag {
                key: "a".into(),
                value: "b".into(),
            }],
        }
    }

    #[test]
    fn entries_check_keys_and_apply_options() {
        let opts = Options::new(
            vec!["-re".to_string()],
            vec!["-c".to_string(), "copy".to_string()],
            Arc::new(SourceGrant::new(Some(&["x".to_string()]), &[], false).unwrap()),
            false,
        );
        let l = Limits::default();
        let e = StreamEntry::from_source("demo", source("cam1"), &opts, &l).unwrap();
        assert_eq!(e.id, "demo-cam1");
        assert_eq!(&*e.input_options, ["-re"]);
        assert_eq!(e.tags["a"], "b");
        assert_eq!(e.refusal(), None);
        assert!(StreamEntry::from_source("demo", source("../x"), &opts, &l).is_err());
        let mut far = source("k");
        far.geo = Some(WGeo {
            lat: 100.0,
            lon: 0.0,
        });
        let err = StreamEntry::from_source("demo", far, &opts, &l).unwrap_err();
        assert!(matches!(err, EntryError::OutOfRange { lat, .. } if lat == 100.0));
        assert!(err.to_string().contains("out of range"), "{err}");
        let mut long = source("k");
        long.name = "x".repeat(l.max_string_len + 1);
        assert!(StreamEntry::from_source("demo", long, &opts, &l).is_err());
    }

    #[test]
    fn live_positions_outlive_relistings_but_not_their_streams() {
        let opts = Options::new(
            Vec::new(),
            Vec::new(),
            Arc::new(SourceGrant::any_host(false)),
            false,
        );
        let l = Limits::default();
        let entry = |k: &str| StreamEntry::from_source("p", source(k), &opts, &l).unwrap();
        let c = Catalog::new();
        c.replace_streams("p", vec![entry("a")]);
        let live = Geo { lat: 3.0, lon: 4.0 };
        c.set_geo("p-a", live);
        c.replace_streams("p", vec![entry("a")]);
        assert_eq!(c.snapshot().streams["p-a"].geo, Some(live));
        // Gone from the listing: its live position goes too.
        c.replace_streams("p", vec![]);
        c.replace_streams("p", vec![entry("a")]);
        assert_eq!(
            c.snapshot().streams["p-a"].geo,
            Some(Geo { lat: 1.0, lon: 2.0 })
        );
    }

    #[test]
    fn refused_streams_stay_listed_with_their_reason() {
        let opts = Options::new(
            Vec::new(),
            vec![
                "-c".to_string(),
                "copy".to_string(),
                "/tmp/x.mp4".to_string(),
            ],
            Arc::new(SourceGrant::any_host(false)),
            false,
        );
        let l = Limits::default();
        let e = StreamEntry::from_source("demo", source("cam1"), &opts, &l).unwrap();
        assert!(e.refusal().unwrap().contains("positional"), "{e:?}");
        let mut local = source("cam2");
        local.source = "http://127.0.0.1:8000/control/x/start".into();
        let e = StreamEntry::from_source("demo", local, &Options::default(), &l).unwrap();
        assert!(e.refusal().unwrap().contains("not allowed"), "{e:?}");
        // The API never shows sources, options or plans.
        let json = serde_json::to_value(&e).unwrap();
        for hidden in ["source", "input_options", "output_options", "plan"] {
            assert!(json.get(hidden).is_none(), "{hidden}: {json}");
        }
    }

    #[test]
    fn snapshots_are_isolated_from_later_updates() {
        let c = Catalog::new();
        let e = StreamEntry::from_source("p", source("a"), &Options::default(), &Limits::default())
            .unwrap();
        c.replace_streams("p", vec![e.clone()]);
        let before = c.snapshot();
        c.remove_provider("p");
        assert_eq!(before.streams.len(), 1);
        assert!(c.snapshot().streams.is_empty());
    }
}
