//! API Gateway's WebSocket API, emulated: each socket gets an API Gateway-shaped
//! connection id; `$connect`, every message (routed by its `action`) and `$disconnect`
//! reach the handler as the same `ApiGatewayWebsocketProxyRequest` events a Lambda
//! receives; handlers answer through the in-process `@connections` registry. API
//! Gateway's limits hold here too: 32 KB frames, 128 KB messages, 10 minutes idle, 2 hours
//! per connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::{Sink, SinkExt, Stream, StreamExt};
use oratio_core::ids::ConnectionId;
use oratio_functions::body::Query;
use oratio_functions::error::ApiError;
use oratio_functions::request::new_request_id;
use oratio_functions::socket::{CONNECT, DISCONNECT, MAX_MESSAGE_BYTES, SocketApi, close_for, select_route};
use oratio_local::ConnectionRegistry;
use oratio_local::push::Outbound;
use rand::RngCore;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// API Gateway's limits, shortened in tests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle: Duration,
    pub lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { idle: Duration::from_secs(600), lifetime: Duration::from_secs(7200) }
    }
}

/// One WebSocket API: its handler and where its connections are registered.
#[derive(Clone)]
pub struct SocketEndpoint {
    pub api: Arc<dyn SocketApi>,
    pub registry: ConnectionRegistry,
    pub shutdown: watch::Receiver<bool>,
    pub limits: Limits,
}

/// A connection id of API Gateway's shape (16 base64 characters).
fn mint_connection_id() -> ConnectionId {
    let mut bytes = [0u8; 10];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes).parse().expect("base64 is a valid connection id")
}

fn event(
    route: &str,
    kind: &str,
    connection: &ConnectionId,
    connected_at: i64,
    extra: serde_json::Value,
) -> ApiGatewayWebsocketProxyRequest {
    let now = chrono::Utc::now().timestamp_millis();
    let mut event = json!({
        "requestContext": {
            "routeKey": route,
            "eventType": kind,
            "messageDirection": "IN",
            "connectionId": connection.as_str(),
            "requestId": new_request_id(),
            "extendedRequestId": new_request_id(),
            "domainName": "localhost",
            "stage": "local",
            "apiId": "local",
            "connectedAt": connected_at,
            "requestTimeEpoch": now,
        },
        "isBase64Encoded": false,
    });
    if let (Some(target), serde_json::Value::Object(extra)) = (event.as_object_mut(), extra) {
        for (k, v) in extra {
            match (k.as_str(), target.get_mut("requestContext")) {
                ("requestContext", Some(serde_json::Value::Object(context))) => {
                    if let serde_json::Value::Object(more) = v {
                        context.extend(more);
                    }
                }
                _ => {
                    target.insert(k, v);
                }
            }
        }
    }
    serde_json::from_value(event).expect("an emulated WebSocket event is well formed")
}

/// `GET /ws/...`: runs `$connect`, then upgrades if the handler accepted.
pub async fn upgrade(
    State(endpoint): State<SocketEndpoint>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(_) => {
            return ApiError::new(
                StatusCode::UPGRADE_REQUIRED,
                "websocket_required",
                "connect with a WebSocket client",
            )
            .into_response();
        }
    };
    let connection = mint_connection_id();
    let connected_at = chrono::Utc::now().timestamp_millis();
    let headers: HashMap<String, String> =
        headers.iter().filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))).collect();
    let connect = event(
        CONNECT,
        "CONNECT",
        &connection,
        connected_at,
        json!({"headers": headers, "queryStringParameters": query}),
    );
    let answer = endpoint.api.handle(connect).await;
    if !(200..300).contains(&answer.status_code) {
        let status =
            StatusCode::from_u16(u16::try_from(answer.status_code).unwrap_or(500)).unwrap_or(StatusCode::FORBIDDEN);
        let code = if status == StatusCode::UNAUTHORIZED { "unauthorized" } else { "connection_refused" };
        return ApiError::new(status, code, "the WebSocket connection was refused").into_response();
    }
    let outbound = endpoint.registry.register(connection.clone());
    // As API Gateway: the subprotocol the `$connect` answer names is the one agreed.
    let ws = match answer.headers.get("sec-websocket-protocol").and_then(|p| p.to_str().ok()) {
        Some(chosen) => ws.protocols([chosen.to_owned()]),
        None => ws,
    };
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(32 * 1024)
        .on_upgrade(move |socket: WebSocket| run_connection(socket, connection, connected_at, endpoint, outbound))
}

/// Drives one connection until either side closes it, a limit ends it, or the platform
/// stops. Generic over the socket so that tests can drive it with channels.
pub async fn run_connection<S>(
    socket: S,
    connection: ConnectionId,
    connected_at: i64,
    endpoint: SocketEndpoint,
    mut outbound: mpsc::UnboundedReceiver<Outbound>,
) where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message> + Unpin + Send,
{
    let (mut sink, mut stream) = socket.split();
    let mut shutdown = endpoint.shutdown.clone();
    let ends_at = Instant::now() + endpoint.limits.lifetime;
    let mut idle_until = Instant::now() + endpoint.limits.idle;
    let (reason, code) = loop {
        tokio::select! {
            incoming = stream.next() => {
                idle_until = Instant::now() + endpoint.limits.idle;
                let (body, base64) = match incoming {
                    Some(Ok(Message::Text(text))) => (text.to_string(), false),
                    Some(Ok(Message::Binary(bytes))) => (base64::engine::general_purpose::STANDARD.encode(bytes), true),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break ("Client closed the connection", 1000),
                    Some(Err(e)) => {
                        let (code, reason) = close_for(e);
                        break (reason, code);
                    }
                };
                let route = if base64 { oratio_functions::socket::DEFAULT } else { select_route(&body, endpoint.api.routes()) };
                let message = event(route, "MESSAGE", &connection, connected_at, json!({"body": body, "isBase64Encoded": base64}));
                // API Gateway invokes the integration once per message, concurrently.
                let api = endpoint.api.clone();
                tokio::spawn(async move { api.handle(message).await });
            }
            pushed = outbound.recv() => match pushed {
                Some(Outbound::Text(text)) => {
                    idle_until = Instant::now() + endpoint.limits.idle;
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break ("Connection lost", 1006);
                    }
                }
                Some(Outbound::Close) | None => break ("Closed by the server", 1000),
            },
            _ = tokio::time::sleep_until(idle_until) => break ("Idle timeout", 1001),
            _ = tokio::time::sleep_until(ends_at) => break ("Connection lifetime reached", 1001),
            _ = shutdown.changed() => break ("Server shutting down", 1001),
        }
    };
    endpoint.registry.unregister(&connection);
    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
    let disconnect = event(
        DISCONNECT,
        "DISCONNECT",
        &connection,
        connected_at,
        json!({"requestContext": {"disconnectStatusCode": code, "disconnectReason": reason}}),
    );
    endpoint.api.handle(disconnect).await;
}
