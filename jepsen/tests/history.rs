//! History records, JSON lines, pairing and validation, fault intervals, the recorder.

mod common;

use std::sync::Arc;

use common::B;
use ferrodyn_jepsen::history::{
    Func, History, HistoryError, Op, OpType, Outcome, Process, Recorder,
};
use ferrodyn_jepsen::workload::{parse_register, register, RegisterOp};
use serde_json::json;

fn sample() -> History {
    let mut b = B::new();
    b.nemesis(Func::Start, "partition");
    b.inv_w(0, "x", 1);
    b.inv_r(1, "x");
    b.ok_r(1, "x", None);
    b.end_w(OpType::Info, 0, "x", 1);
    b.nemesis(Func::Stop, "partition");
    b.inv_cas(2, "x", Some(1), 2);
    b.end_cas(OpType::Fail, 2, "x", Some(1), 2);
    b.rec(
        OpType::Invoke,
        3,
        Func::Other("custom-op".into()),
        json!([1, "two", {"three": 3.5}]),
    );
    let mut h = b.h;
    let ops: Vec<Op> = h
        .ops()
        .iter()
        .cloned()
        .map(|mut o| {
            if o.op_type == OpType::Fail {
                o.error = Some("ConditionalCheckFailed".into());
            }
            o
        })
        .collect();
    h = History::from_ops(ops);
    h
}

#[test]
fn jsonl_round_trip_in_memory_and_on_disk() {
    let h = sample();
    let text = h.to_jsonl();
    assert_eq!(text.lines().count(), h.len());
    assert_eq!(History::from_jsonl(&text).unwrap(), h);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    h.write_jsonl(&path).unwrap();
    assert_eq!(History::read_jsonl(&path).unwrap(), h);
}

#[test]
fn jsonl_format_is_jepsen_style() {
    let h = sample();
    let lines: Vec<serde_json::Value> = h
        .to_jsonl()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["process"], json!("nemesis"));
    assert_eq!(lines[0]["type"], json!("info"));
    assert_eq!(lines[0]["f"], json!("start"));
    assert_eq!(lines[1]["process"], json!(0));
    assert_eq!(lines[1]["type"], json!("invoke"));
    assert_eq!(lines[1]["f"], json!("write"));
    assert_eq!(lines[1]["value"], json!({"key": "x", "value": 1}));
    assert_eq!(lines[1]["index"], json!(1));
    assert!(lines[1]["time"].is_u64());
    assert!(lines[1].get("error").is_none());
    assert_eq!(lines[7]["error"], json!("ConditionalCheckFailed"));
    assert_eq!(lines[8]["f"], json!("custom-op"));
}

