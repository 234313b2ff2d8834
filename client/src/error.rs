//! Error names on the wire, in one place.
//!
//! A failed call is a gRPC status whose metadata names the error: `x-ferrodyn-error` holds a
//! DynamoDB error name (`ValidationException`, ...) or a routing error (`NotLeader`,
//! `WrongShard`, `Unavailable`); `x-ferrodyn-leader` / `x-ferrodyn-leader-addr` and
//! `x-ferrodyn-epoch` carry what a client needs to retry. The node builds statuses with
//! [`WireError::to_status`]; the client reads them back with [`WireError::from_status`].

use std::fmt;

/// Metadata key naming the error.
pub const ERROR_HEADER: &str = "x-ferrodyn-error";
/// Metadata key with the leader's node id (NotLeader).
pub const LEADER_HEADER: &str = "x-ferrodyn-leader";
/// Metadata key with the leader's gRPC address (NotLeader).
pub const LEADER_ADDR_HEADER: &str = "x-ferrodyn-leader-addr";
/// Metadata key with the partition-table epoch (WrongShard), and, on requests, the
/// client's cached epoch.
pub const EPOCH_HEADER: &str = "x-ferrodyn-epoch";
/// Request metadata: `direct` asks the node to answer `NotLeader` instead of forwarding
/// (the client library routes itself; forwarded requests carry it to prevent loops).
pub const ROUTE_HEADER: &str = "x-ferrodyn-route";
/// Value of [`ROUTE_HEADER`] that disables forwarding.
pub const ROUTE_DIRECT: &str = "direct";

/// What went wrong, as a client branches on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// DynamoDB `ValidationException`: the request is malformed; retrying will not help.
    Validation,
    /// DynamoDB `ResourceNotFoundException`: no such table.
    ResourceNotFound,
    /// DynamoDB `ResourceInUseException`: the table exists already (or is being deleted).
    ResourceInUse,
    /// DynamoDB `ConditionalCheckFailedException`.
    ConditionalCheckFailed,
    /// DynamoDB `InternalServerError`.
    Internal,
    /// This node does not lead the shard; `leader` is the node that does, when known.
    NotLeader {
        /// Leader node id, when known.
        leader: Option<u64>,
        /// Leader gRPC address, when known.
        leader_addr: Option<String>,
    },
    /// The client's partition table is older than the node's.
    WrongShard {
        /// The node's partition-table epoch.
        epoch: u64,
    },
    /// The shard cannot serve now (no leader, no quorum, node shutting down): retry later.
    Unavailable,
}

impl ErrorKind {
    /// The name on the wire and in CLI output.
    pub fn name(&self) -> &'static str {
        match self {
            ErrorKind::Validation => "ValidationException",
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::ResourceInUse => "ResourceInUseException",
            ErrorKind::ConditionalCheckFailed => "ConditionalCheckFailedException",
            ErrorKind::Internal => "InternalServerError",
            ErrorKind::NotLeader { .. } => "NotLeader",
            ErrorKind::WrongShard { .. } => "WrongShard",
            ErrorKind::Unavailable => "Unavailable",
        }
    }

    /// Whether a client may retry the same request (after refreshing routes).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ErrorKind::NotLeader { .. } | ErrorKind::WrongShard { .. } | ErrorKind::Unavailable
        )
    }
}

/// An error as it crosses the wire: a kind and a human message naming the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct WireError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// What exactly, for a human.
    pub message: String,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl WireError {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        WireError {
            kind,
            message: message.into(),
        }
    }

    /// Shorthand for a `ValidationException`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }

    /// The gRPC status carrying this error.
    pub fn to_status(&self) -> tonic::Status {
        let code = match self.kind {
            ErrorKind::Validation => tonic::Code::InvalidArgument,
            ErrorKind::ResourceNotFound => tonic::Code::NotFound,
            ErrorKind::ResourceInUse => tonic::Code::AlreadyExists,
            ErrorKind::ConditionalCheckFailed => tonic::Code::FailedPrecondition,
            ErrorKind::Internal => tonic::Code::Internal,
            ErrorKind::NotLeader { .. } | ErrorKind::WrongShard { .. } => tonic::Code::Aborted,
            ErrorKind::Unavailable => tonic::Code::Unavailable,
        };
        let mut status = tonic::Status::new(code, self.message.clone());
        let md = status.metadata_mut();
        md.insert(ERROR_HEADER, self.kind.name().parse().expect("ascii name"));
        match &self.kind {
            ErrorKind::NotLeader {
                leader,
                leader_addr,
            } => {
                if let Some(id) = leader {
                    md.insert(LEADER_HEADER, id.to_string().parse().expect("digits"));
                }
                if let Some(addr) = leader_addr.as_ref().and_then(|a| a.parse().ok()) {
                    md.insert(LEADER_ADDR_HEADER, addr);
                }
            }
            ErrorKind::WrongShard { epoch } => {
                md.insert(EPOCH_HEADER, epoch.to_string().parse().expect("digits"));
            }
            _ => {}
        }
        status
    }

    /// Reads an error back from a gRPC status. A status without our metadata (a transport
    /// failure, a dead peer) becomes `Unavailable` when retrying can help, else `Internal`.
    pub fn from_status(status: &tonic::Status) -> Self {
        let md = status.metadata();
        let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let kind = match get(ERROR_HEADER).as_deref() {
            Some("ValidationException") => ErrorKind::Validation,
            Some("ResourceNotFoundException") => ErrorKind::ResourceNotFound,
            Some("ResourceInUseException") => ErrorKind::ResourceInUse,
            Some("ConditionalCheckFailedException") => ErrorKind::ConditionalCheckFailed,
            Some("InternalServerError") => ErrorKind::Internal,
            Some("NotLeader") => ErrorKind::NotLeader {
                leader: get(LEADER_HEADER).and_then(|s| s.parse().ok()),
                leader_addr: get(LEADER_ADDR_HEADER),
            },
            Some("WrongShard") => ErrorKind::WrongShard {
                epoch: get(EPOCH_HEADER).and_then(|s| s.parse().ok()).unwrap_or(0),
            },
            Some("Unavailable") => ErrorKind::Unavailable,
            _ => match status.code() {
                tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Unknown => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
        };
        WireError {
            kind,
            message: status.message().to_owned(),
        }
    }
}

impl From<tonic::Status> for WireError {
    fn from(status: tonic::Status) -> Self {
        WireError::from_status(&status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_status() {
        for kind in [
            ErrorKind::Validation,
            ErrorKind::ResourceNotFound,
            ErrorKind::ResourceInUse,
            ErrorKind::Internal,
            ErrorKind::NotLeader {
                leader: Some(3),
                leader_addr: Some("127.0.0.1:7103".into()),
            },
            ErrorKind::NotLeader {
                leader: None,
                leader_addr: None,
            },
            ErrorKind::WrongShard { epoch: 7 },
            ErrorKind::Unavailable,
        ] {
            let e = WireError::new(kind, "why");
            assert_eq!(WireError::from_status(&e.to_status()), e);
        }
    }

    #[test]
    fn transport_failure_is_retryable() {
        let e = WireError::from_status(&tonic::Status::unavailable("connection refused"));
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.kind.is_retryable());
    }
}
