//! Linearizability of per-key registers: Wing–Gong–Lowe search with memoization.
//!
//! The history is partitioned by key (linearizability is compositional: a history is
//! linearizable iff each key's sub-history is), and each key is searched independently, on
//! several threads.
//!
//! The search ([`search`]) follows Wing & Gong's backtracking algorithm with Lowe's improvement,
//! as Porcupine implements it: events (invocations and returns) sit in a doubly linked list in
//! history order; the search walks the list, tries to linearize each invocation it meets (apply it
//! to the sequential [`Model`]), lifts linearized operations out of the list and restarts from the
//! head; reaching a return whose operation is not yet linearized means the current prefix cannot
//! be extended, so it backtracks. A cache of (set of linearized operations, model state) pairs
//! already explored prunes the search: two paths that reach the same set and state have the same
//! future.
//!
//! Semantics of outcomes:
//! - `ok` operations must be linearized between their invocation and their completion;
//! - `fail` operations certainly did not take effect and are dropped;
//! - `info` (indeterminate, or never completed) operations may take effect at any point after
//!   their invocation, or never: their return is at infinity and the search succeeds once every
//!   determinate operation is linearized, leaving the rest un-applied. Indeterminate reads tell
//!   nothing and are dropped, and so are indeterminate writes whose value no read returned and
//!   no compare-and-set expected (assuming they never took effect changes no verdict: nothing
//!   could have observed them).
//!
//! A [`Budget`] bounds steps, memo size and wall time. Running out yields
//! [`Verdict::Unknown`] for that key — never a false valid.
//!
//! On an invalid key the result names the longest linearizable prefix found, the operation whose
//! completion could not be reached after it (the *blocking* operation), and the other operations
//! that were candidates at that point. Invalid keys are reported smallest first; the smallest one
//! also carries its whole (key) history, up to [`MAX_REPORTED_KEY_HISTORY`] operations.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Anomaly, AnomalyKind, CheckError, CheckInput, CheckResult, Checker, OpRef, Verdict};
use crate::history::{OpPair, Outcome};
use crate::workload::{canonical, RegisterOp};

/// The smallest invalid key's history is included in its anomaly up to this many operations.
pub const MAX_REPORTED_KEY_HISTORY: usize = 200;

/// A sequential specification: the object's states and how operations move between them.
pub trait Model {
    /// A state of the object. Hashed for memoization: keep it small.
    type State: Clone + Eq + Hash + Debug;
    /// An operation with its arguments and (for determinate operations) its observed results.
    type Op: Clone + Debug;

    /// The initial state.
    fn init(&self) -> Self::State;

    /// Applies `op` in `state`: the next state, or `None` if `op` (with its observed results)
    /// is impossible in `state`.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;
}

/// An operation as the search sees it.
#[derive(Clone, Debug)]
pub struct SearchOp<O> {
    /// The operation.
    pub op: O,
    /// Position of the invocation in the history's order.
    pub call: u64,
    /// Position of the completion, greater than `call`; `u64::MAX` for an indeterminate
    /// operation.
    pub ret: u64,
}

impl<O> SearchOp<O> {
    /// Whether the operation must take effect (it completed `ok`).
    pub fn is_determinate(&self) -> bool {
        self.ret != u64::MAX
    }
}

/// Limits on one check. Exhausting any of them makes the affected keys unknown.
#[derive(Clone, Debug)]
pub struct Budget {
    /// Maximum search steps per key (`None`: unlimited).
    pub max_steps_per_key: Option<u64>,
    /// Maximum memoized (linearized set, state) entries per key (`None`: unlimited).
    pub max_cache_entries: Option<usize>,
    /// Wall-clock limit for the whole check (`None`: unlimited).
    pub time_limit: Option<Duration>,
}

impl Default for Budget {
    /// 120 s in total, at most 2 million memo entries per key (each about `ops / 8 + 64`
    /// bytes), unlimited steps.
    fn default() -> Self {
        Budget {
            max_steps_per_key: None,
            max_cache_entries: Some(2_000_000),
            time_limit: Some(Duration::from_secs(120)),
        }
    }
}

/// Limits for one [`search`] call.
#[derive(Clone, Debug, Default)]
pub struct SearchLimits {
    /// Maximum steps.
    pub max_steps: Option<u64>,
    /// Maximum memo entries.
    pub max_cache_entries: Option<usize>,
    /// Give up at this instant.
    pub deadline: Option<Instant>,
}

