//! A real cluster of `ferrodyn-node` processes on loopback, with a [`ProxyNet`] on every
//! node-to-node link, and the process-level faults the nemesis applies (kill -9, restart,
//! SIGSTOP/SIGCONT, clock offset).
//!
//! Layout of [`ClusterSpec::dir`]: one directory `n{id}` per node with its `node.toml`, its
//! data (`n{id}/data`) and its `node.log` (stdout and stderr, appended across restarts, each
//! start preceded by a `=== ferrodyn-jepsen: ... ===` line).
//!
//! Node `i` reaches node `j` through the proxy of link `(i, j)` (`initial_cluster[].peer_addr`
//! in `i`'s config); clients use the nodes' real gRPC addresses ([`Cluster::endpoint`]).
//!
//! Safety net: every node runs in its own process group (a Ctrl-C at the terminal reaches the
//! harness only) and gets `SIGKILL` when the harness thread that spawned it dies
//! (`PR_SET_PDEATHSIG`); the handles are `kill_on_drop`, and dropping a [`Cluster`] kills every
//! node still running. A crashed or killed harness therefore leaves no nodes behind.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use ferrodyn_client::proto::{self, ferrodyn_client::FerrodynClient};
use serde::Serialize;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::proxy::{Link, ProxyNet};

/// Errors of the harness (cluster processes, proxy, nemesis).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// An I/O error with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What the harness was doing.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The cluster did not become ready (every partition with a leader) in time.
    #[error("cluster not ready: {0}")]
    NotReady(String),
    /// A node process or RPC failed.
    #[error("node {node}: {message}")]
    Node {
        /// The node id.
        node: u64,
        /// What went wrong.
        message: String,
    },
    /// The harness was asked for something its configuration does not allow (e.g. the clock
    /// nemesis on a cluster started without clock control).
    #[error("{0}")]
    Config(String),
}

/// What cluster to start.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Number of nodes (ids 1..=nodes).
    pub nodes: usize,
    /// Partitions of the cluster.
    pub partitions: u32,
    /// Replicas per partition.
    pub replication: u32,
    /// Working directory: node data dirs, configs and logs go under it.
    pub dir: PathBuf,
    /// The `ferrodyn-node` binary.
    pub node_bin: PathBuf,
    /// Broken mode passed to every node (`testing.broken`, e.g. `"stale-consistent-read"`);
    /// `None` for the real product.
    pub broken: Option<String>,
    /// Start nodes with `--unsafe-test-mode` and `testing.clock_control = true` so the clock
    /// nemesis can offset their clocks.
    pub clock_control: bool,
}

/// How long [`Cluster::start`] waits for every partition to have a leader.
const START_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of one status or testing RPC to one node.
const RPC_TIMEOUT: Duration = Duration::from_secs(1);
/// Grace period of [`Cluster::shutdown`] between SIGTERM and SIGKILL.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Pause between two readiness probes.
const READY_POLL: Duration = Duration::from_millis(200);
/// The pseudo partition number of the metadata group in status reports.
const META_PARTITION: u32 = u32::MAX;

/// One node's process and fault state.
#[derive(Default)]
struct NodeState {
    /// The running process, if any.
    child: Option<Child>,
    /// SIGSTOPped and not yet resumed.
    paused: bool,
    /// The clock offset last set through [`Cluster::set_clock_offset`] (reset by a restart).
    clock_offset_ms: i64,
}

/// Static facts of one node.
struct NodeInfo {
    grpc: SocketAddr,
    dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    /// A lazily connecting channel to the node's gRPC address, for status and testing RPCs.
    channel: Channel,
}

/// A running cluster. All methods take `&self` (internally synchronized) so the nemesis and
/// the workload can share it through an `Arc`.
pub struct Cluster {
    spec: ClusterSpec,
    info: BTreeMap<u64, NodeInfo>,
    net: ProxyNet,
    state: Mutex<BTreeMap<u64, NodeState>>,
    /// Serializes kill / restart / shutdown of each node.
    ops: HashMap<u64, tokio::sync::Mutex<()>>,
}

