//! Where a wanted stream runs, as pure functions of the cluster's view:
//! the least loaded live host for a free stream, what an acquisition's
//! answer means for this host, and whether an owner can be relayed from.
//!
//! [`super::Cluster::claim`] reads the view and the store and carries the
//! answers out; everything decided here takes the server's clock as a
//! number, so it is unit-tested without a store or a clock.

use super::Role;
use dss_store::cluster::{Acquired, Lease, NodeRecord};
use dss_store::StoreError;
use std::collections::HashMap;

/// The live host (seen within `ttl_ms` of `now_ms`) with the fewest owned
/// streams; ties go to this host (`me`, which owns `mine`), then by id.
///
/// A host's load is the larger of what it reported and the unexpired
/// leases read (those this host took or placed since its last report are
/// among them), which are fresher than its own count.
pub(super) fn least_loaded<'a>(
    nodes: &'a [NodeRecord],
    leases: &[Lease],
    me: &str,
    mine: u32,
    now_ms: u64,
    ttl_ms: u64,
) -> Option<&'a NodeRecord> {
    let mut leased: HashMap<&str, u32> = HashMap::new();
    for l in leases.iter().filter(|l| !l.expired_at(now_ms)) {
        *leased.entry(l.owner.as_str()).or_default() += 1;
    }
    nodes
        .iter()
        .filter(|n| n.seen_ms + ttl_ms >= now_ms)
        .map(|n| {
            let seen = leased.get(n.id.as_str()).copied().unwrap_or(0);
            let reported = if n.id == me { mine } else { n.owned };
            (reported.max(seen), n.id != me, n.id.as_str(), n)
        })
        .min_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)))
        .map(|(_, _, _, n)| n)
}

/// How stream `id` is had from its owner `owner` (its record `node`, if
/// known), at server time `now_ms`.
pub(super) fn relay_from(
    node: Option<&NodeRecord>,
    owner: &str,
    id: &str,
    now_ms: u64,
    ttl_ms: u64,
) -> Role {
    match node {
        // Three heartbeats missed: the owner is dead or cut off; its
        // lease runs out soon and the stream is taken over then.
        Some(n) if n.seen_ms + ttl_ms / 2 < now_ms => Role::Wait(format!(
            "host {owner} stopped answering: taking the stream over when its lease expires"
        )),
        Some(n) if !n.advertise_rtmp.is_empty() => Role::Relay {
            owner: owner.to_string(),
            from: format!("{}/{id}", n.advertise_rtmp.trim_end_matches('/')),
        },
        _ => Role::Wait(format!(
            "stream is run by host {owner}, whose address is not known yet"
        )),
    }
}

/// What an acquisition's answer means for this host (`me`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Claimed {
    /// This host holds the lease now: it runs the stream.
    Mine(Lease),
    /// It was placed on another host (acquired for it): relay from it.
    Placed(Lease),
    /// Another host holds it: relay from it.
    Taken(Lease),
    /// Nothing can be decided now: why.
    Wait(String),
}

