//! Human take-over end to end on the embedded platform: a customer the agent hands over
//! is taken over by a person, who writes to them (the customer's application hears it on
//! the session's event stream, and in the answer to their next message) and hands the
//! conversation back; the agent then carries on with what the person said in its history.

use std::time::Duration;

use oratio_core::sse::Decoder;
use oratio_tests::platform::TestPlatform;
use reqwest::Method;
use serde_json::{Value, json};

/// The customer's application following a session: its events, as they come.
struct Follower {
    events: tokio::sync::mpsc::UnboundedReceiver<(String, Option<String>, Value)>,
}

impl Follower {
    async fn open(p: &TestPlatform, key: &str, agent: &str, session: &str, last_event_id: Option<u32>) -> Self {
        let mut request = p
            .request(Method::GET, &format!("/v1/agents/{agent}/sessions/{session}/events"), None)
            .header("x-api-key", key);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.expect("the stream");
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut response = response;
            let mut decoder = Decoder::default();
            let mut id = None;
            while let Ok(Some(bytes)) = response.chunk().await {
                // The decoder gives names and data; ids are read from the raw lines.
                for line in String::from_utf8_lossy(&bytes).lines() {
                    if let Some(raw) = line.strip_prefix("id:") {
                        id = Some(raw.trim().to_owned());
                    }
                }
                for event in decoder.feed(&bytes) {
                    let data = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                    let _ = tx.send((event.name, id.take(), data));
                }
            }
        });
        Self { events }
    }

    /// The next event named `name` (within 10 s), skipping others.
    async fn until(&mut self, name: &str) -> (Option<String>, Value) {
        loop {
            let (event, id, data) = tokio::time::timeout(Duration::from_secs(10), self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {name} event within 10 s"))
                .expect("the stream is open");
            if event == name {
                return (id, data);
            }
        }
    }
}

