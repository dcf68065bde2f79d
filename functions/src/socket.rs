//! WebSocket APIs as API Gateway runs them: `$connect`, message routes chosen by the
//! `action` field of a JSON message (`$request.body.action`), `$default`, `$disconnect`,
//! each delivered to a handler as an `ApiGatewayWebsocketProxyRequest`. The Lambda
//! binaries pass API Gateway's events straight in; the embedded platform builds the same
//! events from its own sockets.

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use oratio_core::ids::ConnectionId;

pub const CONNECT: &str = "$connect";
pub const DISCONNECT: &str = "$disconnect";
pub const DEFAULT: &str = "$default";

/// Largest message API Gateway accepts from a client.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// A WebSocket API's handler.
#[async_trait]
pub trait SocketApi: Send + Sync {
    /// The message routes it serves besides `$connect`, `$disconnect` and `$default`.
    fn routes(&self) -> &'static [&'static str];

    async fn handle(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse;
}

/// The route API Gateway picks for a message under `$request.body.action`.
pub fn select_route<'a>(body: &str, routes: &[&'a str]) -> &'a str {
    let action = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("action").and_then(|a| a.as_str()).map(str::to_owned));
    action.and_then(|a| routes.iter().find(|r| **r == a).copied()).unwrap_or(DEFAULT)
}

/// What a handler needs of an event, checked.
#[derive(Debug, Clone)]
pub struct SocketEvent {
    pub route: String,
    pub connection: ConnectionId,
    pub request_id: String,
    pub body: Option<String>,
    /// The `token` query parameter of `$connect`.
    pub token: Option<String>,
}

impl SocketEvent {
    pub fn parse(event: &ApiGatewayWebsocketProxyRequest) -> Option<Self> {
        let context = &event.request_context;
        Some(Self {
            route: context.route_key.clone()?,
            connection: context.connection_id.as_deref()?.parse().ok()?,
            request_id: context.request_id.clone().unwrap_or_else(crate::request::new_request_id),
            body: event.body.clone(),
            token: event.query_string_parameters.first("token").map(str::to_owned),
        })
    }
}

/// An answer with a status and an optional body.
pub fn reply(status: u16, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response.body = body.map(Body::Text);
    response
}

/// How a WebSocket connection ends on a frame it cannot take (RFC 6455, 7.4.1): its
/// close code and reason.
pub fn close_for(error: axum::Error) -> (u16, &'static str) {
    match error.into_inner().downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Utf8(_)) => (1007, "Text frame is not valid UTF-8"),
        Some(tungstenite::Error::Capacity(_)) => (1009, "Message too big"),
        _ => (1002, "Malformed frame"),
    }
}
