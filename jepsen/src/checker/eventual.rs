//! The eventual-reads checker: what an eventually consistent read may return.
//!
//! For register keys (see [`crate::workload`]) each `ok` read must return either `null` (no item
//! yet) or a value some `write`/`cas` on that key tried to write, and:
//! - never a value no operation ever tried to write ([`AnomalyKind::NeverWritten`]);
//! - never the value of a write whose completion was `fail` ([`AnomalyKind::FailedWriteRead`]);
//! - never a value whose write was invoked only after the read completed
//!   ([`AnomalyKind::FutureRead`]).
//!
//! Staleness is reported, not judged. For each read of value `v` written by `W`:
//! - **versions behind**: the number of acknowledged writes on the key that certainly came after
//!   `W` (invoked after `W` completed; every acknowledged write if `v` is `null`) and completed
//!   before the read was invoked;
//! - **time behind** (ns): how long before the read's invocation the first such newer write had
//!   completed (0 when none).
//!
//! Both are summarized as percentiles (p50 / p90 / p99 / max) over all checked reads.
//! Values are assumed unique per key (the harness writes a counter).

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::{
    percentiles, Anomaly, AnomalyKind, CheckError, CheckInput, CheckResult, Checker, OpRef,
    Verdict, STANDARD_PERCENTILES,
};
use crate::history::{OpPair, Outcome};
use crate::workload::{canonical, RegisterOp};

/// Which reads the checker looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadFilter {
    /// Only reads marked `"consistent": false` (the default).
    #[default]
    EventualOnly,
    /// Every read (the invariants hold for strongly consistent reads too).
    All,
}

/// The eventual-reads checker (name `"eventual-reads"`). With no read to check the result is
/// unknown, not valid.
#[derive(Clone, Debug, Default)]
pub struct EventualReads {
    /// Which reads to check.
    pub reads: ReadFilter,
}

struct Write<'a> {
    pair: &'a OpPair,
    value: String,
}

