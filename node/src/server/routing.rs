//! Getting a request to the node that can serve it.
//!
//! Any node accepts any request. A write or strong read runs where the shard's leader is: here
//! if this node leads, otherwise it is forwarded (over the shared peer channel) to the leader,
//! following `NotLeader` hints and retrying `Unavailable` until a budget runs out. A request
//! marked `x-ferrodyn-route: direct` (the client library routes itself; forwarded requests are
//! marked too, so they never loop) is answered with `NotLeader` instead of forwarded.

use std::future::Future;
use std::time::{Duration, Instant};

use ferrodyn_client::error::{EPOCH_HEADER, ROUTE_DIRECT, ROUTE_HEADER};
use tonic::transport::Channel;

use crate::error::{NodeError, NodeResult};
use crate::node::{from_status, NodeCtx};
use crate::raft::groups::members_of;

/// How long a node keeps trying to reach a shard's leader for one request.
const FORWARD_BUDGET: Duration = Duration::from_secs(4);
/// Pause between attempts while a shard elects a leader.
const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// Routing facts of an incoming request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Route {
    /// Answer `NotLeader` rather than forward.
    pub direct: bool,
    /// The client's partition-table epoch, if it sent one.
    pub epoch: Option<u64>,
}

impl Route {
    /// Reads the routing metadata of a request.
    pub fn of<T>(req: &tonic::Request<T>) -> Route {
        let md = req.metadata();
        Route {
            direct: md.get(ROUTE_HEADER).and_then(|v| v.to_str().ok()) == Some(ROUTE_DIRECT),
            epoch: md
                .get(EPOCH_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.parse().ok()),
        }
    }

    /// Refuses a client whose partition table is from another epoch.
    pub fn check_epoch(&self, ctx: &NodeCtx) -> NodeResult<()> {
        match self.epoch {
            Some(e) if e != 0 && e != ctx.layout.epoch => Err(NodeError::WrongShard {
                client: e,
                epoch: ctx.layout.epoch,
            }),
            _ => Ok(()),
        }
    }
}

/// Wraps a message for forwarding: marked direct so the receiver never forwards it again.
pub fn direct<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert(ROUTE_HEADER, ROUTE_DIRECT.parse().expect("ascii"));
    r.set_timeout(Duration::from_secs(5));
    r
}

/// Runs `local` on the leader of `group`: here if this node leads it, else forwarded with
/// `remote` to the leader.
pub async fn on_leader<T, L, LF, R, RF>(
    ctx: &NodeCtx,
    group: u64,
    route: Route,
    local: L,
    remote: R,
) -> NodeResult<T>
where
    L: Fn() -> LF,
    LF: Future<Output = NodeResult<T>>,
    R: Fn(Channel) -> RF,
    RF: Future<Output = Result<T, tonic::Status>>,
{
    let deadline = Instant::now() + FORWARD_BUDGET;
    let hosted = ctx.groups.get(group).is_some();
    let members = members_of(&ctx.layout, group);
    let mut rotate = 0usize;
    // Where to try next: None = this node (when it hosts the group).
    let mut target: Option<u64> = if hosted {
        None
    } else {
        Some(ctx.leader_of(group).unwrap_or(members[0]))
    };
    loop {
        let attempt = match target {
            None => local().await,
            Some(t) if t == ctx.id => local().await,
            Some(t) => forward(ctx, t, &remote).await,
        };
        match attempt {
            Ok(v) => return Ok(v),
            Err(NodeError::NotLeader { leader, .. }) => {
                if route.direct {
                    return Err(ctx.not_leader(group, leader));
                }
                match leader {
                    Some(l) if Some(l) != target && !(target.is_none() && l == ctx.id) => {
                        target = Some(l);
                        if Instant::now() > deadline {
                            return Err(no_leader(group));
                        }
                        continue;
                    }
                    _ => {
                        // Election in progress: wait, then ask around again.
                        rotate += 1;
                        target = if hosted {
                            None
                        } else {
                            Some(members[rotate % members.len()])
                        };
                    }
                }
            }
            Err(NodeError::Unavailable(msg)) => {
                if route.direct && target.is_none() {
                    return Err(NodeError::Unavailable(msg));
                }
                tracing::debug!(group, ?target, %msg, "shard unavailable; retrying");
                rotate += 1;
                target = if hosted && target.is_some() {
                    None
                } else {
                    Some(members[rotate % members.len()])
                };
            }
            Err(e) => return Err(e),
        }
        if Instant::now() > deadline {
            return Err(no_leader(group));
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Runs `local` on any replica of `group`: here if hosted, else on the first reachable replica
/// (leader first when known). Used by eventually consistent reads.
pub async fn on_replica<T, L, LF, R, RF>(
    ctx: &NodeCtx,
    group: u64,
    local: L,
    remote: R,
) -> NodeResult<T>
where
    L: Fn() -> LF,
    LF: Future<Output = NodeResult<T>>,
    R: Fn(Channel) -> RF,
    RF: Future<Output = Result<T, tonic::Status>>,
{
    if ctx.groups.get(group).is_some() {
        return local().await;
    }
    let mut members = members_of(&ctx.layout, group);
    if let Some(l) = ctx.leader_of(group) {
        members.retain(|m| *m != l);
        members.insert(0, l);
    }
    let mut last = no_leader(group);
    for m in members {
        match forward(ctx, m, &remote).await {
            Ok(v) => return Ok(v),
            Err(e @ NodeError::Unavailable(_)) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

async fn forward<T, R, RF>(ctx: &NodeCtx, to: u64, remote: &R) -> NodeResult<T>
where
    R: Fn(Channel) -> RF,
    RF: Future<Output = Result<T, tonic::Status>>,
{
    ctx.peers
        .faults()
        .pass(ctx.id, to)
        .await
        .map_err(|e| NodeError::Unavailable(e.to_string()))?;
    let ch = ctx
        .peers
        .channel(to)
        .ok_or_else(|| NodeError::Internal(format!("no address for node {to}")))?;
    remote(ch).await.map_err(from_status)
}

fn no_leader(group: u64) -> NodeError {
    NodeError::Unavailable(format!(
        "shard {group} has no reachable leader (tried for {}s)",
        FORWARD_BUDGET.as_secs()
    ))
}
