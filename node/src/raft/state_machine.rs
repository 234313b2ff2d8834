//! The replicated state machine of one group: items for data groups, the catalog for the
//! metadata group. Both live in the node's RocksDB under the group's key range.
//!
//! Durability: an applied batch writes its changes and the new last-applied log id in ONE
//! RocksDB batch, buffered (no fsync): the log is already durable on a quorum, and after a crash
//! the state machine restarts from whatever last-applied survived (always consistent with the
//! data beside it) and openraft re-applies the rest. The batch is built and written on one
//! blocking-pool thread, straight to RocksDB rather than through the writer queue, once the
//! writer has put the group's log entries it applies into the WAL (see [`LogProgress`]): so
//! the WAL always holds an apply after the entries it applies, and a WAL prefix recovered after
//! a crash never holds an apply without its entries. Snapshot installs are fsynced, because the
//! log they replace gets purged.
//!
//! Snapshots: since the applied state is in RocksDB anyway, building a snapshot only records
//! the applied log id (so openraft may purge the log before it), and the group's range is read
//! only when a follower needs a snapshot. Building one costs nothing, so groups can purge their
//! logs often, before most entries leave the memtable (see `raft.snapshot_every_logs`).

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use rocksdb::{IteratorMode, ReadOptions, WriteBatch, DB};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::log_store::LogProgress;
use super::{
    decode, encode, Command, CommandResult, Rejection, StoredItem, StoredItemRef, TypeConfig,
};
use crate::catalog::{Catalog, CatalogRef, TableDesc, TableStatus};
use crate::storage::keys::{self, MetaKind, CF_DATA, CF_RAFT_META};
use crate::storage::{Durability, Storage, StorageError as StoreErr};

type SErr = StorageError<u64>;
type Membership = StoredMembership<u64, openraft::BasicNode>;

/// What the state machine persists about itself, beside its data.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppliedState {
    last_applied: Option<LogId<u64>>,
    membership: Membership,
    /// At least the version (HLC) of every item the group stores: a put stamped above it
    /// replaces an older version whatever is stored, so its apply skips reading the previous
    /// item. Only an upper bound, so skipping never changes the applied version.
    max_version: u64,
}

/// [`AppliedState`] as written before it had `max_version`.
#[derive(Deserialize)]
struct LegacyAppliedState {
    last_applied: Option<LogId<u64>>,
    membership: Membership,
}

impl AppliedState {
    /// Decodes the stored state; a state stored without `max_version` gets `u64::MAX`, so
    /// every put reads its previous version, as before.
    fn decode(bytes: &[u8]) -> Result<AppliedState, StoreErr> {
        decode::<AppliedState>(bytes).or_else(|e| {
            decode::<LegacyAppliedState>(bytes)
                .map(|l| AppliedState {
                    last_applied: l.last_applied,
                    membership: l.membership,
                    max_version: u64::MAX,
                })
                .map_err(|_| StoreErr::Corrupt(e.to_string()))
        })
    }
}

