//! Raft messages between nodes: one tonic channel per peer node carries every group's traffic.
//!
//! Each message names its group; the receiving node's `RaftTransport` service hands it to that
//! group. Messages to one peer go through that peer's sender task, which coalesces whatever is
//! queued into one batch on the peer's long-lived `RaftStream`; responses come back on it by
//! message id, as each completes. A snapshot chunk goes as its own `RaftBatch` call.
//!
//! Heartbeats (which the node triggers for all the groups it leads at once, see `node.rs`)
//! wait up to [`HEARTBEAT_LINGER`] for each other, so an idle node sends about one heartbeat
//! call per peer per interval instead of one per group. Payloads are openraft's
//! request/response types encoded with bincode. A [`FaultInjector`] sits on the sending side
//! of every node-to-node call (Raft and forwarded client requests), so tests can drop, delay
//! and partition links without touching sockets.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ferrodyn_client::proto::raft_transport_client::RaftTransportClient;
use ferrodyn_client::proto::{RaftBatchRequest, RaftRequest, RaftRpcKind};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::{Channel, Endpoint};

use super::{decode, encode, TypeConfig};

/// Per-link faults injected on the sending side; empty in production.
#[derive(Debug, Default)]
pub struct FaultInjector {
    inner: RwLock<Faults>,
}

#[derive(Debug, Default, Clone)]
struct Faults {
    /// Directed links (from, to) that drop every message.
    blocked: HashSet<(u64, u64)>,
    /// Probability of dropping any message, 0.0..=1.0.
    drop_rate: f64,
    /// Delay added to every message.
    delay: Duration,
}

/// Why a fault-injected send did not happen.
#[derive(Debug, thiserror::Error)]
#[error("link {from}->{to} cut by fault injection")]
pub struct LinkCut {
    from: u64,
    to: u64,
}

impl FaultInjector {
    /// Cuts both directions between `a` and `b`.
    pub fn partition(&self, a: u64, b: u64) {
        let mut f = self.inner.write().expect("faults lock");
        f.blocked.insert((a, b));
        f.blocked.insert((b, a));
    }

    /// Cuts `node` off from every node in `others`, both directions.
    pub fn isolate(&self, node: u64, others: &[u64]) {
        for &o in others {
            if o != node {
                self.partition(node, o);
            }
        }
    }

    /// Removes every fault.
    pub fn heal(&self) {
        *self.inner.write().expect("faults lock") = Faults::default();
    }

    /// Drops each message with probability `rate`.
    pub fn set_drop_rate(&self, rate: f64) {
        self.inner.write().expect("faults lock").drop_rate = rate.clamp(0.0, 1.0);
    }

    /// Delays every message by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.inner.write().expect("faults lock").delay = delay;
    }

    /// Applies the faults of link `from -> to`: waits out any delay, or refuses the send.
    pub async fn pass(&self, from: u64, to: u64) -> Result<(), LinkCut> {
        let (blocked, delay) = {
            let f = self.inner.read().expect("faults lock");
            let dropped = f.drop_rate > 0.0 && rand::random::<f64>() < f.drop_rate;
            (dropped || f.blocked.contains(&(from, to)), f.delay)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if blocked {
            return Err(LinkCut { from, to });
        }
        Ok(())
    }
}

/// How long a heartbeat waits for other groups' heartbeats to the same peer.
pub const HEARTBEAT_LINGER: Duration = Duration::from_millis(2);
/// Most messages in one batch call.
const MAX_BATCH: usize = 256;
/// Bound of each peer's outgoing queue (backpressure on the groups beyond it).
const PEER_QUEUE: usize = 1024;
/// Upper bound on one batch call (callers time out earlier, by their own RPC options).
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// One Raft message waiting in a peer's queue.
struct Outgoing {
    req: RaftRequest,
    heartbeat: bool,
    reply: oneshot::Sender<Result<Vec<u8>, tonic::Status>>,
}

/// Lazily connected channels to every peer node, shared by all groups and by request
/// forwarding: one HTTP/2 connection per peer.
pub struct Peers {
    self_id: u64,
    /// Every node's advertised gRPC address (what clients are told).
    addrs: HashMap<u64, String>,
    /// Where this node dials a node instead of its advertised address (`peer_addr` in this
    /// node's own config); absent for most nodes.
    dial: HashMap<u64, String>,
    channels: RwLock<HashMap<u64, Channel>>,
    senders: RwLock<HashMap<u64, mpsc::Sender<Outgoing>>>,
    faults: Arc<FaultInjector>,
    /// Until when the node's heartbeat clock is emitting a burst; only heartbeats sent in a
    /// burst wait for each other. Other empty appends (a strong read's leadership check)
    /// must not wait.
    burst_until: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
}

