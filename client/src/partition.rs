//! The stable map from a partition key to a partition.
//!
//! Clients and nodes must agree on it forever, across builds and platforms, so it hashes
//! explicit bytes with a fixed, documented function (XXH3-64, seed 0) and never goes through
//! `std::hash::Hash`.

use xxhash_rust::xxh3::xxh3_64;

/// Partition of a partition key, given the key's canonical bytes (see
/// [`crate::value::AttributeValue::key_bytes`]) and the cluster's partition count.
pub fn partition_of(pk_bytes: &[u8], partition_count: u32) -> u32 {
    assert!(partition_count > 0, "partition count must be positive");
    (xxh3_64(pk_bytes) % partition_count as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_across_builds() {
        // Pinned values: changing the hash would move every item of every cluster.
        assert_eq!(xxh3_64(b""), 0x2d06800538d394c2);
        assert_eq!(partition_of(b"u1", 64), partition_of(b"u1", 64));
        assert!(partition_of(b"u1", 64) < 64);
    }

    #[test]
    fn spreads_keys() {
        let mut seen = [0u32; 16];
        for i in 0..16_000 {
            seen[partition_of(format!("k{i}").as_bytes(), 16) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800 && n < 1200), "{seen:?}");
    }
}
