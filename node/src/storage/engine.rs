//! One RocksDB per node, shared by every Raft group, and its group-commit writer.
//!
//! Durability rule: every write goes through one writer thread, in submission order. The
//! thread takes all queued batches and writes each to RocksDB (memtable + WAL file). Batches that
//! asked for [`Durability::Sync`] then go to a syncer thread, which fsyncs the WAL once
//! (`FlushWAL(sync = true)`) for everything queued and only then completes them. So concurrent log appends and votes from all shards on the node share
//! one fsync (group commit), and a completion callback never fires before its data is on disk.
//! Writes asked as [`Durability::Buffered`] (state-machine applies) survive a crash of the
//! process but may be lost on a power loss, and then
//! only together with everything after them in the WAL: RocksDB recovers a prefix, and an
//! applied batch records its own last-applied index, so a lost apply is simply re-applied from
//! the (durable) log.
//!
//! The one exception to "every write goes through the writer": a state-machine apply is
//! written directly ([`Storage::try_write_buffered_now`], [`Storage::write_buffered_now`]),
//! buffered, by a caller that has first seen the writer write the log entries it applies (see
//! `raft::state_machine`), so the WAL still holds the apply after its entries.
//!
//! Reads use `spawn_blocking` through [`Storage::read`]; the writer queue and
//! [`Storage::try_write_buffered_now`] (which refuses to wait for a write stall) are the only
//! ways async code writes.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use rocksdb::DBCompressionType::{Lz4, None as NoCompression};
use rocksdb::{ColumnFamilyDescriptor, Options, ReadOptions, WriteBatch, WriteOptions, DB};
use tokio::sync::oneshot;

use super::keys::ALL_CFS;
use crate::metrics::Metrics;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB failed (I/O error, corruption, full disk).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A write failed in the writer thread (the message is RocksDB's).
    #[error("write failed: {0}")]
    Write(String),
    /// The writer thread is gone (node shutting down).
    #[error("storage writer stopped")]
    WriterStopped,
    /// A stored record could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A blocking task panicked or was cancelled.
    #[error("storage task failed: {0}")]
    Task(String),
}

/// How durable a write must be before its completion fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The WAL is fsynced before completion (Raft log, vote, snapshot install).
    Sync,
    /// Written to the memtable and the WAL file, not fsynced: survives a crash of the process,
    /// may be lost on a power loss together with everything after it in the WAL
    /// (state-machine applies, which the durable log can replay).
    Buffered,
}

type Done = Box<dyn FnOnce(Result<(), String>) + Send>;
/// Runs on the writer thread right after a batch reached the memtable (before any fsync).
pub type Written = Box<dyn FnOnce() + Send>;

struct WriteJob {
    batch: WriteBatch,
    durability: Durability,
    written: Option<Written>,
    done: Done,
}

/// Statistics of the group-commit writer, for metrics and tests.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Number of WAL fsyncs performed.
    pub syncs: std::sync::atomic::AtomicU64,
    /// Number of batches written.
    pub batches: std::sync::atomic::AtomicU64,
}

/// The node's RocksDB and its writer. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    db: Arc<DB>,
    tx: std_mpsc::SyncSender<WriteJob>,
    /// Completions waiting for the next WAL fsync (see [`Storage::try_write_now_synced`]).
    sync_tx: std_mpsc::Sender<Done>,
    stats: Arc<WriterStats>,
    metrics: Arc<Metrics>,
    /// Set by [`Storage::inject_write_failure`]: every write fails, as on a full disk.
    fail_writes: Arc<AtomicBool>,
    /// Last field, so it is dropped after this clone's senders (see [`Threads`]).
    _threads: Arc<Threads>,
}

/// The writer and syncer threads, joined when the last [`Storage`] clone is dropped.
///
/// Both threads hold the database. Without the join, the last one to let go would close it
/// in the background: a process could then exit (a test binary returning from `main`) while
/// RocksDB is still closing, and RocksDB aborts with `pthread lock: Invalid argument` when
/// its static state is torn down under an open database. Joining also means the database is
/// closed, and its lock released, by the time the last handle's drop returns, so it can be
/// opened again at once.
struct Threads {
    handles: Vec<thread::JoinHandle<()>>,
}

