//! Agents of the caller's tenant.

use std::sync::Arc;

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use oratio_core::agents::{self, Agent, AgentError, AgentStatus, DocumentRef, NewAgent};
use oratio_core::api_keys;
use oratio_core::blob::BlobKey;
use oratio_core::ids::AgentId;
use oratio_core::knowledge::DocumentError;
use oratio_core::table::Cursor;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Member;
use crate::body::{Body, Path, Query};
use crate::deps::Deps;
use crate::error::{ApiError, ErrorBody};
use oratio_core::creation;

pub fn routes() -> OpenApiRouter<Arc<Deps>> {
    OpenApiRouter::new()
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(get_agent, update_agent, archive_agent))
        .routes(routes!(redeploy_agent))
        .routes(routes!(pause_agent))
        .routes(routes!(resume_agent))
        .routes(routes!(agent_code))
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
    /// The SOP the agent follows (empty for a draft).
    sop: String,
    handoff_conditions: Vec<String>,
    documents: Vec<DocumentView>,
    /// Creation steps as they happened.
    #[schema(value_type = Vec<Object>)]
    progress: Vec<oratio_core::agents::ProgressStep>,
    /// Why creation failed, when it did.
    failure_reason: Option<String>,
    /// The code version deployed.
    version: Option<String>,
    #[schema(value_type = Object)]
    voice: oratio_core::agents::VoiceSettings,
    /// The SOP changed since the last deployment: `POST .../redeploy` applies it.
    needs_redeploy: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentView {
    document_id: String,
    title: String,
    content_type: String,
    size: u64,
}

impl From<Agent> for AgentView {
    fn from(a: Agent) -> Self {
        Self {
            agent_id: a.agent_id.to_string(),
            name: a.name,
            kind: a.kind.as_str().into(),
            greeting: a.greeting,
            status: a.status.as_str().into(),
            created_at: a.created_at,
            updated_at: a.updated_at,
            sop: a.sop,
            handoff_conditions: a.handoff_conditions,
            documents: a
                .documents
                .into_iter()
                .map(|d| DocumentView {
                    document_id: d.document_id,
                    title: d.title,
                    content_type: d.content_type,
                    size: d.size,
                })
                .collect(),
            progress: a.progress,
            failure_reason: a.failure_reason,
            version: a.version,
            voice: a.voice,
            needs_redeploy: a.needs_redeploy,
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

impl Page {
    /// The page size and where to start, checked.
    pub fn bounds(self) -> Result<(usize, Option<Cursor>), ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::bad_request("invalid_query", "`limit` must be 1 to 100"));
        }
        Ok((limit, self.cursor.map(Cursor::from_client)))
    }
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
    Query(page): Query<Page>,
) -> Result<Json<AgentList>, ApiError> {
    let (limit, cursor) = page.bounds()?;
    let (agents, next) = agents::list(deps.table.as_ref(), &actor, limit, cursor).await?;
    Ok(Json(AgentList {
        agents: agents.into_iter().map(Into::into).collect(),
        next_cursor: next.map(|c| c.as_str().to_owned()),
    }))
}

/// The multipart form that creates an agent.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct AgentForm {
    /// JSON: `{ "name", "kind": "text" | "voice" | "both", "sop"?, "greeting"?, "handoff_conditions"?: [..] }`.
    /// With an `sop`, creation starts (202); without, the agent is saved as a draft (201).
    config: String,
    /// Knowledge documents (.txt, .md, .html, .csv, .pdf; 10 MB each, 20 at most).
    #[schema(value_type = Vec<String>, format = Binary)]
    documents: Vec<String>,
}

/// A document received in the form, checked, not stored yet.
struct Upload {
    title: String,
    content_type: &'static str,
    bytes: Vec<u8>,
}

