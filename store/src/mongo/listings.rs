//! Provider listings: a header per provider (`listings`) and its streams in
//! chunks of one generation (`listing_chunks`), so a listing of any size
//! stays under MongoDB's 16 MB document cap and readers switch to a new
//! generation in one update. A write with an epoch is fenced: it never
//! replaces a listing of a newer epoch (a newer refresher's).

use super::db::{int_field, Db};
use super::errors::is_duplicate_key;
use super::ops::Op;
use super::{MongoStore, LISTINGS, LISTING_CHUNKS, OP_OVERHEAD};
use crate::error::StoreError;
use crate::lenient;
use crate::queue::Failure;
use crate::types::{ListedStream, Listing, ListingStamp};
use bson::oid::ObjectId;
use bson::{doc, Bson, Document};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A listing chunk holds streams up to about this many BSON bytes. 4 MiB:
/// a quarter of MongoDB's 16 MB document cap, leaving room for one more
/// stream (at most [`crate::MAX_STREAM_BYTES`]) and the chunk's own fields.
const LISTING_CHUNK_BYTES: usize = 4 << 20;

/// A listing's header; its streams are in chunks of the same generation.
#[derive(Serialize, Deserialize)]
struct ListingHead {
    provider: String,
    #[serde(deserialize_with = "lenient::u64")]
    fetched_at_ms: u64,
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default)]
    epoch: Option<u64>,
    generation: String,
    #[serde(deserialize_with = "lenient::u32")]
    chunks: u32,
}

#[derive(Serialize)]
struct ChunkRef<'a> {
    provider: &'a str,
    generation: &'a str,
    seq: u32,
    streams: &'a [ListedStream],
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(deserialize_with = "lenient::u32")]
    seq: u32,
    streams: Vec<ListedStream>,
}

/// A queued listing write: its header fields and its encoded chunks.
pub(super) struct ListingWrite {
    pub(super) provider: String,
    generation: String,
    fetched_at_ms: u64,
    fingerprint: Option<String>,
    epoch: Option<u64>,
    pub(super) chunks: Vec<Document>,
}

/// Stores a provider's listing, replacing the previous one.
pub(super) async fn put(store: &MongoStore, listing: Listing) -> Result<(), StoreError> {
    let sizes = listing.validate()?;
    let generation = ObjectId::new().to_hex();
    let mut chunks = Vec::new();
    for (seq, range) in chunk_ranges(&sizes, LISTING_CHUNK_BYTES)
        .into_iter()
        .enumerate()
    {
        chunks.push(MongoStore::encode(
            LISTING_CHUNKS,
            &listing.provider,
            &ChunkRef {
                provider: &listing.provider,
                generation: &generation,
                seq: seq as u32,
                streams: &listing.streams[range],
            },
        )?);
    }
    let total: usize = sizes.iter().sum();
    let op = Op::PutListing(ListingWrite {
        provider: listing.provider,
        generation,
        fetched_at_ms: listing.fetched_at_ms,
        fingerprint: listing.fingerprint,
        epoch: listing.epoch,
        chunks,
    });
    store.queue.submit(op, total + OP_OVERHEAD).await
}

/// The provider's stored listing, if any.
pub(super) async fn get(store: &MongoStore, provider: &str) -> Result<Option<Listing>, StoreError> {
    // A concurrent put may replace the chunks between the two reads:
    // then the header has moved on, and reading again gets the new ones.
    // Three tries: a put takes milliseconds, two in a row are rare.
    for _ in 0..3 {
        let Some(head) = store
            .find_one::<ListingHead>(LISTINGS, "get listing", doc! {"provider": provider})
            .await?
        else {
            return Ok(None);
        };
        // One chunk per reply: a server that does not split replies at
        // 16 MB (CongoDB) cannot send several ~4 MiB chunks at once.
        let coll = store.db.typed::<Chunk>(LISTING_CHUNKS);
        let filter = doc! {"provider": provider, "generation": &head.generation};
        let mut chunks = store
            .read(LISTING_CHUNKS, "get listing chunks", async move {
                coll.find(filter)
                    .batch_size(1)
                    .await?
                    .try_collect::<Vec<Chunk>>()
                    .await
            })
            .await?;
        chunks.sort_by_key(|c| c.seq);
        let complete = chunks.len() == head.chunks as usize
            && chunks.iter().enumerate().all(|(i, c)| c.seq as usize == i);
        if complete {
            return Ok(Some(Listing {
                provider: head.provider,
                fetched_at_ms: head.fetched_at_ms,
                fingerprint: head.fingerprint,
                epoch: head.epoch,
                streams: chunks.into_iter().flat_map(|c| c.streams).collect(),
            }));
        }
    }
    Err(StoreError::Decode {
        collection: LISTING_CHUNKS,
        key: provider.to_string(),
        message: "the listing's chunks are incomplete".into(),
    })
}

/// When the provider's listing was fetched, and by what: its header only.
pub(super) async fn stamp(
    store: &MongoStore,
    provider: &str,
) -> Result<Option<ListingStamp>, StoreError> {
    let head = store
        .find_one::<ListingHead>(LISTINGS, "get listing stamp", doc! {"provider": provider})
        .await?;
    Ok(head.map(|h| ListingStamp {
        fetched_at_ms: h.fetched_at_ms,
        fingerprint: h.fingerprint,
    }))
}

