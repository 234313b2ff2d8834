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

impl RaftService {
    /// Hands one message to its group and returns the encoded openraft response.
    async fn dispatch(&self, m: proto::RaftRequest) -> Result<Vec<u8>, Status> {
        if m.to != self.ctx.id {
            return Err(Status::failed_precondition(format!(
                "message for node {} reached node {}",
                m.to, self.ctx.id
            )));
        }
        let raft = self.ctx.groups.get(m.group).ok_or_else(|| {
            Status::not_found(format!("node {} hosts no group {}", self.ctx.id, m.group))
        })?;
        let payload = match RaftRpcKind::try_from(m.kind).unwrap_or(RaftRpcKind::Unspecified) {
            RaftRpcKind::Append => {
                encode(&raft.append_entries(decode(&m.payload).map_err(bad)?).await)
            }
            RaftRpcKind::Vote => encode(&raft.vote(decode(&m.payload).map_err(bad)?).await),
            RaftRpcKind::Snapshot => encode(
                &raft
                    .install_snapshot(decode(&m.payload).map_err(bad)?)
                    .await,
            ),
            RaftRpcKind::Unspecified => return Err(bad("no kind")),
        };
        Ok(payload)
    }
}

#[tonic::async_trait]
impl proto::raft_transport_server::RaftTransport for RaftService {
    async fn raft(
        &self,
        req: Request<proto::RaftRequest>,
    ) -> Result<Response<proto::RaftResponse>, Status> {
        let payload = self.dispatch(req.into_inner()).await?;
        Ok(Response::new(proto::RaftResponse { payload }))
    }

    async fn raft_batch(
        &self,
        req: Request<proto::RaftBatchRequest>,
    ) -> Result<Response<proto::RaftBatchResponse>, Status> {
        // Groups are independent: handle the batch's messages concurrently.
        let results = futures::future::join_all(
            req.into_inner()
                .requests
                .into_iter()
                .map(|m| self.dispatch(m)),
        )
        .await;
        let responses = results
            .into_iter()
            .map(|r| match r {
                Ok(payload) => proto::RaftBatchItem {
                    payload,
                    error: String::new(),
                },
                Err(s) => proto::RaftBatchItem {
                    payload: Vec::new(),
                    error: s.message().to_string(),
                },
            })
            .collect();
        Ok(Response::new(proto::RaftBatchResponse { responses }))
    }
}