async fn read_form(mut form: Multipart) -> Result<(NewAgent, Vec<Upload>), ApiError> {
    let mut config: Option<NewAgent> = None;
    let mut uploads = Vec::new();
    let body_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the form is too large")
        } else {
            ApiError::bad_request("invalid_body", e.body_text())
        }
    };
    while let Some(part) = form.next_field().await.map_err(body_error)? {
        match part.name() {
            Some("config") => {
                let bytes = part.bytes().await.map_err(body_error)?;
                config = Some(
                    serde_json::from_slice(&bytes)
                        .map_err(|e| ApiError::bad_request("invalid_config", format!("the `config` part: {e}")))?,
                );
            }
            Some("documents") => {
                let title = agents::document_title(part.file_name().unwrap_or_default());
                let content_type = agents::document_content_type(&title).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_document",
                        format!("{title:?} is not a .txt, .md, .html, .csv or .pdf file"),
                    )
                })?;
                let bytes = part.bytes().await.map_err(body_error)?;
                if bytes.len() > agents::MAX_DOCUMENT_BYTES {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "document_too_large",
                        format!("{title} is larger than {} MB", agents::MAX_DOCUMENT_BYTES / (1024 * 1024)),
                    ));
                }
                if bytes.is_empty() {
                    return Err(ApiError::bad_request("empty_document", format!("{title} is empty")));
                }
                uploads.push(Upload { title, content_type, bytes: bytes.to_vec() });
                if uploads.len() > agents::MAX_DOCUMENTS {
                    return Err(ApiError::bad_request(
                        "too_many_documents",
                        format!("at most {} documents", agents::MAX_DOCUMENTS),
                    ));
                }
            }
            other => {
                return Err(ApiError::bad_request(
                    "unexpected_part",
                    format!(
                        "unexpected form part {:?}; this endpoint takes `config` and `documents`",
                        other.unwrap_or("")
                    ),
                ));
            }
        }
    }
    let config = config.ok_or_else(|| ApiError::bad_request("invalid_config", "the form needs a `config` part"))?;
    if config.sop.is_none() && !uploads.is_empty() {
        return Err(ApiError::bad_request("invalid_config", "documents need an `sop`: an agent is created from both"));
    }
    Ok((config, uploads))
}

