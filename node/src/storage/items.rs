//! Reading items of a shard: point gets and ordered range scans over the data column family.
//!
//! Range reads run on the blocking pool (see [`super::Storage::read`]), point gets first from
//! memory on the calling task (see [`super::Storage::read_cached`]); they read whatever the local
//! state machine has applied, which is always committed data.

use ferrodyn_client::value::{item_size, Item};
use rocksdb::{Direction, IteratorMode, ReadOptions, DB};

use super::keys::CF_DATA;
use super::StorageError;
use crate::raft::{decode, StoredItem};

/// A page of items read from a key range.
pub struct RangePage {
    /// Items in key order (or reverse order).
    pub items: Vec<Item>,
    /// Whether the range holds more items after the last one returned.
    pub more: bool,
    /// Items examined.
    pub scanned: usize,
}

/// Point lookup of one stored item, with `ro` (see [`super::Storage::read_cached`]).
pub fn get_item(db: &DB, ro: &ReadOptions, key: &[u8]) -> Result<Option<StoredItem>, StorageError> {
    let cf = db.cf_handle(CF_DATA).expect("cf");
    match db.get_pinned_cf_opt(cf, key, ro)? {
        Some(v) => Ok(Some(
            decode(&v).map_err(|e| StorageError::Corrupt(e.to_string()))?,
        )),
        None => Ok(None),
    }
}

/// Reads items with keys in `[start, end)`, forward or in reverse, stopping after `limit` items
/// (0 = no limit) or once `max_bytes` of item data is collected.
pub fn read_range(
    db: &DB,
    start: &[u8],
    end: &[u8],
    reverse: bool,
    limit: usize,
    max_bytes: usize,
) -> Result<RangePage, StorageError> {
    let cf = db.cf_handle(CF_DATA).expect("cf");
    let mut ro = ReadOptions::default();
    ro.set_iterate_lower_bound(start.to_vec());
    ro.set_iterate_upper_bound(end.to_vec());
    let mode = if reverse {
        IteratorMode::End
    } else {
        IteratorMode::From(start, Direction::Forward)
    };
    let mut items = Vec::new();
    let mut bytes = 0usize;
    let mut scanned = 0usize;
    let mut more = false;
    for kv in db.iterator_cf_opt(cf, ro, mode) {
        let (_, v) = kv?;
        if (limit > 0 && items.len() >= limit) || bytes >= max_bytes {
            more = true;
            break;
        }
        let stored: StoredItem = decode(&v).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        bytes += item_size(&stored.item);
        scanned += 1;
        items.push(stored.item);
    }
    Ok(RangePage {
        items,
        more,
        scanned,
    })
}
