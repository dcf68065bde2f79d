//! Routes only the embedded platform has: the mail outbox and the identity provider's
//! public keys.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use oratio_functions::body::Query;
use oratio_functions::error::{ApiError, ErrorBody};
use oratio_local::{LocalIdentity, Outbox};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Clone)]
pub struct LocalState {
    pub outbox: Outbox,
    pub identity: Arc<LocalIdentity>,
}

pub fn routes() -> OpenApiRouter<LocalState> {
    OpenApiRouter::new().routes(routes!(outbox)).routes(routes!(jwks))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct OutboxQuery {
    /// Only mail to this address.
    to: Option<String>,
    /// At most this many (1 to 200, default 50).
    limit: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutboxMail {
    to: String,
    subject: String,
    text: String,
    sent_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutboxPage {
    mails: Vec<OutboxMail>,
}

/// Mail the embedded platform has "sent", newest first: verification codes, invitations,
/// alerts. The platform listens on loopback only; this is its operator's mail catcher.
#[utoipa::path(get, path = "/local/outbox", tag = "local", params(OutboxQuery),
    responses((status = 200, body = OutboxPage), (status = 400, body = ErrorBody)))]
async fn outbox(
    State(state): State<LocalState>,
    Query(query): Query<OutboxQuery>,
) -> Result<Json<OutboxPage>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "`limit` must be 1 to 200"));
    }
    let wanted = query.to.map(|to| to.trim().to_lowercase());
    // Filtering happens after the page is read: ask for more when filtering.
    let read = if wanted.is_some() { 1000 } else { limit };
    let mails = state
        .outbox
        .newest(read)
        .await?
        .into_iter()
        .filter(|m| wanted.as_deref().is_none_or(|to| m.mail.to.as_str() == to))
        .take(limit)
        .map(|m| OutboxMail {
            to: m.mail.to.to_string(),
            subject: m.mail.subject,
            text: m.mail.text,
            sent_at: m.sent_at,
        })
        .collect();
    Ok(Json(OutboxPage { mails }))
}

/// The public keys that sign the embedded identity provider's tokens.
#[utoipa::path(get, path = "/local/identity/.well-known/jwks.json", tag = "local",
    responses((status = 200, description = "A JSON Web Key Set", body = serde_json::Value)))]
async fn jwks(State(state): State<LocalState>) -> Json<serde_json::Value> {
    Json(state.identity.jwks())
}
