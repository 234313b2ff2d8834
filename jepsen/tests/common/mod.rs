//! Helpers to build small histories by hand.
#![allow(dead_code)]

use ferrodyn_jepsen::checker::eventual::{EventualReads, ReadFilter};
use ferrodyn_jepsen::checker::linearizable::Linearizability;
use ferrodyn_jepsen::checker::set::SetChecker;
use ferrodyn_jepsen::checker::{CheckInput, CheckResult, Checker};
use ferrodyn_jepsen::history::{Func, History, OpType, Process};
use ferrodyn_jepsen::workload::register;
use serde_json::{json, Value};

/// A history builder: each record is 10 ns after the previous one.
#[derive(Default)]
pub struct B {
    pub h: History,
    t: u64,
}

impl B {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn rec(&mut self, ty: OpType, p: u64, f: Func, v: Value) -> u64 {
        self.t += 10;
        self.h.push(ty, Process::Client(p), f, v, self.t)
    }

    pub fn nemesis(&mut self, f: Func, fault: &str) -> u64 {
        self.t += 10;
        self.h.push(
            OpType::Info,
            Process::Nemesis,
            f,
            json!({ "fault": fault }),
            self.t,
        )
    }

    // Register writes.
    pub fn inv_w(&mut self, p: u64, k: &str, v: i64) -> u64 {
        self.rec(OpType::Invoke, p, Func::Write, register::write(k, json!(v)))
    }
    pub fn end_w(&mut self, ty: OpType, p: u64, k: &str, v: i64) -> u64 {
        self.rec(ty, p, Func::Write, register::write(k, json!(v)))
    }
    pub fn ok_w(&mut self, p: u64, k: &str, v: i64) -> u64 {
        self.end_w(OpType::Ok, p, k, v)
    }
    /// A complete ok write by `p`.
    pub fn w(&mut self, p: u64, k: &str, v: i64) -> u64 {
        let i = self.inv_w(p, k, v);
        self.ok_w(p, k, v);
        i
    }

    // Register reads; `v` = None reads "no item".
    pub fn inv_r(&mut self, p: u64, k: &str) -> u64 {
        self.rec(OpType::Invoke, p, Func::Read, register::read(k))
    }
    pub fn ok_r(&mut self, p: u64, k: &str, v: Option<i64>) -> u64 {
        self.rec(
            OpType::Ok,
            p,
            Func::Read,
            register::read_ok(k, v.map_or(Value::Null, |v| json!(v)), true),
        )
    }
    /// A complete ok read by `p`.
    pub fn r(&mut self, p: u64, k: &str, v: Option<i64>) -> u64 {
        let i = self.inv_r(p, k);
        self.ok_r(p, k, v);
        i
    }
    pub fn inv_er(&mut self, p: u64, k: &str) -> u64 {
        self.rec(OpType::Invoke, p, Func::Read, register::read_eventual(k))
    }
    pub fn ok_er(&mut self, p: u64, k: &str, v: Option<i64>) -> u64 {
        self.rec(
            OpType::Ok,
            p,
            Func::Read,
            register::read_ok(k, v.map_or(Value::Null, |v| json!(v)), false),
        )
    }
    /// A complete eventually consistent read by `p`.
    pub fn er(&mut self, p: u64, k: &str, v: Option<i64>) -> u64 {
        let i = self.inv_er(p, k);
        self.ok_er(p, k, v);
        i
    }

    // Compare-and-set; `e` = None expects "no item".
    pub fn inv_cas(&mut self, p: u64, k: &str, e: Option<i64>, n: i64) -> u64 {
        let e = e.map_or(Value::Null, |e| json!(e));
        self.rec(OpType::Invoke, p, Func::Cas, register::cas(k, e, json!(n)))
    }
    pub fn end_cas(&mut self, ty: OpType, p: u64, k: &str, e: Option<i64>, n: i64) -> u64 {
        let e = e.map_or(Value::Null, |e| json!(e));
        self.rec(ty, p, Func::Cas, register::cas(k, e, json!(n)))
    }

    // Set.
    pub fn inv_add(&mut self, p: u64, e: i64) -> u64 {
        self.rec(OpType::Invoke, p, Func::Add, json!(e))
    }
    pub fn end_add(&mut self, ty: OpType, p: u64, e: i64) -> u64 {
        self.rec(ty, p, Func::Add, json!(e))
    }
    pub fn add(&mut self, ty: OpType, p: u64, e: i64) -> u64 {
        let i = self.inv_add(p, e);
        self.end_add(ty, p, e);
        i
    }
    pub fn final_read(&mut self, p: u64, elements: &[i64]) -> u64 {
        let i = self.rec(OpType::Invoke, p, Func::FinalRead, Value::Null);
        self.rec(OpType::Ok, p, Func::FinalRead, json!(elements));
        i
    }
}

pub fn run(checker: &dyn Checker, h: &History) -> CheckResult {
    let input = CheckInput::new(h).expect("well-formed history");
    let r = checker.check(&input).expect("checker runs");
    // Every result must serialize (it goes to results.json).
    serde_json::to_string(&r).expect("serializes");
    r
}

pub fn lin(h: &History) -> CheckResult {
    run(&Linearizability::default(), h)
}

pub fn set(h: &History) -> CheckResult {
    run(&SetChecker, h)
}

pub fn eventual(h: &History) -> CheckResult {
    run(&EventualReads::default(), h)
}

pub fn eventual_all(h: &History) -> CheckResult {
    run(
        &EventualReads {
            reads: ReadFilter::All,
        },
        h,
    )
}

pub fn stat(r: &CheckResult, name: &str) -> Value {
    r.stats.get(name).cloned().unwrap_or(Value::Null)
}
