//! Key schemas and DynamoDB's validation rules for table names, items and keys.
//!
//! A table's [`KeySchema`] names its partition key and optional sort key and their types.
//! The node checks every write and read against it with [`KeySchema::validate_item`] and
//! [`KeySchema::validate_key`], whose messages follow DynamoDB's so that clients see the
//! errors they know; the client can run the same checks before sending.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::WireError;
use crate::proto;
use crate::value::{item_size, AttributeValue, Item};

/// Most bytes of a key attribute name.
pub const MAX_KEY_NAME_BYTES: usize = 255;
/// Most bytes of a partition key value.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// Most bytes of a sort key value.
pub const MAX_SORT_KEY_BYTES: usize = 1024;
/// Most bytes of an item, by [`item_size`].
pub const MAX_ITEM_SIZE: usize = 409_600;
/// Fewest characters of a table name.
pub const MIN_TABLE_NAME_LEN: usize = 3;
/// Most characters of a table name.
pub const MAX_TABLE_NAME_LEN: usize = 255;

/// Type of a key attribute: only strings, numbers and binaries can be keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    /// String.
    S,
    /// Number.
    N,
    /// Binary.
    B,
}

impl KeyType {
    /// Reads the wire enum; unspecified or unknown values are a `ValidationException`.
    pub fn from_proto(v: i32) -> Result<KeyType, WireError> {
        match proto::KeyType::try_from(v) {
            Ok(proto::KeyType::S) => Ok(KeyType::S),
            Ok(proto::KeyType::N) => Ok(KeyType::N),
            Ok(proto::KeyType::B) => Ok(KeyType::B),
            Ok(proto::KeyType::Unspecified) => Err(WireError::validation(
                "Key type is not specified; allowed values: S, N, B",
            )),
            Err(_) => Err(WireError::validation(format!(
                "Unknown key type {v}; allowed values: S, N, B"
            ))),
        }
    }

    /// The wire enum value.
    pub fn to_proto(self) -> i32 {
        match self {
            KeyType::S => proto::KeyType::S as i32,
            KeyType::N => proto::KeyType::N as i32,
            KeyType::B => proto::KeyType::B as i32,
        }
    }

    /// Whether `v` has this type.
    pub fn matches(&self, v: &AttributeValue) -> bool {
        matches!(
            (self, v),
            (KeyType::S, AttributeValue::S(_))
                | (KeyType::N, AttributeValue::N(_))
                | (KeyType::B, AttributeValue::B(_))
        )
    }
}

/// DynamoDB's type name: `S`, `N` or `B`.
impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::S => "S",
            KeyType::N => "N",
            KeyType::B => "B",
        })
    }
}

/// Parses `S`, `N` or `B`, case-insensitively (CLI and config input).
impl FromStr for KeyType {
    type Err = WireError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "S" => Ok(KeyType::S),
            "N" => Ok(KeyType::N),
            "B" => Ok(KeyType::B),
            _ => Err(WireError::validation(format!(
                "Invalid key type '{s}'; allowed values: S, N, B"
            ))),
        }
    }
}

/// One key attribute: its name and type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttr {
    /// Attribute name.
    pub name: String,
    /// Attribute type.
    pub key_type: KeyType,
}

impl KeyAttr {
    /// Shorthand constructor.
    pub fn new(name: impl Into<String>, key_type: KeyType) -> Self {
        KeyAttr {
            name: name.into(),
            key_type,
        }
    }

    /// Reads a wire key schema element; `role` ("partition key", "sort key") names it in
    /// errors.
    fn from_proto(e: proto::KeySchemaElement, role: &str) -> Result<Self, WireError> {
        if e.name.is_empty() || e.name.len() > MAX_KEY_NAME_BYTES {
            return Err(WireError::validation(format!(
                "The {role} attribute name must be 1 to {MAX_KEY_NAME_BYTES} bytes long \
                 (got {} bytes)",
                e.name.len()
            )));
        }
        let key_type = KeyType::from_proto(e.key_type).map_err(|err| {
            WireError::validation(format!("{role} '{}': {}", e.name, err.message))
        })?;
        Ok(KeyAttr {
            name: e.name,
            key_type,
        })
    }

