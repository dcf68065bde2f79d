//! The `Table` contract: what every adapter must do, case by case.

use std::sync::Arc;

use oratio_core::table::{
    Condition, Cursor, CursorKey, Index, Item, Key, MAX_ITEM_BYTES, Query, SortKey, Table, TableError, Update, Write,
};
use oratio_core::time::now_epoch;
use serde_json::json;

type Subject = Arc<dyn Table>;

fn key(pk: &str, sk: &str) -> Key {
    Key::new(pk, sk)
}

fn sks(items: &[Item]) -> Vec<String> {
    items.iter().map(|i| i.key().sk).collect()
}

async fn collect(table: &Subject, query: Query) -> (Vec<Item>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor = None;
    loop {
        let page = table.query(query.clone().after(cursor)).await.expect("query");
        pages += 1;
        if let Some(limit) = query.limit {
            assert!(page.items.len() <= limit, "a page holds at most its limit");
            if page.next.is_some() {
                assert_eq!(page.items.len(), limit, "a page followed by another is full");
            }
        }
        items.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (items, pages),
        }
    }
}

pub async fn put_then_get_returns_every_json_type(table: Subject) {
    let item = Item::new(key("T#1", "A#1"))
        .with("name", "Front desk")
        .with("empty", "")
        .with("count", 42)
        .with("negative", -7)
        .with("big", 9_007_199_254_740_993_i64)
        .with("ratio", 2.5)
        .with("active", true)
        .with("nothing", serde_json::Value::Null)
        .with("tags", json!(["a", 1, false, {"x": [1, 2]}]))
        .with("voice", json!({"name": "Matthew", "rate": 1.25, "nested": {"deep": "yes"}}))
        .with("unicode", "Grüße — 你好 👋");
    table.put(item.clone(), None).await.expect("put");
    assert_eq!(table.get(&key("T#1", "A#1")).await.expect("get"), Some(item));
}

pub async fn get_of_a_missing_item_is_none(table: Subject) {
    assert_eq!(table.get(&key("T#1", "nothing")).await.expect("get"), None);
}

pub async fn put_replaces_the_whole_item(table: Subject) {
    table.put(Item::new(key("T#1", "A#1")).with("a", 1).with("b", 2), None).await.expect("put");
    table.put(Item::new(key("T#1", "A#1")).with("c", 3), None).await.expect("put");
    let item = table.get(&key("T#1", "A#1")).await.expect("get").expect("present");
    assert_eq!((item.get("a"), item.i64("c")), (None, Some(3)));
}

pub async fn put_if_absent_refuses_an_existing_item_and_keeps_it(table: Subject) {
    let first = Item::new(key("T#1", "A#1")).with("v", 1);
    table.put(first.clone(), Some(Condition::NotExists)).await.expect("first put");
    let err = table.put(Item::new(key("T#1", "A#1")).with("v", 2), Some(Condition::NotExists)).await;
    assert!(matches!(err, Err(TableError::ConditionFailed { .. })), "{err:?}");
    assert_eq!(table.get(&key("T#1", "A#1")).await.expect("get"), Some(first));
}

