//! Request context: every request gets an id, a tracing span carrying it (and the tenant
//! and agent once known), an access log line, and the id in its `x-request-id` header.

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of a request, when something upstream (API Gateway, through the Lambda
/// binary) already named it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The id of the request this task serves, or `-` outside one.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| "-".into())
}

pub fn new_request_id() -> String {
    format!("req_{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// Middleware: names the request, logs it, and puts the id on the answer.
pub async fn request_context(request: Request, next: Next) -> Response {
    let id = request.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_else(new_request_id);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        tenant_id = tracing::field::Empty,
        agent_id = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response =
        REQUEST_ID.scope(id.clone(), async move { next.run(request).await }.instrument(span.clone())).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "request served"
        )
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Runs `f` as part of the request named `id` (for event handlers outside axum).
pub async fn within_request<F: Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}