impl Drop for Threads {
    fn drop(&mut self) {
        // By now every `Storage` clone has dropped its senders (they come before `_threads`),
        // so the writer's queue is closed; the writer then drops its syncer sender, which
        // closes the syncer's. A completion that ran on one of these threads may have held
        // the last clone: that thread is finishing and is not joined by itself.
        let me = thread::current().id();
        for h in self.handles.drain(..) {
            if h.thread().id() != me {
                let _ = h.join();
            }
        }
    }
}

/// How long the syncer waits for more writes before an fsync while it is busy (see
/// [`BUSY_GAP`]). An fsync is not free in CPU (a device flush through the virtualised disk:
/// the syncer thread was about 16% of a loaded node's CPU at ~1,000 fsyncs/s), so under
/// load fewer, fuller fsyncs leave more CPU for the writes: with 64 clients, fsyncs fell by
/// half and write throughput rose about 10%. A lone writer never waits.
const SYNC_LINGER: std::time::Duration = std::time::Duration::from_millis(1);
/// The syncer counts as busy for this long after an fsync that covered more than one write.
const BUSY_GAP: std::time::Duration = std::time::Duration::from_millis(1);

/// Most jobs the writer takes into one group commit.
const MAX_GROUP: usize = 512;
/// Bound of the writer's queue; a full queue applies backpressure to submitters.
const QUEUE_DEPTH: usize = 4096;

impl Storage {
    /// Opens (or creates) the database at `path` with every column family and starts the
    /// writer thread.
    pub fn open(path: &Path) -> Result<Storage, StorageError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(4);
        opts.set_max_total_wal_size(256 << 20);
        // No `manual_wal_flush`: every write reaches the WAL file (the OS) when it is written,
        // so it survives a crash of the process. openraft restores a node that was leader as
        // leader at start-up, without learning the commit index again; that is only safe if
        // the node lost none of the log entries it replicated, nor the applies it answered
        // clients from. A Jepsen run (kill -9 of a majority) caught a stale read when this
        // was on.
        let cfs = ALL_CFS.iter().map(|name| {
            let mut o = Options::default();
            // Flushes and the first compactions write their files uncompressed; deeper levels,
            // where long-lived data ends up, use LZ4 (TiKV's choice). Most of what a flush
            // writes is short-lived here: Raft log entries, purged after the next snapshot,
            // and item versions that later writes replace. Compressing it cost about 3% of a
            // node's CPU under a write load.
            o.set_compression_per_level(&[NoCompression, NoCompression, Lz4, Lz4, Lz4, Lz4, Lz4]);
            o.set_write_buffer_size(32 << 20);
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = Arc::new(DB::open_cf_descriptors(&opts, path, cfs)?);
        let (tx, rx) = std_mpsc::sync_channel::<WriteJob>(QUEUE_DEPTH);
        let (sync_tx, sync_rx) = std_mpsc::channel::<Done>();
        let stats = Arc::new(WriterStats::default());
        let metrics = Arc::new(Metrics::new());
        let (sdb, sstats, smetrics) = (db.clone(), stats.clone(), metrics.clone());
        let syncer = thread::Builder::new()
            .name("ferrodyn-syncer".into())
            .spawn(move || syncer_loop(sdb, sync_rx, sstats, smetrics))
            .map_err(|e| StorageError::Task(e.to_string()))?;
        let fail_writes = Arc::new(AtomicBool::new(false));
        let (wdb, wstats, wmetrics, wsync, wfail) = (
            db.clone(),
            stats.clone(),
            metrics.clone(),
            sync_tx.clone(),
            fail_writes.clone(),
        );
        let writer = thread::Builder::new()
            .name("ferrodyn-writer".into())
            .spawn(move || writer_loop(wdb, rx, wsync, wstats, wmetrics, wfail))
            .map_err(|e| StorageError::Task(e.to_string()))?;
        Ok(Storage {
            db,
            tx,
            sync_tx,
            stats,
            metrics,
            fail_writes,
            // Writer first: it holds the syncer's last sender.
            _threads: Arc::new(Threads {
                handles: vec![writer, syncer],
            }),
        })
    }

    /// The database, for reads inside [`Storage::read`] closures.
    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    /// Writer statistics.
    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }

