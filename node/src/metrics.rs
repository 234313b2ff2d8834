//! The node's Prometheus metrics and the HTTP endpoint that serves them.
//!
//! One [`Metrics`] registry per node, owned by the node's [`Storage`](crate::storage::Storage)
//! (the one object every layer that records a metric already holds), so several nodes in one
//! process (tests) keep separate figures. What is recorded, and where:
//!
//! | metric | kind | labels | recorded in |
//! |---|---|---|---|
//! | `ferrodyn_requests_total` | counter | `op`, `outcome` | `server/api.rs`, every `Ferrodyn` RPC |
//! | `ferrodyn_request_duration_seconds` | histogram | `op`, `outcome` | `server/api.rs` |
//! | `ferrodyn_raft_commit_duration_seconds` | histogram | `outcome` | `node.rs`, `propose`: from the proposal on the leader until it is committed by a quorum and applied there |
//! | `ferrodyn_raft_read_index_duration_seconds` | histogram | `outcome` | `node.rs`, `read_barrier` (ReadIndex of strong reads) |
//! | `ferrodyn_raft_append_duration_seconds` | histogram | | `raft/log_store.rs`: log append until durable (fsynced) |
//! | `ferrodyn_raft_append_entries` | histogram | | entries per log append |
//! | `ferrodyn_raft_apply_duration_seconds` | histogram | | `raft/state_machine.rs`: one apply batch |
//! | `ferrodyn_raft_apply_entries` | histogram | | entries per apply batch |
//! | `ferrodyn_raft_proposal_commands` | histogram | | `raft/proposer.rs`: writes batched into one proposed entry |
//! | `ferrodyn_storage_fsync_duration_seconds` | histogram | | `storage/engine.rs`: one WAL fsync |
//! | `ferrodyn_storage_fsync_round_writes` | histogram | | writes made durable by one fsync (group commit) |
//! | `ferrodyn_storage_write_round_batches` | histogram | | batches the writer thread wrote in one round |
//! | `ferrodyn_shard_leader_id` | gauge | `group` | read at scrape time from each hosted group (0: no leader known) |
//! | `ferrodyn_shard_is_leader` | gauge | `group` | 1 when this node leads the group |
//! | `ferrodyn_shard_term` | gauge | `group` | current Raft term |
//! | `ferrodyn_shard_last_log_index` | gauge | `group` | last index in the local log |
//! | `ferrodyn_shard_last_applied_index` | gauge | `group` | last index applied to the local state machine |
//!
//! Labels never carry keys or table names: `op` and `outcome` come from fixed lists and
//! `group` is bounded by the partition count. On the request path a (`op`, `outcome`) pair is
//! resolved once and cached in a `OnceLock`, so recording is a few atomic operations.
//!
//! [`serve`] answers `GET /metrics` in the Prometheus text format; the node starts it when
//! `metrics_listen` is configured.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;

use crate::error::{NodeError, NodeResult};
use crate::node::NodeCtx;

/// Buckets for request and Raft latencies, seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];
/// Buckets for fsync latency, seconds: 20 µs to 2.5 s.
const FSYNC_BUCKETS: &[f64] = &[
    0.000_02, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032,
    0.064, 0.128, 0.25, 0.5, 1.0, 2.5,
];
/// Buckets for counts per batch or round: powers of two up to 4096.
const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// A public `Ferrodyn` RPC, the `op` label of request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `CreateTable`.
    CreateTable,
    /// `DeleteTable`.
    DeleteTable,
    /// `DescribeTable`.
    DescribeTable,
    /// `ListTables`.
    ListTables,
    /// `PutItem`.
    PutItem,
    /// `GetItem`.
    GetItem,
    /// `DeleteItem`.
    DeleteItem,
    /// `Query`.
    Query,
    /// `Scan`.
    Scan,
    /// `PartitionTable`.
    PartitionTable,
    /// `LocalStatus`.
    LocalStatus,
    /// `ClusterStatus`.
    ClusterStatus,
}

impl Op {
    const COUNT: usize = 12;

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Op::CreateTable => "create_table",
            Op::DeleteTable => "delete_table",
            Op::DescribeTable => "describe_table",
            Op::ListTables => "list_tables",
            Op::PutItem => "put_item",
            Op::GetItem => "get_item",
            Op::DeleteItem => "delete_item",
            Op::Query => "query",
            Op::Scan => "scan",
            Op::PartitionTable => "partition_table",
            Op::LocalStatus => "local_status",
            Op::ClusterStatus => "cluster_status",
        }
    }
}

