//! Members of the caller's tenant and their roles; admins invite, change roles, remove.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use oratio_core::identity::{Email, UserId};
use oratio_core::tenancy::{self, Invitation, Member as TenantMember, Role, TenancyError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Member;
use crate::body::{Body, Path};
use crate::deps::Deps;
use crate::error::{ApiError, ErrorBody};

pub fn routes() -> OpenApiRouter<Arc<Deps>> {
    OpenApiRouter::new().routes(routes!(list_members, invite_member)).routes(routes!(change_role, remove_member))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    user_id: String,
    email: String,
    /// `admin`, `operator` or `viewer`.
    role: String,
    joined_at: DateTime<Utc>,
    /// Whether handoffs are emailed to them (by default: admins and operators).
    handoff_emails: bool,
}

impl From<TenantMember> for MemberView {
    fn from(m: TenantMember) -> Self {
        Self {
            user_id: m.user_id.to_string(),
            email: m.email.to_string(),
            role: m.role.as_str().into(),
            handoff_emails: m.takes_handoff_emails(),
            joined_at: m.joined_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvitationView {
    email: String,
    role: String,
    invited_by: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl From<Invitation> for InvitationView {
    fn from(i: Invitation) -> Self {
        Self {
            email: i.email.to_string(),
            role: i.role.as_str().into(),
            invited_by: i.invited_by.to_string(),
            created_at: i.created_at,
            expires_at: i.valid_until,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberList {
    members: Vec<MemberView>,
    invitations: Vec<InvitationView>,
}

/// Members and pending invitations of the caller's organization.
#[utoipa::path(get, path = "/v1/members", tag = "members", security(("bearer" = [])),
    responses((status = 200, body = MemberList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_members(State(deps): State<Arc<Deps>>, Member(actor): Member) -> Result<Json<MemberList>, ApiError> {
    let (members, invitations) = tenancy::members(deps.table.as_ref(), &actor).await?;
    Ok(Json(MemberList {
        members: members.into_iter().map(Into::into).collect(),
        invitations: invitations.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InviteRequest {
    email: String,
    /// `operator` or `viewer`.
    #[schema(value_type = String)]
    role: Role,
}

/// Invites someone (admins only); they receive a code to register with.
#[utoipa::path(post, path = "/v1/members", tag = "members", security(("bearer" = [])), request_body = InviteRequest,
    responses(
        (status = 201, body = InvitationView),
        (status = 400, body = ErrorBody, description = "`invalid_email`, `invalid_role`"),
        (status = 403, body = ErrorBody, description = "`forbidden`: only admins invite"),
        (status = 409, body = ErrorBody, description = "`already_member`"),
    ))]
async fn invite_member(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Body(body): Body<InviteRequest>,
) -> Result<Response, ApiError> {
    let email = Email::parse(&body.email)?;
    let invitation = tenancy::invite(deps.table.as_ref(), deps.mailer.as_ref(), &actor, &email, body.role).await?;
    Ok((StatusCode::CREATED, Json(InvitationView::from(invitation))).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberChange {
    /// `admin`, `operator` or `viewer` (admins only).
    #[schema(value_type = Option<String>)]
    role: Option<Role>,
    /// Whether handoffs are emailed to them (a member's own, or anyone's for an admin).
    handoff_emails: Option<bool>,
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|_| TenancyError::MemberNotFound.into())
}

/// Changes a member's role (admins only; the last admin cannot be demoted) or whether
/// handoffs are emailed to them (a member's own setting, or anyone's for an admin).
#[utoipa::path(patch, path = "/v1/members/{user_id}", tag = "members", security(("bearer" = [])), request_body = MemberChange,
    params(("user_id" = String, Path)),
    responses(
        (status = 200, body = MemberView),
        (status = 400, body = ErrorBody, description = "`invalid_body`: nothing to change"),
        (status = 403, body = ErrorBody, description = "`forbidden`"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`last_admin`"),
    ))]
async fn change_role(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(user): Path<String>,
    Body(body): Body<MemberChange>,
) -> Result<Json<MemberView>, ApiError> {
    let (table, user) = (deps.table.as_ref(), user_id(&user)?);
    // The role first: it is the change that may be refused.
    let changed = match body.role {
        Some(role) => Some(tenancy::change_role(table, &actor, &user, role).await?),
        None => None,
    };
    let member = match body.handoff_emails {
        Some(on) => tenancy::set_handoff_emails(table, &actor, &user, on).await?,
        None => {
            changed.ok_or_else(|| ApiError::bad_request("invalid_body", "send `role`, `handoff_emails` or both"))?
        }
    };
    Ok(Json(member.into()))
}

/// Removes a member (admins only); their account no longer reaches the organization.
#[utoipa::path(delete, path = "/v1/members/{user_id}", tag = "members", security(("bearer" = [])),
    params(("user_id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`last_admin`")))]
async fn remove_member(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    tenancy::remove_member(deps.table.as_ref(), &actor, &user_id(&user)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
