//! The public `Ferrodyn` gRPC service: DynamoDB-shaped table and item operations.
//!
//! Each handler validates its input against DynamoDB's rules (a rejected request changes
//! nothing), finds the shard, and runs the operation on the right replica through
//! [`super::routing`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrodyn_client::proto::ferrodyn_client::FerrodynClient;
use ferrodyn_client::proto::{self, sort_key_condition::Op};
use ferrodyn_client::schema::{validate_table_name, KeySchema};
use ferrodyn_client::value::{item_from_proto, item_to_proto, AttributeValue, Item};
use ferrodyn_client::KeyType;
use tonic::{Request, Response, Status};

use super::routing::{direct, on_leader, on_replica, Route};
use crate::catalog::TableDesc;
use crate::config::BrokenMode;
use crate::error::{NodeError, NodeResult};
use crate::metrics::Op as RpcOp;
use crate::node::NodeCtx;
use crate::raft::{Command, CommandResult, EncodedItem};
use crate::storage::items::{self, RangePage};
use crate::storage::keys::{self, META_GROUP};

/// Largest page a Query or Scan returns (DynamoDB: 1 MB).
const PAGE_BYTES: usize = 1 << 20;
/// Default and largest ListTables page.
const LIST_TABLES_MAX: usize = 100;

/// The `Ferrodyn` service of one node.
#[derive(Clone)]
pub struct Api {
    ctx: Arc<NodeCtx>,
}

impl Api {
    /// The service over the node `ctx`.
    pub fn new(ctx: Arc<NodeCtx>) -> Self {
        Api { ctx }
    }

    /// Broken mode `stale-consistent-read` (test-only, `testing.broken`): true when this node
    /// holds a replica of `group`, so a consistent GetItem or Query takes the eventual-read
    /// path and is answered from this replica's local state machine at once, with no ReadIndex
    /// and no forwarding to the leader. This is DELIBERATELY WRONG: a partitioned or lagging
    /// replica serves stale data to a ConsistentRead. It exists so the fault-injection suite
    /// can prove its linearizability checker catches such a bug. Nodes not holding a replica
    /// forward to the leader as usual. Always false unless started with `--unsafe-test-mode`.
    fn stale_consistent_read(&self, group: u64) -> bool {
        self.ctx.broken(BrokenMode::StaleConsistentRead) && self.ctx.groups.get(group).is_some()
    }

    /// Looks a table up: the local catalog replica first; if it does not know the name (it may
    /// lag a CreateTable acknowledged elsewhere), the metadata leader, linearizably.
    async fn table(&self, name: &str) -> NodeResult<TableDesc> {
        if let Some(t) = self.ctx.local_table(name) {
            return Ok(t);
        }
        validate_table_name(name).map_err(|e| NodeError::Validation(e.message))?;
        let ctx = &self.ctx;
        let req = proto::DescribeTableRequest {
            table_name: name.to_string(),
        };
        let desc = on_leader(
            ctx,
            META_GROUP,
            Route::default(),
            || async {
                ctx.read_barrier(META_GROUP).await?;
                ctx.local_table(name)
                    .map(|t| Some(t.to_proto()))
                    .ok_or_else(|| not_found(name))
            },
            |ch| {
                let r = req.clone();
                async move {
                    FerrodynClient::new(ch)
                        .describe_table(direct(r))
                        .await
                        .map(|x| x.into_inner().table)
                }
            },
        )
        .await?
        .ok_or_else(|| not_found(name))?;
        let schema = KeySchema::from_proto(desc.partition_key.clone(), desc.sort_key.clone())
            .map_err(|e| NodeError::Internal(e.message))?;
        Ok(TableDesc {
            id: desc.table_id,
            name: desc.table_name,
            schema,
            status: crate::catalog::TableStatus::Active,
            created_ms: desc.creation_time_ms,
        })
    }

