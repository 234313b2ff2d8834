//! Multi-raft replication with openraft: one Raft group per partition plus the metadata group.
//!
//! - [`TypeConfig`] and the replicated [`Command`]s (this file).
//! - [`log_store`]: the Raft log and vote in the node's RocksDB (group-committed fsyncs).
//! - [`state_machine`]: applies commands to items and the catalog; snapshots a group's range.
//! - [`network`]: Raft RPCs over one tonic channel per peer node, with fault injection.
//! - [`proposer`]: batches the writes that queue behind a leader's in-flight proposals.
//! - [`groups`]: creating, initializing (exactly once) and looking up the node's groups.

pub mod groups;
pub mod log_store;
pub mod network;
pub mod proposer;
pub mod state_machine;

use std::io::Cursor;
use std::sync::Arc;

use ferrodyn_client::schema::KeySchema;
use ferrodyn_client::value::Item;
use serde::{Deserialize, Serialize};

use crate::catalog::TableDesc;
use crate::placement::Layout;

openraft::declare_raft_types!(
    /// Openraft type configuration shared by every group on the node.
    pub TypeConfig:
        // Shared, so that the log cache, replication and apply pass an entry around without
        // copying its item; encoded exactly like a bare `Command`.
        D = Arc<Command>,
        R = CommandResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A Raft handle of one group.
pub type RaftHandle = openraft::Raft<TypeConfig>;

/// A replicated operation. Everything a command needs to apply deterministically (timestamps,
/// key bytes) is computed by the proposer and carried in the command, so all replicas apply it
/// identically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Metadata group: create a table (fails if the name is taken).
    CreateTable {
        /// Table name (validated by the proposer).
        name: String,
        /// Key schema.
        schema: KeySchema,
        /// Creation time chosen by the proposer.
        created_ms: u64,
    },
    /// Metadata group: delete a table (fails if absent).
    DeleteTable {
        /// Table name.
        name: String,
    },
    /// Metadata group: record the partition layout (first writer wins; later equal ones no-op).
    SetLayout(Layout),
    /// Data group: write a whole item. Written by versions before [`Command::PutEncoded`]
    /// and still applied from their logs; new writes propose `PutEncoded`.
    Put {
        /// Table id.
        table: u64,
        /// Canonical partition-key bytes.
        pk: Vec<u8>,
        /// Canonical sort-key bytes (empty without a sort key).
        sk: Vec<u8>,
        /// The item. Shared, so that a request handler that proposes it again (after a
        /// leader change) does not copy it; encoded exactly like a bare `Item`.
        item: Arc<Item>,
        /// Hybrid-logical-clock timestamp chosen by the leader.
        hlc: u64,
        /// Region where the write originated.
        region: String,
    },
    /// Data group: delete an item (no-op if absent).
    Delete {
        /// Table id.
        table: u64,
        /// Canonical partition-key bytes.
        pk: Vec<u8>,
        /// Canonical sort-key bytes.
        sk: Vec<u8>,
        /// Hybrid-logical-clock timestamp chosen by the leader.
        hlc: u64,
        /// Region where the write originated.
        region: String,
    },
    /// Data group: remove every item of a dropped table from this partition.
    DropTableData {
        /// Table id.
        table: u64,
    },
    /// Several commands in one log entry, applied in order, one result each (proposal
    /// batching on the leader, see [`proposer`]).
    Batch(Vec<Command>),
    /// Data group: write a whole item, carried already encoded (see [`EncodedItem`]). Last,
    /// so the variants before it keep their encoding and older logs still decode.
    PutEncoded {
        /// Table id.
        table: u64,
        /// Canonical partition-key bytes.
        pk: Vec<u8>,
        /// Canonical sort-key bytes (empty without a sort key).
        sk: Vec<u8>,
        /// The item, encoded once by the leader that accepted the write.
        item: EncodedItem,
        /// Hybrid-logical-clock timestamp chosen by the leader.
        hlc: u64,
        /// Region where the write originated.
        region: String,
    },
}

/// An [`Item`] in the encoding the state machine stores it in (bincode), made once by the
/// leader that accepted the write. Every replica then logs, ships and stores these bytes as
/// they are: none decodes the item into its attribute map only to encode it again (a
/// follower used to allocate every attribute name and value of every write it applied, and
/// each replica encoded the item for its apply). Cheap to clone.
/// Serialized as a byte string (`bytes`' serde support): bincode writes its length and then
/// the bytes in one copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodedItem(bytes::Bytes);

