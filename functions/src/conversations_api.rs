//! Conversations with an agent: customers' applications send messages with an API key
//! (JSON, or Server-Sent Events when they accept `text/event-stream`) and end sessions;
//! the tenant's members read sessions and transcripts.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use oratio_core::conversations::{
    self as conv, ConversationError, Customer, Session, SessionNews, SessionStatus, Source, Turn,
};
use oratio_core::history::{self, HandoffFilter, HistoryFilter, SortBy};
use oratio_core::ids::SessionId;
use oratio_core::runtime::ToolTrace;
use oratio_core::time::now;
use oratio_core::turns::{Answered, CustomerMessage, TurnError};
use oratio_core::{agents, voice};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::agents_api::{Page, agent_id};
use crate::auth::{Customer as CustomerKey, Member};
use crate::body::{Body, Path, Query};
use crate::deps::Deps;
use crate::error::{ApiError, ErrorBody};

pub fn routes() -> OpenApiRouter<Arc<Deps>> {
    OpenApiRouter::new()
        .routes(routes!(send_message))
        .routes(routes!(end_session))
        .routes(routes!(list_sessions))
        .routes(routes!(tenant_sessions))
        .routes(routes!(get_session))
        .routes(routes!(get_recording))
        .routes(routes!(session_events))
        .merge(crate::takeover_api::routes())
        .merge(crate::analytics_api::routes())
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
    /// What the agent told the person taking over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
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
    /// `active`, `handoff_requested`, or `ended` (the agent ended the conversation).
    status: String,
    /// What the customer has given the agent in this session, by name.
    #[schema(value_type = Object)]
    details: BTreeMap<String, String>,
    /// The tools the agent called for this reply: `{name, arguments, result, duration_ms, is_error?}`.
    #[schema(value_type = Vec<Object>)]
    tool_calls: Vec<ToolTrace>,
    /// The model that answered, when the agent says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    /// The primary model was unavailable and the fallback answered.
    #[serde(default)]
    fallback_used: bool,
    /// What people of the organization wrote to the customer since their previous
    /// message: `{turn, role: "operator", text, author, at}`. While a person has the
    /// conversation (`status` `taken_over`) the agent does not answer: `reply` is empty,
    /// `turn` is the customer's, and the person's answers come here with the next
    /// message, or at once on the session's event stream.
    #[schema(value_type = Vec<Object>)]
    operator_messages: Vec<Turn>,
}

pub(crate) fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    raw.parse().map_err(|_| ConversationError::SessionNotFound.into())
}

/// The answer to a message while a person has the conversation: no reply of the agent.
fn with_operator(session: Session, customer_turn: u32, operator_messages: Vec<Turn>) -> MessageReply {
    MessageReply {
        session_id: session.session_id.to_string(),
        turn: customer_turn,
        reply: String::new(),
        sources: Vec::new(),
        handoff: None,
        status: session.status.as_str().into(),
        details: session.details,
        tool_calls: Vec::new(),
        model: None,
        fallback_used: false,
        operator_messages,
    }
}

/// The answer to a message, or the person's side of it while they have the conversation.
fn reply_of(answered: Result<Answered, TurnError>, customer_turn: u32) -> Result<MessageReply, ApiError> {
    match answered {
        Ok(answered) => Ok(message_reply(answered)),
        Err(TurnError::TakenOver { session, operator_messages }) => {
            Ok(with_operator(*session, customer_turn, operator_messages))
        }
        Err(e) => Err(e.into()),
    }
}

fn message_reply(answered: Answered) -> MessageReply {
    let Answered { session, turn, operator_messages } = answered;
    MessageReply {
        session_id: session.session_id.to_string(),
        turn: turn.turn,
        reply: turn.text,
        sources: turn.sources,
        handoff: session
            .handoff_reason
            .clone()
            .filter(|_| session.status == SessionStatus::HandoffRequested)
            .map(|reason| HandoffView { reason, summary: session.handoff_summary.clone() }),
        status: session.status.as_str().into(),
        details: session.details,
        tool_calls: turn.tool_calls,
        model: turn.model,
        fallback_used: turn.fallback_used,
        operator_messages,
    }
}

pub(crate) fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|t| t.trim().starts_with("text/event-stream")))
}

