//! Handoff notifications end to end on the embedded platform: a customer who wants what
//! only a person can give is handed over; the handoff is a stored notification, emailed to
//! the tenant's people with a link, unread until an operator acknowledges it (who, when,
//! how long after), and closed with its outcome.

use oratio_tests::platform::TestPlatform;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn a_handoff_is_a_notification_that_is_mailed_acknowledged_and_resolved() {
    let p = TestPlatform::start().await;
    let admin = p.sign_up("lead@smile.example.com", "Smile Dental").await;
    let token = admin.access_token.as_str();
    let agent = p.create_active_agent(token, "Front desk").await;
    let (_, key) = p.create_key(token, &agent).await;

    // A quiet conversation leaves nothing to read.
    let (status, calm) = p.message(&key, &agent, json!({"message": "Hi, what are your opening hours?"})).await;
    assert_eq!(status, 200, "{calm}");
    let unread = p.get_json("/v1/notifications", Some(token)).await;
    assert_eq!(unread["notifications"], json!([]), "{unread}");

    // A customer who wants their money back, in their words.
    let (status, reply) = p
        .message(
            &key,
            &agent,
            json!({"message": "The filling fell out after two days. I paid 120 euros and I want that money back, please.",
                "customer": {"name": "Ruth Okafor"}}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"], "handoff_requested", "{reply}");
    let session = reply["session_id"].as_str().expect("a session");

    let unread = p.get_json("/v1/notifications", Some(token)).await;
    let listed = unread["notifications"].as_array().expect("a list");
    assert_eq!(listed.len(), 1, "{unread}");
    let notification = &listed[0];
    assert_eq!(notification["status"], "unread");
    assert_eq!(
        (notification["session_id"].as_str(), notification["agent_id"].as_str()),
        (Some(session), Some(&*agent))
    );
    assert_eq!(notification["channel"], "text");
    assert!(notification["reason"].as_str().is_some_and(|r| !r.is_empty()), "{notification}");
    let id = notification["notification_id"].as_str().expect("an id").to_owned();

    // The tenant's admin is told by email, with a link to the conversation.
    let outbox = p.get_json(&format!("/local/outbox?to={}", admin.email), None).await;
    let mail = outbox["mails"]
        .as_array()
        .expect("mails")
        .iter()
        .find(|m| m["subject"].as_str().is_some_and(|s| s.starts_with("A customer needs a person")))
        .unwrap_or_else(|| panic!("no handoff mail: {outbox}"));
    let text = mail["text"].as_str().expect("text");
    assert!(text.contains(&format!("/#/sessions/{session}")), "{text}");

    // Acknowledged: by whom, when, how long after; out of the unread list; the first stands.
    let acked = p.post_json(&format!("/v1/notifications/{id}/ack"), Some(token), json!({})).await;
    assert_eq!(acked.status(), 200);
    let acked: Value = acked.json().await.expect("json");
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["acknowledged_by"], admin.email.as_str());
    assert!(acked["acknowledged_after_ms"].as_u64().is_some(), "{acked}");
    assert_eq!(p.get_json("/v1/notifications", Some(token)).await["notifications"], json!([]));
    let again: Value =
        p.post_json(&format!("/v1/notifications/{id}/ack"), Some(token), json!({})).await.json().await.expect("json");
    assert_eq!(again["acknowledged_at"], acked["acknowledged_at"]);

    // Resolved with an outcome; bad outcomes and a second resolution are refused.
    for (body, code) in [(json!({}), 400), (json!({"outcome": "   "}), 409), (json!({"outcome": "x".repeat(501)}), 409)]
    {
        let refused = p.post_json(&format!("/v1/notifications/{id}/resolve"), Some(token), body).await;
        assert_eq!(refused.status(), code);
        let error: Value = refused.json().await.expect("json");
        assert!(error["code"].is_string() && error["request_id"].is_string(), "{error}");
    }
    let outcome = "Called Ruth back; refund of 120 euros approved.";
    let resolved =
        p.post_json(&format!("/v1/notifications/{id}/resolve"), Some(token), json!({"outcome": outcome})).await;
    assert_eq!(resolved.status(), 200);
    let resolved: Value = resolved.json().await.expect("json");
    assert_eq!((resolved["status"].as_str(), resolved["outcome"].as_str()), (Some("resolved"), Some(outcome)));
    let twice = p.post_json(&format!("/v1/notifications/{id}/resolve"), Some(token), json!({"outcome": "again"})).await;
    assert_eq!(twice.status(), 409);
    let all = p.get_json("/v1/notifications?status=all", Some(token)).await;
    assert_eq!(all["notifications"][0]["status"], "resolved", "{all}");

    // A member who does not want the emails turns them off; the next handoff is stored
    // and listed, but not mailed to them.
    let me = format!("/v1/members/{}", admin.user_id);
    let off =
        p.request(Method::PATCH, &me, Some(token)).json(&json!({"handoff_emails": false})).send().await.expect("patch");
    assert_eq!(off.status(), 200);
    assert_eq!(off.json::<Value>().await.expect("json")["handoff_emails"], false);
    let nothing = p.request(Method::PATCH, &me, Some(token)).json(&json!({})).send().await.expect("patch");
    assert_eq!(nothing.status(), 400);
    let mails_before =
        p.get_json(&format!("/local/outbox?to={}", admin.email), None).await["mails"].as_array().map_or(0, Vec::len);
    let (_, again) = p
        .message(
            &key,
            &agent,
            json!({"message": "Honestly I'd rather talk to a human about getting a refund for my crown."}),
        )
        .await;
    assert_eq!(again["status"], "handoff_requested", "{again}");
    assert_eq!(p.get_json("/v1/notifications", Some(token)).await["notifications"].as_array().map(Vec::len), Some(1));
    let mails_after =
        p.get_json(&format!("/local/outbox?to={}", admin.email), None).await["mails"].as_array().map_or(0, Vec::len);
    assert_eq!(mails_after, mails_before, "no handoff email to a member who turned them off");

    // Bad queries and ids get the standard errors.
    let bad = p.request(Method::GET, "/v1/notifications?status=someday", Some(token)).send().await.expect("get");
    assert_eq!(bad.status(), 400);
    let unknown = p.post_json("/v1/notifications/ntf_nope/ack", Some(token), json!({})).await;
    assert_eq!(unknown.status(), 404);
    p.stop().await;
}
