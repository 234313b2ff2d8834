//! Cross-checks the linearizability checker against two independent implementations on many
//! random tiny histories: a brute-force search over all real-time-respecting orders (no
//! memoization, no linked list, no partitioning by key), and `todc-utils`' WGL checker.
//!
//! Valid histories come from a random sequential execution whose operations are given random
//! overlapping intervals around their linearization points (some indeterminate, taking effect or
//! not; some failed, taking no effect). Invalid candidates come from mutating valid ones; all
//! three implementations must agree on every history.

use ferrodyn_jepsen::checker::linearizable::Linearizability;
use ferrodyn_jepsen::checker::{CheckInput, Checker, Verdict};
use ferrodyn_jepsen::history::{Func, History, Op, OpType, Outcome, Process};
use ferrodyn_jepsen::workload::register;
use serde_json::{json, Value};
use todc_utils::linearizability::history::{Action, History as TodcHistory};
use todc_utils::{Specification, WGLChecker};

/// splitmix64: a small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Read(i64), // 0 = no item
    Write(i64),
    Cas(i64, i64),
}

#[derive(Clone, Debug)]
struct GenOp {
    key: usize,
    kind: Kind,
    outcome: Outcome,
    /// No completion record at all (still pending when the history ends).
    pending: bool,
    invoke: u64,
    complete: u64,
    process: u64,
}

fn key_name(k: usize) -> String {
    format!("k{k}")
}

fn val(v: i64) -> Value {
    if v == 0 {
        Value::Null
    } else {
        json!(v)
    }
}

/// A random execution that is linearizable by construction.
fn generate(rng: &mut Rng, n: usize, keys: usize) -> Vec<GenOp> {
    generate_spread(rng, n, keys, 120)
}

/// Like [`generate`], with intervals reaching up to `spread` time units (100 per op) either
/// side of the linearization point: larger spreads mean more concurrency.
fn generate_spread(rng: &mut Rng, n: usize, keys: usize, spread: u64) -> Vec<GenOp> {
    let mut state = vec![0i64; keys];
    let mut written: Vec<Vec<i64>> = vec![vec![0]; keys];
    let mut next_value = 1i64;
    let mut ops = Vec::with_capacity(n);
    for i in 0..n {
        let lp = 100 * (i as u64 + 1);
        let invoke = lp - 1 - rng.below(spread).min(lp - 1);
        let complete = lp + 1 + rng.below(spread);
        let key = rng.below(keys as u64) as usize;
        let roll = rng.below(10);
        let mut outcome = Outcome::Ok;
        let kind = if roll < 4 {
            // A read: ok returns the state; sometimes indeterminate (no value).
            if rng.chance(0.1) {
                outcome = Outcome::Info;
            }
            Kind::Read(state[key])
        } else {
            let new = next_value;
            next_value += 1;
            let kind = if roll < 7 {
                Kind::Write(new)
            } else {
                let expected = if rng.chance(0.6) {
                    state[key]
                } else {
                    written[key][rng.below(written[key].len() as u64) as usize]
                };
                Kind::Cas(expected, new)
            };
            let r = rng.below(10);
            let takes_effect = if r < 2 {
                outcome = Outcome::Info;
                rng.chance(0.5)
            } else if r < 3 {
                outcome = Outcome::Fail;
                false
            } else {
                true
            };
            match kind {
                Kind::Cas(e, _) if e != state[key] && outcome == Outcome::Ok => {
                    // The condition failed: the client sees fail.
                    outcome = Outcome::Fail;
                }
                Kind::Cas(e, nv) if e == state[key] && takes_effect => state[key] = nv,
                Kind::Write(nv) if takes_effect => state[key] = nv,
                _ => {}
            }
            written[key].push(new);
            kind
        };
        let pending = outcome == Outcome::Info && rng.chance(0.4);
        ops.push(GenOp {
            key,
            kind,
            outcome,
            pending,
            invoke,
            complete,
            process: 0,
        });
    }
    assign_processes(&mut ops);
    ops
}

