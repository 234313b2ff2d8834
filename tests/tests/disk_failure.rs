//! Full disks. A node whose disk fails (every write errors, as on a full disk) stops its Raft
//! groups and reports it (fail-stop); the other replicas take over, and nothing acknowledged
//! is lost. Before that, below the free-space reserve, writes that add data are refused with
//! a clear error while reads and deletes go on.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use ferrodyn_client::Client;
use ferrodyn_node::config::MAX_MIN_FREE_DISK_MB;
use ferrodyn_node::storage::keys::group_of_partition;
use ferrodyn_tests::{eventually, int_attr, item, kv_schema, ni, s, TestCluster};

const TABLE: &str = "disk";

async fn put_all(client: &Client, range: std::ops::Range<i64>) -> Result<BTreeMap<String, i64>> {
    let mut acked = BTreeMap::new();
    for i in range {
        let key = format!("k{i}");
        client
            .put_item(TABLE, item([("k", s(key.as_str())), ("v", ni(i))]))
            .await
            .map_err(|e| anyhow!("put {key}: {e}"))?;
        acked.insert(key, i);
    }
    Ok(acked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_disk_fails_stops_its_groups_and_the_others_take_over() -> Result<()> {
    let cluster = TestCluster::start(3, 1, 3).await?;
    cluster.wait_for_leaders(Duration::from_secs(20)).await?;
    let client = cluster.client().await?;
    client.create_table(TABLE, &kv_schema()).await?;
    let mut acked = put_all(&client, 0..50).await?;

    // The leader of the one partition loses its disk.
    let group = group_of_partition(0);
    let failed = cluster
        .group_leader(group)
        .ok_or_else(|| anyhow!("no leader"))?;
    ensure!(cluster.failure(failed).is_none(), "failed before the fault");
    cluster
        .ctx_of(failed)
        .ok_or_else(|| anyhow!("node {failed} not running"))?
        .storage
        .inject_write_failure(true);

    // Writes go on: the next one fails on the leader's disk, its group stops there, and the
    // other two elect a leader; the client retries over to it.
    acked.extend(put_all(&client, 50..100).await?);

    // The node reports the failure, naming the cause.
    let reason = eventually(
        Duration::from_secs(10),
        "the failure to be reported",
        || {
            let r = cluster.failure(failed);
            async move { r.ok_or_else(|| anyhow!("no failure reported")) }
        },
    )
    .await?;
    ensure!(
        reason.contains("No space left on device") && reason.contains(&group.to_string()),
        "reason: {reason}"
    );
    let new_leader = cluster
        .group_leader(group)
        .ok_or_else(|| anyhow!("no leader after the failure"))?;
    ensure!(new_leader != failed, "node {failed} still leads");

    // Every acknowledged write is there, read through the new leader.
    for (key, v) in &acked {
        let got = client
            .get_item(TABLE, item([("k", s(key.as_str()))]), true)
            .await?
            .ok_or_else(|| anyhow!("{key} lost"))?;
        ensure!(int_attr(&got, "v")? == *v, "{key} = {got:?}, want {v}");
    }
    // The healthy nodes report nothing; the failed one still shuts down cleanly.
    for id in cluster.live() {
        ensure!(
            id == failed || cluster.failure(id).is_none(),
            "node {id} reports a failure"
        );
    }
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn below_the_disk_reserve_writes_that_add_data_are_refused_and_deletes_accepted() -> Result<()>
{
    let cluster = TestCluster::start(3, 1, 3).await?;
    cluster.wait_for_leaders(Duration::from_secs(20)).await?;
    let client = cluster.client().await?;
    client.create_table(TABLE, &kv_schema()).await?;
    let acked = put_all(&client, 0..10).await?;

    // A reserve larger than any disk: every node is below it from its next measurement.
    for id in cluster.live() {
        cluster
            .ctx_of(id)
            .ok_or_else(|| anyhow!("node {id} not running"))?
            .disk
            .set_reserve_mb(MAX_MIN_FREE_DISK_MB);
    }
    // Each attempt writes a new key, until one is refused; the refused one must be absent.
    let attempt = std::sync::atomic::AtomicU64::new(0);
    let (refused_key, refused) = eventually(Duration::from_secs(10), "puts to be refused", || {
        let client = client.clone();
        let key = format!(
            "new{}",
            attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        async move {
            match client
                .put_item(TABLE, item([("k", s(key.as_str())), ("v", ni(1))]))
                .await
            {
                Ok(_) => Err(anyhow!("put {key} accepted")),
                Err(e) => Ok((key, e.to_string())),
            }
        }
    })
    .await?;
    ensure!(
        refused.contains("min_free_disk_mb") && refused.contains("MiB free"),
        "refusal: {refused}"
    );
    // Reads still work; deletes are accepted, so users can make room.
    ensure!(client
        .get_item(TABLE, item([("k", s("k1"))]), true)
        .await?
        .is_some());
    client.delete_item(TABLE, item([("k", s("k1"))])).await?;
    ensure!(client
        .get_item(TABLE, item([("k", s("k1"))]), true)
        .await?
        .is_none());
    ensure!(
        client
            .get_item(TABLE, item([("k", s(refused_key.as_str()))]), true)
            .await?
            .is_none(),
        "the refused put of {refused_key} was applied"
    );

    // Room again: writes go through.
    for id in cluster.live() {
        cluster.ctx_of(id).unwrap().disk.set_reserve_mb(0);
    }
    eventually(Duration::from_secs(10), "puts to be accepted again", || {
        let client = client.clone();
        async move {
            client
                .put_item(TABLE, item([("k", s("new")), ("v", ni(1))]))
                .await
                .map_err(|e| anyhow!("{e}"))
        }
    })
    .await?;
    ensure!(acked.len() == 10);
    cluster.shutdown().await
}
