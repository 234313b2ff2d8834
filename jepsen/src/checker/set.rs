//! The set checker: acknowledged adds against a final strongly consistent read.
//!
//! Inputs (see [`crate::workload`]): `add` operations whose value is the element, and a
//! `final-read` whose `ok` value is the array of elements present, taken after faults stopped.
//! The last `ok` final read is the one checked.
//!
//! Counts:
//! - **ok**: adds acknowledged (`ok`);
//! - **lost**: acknowledged adds, completed before the final read was invoked, absent from it;
//! - **unexpected**: elements in the final read that no `add` ever attempted;
//! - **recovered**: adds that did not complete `ok` but are present — `recovered_info` for
//!   indeterminate ones (legitimate: they took effect after all) and `recovered_failed` for ones
//!   that completed `fail` (a write that took effect after a failed response);
//! - **duplicates**: elements listed more than once by the final read;
//! - **concurrent_absent**: acknowledged adds absent from the final read but concurrent with it
//!   (not counted as lost).
//!
//! Valid iff lost = 0, unexpected = 0, recovered_failed = 0 and duplicates = 0. Without an `ok`
//! final read the result is unknown.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::{Anomaly, AnomalyKind, CheckError, CheckInput, CheckResult, Checker, OpRef, Verdict};
use crate::history::{Func, OpPair, Outcome};
use crate::workload::canonical;

/// The set checker (name `"set"`).
#[derive(Clone, Debug, Default)]
pub struct SetChecker;

impl SetChecker {
    fn check_pairs(&self, pairs: &[OpPair]) -> CheckResult {
        let mut result = CheckResult::new(self.name(), Verdict::Valid);
        // element -> the add ops that tried it (normally exactly one)
        let mut adds: BTreeMap<String, Vec<&OpPair>> = BTreeMap::new();
        let (mut ok, mut failed, mut info) = (0usize, 0usize, 0usize);
        for p in pairs.iter().filter(|p| p.f == Func::Add) {
            adds.entry(canonical(&p.invoke_value)).or_default().push(p);
            match p.outcome {
                Outcome::Ok => ok += 1,
                Outcome::Fail => failed += 1,
                Outcome::Info => info += 1,
            }
        }
        result.stat("attempted", ok + failed + info);
        result.stat("ok", ok);
        result.stat("failed", failed);
        result.stat("indeterminate", info);

        let final_reads: Vec<&OpPair> = pairs
            .iter()
            .filter(|p| p.f == Func::FinalRead && p.outcome == Outcome::Ok)
            .collect();
        result.stat("final_reads_ok", final_reads.len());
        let Some(read) = final_reads.last().copied() else {
            result.verdict = Verdict::Unknown;
            result.error = Some("no ok final-read in the history".into());
            return result;
        };
        let Some(elements) = read.complete_value.as_ref().and_then(Value::as_array) else {
            result.verdict = Verdict::Unknown;
            result.error = Some(format!(
                "final-read {} value is not an array",
                read.invoke_index
            ));
            return result;
        };

        let mut present: HashMap<String, usize> = HashMap::new();
        for e in elements {
            *present.entry(canonical(e)).or_default() += 1;
        }
        result.stat("final_read_size", elements.len());

        let (mut lost, mut unexpected, mut duplicates) = (0usize, 0usize, 0usize);
        let (mut recovered_info, mut recovered_failed, mut concurrent_absent) = (0, 0, 0);
        let read_ref = OpRef::from(read);
        let mut present_keys: Vec<&String> = present.keys().collect();
        present_keys.sort();
        for e in present_keys {
            let count = present[e];
            let elem: Value = serde_json::from_str(e).unwrap_or(Value::Null);
            if count > 1 {
                duplicates += 1;
                result.push_anomaly(Anomaly {
                    kind: AnomalyKind::Duplicate,
                    key: None,
                    message: format!("element {e} appears {count} times in the final read"),
                    ops: vec![read_ref.clone()],
                    details: json!({ "element": elem, "count": count }),
                });
            }
            match adds.get(e) {
                None => {
                    unexpected += 1;
                    result.push_anomaly(Anomaly {
                        kind: AnomalyKind::Unexpected,
                        key: None,
                        message: format!("element {e} is present but was never added"),
                        ops: vec![read_ref.clone()],
                        details: json!({ "element": elem }),
                    });
                }
                Some(tries) if tries.iter().all(|p| p.outcome != Outcome::Ok) => {
                    if tries.iter().any(|p| p.outcome == Outcome::Info) {
                        recovered_info += 1;
                    } else {
                        recovered_failed += 1;
                        let mut ops: Vec<OpRef> = tries.iter().map(|p| OpRef::from(*p)).collect();
                        ops.push(read_ref.clone());
                        result.push_anomaly(Anomaly {
                            kind: AnomalyKind::FailedAddPresent,
                            key: None,
                            message: format!(
                                "element {e} is present although its add completed fail"
                            ),
                            ops,
                            details: json!({ "element": elem }),
                        });
                    }
                }
                Some(_) => {}
            }
        }
        for (e, tries) in &adds {
            if present.contains_key(e) {
                continue;
            }
            for p in tries.iter().filter(|p| p.outcome == Outcome::Ok) {
                if p.precedes(read) {
                    lost += 1;
                    result.push_anomaly(Anomaly {
                        kind: AnomalyKind::Lost,
                        key: None,
                        message: format!(
                            "element {e} was acknowledged (op {}) but is missing from the final read",
                            p.invoke_index
                        ),
                        ops: vec![OpRef::from(*p), read_ref.clone()],
                        details: json!({ "element": p.invoke_value }),
                    });
                } else {
                    concurrent_absent += 1;
                }
            }
        }
        result.stat("lost", lost);
        result.stat("unexpected", unexpected);
        result.stat("recovered", recovered_info + recovered_failed);
        result.stat("recovered_info", recovered_info);
        result.stat("recovered_failed", recovered_failed);
        result.stat("duplicates", duplicates);
        result.stat("concurrent_absent", concurrent_absent);
        result.verdict = if lost + unexpected + recovered_failed + duplicates > 0 {
            Verdict::Invalid
        } else {
            Verdict::Valid
        };
        result
    }
}

impl Checker for SetChecker {
    fn name(&self) -> &str {
        "set"
    }

    fn check(&self, input: &CheckInput<'_>) -> Result<CheckResult, CheckError> {
        Ok(self.check_pairs(&input.pairs))
    }
}
