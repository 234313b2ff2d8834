//! Every key the node writes to RocksDB, encoded in one place.
//!
//! Column families (see [`CF_RAFT_LOG`] and friends) are fixed. Inside each, a key starts with
//! the Raft group id as a big-endian `u64`, so one group's keys are one contiguous range that can
//! be scanned, snapshotted or deleted by range. Group 0 is the metadata group; data partition
//! `p` is group `p + 1`.
//!
//! - raft log:  `[group u64][index u64]` → entry
//! - raft meta: `[group u64][kind u8]` → vote, committed, last purged, applied state, init flag
//! - data:      `[group u64][table u64][pk len u32][pk bytes][sk bytes]` → stored item
//! - catalog (data CF, group 0): `[0 u64][CATALOG_TABLE][name]`, `[0][CATALOG_COUNTER]`, ...
//! - node:      fixed keys for facts about this node (its id, layout fingerprint)
//!
//! Integers are big-endian so byte order equals numeric order. Partition keys are
//! length-prefixed (prefix-free, so a partition's items are contiguous); sort keys are the
//! last component and use the order-preserving canonical bytes of
//! [`ferrodyn_client::AttributeValue::key_bytes`] (numbers sort numerically, S and B bytewise).

/// Column family holding Raft log entries of every group.
pub const CF_RAFT_LOG: &str = "raft_log";
/// Column family holding per-group Raft metadata (vote, committed, purged, applied).
pub const CF_RAFT_META: &str = "raft_meta";
/// Column family holding table items and the metadata group's catalog.
pub const CF_DATA: &str = "data";
/// Column family holding facts about this node.
pub const CF_NODE: &str = "node";
/// All column families, opened together.
pub const ALL_CFS: [&str; 4] = [CF_RAFT_LOG, CF_RAFT_META, CF_DATA, CF_NODE];

/// Kinds of per-group metadata records in [`CF_RAFT_META`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MetaKind {
    /// The durable vote (term, voted-for).
    Vote = 1,
    /// The last committed log id, as openraft reports it.
    Committed = 2,
    /// The last purged log id.
    LastPurged = 3,
    /// The state machine's last applied log id and membership.
    Applied = 4,
    /// Written once when this node initialized the group; never initialize twice.
    Initialized = 5,
}

/// Group id of the metadata group (catalog and partition table).
pub const META_GROUP: u64 = 0;

/// Raft group id of a data partition.
pub fn group_of_partition(partition: u32) -> u64 {
    partition as u64 + 1
}

/// Data partition of a Raft group id (None for the metadata group).
pub fn partition_of_group(group: u64) -> Option<u32> {
    group.checked_sub(1).map(|p| p as u32)
}

/// Key of log entry `index` of `group`.
pub fn log_key(group: u64, index: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&group.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Log index of a log key.
pub fn log_index_of(key: &[u8]) -> u64 {
    u64::from_be_bytes(key[8..16].try_into().expect("log key is 16 bytes"))
}

/// Key of a per-group metadata record.
pub fn meta_key(group: u64, kind: MetaKind) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&group.to_be_bytes());
    k[8] = kind as u8;
    k
}

/// `[start, end)` covering every key of `group` in a group-prefixed column family.
pub fn group_range(group: u64) -> (Vec<u8>, Vec<u8>) {
    (
        group.to_be_bytes().to_vec(),
        (group + 1).to_be_bytes().to_vec(),
    )
}

/// Prefix of every item of `table` in `group`.
pub fn table_prefix(group: u64, table: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.extend_from_slice(&group.to_be_bytes());
    k.extend_from_slice(&table.to_be_bytes());
    k
}

/// `[start, end)` of every item of `table` in `group`.
pub fn table_range(group: u64, table: u64) -> (Vec<u8>, Vec<u8>) {
    (table_prefix(group, table), table_prefix(group, table + 1))
}

/// Prefix of every item with partition key `pk` (canonical key bytes) of `table` in `group`.
pub fn item_partition_prefix(group: u64, table: u64, pk: &[u8]) -> Vec<u8> {
    let mut k = table_prefix(group, table);
    k.extend_from_slice(&(pk.len() as u32).to_be_bytes());
    k.extend_from_slice(pk);
    k
}

/// Key of one item: partition key and (possibly empty) sort key canonical bytes.
pub fn item_key(group: u64, table: u64, pk: &[u8], sk: &[u8]) -> Vec<u8> {
    let mut k = item_partition_prefix(group, table, pk);
    k.extend_from_slice(sk);
    k
}