pub async fn attribute_conditions_are_judged_like_dynamodb(table: Subject) {
    let k = key("T#1", "A#1");
    table.put(Item::new(k.clone()).with("status", "active").with("n", 5).with("name", "m"), None).await.expect("put");
    let cases = [
        (Condition::equals("status", "active"), true),
        (Condition::equals("status", "paused"), false),
        (Condition::equals("n", 5), true),
        (Condition::NotEquals("status".into(), json!("paused")), true),
        (Condition::NotEquals("missing".into(), json!("x")), true),
        (Condition::NotEquals("status".into(), json!("active")), false),
        (Condition::LessThan("n".into(), json!(6)), true),
        (Condition::LessThan("n".into(), json!(5)), false),
        (Condition::GreaterThan("n".into(), json!(4)), true),
        (Condition::GreaterThan("name".into(), json!("a")), true),
        (Condition::LessThan("name".into(), json!(1)), false),
        (Condition::LessThan("missing".into(), json!(1)), false),
        (Condition::AttributeExists("n".into()), true),
        (Condition::AttributeExists("missing".into()), false),
        (Condition::AttributeNotExists("missing".into()), true),
        (Condition::And(vec![Condition::Exists, Condition::equals("n", 5)]), true),
        (Condition::And(vec![Condition::Exists, Condition::equals("n", 6)]), false),
        (Condition::Or(vec![Condition::equals("n", 6), Condition::equals("status", "active")]), true),
        (Condition::Or(vec![Condition::NotExists, Condition::equals("n", 6)]), false),
    ];
    for (i, (condition, holds)) in cases.into_iter().enumerate() {
        let result = table.update(&k, Update::new().set("last_case", i), Some(condition.clone())).await;
        assert_eq!(result.is_ok(), holds, "case {i}: {condition:?} gave {result:?}");
        if !holds {
            assert!(matches!(result, Err(TableError::ConditionFailed { .. })), "case {i}: {result:?}");
        }
    }
}

pub async fn update_creates_an_absent_item_and_returns_the_new_state(table: Subject) {
    let k = key("T#1", "COUNTER#1");
    let after = table.update(&k, Update::new().add("count", 2).set("label", "x"), None).await.expect("update");
    assert_eq!((after.key(), after.i64("count"), after.str("label")), (k.clone(), Some(2), Some("x")));
    let after = table.update(&k, Update::new().add("count", 3).remove("label"), None).await.expect("update");
    assert_eq!((after.i64("count"), after.get("label")), (Some(5), None));
    assert_eq!(table.get(&k).await.expect("get"), Some(after));
}

pub async fn update_guarded_by_exists_refuses_an_absent_item(table: Subject) {
    let k = key("T#1", "A#missing");
    let result = table.update(&k, Update::new().set("a", 1), Some(Condition::Exists)).await;
    assert!(matches!(result, Err(TableError::ConditionFailed { .. })), "{result:?}");
    assert_eq!(table.get(&k).await.expect("get"), None, "a refused update writes nothing");
}

