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

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl ApiError {
    /// Logs the error (with its cause, for ours) and gives the body the caller sees.
    pub fn into_body(self) -> ErrorBody {
        if self.status.is_server_error() {
            let chain = self.cause.as_ref().map(|c| format!("{c:#}")).unwrap_or_default();
            tracing::error!(status = self.status.as_u16(), code = self.code, cause = %chain, "request failed");
        } else {
            tracing::info!(status = self.status.as_u16(), code = self.code, "request refused");
        }
        ErrorBody { error: self.message, code: self.code.into(), request_id: current_request_id() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, retry_after) = (self.status, self.retry_after);
        let mut response = (status, Json(self.into_body())).into_response();
        if let Some(seconds) = retry_after {
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
        let (status, code) = match code {
            "unsupported_media_type" => (StatusCode::UNSUPPORTED_MEDIA_TYPE, code),
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            _ => (StatusCode::BAD_REQUEST, code),
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

impl From<oratio_core::identity::TokenError> for ApiError {
    fn from(e: oratio_core::identity::TokenError) -> Self {
        use oratio_core::identity::TokenError;
        let message = e.to_string();
        match e {
            TokenError::Missing => {
                Self::new(StatusCode::UNAUTHORIZED, "missing_token", "send `Authorization: Bearer <access token>`")
            }
            TokenError::Expired => {
                Self::new(StatusCode::UNAUTHORIZED, "token_expired", "the access token has expired; refresh it")
            }
            TokenError::Invalid(_) => Self::new(StatusCode::UNAUTHORIZED, "invalid_token", message),
            TokenError::KeysUnavailable => Self::unavailable(e),
        }
    }
}

impl From<oratio_core::identity::IdentityError> for ApiError {
    fn from(e: oratio_core::identity::IdentityError) -> Self {
        use oratio_core::identity::IdentityError as E;
        let message = e.to_string();
        let (status, code) = match e {
            E::InvalidEmail => (StatusCode::BAD_REQUEST, "invalid_email"),
            E::WeakPassword(_) => (StatusCode::BAD_REQUEST, "weak_password"),
            E::DuplicateEmail => (StatusCode::CONFLICT, "duplicate_email"),
            E::UnknownUser => (StatusCode::UNAUTHORIZED, "unknown_user"),
            E::WrongPassword => (StatusCode::UNAUTHORIZED, "wrong_password"),
            E::NotConfirmed => (StatusCode::FORBIDDEN, "user_not_confirmed"),
            E::InvalidCode => (StatusCode::BAD_REQUEST, "invalid_code"),
            E::ExpiredCode => (StatusCode::BAD_REQUEST, "code_expired"),
            E::InvalidRefreshToken => (StatusCode::UNAUTHORIZED, "invalid_refresh_token"),
            E::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
            E::Throttled { retry_after_secs } => {
                return Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message)
                    .retry_after(retry_after_secs.unwrap_or(60));
            }
            E::Unavailable(_) => return Self::unavailable(e),
            E::Backend(_) => return Self::internal(e),
        };
        Self::new(status, code, message)
    }
}

impl From<oratio_core::tenancy::TenancyError> for ApiError {
    fn from(e: oratio_core::tenancy::TenancyError) -> Self {
        use oratio_core::tenancy::TenancyError as E;
        let message = e.to_string();
        let (status, code) = match e {
            E::InvalidOrganizationName => (StatusCode::BAD_REQUEST, "invalid_organization_name"),
            E::Identity(e) => return e.into(),
            E::NotAMember => (StatusCode::FORBIDDEN, "not_a_member"),
            E::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            E::MemberNotFound => (StatusCode::NOT_FOUND, "not_found"),
            E::LastAdmin => (StatusCode::CONFLICT, "last_admin"),
            E::InvalidInvitedRole => (StatusCode::BAD_REQUEST, "invalid_role"),
            E::AlreadyMember => (StatusCode::CONFLICT, "already_member"),
            E::InvalidInvitation => (StatusCode::BAD_REQUEST, "invalid_invitation"),
            E::Table(e) => return e.into(),
            E::Mail(oratio_core::mail::MailError::Unavailable(_)) => return Self::unavailable(e),
            E::Mail(_) => return Self::internal(e),
        };
        Self::new(status, code, message)
    }
}

impl From<oratio_core::agents::AgentError> for ApiError {
    fn from(e: oratio_core::agents::AgentError) -> Self {
        use oratio_core::agents::AgentError as E;
        match e {
            E::Invalid(message) => Self::bad_request("invalid_agent", message),
            E::NotFound => Self::not_found("no such agent"),
            E::Busy(message) => Self::new(StatusCode::CONFLICT, "agent_busy", message),
            E::Tenancy(e) => e.into(),
            E::Table(e) => e.into(),
        }
    }
}

impl From<oratio_core::conversations::ConversationError> for ApiError {
    fn from(e: oratio_core::conversations::ConversationError) -> Self {
        use oratio_core::conversations::ConversationError as E;
        let message = e.to_string();
        match e {
            E::Invalid(message) => Self::bad_request("invalid_request", message),
            E::MessageTooLong => Self::new(StatusCode::PAYLOAD_TOO_LARGE, "message_too_long", message),
            E::SessionNotFound => Self::new(StatusCode::NOT_FOUND, "session_not_found", message),
            E::SessionEnded => Self::new(StatusCode::CONFLICT, "session_ended", message),
            E::SessionBusy => Self::new(StatusCode::CONFLICT, "session_busy", message).retry_after(1),
            E::AlreadyTakenOver { .. } => Self::new(StatusCode::CONFLICT, "already_taken_over", message),
            E::NotTakenOver => Self::new(StatusCode::CONFLICT, "not_taken_over", message),
            E::Table(e) => e.into(),
        }
    }
}

impl From<oratio_core::turns::TurnError> for ApiError {
    fn from(e: oratio_core::turns::TurnError) -> Self {
        use oratio_core::turns::TurnError as E;
        let message = e.to_string();
        match e {
            E::Conversation(e) => e.into(),
            E::Agent(e) => e.into(),
            E::AgentPaused => Self::new(StatusCode::CONFLICT, "agent_paused", message),
            E::AgentNotReady(_) => Self::new(StatusCode::CONFLICT, "agent_not_ready", message),
            E::Runtime(e) => e.into(),
            E::Tenancy(e) => e.into(),
            E::TakenOver { .. } => Self::new(StatusCode::CONFLICT, "taken_over", message),
        }
    }
}

impl From<oratio_core::runtime::RuntimeError> for ApiError {
    fn from(e: oratio_core::runtime::RuntimeError) -> Self {
        use oratio_core::runtime::RuntimeError as E;
        match e {
            E::Timeout => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "agent_timeout",
                "the agent did not answer in time; send the message again",
            )
            .retry_after(1),
            E::NotRunning => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "agent_unavailable",
                "the agent is not running; try again shortly",
            )
            .retry_after(5),
            E::AgentFailed(reason) => Self {
                cause: Some(anyhow::anyhow!("the agent failed: {reason}")),
                ..Self::new(StatusCode::BAD_GATEWAY, "agent_error", "the agent could not answer this message")
            },
            e @ E::Unavailable(_) => Self::unavailable(e),
            e => Self::internal(e),
        }
    }
}

impl From<oratio_core::api_keys::KeyError> for ApiError {
    fn from(e: oratio_core::api_keys::KeyError) -> Self {
        use oratio_core::api_keys::KeyError as E;
        let message = e.to_string();
        match e {
            E::Unknown => Self::new(StatusCode::UNAUTHORIZED, "invalid_api_key", message),
            E::InvalidName => Self::bad_request("invalid_key_name", message),
            E::InvalidRateLimit => Self::bad_request("invalid_rate_limit", message),
            E::NotFound => Self::not_found("no such key"),
            E::Agent(e) => e.into(),
            E::Tenancy(e) => e.into(),
            E::Table(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_error_returns_nothing_of_its_cause() {
        let cause = anyhow::anyhow!("SELECT * FROM items WHERE secret = 'hunter2'").context("while reading the table");
        let response =
            crate::request::within_request("req_test".into(), async { ApiError::internal(cause).into_response() })
                .await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body, serde_json::json!({"error": "internal error", "code": "internal", "request_id": "req_test"}));
    }
}
