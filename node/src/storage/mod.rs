//! The node's single RocksDB instance and the encoding of every key in it.
//!
//! - [`keys`]: column families and key encodings (all of them, in one place).
//! - [`engine`]: opening the database and the group-commit writer thread through which every
//!   write goes, so that one WAL fsync serves all Raft groups on the node.
//! - [`disk`]: the data disk's free space and the reserve below which writes are refused.

pub mod disk;
pub mod engine;
pub mod items;
pub mod keys;

pub use engine::{Durability, Storage, StorageError};
