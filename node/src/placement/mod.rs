//! Where partitions live: the consistent-hash ring and the partition table.
//!
//! - [`ring`]: places each partition on `replication_factor` distinct nodes with `hashring`
//!   and virtual nodes.
//! - [`Layout`]: the partition table (nodes, partition → replicas, epoch) that the metadata Raft
//!   group stores, so that every node agrees on it.

pub mod ring;

use serde::{Deserialize, Serialize};

/// A cluster member as the partition table knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Unique, never reused node id (> 0).
    pub id: u64,
    /// Region the node runs in (one cluster per region).
    pub region: String,
    /// Address other nodes and clients reach its gRPC server at.
    pub grpc_addr: String,
}

/// The partition table: which nodes hold which partition, at which epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Bumped on every change of placement; a router with an older epoch gets `WrongShard`.
    pub epoch: u64,
    /// Fixed number of partitions.
    pub partition_count: u32,
    /// Replicas per partition.
    pub replication_factor: u32,
    /// Members, sorted by id.
    pub nodes: Vec<NodeSpec>,
    /// `replicas[p]`: the nodes holding partition `p`; the first is its preferred leader.
    pub replicas: Vec<Vec<u64>>,
}

/// Why a layout cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// Fewer nodes than replicas per partition.
    #[error("replication_factor {rf} needs at least {rf} nodes, the cluster has {nodes}")]
    TooFewNodes {
        /// Requested replication factor.
        rf: u32,
        /// Nodes available.
        nodes: usize,
    },
    /// Partition count of zero or replication factor of zero.
    #[error("{0}")]
    Invalid(String),
}

impl Layout {
    /// Computes the layout of a new cluster (epoch 1). Deterministic: every node computes the
    /// same table from the same member list.
    pub fn initial(
        mut nodes: Vec<NodeSpec>,
        partition_count: u32,
        replication_factor: u32,
        vnodes_per_node: u32,
    ) -> Result<Layout, PlacementError> {
        if partition_count == 0 {
            return Err(PlacementError::Invalid(
                "partition count must be at least 1".into(),
            ));
        }
        if replication_factor == 0 {
            return Err(PlacementError::Invalid(
                "replication_factor must be at least 1".into(),
            ));
        }
        if nodes.len() < replication_factor as usize {
            return Err(PlacementError::TooFewNodes {
                rf: replication_factor,
                nodes: nodes.len(),
            });
        }
        nodes.sort_by_key(|n| n.id);
        let ids: Vec<u64> = nodes.iter().map(|n| n.id).collect();
        let mut replicas = ring::place(&ids, partition_count, replication_factor, vnodes_per_node);
        balance_preferred_leaders(&mut replicas);
        Ok(Layout {
            epoch: 1,
            partition_count,
            replication_factor,
            nodes,
            replicas,
        })
    }

    /// The node with id `id`.
    pub fn node(&self, id: u64) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Partitions with a replica on node `id`.
    pub fn partitions_of(&self, id: u64) -> Vec<u32> {
        (0..self.partition_count)
            .filter(|&p| self.replicas[p as usize].contains(&id))
            .collect()
    }

    /// A short fingerprint of everything that must never change under an existing data
    /// directory (members, partition count, replication).
    pub fn fingerprint(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|n| n.id.to_string()).collect();
        format!(
            "nodes={} partitions={} rf={}",
            nodes.join(","),
            self.partition_count,
            self.replication_factor
        )
    }
}