/// The serialized form of a snapshot: the applied state and every key of the group's range.
#[derive(Serialize, Deserialize)]
struct SnapshotPayload {
    applied: AppliedState,
    /// Keys with the group prefix stripped.
    kvs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A key (without its group prefix) and its value.
type KeyValue = (Vec<u8>, Vec<u8>);

type CurrentSnapshot = (SnapshotMeta<u64, openraft::BasicNode>, Vec<u8>);

/// State machine of one group.
pub struct StateMachine {
    group: u64,
    storage: Storage,
    /// The group's log appends, to order applies after them in the WAL.
    log_progress: Arc<LogProgress>,
    applied: AppliedState,
    /// The snapshot last read for a follower, while nothing was applied since.
    snapshot: Option<CurrentSnapshot>,
    snapshot_seq: u64,
    /// Metadata group only: the catalog, kept in memory and published to the node.
    catalog: Option<(Catalog, watch::Sender<CatalogRef>)>,
}

impl StateMachine {
    /// Opens the state machine of `group`, reading its applied state (and for the metadata
    /// group, the catalog, published on `catalog_tx`). `log_progress` is the group's log
    /// store's ([`super::log_store::LogStore::progress`]).
    pub async fn open(
        group: u64,
        storage: Storage,
        log_progress: Arc<LogProgress>,
        catalog_tx: Option<watch::Sender<CatalogRef>>,
    ) -> Result<StateMachine, StoreErr> {
        let key = keys::meta_key(group, MetaKind::Applied);
        let applied = storage
            .read(move |db| {
                let cf = db.cf_handle(CF_RAFT_META).expect("cf");
                match db.get_cf(cf, key)? {
                    Some(v) => AppliedState::decode(&v),
                    None => Ok(AppliedState::default()),
                }
            })
            .await?;
        let catalog = match catalog_tx {
            Some(tx) => {
                let cat = storage.read(load_catalog).await?;
                tx.send_replace(Arc::new(cat.clone()));
                Some((cat, tx))
            }
            None => None,
        };
        Ok(StateMachine {
            group,
            storage,
            log_progress,
            applied,
            snapshot: None,
            snapshot_seq: 0,
            catalog,
        })
    }

