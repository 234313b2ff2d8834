//! `ferrodyn-node playground`: a local cluster in one command, each node its own OS process.
//!
//! Layout of DIR: `cluster.json` (nodes with id, region, grpc address, metrics address, pid,
//! dir) and one
//! directory per node holding its `node.toml`, `pid`, `node.log` and data. Run again on an
//! existing DIR, it restarts the same nodes on their data. Ctrl-C or SIGTERM stops every node
//! cleanly (SIGTERM, then SIGKILL after a grace period).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ferrodyn_node::config::{NodeConfig, PeerConfig};
use serde::{Deserialize, Serialize};

/// Flags of the playground subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct PlaygroundArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// Number of partitions (default: one per core of this machine, rounded up to a multiple
    /// of the node count; see [`default_partitions`]).
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Replicas per partition (default: min(3, nodes)).
    #[arg(long)]
    pub replication_factor: Option<u32>,
    /// Directory for the cluster's data (default: a fresh temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Node i listens on base-port + i, and serves metrics (GET /metrics) on
    /// base-port + 100 + i.
    #[arg(long, default_value_t = 7100)]
    pub base_port: u16,
}

/// The playground's partition count when `--partitions` is not given: one per core of the
/// machine, rounded up to a multiple of `nodes` (so every node leads as many as the others),
/// and at least one per node. Every partition is a Raft group, and a group applies one entry
/// at a time, so a node gains nothing from leading more groups than it has cores; what more
/// groups do cost is batching: the same writes spread over more groups make more, smaller log
/// entries, and each entry costs a replication round, an append and an apply on every
/// replica. On a 2-core machine with 3 nodes, writes from 64 clients ran about 1.7-1.8x
/// faster with 3 partitions than with 64 (BENCHMARKS.md). A cluster that will grow onto more nodes
/// wants more partitions than it has nodes today: pass `--partitions`.
pub fn default_partitions(nodes: u32, cores: usize) -> u32 {
    let nodes = nodes.max(1);
    let cores = u32::try_from(cores).unwrap_or(u32::MAX).max(1);
    cores.div_ceil(nodes).saturating_mul(nodes)
}

/// Offset of the metrics ports from the gRPC ports.
const METRICS_PORT_OFFSET: u64 = 100;

/// One node in `cluster.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NodeEntry {
    id: u64,
    region: String,
    grpc: String,
    /// Address of the node's `/metrics` endpoint (absent in clusters made before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metrics: Option<String>,
    pid: u32,
    dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClusterFile {
    nodes: Vec<NodeEntry>,
}