/// How a request ended, the `outcome` label: `ok` or the class of its error.
const OUTCOMES: [&str; 8] = [
    "ok",
    "validation",
    "not_found",
    "in_use",
    "not_leader",
    "wrong_shard",
    "unavailable",
    "internal",
];

fn outcome_of<T>(r: &NodeResult<T>) -> usize {
    match r {
        Ok(_) => 0,
        Err(NodeError::Validation(_)) => 1,
        Err(NodeError::ResourceNotFound(_)) => 2,
        Err(NodeError::ResourceInUse(_)) => 3,
        Err(NodeError::NotLeader { .. }) => 4,
        Err(NodeError::WrongShard { .. }) => 5,
        Err(NodeError::Unavailable(_)) => 6,
        Err(NodeError::Internal(_) | NodeError::Storage(_) | NodeError::Startup(_)) => 7,
    }
}

/// The counter and histogram of one (`op`, `outcome`) pair.
struct RequestCell {
    count: IntCounter,
    seconds: Histogram,
}

/// A histogram labelled only by `outcome` = `ok` | `error`, both resolved up front.
struct OkErr {
    ok: Histogram,
    error: Histogram,
}

impl OkErr {
    fn new(registry: &Registry, name: &str, help: &str) -> OkErr {
        let vec = HistogramVec::new(
            HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
            &["outcome"],
        )
        .expect("valid histogram");
        registry
            .register(Box::new(vec.clone()))
            .expect("unique metric");
        OkErr {
            ok: vec.with_label_values(&["ok"]),
            error: vec.with_label_values(&["error"]),
        }
    }

    fn observe(&self, ok: bool, started: Instant) {
        let h = if ok { &self.ok } else { &self.error };
        h.observe(started.elapsed().as_secs_f64());
    }
}

/// The per-group gauges, set at scrape time.
struct ShardGauges {
    leader_id: IntGaugeVec,
    is_leader: IntGaugeVec,
    term: IntGaugeVec,
    last_log_index: IntGaugeVec,
    last_applied_index: IntGaugeVec,
}

/// The metrics of one node, in their own registry.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    request_cells: [[OnceLock<RequestCell>; OUTCOMES.len()]; Op::COUNT],
    commit: OkErr,
    read_index: OkErr,
    append_seconds: Histogram,
    append_entries: Histogram,
    apply_seconds: Histogram,
    apply_entries: Histogram,
    proposal_commands: Histogram,
    fsync_seconds: Histogram,
    fsync_round_writes: Histogram,
    write_round_batches: Histogram,
    shards: ShardGauges,
    disk_free_bytes: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("valid histogram");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

fn shard_gauge(registry: &Registry, name: &str, help: &str) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), &["group"]).expect("valid gauge");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

