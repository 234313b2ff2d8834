//! `ferrodyn`: the command-line client of a Ferrodyn cluster.
//!
//! Every subcommand is one small program for scripts: arguments in DynamoDB JSON, output
//! one JSON document per line on stdout, errors as `<ErrorName>: <message>` on stderr with
//! exit code 1 (2 for usage errors). JSON arguments may be `-` (read stdin) or `@FILE`
//! (read a file), since a 400 KB item does not fit in a command line. Input is parsed
//! before any connection is made, so a typo never reaches the cluster.

mod bench;

/// mimalloc instead of glibc malloc: `ferrodyn bench` allocates and frees many small buffers
/// per operation across threads (gRPC frames, items), and glibc's malloc was about 12% of its
/// CPU at 40k reads/s. One allocator for every subcommand keeps the binary simple.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::future::Future;
use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serde_json::{json, Value as Json};

use ferrodyn_client::client::{Page, QueryInput, SortCondition};
use ferrodyn_client::{
    proto, value, AttributeValue, Client, ClientConfig, Item, KeyAttr, KeySchema, KeyType,
    WireError,
};

/// Command-line client of a Ferrodyn cluster.
#[derive(Parser, Debug)]
#[command(
    name = "ferrodyn",
    version,
    about = "Command-line client of a Ferrodyn cluster",
    propagate_version = true
)]
struct Cli {
    /// Node address(es) to bootstrap from: `http://host:port` or `host:port`, comma-separated.
    #[arg(
        long,
        global = true,
        env = "FERRODYN_ENDPOINT",
        default_value = "http://127.0.0.1:7101"
    )]
    endpoint: String,

    #[command(subcommand)]
    command: Command,
}

/// The operations the CLI offers.
#[derive(Subcommand, Debug)]
enum Command {
    /// Create a table and print its description.
    CreateTable {
        /// Table name.
        name: String,
        /// Partition key as NAME:TYPE, TYPE one of S, N, B (e.g. `id:S`).
        #[arg(long, value_name = "NAME:TYPE", value_parser = parse_key_attr)]
        key: KeyAttr,
        /// Sort key as NAME:TYPE (e.g. `ts:N`).
        #[arg(long, value_name = "NAME:TYPE", value_parser = parse_key_attr)]
        sort: Option<KeyAttr>,
    },
    /// Delete a table and all its items; print its description.
    DeleteTable {
        /// Table name.
        name: String,
    },
    /// Print a table's description.
    DescribeTable {
        /// Table name.
        name: String,
    },
    /// Print the names of all tables.
    ListTables,
    /// Write an item (replacing any item with the same key).
    Put {
        /// Table name.
        table: String,
        /// The item in DynamoDB JSON, `-` for stdin or `@FILE`.
        #[arg(value_name = "ITEM_JSON")]
        item: String,
    },
    /// Print the item with a key, or nothing if there is none.
    Get {
        /// Table name.
        table: String,
        /// The key in DynamoDB JSON, `-` for stdin or `@FILE`.
        #[arg(value_name = "KEY_JSON")]
        key: String,
        /// Linearizable read through the shard leader.
        #[arg(long)]
        consistent: bool,
    },
    /// Delete the item with a key.
    Delete {
        /// Table name.
        table: String,
        /// The key in DynamoDB JSON, `-` for stdin or `@FILE`.
        #[arg(value_name = "KEY_JSON")]
        key: String,
    },
    /// Print the items of one partition, one per line, in sort-key order.
    Query {
        /// Table name.
        table: String,
        /// Partition key value in DynamoDB JSON, e.g. '{"S":"u1"}'.
        #[arg(long, value_name = "VALUE_JSON")]
        pk: String,
        #[command(flatten)]
        sort: SortArgs,
        #[command(flatten)]
        paging: PagingArgs,
        /// Descending sort-key order.
        #[arg(long)]
        reverse: bool,
    },
    /// Print the items of a whole table, one per line.
    Scan {
        /// Table name.
        table: String,
        #[command(flatten)]
        paging: PagingArgs,
    },
    /// Print the cluster's nodes, metadata group and partitions, then a summary.
    Status,
    /// Benchmark the cluster with YCSB-style workloads (see `ferrodyn bench --help`).
    Bench(bench::BenchArgs),
}

