//! Human take-over: a person of the organization takes a conversation from its agent,
//! writes to the customer, and hands it back. Each step is a turn of the transcript with
//! who did it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use oratio_core::conversations::{self as conv, PersonAction, Turn};
use oratio_core::tenancy::Permission;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Member;
use crate::body::{Body, Path, Query};
use crate::conversations_api::{SessionView, Transcript, session_id};
use crate::deps::Deps;
use crate::error::{ApiError, ErrorBody};

pub fn routes() -> OpenApiRouter<Arc<Deps>> {
    OpenApiRouter::new().routes(routes!(take_over)).routes(routes!(release)).routes(routes!(write, read))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PersonTurn {
    session: SessionView,
    /// The turn written: a `system` note of the take-over or return, or the `operator`
    /// message, with its `author`.
    #[schema(value_type = Object)]
    turn: Turn,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorMessage {
    /// What the person says to the customer (1 to 4000 characters).
    text: String,
}

async fn act(deps: &Deps, actor: Member, raw: &str, action: PersonAction, text: &str) -> Result<PersonTurn, ApiError> {
    let (session, turn) = deps.turns().person(&actor.0, &session_id(raw)?, action, text).await?;
    Ok(PersonTurn { session: SessionView::of(session, deps), turn })
}

/// Takes the conversation over: the agent stops answering; the customer's messages wait
/// for the person.
#[utoipa::path(post, path = "/v1/sessions/{session_id}/takeover", tag = "sessions", security(("bearer" = [])),
    params(("session_id" = String, Path)),
    responses((status = 200, body = PersonTurn),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "`forbidden`: viewers cannot"),
        (status = 404, body = ErrorBody, description = "`session_not_found`"),
        (status = 409, body = ErrorBody, description = "`already_taken_over`, `session_ended`, `session_busy` (the agent is answering: retry)")))]
async fn take_over(
    State(deps): State<Arc<Deps>>,
    actor: Member,
    Path(session): Path<String>,
) -> Result<Json<PersonTurn>, ApiError> {
    Ok(Json(act(&deps, actor, &session, PersonAction::TakeOver, "").await?))
}

/// Hands the conversation back to the agent, which answers the customer's next message
/// with what the person wrote in its history.
#[utoipa::path(post, path = "/v1/sessions/{session_id}/release", tag = "sessions", security(("bearer" = [])),
    params(("session_id" = String, Path)),
    responses((status = 200, body = PersonTurn),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`session_not_found`"),
        (status = 409, body = ErrorBody, description = "`not_taken_over`, `session_ended`")))]
async fn release(
    State(deps): State<Arc<Deps>>,
    actor: Member,
    Path(session): Path<String>,
) -> Result<Json<PersonTurn>, ApiError> {
    Ok(Json(act(&deps, actor, &session, PersonAction::Release, "").await?))
}

/// Writes to the customer of a conversation taken over: it reaches them on the session's
/// event stream, in the answer to their next message, and (voice) in the agent's voice.
#[utoipa::path(post, path = "/v1/sessions/{session_id}/messages", tag = "sessions", security(("bearer" = [])),
    params(("session_id" = String, Path)), request_body = OperatorMessage,
    responses((status = 200, body = PersonTurn),
        (status = 400, body = ErrorBody, description = "`invalid_request`, `invalid_body`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`session_not_found`"),
        (status = 409, body = ErrorBody, description = "`not_taken_over`: take it over first; `session_ended`"),
        (status = 413, body = ErrorBody, description = "`message_too_long`")))]
async fn write(
    State(deps): State<Arc<Deps>>,
    actor: Member,
    Path(session): Path<String>,
    Body(message): Body<OperatorMessage>,
) -> Result<Json<PersonTurn>, ApiError> {
    Ok(Json(act(&deps, actor, &session, PersonAction::Write, &message.text).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct Download {
    /// `true`: the same JSON as a file to save (`session-<id>.json`).
    download: Option<bool>,
}

/// The conversation and its whole transcript, with who wrote each turn: one JSON record
/// of the session (customer, details, handoff, outcome, duration) and every turn (sources,
/// tool calls, latency, tokens, model, author).
#[utoipa::path(get, path = "/v1/sessions/{session_id}/messages", tag = "sessions", security(("bearer" = [])),
    params(("session_id" = String, Path), Download),
    responses((status = 200, body = Transcript), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`session_not_found`")))]
async fn read(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    Path(session): Path<String>,
    Query(download): Query<Download>,
) -> Result<Response, ApiError> {
    actor.require(Permission::Read)?;
    let session = conv::of_tenant(deps.table.as_ref(), &actor.tenant_id, &session_id(&session)?).await?;
    let turns = conv::transcript(deps.table.as_ref(), &session).await?;
    let file = format!("attachment; filename=\"session-{}.json\"", session.session_id);
    let transcript = Json(Transcript { session: SessionView::of(session, &deps), turns });
    Ok(match download.download {
        Some(true) => ([(header::CONTENT_DISPOSITION, file)], transcript).into_response(),
        _ => transcript.into_response(),
    })
}
