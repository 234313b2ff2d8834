//! Losing leaders and whole clusters: acknowledged writes survive, consistent reads never go
//! back in time, and the cluster accepts writes again once new leaders are elected.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use ferrodyn_client::schema::{KeyAttr, KeySchema, KeyType};
use ferrodyn_client::{AttributeValue, Client, Item};
use ferrodyn_node::storage::keys::{group_of_partition, META_GROUP};
use ferrodyn_tests::{
    eventually, int_attr, item, kv_schema, ni, query_all, s, scan_all, ClusterOptions, QueryInput,
    TestCluster,
};

/// Reads every key of `expected` consistently and checks its value; reads run 32 at a time.
async fn check_all(client: &Client, table: &str, expected: &BTreeMap<String, i64>) -> Result<()> {
    let keys: Vec<(&String, &i64)> = expected.iter().collect();
    for chunk in keys.chunks(32) {
        let reads = chunk.iter().map(|(k, v)| async move {
            let got = client
                .get_item(table, item([("k", s(k.as_str()))]), true)
                .await
                .map_err(|e| anyhow!("consistent read of {k}: {e}"))?;
            match got {
                Some(it) if int_attr(&it, "v")? == **v => Ok(()),
                other => bail!("acknowledged write {k} = {v} reads back as {other:?}"),
            }
        });
        for r in futures::future::join_all(reads).await {
            r?;
        }
    }
    Ok(())
}

/// Writes distinct keys `{prefix}{i}` = i until `stop`, recording each acknowledged one.
fn spawn_writer(
    client: Client,
    table: &'static str,
    prefix: &'static str,
    acked: Arc<Mutex<BTreeMap<String, i64>>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut failed = 0u64;
        let mut i = 0i64;
        while !stop.load(Ordering::Relaxed) {
            let key = format!("{prefix}{i}");
            match client
                .put_item(table, item([("k", s(key.clone())), ("v", ni(i))]))
                .await
            {
                Ok(()) => {
                    acked.lock().expect("acked").insert(key, i);
                }
                // Unknown outcome: may or may not have been applied; never checked.
                Err(_) => failed += 1,
            }
            i += 1;
        }
        failed
    })
}

fn acked_len(acked: &Arc<Mutex<BTreeMap<String, i64>>>) -> usize {
    acked.lock().expect("acked").len()
}

