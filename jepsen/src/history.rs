//! Histories of operations, recorded the way Jepsen records them.
//!
//! A history is a sequence of [`Op`] records. Every client operation appears twice: once as an
//! `invoke` when the client sends it, and once as its completion when the client learns the
//! outcome:
//!
//! - `ok`: the operation took effect (for a read, `value` holds what was read);
//! - `fail`: the operation certainly did **not** take effect (e.g. a conditional put whose
//!   condition failed, or an error returned before anything was proposed);
//! - `info`: indeterminate — the operation may or may not have taken effect, at any point after
//!   its invocation (timeouts, connection loss). The process that issued it is considered crashed
//!   and **must never be reused**: the client continues under a fresh process id.
//!
//! An invocation with no completion at the end of the history is treated like `info`.
//!
//! Nemesis (fault) records use process `"nemesis"`, type `info`, `f` = `start` or `stop`, and a
//! `value` object whose `"fault"` field names the fault (`"partition"`, `"kill"`, ...); see
//! [`History::fault_intervals`].
//!
//! The history's order is the real-time order in which events were observed: [`Recorder`] assigns
//! each record a consecutive `index` and a monotonic `time` (nanoseconds since the recorder was
//! created) under one lock, so a completion that precedes an invocation in index order really
//! happened before it. Checkers order events by `index`; `time` is for reports and timelines.
//!
//! On disk a history is JSON lines (`DIR/history.jsonl`), one [`Op`] per line, e.g.
//!
//! ```text
//! {"index":0,"type":"invoke","process":0,"f":"write","value":{"key":"k1","value":1},"time":1200}
//! {"index":1,"type":"info","process":"nemesis","f":"start","value":{"fault":"partition"},"time":1300}
//! {"index":2,"type":"ok","process":0,"f":"write","value":{"key":"k1","value":1},"time":5400}
//! ```
//!
//! [`History::pairs`] validates the per-process structure and pairs each invocation with its
//! completion; the checkers work on those pairs.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The `type` of a history record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The client is about to send the operation.
    Invoke,
    /// The operation completed and took effect.
    Ok,
    /// The operation completed and certainly did not take effect.
    Fail,
    /// Indeterminate: the operation may or may not have taken effect. Also used for nemesis
    /// records.
    Info,
}

impl OpType {
    /// Whether this type completes an invocation (`ok`, `fail` or `info`).
    pub fn is_completion(self) -> bool {
        !matches!(self, OpType::Invoke)
    }
}

/// Who performed a record: a logical client process, or the nemesis.
///
/// Serialized as a JSON number for clients and as the string `"nemesis"` for the nemesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// A logical client process. A process runs one operation at a time and is retired after an
    /// `info` completion.
    Client(u64),
    /// The fault injector.
    Nemesis,
}

impl Process {
    /// The client id, or `None` for the nemesis.
    pub fn client(self) -> Option<u64> {
        match self {
            Process::Client(p) => Some(p),
            Process::Nemesis => None,
        }
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_u64(*p),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(p) => Ok(Process::Client(p)),
            Raw::Str(s) if s == "nemesis" => Ok(Process::Nemesis),
            Raw::Str(s) => s.parse().map(Process::Client).map_err(|_| {
                serde::de::Error::custom(format!(
                    "process must be a number or \"nemesis\", got {s:?}"
                ))
            }),
        }
    }
}

/// Jepsen's `f`: what an operation does. Serialized as a kebab-case string; unknown names are
/// kept in [`Func::Other`] so new workloads need no change here.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Func {
    /// Read a register (`{"key": K}` → `{"key": K, "value": V}`).
    Read,
    /// Write a register (`{"key": K, "value": V}`).
    Write,
    /// Compare-and-set a register (`{"key": K, "expected": E, "new": N}`).
    Cas,
    /// Add an element to the set (`value` = the element).
    Add,
    /// The final, strongly consistent read of the set (`value` = array of elements on `ok`).
    FinalRead,
    /// Nemesis: a fault begins.
    Start,
    /// Nemesis: a fault ends.
    Stop,
    /// Any other name.
    Other(String),
}