/// Where a failed search got furthest.
#[derive(Clone, Debug)]
pub struct SearchFailure<S> {
    /// The longest linearizable prefix found, as positions in the `ops` slice, in
    /// linearization order.
    pub prefix: Vec<usize>,
    /// The model state after that prefix.
    pub state: S,
    /// The operation whose completion was reached before it could be linearized after the prefix.
    pub blocking: usize,
    /// The operations invoked before the blocking one's completion that were still unlinearized
    /// at that point (each could not be linearized next, or led nowhere).
    pub candidates: Vec<usize>,
}

/// The result of a [`search`].
#[derive(Clone, Debug)]
pub enum SearchOutcome<S> {
    /// A linearization exists.
    Linearizable {
        /// Steps taken.
        steps: u64,
    },
    /// No linearization exists.
    NotLinearizable {
        /// Steps taken.
        steps: u64,
        /// Where the search got furthest.
        failure: SearchFailure<S>,
    },
    /// A limit was hit first.
    Exhausted {
        /// Steps taken.
        steps: u64,
        /// Which limit.
        reason: String,
    },
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// Wing–Gong–Lowe search with memoization over `ops` (one key's operations) against `model`.
///
/// Operations are ordered by `call`/`ret` positions (history indices: unique, real-time
/// ordered). Operations with `ret == u64::MAX` are indeterminate (see the module docs).
pub fn search<M: Model>(
    model: &M,
    ops: &[SearchOp<M::Op>],
    limits: &SearchLimits,
) -> SearchOutcome<M::State> {
    let n = ops.len();
    debug_assert!(
        ops.iter().all(|o| o.call < o.ret),
        "every op returns after its call"
    );
    // Events: entry 0 is the head sentinel, entries 1..=2n are calls and returns.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n); // (position, is_return, op)
    for (i, o) in ops.iter().enumerate() {
        events.push((o.call, false, i));
        events.push((o.ret, true, i));
    }
    // Unique positions except the indeterminate returns, which all sit at the end.
    events.sort_by_key(|&(pos, is_ret, op)| (pos, is_ret, op));
    let len = events.len() + 1;
    let mut next = vec![NIL; len];
    let mut prev = vec![NIL; len];
    let mut is_call = vec![false; len];
    let mut op_of = vec![0usize; len];
    let mut ret_entry = vec![NIL; n];
    for (k, &(_, is_ret, op)) in events.iter().enumerate() {
        let e = k + 1;
        prev[e] = e - 1;
        next[e - 1] = e;
        is_call[e] = !is_ret;
        op_of[e] = op;
        if is_ret {
            ret_entry[op] = e;
        }
    }
    let mut match_of = vec![NIL; len];
    for e in 1..len {
        if is_call[e] {
            match_of[e] = ret_entry[op_of[e]];
        }
    }

    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        let (p, nx) = (prev[e], next[e]);
        next[p] = nx;
        if nx != NIL {
            prev[nx] = p;
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        let (p, nx) = (prev[e], next[e]);
        next[p] = e;
        if nx != NIL {
            prev[nx] = e;
        }
    };

    let words = n.div_ceil(64).max(1);
    let mut bits = vec![0u64; words];
    let mut cache: HashSet<(Box<[u64]>, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut remaining = ops.iter().filter(|o| o.is_determinate()).count();
    let mut entry = next[HEAD];
    let mut steps: u64 = 0;
    let mut best: Option<SearchFailure<M::State>> = None;

    loop {
        if remaining == 0 {
            return SearchOutcome::Linearizable { steps };
        }
        steps += 1;
        if limits.max_steps.is_some_and(|m| steps > m) {
            return SearchOutcome::Exhausted {
                steps,
                reason: format!("step budget of {} exhausted", steps - 1),
            };
        }
        if steps.is_multiple_of(1024) && limits.deadline.is_some_and(|d| Instant::now() >= d) {
            return SearchOutcome::Exhausted {
                steps,
                reason: "time budget exhausted".into(),
            };
        }
        if entry != NIL && is_call[entry] {
            let op = op_of[entry];
            if let Some(new_state) = model.step(&state, &ops[op].op) {
                let (w, b) = (op / 64, 1u64 << (op % 64));
                bits[w] |= b;
                let key = (bits.clone().into_boxed_slice(), new_state.clone());
                if cache.insert(key) {
                    if limits.max_cache_entries.is_some_and(|m| cache.len() > m) {
                        return SearchOutcome::Exhausted {
                            steps,
                            reason: format!("memo budget of {} entries exhausted", cache.len() - 1),
                        };
                    }
                    stack.push((entry, std::mem::replace(&mut state, new_state)));
                    if ops[op].is_determinate() {
                        remaining -= 1;
                    }
                    unlink(&mut next, &mut prev, entry);
                    unlink(&mut next, &mut prev, match_of[entry]);
                    entry = next[HEAD];
                    continue;
                }
                bits[w] &= !b;
            }
            entry = next[entry];
        } else {
            // A return of an unlinearized operation (or the end of the list): the current
            // prefix cannot be extended. Remember the deepest such point, then backtrack.
            if entry != NIL && best.as_ref().is_none_or(|b| stack.len() > b.prefix.len()) {
                let mut candidates = Vec::new();
                let mut e = next[HEAD];
                while e != entry && e != NIL {
                    if is_call[e] {
                        candidates.push(op_of[e]);
                    }
                    e = next[e];
                }
                best = Some(SearchFailure {
                    prefix: stack.iter().map(|(e, _)| op_of[*e]).collect(),
                    state: state.clone(),
                    blocking: op_of[entry],
                    candidates,
                });
            }
            let Some((e, old_state)) = stack.pop() else {
                let failure = best.unwrap_or_else(|| SearchFailure {
                    prefix: Vec::new(),
                    state: model.init(),
                    blocking: 0,
                    candidates: Vec::new(),
                });
                return SearchOutcome::NotLinearizable { steps, failure };
            };
            state = old_state;
            let op = op_of[e];
            bits[op / 64] &= !(1u64 << (op % 64));
            if ops[op].is_determinate() {
                remaining += 1;
            }
            relink(&mut next, &mut prev, match_of[e]);
            relink(&mut next, &mut prev, e);
            entry = next[e];
        }
    }
}

/// A register operation with values interned to small integers (0 = no item).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegOp {
    /// A read that returned the value.
    Read(u32),
    /// A write of the value.
    Write(u32),
    /// A compare-and-set from the first value to the second.
    Cas(u32, u32),
}

/// A read/write/compare-and-set register whose state is an interned value (0 = no item).
#[derive(Clone, Copy, Debug, Default)]
pub struct RegisterModel;

impl Model for RegisterModel {
    type State = u32;
    type Op = RegOp;

