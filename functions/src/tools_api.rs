//! Tenant tools (`/v1/tools`: webhooks such as n8n's that agents call) and their executions
//! (`/v1/tool-executions`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use oratio_core::ids::ToolId;
use oratio_core::tools::execution::{self, Execution, ExecutionFilter, ExecutionStatus};
use oratio_core::tools::{self, Tool, ToolError, ToolInput};
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
    OpenApiRouter::new()
        .routes(routes!(list_tools, create_tool))
        .routes(routes!(get_tool, update_tool, delete_tool))
        .routes(routes!(list_executions))
}

impl From<ToolError> for ApiError {
    fn from(e: ToolError) -> Self {
        let message = e.to_string();
        match e {
            ToolError::Invalid(_) => Self::bad_request("invalid_tool", message),
            ToolError::NameTaken(_) => Self::new(StatusCode::CONFLICT, "tool_name_taken", message),
            ToolError::TooMany => Self::new(StatusCode::CONFLICT, "too_many_tools", message),
            ToolError::NotFound => Self::not_found(message),
            ToolError::Agent(e) => e.into(),
            ToolError::Tenancy(e) => e.into(),
            ToolError::Table(e) => e.into(),
            e @ ToolError::Secret(oratio_core::secrets::SecretError::Unavailable(_)) => Self::unavailable(e),
            e @ ToolError::Secret(_) => Self::internal(e),
        }
    }
}

/// A tool (without its secret and its headers' values, which are never returned).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ToolView {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    tool: Tool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedTool {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    tool: Tool,
    /// The signing secret the platform made (when none was given): shown now only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ToolList {
    #[schema(value_type = Vec<Object>)]
    tools: Vec<Tool>,
}

/// A tool to register, or (all fields optional) what to change. The document's schema of
/// the body that `ToolInput` reads (which tells an absent field from a `null` one).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({
    "name": "order_status",
    "description": "Look up an order: its status, carrier and expected delivery. Use it when a customer asks where their order or parcel is.",
    "input_schema": {"type": "object", "properties": {"order_id": {"type": "string", "description": "the order number, e.g. A-1042"}}, "required": ["order_id"]},
    "url": "https://n8n.example.com/webhook/order-status",
    "timeout_ms": 5000,
    "retries": 2
}))]
pub struct ToolBody {
    /// What the model calls it: 1–64 letters, digits, `_`, `-`.
    name: Option<String>,
    /// What it does and when to use it, for the model.
    description: Option<String>,
    /// JSON Schema of the arguments (`{"type": "object", …}`).
    #[schema(value_type = Option<Object>)]
    input_schema: Option<serde_json::Value>,
    /// JSON Schema the answer must fit (optional; `null` removes it).
    #[schema(value_type = Option<Object>)]
    result_schema: Option<serde_json::Value>,
    /// `https://…` (on one machine also `http://` to loopback, for a local n8n).
    url: Option<String>,
    /// `POST` (default), `PUT`, `PATCH` or `GET`.
    method: Option<String>,
    /// Sent with every call (e.g. n8n's Header Auth); stored encrypted, values never returned.
    #[schema(value_type = Option<Object>)]
    headers: Option<serde_json::Value>,
    /// The HMAC key of `X-Oratio-Signature` (16–256 characters); made for you when absent.
    secret: Option<String>,
    /// Each attempt's timeout, 100–20000 ms (default 5000).
    timeout_ms: Option<u64>,
    /// Retries after a timeout, a connection failure, a 429 or a 5xx: 0–4 (default 2).
    retries: Option<u32>,
    /// The agents that may call it (default every agent; `null` for every agent).
    #[schema(value_type = Option<Vec<String>>)]
    agent_ids: Option<serde_json::Value>,
}

/// The organisation's tools.
#[utoipa::path(get, path = "/v1/tools", tag = "tools", security(("bearer" = [])),
    responses((status = 200, body = ToolList), (status = 401, body = ErrorBody)))]
async fn list_tools(State(deps): State<Arc<Deps>>, Member(actor): Member) -> Result<Json<ToolList>, ApiError> {
    Ok(Json(ToolList { tools: tools::list(deps.table.as_ref(), &actor).await? }))
}

fn input(body: serde_json::Value) -> Result<ToolInput, ApiError> {
    serde_json::from_value(body).map_err(|e| ApiError::bad_request("invalid_tool", e.to_string()))
}