impl Peers {
    /// Peers of node `self_id`, given every node's gRPC address.
    pub fn new(self_id: u64, addrs: HashMap<u64, String>, faults: Arc<FaultInjector>) -> Self {
        Peers {
            self_id,
            addrs,
            dial: HashMap::new(),
            channels: RwLock::new(HashMap::new()),
            senders: RwLock::new(HashMap::new()),
            faults,
            burst_until: Default::default(),
        }
    }

    /// Dials node `id` at `dial[id]` instead of its advertised address, for every node listed
    /// (node-to-node traffic only; [`Peers::addr`] still returns the advertised address).
    pub fn with_dial_addrs(mut self, dial: HashMap<u64, String>) -> Self {
        self.dial = dial;
        self
    }

    /// Marks the start of a heartbeat burst: heartbeats queued in the next
    /// [`HEARTBEAT_LINGER`] are coalesced per peer.
    pub fn begin_heartbeat_burst(&self) {
        *self.burst_until.lock().expect("burst lock") =
            Some(tokio::time::Instant::now() + HEARTBEAT_LINGER);
    }

    /// The queue of Raft messages to node `id`, starting its sender task on first use.
    fn sender(&self, id: u64) -> Option<mpsc::Sender<Outgoing>> {
        if let Some(s) = self.senders.read().expect("senders lock").get(&id) {
            return Some(s.clone());
        }
        let ch = self.channel(id)?;
        let mut senders = self.senders.write().expect("senders lock");
        let s = senders.entry(id).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            tokio::spawn(peer_sender(ch, rx, self.burst_until.clone()));
            tx
        });
        Some(s.clone())
    }

    /// This node's id.
    pub fn self_id(&self) -> u64 {
        self.self_id
    }

    /// The advertised gRPC address of node `id`: the one to tell clients (leader hints).
    pub fn addr(&self, id: u64) -> Option<&str> {
        self.addrs.get(&id).map(String::as_str)
    }

    /// The address this node dials to reach node `id`: its `peer_addr` override, else its
    /// advertised address.
    pub fn dial_addr(&self, id: u64) -> Option<&str> {
        let advertised = self.addrs.get(&id)?;
        Some(self.dial.get(&id).unwrap_or(advertised))
    }

    /// Every node id, this one included.
    pub fn ids(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.addrs.keys().copied().collect();
        v.sort();
        v
    }

    /// The fault injector of outgoing links.
    pub fn faults(&self) -> &Arc<FaultInjector> {
        &self.faults
    }

    /// The shared channel to node `id` (None for an unknown node).
    pub fn channel(&self, id: u64) -> Option<Channel> {
        if let Some(c) = self.channels.read().expect("channels lock").get(&id) {
            return Some(c.clone());
        }
        let addr = self.dial_addr(id)?;
        let ep = Endpoint::from_shared(format!("http://{addr}"))
            .ok()?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5));
        let ch = ep.connect_lazy();
        self.channels
            .write()
            .expect("channels lock")
            .entry(id)
            .or_insert(ch.clone());
        Some(ch)
    }
}

/// Most batches queued on a peer's stream before its sender waits (backpressure).
const STREAM_DEPTH: usize = 64;

/// The replies waiting on one `RaftStream`, by message id.
#[derive(Default)]
struct StreamPending {
    replies: HashMap<u64, oneshot::Sender<Result<Vec<u8>, tonic::Status>>>,
    next_id: u64,
    /// Set (under the lock) when the stream has ended; no reply is registered after it.
    closed: bool,
}

/// A peer's open `RaftStream`: batches go out on it, and its reader task hands each response
/// to the message's reply by id. When the stream ends (the peer went away, the connection
/// broke), every reply still waiting gets the error, and the next batch opens a new stream.
struct PeerStream {
    tx: mpsc::Sender<RaftBatchRequest>,
    pending: Arc<std::sync::Mutex<StreamPending>>,
}

