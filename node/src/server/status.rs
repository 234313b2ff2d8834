//! Cluster status: per-group Raft metrics, locally and gathered from every node.

use std::time::Duration;

use ferrodyn_client::proto::{self, ferrodyn_client::FerrodynClient};

use crate::node::NodeCtx;
use crate::raft::groups::members_of;
use crate::storage::keys::{self, META_GROUP};

fn group_info(ctx: &NodeCtx, group: u64) -> proto::PartitionInfo {
    let mut info = proto::PartitionInfo {
        partition: keys::partition_of_group(group).unwrap_or(u32::MAX),
        replicas: members_of(&ctx.layout, group),
        epoch: ctx.layout.epoch,
        ..Default::default()
    };
    if let Some(raft) = ctx.groups.get(group) {
        let m = raft.metrics().borrow().clone();
        info.leader = m.current_leader.unwrap_or(0);
        info.term = m.current_term;
        info.last_applied = m.last_applied.map(|l| l.index).unwrap_or(0);
        info.last_log_index = m.last_log_index.unwrap_or(0);
    }
    info
}

/// Metrics of the groups hosted here.
pub fn local(ctx: &NodeCtx) -> proto::LocalStatusResponse {
    let mut groups: Vec<u64> = ctx.groups.iter().map(|(g, _)| *g).collect();
    groups.sort();
    proto::LocalStatusResponse {
        node_id: ctx.id,
        region: ctx.region.clone(),
        groups: groups.into_iter().map(|g| group_info(ctx, g)).collect(),
    }
}

/// The members, with reachability when known.
pub fn nodes(ctx: &NodeCtx, reachable: Option<&[u64]>) -> Vec<proto::NodeInfo> {
    ctx.layout
        .nodes
        .iter()
        .map(|n| proto::NodeInfo {
            id: n.id,
            region: n.region.clone(),
            grpc_addr: n.grpc_addr.clone(),
            reachable: reachable.is_none_or(|r| r.contains(&n.id)),
        })
        .collect()
}

/// The routing view: replicas and this node's leader hints per partition.
pub fn partition_table(ctx: &NodeCtx) -> Vec<proto::PartitionInfo> {
    (0..ctx.layout.partition_count)
        .map(|p| group_info(ctx, keys::group_of_partition(p)))
        .collect()
}

/// Asks every node for its local status and merges: for each group, the report of the node
/// that leads it (the freshest), else the most advanced replica's.
pub async fn cluster(ctx: &NodeCtx, timeout: Duration) -> proto::ClusterStatusResponse {
    let asks = ctx.layout.nodes.iter().map(|n| {
        let id = n.id;
        async move {
            if id == ctx.id {
                return Some(local(ctx));
            }
            ctx.peers.faults().pass(ctx.id, id).await.ok()?;
            let ch = ctx.peers.channel(id)?;
            let mut req = tonic::Request::new(proto::LocalStatusRequest {});
            req.set_timeout(timeout);
            tokio::time::timeout(timeout, FerrodynClient::new(ch).local_status(req))
                .await
                .ok()?
                .ok()
                .map(|r| r.into_inner())
        }
    });
    let reports: Vec<proto::LocalStatusResponse> = futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    let reachable: Vec<u64> = reports.iter().map(|r| r.node_id).collect();
    let merged = |group: u64| -> proto::PartitionInfo {
        let mut best = group_info(ctx, group);
        best.leader = 0;
        best.term = 0;
        best.last_applied = 0;
        best.last_log_index = 0;
        let mut best_rank = (false, 0u64, 0u64);
        for r in &reports {
            if let Some(g) = r.groups.iter().find(|g| {
                keys::group_of_partition(g.partition) == group
                    || (group == META_GROUP && g.partition == u32::MAX)
            }) {
                let rank = (g.leader == r.node_id, g.term, g.last_applied);
                if rank > best_rank {
                    best_rank = rank;
                    best = g.clone();
                }
            }
        }
        best
    };
    proto::ClusterStatusResponse {
        epoch: ctx.layout.epoch,
        partition_count: ctx.layout.partition_count,
        replication_factor: ctx.layout.replication_factor,
        nodes: nodes(ctx, Some(&reachable)),
        partitions: (0..ctx.layout.partition_count)
            .map(|p| merged(keys::group_of_partition(p)))
            .collect(),
        meta: Some(merged(META_GROUP)),
    }
}