/// Creates an agent: with an SOP, its creation starts at once (202, status `creating`;
/// follow it on `GET /v1/agents/{agent_id}` or the dashboard socket); without, a draft (201).
#[utoipa::path(post, path = "/v1/agents", tag = "agents", security(("bearer" = [])),
    request_body(content = AgentForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = AgentView, description = "A draft"),
        (status = 202, body = AgentView, description = "Creation started"),
        (status = 400, body = ErrorBody, description = "`invalid_agent`, `invalid_config`, `unexpected_part`, `empty_document`, `too_many_documents`"),
        (status = 403, body = ErrorBody, description = "`forbidden`: viewers cannot create agents"),
        (status = 413, body = ErrorBody, description = "`document_too_large`, `payload_too_large`"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type` (not multipart), `unsupported_document`"),
        (status = 422, body = ErrorBody, description = "`unreadable_document`; `document_over_limit`: a document over a reading limit (inflated size, pages, objects, characters, memory, time), named in the message"),
        (status = 503, body = ErrorBody, description = "`unavailable`: the document reader or a store failed; nothing was kept"),
    ))]
async fn create_agent(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    actor.require(oratio_core::tenancy::Permission::ManageAgents)?;
    let form = form.map_err(|e| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send multipart/form-data: {e}"),
        )
    })?;
    let (config, uploads) = read_form(form).await?;
    for upload in &uploads {
        deps.documents
            .read(upload.content_type, &upload.title, upload.bytes.clone())
            .await
            .map_err(|e| refused(&upload.title, e))?;
    }
    // Documents are stored before the answer, under the tenant's prefix; if anything
    // after fails, they are removed again.
    let mut stored = Vec::new();
    let mut documents = Vec::new();
    for upload in uploads {
        let document_id = format!("doc_{}", ulid::Ulid::new().to_string().to_lowercase());
        let key = BlobKey::for_tenant(
            &actor.tenant_id,
            &format!("documents/{document_id}/{}", agents::safe_file_name(&upload.title)),
        )?;
        let size = upload.bytes.len() as u64;
        if let Err(e) = deps.blobs.put(&key, upload.bytes, upload.content_type).await {
            remove(&deps, &stored).await;
            return Err(e.into());
        }
        documents.push(DocumentRef {
            document_id,
            title: upload.title,
            blob: key.to_string(),
            content_type: upload.content_type.into(),
            size,
        });
        stored.push(key);
    }
    let agent = match agents::create(deps.table.as_ref(), &actor, config, documents).await {
        Ok(agent) => agent,
        Err(e) => {
            remove(&deps, &stored).await;
            return Err(e.into());
        }
    };
    if agent.status != AgentStatus::Creating {
        return Ok((StatusCode::CREATED, Json(AgentView::from(agent))).into_response());
    }
    let input = serde_json::json!({"tenant_id": agent.tenant_id, "agent_id": agent.agent_id});
    if let Err(e) = deps.workflow.start(creation::MACHINE, agent.agent_id.as_str(), input).await {
        let _ = deps.table.delete(&agents::agent_key(&agent.tenant_id, &agent.agent_id), None).await;
        remove(&deps, &stored).await;
        return Err(ApiError::unavailable(e));
    }
    oratio_core::audit!(
        "agent_creation_started",
        tenant = actor.tenant_id,
        actor = actor.user_id,
        agent_id = agent.agent_id
    );
    Ok((StatusCode::ACCEPTED, Json(AgentView::from(agent))).into_response())
}

/// A document agents could not read, refused before anything is stored.
fn refused(title: &str, e: DocumentError) -> ApiError {
    match e {
        DocumentError::Unsupported { message } => {
            ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_document", format!("{title}: {message}"))
        }
        DocumentError::Unreadable { message } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unreadable_document", format!("{title}: {message}"))
        }
        DocumentError::OverLimit { message, .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "document_over_limit", format!("{title}: {message}"))
        }
        DocumentError::Failed { message } => ApiError::unavailable(anyhow::anyhow!(message)),
    }
}

async fn remove(deps: &Deps, keys: &[BlobKey]) {
    for key in keys {
        if let Err(e) = deps.blobs.delete(key).await {
            tracing::warn!(cause = %format!("{e:#}"), key = %key, "removing an upload of a failed request failed");
        }
    }
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

/// Changes an agent's configuration (operators and admins): `name`, `greeting`, `voice`,
/// `handoff_conditions` apply to new sessions at once; a new `sop` marks the agent
/// `needs_redeploy`.
#[utoipa::path(patch, path = "/v1/agents/{agent_id}", tag = "agents", security(("bearer" = [])), params(("agent_id" = String, Path)),
    request_body(content = Object, description = "`{ name?, greeting?, voice?: {voice, language, speaking_rate}, handoff_conditions?, sop? }`"),
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody, description = "`invalid_agent`, `invalid_body`"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_agent(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(agent): Path<String>,
    Body(change): Body<agents::AgentChange>,
) -> Result<Json<AgentView>, ApiError> {
    let agent = agents::update(deps.table.as_ref(), &actor, &agent_id(&agent)?, change).await?;
    Ok(Json(agent.into()))
}

/// Creates the agent again from its current SOP and documents (operators and admins).
#[utoipa::path(post, path = "/v1/agents/{agent_id}/redeploy", tag = "agents", security(("bearer" = [])), params(("agent_id" = String, Path)),
    responses((status = 202, body = AgentView), (status = 400, body = ErrorBody, description = "`invalid_agent`: no SOP"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`agent_busy`: being created")))]
async fn redeploy_agent(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(agent): Path<String>,
) -> Result<Response, ApiError> {
    let id = agent_id(&agent)?;
    let before = agents::get(deps.table.as_ref(), &actor.tenant_id, &id).await?;
    let agent = agents::begin_redeploy(deps.table.as_ref(), &actor, &id).await?;
    let execution = format!("{}-{}", agent.agent_id, ulid::Ulid::new().to_string().to_lowercase());
    let input = serde_json::json!({"tenant_id": agent.tenant_id, "agent_id": agent.agent_id});
    if let Err(e) = deps.workflow.start(creation::MACHINE, &execution, input).await {
        // Put the agent back as it was: nothing of a failed request stays.
        let item =
            oratio_core::table::Item::from_record(agents::agent_key(&before.tenant_id, &before.agent_id), &before)?;
        let _ = deps.table.put(item, None).await;
        return Err(ApiError::unavailable(e));
    }
    oratio_core::audit!(
        "agent_redeploy_started",
        tenant = actor.tenant_id,
        actor = actor.user_id,
        agent_id = agent.agent_id
    );
    Ok((StatusCode::ACCEPTED, Json(AgentView::from(agent))).into_response())
}

fn reference(agent: &Agent) -> oratio_core::runtime::AgentRef {
    oratio_core::runtime::AgentRef { tenant: agent.tenant_id.clone(), agent: agent.agent_id.clone() }
}

/// Pauses an active agent: its runtime stops, conversations are refused until it resumes.
#[utoipa::path(post, path = "/v1/agents/{agent_id}/pause", tag = "agents", security(("bearer" = [])), params(("agent_id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`agent_busy`: not active"), (status = 503, body = ErrorBody)))]
async fn pause_agent(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(agent): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    let id = agent_id(&agent)?;
    let agent = agents::transition(deps.table.as_ref(), &actor, &id, AgentStatus::Active, AgentStatus::Paused).await?;
    if let Err(e) = deps.runtime.stop(&reference(&agent)).await {
        // Back to active: nothing of a failed request stays.
        let _ = agents::transition(deps.table.as_ref(), &actor, &id, AgentStatus::Paused, AgentStatus::Active).await;
        return Err(ApiError::internal(e));
    }
    oratio_core::audit!("agent_paused", tenant = actor.tenant_id, actor = actor.user_id, agent_id = agent.agent_id);
    Ok(Json(agent.into()))
}

/// Resumes a paused agent: its deployed version starts again.
#[utoipa::path(post, path = "/v1/agents/{agent_id}/resume", tag = "agents", security(("bearer" = [])), params(("agent_id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`agent_busy`: not paused"), (status = 503, body = ErrorBody)))]
async fn resume_agent(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(agent): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    let id = agent_id(&agent)?;
    let agent = agents::transition(deps.table.as_ref(), &actor, &id, AgentStatus::Paused, AgentStatus::Active).await?;
    let version = agent.version.clone().unwrap_or_default();
    let code = creation::stored_code(deps.blobs.as_ref(), &agent.tenant_id, &agent.agent_id, &version).await;
    let deployed = match code {
        Ok(Some(code)) => deps.runtime.deploy(&reference(&agent), &code).await.map_err(ApiError::internal),
        Ok(None) => {
            Err(ApiError::new(StatusCode::CONFLICT, "agent_busy", "the agent has no deployed code; redeploy it"))
        }
        Err(failure) => Err(ApiError::internal(failure)),
    };
    if let Err(e) = deployed {
        // Back to paused: nothing of a failed request stays.
        let _ = agents::transition(deps.table.as_ref(), &actor, &id, AgentStatus::Active, AgentStatus::Paused).await;
        return Err(e);
    }
    oratio_core::audit!("agent_resumed", tenant = actor.tenant_id, actor = actor.user_id, agent_id = agent.agent_id);
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
    let reference = oratio_core::runtime::AgentRef { tenant: actor.tenant_id.clone(), agent: agent.clone() };
    deps.runtime.stop(&reference).await.map_err(ApiError::internal)?;
    oratio_core::audit!("agent_archived", tenant = actor.tenant_id, actor = actor.user_id, agent_id = agent);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentCodeView {
    version: String,
    /// The generated code, by file name.
    files: std::collections::BTreeMap<String, String>,
    /// AgentCreator's artifacts (requirements, plans, reviews, code reviews), by file name.
    #[schema(value_type = Object)]
    artifacts: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The agent's generated code and AgentCreator's artifacts: of the deployed version, or of
/// the latest attempt when creation failed.
#[utoipa::path(get, path = "/v1/agents/{agent_id}/code", tag = "agents", security(("bearer" = [])), params(("agent_id" = String, Path)),
    responses((status = 200, body = AgentCodeView), (status = 404, body = ErrorBody, description = "no such agent, or nothing generated yet")))]
async fn agent_code(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(agent): Path<String>,
) -> Result<Json<AgentCodeView>, ApiError> {
    actor.require(oratio_core::tenancy::Permission::Read)?;
    let agent = agents::get(deps.table.as_ref(), &actor.tenant_id, &agent_id(&agent)?).await?;
    let prefix = format!("tenants/{}/agents/{}/versions/", agent.tenant_id, agent.agent_id);
    let blobs = deps.blobs.list(&prefix).await?;
    let version = agent
        .version
        .clone()
        .or_else(|| {
            blobs.iter().filter_map(|b| b.key.as_str()[prefix.len()..].split('/').next().map(str::to_owned)).max()
        })
        .ok_or_else(|| ApiError::not_found("nothing has been generated for this agent yet"))?;
    let mut view = AgentCodeView { version: version.clone(), files: Default::default(), artifacts: Default::default() };
    for meta in blobs.iter().filter(|b| b.key.as_str()[prefix.len()..].starts_with(&format!("{version}/"))) {
        let rest = &meta.key.as_str()[prefix.len() + version.len() + 1..];
        let Some(blob) = deps.blobs.get(&meta.key).await? else { continue };
        if let Some(file) = rest.strip_prefix("code/").filter(|f| *f != "manifest.json") {
            view.files.insert(file.to_owned(), String::from_utf8_lossy(&blob.bytes).into_owned());
        } else if let Some(name) = rest.strip_prefix("artifacts/") {
            view.artifacts
                .insert(name.to_owned(), serde_json::from_slice(&blob.bytes).unwrap_or(serde_json::Value::Null));
        }
    }
    Ok(Json(view))
}
