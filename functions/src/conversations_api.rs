//! Conversations with an agent: customers' applications send messages with an API key
//! (JSON, or Server-Sent Events when they accept `text/event-stream`) and end sessions;
//! the tenant's members read sessions and transcripts.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use oratio_core::agents::{self, Agent, AgentStatus};
use oratio_core::conversations::{
    self as conv, ConversationError, Customer, HISTORY_TURNS, Reply, Role, Session, SessionStatus, Source, Turn,
};
use oratio_core::events::{self, Event};
use oratio_core::ids::{AgentId, SessionId};
use oratio_core::knowledge::Passage;
use oratio_core::runtime::{AgentRef, RuntimeError};
use oratio_core::time::now;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::agents_api::{Page, agent_id};
use crate::auth::{Customer as CustomerKey, Member};
use crate::body::Body;
use crate::deps::Deps;
use crate::error::{ApiError, ErrorBody};

pub fn routes() -> OpenApiRouter<Arc<Deps>> {
    OpenApiRouter::new()
        .routes(routes!(send_message))
        .routes(routes!(end_session))
        .routes(routes!(list_sessions))
        .routes(routes!(get_session))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// What the customer says (1 to 4000 characters).
    message: String,
    /// The session to continue; without it a new session starts.
    #[serde(default)]
    session_id: Option<String>,
    /// Who the customer is (kept with a new session).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    customer: Option<Customer>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HandoffView {
    reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageReply {
    session_id: String,
    /// The number of the agent's turn in the session (the customer's is one less).
    turn: u32,
    reply: String,
    /// The document passages the reply used.
    #[schema(value_type = Vec<Object>)]
    sources: Vec<Source>,
    /// Present when the agent hands the conversation to a person.
    handoff: Option<HandoffView>,
    /// `active`, or `handoff_requested`.
    status: String,
}

fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    raw.parse().map_err(|_| ConversationError::SessionNotFound.into())
}

/// Whether the agent takes conversations now.
fn ready(agent: &Agent) -> Result<(), ApiError> {
    let refuse = |code, message: String| Err(ApiError::new(StatusCode::CONFLICT, code, message));
    match agent.status {
        AgentStatus::Active => Ok(()),
        AgentStatus::Archived => Err(ApiError::not_found("no such agent")),
        AgentStatus::Paused => refuse("agent_paused", "the agent is paused; its organization can resume it".into()),
        other => refuse("agent_not_ready", format!("the agent is {}, not active", other.as_str())),
    }
}

/// A message accepted: the customer's turn is stored and the session's lease is held.
struct Accepted {
    session: Session,
    turn: Turn,
    lease: String,
    message: String,
}

/// Everything before the agent is called. A refused request (body, agent, session) has
/// written nothing; only an idle session found here is ended on the spot.
async fn accept(
    deps: &Deps,
    agent: &AgentId,
    request: MessageRequest,
    key_tenant: &oratio_core::ids::TenantId,
) -> Result<Accepted, ApiError> {
    let message = conv::validate_message(&request.message)?.to_owned();
    let agent = agents::load(deps.table.as_ref(), key_tenant, agent).await?;
    ready(&agent)?;
    let at = now();
    let mut started = Vec::new();
    let session = match &request.session_id {
        Some(raw) => {
            let id = session_id(raw)?;
            let opened =
                conv::open(deps.table.as_ref(), key_tenant, &agent.agent_id, &id, deps.conversations.idle, at).await?;
            match opened {
                Ok(session) => session,
                Err(ended) => {
                    if let Some(ended) = ended {
                        let event = Event::SessionEnded {
                            agent_id: ended.agent_id.clone(),
                            session_id: ended.session_id.clone(),
                            reason: "idle".into(),
                            at,
                        };
                        events::publish(deps.table.as_ref(), deps.push.as_ref(), key_tenant, &[event]).await;
                    }
                    return Err(ConversationError::SessionEnded.into());
                }
            }
        }
        None => {
            let customer = request.customer.unwrap_or_default();
            customer.validate()?;
            let session = conv::start(deps.table.as_ref(), key_tenant, &agent.agent_id, "text", customer, at).await?;
            started.push(Event::SessionStarted {
                agent_id: session.agent_id.clone(),
                session_id: session.session_id.clone(),
                channel: session.channel.clone(),
                customer: session.customer.clone(),
                at,
            });
            session
        }
    };
    let lease = ulid::Ulid::new().to_string();
    let (session, turn) = conv::begin_turn(deps.table.as_ref(), &session, &lease, &message, at).await?;
    started.push(Event::TurnAdded {
        agent_id: session.agent_id.clone(),
        session_id: session.session_id.clone(),
        turn: turn.clone(),
    });
    events::publish(deps.table.as_ref(), deps.push.as_ref(), key_tenant, &started).await;
    Ok(Accepted { session, turn, lease, message })
}

