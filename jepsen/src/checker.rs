//! Verdicts, results and the checkers.
//!
//! A checker implements [`Checker`]: it receives a [`CheckInput`] (the validated history, its
//! invocation/completion pairs, and optional extra observations such as per-region snapshots) and
//! returns a [`CheckResult`]: a [`Verdict`], summary statistics and the [`Anomaly`]s it found,
//! each naming the operations involved.
//!
//! [`check_history`] runs several checkers and merges their verdicts into a [`Report`] (written to
//! `DIR/results.json`). Verdicts merge **invalid > unknown > valid**: one invalid result makes the
//! run invalid, otherwise one unknown (budget exhausted, missing input, checker error) makes it
//! unknown. [`Report::exit_code`] maps that to the process exit code: 0 valid, 1 invalid,
//! 2 unknown or error.
//!
//! Checkers:
//! - [`linearizable::Linearizability`]: per-key register linearizability (read / write / cas),
//!   Wing–Gong–Lowe search with memoization, with a budget that yields unknown.
//! - [`set::SetChecker`]: acknowledged adds against a final strongly consistent read.
//! - [`eventual::EventualReads`]: reads return only values that were written and not failed;
//!   staleness distribution.
//! - [`convergence`]: the interface of the future multi-region convergence checker (not
//!   implemented yet; see that module).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::history::{Func, History, HistoryError, OpPair, Outcome};

pub mod convergence;
pub mod eventual;
pub mod linearizable;
pub mod set;

/// At most this many anomalies are kept per result; the rest are only counted.
pub const MAX_ANOMALIES: usize = 100;

/// The outcome of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The history satisfies the property.
    Valid,
    /// The history violates the property (see the anomalies).
    Invalid,
    /// The checker could not decide (budget exhausted, missing input, error). Never a pass.
    Unknown,
}

impl Verdict {
    /// Merges two verdicts: invalid dominates, then unknown, then valid.
    pub fn merge(self, other: Verdict) -> Verdict {
        use Verdict::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }

    /// Merges many verdicts; the empty merge is [`Verdict::Valid`].
    pub fn merge_all(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        verdicts.into_iter().fold(Verdict::Valid, Verdict::merge)
    }

    /// Process exit code: 0 valid, 1 invalid, 2 unknown.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Unknown => 2,
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
        }
    }
}

/// What kind of anomaly was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// A key's history has no linearization.
    Nonlinearizable,
    /// The linearizability search on a key ran out of budget (makes the result unknown).
    BudgetExhausted,
    /// Set: an acknowledged add is missing from the final read.
    Lost,
    /// Set: the final read holds an element that was never added.
    Unexpected,
    /// Set: an add that completed `fail` is present in the final read.
    FailedAddPresent,
    /// Set: the final read lists an element more than once.
    Duplicate,
    /// A read returned a value that no operation ever tried to write.
    NeverWritten,
    /// A read returned the value of a write whose completion was `fail`.
    FailedWriteRead,
    /// A read returned a value whose write was invoked only after the read completed.
    FutureRead,
    /// An operation's value does not follow the workload's conventions.
    Malformed,
    /// Multi-region: regions disagree, or hold something other than the last-writer-wins winner
    /// (future convergence checker).
    Divergence,
}

/// A reference to one operation (invocation + completion) in an anomaly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpRef {
    /// Client process.
    pub process: u64,
    /// What it did.
    pub f: Func,
    /// How it ended.
    pub outcome: Outcome,
    /// History index of the invocation.
    pub invoke_index: u64,
    /// History index of the completion (`None` if it never completed).
    pub complete_index: Option<u64>,
    /// Invocation time (ns).
    pub invoke_time: u64,
    /// Completion time (ns).
    pub complete_time: Option<u64>,
    /// The operation's value (results for `ok`, arguments otherwise).
    pub value: Value,
}

impl From<&OpPair> for OpRef {
    fn from(p: &OpPair) -> Self {
        OpRef {
            process: p.process,
            f: p.f.clone(),
            outcome: p.outcome,
            invoke_index: p.invoke_index,
            complete_index: p.complete_index,
            invoke_time: p.invoke_time,
            complete_time: p.complete_time,
            value: p.value().clone(),
        }
    }
}

/// One violation (or undecided spot), with the operations involved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// What kind.
    pub kind: AnomalyKind,
    /// The key concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// One human-readable sentence.
    pub message: String,
    /// The operations involved.
    pub ops: Vec<OpRef>,
    /// Checker-specific structured detail (e.g. the longest linearizable prefix).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

