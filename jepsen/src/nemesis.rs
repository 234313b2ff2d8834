//! The nemesis: schedules faults on and off during a run and records each as a `start`/`stop`
//! pair of nemesis operations in the history.
//!
//! One fault at a time: sleep `quiet`, pick a kind and a variant at random (seeded, so a run
//! can be repeated), apply it, record `start`, wait `active`, undo it, record `stop`. The
//! `start` record follows the application (by milliseconds) so that it can carry what was
//! actually done, including an `"error"` when applying failed; the `stop` record follows the
//! undo. Variants:
//!
//! | fault | variant | what | undo |
//! |---|---|---|---|
//! | `partition` | `isolate-one` | one random node cut from all others | heal |
//! | `partition` | `majority-minority` | random split, the minority has ⌊n/2⌋ nodes | heal |
//! | `partition` | `isolate-leader` | the leader of a random partition cut from all others (a random node if no leader is known) | heal |
//! | `partition` | `bridge` (n ≥ 5) | two halves, plus one node that sees both | heal |
//! | `partition` | `ring` (n ≥ 5) | each node sees only its two neighbours on a random ring | heal |
//! | `kill` | `one` / `majority` | `kill -9` of one node / ⌊n/2⌋+1 nodes at once | restart them |
//! | `pause` | `one` / `leader` | `SIGSTOP` of a random node / a random partition's leader | `SIGCONT` |
//! | `clock` | `bump` | one or more nodes get an offset of ±[100 ms, 60 s] | offsets back to 0 |
//! | `clock` | `strobe` | one node's offset flips between 0 and ±X every 50–200 ms | offset back to 0 |
//!
//! Errors while applying or undoing a fault are logged and recorded in the fault's value
//! (`"error"`); they never end the run.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::cluster::{Cluster, HarnessError};
use crate::history::{Func, Recorder};

/// A kind of fault the nemesis can inject (`--nemesis partition,kill,pause,clock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Network partitions through the proxy: isolate a node, majority/minority split,
    /// isolate a shard leader, bridge, ring.
    Partition,
    /// `kill -9` and restart of one node or a majority at once.
    Kill,
    /// `SIGSTOP` / `SIGCONT` of one node or more.
    Pause,
    /// Clock offsets: bumps and strobes (needs nodes started with clock control).
    Clock,
}

impl FaultKind {
    /// The name used on the command line and in the history's `"fault"` field.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Clock => "clock",
        }
    }

    /// The variants of this kind that a cluster of `nodes` nodes supports.
    pub fn variants(self, nodes: usize) -> Vec<&'static str> {
        match self {
            FaultKind::Partition => {
                let mut v = vec!["isolate-one", "majority-minority", "isolate-leader"];
                if nodes >= 5 {
                    v.extend(["bridge", "ring"]);
                }
                v
            }
            FaultKind::Kill => vec!["one", "majority"],
            FaultKind::Pause => vec!["one", "leader"],
            FaultKind::Clock => vec!["bump", "strobe"],
        }
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "partition" => Ok(FaultKind::Partition),
            "kill" => Ok(FaultKind::Kill),
            "pause" => Ok(FaultKind::Pause),
            "clock" => Ok(FaultKind::Clock),
            other => Err(format!(
                "unknown nemesis '{other}' (expected partition, kill, pause or clock)"
            )),
        }
    }
}

/// How the nemesis behaves.
#[derive(Debug, Clone)]
pub struct NemesisConfig {
    /// Fault kinds to draw from; empty means no faults.
    pub kinds: Vec<FaultKind>,
    /// How long each fault stays on.
    pub active: Duration,
    /// Quiet time between faults.
    pub quiet: Duration,
    /// Seed of the fault choice (the run prints it so a run can be repeated).
    pub seed: u64,
}

/// What the nemesis did, for the summary.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NemesisStats {
    /// Faults started, by kind and variant (e.g. `"partition/majority-minority"`).
    pub faults: std::collections::BTreeMap<String, u64>,
}