    async fn create_table(
        &self,
        route: Route,
        req: proto::CreateTableRequest,
    ) -> NodeResult<proto::CreateTableResponse> {
        validate_table_name(&req.table_name).map_err(|e| NodeError::Validation(e.message))?;
        let schema = KeySchema::from_proto(req.partition_key.clone(), req.sort_key.clone())
            .map_err(|e| NodeError::Validation(e.message))?;
        let ctx = &self.ctx;
        let cmd = Command::CreateTable {
            name: req.table_name.clone(),
            schema,
            created_ms: self.ctx.clock.wall_ms(),
        };
        on_leader(
            ctx,
            META_GROUP,
            route,
            || async {
                match ctx.propose(META_GROUP, cmd.clone()).await? {
                    CommandResult::Table(t) => Ok(proto::CreateTableResponse {
                        table: Some(t.to_proto()),
                    }),
                    CommandResult::Rejected(r) => Err(NodeCtx::rejection(r)),
                    CommandResult::Done | CommandResult::Batch(_) => {
                        Err(NodeError::Internal("create table returned no table".into()))
                    }
                }
            },
            |ch| {
                let r = req.clone();
                async move {
                    FerrodynClient::new(ch)
                        .create_table(direct(r))
                        .await
                        .map(|x| x.into_inner())
                }
            },
        )
        .await
    }

    async fn delete_table(
        &self,
        route: Route,
        req: proto::DeleteTableRequest,
    ) -> NodeResult<proto::DeleteTableResponse> {
        validate_table_name(&req.table_name).map_err(|e| NodeError::Validation(e.message))?;
        let ctx = &self.ctx;
        let cmd = Command::DeleteTable {
            name: req.table_name.clone(),
        };
        on_leader(
            ctx,
            META_GROUP,
            route,
            || async {
                match ctx.propose(META_GROUP, cmd.clone()).await? {
                    CommandResult::Table(t) => Ok(proto::DeleteTableResponse {
                        table: Some(t.to_proto()),
                    }),
                    CommandResult::Rejected(r) => Err(NodeCtx::rejection(r)),
                    CommandResult::Done | CommandResult::Batch(_) => {
                        Err(NodeError::Internal("delete table returned no table".into()))
                    }
                }
            },
            |ch| {
                let r = req.clone();
                async move {
                    FerrodynClient::new(ch)
                        .delete_table(direct(r))
                        .await
                        .map(|x| x.into_inner())
                }
            },
        )
        .await
    }

    async fn put_item(
        &self,
        route: Route,
        mut req: proto::PutItemRequest,
    ) -> NodeResult<proto::PutItemResponse> {
        let table = self.table(&req.table_name).await?;
        // Taken out of the request rather than copied: a forwarded request (rare: clients
        // route to leaders) gets it back from the decoded item.
        let item =
            Arc::new(item_from_proto(req.item.take().ok_or_else(|| {
                NodeError::Validation("Item is required".into())
            })?)?);
        table
            .schema
            .validate_item(&item)
            .map_err(|e| NodeError::Validation(e.message))?;
        let pk = table.schema.partition_key_bytes(&item);
        let sk = table.schema.sort_key_bytes(&item).unwrap_or_default();
        let group = self.ctx.group_for_pk(&pk);
        let ctx = &self.ctx;
        // Encoded once here; replicas log, ship and store these bytes as they are.
        let encoded = EncodedItem::new(&item);
        on_leader(
            ctx,
            group,
            route,
            || async {
                // The leader stamps the version, so replicas apply the same one.
                let cmd = Command::PutEncoded {
                    table: table.id,
                    pk: pk.clone(),
                    sk: sk.clone(),
                    item: encoded.clone(),
                    hlc: ctx.clock.now(),
                    region: ctx.region.clone(),
                };
                ctx.propose(group, cmd)
                    .await
                    .map(|_| proto::PutItemResponse {})
            },
            |ch| {
                let r = proto::PutItemRequest {
                    item: Some(item_to_proto(&item)),
                    ..req.clone()
                };
                async move {
                    FerrodynClient::new(ch)
                        .put_item(direct(r))
                        .await
                        .map(|x| x.into_inner())
                }
            },
        )
        .await
    }