/// Waits until the writer has `more` acknowledged writes beyond `from`.
async fn wait_progress(
    acked: &Arc<Mutex<BTreeMap<String, i64>>>,
    from: usize,
    more: usize,
    what: &str,
) -> Result<()> {
    eventually(Duration::from_secs(20), what, || async {
        let now = acked_len(acked);
        ensure!(
            now >= from + more,
            "{} of {more} writes acknowledged",
            now - from
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_loss_keeps_acknowledged_writes_and_recovers() -> Result<()> {
    // Short log retention: a restarted node catches up from a snapshot, not only the log.
    let mut opts = ClusterOptions::new(3, 8, 3);
    opts.raft.snapshot_every_logs = 40;
    opts.raft.logs_kept_after_snapshot = 10;
    let cluster = TestCluster::start_with(opts).await?;
    cluster.wait_for_leaders(Duration::from_secs(20)).await?;
    let client = cluster.client().await?;
    client.create_table("kvs", &kv_schema()).await?;

    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    for chunk in (0..200i64).collect::<Vec<_>>().chunks(25) {
        let writes = chunk.iter().map(|&i| {
            let c = client.clone();
            async move {
                c.put_item("kvs", item([("k", s(format!("pre{i}"))), ("v", ni(i))]))
                    .await
                    .map(|_| i)
            }
        });
        for r in futures::future::join_all(writes).await {
            let i = r?;
            acked.lock().expect("acked").insert(format!("pre{i}"), i);
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(
        cluster.client().await?,
        "kvs",
        "w",
        acked.clone(),
        stop.clone(),
    );
    wait_progress(&acked, 200, 20, "writer getting started").await?;

    let mut victims = Vec::new();
    for round in 0..2u32 {
        // Round 0: the metadata leader. Round 1: the leader of some partition, not the previous
        // victim (which may still be catching up).
        let leaders = cluster.wait_for_leaders(Duration::from_secs(20)).await?;
        let victim = if round == 0 {
            leaders[&META_GROUP]
        } else {
            (0..cluster.partitions())
                .map(|p| leaders[&group_of_partition(p)])
                .find(|l| !victims.contains(l))
                .ok_or_else(|| {
                    anyhow!("every partition is led by a previous victim: {leaders:?}")
                })?
        };
        let p = (0..cluster.partitions())
            .find(|&p| leaders[&group_of_partition(p)] == victim)
            .unwrap_or(0);
        let led: Vec<u32> = (0..cluster.partitions())
            .filter(|q| leaders[&group_of_partition(*q)] == victim)
            .collect();
        let before = acked_len(&acked);
        cluster.stop(victim).await?;
        victims.push(victim);

        let after = cluster.wait_for_leaders(Duration::from_secs(20)).await?;
        for q in &led {
            ensure!(
                after[&group_of_partition(*q)] != victim,
                "partition {q} still led by stopped {victim}"
            );
        }
        // Writes succeed again, on the orphaned partition in particular.
        let probe = (0..)
            .map(|i| format!("probe{round}-{i}"))
            .find(|k| cluster.partition_of(&s(k.clone())) == p)
            .expect("some key lands in partition p");
        eventually(
            Duration::from_secs(20),
            "write to the partition that lost its leader",
            || async {
                client
                    .put_item("kvs", item([("k", s(probe.clone())), ("v", ni(-1))]))
                    .await?;
                Ok(())
            },
        )
        .await?;
        acked.lock().expect("acked").insert(probe, -1);
        if round == 0 {
            // The metadata group elected a new leader too: tables can still be created.
            let name = "after-meta-loss";
            client.create_table(name, &kv_schema()).await?;
            client
                .put_item(name, item([("k", s("x")), ("v", ni(1))]))
                .await?;
            ensure!(
                client
                    .get_item(name, item([("k", s("x"))]), true)
                    .await?
                    .is_some(),
                "table created after losing the metadata leader does not keep items"
            );
        }
        wait_progress(&acked, before, 30, "writer after losing a leader").await?;

        // With the victim still down, everything acknowledged so far is readable.
        let snapshot = acked.lock().expect("acked").clone();
        check_all(&client, "kvs", &snapshot)
            .await
            .with_context(|| format!("round {round}, node {victim} down"))?;
        if round == 0 {
            cluster.restart(victim).await?;
        }
    }

    stop.store(true, Ordering::Relaxed);
    let failed = writer.await?;
    let last_victim = *victims.last().expect("two rounds");
    cluster.restart(last_victim).await?;
    cluster.wait_for_leaders(Duration::from_secs(20)).await?;
    let all = acked.lock().expect("acked").clone();
    eprintln!("{} writes acknowledged, {failed} failed", all.len());
    check_all(&client, "kvs", &all).await?;
    ensure!(
        all.len() >= 200 + 20 + 60,
        "only {} writes acknowledged ({failed} failed)",
        all.len()
    );

    // Both restarted nodes catch up: their own replicas serve every acknowledged write.
    for &victim in &victims {
        for (k, v) in all.iter().step_by(7) {
            let key = item([("k", s(k.as_str()))]);
            eventually(
                Duration::from_secs(20),
                &format!("node {victim} catching up on {k}"),
                || async {
                    let got = cluster.local_get(victim, "kvs", &key).await?;
                    match got {
                        Some(it) if int_attr(&it, "v")? == *v => Ok(()),
                        other => bail!("node {victim} has {k} = {other:?}, want {v}"),
                    }
                },
            )
            .await?;
        }
    }
    for &victim in &victims {
        let snapshotted = (0..cluster.partitions())
            .filter(|&p| {
                cluster
                    .snapshot_index(victim, group_of_partition(p))
                    .is_some()
            })
            .count();
        eprintln!("restarted node {victim} holds snapshots of {snapshotted} partitions");
    }
    cluster.shutdown().await
}

/// What a counter reader saw.
#[derive(Debug, Default)]
struct ReadStats {
    reads: u64,
    failed: u64,
    violations: Vec<String>,
}

/// Reads the counter consistently in a loop, rotating over `clients`. Each read must return at
/// least the value acknowledged before it started, at most the value attempted by the time it
/// returned, and never less than this reader's previous read.
fn spawn_reader(
    clients: Vec<Client>,
    key: Item,
    acked: Arc<AtomicI64>,
    attempted: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<ReadStats> {
    tokio::spawn(async move {
        let mut st = ReadStats::default();
        let mut max_read = 0i64;
        let mut turn = 0usize;
        while !stop.load(Ordering::Relaxed) {
            turn += 1;
            let floor = acked.load(Ordering::SeqCst);
            let got = clients[turn % clients.len()]
                .get_item("ctr", key.clone(), true)
                .await;
            let ceiling = attempted.load(Ordering::SeqCst);
            match got {
                Ok(got) => {
                    st.reads += 1;
                    let v = match got {
                        Some(it) => int_attr(&it, "v").unwrap_or(-1),
                        None => 0,
                    };
                    if v < floor || v > ceiling || v < max_read {
                        st.violations.push(format!(
                            "consistent read returned {v}: acknowledged before the read {floor}, \
                             attempted by its end {ceiling}, this reader saw {max_read} before"
                        ));
                    }
                    max_read = max_read.max(v);
                }
                Err(_) => st.failed += 1,
            }
        }
        st
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consistent_reads_never_stale_across_leader_changes() -> Result<()> {
    let cluster = TestCluster::start(3, 4, 3).await?;
    cluster.wait_for_leaders(Duration::from_secs(20)).await?;
    let client = cluster.client().await?;
    client.create_table("ctr", &kv_schema()).await?;
    let key = item([("k", s("counter"))]);
    let p = cluster.partition_of(&s("counter"));
    let mut clients = Vec::new();
    for id in cluster.ids() {
        clients.push(cluster.client_for(id).await?);
    }

    // One writer increments the counter; after each acknowledged write it reads it back.
    // Two readers read it concurrently through every node.
    let acked = Arc::new(AtomicI64::new(0));
    let attempted = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, acked, attempted, key, clients) = (
            stop.clone(),
            acked.clone(),
            attempted.clone(),
            key.clone(),
            clients.clone(),
        );
        tokio::spawn(async move {
            let (mut failed, mut violations) = (0u64, Vec::new());
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                attempted.store(i, Ordering::SeqCst);
                let mut it: Item = key.clone();
                it.insert("v".into(), ni(i));
                match clients[i as usize % clients.len()]
                    .put_item("ctr", it)
                    .await
                {
                    Ok(()) => acked.store(i, Ordering::SeqCst),
                    Err(_) => {
                        failed += 1;
                        continue;
                    }
                }
                match clients[(i as usize + 1) % clients.len()]
                    .get_item("ctr", key.clone(), true)
                    .await
                {
                    Ok(Some(it)) if int_attr(&it, "v").unwrap_or(-1) == i => {}
                    Ok(other) => violations.push(format!(
                        "read after acknowledged write {i} returned {other:?}"
                    )),
                    Err(_) => failed += 1,
                }
            }
            (failed, violations)
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let mut cs = clients.clone();
            cs.rotate_left(r);
            spawn_reader(
                cs,
                key.clone(),
                acked.clone(),
                attempted.clone(),
                stop.clone(),
            )
        })
        .collect();
    let progress = |from: i64, what: &'static str| {
        let acked = acked.clone();
        async move {
            eventually(Duration::from_secs(25), what, || async {
                let now = acked.load(Ordering::SeqCst);
                ensure!(
                    now >= from + 20,
                    "acknowledged {now}, waiting for {}",
                    from + 20
                );
                Ok(())
            })
            .await
        }
    };
    progress(0, "counter workload starting").await?;

    for round in 0..4 {
        let leader = cluster
            .wait_for_leaders(Duration::from_secs(20))
            .await?
            .get(&group_of_partition(p))
            .copied()
            .expect("every partition");
        let from = acked.load(Ordering::SeqCst);
        if round % 2 == 0 {
            cluster.stop(leader).await?;
            progress(from, "counter writes after stopping the leader").await?;
            cluster.restart(leader).await?;
        } else {
            cluster.isolate(leader);
            progress(from, "counter writes after isolating the leader").await?;
            let new_leader = cluster.leader_of_partition(p);
            ensure!(
                new_leader != Some(leader),
                "isolated node {leader} still leads partition {p}"
            );
            cluster.heal();
        }
        let now = acked.load(Ordering::SeqCst);
        progress(now, "counter writes after the node returned").await?;
    }
    stop.store(true, Ordering::Relaxed);
    let (failed_writes, mut violations) = writer.await?;
    let mut reads = 0;
    for r in readers {
        let st = r.await?;
        eprintln!("counter reader: {} reads, {} failed", st.reads, st.failed);
        reads += st.reads;
        violations.extend(st.violations);
    }
    let last_acked = acked.load(Ordering::SeqCst);
    eprintln!("counter: {last_acked} acknowledged, {failed_writes} writes/reads failed, {reads} concurrent reads");
    ensure!(
        violations.is_empty(),
        "stale or invented consistent reads: {violations:#?}"
    );
    ensure!(
        reads >= 50,
        "too few concurrent reads ({reads}) to mean anything"
    );
    let last = client
        .get_item("ctr", key, true)
        .await?
        .ok_or_else(|| anyhow!("counter vanished"))?;
    ensure!(
        int_attr(&last, "v")? >= last_acked,
        "final value below last acknowledged {last_acked}"
    );
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_cluster_restart_keeps_every_item() -> Result<()> {
    // Frequent snapshots and a short log tail: restarting replays from snapshots and purged logs.
    // (Concurrent writes share log entries, so a group sees fewer entries than writes.)
    let mut opts = ClusterOptions::new(3, 16, 3);
    opts.raft.snapshot_every_logs = 10;
    opts.raft.logs_kept_after_snapshot = 4;
    let cluster = TestCluster::start_with(opts).await?;
    cluster.wait_for_leaders(Duration::from_secs(20)).await?;
    let client = cluster.client().await?;
    client.create_table("flat", &kv_schema()).await?;
    let sorted_schema = KeySchema {
        partition_key: KeyAttr::new("pk", KeyType::S),
        sort_key: Some(KeyAttr::new("sk", KeyType::N)),
    };
    client.create_table("sorted", &sorted_schema).await?;

    let mut flat: BTreeMap<String, i64> = BTreeMap::new();
    let writes = (0..400i64).map(|i| {
        let c = client.clone();
        async move {
            c.put_item("flat", item([("k", s(format!("f{i}"))), ("v", ni(i))]))
                .await
                .map(|_| i)
        }
    });
    for r in futures::future::join_all(writes).await {
        let i = r?;
        flat.insert(format!("f{i}"), i);
    }
    // Overwrites and deletes must survive too.
    for i in (0..400i64).step_by(5) {
        client
            .put_item(
                "flat",
                item([("k", s(format!("f{i}"))), ("v", ni(i * 1000))]),
            )
            .await?;
        flat.insert(format!("f{i}"), i * 1000);
    }
    let mut deleted = Vec::new();
    for i in (1..400i64).step_by(11) {
        client
            .delete_item("flat", item([("k", s(format!("f{i}")))]))
            .await?;
        flat.remove(&format!("f{i}"));
        deleted.push(format!("f{i}"));
    }
    let mut sorted: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for pk in 0..20 {
        for sk in [-5i64, 0, 2, 10, 100, 1000, 33, 7] {
            client
                .put_item(
                    "sorted",
                    item([
                        ("pk", s(format!("p{pk}"))),
                        ("sk", ni(sk)),
                        ("v", ni(pk * sk)),
                    ]),
                )
                .await?;
            sorted.entry(format!("p{pk}")).or_default().push(sk);
        }
    }
    for sks in sorted.values_mut() {
        sks.sort();
    }

    // The point of this test: groups restart from snapshots, not from a full log.
    let snapshots = eventually(Duration::from_secs(10), "snapshots being built", || async {
        let with_snapshot: Vec<(u64, u32)> = cluster
            .ids()
            .into_iter()
            .flat_map(|id| (0..16).map(move |p| (id, p)))
            .filter(|&(id, p)| cluster.snapshot_index(id, group_of_partition(p)).is_some())
            .collect();
        ensure!(
            with_snapshot.len() >= 16,
            "only {} replicas have a snapshot",
            with_snapshot.len()
        );
        Ok(with_snapshot.len())
    })
    .await?;
    eprintln!("{snapshots} replicas snapshotted before the restart");
    for id in cluster.ids() {
        cluster.stop(id).await?;
    }
    for id in cluster.ids() {
        cluster.restart(id).await?;
    }
    cluster.wait_for_leaders(Duration::from_secs(30)).await?;

    // A fresh client: the catalog must have survived too.
    let client = cluster.client().await?;
    let desc = client.describe_table("sorted").await?;
    ensure!(
        desc.sort_key.as_ref().map(|k| k.name.as_str()) == Some("sk"),
        "sorted lost its schema: {desc:?}"
    );
    check_all(&client, "flat", &flat).await?;
    for k in &deleted {
        let got = client
            .get_item("flat", item([("k", s(k.as_str()))]), true)
            .await?;
        ensure!(
            got.is_none(),
            "deleted {k} came back after restart: {got:?}"
        );
    }
    let scanned = scan_all(&client, "flat", 0, true).await?;
    ensure!(
        scanned.len() == flat.len(),
        "scan after restart: {} items, want {}",
        scanned.len(),
        flat.len()
    );
    for (pk, sks) in &sorted {
        let items = query_all(
            &client,
            QueryInput {
                consistent: true,
                ..QueryInput::new("sorted", s(pk.as_str()))
            },
        )
        .await?;
        let got: Vec<AttributeValue> = items
            .iter()
            .map(|i| i.get("sk").cloned().unwrap_or(AttributeValue::Null))
            .collect();
        let want: Vec<AttributeValue> = sks.iter().map(|&x| ni(x)).collect();
        ensure!(
            got == want,
            "query {pk} after restart: {got:?}, want {want:?}"
        );
        let pk_n: i64 = pk[1..].parse()?;
        for it in &items {
            ensure!(
                int_attr(it, "v")? == pk_n * int_attr(it, "sk")?,
                "{pk}: wrong value in {it:?}"
            );
        }
    }
    // And the restarted cluster takes writes.
    client
        .put_item("flat", item([("k", s("after")), ("v", ni(1))]))
        .await?;
    ensure!(
        client
            .get_item("flat", item([("k", s("after"))]), true)
            .await?
            .is_some(),
        "write after restart lost"
    );
    cluster.shutdown().await
}