impl Func {
    /// The kebab-case name as written in the history.
    pub fn as_str(&self) -> &str {
        match self {
            Func::Read => "read",
            Func::Write => "write",
            Func::Cas => "cas",
            Func::Add => "add",
            Func::FinalRead => "final-read",
            Func::Start => "start",
            Func::Stop => "stop",
            Func::Other(s) => s,
        }
    }
}

impl From<&str> for Func {
    fn from(s: &str) -> Self {
        match s {
            "read" => Func::Read,
            "write" => Func::Write,
            "cas" => Func::Cas,
            "add" => Func::Add,
            "final-read" => Func::FinalRead,
            "start" => Func::Start,
            "stop" => Func::Stop,
            other => Func::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Func {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Func {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Func::from(s.as_str()))
    }
}

/// One history record (one JSON line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history, 0-based and consecutive.
    pub index: u64,
    /// `invoke`, `ok`, `fail` or `info`.
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// The client process, or the nemesis.
    pub process: Process,
    /// What the operation does.
    pub f: Func,
    /// Arguments (on `invoke`) or results (on completion); see [`crate::workload`] for the
    /// conventions of each workload, and [`History::fault_intervals`] for nemesis values.
    #[serde(default)]
    pub value: Value,
    /// Monotonic nanoseconds since the start of the test.
    pub time: u64,
    /// Why an operation failed or is indeterminate, for humans (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Problems with a history's structure, found while reading it or pairing its operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// A line could not be read or parsed.
    #[error("history line {line}: {message}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// Reading or writing the file failed.
    #[error("history I/O: {0}")]
    Io(String),
    /// `index` fields are not 0, 1, 2, ...
    #[error("op at position {position} has index {index}; indices must be consecutive from 0")]
    BadIndex {
        /// Position in the history.
        position: usize,
        /// The index it carries.
        index: u64,
    },
    /// `time` went backwards.
    #[error("op {index}: time {time} is before the previous op's time {previous}")]
    TimeWentBackwards {
        /// The offending op.
        index: u64,
        /// Its time.
        time: u64,
        /// The previous op's time.
        previous: u64,
    },
    /// A process invoked an operation while its previous one was still pending.
    #[error("op {index}: process {process} invoked while op {pending} was still pending")]
    ConcurrentInvoke {
        /// The second invocation.
        index: u64,
        /// The process.
        process: u64,
        /// The pending invocation.
        pending: u64,
    },
    /// A process was used again after an `info` (indeterminate) completion.
    #[error("op {index}: process {process} reused after its indeterminate (info) op {info_index}")]
    ProcessReused {
        /// The reusing invocation.
        index: u64,
        /// The process.
        process: u64,
        /// The `info` completion that retired the process.
        info_index: u64,
    },
    /// A completion with no pending invocation on its process.
    #[error("op {index}: completion for process {process} with no pending invocation")]
    CompletionWithoutInvoke {
        /// The completion.
        index: u64,
        /// The process.
        process: u64,
    },
    /// A completion whose `f` differs from its invocation's.
    #[error(
        "op {index}: completion f={completion} does not match invocation {invoke} f={invoked}"
    )]
    MismatchedF {
        /// The completion.
        index: u64,
        /// The invocation.
        invoke: u64,
        /// The invocation's `f`.
        invoked: String,
        /// The completion's `f`.
        completion: String,
    },
    /// A nemesis record that is not `info` with `f` = `start`/`stop`.
    #[error("op {index}: nemesis records must be type info with f start or stop")]
    BadNemesisOp {
        /// The record.
        index: u64,
    },
}

/// The outcome of a client operation, after pairing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Took effect.
    Ok,
    /// Certainly did not take effect.
    Fail,
    /// May or may not have taken effect (an `info` completion, or no completion at all).
    Info,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        })
    }
}

