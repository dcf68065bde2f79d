//! The voice socket, `GET /v1/agents/{agent_id}/voice` upgraded to a WebSocket that speaks
//! `oratio.voice.v1` (see the README). This is the voice gateway: a long-lived server (the
//! embedded platform; in AWS, the same code as a container service) that holds each
//! session's [`VoiceService`] call while the caller's connection comes and goes.
//!
//! The caller shows the agent's API key before the upgrade (`X-Api-Key` or a bearer
//! token, for servers; the subprotocol `oratio-key.<key>` beside `oratio.voice.v1`, for
//! browsers), or in `session.start` as `api_key`. Keys are never logged.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use oratio_core::api_keys::KeyPrincipal;
use oratio_core::ids::AgentId;
use oratio_core::voice::{ClientEvent, Connection, Outgoing, PROTOCOL, Refusal, ServerEvent, VoiceError, VoiceService};
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{api_key, customer_of};
use crate::body::Path;
use crate::deps::Deps;
use crate::error::{ApiError, ErrorBody};
use crate::socket::close_for;

/// API Gateway's frame limit, kept here too.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

/// Each read of a socket fills at most this much. tungstenite zeroes the whole read buffer
/// before every read (128 KiB by default); a voice socket reads a 1 KB frame each 20 ms,
/// and at a thousand calls that zeroing was the largest cost of the process.
pub const READ_BUFFER_BYTES: usize = 8 * 1024;

/// How long a new connection has to send `session.start`.
const START_WITHIN: Duration = Duration::from_secs(10);

/// A connection that sends nothing for this long is closed (its session waits to be resumed).
const IDLE: Duration = Duration::from_secs(600);

/// A client that takes longer than this to take one frame is not reading.
const SEND_WITHIN: Duration = Duration::from_secs(5);

/// How long a closed connection waits for the client's own close.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// The browser form of the key: a subprotocol beside the protocol's own.
const KEY_SUBPROTOCOL: &str = "oratio-key.";

#[derive(Clone)]
pub struct VoiceGateway {
    pub deps: Arc<Deps>,
    pub voice: VoiceService,
    pub shutdown: watch::Receiver<bool>,
}

pub fn routes() -> OpenApiRouter<VoiceGateway> {
    OpenApiRouter::new().routes(routes!(voice))
}

/// The key a browser offered as a subprotocol.
pub(crate) fn subprotocol_key(headers: &HeaderMap) -> Option<String> {
    let offered = headers.get("sec-websocket-protocol")?.to_str().ok()?;
    offered.split(',').map(str::trim).find_map(|p| p.strip_prefix(KEY_SUBPROTOCOL)).map(str::to_owned)
}

/// Opens a real-time voice session with the agent (a WebSocket; messages in the README).
///
/// Send the agent's API key in `X-Api-Key` (or as the subprotocol `oratio-key.<key>`
/// beside `oratio.voice.v1`, or as `api_key` in `session.start`). A key shown before the
/// upgrade is checked before it: a wrong one is answered here, with the standard body.
/// After the upgrade, errors are `error` messages, and a session that cannot go on is
/// closed with the codes in the README.
#[utoipa::path(get, path = "/v1/agents/{agent_id}/voice", tag = "customers", security(("api_key" = [])),
    params(("agent_id" = String, Path)),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol `oratio.voice.v1`"),
        (status = 401, body = ErrorBody, description = "`missing_api_key`, `invalid_api_key`"),
        (status = 403, body = ErrorBody, description = "`key_agent_mismatch`"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such agent"),
        (status = 426, body = ErrorBody, description = "`websocket_required`: connect with a WebSocket client"),
        (status = 429, body = ErrorBody, description = "`rate_limited`"),
    ))]
async fn voice(
    State(gateway): State<VoiceGateway>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let agent: AgentId = agent.parse().map_err(|_| ApiError::not_found("no such agent"))?;
    let offered = subprotocol_key(&headers);
    let shown = api_key(&headers).map(str::to_owned).or(offered);
    let principal = match shown {
        Some(key) => Some(customer_of(&gateway.deps, Some(&key), Some(&agent)).await?),
        None => None,
    };
    let ws = ws.map_err(|_| {
        ApiError::new(StatusCode::UPGRADE_REQUIRED, "websocket_required", "connect with a WebSocket client")
    })?;
    Ok(ws
        .protocols([PROTOCOL])
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| converse(gateway, socket, agent, principal))
        .into_response())
}

/// A session's close codes (RFC 6455 leaves 4000–4999 to applications).
fn close_code(code: &str) -> u16 {
    match code {
        "missing_api_key" | "invalid_api_key" => 4401,
        "key_agent_mismatch" | "not_a_voice_agent" => 4403,
        "not_found" => 4404,
        "session_start_expected" | "unsupported_protocol" | "unsupported_audio_format" | "invalid_request" => 4400,
        "agent_paused" | "agent_not_ready" => 4409,
        "session_not_resumable" => 4410,
        "rate_limited" => 4429,
        "speech_unavailable" => 1013,
        _ => 1011,
    }
}

