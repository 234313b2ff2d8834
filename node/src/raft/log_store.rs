//! The Raft log and vote of one group, in the node's shared RocksDB.
//!
//! Durability: `save_vote` returns only after the vote is fsynced; `append` hands the entries to
//! the group-commit writer and fires openraft's `LogFlushed` callback only after the WAL fsync
//! that covers them, so openraft never counts an entry as persisted before it is on disk.
//! Truncation is fsynced before it returns (entries openraft was told are gone must not come
//! back after a crash). Purge is buffered: losing one only keeps more log than needed.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};

use super::{decode, encode, TypeConfig};
use crate::storage::keys::{self, MetaKind, CF_RAFT_LOG, CF_RAFT_META};
use crate::storage::{Durability, Storage};

type SErr = StorageError<u64>;

/// Log storage of one Raft group.
#[derive(Clone)]
pub struct LogStore {
    group: u64,
    storage: Storage,
}

impl LogStore {
    /// The log store of `group` on `storage`.
    pub fn new(group: u64, storage: Storage) -> Self {
        LogStore { group, storage }
    }

    async fn get_meta<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        kind: MetaKind,
    ) -> Result<Option<T>, SErr> {
        let key = keys::meta_key(self.group, kind);
        self.storage
            .read(move |db| {
                let cf = db.cf_handle(CF_RAFT_META).expect("cf");
                match db.get_cf(cf, key)? {
                    Some(v) => decode(&v)
                        .map(Some)
                        .map_err(|e| crate::storage::StorageError::Corrupt(e.to_string())),
                    None => Ok(None),
                }
            })
            .await
            .map_err(|e| StorageIOError::read(&e).into())
    }

    async fn put_meta<T: serde::Serialize>(
        &self,
        kind: MetaKind,
        v: &T,
        durability: Durability,
    ) -> Result<(), crate::storage::StorageError> {
        let mut b = WriteBatch::default();
        b.put_cf(
            self.storage.cf(CF_RAFT_META),
            keys::meta_key(self.group, kind),
            encode(v),
        );
        self.storage.write(b, durability).await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Some(i + 1),
            Bound::Excluded(&i) => Some(i),
            Bound::Unbounded => None,
        };
        let group = self.group;
        self.storage
            .read(move |db| {
                let cf = db.cf_handle(CF_RAFT_LOG).expect("cf");
                let mut ro = ReadOptions::default();
                let upper = match end {
                    Some(e) => keys::log_key(group, e).to_vec(),
                    None => keys::group_range(group).1,
                };
                ro.set_iterate_upper_bound(upper);
                let lower = keys::log_key(group, start);
                let mut out = Vec::new();
                for kv in db.iterator_cf_opt(cf, ro, IteratorMode::From(&lower, Direction::Forward))
                {
                    let (_, v) = kv?;
                    out.push(
                        decode::<Entry<TypeConfig>>(&v)
                            .map_err(|e| crate::storage::StorageError::Corrupt(e.to_string()))?,
                    );
                }
                Ok(out)
            })
            .await
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let last_purged: Option<LogId<u64>> = self.get_meta(MetaKind::LastPurged).await?;
        let group = self.group;
        let last: Option<Entry<TypeConfig>> = self
            .storage
            .read(move |db| {
                let cf = db.cf_handle(CF_RAFT_LOG).expect("cf");
                let mut ro = ReadOptions::default();
                ro.set_iterate_lower_bound(keys::group_range(group).0);
                let upper = keys::log_key(group, u64::MAX);
                let mut it =
                    db.iterator_cf_opt(cf, ro, IteratorMode::From(&upper, Direction::Reverse));
                match it.next() {
                    Some(kv) => {
                        let (_, v) = kv?;
                        Ok(Some(decode(&v).map_err(|e| {
                            crate::storage::StorageError::Corrupt(e.to_string())
                        })?))
                    }
                    None => Ok(None),
                }
            })
            .await
            .map_err(|e| StorageIOError::read_logs(&e))?;
        let last_log_id = last.map(|e| e.log_id).or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// Durable before it returns: a vote that is forgotten after a crash lets a node vote twice
    /// in one term.
    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), SErr> {
        self.put_meta(MetaKind::Vote, vote, Durability::Sync)
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, SErr> {
        self.get_meta(MetaKind::Vote).await
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), SErr> {
        // Buffered: losing it only means re-deriving the commit index from a quorum.
        self.put_meta(MetaKind::Committed, &committed, Durability::Buffered)
            .await
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, SErr> {
        Ok(self
            .get_meta::<Option<LogId<u64>>>(MetaKind::Committed)
            .await?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let started = std::time::Instant::now();
        let cf = self.storage.cf(CF_RAFT_LOG);
        let mut b = WriteBatch::default();
        let mut count = 0usize;
        for e in entries {
            b.put_cf(cf, keys::log_key(self.group, e.log_id.index), encode(&e));
            count += 1;
        }
        let metrics = self.storage.metrics().clone();
        // openraft needs the entries readable when this returns, and persisted when the
        // callback fires: wait for the writer's memtable write (fast), not for the fsync, so
        // this group keeps pipelining while the fsync is shared with other groups.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.storage
            .submit(
                b,
                Durability::Sync,
                Some(Box::new(move || {
                    let _ = tx.send(());
                })),
                move |r| {
                    metrics.observe_append(count, started.elapsed());
                    callback.log_io_completed(r.map_err(std::io::Error::other))
                },
            )
            .map_err(|e| StorageIOError::write_logs(&e))?;
        let _ = rx.await;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), SErr> {
        let mut b = WriteBatch::default();
        b.delete_range_cf(
            self.storage.cf(CF_RAFT_LOG),
            keys::log_key(self.group, log_id.index).to_vec(),
            keys::group_range(self.group).1,
        );
        self.storage
            .write(b, Durability::Sync)
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), SErr> {
        let mut b = WriteBatch::default();
        b.put_cf(
            self.storage.cf(CF_RAFT_META),
            keys::meta_key(self.group, MetaKind::LastPurged),
            encode(&log_id),
        );
        b.delete_range_cf(
            self.storage.cf(CF_RAFT_LOG),
            keys::log_key(self.group, 0),
            keys::log_key(self.group, log_id.index + 1),
        );
        self.storage
            .write(b, Durability::Buffered)
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