/// A client invocation paired with its completion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpPair {
    /// The client process.
    pub process: u64,
    /// What the operation does.
    pub f: Func,
    /// The outcome.
    pub outcome: Outcome,
    /// History index of the invocation.
    pub invoke_index: u64,
    /// History index of the completion; `None` if the history ended first.
    pub complete_index: Option<u64>,
    /// Time of the invocation (ns).
    pub invoke_time: u64,
    /// Time of the completion (ns); `None` if the history ended first.
    pub complete_time: Option<u64>,
    /// The invocation's value (the arguments).
    pub invoke_value: Value,
    /// The completion's value (the results); `None` if the history ended first.
    pub complete_value: Option<Value>,
    /// The completion's error text, if any.
    pub error: Option<String>,
}

impl OpPair {
    /// The completion index, or `u64::MAX` for an operation that never completed: the point up to
    /// which an indeterminate operation may take effect.
    pub fn return_index(&self) -> u64 {
        match (self.outcome, self.complete_index) {
            (Outcome::Info, _) | (_, None) => u64::MAX,
            (_, Some(i)) => i,
        }
    }

    /// Whether this operation certainly finished before `other` was invoked (real-time order).
    pub fn precedes(&self, other: &OpPair) -> bool {
        self.outcome != Outcome::Info && self.complete_index.is_some_and(|c| c < other.invoke_index)
    }

    /// The most informative value: the completion's for `ok`, else the invocation's.
    pub fn value(&self) -> &Value {
        match (&self.outcome, &self.complete_value) {
            (Outcome::Ok, Some(v)) if !v.is_null() => v,
            _ => &self.invoke_value,
        }
    }
}

/// A fault interval, from a nemesis `start` to the matching `stop`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultInterval {
    /// The fault's name: the `"fault"` field of the start record's value (or `"fault"`).
    pub fault: String,
    /// History index of the `start` record.
    pub start_index: u64,
    /// Time of the `start` record (ns).
    pub start_time: u64,
    /// History index of the `stop` record; `None` if the fault was still active at the end.
    pub stop_index: Option<u64>,
    /// Time of the `stop` record (ns); `None` if the fault was still active at the end.
    pub stop_time: Option<u64>,
    /// The start record's value (what was done, to which nodes).
    pub value: Value,
}

