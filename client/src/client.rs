//! The typed client: DynamoDB-shaped calls that route themselves to shard leaders.
//!
//! A [`Client`] caches the cluster's partition table (epoch, nodes, and per partition its
//! replicas and leader) and the key schema of every table it has touched. Item operations
//! and Query hash the partition key to a partition and go straight to that partition's
//! leader with `x-ferrodyn-route: direct`, so a node answers `NotLeader` instead of
//! forwarding; the client follows the hint, re-fetches the table on `WrongShard`, and backs
//! off and rotates replicas on `Unavailable` until its retry budget is spent. Table
//! operations, Scan and status go to any reachable node, which forwards as needed.
//!
//! Routing state lives behind short-held `std::sync::Mutex`es (never held across an
//! `.await`), so a `Client` is cheap to clone and safe to share between tasks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::Rng;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::error::{ErrorKind, WireError, EPOCH_HEADER, ERROR_HEADER, ROUTE_DIRECT, ROUTE_HEADER};
use crate::partition::partition_of;
use crate::proto;
use crate::proto::ferrodyn_client::FerrodynClient;
use crate::schema::KeySchema;
use crate::value::{self, AttributeValue, Item};

/// Largest message the client encodes or decodes. A page is at most 1 MB of items and an
/// item at most 400 KB, but status of a big cluster and generous headroom cost nothing.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// How many times in a row a request may be re-sent at once after a routing hint
/// (`NotLeader` with a leader, `WrongShard` with a fresher table) before it backs off.
const MAX_IMMEDIATE_HOPS: u32 = 3;

/// Connection and retry settings of a [`Client`].
///
/// Exists so that programs (the CLI, benchmarks, tests) can tune how long a request may
/// take and how hard the client retries while a cluster elects leaders or loses nodes.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Addresses of nodes to bootstrap from, `http://host:port` or `host:port`.
    pub endpoints: Vec<String>,
    /// Time allowed to open a TCP/HTTP2 connection to a node.
    pub connect_timeout: Duration,
    /// Time allowed for one attempt of one request.
    pub request_timeout: Duration,
    /// Total time a request may spend retrying retryable errors before it gives up.
    pub retry_budget: Duration,
    /// First backoff ceiling; it doubles per retry up to `backoff_cap`.
    pub backoff_base: Duration,
    /// Largest backoff ceiling.
    pub backoff_cap: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            endpoints: vec!["http://127.0.0.1:7101".to_owned()],
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            retry_budget: Duration::from_secs(15),
            backoff_base: Duration::from_millis(10),
            backoff_cap: Duration::from_millis(200),
        }
    }
}

impl ClientConfig {
    /// Default settings with the given bootstrap endpoints.
    pub fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }
}

/// A condition on the sort key of a [`QueryInput`], as in DynamoDB's key condition
/// expressions; it exists so callers cannot build a malformed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum SortCondition {
    /// `sk = v`
    Eq(AttributeValue),
    /// `sk < v`
    Lt(AttributeValue),
    /// `sk <= v`
    Le(AttributeValue),
    /// `sk > v`
    Gt(AttributeValue),
    /// `sk >= v`
    Ge(AttributeValue),
    /// `sk BETWEEN lo AND hi` (both inclusive).
    Between(AttributeValue, AttributeValue),
    /// `begins_with(sk, v)` (strings and binaries).
    BeginsWith(AttributeValue),
}

impl SortCondition {
    /// The wire form of the condition.
    fn to_proto(&self) -> proto::SortKeyCondition {
        use proto::sort_key_condition::Op;
        let (op, value, value2) = match self {
            SortCondition::Eq(v) => (Op::Eq, v, None),
            SortCondition::Lt(v) => (Op::Lt, v, None),
            SortCondition::Le(v) => (Op::Le, v, None),
            SortCondition::Gt(v) => (Op::Gt, v, None),
            SortCondition::Ge(v) => (Op::Ge, v, None),
            SortCondition::Between(lo, hi) => (Op::Between, lo, Some(hi)),
            SortCondition::BeginsWith(v) => (Op::BeginsWith, v, None),
        };
        proto::SortKeyCondition {
            op: op as i32,
            value: Some(value.to_proto()),
            value2: value2.map(AttributeValue::to_proto),
        }
    }
}

/// The parameters of a Query: one partition, optionally narrowed by a sort-key
/// condition. A struct rather than many arguments so call sites stay readable.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryInput {
    /// Table to query.
    pub table: String,
    /// Value of the partition key; selects the partition.
    pub partition_key: AttributeValue,
    /// Optional condition on the sort key.
    pub sort: Option<SortCondition>,
    /// Descending sort-key order (DynamoDB's `ScanIndexForward = false`).
    pub reverse: bool,
    /// Most items to return in this page; 0 means no limit (the page still stops at 1 MB).
    pub limit: u32,
    /// Key of the last item of the previous page, to continue after it.
    pub exclusive_start_key: Option<Item>,
    /// Linearizable read through the leader's read index rather than a possibly stale one.
    pub consistent: bool,
}

impl QueryInput {
    /// A query of the whole partition `partition_key` of `table`, ascending, unlimited.
    pub fn new(table: impl Into<String>, partition_key: AttributeValue) -> Self {
        QueryInput {
            table: table.into(),
            partition_key,
            sort: None,
            reverse: false,
            limit: 0,
            exclusive_start_key: None,
            consistent: false,
        }
    }
}

/// One page of Query or Scan results; `last_evaluated_key` is where the next page starts,
/// `None` once the results are exhausted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// The items of this page, in key order.
    pub items: Vec<Item>,
    /// Pass as `exclusive_start_key` to get the next page; `None` at the end.
    pub last_evaluated_key: Option<Item>,
}

/// A handle to a Ferrodyn cluster. Clones share the routing cache and connections.
///
/// It exists so applications get leader routing, retries and typed values without
/// touching gRPC: see the module docs for how requests are routed.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// State shared by the clones of a [`Client`].
struct Inner {
    config: ClientConfig,
    /// Configured endpoints, normalized to `http://host:port`.
    endpoints: Vec<String>,
    routes: Mutex<RouteCache>,
    /// One lazily connected channel per node address.
    channels: Mutex<HashMap<String, Channel>>,
    /// Key schemas of the tables this client has used.
    schemas: Mutex<HashMap<String, Arc<KeySchema>>>,
    /// Serializes partition-table refreshes so a burst of `WrongShard`s fetches it once.
    refresh: tokio::sync::Mutex<()>,
}