/// The agent's answer, as the runtime returned it.
fn reply_of(answer: &Value, latency_ms: u64) -> Result<Reply, RuntimeError> {
    let text =
        answer["reply"].as_str().ok_or_else(|| RuntimeError::AgentFailed("the answer has no reply".into()))?.to_owned();
    let sources = answer["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| serde_json::from_value::<Passage>(s.clone()).ok())
        .map(Source::from)
        .collect();
    let handoff = match &answer["handoff"] {
        Value::Object(h) if h.get("requested") != Some(&Value::Bool(false)) => {
            Some(h.get("reason").and_then(Value::as_str).unwrap_or("the agent asked for a person").to_owned())
        }
        _ => None,
    };
    let tokens = |name: &str| answer["usage"][name].as_u64().map(|n| n as u32);
    Ok(Reply {
        text,
        sources,
        handoff,
        latency_ms,
        input_tokens: tokens("input_tokens"),
        output_tokens: tokens("output_tokens"),
    })
}

/// Calls the agent with the conversation so far and stores its reply. On failure the
/// lease is given back; the customer's turn stays.
async fn answer(deps: &Deps, accepted: &Accepted) -> Result<(Session, Turn), ApiError> {
    let session = &accepted.session;
    let earlier = conv::history(deps.table.as_ref(), session, HISTORY_TURNS + 1).await?;
    let history: Vec<Value> = earlier
        .iter()
        .filter(|t| t.turn < accepted.turn.turn)
        .map(|t| json!({"role": if t.role == Role::Customer { "user" } else { "assistant" }, "text": t.text}))
        .collect();
    let payload = json!({
        "message": accepted.message,
        "history": history,
        "session_id": session.session_id,
        "customer": session.customer,
    });
    let agent = AgentRef { tenant: session.tenant_id.clone(), agent: session.agent_id.clone() };
    let started = Instant::now();
    let invoked = tokio::time::timeout(
        deps.conversations.agent_timeout,
        deps.runtime.invoke(&agent, session.session_id.as_str(), payload),
    )
    .await
    .unwrap_or(Err(RuntimeError::Timeout))
    .and_then(|answer| reply_of(&answer, started.elapsed().as_millis() as u64));
    let reply = match invoked {
        Ok(reply) => reply,
        Err(e) => {
            conv::abandon_turn(deps.table.as_ref(), session, &accepted.lease).await?;
            return Err(e.into());
        }
    };
    let at = now();
    let (session, turn) = conv::finish_turn(deps.table.as_ref(), session, &accepted.lease, &reply, at).await?;
    let mut news = vec![Event::TurnAdded {
        agent_id: session.agent_id.clone(),
        session_id: session.session_id.clone(),
        turn: turn.clone(),
    }];
    if let Some(reason) = &reply.handoff {
        news.push(Event::HandoffRequested {
            agent_id: session.agent_id.clone(),
            session_id: session.session_id.clone(),
            reason: reason.clone(),
            at,
        });
    }
    events::publish(deps.table.as_ref(), deps.push.as_ref(), &session.tenant_id, &news).await;
    Ok((session, turn))
}

fn message_reply(session: &Session, turn: Turn) -> MessageReply {
    MessageReply {
        session_id: session.session_id.to_string(),
        turn: turn.turn,
        reply: turn.text,
        sources: turn.sources,
        handoff: session
            .handoff_reason
            .clone()
            .filter(|_| session.status == SessionStatus::HandoffRequested)
            .map(|reason| HandoffView { reason }),
        status: session.status.as_str().into(),
    }
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|t| t.trim().starts_with("text/event-stream")))
}