    fn init(&self) -> u32 {
        0
    }

    fn step(&self, state: &u32, op: &RegOp) -> Option<u32> {
        match *op {
            RegOp::Read(v) => (v == *state).then_some(*state),
            RegOp::Write(v) => Some(v),
            RegOp::Cas(from, to) => (from == *state).then_some(to),
        }
    }
}

/// The per-key register linearizability checker (name `"linearizability"`).
///
/// Considers `read`, `write` and `cas` operations (see [`crate::workload`]); ignores reads with
/// `"consistent": false` and other `f`s.
#[derive(Clone, Debug, Default)]
pub struct Linearizability {
    /// Search limits.
    pub budget: Budget,
    /// Worker threads (keys are checked in parallel); 0 = available parallelism.
    pub threads: usize,
}

/// One key's operations, ready for the search.
struct KeyHistory<'a> {
    key: String,
    pairs: Vec<&'a OpPair>,
    ops: Vec<SearchOp<RegOp>>,
    /// Interned id → value, for reporting states.
    values: Vec<Value>,
}

enum KeyVerdict {
    Valid,
    Invalid(SearchFailure<u32>),
    Unknown(String),
}

impl Linearizability {
    /// A checker with the given budget and default threads.
    pub fn with_budget(budget: Budget) -> Self {
        Linearizability { budget, threads: 0 }
    }