/// At most one sort-key condition of a query.
#[derive(Args, Debug)]
#[group(required = false, multiple = false)]
struct SortArgs {
    /// Sort key equals V.
    #[arg(long, value_name = "V")]
    eq: Option<String>,
    /// Sort key less than V.
    #[arg(long, value_name = "V")]
    lt: Option<String>,
    /// Sort key at most V.
    #[arg(long, value_name = "V")]
    le: Option<String>,
    /// Sort key greater than V.
    #[arg(long, value_name = "V")]
    gt: Option<String>,
    /// Sort key at least V.
    #[arg(long, value_name = "V")]
    ge: Option<String>,
    /// Sort key between V1 and V2, both inclusive.
    #[arg(long, num_args = 2, value_names = ["V1", "V2"])]
    between: Option<Vec<String>>,
    /// Sort key begins with V.
    #[arg(long, value_name = "V")]
    begins_with: Option<String>,
}

/// Paging and consistency options shared by query and scan.
#[derive(Args, Debug)]
struct PagingArgs {
    /// Print at most N items; if there are more, print the LastEvaluatedKey on stderr.
    /// Without it, all pages are read.
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
    /// Linearizable reads.
    #[arg(long)]
    consistent: bool,
    /// Start after this key (a LastEvaluatedKey), DynamoDB JSON, `-` or `@FILE`.
    #[arg(long, value_name = "KEY_JSON")]
    start_key: Option<String>,
}

/// A command with its JSON arguments parsed and checked, ready to send.
enum Op {
    CreateTable {
        name: String,
        schema: KeySchema,
    },
    DeleteTable {
        name: String,
    },
    DescribeTable {
        name: String,
    },
    ListTables,
    Put {
        table: String,
        item: Item,
    },
    Get {
        table: String,
        key: Item,
        consistent: bool,
    },
    Delete {
        table: String,
        key: Item,
    },
    Query {
        input: QueryInput,
        limit: Option<u32>,
    },
    Scan {
        table: String,
        limit: Option<u32>,
        start: Option<Item>,
        consistent: bool,
    },
    Status,
}

/// Parses `NAME:TYPE` of `--key`/`--sort`.
fn parse_key_attr(s: &str) -> std::result::Result<KeyAttr, String> {
    let (name, ty) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected NAME:TYPE (e.g. id:S), got {s:?}"))?;
    if name.is_empty() {
        return Err(format!("missing attribute name in {s:?}"));
    }
    let key_type = match ty.trim().to_ascii_uppercase().as_str() {
        "S" => KeyType::S,
        "N" => KeyType::N,
        "B" => KeyType::B,
        _ => return Err(format!("key type must be S, N or B, got {ty:?}")),
    };
    Ok(KeyAttr {
        name: name.to_owned(),
        key_type,
    })
}

/// Reads JSON arguments, from the command line, stdin (`-`, once) or a file (`@FILE`).
#[derive(Default)]
struct JsonArgs {
    stdin_used: bool,
}

impl JsonArgs {
    /// The text of argument `name`.
    fn text(&mut self, name: &str, raw: &str) -> Result<String> {
        if raw == "-" {
            if self.stdin_used {
                anyhow::bail!("{name}: only one argument can be read from stdin");
            }
            self.stdin_used = true;
            let mut s = String::new();
            io::stdin()
                .read_to_string(&mut s)
                .with_context(|| format!("cannot read {name} from stdin"))?;
            Ok(s)
        } else if let Some(path) = raw.strip_prefix('@') {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {name} from {path}"))
        } else {
            Ok(raw.to_owned())
        }
    }

    /// Argument `name` as JSON.
    fn json(&mut self, name: &str, raw: &str) -> Result<Json> {
        let text = self.text(name, raw)?;
        serde_json::from_str(&text).map_err(|e| bad_arg(name, e).into())
    }

    /// Argument `name` as an item (or key) in DynamoDB JSON.
    fn item(&mut self, name: &str, raw: &str) -> Result<Item> {
        let json = self.json(name, raw)?;
        value::item_from_json(&json).map_err(|e| bad_arg(name, e).into())
    }

    /// Argument `name` as one attribute value in DynamoDB JSON.
    fn value(&mut self, name: &str, raw: &str) -> Result<AttributeValue> {
        let json = self.json(name, raw)?;
        AttributeValue::from_json(&json).map_err(|e| bad_arg(name, e).into())
    }

    /// Optional argument `name` as an item.
    fn opt_item(&mut self, name: &str, raw: Option<&str>) -> Result<Option<Item>> {
        raw.map(|r| self.item(name, r)).transpose()
    }
}