    /// The wire key schema element.
    fn to_proto(&self) -> proto::KeySchemaElement {
        proto::KeySchemaElement {
            name: self.name.clone(),
            key_type: self.key_type.to_proto(),
        }
    }
}

/// A table's primary key: a partition key and an optional sort key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySchema {
    /// Partition (hash) key: decides the partition of an item.
    pub partition_key: KeyAttr,
    /// Sort (range) key: orders the items of one partition key.
    pub sort_key: Option<KeyAttr>,
}

impl KeySchema {
    /// Reads the key schema of a CreateTable request: a partition key is required, names
    /// are 1..=255 bytes, types are specified, and the two keys have different names.
    pub fn from_proto(
        pk: Option<proto::KeySchemaElement>,
        sk: Option<proto::KeySchemaElement>,
    ) -> Result<KeySchema, WireError> {
        let pk = pk.ok_or_else(|| {
            WireError::validation("The key schema must contain a partition key (hash key)")
        })?;
        let partition_key = KeyAttr::from_proto(pk, "partition key")?;
        let sort_key = sk.map(|e| KeyAttr::from_proto(e, "sort key")).transpose()?;
        if let Some(sk) = &sort_key {
            if sk.name == partition_key.name {
                return Err(WireError::validation(format!(
                    "Both the Hash Key and the Range Key element in the KeySchema have the \
                     same name: '{}'",
                    sk.name
                )));
            }
        }
        Ok(KeySchema {
            partition_key,
            sort_key,
        })
    }

    /// The wire key schema elements: partition key and optional sort key.
    pub fn to_proto(&self) -> (proto::KeySchemaElement, Option<proto::KeySchemaElement>) {
        (
            self.partition_key.to_proto(),
            self.sort_key.as_ref().map(KeyAttr::to_proto),
        )
    }

    /// The key attributes with their value size limits, partition key first.
    fn key_attrs(&self) -> impl Iterator<Item = (&KeyAttr, KeyRole)> {
        std::iter::once((&self.partition_key, KeyRole::Partition))
            .chain(self.sort_key.iter().map(|sk| (sk, KeyRole::Sort)))
    }

    /// Checks an item for PutItem: every key attribute present, of its type, not empty,
    /// within its size limit, and the item within 400 KB.
    pub fn validate_item(&self, item: &Item) -> Result<(), WireError> {
        for (attr, role) in self.key_attrs() {
            let v = item.get(&attr.name).ok_or_else(|| {
                WireError::validation(format!(
                    "One or more parameter values were invalid: Missing the key {} in the item",
                    attr.name
                ))
            })?;
            check_key_value(attr, role, v)?;
        }
        let size = item_size(item);
        if size > MAX_ITEM_SIZE {
            return Err(WireError::validation(format!(
                "Item size has exceeded the maximum allowed size ({size} bytes, limit \
                 {MAX_ITEM_SIZE} bytes)"
            )));
        }
        Ok(())
    }

    /// Checks a key for GetItem/DeleteItem/ExclusiveStartKey: exactly the key attributes,
    /// each passing the per-key checks of [`KeySchema::validate_item`].
    pub fn validate_key(&self, key: &Item) -> Result<(), WireError> {
        let missing: Vec<&str> = self
            .key_attrs()
            .filter(|(a, _)| !key.contains_key(&a.name))
            .map(|(a, _)| a.name.as_str())
            .collect();
        let extra: Vec<&str> = key
            .keys()
            .filter(|k| !self.key_attrs().any(|(a, _)| &a.name == *k))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() || !extra.is_empty() {
            let mut details = Vec::new();
            if !missing.is_empty() {
                details.push(format!("missing: {}", missing.join(", ")));
            }
            if !extra.is_empty() {
                details.push(format!("not in the key schema: {}", extra.join(", ")));
            }
            return Err(WireError::validation(format!(
                "The provided key element does not match the schema ({})",
                details.join("; ")
            )));
        }
        for (attr, role) in self.key_attrs() {
            if let Some(v) = key.get(&attr.name) {
                check_key_value(attr, role, v)?;
            }
        }
        Ok(())
    }

