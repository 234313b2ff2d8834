//! The `ferrodyn-node` binary: `run` one node from its config, or start a local `playground`.

mod playground;

/// mimalloc instead of glibc malloc: the node allocates and frees many small buffers per write
/// (gRPC frames, bincode payloads, RocksDB batches) across threads, where glibc's arenas cost
/// several percent of the CPU of a write.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ferrodyn_node::config::NodeConfig;
use ferrodyn_node::Node;

#[derive(Parser)]
#[command(name = "ferrodyn-node", version, about = "Ferrodyn storage node")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one node. Flags and FERRODYN_* variables override the config file.
    Run(RunArgs),
    /// Start a local cluster, each node its own process; Ctrl-C stops it.
    Playground(playground::PlaygroundArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// TOML config file (see docs/config.md).
    #[arg(long, env = "FERRODYN_CONFIG")]
    config: Option<PathBuf>,
    /// This node's id.
    #[arg(long, env = "FERRODYN_NODE_ID")]
    node_id: Option<u64>,
    /// Region of this node.
    #[arg(long, env = "FERRODYN_REGION")]
    region: Option<String>,
    /// Data directory.
    #[arg(long, env = "FERRODYN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to bind the gRPC server to.
    #[arg(long, env = "FERRODYN_LISTEN")]
    listen: Option<String>,
    /// Address of the Prometheus endpoint (GET /metrics), e.g. 127.0.0.1:9100; off when unset
    /// or empty.
    #[arg(long, env = "FERRODYN_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Initial cluster: ID=HOST:PORT or ID@REGION=HOST:PORT, comma separated; append
    /// /PEER_HOST:PORT to dial that member there instead (its peer_addr).
    #[arg(long, env = "FERRODYN_INITIAL_CLUSTER")]
    initial_cluster: Option<String>,
    /// Number of partitions.
    #[arg(long, env = "FERRODYN_PARTITIONS")]
    partitions: Option<u32>,
    /// Replicas per partition.
    #[arg(long, env = "FERRODYN_REPLICATION_FACTOR")]
    replication_factor: Option<u32>,
    /// Log filter, e.g. info or ferrodyn_node=debug.
    #[arg(long, env = "FERRODYN_LOG")]
    log: Option<String>,
    /// Allow the test-only [testing] options of the config (deliberately broken modes, clock
    /// control). For the fault-injection suite only; never in production.
    #[arg(long)]
    unsafe_test_mode: bool,
}

impl RunArgs {
    fn into_config(self) -> Result<NodeConfig> {
        let mut cfg = match &self.config {
            Some(p) => NodeConfig::load(p)?,
            None => NodeConfig::default(),
        };
        if let Some(v) = self.node_id {
            cfg.node_id = v;
        }
        if let Some(v) = self.region {
            cfg.region = v;
        }
        if let Some(v) = self.data_dir {
            cfg.data_dir = v;
        }
        if let Some(v) = self.listen {
            cfg.listen = Some(v);
        }
        if let Some(v) = self.metrics_listen {
            // An empty value turns off an endpoint the config file enables.
            cfg.metrics_listen = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = self.initial_cluster {
            cfg.initial_cluster = NodeConfig::parse_initial_cluster(&v)?;
        }
        if let Some(v) = self.partitions {
            cfg.partitions = v;
        }
        if let Some(v) = self.replication_factor {
            cfg.replication_factor = v;
        }
        if let Some(v) = self.log {
            cfg.log = v;
        }
        // Only this flag enables test-only options: no file key, no environment variable.
        cfg.unsafe_test_mode = self.unsafe_test_mode;
        cfg.validate()?;
        Ok(cfg)
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        // When the log's disk is full, a failed log write must cost only that line. By default
        // the subscriber reports it with `eprintln!`, which panics when stderr fails too (it
        // does, when stderr is the log file): that killed the storage writer thread and the
        // fail-stop watchdog of a node whose data and log shared a full disk.
        .log_internal_errors(false)
        .init();
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = |workers: Option<usize>| {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = workers {
            b.worker_threads(n);
        }
        b.enable_all().build()
    };
    match cli.cmd {
        Cmd::Run(args) => {
            let cfg = match args.into_config() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ferrodyn-node: {e:#}");
                    std::process::exit(2);
                }
            };
            init_logging(&cfg.log);
            runtime(cfg.worker_threads)?.block_on(async move {
                let node = Node::start(cfg).await.context("starting node")?;
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                let failure = tokio::select! {
                    _ = tokio::signal::ctrl_c() => None,
                    _ = term.recv() => None,
                    reason = node.failed() => Some(reason),
                };
                node.shutdown().await;
                match failure {
                    // Fail-stop: exit non-zero so a supervisor restarts the node, or an operator
                    // sees why, once the cause is fixed.
                    Some(reason) => Err(anyhow::anyhow!(
                        "stopped after a fatal error: {reason}; fix the cause (a full or failing \
                         disk?) and restart the node"
                    )),
                    None => Ok(()),
                }
            })
        }
        Cmd::Playground(args) => {
            init_logging("warn");
            runtime(None)?.block_on(playground::run(args))
        }
    }
}
