//! `ferrodyn-jepsen run`: starts a cluster, runs a workload's clients with the nemesis, then
//! heals, takes the final reads, checks the history and writes the report.
//!
//! A run, in order:
//! 1. start a [`Cluster`] of real `ferrodyn-node` processes under `DIR/cluster` and create the
//!    workload's table (retrying, bounded);
//! 2. run `concurrency` client workers for the time limit, together with the
//!    nemesis ([`crate::nemesis`]). Each worker is bound to one node (worker `w` talks to the
//!    `w mod n`-th node) through a raw gRPC client that does **not** ask for direct routing, so
//!    the node forwards to the shard leader itself, as a DynamoDB endpoint would. Every operation
//!    has a timeout and is recorded through one [`Recorder`];
//! 3. stop the workers (operations in flight complete or time out and are recorded) and the
//!    nemesis, heal every fault ([`Cluster::heal_all`]), take the set workload's final read,
//!    and shut the cluster down — always, also after an error or Ctrl-C;
//! 4. check the history ([`check`]) and write `DIR/history.jsonl`, `DIR/results.json` (the
//!    [`Report`] plus a `"run"` object with the run's parameters and counts) and
//!    `DIR/timeline.html`, and build the one-screen summary.
//!
//! Outcomes follow the harness contract of [`crate::history`]: a read that errors is `fail`
//! (reads have no effect); a write is `fail` only when the error shows it certainly was not
//! applied ([`write_error_outcome`]), otherwise `info`, after which the worker continues under
//! a fresh process id.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as _;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use ferrodyn_client::error::{ErrorKind, WireError};
use ferrodyn_client::proto;
use ferrodyn_client::proto::attribute_value::Value as PV;
use ferrodyn_client::proto::ferrodyn_client::FerrodynClient;
use ferrodyn_client::{Client, ClientConfig, KeyAttr, KeySchema, KeyType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use crate::checker::eventual::EventualReads;
use crate::checker::linearizable::{Budget, Linearizability};
use crate::checker::set::SetChecker;
use crate::checker::{check_history, Checker, OpRef, Report, Verdict};
use crate::cluster::{Cluster, ClusterSpec};
use crate::history::{Func, History, OpType, Process, Recorder};
use crate::nemesis::{self, FaultKind, NemesisConfig, NemesisStats};
use crate::timeline::{self, TimelineOptions};
use crate::workload::register;

/// Table of the register and eventual workloads: partition key `k` (S), value `v` (N).
pub const REGISTER_TABLE: &str = "jepsen_register";
/// Table of the set workload: partition key `g` (S, the group), sort key `e` (N, the element).
pub const SET_TABLE: &str = "jepsen_set";

/// How long table creation may keep retrying.
const SETUP_BUDGET: Duration = Duration::from_secs(60);
/// How long the set workload's final read may keep retrying.
const FINAL_READ_BUDGET: Duration = Duration::from_secs(60);
/// Timeout of one final-read query attempt.
const FINAL_READ_ATTEMPT: Duration = Duration::from_secs(5);
/// How long [`Cluster::heal_all`] may wait for leaders after the nemesis stopped.
const HEAL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the nemesis may take to undo its last fault once told to stop.
const NEMESIS_STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// Which workload a run drives (and which checkers judge it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Per-key registers: strongly consistent reads and writes of unique values, checked for
    /// linearizability.
    Register,
    /// A set: adds of unique elements, then one strongly consistent final read; checked for
    /// lost and unexpected elements.
    Set,
    /// Registers read eventually consistently (plus some strongly consistent reads): reads must
    /// return written values; staleness is measured. Consistent reads and writes are also
    /// checked for linearizability.
    Eventual,
}

impl Workload {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Register => "register",
            Workload::Set => "set",
            Workload::Eventual => "eventual",
        }
    }
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "register" => Ok(Workload::Register),
            "set" => Ok(Workload::Set),
            "eventual" => Ok(Workload::Eventual),
            other => Err(format!(
                "unknown workload '{other}' (expected register, set or eventual)"
            )),
        }
    }
}

/// The name of a fault kind, as on the command line.
pub fn fault_name(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::Partition => "partition",
        FaultKind::Kill => "kill",
        FaultKind::Pause => "pause",
        FaultKind::Clock => "clock",
    }
}

/// Parses `--nemesis`: a comma-separated list of fault kinds; empty or `none` means no faults.
/// Duplicates are dropped.
pub fn parse_nemesis(s: &str) -> Result<Vec<FaultKind>, String> {
    let mut kinds = Vec::new();
    for part in s.split(',').map(str::trim) {
        if part.is_empty() || part == "none" {
            continue;
        }
        let k: FaultKind = part.parse()?;
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    Ok(kinds)
}

/// Parses a duration: a number of seconds (`40`, `1.5`) or a number with a unit (`500ms`,
/// `2s`, `1m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration '{s}' (e.g. 40, 1.5, 500ms, 2s, 1m)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!(
            "invalid duration '{s}': must be a non-negative number"
        ));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// Everything a run needs to know.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The workload.
    pub workload: Workload,
    /// Fault kinds for the nemesis; empty for none.
    pub nemesis: Vec<FaultKind>,
    /// How long the clients run.
    pub time_limit: Duration,
    /// Where the report (and the cluster's files, under `cluster/`) go.
    pub report_dir: PathBuf,
    /// Number of nodes.
    pub nodes: usize,
    /// Number of partitions.
    pub partitions: u32,
    /// Replicas per partition.
    pub replication: u32,
    /// The `ferrodyn-node` binary; `None` looks next to this executable, then on `PATH`.
    pub node_bin: Option<PathBuf>,
    /// Broken mode for the nodes (e.g. `stale-consistent-read`), to check that the checkers
    /// catch a known bug.
    pub broken: Option<String>,
    /// Number of client workers.
    pub concurrency: usize,
    /// Target operations per second, over all workers.
    pub rate: f64,
    /// Timeout of one client operation (and of connecting).
    pub op_timeout: Duration,
    /// How long each fault stays on.
    pub nemesis_active: Duration,
    /// Quiet time between faults.
    pub nemesis_quiet: Duration,
    /// Seed of the nemesis schedule and the workers' choices; `None` picks one at random.
    pub seed: Option<u64>,
    /// Register/eventual: number of keys in use at a time.
    pub keys: usize,
    /// Register/eventual: operations on a key before it is retired for a fresh one.
    pub ops_per_key: u64,
    /// Set: number of groups (partition keys) the elements are spread over.
    pub groups: u64,
    /// Wall-clock budget of the linearizability check.
    pub check_time_limit: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workload: Workload::Register,
            nemesis: Vec::new(),
            time_limit: Duration::from_secs(60),
            report_dir: PathBuf::from("jepsen-report"),
            nodes: 5,
            partitions: 8,
            replication: 3,
            node_bin: None,
            broken: None,
            concurrency: 10,
            rate: 100.0,
            op_timeout: Duration::from_secs(1),
            nemesis_active: Duration::from_secs(5),
            nemesis_quiet: Duration::from_secs(5),
            seed: None,
            keys: 5,
            ops_per_key: 200,
            groups: 8,
            check_time_limit: Duration::from_secs(30),
        }
    }
}