    /// The key of an item: only its key attributes (those present).
    pub fn key_of(&self, item: &Item) -> Item {
        self.key_attrs()
            .filter_map(|(a, _)| item.get(&a.name).map(|v| (a.name.clone(), v.clone())))
            .collect()
    }

    /// Canonical bytes of the item's partition key ([`AttributeValue::key_bytes`]); empty if
    /// absent. Call after validation.
    pub fn partition_key_bytes(&self, item: &Item) -> Vec<u8> {
        key_bytes_of(item, &self.partition_key)
    }

    /// Canonical bytes of the item's sort key; `None` when the table has no sort key, empty
    /// if absent. Call after validation.
    pub fn sort_key_bytes(&self, item: &Item) -> Option<Vec<u8>> {
        self.sort_key.as_ref().map(|sk| key_bytes_of(item, sk))
    }
}

/// Which key an attribute is, which decides its size limit and how errors call it.
#[derive(Clone, Copy)]
enum KeyRole {
    /// The partition (hash) key.
    Partition,
    /// The sort (range) key.
    Sort,
}

/// Canonical bytes of key attribute `attr` of `item`, empty if absent or not a key type.
fn key_bytes_of(item: &Item, attr: &KeyAttr) -> Vec<u8> {
    item.get(&attr.name)
        .and_then(AttributeValue::key_bytes)
        .unwrap_or_default()
}

/// Per-key checks shared by items and keys: type, emptiness, size.
fn check_key_value(attr: &KeyAttr, role: KeyRole, v: &AttributeValue) -> Result<(), WireError> {
    if !attr.key_type.matches(v) {
        return Err(WireError::validation(format!(
            "One or more parameter values were invalid: Type mismatch for key {} expected: {} \
             actual: {}",
            attr.name,
            attr.key_type,
            v.type_name()
        )));
    }
    let empty_kind = match v {
        AttributeValue::S(s) if s.is_empty() => Some("string"),
        AttributeValue::B(b) if b.is_empty() => Some("binary"),
        _ => None,
    };
    if let Some(kind) = empty_kind {
        return Err(WireError::validation(format!(
            "One or more parameter values are not valid. The AttributeValue for a key attribute \
             cannot contain an empty {kind} value. Key: {}",
            attr.name
        )));
    }
    let len = v.key_bytes().map_or(0, |b| b.len());
    let (limit, what) = match role {
        KeyRole::Partition => (MAX_PARTITION_KEY_BYTES, "hashkey"),
        KeyRole::Sort => (MAX_SORT_KEY_BYTES, "rangekey"),
    };
    if len > limit {
        return Err(WireError::validation(format!(
            "One or more parameter values were invalid: Size of {what} has exceeded the maximum \
             size limit of {limit} bytes. Key: {} ({len} bytes)",
            attr.name
        )));
    }
    Ok(())
}

