//! The table catalog: what tables exist and their key schemas.
//!
//! The catalog is the metadata Raft group's state. Every node applies the same log, keeps the
//! catalog in RocksDB (group 0's data range) and publishes an in-memory copy through a
//! `watch` channel so request handlers read it without touching the disk.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrodyn_client::proto;
use ferrodyn_client::schema::KeySchema;
use serde::{Deserialize, Serialize};

use crate::placement::Layout;

/// Lifecycle of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TableStatus {
    /// Serving reads and writes.
    Active,
    /// Deleted; reported once, in DeleteTable's answer (the name is free again at once).
    Deleting,
}

/// A table as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDesc {
    /// Unique id, never reused (a re-created table gets a new id, so old data never leaks in).
    pub id: u64,
    /// User-visible name.
    pub name: String,
    /// Partition and sort key.
    pub schema: KeySchema,
    /// Lifecycle state.
    pub status: TableStatus,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
}

impl TableDesc {
    /// The wire description.
    pub fn to_proto(&self) -> proto::TableDescription {
        let (pk, sk) = self.schema.to_proto();
        proto::TableDescription {
            table_name: self.name.clone(),
            table_id: self.id,
            partition_key: Some(pk),
            sort_key: sk,
            table_status: match self.status {
                TableStatus::Active => "ACTIVE".into(),
                TableStatus::Deleting => "DELETING".into(),
            },
            creation_time_ms: self.created_ms,
        }
    }
}

/// The metadata group's state: tables and the partition layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Tables by name.
    pub tables: BTreeMap<String, TableDesc>,
    /// Ids of dropped tables whose data may still need sweeping.
    pub dropped: Vec<u64>,
    /// Next table id to hand out.
    pub next_table_id: u64,
    /// The partition table, once the metadata group has recorded it.
    pub layout: Option<Layout>,
}

/// Shared, cheaply cloned snapshot of the catalog.
pub type CatalogRef = Arc<Catalog>;