impl RunOptions {
    fn validate(&self) -> anyhow::Result<()> {
        if self.nodes == 0 {
            bail!("--nodes must be at least 1");
        }
        if self.replication == 0 || self.replication as usize > self.nodes {
            bail!(
                "replication {} needs between 1 and --nodes ({}) nodes",
                self.replication,
                self.nodes
            );
        }
        if self.partitions == 0 {
            bail!("--partitions must be at least 1");
        }
        if self.concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            bail!("--rate must be a positive number of operations per second");
        }
        if self.op_timeout.is_zero() {
            bail!("--op-timeout must be positive");
        }
        if self.keys == 0 || self.ops_per_key == 0 || self.groups == 0 {
            bail!("--keys, --ops-per-key and --groups must be at least 1");
        }
        Ok(())
    }
}

/// Operation counts of one `f`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OpCounts {
    /// Completed ok.
    pub ok: u64,
    /// Completed fail.
    pub fail: u64,
    /// Completed info (indeterminate).
    pub info: u64,
    /// Invoked but never completed.
    pub pending: u64,
}

/// Counts client operations per `f` and outcome.
pub fn op_counts(history: &History) -> BTreeMap<String, OpCounts> {
    let mut counts: BTreeMap<String, OpCounts> = BTreeMap::new();
    for op in history.ops() {
        if op.process == Process::Nemesis {
            continue;
        }
        let c = counts.entry(op.f.to_string()).or_default();
        match op.op_type {
            OpType::Invoke => c.pending += 1,
            OpType::Ok => c.ok += 1,
            OpType::Fail => c.fail += 1,
            OpType::Info => c.info += 1,
        }
    }
    for c in counts.values_mut() {
        c.pending = c.pending.saturating_sub(c.ok + c.fail + c.info);
    }
    counts
}

/// One error text and how often it was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    /// The error (truncated to 120 characters).
    pub error: String,
    /// Occurrences.
    pub count: u64,
}

/// The most frequent completion errors, most frequent first.
fn top_errors(history: &History, n: usize) -> Vec<ErrorCount> {
    let mut m: HashMap<String, u64> = HashMap::new();
    for op in history.ops() {
        if let Some(e) = &op.error {
            *m.entry(truncate(e, 120)).or_default() += 1;
        }
    }
    let mut v: Vec<ErrorCount> = m
        .into_iter()
        .map(|(error, count)| ErrorCount { error, count })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.error.cmp(&b.error)));
    v.truncate(n);
    v
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// The run's parameters and what happened, stored as `"run"` in `DIR/results.json`.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    /// The workload.
    pub workload: Workload,
    /// Fault kinds.
    pub nemesis: Vec<&'static str>,
    /// The seed (repeat a run's choices with `--seed`).
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Partitions.
    pub partitions: u32,
    /// Replicas per partition.
    pub replication: u32,
    /// Broken mode of the nodes, if any.
    pub broken: Option<String>,
    /// Client workers.
    pub concurrency: usize,
    /// Target ops/s.
    pub rate: f64,
    /// Client time limit (s).
    pub time_limit_s: f64,
    /// Operation timeout (s).
    pub op_timeout_s: f64,
    /// Fault on-time (s).
    pub nemesis_active_s: f64,
    /// Fault off-time (s).
    pub nemesis_quiet_s: f64,
    /// The node binary.
    pub node_bin: String,
    /// Wall-clock start (ms since the Unix epoch).
    pub started_unix_ms: u64,
    /// How long the clients actually ran (s).
    pub workload_s: f64,
    /// Whole run, cluster start to shutdown (s).
    pub duration_s: f64,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
    /// Client operations per `f` and outcome.
    pub ops: BTreeMap<String, OpCounts>,
    /// Most frequent completion errors.
    pub errors: Vec<ErrorCount>,
    /// Faults the nemesis injected, by kind and variant.
    pub nemesis_stats: Option<NemesisStats>,
    /// Problems of the harness itself (nemesis, healing, workers); any makes a valid run exit 2.
    pub harness_errors: Vec<String>,
    /// Client process → node id it was bound to.
    pub process_nodes: BTreeMap<u64, u64>,
    /// The exit code of the run.
    pub exit_code: i32,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The checkers' report.
    pub report: Report,
    /// Run parameters and counts.
    pub info: RunInfo,
    /// Process exit code: 0 valid, 1 invalid, 2 unknown or harness error.
    pub exit_code: i32,
    /// The one-screen summary for stdout.
    pub summary: String,
    /// The report directory.
    pub dir: PathBuf,
}

/// Exit code of a run: the report's, except that a harness error turns a valid run into 2.
pub fn run_exit_code(report: &Report, harness_errors: &[String]) -> i32 {
    let code = report.exit_code();
    if code == 0 && !harness_errors.is_empty() {
        2
    } else {
        code
    }
}

/// Finds `ferrodyn-node`: `explicit` if given, else next to the current executable, else on
/// `PATH`.
pub fn resolve_node_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        bail!("--node-bin {}: no such file", p.display());
    }
    let mut tried = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let p = dir.join("ferrodyn-node");
            if p.is_file() {
                return Ok(p);
            }
            tried.push(dir.display().to_string());
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("ferrodyn-node");
            if p.is_file() {
                return Ok(p);
            }
        }
        tried.push("$PATH".into());
    }
    bail!(
        "ferrodyn-node not found (looked in {}); build it with \
         `cargo build --release -p ferrodyn-node` or pass --node-bin",
        tried.join(", ")
    )
}

/// The checkers of a workload, run on `history`.
pub fn check(history: &History, workload: Workload, check_time_limit: Duration) -> Report {
    let lin = Linearizability::with_budget(Budget {
        time_limit: Some(check_time_limit),
        ..Budget::default()
    });
    let set = SetChecker;
    let eventual = EventualReads::default();
    let checkers: Vec<&dyn Checker> = match workload {
        Workload::Register => vec![&lin],
        Workload::Set => vec![&set],
        // Linearizability ignores reads marked "consistent": false, so it judges the writes
        // and the strongly consistent reads of the eventual workload.
        Workload::Eventual => vec![&eventual, &lin],
    };
    check_history(history, &checkers)
}

