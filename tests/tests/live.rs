//! The organization's live sessions across its agents (`GET /v1/sessions`): one query of
//! the index of sessions not ended, newest first; ended sessions leave it.

use oratio_tests::platform::TestPlatform;
use serde_json::{Value, json};

#[tokio::test]
async fn live_sessions_are_every_agents_sessions_not_ended_newest_first() {
    let p = TestPlatform::start().await;
    let admin = p.sign_up("lead@harbourvet.example.com", "Harbour Vets").await;
    let token = admin.access_token.as_str();
    let desk = p.create_active_agent(token, "Front desk").await;
    let (_, desk_key) = p.create_key(token, &desk).await;
    let billing = p.create_active_agent(token, "Billing line").await;
    let (_, billing_key) = p.create_key(token, &billing).await;
    let live = |page: Value| -> Vec<String> {
        page["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .map(|s| s["session_id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(live(p.get_json("/v1/sessions", Some(token)).await), Vec::<String>::new());

    let mut started = Vec::new();
    for (key, agent, said) in [
        (&desk_key, &desk, "hi, can I bring my dog in on saturday morning?"),
        (&desk_key, &desk, "What do you charge for a cat vaccination"),
        (&billing_key, &billing, "I think I was billed twice for Biscuit's x-ray"),
    ] {
        let (status, reply) = p.message(key, agent, json!({"message": said})).await;
        assert_eq!(status, 200, "{reply}");
        started.push(reply["session_id"].as_str().expect("a session").to_owned());
    }
    let first = &started[0];
    let ended = p
        .request(reqwest::Method::POST, &format!("/v1/agents/{desk}/sessions/{first}/end"), None)
        .header("x-api-key", &desk_key)
        .send()
        .await
        .expect("end");
    assert_eq!(ended.status(), 200);

    let page = p.get_json("/v1/sessions?status=active", Some(token)).await;
    assert_eq!(
        live(page.clone()),
        [started[2].clone(), started[1].clone()],
        "newest first, the ended one gone: {page}"
    );
    assert_eq!(page["sessions"][0]["agent_id"], billing.as_str());
    let first_page = p.get_json("/v1/sessions?limit=1", Some(token)).await;
    let cursor = first_page["next_cursor"].as_str().expect("more follow");
    let second_page = p.get_json(&format!("/v1/sessions?limit=1&cursor={cursor}"), Some(token)).await;
    assert_eq!(live(second_page), [started[1].clone()]);

    for bad in ["/v1/sessions?status=yesterday", "/v1/sessions?limit=0", "/v1/sessions?cursor=nonsense"] {
        let refused = p.request(reqwest::Method::GET, bad, Some(token)).send().await.expect("get");
        assert_eq!(refused.status(), 400, "{bad}");
        let error: Value = refused.json().await.expect("json");
        assert!(error["code"].is_string() && error["request_id"].is_string(), "{error}");
    }
    p.stop().await;
}
