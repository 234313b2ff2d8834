//! Hand-made histories for the eventual-reads checker.

mod common;

use common::{eventual, eventual_all, stat, B};
use ferrodyn_jepsen::checker::{AnomalyKind, Verdict};
use ferrodyn_jepsen::history::OpType::{Fail, Info, Ok};
use serde_json::json;

#[test]
fn stale_but_written_values_are_valid_and_measured() {
    let mut b = B::new(); // each record is 10 ns after the previous
    b.er(1, "x", None); //            0 newer acked writes
    b.w(0, "x", 1); //                write 1 completes at t=40
    b.er(1, "x", None); //            null: 1 newer (invoked t=50, 10 ns after t=40)
    b.w(0, "x", 2); //                write 2 completes at t=80
    b.w(0, "x", 3); //                write 3 completes at t=100
    b.er(1, "x", Some(1)); //         2 newer (2, 3), invoked t=110, superseded at 80 -> 30 ns
    b.er(1, "x", Some(3)); //         fresh
    b.inv_w(0, "x", 4);
    b.er(1, "x", Some(4)); //         concurrent with its write: fresh
    b.ok_w(0, "x", 4);
    let r = eventual(&b.h);
    assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
    assert_eq!(stat(&r, "reads_checked"), json!(5));
    assert_eq!(stat(&r, "stale_reads"), json!(2));
    let v = stat(&r, "staleness_versions");
    assert_eq!(v["count"], json!(5));
    assert_eq!(v["max"], json!(2));
    assert_eq!(v["p50"], json!(0));
    assert_eq!(v["p90"], json!(2));
    let ns = stat(&r, "staleness_ns");
    assert_eq!(ns["max"], json!(30));
    assert_eq!(ns["p50"], json!(0));
}

#[test]
fn read_of_never_written_value_is_invalid() {
    let mut b = B::new();
    b.w(0, "x", 1);
    let bad = b.er(1, "x", Some(77));
    let r = eventual(&b.h);
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(stat(&r, "never_written"), json!(1));
    assert_eq!(r.anomalies[0].kind, AnomalyKind::NeverWritten);
    assert_eq!(r.anomalies[0].ops[0].invoke_index, bad);
    assert_eq!(r.anomalies[0].key.as_deref(), Some("x"));
}

#[test]
fn value_written_to_another_key_is_never_written_here() {
    let mut b = B::new();
    b.w(0, "a", 1);
    b.er(1, "b", Some(1));
    assert_eq!(eventual(&b.h).verdict, Verdict::Invalid);
}

#[test]
fn read_of_failed_write_is_invalid() {
    let mut b = B::new();
    b.w(0, "x", 1);
    let w = b.inv_w(0, "x", 2);
    b.end_w(Fail, 0, "x", 2);
    b.er(1, "x", Some(2));
    let r = eventual(&b.h);
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(stat(&r, "failed_write_reads"), json!(1));
    assert_eq!(r.anomalies[0].kind, AnomalyKind::FailedWriteRead);
    assert_eq!(r.anomalies[0].ops[1].invoke_index, w);
}

#[test]
fn read_of_failed_cas_is_invalid_but_indeterminate_is_fine() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_cas(0, "x", Some(5), 2);
    b.end_cas(Fail, 0, "x", Some(5), 2);
    b.er(1, "x", Some(2));
    assert_eq!(eventual(&b.h).verdict, Verdict::Invalid);

    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_cas(0, "x", Some(1), 2);
    b.end_cas(Info, 0, "x", Some(1), 2);
    b.er(1, "x", Some(2));
    b.er(1, "x", Some(1)); // eventual reads may go backwards
    assert_eq!(eventual(&b.h).verdict, Verdict::Valid);
}

#[test]
fn read_from_the_future_is_invalid() {
    let mut b = B::new();
    b.er(1, "x", Some(1));
    b.w(0, "x", 1);
    let r = eventual(&b.h);
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(r.anomalies[0].kind, AnomalyKind::FutureRead);
}

#[test]
fn consistent_reads_are_skipped_unless_asked() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.r(1, "x", Some(9)); // a strongly consistent read of garbage
    b.er(1, "x", Some(1));
    let r = eventual(&b.h);
    assert_eq!(r.verdict, Verdict::Valid);
    assert_eq!(stat(&r, "reads_checked"), json!(1));
    let r = eventual_all(&b.h);
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(stat(&r, "reads_checked"), json!(2));
}

#[test]
fn no_reads_is_unknown_not_valid() {
    let mut b = B::new();
    b.w(0, "x", 1);
    b.inv_er(1, "x");
    b.rec(
        Info,
        1,
        ferrodyn_jepsen::history::Func::Read,
        json!({"key": "x"}),
    );
    let r = eventual(&b.h);
    assert_eq!(r.verdict, Verdict::Unknown);
    let _ = Ok;
}