    async fn delete_item(
        &self,
        route: Route,
        req: proto::DeleteItemRequest,
    ) -> NodeResult<proto::DeleteItemResponse> {
        let table = self.table(&req.table_name).await?;
        let key = item_from_proto(
            req.key
                .clone()
                .ok_or_else(|| NodeError::Validation("Key is required".into()))?,
        )?;
        table
            .schema
            .validate_key(&key)
            .map_err(|e| NodeError::Validation(e.message))?;
        let pk = table.schema.partition_key_bytes(&key);
        let sk = table.schema.sort_key_bytes(&key).unwrap_or_default();
        let group = self.ctx.group_for_pk(&pk);
        let ctx = &self.ctx;
        on_leader(
            ctx,
            group,
            route,
            || async {
                let cmd = Command::Delete {
                    table: table.id,
                    pk: pk.clone(),
                    sk: sk.clone(),
                    hlc: ctx.clock.now(),
                    region: ctx.region.clone(),
                };
                ctx.propose(group, cmd)
                    .await
                    .map(|_| proto::DeleteItemResponse {})
            },
            |ch| {
                let r = req.clone();
                async move {
                    FerrodynClient::new(ch)
                        .delete_item(direct(r))
                        .await
                        .map(|x| x.into_inner())
                }
            },
        )
        .await
    }

    async fn get_item(
        &self,
        route: Route,
        req: proto::GetItemRequest,
    ) -> NodeResult<proto::GetItemResponse> {
        let table = self.table(&req.table_name).await?;
        let key = item_from_proto(
            req.key
                .clone()
                .ok_or_else(|| NodeError::Validation("Key is required".into()))?,
        )?;
        table
            .schema
            .validate_key(&key)
            .map_err(|e| NodeError::Validation(e.message))?;
        let pk = table.schema.partition_key_bytes(&key);
        let sk = table.schema.sort_key_bytes(&key).unwrap_or_default();
        let group = self.ctx.group_for_pk(&pk);
        let storage_key = keys::item_key(group, table.id, &pk, &sk);
        let ctx = &self.ctx;
        let read = || async {
            let k = storage_key.clone();
            let stored = ctx
                .storage
                .read_cached(move |db, ro| items::get_item(db, ro, &k))
                .await?;
            Ok(proto::GetItemResponse {
                item: stored.map(|s| item_to_proto(&s.item)),
            })
        };
        let remote = |ch| {
            let r = req.clone();
            async move {
                FerrodynClient::new(ch)
                    .get_item(direct(r))
                    .await
                    .map(|x| x.into_inner())
            }
        };
        if req.consistent_read && !self.stale_consistent_read(group) {
            on_leader(
                ctx,
                group,
                route,
                || async {
                    ctx.read_barrier(group).await?;
                    read().await
                },
                remote,
            )
            .await
        } else {
            on_replica(ctx, group, read, remote).await
        }
    }

