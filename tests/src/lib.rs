//! Shared harness of the Ferrodyn integration tests: in-process clusters of real nodes (RocksDB,
//! openraft, gRPC on loopback) whose node-to-node links go through a fault injector.
//!
//! A [`TestCluster`] binds every node's listener first (so every address is known before any
//! node starts), keeps all data directories in one temporary directory, and can stop, restart,
//! partition and heal nodes. Stopping a node is its graceful shutdown, the in-process stand-in
//! for a crash: the node's data stays and [`TestCluster::restart`] brings it back on the same
//! directory and port.
//!
//! Cutting a link: a [`FaultInjector`] filters the OUTGOING messages of the node it belongs to,
//! so the harness blocks a link on both ends' injectors and remembers the cut, which it also
//! uses to decide whether a leader can still reach a quorum.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use ferrodyn_client::proto::ferrodyn_client::FerrodynClient;
use ferrodyn_client::schema::{KeyAttr, KeySchema, KeyType};
use ferrodyn_client::value::{item_from_proto, item_to_proto};
use ferrodyn_client::{AttributeValue, Client, ClientConfig, Item, Number, WireError};
use ferrodyn_node::config::{NodeConfig, PeerConfig, RaftSettings};
use ferrodyn_node::node::NodeCtx;
use ferrodyn_node::placement::Layout;
use ferrodyn_node::raft::network::FaultInjector;
use ferrodyn_node::storage::keys::{group_of_partition, META_GROUP};
use ferrodyn_node::storage::Storage;
use ferrodyn_node::Node;
use tonic::transport::Channel;

pub use ferrodyn_client::client::{Page, QueryInput, SortCondition};

/// How long a graceful shutdown may take before the harness calls it hung.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);
/// How long [`TestCluster::restart`] keeps retrying while the port or the RocksDB lock frees.
const RESTART_LIMIT: Duration = Duration::from_secs(10);
/// How long a stopped node's last tasks may take to let go of its database.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);

/// Installs a tracing subscriber once per test binary; `RUST_LOG` overrides the quiet default.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,openraft=off"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// Fast Raft timing for tests: 100 ms heartbeats, elections after 300–600 ms.
pub fn fast_raft() -> RaftSettings {
    RaftSettings {
        heartbeat_ms: 100,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        ..RaftSettings::default()
    }
}

/// Shape of a test cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of nodes (ids 1..=nodes).
    pub nodes: u64,
    /// Number of data partitions.
    pub partitions: u32,
    /// Replicas per partition.
    pub replication_factor: u32,
    /// Raft timing and log retention of every node.
    pub raft: RaftSettings,
}

impl ClusterOptions {
    /// `nodes` nodes, `partitions` partitions, `rf` replicas, [`fast_raft`] timing.
    pub fn new(nodes: u64, partitions: u32, rf: u32) -> Self {
        ClusterOptions {
            nodes,
            partitions,
            replication_factor: rf,
            raft: fast_raft(),
        }
    }
}