/// The error of a malformed argument: a `ValidationException` naming it.
fn bad_arg(name: &str, e: impl std::fmt::Display) -> WireError {
    WireError::validation(format!("invalid {name} argument: {e}"))
}

/// Turns the parsed command line into an [`Op`], reading and checking every JSON argument.
fn prepare(command: Command) -> Result<Op> {
    let mut args = JsonArgs::default();
    Ok(match command {
        Command::CreateTable { name, key, sort } => Op::CreateTable {
            name,
            schema: KeySchema {
                partition_key: key,
                sort_key: sort,
            },
        },
        Command::DeleteTable { name } => Op::DeleteTable { name },
        Command::DescribeTable { name } => Op::DescribeTable { name },
        Command::ListTables => Op::ListTables,
        Command::Put { table, item } => Op::Put {
            table,
            item: args.item("ITEM_JSON", &item)?,
        },
        Command::Get {
            table,
            key,
            consistent,
        } => Op::Get {
            table,
            key: args.item("KEY_JSON", &key)?,
            consistent,
        },
        Command::Delete { table, key } => Op::Delete {
            table,
            key: args.item("KEY_JSON", &key)?,
        },
        Command::Query {
            table,
            pk,
            sort,
            paging,
            reverse,
        } => {
            let partition_key = args.value("--pk", &pk)?;
            let sort = sort_condition(&mut args, sort)?;
            let exclusive_start_key = args.opt_item("--start-key", paging.start_key.as_deref())?;
            let input = QueryInput {
                table,
                partition_key,
                sort,
                reverse,
                limit: 0,
                exclusive_start_key,
                consistent: paging.consistent,
            };
            Op::Query {
                input,
                limit: paging.limit,
            }
        }
        Command::Scan { table, paging } => Op::Scan {
            table,
            limit: paging.limit,
            start: args.opt_item("--start-key", paging.start_key.as_deref())?,
            consistent: paging.consistent,
        },
        Command::Status => Op::Status,
        Command::Bench(_) => unreachable!("bench is dispatched before prepare"),
    })
}

/// Builds a one-value sort-key condition.
type MakeCondition = fn(AttributeValue) -> SortCondition;

/// The sort-key condition of the query flags, if any.
fn sort_condition(args: &mut JsonArgs, s: SortArgs) -> Result<Option<SortCondition>> {
    let one: [(&str, Option<String>, MakeCondition); 6] = [
        ("--eq", s.eq, SortCondition::Eq),
        ("--lt", s.lt, SortCondition::Lt),
        ("--le", s.le, SortCondition::Le),
        ("--gt", s.gt, SortCondition::Gt),
        ("--ge", s.ge, SortCondition::Ge),
        ("--begins-with", s.begins_with, SortCondition::BeginsWith),
    ];
    for (name, raw, make) in one {
        if let Some(raw) = raw {
            return Ok(Some(make(args.value(name, &raw)?)));
        }
    }
    match s.between.as_deref() {
        Some([lo, hi]) => Ok(Some(SortCondition::Between(
            args.value("--between V1", lo)?,
            args.value("--between V2", hi)?,
        ))),
        _ => Ok(None),
    }
}

/// A key attribute in a table description.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyJson {
    attribute_name: String,
    key_type: &'static str,
    attribute_type: String,
}

/// A table description, shaped like DynamoDB's `TableDescription`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TableJson {
    table_name: String,
    table_id: u64,
    key_schema: Vec<KeyJson>,
    table_status: String,
    /// Seconds since the Unix epoch, as DynamoDB prints it.
    creation_date_time: f64,
}

impl TableJson {
    fn new(t: proto::TableDescription) -> Self {
        let key = |k: proto::KeySchemaElement, role: &'static str| KeyJson {
            attribute_type: KeyType::from_proto(k.key_type)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| k.key_type.to_string()),
            attribute_name: k.name,
            key_type: role,
        };
        let key_schema = t
            .partition_key
            .map(|k| key(k, "HASH"))
            .into_iter()
            .chain(t.sort_key.map(|k| key(k, "RANGE")))
            .collect();
        TableJson {
            table_name: t.table_name,
            table_id: t.table_id,
            key_schema,
            table_status: t.table_status,
            creation_date_time: t.creation_time_ms as f64 / 1000.0,
        }
    }
}

