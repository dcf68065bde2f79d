//! The one place where errors become HTTP answers: `{ "error", "code", "request_id" }`.
//!
//! Each API area has its own error enum and maps it to [`ApiError`] with a `From`
//! impl; this module turns that into a response. Client errors carry a message a user can
//! act on. Server errors log their whole cause chain and return nothing of it.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::request::current_request_id;

/// The body of every error answer.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// Stable, snake_case, for a program.
    pub code: String,
    /// Quote it when asking for help; it is in the server's logs.
    pub request_id: String,
}

/// An error on its way out of a handler.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    cause: Option<anyhow::Error>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), cause: None, retry_after: None }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Something the caller cannot fix; the cause is logged, never returned.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self { cause: Some(cause.into()), ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error") }
    }

    /// A backend that should recover soon.
    pub fn unavailable(cause: impl Into<anyhow::Error>) -> Self {
        Self {
            cause: Some(cause.into()),
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "temporarily unavailable, retry shortly",
            )
        }
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            let chain = self.cause.as_ref().map(|c| format!("{c:#}")).unwrap_or_default();
            tracing::error!(status = self.status.as_u16(), code = self.code, cause = %chain, "request failed");
        } else {
            tracing::info!(status = self.status.as_u16(), code = self.code, "request refused");
        }
        let body = ErrorBody { error: self.message, code: self.code.into(), request_id: current_request_id() };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match rejection {
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            JsonRejection::JsonSyntaxError(_) => "malformed_json",
            JsonRejection::JsonDataError(_) => "invalid_body",
            _ => "invalid_body",
        };
        let status = match code {
            "unsupported_media_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, code, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request("invalid_path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<oratio_core::table::TableError> for ApiError {
    fn from(e: oratio_core::table::TableError) -> Self {
        use oratio_core::table::TableError;
        match e {
            TableError::InvalidCursor => Self::bad_request("invalid_cursor", "the pagination cursor is not valid"),
            TableError::Unavailable(_) | TableError::Conflict => Self::unavailable(e),
            other => Self::internal(other),
        }
    }
}

impl From<oratio_core::blob::BlobError> for ApiError {
    fn from(e: oratio_core::blob::BlobError) -> Self {
        match e {
            oratio_core::blob::BlobError::Unavailable(_) => Self::unavailable(e),
            other => Self::internal(other),
        }
    }
}

/// The answer to a path no route serves.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// The answer to a method a route does not serve.
pub fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route")
}