/// Sends a message to the agent and answers with its reply.
///
/// With `Accept: text/event-stream` the reply streams as Server-Sent Events: `session`
/// (`{session_id, turn}`, the customer's turn), `token` (`{text}`, pieces of the reply in
/// order), `sources` (`{sources}`), `handoff` (`{reason}`, when the agent hands over), and
/// always last either `done` (the JSON answer) or `error` (the standard error body).
#[utoipa::path(post, path = "/v1/agents/{agent_id}/messages", tag = "customers", security(("api_key" = [])),
    params(("agent_id" = String, Path)), request_body = MessageRequest,
    responses(
        (status = 200, body = MessageReply, description = "The reply (or an event stream, as above)"),
        (status = 400, body = ErrorBody, description = "`invalid_request`, `invalid_body`, `invalid_json`"),
        (status = 401, body = ErrorBody, description = "`missing_api_key`, `invalid_api_key`"),
        (status = 403, body = ErrorBody, description = "`key_agent_mismatch`"),
        (status = 404, body = ErrorBody, description = "`not_found` (agent), `session_not_found`"),
        (status = 409, body = ErrorBody, description = "`agent_paused`, `agent_not_ready`, `session_ended`, `session_busy`"),
        (status = 413, body = ErrorBody, description = "`message_too_long`"),
        (status = 429, body = ErrorBody, description = "`rate_limited`, with `Retry-After`"),
        (status = 502, body = ErrorBody, description = "`agent_error`: the agent failed"),
        (status = 503, body = ErrorBody, description = "`agent_unavailable`, `temporarily_unavailable`"),
        (status = 504, body = ErrorBody, description = "`agent_timeout`: retryable; the customer's turn is kept"),
    ))]
async fn send_message(
    State(deps): State<Arc<Deps>>,
    CustomerKey(key): CustomerKey,
    Path(agent): Path<String>,
    headers: HeaderMap,
    Body(request): Body<MessageRequest>,
) -> Result<Response, ApiError> {
    let accepted = accept(&deps, &agent_id(&agent)?, request, &key.tenant_id).await?;
    if !wants_stream(&headers) {
        let (session, turn) = answer(&deps, &accepted).await?;
        return Ok(Json(message_reply(&session, turn)).into_response());
    }
    // The turn runs to the end on its own task: a client that goes away loses the stream,
    // not the conversation.
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(64);
    let first = json!({"session_id": accepted.session.session_id, "turn": accepted.turn.turn});
    let _ = tx.send(SseEvent::default().event("session").data(first.to_string())).await;
    let request_id = crate::request::current_request_id();
    tokio::spawn(crate::request::within_request(request_id, async move {
        let events = match answer(&deps, &accepted).await {
            Ok((session, turn)) => stream_events(message_reply(&session, turn)),
            Err(e) => vec![SseEvent::default().event("error").data(json!(e.into_body()).to_string())],
        };
        for event in events {
            if tx.send(event).await.is_err() {
                tracing::info!("the client left before the reply was streamed; the turn is stored");
                break;
            }
        }
    }));
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx)) });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// The reply as events: its words in a few pieces, its sources, the handoff, `done`.
fn stream_events(reply: MessageReply) -> Vec<SseEvent> {
    let event = |name: &str, data: Value| SseEvent::default().event(name).data(data.to_string());
    let words: Vec<&str> = reply.reply.split_inclusive(' ').collect();
    let mut events: Vec<SseEvent> =
        words.chunks(4).map(|piece| event("token", json!({"text": piece.concat()}))).collect();
    events.push(event("sources", json!({"sources": reply.sources})));
    if let Some(handoff) = &reply.handoff {
        events.push(event("handoff", json!(handoff)));
    }
    events.push(event("done", json!(reply)));
    events
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    session_id: String,
    agent_id: String,
    channel: String,
    /// `active`, `handoff_requested`, or `ended`.
    status: String,
    #[schema(value_type = Object)]
    customer: Customer,
    started_at: String,
    last_activity_at: String,
    turns: u32,
    handoff_reason: Option<String>,
    ended_at: Option<String>,
    /// `customer` (ended by the application), `idle`.
    end_reason: Option<String>,
}