/// An ordered history of operations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    ops: Vec<Op>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// A history from records that already carry their indices (validated by
    /// [`History::validate`] / [`History::pairs`], not here).
    pub fn from_ops(ops: Vec<Op>) -> Self {
        Self { ops }
    }

    /// Appends a record, assigning it the next index and the given time. Returns the index.
    /// Handy for building histories by hand; concurrent recording goes through [`Recorder`].
    pub fn push(
        &mut self,
        op_type: OpType,
        process: Process,
        f: Func,
        value: Value,
        time: u64,
    ) -> u64 {
        let index = self.ops.len() as u64;
        self.ops.push(Op {
            index,
            op_type,
            process,
            f,
            value,
            time,
            error: None,
        });
        index
    }

    /// The records, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the history has no records.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Parses JSON lines (blank lines are skipped).
    pub fn from_jsonl(text: &str) -> Result<Self, HistoryError> {
        Self::read_from(text.as_bytes())
    }

    /// Parses JSON lines from a reader.
    pub fn read_from<R: std::io::Read>(reader: R) -> Result<Self, HistoryError> {
        let mut ops = Vec::new();
        for (i, line) in BufReader::new(reader).lines().enumerate() {
            let line = line.map_err(|e| HistoryError::Io(e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let op: Op = serde_json::from_str(&line).map_err(|e| HistoryError::Parse {
                line: i + 1,
                message: e.to_string(),
            })?;
            ops.push(op);
        }
        Ok(Self { ops })
    }

    /// Reads `path` (e.g. `DIR/history.jsonl`).
    pub fn read_jsonl(path: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let file = File::open(path.as_ref())
            .map_err(|e| HistoryError::Io(format!("{}: {e}", path.as_ref().display())))?;
        Self::read_from(file)
    }

    /// Serializes as JSON lines, one record per line, each ending in `\n`.
    pub fn to_jsonl(&self) -> String {
        let mut out = Vec::new();
        self.write_to(&mut out)
            .expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// Writes JSON lines to a writer.
    pub fn write_to<W: Write>(&self, mut w: W) -> std::io::Result<()> {
        for op in &self.ops {
            serde_json::to_writer(&mut w, op)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    }

    /// Writes JSON lines to `path` (e.g. `DIR/history.jsonl`), replacing it.
    pub fn write_jsonl(&self, path: impl AsRef<Path>) -> Result<(), HistoryError> {
        let file = File::create(path.as_ref())
            .map_err(|e| HistoryError::Io(format!("{}: {e}", path.as_ref().display())))?;
        self.write_to(BufWriter::new(file))
            .map_err(|e| HistoryError::Io(e.to_string()))
    }

    /// Checks indices, time monotonicity, nemesis records and the per-process discipline
    /// (one pending op per process, completions match invocations, no reuse after `info`).
    pub fn validate(&self) -> Result<(), HistoryError> {
        self.pairs().map(|_| ())
    }

    /// Validates the history (see [`History::validate`]) and pairs each client invocation with
    /// its completion, in invocation order. Invocations still pending at the end are returned
    /// with [`Outcome::Info`] and no completion. Nemesis records are skipped.
    pub fn pairs(&self) -> Result<Vec<OpPair>, HistoryError> {
        let mut pairs: Vec<OpPair> = Vec::new();
        // process -> position in `pairs` of its pending invocation
        let mut pending: HashMap<u64, usize> = HashMap::new();
        // process -> index of the info completion that retired it
        let mut retired: HashMap<u64, u64> = HashMap::new();
        let mut last_time = 0u64;
        for (pos, op) in self.ops.iter().enumerate() {
            if op.index != pos as u64 {
                return Err(HistoryError::BadIndex {
                    position: pos,
                    index: op.index,
                });
            }
            if op.time < last_time {
                return Err(HistoryError::TimeWentBackwards {
                    index: op.index,
                    time: op.time,
                    previous: last_time,
                });
            }
            last_time = op.time;
            let process = match op.process {
                Process::Nemesis => {
                    if op.op_type != OpType::Info || !matches!(op.f, Func::Start | Func::Stop) {
                        return Err(HistoryError::BadNemesisOp { index: op.index });
                    }
                    continue;
                }
                Process::Client(p) => p,
            };
            if let Some(&info_index) = retired.get(&process) {
                return Err(HistoryError::ProcessReused {
                    index: op.index,
                    process,
                    info_index,
                });
            }
            match op.op_type {
                OpType::Invoke => {
                    if let Some(&p) = pending.get(&process) {
                        return Err(HistoryError::ConcurrentInvoke {
                            index: op.index,
                            process,
                            pending: pairs[p].invoke_index,
                        });
                    }
                    pending.insert(process, pairs.len());
                    pairs.push(OpPair {
                        process,
                        f: op.f.clone(),
                        outcome: Outcome::Info,
                        invoke_index: op.index,
                        complete_index: None,
                        invoke_time: op.time,
                        complete_time: None,
                        invoke_value: op.value.clone(),
                        complete_value: None,
                        error: None,
                    });
                }
                completion => {
                    let Some(p) = pending.remove(&process) else {
                        return Err(HistoryError::CompletionWithoutInvoke {
                            index: op.index,
                            process,
                        });
                    };
                    let pair = &mut pairs[p];
                    if pair.f != op.f {
                        return Err(HistoryError::MismatchedF {
                            index: op.index,
                            invoke: pair.invoke_index,
                            invoked: pair.f.to_string(),
                            completion: op.f.to_string(),
                        });
                    }
                    pair.outcome = match completion {
                        OpType::Ok => Outcome::Ok,
                        OpType::Fail => Outcome::Fail,
                        _ => Outcome::Info,
                    };
                    pair.complete_index = Some(op.index);
                    pair.complete_time = Some(op.time);
                    pair.complete_value = Some(op.value.clone());
                    pair.error = op.error.clone();
                    if completion == OpType::Info {
                        retired.insert(process, op.index);
                    }
                }
            }
        }
        Ok(pairs)
    }

    /// The nemesis fault intervals. A `stop` closes the oldest open `start` with the same fault
    /// name (the `"fault"` field of the value, or `"fault"` if absent); a `stop` with no open
    /// `start` is ignored; a `start` never stopped has no stop index/time.
    pub fn fault_intervals(&self) -> Vec<FaultInterval> {
        let mut out: Vec<FaultInterval> = Vec::new();
        let mut open: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for op in self.ops.iter().filter(|o| o.process == Process::Nemesis) {
            let fault = op
                .value
                .get("fault")
                .and_then(Value::as_str)
                .unwrap_or("fault")
                .to_string();
            match op.f {
                Func::Start => {
                    open.entry(fault.clone()).or_default().push(out.len());
                    out.push(FaultInterval {
                        fault,
                        start_index: op.index,
                        start_time: op.time,
                        stop_index: None,
                        stop_time: None,
                        value: op.value.clone(),
                    });
                }
                Func::Stop => {
                    if let Some(list) = open.get_mut(&fault) {
                        if !list.is_empty() {
                            let i = list.remove(0);
                            out[i].stop_index = Some(op.index);
                            out[i].stop_time = Some(op.time);
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}

/// A thread-safe history recorder for the harness: assigns consecutive indices and monotonic
/// times (ns since [`Recorder::new`]) under one lock, so index order is real-time order.
///
/// Process discipline is the caller's job: a worker takes a process id from
/// [`Recorder::fresh_process`], invokes and completes one operation at a time, and after an
/// `info` completion takes a fresh id (never reusing the old one).
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    inner: Mutex<RecorderInner>,
}

#[derive(Debug, Default)]
struct RecorderInner {
    history: History,
    next_process: u64,
    last_time: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder whose time zero is now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            inner: Mutex::new(RecorderInner::default()),
        }
    }

    /// A process id never handed out before.
    pub fn fresh_process(&self) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let p = inner.next_process;
        inner.next_process += 1;
        p
    }

    /// Records a record with the current time and returns its index.
    pub fn record(
        &self,
        op_type: OpType,
        process: Process,
        f: Func,
        value: Value,
        error: Option<String>,
    ) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.start.elapsed().as_nanos() as u64;
        let time = now.max(inner.last_time);
        inner.last_time = time;
        let index = inner.history.push(op_type, process, f, value, time);
        inner.history.ops.last_mut().expect("just pushed").error = error;
        index
    }

    /// Records an invocation by a client process.
    pub fn invoke(&self, process: u64, f: Func, value: Value) -> u64 {
        self.record(OpType::Invoke, Process::Client(process), f, value, None)
    }

    /// Records a completion (`ok`, `fail` or `info`) by a client process.
    pub fn complete(
        &self,
        process: u64,
        op_type: OpType,
        f: Func,
        value: Value,
        error: Option<String>,
    ) -> u64 {
        debug_assert!(op_type.is_completion());
        self.record(op_type, Process::Client(process), f, value, error)
    }

    /// Records a nemesis event (`f` = [`Func::Start`] or [`Func::Stop`], value with a `"fault"`
    /// field).
    pub fn nemesis(&self, f: Func, value: Value) -> u64 {
        self.record(OpType::Info, Process::Nemesis, f, value, None)
    }

    /// A copy of the history so far.
    pub fn snapshot(&self) -> History {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .history
            .clone()
    }

    /// The recorded history.
    pub fn into_history(self) -> History {
        self.inner
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .history
    }
}