/// One node in `status`.
#[derive(Serialize)]
struct NodeLine<'a> {
    node: u64,
    region: &'a str,
    address: &'a str,
    reachable: bool,
}

/// The metadata group (`group: "meta"`) or one partition in `status`.
#[derive(Serialize)]
struct GroupLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<u32>,
    replicas: &'a [u64],
    /// `null` when no leader is known.
    leader: Option<u64>,
    epoch: u64,
    term: u64,
    last_applied: u64,
    last_log_index: u64,
}

impl<'a> GroupLine<'a> {
    fn new(p: &'a proto::PartitionInfo, group: Option<&'static str>) -> Self {
        GroupLine {
            group,
            partition: group.is_none().then_some(p.partition),
            replicas: &p.replicas,
            leader: (p.leader != 0).then_some(p.leader),
            epoch: p.epoch,
            term: p.term,
            last_applied: p.last_applied,
            last_log_index: p.last_log_index,
        }
    }
}

/// The summary line of `status`.
#[derive(Serialize)]
struct SummaryLine {
    nodes: usize,
    partitions: u32,
    partitions_with_leader: usize,
}

/// Writes one JSON document as a line.
fn emit(out: &mut impl Write, doc: &impl Serialize) -> Result<()> {
    serde_json::to_writer(&mut *out, doc)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Prints pages of items to `out` until the end, or until `limit` items; then, if there
/// is more, the key to continue from goes to `rest` (stderr).
async fn print_pages<F, Fut>(
    out: &mut impl Write,
    rest: &mut impl Write,
    limit: Option<u32>,
    mut start: Option<Item>,
    mut fetch: F,
) -> Result<()>
where
    F: FnMut(u32, Option<Item>) -> Fut,
    Fut: Future<Output = std::result::Result<Page, WireError>>,
{
    let mut remaining = limit.filter(|&n| n > 0);
    loop {
        let page = fetch(remaining.unwrap_or(0), start.clone()).await?;
        for item in page
            .items
            .iter()
            .take(remaining.map_or(usize::MAX, |n| n as usize))
        {
            emit(out, &value::item_to_json(item))?;
        }
        if let Some(n) = remaining.as_mut() {
            *n = n.saturating_sub(page.items.len().try_into().unwrap_or(u32::MAX));
        }
        match page.last_evaluated_key {
            None => return Ok(()),
            Some(key) if remaining == Some(0) => {
                out.flush()?;
                emit(
                    rest,
                    &json!({ "LastEvaluatedKey": value::item_to_json(&key) }),
                )?;
                return Ok(());
            }
            Some(key) => {
                if start.as_ref() == Some(&key) {
                    anyhow::bail!(
                        "the cluster returned the start key as LastEvaluatedKey; stopping"
                    );
                }
                start = Some(key);
            }
        }
    }
}

/// Connects and performs one operation, printing its result.
async fn run(endpoints: Vec<String>, op: Op) -> Result<()> {
    let client = Client::connect(ClientConfig::new(endpoints)).await?;
    let mut out = BufWriter::new(io::stdout().lock());
    match op {
        Op::CreateTable { name, schema } => emit(
            &mut out,
            &TableJson::new(client.create_table(&name, &schema).await?),
        )?,
        Op::DeleteTable { name } => {
            emit(&mut out, &TableJson::new(client.delete_table(&name).await?))?
        }
        Op::DescribeTable { name } => emit(
            &mut out,
            &TableJson::new(client.describe_table(&name).await?),
        )?,
        Op::ListTables => {
            let mut names = Vec::new();
            let mut start = None;
            loop {
                let (page, next) = client.list_tables(start, 0).await?;
                names.extend(page);
                match next {
                    Some(n) => start = Some(n),
                    None => break,
                }
            }
            emit(&mut out, &json!({ "TableNames": names }))?;
        }
        Op::Put { table, item } => client.put_item(&table, item).await?,
        Op::Get {
            table,
            key,
            consistent,
        } => {
            if let Some(item) = client.get_item(&table, key, consistent).await? {
                emit(&mut out, &value::item_to_json(&item))?;
            }
        }
        Op::Delete { table, key } => client.delete_item(&table, key).await?,
        Op::Query { input, limit } => {
            let start = input.exclusive_start_key.clone();
            let client = &client;
            print_pages(
                &mut out,
                &mut io::stderr(),
                limit,
                start,
                |page_limit, start| {
                    let q = QueryInput {
                        limit: page_limit,
                        exclusive_start_key: start,
                        ..input.clone()
                    };
                    client.query(q)
                },
            )
            .await?;
        }
        Op::Scan {
            table,
            limit,
            start,
            consistent,
        } => {
            let (client, table) = (&client, table.as_str());
            print_pages(
                &mut out,
                &mut io::stderr(),
                limit,
                start,
                |page_limit, start| client.scan(table, page_limit, start, consistent),
            )
            .await?;
        }
        Op::Status => {
            let s = client.cluster_status().await?;
            for n in &s.nodes {
                emit(
                    &mut out,
                    &NodeLine {
                        node: n.id,
                        region: &n.region,
                        address: &n.grpc_addr,
                        reachable: n.reachable,
                    },
                )?;
            }
            if let Some(meta) = &s.meta {
                emit(&mut out, &GroupLine::new(meta, Some("meta")))?;
            }
            for p in &s.partitions {
                emit(&mut out, &GroupLine::new(p, None))?;
            }
            let summary = SummaryLine {
                nodes: s.nodes.len(),
                partitions: s.partition_count,
                partitions_with_leader: s.partitions.iter().filter(|p| p.leader != 0).count(),
            };
            emit(&mut out, &summary)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Whether the error is a closed stdout (e.g. `ferrodyn scan t | head`): not a failure.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Prints an error in the CLI's format: a cluster or input error as `<ErrorName>: <message>`,
/// anything else (I/O) with its causes.
fn report(e: &anyhow::Error) {
    match e.downcast_ref::<WireError>() {
        Some(w) => eprintln!("{w}"),
        None => eprintln!("error: {e:#}"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let endpoints: Vec<String> = cli
        .endpoint
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if let Command::Bench(args) = cli.command {
        return bench::main(endpoints, args);
    }
    let op = match prepare(cli.command) {
        Ok(op) => op,
        Err(e) => {
            report(&e);
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(endpoints, op)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn item(n: u32) -> Item {
        Item::from([("id".to_owned(), AttributeValue::S(format!("k{n}")))])
    }

    /// A fake table of `total` items served in pages of at most `page` items.
    fn pages(
        total: u32,
        page: u32,
    ) -> impl FnMut(u32, Option<Item>) -> std::future::Ready<Result<Page, WireError>> {
        let calls = RefCell::new(0u32);
        move |limit, start| {
            let from = start.map_or(0, |k| match &k["id"] {
                AttributeValue::S(s) => s[1..].parse::<u32>().unwrap() + 1,
                _ => unreachable!(),
            });
            *calls.borrow_mut() += 1;
            let n = if limit == 0 { page } else { limit.min(page) };
            let to = (from + n).min(total);
            let items: Vec<Item> = (from..to).map(item).collect();
            let last = (to < total).then(|| item(to - 1));
            std::future::ready(Ok(Page {
                items,
                last_evaluated_key: last,
            }))
        }
    }

    fn lines(out: &[u8]) -> Vec<String> {
        String::from_utf8(out.to_vec())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn follows_pages_to_the_end_without_a_limit() {
        let (mut out, mut rest) = (Vec::new(), Vec::new());
        block_on(print_pages(&mut out, &mut rest, None, None, pages(7, 3))).unwrap();
        assert!(rest.is_empty());
        let got = lines(&out);
        assert_eq!(got.len(), 7);
        assert_eq!(got[0], r#"{"id":{"S":"k0"}}"#);
        assert_eq!(got[6], r#"{"id":{"S":"k6"}}"#);
    }

    #[test]
    fn stops_at_the_limit_across_pages() {
        let (mut out, mut rest) = (Vec::new(), Vec::new());
        block_on(print_pages(
            &mut out,
            &mut rest,
            Some(5),
            None,
            pages(10, 3),
        ))
        .unwrap();
        assert_eq!(lines(&out).len(), 5);
        assert_eq!(
            lines(&rest),
            vec![r#"{"LastEvaluatedKey":{"id":{"S":"k4"}}}"#]
        );
        // The last page: fewer items than the limit and no key to continue from.
        let (mut out, mut rest) = (Vec::new(), Vec::new());
        block_on(print_pages(
            &mut out,
            &mut rest,
            Some(5),
            Some(item(6)),
            pages(10, 3),
        ))
        .unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            lines(&out),
            vec![
                r#"{"id":{"S":"k7"}}"#,
                r#"{"id":{"S":"k8"}}"#,
                r#"{"id":{"S":"k9"}}"#
            ]
        );
    }

    #[test]
    fn parses_key_specs() {
        let k = parse_key_attr("id:S").unwrap();
        assert_eq!((k.name.as_str(), k.key_type), ("id", KeyType::S));
        assert_eq!(parse_key_attr("a:b:n").unwrap().name, "a:b");
        assert!(parse_key_attr("id").is_err());
        assert!(parse_key_attr(":S").is_err());
        assert!(parse_key_attr("id:BOOL").is_err());
    }

    #[test]
    fn bad_json_names_the_argument() {
        let mut args = JsonArgs::default();
        let e = args.item("ITEM_JSON", "{nope").unwrap_err();
        let w = e.downcast_ref::<WireError>().unwrap();
        assert!(
            w.to_string()
                .starts_with("ValidationException: invalid ITEM_JSON argument"),
            "{w}"
        );
        let e = args.value("--pk", r#"{"X":"1"}"#).unwrap_err();
        assert!(e.to_string().contains("--pk"), "{e}");
        assert!(args.item("KEY_JSON", "@/nonexistent/key.json").is_err());
    }

    #[test]
    fn reads_json_from_files() {
        let path =
            std::env::temp_dir().join(format!("ferrodyn-cli-test-{}.json", std::process::id()));
        std::fs::write(&path, r#"{"id":{"S":"a"},"n":{"N":"5"}}"#).unwrap();
        let got = JsonArgs::default()
            .item("ITEM_JSON", &format!("@{}", path.display()))
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn describes_tables_like_dynamodb() {
        let t = proto::TableDescription {
            table_name: "events".into(),
            table_id: 7,
            partition_key: Some(proto::KeySchemaElement {
                name: "id".into(),
                key_type: KeyType::S.to_proto(),
            }),
            sort_key: Some(proto::KeySchemaElement {
                name: "ts".into(),
                key_type: KeyType::N.to_proto(),
            }),
            table_status: "ACTIVE".into(),
            creation_time_ms: 1_700_000_000_500,
        };
        let got = serde_json::to_string(&TableJson::new(t)).unwrap();
        assert_eq!(
            got,
            r#"{"TableName":"events","TableId":7,"KeySchema":[{"AttributeName":"id","KeyType":"HASH","AttributeType":"S"},{"AttributeName":"ts","KeyType":"RANGE","AttributeType":"N"}],"TableStatus":"ACTIVE","CreationDateTime":1700000000.5}"#
        );
    }

    #[test]
    fn status_lines_have_the_documented_shape() {
        let p = proto::PartitionInfo {
            partition: 3,
            replicas: vec![1, 2, 3],
            leader: 0,
            epoch: 1,
            term: 2,
            last_applied: 9,
            last_log_index: 9,
        };
        assert_eq!(
            serde_json::to_string(&GroupLine::new(&p, None)).unwrap(),
            r#"{"partition":3,"replicas":[1,2,3],"leader":null,"epoch":1,"term":2,"last_applied":9,"last_log_index":9}"#
        );
        assert!(serde_json::to_string(&GroupLine::new(&p, Some("meta")))
            .unwrap()
            .starts_with(r#"{"group":"meta","replicas""#));
    }

    #[test]
    fn picks_the_one_sort_condition() {
        let mut args = JsonArgs::default();
        let none = SortArgs {
            eq: None,
            lt: None,
            le: None,
            gt: None,
            ge: None,
            between: None,
            begins_with: None,
        };
        assert_eq!(sort_condition(&mut args, none).unwrap(), None);
        let between = SortArgs {
            eq: None,
            lt: None,
            le: None,
            gt: None,
            ge: None,
            between: Some(vec![r#"{"N":"1"}"#.into(), r#"{"N":"2"}"#.into()]),
            begins_with: None,
        };
        assert!(matches!(
            sort_condition(&mut args, between).unwrap(),
            Some(SortCondition::Between(..))
        ));
    }

    #[test]
    fn command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "ferrodyn",
            "query",
            "t",
            "--pk",
            r#"{"S":"a"}"#,
            "--between",
            "1",
            "2",
            "--limit",
            "3",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Query {
                paging: PagingArgs { limit: Some(3), .. },
                ..
            }
        ));
        assert!(Cli::try_parse_from([
            "ferrodyn", "query", "t", "--pk", "x", "--eq", "1", "--gt", "2"
        ])
        .is_err());
    }
}