impl SessionView {
    /// The session as it stands now: one idle past the limit shows as ended.
    fn of(session: Session, deps: &Deps) -> Self {
        let idle = session.is_idle(deps.conversations.idle, now());
        let (status, ended_at, end_reason) = if idle {
            let quiet_until = session.last_activity_at
                + chrono::Duration::from_std(deps.conversations.idle).unwrap_or(chrono::Duration::zero());
            ("ended".to_owned(), Some(quiet_until.to_rfc3339()), Some("idle".to_owned()))
        } else {
            (session.status.as_str().to_owned(), session.ended_at.map(|t| t.to_rfc3339()), session.end_reason)
        };
        Self {
            session_id: session.session_id.to_string(),
            agent_id: session.agent_id.to_string(),
            channel: session.channel,
            status,
            customer: session.customer,
            started_at: session.started_at.to_rfc3339(),
            last_activity_at: session.last_activity_at.to_rfc3339(),
            turns: session.turns,
            handoff_reason: session.handoff_reason,
            ended_at,
            end_reason,
        }
    }
}

/// Ends a session: later messages to it are refused with `session_ended`.
#[utoipa::path(post, path = "/v1/agents/{agent_id}/sessions/{session_id}/end", tag = "customers", security(("api_key" = [])),
    params(("agent_id" = String, Path), ("session_id" = String, Path)),
    responses(
        (status = 200, body = SessionView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "`key_agent_mismatch`"),
        (status = 404, body = ErrorBody, description = "`session_not_found`"),
        (status = 409, body = ErrorBody, description = "`session_ended`: it had already ended"),
    ))]
async fn end_session(
    State(deps): State<Arc<Deps>>,
    CustomerKey(key): CustomerKey,
    Path((agent, session)): Path<(String, String)>,
) -> Result<Json<SessionView>, ApiError> {
    let session = conv::get(deps.table.as_ref(), &key.tenant_id, &agent_id(&agent)?, &session_id(&session)?).await?;
    let at = now();
    let ended =
        conv::end(deps.table.as_ref(), &session, "customer", at).await?.ok_or(ConversationError::SessionEnded)?;
    let event = Event::SessionEnded {
        agent_id: ended.agent_id.clone(),
        session_id: ended.session_id.clone(),
        reason: "customer".into(),
        at,
    };
    events::publish(deps.table.as_ref(), deps.push.as_ref(), &key.tenant_id, &[event]).await;
    Ok(Json(SessionView::of(ended, &deps)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    sessions: Vec<SessionView>,
    /// Present when more sessions follow.
    next_cursor: Option<String>,
}

/// The agent's sessions, newest first.
#[utoipa::path(get, path = "/v1/agents/{agent_id}/sessions", tag = "sessions", security(("bearer" = [])),
    params(("agent_id" = String, Path), Page),
    responses((status = 200, body = SessionList), (status = 400, body = ErrorBody, description = "`invalid_cursor`, `invalid_query`"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_sessions(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(agent): Path<String>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SessionList>, ApiError> {
    actor.require(oratio_core::tenancy::Permission::Read)?;
    let agent = agents::load(deps.table.as_ref(), &actor.tenant_id, &agent_id(&agent)?).await?;
    let (limit, cursor) = page?.0.bounds()?;
    let (sessions, next) = conv::list(deps.table.as_ref(), &actor.tenant_id, &agent.agent_id, limit, cursor).await?;
    Ok(Json(SessionList {
        sessions: sessions.into_iter().map(|s| SessionView::of(s, &deps)).collect(),
        next_cursor: next.map(|c| c.as_str().to_owned()),
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Transcript {
    session: SessionView,
    /// Every turn, in order: `{turn, role, text, sources?, at, latency_ms?, input_tokens?, output_tokens?}`.
    #[schema(value_type = Vec<Object>)]
    turns: Vec<Turn>,
}

/// A session and its transcript.
#[utoipa::path(get, path = "/v1/agents/{agent_id}/sessions/{session_id}", tag = "sessions", security(("bearer" = [])),
    params(("agent_id" = String, Path), ("session_id" = String, Path)),
    responses((status = 200, body = Transcript), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "`not_found`, `session_not_found`")))]
async fn get_session(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path((agent, session)): Path<(String, String)>,
) -> Result<Json<Transcript>, ApiError> {
    actor.require(oratio_core::tenancy::Permission::Read)?;
    let session = conv::get(deps.table.as_ref(), &actor.tenant_id, &agent_id(&agent)?, &session_id(&session)?).await?;
    let turns = conv::transcript(deps.table.as_ref(), &session).await?;
    Ok(Json(Transcript { session: SessionView::of(session, &deps), turns }))
}
