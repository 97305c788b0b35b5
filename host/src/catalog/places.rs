//! Where the catalog's streams are: a spatial index of their positions,
//! so that a map's view (`bbox`) costs what it holds, not what the
//! catalog holds.
//!
//! The index is an R-tree (`rstar`) over the positions of one catalog
//! snapshot, built on the first query that needs it. Snapshots that only
//! move phones or change providers' statuses share it; a new listing
//! builds another on demand. Phones move without a new index: a query
//! checks each hit against the stream's current position and looks at
//! the streams placed live (the catalog's few phones) one by one.

use super::StreamEntry;
use dss_store::BBox;
use rstar::primitives::GeomWithData;
use rstar::{RTree, AABB};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// A position (lon, lat) and the stream there, with its rank in id
/// order (hits are sorted by rank: no string comparisons).
type Place = GeomWithData<[f64; 2], (u32, Arc<StreamEntry>)>;

/// The positions of a snapshot's streams.
pub struct Places {
    tree: RTree<Place>,
}

impl std::fmt::Debug for Places {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Places")
            .field("len", &self.tree.size())
            .finish()
    }
}

impl Places {
    /// The index of `streams`' positions (bulk-loaded: about 50 ms for
    /// 100,000 streams on one core).
    pub fn build(streams: &BTreeMap<String, Arc<StreamEntry>>) -> Places {
        let places = streams
            .values()
            .zip(0u32..)
            .filter_map(|(s, rank)| {
                let g = s.geo?;
                Some(GeomWithData::new([g.lon, g.lat], (rank, s.clone())))
            })
            .collect();
        Places {
            tree: RTree::bulk_load(places),
        }
    }

    /// The streams positioned inside `bbox`, in id order. `live` are the
    /// ids of the streams whose position may have changed since the index
    /// was built (phones): they are looked up in `streams` (the current
    /// snapshot) one by one. Every other entry is as the index has it:
    /// only a new listing changes them, and a new listing has a new index.
    pub fn within<'a>(
        &'a self,
        streams: &'a BTreeMap<String, Arc<StreamEntry>>,
        live: &HashSet<String>,
        bbox: &BBox,
    ) -> Vec<&'a Arc<StreamEntry>> {
        let inside = |s: &StreamEntry| s.geo.is_some_and(|g| bbox.contains(g.lat, g.lon));
        let mut indexed: Vec<&'a (u32, Arc<StreamEntry>)> = Vec::new();
        for (west, east) in bbox.lon_ranges() {
            let envelope = AABB::from_corners([west, bbox.min_lat], [east, bbox.max_lat]);
            indexed.extend(
                self.tree
                    .locate_in_envelope(&envelope)
                    .map(|place| &place.data)
                    .filter(|(_, s)| live.is_empty() || !live.contains(&s.id)),
            );
        }
        indexed.sort_unstable_by_key(|(rank, _)| *rank);
        // A box on the antimeridian meets a stream on it twice.
        indexed.dedup_by_key(|(rank, _)| *rank);
        let mut moved: Vec<&'a Arc<StreamEntry>> = live
            .iter()
            .filter_map(|id| streams.get(id))
            .filter(|s| inside(s))
            .collect();
        if moved.is_empty() {
            return indexed.into_iter().map(|(_, s)| s).collect();
        }
        moved.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let mut hits: Vec<&'a Arc<StreamEntry>> = indexed.into_iter().map(|(_, s)| s).collect();
        hits.extend(moved);
        // Two runs in id order: the stable sort merges them.
        hits.sort_by(|a, b| a.id.cmp(&b.id));
        hits
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{Catalog, Geo};
    use crate::http::state::testing::catalogue_at;

    /// The ids inside `w,s,e,n`.
    fn ids(catalog: &Catalog, bbox: &str) -> Vec<String> {
        let n: Vec<f64> = bbox
            .split(',')
            .map(|v| v.parse().expect("a number"))
            .collect();
        let bbox = dss_store::BBox {
            min_lon: n[0],
            min_lat: n[1],
            max_lon: n[2],
            max_lat: n[3],
        };
        let snap = catalog.snapshot();
        catalog
            .within(&snap, &bbox)
            .into_iter()
            .map(|s| s.id.clone())
            .collect()
    }

    #[test]
    fn a_box_finds_its_streams_in_id_order_and_follows_moving_phones() {
        let catalog = Catalog::new();
        catalogue_at(
            &catalog,
            "cams",
            &[
                ("z", Some((1.0, 2.0))),
                ("a", Some((1.5, 2.5))),
                ("far", Some((40.0, 50.0))),
                ("east", Some((0.0, 179.5))),
                ("west", Some((0.0, -179.5))),
                ("nowhere", None),
            ],
        );
        assert_eq!(ids(&catalog, "0,0,3,3"), ["cams-a", "cams-z"]);
        assert_eq!(ids(&catalog, "179,-1,-179,1"), ["cams-east", "cams-west"]);
        // A phone moves in, another out, after the index was built.
        catalog.set_geo("cams-far", Geo { lat: 2.0, lon: 2.0 });
        catalog.set_geo(
            "cams-z",
            Geo {
                lat: 30.0,
                lon: 2.0,
            },
        );
        assert_eq!(ids(&catalog, "0,0,3,3"), ["cams-a", "cams-far"]);
        // A new listing builds a new index.
        catalogue_at(&catalog, "cams", &[("b", Some((2.0, 1.0)))]);
        assert_eq!(ids(&catalog, "0,0,3,3"), ["cams-b"]);
    }
}
