//! Agents of the caller's tenant and their API keys.

use std::sync::Arc;

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use oratio_core::agents::{self, Agent, AgentError, NewAgent};
use oratio_core::api_keys::{self, ApiKey, KeyError};
use oratio_core::ids::{AgentId, KeyId};
use oratio_core::table::Cursor;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Member;
use crate::body::Body;
use crate::deps::Deps;
use crate::error::{ApiError, ErrorBody};

pub fn routes() -> OpenApiRouter<Arc<Deps>> {
    OpenApiRouter::new()
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(get_agent, archive_agent))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

/// An agent id from a path; a malformed one names no agent.
pub fn agent_id(raw: &str) -> Result<AgentId, ApiError> {
    raw.parse().map_err(|_| AgentError::NotFound.into())
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentView {
    agent_id: String,
    name: String,
    /// `text`, `voice` or `both`.
    kind: String,
    greeting: Option<String>,
    /// `draft`, `creating`, `active`, `paused`, `failed`.
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Agent> for AgentView {
    fn from(a: Agent) -> Self {
        Self {
            agent_id: a.agent_id.to_string(),
            name: a.name,
            kind: serde_json::to_value(a.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            greeting: a.greeting,
            status: a.status.as_str().into(),
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct Page {
    /// 1 to 100 (default 50).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentList {
    agents: Vec<AgentView>,
    /// Present when more agents follow.
    next_cursor: Option<String>,
}

/// The organization's agents, oldest first.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", security(("bearer" = [])), params(Page),
    responses((status = 200, body = AgentList), (status = 400, body = ErrorBody, description = "`invalid_cursor`, `invalid_query`"), (status = 401, body = ErrorBody)))]
async fn list_agents(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AgentList>, ApiError> {
    let Query(page) = page?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "`limit` must be 1 to 100"));
    }
    let (agents, next) = agents::list(deps.table.as_ref(), &actor, limit, page.cursor.map(Cursor::from_client)).await?;
    Ok(Json(AgentList {
        agents: agents.into_iter().map(Into::into).collect(),
        next_cursor: next.map(|c| c.as_str().to_owned()),
    }))
}

/// The multipart form that creates an agent.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct AgentForm {
    /// JSON: `{ "name": "Front desk", "kind": "text" | "voice" | "both", "greeting": "Hello!" }`.
    config: String,
}

/// Creates an agent from a multipart form with a `config` part (JSON).
#[utoipa::path(post, path = "/v1/agents", tag = "agents", security(("bearer" = [])),
    request_body(content = AgentForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = AgentView),
        (status = 400, body = ErrorBody, description = "`invalid_agent`, `invalid_config`, `unexpected_part`"),
        (status = 403, body = ErrorBody, description = "`forbidden`: viewers cannot create agents"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: send multipart/form-data"),
    ))]
async fn create_agent(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut form = form.map_err(|e| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send multipart/form-data: {e}"),
        )
    })?;
    let mut config: Option<NewAgent> = None;
    while let Some(part) = form.next_field().await.map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))? {
        match part.name() {
            Some("config") => {
                let bytes = part.bytes().await.map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))?;
                config = Some(
                    serde_json::from_slice(&bytes)
                        .map_err(|e| ApiError::bad_request("invalid_config", format!("the `config` part: {e}")))?,
                );
            }
            other => {
                return Err(ApiError::bad_request(
                    "unexpected_part",
                    format!("unexpected form part {:?}; this endpoint takes a `config` part", other.unwrap_or("")),
                ));
            }
        }
    }
    let config = config.ok_or_else(|| ApiError::bad_request("invalid_config", "the form needs a `config` part"))?;
    let agent = agents::create(deps.table.as_ref(), &actor, config, Vec::new()).await?;
    Ok((StatusCode::CREATED, Json(AgentView::from(agent))).into_response())
}

/// One agent.
#[utoipa::path(get, path = "/v1/agents/{agent_id}", tag = "agents", security(("bearer" = [])), params(("agent_id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)))]
async fn get_agent(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(agent): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    let agent = agents::get(deps.table.as_ref(), &actor.tenant_id, &agent_id(&agent)?).await?;
    Ok(Json(agent.into()))
}

/// Archives an agent: it leaves the organization's view and all its API keys are revoked.
#[utoipa::path(delete, path = "/v1/agents/{agent_id}", tag = "agents", security(("bearer" = [])), params(("agent_id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn archive_agent(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(agent): Path<String>,
) -> Result<StatusCode, ApiError> {
    let agent = agent_id(&agent)?;
    agents::archive(deps.table.as_ref(), &actor, &agent).await?;
    api_keys::revoke_all(deps.table.as_ref(), &actor, &agent).await?;
    oratio_core::audit!("agent_archived", tenant = actor.tenant_id, actor = actor.user_id, agent_id = agent);
    Ok(StatusCode::NO_CONTENT)
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
            status: match k.status {
                api_keys::KeyStatus::Active => "active".into(),
                api_keys::KeyStatus::Revoked => "revoked".into(),
            },
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
