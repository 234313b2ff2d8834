//! One Ferrodyn node: storage, groups, peers and catalog assembled, plus the shared operations
//! request handlers use (propose, linearizable-read barrier, table lookup, leader hints).

use std::sync::Arc;
use std::time::Duration;

use ferrodyn_client::error::WireError;
use openraft::error::{CheckIsLeaderError, Fatal, RaftError};
use tokio::sync::watch;

use crate::catalog::{CatalogRef, TableDesc};
use crate::clock::Hlc;
use crate::config::{BrokenMode, NodeConfig, TestingConfig};
use crate::error::{NodeError, NodeResult};
use crate::placement::Layout;
use crate::raft::groups::Groups;
use crate::raft::network::{FaultInjector, Peers};
use crate::raft::proposer::ProposeError;
use crate::raft::{raft_config, Command, CommandResult, Rejection};
use crate::storage::disk::DiskReserve;
use crate::storage::keys::{self, CF_NODE, META_GROUP, NODE_ID_KEY, NODE_LAYOUT_KEY};
use crate::storage::{Durability, Storage};

/// How long a proposal may wait to commit before the caller is told `Unavailable` (the write
/// may or may not take effect later).
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a request handler needs, shared by all handlers of the node.
pub struct NodeCtx {
    /// This node's id.
    pub id: u64,
    /// This node's region.
    pub region: String,
    /// The partition table this node runs with.
    pub layout: Layout,
    /// The Raft groups hosted here.
    pub groups: Groups,
    /// The node's RocksDB.
    pub storage: Storage,
    /// Free space on the data disk against `min_free_disk_mb`.
    pub disk: DiskReserve,
    /// Channels to the other nodes.
    pub peers: Arc<Peers>,
    /// The catalog as applied by the local metadata replica.
    pub catalog: watch::Receiver<CatalogRef>,
    /// Versions for last-writer-wins; the node's wall clock (with any test-only offset).
    pub clock: Hlc,
    /// Test-only options (all default unless started with `--unsafe-test-mode`).
    pub testing: TestingConfig,
}

