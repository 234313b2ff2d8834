//! The Raft log and vote of one group, in the node's shared RocksDB.
//!
//! Durability: `save_vote` returns only after the vote is fsynced. `append` writes the entries
//! to RocksDB (memtable and WAL file) before it returns, on the calling task, or through the
//! writer's queue when RocksDB would stall the write, and fires openraft's `LogFlushed`
//! callback only after the shared WAL fsync that covers them (group commit), so openraft never
//! counts an entry as persisted before it is on disk.
//! Truncation is fsynced before it returns (entries openraft was told are gone must not come
//! back after a crash). Purge is buffered: losing one only keeps more log than needed.
//!
//! Reads: the group's most recent entries are also kept in memory ([`LogCache`]). `append` puts
//! them there before it returns, so replication and apply read them without a trip to
//! RocksDB. An entry leaves the cache only once it is written (or the log no longer has it),
//! so everything older than the cache is in RocksDB.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};

use super::{decode, encode, TypeConfig};
use crate::storage::keys::{self, MetaKind, CF_RAFT_LOG, CF_RAFT_META};
use crate::storage::{Durability, Storage};

type SErr = StorageError<u64>;

/// Most entries a group keeps in its cache once they are written.
const CACHE_ENTRIES: usize = 256;
/// Most encoded bytes of entries a group keeps in its cache once they are written.
const CACHE_BYTES: usize = 512 << 10;

/// How far a group's log appends have got through the node's writer. Appends are numbered in
/// the order `append` is called (one group appends from one task, so this is submission order).
#[derive(Debug, Default)]
pub struct LogProgress {
    /// Number of the last append handed to the writer.
    submitted: AtomicU64,
    /// Number of the last append the writer has written to the memtable and WAL (not
    /// necessarily fsynced).
    written: AtomicU64,
}

impl LogProgress {
    /// Number of the last append handed to the writer.
    pub fn submitted(&self) -> u64 {
        self.submitted.load(Ordering::Acquire)
    }

    /// Number of the last append already in the WAL: when this reaches a value read from
    /// [`LogProgress::submitted`], every entry appended before that read is in the WAL.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }
}

struct Cached {
    entry: Entry<TypeConfig>,
    /// Encoded size, for the byte bound.
    size: usize,
    /// The append that wrote it (see [`LogProgress`]).
    seq: u64,
}

/// The group's most recent entries, contiguous by index.
#[derive(Default)]
struct LogCache {
    entries: VecDeque<Cached>,
    bytes: usize,
}

