//! Hand-made register histories, valid and invalid, for the linearizability checker.

mod common;

use std::time::{Duration, Instant};

use common::{lin, run, stat, B};
use ferrodyn_jepsen::checker::linearizable::{Budget, Linearizability};
use ferrodyn_jepsen::checker::{AnomalyKind, CheckResult, Verdict};
use ferrodyn_jepsen::history::OpType::{Fail, Info, Ok};
use serde_json::json;

fn assert_valid(r: &CheckResult) {
    assert_eq!(
        r.verdict,
        Verdict::Valid,
        "{}",
        serde_json::to_string_pretty(r).unwrap()
    );
    assert!(r.anomalies.is_empty());
}

fn assert_invalid(r: &CheckResult) {
    assert_eq!(
        r.verdict,
        Verdict::Invalid,
        "{}",
        serde_json::to_string_pretty(r).unwrap()
    );
    assert!(r
        .anomalies
        .iter()
        .any(|a| a.kind == AnomalyKind::Nonlinearizable));
}

/// The invocation indices named by the first anomaly.
fn blamed(r: &CheckResult) -> Vec<u64> {
    r.anomalies[0].ops.iter().map(|o| o.invoke_index).collect()
}

#[test]
fn empty_history_is_valid() {
    let r = lin(&B::new().h);
    assert_valid(&r);
    assert_eq!(stat(&r, "keys"), json!(0));
}

#[test]
fn sequential_write_then_read() {
    let mut b = B::new();
    b.r(0, "x", None);
    b.w(0, "x", 1);
    b.r(1, "x", Some(1));
    b.w(1, "x", 2);
    b.r(0, "x", Some(2));
    assert_valid(&lin(&b.h));
}

#[test]
fn read_concurrent_with_write_may_see_old_or_new() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_w(0, "x", 2);
    b.r(1, "x", Some(2)); // sees the new value early
    b.r(2, "x", Some(2));
    b.ok_w(0, "x", 2);
    let mut c = B::new();
    c.w(0, "x", 1);
    c.inv_w(0, "x", 2);
    c.r(1, "x", Some(1)); // still the old value
    c.r(2, "x", Some(2)); // then the new one
    c.ok_w(0, "x", 2);
    assert_valid(&lin(&b.h));
    assert_valid(&lin(&c.h));
}

#[test]
fn concurrent_writes_valid_only_through_overlap() {
    // P0 |--------------| w1
    // P1  |-------------| w2
    // P2    |-| r2
    // P3         |-| r1
    let mut b = B::new();
    b.inv_w(0, "x", 1);
    b.inv_w(1, "x", 2);
    b.r(2, "x", Some(2));
    b.r(3, "x", Some(1));
    b.ok_w(0, "x", 1);
    b.ok_w(1, "x", 2);
    assert_valid(&lin(&b.h));
}

#[test]
fn sequentially_consistent_but_not_linearizable() {
    // Both writes complete before the reads, which see 2 then 1.
    let mut b = B::new();
    b.inv_w(0, "x", 1);
    b.inv_w(1, "x", 2);
    b.ok_w(0, "x", 1);
    b.ok_w(1, "x", 2);
    b.r(2, "x", Some(2));
    let bad = b.r(3, "x", Some(1));
    let r = lin(&b.h);
    assert_invalid(&r);
    assert_eq!(blamed(&r)[0], bad);
}

#[test]
fn stale_read_is_invalid() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.w(0, "x", 2);
    let stale = b.r(1, "x", Some(1));
    let r = lin(&b.h);
    assert_invalid(&r);
    let a = &r.anomalies[0];
    assert_eq!(a.key.as_deref(), Some("x"));
    assert_eq!(
        a.ops[0].invoke_index, stale,
        "the stale read is the blocking op"
    );
    assert_eq!(a.details["linearized_prefix_len"], json!(2));
    assert_eq!(a.details["state_after_prefix"], json!(2));
    assert_eq!(stat(&r, "smallest_invalid_key"), json!("x"));
    assert!(a.details["key_history"].as_array().unwrap().len() == 3);
}