/// Sends a message to the agent and answers with its reply.
///
/// With `Accept: text/event-stream` the reply streams as Server-Sent Events: `session`
/// (`{session_id, turn}`, the customer's turn), `token` (`{text}`, the reply's text as the
/// model writes it), `sources` (`{sources}`), `handoff` (`{reason, summary}`, when the agent
/// hands over), and always last either `done` (the JSON answer) or `error` (the standard
/// error body).
#[utoipa::path(post, path = "/v1/agents/{agent_id}/messages", tag = "customers", security(("api_key" = [])),
    params(("agent_id" = String, Path)), request_body = MessageRequest,
    responses(
        (status = 200, body = MessageReply, description = "The reply (or an event stream, as above)"),
        (status = 400, body = ErrorBody, description = "`invalid_request`, `invalid_body`, `malformed_json`"),
        (status = 401, body = ErrorBody, description = "`missing_api_key`, `invalid_api_key`"),
        (status = 403, body = ErrorBody, description = "`key_agent_mismatch`"),
        (status = 404, body = ErrorBody, description = "`not_found` (agent), `session_not_found`"),
        (status = 409, body = ErrorBody, description = "`agent_paused`, `agent_not_ready`, `session_ended`, `session_busy`"),
        (status = 413, body = ErrorBody, description = "`message_too_long`"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`"),
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
    let message = CustomerMessage {
        message: request.message,
        session_id: request.session_id.as_deref().map(session_id).transpose()?,
        customer: request.customer,
        channel: "text",
    };
    let turns = deps.turns();
    let accepted = turns.accept(&key.tenant_id, &agent_id(&agent)?, message).await?;
    let customer_turn = accepted.turn.turn;
    if !wants_stream(&headers) {
        return Ok(Json(reply_of(turns.answer(&accepted, None).await, customer_turn)?).into_response());
    }
    // The turn runs to the end on its own task: a client that goes away loses the stream,
    // not the conversation.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<SseEvent>();
    let event = |name: &str, data: Value| SseEvent::default().event(name).data(data.to_string());
    let _ = tx.send(event("session", json!({"session_id": accepted.session.session_id, "turn": accepted.turn.turn})));
    let request_id = crate::request::current_request_id();
    tokio::spawn(crate::request::within_request(request_id, async move {
        let streamed = std::sync::atomic::AtomicBool::new(false);
        let token = |piece: &str| {
            streamed.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = tx.send(event("token", json!({"text": piece})));
        };
        let answered = turns.answer(&accepted, Some(&token)).await;
        let events = match reply_of(answered, customer_turn) {
            Ok(reply) => {
                let mut events = Vec::new();
                // An agent that answered whole still gives its reply as a token.
                if !streamed.load(std::sync::atomic::Ordering::Relaxed) && !reply.reply.is_empty() {
                    events.push(event("token", json!({"text": reply.reply})));
                }
                events.push(event("sources", json!({"sources": reply.sources})));
                if let Some(handoff) = &reply.handoff {
                    events.push(event("handoff", json!(handoff)));
                }
                events.push(event("done", json!(reply)));
                events
            }
            Err(e) => vec![event("error", json!(e.into_body()))],
        };
        for event in events {
            if tx.send(event).is_err() {
                tracing::info!("the client left before the reply was streamed; the turn is stored");
                break;
            }
        }
    }));
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx)) });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
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
    /// The agent's summary for the person taking over.
    handoff_summary: Option<String>,
    /// What the customer gave the agent, by name.
    #[schema(value_type = Object)]
    details: BTreeMap<String, String>,
    /// Who has the conversation (a member's email), while it is `taken_over`.
    taken_over_by: Option<String>,
    taken_over_at: Option<String>,
    /// What the person who took the handoff did (its notification's outcome).
    handoff_outcome: Option<String>,
    ended_at: Option<String>,
    /// From start to end.
    duration_ms: Option<u64>,
    /// `customer` (ended by the application), `idle`, `agent` (the agent ended it).
    end_reason: Option<String>,
}

impl SessionView {
    /// The session as it stands now: one idle past the limit shows as ended.
    pub(crate) fn of(session: Session, deps: &Deps) -> Self {
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
            handoff_summary: session.handoff_summary,
            details: session.details,
            taken_over_by: session.taken_over_by,
            taken_over_at: session.taken_over_at.map(|t| t.to_rfc3339()),
            handoff_outcome: session.handoff_outcome,
            ended_at,
            duration_ms: session.duration_ms,
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
    let ended = deps.turns().end(&key.tenant_id, &agent_id(&agent)?, &session_id(&session)?, "customer").await?;
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
    Query(page): Query<Page>,
) -> Result<Json<SessionList>, ApiError> {
    actor.require(oratio_core::tenancy::Permission::Read)?;
    let agent = agents::load(deps.table.as_ref(), &actor.tenant_id, &agent_id(&agent)?).await?;
    let (limit, cursor) = page.bounds()?;
    let (sessions, next) = conv::list(deps.table.as_ref(), &actor.tenant_id, &agent.agent_id, limit, cursor).await?;
    Ok(Json(SessionList {
        sessions: sessions.into_iter().map(|s| SessionView::of(s, &deps)).collect(),
        next_cursor: next.map(|c| c.as_str().to_owned()),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SessionFilter {
    /// `active` (the default): the sessions going on now; `ended`: the history, which the
    /// other filters narrow.
    status: Option<String>,
    /// One agent's sessions.
    agent_id: Option<String>,
    /// Started on or after: a date (`2026-12-01`, from its start, UTC) or an RFC 3339 time.
    from: Option<String>,
    /// Started before: an RFC 3339 time, or a date (up to its end, UTC).
    to: Option<String>,
    /// `text`, `voice`, `phone`.
    channel: Option<String>,
    /// `customer`, `agent`, `idle`, `disconnected`, `failed`, `shutdown`.
    end_reason: Option<String>,
    /// `yes` (handed to a person) or `no` (contained).
    handoff: Option<String>,
    /// Handed over and resolved with this outcome (case aside).
    outcome: Option<String>,
    /// The customer's id, as the application gave it.
    customer: Option<String>,
    /// `started` (the default) or `duration`.
    sort: Option<String>,
    /// `desc` (the default: newest or longest first) or `asc`.
    order: Option<String>,
    /// `json` (the default) or `csv`: the whole filtered history as a CSV download (up to
    /// 10,000 sessions).
    format: Option<String>,
}

fn moment(raw: &str, end_of_day: bool) -> Result<DateTime<Utc>, ApiError> {
    // An offset's `+` left unencoded in a query string arrives as a space.
    if let Ok(at) = DateTime::parse_from_rfc3339(&raw.trim().replace(' ', "+")) {
        return Ok(at.with_timezone(&Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request("invalid_query", format!("{raw:?} is neither a date (2026-12-01) nor an RFC 3339 time"))
    })?;
    let day = if end_of_day { day.succ_opt().unwrap_or(day) } else { day };
    Ok(day.and_time(chrono::NaiveTime::MIN).and_utc())
}

fn one_of<'a>(name: &str, raw: Option<&'a str>, allowed: &[&str]) -> Result<Option<&'a str>, ApiError> {
    match raw {
        Some(value) if !allowed.contains(&value) => Err(ApiError::bad_request(
            "invalid_query",
            format!("`{name}` is one of {}, not {value:?}", allowed.join(", ")),
        )),
        other => Ok(other),
    }
}

impl SessionFilter {
    fn history(&self) -> Result<HistoryFilter, ApiError> {
        let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let handoff = match (one_of("handoff", self.handoff.as_deref(), &["yes", "no"])?, text(&self.outcome)) {
            (Some("no"), Some(_)) => {
                return Err(ApiError::bad_request("invalid_query", "`outcome` is of sessions handed over"));
            }
            (_, Some(outcome)) => Some(HandoffFilter::Outcome(outcome)),
            (Some("yes"), None) => Some(HandoffFilter::Yes),
            (Some(_), None) => Some(HandoffFilter::No),
            (None, None) => None,
        };
        Ok(HistoryFilter {
            agent: self.agent_id.as_deref().map(agent_id).transpose()?,
            from: self.from.as_deref().map(|f| moment(f, false)).transpose()?,
            to: self.to.as_deref().map(|t| moment(t, true)).transpose()?,
            channel: text(&self.channel),
            end_reason: text(&self.end_reason),
            handoff,
            customer: text(&self.customer),
            sort: match one_of("sort", self.sort.as_deref(), &["started", "duration"])? {
                Some("duration") => SortBy::Duration,
                _ => SortBy::Started,
            },
            ascending: one_of("order", self.order.as_deref(), &["desc", "asc"])? == Some("asc"),
        })
    }
}

/// Most sessions a CSV export holds.
const CSV_MAX: usize = 10_000;

/// The organization's sessions across its agents: the live ones (`status=active`, the
/// default: one query of the index of sessions not ended), or the history
/// (`status=ended`) filtered by agent, dates, channel, end, handoff, outcome and customer
/// and sorted by start or duration, each request served by one index (see the README). A
/// page may hold fewer than `limit` when the filters are selective: follow `next_cursor`.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions", security(("bearer" = [])),
    params(SessionFilter, Page),
    responses((status = 200, body = SessionList, description = "The sessions (or, with `format=csv`, a CSV file)"),
        (status = 400, body = ErrorBody, description = "`invalid_query`, `invalid_cursor`, `invalid_request`"), (status = 401, body = ErrorBody)))]
async fn tenant_sessions(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Query(filter): Query<SessionFilter>,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    actor.require(oratio_core::tenancy::Permission::Read)?;
    let (limit, cursor) = page.bounds()?;
    let table = deps.table.as_ref();
    let status = one_of("status", filter.status.as_deref(), &["active", "ended"])?.unwrap_or("active");
    let csv = one_of("format", filter.format.as_deref(), &["json", "csv"])? == Some("csv");
    let (sessions, next) = if status == "active" {
        let history_only = [&filter.agent_id, &filter.from, &filter.to, &filter.channel, &filter.end_reason]
            .into_iter()
            .chain([&filter.handoff, &filter.outcome, &filter.customer, &filter.sort, &filter.order, &filter.format])
            .any(Option::is_some);
        if history_only {
            return Err(ApiError::bad_request(
                "invalid_query",
                "the filters and sorts are for the history: add `status=ended`",
            ));
        }
        conv::live(table, &actor.tenant_id, limit, cursor, deps.conversations.idle, now()).await?
    } else {
        let history = filter.history()?;
        if csv {
            return csv_export(table, &actor.tenant_id, &history).await;
        }
        history::list(table, &actor.tenant_id, &history, limit, cursor).await?
    };
    Ok(Json(SessionList {
        sessions: sessions.into_iter().map(|s| SessionView::of(s, &deps)).collect(),
        next_cursor: next.map(|c| c.as_str().to_owned()),
    })
    .into_response())
}

/// The filtered history as one CSV file.
async fn csv_export(
    table: &dyn oratio_core::table::Table,
    tenant: &oratio_core::ids::TenantId,
    filter: &HistoryFilter,
) -> Result<Response, ApiError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = [
        "session_id",
        "agent_id",
        "channel",
        "started_at",
        "ended_at",
        "duration_ms",
        "turns",
        "customer_id",
        "customer_name",
        "end_reason",
        "handoff_reason",
        "handoff_outcome",
    ];
    writer.write_record(header).map_err(ApiError::internal)?;
    let at = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    for s in history::all(table, tenant, filter, CSV_MAX).await? {
        writer
            .write_record([
                s.session_id.to_string(),
                s.agent_id.to_string(),
                s.channel,
                s.started_at.to_rfc3339(),
                at(s.ended_at),
                s.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
                s.turns.to_string(),
                s.customer.id.unwrap_or_default(),
                s.customer.name.unwrap_or_default(),
                s.end_reason.unwrap_or_default(),
                s.handoff_reason.unwrap_or_default(),
                s.handoff_outcome.unwrap_or_default(),
            ])
            .map_err(ApiError::internal)?;
    }
    let body = writer.into_inner().map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"sessions.csv\""),
        ],
        body,
    )
        .into_response())
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Transcript {
    pub(crate) session: SessionView,
    /// Every turn, in order: `{turn, role, text, sources?, at, latency_ms?, input_tokens?,
    /// output_tokens?, tool_calls?: [{name, arguments, result, duration_ms, is_error?}],
    /// model?, fallback_used?}`.
    #[schema(value_type = Vec<Object>)]
    pub(crate) turns: Vec<Turn>,
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

/// How long a recording link works.
const RECORDING_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecordingLinks {
    /// The call as a WAV file: 16-bit PCM, two channels (left the caller, right the
    /// agent), at the session's sample rate.
    recording_url: String,
    /// The transcript as JSON: the session, and each turn with its timings.
    transcript_url: String,
    /// When both links stop working.
    expires_at: chrono::DateTime<chrono::Utc>,
}

/// Signed links to a voice session's recording and transcript, written when it ends.
#[utoipa::path(get, path = "/v1/agents/{agent_id}/sessions/{session_id}/recording", tag = "sessions", security(("bearer" = [])),
    params(("agent_id" = String, Path), ("session_id" = String, Path)),
    responses(
        (status = 200, body = RecordingLinks),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`not_found`, `session_not_found`, `recording_not_found`: not a voice session, or it has not ended yet"),
    ))]
async fn get_recording(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path((agent, session)): Path<(String, String)>,
) -> Result<Json<RecordingLinks>, ApiError> {
    actor.require(oratio_core::tenancy::Permission::Read)?;
    let session = conv::get(deps.table.as_ref(), &actor.tenant_id, &agent_id(&agent)?, &session_id(&session)?).await?;
    let recording = voice::recording_key(&session.tenant_id, &session.session_id);
    if !deps.blobs.list(recording.as_str()).await?.iter().any(|blob| blob.key == recording) {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "recording_not_found",
            "this session has no recording: it is not a voice session, or it has not ended yet",
        ));
    }
    let transcript = voice::transcript_key(&session.tenant_id, &session.session_id);
    Ok(Json(RecordingLinks {
        recording_url: deps.blobs.signed_download_url(&recording, RECORDING_LINK_TTL).await?,
        transcript_url: deps.blobs.signed_download_url(&transcript, RECORDING_LINK_TTL).await?,
        expires_at: now() + chrono::Duration::seconds(RECORDING_LINK_TTL.as_secs() as i64),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventsFrom {
    /// Send the turns after this one (the `Last-Event-ID` header says the same, and wins);
    /// without either, every turn from the first.
    after: Option<u32>,
}

/// The customer's stream of a session (Server-Sent Events), for the application to show
/// what a person writes after taking the conversation over, as they write it.
///
/// Events: first the turns so far after `after`, then `status` (`{status, taken_over_by}`:
/// `active`, `handoff_requested`, `taken_over`, `ended`); then each new `turn`, and
/// `status` again on each change, as they happen. A `turn` is `{turn, role:
/// customer|agent|operator|system, text, author?, at}`, its SSE `id` the turn number; `error` (the standard body) if reading fails. The stream
/// ends when the session has ended, or after 50 s: reconnect with `Last-Event-ID` (an
/// `EventSource` does this by itself, after `retry` ms) and nothing is missed or repeated.
#[utoipa::path(get, path = "/v1/agents/{agent_id}/sessions/{session_id}/events", tag = "customers",
    security(("api_key" = [])),
    params(("agent_id" = String, Path), ("session_id" = String, Path), EventsFrom),
    responses(
        (status = 200, content_type = "text/event-stream", description = "The session's events, as above"),
        (status = 400, body = ErrorBody, description = "`invalid_query`: `after` or `Last-Event-ID` is not a turn number"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "`key_agent_mismatch`"),
        (status = 404, body = ErrorBody, description = "`session_not_found`"),
    ))]
async fn session_events(
    State(deps): State<Arc<Deps>>,
    CustomerKey(key): CustomerKey,
    Path((agent, session)): Path<(String, String)>,
    Query(from): Query<EventsFrom>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last_event_id = match headers.get("last-event-id").map(|v| v.to_str().map(str::trim)) {
        None => None,
        Some(Ok(raw)) => Some(raw.parse::<u32>().map_err(|_| {
            ApiError::bad_request("invalid_query", "`Last-Event-ID` is the number of the last turn received")
        })?),
        Some(Err(_)) => return Err(ApiError::bad_request("invalid_query", "`Last-Event-ID` is not text")),
    };
    let session = conv::get(deps.table.as_ref(), &key.tenant_id, &agent_id(&agent)?, &session_id(&session)?).await?;
    let after = last_event_id.or(from.after).unwrap_or(0);
    let settings = deps.conversations;
    let news = conv::follow(deps.table.clone(), session, after, settings.events_poll, settings.events_stream);
    let stream = futures::stream::unfold(news, |mut news| async move {
        let event = match news.recv().await? {
            Ok(SessionNews::Turn(turn)) => {
                SseEvent::default().event("turn").id(turn.turn.to_string()).data(json!(turn).to_string())
            }
            Ok(SessionNews::Status { status, taken_over_by }) => SseEvent::default()
                .event("status")
                .data(json!({"status": status.as_str(), "taken_over_by": taken_over_by}).to_string()),
            Err(e) => SseEvent::default().event("error").data(json!(ApiError::from(e).into_body()).to_string()),
        };
        Some((Ok::<_, Infallible>(event), news))
    });
    let opening = futures::stream::once(async { Ok(SseEvent::default().retry(std::time::Duration::from_secs(1))) });
    use futures::StreamExt as _;
    Ok(Sse::new(opening.chain(stream)).keep_alive(KeepAlive::default()).into_response())
}