/// One checker's result, as stored in `DIR/results.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The checker's name.
    pub checker: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Summary statistics (counts, percentiles), checker-specific.
    pub stats: BTreeMap<String, Value>,
    /// The anomalies found, at most [`MAX_ANOMALIES`].
    pub anomalies: Vec<Anomaly>,
    /// Anomalies found beyond [`MAX_ANOMALIES`], not listed.
    #[serde(default)]
    pub anomalies_omitted: usize,
    /// Set when the checker could not run; the verdict is then unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CheckResult {
    /// An empty result with the given verdict.
    pub fn new(checker: impl Into<String>, verdict: Verdict) -> Self {
        CheckResult {
            checker: checker.into(),
            verdict,
            stats: BTreeMap::new(),
            anomalies: Vec::new(),
            anomalies_omitted: 0,
            error: None,
        }
    }

    /// An unknown result recording why the checker could not run.
    pub fn from_error(checker: impl Into<String>, error: &CheckError) -> Self {
        let mut r = CheckResult::new(checker, Verdict::Unknown);
        r.error = Some(error.to_string());
        r
    }

    /// Adds an anomaly, or counts it in `anomalies_omitted` past [`MAX_ANOMALIES`].
    pub fn push_anomaly(&mut self, anomaly: Anomaly) {
        if self.anomalies.len() < MAX_ANOMALIES {
            self.anomalies.push(anomaly);
        } else {
            self.anomalies_omitted += 1;
        }
    }

    /// Parses a register operation (see [`crate::workload::parse_register`]); an operation
    /// that does not parse is recorded as a `Malformed` anomaly, counted in `malformed`, and
    /// skipped (`None`), as are operations that are not register operations.
    pub fn register_op_or_flag(
        &mut self,
        pair: &crate::history::OpPair,
        malformed: &mut usize,
    ) -> Option<crate::workload::RegisterOp> {
        match crate::workload::parse_register(pair) {
            Ok(op) => op,
            Err(message) => {
                *malformed += 1;
                self.push_anomaly(Anomaly {
                    kind: AnomalyKind::Malformed,
                    key: None,
                    message,
                    ops: vec![OpRef::from(pair)],
                    details: serde_json::Value::Null,
                });
                None
            }
        }
    }

    /// Sets a statistic.
    pub fn stat(&mut self, name: &str, value: impl Into<Value>) {
        self.stats.insert(name.to_string(), value.into());
    }

    /// Total anomalies found (listed + omitted).
    pub fn anomaly_count(&self) -> usize {
        self.anomalies.len() + self.anomalies_omitted
    }
}

/// Why a checker could not produce a verdict.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckError {
    /// The history is structurally broken.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// An input the checker needs was not provided (e.g. region snapshots).
    #[error("missing input: {0}")]
    MissingInput(String),
    /// The checker exists only as an interface so far.
    #[error("not implemented: {0}")]
    NotImplemented(String),
}

/// Everything a checker may look at.
#[derive(Clone, Debug)]
pub struct CheckInput<'a> {
    /// The raw history (nemesis records included).
    pub history: &'a History,
    /// The client operations, paired and validated ([`History::pairs`]).
    pub pairs: Vec<OpPair>,
    /// Final per-region snapshots, for the multi-region convergence checker; `None` for
    /// single-region runs.
    pub region_snapshots: Option<&'a [convergence::RegionSnapshot]>,
}

impl<'a> CheckInput<'a> {
    /// Validates and pairs `history`.
    pub fn new(history: &'a History) -> Result<Self, HistoryError> {
        Ok(CheckInput {
            history,
            pairs: history.pairs()?,
            region_snapshots: None,
        })
    }

    /// Attaches final per-region snapshots.
    pub fn with_region_snapshots(mut self, snapshots: &'a [convergence::RegionSnapshot]) -> Self {
        self.region_snapshots = Some(snapshots);
        self
    }
}

/// A consistency checker. Implementations must never return [`Verdict::Valid`] unless they
/// established validity; when in doubt, return [`Verdict::Unknown`].
pub trait Checker: Send + Sync {
    /// A short stable name (`"linearizability"`, `"set"`, ...), used as the key in reports.
    fn name(&self) -> &str;