/// Reads the answer of acquiring a stream's lease.
pub(super) fn claimed(me: &str, answer: Result<Acquired, StoreError>) -> Claimed {
    match answer {
        Ok(Acquired::Held(l)) if l.owner == me => Claimed::Mine(l),
        Ok(Acquired::Held(l)) => Claimed::Placed(l),
        // Ours by an earlier epoch this host no longer acts on (lost in a
        // partition, then the store came back): wait for it to expire
        // rather than run on a stale epoch.
        Ok(Acquired::Busy(Some(l))) if l.owner == me => Claimed::Wait(format!(
            "this host's earlier lease (epoch {}) has not expired yet",
            l.epoch
        )),
        Ok(Acquired::Busy(Some(l))) => Claimed::Taken(l),
        Ok(Acquired::Busy(None)) => Claimed::Wait("the stream's lease is busy".into()),
        Err(e) => Claimed::Wait(format!("cluster store: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: u64 = 9_000;
    const NOW: u64 = 1_000_000;

    fn node(id: &str, owned: u32, seen_ms: u64) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            advertise_rtmp: format!("rtmp://{id}:1935/dss"),
            api: String::new(),
            running: 0,
            owned,
            seen_ms,
            started_ms: 0,
            key: String::new(),
            live_ms: TTL,
        }
    }

    fn lease(name: &str, owner: &str, renewed_ms: u64) -> Lease {
        Lease {
            name: name.into(),
            owner: owner.into(),
            epoch: 1,
            renewed_ms,
            ttl_ms: TTL,
        }
    }

    fn pick(nodes: &[NodeRecord], leases: &[Lease], mine: u32) -> Option<String> {
        least_loaded(nodes, leases, "a", mine, NOW, TTL).map(|n| n.id.clone())
    }

    #[test]
    fn a_free_stream_goes_to_the_least_loaded_live_host() {
        let nodes = [node("a", 0, NOW), node("b", 2, NOW), node("c", 1, NOW)];
        assert_eq!(pick(&nodes, &[], 3).as_deref(), Some("c"));
        // Dead hosts (not seen for a lease) get nothing, however idle.
        let nodes = [node("a", 0, NOW), node("b", 0, NOW - TTL - 1)];
        assert_eq!(pick(&nodes, &[], 1).as_deref(), Some("a"));
        assert_eq!(pick(&[], &[], 0), None);
    }

    #[test]
    fn ties_go_to_this_host_then_by_id() {
        let nodes = [node("c", 1, NOW), node("b", 1, NOW), node("a", 0, NOW)];
        assert_eq!(pick(&nodes, &[], 1).as_deref(), Some("a"));
        assert_eq!(pick(&nodes, &[], 2).as_deref(), Some("b"));
    }

    #[test]
    fn fresh_leases_count_over_stale_reports() {
        // b reported no streams but has since been given two; expired
        // leases count for nobody.
        let nodes = [node("a", 0, NOW), node("b", 0, NOW)];
        let leases = [
            lease("stream/x", "b", NOW),
            lease("stream/y", "b", NOW),
            lease("stream/z", "a", NOW - TTL - 1),
        ];
        assert_eq!(pick(&nodes, &leases, 1).as_deref(), Some("a"));
    }

    #[test]
    fn an_owner_is_relayed_from_while_it_answers() {
        let owner = node("b", 1, NOW);
        assert_eq!(
            relay_from(Some(&owner), "b", "cam1", NOW, TTL),
            Role::Relay {
                owner: "b".into(),
                from: "rtmp://b:1935/dss/cam1".into()
            }
        );
        let silent = node("b", 1, NOW - TTL / 2 - 1);
        assert!(matches!(
            relay_from(Some(&silent), "b", "cam1", NOW, TTL),
            Role::Wait(why) if why.contains("stopped answering")
        ));
        let unknown = NodeRecord {
            advertise_rtmp: String::new(),
            ..owner
        };
        assert!(matches!(
            relay_from(Some(&unknown), "b", "cam1", NOW, TTL),
            Role::Wait(why) if why.contains("not known yet")
        ));
        assert!(matches!(
            relay_from(None, "b", "cam1", NOW, TTL),
            Role::Wait(_)
        ));
    }

    #[test]
    fn an_acquisition_is_read_for_this_host() {
        let mine = lease("stream/x", "a", NOW);
        let theirs = lease("stream/x", "b", NOW);
        assert_eq!(
            claimed("a", Ok(Acquired::Held(mine.clone()))),
            Claimed::Mine(mine.clone())
        );
        assert_eq!(
            claimed("a", Ok(Acquired::Held(theirs.clone()))),
            Claimed::Placed(theirs.clone())
        );
        assert_eq!(
            claimed("a", Ok(Acquired::Busy(Some(theirs.clone())))),
            Claimed::Taken(theirs)
        );
        // Its own lease of an earlier epoch is not acted on: it waits.
        assert!(matches!(
            claimed("a", Ok(Acquired::Busy(Some(mine)))),
            Claimed::Wait(why) if why.contains("earlier lease")
        ));
        assert!(matches!(
            claimed("a", Ok(Acquired::Busy(None))),
            Claimed::Wait(_)
        ));
    }
}
