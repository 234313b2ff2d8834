//! `ferrodyn-jepsen`: a Jepsen-style consistency suite for Ferrodyn.
//!
//! Layout:
//! - [`history`]: operations as Jepsen records them (invoke / ok / fail / info), nemesis
//!   records, JSON-lines I/O (`DIR/history.jsonl`), invocation/completion pairing and the
//!   thread-safe [`history::Recorder`] the harness records through.
//! - [`workload`]: the `value` conventions of the register, eventual and set workloads, with
//!   constructors and parsers.
//! - [`checker`]: verdicts, results and reports (`DIR/results.json`), the [`checker::Checker`]
//!   trait, and the checkers: linearizability, set, eventual reads, and the interface of the
//!   future multi-region convergence checker.
//!
//! Typical use by a harness:
//!
//! ```
//! use ferrodyn_jepsen::checker::{check_history, linearizable::Linearizability, Checker};
//! use ferrodyn_jepsen::history::{Func, OpType, Recorder};
//! use ferrodyn_jepsen::workload::register;
//! use serde_json::json;
//!
//! let rec = Recorder::new();
//! let p = rec.fresh_process();
//! rec.invoke(p, Func::Write, register::write("k", json!(1)));
//! rec.complete(p, OpType::Ok, Func::Write, register::write("k", json!(1)), None);
//! rec.invoke(p, Func::Read, register::read("k"));
//! rec.complete(p, OpType::Ok, Func::Read, register::read_ok("k", json!(1), true), None);
//! let history = rec.into_history();
//!
//! let lin = Linearizability::default();
//! let report = check_history(&history, &[&lin as &dyn Checker]);
//! assert_eq!(report.exit_code(), 0);
//! ```

#![deny(missing_docs)]

pub mod checker;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod proxy;
pub mod run;
pub mod timeline;
pub mod workload;