#[test]
fn lost_write_is_invalid() {
    // The acknowledged write of 2 is never visible; later reads see the older value.
    let mut b = B::new();
    b.w(0, "x", 1);
    let lost = b.w(1, "x", 2);
    b.r(2, "x", Some(1));
    b.r(3, "x", Some(1));
    let r = lin(&b.h);
    assert_invalid(&r);
    // The write of 2 is in the longest prefix, and the read after it cannot follow.
    let tail = r.anomalies[0].details["linearized_prefix_tail"]
        .as_array()
        .unwrap()
        .clone();
    assert!(tail.iter().any(|o| o["invoke_index"] == json!(lost)));
}

#[test]
fn read_of_initial_state_after_acked_write_is_invalid() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.r(1, "x", None);
    assert_invalid(&lin(&b.h));
}

#[test]
fn write_that_took_effect_after_fail_response_is_invalid() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_w(0, "x", 2);
    b.end_w(Fail, 0, "x", 2);
    let read = b.r(1, "x", Some(2));
    let r = lin(&b.h);
    assert_invalid(&r);
    assert_eq!(blamed(&r)[0], read);
    assert_eq!(stat(&r, "failed_ops_dropped"), json!(1));
}

#[test]
fn failed_write_is_dropped() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_w(0, "x", 2);
    b.end_w(Fail, 0, "x", 2);
    b.r(1, "x", Some(1));
    assert_valid(&lin(&b.h));
}

#[test]
fn read_of_never_written_value_is_invalid() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.r(1, "x", Some(99));
    assert_invalid(&lin(&b.h));
}

#[test]
fn indeterminate_write_taking_effect_late_is_valid() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_w(1, "x", 2);
    b.end_w(Info, 1, "x", 2); // timed out
    b.r(2, "x", Some(1)); // not yet applied
    b.w(3, "x", 3);
    b.r(2, "x", Some(3));
    b.r(2, "x", Some(2)); // applied long after its timeout, after the write of 3
    b.r(3, "x", Some(2));
    let r = lin(&b.h);
    assert_valid(&r);
    assert_eq!(stat(&r, "indeterminate_ops"), json!(1));
}

#[test]
fn indeterminate_write_never_taking_effect_is_valid() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_w(1, "x", 2);
    b.end_w(Info, 1, "x", 2);
    b.r(2, "x", Some(1));
    b.r(2, "x", Some(1));
    // Also a write still pending when the history ends.
    b.inv_w(3, "x", 3);
    b.r(2, "x", Some(1));
    assert_valid(&lin(&b.h));
}

#[test]
fn indeterminate_write_cannot_take_effect_twice() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_w(1, "x", 2);
    b.end_w(Info, 1, "x", 2);
    b.r(2, "x", Some(2));
    b.w(0, "x", 3);
    b.r(2, "x", Some(2)); // 2 again after 3: would need the write of 2 twice
    assert_invalid(&lin(&b.h));
}

#[test]
fn indeterminate_write_cannot_take_effect_before_invocation() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.r(2, "x", Some(2)); // reads 2 before anyone tried to write it
    b.inv_w(1, "x", 2);
    b.end_w(Info, 1, "x", 2);
    assert_invalid(&lin(&b.h));
}

#[test]
fn indeterminate_reads_are_dropped() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_r(1, "x");
    b.rec(
        Info,
        1,
        ferrodyn_jepsen::history::Func::Read,
        json!({"key": "x"}),
    );
    b.r(2, "x", Some(1));
    let r = lin(&b.h);
    assert_valid(&r);
    assert_eq!(stat(&r, "indeterminate_reads_dropped"), json!(1));
}

#[test]
fn cas_valid_sequence() {
    let mut b = B::new();
    b.inv_cas(0, "x", None, 1); // create if absent
    b.end_cas(Ok, 0, "x", None, 1);
    b.inv_cas(0, "x", Some(1), 2);
    b.end_cas(Ok, 0, "x", Some(1), 2);
    b.inv_cas(1, "x", Some(1), 3); // condition no longer holds
    b.end_cas(Fail, 1, "x", Some(1), 3);
    b.r(1, "x", Some(2));
    assert_valid(&lin(&b.h));
}

