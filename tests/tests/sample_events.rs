//! The sample events in `events/` are fixtures: each is parsed into its handler's input
//! and served by the handler, exactly as the Lambda runtime would deliver it.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use axum::body::Body;
use oratio_core::connections;
use oratio_core::health::HealthCheck;
use oratio_core::push::Push;
use oratio_functions::dashboard_socket::DashboardSocket;
use oratio_functions::socket::SocketApi;
use oratio_functions::{aws, openapi, platform, request};
use oratio_local::push::Outbound;
use oratio_local::{ConnectionRegistry, DirBlobStore, SqliteTable};
use tower::ServiceExt;

fn event(name: &str) -> String {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

#[test]
fn every_sample_event_is_used_by_a_test() {
    let dir = format!("{}/../events", env!("CARGO_MANIFEST_DIR"));
    let this = include_str!("sample_events.rs");
    for entry in std::fs::read_dir(dir).expect("events/") {
        let name = entry.expect("entry").file_name().into_string().expect("utf-8 name");
        assert!(this.contains(&format!("\"{name}\"")), "events/{name} is parsed by no test");
    }
}

#[tokio::test]
async fn rest_health_event_is_served_by_the_platform_router() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = SqliteTable::open(dir.path().join("t.sqlite3")).expect("sqlite");
    let blobs = DirBlobStore::open(dir.path().join("blobs"), "http://localhost").expect("blobs");
    let checks: Vec<Arc<dyn HealthCheck>> = vec![Arc::new(table), Arc::new(blobs)];
    let (router, _) = platform::routes().split_for_parts();
    let router = aws::named_by_api_gateway(
        router
            .with_state(platform::PlatformState::new(checks, &openapi::document()))
            .layer(axum::middleware::from_fn(request::request_context)),
    );

    let request = lambda_http::request::from_str(&event("rest_get_health.json")).expect("an API Gateway REST event");
    let (parts, body) = request.into_parts();
    let response =
        router.oneshot(axum::http::Request::from_parts(parts, Body::from(body.to_vec()))).await.expect("served");

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    let report: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(report["status"], "ok");
}

#[tokio::test]
async fn websocket_events_drive_the_dashboard_socket() {
    let auth = oratio_tests::fixtures::local_auth().await;
    let (member, token) = oratio_tests::fixtures::registered_admin(&auth, "ada@example.com", "Acme").await;
    let table = auth.deps.table.clone();
    let registry = ConnectionRegistry::new();
    let socket = DashboardSocket { deps: auth.deps.clone(), push: Arc::new(registry.clone()) as Arc<dyn Push> };
    let parse = |name: &str| -> ApiGatewayWebsocketProxyRequest {
        serde_json::from_str(&event(name)).expect("an API Gateway WebSocket event")
    };
    let connection = "Z1mCkeRZjoECFOQ=".parse().expect("id");

    // The sample's token is a placeholder: it is refused, and a real one is accepted.
    let refused = socket.handle(parse("ws_dashboard_connect.json")).await;
    assert_eq!(refused.status_code, 401);
    let mut connect: serde_json::Value = serde_json::from_str(&event("ws_dashboard_connect.json")).expect("json");
    connect["queryStringParameters"]["token"] = token.clone().into();
    connect["multiValueQueryStringParameters"]["token"] = serde_json::json!([token]);
    let connected = socket.handle(serde_json::from_value(connect).expect("an event")).await;
    assert_eq!(connected.status_code, 200);
    let recorded = connections::find(table.as_ref(), &connection).await.expect("find").expect("recorded");
    assert_eq!(recorded.tenant_id, member.tenant_id);

    let mut outbound = registry.register(connection.clone());
    let pinged = socket.handle(parse("ws_dashboard_ping.json")).await;
    assert_eq!(pinged.status_code, 200);
    let Some(Outbound::Text(pong)) = outbound.recv().await else { panic!("no pong") };
    let pong: serde_json::Value = serde_json::from_str(&pong).expect("json");
    assert_eq!((pong["type"].as_str(), pong["request_id"].as_str()), (Some("pong"), Some("Z1mD0H5VjoEFrxw=")));

    let disconnected = socket.handle(parse("ws_dashboard_disconnect.json")).await;
    assert_eq!(disconnected.status_code, 200);
    assert!(connections::find(table.as_ref(), &connection).await.expect("find").is_none());
}

#[tokio::test]
async fn step_functions_task_event_is_dispatched_by_its_task_name() {
    use oratio_core::creation::CreationTasks;
    let dir = tempfile::tempdir().expect("tempdir");
    let table: Arc<dyn oratio_core::table::Table> =
        Arc::new(SqliteTable::open(dir.path().join("t.sqlite3")).expect("sqlite"));
    let blobs = Arc::new(DirBlobStore::open(dir.path().join("blobs"), "http://localhost").expect("blobs"));
    let host = oratio_local::runtime::LocalAgentHost::new(
        dir.path().join("runtimes"),
        "python3",
        table.clone(),
        oratio_local::runtime::HostLimits::default(),
    )
    .expect("host");
    let tasks = CreationTasks {
        table: table.clone(),
        blobs: blobs.clone(),
        knowledge: Arc::new(oratio_local::knowledge::LocalKnowledgeBase::new(
            dir.path().join("k"),
            blobs,
            table,
            oratio_tests::embeddings::embeddings(),
        )),
        llm: Arc::new(oratio_local::engine::LocalEngine::default()),
        checker: Arc::new(oratio_local::checker::PythonChecker::new("python3")),
        runtime: Arc::new(host),
        push: Arc::new(ConnectionRegistry::new()),
    };
    let input: serde_json::Value = serde_json::from_str(&event("sfn_creation_task.json")).expect("a task input");
    // The sample names an agent this table does not hold: Validate reports it by name.
    let failure = tasks.handle(input.clone()).await.expect_err("no such agent");
    assert_eq!(failure.error, "AgentGone");
    let mut unknown = input;
    unknown["task"] = "Dance".into();
    assert_eq!(tasks.handle(unknown).await.expect_err("no such task").error, "States.Runtime");
}