/// Where a request should go.
enum Route {
    /// To the leader of the partition of these partition-key bytes, with the direct header.
    /// The flag tells whether only the leader can answer (writes, consistent reads): a
    /// success then proves the target leads, and it is remembered as the leader.
    Key(Vec<u8>, bool),
    /// To any reachable node, which forwards.
    Any,
}

/// Per-attempt request metadata.
#[derive(Debug, Clone, Copy)]
struct Meta {
    direct: bool,
    epoch: u64,
    timeout: Duration,
}

impl Meta {
    /// Wraps a message into a request carrying the routing metadata and deadline.
    fn request<M>(&self, message: M) -> tonic::Request<M> {
        let mut req = tonic::Request::new(message);
        req.set_timeout(self.timeout);
        if self.direct {
            let md = req.metadata_mut();
            md.insert(ROUTE_HEADER, MetadataValue::from_static(ROUTE_DIRECT));
            md.insert(EPOCH_HEADER, MetadataValue::from(self.epoch));
        }
        req
    }
}

/// Locks a mutex, ignoring poisoning: the guarded data are caches, always consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `host:port` → `http://host:port`; addresses with a scheme are kept.
fn normalize_addr(addr: &str) -> String {
    let addr = addr.trim().trim_end_matches('/');
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

/// The backoff before retry number `attempt` (0-based): full jitter, uniform in
/// `[0, min(cap, base * 2^attempt)]`.
fn backoff_delay(base: Duration, cap: Duration, attempt: u32, rng: &mut impl Rng) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(20)).min(cap);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rng.gen_range(0..=nanos))
}

/// A node as the routing cache knows it.
#[derive(Debug, Clone, PartialEq)]
struct NodeRoute {
    addr: String,
    reachable: bool,
}

/// What the client knows about one partition.
#[derive(Debug, Clone, Default, PartialEq)]
struct PartitionRoute {
    /// Normalized address of the believed leader.
    leader: Option<String>,
    replicas: Vec<u64>,
}

/// The client's view of the partition table, plus leader hints learned from `NotLeader`.
#[derive(Debug, Clone, Default)]
struct RouteCache {
    epoch: u64,
    partition_count: u32,
    nodes: BTreeMap<u64, NodeRoute>,
    partitions: Vec<PartitionRoute>,
    /// Last node that answered an undirected request; tried first next time.
    preferred: Option<String>,
}

impl RouteCache {
    /// Installs a fetched partition table unless it is older than the cached one.
    /// Returns whether it was installed.
    fn apply(&mut self, table: &proto::PartitionTableResponse) -> bool {
        if table.partition_count == 0 || (self.partition_count != 0 && table.epoch < self.epoch) {
            return false;
        }
        self.epoch = table.epoch;
        self.partition_count = table.partition_count;
        self.nodes = table
            .nodes
            .iter()
            .map(|n| {
                (
                    n.id,
                    NodeRoute {
                        addr: normalize_addr(&n.grpc_addr),
                        reachable: n.reachable,
                    },
                )
            })
            .collect();
        self.partitions = vec![PartitionRoute::default(); table.partition_count as usize];
        for p in &table.partitions {
            if let Some(slot) = self.partitions.get_mut(p.partition as usize) {
                let leader = match p.leader {
                    0 => None,
                    id => self.nodes.get(&id).map(|n| n.addr.clone()),
                };
                *slot = PartitionRoute {
                    leader,
                    replicas: p.replicas.clone(),
                };
            }
        }
        true
    }

    /// Partition of the given partition-key bytes, once a table is known.
    fn partition_for(&self, pk_bytes: &[u8]) -> Option<u32> {
        (self.partition_count > 0).then(|| partition_of(pk_bytes, self.partition_count))
    }

    /// The address a `NotLeader` hint points at: its address, else its node id's address.
    fn resolve_leader(&self, leader: Option<u64>, leader_addr: Option<&str>) -> Option<String> {
        match leader_addr.filter(|a| !a.trim().is_empty()) {
            Some(addr) => Some(normalize_addr(addr)),
            None => leader
                .and_then(|id| self.nodes.get(&id))
                .map(|n| n.addr.clone()),
        }
    }

    /// Remembers `addr` as the leader of `partition`.
    fn set_leader(&mut self, partition: u32, addr: String) {
        if let Some(p) = self.partitions.get_mut(partition as usize) {
            p.leader = Some(addr);
        }
    }