    async fn query(
        &self,
        route: Route,
        req: proto::QueryRequest,
    ) -> NodeResult<proto::QueryResponse> {
        let table = self.table(&req.table_name).await?;
        let schema = &table.schema;
        let pk_value =
            AttributeValue::from_proto(req.partition_key_value.clone().ok_or_else(|| {
                NodeError::Validation(
                    "Query condition missed key schema element: partition key value".into(),
                )
            })?)?;
        let pk_name = &schema.partition_key.name;
        let mut pk_item = Item::new();
        pk_item.insert(pk_name.clone(), pk_value);
        if let Some(sk) = &schema.sort_key {
            // Validate the partition key alone with the same rules as a key.
            let mut probe = pk_item.clone();
            probe.insert(sk.name.clone(), placeholder(sk.key_type));
            schema
                .validate_key(&probe)
                .map_err(|e| NodeError::Validation(e.message))?;
        } else {
            schema
                .validate_key(&pk_item)
                .map_err(|e| NodeError::Validation(e.message))?;
        }
        let pk = schema.partition_key_bytes(&pk_item);
        let group = self.ctx.group_for_pk(&pk);
        let prefix = keys::item_partition_prefix(group, table.id, &pk);
        let (mut start, mut end) = sort_range(schema, &prefix, req.sort_key_condition.as_ref())?;
        if let Some(esk) = &req.exclusive_start_key {
            let esk = item_from_proto(esk.clone())?;
            schema.validate_key(&esk).map_err(|e| {
                NodeError::Validation(format!(
                    "The provided starting key is invalid: {}",
                    e.message
                ))
            })?;
            if schema.partition_key_bytes(&esk) != pk {
                return Err(NodeError::Validation(
                    "The provided starting key is invalid: its partition key does not match the query".into(),
                ));
            }
            let k = keys::item_key(
                group,
                table.id,
                &pk,
                &schema.sort_key_bytes(&esk).unwrap_or_default(),
            );
            if req.reverse {
                end = end.min(k);
            } else {
                start = start.max(keys::key_successor(&k));
            }
        }
        let limit = req.limit as usize;
        let reverse = req.reverse;
        let ctx = &self.ctx;
        let read = || async {
            let (s, e) = (start.clone(), end.clone());
            let page = if s < e {
                ctx.storage
                    .read(move |db| items::read_range(db, &s, &e, reverse, limit, PAGE_BYTES))
                    .await?
            } else {
                RangePage {
                    items: Vec::new(),
                    more: false,
                    scanned: 0,
                }
            };
            Ok(page_response(schema, page))
        };
        let remote = |ch| {
            let r = req.clone();
            async move {
                FerrodynClient::new(ch)
                    .query(direct(r))
                    .await
                    .map(|x| x.into_inner())
            }
        };
        if req.consistent_read && !self.stale_consistent_read(group) {
            on_leader(
                ctx,
                group,
                route,
                || async {
                    ctx.read_barrier(group).await?;
                    read().await
                },
                remote,
            )
            .await
        } else {
            on_replica(ctx, group, read, remote).await
        }
    }

    async fn scan(&self, req: proto::ScanRequest) -> NodeResult<proto::ScanResponse> {
        let table = self.table(&req.table_name).await?;
        let schema = &table.schema;
        let count = self.ctx.layout.partition_count;
        let mut resume: Option<(u32, Vec<u8>)> = None;
        if let Some(esk) = &req.exclusive_start_key {
            let esk = item_from_proto(esk.clone())?;
            schema.validate_key(&esk).map_err(|e| {
                NodeError::Validation(format!(
                    "The provided starting key is invalid: {}",
                    e.message
                ))
            })?;
            let pk = schema.partition_key_bytes(&esk);
            let p = ferrodyn_client::partition::partition_of(&pk, count);
            let sk = schema.sort_key_bytes(&esk).unwrap_or_default();
            resume = Some((
                p,
                keys::key_successor(&keys::item_key(
                    keys::group_of_partition(p),
                    table.id,
                    &pk,
                    &sk,
                )),
            ));
        }
        let (first, last) = match req.only_partition {
            Some(p) if p < count => (p, p),
            Some(p) => {
                return Err(NodeError::Validation(format!(
                    "partition {p} does not exist"
                )))
            }
            None => (resume.as_ref().map_or(0, |r| r.0), count - 1),
        };
        let limit = req.limit as usize;
        let mut out = proto::ScanResponse::default();
        let mut bytes = 0usize;
        for p in first..=last {
            let group = keys::group_of_partition(p);
            let (mut start, end) = keys::table_range(group, table.id);
            if let Some((rp, k)) = &resume {
                if *rp == p {
                    start = start.max(k.clone());
                }
            }
            let want = if limit > 0 {
                limit - out.items.len()
            } else {
                0
            };
            let page = self
                .scan_partition(p, start, end, want, PAGE_BYTES - bytes, &req)
                .await?;
            bytes += page
                .items
                .iter()
                .map(ferrodyn_client::value::item_size)
                .sum::<usize>();
            out.scanned_count += page.scanned as u32;
            out.items.extend(page.items.iter().map(item_to_proto));
            let full = (limit > 0 && out.items.len() >= limit) || bytes >= PAGE_BYTES;
            if page.more || (full && p < last) {
                // More may follow the last item returned: hand out its key to resume from.
                out.last_evaluated_key = out.items.last().and_then(|i| {
                    item_from_proto(i.clone())
                        .ok()
                        .map(|i| item_to_proto(&schema.key_of(&i)))
                });
                break;
            }
            if full {
                break;
            }
        }
        Ok(out)
    }

