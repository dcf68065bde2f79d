//! Sign-up, confirmation, sign-in, token refresh, sign-out, and `GET /v1/me`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use oratio_core::identity::{Email, Password};
use oratio_core::ids::TenantId;
use oratio_core::sign_in::{self, sign_in};
use oratio_core::tenancy::{self, Role, TenancyError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Member, bearer};
use crate::body::Body;
use crate::deps::Deps;
use crate::error::{ApiError, ErrorBody};
use crate::request::ClientAddr;

pub fn routes() -> OpenApiRouter<Arc<Deps>> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(confirm))
        .routes(routes!(resend_code))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    email: String,
    /// At least 12 characters.
    password: String,
    /// For a new organization; leave out when joining with an invitation.
    #[serde(default)]
    organization_name: Option<String>,
    /// The code of an invitation to an existing organization.
    #[serde(default)]
    invitation_code: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    user_id: String,
    #[schema(value_type = String)]
    tenant_id: TenantId,
    email: String,
    /// What to do next: confirm the email with the code that was sent.
    next: String,
}

/// Registers an organization and its first admin, or joins one with an invitation.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = Registered, description = "Created; a verification code was emailed"),
        (status = 400, body = ErrorBody, description = "`invalid_email`, `weak_password`, `invalid_organization_name`, `invalid_invitation`, `invalid_body`"),
        (status = 409, body = ErrorBody, description = "`duplicate_email`"),
    ))]
async fn register(State(deps): State<Arc<Deps>>, Body(body): Body<RegisterRequest>) -> Result<Response, ApiError> {
    let email = Email::parse(&body.email)?;
    let password = Password::parse(&body.password)?;
    let registration = match (body.organization_name.as_deref(), body.invitation_code.as_deref()) {
        (Some(name), None) => {
            tenancy::register(deps.table.as_ref(), deps.identity.as_ref(), &email, &password, name).await?
        }
        (None, Some(code)) => {
            tenancy::join(deps.table.as_ref(), deps.identity.as_ref(), &email, &password, code).await?
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "give either `organization_name` (a new organization) or `invitation_code` (joining one)",
            ));
        }
    };
    let registered = Registered {
        user_id: registration.user_id.to_string(),
        tenant_id: registration.tenant_id,
        email: email.to_string(),
        next: "confirm the email address with the code sent to it (POST /v1/auth/confirm)".into(),
    };
    Ok((StatusCode::CREATED, Json(registered)).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfirmRequest {
    email: String,
    code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Confirmed {
    confirmed: bool,
}

/// Confirms an email address with the code that was sent to it.
#[utoipa::path(post, path = "/v1/auth/confirm", tag = "auth", request_body = ConfirmRequest,
    responses(
        (status = 200, body = Confirmed),
        (status = 400, body = ErrorBody, description = "`invalid_code`, `code_expired`, `invalid_email`"),
        (status = 401, body = ErrorBody, description = "`unknown_user`"),
    ))]
async fn confirm(State(deps): State<Arc<Deps>>, Body(body): Body<ConfirmRequest>) -> Result<Json<Confirmed>, ApiError> {
    let email = Email::parse(&body.email)?;
    deps.identity.confirm(&email, &body.code).await?;
    Ok(Json(Confirmed { confirmed: true }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResendRequest {
    email: String,
}

/// Sends a new confirmation code: three resends per email per 15 minutes, ten requests
/// per client per minute; wrong guesses count across resends (five spent lock the address
/// for 15 minutes).
#[utoipa::path(post, path = "/v1/auth/resend-code", tag = "auth", request_body = ResendRequest,
    responses(
        (status = 202, description = "A new code was sent"),
        (status = 400, body = ErrorBody, description = "`invalid_email`"),
        (status = 401, body = ErrorBody, description = "`unknown_user`"),
        (status = 429, body = ErrorBody, description = "`too_many_attempts`, with `Retry-After`"),
    ))]
async fn resend_code(
    State(deps): State<Arc<Deps>>,
    client: ClientAddr,
    Body(body): Body<ResendRequest>,
) -> Result<StatusCode, ApiError> {
    let email = Email::parse(&body.email)?;
    sign_in::resend_code(deps.table.as_ref(), deps.rate_limiter.as_ref(), deps.identity.as_ref(), &email, &client.0)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    id_token: String,
    access_token: String,
    /// Only on sign-in; a refresh keeps the same refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// Seconds until the access token expires.
    expires_in: u64,
    token_type: String,
}

impl From<oratio_core::identity::Tokens> for TokenResponse {
    fn from(t: oratio_core::identity::Tokens) -> Self {
        Self {
            id_token: t.id_token,
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            expires_in: t.expires_in,
            token_type: "Bearer".into(),
        }
    }
}

/// Signs in. Five failures for one email within 15 minutes lock it for the rest of the window.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = ErrorBody, description = "`invalid_email`"),
        (status = 401, body = ErrorBody, description = "`unknown_user`, `wrong_password`"),
        (status = 403, body = ErrorBody, description = "`user_not_confirmed`"),
        (status = 429, body = ErrorBody, description = "`too_many_attempts`, with `Retry-After`"),
    ))]
async fn login(State(deps): State<Arc<Deps>>, Body(body): Body<LoginRequest>) -> Result<Json<TokenResponse>, ApiError> {
    let email = Email::parse(&body.email)?;
    let password = Password::attempt(&body.password)?;
    let tokens =
        sign_in(deps.table.as_ref(), deps.identity.as_ref(), deps.verifier.as_ref(), &email, &password).await?;
    Ok(Json(tokens.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// New ID and access tokens for a refresh token.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody, description = "`invalid_refresh_token`")))]
async fn refresh(
    State(deps): State<Arc<Deps>>,
    Body(body): Body<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let tokens = deps.identity.refresh(body.refresh_token.trim()).await?;
    Ok(Json(tokens.into()))
}

/// Signs out everywhere: every refresh token of the caller stops working.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Signed out"), (status = 401, body = ErrorBody)))]
async fn logout(
    State(deps): State<Arc<Deps>>,
    Member(member): Member,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    deps.identity.sign_out(bearer(&headers).unwrap_or_default()).await?;
    oratio_core::audit!("sign_out", tenant = member.tenant_id, actor = member.user_id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MeUser {
    id: String,
    email: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MeTenant {
    id: String,
    organization_name: String,
    created_at: DateTime<Utc>,
    metadata: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    user: MeUser,
    #[schema(value_type = String)]
    role: Role,
    tenant: MeTenant,
}

/// The caller: user, role, tenant.
#[utoipa::path(get, path = "/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "`not_a_member`")))]
async fn me(State(deps): State<Arc<Deps>>, Member(member): Member) -> Result<Json<Me>, ApiError> {
    let tenant = tenancy::tenant(deps.table.as_ref(), &member.tenant_id).await?.ok_or(TenancyError::NotAMember)?;
    Ok(Json(Me {
        user: MeUser { id: member.user_id.to_string(), email: member.email.to_string() },
        role: member.role,
        tenant: MeTenant {
            id: tenant.tenant_id.to_string(),
            organization_name: tenant.organization_name,
            created_at: tenant.created_at,
            metadata: tenant.metadata,
        },
    }))
}
