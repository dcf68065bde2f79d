//! Tenant tools end to end on the embedded platform: an admin registers a webhook tool, the
//! agent (on the local engine) calls it when a customer's message asks for it, and tells
//! the customer its answer. The endpoint is a local HTTP server that checks the signature
//! and can hang, fail, or answer badly; every call is tracked.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use hmac::{Hmac, Mac};
use oratio_tests::platform::TestPlatform;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "whsec_northwear_test_0123456789";

/// What the tool server received: the path, the headers it checks, and the body.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, HeaderMap, Value)>>>);

fn verified(headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(signed) = headers.get("x-oratio-signature").and_then(|h| h.to_str().ok()) else { return false };
    let Some((t, v1)) = signed.strip_prefix("t=").and_then(|s| s.split_once(",v1=")) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes()) == v1
}

/// A shop's order lookup and its bad days: `/orders` answers, `/hang` never does,
/// `/flaky` fails twice and then answers, `/down` always fails, `/garbled` is not JSON,
/// `/odd` does not fit the result schema.
async fn endpoint(
    State(received): State<Received>,
    Path(behaviour): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    if !verified(&headers, &body) {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let call: Value = serde_json::from_slice(&body).expect("JSON");
    let seen = {
        let mut all = received.0.lock().unwrap();
        all.push((behaviour.clone(), headers.clone(), call.clone()));
        all.iter().filter(|(b, ..)| *b == behaviour).count()
    };
    let order = call["arguments"]["order_id"].as_str().unwrap_or_default().to_owned();
    let answer =
        json!({"order_id": order, "status": "out for delivery", "carrier": "DHL", "expected": "today before 6pm"});
    match behaviour.as_str() {
        "orders" => axum::Json(answer).into_response(),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            axum::Json(answer).into_response()
        }
        "flaky" if seen <= 2 => (StatusCode::BAD_GATEWAY, "upstream down").into_response(),
        "flaky" => axum::Json(answer).into_response(),
        "down" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "garbled" => (StatusCode::OK, "<html>oops</html>").into_response(),
        "odd" => axum::Json(json!({"state": 3})).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn tool_server() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new().route("/{behaviour}", axum::routing::post(endpoint)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

fn order_tool(url: &str, behaviour: &str) -> Value {
    json!({
        "name": "order_status",
        "description": "Look up where a customer's order is: its status, the carrier and when it is expected. Use it whenever a customer asks where their order or parcel is.",
        "input_schema": {"type": "object", "properties": {
            "order_id": {"type": "string", "pattern": "^NW-[0-9]{6}$", "description": "the order number, like NW-123456"}},
            "required": ["order_id"], "additionalProperties": false},
        "result_schema": {"type": "object", "required": ["status"]},
        "url": format!("{url}/{behaviour}"),
        "secret": SECRET,
        "headers": {"X-Shop": "northwear"},
        "timeout_ms": 1500,
        "retries": 2,
    })
}

/// Northwear's support agent from the corpus; (access token, agent, key, tenant).
async fn shop(p: &TestPlatform) -> (String, String, String, String) {
    let account = p.sign_up("support@northwear.example.com", "Northwear").await;
    let entry = oratio::eval::bundled()
        .expect("the corpus")
        .into_iter()
        .find(|e| e.slug == "fashion-returns")
        .expect("an entry");
    let config = json!({"name": entry.agent.name, "kind": "text", "sop": entry.sop});
    let documents = entry.documents.iter().map(|(name, bytes)| (name.as_str(), bytes.clone())).collect();
    let agent = p.create_active_agent_from(&account.access_token, config, documents).await;
    let (_, key) = p.create_key(&account.access_token, &agent).await;
    (account.access_token, agent, key, account.tenant_id)
}

async fn register(p: &TestPlatform, token: &str, tool: Value) -> (u16, Value) {
    let response = p.post_json("/v1/tools", Some(token), tool).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

async fn executions(p: &TestPlatform, token: &str, query: &str) -> Vec<Value> {
    let list = p.get_json(&format!("/v1/tool-executions{query}"), Some(token)).await;
    list["executions"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_calls_the_tenants_tool_and_tells_the_customer_its_answer() {
    oratio_tests::init_logs();
    let p = TestPlatform::start().await;
    let (token, agent, key, _) = shop(&p).await;
    let (url, received) = tool_server().await;
    let (status, created) = register(&p, &token, order_tool(&url, "orders")).await;
    assert_eq!(status, 201, "{created}");
    assert!(created.get("secret").is_none(), "a given secret is not echoed: {created}");
    assert!(!created.to_string().contains("northwear\""), "header values are not returned: {created}");
    assert_eq!(created["header_names"], json!(["X-Shop"]));

    // Asked in the customer's words, with the number in passing.
    let (status, reply) = p
        .message(
            &key,
            &agent,
            json!({"message": "hiya, my parcel still hasnt turned up?? order nw-204518", "customer": {"id": "cust-9"}}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let said = reply["reply"].as_str().expect("a reply");
    assert!(said.contains("out for delivery") && said.contains("DHL"), "{said}");
    // The endpoint got the arguments as the schema says, signed, with the tool's headers.
    let calls = received.0.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let (_, headers, body) = &calls[0];
    assert_eq!(body["tool"], "order_status");
    assert_eq!(body["arguments"], json!({"order_id": "NW-204518"}));
    assert_eq!(body["call"]["agent_id"], agent);
    assert_eq!(headers["x-shop"], "northwear");
    assert_eq!(headers["x-oratio-attempt"], "1");
    let execution_id = headers["x-oratio-execution-id"].to_str().unwrap().to_owned();

    // Tracked on the turn and in the executions API.
    let session = reply["session_id"].as_str().expect("a session");
    let view = p.get_json(&format!("/v1/agents/{agent}/sessions/{session}"), Some(&token)).await;
    let trace = view["turns"][1]["tool_calls"].as_array().expect("the agent's tool calls");
    let traced = trace.iter().find(|t| t["name"] == "order_status").expect("the tool's call on the turn");
    assert_eq!(traced["result"]["status"], "succeeded", "{traced}");
    assert_eq!(traced["result"]["execution_id"], execution_id);
    let listed = executions(&p, &token, &format!("?session_id={session}")).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let run = &listed[0];
    assert_eq!((run["status"].as_str(), run["status_code"].as_u64()), (Some("succeeded"), Some(200)), "{run}");
    assert_eq!(run["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(run["execution_id"], execution_id);

    // Other customers, other words.
    for said in [
        "has my package shipped yet? ref NW-204518",
        "NW-204518 - any news on this one? it was meant to come monday",
        "Good morning, I'm still waiting for my delivery (NW-204518), can you track it?",
    ] {
        let (_, reply) = p.message(&key, &agent, json!({"message": said})).await;
        let reply = reply["reply"].as_str().expect("a reply").to_owned();
        assert!(reply.contains("out for delivery"), "{said:?} → {reply:?}");
    }

    // Without the number, the agent asks for it in the tool's terms, then looks it up.
    let (_, asked) = p.message(&key, &agent, json!({"message": "Where's my stuff? I ordered a coat last week"})).await;
    let question = asked["reply"].as_str().expect("a reply");
    assert!(question.ends_with("could you tell me the order number?"), "{question}");
    let (_, answered) =
        p.message(&key, &agent, json!({"message": "sure it's NW-771203", "session_id": asked["session_id"]})).await;
    assert!(answered["reply"].as_str().expect("a reply").contains("out for delivery"), "{answered}");
    assert_eq!(received.0.lock().unwrap().last().unwrap().2["arguments"]["order_id"], "NW-771203");

    // A question the tool is not for is answered from the documents, without calling it.
    let before = received.0.lock().unwrap().len();
    let (_, policy) =
        p.message(&key, &agent, json!({"message": "how many days do I have to send something back?"})).await;
    assert_eq!(received.0.lock().unwrap().len(), before, "{policy}");

    // Changed or removed, it applies to the next message without a redeploy.
    let tool_id = created["tool_id"].as_str().expect("an id");
    let patched = p
        .request(Method::PATCH, &format!("/v1/tools/{tool_id}"), Some(&token))
        .json(&json!({"agent_ids": []}))
        .send()
        .await
        .expect("patched");
    assert_eq!(patched.status(), 200);
    let (_, without) = p.message(&key, &agent, json!({"message": "where is order NW-204518?"})).await;
    assert_eq!(received.0.lock().unwrap().len(), before, "an agent the tool is not for does not call it: {without}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_that_hangs_fails_or_answers_badly_ends_in_its_state_and_the_customer_is_told() {
    let p = TestPlatform::start().await;
    let (token, agent, key, _) = shop(&p).await;
    let (url, received) = tool_server().await;
    let (status, created) = register(&p, &token, order_tool(&url, "flaky")).await;
    assert_eq!(status, 201, "{created}");
    let tool_id = created["tool_id"].as_str().expect("an id").to_owned();

    // (behaviour, status, attempts, last status code, error code)
    let cases = [
        ("flaky", "succeeded", 3, Some(200), None),
        ("hang", "timed_out", 3, None, Some("timeout")),
        ("down", "failed", 3, Some(500), Some("http_error")),
        ("garbled", "failed", 1, Some(200), Some("invalid_json")),
        ("odd", "failed", 1, Some(200), Some("invalid_result")),
    ];
    for (behaviour, status, attempts, code, error) in cases {
        let patched = p
            .request(Method::PATCH, &format!("/v1/tools/{tool_id}"), Some(&token))
            .json(&json!({"url": format!("{url}/{behaviour}"), "timeout_ms": 1000}))
            .send()
            .await
            .expect("patched");
        assert_eq!(patched.status(), 200);
        let (answered, reply) = p.message(&key, &agent, json!({"message": "where's my order NW-300400?"})).await;
        assert_eq!(answered, 200, "{behaviour}: {reply}");
        let said = reply["reply"].as_str().expect("a reply");
        if status == "succeeded" {
            assert!(said.contains("out for delivery"), "{behaviour}: {said}");
        } else {
            assert!(said.contains("couldn't check that just now") && said.contains("colleague"), "{behaviour}: {said}");
        }
        let run = executions(&p, &token, &format!("?tool_id={tool_id}")).await.remove(0);
        assert_eq!(run["status"], status, "{behaviour}: {run}");
        assert_eq!(run["attempts"].as_array().map(Vec::len), Some(attempts), "{behaviour}: {run}");
        assert_eq!(run["status_code"].as_u64().map(|c| c as u16), code, "{behaviour}: {run}");
        assert_eq!(run["error"]["code"].as_str(), error, "{behaviour}: {run}");
        // The conversation is whole: the customer's message and the agent's answer.
        let view = p
            .get_json(&format!("/v1/agents/{agent}/sessions/{}", reply["session_id"].as_str().unwrap()), Some(&token))
            .await;
        assert_eq!(view["turns"].as_array().map(Vec::len), Some(2), "{behaviour}: {view}");
    }
    let failed = executions(&p, &token, "?status=failed").await;
    assert_eq!(failed.len(), 3, "{failed:?}");
    // Retries carry the same execution id, numbered.
    let all = received.0.lock().unwrap().clone();
    let flaky: Vec<&HeaderMap> = all.iter().filter(|(b, ..)| b == "flaky").map(|(_, h, _)| h).collect();
    assert_eq!(flaky.iter().map(|h| h["x-oratio-attempt"].to_str().unwrap()).collect::<Vec<_>>(), ["1", "2", "3"]);
    assert!(flaky.windows(2).all(|w| w[0]["x-oratio-execution-id"] == w[1]["x-oratio-execution-id"]));
}

/// The agent's runtime token, as the platform signs it.
fn runtime_token(p: &TestPlatform, tenant: &str, agent: &str) -> String {
    let key = std::fs::read(p.data_path().join("runtime.key")).expect("the runtime key");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{tenant}/{agent}").as_bytes());
    format!("{tenant}.{agent}.{}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_malformed_arguments_go_back_to_it_and_never_reach_the_endpoint() {
    let p = TestPlatform::start().await;
    let (token, agent, _, tenant) = shop(&p).await;
    let (url, received) = tool_server().await;
    assert_eq!(register(&p, &token, order_tool(&url, "orders")).await.0, 201);
    let runtime = runtime_token(&p, &tenant, &agent);
    for arguments in [
        json!({"order_id": 204518}),
        json!({"order_id": "204518"}),
        json!({}),
        json!({"order_id": "NW-204518", "pin": "1234"}),
    ] {
        let answer = p
            .post_json("/v1/runtime/tools", Some(&runtime), json!({"name": "order_status", "arguments": arguments}))
            .await;
        assert_eq!(answer.status(), 200);
        let answer: Value = answer.json().await.expect("JSON");
        assert_eq!((answer["status"].as_str(), answer["attempts"].as_u64()), (Some("failed"), Some(0)), "{answer}");
        assert_eq!(answer["error"]["code"], "invalid_arguments", "{answer}");
    }
    assert!(received.0.lock().unwrap().is_empty(), "nothing was sent");
    let unknown =
        p.post_json("/v1/runtime/tools", Some(&runtime), json!({"name": "refund_everything", "arguments": {}})).await;
    assert_eq!(unknown.status(), 404);
    let runs = executions(&p, &token, "?status=failed").await;
    assert_eq!(runs.len(), 4, "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_are_checked_when_registered_and_only_admins_change_them() {
    let p = TestPlatform::start().await;
    let account = p.sign_up("it@northwear.example.com", "Northwear").await;
    let token = account.access_token.as_str();
    let base = order_tool("http://127.0.0.1:5678", "orders");
    let with = |change: Value| {
        let mut tool = base.clone();
        tool.as_object_mut().unwrap().extend(change.as_object().unwrap().clone());
        tool
    };
    // The SSRF guard: internal addresses are refused (loopback is allowed on one machine).
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7:5678/webhook/x",
        "http://192.168.1.20/webhook/x",
        "http://[fd00::1]/x",
        "http://metadata.google.internal/x",
        "file:///etc/passwd",
        "http://user:pw@127.0.0.1/x",
    ] {
        let (status, error) = register(&p, token, with(json!({"url": url}))).await;
        assert_eq!((status, error["code"].as_str()), (400, Some("invalid_tool")), "{url}: {error}");
    }
    for (change, why) in [
        (json!({"name": "hand_off"}), "a built-in name"),
        (json!({"name": "order status"}), "a space"),
        (json!({"description": ""}), "no description"),
        (json!({"input_schema": {"type": "string"}}), "not an object schema"),
        (json!({"input_schema": {"type": "object", "properties": {"a": {"type": 12}}}}), "not a schema"),
        (json!({"timeout_ms": 15000, "retries": 2}), "longer than a turn"),
        (json!({"retries": 9}), "too many retries"),
        (json!({"secret": "short"}), "a short secret"),
        (json!({"headers": {"Content-Length": "4"}}), "a header the platform sets"),
        (json!({"headers": {"X-Token": "a\nb"}}), "a header value on two lines"),
        (json!({"method": "DELETE"}), "an unknown method"),
        (json!({"color": "red"}), "an unknown field"),
    ] {
        let (status, error) = register(&p, token, with(change.clone())).await;
        assert_eq!((status, error["code"].as_str()), (400, Some("invalid_tool")), "{why}: {error}");
    }
    let missing = p.get_json("/v1/tools", Some(token)).await;
    assert_eq!(missing["tools"], json!([]), "nothing was stored: {missing}");

    let mut unsigned = base.clone();
    unsigned.as_object_mut().unwrap().remove("secret");
    let (status, made) = register(&p, token, unsigned.clone()).await;
    assert_eq!(status, 201, "{made}");
    assert!(made["secret"].as_str().is_some_and(|s| s.starts_with("whsec_") && s.len() > 40), "shown once: {made}");
    let again = p.get_json(&format!("/v1/tools/{}", made["tool_id"].as_str().unwrap()), Some(token)).await;
    assert!(again.get("secret").is_none(), "{again}");
    let (status, error) = register(&p, token, unsigned).await;
    assert_eq!((status, error["code"].as_str()), (409, Some("tool_name_taken")), "{error}");
    let (status, error) =
        register(&p, token, with(json!({"name": "other", "agent_ids": ["agt_01jzzzzzzzzzzzzzzzzzzzzzzz"]}))).await;
    assert!(matches!(status, 400 | 404), "{error}");

    let operator = p.invite(token, "ops@northwear.example.com", "operator").await;
    let (status, _) = register(&p, &operator, with(json!({"name": "by_operator"}))).await;
    assert_eq!(status, 403);
    assert_eq!(p.get_json("/v1/tools", Some(&operator)).await["tools"].as_array().map(Vec::len), Some(1));
    let id = made["tool_id"].as_str().unwrap();
    let refused = p.request(Method::DELETE, &format!("/v1/tools/{id}"), Some(&operator)).send().await.expect("delete");
    assert_eq!(refused.status(), 403);
    let deleted = p.request(Method::DELETE, &format!("/v1/tools/{id}"), Some(token)).send().await.expect("delete");
    assert_eq!(deleted.status(), 200);
    let (status, _) = register(&p, token, with(json!({}))).await;
    assert_eq!(status, 201, "the name is free again");
}
