//! Tenant isolation, proven route by route: every route in the OpenAPI document is either
//! attacked here by a second tenant (and by keys of other agents) or listed as public with
//! a reason. A route added without either makes this test fail.

use std::collections::BTreeSet;

use oratio_tests::platform::TestPlatform;
use reqwest::Method;
use serde_json::{Value, json};

/// Routes that hold no tenant's data, and why.
const PUBLIC: &[(&str, &str, &str)] = &[
    ("GET", "/health", "platform status only"),
    ("GET", "/openapi.json", "the API description"),
    ("POST", "/v1/auth/register", "creates a new tenant or redeems an invitation code"),
    ("POST", "/v1/auth/confirm", "acts on the email's own account"),
    ("POST", "/v1/auth/resend-code", "acts on the email's own account"),
    ("POST", "/v1/auth/login", "acts on the email's own account"),
    ("POST", "/v1/auth/refresh", "acts on the refresh token's own account"),
    ("POST", "/v1/auth/logout", "signs out the caller only (checked below)"),
    ("GET", "/local/identity/.well-known/jwks.json", "public keys"),
    ("GET", "/local/blobs/{key}", "answers only to a link the platform signed"),
    ("GET", "/local/outbox", "embedded only: the machine operator's mail catcher on loopback"),
    (
        "POST",
        "/telephony/twilio/voice",
        "answers only what the called number's own Twilio account signed (telephony.rs signs A's number with another account)",
    ),
    (
        "GET",
        "/telephony/twilio/media",
        "answers only a grant the webhook signed for one call (telephony.rs alters one)",
    ),
];

struct Tenant {
    token: String,
    tenant_id: String,
    user_id: String,
    email: String,
    agent: String,
    key_id: String,
    secret: String,
}

async fn tenant(p: &TestPlatform, email: &str, org: &str) -> Tenant {
    let account = p.sign_up(email, org).await;
    let agent = p.create_agent(&account.access_token, &format!("{org} agent")).await;
    let (key_id, secret) = p.create_key(&account.access_token, &agent).await;
    Tenant {
        token: account.access_token,
        tenant_id: account.tenant_id,
        user_id: account.user_id,
        email: email.into(),
        agent,
        key_id,
        secret,
    }
}

/// What a request from the attacker got back.
struct Answer {
    route: (String, String),
    status: u16,
    body: String,
}

