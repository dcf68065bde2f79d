//! Phone calls: the tenant's numbers (`/v1/phone-numbers`), Twilio's voice webhook
//! (`POST /telephony/twilio/voice`, answered with TwiML) and its Media Streams socket
//! (`/telephony/twilio/media`), which carries the call onto a voice session.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use oratio_core::ids::AgentId;
use oratio_core::secrets::Secret;
use oratio_core::telephony::twilio::{self, CallAnswer, CallGrant, IncomingCall, MediaStream, TwilioEvent};
use oratio_core::telephony::{self, NewNumber, NumberAssignment, TelephonyError};
use oratio_core::voice::Outgoing;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Member;
use crate::body::{Body, Path};
use crate::deps::Deps;
use crate::error::{ApiError, ErrorBody};
use crate::voice_api::{MAX_FRAME_BYTES, READ_BUFFER_BYTES, VoiceGateway, close};

/// The webhook's path, and the media socket's.
pub const VOICE_WEBHOOK: &str = "/telephony/twilio/voice";
pub const MEDIA_STREAM: &str = "/telephony/twilio/media";

/// How long Twilio has to send `start` after opening the socket.
const START_WITHIN: Duration = Duration::from_secs(10);
/// A media frame Twilio cannot take in this long means the call is gone.
const SEND_WITHIN: Duration = Duration::from_secs(5);

pub fn routes() -> OpenApiRouter<Arc<Deps>> {
    OpenApiRouter::new()
        .routes(routes!(list_numbers, assign_number))
        .routes(routes!(get_number, remove_number))
        .routes(routes!(voice_webhook))
}

pub fn media_routes() -> OpenApiRouter<VoiceGateway> {
    OpenApiRouter::new().routes(routes!(media_stream))
}