impl LogCache {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|c| c.entry.log_id.index)
    }

    fn next_index(&self) -> Option<u64> {
        self.entries.back().map(|c| c.entry.log_id.index + 1)
    }

    /// Clones of the cached entries in `[start, end)` (`start` at or after the first one).
    fn range(&self, start: u64, end: Option<u64>) -> Vec<Entry<TypeConfig>> {
        let Some(first) = self.first_index() else {
            return Vec::new();
        };
        let from = start.saturating_sub(first) as usize;
        let to = match end {
            Some(e) => (e.saturating_sub(first) as usize).min(self.entries.len()),
            None => self.entries.len(),
        };
        if from >= to {
            return Vec::new();
        }
        self.entries
            .range(from..to)
            .map(|c| c.entry.clone())
            .collect()
    }

    /// Drops written entries from the front while the cache is over its bounds.
    fn evict(&mut self, written: u64) {
        while self.entries.len() > CACHE_ENTRIES || self.bytes > CACHE_BYTES {
            match self.entries.front() {
                Some(c) if c.seq <= written => {
                    self.bytes -= c.size;
                    self.entries.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Forgets entries at `index` and after (truncation).
    fn truncate(&mut self, index: u64) {
        while let Some(c) = self.entries.back() {
            if c.entry.log_id.index < index {
                break;
            }
            self.bytes -= c.size;
            self.entries.pop_back();
        }
    }

    /// Forgets entries up to `index` included (purge).
    fn purge(&mut self, index: u64) {
        while let Some(c) = self.entries.front() {
            if c.entry.log_id.index > index {
                break;
            }
            self.bytes -= c.size;
            self.entries.pop_front();
        }
    }
}

/// Log storage of one Raft group.
#[derive(Clone)]
pub struct LogStore {
    group: u64,
    storage: Storage,
    cache: Arc<Mutex<LogCache>>,
    progress: Arc<LogProgress>,
}

impl LogStore {
    /// The log store of `group` on `storage`.
    pub fn new(group: u64, storage: Storage) -> Self {
        LogStore {
            group,
            storage,
            cache: Default::default(),
            progress: Default::default(),
        }
    }

    /// How far this group's appends have got through the writer (the state machine orders its
    /// own writes after the entries it applies with it).
    pub fn progress(&self) -> Arc<LogProgress> {
        self.progress.clone()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LogCache> {
        self.cache.lock().expect("log cache lock")
    }

    /// Waits until every write queued to the writer so far (this group's appends included)
    /// is written.
    async fn barrier(&self) -> Result<(), crate::storage::StorageError> {
        self.storage
            .write(WriteBatch::default(), Durability::Buffered)
            .await
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

    fn meta_batch<T: serde::Serialize>(&self, kind: MetaKind, v: &T) -> WriteBatch {
        let mut b = WriteBatch::default();
        b.put_cf(
            self.storage.cf(CF_RAFT_META),
            keys::meta_key(self.group, kind),
            encode(v),
        );
        b
    }

    /// Entries `[start, end)` from RocksDB.
    async fn read_entries(
        &self,
        start: u64,
        end: Option<u64>,
    ) -> Result<Vec<Entry<TypeConfig>>, crate::storage::StorageError> {
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
        // The cached tail, taken under the lock; anything before the cache's first entry was
        // written before it left the cache, so RocksDB has it.
        let (first, tail) = {
            let cache = self.cache();
            match cache.first_index() {
                Some(first) if start >= first => return Ok(cache.range(start, end)),
                Some(first) => (Some(first), cache.range(first, end)),
                None => (None, Vec::new()),
            }
        };
        let db_end = match (first, end) {
            (Some(f), Some(e)) => Some(f.min(e)),
            (Some(f), None) => Some(f),
            (None, e) => e,
        };
        let mut out = self
            .read_entries(start, db_end)
            .await
            .map_err(|e| StorageIOError::read_logs(&e))?;
        out.extend(tail);
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        // Another LogStore of this group (a restarted group in the same process) may still
        // have appends queued: let the writer finish them before reading RocksDB.
        self.barrier()
            .await
            .map_err(|e| StorageIOError::read_logs(&e))?;
        let last_purged: Option<LogId<u64>> = self.get_meta(MetaKind::LastPurged).await?;
        if let Some(last) = self.cache().entries.back() {
            return Ok(LogState {
                last_purged_log_id: last_purged,
                last_log_id: Some(last.entry.log_id),
            });
        }
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
        let b = self.meta_batch(MetaKind::Vote, vote);
        self.storage
            .write(b, Durability::Sync)
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, SErr> {
        self.get_meta(MetaKind::Vote).await
    }

    /// Not stored: the state machine stores its last-applied log id with every applied batch,
    /// and openraft starts from that when it is ahead of the committed id read back (a commit
    /// that was not applied yet is learned again from a quorum). Saving it too would cost a
    /// writer round and a WAL record per commit on every replica.
    async fn save_committed(&mut self, _committed: Option<LogId<u64>>) -> Result<(), SErr> {
        Ok(())
    }

    /// The committed id stored by earlier versions, if any (see `save_committed`).
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
        let seq = self.progress.submitted.load(Ordering::Relaxed) + 1;
        let mut new = Vec::new();
        for e in entries {
            let bytes = encode(&e);
            new.push((
                Cached {
                    entry: e,
                    size: bytes.len(),
                    seq,
                },
                bytes,
            ));
        }
        let count = new.len();
        let contiguous = {
            let cache = self.cache();
            match (cache.next_index(), new.first()) {
                (Some(next), Some((c, _))) => c.entry.log_id.index == next,
                _ => true,
            }
        };
        if !contiguous {
            // openraft truncates before it appends over a conflict, so this should not happen;
            // if it does, start the cache afresh, once everything it holds is written.
            self.barrier()
                .await
                .map_err(|e| StorageIOError::write_logs(&e))?;
            *self.cache() = LogCache::default();
        }
        let batch = |new: &[(Cached, Vec<u8>)]| {
            let cf = self.storage.cf(CF_RAFT_LOG);
            let mut b = WriteBatch::default();
            for (c, bytes) in new {
                b.put_cf(cf, keys::log_key(self.group, c.entry.log_id.index), bytes);
            }
            b
        };
        let metrics = self.storage.metrics().clone();
        // openraft counts the entries as persisted only when the callback fires, after the
        // fsync that covers them; this group keeps pipelining meanwhile.
        let done = move |r: Result<(), String>| {
            metrics.observe_append(count, started.elapsed());
            callback.log_io_completed(r.map_err(std::io::Error::other))
        };
        // Written (memtable and WAL file) before this returns, so an entry replication can
        // send survives a crash of this process (see "What is fsynced" in
        // docs/ARCHITECTURE.md: openraft restores a restarted leader as leader); durable at the
        // next shared fsync. Usually written right here: appends of one group come from its
        // one Raft task, in order. If RocksDB would stall the write, it goes through the
        // writer's queue instead, and this waits until the writer has written it, so the
        // group's next append is still written after it.
        let done = self
            .storage
            .try_write_now_synced(batch(&new), done)
            .map_err(|e| StorageIOError::write_logs(&e))?
            .err();
        let queued = done.map(|done| (batch(&new), done));
        {
            let mut cache = self.cache();
            for (c, _) in new {
                cache.bytes += c.size;
                cache.entries.push_back(c);
            }
            if queued.is_none() {
                self.progress.written.store(seq, Ordering::Release);
            }
            cache.evict(self.progress.written());
        }
        self.progress.submitted.store(seq, Ordering::Release);
        let Some((b, done)) = queued else {
            return Ok(());
        };
        let progress = self.progress.clone();
        let (written_tx, written_rx) = tokio::sync::oneshot::channel::<()>();
        self.storage
            .submit_async(
                b,
                Durability::Sync,
                Some(Box::new(move || {
                    progress.written.store(seq, Ordering::Release);
                    let _ = written_tx.send(());
                })),
                done,
            )
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        // A failed write drops the sender; the error reaches openraft through the callback.
        let _ = written_rx.await;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), SErr> {
        self.cache().truncate(log_id.index);
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
        self.cache().purge(log_id.index);
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

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};
    use tempfile::TempDir;

    use super::*;
    use crate::raft::state_machine::StateMachine;

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
        async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), SErr> {
            let dir = tempfile::tempdir().expect("tempdir");
            let storage = Storage::open(dir.path()).expect("open storage");
            let log = LogStore::new(1, storage.clone());
            let sm = StateMachine::open(1, storage, log.progress(), None)
                .await
                .expect("open state machine");
            Ok((dir, log, sm))
        }
    }

    type S = Suite<TypeConfig, LogStore, StateMachine, Builder, TempDir>;

    /// openraft's own storage conformance tests, on a fresh store each. All of them but
    /// `get_initial_state_re_apply_committed`, which expects `save_committed` to be stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn openraft_storage_suite() {
        macro_rules! run {
            ($($t:ident),* $(,)?) => {$(
                let (_dir, store, sm) = Builder.build().await.unwrap();
                S::$t(store, sm).await.unwrap_or_else(|e| panic!("{}: {e}", stringify!($t)));
            )*};
        }
        run!(
            last_membership_in_log_initial,
            last_membership_in_log,
            last_membership_in_log_multi_step,
            get_membership_initial,
            get_membership_from_log_and_empty_sm,
            get_membership_from_empty_log_and_sm,
            get_membership_from_log_le_sm_last_applied,
            get_membership_from_log_gt_sm_last_applied_1,
            get_membership_from_log_gt_sm_last_applied_2,
            get_initial_state_without_init,
            get_initial_state_membership_from_log_and_sm,
            get_initial_state_with_state,
            get_initial_state_last_log_gt_sm,
            get_initial_state_last_log_lt_sm,
            get_initial_state_log_ids,
            save_vote,
            get_log_entries,
            limited_get_log_entries,
            try_get_log_entry,
            initial_logs,
            get_log_state,
            get_log_id,
            last_id_in_log,
            last_applied_state,
            purge_logs_upto_0,
            purge_logs_upto_5,
            purge_logs_upto_20,
            delete_logs_since_11,
            delete_logs_since_0,
            append_to_log,
            snapshot_meta,
            apply_single,
            apply_multiple,
        );
    }

    fn blank(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: openraft::EntryPayload::Blank,
        }
    }

    /// Reads that straddle RocksDB and the cache, after entries were evicted from it, and the
    /// cache after truncation and purge.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cache_and_rocksdb_agree() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let mut log = LogStore::new(7, storage.clone());
        let n = (CACHE_ENTRIES * 3) as u64;
        // One entry per append, so that earlier appends are written (and evictable) by the
        // time later ones arrive.
        for i in 1..=n {
            let mut b = WriteBatch::default();
            let e = blank(i);
            b.put_cf(storage.cf(CF_RAFT_LOG), keys::log_key(7, i), encode(&e));
            {
                let mut cache = log.cache();
                cache.bytes += 10;
                cache.entries.push_back(Cached {
                    entry: e,
                    size: 10,
                    seq: i,
                });
            }
            log.progress.submitted.store(i, Ordering::Release);
            storage.write(b, Durability::Buffered).await.unwrap();
            log.progress.written.store(i, Ordering::Release);
            log.cache().evict(i);
        }
        let first = log.cache().first_index().unwrap();
        assert!(first > 1, "nothing was evicted");
        assert_eq!(log.cache().entries.len(), CACHE_ENTRIES);
        let idx = |v: Vec<Entry<TypeConfig>>| v.iter().map(|e| e.log_id.index).collect::<Vec<_>>();
        assert_eq!(
            idx(log.try_get_log_entries(1..=n).await.unwrap()),
            (1..=n).collect::<Vec<_>>()
        );
        assert_eq!(
            idx(log.try_get_log_entries(first - 3..first + 2).await.unwrap()),
            (first - 3..first + 2).collect::<Vec<_>>()
        );
        assert_eq!(
            idx(log.try_get_log_entries(5..9).await.unwrap()),
            vec![5, 6, 7, 8]
        );

        log.truncate(LogId::new(openraft::CommittedLeaderId::new(1, 1), n - 10))
            .await
            .unwrap();
        assert_eq!(
            idx(log.try_get_log_entries(n - 12..).await.unwrap()),
            vec![n - 12, n - 11]
        );
        assert_eq!(
            log.get_log_state()
                .await
                .unwrap()
                .last_log_id
                .map(|l| l.index),
            Some(n - 11)
        );
        log.purge(LogId::new(openraft::CommittedLeaderId::new(1, 1), n - 20))
            .await
            .unwrap();
        assert_eq!(log.cache().first_index(), Some(n - 19));
        assert_eq!(
            idx(log.try_get_log_entries(n - 19..n - 17).await.unwrap()),
            vec![n - 19, n - 18]
        );
    }
}
