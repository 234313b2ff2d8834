//! The node's gRPC server: the public `Ferrodyn` API and the internal `RaftTransport`.
//!
//! - [`api`]: table and item operations.
//! - [`routing`]: forwarding to shard leaders and replicas.
//! - [`status`]: cluster status and routing tables.
//! - [`raft_service`]: incoming Raft messages.
//! - [`testing`]: the test-only clock control, served only with `testing.clock_control`.

pub mod api;
pub mod raft_service;
pub mod routing;
pub mod status;
pub mod testing;

use std::sync::Arc;

use ferrodyn_client::proto::ferrodyn_server::FerrodynServer;
use ferrodyn_client::proto::raft_transport_server::RaftTransportServer;
use ferrodyn_client::proto::testing_server::TestingServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;

use crate::node::NodeCtx;

/// Largest message accepted (a 400 KB item plus framing; snapshot chunks are smaller).
const MAX_MESSAGE: usize = 64 << 20;

/// Serves the services on `listener` until `stop` turns true: `Ferrodyn`, `RaftTransport`,
/// and `Testing` only when the node was configured with `testing.clock_control` (which
/// config validation allows only with `--unsafe-test-mode`); without it, calls to `Testing`
/// get tonic's `Unimplemented`.
pub async fn serve(
    ctx: Arc<NodeCtx>,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let mut server_stop = stop.clone();
    let shutdown = async move {
        let _ = server_stop.wait_for(|s| *s).await;
    };
    let api = FerrodynServer::new(api::Api::new(ctx.clone()))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let testing = ctx
        .testing
        .clock_control
        .then(|| TestingServer::new(testing::TestingService::new(ctx.clone())));
    let raft = RaftTransportServer::new(raft_service::RaftService::new(ctx, stop))
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    // Small request/response messages: without TCP_NODELAY, Nagle's algorithm and delayed
    // ACKs add ~40 ms to every reply. The builder's own nodelay flag only covers listeners it
    // binds itself, so set it on each accepted stream.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|s| {
            if let Err(e) = s.set_nodelay(true) {
                tracing::warn!(error = %e, "cannot set TCP_NODELAY");
            }
        })
    });
    tonic::transport::Server::builder()
        .add_service(api)
        .add_service(raft)
        .add_optional_service(testing)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
