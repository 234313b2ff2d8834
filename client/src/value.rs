//! Attribute values and items: DynamoDB's ten types and their three representations.
//!
//! [`AttributeValue`] is the one in-memory form. It converts to and from
//! - DynamoDB JSON (`{"S": "x"}`, `{"N": "1"}`, ...), which the CLI and HTTP front ends speak;
//! - the protobuf messages of the wire API ([`crate::proto`]);
//! - serde (externally tagged, so it also round-trips through bincode for storage).
//!
//! Both decoders enforce DynamoDB's value rules (exactly one type, `NULL` is true, sets are
//! non-empty without duplicates, numbers within limits) and report the offending attribute
//! by path (`a.b[2]`). Sizes follow DynamoDB's accounting, which decides the 400 KB item
//! limit, and [`AttributeValue::key_bytes`] gives the canonical bytes of key values.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::hash::Hash;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::error::WireError;
use crate::number::Number;
use crate::proto;
use crate::proto::attribute_value::Value as ProtoValue;

/// One DynamoDB attribute value.
///
/// Sets keep their elements in the order given; decoders guarantee they are non-empty and
/// free of duplicates (number sets compared numerically).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AttributeValue {
    /// String.
    S(String),
    /// Number.
    N(Number),
    /// Binary.
    B(Vec<u8>),
    /// Boolean.
    Bool(bool),
    /// Null (DynamoDB's `{"NULL": true}`).
    Null,
    /// List of values of any types.
    L(Vec<AttributeValue>),
    /// Map from names to values of any types.
    M(BTreeMap<String, AttributeValue>),
    /// String set.
    Ss(Vec<String>),
    /// Number set.
    Ns(Vec<Number>),
    /// Binary set.
    Bs(Vec<Vec<u8>>),
}

/// An item: attribute names to values (a key is an item holding only the key attributes).
/// A `BTreeMap` so that iteration, serialization and hashing of items are deterministic.
pub type Item = BTreeMap<String, AttributeValue>;

/// A value that breaks DynamoDB's rules, with a message naming the attribute path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValueError {
    /// What is wrong and where, for a human.
    pub message: String,
}

impl ValueError {
    /// An error about the value at `path` (empty path: the value itself).
    fn at(path: &str, what: impl fmt::Display) -> Self {
        let message = if path.is_empty() {
            what.to_string()
        } else {
            format!("attribute '{path}': {what}")
        };
        ValueError { message }
    }
}

/// An invalid value is the caller's fault: a `ValidationException`.
impl From<ValueError> for WireError {
    fn from(e: ValueError) -> Self {
        WireError::validation(e.message)
    }
}

/// Path of map entry `key` under `path`.
fn child_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Path of list element `index` under `path`.
fn child_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// Checks DynamoDB's set rules: at least one element, no duplicates.
fn check_set<T: Hash + Eq>(items: &[T], path: &str, kind: &str) -> Result<(), ValueError> {
    if items.is_empty() {
        return Err(ValueError::at(path, format!("{kind} must not be empty")));
    }
    let mut seen = HashSet::with_capacity(items.len());
    if !items.iter().all(|x| seen.insert(x)) {
        return Err(ValueError::at(path, format!("{kind} contains duplicates")));
    }
    Ok(())
}

/// Parses a number, naming the attribute on failure.
fn parse_number(text: &str, path: &str) -> Result<Number, ValueError> {
    Number::parse(text).map_err(|e| ValueError::at(path, e))
}

/// The JSON string of a type key, or an error naming the type.
fn json_str<'a>(v: &'a Json, path: &str, tag: &str) -> Result<&'a str, ValueError> {
    v.as_str()
        .ok_or_else(|| ValueError::at(path, format!("{tag} value must be a JSON string")))
}

/// The JSON array of a type key, or an error naming the type.
fn json_array<'a>(v: &'a Json, path: &str, tag: &str) -> Result<&'a [Json], ValueError> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| ValueError::at(path, format!("{tag} value must be a JSON array")))
}

/// Decodes standard base64, naming the attribute on failure.
fn decode_base64(text: &str, path: &str) -> Result<Vec<u8>, ValueError> {
    BASE64
        .decode(text)
        .map_err(|e| ValueError::at(path, format!("invalid base64 in binary value: {e}")))
}