/// Closes with `code` (unless the client cannot even take the close frame), then waits a
/// moment for the client's own close, as RFC 6455 asks: a connection dropped while the
/// client still writes would be reset, and the client would lose the frames before it.
pub(crate) async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame { code, reason: reason.chars().take(120).collect::<String>().into() };
    if !matches!(tokio::time::timeout(SEND_WITHIN, socket.send(Message::Close(Some(frame)))).await, Ok(Ok(()))) {
        return;
    }
    let answered = async {
        while let Some(Ok(message)) = socket.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_WITHIN, answered).await;
}

/// Refuses a connection before its session: an `error` message, then the close.
async fn refuse(socket: &mut WebSocket, code: &'static str, message: String) {
    let error = ServerEvent::error(Refusal::new(code, message.clone()));
    let _ = socket.send(Message::Text(error.sequenced(0).into())).await;
    close(socket, close_code(code), code).await;
}

/// Waits for `session.start`, checks the key it may carry, and runs the session.
async fn converse(gateway: VoiceGateway, mut socket: WebSocket, agent: AgentId, shown: Option<KeyPrincipal>) {
    let first = match tokio::time::timeout(START_WITHIN, socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => ClientEvent::parse(&text),
        Ok(Some(Ok(_))) => Err(Refusal::new("session_start_expected", "send session.start as a JSON text frame")),
        Ok(_) => return,
        Err(_) => {
            return refuse(&mut socket, "session_start_expected", "no session.start within 10 s".into()).await;
        }
    };
    let start = match first {
        Ok(ClientEvent::Start(start)) => start,
        Ok(_) => {
            return refuse(&mut socket, "session_start_expected", "the first message is session.start".into()).await;
        }
        Err(refusal) => return refuse(&mut socket, "session_start_expected", refusal.message).await,
    };
    let principal = match shown {
        Some(principal) => principal,
        None => match customer_of(&gateway.deps, start.api_key.as_deref(), Some(&agent)).await {
            Ok(principal) => principal,
            Err(refused) => return refuse(&mut socket, refused.code(), refused.message().to_owned()).await,
        },
    };
    let connection = match gateway.voice.connect(&principal.tenant_id, &agent, *start).await {
        Ok(connection) => connection,
        Err(e) => {
            if let VoiceError::Turn(cause) = &e
                && e.code() == "temporarily_unavailable"
            {
                tracing::error!(cause = %cause, "starting a voice session failed");
            }
            return refuse(&mut socket, e.code(), e.to_string()).await;
        }
    };
    tracing::info!(session_id = %connection.session_id, agent_id = %agent, "voice connection");
    relay(socket, connection, gateway.voice.limits().keepalive, gateway.shutdown.clone()).await;
}

/// Carries client frames to the session and its events to the client until either ends.
/// The client is pinged every `keepalive`; one that answers nothing (not even the pong
/// its WebSocket library sends by itself) for twice that is not reading, or gone.
async fn relay(
    mut socket: WebSocket,
    connection: Connection,
    keepalive: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let Connection { client, mut outgoing, .. } = connection;
    let mut ping = tokio::time::interval(keepalive);
    // When the client last answered anything, and last sent a message (checked at each
    // ping: no timer per frame).
    let (mut heard, mut spoke) = (tokio::time::Instant::now(), tokio::time::Instant::now());
    let (code, reason) = loop {
        tokio::select! {
            _ = ping.tick() => {
                if heard.elapsed() >= keepalive * 2 {
                    break (4008, "the client is not reading");
                }
                if spoke.elapsed() >= IDLE {
                    break (4408, "idle: nothing came for 10 minutes");
                }
                let sent = tokio::time::timeout(SEND_WITHIN, socket.send(Message::Ping(Default::default()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break (4008, "the client is not reading");
                }
            }
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    (heard, spoke) = (tokio::time::Instant::now(), tokio::time::Instant::now());
                    match ClientEvent::parse(&text) {
                        Ok(event) => client.send(event),
                        Err(refusal) => client.refuse(refusal),
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    client.refuse(Refusal::new("binary_not_supported", "send JSON text frames; audio goes base64 in input_audio_buffer.append"));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => heard = tokio::time::Instant::now(),
                Some(Ok(Message::Close(_))) | None => break (1000, "client closed"),
                Some(Err(e)) => break close_for(e),
            },
            out = outgoing.recv() => match out {
                Some(Outgoing::Text(text)) => {
                    let Ok(text) = axum::extract::ws::Utf8Bytes::try_from(text) else { continue };
                    let sent = tokio::time::timeout(SEND_WITHIN, socket.send(Message::Text(text))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break (4008, "the client is not reading");
                    }
                }
                Some(Outgoing::Close { code, reason }) => break (code, reason),
                None => break (4008, "the client is not reading"),
            },
            _ = shutdown.changed() => break (1001, "server shutting down"),
        }
    };
    drop(client);
    tracing::info!(code, reason, "voice connection closing");
    close(&mut socket, code, reason).await;
}
