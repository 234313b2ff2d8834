//! The test-only `Testing` service: lets the fault-injection suite skew this node's clock.
//!
//! Registered only when the node runs with `--unsafe-test-mode` and `testing.clock_control`
//! (see `server::serve`); every other node answers `Unimplemented` for it.

use std::sync::Arc;

use ferrodyn_client::proto::{self, testing_server::Testing};
use tonic::{Request, Response, Status};

use crate::node::NodeCtx;

/// The `Testing` service of one node.
#[derive(Clone)]
pub struct TestingService {
    ctx: Arc<NodeCtx>,
}

impl TestingService {
    /// The service over the node `ctx`.
    pub fn new(ctx: Arc<NodeCtx>) -> Self {
        TestingService { ctx }
    }
}

#[tonic::async_trait]
impl Testing for TestingService {
    async fn set_clock_offset(
        &self,
        req: Request<proto::SetClockOffsetRequest>,
    ) -> Result<Response<proto::SetClockOffsetResponse>, Status> {
        let offset_ms = req.into_inner().offset_ms;
        let previous_offset_ms = self.ctx.clock.set_offset_ms(offset_ms);
        tracing::warn!(
            node = self.ctx.id,
            previous_offset_ms,
            offset_ms,
            "TEST HOOK: wall-clock offset changed"
        );
        Ok(Response::new(proto::SetClockOffsetResponse {
            previous_offset_ms,
            offset_ms,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ferrodyn_client::proto::testing_client::TestingClient;
    use ferrodyn_client::proto::SetClockOffsetRequest;

    use crate::config::{NodeConfig, PeerConfig};
    use crate::raft::network::FaultInjector;
    use crate::Node;

    /// A one-node cluster on a free loopback port, with `clock_control` as given.
    async fn one_node(dir: &std::path::Path, clock_control: bool) -> Node {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut cfg = NodeConfig {
            node_id: 1,
            data_dir: dir.to_path_buf(),
            partitions: 2,
            replication_factor: 1,
            initial_cluster: vec![PeerConfig {
                id: 1,
                grpc: addr.to_string(),
                region: None,
                peer_addr: None,
            }],
            ..Default::default()
        };
        if clock_control {
            cfg.testing.clock_control = true;
            cfg.testing.clock_offset_ms = -1_000;
            cfg.unsafe_test_mode = true;
        }
        Node::start_with(cfg, listener, Arc::new(FaultInjector::default()))
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clock_offset_is_set_only_where_enabled() {
        let dir = tempfile::tempdir().unwrap();
        let node = one_node(&dir.path().join("on"), true).await;
        assert_eq!(node.ctx().clock.offset_ms(), -1_000);
        let mut c = TestingClient::connect(format!("http://{}", node.local_addr()))
            .await
            .unwrap();
        let r = c
            .set_clock_offset(SetClockOffsetRequest { offset_ms: 7_000 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((r.previous_offset_ms, r.offset_ms), (-1_000, 7_000));
        assert_eq!(node.ctx().clock.offset_ms(), 7_000);
        node.shutdown().await;

        let node = one_node(&dir.path().join("off"), false).await;
        let mut c = TestingClient::connect(format!("http://{}", node.local_addr()))
            .await
            .unwrap();
        let e = c
            .set_clock_offset(SetClockOffsetRequest { offset_ms: 7_000 })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unimplemented);
        assert_eq!(node.ctx().clock.offset_ms(), 0);
        node.shutdown().await;
    }
}