impl From<TelephonyError> for ApiError {
    fn from(e: TelephonyError) -> Self {
        let message = e.to_string();
        match e {
            TelephonyError::InvalidNumber(_) => Self::bad_request("invalid_phone_number", message),
            TelephonyError::Invalid(_) => Self::bad_request("invalid_request", message),
            TelephonyError::NotVoice => Self::bad_request("not_a_voice_agent", message),
            TelephonyError::NumberTaken => Self::new(StatusCode::CONFLICT, "number_taken", message),
            TelephonyError::TooMany => Self::new(StatusCode::CONFLICT, "too_many_numbers", message),
            TelephonyError::NotFound => Self::not_found(message),
            TelephonyError::Agent(e) => e.into(),
            TelephonyError::Tenancy(e) => e.into(),
            TelephonyError::Table(e) => e.into(),
            e @ TelephonyError::Secret(oratio_core::secrets::SecretError::Unavailable(_)) => Self::unavailable(e),
            e @ TelephonyError::Secret(_) => Self::internal(e),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NumberView {
    /// E.164.
    number: String,
    agent_id: String,
    /// `twilio`.
    provider: String,
    account_sid: String,
    label: Option<String>,
    created_at: DateTime<Utc>,
    created_by: String,
    /// The URL to give Twilio as the number's "A call comes in" webhook (HTTP POST).
    voice_webhook_url: String,
}

fn view(deps: &Deps, headers: &HeaderMap, n: NumberAssignment) -> NumberView {
    NumberView {
        number: n.number.to_string(),
        agent_id: n.agent_id.to_string(),
        provider: n.provider,
        account_sid: n.account_sid,
        label: n.label,
        created_at: n.created_at,
        created_by: n.created_by,
        voice_webhook_url: format!("{}{VOICE_WEBHOOK}", public_origin(deps, headers)),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NumberList {
    numbers: Vec<NumberView>,
}

/// The organisation's phone numbers and the agents that answer them.
#[utoipa::path(get, path = "/v1/phone-numbers", tag = "telephony", security(("bearer" = [])),
    responses((status = 200, body = NumberList), (status = 401, body = ErrorBody)))]
async fn list_numbers(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    headers: HeaderMap,
) -> Result<Json<NumberList>, ApiError> {
    let numbers = telephony::list(deps.table.as_ref(), &actor).await?;
    Ok(Json(NumberList { numbers: numbers.into_iter().map(|n| view(&deps, &headers, n)).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwilioAccount {
    /// `AC…`, the account (or subaccount) the number is in.
    account_sid: String,
    /// The account's auth token: stored encrypted, used to check Twilio's signatures, never
    /// returned.
    auth_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNumberRequest {
    /// E.164, as written (`+1 (415) 555-0100` is taken as `+14155550100`).
    number: String,
    /// A voice agent (kind `voice` or `both`) of this organisation.
    agent_id: String,
    #[serde(default)]
    label: Option<String>,
    twilio: TwilioAccount,
}

/// Assigns a number to a voice agent (admins). A number answers one agent, of one
/// organisation. Then set the number's voice webhook in Twilio to `voice_webhook_url`.
#[utoipa::path(post, path = "/v1/phone-numbers", tag = "telephony", security(("bearer" = [])),
    request_body = NewNumberRequest,
    responses(
        (status = 201, body = NumberView),
        (status = 400, body = ErrorBody, description = "`invalid_phone_number`, `invalid_request`, `not_a_voice_agent`"),
        (status = 403, body = ErrorBody, description = "`forbidden`: admins only"),
        (status = 404, body = ErrorBody, description = "no such agent"),
        (status = 409, body = ErrorBody, description = "`number_taken`, `too_many_numbers`"),
    ))]
async fn assign_number(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    headers: HeaderMap,
    Body(body): Body<NewNumberRequest>,
) -> Result<Response, ApiError> {
    let agent_id: AgentId = body.agent_id.parse().map_err(|_| ApiError::not_found("no such agent"))?;
    let new = NewNumber {
        number: body.number,
        agent_id,
        label: body.label,
        account_sid: body.twilio.account_sid,
        auth_token: Secret::new(body.twilio.auth_token),
    };
    let assigned = telephony::assign(deps.table.as_ref(), deps.secrets.as_ref(), &actor, new).await?;
    Ok((StatusCode::CREATED, Json(view(&deps, &headers, assigned))).into_response())
}

/// One number (`+` written `%2B` or as it is).
#[utoipa::path(get, path = "/v1/phone-numbers/{number}", tag = "telephony", security(("bearer" = [])),
    params(("number" = String, Path, description = "E.164")),
    responses((status = 200, body = NumberView), (status = 404, body = ErrorBody)))]
async fn get_number(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    headers: HeaderMap,
    Path(number): Path<String>,
) -> Result<Json<NumberView>, ApiError> {
    let number = telephony::get(deps.table.as_ref(), &actor, &number).await?;
    Ok(Json(view(&deps, &headers, number)))
}

/// Takes the number from its agent (admins); calls to it are told it is not in service.
#[utoipa::path(delete, path = "/v1/phone-numbers/{number}", tag = "telephony", security(("bearer" = [])),
    params(("number" = String, Path, description = "E.164")),
    responses((status = 200, body = NumberView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_number(
    State(deps): State<Arc<Deps>>,
    Member(actor): Member,
    headers: HeaderMap,
    Path(number): Path<String>,
) -> Result<Json<NumberView>, ApiError> {
    let removed = telephony::remove(deps.table.as_ref(), &actor, &number).await?;
    Ok(Json(view(&deps, &headers, removed)))
}

/// The origin Twilio reaches this platform on.
fn public_origin(deps: &Deps, headers: &HeaderMap) -> String {
    if let Some(url) = &deps.telephony.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
    format!("{scheme}://{host}")
}

fn media_url(deps: &Deps, origin: &str) -> String {
    if let Some(url) = &deps.telephony.media_url {
        return url.to_string();
    }
    let socket = origin.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
    format!("{socket}{MEDIA_STREAM}")
}

/// The parameters of Twilio's voice webhook this route reads (Twilio sends more; every
/// one is part of the signature).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)] // the document's description of the form; the handler reads every pair as signed
pub struct TwilioCallForm {
    /// `AC…`: must be the number's account.
    account_sid: Option<String>,
    call_sid: Option<String>,
    /// The caller (E.164, `anonymous`, `client:…`).
    from: Option<String>,
    /// The number called: it chooses the agent.
    to: Option<String>,
}

fn twiml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

/// Twilio's voice webhook for the platform's numbers (set it as the number's "A call comes
/// in" URL, HTTP POST). Checks `X-Twilio-Signature` with the number's auth token and
/// answers TwiML: `<Connect><Stream>` to the media socket, or words and a hang-up for a
/// number that answers nobody or an agent that is paused.
#[utoipa::path(post, path = "/telephony/twilio/voice", tag = "telephony",
    request_body(content = TwilioCallForm, content_type = "application/x-www-form-urlencoded", description = "Twilio's call parameters (all of them are signed)"),
    responses(
        (status = 200, description = "TwiML (`text/xml`)", content_type = "text/xml", body = String),
        (status = 400, body = ErrorBody, description = "`invalid_request`: not a form"),
        (status = 403, body = ErrorBody, description = "`invalid_signature`: not signed by the number's Twilio account"),
    ))]
async fn voice_webhook(
    State(deps): State<Arc<Deps>>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<axum::Form<Vec<(String, String)>>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    let axum::Form(params) = form.map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
    let origin = public_origin(&deps, &headers);
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let call = IncomingCall {
        url: format!("{origin}{}{query}", uri.path()),
        params,
        signature: headers.get("x-twilio-signature").and_then(|h| h.to_str().ok()).map(str::to_owned),
    };
    let now = oratio_core::time::now().timestamp();
    let answer = twilio::answer(
        deps.table.as_ref(),
        deps.secrets.as_ref(),
        &deps.telephony.grant_key,
        &media_url(&deps, &origin),
        &call,
        now,
    )
    .await?;
    match answer {
        CallAnswer::Connect { twiml: body, grant } => {
            tracing::info!(tenant_id = %grant.tenant_id, agent_id = %grant.agent_id, call_sid = %grant.call_sid,
                caller = %telephony::mask(&grant.caller), "inbound call");
            Ok(twiml(body))
        }
        CallAnswer::Refuse { twiml: body, why } => {
            tracing::info!(why, "inbound call refused");
            Ok(twiml(body))
        }
        CallAnswer::Forbidden => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "the request is not signed by the Twilio account of the number called",
        )),
    }
}

/// Twilio Media Streams (bidirectional, from `<Connect><Stream>`). Twilio's messages in,
/// the agent's μ-law audio out; authorised by the `token` parameter the webhook put in the
/// TwiML.
#[utoipa::path(get, path = "/telephony/twilio/media", tag = "telephony",
    responses(
        (status = 101, description = "Switching to Twilio's Media Streams protocol"),
        (status = 426, body = ErrorBody, description = "`websocket_required`"),
    ))]
