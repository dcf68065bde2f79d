//! Request context: every request gets an id, a tracing span carrying it (and the tenant
//! and agent once known), an access log line, and the id in its `x-request-id` header.
//! Below the handlers, it keeps the error contract: a body announced over the route's
//! limit is refused before it is read (413), a body that turns out longer is cut off at
//! the limit, and an error answer that does not carry the standard body (a rejection
//! from the framework) is given one.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use tracing::Instrument;

use crate::error::ApiError;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of a request, when something upstream (API Gateway, through the Lambda
/// binary) already named it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The address a request came from (the peer on one machine; API Gateway's `sourceIp`),
/// for throttles per client. An extractor: `unknown` when nothing set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<ClientAddr>().cloned().unwrap_or_else(|| ClientAddr("unknown".into())))
    }
}

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
    let served = async move {
        let limit = crate::body_limit(request.method(), request.uri().path());
        if let Some(refusal) = refused_unread(&request, limit) {
            return refusal.into_response();
        }
        let request = request.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
        standard_error(next.run(request).await).await
    };
    let mut response = REQUEST_ID.scope(id.clone(), served.instrument(span.clone())).await;
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

/// Longest path and query string.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// A path over `MAX_URI_BYTES`, or a `Content-Length` over `limit`: refused at once, the
/// body unread.
fn refused_unread(request: &Request, limit: usize) -> Option<ApiError> {
    let uri = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri > MAX_URI_BYTES {
        return Some(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the path and query are {uri} bytes; at most {MAX_URI_BYTES}"),
        ));
    }
    let announced: u64 = request.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()?;
    (announced > limit as u64).then(|| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body announces {announced} bytes; this route takes at most {limit}"),
        )
    })
}

/// An error answer without the standard body (the framework's own rejections are plain
/// text) gets one, keeping its status and its text as the message.
async fn standard_error(response: Response) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).trim().to_owned());
    let message = text
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("the request was refused").to_lowercase());
    let mut standard = ApiError::new(status, error_code(status), message).into_response();
    for name in [header::RETRY_AFTER, header::ALLOW, header::WWW_AUTHENTICATE] {
        if let Some(value) = parts.headers.get(&name) {
            standard.headers_mut().insert(name, value.clone());
        }
    }
    standard
}

/// The standard `code` of an answer known only by its status.
pub fn error_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        411 => "length_required",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        426 => "upgrade_required",
        429 => "rate_limited",
        431 => "headers_too_large",
        503 => "temporarily_unavailable",
        500..=599 => "internal",
        _ => "refused",
    }
}

/// Runs `f` as part of the request named `id` (for event handlers outside axum).
pub async fn within_request<F: Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}
