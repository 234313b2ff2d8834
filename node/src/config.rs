//! Node configuration: a TOML file, overridden by flags and `FERRODYN_*` environment variables
//! (see `main.rs`), checked by [`NodeConfig::validate`] before anything starts.
//!
//! Every field is documented in `docs/config.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::placement::NodeSpec;

/// One member of the static initial cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Node id, unique in the cluster, never reused.
    pub id: u64,
    /// gRPC address other nodes and clients use (host:port).
    pub grpc: String,
    /// Region of the node; defaults to this node's region.
    #[serde(default)]
    pub region: Option<String>,
    /// Address THIS node dials to reach that member for node-to-node traffic (Raft and
    /// request forwarding); defaults to `grpc`. Lets a proxy or a private network sit between
    /// nodes while clients keep using `grpc`. Local to this node's config: it may differ from
    /// node to node, and it is never advertised (clients are always told `grpc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_addr: Option<String>,
}

/// The deliberately broken modes `testing.broken` accepts.
pub const BROKEN_MODES: &[&str] = &["stale-consistent-read"];

/// A deliberately broken behaviour, for the fault-injection suite's proof that its checkers
/// catch real bugs. Only reachable with `--unsafe-test-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokenMode {
    /// `stale-consistent-read`: a consistent read reaching any replica of its partition is
    /// answered from that replica's local state, without ReadIndex or the leader.
    StaleConsistentRead,
}

impl BrokenMode {
    /// The mode named `s`, if it is one of [`BROKEN_MODES`].
    pub fn parse(s: &str) -> Option<BrokenMode> {
        match s {
            "stale-consistent-read" => Some(BrokenMode::StaleConsistentRead),
            _ => None,
        }
    }
}

/// Test-only options (TOML section `[testing]`). Every one is refused unless the node was
/// started with `--unsafe-test-mode`; see `docs/config.md`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestingConfig {
    /// A deliberately broken mode, one of [`BROKEN_MODES`].
    pub broken: Option<String>,
    /// Serve the `Testing` gRPC service (clock control).
    pub clock_control: bool,
    /// Initial offset added to this node's wall clock, ms.
    pub clock_offset_ms: i64,
}

impl TestingConfig {
    /// True when no test-only option is set.
    pub fn is_default(&self) -> bool {
        *self == TestingConfig::default()
    }

    /// The names of the options set to a non-default value.
    pub fn active(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.broken.is_some() {
            v.push("testing.broken");
        }
        if self.clock_control {
            v.push("testing.clock_control");
        }
        if self.clock_offset_ms != 0 {
            v.push("testing.clock_offset_ms");
        }
        v
    }

    /// The broken mode in effect, if any (`None` for an unknown name, which
    /// [`NodeConfig::validate`] refuses).
    pub fn broken_mode(&self) -> Option<BrokenMode> {
        self.broken.as_deref().and_then(BrokenMode::parse)
    }
}

/// Raft timing and log retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSettings {
    /// Leader heartbeat period, ms.
    pub heartbeat_ms: u64,
    /// Lower bound of the randomized election timeout, ms.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout, ms.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_every_logs: u64,
    /// Log entries kept behind a snapshot so lagging followers catch up from the log.
    pub logs_kept_after_snapshot: u64,
    /// Most proposals (log entries) a group's leader keeps in flight; writes arriving while
    /// they are go into one batched entry (see `raft::proposer`).
    pub max_inflight_proposals: usize,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat_ms: 150,
            election_timeout_min_ms: 450,
            election_timeout_max_ms: 600,
            snapshot_every_logs: 1_000,
            logs_kept_after_snapshot: 2_000,
            max_inflight_proposals: 2,
        }
    }
}

/// Largest `min_free_disk_mb` accepted: 1 PiB (a larger value is surely a unit mistake).
pub const MAX_MIN_FREE_DISK_MB: u64 = 1 << 30;