    fn check_pairs(&self, pairs: &[OpPair]) -> CheckResult {
        let started = Instant::now();
        let mut result = CheckResult::new(self.name(), Verdict::Valid);
        let mut malformed = 0usize;
        let mut dropped_fail = 0usize;
        let mut dropped_info_reads = 0usize;
        let mut eventual_ignored = 0usize;
        let mut indeterminate = 0usize;
        let mut ok_ops = 0usize;

        // Partition by key, interning values per key.
        let mut keys: Vec<KeyHistory> = Vec::new();
        let mut key_pos: HashMap<String, usize> = HashMap::new();
        let mut interned: Vec<HashMap<String, u32>> = Vec::new();
        for pair in pairs {
            let Some(op) = result.register_op_or_flag(pair, &mut malformed) else {
                continue;
            };
            if let RegisterOp::Read {
                consistent: false, ..
            } = op
            {
                eventual_ignored += 1;
                continue;
            }
            match pair.outcome {
                Outcome::Fail => {
                    dropped_fail += 1;
                    continue;
                }
                Outcome::Info if matches!(op, RegisterOp::Read { .. }) => {
                    dropped_info_reads += 1;
                    continue;
                }
                Outcome::Info => indeterminate += 1,
                Outcome::Ok => ok_ops += 1,
            }
            let k = *key_pos.entry(op.key().to_string()).or_insert_with(|| {
                keys.push(KeyHistory {
                    key: op.key().to_string(),
                    pairs: Vec::new(),
                    ops: Vec::new(),
                    values: vec![Value::Null],
                });
                interned.push(HashMap::from([(canonical(&Value::Null), 0)]));
                keys.len() - 1
            });
            let kh = &mut keys[k];
            let mut intern = |v: &Value| -> u32 {
                let next = interned[k].len() as u32;
                let id = *interned[k].entry(canonical(v)).or_insert(next);
                if id == next {
                    kh.values.push(v.clone());
                }
                id
            };
            let reg = match &op {
                RegisterOp::Read { value, .. } => {
                    RegOp::Read(intern(value.as_ref().unwrap_or(&Value::Null)))
                }
                RegisterOp::Write { value, .. } => RegOp::Write(intern(value)),
                RegisterOp::Cas { expected, new, .. } => RegOp::Cas(intern(expected), intern(new)),
            };
            kh.ops.push(SearchOp {
                op: reg,
                call: pair.invoke_index,
                ret: pair.return_index(),
            });
            kh.pairs.push(pair);
        }

        // An indeterminate write whose value no read returned and no cas expected can be taken
        // not to have happened: where it was applied, the linearization stays valid without it
        // (nothing between it and the next write could observe its value). Dropping such
        // writes keeps histories with many timed-out writes tractable.
        let mut unobserved_dropped = 0usize;
        for kh in &mut keys {
            let observed: HashSet<u32> = kh
                .ops
                .iter()
                .filter_map(|o| match o.op {
                    RegOp::Read(v) | RegOp::Cas(v, _) => Some(v),
                    RegOp::Write(_) => None,
                })
                .collect();
            let keep: Vec<bool> = kh
                .ops
                .iter()
                .map(|o| {
                    o.is_determinate()
                        || match o.op {
                            RegOp::Write(v) | RegOp::Cas(_, v) => observed.contains(&v),
                            RegOp::Read(_) => true,
                        }
                })
                .collect();
            unobserved_dropped += keep.iter().filter(|k| !**k).count();
            let mut it = keep.iter();
            kh.ops.retain(|_| *it.next().expect("same length"));
            let mut it = keep.iter();
            kh.pairs.retain(|_| *it.next().expect("same length"));
        }

        // Search each key, largest first for load balance.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(keys[i].ops.len()));
        let deadline = self.budget.time_limit.map(|t| started + t);
        let limits = SearchLimits {
            max_steps: self.budget.max_steps_per_key,
            max_cache_entries: self.budget.max_cache_entries,
            deadline,
        };
        let threads = match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            t => t,
        }
        .clamp(1, keys.len().max(1));
        let next_job = AtomicUsize::new(0);
        let outcomes: Mutex<Vec<(usize, KeyVerdict, u64)>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let j = next_job.fetch_add(1, Ordering::Relaxed);
                    let Some(&k) = order.get(j) else { break };
                    let (verdict, steps) = match search(&RegisterModel, &keys[k].ops, &limits) {
                        SearchOutcome::Linearizable { steps } => (KeyVerdict::Valid, steps),
                        SearchOutcome::NotLinearizable { steps, failure } => {
                            (KeyVerdict::Invalid(failure), steps)
                        }
                        SearchOutcome::Exhausted { steps, reason } => {
                            (KeyVerdict::Unknown(reason), steps)
                        }
                    };
                    outcomes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((k, verdict, steps));
                });
            }
        });
        let mut outcomes = outcomes.into_inner().unwrap_or_else(|e| e.into_inner());
        // Invalid keys first, smallest history first; then by key name for stable output.
        outcomes.sort_by(|a, b| {
            let rank = |v: &KeyVerdict| match v {
                KeyVerdict::Invalid(_) => 0,
                KeyVerdict::Unknown(_) => 1,
                KeyVerdict::Valid => 2,
            };
            (rank(&a.1), keys[a.0].ops.len(), &keys[a.0].key).cmp(&(
                rank(&b.1),
                keys[b.0].ops.len(),
                &keys[b.0].key,
            ))
        });

        let (mut valid, mut invalid, mut unknown) = (0usize, 0usize, 0usize);
        let mut total_steps = 0u64;
        let mut max_key_ops = 0usize;
        let mut smallest_invalid: Option<String> = None;
        for (k, verdict, steps) in &outcomes {
            let kh = &keys[*k];
            total_steps += steps;
            max_key_ops = max_key_ops.max(kh.ops.len());
            match verdict {
                KeyVerdict::Valid => valid += 1,
                KeyVerdict::Unknown(reason) => {
                    unknown += 1;
                    result.push_anomaly(Anomaly {
                        kind: AnomalyKind::BudgetExhausted,
                        key: Some(kh.key.clone()),
                        message: format!(
                            "key {:?} ({} ops) undecided after {steps} steps: {reason}",
                            kh.key,
                            kh.ops.len()
                        ),
                        ops: Vec::new(),
                        details: Value::Null,
                    });
                }
                KeyVerdict::Invalid(failure) => {
                    invalid += 1;
                    let first = smallest_invalid.is_none();
                    if first {
                        smallest_invalid = Some(kh.key.clone());
                    }
                    result.push_anomaly(invalid_anomaly(kh, failure, first));
                }
            }
        }

        result.verdict = if invalid > 0 {
            Verdict::Invalid
        } else if unknown > 0 || malformed > 0 {
            Verdict::Unknown
        } else {
            Verdict::Valid
        };
        result.stat("keys", keys.len());
        result.stat("keys_valid", valid);
        result.stat("keys_invalid", invalid);
        result.stat("keys_unknown", unknown);
        result.stat("ok_ops", ok_ops);
        result.stat("indeterminate_ops", indeterminate);
        result.stat("failed_ops_dropped", dropped_fail);
        result.stat("indeterminate_reads_dropped", dropped_info_reads);
        result.stat("indeterminate_unobserved_dropped", unobserved_dropped);
        result.stat("eventual_reads_ignored", eventual_ignored);
        result.stat("malformed_ops", malformed);
        result.stat("max_key_ops", max_key_ops);
        result.stat("search_steps", total_steps);
        result.stat("elapsed_ms", started.elapsed().as_millis() as u64);
        if let Some(k) = smallest_invalid {
            result.stat("smallest_invalid_key", k);
        }
        result
    }
}