#[test]
fn concurrent_cas_chain_valid_through_overlap() {
    // cas 2->3 is invoked first but must linearize after cas 1->2.
    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_cas(1, "x", Some(2), 3);
    b.inv_cas(2, "x", Some(1), 2);
    b.end_cas(Ok, 2, "x", Some(1), 2);
    b.end_cas(Ok, 1, "x", Some(2), 3);
    b.r(0, "x", Some(3));
    assert_valid(&lin(&b.h));
}

#[test]
fn cas_succeeding_on_wrong_value_is_invalid() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.w(0, "x", 3);
    b.inv_cas(1, "x", Some(1), 2);
    let cas = b.end_cas(Ok, 1, "x", Some(1), 2);
    let r = lin(&b.h);
    assert_invalid(&r);
    assert_eq!(r.anomalies[0].ops[0].complete_index, Some(cas));
}

#[test]
fn two_concurrent_cas_from_same_value_cannot_both_succeed() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_cas(1, "x", Some(1), 2);
    b.inv_cas(2, "x", Some(1), 3);
    b.end_cas(Ok, 1, "x", Some(1), 2);
    b.end_cas(Ok, 2, "x", Some(1), 3);
    assert_invalid(&lin(&b.h));
}

#[test]
fn acked_cas_then_old_value_is_invalid() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_cas(1, "x", Some(1), 2);
    b.end_cas(Ok, 1, "x", Some(1), 2);
    b.r(2, "x", Some(1));
    assert_invalid(&lin(&b.h));
}

#[test]
fn indeterminate_cas_may_or_may_not_apply() {
    // Applied.
    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_cas(1, "x", Some(1), 2);
    b.end_cas(Info, 1, "x", Some(1), 2);
    b.r(2, "x", Some(2));
    assert_valid(&lin(&b.h));
    // Not applied.
    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_cas(1, "x", Some(1), 2);
    b.end_cas(Info, 1, "x", Some(1), 2);
    b.r(2, "x", Some(1));
    assert_valid(&lin(&b.h));
    // Applied, but the state went back to 1 with no write of 1: invalid.
    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_cas(1, "x", Some(1), 2);
    b.end_cas(Info, 1, "x", Some(1), 2);
    b.r(2, "x", Some(2));
    b.r(2, "x", Some(1));
    assert_invalid(&lin(&b.h));
    // Its condition never held after its invocation, so it cannot explain a read of 2.
    let mut b = B::new();
    b.w(0, "x", 1);
    b.w(0, "x", 5);
    b.inv_cas(1, "x", Some(1), 2);
    b.end_cas(Info, 1, "x", Some(1), 2);
    b.r(2, "x", Some(2));
    assert_invalid(&lin(&b.h));
}

#[test]
fn keys_are_checked_independently_and_smallest_failure_first() {
    let mut b = B::new();
    // Key "a": valid, larger.
    for i in 0..10 {
        b.w(0, "a", i);
        b.r(1, "a", Some(i));
    }
    // Key "big": invalid, 6 ops.
    b.w(0, "big", 1);
    b.w(0, "big", 2);
    b.w(0, "big", 3);
    b.r(1, "big", Some(3));
    b.r(1, "big", Some(3));
    b.r(1, "big", Some(1));
    // Key "small": invalid, 3 ops.
    b.w(0, "small", 1);
    b.w(0, "small", 2);
    b.r(1, "small", Some(1));
    // A stale read on "a" would be fine on another key: "x" reads 1 from "a"? No: values are per key.
    b.w(0, "c", 1);
    b.r(1, "c", Some(1));
    let r = lin(&b.h);
    assert_invalid(&r);
    assert_eq!(stat(&r, "keys"), json!(4));
    assert_eq!(stat(&r, "keys_invalid"), json!(2));
    assert_eq!(stat(&r, "keys_valid"), json!(2));
    assert_eq!(stat(&r, "smallest_invalid_key"), json!("small"));
    assert_eq!(r.anomalies[0].key.as_deref(), Some("small"));
    assert_eq!(r.anomalies[1].key.as_deref(), Some("big"));
    assert!(r.anomalies[0].details.get("key_history").is_some());
    assert!(r.anomalies[1].details.get("key_history").is_none());
}