    /// Addresses of the replicas of `partition` believed reachable.
    fn reachable_replicas(&self, partition: u32) -> Vec<String> {
        self.partitions
            .get(partition as usize)
            .map(|p| {
                p.replicas
                    .iter()
                    .filter_map(|id| self.nodes.get(id))
                    .filter(|n| n.reachable)
                    .map(|n| n.addr.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Forgets the leader of `partition` if it is `addr` (which just failed).
    fn forget_leader(&mut self, partition: u32, addr: &str) {
        if let Some(p) = self.partitions.get_mut(partition as usize) {
            if p.leader.as_deref() == Some(addr) {
                p.leader = None;
            }
        }
    }

    /// Addresses to try, best first. For a partition: its leader, its replicas (reachable
    /// ones first), the configured endpoints, then every other node. For an undirected
    /// request: the last node that answered, the configured endpoints, then every node.
    fn candidates(&self, partition: Option<u32>, endpoints: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |addr: &str| {
            if !out.iter().any(|a| a == addr) {
                out.push(addr.to_owned());
            }
        };
        match partition.and_then(|p| self.partitions.get(p as usize)) {
            Some(route) => {
                if let Some(leader) = &route.leader {
                    push(leader);
                }
                for reachable in [true, false] {
                    for id in &route.replicas {
                        if let Some(node) = self.nodes.get(id).filter(|n| n.reachable == reachable)
                        {
                            push(&node.addr);
                        }
                    }
                }
            }
            None => {
                if let Some(p) = &self.preferred {
                    push(p);
                }
            }
        }
        for e in endpoints {
            push(e);
        }
        for reachable in [true, false] {
            for node in self.nodes.values().filter(|n| n.reachable == reachable) {
                push(&node.addr);
            }
        }
        out
    }
}

/// The first candidate not yet failed in this request; once every candidate has failed,
/// forgets the failures and starts over from the best one.
fn pick(candidates: &[String], avoid: &mut HashSet<String>) -> Option<String> {
    if let Some(c) = candidates.iter().find(|c| !avoid.contains(*c)) {
        return Some(c.clone());
    }
    avoid.clear();
    candidates.first().cloned()
}

/// The error of a failed attempt. A status without our error metadata comes from the
/// transport (refused connection, reset stream, ...), whose message alone ("tcp connect
/// error") does not say where or why: add the target and the underlying causes.
fn transport_aware(target: &str, status: &tonic::Status) -> WireError {
    let mut err = WireError::from_status(status);
    if status.metadata().get(ERROR_HEADER).is_none() {
        let mut message = format!("{target}: {}", status.message());
        let mut source = std::error::Error::source(status);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        err.message = message;
    }
    err
}

/// Converts an item of a response.
fn item_from_wire(item: proto::Item) -> Result<Item, WireError> {
    value::item_from_proto(item).map_err(|e| -> WireError { e.into() })
}

/// Converts the items and last key of a Query or Scan response.
fn page_from_wire(items: Vec<proto::Item>, last: Option<proto::Item>) -> Result<Page, WireError> {
    Ok(Page {
        items: items
            .into_iter()
            .map(item_from_wire)
            .collect::<Result<_, _>>()?,
        last_evaluated_key: last.map(item_from_wire).transpose()?,
    })
}

/// The table description of a table operation's response, which must carry one.
fn require_table(
    table: Option<proto::TableDescription>,
) -> Result<proto::TableDescription, WireError> {
    table
        .ok_or_else(|| WireError::new(ErrorKind::Internal, "response carries no table description"))
}

impl Client {
    /// Connects to a cluster: validates the endpoints and fetches the partition table
    /// from the first one that answers (retrying within the retry budget).
    pub async fn connect(config: ClientConfig) -> Result<Client, WireError> {
        let mut endpoints: Vec<String> = Vec::new();
        for e in config.endpoints.iter().filter(|e| !e.trim().is_empty()) {
            let addr = normalize_addr(e);
            Endpoint::from_shared(addr.clone())
                .map_err(|err| WireError::validation(format!("invalid endpoint {e:?}: {err}")))?;
            if !endpoints.contains(&addr) {
                endpoints.push(addr);
            }
        }
        if endpoints.is_empty() {
            return Err(WireError::validation("no endpoints configured"));
        }
        let client = Client {
            inner: Arc::new(Inner {
                config,
                endpoints,
                routes: Mutex::new(RouteCache::default()),
                channels: Mutex::new(HashMap::new()),
                schemas: Mutex::new(HashMap::new()),
                refresh: tokio::sync::Mutex::new(()),
            }),
        };
        client.partition_table().await?;
        Ok(client)
    }

    /// The settings this client was connected with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Creates a table; returns its description (status ACTIVE once it answers).
    pub async fn create_table(
        &self,
        name: &str,
        schema: &KeySchema,
    ) -> Result<proto::TableDescription, WireError> {
        let (partition_key, sort_key) = schema.to_proto();
        let req = proto::CreateTableRequest {
            table_name: name.to_owned(),
            partition_key: Some(partition_key),
            sort_key,
        };
        let resp = self
            .call(&Route::Any, |mut c, m| {
                let r = m.request(req.clone());
                async move { c.create_table(r).await }
            })
            .await?;
        lock(&self.inner.schemas).remove(name);
        require_table(resp.table)
    }

    /// Deletes a table and all its items; returns its description (status DELETING).
    pub async fn delete_table(&self, name: &str) -> Result<proto::TableDescription, WireError> {
        let req = proto::DeleteTableRequest {
            table_name: name.to_owned(),
        };
        let result = self
            .call(&Route::Any, |mut c, m| {
                let r = m.request(req.clone());
                async move { c.delete_table(r).await }
            })
            .await;
        lock(&self.inner.schemas).remove(name);
        require_table(result?.table)
    }

    /// Describes a table (and refreshes the cached key schema from the answer).
    pub async fn describe_table(&self, name: &str) -> Result<proto::TableDescription, WireError> {
        let req = proto::DescribeTableRequest {
            table_name: name.to_owned(),
        };
        let result = self
            .call(&Route::Any, |mut c, m| {
                let r = m.request(req.clone());
                async move { c.describe_table(r).await }
            })
            .await;
        let table = require_table(self.note_table_error(name, result)?.table)?;
        if let Ok(schema) =
            KeySchema::from_proto(table.partition_key.clone(), table.sort_key.clone())
        {
            lock(&self.inner.schemas).insert(name.to_owned(), Arc::new(schema));
        }
        Ok(table)
    }

    /// Lists table names in order, starting after `exclusive_start`; at most `limit`
    /// (0 = the server's default of 100). The second value is where the next page starts.
    pub async fn list_tables(
        &self,
        exclusive_start: Option<String>,
        limit: u32,
    ) -> Result<(Vec<String>, Option<String>), WireError> {
        let req = proto::ListTablesRequest {
            exclusive_start_table_name: exclusive_start,
            limit,
        };
        let resp = self
            .call(&Route::Any, |mut c, m| {
                let r = m.request(req.clone());
                async move { c.list_tables(r).await }
            })
            .await?;
        Ok((resp.table_names, resp.last_evaluated_table_name))
    }

    /// Writes an item, replacing any item with the same key.
    pub async fn put_item(&self, table: &str, item: Item) -> Result<(), WireError> {
        let route = self.route_for_key(table, &item).await?;
        let req = proto::PutItemRequest {
            table_name: table.to_owned(),
            item: Some(value::item_to_proto(&item)),
        };
        let result = self
            .call(&route, |mut c, m| {
                let r = m.request(req.clone());
                async move { c.put_item(r).await }
            })
            .await;
        self.note_table_error(table, result).map(|_| ())
    }

    /// Reads the item with this key; `consistent` asks for a linearizable read.
    pub async fn get_item(
        &self,
        table: &str,
        key: Item,
        consistent: bool,
    ) -> Result<Option<Item>, WireError> {
        let route = match self.route_for_key(table, &key).await? {
            Route::Key(bytes, _) => Route::Key(bytes, consistent),
            other => other,
        };
        let req = proto::GetItemRequest {
            table_name: table.to_owned(),
            key: Some(value::item_to_proto(&key)),
            consistent_read: consistent,
        };
        let result = self
            .call(&route, |mut c, m| {
                let r = m.request(req.clone());
                async move { c.get_item(r).await }
            })
            .await;
        self.note_table_error(table, result)?
            .item
            .map(item_from_wire)
            .transpose()
    }

    /// Deletes the item with this key (no error if there is none).
    pub async fn delete_item(&self, table: &str, key: Item) -> Result<(), WireError> {
        let route = self.route_for_key(table, &key).await?;
        let req = proto::DeleteItemRequest {
            table_name: table.to_owned(),
            key: Some(value::item_to_proto(&key)),
        };
        let result = self
            .call(&route, |mut c, m| {
                let r = m.request(req.clone());
                async move { c.delete_item(r).await }
            })
            .await;
        self.note_table_error(table, result).map(|_| ())
    }

    /// Reads one page of a partition, in sort-key order.
    pub async fn query(&self, q: QueryInput) -> Result<Page, WireError> {
        let route = match q.partition_key.key_bytes() {
            Some(bytes) => Route::Key(bytes, q.consistent),
            None => Route::Any,
        };
        let req = proto::QueryRequest {
            table_name: q.table.clone(),
            partition_key_value: Some(q.partition_key.to_proto()),
            sort_key_condition: q.sort.as_ref().map(SortCondition::to_proto),
            reverse: q.reverse,
            limit: q.limit,
            exclusive_start_key: q.exclusive_start_key.as_ref().map(value::item_to_proto),
            consistent_read: q.consistent,
        };
        let result = self
            .call(&route, |mut c, m| {
                let r = m.request(req.clone());
                async move { c.query(r).await }
            })
            .await;
        let resp = self.note_table_error(&q.table, result)?;
        page_from_wire(resp.items, resp.last_evaluated_key)
    }

    /// Reads one page of a whole table, in partition then key order.
    pub async fn scan(
        &self,
        table: &str,
        limit: u32,
        exclusive_start_key: Option<Item>,
        consistent: bool,
    ) -> Result<Page, WireError> {
        let req = proto::ScanRequest {
            table_name: table.to_owned(),
            limit,
            exclusive_start_key: exclusive_start_key.as_ref().map(value::item_to_proto),
            consistent_read: consistent,
            ..Default::default()
        };
        let result = self
            .call(&Route::Any, |mut c, m| {
                let r = m.request(req.clone());
                async move { c.scan(r).await }
            })
            .await;
        let resp = self.note_table_error(table, result)?;
        page_from_wire(resp.items, resp.last_evaluated_key)
    }

    /// Fetches the partition table afresh (and installs it in the routing cache).
    pub async fn partition_table(&self) -> Result<proto::PartitionTableResponse, WireError> {
        let table = self
            .call(&Route::Any, |mut c, m| {
                let r = m.request(proto::PartitionTableRequest {});
                async move { c.partition_table(r).await }
            })
            .await?;
        lock(&self.inner.routes).apply(&table);
        Ok(table)
    }

    /// The whole cluster's status as seen by one node, which asks every node.
    pub async fn cluster_status(&self) -> Result<proto::ClusterStatusResponse, WireError> {
        self.call(&Route::Any, |mut c, m| {
            let r = m.request(proto::ClusterStatusRequest {});
            async move { c.cluster_status(r).await }
        })
        .await
    }

    /// Drops the cached schema of `table` when the cluster says it does not exist.
    fn note_table_error<T>(
        &self,
        table: &str,
        result: Result<T, WireError>,
    ) -> Result<T, WireError> {
        if let Err(e) = &result {
            if e.kind == ErrorKind::ResourceNotFound {
                lock(&self.inner.schemas).remove(table);
            }
        }
        result
    }

    /// The key schema of `table`, from the cache or DescribeTable.
    async fn key_schema(&self, table: &str) -> Result<Arc<KeySchema>, WireError> {
        if let Some(s) = lock(&self.inner.schemas).get(table) {
            return Ok(s.clone());
        }
        let desc = self.describe_table(table).await?;
        let schema = Arc::new(KeySchema::from_proto(desc.partition_key, desc.sort_key)?);
        lock(&self.inner.schemas).insert(table.to_owned(), schema.clone());
        Ok(schema)
    }

    /// Where an item operation on `key` goes. Without a usable partition key (missing, or
    /// not a scalar) the request goes undirected, so the node reports the validation error
    /// in its own words; the cached schema is dropped in case the table was re-created.
    async fn route_for_key(&self, table: &str, key: &Item) -> Result<Route, WireError> {
        let schema = self.key_schema(table).await?;
        match key
            .get(&schema.partition_key.name)
            .and_then(AttributeValue::key_bytes)
        {
            Some(bytes) => Ok(Route::Key(bytes, true)),
            None => {
                lock(&self.inner.schemas).remove(table);
                Ok(Route::Any)
            }
        }
    }

    /// The channel to `addr`, created lazily on first use and shared afterwards.
    fn channel(&self, addr: &str) -> Result<Channel, WireError> {
        if let Some(ch) = lock(&self.inner.channels).get(addr) {
            return Ok(ch.clone());
        }
        let endpoint = Endpoint::from_shared(addr.to_owned())
            .map_err(|e| {
                WireError::new(
                    ErrorKind::Unavailable,
                    format!("bad node address {addr}: {e}"),
                )
            })?
            .connect_timeout(self.inner.config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let channel = endpoint.connect_lazy();
        Ok(lock(&self.inner.channels)
            .entry(addr.to_owned())
            .or_insert(channel)
            .clone())
    }

    /// Chooses the target of the next attempt: (address, partition if directed, metadata).
    fn plan(
        &self,
        route: &Route,
        avoid: &mut HashSet<String>,
    ) -> Result<(String, Option<u32>, Meta), WireError> {
        let routes = lock(&self.inner.routes);
        let partition = match route {
            Route::Key(bytes, _) => routes.partition_for(bytes),
            Route::Any => None,
        };
        let mut candidates = routes.candidates(partition, &self.inner.endpoints);
        if let (Route::Key(_, false), Some(p)) = (route, partition) {
            // Any replica may answer an eventual read: spread them over the replicas
            // instead of loading every read on the leader.
            let replicas = routes.reachable_replicas(p);
            if !replicas.is_empty() {
                let chosen = &replicas[rand::random::<usize>() % replicas.len()];
                if let Some(i) = candidates.iter().position(|c| c == chosen) {
                    let c = candidates.remove(i);
                    candidates.insert(0, c);
                }
            }
        }
        let target = pick(&candidates, avoid)
            .ok_or_else(|| WireError::validation("no endpoints configured"))?;
        let meta = Meta {
            direct: partition.is_some(),
            epoch: routes.epoch,
            timeout: self.inner.config.request_timeout,
        };
        Ok((target, partition, meta))
    }

    /// Re-fetches the partition table, asking each known node once, unless the cache is
    /// already at `min_epoch` (another task refreshed it). Returns whether the cache is now
    /// at least at `min_epoch`.
    async fn refresh_routes(&self, min_epoch: u64) -> bool {
        let _serial = self.inner.refresh.lock().await;
        if min_epoch > 0 && lock(&self.inner.routes).epoch >= min_epoch {
            return true;
        }
        let candidates = lock(&self.inner.routes).candidates(None, &self.inner.endpoints);
        let timeout = self.inner.config.request_timeout;
        for addr in candidates {
            let Ok(channel) = self.channel(&addr) else {
                continue;
            };
            let mut client = FerrodynClient::new(channel);
            let meta = Meta {
                direct: false,
                epoch: 0,
                timeout,
            };
            let call = client.partition_table(meta.request(proto::PartitionTableRequest {}));
            if let Ok(Ok(resp)) = tokio::time::timeout(timeout, call).await {
                let table = resp.into_inner();
                let mut routes = lock(&self.inner.routes);
                routes.apply(&table);
                return routes.epoch >= min_epoch;
            }
        }
        false
    }

    /// Sends a request with routing and retries (see the module docs): follows
    /// `NotLeader` hints, refreshes the table on `WrongShard`, rotates targets and backs
    /// off on `Unavailable` until the retry budget is spent, and returns other errors as
    /// they are.
    async fn call<T, F, Fut>(&self, route: &Route, mut send: F) -> Result<T, WireError>
    where
        F: FnMut(FerrodynClient<Channel>, Meta) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let config = &self.inner.config;
        let start = Instant::now();
        let mut avoid: HashSet<String> = HashSet::new();
        let mut hops = 0u32;
        let mut retries = 0u32;
        loop {
            let (target, partition, meta) = self.plan(route, &mut avoid)?;
            let err = match self.channel(&target) {
                Ok(channel) => {
                    let client = FerrodynClient::new(channel)
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES);
                    match tokio::time::timeout(config.request_timeout, send(client, meta)).await {
                        Ok(Ok(resp)) => {
                            let mut routes = lock(&self.inner.routes);
                            match (partition, route) {
                                (None, _) => routes.preferred = Some(target),
                                // Only the leader answers these: remember who did, so the
                                // next request skips stale leaders and hops.
                                (Some(p), Route::Key(_, true)) => routes.set_leader(p, target),
                                (Some(_), _) => {}
                            }
                            return Ok(resp.into_inner());
                        }
                        Ok(Err(status)) => transport_aware(&target, &status),
                        Err(_) => WireError::new(
                            ErrorKind::Unavailable,
                            format!("{target}: no answer within {:?}", config.request_timeout),
                        ),
                    }
                }
                Err(e) => e,
            };
            tracing::debug!(target: "ferrodyn_client", %target, ?partition, error = %err, "request failed");
            let immediate = match &err.kind {
                ErrorKind::NotLeader {
                    leader,
                    leader_addr,
                } => {
                    let hint =
                        lock(&self.inner.routes).resolve_leader(*leader, leader_addr.as_deref());
                    match (partition, hint) {
                        (Some(p), Some(addr)) => {
                            avoid.remove(&addr);
                            lock(&self.inner.routes).set_leader(p, addr);
                            true
                        }
                        _ => {
                            if let Some(p) = partition {
                                lock(&self.inner.routes).forget_leader(p, &target);
                            }
                            avoid.insert(target);
                            false
                        }
                    }
                }
                ErrorKind::WrongShard { epoch } => self.refresh_routes(*epoch).await,
                ErrorKind::Unavailable => {
                    if let Some(p) = partition {
                        lock(&self.inner.routes).forget_leader(p, &target);
                    }
                    avoid.insert(target);
                    false
                }
                _ => return Err(err),
            };
            if immediate && hops < MAX_IMMEDIATE_HOPS {
                hops += 1;
                continue;
            }
            let delay = backoff_delay(
                config.backoff_base,
                config.backoff_cap,
                retries,
                &mut rand::thread_rng(),
            );
            if start.elapsed() + delay > config.retry_budget {
                return Err(err);
            }
            tokio::time::sleep(delay).await;
            retries = retries.saturating_add(1);
            hops = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(epoch: u64, leaders: &[u64]) -> proto::PartitionTableResponse {
        proto::PartitionTableResponse {
            epoch,
            partition_count: leaders.len() as u32,
            replication_factor: 3,
            nodes: (1..=3)
                .map(|id| proto::NodeInfo {
                    id,
                    region: "local".into(),
                    grpc_addr: format!("127.0.0.1:710{id}"),
                    reachable: id != 3,
                })
                .collect(),
            partitions: leaders
                .iter()
                .enumerate()
                .map(|(p, &leader)| proto::PartitionInfo {
                    partition: p as u32,
                    replicas: vec![3, 2, 1],
                    leader,
                    epoch,
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn addr(id: u64) -> String {
        format!("http://127.0.0.1:710{id}")
    }

    #[test]
    fn normalizes_addresses() {
        assert_eq!(normalize_addr("127.0.0.1:7101"), "http://127.0.0.1:7101");
        assert_eq!(normalize_addr(" http://h:1/ "), "http://h:1");
        assert_eq!(normalize_addr("https://h:1"), "https://h:1");
    }

    #[test]
    fn backoff_stays_within_bounds() {
        let (base, cap) = (Duration::from_millis(10), Duration::from_millis(200));
        let mut rng = rand::thread_rng();
        for attempt in 0..40 {
            let ceiling = (base * 2u32.pow(attempt.min(10))).min(cap);
            let mut max_seen = Duration::ZERO;
            for _ in 0..200 {
                let d = backoff_delay(base, cap, attempt, &mut rng);
                assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
                max_seen = max_seen.max(d);
            }
            // Jitter spreads over the whole range rather than sticking to one end.
            assert!(
                max_seen > ceiling / 2,
                "attempt {attempt}: max {max_seen:?}"
            );
        }
        assert_eq!(
            backoff_delay(Duration::ZERO, cap, 3, &mut rng),
            Duration::ZERO
        );
        assert!(backoff_delay(Duration::from_secs(1), cap, u32::MAX, &mut rng) <= cap);
    }

    #[test]
    fn applies_tables_and_rejects_older_epochs() {
        let mut cache = RouteCache::default();
        assert_eq!(cache.partition_for(b"k"), None);
        assert!(cache.apply(&table(2, &[1, 0, 2, 3])));
        assert_eq!(cache.epoch, 2);
        assert_eq!(cache.partition_count, 4);
        assert_eq!(cache.partitions[0].leader, Some(addr(1)));
        assert_eq!(cache.partitions[1].leader, None);
        assert_eq!(cache.partition_for(b"k"), Some(partition_of(b"k", 4)));
        assert!(
            !cache.apply(&table(1, &[2, 2, 2, 2])),
            "older epoch must not replace"
        );
        assert_eq!(cache.partitions[0].leader, Some(addr(1)));
        assert!(
            cache.apply(&table(2, &[2, 2, 2, 2])),
            "same epoch refreshes leaders"
        );
        assert_eq!(cache.partitions[0].leader, Some(addr(2)));
        let empty = proto::PartitionTableResponse {
            epoch: 9,
            ..Default::default()
        };
        assert!(
            !cache.apply(&empty),
            "a table without partitions cannot route"
        );
    }

    #[test]
    fn directed_candidates_prefer_leader_then_reachable_replicas() {
        let mut cache = RouteCache::default();
        cache.apply(&table(1, &[3, 0]));
        let endpoints = vec![addr(9)];
        // Leader first, then replicas (reachable 2 and 1 in replica order, unreachable 3
        // last), then the configured endpoints.
        assert_eq!(
            cache.candidates(Some(0), &endpoints),
            vec![addr(3), addr(2), addr(1), addr(9)]
        );
        assert_eq!(
            cache.candidates(Some(1), &endpoints),
            vec![addr(2), addr(1), addr(3), addr(9)]
        );
        // Unknown partition: endpoints, then nodes.
        assert_eq!(
            cache.candidates(Some(7), &endpoints),
            vec![addr(9), addr(1), addr(2), addr(3)]
        );
    }

    #[test]
    fn undirected_candidates_start_with_last_good_node() {
        let mut cache = RouteCache::default();
        let endpoints = vec![addr(1)];
        assert_eq!(cache.candidates(None, &endpoints), vec![addr(1)]);
        cache.apply(&table(1, &[1]));
        assert_eq!(
            cache.candidates(None, &endpoints),
            vec![addr(1), addr(2), addr(3)]
        );
        cache.preferred = Some(addr(2));
        assert_eq!(
            cache.candidates(None, &endpoints),
            vec![addr(2), addr(1), addr(3)]
        );
    }

    #[test]
    fn leader_hints_update_and_failures_forget() {
        let mut cache = RouteCache::default();
        cache.apply(&table(1, &[1, 1]));
        assert_eq!(cache.resolve_leader(Some(2), None), Some(addr(2)));
        assert_eq!(
            cache.resolve_leader(Some(2), Some("10.0.0.5:7101")),
            Some("http://10.0.0.5:7101".into())
        );
        assert_eq!(cache.resolve_leader(Some(42), None), None);
        assert_eq!(cache.resolve_leader(None, Some("")), None);

        cache.set_leader(0, addr(2));
        assert_eq!(cache.candidates(Some(0), &[])[0], addr(2));
        cache.forget_leader(0, &addr(3)); // not the leader: no change
        assert_eq!(cache.partitions[0].leader, Some(addr(2)));
        cache.forget_leader(0, &addr(2));
        assert_eq!(cache.partitions[0].leader, None);
        assert_eq!(
            cache.partitions[1].leader,
            Some(addr(1)),
            "other partitions keep theirs"
        );
        cache.set_leader(99, addr(1)); // out of range: ignored
    }

    #[test]
    fn pick_skips_failed_targets_then_starts_over() {
        let cands = vec![addr(1), addr(2)];
        let mut avoid = HashSet::new();
        assert_eq!(pick(&cands, &mut avoid), Some(addr(1)));
        avoid.insert(addr(1));
        assert_eq!(pick(&cands, &mut avoid), Some(addr(2)));
        avoid.insert(addr(2));
        assert_eq!(pick(&cands, &mut avoid), Some(addr(1)));
        assert!(avoid.is_empty());
        assert_eq!(pick(&[], &mut avoid), None);
    }

    #[test]
    fn direct_requests_carry_route_and_epoch() {
        let meta = Meta {
            direct: true,
            epoch: 7,
            timeout: Duration::from_secs(1),
        };
        let req = meta.request(());
        assert_eq!(req.metadata().get(ROUTE_HEADER).unwrap(), ROUTE_DIRECT);
        assert_eq!(req.metadata().get(EPOCH_HEADER).unwrap(), "7");
        assert!(req.metadata().get("grpc-timeout").is_some());
        let req = Meta {
            direct: false,
            ..meta
        }
        .request(());
        assert!(req.metadata().get(ROUTE_HEADER).is_none());
        assert!(req.metadata().get(EPOCH_HEADER).is_none());
    }

    #[test]
    fn sort_conditions_map_to_wire_ops() {
        use proto::sort_key_condition::Op;
        let v = AttributeValue::S("a".into());
        let w = AttributeValue::S("b".into());
        let c = SortCondition::Between(v.clone(), w.clone()).to_proto();
        assert_eq!(c.op, Op::Between as i32);
        assert_eq!(c.value, Some(v.to_proto()));
        assert_eq!(c.value2, Some(w.to_proto()));
        let c = SortCondition::BeginsWith(v.clone()).to_proto();
        assert_eq!((c.op, c.value2), (Op::BeginsWith as i32, None));
    }

    /// A fake three-node cluster speaking the wire API, to test routing end to end.
    #[allow(clippy::result_large_err)] // tonic's Status is what the service trait returns
    mod cluster {
        use super::super::*;
        use crate::proto::ferrodyn_server::{Ferrodyn, FerrodynServer};
        use tonic::{Request, Response, Status};

        /// One logged request: node, method, route header, epoch header.
        pub type Logged = (u64, &'static str, Option<String>, Option<String>);

        /// What the fake cluster is doing; tests change it as they go.
        #[derive(Default)]
        pub struct State {
            /// `host:port` of node `id` at index `id - 1`.
            pub addrs: Vec<String>,
            /// Node that really leads every partition.
            pub leader: u64,
            /// Leader the partition table advertises (may be stale).
            pub table_leader: u64,
            pub epoch: u64,
            /// Nodes answering `Unavailable`.
            pub down: HashSet<u64>,
            pub log: Vec<Logged>,
            pub stored: Option<proto::Item>,
        }

        struct Node {
            id: u64,
            state: Arc<Mutex<State>>,
        }

        impl Node {
            fn gate<T>(&self, req: &Request<T>, method: &'static str) -> Result<(), Status> {
                let header = |k: &str| {
                    req.metadata()
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let (route, epoch) = (header(ROUTE_HEADER), header(EPOCH_HEADER));
                let mut s = lock(&self.state);
                s.log.push((self.id, method, route.clone(), epoch.clone()));
                if s.down.contains(&self.id) {
                    return Err(WireError::new(ErrorKind::Unavailable, "node is down").to_status());
                }
                if route.as_deref() == Some(ROUTE_DIRECT) {
                    if epoch.and_then(|e| e.parse::<u64>().ok()).unwrap_or(0) < s.epoch {
                        return Err(WireError::new(
                            ErrorKind::WrongShard { epoch: s.epoch },
                            "stale",
                        )
                        .to_status());
                    }
                    if self.id != s.leader {
                        let kind = ErrorKind::NotLeader {
                            leader: Some(s.leader),
                            leader_addr: Some(s.addrs[s.leader as usize - 1].clone()),
                        };
                        return Err(WireError::new(kind, "not the leader").to_status());
                    }
                }
                Ok(())
            }

            fn table(&self, name: &str) -> Result<proto::TableDescription, Status> {
                if name != "t" {
                    return Err(
                        WireError::new(ErrorKind::ResourceNotFound, "no such table").to_status()
                    );
                }
                let pk = proto::KeySchemaElement {
                    name: "id".into(),
                    key_type: proto::KeyType::S as i32,
                };
                Ok(proto::TableDescription {
                    table_name: name.into(),
                    table_id: 1,
                    partition_key: Some(pk),
                    table_status: "ACTIVE".into(),
                    ..Default::default()
                })
            }
        }

        fn unimplemented<T>() -> Result<Response<T>, Status> {
            Err(Status::unimplemented("not in the fake"))
        }

        #[tonic::async_trait]
        impl Ferrodyn for Node {
            async fn create_table(
                &self,
                _: Request<proto::CreateTableRequest>,
            ) -> Result<Response<proto::CreateTableResponse>, Status> {
                unimplemented()
            }
            async fn delete_table(
                &self,
                _: Request<proto::DeleteTableRequest>,
            ) -> Result<Response<proto::DeleteTableResponse>, Status> {
                unimplemented()
            }
            async fn describe_table(
                &self,
                req: Request<proto::DescribeTableRequest>,
            ) -> Result<Response<proto::DescribeTableResponse>, Status> {
                self.gate(&req, "describe")?;
                Ok(Response::new(proto::DescribeTableResponse {
                    table: Some(self.table(&req.get_ref().table_name)?),
                }))
            }
            async fn list_tables(
                &self,
                _: Request<proto::ListTablesRequest>,
            ) -> Result<Response<proto::ListTablesResponse>, Status> {
                unimplemented()
            }
            async fn put_item(
                &self,
                req: Request<proto::PutItemRequest>,
            ) -> Result<Response<proto::PutItemResponse>, Status> {
                self.gate(&req, "put")?;
                self.table(&req.get_ref().table_name)?;
                lock(&self.state).stored = req.into_inner().item;
                Ok(Response::new(proto::PutItemResponse {}))
            }
            async fn get_item(
                &self,
                req: Request<proto::GetItemRequest>,
            ) -> Result<Response<proto::GetItemResponse>, Status> {
                self.gate(&req, "get")?;
                self.table(&req.get_ref().table_name)?;
                Ok(Response::new(proto::GetItemResponse {
                    item: lock(&self.state).stored.clone(),
                }))
            }
            async fn delete_item(
                &self,
                _: Request<proto::DeleteItemRequest>,
            ) -> Result<Response<proto::DeleteItemResponse>, Status> {
                unimplemented()
            }
            async fn query(
                &self,
                req: Request<proto::QueryRequest>,
            ) -> Result<Response<proto::QueryResponse>, Status> {
                self.gate(&req, "query")?;
                let items = lock(&self.state).stored.clone().into_iter().collect();
                Ok(Response::new(proto::QueryResponse {
                    items,
                    ..Default::default()
                }))
            }
            async fn scan(
                &self,
                req: Request<proto::ScanRequest>,
            ) -> Result<Response<proto::ScanResponse>, Status> {
                self.gate(&req, "scan")?;
                Ok(Response::new(proto::ScanResponse::default()))
            }
            async fn partition_table(
                &self,
                req: Request<proto::PartitionTableRequest>,
            ) -> Result<Response<proto::PartitionTableResponse>, Status> {
                self.gate(&req, "table")?;
                let s = lock(&self.state);
                let nodes = (1..=3)
                    .map(|id| proto::NodeInfo {
                        id,
                        region: "local".into(),
                        grpc_addr: s.addrs[id as usize - 1].clone(),
                        reachable: true,
                    })
                    .collect();
                let partitions = (0..4)
                    .map(|p| proto::PartitionInfo {
                        partition: p,
                        replicas: vec![1, 2, 3],
                        leader: s.table_leader,
                        epoch: s.epoch,
                        ..Default::default()
                    })
                    .collect();
                Ok(Response::new(proto::PartitionTableResponse {
                    epoch: s.epoch,
                    partition_count: 4,
                    replication_factor: 3,
                    nodes,
                    partitions,
                }))
            }
            async fn local_status(
                &self,
                _: Request<proto::LocalStatusRequest>,
            ) -> Result<Response<proto::LocalStatusResponse>, Status> {
                unimplemented()
            }
            async fn cluster_status(
                &self,
                _: Request<proto::ClusterStatusRequest>,
            ) -> Result<Response<proto::ClusterStatusResponse>, Status> {
                unimplemented()
            }
        }

        /// Starts three fake nodes; returns the shared state.
        pub async fn start(leader: u64, table_leader: u64) -> Arc<Mutex<State>> {
            let mut listeners = Vec::new();
            for _ in 0..3 {
                listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
            }
            let state = Arc::new(Mutex::new(State {
                addrs: listeners
                    .iter()
                    .map(|l| l.local_addr().unwrap().to_string())
                    .collect(),
                leader,
                table_leader,
                epoch: 1,
                ..Default::default()
            }));
            for (i, listener) in listeners.into_iter().enumerate() {
                let node = Node {
                    id: i as u64 + 1,
                    state: state.clone(),
                };
                let incoming =
                    tonic::transport::server::TcpIncoming::from_listener(listener, true, None)
                        .unwrap();
                tokio::spawn(
                    tonic::transport::Server::builder()
                        .add_service(FerrodynServer::new(node))
                        .serve_with_incoming(incoming),
                );
            }
            state
        }

        /// A client bootstrapping from node 1 with a short retry budget.
        pub async fn client(state: &Arc<Mutex<State>>, budget: Duration) -> Client {
            let endpoint = lock(state).addrs[0].clone();
            let config = ClientConfig {
                retry_budget: budget,
                ..ClientConfig::new([endpoint])
            };
            Client::connect(config).await.unwrap()
        }

        /// Takes the request log.
        pub fn take_log(state: &Arc<Mutex<State>>) -> Vec<Logged> {
            std::mem::take(&mut lock(state).log)
        }
    }

    fn item(id: &str) -> Item {
        Item::from([("id".to_owned(), AttributeValue::S(id.to_owned()))])
    }

    fn direct(epoch: u64) -> (Option<String>, Option<String>) {
        (Some(ROUTE_DIRECT.to_owned()), Some(epoch.to_string()))
    }

    #[tokio::test]
    async fn follows_not_leader_hint_and_caches_the_leader() {
        let state = cluster::start(2, 1).await;
        let c = cluster::client(&state, Duration::from_secs(2)).await;
        cluster::take_log(&state);

        c.put_item("t", item("a")).await.unwrap();
        let (route, epoch) = direct(1);
        let log = cluster::take_log(&state);
        assert_eq!(
            log,
            vec![
                (1, "describe", None, None),
                (1, "put", route.clone(), epoch.clone()),
                (2, "put", route.clone(), epoch.clone()),
            ]
        );

        // The schema and the leader are cached now: one request, straight to node 2.
        assert_eq!(
            c.get_item("t", item("a"), true).await.unwrap(),
            Some(item("a"))
        );
        assert_eq!(
            cluster::take_log(&state),
            vec![(2, "get", route.clone(), epoch.clone())]
        );

        // A consistent query goes to the leader of its partition too (eventual reads and
        // queries are spread over the replicas instead).
        let mut q = QueryInput::new("t", AttributeValue::S("a".into()));
        q.consistent = true;
        let page = c.query(q).await.unwrap();
        assert_eq!(page.items, vec![item("a")]);
        assert_eq!(cluster::take_log(&state), vec![(2, "query", route, epoch)]);

        // Scans are undirected and go to the node that answered last.
        c.scan("t", 0, None, false).await.unwrap();
        assert_eq!(cluster::take_log(&state), vec![(1, "scan", None, None)]);
    }

    #[tokio::test]
    async fn refreshes_the_partition_table_on_wrong_shard() {
        let state = cluster::start(1, 1).await;
        let c = cluster::client(&state, Duration::from_secs(2)).await;
        c.put_item("t", item("a")).await.unwrap();
        cluster::take_log(&state);
        {
            let mut s = lock(&state);
            s.epoch = 2;
            s.leader = 3;
            s.table_leader = 3;
        }
        c.put_item("t", item("b")).await.unwrap();
        let log = cluster::take_log(&state);
        let (route, _) = direct(0);
        assert_eq!(
            log,
            vec![
                (1, "put", route.clone(), Some("1".into())),
                (1, "table", None, None),
                (3, "put", route, Some("2".into())),
            ]
        );
    }

    #[tokio::test]
    async fn retries_unavailable_until_the_budget_is_spent() {
        let state = cluster::start(1, 1).await;
        let c = cluster::client(&state, Duration::from_millis(300)).await;
        c.put_item("t", item("a")).await.unwrap();
        lock(&state).down = HashSet::from([1, 2, 3]);
        let started = Instant::now();
        let err = c.put_item("t", item("b")).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let log = cluster::take_log(&state);
        let nodes: HashSet<u64> = log.iter().filter(|l| l.1 == "put").map(|l| l.0).collect();
        assert_eq!(
            nodes,
            HashSet::from([1, 2, 3]),
            "every replica is tried: {log:?}"
        );
        assert!(log.len() > 3, "retried after backing off: {log:?}");

        // The leader's node fails and another takes over: the client finds it.
        lock(&state).down = HashSet::from([1]);
        lock(&state).leader = 3;
        c.put_item("t", item("c")).await.unwrap();
        assert_eq!(lock(&state).stored, Some(value::item_to_proto(&item("c"))));
    }

    #[tokio::test]
    async fn skips_dead_endpoints_and_fails_fast_on_non_retryable_errors() {
        let state = cluster::start(1, 1).await;
        let dead = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().to_string()
        };
        let live = lock(&state).addrs[1].clone();
        let config = ClientConfig {
            retry_budget: Duration::from_secs(2),
            ..ClientConfig::new([dead, live])
        };
        let c = Client::connect(config).await.unwrap();
        assert_eq!(cluster::take_log(&state), vec![(2, "table", None, None)]);

        let started = Instant::now();
        let err = c.put_item("missing", item("a")).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::ResourceNotFound);
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(cluster::take_log(&state), vec![(2, "describe", None, None)]);

        let err = Client::connect(ClientConfig::new(Vec::<String>::new()))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind, ErrorKind::Validation);
    }

    #[allow(dead_code)]
    fn client_futures_are_send(c: &Client) {
        fn is_send<T: Send>(_: T) {}
        is_send(c.put_item("t", Item::new()));
        is_send(c.query(QueryInput::new("t", AttributeValue::Null)));
        is_send(c.scan("t", 0, None, false));
        is_send(Client::connect(ClientConfig::default()));
    }
}