async fn media_stream(
    State(gateway): State<VoiceGateway>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|_| {
        ApiError::new(StatusCode::UPGRADE_REQUIRED, "websocket_required", "connect with a WebSocket client")
    })?;
    Ok(ws
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| stream_call(gateway, socket))
        .into_response())
}

/// Waits for Twilio's `start` (after `connected`), within [`START_WITHIN`].
async fn stream_start(socket: &mut WebSocket) -> Option<twilio::StreamStart> {
    let waiting = async {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else { continue };
            match TwilioEvent::parse(&text) {
                Some(TwilioEvent::Connected {}) => continue,
                Some(TwilioEvent::Start { start }) => return Some(start),
                _ => return None,
            }
        }
        None
    };
    tokio::time::timeout(START_WITHIN, waiting).await.ok().flatten()
}

async fn stream_call(gateway: VoiceGateway, mut socket: WebSocket) {
    let Some(start) = stream_start(&mut socket).await else {
        return close(&mut socket, 4400, "expected connected, then start").await;
    };
    let key = gateway.deps.telephony.grant_key.clone();
    let now = oratio_core::time::now().timestamp();
    let Some(grant) = start.custom_parameters.get("token").and_then(|t| CallGrant::accept(&key, t, now)) else {
        tracing::warn!(stream_sid = %start.stream_sid, "a media stream without a valid grant");
        return close(&mut socket, 4401, "no valid token parameter").await;
    };
    if start.media_format.as_ref().is_some_and(|f| !f.is_mulaw_8k()) {
        return close(&mut socket, 4400, "the stream must be audio/x-mulaw at 8000 Hz, mono").await;
    }
    match twilio::claim(gateway.deps.table.as_ref(), &grant).await {
        Ok(true) => {}
        Ok(false) => return close(&mut socket, 4409, "this call's stream is already open").await,
        Err(e) => {
            tracing::error!(cause = %e, "claiming a call's grant failed");
            return close(&mut socket, 1011, "temporarily unavailable").await;
        }
    }
    let connection = match gateway
        .voice
        .connect(&grant.tenant_id, &grant.agent_id, MediaStream::session_start(&grant, &key))
        .await
    {
        Ok(connection) => connection,
        Err(e) => {
            tracing::warn!(code = e.code(), call_sid = %grant.call_sid, "a phone call could not start its session");
            return close(&mut socket, 1011, e.code()).await;
        }
    };
    tracing::info!(session_id = %connection.session_id, call_sid = %grant.call_sid,
        caller = %telephony::mask(&grant.caller), "phone call streaming");
    let mut stream = MediaStream::new(start.stream_sid);
    let oratio_core::voice::Connection { client, mut outgoing, .. } = connection;
    let mut shutdown = gateway.shutdown.clone();
    let (code, reason) = 'call: loop {
        tokio::select! {
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if let Some(event) = TwilioEvent::parse(&text).and_then(|e| stream.incoming(e)) {
                        client.send(event);
                    }
                }
                Some(Ok(Message::Close(_))) | None => break (1000, "Twilio closed the stream"),
                Some(Ok(_)) => {}
                Some(Err(_)) => break (1011, "the stream failed"),
            },
            out = outgoing.recv() => match out {
                Some(Outgoing::Text(text)) => {
                    for message in stream.outgoing(&text) {
                        let sent = tokio::time::timeout(SEND_WITHIN, socket.send(Message::Text(message.into()))).await;
                        if !matches!(sent, Ok(Ok(()))) {
                            break 'call (4008, "Twilio is not reading");
                        }
                    }
                }
                Some(Outgoing::Close { code, reason }) => break (code, reason),
                None => break (1000, "the session ended"),
            },
            _ = shutdown.changed() => break (1001, "server shutting down"),
        }
    };
    // The call is over when its stream is: the session ends now rather than waiting to be
    // resumed (Twilio never resumes a stream).
    client.send(oratio_core::voice::ClientEvent::End);
    drop(client);
    tracing::info!(code, reason, call_sid = %grant.call_sid, "phone call stream closing");
    close(&mut socket, code, reason).await;
}