/// How a failed write is recorded: `fail` if the error shows it certainly was not applied,
/// `info` otherwise.
///
/// Certain: the request was rejected before anything was proposed (`ValidationException`,
/// `ResourceNotFoundException`, `ResourceInUseException`, `ConditionalCheckFailedException`),
/// or our own connection to the node was refused (nothing was sent). Everything else —
/// timeouts, `Unavailable`, `NotLeader`/`WrongShard` after the node forwarded, internal errors,
/// broken connections — may have been applied.
pub fn write_error_outcome(status: &tonic::Status) -> OpType {
    if is_local_connection_refused(status) {
        return OpType::Fail;
    }
    match WireError::from_status(status).kind {
        ErrorKind::Validation
        | ErrorKind::ResourceNotFound
        | ErrorKind::ResourceInUse
        | ErrorKind::ConditionalCheckFailed => OpType::Fail,
        ErrorKind::Internal
        | ErrorKind::NotLeader { .. }
        | ErrorKind::WrongShard { .. }
        | ErrorKind::Unavailable => OpType::Info,
    }
}

/// Whether `status` was raised by this process's own channel because the TCP connection was
/// refused. Statuses that came over the wire (e.g. a node's failed forward) carry no source
/// error, so a refusal between nodes never counts.
pub fn is_local_connection_refused(status: &tonic::Status) -> bool {
    let mut source = status.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = e.source();
    }
    false
}

/// A status as one line: the wire error, plus the local cause chain if any.
fn status_text(status: &tonic::Status) -> String {
    let mut s = WireError::from_status(status).to_string();
    let mut source = status.source();
    let mut depth = 0;
    while let Some(e) = source {
        let text = e.to_string();
        if !s.contains(&text) {
            let _ = write!(s, ": {text}");
        }
        source = e.source();
        depth += 1;
        if depth > 6 {
            break;
        }
    }
    s
}

