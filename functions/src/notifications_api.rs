//! Handoff notifications for the tenant's people: the list (unread or all, newest first),
//! acknowledging one (read, by whom, when, and how long after the handoff) and resolving
//! it with its outcome.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use oratio_core::ids::NotificationId;
use oratio_core::notifications::{self, Notification, NotificationError};
use oratio_core::time::now;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::agents_api::Page;
use crate::auth::Member;
use crate::body::{Body, Path, Query};
use crate::deps::Deps;
use crate::error::{ApiError, ErrorBody};

pub fn routes() -> OpenApiRouter<Arc<Deps>> {
    OpenApiRouter::new().routes(routes!(list_notifications)).routes(routes!(acknowledge)).routes(routes!(resolve))
}

impl From<NotificationError> for ApiError {
    fn from(e: NotificationError) -> Self {
        match e {
            NotificationError::NotFound => ApiError::not_found("no such notification"),
            NotificationError::Invalid(message) => ApiError::new(StatusCode::CONFLICT, "invalid_state", message),
            NotificationError::Tenancy(e) => e.into(),
            NotificationError::Table(e) => e.into(),
        }
    }
}

fn notification_id(raw: &str) -> Result<NotificationId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("no such notification"))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct Filter {
    /// `unread` (default) or `all`.
    status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    /// `{notification_id, agent_id, session_id, channel, reason, summary, details,
    /// created_at, status (unread, acknowledged, resolved), acknowledged_by,
    /// acknowledged_at, acknowledged_after_ms, resolved_by, resolved_at, outcome}`.
    #[schema(value_type = Vec<Object>)]
    notifications: Vec<Notification>,
    /// Present when more follow.
    next_cursor: Option<String>,
}

/// The organization's handoff notifications, newest first: the unread (the default) or all.
#[utoipa::path(get, path = "/v1/notifications", tag = "notifications", security(("bearer" = [])),
    params(Filter, Page),
    responses((status = 200, body = NotificationList),
        (status = 400, body = ErrorBody, description = "`invalid_query`, `invalid_cursor`"), (status = 401, body = ErrorBody)))]
async fn list_notifications(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Query(filter): Query<Filter>,
    Query(page): Query<Page>,
) -> Result<Json<NotificationList>, ApiError> {
    let unread_only = match filter.status.as_deref() {
        None | Some("unread") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::bad_request("invalid_query", format!("`status` is unread or all, not {other:?}")));
        }
    };
    let (limit, cursor) = page.bounds()?;
    let (notifications, next) = notifications::list(deps.table.as_ref(), &actor, unread_only, limit, cursor).await?;
    Ok(Json(NotificationList { notifications, next_cursor: next.map(|c| c.as_str().to_owned()) }))
}

/// Marks a notification read (operators and admins). The first acknowledgement stands.
#[utoipa::path(post, path = "/v1/notifications/{notification_id}/ack", tag = "notifications", security(("bearer" = [])),
    params(("notification_id" = String, Path)),
    responses((status = 200, description = "The notification", body = Object), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`forbidden`: viewers cannot"), (status = 404, body = ErrorBody)))]
async fn acknowledge(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(id): Path<String>,
) -> Result<Json<Notification>, ApiError> {
    let id = notification_id(&id)?;
    Ok(Json(notifications::acknowledge(deps.table.as_ref(), &actor, &id, now()).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    /// What was done (1 to 500 characters), e.g. "refund approved by phone".
    outcome: String,
}

/// Closes a notification with its outcome (operators and admins); an unread one is
/// acknowledged at the same time.
#[utoipa::path(post, path = "/v1/notifications/{notification_id}/resolve", tag = "notifications", security(("bearer" = [])),
    params(("notification_id" = String, Path)), request_body = Resolution,
    responses((status = 200, description = "The notification", body = Object),
        (status = 400, body = ErrorBody, description = "`invalid_body`, `malformed_json`"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`invalid_state`: already resolved, or an outcome out of bounds")))]
async fn resolve(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(id): Path<String>,
    Body(resolution): Body<Resolution>,
) -> Result<Json<Notification>, ApiError> {
    let id = notification_id(&id)?;
    Ok(Json(notifications::resolve(deps.table.as_ref(), &actor, &id, &resolution.outcome, now()).await?))
}
