//! DynamoDB semantics through a real cluster: input validation (error names, nothing stored),
//! Query ordering and conditions, and Query/Scan pagination.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Result};
use ferrodyn_client::proto::{self, attribute_value::Value as PV};
use ferrodyn_client::schema::{KeyAttr, KeySchema, KeyType};
use ferrodyn_client::{AttributeValue, Client, ErrorKind, Item, Number, WireError};
use ferrodyn_node::storage::keys::group_of_partition;
use ferrodyn_tests::{
    eventually, item, n, ni, query_all, s, scan_all, QueryInput, SortCondition, TestCluster,
};
use rand::seq::SliceRandom;

fn schema(pk: (&str, KeyType), sk: Option<(&str, KeyType)>) -> KeySchema {
    KeySchema {
        partition_key: KeyAttr::new(pk.0, pk.1),
        sort_key: sk.map(|(name, t)| KeyAttr::new(name, t)),
    }
}

/// Asserts `result` failed with `kind`, naming the case.
fn expect_err<T: std::fmt::Debug>(
    case: &str,
    result: Result<T, WireError>,
    kind: ErrorKind,
) -> Result<()> {
    match result {
        Ok(v) => bail!("{case}: expected {}, got success {v:?}", kind.name()),
        Err(e) if e.kind == kind => Ok(()),
        Err(e) => bail!("{case}: expected {}, got {e}", kind.name()),
    }
}

/// Every item of every table, in a canonical order, read consistently.
async fn contents(client: &Client, tables: &[&str]) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out = BTreeMap::new();
    for t in tables {
        let mut items: Vec<String> = scan_all(client, t, 0, true)
            .await?
            .iter()
            .map(|i| format!("{i:?}"))
            .collect();
        items.sort();
        out.insert(t.to_string(), items);
    }
    Ok(out)
}

fn proto_n(text: &str) -> proto::AttributeValue {
    proto::AttributeValue {
        value: Some(PV::N(text.to_owned())),
    }
}

fn proto_s(text: &str) -> proto::AttributeValue {
    proto::AttributeValue {
        value: Some(PV::S(text.to_owned())),
    }
}