    /// The node's Prometheus metrics (one registry per opened database, so per node).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// A column family handle. Panics only if the name is not one of [`ALL_CFS`].
    pub fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family opened at start")
    }

    /// Submits `batch`; `written` runs on the writer thread once the batch is readable, `done`
    /// once it is written with the requested durability (or failed). Blocks only if the writer
    /// queue is full.
    pub fn submit(
        &self,
        batch: WriteBatch,
        durability: Durability,
        written: Option<Written>,
        done: impl FnOnce(Result<(), String>) + Send + 'static,
    ) -> Result<(), StorageError> {
        self.tx
            .send(WriteJob {
                batch,
                durability,
                written,
                done: Box::new(done),
            })
            .map_err(|_| StorageError::WriterStopped)
    }

    /// Like [`Storage::submit`], for async callers: waits for room in the writer's queue
    /// without blocking a tokio worker. Returns once the batch is queued, so batches submitted
    /// one after the other are written in that order.
    pub async fn submit_async(
        &self,
        batch: WriteBatch,
        durability: Durability,
        written: Option<Written>,
        done: impl FnOnce(Result<(), String>) + Send + 'static,
    ) -> Result<(), StorageError> {
        let job = WriteJob {
            batch,
            durability,
            written,
            done: Box::new(done),
        };
        // The queue is bounded; submitting from async code must not block a worker.
        let sender = self.tx.clone();
        match sender.try_send(job) {
            Ok(()) => Ok(()),
            Err(std_mpsc::TrySendError::Full(job)) => {
                tokio::task::spawn_blocking(move || sender.send(job))
                    .await
                    .map_err(|e| StorageError::Task(e.to_string()))?
                    .map_err(|_| StorageError::WriterStopped)
            }
            Err(std_mpsc::TrySendError::Disconnected(_)) => Err(StorageError::WriterStopped),
        }
    }

    /// Writes `batch` and waits (asynchronously) until it is written with `durability`.
    pub async fn write(
        &self,
        batch: WriteBatch,
        durability: Durability,
    ) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.submit_async(batch, durability, None, move |r| {
            let _ = tx.send(r);
        })
        .await?;
        rx.await
            .map_err(|_| StorageError::WriterStopped)?
            .map_err(StorageError::Write)
    }

    /// Writes `batch` through the writer queue, [`Durability::Buffered`], blocking the calling
    /// thread until it is written. For blocking-pool threads only, never a tokio worker.
    pub fn write_buffered_blocking(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let (tx, rx) = std_mpsc::sync_channel(1);
        self.submit(batch, Durability::Buffered, None, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv()
            .map_err(|_| StorageError::WriterStopped)?
            .map_err(StorageError::Write)
    }

    /// Fault injection for tests: while `on`, every write fails (the writer queue's and the
    /// direct ones alike) with the error RocksDB gives on a full disk, without touching the
    /// database. Lets in-process tests show what a node does when its disk fills or fails.
    pub fn inject_write_failure(&self, on: bool) {
        self.fail_writes.store(on, Ordering::SeqCst);
    }

    /// The injected failure, if one is on (see [`Storage::inject_write_failure`]).
    fn injected_failure(&self) -> Result<(), StorageError> {
        injected_failure(&self.fail_writes).map_err(StorageError::Write)
    }

    /// Like [`Storage::write_buffered_now`], but never waits for a write stall: returns false,
    /// with nothing written, when RocksDB would have to stall the write. Meant for async
    /// callers, for which the write is otherwise as quick as a buffered file write.
    pub fn try_write_buffered_now(&self, batch: WriteBatch) -> Result<bool, StorageError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(false);
        wo.set_no_slowdown(true);
        self.injected_failure()?;
        match self.db.write_opt(batch, &wo) {
            Ok(()) => {
                self.stats
                    .batches
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(true)
            }
            Err(e) if e.kind() == rocksdb::ErrorKind::Incomplete => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `batch` on the calling thread (memtable and WAL file, no fsync), then hands `done`
    /// to the syncer, which completes it after the next WAL fsync: the [`Durability::Sync`]
    /// guarantee without the writer thread's hop, for async callers that write in order
    /// themselves (a group's log appends come from its one Raft task). Never waits for a write
    /// stall: if RocksDB would stall, nothing is written and `done` comes back (`Ok(Err(done))`)
    /// for the caller to queue the write instead. `done` is queued only after the write
    /// returned, so the fsync that completes it started after the batch was in the WAL file.
    pub fn try_write_now_synced<D>(
        &self,
        batch: WriteBatch,
        done: D,
    ) -> Result<Result<(), D>, StorageError>
    where
        D: FnOnce(Result<(), String>) + Send + 'static,
    {
        if !self.try_write_buffered_now(batch)? {
            return Ok(Err(done));
        }
        self.sync_tx
            .send(Box::new(done))
            .map_err(|_| StorageError::WriterStopped)?;
        Ok(Ok(()))
    }

    /// Writes `batch` to the memtable and WAL on the calling thread, without the writer queue
    /// and without an fsync: the [`Durability::Buffered`] guarantee, for a batch whose ordering
    /// against queued writes the caller has already ensured (see the module docs). Blocking.
    pub fn write_buffered_now(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(false);
        self.injected_failure()?;
        self.db.write_opt(batch, &wo)?;
        self.stats
            .batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Runs a read on the calling task when RocksDB can answer it from memory, else on the
    /// blocking pool. The closure first gets [`ReadOptions`] limited to the memtables and the
    /// block cache (`ReadTier::BlockCache`: RocksDB then never touches the disk and answers
    /// `Incomplete` instead), which costs microseconds and so may run on a tokio worker; only
    /// if that read is incomplete does it run again, unrestricted, on the blocking pool. This
    /// saves a thread hop on the hot path of point reads.
    pub async fn read_cached<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: Fn(&DB, &ReadOptions) -> Result<T, StorageError> + Send + 'static,
    {
        match f(&self.db, &memory_only()) {
            Err(StorageError::Rocks(e)) if e.kind() == rocksdb::ErrorKind::Incomplete => {}
            done => return done,
        }
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db, &ReadOptions::default()))
            .await
            .map_err(|e| StorageError::Task(e.to_string()))?
    }

    /// Runs a read-only closure on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&DB) -> Result<T, StorageError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StorageError::Task(e.to_string()))?
    }
}