impl EventualReads {
    fn check_pairs(&self, pairs: &[OpPair]) -> CheckResult {
        let mut result = CheckResult::new(self.name(), Verdict::Valid);
        let mut writes: HashMap<String, Vec<Write>> = HashMap::new();
        let mut reads: Vec<(&OpPair, String, Value)> = Vec::new();
        let mut malformed = 0usize;
        for p in pairs {
            let Some(op) = result.register_op_or_flag(p, &mut malformed) else {
                continue;
            };
            match op {
                RegisterOp::Read {
                    key,
                    value: Some(value),
                    consistent,
                } if !consistent || self.reads == ReadFilter::All => {
                    reads.push((p, key, value));
                }
                RegisterOp::Read { .. } => {}
                ref w => {
                    let value = canonical(w.written().expect("writes write"));
                    writes
                        .entry(w.key().to_string())
                        .or_default()
                        .push(Write { pair: p, value });
                }
            }
        }

        // key -> value -> writes of it
        let by_value: HashMap<&str, HashMap<&str, Vec<&OpPair>>> = writes
            .iter()
            .map(|(k, ws)| {
                let mut m: HashMap<&str, Vec<&OpPair>> = HashMap::new();
                for w in ws {
                    m.entry(w.value.as_str()).or_default().push(w.pair);
                }
                (k.as_str(), m)
            })
            .collect();

        let mut versions_behind: Vec<u64> = Vec::new();
        let mut ns_behind: Vec<u64> = Vec::new();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (read, key, value) in &reads {
            let key_writes = writes.get(key).map_or(&[][..], Vec::as_slice);
            let tries: &[&OpPair] = by_value
                .get(key.as_str())
                .and_then(|m| m.get(canonical(value).as_str()))
                .map_or(&[], Vec::as_slice);
            match source_of(read, value, tries) {
                Ok(source) => {
                    let newer = newer_acked(key_writes, source, read);
                    versions_behind.push(newer.len() as u64);
                    let superseded_at = newer.iter().filter_map(|w| w.complete_time).min();
                    ns_behind.push(superseded_at.map_or(0, |t| read.invoke_time.saturating_sub(t)));
                }
                Err(kind) => {
                    *counts.entry(kind_name(kind)).or_default() += 1;
                    let what = match kind {
                        AnomalyKind::NeverWritten => "which was never written",
                        AnomalyKind::FailedWriteRead => "whose write completed fail",
                        _ => "which was written only after the read completed",
                    };
                    let mut ops = vec![OpRef::from(*read)];
                    ops.extend(tries.iter().map(|p| OpRef::from(*p)));
                    result.push_anomaly(Anomaly {
                        kind,
                        key: Some(key.clone()),
                        message: format!(
                            "read {} of key {key:?} returned {value}, {what}",
                            read.invoke_index
                        ),
                        ops,
                        details: json!({ "value": value }),
                    });
                }
            }
        }

        let bad: usize = counts.values().sum();
        result.verdict = if bad > 0 {
            Verdict::Invalid
        } else if malformed > 0 || reads.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Valid
        };
        if reads.is_empty() && bad == 0 {
            result.error = Some("no reads to check".into());
        }
        result.stat("reads_checked", reads.len());
        result.stat("writes", writes.values().map(Vec::len).sum::<usize>());
        result.stat(
            "stale_reads",
            versions_behind.iter().filter(|&&v| v > 0).count(),
        );
        result.stat(
            "never_written",
            counts.get("never-written").copied().unwrap_or(0),
        );
        result.stat(
            "failed_write_reads",
            counts.get("failed-write-read").copied().unwrap_or(0),
        );
        result.stat(
            "future_reads",
            counts.get("future-read").copied().unwrap_or(0),
        );
        result.stat("malformed_ops", malformed);
        result.stat(
            "staleness_versions",
            percentiles(&mut versions_behind, STANDARD_PERCENTILES),
        );
        result.stat(
            "staleness_ns",
            percentiles(&mut ns_behind, STANDARD_PERCENTILES),
        );
        result
    }
}

fn kind_name(kind: AnomalyKind) -> &'static str {
    match kind {
        AnomalyKind::NeverWritten => "never-written",
        AnomalyKind::FailedWriteRead => "failed-write-read",
        AnomalyKind::FutureRead => "future-read",
        _ => "other",
    }
}

/// The write a read's value came from (`None` for `null`), or the anomaly the read shows.
fn source_of<'a>(
    read: &OpPair,
    value: &Value,
    tries: &[&'a OpPair],
) -> Result<Option<&'a OpPair>, AnomalyKind> {
    if value.is_null() {
        return Ok(None);
    }
    if tries.is_empty() {
        return Err(AnomalyKind::NeverWritten);
    }
    let mut not_failed = tries
        .iter()
        .filter(|p| p.outcome != Outcome::Fail)
        .peekable();
    if not_failed.peek().is_none() {
        return Err(AnomalyKind::FailedWriteRead);
    }
    not_failed
        .find(|w| !read.precedes(w))
        .map(|w| Some(*w))
        .ok_or(AnomalyKind::FutureRead)
}

/// Acknowledged writes on the key that certainly came after `source` (all acknowledged writes
/// if `source` is `None`) and completed before `read` was invoked.
fn newer_acked<'a>(
    key_writes: &'a [Write<'a>],
    source: Option<&OpPair>,
    read: &OpPair,
) -> Vec<&'a OpPair> {
    key_writes
        .iter()
        .map(|w| w.pair)
        .filter(|w| w.outcome == Outcome::Ok && w.precedes(read))
        .filter(|w| source.is_none_or(|s| s.precedes(w)))
        .collect()
}

impl Checker for EventualReads {
    fn name(&self) -> &str {
        "eventual-reads"
    }

    fn check(&self, input: &CheckInput<'_>) -> Result<CheckResult, CheckError> {
        Ok(self.check_pairs(&input.pairs))
    }
}