/// Runs the playground until Ctrl-C / SIGTERM.
pub async fn run(args: PlaygroundArgs) -> Result<()> {
    let exe = std::env::current_exe().context("locating the ferrodyn-node binary")?;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => tempfile::Builder::new()
            .prefix("ferrodyn-playground-")
            .tempdir()?
            .keep(),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let cluster_path = dir.join("cluster.json");
    let mut entries = if cluster_path.exists() {
        let c: ClusterFile = serde_json::from_str(&std::fs::read_to_string(&cluster_path)?)
            .with_context(|| format!("reading {}", cluster_path.display()))?;
        println!(
            "restarting the {}-node cluster in {}",
            c.nodes.len(),
            dir.display()
        );
        c.nodes
    } else {
        if args.nodes == 0 {
            bail!("--nodes must be at least 1");
        }
        let rf = args.replication_factor.unwrap_or(args.nodes.min(3));
        if args.base_port as u64 + METRICS_PORT_OFFSET + args.nodes as u64 > u16::MAX as u64 {
            bail!(
                "--base-port {} is too high for {} nodes: ports up to base-port + {} + nodes are used",
                args.base_port,
                args.nodes,
                METRICS_PORT_OFFSET
            );
        }
        let peers: Vec<PeerConfig> = (1..=args.nodes as u64)
            .map(|id| PeerConfig {
                id,
                grpc: format!("127.0.0.1:{}", args.base_port as u64 + id),
                region: None,
                peer_addr: None,
            })
            .collect();
        // The nodes share this machine: each gets an equal share of its cores for its async
        // workers, rather than every node scheduling onto all of them.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = (cores / args.nodes.max(1) as usize).max(1);
        let partitions = args
            .partitions
            .unwrap_or_else(|| default_partitions(args.nodes, cores));
        let mut entries = Vec::new();
        for p in &peers {
            let node_dir = dir.join(format!("node{}", p.id));
            std::fs::create_dir_all(&node_dir)?;
            let metrics = format!(
                "127.0.0.1:{}",
                args.base_port as u64 + METRICS_PORT_OFFSET + p.id
            );
            let cfg = NodeConfig {
                node_id: p.id,
                region: "local".into(),
                data_dir: node_dir.join("data"),
                metrics_listen: Some(metrics.clone()),
                worker_threads: Some(workers),
                partitions,
                replication_factor: rf,
                initial_cluster: peers.clone(),
                ..Default::default()
            };
            cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
            std::fs::write(node_dir.join("node.toml"), toml::to_string_pretty(&cfg)?)?;
            entries.push(NodeEntry {
                id: p.id,
                region: cfg.region,
                grpc: p.grpc.clone(),
                metrics: Some(metrics),
                pid: 0,
                dir: node_dir,
            });
        }
        println!(
            "starting a {}-node cluster ({} partitions, rf {rf}) in {}",
            args.nodes,
            partitions,
            dir.display()
        );
        entries
    };

    let mut children: Vec<(u64, Child)> = Vec::new();
    for e in entries.iter_mut() {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(e.dir.join("node.log"))?;
        let child = Command::new(&exe)
            .arg("run")
            .arg("--config")
            .arg(e.dir.join("node.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {}", e.id))?;
        e.pid = child.id();
        std::fs::write(e.dir.join("pid"), format!("{}\n", e.pid))?;
        children.push((e.id, child));
    }
    write_atomically(
        &cluster_path,
        &serde_json::to_string_pretty(&ClusterFile {
            nodes: entries.clone(),
        })?,
    )?;
    for e in &entries {
        let metrics = e
            .metrics
            .as_ref()
            .map(|m| format!("  metrics http://{m}/metrics"))
            .unwrap_or_default();
        println!(
            "node {} ({}): grpc http://{}{metrics}  pid {}  log {}",
            e.id,
            e.region,
            e.grpc,
            e.pid,
            e.dir.join("node.log").display()
        );
    }
    println!("cluster file: {}", cluster_path.display());
    println!(
        "try: ferrodyn --endpoint http://{} status     (Ctrl-C stops the cluster)",
        entries[0].grpc
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut watch = tokio::time::interval(Duration::from_millis(500));
    let mut exited: Vec<u64> = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = watch.tick() => {
                for (id, child) in children.iter_mut() {
                    if !exited.contains(id) {
                        if let Ok(Some(status)) = child.try_wait() {
                            eprintln!("node {id} exited ({status}); restart it with: ferrodyn-node run --config {}",
                                dir.join(format!("node{id}")).join("node.toml").display());
                            exited.push(*id);
                        }
                    }
                }
            }
        }
    }
    println!("stopping the cluster");
    stop_children(&mut children);
    for e in &entries {
        let _ = std::fs::remove_file(e.dir.join("pid"));
    }
    println!("stopped; data kept in {}", dir.display());
    Ok(())
}

/// SIGTERM every node, wait for them to exit, SIGKILL any still running after 15 s.
fn stop_children(children: &mut [(u64, Child)]) {
    for (_, c) in children.iter() {
        // SAFETY: kill(2) with a pid we spawned and a valid signal number.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for (id, c) in children.iter_mut() {
        loop {
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    eprintln!("node {id} did not stop in time; killing it");
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::default_partitions;

    #[test]
    fn default_partitions_is_a_multiple_of_the_nodes_covering_the_cores() {
        assert_eq!(default_partitions(3, 2), 3);
        assert_eq!(default_partitions(3, 8), 9);
        assert_eq!(default_partitions(3, 3), 3);
        assert_eq!(default_partitions(5, 16), 20);
        assert_eq!(default_partitions(1, 4), 4);
        // Degenerate inputs still give a valid count.
        assert_eq!(default_partitions(0, 0), 1);
        assert_eq!(default_partitions(2, 0), 2);
    }
}