    /// One partition's part of a scan: read locally when hosted, else forwarded to a replica.
    async fn scan_partition(
        &self,
        p: u32,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
        max_bytes: usize,
        req: &proto::ScanRequest,
    ) -> NodeResult<RangePage> {
        let ctx = &self.ctx;
        let group = keys::group_of_partition(p);
        let read = || async {
            let (s, e) = (start.clone(), end.clone());
            ctx.storage
                .read(move |db| items::read_range(db, &s, &e, false, limit, max_bytes))
                .await
                .map_err(NodeError::from)
        };
        let hosted = ctx.groups.get(group).is_some();
        if hosted && !req.consistent_read {
            return read().await;
        }
        if hosted && ctx.leader_of(group) == Some(ctx.id) {
            ctx.read_barrier(group).await?;
            return read().await;
        }
        // Elsewhere: ask a replica (the leader for consistent reads) for this partition only,
        // resuming at the same key.
        let table = self.table(&req.table_name).await?;
        let sub = proto::ScanRequest {
            table_name: req.table_name.clone(),
            limit: limit as u32,
            exclusive_start_key: req.exclusive_start_key.clone().filter(|esk| {
                item_from_proto(esk.clone())
                    .map(|k| {
                        ferrodyn_client::partition::partition_of(
                            &table.schema.partition_key_bytes(&k),
                            ctx.layout.partition_count,
                        ) == p
                    })
                    .unwrap_or(false)
            }),
            consistent_read: req.consistent_read,
            only_partition: Some(p),
        };
        let remote = |ch| {
            let r = sub.clone();
            async move {
                FerrodynClient::new(ch)
                    .scan(direct(r))
                    .await
                    .map(|x| x.into_inner())
            }
        };
        let resp = if req.consistent_read {
            on_leader(
                ctx,
                group,
                Route::default(),
                || async { Err::<proto::ScanResponse, _>(ctx.not_leader(group, None)) },
                remote,
            )
            .await?
        } else {
            on_replica(
                ctx,
                group,
                || async { Err(ctx.not_leader(group, None)) },
                remote,
            )
            .await?
        };
        let items: Result<Vec<Item>, _> = resp.items.into_iter().map(item_from_proto).collect();
        Ok(RangePage {
            items: items?,
            more: resp.last_evaluated_key.is_some(),
            scanned: resp.scanned_count as usize,
        })
    }

    fn list_tables(&self, req: proto::ListTablesRequest) -> NodeResult<proto::ListTablesResponse> {
        let limit = match req.limit as usize {
            0 => LIST_TABLES_MAX,
            n if n > LIST_TABLES_MAX => {
                return Err(NodeError::Validation(format!(
                    "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value less than or equal to {LIST_TABLES_MAX}"
                )))
            }
            n => n,
        };
        let cat = self.ctx.catalog.borrow().clone();
        let names: Vec<String> = cat
            .tables
            .keys()
            .filter(|n| {
                req.exclusive_start_table_name
                    .as_ref()
                    .is_none_or(|s| *n > s)
            })
            .take(limit + 1)
            .cloned()
            .collect();
        let more = names.len() > limit;
        let names: Vec<String> = names.into_iter().take(limit).collect();
        Ok(proto::ListTablesResponse {
            last_evaluated_table_name: if more { names.last().cloned() } else { None },
            table_names: names,
        })
    }
}

fn not_found(name: &str) -> NodeError {
    NodeError::ResourceNotFound(format!(
        "Requested resource not found: Table: {name} not found"
    ))
}

/// A valid value of a key type, to validate a partition key on its own.
fn placeholder(t: KeyType) -> AttributeValue {
    match t {
        KeyType::S => AttributeValue::S("x".into()),
        KeyType::N => AttributeValue::N(ferrodyn_client::Number::parse("0").expect("zero")),
        KeyType::B => AttributeValue::B(vec![0]),
    }
}

fn page_response(schema: &KeySchema, page: RangePage) -> proto::QueryResponse {
    let lek = if page.more {
        page.items.last().map(|i| item_to_proto(&schema.key_of(i)))
    } else {
        None
    };
    proto::QueryResponse {
        scanned_count: page.scanned as u32,
        items: page.items.iter().map(item_to_proto).collect(),
        last_evaluated_key: lek,
    }
}