// ------------------------------------------------------------------ node config file

#[derive(Serialize)]
struct NodeToml {
    node_id: u64,
    region: String,
    data_dir: PathBuf,
    listen: String,
    partitions: u32,
    replication_factor: u32,
    log: String,
    initial_cluster: Vec<PeerToml>,
    #[serde(skip_serializing_if = "Option::is_none")]
    testing: Option<TestingToml>,
}

#[derive(Serialize)]
struct PeerToml {
    id: u64,
    grpc: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_addr: Option<String>,
}

#[derive(Serialize)]
struct TestingToml {
    #[serde(skip_serializing_if = "Option::is_none")]
    broken: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clock_control: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clock_offset_ms: Option<i64>,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

/// The range the kernel takes ports from for `bind(:0)` and for outgoing connections.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut it = text.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// Lowest port [`free_ports`] hands out.
const LOWEST_PORT: u16 = 10_000;

/// `n` distinct free ports on 127.0.0.1 for the nodes to listen on, all outside the kernel's
/// ephemeral range, probed by binding each (held at once, so none comes twice) then closed.
///
/// Outside, because a node's port must stay free between this probe and the node's start,
/// and again while a killed node is down: a port from the ephemeral range can be taken in
/// the meantime by any outgoing connection (the proxies', the clients') or by a proxy's own
/// `bind(:0)`, and the node then fails with "address in use" (a CI run lost its set
/// workload to this).
fn free_ports(n: usize) -> Result<Vec<u16>, HarnessError> {
    use rand::seq::SliceRandom;
    let (lo, hi) = ephemeral_range();
    let below = LOWEST_PORT..lo.max(LOWEST_PORT);
    let above = hi.checked_add(1).map(|first| first..=u16::MAX);
    let mut candidates: Vec<u16> = below.chain(above.into_iter().flatten()).collect();
    candidates.shuffle(&mut rand::thread_rng());
    let mut held = Vec::with_capacity(n);
    for port in candidates {
        if held.len() == n {
            break;
        }
        if let Ok(listener) = StdTcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    if held.len() < n {
        return Err(HarnessError::Io {
            what: "probing for free ports".into(),
            source: std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "found {} of {n} free ports from {LOWEST_PORT} up outside the ephemeral range {lo}-{hi}",
                    held.len()
                ),
            ),
        });
    }
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err("probing for free ports"))
}

/// The leader claims and views of one group, gathered from several nodes.
#[derive(Debug, Default, Clone)]
struct GroupView {
    /// Replicas of the group (from any report).
    replicas: Vec<u64>,
    /// `(reporting node, leader it reports (0 = none), term)`.
    views: Vec<(u64, u64, u64)>,
}

impl GroupView {
    /// The leader: the highest-term node that claims leadership itself, else the
    /// highest-term hint.
    fn leader(&self) -> Option<(u64, u64)> {
        let claim = self
            .views
            .iter()
            .filter(|(node, leader, _)| node == leader)
            .max_by_key(|(_, _, term)| *term)
            .map(|(_, l, t)| (*l, *t));
        claim.or_else(|| {
            self.views
                .iter()
                .filter(|(_, leader, _)| *leader != 0)
                .max_by_key(|(_, _, term)| *term)
                .map(|(_, l, t)| (*l, *t))
        })
    }

    /// Whether a self-claimed leader is acknowledged, at its term, by a majority of the
    /// group's replicas (itself included).
    fn settled(&self) -> bool {
        let Some((leader, term)) = self.leader() else {
            return false;
        };
        if !self
            .views
            .iter()
            .any(|(n, l, _)| *n == leader && *l == leader)
        {
            return false;
        }
        let agree = self
            .views
            .iter()
            .filter(|(_, l, t)| *l == leader && *t == term)
            .count();
        let replicas = self.replicas.len().max(1);
        agree > replicas / 2
    }
}