/// Gives each op a process: reuse a live process that finished before the op starts, else a new
/// one; a process that ended with info (or pending) is never reused.
fn assign_processes(ops: &mut [GenOp]) {
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| ops[i].invoke);
    let mut free_at: Vec<Option<u64>> = Vec::new(); // None = retired
    for i in order {
        let op = &ops[i];
        let p = free_at
            .iter()
            .position(|f| f.is_some_and(|t| t < op.invoke))
            .unwrap_or_else(|| {
                free_at.push(None);
                free_at.len() - 1
            });
        free_at[p] = if op.outcome == Outcome::Info {
            None
        } else {
            Some(op.complete)
        };
        ops[i].process = p as u64;
    }
}

/// Renders generated ops as a history (events sorted by time).
fn to_history(ops: &[GenOp]) -> History {
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        events.push((o.invoke, 0, i));
        if !o.pending {
            events.push((o.complete, 1, i));
        }
    }
    events.sort();
    let mut h = History::new();
    for (t, is_completion, i) in events {
        let o = &ops[i];
        let key = key_name(o.key);
        let (f, inv, done) = match o.kind {
            Kind::Read(v) => (
                Func::Read,
                register::read(&key),
                register::read_ok(&key, val(v), true),
            ),
            Kind::Write(v) => (
                Func::Write,
                register::write(&key, val(v)),
                register::write(&key, val(v)),
            ),
            Kind::Cas(e, nv) => (
                Func::Cas,
                register::cas(&key, val(e), val(nv)),
                register::cas(&key, val(e), val(nv)),
            ),
        };
        let (ty, value) = if is_completion == 0 {
            (OpType::Invoke, inv)
        } else {
            let ty = match o.outcome {
                Outcome::Ok => OpType::Ok,
                Outcome::Fail => OpType::Fail,
                Outcome::Info => OpType::Info,
            };
            (ty, if ty == OpType::Ok { done } else { inv })
        };
        h.push(ty, Process::Client(o.process), f, value, t);
    }
    h
}

/// Mutates one op of a valid execution (results, outcome or value); may or may not break
/// linearizability.
fn mutate(rng: &mut Rng, ops: &mut [GenOp]) {
    let max_value = ops
        .iter()
        .map(|o| match o.kind {
            Kind::Read(v) | Kind::Write(v) => v,
            Kind::Cas(_, v) => v,
        })
        .max()
        .unwrap_or(0);
    let i = rng.below(ops.len() as u64) as usize;
    let o = &mut ops[i];
    match (o.kind, o.outcome) {
        (Kind::Read(v), Outcome::Ok) => {
            let mut nv = rng.below(max_value as u64 + 2) as i64;
            if nv == v {
                nv = if v == 0 { 1 } else { 0 };
            }
            o.kind = Kind::Read(nv);
        }
        (Kind::Write(_) | Kind::Cas(..), Outcome::Ok) => o.outcome = Outcome::Fail,
        (Kind::Write(_) | Kind::Cas(..), Outcome::Fail) => o.outcome = Outcome::Ok,
        (Kind::Cas(_, nv), Outcome::Info) => {
            o.kind = Kind::Cas(rng.below(max_value as u64 + 1) as i64, nv)
        }
        _ => {
            // Stretch or shrink an interval: changes which ops overlap.
            if rng.chance(0.5) {
                o.complete = o.invoke + 1;
            } else {
                o.invoke = o.invoke.saturating_sub(150);
            }
        }
    }
    // Keep each process sequential after interval changes.
    for o in ops.iter_mut() {
        if o.complete <= o.invoke {
            o.complete = o.invoke + 1;
        }
    }
    assign_processes(ops);
}

/// An op for the independent checkers: (key, kind, determinate, call position, return position).
#[derive(Clone, Debug)]
struct Plain {
    key: usize,
    kind: Kind,
    determinate: bool,
    call: u64,
    ret: u64,
}