/// `[start, end)` of the keys matching a sort-key condition within one partition key.
fn sort_range(
    schema: &KeySchema,
    prefix: &[u8],
    cond: Option<&proto::SortKeyCondition>,
) -> NodeResult<(Vec<u8>, Vec<u8>)> {
    let all_end = keys::prefix_end(prefix).unwrap_or_else(|| vec![0xFF; prefix.len() + 1]);
    let Some(cond) = cond else {
        return Ok((prefix.to_vec(), all_end));
    };
    let Some(sk) = &schema.sort_key else {
        return Err(NodeError::Validation(
            "Query key condition not supported: the table has no sort key".into(),
        ));
    };
    let enc = |v: &Option<proto::AttributeValue>| -> NodeResult<Vec<u8>> {
        let v = AttributeValue::from_proto(v.clone().ok_or_else(|| {
            NodeError::Validation("Sort key condition is missing a value".into())
        })?)?;
        if !sk.key_type.matches(&v) {
            return Err(NodeError::Validation(format!(
                "One or more parameter values were invalid: Condition parameter type does not match schema type: sort key {} is {} but the value is {}",
                sk.name,
                sk.key_type,
                v.type_name()
            )));
        }
        let mut k = prefix.to_vec();
        k.extend_from_slice(&v.key_bytes().unwrap_or_default());
        Ok(k)
    };
    let op = Op::try_from(cond.op).unwrap_or(Op::Unspecified);
    let range = match op {
        Op::Eq => {
            let k = enc(&cond.value)?;
            let e = keys::key_successor(&k);
            (k, e)
        }
        Op::Lt => (prefix.to_vec(), enc(&cond.value)?),
        Op::Le => (prefix.to_vec(), keys::key_successor(&enc(&cond.value)?)),
        Op::Gt => (keys::key_successor(&enc(&cond.value)?), all_end),
        Op::Ge => (enc(&cond.value)?, all_end),
        Op::Between => {
            let lo = enc(&cond.value)?;
            let hi = enc(&cond.value2)?;
            if lo > hi {
                return Err(NodeError::Validation(
                    "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound".into(),
                ));
            }
            (lo, keys::key_successor(&hi))
        }
        Op::BeginsWith => {
            if sk.key_type == KeyType::N {
                return Err(NodeError::Validation(format!(
                    "Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N (sort key {})",
                    sk.name
                )));
            }
            let k = enc(&cond.value)?;
            let e = keys::prefix_end(&k).unwrap_or_else(|| all_end.clone());
            (k, e)
        }
        Op::Unspecified => {
            return Err(NodeError::Validation(
                "Sort key condition has no operator".into(),
            ));
        }
    };
    Ok(range)
}

// tonic's handler signature fixes the error type to `Status`.
#[allow(clippy::result_large_err)]
fn respond<T>(r: NodeResult<T>) -> Result<Response<T>, Status> {
    r.map(Response::new).map_err(Status::from)
}

impl Api {
    /// Records the RPC `op` begun at `started` in the node's metrics, then answers it.
    #[allow(clippy::result_large_err)]
    fn finish<T>(
        &self,
        op: RpcOp,
        started: Instant,
        r: NodeResult<T>,
    ) -> Result<Response<T>, Status> {
        self.ctx.storage.metrics().observe_request(op, started, &r);
        respond(r)
    }

    /// A keyed operation: refuse a stale partition table, else run `f`.
    async fn keyed<Q, T, F, Fut>(&self, req: Request<Q>, f: F) -> NodeResult<T>
    where
        F: FnOnce(Route, Q) -> Fut,
        Fut: std::future::Future<Output = NodeResult<T>>,
    {
        let route = Route::of(&req);
        route.check_epoch(&self.ctx)?;
        f(route, req.into_inner()).await
    }
}

#[tonic::async_trait]
impl proto::ferrodyn_server::Ferrodyn for Api {
    async fn create_table(
        &self,
        req: Request<proto::CreateTableRequest>,
    ) -> Result<Response<proto::CreateTableResponse>, Status> {
        let started = Instant::now();
        let route = Route::of(&req);
        let r = self.create_table(route, req.into_inner()).await;
        self.finish(RpcOp::CreateTable, started, r)
    }

