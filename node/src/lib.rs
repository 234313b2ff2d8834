//! `ferrodyn-node`: a Ferrodyn storage node.
//!
//! Layout of the crate, one module per concern:
//! - [`config`]: the node's TOML configuration and its validation.
//! - [`error`]: node errors and their single mapping to wire statuses.
//! - [`storage`]: the node's one RocksDB (column families, key encoding in `storage::keys`,
//!   the group-commit writer, item reads, the free-space reserve).
//! - [`placement`]: the consistent-hash ring and the partition table.
//! - [`raft`]: multi-raft with openraft (type config, log store, state machine, network, groups).
//! - [`catalog`]: the table catalog held by the metadata group.
//! - [`server`]: the gRPC services (public API, routing/forwarding, status, Raft transport).
//! - [`node`]: assembling a node, and its one shutdown path.
//! - [`clock`]: the hybrid logical clock that versions every item.
//! - [`metrics`]: the node's Prometheus metrics and its `/metrics` HTTP endpoint.

pub mod catalog;
pub mod clock;
pub mod config;
pub mod error;
pub mod metrics;
pub mod node;
pub mod placement;
pub mod raft;
pub mod server;
pub mod storage;

pub use config::NodeConfig;
pub use error::NodeError;
pub use node::Node;