/// Forgets the provider's listing.
pub(super) async fn delete(store: &MongoStore, provider: &str) -> Result<(), StoreError> {
    let op = Op::DeleteListing {
        provider: provider.to_string(),
    };
    store.queue.submit(op, provider.len() + OP_OVERHEAD).await
}

/// Applies a listing write: the new generation's chunks, then the header
/// pointing at them (fenced by epoch), then the old chunks removed.
pub(super) async fn apply_put(db: &Db, write: &ListingWrite) -> Result<(), Failure> {
    let ListingWrite {
        provider,
        generation,
        fetched_at_ms,
        fingerprint,
        epoch,
        chunks,
    } = write;
    if let Some(e) = epoch {
        if let Some(stored) = listing_epoch(db, provider).await? {
            if stored > *e {
                superseded(provider, *e, stored);
                return Ok(());
            }
        }
    }
    let ch = db.coll(LISTING_CHUNKS);
    // A retry first removes what an earlier attempt inserted.
    ch.delete_many(doc! {"provider": provider, "generation": generation})
        .await
        .map_err(|e| db.failure(LISTING_CHUNKS, "clear listing chunks", e))?;
    if !chunks.is_empty() {
        ch.insert_many(chunks)
            .await
            .map_err(|e| db.failure(LISTING_CHUNKS, "insert listing chunks", e))?;
    }
    // Readers switch to the new chunks here, in one update;
    // fenced, only over a listing of no newer epoch (else the
    // upsert loses to the existing document).
    let mut filter = doc! {"provider": provider};
    let mut set = doc! {
        "fetched_at_ms": *fetched_at_ms as i64,
        "fingerprint": fingerprint,
        "generation": generation,
        "chunks": chunks.len() as i64,
    };
    if let Some(e) = epoch {
        let e = (*e).min(i64::MAX as u64) as i64;
        filter.insert(
            "$or",
            vec![doc! {"epoch": Bson::Null}, doc! {"epoch": {"$lte": e}}],
        );
        set.insert("epoch", e);
    }
    let updated = db
        .coll(LISTINGS)
        .update_one(filter, doc! {"$set": set})
        .upsert(true)
        .await;
    match updated {
        Err(err) if epoch.is_some() && is_duplicate_key(&err) => {
            // A newer refresher wrote meanwhile: its listing stays.
            ch.delete_many(doc! {"provider": provider, "generation": generation})
                .await
                .map_err(|e| db.failure(LISTING_CHUNKS, "clear listing chunks", e))?;
            let stored = listing_epoch(db, provider).await?.unwrap_or_default();
            superseded(provider, epoch.unwrap_or_default(), stored);
            return Ok(());
        }
        other => {
            other.map_err(|e| db.failure(LISTINGS, "update listing", e))?;
        }
    }
    ch.delete_many(doc! {"provider": provider, "generation": {"$ne": generation}})
        .await
        .map_err(|e| db.failure(LISTING_CHUNKS, "remove old listing chunks", e))?;
    Ok(())
}

/// Applies a listing's removal: its header and every chunk.
pub(super) async fn apply_delete(db: &Db, provider: &str) -> Result<(), Failure> {
    db.coll(LISTINGS)
        .delete_many(doc! {"provider": provider})
        .await
        .map_err(|e| db.failure(LISTINGS, "delete listing", e))?;
    db.coll(LISTING_CHUNKS)
        .delete_many(doc! {"provider": provider})
        .await
        .map_err(|e| db.failure(LISTING_CHUNKS, "delete listing chunks", e))?;
    Ok(())
}

/// The epoch of provider `provider`'s stored listing, if fenced.
async fn listing_epoch(db: &Db, provider: &str) -> Result<Option<u64>, Failure> {
    let head = db
        .coll(LISTINGS)
        .find_one(doc! {"provider": provider})
        .await
        .map_err(|e| db.failure(LISTINGS, "read listing epoch", e))?;
    Ok(head
        .filter(|h| h.contains_key("epoch"))
        .map(|h| int_field(&h, "epoch")))
}

/// Says that a fenced listing write lost to a newer refresher's.
fn superseded(provider: &str, epoch: u64, stored: u64) {
    tracing::info!(
        provider,
        epoch,
        stored_epoch = stored,
        "listing write superseded: a newer refresher's listing is stored; this one is dropped"
    );
}

/// Splits items of the given sizes into consecutive ranges of at most
/// `limit` bytes each (an item larger than `limit` gets a range of its own).
fn chunk_ranges(sizes: &[usize], limit: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && bytes + size > limit {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::chunk_ranges;

    #[test]
    fn listings_are_chunked_under_the_limit() {
        assert_eq!(chunk_ranges(&[], 10), vec![]);
        assert_eq!(chunk_ranges(&[4, 4, 4, 4], 10), vec![0..2, 2..4]);
        assert_eq!(
            chunk_ranges(&[12, 1, 10, 1], 10),
            vec![0..1, 1..2, 2..3, 3..4]
        );
        assert_eq!(chunk_ranges(&[5, 5, 5], 10), vec![0..2, 2..3]);
        // 20k streams of 1 KiB: each chunk stays far below MongoDB's 16 MB.
        let sizes = vec![1024; 20_000];
        let ranges = chunk_ranges(&sizes, super::LISTING_CHUNK_BYTES);
        assert!(ranges.len() >= 5);
        assert!(ranges
            .iter()
            .all(|r| r.len() * 1024 <= super::LISTING_CHUNK_BYTES));
        assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), 20_000);
    }
}
