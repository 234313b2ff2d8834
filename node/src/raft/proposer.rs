//! Proposal batching on a group's leader.
//!
//! openraft 0.9 gives every `client_write` its own log append, its own replication round to
//! each follower, its own commit notification and its own apply. With many clients writing to
//! one partition, that per-entry work, not the disk, is what limits throughput. So each group
//! has a [`Proposer`]: a task that owns the group's `client_write` calls and keeps at most
//! `max_inflight` of them outstanding. While they are, new writes wait in its queue; when a
//! slot frees, everything queued (up to [`MAX_COMMANDS`] commands or about [`MAX_BYTES`]) goes
//! into ONE log entry, a [`Command::Batch`], applied in queue order with one result per command.
//!
//! A lone write is proposed as soon as it arrives (a free slot means no waiting), as itself
//! rather than as a batch of one, so an idle group's latency is unchanged. The batching only
//! happens when writes are already queueing behind the group's in-flight proposals, the way
//! TiKV's raftstore and etcd batch the proposals of one poll.
//!
//! Outcomes are the same as for a lone `client_write`: a command's result is known only once
//! its entry is applied; if the entry's `client_write` fails (leader lost, group stopped),
//! every command of the batch gets that error, and, as for a single write, whether it applied
//! is then unknown to the caller.

use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

use super::{Command, CommandResult, RaftHandle};
use crate::metrics::Metrics;

/// Most commands in one batched entry.
pub const MAX_COMMANDS: usize = 256;
/// Rough byte budget of one batched entry (a batch stops growing once it is reached).
pub const MAX_BYTES: usize = 1 << 20;
/// Bound of a group's proposal queue; a full queue makes proposers wait (backpressure).
const QUEUE_DEPTH: usize = 4096;

/// Why a proposal failed. Cloneable, because one failed entry fails every command in it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProposeError {
    /// This node does not lead the group; the leader it knows of, if any.
    #[error("not the leader (leader {0:?})")]
    ForwardToLeader(Option<u64>),
    /// The group is stopped or broken (shutting down, storage failure).
    #[error("raft group stopped: {0}")]
    Stopped(String),
    /// A bug: the applied result does not match the proposal.
    #[error("{0}")]
    Internal(String),
}

/// One queued command and where its result goes.
struct Pending {
    cmd: Command,
    size: usize,
    reply: oneshot::Sender<Result<CommandResult, ProposeError>>,
}

/// The proposal queue and batching task of one group (see the module docs).
pub struct Proposer {
    tx: mpsc::Sender<Pending>,
    stop: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Proposer {
    /// Starts the batching task of `group` over `raft`, keeping at most `max_inflight`
    /// `client_write` calls outstanding (at least 1).
    pub fn start(
        group: u64,
        raft: RaftHandle,
        max_inflight: usize,
        metrics: Arc<Metrics>,
    ) -> Proposer {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let (stop_tx, stop_rx) = oneshot::channel();
        let slots = Arc::new(Semaphore::new(max_inflight.max(1)));
        let span = tracing::info_span!("proposer", shard = group);
        let task = tokio::spawn(tracing::Instrument::instrument(
            run(raft, rx, stop_rx, slots, metrics),
            span,
        ));
        Proposer {
            tx,
            stop: std::sync::Mutex::new(Some(stop_tx)),
            task: tokio::sync::Mutex::new(Some(task)),
        }
    }

    /// Proposes `cmd` and waits for its applied result.
    pub async fn propose(&self, cmd: Command) -> Result<CommandResult, ProposeError> {
        let (reply, rx) = oneshot::channel();
        let size = cmd.approx_size();
        self.tx
            .send(Pending { cmd, size, reply })
            .await
            .map_err(|_| ProposeError::Stopped("proposer stopped".into()))?;
        rx.await
            .map_err(|_| ProposeError::Stopped("proposer stopped".into()))?
    }

    /// Stops taking new batches and waits for the task to end. Batches already proposed finish
    /// on their own (or fail when the group stops); queued commands fail with `Stopped`.
    pub async fn shutdown(&self) {
        if let Some(stop) = self.stop.lock().expect("proposer stop lock").take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

async fn run(
    raft: RaftHandle,
    mut rx: mpsc::Receiver<Pending>,
    mut stop: oneshot::Receiver<()>,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
) {
    loop {
        // A slot first, then the queue: whatever arrived while every slot was busy is taken
        // into the next entry at once.
        let permit = tokio::select! {
            _ = &mut stop => return,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let first = tokio::select! {
            _ = &mut stop => return,
            m = rx.recv() => match m {
                Some(m) => m,
                None => return,
            },
        };
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(p) = next.take() {
            // A caller that gave up (its request was cancelled) before the proposal is not
            // proposed: it learns nothing either way.
            if !p.reply.is_closed() {
                bytes += p.size;
                batch.push(p);
            }
            if batch.len() < MAX_COMMANDS && bytes < MAX_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if batch.is_empty() {
            continue;
        }
        metrics.observe_proposal(batch.len());
        let raft = raft.clone();
        tokio::spawn(async move {
            propose_batch(&raft, batch).await;
            drop(permit);
        });
    }
}

/// Proposes `batch` as one entry and hands each command its result.
async fn propose_batch(raft: &RaftHandle, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        let p = batch.pop().expect("one command");
        let r = raft.client_write(Arc::new(p.cmd)).await;
        let _ = p.reply.send(r.map(|resp| resp.data).map_err(propose_error));
        return;
    }
    let (cmds, replies): (Vec<Command>, Vec<_>) =
        batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
    let count = cmds.len();
    match raft.client_write(Arc::new(Command::Batch(cmds))).await {
        Ok(resp) => match resp.data {
            CommandResult::Batch(results) if results.len() == count => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(r));
                }
            }
            other => {
                let e = ProposeError::Internal(format!(
                    "a batch of {count} commands applied as {other:?}"
                ));
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        },
        Err(e) => {
            let e = propose_error(e);
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

fn propose_error(e: RaftError<u64, ClientWriteError<u64, openraft::BasicNode>>) -> ProposeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            ProposeError::ForwardToLeader(f.leader_id)
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ProposeError::Internal(e.to_string())
        }
        RaftError::Fatal(e) => ProposeError::Stopped(e.to_string()),
    }
}
