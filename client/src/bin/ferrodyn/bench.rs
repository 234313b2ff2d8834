//! `ferrodyn bench`: YCSB-style workloads against a cluster, measured with HdrHistogram.
//!
//! Workloads (YCSB core): `write` (100% update), `a` (50% read / 50% update), `b` (95/5),
//! `c` (read only), `d` (95% read of the latest records / 5% insert), `e` (95% short scans via
//! Query of at most 100 items / 5% insert), `f` (50% read / 50% read-modify-write).
//!
//! Records live in table `--table` with partition key `id` (S) and sort key `seq` (N): record
//! `i` is item (`id` = group `i / 100`, `seq` = `i % 100`), so a short scan is a Query within
//! one group. Key choice: zipfian (θ = 0.99, scrambled so hot keys spread over partitions),
//! uniform, or latest.
//!
//! `--target etcd://host:port,...` sends the same operations, chosen by the same generator, to an
//! etcd cluster instead (the peer in `scripts/bench-compare`): record `i` is key
//! `<table>/<id>/<seq>` (seq zero-padded, so a group's records are contiguous and in order) whose
//! value is the same item as DynamoDB JSON; reads are linearizable with `--consistent` and
//! serializable otherwise; a short scan is a range get over the group with a limit. Without
//! `--target` (or with `ferrodyn://host:port,...`) the Ferrodyn cluster of `--endpoint` is used.
//!
//! With `--target-rate`, operations follow a fixed schedule (open loop) and each latency is
//! measured from the operation's *scheduled* start, so time spent queued behind slow
//! operations is counted (no coordinated omission). Without it, `--concurrency` workers run
//! back to back (closed loop).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use hdrhistogram::Histogram;
use rand::distributions::{Alphanumeric, Distribution as _};
use rand::{Rng, SeedableRng};
use serde_json::json;

use ferrodyn_client::client::{QueryInput, SortCondition};
use ferrodyn_client::value::{item_from_json, item_to_json};
use ferrodyn_client::{
    AttributeValue, Client, ClientConfig, Item, KeyAttr, KeySchema, KeyType, Number,
};

/// Records per partition-key group (the longest short scan).
const GROUP: u64 = 100;

/// YCSB core workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// 100% updates.
    Write,
    /// 50% reads, 50% updates.
    A,
    /// 95% reads, 5% updates.
    B,
    /// 100% reads.
    C,
    /// 95% reads of recent records, 5% inserts.
    D,
    /// 95% short scans, 5% inserts.
    E,
    /// 50% reads, 50% read-modify-writes.
    F,
}

/// How keys are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyChoice {
    /// Zipfian, θ = 0.99, scrambled.
    Zipfian,
    /// Uniform over all records.
    Uniform,
    /// Zipfian over recency: recently inserted records are hottest.
    Latest,
}

/// Flags of `ferrodyn bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Workload to run.
    #[arg(long, value_enum, default_value = "a")]
    pub workload: Workload,
    /// Records loaded before the run (and the key space of reads and updates).
    #[arg(long, default_value_t = 10_000)]
    pub records: u64,
    /// Stop after this many operations.
    #[arg(long)]
    pub operations: Option<u64>,
    /// Stop after this long, e.g. 30s, 2m, 500ms (default 10s unless --operations is given).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Concurrent workers (in-flight operations).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Open loop: schedule this many operations per second in total.
    #[arg(long)]
    pub target_rate: Option<f64>,
    /// Key choice.
    #[arg(long, value_enum, default_value = "zipfian")]
    pub distribution: KeyChoice,
    /// Linearizable reads (default: eventual).
    #[arg(long)]
    pub consistent: bool,
    /// Fields per record.
    #[arg(long, default_value_t = 10)]
    pub fields: usize,
    /// Bytes per field.
    #[arg(long, default_value_t = 100)]
    pub field_size: usize,
    /// Table to use (created if missing).
    #[arg(long, default_value = "usertable")]
    pub table: String,
    /// Skip the load phase (records are already there).
    #[arg(long)]
    pub skip_load: bool,
    /// Print the result as one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    /// System to drive: `etcd://host:port,host:port,...` (the peer) or
    /// `ferrodyn://host:port,...` (default: the Ferrodyn cluster of --endpoint).
    #[arg(long, value_parser = parse_target, value_name = "URL")]
    pub target: Option<Target>,
}