#[tokio::test]
async fn a_person_takes_a_conversation_over_writes_to_the_customer_and_hands_it_back() {
    let p = TestPlatform::start().await;
    let admin = p.sign_up("marta@cyclefix.example.com", "CycleFix").await;
    let token = admin.access_token.as_str();
    let agent = p.create_active_agent(token, "Workshop desk").await;
    let (_, key) = p.create_key(token, &agent).await;

    let (status, reply) = p
        .message(
            &key,
            &agent,
            json!({"message": "honestly the brakes squeal worse than before, I want a refund of what I paid",
                "customer": {"name": "Tomasz"}}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let session = reply["session_id"].as_str().expect("a session").to_owned();
    let takeover = format!("/v1/sessions/{session}/takeover");
    let messages = format!("/v1/sessions/{session}/messages");
    let release = format!("/v1/sessions/{session}/release");

    // Nothing is written to a conversation nobody has taken.
    for (path, body, code) in
        [(&messages, json!({"text": "hello"}), "not_taken_over"), (&release, json!({}), "not_taken_over")]
    {
        let refused = p.post_json(path, Some(token), body).await;
        assert_eq!(refused.status(), 409, "{path}");
        assert_eq!(refused.json::<Value>().await.expect("json")["code"], code);
    }

    // The customer's application follows the session from its start.
    let mut follower = Follower::open(&p, &key, &agent, &session, None).await;
    let (_, first) = follower.until("status").await;
    assert_eq!(first["status"], reply["status"], "{first}");

    let taken = p.post_json(&takeover, Some(token), json!({})).await;
    assert_eq!(taken.status(), 200);
    let taken: Value = taken.json().await.expect("json");
    assert_eq!(taken["session"]["status"], "taken_over");
    assert_eq!(taken["session"]["taken_over_by"], admin.email.as_str());
    assert_eq!(
        (taken["turn"]["role"].as_str(), taken["turn"]["author"].as_str()),
        (Some("system"), Some(&*admin.email))
    );
    let (_, status) = follower.until("status").await;
    assert_eq!(status, json!({"status": "taken_over", "taken_over_by": admin.email}));
    let again = p.post_json(&takeover, Some(token), json!({})).await;
    assert_eq!(again.status(), 409);
    assert_eq!(again.json::<Value>().await.expect("json")["code"], "already_taken_over");

    // What the person writes reaches the stream at once.
    for (body, code) in
        [(json!({"text": "  "}), 400), (json!({"txt": "hi"}), 400), (json!({"text": "é".repeat(4001)}), 413)]
    {
        assert_eq!(p.post_json(&messages, Some(token), body).await.status(), code);
    }
    let said =
        "Hi Tomasz, Marta from the workshop here. Bring the bike in tomorrow and we'll redo the brakes for free.";
    let wrote = p.post_json(&messages, Some(token), json!({"text": said})).await;
    assert_eq!(wrote.status(), 200);
    let wrote: Value = wrote.json().await.expect("json");
    let operator_turn = wrote["turn"]["turn"].as_u64().expect("a number");
    let (id, turn) = loop {
        let (id, turn) = follower.until("turn").await;
        if turn["role"] == "operator" {
            break (id, turn);
        }
    };
    assert_eq!((turn["text"].as_str(), turn["author"].as_str()), (Some(said), Some(&*admin.email)));
    assert_eq!(id, Some(operator_turn.to_string()));

    // The customer's next message is stored, is not answered by the agent, and its answer
    // carries what the person wrote since.
    let (status, held) =
        p.message(&key, &agent, json!({"message": "ok what time do you open?", "session_id": session})).await;
    assert_eq!(status, 200, "{held}");
    assert_eq!(held["status"], "taken_over");
    assert_eq!(held["reply"], "");
    let delivered: Vec<&str> =
        held["operator_messages"].as_array().expect("a list").iter().filter_map(|t| t["text"].as_str()).collect();
    assert_eq!(delivered, vec![said], "{held}");
    let later = "We open at 9.";
    assert_eq!(p.post_json(&messages, Some(token), json!({"text": later})).await.status(), 200);

    // Handed back: the agent answers again, and the answer brings what the customer had not had.
    let released = p.post_json(&release, Some(token), json!({})).await;
    assert_eq!(released.status(), 200);
    let released: Value = released.json().await.expect("json");
    assert_eq!(released["session"]["status"], "active");
    assert!(released["session"]["taken_over_by"].is_null(), "{released}");
    let (_, status) = follower.until("status").await;
    assert_eq!(status["status"], "active");
    let (status, answered) =
        p.message(&key, &agent, json!({"message": "thanks, and is parking free there?", "session_id": session})).await;
    assert_eq!(status, 200, "{answered}");
    assert!(answered["reply"].as_str().is_some_and(|r| !r.is_empty()), "{answered}");
    let delivered: Vec<&str> =
        answered["operator_messages"].as_array().expect("a list").iter().filter_map(|t| t["text"].as_str()).collect();
    assert_eq!(delivered, vec![later], "{answered}");

    // The transcript has every step with who wrote it, and the agent never spoke while the person had it.
    let transcript = p.get_json(&messages, Some(token)).await;
    let roles: Vec<(&str, Option<&str>)> = transcript["turns"]
        .as_array()
        .expect("turns")
        .iter()
        .map(|t| (t["role"].as_str().unwrap(), t["author"].as_str()))
        .collect();
    let who = Some(admin.email.as_str());
    assert_eq!(
        roles,
        vec![
            ("customer", None),
            ("agent", None),
            ("system", who),
            ("operator", who),
            ("customer", None),
            ("operator", who),
            ("system", who),
            ("customer", None),
            ("agent", None),
        ],
        "{transcript}"
    );

    // A stream opened with the last id it had gives only what came after.
    let mut resumed = Follower::open(&p, &key, &agent, &session, Some(operator_turn as u32)).await;
    let (id, next) = resumed.until("turn").await;
    assert_eq!((id.as_deref(), next["role"].as_str()), (Some(&*(operator_turn + 1).to_string()), Some("customer")));

    // Ended: the stream says so and closes; people can no longer take it.
    let ended = p
        .request(Method::POST, &format!("/v1/agents/{agent}/sessions/{session}/end"), None)
        .header("x-api-key", &key)
        .send()
        .await
        .expect("end");
    assert_eq!(ended.status(), 200);
    let (_, status) = resumed.until("status").await;
    assert_eq!(status["status"], "active", "a stream says the status first");
    let (_, status) = resumed.until("status").await;
    assert_eq!(status["status"], "ended");
    let closed = tokio::time::timeout(Duration::from_secs(5), resumed.events.recv()).await;
    assert!(matches!(closed, Ok(None)), "the stream of an ended session closes");
    let refused = p.post_json(&takeover, Some(token), json!({})).await;
    assert_eq!(refused.json::<Value>().await.expect("json")["code"], "session_ended");

    // Bad requests get their error.
    let missing = p.post_json("/v1/sessions/01JDZZZZZZZZZZZZZZZZZZZZZZ/takeover", Some(token), json!({})).await;
    assert_eq!(missing.status(), 404);
    let bad_id = p
        .request(Method::GET, &format!("/v1/agents/{agent}/sessions/{session}/events"), None)
        .header("x-api-key", &key)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .expect("request");
    assert_eq!(bad_id.status(), 400);
}