/// Read options limited to the memtables and the block cache (`ReadTier::BlockCache`): RocksDB
/// never touches the disk and answers `Incomplete` instead, so such a read takes microseconds
/// and may run on an async worker. Used by [`Storage::read_cached`] and the state machine's
/// apply.
pub fn memory_only() -> ReadOptions {
    let mut ro = ReadOptions::default();
    ro.set_read_tier(rocksdb::ReadTier::BlockCache);
    ro
}

/// The error of an injected write failure (see [`Storage::inject_write_failure`]), worded as
/// RocksDB words a full disk.
fn injected_failure(fail_writes: &AtomicBool) -> Result<(), String> {
    if fail_writes.load(Ordering::Relaxed) {
        Err("IO error: No space left on device (injected by a test)".into())
    } else {
        Ok(())
    }
}

fn writer_loop(
    db: Arc<DB>,
    rx: std_mpsc::Receiver<WriteJob>,
    sync_tx: std_mpsc::Sender<Done>,
    stats: Arc<WriterStats>,
    metrics: Arc<Metrics>,
    fail_writes: Arc<AtomicBool>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut wo = WriteOptions::default();
    wo.set_sync(false);
    let mut group: Vec<WriteJob> = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        metrics.observe_write_round(group.len());
        let mut result: Result<(), String> = Ok(());
        let mut synced: Vec<WriteJob> = Vec::with_capacity(group.len());
        for mut job in group.drain(..) {
            if result.is_ok() {
                let batch = std::mem::take(&mut job.batch);
                let write = injected_failure(&fail_writes)
                    .and_then(|()| db.write_opt(batch, &wo).map_err(|e| e.to_string()));
                match write {
                    Ok(()) => {
                        if let Some(w) = job.written.take() {
                            w();
                        }
                    }
                    Err(e) => result = Err(e),
                }
            }
            stats.batches.fetch_add(1, Relaxed);
            match job.durability {
                // Buffered writes are complete once written: never make them wait for the
                // fsync that the synced writes of the same round need.
                Durability::Buffered => (job.done)(result.clone()),
                Durability::Sync => synced.push(job),
            }
        }
        if synced.is_empty() {
            continue;
        }
        match &result {
            // Hand the written jobs to the syncer and go on writing: writes that arrive
            // during an fsync are not held up by it, and the next fsync covers them.
            Ok(()) => {
                for job in synced {
                    if let Err(std_mpsc::SendError(done)) = sync_tx.send(job.done) {
                        done(Err("storage syncer stopped".into()));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "storage write failed; failing {} queued writes", synced.len());
                for job in synced {
                    (job.done)(result.clone());
                }
            }
        }
    }
}