/// The system a benchmark drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Ferrodyn cluster, bootstrapped from these `http://host:port` endpoints.
    Ferrodyn(Vec<String>),
    /// An etcd cluster at these `http://host:port` client URLs.
    Etcd(Vec<String>),
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Ferrodyn(_) => "ferrodyn",
            Target::Etcd(_) => "etcd",
        }
    }
}

/// Parses `etcd://host:port,host:port` or `ferrodyn://host:port,...`.
fn parse_target(s: &str) -> std::result::Result<Target, String> {
    let usage = "expected etcd://host:port,host:port,... or ferrodyn://host:port,...";
    let (scheme, rest) = s
        .trim()
        .split_once("://")
        .ok_or_else(|| format!("bad --target {s:?}: {usage}"))?;
    let mut urls = Vec::new();
    for hp in rest.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let (host, port) = hp
            .rsplit_once(':')
            .ok_or_else(|| format!("bad address {hp:?} in --target: expected host:port"))?;
        if host.is_empty() || hp.contains('/') {
            return Err(format!(
                "bad address {hp:?} in --target: expected host:port"
            ));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(format!("bad port {port:?} in --target address {hp:?}")),
        }
        urls.push(format!("http://{hp}"));
    }
    if urls.is_empty() {
        return Err(format!("no address in --target {s:?}: {usage}"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "etcd" => Ok(Target::Etcd(urls)),
        "ferrodyn" => Ok(Target::Ferrodyn(urls)),
        other => Err(format!("unknown --target scheme {other:?}: {usage}")),
    }
}

fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}: expected e.g. 30s, 2m, 500ms"))?;
    let secs = match unit {
        "" | "s" => v,
        "ms" => v / 1000.0,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?}: use ms, s, m or h")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("duration {s:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Operation types, each with its own histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum OpKind {
    Read,
    Update,
    Insert,
    Scan,
    ReadModifyWrite,
}

impl OpKind {
    fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Update => "update",
            OpKind::Insert => "insert",
            OpKind::Scan => "scan",
            OpKind::ReadModifyWrite => "rmw",
        }
    }
}

/// Latency histograms (µs) and error counts per operation type.
#[derive(Default)]
struct Stats {
    hist: BTreeMap<OpKind, Histogram<u64>>,
    errors: BTreeMap<OpKind, u64>,
    last_error: Option<String>,
}

impl Stats {
    fn record(&mut self, kind: OpKind, micros: u64, ok: Result<(), String>) {
        match ok {
            Ok(()) => {
                let h = self.hist.entry(kind).or_insert_with(|| {
                    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
                });
                h.saturating_record(micros.max(1));
            }
            Err(e) => {
                *self.errors.entry(kind).or_default() += 1;
                self.last_error = Some(e);
            }
        }
    }
}

/// The operation of `workload` for a uniform draw `p` in [0, 1): YCSB's proportions.
fn op_for(workload: Workload, p: f64) -> OpKind {
    let (first, share, rest) = match workload {
        Workload::Write => (OpKind::Update, 1.0, OpKind::Update),
        Workload::A => (OpKind::Read, 0.5, OpKind::Update),
        Workload::B => (OpKind::Read, 0.95, OpKind::Update),
        Workload::C => (OpKind::Read, 1.0, OpKind::Read),
        Workload::D => (OpKind::Read, 0.95, OpKind::Insert),
        Workload::E => (OpKind::Scan, 0.95, OpKind::Insert),
        Workload::F => (OpKind::Read, 0.5, OpKind::ReadModifyWrite),
    };
    if p < share {
        first
    } else {
        rest
    }
}

/// Zipfian ranks over a growing key space (Gray et al.'s generator, as YCSB uses).
struct Zipf {
    theta: f64,
    zeta2: f64,
    alpha: f64,
    n: u64,
    zetan: f64,
    eta: f64,
}