/// An in-process cluster of real nodes.
pub struct TestCluster {
    /// Holds every node's data directory; removed when the cluster is dropped.
    dir: tempfile::TempDir,
    opts: ClusterOptions,
    peers: Vec<PeerConfig>,
    addrs: BTreeMap<u64, SocketAddr>,
    faults: BTreeMap<u64, Arc<FaultInjector>>,
    layout: Layout,
    /// Running nodes; a stopped node is absent.
    nodes: Mutex<BTreeMap<u64, Node>>,
    /// Directed links cut by the harness (mirrors what the injectors block).
    cuts: Mutex<HashSet<(u64, u64)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TestCluster {
    /// Starts `n_nodes` nodes with `partitions` partitions replicated `rf` times.
    pub async fn start(n_nodes: u64, partitions: u32, rf: u32) -> Result<TestCluster> {
        Self::start_with(ClusterOptions::new(n_nodes, partitions, rf)).await
    }

    /// Starts a cluster shaped by `opts`.
    pub async fn start_with(opts: ClusterOptions) -> Result<TestCluster> {
        init_tracing();
        let dir = tempfile::Builder::new().prefix("ferrodyn-it-").tempdir()?;
        let ids: Vec<u64> = (1..=opts.nodes).collect();
        let mut listeners = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for &id in &ids {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            addrs.insert(id, l.local_addr()?);
            listeners.insert(id, l);
        }
        let peers: Vec<PeerConfig> = ids
            .iter()
            .map(|&id| PeerConfig {
                id,
                grpc: addrs[&id].to_string(),
                region: None,
                peer_addr: None,
            })
            .collect();
        let faults = ids
            .iter()
            .map(|&id| (id, Arc::new(FaultInjector::default())))
            .collect();
        let mut cluster = TestCluster {
            dir,
            opts,
            peers,
            addrs,
            faults,
            layout: Layout {
                epoch: 0,
                partition_count: 0,
                replication_factor: 0,
                nodes: vec![],
                replicas: vec![],
            },
            nodes: Mutex::new(BTreeMap::new()),
            cuts: Mutex::new(HashSet::new()),
        };
        for (id, listener) in listeners {
            let node = Node::start_with(cluster.config(id), listener, cluster.faults[&id].clone())
                .await
                .map_err(|e| anyhow!("starting node {id}: {e}"))?;
            lock(&cluster.nodes).insert(id, node);
        }
        cluster.layout = cluster
            .ctx_of(1)
            .context("node 1 just started")?
            .layout
            .clone();
        Ok(cluster)
    }

    /// The configuration node `id` runs with (identical across restarts).
    pub fn config(&self, id: u64) -> NodeConfig {
        NodeConfig {
            node_id: id,
            region: "local".into(),
            data_dir: self.dir.path().join(format!("node{id}")),
            listen: None,
            partitions: self.opts.partitions,
            replication_factor: self.opts.replication_factor,
            initial_cluster: self.peers.clone(),
            raft: self.opts.raft.clone(),
            log: "error".into(),
            ..NodeConfig::default()
        }
    }

    /// Every node id, stopped ones included.
    pub fn ids(&self) -> Vec<u64> {
        self.addrs.keys().copied().collect()
    }

    /// Ids of the running nodes.
    pub fn live(&self) -> Vec<u64> {
        lock(&self.nodes).keys().copied().collect()
    }

    /// `host:port` of node `id`.
    pub fn addr(&self, id: u64) -> String {
        self.addrs[&id].to_string()
    }

    /// Number of data partitions.
    pub fn partitions(&self) -> u32 {
        self.opts.partitions
    }

    /// The partition table every node computed at start.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The replicas of partition `p`.
    pub fn replicas(&self, p: u32) -> Vec<u64> {
        self.layout.replicas[p as usize].clone()
    }

    /// Members of Raft group `group` (the metadata group: every node).
    pub fn members(&self, group: u64) -> Vec<u64> {
        if group == META_GROUP {
            self.ids()
        } else {
            self.replicas((group - 1) as u32)
        }
    }

    /// The partition holding partition-key value `pk`.
    pub fn partition_of(&self, pk: &AttributeValue) -> u32 {
        let bytes = pk.key_bytes().expect("partition keys are S, N or B");
        ferrodyn_client::partition::partition_of(&bytes, self.opts.partitions)
    }

    /// The fault injector of node `id`'s outgoing links.
    pub fn faults(&self, id: u64) -> &Arc<FaultInjector> {
        &self.faults[&id]
    }

    /// Node `id`'s fatal failure (see `Node::failed`): None while it is healthy or not running.
    pub fn failure(&self, id: u64) -> Option<String> {
        lock(&self.nodes).get(&id)?.failure()
    }

    /// The shared context of running node `id`.
    pub fn ctx_of(&self, id: u64) -> Option<Arc<NodeCtx>> {
        lock(&self.nodes).get(&id).map(|n| n.ctx().clone())
    }

    /// A client over every node's endpoint, with a short retry budget.
    pub async fn client(&self) -> Result<Client> {
        let endpoints: Vec<String> = self.ids().iter().map(|&id| self.addr(id)).collect();
        connect(endpoints).await
    }

    /// A client bootstrapped from node `id` only. It still learns the other nodes from the
    /// partition table and sends item requests to shard leaders; use [`TestCluster::raw`] to
    /// pin a request to one node.
    pub async fn client_for(&self, id: u64) -> Result<Client> {
        connect(vec![self.addr(id)]).await
    }

    /// A bare gRPC stub of node `id`: requests go to that node and nowhere else (without the
    /// `direct` header the node serves eventual reads of hosted shards from its own replica).
    pub async fn raw(&self, id: u64) -> Result<FerrodynClient<Channel>> {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr(id)))?
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("connecting to node {id}"))?;
        Ok(FerrodynClient::new(ch))
    }

    /// An eventually consistent GetItem served by node `id` alone, from its own replica of
    /// the key's shard (which node `id` must host).
    pub async fn local_get(&self, id: u64, table: &str, key: &Item) -> Result<Option<Item>> {
        let mut raw = self.raw(id).await?;
        let resp = raw
            .get_item(ferrodyn_client::proto::GetItemRequest {
                table_name: table.to_owned(),
                key: Some(item_to_proto(key)),
                consistent_read: false,
            })
            .await
            .map_err(|s| anyhow!("node {id}: {}", WireError::from_status(&s)))?;
        Ok(resp.into_inner().item.map(item_from_proto).transpose()?)
    }

    /// Stops node `id` gracefully (its data stays for [`TestCluster::restart`]).
    pub async fn stop(&self, id: u64) -> Result<()> {
        let node = lock(&self.nodes)
            .remove(&id)
            .ok_or_else(|| anyhow!("node {id} is not running"))?;
        tokio::time::timeout(SHUTDOWN_LIMIT, node.shutdown())
            .await
            .map_err(|_| anyhow!("node {id} did not shut down within {SHUTDOWN_LIMIT:?}"))
    }

    /// Restarts stopped node `id` on its data directory and port, retrying while the port and
    /// the RocksDB lock of the previous incarnation are released.
    pub async fn restart(&self, id: u64) -> Result<()> {
        if lock(&self.nodes).contains_key(&id) {
            bail!("node {id} is already running");
        }
        let deadline = Instant::now() + RESTART_LIMIT;
        let addr = self.addrs[&id];
        loop {
            let attempt = match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    Node::start_with(self.config(id), listener, self.faults[&id].clone())
                        .await
                        .map_err(|e| anyhow!("starting node {id}: {e}"))
                }
                Err(e) => Err(anyhow!("binding {addr} for node {id}: {e}")),
            };
            match attempt {
                Ok(node) => {
                    lock(&self.nodes).insert(id, node);
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Cuts both directions between `a` and `b`, on both nodes' injectors.
    pub fn partition(&self, a: u64, b: u64) {
        self.faults[&a].partition(a, b);
        self.faults[&b].partition(a, b);
        let mut cuts = lock(&self.cuts);
        cuts.insert((a, b));
        cuts.insert((b, a));
    }

    /// Cuts `node` off from every other node.
    pub fn isolate(&self, node: u64) {
        for other in self.ids() {
            if other != node {
                self.partition(node, other);
            }
        }
    }

    /// Removes every fault (cuts, drop rates, delays) from every node.
    pub fn heal(&self) {
        for f in self.faults.values() {
            f.heal();
        }
        lock(&self.cuts).clear();
    }

    /// Whether the harness has cut nothing between `a` and `b`.
    pub fn connected(&self, a: u64, b: u64) -> bool {
        let cuts = lock(&self.cuts);
        a == b || !(cuts.contains(&(a, b)) || cuts.contains(&(b, a)))
    }

    /// The effective leader of `group`: a running node that says it leads the group, reaches
    /// a quorum of its members (running, not cut off), and is acknowledged as leader by a
    /// quorum of members (itself included). The highest term wins if several claim it.
    pub fn group_leader(&self, group: u64) -> Option<u64> {
        let members = self.members(group);
        let quorum = members.len() / 2 + 1;
        let nodes = lock(&self.nodes);
        let view = |id: u64| -> Option<(Option<u64>, u64)> {
            let raft = nodes.get(&id)?.ctx().groups.get(group)?;
            let m = raft.metrics().borrow().clone();
            Some((m.current_leader, m.current_term))
        };
        let mut best: Option<(u64, u64)> = None;
        for &id in &members {
            let Some((Some(leader), term)) = view(id) else {
                continue;
            };
            if leader != id {
                continue;
            }
            let acks = members
                .iter()
                .filter(|&&m| self.connected(id, m))
                .filter(|&&m| view(m).is_some_and(|(l, t)| l == Some(id) && t == term))
                .count();
            if acks >= quorum && best.is_none_or(|(_, t)| term > t) {
                best = Some((id, term));
            }
        }
        best.map(|(id, _)| id)
    }

    /// The effective leader of data partition `p` (see [`TestCluster::group_leader`]).
    pub fn leader_of_partition(&self, p: u32) -> Option<u64> {
        self.group_leader(group_of_partition(p))
    }

    /// Waits until the metadata group and every partition have an effective leader.
    pub async fn wait_for_leaders(&self, timeout: Duration) -> Result<BTreeMap<u64, u64>> {
        let groups: Vec<u64> = std::iter::once(META_GROUP)
            .chain((0..self.opts.partitions).map(group_of_partition))
            .collect();
        let deadline = Instant::now() + timeout;
        loop {
            let leaders: BTreeMap<u64, Option<u64>> =
                groups.iter().map(|&g| (g, self.group_leader(g))).collect();
            let missing: Vec<u64> = leaders
                .iter()
                .filter(|(_, l)| l.is_none())
                .map(|(g, _)| *g)
                .collect();
            if missing.is_empty() {
                return Ok(leaders
                    .into_iter()
                    .map(|(g, l)| (g, l.expect("checked")))
                    .collect());
            }
            if Instant::now() > deadline {
                bail!("after {timeout:?}, groups {missing:?} have no leader (0 = metadata group)");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Makes node `id` the effective leader of `group`: triggers elections on it until it
    /// wins (its log must be up to date, so this may take a few rounds).
    pub async fn make_leader(&self, id: u64, group: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.group_leader(group) != Some(id) {
            if Instant::now() > deadline {
                bail!("node {id} did not become leader of group {group} within {timeout:?}");
            }
            let ctx = self
                .ctx_of(id)
                .ok_or_else(|| anyhow!("node {id} is not running"))?;
            let raft = ctx
                .groups
                .get(group)
                .ok_or_else(|| anyhow!("node {id} does not host group {group}"))?;
            raft.trigger()
                .elect()
                .await
                .map_err(|e| anyhow!("electing node {id} in group {group}: {e}"))?;
            let until = Instant::now() + Duration::from_secs(2);
            while self.group_leader(group) != Some(id) && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// Moves the leadership of every group node `id` leads to another running member.
    pub async fn move_leaders_off(&self, id: u64, timeout: Duration) -> Result<()> {
        let groups: Vec<u64> = std::iter::once(META_GROUP)
            .chain((0..self.opts.partitions).map(group_of_partition))
            .collect();
        for g in groups {
            if self.group_leader(g) != Some(id) {
                continue;
            }
            let other = self
                .live_members(g)
                .into_iter()
                .find(|&m| m != id && self.connected(m, id))
                .ok_or_else(|| anyhow!("group {g} has no other running member"))?;
            self.make_leader(other, g, timeout).await?;
        }
        Ok(())
    }

    /// How many items of table id `table` node `id`'s replica of `group` stores, read straight
    /// from its RocksDB.
    pub async fn stored_items(&self, id: u64, group: u64, table: u64) -> Result<usize> {
        let ctx = self
            .ctx_of(id)
            .ok_or_else(|| anyhow!("node {id} is not running"))?;
        let (start, end) = ferrodyn_node::storage::keys::table_range(group, table);
        let page = ctx
            .storage
            .read(move |db| {
                ferrodyn_node::storage::items::read_range(db, &start, &end, false, 0, usize::MAX)
            })
            .await?;
        Ok(page.items.len())
    }

    /// Index of the last entry in node `id`'s log of `group` (None if not running/hosted).
    pub fn last_log_index(&self, id: u64, group: u64) -> Option<u64> {
        let nodes = lock(&self.nodes);
        let raft = nodes.get(&id)?.ctx().groups.get(group)?;
        let m = raft.metrics().borrow().clone();
        Some(m.last_log_index.unwrap_or(0))
    }

    /// Last log index applied by node `id`'s replica of `group` (None if not running/hosted).
    pub fn applied_index(&self, id: u64, group: u64) -> Option<u64> {
        let nodes = lock(&self.nodes);
        let raft = nodes.get(&id)?.ctx().groups.get(group)?;
        let m = raft.metrics().borrow().clone();
        Some(m.last_applied.map(|l| l.index).unwrap_or(0))
    }

    /// Log index covered by node `id`'s latest snapshot of `group` (None: no snapshot, or not
    /// running/hosted).
    pub fn snapshot_index(&self, id: u64, group: u64) -> Option<u64> {
        let nodes = lock(&self.nodes);
        let raft = nodes.get(&id)?.ctx().groups.get(group)?;
        let m = raft.metrics().borrow().clone();
        m.snapshot.map(|l| l.index)
    }

    /// Stops every running node (concurrently).
    pub async fn shutdown(self) -> Result<()> {
        let nodes: Vec<(u64, Node)> = std::mem::take(&mut *lock(&self.nodes))
            .into_iter()
            .collect();
        let stops = nodes.into_iter().map(|(id, node)| async move {
            tokio::time::timeout(SHUTDOWN_LIMIT, node.shutdown())
                .await
                .map(|()| id)
                .map_err(|_| anyhow!("node {id} did not shut down within {SHUTDOWN_LIMIT:?}"))
        });
        let stopped: Vec<u64> = futures::future::join_all(stops)
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        // A stopped node has let go of its database: nothing it started still holds it. A test
        // binary that exits under an open RocksDB can abort in RocksDB's teardown.
        for id in stopped {
            let path = self.config(id).data_dir.join("db");
            eventually(
                CLOSE_LIMIT,
                &format!("node {id}'s database to be closed after shutdown"),
                || {
                    let path = path.clone();
                    async move {
                        Storage::open(&path)
                            .map(drop)
                            .map_err(|e| anyhow!("still open: {e}"))
                    }
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Node ids that host group `group` and are running.
    pub fn live_members(&self, group: u64) -> BTreeSet<u64> {
        let live: BTreeSet<u64> = self.live().into_iter().collect();
        self.members(group)
            .into_iter()
            .filter(|m| live.contains(m))
            .collect()
    }
}

/// The key schema most tests use: a string partition key `k`, no sort key.
pub fn kv_schema() -> KeySchema {
    KeySchema {
        partition_key: KeyAttr::new("k", KeyType::S),
        sort_key: None,
    }
}

/// A client over `endpoints` with test-sized timeouts: elections take well under a second, so
/// a 10 s retry budget rides out any failover a test provokes.
pub async fn connect(endpoints: Vec<String>) -> Result<Client> {
    let config = ClientConfig {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(3),
        retry_budget: Duration::from_secs(10),
        ..ClientConfig::new(endpoints)
    };
    Client::connect(config)
        .await
        .map_err(|e| anyhow!("connecting a client: {e}"))
}

/// Polls `f` every 50 ms until it succeeds or `timeout` passes; the error names `what` and
/// carries the last failure.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context(format!("{what}: still failing after {timeout:?}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A string value.
pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number value from its decimal text.
pub fn n(v: &str) -> AttributeValue {
    AttributeValue::N(Number::parse(v).unwrap_or_else(|e| panic!("bad test number {v}: {e}")))
}

/// A number value from an integer.
pub fn ni(v: i64) -> AttributeValue {
    AttributeValue::N(Number::from(v))
}

/// An item from `(name, value)` pairs.
pub fn item<const K: usize>(attrs: [(&str, AttributeValue); K]) -> Item {
    attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The integer in number attribute `name` of `item`.
pub fn int_attr(item: &Item, name: &str) -> Result<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .to_string()
            .parse()
            .with_context(|| format!("{name} = {v} is not an integer")),
        other => bail!("attribute {name} is {other:?}, not a number"),
    }
}

/// Every item of `table`, following LastEvaluatedKey with pages of at most `limit` items
/// (0: no limit); fails if a page makes no progress or pagination does not end.
pub async fn scan_all(
    client: &Client,
    table: &str,
    limit: u32,
    consistent: bool,
) -> Result<Vec<Item>> {
    let mut out = Vec::new();
    let mut start: Option<Item> = None;
    for _ in 0..100_000 {
        let page = client
            .scan(table, limit, start.clone(), consistent)
            .await
            .map_err(|e| anyhow!("scan {table}: {e}"))?;
        if limit > 0 && page.items.len() > limit as usize {
            bail!(
                "scan page of {} items exceeds limit {limit}",
                page.items.len()
            );
        }
        out.extend(page.items);
        match page.last_evaluated_key {
            None => return Ok(out),
            Some(k) if Some(&k) == start.as_ref() => bail!("scan did not advance past {k:?}"),
            Some(k) => start = Some(k),
        }
    }
    bail!("scan of {table} did not end")
}

/// Every item of a Query, following LastEvaluatedKey (pages of at most `q.limit` items).
pub async fn query_all(client: &Client, mut q: QueryInput) -> Result<Vec<Item>> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let page = client
            .query(q.clone())
            .await
            .map_err(|e| anyhow!("query {}: {e}", q.table))?;
        if q.limit > 0 && page.items.len() > q.limit as usize {
            bail!(
                "query page of {} items exceeds limit {}",
                page.items.len(),
                q.limit
            );
        }
        out.extend(page.items);
        match page.last_evaluated_key {
            None => return Ok(out),
            Some(k) if Some(&k) == q.exclusive_start_key.as_ref() => {
                bail!("query did not advance past {k:?}")
            }
            Some(k) => q.exclusive_start_key = Some(k),
        }
    }
    bail!("query of {} did not end", q.table)
}