/// Registers a tool for the organisation's agents (admins). Agents are offered it from
/// their next message; no redeploy.
#[utoipa::path(post, path = "/v1/tools", tag = "tools", security(("bearer" = [])), request_body = ToolBody,
    responses(
        (status = 201, body = CreatedTool),
        (status = 400, body = ErrorBody, description = "`invalid_tool`: what is wrong with it"),
        (status = 403, body = ErrorBody, description = "`forbidden`: admins only"),
        (status = 404, body = ErrorBody, description = "an agent of `agent_ids` does not exist"),
        (status = 409, body = ErrorBody, description = "`tool_name_taken`, `too_many_tools`"),
    ))]
async fn create_tool(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Body(body): Body<serde_json::Value>,
) -> Result<Response, ApiError> {
    let (tool, secret) =
        tools::create(deps.table.as_ref(), deps.secrets.as_ref(), deps.egress, &actor, input(body)?).await?;
    let created = CreatedTool { tool, secret: secret.map(|s| s.expose().to_owned()) };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

fn tool_id(raw: &str) -> Result<ToolId, ApiError> {
    raw.parse().map_err(|_| ApiError::from(ToolError::NotFound))
}

#[utoipa::path(get, path = "/v1/tools/{tool_id}", tag = "tools", security(("bearer" = [])), params(("tool_id" = String, Path)),
    responses((status = 200, body = ToolView), (status = 404, body = ErrorBody)))]
async fn get_tool(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(tool): Path<String>,
) -> Result<Json<ToolView>, ApiError> {
    Ok(Json(ToolView { tool: tools::get(deps.table.as_ref(), &actor, &tool_id(&tool)?).await? }))
}

/// Changes a tool (admins): only the fields given.
#[utoipa::path(patch, path = "/v1/tools/{tool_id}", tag = "tools", security(("bearer" = [])), params(("tool_id" = String, Path)),
    request_body = ToolBody,
    responses((status = 200, body = ToolView), (status = 400, body = ErrorBody, description = "`invalid_tool`"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`tool_name_taken`")))]
async fn update_tool(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(tool): Path<String>,
    Body(body): Body<serde_json::Value>,
) -> Result<Json<ToolView>, ApiError> {
    let id = tool_id(&tool)?;
    let tool =
        tools::update(deps.table.as_ref(), deps.secrets.as_ref(), deps.egress, &actor, &id, input(body)?).await?;
    Ok(Json(ToolView { tool }))
}

/// Removes a tool (admins); agents are no longer offered it. Its executions stay.
#[utoipa::path(delete, path = "/v1/tools/{tool_id}", tag = "tools", security(("bearer" = [])), params(("tool_id" = String, Path)),
    responses((status = 200, body = ToolView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_tool(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(tool): Path<String>,
) -> Result<Json<ToolView>, ApiError> {
    Ok(Json(ToolView { tool: tools::delete(deps.table.as_ref(), &actor, &tool_id(&tool)?).await? }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ExecutionQuery {
    tool_id: Option<String>,
    agent_id: Option<String>,
    session_id: Option<String>,
    /// `pending`, `succeeded`, `failed`, `timed_out`.
    status: Option<String>,
}

/// An id of a query, if one is given.
fn id<T: std::str::FromStr>(name: &str, raw: &Option<String>) -> Result<Option<T>, ApiError> {
    match raw.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            v.parse().map(Some).map_err(|_| ApiError::bad_request("invalid_query", format!("`{name}` is not an id")))
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecutionList {
    #[schema(value_type = Vec<Object>)]
    executions: Vec<Execution>,
    next_cursor: Option<String>,
}

/// Tool executions, newest first, with their status, attempts, durations and status codes.
/// A page may hold fewer than `limit` when the filters are selective: follow `next_cursor`.
#[utoipa::path(get, path = "/v1/tool-executions", tag = "tools", security(("bearer" = [])), params(ExecutionQuery, Page),
    responses((status = 200, body = ExecutionList), (status = 400, body = ErrorBody, description = "`invalid_query`, `invalid_cursor`")))]
async fn list_executions(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Query(query): Query<ExecutionQuery>,
    Query(page): Query<Page>,
) -> Result<Json<ExecutionList>, ApiError> {
    let (limit, cursor) = page.bounds()?;
    let filter = ExecutionFilter {
        tool: id("tool_id", &query.tool_id)?,
        agent: id("agent_id", &query.agent_id)?,
        session: id("session_id", &query.session_id)?,
        status: match query.status.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(s) => {
                Some(serde_json::from_value::<ExecutionStatus>(serde_json::Value::String(s.to_owned())).map_err(
                    |_| ApiError::bad_request("invalid_query", "`status` is pending, succeeded, failed or timed_out"),
                )?)
            }
        },
    };
    let (executions, next) = execution::list(deps.table.as_ref(), &actor, &filter, limit, cursor).await?;
    Ok(Json(ExecutionList { executions, next_cursor: next.map(|c| c.as_str().to_owned()) }))
}