pub async fn concurrent_increments_are_all_counted(table: Subject) {
    let k = key("T#1", "COUNTER#race");
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (table, k) = (table.clone(), k.clone());
            tokio::spawn(async move { table.update(&k, Update::new().add("count", 1), None).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("update");
    }
    assert_eq!(table.get(&k).await.expect("get").and_then(|i| i.i64("count")), Some(40));
}

pub async fn only_one_of_concurrent_conditional_puts_wins(table: Subject) {
    let tasks: Vec<_> = (0..12)
        .map(|n| {
            let table = table.clone();
            tokio::spawn(async move {
                table.put(Item::new(key("T#1", "TURN#0001")).with("writer", n), Some(Condition::NotExists)).await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => wins += 1,
            Err(TableError::ConditionFailed { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins, 1);
}

pub async fn invalid_updates_and_items_are_refused_before_writing(table: Subject) {
    let k = key("T#1", "A#1");
    for update in [
        Update::new().set("pk", "T#2"),
        Update::new(),
        Update::new().set("a", 1).remove("a"),
        Update::new().set("gsi1pk", 5),
        Update::new().set("expires_at", "soon"),
    ] {
        let result = table.update(&k, update.clone(), None).await;
        assert!(matches!(result, Err(TableError::Invalid(_))), "{update:?} gave {result:?}");
    }
    let huge = Item::new(key("T#1", "BIG")).with("blob", "x".repeat(MAX_ITEM_BYTES + 1));
    assert!(matches!(table.put(huge, None).await, Err(TableError::Invalid(_))));
    let bad_index = Item::new(key("T#1", "BAD")).with("gsi1pk", 3);
    assert!(matches!(table.put(bad_index, None).await, Err(TableError::Invalid(_))));
    assert_eq!(table.get(&k).await.expect("get"), None);
    assert_eq!(table.get(&key("T#1", "BIG")).await.expect("get"), None);
}

pub async fn delete_removes_and_deleting_nothing_is_fine(table: Subject) {
    let k = key("T#1", "A#1");
    table.put(Item::new(k.clone()).with("status", "active"), None).await.expect("put");
    let refused = table.delete(&k, Some(Condition::equals("status", "archived"))).await;
    assert!(matches!(refused, Err(TableError::ConditionFailed { .. })));
    assert!(table.get(&k).await.expect("get").is_some(), "a refused delete keeps the item");
    table.delete(&k, Some(Condition::equals("status", "active"))).await.expect("delete");
    assert_eq!(table.get(&k).await.expect("get"), None);
    table.delete(&k, None).await.expect("deleting an absent item");
    let refused = table.delete(&k, Some(Condition::Exists)).await;
    assert!(matches!(refused, Err(TableError::ConditionFailed { .. })));
}

async fn seed(table: &Subject, pk: &str, sks: &[&str]) {
    for sk in sks {
        table.put(Item::new(key(pk, sk)).with("sk_copy", *sk), None).await.expect("seed");
    }
}

pub async fn query_returns_one_partition_in_byte_order(table: Subject) {
    seed(&table, "T#1", &["b", "a", "Z", "é", "a#2", "z"]).await;
    seed(&table, "T#2", &["a", "b"]).await;
    seed(&table, "T#10", &["a"]).await;
    let page = table.query(Query::partition(Index::Primary, "T#1")).await.expect("query");
    assert_eq!(sks(&page.items), ["Z", "a", "a#2", "b", "z", "é"]);
    assert_eq!(page.next, None);
    let page = table.query(Query::partition(Index::Primary, "T#1").descending()).await.expect("query");
    assert_eq!(sks(&page.items), ["é", "z", "b", "a#2", "a", "Z"]);
    let empty = table.query(Query::partition(Index::Primary, "T#nobody")).await.expect("query");
    assert!(empty.items.is_empty() && empty.next.is_none());
}

pub async fn query_sort_key_conditions_select_the_right_items(table: Subject) {
    seed(
        &table,
        "T#1",
        &["AGENT#1", "AGENT#2", "AGENT#3", "AGENTX", "KEY#1", "SESSION#2026-01-01", "SESSION#2026-02-01"],
    )
    .await;
    let q = |sort: SortKey| Query::partition(Index::Primary, "T#1").sort(sort);
    let cases = [
        (SortKey::Equals("AGENT#2".into()), vec!["AGENT#2"]),
        (SortKey::BeginsWith("AGENT#".into()), vec!["AGENT#1", "AGENT#2", "AGENT#3"]),
        (SortKey::BeginsWith("SESSION#2026-02".into()), vec!["SESSION#2026-02-01"]),
        (SortKey::Between("AGENT#2".into(), "KEY#1".into()), vec!["AGENT#2", "AGENT#3", "AGENTX", "KEY#1"]),
        (SortKey::LessThan("AGENT#2".into()), vec!["AGENT#1"]),
        (SortKey::LessOrEqual("AGENT#2".into()), vec!["AGENT#1", "AGENT#2"]),
        (SortKey::GreaterThan("KEY#1".into()), vec!["SESSION#2026-01-01", "SESSION#2026-02-01"]),
        (SortKey::GreaterOrEqual("SESSION#2026-02-01".into()), vec!["SESSION#2026-02-01"]),
    ];
    for (sort, expected) in cases {
        let page = table.query(q(sort.clone())).await.expect("query");
        assert_eq!(sks(&page.items), expected, "{sort:?}");
    }
}

pub async fn pages_return_every_item_exactly_once(table: Subject) {
    let all: Vec<String> = (0..23).map(|i| format!("TURN#{i:04}")).collect();
    seed(&table, "S#1", &all.iter().map(String::as_str).collect::<Vec<_>>()).await;
    for limit in [1, 5, 23, 100] {
        let (items, pages) = collect(&table, Query::partition(Index::Primary, "S#1").limit(limit)).await;
        assert_eq!(sks(&items), all, "limit {limit}");
        assert_eq!(pages, all.len().div_ceil(limit).max(1), "limit {limit}: no empty trailing page");
        let (items, _) = collect(&table, Query::partition(Index::Primary, "S#1").limit(limit).descending()).await;
        let mut reversed = all.clone();
        reversed.reverse();
        assert_eq!(sks(&items), reversed, "limit {limit} descending");
    }
    let (items, _) = collect(
        &table,
        Query::partition(Index::Primary, "S#1").sort(SortKey::GreaterThan("TURN#0019".into())).limit(2),
    )
    .await;
    assert_eq!(sks(&items), ["TURN#0020", "TURN#0021", "TURN#0022"]);
}

pub async fn secondary_indexes_are_sparse_and_paginate(table: Subject) {
    for i in 0..9 {
        let mut item = Item::new(key(&format!("SESSION#{i}"), "META")).with("n", i);
        if i % 3 != 0 {
            // Two sessions share each start time: ties must still page exactly once.
            item = item.in_index(Index::Gsi1, "AGENT#1", format!("2026-01-0{}", i / 2));
        }
        if i == 4 {
            item = item.in_index(Index::Gsi2, "TENANT#1#ACTIVE", "2026");
        }
        table.put(item, None).await.expect("put");
    }
    table
        .put(Item::new(key("SESSION#x", "META")).with("gsi1pk", "AGENT#1"), None)
        .await
        .expect("an item with half an index key is stored but not indexed");
    let (items, _) = collect(&table, Query::partition(Index::Gsi1, "AGENT#1").limit(2)).await;
    let mut ns: Vec<i64> = items.iter().map(|i| i.i64("n").expect("n")).collect();
    let starts: Vec<String> = items.iter().map(|i| i.index_key(Index::Gsi1).expect("indexed").1.to_owned()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "ascending by index sort key: {starts:?}");
    ns.sort();
    assert_eq!(ns, [1, 2, 4, 5, 7, 8]);
    let (items, _) = collect(&table, Query::partition(Index::Gsi1, "AGENT#1").descending().limit(4)).await;
    assert_eq!(items.len(), 6);
    let active = table.query(Query::partition(Index::Gsi2, "TENANT#1#ACTIVE")).await.expect("query");
    assert_eq!(active.items.iter().map(|i| i.key().pk).collect::<Vec<_>>(), ["SESSION#4"]);

    // Leaving an index: removing its keys takes the item out.
    table
        .update(&key("SESSION#4", "META"), Update::new().remove("gsi2pk").remove("gsi2sk"), None)
        .await
        .expect("update");
    let active = table.query(Query::partition(Index::Gsi2, "TENANT#1#ACTIVE")).await.expect("query");
    assert!(active.items.is_empty());

    // Every secondary index, alike: an item moved from one partition to another by an
    // update is found in the new one only, ordered, with cursors that page it.
    for index in Index::SECONDARY {
        let (pk, sk) = index.key_names();
        for i in 0..5 {
            let item = Item::new(key(&format!("MOVE#{i}"), "META")).in_index(index, "LIVE", format!("{i:03}"));
            table.put(item, None).await.expect("put");
        }
        for i in [1, 3] {
            let update = Update::new().set(pk, "ENDED").set(sk, format!("{:03}", 10 - i));
            table.update(&key(&format!("MOVE#{i}"), "META"), update, None).await.expect("moved");
        }
        let (live, _) = collect(&table, Query::partition(index, "LIVE").limit(2)).await;
        let live: Vec<String> = live.iter().map(|i| i.key().pk).collect();
        assert_eq!(live, ["MOVE#0", "MOVE#2", "MOVE#4"], "{index:?}");
        let (ended, _) =
            collect(&table, Query::partition(index, "ENDED").sort(SortKey::LessThan("008".into())).limit(1)).await;
        let ended: Vec<String> = ended.iter().map(|i| i.key().pk).collect();
        assert_eq!(ended, ["MOVE#3"], "{index:?}");
        for i in 0..5 {
            table.delete(&key(&format!("MOVE#{i}"), "META"), None).await.expect("delete");
        }
    }
}

pub async fn cursors_only_continue_their_own_partition(table: Subject) {
    seed(&table, "T#1", &["a", "b", "c"]).await;
    seed(&table, "T#2", &["a", "b", "c"]).await;
    let page = table.query(Query::partition(Index::Primary, "T#1").limit(1)).await.expect("query");
    let cursor = page.next.expect("more follow");
    let stolen = table.query(Query::partition(Index::Primary, "T#2").limit(1).after(Some(cursor))).await;
    assert!(matches!(stolen, Err(TableError::InvalidCursor)), "{stolen:?}");
    let forged = Cursor::encode(&CursorKey { table: key("T#2", "a"), index: None });
    let forged = table.query(Query::partition(Index::Primary, "T#1").after(Some(forged))).await;
    assert!(matches!(forged, Err(TableError::InvalidCursor)));
    let garbage =
        table.query(Query::partition(Index::Primary, "T#1").after(Some(Cursor::from_client("not a cursor")))).await;
    assert!(matches!(garbage, Err(TableError::InvalidCursor)));
}

pub async fn expired_items_are_absent_for_every_operation(table: Subject) {
    let past = now_epoch() - 10;
    let future = now_epoch() + 3600;
    let gone = key("T#1", "IDEMPOTENCY#1");
    table
        .put(Item::new(gone.clone()).with("count", 7).expiring_at(past).in_index(Index::Gsi1, "G#1", "x"), None)
        .await
        .expect("put");
    table.put(Item::new(key("T#1", "LIVE")).expiring_at(future), None).await.expect("put");
    assert_eq!(table.get(&gone).await.expect("get"), None);
    let page = table.query(Query::partition(Index::Primary, "T#1")).await.expect("query");
    assert_eq!(sks(&page.items), ["LIVE"]);
    let page = table.query(Query::partition(Index::Gsi1, "G#1")).await.expect("query");
    assert!(page.items.is_empty());
    let refused = table.update(&gone, Update::new().set("a", 1), Some(Condition::Exists)).await;
    assert!(matches!(refused, Err(TableError::ConditionFailed { .. })), "an expired item does not exist");
    let fresh = table.update(&gone, Update::new().add("count", 1), None).await.expect("update");
    assert_eq!((fresh.i64("count"), fresh.expires_at()), (Some(1), None), "an update starts afresh");

    let gone = key("T#1", "IDEMPOTENCY#2");
    table.put(Item::new(gone.clone()).expiring_at(past), None).await.expect("put");
    table.put(Item::new(gone.clone()).with("again", true), Some(Condition::NotExists)).await.expect("put if absent");
    let gone = key("T#1", "IDEMPOTENCY#3");
    table.put(Item::new(gone.clone()).with("status", "x").expiring_at(past), None).await.expect("put");
    let refused = table.put(Item::new(gone.clone()), Some(Condition::equals("status", "x"))).await;
    assert!(matches!(refused, Err(TableError::ConditionFailed { .. })));
}

pub async fn transactions_apply_every_write(table: Subject) {
    table.put(Item::new(key("T#1", "AGENT#1")).with("status", "active").with("keys", 1), None).await.expect("put");
    table.put(Item::new(key("T#1", "OLD")), None).await.expect("put");
    let writes_and = |check: Write| {
        vec![
            Write::Put {
                item: Item::new(key("KEY#hash", "KEY")).with("tenant", "T#1"),
                condition: Some(Condition::NotExists),
            },
            Write::Update {
                key: key("T#1", "AGENT#1"),
                update: Update::new().add("keys", 1),
                condition: Some(Condition::equals("status", "active")),
            },
            Write::Delete { key: key("T#1", "OLD"), condition: Some(Condition::Exists) },
            check,
        ]
    };
    table
        .transact(writes_and(Write::Check { key: key("T#1", "AGENT#1"), condition: Condition::Exists }))
        .await
        .expect_err("checking and updating one item in one transaction is refused");
    table
        .transact(writes_and(Write::Check { key: key("T#1", "TENANT"), condition: Condition::NotExists }))
        .await
        .expect("transaction");
    assert!(table.get(&key("KEY#hash", "KEY")).await.expect("get").is_some());
    assert_eq!(table.get(&key("T#1", "AGENT#1")).await.expect("get").and_then(|i| i.i64("keys")), Some(2));
    assert_eq!(table.get(&key("T#1", "OLD")).await.expect("get"), None);
}

pub async fn a_failed_transaction_writes_nothing_and_names_the_write(table: Subject) {
    table.put(Item::new(key("T#1", "AGENT#1")).with("status", "paused"), None).await.expect("put");
    let result = table
        .transact(vec![
            Write::Put { item: Item::new(key("KEY#hash", "KEY")), condition: Some(Condition::NotExists) },
            Write::Update { key: key("T#1", "COUNT"), update: Update::new().add("n", 1), condition: None },
            Write::Check { key: key("T#1", "AGENT#1"), condition: Condition::equals("status", "active") },
        ])
        .await;
    assert!(matches!(result, Err(TableError::ConditionFailed { write: Some(2) })), "{result:?}");
    assert_eq!(table.get(&key("KEY#hash", "KEY")).await.expect("get"), None);
    assert_eq!(table.get(&key("T#1", "COUNT")).await.expect("get"), None);
}

pub async fn transactions_are_validated(table: Subject) {
    assert!(matches!(table.transact(vec![]).await, Err(TableError::Invalid(_))));
    let many: Vec<_> =
        (0..101).map(|i| Write::Put { item: Item::new(key("T#1", &format!("I#{i}"))), condition: None }).collect();
    assert!(matches!(table.transact(many).await, Err(TableError::Invalid(_))));
    let page = table.query(Query::partition(Index::Primary, "T#1")).await.expect("query");
    assert!(page.items.is_empty(), "nothing of a refused transaction is written");
}

pub async fn records_round_trip_through_items(table: Subject) {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Agent {
        name: String,
        kinds: Vec<String>,
        greeting: Option<String>,
    }
    let agent = Agent { name: "Front desk".into(), kinds: vec!["text".into(), "voice".into()], greeting: None };
    table.put(Item::from_record(key("T#1", "AGENT#1"), &agent).expect("record"), None).await.expect("put");
    let back: Agent = table.get(&key("T#1", "AGENT#1")).await.expect("get").expect("present").record().expect("decode");
    assert_eq!(back, agent);
}

/// Declares one `#[tokio::test]` per contract case for an adapter; the test names are
/// the adapter's module followed by the case.
#[macro_export]
macro_rules! table_contract {
    ($factory:path) => {
        $crate::contract_cases!(
            $factory,
            table,
            [
                put_then_get_returns_every_json_type,
                get_of_a_missing_item_is_none,
                put_replaces_the_whole_item,
                put_if_absent_refuses_an_existing_item_and_keeps_it,
                attribute_conditions_are_judged_like_dynamodb,
                update_creates_an_absent_item_and_returns_the_new_state,
                update_guarded_by_exists_refuses_an_absent_item,
                concurrent_increments_are_all_counted,
                only_one_of_concurrent_conditional_puts_wins,
                invalid_updates_and_items_are_refused_before_writing,
                delete_removes_and_deleting_nothing_is_fine,
                query_returns_one_partition_in_byte_order,
                query_sort_key_conditions_select_the_right_items,
                pages_return_every_item_exactly_once,
                secondary_indexes_are_sparse_and_paginate,
                cursors_only_continue_their_own_partition,
                expired_items_are_absent_for_every_operation,
                transactions_apply_every_write,
                a_failed_transaction_writes_nothing_and_names_the_write,
                transactions_are_validated,
                records_round_trip_through_items,
            ]
        );
    };
}
