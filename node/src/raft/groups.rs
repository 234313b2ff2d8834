//! The Raft groups hosted by this node: created at start from the layout, initialized exactly
//! once, looked up by id for every request and message.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use openraft::BasicNode;
use rocksdb::WriteBatch;
use tokio::sync::watch;

use super::log_store::LogStore;
use super::network::{NetworkFactory, Peers};
use super::proposer::Proposer;
use super::state_machine::StateMachine;
use super::RaftHandle;
use crate::catalog::CatalogRef;
use crate::error::NodeError;
use crate::placement::Layout;
use crate::storage::keys::{self, MetaKind, CF_RAFT_META, META_GROUP};
use crate::storage::{Durability, Storage};

/// Members of the metadata group: every node of the initial cluster.
pub fn meta_members(layout: &Layout) -> Vec<u64> {
    layout.nodes.iter().map(|n| n.id).collect()
}

/// Members of group `group` under `layout`.
pub fn members_of(layout: &Layout, group: u64) -> Vec<u64> {
    match keys::partition_of_group(group) {
        None => meta_members(layout),
        Some(p) => layout.replicas.get(p as usize).cloned().unwrap_or_default(),
    }
}

/// The groups of this node.
pub struct Groups {
    map: HashMap<u64, RaftHandle>,
    /// Each group's proposal batcher; writes go through it rather than to `client_write`.
    proposers: HashMap<u64, Proposer>,
}

impl Groups {
    /// Creates every group this node is a member of, and initializes those it is responsible
    /// for (the first member) unless that was done before.
    pub async fn start(
        node_id: u64,
        layout: &Layout,
        storage: &Storage,
        peers: Arc<Peers>,
        config: Arc<openraft::Config>,
        max_inflight_proposals: usize,
        catalog_tx: watch::Sender<CatalogRef>,
    ) -> Result<Groups, NodeError> {
        let mut map = HashMap::new();
        let mut proposers = HashMap::new();
        let mut catalog_tx = Some(catalog_tx);
        let groups: Vec<u64> = std::iter::once(META_GROUP)
            .chain(
                layout
                    .partitions_of(node_id)
                    .into_iter()
                    .map(keys::group_of_partition),
            )
            .collect();
        for group in groups {
            let members = members_of(layout, group);
            if !members.contains(&node_id) {
                continue;
            }
            let log = LogStore::new(group, storage.clone());
            let tx = if group == META_GROUP {
                catalog_tx.take()
            } else {
                None
            };
            let sm = StateMachine::open(group, storage.clone(), log.progress(), tx).await?;
            let net = NetworkFactory::new(group, peers.clone());
            let raft = openraft::Raft::new(node_id, config.clone(), net, log, sm)
                .await
                .map_err(|e| NodeError::Startup(format!("raft group {group}: {e}")))?;
            // Exactly one node initializes a group: its first member (the preferred leader),
            // and only once, recorded durably.
            if members[0] == node_id {
                initialize_once(storage, group, &raft, layout, &members).await?;
            }
            proposers.insert(
                group,
                Proposer::start(
                    group,
                    raft.clone(),
                    max_inflight_proposals,
                    storage.metrics().clone(),
                ),
            );
            map.insert(group, raft);
        }
        Ok(Groups { map, proposers })
    }

    /// The group `group`, if hosted here.
    pub fn get(&self, group: u64) -> Option<&RaftHandle> {
        self.map.get(&group)
    }

    /// The proposal batcher of `group`, if hosted here.
    pub fn proposer(&self, group: u64) -> Option<&Proposer> {
        self.proposers.get(&group)
    }

    /// Every hosted group, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &RaftHandle)> {
        self.map.iter()
    }

    /// Stops every group and waits for each to finish: first the proposal batchers (no new
    /// entries), then the Raft groups.
    pub async fn shutdown(&self) {
        futures::future::join_all(self.proposers.values().map(Proposer::shutdown)).await;
        let stops = self.map.values().map(|r| async move {
            let _ = r.shutdown().await;
        });
        futures::future::join_all(stops).await;
    }
}

async fn initialize_once(
    storage: &Storage,
    group: u64,
    raft: &RaftHandle,
    layout: &Layout,
    members: &[u64],
) -> Result<(), NodeError> {
    let key = keys::meta_key(group, MetaKind::Initialized);
    let done = storage
        .read(move |db| {
            Ok(db
                .get_cf(db.cf_handle(CF_RAFT_META).expect("cf"), key)?
                .is_some())
        })
        .await?;
    if done {
        return Ok(());
    }
    let already = raft
        .is_initialized()
        .await
        .map_err(|e| NodeError::Startup(format!("raft group {group}: {e}")))?;
    if !already {
        let nodes: BTreeMap<u64, BasicNode> = members
            .iter()
            .map(|id| {
                (
                    *id,
                    BasicNode::new(
                        layout
                            .node(*id)
                            .map(|n| n.grpc_addr.clone())
                            .unwrap_or_default(),
                    ),
                )
            })
            .collect();
        if let Err(e) = raft.initialize(nodes).await {
            // NotAllowed means the group already has state (e.g. a crash after initializing but
            // before recording it): that is the "done" we want.
            tracing::info!(group, error = %e, "initialize skipped");
        }
    }
    let mut b = WriteBatch::default();
    b.put_cf(storage.cf(CF_RAFT_META), key, [1u8]);
    storage.write(b, Durability::Sync).await?;
    Ok(())
}