impl NodeCtx {
    /// Opens the data directory, checks it belongs to this node and cluster, and starts every
    /// Raft group the node hosts.
    pub async fn open(cfg: &NodeConfig, faults: Arc<FaultInjector>) -> NodeResult<NodeCtx> {
        let layout = Layout::initial(
            cfg.members(),
            cfg.partitions,
            cfg.replication_factor,
            cfg.vnodes_per_node,
        )
        .map_err(|e| NodeError::Startup(e.to_string()))?;
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            NodeError::Startup(format!(
                "cannot create data_dir {}: {e}",
                cfg.data_dir.display()
            ))
        })?;
        let storage = Storage::open(&cfg.data_dir.join("db")).map_err(|e| {
            NodeError::Startup(format!(
                "cannot open database in {}: {e}",
                cfg.data_dir.display()
            ))
        })?;
        check_identity(&storage, cfg.node_id, &layout).await?;
        let addrs = layout
            .nodes
            .iter()
            .map(|n| (n.id, n.grpc_addr.clone()))
            .collect();
        // Clients are told the layout's (advertised) addresses; this node dials its own
        // config's `peer_addr` overrides where it has them (the layout, recorded in the metadata
        // group by whichever node initialized it, knows nothing of them).
        let peers =
            Arc::new(Peers::new(cfg.node_id, addrs, faults).with_dial_addrs(cfg.peer_dial_addrs()));
        let (catalog_tx, catalog_rx) = watch::channel(CatalogRef::default());
        let rcfg = Arc::new(
            raft_config(&cfg.raft)
                .validate()
                .map_err(|e| NodeError::Startup(format!("raft settings: {e}")))?,
        );
        let groups = Groups::start(
            cfg.node_id,
            &layout,
            &storage,
            peers.clone(),
            rcfg,
            cfg.raft.max_inflight_proposals,
            catalog_tx,
        )
        .await?;
        let disk = DiskReserve::new(&cfg.data_dir, cfg.min_free_disk_mb);
        if let Err(e) = disk.refresh() {
            tracing::warn!(node = cfg.node_id, error = %e, "cannot measure the data disk's free space");
        }
        Ok(NodeCtx {
            id: cfg.node_id,
            region: cfg.region.clone(),
            layout,
            groups,
            storage,
            disk,
            peers,
            catalog: catalog_rx,
            clock: Hlc::with_offset_ms(cfg.testing.clock_offset_ms),
            testing: cfg.testing.clone(),
        })
    }

    /// Whether the deliberately broken `mode` is on (test-only; see `TestingConfig::broken`).
    pub fn broken(&self, mode: BrokenMode) -> bool {
        self.testing.broken_mode() == Some(mode)
    }

    /// The current leader of `group` as this node knows it.
    pub fn leader_of(&self, group: u64) -> Option<u64> {
        self.groups
            .get(group)
            .and_then(|r| r.metrics().borrow().current_leader)
    }

    /// A `NotLeader` error for `group` carrying the best leader hint.
    pub fn not_leader(&self, group: u64, leader: Option<u64>) -> NodeError {
        let leader = leader
            .or_else(|| self.leader_of(group))
            .filter(|l| *l != self.id || leader.is_some());
        NodeError::NotLeader {
            group,
            leader,
            leader_addr: leader.and_then(|l| self.peers.addr(l).map(str::to_owned)),
        }
    }

    /// Replicates `cmd` through `group` (this node must lead it) and returns its result.
    pub async fn propose(&self, group: u64, cmd: Command) -> NodeResult<CommandResult> {
        let proposer = self
            .groups
            .proposer(group)
            .ok_or_else(|| self.not_leader(group, None))?;
        if cmd.adds_data() {
            self.disk
                .check_room()
                .map_err(|why| NodeError::Unavailable(format!("node {}: {why}", self.id)))?;
        }
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(PROPOSE_TIMEOUT, proposer.propose(cmd)).await;
        self.storage
            .metrics()
            .observe_commit(matches!(r, Ok(Ok(_))), started);
        match r {
            Err(_) => Err(NodeError::Unavailable(format!(
                "shard {group}: write not committed within {}s (it may still apply)",
                PROPOSE_TIMEOUT.as_secs()
            ))),
            Ok(Ok(result)) => Ok(result),
            Ok(Err(ProposeError::ForwardToLeader(leader))) => Err(self.not_leader(group, leader)),
            Ok(Err(ProposeError::Internal(e))) => Err(NodeError::Internal(e)),
            Ok(Err(ProposeError::Stopped(e))) => {
                Err(NodeError::Unavailable(format!("shard {group}: {e}")))
            }
        }
    }

    /// Waits until a read of `group` on this node is linearizable: confirms leadership with a
    /// quorum (ReadIndex) and waits for the state machine to apply up to the read index.
    pub async fn read_barrier(&self, group: u64) -> NodeResult<()> {
        let raft = self
            .groups
            .get(group)
            .ok_or_else(|| self.not_leader(group, None))?;
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(PROPOSE_TIMEOUT, raft.ensure_linearizable()).await;
        self.storage
            .metrics()
            .observe_read_index(matches!(r, Ok(Ok(_))), started);
        match r {
            Err(_) => Err(NodeError::Unavailable(format!(
                "shard {group}: leadership not confirmed in time"
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                Err(self.not_leader(group, f.leader_id))
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => {
                Err(NodeError::Unavailable(format!("shard {group}: {e}")))
            }
            Ok(Err(RaftError::Fatal(e))) => {
                Err(NodeError::Unavailable(format!("shard {group}: {e}")))
            }
        }
    }

    /// The table `name` from the local catalog replica.
    pub fn local_table(&self, name: &str) -> Option<TableDesc> {
        self.catalog.borrow().tables.get(name).cloned()
    }

    /// The Raft group holding partition-key bytes `pk`.
    pub fn group_for_pk(&self, pk: &[u8]) -> u64 {
        keys::group_of_partition(ferrodyn_client::partition::partition_of(
            pk,
            self.layout.partition_count,
        ))
    }

    /// The error a rejected metadata command becomes.
    pub fn rejection(r: Rejection) -> NodeError {
        match r {
            Rejection::TableExists(n) => {
                NodeError::ResourceInUse(format!("Table already exists: {n}"))
            }
            Rejection::TableNotFound(n) => NodeError::ResourceNotFound(format!(
                "Requested resource not found: Table: {n} not found"
            )),
        }
    }

    /// Records the layout in the metadata group when this node leads it and it is missing.
    pub async fn ensure_layout_recorded(&self) {
        if self.leader_of(META_GROUP) != Some(self.id) || self.catalog.borrow().layout.is_some() {
            return;
        }
        if let Err(e) = self
            .propose(META_GROUP, Command::SetLayout(self.layout.clone()))
            .await
        {
            tracing::debug!(error = %e, "recording layout failed; will retry");
        }
    }

    /// Sweeps data of dropped tables out of every group this node leads; returns the
    /// `(group, table)` pairs swept. Groups led elsewhere are swept by their own leaders.
    pub async fn sweep_dropped(
        &self,
        dropped: &[u64],
        done: &std::collections::HashSet<(u64, u64)>,
    ) -> Vec<(u64, u64)> {
        let mut swept = Vec::new();
        for (&group, raft) in self.groups.iter() {
            if group == META_GROUP || raft.metrics().borrow().current_leader != Some(self.id) {
                continue;
            }
            for &table in dropped {
                if done.contains(&(group, table)) {
                    continue;
                }
                match self.propose(group, Command::DropTableData { table }).await {
                    Ok(_) => swept.push((group, table)),
                    Err(e) => {
                        tracing::warn!(group, table, error = %e, "sweeping dropped table failed; will retry")
                    }
                }
            }
        }
        swept
    }
}

/// A data directory belongs to one node id and one cluster layout forever: refuse to start
/// a node on another node's data, or with a membership that does not match the data.
async fn check_identity(storage: &Storage, node_id: u64, layout: &Layout) -> NodeResult<()> {
    let fp = layout.fingerprint();
    let (stored_id, stored_fp) = storage
        .read(|db| {
            let cf = db.cf_handle(CF_NODE).expect("cf");
            Ok((db.get_cf(cf, NODE_ID_KEY)?, db.get_cf(cf, NODE_LAYOUT_KEY)?))
        })
        .await?;
    match stored_id {
        Some(id) => {
            let id = u64::from_be_bytes(id.as_slice().try_into().unwrap_or([0; 8]));
            if id != node_id {
                return Err(NodeError::Startup(format!(
                    "data directory belongs to node {id}, but this node is configured as node {node_id}"
                )));
            }
            let stored_fp = String::from_utf8_lossy(&stored_fp.unwrap_or_default()).to_string();
            if stored_fp != fp {
                return Err(NodeError::Startup(format!(
                    "data directory was created for cluster [{stored_fp}], but the config describes [{fp}]; \
                     membership, partitions and replication cannot change under existing data"
                )));
            }
            Ok(())
        }
        None => {
            let mut b = rocksdb::WriteBatch::default();
            b.put_cf(storage.cf(CF_NODE), NODE_ID_KEY, node_id.to_be_bytes());
            b.put_cf(storage.cf(CF_NODE), NODE_LAYOUT_KEY, fp.as_bytes());
            storage.write(b, Durability::Sync).await?;
            Ok(())
        }
    }
}

/// Converts a forwarded call's status into a node error.
pub fn from_status(s: tonic::Status) -> NodeError {
    NodeError::from(WireError::from_status(&s))
}

/// A running node: its context, gRPC server, metrics endpoint and background tasks, stopped by
/// [`Node::shutdown`] (the one shutdown path).
pub struct Node {
    ctx: Arc<NodeCtx>,
    addr: std::net::SocketAddr,
    metrics_addr: Option<std::net::SocketAddr>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Set by the watchdog when a Raft group here stopped on a fatal error.
    failed: watch::Receiver<Option<String>>,
}

impl Node {
    /// Validates `cfg`, binds its listen address and starts the node.
    pub async fn start(cfg: NodeConfig) -> NodeResult<Node> {
        cfg.validate()
            .map_err(|e| NodeError::Startup(e.to_string()))?;
        let listen = cfg.listen_addr();
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| NodeError::Startup(format!("cannot listen on {listen}: {e}")))?;
        Self::start_with(cfg, listener, Arc::new(FaultInjector::default())).await
    }

    /// Starts the node on an already bound listener (tests bind `127.0.0.1:0` first), with the
    /// given fault injector on its outgoing links.
    pub async fn start_with(
        cfg: NodeConfig,
        listener: tokio::net::TcpListener,
        faults: Arc<FaultInjector>,
    ) -> NodeResult<Node> {
        cfg.validate()
            .map_err(|e| NodeError::Startup(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| NodeError::Startup(e.to_string()))?;
        // Bound before anything else starts, so a taken port fails the start cleanly.
        let metrics_listener = match &cfg.metrics_listen {
            Some(m) => Some(tokio::net::TcpListener::bind(m).await.map_err(|e| {
                NodeError::Startup(format!("cannot listen on {m} (metrics_listen): {e}"))
            })?),
            None => None,
        };
        let metrics_addr = match &metrics_listener {
            Some(l) => Some(
                l.local_addr()
                    .map_err(|e| NodeError::Startup(e.to_string()))?,
            ),
            None => None,
        };
        if !cfg.testing.is_default() {
            tracing::warn!(
                node = cfg.node_id,
                options = ?cfg.testing.active(),
                broken = ?cfg.testing.broken,
                clock_control = cfg.testing.clock_control,
                clock_offset_ms = cfg.testing.clock_offset_ms,
                "UNSAFE TEST MODE: test-only options are active; this node may serve wrong \
                 answers or a skewed clock on purpose. Never run it in production."
            );
        }
        let ctx = Arc::new(NodeCtx::open(&cfg, faults).await?);
        let (stop, stop_rx) = watch::channel(false);
        let server = tokio::spawn(crate::server::serve(ctx.clone(), listener, stop_rx.clone()));
        let housekeeping = tokio::spawn(housekeeping(ctx.clone(), stop_rx.clone()));
        let pacer = tokio::spawn(heartbeats(
            ctx.clone(),
            stop_rx,
            Duration::from_millis(cfg.raft.heartbeat_ms),
        ));
        let (failed_tx, failed) = watch::channel(None);
        let watchdog = tokio::spawn(watchdog(ctx.clone(), stop.subscribe(), failed_tx));
        let mut tasks = vec![housekeeping, pacer, watchdog];
        if let Some(l) = metrics_listener {
            let mut metrics_stop = stop.subscribe();
            tasks.push(tokio::spawn(crate::metrics::serve_node(
                ctx.clone(),
                l,
                async move {
                    let _ = metrics_stop.wait_for(|s| *s).await;
                },
            )));
        }
        tracing::info!(
            node = cfg.node_id,
            region = %cfg.region,
            %addr,
            metrics = ?metrics_addr,
            "node started"
        );
        Ok(Node {
            ctx,
            addr,
            metrics_addr,
            stop,
            server,
            tasks,
            failed,
        })
    }

    /// The node's shared context.
    pub fn ctx(&self) -> &Arc<NodeCtx> {
        &self.ctx
    }

    /// The address the gRPC server is bound to.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The address the metrics endpoint (`GET /metrics`) is bound to, when enabled.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_addr
    }

    /// Resolves, with the reason, once one of this node's Raft groups has stopped on a fatal
    /// error; never on a healthy node. A group stops that way when a write to its log or state
    /// machine fails (a full or failing disk) or its core panics; it cannot go on without
    /// risking what it acknowledged, and the node cannot serve it until restarted. The binary
    /// then shuts the node down and exits non-zero (fail-stop, as etcd and TiKV do), so a
    /// supervisor or operator sees it, and the group's other replicas take over meanwhile.
    pub async fn failed(&self) -> String {
        let mut rx = self.failed.clone();
        let reason = rx
            .wait_for(|r| r.is_some())
            .await
            .ok()
            .and_then(|r| r.clone());
        match reason {
            Some(r) => r,
            // The watchdog ended without a failure: the node is shutting down.
            None => std::future::pending().await,
        }
    }

    /// The failure [`Node::failed`] reports, if there is one yet.
    pub fn failure(&self) -> Option<String> {
        self.failed.borrow().clone()
    }

    /// Stops serving (gRPC and metrics), stops every Raft group, and waits for all of it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.ctx.groups.shutdown().await;
        // Buffered writes (applies) are in the WAL file but maybe not on disk: fsync it once,
        // so a restart after a clean shutdown never needs to re-apply them.
        if let Err(e) = self
            .ctx
            .storage
            .write(rocksdb::WriteBatch::default(), Durability::Sync)
            .await
        {
            tracing::warn!(error = %e, "final WAL flush failed");
        }
        let _ = self.server.await;
        tracing::info!(node = self.ctx.id, "node stopped");
    }
}