impl Zipf {
    fn new(n: u64, theta: f64) -> Zipf {
        let zeta2 = zeta(2, theta);
        let zetan = zeta(n.max(1), theta);
        let mut z = Zipf {
            theta,
            zeta2,
            alpha: 1.0 / (1.0 - theta),
            n: n.max(1),
            zetan,
            eta: 0.0,
        };
        z.eta = z.eta_for();
        z
    }

    fn eta_for(&self) -> f64 {
        (1.0 - (2.0 / self.n as f64).powf(1.0 - self.theta)) / (1.0 - self.zeta2 / self.zetan)
    }

    /// A rank in 0..n, rank 0 the most popular.
    fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.gen();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let r = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.n - 1)
    }
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

/// Spreads zipfian ranks over the key space so hot keys land on different partitions.
fn scramble(rank: u64, n: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&rank.to_be_bytes()) % n.max(1)
}

/// Partition key (group id) of record `i`.
fn group_id(i: u64) -> String {
    format!("user{:012}", scramble(i / GROUP, u64::MAX))
}

/// Key of record `i`.
fn record_key(i: u64) -> Item {
    Item::from([
        ("id".to_string(), AttributeValue::S(group_id(i))),
        (
            "seq".to_string(),
            AttributeValue::N(Number::from(i % GROUP)),
        ),
    ])
}

/// etcd key of record `i`: `<table>/<id>/<seq>`, seq zero-padded so a group sorts by seq.
fn etcd_key(table: &str, i: u64) -> String {
    format!("{table}/{}/{:03}", group_id(i), i % GROUP)
}

/// End (exclusive) of the etcd range holding record `i`'s group: the prefix
/// `<table>/<id>/` with its last byte, '/', raised to '0'.
fn etcd_group_end(table: &str, i: u64) -> String {
    format!("{table}/{}0", group_id(i))
}

fn record(i: u64, fields: usize, size: usize, rng: &mut impl Rng) -> Item {
    let mut item = record_key(i);
    for f in 0..fields {
        let v: String = Alphanumeric
            .sample_iter(&mut *rng)
            .take(size)
            .map(char::from)
            .collect();
        item.insert(format!("field{f}"), AttributeValue::S(v));
    }
    item
}

/// A connection to the system under test. Every operation of the generator goes through
/// these methods, so both systems are driven by identical code (same mix, same key choice).
#[derive(Clone)]
enum Backend {
    Ferrodyn(Client),
    Etcd(etcd_client::KvClient),
}

impl Backend {
    async fn connect(target: &Target) -> Result<Backend> {
        Ok(match target {
            Target::Ferrodyn(endpoints) => Backend::Ferrodyn(
                Client::connect(ClientConfig::new(endpoints.clone()))
                    .await
                    .context("connecting to Ferrodyn")?,
            ),
            Target::Etcd(urls) => {
                let opts = etcd_client::ConnectOptions::new()
                    .with_connect_timeout(Duration::from_secs(2))
                    .with_timeout(Duration::from_secs(5));
                let client = etcd_client::Client::connect(urls, Some(opts))
                    .await
                    .context("connecting to etcd")?;
                Backend::Etcd(client.kv_client())
            }
        })
    }

    /// Makes the table ready (Ferrodyn) or checks that the cluster answers (etcd).
    async fn prepare(&mut self, table: &str) -> Result<()> {
        match self {
            Backend::Ferrodyn(c) => ensure_table(c, table).await,
            Backend::Etcd(kv) => {
                let opts = etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only();
                kv.get(format!("{table}/"), Some(opts))
                    .await
                    .context("etcd does not answer")?;
                Ok(())
            }
        }
    }

    /// Writes record `i` (an insert or a blind update).
    async fn put(&mut self, table: &str, i: u64, item: Item) -> Result<()> {
        match self {
            Backend::Ferrodyn(c) => Ok(c.put_item(table, item).await?),
            Backend::Etcd(kv) => {
                let value = serde_json::to_vec(&item_to_json(&item))?;
                kv.put(etcd_key(table, i), value, None).await?;
                Ok(())
            }
        }
    }