    async fn delete_table(
        &self,
        req: Request<proto::DeleteTableRequest>,
    ) -> Result<Response<proto::DeleteTableResponse>, Status> {
        let started = Instant::now();
        let route = Route::of(&req);
        let r = self.delete_table(route, req.into_inner()).await;
        self.finish(RpcOp::DeleteTable, started, r)
    }

    async fn describe_table(
        &self,
        req: Request<proto::DescribeTableRequest>,
    ) -> Result<Response<proto::DescribeTableResponse>, Status> {
        let started = Instant::now();
        let name = req.into_inner().table_name;
        let r = self
            .table(&name)
            .await
            .map(|t| proto::DescribeTableResponse {
                table: Some(t.to_proto()),
            });
        self.finish(RpcOp::DescribeTable, started, r)
    }

    async fn list_tables(
        &self,
        req: Request<proto::ListTablesRequest>,
    ) -> Result<Response<proto::ListTablesResponse>, Status> {
        let started = Instant::now();
        let r = self.list_tables(req.into_inner());
        self.finish(RpcOp::ListTables, started, r)
    }

    async fn put_item(
        &self,
        req: Request<proto::PutItemRequest>,
    ) -> Result<Response<proto::PutItemResponse>, Status> {
        let started = Instant::now();
        let r = self.keyed(req, |rt, q| self.put_item(rt, q)).await;
        self.finish(RpcOp::PutItem, started, r)
    }

    async fn get_item(
        &self,
        req: Request<proto::GetItemRequest>,
    ) -> Result<Response<proto::GetItemResponse>, Status> {
        let started = Instant::now();
        let r = self.keyed(req, |rt, q| self.get_item(rt, q)).await;
        self.finish(RpcOp::GetItem, started, r)
    }

    async fn delete_item(
        &self,
        req: Request<proto::DeleteItemRequest>,
    ) -> Result<Response<proto::DeleteItemResponse>, Status> {
        let started = Instant::now();
        let r = self.keyed(req, |rt, q| self.delete_item(rt, q)).await;
        self.finish(RpcOp::DeleteItem, started, r)
    }

    async fn query(
        &self,
        req: Request<proto::QueryRequest>,
    ) -> Result<Response<proto::QueryResponse>, Status> {
        let started = Instant::now();
        let r = self.keyed(req, |rt, q| self.query(rt, q)).await;
        self.finish(RpcOp::Query, started, r)
    }

    async fn scan(
        &self,
        req: Request<proto::ScanRequest>,
    ) -> Result<Response<proto::ScanResponse>, Status> {
        let started = Instant::now();
        let r = self.scan(req.into_inner()).await;
        self.finish(RpcOp::Scan, started, r)
    }

    async fn partition_table(
        &self,
        _req: Request<proto::PartitionTableRequest>,
    ) -> Result<Response<proto::PartitionTableResponse>, Status> {
        let started = Instant::now();
        let l = &self.ctx.layout;
        let r = Ok(proto::PartitionTableResponse {
            epoch: l.epoch,
            partition_count: l.partition_count,
            replication_factor: l.replication_factor,
            nodes: super::status::nodes(&self.ctx, None),
            partitions: super::status::partition_table(&self.ctx),
        });
        self.finish(RpcOp::PartitionTable, started, r)
    }

    async fn local_status(
        &self,
        _req: Request<proto::LocalStatusRequest>,
    ) -> Result<Response<proto::LocalStatusResponse>, Status> {
        let started = Instant::now();
        let r = Ok(super::status::local(&self.ctx));
        self.finish(RpcOp::LocalStatus, started, r)
    }

    async fn cluster_status(
        &self,
        _req: Request<proto::ClusterStatusRequest>,
    ) -> Result<Response<proto::ClusterStatusResponse>, Status> {
        let started = Instant::now();
        let r = Ok(super::status::cluster(&self.ctx, Duration::from_secs(2)).await);
        self.finish(RpcOp::ClusterStatus, started, r)
    }
}
