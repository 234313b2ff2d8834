//! Network faults: an isolated follower serves (stale, never invented) eventual reads and
//! catches up after the partition heals; lossy, slow links still converge.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Result};
use ferrodyn_client::proto::GetItemRequest;
use ferrodyn_client::value::{item_from_proto, item_to_proto};
use ferrodyn_client::Client;
use ferrodyn_node::storage::keys::{group_of_partition, META_GROUP};
use ferrodyn_tests::{eventually, int_attr, item, kv_schema, ni, s, ClusterOptions, TestCluster};

/// The value of `k` on node `id`'s own replica, if any.
async fn local_value(cluster: &TestCluster, id: u64, table: &str, k: &str) -> Result<Option<i64>> {
    cluster
        .local_get(id, table, &item([("k", s(k))]))
        .await?
        .map(|it| int_attr(&it, "v"))
        .transpose()
}

/// Waits until node `id`'s own replica holds `k = v`.
async fn wait_local(cluster: &TestCluster, id: u64, table: &str, k: &str, v: i64) -> Result<()> {
    eventually(
        Duration::from_secs(20),
        &format!("node {id} replicating {k} = {v}"),
        || async {
            match local_value(cluster, id, table, k).await? {
                Some(got) if got == v => Ok(()),
                other => bail!("node {id} has {k} = {other:?}"),
            }
        },
    )
    .await
}

