//! Who is calling. Tenant members present a bearer access token; customers' applications
//! present an API key. The tenant comes from the verified token or key, never from the
//! request's path, query or body.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use oratio_core::api_keys::{self, KeyPrincipal};
use oratio_core::identity::TokenError;
use oratio_core::ids::AgentId;
use oratio_core::ratelimit::Decision;
use oratio_core::tenancy::{self, Membership, TenancyError};

use crate::deps::Deps;
use crate::error::ApiError;

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// A verified member of a tenant.
pub struct Member(pub Membership);

/// Resolves an access token to the member it belongs to.
pub async fn member_of(deps: &Deps, token: Option<&str>) -> Result<Membership, ApiError> {
    let token = token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)?;
    let claims = deps.verifier.verify_access(token).await?;
    let membership =
        tenancy::membership(deps.table.as_ref(), &claims.user_id).await?.ok_or(TenancyError::NotAMember)?;
    tracing::Span::current().record("tenant_id", tracing::field::display(&membership.tenant_id));
    Ok(membership)
}

impl FromRequestParts<Arc<Deps>> for Member {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, deps: &Arc<Deps>) -> Result<Self, Self::Rejection> {
        member_of(deps, bearer(&parts.headers)).await.map(Member)
    }
}

/// A customer's application, holding a live key of the agent in the path; counted
/// against the key's rate limit.
pub struct Customer(pub KeyPrincipal);

/// The API key a request carries (`X-Api-Key`, or a bearer token).
pub fn api_key(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim).or_else(|| bearer(headers))
}

/// Resolves an API key to the key's principal: it must be live, belong to `agent`, and be
/// within its rate limit (this use is counted).
pub async fn customer_of(deps: &Deps, raw: Option<&str>, agent: Option<&AgentId>) -> Result<KeyPrincipal, ApiError> {
    let raw = raw.filter(|k| !k.is_empty()).ok_or_else(|| {
        ApiError::new(StatusCode::UNAUTHORIZED, "missing_api_key", "send the agent's API key in the X-Api-Key header")
    })?;
    let principal = api_keys::authenticate(deps.table.as_ref(), raw).await?;
    let span = tracing::Span::current();
    span.record("tenant_id", tracing::field::display(&principal.tenant_id));
    span.record("agent_id", tracing::field::display(&principal.agent_id));
    if agent != Some(&principal.agent_id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "key_agent_mismatch",
            "this API key belongs to another agent",
        ));
    }
    match deps.rate_limiter.check(principal.key_id.as_str(), principal.rate_limit_per_minute).await? {
        Decision::Allowed => {}
        Decision::Limited { retry_after_secs } => {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("this key allows {} requests a minute", principal.rate_limit_per_minute),
            )
            .retry_after(retry_after_secs));
        }
    }
    deps.usage.record(&principal);
    Ok(principal)
}

/// The agent a `/v1/agents/{agent_id}/...` path names.
pub fn path_agent(path: &str) -> Option<AgentId> {
    path.strip_prefix("/v1/agents/").and_then(|rest| rest.split('/').next()).and_then(|id| id.parse().ok())
}

impl FromRequestParts<Arc<Deps>> for Customer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, deps: &Arc<Deps>) -> Result<Self, Self::Rejection> {
        customer_of(deps, api_key(&parts.headers), path_agent(parts.uri.path()).as_ref()).await.map(Customer)
    }
}