/// Configuration of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id (> 0); must appear in `initial_cluster`.
    pub node_id: u64,
    /// Region this node (and its cluster) runs in.
    pub region: String,
    /// Directory holding the node's RocksDB.
    pub data_dir: PathBuf,
    /// Address the gRPC server binds (defaults to this node's `initial_cluster` address).
    pub listen: Option<String>,
    /// Address (host:port) of the Prometheus endpoint `GET /metrics`; `None` turns it off.
    pub metrics_listen: Option<String>,
    /// Async runtime worker threads (default: one per CPU core). Set it lower when several
    /// nodes share a machine, as the playground does, so they do not all schedule onto the
    /// same cores.
    pub worker_threads: Option<usize>,
    /// Free space (MiB) the data disk must keep: below it, the node refuses writes that add
    /// data (see `storage::disk`); 0 turns the check off.
    pub min_free_disk_mb: u64,
    /// Fixed number of partitions of the cluster.
    pub partitions: u32,
    /// Replicas per partition.
    pub replication_factor: u32,
    /// Virtual nodes per node on the placement ring.
    pub vnodes_per_node: u32,
    /// The static initial membership; identical on every node.
    pub initial_cluster: Vec<PeerConfig>,
    /// Raft timing and retention.
    pub raft: RaftSettings,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `ferrodyn_node=debug`.
    pub log: String,
    /// Test-only options; refused unless `unsafe_test_mode` is set.
    #[serde(skip_serializing_if = "TestingConfig::is_default")]
    pub testing: TestingConfig,
    /// Allows the `testing` options. Set only by `ferrodyn-node run --unsafe-test-mode` (or by
    /// code); never read from a file or the environment.
    #[serde(skip)]
    pub unsafe_test_mode: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            node_id: 0,
            region: "local".into(),
            data_dir: PathBuf::from("ferrodyn-data"),
            listen: None,
            metrics_listen: None,
            worker_threads: None,
            min_free_disk_mb: 256,
            partitions: 64,
            replication_factor: 3,
            vnodes_per_node: 64,
            initial_cluster: Vec::new(),
            raft: RaftSettings::default(),
            log: "info,openraft=warn".into(),
            testing: TestingConfig::default(),
            unsafe_test_mode: false,
        }
    }
}

/// A configuration that cannot run, with the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or has unknown/mistyped fields.
    #[error("config file {path}: {message}")]
    Parse {
        /// File path.
        path: PathBuf,
        /// The parser's message (names the field).
        message: String,
    },
    /// A field has a bad value.
    #[error("invalid config: {field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

