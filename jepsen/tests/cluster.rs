//! A real 3-node cluster of `ferrodyn-node` processes: start-up, kill/restart, pause/resume,
//! a proxy partition, a short nemesis run, heal and a clean shutdown.
//!
//! Needs the release node binary: `cargo build --release -p ferrodyn-node` (found in
//! `$CARGO_TARGET_DIR/release`, else next to this test's binary). The test fails, with that
//! hint, when it is missing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrodyn_jepsen::cluster::{Cluster, ClusterSpec};
use ferrodyn_jepsen::history::{Func, Process, Recorder};
use ferrodyn_jepsen::nemesis::{self, FaultKind, NemesisConfig};

fn node_bin() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("release").join("ferrodyn-node"));
    }
    // This test runs as TARGET/release/deps/cluster-HASH.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(profile_dir) = exe.parent().and_then(|deps| deps.parent()) {
            candidates.push(profile_dir.join("ferrodyn-node"));
        }
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the release ferrodyn-node binary is missing (looked at {candidates:?}); \
                 build it first: cargo build --release -p ferrodyn-node"
            )
        })
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Polls `f` every 200 ms until it is true or `within` passes.
async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_faults_and_nemesis() {
    let bin = node_bin();
    let dir = tempfile::Builder::new()
        .prefix("ferrodyn-jepsen-cluster-")
        .tempdir()
        .unwrap();
    let t0 = Instant::now();
    let cluster = Cluster::start(ClusterSpec {
        nodes: 3,
        partitions: 4,
        replication: 3,
        dir: dir.path().to_path_buf(),
        node_bin: bin,
        broken: None,
        clock_control: true,
    })
    .await
    .expect("cluster start");
    let cluster = Arc::new(cluster);
    eprintln!("started in {:?}", t0.elapsed());
    assert_eq!(cluster.node_ids(), vec![1, 2, 3]);
    assert!(cluster.endpoint(2).starts_with("http://127.0.0.1:"));
    let config = std::fs::read_to_string(cluster.node_dir(1).join("node.toml")).unwrap();
    assert!(config.contains("peer_addr"), "{config}");
    assert!(config.contains("clock_control = true"), "{config}");
    let pids: Vec<u32> = cluster
        .node_ids()
        .iter()
        .map(|&n| cluster.pid(n).expect("running"))
        .collect();

    // Every partition has a leader.
    let leaders = cluster.leaders().await;
    for p in 0..4 {
        let l = leaders.get(&p).copied();
        assert!(matches!(l, Some(1..=3)), "partition {p} leader {l:?}");
        assert!(cluster.leader_of(p).await.is_some());
    }

    // kill -9 and restart.
    cluster.kill(1).await.unwrap();
    assert!(!cluster.is_running(1));
    assert!(!alive(pids[0]));
    cluster.kill(1).await.unwrap(); // no-op
    cluster
        .wait_ready(Duration::from_secs(15))
        .await
        .expect("the two survivors lead every partition");
    cluster.restart(1).await.unwrap();
    assert!(cluster.is_running(1));
    cluster.restart(1).await.unwrap(); // no-op
    cluster.wait_ready(Duration::from_secs(15)).await.unwrap();
    let log = std::fs::read_to_string(cluster.log_path(1)).unwrap();
    assert_eq!(
        log.matches("=== ferrodyn-jepsen: starting node 1").count(),
        2
    );

    // SIGSTOP / SIGCONT.
    cluster.pause(2).unwrap();
    assert!(cluster.is_paused(2));
    assert!(cluster.is_running(2));
    cluster.wait_ready(Duration::from_secs(15)).await.unwrap();
    cluster.resume(2).unwrap();
    assert!(!cluster.is_paused(2));

    // Kill of a paused node works.
    cluster.pause(2).unwrap();
    cluster.kill(2).await.unwrap();
    assert!(!cluster.is_running(2) && !cluster.is_paused(2));
    cluster.restart(2).await.unwrap();
    cluster.wait_ready(Duration::from_secs(15)).await.unwrap();

    // Clock control.
    cluster.set_clock_offset(3, 1500).await.unwrap();
    assert_eq!(cluster.clock_offset(3), 1500);
    cluster.set_clock_offset(3, 0).await.unwrap();

    // Cut the leader of partition 0 off through the proxy: it loses every leadership to the
    // majority side (this fails if node-to-node traffic bypassed the proxy).
    let victim = cluster
        .leader_of(0)
        .await
        .expect("partition 0 has a leader");
    let others: Vec<u64> = cluster
        .node_ids()
        .into_iter()
        .filter(|&n| n != victim)
        .collect();
    for &o in &others {
        cluster.net().cut_both(victim, o);
    }
    let mut expected: Vec<(u64, u64)> = others
        .iter()
        .flat_map(|&o| [(victim, o), (o, victim)])
        .collect();
    expected.sort_unstable();
    assert_eq!(cluster.net().cut_links(), expected);
    let t = Instant::now();
    let c = Arc::clone(&cluster);
    let moved = eventually(Duration::from_secs(15), || {
        let c = Arc::clone(&c);
        async move {
            let leaders = c.leaders().await;
            (0..4).all(|p| leaders.get(&p).is_some_and(|l| *l != victim))
        }
    })
    .await;
    assert!(
        moved,
        "leaders while {victim} is cut off: {:?}",
        cluster.leaders().await
    );
    eprintln!(
        "leadership left the cut-off node {victim} in {:?}",
        t.elapsed()
    );
    cluster.net().heal();
    assert!(cluster.net().cut_links().is_empty());
    cluster.wait_ready(Duration::from_secs(15)).await.unwrap();

    // A short nemesis run over every kind.
    let rec = Arc::new(Recorder::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let nem = tokio::spawn(nemesis::run(
        Arc::clone(&cluster),
        NemesisConfig {
            kinds: vec![
                FaultKind::Partition,
                FaultKind::Kill,
                FaultKind::Pause,
                FaultKind::Clock,
            ],
            active: Duration::from_millis(700),
            quiet: Duration::from_millis(200),
            seed: 42,
        },
        Arc::clone(&rec),
        stop_rx,
    ));
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop_tx.send(true).unwrap();
    let stats = tokio::time::timeout(Duration::from_secs(10), nem)
        .await
        .expect("the nemesis stops promptly")
        .unwrap()
        .unwrap();
    let history = rec.snapshot();
    history.validate().unwrap();
    let starts = history
        .ops()
        .iter()
        .filter(|o| o.process == Process::Nemesis && o.f == Func::Start)
        .count();
    let intervals = history.fault_intervals();
    eprintln!("nemesis stats {stats:?}");
    for iv in &intervals {
        eprintln!(
            "  {} .. {:?}",
            iv.value,
            iv.stop_index.map(|i| &history.ops()[i as usize].value)
        );
    }
    assert!(starts >= 2, "{starts} faults in 5 s");
    assert_eq!(starts as u64, stats.faults.values().sum::<u64>());
    assert!(
        intervals.iter().all(|iv| iv.stop_index.is_some()),
        "every fault was undone: {intervals:?}"
    );
    for iv in &intervals {
        assert!(iv.value.get("variant").is_some() && iv.value.get("nodes").is_some());
    }

    // Heal everything (harmless if the nemesis left nothing) and shut down.
    cluster.heal_all(Duration::from_secs(30)).await.unwrap();
    let pids: Vec<u32> = cluster
        .node_ids()
        .iter()
        .map(|&n| cluster.pid(n).expect("running after heal_all"))
        .collect();
    cluster.shutdown().await;
    for (node, pid) in cluster.node_ids().into_iter().zip(pids) {
        assert!(!cluster.is_running(node));
        assert!(!alive(pid), "node {node} (pid {pid}) survived shutdown");
    }
    let log = std::fs::read_to_string(cluster.log_path(3)).unwrap();
    assert!(!log.is_empty());
    eprintln!("whole test took {:?}", t0.elapsed());
}

#[tokio::test]
async fn a_missing_node_binary_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Cluster::start(ClusterSpec {
        nodes: 3,
        partitions: 4,
        replication: 3,
        dir: dir.path().to_path_buf(),
        node_bin: dir.path().join("no-such-ferrodyn-node"),
        broken: None,
        clock_control: false,
    })
    .await
    .err()
    .expect("no binary, no cluster");
    let msg = err.to_string();
    assert!(msg.contains("no-such-ferrodyn-node"), "{msg}");
    assert!(
        msg.contains("cargo build --release -p ferrodyn-node"),
        "{msg}"
    );
}