/// Runs faults until `stop` turns true, then undoes the one in progress (recording its
/// `stop`) and returns. Every fault is recorded as `rec.nemesis(Start, {"fault": KIND,
/// "variant": ..., "nodes": [...], ...})` as soon as it is applied (so the record can carry an
/// `"error"` if applying failed) and `rec.nemesis(Stop, {"fault": KIND, ...})` after it is
/// undone.
///
/// Returns an error at once (before any fault) if `cfg.kinds` has the clock fault and the
/// cluster was started without clock control.
pub async fn run(
    cluster: Arc<Cluster>,
    cfg: NemesisConfig,
    rec: Arc<Recorder>,
    mut stop: watch::Receiver<bool>,
) -> Result<NemesisStats, HarnessError> {
    if cfg.kinds.contains(&FaultKind::Clock) && !cluster.clock_control() {
        return Err(HarnessError::Config(
            "clock nemesis needs clock control (start the cluster with clock_control)".into(),
        ));
    }
    let mut stats = NemesisStats::default();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    if cfg.kinds.is_empty() {
        stopped(&mut stop).await;
        return Ok(stats);
    }
    loop {
        if sleep_or_stop(cfg.quiet, &mut stop).await {
            break;
        }
        let kind = *cfg.kinds.choose(&mut rng).expect("kinds is not empty");
        let variant = *kind
            .variants(cluster.node_ids().len())
            .choose(&mut rng)
            .expect("every kind has a variant");
        *stats.faults.entry(format!("{kind}/{variant}")).or_default() += 1;
        let mut fault = Fault::new(kind, variant);
        fault.apply(&cluster, &mut rng).await;
        rec.nemesis(Func::Start, fault.value());
        if kind == FaultKind::Clock && variant == "strobe" {
            fault
                .strobe(&cluster, &mut rng, cfg.active, &mut stop)
                .await;
        } else {
            sleep_or_stop(cfg.active, &mut stop).await;
        }
        let stop_value = fault.undo(&cluster).await;
        rec.nemesis(Func::Stop, stop_value);
        if *stop.borrow() {
            break;
        }
    }
    Ok(stats)
}

/// Waits until `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps `d`, or less if `stop` turns true first; returns whether it did.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stopped(stop) => true,
    }
}

/// One fault in progress: what it did, so it can be recorded and undone.
struct Fault {
    kind: FaultKind,
    variant: &'static str,
    /// The nodes it acts on.
    nodes: Vec<u64>,
    /// Extra fields for the `start` record.
    details: Map<String, Value>,
    /// Errors met while applying it.
    errors: Vec<String>,
}

impl Fault {
    fn new(kind: FaultKind, variant: &'static str) -> Self {
        Fault {
            kind,
            variant,
            nodes: Vec::new(),
            details: Map::new(),
            errors: Vec::new(),
        }
    }

    fn error(&mut self, e: impl std::fmt::Display) {
        let e = e.to_string();
        tracing::warn!(fault = %self.kind, variant = self.variant, "nemesis: {e}");
        self.errors.push(e);
    }

    /// The `start` record's value.
    fn value(&self) -> Value {
        let mut v = Map::new();
        v.insert("fault".into(), json!(self.kind.as_str()));
        v.insert("variant".into(), json!(self.variant));
        v.insert("nodes".into(), json!(self.nodes));
        v.extend(self.details.clone());
        if !self.errors.is_empty() {
            v.insert("error".into(), json!(self.errors.join("; ")));
        }
        Value::Object(v)
    }

    /// The leader of a random partition, recorded in the details; a random node when none is
    /// known (recorded as `"fallback": true`).
    async fn random_leader(&mut self, cluster: &Cluster, ids: &[u64], rng: &mut StdRng) -> u64 {
        let partition = rng.gen_range(0..cluster.partitions().max(1));
        self.details.insert("partition".into(), json!(partition));
        match cluster.leader_of(partition).await {
            Some(l) if ids.contains(&l) => {
                self.details.insert("leader".into(), json!(l));
                l
            }
            _ => {
                self.details.insert("leader".into(), Value::Null);
                self.details.insert("fallback".into(), json!(true));
                *ids.choose(rng).expect("a cluster has nodes")
            }
        }
    }