/// A lazily connecting gRPC client of one node's public service. Plain requests (no
/// `x-ferrodyn-route: direct`), so the node forwards to shard leaders itself.
fn node_client(endpoint: &str, timeout: Duration) -> anyhow::Result<FerrodynClient<Channel>> {
    let ep = Endpoint::from_shared(endpoint.to_string())
        .with_context(|| format!("invalid endpoint {endpoint}"))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .tcp_nodelay(true);
    Ok(FerrodynClient::new(ep.connect_lazy())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

fn s(v: &str) -> proto::AttributeValue {
    proto::AttributeValue {
        value: Some(PV::S(v.to_string())),
    }
}

fn n(v: u64) -> proto::AttributeValue {
    proto::AttributeValue {
        value: Some(PV::N(v.to_string())),
    }
}

fn item(attrs: Vec<(&str, proto::AttributeValue)>) -> proto::Item {
    proto::Item {
        attributes: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
}

/// A numeric attribute as JSON: the integer if it is one, else its text (so a corrupt value
/// still reaches the checkers, which flag it as never written).
fn attr_json(v: Option<&proto::AttributeValue>) -> Value {
    match v.and_then(|v| v.value.as_ref()) {
        None => Value::Null,
        Some(PV::N(text)) => text
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(format!("N:{text}"))),
        Some(other) => Value::String(format!("{other:?}")),
    }
}

/// The value a register read returned: `null` for no item, else its `v` attribute.
fn register_value(item: Option<proto::Item>) -> Value {
    match item {
        None => Value::Null,
        Some(i) => match i.attributes.get("v") {
            None => Value::String("item without v".into()),
            some => attr_json(some),
        },
    }
}

/// Register keys in use: a few at a time, each retired after `ops_per_key` operations.
#[derive(Debug)]
struct KeyRotation {
    slots: Vec<(String, u64)>,
    next: u64,
    ops_per_key: u64,
}

impl KeyRotation {
    fn new(keys: usize, ops_per_key: u64) -> Self {
        KeyRotation {
            slots: (0..keys).map(|i| (format!("r{i}"), 0)).collect(),
            next: keys as u64,
            ops_per_key,
        }
    }

    fn pick(&mut self, rng: &mut impl Rng) -> String {
        let i = rng.gen_range(0..self.slots.len());
        let slot = &mut self.slots[i];
        let key = slot.0.clone();
        slot.1 += 1;
        if slot.1 >= self.ops_per_key {
            *slot = (format!("r{}", self.next), 0);
            self.next += 1;
        }
        key
    }
}

/// One client operation to perform.
#[derive(Debug, Clone, PartialEq)]
enum ClientOp {
    Read { key: String, consistent: bool },
    Write { key: String, value: u64 },
    Add { element: u64 },
}

/// State shared by the workers.
struct Shared {
    rec: Arc<Recorder>,
    workload: Workload,
    groups: u64,
    op_timeout: Duration,
    counter: AtomicU64,
    keys: Mutex<KeyRotation>,
    process_nodes: Mutex<BTreeMap<u64, u64>>,
}

impl Shared {
    fn new_process(&self, node: u64) -> u64 {
        let p = self.rec.fresh_process();
        self.process_nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p, node);
        p
    }

    fn unique(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn key(&self, rng: &mut StdRng) -> String {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pick(rng)
    }

    fn next_op(&self, rng: &mut StdRng) -> ClientOp {
        match self.workload {
            Workload::Register => {
                let key = self.key(rng);
                if rng.gen_bool(0.5) {
                    ClientOp::Read {
                        key,
                        consistent: true,
                    }
                } else {
                    ClientOp::Write {
                        key,
                        value: self.unique(),
                    }
                }
            }
            Workload::Eventual => {
                let key = self.key(rng);
                let r: f64 = rng.gen();
                if r < 0.4 {
                    ClientOp::Write {
                        key,
                        value: self.unique(),
                    }
                } else {
                    ClientOp::Read {
                        key,
                        consistent: r >= 0.85,
                    }
                }
            }
            Workload::Set => ClientOp::Add {
                element: self.unique(),
            },
        }
    }

    /// Performs `op` as `process` and records its invocation and completion; returns the
    /// completion type.
    async fn execute(
        &self,
        client: &mut FerrodynClient<Channel>,
        process: u64,
        op: ClientOp,
    ) -> OpType {
        let rec = &self.rec;
        let timeout = self.op_timeout;
        let timed_out = || format!("timed out after {:?}", timeout);
        match op {
            ClientOp::Read { key, consistent } => {
                let inv = if consistent {
                    register::read(&key)
                } else {
                    register::read_eventual(&key)
                };
                rec.invoke(process, Func::Read, inv.clone());
                let req = proto::GetItemRequest {
                    table_name: REGISTER_TABLE.into(),
                    key: Some(item(vec![("k", s(&key))])),
                    consistent_read: consistent,
                };
                let (t, value, err) = match tokio::time::timeout(timeout, client.get_item(req))
                    .await
                {
                    Ok(Ok(resp)) => (
                        OpType::Ok,
                        register::read_ok(&key, register_value(resp.into_inner().item), consistent),
                        None,
                    ),
                    Ok(Err(status)) => (OpType::Fail, inv, Some(status_text(&status))),
                    Err(_) => (OpType::Fail, inv, Some(timed_out())),
                };
                rec.complete(process, t, Func::Read, value, err);
                t
            }
            ClientOp::Write { key, value } => {
                let v = register::write(&key, json!(value));
                rec.invoke(process, Func::Write, v.clone());
                let req = proto::PutItemRequest {
                    table_name: REGISTER_TABLE.into(),
                    item: Some(item(vec![("k", s(&key)), ("v", n(value))])),
                };
                let (t, err) = put_outcome(
                    tokio::time::timeout(timeout, client.put_item(req)).await,
                    timed_out,
                );
                rec.complete(process, t, Func::Write, v, err);
                t
            }
            ClientOp::Add { element } => {
                let v = json!(element);
                rec.invoke(process, Func::Add, v.clone());
                let req = proto::PutItemRequest {
                    table_name: SET_TABLE.into(),
                    item: Some(item(vec![
                        ("g", s(&format!("g{}", element % self.groups))),
                        ("e", n(element)),
                    ])),
                };
                let (t, err) = put_outcome(
                    tokio::time::timeout(timeout, client.put_item(req)).await,
                    timed_out,
                );
                rec.complete(process, t, Func::Add, v, err);
                t
            }
        }
    }
}

type PutResult = Result<
    Result<tonic::Response<proto::PutItemResponse>, tonic::Status>,
    tokio::time::error::Elapsed,
>;

fn put_outcome(r: PutResult, timed_out: impl Fn() -> String) -> (OpType, Option<String>) {
    match r {
        Ok(Ok(_)) => (OpType::Ok, None),
        Ok(Err(status)) => (write_error_outcome(&status), Some(status_text(&status))),
        Err(_) => (OpType::Info, Some(timed_out())),
    }
}

/// One client worker, bound to `node`: performs operations at its share of the rate until
/// `stop` turns true.
async fn worker(
    w: usize,
    node: u64,
    mut client: FerrodynClient<Channel>,
    shared: Arc<Shared>,
    period: Duration,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (w as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut next = tokio::time::Instant::now() + period.mul_f64(rng.gen::<f64>());
    let mut process = shared.new_process(node);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        if *stop.borrow() {
            break;
        }
        let now = tokio::time::Instant::now();
        next = (next + period).max(now);
        let op = shared.next_op(&mut rng);
        if shared.execute(&mut client, process, op).await == OpType::Info {
            process = shared.new_process(node);
        }
    }
}

/// Creates the workload's table, retrying until it exists (bounded).
async fn create_table(endpoints: &[String], workload: Workload) -> anyhow::Result<()> {
    let (name, schema) = match workload {
        Workload::Register | Workload::Eventual => (
            REGISTER_TABLE,
            KeySchema {
                partition_key: KeyAttr::new("k", KeyType::S),
                sort_key: None,
            },
        ),
        Workload::Set => (
            SET_TABLE,
            KeySchema {
                partition_key: KeyAttr::new("g", KeyType::S),
                sort_key: Some(KeyAttr::new("e", KeyType::N)),
            },
        ),
    };
    let deadline = Instant::now() + SETUP_BUDGET;
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut cfg = ClientConfig::new(endpoints.iter().cloned());
        cfg.request_timeout = Duration::from_secs(5);
        cfg.retry_budget = Duration::from_secs(10);
        let r = async {
            let c = Client::connect(cfg).await?;
            match c.create_table(name, &schema).await {
                Ok(_) => Ok(()),
                Err(e) if e.kind == ErrorKind::ResourceInUse => Ok(()),
                Err(e) => Err(e),
            }
        }
        .await;
        match r {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!("creating table {name}: {e}; retrying");
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    bail!("could not create table {name} within {SETUP_BUDGET:?}: {last}")
}

/// Waits until every node serves a strongly consistent read of the workload's table (so the
/// run does not start with every node still learning about the table). Returns the nodes that
/// never did.
async fn warm_up(nodes: &[(u64, String)], workload: Workload) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut failed = Vec::new();
    for (id, ep) in nodes {
        let Ok(mut c) = node_client(ep, Duration::from_secs(5)) else {
            failed.push(*id);
            continue;
        };
        loop {
            let ok = match workload {
                Workload::Set => c
                    .query(proto::QueryRequest {
                        table_name: SET_TABLE.into(),
                        partition_key_value: Some(s("g0")),
                        consistent_read: true,
                        limit: 1,
                        ..Default::default()
                    })
                    .await
                    .is_ok(),
                _ => c
                    .get_item(proto::GetItemRequest {
                        table_name: REGISTER_TABLE.into(),
                        key: Some(item(vec![("k", s("warm-up"))])),
                        consistent_read: true,
                    })
                    .await
                    .is_ok(),
            };
            if ok {
                break;
            }
            if Instant::now() >= deadline {
                failed.push(*id);
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    failed
}

/// The set workload's final read: a strongly consistent Query of every group (all pages),
/// through any node, retried until [`FINAL_READ_BUDGET`]; recorded as one `final-read`.
async fn final_read(nodes: &[(u64, String)], groups: u64, rec: &Recorder) {
    let p = rec.fresh_process();
    rec.invoke(p, Func::FinalRead, Value::Null);
    let deadline = Instant::now() + FINAL_READ_BUDGET;
    let mut clients: Vec<FerrodynClient<Channel>> = nodes
        .iter()
        .filter_map(|(_, ep)| node_client(ep, FINAL_READ_ATTEMPT).ok())
        .collect();
    let mut elements: Vec<Value> = Vec::new();
    let mut turn = 0usize;
    let mut last_error = String::from("no node to read from");
    'groups: for g in 0..groups {
        let mut group_elements = Vec::new();
        let mut start_key: Option<proto::Item> = None;
        loop {
            if clients.is_empty() || Instant::now() >= deadline {
                rec.complete(
                    p,
                    OpType::Fail,
                    Func::FinalRead,
                    Value::Null,
                    Some(format!(
                        "final read did not succeed within {FINAL_READ_BUDGET:?}: {last_error}"
                    )),
                );
                return;
            }
            let i = turn % clients.len();
            let c = &mut clients[i];
            let req = proto::QueryRequest {
                table_name: SET_TABLE.into(),
                partition_key_value: Some(s(&format!("g{g}"))),
                consistent_read: true,
                exclusive_start_key: start_key.clone(),
                ..Default::default()
            };
            match tokio::time::timeout(FINAL_READ_ATTEMPT, c.query(req)).await {
                Ok(Ok(resp)) => {
                    let resp = resp.into_inner();
                    group_elements
                        .extend(resp.items.iter().map(|i| attr_json(i.attributes.get("e"))));
                    match resp.last_evaluated_key {
                        Some(k) => start_key = Some(k),
                        None => {
                            elements.append(&mut group_elements);
                            continue 'groups;
                        }
                    }
                }
                Ok(Err(status)) => {
                    last_error = status_text(&status);
                    turn += 1;
                    // Start the group over: pages from different attempts are not one read.
                    group_elements.clear();
                    start_key = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(_) => {
                    last_error = format!("query timed out after {FINAL_READ_ATTEMPT:?}");
                    turn += 1;
                    group_elements.clear();
                    start_key = None;
                }
            }
        }
    }
    rec.complete(p, OpType::Ok, Func::FinalRead, Value::Array(elements), None);
}

/// What the cluster phase of a run produced.
struct Driven {
    history: History,
    process_nodes: BTreeMap<u64, u64>,
    nemesis_stats: Option<NemesisStats>,
    harness_errors: Vec<String>,
    workload_time: Duration,
}

fn progress(msg: &str) {
    eprintln!("ferrodyn-jepsen: {msg}");
}

/// Everything that needs the cluster: setup, workers and nemesis, heal, final read.
async fn drive(
    cluster: Arc<Cluster>,
    opts: RunOptions,
    seed: u64,
    stop_tx: Arc<watch::Sender<bool>>,
) -> anyhow::Result<Driven> {
    let ids = cluster.node_ids();
    if ids.is_empty() {
        bail!("the cluster has no nodes");
    }
    let nodes: Vec<(u64, String)> = ids.iter().map(|&id| (id, cluster.endpoint(id))).collect();
    let endpoints: Vec<String> = nodes.iter().map(|(_, e)| e.clone()).collect();
    create_table(&endpoints, opts.workload).await?;
    let mut harness_errors = Vec::new();
    let cold = warm_up(&nodes, opts.workload).await;
    if !cold.is_empty() {
        tracing::warn!("nodes {cold:?} did not serve a consistent read within 30 s of setup");
    }

    let rec = Arc::new(Recorder::new());
    let shared = Arc::new(Shared {
        rec: rec.clone(),
        workload: opts.workload,
        groups: opts.groups,
        op_timeout: opts.op_timeout,
        counter: AtomicU64::new(0),
        keys: Mutex::new(KeyRotation::new(opts.keys, opts.ops_per_key)),
        process_nodes: Mutex::new(BTreeMap::new()),
    });
    progress(&format!(
        "running {} for {:.0?} with {} clients, nemesis: {}",
        opts.workload.as_str(),
        opts.time_limit,
        opts.concurrency,
        if opts.nemesis.is_empty() {
            "none".to_string()
        } else {
            opts.nemesis
                .iter()
                .map(|k| fault_name(*k))
                .collect::<Vec<_>>()
                .join(",")
        }
    ));

    let nemesis_task: Option<JoinHandle<_>> = (!opts.nemesis.is_empty()).then(|| {
        tokio::spawn(nemesis::run(
            cluster.clone(),
            NemesisConfig {
                kinds: opts.nemesis.clone(),
                active: opts.nemesis_active,
                quiet: opts.nemesis_quiet,
                seed,
            },
            rec.clone(),
            stop_tx.subscribe(),
        ))
    });

    let period = Duration::from_secs_f64(opts.concurrency as f64 / opts.rate);
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..opts.concurrency {
        let (node, ep) = &nodes[w % nodes.len()];
        let client = node_client(ep, opts.op_timeout)?;
        workers.push(tokio::spawn(worker(
            w,
            *node,
            client,
            shared.clone(),
            period,
            seed,
            stop_tx.subscribe(),
        )));
    }

    let mut stop_rx = stop_tx.subscribe();
    tokio::select! {
        _ = tokio::time::sleep(opts.time_limit) => {}
        _ = stop_rx.wait_for(|s| *s) => {}
    }
    let _ = stop_tx.send(true);
    let workload_time = started.elapsed();

    // In-flight operations complete or time out on their own.
    let grace = opts.op_timeout * 2 + Duration::from_secs(10);
    for (w, mut h) in workers.into_iter().enumerate() {
        match tokio::time::timeout(grace, &mut h).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => harness_errors.push(format!("client worker {w}: {e}")),
            Err(_) => {
                h.abort();
                harness_errors.push(format!("client worker {w} did not stop within {grace:?}"));
            }
        }
    }

    let mut nemesis_stats = None;
    if let Some(mut h) = nemesis_task {
        progress("stopping the nemesis");
        match tokio::time::timeout(NEMESIS_STOP_TIMEOUT, &mut h).await {
            Ok(Ok(Ok(stats))) => nemesis_stats = Some(stats),
            Ok(Ok(Err(e))) => harness_errors.push(format!("nemesis: {e}")),
            Ok(Err(e)) => harness_errors.push(format!("nemesis task: {e}")),
            Err(_) => {
                h.abort();
                harness_errors.push(format!(
                    "nemesis did not stop within {NEMESIS_STOP_TIMEOUT:?}"
                ));
            }
        }
    }

    progress("healing the cluster");
    if let Err(e) = cluster.heal_all(HEAL_TIMEOUT).await {
        harness_errors.push(format!("healing the cluster: {e}"));
    }

    if opts.workload == Workload::Set {
        progress("final read");
        final_read(&nodes, opts.groups, &rec).await;
    }

    let process_nodes = shared
        .process_nodes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(Driven {
        history: rec.snapshot(),
        process_nodes,
        nemesis_stats,
        harness_errors,
        workload_time,
    })
}

/// Runs a whole test (see the module documentation). `Err` means the harness could not run
/// (bad options, no node binary, cluster or table setup failed); the cluster is shut down in
/// every case.
pub async fn run(opts: RunOptions) -> anyhow::Result<RunOutcome> {
    opts.validate()?;
    let dir = opts.report_dir.clone();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating report directory {}", dir.display()))?;
    let node_bin = resolve_node_bin(opts.node_bin.as_deref())?;
    let seed = opts.seed.unwrap_or_else(|| rand::thread_rng().gen());
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let t0 = Instant::now();

    let spec = ClusterSpec {
        nodes: opts.nodes,
        partitions: opts.partitions,
        replication: opts.replication,
        dir: dir.join("cluster"),
        node_bin: node_bin.clone(),
        broken: opts.broken.clone(),
        clock_control: opts.nemesis.contains(&FaultKind::Clock),
    };
    progress(&format!(
        "starting {} nodes ({} partitions) in {}{}",
        opts.nodes,
        opts.partitions,
        spec.dir.display(),
        opts.broken
            .as_deref()
            .map(|b| format!(", broken mode {b}"))
            .unwrap_or_default()
    ));
    let cluster = Arc::new(
        Cluster::start(spec)
            .await
            .map_err(|e| anyhow!("starting the cluster: {e}"))?,
    );

    let stop_tx = Arc::new(watch::channel(false).0);
    let mut phase = tokio::spawn(drive(cluster.clone(), opts.clone(), seed, stop_tx.clone()));
    let mut interrupted = false;
    let driven = loop {
        tokio::select! {
            r = &mut phase => break r,
            _ = tokio::signal::ctrl_c() => {
                let _ = stop_tx.send(true);
                if interrupted {
                    progress("interrupted again: aborting");
                    phase.abort();
                } else {
                    interrupted = true;
                    progress("interrupted: stopping the run (Ctrl-C again to abort)");
                }
            }
        }
    };
    progress("shutting down the cluster");
    let _ = stop_tx.send(true);
    cluster.shutdown().await;
    let duration = t0.elapsed();
    let driven = match driven {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return Err(e),
        Err(e) if e.is_cancelled() => bail!("run aborted"),
        Err(e) => bail!("run failed: {e}"),
    };

    progress("checking the history");
    let history = driven.history;
    let workload = opts.workload;
    let limit = opts.check_time_limit;
    let report = {
        let h = history.clone();
        tokio::task::spawn_blocking(move || check(&h, workload, limit))
            .await
            .context("checker task")?
    };
    let mut harness_errors = driven.harness_errors;
    if interrupted {
        harness_errors.push("interrupted by Ctrl-C".into());
    }
    let exit_code = run_exit_code(&report, &harness_errors);
    let info = RunInfo {
        workload: opts.workload,
        nemesis: opts.nemesis.iter().map(|k| fault_name(*k)).collect(),
        seed,
        nodes: opts.nodes,
        partitions: opts.partitions,
        replication: opts.replication,
        broken: opts.broken.clone(),
        concurrency: opts.concurrency,
        rate: opts.rate,
        time_limit_s: opts.time_limit.as_secs_f64(),
        op_timeout_s: opts.op_timeout.as_secs_f64(),
        nemesis_active_s: opts.nemesis_active.as_secs_f64(),
        nemesis_quiet_s: opts.nemesis_quiet.as_secs_f64(),
        node_bin: node_bin.display().to_string(),
        started_unix_ms,
        workload_s: driven.workload_time.as_secs_f64(),
        duration_s: duration.as_secs_f64(),
        interrupted,
        ops: op_counts(&history),
        errors: top_errors(&history, 8),
        nemesis_stats: driven.nemesis_stats,
        harness_errors,
        process_nodes: driven.process_nodes,
        exit_code,
    };
    write_report(&dir, &history, &report, Some(&info))?;
    let summary = summary(&report, Some(&info), &dir, &history);
    Ok(RunOutcome {
        report,
        info,
        exit_code,
        summary,
        dir,
    })
}

/// Writes `DIR/history.jsonl`, `DIR/results.json` (the report, plus `"run": info` if given)
/// and `DIR/timeline.html`.
pub fn write_report(
    dir: &Path,
    history: &History,
    report: &Report,
    info: Option<&RunInfo>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    history
        .write_jsonl(dir.join("history.jsonl"))
        .map_err(|e| anyhow!("writing history: {e}"))?;
    let mut json = serde_json::to_value(report).context("serializing the report")?;
    if let (Some(info), Some(obj)) = (info, json.as_object_mut()) {
        obj.insert(
            "run".into(),
            serde_json::to_value(info).context("serializing run info")?,
        );
    }
    let text = serde_json::to_string_pretty(&json).context("serializing the report")? + "\n";
    std::fs::write(dir.join("results.json"), text)
        .with_context(|| format!("writing {}", dir.join("results.json").display()))?;
    let mut topts = TimelineOptions::from_report(report);
    let title = match info {
        Some(i) => {
            topts.process_nodes = i.process_nodes.iter().map(|(&p, &n)| (p, n)).collect();
            format!(
                "ferrodyn-jepsen {} — nemesis {} — seed {}{}",
                i.workload.as_str(),
                if i.nemesis.is_empty() {
                    "none".to_string()
                } else {
                    i.nemesis.join(",")
                },
                i.seed,
                i.broken
                    .as_deref()
                    .map(|b| format!(" — broken {b}"))
                    .unwrap_or_default()
            )
        }
        None => "ferrodyn-jepsen history".to_string(),
    };
    std::fs::write(
        dir.join("timeline.html"),
        timeline::render_with(history, &title, &topts),
    )
    .with_context(|| format!("writing {}", dir.join("timeline.html").display()))?;
    Ok(())
}

/// One operation of an anomaly, for the summary: history indices, process (and its node),
/// `f`, outcome, value and invocation time.
fn op_line(o: &OpRef, nodes: Option<&BTreeMap<u64, u64>>) -> String {
    format!(
        "#{}{} p{}{} {} {} {} at {:.3}s",
        o.invoke_index,
        o.complete_index
            .map(|c| format!("-{c}"))
            .unwrap_or_default(),
        o.process,
        nodes
            .and_then(|m| m.get(&o.process))
            .map(|n| format!(" (node {n})"))
            .unwrap_or_default(),
        o.f,
        o.outcome,
        truncate(&o.value.to_string(), 80),
        o.invoke_time as f64 / 1e9
    )
}

/// The one-screen summary: run parameters, operation counts, faults, the checkers' summary,
/// the operations of the first anomaly of each failing checker, and the report paths.
pub fn summary(report: &Report, info: Option<&RunInfo>, dir: &Path, history: &History) -> String {
    let mut s = String::new();
    if let Some(i) = info {
        let _ = writeln!(
            s,
            "== ferrodyn-jepsen {}: nemesis {}, {:.0}s of clients, seed {}{}",
            i.workload.as_str(),
            if i.nemesis.is_empty() {
                "none".to_string()
            } else {
                i.nemesis.join(",")
            },
            i.workload_s,
            i.seed,
            i.broken
                .as_deref()
                .map(|b| format!(", BROKEN MODE {b}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            s,
            "cluster: {} nodes, {} partitions, rf {}; {} clients at {} ops/s, op timeout {}s; run took {:.0}s",
            i.nodes, i.partitions, i.replication, i.concurrency, i.rate, i.op_timeout_s, i.duration_s
        );
    }
    let counts = match info {
        Some(i) => i.ops.clone(),
        None => op_counts(history),
    };
    let parts: Vec<String> = counts
        .iter()
        .map(|(f, c)| {
            let mut t = format!("{f} ok {} fail {} info {}", c.ok, c.fail, c.info);
            if c.pending > 0 {
                let _ = write!(t, " pending {}", c.pending);
            }
            t
        })
        .collect();
    let _ = writeln!(s, "ops: {}", parts.join(" | "));
    if let Some(i) = info {
        if let Some(ns) = &i.nemesis_stats {
            let f: Vec<String> = ns.faults.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
            let _ = writeln!(
                s,
                "faults: {}",
                if f.is_empty() {
                    "none".into()
                } else {
                    f.join(", ")
                }
            );
        }
        if let Some(e) = i.errors.first() {
            let _ = writeln!(s, "top error: {} ×{}", truncate(&e.error, 100), e.count);
        }
        for e in &i.harness_errors {
            let _ = writeln!(s, "HARNESS ERROR: {e}");
        }
    }
    s.push_str(&report.summary());
    for r in &report.results {
        if r.verdict == Verdict::Valid {
            continue;
        }
        let Some(a) = r.anomalies.iter().find(|a| !a.ops.is_empty()) else {
            continue;
        };
        let nodes = info.map(|i| &i.process_nodes);
        let _ = writeln!(
            s,
            "{} — operations of the first {:?} anomaly{}:",
            r.checker,
            a.kind,
            a.key
                .as_deref()
                .map(|k| format!(" (key {k:?})"))
                .unwrap_or_default()
        );
        for o in a.ops.iter().take(6) {
            let _ = writeln!(s, "    {}", op_line(o, nodes));
        }
        if a.ops.len() > 6 {
            let _ = writeln!(s, "    … {} more in results.json", a.ops.len() - 6);
        }
        // Linearizability: the last operations it could linearize before getting stuck.
        if let Some(tail) = a
            .details
            .get("linearized_prefix_tail")
            .and_then(Value::as_array)
        {
            let tail: Vec<OpRef> = tail
                .iter()
                .filter_map(|v| serde_json::from_value(v.clone()).ok())
                .collect();
            if !tail.is_empty() {
                let _ = writeln!(
                    s,
                    "  last linearized before it (state then: {}):",
                    a.details
                        .get("state_after_prefix")
                        .map(Value::to_string)
                        .unwrap_or_else(|| "?".into())
                );
                for o in &tail[tail.len().saturating_sub(3)..] {
                    let _ = writeln!(s, "    {}", op_line(o, nodes));
                }
            }
        }
    }
    let _ = writeln!(
        s,
        "report: {d}/results.json {d}/history.jsonl {d}/timeline.html",
        d = dir.display()
    );
    if let Some(i) = info {
        let _ = writeln!(
            s,
            "exit {} ({})",
            i.exit_code,
            match i.exit_code {
                0 => "valid",
                1 => "invalid",
                _ if report.exit_code() == 0 =>
                    "harness error (see above); the history checked valid",
                _ => "unknown",
            }
        );
    }
    s
}

/// Re-checks a saved history (`ferrodyn-jepsen check`): returns the report and its summary;
/// with `out`, also writes `results.json` and `timeline.html` there.
pub fn check_saved(
    history_path: &Path,
    workload: Workload,
    check_time_limit: Duration,
    out: Option<&Path>,
) -> anyhow::Result<(Report, String)> {
    let history = History::read_jsonl(history_path).map_err(|e| anyhow!("{e}"))?;
    let report = check(&history, workload, check_time_limit);
    let mut summary = summary(
        &report,
        None,
        out.unwrap_or_else(|| history_path.parent().unwrap_or(Path::new("."))),
        &history,
    );
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)?;
        let text = report.to_json() + "\n";
        std::fs::write(dir.join("results.json"), text)?;
        std::fs::write(
            dir.join("timeline.html"),
            timeline::render_with(
                &history,
                &format!("ferrodyn-jepsen {} (re-checked)", workload.as_str()),
                &TimelineOptions::from_report(&report),
            ),
        )?;
    } else {
        // Nothing was written: drop the "report:" line.
        summary = summary
            .lines()
            .filter(|l| !l.starts_with("report: "))
            .map(|l| format!("{l}\n"))
            .collect();
    }
    Ok((report, summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;

    #[test]
    fn parses_nemesis_lists() {
        assert_eq!(parse_nemesis("").unwrap(), vec![]);
        assert_eq!(parse_nemesis("none").unwrap(), vec![]);
        assert_eq!(
            parse_nemesis("partition,kill, pause,clock,kill").unwrap(),
            vec![
                FaultKind::Partition,
                FaultKind::Kill,
                FaultKind::Pause,
                FaultKind::Clock
            ]
        );
        assert!(parse_nemesis("partition,bogus")
            .unwrap_err()
            .contains("bogus"));
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("40").unwrap(), Duration::from_secs(40));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn parses_workloads() {
        assert_eq!("set".parse::<Workload>().unwrap(), Workload::Set);
        assert!("sets".parse::<Workload>().is_err());
    }

    fn status_with(kind: ErrorKind) -> tonic::Status {
        WireError::new(kind, "why").to_status()
    }

    #[test]
    fn classifies_write_errors() {
        use ErrorKind::*;
        for k in [
            Validation,
            ResourceNotFound,
            ResourceInUse,
            ConditionalCheckFailed,
        ] {
            assert_eq!(
                write_error_outcome(&status_with(k.clone())),
                OpType::Fail,
                "{k:?}"
            );
        }
        for k in [
            Internal,
            Unavailable,
            NotLeader {
                leader: Some(2),
                leader_addr: None,
            },
            WrongShard { epoch: 2 },
        ] {
            assert_eq!(
                write_error_outcome(&status_with(k.clone())),
                OpType::Info,
                "{k:?}"
            );
        }
        // Bare transport statuses (no ferrodyn metadata, no local cause) are indeterminate.
        for st in [
            tonic::Status::unavailable("connection reset"),
            tonic::Status::deadline_exceeded("timeout"),
            tonic::Status::cancelled("cancelled"),
            tonic::Status::unknown("?"),
            tonic::Status::unavailable("tcp connect error: Connection refused (os error 111)"),
        ] {
            assert_eq!(write_error_outcome(&st), OpType::Info, "{st:?}");
        }
    }

    #[test]
    fn a_locally_refused_connection_is_a_certain_failure() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // A port nothing listens on.
            let port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let mut c =
                node_client(&format!("http://127.0.0.1:{port}"), Duration::from_secs(1)).unwrap();
            let status = c
                .put_item(proto::PutItemRequest {
                    table_name: REGISTER_TABLE.into(),
                    item: Some(item(vec![("k", s("a")), ("v", n(1))])),
                })
                .await
                .unwrap_err();
            assert!(is_local_connection_refused(&status), "{status:?}");
            assert_eq!(write_error_outcome(&status), OpType::Fail);
            assert!(
                status_text(&status).contains("refused"),
                "{}",
                status_text(&status)
            );
        });
    }

    #[test]
    fn reads_register_values() {
        assert_eq!(register_value(None), Value::Null);
        let i = item(vec![("k", s("a")), ("v", n(42))]);
        assert_eq!(register_value(Some(i)), json!(42));
        let weird = item(vec![("k", s("a")), ("v", s("x"))]);
        assert!(register_value(Some(weird)).is_string());
        let missing = item(vec![("k", s("a"))]);
        assert!(register_value(Some(missing)).is_string());
    }

    #[test]
    fn rotates_keys() {
        let mut r = KeyRotation::new(2, 3);
        let mut rng = StdRng::seed_from_u64(1);
        let mut per_key: BTreeMap<String, u64> = BTreeMap::new();
        for _ in 0..60 {
            *per_key.entry(r.pick(&mut rng)).or_default() += 1;
        }
        assert!(per_key.values().all(|&c| c <= 3), "{per_key:?}");
        assert!(per_key.len() >= 20);
    }

    #[test]
    fn counts_ops_and_exit_codes() {
        let rec = Recorder::new();
        let p = rec.fresh_process();
        rec.invoke(p, Func::Write, register::write("k", json!(1)));
        rec.complete(
            p,
            OpType::Ok,
            Func::Write,
            register::write("k", json!(1)),
            None,
        );
        rec.invoke(p, Func::Write, register::write("k", json!(2)));
        rec.complete(
            p,
            OpType::Info,
            Func::Write,
            register::write("k", json!(2)),
            Some("Unavailable: x".into()),
        );
        let q = rec.fresh_process();
        rec.invoke(q, Func::Read, register::read("k"));
        rec.complete(
            q,
            OpType::Ok,
            Func::Read,
            register::read_ok("k", json!(1), true),
            None,
        );
        let r = rec.fresh_process();
        rec.invoke(r, Func::Read, register::read("k"));
        let h = rec.into_history();
        let c = op_counts(&h);
        assert_eq!(
            c["write"],
            OpCounts {
                ok: 1,
                fail: 0,
                info: 1,
                pending: 0
            }
        );
        assert_eq!(
            c["read"],
            OpCounts {
                ok: 1,
                fail: 0,
                info: 0,
                pending: 1
            }
        );
        assert_eq!(top_errors(&h, 5)[0].count, 1);

        let report = check(&h, Workload::Register, Duration::from_secs(5));
        assert_eq!(report.verdict, Verdict::Valid);
        assert_eq!(run_exit_code(&report, &[]), 0);
        assert_eq!(run_exit_code(&report, &["nemesis: boom".into()]), 2);
        let s = summary(&report, None, Path::new("/tmp/x"), &h);
        assert!(s.contains("write ok 1 fail 0 info 1"), "{s}");
        assert!(s.contains("/tmp/x/timeline.html"));
    }

    #[test]
    fn summary_names_anomalous_operations() {
        // A stale read: write 1, then write 2 acknowledged, then a read of 1.
        let rec = Recorder::new();
        let p = rec.fresh_process();
        for v in [1, 2] {
            rec.invoke(p, Func::Write, register::write("k", json!(v)));
            rec.complete(
                p,
                OpType::Ok,
                Func::Write,
                register::write("k", json!(v)),
                None,
            );
        }
        let q = rec.fresh_process();
        rec.invoke(q, Func::Read, register::read("k"));
        rec.complete(
            q,
            OpType::Ok,
            Func::Read,
            register::read_ok("k", json!(1), true),
            None,
        );
        let h = rec.into_history();
        let report = check(&h, Workload::Register, Duration::from_secs(5));
        assert_eq!(report.verdict, Verdict::Invalid);
        assert_eq!(run_exit_code(&report, &["x".into()]), 1);
        let s = summary(&report, None, Path::new("d"), &h);
        assert!(
            s.contains("operations of the first Nonlinearizable anomaly"),
            "{s}"
        );
        assert!(
            s.contains("#4-5 p1 read ok {\"key\":\"k\",\"value\":1}"),
            "{s}"
        );
        // The context: what was linearized before the stale read.
        assert!(
            s.contains("last linearized before it (state then: 2)"),
            "{s}"
        );
        assert!(
            s.contains("#2-3 p0 write ok {\"key\":\"k\",\"value\":2}"),
            "{s}"
        );
        let pairs = h.pairs().unwrap();
        assert_eq!(pairs[2].outcome, Outcome::Ok);
    }

    #[test]
    fn writes_report_files_with_run_info() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::new();
        let p = rec.fresh_process();
        rec.invoke(p, Func::Add, json!(1));
        rec.complete(p, OpType::Ok, Func::Add, json!(1), None);
        let q = rec.fresh_process();
        rec.invoke(q, Func::FinalRead, Value::Null);
        rec.complete(q, OpType::Ok, Func::FinalRead, json!([1]), None);
        let h = rec.into_history();
        let report = check(&h, Workload::Set, Duration::from_secs(5));
        assert_eq!(report.verdict, Verdict::Valid);
        let info = RunInfo {
            workload: Workload::Set,
            nemesis: vec!["kill"],
            seed: 7,
            nodes: 5,
            partitions: 8,
            replication: 3,
            broken: None,
            concurrency: 10,
            rate: 100.0,
            time_limit_s: 30.0,
            op_timeout_s: 1.0,
            nemesis_active_s: 5.0,
            nemesis_quiet_s: 5.0,
            node_bin: "ferrodyn-node".into(),
            started_unix_ms: 0,
            workload_s: 30.0,
            duration_s: 40.0,
            interrupted: false,
            ops: op_counts(&h),
            errors: vec![],
            nemesis_stats: Some(NemesisStats::default()),
            harness_errors: vec![],
            process_nodes: BTreeMap::from([(0, 1), (1, 2)]),
            exit_code: 0,
        };
        write_report(dir.path(), &h, &report, Some(&info)).unwrap();
        let results: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("results.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(results["verdict"], "valid");
        assert_eq!(results["run"]["seed"], 7);
        assert_eq!(results["run"]["workload"], "set");
        assert_eq!(results["run"]["ops"]["add"]["ok"], 1);
        // The existing report format still parses.
        let back: Report = serde_json::from_value(results).unwrap();
        assert_eq!(back.verdict, Verdict::Valid);
        let saved = History::read_jsonl(dir.path().join("history.jsonl")).unwrap();
        assert_eq!(saved, h);
        let html = std::fs::read_to_string(dir.path().join("timeline.html")).unwrap();
        assert!(html.contains("<svg") && html.contains("seed 7"));
        let (again, _) = check_saved(
            &dir.path().join("history.jsonl"),
            Workload::Set,
            Duration::from_secs(5),
            None,
        )
        .unwrap();
        assert_eq!(again.verdict, Verdict::Valid);
    }
}
