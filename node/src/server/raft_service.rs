//! The internal `RaftTransport` service: hands each incoming Raft message to its group.

use std::sync::Arc;

use ferrodyn_client::proto::{self, RaftRpcKind};
use tonic::{Request, Response, Status};

use crate::node::NodeCtx;
use crate::raft::{decode, encode};

/// Receives Raft messages for every group on this node.
#[derive(Clone)]
pub struct RaftService {
    ctx: Arc<NodeCtx>,
}

impl RaftService {
    /// The service over the node `ctx`.
    pub fn new(ctx: Arc<NodeCtx>) -> Self {
        RaftService { ctx }
    }
}

fn bad(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("undecodable raft message: {e}"))
}

#[tonic::async_trait]
impl proto::raft_transport_server::RaftTransport for RaftService {
    async fn raft(&self, req: Request<proto::RaftRequest>) -> Result<Response<proto::RaftResponse>, Status> {
        let m = req.into_inner();
        if m.to != self.ctx.id {
            return Err(Status::failed_precondition(format!(
                "message for node {} reached node {}",
                m.to, self.ctx.id
            )));
        }
        let raft = self
            .ctx
            .groups
            .get(m.group)
            .ok_or_else(|| Status::not_found(format!("node {} hosts no group {}", self.ctx.id, m.group)))?;
        let payload = match RaftRpcKind::try_from(m.kind).unwrap_or(RaftRpcKind::Unspecified) {
            RaftRpcKind::Append => encode(&raft.append_entries(decode(&m.payload).map_err(bad)?).await),
            RaftRpcKind::Vote => encode(&raft.vote(decode(&m.payload).map_err(bad)?).await),
            RaftRpcKind::Snapshot => encode(&raft.install_snapshot(decode(&m.payload).map_err(bad)?).await),
            RaftRpcKind::Unspecified => return Err(bad("no kind")),
        };
        Ok(Response::new(proto::RaftResponse { payload }))
    }
}
