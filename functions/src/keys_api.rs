//! The API keys of an agent, with which its customers' applications reach it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use oratio_core::api_keys::{self, ApiKey, KeyError};
use oratio_core::ids::KeyId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::agents_api::agent_id;
use crate::auth::Member;
use crate::body::{Body, Path};
use crate::deps::Deps;
use crate::error::{ApiError, ErrorBody};

pub fn routes() -> OpenApiRouter<Arc<Deps>> {
    OpenApiRouter::new().routes(routes!(list_keys, create_key)).routes(routes!(revoke_key))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    key_id: String,
    agent_id: String,
    name: String,
    /// The first characters of the secret, to tell keys apart.
    prefix: String,
    /// `active` or `revoked`.
    status: String,
    rate_limit_per_minute: u32,
    created_at: DateTime<Utc>,
    created_by: String,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    use_count: u64,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            key_id: k.key_id.to_string(),
            agent_id: k.agent_id.to_string(),
            name: k.name,
            prefix: k.prefix,
            status: k.status.as_str().into(),
            rate_limit_per_minute: k.rate_limit_per_minute,
            created_at: k.created_at,
            created_by: k.created_by,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
            use_count: k.use_count,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    keys: Vec<KeyView>,
}

/// The agent's API keys (metadata only; secrets are never shown again).
#[utoipa::path(get, path = "/v1/agents/{agent_id}/keys", tag = "keys", security(("bearer" = [])), params(("agent_id" = String, Path)),
    responses((status = 200, body = KeyList), (status = 404, body = ErrorBody)))]
async fn list_keys(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(agent): Path<String>,
) -> Result<Json<KeyList>, ApiError> {
    let keys = api_keys::list(deps.table.as_ref(), &actor, &agent_id(&agent)?).await?;
    Ok(Json(KeyList { keys: keys.into_iter().map(Into::into).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewKey {
    /// What the key is for, e.g. "website widget".
    name: String,
    /// Requests a minute this key may make (default 120).
    #[serde(default)]
    rate_limit_per_minute: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    key: KeyView,
    /// The secret: shown now and never again.
    secret: String,
}

/// Creates an API key for the agent (admins only). The secret is in this answer only.
#[utoipa::path(post, path = "/v1/agents/{agent_id}/keys", tag = "keys", security(("bearer" = [])), params(("agent_id" = String, Path)),
    request_body = NewKey,
    responses(
        (status = 201, body = CreatedKey),
        (status = 400, body = ErrorBody, description = "`invalid_key_name`, `invalid_rate_limit`"),
        (status = 403, body = ErrorBody, description = "`forbidden`: only admins manage keys"),
        (status = 404, body = ErrorBody),
    ))]
async fn create_key(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(agent): Path<String>,
    Body(body): Body<NewKey>,
) -> Result<Response, ApiError> {
    let (key, secret) =
        api_keys::create(deps.table.as_ref(), &actor, &agent_id(&agent)?, &body.name, body.rate_limit_per_minute)
            .await?;
    let created = CreatedKey { key: key.into(), secret: secret.expose().to_owned() };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Revokes a key; requests using it are refused from this moment.
#[utoipa::path(delete, path = "/v1/agents/{agent_id}/keys/{key_id}", tag = "keys", security(("bearer" = [])),
    params(("agent_id" = String, Path), ("key_id" = String, Path)),
    responses((status = 200, body = KeyView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_key(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path((agent, key)): Path<(String, String)>,
) -> Result<Json<KeyView>, ApiError> {
    let key: KeyId = key.parse().map_err(|_| ApiError::from(KeyError::NotFound))?;
    let revoked = api_keys::revoke(deps.table.as_ref(), &actor, &agent_id(&agent)?, &key).await?;
    Ok(Json(revoked.into()))
}