impl Metrics {
    /// A fresh registry with every metric of the node registered.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "ferrodyn_requests_total",
                "Ferrodyn RPCs handled by this node, by operation and outcome.",
            ),
            &["op", "outcome"],
        )
        .expect("valid counter");
        registry
            .register(Box::new(requests.clone()))
            .expect("unique metric");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "ferrodyn_request_duration_seconds",
                "Time to handle a Ferrodyn RPC on this node (forwarding included), by operation and outcome.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["op", "outcome"],
        )
        .expect("valid histogram");
        registry
            .register(Box::new(request_seconds.clone()))
            .expect("unique metric");
        let r = &registry;
        Metrics {
            requests,
            request_seconds,
            request_cells: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            commit: OkErr::new(
                r,
                "ferrodyn_raft_commit_duration_seconds",
                "Raft proposal on the leader until committed by a quorum and applied on the leader.",
            ),
            read_index: OkErr::new(
                r,
                "ferrodyn_raft_read_index_duration_seconds",
                "Linearizable-read barrier (leadership confirmed by a quorum, applied up to the read index).",
            ),
            append_seconds: histogram(
                r,
                "ferrodyn_raft_append_duration_seconds",
                "Raft log append until the entries are durable (WAL fsynced).",
                LATENCY_BUCKETS,
            ),
            append_entries: histogram(
                r,
                "ferrodyn_raft_append_entries",
                "Entries per Raft log append.",
                SIZE_BUCKETS,
            ),
            apply_seconds: histogram(
                r,
                "ferrodyn_raft_apply_duration_seconds",
                "Time to apply one batch of committed entries to a state machine.",
                LATENCY_BUCKETS,
            ),
            apply_entries: histogram(
                r,
                "ferrodyn_raft_apply_entries",
                "Entries per state-machine apply batch.",
                SIZE_BUCKETS,
            ),
            fsync_seconds: histogram(
                r,
                "ferrodyn_storage_fsync_duration_seconds",
                "Duration of one WAL fsync of the group-commit syncer.",
                FSYNC_BUCKETS,
            ),
            proposal_commands: histogram(
                r,
                "ferrodyn_raft_proposal_commands",
                "Writes a leader batched into one proposed log entry.",
                SIZE_BUCKETS,
            ),
            fsync_round_writes: histogram(
                r,
                "ferrodyn_storage_fsync_round_writes",
                "Durable writes completed by one WAL fsync (group-commit batch size).",
                SIZE_BUCKETS,
            ),
            write_round_batches: histogram(
                r,
                "ferrodyn_storage_write_round_batches",
                "Write batches the storage writer applied in one round.",
                SIZE_BUCKETS,
            ),
            shards: ShardGauges {
                leader_id: shard_gauge(
                    r,
                    "ferrodyn_shard_leader_id",
                    "Leader of each hosted Raft group as this node knows it (0: unknown).",
                ),
                is_leader: shard_gauge(
                    r,
                    "ferrodyn_shard_is_leader",
                    "1 when this node leads the Raft group, else 0.",
                ),
                term: shard_gauge(r, "ferrodyn_shard_term", "Current Raft term of the group."),
                last_log_index: shard_gauge(
                    r,
                    "ferrodyn_shard_last_log_index",
                    "Last log index of the group on this node.",
                ),
                last_applied_index: shard_gauge(
                    r,
                    "ferrodyn_shard_last_applied_index",
                    "Last log index applied to the group's state machine on this node.",
                ),
            },
            disk_free_bytes: {
                let g = IntGauge::new(
                    "ferrodyn_storage_disk_free_bytes",
                    "Free bytes on the data disk at the last measurement (once a second); below min_free_disk_mb, writes that add data are refused.",
                )
                .expect("valid gauge");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            registry,
        }
    }

    /// Records one handled RPC: `op`, how it ended, and the time since `started`.
    pub fn observe_request<T>(&self, op: Op, started: Instant, r: &NodeResult<T>) {
        let outcome = outcome_of(r);
        let cell = self.request_cells[op as usize][outcome].get_or_init(|| {
            let labels = [op.name(), OUTCOMES[outcome]];
            RequestCell {
                count: self.requests.with_label_values(&labels),
                seconds: self.request_seconds.with_label_values(&labels),
            }
        });
        cell.count.inc();
        cell.seconds.observe(started.elapsed().as_secs_f64());
    }

    /// Records a Raft proposal that took since `started` to commit and apply (or fail).
    pub fn observe_commit(&self, ok: bool, started: Instant) {
        self.commit.observe(ok, started);
    }

    /// Records a linearizable-read barrier.
    pub fn observe_read_index(&self, ok: bool, started: Instant) {
        self.read_index.observe(ok, started);
    }

    /// Records a log append of `entries` entries, durable after `elapsed`.
    pub fn observe_append(&self, entries: usize, elapsed: Duration) {
        self.append_entries.observe(entries as f64);
        self.append_seconds.observe(elapsed.as_secs_f64());
    }

    /// Records one state-machine apply batch.
    pub fn observe_apply(&self, entries: usize, elapsed: Duration) {
        self.apply_entries.observe(entries as f64);
        self.apply_seconds.observe(elapsed.as_secs_f64());
    }

    /// Records one proposed log entry carrying `commands` writes.
    pub fn observe_proposal(&self, commands: usize) {
        self.proposal_commands.observe(commands as f64);
    }

    /// Records one WAL fsync covering `writes` durable writes.
    pub fn observe_fsync(&self, writes: usize, elapsed: Duration) {
        self.fsync_round_writes.observe(writes as f64);
        self.fsync_seconds.observe(elapsed.as_secs_f64());
    }

    /// Records one round of the storage writer.
    pub fn observe_write_round(&self, batches: usize) {
        self.write_round_batches.observe(batches as f64);
    }

    /// Sets the per-group gauges from the Raft metrics of every group `ctx` hosts, and the data
    /// disk's free space.
    pub fn refresh_shards(&self, ctx: &NodeCtx) {
        let free = ctx.disk.free_bytes();
        if free != u64::MAX {
            self.disk_free_bytes
                .set(i64::try_from(free).unwrap_or(i64::MAX));
        }
        let g = &self.shards;
        for (group, raft) in ctx.groups.iter() {
            let label = group.to_string();
            let labels = [label.as_str()];
            let (leader, term, last_log, applied) = {
                let m = raft.metrics();
                let m = m.borrow();
                (
                    m.current_leader,
                    m.current_term,
                    m.last_log_index,
                    m.last_applied.map(|l| l.index),
                )
            };
            let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            g.leader_id
                .with_label_values(&labels)
                .set(int(leader.unwrap_or(0)));
            g.is_leader
                .with_label_values(&labels)
                .set(i64::from(leader == Some(ctx.id)));
            g.term.with_label_values(&labels).set(int(term));
            g.last_log_index
                .with_label_values(&labels)
                .set(int(last_log.unwrap_or(0)));
            g.last_applied_index
                .with_label_values(&labels)
                .set(int(applied.unwrap_or(0)));
        }
    }

    /// Every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Longest a connection may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