impl Cluster {
    /// Starts the proxies and every node, then waits until every partition has a leader.
    pub async fn start(spec: ClusterSpec) -> Result<Cluster, HarnessError> {
        if spec.nodes == 0 {
            return Err(HarnessError::Config(
                "a cluster needs at least one node".into(),
            ));
        }
        if spec.replication == 0 || spec.replication as usize > spec.nodes {
            return Err(HarnessError::Config(format!(
                "replication {} must be between 1 and the {} nodes",
                spec.replication, spec.nodes
            )));
        }
        if !spec.node_bin.is_file() {
            return Err(HarnessError::Io {
                what: format!("node binary {}", spec.node_bin.display()),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not found (build it with `cargo build --release -p ferrodyn-node`)",
                ),
            });
        }
        std::fs::create_dir_all(&spec.dir)
            .map_err(io_err(format!("creating {}", spec.dir.display())))?;
        let dir = spec
            .dir
            .canonicalize()
            .map_err(io_err(format!("resolving {}", spec.dir.display())))?;

        let ids: Vec<u64> = (1..=spec.nodes as u64).collect();
        let ports = free_ports(ids.len())?;
        let grpc: BTreeMap<u64, SocketAddr> = ids
            .iter()
            .zip(&ports)
            .map(|(id, port)| (*id, SocketAddr::from(([127, 0, 0, 1], *port))))
            .collect();
        let links: Vec<Link> = ids
            .iter()
            .flat_map(|from| {
                ids.iter().filter(move |to| *to != from).map(|to| Link {
                    from: *from,
                    to: *to,
                    target: grpc[to],
                })
            })
            .collect();
        let (net, proxy_addrs) = ProxyNet::start(&links).await?;

        let mut info = BTreeMap::new();
        for &id in &ids {
            let node_dir = dir.join(format!("n{id}"));
            std::fs::create_dir_all(&node_dir)
                .map_err(io_err(format!("creating {}", node_dir.display())))?;
            let testing = (spec.broken.is_some() || spec.clock_control).then(|| TestingToml {
                broken: spec.broken.clone(),
                clock_control: spec.clock_control.then_some(true),
                clock_offset_ms: spec.clock_control.then_some(0),
            });
            let cfg = NodeToml {
                node_id: id,
                region: "local".into(),
                data_dir: node_dir.join("data"),
                listen: grpc[&id].to_string(),
                partitions: spec.partitions,
                replication_factor: spec.replication,
                log: "info,openraft=warn".into(),
                initial_cluster: ids
                    .iter()
                    .map(|&peer| PeerToml {
                        id: peer,
                        grpc: grpc[&peer].to_string(),
                        peer_addr: (peer != id).then(|| proxy_addrs[&(id, peer)].to_string()),
                    })
                    .collect(),
                testing,
            };
            let text = toml::to_string_pretty(&cfg).map_err(|e| HarnessError::Node {
                node: id,
                message: format!("serializing its config: {e}"),
            })?;
            let config = node_dir.join("node.toml");
            std::fs::write(&config, text)
                .map_err(io_err(format!("writing {}", config.display())))?;
            let channel = Endpoint::from_shared(format!("http://{}", grpc[&id]))
                .map_err(|e| HarnessError::Node {
                    node: id,
                    message: format!("bad endpoint: {e}"),
                })?
                .connect_timeout(RPC_TIMEOUT)
                .timeout(RPC_TIMEOUT)
                .connect_lazy();
            info.insert(
                id,
                NodeInfo {
                    grpc: grpc[&id],
                    log: node_dir.join("node.log"),
                    dir: node_dir,
                    config,
                    channel,
                },
            );
        }