/// Reads the history back with the library's pairing (tested on its own elsewhere) and the
/// workload conventions, into plain ops; drops failed ops and indeterminate reads.
fn plain_ops(h: &History) -> Vec<Plain> {
    let num = |v: &Value| v.as_i64().unwrap_or(0);
    let mut out = Vec::new();
    for p in h.pairs().expect("generated histories are well formed") {
        if p.outcome == Outcome::Fail {
            continue;
        }
        let inv = &p.invoke_value;
        let key: usize = inv["key"].as_str().unwrap()[1..].parse().unwrap();
        let kind = match p.f {
            Func::Read => {
                if p.outcome != Outcome::Ok {
                    continue;
                }
                Kind::Read(num(&p.complete_value.as_ref().unwrap()["value"]))
            }
            Func::Write => Kind::Write(num(&inv["value"])),
            Func::Cas => Kind::Cas(num(&inv["expected"]), num(&inv["new"])),
            _ => unreachable!(),
        };
        let determinate = p.outcome == Outcome::Ok;
        out.push(Plain {
            key,
            kind,
            determinate,
            call: p.invoke_index,
            ret: if determinate {
                p.complete_index.unwrap()
            } else {
                u64::MAX
            },
        });
    }
    out
}

fn step(state: &[i64], key: usize, kind: Kind) -> Option<Vec<i64>> {
    let mut s = state.to_vec();
    match kind {
        Kind::Read(v) => (s[key] == v).then_some(s),
        Kind::Write(v) => {
            s[key] = v;
            Some(s)
        }
        Kind::Cas(e, v) => (s[key] == e).then(|| {
            s[key] = v;
            s
        }),
    }
}

/// Brute force: try every order that respects real time, over all keys at once; indeterminate
/// ops may be left out.
fn brute_force(ops: &[Plain], keys: usize) -> bool {
    fn go(ops: &[Plain], done: &mut Vec<bool>, state: &[i64]) -> bool {
        if ops
            .iter()
            .zip(done.iter())
            .all(|(o, d)| *d || !o.determinate)
        {
            return true;
        }
        for i in 0..ops.len() {
            if done[i] {
                continue;
            }
            // Every op that returned before this one was called must already be placed.
            let ready = ops
                .iter()
                .enumerate()
                .all(|(j, o)| done[j] || o.ret >= ops[i].call);
            if !ready {
                continue;
            }
            if let Some(next) = step(state, ops[i].key, ops[i].kind) {
                done[i] = true;
                if go(ops, done, &next) {
                    return true;
                }
                done[i] = false;
            }
        }
        false
    }
    go(ops, &mut vec![false; ops.len()], &vec![0; keys])
}

#[derive(Clone, Debug)]
enum TodcOp {
    Read(usize, i64),
    Write(usize, i64),
    Cas(usize, i64, i64),
    /// An indeterminate cas: applies if its condition holds where it is placed, else no-op.
    /// Placing it last (its response is at the end) is the same as never applying it.
    MaybeCas(usize, i64, i64),
}

struct TodcSpec;

impl Specification for TodcSpec {
    type State = [i64; 4];
    type Operation = TodcOp;

    fn init() -> Self::State {
        [0; 4]
    }

    fn apply(op: &TodcOp, s: &Self::State) -> (bool, Self::State) {
        let mut n = *s;
        match *op {
            TodcOp::Read(k, v) => (s[k] == v, n),
            TodcOp::Write(k, v) => {
                n[k] = v;
                (true, n)
            }
            TodcOp::Cas(k, e, v) => {
                if s[k] == e {
                    n[k] = v;
                    (true, n)
                } else {
                    (false, n)
                }
            }
            TodcOp::MaybeCas(k, e, v) => {
                if s[k] == e {
                    n[k] = v;
                }
                (true, n)
            }
        }
    }
}

fn todc(ops: &[Plain]) -> bool {
    if ops.is_empty() {
        return true;
    }
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        events.push((o.call, false, i));
        events.push((o.ret, true, i));
    }
    events.sort();
    let actions: Vec<(usize, Action<TodcOp>)> = events
        .into_iter()
        .map(|(_, is_ret, i)| {
            let o = &ops[i];
            let op = match (o.kind, o.determinate) {
                (Kind::Read(v), _) => TodcOp::Read(o.key, v),
                (Kind::Write(v), _) => TodcOp::Write(o.key, v),
                (Kind::Cas(e, v), true) => TodcOp::Cas(o.key, e, v),
                (Kind::Cas(e, v), false) => TodcOp::MaybeCas(o.key, e, v),
            };
            // Each op gets its own todc process: per-process order is implied by real time.
            (
                i,
                if is_ret {
                    Action::Response(op)
                } else {
                    Action::Call(op)
                },
            )
        })
        .collect();
    WGLChecker::<TodcSpec>::is_linearizable(TodcHistory::from_actions(actions))
}