impl AttributeValue {
    /// DynamoDB's name of this value's type: `S`, `N`, `B`, `BOOL`, `NULL`, `L`, `M`, `SS`,
    /// `NS` or `BS` (used in JSON and in error messages).
    pub fn type_name(&self) -> &'static str {
        match self {
            AttributeValue::S(_) => "S",
            AttributeValue::N(_) => "N",
            AttributeValue::B(_) => "B",
            AttributeValue::Bool(_) => "BOOL",
            AttributeValue::Null => "NULL",
            AttributeValue::L(_) => "L",
            AttributeValue::M(_) => "M",
            AttributeValue::Ss(_) => "SS",
            AttributeValue::Ns(_) => "NS",
            AttributeValue::Bs(_) => "BS",
        }
    }

    /// Parses DynamoDB JSON such as `{"S": "x"}` or `{"L": [{"N": "1"}]}`, enforcing the
    /// value rules.
    pub fn from_json(v: &Json) -> Result<Self, ValueError> {
        Self::from_json_at(v, "")
    }

    /// [`AttributeValue::from_json`] for the value at `path`.
    fn from_json_at(v: &Json, path: &str) -> Result<Self, ValueError> {
        let obj = v.as_object().ok_or_else(|| {
            ValueError::at(
                path,
                "attribute value must be a JSON object with one type key, such as {\"S\": \"x\"}",
            )
        })?;
        let mut entries = obj.iter();
        let (tag, inner) = match (entries.next(), entries.next()) {
            (Some(entry), None) => entry,
            _ => {
                return Err(ValueError::at(
                    path,
                    format!(
                        "attribute value must have exactly one type key, found {}",
                        obj.len()
                    ),
                ))
            }
        };
        Ok(match tag.as_str() {
            "S" => AttributeValue::S(json_str(inner, path, tag)?.to_owned()),
            "N" => AttributeValue::N(parse_number(json_str(inner, path, tag)?, path)?),
            "B" => AttributeValue::B(decode_base64(json_str(inner, path, tag)?, path)?),
            "BOOL" => AttributeValue::Bool(
                inner
                    .as_bool()
                    .ok_or_else(|| ValueError::at(path, "BOOL value must be true or false"))?,
            ),
            "NULL" => match inner {
                Json::Bool(true) => AttributeValue::Null,
                _ => return Err(ValueError::at(path, "NULL value must be true")),
            },
            "L" => AttributeValue::L(
                json_array(inner, path, tag)?
                    .iter()
                    .enumerate()
                    .map(|(i, x)| Self::from_json_at(x, &child_index(path, i)))
                    .collect::<Result<_, _>>()?,
            ),
            "M" => AttributeValue::M(
                inner
                    .as_object()
                    .ok_or_else(|| ValueError::at(path, "M value must be a JSON object"))?
                    .iter()
                    .map(|(k, x)| Ok((k.clone(), Self::from_json_at(x, &child_key(path, k))?)))
                    .collect::<Result<_, ValueError>>()?,
            ),
            "SS" => {
                let set = json_array(inner, path, tag)?
                    .iter()
                    .map(|x| json_str(x, path, "SS element").map(str::to_owned))
                    .collect::<Result<Vec<_>, _>>()?;
                check_set(&set, path, "string set")?;
                AttributeValue::Ss(set)
            }
            "NS" => {
                let set = json_array(inner, path, tag)?
                    .iter()
                    .map(|x| parse_number(json_str(x, path, "NS element")?, path))
                    .collect::<Result<Vec<_>, _>>()?;
                check_set(&set, path, "number set")?;
                AttributeValue::Ns(set)
            }
            "BS" => {
                let set = json_array(inner, path, tag)?
                    .iter()
                    .map(|x| decode_base64(json_str(x, path, "BS element")?, path))
                    .collect::<Result<Vec<_>, _>>()?;
                check_set(&set, path, "binary set")?;
                AttributeValue::Bs(set)
            }
            other => {
                return Err(ValueError::at(
                    path,
                    format!(
                        "unknown attribute type '{other}' \
                         (expected one of S, N, B, BOOL, NULL, L, M, SS, NS, BS)"
                    ),
                ))
            }
        })
    }

    /// DynamoDB JSON of this value; numbers in canonical text, binaries in standard base64.
    pub fn to_json(&self) -> Json {
        let inner = match self {
            AttributeValue::S(s) => Json::String(s.clone()),
            AttributeValue::N(n) => Json::String(n.to_string()),
            AttributeValue::B(b) => Json::String(BASE64.encode(b)),
            AttributeValue::Bool(b) => Json::Bool(*b),
            AttributeValue::Null => Json::Bool(true),
            AttributeValue::L(l) => Json::Array(l.iter().map(Self::to_json).collect()),
            AttributeValue::M(m) => Json::Object(item_to_json_map(m)),
            AttributeValue::Ss(ss) => ss.iter().map(|s| Json::String(s.clone())).collect(),
            AttributeValue::Ns(ns) => ns.iter().map(|n| Json::String(n.to_string())).collect(),
            AttributeValue::Bs(bs) => bs.iter().map(|b| Json::String(BASE64.encode(b))).collect(),
        };
        let mut obj = Map::with_capacity(1);
        obj.insert(self.type_name().to_owned(), inner);
        Json::Object(obj)
    }

    /// The wire form of this value.
    pub fn to_proto(&self) -> proto::AttributeValue {
        let value = match self {
            AttributeValue::S(s) => ProtoValue::S(s.clone()),
            AttributeValue::N(n) => ProtoValue::N(n.to_string()),
            AttributeValue::B(b) => ProtoValue::B(b.clone()),
            AttributeValue::Bool(b) => ProtoValue::Bool(*b),
            AttributeValue::Null => ProtoValue::Null(true),
            AttributeValue::L(l) => ProtoValue::L(proto::ListValue {
                values: l.iter().map(Self::to_proto).collect(),
            }),
            AttributeValue::M(m) => ProtoValue::M(proto::MapValue {
                fields: m.iter().map(|(k, v)| (k.clone(), v.to_proto())).collect(),
            }),
            AttributeValue::Ss(ss) => ProtoValue::Ss(proto::StringSet { values: ss.clone() }),
            AttributeValue::Ns(ns) => ProtoValue::Ns(proto::NumberSet {
                values: ns.iter().map(Number::to_string).collect(),
            }),
            AttributeValue::Bs(bs) => ProtoValue::Bs(proto::BinarySet { values: bs.clone() }),
        };
        proto::AttributeValue { value: Some(value) }
    }

    /// Reads a value off the wire, enforcing the same rules as [`AttributeValue::from_json`].
    pub fn from_proto(p: proto::AttributeValue) -> Result<Self, ValueError> {
        Self::from_proto_at(p, "")
    }

    /// [`AttributeValue::from_proto`] for the value at `path`.
    fn from_proto_at(p: proto::AttributeValue, path: &str) -> Result<Self, ValueError> {
        let value = p
            .value
            .ok_or_else(|| ValueError::at(path, "attribute value has no type"))?;
        Ok(match value {
            ProtoValue::S(s) => AttributeValue::S(s),
            ProtoValue::N(n) => AttributeValue::N(parse_number(&n, path)?),
            ProtoValue::B(b) => AttributeValue::B(b),
            ProtoValue::Bool(b) => AttributeValue::Bool(b),
            ProtoValue::Null(true) => AttributeValue::Null,
            ProtoValue::Null(false) => return Err(ValueError::at(path, "NULL value must be true")),
            ProtoValue::L(l) => AttributeValue::L(
                l.values
                    .into_iter()
                    .enumerate()
                    .map(|(i, x)| Self::from_proto_at(x, &child_index(path, i)))
                    .collect::<Result<_, _>>()?,
            ),
            ProtoValue::M(m) => AttributeValue::M(
                m.fields
                    .into_iter()
                    .map(|(k, x)| {
                        let v = Self::from_proto_at(x, &child_key(path, &k))?;
                        Ok((k, v))
                    })
                    .collect::<Result<_, ValueError>>()?,
            ),
            ProtoValue::Ss(ss) => {
                check_set(&ss.values, path, "string set")?;
                AttributeValue::Ss(ss.values)
            }
            ProtoValue::Ns(ns) => {
                let set = ns
                    .values
                    .iter()
                    .map(|n| parse_number(n, path))
                    .collect::<Result<Vec<_>, _>>()?;
                check_set(&set, path, "number set")?;
                AttributeValue::Ns(set)
            }
            ProtoValue::Bs(bs) => {
                check_set(&bs.values, path, "binary set")?;
                AttributeValue::Bs(bs.values)
            }
        })
    }

    /// Size in bytes by DynamoDB's accounting, which the 400 KB item limit is measured in:
    /// strings and binaries by length, numbers about one byte per two significant digits
    /// plus one, booleans and nulls one byte, lists and maps three bytes plus one per
    /// element (and map keys by length), sets the sum of their elements.
    pub fn size(&self) -> usize {
        match self {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => number_size(n),
            AttributeValue::B(b) => b.len(),
            AttributeValue::Bool(_) | AttributeValue::Null => 1,
            AttributeValue::L(l) => 3 + l.iter().map(|v| v.size() + 1).sum::<usize>(),
            AttributeValue::M(m) => {
                3 + m.iter().map(|(k, v)| k.len() + v.size() + 1).sum::<usize>()
            }
            AttributeValue::Ss(ss) => ss.iter().map(String::len).sum(),
            AttributeValue::Ns(ns) => ns.iter().map(number_size).sum(),
            AttributeValue::Bs(bs) => bs.iter().map(Vec::len).sum(),
        }
    }

    /// Canonical bytes of a key value, used for partition hashing and storage keys: UTF-8
    /// for `S`, raw bytes for `B`, [`Number::order_preserving_bytes`] for `N`, so that
    /// storage order is DynamoDB's sort order. `None` for types that cannot be keys.
    pub fn key_bytes(&self) -> Option<Vec<u8>> {
        match self {
            AttributeValue::S(s) => Some(s.as_bytes().to_vec()),
            AttributeValue::B(b) => Some(b.clone()),
            AttributeValue::N(n) => Some(n.order_preserving_bytes()),
            _ => None,
        }
    }
}

