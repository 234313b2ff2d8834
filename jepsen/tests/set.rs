//! Hand-made histories for the set checker.

mod common;

use common::{set, stat, B};
use ferrodyn_jepsen::checker::{AnomalyKind, Verdict};
use ferrodyn_jepsen::history::OpType::{Fail, Info, Ok};
use serde_json::json;

#[test]
fn all_acknowledged_adds_present_is_valid() {
    let mut b = B::new();
    b.add(Ok, 0, 1);
    b.add(Ok, 1, 2);
    b.add(Fail, 0, 3); // absent, as it should be
    b.inv_add(2, 4);
    b.end_add(Info, 2, 4); // absent: never took effect
    b.add(Ok, 3, 5);
    b.final_read(9, &[5, 2, 1]);
    let r = set(&b.h);
    assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
    assert_eq!(stat(&r, "ok"), json!(3));
    assert_eq!(stat(&r, "attempted"), json!(5));
    assert_eq!(stat(&r, "lost"), json!(0));
    assert_eq!(stat(&r, "unexpected"), json!(0));
    assert_eq!(stat(&r, "recovered"), json!(0));
}

#[test]
fn indeterminate_add_present_is_recovered_and_valid() {
    let mut b = B::new();
    b.add(Ok, 0, 1);
    b.inv_add(1, 2);
    b.end_add(Info, 1, 2);
    b.inv_add(2, 3); // never completed
    b.final_read(9, &[1, 2, 3]);
    let r = set(&b.h);
    assert_eq!(r.verdict, Verdict::Valid);
    assert_eq!(stat(&r, "recovered"), json!(2));
    assert_eq!(stat(&r, "recovered_info"), json!(2));
    assert_eq!(stat(&r, "indeterminate"), json!(2));
}

#[test]
fn lost_acknowledged_add_is_invalid() {
    let mut b = B::new();
    b.add(Ok, 0, 1);
    let lost = b.add(Ok, 1, 2);
    b.add(Ok, 0, 3);
    let read = b.final_read(9, &[1, 3]);
    let r = set(&b.h);
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(stat(&r, "lost"), json!(1));
    let a = &r.anomalies[0];
    assert_eq!(a.kind, AnomalyKind::Lost);
    assert_eq!(a.ops[0].invoke_index, lost);
    assert_eq!(a.ops[1].invoke_index, read);
    assert_eq!(a.details["element"], json!(2));
}

#[test]
fn unexpected_element_is_invalid() {
    let mut b = B::new();
    b.add(Ok, 0, 1);
    b.final_read(9, &[1, 42]);
    let r = set(&b.h);
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(stat(&r, "unexpected"), json!(1));
    assert_eq!(r.anomalies[0].kind, AnomalyKind::Unexpected);
    assert_eq!(r.anomalies[0].details["element"], json!(42));
}

#[test]
fn failed_add_present_is_invalid() {
    // A write that took effect after a failed response.
    let mut b = B::new();
    b.add(Ok, 0, 1);
    let failed = b.add(Fail, 1, 2);
    b.final_read(9, &[1, 2]);
    let r = set(&b.h);
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(stat(&r, "recovered"), json!(1));
    assert_eq!(stat(&r, "recovered_failed"), json!(1));
    assert_eq!(r.anomalies[0].kind, AnomalyKind::FailedAddPresent);
    assert_eq!(r.anomalies[0].ops[0].invoke_index, failed);
}

#[test]
fn duplicate_element_is_invalid() {
    let mut b = B::new();
    b.add(Ok, 0, 1);
    b.final_read(9, &[1, 1]);
    let r = set(&b.h);
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(stat(&r, "duplicates"), json!(1));
}

#[test]
fn add_concurrent_with_final_read_is_not_lost() {
    let mut b = B::new();
    b.add(Ok, 0, 1);
    b.inv_add(1, 2);
    b.final_read(9, &[1]);
    b.end_add(Ok, 1, 2);
    let r = set(&b.h);
    assert_eq!(r.verdict, Verdict::Valid);
    assert_eq!(stat(&r, "concurrent_absent"), json!(1));
}

#[test]
fn the_last_final_read_is_checked() {
    let mut b = B::new();
    b.add(Ok, 0, 1);
    b.final_read(9, &[]); // concurrent-looking early read is superseded
    b.add(Ok, 0, 2);
    b.final_read(9, &[1, 2]);
    assert_eq!(set(&b.h).verdict, Verdict::Valid);
    b.add(Ok, 0, 3);
    b.final_read(9, &[1, 2]);
    assert_eq!(set(&b.h).verdict, Verdict::Invalid);
}

#[test]
fn no_final_read_is_unknown() {
    let mut b = B::new();
    b.add(Ok, 0, 1);
    b.inv_add(9, 0);
    let r = set(&b.h);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(r.error.is_some());
}