    fn publish_catalog(&mut self) {
        if let Some((cat, tx)) = &self.catalog {
            tx.send_replace(Arc::new(cat.clone()));
        }
    }
}

/// Reads the catalog from the metadata group's range.
pub fn load_catalog(db: &DB) -> Result<Catalog, StoreErr> {
    let cf = db.cf_handle(CF_DATA).expect("cf");
    let mut cat = Catalog {
        next_table_id: 1,
        ..Default::default()
    };
    let prefix = keys::catalog_tables_prefix();
    for kv in db.prefix_iterator_cf(cf, &prefix) {
        let (k, v) = kv?;
        if !k.starts_with(&prefix) {
            break;
        }
        let t: TableDesc = decode(&v).map_err(|e| StoreErr::Corrupt(e.to_string()))?;
        cat.tables.insert(t.name.clone(), t);
    }
    if let Some(v) = db.get_cf(cf, keys::catalog_counter_key())? {
        let (next, dropped): (u64, Vec<u64>) =
            decode(&v).map_err(|e| StoreErr::Corrupt(e.to_string()))?;
        cat.next_table_id = next;
        cat.dropped = dropped;
    }
    if let Some(v) = db.get_cf(cf, keys::catalog_layout_key())? {
        cat.layout = Some(decode(&v).map_err(|e| StoreErr::Corrupt(e.to_string()))?);
    }
    Ok(cat)
}

/// What one apply batch accumulates.
struct ApplyBuf {
    /// The batch's writes.
    batch: WriteBatch,
    /// Versions written earlier in the batch (`None`: deleted), so later reads see them.
    overlay: HashMap<Vec<u8>, Option<u64>>,
    /// The group's version bound (see [`AppliedState::max_version`]).
    max_version: u64,
}

/// Puts the item at `key`, its stored value made by `value` from the version it gets.
/// Last-writer-wins needs a local write to carry a version above the one it replaces,
/// whatever the leader's clock says. Stamped `hlc` above every version in the group (the
/// usual case: the leader's clock only moves forward), it is; otherwise read the previous
/// version.
fn put_item(
    db: &DB,
    ro: &ReadOptions,
    data: &rocksdb::ColumnFamily,
    key: Vec<u8>,
    hlc: u64,
    buf: &mut ApplyBuf,
    value: impl FnOnce(u64) -> Vec<u8>,
) -> Result<CommandResult, StoreErr> {
    let version = if hlc > buf.max_version {
        hlc
    } else {
        let prev = match buf.overlay.get(&key) {
            Some(v) => *v,
            None => match db.get_pinned_cf_opt(data, &key, ro)? {
                Some(b) => Some(
                    decode::<StoredItem>(&b)
                        .map_err(|e| StoreErr::Corrupt(e.to_string()))?
                        .hlc,
                ),
                None => None,
            },
        };
        prev.map_or(hlc, |p| hlc.max(p + 1))
    };
    buf.max_version = buf.max_version.max(version);
    buf.batch.put_cf(data, &key, value(version));
    buf.overlay.insert(key, Some(version));
    Ok(CommandResult::Done)
}

/// Applies one command into `buf`; `catalog` is the metadata group's in-memory catalog.
fn apply_command(
    db: &DB,
    ro: &ReadOptions,
    group: u64,
    cmd: &Command,
    buf: &mut ApplyBuf,
    catalog: Option<&mut Catalog>,
) -> Result<CommandResult, StoreErr> {
    let data = db.cf_handle(CF_DATA).expect("cf");
    let mut catalog = catalog;
    match cmd {
        Command::Batch(cmds) => {
            let mut results = Vec::with_capacity(cmds.len());
            for c in cmds {
                results.push(apply_command(
                    db,
                    ro,
                    group,
                    c,
                    buf,
                    catalog.as_deref_mut(),
                )?);
            }
            Ok(CommandResult::Batch(results))
        }
        Command::Put {
            table,
            pk,
            sk,
            item,
            hlc,
            region,
        } => {
            let key = keys::item_key(group, *table, pk, sk);
            put_item(db, ro, data, key, *hlc, buf, |version| {
                encode(&StoredItemRef {
                    item: item.as_ref(),
                    hlc: version,
                    region,
                })
            })
        }
        Command::PutEncoded {
            table,
            pk,
            sk,
            item,
            hlc,
            region,
        } => {
            let key = keys::item_key(group, *table, pk, sk);
            put_item(db, ro, data, key, *hlc, buf, |version| {
                item.stored_value(version, region)
            })
        }
        Command::Delete { table, pk, sk, .. } => {
            let key = keys::item_key(group, *table, pk, sk);
            buf.batch.delete_cf(data, &key);
            buf.overlay.insert(key, None);
            Ok(CommandResult::Done)
        }
        Command::DropTableData { table } => {
            let (s, e) = keys::table_range(group, *table);
            buf.batch.delete_range_cf(data, s, e);
            buf.overlay.clear();
            Ok(CommandResult::Done)
        }
        Command::CreateTable {
            name,
            schema,
            created_ms,
        } => {
            let Some(cat) = catalog else {
                return Ok(CommandResult::Done);
            };
            if cat.tables.contains_key(name) {
                return Ok(CommandResult::Rejected(Rejection::TableExists(
                    name.clone(),
                )));
            }
            let desc = TableDesc {
                id: cat.next_table_id,
                name: name.clone(),
                schema: schema.clone(),
                status: TableStatus::Active,
                created_ms: *created_ms,
            };
            cat.next_table_id += 1;
            cat.tables.insert(name.clone(), desc.clone());
            buf.batch
                .put_cf(data, keys::catalog_table_key(name), encode(&desc));
            buf.batch.put_cf(
                data,
                keys::catalog_counter_key(),
                encode(&(cat.next_table_id, &cat.dropped)),
            );
            Ok(CommandResult::Table(desc))
        }
        Command::DeleteTable { name } => {
            let Some(cat) = catalog else {
                return Ok(CommandResult::Done);
            };
            let Some(desc) = cat.tables.remove(name) else {
                return Ok(CommandResult::Rejected(Rejection::TableNotFound(
                    name.clone(),
                )));
            };
            cat.dropped.push(desc.id);
            buf.batch.delete_cf(data, keys::catalog_table_key(name));
            buf.batch.put_cf(
                data,
                keys::catalog_counter_key(),
                encode(&(cat.next_table_id, &cat.dropped)),
            );
            Ok(CommandResult::Table(TableDesc {
                status: TableStatus::Deleting,
                ..desc
            }))
        }
        Command::SetLayout(layout) => {
            let Some(cat) = catalog else {
                return Ok(CommandResult::Done);
            };
            if cat.layout.is_none() {
                cat.layout = Some(layout.clone());
                buf.batch
                    .put_cf(data, keys::catalog_layout_key(), encode(layout));
            }
            Ok(CommandResult::Done)
        }
    }
}

/// The batch that applies `entries` (their changes and the new applied state), and their
/// results. Reads with `ro`; changes only `applied` and `catalog` besides the returned batch.
fn apply_batch(
    db: &DB,
    ro: &ReadOptions,
    group: u64,
    entries: &[openraft::Entry<TypeConfig>],
    applied: &mut AppliedState,
    mut catalog: Option<&mut Catalog>,
) -> Result<(WriteBatch, Vec<CommandResult>), StoreErr> {
    let mut buf = ApplyBuf {
        batch: WriteBatch::default(),
        overlay: HashMap::new(),
        max_version: applied.max_version,
    };
    let mut results = Vec::with_capacity(entries.len());
    for e in entries {
        applied.last_applied = Some(e.log_id);
        match &e.payload {
            EntryPayload::Blank => results.push(CommandResult::Done),
            EntryPayload::Membership(m) => {
                applied.membership = StoredMembership::new(Some(e.log_id), m.clone());
                results.push(CommandResult::Done);
            }
            EntryPayload::Normal(cmd) => {
                results.push(apply_command(
                    db,
                    ro,
                    group,
                    cmd,
                    &mut buf,
                    catalog.as_deref_mut(),
                )?);
            }
        }
    }
    applied.max_version = buf.max_version;
    let mut batch = buf.batch;
    batch.put_cf(
        db.cf_handle(CF_RAFT_META).expect("cf"),
        keys::meta_key(group, MetaKind::Applied),
        encode(&*applied),
    );
    Ok((batch, results))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<u64>>, Membership), SErr> {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, SErr>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let started = std::time::Instant::now();
        let count = entries.len();
        let group = self.group;
        // Every entry applied here was appended (submitted to the writer) before this call.
        let appended = self.log_progress.submitted();
        let mut applied = self.applied.clone();
        let mut catalog = self.catalog.as_ref().map(|(c, _)| c.clone());
        // The usual case, on this task: the entries are in the WAL already (commit took a round
        // trip to the followers), every read is served from memory (memtable or block cache),
        // and the write needs no stall; the write goes straight to RocksDB, after the entries.
        let mut done = None;
        if self.log_progress.written() >= appended {
            match apply_batch(
                self.storage.db(),
                &crate::storage::engine::memory_only(),
                group,
                &entries,
                &mut applied,
                catalog.as_mut(),
            ) {
                Ok((batch, results)) => {
                    if self
                        .storage
                        .try_write_buffered_now(batch)
                        .map_err(|e| StorageIOError::write_state_machine(&e))?
                    {
                        done = Some(results);
                    }
                }
                Err(StoreErr::Rocks(e)) if e.kind() == rocksdb::ErrorKind::Incomplete => {}
                Err(e) => return Err(StorageIOError::write_state_machine(&e).into()),
            }
        }
        let results = match done {
            Some(results) => results,
            None => {
                // Otherwise on the blocking pool, where reads may wait for the disk and the
                // write for a stall or for the writer to write the entries first.
                let mut applied2 = self.applied.clone();
                let mut catalog2 = self.catalog.as_ref().map(|(c, _)| c.clone());
                let storage = self.storage.clone();
                let progress = self.log_progress.clone();
                let (results, a, c) = tokio::task::spawn_blocking(move || {
                    let (batch, results) = apply_batch(
                        storage.db(),
                        &ReadOptions::default(),
                        group,
                        &entries,
                        &mut applied2,
                        catalog2.as_mut(),
                    )?;
                    if progress.written() >= appended {
                        storage.write_buffered_now(batch)?;
                    } else {
                        // Queue behind the group's appends.
                        storage.write_buffered_blocking(batch)?;
                    }
                    Ok::<_, StoreErr>((results, applied2, catalog2))
                })
                .await
                .map_err(|e| StorageIOError::write_state_machine(&e))?
                .map_err(|e| StorageIOError::write_state_machine(&e))?;
                applied = a;
                catalog = c;
                results
            }
        };
        self.storage
            .metrics()
            .observe_apply(count, started.elapsed());
        self.applied = applied;
        // A snapshot read for a follower is now older than the applied state.
        self.snapshot = None;
        if let (Some(new), Some((cat, _))) = (catalog, self.catalog.as_mut()) {
            if *cat != new {
                *cat = new;
                self.publish_catalog();
            }
        }
        Ok(results)
    }