/// Fsyncs the WAL for every write queued to it, many per fsync: a completion reaches this
/// thread only after its batch is in the WAL file (written by the writer thread, or by
/// [`Storage::try_write_now_synced`]), so one `FlushWAL(sync)` covers all queued when it starts.
fn syncer_loop(
    db: Arc<DB>,
    rx: std_mpsc::Receiver<Done>,
    stats: Arc<WriterStats>,
    metrics: Arc<Metrics>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut round: Vec<Done> = Vec::new();
    // When the previous fsync covered several writes and ended a moment ago, writes are
    // arriving concurrently and back to back: wait up to SYNC_LINGER for more before the next
    // fsync. Nothing is completed early by this; completions only wait longer.
    let mut busy_until: Option<Instant> = None;
    while let Ok(first) = rx.recv() {
        round.push(first);
        while let Ok(job) = rx.try_recv() {
            round.push(job);
        }
        if busy_until.is_some_and(|t| Instant::now() < t) {
            let deadline = Instant::now() + SYNC_LINGER;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                match rx.recv_timeout(left) {
                    Ok(job) => round.push(job),
                    Err(_) => break,
                }
            }
        }
        let writes = round.len();
        let started = Instant::now();
        let result = db.flush_wal(true).map_err(|e| e.to_string());
        metrics.observe_fsync(round.len(), started.elapsed());
        stats.syncs.fetch_add(1, Relaxed);
        if let Err(e) = &result {
            tracing::error!(error = %e, "WAL fsync failed; failing {} writes", round.len());
        }
        for done in round.drain(..) {
            done(result.clone());
        }
        busy_until = (writes > 1).then(|| Instant::now() + BUSY_GAP);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::storage::keys::CF_DATA;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_sync_writes_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let st = Storage::open(dir.path()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let st = st.clone();
            tasks.push(tokio::spawn(async move {
                let mut b = WriteBatch::default();
                b.put_cf(st.cf(CF_DATA), i.to_be_bytes(), b"v");
                st.write(b, Durability::Sync).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let syncs = st.stats().syncs.load(std::sync::atomic::Ordering::Relaxed);
        assert!((1..=200).contains(&syncs), "syncs {syncs}");
        let n = st
            .read(|db| {
                let cf = db.cf_handle(CF_DATA).unwrap();
                Ok(db.iterator_cf(cf, rocksdb::IteratorMode::Start).count())
            })
            .await
            .unwrap();
        assert_eq!(n, 200);
    }

    /// A write made on the calling task is readable at once and completes only after an fsync
    /// that started after it; completions queued together share fsyncs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_made_now_complete_after_a_shared_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let st = Storage::open(dir.path()).unwrap();
        let before = st.stats().syncs.load(std::sync::atomic::Ordering::SeqCst);
        let mut waits = Vec::new();
        for i in 0..100u32 {
            let mut b = WriteBatch::default();
            b.put_cf(st.cf(CF_DATA), i.to_be_bytes(), b"v");
            let (tx, rx) = oneshot::channel();
            let stats = st.stats().clone();
            let r = st
                .try_write_now_synced(b, move |r| {
                    // Runs on the syncer after the fsync that covers the write.
                    let syncs = stats.syncs.load(std::sync::atomic::Ordering::SeqCst);
                    let _ = tx.send(r.map(|()| syncs));
                })
                .unwrap();
            assert!(r.is_ok(), "no stall on an empty database");
            // Readable before it is durable.
            assert!(st
                .db()
                .get_cf(st.cf(CF_DATA), i.to_be_bytes())
                .unwrap()
                .is_some());
            waits.push(rx);
        }
        for rx in waits {
            let syncs_at_completion = rx.await.unwrap().unwrap();
            assert!(syncs_at_completion > before, "completed before any fsync");
        }
        let syncs = st.stats().syncs.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert!((1..=100).contains(&syncs), "syncs {syncs}");
    }

    /// Opens the database again after the previous `Storage` was dropped. For tests across
    /// the crate.
    pub(crate) async fn reopen(path: &Path) -> Storage {
        Storage::open(path).expect("reopen right after the last handle was dropped")
    }

    #[tokio::test]
    async fn dropping_the_last_handle_closes_the_database() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..20u8 {
            let st = Storage::open(dir.path()).unwrap();
            let clone = st.clone();
            let mut b = WriteBatch::default();
            b.put_cf(st.cf(CF_DATA), [round], b"v");
            st.write(b, Durability::Sync).await.unwrap();
            drop(st);
            // Still open through the clone: a second open is refused (RocksDB's lock).
            assert!(Storage::open(dir.path()).is_err(), "round {round}");
            drop(clone);
            // Closed, lock released, when the last drop returned: no waiting, no retry.
            let again = Storage::open(dir.path()).unwrap();
            let v = again
                .read(move |db| Ok(db.get_cf(db.cf_handle(CF_DATA).unwrap(), [round])?))
                .await
                .unwrap();
            assert_eq!(v.as_deref(), Some(&b"v"[..]));
        }
    }

    #[tokio::test]
    async fn read_cached_answers_from_memory_and_falls_back_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        {
            let st = Storage::open(dir.path()).unwrap();
            let mut b = WriteBatch::default();
            b.put_cf(st.cf(CF_DATA), b"k", b"v");
            st.write(b, Durability::Sync).await.unwrap();
            // In the memtable: answered by the memory-only attempt.
            let tiers = Arc::new(std::sync::Mutex::new(Vec::new()));
            let t = tiers.clone();
            let v = st
                .read_cached(move |db, ro| {
                    let r = db.get_cf_opt(db.cf_handle(CF_DATA).unwrap(), b"k", ro);
                    t.lock().unwrap().push(r.is_ok());
                    Ok(r?)
                })
                .await
                .unwrap();
            assert_eq!(v.as_deref(), Some(&b"v"[..]));
            assert_eq!(*tiers.lock().unwrap(), vec![true]);
            st.db().flush().unwrap();
        }
        // Reopened: the item is only in an SST file, not in any cache, so the memory-only
        // attempt is incomplete and the read is retried on the blocking pool.
        let st = reopen(dir.path()).await;
        let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let a = attempts.clone();
        let v = st
            .read_cached(move |db, ro| {
                a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(db.get_cf_opt(db.cf_handle(CF_DATA).unwrap(), b"k", ro)?)
            })
            .await
            .unwrap();
        assert_eq!(v.as_deref(), Some(&b"v"[..]));
        assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let st = Storage::open(dir.path()).unwrap();
            let mut b = WriteBatch::default();
            b.put_cf(st.cf(CF_DATA), b"k", b"v");
            st.write(b, Durability::Sync).await.unwrap();
        }
        let st = reopen(dir.path()).await;
        let v = st
            .read(|db| Ok(db.get_cf(db.cf_handle(CF_DATA).unwrap(), b"k")?))
            .await
            .unwrap();
        assert_eq!(v.as_deref(), Some(&b"v"[..]));
    }
}
