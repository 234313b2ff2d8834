//! Verdict merging, exit codes, reports and the convergence interface.

mod common;

use common::B;
use ferrodyn_jepsen::checker::convergence::{
    version_of, Convergence, RegionSnapshot, SnapshotItem, Version,
};
use ferrodyn_jepsen::checker::eventual::EventualReads;
use ferrodyn_jepsen::checker::linearizable::Linearizability;
use ferrodyn_jepsen::checker::set::SetChecker;
use ferrodyn_jepsen::checker::{
    check_history, check_input, percentiles, CheckInput, Checker, Report, Verdict,
    STANDARD_PERCENTILES,
};
use ferrodyn_jepsen::history::{Func, OpType};
use serde_json::json;
use std::collections::BTreeMap;

use Verdict::{Invalid, Unknown, Valid};

#[test]
fn verdicts_merge_invalid_over_unknown_over_valid() {
    let all = [Valid, Invalid, Unknown];
    for a in all {
        for b in all {
            let m = a.merge(b);
            assert_eq!(m, b.merge(a), "commutative");
            let expect = if a == Invalid || b == Invalid {
                Invalid
            } else if a == Unknown || b == Unknown {
                Unknown
            } else {
                Valid
            };
            assert_eq!(m, expect, "{a:?} + {b:?}");
        }
    }
    assert_eq!(Verdict::merge_all([]), Valid);
    assert_eq!(Verdict::merge_all([Valid, Unknown, Valid]), Unknown);
    assert_eq!(Verdict::merge_all([Unknown, Invalid, Valid]), Invalid);
    assert_eq!(
        (Valid.exit_code(), Invalid.exit_code(), Unknown.exit_code()),
        (0, 1, 2)
    );
    assert_eq!(serde_json::to_value(Invalid).unwrap(), json!("invalid"));
}

#[test]
fn report_merges_checkers_and_round_trips_as_json() {
    let mut b = B::new();
    b.nemesis(Func::Start, "kill");
    b.w(0, "x", 1);
    b.w(0, "x", 2);
    b.r(1, "x", Some(1)); // stale: linearizability invalid
    b.nemesis(Func::Stop, "kill");
    let lin = Linearizability::default();
    let set = SetChecker; // no final read: unknown
    let report = check_history(&b.h, &[&lin as &dyn Checker, &set]);
    assert_eq!(report.verdict, Invalid);
    assert_eq!(report.exit_code(), 1);
    assert_eq!(report.results.len(), 2);
    assert_eq!(report.results[0].checker, "linearizability");
    assert_eq!(report.results[1].verdict, Unknown);
    assert_eq!(report.fault_intervals, 1);
    assert_eq!((report.client_ops, report.ok_ops), (3, 3));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    report.write_json(&path).unwrap();
    let back: Report = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(back, report);
    let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(v["verdict"], json!("invalid"));
    assert_eq!(
        v["results"][0]["anomalies"][0]["kind"],
        json!("nonlinearizable")
    );
    assert_eq!(
        v["results"][0]["anomalies"][0]["ops"][0]["invoke_index"],
        json!(5)
    );

    let summary = report.summary();
    assert!(summary.contains("linearizability"));
    assert!(summary.lines().last().unwrap().contains("invalid (exit 1)"));

    // Only the set checker, on a valid set history: exit 0.
    let mut b = B::new();
    b.add(OpType::Ok, 0, 1);
    b.final_read(1, &[1]);
    let report = check_history(&b.h, &[&set as &dyn Checker]);
    assert_eq!(report.exit_code(), 0);
    // Unknown alone: exit 2.
    let ev = EventualReads::default();
    assert_eq!(check_history(&b.h, &[&ev as &dyn Checker]).exit_code(), 2);
}

#[test]
fn malformed_history_gives_exit_code_two() {
    let mut b = B::new();
    b.inv_w(0, "x", 1);
    b.end_w(OpType::Info, 0, "x", 1);
    b.w(0, "x", 2); // process reused after info
    let lin = Linearizability::default();
    let report = check_history(&b.h, &[&lin as &dyn Checker]);
    assert_eq!(report.verdict, Unknown);
    assert_eq!(report.exit_code(), 2);
    assert!(report.history_error.as_deref().unwrap().contains("reused"));
    assert!(report.results.is_empty());
}

#[test]
fn percentiles_use_nearest_rank() {
    let mut s: Vec<u64> = (1..=100).collect();
    let p = percentiles(&mut s, STANDARD_PERCENTILES);
    assert_eq!(
        p,
        json!({"count": 100, "p50": 50, "p90": 90, "p99": 99, "max": 100})
    );
    let p = percentiles(&mut [7], STANDARD_PERCENTILES);
    assert_eq!(
        p,
        json!({"count": 1, "p50": 7, "p90": 7, "p99": 7, "max": 7})
    );
    assert_eq!(
        percentiles(&mut [], STANDARD_PERCENTILES),
        json!({"count": 0})
    );
}

#[test]
fn convergence_is_an_interface_that_never_claims_valid() {
    let mut b = B::new();
    b.w(0, "x", 1);
    let c = Convergence;
    let input = CheckInput::new(&b.h).unwrap();
    let report = check_input(&input, &[&c as &dyn Checker]);
    assert_eq!(report.verdict, Unknown);
    assert!(report.results[0]
        .error
        .as_deref()
        .unwrap()
        .contains("missing input"));

    let snapshot = RegionSnapshot {
        region: "us-east".into(),
        taken_at: 1000,
        items: BTreeMap::from([(
            "x".to_string(),
            SnapshotItem {
                value: json!(1),
                version: Version {
                    hlc: 5 << 16,
                    region: "us-east".into(),
                },
            },
        )]),
    };
    let snaps = [snapshot];
    let input = CheckInput::new(&b.h).unwrap().with_region_snapshots(&snaps);
    let report = check_input(&input, &[&c as &dyn Checker]);
    assert_eq!(report.verdict, Unknown);
    assert_eq!(report.exit_code(), 2);
    assert!(report.results[0]
        .error
        .as_deref()
        .unwrap()
        .contains("not implemented"));

    // The LWW order: hlc first, region breaks ties.
    let v = |hlc, r: &str| Version {
        hlc,
        region: r.into(),
    };
    assert!(v(2, "a") > v(1, "z"));
    assert!(v(1, "b") > v(1, "a"));
    assert_eq!(
        version_of(&json!({"key": "x", "value": 1, "hlc": 9, "region": "eu"})),
        Some(v(9, "eu"))
    );
    assert_eq!(version_of(&json!({"key": "x", "value": 1})), None);
}