    /// A snapshot here is a point to purge the log up to, not a copy: the state machine is
    /// itself in RocksDB, written with every apply (see the module docs), so the log before
    /// `last_applied` is no longer needed to rebuild it. The builder therefore only records
    /// the applied state; the data is read when a follower needs it
    /// ([`RaftStateMachine::get_current_snapshot`]).
    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        SnapshotBuilder {
            meta: snapshot_meta(self.group, &self.applied, self.snapshot_seq),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let bytes = snapshot.into_inner();
        let payload: SnapshotPayload = decode(&bytes)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let group = self.group;
        let mut batch = WriteBatch::default();
        let (start, end) = keys::group_range(group);
        let data = self.storage.cf(CF_DATA);
        batch.delete_range_cf(data, &start, &end);
        for (k, v) in &payload.kvs {
            let mut key = start.clone();
            key.extend_from_slice(k);
            batch.put_cf(data, key, v);
        }
        let applied = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            // The bound of the leader that built the snapshot covers every item in it.
            max_version: payload.applied.max_version,
        };
        batch.put_cf(
            self.storage.cf(CF_RAFT_META),
            keys::meta_key(group, MetaKind::Applied),
            encode(&applied),
        );
        // Fsynced: the log this snapshot replaces will be purged.
        self.storage
            .write(batch, Durability::Sync)
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.applied = applied;
        // Read again from RocksDB when a snapshot is next asked for.
        self.snapshot = None;
        if self.catalog.is_some() {
            let cat = self
                .storage
                .read(load_catalog)
                .await
                .map_err(|e| StorageIOError::read_state_machine(&e))?;
            if let Some((c, _)) = self.catalog.as_mut() {
                *c = cat;
            }
            self.publish_catalog();
        }
        Ok(())
    }

    /// The group's range as of its current applied state, read now (on the state machine's
    /// task, so no apply runs meanwhile and the data matches `last_applied`). Its id is newer
    /// than the last one built, which is fine: the snapshot a follower installs only has to
    /// hold exactly the applies up to its own `last_log_id`, and the leader records the
    /// follower as matching that id. Kept until the next apply, so followers that need one at
    /// the same time share it.
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        if self.applied.last_applied.is_none() {
            return Ok(None);
        }
        if self.snapshot.is_none() {
            self.snapshot_seq += 1;
            let meta = snapshot_meta(self.group, &self.applied, self.snapshot_seq);
            let kvs = read_range(&self.storage, self.group)
                .await
                .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
            let bytes = encode(&SnapshotPayload {
                applied: self.applied.clone(),
                kvs,
            });
            self.snapshot = Some((meta, bytes));
        }
        let (meta, bytes) = self.snapshot.clone().expect("just set");
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

