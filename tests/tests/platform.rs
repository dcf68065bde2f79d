//! The embedded platform end to end, spoken to only over HTTP and WebSocket.

use futures::{SinkExt, StreamExt};
use oratio_tests::platform::{PASSWORD, TestPlatform, close_code, test_config};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

fn assert_error_body(body: &Value, code: &str) {
    assert_eq!(body["code"], code, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    assert!(body["request_id"].as_str().is_some_and(|r| r.starts_with("req_")), "{body}");
}

#[tokio::test]
async fn health_lists_every_component_and_its_backend() {
    let speech = oratio::SpeechConfig::Running { url: oratio_tests::speech::worker_url() };
    let config = oratio::Config { speech, ..oratio_tests::platform::test_config() };
    let platform = TestPlatform::start_in(tempfile::tempdir().expect("a directory"), config).await;
    let response = platform.get("/health").await;
    assert_eq!(response.status(), 200);
    let body = json(response).await;
    assert_eq!(body["status"], "ok");
    let components =
        [("table", "sqlite"), ("blobs", "filesystem"), ("push", "in-process"), ("speech", "faster-whisper+piper")];
    for (component, backend) in components {
        assert_eq!(body["components"][component]["status"], "ok", "{body}");
        assert_eq!(body["components"][component]["backend"], backend, "{body}");
    }
}

#[tokio::test]
async fn openapi_document_describes_every_rest_route() {
    let platform = TestPlatform::start().await;
    let doc = json(platform.get("/openapi.json").await).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: Vec<&str> = doc["paths"].as_object().expect("paths").keys().map(String::as_str).collect();
    for expected in ["/health", "/openapi.json", "/local/blobs/{key}"] {
        assert!(paths.contains(&expected), "{expected} missing from {paths:?}");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    // Every described route is served: none of them answers "no such route".
    for path in paths {
        let concrete = path.replace("{key}", "tenants/x/y");
        let body: Value = platform.get(&concrete).await.json().await.unwrap_or(Value::Null);
        assert_ne!(body["error"], "no such route", "{path} is described but not served");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_standard_error_body() {
    let platform = TestPlatform::start().await;
    let response = platform.get("/v1/nothing-here").await;
    assert_eq!(response.status(), 404);
    let request_id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let body = json(response).await;
    assert_error_body(&body, "not_found");
    assert_eq!(body["request_id"], request_id, "the body names the request the header names");

    let response = platform.http.delete(format!("{}/health", platform.url)).send().await.expect("request");
    assert_eq!(response.status(), 405);
    assert_error_body(&json(response).await, "method_not_allowed");
}

#[tokio::test]
async fn signed_download_links_refuse_forgery_and_expiry_with_the_standard_body() {
    let platform = TestPlatform::start().await;
    let forged = platform.get("/local/blobs/tenants/ten_x/doc.md?expires=9999999999&signature=00ff").await;
    assert_eq!(forged.status(), 403);
    assert_error_body(&json(forged).await, "invalid_signature");
    let missing = platform.get("/local/blobs/tenants/ten_x/doc.md").await;
    assert_eq!(missing.status(), 400);
    assert_error_body(&json(missing).await, "invalid_query");
}

#[tokio::test]
async fn the_dashboard_is_served_at_the_root() {
    let platform = TestPlatform::start().await;
    let response = platform.get("/").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    assert!(response.text().await.expect("body").contains("Oratio"));
    assert_eq!(platform.get("/app.js").await.status(), 200);
}

async fn next_json(
    socket: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Value {
    loop {
        match socket.next().await.expect("a message").expect("no error") {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_dashboard_socket_routes_messages_by_action() {
    let platform = TestPlatform::start().await;
    let ada = platform.sign_up("ada@example.com", "Acme").await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(platform.dashboard_socket(&ada.access_token)).await.expect("connect");

    socket.send(Message::text(r#"{"action":"ping"}"#)).await.expect("send");
    let pong = next_json(&mut socket).await;
    assert_eq!(pong["type"], "pong");
    assert!(pong["connection_id"].as_str().is_some_and(|id| id.len() == 16), "{pong}");

    for unrouted in [r#"{"action":"dance"}"#, "not json at all"] {
        socket.send(Message::text(unrouted)).await.expect("send");
        let reply = next_json(&mut socket).await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some("unknown_action")),
            "{unrouted}"
        );
    }
    socket.close(None).await.expect("close");
}

#[tokio::test]
async fn a_message_over_api_gateways_limit_closes_the_socket() {
    let platform = TestPlatform::start().await;
    let ada = platform.sign_up("ada@example.com", "Acme").await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(platform.dashboard_socket(&ada.access_token)).await.expect("connect");
    let big = format!(r#"{{"action":"ping","pad":"{}"}}"#, "x".repeat(200 * 1024));
    let _ = socket.send(Message::text(big)).await;
    assert_eq!(close_code(&mut socket).await, Some(1009));
}

#[tokio::test]
async fn a_plain_request_to_a_socket_path_is_told_to_upgrade() {
    let platform = TestPlatform::start().await;
    let response = platform.get("/ws/dashboard").await;
    assert_eq!(response.status(), 426);
    assert_error_body(&json(response).await, "websocket_required");
}

#[tokio::test]
async fn a_second_platform_on_the_same_data_directory_is_refused_clearly() {
    let platform = TestPlatform::start().await;
    let second =
        oratio::start(oratio::Config { port: 0, data_dir: platform.data_path().to_path_buf(), ..test_config() }).await;
    let message = format!("{:#}", second.err().expect("refused"));
    assert!(message.contains("in use by another oratio process"), "{message}");
    // The first one is unharmed.
    assert_eq!(platform.get("/health").await.status(), 200);
}

#[tokio::test]
async fn a_stopped_platform_starts_again_on_its_data_directory() {
    let platform = TestPlatform::start().await;
    let ada = platform.sign_up("ada@example.com", "Acme").await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(platform.dashboard_socket(&ada.access_token)).await.expect("connect");
    let data = platform.stop().await;
    // Stopping closes open sockets with "going away".
    let closed = loop {
        match socket.next().await {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    assert_eq!(closed, Some(1001));
    let again = TestPlatform::start_in(data, oratio::Config::default()).await;
    assert_eq!(again.get("/health").await.status(), 200);
    // Everything the first run wrote is there: the account signs in, its refresh token
    // still works, and the tenant is the same.
    let login =
        again.post_json("/v1/auth/login", None, serde_json::json!({"email": ada.email, "password": PASSWORD})).await;
    assert_eq!(login.status(), 200);
    let tokens: Value = login.json().await.expect("tokens");
    let me: Value = again
        .request(reqwest::Method::GET, "/v1/me", tokens["access_token"].as_str())
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["tenant"]["id"], ada.tenant_id.as_str());
    let refreshed =
        again.post_json("/v1/auth/refresh", None, serde_json::json!({"refresh_token": ada.refresh_token})).await;
    assert_eq!(refreshed.status(), 200);
}

#[tokio::test]
async fn the_dashboard_socket_refuses_missing_and_forged_tokens() {
    let platform = TestPlatform::start().await;
    for url in [platform.ws_url("/ws/dashboard"), platform.dashboard_socket("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")] {
        let refused = tokio_tungstenite::connect_async(url).await.expect_err("refused");
        let tokio_tungstenite::tungstenite::Error::Http(response) = refused else { panic!("{refused:?}") };
        assert_eq!(response.status(), 401);
    }
}