/// DynamoDB's size of a number: one byte per two significant digits, plus one.
fn number_size(n: &Number) -> usize {
    n.significant_digits().div_ceil(2) + 1
}

/// Attribute map of DynamoDB JSON (shared by items and `M` values).
fn item_to_json_map(item: &BTreeMap<String, AttributeValue>) -> Map<String, Json> {
    item.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()
}

/// Parses an item in DynamoDB JSON: an object mapping non-empty attribute names to values.
pub fn item_from_json(v: &Json) -> Result<Item, ValueError> {
    let obj = v.as_object().ok_or_else(|| ValueError {
        message: "item must be a JSON object mapping attribute names to attribute values".into(),
    })?;
    obj.iter()
        .map(|(name, x)| {
            check_attribute_name(name)?;
            Ok((name.clone(), AttributeValue::from_json_at(x, name)?))
        })
        .collect()
}

/// DynamoDB JSON of an item.
pub fn item_to_json(item: &Item) -> Json {
    Json::Object(item_to_json_map(item))
}

/// The wire form of an item.
pub fn item_to_proto(item: &Item) -> proto::Item {
    proto::Item {
        attributes: item
            .iter()
            .map(|(k, v)| (k.clone(), v.to_proto()))
            .collect(),
    }
}

/// Reads an item off the wire, enforcing the same rules as [`item_from_json`].
pub fn item_from_proto(p: proto::Item) -> Result<Item, ValueError> {
    p.attributes
        .into_iter()
        .map(|(name, x)| {
            check_attribute_name(&name)?;
            let v = AttributeValue::from_proto_at(x, &name)?;
            Ok((name, v))
        })
        .collect()
}