/// The metadata of a snapshot of `applied`; `seq` makes ids of one group unique.
fn snapshot_meta(
    group: u64,
    applied: &AppliedState,
    seq: u64,
) -> SnapshotMeta<u64, openraft::BasicNode> {
    let last = applied.last_applied;
    SnapshotMeta {
        last_log_id: last,
        last_membership: applied.membership.clone(),
        snapshot_id: format!(
            "g{}-{}-{}-{}",
            group,
            last.map(|l| l.leader_id.term).unwrap_or(0),
            last.map(|l| l.index).unwrap_or(0),
            seq
        ),
    }
}

async fn read_range(storage: &Storage, group: u64) -> Result<Vec<KeyValue>, StoreErr> {
    storage
        .read(move |db| {
            let cf = db.cf_handle(CF_DATA).expect("cf");
            let (start, end) = keys::group_range(group);
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(end);
            let mut out = Vec::new();
            for kv in db.iterator_cf_opt(
                cf,
                ro,
                IteratorMode::From(&start, rocksdb::Direction::Forward),
            ) {
                let (k, v) = kv?;
                out.push((k[8..].to_vec(), v.to_vec()));
            }
            Ok(out)
        })
        .await
}

/// Records a snapshot point (see [`StateMachine::get_snapshot_builder`]).
pub struct SnapshotBuilder {
    meta: SnapshotMeta<u64, openraft::BasicNode>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    /// openraft keeps only the metadata of a built snapshot (to purge the log and to know a
    /// snapshot exists); it asks [`RaftStateMachine::get_current_snapshot`] for the data when
    /// it sends one. So the data here is empty.
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(Vec::new())),
        })
    }
}