    /// Checks the input. `Err` means the check could not run at all; it becomes an unknown
    /// result carrying the error.
    fn check(&self, input: &CheckInput<'_>) -> Result<CheckResult, CheckError>;
}

/// The merged results of a run: the contents of `DIR/results.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The merged verdict.
    pub verdict: Verdict,
    /// One result per checker, in the order they ran.
    pub results: Vec<CheckResult>,
    /// Set when the history itself was malformed, in which case no checker ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_error: Option<String>,
    /// Number of history records.
    pub history_len: usize,
    /// Number of client operations (invocations).
    pub client_ops: usize,
    /// Number of client operations that completed ok.
    pub ok_ops: usize,
    /// Number of nemesis fault intervals.
    pub fault_intervals: usize,
}

impl Report {
    /// Exit code: 0 valid, 1 invalid, 2 unknown or error (a malformed history is an error).
    pub fn exit_code(&self) -> i32 {
        if self.history_error.is_some() && self.verdict != Verdict::Invalid {
            return 2;
        }
        self.verdict.exit_code()
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// Writes pretty JSON to `path` (e.g. `DIR/results.json`).
    pub fn write_json(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.to_json() + "\n")
    }

    /// A short human summary (a few lines per checker), for stdout.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "history: {} records, {} client ops ({} ok), {} fault intervals\n",
            self.history_len, self.client_ops, self.ok_ops, self.fault_intervals
        ));
        if let Some(e) = &self.history_error {
            s.push_str(&format!("history error: {e}\n"));
        }
        for r in &self.results {
            let stats: Vec<String> = r
                .stats
                .iter()
                .filter(|(_, v)| v.is_number())
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s.push_str(&format!(
                "{:<18} {:<8} anomalies={} {}\n",
                r.checker,
                r.verdict.as_str(),
                r.anomaly_count(),
                stats.join(" ")
            ));
            if let Some(e) = &r.error {
                s.push_str(&format!("    error: {e}\n"));
            }
            for a in r.anomalies.iter().take(3) {
                let idx: Vec<String> = a
                    .ops
                    .iter()
                    .take(6)
                    .map(|o| o.invoke_index.to_string())
                    .collect();
                s.push_str(&format!(
                    "    {:?}: {} [ops at {}]\n",
                    a.kind,
                    a.message,
                    idx.join(",")
                ));
            }
        }
        s.push_str(&format!(
            "verdict: {} (exit {})\n",
            self.verdict.as_str(),
            self.exit_code()
        ));
        s
    }
}

/// Runs `checkers` on a prepared input and merges the results.
pub fn check_input(input: &CheckInput<'_>, checkers: &[&dyn Checker]) -> Report {
    let results: Vec<CheckResult> = checkers
        .iter()
        .map(|c| {
            c.check(input)
                .unwrap_or_else(|e| CheckResult::from_error(c.name(), &e))
        })
        .collect();
    Report {
        verdict: Verdict::merge_all(results.iter().map(|r| r.verdict)),
        results,
        history_error: None,
        history_len: input.history.len(),
        client_ops: input.pairs.len(),
        ok_ops: input
            .pairs
            .iter()
            .filter(|p| p.outcome == Outcome::Ok)
            .count(),
        fault_intervals: input.history.fault_intervals().len(),
    }
}

/// Validates `history` and runs `checkers` on it. A malformed history yields a report with
/// verdict unknown, `history_error` set, no results, and exit code 2.
pub fn check_history(history: &History, checkers: &[&dyn Checker]) -> Report {
    match CheckInput::new(history) {
        Ok(input) => check_input(&input, checkers),
        Err(e) => Report {
            verdict: Verdict::Unknown,
            results: Vec::new(),
            history_error: Some(e.to_string()),
            history_len: history.len(),
            client_ops: 0,
            ok_ops: 0,
            fault_intervals: history.fault_intervals().len(),
        },
    }
}

/// Nearest-rank percentiles of `samples` (sorted in place) at the given fractions, as a JSON
/// object `{"p50": .., "p90": .., ...}` plus `"max"` and `"count"`; empty samples give `{"count": 0}`.
pub fn percentiles(samples: &mut [u64], at: &[(&str, f64)]) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("count".into(), Value::from(samples.len()));
    if samples.is_empty() {
        return Value::Object(m);
    }
    samples.sort_unstable();
    let n = samples.len();
    for (name, q) in at {
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        m.insert((*name).to_string(), Value::from(samples[rank - 1]));
    }
    m.insert("max".into(), Value::from(samples[n - 1]));
    Value::Object(m)
}

/// The usual percentile points: p50, p90, p99.
pub const STANDARD_PERCENTILES: &[(&str, f64)] = &[("p50", 0.5), ("p90", 0.9), ("p99", 0.99)];