#[test]
fn values_do_not_leak_across_keys() {
    let mut b = B::new();
    b.w(0, "a", 7);
    b.r(1, "b", Some(7)); // 7 was written to "a", never to "b"
    assert_invalid(&lin(&b.h));
}

#[test]
fn eventual_reads_are_ignored() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.w(0, "x", 2);
    b.er(1, "x", Some(1)); // stale, but eventually consistent
    let r = lin(&b.h);
    assert_valid(&r);
    assert_eq!(stat(&r, "eventual_reads_ignored"), json!(1));
}

#[test]
fn malformed_op_makes_result_unknown_not_valid() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.rec(
        ferrodyn_jepsen::history::OpType::Invoke,
        1,
        ferrodyn_jepsen::history::Func::Write,
        json!({"value": 3}),
    );
    b.rec(
        Ok,
        1,
        ferrodyn_jepsen::history::Func::Write,
        json!({"value": 3}),
    );
    let r = lin(&b.h);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert_eq!(r.anomalies[0].kind, AnomalyKind::Malformed);
}

/// `n` writes all concurrent with each other and with a sequence of reads that flip between
/// two values more often than the writes allow: invalid, but only after an exponential search.
fn pathological(n: i64) -> B {
    let mut b = B::new();
    for i in 0..n {
        b.inv_w(i as u64, "x", i + 1);
    }
    for j in 0..(n + 2) {
        b.r(1000, "x", Some(1 + (j % 2)));
    }
    for i in 0..n {
        b.ok_w(i as u64, "x", i + 1);
    }
    b
}

#[test]
fn step_budget_yields_unknown() {
    let b = pathological(20);
    let checker = Linearizability {
        budget: Budget {
            max_steps_per_key: Some(5_000),
            max_cache_entries: None,
            time_limit: None,
        },
        threads: 1,
    };
    let r = run(&checker, &b.h);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert_eq!(r.anomalies[0].kind, AnomalyKind::BudgetExhausted);
    assert_eq!(stat(&r, "keys_unknown"), json!(1));
}

#[test]
fn memo_and_time_budgets_yield_unknown() {
    let b = pathological(40);
    let checker = Linearizability::with_budget(Budget {
        max_steps_per_key: None,
        max_cache_entries: Some(10_000),
        time_limit: None,
    });
    assert_eq!(run(&checker, &b.h).verdict, Verdict::Unknown);

    let checker = Linearizability::with_budget(Budget {
        max_steps_per_key: None,
        max_cache_entries: None,
        time_limit: Some(Duration::from_millis(200)),
    });
    let started = Instant::now();
    let r = run(&checker, &b.h);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn small_pathological_history_is_decided_without_budget() {
    // The same shape, small enough to finish: the checker finds it invalid.
    let b = pathological(6);
    let r = lin(&b.h);
    assert_invalid(&r);
}

#[test]
fn budget_never_turns_invalid_into_valid() {
    // With a tiny step budget an invalid history is unknown or invalid, never valid.
    let mut b = B::new();
    b.w(0, "x", 1);
    b.w(0, "x", 2);
    b.r(1, "x", Some(1));
    for steps in 1..10 {
        let checker = Linearizability::with_budget(Budget {
            max_steps_per_key: Some(steps),
            max_cache_entries: None,
            time_limit: None,
        });
        assert_ne!(run(&checker, &b.h).verdict, Verdict::Valid, "steps={steps}");
    }
}

#[test]
fn many_keys_in_parallel() {
    let mut b = B::new();
    for k in 0..200 {
        let key = format!("k{k}");
        b.inv_w(0, &key, 1);
        b.inv_w(1, &key, 2);
        b.ok_w(0, &key, 1);
        b.ok_w(1, &key, 2);
        b.r(2, &key, Some(if k % 2 == 0 { 1 } else { 2 }));
    }
    let r = lin(&b.h);
    assert_valid(&r);
    assert_eq!(stat(&r, "keys"), json!(200));
    // One bad key among them.
    b.r(2, "k7", Some(1)); // k7 read 2 (odd), then 1: invalid
    let r = lin(&b.h);
    assert_invalid(&r);
    assert_eq!(stat(&r, "keys_invalid"), json!(1));
    assert_eq!(r.anomalies[0].key.as_deref(), Some("k7"));
}
