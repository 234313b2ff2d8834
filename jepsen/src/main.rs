//! The `ferrodyn-jepsen` binary: `run` a fault-injection test against a real cluster, or
//! `check` a saved history again.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use ferrodyn_jepsen::nemesis::FaultKind;
use ferrodyn_jepsen::run::{self, parse_duration, parse_nemesis, RunOptions, Workload};

/// Jepsen-style consistency tests for Ferrodyn.
///
/// `run` starts a real cluster of `ferrodyn-node` processes on loopback (node-to-node links go
/// through a fault proxy), drives it with concurrent clients while a nemesis injects faults,
/// then heals the cluster, checks the recorded history and writes a report:
///
///   DIR/history.jsonl   every operation (invoke / ok / fail / info) and nemesis event
///   DIR/results.json    verdict per checker, anomalies with the operations involved, and a
///                       "run" object (parameters, seed, op counts, faults, errors)
///   DIR/timeline.html   operations per client on a time axis, faults shaded (open offline)
///   DIR/cluster/        the nodes' data, configs and logs
///
/// Exit code: 0 valid, 1 invalid (an anomaly was found), 2 unknown or harness error.
#[derive(Parser, Debug)]
#[command(
    name = "ferrodyn-jepsen",
    version,
    about,
    long_about,
    verbatim_doc_comment
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a test against a fresh cluster and write the report
    ///
    /// Workloads:
    ///   register  strongly consistent reads and writes of unique values on a few keys (each
    ///             key retired after --ops-per-key ops); checked for linearizability
    ///   set       adds of unique elements spread over --groups partition keys, then one
    ///             strongly consistent final read after healing; checked for lost / unexpected
    ///             elements
    ///   eventual  writes, eventually consistent reads and some strongly consistent reads;
    ///             reads must return written values (staleness is measured), consistent reads
    ///             are checked for linearizability
    ///
    /// Nemesis (comma list, or none): partition (cut node-to-node links: isolate a node,
    /// majority/minority, isolate a shard leader, bridge, ring), kill (kill -9 and restart),
    /// pause (SIGSTOP / SIGCONT), clock (clock offsets; starts nodes in test mode). Faults
    /// stay on for --nemesis-active, then the cluster is quiet for --nemesis-quiet.
    ///
    /// Each client is bound to one node and sends plain requests (the node forwards them to
    /// the shard leader), with --op-timeout per operation. A failed read is recorded as fail;
    /// a failed write is fail only if it certainly did not apply, else info (indeterminate),
    /// and the client continues as a new process.
    ///
    /// ferrodyn-node is looked up next to this executable, then on PATH (or --node-bin).
    #[command(verbatim_doc_comment)]
    Run(RunArgs),
    /// Check a saved history.jsonl again (e.g. after changing a checker).
    Check(CheckArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Workload to run.
    #[arg(long, value_enum, default_value = "register")]
    workload: Workload,
    /// Faults to inject: comma-separated partition, kill, pause, clock; or none.
    #[arg(long, default_value = "none", value_parser = parse_nemesis_arg)]
    nemesis: NemesisList,
    /// How long the clients run (seconds, or e.g. 90s, 2m).
    #[arg(long, default_value = "60", value_parser = parse_duration)]
    time_limit: Duration,
    /// Report directory [default: jepsen-report/<UTC timestamp>].
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Number of nodes.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Number of partitions (Raft groups besides the metadata group).
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// Replicas per partition.
    #[arg(long, default_value_t = 3)]
    replication: u32,
    /// Concurrent client workers (worker w is bound to node w mod --nodes).
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// Target operations per second over all clients.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Timeout of each client operation and connection attempt (e.g. 1, 500ms).
    #[arg(long, default_value = "1", value_parser = parse_duration)]
    op_timeout: Duration,
    /// How long each fault stays on.
    #[arg(long, default_value = "5", value_parser = parse_duration)]
    nemesis_active: Duration,
    /// Quiet time between faults.
    #[arg(long, default_value = "5", value_parser = parse_duration)]
    nemesis_quiet: Duration,
    /// Seed of the nemesis schedule and the clients' choices [default: random, printed].
    #[arg(long)]
    seed: Option<u64>,
    /// The ferrodyn-node binary [default: next to this executable, then PATH].
    #[arg(long, value_name = "PATH")]
    node_bin: Option<PathBuf>,
    /// Run the nodes with a known bug, to check that the checkers catch it
    /// (stale-consistent-read: a node answers consistent reads from its local replica).
    #[arg(long, value_name = "MODE")]
    broken: Option<String>,
    /// register/eventual: keys in use at a time.
    #[arg(long, default_value_t = 5)]
    keys: usize,
    /// register/eventual: operations on a key before it is replaced by a fresh one (keeps the
    /// per-key histories small enough for the linearizability search).
    #[arg(long, default_value_t = 200)]
    ops_per_key: u64,
    /// set: partition keys the elements are spread over.
    #[arg(long, default_value_t = 8)]
    groups: u64,
    /// Time budget of the linearizability check (past it the verdict is unknown).
    #[arg(long, default_value = "30", value_parser = parse_duration)]
    check_time_limit: Duration,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// The history to check (a history.jsonl written by `run`).
    #[arg(long, value_name = "FILE")]
    history: PathBuf,
    /// The workload that produced it (picks the checkers).
    #[arg(long, value_enum)]
    workload: Workload,
    /// Also write results.json and timeline.html to this directory.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Time budget of the linearizability check.
    #[arg(long, default_value = "120", value_parser = parse_duration)]
    check_time_limit: Duration,
}