    /// Reads record `i`.
    async fn get(&mut self, table: &str, i: u64, consistent: bool) -> Result<Option<Item>> {
        match self {
            Backend::Ferrodyn(c) => Ok(c.get_item(table, record_key(i), consistent).await?),
            Backend::Etcd(kv) => {
                let mut opts = etcd_client::GetOptions::new();
                if !consistent {
                    opts = opts.with_serializable();
                }
                let resp = kv.get(etcd_key(table, i), Some(opts)).await?;
                match resp.kvs().first() {
                    Some(kv) => Ok(Some(decode_item(kv.value())?)),
                    None => Ok(None),
                }
            }
        }
    }

    /// Reads up to `limit` records of record `i`'s group, from record `i` on.
    async fn scan(&mut self, table: &str, i: u64, limit: u32, consistent: bool) -> Result<usize> {
        match self {
            Backend::Ferrodyn(c) => {
                let key = record_key(i);
                let mut q = QueryInput::new(table.to_owned(), key["id"].clone());
                q.sort = Some(SortCondition::Ge(key["seq"].clone()));
                q.limit = limit;
                q.consistent = consistent;
                Ok(c.query(q).await?.items.len())
            }
            Backend::Etcd(kv) => {
                let mut opts = etcd_client::GetOptions::new()
                    .with_range(etcd_group_end(table, i))
                    .with_limit(i64::from(limit));
                if !consistent {
                    opts = opts.with_serializable();
                }
                let resp = kv.get(etcd_key(table, i), Some(opts)).await?;
                for kv in resp.kvs() {
                    decode_item(kv.value())?;
                }
                Ok(resp.kvs().len())
            }
        }
    }
}

/// An item stored in etcd as DynamoDB JSON.
fn decode_item(bytes: &[u8]) -> Result<Item> {
    let json: serde_json::Value = serde_json::from_slice(bytes).context("item JSON")?;
    Ok(item_from_json(&json)?)
}

struct Shared {
    backend: Backend,
    args: BenchArgs,
    zipf: Zipf,
    /// Records inserted so far (the key space grows with inserts).
    inserted: AtomicU64,
    next_op: AtomicU64,
    stats: Mutex<Stats>,
    done_ops: AtomicU64,
}

impl Shared {
    fn choose(&self, rng: &mut impl Rng) -> u64 {
        let n = self.inserted.load(Ordering::Relaxed).max(1);
        match self.args.distribution {
            KeyChoice::Uniform => rng.gen_range(0..n),
            KeyChoice::Zipfian => scramble(self.zipf.sample(rng), n),
            KeyChoice::Latest => n - 1 - self.zipf.sample(rng).min(n - 1),
        }
    }

    fn pick_op(&self, rng: &mut impl Rng) -> OpKind {
        op_for(self.args.workload, rng.gen())
    }

    async fn run_op(
        &self,
        kind: OpKind,
        b: &mut Backend,
        rng: &mut rand::rngs::StdRng,
    ) -> Result<(), String> {
        let t = &self.args.table;
        let a = &self.args;
        let r = match kind {
            OpKind::Read => {
                let i = self.choose(rng);
                b.get(t, i, a.consistent).await.map(|_| ())
            }
            OpKind::Update => {
                let i = self.choose(rng);
                let item = record(i, a.fields, a.field_size, rng);
                b.put(t, i, item).await
            }
            OpKind::Insert => {
                let i = self.inserted.fetch_add(1, Ordering::Relaxed);
                let item = record(i, a.fields, a.field_size, rng);
                b.put(t, i, item).await
            }
            OpKind::Scan => {
                let i = self.choose(rng);
                let limit = rng.gen_range(1..=GROUP as u32);
                b.scan(t, i, limit, a.consistent).await.map(|_| ())
            }
            OpKind::ReadModifyWrite => {
                let i = self.choose(rng);
                match b.get(t, i, true).await {
                    Ok(item) => {
                        let mut item = item.unwrap_or_else(|| record_key(i));
                        let v: String = Alphanumeric
                            .sample_iter(&mut *rng)
                            .take(a.field_size)
                            .map(char::from)
                            .collect();
                        item.insert("field0".into(), AttributeValue::S(v));
                        b.put(t, i, item).await
                    }
                    Err(e) => Err(e),
                }
            }
        };
        r.map_err(|e| format!("{e:#}"))
    }
}