type Body = Full<Bytes>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn route<B>(req: &Request<B>, render: &(dyn Fn() -> String + Send + Sync)) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            reply(StatusCode::OK, prometheus::TEXT_FORMAT, render())
        }
        (&Method::GET | &Method::HEAD, "/") => reply(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ferrodyn-node: metrics at /metrics\n",
        ),
        (_, "/metrics" | "/") => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET\n",
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found; metrics are at /metrics\n",
        ),
    }
}

/// Serves `GET /metrics` (HTTP/1.1) on `listener`, with the text `render` returns, until
/// `shutdown` completes; open connections are then dropped.
pub async fn serve<R>(listener: TcpListener, render: R, shutdown: impl Future<Output = ()>)
where
    R: Fn() -> String + Send + Sync + 'static,
{
    let render: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(render);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let render = render.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let resp = route(&req, render.as_ref());
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics endpoint: connection ended with an error");
            }
        });
    }
    // Dropping the set aborts connections still open (idle keep-alives).
    conns.shutdown().await;
}

/// Serves the metrics of the node `ctx` on `listener` until `shutdown` completes; the
/// per-group gauges are read fresh at every scrape.
pub async fn serve_node(
    ctx: Arc<NodeCtx>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let render = move || {
        let m = ctx.storage.metrics();
        m.refresh_shards(&ctx);
        m.render()
    };
    serve(listener, render, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const NAMES: &[&str] = &[
        "ferrodyn_requests_total",
        "ferrodyn_request_duration_seconds",
        "ferrodyn_raft_commit_duration_seconds",
        "ferrodyn_raft_read_index_duration_seconds",
        "ferrodyn_raft_append_duration_seconds",
        "ferrodyn_raft_append_entries",
        "ferrodyn_raft_apply_duration_seconds",
        "ferrodyn_raft_apply_entries",
        "ferrodyn_raft_proposal_commands",
        "ferrodyn_storage_fsync_duration_seconds",
        "ferrodyn_storage_fsync_round_writes",
        "ferrodyn_storage_write_round_batches",
    ];

    fn exercised() -> Metrics {
        let m = Metrics::new();
        let t = Instant::now();
        m.observe_request(Op::PutItem, t, &Ok::<(), NodeError>(()));
        m.observe_request(Op::PutItem, t, &Ok::<(), NodeError>(()));
        m.observe_request::<()>(Op::GetItem, t, &Err(NodeError::Unavailable("x".into())));
        m.observe_commit(true, t);
        m.observe_read_index(false, t);
        m.observe_append(3, Duration::from_millis(2));
        m.observe_apply(3, Duration::from_micros(300));
        m.observe_fsync(7, Duration::from_millis(1));
        m.observe_write_round(2);
        m.observe_proposal(4);
        m
    }

    #[test]
    fn render_shows_every_metric_with_its_labels() {
        let text = exercised().render();
        for name in NAMES {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing from\n{text}"
            );
        }
        assert!(
            text.contains(r#"ferrodyn_requests_total{op="put_item",outcome="ok"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ferrodyn_requests_total{op="get_item",outcome="unavailable"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("ferrodyn_storage_fsync_round_writes_sum 7"),
            "{text}"
        );
        // Pairs never used are not exported.
        assert!(!text.contains(r#"op="scan""#), "{text}");
    }

    #[tokio::test]
    async fn http_endpoint_serves_metrics_and_stops() {
        let m = Arc::new(exercised());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let mr = m.clone();
        let server = tokio::spawn(serve(listener, move || mr.render(), async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let resp = get("/metrics").await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.contains("text/plain; version=0.0.4"), "{resp}");
        assert!(
            resp.contains("ferrodyn_raft_apply_entries_count 1"),
            "{resp}"
        );
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
        // An idle keep-alive connection must not hold up shutdown.
        let _idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server stops")
            .unwrap();
    }
}