#[tokio::test]
async fn a_second_tenant_reaches_nothing_of_the_first() {
    let p = TestPlatform::start().await;
    let a = tenant(&p, "ada@acme.example.com", "Acme Dental").await;
    let a_second_agent = p.create_agent(&a.token, "Acme billing").await;
    let (_, a_second_secret) = p.create_key(&a.token, &a_second_agent).await;
    let b = tenant(&p, "bob@bravo.example.com", "Bravo Clinic").await;
    // A's customer talks to A's active agent: a session of A.
    let a_live = p.create_active_agent(&a.token, "Acme front desk").await;
    let (_, a_live_key) = p.create_key(&a.token, &a_live).await;
    let (status, first) = p.message(&a_live_key, &a_live, json!({"message": "Hello"})).await;
    assert_eq!(status, 200, "{first}");
    let a_session = first["session_id"].as_str().expect("session").to_owned();
    // And one who wants a refund: a handoff notification of A.
    let (status, refund) = p
        .message(
            &a_live_key,
            &a_live,
            json!({"message": "I was charged twice for one check-up; I want a refund.", "customer": {"id": "ada-1"}}),
        )
        .await;
    assert_eq!((status, refund["status"].as_str()), (200, Some("handoff_requested")), "{refund}");
    // It ends: A has a history, and analytics.
    let refund_session = refund["session_id"].as_str().expect("session");
    let ended = p
        .request(Method::POST, &format!("/v1/agents/{a_live}/sessions/{refund_session}/end"), None)
        .header("x-api-key", &a_live_key)
        .send()
        .await
        .expect("end");
    assert_eq!(ended.status(), 200);
    let a_history = p.get_json("/v1/sessions?status=ended&customer=ada-1", Some(&a.token)).await;
    assert_eq!(a_history["sessions"][0]["session_id"], refund_session, "{a_history}");
    let a_notes = p.get_json("/v1/notifications", Some(&a.token)).await;
    let a_notification = a_notes["notifications"][0]["notification_id"].as_str().expect("a notification").to_owned();

    let mut answers = Vec::new();
    let mut send = async |method: Method,
                          template: &str,
                          path: String,
                          token: Option<&str>,
                          key: Option<&str>,
                          body: Option<Value>| {
        let mut request = p.request(method.clone(), &path, token);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let answer = Answer {
            route: (method.to_string(), template.to_owned()),
            status: response.status().as_u16(),
            body: response.text().await.expect("body"),
        };
        answers.push(answer);
    };
    let (ag, key) = (&a.agent, &a.key_id);
    let bt = Some(b.token.as_str());

    // B's own views show none of A.
    send(Method::GET, "/v1/me", "/v1/me".into(), bt, None, None).await;
    send(Method::GET, "/v1/members", "/v1/members".into(), bt, None, None).await;
    send(Method::GET, "/v1/agents", "/v1/agents".into(), bt, None, None).await;
    send(
        Method::POST,
        "/v1/members",
        "/v1/members".into(),
        bt,
        None,
        Some(json!({"email": "new@bravo.example.com", "role": "viewer"})),
    )
    .await;
    // B names A's resources directly.
    send(Method::GET, "/v1/agents/{agent_id}", format!("/v1/agents/{ag}"), bt, None, None).await;
    send(Method::PATCH, "/v1/agents/{agent_id}", format!("/v1/agents/{ag}"), bt, None, Some(json!({"name": "stolen"})))
        .await;
    send(Method::POST, "/v1/agents/{agent_id}/redeploy", format!("/v1/agents/{ag}/redeploy"), bt, None, None).await;
    send(Method::POST, "/v1/agents/{agent_id}/pause", format!("/v1/agents/{ag}/pause"), bt, None, None).await;
    send(Method::POST, "/v1/agents/{agent_id}/resume", format!("/v1/agents/{ag}/resume"), bt, None, None).await;
    send(Method::DELETE, "/v1/agents/{agent_id}", format!("/v1/agents/{ag}"), bt, None, None).await;
    send(Method::GET, "/v1/agents/{agent_id}/keys", format!("/v1/agents/{ag}/keys"), bt, None, None).await;
    send(Method::GET, "/v1/agents/{agent_id}/code", format!("/v1/agents/{ag}/code"), bt, None, None).await;
    send(
        Method::POST,
        "/v1/agents/{agent_id}/keys",
        format!("/v1/agents/{ag}/keys"),
        bt,
        None,
        Some(json!({"name": "stolen"})),
    )
    .await;
    send(Method::DELETE, "/v1/agents/{agent_id}/keys/{key_id}", format!("/v1/agents/{ag}/keys/{key}"), bt, None, None)
        .await;
    send(
        Method::PATCH,
        "/v1/members/{user_id}",
        format!("/v1/members/{}", a.user_id),
        bt,
        None,
        Some(json!({"role": "viewer"})),
    )
    .await;
    send(Method::DELETE, "/v1/members/{user_id}", format!("/v1/members/{}", a.user_id), bt, None, None).await;
    // Keys of other agents: B's key, and A's own key for A's other agent.
    send(Method::GET, "/v1/agents/{agent_id}/profile", format!("/v1/agents/{ag}/profile"), None, Some(&b.secret), None)
        .await;
    send(
        Method::GET,
        "/v1/agents/{agent_id}/profile",
        format!("/v1/agents/{ag}/profile"),
        None,
        Some(&a_second_secret),
        None,
    )
    .await;
    // A's conversations: B's token reads none; B's key, and A's key of another agent,
    // neither continue nor end them.
    let (live, ses) = (&a_live, &a_session);
    send(Method::GET, "/v1/agents/{agent_id}/sessions", format!("/v1/agents/{live}/sessions"), bt, None, None).await;
    send(
        Method::GET,
        "/v1/agents/{agent_id}/sessions/{session_id}",
        format!("/v1/agents/{live}/sessions/{ses}"),
        bt,
        None,
        None,
    )
    .await;
    for key in [&b.secret, &a_second_secret] {
        send(
            Method::POST,
            "/v1/agents/{agent_id}/messages",
            format!("/v1/agents/{live}/messages"),
            None,
            Some(key),
            Some(json!({"message": "What did Ada say?", "session_id": ses})),
        )
        .await;
        send(
            Method::POST,
            "/v1/agents/{agent_id}/sessions/{session_id}/end",
            format!("/v1/agents/{live}/sessions/{ses}/end"),
            None,
            Some(key),
            None,
        )
        .await;
    }
    // A's voice: B's key, and A's key of another agent, open no call to A's agent; B's
    // token gets no link to A's recordings.
    for key in [&b.secret, &a_second_secret] {
        send(Method::GET, "/v1/agents/{agent_id}/voice", format!("/v1/agents/{live}/voice"), None, Some(key), None)
            .await;
    }
    send(
        Method::GET,
        "/v1/agents/{agent_id}/sessions/{session_id}/recording",
        format!("/v1/agents/{live}/sessions/{ses}/recording"),
        bt,
        None,
        None,
    )
    .await;
    // The runtime API of agents: B's access token, and a token naming A's agent that this
    // platform did not sign, reach nothing.
    let forged = format!("{}.{}.{}", a.tenant_id, a.agent, "00".repeat(32));
    for token in [b.token.as_str(), forged.as_str()] {
        send(
            Method::POST,
            "/v1/runtime/retrieve",
            "/v1/runtime/retrieve".into(),
            Some(token),
            None,
            Some(json!({"query": "Acme"})),
        )
        .await;
        send(
            Method::POST,
            "/v1/runtime/tools",
            "/v1/runtime/tools".into(),
            Some(token),
            None,
            Some(json!({"name": "acme_lookup", "arguments": {}})),
        )
        .await;
        send(
            Method::POST,
            "/v1/runtime/complete",
            "/v1/runtime/complete".into(),
            Some(token),
            None,
            Some(json!({"system": "s", "messages": [{"role": "user", "text": "hi"}]})),
        )
        .await;
    }
    // A's live sessions and history: B's lists are its own (none), even naming A's agent
    // or A's customer; B's analytics are its own.
    send(Method::GET, "/v1/sessions", "/v1/sessions".into(), bt, None, None).await;
    send(Method::GET, "/v1/sessions", "/v1/sessions?status=ended".into(), bt, None, None).await;
    send(Method::GET, "/v1/sessions", format!("/v1/sessions?status=ended&agent_id={live}"), bt, None, None).await;
    send(
        Method::GET,
        "/v1/sessions",
        format!("/v1/sessions?status=ended&agent_id={live}&sort=duration"),
        bt,
        None,
        None,
    )
    .await;
    send(Method::GET, "/v1/sessions", "/v1/sessions?status=ended&customer=ada-1&format=csv".into(), bt, None, None)
        .await;
    send(Method::GET, "/v1/analytics", "/v1/analytics".into(), bt, None, None).await;
    // A's conversations cannot be taken over, written to or read by B; nor followed with
    // B's key or A's key of another agent.
    for (method, path, body) in [
        (Method::POST, "/v1/sessions/{session_id}/takeover", None),
        (Method::POST, "/v1/sessions/{session_id}/messages", Some(json!({"text": "I am B"}))),
        (Method::GET, "/v1/sessions/{session_id}/messages", None),
        (Method::POST, "/v1/sessions/{session_id}/release", None),
    ] {
        send(method, path, path.replace("{session_id}", ses), bt, None, body).await;
    }
    for key in [&b.secret, &a_second_secret] {
        send(
            Method::GET,
            "/v1/agents/{agent_id}/sessions/{session_id}/events",
            format!("/v1/agents/{live}/sessions/{ses}/events"),
            None,
            Some(key),
            None,
        )
        .await;
    }
    // A's handoff notifications: B lists only its own (none), and acknowledges or
    // resolves none of A's.
    send(Method::GET, "/v1/notifications", "/v1/notifications".into(), bt, None, None).await;
    send(Method::GET, "/v1/notifications", "/v1/notifications?status=all".into(), bt, None, None).await;
    let note = &a_notification;
    send(
        Method::POST,
        "/v1/notifications/{notification_id}/ack",
        format!("/v1/notifications/{note}/ack"),
        bt,
        None,
        None,
    )
    .await;
    send(
        Method::POST,
        "/v1/notifications/{notification_id}/resolve",
        format!("/v1/notifications/{note}/resolve"),
        bt,
        None,
        Some(json!({"outcome": "closed by someone else"})),
    )
    .await;
    // A's phone number: B lists only its own, reads and removes none of A's, and cannot
    // assign it to itself.
    let twilio =
        json!({"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "0123456789abcdef0123456789abcdef"});
    let voice_agent = async |token: &str, name: &str| {
        let form = reqwest::multipart::Form::new().text("config", json!({"name": name, "kind": "voice"}).to_string());
        let created = p.request(Method::POST, "/v1/agents", Some(token)).multipart(form).send().await.expect("post");
        assert_eq!(created.status(), 201);
        created.json::<Value>().await.expect("json")["agent_id"].as_str().expect("an id").to_owned()
    };
    let a_phone_agent = voice_agent(&a.token, "Acme phone line").await;
    let b_phone_agent = voice_agent(&b.token, "Bravo phone line").await;
    let a_number = "+15125550147";
    let assigned = p
        .post_json(
            "/v1/phone-numbers",
            Some(&a.token),
            json!({"number": a_number, "agent_id": a_phone_agent, "twilio": twilio}),
        )
        .await;
    assert_eq!(assigned.status(), 201);
    let taken = p
        .post_json("/v1/phone-numbers", bt, json!({"number": a_number, "agent_id": b_phone_agent, "twilio": twilio}))
        .await;
    assert_eq!(taken.status(), 409, "a number belongs to one tenant");
    let onto_a = p
        .post_json(
            "/v1/phone-numbers",
            bt,
            json!({"number": "+15125550148", "agent_id": a_phone_agent, "twilio": twilio}),
        )
        .await;
    assert_eq!(onto_a.status(), 404, "B cannot give A's agent a number");
    send(Method::GET, "/v1/phone-numbers", "/v1/phone-numbers".into(), bt, None, None).await;
    send(
        Method::POST,
        "/v1/phone-numbers",
        "/v1/phone-numbers".into(),
        bt,
        None,
        Some(json!({"number": "+15125550199", "agent_id": b_phone_agent, "twilio": twilio})),
    )
    .await;
    for method in [Method::GET, Method::DELETE] {
        send(method, "/v1/phone-numbers/{number}", format!("/v1/phone-numbers/{a_number}"), bt, None, None).await;
    }
    // A's tools and their executions: B lists only its own, reads, changes and removes
    // none of A's; B's agents are not offered A's tool, and a runtime token of B's agent
    // cannot call it.
    let a_tool = p
        .post_json(
            "/v1/tools",
            Some(&a.token),
            json!({"name": "acme_lookup", "description": "Look up an Acme patient's appointment.",
                "input_schema": {"type": "object"}, "url": "http://127.0.0.1:9/acme"}),
        )
        .await;
    assert_eq!(a_tool.status(), 201);
    let a_tool: Value = a_tool.json().await.expect("json");
    let a_tool_id = a_tool["tool_id"].as_str().expect("an id").to_owned();
    send(Method::GET, "/v1/tools", "/v1/tools".into(), bt, None, None).await;
    send(
        Method::POST,
        "/v1/tools",
        "/v1/tools".into(),
        bt,
        None,
        Some(json!({"name": "acme_lookup", "description": "B's own tool of the same name.",
            "input_schema": {"type": "object"}, "url": "http://127.0.0.1:9/bravo"})),
    )
    .await;
    send(Method::GET, "/v1/tools/{tool_id}", format!("/v1/tools/{a_tool_id}"), bt, None, None).await;
    send(
        Method::PATCH,
        "/v1/tools/{tool_id}",
        format!("/v1/tools/{a_tool_id}"),
        bt,
        None,
        Some(json!({"url": "http://127.0.0.1:9/stolen"})),
    )
    .await;
    send(Method::DELETE, "/v1/tools/{tool_id}", format!("/v1/tools/{a_tool_id}"), bt, None, None).await;
    send(Method::GET, "/v1/tool-executions", "/v1/tool-executions".into(), bt, None, None).await;
    send(Method::GET, "/v1/tool-executions", format!("/v1/tool-executions?tool_id={a_tool_id}"), bt, None, None).await;
    // A forged query or body naming A's tenant changes nothing.
    send(Method::GET, "/v1/agents", format!("/v1/agents?tenant_id={}", a.tenant_id), bt, None, None).await;
    let mut create = reqwest::multipart::Form::new()
        .text("config", json!({"name": "B agent two", "kind": "text", "tenant_id": a.tenant_id}).to_string());
    let created =
        p.request(Method::POST, "/v1/agents", bt).multipart(std::mem::take(&mut create)).send().await.expect("post");
    answers.push(Answer {
        route: ("POST".into(), "/v1/agents".into()),
        status: created.status().as_u16(),
        body: created.text().await.expect("body"),
    });

    // No answer carries anything of A.
    let secrets_of_a = [
        &a.tenant_id,
        &a.user_id,
        &a.email,
        &a.agent,
        &a.key_id,
        &a_second_agent,
        &a_live,
        &a_session,
        &a_notification,
        &refund["session_id"].as_str().expect("session").to_owned(),
        &"Acme".to_owned(),
        &a_phone_agent,
        &a_tool_id,
        &"/acme".to_owned(),
        &"5125550147".to_owned(),
    ];
    for answer in &answers {
        for secret in secrets_of_a {
            assert!(!answer.body.contains(secret.as_str()), "{:?} leaked {secret}: {}", answer.route, answer.body);
        }
    }
    // Naming A's resources, or using tokens that are not an agent's, is refused with the
    // standard body.
    for answer in answers.iter().filter(|a| a.route.1.contains('{') || a.route.1.starts_with("/v1/runtime/")) {
        let refused = if answer.route.1.starts_with("/v1/runtime/") {
            answer.status == 401
        } else {
            matches!(answer.status, 403 | 404)
        };
        assert!(refused, "{:?} answered {}: {}", answer.route, answer.status, answer.body);
        let error: Value = serde_json::from_str(&answer.body).expect("a JSON error");
        assert!(
            error["code"].is_string() && error["request_id"].is_string() && error["error"].is_string(),
            "{}",
            answer.body
        );
    }
    // B's own calls succeeded, and B's agents are only B's.
    for answer in answers.iter().filter(|a| !a.route.1.contains('{') && !a.route.1.starts_with("/v1/runtime/")) {
        assert!((200..300).contains(&answer.status), "{:?}: {} {}", answer.route, answer.status, answer.body);
    }

    // A is untouched: its agent, key and admin are as they were.
    let agent = p.request(Method::GET, &format!("/v1/agents/{ag}"), Some(&a.token)).send().await.expect("get");
    assert_eq!(agent.status(), 200);
    let profile = p
        .http
        .get(format!("{}/v1/agents/{ag}/profile", p.url))
        .header("x-api-key", &a.secret)
        .send()
        .await
        .expect("profile");
    assert_eq!(profile.status(), 200, "A's key still works");
    let tools = p.get_json(&format!("/v1/tools/{a_tool_id}"), Some(&a.token)).await;
    assert_eq!(tools["url"], "http://127.0.0.1:9/acme", "A's tool is untouched: {tools}");
    let numbers = p.get_json("/v1/phone-numbers", Some(&a.token)).await;
    assert_eq!(numbers["numbers"][0]["number"], a_number, "A's number is still A's: {numbers}");
    let me: Value = p.get_json("/v1/me", Some(&a.token)).await;
    assert_eq!(me["role"], "admin");
    let unread = p.get_json("/v1/notifications", Some(&a.token)).await;
    assert_eq!(unread["notifications"][0]["status"], "unread", "A's notification is untouched: {unread}");
    // B's analytics of A's agent: no such agent, for B.
    let stolen = p.request(Method::GET, &format!("/v1/analytics?agent_id={a_live}"), bt).send().await.expect("get");
    assert_eq!(stolen.status(), 404);
    let b_report: Value = p.get_json("/v1/analytics", bt).await;
    assert_eq!(b_report["sessions"], 0, "{b_report}");
    let a_transcript = p.get_json(&format!("/v1/sessions/{a_session}/messages"), Some(&a.token)).await;
    assert_ne!(a_transcript["session"]["status"], "taken_over", "B took nothing over: {a_transcript}");
    assert!(!a_transcript.to_string().contains("I am B"), "{a_transcript}");
    // B signing out leaves A signed in.
    assert_eq!(p.request(Method::POST, "/v1/auth/logout", bt).send().await.expect("logout").status(), 204);
    assert_eq!(p.request(Method::GET, "/v1/me", Some(&a.token)).send().await.expect("me").status(), 200);

    // Every route is covered here or listed as public.
    let doc: Value = p.get("/openapi.json").await.json().await.expect("the OpenAPI document");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object().expect("operations").keys().map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let covered: BTreeSet<(String, String)> = answers
        .iter()
        .map(|a| a.route.clone())
        .chain(PUBLIC.iter().map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())))
        .collect();
    let uncovered: Vec<_> = documented.difference(&covered).collect();
    assert!(uncovered.is_empty(), "routes without an isolation case: {uncovered:?}");
    let stale: Vec<_> = covered.difference(&documented).collect();
    assert!(stale.is_empty(), "isolation cases for routes that no longer exist: {stale:?}");
}