impl PeerStream {
    fn open(client: RaftTransportClient<Channel>) -> PeerStream {
        let (tx, rx) = mpsc::channel(STREAM_DEPTH);
        let pending = Arc::new(std::sync::Mutex::new(StreamPending::default()));
        tokio::spawn(read_stream(client, rx, pending.clone()));
        PeerStream { tx, pending }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StreamPending> {
        self.pending.lock().expect("raft stream lock")
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.lock().closed
    }

    /// Numbers the messages, registers their replies and queues them as one batch.
    async fn send(&self, batch: Vec<Outgoing>) {
        let mut requests = Vec::with_capacity(batch.len());
        {
            let mut p = self.lock();
            for o in batch {
                if p.closed {
                    let _ = o
                        .reply
                        .send(Err(tonic::Status::unavailable("raft stream closed")));
                    continue;
                }
                p.next_id += 1;
                let id = p.next_id;
                let mut req = o.req;
                req.id = id;
                p.replies.insert(id, o.reply);
                requests.push(req);
            }
        }
        // If the reader has ended, it fails (or already failed) every reply registered above.
        if !requests.is_empty() {
            let _ = self.tx.send(RaftBatchRequest { requests }).await;
        }
    }
}

/// Runs one `RaftStream` call: sends what `rx` yields, and completes replies as responses
/// arrive; when the call ends, fails every reply still waiting.
async fn read_stream(
    mut client: RaftTransportClient<Channel>,
    rx: mpsc::Receiver<RaftBatchRequest>,
    pending: Arc<std::sync::Mutex<StreamPending>>,
) {
    let run = async {
        let mut responses = client
            .raft_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?
            .into_inner();
        while let Some(resp) = responses.message().await? {
            let mut p = pending.lock().expect("raft stream lock");
            for item in resp.items {
                if let Some(reply) = p.replies.remove(&item.id) {
                    let _ = reply.send(if item.error.is_empty() {
                        Ok(item.payload)
                    } else {
                        Err(tonic::Status::internal(item.error))
                    });
                }
            }
        }
        Ok::<(), tonic::Status>(())
    };
    let status = match run.await {
        Ok(()) => tonic::Status::unavailable("raft stream ended by the peer"),
        Err(s) => s,
    };
    tracing::debug!(error = %status, "raft stream ended");
    let mut p = pending.lock().expect("raft stream lock");
    p.closed = true;
    for (_, reply) in p.replies.drain() {
        let _ = reply.send(Err(status.clone()));
    }
}

/// Drains one peer's queue into batches sent on the peer's `RaftStream` (opened, and after a
/// failure reopened, on demand). A batch holding a snapshot chunk goes as its own call on its
/// own task instead, so a large chunk does not hold up the stream. Ends when every `Peers`
/// handle is dropped.
async fn peer_sender(
    ch: Channel,
    mut rx: mpsc::Receiver<Outgoing>,
    burst_until: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
) {
    let client = RaftTransportClient::new(ch)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    let mut stream: Option<PeerStream> = None;
    while let Some(first) = rx.recv().await {
        let burst = *burst_until.lock().expect("burst lock");
        let linger = match burst {
            Some(until) if first.heartbeat && tokio::time::Instant::now() < until => Some(until),
            _ => None,
        };
        let mut batch = vec![first];
        // Let the other tasks that are ready to run now (other groups' replication streams)
        // queue their messages first, so that one call carries them all.
        tokio::task::yield_now().await;
        if let Some(until) = linger {
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(o)) => batch.push(o),
                    _ => break,
                }
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        if batch
            .iter()
            .any(|o| o.req.kind == RaftRpcKind::Snapshot as i32)
        {
            tokio::spawn(send_batch(client.clone(), batch));
            continue;
        }
        let open = match &stream {
            Some(s) if !s.is_closed() => s,
            _ => stream.insert(PeerStream::open(client.clone())),
        };
        open.send(batch).await;
    }
}

async fn send_batch(mut client: RaftTransportClient<Channel>, mut batch: Vec<Outgoing>) {
    if batch.len() == 1 {
        let o = batch.pop().expect("one message");
        let mut req = tonic::Request::new(o.req);
        req.set_timeout(BATCH_TIMEOUT);
        let r = client.raft(req).await.map(|r| r.into_inner().payload);
        let _ = o.reply.send(r);
        return;
    }
    let (reqs, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|o| (o.req, o.reply)).unzip();
    let mut req = tonic::Request::new(RaftBatchRequest { requests: reqs });
    req.set_timeout(BATCH_TIMEOUT);
    match client.raft_batch(req).await {
        Ok(resp) => {
            let mut items = resp.into_inner().responses.into_iter();
            for reply in replies {
                let r = match items.next() {
                    Some(item) if item.error.is_empty() => Ok(item.payload),
                    Some(item) => Err(tonic::Status::internal(item.error)),
                    None => Err(tonic::Status::internal("short batch response")),
                };
                let _ = reply.send(r);
            }
        }
        Err(status) => {
            for reply in replies {
                let _ = reply.send(Err(status.clone()));
            }
        }
    }
}

