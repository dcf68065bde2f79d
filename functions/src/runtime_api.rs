//! What the platform offers the agents it runs: their own knowledge, and the platform's
//! model. Generated agents hold no cloud credentials: they call these routes, and the
//! platform calls the knowledge base (filtered to the agent) and the model. An agent proves
//! who it is with the token it was started with: `<tenant>.<agent>.<HMAC of both>`, keyed
//! by a platform secret (`runtime.key` in the data directory; a Secrets Manager secret on
//! AWS); it can reach nothing of another agent.

use std::sync::Arc;

use crate::auth::bearer;
use crate::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use oratio_core::ids::{AgentId, TenantId};
use oratio_core::knowledge::{KnowledgeBase, KnowledgeScope, Passage};
use oratio_core::llm::{Llm, LlmError, Message, Prompt, ToolSpec};
use oratio_core::tools::execution::{ToolCallRequest, ToolService};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Clone)]
pub struct RuntimeState {
    pub key: Arc<Vec<u8>>,
    pub knowledge: Arc<dyn KnowledgeBase>,
    pub llm: Arc<dyn Llm>,
    /// Calls the tenant's tools for its agents.
    pub tools: ToolService,
}

impl RuntimeState {
    fn mac(&self, tenant: &str, agent: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("{tenant}/{agent}").as_bytes());
        mac
    }

    /// The environment an agent is started with: where the platform is, and its token.
    pub fn agent_env(&self, platform_url: &str, agent: &oratio_core::runtime::AgentRef) -> Vec<(String, String)> {
        vec![
            ("ORATIO_PLATFORM_URL".to_owned(), platform_url.to_owned()),
            ("ORATIO_RUNTIME_TOKEN".to_owned(), self.token(&agent.tenant, &agent.agent)),
        ]
    }

    /// The token an agent's process is started with.
    pub fn token(&self, tenant: &TenantId, agent: &AgentId) -> String {
        let signature = hex::encode(self.mac(tenant.as_str(), agent.as_str()).finalize().into_bytes());
        format!("{tenant}.{agent}.{signature}")
    }

    fn scope(&self, headers: &HeaderMap) -> Result<KnowledgeScope, ApiError> {
        let refused = || {
            ApiError::new(StatusCode::UNAUTHORIZED, "invalid_runtime_token", "not a token of an agent of this platform")
        };
        let token = bearer(headers).ok_or_else(refused)?;
        let mut parts = token.splitn(3, '.');
        let (tenant, agent, signature) =
            (parts.next().ok_or_else(refused)?, parts.next().ok_or_else(refused)?, parts.next().ok_or_else(refused)?);
        let signature = hex::decode(signature).map_err(|_| refused())?;
        self.mac(tenant, agent).verify_slice(&signature).map_err(|_| refused())?;
        Ok(KnowledgeScope {
            tenant: tenant.parse().map_err(|_| refused())?,
            agent: agent.parse().map_err(|_| refused())?,
        })
    }
}

pub fn routes() -> OpenApiRouter<RuntimeState> {
    OpenApiRouter::new().routes(routes!(retrieve)).routes(routes!(complete)).routes(routes!(call_tool))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RetrieveRequest {
    query: String,
    /// 1 to 10 (default 4).
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Passages {
    #[schema(value_type = Vec<Object>)]
    passages: Vec<Passage>,
}

/// Passages of the calling agent's documents (for the platform's agents, with their runtime token).
#[utoipa::path(post, path = "/v1/runtime/retrieve", tag = "runtime", request_body = RetrieveRequest,
    responses((status = 200, body = Passages), (status = 401, body = ErrorBody, description = "`invalid_runtime_token`")))]