impl NodeConfig {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// Parses an `--initial-cluster` value: `ID=HOST:PORT` or `ID@REGION=HOST:PORT`, comma
    /// separated; `/PEER_HOST:PORT` after the address sets that member's `peer_addr`
    /// (`ID=HOST:PORT/PEER_HOST:PORT`).
    pub fn parse_initial_cluster(s: &str) -> Result<Vec<PeerConfig>, ConfigError> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|part| {
                let (left, right) = part.trim().split_once('=').ok_or_else(|| {
                    invalid(
                        "initial_cluster",
                        format!("'{part}' is not ID=HOST:PORT or ID@REGION=HOST:PORT"),
                    )
                })?;
                let (grpc, peer_addr) = match right.split_once('/') {
                    Some((g, p)) => (g, Some(p.to_string())),
                    None => (right, None),
                };
                let (id, region) = match left.split_once('@') {
                    Some((id, r)) => (id, Some(r.to_string())),
                    None => (left, None),
                };
                let id = id.parse::<u64>().map_err(|_| {
                    invalid(
                        "initial_cluster",
                        format!("node id '{id}' in '{part}' is not a number"),
                    )
                })?;
                Ok(PeerConfig {
                    id,
                    grpc: grpc.to_string(),
                    region,
                    peer_addr,
                })
            })
            .collect()
    }

    /// Checks every field, and fields against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(invalid("node_id", "must be set to a positive integer"));
        }
        if self.region.is_empty()
            || !self
                .region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "region",
                format!("'{}' must be non-empty [A-Za-z0-9_-]", self.region),
            ));
        }
        if let Some(n) = self.worker_threads {
            if n == 0 || n > 1024 {
                return Err(invalid(
                    "worker_threads",
                    format!("{n} is outside 1..=1024"),
                ));
            }
        }
        if self.min_free_disk_mb > MAX_MIN_FREE_DISK_MB {
            return Err(invalid(
                "min_free_disk_mb",
                format!(
                    "{} is above {MAX_MIN_FREE_DISK_MB} (1 PiB)",
                    self.min_free_disk_mb
                ),
            ));
        }
        if self.partitions == 0 || self.partitions > 65_536 {
            return Err(invalid(
                "partitions",
                format!("{} is outside 1..=65536", self.partitions),
            ));
        }
        if self.replication_factor == 0 {
            return Err(invalid("replication_factor", "must be at least 1"));
        }
        if self.vnodes_per_node == 0 || self.vnodes_per_node > 4096 {
            return Err(invalid(
                "vnodes_per_node",
                format!("{} is outside 1..=4096", self.vnodes_per_node),
            ));
        }
        if self.initial_cluster.is_empty() {
            return Err(invalid(
                "initial_cluster",
                "must list every member of the cluster, this node included",
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for p in &self.initial_cluster {
            if p.id == 0 {
                return Err(invalid("initial_cluster", "node ids must be positive"));
            }
            if !ids.insert(p.id) {
                return Err(invalid(
                    "initial_cluster",
                    format!("node id {} appears twice", p.id),
                ));
            }
            if !p.grpc.contains(':') {
                return Err(invalid(
                    "initial_cluster",
                    format!("address '{}' of node {} is not HOST:PORT", p.grpc, p.id),
                ));
            }
            if let Some(a) = &p.peer_addr {
                if !a.contains(':') {
                    return Err(invalid(
                        "initial_cluster.peer_addr",
                        format!("address '{a}' of node {} is not HOST:PORT", p.id),
                    ));
                }
            }
        }
        if !ids.contains(&self.node_id) {
            return Err(invalid(
                "initial_cluster",
                format!("does not contain this node (node_id {})", self.node_id),
            ));
        }
        if (self.replication_factor as usize) > self.initial_cluster.len() {
            return Err(invalid(
                "replication_factor",
                format!(
                    "{} exceeds the {} nodes of initial_cluster (each replica needs a distinct node)",
                    self.replication_factor,
                    self.initial_cluster.len()
                ),
            ));
        }
        if let Some(l) = &self.listen {
            l.parse::<SocketAddr>()
                .map_err(|e| invalid("listen", format!("'{l}': {e}")))?;
        }
        if let Some(m) = &self.metrics_listen {
            let addr = m
                .parse::<SocketAddr>()
                .map_err(|e| invalid("metrics_listen", format!("'{m}': {e}")))?;
            if self.listen_addr().parse::<SocketAddr>().ok() == Some(addr) {
                return Err(invalid(
                    "metrics_listen",
                    format!("'{m}' is the gRPC address too; give metrics their own port"),
                ));
            }
        }
        let r = &self.raft;
        if r.heartbeat_ms == 0 {
            return Err(invalid("raft.heartbeat_ms", "must be positive"));
        }
        if r.election_timeout_min_ms <= r.heartbeat_ms * 2 {
            return Err(invalid(
                "raft.election_timeout_min_ms",
                format!(
                    "{} must exceed twice raft.heartbeat_ms ({})",
                    r.election_timeout_min_ms, r.heartbeat_ms
                ),
            ));
        }
        if r.election_timeout_max_ms <= r.election_timeout_min_ms {
            return Err(invalid(
                "raft.election_timeout_max_ms",
                "must exceed raft.election_timeout_min_ms",
            ));
        }
        if r.snapshot_every_logs == 0 {
            return Err(invalid("raft.snapshot_every_logs", "must be positive"));
        }
        if r.max_inflight_proposals == 0 || r.max_inflight_proposals > 64 {
            return Err(invalid(
                "raft.max_inflight_proposals",
                format!("{} is outside 1..=64", r.max_inflight_proposals),
            ));
        }
        if !self.unsafe_test_mode {
            if let Some(&field) = self.testing.active().first() {
                return Err(invalid(
                    field,
                    "test-only option; refused in a production config \
                     (start the node with --unsafe-test-mode to allow it)",
                ));
            }
        }
        if let Some(b) = &self.testing.broken {
            if BrokenMode::parse(b).is_none() {
                return Err(invalid(
                    "testing.broken",
                    format!(
                        "'{b}' is not a broken mode; allowed: {}",
                        BROKEN_MODES.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The dial-address overrides of this node's config (`initial_cluster[].peer_addr`): the
    /// address to reach each listed member at for node-to-node traffic.
    pub fn peer_dial_addrs(&self) -> std::collections::HashMap<u64, String> {
        self.initial_cluster
            .iter()
            .filter_map(|p| p.peer_addr.clone().map(|a| (p.id, a)))
            .collect()
    }

    /// The members as the placement layer knows them.
    pub fn members(&self) -> Vec<NodeSpec> {
        self.initial_cluster
            .iter()
            .map(|p| NodeSpec {
                id: p.id,
                region: p.region.clone().unwrap_or_else(|| self.region.clone()),
                grpc_addr: p.grpc.clone(),
            })
            .collect()
    }

    /// This node's advertised gRPC address.
    pub fn advertised(&self) -> &str {
        self.initial_cluster
            .iter()
            .find(|p| p.id == self.node_id)
            .map(|p| p.grpc.as_str())
            .unwrap_or("")
    }

    /// The address to bind.
    pub fn listen_addr(&self) -> String {
        self.listen
            .clone()
            .unwrap_or_else(|| self.advertised().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> NodeConfig {
        NodeConfig {
            node_id: 1,
            initial_cluster: NodeConfig::parse_initial_cluster(
                "1=127.0.0.1:7101,2=127.0.0.1:7102,3@eu=127.0.0.1:7103",
            )
            .unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn valid_config_passes() {
        good().validate().unwrap();
        assert_eq!(good().members()[2].region, "eu");
    }

    #[test]
    fn each_bad_field_is_named() {
        type Mutation = Box<dyn Fn(&mut NodeConfig)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|c| c.node_id = 0), "node_id"),
            (Box::new(|c| c.node_id = 9), "initial_cluster"),
            (Box::new(|c| c.partitions = 0), "partitions"),
            (Box::new(|c| c.replication_factor = 4), "replication_factor"),
            (Box::new(|c| c.listen = Some("nope".into())), "listen"),
            (
                Box::new(|c| c.metrics_listen = Some("127.0.0.1".into())),
                "metrics_listen",
            ),
            (
                Box::new(|c| c.metrics_listen = Some("127.0.0.1:7101".into())),
                "metrics_listen",
            ),
            (
                Box::new(|c| c.raft.election_timeout_min_ms = 100),
                "raft.election_timeout_min_ms",
            ),
            (
                Box::new(|c| c.raft.max_inflight_proposals = 0),
                "raft.max_inflight_proposals",
            ),
            (Box::new(|c| c.worker_threads = Some(0)), "worker_threads"),
            (
                Box::new(|c| c.min_free_disk_mb = MAX_MIN_FREE_DISK_MB + 1),
                "min_free_disk_mb",
            ),
            (Box::new(|c| c.region = "a b".into()), "region"),
        ];
        for (mutate, field) in cases {
            let mut c = good();
            mutate(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e} should name {field}");
        }
    }

    #[test]
    fn toml_round_trip_and_unknown_fields_rejected() {
        let text = toml::to_string(&good()).unwrap();
        let back: NodeConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, good());
        let err = toml::from_str::<NodeConfig>("node_idd = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("node_idd"), "{err}");
    }

    #[test]
    fn peer_addr_parses_validates_and_round_trips() {
        let peers =
            NodeConfig::parse_initial_cluster("1=127.0.0.1:7101/127.0.0.1:17101,2=127.0.0.1:7102")
                .unwrap();
        assert_eq!(peers[0].grpc, "127.0.0.1:7101");
        assert_eq!(peers[0].peer_addr.as_deref(), Some("127.0.0.1:17101"));
        assert_eq!(peers[1].peer_addr, None);

        let mut c = good();
        c.initial_cluster[1].peer_addr = Some("127.0.0.1:17102".into());
        c.validate().unwrap();
        // Clients are told `grpc`; only the dial map carries the override.
        assert_eq!(c.members()[1].grpc_addr, "127.0.0.1:7102");
        assert_eq!(
            c.peer_dial_addrs(),
            [(2, "127.0.0.1:17102".to_string())].into_iter().collect()
        );
        let back: NodeConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);

        c.initial_cluster[1].peer_addr = Some("nope".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("initial_cluster.peer_addr"), "{e}");
    }

    fn with_testing(f: impl Fn(&mut TestingConfig)) -> NodeConfig {
        let mut c = good();
        f(&mut c.testing);
        c
    }

    #[test]
    fn testing_options_refused_without_unsafe_test_mode() {
        type Mutation = Box<dyn Fn(&mut TestingConfig)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|t| t.broken = Some("stale-consistent-read".into())),
                "testing.broken",
            ),
            (
                Box::new(|t| t.clock_control = true),
                "testing.clock_control",
            ),
            (
                Box::new(|t| t.clock_offset_ms = -250),
                "testing.clock_offset_ms",
            ),
        ];
        for (mutate, field) in cases {
            let mut c = with_testing(&mutate);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e} should name {field}");
            assert!(e.contains("--unsafe-test-mode"), "{e}");
            c.unsafe_test_mode = true;
            c.validate().unwrap();
        }
    }

    #[test]
    fn testing_options_accepted_with_unsafe_test_mode() {
        let mut c = with_testing(|t| {
            t.broken = Some("stale-consistent-read".into());
            t.clock_control = true;
            t.clock_offset_ms = 5_000;
        });
        c.unsafe_test_mode = true;
        c.validate().unwrap();
        assert_eq!(
            c.testing.broken_mode(),
            Some(BrokenMode::StaleConsistentRead)
        );
        // The flag is never read from a file.
        let text = toml::to_string(&c).unwrap();
        assert!(text.contains("[testing]"), "{text}");
        assert!(!text.contains("unsafe"), "{text}");
        let back: NodeConfig = toml::from_str(&text).unwrap();
        assert!(!back.unsafe_test_mode);
        assert!(back.validate().is_err());
        assert!(toml::from_str::<NodeConfig>("unsafe_test_mode = true").is_err());
        // A production config has no [testing] section.
        assert!(!toml::to_string(&good()).unwrap().contains("testing"));
    }

    #[test]
    fn bad_broken_mode_names_the_allowed_ones() {
        let mut c = with_testing(|t| t.broken = Some("lose-writes".into()));
        c.unsafe_test_mode = true;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("testing.broken"), "{e}");
        assert!(e.contains("stale-consistent-read"), "{e}");
        let err = toml::from_str::<NodeConfig>("[testing]\nclock_controll = true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("clock_controll"), "{err}");
    }

    #[test]
    fn initial_cluster_parse_errors() {
        assert!(NodeConfig::parse_initial_cluster("x=1:2").is_err());
        assert!(NodeConfig::parse_initial_cluster("1:2").is_err());
    }
}
