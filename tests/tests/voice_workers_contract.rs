//! `VoiceWorkers` on Lambda, against a local server speaking Lambda's `Invoke` wire
//! (`POST /2015-03-31/functions/{name}/invocations`, SigV4-signed, `X-Amz-Invocation-Type`):
//! a call's worker is an asynchronous invocation carrying its inbox, and a refusal is an
//! error the relay turns into `temporarily_unavailable`.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use oratio_aws::{LambdaWorkers, WorkerJob};
use oratio_core::ids::ConnectionId;
use oratio_core::voice::relay::VoiceWorkers;
use oratio_tests::moto;

type Seen = Arc<Mutex<Vec<(String, HeaderMap, Vec<u8>)>>>;

async fn invoke(
    State(seen): State<Seen>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    seen.lock().expect("lock").push((name.clone(), headers, body.to_vec()));
    if name == "voice-worker" {
        return StatusCode::ACCEPTED.into_response();
    }
    let error = serde_json::json!({"Type": "User", "message": format!("Function not found: {name}")});
    (StatusCode::NOT_FOUND, [("x-amzn-errortype", "ResourceNotFoundException")], error.to_string()).into_response()
}

#[tokio::test]
async fn a_calls_worker_is_an_asynchronous_invocation_with_its_inbox() {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/2015-03-31/functions/{name}/invocations", axum::routing::post(invoke))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let endpoint = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = moto::test_config(Some(&endpoint)).await;
    let client = oratio_aws::lambda_client(&config);

    let inbox: ConnectionId = "L0SM9cOFvHcCIhw=".parse().expect("a connection id");
    LambdaWorkers::new(client.clone(), "voice-worker").start(&inbox).await.expect("invoked");
    {
        let seen = seen.lock().expect("lock");
        let (name, headers, body) = &seen[0];
        assert_eq!(name, "voice-worker");
        assert_eq!(headers.get("x-amz-invocation-type").and_then(|v| v.to_str().ok()), Some("Event"));
        let signed = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(signed.starts_with("AWS4-HMAC-SHA256") && signed.contains("/lambda/aws4_request"), "{signed}");
        let job: WorkerJob = serde_json::from_slice(body).expect("a worker job");
        assert_eq!(job, WorkerJob { inbox: inbox.clone() });
    }

    let missing = LambdaWorkers::new(client, "no-such-worker").start(&inbox).await.expect_err("refused");
    assert!(format!("{missing:#}").contains("ResourceNotFound"), "{missing:#}");
}