async fn put(client: &Client, table: &str, k: &str, v: i64) -> Result<()> {
    client
        .put_item(table, item([("k", s(k)), ("v", ni(v))]))
        .await
        .map_err(|e| anyhow!("put {k} = {v}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isolated_follower_serves_stale_reads_then_catches_up() -> Result<()> {
    // Short log retention: the follower falls behind the purged log and needs a snapshot.
    let mut opts = ClusterOptions::new(3, 4, 3);
    opts.raft.snapshot_every_logs = 30;
    opts.raft.logs_kept_after_snapshot = 5;
    let cluster = TestCluster::start_with(opts).await?;
    let leaders = cluster.wait_for_leaders(Duration::from_secs(20)).await?;
    let client = cluster.client().await?;
    client.create_table("kvs", &kv_schema()).await?;

    // The follower: preferably not the metadata leader; it must lead nothing when isolated.
    let follower = cluster
        .ids()
        .into_iter()
        .find(|&id| leaders[&META_GROUP] != id)
        .expect("three nodes");
    cluster
        .move_leaders_off(follower, Duration::from_secs(10))
        .await?;

    put(&client, "kvs", "hot", 0).await?;
    wait_local(&cluster, follower, "kvs", "hot", 0).await?;

    // Leadership may have moved back in the meantime; isolate only a true follower.
    cluster
        .move_leaders_off(follower, Duration::from_secs(10))
        .await?;
    cluster.isolate(follower);
    let mut written: BTreeMap<String, i64> = BTreeMap::new();
    for v in 1..=40 {
        put(&client, "kvs", "hot", v).await?;
    }
    for i in 0..120 {
        put(&client, "kvs", &format!("bulk{i}"), i).await?;
        written.insert(format!("bulk{i}"), i);
    }

    // Eventual reads on the isolated node alone: they succeed, from its own stale replica.
    let stale = local_value(&cluster, follower, "kvs", "hot").await?;
    ensure!(
        stale == Some(0),
        "isolated node {follower} returned hot = {stale:?}, expected the stale 0"
    );
    for (k, v) in &written {
        let got = local_value(&cluster, follower, "kvs", k).await?;
        ensure!(
            got.is_none() || got == Some(*v),
            "isolated node {follower} invented {k} = {got:?}"
        );
    }
    // A client bootstrapped from the isolated node still reads a written value.
    let via = cluster.client_for(follower).await?;
    let got = via.get_item("kvs", item([("k", s("hot"))]), false).await?;
    let v = got.as_ref().map(|it| int_attr(it, "v")).transpose()?;
    ensure!(
        matches!(v, Some(0..=40)),
        "client via the isolated node read hot = {v:?}"
    );
    // A consistent read sent to the isolated node must not be served from its stale replica:
    // it either fails (no leader reachable from there) or returns the latest value.
    let mut raw = cluster.raw(follower).await?;
    let strong = raw
        .get_item(GetItemRequest {
            table_name: "kvs".into(),
            key: Some(item_to_proto(&item([("k", s("hot"))]))),
            consistent_read: true,
        })
        .await;
    if let Ok(resp) = strong {
        let it = resp.into_inner().item.map(item_from_proto).transpose()?;
        let v = it.as_ref().map(|it| int_attr(it, "v")).transpose()?;
        ensure!(
            v == Some(40),
            "consistent read on the isolated node returned hot = {v:?}, latest is 40"
        );
    }

    // Writes keep flowing on the majority, and the follower catches up once healed.
    ensure!(
        (0..cluster.partitions()).all(|p| cluster.leader_of_partition(p) != Some(follower)),
        "the isolated node still counts as a leader"
    );
    cluster.heal();
    wait_local(&cluster, follower, "kvs", "hot", 40).await?;
    for (k, v) in &written {
        wait_local(&cluster, follower, "kvs", k, *v).await?;
    }
    let snapshotted = (0..cluster.partitions())
        .filter(|&p| {
            cluster
                .snapshot_index(follower, group_of_partition(p))
                .is_some()
        })
        .count();
    eprintln!("node {follower} holds snapshots of {snapshotted} partitions after catching up");
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lossy_slow_links_still_converge() -> Result<()> {
    let cluster = TestCluster::start(3, 4, 3).await?;
    cluster.wait_for_leaders(Duration::from_secs(20)).await?;
    let client = cluster.client().await?;
    client.create_table("lossy", &kv_schema()).await?;

    for id in cluster.ids() {
        cluster.faults(id).set_drop_rate(0.2);
        cluster.faults(id).set_delay(Duration::from_millis(15));
    }
    // Four writers; each writes its own keys once and overwrites its own counter key.
    let writers = (0..4i64).map(|w| {
        let c = client.clone();
        tokio::spawn(async move {
            let mut acked: BTreeMap<String, i64> = BTreeMap::new();
            let mut failed: BTreeMap<String, i64> = BTreeMap::new();
            let mut counter = (0i64, 0i64); // (last acknowledged, last attempted)
            for i in 0..30i64 {
                let key = format!("w{w}-{i}");
                match put(&c, "lossy", &key, i).await {
                    Ok(()) => acked.insert(key, i),
                    Err(_) => failed.insert(key, i),
                };
                counter.1 = i;
                if put(&c, "lossy", &format!("counter{w}"), i).await.is_ok() {
                    counter.0 = i;
                }
            }
            (acked, failed, counter)
        })
    });
    let results = futures::future::join_all(writers).await;
    cluster.heal();
    cluster.wait_for_leaders(Duration::from_secs(20)).await?;

    let mut acked = BTreeMap::new();
    let mut failed = BTreeMap::new();
    let mut counters = Vec::new();
    for (w, r) in results.into_iter().enumerate() {
        let (a, f, c) = r?;
        acked.extend(a);
        failed.extend(f);
        counters.push((format!("counter{w}"), c));
    }
    eprintln!(
        "under faults: {} writes acknowledged, {} failed",
        acked.len(),
        failed.len()
    );
    ensure!(
        acked.len() >= 60,
        "only {} of 120 writes acknowledged under 20% loss",
        acked.len()
    );

    // Every acknowledged write is readable; failed ones are absent or as written.
    for (k, v) in &acked {
        let got = client
            .get_item("lossy", item([("k", s(k.as_str()))]), true)
            .await?;
        let got = got.as_ref().map(|it| int_attr(it, "v")).transpose()?;
        ensure!(
            got == Some(*v),
            "acknowledged {k} = {v} reads back as {got:?}"
        );
    }
    for (k, v) in &failed {
        let got = client
            .get_item("lossy", item([("k", s(k.as_str()))]), true)
            .await?;
        let got = got.as_ref().map(|it| int_attr(it, "v")).transpose()?;
        ensure!(
            got.is_none() || got == Some(*v),
            "failed write {k} = {v} reads back as {got:?}"
        );
    }
    // Each counter holds a value between its last acknowledged and last attempted write, and
    // every replica converges to that same value.
    for (k, (last_acked, last_attempted)) in &counters {
        let got = client
            .get_item("lossy", item([("k", s(k.as_str()))]), true)
            .await?;
        let got = got
            .as_ref()
            .map(|it| int_attr(it, "v"))
            .transpose()?
            .unwrap_or(-1);
        ensure!(
            (*last_acked..=*last_attempted).contains(&got),
            "{k} = {got}, last acknowledged {last_acked}, last attempted {last_attempted}"
        );
        for id in cluster.ids() {
            wait_local(&cluster, id, "lossy", k, got).await?;
        }
    }
    for id in cluster.ids() {
        for (k, v) in acked.iter().step_by(5) {
            wait_local(&cluster, id, "lossy", k, *v).await?;
        }
    }
    cluster.shutdown().await
}

/// A leader cut off from its followers keeps believing it leads (openraft 0.9 leaders do not
/// step down on their own) and accepts writes it can never commit. After one such timeout the
/// client must remember the node that did serve the partition instead of going back to the
/// stale leader on every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_stops_sending_to_an_isolated_stale_leader() -> Result<()> {
    let cluster = TestCluster::start(3, 1, 3).await?;
    cluster.wait_for_leaders(Duration::from_secs(20)).await?;
    let group = group_of_partition(0);
    let replicas = cluster.replicas(0);
    let (stale, successor) = (replicas[0], replicas[1]);
    cluster
        .make_leader(stale, group, Duration::from_secs(10))
        .await?;
    cluster
        .client()
        .await?
        .create_table("stale", &kv_schema())
        .await?;

    // The first replica leads and is cut off; the second takes over.
    cluster.isolate(stale);
    cluster
        .make_leader(successor, group, Duration::from_secs(10))
        .await?;
    // A client that learns the partition table from the stale leader believes it leads.
    let client = cluster.client_for(stale).await?;
    let before = cluster
        .last_log_index(stale, group)
        .ok_or_else(|| anyhow!("node {stale} stopped"))?;
    for i in 0..6 {
        put(&client, "stale", &format!("k{i}"), i).await?;
    }
    // Every write the stale leader accepted sits uncommitted in its log.
    let after = cluster
        .last_log_index(stale, group)
        .ok_or_else(|| anyhow!("node {stale} stopped"))?;
    ensure!(
        after - before <= 2,
        "{} of 6 writes went to the isolated stale leader {stale} first (each costs a request timeout)",
        after - before
    );
    cluster.heal();
    for i in 0..6 {
        let got = client
            .get_item("stale", item([("k", s(format!("k{i}")))]), true)
            .await?;
        ensure!(got.is_some(), "k{i} lost");
    }
    cluster.shutdown().await
}