fn proto_item<const K: usize>(attrs: [(&str, proto::AttributeValue); K]) -> proto::Item {
    proto::Item {
        attributes: attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_inputs_get_dynamodb_errors_and_store_nothing() -> Result<()> {
    let cluster = TestCluster::start(3, 4, 3).await?;
    cluster.wait_for_leaders(Duration::from_secs(20)).await?;
    let client = cluster.client().await?;
    client
        .create_table("users", &schema(("id", KeyType::S), None))
        .await?;
    client
        .create_table(
            "events",
            &schema(("pk", KeyType::S), Some(("sk", KeyType::N))),
        )
        .await?;
    client
        .create_table("nums", &schema(("n", KeyType::N), None))
        .await?;
    let tables = ["users", "events", "nums"];
    for id in ["a", "b", "c"] {
        client
            .put_item(
                "users",
                item([("id", s(id)), ("name", s(format!("user {id}")))]),
            )
            .await?;
    }
    for sk in [1, 2, 3] {
        client
            .put_item(
                "events",
                item([("pk", s("p1")), ("sk", ni(sk)), ("v", s("x"))]),
            )
            .await?;
    }
    client.put_item("nums", item([("n", ni(42))])).await?;
    let baseline = contents(&client, &tables).await?;
    ensure!(
        baseline.values().map(Vec::len).sum::<usize>() == 7,
        "baseline {baseline:?}"
    );

    let v = ErrorKind::Validation;
    let mut raw = cluster.raw(2).await?;
    let digits39 = "123456789012345678901234567890123456789";
    ensure!(
        Number::parse(digits39).is_err(),
        "the client accepts a 39-digit number"
    );

    // Each case: the request, then the store must be exactly the baseline.
    let big = "x".repeat(410_000);
    expect_err(
        "item over 400 KB",
        client
            .put_item("users", item([("id", s("big")), ("blob", s(big.clone()))]))
            .await,
        v.clone(),
    )?;
    let mut cases: Vec<(&str, Result<(), WireError>, ErrorKind)> = Vec::new();
    let unit = |r: Result<Option<Item>, WireError>| r.map(|_| ());
    cases.push((
        "S key given a number",
        client.put_item("users", item([("id", ni(5))])).await,
        v.clone(),
    ));
    cases.push((
        "N key given a string",
        client.put_item("nums", item([("n", s("5"))])).await,
        v.clone(),
    ));
    cases.push((
        "B given for S key",
        client
            .put_item("users", item([("id", AttributeValue::B(vec![1]))]))
            .await,
        v.clone(),
    ));
    cases.push((
        "missing partition key",
        client
            .put_item("users", item([("name", s("nobody"))]))
            .await,
        v.clone(),
    ));
    cases.push((
        "missing sort key",
        client.put_item("events", item([("pk", s("p1"))])).await,
        v.clone(),
    ));
    cases.push((
        "39-digit number key",
        raw.put_item(proto::PutItemRequest {
            table_name: "nums".into(),
            item: Some(proto_item([("n", proto_n(digits39))])),
        })
        .await
        .map(|_| ())
        .map_err(|st| WireError::from_status(&st)),
        v.clone(),
    ));
    cases.push((
        "39-digit number attribute",
        raw.put_item(proto::PutItemRequest {
            table_name: "users".into(),
            item: Some(proto_item([("id", proto_s("d")), ("v", proto_n(digits39))])),
        })
        .await
        .map(|_| ())
        .map_err(|st| WireError::from_status(&st)),
        v.clone(),
    ));
    cases.push((
        "unparseable number",
        raw.put_item(proto::PutItemRequest {
            table_name: "users".into(),
            item: Some(proto_item([("id", proto_s("e")), ("v", proto_n("12abc"))])),
        })
        .await
        .map(|_| ())
        .map_err(|st| WireError::from_status(&st)),
        v.clone(),
    ));
    let nf = ErrorKind::ResourceNotFound;
    cases.push((
        "put to unknown table",
        client
            .put_item("no_such_table", item([("id", s("a"))]))
            .await,
        nf.clone(),
    ));
    cases.push((
        "get from unknown table",
        unit(
            client
                .get_item("no_such_table", item([("id", s("a"))]), true)
                .await,
        ),
        nf.clone(),
    ));
    cases.push((
        "query unknown table",
        client
            .query(QueryInput::new("no_such_table", s("a")))
            .await
            .map(|_| ()),
        nf.clone(),
    ));
    cases.push((
        "scan unknown table",
        client
            .scan("no_such_table", 0, None, false)
            .await
            .map(|_| ()),
        nf.clone(),
    ));
    cases.push((
        "raw put to unknown table",
        raw.put_item(proto::PutItemRequest {
            table_name: "no_such_table".into(),
            item: Some(proto_item([("id", proto_s("a"))])),
        })
        .await
        .map(|_| ())
        .map_err(|st| WireError::from_status(&st)),
        nf.clone(),
    ));
    cases.push((
        "create existing table",
        client
            .create_table("users", &schema(("id", KeyType::S), None))
            .await
            .map(|_| ()),
        ErrorKind::ResourceInUse,
    ));
    cases.push((
        "create existing table with another schema",
        client
            .create_table("events", &schema(("other", KeyType::N), None))
            .await
            .map(|_| ()),
        ErrorKind::ResourceInUse,
    ));
    cases.push((
        "empty string partition key",
        client.put_item("users", item([("id", s(""))])).await,
        v.clone(),
    ));
    cases.push((
        "get with empty string key",
        unit(client.get_item("users", item([("id", s(""))]), true).await),
        v.clone(),
    ));
    cases.push((
        "partition key over 2048 bytes",
        client
            .put_item("users", item([("id", s("k".repeat(2049)))]))
            .await,
        v.clone(),
    ));
    cases.push((
        "extra attribute in GetItem key",
        unit(
            client
                .get_item("users", item([("id", s("a")), ("name", s("user a"))]), true)
                .await,
        ),
        v.clone(),
    ));
    cases.push((
        "GetItem key without the sort key",
        unit(
            client
                .get_item("events", item([("pk", s("p1"))]), true)
                .await,
        ),
        v.clone(),
    ));
    cases.push((
        "extra attribute in DeleteItem key",
        client
            .delete_item("users", item([("id", s("a")), ("name", s("user a"))]))
            .await,
        v.clone(),
    ));
    cases.push((
        "DeleteItem key without the sort key",
        client.delete_item("events", item([("pk", s("p1"))])).await,
        v.clone(),
    ));
    let q = |sort: SortCondition| QueryInput {
        sort: Some(sort),
        consistent: true,
        ..QueryInput::new("events", s("p1"))
    };
    cases.push((
        "string condition on N sort key",
        client.query(q(SortCondition::Eq(s("1")))).await.map(|_| ()),
        v.clone(),
    ));
    cases.push((
        "BETWEEN with a string bound on N sort key",
        client
            .query(q(SortCondition::Between(ni(1), s("3"))))
            .await
            .map(|_| ()),
        v.clone(),
    ));
    cases.push((
        "begins_with on N sort key",
        client
            .query(q(SortCondition::BeginsWith(ni(1))))
            .await
            .map(|_| ()),
        v.clone(),
    ));
    cases.push((
        "BETWEEN with low > high",
        client
            .query(q(SortCondition::Between(ni(3), ni(1))))
            .await
            .map(|_| ()),
        v.clone(),
    ));
    cases.push((
        "sort condition on a table without sort key",
        client
            .query(QueryInput {
                sort: Some(SortCondition::Eq(s("a"))),
                ..QueryInput::new("users", s("a"))
            })
            .await
            .map(|_| ()),
        v.clone(),
    ));
    cases.push((
        "query partition key of the wrong type",
        client
            .query(QueryInput::new("events", ni(1)))
            .await
            .map(|_| ()),
        v.clone(),
    ));
    for (case, result, kind) in cases {
        expect_err(case, result, kind)?;
        let now = contents(&client, &tables).await?;
        ensure!(now == baseline, "{case}: the store changed: {now:?}");
    }
    ensure!(
        client
            .get_item("users", item([("id", s("big"))]), true)
            .await?
            .is_none(),
        "oversized item stored"
    );
    ensure!(
        client
            .get_item("users", item([("id", s("d"))]), true)
            .await?
            .is_none(),
        "39-digit item stored"
    );

    // The limits themselves are allowed: a 2048-byte partition key, a 400 KB item, 38 digits.
    let long_key = "k".repeat(2048);
    client
        .put_item("users", item([("id", s(long_key.clone()))]))
        .await?;
    let limit_blob = "y".repeat(409_600 - "id".len() - "max".len() - "blob".len());
    client
        .put_item(
            "users",
            item([("id", s("max")), ("blob", s(limit_blob.clone()))]),
        )
        .await?;
    let digits38 = &digits39[..38];
    client.put_item("nums", item([("n", n(digits38))])).await?;
    ensure!(
        client
            .get_item("users", item([("id", s(long_key))]), true)
            .await?
            .is_some(),
        "2048-byte key lost"
    );
    let max = client
        .get_item("users", item([("id", s("max"))]), true)
        .await?;
    ensure!(
        max.and_then(|m| m.get("blob").cloned()) == Some(s(limit_blob)),
        "400 KB item not stored intact"
    );
    ensure!(
        client
            .get_item("nums", item([("n", n(digits38))]), true)
            .await?
            .is_some(),
        "38-digit key lost"
    );
    // One byte over the item limit is refused.
    let over = "y".repeat(409_601 - "id".len() - "max2".len() - "blob".len());
    expect_err(
        "item one byte over",
        client
            .put_item("users", item([("id", s("max2")), ("blob", s(over))]))
            .await,
        v,
    )?;
    ensure!(
        client
            .get_item("users", item([("id", s("max2"))]), true)
            .await?
            .is_none(),
        "over-limit item stored"
    );
    cluster.shutdown().await
}

/// The sort-key values of `items`, in order.
fn sort_keys(items: &[Item]) -> Vec<AttributeValue> {
    items
        .iter()
        .map(|i| i.get("sk").cloned().unwrap_or(AttributeValue::Null))
        .collect()
}

/// Checks one query: unpaginated and with small page limits, forward and reverse, every page
/// within its limit and filled, every expected item exactly once in order.
async fn check_query(
    client: &Client,
    table: &str,
    pk: &str,
    sort: Option<SortCondition>,
    expected: &[AttributeValue],
) -> Result<()> {
    for reverse in [false, true] {
        let mut want = expected.to_vec();
        if reverse {
            want.reverse();
        }
        for limit in [0u32, 1, 2, 3, 5] {
            let q = QueryInput {
                sort: sort.clone(),
                reverse,
                limit,
                consistent: true,
                ..QueryInput::new(table, s(pk))
            };
            let first = client.query(q.clone()).await?;
            let full = if limit == 0 {
                want.len()
            } else {
                want.len().min(limit as usize)
            };
            ensure!(
                first.items.len() == full,
                "{table}/{pk} {sort:?} reverse={reverse} limit={limit}: first page has {} items, expected {full}",
                first.items.len()
            );
            let got = query_all(client, q).await?;
            ensure!(
                got.iter().all(|i| i.get("pk") == Some(&s(pk))),
                "{table}/{pk}: an item of another partition key came back: {got:?}"
            );
            let got = sort_keys(&got);
            ensure!(
                got == want,
                "{table}/{pk} {sort:?} reverse={reverse} limit={limit}:\n got  {got:?}\n want {want:?}"
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn query_orders_filters_and_paginates() -> Result<()> {
    let cluster = TestCluster::start(3, 4, 3).await?;
    cluster.wait_for_leaders(Duration::from_secs(20)).await?;
    let client = cluster.client().await?;
    client
        .create_table(
            "qnum",
            &schema(("pk", KeyType::S), Some(("sk", KeyType::N))),
        )
        .await?;
    client
        .create_table(
            "qstr",
            &schema(("pk", KeyType::S), Some(("sk", KeyType::S))),
        )
        .await?;

    // Numbers: stored in shuffled order, must come back numerically sorted.
    let texts = [
        "-1000",
        "-100",
        "-10.5",
        "-2.5",
        "-2",
        "-1",
        "-0.001",
        "0",
        "0.001",
        "0.5",
        "1",
        "2",
        "2.5",
        "9",
        "10",
        "10.5",
        "11",
        "99.99",
        "100",
        "1000",
        "12345678901234567890",
        "1E+30",
    ];
    let mut shuffled = texts.to_vec();
    shuffled.shuffle(&mut rand::thread_rng());
    for t in &shuffled {
        client
            .put_item(
                "qnum",
                item([("pk", s("nums")), ("sk", n(t)), ("text", s(*t))]),
            )
            .await?;
    }
    // Neighbouring partition keys (one a prefix of the other) must never leak into "nums".
    client
        .put_item("qnum", item([("pk", s("num")), ("sk", ni(5))]))
        .await?;
    client
        .put_item("qnum", item([("pk", s("nums2")), ("sk", ni(5))]))
        .await?;
    client
        .put_item("qnum", item([("pk", s("numsnums")), ("sk", ni(-5))]))
        .await?;

    let mut sorted: Vec<(f64, &str)> = texts
        .iter()
        .map(|t| (t.parse::<f64>().expect("float"), *t))
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let pick = |pred: &dyn Fn(f64) -> bool| -> Vec<AttributeValue> {
        sorted
            .iter()
            .filter(|(x, _)| pred(*x))
            .map(|(_, t)| n(t))
            .collect()
    };
    let numeric: Vec<(Option<SortCondition>, Vec<AttributeValue>)> = vec![
        (None, pick(&|_| true)),
        (Some(SortCondition::Eq(ni(10))), pick(&|x| x == 10.0)),
        (Some(SortCondition::Eq(n("10.0"))), pick(&|x| x == 10.0)),
        (Some(SortCondition::Eq(ni(3))), vec![]),
        (Some(SortCondition::Lt(ni(2))), pick(&|x| x < 2.0)),
        (Some(SortCondition::Le(ni(2))), pick(&|x| x <= 2.0)),
        (Some(SortCondition::Gt(ni(10))), pick(&|x| x > 10.0)),
        (Some(SortCondition::Ge(ni(10))), pick(&|x| x >= 10.0)),
        (Some(SortCondition::Gt(n("-2.5"))), pick(&|x| x > -2.5)),
        (Some(SortCondition::Lt(ni(-1000))), vec![]),
        (
            Some(SortCondition::Between(ni(-2), ni(10))),
            pick(&|x| (-2.0..=10.0).contains(&x)),
        ),
        (
            Some(SortCondition::Between(n("-0.5"), n("0.5"))),
            pick(&|x| (-0.5..=0.5).contains(&x)),
        ),
        (Some(SortCondition::Between(ni(3), ni(8))), vec![]),
        (
            Some(SortCondition::Between(ni(100), ni(100))),
            pick(&|x| x == 100.0),
        ),
    ];
    // The unconditioned order is numeric, not textual: 2 < 9 < 10 < 100.
    let all = &numeric[0].1;
    let pos = |t: &str| all.iter().position(|v| *v == n(t)).expect("present");
    ensure!(
        pos("2") < pos("9") && pos("9") < pos("10") && pos("10") < pos("100"),
        "order {all:?}"
    );
    ensure!(
        pos("-100") < pos("-2.5") && pos("-2.5") < pos("-2") && pos("-0.001") < pos("0"),
        "order {all:?}"
    );
    for (cond, want) in &numeric {
        check_query(&client, "qnum", "nums", cond.clone(), want).await?;
    }
    check_query(&client, "qnum", "num", None, &[ni(5)]).await?;
    check_query(&client, "qnum", "absent", None, &[]).await?;

    // Strings sort bytewise (UTF-8): "Zed" < "a" < ... < "éclair".
    let words = [
        "a", "ab", "abc", "abd", "b", "ba", "banana", "band", "bandana", "Zed", "éclair", "bb",
    ];
    for w in words {
        client
            .put_item("qstr", item([("pk", s("words")), ("sk", s(w))]))
            .await?;
    }
    let mut sorted_words: Vec<&str> = words.to_vec();
    sorted_words.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let pick_s = |pred: &dyn Fn(&str) -> bool| -> Vec<AttributeValue> {
        sorted_words
            .iter()
            .filter(|w| pred(w))
            .map(|w| s(*w))
            .collect()
    };
    let strings: Vec<(Option<SortCondition>, Vec<AttributeValue>)> = vec![
        (None, pick_s(&|_| true)),
        (
            Some(SortCondition::BeginsWith(s("ba"))),
            pick_s(&|w| w.starts_with("ba")),
        ),
        (
            Some(SortCondition::BeginsWith(s("band"))),
            pick_s(&|w| w.starts_with("band")),
        ),
        (
            Some(SortCondition::BeginsWith(s("a"))),
            pick_s(&|w| w.starts_with('a')),
        ),
        (Some(SortCondition::BeginsWith(s("z"))), vec![]),
        (
            Some(SortCondition::BeginsWith(s("é"))),
            pick_s(&|w| w.starts_with('é')),
        ),
        (Some(SortCondition::Eq(s("ab"))), pick_s(&|w| w == "ab")),
        (Some(SortCondition::Lt(s("b"))), pick_s(&|w| w < "b")),
        (Some(SortCondition::Le(s("b"))), pick_s(&|w| w <= "b")),
        (Some(SortCondition::Gt(s("b"))), pick_s(&|w| w > "b")),
        (Some(SortCondition::Ge(s("ba"))), pick_s(&|w| w >= "ba")),
        (
            Some(SortCondition::Between(s("ab"), s("ba"))),
            pick_s(&|w| ("ab"..="ba").contains(&w)),
        ),
    ];
    ensure!(
        strings[0].1.first() == Some(&s("Zed")) && strings[0].1.last() == Some(&s("éclair")),
        "{:?}",
        strings[0].1
    );
    for (cond, want) in &strings {
        check_query(&client, "qstr", "words", cond.clone(), want).await?;
    }

    // A starting key of another partition key is refused.
    let err = client
        .query(QueryInput {
            exclusive_start_key: Some(item([("pk", s("other")), ("sk", s("a"))])),
            ..QueryInput::new("qstr", s("words"))
        })
        .await;
    expect_err(
        "query resuming from another partition key",
        err,
        ErrorKind::Validation,
    )?;
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_pagination_visits_every_item_once() -> Result<()> {
    let cluster = TestCluster::start(3, 16, 3).await?;
    cluster.wait_for_leaders(Duration::from_secs(20)).await?;
    let client = cluster.client().await?;
    client
        .create_table("flat", &schema(("id", KeyType::S), None))
        .await?;
    client
        .create_table(
            "nested",
            &schema(("pk", KeyType::N), Some(("sk", KeyType::S))),
        )
        .await?;
    client
        .create_table("empty", &schema(("id", KeyType::S), None))
        .await?;

    let mut expected_flat = BTreeSet::new();
    let writes = (0..240).map(|i| {
        let c = client.clone();
        async move {
            c.put_item("flat", item([("id", s(format!("item-{i}"))), ("i", ni(i))]))
                .await
        }
    });
    for r in futures::future::join_all(writes).await {
        r?;
    }
    for i in 0..240 {
        expected_flat.insert(format!("item-{i}"));
    }
    let partitions: BTreeSet<u32> = expected_flat
        .iter()
        .map(|k| cluster.partition_of(&s(k.clone())))
        .collect();
    ensure!(
        partitions.len() == 16,
        "keys cover only partitions {partitions:?}"
    );
    let mut expected_nested = BTreeSet::new();
    for pk in 0..30i64 {
        for sk in ["a", "b", "c", "d", "e"] {
            client
                .put_item("nested", item([("pk", ni(pk - 10)), ("sk", s(sk))]))
                .await?;
            expected_nested.insert((pk - 10, sk.to_owned()));
        }
    }

    for consistent in [false, true] {
        for limit in [0u32, 1, 7, 50, 239, 240, 1000] {
            let items = scan_all(&client, "flat", limit, consistent).await?;
            let keys: Vec<String> = items
                .iter()
                .map(|i| match i.get("id") {
                    Some(AttributeValue::S(k)) => Ok(k.clone()),
                    other => Err(anyhow!("bad id {other:?}")),
                })
                .collect::<Result<_>>()?;
            let distinct: BTreeSet<String> = keys.iter().cloned().collect();
            ensure!(
                keys.len() == distinct.len(),
                "limit {limit} consistent {consistent}: {} items but {} distinct",
                keys.len(),
                distinct.len()
            );
            ensure!(
                distinct == expected_flat,
                "limit {limit} consistent {consistent}: wrong set of {} items",
                keys.len()
            );
        }
        for limit in [0u32, 3, 5, 11] {
            let items = scan_all(&client, "nested", limit, consistent).await?;
            let keys: Vec<(i64, String)> = items
                .iter()
                .map(|i| match (i.get("pk"), i.get("sk")) {
                    (Some(AttributeValue::N(p)), Some(AttributeValue::S(k))) => {
                        Ok((p.to_string().parse()?, k.clone()))
                    }
                    other => Err(anyhow!("bad key {other:?}")),
                })
                .collect::<Result<_>>()?;
            let distinct: BTreeSet<(i64, String)> = keys.iter().cloned().collect();
            ensure!(
                keys.len() == distinct.len(),
                "nested limit {limit}: duplicates among {} items",
                keys.len()
            );
            ensure!(
                distinct == expected_nested,
                "nested limit {limit}: wrong set ({} items)",
                keys.len()
            );
        }
        let empty = client.scan("empty", 5, None, consistent).await?;
        ensure!(
            empty.items.is_empty() && empty.last_evaluated_key.is_none(),
            "empty table scan: {empty:?}"
        );
    }

    // A page of exactly `limit` items; a full scan page holds items of several partitions.
    let page = client.scan("flat", 100, None, true).await?;
    ensure!(
        page.items.len() == 100 && page.last_evaluated_key.is_some(),
        "first page: {} items",
        page.items.len()
    );
    let page_parts: BTreeSet<u32> = page
        .items
        .iter()
        .filter_map(|i| i.get("id").map(|k| cluster.partition_of(k)))
        .collect();
    ensure!(
        page_parts.len() > 1,
        "a 100-item page came from one partition"
    );
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleted_table_is_gone_and_its_name_reusable() -> Result<()> {
    let cluster = TestCluster::start(3, 4, 3).await?;
    cluster.wait_for_leaders(Duration::from_secs(20)).await?;
    let client = cluster.client().await?;
    // A second client that caches the table's schema before it is dropped.
    let other = cluster.client_for(3).await?;
    client
        .create_table("reused", &schema(("id", KeyType::S), None))
        .await?;
    for i in 0..20 {
        client
            .put_item("reused", item([("id", s(format!("old{i}"))), ("v", ni(i))]))
            .await?;
    }
    ensure!(
        other
            .get_item("reused", item([("id", s("old1"))]), true)
            .await?
            .is_some(),
        "second client does not see old1"
    );
    let old_id = client.describe_table("reused").await?.table_id;
    eventually(
        Duration::from_secs(15),
        "20 items on 3 replicas each",
        || async {
            let mut total = 0;
            for p in 0..cluster.partitions() {
                for id in cluster.replicas(p) {
                    total += cluster
                        .stored_items(id, group_of_partition(p), old_id)
                        .await?;
                }
            }
            ensure!(total == 60, "{total} replicated items stored");
            Ok(())
        },
    )
    .await?;
    client.delete_table("reused").await?;
    expect_err(
        "describe a deleted table",
        client.describe_table("reused").await,
        ErrorKind::ResourceNotFound,
    )?;
    expect_err(
        "put into a deleted table",
        client.put_item("reused", item([("id", s("x"))])).await,
        ErrorKind::ResourceNotFound,
    )?;
    expect_err(
        "delete a deleted table",
        client.delete_table("reused").await,
        ErrorKind::ResourceNotFound,
    )?;
    // Every replica sweeps the dropped table's items out of its storage.
    eventually(
        Duration::from_secs(15),
        "dropped table's items swept",
        || async {
            for id in cluster.ids() {
                for p in 0..cluster.partitions() {
                    let group = group_of_partition(p);
                    if !cluster.replicas(p).contains(&id) {
                        continue;
                    }
                    let left = cluster.stored_items(id, group, old_id).await?;
                    ensure!(
                        left == 0,
                        "node {id} partition {p} still stores {left} items of the dropped table"
                    );
                }
            }
            Ok(())
        },
    )
    .await?;
    let (names, _) = client.list_tables(None, 0).await?;
    ensure!(
        !names.contains(&"reused".to_string()),
        "listed after delete: {names:?}"
    );

    // Same name, another key schema: it starts empty, for every client.
    client
        .create_table("reused", &schema(("n", KeyType::N), None))
        .await?;
    for consistent in [false, true] {
        let items = scan_all(&client, "reused", 0, consistent).await?;
        ensure!(
            items.is_empty(),
            "recreated table holds old items: {items:?}"
        );
    }
    client.put_item("reused", item([("n", ni(7))])).await?;
    let seen = eventually(
        Duration::from_secs(10),
        "the other client seeing the new table",
        || async {
            other
                .get_item("reused", item([("n", ni(7))]), true)
                .await
                .map_err(|e| anyhow!("{e}"))
        },
    )
    .await?;
    ensure!(seen.is_some(), "the other client does not see the new item");
    expect_err(
        "old schema's key on the recreated table",
        other
            .get_item("reused", item([("id", s("old1"))]), true)
            .await
            .map(|_| ()),
        ErrorKind::Validation,
    )?;
    let items = scan_all(&other, "reused", 0, true).await?;
    ensure!(
        items.len() == 1,
        "recreated table through node 3: {items:?}"
    );
    cluster.shutdown().await
}
