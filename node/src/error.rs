//! Node errors, and their mapping to wire statuses (the only place that does it).

use ferrodyn_client::error::{ErrorKind, WireError};

use crate::storage::StorageError;

/// Everything a request handled by this node can fail with.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// DynamoDB `ValidationException`.
    #[error("{0}")]
    Validation(String),
    /// DynamoDB `ResourceNotFoundException`.
    #[error("{0}")]
    ResourceNotFound(String),
    /// DynamoDB `ResourceInUseException`.
    #[error("{0}")]
    ResourceInUse(String),
    /// This node does not lead the shard; the leader when known.
    #[error("not the leader of shard {group}")]
    NotLeader {
        /// Raft group id.
        group: u64,
        /// Leader node id, if known.
        leader: Option<u64>,
        /// Leader gRPC address, if known.
        leader_addr: Option<String>,
    },
    /// The client's partition table is stale.
    #[error("partition table epoch {client} is stale; current epoch is {epoch}")]
    WrongShard {
        /// Client's epoch.
        client: u64,
        /// Node's epoch.
        epoch: u64,
    },
    /// No leader, no quorum, or shutting down: retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an impossible state.
    #[error("{0}")]
    Internal(String),
    /// The storage layer failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The node could not start (bad config, data directory of another node, ...).
    #[error("{0}")]
    Startup(String),
}

impl NodeError {
    /// The wire form of this error.
    pub fn to_wire(&self) -> WireError {
        let kind = match self {
            NodeError::Validation(_) => ErrorKind::Validation,
            NodeError::ResourceNotFound(_) => ErrorKind::ResourceNotFound,
            NodeError::ResourceInUse(_) => ErrorKind::ResourceInUse,
            NodeError::NotLeader {
                leader,
                leader_addr,
                ..
            } => ErrorKind::NotLeader {
                leader: *leader,
                leader_addr: leader_addr.clone(),
            },
            NodeError::WrongShard { epoch, .. } => ErrorKind::WrongShard { epoch: *epoch },
            NodeError::Unavailable(_) => ErrorKind::Unavailable,
            NodeError::Internal(_) | NodeError::Storage(_) | NodeError::Startup(_) => {
                ErrorKind::Internal
            }
        };
        WireError::new(kind, self.to_string())
    }
}

impl From<WireError> for NodeError {
    /// Errors coming back from a node this one forwarded to.
    fn from(e: WireError) -> Self {
        match e.kind {
            ErrorKind::Validation => NodeError::Validation(e.message),
            ErrorKind::ResourceNotFound => NodeError::ResourceNotFound(e.message),
            ErrorKind::ResourceInUse => NodeError::ResourceInUse(e.message),
            ErrorKind::NotLeader {
                leader,
                leader_addr,
            } => NodeError::NotLeader {
                group: 0,
                leader,
                leader_addr,
            },
            ErrorKind::WrongShard { epoch } => NodeError::WrongShard { client: 0, epoch },
            ErrorKind::Unavailable => NodeError::Unavailable(e.message),
            ErrorKind::ConditionalCheckFailed | ErrorKind::Internal => {
                NodeError::Internal(e.message)
            }
        }
    }
}

impl From<NodeError> for tonic::Status {
    fn from(e: NodeError) -> Self {
        if matches!(e, NodeError::Internal(_) | NodeError::Storage(_)) {
            tracing::error!(error = %e, "internal error");
        }
        e.to_wire().to_status()
    }
}

impl From<ferrodyn_client::value::ValueError> for NodeError {
    fn from(e: ferrodyn_client::value::ValueError) -> Self {
        NodeError::Validation(e.to_string())
    }
}

/// Shorthand result type of request handling.
pub type NodeResult<T> = Result<T, NodeError>;