    async fn apply(&mut self, cluster: &Cluster, rng: &mut StdRng) {
        let mut ids = cluster.node_ids();
        let n = ids.len();
        match (self.kind, self.variant) {
            (FaultKind::Partition, variant) => {
                ids.shuffle(rng);
                // Groups of nodes that see each other; `bridge` overlaps its two groups.
                let groups: Vec<Vec<u64>> = match variant {
                    "isolate-one" => vec![vec![ids[0]], ids[1..].to_vec()],
                    "isolate-leader" => {
                        let leader = self.random_leader(cluster, &ids, rng).await;
                        let rest = ids.iter().copied().filter(|&i| i != leader).collect();
                        vec![vec![leader], rest]
                    }
                    "majority-minority" => {
                        let minority = n / 2;
                        vec![ids[..minority].to_vec(), ids[minority..].to_vec()]
                    }
                    "bridge" => {
                        let bridge = ids[0];
                        let half = (n - 1) / 2;
                        let mut a = ids[1..=half].to_vec();
                        let mut b = ids[half + 1..].to_vec();
                        a.push(bridge);
                        b.push(bridge);
                        self.details.insert("bridge".into(), json!(bridge));
                        vec![a, b]
                    }
                    "ring" => {
                        self.details.insert("ring".into(), json!(ids));
                        (0..n).map(|i| vec![ids[i], ids[(i + 1) % n]]).collect()
                    }
                    other => unreachable!("partition variant {other}"),
                };
                let mut isolated = groups[0].clone();
                isolated.sort_unstable();
                let connected =
                    |a: u64, b: u64| groups.iter().any(|g| g.contains(&a) && g.contains(&b));
                cluster.net().heal();
                let mut cut = Vec::new();
                for (i, &a) in ids.iter().enumerate() {
                    for &b in &ids[i + 1..] {
                        if !connected(a, b) {
                            cluster.net().cut_both(a, b);
                            cut.push([a.min(b), a.max(b)]);
                        }
                    }
                }
                cut.sort_unstable();
                let mut sorted: Vec<Vec<u64>> = groups
                    .into_iter()
                    .map(|mut g| {
                        g.sort_unstable();
                        g
                    })
                    .collect();
                sorted.sort();
                if variant != "ring" {
                    self.details.insert("groups".into(), json!(sorted));
                }
                self.details.insert("cut".into(), json!(cut));
                // The nodes the fault is about: the isolated node, the minority, the bridge,
                // or (ring) everyone.
                self.nodes = match variant {
                    "ring" => {
                        let mut all = ids.clone();
                        all.sort_unstable();
                        all
                    }
                    "bridge" => vec![ids[0]],
                    _ => isolated,
                };
            }
            (FaultKind::Kill, variant) => {
                ids.shuffle(rng);
                let k = if variant == "majority" { n / 2 + 1 } else { 1 };
                self.nodes = ids[..k.min(n)].to_vec();
                self.nodes.sort_unstable();
                let kills = self.nodes.iter().map(|&node| cluster.kill(node));
                for r in futures::future::join_all(kills).await {
                    if let Err(e) = r {
                        self.error(e);
                    }
                }
            }
            (FaultKind::Pause, variant) => {
                let node = if variant == "leader" {
                    self.random_leader(cluster, &ids, rng).await
                } else {
                    *ids.choose(rng).expect("a cluster has nodes")
                };
                self.nodes = vec![node];
                if let Err(e) = cluster.pause(node) {
                    self.error(e);
                }
            }
            (FaultKind::Clock, "bump") => {
                ids.shuffle(rng);
                let k = rng.gen_range(1..=n);
                self.nodes = ids[..k].to_vec();
                self.nodes.sort_unstable();
                let mut offsets = Map::new();
                for &node in &self.nodes.clone() {
                    let offset = random_offset(rng);
                    offsets.insert(node.to_string(), json!(offset));
                    if let Err(e) = cluster.set_clock_offset(node, offset).await {
                        self.error(e);
                    }
                }
                self.details
                    .insert("offsets_ms".into(), Value::Object(offsets));
            }
            (FaultKind::Clock, "strobe") => {
                let node = *ids.choose(rng).expect("a cluster has nodes");
                let amplitude = random_offset(rng);
                self.nodes = vec![node];
                self.details.insert("offset_ms".into(), json!(amplitude));
                self.details
                    .insert("period_ms".into(), json!([STROBE_MIN_MS, STROBE_MAX_MS]));
                if let Err(e) = cluster.set_clock_offset(node, amplitude).await {
                    self.error(e);
                }
            }
            (FaultKind::Clock, other) => unreachable!("clock variant {other}"),
        }
    }