#[test]
fn parses_handwritten_lines() {
    let text = r#"
{"index":0,"type":"invoke","process":5,"f":"final-read","time":1}

{"index":1,"type":"ok","process":"5","f":"final-read","value":[1,2],"time":2}
"#;
    let h = History::from_jsonl(text).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h.ops()[0].f, Func::FinalRead);
    assert_eq!(h.ops()[0].value, serde_json::Value::Null);
    assert_eq!(h.ops()[1].process, Process::Client(5));
    let err = History::from_jsonl(r#"{"index":0,"type":"bogus","process":1,"f":"read","time":1}"#)
        .unwrap_err();
    assert!(matches!(err, HistoryError::Parse { line: 1, .. }), "{err}");
    let err = History::from_jsonl(r#"{"index":0,"type":"ok","process":"x","f":"read","time":1}"#)
        .unwrap_err();
    assert!(matches!(err, HistoryError::Parse { .. }));
}

#[test]
fn pairs_invocations_with_completions() {
    let h = sample();
    let pairs = h.pairs().unwrap();
    assert_eq!(pairs.len(), 4);
    let w = &pairs[0];
    assert_eq!((w.process, w.outcome), (0, Outcome::Info));
    assert_eq!((w.invoke_index, w.complete_index), (1, Some(4)));
    assert_eq!(
        w.return_index(),
        u64::MAX,
        "info may take effect any time later"
    );
    let r = &pairs[1];
    assert_eq!((r.outcome, r.complete_index), (Outcome::Ok, Some(3)));
    assert_eq!(r.value(), &json!({"key": "x", "value": null}));
    assert_eq!(r.return_index(), 3);
    let c = &pairs[2];
    assert_eq!(c.outcome, Outcome::Fail);
    assert_eq!(c.error.as_deref(), Some("ConditionalCheckFailed"));
    let pending = &pairs[3];
    assert_eq!(pending.outcome, Outcome::Info);
    assert_eq!(pending.complete_index, None);
    assert!(r.precedes(c));
    assert!(!w.precedes(c), "an info op precedes nothing");
    match parse_register(c).unwrap().unwrap() {
        RegisterOp::Cas { key, expected, new } => {
            assert_eq!((key.as_str(), expected, new), ("x", json!(1), json!(2)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(parse_register(pending).unwrap(), None);
}

#[test]
fn process_reused_after_info_is_an_error() {
    let mut b = B::new();
    b.inv_w(0, "x", 1);
    b.end_w(OpType::Info, 0, "x", 1);
    let reuse = b.inv_r(0, "x");
    b.ok_r(0, "x", Some(1));
    assert_eq!(
        b.h.validate().unwrap_err(),
        HistoryError::ProcessReused {
            index: reuse,
            process: 0,
            info_index: 1
        }
    );
}

#[test]
fn structural_errors_are_reported() {
    let mut b = B::new();
    b.inv_w(0, "x", 1);
    b.inv_w(0, "x", 2);
    assert!(matches!(
        b.h.validate(),
        Err(HistoryError::ConcurrentInvoke {
            index: 1,
            pending: 0,
            ..
        })
    ));

    let mut b = B::new();
    b.ok_w(0, "x", 1);
    assert!(matches!(
        b.h.validate(),
        Err(HistoryError::CompletionWithoutInvoke {
            index: 0,
            process: 0
        })
    ));

    let mut b = B::new();
    b.inv_w(0, "x", 1);
    b.ok_r(0, "x", Some(1));
    assert!(matches!(
        b.h.validate(),
        Err(HistoryError::MismatchedF { .. })
    ));

    let mut b = B::new();
    b.rec(OpType::Invoke, 0, Func::Read, register::read("x"));
    b.h.push(OpType::Ok, Process::Nemesis, Func::Start, json!({}), 100);
    assert!(matches!(
        b.h.validate(),
        Err(HistoryError::BadNemesisOp { index: 1 })
    ));

    let mut ops = sample().ops().to_vec();
    ops[3].index = 7;
    assert!(matches!(
        History::from_ops(ops).validate(),
        Err(HistoryError::BadIndex {
            position: 3,
            index: 7
        })
    ));

    let mut ops = sample().ops().to_vec();
    ops[3].time = 0;
    assert!(matches!(
        History::from_ops(ops).validate(),
        Err(HistoryError::TimeWentBackwards { index: 3, .. })
    ));

    assert!(sample().validate().is_ok());
}

#[test]
fn fault_intervals_pair_start_and_stop_by_fault() {
    let mut b = B::new();
    b.nemesis(Func::Start, "partition");
    b.nemesis(Func::Start, "kill");
    b.w(0, "x", 1);
    b.nemesis(Func::Stop, "partition");
    b.nemesis(Func::Stop, "pause"); // never started: ignored
    b.nemesis(Func::Start, "partition");
    let iv = b.h.fault_intervals();
    assert_eq!(iv.len(), 3);
    assert_eq!(iv[0].fault, "partition");
    assert_eq!((iv[0].start_index, iv[0].stop_index), (0, Some(4)));
    assert_eq!(iv[0].stop_time, Some(50));
    assert_eq!(iv[1].fault, "kill");
    assert_eq!(iv[1].stop_index, None, "kill still active at the end");
    assert_eq!((iv[2].start_index, iv[2].stop_index), (6, None));
    assert_eq!(iv[1].value, json!({"fault": "kill"}));
}

#[test]
fn recorder_from_many_threads_gives_a_valid_history() {
    let rec = Arc::new(Recorder::new());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let rec = Arc::clone(&rec);
            std::thread::spawn(move || {
                let mut p = rec.fresh_process();
                for i in 0..200 {
                    let key = format!("k{t}");
                    let v = json!(t * 1000 + i);
                    rec.invoke(p, Func::Write, register::write(&key, v.clone()));
                    if i % 50 == 49 {
                        rec.complete(
                            p,
                            OpType::Info,
                            Func::Write,
                            register::write(&key, v),
                            Some("timeout".into()),
                        );
                        p = rec.fresh_process();
                    } else {
                        rec.complete(p, OpType::Ok, Func::Write, register::write(&key, v), None);
                    }
                    if i == 100 && t == 0 {
                        rec.nemesis(Func::Start, json!({"fault": "pause", "nodes": [2]}));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let snapshot_len = rec.snapshot().len();
    let rec = Arc::into_inner(rec).unwrap();
    let h = rec.into_history();
    assert_eq!(h.len(), snapshot_len);
    assert_eq!(h.len(), 4 * 200 * 2 + 1);
    let pairs = h.pairs().expect("recorder output is well formed");
    assert_eq!(pairs.len(), 800);
    assert_eq!(
        pairs.iter().filter(|p| p.outcome == Outcome::Info).count(),
        16
    );
    assert!(h.ops().windows(2).all(|w| w[0].time <= w[1].time));
    assert_eq!(h.fault_intervals().len(), 1);
    assert_eq!(h.ops().iter().filter(|o| o.error.is_some()).count(), 16);
}