impl EncodedItem {
    /// Encodes `item`.
    pub fn new(item: &Item) -> EncodedItem {
        EncodedItem(encode(item).into())
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The stored value of this item at version `hlc` from `region`: exactly the encoding of
    /// a [`StoredItem`] with these fields (bincode writes a struct as its fields in order), built
    /// by appending rather than by encoding the item again.
    pub fn stored_value(&self, hlc: u64, region: &str) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.0.len() + 16 + region.len());
        v.extend_from_slice(&self.0);
        bincode::serialize_into(&mut v, &(hlc, region)).expect("bincode encoding into a Vec");
        v
    }
}

impl Command {
    /// Whether applying it can make the database grow by more than a tombstone: refused while
    /// the data disk is below its reserve (see `storage::disk`). Deletes and table drops are
    /// not, so users can make room.
    pub fn adds_data(&self) -> bool {
        match self {
            Command::Put { .. }
            | Command::PutEncoded { .. }
            | Command::CreateTable { .. }
            | Command::SetLayout(_) => true,
            Command::Batch(cmds) => cmds.iter().any(Command::adds_data),
            Command::Delete { .. }
            | Command::DeleteTable { .. }
            | Command::DropTableData { .. } => false,
        }
    }

    /// Rough encoded size in bytes, to bound batches.
    pub fn approx_size(&self) -> usize {
        match self {
            Command::Put {
                pk,
                sk,
                item,
                region,
                ..
            } => 64 + pk.len() + sk.len() + region.len() + ferrodyn_client::value::item_size(item),
            Command::PutEncoded {
                pk,
                sk,
                item,
                region,
                ..
            } => 64 + pk.len() + sk.len() + region.len() + item.as_bytes().len(),
            Command::Delete { pk, sk, region, .. } => 64 + pk.len() + sk.len() + region.len(),
            Command::Batch(cmds) => cmds.iter().map(Command::approx_size).sum(),
            _ => 256,
        }
    }
}

/// Why an applied command was refused. Deterministic: every replica refuses alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// The table name is taken.
    TableExists(String),
    /// No such table.
    TableNotFound(String),
}

/// The result of applying a command.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum CommandResult {
    /// Applied (blank and membership entries too).
    #[default]
    Done,
    /// Applied; this is the table created or deleted.
    Table(TableDesc),
    /// Refused; nothing changed.
    Rejected(Rejection),
    /// The results of a [`Command::Batch`], in its order.
    Batch(Vec<CommandResult>),
}

/// An item as stored: the item plus what last-writer-wins replication needs. The field order
/// is part of the format: [`EncodedItem::stored_value`] appends `hlc` and `region` to an
/// encoded item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredItem {
    /// The attributes.
    pub item: Item,
    /// Version: hybrid-logical-clock timestamp of the write.
    pub hlc: u64,
    /// Region that originated the write.
    pub region: String,
}

/// Encodes exactly like [`StoredItem`], from borrowed parts (no copy of the item to store it).
#[derive(Serialize)]
pub(crate) struct StoredItemRef<'a> {
    pub item: &'a Item,
    pub hlc: u64,
    pub region: &'a str,
}

/// Raft timing and log-retention settings of every group on a node.
pub fn raft_config(cfg: &crate::config::RaftSettings) -> openraft::Config {
    openraft::Config {
        cluster_name: "ferrodyn".into(),
        heartbeat_interval: cfg.heartbeat_ms,
        election_timeout_min: cfg.election_timeout_min_ms,
        election_timeout_max: cfg.election_timeout_max_ms,
        install_snapshot_timeout: 10_000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.snapshot_every_logs),
        max_in_snapshot_log_to_keep: cfg.logs_kept_after_snapshot,
        // openraft 0.9 gives every AppendEntries call `heartbeat_interval` to complete (150 ms by
        // default). Keep each call small (~64 items of up to a few KB) so that a follower
        // catching up under load answers in time instead of timing out and retrying forever.
        max_payload_entries: 64,
        // Heartbeats are driven by the node for all its groups at once (node.rs), so that they
        // coalesce into one call per peer.
        enable_heartbeat: false,
        ..Default::default()
    }
}

/// Encodes with bincode; our own types never fail to encode.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serialize(v).expect("bincode encoding of in-memory value")
}

/// Decodes with bincode.
pub fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, bincode::Error> {
    bincode::deserialize(b)
}
