//! Placement and routing on a five-node cluster: replicas, leader spread, and requests that
//! every node must forward for the partitions it does not host.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use ferrodyn_client::proto;
use ferrodyn_client::schema::{KeyAttr, KeySchema, KeyType};
use ferrodyn_client::value::{item_to_proto, AttributeValue};
use ferrodyn_node::storage::keys::group_of_partition;
use ferrodyn_tests::{item, ni, s, scan_all, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_nodes_sixteen_partitions_spread_replicas_and_leaders() -> Result<()> {
    let cluster = TestCluster::start(5, 16, 3).await?;
    let leaders = cluster.wait_for_leaders(Duration::from_secs(20)).await?;

    // Every partition on three distinct members, and every node hosting some.
    let ids: BTreeSet<u64> = cluster.ids().into_iter().collect();
    let mut hosted: BTreeMap<u64, usize> = BTreeMap::new();
    for p in 0..16 {
        let replicas = cluster.replicas(p);
        let distinct: BTreeSet<u64> = replicas.iter().copied().collect();
        ensure!(
            replicas.len() == 3 && distinct.len() == 3,
            "partition {p} replicas {replicas:?}"
        );
        ensure!(
            distinct.is_subset(&ids),
            "partition {p} replicas {replicas:?} outside {ids:?}"
        );
        for r in replicas {
            *hosted.entry(r).or_default() += 1;
        }
        let leader = leaders[&group_of_partition(p)];
        ensure!(
            distinct.contains(&leader),
            "partition {p} led by {leader}, not a replica"
        );
    }
    ensure!(hosted.len() == 5, "some node hosts nothing: {hosted:?}");

    // Every node hosts exactly the groups the layout gives it.
    for id in cluster.ids() {
        let ctx = cluster
            .ctx_of(id)
            .ok_or_else(|| anyhow!("node {id} not running"))?;
        for p in 0..16 {
            let expect = cluster.replicas(p).contains(&id);
            ensure!(
                ctx.groups.get(group_of_partition(p)).is_some() == expect,
                "node {id} hosting partition {p}: expected {expect}"
            );
        }
    }

    // Leaders spread over at least four nodes.
    let leading: BTreeSet<u64> = (0..16).map(|p| leaders[&group_of_partition(p)]).collect();
    ensure!(
        leading.len() >= 4,
        "partition leaders only on {leading:?}: {leaders:?}"
    );

    // The status API agrees with the nodes.
    let client = cluster.client().await?;
    let status = client.cluster_status().await?;
    ensure!(
        status.partition_count == 16 && status.partitions.len() == 16,
        "{status:?}"
    );
    ensure!(
        status.nodes.iter().all(|n| n.reachable),
        "unreachable nodes: {:?}",
        status.nodes
    );
    for info in &status.partitions {
        ensure!(
            info.replicas == cluster.replicas(info.partition),
            "status replicas of partition {}: {:?}",
            info.partition,
            info.replicas
        );
        ensure!(
            info.leader != 0 && info.replicas.contains(&info.leader),
            "status leader: {info:?}"
        );
    }

    // Writes through one node, reads (eventual and consistent) and scans through every node,
    // each of which hosts only some partitions and must forward the rest.
    let schema = KeySchema {
        partition_key: KeyAttr::new("id", KeyType::S),
        sort_key: None,
    };
    client.create_table("spread", &schema).await?;
    let count = 160;
    for i in 0..count {
        client
            .put_item("spread", item([("id", s(format!("k{i}"))), ("v", ni(i))]))
            .await?;
    }
    let partitions: BTreeSet<u32> = (0..count)
        .map(|i| cluster.partition_of(&s(format!("k{i}"))))
        .collect();
    ensure!(
        partitions.len() == 16,
        "the keys cover only partitions {partitions:?}"
    );
    for id in cluster.ids() {
        let c = cluster.client_for(id).await?;
        for consistent in [false, true] {
            let items = scan_all(&c, "spread", 7, consistent).await?;
            let keys: Vec<String> = items
                .iter()
                .map(|i| match i.get("id") {
                    Some(ferrodyn_client::AttributeValue::S(k)) => k.clone(),
                    other => format!("{other:?}"),
                })
                .collect();
            let distinct: BTreeSet<&String> = keys.iter().collect();
            ensure!(
                keys.len() == count as usize && distinct.len() == count as usize,
                "scan through node {id} (consistent {consistent}) saw {} items, {} distinct",
                keys.len(),
                distinct.len()
            );
        }
        for i in (0..count).step_by(9) {
            let key = item([("id", s(format!("k{i}")))]);
            let got = c.get_item("spread", key, true).await?;
            ensure!(
                got.as_ref().and_then(|g| g.get("v")) == Some(&ni(i)),
                "k{i} via node {id}: {got:?}"
            );
        }
    }

    // A write sent, without the client's routing, to a node that does not host its
    // partition is forwarded whole: every attribute type arrives as written.
    let key = "forwarded";
    let p = cluster.partition_of(&s(key));
    let outsider = cluster
        .ids()
        .into_iter()
        .find(|id| !cluster.replicas(p).contains(id))
        .ok_or_else(|| anyhow!("every node hosts partition {p}"))?;
    let written = item([
        ("id", s(key)),
        ("n", ni(-42)),
        ("b", AttributeValue::B(vec![0, 1, 255])),
        ("t", AttributeValue::Bool(true)),
        ("z", AttributeValue::Null),
        (
            "ss",
            AttributeValue::Ss(vec!["a".to_string(), "b".to_string()]),
        ),
        (
            "l",
            AttributeValue::L(vec![s("x"), ni(7), item_value([("m", s("nested"))])]),
        ),
    ]);
    cluster
        .raw(outsider)
        .await?
        .put_item(proto::PutItemRequest {
            table_name: "spread".into(),
            item: Some(item_to_proto(&written)),
        })
        .await
        .map_err(|e| anyhow!("put through node {outsider}: {e}"))?;
    let got = client
        .get_item("spread", item([("id", s(key))]), true)
        .await?;
    ensure!(
        got.as_ref() == Some(&written),
        "forwarded through node {outsider}: wrote {written:?}, read {got:?}"
    );
    cluster.shutdown().await
}

/// A map attribute of these attributes.
fn item_value<const N: usize>(attrs: [(&str, AttributeValue); N]) -> AttributeValue {
    AttributeValue::M(item(attrs))
}