/// Checks DynamoDB's table name rule: 3 to 255 characters of `[a-zA-Z0-9_.-]`.
pub fn validate_table_name(name: &str) -> Result<(), WireError> {
    let len = name.chars().count();
    let constraint = if len < MIN_TABLE_NAME_LEN {
        format!("Member must have length greater than or equal to {MIN_TABLE_NAME_LEN}")
    } else if len > MAX_TABLE_NAME_LEN {
        format!("Member must have length less than or equal to {MAX_TABLE_NAME_LEN}")
    } else if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
    {
        "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+".to_owned()
    } else {
        return Ok(());
    };
    Err(WireError::validation(format!(
        "1 validation error detected: Value '{name}' at 'tableName' failed to satisfy \
         constraint: {constraint}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::number::Number;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(Number::parse(v).unwrap())
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn pk_only() -> KeySchema {
        KeySchema {
            partition_key: KeyAttr::new("id", KeyType::S),
            sort_key: None,
        }
    }

    fn pk_sk() -> KeySchema {
        KeySchema {
            partition_key: KeyAttr::new("id", KeyType::S),
            sort_key: Some(KeyAttr::new("ts", KeyType::N)),
        }
    }

    fn message(r: Result<(), WireError>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation);
        e.message
    }

    #[test]
    fn key_type_text_and_proto() {
        for (t, text) in [(KeyType::S, "S"), (KeyType::N, "N"), (KeyType::B, "B")] {
            assert_eq!(t.to_string(), text);
            assert_eq!(text.parse::<KeyType>().unwrap(), t);
            assert_eq!(text.to_lowercase().parse::<KeyType>().unwrap(), t);
            assert_eq!(KeyType::from_proto(t.to_proto()).unwrap(), t);
        }
        assert_eq!(KeyType::S.to_proto(), proto::KeyType::S as i32);
        let e = "X".parse::<KeyType>().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation);
        assert!(e.message.contains("S, N, B"), "{}", e.message);
        assert!("".parse::<KeyType>().is_err());
        assert!("SS".parse::<KeyType>().is_err());
        assert!(KeyType::from_proto(0)
            .unwrap_err()
            .message
            .contains("not specified"));
        assert!(KeyType::from_proto(9)
            .unwrap_err()
            .message
            .contains("Unknown key type 9"));
    }

    #[test]
    fn key_type_matches_values() {
        assert!(KeyType::S.matches(&s("x")));
        assert!(KeyType::N.matches(&n("1")));
        assert!(KeyType::B.matches(&AttributeValue::B(vec![1])));
        assert!(!KeyType::S.matches(&n("1")));
        assert!(!KeyType::N.matches(&s("1")));
        assert!(!KeyType::B.matches(&s("x")));
        assert!(!KeyType::S.matches(&AttributeValue::Ss(vec!["x".into()])));
        assert!(!KeyType::N.matches(&AttributeValue::Null));
    }

    fn element(name: &str, t: i32) -> proto::KeySchemaElement {
        proto::KeySchemaElement {
            name: name.to_owned(),
            key_type: t,
        }
    }

    #[test]
    fn schema_proto_round_trip() {
        for schema in [pk_only(), pk_sk()] {
            let (pk, sk) = schema.to_proto();
            assert_eq!(KeySchema::from_proto(Some(pk), sk).unwrap(), schema);
        }
        let (pk, sk) = pk_sk().to_proto();
        assert_eq!(pk, element("id", proto::KeyType::S as i32));
        assert_eq!(sk, Some(element("ts", proto::KeyType::N as i32)));
    }

    #[test]
    fn schema_proto_rules() {
        let s_type = proto::KeyType::S as i32;
        let err = |pk, sk| KeySchema::from_proto(pk, sk).unwrap_err().message;
        assert!(err(None, None).contains("partition key"));
        assert!(err(None, Some(element("a", s_type))).contains("partition key"));
        assert!(err(Some(element("", s_type)), None).contains("1 to 255 bytes"));
        assert!(err(Some(element(&"a".repeat(256), s_type)), None).contains("1 to 255 bytes"));
        KeySchema::from_proto(Some(element(&"a".repeat(255), s_type)), None).unwrap();
        assert!(err(Some(element("a", s_type)), Some(element("", s_type))).contains("sort key"));
        assert!(err(Some(element("a", 0)), None).contains("not specified"));
        assert!(err(Some(element("a", s_type)), Some(element("b", 7))).contains("sort key 'b'"));
        assert!(err(Some(element("a", s_type)), Some(element("a", s_type))).contains("same name"));
    }

    #[test]
    fn table_names() {
        for ok in ["abc", "my_table-1.v2", &"x".repeat(255), "A_B", "..."] {
            validate_table_name(ok).unwrap();
        }
        let short = message(validate_table_name("ab"));
        assert!(
            short.contains("'ab'") && short.contains("greater than or equal to 3"),
            "{short}"
        );
        assert!(message(validate_table_name("")).contains("greater than or equal to 3"));
        let long = "x".repeat(256);
        assert!(message(validate_table_name(&long)).contains("less than or equal to 255"));
        for bad in ["has space", "slash/x", "ünï", "tab\tle", "a:b", "a$b"] {
            let m = message(validate_table_name(bad));
            assert!(
                m.contains(&format!("'{bad}'")) && m.contains("[a-zA-Z0-9_.-]+"),
                "{m}"
            );
        }
    }

    #[test]
    fn valid_items_pass() {
        pk_only()
            .validate_item(&item(&[("id", s("u1")), ("x", AttributeValue::Null)]))
            .unwrap();
        pk_sk()
            .validate_item(&item(&[("id", s("u1")), ("ts", n("-1.5"))]))
            .unwrap();
        let binary = KeySchema {
            partition_key: KeyAttr::new("k", KeyType::B),
            sort_key: None,
        };
        binary
            .validate_item(&item(&[("k", AttributeValue::B(vec![0]))]))
            .unwrap();
        // Non-key attributes may be empty.
        pk_only()
            .validate_item(&item(&[("id", s("u1")), ("e", s(""))]))
            .unwrap();
    }

    #[test]
    fn items_need_every_key() {
        assert_eq!(
            message(pk_sk().validate_item(&item(&[("ts", n("1"))]))),
            "One or more parameter values were invalid: Missing the key id in the item"
        );
        assert_eq!(
            message(pk_sk().validate_item(&item(&[("id", s("a"))]))),
            "One or more parameter values were invalid: Missing the key ts in the item"
        );
    }

    #[test]
    fn item_keys_must_have_their_types() {
        assert_eq!(
            message(pk_only().validate_item(&item(&[("id", n("1"))]))),
            "One or more parameter values were invalid: Type mismatch for key id expected: S \
             actual: N"
        );
        assert!(
            message(pk_sk().validate_item(&item(&[("id", s("a")), ("ts", s("1"))])))
                .contains("Type mismatch for key ts expected: N actual: S")
        );
        assert!(message(
            pk_only().validate_item(&item(&[("id", AttributeValue::Ss(vec!["a".into()]))]))
        )
        .contains("actual: SS"));
    }

    #[test]
    fn item_keys_must_not_be_empty() {
        assert_eq!(
            message(pk_only().validate_item(&item(&[("id", s(""))]))),
            "One or more parameter values are not valid. The AttributeValue for a key attribute \
             cannot contain an empty string value. Key: id"
        );
        let binary = KeySchema {
            partition_key: KeyAttr::new("p", KeyType::S),
            sort_key: Some(KeyAttr::new("k", KeyType::B)),
        };
        assert_eq!(
            message(
                binary.validate_item(&item(&[("p", s("x")), ("k", AttributeValue::B(vec![]))]))
            ),
            "One or more parameter values are not valid. The AttributeValue for a key attribute \
             cannot contain an empty binary value. Key: k"
        );
    }

    #[test]
    fn key_value_size_limits() {
        pk_only()
            .validate_item(&item(&[("id", s(&"a".repeat(2048)))]))
            .unwrap();
        let m = message(pk_only().validate_item(&item(&[("id", s(&"a".repeat(2049)))])));
        assert!(
            m.contains("hashkey") && m.contains("2048") && m.contains("Key: id"),
            "{m}"
        );
        let schema = KeySchema {
            partition_key: KeyAttr::new("id", KeyType::S),
            sort_key: Some(KeyAttr::new("sk", KeyType::B)),
        };
        schema
            .validate_item(&item(&[
                ("id", s("a")),
                ("sk", AttributeValue::B(vec![1; 1024])),
            ]))
            .unwrap();
        let m = message(schema.validate_item(&item(&[
            ("id", s("a")),
            ("sk", AttributeValue::B(vec![1; 1025])),
        ])));
        assert!(
            m.contains("rangekey") && m.contains("1024") && m.contains("Key: sk"),
            "{m}"
        );
        // Multi-byte characters count by bytes.
        let m = message(pk_only().validate_key(&item(&[("id", s(&"é".repeat(1025)))])));
        assert!(m.contains("2048"), "{m}");
    }

    #[test]
    fn item_size_limit() {
        // "id" + "u1" + "data" + payload = MAX_ITEM_SIZE exactly.
        let payload = MAX_ITEM_SIZE - 2 - 2 - 4;
        let mut it = item(&[
            ("id", s("u1")),
            ("data", AttributeValue::B(vec![7; payload])),
        ]);
        pk_only().validate_item(&it).unwrap();
        it.insert("data".into(), AttributeValue::B(vec![7; payload + 1]));
        let m = message(pk_only().validate_item(&it));
        assert!(
            m.starts_with("Item size has exceeded the maximum allowed size"),
            "{m}"
        );
        assert!(m.contains(&(MAX_ITEM_SIZE + 1).to_string()), "{m}");
    }

    #[test]
    fn keys_must_match_the_schema_exactly() {
        pk_only().validate_key(&item(&[("id", s("u1"))])).unwrap();
        pk_sk()
            .validate_key(&item(&[("id", s("u1")), ("ts", n("3"))]))
            .unwrap();
        let m = message(pk_sk().validate_key(&item(&[("id", s("u1"))])));
        assert!(
            m.starts_with("The provided key element does not match the schema"),
            "{m}"
        );
        assert!(m.contains("missing: ts"), "{m}");
        let m = message(pk_only().validate_key(&item(&[("id", s("u1")), ("other", s("x"))])));
        assert!(
            m.starts_with("The provided key element does not match the schema"),
            "{m}"
        );
        assert!(m.contains("other"), "{m}");
        let m = message(pk_sk().validate_key(&item(&[("x", s("u1"))])));
        assert!(m.contains("missing: id, ts") && m.contains("x"), "{m}");
        assert!(message(pk_only().validate_key(&Item::new())).contains("missing: id"));
    }

    #[test]
    fn keys_get_per_key_checks() {
        assert!(message(pk_only().validate_key(&item(&[("id", n("1"))])))
            .contains("Type mismatch for key id expected: S actual: N"));
        assert!(message(pk_only().validate_key(&item(&[("id", s(""))])))
            .contains("cannot contain an empty string value. Key: id"));
        assert!(message(
            pk_sk().validate_key(&item(&[("id", s("a")), ("ts", AttributeValue::Null)]))
        )
        .contains("Type mismatch for key ts expected: N actual: NULL"));
    }

    #[test]
    fn key_extraction() {
        let full = item(&[("id", s("u1")), ("ts", n("10E-1")), ("body", s("hello"))]);
        assert_eq!(
            pk_sk().key_of(&full),
            item(&[("id", s("u1")), ("ts", n("1"))])
        );
        assert_eq!(pk_only().key_of(&full), item(&[("id", s("u1"))]));
        assert_eq!(pk_sk().partition_key_bytes(&full), b"u1".to_vec());
        assert_eq!(
            pk_sk().sort_key_bytes(&full),
            Some(Number::parse("1").unwrap().order_preserving_bytes())
        );
        assert_eq!(pk_only().sort_key_bytes(&full), None);
        // Panic-free on unvalidated input.
        assert_eq!(pk_sk().partition_key_bytes(&Item::new()), Vec::<u8>::new());
        assert_eq!(pk_sk().sort_key_bytes(&Item::new()), Some(Vec::new()));
        assert_eq!(pk_sk().key_of(&Item::new()), Item::new());
    }
}
