//! The `value` conventions of each workload, with constructors for the harness and parsers for
//! the checkers.
//!
//! **Register** (`--workload register`, checked by
//! [`Linearizability`](crate::checker::linearizable::Linearizability); and `--workload eventual`,
//! checked by [`EventualReads`](crate::checker::eventual::EventualReads)). Keys are strings,
//! values any JSON scalar; `null` means "no item". Every written value must be unique per key
//! (the harness should use a counter), which makes reads attributable to one write.
//!
//! | f | invoke value | ok value | fail means |
//! |---|---|---|---|
//! | `read` | `{"key": K}` (+ `"consistent": false` for an eventually consistent read) | `{"key": K, "value": V}` | nothing happened |
//! | `write` | `{"key": K, "value": V}` | same | the put was certainly not applied |
//! | `cas` | `{"key": K, "expected": E, "new": N}` | same | the condition did not hold, nothing written |
//!
//! A `cas` is a conditional put: `ok` means the item held `E` and now holds `N`. `E` = `null` means
//! "item absent" (`attribute_not_exists`). A read's `"consistent"` flag defaults to `true`;
//! linearizability ignores reads with `"consistent": false`.
//!
//! **Set** (`--workload set`, checked by [`SetChecker`](crate::checker::set::SetChecker)).
//!
//! | f | invoke value | ok value |
//! |---|---|---|
//! | `add` | the element `E` (unique, any JSON scalar) | `E` |
//! | `final-read` | `null` | array of every element present, read with strong consistency after the nemesis stopped and the cluster healed |

use serde_json::{json, Value};

use crate::history::{Func, OpPair, Outcome};

/// Constructors for register values.
pub mod register {
    use super::*;

    /// Invoke value of a strongly consistent read.
    pub fn read(key: &str) -> Value {
        json!({ "key": key })
    }

    /// Invoke value of an eventually consistent read.
    pub fn read_eventual(key: &str) -> Value {
        json!({ "key": key, "consistent": false })
    }

    /// Ok value of a read that returned `value` (`Value::Null` for "no item").
    pub fn read_ok(key: &str, value: Value, consistent: bool) -> Value {
        if consistent {
            json!({ "key": key, "value": value })
        } else {
            json!({ "key": key, "value": value, "consistent": false })
        }
    }

    /// Invoke (and ok) value of a write.
    pub fn write(key: &str, value: Value) -> Value {
        json!({ "key": key, "value": value })
    }

    /// Invoke (and ok) value of a compare-and-set.
    pub fn cas(key: &str, expected: Value, new: Value) -> Value {
        json!({ "key": key, "expected": expected, "new": new })
    }
}

/// A register operation parsed from an [`OpPair`].
#[derive(Clone, Debug, PartialEq)]
pub enum RegisterOp {
    /// A read. `value` is what was read; `None` unless the read completed `ok`.
    Read {
        /// The key.
        key: String,
        /// The value read (`Some(Value::Null)` = no item).
        value: Option<Value>,
        /// `false` for an eventually consistent read.
        consistent: bool,
    },
    /// A write of `value`.
    Write {
        /// The key.
        key: String,
        /// The value written.
        value: Value,
    },
    /// A compare-and-set from `expected` to `new`.
    Cas {
        /// The key.
        key: String,
        /// The value required before.
        expected: Value,
        /// The value written.
        new: Value,
    },
}

impl RegisterOp {
    /// The key.
    pub fn key(&self) -> &str {
        match self {
            RegisterOp::Read { key, .. }
            | RegisterOp::Write { key, .. }
            | RegisterOp::Cas { key, .. } => key,
        }
    }

    /// The value this operation writes, if it writes.
    pub fn written(&self) -> Option<&Value> {
        match self {
            RegisterOp::Read { .. } => None,
            RegisterOp::Write { value, .. } => Some(value),
            RegisterOp::Cas { new, .. } => Some(new),
        }
    }
}

/// The key of a value object: a string, or the JSON text of any other scalar.
fn key_of(v: &Value) -> Result<String, String> {
    match v.get("key") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Null) | None => Err("missing \"key\"".into()),
        Some(other) => Ok(other.to_string()),
    }
}

/// Parses a register operation. Returns `Ok(None)` if `f` is not `read`/`write`/`cas`, and an
/// error message if the value does not follow the conventions above.
pub fn parse_register(pair: &OpPair) -> Result<Option<RegisterOp>, String> {
    let inv = &pair.invoke_value;
    let op = match pair.f {
        Func::Read => {
            let key = key_of(inv)?;
            let consistent = inv
                .get("consistent")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let value = if pair.outcome == Outcome::Ok {
                let done = pair
                    .complete_value
                    .as_ref()
                    .ok_or("ok read without completion value")?;
                if key_of(done)? != key {
                    return Err(format!(
                        "read of key {key:?} completed with a different key"
                    ));
                }
                Some(done.get("value").cloned().unwrap_or(Value::Null))
            } else {
                None
            };
            RegisterOp::Read {
                key,
                value,
                consistent,
            }
        }
        Func::Write => RegisterOp::Write {
            key: key_of(inv)?,
            value: inv.get("value").cloned().ok_or("write without \"value\"")?,
        },
        Func::Cas => RegisterOp::Cas {
            key: key_of(inv)?,
            expected: inv.get("expected").cloned().unwrap_or(Value::Null),
            new: inv.get("new").cloned().ok_or("cas without \"new\"")?,
        },
        _ => return Ok(None),
    };
    Ok(Some(op))
}

/// A canonical text form of a JSON value, usable as a map key (elements, register values).
pub fn canonical(v: &Value) -> String {
    v.to_string()
}