/// Top-level attribute names must not be empty.
fn check_attribute_name(name: &str) -> Result<(), ValueError> {
    if name.is_empty() {
        return Err(ValueError {
            message: "attribute names must not be empty".into(),
        });
    }
    Ok(())
}

/// DynamoDB's size of an item: for each attribute, its name's length plus its value's size.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.size()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn num(s: &str) -> Number {
        Number::parse(s).unwrap()
    }

    /// One value of every type, nested ones included.
    fn samples() -> Vec<AttributeValue> {
        use AttributeValue::*;
        vec![
            S("hello".into()),
            S(String::new()),
            S("é✓".into()),
            N(num("-1.5E+10")),
            N(num("0")),
            B(vec![0, 1, 255]),
            B(Vec::new()),
            Bool(true),
            Bool(false),
            Null,
            L(vec![]),
            L(vec![S("a".into()), N(num("1")), L(vec![Null])]),
            M(BTreeMap::new()),
            M(BTreeMap::from([
                ("x".to_owned(), Bool(true)),
                (
                    "y".to_owned(),
                    M(BTreeMap::from([("z".to_owned(), Ss(vec!["q".into()]))])),
                ),
            ])),
            Ss(vec!["b".into(), "a".into(), "".into()]),
            Ns(vec![num("1"), num("-2.5"), num("1E+100")]),
            Bs(vec![vec![1], vec![2, 3], vec![]]),
        ]
    }

    #[test]
    fn json_round_trips_every_type() {
        for v in samples() {
            let j = v.to_json();
            assert_eq!(j.as_object().unwrap().len(), 1);
            assert!(j.get(v.type_name()).is_some());
            assert_eq!(AttributeValue::from_json(&j).unwrap(), v, "{j}");
        }
    }

    #[test]
    fn json_shapes() {
        use AttributeValue::*;
        assert_eq!(S("x".into()).to_json(), json!({"S": "x"}));
        assert_eq!(N(num("1.50")).to_json(), json!({"N": "1.5"}));
        assert_eq!(B(b"hi".to_vec()).to_json(), json!({"B": "aGk="}));
        assert_eq!(Bool(true).to_json(), json!({"BOOL": true}));
        assert_eq!(Null.to_json(), json!({"NULL": true}));
        assert_eq!(L(vec![Null]).to_json(), json!({"L": [{"NULL": true}]}));
        assert_eq!(
            M(BTreeMap::from([("a".into(), N(num("2")))])).to_json(),
            json!({"M": {"a": {"N": "2"}}})
        );
        assert_eq!(Ss(vec!["a".into()]).to_json(), json!({"SS": ["a"]}));
        assert_eq!(Ns(vec![num("10E-1")]).to_json(), json!({"NS": ["1"]}));
        assert_eq!(Bs(vec![b"hi".to_vec()]).to_json(), json!({"BS": ["aGk="]}));
        assert_eq!(
            AttributeValue::from_json(&json!({"N": "10E-1"})).unwrap(),
            N(num("1"))
        );
    }

    fn json_err(v: Json) -> String {
        AttributeValue::from_json(&v).unwrap_err().message
    }

    #[test]
    fn json_rejects_invalid_values() {
        let cases: Vec<(Json, &str)> = vec![
            (json!("x"), "must be a JSON object"),
            (json!({}), "exactly one type key, found 0"),
            (json!({"S": "a", "N": "1"}), "exactly one type key, found 2"),
            (json!({"X": "a"}), "unknown attribute type 'X'"),
            (json!({"s": "a"}), "unknown attribute type 's'"),
            (json!({"S": 1}), "S value must be a JSON string"),
            (json!({"N": 1}), "N value must be a JSON string"),
            (json!({"N": "abc"}), "Invalid number: 'abc'"),
            (json!({"N": "1E+126"}), "Number overflow"),
            (json!({"B": "!!"}), "invalid base64"),
            (json!({"BOOL": "true"}), "BOOL value must be true or false"),
            (json!({"NULL": false}), "NULL value must be true"),
            (json!({"NULL": "true"}), "NULL value must be true"),
            (json!({"L": {}}), "L value must be a JSON array"),
            (json!({"M": []}), "M value must be a JSON object"),
            (json!({"SS": []}), "string set must not be empty"),
            (json!({"SS": ["a", "a"]}), "string set contains duplicates"),
            (
                json!({"SS": ["a", 1]}),
                "SS element value must be a JSON string",
            ),
            (json!({"SS": "a"}), "SS value must be a JSON array"),
            (json!({"NS": []}), "number set must not be empty"),
            (
                json!({"NS": ["1", "1.0"]}),
                "number set contains duplicates",
            ),
            (json!({"NS": ["1", "x"]}), "Invalid number: 'x'"),
            (json!({"NS": [1]}), "NS element value must be a JSON string"),
            (json!({"BS": []}), "binary set must not be empty"),
            (
                json!({"BS": ["aGk=", "aGk="]}),
                "binary set contains duplicates",
            ),
            (json!({"BS": ["%"]}), "invalid base64"),
        ];
        for (input, want) in cases {
            let got = json_err(input.clone());
            assert!(got.contains(want), "{input}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn errors_name_the_attribute_path() {
        let item = json!({"tags": {"SS": ["a", "a"]}});
        assert_eq!(
            item_from_json(&item).unwrap_err().message,
            "attribute 'tags': string set contains duplicates"
        );
        let item = json!({"a": {"M": {"b": {"L": [{"S": "x"}, {"N": "1"}, {"N": "y"}]}}}});
        assert_eq!(
            item_from_json(&item).unwrap_err().message,
            "attribute 'a.b[2]': Invalid number: 'y'"
        );
        let item = json!({"a": {"L": [{"NULL": false}]}});
        assert_eq!(
            item_from_json(&item).unwrap_err().message,
            "attribute 'a[0]': NULL value must be true"
        );
        let e: WireError = item_from_json(&json!({"n": {"N": ""}})).unwrap_err().into();
        assert_eq!(e.kind, crate::error::ErrorKind::Validation);
        assert_eq!(e.message, "attribute 'n': Invalid number: ''");
    }

    #[test]
    fn items_in_json() {
        let j = json!({"id": {"S": "u1"}, "n": {"N": "007"}, "tags": {"SS": ["x"]}});
        let item = item_from_json(&j).unwrap();
        assert_eq!(item.len(), 3);
        assert_eq!(item["n"], AttributeValue::N(num("7")));
        assert_eq!(
            item_to_json(&item),
            json!({"id": {"S": "u1"}, "n": {"N": "7"}, "tags": {"SS": ["x"]}})
        );
        assert_eq!(item_from_json(&json!({})).unwrap(), Item::new());
        assert!(item_from_json(&json!([]))
            .unwrap_err()
            .message
            .contains("item must be a JSON object"));
        assert_eq!(
            item_from_json(&json!({"": {"S": "x"}}))
                .unwrap_err()
                .message,
            "attribute names must not be empty"
        );
        assert!(item_from_json(&json!({"a": "x"}))
            .unwrap_err()
            .message
            .starts_with("attribute 'a': "));
    }

    #[test]
    fn proto_round_trips_every_type() {
        for v in samples() {
            let p = v.to_proto();
            assert_eq!(AttributeValue::from_proto(p).unwrap(), v);
        }
        let item: Item = samples()
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("a{i}"), v))
            .collect();
        let p = item_to_proto(&item);
        assert_eq!(p.attributes.len(), item.len());
        assert_eq!(item_from_proto(p).unwrap(), item);
    }

    #[test]
    fn proto_rejects_invalid_values() {
        let pv = |v: ProtoValue| proto::AttributeValue { value: Some(v) };
        let err = |p: proto::AttributeValue| AttributeValue::from_proto(p).unwrap_err().message;
        assert_eq!(
            err(proto::AttributeValue { value: None }),
            "attribute value has no type"
        );
        assert_eq!(err(pv(ProtoValue::Null(false))), "NULL value must be true");
        assert!(err(pv(ProtoValue::N("1e".into()))).contains("Invalid number: '1e'"));
        assert!(err(pv(ProtoValue::N("1".repeat(39)))).contains("38 significant digits"));
        assert!(err(pv(ProtoValue::N("1E-131".into()))).contains("underflow"));
        assert!(err(pv(ProtoValue::Ss(proto::StringSet { values: vec![] })))
            .contains("must not be empty"));
        assert!(err(pv(ProtoValue::Ss(proto::StringSet {
            values: vec!["a".into(), "a".into()]
        })))
        .contains("string set contains duplicates"));
        assert!(err(pv(ProtoValue::Ns(proto::NumberSet {
            values: vec!["2".into(), "2.00".into()]
        })))
        .contains("number set contains duplicates"));
        assert!(err(pv(ProtoValue::Ns(proto::NumberSet { values: vec![] })))
            .contains("number set must not be empty"));
        assert!(err(pv(ProtoValue::Bs(proto::BinarySet {
            values: vec![vec![1], vec![1]]
        })))
        .contains("binary set contains duplicates"));
        assert!(err(pv(ProtoValue::Bs(proto::BinarySet { values: vec![] })))
            .contains("binary set must not be empty"));
        let nested = pv(ProtoValue::M(proto::MapValue {
            fields: [(
                "b".to_owned(),
                pv(ProtoValue::L(proto::ListValue {
                    values: vec![
                        pv(ProtoValue::Bool(true)),
                        proto::AttributeValue { value: None },
                    ],
                })),
            )]
            .into(),
        }));
        let item = proto::Item {
            attributes: [("a".to_owned(), nested)].into(),
        };
        assert_eq!(
            item_from_proto(item).unwrap_err().message,
            "attribute 'a.b[1]': attribute value has no type"
        );
        let empty_name = proto::Item {
            attributes: [(String::new(), pv(ProtoValue::Bool(true)))].into(),
        };
        assert_eq!(
            item_from_proto(empty_name).unwrap_err().message,
            "attribute names must not be empty"
        );
    }

    #[test]
    fn sizes_follow_dynamodb() {
        use AttributeValue::*;
        assert_eq!(S("abc".into()).size(), 3);
        assert_eq!(S("é".into()).size(), 2);
        assert_eq!(S(String::new()).size(), 0);
        assert_eq!(N(num("0")).size(), 1);
        assert_eq!(N(num("7")).size(), 2);
        assert_eq!(N(num("12")).size(), 2);
        assert_eq!(N(num("123")).size(), 3);
        assert_eq!(N(num("1000000")).size(), 2);
        assert_eq!(N(num(&"9".repeat(38))).size(), 20);
        assert_eq!(B(vec![0; 10]).size(), 10);
        assert_eq!(Bool(false).size(), 1);
        assert_eq!(Null.size(), 1);
        assert_eq!(L(vec![]).size(), 3);
        assert_eq!(L(vec![S("ab".into()), Null]).size(), 3 + 3 + 2);
        assert_eq!(M(BTreeMap::new()).size(), 3);
        assert_eq!(
            M(BTreeMap::from([("key".into(), S("ab".into()))])).size(),
            3 + 3 + 2 + 1
        );
        assert_eq!(Ss(vec!["a".into(), "bc".into()]).size(), 3);
        assert_eq!(Ns(vec![num("1"), num("123")]).size(), 2 + 3);
        assert_eq!(Bs(vec![vec![1, 2], vec![3]]).size(), 3);
        let item = Item::from([("id".into(), S("u1".into())), ("n".into(), N(num("42")))]);
        assert_eq!(item_size(&item), 2 + 2 + 1 + 2);
        assert_eq!(item_size(&Item::new()), 0);
    }

    #[test]
    fn key_bytes_of_key_types_only() {
        use AttributeValue::*;
        assert_eq!(S("ab".into()).key_bytes(), Some(b"ab".to_vec()));
        assert_eq!(B(vec![1, 2]).key_bytes(), Some(vec![1, 2]));
        assert_eq!(
            N(num("1.0")).key_bytes(),
            Some(num("1").order_preserving_bytes())
        );
        assert_eq!(N(num("1.0")).key_bytes(), N(num("10E-1")).key_bytes());
        for v in [
            Bool(true),
            Null,
            L(vec![]),
            M(BTreeMap::new()),
            Ss(vec!["a".into()]),
            Ns(vec![num("1")]),
            Bs(vec![vec![]]),
        ] {
            assert_eq!(v.key_bytes(), None, "{}", v.type_name());
        }
    }

    #[test]
    fn serde_round_trip() {
        for v in samples() {
            let text = serde_json::to_string(&v).unwrap();
            assert_eq!(
                serde_json::from_str::<AttributeValue>(&text).unwrap(),
                v,
                "{text}"
            );
        }
    }
}