/// The smallest key strictly greater than every key starting with `prefix`
/// (None when the prefix is all 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The smallest key strictly greater than `key` (for resuming after it).
pub fn key_successor(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.push(0);
    k
}

/// Catalog record kinds stored in the metadata group's data range.
const CATALOG_TABLE: u8 = 1;
const CATALOG_COUNTER: u8 = 2;
const CATALOG_LAYOUT: u8 = 3;

/// Catalog key of table `name`.
pub fn catalog_table_key(name: &str) -> Vec<u8> {
    let mut k = META_GROUP.to_be_bytes().to_vec();
    k.push(CATALOG_TABLE);
    k.extend_from_slice(name.as_bytes());
    k
}

/// Prefix of every table record in the catalog.
pub fn catalog_tables_prefix() -> Vec<u8> {
    let mut k = META_GROUP.to_be_bytes().to_vec();
    k.push(CATALOG_TABLE);
    k
}

/// Catalog key of the table-id counter (ids are never reused).
pub fn catalog_counter_key() -> Vec<u8> {
    let mut k = META_GROUP.to_be_bytes().to_vec();
    k.push(CATALOG_COUNTER);
    k
}

/// Catalog key of the partition layout (partition table).
pub fn catalog_layout_key() -> Vec<u8> {
    let mut k = META_GROUP.to_be_bytes().to_vec();
    k.push(CATALOG_LAYOUT);
    k
}

/// Node CF key holding this node's id: a data directory belongs to one node id forever.
pub const NODE_ID_KEY: &[u8] = b"node_id";
/// Node CF key holding the fingerprint of the cluster layout this directory was created with.
pub const NODE_LAYOUT_KEY: &[u8] = b"layout";

#[cfg(test)]
mod tests {
    use super::*;
    use ferrodyn_client::{AttributeValue, Number};

    fn n(s: &str) -> Vec<u8> {
        AttributeValue::N(Number::parse(s).unwrap())
            .key_bytes()
            .unwrap()
    }

    #[test]
    fn log_keys_sort_by_group_then_index() {
        let mut keys = vec![
            log_key(2, 1),
            log_key(1, 300),
            log_key(1, 2),
            log_key(1, 256),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                log_key(1, 2),
                log_key(1, 256),
                log_key(1, 300),
                log_key(2, 1)
            ]
        );
        assert_eq!(log_index_of(&log_key(7, 99)), 99);
    }

    #[test]
    fn groups_are_contiguous_ranges() {
        let (s, e) = group_range(5);
        assert!(
            log_key(5, 0).as_slice() >= s.as_slice()
                && log_key(5, u64::MAX).as_slice() < e.as_slice()
        );
        assert!(meta_key(5, MetaKind::Vote).as_slice() < e.as_slice());
        assert!(log_key(6, 0).as_slice() >= e.as_slice());
        let ik = item_key(5, u64::MAX, &[0xFF; 10], &[0xFF; 10]);
        assert!(ik.as_slice() >= s.as_slice() && ik.as_slice() < e.as_slice());
    }

    #[test]
    fn partition_prefix_is_prefix_free() {
        // "ab" must not be a prefix of the items of "abc".
        let a = item_partition_prefix(1, 1, b"ab");
        let b = item_key(1, 1, b"abc", b"");
        assert!(!b.starts_with(&a));
        assert!(item_key(1, 1, b"ab", b"zzz").starts_with(&a));
    }

    #[test]
    fn numeric_sort_keys_sort_numerically() {
        let nums = [
            "-100", "-2.5", "-2", "-0.001", "0", "0.001", "1", "2", "10", "1E+20",
        ];
        let keys: Vec<_> = nums.iter().map(|s| item_key(1, 1, b"p", &n(s))).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn string_sort_keys_sort_bytewise() {
        let ss = ["", "a", "aa", "ab", "b", "\u{00e9}"];
        let keys: Vec<_> = ss
            .iter()
            .map(|s| item_key(1, 1, b"p", s.as_bytes()))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn prefix_end_bounds_prefix() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF]), None);
        let p = item_partition_prefix(1, 1, b"x");
        let end = prefix_end(&p).unwrap();
        assert!(item_key(1, 1, b"x", &[0xFF; 8]) < end);
    }

    #[test]
    fn catalog_keys_live_in_meta_group() {
        let (s, e) = group_range(META_GROUP);
        for k in [
            catalog_table_key("t"),
            catalog_counter_key(),
            catalog_layout_key(),
        ] {
            assert!(k >= s && k < e);
        }
        assert!(catalog_table_key("t").starts_with(&catalog_tables_prefix()));
    }
}