/// Builds the anomaly of an invalid key.
fn invalid_anomaly(kh: &KeyHistory<'_>, failure: &SearchFailure<u32>, full: bool) -> Anomaly {
    let blocking = kh.pairs[failure.blocking];
    let candidates: Vec<&OpPair> = failure
        .candidates
        .iter()
        .filter(|&&c| c != failure.blocking)
        .take(20)
        .map(|&c| kh.pairs[c])
        .collect();
    const TAIL: usize = 10;
    let skip = failure.prefix.len().saturating_sub(TAIL);
    let tail: Vec<Value> = failure.prefix[skip..]
        .iter()
        .map(|&i| json!(OpRef::from(kh.pairs[i])))
        .collect();
    let state = kh.values[failure.state as usize].clone();
    let mut ops = vec![OpRef::from(blocking)];
    ops.extend(candidates.iter().map(|p| OpRef::from(*p)));
    let mut details = json!({
        "key_ops": kh.ops.len(),
        "linearized_prefix_len": failure.prefix.len(),
        "linearized_prefix_tail": tail,
        "state_after_prefix": state,
        "blocking_op": blocking.invoke_index,
    });
    if full {
        let history: Vec<Value> = kh
            .pairs
            .iter()
            .take(MAX_REPORTED_KEY_HISTORY)
            .map(|p| json!(OpRef::from(*p)))
            .collect();
        details["key_history"] = Value::Array(history);
        details["key_history_truncated"] = json!(kh.pairs.len() > MAX_REPORTED_KEY_HISTORY);
    }
    Anomaly {
        kind: AnomalyKind::Nonlinearizable,
        key: Some(kh.key.clone()),
        message: format!(
            "key {:?}: no linearization of {} ops; after the longest linearizable prefix \
             ({} ops, value {}), op {} ({} by process {}, {}) cannot take effect before its completion",
            kh.key,
            kh.ops.len(),
            failure.prefix.len(),
            state,
            blocking.invoke_index,
            blocking.f,
            blocking.process,
            blocking.outcome,
        ),
        ops,
        details,
    }
}

impl Checker for Linearizability {
    fn name(&self) -> &str {
        "linearizability"
    }

    fn check(&self, input: &CheckInput<'_>) -> Result<CheckResult, CheckError> {
        Ok(self.check_pairs(&input.pairs))
    }
}