    /// Flips the strobed node's offset between 0 and the amplitude until `active` has passed
    /// or `stop` turns true. Errors are counted in the details (`"strobe_errors"`).
    async fn strobe(
        &mut self,
        cluster: &Cluster,
        rng: &mut StdRng,
        active: Duration,
        stop: &mut watch::Receiver<bool>,
    ) {
        let node = self.nodes[0];
        let amplitude = self.details["offset_ms"].as_i64().unwrap_or(0);
        let deadline = tokio::time::Instant::now() + active;
        let (mut on, mut flips, mut errors) = (true, 0u64, 0u64);
        loop {
            let period = Duration::from_millis(rng.gen_range(STROBE_MIN_MS..=STROBE_MAX_MS));
            let wake = (tokio::time::Instant::now() + period).min(deadline);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = stopped(stop) => break,
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            on = !on;
            flips += 1;
            if let Err(e) = cluster
                .set_clock_offset(node, if on { amplitude } else { 0 })
                .await
            {
                errors += 1;
                tracing::debug!(node, "clock strobe: {e}");
            }
        }
        self.details.insert("flips".into(), json!(flips));
        if errors > 0 {
            self.details.insert("strobe_errors".into(), json!(errors));
        }
    }

    /// Undoes the fault; returns the `stop` record's value.
    async fn undo(&mut self, cluster: &Cluster) -> Value {
        let mut errors: Vec<String> = Vec::new();
        match self.kind {
            FaultKind::Partition => cluster.net().heal(),
            FaultKind::Kill => {
                for &node in &self.nodes {
                    if let Err(e) = cluster.restart(node).await {
                        errors.push(e.to_string());
                    }
                }
            }
            FaultKind::Pause => {
                for &node in &self.nodes {
                    if cluster.is_paused(node) {
                        if let Err(e) = cluster.resume(node) {
                            errors.push(e.to_string());
                        }
                    }
                }
            }
            FaultKind::Clock => {
                for &node in &self.nodes {
                    if let Err(e) = cluster.set_clock_offset(node, 0).await {
                        errors.push(e.to_string());
                    }
                }
            }
        }
        for e in &errors {
            tracing::warn!(fault = %self.kind, variant = self.variant, "nemesis undo: {e}");
        }
        let mut v = Map::new();
        v.insert("fault".into(), json!(self.kind.as_str()));
        v.insert("variant".into(), json!(self.variant));
        v.insert("nodes".into(), json!(self.nodes));
        for key in ["flips", "strobe_errors"] {
            if let Some(x) = self.details.get(key) {
                v.insert(key.into(), x.clone());
            }
        }
        if !errors.is_empty() {
            v.insert("error".into(), json!(errors.join("; ")));
        }
        Value::Object(v)
    }
}

/// Shortest and longest strobe half-period.
const STROBE_MIN_MS: u64 = 50;
const STROBE_MAX_MS: u64 = 200;

/// A clock offset of ±[100 ms, 60 s].
fn random_offset(rng: &mut StdRng) -> i64 {
    let magnitude = rng.gen_range(100..=60_000i64);
    if rng.gen_bool(0.5) {
        magnitude
    } else {
        -magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print() {
        for k in [
            FaultKind::Partition,
            FaultKind::Kill,
            FaultKind::Pause,
            FaultKind::Clock,
        ] {
            assert_eq!(k.as_str().parse::<FaultKind>().unwrap(), k);
        }
        assert!("flood".parse::<FaultKind>().is_err());
    }

    #[test]
    fn bridge_and_ring_need_five_nodes() {
        assert!(!FaultKind::Partition.variants(3).contains(&"ring"));
        assert!(!FaultKind::Partition.variants(4).contains(&"bridge"));
        assert!(FaultKind::Partition.variants(5).contains(&"bridge"));
        assert!(FaultKind::Partition.variants(5).contains(&"ring"));
    }

    #[test]
    fn offsets_are_in_range() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut signs = (false, false);
        for _ in 0..1000 {
            let o = random_offset(&mut rng);
            assert!((100..=60_000).contains(&o.abs()), "{o}");
            if o > 0 {
                signs.0 = true;
            } else {
                signs.1 = true;
            }
        }
        assert!(signs.0 && signs.1);
    }
}