fn ours(h: &History) -> Verdict {
    let checker = Linearizability {
        threads: 1,
        ..Default::default()
    };
    let input = CheckInput::new(h).unwrap();
    checker.check(&input).unwrap().verdict
}

fn describe(h: &History) -> String {
    h.ops()
        .iter()
        .map(|o: &Op| serde_json::to_string(o).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

fn agree(h: &History, keys: usize) -> bool {
    let plain = plain_ops(h);
    let bf = brute_force(&plain, keys);
    let td = todc(&plain);
    let us = ours(h);
    assert_ne!(us, Verdict::Unknown, "tiny history must be decided");
    assert_eq!(
        us == Verdict::Valid,
        bf,
        "checker vs brute force disagree on\n{}",
        describe(h)
    );
    assert_eq!(bf, td, "brute force vs todc disagree on\n{}", describe(h));
    bf
}

#[test]
fn generated_valid_histories_are_valid_for_all_three() {
    let mut rng = Rng(0x5EED_0001);
    let mut with_info = 0;
    for _ in 0..3000 {
        let n = 1 + rng.below(9) as usize;
        let keys = 1 + rng.below(2) as usize;
        let ops = generate(&mut rng, n, keys);
        with_info += ops.iter().any(|o| o.outcome == Outcome::Info) as usize;
        let h = to_history(&ops);
        assert!(
            agree(&h, keys),
            "generated history judged invalid:\n{}",
            describe(&h)
        );
    }
    assert!(
        with_info > 500,
        "generator should produce indeterminate ops"
    );
}

#[test]
fn mutated_histories_get_the_same_verdict_from_all_three() {
    let mut rng = Rng(0x5EED_0002);
    let (mut valid, mut invalid) = (0, 0);
    for _ in 0..4000 {
        let n = 2 + rng.below(8) as usize;
        let keys = 1 + rng.below(2) as usize;
        let mut ops = generate(&mut rng, n, keys);
        for _ in 0..1 + rng.below(2) {
            mutate(&mut rng, &mut ops);
        }
        let h = to_history(&ops);
        if agree(&h, keys) {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    // Both outcomes must be well represented, or the test proves little.
    assert!(invalid > 1000, "only {invalid} invalid of 4000");
    assert!(valid > 500, "only {valid} valid of 4000");
}

#[test]
fn larger_single_key_histories_agree_with_todc() {
    // Too big for brute force; our checker and todc must still agree.
    let mut rng = Rng(0x5EED_0003);
    let (mut valid, mut invalid) = (0, 0);
    for round in 0..300 {
        let mut ops = generate(&mut rng, 30, 1);
        if round % 2 == 1 {
            mutate(&mut rng, &mut ops);
        }
        let h = to_history(&ops);
        let td = todc(&plain_ops(&h));
        let us = ours(&h);
        assert_eq!(us == Verdict::Valid, td, "disagree on\n{}", describe(&h));
        if td {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(
        valid >= 150 && invalid > 30,
        "valid={valid} invalid={invalid}"
    );
}

#[test]
fn run_sized_histories_are_checked_quickly() {
    // Tens of thousands of ops over several keys, ~15% indeterminate, up to ~40 concurrent ops
    // per key: valid, and well within the default budget.
    let mut rng = Rng(0x5EED_0004);
    for (n, keys, spread) in [
        (20_000usize, 20usize, 120u64),
        (5_000, 5, 2_000),
        (2_000, 1, 1_000),
    ] {
        let ops = generate_spread(&mut rng, n, keys, spread);
        let h = to_history(&ops);
        let started = std::time::Instant::now();
        let input = CheckInput::new(&h).unwrap();
        let r = Linearizability::default().check(&input).unwrap();
        assert_eq!(
            r.verdict,
            Verdict::Valid,
            "n={n} keys={keys} spread={spread}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "n={n}: {:?}",
            started.elapsed()
        );
    }
}
