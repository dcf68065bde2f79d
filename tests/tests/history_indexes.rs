//! No request path scans: every history filter and sort, the live list, the idle
//! sweeper's round and the analytics run against DynamoDB (moto, with its request
//! recorder on) and against SQLite on the same seeded sessions. They agree, and the
//! recording holds only `Query` requests with a key condition, on the index each needs —
//! never a `Scan`. (SQLite's side: the query plans in `shared/local/src/sqlite.rs`'s tests.)

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{Duration as Span, Utc};
use oratio_aws::dynamodb::DynamoTable;
use oratio_core::analytics;
use oratio_core::conversations as conv;
use oratio_core::history::{self, HandoffFilter, HistoryFilter, SortBy};
use oratio_core::ids::{AgentId, TenantId};
use oratio_core::table::Table;
use oratio_local::sqlite::SqliteTable;
use oratio_tests::{history as seed, moto};
use serde_json::Value;

async fn every_page(table: &dyn Table, tenant: &TenantId, filter: &HistoryFilter) -> Vec<String> {
    let (mut ids, mut cursor) = (Vec::new(), None);
    loop {
        let (sessions, next) = history::list(table, tenant, filter, 9, cursor).await.expect("a page");
        ids.extend(sessions.into_iter().map(|s| s.session_id.to_string()));
        match next {
            Some(next) => cursor = Some(next),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_live_sweep_and_analytics_only_query_their_indexes_on_both_stores() {
    let recording = tempfile::NamedTempFile::new().expect("a file");
    let server = moto::own_server(&[
        ("MOTO_ENABLE_RECORDING", "True".into()),
        ("MOTO_RECORDER_FILEPATH", recording.path().display().to_string()),
    ]);
    let config = moto::test_config(Some(&server.endpoint)).await;
    let client = oratio_aws::dynamodb_client(&config);
    DynamoTable::create_table(&client, "oratio-history").await.expect("a table");
    let dynamo: Arc<dyn Table> = Arc::new(DynamoTable::new(client, "oratio-history"));
    let dir = tempfile::tempdir().expect("a directory");
    let sqlite: Arc<dyn Table> = Arc::new(SqliteTable::open(dir.path().join("t.sqlite3")).expect("sqlite"));

    let tenant = TenantId::generate();
    let agents = [AgentId::generate(), AgentId::generate()];
    let since = Utc::now() - Span::days(20);
    let sessions = seed::sessions(&tenant, &agents, 0..160, since, Span::hours(3));
    for table in [&dynamo, &sqlite] {
        seed::store(table.as_ref(), &sessions).await;
        // Two counted in the rollups, and one still live.
        for s in &sessions[..2] {
            analytics::record(table.as_ref(), s, &[]).await.expect("counted");
        }
        conv::start(table.as_ref(), &tenant, &agents[0], "text", Default::default(), Utc::now()).await.expect("live");
    }
    std::fs::write(recording.path(), "").expect("reset the recording");

    let filters = [
        HistoryFilter::default(),
        HistoryFilter { agent: Some(agents[0].clone()), from: Some(since + Span::days(3)), ..Default::default() },
        HistoryFilter { sort: SortBy::Duration, channel: Some("voice".into()), ..Default::default() },
        HistoryFilter {
            sort: SortBy::Duration,
            ascending: true,
            handoff: Some(HandoffFilter::Yes),
            ..Default::default()
        },
        HistoryFilter { customer: Some("cust-004".into()), to: Some(since + Span::days(19)), ..Default::default() },
        HistoryFilter {
            handoff: Some(HandoffFilter::Outcome("refunded".into())),
            ascending: true,
            ..Default::default()
        },
    ];
    for filter in &filters {
        let (on_dynamo, on_sqlite) =
            (every_page(dynamo.as_ref(), &tenant, filter).await, every_page(sqlite.as_ref(), &tenant, filter).await);
        assert!(!on_sqlite.is_empty(), "{filter:?} finds something");
        assert_eq!(on_dynamo, on_sqlite, "{filter:?}");
    }
    for table in [&dynamo, &sqlite] {
        let (live, _) =
            conv::live(table.as_ref(), &tenant, 50, None, Duration::from_secs(60), Utc::now()).await.expect("live");
        assert_eq!(live.len(), 1);
        let idle = conv::idle_sessions(table.as_ref(), Duration::ZERO, Utc::now()).await.expect("the sweeper's round");
        assert_eq!(idle.len(), 1);
        let day = sessions[0].started_at.date_naive();
        let report = analytics::report(table.as_ref(), &tenant, None, day - Span::days(1), day + Span::days(1))
            .await
            .expect("report");
        assert_eq!(report.sessions, 2);
    }

    // What DynamoDB was asked: queries with key conditions, on the indexes, and nothing else.
    let text = std::fs::read_to_string(recording.path()).expect("the recording");
    let mut indexes = BTreeSet::new();
    let mut queries = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).expect("a recorded request");
        let headers = entry["headers"].as_object().expect("headers");
        let target = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target")).and_then(|(_, v)| v.as_str());
        let Some(target) = target else { continue };
        assert!(!target.ends_with(".Scan"), "a scan was sent: {line}");
        if target.ends_with(".Query") {
            let raw = entry["body"].as_str().expect("a body");
            let body = if entry["body_encoded"] == true {
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(raw).expect("base64"))
                    .expect("utf-8")
            } else {
                raw.to_owned()
            };
            let body: Value = serde_json::from_str(&body).expect("JSON");
            assert!(body["KeyConditionExpression"].is_string(), "{body}");
            indexes.insert(body["IndexName"].as_str().unwrap_or("table").to_owned());
            queries += 1;
        } else {
            assert!(target.ends_with(".GetItem"), "only queries and reads: {target}");
        }
    }
    assert!(queries > 20, "{queries} queries recorded");
    assert_eq!(indexes, ["gsi1", "gsi2", "gsi3", "gsi4", "table"].map(String::from).into_iter().collect());
}
