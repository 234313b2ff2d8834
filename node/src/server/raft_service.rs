//! The internal `RaftTransport` service: hands each incoming Raft message to its group.

use std::sync::Arc;

use ferrodyn_client::proto::{self, RaftRpcKind};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::node::NodeCtx;
use crate::raft::{decode, encode};

/// Receives Raft messages for every group on this node.
#[derive(Clone)]
pub struct RaftService {
    ctx: Arc<NodeCtx>,
    /// The node's stop signal: long-lived streams end on it, so shutdown need not wait for
    /// peers to hang up.
    stop: watch::Receiver<bool>,
}

impl RaftService {
    /// The service over the node `ctx`, stopping its streams when `stop` turns true.
    pub fn new(ctx: Arc<NodeCtx>, stop: watch::Receiver<bool>) -> Self {
        RaftService { ctx, stop }
    }
}

fn bad(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("undecodable raft message: {e}"))
}

/// A dispatched message's outcome as the wire carries it in a batch or stream response: the
/// payload, or an empty payload and the error message.
fn outcome(r: Result<Vec<u8>, Status>) -> (Vec<u8>, String) {
    match r {
        Ok(payload) => (payload, String::new()),
        Err(s) => (Vec::new(), s.message().to_string()),
    }
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

/// Bound of a stream's outgoing response queue (backpressure on a peer that stops reading).
const STREAM_RESPONSES: usize = 256;

impl RaftService {
    /// Serves one peer's `RaftStream`: dispatches every incoming message concurrently and
    /// sends each response as soon as it completes, gathering those that complete together
    /// into one response message. Ends when the peer closes its side and every message is
    /// answered, or when the peer stops listening.
    async fn serve_stream(
        self,
        mut inbound: Streaming<proto::RaftBatchRequest>,
        out: mpsc::Sender<Result<proto::RaftStreamResponse, Status>>,
    ) {
        let mut stop = self.stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::pin!(stopped);
        let mut pending = FuturesUnordered::new();
        let mut inbound_open = true;
        let item = |id: u64, r: Result<Vec<u8>, Status>| {
            let (payload, error) = outcome(r);
            proto::RaftStreamItem { id, payload, error }
        };
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                batch = inbound.next(), if inbound_open => match batch {
                    Some(Ok(batch)) => {
                        for m in batch.requests {
                            let id = m.id;
                            pending.push(self.dispatch(m).map(move |r| (id, r)));
                        }
                    }
                    Some(Err(status)) => {
                        tracing::debug!(error = %status, "raft stream closed by an error");
                        inbound_open = false;
                    }
                    None => inbound_open = false,
                },
                Some((id, r)) = pending.next(), if !pending.is_empty() => {
                    let mut items = vec![item(id, r)];
                    while let Some(Some((id, r))) = pending.next().now_or_never() {
                        items.push(item(id, r));
                    }
                    if out
                        .send(Ok(proto::RaftStreamResponse { items }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                else => return,
            }
            if !inbound_open && pending.is_empty() {
                return;
            }
        }
    }
}

#[tonic::async_trait]
impl proto::raft_transport_server::RaftTransport for RaftService {
    type RaftStreamStream = ReceiverStream<Result<proto::RaftStreamResponse, Status>>;

    async fn raft_stream(
        &self,
        req: Request<Streaming<proto::RaftBatchRequest>>,
    ) -> Result<Response<Self::RaftStreamStream>, Status> {
        let (tx, rx) = mpsc::channel(STREAM_RESPONSES);
        tokio::spawn(self.clone().serve_stream(req.into_inner(), tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

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
            .map(|r| {
                let (payload, error) = outcome(r);
                proto::RaftBatchItem { payload, error }
            })
            .collect();
        Ok(Response::new(proto::RaftBatchResponse { responses }))
    }
}