        let cluster = Cluster {
            state: Mutex::new(ids.iter().map(|id| (*id, NodeState::default())).collect()),
            ops: ids
                .iter()
                .map(|id| (*id, tokio::sync::Mutex::new(())))
                .collect(),
            spec: ClusterSpec { dir, ..spec },
            info,
            net,
        };
        for &id in &ids {
            if let Err(e) = cluster.spawn_node(id) {
                cluster.shutdown().await;
                return Err(e);
            }
        }
        if let Err(e) = cluster.wait_ready(START_READY_TIMEOUT).await {
            cluster.shutdown().await;
            return Err(e);
        }
        Ok(cluster)
    }

    /// What the cluster was started with (`dir` made absolute).
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.spec.partitions
    }

    /// Whether nodes run with clock control (so [`Cluster::set_clock_offset`] works).
    pub fn clock_control(&self) -> bool {
        self.spec.clock_control
    }

    /// Node ids, ascending.
    pub fn node_ids(&self) -> Vec<u64> {
        self.info.keys().copied().collect()
    }

    /// The client-facing gRPC endpoint of a node, as `http://127.0.0.1:PORT`.
    ///
    /// # Panics
    /// If `node` is not a node of this cluster.
    pub fn endpoint(&self, node: u64) -> String {
        format!("http://{}", self.node(node).grpc)
    }

    /// Every node's client-facing endpoint, in id order.
    pub fn endpoints(&self) -> Vec<String> {
        self.info
            .values()
            .map(|n| format!("http://{}", n.grpc))
            .collect()
    }

    /// A node's directory (`DIR/n{id}`: config, data, log).
    ///
    /// # Panics
    /// If `node` is not a node of this cluster.
    pub fn node_dir(&self, node: u64) -> &Path {
        &self.node(node).dir
    }

    /// A node's log file (`DIR/n{id}/node.log`).
    ///
    /// # Panics
    /// If `node` is not a node of this cluster.
    pub fn log_path(&self, node: u64) -> &Path {
        &self.node(node).log
    }

    /// The node-to-node network.
    pub fn net(&self) -> &ProxyNet {
        &self.net
    }

    /// Whether a node's process is running (paused counts as running).
    pub fn is_running(&self, node: u64) -> bool {
        let mut state = self.lock_state();
        state
            .get_mut(&node)
            .is_some_and(|s| Self::child_alive(node, s))
    }

    /// The pid of a node's running process.
    pub fn pid(&self, node: u64) -> Option<u32> {
        let mut state = self.lock_state();
        let s = state.get_mut(&node)?;
        if Self::child_alive(node, s) {
            s.child.as_ref().and_then(Child::id)
        } else {
            None
        }
    }

    /// Whether a node is paused (SIGSTOPped).
    pub fn is_paused(&self, node: u64) -> bool {
        self.lock_state().get(&node).is_some_and(|s| s.paused)
    }

    /// `kill -9` a node and reap it (no-op if it is not running).
    pub async fn kill(&self, node: u64) -> Result<(), HarnessError> {
        let _op = self.op_lock(node)?.lock().await;
        let child = {
            let mut state = self.lock_state();
            let s = state.get_mut(&node).ok_or_else(|| unknown(node))?;
            s.paused = false;
            s.child.take()
        };
        let Some(mut child) = child else {
            return Ok(());
        };
        // SIGKILL ends a stopped process too.
        child.start_kill().ok();
        child.wait().await.map_err(|e| HarnessError::Node {
            node,
            message: format!("reaping after SIGKILL: {e}"),
        })?;
        Ok(())
    }

    /// Starts a killed node again on its data directory (no-op if it is running).
    pub async fn restart(&self, node: u64) -> Result<(), HarnessError> {
        let _op = self.op_lock(node)?.lock().await;
        {
            let mut state = self.lock_state();
            let s = state.get_mut(&node).ok_or_else(|| unknown(node))?;
            if Self::child_alive(node, s) {
                return Ok(());
            }
        }
        self.spawn_node(node)
    }

    /// `SIGSTOP` a running node.
    pub fn pause(&self, node: u64) -> Result<(), HarnessError> {
        self.signal_paused(node, true)
    }

    /// `SIGCONT` a paused node.
    pub fn resume(&self, node: u64) -> Result<(), HarnessError> {
        self.signal_paused(node, false)
    }

    /// Sets a node's clock offset in ms (needs `clock_control`).
    pub async fn set_clock_offset(&self, node: u64, offset_ms: i64) -> Result<(), HarnessError> {
        if !self.spec.clock_control {
            return Err(HarnessError::Config(
                "clock offsets need a cluster started with clock control".into(),
            ));
        }
        let channel = self
            .info
            .get(&node)
            .ok_or_else(|| unknown(node))?
            .channel
            .clone();
        let mut client = proto::testing_client::TestingClient::new(channel);
        let mut req = tonic::Request::new(proto::SetClockOffsetRequest { offset_ms });
        req.set_timeout(RPC_TIMEOUT);
        match tokio::time::timeout(RPC_TIMEOUT * 2, client.set_clock_offset(req)).await {
            Ok(Ok(_)) => {
                if let Some(s) = self.lock_state().get_mut(&node) {
                    s.clock_offset_ms = offset_ms;
                }
                Ok(())
            }
            Ok(Err(status)) => Err(HarnessError::Node {
                node,
                message: format!("set_clock_offset({offset_ms}): {}", status.message()),
            }),
            Err(_) => Err(HarnessError::Node {
                node,
                message: format!("set_clock_offset({offset_ms}): timed out"),
            }),
        }
    }

    /// The clock offset last set on a node (0 after a restart).
    pub fn clock_offset(&self, node: u64) -> i64 {
        self.lock_state()
            .get(&node)
            .map_or(0, |s| s.clock_offset_ms)
    }

    /// The leader of a partition as the live nodes report it, if any.
    pub async fn leader_of(&self, partition: u32) -> Option<u64> {
        let views = self.group_views().await;
        views
            .get(&partition)
            .and_then(GroupView::leader)
            .map(|(l, _)| l)
    }

    /// The leader of every partition (and of the metadata group, keyed `u32::MAX`) as the live
    /// nodes report it; partitions with no known leader are absent.
    pub async fn leaders(&self) -> BTreeMap<u32, u64> {
        self.group_views()
            .await
            .into_iter()
            .filter_map(|(p, v)| v.leader().map(|(l, _)| (p, l)))
            .collect()
    }

    /// Waits (up to `timeout`) until every partition and the metadata group has a leader that a
    /// majority of its replicas acknowledge. Unreachable nodes count as unknown.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            let views = self.group_views().await;
            let missing: Vec<String> = (0..self.spec.partitions)
                .chain(std::iter::once(META_PARTITION))
                .filter(|p| !views.get(p).is_some_and(GroupView::settled))
                .map(|p| {
                    if p == META_PARTITION {
                        "meta".to_string()
                    } else {
                        p.to_string()
                    }
                })
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() + READY_POLL >= deadline {
                let down: Vec<u64> = self
                    .node_ids()
                    .into_iter()
                    .filter(|n| !self.is_running(*n))
                    .collect();
                return Err(HarnessError::NotReady(format!(
                    "after {timeout:?}, no settled leader for partition(s) {}{}; node logs under {}",
                    missing.join(", "),
                    if down.is_empty() {
                        String::new()
                    } else {
                        format!(" (nodes not running: {down:?})")
                    },
                    self.spec.dir.display()
                )));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Undoes every fault: heals the network, resumes paused nodes, restarts killed ones,
    /// zeroes clock offsets; then waits (up to `timeout`) until every partition has a leader.
    pub async fn heal_all(&self, timeout: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + timeout;
        let mut errors = Vec::new();
        for node in self.node_ids() {
            if self.is_paused(node) {
                if let Err(e) = self.resume(node) {
                    errors.push(e.to_string());
                }
            }
        }
        self.net.heal();
        for node in self.node_ids() {
            if let Err(e) = self.restart(node).await {
                errors.push(e.to_string());
            }
        }
        if self.spec.clock_control {
            // A restarted node may take a moment to serve: retry until the deadline.
            for node in self.node_ids() {
                loop {
                    match self.set_clock_offset(node, 0).await {
                        Ok(()) => break,
                        Err(e) if Instant::now() + READY_POLL >= deadline => {
                            errors.push(e.to_string());
                            break;
                        }
                        Err(_) => tokio::time::sleep(READY_POLL).await,
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(HarnessError::NotReady(format!(
                "healing failed: {}",
                errors.join("; ")
            )));
        }
        self.wait_ready(deadline.saturating_duration_since(Instant::now()))
            .await
    }

    /// Stops every node (SIGTERM, then SIGKILL after a grace period) and the proxies.
    pub async fn shutdown(&self) {
        let mut children = Vec::new();
        for node in self.node_ids() {
            let Ok(lock) = self.op_lock(node) else {
                continue;
            };
            let guard = lock.lock().await;
            let child = {
                let mut state = self.lock_state();
                state.get_mut(&node).and_then(|s| {
                    let c = s.child.take();
                    if s.paused {
                        if let Some(pid) = c.as_ref().and_then(Child::id) {
                            // SAFETY: kill(2) on a child we spawned and have not reaped.
                            unsafe { libc::kill(pid as i32, libc::SIGCONT) };
                        }
                        s.paused = false;
                    }
                    c
                })
            };
            drop(guard);
            if let Some(c) = child {
                if let Some(pid) = c.id() {
                    // SAFETY: as above.
                    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
                }
                children.push((node, c));
            }
        }
        let waits = children.into_iter().map(|(node, mut c)| async move {
            match tokio::time::timeout(SHUTDOWN_GRACE, c.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(node, "did not stop within {SHUTDOWN_GRACE:?}; killing it");
                    c.start_kill().ok();
                    let _ = c.wait().await;
                }
            }
        });
        futures::future::join_all(waits).await;
        self.net.shutdown().await;
    }

    // -------------------------------------------------------------- helpers

    fn node(&self, node: u64) -> &NodeInfo {
        self.info
            .get(&node)
            .unwrap_or_else(|| panic!("node {node} is not in this cluster"))
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, NodeState>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn op_lock(&self, node: u64) -> Result<&tokio::sync::Mutex<()>, HarnessError> {
        self.ops.get(&node).ok_or_else(|| unknown(node))
    }

    /// Whether the node's process is alive; reaps (and forgets) one that exited on its own.
    fn child_alive(node: u64, s: &mut NodeState) -> bool {
        let Some(child) = s.child.as_mut() else {
            return false;
        };
        match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                tracing::warn!(node, %status, "node exited on its own");
                s.child = None;
                s.paused = false;
                false
            }
            Err(e) => {
                tracing::warn!(node, "checking the node process: {e}");
                true
            }
        }
    }

    /// Spawns the node process (the caller holds the node's op lock or owns the cluster).
    fn spawn_node(&self, node: u64) -> Result<(), HarnessError> {
        use std::io::Write;

        let info = self.node(node);
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&info.log)
            .map_err(io_err(format!("opening {}", info.log.display())))?;
        let test_mode = self.spec.broken.is_some() || self.spec.clock_control;
        let _ = writeln!(
            log,
            "=== ferrodyn-jepsen: starting node {node} (grpc {}{}) ===",
            info.grpc,
            if test_mode { ", unsafe test mode" } else { "" }
        );
        let stderr = log
            .try_clone()
            .map_err(io_err(format!("opening {}", info.log.display())))?;

        let mut cmd = Command::new(&self.spec.node_bin);
        cmd.arg("run").arg("--config").arg(&info.config);
        if test_mode {
            cmd.arg("--unsafe-test-mode");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        // The pid of the harness, to detect that it died before the child set its death signal.
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls (setpgid, prctl, getppid, _exit).
        unsafe {
            cmd.pre_exec(move || {
                // Own process group: terminal signals (Ctrl-C) go to the harness only.
                libc::setpgid(0, 0);
                // Die with the harness.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| HarnessError::Node {
            node,
            message: format!("starting {}: {e}", self.spec.node_bin.display()),
        })?;
        tracing::debug!(node, pid = child.id(), "node started");
        let mut state = self.lock_state();
        let s = state.get_mut(&node).ok_or_else(|| unknown(node))?;
        s.child = Some(child);
        s.paused = false;
        s.clock_offset_ms = 0;
        Ok(())
    }

    fn signal_paused(&self, node: u64, pause: bool) -> Result<(), HarnessError> {
        let mut state = self.lock_state();
        let s = state.get_mut(&node).ok_or_else(|| unknown(node))?;
        if s.paused == pause {
            return Ok(());
        }
        if !Self::child_alive(node, s) {
            return Err(HarnessError::Node {
                node,
                message: format!(
                    "cannot {} a node that is not running",
                    if pause { "pause" } else { "resume" }
                ),
            });
        }
        let pid = s
            .child
            .as_ref()
            .and_then(Child::id)
            .ok_or_else(|| HarnessError::Node {
                node,
                message: "process has no pid".into(),
            })?;
        let sig = if pause { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: kill(2) on a child we spawned and have not reaped (it is in `state`).
        if unsafe { libc::kill(pid as i32, sig) } != 0 {
            return Err(HarnessError::Node {
                node,
                message: format!(
                    "{}: {}",
                    if pause { "SIGSTOP" } else { "SIGCONT" },
                    std::io::Error::last_os_error()
                ),
            });
        }
        s.paused = pause;
        Ok(())
    }

    /// Asks every running, unpaused node for its local status (each with a timeout) and
    /// gathers the views per group. Unreachable nodes are skipped.
    async fn group_views(&self) -> BTreeMap<u32, GroupView> {
        let live: Vec<u64> = {
            let mut state = self.lock_state();
            state
                .iter_mut()
                .filter_map(|(id, s)| (!s.paused && Self::child_alive(*id, s)).then_some(*id))
                .collect()
        };
        let asks = live.into_iter().map(|node| {
            let channel = self.node(node).channel.clone();
            async move {
                let mut req = tonic::Request::new(proto::LocalStatusRequest {});
                req.set_timeout(RPC_TIMEOUT);
                let mut client = FerrodynClient::new(channel);
                match tokio::time::timeout(RPC_TIMEOUT * 2, client.local_status(req)).await {
                    Ok(Ok(r)) => Some(r.into_inner()),
                    _ => None,
                }
            }
        });
        let mut views: BTreeMap<u32, GroupView> = BTreeMap::new();
        for report in futures::future::join_all(asks).await.into_iter().flatten() {
            for g in report.groups {
                let v = views.entry(g.partition).or_default();
                if v.replicas.is_empty() {
                    v.replicas = g.replicas.clone();
                }
                v.views.push((report.node_id, g.leader, g.term));
            }
        }
        views
    }
}

fn unknown(node: u64) -> HarnessError {
    HarnessError::Node {
        node,
        message: "not a node of this cluster".into(),
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Last resort: SIGKILL whatever still runs (a stopped process dies of SIGKILL too).
        // `kill_on_drop` would do it as well; this also reaps when it can.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (node, s) in state.iter_mut() {
            if let Some(mut child) = s.child.take() {
                if child.start_kill().is_ok() {
                    tracing::warn!(node, "cluster dropped without shutdown: killed the node");
                }
                let _ = child.try_wait();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ports_are_distinct_free_and_never_ephemeral() {
        let (lo, hi) = ephemeral_range();
        assert!(lo <= hi, "{lo}-{hi}");
        let ports = free_ports(20).unwrap();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), 20, "{ports:?}");
        for p in ports {
            assert!(
                p >= LOWEST_PORT && !(lo..=hi).contains(&p),
                "{p} in {lo}-{hi}"
            );
            // Free again once probed: a node can bind it.
            drop(StdTcpListener::bind(("127.0.0.1", p)).unwrap());
        }
    }
}