/// Creates the per-target network clients of one group.
pub struct NetworkFactory {
    group: u64,
    peers: Arc<Peers>,
}

impl NetworkFactory {
    /// The factory of group `group`.
    pub fn new(group: u64, peers: Arc<Peers>) -> Self {
        NetworkFactory { group, peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = GroupNetwork;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> GroupNetwork {
        GroupNetwork {
            group: self.group,
            target,
            peers: self.peers.clone(),
        }
    }
}

/// Sends one group's Raft messages to one target node.
pub struct GroupNetwork {
    group: u64,
    target: u64,
    peers: Arc<Peers>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl GroupNetwork {
    async fn call<Req, Resp, E>(
        &self,
        kind: RaftRpcKind,
        req: &Req,
        heartbeat: bool,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let from = self.peers.self_id();
        self.peers
            .faults()
            .pass(from, self.target)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let sender = self.peers.sender(self.target).ok_or_else(|| {
            RPCError::Unreachable(Unreachable::new(&TransportError(format!(
                "unknown node {}",
                self.target
            ))))
        })?;
        let msg = RaftRequest {
            group: self.group,
            from,
            to: self.target,
            kind: kind as i32,
            payload: encode(req),
            id: 0,
        };
        let (reply, rx) = oneshot::channel();
        let queued = sender.send(Outgoing {
            req: msg,
            heartbeat,
            reply,
        });
        let payload = match tokio::time::timeout(option.hard_ttl(), async {
            queued
                .await
                .map_err(|_| tonic::Status::unavailable("peer sender stopped"))?;
            rx.await
                .map_err(|_| tonic::Status::unavailable("peer sender dropped the message"))?
        })
        .await
        {
            Err(_) => {
                return Err(RPCError::Network(NetworkError::new(&TransportError(
                    format!("raft rpc to node {} timed out", self.target),
                ))))
            }
            Ok(Err(status)) => {
                let e = TransportError(format!("node {}: {}", self.target, status.message()));
                return Err(match status.code() {
                    tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&e)),
                    _ => RPCError::Network(NetworkError::new(&e)),
                });
            }
            Ok(Ok(p)) => p,
        };
        let result: Result<Resp, RaftError<u64, E>> =
            decode(&payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for GroupNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let heartbeat = rpc.entries.is_empty();
        self.call(RaftRpcKind::Append, &rpc, heartbeat, &option)
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(RaftRpcKind::Snapshot, &rpc, false, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(RaftRpcKind::Vote, &rpc, false, &option).await
    }

    /// A dead peer is retried every 200 ms: often enough to notice its return quickly, rarely
    /// enough to cost nothing while it is down.
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrodyn_client::proto::raft_transport_server::{RaftTransport, RaftTransportServer};
    use ferrodyn_client::proto::{
        RaftBatchResponse, RaftResponse, RaftStreamItem, RaftStreamResponse,
    };
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio_stream::StreamExt;

    /// A peer node's transport for these tests: echoes each message's payload, answering the
    /// messages of a batch in reverse order; or, when `hang_up`, ends every stream after its
    /// first batch without answering.
    #[derive(Clone, Default)]
    struct EchoPeer {
        opens: Arc<AtomicUsize>,
        hang_up: bool,
    }

    #[tonic::async_trait]
    impl RaftTransport for EchoPeer {
        type RaftStreamStream =
            tokio_stream::wrappers::ReceiverStream<Result<RaftStreamResponse, tonic::Status>>;

        async fn raft(
            &self,
            req: tonic::Request<RaftRequest>,
        ) -> Result<tonic::Response<RaftResponse>, tonic::Status> {
            Ok(tonic::Response::new(RaftResponse {
                payload: req.into_inner().payload,
            }))
        }

        async fn raft_batch(
            &self,
            _req: tonic::Request<RaftBatchRequest>,
        ) -> Result<tonic::Response<RaftBatchResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("not used"))
        }

        async fn raft_stream(
            &self,
            req: tonic::Request<tonic::Streaming<RaftBatchRequest>>,
        ) -> Result<tonic::Response<Self::RaftStreamStream>, tonic::Status> {
            self.opens.fetch_add(1, Ordering::SeqCst);
            let mut inbound = req.into_inner();
            let (tx, rx) = mpsc::channel(16);
            let hang_up = self.hang_up;
            tokio::spawn(async move {
                while let Some(Ok(batch)) = inbound.next().await {
                    if hang_up {
                        return;
                    }
                    let items = batch
                        .requests
                        .into_iter()
                        .rev()
                        .map(|m| RaftStreamItem {
                            id: m.id,
                            payload: m.payload,
                            error: String::new(),
                        })
                        .collect();
                    if tx.send(Ok(RaftStreamResponse { items })).await.is_err() {
                        return;
                    }
                }
            });
            Ok(tonic::Response::new(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            ))
        }
    }

    /// Node 1's `Peers`, with node 2 served by `peer`.
    async fn peers_with(peer: EchoPeer) -> Peers {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(RaftTransportServer::new(peer))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let addrs = [(1, "127.0.0.1:1".to_string()), (2, addr)]
            .into_iter()
            .collect();
        Peers::new(1, addrs, Arc::default())
    }

    /// Queues one message to node 2 and returns where its response will arrive.
    async fn send(peers: &Peers, payload: u8) -> oneshot::Receiver<Result<Vec<u8>, tonic::Status>> {
        let (reply, rx) = oneshot::channel();
        let req = RaftRequest {
            group: 7,
            from: 1,
            to: 2,
            kind: RaftRpcKind::Append as i32,
            payload: vec![payload],
            id: 0,
        };
        peers
            .sender(2)
            .unwrap()
            .send(Outgoing {
                req,
                heartbeat: false,
                reply,
            })
            .await
            .ok()
            .unwrap();
        rx
    }

    #[tokio::test]
    async fn stream_matches_responses_to_messages_by_id() {
        let peer = EchoPeer::default();
        let peers = peers_with(peer.clone()).await;
        let mut waits = Vec::new();
        for p in 0..50u8 {
            waits.push((p, send(&peers, p).await));
        }
        for (p, rx) in waits {
            let got = tokio::time::timeout(Duration::from_secs(5), rx)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(got, vec![p], "message {p} got another's response");
        }
        assert_eq!(
            peer.opens.load(Ordering::SeqCst),
            1,
            "one stream carries it all"
        );
    }

    #[tokio::test]
    async fn a_stream_that_ends_fails_its_messages_and_the_next_send_reopens() {
        let peer = EchoPeer {
            hang_up: true,
            ..Default::default()
        };
        let peers = peers_with(peer.clone()).await;
        let first = send(&peers, 1).await;
        let r = tokio::time::timeout(Duration::from_secs(5), first)
            .await
            .expect("a waiting message is failed when its stream ends")
            .unwrap();
        assert_eq!(r.unwrap_err().code(), tonic::Code::Unavailable);
        // The next message goes on a new stream.
        let second = send(&peers, 2).await;
        let r = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .unwrap()
            .unwrap();
        assert!(r.is_err());
        assert_eq!(peer.opens.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn peers_dial_the_override_but_advertise_grpc() {
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = proxy.local_addr().unwrap().to_string();
        let addrs: HashMap<u64, String> = [(1, "127.0.0.1:1".into()), (2, "127.0.0.1:2".into())]
            .into_iter()
            .collect();
        let peers = Peers::new(1, addrs, Arc::default())
            .with_dial_addrs([(2, proxy_addr.clone())].into_iter().collect());
        assert_eq!(peers.addr(2), Some("127.0.0.1:2"));
        assert_eq!(peers.dial_addr(2), Some(proxy_addr.as_str()));
        assert_eq!(peers.dial_addr(1), Some("127.0.0.1:1"));
        assert_eq!(peers.dial_addr(3), None);

        // The channel to node 2 connects to the override.
        let ch = peers.channel(2).unwrap();
        let call = tokio::spawn(async move {
            let mut c = RaftTransportClient::new(ch);
            let _ = c.raft(RaftRequest::default()).await;
        });
        let accepted = tokio::time::timeout(Duration::from_secs(5), proxy.accept()).await;
        assert!(
            matches!(accepted, Ok(Ok(_))),
            "no connection to the dial address"
        );
        call.abort();
    }
}
