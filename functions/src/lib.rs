//! Oratio's handlers: one axum router per REST area and one event handler per WebSocket
//! API, shared verbatim by the Lambda binaries (`src/bin/`) and the embedded platform.

pub mod agents_api;
pub mod analytics_api;
pub mod auth;
pub mod body;
pub mod conversations_api;
pub mod customer_api;
pub mod dashboard_socket;
pub mod deps;
pub mod error;
pub mod identity_api;
pub mod keys_api;
pub mod logging;
pub mod members_api;
pub mod notifications_api;
pub mod openapi;
pub mod platform;
pub mod request;
pub mod runtime_api;
pub mod socket;
pub mod takeover_api;
pub mod telephony_api;
pub mod tool_http;
pub mod tools_api;
pub mod usage;
pub mod voice_api;
pub mod voice_relay;

use std::sync::Arc;

/// Largest request body: API Gateway's REST payload limit, kept on one machine too; only
/// agent creation (a form with documents) takes that much.
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// Largest body of every other route (JSON).
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

/// The largest body a route takes.
pub fn body_limit(method: &axum::http::Method, path: &str) -> usize {
    if method == axum::http::Method::POST && path.trim_end_matches('/') == "/v1/agents" {
        MAX_REQUEST_BYTES
    } else {
        MAX_JSON_BYTES
    }
}

/// Every tenant and customer route, on one set of dependencies.
pub fn api_routes() -> utoipa_axum::router::OpenApiRouter<Arc<deps::Deps>> {
    identity_api::routes()
        .merge(members_api::routes())
        .merge(notifications_api::routes())
        .merge(agents_api::routes())
        .merge(keys_api::routes())
        .merge(customer_api::routes())
        .merge(conversations_api::routes())
        .merge(telephony_api::routes())
        .merge(tools_api::routes())
}

#[cfg(feature = "lambda")]
pub mod aws;