/// Entry point of `ferrodyn bench`.
pub fn main(endpoints: Vec<String>, args: BenchArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(endpoints, args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(endpoints: Vec<String>, args: BenchArgs) -> Result<()> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if let Some(r) = args.target_rate {
        if !(r.is_finite() && r > 0.0) {
            bail!("--target-rate must be a positive number of operations per second");
        }
    }
    if args.records == 0 {
        bail!("--records must be at least 1");
    }
    let target = args.target.clone().unwrap_or(Target::Ferrodyn(endpoints));
    let mut backend = Backend::connect(&target).await?;
    backend.prepare(&args.table).await?;
    if !args.skip_load {
        load(&backend, &args).await?;
    }
    let shared = Arc::new(Shared {
        backend,
        zipf: Zipf::new(args.records, 0.99),
        inserted: AtomicU64::new(args.records),
        next_op: AtomicU64::new(0),
        stats: Mutex::new(Stats::default()),
        done_ops: AtomicU64::new(0),
        args: args.clone(),
    });
    let duration = match (args.duration, args.operations) {
        (Some(d), _) => Some(d),
        (None, None) => Some(Duration::from_secs(10)),
        (None, Some(_)) => None,
    };
    let start = Instant::now();
    let end = duration.map(|d| start + d);
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let s = shared.clone();
        workers.push(tokio::spawn(async move {
            let mut rng =
                rand::rngs::StdRng::seed_from_u64(0x5eed ^ w as u64 ^ rand::random::<u64>());
            let mut backend = s.backend.clone();
            loop {
                let k = s.next_op.fetch_add(1, Ordering::Relaxed);
                if s.args.operations.is_some_and(|n| k >= n) {
                    break;
                }
                // Open loop: operation k is due at start + k / rate; latency counts from then.
                let intended = match s.args.target_rate {
                    Some(rate) => {
                        let due = start + Duration::from_secs_f64(k as f64 / rate);
                        if end.is_some_and(|e| due >= e) {
                            break;
                        }
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => {
                        let now = Instant::now();
                        if end.is_some_and(|e| now >= e) {
                            break;
                        }
                        now
                    }
                };
                let kind = s.pick_op(&mut rng);
                let r = s.run_op(kind, &mut backend, &mut rng).await;
                let micros = intended.elapsed().as_micros() as u64;
                s.stats.lock().expect("stats lock").record(kind, micros, r);
                s.done_ops.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let progress = {
        let s = shared.clone();
        tokio::spawn(async move {
            let mut last = 0u64;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let done = s.done_ops.load(Ordering::Relaxed);
                let (p99, errs) = {
                    let st = s.stats.lock().expect("stats lock");
                    let p99 = st
                        .hist
                        .values()
                        .map(|h| h.value_at_quantile(0.99))
                        .max()
                        .unwrap_or(0);
                    (p99, st.errors.values().sum::<u64>())
                };
                eprintln!(
                    "[{:>4.0}s] {done} ops, {} ops/s, p99 so far {:.2} ms, {errs} errors",
                    start.elapsed().as_secs_f64(),
                    done - last,
                    p99 as f64 / 1000.0
                );
                last = done;
            }
        })
    };
    for w in workers {
        w.await.context("worker panicked")?;
    }
    progress.abort();
    let elapsed = start.elapsed();
    let stats = shared.stats.lock().expect("stats lock");
    report(&args, target.name(), &stats, elapsed);
    Ok(())
}

async fn ensure_table(client: &Client, table: &str) -> Result<()> {
    match client.describe_table(table).await {
        Ok(_) => return Ok(()),
        Err(e) if e.kind == ferrodyn_client::ErrorKind::ResourceNotFound => {}
        Err(e) => return Err(e.into()),
    }
    let schema = KeySchema {
        partition_key: KeyAttr {
            name: "id".into(),
            key_type: KeyType::S,
        },
        sort_key: Some(KeyAttr {
            name: "seq".into(),
            key_type: KeyType::N,
        }),
    };
    match client.create_table(table, &schema).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ferrodyn_client::ErrorKind::ResourceInUse => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn load(backend: &Backend, args: &BenchArgs) -> Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.concurrency.max(16) {
        let (mut backend, next, args) = (backend.clone(), next.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= args.records {
                    return Ok::<(), anyhow::Error>(());
                }
                let item = record(i, args.fields, args.field_size, &mut rng);
                backend
                    .put(&args.table, i, item)
                    .await
                    .with_context(|| format!("loading record {i}"))?;
            }
        }));
    }
    for t in tasks {
        t.await.context("load worker panicked")??;
    }
    eprintln!(
        "loaded {} records in {:.1}s",
        args.records,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn report(args: &BenchArgs, target: &str, stats: &Stats, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    let total: u64 = stats.hist.values().map(|h| h.len()).sum();
    let errors: u64 = stats.errors.values().sum();
    let mut all = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds");
    for h in stats.hist.values() {
        all.add(h).expect("same bounds");
    }
    let row = |h: &Histogram<u64>| {
        json!({
            "count": h.len(),
            "ops_per_sec": h.len() as f64 / secs,
            "p50_ms": ms(h.value_at_quantile(0.50)),
            "p90_ms": ms(h.value_at_quantile(0.90)),
            "p99_ms": ms(h.value_at_quantile(0.99)),
            "p999_ms": ms(h.value_at_quantile(0.999)),
            "max_ms": ms(h.max()),
        })
    };
    if args.json {
        let mut ops = serde_json::Map::new();
        for (k, h) in &stats.hist {
            let mut r = row(h);
            r["errors"] = json!(stats.errors.get(k).copied().unwrap_or(0));
            ops.insert(k.name().into(), r);
        }
        let doc = json!({
            "target": target,
            "workload": format!("{:?}", args.workload).to_lowercase(),
            "distribution": format!("{:?}", args.distribution).to_lowercase(),
            "consistent": args.consistent,
            "concurrency": args.concurrency,
            "target_rate": args.target_rate,
            "records": args.records,
            "elapsed_sec": secs,
            "ops_per_sec": total as f64 / secs,
            "errors": errors,
            "total": row(&all),
            "ops": ops,
            "last_error": stats.last_error,
        });
        println!("{doc}");
        return;
    }
    println!(
        "{target}: workload {:?}  keys {:?}  reads {}  concurrency {}  rate {}  elapsed {:.1}s",
        args.workload,
        args.distribution,
        if args.consistent {
            "consistent"
        } else {
            "eventual"
        },
        args.concurrency,
        args.target_rate
            .map_or("closed loop".to_string(), |r| format!("{r} ops/s")),
        secs
    );
    println!(
        "{:<8} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "op", "count", "errors", "ops/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    let line = |name: &str, h: &Histogram<u64>, errs: u64| {
        println!(
            "{:<8} {:>9} {:>7} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            name,
            h.len(),
            errs,
            h.len() as f64 / secs,
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.9)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max())
        )
    };
    for (k, h) in &stats.hist {
        line(k.name(), h, stats.errors.get(k).copied().unwrap_or(0));
    }
    line("total", &all, errors);
    if let Some(e) = &stats.last_error {
        println!("last error: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn zipf_is_skewed_and_in_range() {
        let z = Zipf::new(1000, 0.99);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        // Rank 0 is far hotter than the median rank, and every sample is in range.
        assert!(
            counts[0] > 20 * counts[500].max(1),
            "{} vs {}",
            counts[0],
            counts[500]
        );
        assert_eq!(counts.iter().map(|&c| c as u64).sum::<u64>(), 100_000);
    }

    #[test]
    fn records_group_for_short_scans() {
        assert_eq!(record_key(5)["id"], record_key(99)["id"]);
        assert_ne!(record_key(99)["id"], record_key(100)["id"]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let r = record(3, 10, 100, &mut rng);
        assert_eq!(r.len(), 12);
    }

    #[test]
    fn workload_mix_matches_ycsb() {
        let mix = |w| {
            let mut m = BTreeMap::new();
            for i in 0..1000 {
                *m.entry(op_for(w, i as f64 / 1000.0)).or_insert(0) += 1;
            }
            m
        };
        assert_eq!(
            mix(Workload::A),
            BTreeMap::from([(OpKind::Read, 500), (OpKind::Update, 500)])
        );
        assert_eq!(
            mix(Workload::B),
            BTreeMap::from([(OpKind::Read, 950), (OpKind::Update, 50)])
        );
        assert_eq!(mix(Workload::C), BTreeMap::from([(OpKind::Read, 1000)]));
        assert_eq!(
            mix(Workload::D),
            BTreeMap::from([(OpKind::Read, 950), (OpKind::Insert, 50)])
        );
        assert_eq!(
            mix(Workload::E),
            BTreeMap::from([(OpKind::Scan, 950), (OpKind::Insert, 50)])
        );
        assert_eq!(
            mix(Workload::F),
            BTreeMap::from([(OpKind::Read, 500), (OpKind::ReadModifyWrite, 500)])
        );
        assert_eq!(
            mix(Workload::Write),
            BTreeMap::from([(OpKind::Update, 1000)])
        );
    }

    #[test]
    fn targets_parse() {
        assert_eq!(
            parse_target("etcd://127.0.0.1:2379,127.0.0.1:22379").unwrap(),
            Target::Etcd(vec![
                "http://127.0.0.1:2379".into(),
                "http://127.0.0.1:22379".into()
            ])
        );
        assert_eq!(
            parse_target("ferrodyn://localhost:8101").unwrap(),
            Target::Ferrodyn(vec!["http://localhost:8101".into()])
        );
        assert_eq!(
            parse_target(" ETCD://a:1, b:2 ,").unwrap(),
            Target::Etcd(vec!["http://a:1".into(), "http://b:2".into()])
        );
        for bad in [
            "127.0.0.1:2379",
            "etcd://",
            "etcd://host",
            "etcd://host:port",
            "etcd://host:0",
            "etcd://host:70000",
            "etcd://:2379",
            "etcd://h:1/x",
            "redis://h:1",
        ] {
            assert!(parse_target(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn etcd_keys_keep_a_group_contiguous_and_in_order() {
        let t = "usertable";
        let k = etcd_key(t, 5);
        assert!(k.starts_with("usertable/user"), "{k}");
        assert!(k.ends_with("/005"), "{k}");
        assert_eq!(k.matches('/').count(), 2);
        // Record i's group is exactly [key of the group's first record, group end).
        let end = etcd_group_end(t, 5);
        let keys: Vec<String> = (0..GROUP).map(|i| etcd_key(t, i)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "seq order");
        assert!(keys.iter().all(|k| k.as_str() < end.as_str()));
        assert_eq!(etcd_group_end(t, 0), etcd_group_end(t, GROUP - 1));
        for other in [GROUP, 7 * GROUP + 3, 12_345] {
            let o = etcd_key(t, other);
            assert!(
                !(keys[0] <= o && o < end),
                "{o} leaks into {}..{end}",
                keys[0]
            );
        }
        // A longer id sharing the prefix sorts past the end ('/' < '0' <= any digit).
        let longer = format!("{t}/{}7/000", group_id(0));
        assert!(longer > end);
    }

    #[test]
    fn etcd_values_round_trip_as_json() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let item = record(42, 3, 10, &mut rng);
        let bytes = serde_json::to_vec(&item_to_json(&item)).unwrap();
        assert_eq!(decode_item(&bytes).unwrap(), item);
        assert!(decode_item(b"not json").is_err());
    }
}
