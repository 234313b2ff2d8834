//! `ferrodyn-client`: everything a program needs to talk to a Ferrodyn cluster.
//!
//! Layout:
//! - [`proto`]: the wire API compiled from `proto/ferrodyn.proto` (tonic/prost). The node
//!   crate depends on these types; this crate never depends on the node.
//! - [`number`]: DynamoDB numbers (38 significant digits, exact, compared numerically).
//! - [`value`]: the ten attribute types, items, DynamoDB JSON and protobuf conversions.
//! - [`schema`]: key schemas and the DynamoDB validation rules for items and keys.
//! - [`partition`]: the stable hash that maps a partition key to a partition.
//! - [`error`]: error names on the wire (DynamoDB's and the routing errors) in one place.
//! - [`client`]: the typed client, which caches the partition table and talks to leaders.
//!
//! The `ferrodyn` CLI binary lives in `src/bin/ferrodyn.rs`.

/// Generated protobuf messages and gRPC stubs of the wire API.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("ferrodyn.v1");
}

pub mod client;
pub mod error;
pub mod number;
pub mod partition;
pub mod schema;
pub mod value;

pub use client::{Client, ClientConfig};
pub use error::{ErrorKind, WireError};
pub use number::Number;
pub use schema::{KeyAttr, KeySchema, KeyType};
pub use value::{AttributeValue, Item};