/// The node's one heartbeat clock: every interval, every group this node leads sends its
/// heartbeats at the same moment, so the per-peer senders coalesce them into one call per
/// peer (openraft's own per-group heartbeat timers are off, see `raft_config`).
async fn heartbeats(ctx: Arc<NodeCtx>, mut stop: watch::Receiver<bool>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased; // once stopping, never start another round
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        ctx.peers.begin_heartbeat_burst();
        for (_, raft) in ctx.groups.iter() {
            let leads = raft.metrics().borrow().current_leader == Some(ctx.id);
            if leads {
                let _ = raft.trigger().heartbeat().await;
            }
        }
    }
}

/// How often the watchdog looks at the Raft groups.
const WATCHDOG_EVERY: Duration = Duration::from_millis(250);

/// Watchdog rounds between two measurements of the data disk's free space (once a second).
const DISK_EVERY_ROUNDS: u64 = 4;

/// Watches every Raft group hosted here and reports the first that stopped on a fatal error
/// (see [`Node::failed`]); a group stopped by shutdown is not a failure. Also measures the
/// data disk's free space (see `storage::disk`).
async fn watchdog(
    ctx: Arc<NodeCtx>,
    mut stop: watch::Receiver<bool>,
    failed: watch::Sender<Option<String>>,
) {
    let mut tick = tokio::time::interval(WATCHDOG_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for round in 0u64.. {
        tokio::select! {
            biased; // once stopping, never start another round
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        if round % DISK_EVERY_ROUNDS == 0 {
            let c = ctx.clone();
            match tokio::task::spawn_blocking(move || c.disk.refresh()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(node = ctx.id, error = %e, "free space not measured"),
                Err(e) => tracing::warn!(node = ctx.id, error = %e, "free space not measured"),
            }
        }
        let dead = ctx.groups.iter().find_map(|(group, raft)| {
            match &raft.metrics().borrow().running_state {
                Ok(()) | Err(Fatal::Stopped) => None,
                Err(e) => Some(format!("raft group {group} stopped: {e}")),
            }
        });
        if let Some(reason) = dead {
            // Reported before it is logged: nothing may keep the node from stopping.
            failed.send_replace(Some(reason.clone()));
            tracing::error!(
                node = ctx.id,
                region = %ctx.region,
                %reason,
                "a Raft group stopped on a fatal error; the node must be stopped, the cause \
                 fixed (a full or failing disk?) and the node restarted"
            );
            return;
        }
    }
}

/// Periodic upkeep: record the layout in the metadata group, sweep dropped tables' data.
async fn housekeeping(ctx: Arc<NodeCtx>, mut stop: watch::Receiver<bool>) {
    // (group, table) pairs this node has swept; a group led here later is swept then.
    let mut swept: std::collections::HashSet<(u64, u64)> = Default::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased; // once stopping, never start another round
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        // A round proposes to Raft groups, and each proposal may wait `PROPOSE_TIMEOUT` for a
        // commit that never comes once the other replicas are stopping too. So a round gives
        // way to shutdown (an abandoned proposal is harmless: rounds are idempotent).
        let round = async {
            ctx.ensure_layout_recorded().await;
            let dropped: Vec<u64> = ctx.catalog.borrow().dropped.clone();
            if !dropped.is_empty() {
                swept.extend(ctx.sweep_dropped(&dropped, &swept).await);
            }
        };
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            () = round => {}
        }
    }
}
