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
        let replicas = ring::place(&ids, partition_count, replication_factor, vnodes_per_node);
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

    #[test]
    fn preferred_leaders_spread_over_five_nodes() {
        let l = Layout::initial(nodes(5), 16, 3, 64).unwrap();
        let mut firsts: Vec<u64> = l.replicas.iter().map(|r| r[0]).collect();
        firsts.sort();
        firsts.dedup();
        assert!(firsts.len() >= 4, "preferred leaders on {firsts:?}");
    }
}
