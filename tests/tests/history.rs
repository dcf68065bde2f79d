//! The history and the analytics: a few hundred varied sessions are searched with every
//! filter and sort (alone and combined), paged with cursors, and each answer is checked
//! against the same search done by hand; CSV and JSON exports hold the same; sessions that
//! end for real (by the customer, by the idle sweeper) enter the history and the analytics.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{Duration as Span, Utc};
use oratio::Config;
use oratio_core::conversations::{ConversationSettings, Session};
use oratio_core::ids::{AgentId, TenantId};
use oratio_local::sqlite::SqliteTable;
use oratio_tests::history;
use oratio_tests::platform::{TestPlatform, test_config};
use reqwest::Method;
use serde_json::{Value, json};

/// Every page of `query`, seven at a time: the session ids in order.
async fn all_pages(p: &TestPlatform, token: &str, query: &str) -> Vec<String> {
    let (mut ids, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let mut path = format!("/v1/sessions?status=ended&limit=7&{query}");
        if let Some(c) = &cursor {
            path += &format!("&cursor={c}");
        }
        let page = p.get_json(&path, Some(token)).await;
        let sessions = page["sessions"].as_array().unwrap_or_else(|| panic!("{path}: {page}"));
        ids.extend(sessions.iter().map(|s| s["session_id"].as_str().expect("id").to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn filters_combine_sort_and_page_over_a_varied_history() {
    let config = Config {
        conversations: ConversationSettings {
            idle: Duration::from_millis(400),
            sweep_every: Duration::from_millis(200),
            ..ConversationSettings::default()
        },
        ..test_config()
    };
    let p = TestPlatform::start_in(tempfile::tempdir().expect("a directory"), config).await;
    let admin = p.sign_up("lead@northwind.example.com", "Northwind Bikes").await;
    let token = admin.access_token.as_str();
    let agents: Vec<AgentId> = [p.create_agent(token, "Shop").await, p.create_agent(token, "Workshop").await]
        .iter()
        .map(|a| a.parse().expect("an agent id"))
        .collect();
    let tenant: TenantId = admin.tenant_id.parse().expect("a tenant id");
    let since = Utc::now() - Span::days(40);
    let seeded = history::sessions(&tenant, &agents, 0..320, since, Span::minutes(170));
    let table = SqliteTable::open(p.data_path().join("table.sqlite3")).expect("the platform's table");
    history::store(&table, &seeded).await;

    let day = |days: i64| (since + Span::days(days)).format("%Y-%m-%d").to_string();
    let (a0, a1) = (agents[0].to_string(), agents[1].to_string());
    type Check = Box<dyn Fn(&Session) -> bool>;
    let reason = |r: &'static str| -> Check { Box::new(move |s: &Session| s.end_reason.as_deref() == Some(r)) };
    let cases: Vec<(String, Check)> = vec![
        (String::new(), Box::new(|_| true)),
        (
            format!("agent_id={a0}"),
            Box::new({
                let a = agents[0].clone();
                move |s| s.agent_id == a
            }),
        ),
        ("channel=voice".into(), Box::new(|s| s.channel == "voice")),
        ("handoff=yes".into(), Box::new(|s| s.handoff_reason.is_some())),
        ("handoff=no&channel=phone".into(), Box::new(|s| s.handoff_reason.is_none() && s.channel == "phone")),
        ("outcome=refunded".into(), Box::new(|s| s.handoff_outcome.as_deref() == Some("Refunded"))),
        ("end_reason=idle".into(), reason("idle")),
        ("customer=cust-007".into(), Box::new(|s| s.customer.id.as_deref() == Some("cust-007"))),
        (format!("from={}&to={}", day(10), day(19)), {
            let (lo, hi) = (since + Span::days(10), since + Span::days(20));
            let (lo, hi) = (
                lo.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc(),
                hi.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc(),
            );
            Box::new(move |s| s.started_at >= lo && s.started_at < hi)
        }),
        (format!("agent_id={a1}&channel=text&handoff=yes&from={}", day(5)), {
            let (a, lo) =
                (agents[1].clone(), (since + Span::days(5)).date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc());
            Box::new(move |s| {
                s.agent_id == a && s.channel == "text" && s.handoff_reason.is_some() && s.started_at >= lo
            })
        }),
        (format!("customer=cust-012&agent_id={a0}&end_reason=customer"), {
            let a = agents[0].clone();
            Box::new(move |s| {
                s.customer.id.as_deref() == Some("cust-012")
                    && s.agent_id == a
                    && s.end_reason.as_deref() == Some("customer")
            })
        }),
    ];
    for (query, wanted) in &cases {
        for (sort, order) in [("started", "desc"), ("started", "asc"), ("duration", "desc"), ("duration", "asc")] {
            if query.contains("customer=") && sort == "duration" {
                continue;
            }
            let mut expected: Vec<&Session> = seeded.iter().filter(|s| wanted(s)).collect();
            match sort {
                "started" => expected.sort_by_key(|s| (s.started_at, s.session_id.to_string())),
                _ => expected.sort_by_key(|s| (s.duration_ms, s.session_id.to_string())),
            }
            if order == "desc" {
                expected.reverse();
            }
            let expected: Vec<String> = expected.iter().map(|s| s.session_id.to_string()).collect();
            let got = all_pages(&p, token, &format!("{query}&sort={sort}&order={order}")).await;
            assert_eq!(got, expected, "{query} sorted by {sort} {order}");
        }
    }
    // The filters narrow for real: none of these is everything or nothing.
    for (query, wanted) in cases.iter().skip(1) {
        let n = seeded.iter().filter(|s| wanted(s)).count();
        assert!(n > 0 && n < seeded.len(), "{query} matches {n} of {}", seeded.len());
    }

    // The CSV export holds the filtered history, one row per session.
    let csv = p
        .request(Method::GET, "/v1/sessions?status=ended&handoff=yes&format=csv", Some(token))
        .send()
        .await
        .expect("csv");
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-disposition"].to_str().unwrap().contains("sessions.csv"));
    let text = csv.text().await.expect("text");
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(&rows.headers().expect("a header")[10], "handoff_reason");
    let exported: BTreeSet<String> = rows.records().map(|r| r.expect("a row")[0].to_owned()).collect();
    let handed: BTreeSet<String> =
        seeded.iter().filter(|s| s.handoff_reason.is_some()).map(|s| s.session_id.to_string()).collect();
    assert_eq!(exported, handed);
    assert!(text.contains("O'Brien") && text.contains("Jürgen"), "names are kept whole");

    // What clients send untidily: an offset's `+` unencoded (a space), an empty outcome.
    let since_day = day(10);
    let spaced = all_pages(&p, token, &format!("from={since_day}T00:00:00 00:00")).await;
    assert_eq!(spaced, all_pages(&p, token, &format!("from={since_day}")).await);
    assert_eq!(all_pages(&p, token, "handoff=yes&outcome=").await, all_pages(&p, token, "handoff=yes").await);

    // Bad queries get their error.
    for query in [
        "status=ended&sort=length",
        "status=ended&from=yesterday",
        "status=ended&from=2026-12-02&to=2026-11-01",
        "status=ended&customer=cust-001&sort=duration",
        "status=ended&handoff=no&outcome=Refunded",
        "status=closed",
        "channel=voice",
        "status=ended&format=xml",
    ] {
        let refused = p.request(Method::GET, &format!("/v1/sessions?{query}"), Some(token)).send().await.expect("get");
        assert_eq!(refused.status(), 400, "{query}");
        let body: Value = refused.json().await.expect("json");
        assert!(body["code"].is_string() && body["request_id"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn sessions_that_end_for_real_enter_the_history_and_the_analytics() {
    let config = Config {
        conversations: ConversationSettings {
            idle: Duration::from_millis(600),
            sweep_every: Duration::from_millis(200),
            ..ConversationSettings::default()
        },
        ..test_config()
    };
    let p = TestPlatform::start_in(tempfile::tempdir().expect("a directory"), config).await;
    let admin = p.sign_up("ops@harbourdental.example.com", "Harbour Dental").await;
    let token = admin.access_token.as_str();
    let agent = p.create_active_agent(token, "Reception").await;
    let (_, key) = p.create_key(token, &agent).await;

    // One customer asks and leaves; another wants their money back; a third goes quiet.
    let (_, asked) = p
        .message(&key, &agent, json!({"message": "do you open on saturday mornings?", "customer": {"id": "c-1"}}))
        .await;
    let first = asked["session_id"].as_str().expect("a session").to_owned();
    let ended = p
        .request(Method::POST, &format!("/v1/agents/{agent}/sessions/{first}/end"), None)
        .header("x-api-key", &key)
        .send()
        .await
        .expect("end");
    assert_eq!(ended.status(), 200);
    let (_, angry) = p.message(&key, &agent, json!({"message": "You billed me twice for the cleaning and I want my money back now.", "customer": {"id": "c-2"}})).await;
    assert_eq!(angry["status"], "handoff_requested", "{angry}");
    let second = angry["session_id"].as_str().expect("a session").to_owned();
    let (_, quiet) = p.message(&key, &agent, json!({"message": "hello?", "customer": {"id": "c-3"}})).await;
    let third = quiet["session_id"].as_str().expect("a session").to_owned();

    // The sweeper ends the quiet ones; they are in the history, ended `idle`.
    let mut ended_idle = Vec::new();
    for _ in 0..100 {
        let page = p.get_json("/v1/sessions?status=ended&end_reason=idle", Some(token)).await;
        ended_idle = page["sessions"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|s| s["session_id"].as_str().unwrap().to_owned())
            .collect();
        if ended_idle.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ended_idle.iter().collect::<BTreeSet<_>>(),
        [&second, &third].into_iter().collect(),
        "swept: {ended_idle:?}"
    );
    assert_eq!(p.get_json("/v1/sessions?status=active", Some(token)).await["sessions"], json!([]));
    let by_customer = p.get_json("/v1/sessions?status=ended&customer=c-1", Some(token)).await;
    assert_eq!(by_customer["sessions"][0]["session_id"], first.as_str());
    assert_eq!(by_customer["sessions"][0]["end_reason"], "customer");
    assert!(by_customer["sessions"][0]["duration_ms"].is_u64(), "{by_customer}");

    // The handoff's outcome reaches the session, and the history's filter.
    let notes = p.get_json("/v1/notifications", Some(token)).await;
    let note = notes["notifications"][0]["notification_id"].as_str().expect("a notification").to_owned();
    let resolved =
        p.post_json(&format!("/v1/notifications/{note}/resolve"), Some(token), json!({"outcome": "Refunded"})).await;
    assert_eq!(resolved.status(), 200);
    let refunded = p.get_json("/v1/sessions?status=ended&outcome=refunded", Some(token)).await;
    assert_eq!(refunded["sessions"][0]["session_id"], second.as_str(), "{refunded}");
    assert_eq!(refunded["sessions"][0]["handoff_outcome"], "Refunded");

    // One session as a JSON file: metadata and the whole transcript.
    let file = p
        .request(Method::GET, &format!("/v1/sessions/{second}/messages?download=true"), Some(token))
        .send()
        .await
        .expect("get");
    assert!(file.headers()["content-disposition"].to_str().unwrap().contains(&format!("session-{second}.json")));
    let record: Value = file.json().await.expect("json");
    assert_eq!(record["session"]["handoff_reason"], angry["handoff"]["reason"]);
    assert!(record["turns"][1]["latency_ms"].is_u64(), "{record}");

    // The analytics count the three, from their rollups.
    let report = p.get_json("/v1/analytics", Some(token)).await;
    assert_eq!(report["sessions"], 3, "{report}");
    assert_eq!(report["by_channel"]["text"], 3);
    assert_eq!(report["handoffs"], 1);
    assert_eq!(report["containment_rate"], 0.667);
    assert_eq!(report["end_reasons"]["idle"], 2);
    assert!(report["p50_latency_ms"].is_u64() && report["average_duration_ms"].is_u64(), "{report}");
    assert_eq!(report["top_handoff_reasons"][0]["count"], 1);
    assert!(report["unanswered"][0]["question"].as_str().is_some_and(|q| q.contains("money back")), "{report}");
    let today = Utc::now().format("%Y-%m-%d").to_string();
    let last = report["days"].as_array().expect("days").last().expect("today").clone();
    assert_eq!((last["date"].as_str(), last["sessions"].as_u64()), (Some(today.as_str()), Some(3)));
    assert_eq!(report["days"].as_array().unwrap().len(), 30);
    let of_agent = p.get_json(&format!("/v1/analytics?agent_id={agent}&from={today}&to={today}"), Some(token)).await;
    assert_eq!(of_agent["sessions"], 3, "{of_agent}");
    for query in ["from=2026-13-01", "from=2026-12-05&to=2026-12-01", "from=2024-01-01&to=2026-01-01"] {
        let refused = p.request(Method::GET, &format!("/v1/analytics?{query}"), Some(token)).send().await.expect("get");
        assert_eq!(refused.status(), 400, "{query}");
    }
}