async fn retrieve(
    State(state): State<RuntimeState>,
    headers: HeaderMap,
    body: Result<Json<RetrieveRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Passages>, ApiError> {
    let scope = state.scope(&headers)?;
    let Json(request) = body?;
    let limit = request.limit.unwrap_or(4).clamp(1, 10);
    let passages = state.knowledge.retrieve(&scope, &request.query, limit).await.map_err(ApiError::internal)?;
    Ok(Json(Passages { passages }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    system: String,
    /// `{role: "user" | "assistant", content: [{text} | {tool_use: {id, name, input}} |
    /// {tool_result: {tool_use_id, content, is_error?}}]}` (or `{role, text}`), ending with
    /// the user's turn or with tool results.
    #[schema(value_type = Vec<Object>)]
    messages: Vec<Message>,
    /// Tools the model may call: `{name, description, input_schema}` (JSON Schema).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    tools: Vec<ToolSpec>,
    #[serde(default)]
    max_tokens: Option<u32>,
    /// Stream the model's text as Server-Sent Events (also with `Accept: text/event-stream`).
    #[serde(default)]
    stream: bool,
}

fn llm_error(e: LlmError) -> ApiError {
    match e {
        LlmError::Invalid(message) => ApiError::bad_request("invalid_prompt", message),
        e @ LlmError::Unavailable(_) => ApiError::unavailable(e),
        LlmError::Refused(message) => ApiError::new(StatusCode::BAD_GATEWAY, "model_refused", message),
        e => ApiError::internal(e),
    }
}

/// One turn of the platform's model (for the platform's agents, with their runtime token):
/// text, tool calls, or both. With `stream` (or `Accept: text/event-stream`) it answers
/// Server-Sent Events: `token` (`{text}`, the model's text as it comes), then `completion`
/// (the same JSON as without streaming) or `error` (the standard error body).
#[utoipa::path(post, path = "/v1/runtime/complete", tag = "runtime", request_body = CompleteRequest,
    responses(
        (status = 200, description = "`{text, tool_calls: [{id, name, input}], stop_reason, model, fallback_used, input_tokens, output_tokens}`, or an event stream", body = Object),
        (status = 400, body = ErrorBody, description = "`invalid_prompt`, `invalid_body`, `malformed_json`"),
        (status = 401, body = ErrorBody, description = "`invalid_runtime_token`"),
        (status = 502, body = ErrorBody, description = "`model_refused`"),
        (status = 503, body = ErrorBody, description = "`temporarily_unavailable`: the model (and its fallback) are unavailable"),
    ))]
async fn complete(
    State(state): State<RuntimeState>,
    headers: HeaderMap,
    body: Result<Json<CompleteRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    state.scope(&headers)?;
    let Json(request) = body?;
    let stream = request.stream || crate::conversations_api::wants_stream(&headers);
    let mut prompt = Prompt::new(request.system, request.messages).with_tools(request.tools);
    prompt.max_tokens = request.max_tokens.unwrap_or(512).clamp(1, 4096);
    prompt.validate().map_err(llm_error)?;
    if !stream {
        return Ok(Json(state.llm.complete(&prompt).await.map_err(llm_error)?).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<SseEvent>();
    let llm = state.llm.clone();
    let request_id = crate::request::current_request_id();
    tokio::spawn(crate::request::within_request(request_id, async move {
        let token = |piece: &str| {
            let _ = tx.send(SseEvent::default().event("token").data(json!({"text": piece}).to_string()));
        };
        let last = match llm.stream(&prompt, &token).await {
            Ok(completion) => SseEvent::default().event("completion").data(json!(completion).to_string()),
            Err(e) => SseEvent::default().event("error").data(json!(llm_error(e).into_body()).to_string()),
        };
        let _ = tx.send(last);
    }));
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, std::convert::Infallible>(e), rx))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCallBody {
    /// The tool's name, as the model called it.
    name: String,
    /// The model's arguments.
    #[serde(default)]
    #[schema(value_type = Object)]
    arguments: serde_json::Value,
    /// The conversation the call is for (the invocation's `session_id`).
    #[serde(default)]
    session_id: Option<String>,
}

/// Calls one of the tenant's tools for the calling agent (validated, signed, bounded,
/// retried, recorded). The answer is what the model is given back: `{execution_id, status,
/// attempts, result?, error?}`; a failed call is an answer too (status `failed` or
/// `timed_out`, with its `error`), for the model to act on.
#[utoipa::path(post, path = "/v1/runtime/tools", tag = "runtime", request_body = ToolCallBody,
    responses(
        (status = 200, description = "`{execution_id, status, attempts, result?, error?: {code, message}}`", body = Object),
        (status = 401, body = ErrorBody, description = "`invalid_runtime_token`"),
        (status = 404, body = ErrorBody, description = "`unknown_tool`: the agent has no tool of that name"),
    ))]
async fn call_tool(
    State(state): State<RuntimeState>,
    headers: HeaderMap,
    body: Result<Json<ToolCallBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let scope = state.scope(&headers)?;
    let Json(body) = body?;
    let call = ToolCallRequest {
        tenant: scope.tenant,
        agent: scope.agent,
        // A session id that is not one is not the agent's to name: the call is recorded without it.
        session: body.session_id.and_then(|s| s.parse().ok()),
        name: body.name,
        arguments: body.arguments,
    };
    match state.tools.call(call).await? {
        Some(execution) => Ok(Json(execution.for_model())),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_tool", "this agent has no tool of that name")),
    }
}