/// Reorders each replica set so that preferred leaders (first members) spread evenly over the
/// nodes, keeping every set's members. The ring decides where replicas go, but its first node
/// per partition is only as even as hashing makes it: with few partitions per node, one node
/// can be the first of several partitions and another of none, and since each group starts
/// with its first member as leader, that node would serve most writes and strong reads.
/// Partition by partition, the member that leads the fewest partitions so far moves to the
/// front (ties keep ring order); the other members keep their ring order. Deterministic.
fn balance_preferred_leaders(replicas: &mut [Vec<u64>]) {
    let mut led: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    for set in replicas.iter_mut() {
        let Some(best) =
            (0..set.len()).min_by_key(|&i| (led.get(&set[i]).copied().unwrap_or(0), i))
        else {
            continue;
        };
        let leader = set.remove(best);
        set.insert(0, leader);
        *led.entry(leader).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn nodes(n: u64) -> Vec<NodeSpec> {
        (1..=n)
            .map(|id| NodeSpec {
                id,
                region: "local".into(),
                grpc_addr: format!("127.0.0.1:{}", 7100 + id),
            })
            .collect()
    }

    #[test]
    fn every_partition_on_distinct_nodes() {
        for (n, rf) in [(3, 3), (5, 3), (7, 3), (4, 2), (1, 1)] {
            let l = Layout::initial(nodes(n), 64, rf, 64).unwrap();
            assert_eq!(l.replicas.len(), 64);
            for r in &l.replicas {
                let mut d = r.clone();
                d.sort();
                d.dedup();
                assert_eq!(d.len(), rf as usize, "{r:?}");
            }
        }
    }

    #[test]
    fn deterministic_regardless_of_member_order() {
        let mut rev = nodes(5);
        rev.reverse();
        assert_eq!(
            Layout::initial(nodes(5), 16, 3, 64),
            Layout::initial(rev, 16, 3, 64)
        );
    }

    #[test]
    fn rejects_impossible_layouts() {
        assert!(matches!(
            Layout::initial(nodes(2), 64, 3, 64),
            Err(PlacementError::TooFewNodes { .. })
        ));
        assert!(Layout::initial(nodes(3), 0, 3, 64).is_err());
        assert!(Layout::initial(nodes(3), 8, 0, 64).is_err());
    }

    /// Preferred leaders per node.
    fn leaders_per_node(l: &Layout) -> std::collections::BTreeMap<u64, usize> {
        let mut m = std::collections::BTreeMap::new();
        for n in &l.nodes {
            m.insert(n.id, 0);
        }
        for r in &l.replicas {
            *m.get_mut(&r[0]).expect("member") += 1;
        }
        m
    }

    #[test]
    fn preferred_leaders_are_even_when_every_node_holds_every_partition() {
        // rf = nodes: every node can lead every partition, so the split is exact (± 1).
        for (n, parts) in [(3, 3), (3, 6), (3, 64), (5, 5), (4, 7)] {
            let l = Layout::initial(nodes(n), parts, n as u32, 64).unwrap();
            let counts = leaders_per_node(&l);
            let (min, max) = (
                *counts.values().min().unwrap(),
                *counts.values().max().unwrap(),
            );
            assert!(max - min <= 1, "{n} nodes, {parts} partitions: {counts:?}");
        }
    }

    #[test]
    fn balancing_leaders_keeps_the_ring_replica_sets() {
        let ids: Vec<u64> = (1..=5).collect();
        let ring_sets = ring::place(&ids, 32, 3, 64);
        let l = Layout::initial(nodes(5), 32, 3, 64).unwrap();
        for (ring_set, set) in ring_sets.iter().zip(&l.replicas) {
            let (mut a, mut b) = (ring_set.clone(), set.clone());
            a.sort();
            b.sort();
            assert_eq!(a, b);
        }
        // With rf 3 of 5 the split is bounded by the ring's sets, but no node leads nothing
        // and none leads more than twice its share.
        let counts = leaders_per_node(&l);
        assert!(
            counts.values().all(|&c| (1..=2 * 32 / 5 + 1).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn preferred_leaders_spread_over_five_nodes() {
        let l = Layout::initial(nodes(5), 16, 3, 64).unwrap();
        let mut firsts: Vec<u64> = l.replicas.iter().map(|r| r[0]).collect();
        firsts.sort();
        firsts.dedup();
        assert!(firsts.len() >= 4, "preferred leaders on {firsts:?}");
    }
}