#[cfg(test)]
mod tests {
    use ferrodyn_client::value::AttributeValue;
    use openraft::{CommittedLeaderId, Entry};

    use super::super::log_store::LogStore;
    use super::*;

    const GROUP: u64 = 5;

    fn item(pk: &str) -> ferrodyn_client::value::Item {
        let mut item = ferrodyn_client::value::Item::new();
        item.insert("pk".into(), AttributeValue::S(pk.into()));
        item.insert("n".into(), AttributeValue::N("12.5".parse().unwrap()));
        item.insert(
            "l".into(),
            AttributeValue::L(vec![AttributeValue::Bool(true), AttributeValue::Null]),
        );
        item
    }

    /// A put as leaders propose it now.
    fn put(pk: &str, hlc: u64) -> Command {
        Command::PutEncoded {
            table: 1,
            pk: pk.as_bytes().to_vec(),
            sk: Vec::new(),
            item: crate::raft::EncodedItem::new(&item(pk)),
            hlc,
            region: "r1".into(),
        }
    }

    /// A put as logs written before `PutEncoded` hold it.
    fn legacy_put(pk: &str, hlc: u64) -> Command {
        Command::Put {
            table: 1,
            pk: pk.as_bytes().to_vec(),
            sk: Vec::new(),
            item: Arc::new(item(pk)),
            hlc,
            region: "r1".into(),
        }
    }

    fn stored(storage: &Storage, pk: &str) -> StoredItem {
        let key = keys::item_key(GROUP, 1, pk.as_bytes(), &[]);
        let v = storage.db().get_cf(storage.cf(CF_DATA), key).unwrap();
        decode::<StoredItem>(&v.expect("item stored")).unwrap()
    }

    /// An encoded put stores exactly what a put of the decoded item stores, it survives the
    /// log's encoding, and a legacy put still applies.
    #[tokio::test]
    async fn encoded_and_legacy_puts_store_the_same_item() {
        let it = item("x");
        let enc = crate::raft::EncodedItem::new(&it);
        assert_eq!(
            enc.stored_value(42, "eu-west"),
            encode(&StoredItem {
                item: it.clone(),
                hlc: 42,
                region: "eu-west".into()
            })
        );
        // Through the log entry's encoding and back.
        let cmd = put("x", 9);
        let back: Command = decode(&encode(&cmd)).unwrap();
        assert_eq!(back, cmd);
        assert!(decode::<Command>(&encode(&cmd)[..20]).is_err());

        let dir = tempfile::tempdir().unwrap();
        let (storage, mut sm) = open(dir.path()).await;
        sm.apply(vec![
            entry(1, put("a", 100)),
            entry(2, legacy_put("b", 101)),
        ])
        .await
        .unwrap();
        for pk in ["a", "b"] {
            let s = stored(&storage, pk);
            assert_eq!(s.item, item(pk), "{pk}");
            assert_eq!(s.region, "r1");
        }
        // Versions work across the two kinds: a legacy put stamped below replaces "a" above it.
        sm.apply(vec![entry(3, legacy_put("a", 50))]).await.unwrap();
        assert_eq!(version(&storage, "a"), 101);
    }