/// A parsed `--nemesis` list.
#[derive(Clone, Debug)]
struct NemesisList(Vec<FaultKind>);

fn parse_nemesis_arg(s: &str) -> Result<NemesisList, String> {
    parse_nemesis(s).map(NemesisList)
}

/// `YYYYMMDD-HHMMSS` in UTC.
fn utc_timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian, 400-year eras).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Run(a) => run_cmd(a),
        Command::Check(a) => check_cmd(a),
    }
}

fn run_cmd(a: RunArgs) -> ExitCode {
    let report_dir = a
        .report
        .unwrap_or_else(|| PathBuf::from("jepsen-report").join(utc_timestamp(SystemTime::now())));
    let opts = RunOptions {
        workload: a.workload,
        nemesis: a.nemesis.0,
        time_limit: a.time_limit,
        report_dir,
        nodes: a.nodes,
        partitions: a.partitions,
        replication: a.replication,
        node_bin: a.node_bin,
        broken: a.broken,
        concurrency: a.concurrency,
        rate: a.rate,
        op_timeout: a.op_timeout,
        nemesis_active: a.nemesis_active,
        nemesis_quiet: a.nemesis_quiet,
        seed: a.seed,
        keys: a.keys,
        ops_per_key: a.ops_per_key,
        groups: a.groups,
        check_time_limit: a.check_time_limit,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrodyn-jepsen: error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run::run(opts)) {
        Ok(outcome) => {
            print!("{}", outcome.summary);
            ExitCode::from(outcome.exit_code.clamp(0, 2) as u8)
        }
        Err(e) => {
            eprintln!("ferrodyn-jepsen: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn check_cmd(a: CheckArgs) -> ExitCode {
    match run::check_saved(
        &a.history,
        a.workload,
        a.check_time_limit,
        a.report.as_deref(),
    ) {
        Ok((report, summary)) => {
            print!("{summary}");
            ExitCode::from(report.exit_code().clamp(0, 2) as u8)
        }
        Err(e) => {
            eprintln!("ferrodyn-jepsen: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_acceptance_command_lines() {
        let cli = Cli::try_parse_from([
            "ferrodyn-jepsen",
            "run",
            "--workload",
            "register",
            "--nemesis",
            "partition,kill,pause",
            "--time-limit",
            "40",
            "--report",
            "/tmp/reg",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else {
            panic!("not run")
        };
        assert_eq!(a.workload, Workload::Register);
        assert_eq!(
            a.nemesis.0,
            vec![FaultKind::Partition, FaultKind::Kill, FaultKind::Pause]
        );
        assert_eq!(a.time_limit, Duration::from_secs(40));
        assert_eq!(a.report, Some(PathBuf::from("/tmp/reg")));
        assert_eq!(a.nodes, 5);
        assert_eq!(a.concurrency, 10);
        assert_eq!(a.op_timeout, Duration::from_secs(1));

        let cli = Cli::try_parse_from([
            "ferrodyn-jepsen",
            "run",
            "--workload",
            "set",
            "--nemesis",
            "kill",
            "--time-limit",
            "30",
            "--broken",
            "stale-consistent-read",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else {
            panic!("not run")
        };
        assert_eq!(a.workload, Workload::Set);
        assert_eq!(a.broken.as_deref(), Some("stale-consistent-read"));
        assert!(a.report.is_none());

        assert!(Cli::try_parse_from(["ferrodyn-jepsen", "run", "--nemesis", "flood"]).is_err());
        let cli = Cli::try_parse_from(["ferrodyn-jepsen", "run"]).unwrap();
        let Command::Run(a) = cli.command else {
            panic!("not run")
        };
        assert!(a.nemesis.0.is_empty());
    }

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "19700101-000000");
        let t = UNIX_EPOCH + Duration::from_secs(951_827_696); // 2000-02-29 12:34:56
        assert_eq!(utc_timestamp(t), "20000229-123456");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599); // 2024-12-31 23:59:59
        assert_eq!(utc_timestamp(t), "20241231-235959");
    }
}
