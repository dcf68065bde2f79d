//! Text conversations over REST: on the running platform with an agent created from an
//! SOP (five turns that depend on each other, cited sources, SSE, every refusal leaving no
//! partial turn, 50 concurrent sessions); and on the handlers with a stand-in runtime
//! (timeouts, busy sessions, idle sessions).

use std::sync::Arc;
use std::time::Duration;

use oratio_core::agents::{self, AgentStatus, NewAgent, ProgressStep, StepStatus};
use oratio_core::llm::TextSink;
use oratio_core::runtime::{AgentAnswer, AgentCode, AgentRef, AgentRuntime, Invocation, RuntimeError, RuntimeStatus};
use oratio_functions::deps::{ConversationSettings, Deps};
use oratio_tests::fixtures::{local_auth, registered_admin};
use oratio_tests::platform::{TestPlatform, next_event, sse_events};
use reqwest::Method;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn transcript(p: &TestPlatform, token: &str, agent: &str, session: &Value) -> Value {
    p.get_json(&format!("/v1/agents/{agent}/sessions/{}", session.as_str().expect("a session id")), Some(token)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_turn_conversation_remembers_cites_its_documents_and_streams() {
    let p = TestPlatform::start().await;
    let ada = p.sign_up("ada@example.com", "Bright Smile").await;
    let agent = p.create_active_agent(&ada.access_token, "Front desk").await;
    let (_, key) = p.create_key(&ada.access_token, &agent).await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(p.dashboard_socket(&ada.access_token)).await.expect("socket");

    let customer = json!({"id": "c-42", "name": "Ada", "channel": "web", "attributes": {"plan": "gold"}});
    let (status, first) = p
        .message(&key, &agent, json!({"message": "Hello, I would like to book an appointment.", "customer": customer}))
        .await;
    assert_eq!(status, 200, "{first}");
    let asks = |reply: &Value, what: &str| {
        let text = reply["reply"].as_str().unwrap_or_default().to_owned();
        assert!(text.ends_with(&format!("Could you tell me your {what}?")), "asks for {what}: {reply}");
    };
    asks(&first, "full name");
    assert_eq!((first["turn"].as_u64(), first["status"].as_str()), (Some(2), Some("active")));
    let session = first["session_id"].clone();
    let say = |message: &str| p.message(&key, &agent, json!({"message": message, "session_id": session}));
    let (_, named) = say("Ada Lovelace").await;
    asks(&named, "phone number");
    assert!(named["reply"].as_str().is_some_and(|r| r.contains("Ada Lovelace")), "read back: {named}");
    asks(&say("020 7946 0000").await.1, "preferred date");
    // A question only a document answers, in the middle of the procedure.
    let (_, hours) = say("What time do you open on Saturdays?").await;
    assert!(hours["reply"].as_str().is_some_and(|r| r.contains("9am")), "{hours}");
    assert_eq!(hours["sources"][0]["title"], "faq.md", "{hours}");
    assert_eq!(hours["sources"][0]["location"], "Opening hours");
    assert!(hours["sources"][0]["excerpt"].as_str().is_some_and(|e| e.contains("Saturdays 9am")));
    // The last answer depends on the first turns.
    let (_, confirmation) = say("Saturday the 5th").await;
    assert_eq!(
        confirmation["reply"],
        "Thank you. To confirm: full name: Ada Lovelace; phone number: 020 7946 0000; preferred date: Saturday the 5th. Is that correct?"
    );
    assert_eq!(confirmation["turn"], 10);

    // Every turn is stored, in order, with the customer's metadata.
    let stored = transcript(&p, &ada.access_token, &agent, &session).await;
    let turns = stored["turns"].as_array().expect("turns");
    assert_eq!(turns.len(), 10);
    for (i, turn) in turns.iter().enumerate() {
        assert_eq!(turn["turn"], i + 1);
        assert_eq!(turn["role"], if i % 2 == 0 { "customer" } else { "agent" });
    }
    assert_eq!(turns[0]["text"], "Hello, I would like to book an appointment.");
    assert!(turns[7]["latency_ms"].is_u64() && turns[7]["sources"][0]["title"] == "faq.md");
    assert_eq!(stored["session"]["customer"], customer);
    assert_eq!(stored["session"]["channel"], "text");
    assert_eq!(stored["session"]["turns"], 10);
    let listed = p.get_json(&format!("/v1/agents/{agent}/sessions"), Some(&ada.access_token)).await;
    assert_eq!(listed["sessions"][0]["session_id"], session);

    // One reply streamed: the session first, the reply in pieces, its sources, then `done`.
    let streamed = p
        .request(Method::POST, &format!("/v1/agents/{agent}/messages"), None)
        .header("x-api-key", &key)
        .header("accept", "text/event-stream")
        .json(&json!({"message": "Which number do I call for a dental emergency after hours?"}))
        .send()
        .await
        .expect("stream");
    assert_eq!(streamed.status(), 200);
    assert!(streamed.headers()["content-type"].to_str().expect("type").starts_with("text/event-stream"));
    let events = sse_events(&streamed.text().await.expect("body"));
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"session"));
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    assert!(names.contains(&"token") && names.contains(&"sources"), "{names:?}");
    let done = &events.last().expect("done").1;
    let tokens: String =
        events.iter().filter(|(n, _)| n == "token").map(|(_, d)| d["text"].as_str().expect("text")).collect();
    assert_eq!(tokens, done["reply"].as_str().expect("reply"));
    assert!(tokens.contains("0800 555 0199"), "{tokens}");
    assert_eq!(done["sources"][0]["title"], "emergencies.pdf");

    // The tenant's dashboard saw the conversation live.
    let mut seen = Vec::new();
    while seen.iter().filter(|t| *t == "turn.added").count() < 10 || !seen.contains(&"session.started".to_owned()) {
        let event = next_event(&mut socket).await;
        if event["session_id"] == session {
            seen.push(event["type"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(seen[0], "session.started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_messages_get_their_documented_error_and_leave_no_partial_turn() {
    let p = TestPlatform::start().await;
    let ada = p.sign_up("ada@example.com", "Bright Smile").await;
    let token = ada.access_token.as_str();
    let agent = p.create_active_agent(token, "Front desk").await;
    let (_, key) = p.create_key(token, &agent).await;
    let (_, first) = p.message(&key, &agent, json!({"message": "Hello"})).await;
    let session = first["session_id"].clone();
    let turns = async || transcript(&p, token, &agent, &session).await["turns"].as_array().expect("turns").len();
    assert_eq!(turns().await, 2);

    let mut refusals = Vec::new();
    let (revoked_id, revoked) = p.create_key(token, &agent).await;
    let revoke = p.request(Method::DELETE, &format!("/v1/agents/{agent}/keys/{revoked_id}"), Some(token));
    assert!(revoke.send().await.expect("revoke").status().is_success());
    refusals.push((
        p.message(&revoked, &agent, json!({"message": "hi", "session_id": session})).await,
        401,
        "invalid_api_key",
    ));
    let other = p.create_agent(token, "Billing").await;
    let (_, other_key) = p.create_key(token, &other).await;
    refusals.push((
        p.message(&other_key, &agent, json!({"message": "hi", "session_id": session})).await,
        403,
        "key_agent_mismatch",
    ));
    let long = "a".repeat(4001);
    refusals.push((
        p.message(&key, &agent, json!({"message": long, "session_id": session})).await,
        413,
        "message_too_long",
    ));
    refusals.push((
        p.message(&key, &agent, json!({"message": "  ", "session_id": session})).await,
        400,
        "invalid_request",
    ));
    refusals.push((p.message(&key, &agent, json!({"text": "hi", "session_id": session})).await, 400, "invalid_body"));
    let unknown = "ses_01jd8r2k6q4y1x9f3t7c5b2a0m";
    refusals.push((
        p.message(&key, &agent, json!({"message": "hi", "session_id": unknown})).await,
        404,
        "session_not_found",
    ));
    refusals.push((p.message(&other_key, &other, json!({"message": "hi"})).await, 409, "agent_not_ready"));
    let paused =
        p.request(Method::POST, &format!("/v1/agents/{agent}/pause"), Some(token)).send().await.expect("pause");
    assert_eq!(paused.status(), 200);
    refusals.push((
        p.message(&key, &agent, json!({"message": "hi", "session_id": session})).await,
        409,
        "agent_paused",
    ));
    for ((status, body), expected_status, code) in refusals {
        assert_eq!((status, body["code"].as_str()), (expected_status, Some(code)), "{body}");
        assert!(body["error"].is_string() && body["request_id"].is_string(), "{body}");
    }
    assert_eq!(turns().await, 2, "no refused message left a turn");

    // An ended session takes no more messages.
    let resumed =
        p.request(Method::POST, &format!("/v1/agents/{agent}/resume"), Some(token)).send().await.expect("resume");
    assert_eq!(resumed.status(), 200);
    // At once, while its runtime starts again, a new conversation is answered, not refused.
    let (status, body) = p.message(&key, &agent, json!({"message": "Are you open on Saturdays?"})).await;
    assert_eq!(status, 200, "{body}");
    let end = |k: &str| {
        p.request(Method::POST, &format!("/v1/agents/{agent}/sessions/{}/end", session.as_str().expect("id")), None)
            .header("x-api-key", k.to_owned())
            .send()
    };
    let ended: Value = end(&key).await.expect("end").json().await.expect("json");
    assert_eq!((ended["status"].as_str(), ended["end_reason"].as_str()), (Some("ended"), Some("customer")));
    assert_eq!(end(&key).await.expect("end").status(), 409);
    let (status, body) = p.message(&key, &agent, json!({"message": "hi", "session_id": session})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("session_ended")));
    assert_eq!(turns().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_sessions_of_ten_turns_keep_every_turn_in_order() {
    let p = TestPlatform::start().await;
    let ada = p.sign_up("ada@example.com", "Bright Smile").await;
    let token = ada.access_token.as_str();
    let agent = p.create_active_agent(token, "Front desk").await;
    let created = p
        .post_json(
            &format!("/v1/agents/{agent}/keys"),
            Some(token),
            json!({"name": "load", "rate_limit_per_minute": 10000}),
        )
        .await;
    let key = created.json::<Value>().await.expect("key")["secret"].as_str().expect("secret").to_owned();

    let conversations = (0..50).map(|n| {
        let (p, key, agent) = (&p, key.clone(), agent.clone());
        async move {
            let mut session = Value::Null;
            for turn in 0..10 {
                let mut body = json!({"message": format!("customer {n} message {turn}")});
                if !session.is_null() {
                    body["session_id"] = session.clone();
                }
                let (status, reply) = p.message(&key, &agent, body).await;
                assert_eq!(status, 200, "{reply}");
                assert_eq!(reply["turn"], 2 * turn + 2);
                session = reply["session_id"].clone();
            }
            session
        }
    });
    let sessions = futures::future::join_all(conversations).await;

    let mut counted = 0;
    for (n, session) in sessions.iter().enumerate() {
        let stored = transcript(&p, token, &agent, session).await;
        let turns = stored["turns"].as_array().expect("turns");
        for (i, turn) in turns.iter().enumerate() {
            assert_eq!(turn["turn"], i + 1);
            if i % 2 == 0 {
                assert_eq!(turn["text"], format!("customer {n} message {}", i / 2));
            } else {
                assert_eq!(turn["role"], "agent");
            }
        }
        counted += turns.len();
    }
    assert_eq!(counted, 50 * 10 * 2);
}

/// A runtime that answers after `delay`, echoing the message and the history's length,
/// and counts the invocations it has begun.
struct Scripted {
    delay: Duration,
    invoked: Arc<std::sync::atomic::AtomicUsize>,
}

impl Scripted {
    fn after(delay: Duration) -> Self {
        Self { delay, invoked: Arc::default() }
    }
}

#[async_trait::async_trait]
impl AgentRuntime for Scripted {
    async fn deploy(&self, _: &AgentRef, _: &AgentCode) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn status(&self, _: &AgentRef) -> Result<RuntimeStatus, RuntimeError> {
        Ok(RuntimeStatus::Ready { version: "v1".into() })
    }

    async fn invoke(
        &self,
        _: &AgentRef,
        _: &str,
        invocation: &Invocation,
        _: Option<&TextSink<'_>>,
    ) -> Result<AgentAnswer, RuntimeError> {
        self.invoked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let answer = json!({"reply": format!("{} after {}", invocation.message, invocation.history.len()),
            "usage": {"input_tokens": 7, "output_tokens": 3}});
        AgentAnswer::parse(answer.to_string().as_bytes())
    }

    async fn stop(&self, _: &AgentRef) -> Result<(), RuntimeError> {
        Ok(())
    }
}

struct Handlers {
    router: axum::Router,
    key: String,
    agent: String,
    deps: Arc<Deps>,
    _auth: oratio_tests::fixtures::LocalAuth,
}

/// The handlers on embedded adapters with a scripted runtime.
async fn handlers(runtime: Scripted, settings: ConversationSettings) -> Handlers {
    let auth = local_auth().await;
    let (admin, _) = registered_admin(&auth, "ada@example.com", "Bright Smile").await;
    let deps = &auth.deps;
    let new = NewAgent {
        name: "Front desk".into(),
        kind: agents::AgentKind::Text,
        greeting: None,
        sop: Some(oratio_tests::fixtures::SOP.into()),
        handoff_conditions: vec![],
        voice: None,
    };
    let agent = agents::create(deps.table.as_ref(), &admin, new, vec![]).await.expect("agent");
    let step =
        ProgressStep { step: "activate".into(), status: StepStatus::Finished, at: chrono::Utc::now(), detail: None };
    agents::record_step(deps.table.as_ref(), &agent, step, Some(AgentStatus::Active), None, Some("v1"))
        .await
        .expect("active");
    let (_, secret) = oratio_core::api_keys::create(deps.table.as_ref(), &admin, &agent.agent_id, "k", Some(10_000))
        .await
        .expect("key");
    let deps = Arc::new(Deps { runtime: Arc::new(runtime), conversations: settings, ..(**deps).clone() });
    let (router, _) = oratio_functions::api_routes().split_for_parts();
    Handlers {
        router: router.with_state(deps.clone()),
        key: secret.expose().to_owned(),
        agent: agent.agent_id.to_string(),
        deps,
        _auth: auth,
    }
}

impl Handlers {
    async fn post(&self, body: Value) -> (u16, Value) {
        post(&self.router, &self.key, &self.agent, body).await
    }

    /// Every turn of the agent's only session, as (role, text).
    async fn turns(&self) -> Vec<(String, String)> {
        let table = self.deps.table.as_ref();
        let (tenant, agent) = {
            let key = oratio_core::api_keys::authenticate(table, &self.key).await.expect("key");
            (key.tenant_id, key.agent_id)
        };
        let (sessions, _) = oratio_core::conversations::list(table, &tenant, &agent, 10, None).await.expect("sessions");
        let mut all = Vec::new();
        for session in sessions {
            for turn in oratio_core::conversations::transcript(table, &session).await.expect("turns") {
                all.push((
                    serde_json::to_value(turn.role).expect("role").as_str().expect("role").to_owned(),
                    turn.text,
                ));
            }
        }
        all
    }
}

async fn post(router: &axum::Router, key: &str, agent: &str, body: Value) -> (u16, Value) {
    let request = axum::http::Request::post(format!("/v1/agents/{agent}/messages"))
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("response");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_agent_times_out_retryably_and_the_customers_turn_is_kept() {
    let settings =
        ConversationSettings { agent_timeout: Duration::from_millis(100), ..ConversationSettings::default() };
    let h = handlers(Scripted::after(Duration::from_secs(5)), settings).await;
    let (status, body) = h.post(json!({"message": "hello"})).await;
    assert_eq!((status, body["code"].as_str()), (504, Some("agent_timeout")), "{body}");
    // The customer's turn is kept.
    assert_eq!(h.turns().await, [("customer".to_owned(), "hello".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_message_while_the_first_is_answered_is_refused_not_interleaved() {
    let runtime = Scripted::after(Duration::from_secs(1));
    let invoked = runtime.invoked.clone();
    let h = handlers(runtime, ConversationSettings::default()).await;
    let (_, first) = h.post(json!({"message": "one"})).await;
    assert_eq!(first["reply"], "one after 0");
    let session = first["session_id"].clone();
    let body = |m: &str| json!({"message": m, "session_id": session});
    // "three" is sent once the agent is answering "two", so the lease is surely held.
    let (a, b) = tokio::join!(h.post(body("two")), async {
        while invoked.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        h.post(body("three")).await
    });
    assert_eq!(a.0, 200);
    assert_eq!(a.1["reply"], "two after 2", "the agent saw both earlier turns");
    assert_eq!((b.0, b.1["code"].as_str()), (409, Some("session_busy")), "{}", b.1);
    let (_, four) = h.post(body("four")).await;
    assert_eq!((four["reply"].as_str(), four["turn"].as_u64()), (Some("four after 4"), Some(6)));
    let texts: Vec<String> = h.turns().await.into_iter().map(|(_, text)| text).collect();
    assert_eq!(texts, ["one", "one after 0", "two", "two after 2", "four", "four after 4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_ends_and_refuses_further_messages() {
    let settings = ConversationSettings { idle: Duration::from_millis(200), ..ConversationSettings::default() };
    let h = handlers(Scripted::after(Duration::ZERO), settings).await;
    let (_, first) = h.post(json!({"message": "one"})).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = h.post(json!({"message": "two", "session_id": first["session_id"]})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("session_ended")), "{body}");
}