    fn entry(index: u64, cmd: Command) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Arc::new(cmd)),
        }
    }

    async fn open(dir: &std::path::Path) -> (Storage, StateMachine) {
        let storage = Storage::open(dir).unwrap();
        let log = LogStore::new(GROUP, storage.clone());
        let sm = StateMachine::open(GROUP, storage.clone(), log.progress(), None)
            .await
            .unwrap();
        (storage, sm)
    }

    fn version(storage: &Storage, pk: &str) -> u64 {
        stored(storage, pk).hlc
    }

    /// A put never gets a version at or below the one it replaces, whether or not its stamp
    /// is above the group's bound (the bound only lets it skip reading the previous item).
    #[tokio::test]
    async fn put_versions_stay_above_what_they_replace() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, mut sm) = open(dir.path()).await;
        sm.apply(vec![entry(1, put("a", 100))]).await.unwrap();
        assert_eq!(version(&storage, "a"), 100);
        // A slower clock: stamped 50, stored above 100.
        sm.apply(vec![entry(2, put("a", 50))]).await.unwrap();
        assert_eq!(version(&storage, "a"), 101);
        // Below the bound but a new key: keeps its own stamp.
        sm.apply(vec![entry(3, put("b", 60))]).await.unwrap();
        assert_eq!(version(&storage, "b"), 60);
        // Above the bound: its stamp.
        sm.apply(vec![entry(4, put("a", 500))]).await.unwrap();
        assert_eq!(version(&storage, "a"), 500);
        assert_eq!(sm.applied.max_version, 500);
    }

    /// The bound survives a restart, and a state stored without one reads every previous
    /// version.
    #[tokio::test]
    async fn version_bound_survives_restart_and_legacy_state_reads() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_storage, mut sm) = open(dir.path()).await;
            sm.apply(vec![entry(1, put("a", 100))]).await.unwrap();
        }
        let storage = crate::storage::engine::tests::reopen(dir.path()).await;
        let log = LogStore::new(GROUP, storage.clone());
        let mut sm = StateMachine::open(GROUP, storage.clone(), log.progress(), None)
            .await
            .unwrap();
        assert_eq!(sm.applied.max_version, 100);
        sm.apply(vec![entry(2, put("a", 90))]).await.unwrap();
        assert_eq!(version(&storage, "a"), 101);

        #[derive(Serialize)]
        struct Legacy {
            last_applied: Option<LogId<u64>>,
            membership: Membership,
        }
        let legacy = encode(&Legacy {
            last_applied: Some(LogId::new(CommittedLeaderId::new(1, 1), 7)),
            membership: Membership::default(),
        });
        let st = AppliedState::decode(&legacy).unwrap();
        assert_eq!(st.last_applied.map(|l| l.index), Some(7));
        assert_eq!(st.max_version, u64::MAX);
        assert!(AppliedState::decode(&[1, 2, 3]).is_err());
    }

    /// A batched entry applies its commands in order and returns one result per command.
    #[tokio::test]
    async fn batch_applies_in_order_with_a_result_each() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, mut sm) = open(dir.path()).await;
        let batch = Command::Batch(vec![put("a", 10), put("a", 5), put("b", 7)]);
        let results = sm.apply(vec![entry(1, batch)]).await.unwrap();
        assert_eq!(
            results,
            vec![CommandResult::Batch(vec![
                CommandResult::Done,
                CommandResult::Done,
                CommandResult::Done
            ])]
        );
        // The second put of "a" saw the first one (in the same batch) and went above it.
        assert_eq!(version(&storage, "a"), 11);
        assert_eq!(version(&storage, "b"), 7);
    }
}
