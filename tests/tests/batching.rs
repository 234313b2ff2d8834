//! Proposal batching: concurrent writes to one partition share log entries on its leader, and
//! every acknowledged write is applied with its own value.

use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use ferrodyn_node::storage::keys::group_of_partition;
use ferrodyn_tests::{int_attr, item, kv_schema, ni, s, TestCluster};

/// Sum and count of a histogram in a node's Prometheus text.
fn histogram(text: &str, name: &str) -> (f64, f64) {
    let field = |suffix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}_{suffix} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field("sum"), field("count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_to_one_partition_share_entries() -> Result<()> {
    // One partition: every key lands in the same group.
    let cluster = TestCluster::start(3, 1, 3).await?;
    cluster.wait_for_leaders(Duration::from_secs(20)).await?;
    let client = cluster.client().await?;
    client.create_table("batched", &kv_schema()).await?;
    let group = group_of_partition(0);
    let leader = cluster
        .group_leader(group)
        .ok_or_else(|| anyhow!("no leader"))?;
    let before = histogram(
        &cluster.ctx_of(leader).unwrap().storage.metrics().render(),
        "ferrodyn_raft_proposal_commands",
    );

    const N: i64 = 400;
    let writes = (0..N).map(|i| {
        let client = client.clone();
        async move {
            client
                .put_item("batched", item([("k", s(format!("k{i}"))), ("v", ni(i))]))
                .await
                .map_err(|e| anyhow!("put k{i}: {e}"))
        }
    });
    for r in futures::future::join_all(writes).await {
        r?;
    }

    // Every write applied with its own value.
    for i in 0..N {
        let got = client
            .get_item("batched", item([("k", s(format!("k{i}")))]), true)
            .await?
            .ok_or_else(|| anyhow!("k{i} missing"))?;
        ensure!(int_attr(&got, "v")? == i, "k{i} = {got:?}");
    }

    // The leader proposed them in fewer entries than writes.
    let after = histogram(
        &cluster.ctx_of(leader).unwrap().storage.metrics().render(),
        "ferrodyn_raft_proposal_commands",
    );
    let (commands, entries) = (after.0 - before.0, after.1 - before.1);
    ensure!(
        commands >= N as f64,
        "the leader proposed {commands} commands for {N} writes"
    );
    ensure!(
        entries < commands,
        "{commands} writes in {entries} entries: nothing was batched"
    );
    eprintln!("{commands} writes in {entries} proposed entries");
    cluster.shutdown().await
}
